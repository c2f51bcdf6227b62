/*
 * posternctl's verbs as token sequences (in the manner of relayctl's
 * parser.c, flattened): keywords to match, then typed arguments that
 * are checked before anything is sent.  posternctl(8) lists the same
 * verbs in the same order; keep the two together.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ctl_valid.h"
#include "imsg_types.h"
#include "parser.h"

#define KW(w)		{ TOK_KEYWORD, w }
#define DOMAIN(w)	{ TOK_DOMAIN, w }
#define ADDRESS(w)	{ TOK_ADDRESS, w }
#define OPT_ADDRESS(w)	{ TOK_OPT_ADDRESS, w }
#define ALIAS(w)	{ TOK_ALIAS, w }
#define QUEUE_ID(w)	{ TOK_QUEUE_ID, w }
#define MAILBOX(w)	{ TOK_MAILBOX, w }
#define UID(w)		{ TOK_UID, w }
#define END		{ TOK_END, NULL }

static const struct ctl_verb ctl_verbs[] = {
	{ { KW("show"), KW("status"), END },
	    ACT_SHOW_STATUS, IMSG_CTL_SHOW_STATUS },
	{ { KW("domain"), KW("add"), DOMAIN("name"), END },
	    ACT_SIMPLE, IMSG_CTL_DOMAIN_ADD },
	{ { KW("domain"), KW("del"), DOMAIN("name"), END },
	    ACT_SIMPLE, IMSG_CTL_DOMAIN_DEL },
	{ { KW("domain"), KW("list"), END },
	    ACT_LIST, IMSG_CTL_DOMAIN_LIST },
	{ { KW("account"), KW("add"), ADDRESS("address"), END },
	    ACT_PASSWORD, IMSG_CTL_ACCOUNT_ADD },
	{ { KW("account"), KW("del"), ADDRESS("address"), END },
	    ACT_SIMPLE, IMSG_CTL_ACCOUNT_DEL },
	{ { KW("account"), KW("list"), END },
	    ACT_LIST, IMSG_CTL_ACCOUNT_LIST },
	{ { KW("account"), KW("passwd"), ADDRESS("address"), END },
	    ACT_PASSWORD, IMSG_CTL_ACCOUNT_PASSWD },
	{ { KW("alias"), KW("add"), ALIAS("alias"), ADDRESS("target"),
	    END },
	    ACT_SIMPLE, IMSG_CTL_ALIAS_ADD },
	{ { KW("alias"), KW("del"), ALIAS("alias"), OPT_ADDRESS("target"),
	    END },
	    ACT_SIMPLE, IMSG_CTL_ALIAS_DEL },
	{ { KW("alias"), KW("list"), END },
	    ACT_LIST, IMSG_CTL_ALIAS_LIST },
	{ { KW("show"), KW("queue"), END },
	    ACT_SHOW_QUEUE, IMSG_CTL_SHOW_QUEUE },
	{ { KW("queue"), KW("remove"), QUEUE_ID("id"), END },
	    ACT_SIMPLE, IMSG_CTL_QUEUE_REMOVE },
	/* Before the id form, which would call "all" an invalid id. */
	{ { KW("queue"), KW("schedule"), KW("all"), END },
	    ACT_SIMPLE, IMSG_CTL_QUEUE_SCHEDULE },
	{ { KW("queue"), KW("schedule"), QUEUE_ID("id"), END },
	    ACT_SIMPLE, IMSG_CTL_QUEUE_SCHEDULE },
	{ { KW("mailbox"), KW("list"), ADDRESS("account"), END },
	    ACT_LIST, IMSG_CTL_MAILBOX_LIST },
	{ { KW("message"), KW("list"), ADDRESS("account"),
	    MAILBOX("mailbox"), END },
	    ACT_LIST, IMSG_CTL_MESSAGE_LIST },
	{ { KW("message"), KW("show"), ADDRESS("account"),
	    MAILBOX("mailbox"), UID("uid"), END },
	    ACT_MESSAGE_SHOW, IMSG_CTL_MESSAGE_SHOW },
	{ { KW("log"), KW("verbose"), END },
	    ACT_SIMPLE, IMSG_CTL_LOG_VERBOSE },
	{ { KW("log"), KW("brief"), END },
	    ACT_SIMPLE, IMSG_CTL_LOG_BRIEF },
	{ { KW("reload"), END },
	    ACT_SIMPLE, IMSG_CTL_RELOAD },
	{ { KW("stop"), END },
	    ACT_STOP, IMSG_CTL_STOP },
	{ { KW("help"), END },
	    ACT_HELP, IMSG_NONE },
};

#define CTL_NVERBS	(sizeof(ctl_verbs) / sizeof(ctl_verbs[0]))

/* How many of the verb's leading keywords argv matches, all or not. */
static int
ctl_keywords_match(const struct ctl_verb *v, int argc, char *argv[])
{
	int	 i;

	for (i = 0; v->tokens[i].type == TOK_KEYWORD; i++)
		if (i >= argc || strcmp(argv[i], v->tokens[i].word) != 0)
			return 0;
	return i;
}

/* Copies an argument for an error message, control characters as '?'. */
static void
ctl_printable(char *dst, size_t len, const char *src)
{
	size_t	 i;

	for (i = 0; i + 1 < len && src[i] != '\0'; i++)
		dst[i] = ((unsigned char)src[i] < 0x20 ||
		    (unsigned char)src[i] == 0x7f) ? '?' : src[i];
	if (len > 0)
		dst[i] = '\0';
}

static int
ctl_check_arg(const struct ctl_token *t, const char *arg, char *err,
    size_t errlen)
{
	char		 why[CTL_ERR_MAX], shown[80];
	const char	*what;
	int		 r;

	switch (t->type) {
	case TOK_DOMAIN:
		what = "domain";
		r = ctl_valid_domain(arg, why, sizeof(why));
		break;
	case TOK_QUEUE_ID:
		what = "queue id";
		r = ctl_valid_queue_id(arg, NULL, why, sizeof(why));
		break;
	case TOK_MAILBOX:
		what = "mailbox";
		r = ctl_valid_mailbox(arg, why, sizeof(why));
		break;
	case TOK_UID:
		what = "uid";
		r = ctl_valid_uid(arg, NULL, why, sizeof(why));
		break;
	case TOK_ALIAS:
		what = "address";
		r = ctl_valid_alias(arg, why, sizeof(why));
		break;
	default:
		what = "address";
		r = ctl_valid_address(arg, why, sizeof(why));
		break;
	}
	if (r == 0)
		return 0;
	ctl_printable(shown, sizeof(shown), arg);
	snprintf(err, errlen, "invalid %s \"%s%s\": %s", what, shown,
	    strlen(arg) >= sizeof(shown) ? "..." : "", why);
	return -1;
}

/*
 * Matches argv against the table.  On PARSE_USAGE req->verb is the
 * verb whose keywords matched; on PARSE_INVALID err says why.
 */
enum ctl_parse_result
ctl_parse(int argc, char *argv[], struct ctl_request *req, char *err,
    size_t errlen)
{
	const struct ctl_verb	*v, *best = NULL;
	const struct ctl_token	*t;
	size_t			 i;
	int			 nkw, a;

	memset(req, 0, sizeof(*req));
	for (i = 0; i < CTL_NVERBS; i++) {
		v = &ctl_verbs[i];
		if ((nkw = ctl_keywords_match(v, argc, argv)) == 0)
			continue;
		best = v;
		a = nkw;
		for (t = &v->tokens[nkw]; t->type != TOK_END; t++) {
			if (a >= argc) {
				if (t->type == TOK_OPT_ADDRESS)
					continue;
				break;
			}
			req->args[req->nargs++] = argv[a++];
		}
		if (t->type != TOK_END || a != argc) {
			req->nargs = 0;
			continue;
		}
		req->verb = v;
		for (a = 0; a < req->nargs; a++)
			if (ctl_check_arg(&v->tokens[nkw + a], req->args[a],
			    err, errlen) == -1)
				return PARSE_INVALID;
		return PARSE_OK;
	}
	req->verb = best;
	return best != NULL ? PARSE_USAGE : PARSE_UNKNOWN;
}

/* The token of a verb's nth argument. */
const struct ctl_token *
ctl_arg_token(const struct ctl_verb *v, int n)
{
	int	 i;

	for (i = 0; v->tokens[i].type == TOK_KEYWORD; i++)
		;
	return &v->tokens[i + n];
}

void
ctl_print_verb(FILE *fp, const struct ctl_verb *v)
{
	const struct ctl_token	*t;

	for (t = v->tokens; t->type != TOK_END; t++) {
		if (t != v->tokens)
			fputc(' ', fp);
		if (t->type == TOK_OPT_ADDRESS)
			fprintf(fp, "[%s]", t->word);
		else
			fputs(t->word, fp);
	}
	fputc('\n', fp);
}

/* Every verb, one per line, each after prefix. */
void
ctl_print_verbs(FILE *fp, const char *prefix)
{
	size_t	 i;

	for (i = 0; i < CTL_NVERBS; i++) {
		fputs(prefix, fp);
		ctl_print_verb(fp, &ctl_verbs[i]);
	}
}
