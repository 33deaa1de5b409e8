/* state_owner.c - hand runs never break the service (see state_owner.h). */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "state_owner.h"

int state_owner_check(const char *dir, const char *name, bool dry_run,
		      char *err, size_t errlen)
{
	struct stat st;
	uid_t me = geteuid();

	if (stat(dir, &st) < 0 || st.st_uid == me || dry_run)
		return 0;   /* a missing directory is created by the run, as ours */
	struct passwd *pw = getpwuid(st.st_uid);
	char owner[96];
	if (pw != NULL)
		snprintf(owner, sizeof(owner), "uid %lu (%s)", (unsigned long)st.st_uid,
			 pw->pw_name);
	else
		snprintf(owner, sizeof(owner), "uid %lu", (unsigned long)st.st_uid);
	snprintf(err, errlen, "state directory %s belongs to %s, not to uid %lu: it is the "
		 "service's; a run as uid %lu would leave files there that the service cannot "
		 "use. Run the task through systemd instead: systemctl start "
		 "imapsync-task@%s.service (to preview: imapsync-task run --dry-run %s)",
		 dir, owner, (unsigned long)me, (unsigned long)me, name, name);
	return EXIT_CONFIG;
}

void state_owner_adopt(int fd, const char *dir)
{
	struct stat dst, fst;

	if (geteuid() != 0 || stat(dir, &dst) < 0 || fstat(fd, &fst) < 0)
		return;
	if (fst.st_uid != dst.st_uid || fst.st_gid != dst.st_gid)
		(void)!fchown(fd, dst.st_uid, dst.st_gid);
}
