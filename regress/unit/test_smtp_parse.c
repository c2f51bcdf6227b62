/*
 * smtpd/smtp_parse.c: the data framing against every published
 * SMTP-smuggling end-of-data pattern, dot-unstuffing, chunked input,
 * BDAT text checks, base64 as AUTH reads it, and RCPT <Postmaster>.
 */
#include <stdio.h>
#include <string.h>

#include "../../smtpd/smtp_parse.h"
#include "unit.h"

struct scan {
	size_t		 consumed;
	int		 done;
	int		 errors;
	unsigned char	 out[4096];
	size_t		 outlen;
};

/* Feeds in pieces of piece bytes, as the socket might deliver them. */
static void
scan(const char *in, size_t len, size_t piece, int dot, struct scan *r)
{
	struct smtp_data_scan	 d;
	size_t			 off = 0, n, olen, take;

	smtp_data_scan_init(&d, dot, 1000);
	r->outlen = 0;
	while (off < len && !d.done) {
		take = len - off < piece ? len - off : piece;
		n = smtp_data_scan(&d, (const unsigned char *)in + off, take,
		    r->out + r->outlen, &olen);
		off += n;
		r->outlen += olen;
	}
	if (!dot)
		smtp_data_scan_finish(&d);
	r->consumed = off;
	r->done = d.done;
	r->errors = d.errors;
}

static void
test_clean_end(void)
{
	static const char in[] = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
	struct scan	 r;
	size_t		 piece;

	for (piece = 1; piece <= sizeof(in); piece++) {
		scan(in, sizeof(in) - 1, piece, 1, &r);
		CHECK(r.done && r.errors == 0);
		CHECK(r.consumed == strlen("Subject: x\r\n\r\nbody\r\n.\r\n"));
		CHECK(r.outlen == strlen("Subject: x\r\n\r\nbody\r\n") &&
		    memcmp(r.out, "Subject: x\r\n\r\nbody\r\n", r.outlen) == 0);
	}
	scan(".\r\n", 3, 1, 1, &r);
	CHECK(r.done && r.errors == 0 && r.outlen == 0);
}

static void
test_unstuffing(void)
{
	static const char in[] = "..a\r\n...\r\n.b\r\nc.d\r\n.\r\n";
	static const char want[] = ".a\r\n..\r\nb\r\nc.d\r\n";
	struct scan	 r;

	scan(in, sizeof(in) - 1, 2, 1, &r);
	CHECK(r.done && r.errors == 0);
	CHECK(r.outlen == sizeof(want) - 1 &&
	    memcmp(r.out, want, r.outlen) == 0);
}

static void
test_smuggling(void)
{
	static const char *patterns[] = {
		"\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r\n.\n", "\r.\r\n",
		"\r.\n", "\n.\r", "\r\n.\0\r\n", "\r\n\0.\r\n", "\n\r.\r\n",
		"\r\n.\r\r\n", "\r\n\n.\r\n",
	};
	static const size_t lens[] = { 3, 4, 3, 4, 4, 4, 3, 3, 6, 6, 5, 6,
	    5 };
	char		 in[512];
	const char	*tail = "MAIL FROM:<a@b.c>\r\nDATA\r\nx\r\n.\r\n";
	struct scan	 r;
	size_t		 i, len, piece;

	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		len = 0;
		memcpy(in, "Subject: s\r\n\r\ntext", 19);
		len = 19;
		memcpy(in + len, patterns[i], lens[i]);
		len += lens[i];
		memcpy(in + len, tail, strlen(tail));
		len += strlen(tail);
		for (piece = 1; piece <= 7; piece++) {
			scan(in, len, piece, 1, &r);
			/* Ends only at the real end, and is refused. */
			if (!CHECK(r.done && r.consumed == len))
				printf("\tpattern %zu piece %zu\n", i, piece);
			if (!CHECK(r.errors & (SMTP_DATA_BARE_CR |
			    SMTP_DATA_BARE_LF | SMTP_DATA_NUL)))
				printf("\tpattern %zu piece %zu\n", i, piece);
		}
	}
}

static void
test_long_line(void)
{
	char		 in[1100];
	struct scan	 r;

	memset(in, 'x', 1001);
	memcpy(in + 1001, "\r\n.\r\n", 5);
	scan(in, 1006, 64, 1, &r);
	CHECK(r.done && r.errors == SMTP_DATA_LONG_LINE);
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	scan(in, 1003, 64, 1, &r);
	CHECK(r.done && r.errors == 0);
}

static void
test_bdat_text(void)
{
	struct scan	 r;

	scan("a\r\n.\r\nb\r\n", 9, 3, 0, &r);
	CHECK(!r.done && r.errors == 0 && r.outlen == 9);
	scan("a\r\nb\r", 5, 5, 0, &r);
	CHECK(r.errors == SMTP_DATA_BARE_CR);
	scan("a\nb\r\n", 5, 1, 0, &r);
	CHECK(r.errors == SMTP_DATA_BARE_LF);
}

static void
test_base64(void)
{
	unsigned char	 out[64];
	size_t		 len;

	CHECK(smtp_base64_decode("AGFAYgBw", out, sizeof(out), &len) == 0 &&
	    len == 6 && memcmp(out, "\0a@b\0p", 6) == 0);
	CHECK(smtp_base64_decode("YQ==", out, sizeof(out), &len) == 0 &&
	    len == 1 && out[0] == 'a');
	CHECK(smtp_base64_decode("YWI=", out, sizeof(out), &len) == 0 &&
	    len == 2);
	CHECK(smtp_base64_decode("=", out, sizeof(out), &len) == 0 &&
	    len == 0);
	CHECK(smtp_base64_decode("", out, sizeof(out), &len) == -1);
	CHECK(smtp_base64_decode("YQ=", out, sizeof(out), &len) == -1);
	CHECK(smtp_base64_decode("Y===", out, sizeof(out), &len) == -1);
	CHECK(smtp_base64_decode("YQ==YQ==", out, sizeof(out), &len) == -1);
	CHECK(smtp_base64_decode("YW*i", out, sizeof(out), &len) == -1);
	CHECK(smtp_base64_decode("YWJj", out, 2, &len) == -1);
}

static void
test_rcpt(void)
{
	struct smtp_rcpt_args	 a;
	const char		*err;

	CHECK(smtp_parse_rcpt("TO:<Postmaster>", 0, &a, &err) == 0 &&
	    strcmp(a.to, "postmaster") == 0);
	CHECK(smtp_parse_rcpt("TO:<postmaster> NOTIFY=NEVER", 0, &a,
	    &err) == 0 && a.notify == SMTP_NOTIFY_NEVER);
	CHECK(smtp_parse_rcpt("TO:<postmasterx>", 0, &a, &err) == -1);
	CHECK(smtp_parse_rcpt("TO:<bob>", 0, &a, &err) == -1);
	CHECK(smtp_parse_rcpt("TO:<bob@example.test> ORCPT=rfc822;b+40x",
	    0, &a, &err) == 0 && strcmp(a.orcpt, "rfc822;b@x") == 0);
}

int
main(void)
{
	test_clean_end();
	test_unstuffing();
	test_smuggling();
	test_long_line();
	test_bdat_text();
	test_base64();
	test_rcpt();
	return unit_done();
}
