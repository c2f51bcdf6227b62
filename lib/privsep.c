/*
 * The privilege drop every worker makes after its chroot.
 */
#include <sys/types.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

/* Chroots into root and becomes user, for good. */
void
privsep_drop(const char *root, const char *user)
{
	struct passwd	*pw;
	uid_t		 uid;
	gid_t		 gid;

	/* Looked up first: after chroot there is no passwd file. */
	if ((pw = getpwnam(user)) == NULL)
		fatalx("unknown user %s", user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0)
		fatalx("user %s must not be root", user);
	if (chroot(root) == -1)
		fatal("chroot %s", root);
	if (chdir("/") == -1)
		fatal("chdir /");
	if (setgroups(1, &gid) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid");
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid");
	if (getuid() != uid || geteuid() != uid)
		fatalx("privilege drop to %s did not hold", user);
#ifdef __linux__
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl PR_SET_NO_NEW_PRIVS");
	/* Cleared by the uid change above, so set it now. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1)
		fatal("prctl PR_SET_PDEATHSIG");
#endif
}
