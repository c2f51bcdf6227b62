/*
 * queue: schedules every accepted message.  At start it asks storaged
 * for the queue as stored; storaged tells it of each new entry after
 * its commit.  It sends storaged a DELIVER for each entry whose local
 * recipients are due, retries what failed for now on a back-off and
 * asks storaged to bounce what failed for good.  Control asks it to
 * show, remove or reschedule entries.  smtpd says nothing to it.
 */
#include <string.h>

#include "log.h"
#include "queue.h"

static __attribute__((__noreturn__)) void
queue_malformed(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

void
queue_ctl_reply(uint32_t peerid, uint32_t type, const char *s)
{
	struct msg_out	 m;

	msg_create(&m, type, peerid, -1);
	if (s != NULL)
		msg_add_string(&m, s);
	if (m.overflow)
		fatalx("%s: %s too long", __func__, imsg_type_name(type));
	if (proc_send(PROC_CONTROL, &m) == -1)
		log_warn("%s: reply to control", imsg_type_name(type));
}

static void
queue_init(struct postern_conf *conf)
{
	(void)conf;
	queue_sched_init();
	if (proc_compose(PROC_STORAGED, IMSG_STORE_QUEUE_LOAD, 0, -1,
	    NULL, 0) == -1)
		fatal("%s: IMSG_STORE_QUEUE_LOAD", __func__);
}

static void
queue_recv_rcpt(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*sender, *address, *last_error;
	uint64_t	 id;
	int64_t		 created, next_attempt;
	uint32_t	 index, attempts;
	uint8_t		 kind, status;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 ||
	    msg_get_u32(&m, &index) == -1 ||
	    msg_get_string(&m, &sender) == -1 ||
	    msg_get_i64(&m, &created) == -1 ||
	    msg_get_string(&m, &address) == -1 ||
	    msg_get_u8(&m, &kind) == -1 ||
	    msg_get_u8(&m, &status) == -1 ||
	    msg_get_u32(&m, &attempts) == -1 ||
	    msg_get_i64(&m, &next_attempt) == -1 ||
	    msg_get_string(&m, &last_error) == -1 ||
	    msg_end(&m) == -1)
		queue_malformed(peer, imsg);
	if (strlen(sender) > ADDRESS_MAX || strlen(address) > ADDRESS_MAX ||
	    kind > RCPT_KIND_REMOTE || status > RCPT_REMOVED)
		queue_malformed(peer, imsg);
	queue_rcpt_add(id, index, sender, (time_t)created, address, kind,
	    status, attempts, (time_t)next_attempt, last_error);
}

static void
queue_recv_id(struct proc_peer *peer, struct imsg *imsg, uint64_t *id)
{
	struct msg_in	 m;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, id) == -1 || msg_end(&m) == -1)
		queue_malformed(peer, imsg);
}

static void
queue_recv_deliver_result(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*reason;
	uint64_t	 id;
	uint32_t	 index;
	uint8_t		 result;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 ||
	    msg_get_u32(&m, &index) == -1 ||
	    msg_get_u8(&m, &result) == -1 ||
	    msg_get_string(&m, &reason) == -1 ||
	    msg_end(&m) == -1 || result > DELIVERY_PERMFAIL)
		queue_malformed(peer, imsg);
	queue_deliver_result(imsg->hdr.peerid, id, index, result, reason);
}

static void
queue_recv_bounce_result(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	uint64_t	 id, dsn;
	uint32_t	 ok;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_get_u64(&m, &dsn) == -1 ||
	    msg_get_u32(&m, &ok) == -1 || msg_end(&m) == -1)
		queue_malformed(peer, imsg);
	queue_bounce_result(id, dsn, ok);
}

static void
queue_recv_remove_result(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*err;
	uint32_t	 ok;

	msg_read(&m, imsg);
	if (msg_get_u32(&m, &ok) == -1 || msg_get_string(&m, &err) == -1 ||
	    msg_end(&m) == -1)
		queue_malformed(peer, imsg);
	queue_remove_result(imsg->hdr.peerid, ok, err);
}

static void
queue_dispatch_storaged(struct proc_peer *peer, struct imsg *imsg)
{
	uint64_t	 id;

	switch (imsg->hdr.type) {
	case IMSG_STORE_QUEUE_RCPT:
		queue_recv_rcpt(peer, imsg);
		break;
	case IMSG_STORE_QUEUE_NEW:
		queue_recv_id(peer, imsg, &id);
		queue_entry_new(id);
		break;
	case IMSG_STORE_QUEUE_END:
		if (imsg->datalen != 0)
			queue_malformed(peer, imsg);
		queue_load_end();
		break;
	case IMSG_STORE_DELIVER_RESULT:
		queue_recv_deliver_result(peer, imsg);
		break;
	case IMSG_STORE_DELIVER_DONE:
		queue_recv_id(peer, imsg, &id);
		queue_deliver_done(imsg->hdr.peerid, id);
		break;
	case IMSG_STORE_BOUNCE_RESULT:
		queue_recv_bounce_result(peer, imsg);
		break;
	case IMSG_STORE_QUEUE_REMOVE_RESULT:
		queue_recv_remove_result(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

/* Control checked the syntax; a broken request is still only refused. */
static int
queue_ctl_string(struct imsg *imsg, const char **s)
{
	struct msg_in	 m;

	msg_read(&m, imsg);
	if (msg_get_string(&m, s) == -1 || msg_end(&m) == -1) {
		log_warnx("malformed %s from control",
		    imsg_type_name(imsg->hdr.type));
		queue_ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL,
		    "malformed request");
		return -1;
	}
	return 0;
}

static void
queue_dispatch_control(struct proc_peer *peer, struct imsg *imsg)
{
	const char	*s;

	switch (imsg->hdr.type) {
	case IMSG_CTL_SHOW_QUEUE:
		if (imsg->datalen != 0) {
			queue_ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL,
			    "malformed request");
			break;
		}
		queue_ctl_show(imsg->hdr.peerid);
		break;
	case IMSG_CTL_QUEUE_REMOVE:
		if (queue_ctl_string(imsg, &s) == 0)
			queue_ctl_remove(imsg->hdr.peerid, s);
		break;
	case IMSG_CTL_QUEUE_SCHEDULE:
		if (queue_ctl_string(imsg, &s) == 0)
			queue_ctl_schedule(imsg->hdr.peerid, s);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

const struct proc_role queue_role = {
	.id = PROC_QUEUE,
	.init = queue_init,
	.dispatch = {
		/* Config and log level are proc.c's; nothing else. */
		[PROC_PARENT] = proc_unexpected,
		[PROC_CONTROL] = queue_dispatch_control,
		[PROC_STORAGED] = queue_dispatch_storaged,
		[PROC_SMTPD] = proc_unexpected,
	},
};
