/*
 * IMAP FETCH data from a parsed message (lib/mime.h): strings, ENVELOPE,
 * BODY and BODYSTRUCTURE, section addressing, HEADER.FIELDS filtering,
 * BINARY decoding, partial ranges and INTERNALDATE.  No I/O: body bytes
 * come from the caller, either as a buffer or through an imap_read_fn.
 *
 * Offsets are into the whole message as the mime tree counts them (the
 * stored prefix lines, then the blob's bytes).  Everything is appended
 * to a struct imap_buf; a failed allocation sets buf->oom and later
 * appends do nothing, so a caller checks oom once at the end.
 */
#ifndef IMAP_RENDER_H
#define IMAP_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mime.h"

#define IMAP_QUOTED_MAX		1024	/* longer strings go as literals */
#define IMAP_SECTION_PARTS	(MIME_MAX_DEPTH + 2)	/* "1.2.3" numbers */
#define IMAP_FIELDS_MAX		256	/* names in HEADER.FIELDS (...) */

/* imap_render_* flags. */
#define IMAP_R_UTF8		0x01	/* client ENABLEd UTF8=ACCEPT */

struct imap_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 oom;
};

#define IMAP_BUF_INIT	{ NULL, 0, 0, 0 }

void	 imap_buf_add(struct imap_buf *, const void *, size_t);
void	 imap_buf_adds(struct imap_buf *, const char *);
void	 imap_buf_addc(struct imap_buf *, int);
void	 imap_buf_printf(struct imap_buf *, const char *, ...)
	    __attribute__((__format__ (printf, 2, 3)));
void	 imap_buf_addu64(struct imap_buf *, uint64_t);
void	 imap_buf_reset(struct imap_buf *);	/* len 0, memory kept */
void	 imap_buf_free(struct imap_buf *);

/*
 * An IMAP string: NIL for NULL, a quoted string when it may be one, else
 * a literal {n}\r\n... (8-bit unless utf8_ok and valid UTF-8, CR, LF,
 * NUL, longer than IMAP_QUOTED_MAX).  imap_astring() gives an atom when
 * the string is one (and is not NIL).
 */
void	 imap_quote(struct imap_buf *, const char *, size_t, int utf8_ok);
void	 imap_quote_str(struct imap_buf *, const char *, int utf8_ok);
void	 imap_astring(struct imap_buf *, const char *, size_t, int utf8_ok);
/* {n}\r\n and the bytes, or ~{n}\r\n (RFC 3516 literal8) if they hold NUL. */
void	 imap_literal(struct imap_buf *, const char *, size_t);

/*
 * ENVELOPE and BODY / BODYSTRUCTURE (extended) as RFC 9051 7.5.2 has
 * them, starting with "(".  Without IMAP_R_UTF8, decoded non-ASCII
 * display names and parameter values go out as RFC 2047 encoded-words.
 */
void	 imap_render_envelope(struct imap_buf *,
	    const struct mime_envelope *, int flags);
void	 imap_render_bodystructure(struct imap_buf *,
	    const struct mime_part *, int extended, int flags);

/* "01-Dec-2026 14:05:00 +0000" in quotes; tzoff in minutes east of UTC. */
void	 imap_render_date(struct imap_buf *, time_t, int tzoff);

/* What follows the part numbers of a section-spec. */
enum imap_section_text {
	IMAP_SECTION_BODY = 0,		/* "" or "1.2": the part's body */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_FIELDS,		/* HEADER.FIELDS (...) */
	IMAP_SECTION_FIELDS_NOT,	/* HEADER.FIELDS.NOT (...) */
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME
};

/* imap_section_find() results. */
#define IMAP_SECTION_OK		0
#define IMAP_SECTION_SYNTAX	(-1)	/* BAD */
#define IMAP_SECTION_NOMEM	(-2)
/* The section does not exist: off and len are 0, the data is "". */
#define IMAP_SECTION_MISSING	1

struct imap_section {
	/* What the client asked for. */
	uint32_t		 parts[IMAP_SECTION_PARTS];
	size_t			 nparts;
	enum imap_section_text	 text;
	char			**fields;	/* HEADER.FIELDS[.NOT] names */
	size_t			 nfields;

	/* Where it is: [off, off + len) of the raw message. */
	size_t			 off;
	size_t			 len;
	/* The part the numbers name (root for none; NULL when missing). */
	const struct mime_part	*part;
	int			 missing;
	/*
	 * IMAP_SECTION_FIELDS / _FIELDS_NOT: [off, off + len) is the whole
	 * header block, to filter with imap_header_fields().
	 */
	int			 filter;
};

/*
 * section is the text between "[" and "]" of BODY[...], BINARY[...]
 * (field names as atoms or quoted strings).  imap_section_parse() checks
 * the syntax only; imap_section_find() also resolves it against the
 * message.  Both leave out to be released with imap_section_clear(),
 * whatever they return.  imap_section_resolve() alone works on a struct
 * the caller filled from its own parse (parts, nparts, text, fields,
 * nfields; the rest zero): it allocates nothing, so a caller that owns
 * the fields array does not call imap_section_clear() on it.  Part
 * number 0 is taken as a missing section there.
 */
int	 imap_section_parse(const char *, struct imap_section *);
int	 imap_section_find(const struct mime_message *, const char *,
	    struct imap_section *);
int	 imap_section_resolve(const struct mime_message *,
	    struct imap_section *);
void	 imap_section_clear(struct imap_section *);
/* The section-spec again, for the response item: "1.HEADER.FIELDS (A B)". */
void	 imap_section_name(struct imap_buf *, const struct imap_section *);
/* The whole item name: item "[" section "]", then "<origin>" if partial. */
void	 imap_section_item(struct imap_buf *, const char *item,
	    const struct imap_section *, int partial, uint64_t origin);

/*
 * The fields of the header block hdr[0, len) whose names are (not, if
 * not is set) among names, each with its continuation lines, then the
 * blank line ("\r\n").  Names compare without regard to case.
 */
void	 imap_header_fields(struct imap_buf *, const char *, size_t,
	    char * const *, size_t, int not);

/*
 * <origin.count>: narrows [*off, *off + *len).  count is UINT32_MAX
 * and more for "to the end".
 */
void	 imap_partial(size_t *off, size_t *len, uint64_t origin,
	    uint64_t count);

/*
 * BINARY[section]: the part's body (body[0, len), only its bytes) after
 * its Content-Transfer-Encoding.  Returns 0, or IMAP_BINARY_UNKNOWN_CTE
 * (respond NO [UNKNOWN-CTE]) or IMAP_BINARY_NOMEM.  *out is malloc'd.
 * A multipart or message part with an identity encoding is its bytes.
 */
#define IMAP_BINARY_OK		0
#define IMAP_BINARY_NOMEM	IMAP_SECTION_NOMEM
#define IMAP_BINARY_UNKNOWN_CTE	(-4)
int	 imap_binary_decode(const struct mime_part *, const char *, size_t,
	    char **, size_t *);

/*
 * Byte access for imap_fetch_section(): copy len bytes at off of the
 * whole message (prefix, then blob) into dst; 0, or -1 on error.
 */
typedef int	(*imap_read_fn)(void *, size_t off, char *dst, size_t len);

/* imap_fetch_section() kinds. */
#define IMAP_FETCH_SECT_BODY	0	/* BODY[...], BODY.PEEK[...] */
#define IMAP_FETCH_SECT_BINARY	1	/* BINARY[...], BINARY.PEEK[...] */
#define IMAP_FETCH_SECT_SIZE	2	/* BINARY.SIZE[...] */

/*
 * The value of one section item of a resolved section: a literal (BODY,
 * BINARY), or a number (BINARY.SIZE), with <origin.count> applied when
 * partial; "" (BODY) or NIL (BINARY) for a missing section.  The caller
 * writes the item's name first (see imap_section_name()).  Returns
 * IMAP_SECTION_OK; IMAP_SECTION_SYNTAX for BINARY of a section with
 * HEADER, TEXT or MIME; IMAP_SECTION_NOMEM; IMAP_FETCH_EREAD when the
 * read failed; IMAP_BINARY_UNKNOWN_CTE.  Nothing is appended on error.
 */
#define IMAP_FETCH_EREAD	(-3)
int	 imap_fetch_section(struct imap_buf *, const struct mime_message *,
	    const struct imap_section *, int kind, int partial,
	    uint64_t origin, uint64_t count, imap_read_fn, void *);

#endif /* IMAP_RENDER_H */
