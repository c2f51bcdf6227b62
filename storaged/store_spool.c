/*
 * Durable acceptance.  smtpd writes each message into a spool file
 * whose descriptor storaged handed over; at COMMIT storaged makes it a
 * blob and a queue entry, and only then may smtpd say 250.
 *
 * Commits are made in groups: every COMMIT read in one pass of the
 * event loop joins a batch that starts from a zero timeout once the
 * pass is over.  The spool files of the batch are fdatasynced and
 * hashed by a pool of threads, all at once (the disk takes parallel
 * flushes far faster than a row of them), while the event loop goes
 * on.  When the last is done the main thread renames each into
 * /blobs, fsyncs /blobs once and records every entry in one
 * transaction (a savepoint each, so one bad entry spoils no other);
 * then each asker gets its COMMIT_RESULT and queue its entries.
 * While a batch is out, the next one gathers.
 */
#include <sys/stat.h>
#include <sys/tree.h>

#include <dirent.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sha2.h>
#include <signal.h>
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
#define SPOOL_READ_SIZE		65536
#define SPOOL_SYNC_THREADS	8	/* fdatasyncs in flight at once */

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
	/* Set by a sync thread. */
	struct spool		*sync_next;
	const char		*sync_what;	/* the call that failed */
	int			 sync_errno;
	const char		*err;	/* NULL while all is well */
};

RB_HEAD(spool_tree, spool);

static int	spool_cmp(struct spool *, struct spool *);
RB_GENERATE(spool_tree, spool, entry, spool_cmp)

static struct spool_tree	 spools = RB_INITIALIZER(&spools);
static size_t			 spool_count;	/* open, committing */
static TAILQ_HEAD(, spool)	 spool_batch =
				    TAILQ_HEAD_INITIALIZER(spool_batch);
static TAILQ_HEAD(, spool)	 spool_syncing =
				    TAILQ_HEAD_INITIALIZER(spool_syncing);
static size_t			 spool_sync_left;	/* of spool_syncing */
static struct event		 spool_batch_ev;
static int			 spool_dirfd = -1;

static pthread_mutex_t		 sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 sync_wakeup = PTHREAD_COND_INITIALIZER;
static struct spool		*sync_head;
static struct spool		**sync_tail = &sync_head;
static int			 sync_started;
/* Static: a thread's first malloc would make glibc a new arena. */
static unsigned char		 sync_bufs[SPOOL_SYNC_THREADS][SPOOL_READ_SIZE];
static int			 sync_done_pipe[2] = { -1, -1 };
static struct event		 sync_done_ev;

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
static void	sync_pool_init(void);

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
	evtimer_set(&spool_batch_ev, spool_batch_run, NULL);
	sync_pool_init();
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

/* SPOOL_OPEN: a new spool file, and its write descriptor to smtpd. */
void
store_spool_open(struct proc_peer *peer, struct imsg *imsg)
{
	struct spool	*s;
	char		 name[SPOOL_NAME_LEN + 1];
	int		 fd;

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
	do {
		arc4random_buf(&s->id, sizeof(s->id));
	} while (s->id == 0 || spool_find(s->peer, s->id) != NULL);
	spool_name(s->id, name, sizeof(name));
	if ((fd = openat(spool_dirfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		log_warn("open %s/%s", STORE_SPOOL_DIR, name);
		spool_free(s);
		spool_fd_reply(peer->id, imsg->hdr.peerid, 0, -1,
		    "cannot create a spool file");
		return;
	}
	RB_INSERT(spool_tree, &spools, s);
	spool_fd_reply(peer->id, imsg->hdr.peerid, s->id, fd, "");
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
	if ((s->sender = commit_strdup(sender, ADDRESS_MAX)) == NULL ||
	    (s->envid = commit_strdup(envid, SPOOL_ENVID_MAX)) == NULL ||
	    (s->auth = commit_strdup(auth, ADDRESS_MAX)) == NULL ||
	    (s->client = commit_strdup(client, SPOOL_CLIENT_MAX)) == NULL ||
	    (s->helo = commit_strdup(helo, SPOOL_HELO_MAX)) == NULL)
		s->err = "bad envelope";
	else if (s->too_many)
		s->err = "too many recipients";
	else if (s->nrcpts == 0)
		s->err = "no recipients";
	TAILQ_INSERT_TAIL(&spool_batch, s, batch);
	if (!evtimer_pending(&spool_batch_ev, NULL))
		evtimer_add(&spool_batch_ev, &tv);
}

/*
 * In a sync thread: makes a spool file durable and names it
 * (fdatasync, SHA-256 of its bytes, size).  The file stays in /spool.
 * Nothing is logged here; the main thread reports sync_what.
 */
static void
sync_run(struct spool *s, unsigned char *buf, size_t buflen)
{
	SHA2_CTX	 ctx;
	char		 name[SPOOL_NAME_LEN + 1];
	ssize_t		 n;
	int		 fd;

	spool_name(s->id, name, sizeof(name));
	if ((fd = openat(spool_dirfd, name, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		s->sync_what = "open";
		s->sync_errno = errno;
		return;
	}
	if (fdatasync(fd) == -1) {
		s->sync_what = "fdatasync";
		s->sync_errno = errno;
		close(fd);
		return;
	}
	SHA256Init(&ctx);
	s->size = 0;
	while ((n = read(fd, buf, buflen)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			s->sync_what = "read";
			s->sync_errno = errno;
			close(fd);
			return;
		}
		SHA256Update(&ctx, buf, n);
		s->size += n;
	}
	close(fd);
	SHA256End(&ctx, s->hash);
}

static void *
sync_thread(void *arg)
{
	struct spool	*s;
	unsigned char	*buf;
	ssize_t		 n;

	(void)arg;
	pthread_mutex_lock(&sync_lock);
	buf = sync_bufs[sync_started];
	sync_started++;
	pthread_cond_broadcast(&sync_wakeup);
	pthread_mutex_unlock(&sync_lock);
	for (;;) {
		pthread_mutex_lock(&sync_lock);
		while (sync_head == NULL)
			pthread_cond_wait(&sync_wakeup, &sync_lock);
		s = sync_head;
		if ((sync_head = s->sync_next) == NULL)
			sync_tail = &sync_head;
		pthread_mutex_unlock(&sync_lock);
		s->sync_next = NULL;

		sync_run(s, buf, SPOOL_READ_SIZE);

		/* A pointer is less than PIPE_BUF: the write is whole. */
		do {
			n = write(sync_done_pipe[1], &s, sizeof(s));
		} while (n == -1 && errno == EINTR);
		if (n != sizeof(s))
			fatal("%s: write", __func__);
	}
	return NULL;
}

static void
sync_submit(struct spool *s)
{
	pthread_mutex_lock(&sync_lock);
	*sync_tail = s;
	sync_tail = &s->sync_next;
	pthread_cond_signal(&sync_wakeup);
	pthread_mutex_unlock(&sync_lock);
}

static void	spool_batch_finish(void);

/* In the main thread: a spool file is synced; the last ends the wait. */
static void
sync_done(int fd, short event, void *arg)
{
	struct spool	*s;
	char		 name[SPOOL_NAME_LEN + 1];
	ssize_t		 n;

	(void)event;
	(void)arg;
	for (;;) {
		n = read(fd, &s, sizeof(s));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n != sizeof(s))
			fatalx("%s: short read from the sync threads",
			    __func__);
		if (s->sync_what != NULL) {
			spool_name(s->id, name, sizeof(name));
			errno = s->sync_errno;
			log_warn("%s %s/%s", s->sync_what, STORE_SPOOL_DIR,
			    name);
			s->err = "cannot write the message to disk";
		}
		if (--spool_sync_left == 0)
			spool_batch_finish();
	}
}

/* Before the sandbox, as the password pool (store_auth.c). */
static void
sync_pool_init(void)
{
	pthread_t	 tid;
	sigset_t	 all, old;
	int		 i, rc, flags;

	if (pipe2(sync_done_pipe, O_CLOEXEC) == -1)
		fatal("pipe2");
	if ((flags = fcntl(sync_done_pipe[0], F_GETFL)) == -1 ||
	    fcntl(sync_done_pipe[0], F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: fcntl", __func__);
	event_set(&sync_done_ev, sync_done_pipe[0], EV_READ | EV_PERSIST,
	    sync_done, NULL);
	event_add(&sync_done_ev, NULL);

	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	for (i = 0; i < SPOOL_SYNC_THREADS; i++) {
		if ((rc = pthread_create(&tid, NULL, sync_thread, NULL)) != 0)
			fatalx("pthread_create: %s", strerror(rc));
		if ((rc = pthread_detach(tid)) != 0)
			fatalx("pthread_detach: %s", strerror(rc));
	}
	if ((rc = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	/* Every thread's own start-up calls before the sandbox. */
	pthread_mutex_lock(&sync_lock);
	while (sync_started < SPOOL_SYNC_THREADS)
		pthread_cond_wait(&sync_wakeup, &sync_lock);
	pthread_mutex_unlock(&sync_lock);
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

static int
commit_exec(const char *sql)
{
	if (sqlite3_exec(store_db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		log_warnx("%s: %s: %s", STORE_DB_PATH, sql,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

/* One transaction for the batch, a savepoint per entry. */
static void
commit_transaction(void)
{
	struct spool	*s;
	int		 fail = 0;

	if (store_db_begin() == -1)
		fail = 1;
	TAILQ_FOREACH(s, &spool_syncing, batch) {
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
		}
		if (commit_exec("RELEASE entry") == -1)
			fail = 1;
	}
	if (!fail && store_db_commit() == -1)
		fail = 1;
	if (fail) {
		store_db_rollback();
		TAILQ_FOREACH(s, &spool_syncing, batch)
			s->err = "storage error";
	}
}

/* From a zero timeout: the gathered COMMITs go to the sync threads. */
static void
spool_batch_run(int fd, short event, void *arg)
{
	struct spool	*s;

	(void)fd;
	(void)event;
	(void)arg;
	if (!TAILQ_EMPTY(&spool_syncing))
		return;		/* spool_batch_finish() comes back */
	TAILQ_CONCAT(&spool_syncing, &spool_batch, batch);
	spool_sync_left = 1;	/* until every job is out */
	TAILQ_FOREACH(s, &spool_syncing, batch) {
		if (s->err != NULL)
			continue;
		spool_sync_left++;
		sync_submit(s);
	}
	if (--spool_sync_left == 0)
		spool_batch_finish();
}

/* Every file of the batch is synced: name, record, answer. */
static void
spool_batch_finish(void)
{
	struct spool	*s;
	struct timeval	 tv = { 0, 0 };
	size_t		 n = 0, ok = 0;
	int		 renamed = 0, rc;

	TAILQ_FOREACH(s, &spool_syncing, batch) {
		n++;
		if (s->err != NULL) {
			spool_unlink(s);
			continue;
		}
		if ((rc = commit_rename(s)) == -1) {
			s->err = "cannot write the message to disk";
			spool_unlink(s);
		} else if (rc == 1)
			renamed = 1;
	}
	if (renamed && store_blob_sync() == -1)
		TAILQ_FOREACH(s, &spool_syncing, batch)
			if (s->err == NULL)
				s->err = "cannot write the message to disk";
	commit_transaction();
	/* A blob made for an entry that was not recorded goes again. */
	TAILQ_FOREACH(s, &spool_syncing, batch)
		if (s->err != NULL && s->in_blobs)
			store_blob_forget(s->hash);
	store_blob_collect();

	while ((s = TAILQ_FIRST(&spool_syncing)) != NULL) {
		TAILQ_REMOVE(&spool_syncing, s, batch);
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
	log_debug("group commit: %zu of %zu messages queued", ok, n);
	if (!TAILQ_EMPTY(&spool_batch) &&
	    !evtimer_pending(&spool_batch_ev, NULL))
		evtimer_add(&spool_batch_ev, &tv);
}
