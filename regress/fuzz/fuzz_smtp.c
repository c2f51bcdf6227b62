/*
 * libFuzzer target for smtpd/smtp_parse.c: command arguments as a
 * client could write them, and message data through the framing that
 * must not be fooled by bare CR, bare LF or NUL.
 *
 * Input: one control byte, then the bytes.  The control byte's low 3
 * bits pick what is fuzzed; for the data scanner its high 5 bits pick
 * the size of the pieces the data arrives in, and the result must not
 * depend on them: the same end, the same bytes out, the same errors
 * as when it comes in one piece.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../smtpd/smtp_parse.h"

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
fuzz_mail(const char *s, int utf8)
{
	struct smtp_mail_args	 a;
	const char		*err = NULL;

	if (smtp_parse_mail(s, utf8, &a, &err) == -1) {
		if (err == NULL || strlen(err) < 4)
			abort();
		return;
	}
	if (strlen(a.from) > SMTP_PATH_MAX ||
	    strlen(a.envid) > SMTP_ENVID_MAX ||
	    (a.from[0] != '\0' && smtp_parse_address(a.from, 1) == -1))
		abort();
}

static void
fuzz_rcpt(const char *s, int utf8)
{
	struct smtp_rcpt_args	 a;
	const char		*err = NULL;

	if (smtp_parse_rcpt(s, utf8, &a, &err) == -1) {
		if (err == NULL || strlen(err) < 4)
			abort();
		return;
	}
	if (strlen(a.to) > SMTP_PATH_MAX || strlen(a.orcpt) > SMTP_ORCPT_MAX ||
	    (smtp_parse_address(a.to, 1) == -1 &&
	    strcmp(a.to, "postmaster") != 0))
		abort();
}

static void
fuzz_codecs(const char *s)
{
	unsigned char	 raw[1024];
	char		 enc[3 * 1024 + 1], dec[1024];
	uint64_t	 size;
	size_t		 len;
	int		 last;

	(void)smtp_base64_decode(s, raw, sizeof(raw), &len);
	(void)smtp_parse_bdat(s, &size, &last);
	(void)smtp_parse_domain(s);
	/* xtext: what decodes encodes back to what decodes the same. */
	if (smtp_xtext_decode(s, dec, sizeof(dec)) == 0) {
		if (smtp_xtext_encode(dec, enc, sizeof(enc)) == -1)
			abort();
		if (smtp_xtext_decode(enc, (char *)raw, sizeof(raw)) == -1 ||
		    strcmp((char *)raw, dec) != 0)
			abort();
	}
}

struct scan_result {
	size_t		 consumed;
	size_t		 outlen;
	int		 done;
	int		 errors;
};

static void
fuzz_scan_run(const uint8_t *p, size_t len, size_t piece, int dot,
    unsigned char *out, struct scan_result *r)
{
	struct smtp_data_scan	 d;
	size_t			 off = 0, n, olen, take;

	smtp_data_scan_init(&d, dot, 998);
	r->outlen = 0;
	while (off < len && !d.done) {
		take = len - off < piece ? len - off : piece;
		n = smtp_data_scan(&d, p + off, take, out + r->outlen, &olen);
		if (n == 0 || n > take || olen > n + SMTP_DATA_SCAN_SLACK)
			abort();
		off += n;
		r->outlen += olen;
		if (r->outlen > off)
			abort();
	}
	if (!dot && !d.done)
		smtp_data_scan_finish(&d);
	r->consumed = off;
	r->done = d.done;
	r->errors = d.errors;
}

static int
fuzz_clean_lines(const unsigned char *p, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\0')
			return 0;
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			return 0;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
	}
	return 1;
}

static void
fuzz_scan(const uint8_t *p, size_t len, size_t piece, int dot)
{
	struct scan_result	 whole, split;
	unsigned char		*a, *b;

	if ((a = malloc(len + SMTP_DATA_SCAN_SLACK)) == NULL ||
	    (b = malloc(len + SMTP_DATA_SCAN_SLACK)) == NULL)
		abort();
	fuzz_scan_run(p, len, len ? len : 1, dot, a, &whole);
	fuzz_scan_run(p, len, piece, dot, b, &split);
	if (whole.consumed != split.consumed || whole.done != split.done ||
	    whole.errors != split.errors || whole.outlen != split.outlen ||
	    memcmp(a, b, whole.outlen) != 0)
		abort();
	/* Only CR LF "." CR LF ends data, or "." CR LF right at the start. */
	if (whole.done) {
		if (!dot)
			abort();
		if (!(whole.consumed == 3 && memcmp(p, ".\r\n", 3) == 0) &&
		    !(whole.consumed >= 5 &&
		    memcmp(p + whole.consumed - 5, "\r\n.\r\n", 5) == 0))
			abort();
	}
	/* Data called clean has only CR LF line ends and no NUL. */
	if (!(whole.errors & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF |
	    SMTP_DATA_NUL)) && (whole.done || !dot) &&
	    !fuzz_clean_lines(a, whole.outlen))
		abort();
	free(a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;
	int	 mode;
	size_t	 piece;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	mode = data[0] & 7;
	piece = (data[0] >> 3) + 1;
	data++;
	size--;
	switch (mode) {
	case 0:
	case 1:
	case 2:
		s = fuzz_string(data, size);
		if (mode == 2)
			fuzz_codecs(s);
		else if (mode == 0)
			fuzz_mail(s, size & 1);
		else
			fuzz_rcpt(s, size & 1);
		free(s);
		break;
	case 3:
	case 4:
	case 5:
		fuzz_scan(data, size, piece, 1);
		break;
	default:
		fuzz_scan(data, size, piece, 0);
		break;
	}
	return 0;
}
