/*
 * The clean-shutdown marker, STORE_CLEAN_PATH, and what a start
 * without it does.
 *
 * A lazy commit (store_sync.c) is seen by every session as soon as it
 * is made, a few milliseconds before its WAL frames are flushed.  A
 * crash of the machine in between takes it back, and with it the
 * UIDNEXT of its mailbox and the MODSEQ of its account, so that a UID
 * or MODSEQ a client has seen could be handed out again for another
 * message (RFC 9051 2.3.1.1, RFC 7162 3.1).  The marker is there only
 * while no such commit can be lost: storaged writes it when it stops,
 * after the last flush, and removes it, durably, before the first lazy
 * commit of a run.  A start that finds no marker on a store made
 * before may follow a crash that took back lazy commits a session saw.
 * Those wrote at most STORE_LAZY_ROWS_MAX rows (store_sync.c flushes
 * before more wait for a flush), and each UID or MODSEQ they handed out
 * is in a row they wrote.  So moving every mailbox's UIDNEXT and every
 * account's MODSEQ forward by that much passes anything a client may
 * have seen; IMAP allows the gap.  A store of a release before the
 * marker is treated the same.  A start that makes no lazy commit
 * leaves the marker alone, so a daemon that keeps failing at start-up
 * does not use up UIDs.
 *
 * Mailboxes are made and renamed, and UIDVALIDITY handed out, only by
 * commits that are flushed before anyone hears of them.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storaged.h"

#define STORE_CLEAN_TMP		STORE_CLEAN_PATH ".tmp"
#define STORE_UID_END		4294967296LL	/* past the last UID */

static int	 clean_present;

/* The state directory's entries, on disk. */
static int
clean_sync_dir(void)
{
	int	 fd, rc;

	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
clean_write(void)
{
	static const char	 text[] = "storaged stopped cleanly: every "
				    "commit is on disk\n";
	int			 fd;

	if ((fd = open(STORE_CLEAN_TMP, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
		log_warn("open %s", STORE_CLEAN_TMP);
		return -1;
	}
	if (write(fd, text, sizeof(text) - 1) != sizeof(text) - 1 ||
	    fsync(fd) == -1) {
		log_warn("write %s", STORE_CLEAN_TMP);
		close(fd);
		(void)unlink(STORE_CLEAN_TMP);
		return -1;
	}
	close(fd);
	if (rename(STORE_CLEAN_TMP, STORE_CLEAN_PATH) == -1) {
		log_warn("rename %s", STORE_CLEAN_TMP);
		(void)unlink(STORE_CLEAN_TMP);
		return -1;
	}
	if (clean_sync_dir() == -1) {
		log_warn("fsync of the state directory");
		return -1;
	}
	clean_present = 1;
	return 0;
}

/* One transaction, flushed before any session is served. */
static void
clean_recover(void)
{
	sqlite3_stmt	*st;
	int		 i;
	static const char *const sql[] = {
		"UPDATE mailboxes SET uidnext = min(uidnext + ?1, ?2)",
		"UPDATE accounts SET modseq = modseq + ?1",
		"UPDATE mailboxes SET highestmodseq = (SELECT a.modseq "
		"FROM accounts a WHERE a.id = mailboxes.account_id)",
	};

	if (store_db_begin() == -1)
		fatalx("%s: cannot recover from an unclean stop",
		    STORE_DB_PATH);
	for (i = 0; i < (int)(sizeof(sql) / sizeof(sql[0])); i++) {
		if ((st = store_db_stmt(sql[i])) == NULL)
			goto fail;
		if (sqlite3_bind_parameter_count(st) >= 1 &&
		    sqlite3_bind_int64(st, 1, STORE_LAZY_ROWS_MAX) !=
		    SQLITE_OK) {
			sqlite3_finalize(st);
			goto fail;
		}
		if (sqlite3_bind_parameter_count(st) >= 2 &&
		    sqlite3_bind_int64(st, 2, STORE_UID_END) != SQLITE_OK) {
			sqlite3_finalize(st);
			goto fail;
		}
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_finalize(st);
			goto fail;
		}
		sqlite3_finalize(st);
	}
	if (store_db_commit() == -1)
		fatalx("%s: cannot recover from an unclean stop",
		    STORE_DB_PATH);
	log_warnx("%s: storaged did not stop cleanly; every mailbox's "
	    "UIDNEXT and every account's MODSEQ moved forward by %d, past "
	    "what commits lost in a crash may have shown", STORE_DB_PATH,
	    STORE_LAZY_ROWS_MAX);
	return;
 fail:
	log_warnx("%s: %s", STORE_DB_PATH, sqlite3_errmsg(store_db));
	store_db_rollback();
	fatalx("%s: cannot recover from an unclean stop", STORE_DB_PATH);
}

/*
 * At start-up, the store open and up to date, before any request: a
 * start after a crash moves the counters forward.  newstore: the
 * store was made just now, so nothing can have been seen.
 */
void
store_clean_start(int newstore)
{
	struct stat	 sb;

	if (lstat(STORE_CLEAN_PATH, &sb) == 0) {
		if (!S_ISREG(sb.st_mode))
			fatalx("%s is not a file", STORE_CLEAN_PATH);
		clean_present = 1;
		log_debug("%s: stopped cleanly", STORE_DB_PATH);
		return;
	}
	if (errno != ENOENT)
		fatal("stat %s", STORE_CLEAN_PATH);
	if (!newstore)
		clean_recover();
	/* Nothing is lost now until the first lazy commit. */
	(void)clean_write();
}

/* Before a lazy commit: from now on a crash may lose what is seen. */
void
store_clean_dirty(void)
{
	if (!clean_present)
		return;
	if (unlink(STORE_CLEAN_PATH) == -1 && errno != ENOENT)
		fatal("unlink %s", STORE_CLEAN_PATH);
	if (clean_sync_dir() == -1)
		fatal("fsync of the state directory");
	clean_present = 0;
}

/*
 * When storaged stops: every commit flushed, then the marker.  If any
 * of it fails the next start recovers as after a crash, which is safe.
 */
void
store_clean_stop(void)
{
	int	 fd;

	if (store_db == NULL)
		return;
	if (store_db_flush() == -1) {
		store_db_close();
		return;
	}
	store_db_close();
	if ((fd = open(STORE_DB_PATH, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		log_warn("fsync %s", STORE_DB_PATH);
		if (fd != -1)
			close(fd);
		return;
	}
	close(fd);
	if (!clean_present)
		(void)clean_write();
}
