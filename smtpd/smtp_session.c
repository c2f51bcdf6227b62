/*
 * SMTP sessions (RFC 5321 with ESMTP): one state machine per client
 * connection, over lib/io.
 *
 * Commands are handled strictly in order.  Whenever a command needs an
 * answer from storaged the session stops reading (io_pause) until the
 * answer is in, so pipelined commands queue up in the input buffer and
 * their replies go out in order.  Message data is read from the raw
 * input buffer, never line by line, so that a bare CR or LF is seen
 * for what it is (smtp_data.c, smtp_data_scan() in smtp_parse.c).
 * AUTH is in smtp_auth.c.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <arpa/inet.h>

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
#include "smtp_session.h"
#include "smtpd.h"

RB_HEAD(smtp_sessions, smtp_session);

static int
smtp_session_cmp(struct smtp_session *a, struct smtp_session *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

RB_GENERATE(smtp_sessions, smtp_session, entry, smtp_session_cmp)

static struct smtp_sessions	 sessions = RB_INITIALIZER(&sessions);
static uint32_t			 next_id;

static void	smtp_io(struct io *, int, void *);
static void	smtp_input(struct smtp_session *);

long long
smtp_limit(enum limit_id id)
{
	return proc_conf->limits[id];
}

/* Monotonic seconds: the sandbox allows clock_gettime, not time(2). */
time_t
smtp_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return ts.tv_sec;
}

void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((__format__ (printf, 2, 3)));

void
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
void
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
void
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

struct smtp_session *
smtp_lookup(uint32_t id)
{
	struct smtp_session	 key;

	key.id = id;
	return RB_FIND(smtp_sessions, &sessions, &key);
}

void
smtp_wait(struct smtp_session *s, enum smtp_wait what)
{
	s->wait = what;
	io_pause(s->io, IO_IN);
}

void
smtp_unwait(struct smtp_session *s)
{
	s->wait = WAIT_NONE;
	io_resume(s->io, IO_IN);
}

/* Whether the session can go on after an answer came in for it. */
void
smtp_continue(struct smtp_session *s)
{
	if (!(s->flags & SF_CLOSE))
		smtp_input(s);
	smtp_release(s);
}

int
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

/* Refused before a session exists: one line, in clear when we can. */
static void
smtp_refuse(struct role_listener *sl, int fd, const char *addr,
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
smtp_session_accept(struct role_listener *sl, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct smtp_session	*s;
	struct listen_client	*c;
	const char		*why;
	char			 addr[INET6_ADDRSTRLEN];
	int			 family;

	family = listen_addr(sa, addr, sizeof(addr));
	if ((c = listen_client_get(addr, smtp_limit(LIMIT_SESSIONS),
	    smtp_limit(LIMIT_SESSIONS_PER_CLIENT), &why)) == NULL) {
		smtp_refuse(sl, fd, addr, why);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->io = io_new()) == NULL) {
		free(s);
		listen_client_put(c);
		smtp_refuse(sl, fd, addr, "Out of memory");
		return;
	}
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
	/* Fixed for the session: the input buffer is sized for it. */
	s->maxline = smtp_limit(LIMIT_SMTP_LINE);
	(void)io_set_maxline(s->io, s->maxline);
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
void
smtp_close(struct smtp_session *s)
{
	if (s->flags & SF_CLOSE)
		return;
	s->flags |= SF_CLOSE;
	smtp_auth_abort(s);
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

void
smtp_release(struct smtp_session *s)
{
	if (!(s->flags & SF_CLOSE))
		return;
	RB_REMOVE(smtp_sessions, &sessions, s);
	listen_client_put(s->client);
	explicit_bzero(s, sizeof(*s));
	free(s);
	listen_resume();
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
void
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

/* --- commands -------------------------------------------------------- */

static int
smtp_need_helo(struct smtp_session *s)
{
	if (s->flags & (SF_HELO | SF_EHLO))
		return 0;
	smtp_reply(s, "503 5.5.1 Send EHLO or HELO first");
	return -1;
}

int
smtp_submission(struct smtp_session *s)
{
	return s->sl->l->kind == LISTEN_SUBMISSION ||
	    s->sl->l->kind == LISTEN_SUBMISSIONS;
}

int
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

/* The domain-less postmaster is the one of our first domain. */
static void
smtp_rcpt_postmaster(struct smtp_session *s)
{
	struct domain_conf	*d;
	const char		*domain = proc_conf->hostname;

	if ((d = TAILQ_FIRST(&proc_conf->domains)) != NULL)
		domain = d->name;
	strlcpy(s->rcpt.to, "postmaster@", sizeof(s->rcpt.to));
	strlcat(s->rcpt.to, domain, sizeof(s->rcpt.to));
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
		smtp_bad(s, arg == NULL ?
		    "501 5.5.4 Syntax: RCPT TO:<address>" : err);
		return;
	}
	if (strchr(s->rcpt.to, '@') == NULL)
		smtp_rcpt_postmaster(s);
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
	size_t		 avail, max = s->maxline, n;

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
