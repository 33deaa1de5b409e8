/* log.h - logging to the journal (under systemd) or stderr.
 *
 * log.c is the only file that includes sd-journal.  log_warn() appends
 * strerror(errno), log_warnx() does not.  Every line goes through
 * log_redact() first: registered secrets never reach a log or trace.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>
#include <stdbool.h>

#define LOG_ATTR_PRINTF(a, b) __attribute__((format(printf, a, b)))

enum log_level { LOGL_ERR = 3, LOGL_WARNING = 4, LOGL_NOTICE = 5,
		 LOGL_INFO = 6, LOGL_DEBUG = 7 };

/* ident: "imapsync-task"; task: the task name for TASK= (may be NULL). */
void log_init(const char *ident, const char *task, int verbosity);
void log_set_task(const char *task);
void log_set_folder(const char *folder);
bool log_to_journal(void);

/* A secret that must never be printed: every occurrence is replaced by
   "<redacted>".  The pointer must stay valid until log_forget_secret. */
void log_register_secret(const char *secret);
void log_forget_secret(const char *secret);
/* Copy src to dst (size dstlen) with registered secrets redacted. */
void log_redact(char *dst, size_t dstlen, const char *src);

void log_msg(enum log_level level, const char *fmt, ...) LOG_ATTR_PRINTF(2, 3);
void log_warn(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2);
void fatalx(const char *fmt, ...) LOG_ATTR_PRINTF(1, 2) __attribute__((noreturn));

/* Called before a line is written to stderr (not the journal): the
   progress line of a terminal is cleared first (progress.c).  NULL: none. */
void log_set_stderr_hook(void (*before)(void));

/* The first error-level message logged since log_init() (redacted, as
   logged), or "" -- the reason a run failed, for its run record. */
const char *log_first_error(void);

/* Structured record: message plus extra FIELD=value strings (NULL-ended),
   e.g. the run summary with COPIED=, SKIPPED=, ... */
void log_struct(enum log_level level, const char *const *fields,
		const char *fmt, ...) LOG_ATTR_PRINTF(3, 4);

#endif
