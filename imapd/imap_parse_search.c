/*
 * The keys of SEARCH, SORT and THREAD (RFC 9051 6.4.4, RFC 4731's
 * RETURN options, RFC 5182's $, RFC 7162's MODSEQ, RFC 5032's OLDER
 * and YOUNGER, RFC 5256) into a tree of struct imap_sk (see
 * imap_parse.h).  Pure, like the rest of the parser.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"

#define BADCHARSET	"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"

/* --- SEARCH ------------------------------------------------------------ */

struct sk_parser {
	const struct imap_tok	*t;
	size_t			 n;
	size_t			 i;
	int			 nodes;
	int			 modseq;
	const char		*err;
};

static void
sk_free(struct imap_sk *k)
{
	struct imap_sk	*next;

	while (k != NULL) {
		next = k->next;
		sk_free(k->child);
		free(k->s1);
		free(k->s2);
		imap_seqset_free(&k->set);
		free(k);
		k = next;
	}
}

static struct imap_sk *
sk_new(struct sk_parser *sp, int op)
{
	struct imap_sk	*k;

	if (++sp->nodes > IMAP_SEARCH_NODES_MAX) {
		sp->err = "Too many search keys";
		return NULL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		sp->err = "Out of memory";
		return NULL;
	}
	k->op = op;
	return k;
}

static const struct imap_tok *
sk_arg(struct sk_parser *sp)
{
	if (sp->i >= sp->n) {
		sp->err = "Missing search argument";
		return NULL;
	}
	return &sp->t[sp->i++];
}

static struct imap_sk *
sk_string(struct sk_parser *sp, int op, const char *field)
{
	const struct imap_tok	*a;
	struct imap_sk		*k;

	if ((a = sk_arg(sp)) == NULL || !imap_tok_is_astring(a) ||
	    memchr(a->s, '\0', a->len) != NULL) {
		sp->err = "Bad search string";
		return NULL;
	}
	if ((k = sk_new(sp, op)) == NULL)
		return NULL;
	if (field != NULL) {
		k->s1 = strdup(field);
		k->s2 = strdup(a->s);
	} else
		k->s1 = strdup(a->s);
	if (k->s1 == NULL || (field != NULL && k->s2 == NULL)) {
		sp->err = "Out of memory";
		sk_free(k);
		return NULL;
	}
	return k;
}

static struct imap_sk *
sk_flag(struct sk_parser *sp, const char *flag, int negate)
{
	struct imap_sk	*k, *not;

	if ((k = sk_new(sp, SK_KEYWORD)) == NULL)
		return NULL;
	if ((k->s1 = strdup(flag)) == NULL) {
		sk_free(k);
		sp->err = "Out of memory";
		return NULL;
	}
	if (!negate)
		return k;
	if ((not = sk_new(sp, SK_NOT)) == NULL) {
		sk_free(k);
		return NULL;
	}
	not->child = k;
	return not;
}

static struct imap_sk	*sk_key(struct sk_parser *, int);

static struct imap_sk *
sk_list(struct sk_parser *sp, const struct imap_tok *t, size_t n, int depth)
{
	struct sk_parser	 sub;
	struct imap_sk		*and, *k, **tail;

	if ((and = sk_new(sp, SK_AND)) == NULL)
		return NULL;
	sub = *sp;
	sub.t = t;
	sub.n = n;
	sub.i = 0;
	tail = &and->child;
	while (sub.i < sub.n) {
		if ((k = sk_key(&sub, depth + 1)) == NULL) {
			sp->err = sub.err;
			sk_free(and);
			return NULL;
		}
		*tail = k;
		tail = &k->next;
		and->num++;
	}
	sp->nodes = sub.nodes;
	sp->modseq = sub.modseq;
	if (and->num == 0) {
		sp->err = "Empty search list";
		sk_free(and);
		return NULL;
	}
	return and;
}

static struct imap_sk *
sk_key(struct sk_parser *sp, int depth)
{
	static const struct {
		const char	*name;
		const char	*flag;
		int		 negate;
	} flags[] = {
		{ "ANSWERED", "\\Answered", 0 },
		{ "DELETED", "\\Deleted", 0 },
		{ "DRAFT", "\\Draft", 0 },
		{ "FLAGGED", "\\Flagged", 0 },
		{ "SEEN", "\\Seen", 0 },
		{ "UNANSWERED", "\\Answered", 1 },
		{ "UNDELETED", "\\Deleted", 1 },
		{ "UNDRAFT", "\\Draft", 1 },
		{ "UNFLAGGED", "\\Flagged", 1 },
		{ "UNSEEN", "\\Seen", 1 },
	};
	static const struct {
		const char	*name;
		int		 op;
		const char	*field;
	} strings[] = {
		{ "BCC", SK_HEADER, "BCC" },
		{ "BODY", SK_BODY, NULL },
		{ "CC", SK_HEADER, "CC" },
		{ "FROM", SK_HEADER, "FROM" },
		{ "SUBJECT", SK_HEADER, "SUBJECT" },
		{ "TEXT", SK_TEXT, NULL },
		{ "TO", SK_HEADER, "TO" },
	};
	static const struct {
		const char	*name;
		int		 op;
	} dates[] = {
		{ "BEFORE", SK_BEFORE },
		{ "ON", SK_ON },
		{ "SENTBEFORE", SK_SENTBEFORE },
		{ "SENTON", SK_SENTON },
		{ "SENTSINCE", SK_SENTSINCE },
		{ "SINCE", SK_SINCE },
	};
	const struct imap_tok	*t, *a, *b;
	struct imap_sk		*k, *c;
	uint64_t		 v;
	size_t			 i;
	const char		*name;
	char			 flag[IMAP_FLAG_MAX * 2];

	if (depth > IMAP_SEARCH_DEPTH) {
		sp->err = "Search too deeply nested";
		return NULL;
	}
	if ((t = sk_arg(sp)) == NULL)
		return NULL;
	if (t->type == TOK_LIST)
		return sk_list(sp, t->items, t->nitems, depth);
	if (t->type != TOK_ATOM) {
		sp->err = "Bad search key";
		return NULL;
	}
	name = t->s;
	if (isdigit((unsigned char)*name) || *name == '*' ||
	    strcmp(name, "$") == 0) {
		if ((k = sk_new(sp, SKX_SEQSET)) == NULL)
			return NULL;
		if (imap_parse_seqset(name, &k->set) == -1) {
			sp->err = "Bad sequence set";
			sk_free(k);
			return NULL;
		}
		return k;
	}
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strcasecmp(name, flags[i].name) == 0)
			return sk_flag(sp, flags[i].flag, flags[i].negate);
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (strcasecmp(name, strings[i].name) == 0)
			return sk_string(sp, strings[i].op, strings[i].field);
	for (i = 0; i < sizeof(dates) / sizeof(dates[0]); i++)
		if (strcasecmp(name, dates[i].name) == 0) {
			if ((a = sk_arg(sp)) == NULL)
				return NULL;
			if ((k = sk_new(sp, dates[i].op)) == NULL)
				return NULL;
			if (!imap_tok_is_astring(a) ||
			    imap_parse_date(a->s, &k->date) == -1) {
				sp->err = "Bad date";
				sk_free(k);
				return NULL;
			}
			return k;
		}
	if (strcasecmp(name, "ALL") == 0)
		return sk_new(sp, SK_ALL);
	if (strcasecmp(name, "OLD") == 0)
		return sk_new(sp, SK_ALL);
	/* Nothing is recent (IMAP4rev2 dropped \Recent). */
	if (strcasecmp(name, "NEW") == 0 || strcasecmp(name, "RECENT") == 0) {
		if ((k = sk_new(sp, SK_NOT)) == NULL)
			return NULL;
		if ((k->child = sk_new(sp, SK_ALL)) == NULL) {
			sk_free(k);
			return NULL;
		}
		return k;
	}
	if (strcasecmp(name, "KEYWORD") == 0 ||
	    strcasecmp(name, "UNKEYWORD") == 0) {
		if ((a = sk_arg(sp)) == NULL)
			return NULL;
		if (!imap_flag_valid(a, 0)) {
			sp->err = "Bad keyword";
			return NULL;
		}
		(void)strlcpy(flag, a->s, sizeof(flag));
		return sk_flag(sp, flag, toupper((unsigned char)*name) == 'U');
	}
	if (strcasecmp(name, "HEADER") == 0) {
		if ((a = sk_arg(sp)) == NULL || (b = sk_arg(sp)) == NULL)
			return NULL;
		if (!imap_tok_is_astring(a) || !imap_tok_is_astring(b) ||
		    a->len == 0 || strpbrk(a->s, ": \t\r\n") != NULL ||
		    memchr(b->s, '\0', b->len) != NULL) {
			sp->err = "Bad HEADER key";
			return NULL;
		}
		if ((k = sk_new(sp, SK_HEADER)) == NULL)
			return NULL;
		if ((k->s1 = strdup(a->s)) == NULL ||
		    (k->s2 = strdup(b->s)) == NULL) {
			sp->err = "Out of memory";
			sk_free(k);
			return NULL;
		}
		return k;
	}
	if (strcasecmp(name, "LARGER") == 0 || strcasecmp(name, "SMALLER") ==
	    0 || strcasecmp(name, "OLDER") == 0 ||
	    strcasecmp(name, "YOUNGER") == 0) {
		if ((a = sk_arg(sp)) == NULL)
			return NULL;
		if (imap_tok_number64(a, &v) == -1 ||
		    ((toupper((unsigned char)*name) == 'O' ||
		    toupper((unsigned char)*name) == 'Y') &&
		    (v == 0 || v > UINT32_MAX))) {
			sp->err = "Bad number";
			return NULL;
		}
		switch (toupper((unsigned char)*name)) {
		case 'L':
			k = sk_new(sp, SK_LARGER);
			break;
		case 'S':
			k = sk_new(sp, SK_SMALLER);
			break;
		case 'O':
			k = sk_new(sp, SK_OLDER);
			break;
		default:
			k = sk_new(sp, SK_YOUNGER);
			break;
		}
		if (k != NULL)
			k->num = v;
		return k;
	}
	if (strcasecmp(name, "MODSEQ") == 0) {
		/* MODSEQ ["entry-name" type] n */
		if ((a = sk_arg(sp)) == NULL)
			return NULL;
		if (a->type == TOK_QUOTED) {
			if ((b = sk_arg(sp)) == NULL)
				return NULL;
			if (!imap_tok_is_atom(b, "priv") &&
			    !imap_tok_is_atom(b, "shared") &&
			    !imap_tok_is_atom(b, "all")) {
				sp->err = "Bad MODSEQ entry type";
				return NULL;
			}
			if ((a = sk_arg(sp)) == NULL)
				return NULL;
		}
		if (imap_tok_number64(a, &v) == -1) {
			sp->err = "Bad MODSEQ";
			return NULL;
		}
		if ((k = sk_new(sp, SK_MODSEQ)) == NULL)
			return NULL;
		k->num = v;
		sp->modseq = 1;
		return k;
	}
	if (strcasecmp(name, "UID") == 0) {
		if ((a = sk_arg(sp)) == NULL)
			return NULL;
		if ((k = sk_new(sp, SKX_SEQSET)) == NULL)
			return NULL;
		k->uidset = 1;
		if (a->type != TOK_ATOM ||
		    imap_parse_seqset(a->s, &k->set) == -1) {
			sp->err = "Bad UID set";
			sk_free(k);
			return NULL;
		}
		return k;
	}
	if (strcasecmp(name, "NOT") == 0) {
		if ((k = sk_new(sp, SK_NOT)) == NULL)
			return NULL;
		if ((k->child = sk_key(sp, depth + 1)) == NULL) {
			sk_free(k);
			return NULL;
		}
		return k;
	}
	if (strcasecmp(name, "OR") == 0) {
		if ((k = sk_new(sp, SK_OR)) == NULL)
			return NULL;
		if ((c = sk_key(sp, depth + 1)) == NULL) {
			sk_free(k);
			return NULL;
		}
		k->child = c;
		if ((c->next = sk_key(sp, depth + 1)) == NULL) {
			sk_free(k);
			return NULL;
		}
		return k;
	}
	sp->err = "Unknown search key";
	return NULL;
}

void
imap_search_free(struct imap_search *s)
{
	sk_free(s->prog);
	s->prog = NULL;
}

static int
search_charset(struct imap_search *s, const struct imap_tok *t)
{
	if (!imap_tok_is_astring(t) ||
	    (strcasecmp(t->s, "UTF-8") != 0 &&
	    strcasecmp(t->s, "US-ASCII") != 0))
		return -1;
	(void)strlcpy(s->charset, t->s, sizeof(s->charset));
	return 0;
}

/*
 * SEARCH [RETURN (opts)] [CHARSET c] keys; SORT (criteria) charset
 * keys; THREAD algorithm charset keys.  The args from first on.
 */
int
imap_parse_search(const struct imap_cmd *cmd, size_t first,
    struct imap_search *s, const char **errp)
{
	const struct imap_tok	*args = cmd->args.items, *t;
	size_t			 nargs = cmd->args.nitems, i = first, j;
	struct sk_parser	 sp;
	static const char	*sortkeys[] = {
		"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
		"DISPLAYFROM", "DISPLAYTO"
	};
	int			 ok;

	memset(s, 0, sizeof(*s));
	*errp = "Bad search";
	if (strcmp(cmd->verb, "SORT") == 0) {
		*errp = "Syntax: SORT (criteria) charset keys";
		if (i >= nargs ||
		    args[i].type != TOK_LIST || args[i].nitems == 0 ||
		    args[i].nitems > IMAP_SORT_KEYS_MAX)
			return -1;
		t = &args[i];
		for (j = 0; j < t->nitems; j++) {
			if (t->items[j].type != TOK_ATOM)
				return -1;
			if (strcasecmp(t->items[j].s, "REVERSE") == 0 &&
			    j + 1 < t->nitems &&
			    t->items[j + 1].type == TOK_ATOM &&
			    strcasecmp(t->items[j + 1].s, "REVERSE") != 0)
				ok = 1;
			else {
				ok = 0;
				for (size_t k = 0; k < sizeof(sortkeys) /
				    sizeof(sortkeys[0]); k++)
					if (strcasecmp(t->items[j].s,
					    sortkeys[k]) == 0)
						ok = 1;
			}
			if (!ok)
				return -1;
			if (j > 0)
				(void)strlcat(s->sort, " ", sizeof(s->sort));
			(void)strlcat(s->sort, t->items[j].s, sizeof(s->sort));
		}
		for (j = 0; s->sort[j]; j++)
			s->sort[j] = toupper((unsigned char)s->sort[j]);
	} else if (strcmp(cmd->verb, "THREAD") == 0) {
		*errp = "Syntax: THREAD algorithm charset keys";
		if (i >= nargs || args[i].type != TOK_ATOM)
			return -1;
		if (strcasecmp(args[i].s, "REFERENCES") == 0)
			(void)strlcpy(s->algorithm, "REFERENCES",
			    sizeof(s->algorithm));
		else if (strcasecmp(args[i].s, "ORDEREDSUBJECT") == 0)
			(void)strlcpy(s->algorithm, "ORDEREDSUBJECT",
			    sizeof(s->algorithm));
		else {
			*errp = "Unknown threading algorithm";
			return -1;
		}
	}
	if (strcmp(cmd->verb, "SORT") == 0 ||
	    strcmp(cmd->verb, "THREAD") == 0) {
		i++;
		/* The charset, then at least one key. */
		if (i + 1 >= nargs)
			return -1;
		if (search_charset(s, &args[i]) == -1) {
			*errp = BADCHARSET;
			return -1;
		}
		i++;
	}
	if (i < nargs && imap_tok_is_atom(&args[i], "RETURN")) {
		*errp = "Bad RETURN options";
		if (++i >= nargs || args[i].type != TOK_LIST)
			return -1;
		s->esearch = 1;
		t = &args[i];
		for (j = 0; j < t->nitems; j++) {
			if (imap_tok_is_atom(&t->items[j], "MIN"))
				s->ret |= ESEARCH_MIN;
			else if (imap_tok_is_atom(&t->items[j], "MAX"))
				s->ret |= ESEARCH_MAX;
			else if (imap_tok_is_atom(&t->items[j], "ALL"))
				s->ret |= ESEARCH_ALL;
			else if (imap_tok_is_atom(&t->items[j], "COUNT"))
				s->ret |= ESEARCH_COUNT;
			else if (imap_tok_is_atom(&t->items[j], "SAVE"))
				s->ret |= ESEARCH_SAVE;
			else
				return -1;
		}
		/* RFC 4731: RETURN () is RETURN (ALL). */
		if (s->ret == 0 || s->ret == ESEARCH_SAVE)
			s->ret |= s->ret == 0 ? ESEARCH_ALL : 0;
		i++;
	}
	if (i + 1 < nargs && imap_tok_is_atom(&args[i], "CHARSET")) {
		*errp = BADCHARSET;
		if (search_charset(s, &args[i + 1]) == -1)
			return -1;
		i += 2;
	}
	if (i >= nargs) {
		*errp = "Missing search keys";
		return -1;
	}
	memset(&sp, 0, sizeof(sp));
	if ((s->prog = sk_list(&sp, &args[i], nargs - i, 0)) == NULL) {
		*errp = sp.err ? sp.err : "Bad search";
		return -1;
	}
	s->nodes = sp.nodes;
	s->modseq = sp.modseq;
	return 0;
}
