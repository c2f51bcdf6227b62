/*
 * imapd: IMAP4rev2 and IMAP4rev1 sessions on imap (STARTTLS) and imaps
 * listeners.  imapd.c holds the role and its peers, imap_session.c the
 * connection, its input framing and the state machine, imap_parse.c the
 * grammar, imap_mailbox.c the mailbox commands and the sequence map
 * kept in step with storaged, imap_fetch.c FETCH, STORE, COPY, MOVE,
 * EXPUNGE and APPEND, imap_search.c SEARCH, SORT and THREAD.
 */
#ifndef IMAPD_H
#define IMAPD_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/tree.h>

#include <netinet/in.h>

#include <event.h>
#include <stdint.h>

#include "authlimit.h"
#include "imap_parse.h"
#include "imsg.h"
#include "listen.h"
#include "msg.h"
#include "postern.h"

#define IMAPD_NAME		"Postern"
#define IMAP_AUTH_TIMEOUT	(30 * 60)	/* seconds, RFC 9051 5.4 */
#define IMAP_SASL_MAX		2048	/* a decoded AUTHENTICATE PLAIN */
#define IMAP_LOWAT		(64 * 1024)	/* resume FETCH below this */
#define IMAP_FETCH_QUEUED_MAX	(1024 * 1024)	/* then wait for LOWAT */
#define IMAP_LINE_HARD_MAX	(1024 * 1024)	/* imap-line-length's top */

struct tls;
struct imap_buf;

enum imap_state {
	IMAP_TLS_HANDSHAKE,
	IMAP_STARTTLS,
	IMAP_NOTAUTH,
	IMAP_AUTH,
	IMAP_SELECTED,
	IMAP_LOGOUT
};

/* How input is read. */
enum imap_input {
	IN_LINE,		/* a command's line */
	IN_LITERAL,		/* a literal into the command buffer */
	IN_SKIP,		/* a refused non-synchronizing literal */
	IN_SASL,		/* the answer to AUTHENTICATE's "+ " */
	IN_IDLE,		/* waiting for DONE */
	IN_APPEND,		/* a message literal into the spool file */
	IN_APPEND_NEXT		/* what follows a message literal */
};

/* What the session waits for; while it waits it reads nothing. */
enum imap_wait {
	WAIT_NONE,
	WAIT_AUTH_SLOT,		/* in line for a slot (authlimit) */
	WAIT_AUTH,
	WAIT_AUTH_DELAY,
	WAIT_SYNC,
	WAIT_MBOX,		/* MBOX_RESULT */
	WAIT_LIST,		/* MBOX_ITEM ... MBOX_END */
	WAIT_SELECT,
	WAIT_FETCH,
	WAIT_LOWAT,		/* output to drain before the next batch */
	WAIT_STORE,
	WAIT_COPY,
	WAIT_EXPUNGE,
	WAIT_SPOOL,
	WAIT_APPEND,
	WAIT_SEARCH,
	WAIT_THREAD
};

/* After a sync: */
enum imap_after {
	AFTER_CMD,		/* run the command that waited */
	AFTER_IDLE,		/* go back to IDLE */
	AFTER_DONE,		/* send the tagged reply kept in done */
	AFTER_FETCH		/* UID FETCH (VANISHED): on to the fetch */
};

#define SF_TLS		0x0001
#define SF_CLOSE	0x0002
#define SF_CONDSTORE	0x0004	/* enabled, or used */
#define SF_QRESYNC	0x0008
#define SF_UTF8		0x0010	/* UTF8=ACCEPT */
#define SF_REV2		0x0020	/* IMAP4rev2 enabled */
#define SF_READONLY	0x0040	/* EXAMINE */
#define SF_CHANGED	0x0080	/* a CHANGE came in: sync */
#define SF_LONGLINE	0x0100	/* skipping the rest of a long line */
#define SF_RESYNC	0x0200	/* skipping the rest of a refused command */
#define SF_AUTHED	0x0400

struct imap_listitem {
	uint64_t		 id;
	char			*name;		/* UTF-8 */
	char			 special[32];
	int			 subscribed;
	uint32_t		 messages;
	uint32_t		 unseen;
	uint32_t		 deleted;
	uint32_t		 uidnext;
	uint32_t		 uidvalidity;
	uint64_t		 size;
	uint64_t		 highestmodseq;
};

struct imap_uidlist {
	uint32_t		*v;
	size_t			 n;
	size_t			 cap;
};

struct imap_session {
	RB_ENTRY(imap_session)	 entry;
	uint32_t		 id;
	struct role_listener	*il;
	struct io		*io;
	struct listen_client	*client;
	char			 addr[INET6_ADDRSTRLEN];
	enum imap_state		 state;
	enum imap_input		 input;
	enum imap_wait		 wait;
	enum imap_after		 after;
	int			 flags;
	int			 badcmds;
	size_t			 maxline;	/* imap-line-length */
	char			 account[ADDRESS_MAX + 1];
	char			 auth_user[65];
	struct event		 ev_auth;
	struct authlimit_wait	 auth_wait;
	struct authlimit_held	*auth_held;

	/* The command being gathered, then the one under way. */
	char			*buf;
	size_t			 buflen;
	size_t			 bufcap;
	uint64_t		 literal_left;
	char			 tag[IMAP_TAG_MAX + 1];
	struct imap_cmd		 cmd;
	int			 has_cmd;
	char			*done;		/* tagged reply after a sync */

	/* The selected mailbox and its sequence map (seq n: uids.v[n-1]). */
	uint64_t		 mbox;
	char			*mbox_name;	/* UTF-8 */
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	uint64_t		 highestmodseq;
	struct imap_uidlist	 uids;
	struct imap_uidlist	 sync_new;	/* during a sync */
	struct imap_uidlist	 pending;	/* expunges not yet told */
	int			 sync_expunge;	/* may tell expunges now */
	struct imap_uidlist	 saved;		/* SEARCHRES $ */

	/* What a command in progress keeps. */
	void			*ctx;
	void			(*ctx_free)(void *);
};

RB_HEAD(imap_sessions, imap_session);
RB_PROTOTYPE(imap_sessions, imap_session, entry, imap_session_cmp)

/* imapd.c */
struct authlimit	*imapd_authlimit(void);
__attribute__((__noreturn__)) void imapd_malformed(struct imsg *);
uint32_t imapd_uids_read(struct imsg *, uint32_t *);

/* imap_session.c */
void	imap_session_accept(struct role_listener *, int,
	    const struct sockaddr *, socklen_t);
void	imap_session_shutdown(void);
struct imap_session *imap_session_lookup(uint32_t);
void	imap_session_auth_result(uint32_t, int, const char *);
void	imap_session_spool_fd(struct imap_session *, uint64_t, const char *,
	    int);
void	imap_reply(struct imap_session *, const char *, ...)
	    __attribute__((__format__ (printf, 2, 3)));
void	imap_write(struct imap_session *, const void *, size_t);
void	imap_tagged(struct imap_session *, const char *, const char *, ...)
	    __attribute__((__format__ (printf, 3, 4)));
void	imap_bad(struct imap_session *, const char *);
void	imap_wait(struct imap_session *, enum imap_wait);
void	imap_done(struct imap_session *);
void	imap_continue(struct imap_session *);
void	imap_close(struct imap_session *);
void	imap_release(struct imap_session *);
int	imap_send_storaged(struct imap_session *, struct msg_out *);
void	imap_ctx_set(struct imap_session *, void *, void (*)(void *));
void	imap_ctx_clear(struct imap_session *);
void	imap_run_command(struct imap_session *);
void	imap_capabilities(struct imap_session *, char *, size_t);
int	imap_selected(struct imap_session *);

/* imap_mailbox.c */
void	imap_cmd_list(struct imap_session *);
void	imap_cmd_status(struct imap_session *);
void	imap_cmd_select(struct imap_session *);
void	imap_cmd_mailbox(struct imap_session *);
void	imap_cmd_close(struct imap_session *);
void	imap_cmd_unselect(struct imap_session *);
void	imap_deselect(struct imap_session *);
void	imap_sync_start(struct imap_session *, enum imap_after, int);
void	imap_mbox_result(struct imap_session *, struct imsg *);
void	imap_mbox_item(struct imap_session *, struct imsg *);
void	imap_mbox_end(struct imap_session *, struct imsg *);
void	imap_mbox_selected(struct imap_session *, struct imsg *);
void	imap_mbox_uids(struct imap_session *, struct imsg *);
void	imap_sync_flags(struct imap_session *, struct imsg *);
void	imap_sync_vanished(struct imap_session *, struct imsg *);
void	imap_sync_end(struct imap_session *, struct imsg *);
void	imap_change(struct imap_session *, struct imsg *);
char	*imap_mailbox_in(struct imap_session *, const char *);
void	imap_mailbox_out(struct imap_session *, struct imap_buf *,
	    const char *);
size_t	imap_seq_of_uid(struct imap_session *, uint32_t);
size_t	imap_seq_of_uid_next(struct imap_session *, uint32_t, size_t *);
int	imap_set_uids(struct imap_session *, const struct imap_seqset *, int,
	    struct imap_uidlist *);
void	imap_uidlist_free(struct imap_uidlist *);
int	imap_uidlist_add(struct imap_uidlist *, uint32_t);
size_t	imap_ranges_add(struct imap_session *, struct msg_out *,
	    const uint32_t *, size_t, size_t);
int	imap_ranges_add_all(struct imap_session *, struct msg_out *,
	    const uint32_t *, size_t);
void	imap_set_format(struct imap_buf *, const uint32_t *, size_t);
void	imap_flags_reply(struct imap_session *, uint32_t, uint64_t,
	    const char *);

/* imap_fetch.c */
void	imap_cmd_fetch(struct imap_session *);
void	imap_cmd_store(struct imap_session *);
void	imap_cmd_copy(struct imap_session *);
void	imap_cmd_expunge(struct imap_session *);
void	imap_cmd_append(struct imap_session *);
void	imap_append_begin(struct imap_session *, struct imap_cmd *,
	    uint64_t, int, int);
void	imap_append_data(struct imap_session *);
void	imap_append_next(struct imap_session *, char *, size_t);
void	imap_append_abort(struct imap_session *);
void	imap_fetch_mime(struct imap_session *, struct imsg *);
void	imap_fetch_part(struct imap_session *, struct imsg *);
void	imap_fetch_item(struct imap_session *, struct imsg *);
void	imap_fetch_end(struct imap_session *, struct imsg *);
void	imap_fetch_lowat(struct imap_session *);
void	imap_fetch_vanished(struct imap_session *, const uint32_t *, size_t);
void	imap_fetch_resume(struct imap_session *);
void	imap_store_item(struct imap_session *, struct imsg *);
void	imap_store_modified(struct imap_session *, struct imsg *);
void	imap_store_end(struct imap_session *, struct imsg *);
void	imap_copy_uids(struct imap_session *, struct imsg *);
void	imap_copy_result(struct imap_session *, struct imsg *);
void	imap_append_result(struct imap_session *, struct imsg *);

/* imap_search.c */
void	imap_cmd_search(struct imap_session *);
void	imap_search_uids(struct imap_session *, struct imsg *);
void	imap_search_end(struct imap_session *, struct imsg *);
void	imap_thread_data(struct imap_session *, struct imsg *);
void	imap_thread_end(struct imap_session *, struct imsg *);

#endif /* IMAPD_H */
