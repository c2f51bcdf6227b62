/*
 * imapd's requests on the messages of its selected mailbox: FETCH,
 * STORE, COPY and MOVE, EXPUNGE (APPEND is in store_imap_append.c).
 * Every change is one transaction: one MODSEQ of the
 * account for all of it, the placements touched set to it, each
 * mailbox's highestmodseq and uidnext, a change-log row per message,
 * a vanished row per expunged UID, and a message row (with its blob
 * reference, keywords and index row) gone once no placement holds it.
 * Keywords belong to the message, so a flag set through one mailbox
 * shows in every mailbox that holds the message.
 */
#include <sys/tree.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "storaged.h"

#define FLAGS_TEXT_MAX		8000	/* bytes of one message's flags */

struct msg_row {
	uint32_t	 uid;
	int64_t		 modseq;
	int64_t		 message;
	char		*keywords;
};

struct msg_rows {
	struct msg_row	*r;
	size_t		 n;
	size_t		 cap;
};

static __attribute__((__noreturn__)) void
msg_malformed(struct imsg *imsg)
{
	fatalx("malformed %s from imapd", imsg_type_name(imsg->hdr.type));
}

static int
sql_done(sqlite3_stmt *st)
{
	int	 rc;

	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: %s", STORE_DB_PATH, sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

/* sql_done() for a kept statement (store_stmt()). */
static int
kept_done(sqlite3_stmt *st)
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

static void
rows_free(struct msg_rows *rows)
{
	size_t	 i;

	for (i = 0; i < rows->n; i++)
		free(rows->r[i].keywords);
	free(rows->r);
	memset(rows, 0, sizeof(*rows));
}

/*
 * The placements of mailbox in the ranges (all of them if r is NULL),
 * ascending; only \Deleted ones if deleted is set.  -1 on an error.
 */
static int
rows_load(struct msg_rows *rows, int64_t mailbox,
    const struct store_rangelist *r, int deleted)
{
	sqlite3_stmt	*st;
	struct msg_row	*nr;
	const char	*kw;
	size_t		 i, n;
	int		 rc = SQLITE_DONE;

	memset(rows, 0, sizeof(*rows));
	if ((st = store_stmt(deleted ?
	    "SELECT mm.uid, mm.modseq, mm.message_id, NULL "
	    "FROM mailbox_messages mm WHERE mm.mailbox_id = ?1 AND "
	    "mm.uid BETWEEN ?2 AND ?3 AND mm.flags & 8 != 0 "
	    "ORDER BY mm.uid" :
	    "SELECT mm.uid, mm.modseq, mm.message_id, (SELECT "
	    "group_concat(k.keyword, ' ') FROM keywords k "
	    "WHERE k.message_id = mm.message_id) FROM mailbox_messages mm "
	    "WHERE mm.mailbox_id = ?1 AND mm.uid BETWEEN ?2 AND ?3 "
	    "ORDER BY mm.uid")) == NULL)
		return -1;
	n = r == NULL ? 1 : r->n;
	for (i = 0; i < n && rc == SQLITE_DONE; i++) {
		sqlite3_reset(st);
		if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, r == NULL ? 0 : r->lo[i]) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, r == NULL ? UINT32_MAX :
		    r->hi[i]) != SQLITE_OK) {
			rc = SQLITE_ERROR;
			break;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (rows->n == rows->cap) {
				rows->cap = rows->cap ? rows->cap * 2 : 64;
				if ((nr = reallocarray(rows->r, rows->cap,
				    sizeof(*nr))) == NULL) {
					rc = SQLITE_NOMEM;
					break;
				}
				rows->r = nr;
			}
			nr = &rows->r[rows->n];
			nr->uid = sqlite3_column_int64(st, 0);
			nr->modseq = sqlite3_column_int64(st, 1);
			nr->message = sqlite3_column_int64(st, 2);
			kw = (const char *)sqlite3_column_text(st, 3);
			nr->keywords = NULL;
			if (kw != NULL && (nr->keywords = strdup(kw)) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			rows->n++;
		}
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: placements: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		rows_free(rows);
		return -1;
	}
	return 0;
}

static int
mailbox_set_modseq(int64_t mailbox, int64_t modseq)
{
	sqlite3_stmt	*st;

	if ((st = store_stmt("UPDATE mailboxes SET highestmodseq = ? "
	    "WHERE id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, modseq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, mailbox) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	return kept_done(st);
}

/*
 * Inside a transaction: a placement goes (with a vanished row when
 * vanished is set), and its message too if nothing else holds it.
 */
int
store_placement_drop(int64_t account, int64_t mailbox, uint32_t uid,
    int64_t message, int64_t modseq, int vanished)
{
	sqlite3_stmt	*st;
	char		 blob[STORE_HASH_HEX + 1];
	char		**parts = NULL;
	size_t		 i, nparts = 0, cap = 0;
	int		 rc, others, ret = -1;

	if ((st = store_stmt("DELETE FROM mailbox_messages "
	    "WHERE mailbox_id = ? AND uid = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, uid) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	if (kept_done(st) == -1)
		return -1;
	if (vanished) {
		if ((st = store_stmt("INSERT OR REPLACE INTO vanished "
		    "(mailbox_id, uid, modseq) VALUES (?, ?, ?)")) == NULL)
			return -1;
		if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, uid) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, modseq) != SQLITE_OK) {
			store_stmt_done(st);
			return -1;
		}
		if (kept_done(st) == -1)
			return -1;
	}
	if ((st = store_stmt("SELECT blob, EXISTS (SELECT 1 FROM "
	    "mailbox_messages WHERE message_id = ?1) FROM messages "
	    "WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, message) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_stmt_done(st);
		return -1;
	}
	strlcpy(blob, (const char *)sqlite3_column_text(st, 0), sizeof(blob));
	others = sqlite3_column_int(st, 1);
	store_stmt_done(st);
	if (others)
		return store_change_add(account, modseq, "Email", message, 2);

	store_fts_touch(message);
	/* Its parts' rows go with it; their references after. */
	if (store_parts_blobs("SELECT blob FROM message_parts "
	    "WHERE message_id = ?", message, &parts, &nparts, &cap) == -1)
		goto done;
	if ((st = store_stmt("DELETE FROM messages WHERE id = ?")) == NULL)
		goto done;
	if (sqlite3_bind_int64(st, 1, message) != SQLITE_OK) {
		store_stmt_done(st);
		goto done;
	}
	if (kept_done(st) == -1 || store_blob_unref(blob) == -1)
		goto done;
	for (i = 0; i < nparts; i++)
		if (store_blob_unref(parts[i]) == -1)
			goto done;
	ret = store_change_add(account, modseq, "Email", message, 3);
 done:
	for (i = 0; i < nparts; i++)
		free(parts[i]);
	free(parts);
	return ret;
}

static void
send_end(uint32_t type, uint32_t peerid)
{
	struct msg_out	 m;

	msg_create(&m, type, peerid, -1);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s to imapd", imsg_type_name(type));
}

static void
fetch_mime(uint32_t peerid, uint32_t uid, const char *json, size_t len)
{
	struct msg_out	 m;
	size_t		 off = 0, n;

	do {
		n = len - off;
		if (n > IMAP_MIME_CHUNK)
			n = IMAP_MIME_CHUNK;
		msg_create(&m, IMSG_STORE_MSG_MIME, peerid, -1);
		msg_add_u32(&m, uid);
		msg_add_u32(&m, len);
		msg_add_data(&m, json + off, n);
		if (proc_send(PROC_IMAPD, &m) == -1)
			log_warn("%s: mime to imapd", __func__);
		off += n;
	} while (off < len);
}

/*
 * A message of FETCH whose parts were cut: each part's descriptor goes
 * in its MSG_PART, for imapd to read the pieces where they are.
 */
static int
fetch_pieces(uint32_t peerid, uint32_t uid, int64_t message,
    const char *blob, size_t max, size_t *nfds)
{
	struct store_piece	 pieces[IMAP_BODY_PARTS];
	struct msg_out		 m;
	size_t			 i, n;
	int			 fd;

	if (max > IMAP_BODY_PARTS)
		max = IMAP_BODY_PARTS;
	if (store_message_pieces(message, blob, &fd, pieces, max, &n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		msg_create(&m, IMSG_STORE_MSG_PART, peerid, pieces[i].fd);
		msg_add_u32(&m, uid);
		msg_add_u64(&m, pieces[i].start);
		msg_add_u64(&m, pieces[i].len);
		if (proc_send(PROC_IMAPD, &m) == -1) {
			/* imapd finds the item missing and says so. */
			log_warn("%s: part to imapd", __func__);
			while (++i < n)
				close(pieces[i].fd);
			close(fd);
			return -1;
		}
	}
	*nfds += n + 1;
	return fd;
}

/*
 * Where the top-level header ends, counting the prefix, from the mime
 * JSON of column col (mime_json_body_start(), which reads it without
 * parsing all of it, as json_extract() would for every message); or,
 * for JSON not as mime_to_json() writes it, from SQLite's parser.
 */
static uint64_t
fetch_body_start(sqlite3_stmt *st, int col, int64_t message)
{
	sqlite3_stmt	*q;
	const char	*json;
	uint64_t	 off;
	int64_t		 v = 0;

	json = (const char *)sqlite3_column_text(st, col);
	if (json != NULL && mime_json_body_start(json,
	    sqlite3_column_bytes(st, col), &off) == 0)
		return off;
	log_warnx("%s: message %lld: no root offsets where mime_to_json() "
	    "puts them", __func__, (long long)message);
	if ((q = store_stmt("SELECT json_extract(mime, "
	    "'$.root.offsets[1]') FROM messages WHERE id = ?")) == NULL)
		return 0;
	if (sqlite3_bind_int64(q, 1, message) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	store_stmt_done(q);
	return v < 0 ? 0 : v;
}

/* An item's bytes in MSG_ITEM besides its flags and prefix. */
#define FETCH_ITEM_FIXED	(4 + 8 + 4 + 1 + 8 + 8 + 4 + 1 + 8)

/*
 * MSG_FETCH: u64 mailbox, u32 what, u64 changedsince, R -> MSG_MIME
 * ..., MSG_ITEM per message, MSG_END.  With IMAP_FETCH_BODY at most
 * IMAP_BODY_BATCH messages are answered, whatever was asked.
 */
void
store_imap_fetch(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct msg_out		 out;
	struct store_ranges	 r;
	sqlite3_stmt		*st;
	char			 flags[FLAGS_TEXT_MAX];
	const char		*blob, *prefix, *json;
	uint64_t		 mailbox, since;
	uint32_t		 what, i, uid, nbody = 0;
	size_t			 nfds = 0, spare;
	int			 fd, rc = SQLITE_DONE, batch, open = 0, custom;

	(void)store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 ||
	    msg_get_u32(&m, &what) == -1 ||
	    msg_get_u64(&m, &since) == -1 ||
	    store_ranges_get(&m, &r) == -1 || msg_end(&m) == -1)
		msg_malformed(imsg);
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, NULL))
		goto end;
	if (since > INT64_MAX)
		since = INT64_MAX;
	batch = (what & (IMAP_FETCH_MIME | IMAP_FETCH_BODY)) == 0;
	/* Only system flags in the mailbox: its bits say them all. */
	if ((custom = store_mailbox_has_keywords(mailbox)) == -1)
		goto end;
	/* FLAGS alone (a client's resync) need not read the messages. */
	if ((what & ~IMAP_FETCH_FLAGS) == 0)
		st = store_stmt("SELECT mm.uid, mm.modseq, 0, 0, '', '', "
		    "NULL AND ?4 AND ?6, CASE WHEN ?7 THEN (SELECT "
		    "group_concat(k.keyword, ' ') FROM keywords k WHERE "
		    "k.message_id = mm.message_id) END, 0, 0, mm.flags FROM "
		    "mailbox_messages mm WHERE mm.mailbox_id = ?1 AND mm.uid "
		    "BETWEEN ?2 AND ?3 AND mm.modseq > ?5 ORDER BY mm.uid");
	else
		st = store_stmt("SELECT mm.uid, mm.modseq, m.received, "
		    "m.size, m.prefix, m.blob, CASE WHEN ?4 THEN m.mime END, "
		    "CASE WHEN ?7 THEN (SELECT group_concat(k.keyword, ' ') "
		    "FROM keywords k WHERE k.message_id = m.id) END, m.id, "
		    "CASE WHEN ?6 THEN m.mime END, mm.flags "
		    "FROM mailbox_messages "
		    "mm JOIN messages m ON m.id = mm.message_id WHERE "
		    "mm.mailbox_id = ?1 AND mm.uid BETWEEN ?2 AND ?3 AND "
		    "mm.modseq > ?5 ORDER BY mm.uid");
	if (st == NULL)
		goto end;
	for (i = 0; i < r.n && rc == SQLITE_DONE; i++) {
		sqlite3_reset(st);
		if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, r.lo[i]) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, r.hi[i]) != SQLITE_OK ||
		    sqlite3_bind_int(st, 4, (what & IMAP_FETCH_MIME) != 0) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(st, 5, since) != SQLITE_OK ||
		    sqlite3_bind_int(st, 6, (what & IMAP_FETCH_SHALLOW) !=
		    0) != SQLITE_OK ||
		    sqlite3_bind_int(st, 7, custom) != SQLITE_OK) {
			rc = SQLITE_ERROR;
			break;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uid = sqlite3_column_int64(st, 0);
			fd = -1;
			if (what & IMAP_FETCH_BODY) {
				if (nbody++ == IMAP_BODY_BATCH) {
					rc = SQLITE_DONE;
					break;
				}
				blob = (const char *)sqlite3_column_text(st, 5);
				/* What is left once the rest have one each. */
				spare = IMAP_BODY_FDS - nfds -
				    (IMAP_BODY_BATCH - nbody) - 1;
				/* Cut parts are never in the top header. */
				if (what & IMAP_FETCH_HEADER) {
					fd = store_blob_open(blob);
					nfds++;
				} else
					fd = fetch_pieces(imsg->hdr.peerid,
					    uid, sqlite3_column_int64(st, 8),
					    blob, spare, &nfds);
				if (fd == -1) {
					log_warn("%s/%s", STORE_BLOB_DIR, blob);
					continue;
				}
			}
			if ((what & IMAP_FETCH_MIME) &&
			    (json = (const char *)sqlite3_column_text(st,
			    6)) != NULL)
				fetch_mime(imsg->hdr.peerid, uid, json,
				    sqlite3_column_bytes(st, 6));
			prefix = (const char *)sqlite3_column_text(st, 4);
			if (prefix == NULL)
				prefix = "";
			if (custom)
				store_keywords_list_to_imap((const char *)
				    sqlite3_column_text(st, 7), flags,
				    sizeof(flags));
			else
				store_flags_to_imap(sqlite3_column_int(st, 10),
				    flags, sizeof(flags));
			/* Without fd or mime, items share a message. */
			if (open && out.len + FETCH_ITEM_FIXED +
			    strlen(flags) + strlen(prefix) > sizeof(out.buf)) {
				if (proc_send(PROC_IMAPD, &out) == -1)
					log_warn("%s: items to imapd", __func__);
				open = 0;
			}
			if (!open)
				msg_create(&out, IMSG_STORE_MSG_ITEM,
				    imsg->hdr.peerid, fd);
			open = batch;
			msg_add_u32(&out, uid);
			msg_add_u64(&out, sqlite3_column_int64(st, 1));
			msg_add_string(&out, flags);
			msg_add_i64(&out, sqlite3_column_int64(st, 2));
			msg_add_u64(&out, sqlite3_column_int64(st, 3));
			msg_add_string(&out, prefix);
			if (what & IMAP_FETCH_SHALLOW)
				msg_add_u64(&out, fetch_body_start(st, 9,
				    sqlite3_column_int64(st, 8)));
			if (!batch && proc_send(PROC_IMAPD, &out) == -1)
				log_warn("%s: item to imapd", __func__);
		}
		if (nbody > IMAP_BODY_BATCH)
			break;
	}
	if (open && proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: items to imapd", __func__);
	if (rc != SQLITE_DONE)
		log_warnx("%s: fetch: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_stmt_done(st);
 end:
	send_end(IMSG_STORE_MSG_END, imsg->hdr.peerid);
}

/* Inside a transaction: keyword kw set on message, or cleared. */
int
store_keyword_set(int64_t account, int64_t message, const char *kw, int on)
{
	sqlite3_stmt	*st;

	if ((st = store_stmt(on ? "INSERT OR IGNORE INTO keywords "
	    "(message_id, account_id, keyword) VALUES (?1, ?2, ?3)" :
	    "DELETE FROM keywords WHERE message_id = ?1 AND keyword = ?3 AND "
	    "account_id = ?2")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, message) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, kw, -1, SQLITE_STATIC) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	return kept_done(st);
}

/* A mailbox id into a small set; -1 if out of memory. */
static int
mailbox_note(int64_t **set, size_t *n, int64_t id)
{
	int64_t	*p;
	size_t	 i;

	for (i = 0; i < *n; i++)
		if ((*set)[i] == id)
			return 0;
	if ((p = reallocarray(*set, *n + 1, sizeof(*p))) == NULL)
		return -1;
	*set = p;
	p[(*n)++] = id;
	return 0;
}

/*
 * Inside a transaction: the message's keywords become want.  Every
 * placement of it gets modseq; the mailboxes they are in are noted.
 */
static int
message_set_keywords(int64_t account, int64_t message,
    const struct store_keywords *have, const struct store_keywords *want,
    int64_t modseq, int64_t **mailboxes, size_t *nmailboxes)
{
	sqlite3_stmt	*st;
	size_t		 i;
	int		 rc;

	for (i = 0; i < have->n; i++)
		if (!store_keywords_has(want, have->kw[i]) &&
		    store_keyword_set(account, message, have->kw[i], 0) == -1)
			return -1;
	for (i = 0; i < want->n; i++)
		if (!store_keywords_has(have, want->kw[i]) &&
		    store_keyword_set(account, message, want->kw[i], 1) == -1)
			return -1;
	if ((st = store_stmt("UPDATE mailbox_messages SET modseq = ? "
	    "WHERE message_id = ? RETURNING mailbox_id")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, modseq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, message) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (mailbox_note(mailboxes, nmailboxes,
		    sqlite3_column_int64(st, 0)) == -1)
			break;
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		return -1;
	return store_change_add(account, modseq, "Email", message, 2);
}

/* What one STORE does to a keyword set. */
static int
store_apply(uint8_t op, const struct store_keywords *flags,
    const struct store_keywords *have, struct store_keywords *want)
{
	size_t	 i;

	want->n = 0;
	if (op != IMAP_STORE_REPLACE)
		for (i = 0; i < have->n; i++)
			if (store_keywords_add(want, have->kw[i]) == -1)
				return -1;
	for (i = 0; i < flags->n; i++) {
		if (op == IMAP_STORE_REMOVE)
			store_keywords_remove(want, flags->kw[i]);
		else if (store_keywords_add(want, flags->kw[i]) == -1)
			return -1;
	}
	return 0;
}

static int
keywords_same(const struct store_keywords *a, const struct store_keywords *b)
{
	size_t	 i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (!store_keywords_has(b, a->kw[i]))
			return 0;
	return 1;
}

struct store_item {
	uint32_t	 uid;
	int64_t		 modseq;
	char		*flags;
};

static int
item_add(struct store_item **items, size_t *n, uint32_t uid, int64_t modseq,
    const struct store_keywords *k)
{
	struct store_item	*p;
	struct store_buf	 b;

	if ((p = reallocarray(*items, *n + 1, sizeof(*p))) == NULL)
		return -1;
	*items = p;
	memset(&b, 0, sizeof(b));
	store_keywords_to_imap(k, &b);
	if ((p[*n].flags = store_buf_finish(&b)) == NULL)
		return -1;
	p[*n].uid = uid;
	p[*n].modseq = modseq;
	(*n)++;
	return 0;
}

static void
send_uid_list(uint32_t type, uint32_t peerid, const uint32_t *uids,
    size_t n)
{
	struct msg_out	 m;
	size_t		 i, j, k;

	for (i = 0; i < n; i = j) {
		j = i + IMAP_UIDS_PER_MSG < n ? i + IMAP_UIDS_PER_MSG : n;
		msg_create(&m, type, peerid, -1);
		msg_add_u32(&m, j - i);
		for (k = i; k < j; k++)
			msg_add_u32(&m, uids[k]);
		if (proc_send(PROC_IMAPD, &m) == -1)
			log_warn("%s to imapd", imsg_type_name(type));
	}
}

/* What a STORE answers, once its commit is on disk. */
struct store_reply {
	uint32_t		 peerid;
	struct store_item	*items;
	size_t			 nitems;
	uint32_t		*modified;
	size_t			 nmodified;
	int64_t			*mailboxes;
	size_t			 nmailboxes;
	int64_t			 modseq;
	int			 ok;
	int			 changed;
};

static void
store_reply_send(void *arg)
{
	struct store_reply	*r = arg;
	struct msg_out		 out;
	size_t			 i;

	if (r->ok) {
		for (i = 0; i < r->nitems; i++) {
			msg_create(&out, IMSG_STORE_STORE_ITEM, r->peerid, -1);
			msg_add_u32(&out, r->items[i].uid);
			msg_add_u64(&out, r->items[i].modseq);
			msg_add_string(&out, r->items[i].flags);
			if (proc_send(PROC_IMAPD, &out) == -1)
				log_warn("%s: item to imapd", __func__);
		}
		send_uid_list(IMSG_STORE_STORE_MODIFIED, r->peerid,
		    r->modified, r->nmodified);
		if (r->changed)
			for (i = 0; i < r->nmailboxes; i++)
				store_imap_changed(r->mailboxes[i], r->modseq,
				    r->peerid);
	}
	send_end(IMSG_STORE_STORE_END, r->peerid);
	for (i = 0; i < r->nitems; i++)
		free(r->items[i].flags);
	free(r->items);
	free(r->modified);
	free(r->mailboxes);
	free(r);
}

/*
 * MSG_STORE: u64 mailbox, u8 op, u64 unchangedsince, s flags, R ->
 * STORE_ITEM ..., STORE_MODIFIED ..., STORE_END.  One transaction, one
 * MODSEQ for all of it, committed lazily: the answer waits for the
 * flush, which the commits of the moment share.  None if nothing
 * changes.
 */
void
store_imap_store(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct store_rangelist	 r;
	struct msg_rows		 rows;
	struct store_keywords	 flags, have, want;
	struct store_reply	*rp;
	const char		*flagstr;
	uint64_t		 mailbox, unchanged;
	uint32_t		*nm;
	int64_t			 account;
	size_t			 i;
	uint8_t			 op;
	int			 readonly, seen = 0, begun = 0;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 || msg_get_u8(&m, &op) == -1 ||
	    msg_get_u64(&m, &unchanged) == -1 ||
	    msg_get_string(&m, &flagstr) == -1 ||
	    store_ranges_take(imsg, &m, &r) == -1 || msg_end(&m) == -1 ||
	    op > IMAP_STORE_REMOVE)
		msg_malformed(imsg);
	if ((rp = calloc(1, sizeof(*rp))) == NULL)
		fatal("%s", __func__);
	rp->peerid = imsg->hdr.peerid;
	memset(&have, 0, sizeof(have));
	memset(&want, 0, sizeof(want));
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, &readonly) ||
	    readonly) {
		store_rangelist_free(&r);
		store_reply_send(rp);
		return;
	}
	if (store_keywords_from_imap(flagstr, &flags) == -1) {
		log_warnx("%s: flags that are not flags: %s", __func__,
		    flagstr);
		store_rangelist_free(&r);
		store_reply_send(rp);
		return;
	}
	/*
	 * Read first, outside a transaction (only this thread writes):
	 * a STORE that changes nothing (FETCH's \Seen on a message seen
	 * already, -FLAGS of a flag not set) takes no write lock and no
	 * MODSEQ, and its answer needs no flush.
	 */
	memset(&rows, 0, sizeof(rows));
	if (rows_load(&rows, mailbox, &r, 0) == -1)
		goto done;
	for (i = 0; i < rows.n && !begun; i++) {
		if (unchanged > 0 && (uint64_t)rows.r[i].modseq > unchanged)
			continue;
		store_keywords_free(&have);
		if (store_keywords_from_list(rows.r[i].keywords, &have) == -1)
			goto rows;
		/* Too many keywords: the loop below says so. */
		if (store_apply(op, &flags, &have, &want) == -1 ||
		    !keywords_same(&have, &want)) {
			if (store_db_begin_lazy() == -1)
				goto rows;
			begun = 1;
		}
		store_keywords_free(&want);
	}
	if (begun && (rp->modseq = store_modseq_next(account)) == -1)
		goto rows;
	for (i = 0; i < rows.n; i++) {
		store_keywords_free(&have);
		store_keywords_free(&want);
		if (store_keywords_from_list(rows.r[i].keywords, &have) == -1)
			goto rows;
		if (unchanged > 0 && (uint64_t)rows.r[i].modseq > unchanged) {
			if ((nm = reallocarray(rp->modified, rp->nmodified + 1,
			    sizeof(*nm))) == NULL)
				goto rows;
			rp->modified = nm;
			rp->modified[rp->nmodified++] = rows.r[i].uid;
			continue;
		}
		if (store_apply(op, &flags, &have, &want) == -1) {
			log_warnx("%s: uid %u: too many keywords", __func__,
			    rows.r[i].uid);
			continue;
		}
		if (keywords_same(&have, &want)) {
			if (unchanged > 0 && item_add(&rp->items, &rp->nitems,
			    rows.r[i].uid, rows.r[i].modseq, &have) == -1)
				goto rows;
			continue;
		}
		/* Seen to change above: begun. */
		if (message_set_keywords(account, rows.r[i].message, &have,
		    &want, rp->modseq, &rp->mailboxes, &rp->nmailboxes) ==
		    -1 || item_add(&rp->items, &rp->nitems, rows.r[i].uid,
		    rp->modseq, &want) == -1)
			goto rows;
		rp->changed = 1;
		if (store_keywords_has(&have, "$seen") !=
		    store_keywords_has(&want, "$seen"))
			seen = 1;
	}
	for (i = 0; i < rp->nmailboxes; i++) {
		if (mailbox_set_modseq(rp->mailboxes[i], rp->modseq) == -1)
			goto rows;
		/* Unread counts changed (JMAP Mailbox/changes). */
		if (seen && store_change_add(account, rp->modseq, "Mailbox",
		    rp->mailboxes[i], 2) == -1)
			goto rows;
	}
	rp->ok = 1;
 rows:
	rows_free(&rows);
 done:
	store_rangelist_free(&r);
	store_keywords_free(&flags);
	store_keywords_free(&have);
	store_keywords_free(&want);
	if (rp->ok && rp->changed) {
		if (store_db_commit_lazy() == 0) {
			store_db_sync(0, store_reply_send, rp);
			return;
		}
		rp->ok = 0;
	} else if (begun)
		store_db_rollback_lazy();
	store_reply_send(rp);
}

/*
 * Inside a transaction: a second message row like message, for a
 * mailbox that holds message already (a mailbox holds a message once,
 * as JMAP's mailboxIds is a set).  Its id, or -1.
 */
static int64_t
message_duplicate(int64_t account, int64_t message, int64_t modseq)
{
	sqlite3_stmt	*st;
	char		 blob[STORE_HASH_HEX + 1];
	int64_t		 id, size;

	if ((st = store_db_stmt("INSERT INTO messages (account_id, blob, "
	    "prefix, size, received, sent, subject, from_addr, message_id, "
	    "sent_ts, sort_subject, sort_from, sort_to, sort_cc, in_reply_to, "
	    "refs, sort_display_from, sort_display_to, sent_day, preview, "
	    "has_attachment, thread_id, mime) SELECT account_id, blob, "
	    "prefix, size, received, sent, subject, from_addr, message_id, "
	    "sent_ts, sort_subject, sort_from, sort_to, sort_cc, in_reply_to, "
	    "refs, sort_display_from, sort_display_to, sent_day, preview, "
	    "has_attachment, thread_id, mime FROM messages WHERE id = ? "
	    "RETURNING id, blob, length(CAST(prefix AS BLOB)), size")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, message) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return -1;
	}
	id = sqlite3_column_int64(st, 0);
	strlcpy(blob, (const char *)sqlite3_column_text(st, 1), sizeof(blob));
	size = sqlite3_column_int64(st, 3) - sqlite3_column_int64(st, 2);
	if (sqlite3_step(st) != SQLITE_DONE) {
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (store_blob_ref(blob, size) == -1 ||
	    store_parts_copy(message, id) == -1)
		return -1;
	if ((st = store_db_stmt("INSERT INTO keywords (message_id, "
	    "account_id, keyword) SELECT ?1, account_id, keyword "
	    "FROM keywords WHERE message_id = ?2")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, message) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	store_fts_touch(id);
	if (store_change_add(account, modseq, "Email", id, 1) == -1)
		return -1;
	return id;
}

/* Inside a transaction: n UIDs of mailbox; the first, or -1. */
int64_t
store_mailbox_take_uids(int64_t mailbox, uint32_t n, int64_t modseq,
    uint32_t *uidvalidity)
{
	sqlite3_stmt	*st;
	int64_t		 first = -1;

	/* Kept prepared: an APPEND's, a COPY's, each time. */
	if ((st = store_stmt("UPDATE mailboxes SET uidnext = uidnext + ?, "
	    "highestmodseq = ? WHERE id = ? RETURNING uidnext - ?1, "
	    "uidvalidity")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, n) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, modseq) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 3, mailbox) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		first = sqlite3_column_int64(st, 0);
		*uidvalidity = sqlite3_column_int64(st, 1);
		/* RETURNING: the UPDATE is done only once stepped to DONE. */
		if (sqlite3_step(st) != SQLITE_DONE)
			first = -1;
	}
	store_stmt_done(st);
	if (first != -1 && first + n - 1 > UINT32_MAX) {
		log_warnx("mailbox %lld: out of UIDs", (long long)mailbox);
		return -1;
	}
	return first;
}

/* Inside a transaction: message placed in mailbox under uid. */
int
store_placement_add(int64_t account, int64_t mailbox, int64_t message,
    uint32_t uid, int64_t modseq)
{
	sqlite3_stmt	*st;

	if ((st = store_stmt("INSERT INTO mailbox_messages (mailbox_id, "
	    "message_id, account_id, uid, modseq) VALUES (?, ?, ?, ?, ?)")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, message) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, account) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, uid) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, modseq) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	return kept_done(st);
}

/* 1 if mailbox holds message, 0 if not, -1 on an error. */
static int
mailbox_holds(int64_t mailbox, int64_t message)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_stmt("SELECT 1 FROM mailbox_messages "
	    "WHERE mailbox_id = ? AND message_id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, message) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
copy_result(uint32_t peerid, int ok, const char *text, uint32_t uidvalidity,
    uint32_t first)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_COPY_RESULT, peerid, -1);
	msg_add_u32(&m, ok ? 1 : 0);
	msg_add_string(&m, text);
	msg_add_u32(&m, uidvalidity);
	msg_add_u32(&m, first);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s: copy result to imapd", __func__);
}

/* What a COPY or MOVE answers, once its commit is on disk. */
struct copy_reply {
	uint32_t	 peerid;
	int		 move;
	uint32_t	 uidvalidity;
	int64_t		 source;
	int64_t		 target;
	int64_t		 modseq;
	uint32_t	*suids;
	size_t		 n;
	uint32_t	 first;
};

static void
copy_reply_send(void *arg)
{
	struct copy_reply	*cr = arg;

	store_blob_collect();
	send_uid_list(IMSG_STORE_COPY_UIDS, cr->peerid, cr->suids, cr->n);
	copy_result(cr->peerid, 1, cr->move ? "MOVE completed" :
	    "COPY completed", cr->uidvalidity, cr->first);
	store_imap_changed(cr->target, cr->modseq, cr->peerid);
	if (cr->move)
		store_imap_changed(cr->source, cr->modseq, cr->peerid);
	free(cr->suids);
	free(cr);
}

/*
 * MSG_COPY: u64 mailbox, s destination, u8 move, P R -> COPY_UIDS ...,
 * COPY_RESULT.  Within one account a copy is another placement of the
 * same message row: no new blob, no new row (unless the destination
 * holds it).  All of it is one transaction, however many pieces the
 * set came in.
 */
void
store_imap_copy(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct store_rangelist	 r;
	struct msg_rows		 rows;
	struct copy_reply	*cr;
	const char		*dest;
	char			 name[STORE_MBOX_NAME_MAX + 1];
	uint32_t		*suids = NULL, uidvalidity = 0;
	uint64_t		 mailbox;
	int64_t			 account, target, modseq, first, message;
	size_t			 i;
	uint8_t			 move;
	int			 readonly, held, loaded = 0;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 ||
	    msg_get_string(&m, &dest) == -1 || msg_get_u8(&m, &move) == -1 ||
	    store_ranges_take(imsg, &m, &r) == -1 || msg_end(&m) == -1)
		msg_malformed(imsg);
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, &readonly)) {
		copy_result(imsg->hdr.peerid, 0,
		    "[NONEXISTENT] Mailbox was deleted", 0, 0);
		goto out;
	}
	if (move && readonly) {
		copy_result(imsg->hdr.peerid, 0,
		    "[CANNOT] Mailbox is read-only", 0, 0);
		goto out;
	}
	if (store_mbox_name(dest, name, sizeof(name)) == -1 ||
	    (target = store_imap_mailbox_find(account, name, NULL)) == 0) {
		copy_result(imsg->hdr.peerid, 0,
		    "[TRYCREATE] No such mailbox", 0, 0);
		goto out;
	}
	if (target == -1)
		goto fail;
	if (move && (uint64_t)target == mailbox) {
		copy_result(imsg->hdr.peerid, 0,
		    "[CANNOT] Source and destination are the same mailbox", 0,
		    0);
		goto out;
	}
	if (store_db_begin_lazy() == -1)
		goto fail;
	if ((modseq = store_modseq_next(account)) == -1 ||
	    rows_load(&rows, mailbox, &r, 0) == -1)
		goto rollback;
	loaded = 1;
	if (rows.n == 0) {
		store_db_rollback_lazy();
		rows_free(&rows);
		copy_result(imsg->hdr.peerid, 1, move ? "MOVE completed" :
		    "COPY completed", 0, 0);
		goto out;
	}
	if ((suids = calloc(rows.n, sizeof(*suids))) == NULL)
		goto rollback;
	if ((first = store_mailbox_take_uids(target, rows.n, modseq,
	    &uidvalidity)) == -1)
		goto rollback;
	for (i = 0; i < rows.n; i++) {
		suids[i] = rows.r[i].uid;
		message = rows.r[i].message;
		if ((held = mailbox_holds(target, message)) == -1)
			goto rollback;
		if (held) {
			if ((message = message_duplicate(account, message,
			    modseq)) == -1)
				goto rollback;
		} else if (store_change_add(account, modseq, "Email", message,
		    2) == -1)
			goto rollback;
		if (store_placement_add(account, target, message, first + i,
		    modseq) == -1)
			goto rollback;
		if (move && store_placement_drop(account, mailbox,
		    rows.r[i].uid, rows.r[i].message, modseq, 1) == -1)
			goto rollback;
	}
	if (move && mailbox_set_modseq(mailbox, modseq) == -1)
		goto rollback;
	/* Their counts changed (JMAP Mailbox/changes). */
	if (store_change_add(account, modseq, "Mailbox", target, 2) == -1 ||
	    (move && store_change_add(account, modseq, "Mailbox", mailbox,
	    2) == -1))
		goto rollback;
	if (store_db_commit_lazy() == -1)
		goto fail;
	if ((cr = calloc(1, sizeof(*cr))) == NULL)
		fatal("%s", __func__);
	cr->peerid = imsg->hdr.peerid;
	cr->move = move;
	cr->uidvalidity = uidvalidity;
	cr->target = target;
	cr->source = mailbox;
	cr->modseq = modseq;
	cr->suids = suids;
	cr->n = rows.n;
	cr->first = first;
	rows_free(&rows);
	store_rangelist_free(&r);
	store_db_sync(0, copy_reply_send, cr);
	return;
 rollback:
	store_db_rollback_lazy();
 fail:
	if (loaded)
		rows_free(&rows);
	free(suids);
	copy_result(imsg->hdr.peerid, 0, "[SERVERBUG] Storage error", 0, 0);
 out:
	store_rangelist_free(&r);
}

struct expunge_reply {
	uint32_t	 peerid;
	int64_t		 mailbox;
	int64_t		 modseq;
};

static void
expunge_reply_send(void *arg)
{
	struct expunge_reply	*er = arg;

	store_blob_collect();
	store_imap_result(er->peerid, IMSG_STORE_MBOX_RESULT, 1,
	    "EXPUNGE completed");
	store_imap_changed(er->mailbox, er->modseq, er->peerid);
	free(er);
}

/*
 * MSG_EXPUNGE: u64 mailbox, u8 restrict, P R -> MBOX_RESULT, in one
 * transaction however many pieces the set came in.
 */
void
store_imap_expunge(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct store_rangelist	 r;
	struct msg_rows		 rows;
	struct expunge_reply	*er;
	uint64_t		 mailbox;
	int64_t			 account, modseq;
	size_t			 i;
	uint8_t			 restrict_;
	int			 readonly;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 ||
	    msg_get_u8(&m, &restrict_) == -1 ||
	    store_ranges_take(imsg, &m, &r) == -1 || msg_end(&m) == -1)
		msg_malformed(imsg);
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, &readonly)) {
		store_rangelist_free(&r);
		store_imap_result(imsg->hdr.peerid, IMSG_STORE_MBOX_RESULT, 0,
		    "[NONEXISTENT] Mailbox was deleted");
		return;
	}
	if (readonly) {
		store_rangelist_free(&r);
		store_imap_result(imsg->hdr.peerid, IMSG_STORE_MBOX_RESULT, 0,
		    "[CANNOT] Mailbox is read-only");
		return;
	}
	if (store_db_begin_lazy() == -1)
		goto fail;
	if ((modseq = store_modseq_next(account)) == -1)
		goto rollback;
	if (rows_load(&rows, mailbox, restrict_ ? &r : NULL, 1) == -1)
		goto rollback;
	store_rangelist_free(&r);
	for (i = 0; i < rows.n; i++)
		if (store_placement_drop(account, mailbox, rows.r[i].uid,
		    rows.r[i].message, modseq, 1) == -1) {
			rows_free(&rows);
			goto rollback;
		}
	if (rows.n == 0) {
		rows_free(&rows);
		store_db_rollback_lazy();
		store_imap_result(imsg->hdr.peerid, IMSG_STORE_MBOX_RESULT, 1,
		    "EXPUNGE completed");
		return;
	}
	rows_free(&rows);
	if (mailbox_set_modseq(mailbox, modseq) == -1 ||
	    store_change_add(account, modseq, "Mailbox", mailbox, 2) == -1)
		goto rollback;
	if (store_db_commit_lazy() == -1)
		goto fail;
	if ((er = calloc(1, sizeof(*er))) == NULL)
		fatal("%s", __func__);
	er->peerid = imsg->hdr.peerid;
	er->mailbox = mailbox;
	er->modseq = modseq;
	/* The blobs it dropped go once the commit is on disk. */
	store_db_sync(0, expunge_reply_send, er);
	return;
 rollback:
	store_db_rollback_lazy();
 fail:
	store_rangelist_free(&r);
	store_imap_result(imsg->hdr.peerid, IMSG_STORE_MBOX_RESULT, 0,
	    "[SERVERBUG] Storage error");
}
