/*
 * Per-client-address counting of failed authentications: a red-black
 * tree of addresses, pruned of stale entries when it fills, each with
 * its attempts under way and its line of attempts waiting for a slot.
 *
 * While an address has a line, it has an attempt under way: the line
 * only forms when every slot is held, a slot is held by a failure (in
 * which case reaching max locks the address and empties the line) or
 * by an attempt under way, and each end of one serves the line.  So no
 * one waits for an event that will not come.
 */
#include <sys/types.h>
#include <sys/tree.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authlimit.h"

struct authlimit_entry {
	RB_ENTRY(authlimit_entry) entry;
	char		 addr[AUTHLIMIT_ADDR_MAX];
	unsigned int	 failures;	/* finished, within the window */
	unsigned int	 inflight;	/* attempts waiting for an answer */
	time_t		 window;	/* first failure of the window */
	time_t		 locked_until;	/* 0: not locked */
	TAILQ_HEAD(, authlimit_wait) waiters;	/* for a slot, in order */
};

RB_HEAD(authlimit_tree, authlimit_entry);

struct authlimit {
	struct authlimit_tree	 tree;
	size_t			 count;
	unsigned int		 max;
	time_t			 lockout;
};

static int
authlimit_cmp(struct authlimit_entry *a, struct authlimit_entry *b)
{
	return strcmp(a->addr, b->addr);
}

RB_GENERATE(authlimit_tree, authlimit_entry, entry, authlimit_cmp)

struct authlimit *
authlimit_new(unsigned int max, time_t lockout)
{
	struct authlimit	*al;

	if ((al = calloc(1, sizeof(*al))) == NULL)
		return NULL;
	RB_INIT(&al->tree);
	authlimit_set(al, max, lockout);
	return al;
}

void
authlimit_free(struct authlimit *al)
{
	struct authlimit_entry	*e;

	if (al == NULL)
		return;
	while ((e = RB_MIN(authlimit_tree, &al->tree)) != NULL) {
		RB_REMOVE(authlimit_tree, &al->tree, e);
		free(e);
	}
	free(al);
}

/* A new configuration: entries keep their counts. */
void
authlimit_set(struct authlimit *al, unsigned int max, time_t lockout)
{
	al->max = max > 0 ? max : 1;
	al->lockout = lockout > 0 ? lockout : 1;
}

/* Forgets what has run out; returns 1 if nothing is left to keep. */
static int
authlimit_expire(struct authlimit *al, struct authlimit_entry *e,
    time_t now)
{
	if (e->locked_until != 0 && now >= e->locked_until) {
		e->locked_until = 0;
		e->failures = 0;
	}
	if (e->locked_until == 0 && e->failures > 0 &&
	    now - e->window >= al->lockout)
		e->failures = 0;
	return e->locked_until == 0 && e->failures == 0 &&
	    e->inflight == 0 && TAILQ_EMPTY(&e->waiters);
}

/* max may have come down in a reload: the failures had to lock. */
static int
authlimit_lock_due(struct authlimit *al, struct authlimit_entry *e,
    time_t now)
{
	if (e->locked_until != 0 || e->failures < al->max)
		return 0;
	e->locked_until = now + al->lockout;
	return 1;
}

static int
authlimit_slot_free(struct authlimit *al, struct authlimit_entry *e)
{
	return e->locked_until == 0 && e->failures + e->inflight < al->max;
}

/* Grants what slots are free in turn, or turns the line away. */
static void
authlimit_serve(struct authlimit *al, struct authlimit_entry *e,
    time_t now)
{
	struct authlimit_wait	*w;

	(void)authlimit_expire(al, e, now);
	(void)authlimit_lock_due(al, e, now);
	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		if (e->locked_until != 0)
			w->state = AUTHLIMIT_REFUSED;
		else if (authlimit_slot_free(al, e)) {
			e->inflight++;
			w->state = AUTHLIMIT_GRANTED;
		} else
			break;
		TAILQ_REMOVE(&e->waiters, w, entry);
		w->e = NULL;
		w->cb(w->arg);
	}
}

static void
authlimit_remove(struct authlimit *al, struct authlimit_entry *e)
{
	RB_REMOVE(authlimit_tree, &al->tree, e);
	free(e);
	al->count--;
}

static struct authlimit_entry *
authlimit_find(struct authlimit *al, const char *addr, time_t now)
{
	struct authlimit_entry	 key, *e;

	if (strlcpy(key.addr, addr, sizeof(key.addr)) >= sizeof(key.addr))
		return NULL;
	if ((e = RB_FIND(authlimit_tree, &al->tree, &key)) == NULL)
		return NULL;
	if (authlimit_expire(al, e, now)) {
		authlimit_remove(al, e);
		return NULL;
	}
	return e;
}

static void
authlimit_prune(struct authlimit *al, time_t now)
{
	struct authlimit_entry	*e, *next;

	RB_FOREACH_SAFE(e, authlimit_tree, &al->tree, next)
		if (authlimit_expire(al, e, now))
			authlimit_remove(al, e);
}

/*
 * NULL when the table is full of live entries: that address goes
 * uncounted rather than locking out every newcomer.
 */
static struct authlimit_entry *
authlimit_get(struct authlimit *al, const char *addr, time_t now)
{
	struct authlimit_entry	*e;

	if ((e = authlimit_find(al, addr, now)) != NULL)
		return e;
	if (strlen(addr) >= AUTHLIMIT_ADDR_MAX)
		return NULL;
	if (al->count >= AUTHLIMIT_ENTRIES_MAX)
		authlimit_prune(al, now);
	if (al->count >= AUTHLIMIT_ENTRIES_MAX)
		return NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	strlcpy(e->addr, addr, sizeof(e->addr));
	e->window = now;
	TAILQ_INIT(&e->waiters);
	RB_INSERT(authlimit_tree, &al->tree, e);
	al->count++;
	return e;
}

time_t
authlimit_locked(struct authlimit *al, const char *addr, time_t now)
{
	struct authlimit_entry	*e;

	if ((e = authlimit_find(al, addr, now)) == NULL)
		return 0;
	(void)authlimit_lock_due(al, e, now);
	if (e->locked_until > now)
		return e->locked_until - now;
	return 0;
}

void
authlimit_wait_init(struct authlimit_wait *w, void (*cb)(void *),
    void *arg)
{
	memset(w, 0, sizeof(*w));
	w->state = AUTHLIMIT_IDLE;
	w->cb = cb;
	w->arg = arg;
}

/*
 * An address the table has no room for goes uncounted, as in
 * authlimit_get().  Nobody jumps the line, even to a slot just freed.
 */
int
authlimit_begin(struct authlimit *al, const char *addr,
    struct authlimit_wait *w, time_t now)
{
	struct authlimit_entry	*e;

	w->state = AUTHLIMIT_IDLE;
	w->e = NULL;
	if ((e = authlimit_get(al, addr, now)) == NULL)
		return AUTHLIMIT_GO;
	(void)authlimit_lock_due(al, e, now);
	if (e->locked_until != 0)
		return AUTHLIMIT_LOCKED;
	if (TAILQ_EMPTY(&e->waiters) && authlimit_slot_free(al, e)) {
		e->inflight++;
		return AUTHLIMIT_GO;
	}
	w->e = e;
	w->state = AUTHLIMIT_QUEUED;
	TAILQ_INSERT_TAIL(&e->waiters, w, entry);
	return AUTHLIMIT_WAIT;
}

void
authlimit_cancel(struct authlimit *al, const char *addr,
    struct authlimit_wait *w, time_t now)
{
	struct authlimit_entry	*e;

	switch (w->state) {
	case AUTHLIMIT_QUEUED:
		e = w->e;
		TAILQ_REMOVE(&e->waiters, w, entry);
		break;
	case AUTHLIMIT_GRANTED:
		/* The slot was never used: it is no failure. */
		if ((e = authlimit_find(al, addr, now)) != NULL &&
		    e->inflight > 0)
			e->inflight--;
		break;
	default:
		return;
	}
	w->state = AUTHLIMIT_IDLE;
	w->e = NULL;
	if (e == NULL)
		return;
	authlimit_serve(al, e, now);
	if (authlimit_expire(al, e, now))
		authlimit_remove(al, e);
}

int
authlimit_end(struct authlimit *al, const char *addr, int ok, time_t now)
{
	struct authlimit_entry	*e;
	int			 locked = 0;

	if ((e = authlimit_get(al, addr, now)) == NULL)
		return 0;
	if (e->inflight > 0)
		e->inflight--;
	if (ok) {
		authlimit_serve(al, e, now);
		if (authlimit_expire(al, e, now))
			authlimit_remove(al, e);
		return 0;
	}
	(void)authlimit_expire(al, e, now);
	if (e->failures == 0)
		e->window = now;
	e->failures++;
	locked = authlimit_lock_due(al, e, now);
	authlimit_serve(al, e, now);
	return locked;
}

unsigned int
authlimit_failures(struct authlimit *al, const char *addr, time_t now)
{
	struct authlimit_entry	*e;

	if ((e = authlimit_find(al, addr, now)) == NULL)
		return 0;
	return e->failures;
}

unsigned int
authlimit_waiting(struct authlimit *al, const char *addr, time_t now)
{
	struct authlimit_entry	*e;
	struct authlimit_wait	*w;
	unsigned int		 n = 0;

	if ((e = authlimit_find(al, addr, now)) == NULL)
		return 0;
	TAILQ_FOREACH(w, &e->waiters, entry)
		n++;
	return n;
}

size_t
authlimit_count(struct authlimit *al)
{
	return al->count;
}

/* The same for unknown users and wrong passwords, jittered. */
unsigned int
authlimit_delay_ms(void)
{
	return AUTHLIMIT_DELAY_MIN_MS +
	    arc4random_uniform(AUTHLIMIT_DELAY_SPAN_MS + 1);
}

/*
 * A copy of an attempt that must wait for its slot, user and password
 * left empty if bad; a password too long to hold makes it bad.  NULL
 * if out of memory.
 */
struct authlimit_held *
authlimit_hold(const char *user, const char *password, int bad)
{
	struct authlimit_held	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->bad = bad || strlcpy(h->password, password,
	    sizeof(h->password)) >= sizeof(h->password);
	(void)strlcpy(h->user, bad ? "" : user, sizeof(h->user));
	return h;
}

/* The copy zeroed and freed, *hp NULL after. */
void
authlimit_held_free(struct authlimit_held **hp)
{
	if (*hp != NULL)
		freezero(*hp, sizeof(**hp));
	*hp = NULL;
}
