/*
 * Attachments stored once: at ingestion every large non-text leaf of a
 * message (an attachment, an image) becomes a blob of its own, named by
 * the SHA-256 of its encoded bytes like any other, so two messages with
 * the same attachment share its file.  The message's row then names a
 * skeleton blob, the message with those ranges cut out, and table
 * message_parts says where each cut goes back.  Readers get the whole
 * message from store_message_fd(): the plain blob, or for a message
 * with parts a sealed in-memory copy put together from the pieces; or,
 * when they can put it together themselves (imapd's FETCH), the pieces
 * from store_message_pieces().
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "storaged.h"

#define PARTS_COPY_BUF		65536

static int
part_worth_its_blob(const struct mime_part *p)
{
	if (p->nchildren > 0 || p->message != NULL)
		return 0;
	if (p->body_end < p->body_start ||
	    p->body_end - p->body_start < STORE_PART_MIN)
		return 0;
	return mime_part_is_attachment(p) || strcmp(p->type, "text") != 0;
}

/* The leaves to cut, in the order of the message, none overlapping. */
static int
parts_find(struct deliver_msg *dm, const struct mime_part *p, int depth)
{
	struct store_part	*np;
	size_t			 i, start, end;

	if (depth > MIME_MAX_DEPTH + 1)
		return 0;
	if (p->message != NULL)
		return parts_find(dm, p->message, depth + 1);
	for (i = 0; i < p->nchildren; i++)
		if (parts_find(dm, p->children[i], depth + 1) == -1)
			return -1;
	if (!part_worth_its_blob(p))
		return 0;
	/* mime's offsets count the prefix the last row was given. */
	if ((ptrdiff_t)p->body_start < dm->shift)
		return 0;
	start = p->body_start - dm->shift;
	end = p->body_end - dm->shift;
	if (end > dm->len || (dm->nparts > 0 &&
	    start < dm->parts[dm->nparts - 1].start +
	    dm->parts[dm->nparts - 1].len))
		return 0;
	if (dm->nparts == STORE_PARTS_MAX)
		return 0;
	if ((np = reallocarray(dm->parts, dm->nparts + 1,
	    sizeof(*np))) == NULL)
		return -1;
	dm->parts = np;
	np = &dm->parts[dm->nparts++];
	memset(np, 0, sizeof(*np));
	np->start = start;
	np->len = end - start;
	return 0;
}

static void
piece_hash(const void *buf, size_t len, char *hash)
{
	SHA2_CTX	 ctx;

	SHA256Init(&ctx);
	SHA256Update(&ctx, buf, len);
	SHA256End(&ctx, hash);
}

/*
 * In memory only: which leaves are cut out, the skeleton left, and the
 * names of all of them.  Done once per message, whatever number of
 * rows it gets.  0 (dm->nparts 0: stored whole), or -1 if memory ran
 * out.
 */
int
store_parts_plan(struct deliver_msg *dm)
{
	struct store_buf	 skel;
	size_t			 i, at = 0;

	if (dm->planned)
		return 0;
	if (dm->raw == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (dm->mime == NULL || dm->mime->root == NULL ||
	    dm->len < STORE_PART_MIN) {
		dm->planned = 1;
		return 0;
	}
	if (parts_find(dm, dm->mime->root, 0) == -1)
		goto fail;
	if (dm->nparts == 0) {
		dm->planned = 1;
		return 0;
	}
	memset(&skel, 0, sizeof(skel));
	for (i = 0; i < dm->nparts; i++) {
		store_buf_add(&skel, dm->raw + at, dm->parts[i].start - at);
		at = dm->parts[i].start + dm->parts[i].len;
	}
	store_buf_add(&skel, dm->raw + at, dm->len - at);
	if (skel.err) {
		free(skel.p);
		goto fail;
	}
	dm->skel_buf = skel.p;
	dm->skel_len = skel.len;
	piece_hash(dm->skel_buf != NULL ? dm->skel_buf : "", dm->skel_len,
	    dm->skel);
	for (i = 0; i < dm->nparts; i++)
		piece_hash(dm->raw + dm->parts[i].start, dm->parts[i].len,
		    dm->parts[i].hash);
	dm->planned = 1;
	return 0;
 fail:
	free(dm->parts);
	dm->parts = NULL;
	dm->nparts = 0;
	return -1;
}

/*
 * In a sync thread: the planned pieces not in /blobs yet written,
 * fdatasynced and renamed there, then /blobs fsynced.  Nothing of the
 * main thread's is touched: the pieces are noted for collection by
 * store_parts_forget() after the transaction.  0, or -1 with errno
 * and what failed in *what.
 */
int
store_parts_write(struct deliver_msg *dm, const char **what)
{
	char	 tmp[64];
	size_t	 i;

	/* The message's address names the files: one job per message. */
	(void)snprintf(tmp, sizeof(tmp), "%s/part-%llx-s", STORE_SPOOL_DIR,
	    (unsigned long long)(uintptr_t)dm);
	if (store_blob_file(dm->skel_buf != NULL ? dm->skel_buf : "",
	    dm->skel_len, dm->skel, tmp, what) == -1)
		return -1;
	for (i = 0; i < dm->nparts; i++) {
		(void)snprintf(tmp, sizeof(tmp), "%s/part-%llx-%zu",
		    STORE_SPOOL_DIR, (unsigned long long)(uintptr_t)dm, i);
		if (store_blob_file(dm->raw + dm->parts[i].start,
		    dm->parts[i].len, dm->parts[i].hash, tmp, what) == -1)
			return -1;
	}
	if (fsync(store_blob_dir()) == -1) {
		*what = "fsync " STORE_BLOB_DIR;
		return -1;
	}
	dm->written = 1;
	return 0;
}

/*
 * Inside the transaction that will name them, before the first row of
 * the message: every piece in /blobs, its bytes and its name durable,
 * so that the commit never names a file a crash could lose.  Written
 * by a sync thread already (store_parts_write_run()) they need only be
 * there still: a collection meanwhile may have taken one that existed
 * unnamed.  Otherwise, or then, they are written here.
 */
static int
parts_durable(struct deliver_msg *dm)
{
	struct stat	 sb;
	size_t		 i;
	char		 hash[STORE_HASH_HEX + 1];

	if (dm->durable)
		return 0;
	if (dm->written) {
		for (i = 0; i < dm->nparts; i++)
			if (fstatat(store_blob_dir(), dm->parts[i].hash, &sb,
			    AT_SYMLINK_NOFOLLOW) == -1)
				break;
		if (i == dm->nparts && fstatat(store_blob_dir(), dm->skel,
		    &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			dm->durable = 1;
			return 0;
		}
	}
	log_debug("%s: %zu attachment blob%s written in the transaction",
	    __func__, dm->nparts, dm->nparts == 1 ? "" : "s");
	if (store_blob_write(dm->skel_buf != NULL ? dm->skel_buf : "",
	    dm->skel_len, hash, sizeof(hash)) == -1)
		return -1;
	for (i = 0; i < dm->nparts; i++)
		if (store_blob_write(dm->raw + dm->parts[i].start,
		    dm->parts[i].len, hash, sizeof(hash)) == -1)
			return -1;
	if (store_blob_sync() == -1)
		return -1;
	dm->durable = 1;
	return 0;
}

/*
 * After the transaction that may have named them: the pieces are
 * collected unless a row names them.
 */
void
store_parts_forget(struct deliver_msg *dm)
{
	size_t	 i;

	if (!dm->planned || dm->nparts == 0)
		return;
	store_blob_forget(dm->skel);
	for (i = 0; i < dm->nparts; i++)
		store_blob_forget(dm->parts[i].hash);
}

/*
 * Inside a transaction, before the messages row: the blob the row
 * names (the skeleton if the message has parts, else hash) with a
 * reference for it, and *size that blob's size.  -1 on a storage
 * error.
 */
int
store_parts_blob(struct deliver_msg *dm, const char *hash,
    const char **blob, int64_t *size)
{
	if (store_parts_plan(dm) == -1)
		return -1;
	if (dm->nparts > 0) {
		if (parts_durable(dm) == -1)
			return -1;
		*blob = dm->skel;
		*size = dm->skel_len;
	} else {
		*blob = hash;
		*size = dm->len;
	}
	return store_blob_ref(*blob, *size);
}

/* Inside a transaction: the parts rows of a new message row. */
int
store_parts_insert(struct deliver_msg *dm, int64_t message_id)
{
	sqlite3_stmt	*st;
	size_t		 i;
	int		 rc;

	if (dm->nparts == 0)
		return 0;
	if ((st = store_db_stmt("INSERT INTO message_parts (message_id, "
	    "start, length, blob) VALUES (?, ?, ?, ?)")) == NULL)
		return -1;
	for (i = 0; i < dm->nparts; i++) {
		if (store_blob_ref(dm->parts[i].hash,
		    dm->parts[i].len) == -1) {
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_reset(st);
		if (sqlite3_bind_int64(st, 1, message_id) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, dm->parts[i].start) !=
		    SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, dm->parts[i].len) != SQLITE_OK ||
		    sqlite3_bind_text(st, 4, dm->parts[i].hash, -1,
		    SQLITE_STATIC) != SQLITE_OK ||
		    (rc = sqlite3_step(st)) != SQLITE_DONE) {
			log_warnx("%s: message parts: %s", STORE_DB_PATH,
			    sqlite3_errmsg(store_db));
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

/* Inside a transaction: to's parts become those of from, referenced. */
int
store_parts_copy(int64_t from, int64_t to)
{
	sqlite3_stmt	*st;
	int		 rc;

	/* No RETURNING: it would open a statement journal (store_blob.c). */
	if ((st = store_db_stmt("INSERT INTO message_parts (message_id, "
	    "start, length, blob) SELECT ?1, start, length, blob FROM "
	    "message_parts WHERE message_id = ?2")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, to) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, from) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto fail;
	if ((st = store_db_stmt("SELECT blob, length FROM message_parts "
	    "WHERE message_id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, to) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (store_blob_ref((const char *)sqlite3_column_text(st, 0),
		    sqlite3_column_int64(st, 1)) == -1)
			break;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto fail;
	return 0;
 fail:
	log_warnx("%s: message parts copy: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	return -1;
}

/*
 * The blobs the parts of the message rows selected by sql (a literal,
 * kept prepared, with one int64 parameter) name, appended to *hashes:
 * they are unreferenced once those rows are gone.  -1 if memory ran
 * out or on a storage error.
 */
int
store_parts_blobs(const char *sql, int64_t id, char ***hashes, size_t *n,
    size_t *cap)
{
	sqlite3_stmt	*st;
	char		**nh;
	int		 rc;

	if ((st = store_stmt(sql)) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == *cap) {
			if ((nh = reallocarray(*hashes, *cap ? *cap * 2 : 8,
			    sizeof(*nh))) == NULL)
				break;
			*hashes = nh;
			*cap = *cap ? *cap * 2 : 8;
		}
		if (((*hashes)[*n] = strdup((const char *)
		    sqlite3_column_text(st, 0))) == NULL)
			break;
		(*n)++;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		log_warnx("%s: message parts: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		return -1;
	}
	return 0;
}

/* A descriptor to write a message's copy into, read-only once handed out. */
static int
assembly_open(int *ro)
{
#if defined(__linux__)
	int	 fd;

	if ((fd = memfd_create("postern-message", MFD_CLOEXEC |
	    MFD_ALLOW_SEALING)) == -1)
		return -1;
	*ro = fd;
	return fd;
#elif defined(SHM_ANON)
	int	 fd;

	if ((fd = shm_open(SHM_ANON, O_RDWR | O_CLOEXEC, 0600)) == -1)
		return -1;
	*ro = fd;
	return fd;
#else
	char		 path[64];
	uint64_t	 r;
	int		 fd, serrno;

	arc4random_buf(&r, sizeof(r));
	(void)snprintf(path, sizeof(path), "%s/msg-%016llx", STORE_SPOOL_DIR,
	    (unsigned long long)r);
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) == -1)
		return -1;
	if ((*ro = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		serrno = errno;
		unlink(path);
		close(fd);
		errno = serrno;
		return -1;
	}
	unlink(path);
	return fd;
#endif
}

/* The writable side done with: sealed, or closed, and ro rewound. */
static int
assembly_finish(int fd, int ro)
{
#if defined(F_ADD_SEALS)
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK |
	    F_SEAL_GROW | F_SEAL_SEAL) == -1)
		return -1;
#endif
	if (lseek(ro, 0, SEEK_SET) == -1)
		return -1;
	if (fd != ro)
		close(fd);
	return 0;
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* len bytes of from (all that is left if len is -1) onto to. */
static int
copy_fd(int from, int to, int64_t len, char *buf)
{
	ssize_t	 n;
	size_t	 want;

	while (len != 0) {
		want = PARTS_COPY_BUF;
		if (len > 0 && (int64_t)want > len)
			want = len;
		if ((n = read(from, buf, want)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			if (len > 0) {
				errno = EIO;
				return -1;
			}
			break;
		}
		if (write_all(to, buf, n) == -1)
			return -1;
		if (len > 0)
			len -= n;
	}
	return 0;
}

/* The message put together from the skeleton and its parts. */
static int
message_assemble(sqlite3_stmt *st, const char *blob)
{
	char		*buf;
	int64_t		 start, length, at = 0;
	int		 skel, part, fd, ro = -1, rc, serrno;

	if ((buf = malloc(PARTS_COPY_BUF)) == NULL)
		return -1;
	if ((skel = store_blob_open(blob)) == -1) {
		free(buf);
		return -1;
	}
	if ((fd = assembly_open(&ro)) == -1)
		goto fail;
	rc = SQLITE_ROW;
	do {
		start = sqlite3_column_int64(st, 0);
		length = sqlite3_column_int64(st, 1);
		if (start < at || length < 0) {
			errno = EINVAL;
			goto fail;
		}
		if (copy_fd(skel, fd, start - at, buf) == -1)
			goto fail;
		if ((part = store_blob_open((const char *)
		    sqlite3_column_text(st, 2))) == -1)
			goto fail;
		rc = copy_fd(part, fd, length, buf);
		serrno = errno;
		close(part);
		if (rc == -1) {
			errno = serrno;
			goto fail;
		}
		at = start + length;
	} while ((rc = sqlite3_step(st)) == SQLITE_ROW);
	if (rc != SQLITE_DONE) {
		errno = EIO;
		goto fail;
	}
	if (copy_fd(skel, fd, -1, buf) == -1 ||
	    assembly_finish(fd, ro) == -1)
		goto fail;
	close(skel);
	free(buf);
	return ro;
 fail:
	serrno = errno;
	close(skel);
	if (fd != -1)
		close(fd);
	if (ro != -1 && ro != fd)
		close(ro);
	free(buf);
	errno = serrno;
	return -1;
}

/*
 * The bytes of a message row after its prefix, read-only at offset 0:
 * blob's own descriptor for a message stored whole, else a sealed copy
 * put together from the skeleton blob and its parts.  -1 with errno.
 */
int
store_message_fd(int64_t message_id, const char *blob)
{
	sqlite3_stmt	*st;
	int		 rc, fd;

	if ((st = store_stmt("SELECT start, length, blob FROM "
	    "message_parts WHERE message_id = ? ORDER BY start")) == NULL) {
		errno = EIO;
		return -1;
	}
	if (sqlite3_bind_int64(st, 1, message_id) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		store_stmt_done(st);
		return store_blob_open(blob);
	}
	if (rc != SQLITE_ROW) {
		log_warnx("%s: message parts: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		store_stmt_done(st);
		errno = EIO;
		return -1;
	}
	fd = message_assemble(st, blob);
	store_stmt_done(st);
	return fd;
}

/*
 * A message row's bytes after its prefix for a reader that puts its
 * pieces together itself: *fd the blob's descriptor (the skeleton of a
 * message whose parts were cut) and, when there are at most max parts,
 * each part's descriptor and where it goes back (*n of them).  A
 * message of more parts comes as store_message_fd()'s copy, *n 0.  -1
 * with errno.
 */
int
store_message_pieces(int64_t message_id, const char *blob, int *fd,
    struct store_piece *pieces, size_t max, size_t *n)
{
	sqlite3_stmt	*st;
	int64_t		 at = 0;
	int		 rc, serrno;

	*n = 0;
	if ((st = store_stmt("SELECT start, length, blob FROM "
	    "message_parts WHERE message_id = ? ORDER BY start")) == NULL) {
		errno = EIO;
		return -1;
	}
	if (sqlite3_bind_int64(st, 1, message_id) != SQLITE_OK) {
		rc = SQLITE_ERROR;
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		pieces[*n].start = sqlite3_column_int64(st, 0);
		pieces[*n].len = sqlite3_column_int64(st, 1);
		if (pieces[*n].start < at || pieces[*n].len < 0) {
			errno = EINVAL;
			goto close;
		}
		at = pieces[*n].start + pieces[*n].len;
		if ((pieces[*n].fd = store_blob_open((const char *)
		    sqlite3_column_text(st, 2))) == -1)
			goto close;
		(*n)++;
	}
	if (rc == SQLITE_ROW) {
		/* Too many to pass apart: one copy instead. */
		while (*n > 0)
			close(pieces[--(*n)].fd);
		sqlite3_reset(st);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			goto fail;
		*fd = message_assemble(st, blob);
		store_stmt_done(st);
		return *fd == -1 ? -1 : 0;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	store_stmt_done(st);
	if ((*fd = store_blob_open(blob)) == -1)
		goto close;
	return 0;
 fail:
	log_warnx("%s: message parts: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	errno = EIO;
 close:
	serrno = errno;
	while (*n > 0)
		close(pieces[--(*n)].fd);
	store_stmt_done(st);
	errno = serrno;
	return -1;
}
