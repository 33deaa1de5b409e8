/* test_state_line.c - the text of one state line: round trips, the
 * version 1 format, and refusal of damaged lines.  Links only
 * state_line.c and util.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "state_line.h"
#include "tap.h"
#include "util.h"

static char *format(const struct sline *l)
{
	struct buf b = { 0 };

	sline_format(&b, l);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static void test_roundtrip(void)
{
	struct sline in = { .letter = 'D', .mbox = (char *)"Archiv/2024 & mehr%\xc3\xa9",
			    .ruv = 7, .ruid = 42, .size = 1234, .hash = 0xdeadbeefcafef00dULL,
			    .luv = 9, .luid = 101, .luidnext = 100, .chash = 0x1234, .clen = 99,
			    .flags = (char *)"\\Seen $Label1" }, out;
	char *text = format(&in);

	ok(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
	ok(strstr(text, "%20") != NULL && strstr(text, "%25") != NULL && strstr(text, "%C3") != NULL,
	   "space, %% and 8-bit bytes are escaped");
	text[strlen(text) - 1] = '\0';
	ok(sline_parse(text, false, &out), "it parses back");
	ok(out.letter == 'D' && strcmp(out.mbox, in.mbox) == 0 && out.ruv == 7 && out.ruid == 42 &&
	   out.size == 1234 && out.hash == in.hash && out.luv == 9 && out.luid == 101 &&
	   out.luidnext == 100 && out.chash == 0x1234 && out.clen == 99 &&
	   strcmp(out.flags, in.flags) == 0, "with every field");
	sline_free(&out);
	free(text);

	in.flags = NULL;
	text = format(&in);
	text[strlen(text) - 1] = '\0';
	ok(sline_parse(text, false, &out) && out.flags == NULL, "no flags recorded stays NULL");
	sline_free(&out);
	free(text);
	in.flags = (char *)"";
	text = format(&in);
	text[strlen(text) - 1] = '\0';
	ok(sline_parse(text, false, &out) && out.flags != NULL && out.flags[0] == '\0',
	   "an empty flag set stays empty");
	sline_free(&out);
	free(text);

	struct sline rec = { .letter = 'R', .mbox = (char *)"INBOX", .ruv = 5, .luv = 6,
			     .maxuid = 77, .modseq = 123456789012ULL };
	text = format(&rec);
	text[strlen(text) - 1] = '\0';
	ok(sline_parse(text, false, &out) && out.letter == 'R' && out.ruv == 5 && out.luv == 6 &&
	   out.maxuid == 77 && out.modseq == 123456789012ULL, "a folder record round-trips");
	sline_free(&out);
	free(text);
}

static void test_damage(void)
{
	struct sline in = { .letter = 'S', .mbox = (char *)"INBOX", .ruv = 1, .ruid = 30,
			    .size = 10 }, out;
	char *text = format(&in);
	text[strlen(text) - 1] = '\0';
	char *p = strstr(text, " 30 ");

	ok(p != NULL, "the line holds the UID");
	if (p != NULL)
		p[1] = '4';
	ok(!sline_parse(text, false, &out), "a changed digit fails the checksum");
	free(text);

	char bad1[] = "Q INBOX 1 2 10 aa 3 0 5 0 0 - #00000000";
	ok(!sline_parse(bad1, false, &out), "a wrong checksum is refused");
	char bad2[] = "I INB%0OX 1 2 10 aa 3 0 5";
	ok(!sline_parse(bad2, true, &out), "a bad escape is refused");
	char bad3[] = "I INBOX%00 1 2 10 aa 3 0 5";
	ok(!sline_parse(bad3, true, &out), "an escaped NUL is refused");
	char bad4[] = "";
	ok(!sline_parse(bad4, true, &out), "an empty line is refused");
	char v1[] = "S INBOX 1 2 10 00000000000000aa 3 4 5";
	ok(sline_parse(v1, true, &out) && out.letter == 'S' && out.ruid == 2 && out.hash == 0xaa &&
	   out.luid == 4 && out.flags == NULL, "a version 1 line is read when told");
	sline_free(&out);
	char v1b[] = "S INBOX 1 2 10 00000000000000aa 3 4 5";
	ok(!sline_parse(v1b, false, &out), "and refused as version 2");
}

/* Found by fuzz_journal: a name whose escaped form passed a fixed
   4095-byte field was written but could not be read back. */
static void test_long_name(void)
{
	char *name = xmalloc(5001);
	struct sline in = { .letter = 'S', .ruv = 1, .ruid = 2 }, out;

	memset(name, ' ', 5000);
	name[5000] = '\0';
	in.mbox = name;
	char *text = format(&in);
	text[strlen(text) - 1] = '\0';
	ok(strlen(text) > 15000, "a 5000-byte name of spaces escapes to 15000 bytes");
	ok(sline_parse(text, false, &out) && strcmp(out.mbox, name) == 0,
	   "and reads back whole");
	sline_free(&out);
	free(text);
	free(name);
}

int main(void)
{
	test_roundtrip();
	test_long_name();
	test_damage();
	return tap_done();
}
