/*
 * Postern: what every role shares: the configuration, the process
 * identities and the message types that travel between them.
 */
#ifndef POSTERN_H
#define POSTERN_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <limits.h>
#include <stdint.h>

#define POSTERN_VERSION		"0.1"
#define POSTERN_CTL_VERSION	1	/* posternctl <-> control protocol */

#define POSTERN_CONFFILE	"/etc/postern.conf"
#define POSTERN_SOCKET		"/var/run/postern.sock"
#define POSTERN_STATEDIR	"/var/postern"
#define POSTERN_EMPTYDIR	"/var/empty"
#define POSTERN_USER		"_postern"
#define POSTERN_STORAGE_USER	"_posterns"

#define HOSTNAME_MAX		255
#define DOMAIN_MAX		255
#define ADDRESS_MAX		320	/* local@domain, RFC 5321 4.5.3.1 */
#define USERNAME_MAX		32

enum proc_id {
	PROC_PARENT,
	PROC_CONTROL,
	PROC_SMTPD,
	PROC_QUEUE,
	PROC_IMAPD,
	PROC_JMAPD,
	PROC_DAVD,
	PROC_STORAGED,
	PROC_MAX
};

enum listener_kind {
	LISTEN_SMTP,
	LISTEN_SUBMISSION,
	LISTEN_SUBMISSIONS,
	LISTEN_IMAP,
	LISTEN_IMAPS,
	LISTEN_JMAP,
	LISTEN_DAV,
	LISTEN_KIND_MAX
};

#define LISTENER_PLAINTEXT	0x01	/* auth allowed without TLS */
#define LISTENER_TLS		0x02	/* cert and key are set */

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	enum listener_kind	 kind;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 addr[64];	/* as written, for logs */
	uint16_t		 port;
	int			 flags;
	char			 cert[PATH_MAX];
	char			 key[PATH_MAX];
	int			 fd;		/* bound socket, or -1 */
	int			 lineno;
	/* PEM bytes, read by the parent, held by the serving role only */
	char			*tls_cert;
	size_t			 tls_certlen;
	char			*tls_key;	/* freezero() it */
	size_t			 tls_keylen;
};
TAILQ_HEAD(listenerlist, listener);

struct domain_conf {
	TAILQ_ENTRY(domain_conf) entry;
	char			 name[DOMAIN_MAX + 1];
};
TAILQ_HEAD(domainlist, domain_conf);

/*
 * Limits are one table (lib/conf.c) so a new one is a row there, an
 * enum here and a line in postern.conf(5).
 */
enum limit_id {
	LIMIT_SMTP_LINE,
	LIMIT_MESSAGE_SIZE,
	LIMIT_RECIPIENTS,
	LIMIT_SESSIONS,
	LIMIT_SESSIONS_PER_CLIENT,
	LIMIT_IDLE_TIMEOUT,
	LIMIT_DATA_TIMEOUT,
	LIMIT_BAD_COMMANDS,
	LIMIT_AUTH_FAILURES,
	LIMIT_AUTH_LOCKOUT,
	LIMIT_IMAP_LINE,
	LIMIT_IMAP_LITERAL,
	LIMIT_MAX
};

enum limit_unit {
	LIMIT_COUNT,
	LIMIT_BYTES,	/* accepts K, M, G suffixes */
	LIMIT_SECONDS	/* accepts s, m, h suffixes */
};

struct limit_def {
	const char	*name;
	enum limit_unit	 unit;
	long long	 min;
	long long	 max;
	long long	 def;
};

struct postern_conf {
	char			 conffile[PATH_MAX];
	char			 hostname[HOSTNAME_MAX + 1];
	char			 statedir[PATH_MAX];
	char			 emptydir[PATH_MAX];
	char			 control_path[PATH_MAX];
	char			 user[USERNAME_MAX + 1];
	char			 storage_user[USERNAME_MAX + 1];
	char			 cert[PATH_MAX];	/* default for listeners */
	char			 key[PATH_MAX];
	long long		 limits[LIMIT_MAX];
	struct listenerlist	 listeners;
	struct domainlist	 domains;
};

/* lib/conf.c */
extern const struct limit_def	limit_defs[LIMIT_MAX];
extern const char		*listener_kind_names[LISTEN_KIND_MAX];
struct postern_conf	*conf_new(void);
void			 conf_free(struct postern_conf *);
int			 limit_lookup(const char *);
int			 listener_kind_lookup(const char *);
uint16_t		 listener_default_port(enum listener_kind);
int			 listener_needs_tls(enum listener_kind);
enum proc_id		 listener_proc(enum listener_kind);

/* parent/parse.y: NULL on error, each error logged as file:line: msg */
struct postern_conf	*parse_config(const char *);

#endif /* POSTERN_H */
