/*
 * imapload: an IMAP load generator for the peer benchmark.
 *
 * Modes, one per run:
 *
 *   -A count	preload: every account from -o to -o + -u - 1 gets count
 *		generated messages APPENDed to its INBOX by -c sessions
 *		at once, with flags and dates of their own.  The messages
 *		are varied (plain text, quoted-printable, 8-bit,
 *		encoded-word subjects, multipart/alternative, attachments
 *		up to 400 KB) and depend only on the account and message
 *		number, so that every server gets the same ones.
 *   -M		the client mix (the default): -c sessions, each logged in
 *		as account (-o + session % -u) with INBOX selected, run
 *		operations drawn from a fixed mix for -t seconds: SELECT,
 *		FETCH FLAGS, FETCH of headers, FETCH BODY[], STORE, APPEND,
 *		EXPUNGE and SEARCH.  Every session is logged in and has
 *		INBOX selected before the clock starts.
 *   -I count	idle: opens count sessions (-c at a time), each LOGIN,
 *		SELECT INBOX and IDLE, prints idle_ready=n, waits for a
 *		line or EOF on stdin, then says how many are still open.
 *   -W count dir
 *		preload without a server: the same messages written as
 *		Maildir files (flags in the name, the date as mtime)
 *		into dir/LOCALPART/cur, for a server that reads Maildirs.
 *   -X		warm up: each account once: SELECT INBOX, FETCH 1:*
 *		(FLAGS), and the list view's headers of every message.
 *   -S crit	search: one session on account -o times -r runs of
 *		SEARCH crit (given several times, one line each).
 *   -P		probe: exits 0 if the server greets with * OK.
 *
 * Results go to stdout as key=value pairs; the first problem seen to
 * stderr.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

#define IL_MAX_SESSIONS		20000
#define IL_MAX_SEARCHES		16
#define IL_IN_MAX		(256 * 1024)	/* input buffer */
#define IL_LINE_MAX		(16 * 1024 * 1024) /* one response */
#define IL_MSG_MAX		(600 * 1024)	/* a generated message */
#define IL_TIMEOUT		120	/* seconds without an answer */
#define IL_BUCKETS		400	/* latency, 5% apart from 1 us */
#define IL_BUCKET_BASE		1.05
#define IL_MIX_BASE		1000000	/* numbers of the mix's APPENDs */

enum mode {
	MODE_MIX, MODE_PRELOAD, MODE_MAILDIR, MODE_WARM, MODE_IDLE,
	MODE_SEARCH, MODE_PROBE
};

enum status { ST_OK, ST_NO, ST_BAD, ST_BROKEN = -1 };

enum op {
	OP_SELECT,
	OP_FETCH_FLAGS,
	OP_FETCH_HEADERS,
	OP_FETCH_BODY,
	OP_STORE,
	OP_APPEND,
	OP_EXPUNGE,
	OP_SEARCH,
	OP_COUNT
};

/* The mix: percentages of operations, summing to 100 (-m changes it). */
static struct {
	const char	*name;
	int		 weight;
} ops[OP_COUNT] = {
	{ "select", 5 },	/* SELECT INBOX again (a folder switch) */
	{ "fetch_flags", 20 },	/* FETCH n-99:* (FLAGS), a flag resync */
	{ "fetch_headers", 15 },/* 20 messages' list view */
	{ "fetch_body", 20 },	/* BODY[] of one, setting \Seen */
	{ "store", 16 },	/* +FLAGS or -FLAGS on one */
	{ "append", 7 },	/* a new message */
	{ "expunge", 7 },	/* STORE \Deleted on one, then EXPUNGE */
	{ "search", 10 },	/* UNSEEN, FLAGGED, FROM, SUBJECT, SINCE */
};

struct config {
	struct sockaddr_in	 addr;
	enum mode		 mode;
	int			 sessions;
	double			 duration;
	long			 count;		/* preload or idle */
	int			 users;
	int			 first_user;
	const char		*login_fmt;
	const char		*pass_fmt;
	const char		*searches[IL_MAX_SEARCHES];
	const char		*maildir;
	int			 nsearches;
	int			 runs;
};

struct opstats {
	long long		 ok, no, bad;
	long long		 lat[IL_BUCKETS];
};

struct counters {
	pthread_mutex_t		 lock;
	struct opstats		 op[OP_COUNT];
	long long		 commands;
	long long		 errors;	/* broken sessions */
	long long		 appended;
	long long		 append_no;
	long long		 bytes;		/* literal bytes read */
	long			 ready;
	long			 failed;
	long			 next;		/* idle: sessions handed out */
	char			 first_error[300];
};

struct conn {
	int			 id;
	int			 fd;
	int			 user;
	char			 in[IL_IN_MAX];
	size_t			 len, pos;
	char			*line;		/* one response, no literals */
	size_t			 linelen, linecap;
	long			 exists;
	long			 search_hits;
	long long		 literal_bytes;
	unsigned int		 tagseq;
	int			 logout;	/* BYE is expected */
	char			 tag[16];
	uint64_t		 rng;
	char			*msg;		/* generated message */
};

static struct config	 conf;
static struct counters	 counters = { .lock = PTHREAD_MUTEX_INITIALIZER };
static double		 start_time, stop_time;
static pthread_barrier_t start_barrier;
const char		*load_name = "imapload";
struct load_errors	 load_errors = {
	&counters.lock, counters.first_error, sizeof(counters.first_error),
	240, 0
};

static void
usage(void)
{
	fprintf(stderr, "usage: imapload [-PvX] [-A count | -I count | -M | "
	    "-S criteria ... |\n"
	    "                -W count dir] [-c sessions] [-l login-format] "
	    "[-m op=weight,...]\n"
	    "                [-o first-user] [-r runs] [-t seconds] "
	    "[-u users]\n"
	    "                [-w password-format] -p port [host]\n");
	exit(2);
}

static long
number(const char *s, long min, long max, const char *what)
{
	return load_number(s, min, max, what, 0);
}


/* --- the generated messages ------------------------------------------ */

static uint64_t
rnd(uint64_t *s)
{
	uint64_t	z;

	z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned int
rnd_below(uint64_t *s, unsigned int n)
{
	return rnd(s) % n;
}

static const char *words[] = {
	"the", "and", "for", "you", "with", "this", "that", "have", "from",
	"will", "about", "your", "please", "meeting", "project", "report",
	"update", "review", "attached", "thanks", "team", "week", "today",
	"tomorrow", "schedule", "budget", "question", "answer", "client",
	"server", "release", "version", "draft", "final", "notes", "agenda",
	"minutes", "invoice", "payment", "order", "shipping", "delivery",
	"account", "password", "security", "network", "backup", "storage",
	"database", "index", "search", "mailbox", "folder", "message",
	"thread", "reply", "forward", "calendar", "invite", "conference",
	"travel", "hotel", "flight", "ticket", "booking", "dinner", "lunch",
	"coffee", "office", "remote", "holiday", "vacation", "contract",
	"proposal", "design", "document", "spreadsheet", "slides", "summary",
	"customer", "support", "issue", "problem", "solution", "feature",
	"request", "change", "deadline", "priority", "status", "progress",
	"quarter", "annual", "planning", "strategy", "market", "product",
	"launch", "campaign", "newsletter", "subscription", "feedback",
	"survey", "results", "analysis", "numbers", "figures", "chart",
	"migration", "upgrade", "install", "configure", "monitor", "alert",
	"incident", "outage", "recovery", "restore", "archive", "export",
	"import", "sync", "device", "laptop", "phone", "tablet", "printer",
	"kitchen", "garden", "weekend", "birthday", "family", "friends",
	"photos", "music", "movie", "book", "library", "school", "course",
	"lesson", "homework", "exam", "grade", "teacher", "student",
	"doctor", "appointment", "insurance", "bank", "statement", "receipt",
	"refund", "discount", "offer", "price", "quote", "estimate",
	"interview", "candidate", "position", "salary", "benefits", "onboard",
	"welcome", "goodbye", "congratulations", "sorry", "reminder",
	"urgent", "important", "optional", "confidential", "internal",
};
#define NWORDS	(sizeof(words) / sizeof(words[0]))

static const char *first_names[] = {
	"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi",
	"Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
	"Sybil", "Trent", "Victor", "Walter", "Zoe",
};
static const char *last_names[] = {
	"Smith", "Jones", "Garcia", "Martin", "Müller", "Dubois", "Rossi",
	"Novak", "Kowalski", "Larsen", "Okafor", "Tanaka", "Silva", "Nguyen",
};
static const char *domains[] = {
	"example.com", "example.net", "example.org", "mail.example.com",
	"lists.example.org", "corp.example.net",
};
static const char *months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
	"Oct", "Nov", "Dec",
};
static const char *wdays[] = {
	"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
};
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct mbuf {
	char	*p;
	size_t	 len;
};

static void
put(struct mbuf *m, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(m->p + m->len, IL_MSG_MAX - m->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= IL_MSG_MAX - m->len) {
		m->len = IL_MSG_MAX - 1;
		return;
	}
	m->len += n;
}

/* Skewed: the first words are in almost every message, the last rare. */
static const char *
word(uint64_t *s)
{
	double	u = (rnd(s) >> 11) / 9007199254740992.0;

	return words[(unsigned int)(NWORDS * u * u * u)];
}

/*
 * Text lines of about len bytes.  Message number n gets the marker
 * words the search benchmark looks for: "zebrafish" in 1 of 100,
 * "quetzal" in 1 of 1,000, each once in the body.
 */
static void
put_text(struct mbuf *m, uint64_t *s, size_t len, long n, int eightbit)
{
	size_t	 start = m->len, col = 0;
	size_t	 mark1 = (n % 100 == 7) ? rnd_below(s, len) + 1 : 0;
	size_t	 mark2 = (n % 1000 == 123) ? rnd_below(s, len) + 1 : 0;
	const char *w;

	while (m->len - start < len && m->len < IL_MSG_MAX - 200) {
		if (mark1 && m->len - start >= mark1) {
			w = "zebrafish";
			mark1 = 0;
		} else if (mark2 && m->len - start >= mark2) {
			w = "quetzal";
			mark2 = 0;
		} else if (eightbit && rnd_below(s, 40) == 0)
			w = rnd_below(s, 2) ? "café" : "naïve";
		else
			w = word(s);
		put(m, "%s%s", col ? " " : "", w);
		col += strlen(w) + 1;
		if (col > 60 + rnd_below(s, 12)) {
			put(m, rnd_below(s, 8) == 0 ? ".\r\n\r\n" : "\r\n");
			col = 0;
		}
	}
	if (mark1)
		put(m, " zebrafish");
	if (mark2)
		put(m, " quetzal");
	put(m, "\r\n");
}

/* The same text, quoted-printable with soft line breaks. */
static void
put_qp(struct mbuf *m, uint64_t *s, size_t len, long n)
{
	struct mbuf	 t;
	size_t		 i, col = 0;
	unsigned char	 ch;

	if ((t.p = malloc(IL_MSG_MAX)) == NULL)
		abort();
	t.len = 0;
	put_text(&t, s, len, n, 1);
	for (i = 0; i < t.len && m->len < IL_MSG_MAX - 200; i++) {
		ch = t.p[i];
		if (ch == '\r' && i + 1 < t.len && t.p[i + 1] == '\n') {
			put(m, "\r\n");
			i++;
			col = 0;
			continue;
		}
		if (col >= 72) {
			put(m, "=\r\n");
			col = 0;
		}
		if (ch >= 128 || ch == '=') {
			put(m, "=%02X", ch);
			col += 3;
		} else {
			m->p[m->len++] = ch;
			col++;
		}
	}
	put(m, "\r\n");
	free(t.p);
}

static void
put_base64(struct mbuf *m, uint64_t *s, size_t len)
{
	size_t	i, col = 0;

	for (i = 0; i < len && m->len < IL_MSG_MAX - 200; i += 3) {
		uint64_t v = rnd(s);

		put(m, "%c%c%c%c", b64[v & 63], b64[(v >> 6) & 63],
		    b64[(v >> 12) & 63], b64[(v >> 18) & 63]);
		if ((col += 4) >= 76) {
			put(m, "\r\n");
			col = 0;
		}
	}
	put(m, "\r\n");
}

static void
put_subject(struct mbuf *m, uint64_t *s)
{
	int	i, n = 2 + rnd_below(s, 6);

	if (rnd_below(s, 10) == 0) {
		put(m, "Subject: =?UTF-8?Q?R=C3=A9union_");
		for (i = 0; i < n; i++)
			put(m, "%s%s", i ? "_" : "", word(s));
		put(m, "?=\r\n");
		return;
	}
	put(m, "Subject: %s", rnd_below(s, 4) == 0 ? "Re: " : "");
	for (i = 0; i < n; i++)
		put(m, "%s%s", i ? " " : "", word(s));
	put(m, "\r\n");
}

/*
 * Message n of account user: its bytes into out (IL_MSG_MAX), its
 * APPEND flags and date into flags and date.  Numbers from IL_MIX_BASE
 * on are the mix's: no marker words, dated by the server.
 */
static size_t
make_message(char *out, int user, long n, const char *to, char *flags,
    size_t flagslen, char *date, size_t datelen, time_t *when)
{
	struct tm	 tm;
	struct mbuf	 m = { out, 0 };
	uint64_t	 s = ((uint64_t)user << 32) ^ (uint64_t)n ^
			    0x5eed5eedULL;
	unsigned int	 kind, day, mon, hh, mm, ss;
	int		 seen, flagged, answered;
	const char	*fn, *ln, *dom;
	size_t		 textlen;
	char		 bound[64];

	rnd(&s);
	kind = rnd_below(&s, 100);
	fn = first_names[rnd_below(&s, sizeof(first_names) /
	    sizeof(first_names[0]))];
	ln = last_names[rnd_below(&s, sizeof(last_names) /
	    sizeof(last_names[0]))];
	dom = domains[rnd_below(&s, sizeof(domains) / sizeof(domains[0]))];
	/* Older messages first, over 2025. */
	day = (n >= IL_MIX_BASE ? 364 : (n * 7) % 365);
	mon = day / 31 < 12 ? day / 31 : 11;
	day = day % 28 + 1;
	hh = rnd_below(&s, 24);
	mm = rnd_below(&s, 60);
	ss = rnd_below(&s, 60);
	snprintf(date, datelen, "%02u-%s-2025 %02u:%02u:%02u +0000", day,
	    months[mon], hh, mm, ss);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 125;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*when = timegm(&tm);
	seen = rnd_below(&s, 100) < 70;
	flagged = rnd_below(&s, 100) < 5;
	answered = rnd_below(&s, 100) < 10;
	snprintf(flags, flagslen, "%s%s%s%s%s", seen ? "\\Seen" : "",
	    seen && flagged ? " " : "", flagged ? "\\Flagged" : "",
	    (seen || flagged) && answered ? " " : "",
	    answered ? "\\Answered" : "");

	if (strchr(ln, 0xc3) != NULL)
		put(&m, "From: =?UTF-8?Q?%s_M=C3=BCller?= <%s.mueller@%s>\r\n",
		    fn, fn, dom);
	else
		put(&m, "From: %s %s <%s.%s@%s>\r\n", fn, ln, fn, ln, dom);
	put(&m, "To: <%s>\r\n", to);
	if (rnd_below(&s, 5) == 0)
		put(&m, "Cc: %s <%s@%s>\r\n", first_names[rnd_below(&s, 20)],
		    first_names[rnd_below(&s, 20)], domains[0]);
	put_subject(&m, &s);
	put(&m, "Date: %s, %02u %s 2025 %02u:%02u:%02u +0000\r\n",
	    wdays[rnd_below(&s, 7)], day, months[mon], hh, mm, ss);
	put(&m, "Message-ID: <%d.%ld.%llx@imapload.bench.test>\r\n", user, n,
	    (unsigned long long)(rnd(&s) & 0xffffffff));
	if (n > 0 && rnd_below(&s, 4) == 0)
		put(&m, "In-Reply-To: <%d.%ld.0@imapload.bench.test>\r\n"
		    "References: <%d.%ld.0@imapload.bench.test>\r\n", user,
		    n - 1, user, n - 1);
	put(&m, "MIME-Version: 1.0\r\n");
	snprintf(bound, sizeof(bound), "=_bound_%d_%ld", user, n);

	if (n >= IL_MIX_BASE)
		n = 1;		/* no markers in the mix's messages */
	if (kind < 60) {
		textlen = 800 + rnd_below(&s, 5000);
		if (rnd_below(&s, 3) == 0) {
			put(&m, "Content-Type: text/plain; charset=utf-8\r\n"
			    "Content-Transfer-Encoding: 8bit\r\n\r\n");
			put_text(&m, &s, textlen, n, 1);
		} else {
			put(&m, "Content-Type: text/plain; charset=us-ascii"
			    "\r\n\r\n");
			put_text(&m, &s, textlen, n, 0);
		}
	} else if (kind < 75) {
		put(&m, "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
		put_qp(&m, &s, 2000 + rnd_below(&s, 18000), n);
	} else if (kind < 85) {
		textlen = 1500 + rnd_below(&s, 6000);
		put(&m, "Content-Type: multipart/alternative; boundary=\"%s\""
		    "\r\n\r\n", bound);
		put(&m, "--%s\r\nContent-Type: text/plain; charset=us-ascii"
		    "\r\n\r\n", bound);
		put_text(&m, &s, textlen, n, 0);
		put(&m, "--%s\r\nContent-Type: text/html; charset=us-ascii"
		    "\r\n\r\n<html><body><p>\r\n", bound);
		put_text(&m, &s, textlen, n + 1, 0);
		put(&m, "</p></body></html>\r\n--%s--\r\n", bound);
	} else {
		put(&m, "Content-Type: multipart/mixed; boundary=\"%s\""
		    "\r\n\r\n", bound);
		put(&m, "This is a multi-part message in MIME format.\r\n"
		    "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\n\r\n", bound);
		put_text(&m, &s, 500 + rnd_below(&s, 3000), n, 1);
		put(&m, "--%s\r\nContent-Type: application/pdf; "
		    "name=\"%s-%ld.pdf\"\r\nContent-Disposition: attachment; "
		    "filename=\"%s-%ld.pdf\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n", bound,
		    word(&s), n, word(&s), n);
		put_base64(&m, &s, kind < 97 ? 8000 + rnd_below(&s, 70000) :
		    80000 + rnd_below(&s, 220000));
		put(&m, "--%s--\r\n", bound);
	}
	return m.len;
}

/* --- IMAP ------------------------------------------------------------- */

static int
fill(struct conn *c)
{
	ssize_t	r;

	if (c->pos == c->len)
		c->pos = c->len = 0;
	else if (c->pos > 0 && c->len == sizeof(c->in)) {
		memmove(c->in, c->in + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	for (;;) {
		r = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return -1;
		}
		c->len += r;
		return 0;
	}
}

static int
line_add(struct conn *c, const char *p, size_t n)
{
	char	*nl;
	size_t	 cap;

	if (c->linelen + n + 1 > c->linecap) {
		cap = c->linecap ? c->linecap : 4096;
		while (cap < c->linelen + n + 1)
			cap *= 2;
		if (cap > IL_LINE_MAX) {
			errno = EMSGSIZE;
			return -1;
		}
		if ((nl = realloc(c->line, cap)) == NULL)
			return -1;
		c->line = nl;
		c->linecap = cap;
	}
	memcpy(c->line + c->linelen, p, n);
	c->linelen += n;
	c->line[c->linelen] = '\0';
	return 0;
}

/* A literal's size if the line so far ends with {n} or {n+}. */
static long long
literal_size(struct conn *c)
{
	size_t	 i = c->linelen;
	long long n = 0, mul = 1;

	if (i < 3 || c->line[i - 1] != '}')
		return -1;
	i--;
	if (c->line[i - 1] == '+')
		i--;
	if (i == 0 || !isdigit((unsigned char)c->line[i - 1]))
		return -1;
	while (i > 0 && isdigit((unsigned char)c->line[i - 1])) {
		n += (c->line[i - 1] - '0') * mul;
		mul *= 10;
		i--;
		if (mul > 1000000000000LL)
			return -1;
	}
	if (i == 0 || c->line[i - 1] != '{')
		return -1;
	return n;
}

/*
 * Reads one whole response into c->line: its lines joined, each
 * literal's bytes skipped (counted in literal_bytes), its {n} kept.
 */
static int
read_response(struct conn *c)
{
	char		*nl;
	size_t		 n;
	long long	 lit;

	c->linelen = 0;
	if (line_add(c, "", 0) == -1)
		return -1;
	for (;;) {
		if (c->pos == c->len && fill(c) == -1)
			return -1;
		nl = memchr(c->in + c->pos, '\n', c->len - c->pos);
		if (nl == NULL) {
			if (line_add(c, c->in + c->pos, c->len - c->pos) == -1)
				return -1;
			c->pos = c->len;
			continue;
		}
		n = nl - (c->in + c->pos);
		if (line_add(c, c->in + c->pos, n) == -1)
			return -1;
		c->pos += n + 1;
		if (c->linelen > 0 && c->line[c->linelen - 1] == '\r')
			c->line[--c->linelen] = '\0';
		if ((lit = literal_size(c)) < 0)
			return 0;
		c->literal_bytes += lit;
		while (lit > 0) {
			if (c->pos == c->len && fill(c) == -1)
				return -1;
			n = c->len - c->pos;
			if ((long long)n > lit)
				n = lit;
			c->pos += n;
			lit -= n;
		}
	}
}

/* Untagged data the sessions keep track of: EXISTS, EXPUNGE, SEARCH. */
static void
untagged(struct conn *c)
{
	const char	*p = c->line + 2;
	char		*end;
	long		 n;

	if (strncasecmp(p, "SEARCH", 6) == 0) {
		for (p += 6; *p != '\0'; p++)
			if (isdigit((unsigned char)*p) &&
			    (p[-1] == ' '))
				c->search_hits++;
		return;
	}
	if (!isdigit((unsigned char)*p))
		return;
	n = strtol(p, &end, 10);
	if (strcasecmp(end, " EXISTS") == 0)
		c->exists = n;
	else if (strcasecmp(end, " EXPUNGE") == 0 && c->exists > 0)
		c->exists--;
}

static void
next_tag(struct conn *c)
{
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagseq);
}

static int
tagged(struct conn *c)
{
	size_t	n = strlen(c->tag);

	return strncmp(c->line, c->tag, n) == 0 && c->line[n] == ' ';
}

static enum status
tagged_status(struct conn *c)
{
	const char	*p = c->line + strlen(c->tag) + 1;

	if (strncasecmp(p, "OK", 2) == 0)
		return ST_OK;
	if (strncasecmp(p, "NO", 2) == 0)
		return ST_NO;
	return ST_BAD;
}

/* Reads responses up to the tagged one. */
static enum status
finish(struct conn *c)
{
	for (;;) {
		if (read_response(c) == -1)
			return ST_BROKEN;
		if (c->line[0] == '*' && c->line[1] == ' ') {
			untagged(c);
			if (strncasecmp(c->line, "* BYE", 5) == 0 &&
			    !c->logout)
				load_note(c->id, "%s", c->line);
			continue;
		}
		if (tagged(c))
			return tagged_status(c);
	}
}

static enum status
command(struct conn *c, const char *fmt, ...)
{
	char		cmd[2048];
	va_list		ap;
	int		n, m;
	enum status	st;

	next_tag(c);
	m = snprintf(cmd, sizeof(cmd), "%s ", c->tag);
	va_start(ap, fmt);
	n = vsnprintf(cmd + m, sizeof(cmd) - m - 3, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)(n + m) >= sizeof(cmd) - 3)
		return ST_BROKEN;
	memcpy(cmd + m + n, "\r\n", 3);
	if (load_write_all(c->fd, cmd, m + n + 2) == -1)
		return ST_BROKEN;
	st = finish(c);
	cmd[m + n] = '\0';
	if (st != ST_OK && st != ST_BROKEN)
		load_note(c->id, "%.60s: %.200s", cmd + m, c->line);
	return st;
}

/* APPEND with a synchronizing literal, as every server takes. */
static enum status
append(struct conn *c, const char *flags, const char *date, size_t len)
{
	char	cmd[512];
	int	n;

	next_tag(c);
	n = snprintf(cmd, sizeof(cmd), "%s APPEND INBOX (%s)%s%s%s {%zu}\r\n",
	    c->tag, flags, date ? " \"" : "", date ? date : "",
	    date ? "\"" : "", len);
	if (load_write_all(c->fd, cmd, n) == -1)
		return ST_BROKEN;
	for (;;) {
		if (read_response(c) == -1)
			return ST_BROKEN;
		if (c->line[0] == '+')
			break;
		if (c->line[0] == '*') {
			untagged(c);
			continue;
		}
		if (tagged(c)) {
			load_note(c->id, "APPEND: %.200s", c->line);
			return tagged_status(c);
		}
	}
	if (load_write_all(c->fd, c->msg, len) == -1 ||
	    load_write_all(c->fd, "\r\n", 2) == -1)
		return ST_BROKEN;
	n = finish(c);
	if (n != ST_OK && n != ST_BROKEN)
		load_note(c->id, "APPEND: %.200s", c->line);
	return n;
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->len = c->pos = 0;
}

static int
conn_open(struct conn *c)
{
	const char	*failed;

	c->len = c->pos = 0;
	c->exists = 0;
	if ((c->fd = load_connect(&conf.addr, IL_TIMEOUT, &failed)) == -1) {
		load_note(c->id, "%s: %s", failed, strerror(errno));
		return -1;
	}
	if (read_response(c) == -1 || strncasecmp(c->line, "* OK", 4) != 0) {
		load_note(c->id, "greeting: %s", c->linelen ? c->line :
		    strerror(errno));
		conn_close(c);
		return -1;
	}
	return 0;
}

static void
user_name(char *buf, size_t len, const char *fmt, int user)
{
	/* The formats are ours (-l, -w): one %d. */
	snprintf(buf, len, fmt, user);
}

static int
conn_login(struct conn *c, int user, int select)
{
	char	login[256], pass[256];

	c->user = user;
	if (conn_open(c) == -1)
		return -1;
	user_name(login, sizeof(login), conf.login_fmt, user);
	user_name(pass, sizeof(pass), conf.pass_fmt, user);
	if (command(c, "LOGIN \"%s\" \"%s\"", login, pass) != ST_OK)
		goto fail;
	if (select && command(c, "SELECT INBOX") != ST_OK)
		goto fail;
	return 0;
fail:
	conn_close(c);
	return -1;
}

static void
conn_logout(struct conn *c)
{
	c->logout = 1;
	if (c->fd != -1)
		command(c, "LOGOUT");
	c->logout = 0;
	conn_close(c);
}

static struct conn *
conn_new(int id)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->msg = malloc(IL_MSG_MAX)) == NULL) {
		perror("imapload: calloc");
		exit(1);
	}
	c->id = id;
	c->fd = -1;
	c->rng = 0x1234567ULL + id * 7919ULL;
	return c;
}

/* --- the client mix ------------------------------------------------- */

static int
bucket(double secs)
{
	double	us = secs * 1e6;
	int	b;

	if (us < 1)
		return 0;
	b = (int)(log(us) / log(IL_BUCKET_BASE));
	return b >= IL_BUCKETS ? IL_BUCKETS - 1 : b;
}

static void
record(enum op op, enum status st, double latency)
{
	struct opstats	*o = &counters.op[op];

	pthread_mutex_lock(&counters.lock);
	if (st == ST_OK) {
		o->ok++;
		o->lat[bucket(latency)]++;
	} else if (st == ST_NO)
		o->no++;
	else if (st == ST_BAD)
		o->bad++;
	pthread_mutex_unlock(&counters.lock);
}

static enum op
pick_op(struct conn *c)
{
	int	r = rnd_below(&c->rng, 100), i;

	for (i = 0; i < OP_COUNT; i++) {
		if (r < ops[i].weight)
			return i;
		r -= ops[i].weight;
	}
	return OP_FETCH_FLAGS;
}

static enum status
run_op(struct conn *c, enum op op, long *appends, int *ncmd)
{
	char		 flags[64], date[64], to[256];
	time_t		 when;
	long		 seq, lo;
	size_t		 len;
	enum status	 st;
	static const char *searches[] = {
		"UNSEEN", "FLAGGED", "FROM \"Carol\"", "SUBJECT \"budget\"",
		"SINCE 1-Oct-2025",
	};

	*ncmd = 1;
	if (c->exists == 0 && op != OP_SELECT && op != OP_APPEND)
		op = OP_APPEND;
	seq = c->exists ? 1 + rnd_below(&c->rng, c->exists) : 1;
	switch (op) {
	case OP_SELECT:
		return command(c, "SELECT INBOX");
	case OP_FETCH_FLAGS:
		lo = c->exists > 100 ? c->exists - 99 : 1;
		return command(c, "FETCH %ld:* (FLAGS)", lo);
	case OP_FETCH_HEADERS:
		lo = c->exists > 20 ? 1 + rnd_below(&c->rng, c->exists - 19) :
		    1;
		return command(c, "FETCH %ld:%ld (UID FLAGS INTERNALDATE "
		    "RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT "
		    "DATE MESSAGE-ID)])", lo, c->exists < lo + 19 ? c->exists :
		    lo + 19);
	case OP_FETCH_BODY:
		return command(c, "FETCH %ld (BODY[])", seq);
	case OP_STORE:
		switch (rnd_below(&c->rng, 4)) {
		case 0:
			return command(c, "STORE %ld +FLAGS (\\Flagged)", seq);
		case 1:
			return command(c, "STORE %ld -FLAGS (\\Flagged)", seq);
		case 2:
			return command(c, "STORE %ld -FLAGS (\\Seen)", seq);
		default:
			return command(c, "STORE %ld +FLAGS (\\Seen \\Answered)",
			    seq);
		}
	case OP_APPEND:
		user_name(to, sizeof(to), conf.login_fmt, c->user);
		len = make_message(c->msg, c->user, IL_MIX_BASE +
		    c->id * 100000L + (*appends)++ % 100000, to, flags,
		    sizeof(flags), date, sizeof(date), &when);
		return append(c, "\\Seen", NULL, len);
	case OP_EXPUNGE:
		*ncmd = 2;
		st = command(c, "STORE %ld +FLAGS.SILENT (\\Deleted)", seq);
		if (st != ST_OK)
			return st;
		return command(c, "EXPUNGE");
	case OP_SEARCH:
		return command(c, "SEARCH %s",
		    searches[rnd_below(&c->rng, 5)]);
	default:
		return ST_BAD;
	}
}

static void *
mix_run(void *arg)
{
	struct conn	*c = arg;
	long		 appends = 0;
	double		 t0, t1;
	enum op		 op;
	enum status	 st;
	int		 ok, ncmd;

	ok = conn_login(c, conf.first_user + c->id % conf.users, 1) == 0;
	pthread_mutex_lock(&counters.lock);
	if (ok)
		counters.ready++;
	else
		counters.failed++;
	pthread_mutex_unlock(&counters.lock);
	pthread_barrier_wait(&start_barrier);
	pthread_mutex_lock(&counters.lock);
	if (start_time == 0) {
		start_time = load_now();
		stop_time = start_time + conf.duration;
	}
	pthread_mutex_unlock(&counters.lock);
	while (ok) {
		op = pick_op(c);
		t0 = load_now();
		if (t0 >= stop_time)
			break;
		st = run_op(c, op, &appends, &ncmd);
		t1 = load_now();
		if (st == ST_BROKEN) {
			load_note(c->id, "%s: %s", ops[op].name,
			    strerror(errno));
			pthread_mutex_lock(&counters.lock);
			counters.errors++;
			pthread_mutex_unlock(&counters.lock);
			conn_close(c);
			if (t1 >= stop_time || conn_login(c, c->user, 1) == -1)
				break;
			continue;
		}
		if (t1 > stop_time)
			break;
		record(op, st, t1 - t0);
		pthread_mutex_lock(&counters.lock);
		counters.commands += ncmd;
		pthread_mutex_unlock(&counters.lock);
	}
	pthread_mutex_lock(&counters.lock);
	counters.bytes += c->literal_bytes;
	pthread_mutex_unlock(&counters.lock);
	conn_logout(c);
	return NULL;
}

static double
percentile(const struct opstats *o, double q)
{
	long	i;

	i = load_slot(o->lat, IL_BUCKETS, o->ok, q);
	return pow(IL_BUCKET_BASE, i < IL_BUCKETS ? i + 0.5 : IL_BUCKETS) /
	    1000.0;
}

/* -m name=weight,...: the named operations' weights, the rest 0. */
static void
set_mix(char *spec)
{
	char	*item, *eq;
	int	 i;

	for (i = 0; i < OP_COUNT; i++)
		ops[i].weight = 0;
	while ((item = strsep(&spec, ",")) != NULL) {
		if ((eq = strchr(item, '=')) == NULL)
			usage();
		*eq++ = '\0';
		for (i = 0; i < OP_COUNT; i++)
			if (strcmp(item, ops[i].name) == 0)
				break;
		if (i == OP_COUNT) {
			fprintf(stderr, "imapload: no operation %s\n", item);
			exit(2);
		}
		ops[i].weight = number(eq, 0, 100, "weight");
	}
}

static void *
conn_arg(int i)
{
	return conn_new(i);
}

static void *
no_arg(int i)
{
	(void)i;
	return NULL;
}

static int
mix(void)
{
	long long	 okops = 0, no = 0, bad = 0;
	int		 i;

	load_threads(conf.sessions, mix_run, conn_arg, &start_barrier);
	for (i = 0; i < OP_COUNT; i++) {
		okops += counters.op[i].ok;
		no += counters.op[i].no;
		bad += counters.op[i].bad;
	}
	printf("sessions=%d ready=%ld seconds=%.3f ops=%lld ops_per_sec=%.1f "
	    "commands=%lld no=%lld bad=%lld errors=%lld literal_mb=%.1f",
	    conf.sessions, counters.ready, conf.duration, okops,
	    okops / conf.duration, counters.commands, no, bad,
	    counters.errors, counters.bytes / 1048576.0);
	for (i = 0; i < OP_COUNT; i++)
		printf(" %s=%lld %s_no=%lld %s_p50_ms=%.2f %s_p99_ms=%.2f",
		    ops[i].name, counters.op[i].ok, ops[i].name,
		    counters.op[i].no + counters.op[i].bad, ops[i].name,
		    counters.op[i].ok ? percentile(&counters.op[i], 0.5) : 0,
		    ops[i].name,
		    counters.op[i].ok ? percentile(&counters.op[i], 0.99) : 0);
	printf("\n");
	if (counters.first_error[0] != '\0')
		fprintf(stderr, "imapload: first problem: %s\n",
		    counters.first_error);
	return okops > 0 && counters.ready == conf.sessions ? 0 : 1;
}

/* --- preload ---------------------------------------------------------- */

static void *
preload_run(void *arg)
{
	struct conn	*c = arg;
	char		 flags[64], date[64], to[256];
	time_t		 when;
	long		 n;
	int		 u, failures = 0;
	size_t		 len;
	enum status	 st;

	for (u = conf.first_user; u < conf.first_user + conf.users; u++) {
		user_name(to, sizeof(to), conf.login_fmt, u);
		for (n = c->id; n < conf.count; n += conf.sessions) {
			if (c->fd == -1 && conn_login(c, u, 0) == -1) {
				if (++failures > 10)
					goto out;
				n -= conf.sessions;
				sleep(1);
				continue;
			}
			len = make_message(c->msg, u, n, to, flags,
			    sizeof(flags), date, sizeof(date), &when);
			st = append(c, flags, date, len);
			pthread_mutex_lock(&counters.lock);
			if (st == ST_OK)
				counters.appended++;
			else if (st != ST_BROKEN)
				counters.append_no++;
			else
				counters.errors++;
			pthread_mutex_unlock(&counters.lock);
			if (st == ST_BROKEN) {
				load_note(c->id, "APPEND: %s", strerror(errno));
				conn_close(c);
				if (++failures > 10)
					goto out;
			}
		}
		conn_logout(c);
	}
out:
	conn_logout(c);
	return NULL;
}

static int
preload(void)
{
	double	t0 = load_now(), secs;

	load_threads(conf.sessions, preload_run, conn_arg, &start_barrier);
	secs = load_now() - t0;
	printf("appended=%lld refused=%lld errors=%lld seconds=%.3f "
	    "per_sec=%.1f\n", counters.appended, counters.append_no,
	    counters.errors, secs, counters.appended / secs);
	if (counters.first_error[0] != '\0')
		fprintf(stderr, "imapload: first problem: %s\n",
		    counters.first_error);
	return counters.appended == conf.count * conf.users ? 0 : 1;
}

/* Maildir flag letters, in ASCII order, of APPEND flags. */
static void
maildir_flags(const char *flags, char *out)
{
	if (strstr(flags, "\\Flagged") != NULL)
		*out++ = 'F';
	if (strstr(flags, "\\Answered") != NULL)
		*out++ = 'R';
	if (strstr(flags, "\\Seen") != NULL)
		*out++ = 'S';
	*out = '\0';
}

static int
write_maildir(void)
{
	struct conn	*c = conn_new(0);
	struct timespec	 ts[2];
	char		 flags[64], date[64], to[256], dir[1024], path[1200];
	char		 letters[8], *at;
	const char	*sub[] = { "cur", "new", "tmp" };
	time_t		 when;
	size_t		 len;
	long		 n, written = 0;
	int		 u, i, fd;
	double		 t0 = load_now();

	for (u = conf.first_user; u < conf.first_user + conf.users; u++) {
		user_name(to, sizeof(to), conf.login_fmt, u);
		snprintf(dir, sizeof(dir), "%s/%s", conf.maildir, to);
		if ((at = strchr(dir + strlen(conf.maildir), '@')) != NULL)
			*at = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST)
			goto fail;
		for (i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "%s/%s", dir, sub[i]);
			if (mkdir(path, 0700) == -1 && errno != EEXIST)
				goto fail;
		}
		for (n = 0; n < conf.count; n++) {
			len = make_message(c->msg, u, n, to, flags,
			    sizeof(flags), date, sizeof(date), &when);
			maildir_flags(flags, letters);
			snprintf(path, sizeof(path), "%s/cur/%lld.M%ldP%d.bench"
			    ",S=%zu:2,%s", dir, (long long)when, n, (int)getpid(),
			    len, letters);
			if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL,
			    0600)) == -1)
				goto fail;
			if (write(fd, c->msg, len) != (ssize_t)len) {
				close(fd);
				goto fail;
			}
			ts[0].tv_sec = ts[1].tv_sec = when;
			ts[0].tv_nsec = ts[1].tv_nsec = 0;
			if (futimens(fd, ts) == -1 || close(fd) == -1)
				goto fail;
			written++;
		}
	}
	printf("written=%ld seconds=%.3f\n", written, load_now() - t0);
	return 0;
fail:
	fprintf(stderr, "imapload: %s: %s\n", path, strerror(errno));
	return 1;
}

static int
warm(void)
{
	struct conn	*c = conn_new(0);
	int		 u, rc = 0;
	double		 t0 = load_now();

	for (u = conf.first_user; u < conf.first_user + conf.users; u++) {
		if (conn_login(c, u, 1) == -1) {
			rc = 1;
			continue;
		}
		if (c->exists > 0 && (command(c, "FETCH 1:* (FLAGS)") != ST_OK ||
		    command(c, "FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
		    "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE "
		    "MESSAGE-ID)])") != ST_OK))
			rc = 1;
		printf("user=%d messages=%ld\n", u, c->exists);
		conn_logout(c);
	}
	printf("seconds=%.3f\n", load_now() - t0);
	if (counters.first_error[0] != '\0')
		fprintf(stderr, "imapload: first problem: %s\n",
		    counters.first_error);
	return rc;
}

/* --- idle sessions ------------------------------------------------------ */

static struct conn	**idle_conns;

static void *
idle_open(void *arg)
{
	struct conn	*c;
	long		 k;
	int		 ok;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&counters.lock);
		k = counters.next < conf.count ? counters.next++ : -1;
		pthread_mutex_unlock(&counters.lock);
		if (k == -1)
			return NULL;
		c = idle_conns[k];
		ok = 0;
		if (conn_login(c, conf.first_user + k % conf.users, 1) == 0) {
			next_tag(c);
			if (dprintf(c->fd, "%s IDLE\r\n", c->tag) > 0) {
				while (read_response(c) == 0) {
					if (c->line[0] == '+') {
						ok = 1;
						break;
					}
					if (tagged(c)) {
						load_note(c->id, "IDLE: %s",
						    c->line);
						break;
					}
				}
			}
			if (!ok)
				conn_close(c);
		}
		pthread_mutex_lock(&counters.lock);
		if (ok)
			counters.ready++;
		else
			counters.failed++;
		pthread_mutex_unlock(&counters.lock);
	}
}

/* A session is still open if its socket has no EOF or error pending. */
static int
idle_alive(struct conn *c)
{
	struct pollfd	pfd = { c->fd, POLLIN, 0 };
	char		buf[4096];
	ssize_t		r;

	if (c->fd == -1)
		return 0;
	if (poll(&pfd, 1, 0) <= 0)
		return 1;
	if (pfd.revents & (POLLERR | POLLNVAL))
		return 0;
	/* Untagged "* OK still here", EXISTS: fine; EOF is not. */
	while ((r = recv(c->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[r] = '\0';
		if (strstr(buf, "* BYE") != NULL)
			return 0;
	}
	return r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int
idle(void)
{
	char		 line[64];
	double		 t0 = load_now();
	long		 i, alive = 0;

	idle_conns = calloc(conf.count, sizeof(*idle_conns));
	if (idle_conns == NULL) {
		perror("imapload: calloc");
		return 1;
	}
	for (i = 0; i < conf.count; i++) {
		if ((idle_conns[i] = calloc(1, sizeof(struct conn))) == NULL) {
			perror("imapload: calloc");
			return 1;
		}
		idle_conns[i]->id = i;
		idle_conns[i]->fd = -1;
	}
	load_threads(conf.sessions, idle_open, no_arg, NULL);
	printf("idle_ready=%ld failed=%ld seconds=%.3f\n", counters.ready,
	    counters.failed, load_now() - t0);
	if (counters.first_error[0] != '\0')
		fprintf(stderr, "imapload: first problem: %s\n",
		    counters.first_error);
	fflush(stdout);
	fflush(stderr);
	(void)fgets(line, sizeof(line), stdin);
	for (i = 0; i < conf.count; i++)
		alive += idle_alive(idle_conns[i]);
	printf("idle_alive=%ld\n", alive);
	for (i = 0; i < conf.count; i++)
		conn_close(idle_conns[i]);
	return counters.ready == conf.count && alive == conf.count ? 0 : 1;
}

/* --- search ------------------------------------------------------------- */

static int
cmp_double(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
search(void)
{
	struct conn	*c = conn_new(0);
	double		*ms, t0, first;
	long		 hits = 0;
	int		 i, r, rc = 0;

	if ((ms = calloc(conf.runs, sizeof(*ms))) == NULL)
		return 1;
	if (conn_login(c, conf.first_user, 1) == -1) {
		fprintf(stderr, "imapload: %s\n", counters.first_error);
		return 1;
	}
	printf("messages=%ld\n", c->exists);
	for (i = 0; i < conf.nsearches; i++) {
		for (r = 0; r < conf.runs; r++) {
			c->search_hits = 0;
			t0 = load_now();
			if (command(c, "SEARCH %s", conf.searches[i]) !=
			    ST_OK) {
				fprintf(stderr, "imapload: SEARCH %s: %s\n",
				    conf.searches[i], c->line);
				rc = 1;
				break;
			}
			ms[r] = (load_now() - t0) * 1000;
			hits = c->search_hits;
		}
		if (r < conf.runs)
			continue;
		first = ms[0];
		qsort(ms, conf.runs, sizeof(*ms), cmp_double);
		printf("search=%d matches=%ld first_ms=%.2f median_ms=%.2f "
		    "min_ms=%.2f max_ms=%.2f\n", i, hits, first,
		    ms[conf.runs / 2], ms[0], ms[conf.runs - 1]);
	}
	conn_logout(c);
	return rc;
}

static int
probe(void)
{
	struct conn	*c = conn_new(0);

	if ((c->fd = load_probe_connect(&conf.addr)) == -1)
		return 1;
	if (read_response(c) == -1 || strncasecmp(c->line, "* OK", 4) != 0) {
		printf("no * OK greeting: %s\n", c->linelen ? c->line :
		    strerror(errno));
		return 1;
	}
	printf("%s\n", c->line);
	conn_logout(c);
	return 0;
}

int
main(int argc, char *argv[])
{
	const char	*host = "127.0.0.1";
	int		 ch, port = 0, sum, i;

	conf.mode = MODE_MIX;
	conf.sessions = 10;
	conf.duration = 20;
	conf.users = 10;
	conf.runs = 10;
	conf.login_fmt = "user%d@bench.test";
	conf.pass_fmt = "bench-password-%d";
	while ((ch = getopt(argc, argv, "A:c:I:l:m:Mo:p:Pr:S:t:u:vW:w:X")) != -1) {
		switch (ch) {
		case 'A':
			conf.mode = MODE_PRELOAD;
			conf.count = number(optarg, 1, 10000000, "count");
			break;
		case 'c':
			conf.sessions = number(optarg, 1, IL_MAX_SESSIONS,
			    "sessions");
			break;
		case 'I':
			conf.mode = MODE_IDLE;
			conf.count = number(optarg, 1, IL_MAX_SESSIONS,
			    "sessions");
			break;
		case 'l':
			conf.login_fmt = optarg;
			break;
		case 'm':
			set_mix(optarg);
			break;
		case 'M':
			conf.mode = MODE_MIX;
			break;
		case 'o':
			conf.first_user = number(optarg, 0, 1000000, "user");
			break;
		case 'p':
			port = number(optarg, 1, 65535, "port");
			break;
		case 'P':
			conf.mode = MODE_PROBE;
			break;
		case 'r':
			conf.runs = number(optarg, 1, 10000, "runs");
			break;
		case 'S':
			conf.mode = MODE_SEARCH;
			if (conf.nsearches == IL_MAX_SEARCHES)
				usage();
			conf.searches[conf.nsearches++] = optarg;
			break;
		case 't':
			conf.duration = number(optarg, 1, 86400, "seconds");
			break;
		case 'u':
			conf.users = number(optarg, 1, 100000, "users");
			break;
		case 'v':
			load_errors.verbose = 1;
			break;
		case 'W':
			conf.mode = MODE_MAILDIR;
			conf.count = number(optarg, 1, 10000000, "count");
			break;
		case 'w':
			conf.pass_fmt = optarg;
			break;
		case 'X':
			conf.mode = MODE_WARM;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (conf.mode == MODE_MAILDIR) {
		if (argc != 1)
			usage();
		conf.maildir = argv[0];
		return write_maildir();
	}
	if (argc > 1 || port == 0)
		usage();
	if (argc == 1)
		host = argv[0];
	for (sum = 0, i = 0; i < OP_COUNT; i++)
		sum += ops[i].weight;
	if (sum != 100) {
		fprintf(stderr, "imapload: the mix sums to %d%%\n", sum);
		return 2;
	}
	load_addr(&conf.addr, host, port);
	signal(SIGPIPE, SIG_IGN);
	switch (conf.mode) {
	case MODE_PROBE:
		return probe();
	case MODE_PRELOAD:
		return preload();
	case MODE_IDLE:
		return idle();
	case MODE_SEARCH:
		return search();
	case MODE_WARM:
		return warm();
	default:
		return mix();
	}
}
