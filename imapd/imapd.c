/*
 * imapd: the role.  It builds a TLS context for each of its listeners
 * before the sandbox, accepts connections, and hands what storaged
 * answers to the session that asked (the peer id is the session's).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "authlimit.h"
#include "imapd.h"
#include "log.h"
#include "proc.h"
#include "tls_conf.h"

static TAILQ_HEAD(, imapd_listener)	imapd_listeners =
    TAILQ_HEAD_INITIALIZER(imapd_listeners);
static struct authlimit			*imapd_auth;
static struct event			 imapd_ev_pause;
static int				 imapd_paused;

struct authlimit *
imapd_authlimit(void)
{
	return imapd_auth;
}

static void
imapd_accept(int fd, short event, void *arg)
{
	struct imapd_listener	*il = arg;
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
			log_warn("accept on %s port %u", il->l->addr,
			    il->l->port);
			imapd_accept_pause();
			return;
		default:
			fatal("accept on %s port %u", il->l->addr, il->l->port);
		}
	}
	/*
	 * A response often leaves in several writes (untagged lines as
	 * storaged answers, then the tagged one): with Nagle each later
	 * write waits for the client's delayed ACK, 40 ms a command.
	 */
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("%s: TCP_NODELAY", __func__);
	imap_session_accept(il, s, (struct sockaddr *)&ss, len);
}

static void
imapd_accept_timeout(int fd, short event, void *arg)
{
	imapd_accept_resume();
}

void
imapd_accept_pause(void)
{
	struct imapd_listener	*il;
	struct timeval		 tv;

	if (imapd_paused)
		return;
	imapd_paused = 1;
	TAILQ_FOREACH(il, &imapd_listeners, entry)
		event_del(&il->ev);
	tv.tv_sec = IMAPD_ACCEPT_PAUSE_MS / 1000;
	tv.tv_usec = (IMAPD_ACCEPT_PAUSE_MS % 1000) * 1000;
	evtimer_set(&imapd_ev_pause, imapd_accept_timeout, NULL);
	evtimer_add(&imapd_ev_pause, &tv);
}

/* Also called when a session ends, since a descriptor is free again. */
void
imapd_accept_resume(void)
{
	struct imapd_listener	*il;

	if (!imapd_paused)
		return;
	imapd_paused = 0;
	evtimer_del(&imapd_ev_pause);
	TAILQ_FOREACH(il, &imapd_listeners, entry)
		event_add(&il->ev, NULL);
}

static void
imapd_init(struct postern_conf *conf)
{
	struct imapd_listener	*il;
	struct listener		*l;
	char			 err[512];
	struct tm		 tm;
	time_t			 t = 0;
	int			 flags;

	/*
	 * glibc reads the time zone file the first time it converts a
	 * time, even for gmtime_r(): let it do so before the sandbox.
	 */
	tzset();
	(void)gmtime_r(&t, &tm);
	/* jansson seeds its hash from /dev/urandom on first use. */
	json_object_seed(0);
	if ((imapd_auth = authlimit_new(conf->limits[LIMIT_AUTH_FAILURES],
	    conf->limits[LIMIT_AUTH_LOCKOUT])) == NULL)
		fatal("%s: authlimit_new", __func__);
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->fd == -1 || listener_proc(l->kind) != PROC_IMAPD)
			continue;
		if ((il = calloc(1, sizeof(*il))) == NULL)
			fatal("%s: calloc", __func__);
		il->l = l;
		if (l->tls_cert != NULL && l->tls_key != NULL) {
			if ((il->tls = tls_conf_listener(l, err,
			    sizeof(err))) == NULL)
				fatalx("%s", err);
			freezero(l->tls_key, l->tls_keylen);
			l->tls_key = NULL;
			l->tls_keylen = 0;
		} else if (l->kind == LISTEN_IMAPS)
			fatalx("imaps %s port %u: no TLS certificate",
			    l->addr, l->port);
		if ((flags = fcntl(l->fd, F_GETFL)) == -1 ||
		    fcntl(l->fd, F_SETFL, flags | O_NONBLOCK) == -1)
			fatal("%s: fcntl", __func__);
		event_set(&il->ev, l->fd, EV_READ | EV_PERSIST, imapd_accept,
		    il);
		event_add(&il->ev, NULL);
		TAILQ_INSERT_TAIL(&imapd_listeners, il, entry);
		log_debug("listening on %s port %u (%s%s)", l->addr, l->port,
		    listener_kind_names[l->kind], il->tls ? ", TLS" : "");
	}
}

static void
imapd_reload(struct postern_conf *conf)
{
	authlimit_set(imapd_auth, conf->limits[LIMIT_AUTH_FAILURES],
	    conf->limits[LIMIT_AUTH_LOCKOUT]);
}

static void
imapd_shutdown(void)
{
	imap_session_shutdown();
}

void
imapd_malformed(struct imsg *imsg)
{
	fatalx("malformed %s from storaged", imsg_type_name(imsg->hdr.type));
}

static void
imapd_auth_result(struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*s;
	uint32_t	 v;

	msg_read(&m, imsg);
	if (msg_get_u32(&m, &v) == -1 || msg_get_string(&m, &s) == -1 ||
	    msg_end(&m) == -1)
		imapd_malformed(imsg);
	imap_session_auth_result(imsg->hdr.peerid, v != 0, s);
}

static void
imapd_spool_fd(struct imap_session *s, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*err;
	uint64_t	 id;
	int		 fd = imsg->fd;

	imsg->fd = -1;
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_get_string(&m, &err) == -1 ||
	    msg_end(&m) == -1 || (id != 0 && fd == -1))
		imapd_malformed(imsg);
	imap_session_spool_fd(s, id, err, fd);
}

/* A spool file for a session that left: storaged drops it. */
static void
imapd_spool_orphan(struct imsg *imsg)
{
	struct msg_in	 m;
	struct msg_out	 out;
	const char	*err;
	uint64_t	 id;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_get_string(&m, &err) == -1 ||
	    msg_end(&m) == -1)
		imapd_malformed(imsg);
	if (id == 0)
		return;
	msg_create(&out, IMSG_STORE_SPOOL_ABORT, imsg->hdr.peerid, -1);
	msg_add_u64(&out, id);
	if (proc_send(PROC_STORAGED, &out) == -1)
		log_warn("%s: SPOOL_ABORT", __func__);
}

static void
imapd_dispatch_storaged(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_session	*s;

	if (imsg->hdr.type == IMSG_STORE_AUTH_RESULT) {
		imapd_auth_result(imsg);
		return;
	}
	if ((s = imap_session_lookup(imsg->hdr.peerid)) == NULL ||
	    (s->flags & SF_CLOSE)) {
		/* The session is gone: its answers go nowhere. */
		if (imsg->fd != -1) {
			close(imsg->fd);
			imsg->fd = -1;
		}
		if (imsg->hdr.type == IMSG_STORE_SPOOL_FD)
			imapd_spool_orphan(imsg);
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_STORE_SPOOL_FD:
		imapd_spool_fd(s, imsg);
		break;
	case IMSG_STORE_CHANGE:
		imap_change(s, imsg);
		break;
	case IMSG_STORE_MBOX_RESULT:
		imap_mbox_result(s, imsg);
		break;
	case IMSG_STORE_MBOX_ITEM:
		imap_mbox_item(s, imsg);
		break;
	case IMSG_STORE_MBOX_END:
		imap_mbox_end(s, imsg);
		break;
	case IMSG_STORE_MBOX_SELECTED:
		imap_mbox_selected(s, imsg);
		break;
	case IMSG_STORE_MBOX_UIDS:
		imap_mbox_uids(s, imsg);
		break;
	case IMSG_STORE_SYNC_FLAGS:
		imap_sync_flags(s, imsg);
		break;
	case IMSG_STORE_SYNC_VANISHED:
		imap_sync_vanished(s, imsg);
		break;
	case IMSG_STORE_SYNC_END:
		imap_sync_end(s, imsg);
		break;
	case IMSG_STORE_MSG_MIME:
		imap_fetch_mime(s, imsg);
		break;
	case IMSG_STORE_MSG_ITEM:
		imap_fetch_item(s, imsg);
		break;
	case IMSG_STORE_MSG_END:
		imap_fetch_end(s, imsg);
		break;
	case IMSG_STORE_STORE_ITEM:
		imap_store_item(s, imsg);
		break;
	case IMSG_STORE_STORE_MODIFIED:
		imap_store_modified(s, imsg);
		break;
	case IMSG_STORE_STORE_END:
		imap_store_end(s, imsg);
		break;
	case IMSG_STORE_COPY_RESULT:
		imap_copy_result(s, imsg);
		break;
	case IMSG_STORE_APPEND_RESULT:
		imap_append_result(s, imsg);
		break;
	case IMSG_STORE_SEARCH_UIDS:
		imap_search_uids(s, imsg);
		break;
	case IMSG_STORE_SEARCH_END:
		imap_search_end(s, imsg);
		break;
	case IMSG_STORE_THREAD_DATA:
		imap_thread_data(s, imsg);
		break;
	case IMSG_STORE_THREAD_END:
		imap_thread_end(s, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
	if (imsg->fd != -1) {
		close(imsg->fd);
		imsg->fd = -1;
	}
	imap_release(s);
}

/* The parent's common messages are handled in lib/proc.c. */
static void
imapd_dispatch_parent(struct proc_peer *peer, struct imsg *imsg)
{
	proc_unexpected(peer, imsg);
}

const struct proc_role imapd_role = {
	.id = PROC_IMAPD,
	.init = imapd_init,
	.reload = imapd_reload,
	.shutdown = imapd_shutdown,
	.dispatch = {
		[PROC_PARENT] = imapd_dispatch_parent,
		[PROC_STORAGED] = imapd_dispatch_storaged,
	},
};
