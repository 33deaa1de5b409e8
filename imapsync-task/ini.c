/* ini.c - the INI scanner and its FILE:LINE reports (see ini.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iniparser.h>

#include "ini.h"
#include "util.h"

#define INI_MAX_FILE_SIZE (1024 * 1024)
/* iniparser reads lines into a 1024-byte buffer and refuses the whole
   file beyond that; we stop a little earlier with a line number. */
#define INI_MAX_LINE 1000

/* ---------------------------------------------------------------------
 * Error collection: sorted by line at the end, then handed to the sink.
 */

struct ini_report_item {
	unsigned line;
	size_t seq;
	char *text;
};

void ini_report_init(struct ini_report *r, const char *path)
{
	memset(r, 0, sizeof(*r));
	r->path = path;
}

void ini_report_add(struct ini_report *r, unsigned line, const char *key,
		    const char *fmt, ...)
{
	va_list ap;
	char *reason, linebuf[24] = "", *text;

	va_start(ap, fmt);
	reason = xvasprintf(fmt, ap);
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
	const struct ini_report_item *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

size_t ini_report_flush(struct ini_report *r, ini_error_fn *err, void *ctx)
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

char *ini_quote(const char *s)
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
 * Small string helpers of the scanner.
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

/* A section or key name (already lowercase): [a-z0-9_.-]+ */
static bool valid_name(const char *s)
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

/* ---------------------------------------------------------------------
 * The line scanner.
 */

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

void ini_free(struct ini **inip)
{
	struct ini *ini = *inip;
	size_t i;

	if (ini == NULL)
		return;
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
	free(ini);
	*inip = NULL;
}

static const struct ini_section *
find_section(const struct ini *ini, const char *name)
{
	for (size_t i = 0; i < ini->n_sections; i++) {
		if (strcmp(ini->sections[i].name, name) == 0)
			return &ini->sections[i];
	}
	return NULL;
}

unsigned ini_section_line(const struct ini *ini, const char *section)
{
	const struct ini_section *s = find_section(ini, section);

	return s != NULL ? s->line : 0;
}

const struct ini_entry *ini_find(const struct ini *ini, const char *section,
				 const char *key)
{
	for (size_t i = 0; i < ini->n_entries; i++) {
		const struct ini_entry *e = &ini->entries[i];

		if (strcmp(e->section, section) == 0 && strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

const struct ini_entry *ini_find_next(const struct ini *ini,
				      const struct ini_entry *e)
{
	for (size_t i = (size_t)(e - ini->entries) + 1; i < ini->n_entries; i++) {
		const struct ini_entry *n = &ini->entries[i];

		if (strcmp(n->section, e->section) == 0 &&
		    strcmp(n->key, e->key) == 0)
			return n;
	}
	return NULL;
}

const struct ini_entry *ini_entries(const struct ini *ini, size_t *count_r)
{
	*count_r = ini->n_entries;
	return ini->entries;
}

static const struct ini_section_spec *
spec_find(const struct ini_schema *schema, const char *name)
{
	const struct ini_section_spec *spec;

	for (spec = schema->sections; spec->name != NULL; spec++) {
		if (strcmp(spec->name, name) == 0)
			return spec;
	}
	return NULL;
}

/* "a, b" of the schema's section names, for a message. */
static char *join_sections(const struct ini_schema *schema)
{
	const struct ini_section_spec *spec;
	const char **names;
	size_t n = 0;
	char *ret;

	for (spec = schema->sections; spec->name != NULL; spec++)
		n++;
	names = xcalloc(n + 1, sizeof(*names));
	for (n = 0, spec = schema->sections; spec->name != NULL; spec++)
		names[n++] = spec->name;
	ret = str_join(names, ", ");
	free(names);
	return ret;
}

/* Check the raw bytes of one line: no NUL, no control bytes except tab
   (a CR right before the LF is allowed), valid UTF-8.  Returns false
   after reporting. */
static bool scan_line_bytes(struct ini_report *r, unsigned lineno,
			    const char *p, size_t len)
{
	size_t i = 0;

	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > INI_MAX_LINE) {
		ini_report_add(r, lineno, NULL, "line too long (at most %d bytes)",
			       INI_MAX_LINE);
		return false;
	}
	while (i < len) {
		unsigned char c = (unsigned char)p[i];
		uint32_t cp;
		size_t n;

		if (c == '\0') {
			ini_report_add(r, lineno, NULL, "NUL byte in line");
			return false;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			ini_report_add(r, lineno, NULL,
				       "control character 0x%02x in line", c);
			return false;
		}
		n = utf8_decode((const unsigned char *)p + i, len - i, &cp);
		if (n == 0) {
			ini_report_add(r, lineno, NULL, "line is not valid UTF-8");
			return false;
		}
		i += n;
	}
	return true;
}

/* Parse "key = value" (line already stripped, contains '=').  On success
   *key_r and *value_r point into line (modified in place).  *glued_r is
   the ';' or '#' an unquoted value holds glued to its text ("alice#1"),
   or '\0': the caller refuses such a value (unless it refuses the key
   anyway) rather than let the comment cut it short. */
static bool scan_key_value(struct ini_report *r, unsigned lineno, char *line,
			   char **key_r, char **value_r, char *glued_r)
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
		ini_report_add(r, lineno, NULL, "missing key name before '='");
		return false;
	}
	if (!valid_name(key)) {
		ini_report_add(r, lineno, NULL,
			       "malformed key name (letters, digits, '_', '-', '.')");
		return false;
	}

	if (*value == '"' || *value == '\'') {
		/* Quoted: everything up to the same quote, kept as is.
		   Afterwards only a comment may follow. */
		char q = *value, *end = strchr(value + 1, q), *rest;

		if (end == NULL) {
			ini_report_add(r, lineno, key, "unterminated %s quote",
				       q == '"' ? "double" : "single");
			return false;
		}
		rest = end + 1;
		while (is_ws(*rest))
			rest++;
		if (*rest != '\0' && *rest != ';' && *rest != '#') {
			ini_report_add(r, lineno, key,
				       "unexpected text after the closing quote");
			return false;
		}
		*end = '\0';
		value++;
	} else {
		/* Unquoted: ';' and '#' start a comment at the start of the
		   value or after a space or tab.  Glued to text they would cut
		   the value short without a word (iniparser cuts there too):
		   refused by the caller. */
		char *c = value + strcspn(value, ";#");

		*glued_r = *c != '\0' && c != value && !is_ws(c[-1]) ? *c : '\0';
		*c = '\0';
		value = strip(value);
	}
	*key_r = key;
	*value_r = value;
	return true;
}

/* Where the scanner stands in the file. */
struct scan {
	struct ini *ini;
	struct ini_report *r;
	const struct ini_schema *schema;
	bool in_section;        /* a section header was seen */
	const struct ini_section_spec *spec;   /* NULL: unknown or malformed */
	unsigned lineno;
};

/* "[name]" (line stripped, n > 0 bytes, starting with '['). */
static void scan_section(struct scan *s, char *line, size_t n)
{
	const struct ini_section *dup;
	char *name;

	/* keys that follow belong to no known section unless this one is */
	s->in_section = true;
	s->spec = NULL;
	if (line[n - 1] != ']') {
		ini_report_add(s->r, s->lineno, NULL,
			       "malformed section header (expected \"[name]\" "
			       "alone on its line)");
		return;
	}
	line[n - 1] = '\0';
	name = strip(line + 1);
	lowercase(name);
	if (!valid_name(name)) {
		ini_report_add(s->r, s->lineno, NULL, "malformed section name");
	} else if ((dup = find_section(s->ini, name)) != NULL) {
		ini_report_add(s->r, s->lineno, NULL,
			       "[%s]: duplicate section (first on line %u)",
			       name, dup->line);
	} else {
		struct ini *ini = s->ini;

		ini->sections = xreallocarray(ini->sections, ini->n_sections + 1,
					      sizeof(*ini->sections));
		ini->sections[ini->n_sections].name = xstrdup(name);
		ini->sections[ini->n_sections].line = s->lineno;
		ini->n_sections++;
		s->spec = spec_find(s->schema, name);
		if (s->spec == NULL) {
			char *all = join_sections(s->schema);

			ini_report_add(s->r, s->lineno, NULL,
				       "[%s]: unknown section (valid: %s)",
				       name, all);
			free(all);
		}
	}
}

/* "key = value" (line stripped, contains '='). */
static void scan_entry(struct scan *s, char *line)
{
	const char *refused = NULL;
	char *key, *value, glued = '\0';

	if (!scan_key_value(s->r, s->lineno, line, &key, &value, &glued))
		return;
	if (s->schema->key_refused != NULL)
		refused = s->schema->key_refused(key);
	if (refused != NULL) {
		ini_report_add(s->r, s->lineno, key, "%s", refused);
	} else if (glued != '\0') {
		ini_report_add(s->r, s->lineno, key,
			       "'%c' inside an unquoted value would start a comment and cut "
			       "the value short: put the whole value in double quotes "
			       "(key = \"...\"), or a space before a comment", glued);
	} else if (!s->in_section) {
		ini_report_add(s->r, s->lineno, key, "key outside of any section");
	} else if (s->spec != NULL) {
		const char *section = s->spec->name;
		const struct ini_entry *dup = ini_find(s->ini, section, key);
		bool list = s->spec->list_keys != NULL &&
			str_in_list(key, s->spec->list_keys);

		if (dup != NULL && !list) {
			ini_report_add(s->r, s->lineno, key,
				       "duplicate key (first on line %u)",
				       dup->line);
		} else if (!str_in_list(key, s->spec->keys)) {
			char *all = str_join(s->spec->keys, ", ");

			ini_report_add(s->r, s->lineno, key,
				       "unknown key in [%s] (valid: %s)",
				       section, all);
			free(all);
		} else {
			struct ini *ini = s->ini;
			struct ini_entry *e;

			ini->entries = xreallocarray(ini->entries,
						     ini->n_entries + 1,
						     sizeof(*ini->entries));
			e = &ini->entries[ini->n_entries++];
			e->section = xstrdup(section);
			e->key = xstrdup(key);
			e->value = xstrdup(value);
			e->line = s->lineno;
			e->list = list;
		}
	}
	/* keys of an unknown or malformed section: already reported */
}

/* One line (without its LF). */
static void scan_line(struct scan *s, const char *start, size_t linelen)
{
	char *copy, *line;
	size_t n;

	if (!scan_line_bytes(s->r, s->lineno, start, linelen))
		return;
	copy = xstrndup(start, linelen);
	line = strip(copy);
	n = strlen(line);
	if (n == 0) {
		/* blank */
	} else if (line[n - 1] == '\\') {
		/* iniparser would join the next line to this one,
		   silently, even to a comment. */
		ini_report_add(s->r, s->lineno, NULL,
			       "line ends with '\\', which would join the next line to it; "
			       "remove the backslash");
	} else if (line[0] == '#' || line[0] == ';') {
		/* comment */
	} else if (line[0] == '[') {
		scan_section(s, line, n);
	} else if (strchr(line, '=') == NULL) {
		ini_report_add(s->r, s->lineno, NULL,
			       "expected \"key = value\", \"[section]\" or a comment");
	} else {
		scan_entry(s, line);
	}
	free(copy);
}

/* The length of a UTF-8 byte order mark at the start of text: 3 or 0.
   Editors on Windows write one; it is no part of the first line. */
static size_t ini_bom_len(const char *text, size_t len)
{
	return len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/* Scan the whole file.  Entries of known sections are recorded; every
   structural problem is reported. */
static void ini_scan(struct ini *ini, struct ini_report *r,
		     const char *text, size_t len,
		     const struct ini_schema *schema)
{
	struct scan s = { .ini = ini, .r = r, .schema = schema };
	size_t pos = ini_bom_len(text, len);

	while (pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t linelen = nl ? (size_t)(nl - start) : len - pos;

		pos += linelen + (nl ? 1 : 0);
		s.lineno++;
		scan_line(&s, start, linelen);
	}
}

/* ---------------------------------------------------------------------
 * Loading: the file, the scanner, then iniparser.
 */

/* The whole regular file at path into b; false after reporting. */
static bool read_file(const char *path, unsigned flags, struct ini_report *r,
		      struct buf *b)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ini_report_add(r, 0, NULL, "cannot open: %s", strerror(errno));
		return false;
	}
	if (fstat(fd, &st) < 0) {
		ini_report_add(r, 0, NULL, "cannot stat: %s", strerror(errno));
		close(fd);
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		ini_report_add(r, 0, NULL, "not a regular file");
		close(fd);
		return false;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
	    (flags & INI_LOAD_PEEK) == 0) {
		ini_report_add(r, 0, NULL,
			       "is writable by group or others (mode %04o); "
			       "run chmod go-w on it",
			       (unsigned)(st.st_mode & 07777));
	}
	for (;;) {
		ssize_t n;

		buf_reserve(b, 4096);
		n = read(fd, b->data + b->len, b->cap - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ini_report_add(r, 0, NULL, "cannot read: %s", strerror(errno));
			close(fd);
			return false;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		if (b->len > INI_MAX_FILE_SIZE) {
			ini_report_add(r, 0, NULL,
				       "file too large (more than %d bytes)",
				       INI_MAX_FILE_SIZE);
			close(fd);
			return false;
		}
	}
	close(fd);
	return true;
}

static int ini_silent(const char *fmt, ...)
{
	(void)fmt;
	return 0;
}

/* iniparser's value of section.key, NULL if it has none. */
static const char *dict_value(const struct ini *ini, const struct ini_entry *e)
{
	char *k = xasprintf("%s:%s", e->section, e->key);
	const char *v = iniparser_getstring(ini->dict, k, NULL);

	free(k);
	return v;
}

/* iniparser's reading of text (the file without its byte order mark,
   which iniparser would take for part of the first line): it reads
   files only, so the text goes into a memory file of its own. */
static dictionary *load_text(const char *text, size_t len, struct ini_report *r)
{
	char path[64];
	dictionary *d;
	int fd = memfd_create("imapsync-task-ini", MFD_CLOEXEC);

	if (fd < 0 || write_full(fd, text, len) < 0) {
		ini_report_add(r, 0, NULL, "cannot read the file after its UTF-8 byte order "
			       "mark (%s): remove the mark", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	d = iniparser_load(path);
	close(fd);
	return d;
}

/* Let iniparser read the file too; both readers must agree on every
   value we are going to use. */
static void second_reader(struct ini *ini, const char *path, const struct buf *b,
			  struct ini_report *r)
{
	size_t bom = ini_bom_len((const char *)b->data, b->len), before = r->n;

	iniparser_set_error_callback(ini_silent);
	ini->dict = bom == 0 ? iniparser_load(path)
		: load_text((const char *)b->data + bom, b->len - bom, r);
	iniparser_set_error_callback(NULL);
	if (ini->dict == NULL) {
		if (r->n == before)
			ini_report_add(r, 0, NULL, "the INI reader refused the file");
		return;
	}
	for (size_t i = 0; i < ini->n_entries; i++) {
		const struct ini_entry *e = &ini->entries[i];
		const char *v = dict_value(ini, e);

		/* iniparser holds the last value of a list key only */
		if (e->list && ini_find_next(ini, e) != NULL)
			continue;
		if (v == NULL || strcmp(v, e->value) != 0) {
			ini_report_add(r, e->line, e->key,
				       "value is read differently by the INI reader; "
				       "put it in double quotes");
		}
	}
}

struct ini *ini_load(const char *path, const struct ini_schema *schema,
		     unsigned flags, struct ini_report *r)
{
	const struct ini_section_spec *spec;
	struct buf b = { 0 };
	struct ini *ini;
	size_t errors_before;

	if (!read_file(path, flags, r, &b)) {
		buf_free(&b);
		return NULL;
	}
	ini = xcalloc(1, sizeof(*ini));
	errors_before = r->n;
	ini_scan(ini, r, (const char *)b.data, b.len, schema);
	/* With structural errors (a duplicate key, say) the two readers
	   legitimately disagree; the scanner's values are used then. */
	if ((flags & INI_LOAD_PEEK) == 0 && r->n == errors_before)
		second_reader(ini, path, &b, r);
	buf_free(&b);

	for (spec = schema->sections; spec->name != NULL; spec++) {
		if (spec->required && find_section(ini, spec->name) == NULL)
			ini_report_add(r, 0, NULL,
				       "[%s]: required section is missing",
				       spec->name);
	}
	return ini;
}

const char *ini_value(const struct ini *ini, const struct ini_entry *e)
{
	const char *v;

	if (!e->list && ini->dict != NULL && (v = dict_value(ini, e)) != NULL)
		return v;
	return e->value;
}
