/*
 * Failed authentications counted per client address, shared by the
 * roles that take passwords (smtpd, and imapd, jmapd, davd later).
 *
 * An address may fail max times within a window of lockout seconds;
 * then it is locked out for lockout seconds.  Only failures count
 * toward the lockout, but each attempt under way holds one of the
 * address's max - failures slots, so however many sessions a client
 * opens, no more guesses are checked than could fail before the
 * lockout.  An attempt that finds no free slot waits in line for one
 * (authlimit_begin() returns AUTHLIMIT_WAIT): a success gives its slot
 * back to the next in line, a failure keeps it as a failure, and the
 * lockout turns everyone still in line away.  Each failure is answered
 * after authlimit_delay_ms(), on a timer, never by sleeping.
 */
#ifndef AUTHLIMIT_H
#define AUTHLIMIT_H

#include <sys/queue.h>

#include <stddef.h>
#include <time.h>

#include "postern.h"

#define AUTHLIMIT_ADDR_MAX	64	/* an IPv6 address as text, and more */
#define AUTHLIMIT_ENTRIES_MAX	65536	/* addresses tracked at once */
#define AUTHLIMIT_DELAY_MIN_MS	1000	/* before a failure is answered */
#define AUTHLIMIT_DELAY_SPAN_MS	1000	/* plus up to this, at random */
#define AUTHLIMIT_SECRET_MAX	2048	/* held in line; >= the SASL blobs */

struct authlimit;
struct authlimit_entry;

/* What authlimit_begin() returns. */
#define AUTHLIMIT_GO		0	/* a slot is held: check it */
#define AUTHLIMIT_WAIT		1	/* in line: the callback tells */
#define AUTHLIMIT_LOCKED	2	/* refuse: locked out */

enum authlimit_wait_state {
	AUTHLIMIT_IDLE,
	AUTHLIMIT_QUEUED,
	AUTHLIMIT_GRANTED,	/* a slot is held for it */
	AUTHLIMIT_REFUSED	/* the address was locked out meanwhile */
};

/*
 * A place in line, kept in the session.  The callback runs from inside
 * authlimit_end(), authlimit_cancel() or authlimit_set(), once, when
 * the state becomes GRANTED or REFUSED; it must not call back into
 * authlimit (schedule an event instead).
 */
struct authlimit_wait {
	TAILQ_ENTRY(authlimit_wait)	 entry;
	struct authlimit_entry		*e;
	enum authlimit_wait_state	 state;
	void				(*cb)(void *);
	void				*arg;
};

/* An attempt held while it waits in line for a slot. */
struct authlimit_held {
	char				 user[ADDRESS_MAX + 1];
	char				 password[AUTHLIMIT_SECRET_MAX + 1];
	int				 bad;
};

struct authlimit *authlimit_new(unsigned int, time_t);
void		 authlimit_free(struct authlimit *);
void		 authlimit_set(struct authlimit *, unsigned int, time_t);
/* Seconds the address stays locked out, 0 if it may try. */
time_t		 authlimit_locked(struct authlimit *, const char *, time_t);
void		 authlimit_wait_init(struct authlimit_wait *,
		    void (*)(void *), void *);
int		 authlimit_begin(struct authlimit *, const char *,
		    struct authlimit_wait *, time_t);
/* Leaves the line, or gives back a slot granted but not used. */
void		 authlimit_cancel(struct authlimit *, const char *,
		    struct authlimit_wait *, time_t);
/* Returns 1 if this failure locked the address out. */
int		 authlimit_end(struct authlimit *, const char *, int, time_t);
unsigned int	 authlimit_failures(struct authlimit *, const char *,
		    time_t);
unsigned int	 authlimit_waiting(struct authlimit *, const char *,
		    time_t);
size_t		 authlimit_count(struct authlimit *);
unsigned int	 authlimit_delay_ms(void);
struct authlimit_held *authlimit_hold(const char *, const char *, int);
void		 authlimit_held_free(struct authlimit_held **);

#endif /* AUTHLIMIT_H */
