/* account_lock.c - one run per account at a time (see account_lock.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "account_lock.h"
#include "exitcode.h"
#include "log.h"
#include "util.h"

#define POLL_MS 200

char *account_key_remote(const struct task *t)
{
	char *host = xstrdup(t->remote.host);

	for (char *p = host; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	char *key = xasprintf("%s@%s:%u", t->remote_user, host, (unsigned)t->remote.port);
	free(host);
	return key;
}

char *account_key_local(const struct task *t)
{
	return xstrdup(t->local_user);
}

char *account_locks_dir(const char *task_dir)
{
	size_t len = strlen(task_dir);

	while (len > 1 && task_dir[len - 1] == '/')
		len--;
	while (len > 0 && task_dir[len - 1] != '/')
		len--;
	while (len > 1 && task_dir[len - 1] == '/')
		len--;
	if (len == 0)
		return xstrdup(ACCOUNT_LOCKS_DIR);
	return xasprintf("%.*s/%s", (int)len, task_dir, ACCOUNT_LOCKS_DIR);
}

struct one_lock {
	const char *kind;        /* "remote account", "local user" */
	char *key;
	char *path;
};

static int cmp_lock(const void *a, const void *b)
{
	return strcmp(((const struct one_lock *)a)->path, ((const struct one_lock *)b)->path);
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "task=NAME pid=PID" of the holder, as it wrote it. */
static void read_holder(int fd, char *name, size_t namelen, long *pid_r)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	snprintf(name, namelen, "(unknown)");
	*pid_r = 0;
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *t = strstr(buf, "task="), *p = strstr(buf, "pid=");
	if (t != NULL) {
		t += 5;
		size_t len = strcspn(t, " \n");
		if (len > 0 && len < namelen)
			snprintf(name, namelen, "%.*s", (int)len, t);
	}
	if (p != NULL)
		*pid_r = strtol(p + 4, NULL, 10);
}

/* A file made by root in a directory that belongs to the service's
   user stays usable by that user. */
static void give_to_dir_owner(int fd, const struct stat *dirst)
{
	struct stat st;

	if (geteuid() == 0 && fstat(fd, &st) == 0 &&
	    (st.st_uid != dirst->st_uid || st.st_gid != dirst->st_gid))
		(void)!fchown(fd, dirst->st_uid, dirst->st_gid);
}

static int open_dir(const char *dir, struct stat *st, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create the account lock directory %s: %s (under "
			 "systemd the unit needs StateDirectory=imapsync-task/%%i "
			 "imapsync-task/.locks)", dir, strerror(errno));
		return EXIT_IOERR;
	}
	if (stat(dir, st) < 0) {
		snprintf(err, errlen, "account lock directory %s: %s", dir, strerror(errno));
		return EXIT_IOERR;
	}
	if (!S_ISDIR(st->st_mode)) {
		snprintf(err, errlen, "account lock directory %s: not a directory", dir);
		return EXIT_IOERR;
	}
	return 0;
}

static int take_one(const struct one_lock *k, const struct stat *dirst, const char *task_name,
		    double deadline, unsigned wait_sec, volatile sig_atomic_t *stop, int *fd_r,
		    char *err, size_t errlen)
{
	int fd = open(k->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	bool told = false;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open the account lock %s: %s", k->path,
			 strerror(errno));
		return EXIT_IOERR;
	}
	give_to_dir_owner(fd, dirst);
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(err, errlen, "cannot lock %s: %s", k->path, strerror(errno));
			close(fd);
			return EXIT_IOERR;
		}
		char holder[TASK_NAME_MAX + 1];
		long pid;
		read_holder(fd, holder, sizeof(holder), &pid);
		if (pid == 0) {
			/* Taken a moment ago: its holder is writing its name. */
			struct timespec ts = { 0, 20 * 1000000L };
			nanosleep(&ts, NULL);
			read_holder(fd, holder, sizeof(holder), &pid);
		}
		if (stop != NULL && *stop) {
			snprintf(err, errlen, "stopped by a signal while waiting for task %s, which "
				 "is using %s %s; the next run resumes", holder, k->kind, k->key);
			close(fd);
			return EXIT_TEMPFAIL;
		}
		if (now_mono() >= deadline) {
			snprintf(err, errlen, "%s %s is in use by task %s (pid %ld); not running at "
				 "the same time (waited %u s, --lock-wait); the next run resumes",
				 k->kind, k->key, holder, pid, wait_sec);
			close(fd);
			return EXIT_TEMPFAIL;
		}
		if (!told) {
			log_msg(LOGL_NOTICE, "%s %s is in use by task %s (pid %ld): waiting for it "
				"(at most %u s in all)", k->kind, k->key, holder, pid, wait_sec);
			told = true;
		}
		struct timespec ts = { 0, POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (told)
		log_info("%s %s is free now", k->kind, k->key);
	/* Who holds it, for a run that has to give up. */
	char text[TASK_NAME_MAX + 64];
	int len = snprintf(text, sizeof(text), "task=%s pid=%ld\n", task_name, (long)getpid());
	if (ftruncate(fd, 0) == 0)
		(void)!pwrite(fd, text, (size_t)len, 0);
	*fd_r = fd;
	return 0;
}

int account_locks_take(const char *task_dir, const struct task *t, unsigned wait_sec,
		       volatile sig_atomic_t *stop, struct account_locks *l,
		       char *err, size_t errlen)
{
	char *dir = account_locks_dir(task_dir);
	struct one_lock k[2] = {
		{ "remote account", account_key_remote(t), NULL },
		{ "local user", account_key_local(t), NULL },
	};
	struct stat dirst;
	int rc;

	l->fd[0] = l->fd[1] = -1;
	for (int i = 0; i < 2; i++)
		k[i].path = xasprintf("%s/%s-%016llx.lock", dir, i == 0 ? "remote" : "local",
				      (unsigned long long)fnv1a64(FNV1A64_INIT, k[i].key,
								  strlen(k[i].key)));
	/* One order for every task: two runs that each want what the other
	   holds cannot happen. */
	qsort(k, 2, sizeof(k[0]), cmp_lock);
	double deadline = now_mono() + wait_sec;
	rc = open_dir(dir, &dirst, err, errlen);
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = take_one(&k[i], &dirst, t->name, deadline, wait_sec, stop, &l->fd[i], err,
			      errlen);
	if (rc != 0)
		account_locks_release(l);
	for (int i = 0; i < 2; i++) {
		free(k[i].key);
		free(k[i].path);
	}
	free(dir);
	return rc;
}

void account_locks_release(struct account_locks *l)
{
	for (int i = 0; i < 2; i++) {
		/* Emptied first: a run that finds it taken by the next holder
		   never reads this one's name. */
		if (l->fd[i] >= 0) {
			(void)!ftruncate(l->fd[i], 0);
			close(l->fd[i]);
		}
		l->fd[i] = -1;
	}
}

static void ignore_error(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static bool named(const char *name, char *const *names, size_t n)
{
	if (names == NULL)
		return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

unsigned account_check_duplicates(const char *config_dir, char *const *names, size_t n,
				  FILE *out)
{
	char **all = task_list_names(config_dir);
	size_t count = 0;
	unsigned warnings = 0;

	if (all == NULL)
		return 0;
	while (all[count] != NULL)
		count++;
	struct task **t = xcalloc(count + 1, sizeof(*t));
	char **rkey = xcalloc(count + 1, sizeof(*rkey));
	for (size_t i = 0; i < count; i++) {
		int e = 0;
		t[i] = task_load_with(config_dir, all[i], TASK_LOAD_NO_PASSWORD_CHECK,
				      ignore_error, &e);
		if (t[i] != NULL)
			rkey[i] = account_key_remote(t[i]);
	}
	for (size_t i = 0; i < count; i++) {
		for (size_t j = i + 1; t[i] != NULL && j < count; j++) {
			if (t[j] == NULL || strcmp(rkey[i], rkey[j]) != 0 ||
			    strcmp(t[i]->local_user, t[j]->local_user) != 0 ||
			    (!named(t[i]->name, names, n) && !named(t[j]->name, names, n)))
				continue;
			fprintf(out, "warning: tasks %s and %s both copy remote account %s into "
				"local user %s: a duplicate, which would deliver the same mail "
				"twice if their states differ; keep one of them (their runs take "
				"turns, never overlap)\n", t[i]->name, t[j]->name, rkey[i],
				t[i]->local_user);
			warnings++;
		}
	}
	for (size_t i = 0; i < count; i++) {
		task_free(&t[i]);
		free(rkey[i]);
	}
	free(t);
	free(rkey);
	task_names_free(&all);
	return warnings;
}
