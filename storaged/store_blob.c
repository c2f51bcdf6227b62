/*
 * The blob store: flat /blobs/<64 hex>, one file per distinct content,
 * counted in table blobs by the queue entries and message rows that
 * name it.  A file enters /blobs only complete and fdatasynced, by a
 * rename, so a name there always holds the bytes it is named after.
 * Files leave only once their row is gone and that is committed
 * (store_blob_collect()); a crash in between leaves a file nobody
 * names, which the sweep at start-up removes.
 */
#include <sys/stat.h>
#include <sys/tree.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storaged.h"

#define BLOB_PENDING_MAX	65536	/* unlinks waiting for a commit */

struct blob_name {
	char	 hash[STORE_HASH_HEX + 1];
};

/* A file that work in progress will name: collection leaves it. */
struct blob_pin {
	RB_ENTRY(blob_pin)	 entry;
	char			 hash[STORE_HASH_HEX + 1];
	unsigned int		 count;
};

RB_HEAD(blob_pins, blob_pin);

static int	blob_pin_cmp(struct blob_pin *, struct blob_pin *);
RB_GENERATE(blob_pins, blob_pin, entry, blob_pin_cmp)

static int		 blob_dirfd = -1;
static struct blob_name	*blob_pending;
static size_t		 blob_npending, blob_maxpending;
static struct blob_pins	 blob_pinned = RB_INITIALIZER(&blob_pinned);

static int
blob_pin_cmp(struct blob_pin *a, struct blob_pin *b)
{
	return strcmp(a->hash, b->hash);
}

static struct blob_pin *
blob_pin_find(const char *hash)
{
	struct blob_pin	 key;

	if (strlcpy(key.hash, hash, sizeof(key.hash)) >= sizeof(key.hash))
		return NULL;
	return RB_FIND(blob_pins, &blob_pinned, &key);
}

/*
 * The file hash stays in /blobs, named by a row or not, until as many
 * store_blob_unpin(): for an upload that a later transaction will name
 * (an APPEND waiting for the rest of its MULTIAPPEND), which another's
 * collection of the same content must not take away meanwhile.
 */
void
store_blob_pin(const char *hash)
{
	struct blob_pin	*p;

	if ((p = blob_pin_find(hash)) != NULL) {
		p->count++;
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		fatal("%s", __func__);
	if (strlcpy(p->hash, hash, sizeof(p->hash)) >= sizeof(p->hash))
		fatalx("%s: not a blob name", __func__);
	p->count = 1;
	RB_INSERT(blob_pins, &blob_pinned, p);
}

/* One pin fewer; the caller notes the file (store_blob_forget()). */
void
store_blob_unpin(const char *hash)
{
	struct blob_pin	*p;

	if ((p = blob_pin_find(hash)) == NULL)
		fatalx("%s: %s is not pinned", __func__, hash);
	if (--p->count > 0)
		return;
	RB_REMOVE(blob_pins, &blob_pinned, p);
	free(p);
}

static int
blob_name_valid(const char *hash)
{
	size_t	 i;

	for (i = 0; i < STORE_HASH_HEX; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
		    (hash[i] >= 'a' && hash[i] <= 'f')))
			return 0;
	return hash[i] == '\0';
}

/* Whether table blobs has a row for hash: 1, 0, or -1 on error. */
static int
blob_known(const char *hash)
{
	sqlite3_stmt	*st;
	int		 rc, known = -1;

	if ((st = store_stmt("SELECT 1 FROM blobs WHERE hash = ?")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			known = 1;
		else if (rc == SQLITE_DONE)
			known = 0;
	}
	store_stmt_done(st);
	return known;
}

/* Removes files in /blobs that no row names: leftovers of a crash. */
static void
blob_sweep(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, known, n = 0;

	if ((fd = openat(blob_dirfd, ".", O_RDONLY | O_DIRECTORY)) == -1)
		fatal("open %s", STORE_BLOB_DIR);
	if ((d = fdopendir(fd)) == NULL)
		fatal("fdopendir %s", STORE_BLOB_DIR);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!blob_name_valid(de->d_name)) {
			log_warnx("%s/%s: not a blob, left alone",
			    STORE_BLOB_DIR, de->d_name);
			continue;
		}
		if ((known = blob_known(de->d_name)) == -1)
			fatalx("%s: blob sweep: %s", STORE_DB_PATH,
			    sqlite3_errmsg(store_db));
		if (known)
			continue;
		if (unlinkat(blob_dirfd, de->d_name, 0) == -1)
			log_warn("unlink %s/%s", STORE_BLOB_DIR, de->d_name);
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("%s: removed %d unreferenced blob%s", STORE_BLOB_DIR,
		    n, n == 1 ? "" : "s");
}

/* After store_db_open() has made /blobs. */
void
store_blob_init(void)
{
	if ((blob_dirfd = open(STORE_BLOB_DIR, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		fatal("open %s", STORE_BLOB_DIR);
	blob_sweep();
}

/* /blobs, open for renameat() into it and fsync(). */
int
store_blob_dir(void)
{
	return blob_dirfd;
}

/* Makes the names renamed into /blobs durable. */
int
store_blob_sync(void)
{
	if (fsync(blob_dirfd) == -1) {
		log_warn("fsync %s", STORE_BLOB_DIR);
		return -1;
	}
	return 0;
}

/*
 * Inside a transaction: one more reference to the blob, its row made
 * with a count of 1 if it is new.
 */
int
store_blob_ref(const char *hash, int64_t size)
{
	sqlite3_stmt	*st;
	int		 rc = -1;

	if ((st = store_stmt("INSERT INTO blobs (hash, size, refs) "
	    "VALUES (?, ?, 1) ON CONFLICT (hash) DO UPDATE "
	    "SET refs = refs + 1")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, size) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	else
		log_warnx("%s: blob ref: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_stmt_done(st);
	return rc;
}

/* Notes a file to unlink if, after the transaction, no row names it. */
static void
blob_pending_add(const char *hash)
{
	struct blob_name	*p;
	size_t			 n;

	if (blob_npending == blob_maxpending) {
		n = blob_maxpending ? blob_maxpending * 2 : 64;
		if (n > BLOB_PENDING_MAX ||
		    (p = reallocarray(blob_pending, n, sizeof(*p))) == NULL) {
			/* The start-up sweep will find it. */
			log_warnx("%s: too many blobs to collect; %s waits "
			    "for a restart", STORE_BLOB_DIR, hash);
			return;
		}
		blob_pending = p;
		blob_maxpending = n;
	}
	strlcpy(blob_pending[blob_npending++].hash, hash,
	    sizeof(blob_pending[0].hash));
}

/*
 * Inside a transaction: one reference fewer.  At none the row goes;
 * the file goes at store_blob_collect() once that is committed.  The
 * DELETE runs only then: a delete from a table others reference (and
 * an UPDATE ... RETURNING) opens a statement journal, which makes
 * FTS5 flush what the transaction gave it so far.
 */
int
store_blob_unref(const char *hash)
{
	sqlite3_stmt	*st;
	int64_t		 refs = -1;
	int		 rc;

	if ((st = store_stmt("UPDATE blobs SET refs = refs - 1 "
	    "WHERE hash = ? AND refs > 0")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		goto fail;
	if (sqlite3_changes(store_db) != 1) {
		log_warnx("%s: blob %s had no reference to drop",
		    STORE_DB_PATH, hash);
		return 0;
	}
	if ((st = store_stmt("SELECT refs FROM blobs WHERE hash = ?")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		refs = sqlite3_column_int64(st, 0);
	store_stmt_done(st);
	if (rc != SQLITE_ROW)
		goto fail;
	if (refs > 0)
		return 0;
	if ((st = store_stmt("DELETE FROM blobs WHERE hash = ?")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		goto fail;
	blob_pending_add(hash);
	return 0;
 fail:
	log_warnx("%s: blob unref: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	return -1;
}

/*
 * Outside any transaction: unlinks the noted files that no row names.
 * Run after every COMMIT or ROLLBACK that may have dropped a blob.
 */
void
store_blob_collect(void)
{
	size_t	 i, kept = 0;
	int	 known;

	if (blob_npending == 0 || !sqlite3_get_autocommit(store_db) ||
	    !store_db_durable())
		return;
	for (i = 0; i < blob_npending; i++) {
		if (blob_pin_find(blob_pending[i].hash) != NULL) {
			/* Asked again once the pin goes. */
			blob_pending[kept++] = blob_pending[i];
			continue;
		}
		if ((known = blob_known(blob_pending[i].hash)) != 0) {
			/* In use again, or unknown: the sweep decides. */
			continue;
		}
		if (unlinkat(blob_dirfd, blob_pending[i].hash, 0) == -1 &&
		    errno != ENOENT)
			log_warn("unlink %s/%s", STORE_BLOB_DIR,
			    blob_pending[i].hash);
	}
	blob_npending = kept;
}

/* A read-only descriptor of a blob, or -1 with errno. */
int
store_blob_open(const char *hash)
{
	if (!blob_name_valid(hash)) {
		errno = EINVAL;
		return -1;
	}
	return openat(blob_dirfd, hash, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/*
 * Notes a file just renamed into /blobs: unless a transaction
 * references it, store_blob_collect() takes it away again.
 */
void
store_blob_forget(const char *hash)
{
	blob_pending_add(hash);
}

/*
 * Writes bytes made here (a DSN) as a blob: a spool file, fdatasynced,
 * renamed into /blobs, /blobs fsynced.  No row is made: reference it
 * with store_blob_ref() in the transaction that uses it, and collect
 * afterwards (a blob left unreferenced is then removed).  hash gets
 * the name, hashlen at least STORE_HASH_HEX + 1.
 */
int
store_blob_put(const void *buf, size_t len, char *hash, size_t hashlen)
{
	if (store_blob_write(buf, len, hash, hashlen) == -1)
		return -1;
	return store_blob_sync();
}

/*
 * Safe in any thread (no row, no note, no log): unless /blobs/hash
 * exists, buf written to the spool file tmp, fdatasynced and renamed
 * to it.  /blobs itself is not fsynced.  0, or -1 with errno and what
 * failed in *what.
 */
int
store_blob_file(const void *buf, size_t len, const char *hash,
    const char *tmp, const char **what)
{
	const unsigned char *p = buf;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd, serrno;
	struct stat	 sb;

	if (fstatat(blob_dirfd, hash, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		*what = "open";
		return -1;
	}
	while (off < len) {
		if ((n = write(fd, p + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			*what = "write";
			goto fail;
		}
		off += n;
	}
	if (fdatasync(fd) == -1) {
		*what = "fdatasync";
		goto fail;
	}
	close(fd);
	fd = -1;
	if (renameat(AT_FDCWD, tmp, blob_dirfd, hash) == -1) {
		*what = "rename";
		goto fail;
	}
	return 0;
 fail:
	serrno = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = serrno;
	return -1;
}

/*
 * store_blob_put() without the fsync of /blobs, for a caller writing
 * several blobs: it calls store_blob_sync() once after the last, and
 * before any transaction naming them commits.
 */
int
store_blob_write(const void *buf, size_t len, char *hash, size_t hashlen)
{
	SHA2_CTX	 ctx;
	char		 tmp[64];
	const char	*what;
	uint64_t	 r;

	if (hashlen < STORE_HASH_HEX + 1) {
		errno = EINVAL;
		return -1;
	}
	SHA256Init(&ctx);
	SHA256Update(&ctx, buf, len);
	SHA256End(&ctx, hash);
	arc4random_buf(&r, sizeof(r));
	(void)snprintf(tmp, sizeof(tmp), "%s/put-%016llx", STORE_SPOOL_DIR,
	    (unsigned long long)r);
	if (store_blob_file(buf, len, hash, tmp, &what) == -1) {
		log_warn("%s %s", what, tmp);
		return -1;
	}
	store_blob_forget(hash);
	return 0;
}
