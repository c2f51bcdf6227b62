/*
 * smtpload: an SMTP load generator for the peer benchmark.
 *
 * N threads each keep one SMTP session open (EHLO once) and send
 * messages of a fixed size with MAIL, RCPT and DATA, one command at a
 * time, until a shared message count or a duration is used up.  Every
 * session is opened first and the clock starts once all of them are
 * open (or failed to), so a server slow to accept a burst of
 * connections is measured at its steady rate; the slowest open is
 * reported apart.  Only a
 * message answered 250 after its final dot counts as accepted.  A
 * session the server closes or breaks is reopened.  At the end one
 * line of key=value pairs goes to stdout for the bench script.
 *
 * With -P it only checks that the server greets with 220 and quits:
 * exit 0 if it does, 1 otherwise.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
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

#define SMTPLOAD_MAX_SESSIONS	1000
#define SMTPLOAD_MAX_SIZE	(64 * 1024 * 1024)
#define SMTPLOAD_MIN_SIZE	512
#define SMTPLOAD_MAX_USERS	100000
#define SMTPLOAD_REPLY_MAX	4096	/* one reply line, RFC 5321 says 512 */
#define SMTPLOAD_REPLY_LINES	100	/* lines in one multi-line reply */
#define SMTPLOAD_TIMEOUT	120	/* seconds without a reply */
#define SMTPLOAD_OPEN_TIMEOUT	10	/* for the banner, then open again */
#define SMTPLOAD_BODY_LINE	76	/* filler line length, without CRLF */
#define SMTPLOAD_MAX_RECONNECT	50	/* failures in a row, per session */
#define SMTPLOAD_MAX_TRIES	3	/* new sessions for one message */
#define SMTPLOAD_LATENCY_SLOTS	4096	/* in ms, for percentiles */

struct config {
	struct sockaddr_in	 addr;
	int			 sessions;
	long long		 count;		/* 0: use duration */
	double			 duration;
	size_t			 size;
	int			 users;
	const char		*domain;
	const char		*from;
	const char		*helo;
};

struct counters {
	pthread_mutex_t		 lock;
	long long		 claimed;	/* messages handed out */
	long long		 accepted;
	long long		 rejected;	/* 4xx/5xx after DATA */
	long long		 refused;	/* 4xx/5xx before DATA */
	long long		 errors;	/* broken sessions */
	long long		 reconnects;
	int			 ready;		/* sessions past their open */
	long long		 lat[SMTPLOAD_LATENCY_SLOTS];
	double			 lat_sum;
	double			 open_max;	/* slowest connect + banner */
	char			 first_error[256];
};

struct session {
	int			 id;
	int			 fd;
	char			 buf[SMTPLOAD_REPLY_MAX * 2];
	size_t			 len;	/* bytes in buf */
	size_t			 pos;	/* next unread byte */
	char			 line[SMTPLOAD_REPLY_MAX];
	long long		 seq;
};

static struct config	 conf;
static struct counters	 counters = { .lock = PTHREAD_MUTEX_INITIALIZER };
static char		*filler;	/* body lines shared by every message */
static size_t		 filler_len;
static double		 start_time;
static pthread_barrier_t start_barrier;	/* every session open */
static struct session	*sessions;
const char		*load_name = "smtpload";
struct load_errors	 load_errors = {
	&counters.lock, counters.first_error, sizeof(counters.first_error),
	200, 0
};

/* Sizes and counts may say k or M. */
static long long
number(const char *s, long long min, long long max, const char *what)
{
	return load_number(s, min, max, what, 1);
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtpload [-Pv] [-c sessions] [-d domain] "
	    "[-f from] [-n count | -t seconds]\n"
	    "                [-s size] [-u users] -p port [host]\n");
	exit(2);
}


/* Reads one CRLF-terminated line into s->line; -1 on EOF or error. */
static int
read_line(struct session *s)
{
	size_t	 i, n;
	ssize_t	 r;
	char	*nl;

	for (;;) {
		nl = memchr(s->buf + s->pos, '\n', s->len - s->pos);
		if (nl != NULL) {
			n = nl - (s->buf + s->pos);
			if (n > 0 && s->buf[s->pos + n - 1] == '\r')
				n--;
			if (n >= sizeof(s->line))
				n = sizeof(s->line) - 1;
			memcpy(s->line, s->buf + s->pos, n);
			s->line[n] = '\0';
			s->pos = (nl - s->buf) + 1;
			return 0;
		}
		if (s->pos > 0) {
			memmove(s->buf, s->buf + s->pos, s->len - s->pos);
			s->len -= s->pos;
			s->pos = 0;
		}
		if (s->len == sizeof(s->buf)) {
			errno = EMSGSIZE;
			return -1;	/* a line longer than we allow */
		}
		r = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return -1;
		}
		s->len += r;
		for (i = 0; i < s->len; i++)
			if (s->buf[i] == '\0')
				s->buf[i] = '?';
	}
}

/*
 * Reads a whole (maybe multi-line) reply and returns its code, or -1
 * if the session broke or the reply is not SMTP.
 */
static int
read_reply(struct session *s)
{
	int	code, lines;

	for (lines = 0; lines < SMTPLOAD_REPLY_LINES; lines++) {
		if (read_line(s) == -1)
			return -1;
		if (strlen(s->line) < 3 || s->line[0] < '1' ||
		    s->line[0] > '5' || s->line[1] < '0' || s->line[1] > '9' ||
		    s->line[2] < '0' || s->line[2] > '9' ||
		    (s->line[3] != '\0' && s->line[3] != ' ' &&
		    s->line[3] != '-')) {
			errno = EPROTO;
			return -1;
		}
		code = (s->line[0] - '0') * 100 + (s->line[1] - '0') * 10 +
		    (s->line[2] - '0');
		if (s->line[3] != '-')
			return code;
	}
	errno = EPROTO;
	return -1;
}

static int
command(struct session *s, const char *fmt, ...)
{
	char	cmd[1024];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd) - 2)
		return -1;
	memcpy(cmd + n, "\r\n", 3);
	if (load_write_all(s->fd, cmd, n + 2) == -1)
		return -1;
	return read_reply(s);
}

static void
session_close(struct session *s)
{
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
	s->len = s->pos = 0;
}

/*
 * A connection the server's full listen queue dropped after the
 * handshake never gets its banner: give up on it sooner than on a
 * reply and open another.
 */
static int
session_open(struct session *s)
{
	struct timeval	 tv = { SMTPLOAD_TIMEOUT, 0 };
	struct timeval	 open_tv = { SMTPLOAD_OPEN_TIMEOUT, 0 };
	double		 t0 = load_now();
	const char	*failed;
	int		 code;

	s->len = s->pos = 0;
	if ((s->fd = load_connect(&conf.addr, SMTPLOAD_TIMEOUT,
	    &failed)) == -1) {
		load_note(s->id, "%s: %s", failed, strerror(errno));
		return -1;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &open_tv, sizeof(open_tv));
	if ((code = read_reply(s)) != 220) {
		load_note(s->id, "banner: %s", code == -1 ? strerror(errno) :
		    s->line);
		session_close(s);
		return -1;
	}
	setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	pthread_mutex_lock(&counters.lock);
	if (load_now() - t0 > counters.open_max)
		counters.open_max = load_now() - t0;
	pthread_mutex_unlock(&counters.lock);
	if ((code = command(s, "EHLO %s", conf.helo)) != 250) {
		load_note(s->id, "EHLO: %s", code == -1 ? strerror(errno) :
		    s->line);
		session_close(s);
		return -1;
	}
	return 0;
}

static long long
claim(void)
{
	long long	seq = -1;

	pthread_mutex_lock(&counters.lock);
	if (conf.count > 0) {
		if (counters.claimed < conf.count)
			seq = counters.claimed++;
	} else if (load_now() - start_time < conf.duration)
		seq = counters.claimed++;
	pthread_mutex_unlock(&counters.lock);
	return seq;
}

/* Gives back a message that was never accepted nor refused. */
static void
unclaim(void)
{
	pthread_mutex_lock(&counters.lock);
	counters.claimed--;
	pthread_mutex_unlock(&counters.lock);
}

static void
count(long long *what, double latency)
{
	long	ms;

	pthread_mutex_lock(&counters.lock);
	(*what)++;
	if (what == &counters.accepted) {
		ms = (long)(latency * 1000);
		if (ms >= SMTPLOAD_LATENCY_SLOTS)
			ms = SMTPLOAD_LATENCY_SLOTS - 1;
		counters.lat[ms]++;
		counters.lat_sum += latency;
	}
	pthread_mutex_unlock(&counters.lock);
}

enum send_result {
	SEND_DONE,	/* accepted or refused for good */
	SEND_AGAIN,	/* 4xx before DATA: retry in a new session */
	SEND_BROKEN	/* the session broke; the message is lost */
};

/*
 * Sends message seq.  A temporary refusal before DATA (a per-session
 * message limit, a busy server) is what a real client answers by
 * opening a new session, so the message is retried in one.
 */
static enum send_result
send_message(struct session *s, long long seq)
{
	char	 hdr[1024], rcpt[256];
	double	 t0;
	int	 code, n;

	snprintf(rcpt, sizeof(rcpt), "user%lld@%s", seq % conf.users,
	    conf.domain);
	t0 = load_now();
	if ((code = command(s, "MAIL FROM:<%s>", conf.from)) == -1)
		return SEND_BROKEN;
	if (code != 250) {
		load_note(s->id, "MAIL: %s", s->line);
		goto refused;
	}
	if ((code = command(s, "RCPT TO:<%s>", rcpt)) == -1)
		return SEND_BROKEN;
	if (code != 250 && code != 251) {
		load_note(s->id, "RCPT: %s", s->line);
		goto refused;
	}
	if ((code = command(s, "DATA")) == -1)
		return SEND_BROKEN;
	if (code != 354) {
		load_note(s->id, "DATA: %s", s->line);
		goto refused;
	}
	n = snprintf(hdr, sizeof(hdr),
	    "From: Bench <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: bench message %lld\r\n"
	    "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
	    "Message-ID: <bench.%lld.%d@smtpload.bench.test>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n", conf.from, rcpt, seq, seq, (int)getpid());
	if (load_write_all(s->fd, hdr, n) == -1 ||
	    load_write_all(s->fd, filler, filler_len) == -1 ||
	    load_write_all(s->fd, ".\r\n", 3) == -1)
		return SEND_BROKEN;
	if ((code = read_reply(s)) == -1)
		return SEND_BROKEN;
	if (code == 250) {
		count(&counters.accepted, load_now() - t0);
		return SEND_DONE;
	}
	load_note(s->id, "end of DATA: %s", s->line);
	count(&counters.rejected, 0);
	return SEND_DONE;
refused:
	if (code >= 400 && code < 500)
		return SEND_AGAIN;
	count(&counters.refused, 0);
	if (command(s, "RSET") != 250)
		return SEND_BROKEN;
	return SEND_DONE;
}

static void *
session_run(void *arg)
{
	struct session	*s = arg;
	long long	 seq = -1;
	int		 failures = 0, tries = 0;

	s->fd = -1;
	while (session_open(s) == -1) {
		count(&counters.errors, 0);
		if (++failures > SMTPLOAD_MAX_RECONNECT)
			break;
		usleep(100000);
	}
	/* The last session to be ready starts the clock. */
	pthread_mutex_lock(&counters.lock);
	if (++counters.ready == conf.sessions)
		start_time = load_now();
	pthread_mutex_unlock(&counters.lock);
	pthread_barrier_wait(&start_barrier);
	for (;;) {
		if (seq == -1) {
			if ((seq = claim()) == -1)
				break;
			tries = 0;
		}
		if (s->fd == -1 && session_open(s) == -1) {
			count(&counters.errors, 0);
			if (++failures > SMTPLOAD_MAX_RECONNECT) {
				unclaim();
				break;
			}
			usleep(100000);
			continue;
		}
		switch (send_message(s, seq)) {
		case SEND_DONE:
			failures = 0;
			seq = -1;
			break;
		case SEND_AGAIN:
			count(&counters.reconnects, 0);
			command(s, "QUIT");
			session_close(s);
			if (++tries > SMTPLOAD_MAX_TRIES) {
				count(&counters.refused, 0);
				seq = -1;
			}
			break;
		case SEND_BROKEN:
			load_note(s->id, "message %lld: %s%s%s", seq,
			    strerror(errno), s->line[0] ? ", last reply: " : "",
			    s->line);
			session_close(s);
			count(&counters.errors, 0);
			/* It may or may not be queued: not sent again. */
			seq = -1;
			if (++failures > SMTPLOAD_MAX_RECONNECT)
				goto done;
			break;
		}
	}
done:
	if (s->fd != -1) {
		command(s, "QUIT");
		session_close(s);
	}
	return NULL;
}

static void
make_filler(void)
{
	static const char pangram[] =
	    "the quick brown fox jumps over the lazy dog, bench line";
	size_t	 i, len;
	char	*p, num[32];

	/* Headers take about 300 bytes; the rest is 78-byte lines. */
	len = conf.size > 400 ? conf.size - 300 : 100;
	len -= len % (SMTPLOAD_BODY_LINE + 2);
	if ((filler = malloc(len + 1)) == NULL) {
		perror("smtpload: malloc");
		exit(1);
	}
	p = filler;
	for (i = 0; i + SMTPLOAD_BODY_LINE + 2 <= len;
	    i += SMTPLOAD_BODY_LINE + 2) {
		memset(p, ' ', SMTPLOAD_BODY_LINE);
		memcpy(p, pangram, sizeof(pangram) - 1);
		snprintf(num, sizeof(num), "%08zu", i / (SMTPLOAD_BODY_LINE + 2));
		memcpy(p + SMTPLOAD_BODY_LINE - 8, num, 8);
		memcpy(p + SMTPLOAD_BODY_LINE, "\r\n", 2);
		p += SMTPLOAD_BODY_LINE + 2;
	}
	filler_len = p - filler;
}

static long
percentile(long long total, double q)
{
	long	i;

	i = load_slot(counters.lat, SMTPLOAD_LATENCY_SLOTS, total, q);
	return i < SMTPLOAD_LATENCY_SLOTS ? i : SMTPLOAD_LATENCY_SLOTS - 1;
}

static int
probe(void)
{
	struct session	s;
	int		code;

	memset(&s, 0, sizeof(s));
	if ((s.fd = load_probe_connect(&conf.addr)) == -1)
		return 1;
	code = read_reply(&s);
	if (code != 220) {
		printf("no 220 banner: %s\n", code == -1 ? strerror(errno) :
		    s.line);
		return 1;
	}
	printf("%s\n", s.line);
	command(&s, "QUIT");
	close(s.fd);
	return 0;
}

static void *
session_arg(int i)
{
	sessions[i].id = i;
	return &sessions[i];
}

int
main(int argc, char *argv[])
{
	double		 elapsed;
	const char	*host = "127.0.0.1";
	int		 ch, port = 0, probe_only = 0;

	conf.sessions = 10;
	conf.count = 1000;
	conf.size = 4096;
	conf.users = 10;
	conf.domain = "bench.test";
	conf.from = "sender@load.bench.test";
	conf.helo = "load.bench.test";
	while ((ch = getopt(argc, argv, "c:d:f:n:p:Ps:t:u:v")) != -1) {
		switch (ch) {
		case 'c':
			conf.sessions = number(optarg, 1,
			    SMTPLOAD_MAX_SESSIONS, "sessions");
			break;
		case 'd':
			conf.domain = optarg;
			break;
		case 'f':
			conf.from = optarg;
			break;
		case 'n':
			conf.count = number(optarg, 1, 1000000000, "count");
			break;
		case 'p':
			port = number(optarg, 1, 65535, "port");
			break;
		case 'P':
			probe_only = 1;
			break;
		case 's':
			conf.size = number(optarg, SMTPLOAD_MIN_SIZE,
			    SMTPLOAD_MAX_SIZE, "size");
			break;
		case 't':
			conf.duration = number(optarg, 1, 86400, "seconds");
			conf.count = 0;
			break;
		case 'u':
			conf.users = number(optarg, 1, SMTPLOAD_MAX_USERS,
			    "users");
			break;
		case 'v':
			load_errors.verbose = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 1 || port == 0)
		usage();
	if (argc == 1)
		host = argv[0];
	if (strlen(conf.domain) > 200 || strlen(conf.from) > 200) {
		fprintf(stderr, "smtpload: domain or sender too long\n");
		return 2;
	}
	load_addr(&conf.addr, host, port);
	signal(SIGPIPE, SIG_IGN);
	if (probe_only)
		return probe();

	make_filler();
	if ((sessions = calloc(conf.sessions, sizeof(*sessions))) == NULL) {
		perror("smtpload: calloc");
		return 1;
	}
	start_time = load_now();
	load_threads(conf.sessions, session_run, session_arg, &start_barrier);
	elapsed = load_now() - start_time;

	printf("sessions=%d size=%zu sent=%lld accepted=%lld rejected=%lld "
	    "refused=%lld errors=%lld reconnects=%lld seconds=%.3f msgs_per_sec=%.1f "
	    "lat_avg_ms=%.1f lat_p50_ms=%ld lat_p99_ms=%ld open_max_ms=%ld\n",
	    conf.sessions, conf.size, counters.claimed, counters.accepted,
	    counters.rejected, counters.refused, counters.errors,
	    counters.reconnects, elapsed,
	    elapsed > 0 ? counters.accepted / elapsed : 0.0,
	    counters.accepted ? counters.lat_sum / counters.accepted *
	    1000 : 0.0,
	    counters.accepted ? percentile(counters.accepted, 0.5) : 0,
	    counters.accepted ? percentile(counters.accepted, 0.99) : 0,
	    (long)(counters.open_max * 1000));
	if (counters.first_error[0] != '\0')
		fprintf(stderr, "smtpload: first problem: %s\n",
		    counters.first_error);
	return counters.accepted > 0 ? 0 : 1;
}
