/*
 * storaged: the one owner of the state directory.  It runs as its own
 * user, chrooted there, and answers only what each peer may ask (the
 * shape of OpenSSH's monitor table): control the admin requests, the
 * network roles a password check.  Anything else from a peer is fatal.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storaged.h"

struct ctl_list {
	uint32_t	 peerid;
};

static void
storaged_pre_chroot(struct postern_conf *conf)
{
	(void)conf;
	store_db_prepare();
}

static void
storaged_init(struct postern_conf *conf)
{
	store_db_open();
	store_blob_init();
	store_sync_init();
	store_fts_init();
	store_spool_init();
	if (store_domains_from_conf(conf) == -1)
		fatalx("cannot add the domains of %s to the store",
		    conf->conffile);
	auth_pool_init();
}

static void
storaged_reload(struct postern_conf *conf)
{
	if (store_domains_from_conf(conf) == -1)
		log_warnx("reload: not every domain of %s is in the store",
		    conf->conffile);
}

static void
storaged_shutdown(void)
{
	store_stmt_close();
	store_clean_stop();
}

/*
 * A request that carried a password: wipe the payload and what is
 * left of it in the channel's read buffer.
 */
static void
storaged_scrub(struct proc_peer *peer, struct imsg *imsg)
{
	struct imsgbuf	*ib = &peer->ibuf;

	if (imsg->data != NULL)
		explicit_bzero(imsg->data, imsg->datalen);
	explicit_bzero(ib->rbuf + ib->rlen, sizeof(ib->rbuf) - ib->rlen);
}

static void
ctl_reply(uint32_t peerid, uint32_t type, const char *s)
{
	struct msg_out	 m;

	msg_create(&m, type, peerid, -1);
	if (s != NULL)
		msg_add_string(&m, s);
	if (proc_send(PROC_CONTROL, &m) == -1)
		log_warn("%s: reply to control", imsg_type_name(type));
}

static void
ctl_result(uint32_t peerid, int rc, const char *err)
{
	if (rc == 0)
		ctl_reply(peerid, IMSG_CTL_OK, NULL);
	else
		ctl_reply(peerid, IMSG_CTL_FAIL, err);
}

static void
ctl_malformed(struct imsg *imsg)
{
	log_warnx("malformed %s from control",
	    imsg_type_name(imsg->hdr.type));
	ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL, "malformed request");
}

static void
ctl_emit_item(const char *s, void *arg)
{
	struct ctl_list	*l = arg;

	ctl_reply(l->peerid, IMSG_CTL_ITEM, s);
}

/* Requests of one string: a domain, or an address. */
static void
ctl_one_string(struct imsg *imsg, int (*fn)(const char *, char *, size_t))
{
	struct msg_in	 m;
	const char	*s;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &s) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	ctl_result(imsg->hdr.peerid, fn(s, err, sizeof(err)), err);
}

static void
ctl_list(struct imsg *imsg, int (*fn)(store_emit_fn, void *, char *,
    size_t))
{
	struct msg_in	 m;
	struct ctl_list	 l;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	l.peerid = imsg->hdr.peerid;
	if (fn(ctl_emit_item, &l, err, sizeof(err)) == -1)
		ctl_reply(l.peerid, IMSG_CTL_FAIL, err);
	else
		ctl_reply(l.peerid, IMSG_CTL_END, NULL);
}

static void
ctl_account_add_done(struct auth_job *job)
{
	char	 err[STORE_ERR_MAX];
	int	 rc;

	if (!job->ok) {
		ctl_reply(job->peerid, IMSG_CTL_FAIL,
		    "cannot hash the password");
		return;
	}
	rc = store_account_create(job->address, job->hash, err, sizeof(err));
	ctl_result(job->peerid, rc, err);
}

static void
ctl_account_passwd_done(struct auth_job *job)
{
	char	 err[STORE_ERR_MAX];
	int	 rc;

	if (!job->ok) {
		ctl_reply(job->peerid, IMSG_CTL_FAIL,
		    "cannot hash the password");
		return;
	}
	rc = store_account_set_hash(job->address, job->hash, err,
	    sizeof(err));
	ctl_result(job->peerid, rc, err);
}

/*
 * ACCOUNT_ADD and ACCOUNT_PASSWD: check what can be checked now, hash
 * in the pool, finish in the callback.
 */
static void
ctl_account_password(struct proc_peer *peer, struct imsg *imsg,
    int (*check)(const char *, const char *, char *, size_t, char *,
    size_t), void (*done)(struct auth_job *))
{
	struct msg_in	 m;
	struct auth_job	*job;
	const char	*addr, *password;
	char		 canon[ADDRESS_MAX + 1], err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &addr) == -1 ||
	    msg_get_string(&m, &password) == -1 || msg_end(&m) == -1) {
		storaged_scrub(peer, imsg);
		ctl_malformed(imsg);
		return;
	}
	if (check(addr, password, canon, sizeof(canon), err,
	    sizeof(err)) == -1) {
		storaged_scrub(peer, imsg);
		ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL, err);
		return;
	}
	job = auth_job_new(AUTH_JOB_HASH, password, done);
	storaged_scrub(peer, imsg);
	if (job == NULL) {
		ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL,
		    "password too long");
		return;
	}
	job->peer = PROC_CONTROL;
	job->peerid = imsg->hdr.peerid;
	job->type = imsg->hdr.type;
	strlcpy(job->address, canon, sizeof(job->address));
	if (auth_job_submit(job) == -1) {
		ctl_reply(job->peerid, IMSG_CTL_FAIL,
		    "too many password requests waiting, try again");
		auth_job_free(job);
	}
}

static void
ctl_alias_add(struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*alias, *target;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &alias) == -1 ||
	    msg_get_string(&m, &target) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	ctl_result(imsg->hdr.peerid, store_alias_add(alias, target, err,
	    sizeof(err)), err);
}

static void
ctl_alias_del(struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*alias, *target;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &alias) == -1 ||
	    msg_get_string(&m, &target) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	ctl_result(imsg->hdr.peerid, store_alias_del(alias, target, err,
	    sizeof(err)), err);
}

/* MAILBOX_LIST: s account. */
static void
ctl_mailbox_list(struct imsg *imsg)
{
	struct msg_in	 m;
	struct ctl_list	 l;
	const char	*account;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &account) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	l.peerid = imsg->hdr.peerid;
	if (store_mailbox_list(account, ctl_emit_item, &l, err,
	    sizeof(err)) == -1)
		ctl_reply(l.peerid, IMSG_CTL_FAIL, err);
	else
		ctl_reply(l.peerid, IMSG_CTL_END, NULL);
}

/* MESSAGE_LIST: s account, s mailbox. */
static void
ctl_message_list(struct imsg *imsg)
{
	struct msg_in	 m;
	struct ctl_list	 l;
	const char	*account, *mailbox;
	char		 err[STORE_ERR_MAX];

	msg_read(&m, imsg);
	if (msg_get_string(&m, &account) == -1 ||
	    msg_get_string(&m, &mailbox) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	l.peerid = imsg->hdr.peerid;
	if (store_message_list(account, mailbox, ctl_emit_item, &l, err,
	    sizeof(err)) == -1)
		ctl_reply(l.peerid, IMSG_CTL_FAIL, err);
	else
		ctl_reply(l.peerid, IMSG_CTL_END, NULL);
}

/* MESSAGE_SHOW: s account, s mailbox, u32 uid -> OK: s prefix + fd. */
static void
ctl_message_show(struct imsg *imsg)
{
	struct msg_in	 m;
	struct msg_out	 out;
	const char	*account, *mailbox;
	char		 err[STORE_ERR_MAX], *prefix;
	uint32_t	 uid;
	int		 fd;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &account) == -1 ||
	    msg_get_string(&m, &mailbox) == -1 ||
	    msg_get_u32(&m, &uid) == -1 || msg_end(&m) == -1) {
		ctl_malformed(imsg);
		return;
	}
	if (store_message_open(account, mailbox, uid, &prefix, &fd, err,
	    sizeof(err)) == -1) {
		ctl_reply(imsg->hdr.peerid, IMSG_CTL_FAIL, err);
		return;
	}
	msg_create(&out, IMSG_CTL_OK, imsg->hdr.peerid, fd);
	msg_add_string(&out, prefix);
	free(prefix);
	/* The descriptor is closed once sent, or on failure. */
	if (proc_send(PROC_CONTROL, &out) == -1)
		log_warn("%s: reply to control", __func__);
}

static void
storaged_dispatch_control(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_CTL_DOMAIN_ADD:
		ctl_one_string(imsg, store_domain_add);
		break;
	case IMSG_CTL_DOMAIN_DEL:
		ctl_one_string(imsg, store_domain_del);
		break;
	case IMSG_CTL_DOMAIN_LIST:
		ctl_list(imsg, store_domain_list);
		break;
	case IMSG_CTL_ACCOUNT_ADD:
		ctl_account_password(peer, imsg, store_account_add_check,
		    ctl_account_add_done);
		break;
	case IMSG_CTL_ACCOUNT_DEL:
		ctl_one_string(imsg, store_account_del);
		break;
	case IMSG_CTL_ACCOUNT_LIST:
		ctl_list(imsg, store_account_list);
		break;
	case IMSG_CTL_ACCOUNT_PASSWD:
		ctl_account_password(peer, imsg, store_account_passwd_check,
		    ctl_account_passwd_done);
		break;
	case IMSG_CTL_ALIAS_ADD:
		ctl_alias_add(imsg);
		break;
	case IMSG_CTL_ALIAS_DEL:
		ctl_alias_del(imsg);
		break;
	case IMSG_CTL_ALIAS_LIST:
		ctl_list(imsg, store_alias_list);
		break;
	case IMSG_CTL_MAILBOX_LIST:
		ctl_mailbox_list(imsg);
		break;
	case IMSG_CTL_MESSAGE_LIST:
		ctl_message_list(imsg);
		break;
	case IMSG_CTL_MESSAGE_SHOW:
		ctl_message_show(imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

static void
auth_reply(enum proc_id to, uint32_t peerid, int ok, const char *addr)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_AUTH_RESULT, peerid, -1);
	msg_add_u32(&m, ok ? 1 : 0);
	msg_add_string(&m, ok ? addr : "");
	if (proc_send(to, &m) == -1)
		log_warn("auth result to %s", proc_names[to]);
}

static void
auth_verify_done(struct auth_job *job)
{
	int	 ok;

	/* The password may have changed, or the account gone, meanwhile. */
	ok = job->ok && job->account_id > 0 &&
	    store_auth_current(job->account_id, job->hash);
	log_debug("%s: authentication %s for %s", proc_names[job->peer],
	    ok ? "succeeded" : "failed",
	    job->account_id > 0 ? job->address : "an unknown user");
	if (ok && job->peer == PROC_IMAPD)
		store_imap_bind(job->peerid, job->account_id);
	auth_reply(job->peer, job->peerid, ok, job->address);
}

/*
 * A login from a network role.  Unknown users are checked against a
 * dummy hash, so that they take as long as a wrong password.
 */
static void
storaged_auth(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	struct auth_job	*job;
	const char	*user, *password;
	char		 canon[ADDRESS_MAX + 1], hash[STORE_HASH_MAX];
	int64_t		 id;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &user) == -1 ||
	    msg_get_string(&m, &password) == -1 || msg_end(&m) == -1)
		fatalx("malformed %s from %s",
		    imsg_type_name(imsg->hdr.type), proc_names[peer->id]);
	canon[0] = '\0';
	if (strlen(user) > ADDRESS_MAX ||
	    (job = auth_job_new(AUTH_JOB_VERIFY, password,
	    auth_verify_done)) == NULL) {
		storaged_scrub(peer, imsg);
		auth_reply(peer->id, imsg->hdr.peerid, 0, "");
		return;
	}
	job->peer = peer->id;
	job->peerid = imsg->hdr.peerid;
	job->type = imsg->hdr.type;
	/* user points into the payload: look it up before the wipe. */
	if ((id = store_auth_lookup(user, canon, sizeof(canon), hash,
	    sizeof(hash))) > 0) {
		job->account_id = id;
		strlcpy(job->address, canon, sizeof(job->address));
		strlcpy(job->hash, hash, sizeof(job->hash));
	} else
		strlcpy(job->hash, auth_dummy_hash(), sizeof(job->hash));
	storaged_scrub(peer, imsg);
	if (id == -1 || auth_job_submit(job) == -1) {
		auth_reply(peer->id, imsg->hdr.peerid, 0, "");
		auth_job_free(job);
	}
}

static void
storaged_dispatch_smtpd(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STORE_AUTH:
		storaged_auth(peer, imsg);
		break;
	case IMSG_STORE_RCPT:
		store_rcpt_lookup(peer, imsg);
		break;
	case IMSG_STORE_SENDER_CHECK:
		store_sender_check(peer, imsg);
		break;
	case IMSG_STORE_SPOOL_OPEN:
		store_spool_open(peer, imsg);
		break;
	case IMSG_STORE_SPOOL_RCPT:
		store_spool_rcpt(peer, imsg);
		break;
	case IMSG_STORE_SPOOL_ABORT:
		store_spool_abort(peer, imsg);
		break;
	case IMSG_STORE_COMMIT:
		store_spool_commit(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

static void
storaged_dispatch_queue(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STORE_QUEUE_LOAD:
		store_queue_load(peer, imsg);
		break;
	case IMSG_STORE_QUEUE_UPDATE:
		store_queue_update(peer, imsg);
		break;
	case IMSG_STORE_QUEUE_REMOVE:
		store_queue_remove(peer, imsg);
		break;
	case IMSG_STORE_DELIVER:
		store_deliver(peer, imsg);
		break;
	case IMSG_STORE_BOUNCE:
		store_bounce(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

static void
storaged_dispatch_imapd(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STORE_AUTH:
		storaged_auth(peer, imsg);
		break;
	case IMSG_STORE_SESSION_END:
		store_imap_session_end(peer, imsg);
		break;
	case IMSG_STORE_MBOX_LIST:
		store_imap_list(peer, imsg);
		break;
	case IMSG_STORE_MBOX_CREATE:
		store_imap_create(peer, imsg);
		break;
	case IMSG_STORE_MBOX_DELETE:
		store_imap_delete(peer, imsg);
		break;
	case IMSG_STORE_MBOX_RENAME:
		store_imap_rename(peer, imsg);
		break;
	case IMSG_STORE_MBOX_SUBSCRIBE:
		store_imap_subscribe(peer, imsg);
		break;
	case IMSG_STORE_MBOX_SELECT:
		store_imap_select(peer, imsg);
		break;
	case IMSG_STORE_MBOX_UNSELECT:
		store_imap_unselect(peer, imsg);
		break;
	case IMSG_STORE_MBOX_SYNC:
		store_imap_sync(peer, imsg);
		break;
	case IMSG_STORE_MSG_RANGES:
		store_imap_ranges(peer, imsg);
		break;
	case IMSG_STORE_MSG_FETCH:
		store_imap_fetch(peer, imsg);
		break;
	case IMSG_STORE_MSG_STORE:
		store_imap_store(peer, imsg);
		break;
	case IMSG_STORE_MSG_COPY:
		store_imap_copy(peer, imsg);
		break;
	case IMSG_STORE_MSG_EXPUNGE:
		store_imap_expunge(peer, imsg);
		break;
	case IMSG_STORE_SPOOL_OPEN:
		store_spool_open(peer, imsg);
		break;
	case IMSG_STORE_SPOOL_ABORT:
		store_spool_abort(peer, imsg);
		break;
	case IMSG_STORE_MSG_APPEND:
		store_imap_append(peer, imsg);
		break;
	case IMSG_STORE_MSG_APPEND_COMMIT:
		store_imap_append_commit(peer, imsg);
		break;
	case IMSG_STORE_MSG_APPEND_ABORT:
		store_imap_append_abort(peer, imsg);
		break;
	case IMSG_STORE_MSG_SEARCH:
		store_imap_search(peer, imsg);
		break;
	case IMSG_STORE_MSG_THREAD:
		store_imap_thread(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

static void
storaged_dispatch_jmapd(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STORE_AUTH:
		storaged_auth(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

static void
storaged_dispatch_davd(struct proc_peer *peer, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STORE_AUTH:
		storaged_auth(peer, imsg);
		break;
	default:
		proc_unexpected(peer, imsg);
	}
}

const struct proc_role storaged_role = {
	.id = PROC_STORAGED,
	.pre_chroot = storaged_pre_chroot,
	.init = storaged_init,
	.reload = storaged_reload,
	.shutdown = storaged_shutdown,
	.dispatch = {
		[PROC_CONTROL] = storaged_dispatch_control,
		[PROC_SMTPD] = storaged_dispatch_smtpd,
		[PROC_QUEUE] = storaged_dispatch_queue,
		[PROC_IMAPD] = storaged_dispatch_imapd,
		[PROC_JMAPD] = storaged_dispatch_jmapd,
		[PROC_DAVD] = storaged_dispatch_davd,
	},
};
