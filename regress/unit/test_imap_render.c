/*
 * imapd/imap_render.c: FETCH data from parsed messages, checked against
 * RFC 9051's examples and against mail that is harder to get right:
 * groups, missing headers, encoded-words, 8-bit, nested multiparts,
 * message/rfc822, sections, HEADER.FIELDS, partial, BINARY.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mime.h"
#include "../../imapd/imap_render.h"
#include "unit.h"

/* The whole message as imapd sees it: a stored prefix, then the blob. */
struct source {
	const char	*prefix;
	size_t		 prefixlen;
	const char	*blob;
	size_t		 bloblen;
	int		 reads;
};

static int
source_read(void *arg, size_t off, char *dst, size_t len)
{
	struct source	*src = arg;
	size_t		 n;

	src->reads++;
	if (off + len < off || off + len > src->prefixlen + src->bloblen)
		return -1;
	if (off < src->prefixlen) {
		n = src->prefixlen - off;
		if (n > len)
			n = len;
		memcpy(dst, src->prefix + off, n);
		dst += n;
		len -= n;
		off += n;
	}
	if (len > 0)
		memcpy(dst, src->blob + (off - src->prefixlen), len);
	return 0;
}

static struct mime_message *
parse(const char *s)
{
	struct mime_message	*m = NULL, *m2 = NULL;
	char			*j;
	int			 r;

	if ((r = mime_parse(s, strlen(s), &m)) != MIME_OK) {
		printf("parse failed: %s\n", mime_strerror(r));
		return NULL;
	}
	/* imapd renders what storaged stored: the tree through JSON. */
	if ((j = mime_to_json(m)) == NULL ||
	    mime_from_json(j, strlen(j), &m2) != MIME_OK) {
		printf("json round trip failed\n");
		m2 = NULL;
	}
	free(j);
	mime_free(m);
	return m2;
}

static int
buf_is(struct imap_buf *b, const char *want)
{
	int	 ok;

	ok = !b->oom && b->len == strlen(want) &&
	    (b->len == 0 || memcmp(b->p, want, b->len) == 0);
	if (!ok)
		printf("got  [%.*s]\nwant [%s]\n", (int)b->len,
		    b->p == NULL ? "" : b->p, want);
	imap_buf_reset(b);
	return ok;
}

static int
quote_is(const char *s, size_t len, int utf8, const char *want)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 ok;

	imap_quote(&b, s, len, utf8);
	ok = buf_is(&b, want);
	imap_buf_free(&b);
	return ok;
}

static int
astring_is(const char *s, const char *want)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 ok;

	imap_astring(&b, s, strlen(s), 0);
	ok = buf_is(&b, want);
	imap_buf_free(&b);
	return ok;
}

static int
envelope_is(const char *msg, int flags, const char *want)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct mime_message	*m;
	int			 ok;

	if ((m = parse(msg)) == NULL)
		return 0;
	imap_render_envelope(&b, &m->envelope, flags);
	ok = buf_is(&b, want);
	imap_buf_free(&b);
	mime_free(m);
	return ok;
}

static int
body_is(const char *msg, int extended, const char *want)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct mime_message	*m;
	int			 ok;

	if ((m = parse(msg)) == NULL)
		return 0;
	imap_render_bodystructure(&b, m->root, extended, 0);
	ok = buf_is(&b, want);
	imap_buf_free(&b);
	mime_free(m);
	return ok;
}

/* BODY[section]<partial> of msg (with prefix before it) as imapd sends it. */
static int
fetch_is(const char *prefix, const char *msg, const char *section, int kind,
    int partial, uint64_t origin, uint64_t count, const char *want)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct imap_section	 s;
	struct mime_message	*m;
	struct source		 src;
	int			 r, ok;

	if ((m = parse(msg)) == NULL)
		return 0;
	memset(&src, 0, sizeof(src));
	src.prefix = prefix;
	src.prefixlen = strlen(prefix);
	src.blob = msg;
	src.bloblen = strlen(msg);
	mime_shift(m, src.prefixlen);
	r = imap_section_find(m, section, &s);
	if (r < 0) {
		imap_buf_printf(&b, "section error %d", r);
	} else {
		r = imap_fetch_section(&b, m, &s, kind, partial, origin, count,
		    source_read, &src);
		if (r != IMAP_SECTION_OK)
			imap_buf_printf(&b, "fetch error %d", r);
	}
	ok = buf_is(&b, want);
	if (!ok)
		printf("section [%s]\n", section);
	imap_section_clear(&s);
	imap_buf_free(&b);
	mime_free(m);
	return ok;
}

static int
section_name_is(const char *section, const char *want)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct imap_section	 s;
	int			 ok;

	if (imap_section_parse(section, &s) != IMAP_SECTION_OK) {
		imap_section_clear(&s);
		printf("section [%s] did not parse\n", section);
		return 0;
	}
	imap_section_name(&b, &s);
	ok = buf_is(&b, want);
	imap_section_clear(&s);
	imap_buf_free(&b);
	return ok;
}

static int
section_bad(const char *section)
{
	struct imap_section	 s;
	int			 r;

	r = imap_section_parse(section, &s);
	imap_section_clear(&s);
	if (r != IMAP_SECTION_SYNTAX)
		printf("section [%s] parsed\n", section);
	return r == IMAP_SECTION_SYNTAX;
}

static void
test_buf(void)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 i;

	imap_buf_adds(&b, "a");
	imap_buf_addc(&b, 'b');
	imap_buf_printf(&b, "%d-%s", 42, "x");
	imap_buf_add(&b, "", 0);
	CHECK(buf_is(&b, "ab42-x"));
	for (i = 0; i < 10000; i++)
		imap_buf_printf(&b, "%04d", i);
	CHECK(b.len == 40000 && memcmp(b.p + 39996, "9999", 4) == 0);
	imap_buf_free(&b);
	CHECK(b.p == NULL && b.len == 0);
}

static void
test_quote(void)
{
	char	 big[IMAP_QUOTED_MAX + 2], want[IMAP_QUOTED_MAX + 20];

	CHECK(quote_is(NULL, 0, 0, "NIL"));
	CHECK(quote_is("", 0, 0, "\"\""));
	CHECK(quote_is("Hello World", 11, 0, "\"Hello World\""));
	CHECK(quote_is("a\"b\\c", 5, 0, "\"a\\\"b\\\\c\""));
	CHECK(quote_is("NIL", 3, 0, "\"NIL\""));
	CHECK(quote_is("two\r\nlines", 10, 0, "{10}\r\ntwo\r\nlines"));
	CHECK(quote_is("bare\nlf", 7, 0, "{7}\r\nbare\nlf"));
	/* UTF-8 quoted only for UTF8=ACCEPT; Latin-1 bytes never. */
	CHECK(quote_is("caf\xc3\xa9", 5, 0, "{5}\r\ncaf\xc3\xa9"));
	CHECK(quote_is("caf\xc3\xa9", 5, 1, "\"caf\xc3\xa9\""));
	CHECK(quote_is("caf\xe9", 4, 1, "{4}\r\ncaf\xe9"));
	memset(big, 'x', sizeof(big));
	snprintf(want, sizeof(want), "\"%.*s\"", IMAP_QUOTED_MAX, big);
	CHECK(quote_is(big, IMAP_QUOTED_MAX, 0, want));
	snprintf(want, sizeof(want), "{%d}\r\n%.*s", IMAP_QUOTED_MAX + 1,
	    IMAP_QUOTED_MAX + 1, big);
	CHECK(quote_is(big, IMAP_QUOTED_MAX + 1, 0, want));

	CHECK(astring_is("INBOX", "INBOX"));
	CHECK(astring_is("a]b", "a]b"));
	CHECK(astring_is("Sent Items", "\"Sent Items\""));
	CHECK(astring_is("", "\"\""));
	CHECK(astring_is("nil", "\"nil\""));
	CHECK(astring_is("a%", "\"a%\""));
	CHECK(astring_is("{5}", "\"{5}\""));
}

static void
test_literal_nul(void)
{
	struct imap_buf	 b = IMAP_BUF_INIT;

	imap_quote(&b, "a\0b", 3, 0);
	CHECK(b.len == 9 && memcmp(b.p, "~{3}\r\na\0b", 9) == 0);
	imap_buf_reset(&b);
	imap_literal(&b, "abc", 3);
	CHECK(buf_is(&b, "{3}\r\nabc"));
	imap_buf_free(&b);
}

/* RFC 9051 7.5.2's example message, header and body counts as there. */
static const char rfc9051_msg[] =
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    "From: Terry Gray <gray@cac.washington.edu>\r\n"
    "Subject: IMAP4rev2 WG mtg summary and minutes\r\n"
    "To: imap@cac.washington.edu\r\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    "\r\n"
    "line one\r\n"
    "line two\r\n";

static void
test_envelope(void)
{
	CHECK(envelope_is(rfc9051_msg, 0,
	    "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" "
	    "\"IMAP4rev2 WG mtg summary and minutes\" "
	    "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
	    "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
	    "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) "
	    "((NIL NIL \"imap\" \"cac.washington.edu\")) "
	    "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")"
	    "(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) NIL NIL "
	    "\"<B27397-0100000@cac.washington.edu>\")"));

	/* Nothing at all: every member NIL. */
	CHECK(envelope_is("X-Nothing: here\r\n\r\nbody\r\n", 0,
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"));

	/* Sender and Reply-To given, In-Reply-To, Bcc. */
	CHECK(envelope_is(
	    "From: a@example.org\r\n"
	    "Sender: list-owner@example.net\r\n"
	    "Reply-To: \"The List\" <list@example.net>\r\n"
	    "Bcc: hidden@example.com\r\n"
	    "In-Reply-To: <parent@example.org>\r\n"
	    "\r\n", 0,
	    "(NIL NIL ((NIL NIL \"a\" \"example.org\")) "
	    "((NIL NIL \"list-owner\" \"example.net\")) "
	    "((\"The List\" NIL \"list\" \"example.net\")) NIL NIL "
	    "((NIL NIL \"hidden\" \"example.com\")) "
	    "\"<parent@example.org>\" NIL)"));

	/* An empty Sender is From too. */
	CHECK(envelope_is("From: a@b.example\r\nSender: \r\n\r\n", 0,
	    "(NIL NIL ((NIL NIL \"a\" \"b.example\")) "
	    "((NIL NIL \"a\" \"b.example\")) "
	    "((NIL NIL \"a\" \"b.example\")) NIL NIL NIL NIL NIL)"));

	/* Groups: named with members, and empty. */
	CHECK(envelope_is(
	    "To: Team: ann@x.example, \"Bob B\" <bob@x.example>;, "
	    "undisclosed-recipients:;\r\n\r\n", 0,
	    "(NIL NIL NIL NIL NIL "
	    "((NIL NIL \"Team\" NIL)(NIL NIL \"ann\" \"x.example\")"
	    "(\"Bob B\" NIL \"bob\" \"x.example\")(NIL NIL NIL NIL)"
	    "(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
	    "NIL NIL NIL NIL)"));

	/* A source route; a local part alone. */
	CHECK(envelope_is("To: <@relay.example:joe@x.example>, root\r\n\r\n",
	    0, "(NIL NIL NIL NIL NIL "
	    "((NIL \"@relay.example\" \"joe\" \"x.example\")"
	    "(NIL NIL \"root\" \"\")) NIL NIL NIL NIL)"));

	/*
	 * Encoded-words: the subject raw as it came; display names are
	 * decoded, so they go out again as UTF-8 encoded-words, or as UTF-8
	 * after ENABLE UTF8=ACCEPT.
	 */
	CHECK(envelope_is(
	    "Subject: =?ISO-8859-1?Q?Caf=E9?= ok\r\n"
	    "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\r\n\r\n", 0,
	    "(NIL \"=?ISO-8859-1?Q?Caf=E9?= ok\" "
	    "((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) "
	    "((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) "
	    "((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) "
	    "NIL NIL NIL NIL NIL)"));
	CHECK(envelope_is(
	    "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\r\n\r\n",
	    IMAP_R_UTF8,
	    "(NIL NIL ((\"Andr\xc3\xa9\" NIL \"andre\" \"example.fr\")) "
	    "((\"Andr\xc3\xa9\" NIL \"andre\" \"example.fr\")) "
	    "((\"Andr\xc3\xa9\" NIL \"andre\" \"example.fr\")) "
	    "NIL NIL NIL NIL NIL)"));

	/* 8-bit subject: a literal, or quoted UTF-8 for UTF8=ACCEPT. */
	CHECK(envelope_is("Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\n", 0,
	    "(NIL {7}\r\nGr\xc3\xbc\xc3\x9f" "e NIL NIL NIL NIL NIL NIL "
	    "NIL NIL)"));
	CHECK(envelope_is("Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n\r\n",
	    IMAP_R_UTF8, "(NIL \"Gr\xc3\xbc\xc3\x9f" "e\" NIL NIL NIL NIL "
	    "NIL NIL NIL NIL)"));
	/* Latin-1 bytes are not UTF-8: a literal even for UTF8=ACCEPT. */
	CHECK(envelope_is("Subject: Caf\xe9\r\n\r\n", IMAP_R_UTF8,
	    "(NIL {4}\r\nCaf\xe9 NIL NIL NIL NIL NIL NIL NIL NIL)"));
	/* A tab may be quoted. */
	CHECK(envelope_is("Subject: a\tb\r\n\r\n", 0,
	    "(NIL \"a\tb\" NIL NIL NIL NIL NIL NIL NIL NIL)"));
	/* Quotes and backslashes in a subject. */
	CHECK(envelope_is("Subject: say \"hi\" \\o/\r\n\r\n", 0,
	    "(NIL \"say \\\"hi\\\" \\\\o/\" NIL NIL NIL NIL NIL NIL NIL "
	    "NIL)"));
	/* A folded subject is unfolded. */
	CHECK(envelope_is("Subject: one\r\n two\r\n\r\n", 0,
	    "(NIL \"one two\" NIL NIL NIL NIL NIL NIL NIL NIL)"));
}

static void
test_long_name(void)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct mime_message	*m;
	const char		*p;
	int			 words = 0;

	/* 32 x U+00E9 (64 bytes): 44 and 20 bytes, cut between chars. */
	m = parse("From: =?utf-8?b?w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOp"
	    "w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqQ==?= "
	    "<x@y.example>\r\n\r\n");
	CHECK(m != NULL);
	if (m == NULL)
		return;
	imap_render_envelope(&b, &m->envelope, 0);
	imap_buf_addc(&b, '\0');
	for (p = b.p; (p = strstr(p, "=?utf-8?b?")) != NULL; p++)
		words++;
	CHECK(words == 6);	/* From, Sender, Reply-To */
	CHECK(strstr(b.p, "((\"=?utf-8?b?"
	    "w6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6nDqcOpw6k=?= "
	    "=?utf-8?b?w6nDqcOpw6nDqcOpw6nDqcOpw6k=?=\" NIL \"x\" "
	    "\"y.example\"))") != NULL);
	imap_buf_free(&b);
	mime_free(m);
}

static const char nested_msg[] =
    "From: a@example.org\r\n"
    "Subject: nested\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "caf=C3=A9\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>caf\xc3\xa9</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf; name=\"r.pdf\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=\"r.pdf\"\r\n"
    "Content-ID: <pdf1@example.org>\r\n"
    "Content-Description: The report\r\n"
    "Content-Language: en, de\r\n"
    "Content-Location: http://example.org/r.pdf\r\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    "\r\n"
    "SGVsbG8=\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: Inner Sender <in@example.net>\r\n"
    "Subject: inner\r\n"
    "Message-ID: <in1@example.net>\r\n"
    "Content-Type: multipart/mixed; boundary=x\r\n"
    "\r\n"
    "--x\r\n"
    "\r\n"
    "inner text\r\n"
    "--x\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n"
    "\r\n"
    "begin 644 f\r\n"
    "--x--\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

static void
test_bodystructure(void)
{
	CHECK(body_is(rfc9051_msg, 0,
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	    "\"7BIT\" 20 2)"));
	CHECK(body_is(rfc9051_msg, 1,
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL "
	    "\"7BIT\" 20 2 NIL NIL NIL NIL)"));

	/* No Content-Type: text/plain; charset=us-ascii (RFC 2045). */
	CHECK(body_is("Subject: x\r\n\r\nhello\r\n", 0,
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"7BIT\" 7 1)"));
	/* No trailing line break: the last line still counts. */
	CHECK(body_is("Subject: x\r\n\r\na\r\nb", 0,
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"7BIT\" 4 2)"));
	/* Not text: no line count. */
	CHECK(body_is("Content-Type: image/png\r\n"
	    "Content-Transfer-Encoding: BASE64\r\n\r\niVBORw0K\r\n", 0,
	    "(\"IMAGE\" \"PNG\" NIL NIL NIL \"BASE64\" 10)"));

	CHECK(body_is(nested_msg, 0,
	    "("
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL "
	    "\"QUOTED-PRINTABLE\" 9 1)"
	    "(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" "
	    "12 1) \"ALTERNATIVE\")"
	    "(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") "
	    "\"<pdf1@example.org>\" \"The report\" \"BASE64\" 8)"
	    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 256 "
	    "(NIL \"inner\" ((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "NIL NIL NIL NIL \"<in1@example.net>\") "
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"7BIT\" 10 1)"
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"X-UUENCODE\" 11 1) \"MIXED\") 14)"
	    " \"MIXED\")"));

	CHECK(body_is(nested_msg, 1,
	    "("
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL "
	    "\"QUOTED-PRINTABLE\" 9 1 NIL NIL NIL NIL)"
	    "(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" "
	    "12 1 NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") "
	    "NIL NIL NIL)"
	    "(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") "
	    "\"<pdf1@example.org>\" \"The report\" \"BASE64\" 8 "
	    "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" "
	    "(\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\")) (\"en\" \"de\") "
	    "\"http://example.org/r.pdf\")"
	    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 256 "
	    "(NIL \"inner\" ((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "((\"Inner Sender\" NIL \"in\" \"example.net\")) "
	    "NIL NIL NIL NIL \"<in1@example.net>\") "
	    "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"7BIT\" 10 1 NIL NIL NIL NIL)"
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"X-UUENCODE\" 11 1 NIL NIL NIL NIL) \"MIXED\" "
	    "(\"BOUNDARY\" \"x\") NIL NIL NIL) 14 NIL NIL NIL NIL)"
	    " \"MIXED\" (\"BOUNDARY\" \"outer\") NIL NIL NIL)"));

	/* RFC 2231 filename in UTF-8: encoded-words for a rev1 client. */
	CHECK(body_is("Content-Type: application/octet-stream;\r\n"
	    " name*=utf-8''%C3%A9t%C3%A9.txt\r\n\r\nx\r\n", 0,
	    "(\"APPLICATION\" \"OCTET-STREAM\" "
	    "(\"NAME\" \"=?utf-8?b?w6l0w6kudHh0?=\") NIL NIL \"7BIT\" 3)"));
	/* Inline disposition without parameters; one language. */
	CHECK(body_is("Content-Type: text/plain\r\n"
	    "Content-Disposition: inline\r\n"
	    "Content-Language: fr\r\n\r\nx\r\n", 1,
	    "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 3 1 NIL "
	    "(\"INLINE\" NIL) \"fr\" NIL)"));
}

static void
test_bodystructure_utf8_param(void)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct mime_message	*m;

	m = parse("Content-Type: application/octet-stream;\r\n"
	    " name*=utf-8''%C3%A9t%C3%A9.txt\r\n\r\nx\r\n");
	CHECK(m != NULL);
	if (m == NULL)
		return;
	imap_render_bodystructure(&b, m->root, 0, IMAP_R_UTF8);
	CHECK(buf_is(&b, "(\"APPLICATION\" \"OCTET-STREAM\" "
	    "(\"NAME\" \"\xc3\xa9t\xc3\xa9.txt\") NIL NIL \"7BIT\" 3)"));
	imap_buf_free(&b);
	mime_free(m);
}

static void
test_sections(void)
{
	const char	*pre = "Return-Path: <a@example.org>\r\n"
			    "Delivered-To: b@example.com\r\n";
	const char	*simple = "From: a@example.org\r\n"
			    "Subject: hi\r\n"
			    "\r\n"
			    "body line\r\n";

	/* The whole message is the prefix and the blob. */
	CHECK(fetch_is(pre, simple, "", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{106}\r\nReturn-Path: <a@example.org>\r\n"
	    "Delivered-To: b@example.com\r\n"
	    "From: a@example.org\r\nSubject: hi\r\n\r\nbody line\r\n"));
	CHECK(fetch_is(pre, simple, "HEADER", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{95}\r\nReturn-Path: <a@example.org>\r\n"
	    "Delivered-To: b@example.com\r\n"
	    "From: a@example.org\r\nSubject: hi\r\n\r\n"));
	CHECK(fetch_is(pre, simple, "TEXT", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{11}\r\nbody line\r\n"));
	CHECK(fetch_is(pre, simple, "1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{11}\r\nbody line\r\n"));
	CHECK(fetch_is(pre, simple, "2", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is(pre, simple, "1.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is(pre, simple, "1.HEADER", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "NIL"));
	CHECK(fetch_is(pre, simple, "header.fields (delivered-to SUBJECT)",
	    IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{44}\r\nDelivered-To: b@example.com\r\nSubject: hi\r\n\r\n"));
	CHECK(fetch_is(pre, simple,
	    "HEADER.FIELDS.NOT (Return-Path Delivered-To \"From\")",
	    IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{15}\r\nSubject: hi\r\n\r\n"));
	CHECK(fetch_is(pre, simple, "HEADER.FIELDS (X-None)",
	    IMAP_FETCH_SECT_BODY, 0, 0, 0, "{2}\r\n\r\n"));
	/* Partial. */
	CHECK(fetch_is(pre, simple, "TEXT", IMAP_FETCH_SECT_BODY, 1, 5, 3,
	    "{3}\r\nlin"));
	CHECK(fetch_is(pre, simple, "TEXT", IMAP_FETCH_SECT_BODY, 1, 5,
	    1000, "{6}\r\nline\r\n"));
	CHECK(fetch_is(pre, simple, "TEXT", IMAP_FETCH_SECT_BODY, 1, 11, 3,
	    "{0}\r\n"));
	CHECK(fetch_is(pre, simple, "TEXT", IMAP_FETCH_SECT_BODY, 1, 500, 3,
	    "{0}\r\n"));
	CHECK(fetch_is(pre, simple, "HEADER.FIELDS (SUBJECT)",
	    IMAP_FETCH_SECT_BODY, 1, 9, 100, "{6}\r\nhi\r\n\r\n"));

	/* Nested multipart and message/rfc822, without a prefix. */
	CHECK(fetch_is("", nested_msg, "1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{182}\r\n--inner\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "caf=C3=A9\r\n"
	    "--inner\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "\r\n"
	    "<p>caf\xc3\xa9</p>\r\n"
	    "--inner--"));
	CHECK(fetch_is("", nested_msg, "1.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{9}\r\ncaf=C3=A9"));
	CHECK(fetch_is("", nested_msg, "1.2", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{12}\r\n<p>caf\xc3\xa9</p>"));
	CHECK(fetch_is("", nested_msg, "1.1.MIME", IMAP_FETCH_SECT_BODY, 0,
	    0, 0, "{88}\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"));
	CHECK(fetch_is("", nested_msg, "1.3", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is("", nested_msg, "2", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{8}\r\nSGVsbG8="));
	CHECK(fetch_is("", nested_msg, "2.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is("", nested_msg, "2.TEXT", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "NIL"));
	CHECK(fetch_is("", nested_msg, "3.HEADER", IMAP_FETCH_SECT_BODY, 0,
	    0, 0, "{129}\r\nFrom: Inner Sender <in@example.net>\r\n"
	    "Subject: inner\r\n"
	    "Message-ID: <in1@example.net>\r\n"
	    "Content-Type: multipart/mixed; boundary=x\r\n\r\n"));
	CHECK(fetch_is("", nested_msg, "3.HEADER.FIELDS (Subject)",
	    IMAP_FETCH_SECT_BODY, 0, 0, 0, "{18}\r\nSubject: inner\r\n\r\n"));
	CHECK(fetch_is("", nested_msg, "3.TEXT", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "{127}\r\n--x\r\n\r\ninner text\r\n--x\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: x-uuencode\r\n\r\n"
	    "begin 644 f\r\n--x--"));
	CHECK(fetch_is("", nested_msg, "3.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{10}\r\ninner text"));
	CHECK(fetch_is("", nested_msg, "3.1.MIME", IMAP_FETCH_SECT_BODY, 0,
	    0, 0, "{2}\r\n\r\n"));
	CHECK(fetch_is("", nested_msg, "3.MIME", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "{32}\r\nContent-Type: message/rfc822\r\n\r\n"));
	CHECK(fetch_is("", nested_msg, "4", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is("", nested_msg, "4294967295", IMAP_FETCH_SECT_BODY,
	    0, 0, 0, "NIL"));

	/* BINARY and BINARY.SIZE. */
	CHECK(fetch_is("", nested_msg, "1.1", IMAP_FETCH_SECT_BINARY, 0, 0,
	    0, "{5}\r\ncaf\xc3\xa9"));
	CHECK(fetch_is("", nested_msg, "1.1", IMAP_FETCH_SECT_SIZE, 0, 0, 0,
	    "5"));
	CHECK(fetch_is("", nested_msg, "2", IMAP_FETCH_SECT_BINARY, 0, 0, 0,
	    "{5}\r\nHello"));
	CHECK(fetch_is("", nested_msg, "2", IMAP_FETCH_SECT_BINARY, 1, 1, 3,
	    "{3}\r\nell"));
	CHECK(fetch_is("", nested_msg, "2", IMAP_FETCH_SECT_SIZE, 1, 1, 3,
	    "5"));
	CHECK(fetch_is("", nested_msg, "1.2", IMAP_FETCH_SECT_BINARY, 0, 0,
	    0, "{12}\r\n<p>caf\xc3\xa9</p>"));
	CHECK(fetch_is("", nested_msg, "3.2", IMAP_FETCH_SECT_BINARY, 0, 0,
	    0, "fetch error -4"));
	CHECK(fetch_is("", nested_msg, "3.2", IMAP_FETCH_SECT_SIZE, 0, 0, 0,
	    "fetch error -4"));
	CHECK(fetch_is("", nested_msg, "9", IMAP_FETCH_SECT_BINARY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is("", nested_msg, "9", IMAP_FETCH_SECT_SIZE, 0, 0, 0,
	    "0"));
	CHECK(fetch_is("", nested_msg, "3.TEXT", IMAP_FETCH_SECT_BINARY, 0,
	    0, 0, "fetch error -1"));
	CHECK(fetch_is("", "Subject: x\r\n\r\nhi\r\n", "",
	    IMAP_FETCH_SECT_SIZE, 0, 0, 0, "18"));
}

/* Mail that is not as it should be, and the less common shapes. */
static void
test_odd_shapes(void)
{
	const char	*digest =
			    "Content-Type: multipart/digest; boundary=d\r\n"
			    "\r\n--d\r\n\r\nSubject: one\r\n\r\nfirst\r\n"
			    "--d--\r\n";
	const char	*top = "Content-Type: message/rfc822\r\n\r\n"
			    "Subject: inside\r\n\r\nbody\r\n";
	const char	*b64msg = "Content-Type: message/rfc822\r\n"
			    "Content-Transfer-Encoding: base64\r\n\r\n"
			    "U3ViamVjdDogeA0KDQp5DQo=\r\n";

	/* A digest's parts are message/rfc822 unless they say otherwise. */
	CHECK(body_is(digest, 0,
	    "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 21 "
	    "(NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) "
	    "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL "
	    "\"7BIT\" 5 1) 3) \"DIGEST\")"));
	CHECK(fetch_is("", digest, "1.HEADER", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "{16}\r\nSubject: one\r\n\r\n"));
	CHECK(fetch_is("", digest, "1.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{5}\r\nfirst"));
	CHECK(fetch_is("", digest, "1.MIME", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{2}\r\n\r\n"));

	/* A message that is a message/rfc822: 1 is its body, 1.1 inside. */
	CHECK(fetch_is("", top, "1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{25}\r\nSubject: inside\r\n\r\nbody\r\n"));
	CHECK(fetch_is("", top, "1.HEADER", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{19}\r\nSubject: inside\r\n\r\n"));
	CHECK(fetch_is("", top, "1.1", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{6}\r\nbody\r\n"));
	CHECK(fetch_is("", top, "1.2", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "NIL"));
	CHECK(fetch_is("", top, "HEADER", IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    "{32}\r\nContent-Type: message/rfc822\r\n\r\n"));

	/* message/rfc822 in base64 (not allowed, seen): a leaf. */
	CHECK(body_is(b64msg, 0,
	    "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 26)"));
	CHECK(fetch_is("", b64msg, "1.HEADER", IMAP_FETCH_SECT_BODY, 0, 0,
	    0, "NIL"));
	CHECK(fetch_is("", b64msg, "1", IMAP_FETCH_SECT_BINARY, 0, 0, 0,
	    "{17}\r\nSubject: x\r\n\r\ny\r\n"));

	/* A multipart without a boundary is read as text/plain. */
	CHECK(body_is("Content-Type: multipart/mixed\r\n\r\nhi\r\n", 0,
	    "(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 4 1)"));
	/* All header, no body. */
	CHECK(fetch_is("", "Subject: x\r\n", "HEADER", IMAP_FETCH_SECT_BODY,
	    0, 0, 0, "{12}\r\nSubject: x\r\n"));
	CHECK(fetch_is("", "Subject: x\r\n", "TEXT", IMAP_FETCH_SECT_BODY,
	    0, 0, 0, "{0}\r\n"));
	CHECK(fetch_is("", "Subject: x\r\n", "HEADER.FIELDS (SUBJECT)",
	    IMAP_FETCH_SECT_BODY, 0, 0, 0, "{14}\r\nSubject: x\r\n\r\n"));
}

static void
test_section_item(void)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct imap_section	 s;

	CHECK(imap_section_parse("1.header.fields (To cc)", &s) ==
	    IMAP_SECTION_OK);
	imap_section_item(&b, "BODY", &s, 0, 0);
	CHECK(buf_is(&b, "BODY[1.HEADER.FIELDS (To cc)]"));
	imap_section_clear(&s);
	CHECK(imap_section_parse("", &s) == IMAP_SECTION_OK);
	imap_section_item(&b, "BINARY", &s, 1, 1024);
	CHECK(buf_is(&b, "BINARY[]<1024>"));
	imap_section_clear(&s);
	imap_buf_free(&b);
}

/* A section imapd's own parser filled in, resolved without a string. */
static void
test_section_resolve(void)
{
	struct imap_section	 s;
	struct mime_message	*m;
	char			*fields[] = { "Subject" };

	if ((m = parse(nested_msg)) == NULL) {
		CHECK(0);
		return;
	}
	memset(&s, 0, sizeof(s));
	s.parts[0] = 3;
	s.nparts = 1;
	s.text = IMAP_SECTION_FIELDS;
	s.fields = fields;
	s.nfields = 1;
	CHECK(imap_section_resolve(m, &s) == IMAP_SECTION_OK);
	CHECK(s.filter && s.part == m->root->children[2] && s.len == 129);
	s.parts[0] = 0;
	CHECK(imap_section_resolve(m, &s) == IMAP_SECTION_MISSING);
	CHECK(s.missing && s.part == NULL && s.len == 0);
	s.parts[0] = 1;
	s.parts[1] = 0;
	s.nparts = 2;
	s.text = IMAP_SECTION_BODY;
	CHECK(imap_section_resolve(m, &s) == IMAP_SECTION_MISSING);
	s.nparts = 0;
	s.text = IMAP_SECTION_MIME;
	CHECK(imap_section_resolve(m, &s) == IMAP_SECTION_MISSING);
	s.text = IMAP_SECTION_BODY;
	CHECK(imap_section_resolve(m, &s) == IMAP_SECTION_OK);
	CHECK(s.off == 0 && s.len == m->size && s.part == m->root &&
	    !s.missing);
	mime_free(m);
}

static void
test_binary_nul(void)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct imap_section	 s;
	struct mime_message	*m;
	struct source		 src;
	const char		*msg = "Content-Transfer-Encoding: base64\r\n"
				    "\r\nAGEA\r\n";

	CHECK((m = parse(msg)) != NULL);
	if (m == NULL)
		return;
	memset(&src, 0, sizeof(src));
	src.prefix = "";
	src.blob = msg;
	src.bloblen = strlen(msg);
	CHECK(imap_section_find(m, "1", &s) == IMAP_SECTION_OK);
	CHECK(imap_fetch_section(&b, m, &s, IMAP_FETCH_SECT_BINARY, 0, 0, 0,
	    source_read, &src) == IMAP_SECTION_OK);
	CHECK(b.len == 9 && memcmp(b.p, "~{3}\r\n\0a\0", 9) == 0);
	imap_buf_reset(&b);

	/* A read that fails appends nothing. */
	src.bloblen = 3;
	CHECK(imap_fetch_section(&b, m, &s, IMAP_FETCH_SECT_BODY, 0, 0, 0,
	    source_read, &src) == IMAP_FETCH_EREAD);
	CHECK(b.len == 0);
	imap_section_clear(&s);
	imap_buf_free(&b);
	mime_free(m);
}

static void
test_section_syntax(void)
{
	struct imap_section	 s;

	CHECK(section_name_is("", ""));
	CHECK(section_name_is("1", "1"));
	CHECK(section_name_is("1.2.3", "1.2.3"));
	CHECK(section_name_is("header", "HEADER"));
	CHECK(section_name_is("Text", "TEXT"));
	CHECK(section_name_is("2.mime", "2.MIME"));
	CHECK(section_name_is("4.1.HEADER", "4.1.HEADER"));
	CHECK(section_name_is("HEADER.FIELDS (DATE FROM)",
	    "HEADER.FIELDS (DATE FROM)"));
	CHECK(section_name_is("header.fields.not (\"x-a\" list-id)",
	    "HEADER.FIELDS.NOT (x-a list-id)"));
	CHECK(section_name_is("1.HEADER.FIELDS (Subject)",
	    "1.HEADER.FIELDS (Subject)"));

	CHECK(section_bad("MIME"));
	CHECK(section_bad("0"));
	CHECK(section_bad("01"));
	CHECK(section_bad("1."));
	CHECK(section_bad("1.0"));
	CHECK(section_bad(".1"));
	CHECK(section_bad("1..2"));
	CHECK(section_bad("1HEADER"));
	CHECK(section_bad("4294967296"));
	CHECK(section_bad("HEADER "));
	CHECK(section_bad("HEADERS"));
	CHECK(section_bad("TEXT.MIME"));
	CHECK(section_bad("1.MIMEX"));
	CHECK(section_bad("HEADER.FIELDS"));
	CHECK(section_bad("HEADER.FIELDS ()"));
	CHECK(section_bad("HEADER.FIELDS (A"));
	CHECK(section_bad("HEADER.FIELDS (A  B)"));
	CHECK(section_bad("HEADER.FIELDS (A B) "));
	CHECK(section_bad("HEADER.FIELDS(A)"));
	CHECK(section_bad("HEADER.FIELDS (A:)"));
	CHECK(section_bad("HEADER.FIELDS (\"\")"));
	CHECK(section_bad("HEADER.FIELDS (\"a b\")"));
	CHECK(section_bad("HEADER.FIELDS (\"a)"));
	CHECK(section_bad("1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19."
	    "20.21.22.23.24.25.26.27.28.29.30.31.32.33.34.35"));

	CHECK(imap_section_parse("HEADER.FIELDS (A b c)", &s) ==
	    IMAP_SECTION_OK);
	CHECK(s.text == IMAP_SECTION_FIELDS && s.nfields == 3 &&
	    strcmp(s.fields[2], "c") == 0);
	imap_section_clear(&s);
	CHECK(imap_section_parse("2.3.MIME", &s) == IMAP_SECTION_OK);
	CHECK(s.text == IMAP_SECTION_MIME && s.nparts == 2 &&
	    s.parts[0] == 2 && s.parts[1] == 3);
	imap_section_clear(&s);
}

static void
test_header_fields(void)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	char		*names[] = { "subject", "X-Long" };
	const char	*h = "Received: from a\r\n by b\r\n"
			    "SUBJECT: first\r\n"
			    "X-Long: one\r\n\ttwo\r\n"
			    "Subject : second\r\n"
			    "not a field\r\n"
			    "X-Longer: no\r\n"
			    "\r\n"
			    "Subject: body, not header\r\n";

	imap_header_fields(&b, h, strlen(h), names, 2, 0);
	CHECK(buf_is(&b, "SUBJECT: first\r\nX-Long: one\r\n\ttwo\r\n"
	    "Subject : second\r\n\r\n"));
	imap_header_fields(&b, h, strlen(h), names, 2, 1);
	CHECK(buf_is(&b, "Received: from a\r\n by b\r\nX-Longer: no\r\n"
	    "\r\n"));
	/* A header block without its empty line, nor a last CRLF. */
	imap_header_fields(&b, "Subject: x", 10, names, 1, 0);
	CHECK(buf_is(&b, "Subject: x\r\n\r\n"));
	imap_header_fields(&b, "", 0, names, 1, 0);
	CHECK(buf_is(&b, "\r\n"));
	/* Bare LF line ends are kept as they are. */
	imap_header_fields(&b, "Subject: a\nTo: b\n\n", 18, names, 1, 0);
	CHECK(buf_is(&b, "Subject: a\n\r\n"));
	imap_buf_free(&b);
}

static void
test_partial(void)
{
	size_t	 off, len;

	off = 10, len = 100;
	imap_partial(&off, &len, 0, 50);
	CHECK(off == 10 && len == 50);
	off = 10, len = 100;
	imap_partial(&off, &len, 90, 50);
	CHECK(off == 100 && len == 10);
	off = 10, len = 100;
	imap_partial(&off, &len, 100, 50);
	CHECK(off == 110 && len == 0);
	off = 10, len = 100;
	imap_partial(&off, &len, UINT64_MAX, UINT64_MAX);
	CHECK(off == 110 && len == 0);
	off = 10, len = 100;
	imap_partial(&off, &len, 1, 0);
	CHECK(off == 11 && len == 0);
}

static void
test_binary_decode(void)
{
	struct mime_part	 p;
	char			*out;
	size_t			 len;

	memset(&p, 0, sizeof(p));
	p.encoding = "base64";
	CHECK(imap_binary_decode(&p, "SGVs\r\nbG8=\r\n", 12, &out, &len) ==
	    IMAP_BINARY_OK);
	CHECK(len == 5 && memcmp(out, "Hello", 5) == 0);
	free(out);
	p.encoding = "quoted-printable";
	CHECK(imap_binary_decode(&p, "a=3Db=\r\nc", 9, &out, &len) ==
	    IMAP_BINARY_OK);
	CHECK(len == 4 && memcmp(out, "a=bc", 4) == 0);
	free(out);
	p.encoding = NULL;
	CHECK(imap_binary_decode(&p, "raw", 3, &out, &len) ==
	    IMAP_BINARY_OK);
	CHECK(len == 3 && memcmp(out, "raw", 3) == 0);
	free(out);
	p.encoding = "8bit";
	CHECK(imap_binary_decode(&p, "", 0, &out, &len) == IMAP_BINARY_OK);
	CHECK(len == 0);
	free(out);
	p.encoding = "x-uuencode";
	CHECK(imap_binary_decode(&p, "x", 1, &out, &len) ==
	    IMAP_BINARY_UNKNOWN_CTE);
	CHECK(out == NULL);
}

static void
test_date(void)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	struct tm	 tm;
	time_t		 t;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 11;
	tm.tm_mday = 1;
	tm.tm_hour = 14;
	tm.tm_min = 5;
	t = timegm(&tm);
	imap_render_date(&b, t, 0);
	CHECK(buf_is(&b, "\"01-Dec-2026 14:05:00 +0000\""));
	imap_render_date(&b, t, 60);
	CHECK(buf_is(&b, "\"01-Dec-2026 15:05:00 +0100\""));
	imap_render_date(&b, t, -(14 * 60 + 30));
	CHECK(buf_is(&b, "\"30-Nov-2026 23:35:00 -1430\""));
	imap_render_date(&b, 0, 0);
	CHECK(buf_is(&b, "\"01-Jan-1970 00:00:00 +0000\""));
	imap_buf_free(&b);
}

int
main(void)
{
	test_buf();
	test_quote();
	test_literal_nul();
	test_envelope();
	test_long_name();
	test_bodystructure();
	test_bodystructure_utf8_param();
	test_sections();
	test_odd_shapes();
	test_section_item();
	test_section_resolve();
	test_binary_nul();
	test_section_syntax();
	test_header_fields();
	test_partial();
	test_binary_decode();
	test_date();
	return unit_done();
}
