/*
 * The parsed structure of a message as compact JSON, as storaged keeps
 * it next to the message, and back.  Every field of struct
 * mime_message survives the round trip.  A string that is not UTF-8
 * (a raw header with 8-bit bytes) is written as {"b64": "..."}.
 * Absent fields and empty lists are left out.  mime_from_json() checks
 * everything it reads, limits included, since the JSON comes from disk.
 */
#include <sys/types.h>

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "mime.h"

#define MIME_JSON_VERSION	1

struct json_reader {
	size_t	 nparts;
	size_t	 size;
	int	 error;
};

static const char	 b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *
json_bytes(const char *s, size_t len)
{
	char		*enc;
	json_t		*v;
	size_t		 i, o = 0;
	uint32_t	 w;

	if ((enc = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i += 3) {
		w = (unsigned char)s[i] << 16;
		if (i + 1 < len)
			w |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < len)
			w |= (unsigned char)s[i + 2];
		enc[o++] = b64_alphabet[(w >> 18) & 0x3f];
		enc[o++] = b64_alphabet[(w >> 12) & 0x3f];
		enc[o++] = i + 1 < len ? b64_alphabet[(w >> 6) & 0x3f] : '=';
		enc[o++] = i + 2 < len ? b64_alphabet[w & 0x3f] : '=';
	}
	enc[o] = '\0';
	v = json_pack("{s:s}", "b64", enc);
	free(enc);
	return v;
}

static json_t *
json_str(const char *s)
{
	size_t	 len;

	if (s == NULL)
		return json_null();
	len = strlen(s);
	if (utf8_valid(s, len))
		return json_stringn(s, len);
	return json_bytes(s, len);
}

/* Sets o[key] = v, taking v; a NULL v or a failure sets *err. */
static void
jset(json_t *o, const char *key, json_t *v, int *err)
{
	if (v == NULL || json_object_set_new(o, key, v) == -1)
		*err = 1;
}

static void
jset_str(json_t *o, const char *key, const char *s, int *err)
{
	if (s != NULL)
		jset(o, key, json_str(s), err);
}

static void
jappend(json_t *a, json_t *v, int *err)
{
	if (v == NULL || json_array_append_new(a, v) == -1)
		*err = 1;
}

static json_t *
params_to_json(const struct mime_param *p, size_t n, int *err)
{
	json_t	*a, *pair;
	size_t	 i;

	if ((a = json_array()) == NULL) {
		*err = 1;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if ((pair = json_array()) == NULL) {
			*err = 1;
			break;
		}
		jappend(pair, json_str(p[i].name), err);
		jappend(pair, json_str(p[i].value), err);
		jappend(a, pair, err);
	}
	return a;
}

static void
jset_addrs(json_t *o, const char *key, const struct mime_addrlist *l,
    int *err)
{
	json_t	*a, *e;
	size_t	 i;

	if (l->count == 0)
		return;
	if ((a = json_array()) == NULL) {
		*err = 1;
		return;
	}
	for (i = 0; i < l->count; i++) {
		if ((e = json_array()) == NULL) {
			*err = 1;
			break;
		}
		jappend(e, json_integer(l->addrs[i].kind), err);
		jappend(e, json_str(l->addrs[i].name), err);
		jappend(e, json_str(l->addrs[i].route), err);
		jappend(e, json_str(l->addrs[i].mailbox), err);
		jappend(e, json_str(l->addrs[i].host), err);
		jappend(a, e, err);
	}
	jset(o, key, a, err);
}

static void
jset_strings(json_t *o, const char *key, char **v, size_t n, int *err)
{
	json_t	*a;
	size_t	 i;

	if (n == 0)
		return;
	if ((a = json_array()) == NULL) {
		*err = 1;
		return;
	}
	for (i = 0; i < n; i++)
		jappend(a, json_str(v[i]), err);
	jset(o, key, a, err);
}

static json_t *
envelope_to_json(const struct mime_envelope *env, int *err)
{
	json_t	*o;

	if ((o = json_object()) == NULL) {
		*err = 1;
		return NULL;
	}
	jset_str(o, "date", env->date, err);
	jset_str(o, "subject", env->subject, err);
	jset_str(o, "from", env->from, err);
	jset_str(o, "sender", env->sender, err);
	jset_str(o, "reply-to", env->reply_to, err);
	jset_str(o, "to", env->to, err);
	jset_str(o, "cc", env->cc, err);
	jset_str(o, "bcc", env->bcc, err);
	jset_str(o, "in-reply-to", env->in_reply_to, err);
	jset_str(o, "message-id", env->message_id, err);
	jset_str(o, "references", env->references, err);
	jset_str(o, "subject-utf8", env->subject_utf8, err);
	jset_str(o, "base-subject", env->base_subject, err);
	jset_addrs(o, "from-list", &env->from_list, err);
	jset_addrs(o, "sender-list", &env->sender_list, err);
	jset_addrs(o, "reply-to-list", &env->reply_to_list, err);
	jset_addrs(o, "to-list", &env->to_list, err);
	jset_addrs(o, "cc-list", &env->cc_list, err);
	jset_addrs(o, "bcc-list", &env->bcc_list, err);
	jset_strings(o, "message-ids", env->message_ids.ids,
	    env->message_ids.count, err);
	jset_strings(o, "in-reply-to-ids", env->in_reply_to_ids.ids,
	    env->in_reply_to_ids.count, err);
	jset_strings(o, "reference-ids", env->reference_ids.ids,
	    env->reference_ids.count, err);
	return o;
}

static json_t *
part_to_json(const struct mime_part *p, int *err)
{
	json_t	*o, *kids;
	size_t	 i;

	if ((o = json_object()) == NULL) {
		*err = 1;
		return NULL;
	}
	jset_str(o, "type", p->type, err);
	jset_str(o, "subtype", p->subtype, err);
	if (p->nparams > 0)
		jset(o, "params", params_to_json(p->params, p->nparams, err),
		    err);
	jset_str(o, "encoding", p->encoding, err);
	jset_str(o, "id", p->id, err);
	jset_str(o, "description", p->description, err);
	jset_str(o, "disposition", p->disposition, err);
	if (p->ndisp_params > 0)
		jset(o, "disp-params", params_to_json(p->disp_params,
		    p->ndisp_params, err), err);
	jset_strings(o, "languages", p->languages, p->nlanguages, err);
	jset_str(o, "location", p->location, err);
	jset_str(o, "md5", p->md5, err);
	jset(o, "offsets", json_pack("[I,I,I]", (json_int_t)p->header_start,
	    (json_int_t)p->body_start, (json_int_t)p->body_end), err);
	jset(o, "lines", json_integer(p->lines), err);
	if (p->flags != 0)
		jset(o, "flags", json_integer(p->flags), err);
	if (p->envelope != NULL)
		jset(o, "envelope", envelope_to_json(p->envelope, err), err);
	if (p->message != NULL)
		jset(o, "message", part_to_json(p->message, err), err);
	if (p->nchildren > 0) {
		if ((kids = json_array()) == NULL)
			*err = 1;
		for (i = 0; kids != NULL && i < p->nchildren; i++)
			jappend(kids, part_to_json(p->children[i], err), err);
		jset(o, "children", kids, err);
	}
	return o;
}

char *
mime_to_json(const struct mime_message *m)
{
	json_t	*o;
	char	*s = NULL;
	int	 err = 0;

	if ((o = json_object()) == NULL)
		return NULL;
	jset(o, "v", json_integer(MIME_JSON_VERSION), &err);
	jset(o, "size", json_integer(m->size), &err);
	if (m->flags != 0)
		jset(o, "flags", json_integer(m->flags), &err);
	jset(o, "has-attachment", json_boolean(m->has_attachment), &err);
	jset(o, "preview", json_str(m->preview), &err);
	jset(o, "envelope", envelope_to_json(&m->envelope, &err), &err);
	jset(o, "root", part_to_json(m->root, &err), &err);
	if (!err)
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/*
 * The second of the "offsets" among the keys of the object that starts
 * at p (after its brace): strings, objects and arrays inside are
 * skipped whole, so no nested part's offsets match.  -1 if none.
 */
static int64_t
json_object_body_start(const char *p, const char *end)
{
	static const char	 key[] = "\"offsets\":[";
	uint64_t		 v[2] = { 0, 0 };
	size_t			 i, digits;
	int			 depth = 0;

	while (p < end) {
		switch (*p++) {
		case '"':
			p--;
			if (depth == 0 &&
			    (size_t)(end - p) >= sizeof(key) - 1 &&
			    memcmp(p, key, sizeof(key) - 1) == 0) {
				p += sizeof(key) - 1;
				for (i = 0; i < 2; i++) {
					for (digits = 0; p < end && *p >= '0' &&
					    *p <= '9' && digits < 15;
					    p++, digits++)
						v[i] = v[i] * 10 + (*p - '0');
					if (digits == 0 || p == end ||
					    *p != ',')
						return -1;
					p++;
				}
				return v[1];
			}
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\' && ++p == end)
					return -1;
			if (p == end)
				return -1;
			p++;
			break;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (depth-- == 0)
				return -1;
			break;
		}
	}
	return -1;
}

/*
 * The root's body_start from mime_to_json()'s text without parsing all
 * of it: its "root" is the one key of those bytes (in a string a quote
 * is escaped), and the root's own "offsets" are found within it.  -1
 * when the JSON is not so (then mime_from_json() it).
 */
int
mime_json_body_start(const char *json, size_t len, uint64_t *off)
{
	static const char	 root[] = "\"root\":{";
	const char		*p;
	int64_t			 v;

	if ((p = memmem(json, len, root, sizeof(root) - 1)) == NULL)
		return -1;
	p += sizeof(root) - 1;
	if ((v = json_object_body_start(p, json + len)) < 0)
		return -1;
	*off = v;
	return 0;
}

/* A string or {"b64": ...}; NULL (v absent or null) is allowed. */
static int
read_str(struct json_reader *jr, json_t *v, char **out)
{
	const char	*s, *b;
	size_t		 len;
	char		*d;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		s = json_string_value(v);
		len = json_string_length(v);
		if (memchr(s, '\0', len) != NULL)
			goto bad;
		if ((*out = strdup(s)) == NULL)
			goto nomem;
		return 0;
	}
	if (!json_is_object(v) || json_object_size(v) != 1 ||
	    (b = json_string_value(json_object_get(v, "b64"))) == NULL)
		goto bad;
	len = strlen(b);
	if ((d = malloc(len + 1)) == NULL)
		goto nomem;
	len = mime_base64_decode(b, len, d);
	d[len] = '\0';
	if (memchr(d, '\0', len) != NULL) {
		free(d);
		goto bad;
	}
	*out = d;
	return 0;
 bad:
	jr->error = MIME_ERR_JSON;
	return -1;
 nomem:
	jr->error = MIME_ERR_NOMEM;
	return -1;
}

static int
read_required_str(struct json_reader *jr, json_t *v, char **out)
{
	if (read_str(jr, v, out) == -1)
		return -1;
	if (*out == NULL) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	return 0;
}

static int
read_size(struct json_reader *jr, json_t *v, size_t max, size_t *out)
{
	json_int_t	 i;

	if (!json_is_integer(v) || (i = json_integer_value(v)) < 0 ||
	    (uint64_t)i > max) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	*out = (size_t)i;
	return 0;
}

static int
read_params(struct json_reader *jr, json_t *a, struct mime_param **out,
    size_t *nout)
{
	json_t	*pair;
	size_t	 i, n;

	*out = NULL;
	*nout = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a) || (n = json_array_size(a)) == 0 ||
	    n > MIME_MAX_PARAMS) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	if ((*out = calloc(n, sizeof(**out))) == NULL) {
		jr->error = MIME_ERR_NOMEM;
		return -1;
	}
	for (i = 0; i < n; i++) {
		pair = json_array_get(a, i);
		*nout = i + 1;
		if (!json_is_array(pair) || json_array_size(pair) != 2) {
			jr->error = MIME_ERR_JSON;
			return -1;
		}
		if (read_required_str(jr, json_array_get(pair, 0),
		    &(*out)[i].name) == -1 ||
		    read_required_str(jr, json_array_get(pair, 1),
		    &(*out)[i].value) == -1)
			return -1;
	}
	return 0;
}

static int
read_strings(struct json_reader *jr, json_t *a, char ***out, size_t *nout)
{
	size_t	 i, n;

	*out = NULL;
	*nout = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a) || (n = json_array_size(a)) == 0) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	if ((*out = calloc(n, sizeof(**out))) == NULL) {
		jr->error = MIME_ERR_NOMEM;
		return -1;
	}
	for (i = 0; i < n; i++) {
		*nout = i + 1;
		if (read_required_str(jr, json_array_get(a, i),
		    &(*out)[i]) == -1)
			return -1;
	}
	return 0;
}

static int
read_addrs(struct json_reader *jr, json_t *a, struct mime_addrlist *l)
{
	struct mime_addr	*ad;
	json_t			*e, *k;
	size_t			 i, n;

	if (a == NULL)
		return 0;
	if (!json_is_array(a) || (n = json_array_size(a)) == 0) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	if ((l->addrs = calloc(n, sizeof(*l->addrs))) == NULL) {
		jr->error = MIME_ERR_NOMEM;
		return -1;
	}
	for (i = 0; i < n; i++) {
		ad = &l->addrs[i];
		l->count = i + 1;
		e = json_array_get(a, i);
		if (!json_is_array(e) || json_array_size(e) != 5 ||
		    !json_is_integer(k = json_array_get(e, 0)) ||
		    json_integer_value(k) < MIME_ADDR_MAILBOX ||
		    json_integer_value(k) > MIME_ADDR_GROUP_END) {
			jr->error = MIME_ERR_JSON;
			return -1;
		}
		ad->kind = json_integer_value(k);
		if (read_str(jr, json_array_get(e, 1), &ad->name) == -1 ||
		    read_str(jr, json_array_get(e, 2), &ad->route) == -1 ||
		    read_str(jr, json_array_get(e, 3), &ad->mailbox) == -1 ||
		    read_str(jr, json_array_get(e, 4), &ad->host) == -1)
			return -1;
		if ((ad->kind == MIME_ADDR_MAILBOX &&
		    (ad->mailbox == NULL || ad->host == NULL)) ||
		    (ad->kind == MIME_ADDR_GROUP_START &&
		    (ad->mailbox == NULL || ad->host != NULL ||
		    ad->name != NULL || ad->route != NULL)) ||
		    (ad->kind == MIME_ADDR_GROUP_END &&
		    (ad->mailbox != NULL || ad->host != NULL ||
		    ad->name != NULL || ad->route != NULL))) {
			jr->error = MIME_ERR_JSON;
			return -1;
		}
	}
	return 0;
}

static int
read_ids(struct json_reader *jr, json_t *a, struct mime_idlist *l)
{
	return read_strings(jr, a, &l->ids, &l->count);
}

static int
read_envelope(struct json_reader *jr, json_t *o, struct mime_envelope *env)
{
	if (!json_is_object(o)) {
		jr->error = MIME_ERR_JSON;
		return -1;
	}
	if (read_str(jr, json_object_get(o, "date"), &env->date) == -1 ||
	    read_str(jr, json_object_get(o, "subject"), &env->subject) == -1 ||
	    read_str(jr, json_object_get(o, "from"), &env->from) == -1 ||
	    read_str(jr, json_object_get(o, "sender"), &env->sender) == -1 ||
	    read_str(jr, json_object_get(o, "reply-to"),
	    &env->reply_to) == -1 ||
	    read_str(jr, json_object_get(o, "to"), &env->to) == -1 ||
	    read_str(jr, json_object_get(o, "cc"), &env->cc) == -1 ||
	    read_str(jr, json_object_get(o, "bcc"), &env->bcc) == -1 ||
	    read_str(jr, json_object_get(o, "in-reply-to"),
	    &env->in_reply_to) == -1 ||
	    read_str(jr, json_object_get(o, "message-id"),
	    &env->message_id) == -1 ||
	    read_str(jr, json_object_get(o, "references"),
	    &env->references) == -1 ||
	    read_str(jr, json_object_get(o, "subject-utf8"),
	    &env->subject_utf8) == -1 ||
	    read_str(jr, json_object_get(o, "base-subject"),
	    &env->base_subject) == -1)
		return -1;
	if (read_addrs(jr, json_object_get(o, "from-list"),
	    &env->from_list) == -1 ||
	    read_addrs(jr, json_object_get(o, "sender-list"),
	    &env->sender_list) == -1 ||
	    read_addrs(jr, json_object_get(o, "reply-to-list"),
	    &env->reply_to_list) == -1 ||
	    read_addrs(jr, json_object_get(o, "to-list"),
	    &env->to_list) == -1 ||
	    read_addrs(jr, json_object_get(o, "cc-list"),
	    &env->cc_list) == -1 ||
	    read_addrs(jr, json_object_get(o, "bcc-list"),
	    &env->bcc_list) == -1)
		return -1;
	if (read_ids(jr, json_object_get(o, "message-ids"),
	    &env->message_ids) == -1 ||
	    read_ids(jr, json_object_get(o, "in-reply-to-ids"),
	    &env->in_reply_to_ids) == -1 ||
	    read_ids(jr, json_object_get(o, "reference-ids"),
	    &env->reference_ids) == -1)
		return -1;
	return 0;
}

static struct mime_part *
read_part(struct json_reader *jr, json_t *o, int depth)
{
	struct mime_part	*p, **kids;
	json_t			*off, *v;
	size_t			 i, n, flags = 0;

	if (depth > MIME_MAX_DEPTH || ++jr->nparts > MIME_MAX_PARTS ||
	    !json_is_object(o)) {
		jr->error = MIME_ERR_JSON;
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		jr->error = MIME_ERR_NOMEM;
		return NULL;
	}
	if (read_required_str(jr, json_object_get(o, "type"),
	    &p->type) == -1 ||
	    read_required_str(jr, json_object_get(o, "subtype"),
	    &p->subtype) == -1 ||
	    read_params(jr, json_object_get(o, "params"), &p->params,
	    &p->nparams) == -1 ||
	    read_str(jr, json_object_get(o, "encoding"), &p->encoding) == -1 ||
	    read_str(jr, json_object_get(o, "id"), &p->id) == -1 ||
	    read_str(jr, json_object_get(o, "description"),
	    &p->description) == -1 ||
	    read_str(jr, json_object_get(o, "disposition"),
	    &p->disposition) == -1 ||
	    read_params(jr, json_object_get(o, "disp-params"),
	    &p->disp_params, &p->ndisp_params) == -1 ||
	    read_strings(jr, json_object_get(o, "languages"), &p->languages,
	    &p->nlanguages) == -1 ||
	    read_str(jr, json_object_get(o, "location"), &p->location) == -1 ||
	    read_str(jr, json_object_get(o, "md5"), &p->md5) == -1)
		goto fail;
	off = json_object_get(o, "offsets");
	if (!json_is_array(off) || json_array_size(off) != 3 ||
	    read_size(jr, json_array_get(off, 0), jr->size,
	    &p->header_start) == -1 ||
	    read_size(jr, json_array_get(off, 1), jr->size,
	    &p->body_start) == -1 ||
	    read_size(jr, json_array_get(off, 2), jr->size,
	    &p->body_end) == -1 ||
	    p->header_start > p->body_start || p->body_start > p->body_end) {
		jr->error = MIME_ERR_JSON;
		goto fail;
	}
	p->size = p->body_end - p->body_start;
	if (read_size(jr, json_object_get(o, "lines"), p->size,
	    &p->lines) == -1)
		goto fail;
	if ((v = json_object_get(o, "flags")) != NULL &&
	    (read_size(jr, v, MIME_F_ALL, &flags) == -1 || flags == 0)) {
		jr->error = MIME_ERR_JSON;
		goto fail;
	}
	p->flags = flags;
	if ((v = json_object_get(o, "envelope")) != NULL) {
		if ((p->envelope = calloc(1, sizeof(*p->envelope))) == NULL) {
			jr->error = MIME_ERR_NOMEM;
			goto fail;
		}
		if (read_envelope(jr, v, p->envelope) == -1)
			goto fail;
	}
	if ((v = json_object_get(o, "message")) != NULL &&
	    (p->message = read_part(jr, v, depth + 1)) == NULL)
		goto fail;
	if ((p->envelope == NULL) != (p->message == NULL)) {
		jr->error = MIME_ERR_JSON;
		goto fail;
	}
	if ((v = json_object_get(o, "children")) != NULL) {
		if (!json_is_array(v) || (n = json_array_size(v)) == 0 ||
		    n > MIME_MAX_PARTS) {
			jr->error = MIME_ERR_JSON;
			goto fail;
		}
		if ((kids = calloc(n, sizeof(*kids))) == NULL) {
			jr->error = MIME_ERR_NOMEM;
			goto fail;
		}
		p->children = kids;
		for (i = 0; i < n; i++) {
			if ((kids[i] = read_part(jr, json_array_get(v, i),
			    depth + 1)) == NULL)
				goto fail;
			p->nchildren = i + 1;
		}
	}
	if ((strcmp(p->type, "multipart") == 0) != (p->nchildren > 0)) {
		jr->error = MIME_ERR_JSON;
		goto fail;
	}
	return p;
 fail:
	mime_part_free(p);
	return NULL;
}

int
mime_from_json(const char *buf, size_t len, struct mime_message **out)
{
	struct json_reader	 jr;
	struct mime_message	*m = NULL;
	json_t			*o, *v;
	json_error_t		 jerr;

	*out = NULL;
	memset(&jr, 0, sizeof(jr));
	if ((o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return MIME_ERR_JSON;
	jr.error = MIME_ERR_JSON;
	if (!json_is_object(o) ||
	    json_integer_value(json_object_get(o, "v")) != MIME_JSON_VERSION ||
	    !json_is_integer(json_object_get(o, "v")))
		goto fail;
	jr.error = MIME_OK;
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		jr.error = MIME_ERR_NOMEM;
		goto fail;
	}
	if (read_size(&jr, json_object_get(o, "size"), MIME_MAX_SIZE,
	    &m->size) == -1)
		goto fail;
	jr.size = m->size;
	if ((v = json_object_get(o, "flags")) != NULL) {
		if (!json_is_integer(v) ||
		    json_integer_value(v) != MIME_F_MALFORMED) {
			jr.error = MIME_ERR_JSON;
			goto fail;
		}
		m->flags = MIME_F_MALFORMED;
	}
	if (!json_is_boolean(v = json_object_get(o, "has-attachment"))) {
		jr.error = MIME_ERR_JSON;
		goto fail;
	}
	m->has_attachment = json_is_true(v);
	if (read_required_str(&jr, json_object_get(o, "preview"),
	    &m->preview) == -1 ||
	    read_envelope(&jr, json_object_get(o, "envelope"),
	    &m->envelope) == -1 ||
	    (m->root = read_part(&jr, json_object_get(o, "root"), 0)) == NULL)
		goto fail;
	json_decref(o);
	*out = m;
	return MIME_OK;
 fail:
	json_decref(o);
	mime_free(m);
	return jr.error != MIME_OK ? jr.error : MIME_ERR_JSON;
}
