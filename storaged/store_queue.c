/*
 * The queue as stored: one row per accepted message (its envelope and
 * the blob of its bytes) and one per recipient.  The queue role keeps
 * the schedule; storaged keeps what must survive a crash and tells
 * queue of every entry after it is committed.
 */
#include <sys/stat.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "log.h"
#include "storaged.h"

#define QUEUE_LOAD_BATCH	128	/* entries per event-loop pass */
#define QUEUE_ID_TRIES		8	/* random ids tried, at most */

static struct event	 queue_load_ev;
static int64_t		 queue_load_cursor;	/* last id sent */
static int		 queue_loading;

static __attribute__((__noreturn__)) void
queue_malformed(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

static int
queue_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ?
	    0 : -1;
}

/* A new random id: positive, shown as 16 hex digits, never reused. */
static int64_t
queue_new_id(void)
{
	uint64_t	 r;

	do {
		arc4random_buf(&r, sizeof(r));
		r &= INT64_MAX;
	} while (r == 0);
	return (int64_t)r;
}

static int
queue_insert_entry(int64_t id, const struct store_envelope *env,
    time_t now)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_stmt("INSERT INTO queue (id, blob, sender, body, "
	    "smtputf8, ret, envid, auth, client, helo, created) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    queue_bind_text(st, 2, env->blob) == -1 ||
	    queue_bind_text(st, 3, env->sender) == -1 ||
	    sqlite3_bind_int(st, 4, env->body) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, env->smtputf8) != SQLITE_OK ||
	    sqlite3_bind_int(st, 6, env->ret) != SQLITE_OK ||
	    queue_bind_text(st, 7, env->envid) == -1 ||
	    queue_bind_text(st, 8, env->auth) == -1 ||
	    queue_bind_text(st, 9, env->client) == -1 ||
	    queue_bind_text(st, 10, env->helo) == -1 ||
	    sqlite3_bind_int64(st, 11, now) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Inside a transaction: a new entry with its recipients, local ones
 * pending, remote ones held (relaying is not built), and a reference
 * to its blob.  Returns the new id, or -1 with the reason logged.
 */
int64_t
store_queue_insert(const struct store_envelope *env,
    const struct store_rcpt *rcpts, size_t n)
{
	sqlite3_stmt	*st;
	time_t		 now = time(NULL);
	int64_t		 id = 0;
	size_t		 i;
	int		 rc = 1, tries;

	if (store_blob_ref(env->blob, env->size) == -1)
		return -1;
	for (tries = 0; rc == 1 && tries < QUEUE_ID_TRIES; tries++) {
		id = queue_new_id();
		rc = queue_insert_entry(id, env, now);
	}
	if (rc != 0)
		goto fail;
	if ((st = store_stmt("INSERT INTO queue_rcpts (queue_id, idx, "
	    "address, kind, notify, orcpt, status) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?)")) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, i) != SQLITE_OK ||
		    queue_bind_text(st, 3, rcpts[i].address) == -1 ||
		    sqlite3_bind_int(st, 4, rcpts[i].kind) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 5, rcpts[i].notify) != SQLITE_OK ||
		    queue_bind_text(st, 6, rcpts[i].orcpt) == -1 ||
		    sqlite3_bind_int(st, 7, rcpts[i].kind == RCPT_KIND_LOCAL ?
		    RCPT_PENDING : RCPT_HELD) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			store_stmt_done(st);
			goto fail;
		}
		sqlite3_reset(st);
	}
	store_stmt_done(st);
	return id;
 fail:
	log_warnx("%s: queue insert: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	return -1;
}

/*
 * Inside a transaction: the entry and its recipients go, and with them
 * a reference to the blob (whose file store_blob_collect() removes
 * once no one names it).  Returns 0, 1 if there is no such entry, -1
 * on error.
 */
int
store_queue_drop(int64_t id)
{
	sqlite3_stmt	*st;
	char		 blob[STORE_HASH_HEX + 1];
	int		 rc;

	if ((st = store_stmt("SELECT blob FROM queue WHERE id = ?")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		strlcpy(blob, (const char *)sqlite3_column_text(st, 0),
		    sizeof(blob));
	store_stmt_done(st);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW)
		goto fail;
	if ((st = store_stmt("DELETE FROM queue WHERE id = ?")) == NULL)
		return -1;
	rc = sqlite3_bind_int64(st, 1, id) == SQLITE_OK ?
	    sqlite3_step(st) : SQLITE_ERROR;
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		goto fail;
	return store_blob_unref(blob);
 fail:
	log_warnx("%s: queue drop: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	return -1;
}

static const char *
queue_column_text(sqlite3_stmt *st, int i)
{
	const char	*s = (const char *)sqlite3_column_text(st, i);

	return s != NULL ? s : "";
}

/*
 * At start-up: an entry whose blob is not in /blobs, or whose blob's
 * bytes are not those it is named after, was never acknowledged: its
 * transaction reached the disk before the blob did (store_spool.c
 * flushes them side by side), and then the machine went down.  Nobody
 * was told of it; it goes.  Only the bytes of entries made shortly
 * before the newest are read again: older ones were flushed long ago.
 */
#define QUEUE_RECOVER_WINDOW	300	/* seconds before the newest entry */

static int
queue_blob_intact(const char *blob, int check_bytes)
{
	struct stat	 sb;
	char		 path[sizeof(STORE_BLOB_DIR) + STORE_HASH_HEX + 1];
	char		 hash[STORE_HASH_HEX + 1];

	if (fstatat(store_blob_dir(), blob, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return errno != ENOENT;
	if (!check_bytes)
		return 1;
	(void)snprintf(path, sizeof(path), "%s/%s", STORE_BLOB_DIR, blob);
	if (SHA256File(path, hash) == NULL)
		return errno != ENOENT;
	return strcmp(hash, blob) == 0;
}

void
store_queue_recover(void)
{
	sqlite3_stmt	*st;
	int64_t		*ids = NULL, *p, newest;
	size_t		 n = 0, max = 0, i;
	const char	*blob;
	int		 rc;

	if ((st = store_db_stmt("SELECT id, blob, created, "
	    "max(created) OVER () FROM queue")) == NULL)
		fatalx("%s: cannot read the queue", __func__);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		blob = queue_column_text(st, 1);
		newest = sqlite3_column_int64(st, 3);
		if (queue_blob_intact(blob, sqlite3_column_int64(st, 2) >=
		    newest - QUEUE_RECOVER_WINDOW))
			continue;
		if (n == max) {
			max = max ? max * 2 : 16;
			if ((p = reallocarray(ids, max, sizeof(*ids))) ==
			    NULL)
				fatal("%s", __func__);
			ids = p;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		fatalx("%s: cannot read the queue: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	if (n == 0)
		return;
	if (store_db_begin() == -1)
		fatalx("%s: cannot begin", __func__);
	for (i = 0; i < n; i++) {
		if (store_queue_drop(ids[i]) == -1)
			fatalx("%s: cannot drop queue entry %016llx",
			    __func__, (unsigned long long)ids[i]);
		log_warnx("queue entry %016llx: its message never reached "
		    "the disk and was never acknowledged; removed",
		    (unsigned long long)ids[i]);
	}
	if (store_db_commit() == -1)
		fatalx("%s: cannot commit", __func__);
	store_blob_collect();
	free(ids);
}

/* QUEUE_RCPT for each recipient of an entry; -1 if it is not there. */
static int
queue_send_rcpts(int64_t id)
{
	sqlite3_stmt	*st;
	struct msg_out	 m;
	int		 rc, n = 0;

	if ((st = store_stmt("SELECT r.idx, q.sender, q.created, "
	    "r.address, r.kind, r.status, r.attempts, r.next_attempt, "
	    "r.last_error FROM queue q JOIN queue_rcpts r "
	    "ON r.queue_id = q.id WHERE q.id = ? ORDER BY r.idx")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		msg_create(&m, IMSG_STORE_QUEUE_RCPT, 0, -1);
		msg_add_u64(&m, (uint64_t)id);
		msg_add_u32(&m, (uint32_t)sqlite3_column_int64(st, 0));
		msg_add_string(&m, queue_column_text(st, 1));
		msg_add_i64(&m, sqlite3_column_int64(st, 2));
		msg_add_string(&m, queue_column_text(st, 3));
		msg_add_u8(&m, (uint8_t)sqlite3_column_int(st, 4));
		msg_add_u8(&m, (uint8_t)sqlite3_column_int(st, 5));
		msg_add_u32(&m, (uint32_t)sqlite3_column_int64(st, 6));
		msg_add_i64(&m, sqlite3_column_int64(st, 7));
		msg_add_string(&m, queue_column_text(st, 8));
		if (proc_send(PROC_QUEUE, &m) == -1)
			fatal("%s: IMSG_STORE_QUEUE_RCPT", __func__);
		n++;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: queue read: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return n > 0 ? 0 : -1;
}

/* After the commit: the entry's recipients, then QUEUE_NEW. */
int
store_queue_announce(int64_t id)
{
	struct msg_out	 m;

	if (queue_send_rcpts(id) == -1) {
		log_warnx("queue entry %016llx: cannot announce it",
		    (unsigned long long)id);
		return -1;
	}
	msg_create(&m, IMSG_STORE_QUEUE_NEW, 0, -1);
	msg_add_u64(&m, (uint64_t)id);
	if (proc_send(PROC_QUEUE, &m) == -1)
		fatal("%s: IMSG_STORE_QUEUE_NEW", __func__);
	return 0;
}

/*
 * QUEUE_LOAD: every entry, QUEUE_LOAD_BATCH per pass of the event loop
 * so a long queue neither stalls commits nor piles up in memory, then
 * QUEUE_END.
 */
static void
queue_load_step(int fd, short event, void *arg)
{
	sqlite3_stmt	*st;
	struct timeval	 tv = { 0, 0 };
	int64_t		 id;
	int		 rc, n = 0;

	(void)fd;
	(void)event;
	(void)arg;
	if ((st = store_db_stmt("SELECT id FROM queue WHERE id > ? "
	    "ORDER BY id LIMIT ?")) == NULL)
		fatalx("%s: cannot read the queue", __func__);
	if (sqlite3_bind_int64(st, 1, queue_load_cursor) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, QUEUE_LOAD_BATCH) != SQLITE_OK)
		fatalx("%s: bind: %s", __func__, sqlite3_errmsg(store_db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		queue_load_cursor = id;
		n++;
		if (queue_send_rcpts(id) == -1)
			log_warnx("queue entry %016llx has no recipients",
			    (unsigned long long)id);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		fatalx("%s: cannot read the queue: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	if (n == QUEUE_LOAD_BATCH) {
		evtimer_add(&queue_load_ev, &tv);
		return;
	}
	queue_loading = 0;
	if (proc_compose(PROC_QUEUE, IMSG_STORE_QUEUE_END, 0, -1, NULL, 0) ==
	    -1)
		fatal("%s: IMSG_STORE_QUEUE_END", __func__);
}

void
store_queue_load(struct proc_peer *peer, struct imsg *imsg)
{
	struct timeval	 tv = { 0, 0 };

	if (imsg->datalen != 0)
		queue_malformed(peer, imsg);
	if (queue_loading)
		fatalx("%s: a second QUEUE_LOAD from %s", __func__,
		    proc_names[peer->id]);
	queue_loading = 1;
	queue_load_cursor = 0;
	evtimer_set(&queue_load_ev, queue_load_step, NULL);
	evtimer_add(&queue_load_ev, &tv);
}

/* The schedule of one recipient, after an attempt; no answer. */
void
store_queue_update(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	sqlite3_stmt	*st;
	const char	*last_error;
	uint64_t	 id;
	uint32_t	 idx, attempts;
	int64_t		 next;
	int		 rc;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_get_u32(&m, &idx) == -1 ||
	    msg_get_u32(&m, &attempts) == -1 ||
	    msg_get_i64(&m, &next) == -1 ||
	    msg_get_string(&m, &last_error) == -1 || msg_end(&m) == -1)
		queue_malformed(peer, imsg);
	if ((st = store_stmt("UPDATE queue_rcpts SET attempts = ?, "
	    "next_attempt = ?, last_error = substr(?, 1, ?) "
	    "WHERE queue_id = ? AND idx = ?")) == NULL)
		return;
	if (sqlite3_bind_int64(st, 1, attempts) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, next) != SQLITE_OK ||
	    queue_bind_text(st, 3, last_error) == -1 ||
	    sqlite3_bind_int(st, 4, ENVELOPE_REASON_MAX) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, (int64_t)id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, idx) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		log_warnx("%s: queue update %016llx: %s", STORE_DB_PATH,
		    (unsigned long long)id, sqlite3_errmsg(store_db));
	else if (sqlite3_changes(store_db) != 1)
		log_warnx("queue update: no recipient %u of %016llx", idx,
		    (unsigned long long)id);
}

static void
queue_remove_reply(uint32_t peerid, int ok, const char *err)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_QUEUE_REMOVE_RESULT, peerid, -1);
	msg_add_u32(&m, ok);
	msg_add_string(&m, err);
	if (proc_send(PROC_QUEUE, &m) == -1)
		fatal("%s: IMSG_STORE_QUEUE_REMOVE_RESULT", __func__);
}

/* posternctl queue remove: the entry goes whatever its state. */
void
store_queue_remove(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	uint64_t	 id;
	int		 rc;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_end(&m) == -1)
		queue_malformed(peer, imsg);
	if (store_db_begin() == -1) {
		queue_remove_reply(imsg->hdr.peerid, 0, "storage error");
		return;
	}
	if ((rc = store_queue_drop((int64_t)id)) != 0) {
		store_db_rollback();
		queue_remove_reply(imsg->hdr.peerid, 0, rc == 1 ?
		    "no such queue entry" : "storage error");
		return;
	}
	if (store_db_commit() == -1) {
		store_blob_collect();
		queue_remove_reply(imsg->hdr.peerid, 0, "storage error");
		return;
	}
	store_blob_collect();
	log_info("queue entry %016llx removed", (unsigned long long)id);
	queue_remove_reply(imsg->hdr.peerid, 1, "");
}
