/*
 * The schedule.  Every entry storaged told us of is in a tree by queue
 * id; an entry whose local recipients wait for an attempt is also in a
 * tree by the time it is due, and one timer wakes us for the first of
 * those.  At most QUEUE_INFLIGHT_MAX DELIVERs are out at once; a new
 * entry goes out at once when there is room, so that delivery follows
 * acceptance closely.  storaged delivers every pending local recipient
 * of an entry in one go, so an entry is due when the earliest of its
 * pending local recipients is.
 */
#include <sys/types.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_valid.h"
#include "log.h"
#include "queue.h"

/* Seconds to wait after the nth failed attempt; the last one repeats. */
static const time_t queue_backoff[] = {
	60, 5 * 60, 15 * 60, 30 * 60, 60 * 60, 2 * 60 * 60
};
#define QUEUE_NBACKOFF	(sizeof(queue_backoff) / sizeof(queue_backoff[0]))

/* One BOUNCE item: u32 index, s reason (u32 length, bytes, NUL). */
#define QUEUE_BOUNCE_ITEM(r)	(4 + 4 + strlen(r) + 1)

static int	queue_id_cmp(struct queue_entry *, struct queue_entry *);
static int	queue_time_cmp(struct queue_entry *, struct queue_entry *);

RB_HEAD(queue_ids, queue_entry);
RB_HEAD(queue_times, queue_entry);
RB_PROTOTYPE(queue_ids, queue_entry, by_id, queue_id_cmp)
RB_PROTOTYPE(queue_times, queue_entry, by_time, queue_time_cmp)

static struct queue_ids	 queue_by_id = RB_INITIALIZER(&queue_by_id);
static struct queue_times queue_by_time = RB_INITIALIZER(&queue_by_time);
static struct event		 queue_timer;
static int			 queue_inflight;
static uint32_t			 queue_deliver_serial;

static void	queue_run(void);

static int
queue_id_cmp(struct queue_entry *a, struct queue_entry *b)
{
	if (a->id < b->id)
		return -1;
	return a->id > b->id;
}

static int
queue_time_cmp(struct queue_entry *a, struct queue_entry *b)
{
	if (a->due != b->due)
		return a->due < b->due ? -1 : 1;
	return queue_id_cmp(a, b);
}

RB_GENERATE(queue_ids, queue_entry, by_id, queue_id_cmp)
RB_GENERATE(queue_times, queue_entry, by_time, queue_time_cmp)

static void
queue_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	(void)arg;
	queue_run();
}

void
queue_sched_init(void)
{
	evtimer_set(&queue_timer, queue_timeout, NULL);
}

static struct queue_entry *
queue_entry_find(uint64_t id)
{
	struct queue_entry	 key;

	key.id = id;
	return RB_FIND(queue_ids, &queue_by_id, &key);
}

static struct queue_rcpt *
queue_rcpt_find(struct queue_entry *e, uint32_t index)
{
	size_t	 i;

	for (i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].index == index)
			return &e->rcpts[i];
	return NULL;
}

static int
queue_rcpt_waiting(const struct queue_rcpt *r)
{
	return r->kind == RCPT_KIND_LOCAL && r->status == RCPT_PENDING;
}

static int
queue_rcpt_active(const struct queue_rcpt *r)
{
	return r->status == RCPT_PENDING || r->status == RCPT_HELD;
}

static void
queue_entry_free(struct queue_entry *e)
{
	if (e->scheduled)
		RB_REMOVE(queue_times, &queue_by_time, e);
	RB_REMOVE(queue_ids, &queue_by_id, e);
	free(e->rcpts);
	free(e);
}

static void
queue_unschedule(struct queue_entry *e)
{
	if (!e->scheduled)
		return;
	RB_REMOVE(queue_times, &queue_by_time, e);
	e->scheduled = 0;
}

/*
 * Puts an entry where it belongs now: in the time tree if it has local
 * recipients waiting, nowhere if it is busy or held, and out of memory
 * when nothing is left to do for it.  Returns -1 if it was freed.
 */
static int
queue_entry_settle(struct queue_entry *e)
{
	time_t	 due = 0;
	size_t	 i;
	int	 active = 0, waiting = 0;

	queue_unschedule(e);
	if (e->delivering || e->bounces > 0 || e->remove_peerid != 0)
		return 0;
	if (e->removed) {
		queue_entry_free(e);
		return -1;
	}
	if (!e->complete)
		return 0;
	for (i = 0; i < e->nrcpts; i++) {
		if (queue_rcpt_active(&e->rcpts[i]))
			active = 1;
		if (!queue_rcpt_waiting(&e->rcpts[i]))
			continue;
		if (!waiting || e->rcpts[i].next_attempt < due)
			due = e->rcpts[i].next_attempt;
		waiting = 1;
	}
	if (!active) {
		log_debug("%016" PRIx64 ": done", e->id);
		queue_entry_free(e);
		return -1;
	}
	if (waiting) {
		e->due = due;
		RB_INSERT(queue_times, &queue_by_time, e);
		e->scheduled = 1;
	}
	return 0;
}

static void
queue_deliver(struct queue_entry *e)
{
	struct msg_out	 m;
	size_t		 i;

	queue_unschedule(e);
	if (++queue_deliver_serial == 0)
		queue_deliver_serial = 1;
	e->deliver_peerid = queue_deliver_serial;
	e->delivering = 1;
	for (i = 0; i < e->nrcpts; i++)
		e->rcpts[i].answered = 0;
	queue_inflight++;
	msg_create(&m, IMSG_STORE_DELIVER, e->deliver_peerid, -1);
	msg_add_u64(&m, e->id);
	if (proc_send(PROC_STORAGED, &m) == -1)
		fatal("%s: IMSG_STORE_DELIVER", __func__);
	log_debug("%016" PRIx64 ": delivering", e->id);
}

/* Sends what is due while there is room, and sets the timer for later. */
static void
queue_run(void)
{
	struct queue_entry	*e;
	struct timeval		 tv;
	time_t			 now = time(NULL);

	while (queue_inflight < QUEUE_INFLIGHT_MAX &&
	    (e = RB_MIN(queue_times, &queue_by_time)) != NULL &&
	    e->due <= now)
		queue_deliver(e);

	evtimer_del(&queue_timer);
	if (queue_inflight >= QUEUE_INFLIGHT_MAX ||
	    (e = RB_MIN(queue_times, &queue_by_time)) == NULL)
		return;
	/* A DELIVER_DONE runs us again; the timer is for what is not due. */
	tv.tv_sec = e->due > now ? e->due - now : 0;
	tv.tv_usec = 0;
	evtimer_add(&queue_timer, &tv);
}

void
queue_rcpt_add(uint64_t id, uint32_t index, const char *sender,
    time_t created, const char *address, uint8_t kind, uint8_t status,
    uint32_t attempts, time_t next_attempt, const char *last_error)
{
	struct queue_entry	*e;
	struct queue_rcpt	*r, *rcpts;

	if ((e = queue_entry_find(id)) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			fatal("%s: calloc", __func__);
		e->id = id;
		RB_INSERT(queue_ids, &queue_by_id, e);
	}
	/* Sender and time are the entry's, repeated on every recipient. */
	strlcpy(e->sender, sender, sizeof(e->sender));
	e->created = created;
	if ((r = queue_rcpt_find(e, index)) == NULL) {
		if ((rcpts = reallocarray(e->rcpts, e->nrcpts + 1,
		    sizeof(*rcpts))) == NULL)
			fatal("%s: reallocarray", __func__);
		e->rcpts = rcpts;
		r = &e->rcpts[e->nrcpts++];
	}
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->kind = kind;
	/* Relaying is not built: a remote recipient waits for it. */
	r->status = kind == RCPT_KIND_REMOTE && status == RCPT_PENDING ?
	    RCPT_HELD : status;
	r->attempts = attempts;
	r->next_attempt = next_attempt;
	strlcpy(r->address, address, sizeof(r->address));
	strlcpy(r->last_error, last_error, sizeof(r->last_error));
}

void
queue_entry_new(uint64_t id)
{
	struct queue_entry	*e;

	if ((e = queue_entry_find(id)) == NULL) {
		log_warnx("%s: %016" PRIx64 " has no recipients", __func__,
		    id);
		return;
	}
	e->complete = 1;
	log_debug("%016" PRIx64 ": queued, %zu recipients", id, e->nrcpts);
	if (queue_entry_settle(e) == -1)
		return;
	queue_run();
}

void
queue_load_end(void)
{
	struct queue_entry	*e, *next;
	size_t			 n = 0;

	RB_FOREACH_SAFE(e, queue_ids, &queue_by_id, next) {
		if (e->complete)
			continue;
		e->complete = 1;
		n++;
		queue_entry_settle(e);
	}
	log_info("%zu messages loaded from the store", n);
	queue_run();
}

static time_t
queue_next_attempt(time_t now, uint32_t attempts)
{
	size_t	 i = attempts > 0 ? attempts - 1 : 0;

	if (i >= QUEUE_NBACKOFF)
		i = QUEUE_NBACKOFF - 1;
	return now + queue_backoff[i];
}

static void
queue_update(struct queue_entry *e, struct queue_rcpt *r)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_QUEUE_UPDATE, 0, -1);
	msg_add_u64(&m, e->id);
	msg_add_u32(&m, r->index);
	msg_add_u32(&m, r->attempts);
	msg_add_i64(&m, (int64_t)r->next_attempt);
	msg_add_string(&m, r->last_error);
	if (proc_send(PROC_STORAGED, &m) == -1)
		fatal("%s: IMSG_STORE_QUEUE_UPDATE", __func__);
}

static void
queue_rcpt_permfail(struct queue_entry *e, struct queue_rcpt *r,
    const char *reason)
{
	strlcpy(r->last_error, reason, sizeof(r->last_error));
	r->failed = 1;
	log_info("%016" PRIx64 " to %s: bounced: %s", e->id, r->address,
	    reason);
}

void
queue_deliver_result(uint32_t peerid, uint64_t id, uint32_t index,
    uint8_t result, const char *reason)
{
	struct queue_entry	*e;
	struct queue_rcpt	*r;
	time_t			 now = time(NULL);

	if ((e = queue_entry_find(id)) == NULL || !e->delivering ||
	    e->deliver_peerid != peerid)
		fatalx("delivery result for %016" PRIx64 ", not asked for",
		    id);
	if ((r = queue_rcpt_find(e, index)) == NULL ||
	    !queue_rcpt_waiting(r)) {
		log_warnx("delivery result for %016" PRIx64 " recipient %u, "
		    "not pending here", id, index);
		return;
	}
	r->answered = 1;
	switch (result) {
	case DELIVERY_OK:
		r->status = RCPT_DELIVERED;
		log_info("%016" PRIx64 " to %s: delivered", id, r->address);
		break;
	case DELIVERY_TEMPFAIL:
		r->attempts++;
		if (now - e->created >= QUEUE_EXPIRE_SEC) {
			queue_rcpt_permfail(e, r, "delivery time expired");
			break;
		}
		r->next_attempt = queue_next_attempt(now, r->attempts);
		strlcpy(r->last_error, reason, sizeof(r->last_error));
		log_info("%016" PRIx64 " to %s: deferred: %s", id,
		    r->address, reason);
		if (!e->removed)
			queue_update(e, r);
		break;
	case DELIVERY_PERMFAIL:
		queue_rcpt_permfail(e, r, reason);
		break;
	}
}

static void
queue_bounce_send(struct msg_out *m)
{
	if (proc_send(PROC_STORAGED, m) == -1)
		fatal("%s: IMSG_STORE_BOUNCE", __func__);
}

/*
 * One BOUNCE with every recipient that failed for good in this attempt,
 * or, past the payload limit, several (each gets its own DSN).
 */
static void
queue_bounce(struct queue_entry *e)
{
	struct msg_out	*m;
	size_t		 i, j, n, len;

	if ((m = malloc(sizeof(*m))) == NULL)
		fatal("%s: malloc", __func__);
	for (i = 0; i < e->nrcpts; ) {
		len = 8 + 4;
		for (j = i, n = 0; j < e->nrcpts; j++) {
			if (!e->rcpts[j].failed)
				continue;
			if (n > 0 && len + QUEUE_BOUNCE_ITEM(
			    e->rcpts[j].last_error) > IMSG_MAX_PAYLOAD)
				break;
			len += QUEUE_BOUNCE_ITEM(e->rcpts[j].last_error);
			n++;
		}
		if (n == 0)
			break;
		msg_create(m, IMSG_STORE_BOUNCE, 0, -1);
		msg_add_u64(m, e->id);
		msg_add_u32(m, (uint32_t)n);
		for (; i < j; i++) {
			if (!e->rcpts[i].failed)
				continue;
			msg_add_u32(m, e->rcpts[i].index);
			msg_add_string(m, e->rcpts[i].last_error);
			e->rcpts[i].failed = 0;
			e->rcpts[i].bouncing = 1;
			e->rcpts[i].status = RCPT_BOUNCED;
		}
		queue_bounce_send(m);
		e->bounces++;
	}
	free(m);
}

void
queue_deliver_done(uint32_t peerid, uint64_t id)
{
	struct queue_entry	*e;
	struct queue_rcpt	*r;
	time_t			 now = time(NULL);
	size_t			 i;

	if ((e = queue_entry_find(id)) == NULL || !e->delivering ||
	    e->deliver_peerid != peerid)
		fatalx("delivery done for %016" PRIx64 ", not asked for", id);
	e->delivering = 0;
	queue_inflight--;
	for (i = 0; i < e->nrcpts; i++) {
		r = &e->rcpts[i];
		if (!queue_rcpt_waiting(r) || r->answered)
			continue;
		/* Not a loop: try it again, but not at once. */
		log_warnx("%016" PRIx64 " to %s: no delivery result", id,
		    r->address);
		r->next_attempt = now + QUEUE_NOANSWER_SEC;
	}
	if (!e->removed)
		queue_bounce(e);
	queue_entry_settle(e);
	queue_run();
}

/*
 * A bounce storaged could not record leaves its recipients queued
 * there: try them again later, which fails them and bounces anew.
 */
static void
queue_bounce_failed(struct queue_entry *e)
{
	struct queue_rcpt	*r;
	time_t			 now = time(NULL);
	size_t			 i;

	for (i = 0; i < e->nrcpts; i++) {
		r = &e->rcpts[i];
		if (!r->bouncing)
			continue;
		r->bouncing = 0;
		r->status = RCPT_PENDING;
		r->next_attempt = now + QUEUE_NOANSWER_SEC;
		log_warnx("%016" PRIx64 " to %s: the bounce was not recorded; "
		    "trying again in %ds", e->id, r->address,
		    QUEUE_NOANSWER_SEC);
	}
}

void
queue_bounce_result(uint64_t id, uint64_t dsn, uint32_t ok)
{
	struct queue_entry	*e;
	size_t			 i;

	if ((e = queue_entry_find(id)) == NULL || e->bounces == 0)
		fatalx("bounce result for %016" PRIx64 ", not asked for", id);
	e->bounces--;
	if (!ok)
		queue_bounce_failed(e);
	else {
		if (e->bounces == 0)
			for (i = 0; i < e->nrcpts; i++)
				e->rcpts[i].bouncing = 0;
		if (dsn != 0)
			log_info("%016" PRIx64 ": bounce queued as %016" PRIx64,
			    id, dsn);
		else
			log_info("%016" PRIx64 ": bounced, no report queued",
			    id);
	}
	queue_entry_settle(e);
	queue_run();
}

/* Returns -1 (and answers FAIL) if id is not a queue id we hold. */
static int
queue_ctl_lookup(uint32_t peerid, const char *s, struct queue_entry **ep)
{
	char		 why[CTL_ERR_MAX], text[CTL_ERR_MAX + 64];
	uint64_t	 id;

	*ep = NULL;
	if (ctl_valid_queue_id(s, &id, why, sizeof(why)) == -1) {
		snprintf(text, sizeof(text), "invalid queue id: %s", why);
		queue_ctl_reply(peerid, IMSG_CTL_FAIL, text);
		return -1;
	}
	if ((*ep = queue_entry_find(id)) == NULL || !(*ep)->complete ||
	    (*ep)->removed || (*ep)->remove_peerid != 0) {
		snprintf(text, sizeof(text), "no such message in the queue: "
		    "%016" PRIx64, id);
		queue_ctl_reply(peerid, IMSG_CTL_FAIL, text);
		return -1;
	}
	return 0;
}

void
queue_ctl_remove(uint32_t peerid, const char *s)
{
	struct queue_entry	*e;
	struct msg_out		 m;

	if (queue_ctl_lookup(peerid, s, &e) == -1)
		return;
	queue_unschedule(e);
	e->remove_peerid = peerid;
	/* The control client's id brings the answer back to it. */
	msg_create(&m, IMSG_STORE_QUEUE_REMOVE, peerid, -1);
	msg_add_u64(&m, e->id);
	if (proc_send(PROC_STORAGED, &m) == -1)
		fatal("%s: IMSG_STORE_QUEUE_REMOVE", __func__);
}

void
queue_remove_result(uint32_t peerid, uint32_t ok, const char *err)
{
	struct queue_entry	*e;

	RB_FOREACH(e, queue_ids, &queue_by_id)
		if (e->remove_peerid == peerid && peerid != 0)
			break;
	if (e == NULL)
		fatalx("queue remove result for client %u, not asked for",
		    peerid);
	e->remove_peerid = 0;
	if (ok) {
		log_info("%016" PRIx64 ": removed from the queue", e->id);
		e->removed = 1;
		queue_ctl_reply(peerid, IMSG_CTL_OK, NULL);
	} else {
		log_warnx("%016" PRIx64 ": not removed: %s", e->id, err);
		queue_ctl_reply(peerid, IMSG_CTL_FAIL, err);
	}
	queue_entry_settle(e);
	queue_run();
}

static void
queue_entry_schedule_now(struct queue_entry *e, time_t now)
{
	size_t	 i;

	for (i = 0; i < e->nrcpts; i++)
		if (queue_rcpt_waiting(&e->rcpts[i]))
			e->rcpts[i].next_attempt = now;
	queue_entry_settle(e);
}

void
queue_ctl_schedule(uint32_t peerid, const char *s)
{
	struct queue_entry	*e, *next;
	time_t			 now = time(NULL);

	if (strcmp(s, "all") == 0) {
		RB_FOREACH_SAFE(e, queue_ids, &queue_by_id, next)
			if (e->complete)
				queue_entry_schedule_now(e, now);
	} else {
		if (queue_ctl_lookup(peerid, s, &e) == -1)
			return;
		queue_entry_schedule_now(e, now);
	}
	queue_ctl_reply(peerid, IMSG_CTL_OK, NULL);
	queue_run();
}

/* 45s, 12m, 3h5m, 2d4h: two units at most. */
static void
queue_duration(char *buf, size_t len, time_t secs)
{
	long long	 s = secs > 0 ? (long long)secs : 0;

	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm", s / 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
}

static void
queue_rcpt_status(char *buf, size_t len, const struct queue_rcpt *r,
    time_t now)
{
	char	 next[32];

	if (r->status == RCPT_HELD)
		strlcpy(buf, QUEUE_HELD_TEXT, len);
	else if (r->attempts == 0)
		strlcpy(buf, "pending", len);
	else {
		queue_duration(next, sizeof(next), r->next_attempt - now);
		snprintf(buf, len, "deferred: attempts %u, next in %s, %s",
		    r->attempts, next, r->last_error);
	}
}

static int
queue_age_cmp(const void *a, const void *b)
{
	struct queue_entry	*ea = *(struct queue_entry *const *)a;
	struct queue_entry	*eb = *(struct queue_entry *const *)b;

	if (ea->created != eb->created)
		return ea->created < eb->created ? -1 : 1;
	return queue_id_cmp(ea, eb);
}

/*
 * One line per recipient still queued, oldest message first: id, age,
 * sender, recipient, status.
 */
void
queue_ctl_show(uint32_t peerid)
{
	struct queue_entry	*e, **all = NULL, **more;
	struct queue_rcpt	*r;
	char			 line[2 * ADDRESS_MAX +
				    ENVELOPE_REASON_MAX + 128];
	char			 age[32], status[ENVELOPE_REASON_MAX + 64];
	time_t			 now = time(NULL);
	size_t			 i, j, n = 0, cap = 0;

	RB_FOREACH(e, queue_ids, &queue_by_id) {
		if (!e->complete || e->removed)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((more = reallocarray(all, cap,
			    sizeof(*all))) == NULL)
				fatal("%s: reallocarray", __func__);
			all = more;
		}
		all[n++] = e;
	}
	if (n > 0)
		qsort(all, n, sizeof(*all), queue_age_cmp);
	for (j = 0; j < n; j++) {
		e = all[j];
		queue_duration(age, sizeof(age), now - e->created);
		for (i = 0; i < e->nrcpts; i++) {
			r = &e->rcpts[i];
			if (!queue_rcpt_active(r))
				continue;
			queue_rcpt_status(status, sizeof(status), r, now);
			snprintf(line, sizeof(line), "%016" PRIx64 " %s %s %s "
			    "%s", e->id, age,
			    e->sender[0] != '\0' ? e->sender : "<>",
			    r->address, status);
			queue_ctl_reply(peerid, IMSG_CTL_ITEM, line);
		}
	}
	free(all);
	queue_ctl_reply(peerid, IMSG_CTL_END, NULL);
}
