/* test_task.c - configuration loading and validation (task.c).
 *
 * The trees under tests/data/config-* are copied into a temporary
 * directory first: git keeps no file modes, and password files must be
 * 0600, so they are created here.  Error cases that need exact line
 * numbers are written inline next to their expectations.
 */
#include "config.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "task.h"
#include "util.h"

#ifndef TEST_DATA_DIR
#error TEST_DATA_DIR must name tests/data
#endif

static char tmproot[] = "/tmp/test_task.XXXXXX";

/* ---- collected errors ------------------------------------------------ */

struct errs {
	char *line[64];
	size_t n;
};

static struct errs errs;

static void errs_clear(void)
{
	for (size_t i = 0; i < errs.n; i++)
		free(errs.line[i]);
	errs.n = 0;
}

static void collect(void *ctx, const char *line)
{
	(void)ctx;
	if (errs.n < N_ELEMENTS(errs.line))
		errs.line[errs.n++] = xstrdup(line);
}

static void errs_dump(void)
{
	for (size_t i = 0; i < errs.n; i++)
		diag("error: %s", errs.line[i]);
}

/* Is there an error line starting with the formatted prefix? */
static bool __attribute__((format(printf, 1, 2)))
has_err(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < errs.n; i++) {
		if (strncmp(errs.line[i], buf, strlen(buf)) == 0)
			return true;
	}
	errs_dump();
	diag("expected prefix: %s", buf);
	return false;
}

static bool errs_contain(const char *needle)
{
	for (size_t i = 0; i < errs.n; i++) {
		if (strstr(errs.line[i], needle) != NULL)
			return true;
	}
	return false;
}

static bool str_eq_or(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

/* ---- files ------------------------------------------------------------ */

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, content, strlen(content)) < 0 ||
	    fchmod(fd, mode) < 0 || close(fd) < 0) {
		diag("cannot write %s: %s", path, strerror(errno));
		exit(99);
	}
}

static void __attribute__((format(printf, 3, 4)))
write_filef(mode_t mode, const char *content, const char *fmt, ...)
{
	va_list ap;
	char path[1024];

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	write_file(path, content, mode);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
	struct buf b = { 0 };
	char chunk[4096];
	ssize_t n;
	int fd = open(from, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		diag("cannot open %s: %s", from, strerror(errno));
		exit(99);
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(fd);
	buf_append(&b, "", 1);
	write_file(to, (const char *)b.data, mode);
	buf_free(&b);
}

/* Copy tests/data/NAME (and NAME/tasks) into tmproot/NAME, mode 0644. */
static char *copy_tree(const char *name)
{
	static const char *const subdirs[] = { "", "/tasks" };
	char *dst = xasprintf("%s/%s", tmproot, name);

	for (size_t i = 0; i < N_ELEMENTS(subdirs); i++) {
		char *from = xasprintf("%s/%s%s", TEST_DATA_DIR, name, subdirs[i]);
		char *to = xasprintf("%s%s", dst, subdirs[i]);
		DIR *d = opendir(from);
		struct dirent *de;

		if (mkdir(to, 0755) < 0 && errno != EEXIST) {
			diag("mkdir %s: %s", to, strerror(errno));
			exit(99);
		}
		while (d != NULL && (de = readdir(d)) != NULL) {
			char *f = xasprintf("%s/%s", from, de->d_name);
			char *t = xasprintf("%s/%s", to, de->d_name);
			struct stat st;

			if (stat(f, &st) == 0 && S_ISREG(st.st_mode))
				copy_file(f, t, 0644);
			free(f);
			free(t);
		}
		if (d != NULL)
			closedir(d);
		free(from);
		free(to);
	}
	return dst;
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);

	if (system(cmd) != 0)
		diag("cannot remove %s", path);
	free(cmd);
}

/* A scratch config dir with a valid conf, master.pwd and tasks/t.pwd;
   tasks/t.ini is written by each case. */
static char *scratch;

static struct task *load_t(const char *ini)
{
	char *path = xasprintf("%s/tasks/t.ini", scratch);
	struct task *t;

	write_file(path, ini, 0644);
	free(path);
	errs_clear();
	t = task_load(scratch, "t", collect, NULL);
	if (t == NULL && errs.n == 0)
		diag("task_load returned NULL without an error");
	return t;
}

/* Load text expected to fail; true if it did (reports are in errs). */
static bool load_fails(const char *ini)
{
	struct task *t = load_t(ini);

	if (t != NULL) {
		task_free(&t);
		return false;
	}
	return true;
}

#define GOOD_REMOTE "[remote]\nhost = imap.example.org\nuser = u@example.org\n"

/* ---- cases ------------------------------------------------------------ */

static void test_names(void)
{
	char longname[TASK_NAME_MAX + 2];

	ok(task_name_valid("ok-name_1.2"), "name ok-name_1.2 is valid");
	ok(task_name_valid("John.Doe"), "name John.Doe is valid");
	ok(!task_name_valid("../x"), "name ../x refused");
	ok(!task_name_valid("a/b"), "name a/b refused");
	ok(!task_name_valid(""), "empty name refused");
	ok(!task_name_valid(".hidden"), "name .hidden refused");
	ok(!task_name_valid(".") && !task_name_valid(".."), ". and .. refused");
	ok(!task_name_valid("\xc3\xbcn\xc3\xaf"), "non-ASCII name refused");
	ok(!task_name_valid("a b"), "name with a space refused");
	ok(!task_name_valid(NULL), "NULL name refused");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[TASK_NAME_MAX] = '\0';
	ok(task_name_valid(longname), "name of TASK_NAME_MAX chars is valid");
	longname[TASK_NAME_MAX] = 'a';
	longname[TASK_NAME_MAX + 1] = '\0';
	ok(!task_name_valid(longname), "longer name refused");

	/* an invalid name never becomes a path */
	errs_clear();
	ok(task_load(scratch, "../t", collect, NULL) == NULL &&
	   has_err("task: invalid task name \"../t\""),
	   "task_load refuses ../t before building a path");
}

static void test_timespans(void)
{
	static const struct {
		const char *text;
		uint64_t sec;
	} good[] = {
		{ "15min", 900 }, { "1h 30min", 5400 }, { "1h30min", 5400 },
		{ "90", 90 }, { "90s", 90 }, { "2d", 172800 }, { "1w", 604800 },
		{ "5 min", 300 }, { "1 hour 2 minutes 3 seconds", 3723 },
		{ " 2h ", 7200 }, { "1d 1hr 1m 1sec", 90061 },
	};
	static const char *const bad[] = {
		"", " ", "abc", "min", "1.5h", "-1", "15 parsecs", "1M",
		"1h,30min", "99999999999999999999", "18446744073709551615s",
		"10000000000000w",
	};
	uint64_t sec;

	for (size_t i = 0; i < N_ELEMENTS(good); i++) {
		bool parsed;

		sec = 0;
		parsed = task_parse_timespan(good[i].text, &sec);
		ok(parsed && sec == good[i].sec,
		   "timespan \"%s\" = %llu (got %llu)", good[i].text,
		   (unsigned long long)good[i].sec, (unsigned long long)sec);
	}
	for (size_t i = 0; i < N_ELEMENTS(bad); i++)
		ok(!task_parse_timespan(bad[i], &sec), "timespan \"%s\" refused",
		   bad[i]);
}

static void test_mode_names(void)
{
	ok(strcmp(security_name(SECURITY_STARTTLS), "starttls") == 0 &&
	   strcmp(security_name(SECURITY_TLS), "tls") == 0 &&
	   strcmp(security_name(SECURITY_NONE), "none") == 0,
	   "security names");
	ok(strcmp(folder_mode_name(FOLDERS_INBOX), "inbox") == 0 &&
	   strcmp(folder_mode_name(FOLDERS_ALL), "all") == 0 &&
	   strcmp(folder_mode_name(FOLDERS_ALL_EXCEPT), "all-except") == 0,
	   "folder mode names");
	ok(strcmp(delete_mode_name(DELETE_NEVER), "never") == 0 &&
	   strcmp(delete_mode_name(DELETE_AFTER_SYNC), "after-sync") == 0 &&
	   strcmp(delete_mode_name(DELETE_OLDER_THAN), "older-than") == 0,
	   "delete mode names");
	ok(strcmp(delivery_mode_name(DELIVERY_APPEND), "append") == 0 &&
	   strcmp(delivery_mode_name(DELIVERY_SIEVE), "sieve") == 0 &&
	   strcmp(delivery_mode_name(DELIVERY_LMTP), "lmtp") == 0,
	   "delivery mode names");
}

static void test_valid_tree(void)
{
	char *dir = copy_tree("config-valid");
	char *path;
	struct local_config *cfg;
	struct task *t;
	char **names;
	int err = -1;

	write_filef(0600, "master secret\n", "%s/master.pwd", dir);
	write_filef(0600, "pw\n", "%s/tasks/inbox.pwd", dir);
	write_filef(0600, "pw\n", "%s/tasks/except.pwd", dir);
	path = xasprintf("%s/tasks/secrets", dir);
	mkdir(path, 0700);
	free(path);
	write_filef(0600, "pw\n", "%s/tasks/secrets/all.pwd", dir);

	/* listing */
	names = task_list_names(dir);
	ok(names != NULL && names[0] != NULL && names[1] != NULL &&
	   names[2] != NULL && names[3] == NULL &&
	   strcmp(names[0], "all") == 0 && strcmp(names[1], "except") == 0 &&
	   strcmp(names[2], "inbox") == 0,
	   "task_list_names: all, except, inbox (sorted; no hidden, "
	   "non-.ini or invalid names)");
	task_names_free(&names);
	ok(names == NULL, "task_names_free sets the pointer to NULL");
	path = xasprintf("%s/nonexistent", tmproot);
	errno = 0;
	names = task_list_names(path);
	ok(names == NULL && errno == ENOENT,
	   "task_list_names: missing directory gives NULL, ENOENT");
	free(path);

	/* imapsync-task.conf */
	errs_clear();
	cfg = local_config_load(dir, collect, NULL);
	ok(cfg != NULL, "valid imapsync-task.conf loads");
	if (cfg == NULL)
		errs_dump();
	if (cfg != NULL) {
		path = xasprintf("%s/master.pwd", dir);
		ok(strcmp(cfg->ep.host, "127.0.0.1") == 0 && cfg->ep.port == 143 &&
		   cfg->ep.security == SECURITY_STARTTLS && cfg->ep.tls_verify &&
		   cfg->ep.ca_file == NULL,
		   "local endpoint: 127.0.0.1:143 starttls, verify, system CAs");
		ok(strcmp(cfg->master_user, "vmail") == 0 &&
		   cfg->master_separator == '*', "master user vmail, separator *");
		ok(strcmp(cfg->master_password_file, path) == 0,
		   "master password file defaults to CONFIG_DIR/master.pwd");
		ok(strcmp(cfg->lmtp, "/run/dovecot/lmtp") == 0, "lmtp socket path");
		free(path);
		path = xasprintf("%s/imapsync-task.conf", dir);
		ok(strcmp(cfg->path, path) == 0, "local_config.path");
		free(path);
	}
	local_config_free(&cfg);
	ok(cfg == NULL, "local_config_free sets the pointer to NULL");

	/* inbox.ini: defaults */
	errs_clear();
	t = task_load(dir, "inbox", collect, NULL);
	ok(t != NULL, "inbox task loads");
	if (t == NULL)
		errs_dump();
	if (t != NULL) {
		path = xasprintf("%s/tasks/inbox.pwd", dir);
		ok(strcmp(t->name, "inbox") == 0 && strcmp(t->local_user, "john") == 0,
		   "inbox: name and local_user");
		ok(t->folders == FOLDERS_INBOX && t->exclude == NULL,
		   "inbox: folders defaults to inbox, no exclude");
		ok(t->delete_mode == DELETE_NEVER && t->delete_older_than_days == 0,
		   "inbox: delete defaults to never");
		ok(t->delivery == DELIVERY_APPEND, "inbox: delivery defaults to append");
		ok(!t->manual && strcmp(t->interval, "15min") == 0 &&
		   t->interval_sec == 900, "inbox: interval 15min = 900s");
		ok(strcmp(t->remote.host, "imap.example.org") == 0 &&
		   t->remote.port == 143 && t->remote.security == SECURITY_STARTTLS &&
		   t->remote.tls_verify && t->remote.ca_file == NULL,
		   "inbox: remote defaults: port 143, starttls, verify");
		ok(strcmp(t->remote_user, "john@example.org") == 0, "inbox: remote user");
		ok(strcmp(t->password_file, path) == 0,
		   "inbox: password_file defaults to tasks/NAME.pwd (absolute)");
		ok(!task_folder_excluded(t, "Junk", &err) && err == 0,
		   "inbox: nothing is excluded");
		free(path);
	}
	task_free(&t);
	ok(t == NULL, "task_free sets the pointer to NULL");

	/* all.ini */
	errs_clear();
	t = task_load(dir, "all", collect, NULL);
	ok(t != NULL, "all task loads");
	if (t == NULL)
		errs_dump();
	if (t != NULL) {
		path = xasprintf("%s/tasks/secrets/all.pwd", dir);
		ok(t->folders == FOLDERS_ALL && t->delete_mode == DELETE_OLDER_THAN &&
		   t->delete_older_than_days == 30,
		   "all: folders all, delete older-than 30 days");
		ok(t->interval_sec == 5400 && strcmp(t->interval, "1h 30min") == 0,
		   "all: interval \"1h 30min\" kept as written, 5400s");
		ok(t->remote.security == SECURITY_TLS && t->remote.port == 10993 &&
		   !t->remote.tls_verify, "all: tls, explicit port, tls_verify no");
		ok(strcmp(t->remote_user, "mary@example.net") == 0,
		   "all: double quotes are removed");
		ok(strcmp(t->password_file, path) == 0,
		   "all: relative password_file is relative to tasks/");
		free(path);
	}
	task_free(&t);

	/* except.ini */
	errs_clear();
	t = task_load(dir, "except", collect, NULL);
	ok(t != NULL, "all-except task loads");
	if (t == NULL)
		errs_dump();
	if (t != NULL) {
		ok(t->folders == FOLDERS_ALL_EXCEPT && t->exclude != NULL &&
		   strcmp(t->exclude[0], "^(Junk|Trash|Archive/.*)$") == 0 &&
		   t->exclude[1] == NULL, "except: one exclude pattern");
		ok(t->manual && t->interval == NULL && t->interval_sec == 0,
		   "except: interval manual");
		ok(t->delete_mode == DELETE_AFTER_SYNC, "except: delete after-sync");
		ok(t->remote.security == SECURITY_NONE && t->remote.port == 143,
		   "except: security none, port 143");
		ok(task_folder_excluded(t, "Junk", &err) && err == 0 &&
		   task_folder_excluded(t, "Archive/2020", &err) && err == 0,
		   "except: Junk and Archive/2020 are excluded");
		ok(!task_folder_excluded(t, "INBOX", &err) && err == 0 &&
		   !task_folder_excluded(t, "Junkmail", &err) && err == 0 &&
		   !task_folder_excluded(t, "Archive", &err) && err == 0,
		   "except: INBOX, Junkmail, Archive are not excluded");
		ok(!task_folder_excluded(t, "Tr\xff" "ash", &err) && err == 0,
		   "except: invalid UTF-8 in a name is no error");
	}
	task_free(&t);

	/* the CLI refuses an example file by name */
	errs_clear();
	ok(task_load(dir, "example", collect, NULL) == NULL &&
	   has_err("%s/tasks/example.ini: cannot open: No such file or directory",
		   dir), "missing task file: FILE: cannot open");

	rm_rf(dir);
	free(dir);
}

static void test_local_errors(void)
{
	char *dir = xasprintf("%s/local", tmproot);
	char *tasks = xasprintf("%s/tasks", dir);
	char *conf = xasprintf("%s/imapsync-task.conf", dir);
	struct local_config *cfg;

	mkdir(dir, 0755);
	mkdir(tasks, 0755);

	/* no conf at all */
	errs_clear();
	ok(local_config_load(dir, collect, NULL) == NULL &&
	   has_err("%s: cannot open: No such file or directory", conf),
	   "missing imapsync-task.conf is an error");

	/* empty conf: all defaults, but master.pwd is needed */
	write_file(conf, "", 0644);
	errs_clear();
	ok(local_config_load(dir, collect, NULL) == NULL &&
	   has_err("%s: master_password_file: %s/master.pwd: No such file or "
		   "directory (create it with mode 0600, or pass the credential "
		   "master.password with LoadCredential=)", conf, dir),
	   "missing master.pwd names the credential master.password");

	/* $CREDENTIALS_DIRECTORY with master.password replaces the file */
	setenv("CREDENTIALS_DIRECTORY", tmproot, 1);
	write_filef(0400, "x\n", "%s/master.password", tmproot);
	errs_clear();
	cfg = local_config_load(dir, collect, NULL);
	ok(cfg != NULL, "credential master.password satisfies the check");
	if (cfg != NULL) {
		ok(strcmp(cfg->ep.host, "127.0.0.1") == 0 && cfg->ep.port == 143 &&
		   cfg->ep.security == SECURITY_STARTTLS && cfg->ep.tls_verify &&
		   strcmp(cfg->master_user, "vmail") == 0 &&
		   cfg->master_separator == '*' &&
		   strcmp(cfg->lmtp, "127.0.0.1:24") == 0,
		   "empty conf: every default applied");
	} else {
		errs_dump();
	}
	local_config_free(&cfg);
	unsetenv("CREDENTIALS_DIRECTORY");

	/* a master.pwd readable by others */
	write_filef(0644, "x\n", "%s/master.pwd", dir);
	errs_clear();
	ok(local_config_load(dir, collect, NULL) == NULL &&
	   has_err("%s: master_password_file: %s/master.pwd: is accessible by "
		   "group or others (mode 0644); run chmod 600 on it", conf, dir),
	   "master.pwd mode 0644 refused");
	{
		char *mpwd = xasprintf("%s/master.pwd", dir);

		chmod(mpwd, 0600);
		free(mpwd);
	}

	write_file(conf,
		   "[local]\n"                          /* 1 */
		   "security = tls\n"                   /* 2 */
		   "master_separator = ab\n"            /* 3 */
		   "lmtp = localhost\n"                 /* 4 */
		   "port = 0\n"                         /* 5 */
		   "master_user = v mail\n"             /* 6 */
		   "[task]\n",                          /* 7 */
		   0664);
	errs_clear();
	ok(local_config_load(dir, collect, NULL) == NULL, "bad conf refused");
	ok(has_err("%s: is writable by group or others (mode 0664)", conf),
	   "group-writable conf refused");
	ok(has_err("%s:3: master_separator: must be a single punctuation character",
		   conf), "bad master_separator");
	ok(has_err("%s:4: lmtp: invalid value \"localhost\" (host:port or an "
		   "absolute unix socket path)", conf), "bad lmtp");
	ok(has_err("%s:5: port: out of range: 0 (valid: 1-65535)", conf),
	   "port 0 refused");
	ok(has_err("%s:6: master_user: must be non-empty, without spaces", conf),
	   "master_user with a space refused");
	ok(has_err("%s:7: [task]: unknown section (valid: local)", conf),
	   "[task] in imapsync-task.conf refused");
	ok(errs.n == 6, "exactly 6 errors (got %zu)", errs.n);

	write_file(conf, "[local]\nsecurity = tls\nca_file = ca.pem\n", 0644);
	write_filef(0644, "PEM\n", "%s/ca.pem", dir);
	errs_clear();
	cfg = local_config_load(dir, collect, NULL);
	ok(cfg != NULL && cfg->ep.port == 993 && cfg->ep.ca_file != NULL &&
	   strcmp(cfg->ep.ca_file + strlen(cfg->ep.ca_file) - 7, "/ca.pem") == 0,
	   "security tls defaults to port 993; ca_file relative to config dir");
	local_config_free(&cfg);

	free(conf);
	free(tasks);
	free(dir);
}

static void test_task_errors(void)
{
	char *p = xasprintf("%s/tasks/t.ini", scratch);
	struct task *t;
	struct timespec t0, t1;
	int err;
	double ms;

	/* a well-formed baseline */
	t = load_t("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE);
	ok(t != NULL, "baseline task loads");
	if (t == NULL)
		errs_dump();
	task_free(&t);

	ok(load_fails("[task]\n"                /* 1 */
		      "local_user = u\n"        /* 2 */
		      "colour = blue\n"         /* 3 */
		      "interval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:3: colour: unknown key in [task] (valid: local_user, "
		   "folders, exclude, delete, delete_older_than_days, delivery, "
		   "interval)", p), "unknown key, with the valid ones listed");

	ok(load_fails("[task]\n"
		      "local_user = u\n"
		      "interval = 1h\n"
		      "interval = 2h\n" GOOD_REMOTE) &&
	   has_err("%s:4: interval: duplicate key (first on line 3)", p) &&
	   errs.n == 1, "duplicate key (and nothing else)");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "[Task]\n") &&
	   has_err("%s:7: [task]: duplicate section (first on line 1)", p),
	   "duplicate section (names are case-insensitive)");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "[remotes]\nhost = x\n") &&
	   has_err("%s:7: [remotes]: unknown section (valid: task, remote)", p),
	   "unknown section");

	ok(load_fails("local_user = u\n[task]\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:1: local_user: key outside of any section", p) &&
	   has_err("%s:2: local_user: required key is missing", p),
	   "key outside a section; missing key at the [task] line");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\njust words\n"
		      GOOD_REMOTE) &&
	   has_err("%s:4: expected \"key = value\", \"[section]\" or a comment", p),
	   "malformed line");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n") &&
	   has_err("%s: [remote]: required section is missing", p),
	   "missing [remote] section");

	ok(load_fails("[task]\nlocal_user = u\n" GOOD_REMOTE) &&
	   has_err("%s:1: interval: required key is missing", p),
	   "interval is required");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n"
		      "[remote]\nport = 143\n") &&
	   has_err("%s:4: host: required key is missing", p) &&
	   has_err("%s:4: user: required key is missing", p),
	   "remote host and user are required");

	ok(load_fails("[task]\nlocal_user = u\nfolders = some\ninterval = 1h\n"
		      GOOD_REMOTE) &&
	   has_err("%s:3: folders: invalid value \"some\" (valid: inbox, all, "
		   "all-except)", p), "bad folders value lists the valid ones");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "security = ssl\n") &&
	   has_err("%s:7: security: invalid value \"ssl\" (valid: starttls, tls, "
		   "none)", p), "bad security value");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "tls_verify = maybe\n") &&
	   has_err("%s:7: tls_verify: invalid value \"maybe\" (valid: yes, no, "
		   "true, false, 1, 0)", p), "bad boolean");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "port = imap\n") &&
	   has_err("%s:7: port: not a number: \"imap\"", p), "non-numeric port");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "port = 65536\n") &&
	   has_err("%s:7: port: out of range: 65536 (valid: 1-65535)", p),
	   "port 65536 out of range");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\ndelete = older-than\n"
		      "delete_older_than_days = 36501\n" GOOD_REMOTE) &&
	   has_err("%s:5: delete_older_than_days: out of range: 36501 "
		   "(valid: 1-36500)", p), "days out of range");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\ndelete = older-than\n"
		      GOOD_REMOTE) &&
	   has_err("%s:1: delete_older_than_days: required key is missing", p),
	   "older-than needs delete_older_than_days");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\ndelete = after-sync\n"
		      "delete_older_than_days = 7\n" GOOD_REMOTE) &&
	   has_err("%s:5: delete_older_than_days: only valid with delete = "
		   "older-than (delete is after-sync)", p),
	   "delete_older_than_days without older-than");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 15 parsecs\n" GOOD_REMOTE) &&
	   has_err("%s:3: interval: invalid time span \"15 parsecs\"", p),
	   "bad interval");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 30s\n" GOOD_REMOTE) &&
	   has_err("%s:3: interval: too short: 30s (at least 1min, or manual)", p),
	   "interval under 1min refused");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\nfolders = all-except\n"
		      "exclude = ^(Junk\n" GOOD_REMOTE) &&
	   has_err("%s:5: exclude: invalid regular expression at offset 6: "
		   "missing closing parenthesis", p),
	   "regex compile error with PCRE2 text and offset");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\nfolders = all\n"
		      "exclude = ^Junk$\n" GOOD_REMOTE) &&
	   has_err("%s:5: exclude: only valid with folders = all-except "
		   "(folders is all)", p), "exclude without all-except");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n"
		      "folders = all-except\n" GOOD_REMOTE) &&
	   has_err("%s:1: exclude: required key is missing", p),
	   "all-except without exclude");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\nfolders = all\n"
		      "delivery = sieve\n" GOOD_REMOTE) &&
	   has_err("%s:5: delivery: delivery = sieve is only valid with folders = "
		   "inbox (folders is all)", p), "sieve delivery needs folders = inbox");

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "password = hunter2-secret\n") &&
	   has_err("%s:7: password: passwords belong in password_file, not in "
		   "the INI", p) && !errs_contain("hunter2"),
	   "password in the INI refused, value not echoed");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\npass=\"p w\"\n"
		      GOOD_REMOTE "[other]\nsecret = s3cr3t\n") &&
	   has_err("%s:4: pass: passwords belong in password_file", p) &&
	   has_err("%s:9: secret: passwords belong in password_file", p) &&
	   !errs_contain("s3cr3t") && !errs_contain("p w"),
	   "pass and secret refused anywhere, even in an unknown section");

	ok(load_fails("[task]\nlocal_user = john*doe\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: local_user: must not contain the master separator '*'", p),
	   "local_user with the master separator refused");
	ok(load_fails("[task]\nlocal_user = john doe\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: local_user: must not contain spaces or control "
		   "characters", p), "local_user with a space refused");
	ok(load_fails("[task]\nlocal_user = a\x01" "b\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: control character 0x01 in line", p),
	   "control character refused");
	ok(load_fails("[task]\nlocal_user = \"\"\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: local_user: must not be empty", p),
	   "empty local_user refused");

	/* iniparser quirks the scanner refuses */
	ok(load_fails("[task]\nlocal_user = u\n; a comment \\\ninterval = 1h\n"
		      GOOD_REMOTE) &&
	   has_err("%s:3: line ends with '\\'", p),
	   "a trailing backslash (line join) refused, even in a comment");
	ok(load_fails("[task]\nlocal_user = u\ninterval = \"1h\n" GOOD_REMOTE) &&
	   has_err("%s:3: interval: unterminated double quote", p),
	   "unterminated quote");
	ok(load_fails("[task]\nlocal_user = u\ninterval = \"1h\" 2h\n" GOOD_REMOTE) &&
	   has_err("%s:3: interval: unexpected text after the closing quote", p),
	   "text after a closing quote");
	ok(load_fails("[task] ; comment\nlocal_user = u\ninterval = 1h\n"
		      GOOD_REMOTE) &&
	   has_err("%s:1: malformed section header", p),
	   "comment after a section header refused");
	ok(load_fails("[task]\nlocal_user = u\xc3\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: line is not valid UTF-8", p), "invalid UTF-8 refused");

	/* quoting keeps ';' and '#' in a pattern */
	t = load_t("[task]\nlocal_user = u\ninterval = 1h ; hourly\n"
		   "folders = all-except\nexclude = \"^(A;B|C#D)$\"  # quoted\n"
		   GOOD_REMOTE);
	ok(t != NULL && strcmp(t->exclude[0], "^(A;B|C#D)$") == 0 &&
	   task_folder_excluded(t, "A;B", &err) && err == 0 &&
	   strcmp(t->interval, "1h") == 0,
	   "quoted value keeps ';' and '#'; inline comments are stripped");
	if (t == NULL)
		errs_dump();
	task_free(&t);

	/* exclude is a list key: one pattern per line, any of them excludes */
	t = load_t("[task]\nlocal_user = u\ninterval = 1h\nfolders = all-except\n"
		   "exclude = Posta inviata\n"
		   "exclude = \"^C#$\"   # a '#' needs quotes\n"
		   "exclude = ^Entw\xc3\xbcrfe$\n"
		   "exclude = '^say \"hi\"$'\n"
		   "exclude = ^Archive$\n"
		   "exclude = ^Old(/|$)\n"
		   "exclude = \"^Lists/(announce|old;2019)\"\n"
		   GOOD_REMOTE);
	ok(t != NULL && t->exclude != NULL &&
	   strcmp(t->exclude[0], "Posta inviata") == 0 &&
	   strcmp(t->exclude[1], "^C#$") == 0 &&
	   strcmp(t->exclude[2], "^Entw\xc3\xbcrfe$") == 0 &&
	   strcmp(t->exclude[3], "^say \"hi\"$") == 0 &&
	   strcmp(t->exclude[6], "^Lists/(announce|old;2019)") == 0 &&
	   t->exclude[7] == NULL && t->exclude_re != NULL &&
	   t->exclude_re[6] != NULL && t->exclude_re[7] == NULL,
	   "several exclude lines: seven patterns, in file order");
	if (t == NULL)
		errs_dump();
	if (t != NULL) {
		ok(task_folder_excluded(t, "Posta inviata", &err) && err == 0 &&
		   task_folder_excluded(t, "C#", &err) && err == 0 &&
		   task_folder_excluded(t, "Entw\xc3\xbcrfe", &err) && err == 0 &&
		   task_folder_excluded(t, "say \"hi\"", &err) && err == 0 &&
		   task_folder_excluded(t, "Lists/old;2019", &err) && err == 0,
		   "a space, '#', non-ASCII, quotes, ';': each pattern matches");
		ok(!task_folder_excluded(t, "Posta", &err) && err == 0 &&
		   !task_folder_excluded(t, "C", &err) && err == 0 &&
		   !task_folder_excluded(t, "Entwurfe", &err) && err == 0 &&
		   !task_folder_excluded(t, "INBOX", &err) && err == 0,
		   "nothing else is excluded");
		ok(task_folder_excluded(t, "Archive", &err) &&
		   !task_folder_excluded(t, "Archive/2023", &err) &&
		   task_folder_excluded(t, "Old", &err) &&
		   task_folder_excluded(t, "Old/2019", &err) &&
		   !task_folder_excluded(t, "Older", &err),
		   "^Archive$ leaves Archive/2023 in; ^Old(/|$) takes both out");
		ok(str_eq_or(task_folder_exclude_match(t, "Old/2019", &err),
			     "^Old(/|$)") &&
		   task_folder_exclude_match(t, "Sent", &err) == NULL && err == 0,
		   "task_folder_exclude_match names the pattern");
	}
	task_free(&t);
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\nfolders = all-except\n"
		      "exclude = ^Junk$\nexclude = ^(Trash\nexclude = \"\"\n"
		      "exclude = ok\n" GOOD_REMOTE) &&
	   has_err("%s:6: exclude: invalid regular expression at offset 7: "
		   "missing closing parenthesis", p) &&
	   has_err("%s:7: exclude: must not be empty with folders = all-except",
		   p) && errs.n == 2,
	   "each exclude line is checked on its own, at its line");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n"
		      "exclude = a\nexclude = b\n" GOOD_REMOTE) &&
	   has_err("%s:4: exclude: only valid with folders = all-except "
		   "(folders is inbox)", p) &&
	   has_err("%s:5: exclude: only valid with folders = all-except "
		   "(folders is inbox)", p), "every exclude line without all-except");
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\ninterval = 2h\n"
		      GOOD_REMOTE) &&
	   has_err("%s:4: interval: duplicate key (first on line 3)", p),
	   "other keys still appear once");

	/* catastrophic backtracking: loads, then hits the limit quickly */
	t = load_t("[task]\nlocal_user = u\ninterval = 1h\nfolders = all-except\n"
		   "exclude = (a+)+$\n"
		   "exclude = !$\n" GOOD_REMOTE);
	ok(t != NULL, "a pathological pattern next to a sane one loads");
	if (t != NULL) {
		ok(task_folder_excluded(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", &err) &&
		   err == 0, "the first pattern hits a limit, the second matches: "
		   "excluded, no error");
		bool ex = task_folder_excluded(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!x",
					       &err);

		ok(!ex && err != 0, "no match and a limit hit: an error (err %d)",
		   err);
	}
	task_free(&t);

	/* catastrophic backtracking: loads, then hits the limit quickly */
	t = load_t("[task]\nlocal_user = u\ninterval = 1h\nfolders = all-except\n"
		   "exclude = (a+)+$\n" GOOD_REMOTE);
	ok(t != NULL, "pathological pattern (a+)+$ loads");
	if (t != NULL) {
		bool ex;
		char msg[128];

		clock_gettime(CLOCK_MONOTONIC, &t0);
		ex = task_folder_excluded(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", &err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		ok(!ex && err != 0, "matching (a+)+$ returns an error (err %d)", err);
		ok(ms < 2000, "and returns quickly (%.1f ms)", ms);
		task_match_strerror(err, msg, sizeof(msg));
		ok(strstr(msg, "limit") != NULL, "error text: %s", msg);
		ok(task_folder_excluded(t, "aaaa", &err) && err == 0,
		   "a short name still matches");
	} else {
		errs_dump();
	}
	task_free(&t);

	/* several errors in one file, reported at once, in line order */
	{
		char *dir = copy_tree("config-errors");
		char *f = xasprintf("%s/tasks/broken.ini", dir);
		size_t i;
		bool sorted = true;

		errs_clear();
		ok(task_load(dir, "broken", collect, NULL) == NULL,
		   "broken.ini refused");
		ok(has_err("%s:1: stray: key outside of any section", f) &&
		   has_err("%s:3: local_user: must not contain the master "
			   "separator '*'", f) &&
		   has_err("%s:4: folders: invalid value \"some\"", f) &&
		   has_err("%s:5: exclude: invalid regular expression at offset 9: "
			   "missing closing parenthesis", f) &&
		   has_err("%s:7: delete_older_than_days: only valid with "
			   "delete = older-than (delete is never)", f) &&
		   has_err("%s:8: interval: too short: 10s", f) &&
		   has_err("%s:9: interval: duplicate key (first on line 8)", f) &&
		   has_err("%s:10: colour: unknown key in [task]", f) &&
		   has_err("%s:11: password: passwords belong in password_file", f),
		   "broken.ini: every [task] error reported");
		ok(has_err("%s:13: user: required key is missing", f) &&
		   has_err("%s:13: password_file: %s/tasks/broken.pwd: No such file "
			   "or directory (create it with mode 0600, or pass the "
			   "credential task.broken.password with LoadCredential=)",
			   f, dir) &&
		   has_err("%s:15: port: out of range: 70000", f) &&
		   has_err("%s:16: security: invalid value \"ssl\"", f) &&
		   has_err("%s:17: tls_verify: invalid value \"maybe\"", f) &&
		   has_err("%s:18: expected \"key = value\"", f) &&
		   has_err("%s:20: [extra]: unknown section", f),
		   "broken.ini: every [remote] and structural error reported");
		ok(errs.n == 16, "broken.ini: 16 errors (got %zu)", errs.n);
		ok(!errs_contain("do-not-echo-me"), "broken.ini: password not echoed");
		for (i = 1; i < errs.n; i++) {
			const char *a = errs.line[i - 1] + strlen(f);
			const char *b = errs.line[i] + strlen(f);

			if (a[0] == ':' && b[0] == ':' && atoi(a + 1) > atoi(b + 1))
				sorted = false;
		}
		ok(sorted, "broken.ini: errors come in line order");
		rm_rf(dir);
		free(f);
		free(dir);
	}

	free(p);
}

static void test_modes_and_credentials(void)
{
	char *p = xasprintf("%s/tasks/t.ini", scratch);
	char *pwd = xasprintf("%s/tasks/t.pwd", scratch);
	char *cred = xasprintf("%s/creds", tmproot);
	const char *good = "[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE;
	struct task *t;

	/* group-writable task file */
	write_file(p, good, 0664);
	errs_clear();
	ok(task_load(scratch, "t", collect, NULL) == NULL &&
	   has_err("%s: is writable by group or others (mode 0664); run chmod "
		   "go-w on it", p), "group-writable task file refused");
	write_file(p, good, 0646);
	errs_clear();
	ok(task_load(scratch, "t", collect, NULL) == NULL &&
	   has_err("%s: is writable by group or others (mode 0646)", p),
	   "world-writable task file refused");

	/* password file modes */
	chmod(pwd, 0640);
	ok(load_fails(good) &&
	   has_err("%s:4: password_file: %s: is accessible by group or others "
		   "(mode 0640); run chmod 600 on it", p, pwd),
	   "password file 0640 refused (at the [remote] line)");
	chmod(pwd, 0604);
	ok(load_fails(good) && has_err("%s:4: password_file: %s: is accessible",
				       p, pwd), "password file 0604 refused");
	chmod(pwd, 0400);
	t = load_t(good);
	ok(t != NULL, "password file 0400 accepted");
	task_free(&t);
	chmod(pwd, 0600);

	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "password_file = /nonexistent/x.pwd\n") &&
	   has_err("%s:7: password_file: /nonexistent/x.pwd: No such file or "
		   "directory (create it with mode 0600, or pass the credential "
		   "task.t.password with LoadCredential=)", p),
	   "missing explicit password_file names the credential id");

	errs_clear();
	t = task_load_with(scratch, "t", TASK_LOAD_NO_PASSWORD_CHECK, collect, NULL);
	ok(t != NULL && strcmp(t->password_file, "/nonexistent/x.pwd") == 0,
	   "TASK_LOAD_NO_PASSWORD_CHECK skips the password file check");
	task_free(&t);

	/* $CREDENTIALS_DIRECTORY: the credential replaces the file check */
	mkdir(cred, 0700);
	setenv("CREDENTIALS_DIRECTORY", cred, 1);
	write_filef(0400, "pw\n", "%s/task.t.password", cred);
	t = load_t("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		   "password_file = /nonexistent/x.pwd\n");
	ok(t != NULL, "credential task.t.password present: no file check");
	if (t != NULL)
		ok(strcmp(t->password_file, "/nonexistent/x.pwd") == 0,
		   "password_file still recorded");
	else
		errs_dump();
	task_free(&t);
	chmod(pwd, 0644);
	t = load_t(good);
	ok(t != NULL, "credential present: a loose password file is not checked");
	task_free(&t);
	chmod(pwd, 0600);
	setenv("CREDENTIALS_DIRECTORY", tmproot, 1);   /* no task.t.password */
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
		      "password_file = /nonexistent/x.pwd\n") &&
	   has_err("%s:7: password_file: /nonexistent/x.pwd: No such file", p),
	   "credential for another id does not count");
	unsetenv("CREDENTIALS_DIRECTORY");

	/* local_user is checked against the configured separator */
	write_filef(0644, "[local]\nmaster_separator = +\n",
		    "%s/imapsync-task.conf", scratch);
	ok(load_fails("[task]\nlocal_user = a+b\ninterval = 1h\n" GOOD_REMOTE) &&
	   has_err("%s:2: local_user: must not contain the master separator '+'",
		   p), "local_user checked against master_separator from the conf");
	t = load_t("[task]\nlocal_user = a*b\ninterval = 1h\n" GOOD_REMOTE);
	ok(t != NULL, "'*' allowed when the separator is '+'");
	task_free(&t);
	write_filef(0644, "[local]\n", "%s/imapsync-task.conf", scratch);

	free(cred);
	free(pwd);
	free(p);
}

/* Issue 12: enum and boolean values in any case; an unquoted '#'
   inside a value; a byte order mark. */
/* [remote] max_bytes_per_second and max_messages_per_second. */
static void test_throttle_keys(void)
{
	char *p = xasprintf("%s/tasks/t.ini", scratch);
	struct task *t;

	t = load_t("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE);
	ok(t != NULL && t->max_bytes_per_second == 0 && t->max_messages_per_second == 0,
	   "throttle keys absent: unlimited");
	task_free(&t);

	static const struct { const char *text; uint64_t bytes; } sizes[] = {
		{ "200000", 200000 }, { "500k", 500 * 1024 }, { "500K", 500 * 1024 },
		{ "2M", 2 << 20 }, { "2m", 2 << 20 }, { "1G", 1ULL << 30 }, { "1k", 1024 },
		{ "10G", 10ULL << 30 }, { "1024", 1024 },
	};
	for (size_t i = 0; i < N_ELEMENTS(sizes); i++) {
		char *ini = xasprintf("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
				      "max_bytes_per_second = %s\n", sizes[i].text);
		t = load_t(ini);
		ok(t != NULL && t->max_bytes_per_second == sizes[i].bytes,
		   "max_bytes_per_second = %s is %llu", sizes[i].text,
		   (unsigned long long)sizes[i].bytes);
		task_free(&t);
		free(ini);
	}
	static const struct { const char *text; double rate; } rates[] = {
		{ "4", 4 }, { "0.5", 0.5 }, { "0.01", 0.01 }, { "2.25", 2.25 },
		{ "10000", 10000 }, { "1.0", 1 },
	};
	for (size_t i = 0; i < N_ELEMENTS(rates); i++) {
		char *ini = xasprintf("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
				      "max_messages_per_second = %s\n", rates[i].text);
		t = load_t(ini);
		ok(t != NULL && t->max_messages_per_second > rates[i].rate - 1e-9 &&
		   t->max_messages_per_second < rates[i].rate + 1e-9,
		   "max_messages_per_second = %s", rates[i].text);
		task_free(&t);
		free(ini);
	}

	static const struct { const char *line, *err; } bad[] = {
		{ "max_bytes_per_second = fast",
		  "max_bytes_per_second: not a size: \"fast\" (bytes, or with k, M or G" },
		{ "max_bytes_per_second = 2MB", "max_bytes_per_second: not a size: \"2MB\"" },
		{ "max_bytes_per_second = -1", "max_bytes_per_second: not a size" },
		{ "max_bytes_per_second = 1.5M", "max_bytes_per_second: not a size" },
		{ "max_bytes_per_second = k", "max_bytes_per_second: not a size" },
		{ "max_bytes_per_second = 0", "max_bytes_per_second: out of range: 0 (valid: 1k-10G" },
		{ "max_bytes_per_second = 1000", "max_bytes_per_second: out of range: 1000" },
		{ "max_bytes_per_second = 11G", "max_bytes_per_second: out of range: 11G" },
		{ "max_bytes_per_second = 99999999999999999999999",
		  "max_bytes_per_second: not a size" },
		{ "max_bytes_per_second = 18014398509481984k", "max_bytes_per_second: out of range" },
		{ "max_messages_per_second = 0",
		  "max_messages_per_second: out of range: 0 (valid: 0.01-10000)" },
		{ "max_messages_per_second = 0.001",
		  "max_messages_per_second: not a number: \"0.001\" (e.g. 4, 0.5; at most two" },
		{ "max_messages_per_second = .5", "max_messages_per_second: not a number" },
		{ "max_messages_per_second = 5.", "max_messages_per_second: not a number" },
		{ "max_messages_per_second = 1e3", "max_messages_per_second: not a number" },
		{ "max_messages_per_second = -2", "max_messages_per_second: not a number" },
		{ "max_messages_per_second = 10001", "max_messages_per_second: out of range" },
		{ "max_messages_per_second = 4/s", "max_messages_per_second: not a number" },
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		char *ini = xasprintf("[task]\nlocal_user = u\ninterval = 1h\n" GOOD_REMOTE
				      "%s\n", bad[i].line);
		ok(load_fails(ini) && has_err("%s:7: %s", p, bad[i].err), "refused: %s",
		   bad[i].line);
		free(ini);
	}
	/* Only in [remote]: the local side is never paced. */
	ok(load_fails("[task]\nlocal_user = u\ninterval = 1h\nmax_bytes_per_second = 1M\n"
		      GOOD_REMOTE) && errs_contain("max_bytes_per_second"),
	   "max_bytes_per_second in [task] is an unknown key");
	free(p);
}

/* [remote] max_connections: 1 to 8, default 2. */
static void test_max_connections(void)
{
	char *p = xasprintf("%s/tasks/t.ini", scratch);
	struct task *t;

	t = load_t("[task]\nlocal_user = u\nfolders = all\ninterval = 1h\n" GOOD_REMOTE);
	ok(t != NULL && t->max_connections == 2, "max_connections absent: 2");
	task_free(&t);
	static const unsigned good[] = { 1, 4, 8 };
	for (size_t i = 0; i < N_ELEMENTS(good); i++) {
		char *ini = xasprintf("[task]\nlocal_user = u\nfolders = all\ninterval = 1h\n"
				      GOOD_REMOTE "max_connections = %u\n", good[i]);
		t = load_t(ini);
		ok(t != NULL && t->max_connections == good[i], "max_connections = %u", good[i]);
		task_free(&t);
		free(ini);
	}
	static const struct { const char *line, *err; } bad[] = {
		{ "max_connections = 0", "max_connections: out of range: 0 (valid: 1-8)" },
		{ "max_connections = 9", "max_connections: out of range: 9 (valid: 1-8)" },
		{ "max_connections = two", "max_connections: not a number: \"two\"" },
		{ "max_connections = -1", "max_connections: not a number" },
	};
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		char *ini = xasprintf("[task]\nlocal_user = u\nfolders = all\ninterval = 1h\n"
				      GOOD_REMOTE "%s\n", bad[i].line);
		ok(load_fails(ini) && has_err("%s:8: %s", p, bad[i].err), "refused: %s",
		   bad[i].line);
		free(ini);
	}
	free(p);
}

static void test_case_and_comments(void)
{
	struct task *t;

	t = load_t("[task]\nlocal_user = u\nfolders = ALL\ndelete = After-Sync\n"
		   "delivery = APPEND\ninterval = Manual\n"
		   "[remote]\nhost = h\nsecurity = STARTTLS\ntls_verify = YES\nuser = u\n");
	ok(t != NULL && t->folders == FOLDERS_ALL && t->delete_mode == DELETE_AFTER_SYNC &&
	   t->delivery == DELIVERY_APPEND && t->manual && t->remote.security == SECURITY_STARTTLS &&
	   t->remote.port == 143 && t->remote.tls_verify,
	   "enum and boolean values are accepted in any case (STARTTLS, ALL, YES, Manual)");
	task_free(&t);
	t = load_t("[task]\nlocal_user = u\ninterval = manual\n"
		   "[remote]\nhost = h\nsecurity = TLS\ntls_verify = No\nuser = u\n");
	ok(t != NULL && t->remote.security == SECURITY_TLS && t->remote.port == 993 &&
	   !t->remote.tls_verify, "TLS is tls (port 993), No is no");
	task_free(&t);
	ok(load_fails("[task]\nlocal_user = u\ninterval = manual\n"
		      "[remote]\nhost = h\nsecurity = SSL\nuser = u\n") &&
	   errs_contain("security: invalid value \"SSL\" (valid: starttls, tls, none)"),
	   "an unknown value is refused naming the valid ones");
	ok(load_fails("[task]\nlocal_user = u\ninterval = manual\n"
		      "[remote]\nhost = h\nuser = alice#1\n") &&
	   errs_contain(":6: user: '#' inside an unquoted value would start a comment"),
	   "user = alice#1 is refused, not cut to alice");
	t = load_t("[task]\nlocal_user = u\ninterval = manual\n"
		   "[remote]\nhost = h\nuser = \"alice#1\" # the remote login\n");
	ok(t != NULL && strcmp(t->remote_user, "alice#1") == 0, "quoted, alice#1 is alice#1");
	task_free(&t);
	t = load_t("\xef\xbb\xbf[task]\r\nlocal_user = u\r\ninterval = manual\r\n"
		   "[remote]\r\nhost = h\r\nuser = u\r\n");
	ok(t != NULL && strcmp(t->local_user, "u") == 0,
	   "a task file with a UTF-8 byte order mark and CRLF loads");
	task_free(&t);
}

int main(void)
{
	char *tasks;

	if (mkdtemp(tmproot) == NULL) {
		diag("mkdtemp: %s", strerror(errno));
		return 99;
	}
	unsetenv("CREDENTIALS_DIRECTORY");
	scratch = xasprintf("%s/scratch", tmproot);
	tasks = xasprintf("%s/tasks", scratch);
	mkdir(scratch, 0755);
	mkdir(tasks, 0755);
	write_filef(0644, "[local]\n", "%s/imapsync-task.conf", scratch);
	write_filef(0600, "pw\n", "%s/master.pwd", scratch);
	write_filef(0600, "pw\n", "%s/t.pwd", tasks);

	test_names();
	test_timespans();
	test_mode_names();
	test_valid_tree();
	test_local_errors();
	test_task_errors();
	test_throttle_keys();
	test_max_connections();
	test_modes_and_credentials();
	test_case_and_comments();

	errs_clear();
	rm_rf(tmproot);
	free(tasks);
	free(scratch);
	return tap_done();
}
