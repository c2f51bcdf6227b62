/*
 * postern.conf(5): the configuration grammar.
 *
 * The file is read one line at a time into a bounded buffer, so a line
 * longer than PARSE_LINE_MAX is refused before it is lexed.  Every
 * error is logged as "file:line: message" and parsing goes on to the
 * next line, so one run reports all of them; the first is kept for
 * posternctl reload.
 */

%{
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "postern.h"
#include "parent.h"

#define PARSE_LINE_MAX		2048	/* bytes per line, newline excluded */
#define PARSE_STRING_MAX	1024	/* bytes in one word or string */
#define PARSE_MACRO_NAME_MAX	64
#define PARSE_MACROS_MAX	256
#define PARSE_LISTENERS_MAX	64
#define PARSE_DOMAINS_MAX	1024
#define PARSE_ERRORS_MAX	100	/* then give up on the file */
#define PARSE_ERROR_MAX		1024	/* bytes of the kept first error */
#define PARSE_NOTE_MAX		40	/* bytes of a token quoted in errors */
#define DOMAIN_LABEL_MAX	63
#define DOMAIN_NAME_MAX		253	/* RFC 1035, without the root dot */

/* Directives that may appear once; the slot keeps the line that set it. */
enum once_id {
	ONCE_HOSTNAME,
	ONCE_STATEDIR,
	ONCE_EMPTYDIR,
	ONCE_SOCKET,
	ONCE_USER,
	ONCE_STORAGE_USER,
	ONCE_CERT,
	ONCE_KEY,
	ONCE_MAX
};

static const char *once_names[ONCE_MAX] = {
	[ONCE_HOSTNAME] = "hostname",
	[ONCE_STATEDIR] = "state directory",
	[ONCE_EMPTYDIR] = "empty directory",
	[ONCE_SOCKET] = "control socket",
	[ONCE_USER] = "user",
	[ONCE_STORAGE_USER] = "storage user",
	[ONCE_CERT] = "certificate",
	[ONCE_KEY] = "key",
};

struct macro {
	char	 name[PARSE_MACRO_NAME_MAX + 1];
	char	*value;
};

/* Strings handed to the grammar live until the statement is done. */
struct token_string {
	struct token_string	*next;
	char			 s[];
};

/* What a listen statement collects before its kind is known. */
struct listen_opts {
	char	 addr[64];
	int	 has_addr;
	uint16_t port;
	int	 has_port;
	char	 cert[PATH_MAX];
	char	 key[PATH_MAX];
	int	 plaintext;
	int	 bad;
};

static struct parse_state {
	FILE			*fp;
	const char		*name;
	int			 lineno;
	int			 eof;
	int			 errors;
	int			 quiet_syntax;	/* this line's error is told */
	int			 at_start;	/* next token opens a statement */
	int			 need_reset;
	char			 line[PARSE_LINE_MAX + 2];
	size_t			 linelen;
	size_t			 pos;
	const char		*mtext;		/* macro being expanded */
	size_t			 mpos;
	int			 unget;		/* pushed back byte, or -1 */
	char			 lasttok[PARSE_NOTE_MAX + 8];
	struct macro		 macros[PARSE_MACROS_MAX];
	int			 nmacros;
	struct token_string	*strings;
	struct postern_conf	*conf;
	int			 once[ONCE_MAX];
	int			 limit_lines[LIMIT_MAX];
	int			 nlisteners;
	int			 ndomains;
	struct listen_opts	 lopts;
} *ps;

static char	 first_error[PATH_MAX + PARSE_ERROR_MAX + 16];

typedef struct {
	union {
		char	*string;
	} v;
} YYSTYPE;
#define YYSTYPE_IS_DECLARED 1

int		 yylex(void);
int		 yyparse(void);
static void	 yyerror(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
static void	 parse_error(int, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));

static int	 once_check(enum once_id);
static void	 set_hostname(const char *);
static void	 set_path(enum once_id, char *, size_t, const char *);
static void	 set_user(enum once_id, char *, size_t, const char *);
static int	 tls_file_check(const char *, const char *);
static void	 set_tls_file(enum once_id, char *, size_t, const char *);
static void	 add_domain(const char *);
static void	 set_limit(const char *, const char *);
static void	 set_macro(const char *, const char *);
static void	 listen_begin(void);
static void	 listen_addr(const char *);
static void	 listen_port(const char *);
static void	 listen_tls_file(const char *, char *, size_t, const char *);
static void	 listen_end(const char *);
static int	 listener_kind_available(enum listener_kind);
static int	 domain_name_valid(const char *);
%}

%token	ALLOW CERTIFICATE CONTROL DIRECTORY DOMAIN EMPTY HOSTNAME KEY
%token	LIMIT LISTEN ON PLAINTEXT PORT SOCKET STATE STORAGE USER
%token	ERROR
%token	<v.string>	STRING

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar main '\n'
		| grammar varset '\n'
		| grammar error '\n'	{ yyerrok; }
		;

varset		: STRING '=' STRING	{ set_macro($1, $3); }
		;

main		: HOSTNAME STRING	{ set_hostname($2); }
		| STATE DIRECTORY STRING {
			set_path(ONCE_STATEDIR, ps->conf->statedir,
			    sizeof(ps->conf->statedir), $3);
		}
		| EMPTY DIRECTORY STRING {
			set_path(ONCE_EMPTYDIR, ps->conf->emptydir,
			    sizeof(ps->conf->emptydir), $3);
		}
		| CONTROL SOCKET STRING {
			set_path(ONCE_SOCKET, ps->conf->control_path,
			    sizeof(ps->conf->control_path), $3);
		}
		| USER STRING {
			set_user(ONCE_USER, ps->conf->user,
			    sizeof(ps->conf->user), $2);
		}
		| STORAGE USER STRING {
			set_user(ONCE_STORAGE_USER, ps->conf->storage_user,
			    sizeof(ps->conf->storage_user), $3);
		}
		| CERTIFICATE STRING {
			set_tls_file(ONCE_CERT, ps->conf->cert,
			    sizeof(ps->conf->cert), $2);
		}
		| KEY STRING {
			set_tls_file(ONCE_KEY, ps->conf->key,
			    sizeof(ps->conf->key), $2);
		}
		| DOMAIN STRING		{ add_domain($2); }
		| LIMIT STRING STRING	{ set_limit($2, $3); }
		| LISTEN { listen_begin(); } laddr lport STRING lopts {
			listen_end($5);
		}
		;

laddr		: /* empty */
		| ON STRING		{ listen_addr($2); }
		;

lport		: /* empty */
		| PORT STRING		{ listen_port($2); }
		;

lopts		: /* empty */
		| lopts lopt
		;

lopt		: CERTIFICATE STRING {
			listen_tls_file("certificate", ps->lopts.cert,
			    sizeof(ps->lopts.cert), $2);
		}
		| KEY STRING {
			listen_tls_file("key", ps->lopts.key,
			    sizeof(ps->lopts.key), $2);
		}
		| ALLOW PLAINTEXT {
			if (ps->lopts.plaintext) {
				yyerror("allow plaintext given twice");
				ps->lopts.bad = 1;
			}
			ps->lopts.plaintext = 1;
		}
		;

%%

struct keyword {
	const char	*name;
	int		 token;
};

/* Sorted: looked up with bsearch(3). */
static const struct keyword keywords[] = {
	{ "allow",		ALLOW },
	{ "certificate",	CERTIFICATE },
	{ "control",		CONTROL },
	{ "directory",		DIRECTORY },
	{ "domain",		DOMAIN },
	{ "empty",		EMPTY },
	{ "hostname",		HOSTNAME },
	{ "key",		KEY },
	{ "limit",		LIMIT },
	{ "listen",		LISTEN },
	{ "on",			ON },
	{ "plaintext",		PLAINTEXT },
	{ "port",		PORT },
	{ "socket",		SOCKET },
	{ "state",		STATE },
	{ "storage",		STORAGE },
	{ "user",		USER },
};

static int
keyword_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct keyword *)e)->name);
}

static int
keyword_lookup(const char *s)
{
	const struct keyword	*kw;

	kw = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), keyword_cmp);
	return kw == NULL ? -1 : kw->token;
}

static void
vparse_error(int lineno, const char *fmt, va_list ap)
{
	char	 msg[PARSE_ERROR_MAX];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_warnx("%s:%d: %s", ps->name, lineno, msg);
	if (ps->errors++ == 0)
		snprintf(first_error, sizeof(first_error), "%s:%d: %s",
		    ps->name, lineno, msg);
}

static void
parse_error(int lineno, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vparse_error(lineno, fmt, ap);
	va_end(ap);
}

/* Errors found while the current line is parsed, and byacc's own. */
static void
yyerror(const char *fmt, ...)
{
	va_list	 ap;

	if (strcmp(fmt, "syntax error") == 0) {
		if (ps->quiet_syntax)
			return;
		ps->quiet_syntax = 1;
		parse_error(ps->lineno, "syntax error at %s", ps->lasttok);
		return;
	}
	va_start(ap, fmt);
	vparse_error(ps->lineno, fmt, ap);
	va_end(ap);
}

/* Tells a lexer error and makes the grammar skip the rest of the line. */
static int
lex_error(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vparse_error(ps->lineno, fmt, ap);
	va_end(ap);
	ps->quiet_syntax = 1;
	ps->mtext = NULL;
	ps->unget = -1;
	ps->pos = ps->linelen;
	return ERROR;
}

/*
 * Reads the next line into ps->line.  Returns 0 at end of file.  A line
 * over PARSE_LINE_MAX is reported, skipped and read as an empty one.
 */
static int
read_line(void)
{
	int	 c, toolong = 0;

	ps->linelen = 0;
	ps->pos = 0;
	if (ps->eof)
		return 0;
	ps->lineno++;
	for (;;) {
		c = getc(ps->fp);
		if (c == EOF) {
			ps->eof = 1;
			if (ps->linelen == 0 && !toolong) {
				ps->lineno--;
				return 0;
			}
			break;
		}
		if (c == '\n')
			break;
		if (ps->linelen >= PARSE_LINE_MAX) {
			toolong = 1;
			continue;
		}
		ps->line[ps->linelen++] = c;
	}
	if (toolong) {
		parse_error(ps->lineno, "line too long (more than %d bytes)",
		    PARSE_LINE_MAX);
		ps->linelen = 0;
	}
	/* A carriage return before the newline is white space. */
	if (ps->linelen > 0 && ps->line[ps->linelen - 1] == '\r')
		ps->linelen--;
	return 1;
}

/* The next byte of the line or of the macro being expanded; -1 at end. */
static int
lgetc(void)
{
	int	 c;

	if (ps->unget != -1) {
		c = ps->unget;
		ps->unget = -1;
		return c;
	}
	if (ps->mtext != NULL) {
		if (ps->mtext[ps->mpos] != '\0')
			return (unsigned char)ps->mtext[ps->mpos++];
		ps->mtext = NULL;
		return ' ';	/* a macro ends its token */
	}
	if (ps->pos < ps->linelen)
		return (unsigned char)ps->line[ps->pos++];
	return -1;
}

static void
lungetc(int c)
{
	ps->unget = c;
}

static char *
token_string(const char *s, size_t len)
{
	struct token_string	*t;

	if ((t = malloc(sizeof(*t) + len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(t->s, s, len);
	t->s[len] = '\0';
	t->next = ps->strings;
	ps->strings = t;
	return t->s;
}

static void
token_strings_free(void)
{
	struct token_string	*t;

	while ((t = ps->strings) != NULL) {
		ps->strings = t->next;
		free(t);
	}
}

static int
word_char(int c)
{
	return isalnum(c) || (c != '\0' && strchr("-_.:/*@+%", c) != NULL);
}

static const char *
macro_lookup(const char *name)
{
	int	 i;

	for (i = 0; i < ps->nmacros; i++)
		if (strcmp(ps->macros[i].name, name) == 0)
			return ps->macros[i].value;
	return NULL;
}

/* Is the next thing on the line, after blanks, an '='? */
static int
next_is_equals(void)
{
	size_t	 i;

	if (ps->unget == '=')
		return 1;
	if (ps->mtext != NULL ||
	    (ps->unget != -1 && ps->unget != ' ' && ps->unget != '\t'))
		return 0;
	for (i = ps->pos; i < ps->linelen; i++)
		if (ps->line[i] != ' ' && ps->line[i] != '\t')
			return ps->line[i] == '=';
	return 0;
}

/* Remembers the token for "syntax error at ...". */
static void
lex_note(const char *text, size_t len)
{
	if (len > PARSE_NOTE_MAX)
		snprintf(ps->lasttok, sizeof(ps->lasttok), "\"%.*s...\"",
		    PARSE_NOTE_MAX, text);
	else
		snprintf(ps->lasttok, sizeof(ps->lasttok), "\"%.*s\"",
		    (int)len, text);
}

int
yylex(void)
{
	char		 buf[PARSE_STRING_MAX + 1];
	const char	*value;
	size_t		 len;
	int		 c, start, token, inmacro;

	if (ps->need_reset) {
		ps->need_reset = 0;
		token_strings_free();
		if (!read_line())
			return 0;
		ps->quiet_syntax = 0;
		ps->at_start = 1;
		if (ps->errors >= PARSE_ERRORS_MAX) {
			parse_error(ps->lineno, "too many errors, giving up");
			return 0;
		}
	}

 again:
	while ((c = lgetc()) == ' ' || c == '\t')
		;
	if (c == '#') {
		ps->mtext = NULL;
		ps->unget = -1;
		ps->pos = ps->linelen;
		c = -1;
	}
	if (c == -1) {
		ps->need_reset = 1;
		strlcpy(ps->lasttok, "end of line", sizeof(ps->lasttok));
		return '\n';
	}
	start = ps->at_start;
	ps->at_start = 0;

	if (c == '$') {
		if (ps->mtext != NULL)
			return lex_error("a macro may not use another macro");
		len = 0;
		while ((c = lgetc()) != -1 && (isalnum(c) || c == '_')) {
			if (len >= PARSE_MACRO_NAME_MAX)
				return lex_error("macro name too long");
			buf[len++] = c;
		}
		/* What follows the name is read after the macro's text. */
		if (c != -1)
			ps->pos--;
		buf[len] = '\0';
		if (len == 0)
			return lex_error("'$' without a macro name");
		if ((value = macro_lookup(buf)) == NULL)
			return lex_error("macro $%s is not defined", buf);
		ps->mtext = value;
		ps->mpos = 0;
		ps->at_start = start;
		goto again;
	}

	if (c == '"') {
		inmacro = ps->mtext != NULL;
		len = 0;
		for (;;) {
			if ((c = lgetc()) == -1 || (inmacro && ps->mtext == NULL))
				return lex_error("unterminated string");
			if (c == '"')
				break;
			if (c == '\\') {
				if ((c = lgetc()) == -1)
					return lex_error("unterminated string");
				if (c != '"' && c != '\\')
					return lex_error("invalid escape "
					    "\\%c in string", isprint(c) ?
					    c : '?');
			} else if (c < 0x20 || c == 0x7f)
				return lex_error("invalid character 0x%02x "
				    "in string", c);
			if (len >= PARSE_STRING_MAX)
				return lex_error("string too long "
				    "(more than %d bytes)", PARSE_STRING_MAX);
			buf[len++] = c;
		}
		yylval.v.string = token_string(buf, len);
		lex_note(buf, len);
		return STRING;
	}

	if (word_char(c)) {
		len = 0;
		do {
			if (len >= PARSE_STRING_MAX)
				return lex_error("word too long "
				    "(more than %d bytes)", PARSE_STRING_MAX);
			buf[len++] = c;
		} while ((c = lgetc()) != -1 && word_char(c));
		lungetc(c);
		buf[len] = '\0';
		lex_note(buf, len);
		if ((token = keyword_lookup(buf)) != -1)
			return token;
		if (start && !next_is_equals())
			return lex_error("unknown keyword %s", buf);
		yylval.v.string = token_string(buf, len);
		return STRING;
	}

	if (c == '=') {
		lex_note("=", 1);
		return c;
	}
	if (isprint(c))
		return lex_error("unexpected character '%c'", c);
	return lex_error("unexpected character 0x%02x", c);
}

static int
once_check(enum once_id id)
{
	if (ps->once[id] != 0) {
		yyerror("%s given twice (first on line %d)", once_names[id],
		    ps->once[id]);
		return -1;
	}
	ps->once[id] = ps->lineno;
	return 0;
}

static void
set_macro(const char *name, const char *value)
{
	size_t	 i, len = strlen(name);
	char	*v;
	int	 n;

	if (len == 0 || len > PARSE_MACRO_NAME_MAX) {
		yyerror("invalid macro name \"%s\"", name);
		return;
	}
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_') {
			yyerror("invalid macro name \"%s\"", name);
			return;
		}
	if ((v = strdup(value)) == NULL)
		fatal("%s", __func__);
	for (n = 0; n < ps->nmacros; n++)
		if (strcmp(ps->macros[n].name, name) == 0) {
			free(ps->macros[n].value);
			ps->macros[n].value = v;
			return;
		}
	if (ps->nmacros >= PARSE_MACROS_MAX) {
		free(v);
		yyerror("too many macros (more than %d)", PARSE_MACROS_MAX);
		return;
	}
	strlcpy(ps->macros[ps->nmacros].name, name,
	    sizeof(ps->macros[ps->nmacros].name));
	ps->macros[ps->nmacros++].value = v;
}

/* RFC 1035 host names: letters, digits and inner hyphens per label. */
static int
domain_name_valid(const char *name)
{
	size_t	 len, label = 0;
	const char *p;

	len = strlen(name);
	if (len == 0 || len > DOMAIN_NAME_MAX)
		return 0;
	for (p = name; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (*p == '-' && label == 0)
			return 0;
		if (++label > DOMAIN_LABEL_MAX)
			return 0;
	}
	return label != 0 && p[-1] != '-';
}

static void
set_hostname(const char *name)
{
	if (once_check(ONCE_HOSTNAME) == -1)
		return;
	if (*name == '\0')
		yyerror("hostname is empty");
	else if (strlen(name) > HOSTNAME_MAX)
		yyerror("hostname too long (more than %d bytes)",
		    HOSTNAME_MAX);
	else if (!domain_name_valid(name))
		yyerror("invalid hostname \"%s\"", name);
	else
		strlcpy(ps->conf->hostname, name,
		    sizeof(ps->conf->hostname));
}

static void
set_path(enum once_id id, char *dst, size_t dstlen, const char *path)
{
	if (once_check(id) == -1)
		return;
	if (*path != '/')
		yyerror("%s must be an absolute path", once_names[id]);
	else if (strlcpy(dst, path, dstlen) >= dstlen)
		yyerror("%s path too long", once_names[id]);
}

static void
set_user(enum once_id id, char *dst, size_t dstlen, const char *name)
{
	const char	*p;

	if (once_check(id) == -1)
		return;
	if (*name == '\0') {
		yyerror("%s name is empty", once_names[id]);
		return;
	}
	if (strlen(name) >= dstlen) {
		yyerror("%s name too long (more than %zu bytes)",
		    once_names[id], dstlen - 1);
		return;
	}
	for (p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("_.-", *p) == NULL) {
			yyerror("invalid %s name \"%s\"", once_names[id], name);
			return;
		}
	if (*name == '-') {
		yyerror("invalid %s name \"%s\"", once_names[id], name);
		return;
	}
	strlcpy(dst, name, dstlen);
}

/*
 * The parent reads certificates and keys as root after parsing; a path
 * that cannot be opened now is an error now, with its line.
 */
static int
tls_file_check(const char *what, const char *path)
{
	struct stat	 st;
	int		 fd;

	if (*path == '\0') {
		yyerror("%s path is empty", what);
		return -1;
	}
	if (strlen(path) >= PATH_MAX) {
		yyerror("%s path too long", what);
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1) {
		yyerror("cannot open %s %s: %s", what, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		yyerror("%s %s is not a regular file", what, path);
		return -1;
	}
	close(fd);
	return 0;
}

static void
set_tls_file(enum once_id id, char *dst, size_t dstlen, const char *path)
{
	if (once_check(id) == -1)
		return;
	if (tls_file_check(once_names[id], path) == -1)
		return;
	strlcpy(dst, path, dstlen);
}

static void
add_domain(const char *name)
{
	struct domain_conf	*d;
	char			 lower[DOMAIN_MAX + 1];
	size_t			 i;

	if (!domain_name_valid(name)) {
		yyerror("invalid domain name \"%s\"", name);
		return;
	}
	for (i = 0; name[i] != '\0'; i++)
		lower[i] = tolower((unsigned char)name[i]);
	lower[i] = '\0';
	TAILQ_FOREACH(d, &ps->conf->domains, entry)
		if (strcmp(d->name, lower) == 0) {
			yyerror("duplicate domain %s", lower);
			return;
		}
	if (ps->ndomains >= PARSE_DOMAINS_MAX) {
		yyerror("too many domains (more than %d)", PARSE_DOMAINS_MAX);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		fatal("%s", __func__);
	strlcpy(d->name, lower, sizeof(d->name));
	TAILQ_INSERT_TAIL(&ps->conf->domains, d, entry);
	ps->ndomains++;
}

/* What a limit's suffix multiplies by; 0 when it is not one of its unit. */
static long long
limit_multiplier(enum limit_unit unit, const char *suffix)
{
	if (*suffix == '\0')
		return 1;
	if (suffix[1] != '\0')
		return 0;
	if (unit == LIMIT_BYTES) {
		switch (*suffix) {
		case 'K':
		case 'k':
			return 1024LL;
		case 'M':
		case 'm':
			return 1024LL * 1024;
		case 'G':
		case 'g':
			return 1024LL * 1024 * 1024;
		}
	} else if (unit == LIMIT_SECONDS) {
		switch (*suffix) {
		case 's':
			return 1;
		case 'm':
			return 60;
		case 'h':
			return 3600;
		}
	}
	return 0;
}

static void
set_limit(const char *name, const char *value)
{
	const struct limit_def	*def;
	const char		*suffix, *errstr = NULL;
	char			 digits[32];
	long long		 n = 0, mult;
	size_t			 len;
	int			 id;

	if ((id = limit_lookup(name)) == -1) {
		yyerror("unknown limit %s", name);
		return;
	}
	if (ps->limit_lines[id] != 0) {
		yyerror("limit %s given twice (first on line %d)", name,
		    ps->limit_lines[id]);
		return;
	}
	def = &limit_defs[id];
	len = strspn(value, "0123456789");
	suffix = value + len;
	if (len == 0) {
		yyerror("limit %s: invalid value \"%s\"", name, value);
		return;
	}
	if ((mult = limit_multiplier(def->unit, suffix)) == 0) {
		if (def->unit == LIMIT_BYTES)
			yyerror("limit %s: bad size suffix \"%s\" "
			    "(use K, M or G)", name, suffix);
		else if (def->unit == LIMIT_SECONDS)
			yyerror("limit %s: bad time suffix \"%s\" "
			    "(use s, m or h)", name, suffix);
		else
			yyerror("limit %s takes a plain number, not \"%s\"",
			    name, value);
		return;
	}
	if (len < sizeof(digits)) {
		memcpy(digits, value, len);
		digits[len] = '\0';
		n = strtonum(digits, 0, LLONG_MAX, &errstr);
	}
	if (len >= sizeof(digits) || errstr != NULL || n > def->max / mult ||
	    n * mult < def->min) {
		yyerror("limit %s %s out of range (%lld to %lld)", name,
		    value, def->min, def->max);
		return;
	}
	ps->conf->limits[id] = n * mult;
	ps->limit_lines[id] = ps->lineno;
}

static int
listener_kind_available(enum listener_kind kind)
{
	switch (kind) {
	case LISTEN_SMTP:
	case LISTEN_SUBMISSION:
	case LISTEN_SUBMISSIONS:
	case LISTEN_IMAP:
	case LISTEN_IMAPS:
		return 1;
	default:
		return 0;
	}
}

static void
listen_begin(void)
{
	memset(&ps->lopts, 0, sizeof(ps->lopts));
}

static void
listen_addr(const char *addr)
{
	if (strlen(addr) >= sizeof(ps->lopts.addr)) {
		yyerror("bad address %.32s...", addr);
		ps->lopts.bad = 1;
		return;
	}
	strlcpy(ps->lopts.addr, addr, sizeof(ps->lopts.addr));
	ps->lopts.has_addr = 1;
}

static void
listen_port(const char *port)
{
	const char	*errstr;

	ps->lopts.port = strtonum(port, 1, 65535, &errstr);
	if (errstr != NULL) {
		yyerror("port %s is %s (use 1 to 65535)", port, errstr);
		ps->lopts.bad = 1;
		return;
	}
	ps->lopts.has_port = 1;
}

static void
listen_tls_file(const char *what, char *dst, size_t dstlen, const char *path)
{
	if (*dst != '\0') {
		yyerror("listener %s given twice", what);
		ps->lopts.bad = 1;
		return;
	}
	if (tls_file_check(what, path) == -1) {
		ps->lopts.bad = 1;
		return;
	}
	strlcpy(dst, path, dstlen);
}

static int
listen_sockaddr(struct listener *l, const char *addr)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&l->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&l->ss;

	if (strcmp(addr, "*") == 0)
		addr = "0.0.0.0";
	else if (strcmp(addr, "localhost") == 0)
		addr = "127.0.0.1";
	memset(&l->ss, 0, sizeof(l->ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(l->port);
		l->sslen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(l->port);
		l->sslen = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static int
listen_is_wildcard(const struct listener *l)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (l->ss.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)&l->ss;
		return sin->sin_addr.s_addr == htonl(INADDR_ANY);
	}
	sin6 = (const struct sockaddr_in6 *)&l->ss;
	return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

/* Two listeners that cannot both be bound. */
static int
listen_clash(const struct listener *a, const struct listener *b)
{
	const struct sockaddr_in	*sa, *sb;
	const struct sockaddr_in6	*sa6, *sb6;

	if (a->port != b->port || a->ss.ss_family != b->ss.ss_family)
		return 0;
	if (listen_is_wildcard(a) || listen_is_wildcard(b))
		return 1;
	if (a->ss.ss_family == AF_INET) {
		sa = (const struct sockaddr_in *)&a->ss;
		sb = (const struct sockaddr_in *)&b->ss;
		return sa->sin_addr.s_addr == sb->sin_addr.s_addr;
	}
	sa6 = (const struct sockaddr_in6 *)&a->ss;
	sb6 = (const struct sockaddr_in6 *)&b->ss;
	return IN6_ARE_ADDR_EQUAL(&sa6->sin6_addr, &sb6->sin6_addr);
}

static void
listen_end(const char *kindname)
{
	struct listen_opts	*o = &ps->lopts;
	struct listener		*l, *other;
	int			 kind;

	if ((kind = listener_kind_lookup(kindname)) == -1) {
		yyerror("unknown listener kind %s", kindname);
		return;
	}
	if (!listener_kind_available(kind)) {
		yyerror("listener kind %s is not available in this version",
		    kindname);
		return;
	}
	if (o->bad)
		return;
	if ((o->cert[0] != '\0') != (o->key[0] != '\0')) {
		yyerror("listener has a %s but no %s",
		    o->cert[0] != '\0' ? "certificate" : "key",
		    o->cert[0] != '\0' ? "key" : "certificate");
		return;
	}
	if (ps->nlisteners >= PARSE_LISTENERS_MAX) {
		yyerror("too many listeners (more than %d)",
		    PARSE_LISTENERS_MAX);
		return;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("%s", __func__);
	l->kind = kind;
	l->fd = -1;
	l->lineno = ps->lineno;
	l->port = o->has_port ? o->port : listener_default_port(kind);
	strlcpy(l->addr, o->has_addr ? o->addr : "127.0.0.1",
	    sizeof(l->addr));
	if (listen_sockaddr(l, l->addr) == -1) {
		yyerror("bad address %s", l->addr);
		free(l);
		return;
	}
	TAILQ_FOREACH(other, &ps->conf->listeners, entry)
		if (listen_clash(l, other)) {
			yyerror("duplicate listener %s port %u "
			    "(clashes with %s port %u on line %d)", l->addr,
			    l->port, other->addr, other->port, other->lineno);
			free(l);
			return;
		}
	strlcpy(l->cert, o->cert, sizeof(l->cert));
	strlcpy(l->key, o->key, sizeof(l->key));
	if (o->plaintext)
		l->flags |= LISTENER_PLAINTEXT;
	TAILQ_INSERT_TAIL(&ps->conf->listeners, l, entry);
	ps->nlisteners++;
}

/* What can only be judged once the whole file is read. */
static void
parse_finish(void)
{
	struct postern_conf	*conf = ps->conf;
	struct listener		*l;
	int			 line;

	if (strcmp(conf->user, conf->storage_user) == 0) {
		line = ps->once[ONCE_USER] > ps->once[ONCE_STORAGE_USER] ?
		    ps->once[ONCE_USER] : ps->once[ONCE_STORAGE_USER];
		parse_error(line, "user and storage user must be different "
		    "(both are %s)", conf->user);
	}
	if (ps->once[ONCE_CERT] && !ps->once[ONCE_KEY] &&
	    conf->cert[0] != '\0')
		parse_error(ps->once[ONCE_CERT], "certificate without key");
	if (ps->once[ONCE_KEY] && !ps->once[ONCE_CERT] &&
	    conf->key[0] != '\0')
		parse_error(ps->once[ONCE_KEY], "key without certificate");
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->cert[0] == '\0' && conf->cert[0] != '\0' &&
		    conf->key[0] != '\0') {
			strlcpy(l->cert, conf->cert, sizeof(l->cert));
			strlcpy(l->key, conf->key, sizeof(l->key));
		}
		if (l->cert[0] != '\0' && l->key[0] != '\0')
			l->flags |= LISTENER_TLS;
		else if (listener_needs_tls(l->kind))
			parse_error(l->lineno, "%s listener needs a "
			    "certificate and key",
			    listener_kind_names[l->kind]);
	}
}

struct postern_conf *
parse_config(const char *filename)
{
	struct parse_state	 state;
	struct postern_conf	*conf;
	int			 i, errors;

	first_error[0] = '\0';
	memset(&state, 0, sizeof(state));
	ps = &state;
	ps->name = filename;
	ps->need_reset = 1;
	ps->unget = -1;

	if ((conf = conf_new()) == NULL)
		fatal("%s", __func__);
	ps->conf = conf;
	if (strlcpy(conf->conffile, filename, sizeof(conf->conffile)) >=
	    sizeof(conf->conffile)) {
		log_warnx("%s: file name too long", filename);
		snprintf(first_error, sizeof(first_error),
		    "%s: file name too long", filename);
		conf_free(conf);
		ps = NULL;
		return NULL;
	}
	if ((ps->fp = fopen(filename, "r")) == NULL) {
		log_warnx("%s: %s", filename, strerror(errno));
		snprintf(first_error, sizeof(first_error), "%s: %s",
		    filename, strerror(errno));
		conf_free(conf);
		ps = NULL;
		return NULL;
	}

	yyparse();
	if (ps->errors < PARSE_ERRORS_MAX)
		parse_finish();

	errors = ps->errors;
	fclose(ps->fp);
	token_strings_free();
	for (i = 0; i < ps->nmacros; i++)
		free(ps->macros[i].value);
	ps = NULL;
	if (errors > 0) {
		conf_free(conf);
		return NULL;
	}
	return conf;
}

const char *
parse_first_error(void)
{
	return first_error;
}
