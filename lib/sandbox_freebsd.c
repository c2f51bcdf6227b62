/*
 * FreeBSD: Capsicum capability mode.  Descriptors are already open;
 * storaged keeps its directory descriptor for openat(2).
 */
#ifdef __FreeBSD__

#include <sys/capsicum.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

void
sandbox_enter(enum proc_id id)
{
	(void)id;
	if (cap_enter() == -1)
		fatal("cap_enter");
}

void
sandbox_selftest(enum proc_id id)
{
	const char	*want = getenv("POSTERN_SANDBOX_SELFTEST");
	int		 fd;

	if (want == NULL || strcmp(want, proc_names[id]) != 0)
		return;
	log_warnx("sandbox self-test: making a forbidden system call");
	fd = open("/etc/passwd", O_RDONLY);
	fatalx("sandbox self-test: forbidden call returned %d", fd);
}

#endif /* __FreeBSD__ */
