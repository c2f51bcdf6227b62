/*
 * SMTP sessions (RFC 5321 with ESMTP): one state machine per client
 * connection, over lib/io.
 *
 * Commands are handled strictly in order.  Whenever a command needs an
 * answer from storaged the session stops reading (io_pause) until the
 * answer is in, so pipelined commands queue up in the input buffer and
 * their replies go out in order.  Message data is read from the raw
 * input buffer, never line by line, so that a bare CR or LF is seen
 * for what it is (smtp_data_scan() in smtp_parse.c).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "authlimit.h"
#include "envelope.h"
#include "io.h"
#include "log.h"
#include "proc.h"
#include "smtp_parse.h"
#include "smtpd.h"

#define SMTP_AUTH_DECODED_MAX	2048	/* a decoded AUTH PLAIN blob */
#define SMTP_LOG_USER_MAX	64	/* bytes of a user name in logs */
#define LIMIT_SMTP_LINE_MAX	(64 * 1024)	/* smtp-line-length's top */

enum smtp_state {
	SMTP_TLS_HANDSHAKE,	/* implicit TLS, before the greeting */
	SMTP_STARTTLS,		/* handshake after STARTTLS */
	SMTP_CMD,
	SMTP_AUTH_PLAIN,	/* waiting for the response to "334 " */
	SMTP_AUTH_USER,		/* LOGIN: the user name */
	SMTP_AUTH_PASS,		/* LOGIN: the password */
	SMTP_DATA,		/* reading message data */
	SMTP_BDAT,		/* reading a chunk */
	SMTP_QUIT		/* the last reply is going out */
};

/* What the session waits for; while it waits it reads nothing. */
enum smtp_wait {
	WAIT_NONE,
	WAIT_AUTH,
	WAIT_AUTH_DELAY,	/* a failure, answered after a delay */
	WAIT_SENDER,
	WAIT_RCPT,
	WAIT_SPOOL,
	WAIT_COMMIT
};

#define SF_HELO		0x0001
#define SF_EHLO		0x0002
#define SF_TLS		0x0004
#define SF_AUTHED	0x0008
#define SF_MAIL		0x0010	/* a transaction is open */
#define SF_BDAT		0x0020	/* it uses BDAT */
#define SF_CLOSE	0x0040	/* free when the current event is done */
#define SF_DISCARD	0x0080	/* this BDAT chunk goes nowhere */
#define SF_LONGLINE	0x0100	/* skipping the rest of a long line */

/* Data errors beyond smtp_parse.h's SMTP_DATA_*. */
#define DATA_TOO_BIG	0x0100
#define DATA_WRITE	0x0200

struct smtp_rcpt {
	TAILQ_ENTRY(smtp_rcpt)	 entry;
	char			 addr[SMTP_PATH_MAX + 1];
	enum rcpt_kind		 kind;
	int			 notify;
	char			 orcpt[SMTP_ORCPT_MAX + 1];
};

struct smtp_client {
	RB_ENTRY(smtp_client)	 entry;
	char			 addr[INET6_ADDRSTRLEN];
	unsigned int		 sessions;
};

struct smtp_session {
	RB_ENTRY(smtp_session)	 entry;
	uint32_t		 id;
	struct smtpd_listener	*sl;
	struct io		*io;
	struct smtp_client	*client;
	char			 addr[INET6_ADDRSTRLEN];
	int			 family;
	enum smtp_state		 state;
	enum smtp_wait		 wait;
	int			 flags;
	int			 badcmds;
	char			 helo[SMTP_DOMAIN_MAX + 1];
	char			 account[ADDRESS_MAX + 1];
	char			 auth_user[SMTP_LOG_USER_MAX + 1];
	struct event		 ev_auth;	/* the failure delay */
	struct event		 ev_data;	/* data-timeout */

	/* The transaction. */
	struct smtp_mail_args	 mail;
	struct smtp_rcpt_args	 rcpt;		/* the one being looked up */
	TAILQ_HEAD(, smtp_rcpt)	 rcpts;
	int			 nrcpts;
	uint64_t		 spool;		/* 0: none */
	int			 spoolfd;
	uint64_t		 datasize;
	int			 data_errors;
	struct smtp_data_scan	 scan;
	int			 binary;	/* BODY=BINARYMIME */
	uint64_t		 chunk_size;
	uint64_t		 chunk_left;
	int			 chunk_last;
	const char		*discard_reply;
};

RB_HEAD(smtp_sessions, smtp_session);
RB_HEAD(smtp_clients, smtp_client);

static int
smtp_session_cmp(struct smtp_session *a, struct smtp_session *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

static int
smtp_client_cmp(struct smtp_client *a, struct smtp_client *b)
{
	return strcmp(a->addr, b->addr);
}

RB_GENERATE(smtp_sessions, smtp_session, entry, smtp_session_cmp)
RB_GENERATE(smtp_clients, smtp_client, entry, smtp_client_cmp)

static struct smtp_sessions	 sessions = RB_INITIALIZER(&sessions);
static struct smtp_clients	 clients = RB_INITIALIZER(&clients);
static unsigned int		 nsessions;
static uint32_t			 next_id;
static unsigned char		 scratch[IO_READ_SIZE + SMTP_DATA_SCAN_SLACK];

static void	smtp_io(struct io *, int, void *);
static void	smtp_input(struct smtp_session *);
static void	smtp_release(struct smtp_session *);
static void	smtp_close(struct smtp_session *);
static void	smtp_tx_reset(struct smtp_session *);
static void	smtp_data_end(struct smtp_session *);

static long long
smtp_limit(enum limit_id id)
{
	return proc_conf->limits[id];
}

/* Monotonic seconds: the sandbox allows clock_gettime, not time(2). */
static time_t
smtp_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return ts.tv_sec;
}

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((__format__ (printf, 2, 3)));

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	if (s->flags & SF_CLOSE)
		return;
	va_start(ap, fmt);
	r = io_vprintf(s->io, fmt, ap);
	va_end(ap);
	if (r == -1 || io_write(s->io, "\r\n", 2) == -1) {
		log_warnx("session %u from %s: %s", s->id, s->addr,
		    io_error(s->io));
		smtp_close(s);
	}
}

/* The reply goes out, then the connection closes. */
static void
smtp_quit(struct smtp_session *s)
{
	if (s->flags & SF_CLOSE)
		return;
	s->state = SMTP_QUIT;
	io_set_write(s->io);
	if (io_queued(s->io) == 0)
		smtp_close(s);
}

/*
 * A command that is not acceptable at all.  Past bad-commands of them
 * the session is closed.
 */
static void
smtp_bad(struct smtp_session *s, const char *reply)
{
	if (++s->badcmds > smtp_limit(LIMIT_BAD_COMMANDS)) {
		log_info("session %u from %s: too many bad commands", s->id,
		    s->addr);
		smtp_reply(s, "421 4.7.0 %s Too many bad commands, closing "
		    "connection", proc_conf->hostname);
		smtp_quit(s);
		return;
	}
	smtp_reply(s, "%s", reply);
}

/* A user name as the client sent it, fit for one log line. */
static void
smtp_log_user(char *dst, size_t dstlen, const char *src)
{
	size_t	 i;

	for (i = 0; src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}

static struct smtp_session *
smtp_lookup(uint32_t id)
{
	struct smtp_session	 key;

	key.id = id;
	return RB_FIND(smtp_sessions, &sessions, &key);
}

static void
smtp_wait(struct smtp_session *s, enum smtp_wait what)
{
	s->wait = what;
	io_pause(s->io, IO_IN);
}

static void
smtp_unwait(struct smtp_session *s)
{
	s->wait = WAIT_NONE;
	io_resume(s->io, IO_IN);
}

/* Whether the session can go on after an answer came in for it. */
static void
smtp_continue(struct smtp_session *s)
{
	if (!(s->flags & SF_CLOSE))
		smtp_input(s);
	smtp_release(s);
}

static int
smtp_send_storaged(struct smtp_session *s, struct msg_out *m)
{
	if (proc_send(PROC_STORAGED, m) == -1) {
		log_warn("session %u: %s to storaged", s->id,
		    imsg_type_name(m->type));
		return -1;
	}
	return 0;
}

static void
smtp_greet(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP %s", proc_conf->hostname, SMTPD_NAME);
}

static struct smtp_client *
smtp_client_get(const char *addr)
{
	struct smtp_client	 key, *c;

	strlcpy(key.addr, addr, sizeof(key.addr));
	if ((c = RB_FIND(smtp_clients, &clients, &key)) != NULL)
		return c;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	strlcpy(c->addr, addr, sizeof(c->addr));
	RB_INSERT(smtp_clients, &clients, c);
	return c;
}

static void
smtp_client_put(struct smtp_client *c)
{
	if (c == NULL || --c->sessions > 0)
		return;
	RB_REMOVE(smtp_clients, &clients, c);
	free(c);
}

static void
smtp_addr(const struct sockaddr *sa, char *buf, size_t len, int *family)
{
	const struct sockaddr_in6	*sin6;
	struct in_addr			 in;

	*family = sa->sa_family;
	switch (sa->sa_family) {
	case AF_INET:
		if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->
		    sin_addr, buf, len) != NULL)
			return;
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&in, &sin6->sin6_addr.s6_addr[12], sizeof(in));
			*family = AF_INET;
			if (inet_ntop(AF_INET, &in, buf, len) != NULL)
				return;
		} else if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
		    len) != NULL)
			return;
		break;
	}
	strlcpy(buf, "unknown", len);
}

/* Refused before a session exists: one line, in clear when we can. */
static void
smtp_refuse(struct smtpd_listener *sl, int fd, const char *addr,
    const char *why)
{
	char	 line[HOSTNAME_MAX + 128];
	int	 n;

	log_info("refused a connection from %s: %s", addr, why);
	if (sl->l->kind != LISTEN_SUBMISSIONS) {
		n = snprintf(line, sizeof(line), "421 4.7.0 %s %s, try again "
		    "later\r\n", proc_conf->hostname, why);
		if (n > 0 && (size_t)n < sizeof(line))
			(void)write(fd, line, n);
	}
	close(fd);
}

void
smtp_session_accept(struct smtpd_listener *sl, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_session	*s;
	struct smtp_client	*c;
	char			 addr[INET6_ADDRSTRLEN];
	int			 family;

	smtp_addr(sa, addr, sizeof(addr), &family);
	if (nsessions >= smtp_limit(LIMIT_SESSIONS)) {
		smtp_refuse(sl, fd, addr, "Too many sessions");
		return;
	}
	if ((c = smtp_client_get(addr)) == NULL) {
		smtp_refuse(sl, fd, addr, "Out of memory");
		return;
	}
	if (c->sessions >= smtp_limit(LIMIT_SESSIONS_PER_CLIENT)) {
		smtp_refuse(sl, fd, addr, "Too many sessions from your "
		    "address");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->io = io_new()) == NULL) {
		free(s);
		if (c->sessions == 0) {
			c->sessions = 1;
			smtp_client_put(c);
		}
		smtp_refuse(sl, fd, addr, "Out of memory");
		return;
	}
	c->sessions++;
	nsessions++;
	s->client = c;
	s->sl = sl;
	s->spoolfd = -1;
	s->family = family;
	strlcpy(s->addr, addr, sizeof(s->addr));
	TAILQ_INIT(&s->rcpts);
	evtimer_set(&s->ev_auth, NULL, NULL);
	evtimer_set(&s->ev_data, NULL, NULL);
	do {
		s->id = ++next_id;
	} while (s->id == 0 || RB_INSERT(smtp_sessions, &sessions, s) != NULL);

	io_set_callback(s->io, smtp_io, s);
	(void)io_set_maxline(s->io, smtp_limit(LIMIT_SMTP_LINE));
	if (io_set_fd(s->io, fd) == -1) {
		log_warn("session %u: io_set_fd", s->id);
		close(fd);
		smtp_close(s);
		smtp_release(s);
		return;
	}
	io_set_timeout(s->io, smtp_limit(LIMIT_IDLE_TIMEOUT) * 1000);
	log_debug("session %u: connection from %s on %s %s port %u", s->id,
	    s->addr, listener_kind_names[sl->l->kind], sl->l->addr,
	    sl->l->port);

	if (sl->l->kind == LISTEN_SUBMISSIONS) {
		s->state = SMTP_TLS_HANDSHAKE;
		if (io_start_tls(s->io, sl->tls) == -1) {
			log_warnx("session %u: %s", s->id, io_error(s->io));
			smtp_close(s);
			smtp_release(s);
		}
		return;
	}
	s->state = SMTP_CMD;
	smtp_greet(s);
	smtp_release(s);
}

/* Ends the session at once; the memory goes in smtp_release(). */
static void
smtp_close(struct smtp_session *s)
{
	if (s->flags & SF_CLOSE)
		return;
	s->flags |= SF_CLOSE;
	if (s->wait == WAIT_AUTH)
		/* The answer will find no one: count it as a failure. */
		(void)authlimit_end(smtpd_authlimit(), s->addr, 0,
		    smtp_now());
	/* A spool file under commit is storaged's, not ours to drop. */
	if (s->wait == WAIT_COMMIT)
		s->spool = 0;
	smtp_tx_reset(s);
	evtimer_del(&s->ev_auth);
	evtimer_del(&s->ev_data);
	io_free(s->io);
	s->io = NULL;
	log_debug("session %u: closed", s->id);
}

static void
smtp_release(struct smtp_session *s)
{
	if (!(s->flags & SF_CLOSE))
		return;
	RB_REMOVE(smtp_sessions, &sessions, s);
	smtp_client_put(s->client);
	nsessions--;
	explicit_bzero(s, sizeof(*s));
	free(s);
	smtpd_accept_resume();
}

void
smtp_session_shutdown(void)
{
	struct smtp_session	*s, *next;

	RB_FOREACH_SAFE(s, smtp_sessions, &sessions, next) {
		smtp_close(s);
		smtp_release(s);
	}
}

/* Forgets the transaction; a spool file not yet committed is dropped. */
static void
smtp_tx_reset(struct smtp_session *s)
{
	struct smtp_rcpt	*r;
	struct msg_out		 m;

	if (s->spoolfd != -1) {
		close(s->spoolfd);
		s->spoolfd = -1;
	}
	if (s->spool != 0) {
		msg_create(&m, IMSG_STORE_SPOOL_ABORT, s->id, -1);
		msg_add_u64(&m, s->spool);
		(void)smtp_send_storaged(s, &m);
		s->spool = 0;
	}
	while ((r = TAILQ_FIRST(&s->rcpts)) != NULL) {
		TAILQ_REMOVE(&s->rcpts, r, entry);
		free(r);
	}
	s->nrcpts = 0;
	memset(&s->mail, 0, sizeof(s->mail));
	s->flags &= ~(SF_MAIL | SF_BDAT);
	s->datasize = 0;
	s->data_errors = 0;
	s->binary = 0;
	memset(&s->scan, 0, sizeof(s->scan));
	evtimer_del(&s->ev_data);
}

/* RFC 5321 4.1.4: a new EHLO, and STARTTLS, start from scratch. */
static void
smtp_reset_session(struct smtp_session *s)
{
	smtp_tx_reset(s);
	s->flags &= ~(SF_HELO | SF_EHLO);
	s->helo[0] = '\0';
}

static void
smtp_io(struct io *io, int event, void *arg)
{
	struct smtp_session	*s = arg;

	switch (event) {
	case IO_TLSREADY:
		s->flags |= SF_TLS;
		log_debug("session %u: TLS %s, %s", s->id,
		    tls_conn_version(io_tls(io)), tls_conn_cipher(io_tls(io)));
		if (s->state == SMTP_TLS_HANDSHAKE) {
			s->state = SMTP_CMD;
			smtp_greet(s);
		} else {
			/* RFC 3207 4.2: forget what was said in clear. */
			s->state = SMTP_CMD;
			smtp_reset_session(s);
			s->flags &= ~SF_AUTHED;
			s->account[0] = '\0';
		}
		smtp_input(s);
		break;
	case IO_DATAIN:
		smtp_input(s);
		break;
	case IO_LOWAT:
		if (s->state == SMTP_QUIT && io_queued(io) == 0)
			smtp_close(s);
		break;
	case IO_TIMEOUT:
		if (s->state == SMTP_TLS_HANDSHAKE ||
		    s->state == SMTP_STARTTLS || s->state == SMTP_QUIT) {
			smtp_close(s);
			break;
		}
		log_info("session %u from %s: idle timeout", s->id, s->addr);
		smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
		    proc_conf->hostname);
		smtp_quit(s);
		break;
	case IO_DISCONNECTED:
		log_debug("session %u: disconnected", s->id);
		smtp_close(s);
		break;
	case IO_ERROR:
	default:
		log_debug("session %u: %s", s->id, io_error(io));
		smtp_close(s);
		break;
	}
	smtp_release(s);
}

static void
smtp_data_timeout(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	log_info("session %u from %s: data timeout", s->id, s->addr);
	smtp_tx_reset(s);
	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
	    proc_conf->hostname);
	smtp_quit(s);
	smtp_release(s);
}

static void
smtp_data_timer_start(struct smtp_session *s)
{
	struct timeval	 tv;

	if (evtimer_pending(&s->ev_data, NULL))
		return;
	tv.tv_sec = smtp_limit(LIMIT_DATA_TIMEOUT);
	tv.tv_usec = 0;
	evtimer_set(&s->ev_data, smtp_data_timeout, s);
	evtimer_add(&s->ev_data, &tv);
}

/* --- the trace header and the spool file ---------------------------- */

static void
smtp_spool_write(struct smtp_session *s, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	ssize_t			 n;

	while (len > 0 && !(s->data_errors & DATA_WRITE)) {
		n = write(s->spoolfd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("session %u: spool %016llx write", s->id,
			    (unsigned long long)s->spool);
			s->data_errors |= DATA_WRITE;
			return;
		}
		p += n;
		len -= n;
	}
}

/* Message data: counted, and kept while nothing is wrong with it. */
static void
smtp_spool_add(struct smtp_session *s, const void *buf, size_t len)
{
	s->datasize += len;
	if (s->datasize > (uint64_t)smtp_limit(LIMIT_MESSAGE_SIZE))
		s->data_errors |= DATA_TOO_BIG;
	if (s->data_errors == 0 && len > 0)
		smtp_spool_write(s, buf, len);
}

static const char *
smtp_protocol(struct smtp_session *s)
{
	int	 tls = (s->flags & SF_TLS) != 0;
	int	 auth = (s->flags & SF_AUTHED) != 0;

	if (s->mail.smtputf8)
		return tls ? (auth ? "UTF8SMTPSA" : "UTF8SMTPS") :
		    (auth ? "UTF8SMTPA" : "UTF8SMTP");
	if (!(s->flags & SF_EHLO))
		return "SMTP";
	return tls ? (auth ? "ESMTPSA" : "ESMTPS") :
	    (auth ? "ESMTPA" : "ESMTP");
}

/* RFC 5322 3.3 date-time, from the zone read before the chroot. */
static void
smtp_date(char *buf, size_t len)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec	 ts;
	struct tm	 tm;
	long		 off;
	time_t		 t;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		fatal("clock_gettime");
	t = ts.tv_sec;
	if (localtime_r(&t, &tm) == NULL)
		gmtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

static void
smtp_trace_header(struct smtp_session *s)
{
	char		 hdr[2048], date[64], tlsinfo[256], forpart[300];
	struct tls	*tls;
	struct smtp_rcpt *r;
	int		 n;

	smtp_date(date, sizeof(date));
	tlsinfo[0] = '\0';
	if ((tls = io_tls(s->io)) != NULL)
		snprintf(tlsinfo, sizeof(tlsinfo), "\r\n\t(using %s with "
		    "cipher %s)", tls_conn_version(tls), tls_conn_cipher(tls));
	forpart[0] = '\0';
	if (s->nrcpts == 1 && (r = TAILQ_FIRST(&s->rcpts)) != NULL)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>", r->addr);
	n = snprintf(hdr, sizeof(hdr), "Received: from %s (%s%s])\r\n"
	    "\tby %s (%s) with %s id %016llx%s%s;\r\n\t%s\r\n",
	    s->helo, s->family == AF_INET6 ? "[IPv6:" : "[", s->addr,
	    proc_conf->hostname, SMTPD_NAME, smtp_protocol(s),
	    (unsigned long long)s->spool, tlsinfo, forpart, date);
	if (n < 0 || (size_t)n >= sizeof(hdr)) {
		s->data_errors |= DATA_WRITE;
		return;
	}
	smtp_spool_write(s, hdr, n);
}

/* --- the end of a message ------------------------------------------- */

static void
smtp_data_refuse(struct smtp_session *s, int errors)
{
	const char	*reply, *why;

	if (errors & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF |
	    SMTP_DATA_NUL)) {
		why = "bare CR, bare LF or NUL in the message";
		reply = "550 5.6.0 Message refused: bare CR, bare LF or NUL "
		    "in message data";
	} else if (errors & DATA_TOO_BIG) {
		why = "message too big";
		reply = "552 5.3.4 Message size exceeds fixed maximum "
		    "message size";
	} else if (errors & SMTP_DATA_LONG_LINE) {
		why = "line too long";
		reply = "500 5.5.2 Line too long";
	} else {
		why = "spool write failed";
		reply = "451 4.3.0 Error writing the message, try again "
		    "later";
	}
	log_info("session %u from %s: message refused: %s", s->id, s->addr,
	    why);
	smtp_tx_reset(s);
	smtp_reply(s, "%s", reply);
}

static void
smtp_data_end(struct smtp_session *s)
{
	struct smtp_rcpt	*r;
	struct msg_out		 m;
	int			 errors = s->data_errors | s->scan.errors;

	evtimer_del(&s->ev_data);
	io_set_timeout(s->io, smtp_limit(LIMIT_IDLE_TIMEOUT) * 1000);
	s->state = SMTP_CMD;
	if (errors) {
		smtp_data_refuse(s, errors);
		return;
	}
	/* storaged fsyncs it; our descriptor has done its job. */
	close(s->spoolfd);
	s->spoolfd = -1;
	TAILQ_FOREACH(r, &s->rcpts, entry) {
		msg_create(&m, IMSG_STORE_SPOOL_RCPT, s->id, -1);
		msg_add_u64(&m, s->spool);
		msg_add_string(&m, r->addr);
		msg_add_u8(&m, r->kind);
		msg_add_u32(&m, r->notify);
		msg_add_string(&m, r->orcpt);
		if (smtp_send_storaged(s, &m) == -1)
			goto fail;
	}
	msg_create(&m, IMSG_STORE_COMMIT, s->id, -1);
	msg_add_u64(&m, s->spool);
	msg_add_string(&m, s->mail.from);
	msg_add_u8(&m, s->mail.body);
	msg_add_u8(&m, s->mail.smtputf8);
	msg_add_u8(&m, s->mail.ret);
	msg_add_string(&m, s->mail.envid);
	msg_add_string(&m, (s->flags & SF_AUTHED) ? s->account : "");
	msg_add_string(&m, s->addr);
	msg_add_string(&m, s->helo);
	if (smtp_send_storaged(s, &m) == -1)
		goto fail;
	smtp_wait(s, WAIT_COMMIT);
	return;
 fail:
	smtp_tx_reset(s);
	smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
}

void
smtp_session_commit_result(uint32_t id, int ok, uint64_t qid,
    const char *err)
{
	struct smtp_session	*s;

	if ((s = smtp_lookup(id)) == NULL)
		return;
	if (s->wait != WAIT_COMMIT)
		fatalx("%s: session %u is not committing", __func__, id);
	/* Committed or not, the spool file is storaged's now. */
	s->spool = 0;
	if (ok) {
		log_info("session %u from %s: queued %016llx from=<%s> "
		    "size=%llu nrcpts=%d", s->id, s->addr,
		    (unsigned long long)qid, s->mail.from,
		    (unsigned long long)s->datasize, s->nrcpts);
		smtp_reply(s, "250 2.0.0 Ok: queued as %016llx",
		    (unsigned long long)qid);
	} else {
		log_warnx("session %u from %s: commit failed: %s", s->id,
		    s->addr, err);
		smtp_reply(s, "451 4.3.0 Error queueing the message, try "
		    "again later");
	}
	smtp_tx_reset(s);
	smtp_unwait(s);
	smtp_continue(s);
}

/* --- DATA and BDAT input ------------------------------------------- */

/* Returns 0 when it needs more input. */
static int
smtp_data_in(struct smtp_session *s)
{
	size_t	 avail, take, n, olen;

	if ((avail = io_datalen(s->io)) == 0)
		return 0;
	take = avail < IO_READ_SIZE ? avail : IO_READ_SIZE;
	n = smtp_data_scan(&s->scan, io_data(s->io), take, scratch, &olen);
	io_drop(s->io, n);
	smtp_spool_add(s, scratch, olen);
	if (s->scan.done)
		smtp_data_end(s);
	return 1;
}

static void
smtp_bdat_chunk_done(struct smtp_session *s)
{
	int	 errors;

	s->state = SMTP_CMD;
	if (s->flags & SF_DISCARD) {
		s->flags &= ~SF_DISCARD;
		smtp_reply(s, "%s", s->discard_reply);
		return;
	}
	if (s->chunk_last) {
		if (!s->binary)
			smtp_data_scan_finish(&s->scan);
		smtp_data_end(s);
		return;
	}
	errors = s->data_errors | s->scan.errors;
	if (errors) {
		/* RFC 3030 3: later chunks already sent are discarded. */
		evtimer_del(&s->ev_data);
		io_set_timeout(s->io, smtp_limit(LIMIT_IDLE_TIMEOUT) * 1000);
		smtp_data_refuse(s, errors);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)s->chunk_size);
}

static int
smtp_bdat_in(struct smtp_session *s)
{
	size_t		 avail, take, olen;
	unsigned char	*p;

	if (s->chunk_left == 0) {
		smtp_bdat_chunk_done(s);
		return 1;
	}
	if ((avail = io_datalen(s->io)) == 0)
		return 0;
	take = avail < IO_READ_SIZE ? avail : IO_READ_SIZE;
	if (take > s->chunk_left)
		take = s->chunk_left;
	p = io_data(s->io);
	if (!(s->flags & SF_DISCARD)) {
		if (s->binary)
			smtp_spool_add(s, p, take);
		else {
			(void)smtp_data_scan(&s->scan, p, take, scratch,
			    &olen);
			smtp_spool_add(s, scratch, olen);
		}
	}
	io_drop(s->io, take);
	s->chunk_left -= take;
	if (s->chunk_left == 0)
		smtp_bdat_chunk_done(s);
	return 1;
}

/* The spool file is open: message data may come. */
static void
smtp_data_begin(struct smtp_session *s)
{
	smtp_trace_header(s);
	smtp_data_timer_start(s);
	if (s->flags & SF_BDAT) {
		s->binary = s->mail.body == SMTP_BODY_BINARYMIME;
		smtp_data_scan_init(&s->scan, 0, smtp_limit(LIMIT_SMTP_LINE));
		s->state = SMTP_BDAT;
		return;
	}
	smtp_data_scan_init(&s->scan, 1, smtp_limit(LIMIT_SMTP_LINE));
	s->state = SMTP_DATA;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

void
smtp_session_spool_fd(uint32_t id, uint64_t spool, const char *err, int fd)
{
	struct smtp_session	*s;
	struct msg_out		 m;

	if ((s = smtp_lookup(id)) == NULL) {
		if (fd != -1)
			close(fd);
		if (spool != 0) {
			msg_create(&m, IMSG_STORE_SPOOL_ABORT, id, -1);
			msg_add_u64(&m, spool);
			if (proc_send(PROC_STORAGED, &m) == -1)
				log_warn("SPOOL_ABORT to storaged");
		}
		return;
	}
	if (s->wait != WAIT_SPOOL)
		fatalx("%s: session %u did not ask for a spool file",
		    __func__, id);
	smtp_unwait(s);
	if (spool == 0) {
		if (fd != -1)
			close(fd);
		log_warnx("session %u: no spool file: %s", s->id, err);
		if (s->flags & SF_BDAT) {
			/* The chunk that asked still has to be read. */
			s->flags |= SF_DISCARD;
			s->discard_reply = "451 4.3.0 Temporary failure, try "
			    "again later";
			smtp_tx_reset(s);
			s->state = SMTP_BDAT;
		} else {
			smtp_tx_reset(s);
			smtp_reply(s, "451 4.3.0 Temporary failure, try again "
			    "later");
		}
		smtp_continue(s);
		return;
	}
	s->spool = spool;
	s->spoolfd = fd;
	smtp_data_begin(s);
	smtp_continue(s);
}

static int
smtp_spool_open(struct smtp_session *s)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_SPOOL_OPEN, s->id, -1);
	if (smtp_send_storaged(s, &m) == -1)
		return -1;
	smtp_wait(s, WAIT_SPOOL);
	return 0;
}

/* --- commands -------------------------------------------------------- */

static int
smtp_need_helo(struct smtp_session *s)
{
	if (s->flags & (SF_HELO | SF_EHLO))
		return 0;
	smtp_reply(s, "503 5.5.1 Send EHLO or HELO first");
	return -1;
}

static int
smtp_submission(struct smtp_session *s)
{
	return s->sl->l->kind == LISTEN_SUBMISSION ||
	    s->sl->l->kind == LISTEN_SUBMISSIONS;
}

static int
smtp_auth_offered(struct smtp_session *s)
{
	return smtp_submission(s) && ((s->flags & SF_TLS) ||
	    (s->sl->l->flags & LISTENER_PLAINTEXT));
}

/* A domain, an address literal, or at least nothing that breaks a header. */
static int
smtp_helo_valid(const char *arg)
{
	const char	*p;

	if (*arg == '\0' || strlen(arg) > SMTP_DOMAIN_MAX)
		return 0;
	for (p = arg; *p; p++)
		if (*p <= ' ' || *p > '~' || strchr("()<>;\"\\,", *p))
			return 0;
	return 1;
}

static void
smtp_cmd_helo(struct smtp_session *s, const char *verb, char *arg)
{
	int	 ehlo = strcasecmp(verb, "EHLO") == 0;

	if (arg == NULL || !smtp_helo_valid(arg)) {
		smtp_bad(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	smtp_reset_session(s);
	strlcpy(s->helo, arg, sizeof(s->helo));
	if (!ehlo) {
		s->flags |= SF_HELO;
		smtp_reply(s, "250 %s Hello %s [%s]", proc_conf->hostname,
		    s->helo, s->addr);
		return;
	}
	s->flags |= SF_EHLO;
	smtp_reply(s, "250-%s Hello %s [%s]", proc_conf->hostname, s->helo,
	    s->addr);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %lld", smtp_limit(LIMIT_MESSAGE_SIZE));
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-BINARYMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-DSN");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	if (!(s->flags & SF_TLS) && s->sl->tls != NULL)
		smtp_reply(s, "250-STARTTLS");
	if (smtp_auth_offered(s) && !(s->flags & SF_AUTHED))
		smtp_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_reply(s, "250 CHUNKING");
}

static void
smtp_mail_accept(struct smtp_session *s)
{
	s->flags |= SF_MAIL;
	smtp_reply(s, "250 2.1.0 Ok");
}

static void
smtp_cmd_mail(struct smtp_session *s, const char *verb, char *arg)
{
	struct msg_out	 m;
	const char	*err;

	if (smtp_need_helo(s) == -1)
		return;
	if (s->flags & SF_MAIL) {
		smtp_reply(s, "503 5.5.1 Sender already specified");
		return;
	}
	if (smtp_submission(s) && !(s->flags & SF_AUTHED)) {
		smtp_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (arg == NULL || smtp_parse_mail(arg, (s->flags & SF_EHLO) != 0,
	    &s->mail, &err) == -1) {
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_bad(s, arg == NULL ? "501 5.5.4 Syntax: MAIL "
		    "FROM:<address>" : err);
		return;
	}
	if (s->mail.size > (uint64_t)smtp_limit(LIMIT_MESSAGE_SIZE)) {
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum "
		    "message size");
		return;
	}
	if (!(s->flags & SF_AUTHED)) {
		smtp_mail_accept(s);
		return;
	}
	msg_create(&m, IMSG_STORE_SENDER_CHECK, s->id, -1);
	msg_add_string(&m, s->account);
	msg_add_string(&m, s->mail.from);
	if (smtp_send_storaged(s, &m) == -1) {
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	smtp_wait(s, WAIT_SENDER);
}

void
smtp_session_sender_result(uint32_t id, int ok)
{
	struct smtp_session	*s;

	if ((s = smtp_lookup(id)) == NULL)
		return;
	if (s->wait != WAIT_SENDER)
		fatalx("%s: session %u did not ask", __func__, id);
	smtp_unwait(s);
	if (ok)
		smtp_mail_accept(s);
	else {
		log_info("session %u from %s: sender <%s> refused for %s",
		    s->id, s->addr, s->mail.from, s->account);
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, "553 5.7.1 Sender address not owned by the "
		    "authenticated user");
	}
	smtp_continue(s);
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const char *verb, char *arg)
{
	struct smtp_rcpt	*r;
	struct msg_out		 m;
	const char		*err;

	if (!(s->flags & SF_MAIL)) {
		smtp_reply(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (s->flags & SF_BDAT) {
		smtp_reply(s, "503 5.5.1 RCPT after BDAT");
		return;
	}
	if (arg == NULL || smtp_parse_rcpt(arg, s->mail.smtputf8, &s->rcpt,
	    &err) == -1) {
		smtp_bad(s, arg == NULL ? "501 5.5.4 Syntax: RCPT TO:<address>" :
		    err);
		return;
	}
	TAILQ_FOREACH(r, &s->rcpts, entry)
		if (strcasecmp(r->addr, s->rcpt.to) == 0) {
			smtp_reply(s, "250 2.1.5 Ok");
			return;
		}
	if (s->nrcpts >= smtp_limit(LIMIT_RECIPIENTS)) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	msg_create(&m, IMSG_STORE_RCPT, s->id, -1);
	msg_add_string(&m, s->rcpt.to);
	if (smtp_send_storaged(s, &m) == -1) {
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	smtp_wait(s, WAIT_RCPT);
}

static void
smtp_rcpt_add(struct smtp_session *s, enum rcpt_kind kind)
{
	struct smtp_rcpt	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("%s", __func__);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	strlcpy(r->addr, s->rcpt.to, sizeof(r->addr));
	r->kind = kind;
	r->notify = s->rcpt.notify;
	strlcpy(r->orcpt, s->rcpt.orcpt, sizeof(r->orcpt));
	TAILQ_INSERT_TAIL(&s->rcpts, r, entry);
	s->nrcpts++;
	smtp_reply(s, "250 2.1.5 Ok");
}

void
smtp_session_rcpt_result(uint32_t id, uint32_t result)
{
	struct smtp_session	*s;

	if ((s = smtp_lookup(id)) == NULL)
		return;
	if (s->wait != WAIT_RCPT)
		fatalx("%s: session %u did not ask", __func__, id);
	smtp_unwait(s);
	switch (result) {
	case RCPT_LOCAL:
		smtp_rcpt_add(s, RCPT_KIND_LOCAL);
		break;
	case RCPT_UNKNOWN:
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: "
		    "User unknown", s->rcpt.to);
		break;
	case RCPT_REMOTE:
		if (s->flags & SF_AUTHED) {
			smtp_rcpt_add(s, RCPT_KIND_REMOTE);
			break;
		}
		log_info("session %u from %s: relaying to <%s> denied",
		    s->id, s->addr, s->rcpt.to);
		smtp_reply(s, "550 5.7.1 <%s>: Relaying denied", s->rcpt.to);
		break;
	case RCPT_TEMPFAIL:
	default:
		smtp_reply(s, "451 4.3.0 <%s>: Temporary lookup failure, try "
		    "again later", s->rcpt.to);
		break;
	}
	smtp_continue(s);
}

static void
smtp_cmd_data(struct smtp_session *s, const char *verb, char *arg)
{
	if (arg != NULL) {
		smtp_bad(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!(s->flags & SF_MAIL)) {
		smtp_reply(s, "503 5.5.1 Need MAIL before DATA");
		return;
	}
	if (s->flags & SF_BDAT) {
		smtp_reply(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->mail.body == SMTP_BODY_BINARYMIME) {
		smtp_reply(s, "503 5.5.1 BODY=BINARYMIME needs BDAT");
		return;
	}
	if (smtp_spool_open(s) == -1)
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
}

/* A chunk whose transaction cannot go on is read and thrown away. */
static void
smtp_bdat_discard(struct smtp_session *s, const char *reply)
{
	s->flags |= SF_DISCARD;
	s->discard_reply = reply;
	s->state = SMTP_BDAT;
}

static void
smtp_cmd_bdat(struct smtp_session *s, const char *verb, char *arg)
{
	uint64_t	 size;
	int		 last;

	if (arg == NULL || smtp_parse_bdat(arg, &size, &last) == -1) {
		/* The chunk's length is unknown: its bytes are not commands. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_quit(s);
		return;
	}
	s->chunk_size = s->chunk_left = size;
	s->chunk_last = last;
	if (!(s->flags & SF_MAIL)) {
		smtp_bdat_discard(s, "503 5.5.1 Need MAIL before BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_bdat_discard(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->flags & SF_BDAT) {
		s->state = SMTP_BDAT;
		return;
	}
	s->flags |= SF_BDAT;
	if (smtp_spool_open(s) == -1) {
		smtp_tx_reset(s);
		smtp_bdat_discard(s, "451 4.3.0 Temporary failure, try again "
		    "later");
	}
}

static void
smtp_cmd_rset(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_tx_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_noop(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
smtp_cmd_quit(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_reply(s, "221 2.0.0 %s Bye", proc_conf->hostname);
	smtp_quit(s);
}

static void
smtp_cmd_help(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT "
	    "RSET NOOP QUIT HELP VRFY EXPN STARTTLS AUTH");
	smtp_reply(s, "214 2.0.0 See RFC 5321");
}

static void
smtp_cmd_vrfy(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
smtp_cmd_expn(struct smtp_session *s, const char *verb, char *arg)
{
	smtp_reply(s, "502 5.5.1 EXPN not available");
}

static void
smtp_cmd_starttls(struct smtp_session *s, const char *verb, char *arg)
{
	if (arg != NULL) {
		smtp_bad(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->flags & SF_TLS) {
		smtp_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (s->sl->tls == NULL) {
		smtp_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	if (s->flags & SF_CLOSE)
		return;
	/*
	 * io_start_tls() drops whatever came after the STARTTLS line in
	 * clear: commands injected there are never read.
	 */
	if (io_datalen(s->io) > 0)
		log_info("session %u from %s: dropped %zu bytes sent after "
		    "STARTTLS", s->id, s->addr, io_datalen(s->io));
	s->state = SMTP_STARTTLS;
	smtp_tx_reset(s);
	if (io_start_tls(s->io, s->sl->tls) == -1) {
		log_warnx("session %u: %s", s->id, io_error(s->io));
		smtp_close(s);
	}
}

/* --- AUTH ------------------------------------------------------------ */

static void
smtp_auth_fail_delayed(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	smtp_reply(s, "535 5.7.8 Authentication credentials invalid");
	smtp_unwait(s);
	smtp_continue(s);
}

static void
smtp_auth_done(struct smtp_session *s, int ok, const char *account)
{
	struct timeval	 tv;
	unsigned int	 ms;
	int		 locked;

	locked = authlimit_end(smtpd_authlimit(), s->addr, ok, smtp_now());
	if (ok) {
		s->flags |= SF_AUTHED;
		strlcpy(s->account, account, sizeof(s->account));
		log_info("authentication succeeded for %s from %s", s->account,
		    s->addr);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		smtp_unwait(s);
		return;
	}
	log_info("authentication failed for user %s from %s", s->auth_user,
	    s->addr);
	if (locked)
		log_info("client %s locked out for %lld seconds after %lld "
		    "authentication failures", s->addr,
		    smtp_limit(LIMIT_AUTH_LOCKOUT),
		    smtp_limit(LIMIT_AUTH_FAILURES));
	ms = authlimit_delay_ms();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	s->wait = WAIT_AUTH_DELAY;
	evtimer_set(&s->ev_auth, smtp_auth_fail_delayed, s);
	evtimer_add(&s->ev_auth, &tv);
}

void
smtp_session_auth_result(uint32_t id, int ok, const char *account)
{
	struct smtp_session	*s;

	if ((s = smtp_lookup(id)) == NULL)
		return;
	if (s->wait != WAIT_AUTH)
		fatalx("%s: session %u did not ask", __func__, id);
	smtp_auth_done(s, ok, account);
	smtp_continue(s);
}

/* Asks storaged; every way of failing takes the same path back. */
static void
smtp_auth_check(struct smtp_session *s, const char *user,
    const char *password, int bad)
{
	struct msg_out	 m;

	smtp_log_user(s->auth_user, sizeof(s->auth_user), user);
	authlimit_begin(smtpd_authlimit(), s->addr, smtp_now());
	s->state = SMTP_CMD;
	s->wait = WAIT_AUTH;
	io_pause(s->io, IO_IN);
	if (!bad && strlen(user) <= ADDRESS_MAX) {
		msg_create(&m, IMSG_STORE_AUTH, s->id, -1);
		msg_add_string(&m, user);
		msg_add_string(&m, password);
		if (smtp_send_storaged(s, &m) != -1) {
			explicit_bzero(&m, sizeof(m));
			return;
		}
		explicit_bzero(&m, sizeof(m));
	}
	smtp_auth_done(s, 0, "");
}

static void
smtp_auth_plain(struct smtp_session *s, const char *b64)
{
	unsigned char	 buf[SMTP_AUTH_DECODED_MAX + 1];
	const char	*authz, *user, *pass;
	size_t		 len, n;

	if (smtp_base64_decode(b64, buf, sizeof(buf) - 1, &len) == -1) {
		s->state = SMTP_CMD;
		smtp_bad(s, "501 5.5.2 Invalid base64 data");
		return;
	}
	buf[len] = '\0';
	/* authzid NUL authcid NUL passwd */
	authz = (const char *)buf;
	n = strlen(authz);
	if (n >= len) {
		explicit_bzero(buf, sizeof(buf));
		s->state = SMTP_CMD;
		smtp_bad(s, "501 5.5.2 Invalid AUTH PLAIN data");
		return;
	}
	user = authz + n + 1;
	n += strlen(user) + 1;
	if (n >= len || *user == '\0') {
		explicit_bzero(buf, sizeof(buf));
		s->state = SMTP_CMD;
		smtp_bad(s, "501 5.5.2 Invalid AUTH PLAIN data");
		return;
	}
	pass = user + strlen(user) + 1;
	/* Acting as someone else is not offered. */
	smtp_auth_check(s, user, pass, *authz != '\0' &&
	    strcmp(authz, user) != 0);
	explicit_bzero(buf, sizeof(buf));
}

static void
smtp_auth_line(struct smtp_session *s, char *line)
{
	unsigned char	 buf[SMTP_AUTH_DECODED_MAX + 1];
	size_t		 len;

	if (strcmp(line, "*") == 0) {
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
		s->state = SMTP_CMD;
		smtp_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	switch (s->state) {
	case SMTP_AUTH_PLAIN:
		smtp_auth_plain(s, line);
		break;
	case SMTP_AUTH_USER:
		if (smtp_base64_decode(line, buf, sizeof(buf) - 1,
		    &len) == -1 || len == 0 || len > ADDRESS_MAX ||
		    memchr(buf, '\0', len) != NULL) {
			s->state = SMTP_CMD;
			smtp_bad(s, "501 5.5.2 Invalid base64 data");
			break;
		}
		buf[len] = '\0';
		/* Kept until the password comes; only a user name. */
		strlcpy(s->auth_user, (char *)buf, sizeof(s->auth_user));
		if (strlen((char *)buf) >= sizeof(s->auth_user)) {
			/* Too long to keep: it cannot be an account. */
			s->auth_user[0] = '\0';
		}
		s->state = SMTP_AUTH_PASS;
		smtp_reply(s, "334 UGFzc3dvcmQ6");
		break;
	case SMTP_AUTH_PASS:
		if (smtp_base64_decode(line, buf, sizeof(buf) - 1,
		    &len) == -1 || memchr(buf, '\0', len) != NULL) {
			s->state = SMTP_CMD;
			smtp_bad(s, "501 5.5.2 Invalid base64 data");
			break;
		}
		buf[len] = '\0';
		smtp_auth_check(s, s->auth_user, (char *)buf,
		    s->auth_user[0] == '\0');
		break;
	default:
		fatalx("%s: state %d", __func__, s->state);
	}
	explicit_bzero(buf, sizeof(buf));
}

static void
smtp_cmd_auth(struct smtp_session *s, const char *verb, char *arg)
{
	char	*mech, *ir = NULL;

	if (!smtp_submission(s)) {
		smtp_reply(s, "502 5.5.1 AUTH not available");
		return;
	}
	if (!smtp_auth_offered(s)) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!(s->flags & SF_EHLO)) {
		smtp_reply(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->flags & SF_AUTHED) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->flags & SF_MAIL) {
		smtp_reply(s, "503 5.5.1 AUTH not allowed during a mail "
		    "transaction");
		return;
	}
	if (arg == NULL) {
		smtp_bad(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	mech = arg;
	if ((ir = strchr(arg, ' ')) != NULL)
		*ir++ = '\0';
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication "
		    "mechanism");
		return;
	}
	if (authlimit_locked(smtpd_authlimit(), s->addr, smtp_now())) {
		log_info("authentication from %s refused: locked out",
		    s->addr);
		smtp_reply(s, "454 4.7.0 Too many authentication failures, "
		    "try again later");
		return;
	}
	s->auth_user[0] = '\0';
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir == NULL) {
			s->state = SMTP_AUTH_PLAIN;
			smtp_reply(s, "334 ");
			return;
		}
		s->state = SMTP_AUTH_PLAIN;
		smtp_auth_line(s, ir);
		return;
	}
	if (ir == NULL) {
		s->state = SMTP_AUTH_USER;
		smtp_reply(s, "334 VXNlcm5hbWU6");
		return;
	}
	s->state = SMTP_AUTH_USER;
	smtp_auth_line(s, ir);
}

/* --- the command loop ------------------------------------------------ */

struct smtp_command {
	const char	*verb;
	void		(*fn)(struct smtp_session *, const char *, char *);
};

static const struct smtp_command smtp_commands[] = {
	{ "AUTH",	smtp_cmd_auth },
	{ "BDAT",	smtp_cmd_bdat },
	{ "DATA",	smtp_cmd_data },
	{ "EHLO",	smtp_cmd_helo },
	{ "EXPN",	smtp_cmd_expn },
	{ "HELO",	smtp_cmd_helo },
	{ "HELP",	smtp_cmd_help },
	{ "MAIL",	smtp_cmd_mail },
	{ "NOOP",	smtp_cmd_noop },
	{ "QUIT",	smtp_cmd_quit },
	{ "RCPT",	smtp_cmd_rcpt },
	{ "RSET",	smtp_cmd_rset },
	{ "STARTTLS",	smtp_cmd_starttls },
	{ "VRFY",	smtp_cmd_vrfy },
};

/*
 * A command line is what comes before CR LF, whatever it holds: a bare
 * LF or CR inside does not end it, it spoils all of it (so
 * "NOOP<LF>NOOP<CR><LF>" is one bad line, not two commands).
 */
static void
smtp_line(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_command	*c;
	char				*arg;
	size_t				 i;

	if (memchr(line, '\r', len) != NULL ||
	    memchr(line, '\n', len) != NULL ||
	    memchr(line, '\0', len) != NULL) {
		explicit_bzero(line, len);
		if (s->state != SMTP_CMD)
			s->state = SMTP_CMD;
		smtp_bad(s, "500 5.5.2 Bare CR, bare LF or NUL in command "
		    "line");
		return;
	}
	line[len] = '\0';
	if (s->state == SMTP_AUTH_PLAIN || s->state == SMTP_AUTH_USER ||
	    s->state == SMTP_AUTH_PASS) {
		smtp_auth_line(s, line);
		explicit_bzero(line, len);
		return;
	}
	if ((arg = strchr(line, ' ')) != NULL) {
		*arg++ = '\0';
		if (*arg == '\0')
			arg = NULL;
	}
	for (i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]);
	    i++) {
		c = &smtp_commands[i];
		if (strcasecmp(line, c->verb) == 0) {
			c->fn(s, line, arg);
			return;
		}
	}
	smtp_bad(s, "500 5.5.1 Command unrecognized");
}

/*
 * The next line up to CR LF, copied out of the input buffer (so that
 * STARTTLS may drop the buffer under it).  Returns 0 when no whole line
 * is in, 1 with a line, -1 after an over-long one, whose rest is then
 * skipped up to its CR LF however late that comes.
 */
static int
smtp_getline(struct smtp_session *s, char **linep, size_t *lenp)
{
	static char	 line[LIMIT_SMTP_LINE_MAX + 1];
	unsigned char	*p, *end;
	size_t		 avail, max = smtp_limit(LIMIT_SMTP_LINE), n;

	for (;;) {
		if ((avail = io_datalen(s->io)) == 0)
			return 0;
		p = io_data(s->io);
		end = memmem(p, avail, "\r\n", 2);
		if (s->flags & SF_LONGLINE) {
			if (end == NULL) {
				/* A CR at the end may be half of the CR LF. */
				n = p[avail - 1] == '\r' ? avail - 1 : avail;
				io_drop(s->io, n);
				return 0;
			}
			io_drop(s->io, end - p + 2);
			s->flags &= ~SF_LONGLINE;
			continue;
		}
		if (end == NULL) {
			if (avail < max)
				return 0;
			n = p[avail - 1] == '\r' ? avail - 1 : avail;
			io_drop(s->io, n);
			s->flags |= SF_LONGLINE;
			return -1;
		}
		n = end - p;
		if (n + 2 > max) {
			io_drop(s->io, n + 2);
			return -1;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		io_drop(s->io, n + 2);
		*linep = line;
		*lenp = n;
		return 1;
	}
}

static void
smtp_input(struct smtp_session *s)
{
	char	*line;
	size_t	 len;

	for (;;) {
		if ((s->flags & SF_CLOSE) || s->wait != WAIT_NONE)
			return;
		switch (s->state) {
		case SMTP_TLS_HANDSHAKE:
		case SMTP_STARTTLS:
		case SMTP_QUIT:
			return;
		case SMTP_DATA:
			if (!smtp_data_in(s))
				return;
			continue;
		case SMTP_BDAT:
			if (!smtp_bdat_in(s))
				return;
			continue;
		default:
			break;
		}
		switch (smtp_getline(s, &line, &len)) {
		case 0:
			return;
		case -1:
			if (s->state != SMTP_CMD)
				s->state = SMTP_CMD;
			smtp_bad(s, "500 5.5.2 Line too long");
			continue;
		}
		smtp_line(s, line, len);
		explicit_bzero(line, len);
	}
}
