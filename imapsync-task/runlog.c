/* runlog.c - run lock and run records in the task's state directory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "runlog.h"
#include "util.h"

const char *exit_code_verdict(int code)
{
	switch (code) {
	case EXIT_OK: return "ok";
	case EXIT_SKIPPED: return "ok-skipped";
	case EXIT_USAGE: return "usage";
	case EXIT_DATAERR: return "state-error";
	case EXIT_UNAVAILABLE: return "unavailable";
	case EXIT_SOFTWARE: return "internal-error";
	case EXIT_CANTCREAT: return "quota-or-disk";
	case EXIT_IOERR: return "state-io-error";
	case EXIT_TEMPFAIL: return "temporary-failure";
	case EXIT_PROTOCOL: return "protocol-or-tls";
	case EXIT_NOPERM: return "auth-failed";
	case EXIT_CONFIG: return "config-error";
	default: return "unknown";
	}
}

/* mkdir -p with mode 0700: the state holds mail metadata. */
static int mkdir_parents(const char *dir)
{
	char *path = xstrdup(dir);
	int rc = 0;

	for (char *p = path + 1; rc == 0; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			rc = -1;
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(path);
	return rc;
}

static double prev_mtime;

double runlog_lock_mtime(int fd)
{
	(void)fd;
	return prev_mtime;
}

void runlog_touch(int fd)
{
	(void)futimens(fd, NULL);
}

int runlog_lock(const char *dir, int *fd_r, pid_t *holder_r, char *err, size_t errlen)
{
	char *path = xasprintf("%s/lock", dir);
	char pidbuf[32];
	int fd;

	*holder_r = 0;
	if (mkdir_parents(dir) < 0) {
		snprintf(err, errlen, "cannot create state directory %s: %s", dir, strerror(errno));
		free(path);
		return EXIT_IOERR;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		free(path);
		return EXIT_IOERR;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		ssize_t n = pread(fd, pidbuf, sizeof(pidbuf) - 1, 0);
		if (n > 0) {
			pidbuf[n] = '\0';
			*holder_r = (pid_t)strtol(pidbuf, NULL, 10);
		}
		close(fd);
		free(path);
		if (e == EWOULDBLOCK) {
			snprintf(err, errlen, "task is running (pid %ld)", (long)*holder_r);
			return EXIT_TEMPFAIL;
		}
		snprintf(err, errlen, "cannot lock %s/lock: %s", dir, strerror(e));
		return EXIT_IOERR;
	}
	/* The previous run's last sign of life is the file's mtime: keep it
	   for runlog_lock_mtime() before writing the pid changes it. */
	struct stat st;
	if (fstat(fd, &st) == 0)
		prev_mtime = (double)st.st_mtim.tv_sec + (double)st.st_mtim.tv_nsec / 1e9;
	/* The pid is informative only: the lock is the flock itself, which
	   the kernel drops when we die, so a stale file never blocks. */
	int len = snprintf(pidbuf, sizeof(pidbuf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, pidbuf, (size_t)len, 0);
	free(path);
	*fd_r = fd;
	return 0;
}

static bool prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

const char *runlog_error_side(int code, const char *msg)
{
	if (code == EXIT_CONFIG)
		return "config";
	if (code == EXIT_DATAERR || code == EXIT_IOERR)
		return "state";
	if (msg == NULL)
		msg = "";
	if (prefix(msg, "remote"))
		return "remote";
	if (prefix(msg, "local") || prefix(msg, "lmtp"))
		return "local";
	if (prefix(msg, "state"))
		return "state";
	if (strstr(msg, "the remote server") != NULL)
		return "remote";
	if (code == EXIT_CANTCREAT)
		return "local";
	return "";
}

/* The eight numbers; with with_reason, the failure's side and message
   (one line: control characters become '?'). */
static void format_record(struct buf *b, const struct run_record *r, bool with_reason)
{
	buf_appendf(b, "%lld %lld %d %llu %llu %llu %llu %llu", (long long)r->start,
		    (long long)r->end, r->exit_code, (unsigned long long)r->copied,
		    (unsigned long long)r->skipped, (unsigned long long)r->deleted,
		    (unsigned long long)r->errors, (unsigned long long)r->bytes);
	if (with_reason && r->side[0] != '\0') {
		buf_append(b, " side=", 6);
		for (const char *p = r->side; *p != '\0'; p++)
			buf_append(b, *p > ' ' && *p != 0x7f ? p : "?", 1);
	}
	if (with_reason && r->error[0] != '\0') {
		buf_append(b, " error=", 7);
		for (const char *p = r->error; *p != '\0'; p++)
			buf_append(b, (unsigned char)*p >= ' ' && *p != 0x7f ? p : "?", 1);
	}
	buf_append(b, "\n", 1);
}

static bool parse_record(const char *line, struct run_record *r)
{
	long long s, e;
	unsigned long long c, k, d, er, by;
	int end = 0;

	r->side[0] = r->error[0] = '\0';
	if (sscanf(line, "%lld %lld %d %llu %llu %llu %llu %llu%n", &s, &e, &r->exit_code,
		   &c, &k, &d, &er, &by, &end) != 8)
		return false;
	/* What newer versions add after the numbers; anything else there
	   is left alone (a later version's fields). */
	const char *rest = line + end;
	if (prefix(rest, " side=")) {
		rest += 6;
		size_t n = strcspn(rest, " ");
		snprintf(r->side, sizeof(r->side), "%.*s", (int)n, rest);
		rest += n;
	}
	const char *msg = strstr(rest, " error=");
	if (msg != NULL)
		snprintf(r->error, sizeof(r->error), "%s", msg + 7);
	r->start = (time_t)s;
	r->end = (time_t)e;
	r->copied = c;
	r->skipped = k;
	r->deleted = d;
	r->errors = er;
	r->bytes = by;
	return true;
}

/* Replace path with content: temp file, fsync, rename. */
static int replace_file(const char *path, const struct buf *content)
{
	char *tmp = xasprintf("%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;

	if (fd >= 0 && write_full(fd, content->data, content->len) == 0 && fsync(fd) == 0)
		rc = 0;
	if (fd >= 0)
		close(fd);
	if (rc == 0)
		rc = rename(tmp, path);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

size_t runlog_read(const char *dir, struct run_record *recs, size_t max)
{
	char *path = xasprintf("%s/runs", dir);
	char *text = read_text(path);
	size_t total = 0, n = 0;

	free(path);
	if (text == NULL || max == 0) {
		free(text);
		return 0;
	}
	for (char *p = text; *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
		total++;
	size_t skip = total > max ? total - max : 0, i = 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"), i++)
		if (i >= skip && n < max && parse_record(line, &recs[n]))
			n++;
	free(text);
	return n;
}

int runlog_totals(const char *dir, struct run_record *tot, uint64_t *runs_r)
{
	char *path = xasprintf("%s/totals", dir);
	char *text = read_text(path);
	unsigned long long runs = 0;

	free(path);
	memset(tot, 0, sizeof(*tot));
	*runs_r = 0;
	if (text == NULL)
		return 0;
	if (sscanf(text, "%llu", &runs) != 1 || strchr(text, ' ') == NULL ||
	    !parse_record(strchr(text, ' ') + 1, tot)) {
		free(text);
		return -1;
	}
	*runs_r = runs;
	free(text);
	return 0;
}

/* May dir/name be replaced?  Only if it is missing or can be read: a
   file that is there but unreadable (another owner after a run as root,
   an I/O error) still holds the history, and replacing it with what we
   could read (nothing) would lose it.  errno is set when not. */
static bool replaceable(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int e = errno;

	free(path);
	if (fd >= 0) {
		close(fd);
		return true;
	}
	errno = e;
	return e == ENOENT;
}

int runlog_append(const char *dir, const struct run_record *r)
{
	struct run_record keep[RUNLOG_KEEP], tot;
	uint64_t runs;
	struct buf b = { 0 };
	char *path;
	int rc;

	if (!replaceable(dir, "runs") || !replaceable(dir, "totals"))
		return -1;
	size_t n = runlog_read(dir, keep, RUNLOG_KEEP - 1);

	for (size_t i = 0; i < n; i++)
		format_record(&b, &keep[i], true);
	format_record(&b, r, true);
	path = xasprintf("%s/runs", dir);
	rc = replace_file(path, &b);
	free(path);
	buf_free(&b);

	if (runlog_totals(dir, &tot, &runs) < 0) {
		/* Damaged: kept aside for the operator, not overwritten. */
		char *from = xasprintf("%s/totals", dir), *to = xasprintf("%s/totals.damaged", dir);
		(void)rename(from, to);
		free(from);
		free(to);
		memset(&tot, 0, sizeof(tot));
	}
	if (runs == 0)
		tot.start = r->start;
	tot.end = r->end;
	tot.exit_code = r->exit_code;
	tot.copied += r->copied;
	tot.skipped += r->skipped;
	tot.deleted += r->deleted;
	tot.errors += r->errors;
	tot.bytes += r->bytes;
	buf_appendf(&b, "%llu ", (unsigned long long)runs + 1);
	format_record(&b, &tot, false);
	path = xasprintf("%s/totals", dir);
	if (replace_file(path, &b) < 0)
		rc = -1;
	free(path);
	buf_free(&b);
	return rc;
}
