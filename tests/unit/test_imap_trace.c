/* test_imap_trace.c - the -vv trace of what a server sends: one line per
 * protocol line, \r\n shown, message literals left out (whatever the
 * chunking), other literals shown, long lines cut, secrets redacted. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_trace.h"
#include "log.h"
#include "tap.h"
#include "util.h"

static char lines[64][8192];
static int nlines;

static void collect(void *ctx, const char *text)
{
	(void)ctx;
	if (nlines < 64)
		snprintf(lines[nlines++], sizeof(lines[0]), "%s", text);
}

/* A fresh trace; the one before is freed (t starts zeroed). */
static void start(struct imap_trace *t)
{
	imap_trace_free(t);
	imap_trace_init(t, "remote", "<<");
	t->emit = collect;
	t->emit_ctx = NULL;
	nlines = 0;
}

/* Feed s in chunks of step bytes. */
static void feed(struct imap_trace *t, const char *s, size_t len, size_t step)
{
	for (size_t i = 0; i < len; i += step)
		imap_trace_feed(t, s + i, len - i < step ? len - i : step);
}

static bool any_line_has(const char *needle)
{
	for (int i = 0; i < nlines; i++)
		if (strstr(lines[i], needle) != NULL)
			return true;
	return false;
}

int main(void)
{
	struct imap_trace t = { 0 };
	static const char fetch[] =
		"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {27}\r\n"
		"Subject: secret body\r\n\r\nX\r\n"
		")\r\n"
		"t8 OK Fetch completed.\r\n";

	static const size_t steps[] = { 1, 3, 7, 1000 };
	for (size_t k = 0; k < N_ELEMENTS(steps); k++) {
		start(&t);
		feed(&t, fetch, sizeof(fetch) - 1, steps[k]);
		ok(nlines == 4, "chunks of %zu: 4 trace lines (%d)", steps[k], nlines);
		ok(strcmp(lines[0], "* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {27}\\r\\n") == 0,
		   "chunks of %zu: the FETCH line, \\r\\n shown: %s", steps[k], lines[0]);
		ok(strcmp(lines[1], "<literal: 27 bytes of message data, not shown>") == 0,
		   "chunks of %zu: the body is not shown: %s", steps[k], lines[1]);
		ok(strcmp(lines[2], ")\\r\\n") == 0 && strcmp(lines[3], "t8 OK Fetch completed.\\r\\n") == 0,
		   "chunks of %zu: the rest of the response and the tagged reply: %s | %s",
		   steps[k], lines[2], lines[3]);
		ok(!any_line_has("secret body"), "chunks of %zu: no byte of the body", steps[k]);
		imap_trace_free(&t);
	}

	/* Two literals in one FETCH (header and body), LITERAL+ style and
	   binary ~{N}: both left out. */
	start(&t);
	static const char two[] =
		"* 2 fetch (BODY[HEADER] {5}\r\nHi\r\n\r BINARY[] ~{3}\r\nabc)\r\n";
	feed(&t, two, sizeof(two) - 1, 2);
	ok(nlines == 5 && !any_line_has("Hi") && !any_line_has("abc") &&
	   strcmp(lines[2], " BINARY[] ~{3}\\r\\n") == 0,
	   "FETCH in lower case, two literals: none shown (%d lines)", nlines);

	/* A literal outside FETCH is server data: shown, escaped. */
	start(&t);
	static const char list[] =
		"* LIST (\\HasNoChildren) \"/\" {8}\r\nA \"odd\"\x01\r\n"
		"* CAPABILITY IMAP4rev1 LITERAL+ ESEARCH\r\n";
	feed(&t, list, sizeof(list) - 1, 5);
	ok(nlines == 4, "LIST with a literal: 4 lines (%d)", nlines);
	ok(strcmp(lines[1], "<literal 8 bytes> A \"odd\"\\x01") == 0,
	   "a folder name literal is shown, controls escaped: %s", lines[1]);
	ok(strcmp(lines[2], "\\r\\n") == 0, "the line end after it: %s", lines[2]);
	ok(strcmp(lines[3], "* CAPABILITY IMAP4rev1 LITERAL+ ESEARCH\\r\\n") == 0,
	   "server data kept: %s", lines[3]);

	/* An empty literal. */
	start(&t);
	feed(&t, "* 3 FETCH (BODY[] {0}\r\n)\r\n", 26, 4);
	ok(nlines == 3 && strcmp(lines[1], "<literal: 0 bytes of message data, not shown>") == 0,
	   "an empty literal: %s", nlines > 1 ? lines[1] : "");

	/* A bare LF is shown as it came. */
	start(&t);
	feed(&t, "* OK hello\n", 11, 11);
	ok(nlines == 1 && strcmp(lines[0], "* OK hello\\n") == 0, "a bare LF: %s", lines[0]);

	/* A long line is cut, and its literal announcement still seen. */
	start(&t);
	char *big = xmalloc(5000);
	memcpy(big, "* 4 FETCH (X-LONG \"", 19);
	memset(big + 19, 'x', 4000);
	size_t n = 19 + 4000;
	n += (size_t)sprintf(big + n, "\" BODY[] {4}\r\nbodyZ)\r\n");
	feed(&t, big, n, 333);
	ok(nlines == 3 && strstr(lines[0], "bytes in all)") != NULL &&
	   strlen(lines[0]) < IMAP_TRACE_LINE_MAX + 100,
	   "a long line is cut and says its length (%zu chars)", strlen(lines[0]));
	ok(nlines == 3 && strcmp(lines[1], "<literal: 4 bytes of message data, not shown>") == 0 &&
	   strcmp(lines[2], "Z)\\r\\n") == 0, "its literal is still found and left out: %s | %s",
	   lines[1], lines[2]);
	free(big);

	/* A secret echoed by the server is redacted. */
	static const char pw[] = "Tr0ub4dor&3-long";
	log_register_secret(pw);
	start(&t);
	feed(&t, "t3 NO [AUTHENTICATIONFAILED] bad password Tr0ub4dor&3-long\r\n", 60, 9);
	ok(nlines == 1 && strstr(lines[0], pw) == NULL && strstr(lines[0], "<redacted>") != NULL,
	   "an echoed password is redacted: %s", lines[0]);
	log_forget_secret(pw);

	/* An unfinished line is told at the end. */
	start(&t);
	feed(&t, "* OK partial", 12, 12);
	ok(nlines == 0, "nothing before the line end");
	imap_trace_flush(&t);
	ok(nlines == 1 && strcmp(lines[0], "* OK partial ... (incomplete line)") == 0,
	   "flush tells the rest: %s", nlines ? lines[0] : "");
	start(&t);
	feed(&t, "* 5 FETCH (BODY[] {100}\r\nabc", 28, 28);
	imap_trace_flush(&t);
	ok(nlines == 2 && strcmp(lines[1], "<literal: 3 of 100 bytes, incomplete>") == 0,
	   "flush in a literal: %s", nlines > 1 ? lines[1] : "");

	struct buf b = { 0 };
	imap_trace_escape(&b, "a\tb\x7f\x1b[2J\r\n", 10);
	buf_append(&b, "", 1);
	ok(strcmp((char *)b.data, "a\\tb\\x7f\\x1b[2J\\r\\n") == 0, "escape: %s", (char *)b.data);
	buf_free(&b);
	imap_trace_free(&t);
	return tap_done();
}
