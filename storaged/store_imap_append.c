/*
 * imapd's APPEND and MULTIAPPEND into any mailbox of the account:
 * uploads staged one by one as they come, inserted all together at the
 * commit.
 */
#include <sys/stat.h>
#include <sys/tree.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sha2.h>

#include "envelope.h"
#include "log.h"
#include "mime.h"
#include "storaged.h"

/*
 * APPEND and MULTIAPPEND (RFC 3502): every message of one command is
 * staged as it comes (MSG_APPEND) and all of them are inserted in one
 * transaction at MSG_APPEND_COMMIT, or none.  Staging one message
 * costs the event loop two short visits; the work is a sync thread's:
 * the thread fdatasyncs the upload, reads it, hashes it, parses it,
 * cuts out the attachments stored apart and makes the row's MIME JSON
 * (append_sync_run()); the main thread pins the names (store_blob_pin())
 * so that nobody's collection takes them before the commit names them
 * (append_synced()); a thread names the upload in /blobs (or drops it,
 * if that blob exists), writes the attachments stored apart and fsyncs
 * /blobs (append_place_run()).  The commit waits for the staging of
 * every message, inserts them all with one MODSEQ and consecutive
 * UIDs, commits lazily and answers once that is on disk.  Parsed
 * messages stay in memory up to APPEND_HOLD_BYTES a command; those
 * past it, and those the threads would load past APPEND_LOAD_BYTES,
 * are parsed (again) at the commit.
 */
#define APPEND_HOLD_BYTES	(16 * 1024 * 1024)
/*
 * Bytes of uploads the sync threads hold in memory at once: past it
 * (several large messages staged side by side) a thread hashes the
 * upload as it reads it, and the commit parses it, as for those past
 * APPEND_HOLD_BYTES.
 */
#define APPEND_LOAD_BYTES	(16 * 1024 * 1024)

static size_t	append_loading;		/* by the sync threads, atomic */

struct append_batch;

struct append_job {
	struct store_job	 job;
	TAILQ_ENTRY(append_job)	 entry;
	struct append_batch	*batch;
	char			*flags;
	int64_t			 date;
	char			 path[64];
	char			 hash[STORE_HASH_HEX + 1];
	int			 pieces;	/* attachments written apart */
	struct deliver_msg	 dm;
	int			 loaded;	/* dm holds the upload */
	char			(*pins)[STORE_HASH_HEX + 1];
	size_t			 npins;
	/*
	 * Between the main thread and the sync threads' runs: the size
	 * limit (store_deliver_max()); whether the upload cannot be
	 * stored, then the answer (DELIVERY_*), why, and the parser's
	 * error (or 0); what failed writing the pieces apart.
	 */
	size_t			 max;
	int			 failed;
	int			 result;
	char			 reason[ENVELOPE_REASON_MAX];
	int			 mime_err;
	const char		*pieces_what;
	int			 pieces_err;
};
TAILQ_HEAD(append_jobs, append_job);

/* One APPEND command of one session. */
struct append_batch {
	RB_ENTRY(append_batch)	 entry;
	uint32_t		 peerid;
	int64_t			 account;
	struct append_jobs	 jobs;		/* staged, in order */
	size_t			 njobs;
	size_t			 busy;		/* jobs still staging */
	size_t			 held;		/* bytes of parsed uploads */
	char			*error;		/* the first failure */
	char			*mailbox;	/* from COMMIT on */
	int			 committing;
	int			 dropped;	/* aborted while busy */
	int64_t			 target;
	int64_t			 modseq;
	uint32_t		 uidvalidity;
	uint32_t		 first;
};

RB_HEAD(append_batches, append_batch);

static int	append_batch_cmp(struct append_batch *, struct append_batch *);
RB_GENERATE(append_batches, append_batch, entry, append_batch_cmp)

/* The batches still being staged, by session. */
static struct append_batches	 append_open =
    RB_INITIALIZER(&append_open);

static void	append_batch_commit(struct append_batch *);

static __attribute__((__noreturn__)) void
append_malformed(struct imsg *imsg)
{
	fatalx("malformed %s from imapd", imsg_type_name(imsg->hdr.type));
}

static int
append_batch_cmp(struct append_batch *a, struct append_batch *b)
{
	if (a->peerid != b->peerid)
		return a->peerid < b->peerid ? -1 : 1;
	return 0;
}

static struct append_batch *
append_batch_find(uint32_t peerid)
{
	struct append_batch	 key;

	key.peerid = peerid;
	return RB_FIND(append_batches, &append_open, &key);
}

static void
append_result(uint32_t peerid, int ok, const char *text,
    uint32_t uidvalidity, uint32_t first, uint32_t count)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_APPEND_RESULT, peerid, -1);
	msg_add_u32(&m, ok ? 1 : 0);
	msg_add_string(&m, text);
	msg_add_u32(&m, uidvalidity);
	msg_add_u32(&m, first);
	msg_add_u32(&m, count);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s: append result to imapd", __func__);
}

static void
append_pin(struct append_job *aj, const char *hash)
{
	char	(*p)[STORE_HASH_HEX + 1];

	if ((p = reallocarray(aj->pins, aj->npins + 1, sizeof(*p))) == NULL)
		fatal("%s", __func__);
	aj->pins = p;
	strlcpy(p[aj->npins++], hash, sizeof(*p));
	store_blob_pin(hash);
}

/*
 * The job's upload, if still in /spool, goes; its pinned names are
 * noted for collection, which takes them unless a row names them.
 */
static void
append_job_free(struct append_job *aj)
{
	size_t	 i;

	if (aj->path[0] != '\0' && unlink(aj->path) == -1 &&
	    errno != ENOENT)
		log_warn("unlink %s", aj->path);
	for (i = 0; i < aj->npins; i++) {
		store_blob_unpin(aj->pins[i]);
		store_blob_forget(aj->pins[i]);
	}
	free(aj->pins);
	/* Loaded, or what a thread's failed load left. */
	store_msg_clear(&aj->dm);
	free(aj->flags);
	free(aj);
}

static void
append_batch_free(struct append_batch *b)
{
	struct append_job	*aj;

	while ((aj = TAILQ_FIRST(&b->jobs)) != NULL) {
		TAILQ_REMOVE(&b->jobs, aj, entry);
		append_job_free(aj);
	}
	free(b->error);
	free(b->mailbox);
	free(b);
}

static void
append_batch_fail(struct append_batch *b, const char *text)
{
	if (b->error == NULL && (b->error = strdup(text)) == NULL)
		fatal("%s", __func__);
}

/* A job's staging is over, well or not: the batch may go on. */
static void
append_job_done(struct append_batch *b)
{
	if (--b->busy > 0)
		return;
	if (b->dropped)
		append_batch_free(b);
	else if (b->committing)
		append_batch_commit(b);
}

/* A staged message that cannot be stored: the whole command fails. */
static void
append_fail(struct append_job *aj, const char *text)
{
	struct append_batch	*b = aj->batch;

	append_batch_fail(b, text);
	TAILQ_REMOVE(&b->jobs, aj, entry);
	b->njobs--;
	append_job_free(aj);
	append_job_done(b);
}

/* Staged: parsed, its pieces durable, waiting for the commit. */
static void
append_ready(struct append_job *aj)
{
	struct append_batch	*b = aj->batch;

	if (b->held + aj->dm.len > APPEND_HOLD_BYTES) {
		store_msg_clear(&aj->dm);
		aj->loaded = 0;
	} else
		b->held += aj->dm.len;
	append_job_done(b);
}

/*
 * In a sync thread: the upload durable, read, hashed and parsed, its
 * attachments stored apart planned and its MIME JSON made.  Nothing of
 * the main thread's is touched, nothing logged: append_synced() does.
 */
static void
append_sync_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	struct append_job	*aj = job->arg;
	struct deliver_msg	*dm = &aj->dm;
	struct stat		 sb;
	SHA2_CTX		 ctx;
	size_t			 off = 0, size, loading;
	ssize_t			 n;
	int			 fd;

	if ((fd = store_job_datasync(job, AT_FDCWD, aj->path)) == -1)
		return;
	if (fstat(fd, &sb) == -1) {
		job->what = "fstat";
		job->err = errno;
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		job->what = "fstat";
		job->err = EINVAL;
		goto done;
	}
	if ((uintmax_t)sb.st_size > aj->max) {
		aj->failed = 1;
		aj->result = DELIVERY_PERMFAIL;
		strlcpy(aj->reason, "5.3.4 message too big for delivery",
		    sizeof(aj->reason));
		goto done;
	}
	size = sb.st_size;
	if ((loading = __atomic_add_fetch(&append_loading, size,
	    __ATOMIC_RELAXED)) > APPEND_LOAD_BYTES && loading > size) {
		/* Not loaded: the commit reads and parses it. */
		__atomic_sub_fetch(&append_loading, size, __ATOMIC_RELAXED);
		store_job_hash_fd(job, fd, buf, buflen, aj->hash, NULL);
		return;
	}
	dm->raw = malloc(size + 1);
	if (dm->raw == NULL) {
		aj->failed = 1;
		aj->result = DELIVERY_TEMPFAIL;
		strlcpy(aj->reason, "4.3.0 out of memory",
		    sizeof(aj->reason));
		goto unload;
	}
	while (off < size) {
		if ((n = read(fd, dm->raw + off, size - off)) == -1) {
			if (errno == EINTR)
				continue;
			job->what = "read";
			job->err = errno;
			goto unload;
		}
		if (n == 0)
			break;
		off += n;
	}
	dm->raw[off] = '\0';
	dm->len = off;
	SHA256Init(&ctx);
	SHA256Update(&ctx, (const unsigned char *)dm->raw, dm->len);
	SHA256End(&ctx, aj->hash);
	if (store_msg_parse(dm, &aj->result, aj->reason, sizeof(aj->reason),
	    &aj->mime_err) == -1) {
		aj->failed = 1;
		goto unload;
	}
	/* Should either fail, the commit tries again, in the transaction. */
	(void)store_parts_plan(dm);
	if ((dm->json = mime_to_json(dm->mime)) != NULL)
		dm->json_shift = dm->shift;
	aj->loaded = 1;
 unload:
	/* Held from now on as the main thread's (append_ready()). */
	__atomic_sub_fetch(&append_loading, size, __ATOMIC_RELAXED);
 done:
	close(fd);
}

/*
 * In a sync thread, the names pinned: the upload named in /blobs, or
 * dropped if the blob exists; the attachments stored apart written;
 * /blobs fsynced.  Also for a blob found there: its name may be a
 * rename that no fsync has covered yet.
 */
static void
append_place_run(struct store_job *job, unsigned char *buf, size_t buflen)
{
	struct append_job	*aj = job->arg;
	struct stat		 sb;

	(void)buf;
	(void)buflen;
	if (fstatat(store_blob_dir(), aj->hash, &sb,
	    AT_SYMLINK_NOFOLLOW) == 0) {
		/* Left in /spool, append_job_free() tries again. */
		if (unlink(aj->path) == 0)
			aj->path[0] = '\0';
	} else if (renameat(AT_FDCWD, aj->path, store_blob_dir(),
	    aj->hash) == -1) {
		job->what = "rename";
		job->err = errno;
		return;
	} else
		aj->path[0] = '\0';
	if (aj->dm.planned && aj->dm.nparts > 0) {
		/* Its last step is the fsync of /blobs. */
		if (store_parts_write(&aj->dm, &aj->pieces_what) == 0)
			return;
		aj->pieces_err = errno;
	}
	store_job_blob_dir_run(job, buf, buflen);
}

/*
 * In the main thread: the upload is named in /blobs, durable, and so
 * are its attachments stored apart, or will be in the transaction.
 */
static void
append_placed(struct store_job *job)
{
	struct append_job	*aj = job->arg;

	if (job->what != NULL) {
		errno = job->err;
		log_warn("append: %s %s", job->what, aj->path);
		append_fail(aj, "[SERVERBUG] Cannot write the message to disk");
		return;
	}
	if (aj->pieces_what != NULL) {
		/* Written again inside the transaction, or it fails. */
		errno = aj->pieces_err;
		log_warn("append: attachment blobs: %s", aj->pieces_what);
	} else if (aj->dm.nparts > 0)
		aj->pieces = 1;
	append_ready(aj);
}

/*
 * In the main thread: the upload is durable and parsed.  Its names
 * are pinned first, so that a file found in /blobs stays; then a
 * thread puts it there.
 */
static void
append_synced(struct store_job *job)
{
	struct append_job	*aj = job->arg;
	char			 text[STORE_ERR_MAX];
	size_t			 i;

	if (job->what != NULL) {
		errno = job->err;
		log_warn("%s %s", job->what, aj->path);
		append_fail(aj, "[SERVERBUG] Cannot write the message to disk");
		return;
	}
	if (aj->failed) {
		if (aj->mime_err != 0)
			log_warnx("append %s: %s", aj->path,
			    mime_strerror(aj->mime_err));
		(void)snprintf(text, sizeof(text), "[%s] Message cannot be "
		    "stored: %s", aj->result == DELIVERY_TEMPFAIL ?
		    "SERVERBUG" : "CANNOT", aj->reason);
		append_fail(aj, text);
		return;
	}
	if (aj->batch->dropped || aj->batch->error != NULL) {
		/* It will not be stored: spare the work. */
		append_job_done(aj->batch);
		return;
	}
	if (!aj->loaded)
		log_debug("append: %s parsed at the commit", aj->hash);
	append_pin(aj, aj->hash);
	if (aj->dm.planned && aj->dm.nparts > 0) {
		append_pin(aj, aj->dm.skel);
		for (i = 0; i < aj->dm.nparts; i++)
			append_pin(aj, aj->dm.parts[i].hash);
	}
	job->run = append_place_run;
	job->done = append_placed;
	store_job_submit_first(job);
}

/*
 * MSG_APPEND: u64 spool, s flags, i64 internaldate (no answer).  The
 * message joins the session's batch; the same ingestion as delivery,
 * without a prefix.
 */
void
store_imap_append(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct append_batch	*b;
	struct append_job	*aj;
	struct store_keywords	 flags;
	const char		*flagstr;
	char			 path[64];
	uint64_t		 spool;
	int64_t			 account, date;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &spool) == -1 ||
	    msg_get_string(&m, &flagstr) == -1 ||
	    msg_get_i64(&m, &date) == -1 || msg_end(&m) == -1)
		append_malformed(imsg);
	if ((b = append_batch_find(imsg->hdr.peerid)) == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			fatal("%s", __func__);
		b->peerid = imsg->hdr.peerid;
		b->account = account;
		TAILQ_INIT(&b->jobs);
		RB_INSERT(append_batches, &append_open, b);
	}
	(void)snprintf(path, sizeof(path), "%s/%016llx", STORE_SPOOL_DIR,
	    (unsigned long long)spool);
	if (store_spool_take(PROC_IMAPD, spool) == -1) {
		append_batch_fail(b, "[SERVERBUG] No such upload");
		return;
	}
	if (b->error != NULL || b->njobs >= IMAP_APPEND_MAX) {
		append_batch_fail(b, "[LIMIT] Too many messages in one APPEND");
		if (unlink(path) == -1)
			log_warn("unlink %s", path);
		return;
	}
	if (store_keywords_from_imap(flagstr, &flags) == -1) {
		append_batch_fail(b, "[CANNOT] Invalid flags");
		if (unlink(path) == -1)
			log_warn("unlink %s", path);
		return;
	}
	store_keywords_free(&flags);
	if ((aj = calloc(1, sizeof(*aj))) == NULL ||
	    (aj->flags = strdup(flagstr)) == NULL)
		fatal("%s", __func__);
	aj->batch = b;
	aj->date = date > 0 ? date : time(NULL);
	aj->max = store_deliver_max();
	strlcpy(aj->path, path, sizeof(aj->path));
	TAILQ_INSERT_TAIL(&b->jobs, aj, entry);
	b->njobs++;
	b->busy++;
	aj->job.arg = aj;
	aj->job.run = append_sync_run;
	aj->job.done = append_synced;
	store_job_submit_first(&aj->job);
}

/* The session's batch is no more: staging under way finishes first. */
static void
append_drop(uint32_t peerid)
{
	struct append_batch	*b;

	if ((b = append_batch_find(peerid)) == NULL)
		return;
	RB_REMOVE(append_batches, &append_open, b);
	if (b->busy > 0)
		b->dropped = 1;
	else
		append_batch_free(b);
}

/* MSG_APPEND_ABORT: - (no answer). */
void
store_imap_append_abort(struct proc_peer *peer, struct imsg *imsg)
{
	(void)store_imap_account(peer, imsg);
	if (imsg->datalen != 0)
		append_malformed(imsg);
	append_drop(imsg->hdr.peerid);
}

/* After SESSION_END. */
void
store_imap_append_end(uint32_t peerid)
{
	append_drop(peerid);
}

/*
 * MSG_APPEND_COMMIT: s mailbox -> APPEND_RESULT, once every message of
 * the batch is staged.
 */
void
store_imap_append_commit(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct append_batch	*b;
	const char		*mbox;

	(void)store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &mbox) == -1 || msg_end(&m) == -1)
		append_malformed(imsg);
	if ((b = append_batch_find(imsg->hdr.peerid)) == NULL) {
		append_result(imsg->hdr.peerid, 0,
		    "[SERVERBUG] Nothing to append", 0, 0, 0);
		return;
	}
	RB_REMOVE(append_batches, &append_open, b);
	if ((b->mailbox = strdup(mbox)) == NULL)
		fatal("%s", __func__);
	b->committing = 1;
	if (b->busy == 0)
		append_batch_commit(b);
}

static void
append_reply_send(void *arg)
{
	struct append_batch	*b = arg;

	append_result(b->peerid, 1, "APPEND completed", b->uidvalidity,
	    b->first, b->njobs);
	store_imap_changed(b->target, b->modseq, b->peerid);
	append_batch_free(b);
	store_blob_collect();
}

/* Inside the transaction: one staged message, with its uid. */
static int
append_insert(struct append_batch *b, struct append_job *aj, uint32_t uid,
    char *text, size_t textlen)
{
	struct store_keywords	 flags;
	char			 reason[ENVELOPE_REASON_MAX];
	int64_t			 message;
	size_t			 i;
	int			 result, rc = -1;

	if (!aj->loaded) {
		if (store_msg_load(&aj->dm, aj->hash, &result, reason,
		    sizeof(reason)) == -1) {
			(void)snprintf(text, textlen, "[SERVERBUG] Message "
			    "cannot be stored: %s", reason);
			return -1;
		}
		aj->loaded = 1;
		/* The same plan as at staging; its pieces are there. */
		if (store_parts_plan(&aj->dm) == 0 && aj->pieces)
			aj->dm.written = 1;
	}
	if (store_keywords_from_imap(aj->flags, &flags) == -1)
		return -1;
	if ((message = store_message_insert(&aj->dm, aj->hash, b->account,
	    "", 0, aj->date)) == -1 ||
	    store_placement_add(b->account, b->target, message, uid,
	    b->modseq) == -1 ||
	    store_change_add(b->account, b->modseq, "Email", message,
	    1) == -1)
		goto done;
	for (i = 0; i < flags.n; i++)
		if (store_keyword_set(b->account, message, flags.kw[i],
		    1) == -1)
			goto done;
	rc = 0;
 done:
	store_keywords_free(&flags);
	/* Its memory goes now; its pins stay until the answer. */
	store_msg_clear(&aj->dm);
	aj->loaded = 0;
	return rc;
}

/* Every message staged: all of them in one transaction, or none. */
static void
append_batch_commit(struct append_batch *b)
{
	struct append_job	*aj;
	char			 name[STORE_MBOX_NAME_MAX + 1];
	char			 text[STORE_ERR_MAX];
	int64_t			 first;
	uint32_t		 i;

	if (b->error != NULL) {
		append_result(b->peerid, 0, b->error, 0, 0, 0);
		goto done;
	}
	if (b->njobs == 0) {
		append_result(b->peerid, 0, "[SERVERBUG] Nothing to append",
		    0, 0, 0);
		goto done;
	}
	/* The mailbox may have gone meanwhile. */
	if (store_mbox_name(b->mailbox, name, sizeof(name)) == -1 ||
	    (b->target = store_imap_mailbox_find(b->account, name,
	    NULL)) == 0) {
		append_result(b->peerid, 0, "[TRYCREATE] No such mailbox", 0,
		    0, 0);
		goto done;
	}
	strlcpy(text, "[SERVERBUG] Storage error", sizeof(text));
	if (b->target == -1 || store_db_begin_lazy() == -1)
		goto fail;
	if ((b->modseq = store_modseq_next(b->account)) == -1 ||
	    (first = store_mailbox_take_uids(b->target, b->njobs, b->modseq,
	    &b->uidvalidity)) == -1)
		goto rollback;
	b->first = first;
	i = 0;
	TAILQ_FOREACH(aj, &b->jobs, entry)
		if (append_insert(b, aj, b->first + i++, text,
		    sizeof(text)) == -1)
			goto rollback;
	if (store_change_add(b->account, b->modseq, "Mailbox", b->target,
	    2) == -1)
		goto rollback;
	if (store_db_commit_lazy() == -1)
		goto fail;
	store_db_sync(0, append_reply_send, b);
	return;
 rollback:
	store_db_rollback_lazy();
 fail:
	append_result(b->peerid, 0, text, 0, 0, 0);
 done:
	append_batch_free(b);
	store_blob_collect();
}
