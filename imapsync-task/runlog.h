/* runlog.h - the per-task state directory: the run lock and the record
 * of recent runs that "list" and "status" print. */
#ifndef RUNLOG_H
#define RUNLOG_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct run_record {
	time_t start, end;
	int exit_code;
	uint64_t copied, skipped, deleted, errors, bytes;
	/* Why a run failed: "" when it did not, or when the record comes
	   from a version that did not record it.  side: remote, local,
	   state, config, or "" (unknown); see runlog_error_side(). */
	char side[16];
	char error[400];
};

/* Create dir if needed and take its lock without waiting.  0 on success
   (*fd_r holds it), EXIT_TEMPFAIL with *holder_r when another run holds
   it, EXIT_IOERR otherwise (err set). */
int runlog_lock(const char *dir, int *fd_r, pid_t *holder_r, char *err, size_t errlen);
/* The lock file's modification time before this run took it: the last
   sign of life of the previous run (runlog_touch() updates it). */
double runlog_lock_mtime(int fd);
void runlog_touch(int fd);

/* Append a record to dir/runs (keeps the last RUNLOG_KEEP) and add it
   to the lifetime totals in dir/totals.  A line of runs is
   "START END EXIT COPIED SKIPPED DELETED ERRORS BYTES", then, when the
   run failed, " side=SIDE error=MESSAGE" (to the end of the line); lines
   without them (older versions) are read as before, and older versions
   read the eight numbers of new lines. */
#define RUNLOG_KEEP 100
int runlog_append(const char *dir, const struct run_record *r);
/* Read up to max newest records, newest last.  Returns the count. */
size_t runlog_read(const char *dir, struct run_record *recs, size_t max);
/* Lifetime totals: runs counted in exit_code, sums in the counters. */
int runlog_totals(const char *dir, struct run_record *tot, uint64_t *runs_r);

const char *exit_code_verdict(int code);

/* Which side a failure is on, from its exit code and message: "config"
   (78), "state" (65, 74, or a message about the state), "remote" or
   "local" (the message names the connection), "local" for 73, else ""
   when nothing tells. */
const char *runlog_error_side(int code, const char *message);

#endif
