/*
 * Durable acceptance.  smtpd writes each message into a spool file
 * whose descriptor storaged handed over; at COMMIT storaged makes it a
 * blob and a queue entry, and only then may smtpd say 250.
 *
 * Commits are made in groups: every COMMIT read in one pass of the
 * event loop joins a batch that starts from a zero timeout once the
 * pass is over.  The sync threads (store_sync.c) hash the batch's
 * spool files, from the page cache; the main thread renames each into
 * /blobs/<hash> and records every entry in one transaction (a
 * savepoint each, so one bad entry spoils no other), committed
 * without SQLite's own fsync.  Then every flush the batch needs runs
 * at once in the threads: fdatasync of each blob, fsync of /blobs and
 * of the WAL (the disk takes parallel flushes far faster than a row
 * of them); when all are done, and only then, each asker gets its
 * COMMIT_RESULT and queue its entries.  Batches overlap: the next
 * starts at the next pass, whatever earlier ones still wait for.
 *
 * So a crash may leave an entry on disk whose blob's name or bytes
 * are not: nobody was told of it, and store_queue_recover() removes
 * it at start-up.
 */
#include <sys/stat.h>
#include <sys/tree.h>

#include <dirent.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "storaged.h"

#define SPOOL_NAME_LEN		16	/* hex digits of a spool id */
#define SPOOL_ORCPT_MAX		500	/* RFC 3461 4.2 */
#define SPOOL_ENVID_MAX		100	/* RFC 3461 4.4 */
#define SPOOL_HELO_MAX		255	/* a name or address literal */
#define SPOOL_CLIENT_MAX	64

struct spool_rcpt {
	char			*address;
	uint8_t			 kind;
	uint32_t		 notify;
	char			*orcpt;
};

struct spool {
	RB_ENTRY(spool)		 entry;
	TAILQ_ENTRY(spool)	 batch;
	enum proc_id		 peer;
	uint64_t		 id;
	uint32_t		 peerid;	/* the session that opened it */
	int			 fd;		/* made, not yet sent */
	struct spool_rcpt	*rcpts;
	size_t			 nrcpts;
	int			 too_many;
	/* From COMMIT on. */
	uint32_t		 commit_peerid;
	char			*sender;
	char			*envid;
	char			*auth;
	char			*client;
	char			*helo;
	uint8_t			 body;
	uint8_t			 smtputf8;
	uint8_t			 ret;
	char			 hash[STORE_HASH_HEX + 1];
	int64_t			 size;
	int64_t			 queue_id;
	int			 in_blobs;	/* its hash is in /blobs */
	struct store_job	 job;	/* its creation, then its hash */
	struct store_job	 flush;	/* its fdatasync, once a blob */
	struct spool_batch	*owner;
	const char		*err;	/* NULL while all is well */
};

RB_HEAD(spool_tree, spool);
TAILQ_HEAD(spool_list, spool);

/* The COMMITs of one event-loop pass, from their flush to the answer. */
struct spool_batch {
	struct spool_list	 spools;
	size_t			 left;		/* jobs not yet done */
};

static int	spool_cmp(struct spool *, struct spool *);
RB_GENERATE(spool_tree, spool, entry, spool_cmp)

static struct spool_tree	 spools = RB_INITIALIZER(&spools);
static size_t			 spool_count;	/* open, committing */
static struct spool_list	 spool_gathering =
				    TAILQ_HEAD_INITIALIZER(spool_gathering);
static struct event		 spool_batch_ev;
static int			 spool_dirfd = -1;

static int
spool_cmp(struct spool *a, struct spool *b)
{
	if (a->peer != b->peer)
		return a->peer < b->peer ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

static __attribute__((__noreturn__)) void
spool_malformed(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

static void
spool_name(uint64_t id, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%016llx", (unsigned long long)id);
}

static void
spool_free(struct spool *s)
{
	size_t	 i;

	for (i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].address);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	free(s->sender);
	free(s->envid);
	free(s->auth);
	free(s->client);
	free(s->helo);
	free(s);
	spool_count--;
}

static void
spool_unlink(struct spool *s)
{
	char	 name[SPOOL_NAME_LEN + 1];

	spool_name(s->id, name, sizeof(name));
	if (unlinkat(spool_dirfd, name, 0) == -1 && errno != ENOENT)
		log_warn("unlink %s/%s", STORE_SPOOL_DIR, name);
}

static struct spool *
spool_find(enum proc_id peer, uint64_t id)
{
	struct spool	 key;

	key.peer = peer;
	key.id = id;
	return RB_FIND(spool_tree, &spools, &key);
}

static void	spool_batch_run(int, short, void *);
static void	spool_batch_finish(struct spool_batch *);
static void	spool_batch_done(void *);

/* /spool, mode 0700, emptied of what a previous run left. */
void
store_spool_init(void)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	int		 fd, n = 0;

	if (mkdir(STORE_SPOOL_DIR, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", STORE_SPOOL_DIR);
	if (lstat(STORE_SPOOL_DIR, &st) == -1)
		fatal("stat %s", STORE_SPOOL_DIR);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077))
		fatalx("%s must be a directory of the storage user, mode 0700",
		    STORE_SPOOL_DIR);
	if ((spool_dirfd = open(STORE_SPOOL_DIR, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		fatal("open %s", STORE_SPOOL_DIR);
	if ((fd = openat(spool_dirfd, ".", O_RDONLY | O_DIRECTORY)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		fatal("opendir %s", STORE_SPOOL_DIR);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* Never acknowledged: nobody got a 250 for these. */
		if (unlinkat(spool_dirfd, de->d_name, 0) == -1)
			log_warn("unlink %s/%s", STORE_SPOOL_DIR, de->d_name);
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("%s: removed %d unfinished message%s",
		    STORE_SPOOL_DIR, n, n == 1 ? "" : "s");
	store_queue_recover();
	evtimer_set(&spool_batch_ev, spool_batch_run, NULL);
}

static void
spool_fd_reply(enum proc_id to, uint32_t peerid, uint64_t id, int fd,
    const char *err)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_SPOOL_FD, peerid, fd);
	msg_add_u64(&m, id);
	msg_add_string(&m, err);
	if (proc_send(to, &m) == -1)
		fatal("%s: IMSG_STORE_SPOOL_FD", __func__);
}

/*
 * In a sync thread: the new file.  Creating a file costs the event
 * loop too much on some file systems (ext4 without a journal looks
 * for recently deleted inodes), so it is made here too.
 */
static void
spool_open_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	struct spool	*s = job->arg;
	char		 name[SPOOL_NAME_LEN + 1];

	(void)buf;
	(void)buflen;
	spool_name(s->id, name, sizeof(name));
	if ((s->fd = openat(spool_dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		job->what = "open";
		job->err = errno;
	}
}

static void
spool_open_done(struct store_job *job)
{
	struct spool	*s = job->arg;
	char		 name[SPOOL_NAME_LEN + 1];

	if (job->what != NULL || spool_find(s->peer, s->id) != NULL) {
		spool_name(s->id, name, sizeof(name));
		errno = job->err;
		if (job->what != NULL)
			log_warn("%s %s/%s", job->what, STORE_SPOOL_DIR, name);
		else
			close(s->fd);
		spool_fd_reply(s->peer, s->peerid, 0, -1,
		    "cannot create a spool file");
		spool_free(s);
		return;
	}
	RB_INSERT(spool_tree, &spools, s);
	spool_fd_reply(s->peer, s->peerid, s->id, s->fd, "");
	s->fd = -1;
}

/* SPOOL_OPEN: a new spool file, and its write descriptor to smtpd. */
void
store_spool_open(struct proc_peer *peer, struct imsg *imsg)
{
	struct spool	*s;

	if (imsg->datalen != 0)
		spool_malformed(peer, imsg);
	if (spool_count >= STORE_SPOOLS_MAX) {
		log_warnx("%d messages being received at once, the most "
		    "allowed", STORE_SPOOLS_MAX);
		spool_fd_reply(peer->id, imsg->hdr.peerid, 0, -1,
		    "too many messages in flight");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("%s: calloc", __func__);
		spool_fd_reply(peer->id, imsg->hdr.peerid, 0, -1,
		    "out of memory");
		return;
	}
	spool_count++;
	s->peer = peer->id;
	s->peerid = imsg->hdr.peerid;
	s->fd = -1;
	do {
		arc4random_buf(&s->id, sizeof(s->id));
	} while (s->id == 0 || spool_find(s->peer, s->id) != NULL);
	s->job.run = spool_open_run;
	s->job.done = spool_open_done;
	s->job.arg = s;
	store_job_submit_first(&s->job);
}

/* SPOOL_RCPT: one accepted recipient, sent just before COMMIT. */
void
store_spool_rcpt(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct spool		*s;
	struct spool_rcpt	*r;
	const char		*address, *orcpt;
	uint64_t		 id;
	uint32_t		 notify;
	uint8_t			 kind;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 ||
	    msg_get_string(&m, &address) == -1 ||
	    msg_get_u8(&m, &kind) == -1 ||
	    msg_get_u32(&m, &notify) == -1 ||
	    msg_get_string(&m, &orcpt) == -1 || msg_end(&m) == -1 ||
	    kind > RCPT_KIND_REMOTE || strlen(address) > ADDRESS_MAX ||
	    strlen(orcpt) > SPOOL_ORCPT_MAX)
		spool_malformed(peer, imsg);
	if ((s = spool_find(peer->id, id)) == NULL) {
		log_warnx("%s: no spool %016llx from %s", __func__,
		    (unsigned long long)id, proc_names[peer->id]);
		return;
	}
	if (s->too_many)
		return;
	if (s->nrcpts >= (size_t)proc_conf->limits[LIMIT_RECIPIENTS]) {
		s->too_many = 1;
		return;
	}
	if ((r = reallocarray(s->rcpts, s->nrcpts + 1, sizeof(*r))) == NULL)
		goto nomem;
	s->rcpts = r;
	r = &s->rcpts[s->nrcpts];
	if ((r->address = strdup(address)) == NULL)
		goto nomem;
	if ((r->orcpt = strdup(orcpt)) == NULL) {
		free(r->address);
		goto nomem;
	}
	r->kind = kind;
	r->notify = notify;
	s->nrcpts++;
	return;
 nomem:
	log_warn("%s", __func__);
	s->too_many = 1;
}

/* SPOOL_ABORT: the transaction was refused or the client went. */
void
store_spool_abort(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	struct spool	*s;
	uint64_t	 id;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_end(&m) == -1)
		spool_malformed(peer, imsg);
	if ((s = spool_find(peer->id, id)) == NULL) {
		log_warnx("%s: no spool %016llx from %s", __func__,
		    (unsigned long long)id, proc_names[peer->id]);
		return;
	}
	RB_REMOVE(spool_tree, &spools, s);
	spool_unlink(s);
	spool_free(s);
}

/*
 * APPEND: the peer's spool file leaves the table of open ones and is
 * the caller's, still in /spool under its id.  -1 if the peer has no
 * such spool.
 */
int
store_spool_take(enum proc_id peer, uint64_t id)
{
	struct spool	*s;

	if ((s = spool_find(peer, id)) == NULL) {
		log_warnx("%s: no spool %016llx from %s", __func__,
		    (unsigned long long)id, proc_names[peer]);
		return -1;
	}
	RB_REMOVE(spool_tree, &spools, s);
	spool_free(s);
	return 0;
}

static void
commit_reply(struct spool *s)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_COMMIT_RESULT, s->commit_peerid, -1);
	msg_add_u32(&m, s->err == NULL);
	msg_add_u64(&m, s->err == NULL ? (uint64_t)s->queue_id : 0);
	msg_add_string(&m, s->err == NULL ? "" : s->err);
	if (proc_send(s->peer, &m) == -1)
		fatal("%s: IMSG_STORE_COMMIT_RESULT", __func__);
}

static char *
commit_strdup(const char *s, size_t max)
{
	if (strlen(s) > max)
		return NULL;
	return strdup(s);
}

/* COMMIT: the message is whole; it joins the next batch. */
void
store_spool_commit(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	struct spool	*s, fake;
	struct timeval	 tv = { 0, 0 };
	const char	*sender, *envid, *auth, *client, *helo;
	uint64_t	 id;
	uint8_t		 body, smtputf8, ret;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 ||
	    msg_get_string(&m, &sender) == -1 ||
	    msg_get_u8(&m, &body) == -1 ||
	    msg_get_u8(&m, &smtputf8) == -1 ||
	    msg_get_u8(&m, &ret) == -1 ||
	    msg_get_string(&m, &envid) == -1 ||
	    msg_get_string(&m, &auth) == -1 ||
	    msg_get_string(&m, &client) == -1 ||
	    msg_get_string(&m, &helo) == -1 || msg_end(&m) == -1)
		spool_malformed(peer, imsg);
	if ((s = spool_find(peer->id, id)) == NULL) {
		log_warnx("%s: no spool %016llx from %s", __func__,
		    (unsigned long long)id, proc_names[peer->id]);
		memset(&fake, 0, sizeof(fake));
		fake.peer = peer->id;
		fake.commit_peerid = imsg->hdr.peerid;
		fake.err = "no such message";
		commit_reply(&fake);
		return;
	}
	RB_REMOVE(spool_tree, &spools, s);
	s->commit_peerid = imsg->hdr.peerid;
	s->body = body;
	s->smtputf8 = smtputf8;
	s->ret = ret;
	/* What the client said of itself is kept, cut if need be. */
	if ((s->sender = commit_strdup(sender, ADDRESS_MAX)) == NULL ||
	    (s->envid = commit_strdup(envid, SPOOL_ENVID_MAX)) == NULL ||
	    (s->auth = commit_strdup(auth, ADDRESS_MAX)) == NULL ||
	    (s->client = strndup(client, SPOOL_CLIENT_MAX)) == NULL ||
	    (s->helo = strndup(helo, SPOOL_HELO_MAX)) == NULL)
		s->err = "bad envelope";
	else if (s->too_many)
		s->err = "too many recipients";
	else if (s->nrcpts == 0)
		s->err = "no recipients";
	TAILQ_INSERT_TAIL(&spool_gathering, s, batch);
	if (!evtimer_pending(&spool_batch_ev, NULL))
		evtimer_add(&spool_batch_ev, &tv);
}

/*
 * In a sync thread: names a spool file (SHA-256 of its bytes) and
 * sizes it.  Nothing is logged here; spool_sync_done() reports
 * job->what.
 */
static void
spool_sync_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	struct spool	*s = job->arg;
	char		 name[SPOOL_NAME_LEN + 1];
	int		 fd;

	spool_name(s->id, name, sizeof(name));
	if ((fd = openat(spool_dirfd, name, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		job->what = "open";
		job->err = errno;
		return;
	}
	store_job_hash_fd(job, fd, buf, buflen, s->hash, &s->size);
}

/* In the main thread: one file is hashed; the last moves on. */
static void
spool_sync_done(struct store_job *job)
{
	struct spool	*s = job->arg;
	char		 name[SPOOL_NAME_LEN + 1];

	if (job->what != NULL) {
		spool_name(s->id, name, sizeof(name));
		errno = job->err;
		log_warn("%s %s/%s", job->what, STORE_SPOOL_DIR, name);
		s->err = "cannot write the message to disk";
	}
	if (--s->owner->left == 0)
		spool_batch_finish(s->owner);
}

/*
 * Moves the spool file to /blobs/<hash>, or drops it if that blob is
 * there already.  Returns 1 if a name was made in /blobs.
 */
static int
commit_rename(struct spool *s)
{
	struct stat	 st;
	char		 name[SPOOL_NAME_LEN + 1];

	spool_name(s->id, name, sizeof(name));
	if (fstatat(store_blob_dir(), s->hash, &st, AT_SYMLINK_NOFOLLOW) ==
	    0) {
		spool_unlink(s);
		s->in_blobs = 1;
		return 0;
	}
	if (renameat(spool_dirfd, name, store_blob_dir(), s->hash) == -1) {
		log_warn("rename %s/%s to %s/%s", STORE_SPOOL_DIR, name,
		    STORE_BLOB_DIR, s->hash);
		return -1;
	}
	s->in_blobs = 1;
	return 1;
}

static int
commit_record(struct spool *s)
{
	struct store_envelope	 env;
	struct store_rcpt	*r;
	size_t			 i;
	int64_t			 id;

	if ((r = calloc(s->nrcpts, sizeof(*r))) == NULL) {
		log_warn("%s", __func__);
		return -1;
	}
	for (i = 0; i < s->nrcpts; i++) {
		r[i].address = s->rcpts[i].address;
		r[i].kind = s->rcpts[i].kind;
		r[i].notify = s->rcpts[i].notify;
		r[i].orcpt = s->rcpts[i].orcpt;
	}
	env.blob = s->hash;
	env.size = s->size;
	env.sender = s->sender;
	env.body = s->body;
	env.smtputf8 = s->smtputf8;
	env.ret = s->ret;
	env.envid = s->envid;
	env.auth = s->auth;
	env.client = s->client;
	env.helo = s->helo;
	id = store_queue_insert(&env, r, s->nrcpts);
	free(r);
	if (id == -1)
		return -1;
	s->queue_id = id;
	return 0;
}

/* One of the savepoint statements, kept prepared, its failure logged. */
static int
commit_exec(const char *sql)
{
	if (store_db_run(sql) == -1) {
		log_warnx("%s: %s: %s", STORE_DB_PATH, sql,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

/*
 * One transaction for the batch, a savepoint per entry, committed
 * lazily: spool_batch_finish() has it flushed.  Returns how many
 * entries were recorded.
 */
static size_t
commit_transaction(struct spool_batch *b)
{
	struct spool	*s;
	size_t		 n = 0;
	int		 fail = 0;

	if (store_db_begin_lazy() == -1)
		fail = 1;
	TAILQ_FOREACH(s, &b->spools, batch) {
		if (s->err != NULL)
			continue;
		if (fail || commit_exec("SAVEPOINT entry") == -1) {
			s->err = "storage error";
			continue;
		}
		if (commit_record(s) == -1) {
			s->err = "storage error";
			if (commit_exec("ROLLBACK TO entry") == -1)
				fail = 1;
		} else
			n++;
		if (commit_exec("RELEASE entry") == -1)
			fail = 1;
	}
	if (fail)
		store_db_rollback_lazy();
	else if (store_db_commit_lazy() == -1)
		fail = 1;
	if (fail) {
		TAILQ_FOREACH(s, &b->spools, batch)
			s->err = "storage error";
		n = 0;
	}
	return n;
}

/*
 * From a zero timeout: the COMMITs gathered go to the sync threads as
 * one batch, whatever batches are still out.
 */
static void
spool_batch_run(int fd, short event, void *arg)
{
	struct spool_batch	*b;
	struct spool		*s;

	(void)fd;
	(void)event;
	(void)arg;
	if (TAILQ_EMPTY(&spool_gathering))
		return;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&b->spools);
	TAILQ_CONCAT(&b->spools, &spool_gathering, batch);
	b->left = 1;	/* until every job is out */
	TAILQ_FOREACH(s, &b->spools, batch) {
		s->owner = b;
		if (s->err != NULL)
			continue;
		b->left++;
		s->job.run = spool_sync_run;
		s->job.done = spool_sync_done;
		s->job.arg = s;
		store_job_submit(&s->job);
	}
	if (--b->left == 0)
		spool_batch_finish(b);
}

/* In a sync thread: a blob's bytes. */
static void
spool_flush_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	struct spool	*s = job->arg;
	int		 fd;

	(void)buf;
	(void)buflen;
	if ((fd = store_job_datasync(job, store_blob_dir(), s->hash)) != -1)
		close(fd);
}

static void
spool_batch_step(struct spool_batch *b)
{
	if (--b->left == 0)
		spool_batch_done(b);
}

static void
spool_flush_done(struct store_job *job)
{
	struct spool	*s = job->arg;

	/* The entry is in the store, perhaps for good: see db_sync_done. */
	if (job->what != NULL) {
		errno = job->err;
		fatal("%s %s/%s", job->what, STORE_BLOB_DIR, s->hash);
	}
	spool_batch_step(s->owner);
}

static void
spool_batch_synced(void *arg)
{
	spool_batch_step(arg);
}

/* Every file of the batch is hashed: name and record, then flush. */
static void
spool_batch_finish(struct spool_batch *b)
{
	struct spool	*s, *t;
	int		 recorded;

	TAILQ_FOREACH(s, &b->spools, batch) {
		if (s->err != NULL) {
			spool_unlink(s);
			continue;
		}
		if (commit_rename(s) == -1) {
			s->err = "cannot write the message to disk";
			spool_unlink(s);
		}
	}
	recorded = commit_transaction(b) > 0;
	/* A blob made for an entry that was not recorded goes again. */
	TAILQ_FOREACH(s, &b->spools, batch)
		if (s->err != NULL && s->in_blobs)
			store_blob_forget(s->hash);
	store_blob_collect();
	if (!recorded) {
		spool_batch_done(b);
		return;
	}
	b->left = 2;	/* the store's flush, and until every job is out */
	TAILQ_FOREACH(s, &b->spools, batch) {
		if (s->err != NULL)
			continue;
		/* Also a blob that was there: it may be a batch's still. */
		for (t = TAILQ_FIRST(&b->spools); t != s;
		    t = TAILQ_NEXT(t, batch))
			if (t->err == NULL && strcmp(t->hash, s->hash) == 0)
				break;
		if (t != s)
			continue;
		b->left++;
		s->flush.run = spool_flush_run;
		s->flush.done = spool_flush_done;
		s->flush.arg = s;
		store_job_submit(&s->flush);
	}
	store_db_sync(1, spool_batch_synced, b);
	spool_batch_step(b);
}

/* The batch is durable: answer, and tell queue. */
static void
spool_batch_done(void *arg)
{
	struct spool_batch	*b = arg;
	struct spool		*s;
	size_t			 n = 0, ok = 0;

	while ((s = TAILQ_FIRST(&b->spools)) != NULL) {
		TAILQ_REMOVE(&b->spools, s, batch);
		n++;
		commit_reply(s);
		if (s->err == NULL) {
			ok++;
			log_debug("%016llx: queued from %s, %zu recipient%s, "
			    "%lld bytes", (unsigned long long)s->queue_id,
			    s->client, s->nrcpts, s->nrcpts == 1 ? "" : "s",
			    (long long)s->size);
			store_queue_announce(s->queue_id);
		} else
			log_warnx("message from %s not queued: %s",
			    s->client != NULL ? s->client : "?", s->err);
		spool_free(s);
	}
	free(b);
	log_debug("group commit: %zu of %zu messages queued", ok, n);
}
