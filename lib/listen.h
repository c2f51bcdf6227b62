/*
 * A role's listening sockets: the TLS context of each, built before the
 * sandbox, and the accept event shared by smtpd and imapd, which stops
 * accepting for a while when descriptors run out; and the count of
 * sessions, in all and per client address, that their limits bound.
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
int	listen_take(int, struct sockaddr *, socklen_t *, const char *);
void	listen_pause(void);
/* Also called when a session ends, since a descriptor is free again. */
void	listen_resume(void);

/* The client's address as text, and its family (AF_INET if v4-mapped). */
int	listen_addr(const struct sockaddr *, char *, size_t);

struct listen_client;

/*
 * Counts a new session from addr, or returns NULL with why set to the
 * reason to refuse it when it would pass max sessions in all or
 * max_client from that address.  The session gives it back with
 * listen_client_put() when it ends.
 */
struct listen_client	*listen_client_get(const char *, unsigned int,
			    unsigned int, const char **);
void			 listen_client_put(struct listen_client *);

#endif
