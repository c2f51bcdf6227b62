/*
 * Worker start-up and the peer channels every role shares.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

const char *proc_names[PROC_MAX] = {
	[PROC_PARENT] = "parent",
	[PROC_CONTROL] = "control",
	[PROC_SMTPD] = "smtpd",
	[PROC_QUEUE] = "queue",
	[PROC_IMAPD] = "imapd",
	[PROC_JMAPD] = "jmapd",
	[PROC_DAVD] = "davd",
	[PROC_STORAGED] = "storaged",
};

/* Who talks to whom; the parent makes a socketpair for each 1 here. */
#define L(a, b)	[a][b] = 1, [b][a] = 1
const int proc_links[PROC_MAX][PROC_MAX] = {
	L(PROC_PARENT, PROC_CONTROL),
	L(PROC_PARENT, PROC_SMTPD),
	L(PROC_PARENT, PROC_QUEUE),
	L(PROC_PARENT, PROC_IMAPD),
	L(PROC_PARENT, PROC_JMAPD),
	L(PROC_PARENT, PROC_DAVD),
	L(PROC_PARENT, PROC_STORAGED),
	L(PROC_CONTROL, PROC_STORAGED),
	L(PROC_CONTROL, PROC_QUEUE),
	L(PROC_SMTPD, PROC_QUEUE),
	L(PROC_SMTPD, PROC_STORAGED),
	L(PROC_QUEUE, PROC_STORAGED),
	L(PROC_IMAPD, PROC_STORAGED),
	L(PROC_JMAPD, PROC_STORAGED),
	L(PROC_DAVD, PROC_STORAGED),
};
#undef L

struct proc_peer	*proc_peers[PROC_MAX];
struct postern_conf	*proc_conf;
time_t			 proc_started;

/* How long a worker waits for its SIGTERM once a sibling is gone. */
#define PROC_LOST_PEER_GRACE_MS	1000

static const struct proc_role	*proc_self;
static struct postern_conf	*proc_reloading;
static struct event		 ev_sigterm, ev_sigint, ev_sighup;
static struct event		 ev_lost_peer;
static int			 proc_lost[PROC_MAX];

int
proc_lookup(const char *name)
{
	int	 i;

	for (i = 0; i < PROC_MAX; i++)
		if (strcmp(proc_names[i], name) == 0)
			return i;
	return -1;
}

void
proc_peer_update(struct proc_peer *peer)
{
	short	 events = EV_READ;

	if (proc_lost[peer->id])
		return;
	if (imsgbuf_queued(&peer->ibuf))
		events |= EV_WRITE;
	if (events == peer->events)
		return;
	event_del(&peer->ev);
	peer->events = events;
	event_set(&peer->ev, peer->ibuf.fd, events | EV_PERSIST,
	    peer->cb, peer->arg);
	event_add(&peer->ev, NULL);
}

void
proc_peer_init(struct proc_peer *peer, enum proc_id id, int fd,
    void (*cb)(int, short, void *), void *arg)
{
	int	 flags;

	peer->id = id;
	imsgbuf_init(&peer->ibuf, fd);
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: fcntl", __func__);
	peer->events = EV_READ;
	peer->cb = cb;
	peer->arg = arg;
	event_set(&peer->ev, fd, EV_READ | EV_PERSIST, cb, arg);
	event_add(&peer->ev, NULL);
}

int
proc_compose(enum proc_id to, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct proc_peer	*peer = proc_peers[to];

	if (peer == NULL)
		fatalx("%s: %s has no channel to %s", __func__,
		    proc_names[proc_self->id], proc_names[to]);
	if (imsg_compose(&peer->ibuf, type, peerid, fd, data, len) == -1)
		return -1;
	proc_peer_update(peer);
	return 0;
}

int
proc_send(enum proc_id to, struct msg_out *m)
{
	struct proc_peer	*peer = proc_peers[to];

	if (peer == NULL)
		fatalx("%s: %s has no channel to %s", __func__,
		    proc_names[proc_self->id], proc_names[to]);
	if (msg_close(m, &peer->ibuf) == -1)
		return -1;
	proc_peer_update(peer);
	return 0;
}

void
proc_unexpected(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("unexpected %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

/* What every role handles the same way from the parent. */
static int
proc_dispatch_parent_common(struct imsg *imsg)
{
	struct msg_in	 m;
	uint32_t	 v;
	struct listener	*l;

	switch (imsg->hdr.type) {
	case IMSG_PROC_VERBOSE:
		msg_read(&m, imsg);
		if (msg_get_u32(&m, &v) == -1 || msg_end(&m) == -1)
			fatalx("bad IMSG_PROC_VERBOSE");
		log_setverbose(v);
		log_info("log %s", v ? "verbose" : "brief");
		return 1;
	case IMSG_CONF_START:
	case IMSG_CONF_DOMAIN:
	case IMSG_CONF_LISTENER:
	case IMSG_CONF_END:
		if (conf_recv(&proc_reloading, imsg) == 0)
			return 1;
		/* Listeners stay those bound at start-up. */
		while ((l = TAILQ_FIRST(&proc_reloading->listeners))) {
			TAILQ_REMOVE(&proc_reloading->listeners, l, entry);
			if (l->fd != -1)
				close(l->fd);
			free(l);
		}
		while ((l = TAILQ_FIRST(&proc_conf->listeners))) {
			TAILQ_REMOVE(&proc_conf->listeners, l, entry);
			TAILQ_INSERT_TAIL(&proc_reloading->listeners, l,
			    entry);
		}
		conf_free(proc_conf);
		proc_conf = proc_reloading;
		proc_reloading = NULL;
		if (proc_self->reload)
			proc_self->reload(proc_conf);
		log_debug("configuration reloaded");
		return 1;
	}
	return 0;
}

static void
proc_lost_peer_timeout(int fd, short event, void *arg)
{
	struct proc_peer	*peer = arg;

	(void)fd;
	(void)event;
	fatalx("lost channel to %s", proc_names[peer->id]);
}

/*
 * When the parent stops the daemon, every worker gets SIGTERM at once
 * and a sibling may exit before our own signal is handled.  So a lost
 * sibling is an error only if no SIGTERM follows within the grace time
 * (the parent sends one whenever any role dies).
 */
static void
proc_lost_peer(struct proc_peer *peer)
{
	struct timeval	 tv;

	if (peer->id == PROC_PARENT) {
		/* The parent is gone or stopping us. */
		if (proc_self->shutdown)
			proc_self->shutdown();
		exit(0);
	}
	log_debug("channel to %s closed", proc_names[peer->id]);
	proc_lost[peer->id] = 1;
	event_del(&peer->ev);
	if (evtimer_initialized(&ev_lost_peer) &&
	    evtimer_pending(&ev_lost_peer, NULL))
		return;
	tv.tv_sec = PROC_LOST_PEER_GRACE_MS / 1000;
	tv.tv_usec = (PROC_LOST_PEER_GRACE_MS % 1000) * 1000;
	evtimer_set(&ev_lost_peer, proc_lost_peer_timeout, peer);
	evtimer_add(&ev_lost_peer, &tv);
}

static void
proc_dispatch(int fd, short event, void *arg)
{
	struct proc_peer	*peer = arg;
	struct imsg		 imsg;
	ssize_t			 n;

	(void)fd;
	if (proc_lost[peer->id])
		return;
	if (event & EV_READ) {
		n = imsgbuf_read(&peer->ibuf);
		if (n == -1 && errno == ECONNRESET)
			n = 0;
		if (n == -1 && errno != EAGAIN)
			fatal("read from %s", proc_names[peer->id]);
		if (n == 0) {
			proc_lost_peer(peer);
			return;
		}
	}
	if (event & EV_WRITE) {
		if (imsgbuf_write(&peer->ibuf) == -1) {
			if (errno != EPIPE && errno != ECONNRESET)
				fatal("write to %s", proc_names[peer->id]);
			proc_lost_peer(peer);
			return;
		}
	}
	for (;;) {
		if ((n = imsg_get(&peer->ibuf, &imsg)) == -1)
			fatal("malformed message from %s",
			    proc_names[peer->id]);
		if (n == 0)
			break;
		if (peer->id == PROC_PARENT &&
		    proc_dispatch_parent_common(&imsg)) {
			imsg_free(&imsg);
			continue;
		}
		if (proc_self->dispatch[peer->id] == NULL)
			proc_unexpected(peer, &imsg);
		proc_self->dispatch[peer->id](peer, &imsg);
		imsg_free(&imsg);
	}
	proc_peer_update(peer);
}

static void
proc_sig(int sig, short event, void *arg)
{
	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (proc_self->shutdown)
			proc_self->shutdown();
		exit(0);
	case SIGHUP:
		/* Reload is the parent's business. */
		break;
	}
}

/* Reads the config sequence from the parent before anything else. */
static void
proc_recv_conf(struct imsgbuf *ib)
{
	struct postern_conf	*conf = NULL;
	struct imsg		 imsg;
	ssize_t			 n;

	for (;;) {
		if ((n = imsg_get(ib, &imsg)) == -1)
			fatal("malformed config from parent");
		if (n == 0) {
			if ((n = imsgbuf_read(ib)) == -1)
				fatal("read config from parent");
			if (n == 0)
				fatalx("parent closed before sending config");
			continue;
		}
		n = conf_recv(&conf, &imsg);
		imsg_free(&imsg);
		if (n == 1)
			break;
	}
	proc_conf = conf;
}

void
proc_run(const struct proc_role *role, int debug, int verbose)
{
	struct proc_peer	*peer;
	struct imsgbuf		 boot;
	const char		*user, *root;
	int			 i;

	proc_self = role;
	proc_started = time(NULL);
	log_init(debug, LOG_MAIL);
	log_setverbose(verbose);
	log_procname(proc_names[role->id]);
	setproctitle("%s", proc_names[role->id]);

	imsgbuf_init(&boot, PROC_FD_PARENT);
	proc_recv_conf(&boot);
	if (boot.rlen != 0)
		fatalx("parent sent more than the config at start-up");

	if (role->pre_chroot)
		role->pre_chroot(proc_conf);

	if (role->id == PROC_STORAGED) {
		user = proc_conf->storage_user;
		root = proc_conf->statedir;
	} else {
		user = proc_conf->user;
		root = proc_conf->emptydir;
	}
	privsep_drop(root, user);

	signal(SIGPIPE, SIG_IGN);
	event_init();
	signal_set(&ev_sigterm, SIGTERM, proc_sig, NULL);
	signal_set(&ev_sigint, SIGINT, proc_sig, NULL);
	signal_set(&ev_sighup, SIGHUP, proc_sig, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);

	for (i = 0; i < PROC_MAX; i++) {
		if (!proc_links[role->id][i])
			continue;
		if ((peer = calloc(1, sizeof(*peer))) == NULL)
			fatal("%s: calloc", __func__);
		proc_peer_init(peer, i,
		    i == PROC_PARENT ? PROC_FD_PARENT : PROC_FD(i),
		    proc_dispatch, peer);
		proc_peers[i] = peer;
	}

	if (role->init)
		role->init(proc_conf);

	sandbox_enter(role->id);
	sandbox_selftest(role->id);

	proc_compose(PROC_PARENT, IMSG_PROC_READY, 0, -1, NULL, 0);
	log_debug("ready");
	event_dispatch();
	fatalx("event loop returned");
}
