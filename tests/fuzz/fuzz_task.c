/* fuzz_task.c - libFuzzer target for the configuration loader (task.c).
 *
 * The input is an INI file.  It is loaded twice per run:
 *  - as tasks/f.ini next to a valid imapsync-task.conf and a 0600
 *    f.pwd, through task_load();
 *  - as the imapsync-task.conf of a second directory (with a 0600
 *    master.pwd), through local_config_load().
 * The directories are made once per process; each input only rewrites
 * the two files.  Checked on the way:
 *  - a load returns NULL exactly when it reported an error;
 *  - every error line starts with the file's path and holds no control
 *    character (values are quoted, so a hostile file cannot forge log
 *    lines);
 *  - an accepted task has every required field, and its exclude pattern
 *    (if any) can be matched against a few folder names.
 * ASan/LSan catch the rest (leaks included).
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TASK_NAME "f"

static char *task_dir;          /* config dir for task_load() */
static char *conf_dir;          /* config dir for local_config_load() */
static char *task_file, *conf_file;

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_task: invariant broken: %s\n", what);
		abort();
	}
}

static void write_file(const char *path, const void *data, size_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	check(fd >= 0 && write_full(fd, data, size) == 0 && fchmod(fd, mode) == 0 &&
	      close(fd) == 0, "cannot write a test file");
}

static void remove_tree(void)
{
	char *files[] = {
		xasprintf("%s/tasks/%s.ini", task_dir, TASK_NAME),
		xasprintf("%s/tasks/%s.pwd", task_dir, TASK_NAME),
		xasprintf("%s/imapsync-task.conf", task_dir),
		xasprintf("%s/master.pwd", task_dir),
		xasprintf("%s/tasks", task_dir),
		xstrdup(task_dir),
		xasprintf("%s/imapsync-task.conf", conf_dir),
		xasprintf("%s/master.pwd", conf_dir),
		xstrdup(conf_dir),
	};

	for (size_t i = 0; i < N_ELEMENTS(files); i++) {
		if (unlink(files[i]) < 0)
			(void)rmdir(files[i]);
		free(files[i]);
	}
	free(task_dir);
	free(conf_dir);
	free(task_file);
	free(conf_file);
}

static char *make_temp_dir(const char *tmp, const char *what)
{
	char *dir = xasprintf("%s/fuzz-task-%s.XXXXXX", tmp, what);

	check(mkdtemp(dir) != NULL, "mkdtemp");
	return dir;
}

static void setup(void)
{
	static const char conf[] =
		"[local]\nmaster_user = vmail\nmaster_separator = *\n";
	const char *tmp = getenv("TMPDIR");
	char *path;

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	/* systemd's credentials would replace the password files */
	unsetenv("CREDENTIALS_DIRECTORY");

	task_dir = make_temp_dir(tmp, "t");
	conf_dir = make_temp_dir(tmp, "c");

	path = xasprintf("%s/tasks", task_dir);
	check(mkdir(path, 0700) == 0, "mkdir tasks");
	free(path);
	path = xasprintf("%s/imapsync-task.conf", task_dir);
	write_file(path, conf, sizeof(conf) - 1, 0644);
	free(path);
	path = xasprintf("%s/master.pwd", task_dir);
	write_file(path, "secret\n", 7, 0600);
	free(path);
	path = xasprintf("%s/tasks/%s.pwd", task_dir, TASK_NAME);
	write_file(path, "secret\n", 7, 0600);
	free(path);
	path = xasprintf("%s/master.pwd", conf_dir);
	write_file(path, "secret\n", 7, 0600);
	free(path);

	task_file = xasprintf("%s/tasks/%s.ini", task_dir, TASK_NAME);
	conf_file = xasprintf("%s/imapsync-task.conf", conf_dir);
	atexit(remove_tree);
}

struct errors {
	const char *path;       /* every line starts with it */
	size_t n;
};

static void on_error(void *ctx, const char *line)
{
	struct errors *e = ctx;
	size_t plen = strlen(e->path);

	e->n++;
	check(strncmp(line, e->path, plen) == 0 && line[plen] == ':',
	      "an error line starts with \"PATH:\"");
	for (const char *p = line; *p != '\0'; p++)
		check((unsigned char)*p >= 0x20 && *p != 0x7f,
		      "no control character in an error line");
}

static void check_task(const struct task *t)
{
	static const char *const folders[] = {
		"INBOX", "Sent", "Archive/2024", "Entw\xc3\xbcrfe", "a/b/c/d/e/f",
		"\xff\xfe invalid", "",
	};

	check(strcmp(t->name, TASK_NAME) == 0, "name");
	check(t->path != NULL && strcmp(t->path, task_file) == 0, "path");
	check(t->local_user != NULL && *t->local_user != '\0', "local_user");
	check(t->remote.host != NULL && *t->remote.host != '\0', "remote host");
	check(t->remote.port > 0, "remote port");
	check(t->remote_user != NULL && *t->remote_user != '\0', "remote user");
	check(t->password_file != NULL && t->password_file[0] == '/',
	      "password file is absolute");
	check(t->manual ? t->interval == NULL :
	      t->interval != NULL && t->interval_sec >= TASK_MIN_INTERVAL_SEC,
	      "interval");
	check(t->folders != FOLDERS_ALL_EXCEPT ||
	      (t->exclude != NULL && t->exclude[0] != NULL && t->exclude_re != NULL),
	      "all-except has a compiled exclude pattern");
	check(t->delete_mode != DELETE_OLDER_THAN || t->delete_older_than_days > 0,
	      "older-than has days");
	for (size_t i = 0; i < N_ELEMENTS(folders); i++) {
		int err = 0;
		bool excluded = task_folder_excluded(t, folders[i], &err);

		check(err <= 0, "match error is a negative PCRE2 code or 0");
		check(!excluded || err == 0, "an error never excludes");
		check(t->folders == FOLDERS_ALL_EXCEPT || !excluded,
		      "only all-except excludes");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errors errs = { 0 };
	struct task *t;
	struct local_config *cfg;

	if (task_dir == NULL)
		setup();

	write_file(task_file, data, size, 0644);
	errs.path = task_file;
	t = task_load(task_dir, TASK_NAME, on_error, &errs);
	check((t == NULL) == (errs.n > 0), "task: NULL exactly when errors were reported");
	if (t != NULL)
		check_task(t);
	task_free(&t);
	check(t == NULL, "task_free clears the pointer");

	write_file(conf_file, data, size, 0644);
	errs.path = conf_file;
	errs.n = 0;
	cfg = local_config_load(conf_dir, on_error, &errs);
	check((cfg == NULL) == (errs.n > 0), "conf: NULL exactly when errors were reported");
	if (cfg != NULL) {
		check(cfg->ep.host != NULL && cfg->master_user != NULL &&
		      cfg->master_password_file != NULL && cfg->lmtp != NULL,
		      "an accepted local config has every field");
		check(strchr(cfg->master_user, cfg->master_separator) == NULL,
		      "master_user without the separator");
	}
	local_config_free(&cfg);
	return 0;
}
