/* task.h - validated configuration: imapsync-task.conf and tasks/NAME.ini.
 *
 * task.c is the only file that includes iniparser.  Loading validates
 * everything that can be checked without a network: every error of a
 * file is collected and reported as "FILE:LINE: key: reason".
 */
#ifndef TASK_H
#define TASK_H

#include <stdbool.h>
#include <stdint.h>

enum security { SECURITY_STARTTLS, SECURITY_TLS, SECURITY_NONE };
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
	char **exclude;         /* NULL-terminated PCRE2 patterns (all-except) */
	enum delete_mode delete_mode;
	unsigned delete_older_than_days;
	enum delivery_mode delivery;
	bool manual;            /* interval = manual */
	char *interval;         /* systemd time span as written, NULL if manual */
	uint64_t interval_sec;
	struct endpoint remote;
	char *remote_user;
	char *password_file;    /* absolute path */
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

/* Names of every tasks/*.ini (sorted, NULL-terminated; free with
   task_names_free).  NULL with errno set on failure to read the dir. */
char **task_list_names(const char *config_dir);
void task_names_free(char ***names);

/* Parse a systemd time span ("15min", "1h 30min", "90s", "2d"). */
bool task_parse_timespan(const char *text, uint64_t *sec_r);

const char *security_name(enum security s);
const char *folder_mode_name(enum folder_mode m);
const char *delete_mode_name(enum delete_mode m);
const char *delivery_mode_name(enum delivery_mode m);

#endif
