/* test_csv.c - the RFC 4180 reader (csv.c), alone. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "tap.h"
#include "util.h"

/* Read all of text; the records as "f1|f2|...@LINE" joined by "\n", or
   "ERROR@LINE: text" for an error (after the records before it). */
static char *dump(const char *text, size_t len)
{
	struct csv_reader r;
	struct csv_record rec = { 0 };
	struct buf b = { 0 };
	enum csv_result res;
	char *s;

	csv_init(&r, text, len);
	while ((res = csv_next(&r, &rec)) == CSV_RECORD) {
		for (size_t i = 0; i < rec.n; i++)
			buf_appendf(&b, "%s%s", i ? "|" : "", rec.fields[i]);
		buf_appendf(&b, "@%u\n", rec.line);
	}
	if (res == CSV_ERROR)
		buf_appendf(&b, "ERROR@%u: %s\n", r.error_line, r.error);
	csv_record_free(&rec);
	s = xstrndup(b.len ? (const char *)b.data : "", b.len);
	buf_free(&b);
	return s;
}

static void is(const char *text, const char *want, const char *name)
{
	char *got = dump(text, strlen(text));

	if (!ok(strcmp(got, want) == 0, "%s", name)) {
		diag("got:\n%s", got);
		diag("expected:\n%s", want);
	}
	free(got);
}

static void has_error(const char *text, unsigned line, const char *needle, const char *name)
{
	struct csv_reader r;
	struct csv_record rec = { 0 };
	enum csv_result res;

	csv_init(&r, text, strlen(text));
	while ((res = csv_next(&r, &rec)) == CSV_RECORD)
		;
	csv_record_free(&rec);
	if (!ok(res == CSV_ERROR && r.error_line == line && strstr(r.error, needle) != NULL,
		"%s", name))
		diag("result %d, line %u: %s", (int)res, r.error_line, r.error);
}

int main(void)
{
	is("a,b,c\n1,2,3\n", "a|b|c@1\n1|2|3@2\n", "plain fields, LF");
	is("a,b\r\n1,2\r\n", "a|b@1\n1|2@2\n", "CRLF line ends");
	is("a,b\r1,2", "a|b@1\n1|2@2\n", "lone CR; last record without a line end");
	is("a,b\n1,2", "a|b@1\n1|2@2\n", "no line end at the end of the text");
	is("", "", "empty text: no record");
	is("\xef\xbb\xbf" "a,b\n", "a|b@1\n", "a UTF-8 BOM at the start is skipped");
	is("a,\xef\xbb\xbf" "b\n", "a|\xef\xbb\xbf" "b@1\n", "a BOM inside is data");
	is("\"a,b\",c\n", "a,b|c@1\n", "a comma inside quotes");
	is("\"say \"\"hi\"\"\",x\n", "say \"hi\"|x@1\n", "doubled quotes inside quotes");
	is("\"\"\"\",\"\"\n", "\"|@1\n", "a lone quote, and an empty quoted field");
	is("\"line1\nline2\",x\ny,z\n", "line1\nline2|x@1\ny|z@3\n",
	   "LF inside quotes; the next record's line counts it");
	is("\"a\r\nb\",c\r\nd,e\r\n", "a\r\nb|c@1\nd|e@3\n", "CRLF inside quotes is kept");
	is(",,\n", "||@1\n", "empty fields");
	is("a,b\n\nc,d\n", "a|b@1\n@2\nc|d@3\n", "a blank line is a record of one empty field");
	is(" a , b \n", " a | b @1\n", "spaces in unquoted fields are data");
	is("p\xc3\xa4ss,\xe2\x82\xac\xf0\x9f\x94\x91\n", "p\xc3\xa4ss|\xe2\x82\xac\xf0\x9f\x94\x91@1\n",
	   "UTF-8 (2, 3 and 4 bytes)");
	is("\"p,w\"\"d\xc3\xa4\",1\n", "p,w\"d\xc3\xa4|1@1\n",
	   "a password with a comma, a quote and UTF-8");
	is("x,\"\"\n", "x|@1\n", "a quoted empty field at the end of a record");
	is("a,\"b\"", "a|b@1\n", "a quoted field at the end of the text");

	has_error("a,b\n\"open,c\nd,e\n", 2, "never closed", "an unterminated quote names its line");
	has_error("a,\"b\"c\n", 1, "after the closing quote", "text after a closing quote");
	has_error("a,\"b\" \n", 1, "after the closing quote", "a space after a closing quote");
	has_error("a,b\"c\n", 1, "inside an unquoted field", "a quote inside an unquoted field");
	has_error("a,b\nc,\xc3\n", 2, "field 2: not valid UTF-8", "invalid UTF-8 names field and line");
	has_error("a,\xc0\xaf\n", 1, "not valid UTF-8", "an overlong encoding");
	has_error("\"x\ny\",\xff\n", 2, "field 2", "the error line counts lines inside quotes");

	{
		static const char text[] = "a,b\0c\n";
		char *got = dump(text, sizeof(text) - 1);

		ok(strstr(got, "ERROR@1: field 2: NUL byte") != NULL, "a NUL byte is refused");
		free(got);
	}
	{
		struct csv_reader r;
		struct csv_record rec = { 0 };

		csv_init(&r, "a,b\n\"x", 6);
		ok(csv_next(&r, &rec) == CSV_RECORD && rec.n == 2, "a record before an error");
		ok(csv_next(&r, &rec) == CSV_ERROR && rec.n == 0 && rec.fields == NULL,
		   "the error leaves an empty record");
		ok(csv_next(&r, &rec) == CSV_ERROR, "and the reader stays failed");
		csv_record_free(&rec);
	}
	{
		struct csv_reader r;
		struct csv_record rec = { 0 };

		csv_init(&r, "a,\"b\",\"\", c \n", 13);
		ok(csv_next(&r, &rec) == CSV_RECORD && rec.n == 4 && !rec.quoted[0] &&
		   rec.quoted[1] && rec.quoted[2] && !rec.quoted[3],
		   "each field says whether it was quoted");
		csv_record_free(&rec);
		ok(rec.quoted == NULL && rec.fields == NULL && rec.n == 0,
		   "csv_record_free empties the record");
	}
	{
		struct csv_reader r;
		struct csv_record rec = { 0 };
		bool blank[4];
		size_t i = 0;

		csv_init(&r, ",,\n \t, \nx,\n\n", 12);
		while (i < 4 && csv_next(&r, &rec) == CSV_RECORD)
			blank[i++] = csv_record_blank(&rec);
		csv_record_free(&rec);
		ok(i == 4 && blank[0] && blank[1] && !blank[2] && blank[3],
		   "csv_record_blank: empty and white fields only");
	}
	return tap_done();
}
