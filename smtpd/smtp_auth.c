/*
 * AUTH PLAIN and LOGIN (RFC 4954, 4616), on submission listeners after
 * TLS.  storaged checks the password; every failure is answered after
 * a delay on a timer, and an address past auth-failures is locked out
 * (lib/authlimit.c) without storaged being asked.  An attempt beyond
 * the address's slots waits in line, its credentials held, until one
 * is free or the address is locked out.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <ctype.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "authlimit.h"
#include "io.h"
#include "log.h"
#include "proc.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "smtpd.h"

/* A user name as the client sent it, fit for one log line. */
static void
smtp_log_user(char *dst, size_t dstlen, const char *src)
{
	size_t	 i;

	for (i = 0; src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = isprint((unsigned char)src[i]) ? src[i] : '?';
	dst[i] = '\0';
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
	log_info("authentication failed for user %s from %s", s->auth_log,
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

static void
smtp_auth_refuse(struct smtp_session *s)
{
	log_info("authentication from %s refused: locked out", s->addr);
	smtp_reply(s, "454 4.7.0 Too many authentication failures, try "
	    "again later");
}

/* Asks storaged; every way of failing takes the same path back. */
static void
smtp_auth_send(struct smtp_session *s, const char *user,
    const char *password, int bad)
{
	struct msg_out	 m;

	s->wait = WAIT_AUTH;
	io_pause(s->io, IO_IN);
	if (!bad) {
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

/* Out of line: on a timer, as authlimit's callback may not act. */
static void
smtp_auth_slot_ready(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;
	struct authlimit_held	*h = s->auth_held;

	if (s->auth_wait.state == AUTHLIMIT_GRANTED) {
		s->auth_wait.state = AUTHLIMIT_IDLE;
		smtp_auth_send(s, h->user, h->password, h->bad);
		authlimit_held_free(&s->auth_held);
		smtp_continue(s);
		return;
	}
	authlimit_held_free(&s->auth_held);
	smtp_auth_refuse(s);
	smtp_unwait(s);
	smtp_continue(s);
}

static void
smtp_auth_slot(void *arg)
{
	struct smtp_session	*s = arg;
	struct timeval		 tv = { 0, 0 };

	evtimer_set(&s->ev_auth, smtp_auth_slot_ready, s);
	evtimer_add(&s->ev_auth, &tv);
}

/* The session ends: an attempt under way is a failure, one in line not. */
void
smtp_auth_abort(struct smtp_session *s)
{
	if (s->wait == WAIT_AUTH)
		/* The answer will find no one: count it as a failure. */
		(void)authlimit_end(smtpd_authlimit(), s->addr, 0,
		    smtp_now());
	if (s->wait == WAIT_AUTH_SLOT)
		authlimit_cancel(smtpd_authlimit(), s->addr, &s->auth_wait,
		    smtp_now());
	authlimit_held_free(&s->auth_held);
}

static void
smtp_auth_check(struct smtp_session *s, const char *user,
    const char *password, int bad)
{
	smtp_log_user(s->auth_log, sizeof(s->auth_log), user);
	s->state = SMTP_CMD;
	if (strlen(user) > ADDRESS_MAX)
		bad = 1;
	authlimit_wait_init(&s->auth_wait, smtp_auth_slot, s);
	switch (authlimit_begin(smtpd_authlimit(), s->addr, &s->auth_wait,
	    smtp_now())) {
	case AUTHLIMIT_LOCKED:
		smtp_auth_refuse(s);
		return;
	case AUTHLIMIT_WAIT:
		if ((s->auth_held = authlimit_hold(user, password,
		    bad)) == NULL) {
			authlimit_cancel(smtpd_authlimit(), s->addr,
			    &s->auth_wait, smtp_now());
			log_warn("session %u: %s", s->id, __func__);
			smtp_reply(s, "454 4.7.0 Temporary authentication "
			    "failure");
			return;
		}
		smtp_wait(s, WAIT_AUTH_SLOT);
		return;
	}
	smtp_auth_send(s, user, password, bad);
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

void
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
		smtp_auth_check(s, s->auth_user, (char *)buf, 0);
		explicit_bzero(s->auth_user, sizeof(s->auth_user));
		break;
	default:
		fatalx("%s: state %d", __func__, s->state);
	}
	explicit_bzero(buf, sizeof(buf));
}

void
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

