/*
 * SEARCH and SORT.  imapd's search program (imap_proto.h) becomes one
 * SQL expression over mailbox_messages mm, message_search ms and
 * messages m, every value in it bound, each table joined only when the
 * program reads it: flags and internal dates from the placement (one
 * index holds all of them, migration 4), keywords by EXISTS on their
 * primary key, TEXT and BODY through the FTS5 trigram index (MATCH for
 * three characters or more, LIKE on the index's columns for fewer),
 * SUBJECT and the address fields from message_search, made at
 * ingestion, and any other HEADER through imap_header(), which reads
 * only the header block of the message.  SORT keys are the columns
 * made at ingestion (store_sortkeys_bind()).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mime.h"
#include "storaged.h"

#define SEARCH_HEADER_READ	8192	/* bytes read at a time */
#define SEARCH_SORT_KEYS	16	/* keys in one SORT */
#define SEARCH_DEPTH_MAX	1000	/* nesting of a search program */

/*
 * RFC 5322 3.3 date-time, with the obsolete zones; -1 if it is not.
 * *zone, if asked, gets the field's offset from UTC in seconds.
 */
int64_t
store_date_parse(const char *s, int *zone)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr",
	    "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	static const struct {
		const char	*name;
		int		 hours;
	} zones[] = {
		{ "UT", 0 }, { "UTC", 0 }, { "GMT", 0 }, { "Z", 0 },
		{ "EST", -5 }, { "EDT", -4 }, { "CST", -6 }, { "CDT", -5 },
		{ "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 },
	};
	struct tm	 tm;
	const char	*p = s;
	char		 word[8];
	long		 v[6];
	size_t		 i, n;
	int		 off = 0, sign, hh, mm;
	time_t		 t;

	if (s == NULL)
		return -1;
	memset(&tm, 0, sizeof(tm));
	while (*p == ' ' || *p == '\t')
		p++;
	if (isalpha((unsigned char)*p)) {
		while (isalpha((unsigned char)*p))
			p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
	}
	/* day month year hour : minute [: second] */
	for (i = 0; i < 6; i++) {
		while (*p == ' ' || *p == '\t' || (i >= 3 && *p == ':'))
			p++;
		if (i == 1) {
			for (n = 0; isalpha((unsigned char)*p) &&
			    n < sizeof(word) - 1; p++)
				word[n++] = tolower((unsigned char)*p);
			word[n] = '\0';
			for (n = 0; n < 12; n++)
				if (strncmp(word, months[n], 3) == 0)
					break;
			if (n == 12)
				return -1;
			v[1] = n;
			continue;
		}
		if (!isdigit((unsigned char)*p)) {
			if (i == 5) {
				v[5] = 0;
				break;
			}
			return -1;
		}
		for (v[i] = 0, n = 0; isdigit((unsigned char)*p) && n < 5;
		    p++, n++)
			v[i] = v[i] * 10 + (*p - '0');
		if (i == 2 && n == 2)
			v[2] += v[2] < 50 ? 2000 : 1900;
		else if (i == 2 && n == 3)
			v[2] += 1900;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (!isdigit((unsigned char)p[0]) ||
		    !isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) ||
		    !isdigit((unsigned char)p[3]))
			return -1;
		hh = (p[0] - '0') * 10 + (p[1] - '0');
		mm = (p[2] - '0') * 10 + (p[3] - '0');
		off = sign * (hh * 3600 + mm * 60);
	} else {
		for (n = 0; isalpha((unsigned char)*p) &&
		    n < sizeof(word) - 1; p++)
			word[n++] = toupper((unsigned char)*p);
		word[n] = '\0';
		for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (strcmp(word, zones[i].name) == 0) {
				off = zones[i].hours * 3600;
				break;
			}
	}
	if (v[0] < 1 || v[0] > 31 || v[2] < 1900 || v[2] > 9999 ||
	    v[3] > 23 || v[4] > 59 || v[5] > 60)
		return -1;
	tm.tm_mday = v[0];
	tm.tm_mon = v[1];
	tm.tm_year = v[2] - 1900;
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	if ((t = timegm(&tm)) == -1)
		return -1;
	if (zone != NULL)
		*zone = off;
	return (int64_t)t - off;
}

/* Days since 1970-01-01 of an instant, rounding down. */
static int64_t
day_number(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/*
 * "name <mailbox@host>" of each mailbox, space separated: what the
 * index holds and what HEADER searches of address fields compare.
 */
void
store_addrlist_render(struct store_buf *b, const struct mime_addrlist *l)
{
	const struct mime_addr	*a;
	size_t			 i;

	for (i = 0; i < l->count; i++) {
		a = &l->addrs[i];
		if (a->kind != MIME_ADDR_MAILBOX)
			continue;
		if (b->len > 0)
			store_buf_add(b, " ", 1);
		if (a->name != NULL) {
			store_buf_str(b, a->name);
			store_buf_add(b, " ", 1);
		}
		store_buf_add(b, "<", 1);
		store_buf_str(b, a->mailbox);
		if (a->host != NULL && a->host[0] != '\0') {
			store_buf_add(b, "@", 1);
			store_buf_str(b, a->host);
		}
		store_buf_add(b, ">", 1);
	}
}

static const struct mime_addr *
addr_first(const struct mime_addrlist *l)
{
	size_t	 i;

	for (i = 0; i < l->count; i++)
		if (l->addrs[i].kind == MIME_ADDR_MAILBOX &&
		    l->addrs[i].mailbox != NULL)
			return &l->addrs[i];
	return NULL;
}

/* RFC 5256: the addr-mailbox of the first address. */
static int
bind_mailbox(sqlite3_stmt *st, int i, const struct mime_addrlist *l)
{
	const struct mime_addr	*a;

	if ((a = addr_first(l)) == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, a->mailbox, -1, SQLITE_TRANSIENT);
}

/* RFC 5957: the display name of the first address, else its address. */
static int
bind_display(sqlite3_stmt *st, int i, const struct mime_addrlist *l)
{
	const struct mime_addr	*a;
	char			*s;
	int			 rc;

	if ((a = addr_first(l)) == NULL)
		return sqlite3_bind_null(st, i);
	if (a->name != NULL && a->name[0] != '\0')
		return sqlite3_bind_text(st, i, a->name, -1, SQLITE_TRANSIENT);
	if (asprintf(&s, "%s%s%s", a->mailbox, a->host != NULL &&
	    a->host[0] != '\0' ? "@" : "", a->host != NULL ? a->host : "") ==
	    -1)
		return SQLITE_NOMEM;
	rc = sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	free(s);
	return rc;
}

/*
 * Binds the sort and thread keys of a message from first on: sent_ts,
 * sort_subject, sort_from, sort_to, sort_cc, in_reply_to, refs,
 * sort_display_from, sort_display_to, sent_day.
 */
int
store_sortkeys_bind(sqlite3_stmt *st, int first,
    const struct mime_envelope *env)
{
	struct store_buf	 b;
	char			*refs;
	int64_t			 t;
	size_t			 i;
	int			 rc, zone = 0;

	t = store_date_parse(env->date, &zone);
	memset(&b, 0, sizeof(b));
	for (i = 0; i < env->reference_ids.count; i++) {
		if (i > 0)
			store_buf_add(&b, " ", 1);
		store_buf_str(&b, env->reference_ids.ids[i]);
	}
	if ((refs = store_buf_finish(&b)) == NULL)
		return -1;
	if ((t == -1 ? sqlite3_bind_null(st, first) :
	    sqlite3_bind_int64(st, first, t)) != SQLITE_OK ||
	    sqlite3_bind_text(st, first + 1, env->base_subject != NULL ?
	    env->base_subject : "", -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    bind_mailbox(st, first + 2, &env->from_list) != SQLITE_OK ||
	    bind_mailbox(st, first + 3, &env->to_list) != SQLITE_OK ||
	    bind_mailbox(st, first + 4, &env->cc_list) != SQLITE_OK ||
	    (env->in_reply_to_ids.count > 0 ? sqlite3_bind_text(st,
	    first + 5, env->in_reply_to_ids.ids[0], -1, SQLITE_TRANSIENT) :
	    sqlite3_bind_null(st, first + 5)) != SQLITE_OK ||
	    (refs[0] != '\0' ? sqlite3_bind_text(st, first + 6, refs, -1,
	    SQLITE_TRANSIENT) : sqlite3_bind_null(st, first + 6)) !=
	    SQLITE_OK ||
	    bind_display(st, first + 7, &env->from_list) != SQLITE_OK ||
	    bind_display(st, first + 8, &env->to_list) != SQLITE_OK ||
	    (t == -1 ? sqlite3_bind_null(st, first + 9) :
	    sqlite3_bind_int64(st, first + 9, day_number(t + zone))) !=
	    SQLITE_OK)
		rc = -1;
	else
		rc = 0;
	free(refs);
	return rc;
}

static inline unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * Whether the len bytes at hay hold needle, ASCII letters in either
 * case (tolower() in storaged's C locale): what RFC 9051 asks at least.
 */
static int
ci_memmem(const char *hay, size_t len, const char *needle, size_t n)
{
	const unsigned char	*h = (const unsigned char *)hay;
	const unsigned char	*v = (const unsigned char *)needle;
	unsigned char		 lo, up;
	size_t			 i, j;

	if (n == 0)
		return 1;
	if (n > len)
		return 0;
	lo = ascii_lower(v[0]);
	up = lo >= 'a' && lo <= 'z' ? lo - 'a' + 'A' : lo;
	for (i = 0; i <= len - n; i++) {
		if (h[i] != lo && h[i] != up)
			continue;
		for (j = 1; j < n && ascii_lower(h[i + j]) ==
		    ascii_lower(v[j]); j++)
			;
		if (j == n)
			return 1;
	}
	return 0;
}

static int
ci_contains(const char *hay, const char *needle)
{
	return ci_memmem(hay, strlen(hay), needle, strlen(needle));
}

/* The fields HEADER compares as addresses, by their names in lowercase. */
static const char *const address_fields[] = {
	"from", "to", "cc", "bcc", "sender", "reply-to",
};

/* The field's name in address_fields[], or NULL if it is not one. */
static const char *
address_field(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < sizeof(address_fields) / sizeof(address_fields[0]);
	    i++)
		if (strlen(address_fields[i]) == len &&
		    strncasecmp(name, address_fields[i], len) == 0)
			return address_fields[i];
	return NULL;
}

static int
field_is_address(const char *name)
{
	return address_field(name, strlen(name)) != NULL;
}

/*
 * An address field's value (raw, folded) as HEADER compares it,
 * appended to out: store_addrlist_render() of its mailboxes, nothing
 * if it does not parse.  -1 if memory ran out.
 */
static int
address_render(const char *raw, size_t len, struct store_buf *out)
{
	struct mime_addrlist	 l;
	char			*v;

	if ((v = mime_unfold(raw, len)) == NULL)
		return -1;
	if (mime_parse_addresses(v, &l) == MIME_OK) {
		store_addrlist_render(out, &l);
		mime_addrlist_free(&l);
	}
	free(v);
	return out->err ? -1 : 0;
}

/* Whether one field's value (raw, folded) holds the string. */
static int
field_matches(const char *name, const char *raw, size_t len,
    const char *value)
{
	struct store_buf	 b;
	char			*v, *d;
	int			 match = 0;

	if (value[0] == '\0')
		return 1;
	if (field_is_address(name)) {
		memset(&b, 0, sizeof(b));
		match = address_render(raw, len, &b) == 0 && b.p != NULL &&
		    ci_contains(b.p, value);
		free(b.p);
		return match;
	}
	if ((v = mime_unfold(raw, len)) == NULL)
		return 0;
	if (ci_contains(v, value))
		match = 1;
	else if ((d = mime_decode_words(v)) != NULL) {
		match = ci_contains(d, value);
		free(d);
	}
	free(v);
	return match;
}

/*
 * The next field of a header block from *i on: its name (up to the
 * colon) and its raw value (up to the line that does not start with
 * WSP).  0 at the blank line or the end.
 */
static int
header_next(const char *h, size_t len, size_t *i, const char **name,
    size_t *namelen, const char **value, size_t *valuelen)
{
	size_t	 start, colon, end;

	while (*i < len) {
		start = *i;
		if (h[start] == '\r' || h[start] == '\n')
			return 0;
		for (end = start; end < len; end++)
			if (h[end] == '\n' && (end + 1 >= len ||
			    (h[end + 1] != ' ' && h[end + 1] != '\t')))
				break;
		*i = end + 1;
		for (colon = start; colon < end && h[colon] != ':'; colon++)
			;
		if (colon == end)
			continue;
		*name = h + start;
		*namelen = colon - start;
		*value = h + colon + 1;
		*valuelen = end - colon - 1;
		return 1;
	}
	return 0;
}

/* Whether a header block has a field name whose value holds value. */
static int
header_matches(const char *h, size_t len, const char *name,
    const char *value)
{
	const char	*fname, *fvalue;
	size_t		 i = 0, flen, vlen, nlen = strlen(name);

	while (header_next(h, len, &i, &fname, &flen, &fvalue, &vlen))
		if (flen == nlen && strncasecmp(fname, name, nlen) == 0 &&
		    field_matches(name, fvalue, vlen, value))
			return 1;
	return 0;
}

/*
 * A blob, read-only.  The migrations run before store_blob_init()
 * opens the directory, so until then by its path.
 */
static int
header_blob_open(const char *hash)
{
	char	 path[sizeof(STORE_BLOB_DIR) + STORE_HASH_HEX + 1];

	if (store_blob_dir() != -1)
		return store_blob_open(hash);
	if (strlen(hash) != STORE_HASH_HEX ||
	    strspn(hash, "0123456789abcdef") != STORE_HASH_HEX) {
		errno = EINVAL;
		return -1;
	}
	(void)snprintf(path, sizeof(path), "%s/%s", STORE_BLOB_DIR, hash);
	return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

/*
 * The header block of a message row into b: prefix, then the header
 * of the blob (only the header bytes are read).  -1 with errno if the
 * blob cannot be read, or with b->err set if memory ran out.
 */
static int
header_read(const char *blob, const void *prefix, int prefixlen,
    struct store_buf *b)
{
	char			 buf[SEARCH_HEADER_READ];
	const char		*e;
	ssize_t			 n;
	int			 fd, saved;

	if (prefixlen > 0)
		store_buf_add(b, (const char *)prefix, prefixlen);
	/*
	 * The row's blob, even when it is the skeleton of a message with
	 * parts cut out: only bodies of leaves are cut, so its header
	 * block is the message's, byte for byte.
	 */
	if ((fd = header_blob_open(blob)) == -1)
		return -1;
	while (b->len < MIME_MAX_HEADER) {
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		store_buf_add(b, buf, n);
		if (b->err)
			break;
		if (memmem(b->p, b->len, "\r\n\r\n", 4) != NULL ||
		    memmem(b->p, b->len, "\n\n", 2) != NULL)
			break;
	}
	close(fd);
	if (b->err)
		return -1;
	if (b->p != NULL && ((e = memmem(b->p, b->len, "\n\r\n", 3)) !=
	    NULL || (e = memmem(b->p, b->len, "\n\n", 2)) != NULL))
		b->len = e - b->p + 1;
	return 0;
}

/*
 * imap_header(blob, prefix, field, value): 1 if the message's header
 * (the prefix, then the blob's header block) has the field holding
 * value.
 */
static void
sql_imap_header(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct store_buf	 b;
	const char		*blob, *field, *value;
	const void		*prefix;
	int			 prefixlen, match = 0;

	(void)argc;
	blob = (const char *)sqlite3_value_text(argv[0]);
	field = (const char *)sqlite3_value_text(argv[2]);
	value = (const char *)sqlite3_value_text(argv[3]);
	if (blob == NULL || field == NULL || value == NULL) {
		sqlite3_result_int(ctx, 0);
		return;
	}
	prefix = sqlite3_value_blob(argv[1]);
	prefixlen = sqlite3_value_bytes(argv[1]);
	memset(&b, 0, sizeof(b));
	if (header_read(blob, prefix, prefixlen, &b) == -1) {
		if (!b.err)
			log_warn("%s/%s", STORE_BLOB_DIR, blob);
	} else if (b.p != NULL)
		match = header_matches(b.p, b.len, field, value);
	free(b.p);
	sqlite3_result_int(ctx, match);
}

/*
 * imap_address_fields(blob, prefix): what HEADER compares of every
 * address field of the message's header, made once at ingestion
 * (message_search.addresses, migration 4): for each field in order,
 * its name in lowercase, ':', its value as address_render() makes it,
 * and a NUL.  NULL if the blob cannot be read: SEARCH then reads the
 * header itself.
 */
static void
sql_address_fields(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct store_buf	 b, out;
	const char		*blob, *name, *fname, *fvalue;
	const void		*prefix;
	size_t			 i = 0, flen, vlen;
	int			 prefixlen;

	(void)argc;
	if ((blob = (const char *)sqlite3_value_text(argv[0])) == NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	prefix = sqlite3_value_blob(argv[1]);
	prefixlen = sqlite3_value_bytes(argv[1]);
	memset(&b, 0, sizeof(b));
	memset(&out, 0, sizeof(out));
	if (header_read(blob, prefix, prefixlen, &b) == -1) {
		if (b.err)
			sqlite3_result_error_nomem(ctx);
		else {
			log_warn("%s/%s", STORE_BLOB_DIR, blob);
			sqlite3_result_null(ctx);
		}
		free(b.p);
		return;
	}
	while (b.p != NULL &&
	    header_next(b.p, b.len, &i, &fname, &flen, &fvalue, &vlen)) {
		if ((name = address_field(fname, flen)) == NULL)
			continue;
		store_buf_str(&out, name);
		store_buf_add(&out, ":", 1);
		if (address_render(fvalue, vlen, &out) == -1)
			break;
		store_buf_add(&out, "", 1);
	}
	free(b.p);
	if (out.err)
		sqlite3_result_error_nomem(ctx);
	else if (out.len == 0)
		sqlite3_result_zeroblob(ctx, 0);
	else
		sqlite3_result_blob(ctx, out.p, out.len, SQLITE_TRANSIENT);
	free(out.p);
}

/*
 * imap_address_match(addresses, field, value): 1 if one of the fields
 * named field in imap_address_fields()'s addresses holds value, as
 * header_matches() would find it.
 */
static void
sql_address_match(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char	*p, *end, *nul, *field, *value;
	size_t		 flen, vlen;
	int		 match = 0;

	(void)argc;
	p = sqlite3_value_blob(argv[0]);
	end = p + sqlite3_value_bytes(argv[0]);
	field = (const char *)sqlite3_value_text(argv[1]);
	value = (const char *)sqlite3_value_text(argv[2]);
	if (p == NULL || field == NULL || value == NULL) {
		sqlite3_result_int(ctx, 0);
		return;
	}
	flen = strlen(field);
	vlen = strlen(value);
	for (; p < end && (nul = memchr(p, '\0', end - p)) != NULL;
	    p = nul + 1) {
		if ((size_t)(nul - p) <= flen || p[flen] != ':' ||
		    strncasecmp(p, field, flen) != 0)
			continue;
		if (ci_memmem(p + flen + 1, nul - p - flen - 1, value,
		    vlen)) {
			match = 1;
			break;
		}
	}
	sqlite3_result_int(ctx, match);
}

/*
 * imap_contains(text, value): 1 if text holds value (ci_memmem()), 0
 * if it does not or is NULL, so that NOT has the messages without it.
 */
static void
sql_contains(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char	*hay, *value;

	(void)argc;
	hay = (const char *)sqlite3_value_text(argv[0]);
	value = (const char *)sqlite3_value_text(argv[1]);
	sqlite3_result_int(ctx, hay != NULL && value != NULL &&
	    ci_memmem(hay, sqlite3_value_bytes(argv[0]), value,
	    sqlite3_value_bytes(argv[1])));
}

/*
 * The functions SEARCH and migration 4's triggers call: before the
 * migrations run.
 */
void
store_search_init(void)
{
	static const struct {
		const char	*name;
		int		 nargs;
		void		(*fn)(sqlite3_context *, int,
				    sqlite3_value **);
	} fns[] = {
		{ "imap_header", 4, sql_imap_header },
		{ "imap_address_fields", 2, sql_address_fields },
		{ "imap_address_match", 3, sql_address_match },
		{ "imap_contains", 2, sql_contains },
	};
	size_t	 i;

	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		if (sqlite3_create_function(store_db, fns[i].name,
		    fns[i].nargs, SQLITE_UTF8, NULL, fns[i].fn, NULL,
		    NULL) != SQLITE_OK)
			fatalx("%s: %s: %s", STORE_DB_PATH, fns[i].name,
			    sqlite3_errmsg(store_db));
}

static void
param_int(struct store_search *s, int64_t v)
{
	struct store_search_param	*p;

	if (s->nparams == STORE_SEARCH_PARAMS) {
		s->err = 1;
		return;
	}
	if ((p = reallocarray(s->params, s->nparams + 1,
	    sizeof(*p))) == NULL) {
		s->err = 1;
		return;
	}
	s->params = p;
	p[s->nparams].text = 0;
	p[s->nparams].i = v;
	p[s->nparams].s = NULL;
	s->nparams++;
	store_buf_str(&s->sql, "?");
}

static void
param_text(struct store_search *s, char *v)
{
	struct store_search_param	*p;

	if (v == NULL || s->nparams == STORE_SEARCH_PARAMS ||
	    (p = reallocarray(s->params, s->nparams + 1,
	    sizeof(*p))) == NULL) {
		free(v);
		s->err = 1;
		return;
	}
	s->params = p;
	p[s->nparams].text = 1;
	p[s->nparams].s = v;
	s->nparams++;
	store_buf_str(&s->sql, "?");
}

/* "%value%" with LIKE's own characters escaped by '\'. */
static char *
like_pattern(const char *v)
{
	struct store_buf	 b;

	memset(&b, 0, sizeof(b));
	store_buf_add(&b, "%", 1);
	for (; *v != '\0'; v++) {
		if (*v == '%' || *v == '_' || *v == '\\')
			store_buf_add(&b, "\\", 1);
		store_buf_add(&b, v, 1);
	}
	store_buf_add(&b, "%", 1);
	return store_buf_finish(&b);
}

/* An FTS5 query of one phrase, optionally limited to one column. */
static char *
fts_phrase(const char *column, const char *v)
{
	struct store_buf	 b;

	memset(&b, 0, sizeof(b));
	if (column != NULL) {
		store_buf_str(&b, column);
		store_buf_str(&b, " : ");
	}
	store_buf_add(&b, "\"", 1);
	for (; *v != '\0'; v++) {
		if (*v == '"')
			store_buf_add(&b, "\"", 1);
		store_buf_add(&b, v, 1);
	}
	store_buf_add(&b, "\"", 1);
	return store_buf_finish(&b);
}

/* Characters (not bytes) of a UTF-8 string, up to 3. */
static int
trigram_ok(const char *v)
{
	int	 n = 0;

	for (; *v != '\0' && n < 3; v++)
		if (((unsigned char)*v & 0xc0) != 0x80)
			n++;
	return n >= 3;
}

static void	 search_fts_like(struct store_search *, const char *,
		    const char *);

/*
 * The index's rows holding v in column (NULL: any column).  TEXT is
 * every column: header holds every field of the message and of its
 * parts, addresses their addresses as HEADER compares them.
 *
 * The indexer keeps a removed message's row, and sees a message row
 * only once it has committed, so a row of the index may be of a
 * message gone whose id another has now.  So only rows indexed from
 * the blob and prefix their message has are taken: checked for the
 * mailbox's messages that match, fewer than the index's matches in
 * every account.
 */
static void
search_fts(struct store_search *s, const char *column, const char *v)
{
	store_buf_str(&s->sql, "(mm.message_id IN (SELECT rowid FROM "
	    "fts.messages_fts WHERE ");
	if (trigram_ok(v)) {
		store_buf_str(&s->sql, "messages_fts MATCH ");
		param_text(s, fts_phrase(column, v));
	} else
		search_fts_like(s, column, v);
	store_buf_str(&s->sql, ")");
	s->messages = 1;
	store_buf_str(&s->sql, " AND EXISTS (SELECT 1 FROM fts.docs d "
	    "WHERE d.id = mm.message_id AND d.blob = m.blob AND "
	    "d.prefix = CAST(m.prefix AS BLOB)))");
}

/* The rows holding v, shorter than a trigram, in column (NULL: any). */
static void
search_fts_like(struct store_search *s, const char *column, const char *v)
{
	static const char *const all[] = { "header", "addresses", "body" };
	size_t	 i;

	store_buf_str(&s->sql, "(");
	for (i = 0; i < 3; i++) {
		if (column != NULL && strcmp(column, all[i]) != 0)
			continue;
		if (column == NULL && i > 0)
			store_buf_str(&s->sql, " OR ");
		store_buf_str(&s->sql, "messages_fts.");
		store_buf_str(&s->sql, all[i]);
		store_buf_str(&s->sql, " LIKE ");
		param_text(s, like_pattern(v));
		store_buf_str(&s->sql, " ESCAPE '\\'");
	}
	store_buf_str(&s->sql, ")");
}

/*
 * SUBJECT and the address fields from message_search, the rest from
 * the header itself.  A message_search row is made with each message
 * (migration 4's trigger); without one, or without its addresses (the
 * blob could not be read then), the message's own row serves.
 */
static void
search_header(struct store_search *s, const char *field, const char *v)
{
	if (strcasecmp(field, "subject") == 0) {
		s->fields = 1;
		store_buf_str(&s->sql, "imap_contains(CASE WHEN ms.message_id "
		    "IS NULL THEN (SELECT subject FROM messages WHERE id = "
		    "mm.message_id) ELSE ms.subject END, ");
		param_text(s, strdup(v));
		store_buf_str(&s->sql, ")");
		return;
	}
	if (field_is_address(field)) {
		s->fields = 1;
		store_buf_str(&s->sql, "(CASE WHEN ms.addresses IS NULL "
		    "THEN (SELECT imap_header(blob, prefix, ");
		param_text(s, strdup(field));
		store_buf_str(&s->sql, ", ");
		param_text(s, strdup(v));
		store_buf_str(&s->sql, ") FROM messages WHERE id = "
		    "mm.message_id) ELSE imap_address_match(ms.addresses, ");
		param_text(s, strdup(field));
		store_buf_str(&s->sql, ", ");
		param_text(s, strdup(v));
		store_buf_str(&s->sql, ") END)");
		return;
	}
	s->messages = 1;
	store_buf_str(&s->sql, "imap_header(m.blob, m.prefix, ");
	param_text(s, strdup(field));
	store_buf_str(&s->sql, ", ");
	param_text(s, strdup(v));
	store_buf_str(&s->sql, ")");
}

/*
 * A flag set (or, negated, not set).  The system flags are bits of the
 * placement; "flags & 1 = 0" is spelt as mailbox_messages_unseen's
 * condition so that UNSEEN reads that index.
 */
static void
search_keyword(struct store_search *s, const char *flag, int negated)
{
	char	 kw[STORE_KEYWORD_LEN + 1];
	int	 bit;

	if (store_keyword_from_imap(flag, kw, sizeof(kw)) != 1) {
		/* Never recent, and no message has a non-flag. */
		store_buf_str(&s->sql, negated ? "1" : "0");
		return;
	}
	if ((bit = store_keyword_flag(kw)) != 0) {
		store_buf_printf(&s->sql, "mm.flags & %d %s 0", bit,
		    negated ? "=" : "!=");
		return;
	}
	store_buf_str(&s->sql, negated ? "NOT EXISTS" : "EXISTS");
	store_buf_str(&s->sql, " (SELECT 1 FROM keywords k "
	    "WHERE k.message_id = mm.message_id AND k.keyword = ");
	param_text(s, strdup(kw));
	store_buf_str(&s->sql, ")");
}

static int64_t
clamp(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* UID ranges, outside search_node()'s frame: it recurses. */
static int
search_uids(struct msg_in *m, struct store_search *s)
{
	struct store_ranges	 r;
	uint32_t		 i;

	if (store_ranges_get(m, &r) == -1)
		return -1;
	if (r.n == 0) {
		store_buf_str(&s->sql, "0");
		return 0;
	}
	store_buf_str(&s->sql, "(");
	for (i = 0; i < r.n; i++) {
		if (i > 0)
			store_buf_str(&s->sql, " OR ");
		store_buf_str(&s->sql, "mm.uid BETWEEN ");
		param_int(s, r.lo[i]);
		store_buf_str(&s->sql, " AND ");
		param_int(s, r.hi[i]);
	}
	store_buf_str(&s->sql, ")");
	return 0;
}

/*
 * One node and what is under it.  -1 if the program is malformed, or
 * with s->err set if it is more than we take (OR chains nest without
 * parentheses, so depth is bounded here, not by imapd's parser).  An
 * AND in an AND and an OR in an OR add no parentheses: SQLite's parser
 * takes only some 40 levels of them.
 */
static int
search_node(struct msg_in *m, struct store_search *s, int depth, int parent)
{
	const char		*a, *b;
	uint64_t		 u64;
	int64_t			 i64;
	uint32_t		 u32, i;
	uint8_t			 op;
	const char		*col;

	if (depth > SEARCH_DEPTH_MAX) {
		s->err = 1;
		return -1;
	}
	if (msg_get_u8(m, &op) == -1)
		return -1;
	switch (op) {
	case SK_ALL:
		store_buf_str(&s->sql, "1");
		break;
	case SK_AND:
		if (msg_get_u32(m, &u32) == -1)
			return -1;
		if (u32 == 0) {
			store_buf_str(&s->sql, "1");
			break;
		}
		if (parent != SK_AND)
			store_buf_str(&s->sql, "(");
		for (i = 0; i < u32; i++) {
			if (i > 0)
				store_buf_str(&s->sql, " AND ");
			if (search_node(m, s, depth + 1, SK_AND) == -1)
				return -1;
		}
		if (parent != SK_AND)
			store_buf_str(&s->sql, ")");
		break;
	case SK_OR:
		if (parent != SK_OR)
			store_buf_str(&s->sql, "(");
		if (search_node(m, s, depth + 1, SK_OR) == -1)
			return -1;
		store_buf_str(&s->sql, " OR ");
		if (search_node(m, s, depth + 1, SK_OR) == -1)
			return -1;
		if (parent != SK_OR)
			store_buf_str(&s->sql, ")");
		break;
	case SK_NOT:
		/* NOT NOT x is x. */
		for (i = 1; m->left > 0 && m->p[0] == SK_NOT; i++) {
			m->p++;
			m->left--;
		}
		if (i % 2 == 0)
			return search_node(m, s, depth + i, parent);
		if (m->left > 0 && m->p[0] == SK_KEYWORD) {
			m->p++;
			m->left--;
			if (msg_get_string(m, &a) == -1)
				return -1;
			search_keyword(s, a, 1);
			break;
		}
		store_buf_str(&s->sql, "NOT (");
		if (search_node(m, s, depth + i, SK_NOT) == -1)
			return -1;
		store_buf_str(&s->sql, ")");
		break;
	case SK_UIDS:
		if (search_uids(m, s) == -1)
			return -1;
		break;
	case SK_KEYWORD:
		if (msg_get_string(m, &a) == -1)
			return -1;
		search_keyword(s, a, 0);
		break;
	case SK_HEADER:
		if (msg_get_string(m, &a) == -1 ||
		    msg_get_string(m, &b) == -1)
			return -1;
		search_header(s, a, b);
		break;
	case SK_BODY:
	case SK_TEXT:
		if (msg_get_string(m, &a) == -1)
			return -1;
		search_fts(s, op == SK_BODY ? "body" : NULL, a);
		break;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		if (msg_get_i64(m, &i64) == -1)
			return -1;
		/*
		 * SENT* take the Date field's date as written, its time
		 * and zone disregarded (RFC 9051 6.4.4): compare days.
		 */
		if (op >= SK_SENTBEFORE) {
			s->messages = 1;
			col = "coalesce(m.sent_day, m.received / 86400)";
			i64 = day_number(i64);
		} else
			col = "mm.received";
		store_buf_str(&s->sql, "(");
		store_buf_str(&s->sql, col);
		if (op == SK_BEFORE || op == SK_SENTBEFORE)
			store_buf_str(&s->sql, " < ");
		else
			store_buf_str(&s->sql, " >= ");
		param_int(s, i64);
		if (op == SK_ON || op == SK_SENTON) {
			store_buf_str(&s->sql, " AND ");
			store_buf_str(&s->sql, col);
			store_buf_str(&s->sql, " < ");
			param_int(s, i64 + (op == SK_SENTON ? 1 : 86400));
		}
		store_buf_str(&s->sql, ")");
		break;
	case SK_LARGER:
	case SK_SMALLER:
		if (msg_get_u64(m, &u64) == -1)
			return -1;
		s->messages = 1;
		store_buf_str(&s->sql, op == SK_LARGER ? "m.size > " :
		    "m.size < ");
		param_int(s, clamp(u64));
		break;
	case SK_MODSEQ:
		if (msg_get_u64(m, &u64) == -1)
			return -1;
		store_buf_str(&s->sql, "mm.modseq >= ");
		param_int(s, clamp(u64));
		break;
	case SK_OLDER:
	case SK_YOUNGER:
		if (msg_get_u32(m, &u32) == -1)
			return -1;
		store_buf_str(&s->sql, op == SK_OLDER ? "mm.received <= " :
		    "mm.received >= ");
		param_int(s, (int64_t)s->now - u32);
		break;
	default:
		return -1;
	}
	if (s->sql.err)
		s->err = 1;
	return s->err ? -1 : 0;
}

/*
 * Reads a search program and appends it to s->sql as one boolean
 * expression over mm (mailbox_messages) and m (messages), its values
 * kept for store_search_bind().  -1 if the program is malformed, or
 * with s->err set if it is too deep or memory ran out.
 */
int
store_search_parse(struct msg_in *m, struct store_search *s)
{
	s->now = time(NULL);
	store_buf_str(&s->sql, "(");
	if (search_node(m, s, 0, -1) == -1)
		return -1;
	store_buf_str(&s->sql, ")");
	if (s->sql.err)
		s->err = 1;
	return s->err ? -1 : 0;
}

/*
 * The joins after "FROM mailbox_messages mm " that the program needs:
 * messages m if it (or the caller, messages) reads the message's row,
 * message_search ms if it reads that.
 */
void
store_search_join(struct store_buf *sql, const struct store_search *s,
    int messages)
{
	if (s->messages || messages)
		store_buf_str(sql, "JOIN messages m ON m.id = mm.message_id ");
	if (s->fields)
		store_buf_str(sql, "LEFT JOIN message_search ms "
		    "ON ms.message_id = mm.message_id ");
}

int
store_search_bind(sqlite3_stmt *st, int first, const struct store_search *s)
{
	size_t	 i;
	int	 rc;

	for (i = 0; i < s->nparams; i++) {
		if (s->params[i].text)
			rc = sqlite3_bind_text(st, first + i, s->params[i].s,
			    -1, SQLITE_STATIC);
		else
			rc = sqlite3_bind_int64(st, first + i,
			    s->params[i].i);
		if (rc != SQLITE_OK)
			return -1;
	}
	return 0;
}

void
store_search_free(struct store_search *s)
{
	size_t	 i;

	for (i = 0; i < s->nparams; i++)
		free(s->params[i].s);
	free(s->params);
	free(s->sql.p);
	memset(s, 0, sizeof(*s));
}

/* RFC 5256 and RFC 5957 sort criteria as an ORDER BY list. */
static int
sort_order(const char *criteria, struct store_buf *b)
{
	static const struct {
		const char	*key;
		const char	*sql;
	} keys[] = {
		{ "ARRIVAL",	"m.received" },
		{ "CC",		"coalesce(m.sort_cc, '') COLLATE NOCASE" },
		{ "DATE",	"coalesce(m.sent_ts, m.received)" },
		{ "FROM",	"coalesce(m.sort_from, '') COLLATE NOCASE" },
		{ "SIZE",	"m.size" },
		{ "SUBJECT",	"coalesce(m.sort_subject, '') COLLATE NOCASE" },
		{ "TO",		"coalesce(m.sort_to, '') COLLATE NOCASE" },
		{ "DISPLAYFROM", "coalesce(m.sort_display_from, '') "
		    "COLLATE NOCASE" },
		{ "DISPLAYTO",	"coalesce(m.sort_display_to, '') "
		    "COLLATE NOCASE" },
	};
	char	 word[16];
	size_t	 len, i, nkeys = 0;
	int	 reverse = 0;

	while (*criteria != '\0') {
		if (*criteria == ' ') {
			criteria++;
			continue;
		}
		len = strcspn(criteria, " ");
		if (len >= sizeof(word))
			return -1;
		memcpy(word, criteria, len);
		word[len] = '\0';
		criteria += len;
		if (strcasecmp(word, "REVERSE") == 0) {
			reverse = 1;
			continue;
		}
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcasecmp(word, keys[i].key) == 0)
				break;
		if (i == sizeof(keys) / sizeof(keys[0]) ||
		    ++nkeys > SEARCH_SORT_KEYS)
			return -1;
		store_buf_str(b, keys[i].sql);
		store_buf_str(b, reverse ? " DESC, " : ", ");
		reverse = 0;
	}
	store_buf_str(b, "mm.uid");
	return b->err ? -1 : 0;
}

/*
 * MSG_SEARCH: u64 mailbox, u8 sort, s sort keys, program ->
 * SEARCH_UIDS ..., SEARCH_END: u64 highest modseq of the matches.
 */
void
store_imap_search(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct msg_out		 out;
	struct store_search	 s;
	struct store_buf	 sql;
	sqlite3_stmt		*st;
	const char		*criteria;
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint64_t		 mailbox;
	int64_t			 highest = 0, modseq;
	size_t			 n = 0, i;
	uint8_t			 sort;
	int			 rc;

	(void)store_imap_account(peer, imsg);
	memset(&s, 0, sizeof(s));
	memset(&sql, 0, sizeof(sql));
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 || msg_get_u8(&m, &sort) == -1 ||
	    msg_get_string(&m, &criteria) == -1 ||
	    (store_search_parse(&m, &s) == -1 && !s.err) ||
	    (!s.err && msg_end(&m) == -1))
		fatalx("malformed %s from imapd",
		    imsg_type_name(imsg->hdr.type));
	if (s.err) {
		log_warnx("%s: a search program too deep or too large",
		    __func__);
		goto end;
	}
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, NULL))
		goto end;
	/* messages only when the program or the order needs it. */
	store_buf_str(&sql, "SELECT mm.uid, mm.modseq FROM mailbox_messages "
	    "mm ");
	store_search_join(&sql, &s, sort);
	/* "uid > 0" for mailbox_messages_search (migration 4). */
	store_buf_str(&sql, "WHERE mm.mailbox_id = ?1 AND mm.uid > 0 AND ");
	store_buf_add(&sql, s.sql.p, s.sql.len);
	store_buf_str(&sql, " ORDER BY ");
	if (sort) {
		if (sort_order(criteria, &sql) == -1) {
			log_warnx("%s: sort criteria %s", __func__, criteria);
			goto end;
		}
	} else
		store_buf_str(&sql, "mm.uid");
	if (sql.err || (st = store_stmt_text(sql.p)) == NULL)
		goto end;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    store_search_bind(st, 2, &s) == -1) {
		store_stmt_text_done(st);
		goto end;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uids[n++] = sqlite3_column_int64(st, 0);
		if ((modseq = sqlite3_column_int64(st, 1)) > highest)
			highest = modseq;
		if (n == IMAP_UIDS_PER_MSG) {
			msg_create(&out, IMSG_STORE_SEARCH_UIDS,
			    imsg->hdr.peerid, -1);
			msg_add_u32(&out, n);
			for (i = 0; i < n; i++)
				msg_add_u32(&out, uids[i]);
			if (proc_send(PROC_IMAPD, &out) == -1)
				log_warn("%s: uids to imapd", __func__);
			n = 0;
		}
	}
	if (rc != SQLITE_DONE)
		log_warnx("%s: search: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	store_stmt_text_done(st);
	if (n > 0) {
		msg_create(&out, IMSG_STORE_SEARCH_UIDS, imsg->hdr.peerid, -1);
		msg_add_u32(&out, n);
		for (i = 0; i < n; i++)
			msg_add_u32(&out, uids[i]);
		if (proc_send(PROC_IMAPD, &out) == -1)
			log_warn("%s: uids to imapd", __func__);
	}
 end:
	store_search_free(&s);
	free(sql.p);
	msg_create(&out, IMSG_STORE_SEARCH_END, imsg->hdr.peerid, -1);
	msg_add_u64(&out, highest);
	if (proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: end to imapd", __func__);
}
