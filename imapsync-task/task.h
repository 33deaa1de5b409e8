/* task.h - validated configuration: imapsync-task.conf and tasks/NAME.ini.
 *
 * task.c holds the schema of both files; ini.c reads them.  Loading
 * validates everything that can be checked without a network: every
 * error of a file is collected and reported as "FILE:LINE: key: reason".
 */
#ifndef TASK_H
#define TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"                    /* enum security */

#define TASK_NAME_MAX 128           /* longest task name */
#define TASK_MIN_INTERVAL_SEC 60    /* shortest interval accepted */

enum folder_mode { FOLDERS_INBOX, FOLDERS_ALL, FOLDERS_ALL_EXCEPT };
enum delete_mode { DELETE_NEVER, DELETE_AFTER_SYNC, DELETE_OLDER_THAN };
enum delivery_mode { DELIVERY_APPEND, DELIVERY_SIEVE, DELIVERY_LMTP };

struct endpoint {
	char *host;
	uint16_t port;
	enum security security;
	char *ca_file;          /* NULL: system store */
	bool tls_verify;
};

struct local_config {
	struct endpoint ep;
	char *master_user;
	char master_separator;
	char *master_password_file;
	char *lmtp;             /* "host:port" or an absolute socket path */
	char *path;             /* the file it came from */
};

struct task {
	char *name;             /* [A-Za-z0-9_.-]+, also the systemd instance */
	char *path;             /* tasks/NAME.ini */
	char *local_user;
	enum folder_mode folders;
	char **exclude;         /* NULL-terminated PCRE2 patterns (all-except),
				   one per exclude line, in file order */
	struct exclude **exclude_re; /* the same compiled, NULL-terminated
					(opaque: exclude.h) */
	enum delete_mode delete_mode;
	unsigned delete_older_than_days;
	enum delivery_mode delivery;
	bool manual;            /* interval = manual */
	char *interval;         /* systemd time span as written, NULL if manual */
	uint64_t interval_sec;
	struct endpoint remote;
	char *remote_user;
	char *password_file;    /* absolute path */
	/* Pace of the remote ([remote] max_bytes_per_second,
	   max_messages_per_second); 0: unlimited. */
	uint64_t max_bytes_per_second;
	double max_messages_per_second;
	/* Connection pairs for folders side by side ([remote]
	   max_connections, 1 to 8, default 2; folders = all only). */
	unsigned max_connections;
};

/* Error sink: every problem found is reported through it, one line each,
   already formatted as "FILE:LINE: key: reason" (or "FILE: reason"). */
typedef void task_error_fn(void *ctx, const char *line);

bool task_name_valid(const char *name);

/* Load and validate; on failure return NULL after reporting every error. */
struct local_config *local_config_load(const char *config_dir,
				       task_error_fn *err, void *ctx);
void local_config_free(struct local_config **cfg);

struct task *task_load(const char *config_dir, const char *name,
		       task_error_fn *err, void *ctx);
void task_free(struct task **task);

/* task_load() with flags.  TASK_LOAD_NO_PASSWORD_CHECK skips the check of
   the password file (existence, mode) -- for callers such as the
   generator that never use the password and run without
   $CREDENTIALS_DIRECTORY.  task_load() is task_load_with(..., 0, ...). */
#define TASK_LOAD_NO_PASSWORD_CHECK 0x1u
struct task *task_load_with(const char *config_dir, const char *name,
			    unsigned flags, task_error_fn *err, void *ctx);
/* local_config_load() with the same flags (TASK_LOAD_NO_PASSWORD_CHECK
   skips the check of master_password_file). */
struct local_config *local_config_load_with(const char *config_dir,
					    unsigned flags,
					    task_error_fn *err, void *ctx);

/* Names of every tasks/NAME.ini (sorted, NULL-terminated; free with
   task_names_free).  NULL with errno set on failure to read the dir. */
char **task_list_names(const char *config_dir);
void task_names_free(char ***names);

/* Is the remote folder utf8_name (UTF-8, '/' as hierarchy separator)
   excluded by the task's exclude patterns, that is, does any of them
   match it?  Only folders = all-except excludes anything.  Matching runs
   under PCRE2 match/depth/heap limits: when no pattern matches and a
   limit was hit (or matching failed otherwise) for one of them, it
   returns false and sets *err_r to the negative PCRE2 error code -- count
   it as an error of that folder; otherwise *err_r is 0.  Invalid UTF-8 in
   utf8_name is no error (it simply does not match where it is
   invalid). */
bool task_folder_excluded(const struct task *t, const char *utf8_name,
			  int *err_r);
/* The same, returning the first pattern that matches (for a log line),
   or NULL. */
const char *task_folder_exclude_match(const struct task *t,
				      const char *utf8_name, int *err_r);
/* Describe an *err_r of task_folder_excluded() for a log line. */
void task_match_strerror(int err, char *buf, size_t size);

/* Parse a systemd time span ("15min", "1h 30min", "90s", "2d"); the same
   as timespan_parse() (timespan.h). */
bool task_parse_timespan(const char *text, uint64_t *sec_r);

const char *security_name(enum security s);
const char *folder_mode_name(enum folder_mode m);
const char *delete_mode_name(enum delete_mode m);
const char *delivery_mode_name(enum delivery_mode m);

#endif
