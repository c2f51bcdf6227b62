/*
 * The configuration that every process shares: defaults, the limit
 * table, and its transfer from the parent to a role as messages.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg_types.h"
#include "log.h"
#include "proc.h"

#define K	1024LL
#define M	(1024LL * 1024)

/* Sorted by nothing: the parser looks names up with limit_lookup(). */
const struct limit_def limit_defs[LIMIT_MAX] = {
	[LIMIT_SMTP_LINE] =
	    { "smtp-line-length", LIMIT_BYTES, 512, 64 * K, 4 * K },
	[LIMIT_MESSAGE_SIZE] =
	    { "message-size", LIMIT_BYTES, 1 * K, 1024 * M, 35 * M },
	[LIMIT_RECIPIENTS] =
	    { "recipients", LIMIT_COUNT, 1, 100000, 100 },
	[LIMIT_SESSIONS] =
	    { "sessions", LIMIT_COUNT, 1, 100000, 1000 },
	[LIMIT_SESSIONS_PER_CLIENT] =
	    { "sessions-per-client", LIMIT_COUNT, 1, 100000, 50 },
	[LIMIT_IDLE_TIMEOUT] =
	    { "idle-timeout", LIMIT_SECONDS, 1, 86400, 300 },
	[LIMIT_DATA_TIMEOUT] =
	    { "data-timeout", LIMIT_SECONDS, 1, 86400, 600 },
	[LIMIT_BAD_COMMANDS] =
	    { "bad-commands", LIMIT_COUNT, 1, 1000, 20 },
	[LIMIT_AUTH_FAILURES] =
	    { "auth-failures", LIMIT_COUNT, 1, 1000, 10 },
	[LIMIT_AUTH_LOCKOUT] =
	    { "auth-lockout", LIMIT_SECONDS, 1, 86400, 300 },
	[LIMIT_IMAP_LINE] =
	    { "imap-line-length", LIMIT_BYTES, 1 * K, 1 * M, 64 * K },
	[LIMIT_IMAP_LITERAL] =
	    { "imap-literal-size", LIMIT_BYTES, 1 * K, 1024 * M, 64 * M },
};

const char *listener_kind_names[LISTEN_KIND_MAX] = {
	[LISTEN_SMTP] = "smtp",
	[LISTEN_SUBMISSION] = "submission",
	[LISTEN_SUBMISSIONS] = "submissions",
	[LISTEN_IMAP] = "imap",
	[LISTEN_IMAPS] = "imaps",
	[LISTEN_JMAP] = "jmap",
	[LISTEN_DAV] = "dav",
};

static const uint16_t listener_ports[LISTEN_KIND_MAX] = {
	[LISTEN_SMTP] = 25,
	[LISTEN_SUBMISSION] = 587,
	[LISTEN_SUBMISSIONS] = 465,
	[LISTEN_IMAP] = 143,
	[LISTEN_IMAPS] = 993,
	[LISTEN_JMAP] = 8080,
	[LISTEN_DAV] = 8008,
};

int
limit_lookup(const char *name)
{
	int	 i;

	for (i = 0; i < LIMIT_MAX; i++)
		if (strcmp(limit_defs[i].name, name) == 0)
			return i;
	return -1;
}

int
listener_kind_lookup(const char *name)
{
	int	 i;

	for (i = 0; i < LISTEN_KIND_MAX; i++)
		if (strcmp(listener_kind_names[i], name) == 0)
			return i;
	return -1;
}

uint16_t
listener_default_port(enum listener_kind kind)
{
	return listener_ports[kind];
}

/* Kinds that cannot work without a certificate. */
int
listener_needs_tls(enum listener_kind kind)
{
	return kind == LISTEN_SUBMISSION || kind == LISTEN_SUBMISSIONS ||
	    kind == LISTEN_IMAPS;
}

enum proc_id
listener_proc(enum listener_kind kind)
{
	switch (kind) {
	case LISTEN_SMTP:
	case LISTEN_SUBMISSION:
	case LISTEN_SUBMISSIONS:
		return PROC_SMTPD;
	case LISTEN_IMAP:
	case LISTEN_IMAPS:
		return PROC_IMAPD;
	case LISTEN_JMAP:
		return PROC_JMAPD;
	case LISTEN_DAV:
		return PROC_DAVD;
	default:
		return PROC_MAX;
	}
}

struct postern_conf *
conf_new(void)
{
	struct postern_conf	*conf;
	int			 i;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		return NULL;
	TAILQ_INIT(&conf->listeners);
	TAILQ_INIT(&conf->domains);
	strlcpy(conf->statedir, POSTERN_STATEDIR, sizeof(conf->statedir));
	strlcpy(conf->emptydir, POSTERN_EMPTYDIR, sizeof(conf->emptydir));
	strlcpy(conf->control_path, POSTERN_SOCKET,
	    sizeof(conf->control_path));
	strlcpy(conf->user, POSTERN_USER, sizeof(conf->user));
	strlcpy(conf->storage_user, POSTERN_STORAGE_USER,
	    sizeof(conf->storage_user));
	if (gethostname(conf->hostname, sizeof(conf->hostname)) == -1)
		strlcpy(conf->hostname, "localhost", sizeof(conf->hostname));
	for (i = 0; i < LIMIT_MAX; i++)
		conf->limits[i] = limit_defs[i].def;
	return conf;
}

void
conf_free(struct postern_conf *conf)
{
	struct listener		*l;
	struct domain_conf	*d;

	if (conf == NULL)
		return;
	while ((l = TAILQ_FIRST(&conf->listeners)) != NULL) {
		TAILQ_REMOVE(&conf->listeners, l, entry);
		if (l->fd != -1)
			close(l->fd);
		free(l);
	}
	while ((d = TAILQ_FIRST(&conf->domains)) != NULL) {
		TAILQ_REMOVE(&conf->domains, d, entry);
		free(d);
	}
	free(conf);
}

/*
 * Sends the config to one role: scalars, domains, listeners (with the
 * bound socket for the role that serves it when with_fds is set).
 */
int
conf_send(struct imsgbuf *ib, struct postern_conf *conf, enum proc_id to,
    int with_fds)
{
	struct msg_out		 m;
	struct listener		*l;
	struct domain_conf	*d;
	int			 i, fd;

	msg_create(&m, IMSG_CONF_START, 0, -1);
	msg_add_string(&m, conf->conffile);
	msg_add_string(&m, conf->hostname);
	msg_add_string(&m, conf->statedir);
	msg_add_string(&m, conf->emptydir);
	msg_add_string(&m, conf->control_path);
	msg_add_string(&m, conf->user);
	msg_add_string(&m, conf->storage_user);
	msg_add_string(&m, conf->cert);
	msg_add_string(&m, conf->key);
	for (i = 0; i < LIMIT_MAX; i++)
		msg_add_i64(&m, conf->limits[i]);
	if (msg_close(&m, ib) == -1)
		return -1;

	TAILQ_FOREACH(d, &conf->domains, entry) {
		msg_create(&m, IMSG_CONF_DOMAIN, 0, -1);
		msg_add_string(&m, d->name);
		if (msg_close(&m, ib) == -1)
			return -1;
	}
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		fd = -1;
		if (with_fds && l->fd != -1 && listener_proc(l->kind) == to)
			if ((fd = dup(l->fd)) == -1)
				return -1;
		msg_create(&m, IMSG_CONF_LISTENER, 0, fd);
		msg_add_u32(&m, l->kind);
		msg_add_data(&m, &l->ss, l->sslen);
		msg_add_string(&m, l->addr);
		msg_add_u32(&m, l->port);
		msg_add_u32(&m, l->flags);
		msg_add_string(&m, l->cert);
		msg_add_string(&m, l->key);
		if (msg_close(&m, ib) == -1)
			return -1;
	}
	return imsg_compose(ib, IMSG_CONF_END, 0, -1, NULL, 0);
}

static void
conf_copy(char *dst, size_t dstlen, const char *src)
{
	if (strlcpy(dst, src, dstlen) >= dstlen)
		fatalx("config from parent: value too long");
}

/*
 * Takes one message of the sequence.  Returns 1 when the config is
 * whole (at IMSG_CONF_END), 0 while more is to come.  The parent is
 * trusted: a malformed sequence is fatal.
 */
int
conf_recv(struct postern_conf **confp, struct imsg *imsg)
{
	struct postern_conf	*conf = *confp;
	struct msg_in		 m;
	struct listener		*l;
	struct domain_conf	*d;
	const char		*s[9];
	const void		*ss;
	size_t			 sslen;
	uint32_t		 kind, port, flags;
	int64_t			 v;
	int			 i;

	msg_read(&m, imsg);
	switch (imsg->hdr.type) {
	case IMSG_CONF_START:
		if (conf != NULL)
			fatalx("config: START inside a config");
		if ((conf = conf_new()) == NULL)
			fatal("%s", __func__);
		for (i = 0; i < 9; i++)
			msg_get_string(&m, &s[i]);
		for (i = 0; i < LIMIT_MAX; i++) {
			msg_get_i64(&m, &v);
			conf->limits[i] = v;
		}
		if (msg_end(&m) == -1)
			fatalx("config: bad START");
		conf_copy(conf->conffile, sizeof(conf->conffile), s[0]);
		conf_copy(conf->hostname, sizeof(conf->hostname), s[1]);
		conf_copy(conf->statedir, sizeof(conf->statedir), s[2]);
		conf_copy(conf->emptydir, sizeof(conf->emptydir), s[3]);
		conf_copy(conf->control_path, sizeof(conf->control_path),
		    s[4]);
		conf_copy(conf->user, sizeof(conf->user), s[5]);
		conf_copy(conf->storage_user, sizeof(conf->storage_user),
		    s[6]);
		conf_copy(conf->cert, sizeof(conf->cert), s[7]);
		conf_copy(conf->key, sizeof(conf->key), s[8]);
		*confp = conf;
		return 0;
	case IMSG_CONF_DOMAIN:
		if (conf == NULL)
			fatalx("config: DOMAIN outside a config");
		if (msg_get_string(&m, &s[0]) == -1 || msg_end(&m) == -1)
			fatalx("config: bad DOMAIN");
		if ((d = calloc(1, sizeof(*d))) == NULL)
			fatal("%s", __func__);
		conf_copy(d->name, sizeof(d->name), s[0]);
		TAILQ_INSERT_TAIL(&conf->domains, d, entry);
		return 0;
	case IMSG_CONF_LISTENER:
		if (conf == NULL)
			fatalx("config: LISTENER outside a config");
		msg_get_u32(&m, &kind);
		msg_get_data(&m, &ss, &sslen);
		msg_get_string(&m, &s[0]);
		msg_get_u32(&m, &port);
		msg_get_u32(&m, &flags);
		msg_get_string(&m, &s[1]);
		msg_get_string(&m, &s[2]);
		if (msg_end(&m) == -1 || kind >= LISTEN_KIND_MAX ||
		    sslen > sizeof(l->ss) || port > 65535)
			fatalx("config: bad LISTENER");
		if ((l = calloc(1, sizeof(*l))) == NULL)
			fatal("%s", __func__);
		l->kind = kind;
		memcpy(&l->ss, ss, sslen);
		l->sslen = sslen;
		conf_copy(l->addr, sizeof(l->addr), s[0]);
		l->port = port;
		l->flags = flags;
		conf_copy(l->cert, sizeof(l->cert), s[1]);
		conf_copy(l->key, sizeof(l->key), s[2]);
		l->fd = imsg->fd;
		TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
		return 0;
	case IMSG_CONF_END:
		if (conf == NULL)
			fatalx("config: END outside a config");
		return 1;
	default:
		fatalx("config: unexpected %s",
		    imsg_type_name(imsg->hdr.type));
	}
}
