/*
 * posternd: one executable.  Started by an admin it is the parent; the
 * parent re-executes it once per role with -P, and main() hands each
 * such child to its role.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parent.h"

extern char **environ;

static const struct proc_role *roles[PROC_MAX] = {
	[PROC_CONTROL] = &control_role,
	[PROC_SMTPD] = &smtpd_role,
	[PROC_QUEUE] = &queue_role,
	[PROC_IMAPD] = &imapd_role,
	[PROC_JMAPD] = &jmapd_role,
	[PROC_DAVD] = &davd_role,
	[PROC_STORAGED] = &storaged_role,
};

static __attribute__((__noreturn__)) void
usage(void)
{
	fprintf(stderr, "usage: posternd [-dnv] [-f file]\n");
	exit(1);
}

int
main(int argc, char *argv[])
{
	struct postern_conf	*conf;
	const char		*conffile = POSTERN_CONFFILE;
	const char		*role = NULL;
	int			 ch, debug = 0, noaction = 0, verbose = 0;
	int			 id;

	setproctitle_init(argc, argv, environ);
	while ((ch = getopt(argc, argv, "df:nP:v")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'n':
			noaction = 1;
			break;
		case 'P':
			role = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if (role != NULL) {
		if ((id = proc_lookup(role)) <= PROC_PARENT ||
		    roles[id] == NULL)
			fatalx("unknown role %s", role);
		proc_run(roles[id], debug, verbose);
	}

	if (noaction) {
		if ((conf = parse_config(conffile)) == NULL)
			exit(1);
		conf_free(conf);
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	parent_main(conffile, debug, verbose, argv);
}
