/*
 * Prepared statements kept for the life of the process, for the
 * queries made per message (recipient lookups, commits).  A statement
 * is named by its SQL string's address, so only string literals may be
 * used.  The caller resets it when done (store_stmt_done()), so that
 * no read stays open between two events.
 */
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

/* Before the database is closed. */
void
store_stmt_close(void)
{
	size_t	 i;

	for (i = 0; i < store_nstmts; i++)
		sqlite3_finalize(store_stmts[i].st);
	store_nstmts = 0;
}
