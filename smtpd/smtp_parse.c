/*
 * Parsing of MAIL FROM, RCPT TO and BDAT arguments.  The input is one
 * command line without its CRLF; the session has already checked its
 * length and that it holds no CR, LF or NUL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "smtp_parse.h"

#define ERR_SYNTAX_FROM	"501 5.1.7 Bad sender address syntax"
#define ERR_SYNTAX_TO	"501 5.1.3 Bad recipient address syntax"
#define ERR_PARAM	"555 5.5.4 Unsupported parameter"
#define ERR_PARAM_BAD	"501 5.5.4 Invalid parameter value"
#define ERR_PARAMS_MANY	"501 5.5.4 Too many parameters"
#define ERR_UTF8	"553 5.6.7 Non-ASCII address needs SMTPUTF8"

static int
is_atext(unsigned char c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	if (isalnum(c))
		return 1;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

/* RFC 5321 Domain or address-literal. */
int
smtp_parse_domain(const char *d)
{
	size_t	 len = strlen(d), label = 0;
	const char *p;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return -1;
	if (d[0] == '[') {
		if (d[len - 1] != ']' || len < 3)
			return -1;
		for (p = d + 1; p < d + len - 1; p++)
			if (*p <= ' ' || *p > '~' || *p == '[' ||
			    *p == ']' || *p == '\\')
				return -1;
		return 0;
	}
	for (p = d; *p; p++) {
		unsigned char c = *p;

		if (c == '.') {
			if (label == 0 || p[-1] == '-')
				return -1;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return -1;
		} else if (!isalnum(c) && c < 0x80)
			return -1;
		if (++label > 63)
			return -1;
	}
	if (label == 0 || p[-1] == '-')
		return -1;
	return 0;
}

/*
 * Mailbox = Local-part "@" ( Domain / address-literal ).  Non-ASCII is
 * allowed only when utf8 is set (SMTPUTF8).
 */
int
smtp_parse_address(const char *a, int utf8)
{
	const char	*at, *p;
	size_t		 llen;

	if (strlen(a) > SMTP_PATH_MAX)
		return -1;
	if ((at = strrchr(a, '@')) == NULL)
		return -1;
	llen = at - a;
	if (llen == 0 || llen > SMTP_LOCALPART_MAX)
		return -1;
	if (a[0] == '"') {
		/* Quoted-string: qtextSMTP or quoted-pairSMTP. */
		if (llen < 2 || a[llen - 1] != '"')
			return -1;
		for (p = a + 1; p < a + llen - 1; p++) {
			unsigned char c = *p;

			if (c == '\\') {
				p++;
				if (p >= a + llen - 1 || *p < ' ' || *p > '~')
					return -1;
			} else if (c == '"' || c < ' ' || c == 127 ||
			    (c >= 0x80 && !utf8))
				return -1;
		}
	} else {
		/* Dot-string. */
		if (a[0] == '.' || a[llen - 1] == '.')
			return -1;
		for (p = a; p < at; p++) {
			if (*p == '.') {
				if (p[1] == '.')
					return -1;
				continue;
			}
			if (!is_atext(*p, utf8))
				return -1;
		}
	}
	return smtp_parse_domain(at + 1);
}

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/*
 * Reverse-path or Forward-path in angle brackets; an A-d-l source
 * route is accepted and dropped (RFC 5321 4.1.1.3, C.1).  Sets *rest
 * to what follows the closing bracket.
 */
static int
parse_path(const char *s, char *out, size_t outlen, int allow_empty,
    int utf8, const char **rest)
{
	const char	*end, *start;
	size_t		 len;
	int		 inquote = 0;

	while (*s == ' ')
		s++;
	if (*s != '<')
		return -1;
	start = ++s;
	for (end = start; *end; end++) {
		if (inquote && *end == '\\' && end[1] != '\0') {
			end++;
			continue;
		}
		if (*end == '"')
			inquote = !inquote;
		else if (*end == '>' && !inquote)
			break;
	}
	if (*end != '>')
		return -1;
	if (start[0] == '@') {
		const char *colon = memchr(start, ':', end - start);

		if (colon == NULL)
			return -1;
		start = colon + 1;
	}
	len = end - start;
	if (len >= outlen || len > SMTP_PATH_MAX)
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	*rest = end + 1;
	if (len == 0)
		return allow_empty ? 0 : -1;
	return smtp_parse_address(out, utf8);
}

/* xtext (RFC 3461 4): "+" HEXCHAR HEXCHAR encodes one octet. */
int
smtp_xtext_decode(const char *in, char *out, size_t outlen)
{
	size_t	 n = 0;
	char	 hex[3];

	for (; *in; in++) {
		unsigned char c = *in;

		if (c < '!' || c > '~' || c == '=')
			return -1;
		if (c == '+') {
			if (!isxdigit((unsigned char)in[1]) ||
			    !isxdigit((unsigned char)in[2]))
				return -1;
			hex[0] = in[1];
			hex[1] = in[2];
			hex[2] = '\0';
			c = (unsigned char)strtoul(hex, NULL, 16);
			in += 2;
		}
		if (n + 1 >= outlen)
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

int
smtp_xtext_encode(const char *in, char *out, size_t outlen)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t	 n = 0;

	for (; *in; in++) {
		unsigned char c = *in;

		if (c < '!' || c > '~' || c == '+' || c == '=') {
			if (n + 3 >= outlen)
				return -1;
			out[n++] = '+';
			out[n++] = hexd[c >> 4];
			out[n++] = hexd[c & 0xf];
		} else {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = c;
		}
	}
	out[n] = '\0';
	return 0;
}

/* Splits "KEY=VALUE KEY2 ..." into at most SMTP_PARAMS_MAX pairs. */
struct param {
	char	 key[32];
	char	*value;		/* NULL if no "=" */
};

static int
split_params(char *s, struct param *params, int *nparams)
{
	char	*tok, *eq;
	int	 n = 0;

	while ((tok = strsep(&s, " ")) != NULL) {
		if (*tok == '\0')
			continue;
		if (n == SMTP_PARAMS_MAX)
			return -2;
		if ((eq = strchr(tok, '=')) != NULL)
			*eq++ = '\0';
		if (strlcpy(params[n].key, tok, sizeof(params[n].key)) >=
		    sizeof(params[n].key) || tok[0] == '\0')
			return -1;
		params[n].value = eq;
		n++;
	}
	*nparams = n;
	return 0;
}

int
smtp_parse_mail(const char *line, int utf8_offered,
    struct smtp_mail_args *args, const char **err)
{
	struct param	 params[SMTP_PARAMS_MAX];
	const char	*rest, *errstr;
	char		 buf[1024];
	int		 n, i, r;

	memset(args, 0, sizeof(*args));
	args->body = SMTP_BODY_7BIT;
	if (strncasecmp(line, "FROM:", 5) != 0) {
		*err = "501 5.5.4 Syntax: MAIL FROM:<address>";
		return -1;
	}
	/* Non-ASCII is judged after SMTPUTF8 is seen among the params. */
	if (parse_path(line + 5, args->from, sizeof(args->from), 1, 1,
	    &rest) == -1) {
		*err = ERR_SYNTAX_FROM;
		return -1;
	}
	if (*rest != '\0' && *rest != ' ') {
		*err = ERR_SYNTAX_FROM;
		return -1;
	}
	if (strlcpy(buf, rest, sizeof(buf)) >= sizeof(buf)) {
		*err = ERR_PARAMS_MANY;
		return -1;
	}
	if ((r = split_params(buf, params, &n)) < 0) {
		*err = r == -2 ? ERR_PARAMS_MANY : ERR_PARAM_BAD;
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *k = params[i].key, *v = params[i].value;

		if (strcasecmp(k, "SIZE") == 0 && v != NULL) {
			args->size = strtonum(v, 0, INT64_MAX, &errstr);
			if (errstr != NULL || !isdigit((unsigned char)*v)) {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else if (strcasecmp(k, "BODY") == 0 && v != NULL) {
			if (strcasecmp(v, "7BIT") == 0)
				args->body = SMTP_BODY_7BIT;
			else if (strcasecmp(v, "8BITMIME") == 0)
				args->body = SMTP_BODY_8BITMIME;
			else if (strcasecmp(v, "BINARYMIME") == 0)
				args->body = SMTP_BODY_BINARYMIME;
			else {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else if (strcasecmp(k, "SMTPUTF8") == 0 && v == NULL &&
		    utf8_offered) {
			args->smtputf8 = 1;
		} else if (strcasecmp(k, "RET") == 0 && v != NULL &&
		    args->ret == SMTP_RET_NONE) {
			if (strcasecmp(v, "FULL") == 0)
				args->ret = SMTP_RET_FULL;
			else if (strcasecmp(v, "HDRS") == 0)
				args->ret = SMTP_RET_HDRS;
			else {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else if (strcasecmp(k, "ENVID") == 0 && v != NULL &&
		    args->envid[0] == '\0') {
			if (smtp_xtext_decode(v, args->envid,
			    sizeof(args->envid)) == -1 ||
			    args->envid[0] == '\0') {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else if (strcasecmp(k, "AUTH") == 0 && v != NULL) {
			if (smtp_xtext_decode(v, args->auth,
			    sizeof(args->auth)) == -1) {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else {
			*err = ERR_PARAM;
			return -1;
		}
	}
	if (!args->smtputf8 && has_8bit(args->from)) {
		*err = ERR_UTF8;
		return -1;
	}
	return 0;
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static int
parse_notify(char *v)
{
	char	*tok;
	int	 notify = 0;

	while ((tok = strsep(&v, ",")) != NULL) {
		if (strcasecmp(tok, "NEVER") == 0)
			notify |= SMTP_NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			notify |= SMTP_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			notify |= SMTP_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			notify |= SMTP_NOTIFY_DELAY;
		else
			return -1;
	}
	if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER)
		return -1;
	return notify;
}

int
smtp_parse_rcpt(const char *line, int smtputf8, struct smtp_rcpt_args *args,
    const char **err)
{
	struct param	 params[SMTP_PARAMS_MAX];
	const char	*rest;
	char		 buf[1024], *semi, decoded[SMTP_ORCPT_MAX + 1];
	int		 n, i, r;

	memset(args, 0, sizeof(*args));
	if (strncasecmp(line, "TO:", 3) != 0) {
		*err = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	/* RFC 5321 4.5.1: <Postmaster> alone, no domain, is a mailbox. */
	if (strncasecmp(line + 3, "<postmaster>", 12) == 0) {
		strlcpy(args->to, "postmaster", sizeof(args->to));
		rest = line + 3 + 12;
	} else if (parse_path(line + 3, args->to, sizeof(args->to), 0, 1,
	    &rest) == -1) {
		*err = ERR_SYNTAX_TO;
		return -1;
	}
	if (*rest != '\0' && *rest != ' ') {
		*err = ERR_SYNTAX_TO;
		return -1;
	}
	if (!smtputf8 && has_8bit(args->to)) {
		*err = ERR_UTF8;
		return -1;
	}
	if (strlcpy(buf, rest, sizeof(buf)) >= sizeof(buf)) {
		*err = ERR_PARAMS_MANY;
		return -1;
	}
	if ((r = split_params(buf, params, &n)) < 0) {
		*err = r == -2 ? ERR_PARAMS_MANY : ERR_PARAM_BAD;
		return -1;
	}
	for (i = 0; i < n; i++) {
		char *v = params[i].value;

		if (strcasecmp(params[i].key, "NOTIFY") == 0 && v != NULL &&
		    args->notify == 0) {
			if ((args->notify = parse_notify(v)) <= 0) {
				*err = ERR_PARAM_BAD;
				return -1;
			}
		} else if (strcasecmp(params[i].key, "ORCPT") == 0 &&
		    v != NULL && args->orcpt[0] == '\0') {
			if ((semi = strchr(v, ';')) == NULL || semi == v) {
				*err = ERR_PARAM_BAD;
				return -1;
			}
			*semi++ = '\0';
			if (smtp_xtext_decode(semi, decoded,
			    sizeof(decoded)) == -1 || strlen(v) +
			    strlen(decoded) + 2 > sizeof(args->orcpt)) {
				*err = ERR_PARAM_BAD;
				return -1;
			}
			strlcpy(args->orcpt, v, sizeof(args->orcpt));
			strlcat(args->orcpt, ";", sizeof(args->orcpt));
			strlcat(args->orcpt, decoded, sizeof(args->orcpt));
		} else {
			*err = ERR_PARAM;
			return -1;
		}
	}
	return 0;
}

/* "BDAT <size> [LAST]" arguments (RFC 3030). */
int
smtp_parse_bdat(const char *args, uint64_t *size, int *last)
{
	char		 buf[64], *p, *tok;
	const char	*errstr;

	if (strlcpy(buf, args, sizeof(buf)) >= sizeof(buf))
		return -1;
	p = buf;
	if ((tok = strsep(&p, " ")) == NULL || *tok == '\0' ||
	    !isdigit((unsigned char)*tok))
		return -1;
	*size = strtonum(tok, 0, INT64_MAX, &errstr);
	if (errstr != NULL)
		return -1;
	*last = 0;
	if (p != NULL) {
		if (strcasecmp(p, "LAST") != 0)
			return -1;
		*last = 1;
	}
	return 0;
}

/*
 * Strict base64 as RFC 4954 wants it (lib/base64.c), but for "=", which
 * stands for the empty string where an empty line would not do.
 * Returns 0 with *outlen set, -1 on bad input or when out is too small.
 */
int
smtp_base64_decode(const char *in, unsigned char *out, size_t outmax,
    size_t *outlen)
{
	*outlen = 0;
	if (strcmp(in, "=") == 0)
		return 0;
	if (*in == '\0')
		return -1;
	return base64_decode_strict(in, out, outmax, outlen);
}

enum {
	DS_BOL,		/* at the start of a line */
	DS_TEXT,
	DS_CR,		/* a CR, LF expected */
	DS_DOT,		/* a dot at the start of a line */
	DS_DOTCR	/* "." CR at the start of a line */
};

void
smtp_data_scan_init(struct smtp_data_scan *d, int dot, size_t maxline)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_BOL;
	d->dot = dot;
	d->maxline = maxline;
}

/*
 * Consumes input up to and including the end of data (then done is
 * set) or all of it, and returns how much it consumed.  The data, dots
 * unstuffed and line ends as received, goes to out, which must have
 * room for inlen + SMTP_DATA_SCAN_SLACK bytes; *outlen says how many.
 */
size_t
smtp_data_scan(struct smtp_data_scan *d, const unsigned char *in,
    size_t inlen, unsigned char *out, size_t *outlen)
{
	size_t		 i, o = 0;
	unsigned char	 c;

	for (i = 0; i < inlen && !d->done; i++) {
		c = in[i];
		if (++d->linelen > d->maxline && d->maxline > 0)
			d->errors |= SMTP_DATA_LONG_LINE;
		switch (d->state) {
		case DS_BOL:
			if (c == '.' && d->dot) {
				d->state = DS_DOT;
				continue;
			}
			break;
		case DS_DOT:
			if (c == '\r') {
				d->state = DS_DOTCR;
				continue;
			}
			/* The leading dot is dropped; c is text. */
			break;
		case DS_DOTCR:
			if (c == '\n') {
				d->done = 1;
				continue;
			}
			d->errors |= SMTP_DATA_BARE_CR;
			out[o++] = '\r';
			break;
		case DS_CR:
			if (c == '\n') {
				out[o++] = c;
				d->state = DS_BOL;
				d->linelen = 0;
				continue;
			}
			d->errors |= SMTP_DATA_BARE_CR;
			break;
		default:
			break;
		}
		switch (c) {
		case '\r':
			d->state = DS_CR;
			break;
		case '\n':
			/* A bare LF never starts a line that could end data. */
			d->errors |= SMTP_DATA_BARE_LF;
			d->state = DS_TEXT;
			break;
		case '\0':
			d->errors |= SMTP_DATA_NUL;
			d->state = DS_TEXT;
			break;
		default:
			d->state = DS_TEXT;
			break;
		}
		out[o++] = c;
	}
	*outlen = o;
	return i;
}

/* The end of a BDAT transfer: a CR left waiting was a bare one. */
void
smtp_data_scan_finish(struct smtp_data_scan *d)
{
	if (d->state == DS_CR || d->state == DS_DOTCR)
		d->errors |= SMTP_DATA_BARE_CR;
}
