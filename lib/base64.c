/*
 * Strict base64 decoding, shared by SMTP AUTH and IMAP AUTHENTICATE;
 * lib/mime.c has its own, lenient one for message bodies.
 */
#include <string.h>

#include "base64.h"

static int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode_strict(const char *in, unsigned char *out, size_t outmax,
    size_t *outlen)
{
	size_t		 len = strlen(in), i, n = 0;
	int		 v[4], j, pad;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		pad = 0;
		for (j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = base64_value(in[i + j])) == -1)
				return -1;
		}
		if (n + 3 - pad > outmax)
			return -1;
		out[n++] = (v[0] << 2) | (v[1] >> 4);
		if (pad < 2)
			out[n++] = ((v[1] & 0xf) << 4) | (v[2] >> 2);
		if (pad < 1)
			out[n++] = ((v[2] & 0x3) << 6) | v[3];
	}
	*outlen = n;
	return 0;
}
