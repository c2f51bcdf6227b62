/*
 * mime_shift(): a message parsed once and shifted by the header lines
 * storaged adds at delivery gives the same JSON as parsing the longer
 * message, and shifting back gives the original again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "unit.h"

static const char *const messages[] = {
	"Received: from a by b; Tue, 1 Dec 2026 14:00:00 +0000\r\n"
	"From: Alice <alice@example.test>\r\n"
	"To: bob@example.test\r\n"
	"Subject: plain\r\n"
	"\r\n"
	"Hello Bob.\r\n",

	"Received: from a by b; Tue, 1 Dec 2026 14:00:00 +0000\r\n"
	"From: alice@example.test\r\n"
	"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
	"MIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	"\r\n"
	"preamble\r\n"
	"--b1\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"\r\n"
	"body text\r\n"
	"--b1\r\n"
	"Content-Type: message/rfc822\r\n"
	"\r\n"
	"From: carol@example.test\r\n"
	"Subject: inner\r\n"
	"Content-Type: multipart/alternative; boundary=b2\r\n"
	"\r\n"
	"--b2\r\n"
	"Content-Type: text/plain\r\n"
	"\r\n"
	"inner text\r\n"
	"--b2\r\n"
	"Content-Type: text/html\r\n"
	"\r\n"
	"<p>inner</p>\r\n"
	"--b2--\r\n"
	"--b1\r\n"
	"Content-Type: application/octet-stream\r\n"
	"Content-Disposition: attachment; filename=a.bin\r\n"
	"Content-Transfer-Encoding: base64\r\n"
	"\r\n"
	"AAECAw==\r\n"
	"--b1--\r\n"
	"epilogue\r\n",

	"Received: from a by b\r\n"
	"\r\n",
};

static const char prefix[] =
    "Return-Path: <alice@example.test>\r\n"
    "Delivered-To: bob+tag@example.test\r\n";

static char *
json_of(const char *raw, size_t len)
{
	struct mime_message	*m;
	char			*j;

	if (mime_parse(raw, len, &m) != MIME_OK)
		return NULL;
	j = mime_to_json(m);
	mime_free(m);
	return j;
}

int
main(void)
{
	struct mime_message	*m;
	char			*whole, *want, *got, *back, *orig;
	size_t			 i, len, plen = strlen(prefix);

	for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		len = strlen(messages[i]);
		if ((whole = malloc(plen + len)) == NULL)
			return 1;
		memcpy(whole, prefix, plen);
		memcpy(whole + plen, messages[i], len);
		want = json_of(whole, plen + len);
		orig = json_of(messages[i], len);
		CHECK(want != NULL && orig != NULL);
		CHECK(mime_parse(messages[i], len, &m) == MIME_OK);
		mime_shift(m, (ptrdiff_t)plen);
		got = mime_to_json(m);
		CHECK(got != NULL && want != NULL && strcmp(got, want) == 0);
		mime_shift(m, -(ptrdiff_t)plen);
		back = mime_to_json(m);
		CHECK(back != NULL && orig != NULL && strcmp(back, orig) == 0);
		if (got != NULL && want != NULL && strcmp(got, want) != 0)
			printf("message %zu:\n got  %s\n want %s\n", i, got,
			    want);
		mime_free(m);
		free(whole);
		free(want);
		free(orig);
		free(got);
		free(back);
	}
	return unit_done();
}
