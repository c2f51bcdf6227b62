/*
 * Prepared statements kept for the life of the process, for the
 * queries made per message (recipient lookups, commits).  A statement
 * is named by its SQL string's address, so only string literals may be
 * used.  The caller resets it when done (store_stmt_done()), so that
 * no read stays open between two events.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "storaged.h"

#define STORE_STMT_MAX	128

static struct {
	const char	*sql;
	sqlite3_stmt	*st;
} store_stmts[STORE_STMT_MAX];
static size_t	 store_nstmts;

/* The statement for sql, ready to bind, or NULL with the reason logged. */
sqlite3_stmt *
store_stmt(const char *sql)
{
	sqlite3_stmt	*st;
	size_t		 i;

	for (i = 0; i < store_nstmts; i++)
		if (store_stmts[i].sql == sql) {
			sqlite3_reset(store_stmts[i].st);
			sqlite3_clear_bindings(store_stmts[i].st);
			return store_stmts[i].st;
		}
	if (sqlite3_prepare_v3(store_db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK) {
		log_warnx("%s: prepare: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return NULL;
	}
	if (store_nstmts == STORE_STMT_MAX)
		fatalx("%s: more than %d kept statements", __func__,
		    STORE_STMT_MAX);
	store_stmts[store_nstmts].sql = sql;
	store_stmts[store_nstmts].st = st;
	store_nstmts++;
	return st;
}

void
store_stmt_done(sqlite3_stmt *st)
{
	if (st != NULL)
		sqlite3_reset(st);
}

/*
 * Statements made from SQL built at run time (SEARCH, SORT, THREAD),
 * kept by their text: a client repeats its few searches, and preparing
 * one costs more than running it over a mailbox of some thousand
 * messages.  The least recently used goes when the cache is full.
 */
#define STORE_STMT_TEXT_MAX	32

static struct {
	char		*sql;
	sqlite3_stmt	*st;
	uint64_t	 used;
	int		 busy;
} store_text_stmts[STORE_STMT_TEXT_MAX];
static uint64_t	 store_text_clock;

/*
 * The statement for sql, to bind and step, then to give back with
 * store_stmt_text_done(); NULL with the reason logged.
 */
sqlite3_stmt *
store_stmt_text(const char *sql)
{
	sqlite3_stmt	*st;
	size_t		 i, victim = 0;
	char		*copy;

	for (i = 0; i < STORE_STMT_TEXT_MAX; i++) {
		if (store_text_stmts[i].sql == NULL) {
			victim = i;
			break;
		}
		if (!store_text_stmts[i].busy &&
		    strcmp(store_text_stmts[i].sql, sql) == 0) {
			store_text_stmts[i].busy = 1;
			store_text_stmts[i].used = ++store_text_clock;
			return store_text_stmts[i].st;
		}
		if (store_text_stmts[i].busy)
			continue;
		if (store_text_stmts[victim].busy ||
		    store_text_stmts[i].used < store_text_stmts[victim].used)
			victim = i;
	}
	if (sqlite3_prepare_v3(store_db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK) {
		log_warnx("%s: prepare: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return NULL;
	}
	/* All busy (never, but then the statement is not kept). */
	if (store_text_stmts[victim].busy || (copy = strdup(sql)) == NULL)
		return st;
	sqlite3_finalize(store_text_stmts[victim].st);
	free(store_text_stmts[victim].sql);
	store_text_stmts[victim].sql = copy;
	store_text_stmts[victim].st = st;
	store_text_stmts[victim].used = ++store_text_clock;
	store_text_stmts[victim].busy = 1;
	return st;
}

/* Reset, its values unbound (they may point at freed memory next). */
void
store_stmt_text_done(sqlite3_stmt *st)
{
	size_t	 i;

	if (st == NULL)
		return;
	for (i = 0; i < STORE_STMT_TEXT_MAX; i++)
		if (store_text_stmts[i].st == st && store_text_stmts[i].busy) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			store_text_stmts[i].busy = 0;
			return;
		}
	sqlite3_finalize(st);
}

/* Before the database is closed. */
void
store_stmt_close(void)
{
	size_t	 i;

	for (i = 0; i < store_nstmts; i++)
		sqlite3_finalize(store_stmts[i].st);
	store_nstmts = 0;
	for (i = 0; i < STORE_STMT_TEXT_MAX; i++) {
		sqlite3_finalize(store_text_stmts[i].st);
		free(store_text_stmts[i].sql);
		store_text_stmts[i].sql = NULL;
		store_text_stmts[i].st = NULL;
		store_text_stmts[i].busy = 0;
	}
}
