/*
 * Flushes off the event loop.  A pool of threads runs jobs that wait
 * on the disk (fdatasync of spool files, fsync of /blobs and of the
 * WAL) and hands each back to the main thread through a pipe, as the
 * password pool does (store_auth.c).  Several flushes at once cost the
 * disk little more than one, and the event loop meanwhile answers
 * lookups and commits.  Only the main thread touches store_db (the
 * indexer thread of store_fts.c has a connection of its own, and the
 * checkpoints below one more).
 *
 * store_db_sync() makes every commit made so far durable and then
 * calls back; requests that come while a flush is out share the next
 * one.  With store_db_begin_lazy() and store_db_commit_lazy() a
 * transaction commits without a flush (still atomic, durable once the
 * WAL is flushed), so that the flush can be made here, once for many
 * transactions.  Whoever commits lazily must not tell anyone before
 * its store_db_sync() callback, nor unlink what the transaction
 * dropped (collect blobs in the callback).
 *
 * The main connection runs at synchronous = NORMAL throughout, and
 * every other commit is flushed by the WAL hook (db_wal_hook()) before
 * the statement that commits returns: what FULL does, without setting
 * the level before and after each lazy transaction (a PRAGMA that
 * SQLite prepares again at each run, 6% of the main thread under
 * STORE).  The hook runs when that statement steps to SQLITE_DONE, so
 * a write outside a transaction with RETURNING must be stepped to its
 * end (every one here runs inside a transaction).
 *
 * Other sessions do see a lazy commit at once, though, and a crash
 * before its flush takes it back: store_clean.c moves the counters
 * forward at the next start.  For that the rows lazy commits wrote
 * and no flush has covered yet are kept under STORE_LAZY_ROWS_MAX: a
 * commit that goes past it is flushed at once, on the event loop, so
 * more are never seen.
 */
#include <sys/queue.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <pthread.h>
#include <sha2.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storaged.h"

struct db_sync_req {
	TAILQ_ENTRY(db_sync_req) entry;
	void			(*done)(void *);
	void			*arg;
};
TAILQ_HEAD(db_sync_reqs, db_sync_req);

static pthread_mutex_t	 sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 sync_wakeup = PTHREAD_COND_INITIALIZER;
static struct store_job	*sync_head;
static struct store_job	**sync_tail = &sync_head;
static int		 sync_started;
/* Static: a thread's first malloc would make glibc a new arena. */
static unsigned char	 sync_bufs[STORE_SYNC_THREADS][STORE_SYNC_BUF];
static int		 sync_done_pipe[2] = { -1, -1 };
static struct event	 sync_done_ev;

static struct store_job		 db_sync_job;	/* the WAL */
static struct store_job		 db_sync_dir;	/* /blobs, at once */
static int			 db_sync_left;	/* of the two */
static struct db_sync_reqs	 db_sync_waiting =
				    TAILQ_HEAD_INITIALIZER(db_sync_waiting);
static struct db_sync_reqs	 db_sync_out =
				    TAILQ_HEAD_INITIALIZER(db_sync_out);
static int			 db_sync_dirsync;	/* for the next */
static int			 db_sync_busy;
/*
 * Lazy commits made, and how many of them are known on disk: a file
 * that a lazy commit stopped naming is unlinked only once they meet.
 */
static uint64_t			 db_lazy_made, db_lazy_synced;
static uint64_t			 db_lazy_flushing;
/* The same in rows written (sqlite3_total_changes64()). */
static int64_t			 db_rows_made, db_rows_synced;
static int64_t			 db_rows_flushing;
static int64_t			 db_rows_begin;	/* at its BEGIN */
static int			 db_lazy_open;


static void *
sync_thread(void *arg)
{
	struct store_job	*job;
	unsigned char		*buf;
	ssize_t			 n;

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
		job = sync_head;
		if ((sync_head = job->next) == NULL)
			sync_tail = &sync_head;
		pthread_mutex_unlock(&sync_lock);
		job->next = NULL;

		job->run(job, buf, STORE_SYNC_BUF);

		/* A pointer is less than PIPE_BUF: the write is whole. */
		do {
			n = write(sync_done_pipe[1], &job, sizeof(job));
		} while (n == -1 && errno == EINTR);
		if (n != sizeof(job))
			fatal("%s: write", __func__);
	}
	return NULL;
}

/* In the main thread: each finished job to its done(). */
static void
sync_done(int fd, short event, void *arg)
{
	struct store_job	*job;
	ssize_t			 n;

	(void)event;
	(void)arg;
	for (;;) {
		n = read(fd, &job, sizeof(job));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n != sizeof(job))
			fatalx("%s: short read from the sync threads",
			    __func__);
		job->done(job);
	}
}

/*
 * Runs job->run(job, buf, buflen) in a thread (buf is the thread's
 * own), then job->done(job) in the main thread.  job->what and
 * job->err are cleared here for run() to report a failure in.
 */
void
store_job_submit(struct store_job *job)
{
	job->what = NULL;
	job->err = 0;
	pthread_mutex_lock(&sync_lock);
	*sync_tail = job;
	sync_tail = &job->next;
	pthread_cond_signal(&sync_wakeup);
	pthread_mutex_unlock(&sync_lock);
}

/* The same, ahead of the jobs waiting: a client waits for this one. */
void
store_job_submit_first(struct store_job *job)
{
	job->what = NULL;
	job->err = 0;
	pthread_mutex_lock(&sync_lock);
	if ((job->next = sync_head) == NULL)
		sync_tail = &job->next;
	sync_head = job;
	pthread_cond_signal(&sync_wakeup);
	pthread_mutex_unlock(&sync_lock);
}

/* In a sync thread: the names made in /blobs. */
void
store_job_blob_dir_run(struct store_job *job, unsigned char *buf,
    size_t buflen)
{
	(void)buf;
	(void)buflen;
	if (fsync(store_blob_dir()) == -1) {
		job->what = "fsync " STORE_BLOB_DIR;
		job->err = errno;
	}
}

/*
 * In a sync thread: path, under dirfd, opened and fdatasynced; its fd,
 * or -1 with job->what ("open" or "fdatasync") and job->err set.
 */
int
store_job_datasync(struct store_job *job, int dirfd, const char *path)
{
	int	 fd;

	if ((fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		job->what = "open";
		job->err = errno;
		return -1;
	}
	if (fdatasync(fd) == -1) {
		job->what = "fdatasync";
		job->err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * In a sync thread: fd read to its end through buf into a SHA-256, in
 * hex in hash (STORE_HASH_HEX + 1), its length in *size if not NULL;
 * fd closed.  On a read error job->what and job->err say so.
 */
void
store_job_hash_fd(struct store_job *job, int fd, unsigned char *buf,
    size_t buflen, char *hash, int64_t *size)
{
	SHA2_CTX	 ctx;
	ssize_t		 n;

	SHA256Init(&ctx);
	if (size != NULL)
		*size = 0;
	while ((n = read(fd, buf, buflen)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			job->what = "read";
			job->err = errno;
			close(fd);
			return;
		}
		SHA256Update(&ctx, buf, n);
		if (size != NULL)
			*size += n;
	}
	close(fd);
	SHA256End(&ctx, hash);
}

/* In a thread: the WAL. */
static void
db_sync_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	int	 fd;

	(void)buf;
	(void)buflen;
	if ((fd = open(STORE_DB_PATH "-wal", O_RDONLY | O_CLOEXEC)) == -1) {
		job->what = "open " STORE_DB_PATH "-wal";
		job->err = errno;
		return;
	}
	if (fdatasync(fd) == -1) {
		job->what = "fdatasync " STORE_DB_PATH "-wal";
		job->err = errno;
	}
	close(fd);
}

/*
 * The two flushes run side by side: an entry that reached the disk
 * without its blob's name is removed at start-up
 * (store_queue_recover()), as nobody was told of it.
 */
static void
db_sync_start(void)
{
	TAILQ_CONCAT(&db_sync_out, &db_sync_waiting, entry);
	db_sync_busy = 1;
	db_lazy_flushing = db_lazy_made;
	db_rows_flushing = db_rows_made;
	db_sync_left = 1;
	if (db_sync_dirsync) {
		db_sync_left++;
		store_job_submit(&db_sync_dir);
	}
	db_sync_dirsync = 0;
	store_job_submit(&db_sync_job);
}

static void
db_sync_done(struct store_job *job)
{
	struct db_sync_reqs	 done = TAILQ_HEAD_INITIALIZER(done);
	struct db_sync_req	*req;

	/*
	 * What was committed may be on disk or not; what was written
	 * after a failed fsync may never be (Linux forgets the error).
	 * Answering either way could lose mail or repeat it: stop.
	 */
	if (job->what != NULL) {
		errno = job->err;
		fatal("%s", job->what);
	}
	if (--db_sync_left > 0)
		return;
	TAILQ_CONCAT(&done, &db_sync_out, entry);
	db_sync_busy = 0;
	if (db_lazy_synced < db_lazy_flushing)
		db_lazy_synced = db_lazy_flushing;
	if (db_rows_synced < db_rows_flushing)
		db_rows_synced = db_rows_flushing;
	if (!TAILQ_EMPTY(&db_sync_waiting))
		db_sync_start();
	while ((req = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, req, entry);
		req->done(req->arg);
		free(req);
	}
	store_blob_collect();
}

/* Whether every commit made so far is on disk. */
int
store_db_durable(void)
{
	return db_lazy_synced == db_lazy_made;
}

/*
 * Flushes the WAL now, on the event loop: every commit made so far is
 * on disk when it returns 0.
 */
int
store_db_flush(void)
{
	struct store_job	 job;

	memset(&job, 0, sizeof(job));
	db_sync_run(&job, NULL, 0);
	/* No WAL: every commit is in the database file, flushed. */
	if (job.what != NULL && job.err != ENOENT) {
		errno = job.err;
		log_warn("%s", job.what);
		return -1;
	}
	db_lazy_synced = db_lazy_made;
	db_rows_synced = db_rows_made;
	return 0;
}

/*
 * Calls done(arg) in the main thread once every commit made before
 * this call is on disk, and with dirsync every name made in /blobs.
 */
void
store_db_sync(int dirsync, void (*done)(void *), void *arg)
{
	struct db_sync_req	*req;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		fatal("%s", __func__);
	req->done = done;
	req->arg = arg;
	TAILQ_INSERT_TAIL(&db_sync_waiting, req, entry);
	if (dirsync)
		db_sync_dirsync = 1;
	if (!db_sync_busy)
		db_sync_start();
}

/* BEGIN IMMEDIATE for a transaction that store_db_commit_lazy() ends. */
int
store_db_begin_lazy(void)
{
	/* A crash may lose what is seen from now on. */
	store_clean_dirty();
	if (store_db_begin() == -1)
		return -1;
	db_lazy_open = 1;
	db_rows_begin = sqlite3_total_changes64(store_db);
	return 0;
}

/* COMMIT without a flush; rolled back on failure. */
int
store_db_commit_lazy(void)
{
	int	 rc;

	/* db_lazy_open still set: the WAL hook does not flush it. */
	rc = store_db_commit();
	db_lazy_open = 0;
	if (rc == 0) {
		db_lazy_made++;
		db_rows_made += sqlite3_total_changes64(store_db) -
		    db_rows_begin;
	}
	if (db_rows_made - db_rows_synced > STORE_LAZY_ROWS_MAX) {
		if (store_db_flush() == -1)
			fatalx("%s: a commit may not be on disk",
			    STORE_DB_PATH);
		log_debug("%s: flushed at once past %d rows unflushed",
		    STORE_DB_PATH, STORE_LAZY_ROWS_MAX);
	}
	return rc;
}

/* The other end of store_db_begin_lazy(), when the work failed. */
void
store_db_rollback_lazy(void)
{
	store_db_rollback();
	db_lazy_open = 0;
}

/*
 * WAL checkpoints, off the event loop too.  SQLite's own ran in the
 * commit that took the WAL past 1000 pages, in the main thread: a
 * third of its time under STORE and EXPUNGE.  A connection of their
 * own (ckpt_db, opened before the sandbox) copies the WAL back into
 * the database from a sync thread, one checkpoint at a time, without
 * stopping the main thread's commits; the WAL starts again from its
 * beginning at the first transaction after one that caught up.  Should
 * it grow past STORE_CKPT_FRAMES_MAX all the same (commits landing
 * during every checkpoint), the main thread checkpoints in its commit
 * as SQLite did, whole as no commit can land then.
 */
#define STORE_CKPT_FRAMES	1000
#define STORE_CKPT_FRAMES_MAX	8000

static sqlite3		*ckpt_db;
static pthread_mutex_t	 ckpt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct store_job	 ckpt_job;
static int		 ckpt_busy;
static int		 ckpt_frames;	/* the WAL's at the last one */

/* In a thread. */
static void
ckpt_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	int	 rc;

	(void)buf;
	(void)buflen;
	pthread_mutex_lock(&ckpt_lock);
	if (ckpt_db != NULL && (rc = sqlite3_wal_checkpoint_v2(ckpt_db,
	    NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL)) != SQLITE_OK &&
	    rc != SQLITE_BUSY) {
		job->what = "checkpoint";
		job->err = rc;
	}
	pthread_mutex_unlock(&ckpt_lock);
}

static void
ckpt_done(struct store_job *job)
{
	/* A failed write to the database itself: stop, as for a flush. */
	if (job->what != NULL)
		fatalx("%s: %s: %s", STORE_DB_PATH, job->what,
		    sqlite3_errstr(job->err));
	ckpt_busy = 0;
}

/*
 * After each commit of the main connection (sqlite3_wal_hook()),
 * before the statement that made it returns: one not lazy is flushed
 * now, as synchronous = FULL would have; then the checkpoints.
 */
static int
db_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)arg;
	if (strcmp(name, "main") != 0)
		return SQLITE_OK;
	/* As in db_sync_done(): on disk or not, nobody can tell. */
	if (!db_lazy_open && store_db_flush() == -1)
		fatalx("%s: a commit may not be on disk", STORE_DB_PATH);
	if (frames < STORE_CKPT_FRAMES)
		return SQLITE_OK;
	/* The WAL started again. */
	if (frames < ckpt_frames)
		ckpt_frames = 0;
	/* SQLITE_BUSY while the thread's runs: the next commit retries. */
	if (frames >= STORE_CKPT_FRAMES_MAX)
		(void)sqlite3_wal_checkpoint_v2(db, "main",
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	else if (!ckpt_busy && frames - ckpt_frames >= STORE_CKPT_FRAMES) {
		/* Each flushes the disk: no more often than SQLite's. */
		ckpt_busy = 1;
		ckpt_frames = frames;
		store_job_submit(&ckpt_job);
	}
	return SQLITE_OK;
}

static void
ckpt_init(void)
{
	int	 rc;

	rc = sqlite3_open_v2(STORE_DB_PATH, &ckpt_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK)
		fatalx("%s: checkpoint connection: %s", STORE_DB_PATH,
		    ckpt_db ? sqlite3_errmsg(ckpt_db) : sqlite3_errstr(rc));
	if (sqlite3_busy_timeout(ckpt_db, STORE_BUSY_TIMEOUT_MS) !=
	    SQLITE_OK ||
	    sqlite3_exec(ckpt_db, "PRAGMA synchronous = FULL", NULL, NULL,
	    NULL) != SQLITE_OK ||
	    /* Its files opened now, before the sandbox. */
	    sqlite3_wal_checkpoint_v2(ckpt_db, NULL,
	    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) != SQLITE_OK)
		fatalx("%s: checkpoint connection: %s", STORE_DB_PATH,
		    sqlite3_errmsg(ckpt_db));
	ckpt_job.run = ckpt_run;
	ckpt_job.done = ckpt_done;
	/*
	 * In place of SQLite's own checkpoints (sqlite3_wal_autocheckpoint)
	 * and of its flush at each commit (synchronous = FULL until now).
	 */
	sqlite3_wal_hook(store_db, db_wal_hook, NULL);
	if (sqlite3_exec(store_db, "PRAGMA main.synchronous = NORMAL", NULL,
	    NULL, NULL) != SQLITE_OK)
		fatalx("%s: synchronous: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
}

/* Before store_db is closed: its close then finds it the last. */
void
store_ckpt_close(void)
{
	pthread_mutex_lock(&ckpt_lock);
	if (ckpt_db != NULL && sqlite3_close(ckpt_db) != SQLITE_OK)
		log_warnx("%s: close: %s", STORE_DB_PATH,
		    sqlite3_errmsg(ckpt_db));
	ckpt_db = NULL;
	pthread_mutex_unlock(&ckpt_lock);
}

/* Before the sandbox: the pipe, the threads, the checkpoints. */
void
store_sync_init(void)
{
	pthread_t	 tid;
	sigset_t	 all, old;
	int		 i, rc, flags;

	db_sync_job.run = db_sync_run;
	db_sync_job.done = db_sync_done;
	db_sync_dir.run = store_job_blob_dir_run;
	db_sync_dir.done = db_sync_done;
	if (pipe2(sync_done_pipe, O_CLOEXEC) == -1)
		fatal("pipe2");
	if ((flags = fcntl(sync_done_pipe[0], F_GETFL)) == -1 ||
	    fcntl(sync_done_pipe[0], F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: fcntl", __func__);
	event_set(&sync_done_ev, sync_done_pipe[0], EV_READ | EV_PERSIST,
	    sync_done, NULL);
	event_add(&sync_done_ev, NULL);

	/* Signals are the main thread's (libevent's) business. */
	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	for (i = 0; i < STORE_SYNC_THREADS; i++) {
		if ((rc = pthread_create(&tid, NULL, sync_thread, NULL)) != 0)
			fatalx("pthread_create: %s", strerror(rc));
		if ((rc = pthread_detach(tid)) != 0)
			fatalx("pthread_detach: %s", strerror(rc));
	}
	if ((rc = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	/* Every thread's own start-up calls before the sandbox. */
	pthread_mutex_lock(&sync_lock);
	while (sync_started < STORE_SYNC_THREADS)
		pthread_cond_wait(&sync_wakeup, &sync_lock);
	pthread_mutex_unlock(&sync_lock);
	ckpt_init();
}
