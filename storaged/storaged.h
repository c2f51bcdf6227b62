/*
 * storaged: the one owner of the state directory.  What its files
 * share: the database handle, the account area and the password pool.
 */
#ifndef STORAGED_H
#define STORAGED_H

#include <sqlite3.h>
#include <stdint.h>

#include "proc.h"

#define STORE_DB_PATH		"/postern.db"
#define STORE_BLOB_DIR		"/blobs"
#define STORE_BUSY_TIMEOUT_MS	5000

#define STORE_LOCALPART_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define STORE_LABEL_MAX		63	/* RFC 1035 2.3.4 */
#define STORE_PASSWORD_MAX	1024	/* bytes of clear text */
#define STORE_HASH_MAX		128	/* an encoded argon2id hash */
#define STORE_ERR_MAX		512	/* one FAIL line */

/* argon2id, the parameters of OWASP's first recommendation. */
#define STORE_ARGON2_T		2
#define STORE_ARGON2_M		19456	/* KiB */
#define STORE_ARGON2_P		1
#define STORE_ARGON2_SALT	16
#define STORE_ARGON2_HASHLEN	32

#define STORE_AUTH_THREADS	2
#define STORE_AUTH_QUEUE_MAX	256	/* jobs waiting for a thread */

/* storaged/store_db.c */
extern sqlite3	*store_db;
void		 store_db_prepare(void);
void		 store_db_open(void);
void		 store_db_close(void);
int		 store_db_begin(void);
int		 store_db_commit(void);
void		 store_db_rollback(void);
sqlite3_stmt	*store_db_stmt(const char *);

/* storaged/store_account.c */
#define STORE_ALIAS_TARGETS_MAX	1000	/* targets of one alias */

typedef void (*store_emit_fn)(const char *, void *);

int	 store_addr_normalize(const char *, char *, size_t, char *, size_t);
int	 store_domain_normalize(const char *, char *, size_t, char *,
	    size_t);
int	 store_domains_from_conf(struct postern_conf *);
int	 store_domain_add(const char *, char *, size_t);
int	 store_domain_del(const char *, char *, size_t);
int	 store_domain_list(store_emit_fn, void *, char *, size_t);
int	 store_account_add_check(const char *, const char *, char *, size_t,
	    char *, size_t);
int	 store_account_create(const char *, const char *, char *, size_t);
int64_t	 store_account_find(const char *, char *, size_t, char *, size_t);
int	 store_account_del(const char *, char *, size_t);
int	 store_account_list(store_emit_fn, void *, char *, size_t);
int	 store_account_passwd_check(const char *, const char *, char *,
	    size_t, char *, size_t);
int	 store_account_set_hash(const char *, const char *, char *, size_t);
int64_t	 store_auth_lookup(const char *, char *, size_t, char *, size_t);
int	 store_auth_current(int64_t, const char *);
int	 store_alias_add(const char *, const char *, char *, size_t);
int	 store_alias_del(const char *, const char *, char *, size_t);
int	 store_alias_list(store_emit_fn, void *, char *, size_t);

/* storaged/store_auth.c */
enum auth_job_kind {
	AUTH_JOB_HASH,
	AUTH_JOB_VERIFY
};

struct auth_job {
	struct auth_job		*next;
	enum auth_job_kind	 kind;
	char			 password[STORE_PASSWORD_MAX + 1];
	size_t			 passwordlen;
	char			 hash[STORE_HASH_MAX];	/* in or out */
	int			 ok;	/* hash made, or password matched */
	void			(*done)(struct auth_job *);
	/* The request it answers. */
	enum proc_id		 peer;
	uint32_t		 peerid;
	uint32_t		 type;
	int64_t			 account_id;
	char			 address[ADDRESS_MAX + 1];
};

void		 auth_pool_init(void);
struct auth_job	*auth_job_new(enum auth_job_kind, const char *,
		    void (*)(struct auth_job *));
int		 auth_job_submit(struct auth_job *);
void		 auth_job_free(struct auth_job *);
const char	*auth_dummy_hash(void);

#endif /* STORAGED_H */
