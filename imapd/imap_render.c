/*
 * FETCH data items rendered from the mime tree storaged keeps for each
 * message (RFC 9051 7.5.2, RFC 3516 for BINARY).  Pure functions: the
 * bytes of a message come from the caller.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "charset.h"
#include "mime.h"
#include "imap_render.h"

/* RFC 2047: 45 bytes are 60 base64 characters, a 72-character word. */
#define EW_CHUNK	45

static const char	 b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
buf_reserve(struct imap_buf *b, size_t n)
{
	size_t	 cap;
	char	*p;

	if (b->oom)
		return -1;
	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		return -1;
	}
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void
imap_buf_add(struct imap_buf *b, const void *p, size_t n)
{
	if (n == 0 || buf_reserve(b, n) == -1)
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void
imap_buf_adds(struct imap_buf *b, const char *s)
{
	imap_buf_add(b, s, strlen(s));
}

void
imap_buf_addc(struct imap_buf *b, int c)
{
	if (buf_reserve(b, 1) == -1)
		return;
	b->p[b->len++] = c;
}

/* Formats in place when it fits what is free, so most need one pass. */
void
imap_buf_printf(struct imap_buf *b, const char *fmt, ...)
{
	va_list	 ap;
	size_t	 room;
	int	 n;

	if (b->oom || buf_reserve(b, 64) == -1)
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if ((size_t)n < room) {
		b->len += n;
		return;
	}
	/* vsnprintf writes a NUL after the text: room for it too. */
	if (buf_reserve(b, (size_t)n + 1) == -1)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

void
imap_buf_addu64(struct imap_buf *b, uint64_t v)
{
	char	 d[20];
	size_t	 n = 0;

	do {
		d[sizeof(d) - ++n] = '0' + v % 10;
		v /= 10;
	} while (v > 0);
	imap_buf_add(b, d + sizeof(d) - n, n);
}

void
imap_buf_reset(struct imap_buf *b)
{
	b->len = 0;
	b->oom = 0;
}

void
imap_buf_free(struct imap_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

/* Strings */

void
imap_literal(struct imap_buf *b, const char *s, size_t len)
{
	if (len > 0 && memchr(s, '\0', len) != NULL)
		imap_buf_addc(b, '~');
	imap_buf_printf(b, "{%zu}\r\n", len);
	imap_buf_add(b, s, len);
}

static int
needs_literal(const char *s, size_t len, int utf8_ok)
{
	size_t	 i;
	int	 eight = 0;

	if (len > IMAP_QUOTED_MAX)
		return 1;
	for (i = 0; i < len; i++) {
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return 1;
		if ((unsigned char)s[i] >= 0x80)
			eight = 1;
	}
	return eight && !(utf8_ok && utf8_valid(s, len));
}

void
imap_quote(struct imap_buf *b, const char *s, size_t len, int utf8_ok)
{
	size_t	 i, run;

	if (s == NULL) {
		imap_buf_adds(b, "NIL");
		return;
	}
	if (needs_literal(s, len, utf8_ok)) {
		imap_literal(b, s, len);
		return;
	}
	imap_buf_addc(b, '"');
	for (i = 0; i < len; i = run + 1) {
		for (run = i; run < len && s[run] != '"' && s[run] != '\\';
		    run++)
			;
		imap_buf_add(b, s + i, run - i);
		if (run == len)
			break;
		imap_buf_addc(b, '\\');
		imap_buf_addc(b, s[run]);
	}
	imap_buf_addc(b, '"');
}

void
imap_quote_str(struct imap_buf *b, const char *s, int utf8_ok)
{
	imap_quote(b, s, s == NULL ? 0 : strlen(s), utf8_ok);
}

static int
is_atom_char(int c)
{
	/* ASTRING-CHAR: ATOM-CHAR and "]". */
	return c > ' ' && c < 0x7f && strchr("(){%*\"\\", c) == NULL;
}

void
imap_astring(struct imap_buf *b, const char *s, size_t len, int utf8_ok)
{
	size_t	 i;

	if (s == NULL || len == 0 || (len == 3 && strncasecmp(s, "NIL", 3) ==
	    0)) {
		imap_quote(b, s == NULL ? "" : s, len, utf8_ok);
		return;
	}
	for (i = 0; i < len; i++)
		if (!is_atom_char((unsigned char)s[i])) {
			imap_quote(b, s, len, utf8_ok);
			return;
		}
	imap_buf_add(b, s, len);
}

static void
add_upper(struct imap_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		imap_buf_addc(b, toupper((unsigned char)*s));
}

/* A token we know is safe in quotes (type, subtype, encoding), upper-cased. */
static void
quote_upper(struct imap_buf *b, const char *s, int utf8_ok)
{
	const char	*p;

	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f ||
		    *p == '"' || *p == '\\')
			break;
	if (*p != '\0' || p - s > IMAP_QUOTED_MAX) {
		imap_quote_str(b, s, utf8_ok);
		return;
	}
	imap_buf_addc(b, '"');
	add_upper(b, s);
	imap_buf_addc(b, '"');
}

static void
base64_add(struct imap_buf *b, const unsigned char *s, size_t len)
{
	size_t		 i;
	uint32_t	 w;

	for (i = 0; i < len; i += 3) {
		w = s[i] << 16;
		if (i + 1 < len)
			w |= s[i + 1] << 8;
		if (i + 2 < len)
			w |= s[i + 2];
		imap_buf_addc(b, b64[(w >> 18) & 0x3f]);
		imap_buf_addc(b, b64[(w >> 12) & 0x3f]);
		imap_buf_addc(b, i + 1 < len ? b64[(w >> 6) & 0x3f] : '=');
		imap_buf_addc(b, i + 2 < len ? b64[w & 0x3f] : '=');
	}
}

/*
 * A decoded (UTF-8) display name or parameter value for a client that
 * did not ENABLE UTF8=ACCEPT: ASCII as it is, anything else as RFC 2047
 * encoded-words cut at character boundaries.
 */
static void
quote_decoded(struct imap_buf *b, const char *s, int flags)
{
	struct imap_buf	 ew = IMAP_BUF_INIT;
	const char	*p;
	size_t		 len, n;

	if (s == NULL || (flags & IMAP_R_UTF8)) {
		imap_quote_str(b, s, flags & IMAP_R_UTF8);
		return;
	}
	len = strlen(s);
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			break;
	if (*p == '\0' || !utf8_valid(s, len)) {
		imap_quote(b, s, len, 0);
		return;
	}
	for (p = s; *p != '\0'; p += n) {
		n = strlen(p);
		if (n > EW_CHUNK) {
			n = EW_CHUNK;
			/* Back to the start of a character. */
			while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
				n--;
			if (n == 0)
				n = EW_CHUNK;
		}
		if (p != s)
			imap_buf_addc(&ew, ' ');
		imap_buf_adds(&ew, "=?utf-8?b?");
		base64_add(&ew, (const unsigned char *)p, n);
		imap_buf_adds(&ew, "?=");
	}
	if (ew.oom)
		b->oom = 1;
	else
		imap_quote(b, ew.p, ew.len, 0);
	imap_buf_free(&ew);
}

/* ENVELOPE */

static void
render_addrlist(struct imap_buf *b, const struct mime_addrlist *l, int flags)
{
	const struct mime_addr	*a;
	size_t			 i;
	int			 utf8 = flags & IMAP_R_UTF8;

	if (l->count == 0) {
		imap_buf_adds(b, "NIL");
		return;
	}
	imap_buf_addc(b, '(');
	for (i = 0; i < l->count; i++) {
		a = &l->addrs[i];
		switch (a->kind) {
		case MIME_ADDR_GROUP_START:
			imap_buf_adds(b, "(NIL NIL ");
			imap_quote_str(b, a->mailbox == NULL ? "" : a->mailbox,
			    utf8);
			imap_buf_adds(b, " NIL)");
			break;
		case MIME_ADDR_GROUP_END:
			imap_buf_adds(b, "(NIL NIL NIL NIL)");
			break;
		default:
			imap_buf_addc(b, '(');
			quote_decoded(b, a->name, flags);
			imap_buf_addc(b, ' ');
			imap_quote_str(b, a->route, utf8);
			imap_buf_addc(b, ' ');
			/* NIL is for groups: a mailbox always has strings. */
			imap_quote_str(b, a->mailbox == NULL ? "" : a->mailbox,
			    utf8);
			imap_buf_addc(b, ' ');
			imap_quote_str(b, a->host == NULL ? "" : a->host, utf8);
			imap_buf_addc(b, ')');
			break;
		}
	}
	imap_buf_addc(b, ')');
}

void
imap_render_envelope(struct imap_buf *b, const struct mime_envelope *env,
    int flags)
{
	const struct mime_addrlist	*sender, *reply_to;
	int				 utf8 = flags & IMAP_R_UTF8;

	/* RFC 9051 7.5.2: absent or empty Sender and Reply-To are From. */
	sender = env->sender_list.count ? &env->sender_list : &env->from_list;
	reply_to = env->reply_to_list.count ? &env->reply_to_list :
	    &env->from_list;

	imap_buf_addc(b, '(');
	imap_quote_str(b, env->date, utf8);
	imap_buf_addc(b, ' ');
	imap_quote_str(b, env->subject, utf8);
	imap_buf_addc(b, ' ');
	render_addrlist(b, &env->from_list, flags);
	imap_buf_addc(b, ' ');
	render_addrlist(b, sender, flags);
	imap_buf_addc(b, ' ');
	render_addrlist(b, reply_to, flags);
	imap_buf_addc(b, ' ');
	render_addrlist(b, &env->to_list, flags);
	imap_buf_addc(b, ' ');
	render_addrlist(b, &env->cc_list, flags);
	imap_buf_addc(b, ' ');
	render_addrlist(b, &env->bcc_list, flags);
	imap_buf_addc(b, ' ');
	imap_quote_str(b, env->in_reply_to, utf8);
	imap_buf_addc(b, ' ');
	imap_quote_str(b, env->message_id, utf8);
	imap_buf_addc(b, ')');
}

/* BODY and BODYSTRUCTURE */

static const char *
str_or(const char *s, const char *dflt)
{
	return s == NULL || *s == '\0' ? dflt : s;
}

static void
render_params(struct imap_buf *b, const struct mime_param *params, size_t n,
    const struct mime_part *p, int flags)
{
	size_t	 i;
	int	 charset = 0;

	/* RFC 2045 5.2: no Content-Type is text/plain; charset=us-ascii. */
	if (p != NULL && (p->flags & MIME_F_CT_DEFAULT) &&
	    strcmp(str_or(p->type, "text"), "text") == 0 &&
	    mime_param_get(params, n, "charset") == NULL)
		charset = 1;
	if (n == 0 && !charset) {
		imap_buf_adds(b, "NIL");
		return;
	}
	imap_buf_addc(b, '(');
	if (charset)
		imap_buf_adds(b, n ? "\"CHARSET\" \"US-ASCII\" " :
		    "\"CHARSET\" \"US-ASCII\"");
	for (i = 0; i < n; i++) {
		if (i > 0)
			imap_buf_addc(b, ' ');
		quote_upper(b, str_or(params[i].name, "X"),
		    flags & IMAP_R_UTF8);
		imap_buf_addc(b, ' ');
		quote_decoded(b, params[i].value == NULL ? "" :
		    params[i].value, flags);
	}
	imap_buf_addc(b, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void
render_ext_common(struct imap_buf *b, const struct mime_part *p, int flags)
{
	size_t	 i;
	int	 utf8 = flags & IMAP_R_UTF8;

	if (p->disposition == NULL)
		imap_buf_adds(b, "NIL");
	else {
		imap_buf_addc(b, '(');
		quote_upper(b, p->disposition, utf8);
		imap_buf_addc(b, ' ');
		render_params(b, p->disp_params, p->ndisp_params, NULL, flags);
		imap_buf_addc(b, ')');
	}
	imap_buf_addc(b, ' ');
	if (p->nlanguages == 0)
		imap_buf_adds(b, "NIL");
	else if (p->nlanguages == 1)
		imap_quote_str(b, p->languages[0], utf8);
	else {
		imap_buf_addc(b, '(');
		for (i = 0; i < p->nlanguages; i++) {
			if (i > 0)
				imap_buf_addc(b, ' ');
			imap_quote_str(b, p->languages[i], utf8);
		}
		imap_buf_addc(b, ')');
	}
	imap_buf_addc(b, ' ');
	imap_quote_str(b, p->location, utf8);
}

static int
is_message(const struct mime_part *p)
{
	return p->envelope != NULL && p->message != NULL &&
	    strcmp(str_or(p->type, ""), "message") == 0;
}

static void
render_body(struct imap_buf *b, const struct mime_part *p, int extended,
    int flags, int depth)
{
	const char	*type = str_or(p->type, "text");
	const char	*subtype = str_or(p->subtype, "plain");
	size_t		 i;
	int		 utf8 = flags & IMAP_R_UTF8;

	if (b->oom)
		return;
	imap_buf_addc(b, '(');
	if (strcmp(type, "multipart") == 0 && p->nchildren > 0 &&
	    depth <= MIME_MAX_DEPTH) {
		for (i = 0; i < p->nchildren; i++)
			render_body(b, p->children[i], extended, flags,
			    depth + 1);
		imap_buf_addc(b, ' ');
		quote_upper(b, subtype, utf8);
		if (extended) {
			imap_buf_addc(b, ' ');
			render_params(b, p->params, p->nparams, NULL, flags);
			imap_buf_addc(b, ' ');
			render_ext_common(b, p, flags);
		}
		imap_buf_addc(b, ')');
		return;
	}

	quote_upper(b, type, utf8);
	imap_buf_addc(b, ' ');
	quote_upper(b, subtype, utf8);
	imap_buf_addc(b, ' ');
	render_params(b, p->params, p->nparams, p, flags);
	imap_buf_addc(b, ' ');
	imap_quote_str(b, p->id, utf8);
	imap_buf_addc(b, ' ');
	imap_quote_str(b, p->description, utf8);
	imap_buf_addc(b, ' ');
	quote_upper(b, str_or(p->encoding, "7bit"), utf8);
	imap_buf_printf(b, " %zu", p->size);
	if (is_message(p) && depth <= MIME_MAX_DEPTH) {
		imap_buf_addc(b, ' ');
		imap_render_envelope(b, p->envelope, flags);
		imap_buf_addc(b, ' ');
		render_body(b, p->message, extended, flags, depth + 1);
		imap_buf_printf(b, " %zu", p->lines);
	} else if (strcmp(type, "text") == 0)
		imap_buf_printf(b, " %zu", p->lines);
	if (extended) {
		imap_buf_addc(b, ' ');
		imap_quote_str(b, p->md5, utf8);
		imap_buf_addc(b, ' ');
		render_ext_common(b, p, flags);
	}
	imap_buf_addc(b, ')');
}

void
imap_render_bodystructure(struct imap_buf *b, const struct mime_part *p,
    int extended, int flags)
{
	render_body(b, p, extended, flags, 0);
}

/* INTERNALDATE */

static void
two_digits(char *p, int v)
{
	p[0] = '0' + v / 10 % 10;
	p[1] = '0' + v % 10;
}

void
imap_render_date(struct imap_buf *b, time_t t, int tzoff)
{
	static const char	*months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm		 tm;
	char			 d[28];
	int			 off;

	if (tzoff < -24 * 60 || tzoff > 24 * 60)
		tzoff = 0;
	t += (time_t)tzoff * 60;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		t = 0;
		tzoff = 0;
		gmtime_r(&t, &tm);
	}
	off = tzoff < 0 ? -tzoff : tzoff;
	/* "dd-Mon-yyyy hh:mm:ss +hhmm", by hand: one per message. */
	d[0] = '"';
	two_digits(d + 1, tm.tm_mday);
	d[3] = '-';
	memcpy(d + 4, months[tm.tm_mon], 3);
	d[7] = '-';
	two_digits(d + 8, (tm.tm_year + 1900) / 100);
	two_digits(d + 10, (tm.tm_year + 1900) % 100);
	d[12] = ' ';
	two_digits(d + 13, tm.tm_hour);
	d[15] = ':';
	two_digits(d + 16, tm.tm_min);
	d[18] = ':';
	two_digits(d + 19, tm.tm_sec);
	d[21] = ' ';
	d[22] = tzoff < 0 ? '-' : '+';
	two_digits(d + 23, off / 60);
	two_digits(d + 25, off % 60);
	d[27] = '"';
	imap_buf_add(b, d, 28);
}

/* Sections */

void
imap_section_clear(struct imap_section *s)
{
	size_t	 i;

	for (i = 0; i < s->nfields; i++)
		free(s->fields[i]);
	free(s->fields);
	memset(s, 0, sizeof(*s));
}

static int
keyword(const char **pp, const char *kw)
{
	size_t	 n = strlen(kw);

	if (strncasecmp(*pp, kw, n) != 0)
		return 0;
	*pp += n;
	return 1;
}

static int
is_field_char(int c)
{
	/* RFC 5322 ftext, less what an IMAP atom cannot hold. */
	return c > ' ' && c < 0x7f && c != ':' && is_atom_char(c);
}

static int
add_field(struct imap_section *s, const char *name, size_t len)
{
	char	**v;

	if (s->nfields >= IMAP_FIELDS_MAX)
		return IMAP_SECTION_SYNTAX;
	if ((v = reallocarray(s->fields, s->nfields + 1, sizeof(*v))) == NULL)
		return IMAP_SECTION_NOMEM;
	s->fields = v;
	if ((v[s->nfields] = strndup(name, len)) == NULL)
		return IMAP_SECTION_NOMEM;
	s->nfields++;
	return IMAP_SECTION_OK;
}

/* SP header-list: "(" header-fld-name *(SP header-fld-name) ")". */
static int
parse_header_list(const char **pp, struct imap_section *s)
{
	const char	*p = *pp, *q;
	char		 name[1024];
	size_t		 n;
	int		 r;

	if (*p++ != ' ' || *p++ != '(')
		return IMAP_SECTION_SYNTAX;
	for (;;) {
		if (*p == '"') {
			n = 0;
			for (p++; *p != '"'; p++) {
				if (*p == '\\')
					p++;
				if ((unsigned char)*p <= ' ' ||
				    (unsigned char)*p >= 0x7f || *p == ':')
					return IMAP_SECTION_SYNTAX;
				if (n >= sizeof(name) - 1)
					return IMAP_SECTION_SYNTAX;
				name[n++] = *p;
			}
			p++;
			if (n == 0)
				return IMAP_SECTION_SYNTAX;
			if ((r = add_field(s, name, n)) != IMAP_SECTION_OK)
				return r;
		} else {
			for (q = p; is_field_char((unsigned char)*q); q++)
				;
			if (q == p || q - p >= (ptrdiff_t)sizeof(name))
				return IMAP_SECTION_SYNTAX;
			if ((r = add_field(s, p, q - p)) != IMAP_SECTION_OK)
				return r;
			p = q;
		}
		if (*p == ')')
			break;
		if (*p++ != ' ')
			return IMAP_SECTION_SYNTAX;
	}
	*pp = p + 1;
	return IMAP_SECTION_OK;
}

/* section-msgtext, or with a part "MIME". */
static int
parse_text(const char **pp, struct imap_section *s)
{
	int	 r;

	if (keyword(pp, "HEADER.FIELDS.NOT"))
		s->text = IMAP_SECTION_FIELDS_NOT;
	else if (keyword(pp, "HEADER.FIELDS"))
		s->text = IMAP_SECTION_FIELDS;
	else if (keyword(pp, "HEADER"))
		s->text = IMAP_SECTION_HEADER;
	else if (keyword(pp, "TEXT"))
		s->text = IMAP_SECTION_TEXT;
	else if (s->nparts > 0 && keyword(pp, "MIME"))
		s->text = IMAP_SECTION_MIME;
	else
		return IMAP_SECTION_SYNTAX;
	if (s->text == IMAP_SECTION_FIELDS ||
	    s->text == IMAP_SECTION_FIELDS_NOT) {
		if ((r = parse_header_list(pp, s)) != IMAP_SECTION_OK)
			return r;
	}
	return IMAP_SECTION_OK;
}

int
imap_section_parse(const char *spec, struct imap_section *s)
{
	const char	*p = spec;
	uint64_t	 v;
	int		 r;

	memset(s, 0, sizeof(*s));
	while (*p >= '1' && *p <= '9') {
		v = 0;
		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			if (v > UINT32_MAX)
				return IMAP_SECTION_SYNTAX;
		}
		if (s->nparts >= IMAP_SECTION_PARTS)
			return IMAP_SECTION_SYNTAX;
		s->parts[s->nparts++] = v;
		if (*p != '.')
			break;
		p++;
		if (*p < '1' || *p > '9')
			break;
	}
	if (*p == '\0') {
		/* "1." ends in a dot: not a section. */
		if (p > spec && p[-1] == '.')
			return IMAP_SECTION_SYNTAX;
		s->text = IMAP_SECTION_BODY;
		return IMAP_SECTION_OK;
	}
	if (s->nparts > 0 && p[-1] != '.')
		return IMAP_SECTION_SYNTAX;
	if ((r = parse_text(&p, s)) != IMAP_SECTION_OK)
		return r;
	return *p == '\0' ? IMAP_SECTION_OK : IMAP_SECTION_SYNTAX;
}

static int
is_multipart(const struct mime_part *p)
{
	return p->nchildren > 0 && strcmp(str_or(p->type, ""), "multipart") ==
	    0;
}

/* Offsets a stored tree may have wrong: never past the message. */
static int
part_sane(const struct mime_message *m, const struct mime_part *p)
{
	return p->header_start <= p->body_start &&
	    p->body_start <= p->body_end && p->body_end <= m->size;
}

static int
section_missing(struct imap_section *s)
{
	s->part = NULL;
	s->off = s->len = 0;
	s->missing = 1;
	s->filter = 0;
	return IMAP_SECTION_MISSING;
}

static void
section_range(struct imap_section *s, size_t start, size_t end)
{
	s->off = start;
	s->len = end - start;
}

/*
 * RFC 9051 6.4.5: part numbers index a multipart's children; a message
 * that is not multipart has only part 1, its body; a message/rfc822
 * part's numbers go on into the message it holds.
 */
int
imap_section_resolve(const struct mime_message *m, struct imap_section *s)
{
	const struct mime_part	*node = m->root, *msg;
	size_t			 i;
	int			 at_message = 1;

	s->missing = 0;
	s->filter = 0;
	s->part = m->root;
	if (node == NULL || s->nparts > IMAP_SECTION_PARTS ||
	    (unsigned)s->text > IMAP_SECTION_MIME ||
	    (s->text == IMAP_SECTION_MIME && s->nparts == 0))
		return section_missing(s);
	for (i = 0; i < s->nparts; i++) {
		if (i > 0) {
			if (is_message(node)) {
				node = node->message;
				at_message = 1;
			} else if (!is_multipart(node))
				return section_missing(s);
		}
		if (s->parts[i] == 0)
			return section_missing(s);
		if (is_multipart(node)) {
			if (s->parts[i] > node->nchildren)
				return section_missing(s);
			node = node->children[s->parts[i] - 1];
		} else if (!at_message || s->parts[i] != 1)
			return section_missing(s);
		at_message = 0;
	}
	if (!part_sane(m, node))
		return section_missing(s);
	s->part = node;

	switch (s->text) {
	case IMAP_SECTION_BODY:
		if (s->nparts == 0)
			section_range(s, 0, m->size);
		else
			section_range(s, node->body_start, node->body_end);
		return IMAP_SECTION_OK;
	case IMAP_SECTION_MIME:
		section_range(s, node->header_start, node->body_start);
		return IMAP_SECTION_OK;
	default:
		break;
	}
	/* HEADER, TEXT: of the message itself, or of one a part holds. */
	if (s->nparts == 0)
		msg = node;
	else if (is_message(node))
		msg = node->message;
	else
		return section_missing(s);
	if (!part_sane(m, msg))
		return section_missing(s);
	if (s->text == IMAP_SECTION_TEXT)
		section_range(s, msg->body_start, msg->body_end);
	else {
		section_range(s, msg->header_start, msg->body_start);
		s->filter = s->text != IMAP_SECTION_HEADER;
	}
	return IMAP_SECTION_OK;
}

int
imap_section_find(const struct mime_message *m, const char *spec,
    struct imap_section *s)
{
	int	 r;

	if ((r = imap_section_parse(spec, s)) != IMAP_SECTION_OK)
		return r;
	return imap_section_resolve(m, s);
}

void
imap_section_name(struct imap_buf *b, const struct imap_section *s)
{
	static const char	*texts[] = {
		[IMAP_SECTION_BODY] = "",
		[IMAP_SECTION_HEADER] = "HEADER",
		[IMAP_SECTION_FIELDS] = "HEADER.FIELDS",
		[IMAP_SECTION_FIELDS_NOT] = "HEADER.FIELDS.NOT",
		[IMAP_SECTION_TEXT] = "TEXT",
		[IMAP_SECTION_MIME] = "MIME",
	};
	size_t			 i;

	for (i = 0; i < s->nparts; i++)
		imap_buf_printf(b, "%s%u", i ? "." : "", s->parts[i]);
	if (s->text == IMAP_SECTION_BODY)
		return;
	if (s->nparts > 0)
		imap_buf_addc(b, '.');
	imap_buf_adds(b, texts[s->text]);
	if (s->text != IMAP_SECTION_FIELDS &&
	    s->text != IMAP_SECTION_FIELDS_NOT)
		return;
	imap_buf_adds(b, " (");
	for (i = 0; i < s->nfields; i++) {
		if (i > 0)
			imap_buf_addc(b, ' ');
		imap_astring(b, s->fields[i], strlen(s->fields[i]), 0);
	}
	imap_buf_addc(b, ')');
}

void
imap_section_item(struct imap_buf *b, const char *item,
    const struct imap_section *s, int partial, uint64_t origin)
{
	imap_buf_adds(b, item);
	imap_buf_addc(b, '[');
	imap_section_name(b, s);
	imap_buf_addc(b, ']');
	if (partial)
		imap_buf_printf(b, "<%llu>", (unsigned long long)origin);
}

/* HEADER.FIELDS */

static int
field_listed(const char *name, size_t len, char * const *names,
    const size_t *lens, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (lens[i] == len && strncasecmp(names[i], name, len) == 0)
			return 1;
	return 0;
}

void
imap_header_fields(struct imap_buf *b, const char *h, size_t len,
    char * const *names, size_t n, int not)
{
	const char	*nl, *colon;
	size_t		 lens[IMAP_FIELDS_MAX];
	size_t		 i, pos = 0, start, next, namelen;
	int		 keep;

	/* The parser allows no more names than that. */
	if (n > IMAP_FIELDS_MAX)
		n = IMAP_FIELDS_MAX;
	for (i = 0; i < n; i++)
		lens[i] = strlen(names[i]);
	while (pos < len) {
		start = pos;
		nl = memchr(h + pos, '\n', len - pos);
		next = nl == NULL ? len : (size_t)(nl - h) + 1;
		/* The empty line ends the header block. */
		if (next - start == 1 || (next - start == 2 &&
		    h[start] == '\r'))
			break;
		/* The field goes on over its continuation lines. */
		while (next < len && (h[next] == ' ' || h[next] == '\t')) {
			nl = memchr(h + next, '\n', len - next);
			next = nl == NULL ? len : (size_t)(nl - h) + 1;
		}
		pos = next;
		colon = memchr(h + start, ':', next - start);
		if (colon == NULL || h[start] == ' ' || h[start] == '\t')
			continue;
		namelen = colon - (h + start);
		while (namelen > 0 && (h[start + namelen - 1] == ' ' ||
		    h[start + namelen - 1] == '\t'))
			namelen--;
		if (namelen == 0 || memchr(h + start, '\n', namelen) != NULL)
			continue;
		keep = field_listed(h + start, namelen, names, lens, n);
		if (keep == not)
			continue;
		imap_buf_add(b, h + start, next - start);
		if (h[next - 1] != '\n')
			imap_buf_adds(b, "\r\n");
	}
	imap_buf_adds(b, "\r\n");
}

void
imap_partial(size_t *off, size_t *len, uint64_t origin, uint64_t count)
{
	if (origin >= *len) {
		*off += *len;
		*len = 0;
		return;
	}
	*off += origin;
	*len -= origin;
	if (count < *len)
		*len = count;
}

/* BINARY */

int
imap_binary_decode(const struct mime_part *p, const char *body, size_t len,
    char **out, size_t *outlen)
{
	struct mime_part	 tmp;
	const char		*enc = p->encoding;

	*out = NULL;
	*outlen = 0;
	if (enc != NULL && strcmp(enc, "7bit") != 0 &&
	    strcmp(enc, "8bit") != 0 && strcmp(enc, "binary") != 0 &&
	    strcmp(enc, "base64") != 0 &&
	    strcmp(enc, "quoted-printable") != 0)
		return IMAP_BINARY_UNKNOWN_CTE;
	memset(&tmp, 0, sizeof(tmp));
	tmp.encoding = p->encoding;
	tmp.body_start = 0;
	tmp.body_end = len;
	tmp.size = len;
	if (mime_part_decode(&tmp, body, len, out, outlen) != MIME_OK)
		return IMAP_BINARY_NOMEM;
	return IMAP_BINARY_OK;
}

/* Reads [off, off + len) onto the end of b. */
static int
read_into(struct imap_buf *b, size_t off, size_t len, imap_read_fn rd,
    void *arg)
{
	if (len == 0)
		return IMAP_SECTION_OK;
	if (buf_reserve(b, len) == -1)
		return IMAP_SECTION_NOMEM;
	if (rd(arg, off, b->p + b->len, len) == -1)
		return IMAP_FETCH_EREAD;
	b->len += len;
	return IMAP_SECTION_OK;
}

/*
 * The header block and what is kept of it go through buffers kept from
 * one message to the next (imapd has one thread), freed when large.
 */
static int
fetch_filtered(struct imap_buf *b, const struct imap_section *s,
    int partial, uint64_t origin, uint64_t count, imap_read_fn rd, void *arg)
{
	static struct imap_buf	 hdr = IMAP_BUF_INIT, out = IMAP_BUF_INIT;
	size_t			 off = 0, len;
	int			 r;

	imap_buf_reset(&hdr);
	imap_buf_reset(&out);
	if ((r = read_into(&hdr, s->off, s->len, rd, arg)) != IMAP_SECTION_OK)
		goto done;
	imap_header_fields(&out, hdr.p, hdr.len, s->fields, s->nfields,
	    s->text == IMAP_SECTION_FIELDS_NOT);
	if (out.oom) {
		r = IMAP_SECTION_NOMEM;
		goto done;
	}
	len = out.len;
	if (partial)
		imap_partial(&off, &len, origin, count);
	imap_literal(b, out.p + off, len);
 done:
	if (hdr.cap > 64 * 1024)
		imap_buf_free(&hdr);
	if (out.cap > 64 * 1024)
		imap_buf_free(&out);
	return r;
}

static int
fetch_binary(struct imap_buf *b, const struct imap_section *s, int kind,
    int partial, uint64_t origin, uint64_t count, imap_read_fn rd, void *arg)
{
	struct imap_buf	 raw = IMAP_BUF_INIT;
	char		*dec = NULL;
	size_t		 declen = 0, off = 0, len;
	int		 r;

	if (s->text != IMAP_SECTION_BODY)
		return IMAP_SECTION_SYNTAX;
	if ((r = read_into(&raw, s->off, s->len, rd, arg)) != IMAP_SECTION_OK)
		goto done;
	if (s->nparts == 0) {
		/* BINARY[]: the message as it is. */
		dec = raw.p;
		declen = raw.len;
		raw.p = NULL;
	} else if ((r = imap_binary_decode(s->part, raw.p == NULL ? "" :
	    raw.p, raw.len, &dec, &declen)) != IMAP_BINARY_OK)
		goto done;
	if (kind == IMAP_FETCH_SECT_SIZE)
		imap_buf_printf(b, "%zu", declen);
	else {
		len = declen;
		if (partial)
			imap_partial(&off, &len, origin, count);
		imap_literal(b, dec == NULL ? "" : dec + off, len);
	}
 done:
	free(dec);
	imap_buf_free(&raw);
	return r;
}

int
imap_fetch_section(struct imap_buf *b, const struct mime_message *m,
    const struct imap_section *s, int kind, int partial, uint64_t origin,
    uint64_t count, imap_read_fn rd, void *arg)
{
	size_t	 off, len, mark = b->len;
	int	 r;

	if (kind != IMAP_FETCH_SECT_BODY && s->text != IMAP_SECTION_BODY)
		return IMAP_SECTION_SYNTAX;
	if (s->missing) {
		imap_buf_adds(b, kind == IMAP_FETCH_SECT_SIZE ? "0" : "NIL");
		return b->oom ? IMAP_SECTION_NOMEM : IMAP_SECTION_OK;
	}
	if (kind != IMAP_FETCH_SECT_BODY)
		r = fetch_binary(b, s, kind, partial, origin, count, rd, arg);
	else if (s->filter)
		r = fetch_filtered(b, s, partial, origin, count, rd, arg);
	else {
		off = s->off;
		len = s->len;
		if (partial)
			imap_partial(&off, &len, origin, count);
		imap_buf_printf(b, "{%zu}\r\n", len);
		r = read_into(b, off, len, rd, arg);
	}
	if (r == IMAP_SECTION_OK && b->oom)
		r = IMAP_SECTION_NOMEM;
	if (r != IMAP_SECTION_OK && !b->oom)
		b->len = mark;
	return r;
}
