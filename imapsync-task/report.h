/* report.h - the "list" and "status" commands: what every task did last
 * and why, as text or as JSON (keys in imapsync-task(8), "JSON OUTPUT").
 *
 * The facts come from the task files (every tasks/NAME.ini, including
 * those with an invalid name or that do not load), the run records in
 * each task's state directory (runlog.h), the journal (status), and,
 * where systemd runs, the task's service unit (unitstatus.h): a unit
 * that failed before the worker could record anything (243/CREDENTIALS)
 * or is running now.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdbool.h>

struct report_opts {
	const char *config_dir;
	bool json;
	/* The task's state directory (allocated), as "run" would use it. */
	char *(*state_dir)(const void *ctx, const char *name);
	const void *ctx;
};

/* Exit codes: 0, or 78 when the tasks directory cannot be read. */
int report_list(const struct report_opts *o);
/* 0; 78 for an invalid name or a task file that does not load (the
   errors are told; with json also as the object's config_error); the
   journal's code when it cannot be read. */
int report_status(const struct report_opts *o, const char *name);

#endif
