/*
 * lib/authlimit.c: counting, the window, lockout and its end, attempts
 * under way and the line for a slot, bursts of guesses, the bound
 * on tracked addresses, and an attempt held in line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authlimit.h"
#include "unit.h"

static int	 called[16];

static void
waited(void *arg)
{
	called[*(int *)arg]++;
}

static void
test_lockout(void)
{
	struct authlimit	*al;
	struct authlimit_wait	 w;
	time_t			 t = 1000;
	int			 i, locked = 0;

	authlimit_wait_init(&w, waited, &i);
	CHECK((al = authlimit_new(3, 60)) != NULL);
	CHECK(authlimit_locked(al, "192.0.2.1", t) == 0);
	for (i = 0; i < 3; i++) {
		CHECK(authlimit_locked(al, "192.0.2.1", t) == 0);
		CHECK(authlimit_begin(al, "192.0.2.1", &w, t) ==
		    AUTHLIMIT_GO);
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
	struct authlimit_wait	 w;

	authlimit_wait_init(&w, waited, NULL);
	CHECK((al = authlimit_new(3, 60)) != NULL);
	(void)authlimit_begin(al, "a", &w, 0);
	CHECK(authlimit_end(al, "a", 0, 0) == 0);
	(void)authlimit_begin(al, "a", &w, 10);
	CHECK(authlimit_end(al, "a", 0, 10) == 0);
	CHECK(authlimit_failures(al, "a", 10) == 2);
	/* Past the window the old failures are forgotten. */
	CHECK(authlimit_failures(al, "a", 61) == 0);
	(void)authlimit_begin(al, "a", &w, 61);
	CHECK(authlimit_end(al, "a", 0, 61) == 0);
	CHECK(authlimit_failures(al, "a", 61) == 1);
	/* Success does not wipe failures. */
	(void)authlimit_begin(al, "a", &w, 62);
	CHECK(authlimit_end(al, "a", 1, 62) == 0);
	CHECK(authlimit_failures(al, "a", 62) == 1);
	authlimit_free(al);
}

static void
test_inflight(void)
{
	struct authlimit	*al;
	struct authlimit_wait	 w[6];
	int			 id[6], i;

	memset(called, 0, sizeof(called));
	CHECK((al = authlimit_new(2, 60)) != NULL);
	for (i = 0; i < 6; i++) {
		id[i] = i;
		authlimit_wait_init(&w[i], waited, &id[i]);
	}
	CHECK(authlimit_begin(al, "b", &w[0], 0) == AUTHLIMIT_GO);
	CHECK(authlimit_begin(al, "b", &w[1], 0) == AUTHLIMIT_GO);
	/* Two attempts under way: the others wait in line, unrefused. */
	for (i = 2; i < 6; i++)
		CHECK(authlimit_begin(al, "b", &w[i], 0) == AUTHLIMIT_WAIT);
	CHECK(authlimit_locked(al, "b", 0) == 0);
	CHECK(authlimit_waiting(al, "b", 0) == 4);
	/* A success hands its slot to the first in line. */
	CHECK(authlimit_end(al, "b", 1, 0) == 0);
	CHECK(called[2] == 1 && w[2].state == AUTHLIMIT_GRANTED);
	CHECK(called[3] == 0 && w[3].state == AUTHLIMIT_QUEUED);
	/* A failure keeps its slot. */
	CHECK(authlimit_end(al, "b", 0, 0) == 0);
	CHECK(called[3] == 0 && authlimit_failures(al, "b", 0) == 1);
	/* One that leaves the line is forgotten; the order holds. */
	authlimit_cancel(al, "b", &w[3], 0);
	CHECK(w[3].state == AUTHLIMIT_IDLE && called[3] == 0);
	CHECK(authlimit_waiting(al, "b", 0) == 2);
	/* A slot granted and given back unused is not a failure. */
	authlimit_cancel(al, "b", &w[2], 0);
	CHECK(called[4] == 1 && w[4].state == AUTHLIMIT_GRANTED);
	CHECK(authlimit_failures(al, "b", 0) == 1);
	CHECK(authlimit_end(al, "b", 1, 0) == 0);
	CHECK(called[5] == 1 && w[5].state == AUTHLIMIT_GRANTED);
	CHECK(authlimit_end(al, "b", 1, 0) == 0);
	CHECK(authlimit_waiting(al, "b", 0) == 0);
	CHECK(authlimit_failures(al, "b", 62) == 0);
	CHECK(authlimit_count(al) == 0);
	authlimit_free(al);
}

/* Guesses from many sessions at once: never more than max checked. */
static void
test_burst(void)
{
	struct authlimit	*al;
	struct authlimit_wait	 w[10];
	int			 id[10], i, go = 0, locked = 0;

	memset(called, 0, sizeof(called));
	CHECK((al = authlimit_new(3, 60)) != NULL);
	for (i = 0; i < 10; i++) {
		id[i] = i;
		authlimit_wait_init(&w[i], waited, &id[i]);
		if (authlimit_begin(al, "c", &w[i], 5) == AUTHLIMIT_GO)
			go++;
	}
	CHECK(go == 3);
	for (i = 0; i < 3; i++)
		locked += authlimit_end(al, "c", 0, 5);
	CHECK(locked == 1);
	/* The lockout turns the whole line away. */
	for (i = 3; i < 10; i++)
		CHECK(called[i] == 1 && w[i].state == AUTHLIMIT_REFUSED);
	CHECK(authlimit_waiting(al, "c", 5) == 0);
	CHECK(authlimit_begin(al, "c", &w[0], 6) == AUTHLIMIT_LOCKED);
	CHECK(authlimit_locked(al, "c", 6) == 59);
	CHECK(authlimit_begin(al, "c", &w[0], 65) == AUTHLIMIT_GO);
	CHECK(authlimit_end(al, "c", 1, 65) == 0);
	CHECK(authlimit_count(al) == 0);

	/* Earlier failures leave fewer slots; a reload may take them. */
	authlimit_set(al, 4, 60);
	for (i = 0; i < 2; i++) {
		CHECK(authlimit_begin(al, "d", &w[i], 0) == AUTHLIMIT_GO);
		CHECK(authlimit_end(al, "d", 0, 0) == 0);
	}
	CHECK(authlimit_begin(al, "d", &w[0], 0) == AUTHLIMIT_GO);
	CHECK(authlimit_begin(al, "d", &w[1], 0) == AUTHLIMIT_GO);
	CHECK(authlimit_begin(al, "d", &w[2], 0) == AUTHLIMIT_WAIT);
	authlimit_set(al, 2, 60);
	CHECK(authlimit_locked(al, "d", 1) == 60);
	CHECK(w[2].state == AUTHLIMIT_QUEUED);
	CHECK(authlimit_end(al, "d", 1, 1) == 0);
	CHECK(w[2].state == AUTHLIMIT_REFUSED);
	CHECK(authlimit_end(al, "d", 1, 1) == 0);
	authlimit_free(al);
}

static void
test_bound(void)
{
	struct authlimit	*al;
	struct authlimit_wait	 w;
	char			 addr[AUTHLIMIT_ADDR_MAX + 8];
	int			 i;

	authlimit_wait_init(&w, waited, NULL);
	CHECK((al = authlimit_new(5, 10)) != NULL);
	for (i = 0; i < AUTHLIMIT_ENTRIES_MAX + 10; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		(void)authlimit_begin(al, addr, &w, 0);
		(void)authlimit_end(al, addr, 0, 0);
	}
	CHECK(authlimit_count(al) == AUTHLIMIT_ENTRIES_MAX);
	/* Once stale, old entries make room. */
	(void)authlimit_begin(al, "new", &w, 100);
	CHECK(authlimit_end(al, "new", 0, 100) == 0);
	CHECK(authlimit_failures(al, "new", 100) == 1);
	CHECK(authlimit_count(al) == 1);
	/* An over-long address is not tracked, and does not crash. */
	memset(addr, 'x', sizeof(addr));
	addr[sizeof(addr) - 1] = '\0';
	(void)authlimit_begin(al, addr, &w, 100);
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

/* An attempt held in line: a copy, emptied if bad, zeroed when freed. */
static void
test_hold(void)
{
	struct authlimit_held	*h;
	char			*big;

	CHECK((h = authlimit_hold("alice@example.net", "secret", 0)) != NULL);
	CHECK(strcmp(h->user, "alice@example.net") == 0);
	CHECK(strcmp(h->password, "secret") == 0 && h->bad == 0);
	authlimit_held_free(&h);
	CHECK(h == NULL);
	authlimit_held_free(&h);
	CHECK(h == NULL);
	/* Bad already: nothing of it is kept. */
	CHECK((h = authlimit_hold("alice@example.net", "secret", 1)) != NULL);
	CHECK(h->bad && h->user[0] == '\0' && h->password[0] == '\0');
	authlimit_held_free(&h);
	/* Too long to hold whole: bad, not cut short. */
	CHECK((big = malloc(AUTHLIMIT_SECRET_MAX + 2)) != NULL);
	memset(big, 'p', AUTHLIMIT_SECRET_MAX + 1);
	big[AUTHLIMIT_SECRET_MAX + 1] = '\0';
	CHECK((h = authlimit_hold("alice@example.net", big, 0)) != NULL);
	CHECK(h->bad);
	authlimit_held_free(&h);
	big[AUTHLIMIT_SECRET_MAX] = '\0';
	CHECK((h = authlimit_hold("alice@example.net", big, 0)) != NULL);
	CHECK(!h->bad && strlen(h->password) == AUTHLIMIT_SECRET_MAX);
	authlimit_held_free(&h);
	free(big);
}

int
main(void)
{
	test_lockout();
	test_window();
	test_inflight();
	test_burst();
	test_bound();
	test_delay();
	test_hold();
	return unit_done();
}
