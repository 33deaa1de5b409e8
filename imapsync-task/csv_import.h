/* csv_import.h - "imapsync-task import-csv": tasks in bulk from a CSV
 * file in the format of NethServer's import-csv-tasks.
 *
 * The header names the columns, in any order:
 *
 *   localusername,remoteusername,remotepassword,remotehostname,remoteport,security
 *
 * all required (security may be empty), and optionally folders, exclude,
 * delete, delete_older_than_days and interval.  Each row becomes
 * tasks/NAME.ini and a 0600 tasks/NAME.pwd; NAME comes from the local and
 * the remote user (csv_import_task_name).  Every row is checked first --
 * the values as task_load() checks a task file, a duplicate of an
 * existing task or of an earlier row -- and nothing is written unless
 * every row is valid.  The format and the rules are in imapsync-task(8),
 * section CSV IMPORT.
 */
#ifndef CSV_IMPORT_H
#define CSV_IMPORT_H

#include <stdbool.h>
#include <stdio.h>

struct csv_import_opts {
	const char *config_dir;
	const char *file;       /* the CSV file, "-" for standard input */
	bool check;             /* validate every row, write nothing */
	bool update;            /* a row of an existing task replaces its
				   password (and port and security) */
	FILE *out, *err;        /* what is done / errors; NULL: stdout, stderr */
};

/* Import.  Returns 0, EXIT_CONFIG (78) when the file cannot be read or
   a row is invalid (nothing written then), EXIT_IOERR (74) when a task
   file cannot be written. */
int csv_import(const struct csv_import_opts *opts);

/* The task name for a local and a remote user: both joined by '_', '@'
   and every character a task name may not hold turned into '_'.  When
   anything but '@' had to change (spaces, '+', non-ASCII), or the name
   would be too long, "-" and 8 hex digits of a hash of both users are
   appended, so that different accounts keep different names.  The result
   is valid for task_name_valid().  The caller frees it. */
char *csv_import_task_name(const char *local_user, const char *remote_user);

#endif
