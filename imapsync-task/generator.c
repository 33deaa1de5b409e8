/* generator.c - imapsync-task-generator, a systemd.generator(7).
 *
 * Run by systemd at boot and on every daemon-reload, before any unit is
 * loaded: it must be quick, must not block, and must never fail the boot.
 * For every task in CONFIG_DIR/tasks/ that loads cleanly (its password
 * file aside) it instantiates the installed templates instead of writing
 * units:
 *
 *   OUT/imapsync-task@NAME.service.d/10-credentials.conf
 *       [Service] LoadCredential= task.NAME.password and master.password
 *       from the password files the task and imapsync-task.conf name,
 *       wherever they are (the template's defaults only know CONFIG_DIR)
 *
 * and, unless the task is manual:
 *
 *   OUT/timers.target.wants/imapsync-task@NAME.timer
 *       -> SYSTEMDUNITDIR/imapsync-task@.timer
 *   OUT/imapsync-task@NAME.timer.d/50-interval.conf
 *       [Unit] SourcePath=, [Timer] OnBootSec=, OnUnitActiveSec=,
 *       RandomizedDelaySec= from the task's interval
 *
 * OUT is argv[1] (the "normal" directory).  A broken task file gets
 * nothing (so no timer); its errors are logged, one line each, and the
 * exit status is nonzero only for a wrong command line.  Names in paths
 * come only from task names that passed task_name_valid().
 *
 * Logging: /dev/kmsg, as systemd.generator(7) asks.  Where there is none
 * (containers: systemd-nspawn hides it), a datagram to journald's native
 * socket that never waits -- so an error made at daemon-reload is in the
 * journal there too -- and stderr as the last resort.
 *
 * Test hooks: IMAPSYNC_TASK_CONFIG_DIR replaces the configuration
 * directory; IMAPSYNC_TASK_GENERATOR_LOG=stderr logs to stderr only.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "task.h"
#include "timespan.h"
#include "util.h"

#ifndef SYSCONFDIR
#error "SYSCONFDIR must be defined by the build"
#endif
#ifndef SYSTEMDUNITDIR
#error "SYSTEMDUNITDIR must be defined by the build"
#endif

#define PROG "imapsync-task-generator"
#define UNIT_PREFIX "imapsync-task@"
#define TEMPLATE_TIMER UNIT_PREFIX ".timer"
#define DROPIN_NAME "50-interval.conf"
/* Sorts before the names admins use ("override.conf" from "systemctl
   edit", "50-*.conf"): their LoadCredential= of the same ID wins. */
#define CRED_DROPIN_NAME "10-credentials.conf"
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

/* systemd refuses unit names longer than 255 bytes (UNIT_NAME_MAX - 1). */
#define UNIT_NAME_MAX_LEN 255
/* The kernel cuts /dev/kmsg records at about 1 KiB; stay well below. */
#define LOG_LINE_MAX 900
/* First run after boot: soon, but not all tasks in the same second. */
#define BOOT_DELAY_MAX_SEC 120u
#define RANDOM_DELAY_MAX_SEC 300u

static int log_fd = -1;          /* /dev/kmsg, or -1 */
static int journal_fd = -1;      /* journald's socket, or -1 */

/* --- logging ---------------------------------------------------------- */

static void log_open(void)
{
	const char *target = getenv("IMAPSYNC_TASK_GENERATOR_LOG");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (target != NULL && strcmp(target, "stderr") == 0)
		return;
	log_fd = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (log_fd >= 0)
		return;
	/* No kmsg.  journald runs at a daemon-reload, not yet at boot (then
	   connect() fails); a datagram sent with MSG_DONTWAIT is dropped
	   rather than waited for, so this can never block PID 1. */
	journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (journal_fd < 0)
		return;
	memcpy(sa.sun_path, JOURNAL_SOCKET, sizeof(JOURNAL_SOCKET));
	if (connect(journal_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(journal_fd);
		journal_fd = -1;
	}
}

/* One entry in journald's native protocol: KEY=VALUE lines (MSG has no
   newline).  True if journald took it. */
static bool log_journal(int priority, const char *msg)
{
	char rec[LOG_LINE_MAX + 128];
	int n;

	n = snprintf(rec, sizeof(rec),
		     "PRIORITY=%d\nSYSLOG_FACILITY=3\n"
		     "SYSLOG_IDENTIFIER=" PROG "\nMESSAGE=%s\n", priority, msg);
	if (n < 0 || (size_t)n >= sizeof(rec))
		return false;
	return send(journal_fd, rec, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n;
}

static void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (journal_fd >= 0)
		close(journal_fd);
	journal_fd = -1;
}

/* One record per call.  PRIORITY is a syslog level (3 error, 4 warning). */
static void __attribute__((format(printf, 2, 3)))
log_line(int priority, const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* A record is one line: no embedded newlines from file contents. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	if (log_fd >= 0) {
		char rec[LOG_LINE_MAX + 64];

		n = snprintf(rec, sizeof(rec), "<%d>" PROG ": %s\n", priority, msg);
		if (n > 0 && write_full(log_fd, rec, strlen(rec)) == 0)
			return;
		/* kmsg refused it: fall through to stderr. */
	}
	if (journal_fd >= 0 && log_journal(priority, msg))
		return;
	fprintf(stderr, PROG ": %s\n", msg);
}

static void task_error_log(void *ctx, const char *line)
{
	(void)ctx;
	log_line(3, "%s", line);
}

/* --- writing files ---------------------------------------------------- */

static bool make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return true;
	log_line(3, "mkdir %s: %s", path, strerror(errno));
	return false;
}

/* Create PATH (it must not exist) with exactly TEXT, mode 0644. */
static bool write_new_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      0644);

	if (fd < 0) {
		log_line(3, "create %s: %s", path, strerror(errno));
		return false;
	}
	if (write_full(fd, text, strlen(text)) < 0) {
		log_line(3, "write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return false;
	}
	if (close(fd) < 0) {
		log_line(3, "close %s: %s", path, strerror(errno));
		unlink(path);
		return false;
	}
	return true;
}

/* --- timers ----------------------------------------------------------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The drop-in text.  An empty assignment to any timer setting clears all
   of them (the template's defaults included), so there is exactly one,
   before the new values: a second one would drop the values before it. */
static char *dropin_text(const char *source, uint64_t interval_sec)
{
	char boot[TIMESPAN_FORMAT_MAX], interval[TIMESPAN_FORMAT_MAX];
	char rnd[TIMESPAN_FORMAT_MAX];

	return xasprintf(
		"# Automatically generated by " PROG " from\n"
		"# %s\n"
		"# Edit that file and run \"imapsync-task-reload\"; changes\n"
		"# here are lost.\n"
		"\n"
		"[Unit]\n"
		"SourcePath=%s\n"
		"\n"
		"[Timer]\n"
		"OnUnitActiveSec=\n"
		"OnBootSec=%s\n"
		"OnUnitActiveSec=%s\n"
		"RandomizedDelaySec=%s\n",
		source, source,
		timespan_format(min_u64(interval_sec, BOOT_DELAY_MAX_SEC), boot),
		timespan_format(interval_sec, interval),
		timespan_format(min_u64(interval_sec / 4, RANDOM_DELAY_MAX_SEC),
				rnd));
}

static bool write_timer(const char *out_dir, const char *name,
			const char *source, uint64_t interval_sec)
{
	char *wants = xasprintf("%s/timers.target.wants", out_dir);
	char *link = xasprintf("%s/" UNIT_PREFIX "%s.timer", wants, name);
	char *dropin_dir = xasprintf("%s/" UNIT_PREFIX "%s.timer.d", out_dir, name);
	char *dropin = xasprintf("%s/" DROPIN_NAME, dropin_dir);
	char *text = dropin_text(source, interval_sec);
	bool ok = false;

	if (!make_dir(dropin_dir) || !write_new_file(dropin, text))
		goto out;
	if (!make_dir(wants))
		goto out;
	if (symlink(SYSTEMDUNITDIR "/" TEMPLATE_TIMER, link) < 0) {
		log_line(3, "symlink %s: %s", link, strerror(errno));
		/* Without the link the drop-in would be an orphan. */
		unlink(dropin);
		rmdir(dropin_dir);
		goto out;
	}
	ok = true;
out:
	free(text);
	free(dropin);
	free(dropin_dir);
	free(link);
	free(wants);
	return ok;
}

/* --- credentials -------------------------------------------------------- */

static bool has_control_char(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* PATH without "//", "." and ".." components, judged by the letters only
   (for a directory that does not exist). */
static char *path_normalize_lexically(const char *path)
{
	char *out = xmalloc(strlen(path) + 2);
	size_t n = 0;
	const char *p = path;

	while (*p != '\0') {
		const char *end;
		size_t len;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;        /* the '/' before it */
		} else {
			out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p = end;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return out;
}

/* PATH (absolute) as LoadCredential= takes it: normalized -- systemd
   ignores a source with "//", "." or ".." in it -- by the kernel's rules
   where its directory exists (realpath() of the directory; the file
   itself is left as it is), '%' doubled against specifier expansion.
   NULL, after a log line naming FILE and KEY, when it cannot be written
   so (a backslash, a control character or trailing blanks would be read
   differently by systemd). */
static char *credential_source(const char *path, const char *file,
			       const char *key)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	char *norm = NULL, *out, *o;
	size_t len;

	if (path[0] != '/' || slash == NULL) {
		log_line(3, "%s: %s: %s is not an absolute path", file, key, path);
		return NULL;
	}
	if (*base != '\0' && strcmp(base, ".") != 0 && strcmp(base, "..") != 0) {
		char *dir = xasprintf("%.*s", (int)(slash - path), path);
		char *real = realpath(*dir != '\0' ? dir : "/", NULL);

		if (real != NULL)
			norm = xasprintf("%s/%s", strcmp(real, "/") == 0 ? "" : real,
					 base);
		free(real);
		free(dir);
	}
	if (norm == NULL)
		norm = path_normalize_lexically(path);

	len = strlen(norm);
	if (strchr(norm, '\\') != NULL || has_control_char(norm) ||
	    norm[len - 1] == ' ' || norm[len - 1] == '\t') {
		log_line(3, "%s: %s: %s cannot be passed as a systemd credential "
			 "(backslash, control character or trailing blank); "
			 "the service keeps the template's default",
			 file, key, path);
		free(norm);
		return NULL;
	}
	out = o = xmalloc(2 * len + 1);
	for (const char *p = norm; *p != '\0'; p++) {
		if (*p == '%')
			*o++ = '%';
		*o++ = *p;
	}
	*o = '\0';
	free(norm);
	return out;
}

/* OUT/imapsync-task@NAME.service.d/10-credentials.conf: the task's
   password file and the master password file, wherever they are, as the
   credentials the worker reads ($CREDENTIALS_DIRECTORY).  The files need
   not exist yet: PID 1 reads them at each start, and a missing one fails
   that run with 243/CREDENTIALS. */
static bool write_credentials(const char *out_dir, const char *config_dir,
			      const struct task *task,
			      const struct local_config *local)
{
	char *dropin_dir = xasprintf("%s/" UNIT_PREFIX "%s.service.d", out_dir,
				     task->name);
	char *dropin = xasprintf("%s/" CRED_DROPIN_NAME, dropin_dir);
	char *conf = xasprintf("%s/imapsync-task.conf", config_dir);
	char *task_src = credential_source(task->password_file, task->path,
					   "password_file");
	char *master_src = NULL;
	char *task_line = NULL, *master_line = NULL, *text = NULL;
	bool ok = false;

	if (local != NULL)
		master_src = credential_source(local->master_password_file, conf,
					       "master_password_file");
	if (task_src == NULL && master_src == NULL) {
		ok = true;                  /* nothing to say: the defaults */
		goto out;
	}
	if (task_src != NULL)
		task_line = xasprintf("LoadCredential=task.%s.password:%s\n",
				      task->name, task_src);
	if (master_src != NULL)
		master_line = xasprintf("LoadCredential=master.password:%s\n",
					master_src);
	text = xasprintf(
		"# Automatically generated by " PROG " from\n"
		"# %s and %s\n"
		"# Edit those and run \"imapsync-task-reload\"; changes here are\n"
		"# lost.  A drop-in of yours that sorts after this one (such as\n"
		"# override.conf from \"systemctl edit\") replaces a credential\n"
		"# of the same ID, e.g. with LoadCredentialEncrypted=.\n"
		"\n"
		"[Unit]\n"
		"SourcePath=%s\n"
		"\n"
		"[Service]\n"
		"%s%s",
		task->path, conf, task->path,
		task_line != NULL ? task_line : "",
		master_line != NULL ? master_line : "");
	if (!make_dir(dropin_dir))
		goto out;
	ok = write_new_file(dropin, text);
	if (!ok)
		rmdir(dropin_dir);
out:
	free(text);
	free(master_line);
	free(task_line);
	free(master_src);
	free(task_src);
	free(conf);
	free(dropin);
	free(dropin_dir);
	return ok;
}

/* --- one task ----------------------------------------------------------- */

static void generate_task(const char *config_dir, const char *out_dir,
			  const char *name, const struct local_config *local)
{
	struct task *task;
	char *source;

	if (!task_name_valid(name) ||
	    strlen(UNIT_PREFIX ".timer") + strlen(name) > UNIT_NAME_MAX_LEN) {
		/* task_list_names() filters these already; never let one
		   reach a path or a unit name.  log_line() flattens newlines. */
		log_line(3, "%s/tasks/%s.ini: not a valid task name, skipped",
			 config_dir, name);
		return;
	}
	/* The password is not ours to check: it may come as an (encrypted)
	   credential from a drop-in, and a missing one fails the service
	   visibly (243/CREDENTIALS) at each run rather than silently here. */
	task = task_load_with(config_dir, name, TASK_LOAD_NO_PASSWORD_CHECK,
			      task_error_log, NULL);
	if (task == NULL) {
		log_line(3, "%s/tasks/%s.ini: invalid, no timer generated",
			 config_dir, name);
		return;
	}
	/* Manual tasks too: they run through the same service. */
	write_credentials(out_dir, config_dir, task, local);
	if (task->manual) {
		task_free(&task);
		return;
	}
	source = xasprintf("%s/tasks/%s.ini", config_dir, name);
	if (task->interval_sec == 0)
		log_line(3, "%s: interval is zero, no timer generated", source);
	else
		write_timer(out_dir, name, source, task->interval_sec);
	free(source);
	task_free(&task);
}

/* --- main ------------------------------------------------------------- */

/* The configuration directory as an absolute path (SourcePath= must be
   one), or NULL if it does not exist: then there is nothing to do. */
static char *config_dir_resolve(void)
{
	const char *dir = getenv("IMAPSYNC_TASK_CONFIG_DIR");
	char *real;

	if (dir == NULL || *dir == '\0')
		dir = SYSCONFDIR "/imapsync-task";
	real = realpath(dir, NULL);
	if (real == NULL && errno != ENOENT && errno != ENOTDIR)
		log_line(3, "%s: %s", dir, strerror(errno));
	return real;
}

int main(int argc, char **argv)
{
	char *config_dir;
	char **names;
	struct local_config *local;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: %s NORMAL_DIR [EARLY_DIR LATE_DIR]\n",
			PROG);
		return 1;
	}
	log_open();
	config_dir = config_dir_resolve();
	if (config_dir == NULL)
		goto out;
	names = task_list_names(config_dir);
	if (names == NULL) {
		if (errno != ENOENT)
			log_line(3, "%s/tasks: %s", config_dir, strerror(errno));
	} else {
		/* Read only for the master password file, and only when
		   there are tasks: without it (broken), the service keeps the
		   template's default for that credential. */
		local = NULL;
		if (names[0] != NULL) {
			local = local_config_load_with(config_dir,
						       TASK_LOAD_NO_PASSWORD_CHECK,
						       task_error_log, NULL);
			if (local == NULL)
				log_line(3, "%s/imapsync-task.conf: invalid, the "
					 "master password credential keeps the "
					 "template's default", config_dir);
		}
		for (char **n = names; *n != NULL; n++)
			generate_task(config_dir, argv[1], *n, local);
		local_config_free(&local);
		task_names_free(&names);
	}
	free(config_dir);
out:
	log_close();
	return 0;
}
