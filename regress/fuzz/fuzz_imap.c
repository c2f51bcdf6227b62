/*
 * libFuzzer target for imapd/imap_parse.c: a whole command as a client
 * could send it (lines, literals), split into tag, verb and tokens,
 * then read by the parser of its verb, as imapd would.  Also the
 * pieces imapd uses on their own: the literal marker at a line's end,
 * sequence sets, dates, modified UTF-7 both ways and LIST wildcards.
 *
 * Input: one control byte, then the bytes.  The control byte's low 2
 * bits pick what is fuzzed.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../imapd/imap_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_INPUT	(64 * 1024)

static char *
fuzz_string(const uint8_t *p, size_t len)
{
	char	*s;

	if ((s = malloc(len + 1)) == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static void
fuzz_command(const char *buf, size_t len)
{
	struct imap_cmd		 cmd;
	struct imap_fetch	 f;
	struct imap_store	 st;
	struct imap_search	 se;
	struct imap_list	 l;
	struct imap_select	 sel;
	struct imap_append	 a;
	const char		*err;
	char			 e[128];
	size_t			 next;
	int			 items;

	if (imap_parse(buf, len, &cmd, e, sizeof(e)) == -1) {
		imap_cmd_free(&cmd);
		return;
	}
	if (strcmp(cmd.verb, "FETCH") == 0) {
		if (imap_parse_fetch(&cmd, &f, &err) == 0)
			imap_fetch_free(&f);
	} else if (strcmp(cmd.verb, "STORE") == 0) {
		if (imap_parse_store(&cmd, &st, &err) == 0)
			imap_seqset_free(&st.set);
	} else if (strcmp(cmd.verb, "SEARCH") == 0 ||
	    strcmp(cmd.verb, "SORT") == 0 || strcmp(cmd.verb, "THREAD") == 0) {
		if (imap_parse_search(&cmd, 0, &se, &err) == 0)
			imap_search_free(&se);
		else
			imap_search_free(&se);
	} else if (strcmp(cmd.verb, "LIST") == 0 ||
	    strcmp(cmd.verb, "LSUB") == 0) {
		if (imap_parse_list(&cmd, &l, &err) == 0 && l.npatterns > 0)
			(void)imap_match(l.patterns[0], l.ref, '/');
	} else if (strcmp(cmd.verb, "SELECT") == 0 ||
	    strcmp(cmd.verb, "EXAMINE") == 0) {
		if (imap_parse_select(&cmd, &sel, &err) == 0)
			imap_select_free(&sel);
	} else if (strcmp(cmd.verb, "STATUS") == 0 && cmd.args.nitems == 2) {
		(void)imap_parse_status_items(&cmd.args.items[1], &items);
	} else if (strcmp(cmd.verb, "APPEND") == 0 && cmd.args.nitems > 0) {
		(void)imap_parse_append_head(&cmd.args.items[1],
		    cmd.args.nitems - 1, &next, &a, &err);
	}
	imap_cmd_free(&cmd);
}

static void
fuzz_pieces(const char *s, size_t len)
{
	struct imap_seqset	 set;
	uint64_t		 n;
	int64_t			 t;
	int			 nonsync, binary;
	char			*u, *v;
	const char		*half;

	(void)imap_literal_at_end(s, len, &n, &nonsync, &binary);
	if (imap_parse_seqset(s, &set) == 0)
		imap_seqset_free(&set);
	(void)imap_parse_date(s, &t);
	(void)imap_parse_datetime(s, &t);
	if ((u = imap_mutf7_decode(s)) != NULL) {
		/* What decodes must encode back to what decodes the same. */
		if ((v = imap_mutf7_encode(u)) == NULL)
			abort();
		free(v);
		free(u);
	}
	if ((u = imap_mutf7_encode(s)) != NULL) {
		if ((v = imap_mutf7_decode(u)) == NULL || strcmp(v, s) != 0)
			abort();
		free(v);
		free(u);
	}
	half = s + strlen(s) / 2;
	(void)imap_match(half, s, '/');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;
	int	 mode;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	mode = data[0] & 3;
	data++;
	size--;
	s = fuzz_string(data, size);
	if (mode == 3)
		fuzz_pieces(s, size);
	else
		fuzz_command(s, size);
	free(s);
	return 0;
}
