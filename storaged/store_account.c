/*
 * Domains, accounts, their addresses and aliases.  Addresses are kept
 * with the local part as given and the domain in lower case; both
 * compare without regard to case (COLLATE NOCASE in the schema).
 * Every function answers an admin or auth request: on failure it
 * fills err with one line a user can read and returns -1.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "storaged.h"

/* What every new account gets, in this order (RFC 6154 special-use). */
static const struct {
	const char	*name;
	const char	*special_use;
} store_default_mailboxes[] = {
	{ "INBOX",	NULL },
	{ "Drafts",	"\\Drafts" },
	{ "Sent",	"\\Sent" },
	{ "Junk",	"\\Junk" },
	{ "Trash",	"\\Trash" },
	{ "Archive",	"\\Archive" },
};

static void store_err(char *, size_t, const char *, ...)
    __attribute__((__format__ (printf, 3, 4)));

static void
store_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Logs what SQLite said; the user gets a short line. */
static int
store_sql_fail(char *err, size_t errlen, const char *what)
{
	log_warnx("%s: %s: %s", STORE_DB_PATH, what,
	    sqlite3_errmsg(store_db));
	store_err(err, errlen, "storage error (%s)", what);
	store_db_rollback();
	return -1;
}

static int
store_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ?
	    0 : -1;
}

/*
 * Lower-cases and checks a domain name: labels of letters, digits and
 * hyphens, none empty, longer than 63 or starting or ending with a
 * hyphen, DOMAIN_MAX bytes in all.
 */
int
store_domain_normalize(const char *in, char *out, size_t outlen,
    char *err, size_t errlen)
{
	size_t	 i, len, label = 0;

	len = strlen(in);
	if (len == 0) {
		store_err(err, errlen, "empty domain name");
		return -1;
	}
	if (len > DOMAIN_MAX || len >= outlen) {
		store_err(err, errlen, "domain name longer than %d bytes",
		    DOMAIN_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (in[i] == '.') {
			if (label == 0 || in[i - 1] == '-')
				goto bad;
			label = 0;
			out[i] = '.';
			continue;
		}
		if (!isascii((unsigned char)in[i]) ||
		    (!isalnum((unsigned char)in[i]) && in[i] != '-'))
			goto bad;
		if (in[i] == '-' && label == 0)
			goto bad;
		if (++label > STORE_LABEL_MAX)
			goto bad;
		out[i] = tolower((unsigned char)in[i]);
	}
	if (label == 0 || in[len - 1] == '-')
		goto bad;
	out[len] = '\0';
	return 0;
 bad:
	store_err(err, errlen, "invalid domain name");
	return -1;
}

/* RFC 5322 atext. */
static int
store_atext(int c)
{
	if (!isascii(c))
		return 0;
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Checks a local@domain address (a dot-atom local part of at most 64
 * bytes) and writes it with its domain in lower case.
 */
int
store_addr_normalize(const char *in, char *out, size_t outlen,
    char *err, size_t errlen)
{
	const char	*at;
	char		 domain[DOMAIN_MAX + 1];
	size_t		 i, llen, len;

	len = strlen(in);
	if (len == 0) {
		store_err(err, errlen, "empty address");
		return -1;
	}
	if (len > ADDRESS_MAX || len >= outlen) {
		store_err(err, errlen, "address longer than %d bytes",
		    ADDRESS_MAX);
		return -1;
	}
	if ((at = strrchr(in, '@')) == NULL) {
		store_err(err, errlen, "invalid address: no @domain");
		return -1;
	}
	llen = at - in;
	if (llen == 0 || llen > STORE_LOCALPART_MAX) {
		store_err(err, errlen, "invalid address: the local part must "
		    "be 1 to %d bytes", STORE_LOCALPART_MAX);
		return -1;
	}
	for (i = 0; i < llen; i++) {
		if (in[i] == '.') {
			if (i == 0 || i == llen - 1 || in[i - 1] == '.')
				goto bad;
			continue;
		}
		if (!store_atext((unsigned char)in[i]))
			goto bad;
	}
	if (store_domain_normalize(at + 1, domain, sizeof(domain), err,
	    errlen) == -1)
		return -1;
	memcpy(out, in, llen);
	out[llen] = '@';
	strlcpy(out + llen + 1, domain, outlen - llen - 1);
	return 0;
 bad:
	store_err(err, errlen, "invalid address: bad character or dot in "
	    "the local part");
	return -1;
}

static const char *
store_addr_domain(const char *addr)
{
	return strrchr(addr, '@') + 1;
}

/* The id of a domain in the store, 0 if it is not there, -1 on error. */
static int64_t
store_domain_id(const char *name)
{
	sqlite3_stmt	*st;
	int64_t		 id = -1;
	int		 rc;

	if ((st = store_db_stmt("SELECT id FROM domains WHERE name = ?")) ==
	    NULL)
		return -1;
	if (store_bind_text(st, 1, name) == 0) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
		else if (rc == SQLITE_DONE)
			id = 0;
	}
	sqlite3_finalize(st);
	return id;
}

static int
store_domain_insert(const char *name)
{
	sqlite3_stmt	*st;
	int		 rc = -1;

	if ((st = store_db_stmt("INSERT INTO domains (name, created) "
	    "VALUES (?, ?)")) == NULL)
		return -1;
	if (store_bind_text(st, 1, name) == 0 &&
	    sqlite3_bind_int64(st, 2, time(NULL)) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	sqlite3_finalize(st);
	return rc;
}

static int
store_domain_in_conf(const char *name)
{
	struct domain_conf	*d;

	TAILQ_FOREACH(d, &proc_conf->domains, entry)
		if (strcasecmp(d->name, name) == 0)
			return 1;
	return 0;
}

/*
 * Every domain of postern.conf is in the store (start-up, reload).
 * -1 if one could not be added, with the reason logged.
 */
int
store_domains_from_conf(struct postern_conf *conf)
{
	struct domain_conf	*d;
	char			 name[DOMAIN_MAX + 1], err[STORE_ERR_MAX];
	int64_t			 id;
	int			 rc = 0;

	TAILQ_FOREACH(d, &conf->domains, entry) {
		if (store_domain_normalize(d->name, name, sizeof(name), err,
		    sizeof(err)) == -1) {
			log_warnx("domain %s from %s: %s", d->name,
			    conf->conffile, err);
			rc = -1;
			continue;
		}
		if ((id = store_domain_id(name)) > 0)
			continue;
		if (id == -1 || store_domain_insert(name) == -1) {
			log_warnx("%s: cannot add domain %s: %s",
			    STORE_DB_PATH, name, sqlite3_errmsg(store_db));
			rc = -1;
			continue;
		}
		log_info("domain %s added from %s", name, conf->conffile);
	}
	return rc;
}

int
store_domain_add(const char *in, char *err, size_t errlen)
{
	char	 name[DOMAIN_MAX + 1];
	int64_t	 id;

	if (store_domain_normalize(in, name, sizeof(name), err, errlen) == -1)
		return -1;
	if ((id = store_domain_id(name)) == -1)
		return store_sql_fail(err, errlen, "domain lookup");
	if (id > 0) {
		store_err(err, errlen, "domain %s exists", name);
		return -1;
	}
	if (store_domain_insert(name) == -1)
		return store_sql_fail(err, errlen, "domain insert");
	log_info("domain %s added", name);
	return 0;
}

static int64_t
store_count(const char *sql, int64_t id)
{
	sqlite3_stmt	*st;
	int64_t		 n = -1;

	if ((st = store_db_stmt(sql)) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, id) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int
store_domain_del(const char *in, char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	char		 name[DOMAIN_MAX + 1];
	int64_t		 id, accounts, aliases;
	int		 rc;

	if (store_domain_normalize(in, name, sizeof(name), err, errlen) == -1)
		return -1;
	if (store_domain_in_conf(name)) {
		store_err(err, errlen, "domain %s is set in %s", name,
		    proc_conf->conffile);
		return -1;
	}
	if ((id = store_domain_id(name)) == -1)
		return store_sql_fail(err, errlen, "domain lookup");
	if (id == 0) {
		store_err(err, errlen, "no domain %s", name);
		return -1;
	}
	accounts = store_count("SELECT count(*) FROM accounts "
	    "WHERE domain_id = ?", id);
	aliases = store_count("SELECT count(*) FROM aliases "
	    "WHERE domain_id = ?", id);
	if (accounts == -1 || aliases == -1)
		return store_sql_fail(err, errlen, "domain count");
	if (accounts > 0 || aliases > 0) {
		store_err(err, errlen, "domain %s still has %lld account%s "
		    "and %lld alias%s: delete them first", name,
		    (long long)accounts, accounts == 1 ? "" : "s",
		    (long long)aliases, aliases == 1 ? "" : "es");
		return -1;
	}
	if ((st = store_db_stmt("DELETE FROM domains WHERE id = ?")) == NULL)
		return store_sql_fail(err, errlen, "domain delete");
	rc = sqlite3_bind_int64(st, 1, id) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	if (rc == -1)
		return store_sql_fail(err, errlen, "domain delete");
	log_info("domain %s deleted", name);
	return 0;
}

/* Runs a one-column query and hands each row to emit. */
static int
store_list(const char *sql, void (*emit)(const char *, void *), void *arg,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	const char	*s;
	int		 rc;

	if ((st = store_db_stmt(sql)) == NULL)
		return store_sql_fail(err, errlen, "list");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((s = (const char *)sqlite3_column_text(st, 0)) == NULL)
			continue;
		emit(s, arg);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sql_fail(err, errlen, "list");
	return 0;
}

int
store_domain_list(void (*emit)(const char *, void *), void *arg,
    char *err, size_t errlen)
{
	return store_list("SELECT name FROM domains ORDER BY name", emit, arg,
	    err, errlen);
}

/*
 * Who owns an address: the account id, 0 for nobody, -1 on error.
 * With canon, the owner's own address is copied there.
 */
static int64_t
store_address_owner(const char *addr, char *canon, size_t canonlen)
{
	sqlite3_stmt	*st;
	int64_t		 id = -1;
	int		 rc;

	if ((st = store_db_stmt("SELECT a.id, a.address FROM addresses d "
	    "JOIN accounts a ON a.id = d.account_id WHERE d.address = ?")) ==
	    NULL)
		return -1;
	if (store_bind_text(st, 1, addr) == 0) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			id = sqlite3_column_int64(st, 0);
			if (canon != NULL)
				strlcpy(canon, (const char *)
				    sqlite3_column_text(st, 1), canonlen);
		} else if (rc == SQLITE_DONE)
			id = 0;
	}
	sqlite3_finalize(st);
	return id;
}

static int64_t
store_alias_count(const char *alias)
{
	sqlite3_stmt	*st;
	int64_t		 n = -1;

	if ((st = store_db_stmt("SELECT count(*) FROM aliases "
	    "WHERE alias = ?")) == NULL)
		return -1;
	if (store_bind_text(st, 1, alias) == 0 &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int
store_password_check(const char *password, char *err, size_t errlen)
{
	size_t	 len = strlen(password);

	if (len == 0) {
		store_err(err, errlen, "empty password");
		return -1;
	}
	if (len > STORE_PASSWORD_MAX) {
		store_err(err, errlen, "password longer than %d bytes",
		    STORE_PASSWORD_MAX);
		return -1;
	}
	return 0;
}

/* Whether addr may become a new account; its domain must be local. */
static int64_t
store_account_free(const char *addr, char *err, size_t errlen)
{
	char	 owner[ADDRESS_MAX + 1];
	int64_t	 domain_id, id, n;

	if ((domain_id = store_domain_id(store_addr_domain(addr))) == -1)
		return store_sql_fail(err, errlen, "domain lookup");
	if (domain_id == 0) {
		store_err(err, errlen, "domain %s is not a local domain",
		    store_addr_domain(addr));
		return -1;
	}
	if ((id = store_address_owner(addr, owner, sizeof(owner))) == -1)
		return store_sql_fail(err, errlen, "address lookup");
	if (id > 0) {
		if (strcasecmp(owner, addr) == 0)
			store_err(err, errlen, "account %s exists", addr);
		else
			store_err(err, errlen, "address %s belongs to "
			    "account %s", addr, owner);
		return -1;
	}
	if ((n = store_alias_count(addr)) == -1)
		return store_sql_fail(err, errlen, "alias lookup");
	if (n > 0) {
		store_err(err, errlen, "address %s is an alias", addr);
		return -1;
	}
	return domain_id;
}

/*
 * The checks made before a password is hashed, so a request that
 * cannot succeed does not cost a hash.  They are made again at
 * creation: another request may have come in between.
 */
int
store_account_add_check(const char *in, const char *password,
    char *canon, size_t canonlen, char *err, size_t errlen)
{
	if (store_addr_normalize(in, canon, canonlen, err, errlen) == -1)
		return -1;
	if (store_password_check(password, err, errlen) == -1)
		return -1;
	if (store_account_free(canon, err, errlen) == -1)
		return -1;
	return 0;
}

static int
store_step_done(sqlite3_stmt *st)
{
	int	 rc;

	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* One transaction: the account, its address, its mailboxes. */
int
store_account_create(const char *addr, const char *hash, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	int64_t		 domain_id, id;
	time_t		 now = time(NULL);
	size_t		 i;

	if (store_db_begin() == -1)
		return store_sql_fail(err, errlen, "begin");
	if ((domain_id = store_account_free(addr, err, errlen)) == -1) {
		store_db_rollback();
		return -1;
	}
	if ((st = store_db_stmt("INSERT INTO accounts (domain_id, address, "
	    "password, created) VALUES (?, ?, ?, ?)")) == NULL ||
	    sqlite3_bind_int64(st, 1, domain_id) != SQLITE_OK ||
	    store_bind_text(st, 2, addr) == -1 ||
	    store_bind_text(st, 3, hash) == -1 ||
	    sqlite3_bind_int64(st, 4, now) != SQLITE_OK ||
	    store_step_done(st) == -1)
		goto fail;
	sqlite3_finalize(st);
	id = sqlite3_last_insert_rowid(store_db);

	if ((st = store_db_stmt("INSERT INTO addresses (account_id, address) "
	    "VALUES (?, ?)")) == NULL ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    store_bind_text(st, 2, addr) == -1 ||
	    store_step_done(st) == -1)
		goto fail;
	sqlite3_finalize(st);

	if ((st = store_db_stmt("INSERT INTO mailboxes (account_id, name, "
	    "special_use, uidvalidity) VALUES (?, ?, ?, ?)")) == NULL)
		goto fail;
	for (i = 0; i < sizeof(store_default_mailboxes) /
	    sizeof(store_default_mailboxes[0]); i++) {
		if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    store_bind_text(st, 2,
		    store_default_mailboxes[i].name) == -1 ||
		    (store_default_mailboxes[i].special_use == NULL ?
		    sqlite3_bind_null(st, 3) :
		    sqlite3_bind_text(st, 3,
		    store_default_mailboxes[i].special_use, -1,
		    SQLITE_STATIC)) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 4, (uint32_t)now) != SQLITE_OK ||
		    store_step_done(st) == -1)
			goto fail;
	}
	sqlite3_finalize(st);

	/* Aliases made before the account now follow it. */
	if ((st = store_db_stmt("UPDATE aliases SET account_id = ? "
	    "WHERE target = ? AND account_id IS NULL")) == NULL ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    store_bind_text(st, 2, addr) == -1 ||
	    store_step_done(st) == -1)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;

	if (store_db_commit() == -1)
		return store_sql_fail(err, errlen, "commit");
	log_info("account %s added", addr);
	return 0;
 fail:
	store_sql_fail(err, errlen, "account insert");
	sqlite3_finalize(st);
	return -1;
}

/* The id of the account whose own address this is, or -1 with err. */
int64_t
store_account_find(const char *in, char *canon, size_t canonlen,
    char *err, size_t errlen)
{
	sqlite3_stmt	*st;
	int64_t		 id = -1;
	int		 rc;

	if (store_addr_normalize(in, canon, canonlen, err, errlen) == -1)
		return -1;
	if ((st = store_db_stmt("SELECT id, address FROM accounts "
	    "WHERE address = ?")) == NULL)
		return store_sql_fail(err, errlen, "account lookup");
	if (store_bind_text(st, 1, canon) == -1)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		strlcpy(canon, (const char *)sqlite3_column_text(st, 1),
		    canonlen);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		store_err(err, errlen, "no account %s", canon);
	else if (rc != SQLITE_ROW)
		return store_sql_fail(err, errlen, "account lookup");
	return id;
}

int
store_account_del(const char *in, char *err, size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	char		 addr[ADDRESS_MAX + 1];
	int64_t		 id;
	size_t		 i;
	static const char *const sql[] = {
		"DELETE FROM aliases WHERE account_id = ?1 OR target IN "
		"(SELECT address FROM addresses WHERE account_id = ?1)",
		"DELETE FROM mailboxes WHERE account_id = ?1",
		"DELETE FROM addresses WHERE account_id = ?1",
		"DELETE FROM accounts WHERE id = ?1",
	};

	if (store_db_begin() == -1)
		return store_sql_fail(err, errlen, "begin");
	if ((id = store_account_find(in, addr, sizeof(addr), err,
	    errlen)) == -1) {
		store_db_rollback();
		return -1;
	}
	if (store_messages_purge(id) == -1)
		return store_sql_fail(err, errlen, "account delete");
	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if ((st = store_db_stmt(sql[i])) == NULL ||
		    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
		    store_step_done(st) == -1) {
			store_sql_fail(err, errlen, "account delete");
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_finalize(st);
	}
	if (store_db_commit() == -1) {
		store_blob_collect();
		return store_sql_fail(err, errlen, "commit");
	}
	store_blob_collect();
	log_info("account %s deleted", addr);
	return 0;
}

int
store_account_list(void (*emit)(const char *, void *), void *arg,
    char *err, size_t errlen)
{
	return store_list("SELECT address FROM accounts ORDER BY "
	    "substr(address, instr(address, '@') + 1), address", emit, arg,
	    err, errlen);
}

int
store_account_passwd_check(const char *in, const char *password,
    char *canon, size_t canonlen, char *err, size_t errlen)
{
	if (store_account_find(in, canon, canonlen, err, errlen) == -1)
		return -1;
	return store_password_check(password, err, errlen);
}

int
store_account_set_hash(const char *addr, const char *hash, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_db_stmt("UPDATE accounts SET password = ? "
	    "WHERE address = ?")) == NULL)
		return store_sql_fail(err, errlen, "password update");
	rc = store_bind_text(st, 1, hash) == 0 &&
	    store_bind_text(st, 2, addr) == 0 ? sqlite3_step(st) : SQLITE_ERROR;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sql_fail(err, errlen, "password update");
	if (sqlite3_changes(store_db) != 1) {
		store_err(err, errlen, "no account %s", addr);
		return -1;
	}
	log_info("account %s: password changed", addr);
	return 0;
}

/*
 * For a login: the account an address reaches (its own address or
 * one of its addresses), with its canonical address and hash.
 * Returns the id, 0 for no such account, -1 on a storage error.
 */
int64_t
store_auth_lookup(const char *user, char *canon, size_t canonlen,
    char *hash, size_t hashlen)
{
	sqlite3_stmt	*st;
	char		 addr[ADDRESS_MAX + 1], err[STORE_ERR_MAX];
	int64_t		 id = -1;
	int		 rc;

	if (store_addr_normalize(user, addr, sizeof(addr), err,
	    sizeof(err)) == -1)
		return 0;
	if ((st = store_db_stmt("SELECT a.id, a.address, a.password "
	    "FROM addresses d JOIN accounts a ON a.id = d.account_id "
	    "WHERE d.address = ?")) == NULL)
		return -1;
	if (store_bind_text(st, 1, addr) == -1)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (strlcpy(canon, (const char *)sqlite3_column_text(st, 1),
		    canonlen) >= canonlen ||
		    strlcpy(hash, (const char *)sqlite3_column_text(st, 2),
		    hashlen) >= hashlen) {
			log_warnx("account %lld: stored address or hash too "
			    "long", (long long)id);
			id = -1;
		}
	} else if (rc == SQLITE_DONE)
		id = 0;
	else
		log_warnx("%s: auth lookup: %s", STORE_DB_PATH,
		    sqlite3_errmsg(store_db));
	sqlite3_finalize(st);
	return id;
}

/* Whether the account still has the hash a login was checked with. */
int
store_auth_current(int64_t id, const char *hash)
{
	sqlite3_stmt	*st;
	int		 ok = 0;

	if ((st = store_db_stmt("SELECT 1 FROM accounts "
	    "WHERE id = ? AND password = ?")) == NULL)
		return 0;
	if (sqlite3_bind_int64(st, 1, id) == SQLITE_OK &&
	    store_bind_text(st, 2, hash) == 0 &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = 1;
	sqlite3_finalize(st);
	return ok;
}

/*
 * An alias is an address, or "@domain": the domain's catch-all, which
 * takes mail for any address there that nothing else takes.
 */
static int
store_alias_normalize(const char *in, char *out, size_t outlen, char *err,
    size_t errlen)
{
	if (in[0] != '@')
		return store_addr_normalize(in, out, outlen, err, errlen);
	if (outlen < 2) {
		store_err(err, errlen, "alias too long");
		return -1;
	}
	out[0] = '@';
	return store_domain_normalize(in + 1, out + 1, outlen - 1, err,
	    errlen);
}

int
store_alias_add(const char *in_alias, const char *in_target, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st = NULL;
	char		 alias[ADDRESS_MAX + 1], target[ADDRESS_MAX + 1];
	char		 owner[ADDRESS_MAX + 1];
	int64_t		 domain_id, id, target_id, n;

	if (store_alias_normalize(in_alias, alias, sizeof(alias), err,
	    errlen) == -1 ||
	    store_addr_normalize(in_target, target, sizeof(target), err,
	    errlen) == -1)
		return -1;
	if (strcasecmp(alias, target) == 0) {
		store_err(err, errlen, "alias %s points at itself", alias);
		return -1;
	}
	if ((domain_id = store_domain_id(store_addr_domain(alias))) == -1)
		return store_sql_fail(err, errlen, "domain lookup");
	if (domain_id == 0) {
		store_err(err, errlen, "domain %s is not a local domain",
		    store_addr_domain(alias));
		return -1;
	}
	if ((id = store_address_owner(alias, owner, sizeof(owner))) == -1)
		return store_sql_fail(err, errlen, "address lookup");
	if (id > 0) {
		store_err(err, errlen, "alias %s would shadow account %s",
		    alias, owner);
		return -1;
	}
	if ((n = store_alias_count(alias)) == -1)
		return store_sql_fail(err, errlen, "alias lookup");
	if (n >= STORE_ALIAS_TARGETS_MAX) {
		store_err(err, errlen, "alias %s has %d targets, the most "
		    "allowed", alias, STORE_ALIAS_TARGETS_MAX);
		return -1;
	}
	if ((target_id = store_address_owner(target, NULL, 0)) == -1)
		return store_sql_fail(err, errlen, "address lookup");
	if ((st = store_db_stmt("INSERT INTO aliases (domain_id, alias, "
	    "target, account_id) VALUES (?, ?, ?, ?)")) == NULL)
		return store_sql_fail(err, errlen, "alias insert");
	if (sqlite3_bind_int64(st, 1, domain_id) != SQLITE_OK ||
	    store_bind_text(st, 2, alias) == -1 ||
	    store_bind_text(st, 3, target) == -1 ||
	    (target_id > 0 ? sqlite3_bind_int64(st, 4, target_id) :
	    sqlite3_bind_null(st, 4)) != SQLITE_OK) {
		sqlite3_finalize(st);
		return store_sql_fail(err, errlen, "alias insert");
	}
	n = sqlite3_step(st);
	sqlite3_finalize(st);
	if (n == SQLITE_CONSTRAINT_UNIQUE) {
		store_err(err, errlen, "alias %s -> %s exists", alias, target);
		return -1;
	}
	if (n != SQLITE_DONE)
		return store_sql_fail(err, errlen, "alias insert");
	log_info("alias %s -> %s added", alias, target);
	return 0;
}

/* An empty target deletes every target of the alias. */
int
store_alias_del(const char *in_alias, const char *in_target, char *err,
    size_t errlen)
{
	sqlite3_stmt	*st;
	char		 alias[ADDRESS_MAX + 1], target[ADDRESS_MAX + 1];
	int		 rc, all = in_target[0] == '\0';

	if (store_alias_normalize(in_alias, alias, sizeof(alias), err,
	    errlen) == -1)
		return -1;
	if (!all && store_addr_normalize(in_target, target, sizeof(target),
	    err, errlen) == -1)
		return -1;
	if ((st = store_db_stmt(all ? "DELETE FROM aliases WHERE alias = ?" :
	    "DELETE FROM aliases WHERE alias = ? AND target = ?")) == NULL)
		return store_sql_fail(err, errlen, "alias delete");
	if (store_bind_text(st, 1, alias) == -1 ||
	    (!all && store_bind_text(st, 2, target) == -1))
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_sql_fail(err, errlen, "alias delete");
	if (sqlite3_changes(store_db) == 0) {
		if (all)
			store_err(err, errlen, "no alias %s", alias);
		else
			store_err(err, errlen, "no alias %s -> %s", alias,
			    target);
		return -1;
	}
	if (all)
		log_info("alias %s deleted", alias);
	else
		log_info("alias %s -> %s deleted", alias, target);
	return 0;
}

int
store_alias_list(void (*emit)(const char *, void *), void *arg,
    char *err, size_t errlen)
{
	return store_list("SELECT alias || ' -> ' || target FROM aliases "
	    "ORDER BY alias, target", emit, arg, err, errlen);
}
