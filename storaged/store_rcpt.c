/*
 * What an address is to us, for smtpd at RCPT and for delivery: not
 * ours (remote), one or more of our accounts, or nobody.  The rules,
 * in order, for an address in a local domain:
 *
 *	1. an address of an account (table addresses, which holds every
 *	   account's own address too);
 *	2. an alias: each target resolved by these same rules, at most
 *	   STORE_ALIAS_DEPTH aliases deep; targets in other domains are
 *	   not local deliveries and are skipped;
 *	3. user+tag@domain: rules 1 and 2 for user@domain;
 *	4. the domain's catch-all, the alias "@domain".
 *
 * "postmaster" without a domain (RFC 5321 4.5.1) is postmaster at the
 * host name if that is a local domain, else at the oldest domain.
 *
 * The first rule that names the address decides: an alias whose
 * targets all lead nowhere does not fall through to the catch-all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "log.h"
#include "storaged.h"

struct resolve {
	int64_t		*accounts;
	size_t		 max;
	size_t		 n;
	int		 visits;
	int		 flags;
	int		 error;
	int		 overflow;
};

static int	resolve_address(struct resolve *, const char *, int);

static __attribute__((__noreturn__)) void
rcpt_malformed(struct proc_peer *peer, struct imsg *imsg)
{
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}

/* One int64 column of one row: 1 with *v set, 0 for none, -1. */
static int
rcpt_query_id(const char *sql, const char *arg, int64_t *v)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = store_stmt(sql)) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, 0);
	store_stmt_done(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	log_warnx("%s: recipient lookup: %s", STORE_DB_PATH,
	    sqlite3_errmsg(store_db));
	return -1;
}

static int
rcpt_domain_local(const char *domain)
{
	int64_t	 id;

	return rcpt_query_id("SELECT id FROM domains WHERE name = ?", domain,
	    &id);
}

static void
resolve_add(struct resolve *r, int64_t id)
{
	size_t	 i;

	for (i = 0; i < r->n; i++)
		if (r->accounts[i] == id)
			return;
	if (r->n == r->max) {
		r->overflow = 1;
		return;
	}
	r->accounts[r->n++] = id;
}

/* Rule 1: 1 if the address is an account's, 0 if not, -1. */
static int
resolve_owner(struct resolve *r, const char *addr)
{
	int64_t	 id;
	int	 rc;

	rc = rcpt_query_id("SELECT account_id FROM addresses "
	    "WHERE address = ?", addr, &id);
	if (rc == 1)
		resolve_add(r, id);
	return rc;
}

/*
 * Rule 2 (and 4, for "@domain"): 1 if alias has targets, each then
 * resolved; 0 if it is no alias; -1 on error.
 */
static int
resolve_alias(struct resolve *r, const char *alias, int depth)
{
	sqlite3_stmt	*st;
	char		(*targets)[ADDRESS_MAX + 1] = NULL;
	char		(*p)[ADDRESS_MAX + 1];
	const char	*t, *at;
	size_t		 i, n = 0, maxtargets = 0;
	int		 rc;

	if ((st = store_stmt("SELECT target FROM aliases WHERE alias = ? "
	    "ORDER BY target LIMIT ?")) == NULL)
		return -1;
	if (sqlite3_bind_text(st, 1, alias, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, STORE_ALIAS_TARGETS_MAX) != SQLITE_OK) {
		store_stmt_done(st);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((t = (const char *)sqlite3_column_text(st, 0)) == NULL ||
		    strlen(t) > ADDRESS_MAX)
			continue;
		if (n == maxtargets) {
			maxtargets = maxtargets ? maxtargets * 2 : 8;
			if ((p = reallocarray(targets, maxtargets,
			    sizeof(*targets))) == NULL) {
				log_warn("%s", __func__);
				rc = SQLITE_NOMEM;
				break;
			}
			targets = p;
		}
		strlcpy(targets[n++], t, sizeof(targets[0]));
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		if (rc != SQLITE_NOMEM)
			log_warnx("%s: alias lookup: %s", STORE_DB_PATH,
			    sqlite3_errmsg(store_db));
		free(targets);
		return -1;
	}
	if (n == 0) {
		free(targets);
		return 0;
	}
	if (depth >= STORE_ALIAS_DEPTH) {
		log_warnx("alias %s: more than %d aliases deep, not followed",
		    alias, STORE_ALIAS_DEPTH);
		free(targets);
		return 1;
	}
	for (i = 0; i < n && !r->error; i++) {
		if ((at = strrchr(targets[i], '@')) == NULL)
			continue;
		if ((rc = rcpt_domain_local(at + 1)) == -1) {
			r->error = 1;
			break;
		}
		if (rc == 0)
			continue;	/* not a local delivery */
		if (resolve_address(r, targets[i], depth + 1) == -1)
			r->error = 1;
	}
	free(targets);
	return r->error ? -1 : 1;
}

/* The rules for an address in a local domain, normalized. */
static int
resolve_address(struct resolve *r, const char *addr, int depth)
{
	char		 base[ADDRESS_MAX + 1];
	const char	*at, *plus;
	int		 rc;

	if (++r->visits > STORE_RESOLVE_VISITS) {
		if (r->visits == STORE_RESOLVE_VISITS + 1)
			log_warnx("recipient lookup: more than %d addresses "
			    "looked at, stopped", STORE_RESOLVE_VISITS);
		return 0;
	}
	at = strrchr(addr, '@');
	if ((rc = resolve_owner(r, addr)) != 0)
		return rc;
	if ((rc = resolve_alias(r, addr, depth)) != 0)
		return rc;
	if ((plus = memchr(addr, '+', at - addr)) != NULL && plus > addr) {
		memcpy(base, addr, plus - addr);
		strlcpy(base + (plus - addr), at, sizeof(base) - (plus - addr));
		if ((rc = resolve_owner(r, base)) != 0)
			return rc;
		if ((rc = resolve_alias(r, base, depth)) != 0)
			return rc;
	}
	if (!(r->flags & STORE_RESOLVE_NOCATCHALL))
		return resolve_alias(r, at, depth);
	return 0;
}

/* postmaster@ a local domain, or RCPT_UNKNOWN if we have none. */
static int
rcpt_postmaster(char *out, size_t outlen)
{
	sqlite3_stmt	*st;
	const char	*domain = NULL;
	int		 rc;

	if ((st = store_db_stmt("SELECT name FROM domains "
	    "ORDER BY name <> ? COLLATE NOCASE, id LIMIT 1")) == NULL)
		return RCPT_TEMPFAIL;
	if (sqlite3_bind_text(st, 1, proc_conf->hostname, -1,
	    SQLITE_STATIC) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		domain = (const char *)sqlite3_column_text(st, 0);
	if (rc == SQLITE_ROW && domain != NULL)
		(void)snprintf(out, outlen, "postmaster@%s", domain);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return RCPT_UNKNOWN;
	if (rc != SQLITE_ROW || domain == NULL)
		return RCPT_TEMPFAIL;
	return RCPT_LOCAL;
}

/*
 * The answer to "what is this address": an enum rcpt_lookup.  For
 * RCPT_LOCAL, accounts[0 .. *n - 1] are the distinct accounts it
 * reaches (at most max).  flags: STORE_RESOLVE_NOCATCHALL.
 */
int
store_resolve(const char *address, int64_t *accounts, size_t max,
    size_t *n, int flags)
{
	struct resolve	 r;
	char		 addr[ADDRESS_MAX + 1], domain[DOMAIN_MAX + 1];
	char		 pm[ADDRESS_MAX + 1], err[STORE_ERR_MAX];
	const char	*at;
	int		 rc;

	*n = 0;
	if (strcasecmp(address, "postmaster") == 0) {
		if ((rc = rcpt_postmaster(pm, sizeof(pm))) != RCPT_LOCAL)
			return rc;
		address = pm;
	}
	if ((at = strrchr(address, '@')) == NULL)
		return RCPT_UNKNOWN;
	/* An address literal or a name we could not hold is not ours. */
	if (store_domain_normalize(at + 1, domain, sizeof(domain), err,
	    sizeof(err)) == -1)
		return RCPT_REMOTE;
	if ((rc = rcpt_domain_local(domain)) == -1)
		return RCPT_TEMPFAIL;
	if (rc == 0)
		return RCPT_REMOTE;
	if (store_addr_normalize(address, addr, sizeof(addr), err,
	    sizeof(err)) == -1)
		return RCPT_UNKNOWN;
	memset(&r, 0, sizeof(r));
	r.accounts = accounts;
	r.max = max;
	r.flags = flags;
	if (resolve_address(&r, addr, 0) == -1 || r.error)
		return RCPT_TEMPFAIL;
	if (r.overflow && max > 1)
		log_warnx("%s reaches more than %zu accounts; the rest are "
		    "left out", addr, max);
	*n = r.n;
	return r.n > 0 ? RCPT_LOCAL : RCPT_UNKNOWN;
}

/* RCPT: s address -> RCPT_RESULT: u32 enum rcpt_lookup */
void
store_rcpt_lookup(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	struct msg_out	 out;
	const char	*address;
	int64_t		 accounts[1];
	size_t		 n;
	int		 result;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &address) == -1 || msg_end(&m) == -1)
		rcpt_malformed(peer, imsg);
	if (strlen(address) > ADDRESS_MAX)
		result = RCPT_UNKNOWN;
	else
		result = store_resolve(address, accounts, 1, &n, 0);
	msg_create(&out, IMSG_STORE_RCPT_RESULT, imsg->hdr.peerid, -1);
	msg_add_u32(&out, result);
	if (proc_send(peer->id, &out) == -1)
		fatal("%s: IMSG_STORE_RCPT_RESULT", __func__);
}

/*
 * Whether an authenticated account may use mail-from: one of its
 * addresses (its own, or one in table addresses), user+tag of one of
 * them, or an alias that delivers to it (among other accounts too:
 * everyone behind sales@ may write as sales@).  A catch-all does not
 * count, or a catch-all's target could be anyone at the domain.  The
 * null sender <> is allowed (bounces and receipts a client makes).
 * Addresses compare without regard to case.  A storage error refuses.
 */
static int
sender_allowed(const char *account, const char *from)
{
	int64_t		 id, accounts[STORE_ALIAS_TARGETS_MAX];
	size_t		 i, n;

	if (from[0] == '\0')
		return 1;
	if (rcpt_query_id("SELECT id FROM accounts WHERE address = ?",
	    account, &id) != 1)
		return 0;
	if (store_resolve(from, accounts, sizeof(accounts) /
	    sizeof(accounts[0]), &n, STORE_RESOLVE_NOCATCHALL) != RCPT_LOCAL)
		return 0;
	for (i = 0; i < n; i++)
		if (accounts[i] == id)
			return 1;
	return 0;
}

/* SENDER_CHECK: s account, s mail-from -> SENDER_RESULT: u32 ok */
void
store_sender_check(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in	 m;
	struct msg_out	 out;
	const char	*account, *from;
	int		 ok;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &account) == -1 ||
	    msg_get_string(&m, &from) == -1 || msg_end(&m) == -1)
		rcpt_malformed(peer, imsg);
	ok = strlen(account) <= ADDRESS_MAX && strlen(from) <= ADDRESS_MAX &&
	    sender_allowed(account, from);
	if (!ok)
		log_info("%s: %s may not send as <%s>", proc_names[peer->id],
		    account, from);
	msg_create(&out, IMSG_STORE_SENDER_RESULT, imsg->hdr.peerid, -1);
	msg_add_u32(&out, ok);
	if (proc_send(peer->id, &out) == -1)
		fatal("%s: IMSG_STORE_SENDER_RESULT", __func__);
}
