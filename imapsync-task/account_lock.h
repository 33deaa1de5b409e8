/* account_lock.h - one run per account at a time.
 *
 * A task's own lock (runlog_lock) keeps two runs of one task apart.  Two
 * different tasks may still share the remote account (user, host, port)
 * or fill the same local user; their runs must not overlap either, or
 * both take the same unseen messages.  So after its own lock a run takes
 * two more, in a directory all tasks share:
 *
 *     ROOT/.locks/remote-HASH.lock    HASH of "user@host:port" (host in
 *                                     lower case)
 *     ROOT/.locks/local-HASH.lock     HASH of the local user
 *
 * where ROOT is the parent of the task's state directory (--state-dir
 * ROOT, or /var/lib/imapsync-task; the unit's StateDirectory= lists
 * imapsync-task/.locks next to imapsync-task/%i, and all instances run
 * as one User= so that they can share it).  ".locks" can never be a
 * task's directory: task names do not start with a dot.
 *
 * The locks are flock(2)s, taken in the order of their file names (no
 * deadlock between tasks that share one account each), with a bounded
 * wait; the holder writes its task name and pid into the file so that a
 * run that gives up can name it.
 */
#ifndef ACCOUNT_LOCK_H
#define ACCOUNT_LOCK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "task.h"

#define ACCOUNT_LOCK_WAIT_DEFAULT 300   /* seconds, --lock-wait */
#define ACCOUNT_LOCKS_DIR ".locks"

struct account_locks {
	int fd[2];
};

/* The accounts as the locks and check name them (the caller frees):
   "user@host:port" with the host in lower case, and the local user. */
char *account_key_remote(const struct task *t);
char *account_key_local(const struct task *t);

/* Directory of the account locks for the task state directory
   task_dir (the caller frees). */
char *account_locks_dir(const char *task_dir);

/* Take both locks of task t, waiting at most wait_sec seconds in all
   (0: do not wait) and giving up early when *stop is set.  0 on success
   (release with account_locks_release), EXIT_TEMPFAIL with err naming
   the task that holds a lock, EXIT_IOERR when the lock directory cannot
   be used. */
int account_locks_take(const char *task_dir, const struct task *t, unsigned wait_sec,
		       volatile sig_atomic_t *stop, struct account_locks *l,
		       char *err, size_t errlen);
void account_locks_release(struct account_locks *l);

/* For check: print to out one warning for each pair of tasks in
   config_dir that copy the same remote account into the same local
   user, where one of them is among names[0..n) (all when names is
   NULL).  Returns the number of warnings. */
unsigned account_check_duplicates(const char *config_dir, char *const *names, size_t n,
				  FILE *out);

#endif
