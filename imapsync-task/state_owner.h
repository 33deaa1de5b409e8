/* state_owner.h - hand runs never break the service.
 *
 * Under systemd a task runs as the unit's dynamic user and its state
 * directory belongs to that user.  A run started by hand in a root shell
 * would rewrite the state files as root's, and the next service run
 * would fail on them.  So a run refuses a state directory that belongs
 * to another user and says what to run instead.
 */
#ifndef STATE_OWNER_H
#define STATE_OWNER_H

#include <stdbool.h>
#include <stddef.h>

/* 0 when this process may run task name in the state directory dir: it
   does not exist yet, or it belongs to the effective user.  Otherwise
   EXIT_CONFIG with err naming the owner and the command to use
   ("systemctl start imapsync-task@NAME.service").  A dry run is let
   through: it changes nothing but the lock file (see below). */
int state_owner_check(const char *dir, const char *name, bool dry_run,
		      char *err, size_t errlen);

/* After the lock file fd of dir was opened (and maybe created) by root
   in a dry run: give it to the directory's owner. */
void state_owner_adopt(int fd, const char *dir);

#endif
