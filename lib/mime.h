/*
 * A strict, bounded parser for RFC 5322 messages and their MIME
 * structure (RFC 2045, 2046, 2047, 2231).  storaged parses each
 * delivered message once with mime_parse(), keeps mime_to_json() of the
 * result, and answers IMAP ENVELOPE, BODYSTRUCTURE, BODY[section] and
 * JMAP Email properties from it (and from the raw bytes, by offset).
 *
 * Odd mail is still parsed as far as is sensible and marked
 * MIME_F_MALFORMED; only a limit below makes mime_parse() fail:
 *
 *   MIME_MAX_SIZE		bytes in one message
 *   MIME_MAX_LINE		bytes in one header line (RFC 5322 says 998;
 *				mail in the wild is longer)
 *   MIME_MAX_HEADER		bytes in one part's header block
 *   MIME_MAX_FIELDS		header fields in one part
 *   MIME_MAX_DEPTH		nesting of multipart and message/rfc822
 *   MIME_MAX_PARTS		parts in one message, encapsulated ones too
 *   MIME_MAX_PARAMS		parameters in one Content-Type or
 *				Content-Disposition (RFC 2231 sections count)
 *
 * Address lists, References and the like are bounded by
 * MIME_MAX_HEADER.  Strings are NUL-terminated; raw header values are
 * the field's bytes unfolded (NULs dropped) and may hold 8-bit bytes,
 * while decoded ones (display names, subject, parameter values) are
 * UTF-8.
 */
#ifndef MIME_H
#define MIME_H

#include <stddef.h>
#include <stdint.h>

#define MIME_MAX_SIZE		((size_t)1 << 30)
#define MIME_MAX_LINE		(64 * 1024)
#define MIME_MAX_HEADER		(256 * 1024)
#define MIME_MAX_FIELDS		1000
#define MIME_MAX_DEPTH		32
#define MIME_MAX_PARTS		1000
#define MIME_MAX_PARAMS		64
#define MIME_PREVIEW_CHARS	256	/* characters of preview */
#define MIME_PREVIEW_SCAN	(64 * 1024)	/* body bytes read for it */

enum mime_error {
	MIME_OK = 0,
	MIME_ERR_SIZE,		/* message larger than MIME_MAX_SIZE */
	MIME_ERR_LINE,		/* header line over MIME_MAX_LINE */
	MIME_ERR_HEADER,	/* header block over MIME_MAX_HEADER */
	MIME_ERR_FIELDS,	/* more than MIME_MAX_FIELDS fields */
	MIME_ERR_DEPTH,		/* nesting deeper than MIME_MAX_DEPTH */
	MIME_ERR_PARTS,		/* more than MIME_MAX_PARTS parts */
	MIME_ERR_PARAMS,	/* more than MIME_MAX_PARAMS parameters */
	MIME_ERR_NOMEM,		/* out of memory */
	MIME_ERR_JSON		/* mime_from_json(): not our JSON */
};

/* Part flags. */
#define MIME_F_MALFORMED	0x01	/* something was not as the RFCs say */
#define MIME_F_NOCLOSE		0x02	/* multipart without close delimiter */
#define MIME_F_CT_DEFAULT	0x04	/* no (valid) Content-Type header */
#define MIME_F_ALL		0x07

struct mime_param {
	char	*name;		/* lower-cased, RFC 2231 sections joined */
	char	*value;		/* UTF-8 */
};

enum mime_addr_kind {
	MIME_ADDR_MAILBOX = 0,
	MIME_ADDR_GROUP_START,	/* mailbox holds the group's name */
	MIME_ADDR_GROUP_END	/* every field NULL */
};

/*
 * One entry of an address list, in the shape of IMAP's ENVELOPE: a
 * group is a GROUP_START entry, its members, and a GROUP_END entry.
 * name and route may be NULL; a mailbox without a domain has host "".
 */
struct mime_addr {
	enum mime_addr_kind	 kind;
	char			*name;
	char			*route;
	char			*mailbox;
	char			*host;
};

struct mime_addrlist {
	struct mime_addr	*addrs;
	size_t			 count;
};

struct mime_idlist {
	char			**ids;	/* message ids without < > */
	size_t			  count;
};

/*
 * What IMAP's ENVELOPE and JMAP's header properties need.  The raw
 * fields are NULL when the header is absent.
 */
struct mime_envelope {
	char			*date;
	char			*subject;
	char			*from;
	char			*sender;
	char			*reply_to;
	char			*to;
	char			*cc;
	char			*bcc;
	char			*in_reply_to;
	char			*message_id;
	char			*references;

	char			*subject_utf8;	/* RFC 2047 decoded */
	char			*base_subject;	/* RFC 5256 */
	struct mime_addrlist	 from_list;
	struct mime_addrlist	 sender_list;
	struct mime_addrlist	 reply_to_list;
	struct mime_addrlist	 to_list;
	struct mime_addrlist	 cc_list;
	struct mime_addrlist	 bcc_list;
	struct mime_idlist	 message_ids;
	struct mime_idlist	 in_reply_to_ids;
	struct mime_idlist	 reference_ids;
};

/*
 * One body part.  Offsets are into the raw message: the header block
 * is [header_start, body_start), the body [body_start, body_end).  A
 * multipart always has children: one without a boundary or without any
 * delimiter line is read as text/plain (and marked malformed).  A
 * message/rfc822 in base64 or quoted-printable (not allowed, but seen)
 * is a leaf: envelope and message are NULL.
 */
struct mime_part {
	char			 *type;		/* lower-cased */
	char			 *subtype;	/* lower-cased */
	struct mime_param	 *params;
	size_t			  nparams;
	char			 *encoding;	/* lower-cased; NULL: 7bit */
	char			 *id;
	char			 *description;
	char			 *disposition;	/* lower-cased or NULL */
	struct mime_param	 *disp_params;
	size_t			  ndisp_params;
	char			**languages;
	size_t			  nlanguages;
	char			 *location;
	char			 *md5;

	size_t			  header_start;
	size_t			  body_start;
	size_t			  body_end;
	size_t			  size;		/* body_end - body_start */
	size_t			  lines;
	int			  flags;

	/* message/rfc822 and message/global: the message inside. */
	struct mime_envelope	 *envelope;
	struct mime_part	 *message;

	struct mime_part	**children;
	size_t			  nchildren;
};

struct mime_message {
	struct mime_envelope	 envelope;
	struct mime_part	*root;
	size_t			 size;
	int			 flags;		/* MIME_F_MALFORMED anywhere */
	int			 has_attachment;
	char			*preview;	/* UTF-8; NULL if not asked for */
};

int		 mime_parse(const char *, size_t, struct mime_message **);
int		 mime_parse_opt(const char *, size_t, int,
		    struct mime_message **);
void		 mime_free(struct mime_message *);
void		 mime_shift(struct mime_message *, ptrdiff_t);
void		 mime_part_free(struct mime_part *);
void		 mime_envelope_clear(struct mime_envelope *);
const char	*mime_strerror(int);

/* Compact JSON of the whole tree; NULL when out of memory. */
char		*mime_to_json(const struct mime_message *);
int		 mime_from_json(const char *, size_t, struct mime_message **);
/* The root's body_start read from mime_to_json()'s text; -1: parse it. */
int		 mime_json_body_start(const char *, size_t, uint64_t *);

int		 mime_header_get(const char *, size_t,
		    const struct mime_part *, const char *, char **);
const char	*mime_param_get(const struct mime_param *, size_t,
		    const char *);
const char	*mime_part_charset(const struct mime_part *);
const char	*mime_part_filename(const struct mime_part *);
int		 mime_part_is_attachment(const struct mime_part *);
/* The part's body after Content-Transfer-Encoding (raw is the message). */
int		 mime_part_decode(const struct mime_part *, const char *,
		    size_t, char **, size_t *);
/* The same, converted to UTF-8 from the part's charset. */
int		 mime_part_text(const struct mime_part *, const char *,
		    size_t, char **, size_t *);

/* Decoders: tolerant, output never longer than the input. */
size_t		 mime_base64_decode(const char *, size_t, char *);
size_t		 mime_qp_decode(const char *, size_t, char *);
char		*mime_html_to_text(const char *, size_t, size_t);

/* RFC 5322 and 2047 on single header values (lib/rfc5322.c). */
char		*mime_decode_words(const char *);
int		 mime_parse_addresses(const char *, struct mime_addrlist *);
void		 mime_addrlist_free(struct mime_addrlist *);
int		 mime_parse_msgids(const char *, struct mime_idlist *);
void		 mime_idlist_free(struct mime_idlist *);
char		*mime_base_subject(const char *);
char		*mime_unfold(const char *, size_t);
int		 mime_parse_content_header(const char *, char **, char **,
		    struct mime_param **, size_t *, int *);
void		 mime_params_free(struct mime_param *, size_t);

#endif /* MIME_H */
