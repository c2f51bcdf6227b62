#ifndef PARENT_H
#define PARENT_H

#include "proc.h"

/* In the control child, the listening control socket sits here. */
#define PROC_FD_CONTROL_SOCKET	(PROC_FD_LAST + 1)

__attribute__((__noreturn__)) void parent_main(const char *, int, int,
		    char *[]);

/* parse.y */
const char	*parse_first_error(void);

extern const struct proc_role	control_role;
extern const struct proc_role	smtpd_role;
extern const struct proc_role	queue_role;
extern const struct proc_role	imapd_role;
extern const struct proc_role	jmapd_role;
extern const struct proc_role	davd_role;
extern const struct proc_role	storaged_role;

#endif /* PARENT_H */
