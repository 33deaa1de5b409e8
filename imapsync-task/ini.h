/* ini.h - the INI scanner and its FILE:LINE reports.
 *
 * ini.c is the only file that includes iniparser.  A file is read
 * against a schema (its sections and their keys) that the caller owns;
 * every problem is collected in a report and handed to an error sink as
 * "FILE:LINE: key: reason", in line order.
 *
 * Two readers look at every file:
 *
 *  - our own line scanner knows where each key stands, so every error
 *    can say FILE:LINE; it also refuses what iniparser would silently
 *    accept or silently misread: duplicate keys and sections, keys
 *    outside a section, text after a closing quote, unterminated quotes,
 *    lines ending in '\' (iniparser joins them with the next line, even
 *    in comments), NUL and control bytes, invalid UTF-8, and a ';' or
 *    '#' glued to an unquoted value's text ("user = alice#1", which
 *    both readers would cut to "alice"; after a space or tab it starts
 *    a comment).  A UTF-8 byte order mark at the start of the file is
 *    skipped (iniparser then reads the file without it).
 *  - iniparser supplies the values.  Its value of every key is compared
 *    with the scanner's; they cannot differ for a file the scanner
 *    accepts, and if they ever did, that key is refused rather than used.
 *    A list key (one the schema lets repeat) is the exception: iniparser
 *    keeps only its last value, so that one is compared and the
 *    scanner's values are used.
 *
 * When the scanner already found errors iniparser usually refuses the file
 * as well; the scanner's values are then used so that every remaining
 * error of the file is still reported in the same run.
 */
#ifndef INI_H
#define INI_H

#include <stdbool.h>
#include <stddef.h>

/* Error sink: every problem found is reported through it, one line each
   (the same function type as task_error_fn). */
typedef void ini_error_fn(void *ctx, const char *line);

/* ---------------------------------------------------------------------
 * Reports: collected while a file is read, handed over at the end.
 */

struct ini_report_item;
struct ini_report {
	const char *path;       /* file name as shown in messages; not copied */
	struct ini_report_item *items;
	size_t n, cap;
};

void ini_report_init(struct ini_report *r, const char *path);
/* Add "PATH:LINE: KEY: reason".  line 0 leaves out the line, key NULL
   leaves out the key. */
void ini_report_add(struct ini_report *r, unsigned line, const char *key,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Hand every collected error to err (in line order, then in the order
   they were added; err may be NULL) and empty the report.  Returns the
   number of errors. */
size_t ini_report_flush(struct ini_report *r, ini_error_fn *err, void *ctx);

/* A value for an error message: quoted, non-printable bytes escaped,
   long values cut (free it).  Never use it for a value that might be a
   secret. */
char *ini_quote(const char *s);

/* ---------------------------------------------------------------------
 * Reading a file against a schema.
 */

struct ini_section_spec {
	const char *name;               /* lowercase */
	const char *const *keys;        /* lowercase, NULL-terminated */
	bool required;
	/* List keys (also in keys), NULL-terminated, or NULL: they may
	   appear several times, one value each (ini_find_next()). */
	const char *const *list_keys;
};

struct ini_schema {
	const struct ini_section_spec *sections;  /* ends with a NULL name */
	/* Optional: the reason to refuse key wherever it stands (even in
	   an unknown section), or NULL to accept it.  The value of a
	   refused key is never echoed. */
	const char *(*key_refused)(const char *key);
};

/* One key of a known section (section and key names lowercase). */
struct ini_entry {
	char *section;
	char *key;
	char *value;            /* as the scanner read it: use ini_value() */
	unsigned line;
	bool list;              /* of a list key */
};

struct ini;

/* INI_LOAD_PEEK: a quick look at a file that another load checks in
   full -- no check of the file's mode, the scanner's values only. */
#define INI_LOAD_PEEK 0x1u

/* Read and scan path against schema, reporting into r: the file's type,
   size and mode (writable by group or others), every line, unknown and
   duplicate sections and keys, missing required sections, and values
   the two readers read differently.  NULL if the file could not be read
   at all (reported); otherwise the keys that were accepted, even when
   errors were reported. */
struct ini *ini_load(const char *path, const struct ini_schema *schema,
		     unsigned flags, struct ini_report *r);
void ini_free(struct ini **ini);

/* The line of [section], 0 if the file has none. */
unsigned ini_section_line(const struct ini *ini, const char *section);
/* The entry of section.key, NULL if absent; for a list key the first. */
const struct ini_entry *ini_find(const struct ini *ini, const char *section,
				 const char *key);
/* The next entry of the same list key after e (file order), or NULL. */
const struct ini_entry *ini_find_next(const struct ini *ini,
				      const struct ini_entry *e);
/* The entry's value: iniparser's when it accepted the file (it keeps
   only the last value of a list key: the scanner's are used then, and
   the last one was compared with iniparser's). */
const char *ini_value(const struct ini *ini, const struct ini_entry *e);
/* Every accepted entry, in file order. */
const struct ini_entry *ini_entries(const struct ini *ini, size_t *count_r);

#endif
