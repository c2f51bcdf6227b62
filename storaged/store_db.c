/*
 * The database: opening it, the numbered migrations that make its
 * schema, and the few helpers every area uses.  store_db is used from
 * the main thread only; the other connections are the indexer
 * thread's, to the full-text index (store_fts.c), which store_db
 * attaches read-only, and the one that checkpoints the WAL from a
 * sync thread (store_sync.c).
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storaged.h"

sqlite3	*store_db;

/*
 * Pieces of migration 3's SQL.  The system keywords, which are flag
 * bits of a placement rather than counted keywords; and what a
 * placement's triggers do to its mailbox's counts of the other
 * keywords of its message: the old mailbox's lose them, the new
 * one's gain them.
 */
#define SQL_SYSTEM_KEYWORDS						\
	"('$seen', '$answered', '$flagged', '$deleted', '$draft')"
#define SQL_KEYWORDS_LEAVE						\
	"  UPDATE mailbox_keywords SET n = n - 1"			\
	"    WHERE mailbox_id = OLD.mailbox_id AND keyword IN"		\
	"    (SELECT keyword FROM keywords WHERE message_id = OLD.message_id);" \
	"  DELETE FROM mailbox_keywords"				\
	"    WHERE mailbox_id = OLD.mailbox_id AND n <= 0;"
#define SQL_KEYWORDS_JOIN						\
	"  INSERT INTO mailbox_keywords (mailbox_id, keyword, n)"	\
	"    SELECT NEW.mailbox_id, keyword, 1 FROM keywords"		\
	"    WHERE message_id = NEW.message_id AND lower(keyword) NOT IN"	\
	"    " SQL_SYSTEM_KEYWORDS						\
	"    ON CONFLICT (mailbox_id, keyword) DO UPDATE SET n = n + 1;"

/*
 * Migration n takes the schema from version n - 1 to n.  Each runs in
 * one transaction with the update of schema_version, so a failed one
 * leaves the store as it was.  Never edit a released migration: add
 * the next one.
 */
static const char *const store_migrations[] = {
	NULL,
	/* 1: domains, accounts, their addresses, aliases, mailboxes */
	"CREATE TABLE schema_version ("
	"  version INTEGER NOT NULL"
	");"
	"INSERT INTO schema_version (version) VALUES (0);"
	"CREATE TABLE domains ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  created INTEGER NOT NULL"
	");"
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  address TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  password TEXT NOT NULL,"
	"  created INTEGER NOT NULL"
	");"
	"CREATE INDEX accounts_domain ON accounts(domain_id);"
	/* Every address that reaches an account, its own included. */
	"CREATE TABLE addresses ("
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL UNIQUE COLLATE NOCASE"
	");"
	"CREATE INDEX addresses_account ON addresses(account_id);"
	/*
	 * account_id is the target's account when the target is local
	 * and has one, so deleting the account takes its aliases along.
	 */
	"CREATE TABLE aliases ("
	"  id INTEGER PRIMARY KEY,"
	"  domain_id INTEGER NOT NULL REFERENCES domains(id),"
	"  alias TEXT NOT NULL COLLATE NOCASE,"
	"  target TEXT NOT NULL COLLATE NOCASE,"
	"  account_id INTEGER"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  UNIQUE (alias, target)"
	");"
	"CREATE INDEX aliases_domain ON aliases(domain_id);"
	"CREATE INDEX aliases_account ON aliases(account_id);"
	"CREATE INDEX aliases_target ON aliases(target);"
	"CREATE TABLE mailboxes ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  special_use TEXT,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL DEFAULT 1,"
	"  highestmodseq INTEGER NOT NULL DEFAULT 1,"
	"  subscribed INTEGER NOT NULL DEFAULT 1,"
	"  UNIQUE (account_id, name)"
	");",
	/*
	 * 2: blobs, the queue, messages and where they are filed, their
	 * keywords and the change log (the full-text index has a file of
	 * its own: store_fts.c).
	 */
	/*
	 * refs: queue entries, message rows and message parts that name
	 * the blob.
	 */
	"CREATE TABLE blobs ("
	"  hash TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  refs INTEGER NOT NULL"
	");"
	"CREATE TABLE queue ("
	"  id INTEGER PRIMARY KEY,"
	"  blob TEXT NOT NULL REFERENCES blobs(hash),"
	"  sender TEXT NOT NULL,"
	"  body INTEGER NOT NULL,"
	"  smtputf8 INTEGER NOT NULL,"
	"  ret INTEGER NOT NULL,"
	"  envid TEXT NOT NULL,"
	"  auth TEXT NOT NULL,"
	"  client TEXT NOT NULL,"
	"  helo TEXT NOT NULL,"
	"  created INTEGER NOT NULL"
	");"
	"CREATE TABLE queue_rcpts ("
	"  queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,"
	"  idx INTEGER NOT NULL,"
	"  address TEXT NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  notify INTEGER NOT NULL,"
	"  orcpt TEXT NOT NULL,"
	"  status INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (queue_id, idx)"
	");"
	/*
	 * One row per delivered (or appended) message and account.  The
	 * message is prefix (the header lines added at delivery) followed
	 * by the blob's bytes; mime is mime_to_json() of the whole, so its
	 * offsets count the prefix too.
	 */
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  blob TEXT NOT NULL REFERENCES blobs(hash),"
	"  prefix BLOB NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  received INTEGER NOT NULL,"
	"  sent TEXT,"
	"  subject TEXT,"
	"  from_addr TEXT,"
	"  message_id TEXT,"
	/* For IMAP SORT and THREAD (RFC 5256) and JMAP sorting. */
	"  sent_ts INTEGER,"
	"  sort_subject TEXT,"
	"  sort_from TEXT,"
	"  sort_to TEXT,"
	"  sort_cc TEXT,"
	"  in_reply_to TEXT,"
	"  refs TEXT,"
	/* RFC 5957 DISPLAYFROM and DISPLAYTO. */
	"  sort_display_from TEXT,"
	"  sort_display_to TEXT,"
	/* The Date field's own calendar day, days since 1970 (SENTON). */
	"  sent_day INTEGER,"
	"  preview TEXT NOT NULL,"
	"  has_attachment INTEGER NOT NULL,"
	"  thread_id INTEGER,"
	"  mime TEXT NOT NULL"
	");"
	"CREATE INDEX messages_account ON messages(account_id);"
	"CREATE INDEX messages_blob ON messages(blob);"
	/*
	 * A message with large attachments: its row's blob is the message
	 * without them, and each is a blob of its own, put back at start
	 * (an offset in the whole message, after the prefix).
	 */
	"CREATE TABLE message_parts ("
	"  message_id INTEGER NOT NULL"
	"    REFERENCES messages(id) ON DELETE CASCADE,"
	"  start INTEGER NOT NULL,"
	"  length INTEGER NOT NULL,"
	"  blob TEXT NOT NULL REFERENCES blobs(hash),"
	"  PRIMARY KEY (message_id, start)"
	");"
	"CREATE INDEX message_parts_blob ON message_parts(blob);"
	/* A placement of a message in a mailbox, with its own UID. */
	"CREATE TABLE mailbox_messages ("
	"  mailbox_id INTEGER NOT NULL"
	"    REFERENCES mailboxes(id) ON DELETE CASCADE,"
	"  message_id INTEGER NOT NULL"
	"    REFERENCES messages(id) ON DELETE CASCADE,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  uid INTEGER NOT NULL,"
	"  modseq INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox_id, uid)"
	");"
	"CREATE INDEX mailbox_messages_message ON mailbox_messages(message_id);"
	"CREATE INDEX mailbox_messages_account ON mailbox_messages(account_id);"
	"CREATE INDEX mailbox_messages_modseq"
	"  ON mailbox_messages(mailbox_id, modseq);"
	/* Flags are keywords of the message: \Seen is '$seen' and so on. */
	"CREATE TABLE keywords ("
	"  message_id INTEGER NOT NULL"
	"    REFERENCES messages(id) ON DELETE CASCADE,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  keyword TEXT NOT NULL COLLATE NOCASE,"
	"  PRIMARY KEY (message_id, keyword)"
	");"
	/* The account's counter behind MODSEQ and JMAP states. */
	"ALTER TABLE accounts ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;"
	/* The last UIDVALIDITY handed out: a re-created name gets a new one. */
	"ALTER TABLE accounts"
	"  ADD COLUMN uidvalidity INTEGER NOT NULL DEFAULT 0;"
	/* op: 1 created, 2 updated, 3 destroyed. */
	"CREATE TABLE changes ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  modseq INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  object_id INTEGER NOT NULL,"
	"  op INTEGER NOT NULL"
	");"
	"CREATE INDEX changes_account ON changes(account_id, modseq);"
	/* UIDs expunged from a mailbox, for QRESYNC's VANISHED. */
	"CREATE TABLE vanished ("
	"  mailbox_id INTEGER NOT NULL"
	"    REFERENCES mailboxes(id) ON DELETE CASCADE,"
	"  uid INTEGER NOT NULL,"
	"  modseq INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox_id, uid)"
	");"
	"CREATE INDEX vanished_modseq ON vanished(mailbox_id, modseq);"
	/* IMAP subscriptions, which may name mailboxes that do not exist. */
	"CREATE TABLE subscriptions ("
	"  account_id INTEGER NOT NULL"
	"    REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  PRIMARY KEY (account_id, name)"
	");",
	/*
	 * 3: what SELECT, SEARCH, STATUS and EXPUNGE ask of a mailbox,
	 * kept where an index answers it.  Triggers keep both, so every
	 * writer of keywords and placements keeps them right: a
	 * placement's flags are its message's system keywords as bits
	 * (STORE_FLAG_* in storaged.h), and mailbox_keywords counts, per
	 * mailbox and other keyword, the placements whose message has it
	 * (SELECT's FLAGS).  A keyword row and a placement's message are
	 * never updated in place, only inserted and deleted.
	 */
	"ALTER TABLE mailbox_messages"
	"  ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailbox_messages SET flags = (SELECT coalesce(sum("
	"  CASE lower(k.keyword) WHEN '$seen' THEN 1 WHEN '$answered' THEN 2"
	"  WHEN '$flagged' THEN 4 WHEN '$deleted' THEN 8 WHEN '$draft' THEN 16"
	"  ELSE 0 END), 0) FROM keywords k"
	"  WHERE k.message_id = mailbox_messages.message_id);"
	/* Partial: a query must say "flags & 1 = 0" to have them used. */
	"CREATE INDEX mailbox_messages_unseen"
	"  ON mailbox_messages(mailbox_id, uid, flags) WHERE flags & 1 = 0;"
	"CREATE INDEX mailbox_messages_deleted"
	"  ON mailbox_messages(mailbox_id, uid, flags) WHERE flags & 8 != 0;"
	"CREATE TABLE mailbox_keywords ("
	"  mailbox_id INTEGER NOT NULL"
	"    REFERENCES mailboxes(id) ON DELETE CASCADE,"
	"  keyword TEXT NOT NULL COLLATE NOCASE,"
	"  n INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox_id, keyword)"
	") WITHOUT ROWID;"
	"INSERT INTO mailbox_keywords (mailbox_id, keyword, n)"
	"  SELECT mm.mailbox_id, min(k.keyword), count(*)"
	"  FROM mailbox_messages mm JOIN keywords k"
	"  ON k.message_id = mm.message_id WHERE lower(k.keyword) NOT IN"
	"  " SQL_SYSTEM_KEYWORDS
	"  GROUP BY mm.mailbox_id, k.keyword;"
	"CREATE TRIGGER keywords_flag_insert AFTER INSERT ON keywords"
	"  WHEN lower(NEW.keyword) IN"
	"  " SQL_SYSTEM_KEYWORDS " BEGIN"
	"  UPDATE mailbox_messages SET flags = flags |"
	"    CASE lower(NEW.keyword) WHEN '$seen' THEN 1"
	"    WHEN '$answered' THEN 2"
	"    WHEN '$flagged' THEN 4 WHEN '$deleted' THEN 8 ELSE 16 END"
	"    WHERE message_id = NEW.message_id;"
	"END;"
	"CREATE TRIGGER keywords_flag_delete AFTER DELETE ON keywords"
	"  WHEN lower(OLD.keyword) IN"
	"  " SQL_SYSTEM_KEYWORDS " BEGIN"
	"  UPDATE mailbox_messages SET flags = flags &"
	"    ~CASE lower(OLD.keyword) WHEN '$seen' THEN 1"
	"    WHEN '$answered' THEN 2"
	"    WHEN '$flagged' THEN 4 WHEN '$deleted' THEN 8 ELSE 16 END"
	"    WHERE message_id = OLD.message_id;"
	"END;"
	"CREATE TRIGGER keywords_inuse_insert AFTER INSERT ON keywords"
	"  WHEN lower(NEW.keyword) NOT IN"
	"  " SQL_SYSTEM_KEYWORDS " BEGIN"
	"  INSERT INTO mailbox_keywords (mailbox_id, keyword, n)"
	"    SELECT mailbox_id, NEW.keyword, 1 FROM mailbox_messages"
	"    WHERE message_id = NEW.message_id"
	"    ON CONFLICT (mailbox_id, keyword) DO UPDATE SET n = n + 1;"
	"END;"
	"CREATE TRIGGER keywords_inuse_delete AFTER DELETE ON keywords"
	"  WHEN lower(OLD.keyword) NOT IN"
	"  " SQL_SYSTEM_KEYWORDS " BEGIN"
	"  UPDATE mailbox_keywords SET n = n - 1 WHERE mailbox_id IN"
	"    (SELECT mailbox_id FROM mailbox_messages"
	"    WHERE message_id = OLD.message_id) AND keyword = OLD.keyword;"
	"  DELETE FROM mailbox_keywords WHERE mailbox_id IN"
	"    (SELECT mailbox_id FROM mailbox_messages"
	"    WHERE message_id = OLD.message_id) AND keyword = OLD.keyword"
	"    AND n <= 0;"
	"END;"
	"CREATE TRIGGER keywords_update BEFORE UPDATE OF message_id, keyword"
	"  ON keywords BEGIN"
	"  SELECT RAISE(ABORT,"
	"    'a keyword is inserted or deleted, not updated');"
	"END;"
	"CREATE TRIGGER mailbox_messages_insert"
	"  AFTER INSERT ON mailbox_messages"
	"  WHEN EXISTS (SELECT 1 FROM keywords"
	"  WHERE message_id = NEW.message_id) BEGIN"
	"  UPDATE mailbox_messages SET flags = (SELECT coalesce(sum("
	"    CASE lower(k.keyword) WHEN '$seen' THEN 1"
	"    WHEN '$answered' THEN 2"
	"    WHEN '$flagged' THEN 4 WHEN '$deleted' THEN 8 WHEN '$draft'"
	"    THEN 16 ELSE 0 END), 0) FROM keywords k"
	"    WHERE k.message_id = NEW.message_id)"
	"    WHERE mailbox_id = NEW.mailbox_id AND uid = NEW.uid;"
	SQL_KEYWORDS_JOIN
	"END;"
	"CREATE TRIGGER mailbox_messages_delete"
	"  AFTER DELETE ON mailbox_messages"
	"  WHEN EXISTS (SELECT 1 FROM keywords"
	"  WHERE message_id = OLD.message_id AND lower(keyword) NOT IN"
	"  " SQL_SYSTEM_KEYWORDS ") BEGIN"
	SQL_KEYWORDS_LEAVE
	"END;"
	"CREATE TRIGGER mailbox_messages_move"
	"  AFTER UPDATE OF mailbox_id ON mailbox_messages"
	"  WHEN OLD.mailbox_id != NEW.mailbox_id AND EXISTS (SELECT 1"
	"  FROM keywords WHERE message_id = NEW.message_id AND"
	"  lower(keyword) NOT IN"
	"  " SQL_SYSTEM_KEYWORDS ") BEGIN"
	SQL_KEYWORDS_LEAVE
	SQL_KEYWORDS_JOIN
	"END;"
	"CREATE TRIGGER mailbox_messages_message"
	"  BEFORE UPDATE OF message_id ON mailbox_messages BEGIN"
	"  SELECT RAISE(ABORT, 'a placement keeps its message');"
	"END;",
	/*
	 * 4: what SEARCH compares, where a scan of a mailbox reads it
	 * without the wide messages rows or the blobs.  A placement
	 * carries its message's internal date, and one index holds every
	 * column of a placement SEARCH reads, so a mailbox's flags and
	 * dates are read from the index alone.  The index is partial on
	 * a condition every placement meets (UIDs start at 1), so only a
	 * query that says "uid > 0" uses it: the planner has no
	 * statistics, and would take a covering index over the narrower
	 * ones the other queries of a mailbox are written for.
	 * message_search holds per message the subject and every address
	 * field as HEADER compares them (imap_address_fields(),
	 * store_search.c), made by triggers with the message and kept
	 * with it; NULL addresses if its blob could not be read.
	 */
	"ALTER TABLE mailbox_messages"
	"  ADD COLUMN received INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailbox_messages SET received = (SELECT m.received"
	"  FROM messages m WHERE m.id = mailbox_messages.message_id);"
	"CREATE INDEX mailbox_messages_search ON mailbox_messages"
	"  (mailbox_id, uid, flags, received, modseq, message_id)"
	"  WHERE uid > 0;"
	/* UNSEEN reads its fewer rows when they hold what it answers. */
	"DROP INDEX mailbox_messages_unseen;"
	"CREATE INDEX mailbox_messages_unseen"
	"  ON mailbox_messages(mailbox_id, uid, flags, modseq)"
	"  WHERE flags & 1 = 0;"
	"CREATE TRIGGER mailbox_messages_received"
	"  AFTER INSERT ON mailbox_messages BEGIN"
	"  UPDATE mailbox_messages SET received = (SELECT m.received"
	"    FROM messages m WHERE m.id = NEW.message_id)"
	"    WHERE mailbox_id = NEW.mailbox_id AND uid = NEW.uid;"
	"END;"
	"CREATE TABLE message_search ("
	"  message_id INTEGER PRIMARY KEY"
	"    REFERENCES messages(id) ON DELETE CASCADE,"
	"  subject TEXT,"
	"  addresses BLOB"
	");"
	"INSERT INTO message_search (message_id, subject, addresses)"
	"  SELECT id, subject, imap_address_fields(blob, prefix)"
	"  FROM messages;"
	"CREATE TRIGGER messages_search AFTER INSERT ON messages BEGIN"
	"  INSERT INTO message_search (message_id, subject, addresses)"
	"    VALUES (NEW.id, NEW.subject,"
	"    imap_address_fields(NEW.blob, NEW.prefix));"
	"END;"
	"CREATE TRIGGER messages_search_update"
	"  AFTER UPDATE OF blob, prefix, subject ON messages BEGIN"
	"  UPDATE message_search SET subject = NEW.subject,"
	"    addresses = imap_address_fields(NEW.blob, NEW.prefix)"
	"    WHERE message_id = NEW.id;"
	"END;",
};

#define STORE_SCHEMA_VERSION						\
	((int)(sizeof(store_migrations) / sizeof(store_migrations[0])) - 1)

/*
 * Before chroot: make SQLite seed its generator now, from a place we
 * can still open, rather than later from a /dev/urandom we cannot.
 */
void
store_db_prepare(void)
{
	unsigned char	 seed[16];
	int		 rc;

	/*
	 * No memory statistics: they take a mutex that every allocation
	 * of the event loop, the indexer and the checkpoints would share.
	 */
	if ((rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0)) != SQLITE_OK)
		fatalx("sqlite3_config: %s", sqlite3_errstr(rc));
	if ((rc = sqlite3_initialize()) != SQLITE_OK)
		fatalx("sqlite3_initialize: %s", sqlite3_errstr(rc));
	sqlite3_randomness(sizeof(seed), seed);
	explicit_bzero(seed, sizeof(seed));
}

static void
store_db_exec(const char *sql)
{
	char	*errmsg = NULL;

	if (sqlite3_exec(store_db, sql, NULL, NULL, &errmsg) != SQLITE_OK)
		fatalx("%s: %s: %s", STORE_DB_PATH, sql,
		    errmsg ? errmsg : sqlite3_errmsg(store_db));
}

/* The schema version the store is at: 0 for a new one. */
static int
store_db_version(void)
{
	sqlite3_stmt	*st = NULL;
	int		 rc, version;

	if (sqlite3_prepare_v2(store_db, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'schema_version'", -1, &st,
	    NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	rc = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (rc == 0)
		return 0;
	if (sqlite3_prepare_v2(store_db, "SELECT version FROM schema_version",
	    -1, &st, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
		sqlite3_finalize(st);
		sqlite3_close(store_db);
		fatalx("%s: table schema_version has no version; refusing to "
		    "start", STORE_DB_PATH);
	}
	version = sqlite3_column_int(st, 0);
	if (sqlite3_step(st) != SQLITE_DONE || version < 0) {
		sqlite3_finalize(st);
		sqlite3_close(store_db);
		fatalx("%s: table schema_version is damaged; refusing to "
		    "start", STORE_DB_PATH);
	}
	sqlite3_finalize(st);
	return version;
 fail:
	log_warnx("%s: %s", STORE_DB_PATH, sqlite3_errmsg(store_db));
	sqlite3_finalize(st);
	sqlite3_close(store_db);
	fatalx("%s: cannot read the schema version; refusing to start",
	    STORE_DB_PATH);
}

/* Applies migration n in one transaction, or leaves all as it was. */
static void
store_db_migrate(int n)
{
	sqlite3_stmt	*st = NULL;
	char		*errmsg = NULL;
	char		 msg[STORE_ERR_MAX];

	if (sqlite3_exec(store_db, "BEGIN IMMEDIATE", NULL, NULL,
	    &errmsg) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(store_db, store_migrations[n], NULL, NULL,
	    &errmsg) != SQLITE_OK)
		goto fail;
	if (sqlite3_prepare_v2(store_db,
	    "UPDATE schema_version SET version = ?", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_bind_int(st, 1, n) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE ||
	    sqlite3_changes(store_db) != 1)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_exec(store_db, "COMMIT", NULL, NULL, &errmsg) !=
	    SQLITE_OK)
		goto fail;
	log_info("%s: migrated to schema version %d", STORE_DB_PATH, n);
	return;
 fail:
	strlcpy(msg, errmsg ? errmsg : sqlite3_errmsg(store_db),
	    sizeof(msg));
	sqlite3_free(errmsg);
	sqlite3_finalize(st);
	if (!sqlite3_get_autocommit(store_db))
		sqlite3_exec(store_db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(store_db);
	fatalx("%s: migration %d failed: %s; the store is left at schema "
	    "version %d", STORE_DB_PATH, n, msg, n - 1);
}

static void
store_blobs_init(void)
{
	struct stat	 st;

	if (mkdir(STORE_BLOB_DIR, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", STORE_BLOB_DIR);
	if (lstat(STORE_BLOB_DIR, &st) == -1)
		fatal("stat %s", STORE_BLOB_DIR);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077))
		fatalx("%s must be a directory of the storage user, mode 0700",
		    STORE_BLOB_DIR);
}

/*
 * Opens the store, brings its schema up to date and puts it in WAL
 * mode.  A store from a newer posternd, or a migration that fails,
 * stops storaged before anything is written.
 */
void
store_db_open(void)
{
	sqlite3_stmt	*st;
	int		 rc, version, n;

	rc = sqlite3_open_v2(STORE_DB_PATH, &store_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
	    SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK)
		fatalx("%s: %s", STORE_DB_PATH, store_db ?
		    sqlite3_errmsg(store_db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(store_db, 1);
	if (sqlite3_busy_timeout(store_db, STORE_BUSY_TIMEOUT_MS) !=
	    SQLITE_OK)
		fatalx("%s: busy_timeout: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_db_exec("PRAGMA foreign_keys = ON");
	/* A REPLACE's deletes fire migration 3's triggers too. */
	store_db_exec("PRAGMA recursive_triggers = ON");
	store_db_exec("PRAGMA synchronous = FULL");
	store_db_exec("PRAGMA temp_store = MEMORY");
	/* The index (attached later) is read through the page cache. */
	store_db_exec("PRAGMA main.cache_size = -16384");
	store_db_exec("PRAGMA main.mmap_size = 1073741824");
	/* Migration 4 and its triggers call them. */
	store_search_init();

	version = store_db_version();
	if (version > STORE_SCHEMA_VERSION) {
		sqlite3_close(store_db);
		fatalx("%s: schema version %d is newer than this posternd "
		    "knows (%d); refusing to start, the store is untouched",
		    STORE_DB_PATH, version, STORE_SCHEMA_VERSION);
	}
	for (n = version + 1; n <= STORE_SCHEMA_VERSION; n++)
		store_db_migrate(n);

	if (sqlite3_prepare_v2(store_db, "PRAGMA journal_mode = WAL", -1,
	    &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		fatalx("%s: cannot switch to WAL mode: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	sqlite3_finalize(st);
	store_blobs_init();
	log_debug("%s: schema version %d, WAL mode", STORE_DB_PATH,
	    STORE_SCHEMA_VERSION);
	store_clean_start(version == 0);
}

void
store_db_close(void)
{
	if (store_db == NULL)
		return;
	store_ckpt_close();
	if (sqlite3_close(store_db) != SQLITE_OK)
		log_warnx("%s: close: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_db = NULL;
}

/*
 * One statement without rows, from a literal, kept prepared: the
 * transactions of every IMAP write parsed their BEGIN and COMMIT anew.
 */
int
store_db_run(const char *sql)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_stmt(sql)) == NULL)
		return -1;
	rc = sqlite3_step(st);
	store_stmt_done(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_db_begin(void)
{
	if (store_db_run("BEGIN IMMEDIATE") == -1) {
		log_warnx("%s: begin: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

int
store_db_commit(void)
{
	if (store_db_run("COMMIT") == -1) {
		log_warnx("%s: commit: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		store_db_rollback();
		return -1;
	}
	/* One not lazy that wrote was flushed by db_wal_hook(). */
	return 0;
}

void
store_db_rollback(void)
{
	if (!sqlite3_get_autocommit(store_db))
		(void)store_db_run("ROLLBACK");
}

/* A prepared statement, or NULL with the reason logged. */
sqlite3_stmt *
store_db_stmt(const char *sql)
{
	sqlite3_stmt	*st;

	if (sqlite3_prepare_v2(store_db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_warnx("%s: prepare: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return NULL;
	}
	return st;
}
