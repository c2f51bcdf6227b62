/*
 * The privileged parent: parse the config, bind the sockets, fork and
 * re-execute every role, hand each its config and sockets, then reap,
 * reload and stop.  If any role dies the whole daemon stops: fail loud
 * and let the rc system restart it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "imsg_types.h"
#include "log.h"
#include "parent.h"
#include "tls_conf.h"

#define PARENT_KILL_GRACE_MS	1200	/* SIGTERM, then SIGKILL */

struct child {
	pid_t		 pid;
	int		 alive;
	int		 ready;
	time_t		 started;
	int		 fd;		/* the child's end, until forked */
};

static struct postern_conf	*conf;
static struct child		 children[PROC_MAX];
static struct proc_peer		 peers[PROC_MAX];
static char			 self_path[PATH_MAX];
static int			 opt_debug, opt_verbose;
static int			 stopping;
static int			 exit_code;
static int			 all_ready;
static struct event		 ev_sigterm, ev_sigint, ev_sighup, ev_sigchld;
static struct event		 ev_killtimer;

static void	parent_dispatch(int, short, void *);
static void	parent_stop(int);

static void
parent_find_self(char *argv0)
{
#ifdef __linux__
	(void)argv0;
	if (realpath("/proc/self/exe", self_path) == NULL)
		fatal("realpath /proc/self/exe");
#else
	if (argv0[0] != '/')
		fatalx("re-exec requires execution with an absolute path");
	if (strlcpy(self_path, argv0, sizeof(self_path)) >= sizeof(self_path))
		fatalx("path too long");
#endif
}

static void
parent_check_users(struct postern_conf *c)
{
	struct passwd	*pw;

	if ((pw = getpwnam(c->user)) == NULL)
		fatalx("unknown user %s: create it (see posternd(8))",
		    c->user);
	if (pw->pw_uid == 0)
		fatalx("user %s must not be root", c->user);
	if ((pw = getpwnam(c->storage_user)) == NULL)
		fatalx("unknown user %s: create it (see posternd(8))",
		    c->storage_user);
	if (pw->pw_uid == 0)
		fatalx("user %s must not be root", c->storage_user);
	if (strcmp(c->user, c->storage_user) == 0)
		fatalx("user and storage user must differ");
}

/*
 * The empty chroot of the network roles must be root's and nobody
 * else's to write; the state directory is the storage user's alone.
 */
static void
parent_check_dirs(struct postern_conf *c)
{
	struct passwd	*pw;
	struct stat	 st;

	if (mkdir(c->emptydir, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", c->emptydir);
	if (stat(c->emptydir, &st) == -1)
		fatal("stat %s", c->emptydir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)))
		fatalx("%s must be a directory owned by root and writable "
		    "by root only", c->emptydir);

	if ((pw = getpwnam(c->storage_user)) == NULL)
		fatalx("unknown user %s", c->storage_user);
	if (mkdir(c->statedir, 0700) == -1) {
		if (errno != EEXIST)
			fatal("mkdir %s", c->statedir);
	} else if (chown(c->statedir, pw->pw_uid, pw->pw_gid) == -1)
		fatal("chown %s", c->statedir);
	if (stat(c->statedir, &st) == -1)
		fatal("stat %s", c->statedir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != pw->pw_uid ||
	    (st.st_mode & 077))
		fatalx("state directory %s must be owned by %s and mode 0700",
		    c->statedir, c->storage_user);
}

static void
parent_bind(struct postern_conf *c)
{
	struct listener	*l;
	int		 on = 1;

	TAILQ_FOREACH(l, &c->listeners, entry) {
		l->fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (l->fd == -1)
			fatal("socket for %s:%u", l->addr, l->port);
		if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on,
		    sizeof(on)) == -1)
			fatal("setsockopt SO_REUSEADDR");
		if (l->ss.ss_family == AF_INET6 && setsockopt(l->fd,
		    IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
			fatal("setsockopt IPV6_V6ONLY");
		if (bind(l->fd, (struct sockaddr *)&l->ss, l->sslen) == -1)
			fatal("bind %s port %u (%s)", l->addr, l->port,
			    listener_kind_names[l->kind]);
		/* A short backlog collapses under concurrent clients. */
		if (listen(l->fd, SOMAXCONN) == -1)
			fatal("listen %s port %u", l->addr, l->port);
	}
}

static int
parent_control_socket(const char *path)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		fatalx("control socket path too long: %s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			fatalx("%s exists and is not a socket", path);
		/* A live daemon answers; a stale socket does not. */
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
			fatal("socket");
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			fatalx("%s: another posternd is running", path);
		close(fd);
		if (unlink(path) == -1)
			fatal("unlink %s", path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	old = umask(S_IXUSR | S_IRWXG | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("bind %s", path);
	umask(old);
	if (chmod(path, S_IRUSR | S_IWUSR) == -1)
		fatal("chmod %s", path);
	if (chown(path, 0, 0) == -1)
		fatal("chown %s", path);
	if (listen(fd, SOMAXCONN) == -1)
		fatal("listen %s", path);
	return fd;
}

/* Moves fd to target in the child, whatever sits there. */
struct fdmove {
	int	from;
	int	to;
};

static __attribute__((__noreturn__)) void
parent_exec_role(enum proc_id id, struct fdmove *moves, int nmoves)
{
	char	*argv[8];
	int	 argc = 0, i, fd;

	/* Out of the way first, so one dup2() cannot clobber another. */
	for (i = 0; i < nmoves; i++) {
		if ((fd = fcntl(moves[i].from, F_DUPFD, 64)) == -1)
			fatal("fcntl F_DUPFD");
		moves[i].from = fd;
	}
	for (i = 0; i < nmoves; i++) {
		if (dup2(moves[i].from, moves[i].to) == -1)
			fatal("dup2");
	}
	closefrom(PROC_FD_CONTROL_SOCKET + 1);

	argv[argc++] = "posternd";
	argv[argc++] = "-P";
	argv[argc++] = (char *)proc_names[id];
	if (opt_debug)
		argv[argc++] = "-d";
	if (opt_verbose)
		argv[argc++] = "-v";
	argv[argc] = NULL;
	execv(self_path, argv);
	fatal("execv %s", self_path);
}

static void
parent_fork_roles(int control_fd)
{
	int		 pairs[PROC_MAX][PROC_MAX];
	int		 sp[2], i, j, n;
	struct fdmove	 moves[PROC_MAX + 1];
	pid_t		 pid;

	for (i = 0; i < PROC_MAX; i++)
		for (j = 0; j < PROC_MAX; j++)
			pairs[i][j] = -1;
	/* pairs[i][j] is i's end of the channel between i and j. */
	for (i = 0; i < PROC_MAX; i++) {
		for (j = i + 1; j < PROC_MAX; j++) {
			if (!proc_links[i][j])
				continue;
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			    sp) == -1)
				fatal("socketpair");
			pairs[i][j] = sp[0];
			pairs[j][i] = sp[1];
		}
	}

	for (i = PROC_PARENT + 1; i < PROC_MAX; i++) {
		n = 0;
		for (j = 0; j < PROC_MAX; j++) {
			if (pairs[i][j] == -1)
				continue;
			moves[n].from = pairs[i][j];
			moves[n].to = j == PROC_PARENT ? PROC_FD_PARENT :
			    PROC_FD(j);
			n++;
		}
		if (i == PROC_CONTROL) {
			moves[n].from = control_fd;
			moves[n].to = PROC_FD_CONTROL_SOCKET;
			n++;
		}
		switch (pid = fork()) {
		case -1:
			fatal("fork");
		case 0:
			parent_exec_role(i, moves, n);
		}
		children[i].pid = pid;
		children[i].alive = 1;
		children[i].started = time(NULL);
	}

	/* Keep our own ends; every other end now lives in a child. */
	for (i = 0; i < PROC_MAX; i++) {
		for (j = 0; j < PROC_MAX; j++) {
			if (pairs[i][j] == -1)
				continue;
			if (i == PROC_PARENT)
				proc_peer_init(&peers[j], j, pairs[i][j],
				    parent_dispatch, &peers[j]);
			else
				close(pairs[i][j]);
		}
	}
	close(control_fd);
}

static void
parent_send_conf(int with_fds)
{
	int	 i;

	for (i = PROC_PARENT + 1; i < PROC_MAX; i++) {
		if (!children[i].alive)
			continue;
		if (conf_send(&peers[i].ibuf, conf, i, with_fds) == -1)
			fatal("send config to %s", proc_names[i]);
		proc_peer_update(&peers[i]);
	}
}

static void
parent_reply(uint32_t type, uint32_t peerid, const char *text)
{
	struct msg_out	 m;

	msg_create(&m, type, peerid, -1);
	if (text != NULL)
		msg_add_string(&m, text);
	if (msg_close(&m, &peers[PROC_CONTROL].ibuf) == -1)
		fatal("%s", __func__);
	proc_peer_update(&peers[PROC_CONTROL]);
}

static int
listeners_equal(struct postern_conf *a, struct postern_conf *b)
{
	struct listener	*la, *lb;

	lb = TAILQ_FIRST(&b->listeners);
	TAILQ_FOREACH(la, &a->listeners, entry) {
		if (lb == NULL || la->kind != lb->kind ||
		    la->sslen != lb->sslen ||
		    memcmp(&la->ss, &lb->ss, la->sslen) != 0 ||
		    la->flags != lb->flags || strcmp(la->cert, lb->cert) ||
		    strcmp(la->key, lb->key))
			return 0;
		lb = TAILQ_NEXT(lb, entry);
	}
	return lb == NULL;
}

/*
 * Re-reads the config.  A broken one is refused with its first error
 * and the running one stays.  Listeners, users and directories are
 * fixed at start-up; a change to them is logged and waits for restart.
 */
static int
parent_reload(char *err, size_t errlen)
{
	struct postern_conf	*nconf;
	struct listener		*l;

	log_info("reloading %s", conf->conffile);
	if ((nconf = parse_config(conf->conffile)) == NULL) {
		snprintf(err, errlen, "%s", parse_first_error());
		log_warnx("reload failed, keeping the running configuration");
		return -1;
	}
	if (!listeners_equal(conf, nconf))
		log_warnx("reload: listener changes take effect at restart");
	if (strcmp(conf->statedir, nconf->statedir) ||
	    strcmp(conf->emptydir, nconf->emptydir) ||
	    strcmp(conf->user, nconf->user) ||
	    strcmp(conf->storage_user, nconf->storage_user) ||
	    strcmp(conf->control_path, nconf->control_path))
		log_warnx("reload: user, directory and control socket "
		    "changes take effect at restart");
	strlcpy(nconf->statedir, conf->statedir, sizeof(nconf->statedir));
	strlcpy(nconf->emptydir, conf->emptydir, sizeof(nconf->emptydir));
	strlcpy(nconf->user, conf->user, sizeof(nconf->user));
	strlcpy(nconf->storage_user, conf->storage_user,
	    sizeof(nconf->storage_user));
	strlcpy(nconf->control_path, conf->control_path,
	    sizeof(nconf->control_path));
	while ((l = TAILQ_FIRST(&nconf->listeners)) != NULL) {
		TAILQ_REMOVE(&nconf->listeners, l, entry);
		free(l);
	}
	while ((l = TAILQ_FIRST(&conf->listeners)) != NULL) {
		TAILQ_REMOVE(&conf->listeners, l, entry);
		TAILQ_INSERT_TAIL(&nconf->listeners, l, entry);
	}
	conf_free(conf);
	conf = nconf;
	parent_send_conf(0);
	log_info("configuration reloaded");
	return 0;
}

static void
parent_set_verbose(int v)
{
	struct msg_out	 m;
	int		 i;

	log_setverbose(v);
	for (i = PROC_PARENT + 1; i < PROC_MAX; i++) {
		if (!children[i].alive)
			continue;
		msg_create(&m, IMSG_PROC_VERBOSE, 0, -1);
		msg_add_u32(&m, v);
		if (msg_close(&m, &peers[i].ibuf) == -1)
			fatal("%s", __func__);
		proc_peer_update(&peers[i]);
	}
	log_info("log %s", v ? "verbose" : "brief");
}

static void
format_uptime(char *buf, size_t len, time_t secs)
{
	if (secs < 60)
		snprintf(buf, len, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)secs / 60,
		    (long long)secs % 60);
	else if (secs < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)secs / 3600,
		    (long long)(secs % 3600) / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)secs / 86400,
		    (long long)(secs % 86400) / 3600);
}

static void
parent_show_status(uint32_t peerid)
{
	char	 line[128], up[32];
	time_t	 now = time(NULL);
	int	 i;

	for (i = 0; i < PROC_MAX; i++) {
		format_uptime(up, sizeof(up), now - children[i].started);
		snprintf(line, sizeof(line), "%-9s %7d  %-8s %s",
		    proc_names[i], (int)children[i].pid,
		    children[i].alive ? "running" : "dead", up);
		parent_reply(IMSG_CTL_ITEM, peerid, line);
	}
	parent_reply(IMSG_CTL_END, peerid, NULL);
}

static void
parent_dispatch_control(struct imsg *imsg)
{
	char		 err[512];
	uint32_t	 peerid = imsg->hdr.peerid;

	switch (imsg->hdr.type) {
	case IMSG_CTL_SHOW_STATUS:
		parent_show_status(peerid);
		break;
	case IMSG_CTL_RELOAD:
		if (parent_reload(err, sizeof(err)) == -1)
			parent_reply(IMSG_CTL_FAIL, peerid, err);
		else
			parent_reply(IMSG_CTL_OK, peerid, NULL);
		break;
	case IMSG_CTL_STOP:
		log_info("stop requested by posternctl");
		parent_reply(IMSG_CTL_OK, peerid, NULL);
		imsgbuf_flush(&peers[PROC_CONTROL].ibuf);
		parent_stop(0);
		break;
	case IMSG_CTL_LOG_VERBOSE:
		parent_set_verbose(1);
		parent_reply(IMSG_CTL_OK, peerid, NULL);
		break;
	case IMSG_CTL_LOG_BRIEF:
		parent_set_verbose(0);
		parent_reply(IMSG_CTL_OK, peerid, NULL);
		break;
	default:
		fatalx("unexpected %s from control",
		    imsg_type_name(imsg->hdr.type));
	}
}

static void
parent_dispatch(int fd, short event, void *arg)
{
	struct proc_peer	*peer = arg;
	struct imsg		 imsg;
	ssize_t			 n;
	int			 i;

	(void)fd;
	if (event & EV_READ) {
		n = imsgbuf_read(&peer->ibuf);
		if (n == -1 && errno != EAGAIN) {
			log_warn("read from %s", proc_names[peer->id]);
			n = 0;
		}
		if (n == 0) {
			/* Its exit status is on the way through SIGCHLD. */
			event_del(&peer->ev);
			return;
		}
	}
	if (event & EV_WRITE) {
		if (imsgbuf_write(&peer->ibuf) == -1) {
			event_del(&peer->ev);
			return;
		}
	}
	for (;;) {
		if ((n = imsg_get(&peer->ibuf, &imsg)) == -1)
			fatal("malformed message from %s",
			    proc_names[peer->id]);
		if (n == 0)
			break;
		switch (imsg.hdr.type) {
		case IMSG_PROC_READY:
			children[peer->id].ready = 1;
			for (i = PROC_PARENT + 1; i < PROC_MAX; i++)
				if (!children[i].ready)
					break;
			if (i == PROC_MAX && !all_ready) {
				all_ready = 1;
				log_info("startup complete: all roles ready");
			}
			break;
		default:
			if (peer->id != PROC_CONTROL)
				fatalx("unexpected %s from %s",
				    imsg_type_name(imsg.hdr.type),
				    proc_names[peer->id]);
			parent_dispatch_control(&imsg);
		}
		imsg_free(&imsg);
	}
	if (!stopping || imsgbuf_queued(&peer->ibuf))
		proc_peer_update(peer);
}

static void
parent_finish(void)
{
	int	 i;

	for (i = PROC_PARENT + 1; i < PROC_MAX; i++)
		if (children[i].alive)
			return;
	unlink(conf->control_path);
	log_info("stopped%s", exit_code ? " on error" : "");
	exit(exit_code);
}

static void
parent_killtimer(int fd, short event, void *arg)
{
	int	 i;

	(void)fd;
	(void)event;
	(void)arg;
	for (i = PROC_PARENT + 1; i < PROC_MAX; i++) {
		if (!children[i].alive)
			continue;
		log_warnx("%s (pid %d) did not stop, killing it",
		    proc_names[i], (int)children[i].pid);
		kill(children[i].pid, SIGKILL);
	}
}

static void
parent_stop(int code)
{
	struct timeval	 tv;
	int		 i;

	if (code > exit_code)
		exit_code = code;
	if (stopping)
		return;
	stopping = 1;
	log_info("stopping");
	for (i = PROC_PARENT + 1; i < PROC_MAX; i++)
		if (children[i].alive)
			kill(children[i].pid, SIGTERM);
	tv.tv_sec = PARENT_KILL_GRACE_MS / 1000;
	tv.tv_usec = (PARENT_KILL_GRACE_MS % 1000) * 1000;
	evtimer_set(&ev_killtimer, parent_killtimer, NULL);
	evtimer_add(&ev_killtimer, &tv);
	parent_finish();
}

static void
parent_reap(void)
{
	pid_t	 pid;
	int	 status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = PROC_PARENT + 1; i < PROC_MAX; i++)
			if (children[i].alive && children[i].pid == pid)
				break;
		if (i == PROC_MAX)
			continue;
		children[i].alive = 0;
		if (WIFSIGNALED(status)) {
			if (!stopping || WTERMSIG(status) != SIGTERM)
				log_warnx("%s (pid %d) terminated by signal "
				    "%d (%s)", proc_names[i], (int)pid,
				    WTERMSIG(status),
				    strsignal(WTERMSIG(status)));
			if (!stopping)
				parent_stop(1);
			else if (WTERMSIG(status) != SIGTERM &&
			    WTERMSIG(status) != SIGKILL)
				exit_code = 1;
		} else if (WIFEXITED(status)) {
			if (!stopping || WEXITSTATUS(status) != 0)
				log_warnx("%s (pid %d) exited with status %d",
				    proc_names[i], (int)pid,
				    WEXITSTATUS(status));
			if (!stopping || WEXITSTATUS(status) != 0)
				parent_stop(1);
		}
	}
	if (stopping)
		parent_finish();
}

static void
parent_sig(int sig, short event, void *arg)
{
	char	 err[512];

	(void)event;
	(void)arg;
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		log_info("received %s", sig == SIGTERM ? "SIGTERM" :
		    "SIGINT");
		parent_stop(0);
		break;
	case SIGHUP:
		if (!stopping)
			(void)parent_reload(err, sizeof(err));
		break;
	case SIGCHLD:
		parent_reap();
		break;
	}
}

void
parent_main(const char *conffile, int debug, int verbose, char *argv[])
{
	char	 err[1024];
	int	 control_fd;

	opt_debug = debug;
	opt_verbose = verbose;
	log_init(1, LOG_MAIL);
	log_setverbose(verbose);

	/* First, so a user is not sent after files only root may read. */
	if (geteuid() != 0)
		fatalx("need root privileges");
	if ((conf = parse_config(conffile)) == NULL)
		exit(1);
	parent_find_self(argv[0]);
	parent_check_users(conf);
	parent_check_dirs(conf);
	if (tls_conf_load(conf, err, sizeof(err)) == -1)
		fatalx("%s", err);
	parent_bind(conf);
	control_fd = parent_control_socket(conf->control_path);

	log_init(debug, LOG_MAIL);
	if (!debug && daemon(1, 0) == -1)
		fatal("daemon");
	log_info("starting Postern %s", POSTERN_VERSION);
	setproctitle("parent");

	signal(SIGPIPE, SIG_IGN);
	event_init();
	signal_set(&ev_sigterm, SIGTERM, parent_sig, NULL);
	signal_set(&ev_sigint, SIGINT, parent_sig, NULL);
	signal_set(&ev_sighup, SIGHUP, parent_sig, NULL);
	signal_set(&ev_sigchld, SIGCHLD, parent_sig, NULL);
	signal_add(&ev_sigterm, NULL);
	signal_add(&ev_sigint, NULL);
	signal_add(&ev_sighup, NULL);
	signal_add(&ev_sigchld, NULL);

	children[PROC_PARENT].pid = getpid();
	children[PROC_PARENT].alive = 1;
	children[PROC_PARENT].started = time(NULL);
	parent_fork_roles(control_fd);

	parent_send_conf(1);
	/* Each role has its TLS bytes; the parent needs them no more. */
	tls_conf_unload(conf);
	/* A child may have died before the handlers were in place. */
	parent_reap();
	event_dispatch();
	fatalx("event loop returned");
}
