/* test_ini.c - the INI scanner and its reports (ini.c), alone.
 *
 * Each case writes a file into a temporary directory and reads it
 * against a small schema of its own: sections [a] (required) and [b].
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ini.h"
#include "tap.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_ini.XXXXXX";
static char *path;              /* the file each case writes */

static const char *const a_keys[] = { "name", "port", "list", NULL };
static const char *const b_keys[] = { "x", "y.z", "with-dash", NULL };
static const char *const b_list_keys[] = { "x", NULL };
static const struct ini_section_spec sections[] = {
	{ "a", a_keys, true, NULL },
	{ "b", b_keys, false, b_list_keys },
	{ NULL, NULL, false, NULL },
};

static const char *refuse_token(const char *key)
{
	return strcmp(key, "token") == 0 ? "tokens are not allowed here" : NULL;
}

static const struct ini_schema schema = { sections, refuse_token };

/* ---- errors: every line the sink got, each ended by '\n' ---------- */

static struct buf errs;
static size_t n_errs;
static bool miscounted;         /* flush returned another count */

static void on_error(void *ctx, const char *line)
{
	(void)ctx;
	buf_appendf(&errs, "%s\n", line);
	n_errs++;
}

/* Did the sink get exactly want ('@' standing for the file's path)? */
static bool errs_are(const char *want)
{
	struct buf w = { 0 };
	bool same;

	for (const char *p = want; *p != '\0'; p++) {
		if (*p == '@')
			buf_append(&w, path, strlen(path));
		else
			buf_append(&w, p, 1);
	}
	same = w.len == errs.len &&
		(w.len == 0 || memcmp(w.data, errs.data, w.len) == 0);
	if (!same) {
		diag("got:\n%.*s", (int)errs.len, (const char *)errs.data);
		diag("expected:\n%.*s", (int)w.len, (const char *)w.data);
	}
	buf_free(&w);
	return same;
}

static bool errs_contain(const char *needle)
{
	buf_append(&errs, "", 1);
	errs.len--;
	return strstr((const char *)errs.data, needle) != NULL;
}

/* ---- files ------------------------------------------------------------ */

static void write_bytes(const char *data, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, data, len) < 0 || fchmod(fd, mode) < 0 ||
	    close(fd) < 0) {
		diag("cannot write %s: %s", path, strerror(errno));
		exit(99);
	}
}

/* Load file (of the report's name p); errors land in errs. */
static struct ini *load_path(const char *p, unsigned flags)
{
	struct ini_report rep;
	struct ini *ini;

	errs.len = 0;
	n_errs = 0;
	ini_report_init(&rep, p);
	ini = ini_load(p, &schema, flags, &rep);
	if (ini_report_flush(&rep, on_error, NULL) != n_errs)
		miscounted = true;
	return ini;
}

/* Write text as the file and load it. */
static struct ini *load(const char *text)
{
	write_bytes(text, strlen(text), 0644);
	return load_path(path, 0);
}

/* Load text: is it read, with exactly the errors want ('@' for the
   path)?  The result stays in *ini_r. */
static bool loads_with(struct ini **ini_r, const char *text, const char *want)
{
	*ini_r = load(text);
	return *ini_r != NULL && errs_are(want);
}

/* The value of section.key, "(absent)" if there is none. */
static const char *val(const struct ini *ini, const char *section,
		       const char *key)
{
	const struct ini_entry *e = ini_find(ini, section, key);

	return e != NULL ? ini_value(ini, e) : "(absent)";
}

static unsigned line_of(const struct ini *ini, const char *section,
			const char *key)
{
	const struct ini_entry *e = ini_find(ini, section, key);

	return e != NULL ? e->line : 0;
}

/* ---- cases ------------------------------------------------------------ */

static void test_valid(void)
{
	struct ini *ini = load("# a comment\n"                  /* 1 */
			       "; another\n"                    /* 2 */
			       "\n"                             /* 3 */
			       "[A]\n"                          /* 4 */
			       "Name = hello world ; trailing\n" /* 5 */
			       "port=143\n"                     /* 6 */
			       "  list = \"a;b # c\"  # note\n" /* 7 */
			       "[ b ]\r\n"                      /* 8 */
			       "x = 'single'\r\n"               /* 9 */
			       "y.z =\n"                        /* 10 */
			       "with-dash = \xc3\xa4\xe2\x82\xac\n"); /* 11 */
	const struct ini_entry *entries;
	size_t n;

	ok(ini != NULL && errs_are(""), "a valid file loads without errors");
	if (ini == NULL)
		return;
	ok(ini_section_line(ini, "a") == 4 && ini_section_line(ini, "b") == 8 &&
	   ini_section_line(ini, "c") == 0,
	   "section lines (names lowercased and stripped)");
	ok(strcmp(val(ini, "a", "name"), "hello world") == 0 &&
	   line_of(ini, "a", "name") == 5, "key lowercased, comment stripped");
	ok(strcmp(val(ini, "a", "port"), "143") == 0 &&
	   line_of(ini, "a", "port") == 6, "no spaces around '='");
	ok(strcmp(val(ini, "a", "list"), "a;b # c") == 0 &&
	   line_of(ini, "a", "list") == 7, "double quotes keep ';' and '#'");
	ok(strcmp(val(ini, "b", "x"), "single") == 0 &&
	   line_of(ini, "b", "x") == 9, "single quotes; CRLF line ends");
	ok(strcmp(val(ini, "b", "y.z"), "") == 0 && line_of(ini, "b", "y.z") == 10,
	   "an empty value is a value");
	ok(strcmp(val(ini, "b", "with-dash"), "\xc3\xa4\xe2\x82\xac") == 0,
	   "UTF-8 value");
	ok(ini_find(ini, "a", "x") == NULL && ini_find(ini, "b", "name") == NULL,
	   "keys belong to their own section");

	entries = ini_entries(ini, &n);
	ok(n == 6 && strcmp(entries[0].key, "name") == 0 &&
	   strcmp(entries[2].key, "list") == 0 &&
	   strcmp(entries[5].section, "b") == 0 &&
	   strcmp(entries[5].key, "with-dash") == 0 && entries[5].line == 11,
	   "every entry, in file order (%zu)", n);
	ini_free(&ini);
	ok(ini == NULL, "ini_free clears the pointer");
	ini_free(&ini);
}

static void test_duplicates(void)
{
	struct ini *ini;

	ok(loads_with(&ini, "[a]\n"             /* 1 */
		      "name = one\n"            /* 2 */
		      "port = 1\n"              /* 3 */
		      "NAME = two\n"            /* 4 */
		      "[b]\n"                   /* 5 */
		      "x = 1\n"                 /* 6 */
		      "[a]\n"                   /* 7 */
		      "port = 2\n",             /* 8 */
		      "@:4: name: duplicate key (first on line 2)\n"
		      "@:7: [a]: duplicate section (first on line 1)\n"),
	   "duplicate key and section, each with the first line");
	ok(ini != NULL && strcmp(val(ini, "a", "name"), "one") == 0 &&
	   line_of(ini, "a", "port") == 3,
	   "the first of each is kept; keys of a duplicate section are dropped");
	ini_free(&ini);

	ok(loads_with(&ini, "[a]\nname = x\n[b]\nname = y\nname = z\n",
		      "@:4: name: unknown key in [b] (valid: x, y.z, with-dash)\n"
		      "@:5: name: unknown key in [b] (valid: x, y.z, with-dash)\n"),
	   "an unknown key is unknown each time, never a duplicate");
	ini_free(&ini);
}

/* A list key: once per value, each read as any other value. */
static void test_list_keys(void)
{
	struct ini *ini;
	const struct ini_entry *e;
	const char *want[] = { "Posta inviata", "^(A;B|C#D)$", "it's",
			       "Entw\xc3\xbcrfe", "" };
	size_t n = 0;
	bool same = true;

	ok(loads_with(&ini, "[a]\n"                           /* 1 */
		      "name = n\n"                             /* 2 */
		      "[b]\n"                                  /* 3 */
		      "x = Posta inviata   ; a comment\n"      /* 4 */
		      "y.z = 1\n"                              /* 5 */
		      "X = \"^(A;B|C#D)$\" # quoted\n"          /* 6 */
		      "x = \"it's\"\n"                          /* 7 */
		      "x = Entw\xc3\xbcrfe\n"                    /* 8 */
		      "x = \"\"\n",                              /* 9 */
		      ""), "a list key may repeat");
	for (e = ini != NULL ? ini_find(ini, "b", "x") : NULL; e != NULL;
	     e = ini_find_next(ini, e)) {
		if (n >= N_ELEMENTS(want) || strcmp(ini_value(ini, e), want[n]) != 0)
			same = false;
		n++;
	}
	ok(same && n == N_ELEMENTS(want),
	   "every value of the list key, in file order (%zu)", n);
	ok(ini != NULL && ini_find_next(ini, ini_find(ini, "b", "y.z")) == NULL &&
	   line_of(ini, "b", "x") == 4, "ini_find gives the first; a plain key "
	   "has no next");
	ini_free(&ini);

	ok(loads_with(&ini, "[a]\nname = n\n[b]\nx = 1\ny.z = 1\ny.z = 2\n",
		      "@:6: y.z: duplicate key (first on line 5)\n"),
	   "another key of the section still appears once");
	ini_free(&ini);
}

static void test_schema(void)
{
	struct ini *ini;

	ok(loads_with(&ini, "name = early\n"    /* 1 */
		      "[a]\n"                   /* 2 */
		      "colour = blue\n"         /* 3 */
		      "[c]\n"                   /* 4 */
		      "anything = goes\n"       /* 5 */
		      "token = s3cr3t\n"        /* 6 */
		      "[a]\n",                  /* 7 */
		      "@:1: name: key outside of any section\n"
		      "@:3: colour: unknown key in [a] (valid: name, port, list)\n"
		      "@:4: [c]: unknown section (valid: a, b)\n"
		      "@:6: token: tokens are not allowed here\n"
		      "@:7: [a]: duplicate section (first on line 2)\n"),
	   "outside a section, unknown key and section, refused key");
	ok(!errs_contain("s3cr3t"), "a refused key's value is not echoed");
	ok(ini != NULL && ini_section_line(ini, "c") == 4 &&
	   ini_find(ini, "c", "anything") == NULL,
	   "an unknown section has a line but no entries");
	ini_free(&ini);

	ok(loads_with(&ini, "token = x\n",
		      "@: [a]: required section is missing\n"
		      "@:1: token: tokens are not allowed here\n"),
	   "refused before 'outside of any section'; a missing required "
	   "section has no line");
	ini_free(&ini);

	ok(loads_with(&ini, "[b]\nx = 1\n", "@: [a]: required section is missing\n"),
	   "required section missing (optional one present)");
	ini_free(&ini);

	ok(loads_with(&ini, "[a]\n", ""), "an optional section may be missing");
	ini_free(&ini);
}

static void test_broken(void)
{
	char longline[1100];
	struct ini *ini;
	char *text;

	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	memcpy(longline, "name = ", 7);
	text = xasprintf("[a]\n"                            /* 1 */
			 "name = a\x01" "b\n"               /* 2 */
			 "name = \xc3\n"                    /* 3 */
			 "%s\n"                             /* 4 */
			 "; joined \\\n"                    /* 5 */
			 "port = \"143\n"                   /* 6 */
			 "port = '143' 2\n"                 /* 7 */
			 "[b] ; comment\n"                  /* 8 */
			 "just words\n"                     /* 9 */
			 " = value\n"                       /* 10 */
			 "k@y = 1\n"                        /* 11 */
			 "[]\n"                             /* 12 */
			 "name = \xed\xa0\x80\n"            /* 13: a surrogate */
			 "name = \xc0\xaf\n"                /* 14: overlong */
			 "list = ok\n",                     /* 15 */
			 longline);
	ok(loads_with(&ini, text,
		      "@:2: control character 0x01 in line\n"
		      "@:3: line is not valid UTF-8\n"
		      "@:4: line too long (at most 1000 bytes)\n"
		      "@:5: line ends with '\\', which would join the next line "
		      "to it; remove the backslash\n"
		      "@:6: port: unterminated double quote\n"
		      "@:7: port: unexpected text after the closing quote\n"
		      "@:8: malformed section header (expected \"[name]\" alone "
		      "on its line)\n"
		      "@:9: expected \"key = value\", \"[section]\" or a comment\n"
		      "@:10: missing key name before '='\n"
		      "@:11: malformed key name (letters, digits, '_', '-', '.')\n"
		      "@:12: malformed section name\n"
		      "@:13: line is not valid UTF-8\n"
		      "@:14: line is not valid UTF-8\n"),
	   "every broken line reported once, with its number, in line order");
	free(text);
	ok(ini != NULL && ini_find(ini, "a", "name") == NULL &&
	   ini_find(ini, "a", "list") == NULL,
	   "keys after a malformed header belong to no section");
	ini_free(&ini);

	/* a NUL byte cannot come through a C string */
	write_bytes("[a]\nname = a\0b\n", 15, 0644);
	ini = load_path(path, 0);
	ok(ini != NULL && errs_are("@:2: NUL byte in line\n"), "NUL byte refused");
	ini_free(&ini);
}

static void test_files(void)
{
	struct ini *ini;
	char *big, *want;
	size_t size = 1024 * 1024 + 1;

	unlink(path);
	ini = load_path(path, 0);
	ok(ini == NULL && errs_are("@: cannot open: No such file or directory\n"),
	   "a missing file: NULL and one error");

	ini = load_path(tmpdir, 0);
	want = xasprintf("%s: not a regular file\n", tmpdir);
	ok(ini == NULL && errs.len == strlen(want) &&
	   memcmp(errs.data, want, errs.len) == 0,
	   "a directory is not a regular file");
	free(want);

	big = xmalloc(size);
	memset(big, '#', size);
	write_bytes(big, size, 0644);
	free(big);
	ini = load_path(path, 0);
	ok(ini == NULL && errs_are("@: file too large (more than 1048576 bytes)\n"),
	   "a file over 1 MiB refused");

	write_bytes("[a]\nname = x\n", 13, 0664);
	ini = load_path(path, 0);
	ok(ini != NULL &&
	   errs_are("@: is writable by group or others (mode 0664); run chmod "
		    "go-w on it\n") && strcmp(val(ini, "a", "name"), "x") == 0,
	   "group-writable: reported, still read");
	ini_free(&ini);

	ini = load_path(path, INI_LOAD_PEEK);
	ok(ini != NULL && errs_are("") && strcmp(val(ini, "a", "name"), "x") == 0,
	   "INI_LOAD_PEEK skips the mode check");
	ini_free(&ini);
}

static void test_report(void)
{
	struct ini_report rep;
	char longval[200];
	char *q;

	ini_report_init(&rep, "f.ini");
	ini_report_add(&rep, 9, "k", "late %d", 1);
	ini_report_add(&rep, 0, NULL, "whole file");
	ini_report_add(&rep, 2, NULL, "early");
	ini_report_add(&rep, 9, NULL, "late %s", "2");
	errs.len = 0;
	ok(ini_report_flush(&rep, on_error, NULL) == 4 &&
	   errs_are("f.ini: whole file\nf.ini:2: early\nf.ini:9: k: late 1\n"
		    "f.ini:9: late 2\n"),
	   "flush: by line, then in the order added");
	errs.len = 0;
	ok(ini_report_flush(&rep, on_error, NULL) == 0 && errs_are(""),
	   "a flushed report is empty");
	ini_report_add(&rep, 1, NULL, "dropped");
	ok(ini_report_flush(&rep, NULL, NULL) == 1, "no sink: only counted");

	q = ini_quote("a\"b\\c\x01\x7f");
	ok(strcmp(q, "\"a\\x22b\\x5cc\\x01\\x7f\"") == 0, "quote escapes: %s", q);
	free(q);
	memset(longval, 'v', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	q = ini_quote(longval);
	ok(strlen(q) == 1 + 80 + 3 + 1 && strcmp(q + 81, "...\"") == 0,
	   "quote cuts long values after 80 bytes");
	free(q);
}

/* Comments in a value, and a byte order mark (issue 12). */
static void test_comments_and_bom(void)
{
	struct ini *ini;

	/* '#' and ';' glued to the value's text would cut it short
	   silently ("alice#1" read as "alice"): refused, line by line. */
	ok(loads_with(&ini, "[a]\n"                              /* 1 */
			    "name = alice#1\n"                   /* 2 */
			    "port = 14;3\n"                      /* 3 */
			    "[b]\n"                              /* 4 */
			    "x = a b#c ; real comment\n"         /* 5 */
			    "y.z = a ;b#c\n",                    /* 6 */
		      "@:2: name: '#' inside an unquoted value would start a comment and "
		      "cut the value short: put the whole value in double quotes "
		      "(key = \"...\"), or a space before a comment\n"
		      "@:3: port: ';' inside an unquoted value would start a comment and "
		      "cut the value short: put the whole value in double quotes "
		      "(key = \"...\"), or a space before a comment\n"
		      "@:5: x: '#' inside an unquoted value would start a comment and "
		      "cut the value short: put the whole value in double quotes "
		      "(key = \"...\"), or a space before a comment\n"),
	   "an unquoted '#' or ';' glued to text is refused, naming the key and the line");
	ok(ini != NULL && ini_find(ini, "a", "name") == NULL &&
	   strcmp(val(ini, "b", "y.z"), "a") == 0,
	   "the refused values are not kept; after a space it is a comment");
	ini_free(&ini);
	ini = load("[a]\nname = \"alice#1\"\nport = '14;3' ; a comment\n"
		   "list = #only a comment\n[b]\nx = 1 #c\ny.z = 2\t;c\n");
	ok(ini != NULL && errs_are("") && strcmp(val(ini, "a", "name"), "alice#1") == 0 &&
	   strcmp(val(ini, "a", "port"), "14;3") == 0 && strcmp(val(ini, "a", "list"), "") == 0 &&
	   strcmp(val(ini, "b", "x"), "1") == 0 && strcmp(val(ini, "b", "y.z"), "2") == 0,
	   "quoted, they are data; at the start of the value or after a space or tab, "
	   "a comment (both readers agree)");
	ini_free(&ini);
	ok(loads_with(&ini, "[a]\ntoken = se#cret\n",
		      "@:2: token: tokens are not allowed here\n"),
	   "a refused key is refused for what it is, its value not looked at");
	ini_free(&ini);

	/* A UTF-8 byte order mark, as Windows editors write it. */
	ini = load("\xef\xbb\xbf[a]\nname = bom\r\nport = 1\n");
	ok(ini != NULL && errs_are("") && strcmp(val(ini, "a", "name"), "bom") == 0 &&
	   ini_section_line(ini, "a") == 1 && line_of(ini, "a", "port") == 3,
	   "a byte order mark at the start is accepted; lines count as before");
	ini_free(&ini);
	ini = load("\xef\xbb\xbf# comment first\n[a]\nname = x\n");
	ok(ini != NULL && errs_are("") && strcmp(val(ini, "a", "name"), "x") == 0,
	   "also before a comment line (iniparser reads the file without it)");
	ini_free(&ini);
	ok(loads_with(&ini, "[a]\nname = \xef\xbb\xbfx\n", "") &&
	   strcmp(val(ini, "a", "name"), "\xef\xbb\xbfx") == 0,
	   "elsewhere U+FEFF is part of the value");
	ini_free(&ini);
}

int main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		diag("mkdtemp: %s", strerror(errno));
		return 99;
	}
	path = xasprintf("%s/t.ini", tmpdir);

	test_valid();
	test_duplicates();
	test_list_keys();
	test_schema();
	test_broken();
	test_files();
	test_report();
	test_comments_and_bom();
	ok(!miscounted, "ini_report_flush returned the number of errors");

	buf_free(&errs);
	unlink(path);
	rmdir(tmpdir);
	free(path);
	return tap_done();
}
