/* task.c - validated configuration: imapsync-task.conf and tasks/NAME.ini.
 *
 * Two readers look at every file:
 *
 *  - our own line scanner (ini_scan) knows where each key stands, so every
 *    error can say FILE:LINE; it also refuses what iniparser would silently
 *    accept or silently misread: duplicate keys and sections, keys outside
 *    a section, text after a closing quote, unterminated quotes, lines
 *    ending in '\' (iniparser joins them with the next line, even in
 *    comments), NUL and control bytes, invalid UTF-8.
 *  - iniparser supplies the values.  Its value of every key is compared
 *    with the scanner's; they cannot differ for a file the scanner
 *    accepts, and if they ever did, that key is refused rather than used.
 *
 * When the scanner already found errors iniparser usually refuses the file
 * as well; the scanner's values are then used so that every remaining
 * error of the file is still reported in the same run.
 *
 * Nothing here reads a password: the password files are only checked for
 * existence and mode (secret.c reads them).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iniparser.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "task.h"
#include "util.h"

#define CONF_FILE_NAME "imapsync-task.conf"
#define TASKS_DIR_NAME "tasks"

#define INI_MAX_FILE_SIZE (1024 * 1024)
/* iniparser reads lines into a 1024-byte buffer and refuses the whole
   file beyond that; we stop a little earlier with a line number. */
#define INI_MAX_LINE 1000

/* Bounds for matching the exclude pattern against a folder name.  A sane
   pattern needs a few hundred steps for a folder name; "(a+)+$" needs
   billions and stops at the match limit within milliseconds. */
#define EXCLUDE_MATCH_LIMIT 100000
#define EXCLUDE_DEPTH_LIMIT 5000
#define EXCLUDE_HEAP_LIMIT_KIB 4096

#define MIN_DAYS 1
#define MAX_DAYS 36500

/* Like util.c: nothing sensible can continue. */
static void __attribute__((noreturn)) out_of_memory(void)
{
	static const char msg[] = "imapsync-task: out of memory\n";

	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(70);
}

struct task_exclude {
	pcre2_code *code;
	pcre2_match_context *mctx;
};

/* ---------------------------------------------------------------------
 * Error collection: sorted by line at the end, then handed to the sink.
 */

struct report_item {
	unsigned line;
	size_t seq;
	char *text;
};

struct report {
	const char *path;       /* file name as shown in messages */
	struct report_item *items;
	size_t n, cap;
};

static char *xvasprintf_local(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));

static char *xvasprintf_local(const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	p = xmalloc((size_t)n + 1);
	if (vsnprintf(p, (size_t)n + 1, fmt, ap) < 0)
		p[0] = '\0';
	return p;
}

/* Add "PATH:LINE: KEY: reason".  line 0 leaves out the line, key NULL
   leaves out the key. */
static void __attribute__((format(printf, 4, 5)))
report_add(struct report *r, unsigned line, const char *key,
	   const char *fmt, ...)
{
	va_list ap;
	char *reason, linebuf[24] = "", *text;

	va_start(ap, fmt);
	reason = xvasprintf_local(fmt, ap);
	va_end(ap);

	if (line > 0)
		snprintf(linebuf, sizeof(linebuf), ":%u", line);
	if (key != NULL)
		text = xasprintf("%s%s: %s: %s", r->path, linebuf, key, reason);
	else
		text = xasprintf("%s%s: %s", r->path, linebuf, reason);
	free(reason);

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->items = xreallocarray(r->items, r->cap, sizeof(*r->items));
	}
	r->items[r->n].line = line;
	r->items[r->n].seq = r->n;
	r->items[r->n].text = text;
	r->n++;
}

static int report_item_cmp(const void *a, const void *b)
{
	const struct report_item *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Hand every collected error to the sink (in line order); returns the
   number of errors. */
static size_t report_flush(struct report *r, task_error_fn *err, void *ctx)
{
	size_t i, n = r->n;

	if (n > 1)
		qsort(r->items, n, sizeof(*r->items), report_item_cmp);
	for (i = 0; i < n; i++) {
		if (err != NULL)
			err(ctx, r->items[i].text);
		free(r->items[i].text);
	}
	free(r->items);
	r->items = NULL;
	r->n = r->cap = 0;
	return n;
}

/* A value for an error message: quoted, non-printable bytes escaped,
   long values cut.  Never used for a key that might hold a secret. */
static char *quote(const char *s)
{
	struct buf b = { 0 };
	size_t i;
	char *ret;

	buf_append(&b, "\"", 1);
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 80) {
			buf_append(&b, "...", 3);
			break;
		}
		if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
			buf_appendf(&b, "\\x%02x", c);
		else
			buf_append(&b, &s[i], 1);
	}
	buf_append(&b, "\"", 1);
	ret = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ret;
}

/* ---------------------------------------------------------------------
 * Small string checks.
 */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		c == '\v' || c == '\f';
}

static char *strip(char *s)
{
	size_t n;

	while (is_ws(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_ws(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void lowercase(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
	}
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if
   invalid (overlong forms, surrogates and code points above U+10FFFF
   are invalid). */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static bool has_space_or_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static bool str_in(const char *s, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(s, *list) == 0)
			return true;
	}
	return false;
}

/* "a, b, c" for a message. */
static char *join(const char *const *list)
{
	struct buf b = { 0 };
	char *ret;

	for (; *list != NULL; list++)
		buf_appendf(&b, "%s%s", b.len ? ", " : "", *list);
	ret = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ret;
}

/* ---------------------------------------------------------------------
 * The schema: allowed sections and keys.  These names are a contract
 * with users; never rename them.
 */

struct section_spec {
	const char *name;
	const char *const *keys;
	bool required;
};

static const char *const local_keys[] = {
	"host", "port", "security", "master_user", "master_separator",
	"master_password_file", "ca_file", "tls_verify", "lmtp", NULL
};
static const struct section_spec local_sections[] = {
	{ "local", local_keys, false },
	{ NULL, NULL, false }
};

static const char *const task_keys[] = {
	"local_user", "folders", "exclude", "delete",
	"delete_older_than_days", "delivery", "interval", NULL
};
static const char *const remote_keys[] = {
	"host", "port", "security", "user", "password_file", "ca_file",
	"tls_verify", NULL
};
static const struct section_spec task_sections[] = {
	{ "task", task_keys, true },
	{ "remote", remote_keys, true },
	{ NULL, NULL, false }
};

static const char *const security_names[] = { "starttls", "tls", "none", NULL };
static const char *const folder_names[] = { "inbox", "all", "all-except", NULL };
static const char *const delete_names[] = { "never", "after-sync", "older-than", NULL };
static const char *const delivery_names[] = { "append", "sieve", "lmtp", NULL };

static char *join_sections(const struct section_spec *specs)
{
	struct buf b = { 0 };
	char *ret;

	for (; specs->name != NULL; specs++)
		buf_appendf(&b, "%s%s", b.len ? ", " : "", specs->name);
	ret = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ret;
}

/* A key that looks like it holds a secret.  Such a value is never echoed,
   and the key is refused wherever it stands. */
static bool key_is_secret(const char *key)
{
	size_t n = strlen(key);

	if (n >= 5 && strcmp(key + n - 5, "_file") == 0)
		return false;
	return strcmp(key, "pass") == 0 || strcmp(key, "pw") == 0 ||
		strcmp(key, "pwd") == 0 || strstr(key, "password") != NULL ||
		strstr(key, "passwd") != NULL || strstr(key, "secret") != NULL;
}

/* ---------------------------------------------------------------------
 * The line scanner.
 */

struct ini_entry {
	char *section;
	char *key;
	char *value;            /* as the scanner read it */
	unsigned line;
};

struct ini_section {
	char *name;
	unsigned line;
};

struct ini {
	struct ini_entry *entries;
	size_t n_entries;
	struct ini_section *sections;
	size_t n_sections;
	dictionary *dict;       /* NULL if iniparser refused the file */
};

static void ini_free(struct ini *ini)
{
	size_t i;

	for (i = 0; i < ini->n_entries; i++) {
		free(ini->entries[i].section);
		free(ini->entries[i].key);
		free(ini->entries[i].value);
	}
	for (i = 0; i < ini->n_sections; i++)
		free(ini->sections[i].name);
	free(ini->entries);
	free(ini->sections);
	if (ini->dict != NULL)
		iniparser_freedict(ini->dict);
	memset(ini, 0, sizeof(*ini));
}

static const struct ini_section *
ini_find_section(const struct ini *ini, const char *name)
{
	size_t i;

	for (i = 0; i < ini->n_sections; i++) {
		if (strcmp(ini->sections[i].name, name) == 0)
			return &ini->sections[i];
	}
	return NULL;
}

static const struct ini_entry *
ini_find(const struct ini *ini, const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < ini->n_entries; i++) {
		if (strcmp(ini->entries[i].section, section) == 0 &&
		    strcmp(ini->entries[i].key, key) == 0)
			return &ini->entries[i];
	}
	return NULL;
}

static const struct section_spec *
spec_find(const struct section_spec *specs, const char *name)
{
	for (; specs->name != NULL; specs++) {
		if (strcmp(specs->name, name) == 0)
			return specs;
	}
	return NULL;
}

static bool valid_section_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	}
	return true;
}

static bool valid_key_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	}
	return true;
}

/* Check the raw bytes of one line: no NUL, no control bytes except tab
   (a CR right before the LF is allowed), valid UTF-8.  Returns false
   after reporting. */
static bool scan_line_bytes(struct report *r, unsigned lineno,
			    const char *p, size_t len)
{
	size_t i = 0;

	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > INI_MAX_LINE) {
		report_add(r, lineno, NULL, "line too long (at most %d bytes)",
			   INI_MAX_LINE);
		return false;
	}
	while (i < len) {
		unsigned char c = (unsigned char)p[i];
		size_t n;

		if (c == '\0') {
			report_add(r, lineno, NULL, "NUL byte in line");
			return false;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			report_add(r, lineno, NULL,
				   "control character 0x%02x in line", c);
			return false;
		}
		n = utf8_seq_len((const unsigned char *)p + i, len - i);
		if (n == 0) {
			report_add(r, lineno, NULL, "line is not valid UTF-8");
			return false;
		}
		i += n;
	}
	return true;
}

/* Parse "key = value" (line already stripped, contains '=').  On success
   *key_r and *value_r point into line (modified in place). */
static bool scan_key_value(struct report *r, unsigned lineno, char *line,
			   char **key_r, char **value_r)
{
	char *eq = strchr(line, '=');
	char *key, *value;

	*eq = '\0';
	key = strip(line);
	lowercase(key);
	value = eq + 1;
	while (is_ws(*value))
		value++;

	if (*key == '\0') {
		report_add(r, lineno, NULL, "missing key name before '='");
		return false;
	}
	if (!valid_key_name(key)) {
		report_add(r, lineno, NULL,
			   "malformed key name (letters, digits, '_', '-', '.')");
		return false;
	}

	if (*value == '"' || *value == '\'') {
		/* Quoted: everything up to the same quote, kept as is.
		   Afterwards only a comment may follow. */
		char q = *value, *end = strchr(value + 1, q), *rest;

		if (end == NULL) {
			report_add(r, lineno, key, "unterminated %s quote",
				   q == '"' ? "double" : "single");
			return false;
		}
		rest = end + 1;
		while (is_ws(*rest))
			rest++;
		if (*rest != '\0' && *rest != ';' && *rest != '#') {
			report_add(r, lineno, key,
				   "unexpected text after the closing quote");
			return false;
		}
		*end = '\0';
		value++;
	} else {
		/* Unquoted: ';' and '#' start a comment anywhere. */
		value[strcspn(value, ";#")] = '\0';
		value = strip(value);
	}
	*key_r = key;
	*value_r = value;
	return true;
}

/* Scan the whole file.  Entries of allowed sections are recorded; every
   structural problem is reported. */
static void ini_scan(struct ini *ini, struct report *r,
		     const char *text, size_t len,
		     const struct section_spec *specs)
{
	const struct section_spec *cur_spec = NULL;
	char *cur_section = NULL;
	bool in_section = false;
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t linelen = nl ? (size_t)(nl - start) : len - pos;
		char *copy, *line;
		size_t n;

		pos += linelen + (nl ? 1 : 0);
		lineno++;
		if (!scan_line_bytes(r, lineno, start, linelen))
			continue;

		copy = xstrndup(start, linelen);
		line = strip(copy);
		n = strlen(line);
		if (n == 0) {
			free(copy);
			continue;
		}
		if (line[n - 1] == '\\') {
			/* iniparser would join the next line to this one,
			   silently, even to a comment. */
			report_add(r, lineno, NULL,
				   "line ends with '\\', which would join the next line to it; "
				   "remove the backslash");
			free(copy);
			continue;
		}
		if (line[0] == '#' || line[0] == ';') {
			free(copy);
			continue;
		}

		if (line[0] == '[') {
			const struct ini_section *dup;
			char *name;

			if (line[n - 1] != ']') {
				report_add(r, lineno, NULL,
					   "malformed section header (expected \"[name]\" "
					   "alone on its line)");
				free(copy);
				/* keys that follow belong to no known section */
				in_section = true;
				cur_spec = NULL;
				free(cur_section);
				cur_section = NULL;
				continue;
			}
			line[n - 1] = '\0';
			name = strip(line + 1);
			lowercase(name);
			in_section = true;
			cur_spec = NULL;
			free(cur_section);
			cur_section = NULL;
			if (!valid_section_name(name)) {
				report_add(r, lineno, NULL, "malformed section name");
			} else if ((dup = ini_find_section(ini, name)) != NULL) {
				report_add(r, lineno, NULL,
					   "[%s]: duplicate section (first on line %u)",
					   name, dup->line);
			} else {
				char *all = NULL;

				ini->sections = xreallocarray(ini->sections,
							      ini->n_sections + 1,
							      sizeof(*ini->sections));
				ini->sections[ini->n_sections].name = xstrdup(name);
				ini->sections[ini->n_sections].line = lineno;
				ini->n_sections++;
				cur_spec = spec_find(specs, name);
				if (cur_spec == NULL) {
					all = join_sections(specs);
					report_add(r, lineno, NULL,
						   "[%s]: unknown section (valid: %s)",
						   name, all);
					free(all);
				} else {
					cur_section = xstrdup(name);
				}
			}
			free(copy);
			continue;
		}

		if (strchr(line, '=') == NULL) {
			report_add(r, lineno, NULL,
				   "expected \"key = value\", \"[section]\" or a comment");
			free(copy);
			continue;
		}

		char *key, *value;

		if (!scan_key_value(r, lineno, line, &key, &value)) {
			free(copy);
			continue;
		}
		if (key_is_secret(key)) {
			report_add(r, lineno, key,
				   "passwords belong in password_file, not in the INI");
		} else if (!in_section) {
			report_add(r, lineno, key, "key outside of any section");
		} else if (cur_spec != NULL) {
			const struct ini_entry *dup = ini_find(ini, cur_section, key);

			if (dup != NULL) {
				report_add(r, lineno, key,
					   "duplicate key (first on line %u)",
					   dup->line);
			} else if (!str_in(key, cur_spec->keys)) {
				char *all = join(cur_spec->keys);

				report_add(r, lineno, key,
					   "unknown key in [%s] (valid: %s)",
					   cur_section, all);
				free(all);
			} else {
				struct ini_entry *e;

				ini->entries = xreallocarray(ini->entries,
							     ini->n_entries + 1,
							     sizeof(*ini->entries));
				e = &ini->entries[ini->n_entries++];
				e->section = xstrdup(cur_section);
				e->key = xstrdup(key);
				e->value = xstrdup(value);
				e->line = lineno;
			}
		}
		/* keys of an unknown or malformed section: already reported */
		free(copy);
	}
	free(cur_section);
}

static int ini_silent(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}

/* Read and scan path; mode and type checks included.  Returns false if
   the file could not be read at all (reported). */
static bool ini_load(struct ini *ini, struct report *r, const char *path,
		     const struct section_spec *specs, bool quiet)
{
	struct stat st;
	struct buf b = { 0 };
	size_t errors_before;
	int fd;

	memset(ini, 0, sizeof(*ini));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		report_add(r, 0, NULL, "cannot open: %s", strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0) {
		report_add(r, 0, NULL, "cannot stat: %s", strerror(errno));
		close(fd);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		report_add(r, 0, NULL, "not a regular file");
		close(fd);
		return false;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !quiet) {
		report_add(r, 0, NULL,
			   "is writable by group or others (mode %04o); "
			   "run chmod go-w on it",
			   (unsigned)(st.st_mode & 07777));
	}
	for (;;) {
		ssize_t n;

		buf_reserve(&b, 4096);
		n = read(fd, b.data + b.len, b.cap - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			report_add(r, 0, NULL, "cannot read: %s", strerror(errno));
			close(fd);
			buf_free(&b);
			return false;
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > INI_MAX_FILE_SIZE) {
			report_add(r, 0, NULL, "file too large (more than %d bytes)",
				   INI_MAX_FILE_SIZE);
			close(fd);
			buf_free(&b);
			return false;
		}
	}
	close(fd);

	errors_before = r->n;
	ini_scan(ini, r, (const char *)b.data, b.len, specs);
	buf_free(&b);
	/* With structural errors (a duplicate key, say) the two readers
	   legitimately disagree; the scanner's values are used then. */
	if (quiet || r->n > errors_before)
		return true;

	iniparser_set_error_callback(ini_silent);
	ini->dict = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	if (ini->dict == NULL) {
		report_add(r, 0, NULL, "the INI reader refused the file");
		return true;
	}

	/* Both readers must agree on every value we are going to use. */
	for (size_t i = 0; i < ini->n_entries; i++) {
		struct ini_entry *e = &ini->entries[i];
		char *k = xasprintf("%s:%s", e->section, e->key);
		const char *v = iniparser_getstring(ini->dict, k, NULL);

		if (v == NULL || strcmp(v, e->value) != 0) {
			report_add(r, e->line, e->key,
				   "value is read differently by the INI reader; "
				   "put it in double quotes");
		}
		free(k);
	}
	return true;
}

/* The value of an entry: iniparser's when it accepted the file. */
static const char *ini_value(const struct ini *ini, const struct ini_entry *e)
{
	if (ini->dict != NULL) {
		char *k = xasprintf("%s:%s", e->section, e->key);
		const char *v = iniparser_getstring(ini->dict, k, NULL);

		free(k);
		if (v != NULL)
			return v;
	}
	return e->value;
}

/* ---------------------------------------------------------------------
 * Value parsers.  Each reports its own errors at the key's line.
 */

struct loader {
	struct ini ini;
	struct report rep;
	char *base_dir;         /* absolute dir for relative paths */
};

/* Entry of a key, NULL if absent. */
static const struct ini_entry *
get(struct loader *l, const char *section, const char *key, const char **val_r)
{
	const struct ini_entry *e = ini_find(&l->ini, section, key);

	*val_r = e != NULL ? ini_value(&l->ini, e) : NULL;
	return e;
}

static unsigned section_line(struct loader *l, const char *section)
{
	const struct ini_section *s = ini_find_section(&l->ini, section);

	return s != NULL ? s->line : 0;
}

static void report_missing(struct loader *l, const char *section,
			   const char *key)
{
	const struct ini_section *s = ini_find_section(&l->ini, section);

	/* a missing section is reported once, not per key */
	if (s != NULL)
		report_add(&l->rep, s->line, key, "required key is missing");
}

static bool parse_enum(struct loader *l, const struct ini_entry *e,
		       const char *val, const char *const *names, int *idx_r)
{
	char *all, *q;
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (strcmp(val, names[i]) == 0) {
			*idx_r = i;
			return true;
		}
	}
	all = join(names);
	q = quote(val);
	report_add(&l->rep, e->line, e->key, "invalid value %s (valid: %s)", q, all);
	free(q);
	free(all);
	return false;
}

static bool parse_bool(struct loader *l, const struct ini_entry *e,
		       const char *val, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "1", NULL };
	static const char *const no[] = { "no", "false", "0", NULL };
	char *q;

	if (str_in(val, yes)) {
		*b_r = true;
		return true;
	}
	if (str_in(val, no)) {
		*b_r = false;
		return true;
	}
	q = quote(val);
	report_add(&l->rep, e->line, e->key,
		   "invalid value %s (valid: yes, no, true, false, 1, 0)", q);
	free(q);
	return false;
}

static bool parse_number(struct loader *l, const struct ini_entry *e,
			 const char *val, uint64_t min, uint64_t max,
			 uint64_t *num_r)
{
	uint64_t n;
	char *q;

	if (!str_to_u64(val, &n)) {
		q = quote(val);
		report_add(&l->rep, e->line, e->key, "not a number: %s", q);
		free(q);
		return false;
	}
	if (n < min || n > max) {
		report_add(&l->rep, e->line, e->key,
			   "out of range: %llu (valid: %llu-%llu)",
			   (unsigned long long)n, (unsigned long long)min,
			   (unsigned long long)max);
		return false;
	}
	*num_r = n;
	return true;
}

static bool check_host(struct loader *l, const struct ini_entry *e,
		       const char *val)
{
	if (*val == '\0') {
		report_add(&l->rep, e->line, e->key, "must not be empty");
		return false;
	}
	if (has_space_or_control(val)) {
		report_add(&l->rep, e->line, e->key,
			   "must not contain spaces or control characters");
		return false;
	}
	return true;
}

static char *resolve_path(const char *dir, const char *path)
{
	if (path[0] == '/')
		return xstrdup(path);
	return xasprintf("%s/%s", dir, path);
}

/* The shared [local]/[remote] connection keys. */
static void parse_endpoint(struct loader *l, const char *section,
			   struct endpoint *ep, const char *default_host)
{
	const struct ini_entry *e;
	const char *v;
	int idx;
	uint64_t n;

	ep->security = SECURITY_STARTTLS;
	ep->tls_verify = true;
	ep->ca_file = NULL;
	ep->host = NULL;

	if ((e = get(l, section, "security", &v)) != NULL &&
	    parse_enum(l, e, v, security_names, &idx))
		ep->security = (enum security)idx;
	ep->port = ep->security == SECURITY_TLS ? 993 : 143;
	if ((e = get(l, section, "port", &v)) != NULL &&
	    parse_number(l, e, v, 1, 65535, &n))
		ep->port = (uint16_t)n;

	if ((e = get(l, section, "host", &v)) != NULL) {
		if (check_host(l, e, v))
			ep->host = xstrdup(v);
	} else if (default_host != NULL) {
		ep->host = xstrdup(default_host);
	} else {
		report_missing(l, section, "host");
	}

	if ((e = get(l, section, "tls_verify", &v)) != NULL)
		(void)parse_bool(l, e, v, &ep->tls_verify);

	if ((e = get(l, section, "ca_file", &v)) != NULL && *v != '\0') {
		struct stat st;
		char *path = resolve_path(l->base_dir, v);

		if (has_control(v)) {
			report_add(&l->rep, e->line, e->key,
				   "must not contain control characters");
			free(path);
		} else if (stat(path, &st) < 0) {
			report_add(&l->rep, e->line, e->key, "%s: %s", path,
				   strerror(errno));
			free(path);
		} else if (!S_ISREG(st.st_mode)) {
			report_add(&l->rep, e->line, e->key,
				   "%s: not a regular file", path);
			free(path);
		} else {
			ep->ca_file = path;
		}
	}
}

/* A password file must exist, be a regular file and be accessible by
   its owner only -- unless systemd passed the credential. */
static void check_password_file(struct loader *l, unsigned line,
				const char *key, const char *path,
				const char *cred_id)
{
	const char *cdir = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;

	if (cdir != NULL && *cdir != '\0') {
		char *cpath = xasprintf("%s/%s", cdir, cred_id);
		bool have = stat(cpath, &st) == 0 && S_ISREG(st.st_mode);

		free(cpath);
		if (have)
			return;
	}
	if (stat(path, &st) < 0) {
		report_add(&l->rep, line, key,
			   "%s: %s (create it with mode 0600, or pass the "
			   "credential %s with LoadCredential=)",
			   path, strerror(errno), cred_id);
	} else if (!S_ISREG(st.st_mode)) {
		report_add(&l->rep, line, key, "%s: not a regular file", path);
	} else if ((st.st_mode & 077) != 0) {
		report_add(&l->rep, line, key,
			   "%s: is accessible by group or others (mode %04o); "
			   "run chmod 600 on it",
			   path, (unsigned)(st.st_mode & 07777));
	}
}

/* "dir/name" without doubling a trailing slash of dir. */
static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);

	if (n > 0 && dir[n - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}

/* config_dir made absolute (for paths stored in the result). */
static char *absolute_dir(const char *dir)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(dir);
	if (strcmp(dir, ".") == 0)
		return xstrdup(cwd);
	return path_join(cwd, dir);
}

/* ---------------------------------------------------------------------
 * imapsync-task.conf
 */

static bool check_lmtp(const char *v)
{
	const char *colon;
	uint64_t port;

	if (v[0] == '/')
		return strlen(v) < 108 && !has_control(v);  /* sun_path */
	colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return false;
	if (!str_to_u64(colon + 1, &port) || port < 1 || port > 65535)
		return false;
	if (v[0] == '[' && colon[-1] != ']')
		return false;
	for (const char *p = v; p < colon; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

static void local_config_clear(struct local_config *cfg)
{
	free(cfg->ep.host);
	free(cfg->ep.ca_file);
	free(cfg->master_user);
	free(cfg->master_password_file);
	free(cfg->lmtp);
	free(cfg->path);
}

struct local_config *local_config_load(const char *config_dir,
				       task_error_fn *err, void *ctx)
{
	struct loader l = { 0 };
	struct local_config *cfg = xcalloc(1, sizeof(*cfg));
	const struct ini_entry *e;
	const char *v;
	char *conf_dir_abs = absolute_dir(config_dir);

	cfg->path = path_join(config_dir, CONF_FILE_NAME);
	l.rep.path = cfg->path;
	l.base_dir = conf_dir_abs;

	if (ini_load(&l.ini, &l.rep, cfg->path, local_sections, false)) {
		parse_endpoint(&l, "local", &cfg->ep, "127.0.0.1");

		cfg->master_separator = '*';
		if ((e = get(&l, "local", "master_separator", &v)) != NULL) {
			if (strlen(v) != 1 || !ispunct((unsigned char)v[0]))
				report_add(&l.rep, e->line, e->key,
					   "must be a single punctuation character "
					   "(Dovecot's auth_master_user_separator)");
			else
				cfg->master_separator = v[0];
		}

		if ((e = get(&l, "local", "master_user", &v)) != NULL) {
			if (*v == '\0' || has_space_or_control(v))
				report_add(&l.rep, e->line, e->key,
					   "must be non-empty, without spaces or "
					   "control characters");
			else if (strchr(v, cfg->master_separator) != NULL)
				report_add(&l.rep, e->line, e->key,
					   "must not contain the master separator '%c'",
					   cfg->master_separator);
			else
				cfg->master_user = xstrdup(v);
		} else {
			cfg->master_user = xstrdup("vmail");
		}

		if ((e = get(&l, "local", "master_password_file", &v)) != NULL) {
			if (*v == '\0' || has_control(v)) {
				report_add(&l.rep, e->line, e->key,
					   "must be a file name");
			} else {
				cfg->master_password_file = resolve_path(conf_dir_abs, v);
				check_password_file(&l, e->line, e->key,
						    cfg->master_password_file,
						    "master.password");
			}
		} else {
			cfg->master_password_file = path_join(conf_dir_abs, "master.pwd");
			check_password_file(&l, section_line(&l, "local"),
					    "master_password_file",
					    cfg->master_password_file,
					    "master.password");
		}

		if ((e = get(&l, "local", "lmtp", &v)) != NULL) {
			if (!check_lmtp(v)) {
				char *q = quote(v);

				report_add(&l.rep, e->line, e->key,
					   "invalid value %s (host:port or an "
					   "absolute unix socket path)", q);
				free(q);
			} else {
				cfg->lmtp = xstrdup(v);
			}
		} else {
			cfg->lmtp = xstrdup("127.0.0.1:24");
		}
	}

	ini_free(&l.ini);
	free(conf_dir_abs);
	if (report_flush(&l.rep, err, ctx) > 0)
		local_config_free(&cfg);
	return cfg;
}

void local_config_free(struct local_config **cfgp)
{
	struct local_config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	local_config_clear(cfg);
	free(cfg);
	*cfgp = NULL;
}

/* ---------------------------------------------------------------------
 * tasks/NAME.ini
 */

bool task_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return false;       /* also refuses "." and ".." */
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];

		if (n >= TASK_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* The master separator from imapsync-task.conf, for checking local_user;
   '*' when it cannot be read (local_config_load reports why). */
static char read_master_separator(const char *config_dir)
{
	struct report rep = { 0 };
	struct ini ini;
	const struct ini_entry *e;
	char sep = '*';
	char *path = path_join(config_dir, CONF_FILE_NAME);

	rep.path = path;
	if (ini_load(&ini, &rep, path, local_sections, true)) {
		e = ini_find(&ini, "local", "master_separator");
		if (e != NULL && strlen(e->value) == 1 &&
		    ispunct((unsigned char)e->value[0]))
			sep = e->value[0];
		ini_free(&ini);
	}
	report_flush(&rep, NULL, NULL);
	free(path);
	return sep;
}

static void exclude_free(struct task_exclude **exp)
{
	struct task_exclude *ex = *exp;

	if (ex == NULL)
		return;
	pcre2_code_free(ex->code);
	pcre2_match_context_free(ex->mctx);
	free(ex);
	*exp = NULL;
}

static struct task_exclude *exclude_compile(struct loader *l,
					    const struct ini_entry *e,
					    const char *pattern)
{
	struct task_exclude *ex;
	pcre2_code *code;
	int errcode;
	PCRE2_SIZE erroffset;

	code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
			     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF |
			     PCRE2_NEVER_BACKSLASH_C,
			     &errcode, &erroffset, NULL);
	if (code == NULL) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", errcode);
		report_add(&l->rep, e->line, e->key,
			   "invalid regular expression at offset %zu: %s",
			   (size_t)erroffset, (const char *)msg);
		return NULL;
	}
	ex = xcalloc(1, sizeof(*ex));
	ex->code = code;
	ex->mctx = pcre2_match_context_create(NULL);
	if (ex->mctx == NULL)
		out_of_memory();
	pcre2_set_match_limit(ex->mctx, EXCLUDE_MATCH_LIMIT);
	pcre2_set_depth_limit(ex->mctx, EXCLUDE_DEPTH_LIMIT);
	pcre2_set_heap_limit(ex->mctx, EXCLUDE_HEAP_LIMIT_KIB);
	return ex;
}

static void parse_task_section(struct loader *l, struct task *t, char sep)
{
	const struct ini_entry *e, *e_folders, *e_exclude, *e_delete, *e_days;
	const char *v, *v_exclude, *v_days;
	int idx;
	uint64_t n;

	if ((e = get(l, "task", "local_user", &v)) != NULL) {
		if (*v == '\0')
			report_add(&l->rep, e->line, e->key, "must not be empty");
		else if (has_space_or_control(v))
			report_add(&l->rep, e->line, e->key,
				   "must not contain spaces or control characters");
		else if (strchr(v, sep) != NULL)
			report_add(&l->rep, e->line, e->key,
				   "must not contain the master separator '%c'", sep);
		else
			t->local_user = xstrdup(v);
	} else {
		report_missing(l, "task", "local_user");
	}

	t->folders = FOLDERS_INBOX;
	bool folders_ok = true;
	if ((e_folders = get(l, "task", "folders", &v)) != NULL) {
		folders_ok = parse_enum(l, e_folders, v, folder_names, &idx);
		if (folders_ok)
			t->folders = (enum folder_mode)idx;
	}

	/* The pattern is compiled whenever it is there, so that a broken
	   one is reported even next to another error. */
	e_exclude = get(l, "task", "exclude", &v_exclude);
	if (e_exclude != NULL && *v_exclude != '\0')
		t->exclude_re = exclude_compile(l, e_exclude, v_exclude);
	if (folders_ok && t->folders == FOLDERS_ALL_EXCEPT) {
		if (e_exclude == NULL) {
			report_add(&l->rep, section_line(l, "task"), "exclude",
				   "required key is missing (folders = all-except "
				   "needs it)");
		} else if (*v_exclude == '\0') {
			report_add(&l->rep, e_exclude->line, e_exclude->key,
				   "must not be empty with folders = all-except");
		} else if (t->exclude_re != NULL) {
			t->exclude = xcalloc(2, sizeof(*t->exclude));
			t->exclude[0] = xstrdup(v_exclude);
		}
	} else if (e_exclude != NULL && folders_ok) {
		report_add(&l->rep, e_exclude->line, e_exclude->key,
			   "only valid with folders = all-except (folders is %s)",
			   folder_mode_name(t->folders));
	}

	t->delete_mode = DELETE_NEVER;
	bool delete_ok = true;
	if ((e_delete = get(l, "task", "delete", &v)) != NULL) {
		delete_ok = parse_enum(l, e_delete, v, delete_names, &idx);
		if (delete_ok)
			t->delete_mode = (enum delete_mode)idx;
	}
	e_days = get(l, "task", "delete_older_than_days", &v_days);
	if (delete_ok && t->delete_mode == DELETE_OLDER_THAN) {
		if (e_days == NULL) {
			report_add(&l->rep, section_line(l, "task"),
				   "delete_older_than_days",
				   "required key is missing (delete = older-than "
				   "needs it)");
		} else if (parse_number(l, e_days, v_days, MIN_DAYS, MAX_DAYS, &n)) {
			t->delete_older_than_days = (unsigned)n;
		}
	} else if (e_days != NULL && delete_ok) {
		report_add(&l->rep, e_days->line, e_days->key,
			   "only valid with delete = older-than (delete is %s)",
			   delete_mode_name(t->delete_mode));
	}

	t->delivery = DELIVERY_APPEND;
	if ((e = get(l, "task", "delivery", &v)) != NULL &&
	    parse_enum(l, e, v, delivery_names, &idx)) {
		t->delivery = (enum delivery_mode)idx;
		if (t->delivery != DELIVERY_APPEND && folders_ok &&
		    t->folders != FOLDERS_INBOX)
			report_add(&l->rep, e->line, e->key,
				   "delivery = %s is only valid with folders = inbox "
				   "(folders is %s)",
				   delivery_mode_name(t->delivery),
				   folder_mode_name(t->folders));
	}

	if ((e = get(l, "task", "interval", &v)) != NULL) {
		if (strcmp(v, "manual") == 0) {
			t->manual = true;
		} else if (!task_parse_timespan(v, &n)) {
			char *q = quote(v);

			report_add(&l->rep, e->line, e->key,
				   "invalid time span %s (e.g. 15min, 1h 30min, 1d; "
				   "units: s, min, h, d, w; or manual)", q);
			free(q);
		} else if (n < TASK_MIN_INTERVAL_SEC) {
			report_add(&l->rep, e->line, e->key,
				   "too short: %llus (at least 1min, or manual)",
				   (unsigned long long)n);
		} else {
			t->interval = xstrdup(v);
			t->interval_sec = n;
		}
	} else {
		report_missing(l, "task", "interval");
	}
}

static void parse_remote_section(struct loader *l, struct task *t,
				 unsigned flags)
{
	bool check = (flags & TASK_LOAD_NO_PASSWORD_CHECK) == 0;
	const struct ini_entry *e;
	const char *v;
	char *cred_id;

	parse_endpoint(l, "remote", &t->remote, NULL);

	if ((e = get(l, "remote", "user", &v)) != NULL) {
		if (*v == '\0')
			report_add(&l->rep, e->line, e->key, "must not be empty");
		else if (has_control(v))
			report_add(&l->rep, e->line, e->key,
				   "must not contain control characters");
		else
			t->remote_user = xstrdup(v);
	} else {
		report_missing(l, "remote", "user");
	}

	cred_id = xasprintf("task.%s.password", t->name);
	if ((e = get(l, "remote", "password_file", &v)) != NULL) {
		if (*v == '\0' || has_control(v)) {
			report_add(&l->rep, e->line, e->key, "must be a file name");
		} else {
			t->password_file = resolve_path(l->base_dir, v);
			if (check)
				check_password_file(l, e->line, e->key,
						    t->password_file, cred_id);
		}
	} else {
		char *file = xasprintf("%s.pwd", t->name);

		t->password_file = path_join(l->base_dir, file);
		free(file);
		if (check)
			check_password_file(l, section_line(l, "remote"),
					    "password_file", t->password_file,
					    cred_id);
	}
	free(cred_id);
}

struct task *task_load(const char *config_dir, const char *name,
		       task_error_fn *err, void *ctx)
{
	return task_load_with(config_dir, name, 0, err, ctx);
}

struct task *task_load_with(const char *config_dir, const char *name,
			    unsigned flags, task_error_fn *err, void *ctx)
{
	struct loader l = { 0 };
	struct task *t;
	char *tasks_dir, *file, *abs;
	char sep;

	if (!task_name_valid(name)) {
		/* No path is built from an invalid name. */
		char *q = quote(name != NULL ? name : "");

		l.rep.path = "task";
		report_add(&l.rep, 0, NULL,
			   "invalid task name %s (letters, digits, '_', '.', '-'; "
			   "not starting with '.'; at most %d characters)",
			   q, TASK_NAME_MAX);
		free(q);
		report_flush(&l.rep, err, ctx);
		return NULL;
	}

	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	tasks_dir = path_join(config_dir, TASKS_DIR_NAME);
	file = xasprintf("%s.ini", name);
	t->path = path_join(tasks_dir, file);
	free(file);
	abs = absolute_dir(config_dir);
	l.base_dir = path_join(abs, TASKS_DIR_NAME);
	free(abs);
	l.rep.path = t->path;

	sep = read_master_separator(config_dir);
	if (ini_load(&l.ini, &l.rep, t->path, task_sections, false)) {
		const struct section_spec *s;

		for (s = task_sections; s->name != NULL; s++) {
			if (s->required && ini_find_section(&l.ini, s->name) == NULL)
				report_add(&l.rep, 0, NULL,
					   "[%s]: required section is missing", s->name);
		}
		parse_task_section(&l, t, sep);
		parse_remote_section(&l, t, flags);
	}

	ini_free(&l.ini);
	free(l.base_dir);
	free(tasks_dir);
	if (report_flush(&l.rep, err, ctx) > 0)
		task_free(&t);
	return t;
}

void task_free(struct task **tp)
{
	struct task *t = *tp;

	if (t == NULL)
		return;
	free(t->name);
	free(t->path);
	free(t->local_user);
	if (t->exclude != NULL) {
		for (size_t i = 0; t->exclude[i] != NULL; i++)
			free(t->exclude[i]);
		free(t->exclude);
	}
	exclude_free(&t->exclude_re);
	free(t->interval);
	free(t->remote.host);
	free(t->remote.ca_file);
	free(t->remote_user);
	free(t->password_file);
	free(t);
	*tp = NULL;
}

bool task_folder_excluded(const struct task *t, const char *utf8_name,
			  int *err_r)
{
	pcre2_match_data *md;
	int rc;

	*err_r = 0;
	if (t->folders != FOLDERS_ALL_EXCEPT || t->exclude_re == NULL)
		return false;
	md = pcre2_match_data_create_from_pattern(t->exclude_re->code, NULL);
	if (md == NULL) {
		*err_r = PCRE2_ERROR_NOMEMORY;
		return false;
	}
	rc = pcre2_match(t->exclude_re->code, (PCRE2_SPTR)utf8_name,
			 PCRE2_ZERO_TERMINATED, 0, 0, md, t->exclude_re->mctx);
	pcre2_match_data_free(md);
	if (rc >= 0)
		return true;
	if (rc == PCRE2_ERROR_NOMATCH)
		return false;
	*err_r = rc;
	return false;
}

void task_match_strerror(int err, char *buf, size_t size)
{
	if (size == 0)
		return;
	if (err == PCRE2_ERROR_MATCHLIMIT || err == PCRE2_ERROR_DEPTHLIMIT ||
	    err == PCRE2_ERROR_HEAPLIMIT) {
		snprintf(buf, size, "exclude pattern too complex for this folder "
			 "name (PCRE2 limit hit)");
		return;
	}
	if (pcre2_get_error_message(err, (PCRE2_UCHAR *)buf, size) < 0)
		snprintf(buf, size, "PCRE2 error %d", err);
}

/* ---------------------------------------------------------------------
 * Listing, time spans, names.
 */

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **task_list_names(const char *config_dir)
{
	char *dir = path_join(config_dir, TASKS_DIR_NAME);
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names;
	size_t n = 0;

	free(dir);
	if (d == NULL)
		return NULL;
	names = xcalloc(1, sizeof(*names));
	for (;;) {
		size_t len;
		char *name;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 4 ||
		    strcmp(de->d_name + len - 4, ".ini") != 0)
			continue;
		name = xstrndup(de->d_name, len - 4);
		if (!task_name_valid(name)) {
			free(name);
			continue;
		}
		names = xreallocarray(names, n + 2, sizeof(*names));
		names[n++] = name;
		names[n] = NULL;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		task_names_free(&names);
		errno = saved;
		return NULL;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	return names;
}

void task_names_free(char ***namesp)
{
	char **names = *namesp;

	if (names == NULL)
		return;
	for (size_t i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
	*namesp = NULL;
}

/* Seconds per unit; a subset of systemd.time(7) that systemd parses the
   same way. */
static const struct {
	const char *name;
	uint64_t sec;
} timespan_units[] = {
	{ "s", 1 }, { "sec", 1 }, { "second", 1 }, { "seconds", 1 },
	{ "m", 60 }, { "min", 60 }, { "minute", 60 }, { "minutes", 60 },
	{ "h", 3600 }, { "hr", 3600 }, { "hour", 3600 }, { "hours", 3600 },
	{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
	{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
};

/* systemd keeps time spans in microseconds. */
#define TIMESPAN_MAX_SEC (UINT64_MAX / 1000000)

bool task_parse_timespan(const char *text, uint64_t *sec_r)
{
	const char *p = text;
	uint64_t total = 0;
	bool any = false;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p != '\0') {
		uint64_t n = 0, mult = 0;
		const char *unit;
		size_t ulen, i;

		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p - '0');

			if (n > (TIMESPAN_MAX_SEC - d) / 10)
				return false;
			n = n * 10 + d;
			p++;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		unit = p;
		while (*p >= 'a' && *p <= 'z')
			p++;
		ulen = (size_t)(p - unit);
		if (ulen == 0) {
			mult = 1;
		} else {
			for (i = 0; i < N_ELEMENTS(timespan_units); i++) {
				if (strlen(timespan_units[i].name) == ulen &&
				    memcmp(timespan_units[i].name, unit, ulen) == 0) {
					mult = timespan_units[i].sec;
					break;
				}
			}
			if (mult == 0)
				return false;
		}
		if (n > TIMESPAN_MAX_SEC / mult ||
		    total > TIMESPAN_MAX_SEC - n * mult)
			return false;
		total += n * mult;
		any = true;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (!any)
		return false;
	*sec_r = total;
	return true;
}

const char *security_name(enum security s)
{
	switch (s) {
	case SECURITY_STARTTLS: return "starttls";
	case SECURITY_TLS: return "tls";
	case SECURITY_NONE: return "none";
	}
	return "?";
}

const char *folder_mode_name(enum folder_mode m)
{
	switch (m) {
	case FOLDERS_INBOX: return "inbox";
	case FOLDERS_ALL: return "all";
	case FOLDERS_ALL_EXCEPT: return "all-except";
	}
	return "?";
}

const char *delete_mode_name(enum delete_mode m)
{
	switch (m) {
	case DELETE_NEVER: return "never";
	case DELETE_AFTER_SYNC: return "after-sync";
	case DELETE_OLDER_THAN: return "older-than";
	}
	return "?";
}

const char *delivery_mode_name(enum delivery_mode m)
{
	switch (m) {
	case DELIVERY_APPEND: return "append";
	case DELIVERY_SIEVE: return "sieve";
	case DELIVERY_LMTP: return "lmtp";
	}
	return "?";
}
