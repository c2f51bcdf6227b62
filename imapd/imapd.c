/*
 * imapd: its protocol comes in a later change; until then it starts,
 * drops its privileges, enters its sandbox and waits for the parent.
 */
#include "proc.h"

const struct proc_role imapd_role = {
	.id = PROC_IMAPD,
};
