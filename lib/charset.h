/*
 * Conversion of the charsets mail is written in to UTF-8, without
 * iconv(3): storaged runs chrooted, where glibc's gconv modules are
 * out of reach.  Known: utf-8, us-ascii, iso-8859-1, iso-8859-15,
 * windows-1252, iso-8859-2 and their usual aliases.  Unknown charsets
 * keep ASCII and turn every byte >= 0x80 into U+FFFD.
 *
 * A textbuf is a growable byte buffer with a sticky error: once an
 * allocation fails (or TEXTBUF_MAX would be passed) every later add is
 * ignored and textbuf_error() says so, so callers check once at the end.
 */
#ifndef CHARSET_H
#define CHARSET_H

#include <stddef.h>
#include <stdint.h>

#define TEXTBUF_MAX	((size_t)1 << 31)	/* bytes in one buffer */
#define UTF8_REPLACEMENT	0xfffd

struct textbuf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	int	 error;
};

void	 textbuf_init(struct textbuf *);
void	 textbuf_free(struct textbuf *);
void	 textbuf_add(struct textbuf *, const void *, size_t);
void	 textbuf_addc(struct textbuf *, int);
void	 textbuf_addstr(struct textbuf *, const char *);
void	 textbuf_add_codepoint(struct textbuf *, uint32_t);
int	 textbuf_error(const struct textbuf *);
/* NUL-terminates and hands the bytes over; NULL after an error. */
char	*textbuf_finish(struct textbuf *, size_t *);

enum charset_id {
	CHARSET_UNKNOWN = 0,
	CHARSET_UTF8,
	CHARSET_ASCII,
	CHARSET_LATIN1,
	CHARSET_LATIN9,
	CHARSET_CP1252,
	CHARSET_LATIN2
};

enum charset_id	 charset_lookup(const char *);
const char	*charset_name(enum charset_id);
void		 charset_to_utf8(struct textbuf *, const char *,
		    const void *, size_t);
void		 charset_id_to_utf8(struct textbuf *, enum charset_id,
		    const void *, size_t);
int		 utf8_valid(const void *, size_t);
/* Decodes one UTF-8 sequence; returns its length, 0 if invalid. */
size_t		 utf8_decode(const unsigned char *, size_t, uint32_t *);

#endif /* CHARSET_H */
