/*
 * The full-text index, off the event loop.  It lives in a database of
 * its own, STORE_FTS_PATH, which only the indexer thread writes, with
 * a connection of its own; the main connection attaches it read-only
 * as "fts" for SEARCH.  The main thread's rule (SQLite from the main
 * thread only) is about its connection: the indexer's is used by the
 * indexer alone.
 *
 * The index is derived data.  The main thread tells the indexer only
 * which message rows were made or removed (store_fts_touch()), once
 * the transaction that did it has committed; for each the indexer
 * looks at the row itself (through postern.db, attached read-only to
 * its connection): a row that exists is indexed from its blob (and
 * its prefix, the header lines added at delivery) unless the index
 * has it already, from the same blob; a row that is gone takes its
 * index row with it.  A job is thus right whenever it runs, twice or
 * late, and at start-up the indexer compares the two files
 * and does the same for every difference, so that a lost index file
 * or jobs lost in a crash only delay what SEARCH finds.  A job is a
 * message id, eight bytes: the queue grows as it must and nothing is
 * ever dropped, and the indexer holds one message at a time.
 *
 * Taking a row out of FTS5 costs as much as putting it in (FTS5
 * tokenizes the stored text again to find its entries), so a removed
 * message's row stays where it is, recorded as dead, and dead rows go
 * when the indexer has had nothing to do for FTS_IDLE_MS, or under
 * load once they outnumber the live ones (and FTS_DEAD_MIN): the index
 * stays within about twice its live size.  A dead row matches nothing:
 * SEARCH takes only rows whose docs entry names the blob and prefix
 * its message has now, which also keeps a message that got a removed
 * message's id (SQLite reuses the highest) from matching the old text
 * before the indexer gets to it.
 *
 * A transaction costs the index more than the messages in it (FTS5
 * writes a segment at every commit, and merges them), so the indexer
 * lets jobs gather for up to STORE_FTS_LAG_MS before it takes them,
 * and takes each batch in rowid order, which FTS5 flushes as one
 * segment.
 */
#include <sys/resource.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event.h>

#include "log.h"
#include "mime.h"
#include "storaged.h"

/*
 * 1: subject, addresses, body.  2: the whole header section, so that
 * TEXT finds any field.  3: each row's prefix in docs, dead rows kept
 * in dead until purged; a version 2 index is brought up to it in
 * place.  An index of another version is made anew.
 */
#define FTS_SCHEMA_VERSION	3
#define FTS_AUTOMERGE		8	/* segments of a level merged */
#define FTS_IDLE_MS		2000	/* without jobs before idle work */
#define FTS_DEAD_MIN		1024	/* dead rows that wait for idle time */
#define FTS_NICE		10	/* without SCHED_IDLE (Linux) */
#define FTS_CACHE_KB		16384	/* the indexer's page cache */
#define FTS_CHECKPOINT_PAGES	4000	/* WAL pages before a checkpoint */

static const char fts_schema[] =
	/* The blob and prefix each live row was indexed from. */
	"CREATE TABLE docs ("
	"  id INTEGER PRIMARY KEY,"
	"  blob TEXT NOT NULL,"
	"  prefix BLOB NOT NULL DEFAULT x''"
	");"
	/* Rows of messages_fts whose message is gone, to purge. */
	"CREATE TABLE dead ("
	"  id INTEGER PRIMARY KEY"
	");"
	/*
	 * rowid is messages.id.  Nothing ranks, so no column sizes; the
	 * positions stay (detail=full): SEARCH's substrings are phrases
	 * of trigrams.
	 */
	"CREATE VIRTUAL TABLE messages_fts USING fts5("
	"  header, addresses, body, tokenize = 'trigram', columnsize = 0"
	");"
	"PRAGMA user_version = 3;";

/*
 * Version 2 had no prefixes and removed rows at once.  Its rows were
 * indexed from their message's prefix, which never changes; a row of
 * a message since gone is found dead by the comparison at start.
 */
static const char fts_upgrade_2[] =
	"ALTER TABLE docs ADD COLUMN prefix BLOB NOT NULL DEFAULT x'';"
	"UPDATE docs SET prefix = (SELECT CAST(m.prefix AS BLOB) FROM "
	"  store.messages m WHERE m.id = docs.id AND m.blob = docs.blob) "
	"  WHERE EXISTS (SELECT 1 FROM store.messages m WHERE "
	"  m.id = docs.id AND m.blob = docs.blob);"
	"CREATE TABLE dead ("
	"  id INTEGER PRIMARY KEY"
	");"
	"PRAGMA user_version = 3;";

/* The indexer's statements, made once. */
enum fts_stmt {
	FTS_ST_LOOKUP,
	FTS_ST_INSERT,
	FTS_ST_INSERT_DOC,
	FTS_ST_DELETE,
	FTS_ST_DELETE_DOC,
	FTS_ST_INSERT_DEAD,
	FTS_ST_DELETE_DEAD,
	FTS_ST_NEXT_DEAD,
	FTS_ST_COUNT
};

static const char *const fts_stmt_sql[FTS_ST_COUNT] = {
	[FTS_ST_LOOKUP] = "SELECT m.blob, m.prefix, d.blob, d.prefix, "
	    "EXISTS (SELECT 1 FROM dead WHERE id = k.id) FROM (SELECT ?1 "
	    "AS id) k LEFT JOIN store.messages m ON m.id = k.id LEFT JOIN "
	    "docs d ON d.id = k.id",
	[FTS_ST_INSERT] = "INSERT INTO messages_fts (rowid, header, "
	    "addresses, body) VALUES (?, ?, ?, ?)",
	[FTS_ST_INSERT_DOC] = "INSERT OR REPLACE INTO docs (id, blob, "
	    "prefix) VALUES (?, ?, ?)",
	[FTS_ST_DELETE] = "DELETE FROM messages_fts WHERE rowid = ?",
	[FTS_ST_DELETE_DOC] = "DELETE FROM docs WHERE id = ?",
	[FTS_ST_INSERT_DEAD] = "INSERT OR IGNORE INTO dead (id) VALUES (?)",
	[FTS_ST_DELETE_DEAD] = "DELETE FROM dead WHERE id = ?",
	[FTS_ST_NEXT_DEAD] = "SELECT id FROM dead ORDER BY id LIMIT ?",
};

static sqlite3		*fts_db;	/* the indexer's */
static sqlite3_stmt	*fts_stmts[FTS_ST_COUNT];
static pthread_mutex_t	 fts_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 fts_wakeup;	/* on CLOCK_MONOTONIC */
static int64_t		*fts_queue;	/* ids for the indexer */
static size_t		 fts_qhead;	/* the next one to take */
static size_t		 fts_nqueue, fts_capqueue;
static struct timespec	 fts_queued_at;	/* when the queue last filled */
static unsigned int	 fts_reconcile;	/* requests to compare the files */
static int		 fts_started;

/* The indexer's own. */
static int64_t		 fts_ndocs;	/* rows in docs */
static int64_t		 fts_ndead;	/* rows in dead */
static struct timespec	 fts_busy_at;	/* when the last job was done */

/* In the main thread: ids touched, for after the commit. */
static int64_t		*fts_touched;
static size_t		 fts_ntouched, fts_captouched;
static int		 fts_sweep_wanted;
static struct event	 fts_flush_ev;

static int
fts_exec(const char *sql)
{
	char	*errmsg = NULL;

	if (sqlite3_exec(fts_db, sql, NULL, NULL, &errmsg) != SQLITE_OK) {
		log_warnx("%s: %s", STORE_FTS_PATH,
		    errmsg ? errmsg : sqlite3_errmsg(fts_db));
		sqlite3_free(errmsg);
		return -1;
	}
	return 0;
}

static int
fts_exec_int(const char *fmt, int value)
{
	char	 sql[128];
	int	 n;

	n = snprintf(sql, sizeof(sql), fmt, value);
	if (n < 0 || (size_t)n >= sizeof(sql))
		fatalx("%s: %s", __func__, fmt);
	return fts_exec(sql);
}

static int
fts_version(void)
{
	sqlite3_stmt	*st;
	int		 v = -1;

	if (sqlite3_prepare_v2(fts_db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The indexer's counts of live and dead rows, from the file. */
static int
fts_count(void)
{
	sqlite3_stmt	*st;
	int		 rc = -1;

	if (sqlite3_prepare_v2(fts_db, "SELECT (SELECT count(*) FROM docs), "
	    "(SELECT count(*) FROM dead)", -1, &st, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		fts_ndocs = sqlite3_column_int64(st, 0);
		fts_ndead = sqlite3_column_int64(st, 1);
		rc = 0;
	} else
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
	sqlite3_finalize(st);
	return rc;
}

/* Opens the index, made anew if it is missing, damaged or unknown. */
static int
fts_open(void)
{
	sqlite3_stmt	*st;
	int		 i, rc, v;

	rc = sqlite3_open_v2(STORE_FTS_PATH, &fts_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
	    SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK) {
		log_warnx("%s: %s", STORE_FTS_PATH, fts_db ?
		    sqlite3_errmsg(fts_db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(fts_db, 1);
	if (sqlite3_busy_timeout(fts_db, STORE_BUSY_TIMEOUT_MS) != SQLITE_OK)
		goto fail;
	if ((v = fts_version()) == -1)
		goto fail;
	if (v != 0 && v != 2 && v != FTS_SCHEMA_VERSION) {
		log_warnx("%s: schema version %d, not %d", STORE_FTS_PATH, v,
		    FTS_SCHEMA_VERSION);
		goto fail;
	}
	if (sqlite3_prepare_v2(fts_db, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	if (!rc)
		goto fail;
	/*
	 * Derived data: a commit lost in a crash is redone at start.  A
	 * cache and a WAL that hold a merge's pages spare rereading and
	 * rewriting them, and the pages a merge frees are not zeroed
	 * (their text was a message's, like a removed blob's).
	 */
	if (fts_exec("PRAGMA synchronous = NORMAL") == -1 ||
	    fts_exec("PRAGMA secure_delete = FAST") == -1 ||
	    fts_exec_int("PRAGMA cache_size = -%d", FTS_CACHE_KB) == -1 ||
	    fts_exec_int("PRAGMA wal_autocheckpoint = %d",
	    FTS_CHECKPOINT_PAGES) == -1)
		goto fail;
	if (fts_exec("ATTACH 'file:" STORE_DB_PATH "?mode=ro' AS store") ==
	    -1)
		goto fail;
	if (v == 0 && (fts_exec("BEGIN IMMEDIATE") == -1 ||
	    fts_exec(fts_schema) == -1 || fts_exec("COMMIT") == -1))
		goto fail;
	if (v == 2) {
		if (fts_exec("BEGIN IMMEDIATE") == -1)
			goto fail;
		if (fts_exec(fts_upgrade_2) == -1 || fts_exec("COMMIT") == -1) {
			fts_exec("ROLLBACK");
			goto fail;
		}
		log_info("%s: schema version 2 brought to %d", STORE_FTS_PATH,
		    FTS_SCHEMA_VERSION);
	}
	/*
	 * FTS5 merges a level's segments once it has FTS_AUTOMERGE of
	 * them, a bit at each commit: eight rather than the default four
	 * rewrites each posting less often, and with batched commits a
	 * query still reads about as many segments as before.  (Leaving
	 * merges to idle time and FTS5's crisis merge costs more in the
	 * end: a crisis merge takes a whole level at once.)
	 */
	if (fts_exec_int("INSERT INTO messages_fts (messages_fts, rank) "
	    "VALUES ('automerge', %d)", FTS_AUTOMERGE) == -1)
		goto fail;
	/* Open both files' WAL and shared memory before the sandbox. */
	if (fts_exec("SELECT count(*) FROM docs WHERE id = 0;"
	    "SELECT count(*) FROM store.messages WHERE id = 0") == -1)
		goto fail;
	for (i = 0; i < FTS_ST_COUNT; i++)
		if (sqlite3_prepare_v3(fts_db, fts_stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &fts_stmts[i], NULL) !=
		    SQLITE_OK) {
			log_warnx("%s: %s", STORE_FTS_PATH,
			    sqlite3_errmsg(fts_db));
			goto fail;
		}
	if (fts_count() == -1)
		goto fail;
	return 0;
 fail:
	for (i = 0; i < FTS_ST_COUNT; i++) {
		sqlite3_finalize(fts_stmts[i]);
		fts_stmts[i] = NULL;
	}
	sqlite3_close(fts_db);
	fts_db = NULL;
	return -1;
}

/*
 * The text of the text leaves that are not attachments, bounded.  A
 * message's large attachments are cut out of its blob (store_parts.c),
 * but never such a leaf: the blob alone has all the text.
 */
static void
fts_part_text(struct store_buf *b, const struct mime_part *p,
    const char *raw, size_t rawlen)
{
	char	*t, *h;
	size_t	 i, tlen;

	if (b->len >= STORE_FTS_TEXT_MAX)
		return;
	if (p->message != NULL) {
		fts_part_text(b, p->message, raw, rawlen);
		return;
	}
	for (i = 0; i < p->nchildren; i++)
		fts_part_text(b, p->children[i], raw, rawlen);
	if (p->nchildren > 0 || strcmp(p->type, "text") != 0 ||
	    mime_part_is_attachment(p))
		return;
	if (mime_part_text(p, raw, rawlen, &t, &tlen) != MIME_OK)
		return;
	if (strcmp(p->subtype, "html") == 0) {
		h = mime_html_to_text(t, tlen, STORE_FTS_TEXT_MAX);
		free(t);
		if ((t = h) == NULL)
			return;
		tlen = strlen(t);
	}
	if (tlen > STORE_FTS_TEXT_MAX - b->len)
		tlen = STORE_FTS_TEXT_MAX - b->len;
	/* Never cut a UTF-8 character in two. */
	while (tlen > 0 && ((unsigned char)t[tlen] & 0xc0) == 0x80)
		tlen--;
	if (b->len > 0)
		store_buf_add(b, "\n", 1);
	store_buf_add(b, t, tlen);
	free(t);
}

/* Adds len bytes of s to b, short of max in all, in whole characters. */
static void
fts_add_bounded(struct store_buf *b, const char *s, size_t len, size_t max)
{
	if (b->len >= max)
		return;
	if (len > max - b->len) {
		len = max - b->len;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	store_buf_add(b, s, len);
}

/*
 * The fields of a header block, one a line, unfolded and with their
 * encoded-words decoded, in UTF-8.  The block ends at its empty line.
 */
static void
fts_header_fields(struct store_buf *b, const char *h, size_t len)
{
	size_t	 i = 0, start, end;
	char	*v, *d;

	while (i < len && b->len < STORE_FTS_HEADER_MAX && !b->err) {
		if (h[i] == '\r' || h[i] == '\n')
			break;
		start = i;
		/* The field runs to a line not starting with WSP. */
		for (end = i; end < len; end++)
			if (h[end] == '\n' && (end + 1 >= len ||
			    (h[end + 1] != ' ' && h[end + 1] != '\t')))
				break;
		i = end + 1;
		if ((v = mime_unfold(h + start, end - start)) == NULL) {
			b->err = 1;
			break;
		}
		d = mime_decode_words(v);
		free(v);
		if (d == NULL) {
			b->err = 1;
			break;
		}
		fts_add_bounded(b, d, strlen(d), STORE_FTS_HEADER_MAX);
		fts_add_bounded(b, "\n", 1, STORE_FTS_HEADER_MAX);
		free(d);
	}
}

/*
 * Parameter values that the part's fields (from mark on in b) do not
 * show as they read decoded: RFC 2231's encoded and continued ones.
 */
static void
fts_params(struct store_buf *b, size_t mark, const struct mime_param *pa,
    size_t n)
{
	size_t	 i, vlen;

	for (i = 0; i < n && !b->err; i++) {
		if (pa[i].value == NULL || (vlen = strlen(pa[i].value)) == 0)
			continue;
		if (b->p != NULL && memmem(b->p + mark, b->len - mark,
		    pa[i].value, vlen) != NULL)
			continue;
		fts_add_bounded(b, pa[i].name, strlen(pa[i].name),
		    STORE_FTS_HEADER_MAX);
		fts_add_bounded(b, "=", 1, STORE_FTS_HEADER_MAX);
		fts_add_bounded(b, pa[i].value, vlen, STORE_FTS_HEADER_MAX);
		fts_add_bounded(b, "\n", 1, STORE_FTS_HEADER_MAX);
	}
}

/*
 * The header section of part p and of every part and message inside
 * it: what SEARCH TEXT finds besides the body (RFC 9051 6.4.4 counts
 * MIME header fields in).
 */
static void
fts_part_header(struct store_buf *b, const struct mime_part *p,
    const char *raw, size_t rawlen)
{
	size_t	 i, mark = b->len;

	if (p->header_start < p->body_start && p->body_start <= rawlen)
		fts_header_fields(b, raw + p->header_start,
		    p->body_start - p->header_start);
	/* Without a Content-Type, the parameters are the defaults. */
	if (!(p->flags & MIME_F_CT_DEFAULT))
		fts_params(b, mark, p->params, p->nparams);
	fts_params(b, mark, p->disp_params, p->ndisp_params);
	if (p->message != NULL)
		fts_part_header(b, p->message, raw, rawlen);
	for (i = 0; i < p->nchildren; i++)
		fts_part_header(b, p->children[i], raw, rawlen);
}

static int
fts_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s != NULL ? s : "", -1,
	    SQLITE_STATIC) == SQLITE_OK ? 0 : -1;
}

/* Runs one of fts_stmts to its end and readies it for the next use. */
static int
fts_done(sqlite3_stmt *st)
{
	int	 rc;

	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
fts_stmt_id(enum fts_stmt which, int64_t id)
{
	sqlite3_stmt	*st = fts_stmts[which];

	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return -1;
	}
	return fts_done(st);
}

/*
 * Inside the indexer's transaction: the index row of message id from
 * its prefix and blob.  A blob that cannot be read is left for the
 * next start; one that does not parse has its header block indexed.
 */
static int
fts_index(int64_t id, const char *blob, const char *prefix,
    size_t prefixlen)
{
	struct mime_message	*mime = NULL;
	struct mime_envelope	*env;
	struct store_buf	 b;
	sqlite3_stmt		*st;
	char			*raw = NULL, *header = NULL, *addresses = NULL;
	char			*text = NULL;
	size_t			 len;
	int			 r, rc = -1;

	if (store_blob_read(blob, MIME_MAX_SIZE, &raw, &len) == -1) {
		log_warn("%s: message %lld: blob %s", STORE_FTS_PATH,
		    (long long)id, blob);
		return 0;
	}
	/* Nothing here shows a preview. */
	if ((r = mime_parse_opt(raw, len, 0, &mime)) != MIME_OK) {
		log_warnx("%s: message %lld: %s", STORE_FTS_PATH,
		    (long long)id, mime_strerror(r));
		if (r == MIME_ERR_NOMEM)
			goto done;
		mime = NULL;
	}
	memset(&b, 0, sizeof(b));
	fts_header_fields(&b, prefix, prefixlen);
	if (mime != NULL)
		fts_part_header(&b, mime->root, raw, len);
	else
		fts_header_fields(&b, raw, len < MIME_MAX_HEADER ? len :
		    MIME_MAX_HEADER);
	if ((header = store_buf_finish(&b)) == NULL)
		goto done;
	if (mime != NULL) {
		env = &mime->envelope;
		memset(&b, 0, sizeof(b));
		store_addrlist_render(&b, &env->from_list);
		store_addrlist_render(&b, &env->sender_list);
		store_addrlist_render(&b, &env->reply_to_list);
		store_addrlist_render(&b, &env->to_list);
		store_addrlist_render(&b, &env->cc_list);
		store_addrlist_render(&b, &env->bcc_list);
		if ((addresses = store_buf_finish(&b)) == NULL)
			goto done;
		memset(&b, 0, sizeof(b));
		fts_part_text(&b, mime->root, raw, len);
		if ((text = store_buf_finish(&b)) == NULL)
			goto done;
	}
	st = fts_stmts[FTS_ST_INSERT];
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    fts_bind_text(st, 2, header) == -1 ||
	    fts_bind_text(st, 3, addresses) == -1 ||
	    fts_bind_text(st, 4, text) == -1) {
		sqlite3_clear_bindings(st);
		goto done;
	}
	if (fts_done(st) == -1)
		goto done;
	st = fts_stmts[FTS_ST_INSERT_DOC];
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    fts_bind_text(st, 2, blob) == -1 ||
	    sqlite3_bind_blob(st, 3, prefix != NULL ? prefix : "", prefixlen,
	    SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		goto done;
	}
	if ((rc = fts_done(st)) == 0)
		fts_ndocs++;
 done:
	mime_free(mime);
	free(raw);
	free(header);
	free(addresses);
	free(text);
	return rc;
}

/* A copy of a column's bytes, or NULL with *len 0 when it has none. */
static int
fts_column_copy(sqlite3_stmt *st, int col, char **p, size_t *len)
{
	const void	*v;

	*p = NULL;
	*len = 0;
	if ((v = sqlite3_column_blob(st, col)) == NULL ||
	    (*len = sqlite3_column_bytes(st, col)) == 0)
		return 0;
	if ((*p = malloc(*len)) == NULL) {
		log_warn("%s", __func__);
		*len = 0;
		return -1;
	}
	memcpy(*p, v, *len);
	return 0;
}

/* What the store and the index hold of one message. */
struct fts_look {
	int64_t	 id;
	char	 blob[STORE_HASH_HEX + 1];	/* the message's, or "" */
	char	 have[STORE_HASH_HEX + 1];	/* docs', or "" */
	char	*prefix, *had;			/* the same of its prefix */
	size_t	 prefixlen, hadlen;
	int	 dead;
};

/*
 * Outside any transaction: what lk->id is in postern.db and in the
 * index.  A statement of its own, so that the indexer holds no read
 * snapshot of postern.db while it indexes: one would keep the WAL
 * from starting again (a checkpoint cannot pass it) and make it grow
 * for as long as the indexer is busy.  The indexer alone writes the
 * index; a message that changes meanwhile has its own job queued.
 */
static int
fts_look(struct fts_look *lk)
{
	sqlite3_stmt	*st = fts_stmts[FTS_ST_LOOKUP];
	const char	*s;
	int		 rc = -1;

	if (sqlite3_bind_int64(st, 1, lk->id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
		goto done;
	}
	if ((s = (const char *)sqlite3_column_text(st, 0)) != NULL)
		strlcpy(lk->blob, s, sizeof(lk->blob));
	if ((s = (const char *)sqlite3_column_text(st, 2)) != NULL)
		strlcpy(lk->have, s, sizeof(lk->have));
	lk->dead = sqlite3_column_int(st, 4);
	if (fts_column_copy(st, 1, &lk->prefix, &lk->prefixlen) == 0 &&
	    fts_column_copy(st, 3, &lk->had, &lk->hadlen) == 0)
		rc = 0;
 done:
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/*
 * Inside the indexer's transaction: makes the index agree on what
 * fts_look() found.  A row indexed from what the message is no
 * longer stays, dead, unless the id is indexed again now (FTS5 holds
 * one row per rowid).
 */
static int
fts_sync_one(const struct fts_look *lk)
{
	int64_t	 id = lk->id;

	if (lk->blob[0] != '\0' && lk->have[0] != '\0' &&
	    strcmp(lk->blob, lk->have) == 0 &&
	    lk->prefixlen == lk->hadlen && (lk->hadlen == 0 ||
	    memcmp(lk->prefix, lk->had, lk->hadlen) == 0))
		return 0;
	if (lk->have[0] != '\0') {
		if (fts_stmt_id(FTS_ST_DELETE_DOC, id) == -1)
			return -1;
		fts_ndocs--;
		if (lk->blob[0] == '\0') {
			if (fts_stmt_id(FTS_ST_INSERT_DEAD, id) == -1)
				return -1;
			fts_ndead++;
			return 0;
		}
		if (fts_stmt_id(FTS_ST_DELETE, id) == -1)
			return -1;
	} else if (lk->dead && lk->blob[0] != '\0') {
		if (fts_stmt_id(FTS_ST_DELETE, id) == -1 ||
		    fts_stmt_id(FTS_ST_DELETE_DEAD, id) == -1)
			return -1;
		fts_ndead--;
	}
	if (lk->blob[0] != '\0')
		return fts_index(id, lk->blob, lk->prefix, lk->prefixlen);
	return 0;
}

static int	 fts_end(int);

static int
fts_id_cmp(const void *a, const void *b)
{
	int64_t	 x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * A transaction of the indexer's, not IMMEDIATE: that would begin one
 * on every attached database, a read of postern.db that would keep
 * its WAL from starting again for as long as the indexer is busy.
 * The indexer is the index's only writer, so its first write never
 * waits.
 */
static int
fts_begin(void)
{
	return fts_exec("BEGIN");
}

/*
 * One transaction for a batch, in rowid order and each id once: FTS5
 * flushes what it holds whenever a rowid is not above the last.  On
 * failure the batch's ids wait for the next start.
 */
static void
fts_apply(int64_t *ids, size_t n)
{
	struct fts_look	*looks;
	size_t		 i, j;

	qsort(ids, n, sizeof(*ids), fts_id_cmp);
	for (i = j = 0; i < n; i++)
		if (j == 0 || ids[i] != ids[j - 1])
			ids[j++] = ids[i];
	n = j;
	if ((looks = calloc(n, sizeof(*looks))) == NULL) {
		log_warn("%s", __func__);
		return;
	}
	for (i = 0; i < n; i++) {
		looks[i].id = ids[i];
		if (fts_look(&looks[i]) == -1)
			break;
	}
	if (i == n && fts_begin() == 0) {
		for (i = 0; i < n; i++)
			if (fts_sync_one(&looks[i]) == -1)
				break;
		fts_end(i == n);
	}
	for (i = 0; i < n; i++) {
		free(looks[i].prefix);
		free(looks[i].had);
	}
	free(looks);
}

/* Ends the indexer's transaction: committed if ok, else rolled back. */
static int
fts_end(int ok)
{
	if (ok && fts_exec("COMMIT") == 0)
		return 0;
	fts_exec("ROLLBACK");
	/* The counts went with the transaction. */
	fts_count();
	return -1;
}

/*
 * Takes up to STORE_FTS_BATCH dead rows out of FTS5, in rowid order,
 * which FTS5 records as one segment of deletions.
 */
static int
fts_purge(void)
{
	sqlite3_stmt	*st = fts_stmts[FTS_ST_NEXT_DEAD];
	int64_t		 ids[STORE_FTS_BATCH];
	size_t		 i, n = 0;
	int		 rc = SQLITE_DONE;

	if (fts_begin() == -1)
		return -1;
	if (sqlite3_bind_int(st, 1, STORE_FTS_BATCH) != SQLITE_OK) {
		sqlite3_clear_bindings(st);
		return fts_end(0);
	}
	while (n < STORE_FTS_BATCH && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	if (n < STORE_FTS_BATCH && rc != SQLITE_DONE)
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (i = 0; i < n; i++) {
		if (fts_stmt_id(FTS_ST_DELETE, ids[i]) == -1 ||
		    fts_stmt_id(FTS_ST_DELETE_DEAD, ids[i]) == -1)
			break;
		fts_ndead--;
	}
	/* Counted wrong: the file says how many are left. */
	if (n == 0)
		return fts_end(0);
	return fts_end(i == n);
}

/*
 * Up to STORE_FTS_BATCH ids after *after where the two files disagree:
 * messages without their index row (or indexed from another blob),
 * then index rows without their message.  The number found.
 */
static size_t
fts_differences(const char *sql, int64_t *after, int64_t *ids)
{
	sqlite3_stmt	*st;
	size_t		 n = 0;
	int		 rc;

	if (sqlite3_prepare_v2(fts_db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
		return 0;
	}
	if (sqlite3_bind_int64(st, 1, *after) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, STORE_FTS_BATCH) != SQLITE_OK) {
		sqlite3_finalize(st);
		return 0;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: %s", STORE_FTS_PATH, sqlite3_errmsg(fts_db));
		n = 0;
	}
	sqlite3_finalize(st);
	if (n > 0)
		*after = ids[n - 1];
	return n;
}

/*
 * With fts_lock held and jobs queued: waits until STORE_FTS_LAG_MS
 * after the first of them came, or until a batch is full, so that one
 * transaction takes what comes meanwhile.
 */
static void
fts_gather(void)
{
	struct timespec	 until;

	until = fts_queued_at;
	until.tv_nsec += (long)STORE_FTS_LAG_MS * 1000000;
	until.tv_sec += until.tv_nsec / 1000000000;
	until.tv_nsec %= 1000000000;
	while (fts_nqueue > fts_qhead &&
	    fts_nqueue - fts_qhead < STORE_FTS_BATCH && fts_reconcile == 0)
		if (pthread_cond_timedwait(&fts_wakeup, &fts_lock, &until) ==
		    ETIMEDOUT)
			break;
}

/*
 * With fts_lock held: waits for a job or a comparison to do, or for
 * FTS_IDLE_MS without either when dead rows wait.  1 if idle.
 */
static int
fts_wait(void)
{
	struct timespec	 until;

	while (fts_nqueue == fts_qhead && fts_reconcile == 0) {
		if (fts_ndead == 0) {
			pthread_cond_wait(&fts_wakeup, &fts_lock);
			continue;
		}
		until = fts_busy_at;
		until.tv_nsec += (long)(FTS_IDLE_MS % 1000) * 1000000;
		until.tv_sec += FTS_IDLE_MS / 1000 + until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		if (pthread_cond_timedwait(&fts_wakeup, &fts_lock, &until) ==
		    ETIMEDOUT && fts_nqueue == fts_qhead && fts_reconcile == 0)
			return 1;
	}
	return 0;
}

/*
 * The indexer yields to the sessions: SEARCH does not wait for it, so
 * under load only what SEARCH TEXT finds is late.  On Linux it runs
 * under SCHED_IDLE, which any session's thread preempts as it wakes:
 * at nice 10 it still ran ahead of them often enough that the mix of
 * regress/bench/imap at 10 sessions went 10% slower.  Linux gives each
 * thread a policy and a nice value of its own; elsewhere they would be
 * the process's.  Nice 10 is what is left if the policy is refused.
 */
static void
fts_lower_priority(void)
{
#ifdef __linux__
	struct sched_param	sp;

	memset(&sp, 0, sizeof(sp));
	if (sched_setscheduler(gettid(), SCHED_IDLE, &sp) == 0)
		return;
	log_warn("%s: sched_setscheduler", STORE_FTS_PATH);
	if (setpriority(PRIO_PROCESS, gettid(), FTS_NICE) == -1)
		log_warn("%s: setpriority", STORE_FTS_PATH);
#endif
}

static void *
fts_thread(void *arg)
{
	int64_t		 ids[STORE_FTS_BATCH];
	int64_t		 missing_after = 0, stale_after = 0;
	size_t		 n, indexed = 0;
	unsigned int	 gen = 0;
	int		 phase = -1;

	(void)arg;
	fts_lower_priority();
	clock_gettime(CLOCK_MONOTONIC, &fts_busy_at);
	pthread_mutex_lock(&fts_lock);
	fts_started = 1;
	pthread_cond_broadcast(&fts_wakeup);
	pthread_mutex_unlock(&fts_lock);
	for (;;) {
		pthread_mutex_lock(&fts_lock);
		if (fts_wait()) {
			pthread_mutex_unlock(&fts_lock);
			/* Failed: again after another while. */
			if (fts_purge() == -1)
				clock_gettime(CLOCK_MONOTONIC, &fts_busy_at);
			continue;
		}
		/* A comparison under way takes each job at once. */
		if (phase == -1)
			fts_gather();
		if (phase == -1 && fts_reconcile != 0) {
			gen = fts_reconcile;
			phase = 0;
			missing_after = stale_after = 0;
			indexed = 0;
		}
		n = fts_nqueue - fts_qhead;
		if (n > STORE_FTS_BATCH)
			n = STORE_FTS_BATCH;
		if (n > 0) {
			memcpy(ids, fts_queue + fts_qhead, n * sizeof(*ids));
			fts_qhead += n;
		}
		if (fts_qhead == fts_nqueue)
			fts_qhead = fts_nqueue = 0;
		pthread_mutex_unlock(&fts_lock);
		if (n > 0) {
			fts_apply(ids, n);
			/* Under load, once the dead outnumber the live. */
			if (fts_ndead > FTS_DEAD_MIN && fts_ndead > fts_ndocs)
				fts_purge();
			clock_gettime(CLOCK_MONOTONIC, &fts_busy_at);
			continue;
		}
		if (phase == -1)
			continue;

		/* Nothing waits: a step of the comparison. */
		if (phase == 0)
			n = fts_differences("SELECT m.id FROM store.messages m "
			    "LEFT JOIN docs d ON d.id = m.id WHERE m.id > ?1 "
			    "AND (d.blob IS NULL OR d.blob <> m.blob OR "
			    "d.prefix <> CAST(m.prefix AS BLOB)) "
			    "ORDER BY m.id LIMIT ?2", &missing_after, ids);
		else
			n = fts_differences("SELECT d.id FROM docs d WHERE "
			    "d.id > ?1 AND NOT EXISTS (SELECT 1 FROM "
			    "store.messages m WHERE m.id = d.id) "
			    "ORDER BY d.id LIMIT ?2", &stale_after, ids);
		if (n > 0) {
			fts_apply(ids, n);
			if (phase == 0)
				indexed += n;
		}
		clock_gettime(CLOCK_MONOTONIC, &fts_busy_at);
		if (n == STORE_FTS_BATCH || ++phase < 2)
			continue;
		if (indexed > 0)
			log_info("%s: %zu messages indexed", STORE_FTS_PATH,
			    indexed);
		/* Asked again meanwhile: once more from the start. */
		pthread_mutex_lock(&fts_lock);
		if (fts_reconcile == gen)
			fts_reconcile = 0;
		pthread_mutex_unlock(&fts_lock);
		phase = -1;
	}
	return NULL;
}

/* In the main thread: hands the ids touched to the indexer. */
static void
fts_flush(int fd, short event, void *arg)
{
	struct timeval	 tv = { 0, 1000 };
	int64_t		*nq;
	size_t		 cap;
	int		 wake;

	(void)fd;
	(void)event;
	(void)arg;
	if (fts_ntouched == 0 && !fts_sweep_wanted)
		return;
	/* Not before the transaction that touched them is over. */
	if (!sqlite3_get_autocommit(store_db)) {
		evtimer_add(&fts_flush_ev, &tv);
		return;
	}
	pthread_mutex_lock(&fts_lock);
	if (fts_qhead > 0 && fts_nqueue + fts_ntouched > fts_capqueue) {
		memmove(fts_queue, fts_queue + fts_qhead,
		    (fts_nqueue - fts_qhead) * sizeof(*fts_queue));
		fts_nqueue -= fts_qhead;
		fts_qhead = 0;
	}
	if (fts_nqueue + fts_ntouched > fts_capqueue) {
		cap = fts_capqueue ? fts_capqueue : 256;
		while (cap < fts_nqueue + fts_ntouched)
			cap *= 2;
		if ((nq = reallocarray(fts_queue, cap, sizeof(*nq))) == NULL)
			fatal("%s", __func__);
		fts_queue = nq;
		fts_capqueue = cap;
	}
	/* The indexer waits for the first job, then for a full batch. */
	wake = fts_sweep_wanted;
	if (fts_ntouched > 0) {
		if (fts_nqueue == fts_qhead) {
			clock_gettime(CLOCK_MONOTONIC, &fts_queued_at);
			wake = 1;
		}
		memcpy(fts_queue + fts_nqueue, fts_touched,
		    fts_ntouched * sizeof(*fts_touched));
		fts_nqueue += fts_ntouched;
		if (fts_nqueue - fts_qhead >= STORE_FTS_BATCH)
			wake = 1;
	}
	if (fts_sweep_wanted && ++fts_reconcile == 0)
		fts_reconcile = 1;
	if (wake)
		pthread_cond_signal(&fts_wakeup);
	pthread_mutex_unlock(&fts_lock);
	fts_ntouched = 0;
	fts_sweep_wanted = 0;
}

/*
 * In the main thread, inside the transaction that makes or removes
 * message row id: the indexer hears of it after the commit.  A touch
 * whose transaction rolls back is harmless.
 */
void
store_fts_touch(int64_t id)
{
	struct timeval	 tv = { 0, 0 };
	int64_t		*nt;
	size_t		 cap;

	if (fts_ntouched == fts_captouched) {
		cap = fts_captouched ? fts_captouched * 2 : 64;
		if ((nt = reallocarray(fts_touched, cap, sizeof(*nt))) ==
		    NULL)
			fatal("%s", __func__);
		fts_touched = nt;
		fts_captouched = cap;
	}
	fts_touched[fts_ntouched++] = id;
	if (!evtimer_pending(&fts_flush_ev, NULL))
		evtimer_add(&fts_flush_ev, &tv);
}

/*
 * In the main thread, inside a transaction that removes many rows at
 * once (an account's): after the commit the indexer compares the files.
 */
void
store_fts_sweep(void)
{
	struct timeval	 tv = { 0, 0 };

	fts_sweep_wanted = 1;
	if (!evtimer_pending(&fts_flush_ev, NULL))
		evtimer_add(&fts_flush_ev, &tv);
}

/*
 * Before the sandbox, after store_db_open(): the index file, the
 * indexer thread comparing it with the store, and the main
 * connection's read-only view of it.
 */
void
store_fts_init(void)
{
	pthread_condattr_t	 ca;
	pthread_t		 tid;
	sigset_t		 all, old;
	int			 rc;

	if (fts_open() == -1) {
		log_warnx("%s: making the index anew", STORE_FTS_PATH);
		if ((unlink(STORE_FTS_PATH) == -1 && errno != ENOENT) ||
		    (unlink(STORE_FTS_PATH "-wal") == -1 && errno != ENOENT) ||
		    (unlink(STORE_FTS_PATH "-shm") == -1 && errno != ENOENT))
			fatal("unlink %s", STORE_FTS_PATH);
		if (fts_open() == -1)
			fatalx("%s: cannot make the full-text index",
			    STORE_FTS_PATH);
	}
	fts_reconcile = 1;
	evtimer_set(&fts_flush_ev, fts_flush, NULL);
	if ((rc = pthread_condattr_init(&ca)) != 0 ||
	    (rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (rc = pthread_cond_init(&fts_wakeup, &ca)) != 0)
		fatalx("pthread_cond_init: %s", strerror(rc));
	pthread_condattr_destroy(&ca);

	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	if ((rc = pthread_create(&tid, NULL, fts_thread, NULL)) != 0)
		fatalx("pthread_create: %s", strerror(rc));
	if ((rc = pthread_detach(tid)) != 0)
		fatalx("pthread_detach: %s", strerror(rc));
	if ((rc = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	pthread_mutex_lock(&fts_lock);
	while (!fts_started)
		pthread_cond_wait(&fts_wakeup, &fts_lock);
	pthread_mutex_unlock(&fts_lock);

	if (sqlite3_exec(store_db, "ATTACH 'file:" STORE_FTS_PATH
	    "?mode=ro' AS fts", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(store_db, "SELECT count(*) FROM fts.messages_fts "
	    "WHERE rowid = 0", NULL, NULL, NULL) != SQLITE_OK)
		fatalx("%s: attach: %s", STORE_FTS_PATH,
		    sqlite3_errmsg(store_db));
}
