/*
 * libFuzzer target for the postern.conf(5) parser: each input is
 * written to one temporary file, which parse_config() then reads.
 * Most inputs are bad configs that log their errors to stderr; run with
 * -close_fd_mask=2 to keep them quiet (libFuzzer's reports still show).
 */
#include <sys/types.h>

#include <err.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "postern.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	fuzz_path[PATH_MAX];

static void
fuzz_write(const uint8_t *data, size_t size)
{
	const char	*tmpdir;
	ssize_t		 n;
	int		 fd;

	if (fuzz_path[0] == '\0') {
		if ((tmpdir = getenv("TMPDIR")) == NULL || *tmpdir == '\0')
			tmpdir = "/tmp";
		if ((size_t)snprintf(fuzz_path, sizeof(fuzz_path),
		    "%s/fuzz_config.XXXXXX", tmpdir) >= sizeof(fuzz_path))
			errx(1, "TMPDIR too long");
		if ((fd = mkstemp(fuzz_path)) == -1)
			err(1, "mkstemp %s", fuzz_path);
		close(fd);
	}
	if ((fd = open(fuzz_path, O_WRONLY | O_TRUNC)) == -1)
		err(1, "open %s", fuzz_path);
	while (size > 0) {
		if ((n = write(fd, data, size)) == -1)
			err(1, "write %s", fuzz_path);
		data += n;
		size -= n;
	}
	close(fd);
}

static void
fuzz_cleanup(void)
{
	if (fuzz_path[0] != '\0')
		unlink(fuzz_path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 once;
	struct postern_conf	*conf;

	if (!once) {
		once = 1;
		atexit(fuzz_cleanup);
	}
	fuzz_write(data, size);
	if ((conf = parse_config(fuzz_path)) != NULL)
		conf_free(conf);
	return 0;
}
