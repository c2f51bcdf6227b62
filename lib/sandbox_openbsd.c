/*
 * OpenBSD: pledge(2) and unveil(2) per role.
 */
#ifdef __OpenBSD__

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

static const char *sandbox_promises[PROC_MAX] = {
	[PROC_CONTROL] = "stdio unix recvfd sendfd",
	[PROC_SMTPD] = "stdio inet recvfd sendfd",
	[PROC_QUEUE] = "stdio inet dns recvfd sendfd",
	[PROC_IMAPD] = "stdio inet recvfd sendfd",
	[PROC_JMAPD] = "stdio inet recvfd sendfd",
	[PROC_DAVD] = "stdio inet recvfd sendfd",
	[PROC_STORAGED] = "stdio rpath wpath cpath flock fattr recvfd sendfd",
};

void
sandbox_enter(enum proc_id id)
{
	if (id == PROC_STORAGED) {
		if (unveil("/", "rwc") == -1)
			fatal("unveil");
	}
	if (unveil(NULL, NULL) == -1)
		fatal("unveil");
	if (pledge(sandbox_promises[id], NULL) == -1)
		fatal("pledge");
}

void
sandbox_selftest(enum proc_id id)
{
	const char	*want = getenv("POSTERN_SANDBOX_SELFTEST");

	if (want == NULL || strcmp(want, proc_names[id]) != 0)
		return;
	log_warnx("sandbox self-test: making a forbidden system call");
	(void)execl("/bin/sh", "sh", (char *)NULL);
	fatalx("sandbox self-test: forbidden call returned");
}

#endif /* __OpenBSD__ */
