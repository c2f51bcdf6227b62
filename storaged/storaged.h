/*
 * storaged: the one owner of the state directory.  What its files
 * share: the database handle, the account area and the password pool.
 */
#ifndef STORAGED_H
#define STORAGED_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_proto.h"
#include "proc.h"

#define STORE_DB_PATH		"/postern.db"
#define STORE_BLOB_DIR		"/blobs"
#define STORE_SPOOL_DIR		"/spool"
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
int		 store_db_run(const char *);
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

/*
 * storaged/store_blob.c: files in /blobs named by the SHA-256 of their
 * bytes, with a reference count in table blobs.  ref and unref change
 * the count inside the caller's transaction; a blob whose row went is
 * unlinked by store_blob_collect(), which every transaction's owner
 * calls after its COMMIT or ROLLBACK (it unlinks only what the table no
 * longer names, so calling it after a rollback is harmless).
 */
#define STORE_HASH_HEX		64	/* a SHA-256 in hex */

void	 store_blob_init(void);
int	 store_blob_dir(void);
int	 store_blob_ref(const char *, int64_t);
int	 store_blob_unref(const char *);
void	 store_blob_forget(const char *);
void	 store_blob_pin(const char *);
void	 store_blob_unpin(const char *);
void	 store_blob_collect(void);
int	 store_blob_open(const char *);
int	 store_blob_put(const void *, size_t, char *, size_t);
int	 store_blob_write(const void *, size_t, char *, size_t);
int	 store_blob_file(const void *, size_t, const char *, const char *,
	    const char **);
int	 store_blob_sync(void);

/* storaged/store_stmt.c: statements kept prepared, by literal or text */
sqlite3_stmt	*store_stmt(const char *);
void		 store_stmt_done(sqlite3_stmt *);
sqlite3_stmt	*store_stmt_text(const char *);
void		 store_stmt_text_done(sqlite3_stmt *);
void		 store_stmt_close(void);

/* storaged/store_sync.c: flushes off the event loop */
#define STORE_SYNC_THREADS	8	/* flushes in flight at once */
#define STORE_SYNC_BUF		65536	/* each thread's read buffer */
#define STORE_LAZY_ROWS_MAX	16384	/* rows seen unflushed, at most */

struct store_job {
	struct store_job	*next;
	void			(*run)(struct store_job *, unsigned char *,
				    size_t);
	void			(*done)(struct store_job *);
	void			*arg;
	const char		*what;	/* set by run() on failure */
	int			 err;	/* and its errno */
};

void	 store_sync_init(void);
void	 store_ckpt_close(void);
void	 store_job_submit(struct store_job *);
void	 store_job_submit_first(struct store_job *);
void	 store_job_blob_dir_run(struct store_job *, unsigned char *,
	    size_t);
int	 store_job_datasync(struct store_job *, int, const char *);
void	 store_job_hash_fd(struct store_job *, int, unsigned char *,
	    size_t, char *, int64_t *);
void	 store_db_sync(int, void (*)(void *), void *);
int	 store_db_begin_lazy(void);
int	 store_db_commit_lazy(void);
int	 store_db_durable(void);
int	 store_db_flush(void);
void	 store_db_rollback_lazy(void);

/* storaged/store_clean.c: the clean-shutdown marker */
#define STORE_CLEAN_PATH	"/clean-shutdown"

void	 store_clean_start(int);
void	 store_clean_dirty(void);
void	 store_clean_stop(void);

/*
 * storaged/store_fts.c: the full-text index, in a file of its own that
 * only the indexer thread writes, through its own connection.  Every
 * other use of SQLite is the main thread's, on store_db, which reads
 * the index attached read-only as "fts".
 */
#define STORE_FTS_PATH		"/postern-fts.db"
#define STORE_FTS_BATCH		64	/* messages in one transaction */
#define STORE_FTS_LAG_MS	50	/* a batch's wait for more */
#define STORE_FTS_HEADER_MAX	(256 * 1024)	/* header text indexed */
#define STORE_FTS_TEXT_MAX	(1024 * 1024)	/* body text indexed */

void	 store_fts_init(void);
void	 store_fts_touch(int64_t);
void	 store_fts_sweep(void);

/* storaged/store_spool.c: acceptance, from SPOOL_OPEN to COMMIT */
#define STORE_SPOOLS_MAX	4096	/* open spool files, all sessions */

void	 store_spool_init(void);
void	 store_spool_open(struct proc_peer *, struct imsg *);
void	 store_spool_rcpt(struct proc_peer *, struct imsg *);
void	 store_spool_abort(struct proc_peer *, struct imsg *);
void	 store_spool_commit(struct proc_peer *, struct imsg *);
int	 store_spool_take(enum proc_id, uint64_t);

/*
 * storaged/store_queue.c: queue entries and their recipients.
 * store_queue_insert() and store_queue_drop() work inside the caller's
 * transaction; store_queue_announce() sends an entry to queue after
 * the commit (QUEUE_RCPT x n, QUEUE_NEW).
 */
struct store_envelope {
	const char	*blob;		/* hash */
	int64_t		 size;
	const char	*sender;
	uint8_t		 body;
	uint8_t		 smtputf8;
	uint8_t		 ret;
	const char	*envid;
	const char	*auth;
	const char	*client;
	const char	*helo;
};

struct store_rcpt {
	const char	*address;
	uint8_t		 kind;		/* enum rcpt_kind */
	uint32_t	 notify;
	const char	*orcpt;
};

int64_t	 store_queue_insert(const struct store_envelope *,
	    const struct store_rcpt *, size_t);
int	 store_queue_drop(int64_t);
int	 store_queue_announce(int64_t);
void	 store_queue_recover(void);
void	 store_queue_load(struct proc_peer *, struct imsg *);
void	 store_queue_update(struct proc_peer *, struct imsg *);
void	 store_queue_remove(struct proc_peer *, struct imsg *);

/*
 * storaged/store_rcpt.c: what an address is to us.  store_resolve()
 * answers an enum rcpt_lookup and, for RCPT_LOCAL, the accounts the
 * address reaches (alias targets expanded, at most STORE_ALIAS_DEPTH
 * deep; user+tag as user; the domain's catch-all last).
 */
#define STORE_ALIAS_DEPTH	8	/* aliases of aliases */
#define STORE_RESOLVE_VISITS	4096	/* addresses looked at */
#define STORE_RESOLVE_NOCATCHALL 0x01	/* no catch-all */

int	 store_resolve(const char *, int64_t *, size_t, size_t *, int);
void	 store_rcpt_lookup(struct proc_peer *, struct imsg *);
void	 store_sender_check(struct proc_peer *, struct imsg *);

/*
 * storaged/store_deliver.c: DELIVER, local delivery in a group commit;
 * storaged/store_dsn.c: BOUNCE and its RFC 3464 report;
 * storaged/store_mailbox.c: the ctl mailbox and message verbs.
 */
struct store_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 err;
};

void	 store_buf_add(struct store_buf *, const char *, size_t);
void	 store_buf_str(struct store_buf *, const char *);
void	 store_buf_printf(struct store_buf *, const char *, ...)
	    __attribute__((__format__ (printf, 2, 3)));
char	*store_buf_finish(struct store_buf *);
/*
 * storaged/store_parts.c: a message's large attachments as blobs of
 * their own, so identical ones are stored once.
 */
#define STORE_PART_MIN		(16 * 1024)	/* smallest part cut out */
#define STORE_PARTS_MAX		256	/* parts cut out of one message */

/* A range of a message stored as its own blob. */
struct store_part {
	size_t			 start;		/* in the message's blob */
	size_t			 len;
	char			 hash[STORE_HASH_HEX + 1];
};

/* A part's descriptor and where it goes back, for a reader. */
struct store_piece {
	int			 fd;
	int64_t			 start;		/* after the prefix */
	int64_t			 len;
};

/* What one message yields once, for every account it is filed for. */
struct mime_message;
struct deliver_msg {
	char			*raw;
	size_t			 len;
	struct mime_message	*mime;
	ptrdiff_t		 shift;		/* applied to mime now */
	char			*from_addr;
	int			 planned;	/* parts and skel are named */
	int			 written;	/* by a sync thread */
	int			 durable;	/* all in /blobs, synced */
	struct store_part	*parts;
	size_t			 nparts;
	char			 skel[STORE_HASH_HEX + 1];
	char			*skel_buf;
	size_t			 skel_len;
	char			*json;		/* mime_to_json(), or NULL */
	ptrdiff_t		 json_shift;	/* the shift json was made at */
};

int	 store_parts_plan(struct deliver_msg *);
int	 store_parts_write(struct deliver_msg *, const char **);
void	 store_parts_forget(struct deliver_msg *);
int	 store_parts_blob(struct deliver_msg *, const char *, const char **,
	    int64_t *);
int	 store_parts_insert(struct deliver_msg *, int64_t);
int	 store_parts_copy(int64_t, int64_t);
int	 store_parts_blobs(const char *, int64_t, char ***, size_t *,
	    size_t *);
int	 store_message_fd(int64_t, const char *);
int	 store_message_pieces(int64_t, const char *, int *,
	    struct store_piece *, size_t, size_t *);

int	 store_msg_load(struct deliver_msg *, const char *, int *, char *,
	    size_t);
int	 store_msg_parse(struct deliver_msg *, int *, char *, size_t, int *);
void	 store_msg_clear(struct deliver_msg *);
int64_t	 store_message_insert(struct deliver_msg *, const char *, int64_t,
	    const char *, size_t, int64_t);
int	 store_blob_read(const char *, size_t, char **, size_t *);
size_t	 store_deliver_max(void);
int	 store_queue_drop_if_done(int64_t);
int	 store_messages_purge(int64_t);
void	 store_deliver(struct proc_peer *, struct imsg *);
void	 store_bounce(struct proc_peer *, struct imsg *);
int	 store_mailbox_list(const char *, store_emit_fn, void *, char *,
	    size_t);
int	 store_message_list(const char *, const char *, store_emit_fn, void *,
	    char *, size_t);
int	 store_message_open(const char *, const char *, uint32_t, char **,
	    int *, char *, size_t);

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

/*
 * imapd's side of the store.  store_imap.c: sessions bound to their
 * account, mailboxes, SELECT and SYNC, change events; store_imap_msg.c:
 * FETCH, STORE, COPY, EXPUNGE; store_imap_append.c: APPEND and
 * MULTIAPPEND; store_search.c: SEARCH and SORT,
 * and the sort keys made at ingestion; store_thread.c: THREAD;
 * store_keyword.c: IMAP flags and stored keywords.
 */
#define STORE_KEYWORD_LEN	255	/* bytes of a keyword (RFC 8621) */
#define STORE_KEYWORDS_MAX	128	/* on a message, or in one STORE */
#define STORE_MBOX_NAME_MAX	1000	/* bytes of a mailbox name */
#define STORE_SEARCH_PARAMS	8192	/* bound values in one search */

struct store_keywords {
	char		*kw[STORE_KEYWORDS_MAX];
	size_t		 n;
};

struct store_ranges {
	uint32_t	 n;
	uint32_t	 lo[IMAP_RANGES_MAX];
	uint32_t	 hi[IMAP_RANGES_MAX];
};

/* The ranges of a request sent in pieces (MSG_RANGES). */
struct store_rangelist {
	uint32_t	*lo;
	uint32_t	*hi;
	size_t		 n;
	size_t		 cap;
};

struct store_search_param {
	int		 text;
	int64_t		 i;
	char		*s;
};

struct store_search {
	struct store_buf		 sql;
	struct store_search_param	*params;
	size_t				 nparams;
	time_t				 now;
	int				 err;
	int				 messages;	/* uses m. */
	int				 fields;	/* uses ms. */
};

/*
 * mailbox_messages.flags: the message's system keywords as bits, kept
 * by the triggers of migration 3 (store_db.c), which spell them out.
 */
#define STORE_FLAG_SEEN		0x01
#define STORE_FLAG_ANSWERED	0x02
#define STORE_FLAG_FLAGGED	0x04
#define STORE_FLAG_DELETED	0x08
#define STORE_FLAG_DRAFT	0x10

int	 store_keyword_from_imap(const char *, char *, size_t);
void	 store_keyword_to_imap(const char *, struct store_buf *);
int	 store_keyword_is_system(const char *);
int	 store_keyword_flag(const char *);
void	 store_flags_to_imap(int, char *, size_t);
int	 store_mailbox_has_keywords(int64_t);
void	 store_keywords_free(struct store_keywords *);
int	 store_keywords_has(const struct store_keywords *, const char *);
int	 store_keywords_add(struct store_keywords *, const char *);
void	 store_keywords_remove(struct store_keywords *, const char *);
int	 store_keywords_from_imap(const char *, struct store_keywords *);
int	 store_keywords_from_list(const char *, struct store_keywords *);
void	 store_keywords_to_imap(const struct store_keywords *,
	    struct store_buf *);
void	 store_keywords_list_to_imap(const char *, char *, size_t);

void	 store_imap_bind(uint32_t, int64_t);
int64_t	 store_imap_account(struct proc_peer *, struct imsg *);
int	 store_imap_selected(uint32_t, uint64_t, int *);
void	 store_imap_changed(int64_t, int64_t, int64_t);
int64_t	 store_modseq_next(int64_t);
int	 store_change_add(int64_t, int64_t, const char *, int64_t, int);
int	 store_ranges_get(struct msg_in *, struct store_ranges *);
int	 store_ranges_take(struct imsg *, struct msg_in *,
	    struct store_rangelist *);
void	 store_rangelist_free(struct store_rangelist *);
void	 store_imap_ranges(struct proc_peer *, struct imsg *);
int	 store_mbox_name(const char *, char *, size_t);
int64_t	 store_imap_mailbox_find(int64_t, const char *, uint32_t *);
void	 store_imap_result(uint32_t, uint32_t, int, const char *);
void	 store_imap_session_end(struct proc_peer *, struct imsg *);
void	 store_imap_list(struct proc_peer *, struct imsg *);
void	 store_imap_create(struct proc_peer *, struct imsg *);
void	 store_imap_delete(struct proc_peer *, struct imsg *);
void	 store_imap_rename(struct proc_peer *, struct imsg *);
void	 store_imap_subscribe(struct proc_peer *, struct imsg *);
void	 store_imap_select(struct proc_peer *, struct imsg *);
void	 store_imap_unselect(struct proc_peer *, struct imsg *);
void	 store_imap_sync(struct proc_peer *, struct imsg *);

int	 store_placement_drop(int64_t, int64_t, uint32_t, int64_t, int64_t,
	    int);
int	 store_placement_add(int64_t, int64_t, int64_t, uint32_t, int64_t);
int64_t	 store_mailbox_take_uids(int64_t, uint32_t, int64_t, uint32_t *);
int	 store_keyword_set(int64_t, int64_t, const char *, int);
void	 store_imap_fetch(struct proc_peer *, struct imsg *);
void	 store_imap_store(struct proc_peer *, struct imsg *);
void	 store_imap_copy(struct proc_peer *, struct imsg *);
void	 store_imap_expunge(struct proc_peer *, struct imsg *);
void	 store_imap_append(struct proc_peer *, struct imsg *);
void	 store_imap_append_commit(struct proc_peer *, struct imsg *);
void	 store_imap_append_abort(struct proc_peer *, struct imsg *);
void	 store_imap_append_end(uint32_t);

struct mime_envelope;
struct mime_addrlist;

int64_t	 store_date_parse(const char *, int *);
void	 store_addrlist_render(struct store_buf *,
	    const struct mime_addrlist *);
int	 store_sortkeys_bind(sqlite3_stmt *, int,
	    const struct mime_envelope *);
void	 store_search_init(void);
int	 store_search_parse(struct msg_in *, struct store_search *);
void	 store_search_join(struct store_buf *, const struct store_search *,
	    int);
int	 store_search_bind(sqlite3_stmt *, int, const struct store_search *);
void	 store_search_free(struct store_search *);
void	 store_imap_search(struct proc_peer *, struct imsg *);
void	 store_imap_thread(struct proc_peer *, struct imsg *);

#endif /* STORAGED_H */
