/*
 * The IMAP command grammar (RFC 9051, with RFC 3501's forms and the
 * extensions imapd offers) turned into structs.  Pure: no I/O, no
 * globals, every input bounded; regress/fuzz/fuzz_imap.c drives it.
 * imap_parse.c has the tokens and most commands, imap_parse_search.c
 * the search keys.
 *
 * A command arrives whole, as on the wire: its lines with their CR LF
 * and each literal's bytes after its {n} CR LF (the session gathers
 * them, see imap_literal_at_end()).  imap_parse() splits it into the
 * tag, the verb and a tree of tokens; the imap_parse_*() functions read
 * one command's arguments from that tree.  Strings in tokens are copies
 * with a NUL after them (a literal may hold NULs: use len).
 */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_proto.h"

#define IMAP_TAG_MAX		64	/* bytes of a tag */
#define IMAP_VERB_MAX		32
#define IMAP_PAREN_DEPTH	IMAP_SEARCH_DEPTH	/* nested lists */
#define IMAP_TOKENS_MAX		8192	/* tokens in one command */
#define IMAP_SEQSET_MAX		8192	/* ranges in one sequence set */
#define IMAP_FETCH_ATTS_MAX	64	/* items of one FETCH */
#define IMAP_PARSE_FIELDS_MAX	64	/* names in HEADER.FIELDS */
#define IMAP_FLAGS_MAX		64	/* flags of one STORE or APPEND */
#define IMAP_FLAG_MAX		128	/* bytes of one flag */
#define IMAP_MAILBOX_MAX	1000	/* bytes of a mailbox name */
#define IMAP_SECTION_PARTS_MAX	32	/* numbers in a section part */
#define IMAP_SEARCH_NODES_MAX	1024	/* keys in one SEARCH */
#define IMAP_SORT_KEYS_MAX	16
#define IMAP_PATTERNS_MAX	32	/* LIST patterns */
#define IMAP_LITERAL_DIGITS	20

enum imap_tok_type {
	TOK_ATOM,	/* atoms, numbers, NIL, sets, BODY[...]<...> */
	TOK_QUOTED,
	TOK_LITERAL,
	TOK_LIST
};

struct imap_tok {
	enum imap_tok_type	 type;
	char			*s;	/* NUL-terminated; NULL for lists */
	size_t			 len;
	int			 binary;	/* ~{n} */
	struct imap_tok		*items;		/* TOK_LIST */
	size_t			 nitems;
};

struct imap_cmd {
	char			 tag[IMAP_TAG_MAX + 1];
	char			 verb[IMAP_VERB_MAX + 1];	/* upper case */
	int			 uid;		/* UID FETCH and the like */
	struct imap_tok		 args;		/* a TOK_LIST */
};

/* A sequence set: '*' is UINT32_MAX; '$' sets saved. */
struct imap_range {
	uint32_t	 lo;
	uint32_t	 hi;
};

struct imap_seqset {
	struct imap_range	*r;
	size_t			 n;
	int			 saved;		/* "$" (SEARCHRES) */
};

/* FETCH */
enum imap_section_kind {
	SECT_ALL,		/* BODY[] or BODY[1.2] */
	SECT_HEADER,
	SECT_HEADER_FIELDS,
	SECT_HEADER_FIELDS_NOT,
	SECT_TEXT,
	SECT_MIME
};

enum imap_fetch_kind {
	FA_FLAGS,
	FA_INTERNALDATE,
	FA_RFC822_SIZE,
	FA_ENVELOPE,
	FA_BODY,		/* BODY without section: structure */
	FA_BODYSTRUCTURE,
	FA_UID,
	FA_MODSEQ,
	FA_SECTION,		/* BODY[..], BODY.PEEK[..], BINARY[..] */
	FA_BINARY_SIZE,
	FA_RFC822,		/* as BODY[] */
	FA_RFC822_HEADER,	/* as BODY.PEEK[HEADER] */
	FA_RFC822_TEXT		/* as BODY[TEXT] */
};

struct imap_fetch_att {
	enum imap_fetch_kind	 kind;
	int			 peek;
	int			 binary;
	uint32_t		 part[IMAP_SECTION_PARTS_MAX];
	size_t			 npart;
	enum imap_section_kind	 section;
	char			*spec;		/* between [ and ] */
	char			*fields[IMAP_PARSE_FIELDS_MAX];
	size_t			 nfields;
	int			 partial;
	uint32_t		 offset;
	uint32_t		 count;
	char			 name[256];	/* as it goes out, no <..> */
};

struct imap_fetch {
	struct imap_seqset	 set;
	struct imap_fetch_att	 atts[IMAP_FETCH_ATTS_MAX];
	size_t			 natts;
	uint64_t		 changedsince;	/* 0: none */
	int			 vanished;	/* UID FETCH (VANISHED) */
};

/* STORE */
struct imap_store {
	struct imap_seqset	 set;
	int			 op;		/* IMAP_STORE_* */
	int			 silent;
	uint64_t		 unchangedsince;	/* 0: none */
	int			 has_unchangedsince;
	char			 flags[IMAP_FLAGS_MAX * (IMAP_FLAG_MAX + 1)];
};

/* SEARCH, SORT, THREAD: the program as a tree. */
struct imap_sk {
	int			 op;		/* enum search_key or SKX_* */
	struct imap_sk		*child;		/* first child */
	struct imap_sk		*next;		/* sibling */
	char			*s1;
	char			*s2;
	uint64_t		 num;
	int64_t			 date;
	struct imap_seqset	 set;
	int			 uidset;	/* set holds UIDs */
};

#define SKX_SEQSET	(SK_MAX + 1)	/* set of sequence numbers or UIDs */

#define ESEARCH_MIN	0x01
#define ESEARCH_MAX	0x02
#define ESEARCH_ALL	0x04
#define ESEARCH_COUNT	0x08
#define ESEARCH_SAVE	0x10

struct imap_search {
	int			 esearch;	/* RETURN given */
	int			 ret;		/* ESEARCH_* */
	char			 charset[64];
	struct imap_sk		*prog;		/* an SK_AND of the keys */
	int			 nodes;
	int			 modseq;	/* MODSEQ was used */
	char			 sort[256];	/* SORT criteria, upper case */
	char			 algorithm[32];	/* THREAD */
};

/* LIST */
#define LIST_SEL_SUBSCRIBED	0x01
#define LIST_SEL_REMOTE		0x02
#define LIST_SEL_RECURSIVE	0x04
#define LIST_SEL_SPECIAL	0x08
#define LIST_RET_SUBSCRIBED	0x01
#define LIST_RET_CHILDREN	0x02
#define LIST_RET_SPECIAL	0x04
#define LIST_RET_STATUS		0x08

#define STATUS_MESSAGES		0x01
#define STATUS_UIDNEXT		0x02
#define STATUS_UIDVALIDITY	0x04
#define STATUS_UNSEEN		0x08
#define STATUS_DELETED		0x10
#define STATUS_SIZE		0x20
#define STATUS_HIGHESTMODSEQ	0x40
#define STATUS_RECENT		0x80

struct imap_list {
	int			 sel;
	int			 ret;
	int			 status;	/* STATUS_* for RETURN STATUS */
	int			 extended;
	char			*ref;
	char			*patterns[IMAP_PATTERNS_MAX];
	size_t			 npatterns;
};

/* SELECT and EXAMINE */
struct imap_select {
	char			*mailbox;
	int			 condstore;
	int			 qresync;
	uint32_t		 uidvalidity;
	uint64_t		 modseq;
	struct imap_seqset	 known_uids;
	struct imap_seqset	 seq_match;
	struct imap_seqset	 uid_match;
};

/* APPEND: the head before a message literal */
struct imap_append {
	char			 flags[IMAP_FLAGS_MAX * (IMAP_FLAG_MAX + 1)];
	int64_t			 date;		/* 0: none */
};

int	 imap_parse(const char *, size_t, struct imap_cmd *, char *, size_t);
int	 imap_parse_args(const char *, size_t, struct imap_tok *, char *,
	    size_t);
void	 imap_tok_free(struct imap_tok *);
void	 imap_cmd_free(struct imap_cmd *);
int	 imap_parse_tag(const char *, size_t, char *, size_t);
int	 imap_literal_at_end(const char *, size_t, uint64_t *, int *, int *);

int	 imap_tok_is_astring(const struct imap_tok *);
int	 imap_tok_is_atom(const struct imap_tok *, const char *);
int	 imap_tok_number(const struct imap_tok *, uint32_t *);
int	 imap_tok_number64(const struct imap_tok *, uint64_t *);

int	 imap_parse_seqset(const char *, struct imap_seqset *);
void	 imap_seqset_free(struct imap_seqset *);
int	 imap_flag_valid(const struct imap_tok *, int);
int	 imap_parse_flags(const struct imap_tok *, char *, size_t, int);
int	 imap_parse_date(const char *, int64_t *);
int	 imap_parse_datetime(const char *, int64_t *);
int	 imap_parse_fetch(const struct imap_cmd *, struct imap_fetch *,
	    const char **);
void	 imap_fetch_free(struct imap_fetch *);
int	 imap_parse_store(const struct imap_cmd *, struct imap_store *,
	    const char **);
int	 imap_parse_search(const struct imap_cmd *, size_t,
	    struct imap_search *, const char **);
void	 imap_search_free(struct imap_search *);
int	 imap_parse_list(const struct imap_cmd *, struct imap_list *,
	    const char **);
int	 imap_parse_status_items(const struct imap_tok *, int *);
int	 imap_parse_select(const struct imap_cmd *, struct imap_select *,
	    const char **);
void	 imap_select_free(struct imap_select *);
int	 imap_parse_append_head(const struct imap_tok *, size_t, size_t *,
	    struct imap_append *, const char **);

/* Modified UTF-7 (RFC 3501 5.1.3) and UTF-8 mailbox names. */
char	*imap_mutf7_decode(const char *);
char	*imap_mutf7_encode(const char *);
int	 imap_match(const char *, const char *, char);

#endif /* IMAP_PARSE_H */
