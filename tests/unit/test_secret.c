/* test_secret.c - password files and $CREDENTIALS_DIRECTORY. */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"
#include "tap.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_secret.XXXXXX";
static char errbuf[512];

/* Names of everything created, for cleanup. */
static char *created[32];
static size_t ncreated;

static char *tmp_path(const char *name)
{
	char *path = xasprintf("%s/%s", tmpdir, name);

	if (ncreated < N_ELEMENTS(created))
		created[ncreated++] = xstrdup(path);
	return path;
}

static char *write_file(const char *name, const void *data, size_t len,
			mode_t mode)
{
	char *path = tmp_path(name);
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, data, len) < 0 || fchmod(fd, mode) < 0 ||
	    close(fd) < 0) {
		perror(path);
		exit(99);
	}
	return path;
}

static char *write_str(const char *name, const char *content, mode_t mode)
{
	return write_file(name, content, strlen(content), mode);
}

/* Load path (no credential id); true if it held exactly expected. */
static bool loads_as(const char *cred_id, const char *path,
		     const char *expected)
{
	struct secret *s;
	bool good;

	errbuf[0] = '\0';
	if ((s = secret_load(cred_id, path, errbuf, sizeof(errbuf))) == NULL) {
		diag("error: %s", errbuf);
		return false;
	}
	good = s->len == strlen(expected) && strcmp(s->value, expected) == 0;
	if (!good)
		diag("got %zu bytes", s->len);
	secret_free(&s);
	return good && s == NULL;
}

/* Loading must fail, with a message containing want (and path). */
static bool refused_with(const char *cred_id, const char *path,
			 const char *want)
{
	struct secret *s;

	errbuf[0] = '\0';
	if ((s = secret_load(cred_id, path, errbuf, sizeof(errbuf))) != NULL) {
		secret_free(&s);
		diag("unexpectedly loaded %s", path);
		return false;
	}
	if (strstr(errbuf, want) == NULL ||
	    (path != NULL && strstr(errbuf, path) == NULL)) {
		diag("message: %s", errbuf);
		return false;
	}
	return true;
}

static void test_good(void)
{
	char *p;

	p = write_str("good", "hunter2\n", 0600);
	ok(loads_as(NULL, p, "hunter2"), "good file, trailing LF stripped");
	free(p);
	p = write_str("crlf", "hunter2\r\n", 0600);
	ok(loads_as(NULL, p, "hunter2"), "trailing CRLF stripped");
	free(p);
	p = write_str("noeol", "correct horse battery staple", 0400);
	ok(loads_as(NULL, p, "correct horse battery staple"),
	   "no line end, mode 0400");
	free(p);
	p = write_str("spaces", " pass word \n", 0600);
	ok(loads_as(NULL, p, " pass word "), "spaces kept");
	free(p);
}

static void test_mode(void)
{
	char *p;

	p = write_str("mode644", "hunter2\n", 0644);
	ok(refused_with(NULL, p, "(mode 0644); chmod 600 it"),
	   "mode 0644 refused");
	free(p);
	p = write_str("mode640", "hunter2\n", 0640);
	char *want = xasprintf("%s: password file is readable or writable by "
			       "group or others (mode 0640); chmod 600 it", p);
	ok(refused_with(NULL, p, want) && strcmp(errbuf, want) == 0,
	   "mode 0640 refused with the documented message");
	free(want);
	free(p);
	p = write_str("mode602", "hunter2\n", 0602);
	ok(refused_with(NULL, p, "(mode 0602)"), "world-writable refused");
	free(p);
}

static void test_not_regular(void)
{
	char *target = write_str("target", "hunter2\n", 0600);
	char *link = tmp_path("link");
	char *dir = tmp_path("dir");
	char *fifo = tmp_path("fifo");

	if (symlink(target, link) < 0 || mkdir(dir, 0700) < 0 ||
	    mkfifo(fifo, 0600) < 0) {
		perror("setup");
		exit(99);
	}
	ok(refused_with(NULL, link, "symbolic link"), "symlink refused");
	ok(refused_with(NULL, dir, "not a regular file"), "directory refused");
	/* would block forever in open() or read() without O_NONBLOCK */
	ok(refused_with(NULL, fifo, "not a regular file"), "FIFO refused");
	free(target);
	free(link);
	free(dir);
	free(fifo);
}

static void test_content(void)
{
	char *p;

	p = write_str("cr", "hun\rter2\n", 0600);
	ok(refused_with(NULL, p, "must hold one line"), "embedded CR refused");
	ok(strstr(errbuf, "hun") == NULL && strstr(errbuf, "ter2") == NULL,
	   "message does not contain the password");
	free(p);
	p = write_str("twolines", "hunter2\nsecond\n", 0600);
	ok(refused_with(NULL, p, "must hold one line"), "two lines refused");
	free(p);
	p = write_str("twolf", "hunter2\n\n", 0600);
	ok(refused_with(NULL, p, "must hold one line"),
	   "only one line end is stripped");
	free(p);
	p = write_file("nul", "hun\0ter2\n", 9, 0600);
	ok(refused_with(NULL, p, "must hold one line"), "embedded NUL refused");
	free(p);
	p = write_str("lonecr", "hunter2\r", 0600);
	ok(refused_with(NULL, p, "must hold one line"), "trailing lone CR refused");
	free(p);
	p = write_str("empty", "", 0600);
	ok(refused_with(NULL, p, "is empty"), "empty file refused");
	free(p);
	p = write_str("onlylf", "\r\n", 0600);
	ok(refused_with(NULL, p, "is empty"), "file of one CRLF refused");
	free(p);
}

static void test_size(void)
{
	char big[5000];
	char *p;

	memset(big, 'x', sizeof(big));
	big[4095] = '\n';
	p = write_file("max", big, 4096, 0600);
	big[4095] = '\0';
	ok(loads_as(NULL, p, big), "4096-byte file accepted");
	free(p);
	p = write_file("big", big, 4097, 0600);
	ok(refused_with(NULL, p, "larger than 4096 bytes"),
	   "4097-byte file refused");
	free(p);
}

static void test_credentials(void)
{
	char *cred_dir = tmp_path("creds");
	char *cred, *p, *missing;

	if (mkdir(cred_dir, 0700) < 0) {
		perror(cred_dir);
		exit(99);
	}
	cred = write_str("creds/imap-pw", "from-credential\n", 0440);
	p = write_str("pathpw", "from-path\n", 0600);
	missing = tmp_path("no-such-file");

	unsetenv("CREDENTIALS_DIRECTORY");
	ok(loads_as("imap-pw", p, "from-path"),
	   "no $CREDENTIALS_DIRECTORY: path used");
	ok(refused_with("imap-pw", missing, "\"imap-pw\""),
	   "missing file: message names credential id and path");

	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	ok(loads_as("imap-pw", p, "from-credential"),
	   "$CREDENTIALS_DIRECTORY preferred over path");
	ok(loads_as("imap-pw", NULL, "from-credential"),
	   "credential alone is enough");
	ok(loads_as("other-pw", p, "from-path"),
	   "credential not there: path used");
	ok(refused_with("other-pw", missing, "\"other-pw\"") &&
	   strstr(errbuf, cred_dir) != NULL,
	   "missing both: message names id, path and directory");
	ok(refused_with("../pathpw", NULL, "invalid credential id"),
	   "credential id with '/' refused");
	ok(loads_as(NULL, p, "from-path"), "no credential id: path used");
	unsetenv("CREDENTIALS_DIRECTORY");
	free(cred);
	free(p);
	free(missing);
	free(cred_dir);
}

static void test_protect_process(void)
{
	struct rlimit rl;

	secret_protect_process();
	ok(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0, "process not dumpable");
	ok(getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_cur == 0,
	   "core size limit is 0");
}

static void cleanup(void)
{
	/* deepest first: files before their directories */
	while (ncreated > 0) {
		char *path = created[--ncreated];
		if (unlink(path) < 0)
			(void)rmdir(path);
		free(path);
	}
	(void)rmdir(tmpdir);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	test_good();
	test_mode();
	test_not_regular();
	test_content();
	test_size();
	test_credentials();
	test_protect_process();
	cleanup();
	return tap_done();
}
