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
#include "tls_conf.h"

#define CONF_TLS_CHUNK	8192	/* certificate and key bytes per message */

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

/* Also used inside a role's sandbox: no system call beyond malloc. */
static struct postern_conf *
conf_alloc(void)
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
	strlcpy(conf->hostname, "localhost", sizeof(conf->hostname));
	for (i = 0; i < LIMIT_MAX; i++)
		conf->limits[i] = limit_defs[i].def;
	return conf;
}

struct postern_conf *
conf_new(void)
{
	struct postern_conf	*conf;

	if ((conf = conf_alloc()) == NULL)
		return NULL;
	if (gethostname(conf->hostname, sizeof(conf->hostname)) == -1)
		strlcpy(conf->hostname, "localhost", sizeof(conf->hostname));
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
		free(l->tls_cert);
		if (l->tls_key != NULL)
			freezero(l->tls_key, l->tls_keylen);
		free(l);
	}
	while ((d = TAILQ_FIRST(&conf->domains)) != NULL) {
		TAILQ_REMOVE(&conf->domains, d, entry);
		free(d);
	}
	free(conf);
}

/*
 * A listener's certificate or key, in chunks that follow its LISTENER
 * message: each carries the total length and the next bytes.
 */
static int
conf_send_tls(struct imsgbuf *ib, uint32_t type, const char *buf,
    size_t len)
{
	struct msg_out	 m;
	size_t		 off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < CONF_TLS_CHUNK ? len - off : CONF_TLS_CHUNK;
		msg_create(&m, type, 0, -1);
		msg_add_u64(&m, len);
		msg_add_data(&m, buf + off, n);
		if (msg_close(&m, ib) == -1)
			return -1;
	}
	return 0;
}

/*
 * Sends the config to one role: scalars, domains, listeners (with the
 * bound socket and the TLS certificate and key for the role that
 * serves it when with_fds is set, i.e. at start-up).
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
		if (!with_fds || listener_proc(l->kind) != to ||
		    l->tls_cert == NULL || l->tls_key == NULL)
			continue;
		if (conf_send_tls(ib, IMSG_CONF_TLS_CERT, l->tls_cert,
		    l->tls_certlen) == -1 ||
		    conf_send_tls(ib, IMSG_CONF_TLS_KEY, l->tls_key,
		    l->tls_keylen) == -1)
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

/* Total lengths announced for the last listener's TLS bytes. */
static size_t	conf_tls_want[2];

static void
conf_tls_check(struct postern_conf *conf)
{
	struct listener	*l;

	if ((l = TAILQ_LAST(&conf->listeners, listenerlist)) == NULL)
		return;
	if (l->tls_certlen != conf_tls_want[0] ||
	    l->tls_keylen != conf_tls_want[1])
		fatalx("config: incomplete TLS certificate or key");
	if (l->tls_certlen)
		log_debug("%s %s port %u: TLS certificate and key received "
		    "(%zu and %zu bytes)", listener_kind_names[l->kind],
		    l->addr, l->port, l->tls_certlen, l->tls_keylen);
	conf_tls_want[0] = conf_tls_want[1] = 0;
}

/* Appends one chunk to the last listener's certificate or key. */
static void
conf_recv_tls(struct postern_conf *conf, struct imsg *imsg)
{
	struct msg_in	 m;
	struct listener	*l;
	const void	*p;
	size_t		 n, *lenp, max;
	uint64_t	 total;
	char		**bufp;
	int		 k;

	if (conf == NULL ||
	    (l = TAILQ_LAST(&conf->listeners, listenerlist)) == NULL)
		fatalx("config: TLS bytes before any listener");
	if (imsg->hdr.type == IMSG_CONF_TLS_CERT) {
		k = 0;
		bufp = &l->tls_cert;
		lenp = &l->tls_certlen;
		max = TLS_CERT_FILE_MAX;
	} else {
		k = 1;
		bufp = &l->tls_key;
		lenp = &l->tls_keylen;
		max = TLS_KEY_FILE_MAX;
	}
	msg_read(&m, imsg);
	msg_get_u64(&m, &total);
	msg_get_data(&m, &p, &n);
	if (msg_end(&m) == -1 || total == 0 || total > max || n == 0)
		fatalx("config: bad %s", imsg_type_name(imsg->hdr.type));
	if (*bufp == NULL) {
		/* One byte more: PEM as a C string, for whoever wants it. */
		if ((*bufp = calloc(1, total + 1)) == NULL)
			fatal("%s", __func__);
		conf_tls_want[k] = total;
	}
	if (total != conf_tls_want[k] || n > total - *lenp)
		fatalx("config: %s does not add up",
		    imsg_type_name(imsg->hdr.type));
	memcpy(*bufp + *lenp, p, n);
	*lenp += n;
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
		if ((conf = conf_alloc()) == NULL)
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
		conf_tls_check(conf);
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
	case IMSG_CONF_TLS_CERT:
	case IMSG_CONF_TLS_KEY:
		conf_recv_tls(conf, imsg);
		return 0;
	case IMSG_CONF_END:
		if (conf == NULL)
			fatalx("config: END outside a config");
		conf_tls_check(conf);
		return 1;
	default:
		fatalx("config: unexpected %s",
		    imsg_type_name(imsg->hdr.type));
	}
}
