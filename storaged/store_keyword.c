/*
 * IMAP flags and stored keywords, mapped in this one place.  A message
 * keeps JMAP's keywords (RFC 8621 4.1.1): \Seen is $seen, \Answered
 * $answered, \Flagged $flagged, \Draft $draft, \Deleted $deleted, and
 * any other atom is a keyword as it is, lower-cased (keywords are
 * case-insensitive).  \Recent is not kept (IMAP4rev2 dropped it; to a
 * rev1 client no message is ever recent).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "storaged.h"

static const struct {
	const char	*imap;
	const char	*keyword;
	int		 flag;
} keyword_system[] = {
	{ "\\Seen",	"$seen",	STORE_FLAG_SEEN },
	{ "\\Answered",	"$answered",	STORE_FLAG_ANSWERED },
	{ "\\Flagged",	"$flagged",	STORE_FLAG_FLAGGED },
	{ "\\Draft",	"$draft",	STORE_FLAG_DRAFT },
	{ "\\Deleted",	"$deleted",	STORE_FLAG_DELETED },
};

#define KEYWORD_NSYSTEM	(sizeof(keyword_system) / sizeof(keyword_system[0]))

/* RFC 9051 atom characters, less '\' and ']' (flag-keyword). */
static int
keyword_char(int c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return strchr("(){%*\"\\]", c) == NULL;
}

/*
 * The stored keyword for an IMAP flag: 1 with it in out, 0 for a flag
 * that is not kept (\Recent), -1 for one that is not a flag.
 */
int
store_keyword_from_imap(const char *flag, char *out, size_t outlen)
{
	size_t	 i, len;

	if (flag[0] == '\\') {
		for (i = 0; i < KEYWORD_NSYSTEM; i++)
			if (strcasecmp(flag, keyword_system[i].imap) == 0) {
				strlcpy(out, keyword_system[i].keyword,
				    outlen);
				return 1;
			}
		if (strcasecmp(flag, "\\Recent") == 0)
			return 0;
		return -1;
	}
	len = strlen(flag);
	if (len == 0 || len > STORE_KEYWORD_LEN || len >= outlen)
		return -1;
	for (i = 0; i < len; i++) {
		if (!keyword_char((unsigned char)flag[i]))
			return -1;
		out[i] = tolower((unsigned char)flag[i]);
	}
	out[len] = '\0';
	return 1;
}

/* The IMAP flag of a stored keyword, added to b. */
void
store_keyword_to_imap(const char *keyword, struct store_buf *b)
{
	size_t	 i;

	for (i = 0; i < KEYWORD_NSYSTEM; i++)
		if (strcasecmp(keyword, keyword_system[i].keyword) == 0) {
			store_buf_str(b, keyword_system[i].imap);
			return;
		}
	store_buf_str(b, keyword);
}

/* Whether a stored keyword is one of IMAP's system flags. */
int
store_keyword_is_system(const char *keyword)
{
	size_t	 i;

	for (i = 0; i < KEYWORD_NSYSTEM; i++)
		if (strcasecmp(keyword, keyword_system[i].keyword) == 0)
			return 1;
	return 0;
}

/* A system keyword's bit in mailbox_messages.flags, 0 for any other. */
int
store_keyword_flag(const char *keyword)
{
	size_t	 i;

	for (i = 0; i < KEYWORD_NSYSTEM; i++)
		if (strcasecmp(keyword, keyword_system[i].keyword) == 0)
			return keyword_system[i].flag;
	return 0;
}

void
store_keywords_free(struct store_keywords *k)
{
	size_t	 i;

	for (i = 0; i < k->n; i++)
		free(k->kw[i]);
	k->n = 0;
}

int
store_keywords_has(const struct store_keywords *k, const char *keyword)
{
	size_t	 i;

	for (i = 0; i < k->n; i++)
		if (strcasecmp(k->kw[i], keyword) == 0)
			return 1;
	return 0;
}

/* Adds a stored keyword unless it is there.  -1: too many, or memory. */
int
store_keywords_add(struct store_keywords *k, const char *keyword)
{
	if (store_keywords_has(k, keyword))
		return 0;
	if (k->n == STORE_KEYWORDS_MAX)
		return -1;
	if ((k->kw[k->n] = strdup(keyword)) == NULL)
		return -1;
	k->n++;
	return 0;
}

void
store_keywords_remove(struct store_keywords *k, const char *keyword)
{
	size_t	 i;

	for (i = 0; i < k->n; i++)
		if (strcasecmp(k->kw[i], keyword) == 0) {
			free(k->kw[i]);
			k->kw[i] = k->kw[--k->n];
			return;
		}
}

/*
 * Stored keywords from IMAP flags separated by spaces.  -1 if one is
 * not a flag or there are too many.
 */
int
store_keywords_from_imap(const char *flags, struct store_keywords *k)
{
	char	 flag[STORE_KEYWORD_LEN + 2], kw[STORE_KEYWORD_LEN + 1];
	size_t	 len;
	int	 rc;

	k->n = 0;
	while (*flags != '\0') {
		if (*flags == ' ') {
			flags++;
			continue;
		}
		len = strcspn(flags, " ");
		if (len >= sizeof(flag))
			goto fail;
		memcpy(flag, flags, len);
		flag[len] = '\0';
		flags += len;
		if ((rc = store_keyword_from_imap(flag, kw, sizeof(kw))) ==
		    -1)
			goto fail;
		if (rc == 1 && store_keywords_add(k, kw) == -1)
			goto fail;
	}
	return 0;
 fail:
	store_keywords_free(k);
	return -1;
}

/*
 * Stored keywords separated by spaces (group_concat), as a set.  Past
 * STORE_KEYWORDS_MAX (JMAP may set more) the rest is left out: a STORE
 * then neither shows nor removes them.
 */
int
store_keywords_from_list(const char *list, struct store_keywords *k)
{
	char	 kw[STORE_KEYWORD_LEN + 1];
	size_t	 len;

	k->n = 0;
	if (list == NULL)
		return 0;
	while (*list != '\0') {
		if (*list == ' ') {
			list++;
			continue;
		}
		len = strcspn(list, " ");
		if (len < sizeof(kw) && k->n < STORE_KEYWORDS_MAX) {
			memcpy(kw, list, len);
			kw[len] = '\0';
			if (store_keywords_add(k, kw) == -1) {
				store_keywords_free(k);
				return -1;
			}
		}
		list += len;
	}
	return 0;
}

/* The IMAP flags of a keyword set, separated by spaces, added to b. */
void
store_keywords_to_imap(const struct store_keywords *k, struct store_buf *b)
{
	size_t	 i;

	for (i = 0; i < k->n; i++) {
		if (i > 0)
			store_buf_add(b, " ", 1);
		store_keyword_to_imap(k->kw[i], b);
	}
}

/*
 * The IMAP flags of a list of stored keywords separated by spaces, in
 * buf (a flag list longer than buflen is cut at a flag boundary).
 */
void
store_keywords_list_to_imap(const char *list, char *buf, size_t buflen)
{
	struct store_buf	 b;
	char			 kw[STORE_KEYWORD_LEN + 1];
	size_t			 len, mark;

	memset(&b, 0, sizeof(b));
	buf[0] = '\0';
	if (list == NULL)
		return;
	while (*list != '\0') {
		if (*list == ' ') {
			list++;
			continue;
		}
		len = strcspn(list, " ");
		if (len < sizeof(kw)) {
			memcpy(kw, list, len);
			kw[len] = '\0';
			mark = b.len;
			if (b.len > 0)
				store_buf_add(&b, " ", 1);
			store_keyword_to_imap(kw, &b);
			if (b.err || b.len >= buflen) {
				b.len = mark;
				break;
			}
		}
		list += len;
	}
	if (!b.err && b.p != NULL) {
		memcpy(buf, b.p, b.len);
		buf[b.len] = '\0';
	}
	free(b.p);
}

/*
 * A placement's system flags (STORE_FLAG_* bits) as IMAP flags, in the
 * order store_keywords_list_to_imap() gives their stored keywords.
 */
void
store_flags_to_imap(int bits, char *buf, size_t buflen)
{
	static const struct {
		int		 bit;
		const char	*name;
	} order[] = {
		{ STORE_FLAG_ANSWERED,	"\\Answered" },
		{ STORE_FLAG_DELETED,	"\\Deleted" },
		{ STORE_FLAG_DRAFT,	"\\Draft" },
		{ STORE_FLAG_FLAGGED,	"\\Flagged" },
		{ STORE_FLAG_SEEN,	"\\Seen" },
	};
	size_t	 i;

	buf[0] = '\0';
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (bits & order[i].bit) {
			if (buf[0] != '\0')
				(void)strlcat(buf, " ", buflen);
			(void)strlcat(buf, order[i].name, buflen);
		}
}

/*
 * Whether a placement in mailbox has a keyword other than the system
 * flags (mailbox_keywords, kept by migration 3's triggers); -1 on an
 * error, logged.
 */
int
store_mailbox_has_keywords(int64_t mailbox)
{
	sqlite3_stmt	*st;
	int		 rc, has;

	if ((st = store_stmt("SELECT EXISTS (SELECT 1 FROM "
	    "mailbox_keywords WHERE mailbox_id = ? AND n > 0)")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		log_warnx("%s: keywords in use: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
		store_stmt_done(st);
		return -1;
	}
	has = sqlite3_column_int(st, 0);
	store_stmt_done(st);
	return has;
}
