/*
 * IMAP sessions: one state machine per client connection, over lib/io.
 *
 * Commands are handled strictly in order.  A command is gathered whole
 * (its lines and literals) into the session's buffer, bounded by
 * imap-line-length, then parsed and run.  Whenever a command needs
 * storaged the session stops reading (io_pause) until the last answer
 * is in, so pipelined commands wait in the input buffer and their
 * replies go out in order.  A message literal of APPEND is not
 * gathered: it is streamed into a spool file storaged opened, bounded
 * by imap-literal-size.
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
#include "base64.h"
#include "imap_render.h"
#include "imapd.h"
#include "io.h"
#include "log.h"
#include "proc.h"

static int
imap_session_cmp(struct imap_session *a, struct imap_session *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}

RB_GENERATE(imap_sessions, imap_session, entry, imap_session_cmp)

static struct imap_sessions	 sessions = RB_INITIALIZER(&sessions);
static uint32_t			 next_id;
static char			 linebuf[IMAP_LINE_HARD_MAX + 1];

static void	imap_io(struct io *, int, void *);
static void	imap_input(struct imap_session *);
static void	imap_line(struct imap_session *, char *, size_t);
static void	imap_auth_abort(struct imap_session *);

static long long
imap_limit(enum limit_id id)
{
	return proc_conf->limits[id];
}

static time_t
imap_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return ts.tv_sec;
}

struct imap_session *
imap_session_lookup(uint32_t id)
{
	struct imap_session	 key;

	key.id = id;
	return RB_FIND(imap_sessions, &sessions, &key);
}

/* One response line; CR LF is added. */
void
imap_reply(struct imap_session *s, const char *fmt, ...)
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
		imap_close(s);
	}
}

void
imap_write(struct imap_session *s, const void *p, size_t len)
{
	if (s->flags & SF_CLOSE)
		return;
	if (io_write(s->io, p, len) == -1) {
		log_warnx("session %u from %s: %s", s->id, s->addr,
		    io_error(s->io));
		imap_close(s);
	}
}

void
imap_tagged(struct imap_session *s, const char *status, const char *fmt,
    ...)
{
	char	 text[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	imap_reply(s, "%s %s %s", s->tag[0] ? s->tag : "*", status, text);
}

static void
imap_logout_now(struct imap_session *s)
{
	s->state = IMAP_LOGOUT;
	io_resume(s->io, IO_OUT);
	io_set_write(s->io);
	if (io_queued(s->io) == 0)
		imap_close(s);
}

/* A tagged BAD; past bad-commands of them the session ends. */
void
imap_bad(struct imap_session *s, const char *text)
{
	if (++s->badcmds > imap_limit(LIMIT_BAD_COMMANDS)) {
		log_info("session %u from %s: too many bad commands", s->id,
		    s->addr);
		imap_reply(s, "* BYE Too many bad commands");
		imap_logout_now(s);
		return;
	}
	imap_tagged(s, "BAD", "%s", text);
}

void
imap_wait(struct imap_session *s, enum imap_wait what)
{
	s->wait = what;
	io_pause(s->io, IO_IN);
}

void
imap_ctx_set(struct imap_session *s, void *ctx, void (*fn)(void *))
{
	imap_ctx_clear(s);
	s->ctx = ctx;
	s->ctx_free = fn;
}

void
imap_ctx_clear(struct imap_session *s)
{
	if (s->ctx != NULL && s->ctx_free != NULL)
		s->ctx_free(s->ctx);
	s->ctx = NULL;
	s->ctx_free = NULL;
}

/* The command is over: read the next one. */
void
imap_done(struct imap_session *s)
{
	if (s->has_cmd)
		imap_cmd_free(&s->cmd);
	s->has_cmd = 0;
	imap_ctx_clear(s);
	free(s->done);
	s->done = NULL;
	if (s->input != IN_IDLE && s->input != IN_SASL)
		s->input = IN_LINE;
	s->wait = WAIT_NONE;
	if (!(s->flags & SF_CLOSE))
		io_resume(s->io, IO_OUT);
	if (!(s->flags & SF_CLOSE) && s->state != IMAP_LOGOUT)
		io_resume(s->io, IO_IN);
}

void
imap_continue(struct imap_session *s)
{
	if (!(s->flags & SF_CLOSE) && s->wait == WAIT_NONE)
		imap_input(s);
}

int
imap_send_storaged(struct imap_session *s, struct msg_out *m)
{
	if (proc_send(PROC_STORAGED, m) == -1) {
		log_warn("session %u: %s to storaged", s->id,
		    imsg_type_name(m->type));
		return -1;
	}
	return 0;
}

int
imap_selected(struct imap_session *s)
{
	return s->state == IMAP_SELECTED;
}

static int
imap_auth_allowed(struct imap_session *s)
{
	return (s->flags & SF_TLS) ||
	    (s->il->l->flags & LISTENER_PLAINTEXT);
}

void
imap_capabilities(struct imap_session *s, char *buf, size_t len)
{
	(void)strlcpy(buf, "IMAP4rev2 IMAP4rev1 LITERAL+ ENABLE IDLE "
	    "NAMESPACE ID UNSELECT UIDPLUS MOVE CONDSTORE QRESYNC ESEARCH "
	    "SEARCHRES LIST-EXTENDED LIST-STATUS SPECIAL-USE SORT "
	    "THREAD=REFERENCES THREAD=ORDEREDSUBJECT BINARY MULTIAPPEND "
	    "STATUS=SIZE UTF8=ACCEPT", len);
	if (s->state != IMAP_NOTAUTH)
		return;
	if (!(s->flags & SF_TLS) && s->il->tls != NULL)
		(void)strlcat(buf, " STARTTLS", len);
	if (imap_auth_allowed(s))
		(void)strlcat(buf, " AUTH=PLAIN SASL-IR", len);
	else
		(void)strlcat(buf, " LOGINDISABLED", len);
}

static void
imap_greet(struct imap_session *s)
{
	char	 caps[512];

	imap_capabilities(s, caps, sizeof(caps));
	imap_reply(s, "* OK [CAPABILITY %s] %s IMAP ready", caps, IMAPD_NAME);
}

static void
imap_refuse(struct role_listener *il, int fd, const char *addr,
    const char *why)
{
	char	 line[256];
	int	 n;

	log_info("refused a connection from %s: %s", addr, why);
	if (il->l->kind != LISTEN_IMAPS) {
		n = snprintf(line, sizeof(line), "* BYE %s, try again "
		    "later\r\n", why);
		if (n > 0 && (size_t)n < sizeof(line))
			(void)write(fd, line, n);
	}
	close(fd);
}

void
imap_session_accept(struct role_listener *il, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct imap_session	*s;
	struct listen_client	*c;
	const char		*why;
	char			 addr[INET6_ADDRSTRLEN];

	(void)listen_addr(sa, addr, sizeof(addr));
	if ((c = listen_client_get(addr, imap_limit(LIMIT_SESSIONS),
	    imap_limit(LIMIT_SESSIONS_PER_CLIENT), &why)) == NULL) {
		imap_refuse(il, fd, addr, why);
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->io = io_new()) == NULL) {
		free(s);
		listen_client_put(c);
		imap_refuse(il, fd, addr, "Out of memory");
		return;
	}
	s->client = c;
	s->il = il;
	(void)strlcpy(s->addr, addr, sizeof(s->addr));
	evtimer_set(&s->ev_auth, NULL, NULL);
	do {
		s->id = ++next_id;
	} while (s->id == 0 || RB_INSERT(imap_sessions, &sessions, s) != NULL);

	io_set_callback(s->io, imap_io, s);
	/* Fixed for the session: a reload must not outgrow its buffer. */
	s->maxline = imap_limit(LIMIT_IMAP_LINE);
	if (s->maxline > IMAP_LINE_HARD_MAX)
		s->maxline = IMAP_LINE_HARD_MAX;
	(void)io_set_maxline(s->io, s->maxline);
	io_set_lowat(s->io, IMAP_LOWAT);
	if (io_set_fd(s->io, fd) == -1) {
		log_warn("session %u: io_set_fd", s->id);
		close(fd);
		imap_close(s);
		imap_release(s);
		return;
	}
	io_set_timeout(s->io, imap_limit(LIMIT_IDLE_TIMEOUT) * 1000);
	log_debug("session %u: connection from %s on %s %s port %u", s->id,
	    s->addr, listener_kind_names[il->l->kind], il->l->addr,
	    il->l->port);
	if (il->l->kind == LISTEN_IMAPS) {
		s->state = IMAP_TLS_HANDSHAKE;
		if (io_start_tls(s->io, il->tls) == -1) {
			log_warnx("session %u: %s", s->id, io_error(s->io));
			imap_close(s);
			imap_release(s);
		}
		return;
	}
	s->state = IMAP_NOTAUTH;
	imap_greet(s);
	imap_release(s);
}

/* Ends the session at once; the memory goes in imap_release(). */
void
imap_close(struct imap_session *s)
{
	struct msg_out	 m;

	if (s->flags & SF_CLOSE)
		return;
	s->flags |= SF_CLOSE;
	imap_auth_abort(s);
	imap_append_abort(s);
	/* A login under way may bind the session in storaged: unbind. */
	if ((s->flags & SF_AUTHED) || s->wait == WAIT_AUTH) {
		msg_create(&m, IMSG_STORE_SESSION_END, s->id, -1);
		(void)imap_send_storaged(s, &m);
	}
	evtimer_del(&s->ev_auth);
	io_free(s->io);
	s->io = NULL;
	log_debug("session %u: closed", s->id);
}

void
imap_release(struct imap_session *s)
{
	if (!(s->flags & SF_CLOSE))
		return;
	RB_REMOVE(imap_sessions, &sessions, s);
	listen_client_put(s->client);
	if (s->has_cmd)
		imap_cmd_free(&s->cmd);
	imap_ctx_clear(s);
	free(s->done);
	free(s->buf);
	free(s->mbox_name);
	imap_uidlist_free(&s->uids);
	imap_uidlist_free(&s->sync_new);
	imap_uidlist_free(&s->pending);
	imap_uidlist_free(&s->saved);
	explicit_bzero(s, sizeof(*s));
	free(s);
	listen_resume();
}

void
imap_session_shutdown(void)
{
	struct imap_session	*s, *next;

	RB_FOREACH_SAFE(s, imap_sessions, &sessions, next) {
		if (!(s->flags & SF_CLOSE))
			imap_reply(s, "* BYE Server shutting down");
		imap_close(s);
		imap_release(s);
	}
}

static void
imap_io(struct io *io, int event, void *arg)
{
	struct imap_session	*s = arg;

	switch (event) {
	case IO_TLSREADY:
		s->flags |= SF_TLS;
		log_debug("session %u: TLS %s, %s", s->id,
		    tls_conn_version(io_tls(io)), tls_conn_cipher(io_tls(io)));
		if (s->state == IMAP_TLS_HANDSHAKE) {
			s->state = IMAP_NOTAUTH;
			imap_greet(s);
		} else
			s->state = IMAP_NOTAUTH;
		imap_input(s);
		break;
	case IO_DATAIN:
		imap_input(s);
		break;
	case IO_LOWAT:
		if (s->state == IMAP_LOGOUT && io_queued(io) == 0) {
			imap_close(s);
			break;
		}
		if (s->wait == WAIT_LOWAT || s->wait == WAIT_FETCH)
			imap_fetch_lowat(s);
		break;
	case IO_TIMEOUT:
		if (s->state == IMAP_TLS_HANDSHAKE ||
		    s->state == IMAP_STARTTLS || s->state == IMAP_LOGOUT) {
			imap_close(s);
			break;
		}
		if (s->wait == WAIT_LOWAT || (s->wait == WAIT_FETCH &&
		    io_queued(io) > 0)) {
			/* The client reads nothing of what it asked for. */
			log_info("session %u from %s: timeout writing", s->id,
			    s->addr);
			imap_close(s);
			break;
		}
		if (s->wait != WAIT_NONE)
			break;
		log_info("session %u from %s: idle timeout", s->id, s->addr);
		imap_reply(s, "* BYE Autologout; idle for too long");
		imap_logout_now(s);
		break;
	case IO_DISCONNECTED:
		log_debug("session %u: disconnected", s->id);
		imap_close(s);
		break;
	case IO_ERROR:
	default:
		log_debug("session %u: %s", s->id, io_error(io));
		imap_close(s);
		break;
	}
	imap_release(s);
}

/* --- authentication --------------------------------------------------- */

static void
imap_auth_fail_delayed(int fd, short event, void *arg)
{
	struct imap_session	*s = arg;

	imap_tagged(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
	imap_done(s);
	imap_release(s);
}

static void
imap_auth_done(struct imap_session *s, int ok, const char *account)
{
	struct timeval	 tv;
	unsigned int	 ms;
	int		 locked;
	char		 caps[512];

	locked = authlimit_end(imapd_authlimit(), s->addr, ok, imap_now());
	if (ok) {
		s->flags |= SF_AUTHED;
		s->state = IMAP_AUTH;
		(void)strlcpy(s->account, account, sizeof(s->account));
		log_info("authentication succeeded for %s from %s", s->account,
		    s->addr);
		io_set_timeout(s->io, (imap_limit(LIMIT_IDLE_TIMEOUT) >
		    IMAP_AUTH_TIMEOUT ? imap_limit(LIMIT_IDLE_TIMEOUT) :
		    IMAP_AUTH_TIMEOUT) * 1000);
		imap_capabilities(s, caps, sizeof(caps));
		imap_tagged(s, "OK", "[CAPABILITY %s] Logged in", caps);
		imap_done(s);
		return;
	}
	/* storaged may have bound nothing; forget whatever it holds. */
	log_info("authentication failed for user %s from %s", s->auth_user,
	    s->addr);
	if (locked)
		log_info("client %s locked out for %lld seconds after %lld "
		    "authentication failures", s->addr,
		    imap_limit(LIMIT_AUTH_LOCKOUT),
		    imap_limit(LIMIT_AUTH_FAILURES));
	ms = authlimit_delay_ms();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	imap_wait(s, WAIT_AUTH_DELAY);
	evtimer_set(&s->ev_auth, imap_auth_fail_delayed, s);
	evtimer_add(&s->ev_auth, &tv);
}

void
imap_session_auth_result(uint32_t id, int ok, const char *account)
{
	struct imap_session	*s;

	if ((s = imap_session_lookup(id)) == NULL || (s->flags & SF_CLOSE))
		return;
	if (s->wait != WAIT_AUTH)
		fatalx("%s: session %u did not ask", __func__, id);
	imap_auth_done(s, ok, account);
	imap_release(s);
}

static void
imap_log_user(char *dst, size_t dstlen, const char *src)
{
	size_t	 i;

	for (i = 0; src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
}

static void
imap_auth_refuse(struct imap_session *s)
{
	log_info("authentication from %s refused: locked out", s->addr);
	imap_tagged(s, "NO", "[UNAVAILABLE] Too many authentication "
	    "failures, try again later");
}

static void
imap_auth_send(struct imap_session *s, const char *user,
    const char *password, int bad)
{
	struct msg_out	 m;

	imap_wait(s, WAIT_AUTH);
	if (!bad) {
		msg_create(&m, IMSG_STORE_AUTH, s->id, -1);
		msg_add_string(&m, user);
		msg_add_string(&m, password);
		if (imap_send_storaged(s, &m) != -1) {
			explicit_bzero(&m, sizeof(m));
			return;
		}
		explicit_bzero(&m, sizeof(m));
	}
	imap_auth_done(s, 0, "");
}

/* Out of line: on a timer, as authlimit's callback may not act. */
static void
imap_auth_slot_ready(int fd, short event, void *arg)
{
	struct imap_session	*s = arg;
	struct authlimit_held	*h = s->auth_held;

	if (s->auth_wait.state == AUTHLIMIT_GRANTED) {
		s->auth_wait.state = AUTHLIMIT_IDLE;
		imap_auth_send(s, h->user, h->password, h->bad);
		authlimit_held_free(&s->auth_held);
	} else {
		authlimit_held_free(&s->auth_held);
		imap_auth_refuse(s);
		imap_done(s);
	}
	imap_release(s);
}

static void
imap_auth_slot(void *arg)
{
	struct imap_session	*s = arg;
	struct timeval		 tv = { 0, 0 };

	evtimer_set(&s->ev_auth, imap_auth_slot_ready, s);
	evtimer_add(&s->ev_auth, &tv);
}

/* The session ends: an attempt under way is a failure, one in line not. */
static void
imap_auth_abort(struct imap_session *s)
{
	if (s->wait == WAIT_AUTH)
		(void)authlimit_end(imapd_authlimit(), s->addr, 0,
		    imap_now());
	if (s->wait == WAIT_AUTH_SLOT)
		authlimit_cancel(imapd_authlimit(), s->addr, &s->auth_wait,
		    imap_now());
	authlimit_held_free(&s->auth_held);
}

static void
imap_auth_check(struct imap_session *s, const char *user,
    const char *password, int bad)
{
	imap_log_user(s->auth_user, sizeof(s->auth_user), user);
	s->input = IN_LINE;
	if (strlen(user) > ADDRESS_MAX || *user == '\0')
		bad = 1;
	authlimit_wait_init(&s->auth_wait, imap_auth_slot, s);
	switch (authlimit_begin(imapd_authlimit(), s->addr, &s->auth_wait,
	    imap_now())) {
	case AUTHLIMIT_LOCKED:
		imap_auth_refuse(s);
		imap_done(s);
		return;
	case AUTHLIMIT_WAIT:
		if ((s->auth_held = authlimit_hold(user, password,
		    bad)) == NULL) {
			authlimit_cancel(imapd_authlimit(), s->addr,
			    &s->auth_wait, imap_now());
			log_warn("session %u: %s", s->id, __func__);
			imap_tagged(s, "NO", "[UNAVAILABLE] Out of memory");
			imap_done(s);
			return;
		}
		imap_wait(s, WAIT_AUTH_SLOT);
		return;
	}
	imap_auth_send(s, user, password, bad);
}

static int
imap_auth_precheck(struct imap_session *s)
{
	if (!imap_auth_allowed(s)) {
		imap_tagged(s, "NO", "[PRIVACYREQUIRED] Use TLS first");
		return -1;
	}
	if (authlimit_locked(imapd_authlimit(), s->addr, imap_now())) {
		log_info("authentication from %s refused: locked out",
		    s->addr);
		imap_tagged(s, "NO", "[UNAVAILABLE] Too many authentication "
		    "failures, try again later");
		return -1;
	}
	return 0;
}

/* authzid NUL authcid NUL passwd, base64 */
static void
imap_auth_plain(struct imap_session *s, const char *b64)
{
	unsigned char	 buf[IMAP_SASL_MAX + 1];
	const char	*authz, *user, *pass;
	size_t		 len, n;

	if (base64_decode_strict(b64, buf, sizeof(buf) - 1, &len) == -1) {
		s->input = IN_LINE;
		imap_bad(s, "Invalid base64 data");
		imap_done(s);
		return;
	}
	buf[len] = '\0';
	authz = (const char *)buf;
	n = strlen(authz);
	if (n >= len)
		goto bad;
	user = authz + n + 1;
	n += strlen(user) + 1;
	if (n >= len || *user == '\0')
		goto bad;
	pass = user + strlen(user) + 1;
	imap_auth_check(s, user, pass, *authz != '\0' &&
	    strcmp(authz, user) != 0);
	explicit_bzero(buf, sizeof(buf));
	return;
 bad:
	explicit_bzero(buf, sizeof(buf));
	s->input = IN_LINE;
	imap_bad(s, "Invalid AUTHENTICATE PLAIN data");
	imap_done(s);
}

static void
imap_sasl_line(struct imap_session *s, char *line)
{
	if (strcmp(line, "*") == 0) {
		s->input = IN_LINE;
		imap_bad(s, "Authentication cancelled");
		imap_done(s);
		return;
	}
	imap_auth_plain(s, line);
}

static void
imap_cmd_authenticate(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;
	size_t		 n = s->cmd.args.nitems;
	char		 ir[IMAP_SASL_MAX * 2];

	if (n < 1 || n > 2 || a[0].type != TOK_ATOM ||
	    (n == 2 && a[1].type != TOK_ATOM)) {
		imap_bad(s, "Syntax: AUTHENTICATE mechanism "
		    "[initial-response]");
		imap_done(s);
		return;
	}
	if (strcasecmp(a[0].s, "PLAIN") != 0) {
		imap_tagged(s, "NO", "Unsupported authentication mechanism");
		imap_done(s);
		return;
	}
	if (imap_auth_precheck(s) == -1) {
		imap_done(s);
		return;
	}
	s->auth_user[0] = '\0';
	if (n == 2) {
		/* The command (and a[1]) may be gone when this returns. */
		if (a[1].len >= sizeof(ir)) {
			explicit_bzero(a[1].s, a[1].len);
			imap_bad(s, "Invalid AUTHENTICATE PLAIN data");
			imap_done(s);
			return;
		}
		(void)strlcpy(ir, strcmp(a[1].s, "=") == 0 ? "" : a[1].s,
		    sizeof(ir));
		explicit_bzero(a[1].s, a[1].len);
		imap_auth_plain(s, ir);
		explicit_bzero(ir, sizeof(ir));
		return;
	}
	s->input = IN_SASL;
	imap_reply(s, "+ ");
}

static void
imap_cmd_login(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;

	if (s->cmd.args.nitems != 2 || !imap_tok_is_astring(&a[0]) ||
	    !imap_tok_is_astring(&a[1])) {
		imap_bad(s, "Syntax: LOGIN user password");
		imap_done(s);
		return;
	}
	if (imap_auth_precheck(s) == -1) {
		imap_done(s);
		return;
	}
	/* imap_auth_check() keeps the command: a[] outlives the call. */
	imap_auth_check(s, a[0].s, a[1].s, memchr(a[0].s, '\0', a[0].len) !=
	    NULL || memchr(a[1].s, '\0', a[1].len) != NULL);
	if (s->has_cmd)
		explicit_bzero(a[1].s, a[1].len);
}

/* --- commands any state -------------------------------------------- */

static void
imap_cmd_capability(struct imap_session *s)
{
	char	 caps[512];

	if (s->cmd.args.nitems != 0) {
		imap_bad(s, "Syntax: CAPABILITY");
		imap_done(s);
		return;
	}
	imap_capabilities(s, caps, sizeof(caps));
	imap_reply(s, "* CAPABILITY %s", caps);
	imap_tagged(s, "OK", "CAPABILITY completed");
	imap_done(s);
}

static void
imap_cmd_noop(struct imap_session *s)
{
	imap_tagged(s, "OK", "%s completed", s->cmd.verb);
	imap_done(s);
}

static void
imap_cmd_logout(struct imap_session *s)
{
	imap_reply(s, "* BYE Logging out");
	imap_tagged(s, "OK", "LOGOUT completed");
	imap_done(s);
	imap_logout_now(s);
}

static void
imap_cmd_starttls(struct imap_session *s)
{
	if (s->flags & SF_TLS) {
		imap_bad(s, "TLS already active");
		imap_done(s);
		return;
	}
	if (s->il->tls == NULL) {
		imap_tagged(s, "NO", "STARTTLS not available");
		imap_done(s);
		return;
	}
	imap_tagged(s, "OK", "Begin TLS negotiation now");
	imap_done(s);
	if (s->flags & SF_CLOSE)
		return;
	/* io_start_tls() drops what came after STARTTLS in clear. */
	if (io_datalen(s->io) > 0)
		log_info("session %u from %s: dropped %zu bytes sent after "
		    "STARTTLS", s->id, s->addr, io_datalen(s->io));
	s->state = IMAP_STARTTLS;
	if (io_start_tls(s->io, s->il->tls) == -1) {
		log_warnx("session %u: %s", s->id, io_error(s->io));
		imap_close(s);
	}
}

static void
imap_cmd_id(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;
	size_t		 i;

	/* ID NIL, or ("field" "value"-or-NIL ...) (RFC 2971). */
	if (s->cmd.args.nitems != 1 || (!imap_tok_is_atom(&a[0], "NIL") &&
	    (a[0].type != TOK_LIST || a[0].nitems % 2 != 0 ||
	    a[0].nitems > 60))) {
		imap_bad(s, "Syntax: ID NIL or ID (field value ...)");
		imap_done(s);
		return;
	}
	for (i = 0; a[0].type == TOK_LIST && i < a[0].nitems; i++)
		if (a[0].items[i].type == TOK_LIST ||
		    (a[0].items[i].type == TOK_ATOM &&
		    (i % 2 == 0 || !imap_tok_is_atom(&a[0].items[i], "NIL")))) {
			imap_bad(s, "Syntax: ID NIL or ID (field value ...)");
			imap_done(s);
			return;
		}
	imap_reply(s, "* ID (\"name\" \"%s\" \"version\" \"%s\")",
	    IMAPD_NAME, POSTERN_VERSION);
	imap_tagged(s, "OK", "ID completed");
	imap_done(s);
}

static void
imap_cmd_enable(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;
	char		 out[256] = "";
	size_t		 i;

	if (s->cmd.args.nitems == 0) {
		imap_bad(s, "Syntax: ENABLE capability ...");
		imap_done(s);
		return;
	}
	for (i = 0; i < s->cmd.args.nitems; i++) {
		if (a[i].type != TOK_ATOM)
			continue;
		if (strcasecmp(a[i].s, "CONDSTORE") == 0 &&
		    !(s->flags & SF_CONDSTORE)) {
			s->flags |= SF_CONDSTORE;
			(void)strlcat(out, " CONDSTORE", sizeof(out));
		} else if (strcasecmp(a[i].s, "QRESYNC") == 0 &&
		    !(s->flags & SF_QRESYNC)) {
			s->flags |= SF_QRESYNC | SF_CONDSTORE;
			(void)strlcat(out, " QRESYNC", sizeof(out));
		} else if (strcasecmp(a[i].s, "UTF8=ACCEPT") == 0 &&
		    !(s->flags & SF_UTF8)) {
			s->flags |= SF_UTF8;
			(void)strlcat(out, " UTF8=ACCEPT", sizeof(out));
		} else if (strcasecmp(a[i].s, "IMAP4rev2") == 0 &&
		    !(s->flags & SF_REV2)) {
			s->flags |= SF_REV2;
			(void)strlcat(out, " IMAP4rev2", sizeof(out));
		}
	}
	imap_reply(s, "* ENABLED%s", out);
	imap_tagged(s, "OK", "ENABLE completed");
	imap_done(s);
}

static void
imap_cmd_namespace(struct imap_session *s)
{
	imap_reply(s, "* NAMESPACE ((\"\" \"%c\")) NIL NIL",
	    IMAP_HIERARCHY_SEP);
	imap_tagged(s, "OK", "NAMESPACE completed");
	imap_done(s);
}

static void
imap_cmd_idle(struct imap_session *s)
{
	s->input = IN_IDLE;
	imap_reply(s, "+ idling");
	if (imap_selected(s) && (s->flags & SF_CHANGED))
		imap_sync_start(s, AFTER_IDLE, 1);
}

static void
imap_idle_line(struct imap_session *s, char *line, size_t len)
{
	s->input = IN_LINE;
	if (strcasecmp(line, "DONE") != 0) {
		imap_bad(s, "Expected DONE");
		imap_done(s);
		return;
	}
	imap_tagged(s, "OK", "IDLE terminated");
	imap_done(s);
}

static void
imap_cmd_check(struct imap_session *s)
{
	imap_tagged(s, "OK", "CHECK completed");
	imap_done(s);
}

/* --- the command table ------------------------------------------------ */

#define ST_NOTAUTH	0x01
#define ST_AUTH		0x02
#define ST_SELECTED	0x04
#define ST_ANY		(ST_NOTAUTH | ST_AUTH | ST_SELECTED)
#define ST_AUTHED	(ST_AUTH | ST_SELECTED)

/* Before the command, in the selected state: */
#define SYNC_NONE	0	/* nothing */
#define SYNC_ALL	1	/* flags, new messages and expunges */
#define SYNC_NOEXPUNGE	2	/* not expunges (FETCH, STORE, SEARCH...) */

struct imap_command {
	const char	*verb;
	void		(*fn)(struct imap_session *);
	int		 states;
	int		 sync;
	int		 sync_uid;	/* for the UID form */
	int		 uid_ok;
	int		 noargs;
};

static const struct imap_command imap_commands[] = {
	{ "APPEND", imap_cmd_append, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "AUTHENTICATE", imap_cmd_authenticate, ST_NOTAUTH, SYNC_NONE,
	    0, 0, 0 },
	{ "CAPABILITY", imap_cmd_capability, ST_ANY, SYNC_NONE, 0, 0, 0 },
	{ "CHECK", imap_cmd_check, ST_SELECTED, SYNC_ALL, 0, 0, 1 },
	{ "CLOSE", imap_cmd_close, ST_SELECTED, SYNC_NONE, 0, 0, 1 },
	{ "COPY", imap_cmd_copy, ST_SELECTED, SYNC_NOEXPUNGE, SYNC_ALL, 1, 0 },
	{ "CREATE", imap_cmd_mailbox, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "DELETE", imap_cmd_mailbox, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "ENABLE", imap_cmd_enable, ST_AUTHED, SYNC_NONE, 0, 0, 0 },
	{ "EXAMINE", imap_cmd_select, ST_AUTHED, SYNC_NONE, 0, 0, 0 },
	{ "EXPUNGE", imap_cmd_expunge, ST_SELECTED, SYNC_ALL, SYNC_ALL, 1, 0 },
	{ "FETCH", imap_cmd_fetch, ST_SELECTED, SYNC_NOEXPUNGE,
	    SYNC_ALL, 1, 0 },
	{ "ID", imap_cmd_id, ST_ANY, SYNC_NONE, 0, 0, 0 },
	{ "IDLE", imap_cmd_idle, ST_AUTHED, SYNC_ALL, 0, 0, 1 },
	{ "LIST", imap_cmd_list, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "LOGIN", imap_cmd_login, ST_NOTAUTH, SYNC_NONE, 0, 0, 0 },
	{ "LOGOUT", imap_cmd_logout, ST_ANY, SYNC_NONE, 0, 0, 1 },
	{ "LSUB", imap_cmd_list, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "MOVE", imap_cmd_copy, ST_SELECTED, SYNC_NOEXPUNGE, SYNC_ALL, 1, 0 },
	{ "NAMESPACE", imap_cmd_namespace, ST_AUTHED, SYNC_ALL, 0, 0, 1 },
	{ "NOOP", imap_cmd_noop, ST_ANY, SYNC_ALL, 0, 0, 1 },
	{ "RENAME", imap_cmd_mailbox, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "SEARCH", imap_cmd_search, ST_SELECTED, SYNC_NOEXPUNGE, SYNC_ALL,
	    1, 0 },
	{ "SELECT", imap_cmd_select, ST_AUTHED, SYNC_NONE, 0, 0, 0 },
	{ "SORT", imap_cmd_search, ST_SELECTED, SYNC_NOEXPUNGE,
	    SYNC_ALL, 1, 0 },
	{ "STARTTLS", imap_cmd_starttls, ST_NOTAUTH, SYNC_NONE, 0, 0, 1 },
	{ "STATUS", imap_cmd_status, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "STORE", imap_cmd_store, ST_SELECTED, SYNC_NOEXPUNGE,
	    SYNC_ALL, 1, 0 },
	{ "SUBSCRIBE", imap_cmd_mailbox, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
	{ "THREAD", imap_cmd_search, ST_SELECTED, SYNC_NOEXPUNGE, SYNC_ALL,
	    1, 0 },
	{ "UNSELECT", imap_cmd_unselect, ST_SELECTED, SYNC_NONE, 0, 0, 1 },
	{ "UNSUBSCRIBE", imap_cmd_mailbox, ST_AUTHED, SYNC_ALL, 0, 0, 0 },
};

static const struct imap_command *
imap_command_find(const char *verb)
{
	size_t	 i;

	for (i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]);
	    i++)
		if (strcmp(verb, imap_commands[i].verb) == 0)
			return &imap_commands[i];
	return NULL;
}

static int
imap_state_bit(struct imap_session *s)
{
	switch (s->state) {
	case IMAP_NOTAUTH:
		return ST_NOTAUTH;
	case IMAP_AUTH:
		return ST_AUTH;
	case IMAP_SELECTED:
		return ST_SELECTED;
	default:
		return 0;
	}
}

/* Runs s->cmd, the sync before it done. */
void
imap_run_command(struct imap_session *s)
{
	const struct imap_command	*c;

	c = imap_command_find(s->cmd.verb);
	c->fn(s);
}

static void
imap_dispatch(struct imap_session *s)
{
	const struct imap_command	*c;
	int				 sync;

	if ((c = imap_command_find(s->cmd.verb)) == NULL || c->fn == NULL ||
	    (s->cmd.uid && !c->uid_ok)) {
		imap_bad(s, "Unknown command");
		imap_done(s);
		return;
	}
	if (c->noargs && s->cmd.args.nitems != 0) {
		imap_bad(s, "Unexpected arguments");
		imap_done(s);
		return;
	}
	if (!(c->states & imap_state_bit(s))) {
		if (s->state == IMAP_NOTAUTH)
			imap_bad(s, "Log in first");
		else if (c->states == ST_NOTAUTH)
			imap_bad(s, "Already authenticated");
		else
			imap_bad(s, "No mailbox selected");
		imap_done(s);
		return;
	}
	sync = s->cmd.uid ? c->sync_uid : c->sync;
	if (imap_selected(s) && sync != SYNC_NONE &&
	    ((s->flags & SF_CHANGED) ||
	    (sync == SYNC_ALL && s->pending.n > 0))) {
		imap_sync_start(s, AFTER_CMD, sync == SYNC_ALL);
		return;
	}
	c->fn(s);
}

/* --- input ---------------------------------------------------------- */

static int
imap_buf_append(struct imap_session *s, const void *p, size_t len)
{
	char	*nb;
	size_t	 cap;

	if (len == 0)
		return 0;
	if (s->buflen + len > s->bufcap) {
		cap = s->bufcap ? s->bufcap : 1024;
		while (cap < s->buflen + len)
			cap *= 2;
		if ((nb = realloc(s->buf, cap)) == NULL)
			return -1;
		s->buf = nb;
		s->bufcap = cap;
	}
	memcpy(s->buf + s->buflen, p, len);
	s->buflen += len;
	return 0;
}

static void
imap_buf_reset_cmd(struct imap_session *s)
{
	s->buflen = 0;
	/* A big command's buffer is not kept for the session's life. */
	if (s->bufcap > 64 * 1024) {
		free(s->buf);
		s->buf = NULL;
		s->bufcap = 0;
	}
}

/*
 * The next line up to CR LF, copied out of the input buffer.  Returns
 * 0 when no whole line is in, 1 with a line, -1 after an over-long one,
 * whose rest is then skipped up to its CR LF.
 */
static int
imap_getline(struct imap_session *s, char **linep, size_t *lenp)
{
	unsigned char	*p, *end;
	size_t		 avail, max = s->maxline, n;

	for (;;) {
		if ((avail = io_datalen(s->io)) == 0)
			return 0;
		p = io_data(s->io);
		end = memmem(p, avail, "\r\n", 2);
		if (s->flags & SF_LONGLINE) {
			if (end == NULL) {
				n = p[avail - 1] == '\r' ? avail - 1 : avail;
				io_drop(s->io, n);
				return 0;
			}
			io_drop(s->io, end - p + 2);
			s->flags &= ~SF_LONGLINE;
			continue;
		}
		if ((end == NULL && avail >= max) ||
		    (end != NULL && (size_t)(end - p) + 2 > max)) {
			/* Its tag, for the BAD, from what came of it. */
			if (s->buflen == 0 && imap_parse_tag((char *)p,
			    avail < IMAP_TAG_MAX + 1 ? avail : IMAP_TAG_MAX + 1,
			    s->tag, sizeof(s->tag)) == -1)
				s->tag[0] = '\0';
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
		memcpy(linebuf, p, n);
		linebuf[n] = '\0';
		io_drop(s->io, n + 2);
		*linep = linebuf;
		*lenp = n;
		return 1;
	}
}

/* A refused non-synchronizing literal's bytes are read and dropped. */
static void
imap_skip_literal(struct imap_session *s, uint64_t n)
{
	s->literal_left = n;
	s->input = IN_SKIP;
	s->flags |= SF_RESYNC;
}

static void
imap_too_long(struct imap_session *s, const char *line, size_t len)
{
	uint64_t	 n;
	int		 nonsync, binary;

	if (s->buflen == 0 && imap_parse_tag(line, len, s->tag,
	    sizeof(s->tag)) == -1)
		s->tag[0] = '\0';
	imap_buf_reset_cmd(s);
	imap_bad(s, "[TOOBIG] Command line too long");
	s->tag[0] = '\0';
	if (imap_literal_at_end(line, len, &n, &nonsync, &binary) && nonsync)
		imap_skip_literal(s, n);
}

/*
 * Whether the literal that ends this line is the message of an APPEND:
 * what came before parses as APPEND mailbox [flags] [date].
 */
static int
imap_append_literal(struct imap_session *s, size_t upto, struct imap_cmd *cmd,
    int *utf8)
{
	char	 err[128];
	size_t	 len = upto;

	*utf8 = 0;
	if (s->state != IMAP_AUTH && s->state != IMAP_SELECTED)
		return 0;
	/* RFC 6855 4: APPEND ... UTF8 (~{n}...) */
	if (len > 6 && strncasecmp(s->buf + len - 6, "UTF8 (", 6) == 0) {
		*utf8 = 1;
		len -= 6;
		upto = len;
	}
	while (len > 0 && s->buf[len - 1] == ' ')
		len--;
	if (len == upto || len == 0)
		return 0;
	if (imap_parse(s->buf, len, cmd, err, sizeof(err)) == -1) {
		imap_cmd_free(cmd);
		return 0;
	}
	if (strcmp(cmd->verb, "APPEND") != 0 || cmd->uid ||
	    cmd->args.nitems == 0) {
		imap_cmd_free(cmd);
		return 0;
	}
	return 1;
}

static void
imap_line(struct imap_session *s, char *line, size_t len)
{
	struct imap_cmd	 acmd;
	char		 err[128];
	uint64_t	 n, max = s->maxline;
	int		 nonsync, binary, lit, utf8;
	size_t		 marker;

	lit = imap_literal_at_end(line, len, &n, &nonsync, &binary);
	if (s->flags & SF_RESYNC) {
		/* The rest of a refused command. */
		if (lit && nonsync)
			imap_skip_literal(s, n);
		else
			s->flags &= ~SF_RESYNC;
		return;
	}
	if (s->buflen == 0 && imap_parse_tag(line, len, s->tag,
	    sizeof(s->tag)) == -1)
		s->tag[0] = '\0';
	if (s->buflen + len + 2 > max) {
		imap_too_long(s, line, len);
		return;
	}
	if (imap_buf_append(s, line, len) == -1) {
		imap_buf_reset_cmd(s);
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		if (lit && nonsync)
			imap_skip_literal(s, n);
		return;
	}
	if (lit) {
		marker = s->buflen - (len - (strrchr(line, '{') - line));
		if (binary)
			marker--;
		if (imap_append_literal(s, marker, &acmd, &utf8)) {
			imap_buf_reset_cmd(s);
			imap_append_begin(s, &acmd, n, nonsync, utf8);
			return;
		}
		if (s->buflen + 2 + n > max) {
			imap_buf_reset_cmd(s);
			imap_tagged(s, "NO", "[TOOBIG] Literal too large");
			s->tag[0] = '\0';
			if (nonsync)
				imap_skip_literal(s, n);
			return;
		}
		(void)imap_buf_append(s, "\r\n", 2);
		if (!nonsync)
			imap_reply(s, "+ Ready for literal data");
		s->literal_left = n;
		s->input = IN_LITERAL;
		return;
	}
	if (imap_parse(s->buf, s->buflen, &s->cmd, err, sizeof(err)) == -1) {
		imap_cmd_free(&s->cmd);
		imap_buf_reset_cmd(s);
		imap_bad(s, err);
		return;
	}
	imap_buf_reset_cmd(s);
	s->has_cmd = 1;
	imap_dispatch(s);
}

static void
imap_literal_in(struct imap_session *s)
{
	size_t	 avail = io_datalen(s->io), n;

	n = avail < s->literal_left ? avail : s->literal_left;
	if (s->input == IN_LITERAL &&
	    imap_buf_append(s, io_data(s->io), n) == -1) {
		/* Drop the command; read on to its end. */
		imap_buf_reset_cmd(s);
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		s->input = IN_SKIP;
		s->flags |= SF_RESYNC;
	}
	io_drop(s->io, n);
	s->literal_left -= n;
	if (s->literal_left == 0)
		s->input = IN_LINE;
}

static void
imap_input(struct imap_session *s)
{
	char	*line;
	size_t	 len;

	for (;;) {
		if ((s->flags & SF_CLOSE) || s->wait != WAIT_NONE)
			return;
		switch (s->state) {
		case IMAP_TLS_HANDSHAKE:
		case IMAP_STARTTLS:
		case IMAP_LOGOUT:
			return;
		default:
			break;
		}
		switch (s->input) {
		case IN_LITERAL:
		case IN_SKIP:
			if (io_datalen(s->io) == 0)
				return;
			imap_literal_in(s);
			continue;
		case IN_APPEND:
			if (io_datalen(s->io) == 0)
				return;
			imap_append_data(s);
			continue;
		default:
			break;
		}
		switch (imap_getline(s, &line, &len)) {
		case 0:
			return;
		case -1:
			if (s->input == IN_SASL || s->input == IN_IDLE ||
			    s->input == IN_APPEND_NEXT) {
				s->input = IN_LINE;
				imap_append_abort(s);
				imap_bad(s, "Line too long");
				imap_done(s);
			} else {
				imap_buf_reset_cmd(s);
				imap_bad(s, "[TOOBIG] Command line too long");
			}
			continue;
		}
		switch (s->input) {
		case IN_SASL:
			imap_sasl_line(s, line);
			break;
		case IN_IDLE:
			imap_idle_line(s, line, len);
			break;
		case IN_APPEND_NEXT:
			imap_append_next(s, line, len);
			break;
		default:
			imap_line(s, line, len);
			break;
		}
		explicit_bzero(line, len);
	}
}
