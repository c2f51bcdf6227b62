/*
 * lib/authlimit.c: counting, the window, lockout and its end, attempts
 * under way, and the bound on tracked addresses.
 */
#include <stdio.h>
#include <string.h>

#include "authlimit.h"
#include "unit.h"

static void
test_lockout(void)
{
	struct authlimit	*al;
	time_t			 t = 1000;
	int			 i, locked = 0;

	CHECK((al = authlimit_new(3, 60)) != NULL);
	CHECK(authlimit_locked(al, "192.0.2.1", t) == 0);
	for (i = 0; i < 3; i++) {
		CHECK(authlimit_locked(al, "192.0.2.1", t) == 0);
		authlimit_begin(al, "192.0.2.1", t);
		locked += authlimit_end(al, "192.0.2.1", 0, t);
	}
	CHECK(locked == 1);
	CHECK(authlimit_locked(al, "192.0.2.1", t) == 60);
	CHECK(authlimit_locked(al, "192.0.2.1", t + 59) == 1);
	/* Another address is not affected. */
	CHECK(authlimit_locked(al, "192.0.2.2", t) == 0);
	/* The lockout ends and the count starts again. */
	CHECK(authlimit_locked(al, "192.0.2.1", t + 60) == 0);
	CHECK(authlimit_failures(al, "192.0.2.1", t + 60) == 0);
	CHECK(authlimit_count(al) == 0);
	authlimit_free(al);
}

static void
test_window(void)
{
	struct authlimit	*al;

	CHECK((al = authlimit_new(3, 60)) != NULL);
	authlimit_begin(al, "a", 0);
	CHECK(authlimit_end(al, "a", 0, 0) == 0);
	authlimit_begin(al, "a", 10);
	CHECK(authlimit_end(al, "a", 0, 10) == 0);
	CHECK(authlimit_failures(al, "a", 10) == 2);
	/* Past the window the old failures are forgotten. */
	CHECK(authlimit_failures(al, "a", 61) == 0);
	authlimit_begin(al, "a", 61);
	CHECK(authlimit_end(al, "a", 0, 61) == 0);
	CHECK(authlimit_failures(al, "a", 61) == 1);
	/* Success does not wipe failures. */
	authlimit_begin(al, "a", 62);
	CHECK(authlimit_end(al, "a", 1, 62) == 0);
	CHECK(authlimit_failures(al, "a", 62) == 1);
	authlimit_free(al);
}

static void
test_inflight(void)
{
	struct authlimit	*al;

	CHECK((al = authlimit_new(2, 60)) != NULL);
	authlimit_begin(al, "b", 0);
	CHECK(authlimit_locked(al, "b", 0) == 0);
	authlimit_begin(al, "b", 0);
	/* Two guesses under way: a third must wait. */
	CHECK(authlimit_locked(al, "b", 0) != 0);
	CHECK(authlimit_end(al, "b", 1, 0) == 0);
	CHECK(authlimit_locked(al, "b", 0) == 0);
	CHECK(authlimit_end(al, "b", 1, 0) == 0);
	CHECK(authlimit_count(al) == 0);
	authlimit_free(al);
}

static void
test_bound(void)
{
	struct authlimit	*al;
	char			 addr[AUTHLIMIT_ADDR_MAX + 8];
	int			 i;

	CHECK((al = authlimit_new(5, 10)) != NULL);
	for (i = 0; i < AUTHLIMIT_ENTRIES_MAX + 10; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		authlimit_begin(al, addr, 0);
		(void)authlimit_end(al, addr, 0, 0);
	}
	CHECK(authlimit_count(al) == AUTHLIMIT_ENTRIES_MAX);
	/* Once stale, old entries make room. */
	authlimit_begin(al, "new", 100);
	CHECK(authlimit_end(al, "new", 0, 100) == 0);
	CHECK(authlimit_failures(al, "new", 100) == 1);
	CHECK(authlimit_count(al) == 1);
	/* An over-long address is not tracked, and does not crash. */
	memset(addr, 'x', sizeof(addr));
	addr[sizeof(addr) - 1] = '\0';
	authlimit_begin(al, addr, 100);
	CHECK(authlimit_end(al, addr, 0, 100) == 0);
	CHECK(authlimit_locked(al, addr, 100) == 0);
	authlimit_free(al);
}

static void
test_delay(void)
{
	unsigned int	 d;
	int		 i;

	for (i = 0; i < 100; i++) {
		d = authlimit_delay_ms();
		CHECK(d >= AUTHLIMIT_DELAY_MIN_MS && d <=
		    AUTHLIMIT_DELAY_MIN_MS + AUTHLIMIT_DELAY_SPAN_MS);
	}
}

int
main(void)
{
	test_lockout();
	test_window();
	test_inflight();
	test_bound();
	test_delay();
	return unit_done();
}
