/*
 * The MIME structure of one message, parsed once at delivery: header
 * blocks, body parts and their offsets, envelopes of the message and
 * of the messages inside it, preview and hasAttachment.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"
#include "mime.h"

struct header_field {
	const char	*name;
	size_t		 namelen;
	size_t		 value_start;
	size_t		 value_end;
};

struct header_block {
	struct header_field	 fields[MIME_MAX_FIELDS];
	size_t			 nfields;
	size_t			 body_start;
	int			 malformed;
};

struct parser {
	const char	*raw;
	size_t		 len;
	size_t		 nparts;
	int		 error;
	int		 flags;
};

static struct mime_part	*parse_part(struct parser *, size_t, size_t,
			    int, int, struct mime_envelope *);

const char *
mime_strerror(int e)
{
	switch (e) {
	case MIME_OK:
		return "no error";
	case MIME_ERR_SIZE:
		return "message too large";
	case MIME_ERR_LINE:
		return "header line too long";
	case MIME_ERR_HEADER:
		return "header block too large";
	case MIME_ERR_FIELDS:
		return "too many header fields";
	case MIME_ERR_DEPTH:
		return "MIME parts nested too deeply";
	case MIME_ERR_PARTS:
		return "too many MIME parts";
	case MIME_ERR_PARAMS:
		return "too many header parameters";
	case MIME_ERR_NOMEM:
		return "out of memory";
	case MIME_ERR_JSON:
		return "invalid MIME structure JSON";
	default:
		return "unknown MIME error";
	}
}

static int
is_field_name_char(int c)
{
	return c > ' ' && c < 0x7f && c != ':';
}

/*
 * Splits the header block at start into fields.  It ends at an empty
 * line, or (malformed) at the first line that is neither a field nor
 * a continuation, which then starts the body.
 */
static int
scan_header(struct parser *ps, size_t start, size_t end, int is_root,
    struct header_block *hb)
{
	const char		*raw = ps->raw, *nl, *colon;
	struct header_field	*f;
	size_t			 pos = start, next, linelen, scan, total = 0;
	size_t			 i, namelen;
	int			 toolong;

	hb->nfields = 0;
	hb->malformed = 0;
	hb->body_start = end;
	while (pos < end) {
		scan = end - pos;
		if (scan > MIME_MAX_LINE + 2)
			scan = MIME_MAX_LINE + 2;
		nl = memchr(raw + pos, '\n', scan);
		next = nl == NULL ? end : (size_t)(nl - raw) + 1;
		linelen = next - pos;
		if (nl != NULL)
			linelen--;
		if (linelen > 0 && raw[pos + linelen - 1] == '\r')
			linelen--;
		/*
		 * A long line is an error only if it belongs to the header;
		 * a long first line of a body without a header is body.
		 */
		toolong = linelen > MIME_MAX_LINE ||
		    (nl == NULL && scan < end - pos);
		if (toolong)
			linelen = MIME_MAX_LINE;
		if (linelen == 0) {
			hb->body_start = next;
			return MIME_OK;
		}
		if ((total += next - pos) > MIME_MAX_HEADER)
			return MIME_ERR_HEADER;
		if (raw[pos] == ' ' || raw[pos] == '\t') {
			if (toolong)
				return MIME_ERR_LINE;
			if (hb->nfields > 0)
				hb->fields[hb->nfields - 1].value_end = next;
			else
				hb->malformed = 1;
			pos = next;
			continue;
		}
		if (is_root && pos == start && linelen > 5 && !toolong &&
		    memcmp(raw + pos, "From ", 5) == 0) {
			/* An mbox separator someone left in. */
			hb->malformed = 1;
			pos = next;
			continue;
		}
		colon = memchr(raw + pos, ':', linelen);
		namelen = colon == NULL ? 0 : (size_t)(colon - (raw + pos));
		while (namelen > 0 && (raw[pos + namelen - 1] == ' ' ||
		    raw[pos + namelen - 1] == '\t'))
			namelen--;
		for (i = 0; i < namelen; i++)
			if (!is_field_name_char((unsigned char)raw[pos + i]))
				break;
		if (namelen == 0 || i < namelen) {
			hb->malformed = 1;
			hb->body_start = pos;
			return MIME_OK;
		}
		if (toolong)
			return MIME_ERR_LINE;
		if (hb->nfields >= MIME_MAX_FIELDS)
			return MIME_ERR_FIELDS;
		f = &hb->fields[hb->nfields++];
		f->name = raw + pos;
		f->namelen = namelen;
		f->value_start = (colon - raw) + 1;
		f->value_end = next;
		pos = next;
	}
	/* No empty line: all header, empty body. */
	hb->body_start = end;
	return MIME_OK;
}

static const struct header_field *
header_find(const struct header_block *hb, const char *name)
{
	size_t	 i, len = strlen(name);

	for (i = 0; i < hb->nfields; i++)
		if (hb->fields[i].namelen == len &&
		    strncasecmp(hb->fields[i].name, name, len) == 0)
			return &hb->fields[i];
	return NULL;
}

/* The first such field unfolded; 0 if absent, -1 when out of memory. */
static int
header_value(struct parser *ps, const struct header_block *hb,
    const char *name, char **out)
{
	const struct header_field	*f;

	*out = NULL;
	if ((f = header_find(hb, name)) == NULL)
		return 0;
	if ((*out = mime_unfold(ps->raw + f->value_start,
	    f->value_end - f->value_start)) == NULL) {
		ps->error = MIME_ERR_NOMEM;
		return -1;
	}
	return 1;
}

static char *
lower_token(const char *s)
{
	size_t	 n, i;
	char	*d;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strcspn(s, " \t(;");
	if ((d = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = tolower((unsigned char)s[i]);
	d[n] = '\0';
	return d;
}

static int
split_languages(struct mime_part *p, const char *s)
{
	const char	*q;
	char		**v;
	size_t		 n;

	while (*s != '\0') {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '(') {
			/* Comments are not languages. */
			if ((q = strchr(s, ')')) == NULL)
				break;
			s = q + 1;
			continue;
		}
		n = strcspn(s, " \t,(");
		if (n == 0)
			continue;
		v = reallocarray(p->languages, p->nlanguages + 1, sizeof(*v));
		if (v == NULL)
			return -1;
		p->languages = v;
		if ((v[p->nlanguages] = strndup(s, n)) == NULL)
			return -1;
		p->nlanguages++;
		s += n;
	}
	return 0;
}

static int
set_string(char **dst, const char *src)
{
	return (*dst = strdup(src)) == NULL ? -1 : 0;
}

/* Content-* fields of one part. */
static int
part_headers(struct parser *ps, struct mime_part *p,
    const struct header_block *hb, int in_digest)
{
	char	*v = NULL, *type = NULL, *subtype = NULL;
	int	 r, malformed = 0;

	if ((r = header_value(ps, hb, "Content-Type", &v)) == -1)
		return -1;
	if (r == 1) {
		r = mime_parse_content_header(v, &type, &subtype, &p->params,
		    &p->nparams, &malformed);
		free(v);
		if (r != MIME_OK) {
			ps->error = r;
			return -1;
		}
	}
	if (type == NULL) {
		if (r == 1)
			malformed = 1;
		p->flags |= MIME_F_CT_DEFAULT;
		mime_params_free(p->params, p->nparams);
		p->params = NULL;
		p->nparams = 0;
		if (set_string(&p->type, in_digest ? "message" : "text") ==
		    -1 || set_string(&p->subtype, in_digest ? "rfc822" :
		    "plain") == -1)
			goto nomem;
		if (!in_digest) {
			if ((p->params = calloc(1, sizeof(*p->params))) ==
			    NULL)
				goto nomem;
			p->nparams = 1;
			if (set_string(&p->params[0].name, "charset") == -1 ||
			    set_string(&p->params[0].value, "us-ascii") == -1)
				goto nomem;
		}
	} else {
		p->type = type;
		p->subtype = subtype;
	}

	if ((r = header_value(ps, hb, "Content-Transfer-Encoding", &v)) == -1)
		return -1;
	if (r == 1) {
		p->encoding = lower_token(v);
		free(v);
		if (p->encoding == NULL)
			goto nomem;
		if (p->encoding[0] == '\0') {
			free(p->encoding);
			p->encoding = NULL;
			malformed = 1;
		}
	}
	if ((r = header_value(ps, hb, "Content-Disposition", &v)) == -1)
		return -1;
	if (r == 1) {
		r = mime_parse_content_header(v, &p->disposition, NULL,
		    &p->disp_params, &p->ndisp_params, &malformed);
		free(v);
		if (r != MIME_OK) {
			ps->error = r;
			return -1;
		}
	}
	if ((r = header_value(ps, hb, "Content-Language", &v)) == -1)
		return -1;
	if (r == 1) {
		r = split_languages(p, v);
		free(v);
		if (r == -1)
			goto nomem;
	}
	if (header_value(ps, hb, "Content-ID", &p->id) == -1 ||
	    header_value(ps, hb, "Content-Description", &p->description) ==
	    -1 ||
	    header_value(ps, hb, "Content-Location", &p->location) == -1 ||
	    header_value(ps, hb, "Content-MD5", &p->md5) == -1)
		return -1;
	if (malformed)
		p->flags |= MIME_F_MALFORMED;
	return 0;
 nomem:
	ps->error = MIME_ERR_NOMEM;
	return -1;
}

static int
envelope_addresses(struct parser *ps, const char *raw,
    struct mime_addrlist *l)
{
	int	 r;

	if (raw == NULL)
		return 0;
	if ((r = mime_parse_addresses(raw, l)) == -1) {
		ps->error = MIME_ERR_NOMEM;
		return -1;
	}
	return r;
}

static int
envelope_ids(struct parser *ps, const char *raw, struct mime_idlist *l)
{
	int	 r;

	if (raw == NULL)
		return 0;
	if ((r = mime_parse_msgids(raw, l)) == -1) {
		ps->error = MIME_ERR_NOMEM;
		return -1;
	}
	return r;
}

/* Returns 1 if some field was malformed, 0, or -1 on error. */
static int
parse_envelope(struct parser *ps, const struct header_block *hb,
    struct mime_envelope *env)
{
	int	 r, malformed = 0;

	if (header_value(ps, hb, "Date", &env->date) == -1 ||
	    header_value(ps, hb, "Subject", &env->subject) == -1 ||
	    header_value(ps, hb, "From", &env->from) == -1 ||
	    header_value(ps, hb, "Sender", &env->sender) == -1 ||
	    header_value(ps, hb, "Reply-To", &env->reply_to) == -1 ||
	    header_value(ps, hb, "To", &env->to) == -1 ||
	    header_value(ps, hb, "Cc", &env->cc) == -1 ||
	    header_value(ps, hb, "Bcc", &env->bcc) == -1 ||
	    header_value(ps, hb, "In-Reply-To", &env->in_reply_to) == -1 ||
	    header_value(ps, hb, "Message-ID", &env->message_id) == -1 ||
	    header_value(ps, hb, "References", &env->references) == -1)
		return -1;
	if (env->subject != NULL) {
		if ((env->subject_utf8 = mime_decode_words(env->subject)) ==
		    NULL || (env->base_subject =
		    mime_base_subject(env->subject_utf8)) == NULL) {
			ps->error = MIME_ERR_NOMEM;
			return -1;
		}
	}
	if ((r = envelope_addresses(ps, env->from, &env->from_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_addresses(ps, env->sender, &env->sender_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_addresses(ps, env->reply_to,
	    &env->reply_to_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_addresses(ps, env->to, &env->to_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_addresses(ps, env->cc, &env->cc_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_addresses(ps, env->bcc, &env->bcc_list)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_ids(ps, env->message_id, &env->message_ids)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_ids(ps, env->in_reply_to,
	    &env->in_reply_to_ids)) == -1)
		return -1;
	malformed |= r;
	if ((r = envelope_ids(ps, env->references, &env->reference_ids)) ==
	    -1)
		return -1;
	malformed |= r;
	return malformed;
}

void
mime_envelope_clear(struct mime_envelope *env)
{
	free(env->date);
	free(env->subject);
	free(env->from);
	free(env->sender);
	free(env->reply_to);
	free(env->to);
	free(env->cc);
	free(env->bcc);
	free(env->in_reply_to);
	free(env->message_id);
	free(env->references);
	free(env->subject_utf8);
	free(env->base_subject);
	mime_addrlist_free(&env->from_list);
	mime_addrlist_free(&env->sender_list);
	mime_addrlist_free(&env->reply_to_list);
	mime_addrlist_free(&env->to_list);
	mime_addrlist_free(&env->cc_list);
	mime_addrlist_free(&env->bcc_list);
	mime_idlist_free(&env->message_ids);
	mime_idlist_free(&env->in_reply_to_ids);
	mime_idlist_free(&env->reference_ids);
	memset(env, 0, sizeof(*env));
}

static size_t
count_lines(const char *p, size_t len)
{
	const char	*nl, *end = p + len;
	size_t		 n = 0;

	while (p < end && (nl = memchr(p, '\n', end - p)) != NULL) {
		n++;
		p = nl + 1;
	}
	if (p < end)
		n++;
	return n;
}

static int
add_child(struct parser *ps, struct mime_part *parent, size_t start,
    size_t end, int depth)
{
	struct mime_part	**v, *c;

	c = parse_part(ps, start, end, depth + 1,
	    strcmp(parent->subtype, "digest") == 0, NULL);
	if (c == NULL)
		return -1;
	v = reallocarray(parent->children, parent->nchildren + 1, sizeof(*v));
	if (v == NULL) {
		mime_part_free(c);
		ps->error = MIME_ERR_NOMEM;
		return -1;
	}
	parent->children = v;
	v[parent->nchildren++] = c;
	return 0;
}

/*
 * A delimiter line: "--" boundary, then "--" for the close delimiter,
 * then only transport padding.  Returns 0 (not one), 1 or 2 (close).
 */
static int
is_delimiter(const char *line, size_t len, const char *boundary,
    size_t blen)
{
	size_t	 i;
	int	 kind = 1;

	if (len < blen + 2 || line[0] != '-' || line[1] != '-' ||
	    memcmp(line + 2, boundary, blen) != 0)
		return 0;
	i = blen + 2;
	if (i + 1 < len && line[i] == '-' && line[i + 1] == '-') {
		kind = 2;
		i += 2;
	}
	for (; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' &&
		    line[i] != '\n')
			return 0;
	return kind;
}

/* RFC 2046 5.1.1: the body parts between the delimiter lines. */
static int
split_multipart(struct parser *ps, struct mime_part *p, const char *boundary,
    int depth)
{
	const char	*raw = ps->raw, *nl;
	size_t		 pos = p->body_start, end = p->body_end, next;
	size_t		 blen = strlen(boundary), part_start = 0, part_end;
	int		 open = 0, kind, closed = 0;

	while (pos < end) {
		nl = memchr(raw + pos, '\n', end - pos);
		next = nl == NULL ? end : (size_t)(nl - raw) + 1;
		kind = is_delimiter(raw + pos, next - pos, boundary, blen);
		if (kind != 0) {
			if (open) {
				/* The line break before belongs to it. */
				part_end = pos;
				if (part_end > part_start &&
				    raw[part_end - 1] == '\n')
					part_end--;
				if (part_end > part_start &&
				    raw[part_end - 1] == '\r')
					part_end--;
				if (add_child(ps, p, part_start, part_end,
				    depth) == -1)
					return -1;
			}
			if (kind == 2) {
				closed = 1;
				break;
			}
			open = 1;
			part_start = next;
		}
		pos = next;
	}
	if (!closed) {
		p->flags |= MIME_F_NOCLOSE | MIME_F_MALFORMED;
		if (open && add_child(ps, p, part_start, end, depth) == -1)
			return -1;
	}
	return 0;
}

/* A multipart that cannot be split is read as one text/plain body. */
static int
multipart_as_text(struct parser *ps, struct mime_part *p)
{
	p->flags |= MIME_F_MALFORMED;
	free(p->type);
	free(p->subtype);
	p->subtype = NULL;
	if ((p->type = strdup("text")) == NULL ||
	    (p->subtype = strdup("plain")) == NULL) {
		ps->error = MIME_ERR_NOMEM;
		return -1;
	}
	return 0;
}

static int
encoding_is_identity(const char *enc)
{
	return enc == NULL || strcmp(enc, "7bit") == 0 ||
	    strcmp(enc, "8bit") == 0 || strcmp(enc, "binary") == 0;
}

/*
 * The part at [start, end): header block, then body.  With env set, it
 * is a message whose envelope is wanted too.
 */
static struct mime_part *
parse_part(struct parser *ps, size_t start, size_t end, int depth,
    int in_digest, struct mime_envelope *env)
{
	struct header_block	*hb;
	struct mime_part	*p;
	const char		*boundary;
	int			 r;

	if (depth > MIME_MAX_DEPTH) {
		ps->error = MIME_ERR_DEPTH;
		return NULL;
	}
	if (++ps->nparts > MIME_MAX_PARTS) {
		ps->error = MIME_ERR_PARTS;
		return NULL;
	}
	if ((hb = malloc(sizeof(*hb))) == NULL ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		free(hb);
		ps->error = MIME_ERR_NOMEM;
		return NULL;
	}
	if ((r = scan_header(ps, start, end, depth == 0, hb)) != MIME_OK) {
		ps->error = r;
		goto fail;
	}
	if (hb->malformed)
		p->flags |= MIME_F_MALFORMED;
	p->header_start = start;
	p->body_start = hb->body_start;
	p->body_end = end;
	p->size = end - hb->body_start;
	p->lines = count_lines(ps->raw + p->body_start, p->size);
	if (part_headers(ps, p, hb, in_digest) == -1)
		goto fail;
	if (env != NULL) {
		if ((r = parse_envelope(ps, hb, env)) == -1)
			goto fail;
		if (r)
			p->flags |= MIME_F_MALFORMED;
	}
	free(hb);
	hb = NULL;

	if (strcmp(p->type, "multipart") == 0) {
		boundary = mime_param_get(p->params, p->nparams, "boundary");
		if (boundary == NULL || boundary[0] == '\0') {
			if (multipart_as_text(ps, p) == -1)
				goto fail;
		} else if (split_multipart(ps, p, boundary, depth) == -1)
			goto fail;
		else if (p->nchildren == 0 && multipart_as_text(ps, p) == -1)
			goto fail;
	} else if (strcmp(p->type, "message") == 0 &&
	    (strcmp(p->subtype, "rfc822") == 0 ||
	    strcmp(p->subtype, "global") == 0)) {
		if (!encoding_is_identity(p->encoding))
			p->flags |= MIME_F_MALFORMED;
		else {
			if ((p->envelope = calloc(1, sizeof(*p->envelope))) ==
			    NULL) {
				ps->error = MIME_ERR_NOMEM;
				goto fail;
			}
			p->message = parse_part(ps, p->body_start, p->body_end,
			    depth + 1, 0, p->envelope);
			if (p->message == NULL)
				goto fail;
		}
	}
	ps->flags |= p->flags;
	return p;
 fail:
	free(hb);
	mime_part_free(p);
	return NULL;
}

void
mime_part_free(struct mime_part *p)
{
	size_t	 i;

	if (p == NULL)
		return;
	free(p->type);
	free(p->subtype);
	mime_params_free(p->params, p->nparams);
	free(p->encoding);
	free(p->id);
	free(p->description);
	free(p->disposition);
	mime_params_free(p->disp_params, p->ndisp_params);
	for (i = 0; i < p->nlanguages; i++)
		free(p->languages[i]);
	free(p->languages);
	free(p->location);
	free(p->md5);
	if (p->envelope != NULL) {
		mime_envelope_clear(p->envelope);
		free(p->envelope);
	}
	mime_part_free(p->message);
	for (i = 0; i < p->nchildren; i++)
		mime_part_free(p->children[i]);
	free(p->children);
	free(p);
}

void
mime_free(struct mime_message *m)
{
	if (m == NULL)
		return;
	mime_envelope_clear(&m->envelope);
	mime_part_free(m->root);
	free(m->preview);
	free(m);
}

const char *
mime_param_get(const struct mime_param *params, size_t n, const char *name)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcasecmp(params[i].name, name) == 0)
			return params[i].value;
	return NULL;
}

const char *
mime_part_charset(const struct mime_part *p)
{
	const char	*cs;

	cs = mime_param_get(p->params, p->nparams, "charset");
	return cs == NULL ? "us-ascii" : cs;
}

const char *
mime_part_filename(const struct mime_part *p)
{
	const char	*fn;

	fn = mime_param_get(p->disp_params, p->ndisp_params, "filename");
	if (fn == NULL)
		fn = mime_param_get(p->params, p->nparams, "name");
	return fn;
}

/*
 * An attachment: a disposition of "attachment", or a filename, or a
 * message/rfc822 not shown inline.  An inline image counts only with a
 * Content-Disposition filename: pictures in HTML mail are not
 * attachments.
 */
int
mime_part_is_attachment(const struct mime_part *p)
{
	int	 inl;

	if (strcmp(p->type, "multipart") == 0)
		return 0;
	if (p->disposition != NULL && strcmp(p->disposition, "attachment") == 0)
		return 1;
	inl = p->disposition != NULL && strcmp(p->disposition, "inline") == 0;
	if (strcmp(p->type, "image") == 0 && inl)
		return mime_param_get(p->disp_params, p->ndisp_params,
		    "filename") != NULL;
	if (mime_part_filename(p) != NULL)
		return 1;
	if (strcmp(p->type, "message") == 0 && p->message != NULL && !inl)
		return 1;
	return 0;
}

static int
tree_has_attachment(const struct mime_part *p)
{
	size_t	 i;

	if (mime_part_is_attachment(p))
		return 1;
	for (i = 0; i < p->nchildren; i++)
		if (tree_has_attachment(p->children[i]))
			return 1;
	return 0;
}

static const signed char b64_value[256] = {
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
	-1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
};

/*
 * Base64 as mail has it: characters outside the alphabet are skipped,
 * '=' ends a group (concatenated encodings go on decoding).  out must
 * hold len bytes.
 */
size_t
mime_base64_decode(const char *in, size_t len, char *out)
{
	uint32_t	 acc = 0;
	size_t		 i, o = 0;
	int		 v, bits = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '=') {
			acc = 0;
			bits = 0;
			continue;
		}
		if ((v = b64_value[(unsigned char)in[i]]) == -1)
			continue;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (acc >> bits) & 0xff;
			acc &= (1U << bits) - 1;
		}
	}
	return o;
}

static int
qp_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Quoted-printable (RFC 2045 6.7): "=XX" (lower case too), soft line
 * breaks, trailing white space dropped; a '=' that starts neither is
 * kept.  Line breaks stay as they were.  out must hold len bytes.
 */
size_t
mime_qp_decode(const char *in, size_t len, char *out)
{
	size_t	 i = 0, j, o = 0;
	int	 hi, lo;

	while (i < len) {
		if (in[i] == '=') {
			if (i + 2 < len && (hi = qp_hex((unsigned char)
			    in[i + 1])) != -1 && (lo = qp_hex((unsigned char)
			    in[i + 2])) != -1) {
				out[o++] = hi << 4 | lo;
				i += 3;
				continue;
			}
			for (j = i + 1; j < len && (in[j] == ' ' ||
			    in[j] == '\t'); j++)
				;
			if (j == len) {
				i = len;
				continue;
			}
			if (in[j] == '\n') {
				i = j + 1;
				continue;
			}
			if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') {
				i = j + 2;
				continue;
			}
			out[o++] = '=';
			i++;
			continue;
		}
		if (in[i] == ' ' || in[i] == '\t') {
			for (j = i; j < len && (in[j] == ' ' || in[j] == '\t');
			    j++)
				;
			if (j == len || in[j] == '\n' || (in[j] == '\r' &&
			    j + 1 < len && in[j + 1] == '\n')) {
				i = j;
				continue;
			}
			memcpy(out + o, in + i, j - i);
			o += j - i;
			i = j;
			continue;
		}
		out[o++] = in[i++];
	}
	return o;
}

static int
decode_range(const struct mime_part *p, const char *raw, size_t rawlen,
    size_t max, char **out, size_t *outlen)
{
	size_t	 len;
	char	*buf;

	*out = NULL;
	*outlen = 0;
	if (p->body_start > p->body_end || p->body_end > rawlen)
		return MIME_ERR_SIZE;
	len = p->body_end - p->body_start;
	if (len > max)
		len = max;
	if ((buf = malloc(len + 1)) == NULL)
		return MIME_ERR_NOMEM;
	raw += p->body_start;
	if (p->encoding != NULL && strcmp(p->encoding, "base64") == 0)
		len = mime_base64_decode(raw, len, buf);
	else if (p->encoding != NULL &&
	    strcmp(p->encoding, "quoted-printable") == 0)
		len = mime_qp_decode(raw, len, buf);
	else
		memcpy(buf, raw, len);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return MIME_OK;
}

int
mime_part_decode(const struct mime_part *p, const char *raw, size_t rawlen,
    char **out, size_t *outlen)
{
	return decode_range(p, raw, rawlen, SIZE_MAX, out, outlen);
}

static int
text_range(const struct mime_part *p, const char *raw, size_t rawlen,
    size_t max, char **out, size_t *outlen)
{
	struct textbuf	 tb;
	char		*bytes;
	size_t		 len;
	int		 r;

	*out = NULL;
	*outlen = 0;
	if ((r = decode_range(p, raw, rawlen, max, &bytes, &len)) != MIME_OK)
		return r;
	textbuf_init(&tb);
	textbuf_add(&tb, "", 0);
	charset_to_utf8(&tb, mime_part_charset(p), bytes, len);
	free(bytes);
	if ((*out = textbuf_finish(&tb, outlen)) == NULL)
		return MIME_ERR_NOMEM;
	return MIME_OK;
}

int
mime_part_text(const struct mime_part *p, const char *raw, size_t rawlen,
    char **out, size_t *outlen)
{
	return text_range(p, raw, rawlen, SIZE_MAX, out, outlen);
}

struct flatten {
	struct textbuf	 out;
	size_t		 chars;
	size_t		 max;
	int		 space;
	int		 taken;		/* the last lead byte was kept */
};

static int
flatten_full(const struct flatten *f)
{
	return f->chars >= f->max;
}

static void
flatten_space(struct flatten *f)
{
	f->space = 1;
}

/* One character, or (lead < 0x80 or not) one byte of one. */
static void
flatten_byte(struct flatten *f, unsigned char c)
{
	if ((c & 0xc0) == 0x80) {
		if (f->taken)
			textbuf_addc(&f->out, c);
		return;
	}
	f->taken = 0;
	if (f->space && f->out.len > 0) {
		if (flatten_full(f))
			return;
		textbuf_addc(&f->out, ' ');
		f->chars++;
	}
	f->space = 0;
	if (flatten_full(f))
		return;
	textbuf_addc(&f->out, c);
	f->chars++;
	f->taken = 1;
}

static void
flatten_codepoint(struct flatten *f, uint32_t cp)
{
	struct textbuf	 tmp;
	size_t		 i;

	if (cp == 0xa0 || cp < 0x20 || cp == 0x7f) {
		flatten_space(f);
		return;
	}
	textbuf_init(&tmp);
	textbuf_add_codepoint(&tmp, cp);
	for (i = 0; i < tmp.len; i++)
		flatten_byte(f, tmp.data[i]);
	textbuf_free(&tmp);
}

static int
tag_is(const char *s, size_t len, const char *name)
{
	size_t	 n = strlen(name);

	return len >= n && strncasecmp(s, name, n) == 0 &&
	    (len == n || !isalnum((unsigned char)s[n]));
}

/* Past the '>' that ends the tag at s[i] ('<'), minding quotes. */
static size_t
skip_tag(const char *s, size_t len, size_t i)
{
	char	 q = 0;

	for (i++; i < len; i++) {
		if (q) {
			if (s[i] == q)
				q = 0;
		} else if (s[i] == '"' || s[i] == '\'')
			q = s[i];
		else if (s[i] == '>')
			return i + 1;
	}
	return len;
}

static size_t
html_entity(struct flatten *f, const char *s, size_t len, size_t i)
{
	static const struct {
		const char	*name;
		uint32_t	 cp;
	} named[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' },
		{ "quot", '"' }, { "apos", '\'' }, { "nbsp", 0xa0 }
	};
	size_t		 j, k, n;
	uint32_t	 cp = 0;
	int		 hex = 0, v;

	for (j = i + 1; j < len && j - i < 12 && s[j] != ';'; j++)
		;
	if (j >= len || s[j] != ';')
		goto literal;
	n = j - (i + 1);
	if (n >= 2 && s[i + 1] == '#') {
		k = i + 2;
		if (s[k] == 'x' || s[k] == 'X') {
			hex = 1;
			k++;
		}
		if (k == j)
			goto literal;
		for (; k < j; k++) {
			if (hex)
				v = qp_hex((unsigned char)s[k]);
			else
				v = isdigit((unsigned char)s[k]) ?
				    s[k] - '0' : -1;
			if (v == -1)
				goto literal;
			cp = cp * (hex ? 16 : 10) + v;
			if (cp > 0x10ffff)
				cp = 0x110000;
		}
		if (cp == 0 || cp > 0x10ffff)
			cp = UTF8_REPLACEMENT;
		flatten_codepoint(f, cp);
		return j + 1;
	}
	for (k = 0; k < sizeof(named) / sizeof(named[0]); k++)
		if (strlen(named[k].name) == n &&
		    strncmp(s + i + 1, named[k].name, n) == 0) {
			flatten_codepoint(f, named[k].cp);
			return j + 1;
		}
 literal:
	flatten_byte(f, '&');
	return i + 1;
}

static size_t
html_tag(struct flatten *f, const char *s, size_t len, size_t i)
{
	static const char	*blocks[] = {
		"br", "p", "div", "tr", "td", "th", "li", "h1", "h2", "h3",
		"h4", "h5", "h6", "table", "ul", "ol", "blockquote", "hr",
		"pre", "title"
	};
	static const char	*skipped[] = { "script", "style", "head" };
	const char		*t, *e;
	size_t			 k, n, rest;
	int			 closing = 0;

	if (len - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
		for (k = i + 4; k + 3 <= len; k++)
			if (memcmp(s + k, "-->", 3) == 0)
				return k + 3;
		return len;
	}
	t = s + i + 1;
	rest = len - i - 1;
	if (rest > 0 && *t == '/') {
		closing = 1;
		t++;
		rest--;
	}
	for (k = 0; !closing && k < sizeof(skipped) / sizeof(skipped[0]);
	    k++) {
		if (!tag_is(t, rest, skipped[k]))
			continue;
		n = strlen(skipped[k]);
		for (e = t; (size_t)(e - s) + n + 2 <= len; e++)
			if (e[0] == '<' && e[1] == '/' &&
			    strncasecmp(e + 2, skipped[k], n) == 0)
				return skip_tag(s, len, e - s);
		return len;
	}
	for (k = 0; k < sizeof(blocks) / sizeof(blocks[0]); k++)
		if (tag_is(t, rest, blocks[k]))
			flatten_space(f);
	return skip_tag(s, len, i);
}

/*
 * Text for a preview: with html, tags dropped (script, style and head
 * with their content) and the common entities decoded; white space
 * collapsed to one space and trimmed; at most max characters.  The
 * input is UTF-8.
 */
static char *
flatten_text(const char *s, size_t len, size_t max, int html)
{
	struct flatten	 f;
	size_t		 i = 0;
	unsigned char	 c;

	memset(&f, 0, sizeof(f));
	f.max = max;
	textbuf_add(&f.out, "", 0);
	while (i < len && !(flatten_full(&f) &&
	    ((unsigned char)s[i] & 0xc0) != 0x80)) {
		c = s[i];
		if (html && c == '<') {
			i = html_tag(&f, s, len, i);
			continue;
		}
		if (html && c == '&') {
			i = html_entity(&f, s, len, i);
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		    c == '\f' || c == '\v') {
			flatten_space(&f);
			i++;
			continue;
		}
		if (c == 0xc2 && i + 1 < len &&
		    (unsigned char)s[i + 1] == 0xa0) {
			flatten_space(&f);
			i += 2;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			flatten_space(&f);
		else
			flatten_byte(&f, c);
		i++;
	}
	return textbuf_finish(&f.out, NULL);
}

char *
mime_html_to_text(const char *s, size_t len, size_t max)
{
	return flatten_text(s, len, max, 1);
}

static const struct mime_part *
find_text(const struct mime_part *p, const char *subtype)
{
	const struct mime_part	*found;
	size_t			 i;

	if (strcmp(p->type, "text") == 0 && strcmp(p->subtype, subtype) == 0 &&
	    !mime_part_is_attachment(p))
		return p;
	for (i = 0; i < p->nchildren; i++)
		if ((found = find_text(p->children[i], subtype)) != NULL)
			return found;
	return NULL;
}

static int
make_preview(struct mime_message *m, const char *raw, size_t len)
{
	const struct mime_part	*p;
	char			*text;
	size_t			 tlen;
	int			 html = 0, r;

	if ((p = find_text(m->root, "plain")) == NULL &&
	    (p = find_text(m->root, "html")) != NULL)
		html = 1;
	if (p == NULL) {
		m->preview = strdup("");
		return m->preview == NULL ? MIME_ERR_NOMEM : MIME_OK;
	}
	r = text_range(p, raw, len, MIME_PREVIEW_SCAN, &text, &tlen);
	if (r != MIME_OK)
		return r;
	m->preview = flatten_text(text, tlen, MIME_PREVIEW_CHARS, html);
	free(text);
	return m->preview == NULL ? MIME_ERR_NOMEM : MIME_OK;
}

/*
 * The first header field called name in the part's header block (any
 * field, for JMAP's header:Name and IMAP's HEADER.FIELDS), unfolded.
 * *out is NULL when there is none.
 */
int
mime_header_get(const char *raw, size_t rawlen, const struct mime_part *p,
    const char *name, char **out)
{
	struct parser		 ps;
	struct header_block	*hb;
	int			 r;

	*out = NULL;
	if (p->header_start > p->body_start || p->body_start > rawlen)
		return MIME_ERR_SIZE;
	if ((hb = malloc(sizeof(*hb))) == NULL)
		return MIME_ERR_NOMEM;
	memset(&ps, 0, sizeof(ps));
	ps.raw = raw;
	ps.len = rawlen;
	r = scan_header(&ps, p->header_start, p->body_start,
	    p->header_start == 0, hb);
	if (r == MIME_OK && header_value(&ps, hb, name, out) == -1)
		r = ps.error;
	free(hb);
	return r;
}

static void
shift_part(struct mime_part *p, ptrdiff_t delta, int root)
{
	size_t	 i;

	if (!root)
		p->header_start += delta;
	p->body_start += delta;
	p->body_end += delta;
	if (p->message != NULL)
		shift_part(p->message, delta, 0);
	for (i = 0; i < p->nchildren; i++)
		shift_part(p->children[i], delta, 0);
}

/*
 * The offsets of a message that gains (or, delta < 0, loses again)
 * delta bytes of header fields at its top, as storaged's per-delivery
 * Return-Path and Delivered-To lines: the tree mime_parse() of the
 * longer message gives, when the message starts with a header field.
 */
void
mime_shift(struct mime_message *m, ptrdiff_t delta)
{
	m->size += delta;
	shift_part(m->root, delta, 1);
}

int
mime_parse(const char *raw, size_t len, struct mime_message **out)
{
	return mime_parse_opt(raw, len, 1, out);
}

/* mime_parse(), without the preview when preview is 0 (left NULL). */
int
mime_parse_opt(const char *raw, size_t len, int preview,
    struct mime_message **out)
{
	struct parser		 ps;
	struct mime_message	*m;
	int			 r;

	*out = NULL;
	if (len > MIME_MAX_SIZE)
		return MIME_ERR_SIZE;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MIME_ERR_NOMEM;
	memset(&ps, 0, sizeof(ps));
	ps.raw = raw;
	ps.len = len;
	m->size = len;
	if ((m->root = parse_part(&ps, 0, len, 0, 0, &m->envelope)) == NULL) {
		r = ps.error ? ps.error : MIME_ERR_NOMEM;
		mime_free(m);
		return r;
	}
	m->flags = ps.flags & MIME_F_MALFORMED;
	m->has_attachment = tree_has_attachment(m->root);
	if (preview && (r = make_preview(m, raw, len)) != MIME_OK) {
		mime_free(m);
		return r;
	}
	*out = m;
	return MIME_OK;
}
