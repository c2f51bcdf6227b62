/*
 * A role's listening sockets: the TLS context of each, built before the
 * sandbox, and the accept event shared by smtpd and imapd, which stops
 * accepting for a while when descriptors run out.
 */
#ifndef LISTEN_H
#define LISTEN_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <event.h>

#include "postern.h"

#define LISTEN_ACCEPT_PAUSE_MS	1000	/* after EMFILE and its kin */

struct tls;

/* One bound socket and, when it has a certificate, its TLS context. */
struct role_listener {
	TAILQ_ENTRY(role_listener) entry;
	struct listener		*l;
	struct tls		*tls;
	struct event		 ev;
};

/* Gets each accepted, non-blocking socket with TCP_NODELAY set. */
typedef void	(*listen_accept_cb)(struct role_listener *, int,
		    const struct sockaddr *, socklen_t);

/*
 * Takes every listener of the configuration that belongs to role, builds
 * its TLS context (one of kind implicit_tls must have a certificate) and
 * starts accepting.
 */
void	listen_init(struct postern_conf *, enum proc_id, enum listener_kind,
	    listen_accept_cb);
void	listen_pause(void);
/* Also called when a session ends, since a descriptor is free again. */
void	listen_resume(void);

#endif
