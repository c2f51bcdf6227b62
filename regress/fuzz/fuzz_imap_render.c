/*
 * libFuzzer target for imapd/imap_render.c: the input is a raw message.
 * Whatever mime_parse() reads goes through the JSON storaged keeps (as
 * imapd gets it); ENVELOPE and BODYSTRUCTURE are rendered and must be
 * well-formed IMAP (balanced parentheses, quoted strings without CR, LF
 * or 8-bit bytes unless UTF8=ACCEPT, literals of the length they say);
 * every section of every part is resolved (the numbers must name the
 * part they were made from) and fetched as BODY, BINARY and BINARY.SIZE,
 * whole and partial.  The input's first lines are also tried as
 * section specs.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "mime.h"
#include "../../imapd/imap_render.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_INPUT	(64 * 1024)
#define FUZZ_SPEC_LINES	8

struct fuzz_msg {
	const struct mime_message	*m;
	const char			*raw;
	size_t				 len;
};

static int
fuzz_read(void *arg, size_t off, char *dst, size_t len)
{
	struct fuzz_msg	*f = arg;

	if (off > f->len || len > f->len - off)
		abort();
	memcpy(dst, f->raw + off, len);
	return 0;
}

/* One IMAP value at p (nstring, number, list); returns its end or NULL. */
static const char *
check_value(const char *p, const char *end, int utf8, int depth)
{
	unsigned long long	 n;
	char			*e;

	if (p >= end || depth > 200)
		return NULL;
	if (*p == '(') {
		p++;
		if (p < end && *p == ')')
			return NULL;	/* IMAP has no empty lists here */
		for (;;) {
			if ((p = check_value(p, end, utf8, depth + 1)) == NULL)
				return NULL;
			if (p >= end)
				return NULL;
			if (*p == ')')
				return p + 1;
			/* Bodies of a multipart follow without a space. */
			if (*p == ' ')
				p++;
			else if (*p != '(')
				return NULL;
		}
	}
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\') {
				if (++p >= end || (*p != '"' && *p != '\\'))
					return NULL;
			} else if (*p == '\r' || *p == '\n' || *p == '\0')
				return NULL;
			else if ((unsigned char)*p >= 0x80 && !utf8)
				return NULL;
		}
		return p < end ? p + 1 : NULL;
	}
	if (*p == '{' || *p == '~') {
		if (*p == '~')
			p++;
		if (p >= end || *p != '{')
			return NULL;
		n = strtoull(p + 1, &e, 10);
		if (e >= end - 2 || *e != '}' || e[1] != '\r' || e[2] != '\n')
			return NULL;
		p = e + 3;
		if (n > (unsigned long long)(end - p))
			return NULL;
		return p + n;
	}
	if (end - p >= 3 && memcmp(p, "NIL", 3) == 0)
		return p + 3;
	if (*p >= '0' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		return p;
	}
	return NULL;
}

static void
check_syntax(const struct imap_buf *b, int utf8)
{
	const char	*end;

	if (b->oom)
		abort();
	end = check_value(b->p, b->p + b->len, utf8, 0);
	if (end != b->p + b->len)
		abort();
}

static void
fetch_all_kinds(struct fuzz_msg *f, const struct imap_section *s)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 kind, partial, r;

	for (kind = IMAP_FETCH_SECT_BODY; kind <= IMAP_FETCH_SECT_SIZE;
	    kind++)
		for (partial = 0; partial < 2; partial++) {
			r = imap_fetch_section(&b, f->m, s, kind, partial, 3,
			    17, fuzz_read, f);
			if (r == IMAP_SECTION_OK &&
			    kind != IMAP_FETCH_SECT_SIZE)
				check_syntax(&b, 0);
			else if (r != IMAP_SECTION_OK && b.len != 0)
				abort();
			imap_buf_reset(&b);
		}
	imap_section_name(&b, s);
	imap_buf_free(&b);
}

/* Resolves spec, which must name want (NULL: anything, or nothing). */
static void
try_section(struct fuzz_msg *f, const char *spec,
    const struct mime_part *want)
{
	struct imap_section	 s;
	int			 r;

	r = imap_section_find(f->m, spec, &s);
	if (r == IMAP_SECTION_NOMEM)
		abort();
	if (r >= 0) {
		if (s.off > f->len || s.len > f->len - s.off)
			abort();
		if (want != NULL && r == IMAP_SECTION_OK &&
		    s.text == IMAP_SECTION_BODY && s.part != want)
			abort();
		fetch_all_kinds(f, &s);
	} else if (want != NULL)
		abort();
	imap_section_clear(&s);
}

static void	visit(struct fuzz_msg *, const struct mime_part *, char *,
		    size_t);

static void
walk(struct fuzz_msg *f, const struct mime_part *node, char *path,
    size_t plen, int at_message)
{
	size_t	 i;
	int	 n;

	if (node->nchildren > 0 && strcmp(node->type, "multipart") == 0) {
		for (i = 0; i < node->nchildren; i++) {
			n = snprintf(path + plen, 512 - plen, "%s%zu",
			    plen ? "." : "", i + 1);
			if (n < 0 || (size_t)n >= 512 - plen)
				return;
			visit(f, node->children[i], path, plen + n);
		}
	} else if (at_message) {
		n = snprintf(path + plen, 512 - plen, "%s1", plen ? "." : "");
		if (n < 0 || (size_t)n >= 512 - plen)
			return;
		visit(f, node, path, plen + n);
	}
	path[plen] = '\0';
}

static void
visit(struct fuzz_msg *f, const struct mime_part *p, char *path, size_t plen)
{
	static const char	*suffixes[] = { ".MIME", ".HEADER", ".TEXT",
	    ".HEADER.FIELDS (Subject Content-Type)",
	    ".HEADER.FIELDS.NOT (From)" };
	char			 spec[600];
	size_t			 i;
	const char		*q;
	size_t			 nparts = 1;

	path[plen] = '\0';
	for (q = path; *q != '\0'; q++)
		if (*q == '.')
			nparts++;
	/* Deeper than IMAP_SECTION_PARTS: the parser says BAD. */
	try_section(f, path, nparts <= IMAP_SECTION_PARTS ? p : NULL);
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(spec, sizeof(spec), "%s%s", path, suffixes[i]);
		try_section(f, spec, NULL);
	}
	if (p->message != NULL && p->envelope != NULL)
		walk(f, p->message, path, plen, 1);
	else
		walk(f, p, path, plen, 0);
}

static void
render_all(const struct mime_message *m, struct imap_buf *out)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 flags;

	for (flags = 0; flags <= IMAP_R_UTF8; flags++) {
		imap_render_envelope(&b, &m->envelope, flags);
		check_syntax(&b, flags);
		imap_buf_add(out, b.p, b.len);
		imap_buf_reset(&b);
		imap_render_bodystructure(&b, m->root, 0, flags);
		check_syntax(&b, flags);
		imap_buf_add(out, b.p, b.len);
		imap_buf_reset(&b);
		imap_render_bodystructure(&b, m->root, 1, flags);
		check_syntax(&b, flags);
		imap_buf_add(out, b.p, b.len);
		imap_buf_reset(&b);
	}
	imap_buf_free(&b);
}

static void
spec_lines(struct fuzz_msg *f)
{
	const char	*p = f->raw, *end = f->raw + f->len, *nl;
	char		 spec[256];
	size_t		 n;
	int		 i;

	for (i = 0; i < FUZZ_SPEC_LINES && p < end; i++) {
		nl = memchr(p, '\n', end - p);
		n = (nl == NULL ? end : nl) - p;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n < sizeof(spec)) {
			memcpy(spec, p, n);
			spec[n] = '\0';
			try_section(f, spec, NULL);
		}
		p = nl == NULL ? end : nl + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_message	*m = NULL, *m2 = NULL;
	struct imap_buf		 a = IMAP_BUF_INIT, b = IMAP_BUF_INIT;
	struct fuzz_msg		 f;
	char			*j, path[512];
	char			*names[] = { "subject", "FROM", "x-a" };

	if (size > FUZZ_MAX_INPUT)
		return 0;
	imap_header_fields(&a, (const char *)data, size, names, 3, 0);
	imap_header_fields(&a, (const char *)data, size, names, 3, 1);
	imap_buf_reset(&a);
	if (mime_parse((const char *)data, size, &m) != MIME_OK)
		return 0;
	if ((j = mime_to_json(m)) == NULL ||
	    mime_from_json(j, strlen(j), &m2) != MIME_OK)
		abort();
	free(j);
	render_all(m, &a);
	render_all(m2, &b);
	if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0)
		abort();

	f.m = m2;
	f.raw = (const char *)data;
	f.len = size;
	try_section(&f, "", m2->root);
	try_section(&f, "HEADER", NULL);
	try_section(&f, "TEXT", NULL);
	try_section(&f, "HEADER.FIELDS (Subject)", NULL);
	path[0] = '\0';
	walk(&f, m2->root, path, 0, 1);
	spec_lines(&f);

	imap_buf_free(&a);
	imap_buf_free(&b);
	mime_free(m);
	mime_free(m2);
	return 0;
}
