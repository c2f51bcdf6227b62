/*
 * What posternctl shows of an account's mail: its mailboxes, the
 * messages in one, and one message as delivered (its added header
 * lines, and a read-only descriptor of its blob for the rest).
 *
 *   mailbox list:	NAME MESSAGES UNSEEN SIZE
 *   message list:	UID SIZE RECEIVED FROM SUBJECT
 *
 * one line per mailbox or message, fields separated by a space (the
 * subject, last, may hold spaces; a mailbox name too, and its three
 * numbers follow it); SIZE in bytes, RECEIVED in UTC as
 * 2026-12-01T14:05:00Z, FROM "-" when the message has none.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "storaged.h"

#define LIST_SUBJECT_MAX	200	/* bytes of a subject in a list */
#define LIST_FROM_MAX		ADDRESS_MAX

static void store_mbox_err(char *, size_t, const char *, ...)
    __attribute__((__format__ (printf, 3, 4)));

static void
store_mbox_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
sql_fail(char *err, size_t errlen, const char *what)
{
	log_warnx("%s: %s: %s", STORE_DB_PATH, what,
	    sqlite3_errmsg(store_db));
	store_mbox_err(err, errlen, "storage error (%s)", what);
	return -1;
}

static int64_t
account_id(const char *account, char *err, size_t errlen)
{
	char	 canon[ADDRESS_MAX + 1], e[STORE_ERR_MAX];
	int64_t	 id;

	if ((id = store_account_find(account, canon, sizeof(canon), e,
	    sizeof(e))) == -1) {
		if (strncmp(e, "storage error", 13) == 0)
			strlcpy(err, e, errlen);
		else
			store_mbox_err(err, errlen, "no such account: %s",
			    account);
	}
	return id;
}

/* INBOX is case-insensitive (RFC 9051 5.1), other names are not. */
static int64_t
mailbox_id(int64_t account, const char *name, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int64_t		 id = -1;
	int		 rc;

	if ((st = store_db_stmt("SELECT id FROM mailboxes WHERE "
	    "account_id = ? AND name = ?")) == NULL)
		return sql_fail(err, errlen, "mailbox lookup");
	if (sqlite3_bind_int64(st, 1, account) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, strcasecmp(name, "INBOX") == 0 ?
	    "INBOX" : name, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		store_mbox_err(err, errlen, "no such mailbox: %s", name);
	else if (rc != SQLITE_ROW)
		return sql_fail(err, errlen, "mailbox lookup");
	return id;
}

int
store_mailbox_list(const char *account, store_emit_fn emit, void *arg,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	char		 line[STORE_ERR_MAX];
	int64_t		 id;
	int		 rc;

	if ((id = account_id(account, err, errlen)) == -1)
		return -1;
	if ((st = store_db_stmt("SELECT b.name, count(mm.uid), "
	    "coalesce(sum(mm.uid IS NOT NULL AND NOT EXISTS (SELECT 1 "
	    "FROM keywords k WHERE k.message_id = mm.message_id AND "
	    "k.keyword = '$seen')), 0), coalesce(sum(m.size), 0) "
	    "FROM mailboxes b "
	    "LEFT JOIN mailbox_messages mm ON mm.mailbox_id = b.id "
	    "LEFT JOIN messages m ON m.id = mm.message_id "
	    "WHERE b.account_id = ? GROUP BY b.id ORDER BY b.id")) == NULL)
		return sql_fail(err, errlen, "mailbox list");
	if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK) {
		sqlite3_finalize(st);
		return sql_fail(err, errlen, "mailbox list");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		(void)snprintf(line, sizeof(line), "%s %lld %lld %lld",
		    (const char *)sqlite3_column_text(st, 0),
		    (long long)sqlite3_column_int64(st, 1),
		    (long long)sqlite3_column_int64(st, 2),
		    (long long)sqlite3_column_int64(st, 3));
		emit(line, arg);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(err, errlen, "mailbox list");
	return 0;
}

/*
 * A field for a list line: controls become spaces, cut at max bytes
 * without splitting a UTF-8 character.
 */
static void
list_field(char *out, size_t outlen, const char *in, size_t max)
{
	size_t	 i, len;

	if (in == NULL || in[0] == '\0')
		in = "-";
	len = strlen(in);
	if (len > max)
		len = max;
	if (len >= outlen)
		len = outlen - 1;
	while (len > 0 && len < strlen(in) &&
	    ((unsigned char)in[len] & 0xc0) == 0x80)
		len--;
	for (i = 0; i < len; i++)
		out[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ?
		    ' ' : in[i];
	out[len] = '\0';
}

int
store_message_list(const char *account, const char *mailbox,
    store_emit_fn emit, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	struct tm	 tm;
	time_t		 t;
	char		 line[STORE_ERR_MAX + LIST_FROM_MAX], date[32];
	char		 from[LIST_FROM_MAX + 1], subject[LIST_SUBJECT_MAX + 1];
	int64_t		 acct, mbox;
	int		 rc;

	if ((acct = account_id(account, err, errlen)) == -1 ||
	    (mbox = mailbox_id(acct, mailbox, err, errlen)) == -1)
		return -1;
	if ((st = store_db_stmt("SELECT mm.uid, m.size, m.received, "
	    "m.from_addr, m.subject FROM mailbox_messages mm "
	    "JOIN messages m ON m.id = mm.message_id "
	    "WHERE mm.mailbox_id = ? AND mm.account_id = ? "
	    "ORDER BY mm.uid")) == NULL)
		return sql_fail(err, errlen, "message list");
	if (sqlite3_bind_int64(st, 1, mbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, acct) != SQLITE_OK) {
		sqlite3_finalize(st);
		return sql_fail(err, errlen, "message list");
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sqlite3_column_int64(st, 2);
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ",
		    &tm) == 0)
			strlcpy(date, "-", sizeof(date));
		list_field(from, sizeof(from),
		    (const char *)sqlite3_column_text(st, 3), LIST_FROM_MAX);
		list_field(subject, sizeof(subject),
		    (const char *)sqlite3_column_text(st, 4),
		    LIST_SUBJECT_MAX);
		(void)snprintf(line, sizeof(line), "%lld %lld %s %s %s",
		    (long long)sqlite3_column_int64(st, 0),
		    (long long)sqlite3_column_int64(st, 1), date, from,
		    subject);
		emit(line, arg);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(err, errlen, "message list");
	return 0;
}

/*
 * One message as delivered: *prefix (to free()) gets the header lines
 * added at delivery, *fd a read-only descriptor of the blob.
 */
int
store_message_open(const char *account, const char *mailbox, uint32_t uid,
    char **prefix, int *fd, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	char		 blob[STORE_HASH_HEX + 1];
	const void	*p;
	int64_t		 acct, mbox, message = 0;
	int		 rc, len = 0;

	*prefix = NULL;
	*fd = -1;
	if ((acct = account_id(account, err, errlen)) == -1 ||
	    (mbox = mailbox_id(acct, mailbox, err, errlen)) == -1)
		return -1;
	if ((st = store_db_stmt("SELECT m.blob, m.prefix, m.id "
	    "FROM mailbox_messages mm JOIN messages m ON m.id = mm.message_id "
	    "WHERE mm.mailbox_id = ? AND mm.account_id = ? AND mm.uid = ?")) ==
	    NULL)
		return sql_fail(err, errlen, "message lookup");
	if (sqlite3_bind_int64(st, 1, mbox) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, acct) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, uid) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		strlcpy(blob, (const char *)sqlite3_column_text(st, 0),
		    sizeof(blob));
		p = sqlite3_column_blob(st, 1);
		len = sqlite3_column_bytes(st, 1);
		message = sqlite3_column_int64(st, 2);
		if ((*prefix = malloc(len + 1)) != NULL) {
			if (len > 0)
				memcpy(*prefix, p, len);
			(*prefix)[len] = '\0';
		}
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		store_mbox_err(err, errlen, "no such message: %u", uid);
		return -1;
	}
	if (rc != SQLITE_ROW)
		return sql_fail(err, errlen, "message lookup");
	if (*prefix == NULL) {
		store_mbox_err(err, errlen, "out of memory");
		return -1;
	}
	if ((*fd = store_message_fd(message, blob)) == -1) {
		log_warn("%s/%s", STORE_BLOB_DIR, blob);
		store_mbox_err(err, errlen, "cannot open message %u", uid);
		free(*prefix);
		*prefix = NULL;
		return -1;
	}
	return 0;
}
