/*
 * Local delivery: a queue entry's pending local recipients filed into
 * their accounts' INBOX.  The message is read and parsed once; every
 * account it reaches gets one messages row naming the shared blob,
 * with its own Return-Path and Delivered-To lines as the row's prefix.
 *
 * Everything one DELIVER does, the recipients' new state included, is
 * one savepoint in a transaction that the DELIVERs of one event-loop
 * pass share (group commit); the answers go out only after COMMIT.  So
 * a crash neither loses a delivery nor makes it twice: either the
 * message rows and RCPT_DELIVERED are both on disk or neither is.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "mime.h"
#include "storaged.h"

#define DELIVER_BATCH_MAX	64	/* DELIVERs in one transaction */
#define DELIVER_TRACE_SLACK	(64 * 1024)	/* Received: beyond the limit */
#define DELIVER_ACCOUNTS_MAX	4096	/* accounts one address reaches */
#define DELIVER_BATCH_BYTES	(16 * 1024 * 1024)	/* messages held */

struct deliver_rcpt {
	uint32_t	 idx;
	char		*address;
	int		 result;	/* enum delivery_result */
	char		 reason[ENVELOPE_REASON_MAX];
};

struct deliver_account {
	int64_t		 id;
	const char	*rcpt;		/* the first address that reached it */
};

struct deliver_batch;

struct deliver_job {
	TAILQ_ENTRY(deliver_job) entry;
	uint64_t		 queue_id;
	uint32_t		 peerid;
	struct deliver_rcpt	*rcpts;
	size_t			 nrcpts;
	/* Read and parsed before the transaction; its pieces written. */
	struct deliver_batch	*batch;
	struct store_job	 pieces;
	struct deliver_msg	 dm;
	int			 loaded;
	int			 load_result;	/* else, for the recipients */
	char			 load_reason[ENVELOPE_REASON_MAX];
};
TAILQ_HEAD(deliver_jobs, deliver_job);

/* One transaction's DELIVERs, and how many wait for their pieces. */
struct deliver_batch {
	struct deliver_jobs	 jobs;
	size_t			 left;
};

static struct deliver_jobs	 deliver_waiting =
    TAILQ_HEAD_INITIALIZER(deliver_waiting);
static size_t			 deliver_nwaiting;
static struct event		 deliver_ev;
static int			 deliver_ev_set;
static int64_t			 deliver_ids[DELIVER_ACCOUNTS_MAX];

static void	store_deliver_run(int, short, void *);

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ?
	    0 : -1;
}

static int
db_exec(const char *sql)
{
	if (sqlite3_exec(store_db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		log_warnx("%s: %s: %s", STORE_DB_PATH, sql,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

static void
rcpt_set(struct deliver_rcpt *r, int result, const char *reason)
{
	r->result = result;
	strlcpy(r->reason, reason, sizeof(r->reason));
}

static void
job_set_all(struct deliver_job *job, int result, const char *reason)
{
	size_t	 i;

	for (i = 0; i < job->nrcpts; i++)
		rcpt_set(&job->rcpts[i], result, reason);
}

static void
job_free(struct deliver_job *job)
{
	size_t	 i;

	if (job->loaded)
		store_msg_clear(&job->dm);
	for (i = 0; i < job->nrcpts; i++)
		free(job->rcpts[i].address);
	free(job->rcpts);
	free(job);
}

/*
 * Reads a whole blob into memory, at most max bytes.  0, or -1 with
 * errno (EFBIG: larger than max).
 */
int
store_blob_read(const char *hash, size_t max, char **out, size_t *outlen)
{
	struct stat	 sb;
	char		*buf;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd, serrno;

	*out = NULL;
	*outlen = 0;
	if ((fd = store_blob_open(hash)) == -1)
		return -1;
	if (fstat(fd, &sb) == -1)
		goto fail;
	if (!S_ISREG(sb.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uintmax_t)sb.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	if ((buf = malloc(sb.st_size + 1)) == NULL)
		goto fail;
	while (off < (size_t)sb.st_size) {
		if ((n = read(fd, buf + off, sb.st_size - off)) == -1) {
			if (errno == EINTR)
				continue;
			serrno = errno;
			free(buf);
			errno = serrno;
			goto fail;
		}
		if (n == 0)
			break;
		off += n;
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	*outlen = off;
	return 0;
 fail:
	serrno = errno;
	close(fd);
	errno = serrno;
	return -1;
}

/* The largest message delivery reads: the accepted size and its trace. */
size_t
store_deliver_max(void)
{
	long long	 max;

	max = proc_conf->limits[LIMIT_MESSAGE_SIZE] + DELIVER_TRACE_SLACK;
	if (max <= 0 || (unsigned long long)max > MIME_MAX_SIZE)
		return MIME_MAX_SIZE;
	return max;
}

/* A value made safe for one header line: no CR, LF or TAB. */
static void
header_safe(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '\r' || *s == '\n' || *s == '\t')
			*s = ' ';
}

/* A growing string; an allocation failure is reported at the end. */
void
store_buf_add(struct store_buf *b, const char *s, size_t len)
{
	size_t	 ncap;
	char	*np;

	if (b->err)
		return;
	if (b->len + len + 1 > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + len + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->err = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
store_buf_str(struct store_buf *b, const char *s)
{
	if (s != NULL)
		store_buf_add(b, s, strlen(s));
}

void
store_buf_printf(struct store_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 len;

	va_start(ap, fmt);
	len = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (len == -1) {
		b->err = 1;
		return;
	}
	store_buf_add(b, s, len);
	free(s);
}

/* The string, to free(), or NULL if memory ran out on the way. */
char *
store_buf_finish(struct store_buf *b)
{
	if (b->err) {
		free(b->p);
		return NULL;
	}
	if (b->p == NULL)
		return strdup("");
	return b->p;
}

void
store_msg_clear(struct deliver_msg *dm)
{
	free(dm->raw);
	mime_free(dm->mime);
	free(dm->from_addr);
	free(dm->parts);
	free(dm->skel_buf);
	free(dm->json);
	memset(dm, 0, sizeof(*dm));
}

/*
 * Parses dm->raw (dm->len bytes) and derives what every copy shares.
 * Safe in any thread (no row, no log): 0, or -1 with the recipients'
 * answer in *result and reason, the parser's error in *mime_err (0 if
 * the parser did not fail), and dm cleared.
 */
int
store_msg_parse(struct deliver_msg *dm, int *result, char *reason,
    size_t reasonlen, int *mime_err)
{
	struct mime_envelope	*env;
	const struct mime_addr	*a;
	struct store_buf		 b;
	size_t			 i;
	int			 r;

	*mime_err = 0;
	if ((r = mime_parse(dm->raw, dm->len, &dm->mime)) != MIME_OK) {
		*mime_err = r;
		if (r == MIME_ERR_NOMEM) {
			*result = DELIVERY_TEMPFAIL;
			strlcpy(reason, "4.3.0 out of memory", reasonlen);
		} else {
			*result = DELIVERY_PERMFAIL;
			snprintf(reason, reasonlen, "5.6.0 message cannot be "
			    "parsed: %s", mime_strerror(r));
		}
		goto fail;
	}
	env = &dm->mime->envelope;
	for (i = 0; i < env->from_list.count; i++) {
		a = &env->from_list.addrs[i];
		if (a->kind != MIME_ADDR_MAILBOX || a->mailbox == NULL)
			continue;
		memset(&b, 0, sizeof(b));
		store_buf_str(&b, a->mailbox);
		if (a->host != NULL && a->host[0] != '\0') {
			store_buf_add(&b, "@", 1);
			store_buf_str(&b, a->host);
		}
		if ((dm->from_addr = store_buf_finish(&b)) == NULL)
			goto nomem;
		break;
	}
	return 0;
 nomem:
	*result = DELIVERY_TEMPFAIL;
	strlcpy(reason, "4.3.0 out of memory", reasonlen);
 fail:
	store_msg_clear(dm);
	return -1;
}

/*
 * Reads and parses the blob and derives what every copy shares.  0,
 * or -1 with the recipients' answer in *result and reason.
 */
int
store_msg_load(struct deliver_msg *dm, const char *hash, int *result,
    char *reason, size_t reasonlen)
{
	int	 r;

	memset(dm, 0, sizeof(*dm));
	if (store_blob_read(hash, store_deliver_max(), &dm->raw,
	    &dm->len) == -1) {
		if (errno == EFBIG) {
			*result = DELIVERY_PERMFAIL;
			strlcpy(reason, "5.3.4 message too big for delivery",
			    reasonlen);
		} else {
			log_warn("blob %s", hash);
			*result = DELIVERY_TEMPFAIL;
			strlcpy(reason, "4.3.0 cannot read the message",
			    reasonlen);
		}
		return -1;
	}
	if (store_msg_parse(dm, result, reason, reasonlen, &r) == -1) {
		if (r != 0)
			log_warnx("blob %s: %s", hash, mime_strerror(r));
		return -1;
	}
	return 0;
}

static int
step_done(sqlite3_stmt *st)
{
	int	 rc;

	rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: %s", STORE_DB_PATH, sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

static int
bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i) == SQLITE_OK ? 0 : -1;
	return bind_text(st, i, s);
}

/*
 * Inside a transaction: the messages row of one copy, with its blob
 * reference (no placement, no change-log row: the caller's).  prefix
 * is the header lines added before the blob's bytes.  The row's id,
 * or -1 on a storage error.
 */
int64_t
store_message_insert(struct deliver_msg *dm, const char *hash,
    int64_t account, const char *prefix, size_t prefixlen, int64_t received)
{
	sqlite3_stmt		*st;
	struct mime_envelope	*env = &dm->mime->envelope;
	const char		*blob;
	char			*json;
	int64_t			 message_id = -1, blobsize;

	/*
	 * The row names the blob, or the skeleton of it if attachments
	 * are cut out: its reference first (an APPEND's is new).
	 */
	if (store_parts_blob(dm, hash, &blob, &blobsize) == -1)
		return -1;
	mime_shift(dm->mime, (ptrdiff_t)prefixlen - dm->shift);
	dm->shift = prefixlen;
	/* Made off the event loop (an APPEND's), if for this prefix. */
	if (dm->json != NULL && dm->json_shift == dm->shift) {
		json = dm->json;
		dm->json = NULL;
	} else if ((json = mime_to_json(dm->mime)) == NULL)
		return -1;

	if ((st = store_stmt("INSERT INTO messages (account_id, blob, "
	    "prefix, size, received, sent, subject, from_addr, message_id, "
	    "preview, has_attachment, mime, sent_ts, sort_subject, sort_from, "
	    "sort_to, sort_cc, in_reply_to, refs, sort_display_from, "
	    "sort_display_to, sent_day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
	    "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    bind_text(st, 2, blob) == -1 ||
	    sqlite3_bind_blob(st, 3, prefix, prefixlen, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, (int64_t)(prefixlen + dm->len)) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, received) != SQLITE_OK ||
	    bind_opt(st, 6, env->date) == -1 ||
	    bind_opt(st, 7, env->subject_utf8) == -1 ||
	    bind_opt(st, 8, dm->from_addr) == -1 ||
	    bind_opt(st, 9, env->message_ids.count > 0 ?
	    env->message_ids.ids[0] : NULL) == -1 ||
	    bind_text(st, 10, dm->mime->preview) == -1 ||
	    sqlite3_bind_int(st, 11, dm->mime->has_attachment ? 1 : 0) !=
	    SQLITE_OK ||
	    bind_text(st, 12, json) == -1 ||
	    store_sortkeys_bind(st, 13, env) == -1) {
		store_stmt_done(st);
		goto done;
	}
	if (step_done(st) == -1)
		goto done;
	message_id = sqlite3_last_insert_rowid(store_db);
	if (store_parts_insert(dm, message_id) == -1) {
		message_id = -1;
		goto done;
	}
	/* Indexed by the indexer thread, once this commits. */
	store_fts_touch(message_id);
 done:
	free(json);
	return message_id;
}

/* One copy into the account's INBOX.  -1 on a storage error. */
static int
deliver_account(struct deliver_msg *dm, const char *hash,
    const char *sender, const struct deliver_account *acct, time_t now)
{
	sqlite3_stmt		*st;
	char			*prefix = NULL, *s, *r;
	int64_t			 modseq, mailbox_id, uid, message_id;
	int			 len, rc = -1;

	if ((s = strdup(sender)) == NULL || (r = strdup(acct->rcpt)) == NULL) {
		free(s);
		return -1;
	}
	header_safe(s);
	header_safe(r);
	len = asprintf(&prefix, "Return-Path: <%s>\r\nDelivered-To: %s\r\n",
	    s, r);
	free(s);
	free(r);
	if (len == -1)
		return -1;

	if ((st = store_stmt("UPDATE accounts SET modseq = modseq + 1 "
	    "WHERE id = ? RETURNING modseq")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, acct->id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("%s: account %lld modseq: %s", STORE_DB_PATH,
		    (long long)acct->id, sqlite3_errmsg(store_db));
		store_stmt_done(st);
		goto done;
	}
	modseq = sqlite3_column_int64(st, 0);
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_stmt_done(st);
		goto done;
	}
	store_stmt_done(st);

	if ((st = store_stmt("UPDATE mailboxes SET uidnext = uidnext + 1, "
	    "highestmodseq = ?2 WHERE account_id = ?1 AND name = 'INBOX' "
	    "RETURNING id, uidnext - 1")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, acct->id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("%s: account %lld has no INBOX: %s", STORE_DB_PATH,
		    (long long)acct->id, sqlite3_errmsg(store_db));
		store_stmt_done(st);
		goto done;
	}
	mailbox_id = sqlite3_column_int64(st, 0);
	uid = sqlite3_column_int64(st, 1);
	if (sqlite3_step(st) != SQLITE_DONE) {
		store_stmt_done(st);
		goto done;
	}
	store_stmt_done(st);

	if ((message_id = store_message_insert(dm, hash, acct->id, prefix,
	    len, now)) == -1)
		goto done;

	if ((st = store_stmt("INSERT INTO mailbox_messages (mailbox_id, "
	    "message_id, account_id, uid, modseq) VALUES (?, ?, ?, ?, ?)")) ==
	    NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, mailbox_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, message_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, acct->id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, uid) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, modseq) != SQLITE_OK) {
		store_stmt_done(st);
		goto done;
	}
	if (step_done(st) == -1)
		goto done;

	if ((st = store_stmt("INSERT INTO changes (account_id, modseq, "
	    "kind, object_id, op) VALUES (?, ?, 'Email', ?, 1)")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, acct->id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, message_id) != SQLITE_OK) {
		store_stmt_done(st);
		goto done;
	}
	if (step_done(st) == -1)
		goto done;
	/* INBOX's counts changed (JMAP Mailbox/changes). */
	if (store_change_add(acct->id, modseq, "Mailbox", mailbox_id, 2) == -1)
		goto done;
	/* Open IMAP sessions hear of it once the batch is committed. */
	store_imap_changed(mailbox_id, modseq, -1);
	rc = 0;
 done:
	free(prefix);
	return rc;
}

/*
 * Inside a transaction, before an account goes: its messages and the
 * references they hold on their blobs (a blob row may go only once no
 * message names it).
 */
int
store_messages_purge(int64_t account_id)
{
	sqlite3_stmt	*st;
	char		**hashes = NULL, **nh;
	size_t		 i, n = 0, cap = 0;
	int		 rc, ret = -1;

	/* The indexer drops their index rows after the commit. */
	store_fts_sweep();
	if ((st = store_stmt("SELECT blob FROM messages "
	    "WHERE account_id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account_id) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nh = reallocarray(hashes, cap,
			    sizeof(*nh))) == NULL)
				break;
			hashes = nh;
		}
		if ((hashes[n] = strdup((const char *)
		    sqlite3_column_text(st, 0))) == NULL)
			break;
		n++;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		goto done;
	if (store_parts_blobs("SELECT p.blob FROM message_parts p "
	    "JOIN messages m ON m.id = p.message_id WHERE m.account_id = ?",
	    account_id, &hashes, &n, &cap) == -1)
		goto done;
	if ((st = store_stmt("DELETE FROM messages "
	    "WHERE account_id = ?")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, account_id) != SQLITE_OK) {
		store_stmt_done(st);
		goto done;
	}
	if (step_done(st) == -1)
		goto done;
	for (i = 0; i < n; i++)
		if (store_blob_unref(hashes[i]) == -1)
			goto done;
	ret = 0;
 done:
	for (i = 0; i < n; i++)
		free(hashes[i]);
	free(hashes);
	return ret;
}

/* Drops the entry if none of its recipients waits any more. */
int
store_queue_drop_if_done(int64_t queue_id)
{
	sqlite3_stmt	*st;
	int		 rc, n;

	if ((st = store_stmt("SELECT count(*) FROM queue_rcpts "
	    "WHERE queue_id = ? AND status IN (?, ?)")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, queue_id) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, RCPT_PENDING) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, RCPT_HELD) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_stmt_done(st);
		return -1;
	}
	n = sqlite3_column_int(st, 0);
	store_stmt_done(st);
	if (n > 0)
		return 0;
	return store_queue_drop(queue_id) == -1 ? -1 : 0;
}

/* Loads the job's pending local recipients.  -1 on a storage error. */
static int
job_load_rcpts(struct deliver_job *job)
{
	sqlite3_stmt		*st;
	struct deliver_rcpt	*r, *nr;
	size_t			 cap = 0;
	int			 rc;

	if ((st = store_stmt("SELECT idx, address FROM queue_rcpts "
	    "WHERE queue_id = ? AND kind = ? AND status = ? "
	    "ORDER BY idx")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, job->queue_id) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, RCPT_KIND_LOCAL) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, RCPT_PENDING) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (job->nrcpts == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nr = reallocarray(job->rcpts, cap,
			    sizeof(*nr))) == NULL)
				break;
			job->rcpts = nr;
		}
		r = &job->rcpts[job->nrcpts];
		memset(r, 0, sizeof(*r));
		r->idx = sqlite3_column_int64(st, 0);
		if ((r->address = strdup((const char *)
		    sqlite3_column_text(st, 1))) == NULL)
			break;
		r->result = DELIVERY_TEMPFAIL;
		job->nrcpts++;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: queue %016llx recipients: %s", STORE_DB_PATH,
		    (unsigned long long)job->queue_id,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

static int
account_add(struct deliver_account **accts, size_t *n, size_t *cap,
    int64_t id, const char *rcpt)
{
	struct deliver_account	*na;
	size_t			 i;

	for (i = 0; i < *n; i++)
		if ((*accts)[i].id == id)
			return 0;
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		if ((na = reallocarray(*accts, *cap, sizeof(*na))) == NULL)
			return -1;
		*accts = na;
	}
	(*accts)[*n].id = id;
	(*accts)[*n].rcpt = rcpt;
	(*n)++;
	return 0;
}

static int
rcpt_mark_delivered(uint64_t queue_id, uint32_t idx)
{
	sqlite3_stmt	*st;

	if ((st = store_stmt("UPDATE queue_rcpts SET status = ?, "
	    "last_error = '' WHERE queue_id = ? AND idx = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int(st, 1, RCPT_DELIVERED) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, queue_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, idx) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	return step_done(st);
}

/*
 * One DELIVER inside the open transaction.  -1 on a storage error: the
 * caller rolls the savepoint back and answers TEMPFAIL.
 */
static int
deliver_one(struct deliver_job *job, time_t now)
{
	sqlite3_stmt		*st;
	struct deliver_account	*accts = NULL;
	char			 hash[STORE_HASH_HEX + 1], *sender = NULL;
	size_t			 i, j, nids, naccts = 0, cap = 0;
	int			 rc, kind, ret = -1;

	if ((st = store_stmt("SELECT blob, sender FROM queue "
	    "WHERE id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, job->queue_id) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		strlcpy(hash, (const char *)sqlite3_column_text(st, 0),
		    sizeof(hash));
		sender = strdup((const char *)sqlite3_column_text(st, 1));
	}
	store_stmt_done(st);
	if (rc == SQLITE_DONE) {
		/* Removed meanwhile: nothing to do, nothing to answer. */
		return 0;
	}
	if (rc != SQLITE_ROW || sender == NULL)
		goto done;
	if (job_load_rcpts(job) == -1)
		goto done;

	for (i = 0; i < job->nrcpts; i++) {
		kind = store_resolve(job->rcpts[i].address, deliver_ids,
		    DELIVER_ACCOUNTS_MAX, &nids, 0);
		switch (kind) {
		case RCPT_LOCAL:
			break;
		case RCPT_UNKNOWN:
		case RCPT_REMOTE:
			rcpt_set(&job->rcpts[i], DELIVERY_PERMFAIL,
			    "5.1.1 no such user");
			continue;
		default:
			goto done;
		}
		for (j = 0; j < nids; j++)
			if (account_add(&accts, &naccts, &cap, deliver_ids[j],
			    job->rcpts[i].address) == -1)
				goto done;
		rcpt_set(&job->rcpts[i], DELIVERY_OK, "");
	}

	if (naccts > 0) {
		if (!job->loaded) {
			for (i = 0; i < job->nrcpts; i++)
				if (job->rcpts[i].result == DELIVERY_OK)
					rcpt_set(&job->rcpts[i],
					    job->load_result,
					    job->load_reason);
			ret = 0;
			goto done;
		}
		for (i = 0; i < naccts; i++)
			if (deliver_account(&job->dm, hash, sender, &accts[i],
			    now) == -1)
				goto done;
	}
	for (i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].result == DELIVERY_OK &&
		    rcpt_mark_delivered(job->queue_id,
		    job->rcpts[i].idx) == -1)
			goto done;
	if (store_queue_drop_if_done(job->queue_id) == -1)
		goto done;
	ret = 0;
 done:
	free(accts);
	free(sender);
	return ret;
}

static void
job_reply(struct deliver_job *job)
{
	struct msg_out		 m;
	struct deliver_rcpt	*r;
	size_t			 i;

	for (i = 0; i < job->nrcpts; i++) {
		r = &job->rcpts[i];
		msg_create(&m, IMSG_STORE_DELIVER_RESULT, job->peerid, -1);
		msg_add_u64(&m, job->queue_id);
		msg_add_u32(&m, r->idx);
		msg_add_u8(&m, r->result);
		msg_add_string(&m, r->reason);
		if (proc_send(PROC_QUEUE, &m) == -1)
			log_warn("deliver result to queue");
		if (r->result == DELIVERY_OK)
			log_info("queue %016llx: delivered to %s",
			    (unsigned long long)job->queue_id, r->address);
		else
			log_info("queue %016llx: %s: %s",
			    (unsigned long long)job->queue_id, r->address,
			    r->reason);
	}
	msg_create(&m, IMSG_STORE_DELIVER_DONE, job->peerid, -1);
	msg_add_u64(&m, job->queue_id);
	if (proc_send(PROC_QUEUE, &m) == -1)
		log_warn("deliver done to queue");
}

/* The batch's transaction is on disk: now queue may hear of it. */
static void
deliver_synced(void *arg)
{
	struct deliver_batch	*batch = arg;
	struct deliver_job	*job;

	while ((job = TAILQ_FIRST(&batch->jobs)) != NULL) {
		TAILQ_REMOVE(&batch->jobs, job, entry);
		job_reply(job);
		job_free(job);
	}
	free(batch);
}

/*
 * The batch in one transaction, its messages read already.  It
 * commits without a flush on this thread; the answers wait for the
 * sync threads' flush (store_db_sync), which commits of other work
 * share.
 */
static void
deliver_commit(struct deliver_batch *batch)
{
	struct deliver_job	*job;
	time_t			 now = time(NULL);
	int			 ok;

	ok = store_db_begin_lazy() == 0;
	TAILQ_FOREACH(job, &batch->jobs, entry) {
		if (!ok)
			break;
		if (db_exec("SAVEPOINT deliver") == -1) {
			ok = 0;
			break;
		}
		if (deliver_one(job, now) == -1) {
			if (db_exec("ROLLBACK TO deliver") == -1)
				ok = 0;
			job_set_all(job, DELIVERY_TEMPFAIL,
			    "4.3.0 storage error, will retry");
		}
		if (db_exec("RELEASE deliver") == -1)
			ok = 0;
	}
	if (ok && store_db_commit_lazy() == -1)
		ok = 0;
	else if (!ok)
		store_db_rollback_lazy();
	if (!ok) {
		TAILQ_FOREACH(job, &batch->jobs, entry) {
			if (job->nrcpts == 0 && job_load_rcpts(job) == -1)
				log_warnx("queue %016llx: cannot tell which "
				    "recipients failed",
				    (unsigned long long)job->queue_id);
			job_set_all(job, DELIVERY_TEMPFAIL,
			    "4.3.0 storage error, will retry");
		}
	}
	/* Pieces no row came to name go; the messages are done with. */
	TAILQ_FOREACH(job, &batch->jobs, entry) {
		if (!job->loaded)
			continue;
		store_parts_forget(&job->dm);
		store_msg_clear(&job->dm);
		job->loaded = 0;
	}
	store_db_sync(0, deliver_synced, batch);
}

/* In the main thread: a message's pieces written, or not (see why). */
static void
deliver_pieces_done(struct store_job *sj)
{
	struct deliver_job	*job = sj->arg;
	struct deliver_batch	*batch = job->batch;

	if (sj->what != NULL) {
		/* Written again inside the transaction, or TEMPFAIL. */
		errno = sj->err;
		log_warn("queue %016llx: attachment blobs: %s",
		    (unsigned long long)job->queue_id, sj->what);
	}
	if (--batch->left == 0)
		deliver_commit(batch);
}

static void
deliver_pieces_run(struct store_job *sj, unsigned char *buf, size_t buflen)
{
	struct deliver_job	*job = sj->arg;

	(void)buf;
	(void)buflen;
	if (store_parts_write(&job->dm, &sj->what) == -1)
		sj->err = errno;
}

/*
 * Before the transaction: the entry's message read and parsed, and the
 * attachments it stores as blobs of their own written by a sync thread
 * (their fdatasync would otherwise hold up the event loop).  Returns
 * the bytes held.
 */
static size_t
deliver_prepare(struct deliver_batch *batch, struct deliver_job *job)
{
	sqlite3_stmt	*st;
	char		 hash[STORE_HASH_HEX + 1];
	size_t		 held;
	int		 rc;

	if ((st = store_stmt("SELECT blob FROM queue WHERE id = ?")) ==
	    NULL)
		return 0;
	if (sqlite3_bind_int64(st, 1, job->queue_id) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		strlcpy(hash, (const char *)sqlite3_column_text(st, 0),
		    sizeof(hash));
	store_stmt_done(st);
	job->load_result = DELIVERY_TEMPFAIL;
	strlcpy(job->load_reason, "4.3.0 storage error, will retry",
	    sizeof(job->load_reason));
	/* Gone, or the transaction finds out again. */
	if (rc != SQLITE_ROW)
		return 0;
	if (store_msg_load(&job->dm, hash, &job->load_result,
	    job->load_reason, sizeof(job->load_reason)) == -1)
		return 0;
	job->loaded = 1;
	held = job->dm.len;
	if (store_parts_plan(&job->dm) == -1)
		return held;
	if (job->dm.nparts == 0) {
		/* Only pieces are made of the bytes themselves. */
		free(job->dm.raw);
		job->dm.raw = NULL;
		return held - job->dm.len;
	}
	job->batch = batch;
	job->pieces.arg = job;
	job->pieces.run = deliver_pieces_run;
	job->pieces.done = deliver_pieces_done;
	job->pieces.what = NULL;
	batch->left++;
	store_job_submit(&job->pieces);
	return held;
}

/*
 * Every DELIVER waiting, or the first DELIVER_BATCH_MAX or
 * DELIVER_BATCH_BYTES of messages, in one transaction once their
 * attachments are written.
 */
static void
store_deliver_run(int fd, short ev, void *arg)
{
	struct deliver_batch	*batch;
	struct deliver_job	*job;
	struct timeval		 tv = { 0, 0 };
	size_t			 n = 0, bytes = 0;

	if ((batch = calloc(1, sizeof(*batch))) == NULL)
		fatal("%s", __func__);
	TAILQ_INIT(&batch->jobs);
	/* Counted as waiting until all are submitted. */
	batch->left = 1;
	while ((job = TAILQ_FIRST(&deliver_waiting)) != NULL &&
	    n < DELIVER_BATCH_MAX && bytes < DELIVER_BATCH_BYTES) {
		TAILQ_REMOVE(&deliver_waiting, job, entry);
		deliver_nwaiting--;
		TAILQ_INSERT_TAIL(&batch->jobs, job, entry);
		n++;
		bytes += deliver_prepare(batch, job);
	}
	if (!TAILQ_EMPTY(&deliver_waiting))
		evtimer_add(&deliver_ev, &tv);
	if (n > 1)
		log_debug("delivery: %zu queue entries in one transaction, "
		    "%zu waiting", n, deliver_nwaiting);
	if (--batch->left == 0)
		deliver_commit(batch);
}

/* IMSG_STORE_DELIVER from queue: u64 queue id. */
void
store_deliver(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct deliver_job	*job;
	struct timeval		 tv = { 0, 0 };
	uint64_t		 id;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_end(&m) == -1)
		fatalx("malformed %s from %s",
		    imsg_type_name(imsg->hdr.type), proc_names[peer->id]);
	if ((job = calloc(1, sizeof(*job))) == NULL)
		fatal("%s", __func__);
	job->queue_id = id;
	job->peerid = imsg->hdr.peerid;
	TAILQ_INSERT_TAIL(&deliver_waiting, job, entry);
	deliver_nwaiting++;
	if (!deliver_ev_set) {
		evtimer_set(&deliver_ev, store_deliver_run, NULL);
		deliver_ev_set = 1;
	}
	if (!evtimer_pending(&deliver_ev, NULL))
		evtimer_add(&deliver_ev, &tv);
}
