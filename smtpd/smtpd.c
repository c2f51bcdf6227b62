/*
 * smtpd: the role.  It sets up its listeners before the sandbox
 * (lib/listen.c builds their TLS contexts and accepts), and relays what
 * storaged answers to the session that asked (the peer id is the
 * session's).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <event.h>
#include <stdlib.h>
#include <unistd.h>

#include "authlimit.h"
#include "envelope.h"
#include "listen.h"
#include "log.h"
#include "proc.h"
#include "smtpd.h"

static struct authlimit	*smtpd_auth;

struct authlimit *
smtpd_authlimit(void)
{
	return smtpd_auth;
}

static void
smtpd_init(struct postern_conf *conf)
{
	if ((smtpd_auth = authlimit_new(conf->limits[LIMIT_AUTH_FAILURES],
	    conf->limits[LIMIT_AUTH_LOCKOUT])) == NULL)
		fatal("%s: authlimit_new", __func__);
	listen_init(conf, PROC_SMTPD, LISTEN_SUBMISSIONS, smtp_session_accept);
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
