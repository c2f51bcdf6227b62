/*
 * control: serves posternctl on the control socket the parent bound.
 * Each client says hello with the protocol version, then sends requests
 * one at a time.  Control checks each request's shape and syntax, tags
 * it with the client's id and forwards it to the parent, queue or
 * storaged, whose replies it relays to the client with that id.  The
 * one reply that carries a descriptor, a message's blob for message
 * show, is passed on with it.  A client that breaks the protocol is
 * dropped; the daemon never is.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_valid.h"
#include "listen.h"
#include "log.h"
#include "parent.h"

#define CONTROL_MAX_CLIENTS	64
#define CONTROL_MAX_QUEUED	65536	/* replies waiting for a slow client */
#define CONTROL_BACKOFF_SEC	1	/* out of descriptors: pause accept */
#define CONTROL_DRAIN_MS	500	/* at shutdown, for the last replies */

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	uint32_t		 id;
	struct imsgbuf		 ibuf;
	struct event		 ev;
	short			 events;
	int			 hello;		/* version agreed */
	int			 pending;	/* a request is forwarded */
	uint32_t		 pending_type;	/* and its type */
	enum proc_id		 pending_to;	/* and who answers it */
	int			 closing;	/* flush, then close */
};
TAILQ_HEAD(ctl_clients, ctl_client);

/* What a request carries, and who answers it. */
enum ctl_shape {
	SHAPE_EMPTY,
	SHAPE_DOMAIN,
	SHAPE_ADDRESS,
	SHAPE_ADDRESS_PASSWORD,
	SHAPE_ALIAS_TARGET,
	SHAPE_ALIAS_OPT_TARGET,
	SHAPE_QUEUE_ID,
	SHAPE_QUEUE_ID_OR_ALL,
	SHAPE_ADDRESS_MAILBOX,
	SHAPE_ADDRESS_MAILBOX_UID
};

struct control_request {
	uint32_t	 type;
	enum ctl_shape	 shape;
	enum proc_id	 to;
};

static const struct control_request control_requests[] = {
	{ IMSG_CTL_SHOW_STATUS,		SHAPE_EMPTY,		PROC_PARENT },
	{ IMSG_CTL_RELOAD,		SHAPE_EMPTY,		PROC_PARENT },
	{ IMSG_CTL_STOP,		SHAPE_EMPTY,		PROC_PARENT },
	{ IMSG_CTL_LOG_VERBOSE,		SHAPE_EMPTY,		PROC_PARENT },
	{ IMSG_CTL_LOG_BRIEF,		SHAPE_EMPTY,		PROC_PARENT },
	{ IMSG_CTL_DOMAIN_ADD,		SHAPE_DOMAIN,		PROC_STORAGED },
	{ IMSG_CTL_DOMAIN_DEL,		SHAPE_DOMAIN,		PROC_STORAGED },
	{ IMSG_CTL_DOMAIN_LIST,		SHAPE_EMPTY,		PROC_STORAGED },
	{ IMSG_CTL_ACCOUNT_ADD,	SHAPE_ADDRESS_PASSWORD,	PROC_STORAGED },
	{ IMSG_CTL_ACCOUNT_DEL,		SHAPE_ADDRESS,		PROC_STORAGED },
	{ IMSG_CTL_ACCOUNT_LIST,	SHAPE_EMPTY,		PROC_STORAGED },
	{ IMSG_CTL_ACCOUNT_PASSWD, SHAPE_ADDRESS_PASSWORD,	PROC_STORAGED },
	{ IMSG_CTL_ALIAS_ADD,		SHAPE_ALIAS_TARGET,	PROC_STORAGED },
	{ IMSG_CTL_ALIAS_DEL,	SHAPE_ALIAS_OPT_TARGET,	PROC_STORAGED },
	{ IMSG_CTL_ALIAS_LIST,		SHAPE_EMPTY,		PROC_STORAGED },
	{ IMSG_CTL_SHOW_QUEUE,		SHAPE_EMPTY,		PROC_QUEUE },
	{ IMSG_CTL_QUEUE_REMOVE,	SHAPE_QUEUE_ID,		PROC_QUEUE },
	{ IMSG_CTL_QUEUE_SCHEDULE,	SHAPE_QUEUE_ID_OR_ALL,	PROC_QUEUE },
	{ IMSG_CTL_MAILBOX_LIST,	SHAPE_ADDRESS,		PROC_STORAGED },
	{ IMSG_CTL_MESSAGE_LIST,	SHAPE_ADDRESS_MAILBOX,	PROC_STORAGED },
	{ IMSG_CTL_MESSAGE_SHOW, SHAPE_ADDRESS_MAILBOX_UID,	PROC_STORAGED },
};

#define CONTROL_NREQUESTS \
	(sizeof(control_requests) / sizeof(control_requests[0]))

static struct ctl_clients	 ctl_clients =
				    TAILQ_HEAD_INITIALIZER(ctl_clients);
static int			 ctl_nclients;
static uint32_t			 ctl_next_id = 1;
static int			 ctl_listen_fd = -1;
static struct event		 ctl_ev_accept;
static struct event		 ctl_ev_backoff;

static void	control_accept(int, short, void *);
static void	control_client_event(int, short, void *);
static void	control_client_close(struct ctl_client *);

static struct ctl_client *
control_client_find(uint32_t id)
{
	struct ctl_client	*c;

	TAILQ_FOREACH(c, &ctl_clients, entry)
		if (c->id == id)
			return c;
	return NULL;
}

static uint32_t
control_client_new_id(void)
{
	uint32_t	 id;

	/* 0 is never a client; skip ids still in use after a wrap. */
	do {
		id = ctl_next_id++;
	} while (id == 0 || control_client_find(id) != NULL);
	return id;
}

static void
control_client_update(struct ctl_client *c)
{
	short	 events = 0;

	if (!c->closing)
		events |= EV_READ;
	if (imsgbuf_queued(&c->ibuf))
		events |= EV_WRITE;
	if (events == c->events)
		return;
	if (c->events != 0)
		event_del(&c->ev);
	c->events = events;
	if (events == 0)
		return;
	event_set(&c->ev, c->ibuf.fd, events | EV_PERSIST,
	    control_client_event, c);
	event_add(&c->ev, NULL);
}

static void
control_client_close(struct ctl_client *c)
{
	log_debug("client %u: closed", c->id);
	if (c->events != 0)
		event_del(&c->ev);
	TAILQ_REMOVE(&ctl_clients, c, entry);
	ctl_nclients--;
	close(c->ibuf.fd);
	imsgbuf_clear(&c->ibuf);
	/* Its read buffer may have held a password. */
	freezero(c, sizeof(*c));

	/* A slot is free again. */
	if (ctl_listen_fd != -1 && !evtimer_pending(&ctl_ev_backoff, NULL) &&
	    !event_pending(&ctl_ev_accept, EV_READ, NULL))
		event_add(&ctl_ev_accept, NULL);
}

/*
 * Queues a reply to a client, with fd (or -1), which is the client's
 * buffer's from here on; drops a client that does not read.
 */
static int
control_client_send_fd(struct ctl_client *c, uint32_t type, int fd,
    const void *data, size_t len)
{
	if (c->ibuf.queued >= CONTROL_MAX_QUEUED) {
		log_warnx("client %u: not reading its replies, dropped",
		    c->id);
		if (fd != -1)
			close(fd);
		control_client_close(c);
		return -1;
	}
	if (imsg_compose(&c->ibuf, type, 0, fd, data, len) == -1)
		fatal("%s: imsg_compose", __func__);
	control_client_update(c);
	return 0;
}

static int
control_client_send(struct ctl_client *c, uint32_t type, const void *data,
    size_t len)
{
	return control_client_send_fd(c, type, -1, data, len);
}

static int
control_client_fail(struct ctl_client *c, const char *text)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_CTL_FAIL, 0, -1);
	msg_add_string(&m, text);
	if (m.overflow)
		fatalx("%s: reply too long", __func__);
	return control_client_send(c, IMSG_CTL_FAIL, m.buf, m.len);
}

/* Answers, then closes once the answer is written. */
static void
control_client_refuse(struct ctl_client *c, const char *text)
{
	if (control_client_fail(c, text) == -1)
		return;
	c->closing = 1;
	control_client_update(c);
}

static void
control_client_drop(struct ctl_client *c, const char *why)
{
	log_warnx("client %u: %s, dropped", c->id, why);
	control_client_close(c);
}

static const struct control_request *
control_request_lookup(uint32_t type)
{
	size_t	 i;

	for (i = 0; i < CONTROL_NREQUESTS; i++)
		if (control_requests[i].type == type)
			return &control_requests[i];
	return NULL;
}

/*
 * Checks a request's payload against its shape and syntax.  Returns 0,
 * or -1 with a message for the client in err.  A payload of the wrong
 * shape is a broken client rather than a typo: *broken is set.
 */
static int
control_request_check(const struct control_request *req, struct imsg *imsg,
    int *broken, char *err, size_t errlen)
{
	struct msg_in	 m;
	const char	*a = NULL, *b = NULL;
	char		 why[CTL_ERR_MAX];
	uint32_t	 uid = 0;

	*broken = 0;
	msg_read(&m, imsg);
	switch (req->shape) {
	case SHAPE_EMPTY:
		break;
	case SHAPE_DOMAIN:
	case SHAPE_ADDRESS:
	case SHAPE_QUEUE_ID:
	case SHAPE_QUEUE_ID_OR_ALL:
		(void)msg_get_string(&m, &a);
		break;
	case SHAPE_ADDRESS_PASSWORD:
	case SHAPE_ALIAS_TARGET:
	case SHAPE_ALIAS_OPT_TARGET:
	case SHAPE_ADDRESS_MAILBOX:
		(void)msg_get_string(&m, &a);
		(void)msg_get_string(&m, &b);
		break;
	case SHAPE_ADDRESS_MAILBOX_UID:
		(void)msg_get_string(&m, &a);
		(void)msg_get_string(&m, &b);
		(void)msg_get_u32(&m, &uid);
		break;
	}
	if (msg_end(&m) == -1) {
		*broken = 1;
		snprintf(err, errlen, "malformed %s",
		    imsg_type_name(imsg->hdr.type));
		return -1;
	}

	switch (req->shape) {
	case SHAPE_EMPTY:
		return 0;
	case SHAPE_DOMAIN:
		if (ctl_valid_domain(a, why, sizeof(why)) == -1)
			goto bad_domain;
		return 0;
	case SHAPE_ADDRESS:
		if (ctl_valid_address(a, why, sizeof(why)) == -1)
			goto bad_address;
		return 0;
	case SHAPE_ADDRESS_PASSWORD:
		if (ctl_valid_address(a, why, sizeof(why)) == -1)
			goto bad_address;
		if (ctl_valid_password(b, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "invalid password: %s", why);
			return -1;
		}
		return 0;
	case SHAPE_ALIAS_TARGET:
	case SHAPE_ALIAS_OPT_TARGET:
		if (ctl_valid_alias(a, why, sizeof(why)) == -1)
			goto bad_address;
		if (req->shape == SHAPE_ALIAS_OPT_TARGET && *b == '\0')
			return 0;
		if (ctl_valid_address(b, why, sizeof(why)) == -1)
			goto bad_address;
		return 0;
	case SHAPE_QUEUE_ID_OR_ALL:
		if (strcmp(a, "all") == 0)
			return 0;
		/* FALLTHROUGH */
	case SHAPE_QUEUE_ID:
		if (ctl_valid_queue_id(a, NULL, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "invalid queue id: %s", why);
			return -1;
		}
		return 0;
	case SHAPE_ADDRESS_MAILBOX:
	case SHAPE_ADDRESS_MAILBOX_UID:
		if (ctl_valid_address(a, why, sizeof(why)) == -1)
			goto bad_address;
		if (ctl_valid_mailbox(b, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "invalid mailbox: %s", why);
			return -1;
		}
		if (req->shape == SHAPE_ADDRESS_MAILBOX_UID && uid == 0) {
			snprintf(err, errlen, "invalid uid: uid must be a "
			    "number from 1 to 4294967295");
			return -1;
		}
		return 0;
	}
	return 0;

 bad_domain:
	snprintf(err, errlen, "invalid domain: %s", why);
	return -1;
 bad_address:
	snprintf(err, errlen, "invalid address: %s", why);
	return -1;
}

/* Returns -1 if the client is gone or on its way out. */
static int
control_hello(struct ctl_client *c, struct imsg *imsg)
{
	struct msg_in	 m;
	uint32_t	 version;
	char		 text[128];

	msg_read(&m, imsg);
	if (msg_get_u32(&m, &version) == -1 || msg_end(&m) == -1) {
		control_client_drop(c, "malformed IMSG_CTL_HELLO");
		return -1;
	}
	if (version != POSTERN_CTL_VERSION) {
		snprintf(text, sizeof(text), "protocol version mismatch "
		    "(posternctl %u, daemon %u)", version,
		    (unsigned)POSTERN_CTL_VERSION);
		log_warnx("client %u: %s", c->id, text);
		control_client_refuse(c, text);
		return -1;
	}
	c->hello = 1;
	return control_client_send(c, IMSG_CTL_OK, NULL, 0);
}

/* Returns -1 if the client is gone. */
static int
control_request(struct ctl_client *c, struct imsg *imsg)
{
	const struct control_request	*req;
	char				 err[256];
	int				 broken;

	if (imsg->hdr.type == IMSG_CTL_HELLO) {
		if (c->hello) {
			control_client_drop(c, "second hello");
			return -1;
		}
		return control_hello(c, imsg);
	}
	if (!c->hello) {
		control_client_drop(c, "request before hello");
		return -1;
	}
	if ((req = control_request_lookup(imsg->hdr.type)) == NULL) {
		log_warnx("client %u: %s is not a request, dropped", c->id,
		    imsg_type_name(imsg->hdr.type));
		control_client_close(c);
		return -1;
	}
	if (c->pending) {
		control_client_drop(c, "request while another is pending");
		return -1;
	}
	if (control_request_check(req, imsg, &broken, err,
	    sizeof(err)) == -1) {
		if (broken) {
			control_client_drop(c, err);
			return -1;
		}
		log_debug("client %u: %s refused: %s", c->id,
		    imsg_type_name(imsg->hdr.type), err);
		return control_client_fail(c, err);
	}
	log_debug("client %u: %s to %s", c->id,
	    imsg_type_name(imsg->hdr.type), proc_names[req->to]);
	if (proc_compose(req->to, imsg->hdr.type, c->id, -1, imsg->data,
	    imsg->datalen) == -1)
		fatal("%s: forward to %s", __func__, proc_names[req->to]);
	c->pending = 1;
	c->pending_type = imsg->hdr.type;
	c->pending_to = req->to;
	return 0;
}

static void
control_client_event(int fd, short event, void *arg)
{
	struct ctl_client	*c = arg;
	struct imsg		 imsg;
	ssize_t			 n;
	int			 secret, gone;

	(void)fd;
	if (event & EV_WRITE) {
		if (imsgbuf_write(&c->ibuf) == -1) {
			log_debug("client %u: write: %s", c->id,
			    strerror(errno));
			control_client_close(c);
			return;
		}
		if (c->closing && !imsgbuf_queued(&c->ibuf)) {
			control_client_close(c);
			return;
		}
	}
	if ((event & EV_READ) && !c->closing) {
		n = imsgbuf_read(&c->ibuf);
		if (n == -1 && errno != EAGAIN) {
			control_client_drop(c, strerror(errno));
			return;
		}
		if (n == 0) {
			control_client_close(c);
			return;
		}
		for (;;) {
			if ((n = imsg_get(&c->ibuf, &imsg)) == -1) {
				control_client_drop(c, "malformed or "
				    "oversize message");
				return;
			}
			if (n == 0)
				break;
			if (imsg.fd != -1) {
				close(imsg.fd);
				imsg.fd = -1;
				imsg_free(&imsg);
				control_client_drop(c, "passed a descriptor");
				return;
			}
			secret = imsg.hdr.type == IMSG_CTL_ACCOUNT_ADD ||
			    imsg.hdr.type == IMSG_CTL_ACCOUNT_PASSWD;
			gone = control_request(c, &imsg) == -1;
			if (secret)
				explicit_bzero(imsg.data, imsg.datalen);
			imsg_free(&imsg);
			if (gone)
				return;
			if (secret)
				explicit_bzero(c->ibuf.rbuf + c->ibuf.rlen,
				    sizeof(c->ibuf.rbuf) - c->ibuf.rlen);
		}
	}
	control_client_update(c);
}

static int
control_peer_uid(int fd, uid_t *uid)
{
#ifdef __linux__
	struct ucred	 cred;
	socklen_t	 len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return -1;
	*uid = cred.uid;
	return 0;
#else
	gid_t		 gid;

	return getpeereid(fd, uid, &gid);
#endif
}

static void
control_backoff(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	event_add(&ctl_ev_accept, NULL);
}

static void
control_accept(int fd, short event, void *arg)
{
	struct ctl_client	*c;
	struct timeval		 tv;
	uid_t			 uid;
	int			 s;

	(void)event;
	(void)arg;
	if ((s = listen_take(fd, NULL, NULL, "the control socket")) < 0) {
		if (s == -2) {
			/* Retry later rather than spin on a ready socket. */
			event_del(&ctl_ev_accept);
			tv.tv_sec = CONTROL_BACKOFF_SEC;
			tv.tv_usec = 0;
			evtimer_add(&ctl_ev_backoff, &tv);
		}
		return;
	}
	if (ctl_nclients >= CONTROL_MAX_CLIENTS) {
		log_warnx("control: %d clients already, refusing another",
		    ctl_nclients);
		close(s);
		event_del(&ctl_ev_accept);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s: calloc", __func__);
	imsgbuf_init(&c->ibuf, s);
	c->id = control_client_new_id();
	TAILQ_INSERT_TAIL(&ctl_clients, c, entry);
	ctl_nclients++;

	if (control_peer_uid(s, &uid) == -1) {
		control_client_drop(c, "cannot read peer credentials");
		return;
	}
	if (uid != 0) {
		log_warnx("client %u: uid %u refused", c->id, (unsigned)uid);
		control_client_refuse(c, "permission denied");
		return;
	}
	log_debug("client %u: connected", c->id);
	control_client_update(c);
}

/*
 * A reply from the parent, queue or storaged, for the client with its
 * peer id.  A descriptor comes only with message show's OK and goes to
 * the client with it; any other is closed.
 */
static void
control_relay(struct proc_peer *peer, struct imsg *imsg)
{
	struct ctl_client	*c;
	int			 fd = imsg->fd;

	imsg->fd = -1;
	switch (imsg->hdr.type) {
	case IMSG_CTL_OK:
	case IMSG_CTL_FAIL:
	case IMSG_CTL_ITEM:
	case IMSG_CTL_END:
		break;
	default:
		proc_unexpected(peer, imsg);
	}
	if ((c = control_client_find(imsg->hdr.peerid)) == NULL) {
		log_debug("reply %s for client %u, gone",
		    imsg_type_name(imsg->hdr.type), imsg->hdr.peerid);
		goto closefd;
	}
	if (!c->pending || c->pending_to != peer->id) {
		control_client_drop(c, "reply without a request");
		goto closefd;
	}
	if (fd != -1 && (imsg->hdr.type != IMSG_CTL_OK ||
	    c->pending_type != IMSG_CTL_MESSAGE_SHOW)) {
		log_warnx("%s from %s came with a descriptor, closed",
		    imsg_type_name(imsg->hdr.type), proc_names[peer->id]);
		close(fd);
		fd = -1;
	}
	if (imsg->hdr.type != IMSG_CTL_ITEM)
		c->pending = 0;
	control_client_send_fd(c, imsg->hdr.type, fd, imsg->data,
	    imsg->datalen);
	return;

 closefd:
	if (fd != -1)
		close(fd);
}

static void
control_dispatch_parent(struct proc_peer *peer, struct imsg *imsg)
{
	control_relay(peer, imsg);
}

static void
control_dispatch_queue(struct proc_peer *peer, struct imsg *imsg)
{
	control_relay(peer, imsg);
}

static void
control_dispatch_storaged(struct proc_peer *peer, struct imsg *imsg)
{
	control_relay(peer, imsg);
}

static void
control_init(struct postern_conf *conf)
{
	int	 flags;

	(void)conf;
	ctl_listen_fd = PROC_FD_CONTROL_SOCKET;
	if ((flags = fcntl(ctl_listen_fd, F_GETFL)) == -1 ||
	    fcntl(ctl_listen_fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: control socket", __func__);
	if (fcntl(ctl_listen_fd, F_SETFD, FD_CLOEXEC) == -1)
		fatal("%s: control socket", __func__);
	event_set(&ctl_ev_accept, ctl_listen_fd, EV_READ | EV_PERSIST,
	    control_accept, NULL);
	event_add(&ctl_ev_accept, NULL);
	evtimer_set(&ctl_ev_backoff, control_backoff, NULL);
}

/*
 * On the way out (stop from posternctl), the parent's last reply may be
 * unread on its channel: relay what is there and give clients a moment
 * to take it, so "posternctl stop" hears its OK.
 */
static void
control_shutdown(void)
{
	struct proc_peer	*peer = proc_peers[PROC_PARENT];
	struct ctl_client	*c;
	struct imsg		 imsg;
	struct pollfd		 pfd;
	ssize_t			 n;

	if (peer != NULL) {
		while ((n = imsgbuf_read(&peer->ibuf)) > 0)
			;
		while (imsg_get(&peer->ibuf, &imsg) > 0) {
			switch (imsg.hdr.type) {
			case IMSG_CTL_OK:
			case IMSG_CTL_FAIL:
			case IMSG_CTL_ITEM:
			case IMSG_CTL_END:
				control_relay(peer, &imsg);
				break;
			}
			imsg_free(&imsg);
		}
	}
	TAILQ_FOREACH(c, &ctl_clients, entry) {
		while (imsgbuf_queued(&c->ibuf)) {
			if (imsgbuf_write(&c->ibuf) == -1)
				break;
			if (!imsgbuf_queued(&c->ibuf))
				break;
			pfd.fd = c->ibuf.fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, CONTROL_DRAIN_MS) <= 0)
				break;
		}
	}
}

const struct proc_role control_role = {
	.id = PROC_CONTROL,
	.init = control_init,
	.shutdown = control_shutdown,
	.dispatch = {
		[PROC_PARENT] = control_dispatch_parent,
		[PROC_QUEUE] = control_dispatch_queue,
		[PROC_STORAGED] = control_dispatch_storaged,
	},
};
