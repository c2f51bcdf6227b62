/*
 * posternctl's verbs: one table of token sequences, from which the
 * command line is matched and `posternctl help' is printed.
 */
#ifndef PARSER_H
#define PARSER_H

#include <stdio.h>
#include <stdint.h>

#define CTL_TOKENS_MAX	6	/* the longest verb, with its arguments */

enum ctl_token_type {
	TOK_END,
	TOK_KEYWORD,
	TOK_DOMAIN,
	TOK_ADDRESS,
	TOK_ALIAS,		/* an address or @domain */
	TOK_OPT_ADDRESS,	/* may be left out, last only */
	TOK_QUEUE_ID,		/* 16 hex digits */
	TOK_MAILBOX,
	TOK_UID			/* sent as a u32 */
};

struct ctl_token {
	enum ctl_token_type	 type;
	const char		*word;	/* keyword, or the argument's name */
};

enum ctl_action {
	ACT_HELP,
	ACT_SHOW_STATUS,
	ACT_LIST,		/* items, one per line */
	ACT_SIMPLE,		/* OK or FAIL */
	ACT_PASSWORD,		/* one address, then a password */
	ACT_STOP,
	ACT_SHOW_QUEUE,		/* items in columns, under a header */
	ACT_MESSAGE_SHOW	/* OK with text and a descriptor to copy */
};

struct ctl_verb {
	struct ctl_token	 tokens[CTL_TOKENS_MAX];
	enum ctl_action		 action;
	uint32_t		 type;		/* the request's imsg type */
};

/* What the command line asked for, its arguments checked. */
struct ctl_request {
	const struct ctl_verb	*verb;
	const char		*args[CTL_TOKENS_MAX];
	int			 nargs;
};

enum ctl_parse_result {
	PARSE_OK,
	PARSE_UNKNOWN,		/* no verb starts like that */
	PARSE_USAGE,		/* a verb's keywords, wrong arguments */
	PARSE_INVALID		/* right shape, an argument is invalid */
};

enum ctl_parse_result	 ctl_parse(int, char *[], struct ctl_request *,
			    char *, size_t);
const struct ctl_token	*ctl_arg_token(const struct ctl_verb *, int);
void			 ctl_print_verb(FILE *, const struct ctl_verb *);
void			 ctl_print_verbs(FILE *, const char *);

#endif /* PARSER_H */
