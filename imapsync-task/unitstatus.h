/* unitstatus.h - what systemd knows of a task's service unit, for "list"
 * and "status": imapsync-task@NAME.service read over D-Bus (sd-bus) from
 * org.freedesktop.systemd1.  Only where systemd runs (sd_booted()); every
 * failure (no bus, no unit, no permission) means "nothing known", never
 * an error of the command.
 */
#ifndef UNITSTATUS_H
#define UNITSTATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct unit_status {
	char unit[200];            /* imapsync-task@NAME.service */
	char load_state[32];       /* loaded, not-found, ... */
	char active_state[32];     /* active, activating, failed, inactive, ... */
	char sub_state[32];
	char result[32];           /* Service.Result: success, exit-code, signal,
	                              timeout, oom-kill, ... */
	int exec_main_code;        /* CLD_EXITED (1), CLD_KILLED (2), CLD_DUMPED
	                              (3), 0: no process ran */
	int exec_main_status;      /* exit status or signal number */
	uint64_t exit_usec;        /* ExecMainExitTimestamp (wall clock, µs) */
	uint64_t change_usec;      /* StateChangeTimestamp (wall clock, µs) */
	char status_text[512];     /* sd_notify STATUS= of a running instance */
};

struct unit_query;

/* NULL when systemd is not PID 1 or its bus cannot be reached. */
struct unit_query *unit_query_open(void);
/* Fill st for task's unit; false when nothing is known of it (not
   loadable, no answer). */
bool unit_query_task(struct unit_query *q, const char *task, struct unit_status *st);
void unit_query_close(struct unit_query **q);

/* The unit is running now (starting, running or stopping). */
bool unit_running(const struct unit_status *st);
/* systemd's name of an exit status of its own (200 and up, e.g.
   "CREDENTIALS" for 243), or NULL. */
const char *unit_exit_status_name(int status);
/* A failure of the unit as "systemctl status" names it, into buf:
   "243/CREDENTIALS", "signal/KILL", "timeout", "exit-code 69"; false when
   the unit has not failed. */
bool unit_failure_text(const struct unit_status *st, char *buf, size_t len);
/* Did the worker itself end the failed run with an exit status it
   documents (so its own run record tells more)? */
bool unit_failed_in_worker(const struct unit_status *st);

#endif
