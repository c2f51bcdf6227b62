/*
 * SMTP command arguments (RFC 5321 4.1.2, ESMTP parameters of RFC 1870,
 * 3461, 6152, 6531): pure functions, no I/O, fuzzed.
 */
#ifndef SMTP_PARSE_H
#define SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_LOCALPART_MAX	64
#define SMTP_DOMAIN_MAX		255
#define SMTP_ENVID_MAX		100	/* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX		500
#define SMTP_PARAMS_MAX		16

enum smtp_body {
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME
};

#define SMTP_RET_NONE		0
#define SMTP_RET_FULL		1
#define SMTP_RET_HDRS		2

#define SMTP_NOTIFY_DEFAULT	0x00
#define SMTP_NOTIFY_NEVER	0x01
#define SMTP_NOTIFY_SUCCESS	0x02
#define SMTP_NOTIFY_FAILURE	0x04
#define SMTP_NOTIFY_DELAY	0x08

struct smtp_mail_args {
	char		 from[SMTP_PATH_MAX + 1];	/* "" for <> */
	uint64_t	 size;				/* 0 if not given */
	enum smtp_body	 body;
	int		 smtputf8;
	int		 ret;
	char		 envid[SMTP_ENVID_MAX + 1];	/* decoded xtext */
	char		 auth[SMTP_PATH_MAX + 1];	/* AUTH= (RFC 4954) */
};

struct smtp_rcpt_args {
	char		 to[SMTP_PATH_MAX + 1];
	int		 notify;
	char		 orcpt[SMTP_ORCPT_MAX + 1];	/* "type;decoded" */
};

/*
 * Each returns 0 on success, or -1 with *err set to a full reply
 * ("501 5.1.7 Bad sender address syntax") for the session to send.
 */
int	smtp_parse_mail(const char *, int, struct smtp_mail_args *,
	    const char **);
int	smtp_parse_rcpt(const char *, int, struct smtp_rcpt_args *,
	    const char **);
int	smtp_parse_address(const char *, int);
int	smtp_parse_domain(const char *);
int	smtp_xtext_decode(const char *, char *, size_t);
int	smtp_xtext_encode(const char *, char *, size_t);
int	smtp_parse_bdat(const char *, uint64_t *, int *);
int	smtp_base64_decode(const char *, unsigned char *, size_t, size_t *);

/*
 * Message data as it comes in (DATA, or BDAT chunks unless
 * BINARYMIME).  Only CR LF ends a line; with dot set (DATA) a line of
 * "." alone ends the data and a leading dot is removed.  A bare CR, a
 * bare LF or a NUL never ends anything: it is noted in errors and the
 * whole transaction is refused at the end.
 */
#define SMTP_DATA_BARE_CR	0x01
#define SMTP_DATA_BARE_LF	0x02
#define SMTP_DATA_NUL		0x04
#define SMTP_DATA_LONG_LINE	0x08

/* Room smtp_data_scan() may need in out beyond the input's length. */
#define SMTP_DATA_SCAN_SLACK	2

struct smtp_data_scan {
	int		 state;
	int		 dot;
	int		 done;
	int		 errors;
	size_t		 linelen;
	size_t		 maxline;	/* CR LF included */
};

void	smtp_data_scan_init(struct smtp_data_scan *, int, size_t);
size_t	smtp_data_scan(struct smtp_data_scan *, const unsigned char *,
	    size_t, unsigned char *, size_t *);
void	smtp_data_scan_finish(struct smtp_data_scan *);

#endif /* SMTP_PARSE_H */
