/*
 * queue: the schedule of every accepted message.  storaged owns the
 * queue on disk; this role keeps each entry with its recipients in
 * memory, asks storaged to deliver the entries that are due, retries on
 * a back-off and asks for bounces.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <sys/tree.h>

#include <stdint.h>
#include <time.h>

#include "envelope.h"
#include "proc.h"

#define QUEUE_INFLIGHT_MAX	64	/* DELIVERs out at once */
#define QUEUE_EXPIRE_SEC	(5 * 24 * 3600)	/* then bounce */
#define QUEUE_NOANSWER_SEC	60	/* retry one storaged left out */
#define QUEUE_HELD_TEXT	\
	"held: relaying to other domains is not built yet"

struct queue_rcpt {
	uint32_t	 index;
	uint8_t		 kind;		/* enum rcpt_kind */
	uint8_t		 status;	/* enum rcpt_status */
	uint32_t	 attempts;
	time_t		 next_attempt;
	int		 answered;	/* in the attempt under way */
	int		 failed;	/* for good, to bounce */
	int		 bouncing;	/* in a BOUNCE not yet answered */
	char		 address[ADDRESS_MAX + 1];
	char		 last_error[ENVELOPE_REASON_MAX + 1];
};

struct queue_entry {
	RB_ENTRY(queue_entry)	 by_id;
	RB_ENTRY(queue_entry)	 by_time;
	uint64_t		 id;
	time_t			 created;
	char			 sender[ADDRESS_MAX + 1];
	struct queue_rcpt	*rcpts;
	size_t			 nrcpts;
	int			 complete;	/* all recipients known */
	int			 scheduled;	/* in the time tree */
	time_t			 due;		/* its key there */
	int			 delivering;	/* a DELIVER is out */
	uint32_t		 deliver_peerid;
	int			 bounces;	/* BOUNCEs unanswered */
	uint32_t		 remove_peerid;	/* control client */
	int			 removed;
};

/* queue/queue.c */
void	queue_ctl_reply(uint32_t, uint32_t, const char *);

/* queue/queue_sched.c */
void	queue_sched_init(void);
void	queue_rcpt_add(uint64_t, uint32_t, const char *, time_t,
	    const char *, uint8_t, uint8_t, uint32_t, time_t, const char *);
void	queue_entry_new(uint64_t);
void	queue_load_end(void);
void	queue_deliver_result(uint32_t, uint64_t, uint32_t, uint8_t,
	    const char *);
void	queue_deliver_done(uint32_t, uint64_t);
void	queue_bounce_result(uint64_t, uint64_t, uint32_t);
void	queue_remove_result(uint32_t, uint32_t, const char *);
void	queue_ctl_show(uint32_t);
void	queue_ctl_remove(uint32_t, const char *);
void	queue_ctl_schedule(uint32_t, const char *);

#endif /* QUEUE_H */
