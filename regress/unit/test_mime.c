/*
 * lib/mime.c, lib/rfc5322.c, lib/charset.c, lib/mime_json.c: messages
 * parsed as storaged will see them, checked for what IMAP and JMAP
 * clients are shown: structure, offsets, envelope, decoded text,
 * preview, hasAttachment, limits and the JSON round trip.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "mime.h"
#include "unit.h"

static struct mime_message *
parse(const char *s)
{
	struct mime_message	*m = NULL;
	int			 r;

	if ((r = mime_parse(s, strlen(s), &m)) != MIME_OK) {
		printf("parse failed: %s\n", mime_strerror(r));
		return NULL;
	}
	return m;
}

/* The raw body of a part, for comparing offsets with what is expected. */
static int
body_is(const char *raw, const struct mime_part *p, const char *want)
{
	return p != NULL && p->size == strlen(want) &&
	    memcmp(raw + p->body_start, want, p->size) == 0;
}

static int
text_is(const char *raw, const struct mime_part *p, const char *want)
{
	char	*t;
	size_t	 len;
	int	 ok;

	if (mime_part_text(p, raw, strlen(raw), &t, &len) != MIME_OK)
		return 0;
	ok = len == strlen(want) && memcmp(t, want, len) == 0;
	if (!ok)
		printf("text: got \"%s\", want \"%s\"\n", t, want);
	free(t);
	return ok;
}

static int
str_is(const char *got, const char *want)
{
	if (got == NULL || want == NULL)
		return got == want;
	if (strcmp(got, want) != 0) {
		printf("got \"%s\", want \"%s\"\n", got, want);
		return 0;
	}
	return 1;
}

static int
words_is(const char *in, const char *want)
{
	char	*s;
	int	 ok;

	s = mime_decode_words(in);
	ok = str_is(s, want);
	free(s);
	return ok;
}

static int
base_is(const char *in, const char *want)
{
	char	*s;
	int	 ok;

	s = mime_base_subject(in);
	ok = str_is(s, want);
	free(s);
	return ok;
}

static int
addr_is(const struct mime_addr *a, enum mime_addr_kind kind,
    const char *name, const char *route, const char *mailbox,
    const char *host)
{
	return a->kind == kind && str_is(a->name, name) &&
	    str_is(a->route, route) && str_is(a->mailbox, mailbox) &&
	    str_is(a->host, host);
}

/* JSON out, back in, out again: the two JSON texts must be equal. */
static int
roundtrip(const struct mime_message *m)
{
	struct mime_message	*m2 = NULL;
	char			*j1, *j2 = NULL;
	uint64_t		 off;
	int			 ok = 0;

	if ((j1 = mime_to_json(m)) == NULL)
		return 0;
	/* The root's body_start read off the text is the parsed one. */
	if (mime_json_body_start(j1, strlen(j1), &off) != 0 ||
	    off != m->root->body_start) {
		printf("body start not %zu in:\n%s\n", m->root->body_start, j1);
		free(j1);
		return 0;
	}
	if (mime_from_json(j1, strlen(j1), &m2) == MIME_OK &&
	    (j2 = mime_to_json(m2)) != NULL)
		ok = strcmp(j1, j2) == 0;
	if (!ok)
		printf("round trip differs:\n%s\n%s\n", j1, j2 ? j2 : "-");
	free(j1);
	free(j2);
	mime_free(m2);
	return ok;
}

static int
body_start_is(const char *json, int64_t want)
{
	uint64_t	 off = 0;
	int		 r;

	r = mime_json_body_start(json, strlen(json), &off);
	if (want < 0 ? r == -1 : r == 0 && off == (uint64_t)want)
		return 1;
	printf("body start %d/%llu, not %lld, in %s\n", r,
	    (unsigned long long)off, (long long)want, json);
	return 0;
}

/*
 * mime_json_body_start(): the root's own offsets, wherever its key is
 * in the root and whatever strings and nested parts hold; -1 for what
 * mime_to_json() does not write.
 */
static void
test_json_body_start(void)
{
	CHECK(body_start_is("{\"v\":1,\"envelope\":{\"subject\":"
	    "\"\\\"root\\\":{\\\"offsets\\\":[1,2,3]\"},\"root\":{\"type\":"
	    "\"text\",\"offsets\":[0,40,50]}}", 40));
	CHECK(body_start_is("{\"root\":{\"type\":\"multipart\",\"children\":"
	    "[{\"offsets\":[60,70,80]},{\"offsets\":[90,95,99]}],"
	    "\"message\":{\"offsets\":[1,2,3]},\"params\":[[\"a\",\"]}\"]],"
	    "\"offsets\":[0,55,100]},\"v\":1}", 55));
	CHECK(body_start_is("{\"root\":{\"offsets\":[17,123456789012,1]}}",
	    123456789012LL));
	CHECK(body_start_is("{\"root\": {\"offsets\": [0, 40, 50]}}", -1));
	CHECK(body_start_is("{\"root\":{\"offsets\":[0,40]}}", -1));
	CHECK(body_start_is("{\"root\":{\"offsets\":[0,1234567890123456,9]}}",
	    -1));
	CHECK(body_start_is("{\"root\":{\"children\":[{\"offsets\":[0,4,5]}]}}",
	    -1));
	CHECK(body_start_is("{\"root\":{\"type\":\"te\\", -1));
	CHECK(body_start_is("{\"root\":{\"type\":\"te", -1));
	CHECK(body_start_is("{\"root\":{\"offsets\":[12", -1));
	CHECK(body_start_is("{\"v\":1}", -1));
	CHECK(body_start_is("", -1));
}

static void
test_simple(void)
{
	const char		*raw = "From: Alice <alice@example.test>\n"
	    "To: bob@example.test\n"
	    "Subject: Hello\n"
	    "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
	    "Message-ID: <one@example.test>\n"
	    "\n"
	    "Hi Bob,\nhow are you?\n";
	struct mime_message	*m;
	struct mime_part	*p;

	if (!CHECK((m = parse(raw)) != NULL))
		return;
	p = m->root;
	CHECK(str_is(p->type, "text") && str_is(p->subtype, "plain"));
	CHECK(str_is(mime_param_get(p->params, p->nparams, "charset"),
	    "us-ascii"));
	CHECK(p->flags == MIME_F_CT_DEFAULT && m->flags == 0);
	CHECK(p->header_start == 0 && body_is(raw, p,
	    "Hi Bob,\nhow are you?\n"));
	CHECK(p->lines == 2 && m->size == strlen(raw));
	CHECK(str_is(m->envelope.subject, "Hello"));
	CHECK(str_is(m->envelope.date, "Mon, 1 Jan 2024 10:00:00 +0000"));
	CHECK(m->envelope.from_list.count == 1 &&
	    addr_is(&m->envelope.from_list.addrs[0], MIME_ADDR_MAILBOX,
	    "Alice", NULL, "alice", "example.test"));
	CHECK(m->envelope.to_list.count == 1 &&
	    addr_is(&m->envelope.to_list.addrs[0], MIME_ADDR_MAILBOX,
	    NULL, NULL, "bob", "example.test"));
	CHECK(m->envelope.message_ids.count == 1 &&
	    str_is(m->envelope.message_ids.ids[0], "one@example.test"));
	CHECK(m->envelope.cc == NULL && m->envelope.cc_list.count == 0);
	CHECK(str_is(m->preview, "Hi Bob, how are you?"));
	CHECK(!m->has_attachment);
	CHECK(roundtrip(m));
	mime_free(m);
}

static void
test_crlf(void)
{
	const char		*lf = "Subject: x\nContent-Type: text/plain;"
	    " charset=utf-8\n\nline one\nline two";
	const char		*crlf = "Subject: x\r\nContent-Type:"
	    " text/plain; charset=utf-8\r\n\r\nline one\r\nline two";
	struct mime_message	*a, *b;

	a = parse(lf);
	b = parse(crlf);
	if (!CHECK(a != NULL && b != NULL))
		goto done;
	CHECK(body_is(lf, a->root, "line one\nline two"));
	CHECK(body_is(crlf, b->root, "line one\r\nline two"));
	CHECK(a->root->lines == 2 && b->root->lines == 2);
	CHECK(str_is(a->envelope.subject, "x") &&
	    str_is(b->envelope.subject, "x"));
	CHECK(str_is(b->root->subtype, "plain") &&
	    str_is(mime_part_charset(b->root), "utf-8"));
	CHECK(str_is(b->preview, "line one line two"));
 done:
	mime_free(a);
	mime_free(b);
}

static void
test_folded(void)
{
	const char		*raw = "Subject: a long\r\n\tsubject\r\n"
	    "  that folds\r\n"
	    "To: one@example.test,\r\n two@example.test\r\n"
	    "Content-Type: text/plain;\r\n charset=\"iso-8859-1\"\r\n"
	    "\r\nbody\r\n";
	struct mime_message	*m;

	if (!CHECK((m = parse(raw)) != NULL))
		return;
	CHECK(str_is(m->envelope.subject, "a long\tsubject  that folds"));
	CHECK(str_is(m->envelope.base_subject, "a long subject that folds"));
	CHECK(m->envelope.to_list.count == 2 &&
	    str_is(m->envelope.to_list.addrs[1].mailbox, "two"));
	CHECK(str_is(mime_part_charset(m->root), "iso-8859-1"));
	CHECK(m->root->flags == 0);
	mime_free(m);
}

static void
test_encoded_words(void)
{
	CHECK(words_is("=?iso-8859-1?q?caf=E9?=", "caf\xc3\xa9"));
	CHECK(words_is("=?UTF-8?B?w6lsw6h2ZQ==?=", "\xc3\xa9l\xc3\xa8ve"));
	CHECK(words_is("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"));
	CHECK(words_is("=?utf-8?q?a?=\t \t=?iso-8859-1?q?=E9?=",
	    "a\xc3\xa9"));
	CHECK(words_is("=?utf-8?b?5pel5g==?= =?utf-8?b?nKzoqp4=?=",
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"));
	CHECK(words_is("=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c"));
	CHECK(words_is("=?utf-8?q?hello_world?=", "hello world"));
	CHECK(words_is("=?windows-1252?Q?=93hi=94?=",
	    "\xe2\x80\x9chi\xe2\x80\x9d"));
	CHECK(words_is("=?iso-8859-2?q?=B1?=", "\xc4\x85"));
	CHECK(words_is("=?iso-8859-15?q?=A4?=", "\xe2\x82\xac"));
	CHECK(words_is("=?utf-8*en?q?x?=", "x"));
	/* Malformed ones stay as they are. */
	CHECK(words_is("=?utf-8?x?abc?=", "=?utf-8?x?abc?="));
	CHECK(words_is("=?utf-8?q?bad=Zq?=", "=?utf-8?q?bad=Zq?="));
	CHECK(words_is("=?utf-8?b?@@@?=", "=?utf-8?b?@@@?="));
	CHECK(words_is("=?utf-8?q?open", "=?utf-8?q?open"));
	CHECK(words_is("plain =? text", "plain =? text"));
	/* Unknown charset: 8-bit becomes U+FFFD; raw 8-bit read as UTF-8. */
	CHECK(words_is("=?x-klingon?q?a=FFb?=", "a\xef\xbf\xbd" "b"));
	CHECK(words_is("caf\xc3\xa9 \xff", "caf\xc3\xa9 \xef\xbf\xbd"));
}

static void
test_charsets(void)
{
	struct textbuf	 tb;
	char		*s;

	textbuf_init(&tb);
	charset_to_utf8(&tb, "utf-8", "a\xe2\x82\xac\xc0\xaf\xed\xa0\x80z",
	    10);
	s = textbuf_finish(&tb, NULL);
	/* Overlong and surrogate sequences are not UTF-8. */
	CHECK(s != NULL && strncmp(s, "a\xe2\x82\xac\xef\xbf\xbd", 7) == 0 &&
	    s[strlen(s) - 1] == 'z' && utf8_valid(s, strlen(s)));
	free(s);
	textbuf_init(&tb);
	charset_to_utf8(&tb, "Latin1", "\xe9\x80", 2);
	s = textbuf_finish(&tb, NULL);
	CHECK(str_is(s, "\xc3\xa9\xe2\x82\xac"));
	free(s);
	CHECK(charset_lookup("ISO_8859-1:1987") == CHARSET_LATIN1);
	CHECK(charset_lookup("koi8-r") == CHARSET_UNKNOWN);
}

static void
test_rfc2231(void)
{
	const char		*raw = "Content-Type: application/pdf;\n"
	    " name*0*=utf-8''%E2%82%AC;\n"
	    " name*1=\" rates.pdf\"\n"
	    "Content-Disposition: attachment;\n"
	    " filename*=iso-8859-1'fr'caf%E9.pdf;\n"
	    " size=42\n"
	    "\n"
	    "%PDF\n";
	const char		*raw2 = "Content-Type: text/plain; name="
	    "\"=?utf-8?q?r=C3=A9sum=C3=A9.txt?=\"; charset=utf-8\n\nx";
	const char		*raw3 = "Content-Type: text/plain;"
	    " name*1=\"b.txt\"\n\nx";
	struct mime_message	*m;

	if (!CHECK((m = parse(raw)) != NULL))
		return;
	CHECK(str_is(mime_param_get(m->root->params, m->root->nparams,
	    "name"), "\xe2\x82\xac rates.pdf"));
	CHECK(str_is(m->root->disposition, "attachment"));
	CHECK(str_is(mime_part_filename(m->root), "caf\xc3\xa9.pdf"));
	CHECK(str_is(mime_param_get(m->root->disp_params,
	    m->root->ndisp_params, "size"), "42"));
	CHECK(m->has_attachment);
	CHECK(roundtrip(m));
	mime_free(m);
	if (!CHECK((m = parse(raw2)) != NULL))
		return;
	CHECK(str_is(mime_part_filename(m->root),
	    "r\xc3\xa9sum\xc3\xa9.txt"));
	mime_free(m);
	/* Sections without section 0 (found by the fuzzer). */
	if (!CHECK((m = parse(raw3)) != NULL))
		return;
	CHECK(str_is(mime_part_filename(m->root), "b.txt") &&
	    (m->flags & MIME_F_MALFORMED));
	mime_free(m);
}

static const char nested[] =
    "From: \"Doe, John\" <john@example.test>\r\n"
    "Subject: =?utf-8?q?Caf=C3=A9?= report\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "This is the preamble.\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=C3=A9 numbers =\r\n"
    "attached.\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "\r\n"
    "<p>Caf\xc3\xa9 numbers attached.</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: image/png\r\n"
    "Content-Disposition: inline\r\n"
    "Content-ID: <logo@example.test>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0K\r\n"
    "--outer\r\n"
    "Content-Type: text/csv; name=numbers.csv\r\n"
    "Content-Disposition: attachment; filename=\"numbers.csv\"\r\n"
    "Content-Language: en, fr\r\n"
    "Content-Description: The numbers\r\n"
    "\r\n"
    "a,b\r\n1,2\r\n"
    "--outer--\r\n"
    "This is the epilogue.\r\n";

static void
test_nested(void)
{
	struct mime_message	*m;
	struct mime_part	*r, *alt, *img, *csv;
	char			*dec;
	size_t			 len;

	if (!CHECK((m = parse(nested)) != NULL))
		return;
	r = m->root;
	CHECK(str_is(r->type, "multipart") && str_is(r->subtype, "mixed") &&
	    r->nchildren == 3);
	if (r->nchildren != 3)
		goto done;
	alt = r->children[0];
	img = r->children[1];
	csv = r->children[2];
	CHECK(str_is(alt->subtype, "alternative") && alt->nchildren == 2);
	CHECK(alt->nchildren == 2 && body_is(nested, alt->children[0],
	    "Caf=C3=A9 numbers =\r\nattached."));
	CHECK(alt->nchildren == 2 && text_is(nested, alt->children[0],
	    "Caf\xc3\xa9 numbers attached."));
	CHECK(alt->nchildren == 2 && str_is(alt->children[1]->subtype,
	    "html") && alt->children[1]->lines == 1);
	CHECK(body_is(nested, csv, "a,b\r\n1,2"));
	CHECK(csv->lines == 2 && str_is(csv->description, "The numbers"));
	CHECK(csv->nlanguages == 2 && str_is(csv->languages[1], "fr"));
	CHECK(str_is(img->id, "<logo@example.test>") &&
	    str_is(img->encoding, "base64"));
	CHECK(mime_part_decode(img, nested, strlen(nested), &dec, &len) ==
	    MIME_OK && len == 6 && memcmp(dec, "\x89PNG\r\n", 6) == 0);
	free(dec);
	CHECK(!mime_part_is_attachment(img) && mime_part_is_attachment(csv));
	CHECK(m->has_attachment);
	CHECK(str_is(m->envelope.subject_utf8, "Caf\xc3\xa9 report"));
	CHECK(m->envelope.from_list.count == 1 &&
	    str_is(m->envelope.from_list.addrs[0].name, "Doe, John"));
	CHECK(str_is(m->preview, "Caf\xc3\xa9 numbers attached."));
	CHECK(m->flags == 0);
	CHECK(mime_header_get(nested, strlen(nested), r, "mime-version",
	    &dec) == MIME_OK && str_is(dec, "1.0"));
	free(dec);
	CHECK(mime_header_get(nested, strlen(nested), csv, "Content-Type",
	    &dec) == MIME_OK && str_is(dec, "text/csv; name=numbers.csv"));
	free(dec);
	CHECK(mime_header_get(nested, strlen(nested), csv, "X-None",
	    &dec) == MIME_OK && dec == NULL);
	CHECK(roundtrip(m));
 done:
	mime_free(m);
}

static void
test_rfc822(void)
{
	const char		*raw = "Subject: Fwd: lunch\n"
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\n\nsee below\n"
	    "--b\n"
	    "Content-Type: message/rfc822\n\n"
	    "From: Carol <carol@example.test>\n"
	    "Subject: lunch?\n"
	    "In-Reply-To: <x@y> (some comment)\n"
	    "Content-Type: multipart/alternative; boundary=c\n\n"
	    "--c\nContent-Type: text/plain\n\nnoon?\n--c--\n"
	    "--b--\n";
	struct mime_message	*m;
	struct mime_part	*fw;

	if (!CHECK((m = parse(raw)) != NULL))
		return;
	if (!CHECK(m->root->nchildren == 2))
		goto done;
	fw = m->root->children[1];
	CHECK(fw->message != NULL && fw->envelope != NULL);
	if (fw->message == NULL)
		goto done;
	CHECK(str_is(fw->envelope->subject, "lunch?"));
	CHECK(fw->envelope->from_list.count == 1 &&
	    str_is(fw->envelope->from_list.addrs[0].mailbox, "carol"));
	CHECK(fw->envelope->in_reply_to_ids.count == 1 &&
	    str_is(fw->envelope->in_reply_to_ids.ids[0], "x@y"));
	CHECK(str_is(fw->message->subtype, "alternative") &&
	    fw->message->nchildren == 1 &&
	    body_is(raw, fw->message->children[0], "noon?"));
	CHECK(fw->message->header_start == fw->body_start &&
	    fw->message->body_end == fw->body_end);
	CHECK(str_is(m->envelope.base_subject, "lunch"));
	CHECK(str_is(m->preview, "see below"));
	CHECK(m->has_attachment);
	CHECK(roundtrip(m));
 done:
	mime_free(m);
}

static void
test_digest(void)
{
	const char		*raw = "Content-Type: multipart/digest;"
	    " boundary=d\n\n--d\n\nSubject: one\n\nfirst\n--d--\n";
	struct mime_message	*m;

	if (!CHECK((m = parse(raw)) != NULL))
		return;
	CHECK(m->root->nchildren == 1 &&
	    str_is(m->root->children[0]->type, "message") &&
	    m->root->children[0]->envelope != NULL &&
	    str_is(m->root->children[0]->envelope->subject, "one"));
	mime_free(m);
}

static void
test_boundaries(void)
{
	const char		*noclose = "Content-Type: multipart/mixed;"
	    " boundary=zz\n\n--zz\n\none\n--zz\n\ntwo\nand more";
	const char		*prefix = "Content-Type: multipart/mixed;"
	    " boundary=abc\n\n"
	    "--abc  \n"
	    "Content-Type: multipart/alternative; boundary=abcdef\n\n"
	    "--abcdef\n\ninner one\n"
	    "--abc-not\n"
	    "--abcdef--\n"
	    "--abc\n\nsecond\n"
	    "--abc--  \nepilogue\n--abc\n\nnot a part\n";
	const char		*nob = "Content-Type: multipart/mixed\n\nbody";
	const char		*nodelim = "Content-Type: multipart/mixed;"
	    " boundary=q\n\n--qq\njust text\n";
	struct mime_message	*m;
	struct mime_part	*in;

	if (CHECK((m = parse(noclose)) != NULL)) {
		CHECK(m->root->nchildren == 2 &&
		    body_is(noclose, m->root->children[1], "two\nand more"));
		CHECK((m->root->flags & MIME_F_NOCLOSE) &&
		    (m->flags & MIME_F_MALFORMED));
		CHECK(roundtrip(m));
		mime_free(m);
	}
	if (CHECK((m = parse(prefix)) != NULL)) {
		CHECK(m->root->nchildren == 2 && m->flags == 0);
		if (m->root->nchildren == 2) {
			in = m->root->children[0];
			CHECK(in->nchildren == 1 && body_is(prefix,
			    in->children[0], "inner one\n--abc-not"));
			CHECK(body_is(prefix, m->root->children[1], "second"));
		}
		mime_free(m);
	}
	if (CHECK((m = parse(nodelim)) != NULL)) {
		CHECK(str_is(m->root->type, "text") &&
		    m->root->nchildren == 0 && (m->flags & MIME_F_MALFORMED));
		CHECK(roundtrip(m));
		mime_free(m);
	}
	if (CHECK((m = parse(nob)) != NULL)) {
		CHECK(str_is(m->root->type, "text") &&
		    (m->flags & MIME_F_MALFORMED) &&
		    str_is(m->preview, "body"));
		mime_free(m);
	}
}

static void
test_8bit(void)
{
	const char		*latin = "Content-Type: text/plain;"
	    " charset=ISO-8859-1\n\ncaf\xe9\n";
	const char		*bad = "Content-Type: text/plain;"
	    " charset=utf-8\nContent-Transfer-Encoding: 8bit\n\na\xff" "b\n";
	struct mime_message	*m;

	if (CHECK((m = parse(latin)) != NULL)) {
		CHECK(text_is(latin, m->root, "caf\xc3\xa9\n"));
		CHECK(str_is(m->preview, "caf\xc3\xa9"));
		mime_free(m);
	}
	if (CHECK((m = parse(bad)) != NULL)) {
		CHECK(text_is(bad, m->root, "a\xef\xbf\xbd" "b\n"));
		CHECK(str_is(m->root->encoding, "8bit"));
		mime_free(m);
	}
}

static void
test_decoders(void)
{
	char	 out[64];
	size_t	 n;

	n = mime_base64_decode("aGVs\r\nbG8=", 10, out);
	CHECK(n == 5 && memcmp(out, "hello", 5) == 0);
	n = mime_base64_decode("aGk=aGk=", 8, out);
	CHECK(n == 4 && memcmp(out, "hihi", 4) == 0);
	n = mime_base64_decode("a!G*k", 5, out);
	CHECK(n == 2 && memcmp(out, "hi", 2) == 0);
	n = mime_qp_decode("a=3Db=\r\nc  \r\nd=e9=\n=ZZ=", 23, out);
	CHECK(n == 11 && memcmp(out, "a=bc\r\nd\xe9=ZZ", 11) == 0);
}

static void
test_addresses(void)
{
	struct mime_addrlist	 l;
	const char		*s = "\"Doe, John\" <john@example.test>,"
	    " Friends: anne@example.test, \"B. \\\"Bo\\\" Smith\""
	    " <bo@example.test>;,"
	    " undisclosed-recipients:;,"
	    " carl@example.test (Carl Carlsson),"
	    " =?utf-8?q?J=C3=B6rg?= <joerg@example.test>,"
	    " <@relay.test,@other.test:route@example.test>,"
	    " \"quoted local\"@example.test";
	int			 r;

	r = mime_parse_addresses(s, &l);
	CHECK(r == 0);
	if (!CHECK(l.count == 11))
		goto done;
	CHECK(addr_is(&l.addrs[0], MIME_ADDR_MAILBOX, "Doe, John", NULL,
	    "john", "example.test"));
	CHECK(addr_is(&l.addrs[1], MIME_ADDR_GROUP_START, NULL, NULL,
	    "Friends", NULL));
	CHECK(addr_is(&l.addrs[2], MIME_ADDR_MAILBOX, NULL, NULL, "anne",
	    "example.test"));
	CHECK(addr_is(&l.addrs[3], MIME_ADDR_MAILBOX, "B. \"Bo\" Smith",
	    NULL, "bo", "example.test"));
	CHECK(addr_is(&l.addrs[4], MIME_ADDR_GROUP_END, NULL, NULL, NULL,
	    NULL));
	CHECK(addr_is(&l.addrs[5], MIME_ADDR_GROUP_START, NULL, NULL,
	    "undisclosed-recipients", NULL) &&
	    l.addrs[6].kind == MIME_ADDR_GROUP_END);
	CHECK(addr_is(&l.addrs[7], MIME_ADDR_MAILBOX, "Carl Carlsson", NULL,
	    "carl", "example.test"));
	CHECK(addr_is(&l.addrs[8], MIME_ADDR_MAILBOX, "J\xc3\xb6rg", NULL,
	    "joerg", "example.test"));
	CHECK(addr_is(&l.addrs[9], MIME_ADDR_MAILBOX, NULL,
	    "@relay.test,@other.test", "route", "example.test"));
	CHECK(addr_is(&l.addrs[10], MIME_ADDR_MAILBOX, NULL, NULL,
	    "\"quoted local\"", "example.test"));
 done:
	mime_addrlist_free(&l);
	/* Broken lists still give what they can, and say so. */
	r = mime_parse_addresses("Bob <bob@example.test, ann", &l);
	CHECK(r == 1 && l.count >= 1 && str_is(l.addrs[0].name, "Bob"));
	mime_addrlist_free(&l);
	r = mime_parse_addresses("just a name", &l);
	CHECK(r == 1 && l.count == 1 && str_is(l.addrs[0].host, ""));
	mime_addrlist_free(&l);
	r = mime_parse_addresses("", &l);
	CHECK(r == 0 && l.count == 0);
	mime_addrlist_free(&l);
}

static void
test_subjects_ids(void)
{
	struct mime_idlist	 l;
	struct textbuf		 tb;
	char			*s;
	size_t			 i;

	CHECK(base_is("Re: [list] Fwd: Hello (fwd)", "Hello"));
	CHECK(base_is("RE: re: FW: x", "x"));
	CHECK(base_is("[fwd: Re: lunch]", "lunch"));
	CHECK(base_is("[PATCH] fix", "fix"));
	CHECK(base_is("[only a blob]", "[only a blob]"));
	CHECK(base_is("  Re :  spaced\t out  ", "spaced out"));
	CHECK(base_is("Regarding", "Regarding"));
	CHECK(base_is("[a] [b]", "[b]"));
	CHECK(base_is("[a][b] Re: x", "x"));
	/* Long chains of leaders stay linear (quadratic would be minutes). */
	textbuf_init(&tb);
	for (i = 0; i < 40000; i++)
		textbuf_addstr(&tb, "Re: [a]");
	for (i = 0; i < 20000; i++)
		textbuf_addstr(&tb, "[fwd: ");
	textbuf_addstr(&tb, "x");
	for (i = 0; i < 20000; i++)
		textbuf_addstr(&tb, "] (fwd)");
	s = textbuf_finish(&tb, NULL);
	CHECK(s != NULL && base_is(s, "x"));
	free(s);
	CHECK(mime_parse_msgids("<a@b>\r\n <c@d> junk <e@\n f>", &l) == 0 &&
	    l.count == 3 && str_is(l.ids[2], "e@f"));
	mime_idlist_free(&l);
	CHECK(mime_parse_msgids("bare@id", &l) == 1 && l.count == 1 &&
	    str_is(l.ids[0], "bare@id"));
	mime_idlist_free(&l);
}

static void
test_preview(void)
{
	const char		*html = "Content-Type: text/html\n\n"
	    "<html><head><title>T</title><style>p { color: red }</style>"
	    "</head><body><!-- hidden --><p>Hello &amp; welcome</p>\n"
	    "<p>to&nbsp;the&#33; &lt;site&gt; &quot;x&quot; &#x263a;"
	    " &bogus;</p><script>alert(1)</script></body></html>\n";
	struct mime_message	*m;
	struct textbuf		 tb;
	char			*raw;
	size_t			 i;

	if (CHECK((m = parse(html)) != NULL)) {
		CHECK(str_is(m->preview, "Hello & welcome to the! <site>"
		    " \"x\" \xe2\x98\xba &bogus;"));
		mime_free(m);
	}
	textbuf_init(&tb);
	textbuf_addstr(&tb, "Content-Type: text/plain; charset=utf-8\n\n");
	for (i = 0; i < 300; i++)
		textbuf_addstr(&tb, "\xc3\xa9");
	raw = textbuf_finish(&tb, NULL);
	if (CHECK((m = parse(raw)) != NULL)) {
		CHECK(strlen(m->preview) == 2 * MIME_PREVIEW_CHARS &&
		    utf8_valid(m->preview, strlen(m->preview)));
		mime_free(m);
	}
	free(raw);
	/* The cut falls on a space before a two-byte character. */
	textbuf_init(&tb);
	textbuf_addstr(&tb, "Content-Type: text/plain; charset=utf-8\n\n");
	for (i = 0; i < MIME_PREVIEW_CHARS - 1; i++)
		textbuf_addc(&tb, 'a');
	textbuf_addstr(&tb, " \xc3\xa9\xc3\xa9");
	raw = textbuf_finish(&tb, NULL);
	if (CHECK((m = parse(raw)) != NULL)) {
		CHECK(strlen(m->preview) == MIME_PREVIEW_CHARS &&
		    utf8_valid(m->preview, strlen(m->preview)));
		mime_free(m);
	}
	free(raw);
}

static void
test_attachments(void)
{
	const char		*inl = "Content-Type: multipart/related;"
	    " boundary=r\n\n--r\nContent-Type: text/html\n\n<img>\n"
	    "--r\nContent-Type: image/png; name=logo.png\n"
	    "Content-Disposition: inline\n\nxx\n--r--\n";
	const char		*named = "Content-Type: multipart/mixed;"
	    " boundary=r\n\n--r\n\nhi\n"
	    "--r\nContent-Type: application/octet-stream; name=a.bin\n\n"
	    "xx\n--r--\n";
	struct mime_message	*m;

	if (CHECK((m = parse(inl)) != NULL)) {
		CHECK(!m->has_attachment);
		mime_free(m);
	}
	if (CHECK((m = parse(named)) != NULL)) {
		CHECK(m->has_attachment);
		mime_free(m);
	}
}

static int
parse_error(const char *s, size_t len)
{
	struct mime_message	*m = NULL;
	int			 r;

	r = mime_parse(s, len, &m);
	if ((r == MIME_OK) != (m != NULL))
		return -1;
	mime_free(m);
	return r;
}

static void
test_limits(void)
{
	struct textbuf	 tb;
	char		*s, line[128];
	size_t		 i, len;

	/* 100 nested multiparts. */
	textbuf_init(&tb);
	for (i = 0; i < 100; i++) {
		snprintf(line, sizeof(line), "Content-Type: multipart/mixed;"
		    " boundary=b%zu\n\n--b%zu\n", i, i);
		textbuf_addstr(&tb, line);
	}
	textbuf_addstr(&tb, "\nleaf\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_DEPTH);
	free(s);

	/* 5000 parts. */
	textbuf_init(&tb);
	textbuf_addstr(&tb, "Content-Type: multipart/mixed; boundary=b\n\n");
	for (i = 0; i < 5000; i++)
		textbuf_addstr(&tb, "--b\n\nx\n");
	textbuf_addstr(&tb, "--b--\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_PARTS);
	free(s);

	/* A header line over MIME_MAX_LINE. */
	textbuf_init(&tb);
	textbuf_addstr(&tb, "Subject: ");
	for (i = 0; i < MIME_MAX_LINE + 10; i++)
		textbuf_addc(&tb, 'x');
	textbuf_addstr(&tb, "\n\nbody\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_LINE);
	free(s);

	/* A long first line of a part without header is body, not header. */
	textbuf_init(&tb);
	textbuf_addstr(&tb, "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\n");
	for (i = 0; i < MIME_MAX_LINE + 10; i++)
		textbuf_addc(&tb, 'x');
	textbuf_addstr(&tb, "\n--b--\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_OK);
	free(s);

	/* Header lines under the cap, but too many bytes in all. */
	textbuf_init(&tb);
	for (i = 0; i < 300; i++) {
		textbuf_addstr(&tb, "X-Filler: ");
		for (len = 0; len < 1000; len++)
			textbuf_addc(&tb, 'y');
		textbuf_addc(&tb, '\n');
	}
	textbuf_addstr(&tb, "\nbody\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_HEADER);
	free(s);

	textbuf_init(&tb);
	for (i = 0; i < MIME_MAX_FIELDS + 1; i++)
		textbuf_addstr(&tb, "X-A: b\n");
	textbuf_addstr(&tb, "\nbody\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_FIELDS);
	free(s);

	textbuf_init(&tb);
	textbuf_addstr(&tb, "Content-Type: text/plain");
	for (i = 0; i < MIME_MAX_PARAMS + 1; i++)
		textbuf_addstr(&tb, "; p=v");
	textbuf_addstr(&tb, "\n\nbody\n");
	s = textbuf_finish(&tb, &len);
	CHECK(parse_error(s, len) == MIME_ERR_PARAMS);
	free(s);

	CHECK(parse_error("x", MIME_MAX_SIZE + 1) == MIME_ERR_SIZE);
	/* Empty input is a message with nothing in it. */
	CHECK(parse_error("", 0) == MIME_OK);
	CHECK(strcmp(mime_strerror(MIME_ERR_DEPTH),
	    "MIME parts nested too deeply") == 0);
}

static void
test_json(void)
{
	const char		*raw8 = "Subject: caf\xe9 \xff\n"
	    "To: Group: a@b;\n\nx";
	const char		*badoff = "{\"v\":1,\"size\":3,"
	    "\"has-attachment\":false,\"preview\":\"\",\"envelope\":{},"
	    "\"root\":{\"type\":\"text\",\"subtype\":\"plain\","
	    "\"offsets\":[0,2,9],\"lines\":1}}";
	const char		*goodoff = "{\"v\":1,\"size\":3,"
	    "\"has-attachment\":false,\"preview\":\"\",\"envelope\":{},"
	    "\"root\":{\"type\":\"text\",\"subtype\":\"plain\","
	    "\"offsets\":[0,2,3],\"lines\":1}}";
	struct mime_message	*m, *m2;
	char			*j;
	int			 r;

	if (CHECK((m = parse(raw8)) != NULL)) {
		CHECK(roundtrip(m));
		j = mime_to_json(m);
		CHECK(j != NULL && strstr(j, "\"b64\"") != NULL);
		if (j != NULL && mime_from_json(j, strlen(j), &m2) == MIME_OK) {
			CHECK(str_is(m2->envelope.subject, "caf\xe9 \xff"));
			CHECK(m2->envelope.to_list.count == 3);
			mime_free(m2);
		} else
			CHECK(0);
		free(j);
		mime_free(m);
	}
	m2 = NULL;
	CHECK(mime_from_json("{}", 2, &m2) == MIME_ERR_JSON && m2 == NULL);
	CHECK(mime_from_json("not json", 8, &m2) == MIME_ERR_JSON);
	r = mime_from_json(badoff, strlen(badoff), &m2);
	CHECK(r == MIME_ERR_JSON && m2 == NULL);
	r = mime_from_json(goodoff, strlen(goodoff), &m2);
	CHECK(r == MIME_OK && m2 != NULL && m2->root->size == 1);
	mime_free(m2);
	test_json_body_start();
}

int
main(void)
{
	test_simple();
	test_crlf();
	test_folded();
	test_encoded_words();
	test_charsets();
	test_rfc2231();
	test_nested();
	test_rfc822();
	test_digest();
	test_boundaries();
	test_8bit();
	test_decoders();
	test_addresses();
	test_subjects_ids();
	test_preview();
	test_attachments();
	test_limits();
	test_json();
	return unit_done();
}
