/*
 * libFuzzer target for lib/mime.c, lib/rfc5322.c, lib/charset.c and
 * lib/mime_json.c: the input is a raw message as a sender could write
 * it.  Whatever parses is serialized to JSON, read back, serialized
 * again (the two must be equal: the round trip is lossless), every
 * part is decoded to text and its header read again, and all is freed.
 * mime_json_body_start() reads the root's body start off the JSON as
 * parsed, and reads the raw input as if it were JSON without a fault.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "mime.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_INPUT	(1024 * 1024)

static void
fuzz_decode_parts(const struct mime_part *p, const char *raw, size_t len)
{
	char	*out;
	size_t	 i, olen;

	if (mime_part_text(p, raw, len, &out, &olen) == MIME_OK) {
		if (!utf8_valid(out, olen))
			abort();
		free(out);
	}
	if (mime_header_get(raw, len, p, "Content-Type", &out) == MIME_OK)
		free(out);
	if (p->message != NULL)
		fuzz_decode_parts(p->message, raw, len);
	for (i = 0; i < p->nchildren; i++)
		fuzz_decode_parts(p->children[i], raw, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_message	*m = NULL, *m2 = NULL;
	const char		*raw = (const char *)data;
	char			*j1, *j2;
	uint64_t		 off;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	(void)mime_json_body_start(raw, size, &off);
	if (mime_parse(raw, size, &m) != MIME_OK)
		return 0;
	if (!utf8_valid(m->preview, strlen(m->preview)))
		abort();
	fuzz_decode_parts(m->root, raw, size);
	if ((j1 = mime_to_json(m)) == NULL)
		abort();
	if (mime_json_body_start(j1, strlen(j1), &off) != 0 ||
	    off != m->root->body_start)
		abort();
	if (mime_from_json(j1, strlen(j1), &m2) != MIME_OK)
		abort();
	if ((j2 = mime_to_json(m2)) == NULL || strcmp(j1, j2) != 0)
		abort();
	free(j1);
	free(j2);
	mime_free(m2);
	mime_free(m);
	return 0;
}
