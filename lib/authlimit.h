/*
 * Failed authentications counted per client address, shared by the
 * roles that take passwords (smtpd, and imapd, jmapd, davd later).
 *
 * An address may fail max times within a window of lockout seconds;
 * then it is locked out for lockout seconds.  An attempt under way
 * counts as a failure until it succeeds, so a client cannot run more
 * than max guesses at once over parallel sessions.  Each failure is
 * answered after authlimit_delay_ms(), on a timer, never by sleeping.
 */
#ifndef AUTHLIMIT_H
#define AUTHLIMIT_H

#include <stddef.h>
#include <time.h>

#define AUTHLIMIT_ADDR_MAX	64	/* an IPv6 address as text, and more */
#define AUTHLIMIT_ENTRIES_MAX	65536	/* addresses tracked at once */
#define AUTHLIMIT_DELAY_MIN_MS	1000	/* before a failure is answered */
#define AUTHLIMIT_DELAY_SPAN_MS	1000	/* plus up to this, at random */

struct authlimit;

struct authlimit *authlimit_new(unsigned int, time_t);
void		 authlimit_free(struct authlimit *);
void		 authlimit_set(struct authlimit *, unsigned int, time_t);
/* Seconds the address stays locked out, 0 if it may try. */
time_t		 authlimit_locked(struct authlimit *, const char *, time_t);
void		 authlimit_begin(struct authlimit *, const char *, time_t);
/* Returns 1 if this failure locked the address out. */
int		 authlimit_end(struct authlimit *, const char *, int, time_t);
unsigned int	 authlimit_failures(struct authlimit *, const char *,
		    time_t);
size_t		 authlimit_count(struct authlimit *);
unsigned int	 authlimit_delay_ms(void);

#endif /* AUTHLIMIT_H */
