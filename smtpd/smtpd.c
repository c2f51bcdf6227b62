/*
 * smtpd: the role.  It builds a TLS context for each of its listeners
 * before the sandbox, accepts connections, and relays what storaged
 * answers to the session that asked (the peer id is the session's).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "authlimit.h"
#include "envelope.h"
#include "log.h"
#include "proc.h"
#include "smtpd.h"
#include "tls_conf.h"

static TAILQ_HEAD(, smtpd_listener)	smtpd_listeners =
    TAILQ_HEAD_INITIALIZER(smtpd_listeners);
static struct authlimit			*smtpd_auth;
static struct event			 smtpd_ev_pause;
static int				 smtpd_paused;

struct authlimit *
smtpd_authlimit(void)
{
	return smtpd_auth;
}

static void
smtpd_accept(int fd, short event, void *arg)
{
	struct smtpd_listener	*sl = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 s, one = 1;

	if ((s = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		switch (errno) {
		case EINTR:
		case EAGAIN:
		case ECONNABORTED:
			return;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			/* Out of descriptors: stop accepting for a while. */
			log_warn("accept on %s port %u", sl->l->addr,
			    sl->l->port);
			smtpd_accept_pause();
			return;
		default:
			fatal("accept on %s port %u", sl->l->addr, sl->l->port);
		}
	}
	/*
	 * Replies to pipelined commands leave one by one as storaged
	 * answers: with Nagle each would wait for the client's ACK.
	 */
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("%s: TCP_NODELAY", __func__);
	smtp_session_accept(sl, s, (struct sockaddr *)&ss, len);
}

static void
smtpd_accept_timeout(int fd, short event, void *arg)
{
	smtpd_accept_resume();
}

void
smtpd_accept_pause(void)
{
	struct smtpd_listener	*sl;
	struct timeval		 tv;

	if (smtpd_paused)
		return;
	smtpd_paused = 1;
	TAILQ_FOREACH(sl, &smtpd_listeners, entry)
		event_del(&sl->ev);
	tv.tv_sec = SMTPD_ACCEPT_PAUSE_MS / 1000;
	tv.tv_usec = (SMTPD_ACCEPT_PAUSE_MS % 1000) * 1000;
	evtimer_set(&smtpd_ev_pause, smtpd_accept_timeout, NULL);
	evtimer_add(&smtpd_ev_pause, &tv);
}

/* Also called when a session ends, since a descriptor is free again. */
void
smtpd_accept_resume(void)
{
	struct smtpd_listener	*sl;

	if (!smtpd_paused)
		return;
	smtpd_paused = 0;
	evtimer_del(&smtpd_ev_pause);
	TAILQ_FOREACH(sl, &smtpd_listeners, entry)
		event_add(&sl->ev, NULL);
}

static void
smtpd_init(struct postern_conf *conf)
{
	struct smtpd_listener	*sl;
	struct listener		*l;
	char			 err[512];
	int			 flags;

	if ((smtpd_auth = authlimit_new(conf->limits[LIMIT_AUTH_FAILURES],
	    conf->limits[LIMIT_AUTH_LOCKOUT])) == NULL)
		fatal("%s: authlimit_new", __func__);
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->fd == -1 || listener_proc(l->kind) != PROC_SMTPD)
			continue;
		if ((sl = calloc(1, sizeof(*sl))) == NULL)
			fatal("%s: calloc", __func__);
		sl->l = l;
		if (l->tls_cert != NULL && l->tls_key != NULL) {
			if ((sl->tls = tls_conf_listener(l, err,
			    sizeof(err))) == NULL)
				fatalx("%s", err);
			/* The context keeps its own copy of the key. */
			freezero(l->tls_key, l->tls_keylen);
			l->tls_key = NULL;
			l->tls_keylen = 0;
		} else if (l->kind == LISTEN_SUBMISSIONS)
			fatalx("submissions %s port %u: no TLS certificate",
			    l->addr, l->port);
		if ((flags = fcntl(l->fd, F_GETFL)) == -1 ||
		    fcntl(l->fd, F_SETFL, flags | O_NONBLOCK) == -1)
			fatal("%s: fcntl", __func__);
		event_set(&sl->ev, l->fd, EV_READ | EV_PERSIST, smtpd_accept,
		    sl);
		event_add(&sl->ev, NULL);
		TAILQ_INSERT_TAIL(&smtpd_listeners, sl, entry);
		log_debug("listening on %s port %u (%s%s)", l->addr, l->port,
		    listener_kind_names[l->kind], sl->tls ? ", TLS" : "");
	}
}

static void
smtpd_reload(struct postern_conf *conf)
{
	authlimit_set(smtpd_auth, conf->limits[LIMIT_AUTH_FAILURES],
	    conf->limits[LIMIT_AUTH_LOCKOUT]);
}

static void
smtpd_shutdown(void)
{
	smtp_session_shutdown();
}

static __attribute__((__noreturn__)) void
smtpd_malformed(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

static void
smtpd_dispatch_storaged(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*s;
	uint64_t	 id;
	uint32_t	 v;
	int		 fd;

	msg_read(&m, imsg);
	switch (imsg->hdr.type) {
	case IMSG_STORE_AUTH_RESULT:
		if (msg_get_u32(&m, &v) == -1 || msg_get_string(&m, &s) == -1 ||
		    msg_end(&m) == -1)
			smtpd_malformed(peer, imsg);
		smtp_session_auth_result(imsg->hdr.peerid, v != 0, s);
		break;
	case IMSG_STORE_SENDER_RESULT:
		if (msg_get_u32(&m, &v) == -1 || msg_end(&m) == -1)
			smtpd_malformed(peer, imsg);
		smtp_session_sender_result(imsg->hdr.peerid, v != 0);
		break;
	case IMSG_STORE_RCPT_RESULT:
		if (msg_get_u32(&m, &v) == -1 || msg_end(&m) == -1 ||
		    v > RCPT_TEMPFAIL)
			smtpd_malformed(peer, imsg);
		smtp_session_rcpt_result(imsg->hdr.peerid, v);
		break;
	case IMSG_STORE_SPOOL_FD:
		fd = imsg->fd;
		imsg->fd = -1;
		if (msg_get_u64(&m, &id) == -1 ||
		    msg_get_string(&m, &s) == -1 || msg_end(&m) == -1 ||
		    (id != 0 && fd == -1))
			smtpd_malformed(peer, imsg);
		smtp_session_spool_fd(imsg->hdr.peerid, id, s, fd);
		break;
	case IMSG_STORE_COMMIT_RESULT:
		if (msg_get_u32(&m, &v) == -1 || msg_get_u64(&m, &id) == -1 ||
		    msg_get_string(&m, &s) == -1 || msg_end(&m) == -1)
			smtpd_malformed(peer, imsg);
		smtp_session_commit_result(imsg->hdr.peerid, v != 0, id, s);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

/* The parent's common messages are handled in lib/proc.c. */
static void
smtpd_dispatch_parent(struct proc_peer *peer, struct imsg *imsg)
{
	proc_unexpected(peer, imsg);
}

/* Nothing yet: commits go through storaged, which tells queue. */
static void
smtpd_dispatch_queue(struct proc_peer *peer, struct imsg *imsg)
{
	proc_unexpected(peer, imsg);
}

const struct proc_role smtpd_role = {
	.id = PROC_SMTPD,
	.init = smtpd_init,
	.reload = smtpd_reload,
	.shutdown = smtpd_shutdown,
	.dispatch = {
		[PROC_PARENT] = smtpd_dispatch_parent,
		[PROC_QUEUE] = smtpd_dispatch_queue,
		[PROC_STORAGED] = smtpd_dispatch_storaged,
	},
};
