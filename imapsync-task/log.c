/* log.c - logging to the journal (under systemd) or stderr.
 *
 * The only file that includes sd-journal.  Every message passes through
 * log_redact() before it leaves the process, so a registered secret can
 * never reach the journal, stderr or a protocol trace.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log.h"
#include "parallel.h"
#include "util.h"

#define LOG_LINE_MAX 4096
/* The task's two passwords, and up to two login forms of each IMAP
   connection (imap_client_keep_secret): a remote and a local one per
   connection pair, PARALLEL_MAX pairs at once; four to spare. */
#define MAX_SECRETS (2 + 2 * 2 * PARALLEL_MAX + 4)
/* A piece of a secret this long, left where a string was cut, is
   redacted too. */
#define SECRET_FRAGMENT_MIN 6

static const char *log_ident = "imapsync-task";
static char log_task[256];
/* per flow: folders are copied side by side (parallel.c) */
static char log_folders[PARALLEL_MAX][1024];
static int log_verbosity;
static bool log_journal;
static const char *secrets[MAX_SECRETS];
static void (*stderr_hook)(void);
static char first_error[512];

/* systemd sets JOURNAL_STREAM to "dev:ino" of the stream that stderr is
   connected to; only then do structured records reach the journal
   (sd_journal_send would also work from a terminal, but the admin running
   a task by hand wants to see its output). */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, const char *task, int verbosity)
{
	if (ident != NULL)
		log_ident = ident;
	log_verbosity = verbosity;
	log_journal = stderr_is_journal();
	first_error[0] = '\0';
	log_set_task(task);
}

void log_set_stderr_hook(void (*before)(void))
{
	stderr_hook = before;
}

const char *log_first_error(void)
{
	return first_error;
}

void log_set_task(const char *task)
{
	snprintf(log_task, sizeof(log_task), "%s", task != NULL ? task : "");
}

void log_set_folder(const char *folder)
{
	char *f = log_folders[parallel_worker()];

	snprintf(f, sizeof(log_folders[0]), "%s", folder != NULL ? folder : "");
}

bool log_to_journal(void)
{
	return log_journal;
}

void log_register_secret(const char *secret)
{
	if (secret == NULL || *secret == '\0')
		return;
	for (size_t i = 0; i < MAX_SECRETS; i++) {
		if (secrets[i] == NULL) {
			secrets[i] = secret;
			return;
		}
	}
	fatalx("too many secrets registered");
}

void log_forget_secret(const char *secret)
{
	for (size_t i = 0; i < MAX_SECRETS; i++)
		if (secrets[i] == secret)
			secrets[i] = NULL;
}

/* How many bytes at s (len bytes to the end of the string) are a
   registered secret, or what a cut left of one: a prefix of it that runs
   to the end of the string (cut after), or, at the very start of the
   string, a suffix of it (cut before).  0 if none. */
static size_t secret_at(const char *s, size_t len, bool at_start)
{
	size_t best = 0;

	for (size_t i = 0; i < MAX_SECRETS; i++) {
		size_t n;

		if (secrets[i] == NULL)
			continue;
		n = strlen(secrets[i]);
		if (n <= len && memcmp(s, secrets[i], n) == 0) {
			if (n > best)
				best = n;
			continue;
		}
		if (len < n && len >= SECRET_FRAGMENT_MIN &&
		    memcmp(s, secrets[i], len) == 0) {
			best = len;
			continue;
		}
		for (size_t k = n - 1; at_start && k >= SECRET_FRAGMENT_MIN && k > best; k--) {
			if (k <= len && memcmp(s, secrets[i] + n - k, k) == 0) {
				best = k;
				break;
			}
		}
	}
	return best;
}

void log_redact(char *dst, size_t dstlen, const char *src)
{
	static const char mark[] = "<redacted>";
	const char *start = src, *end = src + strlen(src);
	size_t o = 0;

	if (dstlen == 0)
		return;
	while (*src != '\0' && o + 1 < dstlen) {
		size_t n = secret_at(src, (size_t)(end - src), src == start);

		if (n > 0) {
			for (size_t k = 0; mark[k] != '\0' && o + 1 < dstlen; k++)
				dst[o++] = mark[k];
			src += n;
			continue;
		}
		/* Control characters from a peer must not forge log lines. */
		unsigned char c = (unsigned char)*src++;
		dst[o++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	dst[o] = '\0';
}

static void emit(enum log_level level, const char *const *fields,
		 const char *fmt, va_list ap)
{
	char raw[LOG_LINE_MAX], line[LOG_LINE_MAX];
	int saved = errno;

	if (level == LOGL_DEBUG && log_verbosity < 1)
		return;
	if (level == LOGL_INFO && log_verbosity < 0)
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	log_redact(line, sizeof(line), raw);
	if (level <= LOGL_ERR && first_error[0] == '\0')
		snprintf(first_error, sizeof(first_error), "%s", line);

	if (log_journal) {
		/* Fixed fields first; extra FIELD=value strings after. */
		struct iovec iov[24];
		char *bufs[24];
		size_t n = 0;

		bufs[n] = xasprintf("MESSAGE=%s", line);
		bufs[++n] = xasprintf("PRIORITY=%d", (int)level);
		bufs[++n] = xasprintf("SYSLOG_IDENTIFIER=%s", log_ident);
		if (log_task[0] != '\0')
			bufs[++n] = xasprintf("TASK=%s", log_task);
		const char *folder = log_folders[parallel_worker()];
		if (folder[0] != '\0')
			bufs[++n] = xasprintf("FOLDER=%s", folder);
		n++;
		for (size_t i = 0; fields != NULL && fields[i] != NULL && n < 24; i++) {
			char red[LOG_LINE_MAX];

			log_redact(red, sizeof(red), fields[i]);
			bufs[n++] = xstrdup(red);
		}
		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = strlen(bufs[i]);
		}
		if (sd_journal_sendv(iov, (int)n) < 0) {
			/* journald unavailable: never fail the sync for it */
			fprintf(stderr, "%s: %s\n", log_ident, line);
		}
		for (size_t i = 0; i < n; i++)
			free(bufs[i]);
	} else {
		const char *pfx = level <= LOGL_ERR ? "error: " :
				  level == LOGL_WARNING ? "warning: " : "";
		if (stderr_hook != NULL)
			stderr_hook();
		if (log_task[0] != '\0')
			fprintf(stderr, "%s[%s]: %s%s\n", log_ident, log_task, pfx, line);
		else
			fprintf(stderr, "%s: %s%s\n", log_ident, pfx, line);
	}
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, NULL, fmt, ap);
	va_end(ap);
}

void log_struct(enum log_level level, const char *const *fields,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, fields, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOGL_ERR, "%s: %s", buf, strerror(saved));
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOGL_ERR, NULL, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOGL_INFO, NULL, fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOGL_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOGL_ERR, NULL, fmt, ap);
	va_end(ap);
	_exit(70);
}
