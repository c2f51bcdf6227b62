/*
 * The listening side of smtpd and imapd: one event per bound socket,
 * paused for LISTEN_ACCEPT_PAUSE_MS when accept(2) runs out of
 * descriptors or memory, and resumed early when a session ends; and the
 * sessions counted per client address, in a tree of the addresses that
 * have one.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "tls_conf.h"

struct listen_client {
	RB_ENTRY(listen_client)	 entry;
	char			 addr[INET6_ADDRSTRLEN];
	unsigned int		 sessions;
};

RB_HEAD(listen_clients, listen_client);

static int
listen_client_cmp(struct listen_client *a, struct listen_client *b)
{
	return strcmp(a->addr, b->addr);
}

RB_GENERATE(listen_clients, listen_client, entry, listen_client_cmp)

static struct listen_clients		listen_clients =
    RB_INITIALIZER(&listen_clients);
static unsigned int			listen_nsessions;
static TAILQ_HEAD(, role_listener)	listen_listeners =
    TAILQ_HEAD_INITIALIZER(listen_listeners);
static listen_accept_cb			listen_cb;
static struct event			listen_ev_pause;
static int				listen_paused;

/*
 * accept4(), non-blocking, of a listening socket: the new one, -1 if
 * there is none to take now, or -2 out of descriptors (logged, with
 * what the socket is): the caller stops accepting for a while rather
 * than spin on a socket that stays ready.  Anything else is fatal.
 */
int
listen_take(int fd, struct sockaddr *sa, socklen_t *len, const char *what)
{
	int	 s;

	if ((s = accept4(fd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1)
		return s;
	switch (errno) {
	case EINTR:
	case EAGAIN:
	case ECONNABORTED:
		return -1;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		log_warn("accept on %s", what);
		return -2;
	default:
		fatal("accept on %s", what);
	}
}

static void
listen_accept(int fd, short event, void *arg)
{
	struct role_listener	*rl = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	char			 what[128];
	int			 s, one = 1;

	(void)snprintf(what, sizeof(what), "%s port %u", rl->l->addr,
	    rl->l->port);
	if ((s = listen_take(fd, (struct sockaddr *)&ss, &len, what)) < 0) {
		if (s == -2)
			listen_pause();
		return;
	}
	/*
	 * Replies often leave in several writes as storaged answers
	 * (pipelined SMTP replies, untagged IMAP lines then the tagged
	 * one): with Nagle each later write waits for the client's
	 * delayed ACK.
	 */
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("%s: TCP_NODELAY", __func__);
	listen_cb(rl, s, (struct sockaddr *)&ss, len);
}

static void
listen_accept_timeout(int fd, short event, void *arg)
{
	listen_resume();
}

void
listen_pause(void)
{
	struct role_listener	*rl;
	struct timeval		 tv;

	if (listen_paused)
		return;
	listen_paused = 1;
	TAILQ_FOREACH(rl, &listen_listeners, entry)
		event_del(&rl->ev);
	tv.tv_sec = LISTEN_ACCEPT_PAUSE_MS / 1000;
	tv.tv_usec = (LISTEN_ACCEPT_PAUSE_MS % 1000) * 1000;
	evtimer_set(&listen_ev_pause, listen_accept_timeout, NULL);
	evtimer_add(&listen_ev_pause, &tv);
}

void
listen_resume(void)
{
	struct role_listener	*rl;

	if (!listen_paused)
		return;
	listen_paused = 0;
	evtimer_del(&listen_ev_pause);
	TAILQ_FOREACH(rl, &listen_listeners, entry)
		event_add(&rl->ev, NULL);
}

void
listen_init(struct postern_conf *conf, enum proc_id role,
    enum listener_kind implicit_tls, listen_accept_cb cb)
{
	struct role_listener	*rl;
	struct listener		*l;
	char			 err[512];
	int			 flags;

	listen_cb = cb;
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->fd == -1 || listener_proc(l->kind) != role)
			continue;
		if ((rl = calloc(1, sizeof(*rl))) == NULL)
			fatal("%s: calloc", __func__);
		rl->l = l;
		if (l->tls_cert != NULL && l->tls_key != NULL) {
			if ((rl->tls = tls_conf_listener(l, err,
			    sizeof(err))) == NULL)
				fatalx("%s", err);
			/* The context keeps its own copy of the key. */
			freezero(l->tls_key, l->tls_keylen);
			l->tls_key = NULL;
			l->tls_keylen = 0;
		} else if (l->kind == implicit_tls)
			fatalx("%s %s port %u: no TLS certificate",
			    listener_kind_names[l->kind], l->addr, l->port);
		if ((flags = fcntl(l->fd, F_GETFL)) == -1 ||
		    fcntl(l->fd, F_SETFL, flags | O_NONBLOCK) == -1)
			fatal("%s: fcntl", __func__);
		event_set(&rl->ev, l->fd, EV_READ | EV_PERSIST, listen_accept,
		    rl);
		event_add(&rl->ev, NULL);
		TAILQ_INSERT_TAIL(&listen_listeners, rl, entry);
		log_debug("listening on %s port %u (%s%s)", l->addr, l->port,
		    listener_kind_names[l->kind], rl->tls ? ", TLS" : "");
	}
}

int
listen_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in6	*sin6;
	struct in_addr			 in;
	int				 family = sa->sa_family;

	switch (sa->sa_family) {
	case AF_INET:
		if (inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->
		    sin_addr, buf, len) != NULL)
			return family;
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(&in, &sin6->sin6_addr.s6_addr[12], sizeof(in));
			family = AF_INET;
			if (inet_ntop(AF_INET, &in, buf, len) != NULL)
				return family;
		} else if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
		    len) != NULL)
			return family;
		break;
	}
	(void)strlcpy(buf, "unknown", len);
	return family;
}

struct listen_client *
listen_client_get(const char *addr, unsigned int max,
    unsigned int max_client, const char **why)
{
	struct listen_client	 key, *c;

	if (listen_nsessions >= max) {
		*why = "Too many sessions";
		return NULL;
	}
	(void)strlcpy(key.addr, addr, sizeof(key.addr));
	if ((c = RB_FIND(listen_clients, &listen_clients, &key)) == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			*why = "Out of memory";
			return NULL;
		}
		(void)strlcpy(c->addr, addr, sizeof(c->addr));
		RB_INSERT(listen_clients, &listen_clients, c);
	}
	if (c->sessions >= max_client) {
		if (c->sessions == 0) {
			RB_REMOVE(listen_clients, &listen_clients, c);
			free(c);
		}
		*why = "Too many sessions from your address";
		return NULL;
	}
	c->sessions++;
	listen_nsessions++;
	return c;
}

void
listen_client_put(struct listen_client *c)
{
	listen_nsessions--;
	if (--c->sessions > 0)
		return;
	RB_REMOVE(listen_clients, &listen_clients, c);
	free(c);
}
