/*
 * smtpd: SMTP inbound (smtp) and submission (submission, submissions)
 * sessions.  smtpd.c holds the role and its peers, smtp_session.c the
 * sessions (with smtp_data.c and smtp_auth.c, see smtp_session.h),
 * smtp_parse.c the command arguments and the data framing.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <sys/types.h>
#include <sys/socket.h>

#include <event.h>
#include <stdint.h>

#include "listen.h"
#include "postern.h"

#define SMTPD_NAME		"Postern"
#define SMTPD_SPOOL_WRITE_MAX	(64 * 1024)	/* spool writes at once */

struct tls;

/* smtpd.c */
struct authlimit	*smtpd_authlimit(void);

/* smtp_session.c */
void	smtp_session_accept(struct role_listener *, int,
	    const struct sockaddr *, socklen_t);
void	smtp_session_auth_result(uint32_t, int, const char *);
void	smtp_session_sender_result(uint32_t, int);
void	smtp_session_rcpt_result(uint32_t, uint32_t);
void	smtp_session_spool_fd(uint32_t, uint64_t, const char *, int);
void	smtp_session_commit_result(uint32_t, int, uint64_t, const char *);
void	smtp_session_shutdown(void);

#endif /* SMTPD_H */
