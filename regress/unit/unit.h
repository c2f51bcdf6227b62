/*
 * What every unit test shares: CHECK() prints one line per failed
 * check, unit_done() prints "N passed, N failed" and gives the exit
 * status.  Header only, so a test needs nothing but lib/.
 */
#ifndef UNIT_H
#define UNIT_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

static int	unit_passed, unit_failed;

#define CHECK(cond)	unit_check(!!(cond), #cond, __FILE__, __LINE__)

static inline int
unit_check(int ok, const char *expr, const char *file, int line)
{
	if (ok)
		unit_passed++;
	else {
		unit_failed++;
		printf("%s:%d: FAIL: %s\n", file, line, expr);
		fflush(stdout);
	}
	return ok;
}

static inline int
unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

/* Open descriptors, to catch a leak. */
static inline int
unit_open_fds(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* opendir's own */
}

#endif /* UNIT_H */
