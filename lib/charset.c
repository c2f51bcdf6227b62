/*
 * Charset conversion to UTF-8 from tables, and the growable buffer the
 * MIME code builds its strings in.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"

#define TEXTBUF_MIN	64

/* windows-1252 0x80-0x9f; iso-8859-1 text is read through it too. */
static const uint16_t cp1252_high[32] = {
	0x20ac, 0xfffd, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0xfffd, 0x017d, 0xfffd,
	0xfffd, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0xfffd, 0x017e, 0x0178
};

/* iso-8859-2 0xa0-0xff. */
static const uint16_t latin2_high[96] = {
	0x00a0, 0x0104, 0x02d8, 0x0141, 0x00a4, 0x013d, 0x015a, 0x00a7,
	0x00a8, 0x0160, 0x015e, 0x0164, 0x0179, 0x00ad, 0x017d, 0x017b,
	0x00b0, 0x0105, 0x02db, 0x0142, 0x00b4, 0x013e, 0x015b, 0x02c7,
	0x00b8, 0x0161, 0x015f, 0x0165, 0x017a, 0x02dd, 0x017e, 0x017c,
	0x0154, 0x00c1, 0x00c2, 0x0102, 0x00c4, 0x0139, 0x0106, 0x00c7,
	0x010c, 0x00c9, 0x0118, 0x00cb, 0x011a, 0x00cd, 0x00ce, 0x010e,
	0x0110, 0x0143, 0x0147, 0x00d3, 0x00d4, 0x0150, 0x00d6, 0x00d7,
	0x0158, 0x016e, 0x00da, 0x0170, 0x00dc, 0x00dd, 0x0162, 0x00df,
	0x0155, 0x00e1, 0x00e2, 0x0103, 0x00e4, 0x013a, 0x0107, 0x00e7,
	0x010d, 0x00e9, 0x0119, 0x00eb, 0x011b, 0x00ed, 0x00ee, 0x010f,
	0x0111, 0x0144, 0x0148, 0x00f3, 0x00f4, 0x0151, 0x00f6, 0x00f7,
	0x0159, 0x016f, 0x00fa, 0x0171, 0x00fc, 0x00fd, 0x0163, 0x02d9
};

/* Where iso-8859-15 differs from iso-8859-1. */
static const struct {
	unsigned char	byte;
	uint16_t	cp;
} latin9_diff[] = {
	{ 0xa4, 0x20ac }, { 0xa6, 0x0160 }, { 0xa8, 0x0161 },
	{ 0xb4, 0x017d }, { 0xb8, 0x017e }, { 0xbc, 0x0152 },
	{ 0xbd, 0x0153 }, { 0xbe, 0x0178 }
};

/* Sorted by name for bsearch(); compared case-insensitively. */
static const struct charset_alias {
	const char	*name;
	enum charset_id	 id;
} charset_aliases[] = {
	{ "646",		CHARSET_ASCII },
	{ "ansi_x3.4-1968",	CHARSET_ASCII },
	{ "ascii",		CHARSET_ASCII },
	{ "cp1252",		CHARSET_CP1252 },
	{ "cp819",		CHARSET_LATIN1 },
	{ "csascii",		CHARSET_ASCII },
	{ "csisolatin1",	CHARSET_LATIN1 },
	{ "csisolatin2",	CHARSET_LATIN2 },
	{ "ibm819",		CHARSET_LATIN1 },
	{ "iso-8859-1",		CHARSET_LATIN1 },
	{ "iso-8859-15",	CHARSET_LATIN9 },
	{ "iso-8859-2",		CHARSET_LATIN2 },
	{ "iso-ir-100",		CHARSET_LATIN1 },
	{ "iso-ir-101",		CHARSET_LATIN2 },
	{ "iso646-us",		CHARSET_ASCII },
	{ "iso8859-1",		CHARSET_LATIN1 },
	{ "iso8859-15",		CHARSET_LATIN9 },
	{ "iso8859-2",		CHARSET_LATIN2 },
	{ "iso_8859-1",		CHARSET_LATIN1 },
	{ "iso_8859-15",	CHARSET_LATIN9 },
	{ "iso_8859-1:1987",	CHARSET_LATIN1 },
	{ "iso_8859-2",		CHARSET_LATIN2 },
	{ "iso_8859-2:1987",	CHARSET_LATIN2 },
	{ "l1",			CHARSET_LATIN1 },
	{ "l2",			CHARSET_LATIN2 },
	{ "latin-9",		CHARSET_LATIN9 },
	{ "latin1",		CHARSET_LATIN1 },
	{ "latin2",		CHARSET_LATIN2 },
	{ "latin9",		CHARSET_LATIN9 },
	{ "us",			CHARSET_ASCII },
	{ "us-ascii",		CHARSET_ASCII },
	{ "utf-8",		CHARSET_UTF8 },
	{ "utf8",		CHARSET_UTF8 },
	{ "windows-1252",	CHARSET_CP1252 },
};

void
textbuf_init(struct textbuf *tb)
{
	memset(tb, 0, sizeof(*tb));
}

void
textbuf_free(struct textbuf *tb)
{
	free(tb->data);
	memset(tb, 0, sizeof(*tb));
}

int
textbuf_error(const struct textbuf *tb)
{
	return tb->error;
}

static int
textbuf_reserve(struct textbuf *tb, size_t more)
{
	size_t	 need, ncap;
	char	*p;

	if (tb->error)
		return -1;
	/* One spare byte for the NUL textbuf_finish() adds. */
	if (more >= TEXTBUF_MAX || tb->len >= TEXTBUF_MAX - more) {
		tb->error = 1;
		return -1;
	}
	need = tb->len + more + 1;
	if (need <= tb->cap)
		return 0;
	ncap = tb->cap ? tb->cap : TEXTBUF_MIN;
	while (ncap < need)
		ncap *= 2;
	if ((p = realloc(tb->data, ncap)) == NULL) {
		tb->error = 1;
		return -1;
	}
	tb->data = p;
	tb->cap = ncap;
	return 0;
}

void
textbuf_add(struct textbuf *tb, const void *p, size_t len)
{
	if (len == 0 || textbuf_reserve(tb, len) == -1)
		return;
	memcpy(tb->data + tb->len, p, len);
	tb->len += len;
}

void
textbuf_addc(struct textbuf *tb, int c)
{
	if (textbuf_reserve(tb, 1) == -1)
		return;
	tb->data[tb->len++] = (char)c;
}

void
textbuf_addstr(struct textbuf *tb, const char *s)
{
	textbuf_add(tb, s, strlen(s));
}

void
textbuf_add_codepoint(struct textbuf *tb, uint32_t cp)
{
	unsigned char	 u[4];
	size_t		 n;

	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = UTF8_REPLACEMENT;
	if (cp < 0x80) {
		u[0] = cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = 0xc0 | (cp >> 6);
		u[1] = 0x80 | (cp & 0x3f);
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = 0xe0 | (cp >> 12);
		u[1] = 0x80 | ((cp >> 6) & 0x3f);
		u[2] = 0x80 | (cp & 0x3f);
		n = 3;
	} else {
		u[0] = 0xf0 | (cp >> 18);
		u[1] = 0x80 | ((cp >> 12) & 0x3f);
		u[2] = 0x80 | ((cp >> 6) & 0x3f);
		u[3] = 0x80 | (cp & 0x3f);
		n = 4;
	}
	textbuf_add(tb, u, n);
}

char *
textbuf_finish(struct textbuf *tb, size_t *lenp)
{
	char	*s;

	if (textbuf_reserve(tb, 0) == -1) {
		textbuf_free(tb);
		return NULL;
	}
	tb->data[tb->len] = '\0';
	s = tb->data;
	if (lenp != NULL)
		*lenp = tb->len;
	memset(tb, 0, sizeof(*tb));
	return s;
}

size_t
utf8_decode(const unsigned char *p, size_t len, uint32_t *cpp)
{
	uint32_t	 cp, min;
	size_t		 n, i;

	if (len == 0)
		return 0;
	if (p[0] < 0x80) {
		*cpp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
		min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
		min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cpp = cp;
	return n;
}

int
utf8_valid(const void *vp, size_t len)
{
	const unsigned char	*p = vp;
	size_t			 i = 0, n;
	uint32_t		 cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0)
			return 0;
		i += n;
	}
	return 1;
}

static int
charset_alias_cmp(const void *key, const void *elem)
{
	const struct charset_alias	*a = elem;

	return strcasecmp(key, a->name);
}

enum charset_id
charset_lookup(const char *name)
{
	const struct charset_alias	*a;

	if (name == NULL)
		return CHARSET_ASCII;
	a = bsearch(name, charset_aliases,
	    sizeof(charset_aliases) / sizeof(charset_aliases[0]),
	    sizeof(charset_aliases[0]), charset_alias_cmp);
	return a == NULL ? CHARSET_UNKNOWN : a->id;
}

const char *
charset_name(enum charset_id id)
{
	switch (id) {
	case CHARSET_UTF8:
		return "utf-8";
	case CHARSET_ASCII:
		return "us-ascii";
	case CHARSET_LATIN1:
		return "iso-8859-1";
	case CHARSET_LATIN9:
		return "iso-8859-15";
	case CHARSET_CP1252:
		return "windows-1252";
	case CHARSET_LATIN2:
		return "iso-8859-2";
	default:
		return "unknown";
	}
}

static uint32_t
charset_high_byte(enum charset_id id, unsigned char c)
{
	size_t	 i;

	switch (id) {
	case CHARSET_LATIN1:
	case CHARSET_CP1252:
		return c < 0xa0 ? cp1252_high[c - 0x80] : c;
	case CHARSET_LATIN9:
		for (i = 0; i < sizeof(latin9_diff) / sizeof(latin9_diff[0]);
		    i++)
			if (latin9_diff[i].byte == c)
				return latin9_diff[i].cp;
		return c < 0xa0 ? UTF8_REPLACEMENT : c;
	case CHARSET_LATIN2:
		return c < 0xa0 ? UTF8_REPLACEMENT : latin2_high[c - 0xa0];
	default:
		return UTF8_REPLACEMENT;
	}
}

/*
 * us-ascii text with 8-bit bytes is in practice UTF-8 that was not
 * labelled, so it is read as UTF-8: valid sequences stay, every other
 * byte becomes U+FFFD.
 */
void
charset_id_to_utf8(struct textbuf *out, enum charset_id id, const void *vp,
    size_t len)
{
	const unsigned char	*p = vp;
	size_t			 i = 0, n, run;
	uint32_t		 cp;

	while (i < len && !out->error) {
		for (run = i; run < len && p[run] < 0x80; run++)
			;
		textbuf_add(out, p + i, run - i);
		if ((i = run) >= len)
			break;
		switch (id) {
		case CHARSET_UTF8:
		case CHARSET_ASCII:
			if ((n = utf8_decode(p + i, len - i, &cp)) == 0) {
				textbuf_add_codepoint(out, UTF8_REPLACEMENT);
				i++;
			} else {
				textbuf_add(out, p + i, n);
				i += n;
			}
			break;
		default:
			textbuf_add_codepoint(out, charset_high_byte(id, p[i]));
			i++;
			break;
		}
	}
}

void
charset_to_utf8(struct textbuf *out, const char *charset, const void *p,
    size_t len)
{
	charset_id_to_utf8(out, charset_lookup(charset), p, len);
}
