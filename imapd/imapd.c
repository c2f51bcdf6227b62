/*
 * imapd: the role.  It sets up its listeners before the sandbox
 * (lib/listen.c builds their TLS contexts and accepts), and hands what
 * storaged answers to the session that asked (the peer id is the
 * session's).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "authlimit.h"
#include "imap_proto.h"
#include "imapd.h"
#include "listen.h"
#include "log.h"
#include "proc.h"

static struct authlimit	*imapd_auth;

struct authlimit *
imapd_authlimit(void)
{
	return imapd_auth;
}

static void
imapd_init(struct postern_conf *conf)
{
	struct tm	 tm;
	time_t		 t = 0;

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
	listen_init(conf, PROC_IMAPD, LISTEN_IMAPS, imap_session_accept);
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

/*
 * The UIDs of one MBOX_UIDS, SEARCH_UIDS, COPY_UIDS, STORE_MODIFIED or
 * SYNC_VANISHED (u32 n, n x u32 uid) into uids, IMAP_UIDS_PER_MSG long;
 * returns n.  A malformed one is fatal.
 */
uint32_t
imapd_uids_read(struct imsg *imsg, uint32_t *uids)
{
	struct msg_in	 m;
	uint32_t	 n, i;

	msg_read(&m, imsg);
	if (msg_get_u32(&m, &n) == -1 || n > IMAP_UIDS_PER_MSG)
		imapd_malformed(imsg);
	for (i = 0; i < n; i++)
		if (msg_get_u32(&m, &uids[i]) == -1)
			imapd_malformed(imsg);
	if (msg_end(&m) == -1)
		imapd_malformed(imsg);
	return n;
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
	case IMSG_STORE_MSG_PART:
		imap_fetch_part(s, imsg);
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
	case IMSG_STORE_COPY_UIDS:
		imap_copy_uids(s, imsg);
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
