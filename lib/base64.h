/*
 * Strict base64 (RFC 4648 section 4) for what a client sends to
 * authenticate: whole quanta, padding only at the end.
 */
#ifndef BASE64_H
#define BASE64_H

#include <stddef.h>

/*
 * Decodes in to at most outmax bytes of out; 0 with *outlen set, -1 on
 * bad input or when out is too small.  The empty string decodes to
 * nothing.
 */
int	base64_decode_strict(const char *, unsigned char *, size_t,
	    size_t *);

#endif
