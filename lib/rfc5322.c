/*
 * Single header values: unfolding, RFC 2047 encoded-words, RFC 5322
 * address lists (with groups and obsolete routes), message id lists,
 * and the RFC 5256 base subject.  Every function takes a NUL-terminated
 * unfolded value and is lenient: what cannot be read is kept as it is.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"
#include "mime.h"

#define EW_MAX_CHARSET	64	/* bytes of an encoded-word's charset */

struct encoded_word {
	char		 charset[EW_MAX_CHARSET + 1];
	int		 encoding;	/* 'B' or 'Q' */
	const char	*text;
	size_t		 textlen;
	size_t		 len;		/* of the whole =?...?= */
};

enum token_kind {
	TOK_END = 0,
	TOK_ATOM,
	TOK_QUOTED,
	TOK_DLIT,
	TOK_SPECIAL
};

struct token {
	enum token_kind	 kind;
	const char	*s;		/* raw, with quotes or brackets */
	size_t		 len;
	int		 space_before;
};

struct lexer {
	const char	*p;
	const char	*comment;	/* last comment's text */
	size_t		 commentlen;
	int		 malformed;
};

struct addr_builder {
	struct textbuf	 phrase;
	struct textbuf	 local;
	struct textbuf	 domain;
	struct textbuf	 route;
	const char	*comment;
	size_t		 commentlen;
	int		 in_angle;
	int		 angle_done;
	int		 in_route;
	int		 at_seen;
	int		 words;
};

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
mime_unfold(const char *s, size_t len)
{
	struct textbuf	 tb;
	size_t		 i, start, end;

	start = 0;
	end = len;
	while (start < end && is_wsp((unsigned char)s[start]))
		start++;
	while (end > start && is_wsp((unsigned char)s[end - 1]))
		end--;
	textbuf_init(&tb);
	textbuf_add(&tb, "", 0);
	for (i = start; i < end; i++)
		if (s[i] != '\r' && s[i] != '\n' && s[i] != '\0')
			textbuf_addc(&tb, s[i]);
	return textbuf_finish(&tb, NULL);
}

/*
 * "=?charset?e?text?=" at s; a charset's RFC 2231 "*language" is
 * dropped.  The text may not hold '?' or white space.
 */
static int
ew_parse(const char *s, struct encoded_word *ew)
{
	const char	*p, *q;
	size_t		 n;

	if (s[0] != '=' || s[1] != '?')
		return 0;
	p = s + 2;
	for (q = p; *q != '\0' && *q != '?'; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f ||
		    (size_t)(q - p) >= EW_MAX_CHARSET)
			return 0;
	if (*q != '?' || q == p)
		return 0;
	n = q - p;
	memcpy(ew->charset, p, n);
	ew->charset[n] = '\0';
	if ((p = strchr(ew->charset, '*')) != NULL)
		ew->charset[p - ew->charset] = '\0';
	if (ew->charset[0] == '\0')
		return 0;
	q++;
	if (*q == 'B' || *q == 'b')
		ew->encoding = 'B';
	else if (*q == 'Q' || *q == 'q')
		ew->encoding = 'Q';
	else
		return 0;
	if (q[1] != '?')
		return 0;
	p = q + 2;
	for (q = p; *q != '\0' && *q != '?'; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
			return 0;
	if (q[0] != '?' || q[1] != '=')
		return 0;
	ew->text = p;
	ew->textlen = q - p;
	ew->len = (q + 2) - s;
	return 1;
}

/* Appends the decoded octets; 0 if the text is not valid for its encoding. */
static int
ew_decode(const struct encoded_word *ew, struct textbuf *out)
{
	const char	*t = ew->text;
	size_t		 i, n;
	char		*buf;
	int		 pad = 0;

	if (ew->encoding == 'B') {
		for (i = 0; i < ew->textlen; i++) {
			if (t[i] == '=') {
				pad++;
				continue;
			}
			if (pad || !(isalnum((unsigned char)t[i]) ||
			    t[i] == '+' || t[i] == '/'))
				return 0;
		}
		if (pad > 2)
			return 0;
		if ((buf = malloc(ew->textlen + 1)) == NULL) {
			out->error = 1;
			return 1;
		}
		n = mime_base64_decode(t, ew->textlen, buf);
		textbuf_add(out, buf, n);
		free(buf);
		return 1;
	}
	for (i = 0; i < ew->textlen; i++) {
		if (t[i] == '=') {
			if (i + 2 >= ew->textlen ||
			    hexval((unsigned char)t[i + 1]) == -1 ||
			    hexval((unsigned char)t[i + 2]) == -1)
				return 0;
			i += 2;
		}
	}
	for (i = 0; i < ew->textlen; i++) {
		if (t[i] == '=') {
			textbuf_addc(out, hexval((unsigned char)t[i + 1]) << 4 |
			    hexval((unsigned char)t[i + 2]));
			i += 2;
		} else if (t[i] == '_')
			textbuf_addc(out, ' ');
		else
			textbuf_addc(out, t[i]);
	}
	return 1;
}

/*
 * Decodes the encoded-words in s to UTF-8.  White space between two
 * encoded-words goes; adjacent words in one charset are joined before
 * conversion, so a character split across them survives.  Encoded-words
 * that do not parse stay as they are, and other 8-bit bytes are read
 * as UTF-8.
 */
char *
mime_decode_words(const char *s)
{
	struct textbuf		 out, pend;
	struct encoded_word	 ew, next;
	char			 pendcs[EW_MAX_CHARSET + 1];
	size_t			 i = 0, run, ws;
	int			 have_pend = 0;

	textbuf_init(&out);
	textbuf_init(&pend);
	textbuf_add(&out, "", 0);
	pendcs[0] = '\0';
	while (s[i] != '\0') {
		if (ew_parse(s + i, &ew)) {
			if (have_pend && strcasecmp(pendcs, ew.charset) != 0) {
				charset_to_utf8(&out, pendcs, pend.data,
				    pend.len);
				pend.len = 0;
			}
			strlcpy(pendcs, ew.charset, sizeof(pendcs));
			have_pend = 1;
			if (!ew_decode(&ew, &pend)) {
				charset_to_utf8(&out, pendcs, pend.data,
				    pend.len);
				pend.len = 0;
				have_pend = 0;
				charset_id_to_utf8(&out, CHARSET_UTF8, s + i,
				    ew.len);
			}
			i += ew.len;
			if (!have_pend)
				continue;
			for (ws = i; s[ws] == ' ' || s[ws] == '\t'; ws++)
				;
			if (ws > i && ew_parse(s + ws, &next))
				i = ws;
			continue;
		}
		if (have_pend) {
			charset_to_utf8(&out, pendcs, pend.data, pend.len);
			pend.len = 0;
			have_pend = 0;
		}
		run = i + 1;
		while (s[run] != '\0' && !(s[run] == '=' && s[run + 1] == '?'))
			run++;
		charset_id_to_utf8(&out, CHARSET_UTF8, s + i, run - i);
		i = run;
	}
	if (have_pend)
		charset_to_utf8(&out, pendcs, pend.data, pend.len);
	if (pend.error)
		out.error = 1;
	textbuf_free(&pend);
	return textbuf_finish(&out, NULL);
}

/*
 * Address lexer: skips white space and comments (remembering the
 * last comment, which names an address written as "a@b (Name)").
 */
static void
lex_skip_cfws(struct lexer *lx, int *space)
{
	const char	*p = lx->p, *start;
	int		 depth;

	for (;;) {
		if (is_wsp((unsigned char)*p)) {
			*space = 1;
			p++;
			continue;
		}
		if (*p != '(')
			break;
		*space = 1;
		start = ++p;
		depth = 1;
		while (*p != '\0' && depth > 0) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')')
				depth--;
			p++;
		}
		if (depth > 0) {
			lx->malformed = 1;
			lx->comment = start;
			lx->commentlen = p - start;
		} else {
			lx->comment = start;
			lx->commentlen = (p - 1) - start;
		}
	}
	lx->p = p;
}

static int
is_special(int c)
{
	return c != '\0' && strchr("()<>[]:;@\\,\"", c) != NULL;
}

static void
lex_next(struct lexer *lx, struct token *t)
{
	const char	*p;
	int		 space = 0;

	lex_skip_cfws(lx, &space);
	p = lx->p;
	t->s = p;
	t->space_before = space;
	if (*p == '\0') {
		t->kind = TOK_END;
		t->len = 0;
		return;
	}
	if (*p == '"' || *p == '[') {
		t->kind = *p == '"' ? TOK_QUOTED : TOK_DLIT;
		for (p++; *p != '\0' && *p != (t->kind == TOK_QUOTED ?
		    '"' : ']'); p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p == '\0')
			lx->malformed = 1;
		else
			p++;
	} else if (is_special((unsigned char)*p)) {
		t->kind = TOK_SPECIAL;
		p++;
	} else {
		t->kind = TOK_ATOM;
		while (*p != '\0' && !is_wsp((unsigned char)*p) &&
		    !is_special((unsigned char)*p))
			p++;
	}
	t->len = p - t->s;
	lx->p = p;
}

/* The text of a quoted string, escapes undone. */
static void
add_unquoted(struct textbuf *tb, const struct token *t)
{
	size_t	 i, end;

	end = t->len;
	if (end >= 2 && t->s[end - 1] == '"')
		end--;
	for (i = 1; i < end; i++) {
		if (t->s[i] == '\\' && i + 1 < end)
			i++;
		textbuf_addc(tb, t->s[i]);
	}
}

static void
builder_reset(struct addr_builder *b)
{
	b->phrase.len = b->local.len = b->domain.len = b->route.len = 0;
	b->comment = NULL;
	b->commentlen = 0;
	b->in_angle = b->angle_done = b->in_route = b->at_seen = 0;
	b->words = 0;
}

static char *
builder_string(struct textbuf *tb)
{
	char	*s;

	if ((s = malloc(tb->len + 1)) == NULL)
		return NULL;
	if (tb->len > 0)
		memcpy(s, tb->data, tb->len);
	s[tb->len] = '\0';
	return s;
}

/* The phrase decoded from RFC 2047; NULL (and no error) when empty. */
static int
builder_name(const char *raw, size_t rawlen, char **out)
{
	char	*tmp;

	*out = NULL;
	if (rawlen == 0)
		return 0;
	if ((tmp = malloc(rawlen + 1)) == NULL)
		return -1;
	memcpy(tmp, raw, rawlen);
	tmp[rawlen] = '\0';
	*out = mime_decode_words(tmp);
	free(tmp);
	return *out == NULL ? -1 : 0;
}

static struct mime_addr *
list_grow(struct mime_addrlist *l)
{
	struct mime_addr	*a;

	/* Capacity doubles at each power of two. */
	if ((l->count & (l->count - 1)) == 0) {
		a = reallocarray(l->addrs, l->count ? l->count * 2 : 1,
		    sizeof(*a));
		if (a == NULL)
			return NULL;
		l->addrs = a;
	}
	a = &l->addrs[l->count++];
	memset(a, 0, sizeof(*a));
	return a;
}

static int
list_add_marker(struct mime_addrlist *l, enum mime_addr_kind kind,
    struct textbuf *name)
{
	struct mime_addr	*a;

	if ((a = list_grow(l)) == NULL)
		return -1;
	a->kind = kind;
	if (kind == MIME_ADDR_GROUP_START) {
		if (builder_name(name->data, name->len, &a->mailbox) == -1)
			return -1;
		if (a->mailbox == NULL && (a->mailbox = strdup("")) == NULL)
			return -1;
	}
	return 0;
}

/* Ends one address; returns 1 if it had to guess. */
static int
builder_flush(struct addr_builder *b, struct mime_addrlist *l)
{
	struct mime_addr	*a;
	int			 malformed = 0;

	if (b->in_angle || b->in_route)
		malformed = 1;
	if (!b->in_angle && !b->angle_done && !b->at_seen) {
		if (b->words == 0) {
			builder_reset(b);
			return 0;
		}
		malformed = 1;
	}
	if ((a = list_grow(l)) == NULL)
		return -1;
	a->kind = MIME_ADDR_MAILBOX;
	if ((a->mailbox = builder_string(&b->local)) == NULL ||
	    (a->host = builder_string(&b->domain)) == NULL)
		return -1;
	if (b->route.len > 0 &&
	    (a->route = builder_string(&b->route)) == NULL)
		return -1;
	if (b->in_angle || b->angle_done) {
		if (builder_name(b->phrase.data, b->phrase.len, &a->name) == -1)
			return -1;
	} else if (b->at_seen && b->comment != NULL) {
		if (builder_name(b->comment, b->commentlen, &a->name) == -1)
			return -1;
	}
	builder_reset(b);
	return malformed;
}

static void
builder_word(struct addr_builder *b, const struct token *t)
{
	struct textbuf	*dst;

	if (b->in_route) {
		textbuf_add(&b->route, t->s, t->len);
		return;
	}
	dst = b->at_seen ? &b->domain : &b->local;
	textbuf_add(dst, t->s, t->len);
	if (b->in_angle || b->angle_done || b->at_seen)
		return;
	if (b->phrase.len > 0 && t->space_before)
		textbuf_addc(&b->phrase, ' ');
	if (t->kind == TOK_QUOTED)
		add_unquoted(&b->phrase, t);
	else
		textbuf_add(&b->phrase, t->s, t->len);
	b->words++;
}

/*
 * Returns 0, 1 if the list was not well formed (it is parsed anyway),
 * -1 when out of memory.
 */
int
mime_parse_addresses(const char *s, struct mime_addrlist *l)
{
	struct lexer		 lx;
	struct token		 t;
	struct addr_builder	 b;
	int			 in_group = 0, malformed = 0, r, c;

	memset(l, 0, sizeof(*l));
	memset(&lx, 0, sizeof(lx));
	memset(&b, 0, sizeof(b));
	lx.p = s;
	for (;;) {
		lex_next(&lx, &t);
		if (lx.comment != NULL) {
			b.comment = lx.comment;
			b.commentlen = lx.commentlen;
			lx.comment = NULL;
		}
		if (t.kind == TOK_END)
			break;
		if (t.kind != TOK_SPECIAL) {
			if (b.angle_done) {
				malformed = 1;
				continue;
			}
			builder_word(&b, &t);
			continue;
		}
		c = t.s[0];
		if (b.in_angle) {
			if (c == '>') {
				if (b.in_route)
					malformed = 1;
				b.in_angle = b.in_route = 0;
				b.angle_done = 1;
			} else if (c == '@' && !b.at_seen && b.local.len == 0) {
				b.in_route = 1;
				textbuf_addc(&b.route, '@');
			} else if (b.in_route && c == ',')
				textbuf_addc(&b.route, ',');
			else if (b.in_route && c == ':')
				b.in_route = 0;
			else if (c == '@' && !b.at_seen)
				b.at_seen = 1;
			else
				malformed = 1;
			continue;
		}
		switch (c) {
		case ',':
			if ((r = builder_flush(&b, l)) == -1)
				goto fail;
			malformed |= r;
			break;
		case ';':
			if ((r = builder_flush(&b, l)) == -1)
				goto fail;
			malformed |= r;
			if (in_group) {
				if (list_add_marker(l, MIME_ADDR_GROUP_END,
				    NULL) == -1)
					goto fail;
				in_group = 0;
			} else
				malformed = 1;
			break;
		case ':':
			if (in_group || b.at_seen || b.angle_done) {
				malformed = 1;
				break;
			}
			if (list_add_marker(l, MIME_ADDR_GROUP_START,
			    &b.phrase) == -1)
				goto fail;
			builder_reset(&b);
			in_group = 1;
			break;
		case '<':
			if (b.angle_done) {
				malformed = 1;
				break;
			}
			b.in_angle = 1;
			b.at_seen = 0;
			b.local.len = b.domain.len = 0;
			break;
		case '@':
			if (b.at_seen || b.angle_done)
				malformed = 1;
			else
				b.at_seen = 1;
			break;
		default:
			malformed = 1;
			break;
		}
	}
	if ((r = builder_flush(&b, l)) == -1)
		goto fail;
	malformed |= r;
	if (in_group) {
		malformed = 1;
		if (list_add_marker(l, MIME_ADDR_GROUP_END, NULL) == -1)
			goto fail;
	}
	if (b.phrase.error || b.local.error || b.domain.error ||
	    b.route.error)
		goto fail;
	textbuf_free(&b.phrase);
	textbuf_free(&b.local);
	textbuf_free(&b.domain);
	textbuf_free(&b.route);
	return malformed || lx.malformed;
 fail:
	textbuf_free(&b.phrase);
	textbuf_free(&b.local);
	textbuf_free(&b.domain);
	textbuf_free(&b.route);
	mime_addrlist_free(l);
	return -1;
}

void
mime_addrlist_free(struct mime_addrlist *l)
{
	size_t	 i;

	for (i = 0; i < l->count; i++) {
		free(l->addrs[i].name);
		free(l->addrs[i].route);
		free(l->addrs[i].mailbox);
		free(l->addrs[i].host);
	}
	free(l->addrs);
	l->addrs = NULL;
	l->count = 0;
}

static int
idlist_add(struct mime_idlist *l, const char *s, size_t len)
{
	char	**v, *id;
	size_t	  i, n = 0;

	if ((id = malloc(len + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		if (!is_wsp((unsigned char)s[i]))
			id[n++] = s[i];
	id[n] = '\0';
	if (n == 0) {
		free(id);
		return 0;
	}
	/* Capacity doubles at each power of two. */
	if ((l->count & (l->count - 1)) == 0) {
		if ((v = reallocarray(l->ids, l->count ? l->count * 2 : 1,
		    sizeof(*v))) == NULL) {
			free(id);
			return -1;
		}
		l->ids = v;
	}
	l->ids[l->count++] = id;
	return 0;
}

/*
 * Message ids of Message-ID, In-Reply-To and References, without their
 * angle brackets; text between them (comments, phrases of old mailers)
 * is skipped.  A value with no '<' at all is read as ids separated by
 * white space, and is malformed.  Returns 0, 1 if malformed, -1.
 */
int
mime_parse_msgids(const char *s, struct mime_idlist *l)
{
	const char	*p, *q;
	int		 malformed = 0;

	memset(l, 0, sizeof(*l));
	if (strchr(s, '<') == NULL) {
		for (p = s; *p != '\0'; p = q) {
			while (is_wsp((unsigned char)*p))
				p++;
			for (q = p; *q != '\0' && !is_wsp((unsigned char)*q);
			    q++)
				;
			if (q > p) {
				malformed = 1;
				if (idlist_add(l, p, q - p) == -1)
					goto fail;
			}
		}
		return malformed;
	}
	for (p = s; (p = strchr(p, '<')) != NULL; p = q) {
		p++;
		for (q = p; *q != '\0' && *q != '>' && *q != '<'; q++)
			;
		if (*q != '>') {
			malformed = 1;
			continue;
		}
		if (idlist_add(l, p, q - p) == -1)
			goto fail;
		q++;
	}
	return malformed;
 fail:
	mime_idlist_free(l);
	return -1;
}

void
mime_idlist_free(struct mime_idlist *l)
{
	size_t	 i;

	for (i = 0; i < l->count; i++)
		free(l->ids[i]);
	free(l->ids);
	l->ids = NULL;
	l->count = 0;
}

/* A subj-blob "[...]" and the white space after it; 0 if none. */
static size_t
subject_blob(const char *s)
{
	size_t	 i;

	if (s[0] != '[')
		return 0;
	for (i = 1; s[i] != '\0' && s[i] != '[' && s[i] != ']'; i++)
		;
	if (s[i] != ']')
		return 0;
	for (i++; s[i] == ' '; i++)
		;
	return i;
}

/* A subj-leader: *subj-blob ("re" / "fw" / "fwd") *WSP [blob] ":". */
static size_t
subject_refwd(const char *s)
{
	size_t	 i = 0, n;

	while ((n = subject_blob(s + i)) > 0)
		i += n;
	if (strncasecmp(s + i, "re", 2) == 0)
		i += 2;
	else if (strncasecmp(s + i, "fwd", 3) == 0)
		i += 3;
	else if (strncasecmp(s + i, "fw", 2) == 0)
		i += 2;
	else
		return 0;
	while (s[i] == ' ')
		i++;
	i += subject_blob(s + i);
	if (s[i] != ':')
		return 0;
	return i + 1;
}

/*
 * RFC 5256 section 2.1, steps 1 to 6, on a decoded subject: white
 * space collapsed, "(fwd)" trailers and "Re:", "Fwd:", "[blob]"
 * leaders and "[fwd: ...]" wrappers removed.  Case is kept; threading
 * compares base subjects case-insensitively.
 */
char *
mime_base_subject(const char *subject)
{
	char	*s, *w;
	size_t	 len, n, i, start, last, blobs;
	int	 changed, space = 0;

	if ((s = malloc(strlen(subject) + 1)) == NULL)
		return NULL;
	for (w = s, i = 0; subject[i] != '\0'; i++) {
		if (is_wsp((unsigned char)subject[i])) {
			space = 1;
			continue;
		}
		if (space && w > s)
			*w++ = ' ';
		space = 0;
		*w++ = subject[i];
	}
	*w = '\0';
	/*
	 * Removals move start and end, never the bytes, so that a subject
	 * of many thousand "Re:" or "[x]" costs linear time.
	 */
	start = 0;
	len = w - s;
	for (;;) {
		for (;;) {
			while (len > start && s[len - 1] == ' ')
				len--;
			if (len - start >= 5 &&
			    strncasecmp(s + len - 5, "(fwd)", 5) == 0) {
				len -= 5;
				continue;
			}
			break;
		}
		s[len] = '\0';
		do {
			changed = 0;
			for (;;) {
				if (s[start] == ' ')
					n = 1;
				else
					n = subject_refwd(s + start);
				if (n == 0)
					break;
				start += n;
				changed = 1;
			}
			/*
			 * Step 4, repeated with step 3 as RFC 5256 says, comes
			 * to removing every leading blob but one that is all
			 * there is.
			 */
			for (i = start, last = start, blobs = 0;
			    (n = subject_blob(s + i)) > 0; i += n, blobs++)
				last = i;
			if (blobs > 0 && s[i] != '\0') {
				start = i;
				changed = 1;
			} else if (blobs > 1) {
				start = last;
				changed = 1;
			}
		} while (changed);
		if (len - start >= 6 && strncasecmp(s + start, "[fwd:", 5) ==
		    0 && s[len - 1] == ']') {
			start += 5;
			s[--len] = '\0';
			continue;
		}
		break;
	}
	memmove(s, s + start, len - start + 1);
	return s;
}

/*
 * Content-Type and Content-Disposition (RFC 2045, 2183, 2231).
 */
struct raw_param {
	char	*name;		/* lower-cased, without the RFC 2231 suffix */
	int	 section;	/* -1: not sectioned */
	int	 extended;	/* "*": charset'language'%XX */
	char	*value;		/* unquoted */
	size_t	 valuelen;
};

static int
is_tspecial(int c)
{
	return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static int
is_token_char(int c)
{
	return c > ' ' && c != 0x7f && !is_tspecial(c);
}

static const char *
skip_cfws(const char *p)
{
	struct lexer	 lx;
	int		 space;

	memset(&lx, 0, sizeof(lx));
	lx.p = p;
	lex_skip_cfws(&lx, &space);
	return lx.p;
}

static char *
lower_dup(const char *s, size_t len)
{
	char	*d;
	size_t	 i;

	if ((d = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		d[i] = tolower((unsigned char)s[i]);
	d[len] = '\0';
	return d;
}

/* A quoted string at p (on '"'); returns the text after it. */
static const char *
read_quoted(const char *p, struct textbuf *tb, int *malformed)
{
	for (p++; *p != '\0' && *p != '"'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		textbuf_addc(tb, *p);
	}
	if (*p == '"')
		return p + 1;
	*malformed = 1;
	return p;
}

/* "name", "name*", "name*3", "name*3*". */
static int
param_name_split(struct raw_param *rp)
{
	char		*star, *end;
	const char	*errstr;
	size_t		 len;

	rp->section = -1;
	rp->extended = 0;
	if ((star = strchr(rp->name, '*')) == NULL)
		return 0;
	len = strlen(star);
	if (len == 1) {
		rp->extended = 1;
		*star = '\0';
		return 0;
	}
	end = star + len;
	if (end[-1] == '*') {
		rp->extended = 1;
		*--end = '\0';
	}
	if (star[1] == '0' && star[2] != '\0')
		return -1;
	for (len = 1; star[len] != '\0'; len++)
		if (!isdigit((unsigned char)star[len]))
			return -1;
	rp->section = strtonum(star + 1, 0, MIME_MAX_PARAMS - 1, &errstr);
	if (errstr != NULL)
		return -1;
	*star = '\0';
	return 0;
}

static void
pct_decode(struct textbuf *tb, const char *s, size_t len)
{
	size_t	 i;
	int	 hi, lo;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len &&
		    (hi = hexval((unsigned char)s[i + 1])) != -1 &&
		    (lo = hexval((unsigned char)s[i + 2])) != -1) {
			textbuf_addc(tb, hi << 4 | lo);
			i += 2;
		} else
			textbuf_addc(tb, s[i]);
	}
}

/*
 * Joins one parameter's RFC 2231 sections (or takes its plain value)
 * into UTF-8.  rp[0..n) all share the name.
 */
static char *
param_join(struct raw_param **rp, size_t n, int *malformed)
{
	struct textbuf	 bytes, out;
	struct raw_param *ext = NULL, *plain = NULL, *sec;
	char		 charset[EW_MAX_CHARSET + 1];
	const char	*v, *q1, *q2;
	size_t		 i, want, vlen, first;
	int		 found;

	for (i = 0; i < n; i++) {
		if (rp[i]->section == -1 && rp[i]->extended && ext == NULL)
			ext = rp[i];
		else if (rp[i]->section == -1 && !rp[i]->extended &&
		    plain == NULL)
			plain = rp[i];
	}
	textbuf_init(&bytes);
	textbuf_init(&out);
	textbuf_add(&out, "", 0);
	charset[0] = '\0';
	first = 0;
	if (ext == NULL) {
		for (i = 0; i < n; i++)
			if (rp[i]->section == 0)
				break;
		if (i == n && plain != NULL) {
			/* Plain value; RFC 2047 in it is common, if wrong. */
			textbuf_free(&out);
			return mime_decode_words(plain->value);
		}
		if (i == n) {
			/* Sections without a section 0: join from the first. */
			*malformed = 1;
			first = MIME_MAX_PARAMS;
			for (i = 0; i < n; i++)
				if (rp[i]->section >= 0 &&
				    (size_t)rp[i]->section < first)
					first = rp[i]->section;
		}
	}
	for (want = first; ; want++) {
		if (ext != NULL) {
			if (want > first)
				break;
			sec = ext;
		} else {
			found = 0;
			sec = NULL;
			for (i = 0; i < n; i++)
				if (rp[i]->section == (int)want) {
					if (found)
						*malformed = 1;
					else
						sec = rp[i];
					found = 1;
				}
			if (sec == NULL)
				break;
		}
		v = sec->value;
		vlen = sec->valuelen;
		if (sec->extended && want == first) {
			if ((q1 = memchr(v, '\'', vlen)) != NULL &&
			    (q2 = memchr(q1 + 1, '\'', vlen - (q1 + 1 - v))) !=
			    NULL) {
				if ((size_t)(q1 - v) <= EW_MAX_CHARSET) {
					memcpy(charset, v, q1 - v);
					charset[q1 - v] = '\0';
				}
				vlen -= (q2 + 1) - v;
				v = q2 + 1;
			} else
				*malformed = 1;
		}
		if (sec->extended)
			pct_decode(&bytes, v, vlen);
		else
			textbuf_add(&bytes, v, vlen);
	}
	for (i = 0; ext == NULL && i < n; i++)
		if (rp[i]->section >= (int)want)
			*malformed = 1;
	if (charset[0] != '\0')
		charset_to_utf8(&out, charset, bytes.data, bytes.len);
	else
		charset_id_to_utf8(&out, CHARSET_UTF8, bytes.data, bytes.len);
	if (bytes.error)
		out.error = 1;
	textbuf_free(&bytes);
	return textbuf_finish(&out, NULL);
}

static void
raw_params_free(struct raw_param *rp, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(rp[i].name);
		free(rp[i].value);
	}
	free(rp);
}

void
mime_params_free(struct mime_param *p, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

static int
params_combine(struct raw_param *rp, size_t nrp, struct mime_param **out,
    size_t *nout, int *malformed)
{
	struct raw_param	**same = NULL;
	struct mime_param	 *p = NULL;
	size_t			  i, j, k, n = 0, nsame;

	*out = NULL;
	*nout = 0;
	if (nrp == 0)
		return MIME_OK;
	if ((same = calloc(nrp, sizeof(*same))) == NULL ||
	    (p = calloc(nrp, sizeof(*p))) == NULL)
		goto nomem;
	for (i = 0; i < nrp; i++) {
		for (k = 0; k < n; k++)
			if (strcmp(p[k].name, rp[i].name) == 0)
				break;
		if (k < n)
			continue;
		nsame = 0;
		for (j = i; j < nrp; j++)
			if (strcmp(rp[j].name, rp[i].name) == 0)
				same[nsame++] = &rp[j];
		if ((p[n].name = strdup(rp[i].name)) == NULL)
			goto nomem;
		n++;
		if ((p[n - 1].value = param_join(same, nsame, malformed)) ==
		    NULL)
			goto nomem;
	}
	free(same);
	*out = p;
	*nout = n;
	return MIME_OK;
 nomem:
	free(same);
	mime_params_free(p, n);
	return MIME_ERR_NOMEM;
}

/*
 * Parses "type/subtype; a=b; ..." (or, with subtype NULL, a
 * disposition's "type; a=b").  An unreadable type leaves *type NULL;
 * bad parameters are skipped.  Both set *malformed.  Returns MIME_OK,
 * MIME_ERR_PARAMS or MIME_ERR_NOMEM.
 */
int
mime_parse_content_header(const char *s, char **type, char **subtype,
    struct mime_param **params, size_t *nparams, int *malformed)
{
	struct raw_param	*rp = NULL, *r;
	struct textbuf		 val;
	const char		*p, *q, *t, *tend;
	size_t			 nrp = 0;
	int			 ret = MIME_ERR_NOMEM;

	*type = NULL;
	if (subtype != NULL)
		*subtype = NULL;
	*params = NULL;
	*nparams = 0;
	p = skip_cfws(s);
	for (q = p; is_token_char((unsigned char)*q); q++)
		;
	tend = t = q;
	if (q > p && subtype != NULL) {
		q = skip_cfws(q);
		if (*q == '/') {
			q = skip_cfws(q + 1);
			for (t = q; is_token_char((unsigned char)*t); t++)
				;
			if (t > q) {
				if ((*type = lower_dup(p, tend - p)) == NULL ||
				    (*subtype = lower_dup(q, t - q)) == NULL)
					goto fail;
			}
		}
	} else if (q > p) {
		if ((*type = lower_dup(p, q - p)) == NULL)
			goto fail;
	}
	if (*type == NULL) {
		/* RFC 2045 5.2: an invalid type means the default one. */
		*malformed = 1;
		return MIME_OK;
	}
	p = t;
	for (;;) {
		p = skip_cfws(p);
		if (*p == '\0')
			break;
		if (*p != ';') {
			*malformed = 1;
			if ((p = strchr(p, ';')) == NULL)
				break;
		}
		p = skip_cfws(p + 1);
		if (*p == ';' || *p == '\0')
			continue;
		for (q = p; is_token_char((unsigned char)*q); q++)
			;
		t = skip_cfws(q);
		if (q == p || *t != '=') {
			*malformed = 1;
			continue;
		}
		if (nrp >= MIME_MAX_PARAMS) {
			ret = MIME_ERR_PARAMS;
			goto fail;
		}
		r = reallocarray(rp, nrp + 1, sizeof(*rp));
		if (r == NULL)
			goto fail;
		rp = r;
		r = &rp[nrp];
		memset(r, 0, sizeof(*r));
		if ((r->name = lower_dup(p, q - p)) == NULL)
			goto fail;
		nrp++;
		p = skip_cfws(t + 1);
		textbuf_init(&val);
		textbuf_add(&val, "", 0);
		if (*p == '"') {
			p = read_quoted(p, &val, malformed);
		} else {
			/* Unquoted values with spaces are common; keep them. */
			for (q = p; *q != '\0' && *q != ';'; q++)
				if (!is_token_char((unsigned char)*q))
					*malformed = 1;
			while (q > p && is_wsp((unsigned char)q[-1]))
				q--;
			textbuf_add(&val, p, q - p);
			p = q;
		}
		r->value = textbuf_finish(&val, &r->valuelen);
		if (r->value == NULL)
			goto fail;
		if (param_name_split(r) == -1) {
			*malformed = 1;
			free(r->name);
			free(r->value);
			nrp--;
		}
	}
	ret = params_combine(rp, nrp, params, nparams, malformed);
	if (ret != MIME_OK)
		goto fail;
	raw_params_free(rp, nrp);
	return MIME_OK;
 fail:
	raw_params_free(rp, nrp);
	free(*type);
	*type = NULL;
	if (subtype != NULL) {
		free(*subtype);
		*subtype = NULL;
	}
	return ret;
}
