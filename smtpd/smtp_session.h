/*
 * What the parts of an SMTP session share: smtp_session.c (its life,
 * the command loop, the envelope commands), smtp_data.c (DATA, BDAT,
 * the spool file and the commit) and smtp_auth.c (AUTH).
 */
#ifndef SMTP_SESSION_H
#define SMTP_SESSION_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <event.h>
#include <stdint.h>
#include <time.h>

#include "authlimit.h"
#include "envelope.h"
#include "msg.h"
#include "postern.h"
#include "smtp_parse.h"

#define SMTP_AUTH_DECODED_MAX	2048	/* a decoded AUTH PLAIN blob */
#define SMTP_LOG_USER_MAX	64	/* bytes of a user name in logs */
#define LIMIT_SMTP_LINE_MAX	(64 * 1024)	/* smtp-line-length's top */

enum smtp_state {
	SMTP_TLS_HANDSHAKE,	/* implicit TLS, before the greeting */
	SMTP_STARTTLS,		/* handshake after STARTTLS */
	SMTP_CMD,
	SMTP_AUTH_PLAIN,	/* waiting for the response to "334 " */
	SMTP_AUTH_USER,		/* LOGIN: the user name */
	SMTP_AUTH_PASS,		/* LOGIN: the password */
	SMTP_DATA,		/* reading message data */
	SMTP_BDAT,		/* reading a chunk */
	SMTP_QUIT		/* the last reply is going out */
};

/* What the session waits for; while it waits it reads nothing. */
enum smtp_wait {
	WAIT_NONE,
	WAIT_AUTH_SLOT,		/* in line for a slot (authlimit) */
	WAIT_AUTH,
	WAIT_AUTH_DELAY,	/* a failure, answered after a delay */
	WAIT_SENDER,
	WAIT_RCPT,
	WAIT_SPOOL,
	WAIT_COMMIT
};

#define SF_HELO		0x0001
#define SF_EHLO		0x0002
#define SF_TLS		0x0004
#define SF_AUTHED	0x0008
#define SF_MAIL		0x0010	/* a transaction is open */
#define SF_BDAT		0x0020	/* it uses BDAT */
#define SF_CLOSE	0x0040	/* free when the current event is done */
#define SF_DISCARD	0x0080	/* this BDAT chunk goes nowhere */
#define SF_LONGLINE	0x0100	/* skipping the rest of a long line */

/* Data errors beyond smtp_parse.h's SMTP_DATA_*. */
#define DATA_TOO_BIG	0x0100
#define DATA_WRITE	0x0200

struct smtp_rcpt {
	TAILQ_ENTRY(smtp_rcpt)	 entry;
	char			 addr[SMTP_PATH_MAX + 1];
	enum rcpt_kind		 kind;
	int			 notify;
	char			 orcpt[SMTP_ORCPT_MAX + 1];
};

struct smtp_session {
	RB_ENTRY(smtp_session)	 entry;
	uint32_t		 id;
	struct role_listener	*sl;
	struct io		*io;
	struct listen_client	*client;
	char			 addr[INET6_ADDRSTRLEN];
	int			 family;
	enum smtp_state		 state;
	enum smtp_wait		 wait;
	int			 flags;
	int			 badcmds;
	size_t			 maxline;	/* CR LF included */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	char			 account[ADDRESS_MAX + 1];
	char			 auth_user[ADDRESS_MAX + 1];	/* LOGIN's */
	char			 auth_log[SMTP_LOG_USER_MAX + 1];
	struct event		 ev_auth;	/* the failure delay */
	struct authlimit_wait	 auth_wait;
	struct authlimit_held	*auth_held;
	struct event		 ev_data;	/* data-timeout */

	/* The transaction. */
	struct smtp_mail_args	 mail;
	struct smtp_rcpt_args	 rcpt;		/* the one being looked up */
	TAILQ_HEAD(, smtp_rcpt)	 rcpts;
	int			 nrcpts;
	uint64_t		 spool;		/* 0: none */
	int			 spoolfd;
	uint64_t		 datasize;
	int			 data_errors;
	struct smtp_data_scan	 scan;
	int			 binary;	/* BODY=BINARYMIME */
	uint64_t		 chunk_size;
	uint64_t		 chunk_left;
	int			 chunk_last;
	const char		*discard_reply;
};

/* smtp_session.c */
long long	smtp_limit(enum limit_id);
time_t		smtp_now(void);
void		smtp_reply(struct smtp_session *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		smtp_quit(struct smtp_session *);
void		smtp_bad(struct smtp_session *, const char *);
struct smtp_session *smtp_lookup(uint32_t);
void		smtp_wait(struct smtp_session *, enum smtp_wait);
void		smtp_unwait(struct smtp_session *);
void		smtp_continue(struct smtp_session *);
int		smtp_send_storaged(struct smtp_session *, struct msg_out *);
void		smtp_close(struct smtp_session *);
void		smtp_release(struct smtp_session *);
void		smtp_tx_reset(struct smtp_session *);
int		smtp_submission(struct smtp_session *);
int		smtp_auth_offered(struct smtp_session *);

/* smtp_data.c */
int		smtp_data_in(struct smtp_session *);
int		smtp_bdat_in(struct smtp_session *);
void		smtp_cmd_data(struct smtp_session *, const char *, char *);
void		smtp_cmd_bdat(struct smtp_session *, const char *, char *);

/* smtp_auth.c */
void		smtp_auth_line(struct smtp_session *, char *);
void		smtp_cmd_auth(struct smtp_session *, const char *, char *);
void		smtp_auth_abort(struct smtp_session *);

#endif /* SMTP_SESSION_H */
