/*
 * imapd's sessions in storaged.  A session (imapd's peerid) is bound
 * to the account of its successful IMSG_STORE_AUTH and every request
 * it makes is answered within that account only: a request from a
 * session with no account is fatal, for imapd never sends one unless
 * it is no longer imapd.  Here too: the mailbox requests (LIST,
 * CREATE, DELETE, RENAME, SUBSCRIBE, SELECT, UNSELECT, SYNC) and the
 * change events sent to the sessions that have a mailbox selected
 * after every commit that changed it.
 */
#include <sys/tree.h>

#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "storaged.h"

#define IMAP_KEYWORDS_TEXT	4000	/* bytes of SELECT's keywords */

struct imap_binding {
	RB_ENTRY(imap_binding)	 entry;
	uint32_t		 peerid;
	int64_t			 account;
	int64_t			 selected;	/* mailbox id, 0: none */
	int			 readonly;
	/* MSG_RANGES pieces of the request to come */
	struct store_rangelist	 pieces;
	uint32_t		 npieces;
};

RB_HEAD(imap_bindings, imap_binding);

static int	binding_cmp(struct imap_binding *, struct imap_binding *);
RB_GENERATE(imap_bindings, imap_binding, entry, binding_cmp)

struct imap_change {
	int64_t		 mailbox;
	int64_t		 modseq;
	int64_t		 except;	/* the session that made it, or -1 */
};

static struct imap_bindings	 bindings = RB_INITIALIZER(&bindings);
static struct imap_change	*changes;
static size_t			 nchanges, maxchanges;
static struct event		 change_ev;
static int			 change_ev_set;

static int
binding_cmp(struct imap_binding *a, struct imap_binding *b)
{
	if (a->peerid != b->peerid)
		return a->peerid < b->peerid ? -1 : 1;
	return 0;
}

static struct imap_binding *
binding_find(uint32_t peerid)
{
	struct imap_binding	 key;

	key.peerid = peerid;
	return RB_FIND(imap_bindings, &bindings, &key);
}

static __attribute__((__noreturn__)) void
imap_malformed(struct imsg *imsg)
{
	fatalx("malformed %s from imapd", imsg_type_name(imsg->hdr.type));
}

static struct imap_binding *
binding_get(struct imsg *imsg)
{
	struct imap_binding	*b;

	if ((b = binding_find(imsg->hdr.peerid)) == NULL)
		fatalx("%s from imapd for session %u, which has not logged in",
		    imsg_type_name(imsg->hdr.type), imsg->hdr.peerid);
	return b;
}

/* After a successful IMSG_STORE_AUTH from imapd. */
void
store_imap_bind(uint32_t peerid, int64_t account)
{
	struct imap_binding	*b;

	if ((b = binding_find(peerid)) == NULL) {
		if ((b = calloc(1, sizeof(*b))) == NULL)
			fatal("%s", __func__);
		b->peerid = peerid;
		RB_INSERT(imap_bindings, &bindings, b);
	}
	b->account = account;
	b->selected = 0;
	b->readonly = 0;
	store_rangelist_free(&b->pieces);
	b->npieces = 0;
}

int64_t
store_imap_account(struct proc_peer *peer, struct imsg *imsg)
{
	(void)peer;
	return binding_get(imsg)->account;
}

/* Whether the session has mailbox selected; *readonly if EXAMINEd. */
int
store_imap_selected(uint32_t peerid, uint64_t mailbox, int *readonly)
{
	struct imap_binding	*b;

	if ((b = binding_find(peerid)) == NULL || b->selected == 0 ||
	    (uint64_t)b->selected != mailbox)
		return 0;
	if (readonly != NULL)
		*readonly = b->readonly;
	return 1;
}

/* SESSION_END: - (no answer). */
void
store_imap_session_end(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_binding	*b;

	(void)peer;
	if (imsg->datalen != 0)
		imap_malformed(imsg);
	if ((b = binding_find(imsg->hdr.peerid)) == NULL)
		return;
	RB_REMOVE(imap_bindings, &bindings, b);
	store_rangelist_free(&b->pieces);
	free(b);
	store_imap_append_end(imsg->hdr.peerid);
}

static void
change_flush(int fd, short event, void *arg)
{
	struct imap_binding	*b;
	struct msg_out		 m;
	size_t			 i;

	(void)fd;
	(void)event;
	(void)arg;
	for (i = 0; i < nchanges; i++)
		RB_FOREACH(b, imap_bindings, &bindings) {
			if (b->selected != changes[i].mailbox ||
			    (int64_t)b->peerid == changes[i].except)
				continue;
			msg_create(&m, IMSG_STORE_CHANGE, b->peerid, -1);
			msg_add_u64(&m, changes[i].mailbox);
			msg_add_u64(&m, changes[i].modseq);
			if (proc_send(PROC_IMAPD, &m) == -1)
				log_warn("change event to imapd");
		}
	nchanges = 0;
}

/*
 * A mailbox changed (its highestmodseq now modseq); except is the
 * session whose request did it (it syncs itself), or -1.  The events
 * go out from the event loop, so after the caller's commit.
 */
void
store_imap_changed(int64_t mailbox, int64_t modseq, int64_t except)
{
	struct imap_change	*c;
	struct timeval		 tv = { 0, 0 };
	size_t			 i, n;

	if (RB_EMPTY(&bindings))
		return;
	for (i = 0; i < nchanges; i++)
		if (changes[i].mailbox == mailbox) {
			if (modseq > changes[i].modseq)
				changes[i].modseq = modseq;
			if (changes[i].except != except)
				changes[i].except = -1;
			return;
		}
	if (nchanges == maxchanges) {
		n = maxchanges ? maxchanges * 2 : 16;
		if ((c = reallocarray(changes, n, sizeof(*c))) == NULL) {
			log_warn("%s", __func__);
			return;
		}
		changes = c;
		maxchanges = n;
	}
	changes[nchanges].mailbox = mailbox;
	changes[nchanges].modseq = modseq;
	changes[nchanges].except = except;
	nchanges++;
	if (!change_ev_set) {
		evtimer_set(&change_ev, change_flush, NULL);
		change_ev_set = 1;
	}
	if (!evtimer_pending(&change_ev, NULL))
		evtimer_add(&change_ev, &tv);
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

/* Inside a transaction: the account's next MODSEQ, or -1. */
int64_t
store_modseq_next(int64_t account)
{
	sqlite3_stmt	*st;
	int64_t		 modseq = -1;

	if ((st = store_stmt("UPDATE accounts SET modseq = modseq + 1 "
	    "WHERE id = ? RETURNING modseq")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		modseq = sqlite3_column_int64(st, 0);
	store_stmt_done(st);
	if (modseq == -1)
		log_warnx("%s: account %lld modseq: %s", STORE_DB_PATH,
		    (long long)account, sqlite3_errmsg(store_db));
	return modseq;
}

/* A change-log row; op 1 created, 2 updated, 3 destroyed. */
int
store_change_add(int64_t account, int64_t modseq, const char *kind,
    int64_t object, int op)
{
	sqlite3_stmt	*st;

	if ((st = store_stmt("INSERT INTO changes (account_id, modseq, "
	    "kind, object_id, op) VALUES (?, ?, ?, ?, ?)")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, object) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, op) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	if (sqlite3_step(st) != SQLITE_DONE) {
		log_warnx("%s: change log: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		store_stmt_done(st);
		return -1;
	}
	store_stmt_done(st);
	return 0;
}

/* R: u32 n, n x (u32 lo, u32 hi). */
int
store_ranges_get(struct msg_in *m, struct store_ranges *r)
{
	uint32_t	 i, t;

	if (msg_get_u32(m, &r->n) == -1 || r->n > IMAP_RANGES_MAX)
		return -1;
	for (i = 0; i < r->n; i++) {
		if (msg_get_u32(m, &r->lo[i]) == -1 ||
		    msg_get_u32(m, &r->hi[i]) == -1)
			return -1;
		if (r->lo[i] > r->hi[i]) {
			t = r->lo[i];
			r->lo[i] = r->hi[i];
			r->hi[i] = t;
		}
	}
	return 0;
}

void
store_rangelist_free(struct store_rangelist *rl)
{
	free(rl->lo);
	free(rl->hi);
	memset(rl, 0, sizeof(*rl));
}

static int
rangelist_add(struct store_rangelist *rl, const struct store_ranges *r)
{
	uint32_t	*lo, *hi;
	size_t		 cap;

	if (r->n == 0)
		return 0;
	if (rl->n + r->n > rl->cap) {
		cap = rl->cap ? rl->cap : IMAP_RANGES_MAX;
		while (cap < rl->n + r->n)
			cap *= 2;
		if ((lo = reallocarray(rl->lo, cap, sizeof(*lo))) == NULL)
			return -1;
		rl->lo = lo;
		if ((hi = reallocarray(rl->hi, cap, sizeof(*hi))) == NULL)
			return -1;
		rl->hi = hi;
		rl->cap = cap;
	}
	memcpy(rl->lo + rl->n, r->lo, r->n * sizeof(*lo));
	memcpy(rl->hi + rl->n, r->hi, r->n * sizeof(*hi));
	rl->n += r->n;
	return 0;
}

/* MSG_RANGES: R (no answer), kept for the session's next request. */
void
store_imap_ranges(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_binding	*b;
	struct msg_in		 m;
	struct store_ranges	 r;

	(void)peer;
	b = binding_get(imsg);
	msg_read(&m, imsg);
	if (store_ranges_get(&m, &r) == -1 || msg_end(&m) == -1 ||
	    b->npieces >= IMAP_RANGE_PIECES_MAX)
		imap_malformed(imsg);
	if (rangelist_add(&b->pieces, &r) == -1)
		fatal("%s", __func__);
	b->npieces++;
}

/*
 * P R of a request: the u32 count of MSG_RANGES pieces sent just
 * before it, then its own range list.  rl gets them all, in order;
 * the caller frees it.  -1 if the request is malformed.
 */
int
store_ranges_take(struct imsg *imsg, struct msg_in *m,
    struct store_rangelist *rl)
{
	struct imap_binding	*b;
	struct store_ranges	 r;
	uint32_t		 pieces;

	b = binding_get(imsg);
	*rl = b->pieces;
	memset(&b->pieces, 0, sizeof(b->pieces));
	if (msg_get_u32(m, &pieces) == -1 || pieces != b->npieces) {
		b->npieces = 0;
		return -1;
	}
	b->npieces = 0;
	if (store_ranges_get(m, &r) == -1)
		return -1;
	if (rangelist_add(rl, &r) == -1)
		fatal("%s", __func__);
	return 0;
}

void
store_imap_result(uint32_t peerid, uint32_t type, int ok, const char *text)
{
	struct msg_out	 m;

	msg_create(&m, type, peerid, -1);
	msg_add_u32(&m, ok ? 1 : 0);
	msg_add_string(&m, text);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s to imapd", imsg_type_name(type));
}

static void
mbox_result(struct imsg *imsg, int ok, const char *text)
{
	store_imap_result(imsg->hdr.peerid, IMSG_STORE_MBOX_RESULT, ok, text);
}

/*
 * A mailbox name as stored: UTF-8 without controls or wildcards, "/"
 * between non-empty parts, and INBOX (any case) as the first part
 * spelled INBOX.  -1 if it is not a name we keep.
 */
int
store_mbox_name(const char *in, char *out, size_t outlen)
{
	const unsigned char	*p;
	size_t			 len = strlen(in), n, i;

	if (len == 0 || len > STORE_MBOX_NAME_MAX || len >= outlen)
		return -1;
	if (in[0] == IMAP_HIERARCHY_SEP || in[len - 1] == IMAP_HIERARCHY_SEP)
		return -1;
	for (p = (const unsigned char *)in; *p != '\0'; p += n) {
		if (*p < 0x20 || *p == 0x7f || *p == '*' || *p == '%')
			return -1;
		if (*p == IMAP_HIERARCHY_SEP && p[1] == IMAP_HIERARCHY_SEP)
			return -1;
		if (*p < 0x80)
			n = 1;
		else if (*p >= 0xc2 && *p <= 0xdf)
			n = 2;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 3;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 4;
		else
			return -1;
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return -1;
	}
	memcpy(out, in, len + 1);
	if (strncasecmp(out, "INBOX", 5) == 0 &&
	    (out[5] == '\0' || out[5] == IMAP_HIERARCHY_SEP))
		memcpy(out, "INBOX", 5);
	return 0;
}

/* The mailbox's id: 0 if there is none, -1 on a storage error. */
int64_t
store_imap_mailbox_find(int64_t account, const char *name,
    uint32_t *uidvalidity)
{
	sqlite3_stmt	*st;
	int64_t		 id = -1;
	int		 rc;

	if ((st = store_stmt("SELECT id, uidvalidity FROM mailboxes "
	    "WHERE account_id = ? AND name = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (uidvalidity != NULL)
			*uidvalidity = sqlite3_column_int64(st, 1);
	} else if (rc == SQLITE_DONE)
		id = 0;
	else
		log_warnx("%s: mailbox lookup: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_stmt_done(st);
	return id;
}

/* MBOX_LIST: - -> MBOX_ITEM ..., MBOX_END. */
void
store_imap_list(struct proc_peer *peer, struct imsg *imsg)
{
	sqlite3_stmt	*st;
	struct msg_out	 m;
	int64_t		 account;
	int		 rc;

	account = store_imap_account(peer, imsg);
	if (imsg->datalen != 0)
		imap_malformed(imsg);
	if ((st = store_db_stmt("SELECT * FROM (SELECT b.id, b.name, "
	    "coalesce(b.special_use, ''), b.subscribed, "
	    "(SELECT count(*) FROM mailbox_messages mm "
	    "WHERE mm.mailbox_id = b.id), "
	    "(SELECT count(*) FROM mailbox_messages mm "
	    "WHERE mm.mailbox_id = b.id AND mm.flags & 1 = 0), "
	    "(SELECT count(*) FROM mailbox_messages mm "
	    "WHERE mm.mailbox_id = b.id AND mm.flags & 8 != 0), "
	    "b.uidnext, b.uidvalidity, "
	    "(SELECT coalesce(sum(m.size), 0) FROM mailbox_messages mm "
	    "JOIN messages m ON m.id = mm.message_id "
	    "WHERE mm.mailbox_id = b.id), "
	    "b.highestmodseq FROM mailboxes b WHERE b.account_id = ?1 "
	    "UNION ALL SELECT 0, s.name, '', 1, 0, 0, 0, 0, 0, 0, 0 "
	    "FROM subscriptions s WHERE s.account_id = ?1 AND NOT EXISTS "
	    "(SELECT 1 FROM mailboxes b WHERE b.account_id = ?1 AND "
	    "b.name = s.name)) ORDER BY 1 = 0, 2")) == NULL)
		goto fail;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK) {
		sqlite3_finalize(st);
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		msg_create(&m, IMSG_STORE_MBOX_ITEM, imsg->hdr.peerid, -1);
		msg_add_u64(&m, sqlite3_column_int64(st, 0));
		msg_add_string(&m, (const char *)sqlite3_column_text(st, 1));
		msg_add_string(&m, (const char *)sqlite3_column_text(st, 2));
		msg_add_u8(&m, sqlite3_column_int(st, 3) != 0);
		msg_add_u32(&m, sqlite3_column_int64(st, 4));
		msg_add_u32(&m, sqlite3_column_int64(st, 5));
		msg_add_u32(&m, sqlite3_column_int64(st, 6));
		msg_add_u32(&m, sqlite3_column_int64(st, 7));
		msg_add_u32(&m, sqlite3_column_int64(st, 8));
		msg_add_u64(&m, sqlite3_column_int64(st, 9));
		msg_add_u64(&m, sqlite3_column_int64(st, 10));
		if (proc_send(PROC_IMAPD, &m) == -1)
			log_warn("%s: mailbox item to imapd", __func__);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		log_warnx("%s: mailbox list: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
 fail:
	msg_create(&m, IMSG_STORE_MBOX_END, imsg->hdr.peerid, -1);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s: mailbox end to imapd", __func__);
}

/* Inside a transaction: a fresh UIDVALIDITY, never one handed out. */
static int64_t
uidvalidity_next(int64_t account)
{
	sqlite3_stmt	*st;
	int64_t		 v = -1;

	if ((st = store_db_stmt("UPDATE accounts SET uidvalidity = "
	    "max(uidvalidity + 1, ?2, (SELECT coalesce(max(uidvalidity), 0) "
	    "+ 1 FROM mailboxes WHERE account_id = ?1)) WHERE id = ?1 "
	    "RETURNING uidvalidity")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, (uint32_t)time(NULL)) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (v > UINT32_MAX) {
		log_warnx("account %lld: UIDVALIDITY exhausted",
		    (long long)account);
		v = -1;
	}
	return v;
}

/*
 * Inside a transaction: makes a mailbox, subscribed if a subscription
 * waited for its name.  Its id, or -1.
 */
static int64_t
mbox_insert(int64_t account, const char *name, int64_t modseq)
{
	sqlite3_stmt	*st;
	int64_t		 uidvalidity, id;

	if ((uidvalidity = uidvalidity_next(account)) == -1)
		return -1;
	if ((st = store_db_stmt("INSERT INTO mailboxes (account_id, name, "
	    "uidvalidity, highestmodseq, subscribed) VALUES (?1, ?2, ?3, ?4, "
	    "EXISTS (SELECT 1 FROM subscriptions WHERE account_id = ?1 AND "
	    "name = ?2))")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, uidvalidity) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, modseq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	id = sqlite3_last_insert_rowid(store_db);
	if ((st = store_db_stmt("DELETE FROM subscriptions "
	    "WHERE account_id = ? AND name = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1 ||
	    store_change_add(account, modseq, "Mailbox", id, 1) == -1)
		return -1;
	return id;
}

/*
 * Inside a transaction: the parents of name that do not exist yet
 * (name itself too when self is set).  -1 on a storage error.
 */
static int
mbox_make_path(int64_t account, const char *name, int64_t modseq, int self)
{
	char	 part[STORE_MBOX_NAME_MAX + 1];
	size_t	 len = strlen(name), i;
	int64_t	 id;

	for (i = 1; i <= len; i++) {
		if (i < len && name[i] != IMAP_HIERARCHY_SEP)
			continue;
		if (i == len && !self)
			break;
		memcpy(part, name, i);
		part[i] = '\0';
		if ((id = store_imap_mailbox_find(account, part, NULL)) == -1)
			return -1;
		if (id == 0 && mbox_insert(account, part, modseq) == -1)
			return -1;
	}
	return 0;
}

/* MBOX_CREATE: s name -> MBOX_RESULT. */
void
store_imap_create(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*in;
	char		 name[STORE_MBOX_NAME_MAX + 1];
	char		 trimmed[STORE_MBOX_NAME_MAX + 1];
	int64_t		 account, id, modseq;
	size_t		 len;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &in) == -1 || msg_end(&m) == -1)
		imap_malformed(imsg);
	/* "a/" declares that names will be made under a (RFC 9051 6.3.3). */
	len = strlen(in);
	if (len > 1 && len <= STORE_MBOX_NAME_MAX &&
	    in[len - 1] == IMAP_HIERARCHY_SEP) {
		memcpy(trimmed, in, len - 1);
		trimmed[len - 1] = '\0';
		in = trimmed;
	}
	if (store_mbox_name(in, name, sizeof(name)) == -1) {
		mbox_result(imsg, 0, "[CANNOT] Invalid mailbox name");
		return;
	}
	if ((id = store_imap_mailbox_find(account, name, NULL)) == -1)
		goto fail;
	if (id > 0 || strcmp(name, "INBOX") == 0) {
		mbox_result(imsg, 0, "[ALREADYEXISTS] Mailbox exists");
		return;
	}
	if (store_db_begin() == -1)
		goto fail;
	if ((modseq = store_modseq_next(account)) == -1 ||
	    mbox_make_path(account, name, modseq, 1) == -1 ||
	    store_db_commit() == -1) {
		store_db_rollback();
		goto fail;
	}
	mbox_result(imsg, 1, "CREATE completed");
	return;
 fail:
	mbox_result(imsg, 0, "[SERVERBUG] Storage error");
}

/* The selected sessions of a mailbox that went: nothing to see now. */
static void
mbox_gone(int64_t mailbox, uint32_t except)
{
	struct imap_binding	*b;

	struct msg_out		 m;

	RB_FOREACH(b, imap_bindings, &bindings) {
		if (b->selected != mailbox)
			continue;
		b->selected = 0;
		if (b->peerid == except)
			continue;
		msg_create(&m, IMSG_STORE_CHANGE, b->peerid, -1);
		msg_add_u64(&m, mailbox);
		msg_add_u64(&m, 0);
		if (proc_send(PROC_IMAPD, &m) == -1)
			log_warn("change event to imapd");
	}
}

/* MBOX_DELETE: s name -> MBOX_RESULT. */
void
store_imap_delete(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	sqlite3_stmt	*st;
	const char	*in;
	char		 name[STORE_MBOX_NAME_MAX + 1];
	int64_t		 account, id, modseq;
	int		 rc, children, subscribed;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &in) == -1 || msg_end(&m) == -1)
		imap_malformed(imsg);
	if (store_mbox_name(in, name, sizeof(name)) == -1) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if (strcmp(name, "INBOX") == 0) {
		mbox_result(imsg, 0, "[CANNOT] INBOX cannot be deleted");
		return;
	}
	if ((id = store_imap_mailbox_find(account, name, NULL)) == -1)
		goto fail;
	if (id == 0) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if ((st = store_db_stmt("SELECT (SELECT count(*) FROM mailboxes "
	    "WHERE account_id = ?1 AND substr(name, 1, length(?2) + 1) = "
	    "?2 || '/'), subscribed FROM mailboxes WHERE id = ?3")) == NULL)
		goto fail;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		goto fail;
	}
	children = sqlite3_column_int(st, 0);
	subscribed = sqlite3_column_int(st, 1);
	sqlite3_finalize(st);
	if (children > 0) {
		/* RFC 9051 6.3.4: we keep no \Noselect names. */
		mbox_result(imsg, 0, "[HASCHILDREN] Mailbox has children");
		return;
	}

	if (store_db_begin() == -1)
		goto fail;
	if ((modseq = store_modseq_next(account)) == -1)
		goto rollback;
	if ((st = store_db_stmt("SELECT uid, message_id FROM "
	    "mailbox_messages WHERE mailbox_id = ? ORDER BY uid")) == NULL)
		goto rollback;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		sqlite3_finalize(st);
		goto rollback;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (store_placement_drop(account, id,
		    sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
		    modseq, 0) == -1)
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto rollback;
	if ((st = store_db_stmt("DELETE FROM mailboxes WHERE id = ?")) ==
	    NULL)
		goto rollback;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		sqlite3_finalize(st);
		goto rollback;
	}
	if (sql_done(st) == -1)
		goto rollback;
	/* The subscription outlives the mailbox (RFC 9051 6.3.9). */
	if (subscribed) {
		if ((st = store_db_stmt("INSERT OR IGNORE INTO subscriptions "
		    "(account_id, name) VALUES (?, ?)")) == NULL)
			goto rollback;
		if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) !=
		    SQLITE_OK) {
			sqlite3_finalize(st);
			goto rollback;
		}
		if (sql_done(st) == -1)
			goto rollback;
	}
	if (store_change_add(account, modseq, "Mailbox", id, 3) == -1 ||
	    store_db_commit() == -1)
		goto rollback;
	store_blob_collect();
	mbox_gone(id, imsg->hdr.peerid);
	mbox_result(imsg, 1, "DELETE completed");
	return;
 rollback:
	/* No collection here: a lazy commit's drops may not be durable. */
	store_db_rollback();
 fail:
	mbox_result(imsg, 0, "[SERVERBUG] Storage error");
}

static int
mbox_rename_tree(int64_t account, const char *from, const char *to,
    int64_t modseq)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_db_stmt("UPDATE mailboxes SET name = ?3 || "
	    "substr(name, length(?2) + 1) WHERE account_id = ?1 AND "
	    "(name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/') "
	    "RETURNING id")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, to, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (store_change_add(account, modseq, "Mailbox",
		    sqlite3_column_int64(st, 0), 2) == -1)
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: rename: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

/*
 * RENAME INBOX (RFC 9051 6.3.5): its messages move to a new mailbox,
 * with new UIDs there, and INBOX stays, empty.
 */
static int
mbox_rename_inbox(int64_t account, int64_t inbox, const char *to,
    int64_t modseq)
{
	sqlite3_stmt	*st;
	int64_t		 id;

	if (mbox_make_path(account, to, modseq, 0) == -1 ||
	    (id = mbox_insert(account, to, modseq)) == -1)
		return -1;
	if ((st = store_db_stmt("INSERT OR REPLACE INTO vanished "
	    "(mailbox_id, uid, modseq) SELECT mailbox_id, uid, ?2 "
	    "FROM mailbox_messages WHERE mailbox_id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, inbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	/* New UIDs 1..n in the order of the old ones. */
	if ((st = store_db_stmt("UPDATE mailbox_messages SET mailbox_id = ?2, "
	    "modseq = ?3, uid = n FROM (SELECT uid AS old, row_number() "
	    "OVER (ORDER BY uid) AS n FROM mailbox_messages "
	    "WHERE mailbox_id = ?1) WHERE mailbox_id = ?1 AND uid = old")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, inbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, modseq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	if ((st = store_db_stmt("UPDATE mailboxes SET uidnext = 1 + "
	    "(SELECT count(*) FROM mailbox_messages WHERE mailbox_id = ?1), "
	    "highestmodseq = ?2 WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	if ((st = store_db_stmt("UPDATE mailboxes SET highestmodseq = ?2 "
	    "WHERE id = ?1")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, inbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if (sql_done(st) == -1)
		return -1;
	/* INBOX is empty now; each moved message is in another mailbox. */
	if (store_change_add(account, modseq, "Mailbox", inbox, 2) == -1)
		return -1;
	if ((st = store_db_stmt("INSERT INTO changes (account_id, modseq, "
	    "kind, object_id, op) SELECT ?1, ?2, 'Email', message_id, 2 "
	    "FROM mailbox_messages WHERE mailbox_id = ?3")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, modseq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, id) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	return sql_done(st);
}

/* MBOX_RENAME: s old, s new -> MBOX_RESULT. */
void
store_imap_rename(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*in, *in2;
	char		 from[STORE_MBOX_NAME_MAX + 1];
	char		 to[STORE_MBOX_NAME_MAX + 1];
	int64_t		 account, id, id2, modseq;
	size_t		 len;
	int		 rc;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &in) == -1 ||
	    msg_get_string(&m, &in2) == -1 || msg_end(&m) == -1)
		imap_malformed(imsg);
	if (store_mbox_name(in, from, sizeof(from)) == -1) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if (store_mbox_name(in2, to, sizeof(to)) == -1) {
		mbox_result(imsg, 0, "[CANNOT] Invalid mailbox name");
		return;
	}
	if ((id = store_imap_mailbox_find(account, from, NULL)) == -1 ||
	    (id2 = store_imap_mailbox_find(account, to, NULL)) == -1)
		goto fail;
	if (id == 0) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if (id2 != 0 || strcmp(to, "INBOX") == 0) {
		mbox_result(imsg, 0, "[ALREADYEXISTS] Mailbox exists");
		return;
	}
	len = strlen(from);
	if (strncmp(to, from, len) == 0 && to[len] == IMAP_HIERARCHY_SEP &&
	    strcmp(from, "INBOX") != 0) {
		mbox_result(imsg, 0,
		    "[CANNOT] Cannot move a mailbox into itself");
		return;
	}
	if (store_db_begin() == -1)
		goto fail;
	if ((modseq = store_modseq_next(account)) == -1)
		goto rollback;
	if (strcmp(from, "INBOX") == 0)
		rc = mbox_rename_inbox(account, id, to, modseq);
	else
		rc = mbox_make_path(account, to, modseq, 0) == -1 ||
		    mbox_rename_tree(account, from, to, modseq) == -1 ? -1 : 0;
	if (rc == -1) {
		if (sqlite3_extended_errcode(store_db) ==
		    SQLITE_CONSTRAINT_UNIQUE) {
			store_db_rollback();
			mbox_result(imsg, 0,
			    "[ALREADYEXISTS] A mailbox of a new name exists");
			return;
		}
		goto rollback;
	}
	if (store_db_commit() == -1)
		goto rollback;
	if (strcmp(from, "INBOX") == 0)
		store_imap_changed(id, modseq, imsg->hdr.peerid);
	mbox_result(imsg, 1, "RENAME completed");
	return;
 rollback:
	store_db_rollback();
 fail:
	mbox_result(imsg, 0, "[SERVERBUG] Storage error");
}

/* MBOX_SUBSCRIBE: s name, u8 on -> MBOX_RESULT. */
void
store_imap_subscribe(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	sqlite3_stmt	*st;
	const char	*in;
	char		 name[STORE_MBOX_NAME_MAX + 1];
	int64_t		 account, id, modseq;
	uint8_t		 on;

	account = store_imap_account(peer, imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &in) == -1 || msg_get_u8(&m, &on) == -1 ||
	    msg_end(&m) == -1)
		imap_malformed(imsg);
	if (store_mbox_name(in, name, sizeof(name)) == -1) {
		mbox_result(imsg, 0, "[CANNOT] Invalid mailbox name");
		return;
	}
	if (store_db_begin() == -1)
		goto fail;
	if ((id = store_imap_mailbox_find(account, name, NULL)) == -1)
		goto rollback;
	if (id > 0) {
		if ((modseq = store_modseq_next(account)) == -1 ||
		    (st = store_db_stmt("UPDATE mailboxes SET subscribed = ? "
		    "WHERE id = ?")) == NULL)
			goto rollback;
		if (sqlite3_bind_int(st, 1, on ? 1 : 0) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, id) != SQLITE_OK) {
			sqlite3_finalize(st);
			goto rollback;
		}
		if (sql_done(st) == -1 ||
		    store_change_add(account, modseq, "Mailbox", id, 2) == -1)
			goto rollback;
	}
	if (on && id == 0)
		st = store_db_stmt("INSERT OR IGNORE INTO subscriptions "
		    "(account_id, name) VALUES (?, ?)");
	else
		st = store_db_stmt("DELETE FROM subscriptions "
		    "WHERE account_id = ? AND name = ?");
	if (st == NULL)
		goto rollback;
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_finalize(st);
		goto rollback;
	}
	if (sql_done(st) == -1 || store_db_commit() == -1)
		goto rollback;
	mbox_result(imsg, 1, on ? "SUBSCRIBE completed" :
	    "UNSUBSCRIBE completed");
	return;
 rollback:
	store_db_rollback();
 fail:
	mbox_result(imsg, 0, "[SERVERBUG] Storage error");
}

/*
 * The non-system keywords of a mailbox's messages, as IMAP flags: the
 * counts migration 3's triggers keep, never a scan of the messages.
 */
static void
select_keywords(int64_t mailbox, char *out, size_t outlen)
{
	sqlite3_stmt		*st;
	struct store_buf	 b;
	const char		*kw;
	size_t			 mark;

	memset(&b, 0, sizeof(b));
	out[0] = '\0';
	if ((st = store_stmt("SELECT keyword FROM mailbox_keywords "
	    "WHERE mailbox_id = ? AND n > 0")) == NULL)
		return;
	if (sqlite3_bind_int64(st, 1, mailbox) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW) {
			kw = (const char *)sqlite3_column_text(st, 0);
			if (store_keyword_is_system(kw))
				continue;
			mark = b.len;
			if (b.len > 0)
				store_buf_add(&b, " ", 1);
			store_keyword_to_imap(kw, &b);
			if (b.err || b.len >= outlen) {
				b.len = mark;
				break;
			}
		}
	store_stmt_done(st);
	if (!b.err && b.p != NULL) {
		memcpy(out, b.p, b.len);
		out[b.len] = '\0';
	}
	free(b.p);
}

static void
send_uids(uint32_t type, uint32_t peerid, const uint32_t *uids, size_t n)
{
	struct msg_out	 m;
	size_t		 i;

	msg_create(&m, type, peerid, -1);
	msg_add_u32(&m, n);
	for (i = 0; i < n; i++)
		msg_add_u32(&m, uids[i]);
	if (proc_send(PROC_IMAPD, &m) == -1)
		log_warn("%s to imapd", imsg_type_name(type));
}

/* A mailbox's UIDs, ascending, in *uids (to free); -1 on an error. */
static int
select_uids(int64_t mailbox, uint32_t **uids, size_t *n)
{
	sqlite3_stmt	*st;
	uint32_t	*v = NULL, *nv;
	size_t		 cap = 0;
	int		 rc;

	*n = 0;
	if ((st = store_stmt("SELECT uid FROM mailbox_messages "
	    "WHERE mailbox_id = ? ORDER BY uid")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[(*n)++] = sqlite3_column_int64(st, 0);
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: select: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		free(v);
		return -1;
	}
	*uids = v;
	return 0;
}

/*
 * MBOX_SELECT: s name, u8 readonly -> MBOX_SELECTED, MBOX_UIDS ...,
 * MBOX_END, or MBOX_RESULT with ok 0.  The count of messages is that
 * of the UIDs, read first.
 */
void
store_imap_select(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_binding	*b;
	struct msg_in		 m;
	struct msg_out		 out;
	sqlite3_stmt		*st;
	const char		*in;
	char			 name[STORE_MBOX_NAME_MAX + 1];
	char			 keywords[IMAP_KEYWORDS_TEXT];
	uint32_t		*uids = NULL;
	int64_t			 id;
	size_t			 n, i, k;
	uint8_t			 readonly;

	b = binding_get(imsg);
	msg_read(&m, imsg);
	if (msg_get_string(&m, &in) == -1 ||
	    msg_get_u8(&m, &readonly) == -1 || msg_end(&m) == -1)
		imap_malformed(imsg);
	b->selected = 0;
	if (store_mbox_name(in, name, sizeof(name)) == -1) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if ((id = store_imap_mailbox_find(b->account, name, NULL)) == -1)
		goto fail;
	if (id == 0) {
		mbox_result(imsg, 0, "[NONEXISTENT] No such mailbox");
		return;
	}
	if (select_uids(id, &uids, &n) == -1)
		goto fail;
	/* The first unseen from the partial index mailbox_messages_unseen. */
	if ((st = store_stmt("SELECT uidvalidity, uidnext, highestmodseq, "
	    "(SELECT coalesce(min(uid), 0) FROM mailbox_messages "
	    "WHERE mailbox_id = ?1 AND flags & 1 = 0) "
	    "FROM mailboxes WHERE id = ?1")) == NULL)
		goto fail;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		store_stmt_done(st);
		goto fail;
	}
	select_keywords(id, keywords, sizeof(keywords));
	msg_create(&out, IMSG_STORE_MBOX_SELECTED, imsg->hdr.peerid, -1);
	msg_add_u64(&out, id);
	msg_add_u32(&out, sqlite3_column_int64(st, 0));
	msg_add_u32(&out, sqlite3_column_int64(st, 1));
	msg_add_u64(&out, sqlite3_column_int64(st, 2));
	msg_add_u32(&out, n);
	msg_add_string(&out, keywords);
	msg_add_u32(&out, sqlite3_column_int64(st, 3));
	store_stmt_done(st);
	if (proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: selected to imapd", __func__);
	for (i = 0; i < n; i += k) {
		k = n - i < IMAP_UIDS_PER_MSG ? n - i : IMAP_UIDS_PER_MSG;
		send_uids(IMSG_STORE_MBOX_UIDS, imsg->hdr.peerid, uids + i, k);
	}
	free(uids);
	b->selected = id;
	b->readonly = readonly != 0;
	msg_create(&out, IMSG_STORE_MBOX_END, imsg->hdr.peerid, -1);
	if (proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: end to imapd", __func__);
	return;
 fail:
	free(uids);
	mbox_result(imsg, 0, "[SERVERBUG] Storage error");
}

/* MBOX_UNSELECT: - (no answer). */
void
store_imap_unselect(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_binding	*b;

	(void)peer;
	b = binding_get(imsg);
	if (imsg->datalen != 0)
		imap_malformed(imsg);
	b->selected = 0;
}

/*
 * MBOX_SYNC: u64 mailbox, u64 since -> SYNC_FLAGS ..., SYNC_VANISHED
 * ..., SYNC_END; MBOX_RESULT ok 0 if the mailbox went.
 */
void
store_imap_sync(struct proc_peer *peer, struct imsg *imsg)
{
	struct imap_binding	*b;
	struct msg_in		 m;
	struct msg_out		 out;
	sqlite3_stmt		*st;
	char			 flags[IMAP_KEYWORDS_TEXT];
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint64_t		 mailbox, since;
	size_t			 n = 0;
	int			 rc;

	(void)peer;
	b = binding_get(imsg);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 ||
	    msg_get_u64(&m, &since) == -1 || msg_end(&m) == -1)
		imap_malformed(imsg);
	if (b->selected == 0 || (uint64_t)b->selected != mailbox) {
		mbox_result(imsg, 0, "[NONEXISTENT] Mailbox was deleted");
		return;
	}
	if (since > INT64_MAX)
		since = INT64_MAX;
	if ((st = store_stmt("SELECT mm.uid, mm.modseq, (SELECT "
	    "group_concat(k.keyword, ' ') FROM keywords k "
	    "WHERE k.message_id = mm.message_id) FROM mailbox_messages mm "
	    "WHERE mm.mailbox_id = ? AND mm.modseq > ? "
	    "ORDER BY mm.uid")) == NULL)
		goto end;
	if (sqlite3_bind_int64(st, 1, mailbox) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, since) == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			store_keywords_list_to_imap((const char *)
			    sqlite3_column_text(st, 2), flags, sizeof(flags));
			msg_create(&out, IMSG_STORE_SYNC_FLAGS,
			    imsg->hdr.peerid, -1);
			msg_add_u32(&out, sqlite3_column_int64(st, 0));
			msg_add_u64(&out, sqlite3_column_int64(st, 1));
			msg_add_string(&out, flags);
			if (proc_send(PROC_IMAPD, &out) == -1)
				log_warn("%s: flags to imapd", __func__);
		}
		if (rc != SQLITE_DONE)
			log_warnx("%s: sync: %s", STORE_DB_PATH,
			    sqlite3_errmsg(store_db));
	}
	store_stmt_done(st);

	if (since > 0 && (st = store_stmt("SELECT uid FROM vanished "
	    "WHERE mailbox_id = ? AND modseq > ? ORDER BY uid")) != NULL) {
		if (sqlite3_bind_int64(st, 1, mailbox) == SQLITE_OK &&
		    sqlite3_bind_int64(st, 2, since) == SQLITE_OK)
			while (sqlite3_step(st) == SQLITE_ROW) {
				uids[n++] = sqlite3_column_int64(st, 0);
				if (n == IMAP_UIDS_PER_MSG) {
					send_uids(IMSG_STORE_SYNC_VANISHED,
					    imsg->hdr.peerid, uids, n);
					n = 0;
				}
			}
		store_stmt_done(st);
		if (n > 0)
			send_uids(IMSG_STORE_SYNC_VANISHED, imsg->hdr.peerid,
			    uids, n);
	}
 end:
	/*
	 * No count of the mailbox's messages: imapd knows them, and a
	 * count(*) over the mailbox after every APPEND, STORE and EXPUNGE
	 * cost as much as the rest of the sync.
	 */
	msg_create(&out, IMSG_STORE_SYNC_END, imsg->hdr.peerid, -1);
	if ((st = store_stmt("SELECT highestmodseq, uidnext "
	    "FROM mailboxes WHERE id = ?")) != NULL &&
	    sqlite3_bind_int64(st, 1, mailbox) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		msg_add_u64(&out, sqlite3_column_int64(st, 0));
		msg_add_u32(&out, sqlite3_column_int64(st, 1));
	} else {
		msg_add_u64(&out, 0);
		msg_add_u32(&out, 0);
	}
	store_stmt_done(st);
	if (proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: end to imapd", __func__);
}
