/*
 * The IMAP command grammar into structs (see imap_parse.h).
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap_parse.h"

struct lexer {
	const unsigned char	*p;
	const unsigned char	*end;
	int			 ntok;
	char			*err;
	size_t			 errlen;
};

static void
lex_error(struct lexer *lx, const char *msg)
{
	if (lx->err != NULL && lx->err[0] == '\0')
		(void)strlcpy(lx->err, msg, lx->errlen);
}

static int
is_atom_char(int c)
{
	if (c <= 0x20 || c == 0x7f)
		return 0;
	switch (c) {
	case '(':
	case ')':
	case '{':
	case '"':
		return 0;
	}
	return 1;
}

static int
tok_set(struct imap_tok *t, enum imap_tok_type type, const void *p,
    size_t len)
{
	memset(t, 0, sizeof(*t));
	t->type = type;
	if ((t->s = malloc(len + 1)) == NULL)
		return -1;
	memcpy(t->s, p, len);
	t->s[len] = '\0';
	t->len = len;
	return 0;
}

void
imap_tok_free(struct imap_tok *t)
{
	size_t	 i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nitems; i++)
		imap_tok_free(&t->items[i]);
	free(t->items);
	free(t->s);
	t->items = NULL;
	t->nitems = 0;
	t->s = NULL;
}

/* {n} or {n+} (or ~{n}) at p; returns the number of bytes of the marker. */
static int
lex_literal_marker(const unsigned char *p, const unsigned char *end,
    uint64_t *n, int *nonsync)
{
	const unsigned char	*q = p + 1;
	uint64_t		 v = 0;
	int			 digits = 0;

	while (q < end && isdigit(*q)) {
		if (++digits > IMAP_LITERAL_DIGITS || v > UINT64_MAX / 10)
			return -1;
		v = v * 10 + (*q - '0');
		q++;
	}
	if (digits == 0 || q >= end)
		return -1;
	*nonsync = 0;
	if (*q == '+' || *q == '-') {
		*nonsync = 1;
		q++;
	}
	if (q >= end || *q != '}')
		return -1;
	*n = v;
	return q + 1 - p;
}

static int	lex_list(struct lexer *, struct imap_tok *, int, int);

static int
lex_token(struct lexer *lx, struct imap_tok *t, int depth)
{
	const unsigned char	*s = lx->p, *q;
	uint64_t		 n;
	char			*buf;
	size_t			 len;
	int			 bracket, binary = 0, nonsync, m;

	if (++lx->ntok > IMAP_TOKENS_MAX) {
		lex_error(lx, "Too many arguments");
		return -1;
	}
	if (*s == '(') {
		lx->p++;
		return lex_list(lx, t, depth + 1, ')');
	}
	if (*s == '"') {
		if ((buf = malloc(lx->end - s)) == NULL) {
			lex_error(lx, "Out of memory");
			return -1;
		}
		len = 0;
		for (q = s + 1; q < lx->end && *q != '"'; q++) {
			if (*q == '\r' || *q == '\n' || *q == '\0')
				break;
			if (*q == '\\') {
				if (q + 1 >= lx->end ||
				    (q[1] != '"' && q[1] != '\\'))
					break;
				q++;
			}
			buf[len++] = *q;
		}
		if (q >= lx->end || *q != '"') {
			free(buf);
			lex_error(lx, "Bad quoted string");
			return -1;
		}
		memset(t, 0, sizeof(*t));
		t->type = TOK_QUOTED;
		buf[len] = '\0';
		t->s = buf;
		t->len = len;
		lx->p = q + 1;
		return 0;
	}
	if (*s == '~' && s + 1 < lx->end && s[1] == '{') {
		binary = 1;
		s++;
	}
	if (*s == '{') {
		if ((m = lex_literal_marker(s, lx->end, &n, &nonsync)) == -1) {
			lex_error(lx, "Bad literal");
			return -1;
		}
		q = s + m;
		if (lx->end - q < 2 || q[0] != '\r' || q[1] != '\n' ||
		    (uint64_t)(lx->end - q - 2) < n) {
			lex_error(lx, "Bad literal");
			return -1;
		}
		q += 2;
		if (tok_set(t, TOK_LITERAL, q, n) == -1) {
			lex_error(lx, "Out of memory");
			return -1;
		}
		t->binary = binary;
		lx->p = q + n;
		return 0;
	}
	bracket = 0;
	for (q = s; q < lx->end; q++) {
		if (*q == '[') {
			bracket++;
			continue;
		}
		if (bracket > 0) {
			if (*q == ']')
				bracket--;
			else if (*q == '\r' || *q == '\n' || *q == '\0')
				break;
			continue;
		}
		if (*q == '<' && q > s && q[-1] == ']') {
			while (q < lx->end && *q != '>' && is_atom_char(*q))
				q++;
			if (q < lx->end && *q == '>')
				continue;
			break;
		}
		if (!is_atom_char(*q))
			break;
	}
	if (bracket > 0 || q == s) {
		lex_error(lx, "Bad argument");
		return -1;
	}
	if (tok_set(t, TOK_ATOM, s, q - s) == -1) {
		lex_error(lx, "Out of memory");
		return -1;
	}
	lx->p = q;
	return 0;
}

/* Items separated by spaces up to close (')' or the end when 0). */
static int
lex_list(struct lexer *lx, struct imap_tok *list, int depth, int close)
{
	struct imap_tok	*items;
	size_t		 cap = 0;

	memset(list, 0, sizeof(*list));
	list->type = TOK_LIST;
	if (depth > IMAP_PAREN_DEPTH) {
		lex_error(lx, "Too deeply nested");
		return -1;
	}
	for (;;) {
		if (close == ')' && lx->p < lx->end && *lx->p == ')') {
			lx->p++;
			return 0;
		}
		if (lx->p >= lx->end) {
			if (close == 0)
				return 0;
			lex_error(lx, "Missing )");
			return -1;
		}
		if (list->nitems > 0) {
			if (*lx->p != ' ') {
				lex_error(lx, "Missing space");
				return -1;
			}
			lx->p++;
			if (lx->p >= lx->end && close == 0) {
				lex_error(lx, "Trailing space");
				return -1;
			}
		}
		if (list->nitems == cap) {
			cap = cap ? cap * 2 : 4;
			if ((items = reallocarray(list->items, cap,
			    sizeof(*items))) == NULL) {
				lex_error(lx, "Out of memory");
				return -1;
			}
			list->items = items;
		}
		if (lx->p >= lx->end) {
			lex_error(lx, "Missing )");
			return -1;
		}
		memset(&list->items[list->nitems], 0, sizeof(*items));
		if (lex_token(lx, &list->items[list->nitems], depth) == -1) {
			imap_tok_free(&list->items[list->nitems]);
			return -1;
		}
		list->nitems++;
	}
}

int
imap_parse_args(const char *buf, size_t len, struct imap_tok *args,
    char *err, size_t errlen)
{
	struct lexer	 lx;

	lx.p = (const unsigned char *)buf;
	lx.end = lx.p + len;
	lx.ntok = 0;
	lx.err = err;
	lx.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (lex_list(&lx, args, 0, 0) == -1) {
		imap_tok_free(args);
		return -1;
	}
	return 0;
}

/* The tag of a command line, for a reply to a command not parsed. */
int
imap_parse_tag(const char *buf, size_t len, char *tag, size_t taglen)
{
	size_t	 i;

	for (i = 0; i < len && buf[i] != ' '; i++) {
		if (!is_atom_char((unsigned char)buf[i]) || buf[i] == '+' ||
		    buf[i] == '*' || buf[i] == '%' || buf[i] == '\\' ||
		    i >= IMAP_TAG_MAX || i + 1 >= taglen)
			return -1;
		tag[i] = buf[i];
	}
	if (i == 0)
		return -1;
	tag[i] = '\0';
	return 0;
}

int
imap_parse(const char *buf, size_t len, struct imap_cmd *cmd, char *err,
    size_t errlen)
{
	size_t	 i, n, start;

	memset(cmd, 0, sizeof(*cmd));
	cmd->args.type = TOK_LIST;
	if (errlen > 0)
		err[0] = '\0';
	if (imap_parse_tag(buf, len, cmd->tag, sizeof(cmd->tag)) == -1) {
		cmd->tag[0] = '\0';
		(void)strlcpy(err, "Bad tag", errlen);
		return -1;
	}
	i = strlen(cmd->tag);
	for (;;) {
		if (i >= len || buf[i] != ' ') {
			(void)strlcpy(err, "Missing command", errlen);
			return -1;
		}
		start = ++i;
		for (n = 0; i < len && isalnum((unsigned char)buf[i]); i++)
			if (n < IMAP_VERB_MAX)
				cmd->verb[n++] = toupper((unsigned char)buf[i]);
		if (i == start || i - start > IMAP_VERB_MAX ||
		    (i < len && buf[i] != ' ')) {
			cmd->verb[0] = '\0';
			(void)strlcpy(err, "Bad command", errlen);
			return -1;
		}
		cmd->verb[n] = '\0';
		if (cmd->uid || strcmp(cmd->verb, "UID") != 0)
			break;
		cmd->uid = 1;
	}
	if (cmd->uid && strcmp(cmd->verb, "UID") == 0) {
		(void)strlcpy(err, "Bad command", errlen);
		return -1;
	}
	if (i < len)
		i++;
	else
		return 0;
	if (i >= len) {
		(void)strlcpy(err, "Trailing space", errlen);
		return -1;
	}
	return imap_parse_args(buf + i, len - i, &cmd->args, err, errlen);
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	imap_tok_free(&cmd->args);
}

/*
 * Whether a line (without its CR LF) ends with a literal's marker:
 * {n}, {n+} or {n-}, with ~ before it for literal8.
 */
int
imap_literal_at_end(const char *line, size_t len, uint64_t *n,
    int *nonsync, int *binary)
{
	const unsigned char	*p = (const unsigned char *)line;
	size_t			 i;
	int			 m;

	if (len < 3 || p[len - 1] != '}')
		return 0;
	for (i = len - 1; i > 0 && p[i - 1] != '{'; i--)
		if (len - i > IMAP_LITERAL_DIGITS + 2)
			return 0;
	if (i == 0)
		return 0;
	i--;
	m = lex_literal_marker(p + i, p + len, n, nonsync);
	if (m == -1 || i + m != len)
		return 0;
	*binary = i > 0 && p[i - 1] == '~';
	return 1;
}

/* --- small values ------------------------------------------------------ */

int
imap_tok_is_astring(const struct imap_tok *t)
{
	return t->type != TOK_LIST;
}

int
imap_tok_is_atom(const struct imap_tok *t, const char *name)
{
	return t->type == TOK_ATOM && strcasecmp(t->s, name) == 0;
}

int
imap_tok_number64(const struct imap_tok *t, uint64_t *v)
{
	const char	*p;
	uint64_t	 n = 0;

	if (t->type != TOK_ATOM || t->len == 0 || t->len > 20)
		return -1;
	for (p = t->s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		if (n > (UINT64_MAX - (*p - '0')) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	*v = n;
	return 0;
}

int
imap_tok_number(const struct imap_tok *t, uint32_t *v)
{
	uint64_t	 n;

	if (imap_tok_number64(t, &n) == -1 || n > UINT32_MAX)
		return -1;
	*v = n;
	return 0;
}

static int
parse_u32(const char **pp, uint32_t *v)
{
	const char	*p = *pp;
	uint64_t	 n = 0;

	if (*p == '*') {
		*v = UINT32_MAX;
		*pp = p + 1;
		return 0;
	}
	if (!isdigit((unsigned char)*p) || *p == '0')
		return -1;
	while (isdigit((unsigned char)*p)) {
		n = n * 10 + (*p++ - '0');
		if (n > UINT32_MAX)
			return -1;
	}
	*v = n;
	*pp = p;
	return 0;
}

void
imap_seqset_free(struct imap_seqset *set)
{
	free(set->r);
	memset(set, 0, sizeof(*set));
}

int
imap_parse_seqset(const char *s, struct imap_seqset *set)
{
	struct imap_range	*r;
	size_t			 cap = 0;
	uint32_t		 a, b;

	memset(set, 0, sizeof(*set));
	if (strcmp(s, "$") == 0) {
		set->saved = 1;
		return 0;
	}
	for (;;) {
		if (parse_u32(&s, &a) == -1)
			goto bad;
		b = a;
		if (*s == ':') {
			s++;
			if (parse_u32(&s, &b) == -1)
				goto bad;
		}
		if (set->n == cap) {
			if (cap >= IMAP_SEQSET_MAX)
				goto bad;
			cap = cap ? cap * 2 : 4;
			if ((r = reallocarray(set->r, cap, sizeof(*r))) == NULL)
				goto bad;
			set->r = r;
		}
		set->r[set->n].lo = a < b ? a : b;
		set->r[set->n].hi = a < b ? b : a;
		set->n++;
		if (*s == '\0')
			return 0;
		if (*s++ != ',')
			goto bad;
	}
 bad:
	imap_seqset_free(set);
	return -1;
}

int
imap_flag_valid(const struct imap_tok *t, int allow_wild)
{
	const char	*p = t->s;

	if (t->type != TOK_ATOM || t->len == 0 || t->len > IMAP_FLAG_MAX)
		return 0;
	if (*p == '\\') {
		p++;
		if (allow_wild && strcmp(p, "*") == 0)
			return 1;
		if (*p == '\0')
			return 0;
	}
	for (; *p; p++)
		if (*p == '[' || *p == ']' || *p == '%' || *p == '*' ||
		    *p == '\\' || (unsigned char)*p > 0x7e)
			return 0;
	return 1;
}

/* A flag list "(\Seen $x)", or a single flag, into "\Seen $x". */
int
imap_parse_flags(const struct imap_tok *t, char *out, size_t outlen,
    int allow_wild)
{
	const struct imap_tok	*items = t;
	size_t			 n = 1, i;

	out[0] = '\0';
	if (t->type == TOK_LIST) {
		items = t->items;
		n = t->nitems;
	}
	if (n > IMAP_FLAGS_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		if (!imap_flag_valid(&items[i], allow_wild))
			return -1;
		if ((i > 0 && strlcat(out, " ", outlen) >= outlen) ||
		    strlcat(out, items[i].s, outlen) >= outlen)
			return -1;
	}
	return 0;
}

static const char *months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static int
parse_day_month_year(const char **pp, struct tm *tm)
{
	const char	*p = *pp;
	int		 day = 0, i, year = 0;

	if (*p == ' ')
		p++;
	for (i = 0; i < 2 && isdigit((unsigned char)*p); i++)
		day = day * 10 + (*p++ - '0');
	if (i == 0 || day < 1 || day > 31 || *p++ != '-')
		return -1;
	for (i = 0; i < 12; i++)
		if (strncasecmp(p, months[i], 3) == 0)
			break;
	if (i == 12)
		return -1;
	p += 3;
	tm->tm_mon = i;
	if (*p++ != '-')
		return -1;
	for (i = 0; i < 4; i++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		year = year * 10 + (*p++ - '0');
	}
	if (year < 1900)
		return -1;
	tm->tm_mday = day;
	tm->tm_year = year - 1900;
	*pp = p;
	return 0;
}

/* SEARCH's date: the day's start, UTC. */
int
imap_parse_date(const char *s, int64_t *out)
{
	struct tm	 tm;

	memset(&tm, 0, sizeof(tm));
	if (parse_day_month_year(&s, &tm) == -1 || *s != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

static int
two_digits(const char *p, int max)
{
	int	 v;

	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return -1;
	v = (p[0] - '0') * 10 + (p[1] - '0');
	return v > max ? -1 : v;
}

/* APPEND's date-time: "dd-Mon-yyyy hh:mm:ss +zzzz". */
int
imap_parse_datetime(const char *s, int64_t *out)
{
	struct tm	 tm;
	int		 zh, zm, sign;

	memset(&tm, 0, sizeof(tm));
	if (parse_day_month_year(&s, &tm) == -1 || *s++ != ' ' ||
	    (tm.tm_hour = two_digits(s, 23)) == -1 || s[2] != ':' ||
	    (tm.tm_min = two_digits(s + 3, 59)) == -1 || s[5] != ':' ||
	    (tm.tm_sec = two_digits(s + 6, 60)) == -1 || s[8] != ' ')
		return -1;
	s += 9;
	if (*s != '+' && *s != '-')
		return -1;
	sign = *s++ == '-' ? -1 : 1;
	if ((zh = two_digits(s, 99)) == -1 || (zm = two_digits(s + 2, 59)) ==
	    -1 || s[4] != '\0')
		return -1;
	*out = (int64_t)timegm(&tm) - sign * (zh * 3600 + zm * 60);
	return 0;
}

/* --- FETCH ------------------------------------------------------------- */

static int
section_parse(struct imap_fetch_att *a, const char *p, const char **errp)
{
	struct imap_tok	 list;
	const char	*close;
	char		 err[64];
	uint32_t	 v;
	size_t		 i;

	a->section = SECT_ALL;
	while (isdigit((unsigned char)*p)) {
		if (a->npart == IMAP_SECTION_PARTS_MAX ||
		    parse_u32(&p, &v) == -1 || v == UINT32_MAX)
			goto bad;
		a->part[a->npart++] = v;
		if (*p == '.')
			p++;
		else if (*p != ']')
			goto bad;
		else
			break;
	}
	if (*p == ']')
		return p[1] == '\0' || p[1] == '<' ? 0 : -1;
	if (a->binary)
		goto bad;
	if (strncasecmp(p, "HEADER.FIELDS.NOT ", 18) == 0) {
		a->section = SECT_HEADER_FIELDS_NOT;
		p += 18;
	} else if (strncasecmp(p, "HEADER.FIELDS ", 14) == 0) {
		a->section = SECT_HEADER_FIELDS;
		p += 14;
	} else if (strncasecmp(p, "HEADER]", 7) == 0) {
		a->section = SECT_HEADER;
		p += 6;
	} else if (strncasecmp(p, "TEXT]", 5) == 0) {
		a->section = SECT_TEXT;
		p += 4;
	} else if (strncasecmp(p, "MIME]", 5) == 0 && a->npart > 0) {
		a->section = SECT_MIME;
		p += 4;
	} else
		goto bad;
	if (a->section == SECT_HEADER_FIELDS ||
	    a->section == SECT_HEADER_FIELDS_NOT) {
		if (*p != '(' || (close = strchr(p, ')')) == NULL ||
		    close[1] != ']')
			goto bad;
		if (imap_parse_args(p, close + 1 - p, &list, err,
		    sizeof(err)) == -1)
			goto bad;
		if (list.nitems != 1 || list.items[0].type != TOK_LIST ||
		    list.items[0].nitems == 0 ||
		    list.items[0].nitems > IMAP_PARSE_FIELDS_MAX) {
			imap_tok_free(&list);
			goto bad;
		}
		for (i = 0; i < list.items[0].nitems; i++) {
			if (!imap_tok_is_astring(&list.items[0].items[i]) ||
			    list.items[0].items[i].len == 0 ||
			    strpbrk(list.items[0].items[i].s, ": \t\r\n") !=
			    NULL) {
				imap_tok_free(&list);
				goto bad;
			}
			a->fields[a->nfields++] = list.items[0].items[i].s;
			list.items[0].items[i].s = NULL;
		}
		imap_tok_free(&list);
		p = close + 1;
	}
	if (*p != ']' || (p[1] != '\0' && p[1] != '<'))
		goto bad;
	return 0;
 bad:
	*errp = "Bad section";
	return -1;
}

static int
section_name(struct imap_fetch_att *a, const char *prefix)
{
	static const char *names[] = {
		"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT",
		"MIME"
	};
	char	 num[16];
	size_t	 i, len = sizeof(a->name);

	(void)strlcpy(a->name, prefix, len);
	(void)strlcat(a->name, "[", len);
	for (i = 0; i < a->npart; i++) {
		(void)snprintf(num, sizeof(num), "%s%u", i ? "." : "",
		    a->part[i]);
		(void)strlcat(a->name, num, len);
	}
	if (a->section != SECT_ALL) {
		if (a->npart > 0)
			(void)strlcat(a->name, ".", len);
		(void)strlcat(a->name, names[a->section], len);
	}
	if (a->nfields > 0) {
		(void)strlcat(a->name, " (", len);
		for (i = 0; i < a->nfields; i++) {
			if (i > 0)
				(void)strlcat(a->name, " ", len);
			(void)strlcat(a->name, a->fields[i], len);
		}
		(void)strlcat(a->name, ")", len);
	}
	if (strlcat(a->name, "]", len) >= len)
		return -1;
	return 0;
}

static int
partial_parse(struct imap_fetch_att *a, const char *p, const char **errp)
{
	uint64_t	 off = 0, cnt = 0;
	int		 digits = 0;

	if (*p == '\0')
		return 0;
	if (*p++ != '<')
		goto bad;
	while (isdigit((unsigned char)*p) && digits++ < 10)
		off = off * 10 + (*p++ - '0');
	if (digits == 0 || digits > 10 || *p++ != '.' || off > UINT32_MAX)
		goto bad;
	digits = 0;
	while (isdigit((unsigned char)*p) && digits++ < 10)
		cnt = cnt * 10 + (*p++ - '0');
	if (digits == 0 || digits > 10 || cnt == 0 || cnt > UINT32_MAX ||
	    strcmp(p, ">") != 0)
		goto bad;
	a->partial = 1;
	a->offset = off;
	a->count = cnt;
	return 0;
 bad:
	*errp = "Bad partial";
	return -1;
}

static int
fetch_add(struct imap_fetch *f, enum imap_fetch_kind kind, const char *name)
{
	struct imap_fetch_att	*a;

	if (f->natts == IMAP_FETCH_ATTS_MAX)
		return -1;
	a = &f->atts[f->natts++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	(void)strlcpy(a->name, name, sizeof(a->name));
	return 0;
}

static int
fetch_att(struct imap_fetch *f, const struct imap_tok *t, const char **errp)
{
	static const struct {
		const char		*name;
		enum imap_fetch_kind	 kind;
	} simple[] = {
		{ "FLAGS", FA_FLAGS },
		{ "INTERNALDATE", FA_INTERNALDATE },
		{ "RFC822.SIZE", FA_RFC822_SIZE },
		{ "ENVELOPE", FA_ENVELOPE },
		{ "BODY", FA_BODY },
		{ "BODYSTRUCTURE", FA_BODYSTRUCTURE },
		{ "UID", FA_UID },
		{ "MODSEQ", FA_MODSEQ },
		{ "RFC822", FA_RFC822 },
		{ "RFC822.HEADER", FA_RFC822_HEADER },
		{ "RFC822.TEXT", FA_RFC822_TEXT },
	};
	struct imap_fetch_att	*a;
	const char		*p, *br;
	size_t			 i, plen;

	if (t->type != TOK_ATOM) {
		*errp = "Bad fetch item";
		return -1;
	}
	for (i = 0; i < sizeof(simple) / sizeof(simple[0]); i++)
		if (strcasecmp(t->s, simple[i].name) == 0) {
			if (fetch_add(f, simple[i].kind, simple[i].name) == -1)
				goto toomany;
			return 0;
		}
	if ((br = strchr(t->s, '[')) == NULL) {
		*errp = "Unknown fetch item";
		return -1;
	}
	plen = br - t->s;
	if (fetch_add(f, FA_SECTION, "") == -1)
		goto toomany;
	a = &f->atts[f->natts - 1];
	p = t->s;
	if (plen == 4 && strncasecmp(p, "BODY", 4) == 0)
		;
	else if (plen == 9 && strncasecmp(p, "BODY.PEEK", 9) == 0)
		a->peek = 1;
	else if (plen == 6 && strncasecmp(p, "BINARY", 6) == 0)
		a->binary = 1;
	else if (plen == 11 && strncasecmp(p, "BINARY.PEEK", 11) == 0)
		a->binary = a->peek = 1;
	else if (plen == 11 && strncasecmp(p, "BINARY.SIZE", 11) == 0) {
		a->kind = FA_BINARY_SIZE;
		a->binary = 1;
	} else {
		*errp = "Unknown fetch item";
		return -1;
	}
	if (section_parse(a, br + 1, errp) == -1)
		return -1;
	p = strchr(br, ']');
	if ((a->spec = strndup(br + 1, p - br - 1)) == NULL) {
		*errp = "Out of memory";
		return -1;
	}
	if (section_name(a, a->binary ? (a->kind == FA_BINARY_SIZE ?
	    "BINARY.SIZE" : "BINARY") : "BODY") == -1) {
		*errp = "Bad section";
		return -1;
	}
	if (partial_parse(a, p + 1, errp) == -1)
		return -1;
	if (a->kind == FA_BINARY_SIZE && a->partial) {
		*errp = "Bad partial";
		return -1;
	}
	return 0;
 toomany:
	*errp = "Too many fetch items";
	return -1;
}

void
imap_fetch_free(struct imap_fetch *f)
{
	size_t	 i, j;

	for (i = 0; i < f->natts; i++) {
		for (j = 0; j < f->atts[i].nfields; j++)
			free(f->atts[i].fields[j]);
		free(f->atts[i].spec);
	}
	f->natts = 0;
	imap_seqset_free(&f->set);
}

/* FETCH set items [(CHANGEDSINCE n [VANISHED])] */
int
imap_parse_fetch(const struct imap_cmd *cmd, struct imap_fetch *f,
    const char **errp)
{
	const struct imap_tok	*args = cmd->args.items, *t, *m;
	size_t			 nargs = cmd->args.nitems, i;
	int			 r = 0;

	memset(f, 0, sizeof(*f));
	*errp = "Syntax: FETCH sequence-set items";
	if (nargs < 2 || nargs > 3 || args[0].type != TOK_ATOM ||
	    imap_parse_seqset(args[0].s, &f->set) == -1)
		return -1;
	t = &args[1];
	if (imap_tok_is_atom(t, "ALL") || imap_tok_is_atom(t, "FAST") ||
	    imap_tok_is_atom(t, "FULL")) {
		r |= fetch_add(f, FA_FLAGS, "FLAGS");
		r |= fetch_add(f, FA_INTERNALDATE, "INTERNALDATE");
		r |= fetch_add(f, FA_RFC822_SIZE, "RFC822.SIZE");
		if (!imap_tok_is_atom(t, "FAST"))
			r |= fetch_add(f, FA_ENVELOPE, "ENVELOPE");
		if (imap_tok_is_atom(t, "FULL"))
			r |= fetch_add(f, FA_BODY, "BODY");
	} else if (t->type == TOK_LIST) {
		if (t->nitems == 0)
			goto bad;
		for (i = 0; i < t->nitems; i++)
			if (fetch_att(f, &t->items[i], errp) == -1)
				goto bad;
	} else if (fetch_att(f, t, errp) == -1)
		goto bad;
	if (r != 0)
		goto bad;
	if (nargs == 3) {
		m = &args[2];
		*errp = "Bad fetch modifier";
		if (m->type != TOK_LIST || m->nitems < 2)
			goto bad;
		for (i = 0; i < m->nitems; i++) {
			if (imap_tok_is_atom(&m->items[i], "CHANGEDSINCE") &&
			    i + 1 < m->nitems) {
				if (imap_tok_number64(&m->items[++i],
				    &f->changedsince) == -1 ||
				    f->changedsince == 0)
					goto bad;
			} else if (imap_tok_is_atom(&m->items[i], "VANISHED") &&
			    cmd->uid)
				f->vanished = 1;
			else
				goto bad;
		}
		if (f->changedsince == 0)
			goto bad;
	}
	return 0;
 bad:
	imap_fetch_free(f);
	return -1;
}

/* --- STORE ------------------------------------------------------------- */

/* STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] flags */
int
imap_parse_store(const struct imap_cmd *cmd, struct imap_store *st,
    const char **errp)
{
	const struct imap_tok	*args = cmd->args.items, *m;
	size_t			 nargs = cmd->args.nitems, i = 1;
	const char		*op;
	struct imap_tok		 list;

	memset(st, 0, sizeof(*st));
	*errp = "Syntax: STORE sequence-set [+-]FLAGS[.SILENT] flags";
	if (nargs < 3 || args[0].type != TOK_ATOM ||
	    imap_parse_seqset(args[0].s, &st->set) == -1)
		return -1;
	if (args[1].type == TOK_LIST) {
		m = &args[1];
		if (m->nitems != 2 ||
		    !imap_tok_is_atom(&m->items[0], "UNCHANGEDSINCE") ||
		    imap_tok_number64(&m->items[1], &st->unchangedsince) == -1)
			goto bad;
		st->has_unchangedsince = 1;
		i = 2;
	}
	if (args[i].type != TOK_ATOM)
		goto bad;
	op = args[i].s;
	st->op = IMAP_STORE_REPLACE;
	if (*op == '+') {
		st->op = IMAP_STORE_ADD;
		op++;
	} else if (*op == '-') {
		st->op = IMAP_STORE_REMOVE;
		op++;
	}
	if (strcasecmp(op, "FLAGS.SILENT") == 0)
		st->silent = 1;
	else if (strcasecmp(op, "FLAGS") != 0)
		goto bad;
	i++;
	if (i >= nargs)
		goto bad;
	if (args[i].type == TOK_LIST) {
		if (i + 1 != nargs)
			goto bad;
		if (imap_parse_flags(&args[i], st->flags, sizeof(st->flags),
		    0) == -1)
			goto bad;
		return 0;
	}
	/* flag SP flag ...: as a list */
	memset(&list, 0, sizeof(list));
	list.type = TOK_LIST;
	list.items = (struct imap_tok *)&args[i];
	list.nitems = nargs - i;
	if (imap_parse_flags(&list, st->flags, sizeof(st->flags), 0) == -1)
		goto bad;
	return 0;
 bad:
	imap_seqset_free(&st->set);
	return -1;
}

/* --- LIST, STATUS, SELECT, APPEND ------------------------------------- */

int
imap_parse_status_items(const struct imap_tok *t, int *items)
{
	static const struct {
		const char	*name;
		int		 bit;
	} names[] = {
		{ "MESSAGES", STATUS_MESSAGES },
		{ "UIDNEXT", STATUS_UIDNEXT },
		{ "UIDVALIDITY", STATUS_UIDVALIDITY },
		{ "UNSEEN", STATUS_UNSEEN },
		{ "DELETED", STATUS_DELETED },
		{ "SIZE", STATUS_SIZE },
		{ "HIGHESTMODSEQ", STATUS_HIGHESTMODSEQ },
		{ "RECENT", STATUS_RECENT },
	};
	size_t	 i, j;

	*items = 0;
	if (t->type != TOK_LIST || t->nitems == 0)
		return -1;
	for (i = 0; i < t->nitems; i++) {
		for (j = 0; j < sizeof(names) / sizeof(names[0]); j++)
			if (imap_tok_is_atom(&t->items[i], names[j].name))
				break;
		if (j == sizeof(names) / sizeof(names[0]))
			return -1;
		*items |= names[j].bit;
	}
	return 0;
}

/* LIST [(sel)] ref pattern|(patterns) [RETURN (opts)]; also LSUB. */
int
imap_parse_list(const struct imap_cmd *cmd, struct imap_list *l,
    const char **errp)
{
	const struct imap_tok	*args = cmd->args.items, *t;
	size_t			 nargs = cmd->args.nitems, i = 0, j;

	memset(l, 0, sizeof(*l));
	*errp = "Syntax: LIST [(options)] reference pattern [RETURN (options)]";
	if (nargs > 0 && args[0].type == TOK_LIST &&
	    strcmp(cmd->verb, "LIST") == 0) {
		l->extended = 1;
		t = &args[0];
		for (j = 0; j < t->nitems; j++) {
			if (imap_tok_is_atom(&t->items[j], "SUBSCRIBED"))
				l->sel |= LIST_SEL_SUBSCRIBED;
			else if (imap_tok_is_atom(&t->items[j], "REMOTE"))
				l->sel |= LIST_SEL_REMOTE;
			else if (imap_tok_is_atom(&t->items[j],
			    "RECURSIVEMATCH"))
				l->sel |= LIST_SEL_RECURSIVE;
			else if (imap_tok_is_atom(&t->items[j], "SPECIAL-USE"))
				l->sel |= LIST_SEL_SPECIAL;
			else
				return -1;
		}
		/* RFC 5258 3.1: RECURSIVEMATCH needs another option. */
		if ((l->sel & LIST_SEL_RECURSIVE) &&
		    !(l->sel & (LIST_SEL_SUBSCRIBED | LIST_SEL_SPECIAL)))
			return -1;
		i = 1;
	}
	if (i + 2 > nargs || !imap_tok_is_astring(&args[i]))
		return -1;
	l->ref = args[i].s;
	i++;
	if (args[i].type == TOK_LIST) {
		if (strcmp(cmd->verb, "LIST") != 0 || args[i].nitems == 0 ||
		    args[i].nitems > IMAP_PATTERNS_MAX)
			return -1;
		l->extended = 1;
		for (j = 0; j < args[i].nitems; j++) {
			if (!imap_tok_is_astring(&args[i].items[j]))
				return -1;
			l->patterns[l->npatterns++] = args[i].items[j].s;
		}
	} else
		l->patterns[l->npatterns++] = args[i].s;
	i++;
	if (i < nargs) {
		if (strcmp(cmd->verb, "LIST") != 0 ||
		    !imap_tok_is_atom(&args[i], "RETURN") || i + 2 != nargs ||
		    args[i + 1].type != TOK_LIST)
			return -1;
		l->extended = 1;
		t = &args[i + 1];
		for (j = 0; j < t->nitems; j++) {
			if (imap_tok_is_atom(&t->items[j], "SUBSCRIBED"))
				l->ret |= LIST_RET_SUBSCRIBED;
			else if (imap_tok_is_atom(&t->items[j], "CHILDREN"))
				l->ret |= LIST_RET_CHILDREN;
			else if (imap_tok_is_atom(&t->items[j], "SPECIAL-USE"))
				l->ret |= LIST_RET_SPECIAL;
			else if (imap_tok_is_atom(&t->items[j], "STATUS") &&
			    j + 1 < t->nitems) {
				if (imap_parse_status_items(&t->items[++j],
				    &l->status) == -1)
					return -1;
				l->ret |= LIST_RET_STATUS;
			} else
				return -1;
		}
	}
	for (j = 0; j < l->npatterns; j++)
		if (strlen(l->patterns[j]) > IMAP_MAILBOX_MAX)
			return -1;
	if (strlen(l->ref) > IMAP_MAILBOX_MAX)
		return -1;
	return 0;
}

void
imap_select_free(struct imap_select *sel)
{
	imap_seqset_free(&sel->known_uids);
	imap_seqset_free(&sel->seq_match);
	imap_seqset_free(&sel->uid_match);
}

/*
 * SELECT mailbox [(CONDSTORE | QRESYNC (uidvalidity modseq
 * [known-uids [(seqs uids)]]))]
 */
int
imap_parse_select(const struct imap_cmd *cmd, struct imap_select *sel,
    const char **errp)
{
	const struct imap_tok	*args = cmd->args.items, *p, *q, *m;
	size_t			 nargs = cmd->args.nitems, i;

	memset(sel, 0, sizeof(*sel));
	*errp = "Syntax: SELECT mailbox [(parameters)]";
	if (nargs < 1 || nargs > 2 || !imap_tok_is_astring(&args[0]))
		return -1;
	sel->mailbox = args[0].s;
	if (nargs == 1)
		return 0;
	p = &args[1];
	if (p->type != TOK_LIST)
		return -1;
	for (i = 0; i < p->nitems; i++) {
		if (imap_tok_is_atom(&p->items[i], "CONDSTORE")) {
			sel->condstore = 1;
			continue;
		}
		if (!imap_tok_is_atom(&p->items[i], "QRESYNC") ||
		    i + 1 >= p->nitems || sel->qresync)
			goto bad;
		q = &p->items[++i];
		sel->qresync = 1;
		if (q->type != TOK_LIST || q->nitems < 2 || q->nitems > 4 ||
		    imap_tok_number(&q->items[0], &sel->uidvalidity) == -1 ||
		    sel->uidvalidity == 0 ||
		    imap_tok_number64(&q->items[1], &sel->modseq) == -1 ||
		    sel->modseq == 0)
			goto bad;
		if (q->nitems >= 3 && q->items[2].type == TOK_ATOM) {
			if (imap_parse_seqset(q->items[2].s,
			    &sel->known_uids) == -1 || sel->known_uids.saved)
				goto bad;
		} else if (q->nitems >= 3 && q->nitems != 3)
			goto bad;
		m = q->nitems == 4 ? &q->items[3] :
		    (q->nitems == 3 && q->items[2].type == TOK_LIST ?
		    &q->items[2] : NULL);
		if (m != NULL) {
			if (m->type != TOK_LIST || m->nitems != 2 ||
			    m->items[0].type != TOK_ATOM ||
			    m->items[1].type != TOK_ATOM ||
			    imap_parse_seqset(m->items[0].s,
			    &sel->seq_match) == -1 ||
			    imap_parse_seqset(m->items[1].s,
			    &sel->uid_match) == -1 ||
			    sel->seq_match.saved || sel->uid_match.saved)
				goto bad;
		}
	}
	return 0;
 bad:
	imap_select_free(sel);
	return -1;
}

/*
 * What comes before a message literal of APPEND, from args[i] on:
 * [flag-list] [date-time].  *next is where it stopped.
 */
int
imap_parse_append_head(const struct imap_tok *args, size_t nargs,
    size_t *next, struct imap_append *a, const char **errp)
{
	size_t	 i = 0;

	memset(a, 0, sizeof(*a));
	*errp = "Syntax: APPEND mailbox [(flags)] [date-time] literal";
	if (i < nargs && args[i].type == TOK_LIST) {
		if (imap_parse_flags(&args[i], a->flags, sizeof(a->flags),
		    0) == -1) {
			*errp = "Bad flags";
			return -1;
		}
		i++;
	}
	if (i < nargs && args[i].type == TOK_QUOTED) {
		if (imap_parse_datetime(args[i].s, &a->date) == -1) {
			*errp = "Bad date-time";
			return -1;
		}
		if (a->date == 0)
			a->date = 1;
		i++;
	}
	*next = i;
	return 0;
}

/* --- mailbox names ----------------------------------------------------- */

static const char mb64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
utf8_put(char *out, size_t *o, uint32_t c)
{
	if (c < 0x80)
		out[(*o)++] = c;
	else if (c < 0x800) {
		out[(*o)++] = 0xc0 | (c >> 6);
		out[(*o)++] = 0x80 | (c & 0x3f);
	} else if (c < 0x10000) {
		out[(*o)++] = 0xe0 | (c >> 12);
		out[(*o)++] = 0x80 | ((c >> 6) & 0x3f);
		out[(*o)++] = 0x80 | (c & 0x3f);
	} else if (c < 0x110000) {
		out[(*o)++] = 0xf0 | (c >> 18);
		out[(*o)++] = 0x80 | ((c >> 12) & 0x3f);
		out[(*o)++] = 0x80 | ((c >> 6) & 0x3f);
		out[(*o)++] = 0x80 | (c & 0x3f);
	} else
		return -1;
	return 0;
}

/* Modified UTF-7 to UTF-8; NULL if it is not valid. */
char *
imap_mutf7_decode(const char *in)
{
	size_t		 len = strlen(in), o = 0;
	char		*out, *p;
	uint32_t	 bits, c, hi;
	int		 nbits;
	const char	*q;

	if ((out = malloc(len * 2 + 1)) == NULL)
		return NULL;
	while (*in) {
		if ((unsigned char)*in >= 0x80 || (unsigned char)*in < 0x20)
			goto bad;
		if (*in != '&') {
			out[o++] = *in++;
			continue;
		}
		in++;
		if (*in == '-') {
			out[o++] = '&';
			in++;
			continue;
		}
		bits = 0;
		nbits = 0;
		hi = 0;
		for (q = in; *q && *q != '-'; q++) {
			if ((p = strchr(mb64, *q)) == NULL)
				goto bad;
			bits = (bits << 6) | (p - mb64);
			nbits += 6;
			if (nbits >= 16) {
				nbits -= 16;
				c = (bits >> nbits) & 0xffff;
				if (hi) {
					if (c < 0xdc00 || c > 0xdfff)
						goto bad;
					c = 0x10000 + ((hi - 0xd800) << 10) +
					    (c - 0xdc00);
					hi = 0;
				} else if (c >= 0xd800 && c <= 0xdbff) {
					hi = c;
					continue;
				} else if (c >= 0xdc00 && c <= 0xdfff)
					goto bad;
				if (c >= 0x20 && c < 0x7f)
					goto bad;
				(void)utf8_put(out, &o, c);
			}
		}
		if (*q != '-' || hi || q == in || nbits >= 6 ||
		    (bits & ((1U << nbits) - 1)) != 0)
			goto bad;
		in = q + 1;
	}
	out[o] = '\0';
	return out;
 bad:
	free(out);
	return NULL;
}

static int
utf8_get(const unsigned char **pp, uint32_t *c)
{
	const unsigned char	*p = *pp;
	int			 n, i;

	if (p[0] < 0x80) {
		*c = p[0];
		n = 1;
	} else if ((p[0] & 0xe0) == 0xc0) {
		*c = p[0] & 0x1f;
		n = 2;
	} else if ((p[0] & 0xf0) == 0xe0) {
		*c = p[0] & 0x0f;
		n = 3;
	} else if ((p[0] & 0xf8) == 0xf0) {
		*c = p[0] & 0x07;
		n = 4;
	} else
		return -1;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		*c = (*c << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && *c < 0x80) || (n == 3 && *c < 0x800) ||
	    (n == 4 && (*c < 0x10000 || *c > 0x10ffff)) ||
	    (*c >= 0xd800 && *c <= 0xdfff))
		return -1;
	*pp = p + n;
	return 0;
}

/* UTF-8 to modified UTF-7; NULL if it is not valid UTF-8. */
char *
imap_mutf7_encode(const char *in)
{
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 len = strlen(in), o = 0;
	uint32_t		 c, bits = 0, u[2];
	int			 nbits = 0, open = 0, n, i;
	char			*out;

	if (len > SIZE_MAX / 4 - 4 || (out = malloc(len * 4 + 4)) == NULL)
		return NULL;
	while (*p) {
		if (utf8_get(&p, &c) == -1) {
			free(out);
			return NULL;
		}
		if (c >= 0x20 && c < 0x7f) {
			if (open) {
				if (nbits > 0)
					out[o++] = mb64[(bits << (6 - nbits)) &
					    0x3f];
				out[o++] = '-';
				open = 0;
				nbits = 0;
				bits = 0;
			}
			out[o++] = c;
			if (c == '&')
				out[o++] = '-';
			continue;
		}
		if (!open) {
			out[o++] = '&';
			open = 1;
		}
		if (c >= 0x10000) {
			u[0] = 0xd800 + ((c - 0x10000) >> 10);
			u[1] = 0xdc00 + ((c - 0x10000) & 0x3ff);
			n = 2;
		} else {
			u[0] = c;
			n = 1;
		}
		for (i = 0; i < n; i++) {
			bits = (bits << 16) | u[i];
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				out[o++] = mb64[(bits >> nbits) & 0x3f];
			}
			bits &= (1U << nbits) - 1;
		}
	}
	if (open) {
		if (nbits > 0)
			out[o++] = mb64[(bits << (6 - nbits)) & 0x3f];
		out[o++] = '-';
	}
	out[o] = '\0';
	return out;
}

/*
 * LIST's wildcards: '*' matches anything, '%' anything but the
 * hierarchy delimiter.  Dynamic programming over the name, so a
 * pattern of many wildcards cannot take exponential time.
 */
int
imap_match(const char *pattern, const char *name, char delim)
{
	size_t		 plen = strlen(pattern), nlen = strlen(name), i, j;
	unsigned char	*row, *next;
	int		 r;

	if (plen > IMAP_MAILBOX_MAX || nlen > IMAP_MAILBOX_MAX * 4)
		return 0;
	if ((row = calloc(2, nlen + 1)) == NULL)
		return 0;
	next = row + nlen + 1;
	row[0] = 1;
	for (i = 0; i < plen; i++) {
		memset(next, 0, nlen + 1);
		for (j = 0; j <= nlen; j++) {
			if (pattern[i] == '*' || pattern[i] == '%') {
				if (row[j] || (j > 0 && next[j - 1] &&
				    (pattern[i] == '*' ||
				    name[j - 1] != delim)))
					next[j] = 1;
			} else if (j > 0 && row[j - 1] &&
			    pattern[i] == name[j - 1])
				next[j] = 1;
		}
		memcpy(row, next, nlen + 1);
	}
	r = row[nlen];
	free(row);
	return r;
}
