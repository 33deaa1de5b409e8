/* csv_import.c - "imapsync-task import-csv" (see csv_import.h).
 *
 * Three passes: read and check every row (the values, the task file it
 * makes as task_load() reads it, duplicates); then, only when no row
 * failed and not --check, write.  A new task gets its password file
 * first (mode 0600) and its task file second, each written under a
 * temporary name and linked into place, so that no task file ever
 * stands without its password and nothing existing is overwritten.  An
 * update replaces the password file (and rewrites port and security in
 * the task file when they changed) by rename.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv.h"
#include "csv_import.h"
#include "exitcode.h"
#include "task.h"
#include "util.h"

#define CSV_MAX_SIZE (16 * 1024 * 1024)
#define PASSWORD_MAX 4096       /* what secret.c reads */

enum col {
	C_LOCAL, C_USER, C_PASSWORD, C_HOST, C_PORT, C_SECURITY,
	C_FOLDERS, C_EXCLUDE, C_DELETE, C_DAYS, C_INTERVAL, C_N
};

static const struct column {
	const char *name;
	bool required;          /* in the header; a value too, but security */
	const char *ini_key;    /* the task file key it becomes */
} columns[C_N] = {
	[C_LOCAL] = { "localusername", true, "local_user" },
	[C_USER] = { "remoteusername", true, "user" },
	[C_PASSWORD] = { "remotepassword", true, "password_file" },
	[C_HOST] = { "remotehostname", true, "host" },
	[C_PORT] = { "remoteport", true, "port" },
	[C_SECURITY] = { "security", true, "security" },
	[C_FOLDERS] = { "folders", false, "folders" },
	[C_EXCLUDE] = { "exclude", false, "exclude" },
	[C_DELETE] = { "delete", false, "delete" },
	[C_DAYS] = { "delete_older_than_days", false, "delete_older_than_days" },
	[C_INTERVAL] = { "interval", false, "interval" },
};

/* A task already in tasks/. */
struct existing {
	char *name;
	struct task *t;         /* NULL: the file does not load */
};

struct row {
	unsigned line;
	char *v[C_N];           /* NULL: column absent or value empty */
	char *name;             /* NULL until the values passed */
	char *key;              /* the account: local, remote user, host */
	enum security security;
	uint16_t port;
	const struct existing *target;  /* an update: the task it changes */
	char *ini;              /* a new task: its file */
};

struct import {
	const struct csv_import_opts *o;
	FILE *out, *err;
	const char *label;      /* the file as messages name it */
	char *tasks_dir;
	struct existing *ex;
	size_t n_ex;
	struct row *rows;
	size_t n_rows;
	int col_of[C_N];        /* field index of each column, -1: absent */
	size_t n_header;
	unsigned errors;
	char *scratch;          /* config dir where task_load() checks rows */
	char *scratch_ini;      /* the file it checks now */
	unsigned cur_line;
};

static void __attribute__((format(printf, 4, 5)))
row_error(struct import *im, unsigned line, const char *column, const char *fmt, ...)
{
	va_list ap;

	fprintf(im->err, "%s:%u: ", im->label, line);
	if (column != NULL)
		fprintf(im->err, "%s: ", column);
	va_start(ap, fmt);
	vfprintf(im->err, fmt, ap);
	va_end(ap);
	fputc('\n', im->err);
	im->errors++;
}

/* A value for a message: quoted, control bytes escaped (never used
   for a password). */
static char *shown(const char *s)
{
	struct buf b = { 0 };
	char *ret;

	buf_append(&b, "\"", 1);
	for (size_t i = 0; s[i] != '\0' && i < 80; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			buf_appendf(&b, "\\x%02x", c);
		else
			buf_append(&b, &s[i], 1);
	}
	buf_append(&b, strlen(s) > 80 ? "...\"" : "\"", strlen(s) > 80 ? 4 : 1);
	ret = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ret;
}

static char *lowercase_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static char *account_key(const char *local, const char *user, const char *host)
{
	char *k = xasprintf("%s\n%s\n%s", local, user, host);
	char *l = lowercase_dup(k);

	free(k);
	return l;
}

/* ---------------------------------------------------------------------
 * The task name.
 */

static bool name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static void append_clean(struct buf *b, const char *s, bool *lossy)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = 1;

		if (name_char(p[i])) {
			buf_append(b, &p[i], 1);
		} else {
			if (p[i] != '@')
				*lossy = true;
			if (p[i] >= 0x80 && (n = utf8_decode(p + i, len - i, &cp)) == 0)
				n = 1;
			/* one '_' for a run of replaced characters */
			if (b->len == 0 || b->data[b->len - 1] != '_' || p[i] == '@')
				buf_append(b, "_", 1);
		}
		i += n;
	}
}

char *csv_import_task_name(const char *local_user, const char *remote_user)
{
	struct buf b = { 0 };
	bool lossy = false;
	char *name;

	append_clean(&b, local_user, &lossy);
	buf_append(&b, "_", 1);
	append_clean(&b, remote_user, &lossy);
	if (b.data[0] == '.') {
		b.data[0] = '_';
		lossy = true;
	}
	if (lossy || b.len > TASK_NAME_MAX) {
		uint64_t h = fnv1a64(FNV1A64_INIT, local_user, strlen(local_user) + 1);

		h = fnv1a64(h, remote_user, strlen(remote_user));
		if (b.len > TASK_NAME_MAX - 9)
			b.len = TASK_NAME_MAX - 9;
		buf_appendf(&b, "-%08x", (unsigned)(uint32_t)(h ^ (h >> 32)));
	}
	name = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return name;
}

/* ---------------------------------------------------------------------
 * Reading the file.
 */

static bool read_all(struct import *im, struct buf *b)
{
	int fd = 0;
	struct stat st;

	if (strcmp(im->o->file, "-") != 0) {
		fd = open(im->o->file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			fprintf(im->err, "%s: cannot open: %s\n", im->label, strerror(errno));
			return false;
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 044) != 0)
			fprintf(im->err, "%s: warning: the file holds passwords and others may read "
				"it (mode %04o): delete it after the import\n", im->label,
				(unsigned)(st.st_mode & 07777));
	}
	for (;;) {
		ssize_t n;

		buf_reserve(b, 65536);
		n = read(fd, b->data + b->len, b->cap - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(im->err, "%s: cannot read: %s\n", im->label, strerror(errno));
			break;
		}
		if (n == 0) {
			if (fd != 0)
				close(fd);
			return true;
		}
		b->len += (size_t)n;
		if (b->len > CSV_MAX_SIZE) {
			fprintf(im->err, "%s: larger than %d MiB\n", im->label,
				CSV_MAX_SIZE / 1024 / 1024);
			break;
		}
	}
	if (fd != 0)
		close(fd);
	return false;
}

static bool parse_header(struct import *im, const struct csv_record *rec)
{
	bool ok = true;

	for (int c = 0; c < C_N; c++)
		im->col_of[c] = -1;
	im->n_header = rec->n;
	for (size_t i = 0; i < rec->n; i++) {
		char *name = lowercase_dup(rec->fields[i]);
		char *s = name + strspn(name, " \t");
		int c;

		s[strcspn(s, " \t")] = '\0';
		for (c = 0; c < C_N && strcmp(columns[c].name, s) != 0; c++)
			;
		if (c == C_N) {
			const char *all[C_N + 1];
			char *list, *q = shown(rec->fields[i]);

			for (int k = 0; k < C_N; k++)
				all[k] = columns[k].name;
			all[C_N] = NULL;
			list = str_join(all, ", ");
			row_error(im, rec->line, NULL, "unknown column %s (valid: %s)", q, list);
			free(list);
			free(q);
			ok = false;
		} else if (im->col_of[c] >= 0) {
			row_error(im, rec->line, NULL, "column %s appears twice", columns[c].name);
			ok = false;
		} else {
			im->col_of[c] = (int)i;
		}
		free(name);
	}
	for (int c = 0; c < C_N; c++) {
		if (columns[c].required && im->col_of[c] < 0) {
			row_error(im, rec->line, NULL, "required column %s is missing (the header "
				  "needs localusername, remoteusername, remotepassword, "
				  "remotehostname, remoteport and security)", columns[c].name);
			ok = false;
		}
	}
	return ok;
}

/* ---------------------------------------------------------------------
 * One row: its values.
 */

static void row_free(struct row *r)
{
	for (int c = 0; c < C_N; c++) {
		if (r->v[c] != NULL) {
			explicit_wipe(r->v[c], strlen(r->v[c]));
			free(r->v[c]);
		}
	}
	free(r->name);
	free(r->key);
	free(r->ini);
}

/* The values of rec into r: unquoted ones without the spaces and tabs
   around them, quoted ones exactly as written. */
static void row_values(struct import *im, const struct csv_record *rec, struct row *r)
{
	for (int c = 0; c < C_N; c++) {
		const char *f;
		size_t n;

		if (im->col_of[c] < 0)
			continue;
		f = rec->fields[im->col_of[c]];
		n = strlen(f);
		if (!rec->quoted[im->col_of[c]]) {
			f += strspn(f, " \t");
			n = strlen(f);
			while (n > 0 && (f[n - 1] == ' ' || f[n - 1] == '\t'))
				n--;
		}
		if (n > 0)
			r->v[c] = xstrndup(f, n);
	}
}

static bool map_security(const char *v, enum security *sec_r)
{
	/* NethServer's names: empty, tls (STARTTLS), ssl (TLS at once);
	   starttls and none as well, which cannot be mistaken. */
	if (v == NULL || strcasecmp(v, "none") == 0)
		*sec_r = SECURITY_NONE;
	else if (strcasecmp(v, "tls") == 0 || strcasecmp(v, "starttls") == 0)
		*sec_r = SECURITY_STARTTLS;
	else if (strcasecmp(v, "ssl") == 0)
		*sec_r = SECURITY_TLS;
	else
		return false;
	return true;
}

/* The checks of the row's own values (not yet as a task file). */
static bool row_check_values(struct import *im, struct row *r)
{
	unsigned before = im->errors;
	uint32_t port;

	for (int c = 0; c < C_N; c++) {
		if (c != C_SECURITY && columns[c].required && r->v[c] == NULL)
			row_error(im, r->line, columns[c].name, "missing value");
	}
	if (r->v[C_PASSWORD] != NULL) {
		if (strpbrk(r->v[C_PASSWORD], "\r\n") != NULL)
			row_error(im, r->line, columns[C_PASSWORD].name,
				  "the password must be one line (it holds a line break)");
		else if (strlen(r->v[C_PASSWORD]) > PASSWORD_MAX)
			row_error(im, r->line, columns[C_PASSWORD].name,
				  "the password is longer than %d bytes", PASSWORD_MAX);
	}
	for (int c = 0; c < C_N; c++) {
		/* one pattern per line in exclude; elsewhere a line break
		   would end the task file's line */
		if (c != C_PASSWORD && c != C_EXCLUDE && r->v[c] != NULL &&
		    strpbrk(r->v[c], "\r\n") != NULL)
			row_error(im, r->line, columns[c].name, "must be one line");
	}
	if (r->v[C_PORT] != NULL) {
		if (!str_to_u32(r->v[C_PORT], &port) || port < 1 || port > 65535) {
			char *q = shown(r->v[C_PORT]);

			row_error(im, r->line, columns[C_PORT].name,
				  "not a port number: %s (1-65535)", q);
			free(q);
		} else {
			r->port = (uint16_t)port;
		}
	}
	if (!map_security(r->v[C_SECURITY], &r->security)) {
		char *q = shown(r->v[C_SECURITY]);

		row_error(im, r->line, columns[C_SECURITY].name,
			  "invalid value %s (valid: empty for none, tls for STARTTLS, "
			  "ssl for TLS at once; also starttls, none)", q);
		free(q);
	}
	return im->errors == before;
}

/* ---------------------------------------------------------------------
 * One row as a task file.
 */

/* "key = value" with the value quoted so that the file reads it back
   as it is (';', '#', spaces); false if it cannot be. */
static bool ini_put(struct import *im, struct row *r, struct buf *b, int c,
		    const char *value)
{
	const char *key = columns[c].ini_key;

	if (strchr(value, '"') == NULL)
		buf_appendf(b, "%s = \"%s\"\n", key, value);
	else if (strchr(value, '\'') == NULL)
		buf_appendf(b, "%s = '%s'\n", key, value);
	else {
		row_error(im, r->line, columns[c].name,
			  "holds both ' and \", which no value of a task file can");
		return false;
	}
	return true;
}

static bool row_make_ini(struct import *im, struct row *r)
{
	struct buf b = { 0 };
	const char *folders = r->v[C_FOLDERS], *delete = r->v[C_DELETE];
	bool ok = true, any_exclude = false;

	buf_appendf(&b, "# Written by imapsync-task import-csv.\n[task]\n");
	ok &= ini_put(im, r, &b, C_LOCAL, r->v[C_LOCAL]);
	if (r->v[C_EXCLUDE] != NULL) {
		char *copy = xstrdup(r->v[C_EXCLUDE]), *save = NULL;

		for (char *p = strtok_r(copy, "\r\n", &save); p != NULL;
		     p = strtok_r(NULL, "\r\n", &save)) {
			if (p[strspn(p, " \t")] != '\0')
				any_exclude = true;
		}
		free(copy);
	}
	/* exclude patterns alone mean all-except */
	if (folders == NULL)
		folders = any_exclude ? "all-except" : "all";
	ok &= ini_put(im, r, &b, C_FOLDERS, folders);
	if (any_exclude) {
		char *copy = xstrdup(r->v[C_EXCLUDE]), *save = NULL;

		for (char *p = strtok_r(copy, "\r\n", &save); p != NULL;
		     p = strtok_r(NULL, "\r\n", &save)) {
			if (p[strspn(p, " \t")] != '\0')
				ok &= ini_put(im, r, &b, C_EXCLUDE, p);
		}
		free(copy);
	}
	/* days alone mean older-than */
	if (delete == NULL && r->v[C_DAYS] != NULL)
		delete = "older-than";
	if (delete != NULL)
		ok &= ini_put(im, r, &b, C_DELETE, delete);
	if (r->v[C_DAYS] != NULL)
		ok &= ini_put(im, r, &b, C_DAYS, r->v[C_DAYS]);
	ok &= ini_put(im, r, &b, C_INTERVAL, r->v[C_INTERVAL] ? r->v[C_INTERVAL] : "manual");
	buf_appendf(&b, "\n[remote]\n");
	ok &= ini_put(im, r, &b, C_HOST, r->v[C_HOST]);
	buf_appendf(&b, "port = %u\nsecurity = %s\n", r->port, security_name(r->security));
	ok &= ini_put(im, r, &b, C_USER, r->v[C_USER]);
	if (ok)
		r->ini = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ok;
}

/* task_load()'s errors about the scratch copy of a row's task file,
   told as errors of the row's CSV line and column. */
static void scratch_error(void *ctx, const char *text)
{
	struct import *im = ctx;
	size_t plen = strlen(im->scratch_ini);
	const char *p = text;

	if (strncmp(text, im->scratch_ini, plen) != 0) {
		row_error(im, im->cur_line, NULL, "%s", text);
		return;
	}
	p += plen;
	if (*p == ':') {
		p++;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p == ':')
			p++;
	}
	while (*p == ' ')
		p++;
	for (int c = 0; c < C_N; c++) {
		size_t klen = strlen(columns[c].ini_key);

		if (strncmp(p, columns[c].ini_key, klen) == 0 && p[klen] == ':') {
			row_error(im, im->cur_line, columns[c].name, "%s", p + klen + 2);
			return;
		}
	}
	row_error(im, im->cur_line, NULL, "%s", p);
}

/* The scratch configuration directory: tasks/ for the rows' files and
   the real imapsync-task.conf (its master separator matters). */
static bool scratch_open(struct import *im)
{
	const char *tmp = getenv("TMPDIR");
	char *conf, *link_path, *tasks, *abs = NULL, cwd[4096];

	im->scratch = xasprintf("%s/imapsync-task-import.XXXXXX",
				tmp != NULL && *tmp == '/' ? tmp : "/tmp");
	if (mkdtemp(im->scratch) == NULL) {
		fprintf(im->err, "%s: cannot create a directory to check the rows: %s\n",
			im->scratch, strerror(errno));
		free(im->scratch);
		im->scratch = NULL;
		return false;
	}
	tasks = xasprintf("%s/tasks", im->scratch);
	(void)mkdir(tasks, 0700);
	free(tasks);
	if (im->o->config_dir[0] != '/' && getcwd(cwd, sizeof(cwd)) != NULL)
		abs = xasprintf("%s/%s", cwd, im->o->config_dir);
	conf = xasprintf("%s/imapsync-task.conf", abs != NULL ? abs : im->o->config_dir);
	link_path = xasprintf("%s/imapsync-task.conf", im->scratch);
	/* Without it, every row fails validation below and says why. */
	if (symlink(conf, link_path) != 0)
		fprintf(stderr, "imapsync-task: import-csv: cannot link %s: %s\n", link_path,
			strerror(errno));
	free(conf);
	free(link_path);
	free(abs);
	return true;
}

static void scratch_close(struct import *im)
{
	char *p;

	if (im->scratch == NULL)
		return;
	p = xasprintf("%s/imapsync-task.conf", im->scratch);
	(void)unlink(p);
	free(p);
	p = xasprintf("%s/tasks", im->scratch);
	(void)rmdir(p);
	free(p);
	(void)rmdir(im->scratch);
	free(im->scratch);
	im->scratch = NULL;
}

/* Load the row's task file as every task is loaded, from the scratch
   directory (the password is not written there: it is checked by
   row_check_values, the file exists only later). */
static bool row_check_ini(struct import *im, struct row *r)
{
	unsigned before = im->errors;
	struct task *t;
	int fd;

	im->scratch_ini = xasprintf("%s/tasks/%s.ini", im->scratch, r->name);
	im->cur_line = r->line;
	fd = open(im->scratch_ini, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_full(fd, r->ini, strlen(r->ini)) < 0) {
		row_error(im, r->line, NULL, "cannot check the row: %s: %s", im->scratch_ini,
			  strerror(errno));
	} else {
		t = task_load_with(im->scratch, r->name, TASK_LOAD_NO_PASSWORD_CHECK,
				   scratch_error, im);
		if (t == NULL && im->errors == before)
			row_error(im, r->line, NULL, "the task file it makes does not load");
		task_free(&t);
	}
	if (fd >= 0)
		close(fd);
	(void)unlink(im->scratch_ini);
	free(im->scratch_ini);
	im->scratch_ini = NULL;
	return im->errors == before;
}

/* ---------------------------------------------------------------------
 * Duplicates: of an earlier row, of an existing task.
 */

static void load_existing(struct import *im)
{
	char **names = task_list_names(im->o->config_dir);

	if (names == NULL)
		return;         /* no tasks/ yet: made when writing */
	for (size_t i = 0; names[i] != NULL; i++) {
		struct existing *e;
		int errors = 0;

		im->ex = xreallocarray(im->ex, im->n_ex + 1, sizeof(*im->ex));
		e = &im->ex[im->n_ex++];
		e->name = xstrdup(names[i]);
		e->t = task_load_with(im->o->config_dir, names[i], TASK_LOAD_NO_PASSWORD_CHECK,
				      NULL, &errors);
		if (e->t == NULL)
			fprintf(im->err, "%s/%s.ini: warning: does not load (imapsync-task check "
				"%s tells why); rows are not compared with its account\n",
				im->tasks_dir, e->name, e->name);
	}
	task_names_free(&names);
}

static bool row_check_duplicates(struct import *im, struct row *r, size_t index)
{
	const struct existing *by_key = NULL, *by_name = NULL;

	for (size_t i = 0; i < index; i++) {
		const struct row *o = &im->rows[i];

		if (o->name == NULL)
			continue;
		if (strcmp(o->key, r->key) == 0) {
			row_error(im, r->line, NULL, "duplicates line %u: the same remote account "
				  "(%s on %s) into the same local user %s", o->line, r->v[C_USER],
				  r->v[C_HOST], r->v[C_LOCAL]);
			return false;
		}
		if (strcmp(o->name, r->name) == 0) {
			row_error(im, r->line, NULL, "duplicates line %u: the same task name %s",
				  o->line, r->name);
			return false;
		}
	}
	for (size_t i = 0; i < im->n_ex; i++) {
		const struct existing *e = &im->ex[i];

		if (e->t != NULL && by_key == NULL) {
			char *k = account_key(e->t->local_user, e->t->remote_user, e->t->remote.host);

			if (strcmp(k, r->key) == 0)
				by_key = e;
			free(k);
		}
		if (strcmp(e->name, r->name) == 0)
			by_name = e;
	}
	if (by_key != NULL && im->o->update) {
		r->target = by_key;
		return true;
	}
	if (by_key != NULL) {
		row_error(im, r->line, NULL, "remote account %s on %s is already imported into "
			  "local user %s by task %s (%s/%s.ini); --update replaces its password",
			  r->v[C_USER], r->v[C_HOST], by_key->t->local_user, by_key->name,
			  im->tasks_dir, by_key->name);
		return false;
	}
	if (by_name != NULL && by_name->t == NULL) {
		row_error(im, r->line, NULL, "task %s already exists (%s/%s.ini, which does not "
			  "load)", r->name, im->tasks_dir, r->name);
		return false;
	}
	if (by_name != NULL) {
		row_error(im, r->line, NULL, "task %s already exists (%s/%s.ini) for another "
			  "account: remote %s on %s into local user %s%s", r->name, im->tasks_dir,
			  r->name, by_name->t->remote_user, by_name->t->remote.host,
			  by_name->t->local_user, im->o->update ? "; a different remote host or "
			  "user is a new account, its state is bound to the old one: remove the "
			  "task first" : "");
		return false;
	}
	char *pwd = xasprintf("%s/%s.pwd", im->tasks_dir, r->name);
	bool stray = access(pwd, F_OK) == 0;
	if (stray)
		row_error(im, r->line, NULL, "%s already exists, without %s.ini: remove it first",
			  pwd, r->name);
	free(pwd);
	return !stray;
}

static void check_row(struct import *im, struct row *r, size_t index)
{
	if (!row_check_values(im, r))
		return;
	r->name = csv_import_task_name(r->v[C_LOCAL], r->v[C_USER]);
	r->key = account_key(r->v[C_LOCAL], r->v[C_USER], r->v[C_HOST]);
	if (!row_make_ini(im, r) || !row_check_ini(im, r)) {
		free(r->name);
		r->name = NULL;
		return;
	}
	if (!row_check_duplicates(im, r, index)) {
		/* still a name for the later rows' duplicate checks */
		return;
	}
}

/* ---------------------------------------------------------------------
 * Writing.
 */

/* Write text to a new temporary file next to path, mode mode, synced.
   Returns its name (the caller frees), NULL with errno set. */
static char *write_temp(const char *path, const char *text, size_t len, mode_t mode)
{
	const char *slash = strrchr(path, '/');
	char *tmp = slash != NULL
		? xasprintf("%.*s/.import-csv.XXXXXX", (int)(slash - path), path)
		: xstrdup(".import-csv.XXXXXX");
	int fd = mkstemp(tmp), saved;

	if (fd < 0)
		goto fail;
	if (fchmod(fd, mode) < 0 || write_full(fd, text, len) < 0 || fsync(fd) < 0) {
		saved = errno;
		close(fd);
		(void)unlink(tmp);
		errno = saved;
		goto fail;
	}
	if (close(fd) < 0) {
		saved = errno;
		(void)unlink(tmp);
		errno = saved;
		goto fail;
	}
	return tmp;
fail:
	saved = errno;
	free(tmp);
	errno = saved;
	return NULL;
}

/* A new file at path: never over an existing one. */
static bool write_new(const char *path, const char *text, size_t len, mode_t mode)
{
	char *tmp = write_temp(path, text, len, mode);
	int saved;

	if (tmp == NULL)
		return false;
	bool ok = link(tmp, path) == 0;
	saved = errno;
	(void)unlink(tmp);
	free(tmp);
	errno = saved;
	return ok;
}

static bool write_replace(const char *path, const char *text, size_t len, mode_t mode)
{
	char *tmp = write_temp(path, text, len, mode);
	int saved;

	if (tmp == NULL)
		return false;
	bool ok = rename(tmp, path) == 0;
	saved = errno;
	if (!ok)
		(void)unlink(tmp);
	free(tmp);
	errno = saved;
	return ok;
}

/* The task file text with port and security of [remote] set (a value
   of 0 / NULL leaves that key alone); other lines are kept as they are. */
static char *rewrite_remote(const char *text, uint16_t port, const char *security)
{
	struct buf b = { 0 };
	const char *p = text;
	bool in_remote = false, done_port = port == 0, done_sec = security == NULL;
	char *ret;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
		char *line = xstrndup(p, len), *s = line;
		const char *eol = len > 1 && line[len - 2] == '\r' ? "\r\n" : "\n";

		if (p == text && strncmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;
		s += strspn(s, " \t");
		if (*s == '[') {
			bool leaving = in_remote;

			in_remote = strncasecmp(s + 1 + strspn(s + 1, " \t"), "remote", 6) == 0;
			if (leaving) {
				/* keys [remote] lacked go at its end */
				if (!done_port)
					buf_appendf(&b, "port = %u%s", port, eol);
				if (!done_sec)
					buf_appendf(&b, "security = %s%s", security, eol);
				done_port = done_sec = true;
			}
		}
		size_t klen = strcspn(s, " \t=");
		bool is_port = in_remote && klen == 4 && strncasecmp(s, "port", 4) == 0 &&
			s[klen + strspn(s + klen, " \t")] == '=';
		bool is_sec = in_remote && klen == 8 && strncasecmp(s, "security", 8) == 0 &&
			s[klen + strspn(s + klen, " \t")] == '=';
		if (is_port && port != 0) {
			buf_appendf(&b, "port = %u%s", port, eol);
			done_port = true;
		} else if (is_sec && security != NULL) {
			buf_appendf(&b, "security = %s%s", security, eol);
			done_sec = true;
		} else {
			buf_append(&b, p, len);
			if (nl == NULL && in_remote && (!done_port || !done_sec))
				buf_append(&b, "\n", 1);
		}
		free(line);
		p += len;
	}
	if (in_remote && !done_port)
		buf_appendf(&b, "port = %u\n", port);
	if (in_remote && !done_sec)
		buf_appendf(&b, "security = %s\n", security);
	ret = xstrndup(b.len ? (const char *)b.data : "", b.len);
	buf_free(&b);
	return ret;
}

static bool read_text(const char *path, char **text_r, mode_t *mode_r)
{
	struct buf b = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0)
		goto fail;
	for (;;) {
		buf_reserve(&b, 4096);
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		b.len += (size_t)n;
	}
	close(fd);
	*text_r = xstrndup(b.len ? (const char *)b.data : "", b.len);
	*mode_r = st.st_mode & 07777;
	buf_free(&b);
	return true;
fail:;
	int saved = errno;
	close(fd);
	buf_free(&b);
	errno = saved;
	return false;
}

static char *password_text(const struct row *r, size_t *len_r)
{
	char *s = xasprintf("%s\n", r->v[C_PASSWORD]);

	*len_r = strlen(s);
	return s;
}

static void wipe_free(char *s, size_t len)
{
	explicit_wipe(s, len);
	free(s);
}

/* An update: the password file replaced, port and security rewritten
   when they changed (with dry, only said). */
static int write_update(struct import *im, struct row *r, bool dry)
{
	const struct task *t = r->target->t;
	bool port_changed = t->remote.port != r->port;
	bool sec_changed = t->remote.security != r->security;
	char what[200] = "";
	size_t len;

	if (port_changed)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ", port %u -> %u",
			 t->remote.port, r->port);
	if (sec_changed)
		snprintf(what + strlen(what), sizeof(what) - strlen(what), ", security %s -> %s",
			 security_name(t->remote.security), security_name(r->security));
	if (dry) {
		fprintf(im->out, "%s: ok (line %u): would update: password%s\n", t->name, r->line,
			what);
		return 0;
	}
	char *pw = password_text(r, &len);
	bool ok = write_replace(t->password_file, pw, len, 0600);
	wipe_free(pw, len);
	if (!ok) {
		fprintf(im->err, "%s: cannot write: %s\n", t->password_file, strerror(errno));
		return EXIT_IOERR;
	}
	if (port_changed || sec_changed) {
		char *text, *new_text;
		mode_t mode;

		if (!read_text(t->path, &text, &mode)) {
			fprintf(im->err, "%s: cannot read: %s (its password was replaced)\n",
				t->path, strerror(errno));
			return EXIT_IOERR;
		}
		new_text = rewrite_remote(text, port_changed ? r->port : 0,
					  sec_changed ? security_name(r->security) : NULL);
		ok = write_replace(t->path, new_text, strlen(new_text), mode & 0644);
		free(text);
		free(new_text);
		if (!ok) {
			fprintf(im->err, "%s: cannot write: %s (its password was replaced)\n",
				t->path, strerror(errno));
			return EXIT_IOERR;
		}
	}
	fprintf(im->out, "%s: updated (line %u): password%s\n", t->name, r->line, what);
	return 0;
}

static int write_new_task(struct import *im, struct row *r, bool dry)
{
	char *ini = xasprintf("%s/%s.ini", im->tasks_dir, r->name);
	char *pwd = xasprintf("%s/%s.pwd", im->tasks_dir, r->name);
	const char *interval = r->v[C_INTERVAL] ? r->v[C_INTERVAL] : "manual";
	char *desc = xasprintf("remote %s on %s:%u (%s) -> local %s, interval %s",
			       r->v[C_USER], r->v[C_HOST], r->port, security_name(r->security),
			       r->v[C_LOCAL], interval);
	int rc = 0;
	size_t len;

	if (dry) {
		fprintf(im->out, "%s: ok (line %u): would create: %s\n", r->name, r->line, desc);
		goto out;
	}
	char *pw = password_text(r, &len);
	bool ok = write_new(pwd, pw, len, 0600);
	wipe_free(pw, len);
	if (!ok) {
		fprintf(im->err, "%s: cannot write: %s\n", pwd, strerror(errno));
		rc = EXIT_IOERR;
		goto out;
	}
	if (!write_new(ini, r->ini, strlen(r->ini), 0644)) {
		fprintf(im->err, "%s: cannot write: %s\n", ini, strerror(errno));
		(void)unlink(pwd);
		rc = EXIT_IOERR;
		goto out;
	}
	fprintf(im->out, "%s: created (line %u): %s\n", r->name, r->line, desc);
out:
	free(desc);
	free(ini);
	free(pwd);
	return rc;
}

static int write_all(struct import *im, unsigned *created_r, unsigned *updated_r,
		     bool *timers_r)
{
	bool dry = im->o->check;
	int rc = 0;

	if (!dry && mkdir(im->tasks_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(im->err, "%s: cannot create: %s\n", im->tasks_dir, strerror(errno));
		return EXIT_IOERR;
	}
	for (size_t i = 0; i < im->n_rows && rc == 0; i++) {
		struct row *r = &im->rows[i];

		if (r->target != NULL) {
			rc = write_update(im, r, dry);
			*updated_r += rc == 0;
		} else {
			rc = write_new_task(im, r, dry);
			*created_r += rc == 0;
			if (rc == 0 && r->v[C_INTERVAL] != NULL &&
			    strcasecmp(r->v[C_INTERVAL], "manual") != 0)
				*timers_r = true;
		}
	}
	if (!dry) {
		int dfd = open(im->tasks_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	return rc;
}

/* ---------------------------------------------------------------------
 * The command.
 */

int csv_import(const struct csv_import_opts *o)
{
	struct import im = { .o = o, .out = o->out ? o->out : stdout,
			     .err = o->err ? o->err : stderr };
	struct csv_reader rd;
	struct csv_record rec = { 0 };
	struct buf text = { 0 };
	enum csv_result res;
	bool header = false;
	unsigned created = 0, updated = 0;
	bool timers = false;
	int rc = 0;

	im.label = strcmp(o->file, "-") == 0 ? "(standard input)" : o->file;
	im.tasks_dir = xasprintf("%s/tasks", o->config_dir);
	if (!read_all(&im, &text)) {
		rc = EXIT_CONFIG;
		goto out;
	}
	if (!scratch_open(&im)) {
		rc = EXIT_IOERR;
		goto out;
	}
	load_existing(&im);
	csv_init(&rd, text.len ? (const char *)text.data : "", text.len);
	while ((res = csv_next(&rd, &rec)) == CSV_RECORD) {
		if (csv_record_blank(&rec))
			continue;       /* as NethServer: empty rows are skipped */
		if (!header) {
			header = true;
			if (!parse_header(&im, &rec))
				break;
			continue;
		}
		if (rec.n != im.n_header) {
			row_error(&im, rec.line, NULL, "%zu field%s, but the header has %zu",
				  rec.n, rec.n == 1 ? "" : "s", im.n_header);
			continue;
		}
		im.rows = xreallocarray(im.rows, im.n_rows + 1, sizeof(*im.rows));
		struct row *r = &im.rows[im.n_rows];
		memset(r, 0, sizeof(*r));
		r->line = rec.line;
		row_values(&im, &rec, r);
		check_row(&im, r, im.n_rows);
		im.n_rows++;
	}
	if (res == CSV_ERROR)
		row_error(&im, rd.error_line, NULL, "%s", rd.error);
	csv_record_free(&rec);
	if (!header && im.errors == 0)
		row_error(&im, 1, NULL, "no header line (localusername,remoteusername,"
			  "remotepassword,remotehostname,remoteport,security)");
	if (im.errors > 0) {
		fprintf(im.err, "%s: %u error%s; nothing was written\n", im.label, im.errors,
			im.errors == 1 ? "" : "s");
		rc = EXIT_CONFIG;
		goto out;
	}
	rc = write_all(&im, &created, &updated, &timers);
	if (o->check)
		fprintf(im.out, "%s: %zu row%s valid: %u task%s to create, %u to update; "
			"nothing was written (--check)\n", im.label, im.n_rows,
			im.n_rows == 1 ? "" : "s", created, created == 1 ? "" : "s", updated);
	else
		/* systemd learns of new tasks (credentials, timers) from the
		   generator: imapsync-task-reload(8) */
		fprintf(im.out, "%s: %u task%s created, %u updated%s%s\n", im.label, created,
			created == 1 ? "" : "s", updated,
			created > 0 ? "; run imapsync-task-reload so that systemd knows the "
				      "new tasks" : "",
			created > 0 && timers ? " and starts their timers" : "");
out:
	scratch_close(&im);
	for (size_t i = 0; i < im.n_rows; i++)
		row_free(&im.rows[i]);
	free(im.rows);
	for (size_t i = 0; i < im.n_ex; i++) {
		free(im.ex[i].name);
		task_free(&im.ex[i].t);
	}
	free(im.ex);
	if (text.data != NULL)
		explicit_wipe(text.data, text.cap);
	buf_free(&text);
	free(im.tasks_dir);
	return rc;
}
