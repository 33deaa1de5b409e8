/* test_csv_import.c - import-csv (csv_import.c) against a configuration
 * directory in /tmp: task names, --check, the files written, refusals
 * with FILE:LINE, duplicates, --update.  No server: the tasks it makes
 * are read back with task_load(). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv_import.h"
#include "exitcode.h"
#include "tap.h"
#include "task.h"
#include "util.h"

static char root[] = "/tmp/test_csv_import.XXXXXX";
static char *etc, *csv_path;
static char *out_text, *err_text;

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	if (fd < 0 || write_full(fd, text, strlen(text)) < 0 || fchmod(fd, mode) < 0) {
		perror(path);
		exit(99);
	}
	close(fd);
}

static char *read_file(const char *path)
{
	struct buf b = { 0 };
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	for (;;) {
		buf_reserve(&b, 4096);
		n = read(fd, b.data + b.len, b.cap - b.len);
		if (n <= 0)
			break;
		b.len += (size_t)n;
	}
	close(fd);
	char *s = xstrndup(b.len ? (const char *)b.data : "", b.len);
	buf_free(&b);
	return s;
}

static char *task_path(const char *name, const char *ext)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s/tasks/%s.%s", etc, name, ext);
	return buf;
}

static bool exists(const char *name, const char *ext)
{
	return access(task_path(name, ext), F_OK) == 0;
}

static size_t count_tasks(void)
{
	char **names = task_list_names(etc);
	size_t n = 0;

	while (names != NULL && names[n] != NULL)
		n++;
	task_names_free(&names);
	return n;
}

/* Run an import of text; out_text and err_text get what it printed. */
static int import(const char *text, bool check, bool update)
{
	size_t ol, el;
	FILE *out, *err;
	int rc;

	free(out_text);
	free(err_text);
	write_file(csv_path, text, 0600);
	out = open_memstream(&out_text, &ol);
	err = open_memstream(&err_text, &el);
	struct csv_import_opts o = { .config_dir = etc, .file = csv_path, .check = check,
				     .update = update, .out = out, .err = err };
	rc = csv_import(&o);
	fclose(out);
	fclose(err);
	return rc;
}

static bool err_has(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool err_has(const char *fmt, ...)
{
	char want[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(want, sizeof(want), fmt, ap);
	va_end(ap);
	if (strstr(err_text, want) != NULL)
		return true;
	diag("stderr:\n%s", err_text);
	diag("expected: %s", want);
	return false;
}

static bool out_has(const char *want)
{
	if (strstr(out_text, want) != NULL)
		return true;
	diag("stdout:\n%s", out_text);
	diag("expected: %s", want);
	return false;
}

static struct task *load(const char *name)
{
	int errors = 0;

	return task_load(etc, name, NULL, &errors);
}

/* ---- task names -------------------------------------------------------- */

static void test_names(void)
{
	char *a = csv_import_task_name("john", "john@example.org");
	char *b = csv_import_task_name("a b", "x+y@example.org");
	char *c = csv_import_task_name("a_b", "x_y@example.org");
	char *d = csv_import_task_name("j\xc3\xbcrgen", "j\xc3\xbcrgen@example.org");
	char *e = csv_import_task_name(".hidden", "u");
	char long_user[300];

	ok(strcmp(a, "john_john_example.org") == 0, "john + john@example.org: %s", a);
	ok(task_name_valid(b) && strncmp(b, "a_b_x_y_example.org-", 20) == 0 && strlen(b) == 28,
	   "spaces and '+' become '_' with a hash suffix: %s", b);
	ok(task_name_valid(c) && strcmp(c, "a_b_x_y_example.org") == 0 && strcmp(b, c) != 0,
	   "different accounts keep different names: %s", c);
	ok(task_name_valid(d) && strncmp(d, "j_rgen_j_rgen_example.org-", 26) == 0,
	   "non-ASCII: one '_' per character, and a hash: %s", d);
	ok(task_name_valid(e) && e[0] == '_', "a leading '.' is replaced: %s", e);
	memset(long_user, 'u', sizeof(long_user) - 1);
	long_user[sizeof(long_user) - 1] = '\0';
	char *f = csv_import_task_name(long_user, "r@example.org");
	ok(task_name_valid(f) && strlen(f) == TASK_NAME_MAX, "a long name is cut, with a hash");
	char *g = csv_import_task_name("john", "john@example.org");
	ok(strcmp(a, g) == 0, "the same users give the same name");
	free(a); free(b); free(c); free(d); free(e); free(f); free(g);
}

/* ---- imports ----------------------------------------------------------- */

#define HEADER "localusername,remoteusername,remotepassword,remotehostname,remoteport,security\n"

static void test_check_then_create(void)
{
	/* BOM, CRLF, columns in another order, quoted passwords with a
	   comma, a doubled quote, UTF-8, and a blank line. */
	const char *text =
		"\xef\xbb\xbf" "security,remoteport,remotehostname,remotepassword,remoteusername,"
		"localusername\r\n"
		"ssl,993,imap.example.org,\"p,w\"\"d\xc3\xa4\xe2\x82\xac\",john@example.org,john\r\n"
		"\r\n"
		"tls,143,imap.example.org,\"  spaced  \",jane@example.org,jane\r\n"
		",143,127.0.0.1, unquoted ,bob,bob\r\n";

	ok(import(text, true, false) == 0, "--check of a valid file: 0");
	ok(out_has("john_john_example.org: ok (line 2): would create") &&
	   out_has("jane_jane_example.org: ok (line 4): would create") &&
	   out_has("bob_bob: ok (line 5)") && out_has("nothing was written"),
	   "--check says what it would create, with the line");
	ok(count_tasks() == 0 && !exists("john_john_example.org", "pwd"),
	   "--check writes nothing");

	ok(import(text, false, false) == 0, "the import: 0");
	ok(out_has("john_john_example.org: created (line 2)") && out_has("3 tasks created") &&
	   out_has("run imapsync-task-reload so that systemd knows the new tasks\n"),
	   "it says what it created, and the step after");
	char *pw = read_file(task_path("john_john_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "p,w\"d\xc3\xa4\xe2\x82\xac\n") == 0,
	   "the password file holds the password exactly (comma, quote, UTF-8), one line");
	free(pw);
	pw = read_file(task_path("jane_jane_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "  spaced  \n") == 0, "a quoted password keeps its spaces");
	free(pw);
	pw = read_file(task_path("bob_bob", "pwd"));
	ok(pw != NULL && strcmp(pw, "unquoted\n") == 0,
	   "an unquoted field loses the spaces around it");
	free(pw);
	struct stat st;
	ok(stat(task_path("john_john_example.org", "pwd"), &st) == 0 && (st.st_mode & 0777) == 0600,
	   "the password file is 0600");
	ok(stat(task_path("john_john_example.org", "ini"), &st) == 0 && (st.st_mode & 022) == 0,
	   "the task file is not writable by others");

	struct task *t = load("john_john_example.org");
	ok(t != NULL, "the task loads, password file included");
	ok(t != NULL && strcmp(t->local_user, "john") == 0 &&
	   strcmp(t->remote_user, "john@example.org") == 0 &&
	   strcmp(t->remote.host, "imap.example.org") == 0 && t->remote.port == 993 &&
	   t->remote.security == SECURITY_TLS, "ssl is TLS at once, on the port given");
	ok(t != NULL && t->folders == FOLDERS_ALL && t->manual && t->delete_mode == DELETE_NEVER,
	   "NethServer's defaults: all folders, manual, nothing deleted");
	task_free(&t);
	t = load("jane_jane_example.org");
	ok(t != NULL && t->remote.security == SECURITY_STARTTLS && t->remote.port == 143,
	   "tls is STARTTLS");
	task_free(&t);
	t = load("bob_bob");
	ok(t != NULL && t->remote.security == SECURITY_NONE, "an empty security is none");
	task_free(&t);

	/* The same file again: every row is a duplicate now. */
	ok(import(text, false, false) == EXIT_CONFIG, "importing it again: 78");
	ok(err_has("%s:2: remote account john@example.org on imap.example.org is already "
		   "imported into local user john by task john_john_example.org", csv_path) &&
	   err_has("--update replaces its password") && err_has("%s:5: ", csv_path) &&
	   err_has("nothing was written"),
	   "each row refused with FILE:LINE and why");
	ok(count_tasks() == 3, "nothing more was written");

	/* --update: new passwords; john moves to port 995 over STARTTLS. */
	const char *upd = HEADER
		"john,JOHN@example.org,new-secret,IMAP.example.org,995,tls\n"
		"jane,jane@example.org,\"other, secret\",imap.example.org,143,tls\n";
	char *before = read_file(task_path("jane_jane_example.org", "ini"));
	ok(import(upd, true, true) == 0 && out_has("john_john_example.org: ok (line 2): would "
						   "update: password, port 993 -> 995, "
						   "security tls -> starttls"),
	   "--check --update says what would change");
	pw = read_file(task_path("john_john_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "p,w\"d\xc3\xa4\xe2\x82\xac\n") == 0, "and changes nothing");
	free(pw);
	ok(import(upd, false, true) == 0 && out_has("john_john_example.org: updated (line 2)") &&
	   out_has("0 tasks created, 2 updated"), "--update: 0, two tasks updated");
	pw = read_file(task_path("john_john_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "new-secret\n") == 0, "the password file is replaced");
	free(pw);
	ok(stat(task_path("john_john_example.org", "pwd"), &st) == 0 && (st.st_mode & 0777) == 0600,
	   "still 0600");
	t = load("john_john_example.org");
	ok(t != NULL && t->remote.port == 995 && t->remote.security == SECURITY_STARTTLS &&
	   strcmp(t->remote.host, "imap.example.org") == 0,
	   "port and security are rewritten in the task file; the host stays");
	task_free(&t);
	char *after = read_file(task_path("jane_jane_example.org", "ini"));
	ok(before != NULL && after != NULL && strcmp(before, after) == 0,
	   "a task whose port and security did not change keeps its file as it is");
	free(before);
	free(after);
	pw = read_file(task_path("jane_jane_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "other, secret\n") == 0, "its password is replaced");
	free(pw);
	ok(count_tasks() == 3, "--update made no new task for an existing account");

	/* --update with a row of a new account creates it. */
	ok(import(HEADER "zoe,zoe@example.org,z,imap.example.org,993,ssl\n", false, true) == 0 &&
	   exists("zoe_zoe_example.org", "ini"), "--update creates the tasks that do not exist");
}

static void test_refusals(void)
{
	size_t before = count_tasks();

	ok(import("localusername,remoteusername,remotepassword,remotehostname,remoteport\n"
		  "a,b,c,d,1\n", false, false) == EXIT_CONFIG &&
	   err_has("%s:1: required column security is missing", csv_path),
	   "a missing required column is named, line 1");
	ok(import("localusername,remoteusername,remotepassword,remotehostname,remoteport,"
		  "security,colour\n", false, false) == EXIT_CONFIG &&
	   err_has("%s:1: unknown column \"colour\" (valid: localusername,", csv_path),
	   "an unknown column is named, with the valid ones");
	ok(import(HEADER "new1,new1@example.org,pw,imap.example.org,993,ssl\n"
		  "a,b,c\n"
		  "new2,new2@example.org,,imap.example.org,99999,starttls\n"
		  "new3,new3@example.org,pw,imap.example.org,993,tlss\n"
		  "new4,new4@example.org,pw,bad host,143,tls\n"
		  "new5,new5@example.org,pw,imap.example.org,143,tls\n"
		  "new5,new5@example.org,pw2,imap.example.org,993,ssl\n"
		  "new6*x,new6@example.org,pw,imap.example.org,143,tls\n"
		  "new7,new7@example.org,\"two\nlines\",imap.example.org,143,tls\n"
		  "new8,new8@example.org,pw,\"imap.example.org\" ,143,tls\n",
		  false, false) == EXIT_CONFIG, "a file with bad rows: 78");
	ok(err_has("%s:3: 3 fields, but the header has 6", csv_path), "a short row");
	ok(err_has("%s:4: remotepassword: missing value", csv_path) &&
	   err_has("%s:4: remoteport: not a port number: \"99999\"", csv_path),
	   "a missing password, a bad port: both, on the row's line");
	ok(err_has("%s:5: security: invalid value \"tlss\" (valid: empty for none, tls for "
		   "STARTTLS, ssl for TLS at once", csv_path), "a bad security, with the valid values");
	ok(err_has("%s:6: remotehostname: must not contain spaces", csv_path),
	   "task_load()'s own check, told as the CSV column");
	ok(err_has("%s:8: duplicates line 7: the same remote account", csv_path),
	   "a row that repeats an earlier one");
	ok(err_has("%s:9: localusername: must not contain the master separator '*'", csv_path),
	   "the master separator of imapsync-task.conf applies");
	ok(err_has("%s:10: remotepassword: the password must be one line", csv_path) &&
	   strstr(err_text, "lines") == NULL, "a password with a line break, not echoed");
	ok(err_has("%s:12: field 4: text after the closing quote", csv_path),
	   "a CSV syntax error, on its physical line");
	ok(strstr(err_text, "pw2") == NULL, "no password in any message");
	ok(count_tasks() == before && !exists("new1_new1_example.org", "pwd"),
	   "nothing written, not even the valid first row");

	ok(import("", false, false) == EXIT_CONFIG && err_has("no header line"),
	   "an empty file: 78");
	ok(import(HEADER "\"unterminated,x\n", false, false) == EXIT_CONFIG &&
	   err_has("%s:2: field 1: the quote opened here is never closed", csv_path),
	   "an unterminated quote names the line it opened on");

	/* The name of an existing task for another account. */
	write_file(task_path("carl_carl_example.org", "ini"),
		   "[task]\nlocal_user = carl\ninterval = manual\n"
		   "[remote]\nhost = old.example.org\nuser = carl@example.org\n", 0644);
	write_file(task_path("carl_carl_example.org", "pwd"), "x\n", 0600);
	ok(import(HEADER "carl,carl@example.org,pw,new.example.org,993,ssl\n", false, false) ==
	   EXIT_CONFIG && err_has("%s:2: task carl_carl_example.org already exists", csv_path) &&
	   err_has("for another account: remote carl@example.org on old.example.org"),
	   "a task of the same name for another host is refused");
	ok(import(HEADER "carl,carl@example.org,pw,new.example.org,993,ssl\n", false, true) ==
	   EXIT_CONFIG && err_has("a different remote host or user is a new account"),
	   "--update does not move a task to another host");
	/* A stray password file. */
	write_file(task_path("dora_dora_example.org", "pwd"), "old\n", 0600);
	ok(import(HEADER "dora,dora@example.org,pw,imap.example.org,993,ssl\n", false, false) ==
	   EXIT_CONFIG && err_has("dora_dora_example.org.pwd already exists, without "
				  "dora_dora_example.org.ini"),
	   "a password file without its task is not overwritten");
	char *pw = read_file(task_path("dora_dora_example.org", "pwd"));
	ok(pw != NULL && strcmp(pw, "old\n") == 0, "and stays as it was");
	free(pw);
}

static void test_optional_columns(void)
{
	const char *text =
		"localusername,remoteusername,remotepassword,remotehostname,remoteport,security,"
		"folders,exclude,delete,delete_older_than_days,interval\n"
		"o1,o1@example.org,pw,imap.example.org,993,ssl,inbox,,after-sync,,15min\n"
		"o2,o2@example.org,pw,imap.example.org,993,ssl,,\"^Trash$\n^Junk(/|$)\r\n"
		"^C#;x$\",,30,\n"
		"o3,o3@example.org,pw,imap.example.org,993,ssl,ALL,,,,manual\n";
	struct task *t;

	ok(import(text, false, false) == 0, "optional columns: 0");
	ok(out_has("run imapsync-task-reload so that systemd knows the new tasks and starts "
		   "their timers"), "new tasks, one with an interval: imapsync-task-reload said");
	t = load("o1_o1_example.org");
	ok(t != NULL && t->folders == FOLDERS_INBOX && t->delete_mode == DELETE_AFTER_SYNC &&
	   !t->manual && t->interval_sec == 900, "folders, delete and interval");
	task_free(&t);
	t = load("o2_o2_example.org");
	ok(t != NULL && t->folders == FOLDERS_ALL_EXCEPT && t->exclude != NULL &&
	   strcmp(t->exclude[0], "^Trash$") == 0 && strcmp(t->exclude[1], "^Junk(/|$)") == 0 &&
	   strcmp(t->exclude[2], "^C#;x$") == 0 && t->exclude[3] == NULL,
	   "exclude: one pattern per line ('#' and ';' kept), and alone it means all-except");
	ok(t != NULL && t->delete_mode == DELETE_OLDER_THAN && t->delete_older_than_days == 30,
	   "days alone mean delete = older-than");
	task_free(&t);
	t = load("o3_o3_example.org");
	ok(t != NULL && t->folders == FOLDERS_ALL, "enum values in any case");
	task_free(&t);

	ok(import("localusername,remoteusername,remotepassword,remotehostname,remoteport,security,"
		  "folders,exclude,delete_older_than_days,interval\n"
		  "p1,p1@example.org,pw,imap.example.org,993,ssl,all,^Trash$,,\n"
		  "p2,p2@example.org,pw,imap.example.org,993,ssl,,(unclosed,,\n"
		  "p3,p3@example.org,pw,imap.example.org,993,ssl,,,0,\n"
		  "p4,p4@example.org,pw,imap.example.org,993,ssl,,,,5s\n"
		  "p5,p5@example.org,pw,imap.example.org,993,ssl,some,,,\n",
		  false, false) == EXIT_CONFIG, "bad optional values: 78");
	ok(err_has("%s:2: exclude: only valid with folders = all-except", csv_path),
	   "exclude with folders = all");
	ok(err_has("%s:3: exclude: invalid regular expression", csv_path), "a broken pattern");
	ok(err_has("%s:4: delete_older_than_days: out of range: 0", csv_path), "0 days");
	ok(err_has("%s:5: interval: too short", csv_path), "an interval under a minute");
	ok(err_has("%s:6: folders: invalid value \"some\" (valid: inbox, all, all-except)",
		   csv_path), "a bad folder mode");
}

int main(void)
{
	if (mkdtemp(root) == NULL) {
		perror(root);
		return 99;
	}
	etc = xasprintf("%s/etc", root);
	csv_path = xasprintf("%s/users.csv", root);
	mkdir(etc, 0755);
	char *conf = xasprintf("%s/imapsync-task.conf", etc);
	write_file(conf, "[local]\nhost = 127.0.0.1\n", 0644);
	free(conf);
	/* no tasks/ yet: the import makes it */

	test_names();
	test_check_then_create();
	test_refusals();
	test_optional_columns();

	char *cmd = xasprintf("rm -rf '%s'", root);
	if (system(cmd) != 0)
		diag("could not remove %s", root);
	free(cmd);
	free(out_text);
	free(err_text);
	free(etc);
	free(csv_path);
	return tap_done();
}
