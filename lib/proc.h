/*
 * The life of a worker, in one place (after httpd's proc.c): receive
 * config and sockets from the parent, chroot, drop to its user, set up
 * the event loop, connect its peers, enter the sandbox, dispatch.  A
 * role supplies a struct proc_role and nothing else.
 */
#ifndef PROC_H
#define PROC_H

#include <event.h>

#include "postern.h"
#include "imsg.h"
#include "imsg_types.h"
#include "msg.h"

#define PROC_FD_PARENT		3
#define PROC_FD(peer)		(4 + (peer))	/* peer != PROC_PARENT */
#define PROC_FD_LAST		PROC_FD(PROC_MAX - 1)

struct proc_peer {
	enum proc_id		 id;
	struct imsgbuf		 ibuf;
	struct event		 ev;
	short			 events;
	void			(*cb)(int, short, void *);
	void			*arg;
};

typedef void (*proc_dispatch_fn)(struct proc_peer *, struct imsg *);

struct proc_role {
	enum proc_id		 id;
	/* Before chroot, still root: the last chance to open a file. */
	void			(*pre_chroot)(struct postern_conf *);
	/* After the privilege drop, before the sandbox. */
	void			(*init)(struct postern_conf *);
	/* A new config from SIGHUP; listeners are those of start-up. */
	void			(*reload)(struct postern_conf *);
	void			(*shutdown)(void);
	proc_dispatch_fn	 dispatch[PROC_MAX];
};

extern const char		*proc_names[PROC_MAX];
extern const int		 proc_links[PROC_MAX][PROC_MAX];
extern struct proc_peer		*proc_peers[PROC_MAX];
extern struct postern_conf	*proc_conf;
extern time_t			 proc_started;

int		 proc_lookup(const char *);
__attribute__((__noreturn__)) void proc_run(const struct proc_role *,
		    int, int);
void		 proc_peer_init(struct proc_peer *, enum proc_id, int,
		    void (*)(int, short, void *), void *);
void		 proc_peer_update(struct proc_peer *);
int		 proc_compose(enum proc_id, uint32_t, uint32_t, int,
		    const void *, size_t);
int		 proc_send(enum proc_id, struct msg_out *);
__attribute__((__noreturn__)) void proc_unexpected(struct proc_peer *,
		    struct imsg *);

/* lib/conf.c: the config as a message sequence, parent to role */
int		 conf_send(struct imsgbuf *, struct postern_conf *,
		    enum proc_id, int);
int		 conf_recv(struct postern_conf **, struct imsg *);

/* lib/privsep.c */
void		 privsep_drop(const char *, const char *);

/* lib/sandbox_*.c */
void		 sandbox_enter(enum proc_id);
void		 sandbox_selftest(enum proc_id);

#endif /* PROC_H */
