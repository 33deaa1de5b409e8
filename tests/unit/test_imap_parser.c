/* test_imap_parser.c - the IMAP response parser: a table of real
 * responses checked field by field, the same input fed whole, byte by
 * byte and in random chunks, streamed literals, and hostile input that
 * must end in the right error with bounded memory. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "tap.h"
#include "util.h"

#define MiB (1024 * 1024)
/* A string literal and its length, which may include NULs. */
#define IN(s) s, sizeof(s) - 1

struct valid_case {
	const char *in;
	size_t in_len;
	enum imap_resp_type type;
	const char *tag;
	long number;            /* -1: no number */
	const char *name;
	enum imap_status status;
	const char *code;
	const char *text;
	const char *dump;       /* imap_response_dump(): all fields, args too */
};

#define T IMAP_RESP_TAGGED
#define U IMAP_RESP_UNTAGGED
#define C IMAP_RESP_CONTINUATION
#define NONE IMAP_STATUS_NONE

static const struct valid_case valid[] = {
	{ IN("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "CAPABILITY", "Dovecot ready.",
	  "UNTAGGED OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] text=\"Dovecot ready.\"" },
	{ IN("a1 OK [APPENDUID 38505 3955] APPEND completed\r\n"), T, "a1", -1, "OK", IMAP_STATUS_OK, "APPENDUID", "APPEND completed",
	  "TAGGED a1 OK [APPENDUID 38505 3955] text=\"APPEND completed\"" },
	{ IN("* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Flags permitted.\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "PERMANENTFLAGS", "Flags permitted.",
	  "UNTAGGED OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] text=\"Flags permitted.\"" },
	{ IN("A0002 OK [COPYUID 1 1:3 7:9] Copy completed.\r\n"), T, "A0002", -1, "OK", IMAP_STATUS_OK, "COPYUID", "Copy completed.",
	  "TAGGED A0002 OK [COPYUID 1 1:3 7:9] text=\"Copy completed.\"" },
	{ IN("a3 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n"), T, "a3", -1, "NO", IMAP_STATUS_NO, "OVERQUOTA",
	  "Quota exceeded (mailbox for user is full)",
	  "TAGGED a3 NO [OVERQUOTA] text=\"Quota exceeded (mailbox for user is full)\"" },
	{ IN("a4 BAD Error in IMAP command: unbalanced ( [ and \"quote\r\n"), T, "a4", -1, "BAD", IMAP_STATUS_BAD, NULL,
	  "Error in IMAP command: unbalanced ( [ and \"quote",
	  "TAGGED a4 BAD text=\"Error in IMAP command: unbalanced ( [ and \\\"quote\"" },
	{ IN("* BYE Logging out\r\n"), U, NULL, -1, "BYE", IMAP_STATUS_BYE, NULL, "Logging out",
	  "UNTAGGED BYE text=\"Logging out\"" },
	{ IN("* PREAUTH [CAPABILITY IMAP4rev1] Logged in as joe\r\n"), U, NULL, -1, "PREAUTH", IMAP_STATUS_PREAUTH, "CAPABILITY",
	  "Logged in as joe",
	  "UNTAGGED PREAUTH [CAPABILITY IMAP4rev1] text=\"Logged in as joe\"" },
	{ IN("+ \r\n"), C, NULL, -1, NULL, NONE, NULL, "", "CONTINUATION text=\"\"" },
	{ IN("+\r\n"), C, NULL, -1, NULL, NONE, NULL, "", "CONTINUATION text=\"\"" },
	{ IN("+ Ready for literal data [ \"\r\n"), C, NULL, -1, NULL, NONE, NULL,
	  "Ready for literal data [ \"",
	  "CONTINUATION text=\"Ready for literal data [ \\\"\"" },
	{ IN("* 23 EXISTS\r\n"), U, NULL, 23, "EXISTS", NONE, NULL, "",
	  "UNTAGGED #23 EXISTS" },
	{ IN("* 5 FETCH (UID 9 FLAGS (\\Seen $Label1) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" "
	  "RFC822.SIZE 4286 BODY[HEADER.FIELDS (MESSAGE-ID)] {42}\r\n"
	  "Message-ID: <123456789012@example.org>\r\n\r\n)\r\n"), U, NULL, 5, "FETCH", NONE, NULL, "",
	  "UNTAGGED #5 FETCH args=(UID 9 FLAGS (\\Seen $Label1) INTERNALDATE "
	  "\"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286 "
	  "BODY[HEADER.FIELDS (MESSAGE-ID)] "
	  "{42}\"Message-ID: <123456789012@example.org>\\x0d\\x0a\\x0d\\x0a\")" },
	{ IN("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n"), U, NULL, -1, "LIST", NONE, NULL, "",
	  "UNTAGGED LIST args=(\\HasNoChildren \\Sent) \"/\" \"Sent Items\"" },
	{ IN("* LIST () NIL INBOX\r\n"), U, NULL, -1, "LIST", NONE, NULL, "",
	  "UNTAGGED LIST args=() NIL INBOX" },
	{ IN("* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN\r\n"), U, NULL, -1, "CAPABILITY", NONE, NULL, "",
	  "UNTAGGED CAPABILITY args=IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN" },
	{ IN("* SEARCH 1 2 3\r\n"), U, NULL, -1, "SEARCH", NONE, NULL, "",
	  "UNTAGGED SEARCH args=1 2 3" },
	{ IN("* SEARCH\r\n"), U, NULL, -1, "SEARCH", NONE, NULL, "",
	  "UNTAGGED SEARCH" },
	{ IN("* ESEARCH (TAG \"a3\") UID ALL 1:5\r\n"), U, NULL, -1, "ESEARCH", NONE, NULL, "",
	  "UNTAGGED ESEARCH args=(TAG \"a3\") UID ALL 1:5" },
	{ IN("* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 4)\r\n"), U, NULL, -1, "STATUS", NONE, NULL, "",
	  "UNTAGGED STATUS args=\"INBOX\" (MESSAGES 3 UIDNEXT 4)" },
	{ IN("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"), U, NULL, -1, "NAMESPACE", NONE, NULL, "",
	  "UNTAGGED NAMESPACE args=((\"\" \"/\")) NIL NIL" },
	{ IN("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"), U, NULL, -1, "FLAGS", NONE, NULL, "",
	  "UNTAGGED FLAGS args=(\\Answered \\Flagged \\Deleted \\Seen \\Draft)" },
	{ IN("* ENABLED CONDSTORE\r\n"), U, NULL, -1, "ENABLED", NONE, NULL, "",
	  "UNTAGGED ENABLED args=CONDSTORE" },
	{ IN("* ID (\"name\" \"Dovecot\")\r\n"), U, NULL, -1, "ID", NONE, NULL, "",
	  "UNTAGGED ID args=(\"name\" \"Dovecot\")" },
	{ IN("* VANISHED (EARLIER) 1:3\r\n"), U, NULL, -1, "VANISHED", NONE, NULL, "",
	  "UNTAGGED VANISHED args=(EARLIER) 1:3" },
	{ IN("* 1 FETCH (BODY[]<0> {5}\r\nhello BINARY[1] ~{3}\r\na\0b)\r\n"), U, NULL, 1, "FETCH", NONE, NULL, "",
	  "UNTAGGED #1 FETCH args=(BODY[]<0> {5}\"hello\" BINARY[1] ~{3}\"a\\x00b\")" },
	{ IN("* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "UIDVALIDITY", "UIDs valid",
	  "UNTAGGED OK [UIDVALIDITY 3857529045] text=\"UIDs valid\"" },
	{ IN("* OK [HIGHESTMODSEQ 715194045007]\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "HIGHESTMODSEQ", "",
	  "UNTAGGED OK [HIGHESTMODSEQ 715194045007] text=\"\"" },
	{ IN("a5 OK\r\n"), T, "a5", -1, "OK", IMAP_STATUS_OK, NULL, "",
	  "TAGGED a5 OK text=\"\"" },
	{ IN("a6 ok [read-write] select done\r\n"), T, "a6", -1, "OK", IMAP_STATUS_OK, "READ-WRITE", "select done",
	  "TAGGED a6 OK [READ-WRITE] text=\"select done\"" },
	{ IN("* 2 EXPUNGE\r\n"), U, NULL, 2, "EXPUNGE", NONE, NULL, "",
	  "UNTAGGED #2 EXPUNGE" },
	{ IN("* STATUS {5}\r\nINBOX (MESSAGES 1)\r\n"), U, NULL, -1, "STATUS", NONE, NULL, "",
	  "UNTAGGED STATUS args={5}\"INBOX\" (MESSAGES 1)" },
	{ IN("* LIST (\\Noselect) \".\" \"quo\\\"te\\\\back\"\r\n"), U, NULL, -1, "LIST", NONE, NULL, "",
	  "UNTAGGED LIST args=(\\Noselect) \".\" \"quo\\\"te\\\\back\"" },
	{ IN("a7 NO [BADCHARSET (UTF-8 \"ISO-8859-1\")] unsupported\r\n"), T, "a7", -1, "NO", IMAP_STATUS_NO, "BADCHARSET", "unsupported",
	  "TAGGED a7 NO [BADCHARSET (UTF-8 \"ISO-8859-1\")] text=\"unsupported\"" },
	{ IN("* NO [ALERT] foo] bar [ baz \"\r\n"), U, NULL, -1, "NO", IMAP_STATUS_NO, "ALERT", "foo] bar [ baz \"",
	  "UNTAGGED NO [ALERT] text=\"foo] bar [ baz \\\"\"" },
	{ IN("* OK [XWEIRD a(b \"c] x\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "XWEIRD", "x",
	  "UNTAGGED OK [XWEIRD a(b \"c] text=\"x\"" },
	{ IN("* OK [no closing bracket\r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, NULL, "[no closing bracket",
	  "UNTAGGED OK text=\"[no closing bracket\"" },
	{ IN("* 3 FETCH (UID 12 BODY[HEADER.FIELDS (\"FROM\" \"X)]\")] NIL)\r\n"), U, NULL, 3, "FETCH", NONE, NULL, "",
	  "UNTAGGED #3 FETCH args=(UID 12 BODY[HEADER.FIELDS (\"FROM\" \"X)]\")] NIL)" },
	{ IN("* 1 FETCH (FLAGS (\\Seen) UID 1)\n"), U, NULL, 1, "FETCH", NONE, NULL, "",
	  "UNTAGGED #1 FETCH args=(FLAGS (\\Seen) UID 1)" },
	{ IN("* 4 FETCH (ENVELOPE (\"Wed, 17 Jul 1996\" \"subj\" ((\"A\" NIL \"a\" \"b.c\")) "
	  "NIL NIL NIL NIL nil NIL \"<id@x>\"))\r\n"), U, NULL, 4, "FETCH", NONE, NULL, "",
	  "UNTAGGED #4 FETCH args=(ENVELOPE (\"Wed, 17 Jul 1996\" \"subj\" "
	  "((\"A\" NIL \"a\" \"b.c\")) NIL NIL NIL NIL NIL NIL \"<id@x>\"))" },
	{ IN("* 1 FETCH (BODY[] {0}\r\n)\r\n"), U, NULL, 1, "FETCH", NONE, NULL, "",
	  "UNTAGGED #1 FETCH args=(BODY[] {0}\"\")" },
	{ IN("* 6 FETCH (X {3+}\r\nabc MODSEQ (12345))\r\n"), U, NULL, 6, "FETCH", NONE, NULL, "",
	  "UNTAGGED #6 FETCH args=(X {3}\"abc\" MODSEQ (12345))" },
	{ IN("* OK [REFERRAL imap://user;AUTH=*@SERVER2/] go  away \r\n"), U, NULL, -1, "OK", IMAP_STATUS_OK, "REFERRAL", "go  away ",
	  "UNTAGGED OK [REFERRAL imap://user;AUTH=*@SERVER2/] text=\"go  away \"" },
	{ IN("* SEARCH  1  2 \r\n"), U, NULL, -1, "SEARCH", NONE, NULL, "",
	  "UNTAGGED SEARCH args=1 2" },
};

/* ---- helpers ------------------------------------------------------- */

static size_t case_len(const struct valid_case *vc)
{
	return vc->in_len;
}

static bool streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* A small fixed-seed generator, so chunkings are reproducible. */
static uint32_t rng_next(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return *state >> 16;
}

enum chunking { CHUNK_WHOLE, CHUNK_BYTES, CHUNK_RANDOM };

/* Run input through a parser and record every event with its absolute
   position: responses as dumps, literals by size (their bytes are
   skipped, as a caller streaming them would), errors by code.  Any two
   chunkings of the same input must give the same transcript. */
static char *transcript(const unsigned char *in, size_t len,
			const struct imap_parser_limits *limits,
			enum chunking how, uint32_t seed)
{
	struct imap_parser *parser = imap_parser_new(limits);
	struct buf out = { 0 };
	size_t pos = 0;

	while (pos < len) {
		size_t chunk = how == CHUNK_WHOLE ? len - pos :
			how == CHUNK_BYTES ? 1 : 1 + rng_next(&seed) % 23;
		size_t consumed;

		if (chunk > len - pos)
			chunk = len - pos;

		enum imap_parse_result ret =
			imap_parser_feed(parser, in + pos, chunk, &consumed);

		pos += consumed;
		if (ret == IMAP_PARSE_RESPONSE) {
			char *dump = imap_response_dump(imap_parser_response(parser));

			buf_appendf(&out, "%zu: %s\n", pos, dump);
			free(dump);
		} else if (ret == IMAP_PARSE_LITERAL) {
			uint64_t size = imap_parser_literal_size(parser);

			buf_appendf(&out, "%zu: literal %llu\n", pos,
				    (unsigned long long)size);
			pos = size > len - pos ? len : pos + (size_t)size;
			imap_parser_literal_done(parser);
		} else if (ret == IMAP_PARSE_ERROR) {
			buf_appendf(&out, "%zu: error %d\n", pos,
				    (int)imap_parser_error(parser));
			break;
		} else if (consumed != chunk) {
			buf_appendf(&out, "%zu: NEED_MORE left bytes\n", pos);
			break;
		}
	}
	imap_parser_free(&parser);
	buf_append(&out, "", 1);
	return (char *)out.data;
}

/* Whole, byte by byte and 3 random chunkings must all agree. */
static bool chunkings_agree(const unsigned char *in, size_t len,
			    const struct imap_parser_limits *limits,
			    char **whole_r)
{
	char *whole = transcript(in, len, limits, CHUNK_WHOLE, 0);
	char *other = transcript(in, len, limits, CHUNK_BYTES, 0);
	bool same = strcmp(whole, other) == 0;

	free(other);
	for (uint32_t seed = 1; seed <= 3 && same; seed++) {
		other = transcript(in, len, limits, CHUNK_RANDOM, seed * 7919);
		same = strcmp(whole, other) == 0;
		free(other);
	}
	if (whole_r != NULL)
		*whole_r = whole;
	else
		free(whole);
	return same;
}

static bool parse_one(struct imap_parser *parser, const char *in, size_t len,
		      const struct imap_response **resp_r)
{
	size_t consumed;
	enum imap_parse_result ret =
		imap_parser_feed(parser, (const unsigned char *)in, len, &consumed);

	*resp_r = imap_parser_response(parser);
	return ret == IMAP_PARSE_RESPONSE && consumed == len;
}

/* ---- tests --------------------------------------------------------- */

static void test_valid_table(void)
{
	for (size_t i = 0; i < N_ELEMENTS(valid); i++) {
		const struct valid_case *vc = &valid[i];
		struct imap_parser *parser = imap_parser_new(NULL);
		const struct imap_response *resp;
		size_t len = case_len(vc);

		if (!ok(parse_one(parser, vc->in, len, &resp),
			"valid %zu parses: %.*s", i,
			(int)strcspn(vc->in, "\r\n"), vc->in)) {
			diag("error: %s", imap_parser_error_string(parser));
			imap_parser_free(&parser);
			continue;
		}
		ok(resp->type == vc->type && streq_null(resp->tag, vc->tag) &&
		   resp->has_number == (vc->number >= 0) &&
		   (vc->number < 0 || resp->number == (uint32_t)vc->number) &&
		   streq_null(resp->name, vc->name) && resp->status == vc->status &&
		   streq_null(resp->code, vc->code) &&
		   resp->text != NULL && strcmp(resp->text, vc->text) == 0,
		   "valid %zu header fields", i);

		char *dump = imap_response_dump(resp);

		if (!ok(strcmp(dump, vc->dump) == 0, "valid %zu dump", i))
			diag("got  %s\nwant %s", dump, vc->dump);
		free(dump);

		char *whole;

		ok(chunkings_agree((const unsigned char *)vc->in, len, NULL, &whole),
		   "valid %zu: whole, bytes and random chunks agree", i);
		free(whole);
		imap_parser_free(&parser);
	}
}

/* All cases back to back through one parser: responses must not leak
   state into the next one, in any chunking. */
static void test_stream_of_responses(void)
{
	struct buf in = { 0 }, want = { 0 };

	for (size_t i = 0; i < N_ELEMENTS(valid); i++) {
		buf_append(&in, valid[i].in, case_len(&valid[i]));
		buf_appendf(&want, "%zu: %s\n", in.len, valid[i].dump);
	}
	buf_append(&want, "", 1);

	char *whole;
	bool agree = chunkings_agree(in.data, in.len, NULL, &whole);

	ok(agree, "all %zu responses in one stream: chunkings agree",
	   N_ELEMENTS(valid));
	ok(strcmp(whole, (char *)want.data) == 0,
	   "all responses in one stream: expected transcript");
	free(whole);
	buf_free(&in);
	buf_free(&want);
}

static void test_field_access(void)
{
	struct imap_parser *parser = imap_parser_new(NULL);
	const struct imap_response *resp;
	const struct imap_arg *arg;
	const char *s;
	uint64_t num;
	static const char in[] =
		"* 12 FETCH (UID 4294967296 X-GM-LABELS NIL FLAGS ())\r\n";

	ok(parse_one(parser, in, sizeof(in) - 1, &resp), "fetch parses");
	arg = resp->args;
	ok(arg != NULL && arg->type == IMAP_ARG_LIST && arg->list_count == 6 &&
	   arg->next == NULL, "one list with 6 children");
	arg = arg->list;
	ok(imap_arg_is_atom(arg, "UID") && imap_arg_is_atom(arg, "uid"),
	   "imap_arg_is_atom ignores case");
	ok(imap_arg_get_number(arg->next, &num) && num == 4294967296ull,
	   "imap_arg_get_number reads 64 bits");
	ok(!imap_arg_get_number(arg, &num), "an atom is no number");
	arg = arg->next->next->next;
	ok(imap_arg_get_nstring(arg, &s) && s == NULL, "NIL as nstring");
	ok(imap_arg_as_astring(arg) == NULL, "NIL is no astring");
	arg = arg->next->next;
	ok(arg->type == IMAP_ARG_LIST && arg->list == NULL &&
	   arg->list_count == 0 && !imap_arg_get_nstring(arg, &s),
	   "empty list");
	ok(imap_parser_last_arg(parser) == resp->args,
	   "last_arg after a response is its last top-level arg");
	imap_parser_free(&parser);
	ok(parser == NULL, "imap_parser_free sets the pointer to NULL");
	imap_parser_free(&parser);
}

/* Feed a streamed-literal input; check each event and the final dump. */
static void streamed_literal_check(const char *label, const unsigned char *in,
				   size_t len, bool bytewise)
{
	const struct imap_parser_limits limits = {
		.max_line = 1024, .max_depth = 8,
		.max_inline_literal = 4, .max_literal = 1000,
	};
	struct imap_parser *parser = imap_parser_new(&limits);
	size_t pos = 0, consumed, literal_at = 0;
	int literals = 0, responses = 0;
	bool literal_state_ok = true;
	char *dumps[2] = { NULL, NULL };

	while (pos < len) {
		size_t chunk = bytewise ? 1 : len - pos;
		enum imap_parse_result ret =
			imap_parser_feed(parser, in + pos, chunk, &consumed);

		pos += consumed;
		if (ret == IMAP_PARSE_LITERAL) {
			const struct imap_arg *last = imap_parser_last_arg(parser);
			const struct imap_response *resp = imap_parser_response(parser);

			literals++;
			literal_at = pos;
			literal_state_ok = imap_parser_literal_size(parser) == 11 &&
				imap_parser_literal8(parser) == (in[pos - 7] == '~') &&
				imap_arg_is_atom(last, "BODY[]") &&
				resp->has_number && resp->number == 7 &&
				strcmp(resp->name, "FETCH") == 0 &&
				memcmp(in + pos, "hello world", 11) == 0;
			pos += 11;
			imap_parser_literal_done(parser);
		} else if (ret == IMAP_PARSE_RESPONSE) {
			if (responses < 2)
				dumps[responses] =
					imap_response_dump(imap_parser_response(parser));
			responses++;
		} else if (ret == IMAP_PARSE_ERROR) {
			break;
		}
	}
	ok(literals == 1 && literal_state_ok,
	   "%s: one LITERAL event with size, item name and partial response", label);
	ok(literal_at > 0 && memcmp(in + literal_at - 6, "{11}\r\n", 6) == 0,
	   "%s: consumed ends right after {11}CRLF", label);
	ok(responses == 2 && dumps[0] != NULL && dumps[1] != NULL &&
	   strstr(dumps[0], "{11}<streamed> FLAGS (\\Seen))") != NULL &&
	   strcmp(dumps[1], "TAGGED a1 OK text=\"done\"") == 0,
	   "%s: response has LITERAL_STREAMED, then the next response", label);
	free(dumps[0]);
	free(dumps[1]);
	imap_parser_free(&parser);
}

static void test_streamed_literal(void)
{
	static const char in[] =
		"* 7 FETCH (UID 3 BODY[] {11}\r\nhello world FLAGS (\\Seen))\r\n"
		"a1 OK done\r\n";
	static const char in8[] =
		"* 7 FETCH (UID 3 BODY[] ~{11}\r\nhello world FLAGS (\\Seen))\r\n"
		"a1 OK done\r\n";

	streamed_literal_check("whole", (const unsigned char *)in,
			       sizeof(in) - 1, false);
	streamed_literal_check("byte by byte", (const unsigned char *)in,
			       sizeof(in) - 1, true);
	streamed_literal_check("literal8", (const unsigned char *)in8,
			       sizeof(in8) - 1, true);
}

/* Many small literals in one response: past the inline budget they are
   streamed too, so a response cannot pin unbounded memory. */
static void test_inline_budget(void)
{
	const struct imap_parser_limits limits = {
		.max_line = 4096, .max_depth = 8,
		.max_inline_literal = 4, .max_literal = 1000,
	};
	struct buf in = { 0 };

	buf_appendf(&in, "* 1 FETCH (");
	for (int i = 0; i < 20; i++)
		buf_appendf(&in, "X%d {4}\r\nabcd ", i);
	buf_appendf(&in, "Y 1)\r\n");

	char *t = transcript(in.data, in.len, &limits, CHUNK_WHOLE, 0);
	size_t streamed = 0;

	for (const char *p = t; (p = strstr(p, "literal 4")) != NULL; p++)
		streamed++;
	ok(streamed == 4 && strstr(t, "X15 {4}\"abcd\" X16 {4}<streamed>") != NULL,
	   "16 x 4 bytes inline, then streamed");
	ok(chunkings_agree(in.data, in.len, &limits, NULL),
	   "inline budget: chunkings agree");
	free(t);
	buf_free(&in);
}

struct bad_case {
	const char *label;
	const char *in;
	size_t in_len;
	enum imap_parse_error error;
};

static const struct bad_case bad[] = {
	{ "unterminated quote", IN("* LIST () \"/ INBOX\r\n"), IMAP_PERR_SYNTAX },
	{ "unterminated quote in a list", IN("* 1 FETCH (X \"a)\r\n"),
	  IMAP_PERR_SYNTAX },
	{ "literal 2^64", IN("* 1 FETCH (BODY[] {18446744073709551616}\r\n"),
	  IMAP_PERR_LITERAL_TOO_BIG },
	{ "literal 2^32", IN("* 1 FETCH (BODY[] {4294967296}\r\n"),
	  IMAP_PERR_LITERAL_TOO_BIG },
	{ "literal huge", IN("* 1 FETCH (BODY[] ~{99999999999999999999999999}\r\n"),
	  IMAP_PERR_LITERAL_TOO_BIG },
	{ "NUL in atom", IN("* 1 FETCH (UID 1\0002)\r\n"), IMAP_PERR_NUL },
	{ "NUL in quoted", IN("* LIST () \"/\" \"a\0b\"\r\n"), IMAP_PERR_NUL },
	{ "NUL in text", IN("a1 OK fine\0\r\n"), IMAP_PERR_NUL },
	{ "tag with (", IN("a(1 OK done\r\n"), IMAP_PERR_SYNTAX },
	{ "tag with \"", IN("a\"1 OK done\r\n"), IMAP_PERR_SYNTAX },
	{ "tag with +", IN("a+1 OK done\r\n"), IMAP_PERR_SYNTAX },
	{ "tag with control", IN("\001 OK done\r\n"), IMAP_PERR_SYNTAX },
	{ "tag with 8-bit", IN("a\xff OK done\r\n"), IMAP_PERR_SYNTAX },
	{ "tagged non-status", IN("a1 FETCH (UID 1)\r\n"), IMAP_PERR_SYNTAX },
	{ "empty line", IN("\r\n"), IMAP_PERR_SYNTAX },
	{ "star alone", IN("*\r\n"), IMAP_PERR_SYNTAX },
	{ "star space", IN("* \r\n"), IMAP_PERR_SYNTAX },
	{ "number without name", IN("* 23\r\n"), IMAP_PERR_SYNTAX },
	{ "number too big", IN("* 4294967296 EXISTS\r\n"), IMAP_PERR_SYNTAX },
	{ "unbalanced (", IN("* 1 FETCH (UID 1\r\n"), IMAP_PERR_SYNTAX },
	{ "unbalanced )", IN("* 1 FETCH UID 1)\r\n"), IMAP_PERR_SYNTAX },
	{ "missing space", IN("* LIST ()NIL INBOX\r\n"), IMAP_PERR_SYNTAX },
	{ "strings glued", IN("* LIST () \"/\"\"x\"\r\n"), IMAP_PERR_SYNTAX },
	{ "literal mid-line", IN("* 1 FETCH (X {3} Y)\r\n"), IMAP_PERR_SYNTAX },
	{ "literal no digits", IN("* 1 FETCH (X {}\r\n"), IMAP_PERR_SYNTAX },
	{ "unterminated [", IN("* 1 FETCH (BODY[HEADER \r\n"), IMAP_PERR_SYNTAX },
	{ "control char in atom", IN("* 1 FETCH (UID 1\0012)\r\n"), IMAP_PERR_SYNTAX },
	{ "CR in string", IN("* LIST () \"/\" \"a\rb\"\r\n"), IMAP_PERR_SYNTAX },
	{ "bad char after status", IN("a1 OK(x)\r\n"), IMAP_PERR_SYNTAX },
	{ "bad char after name", IN("* LIST(x)\r\n"), IMAP_PERR_SYNTAX },
	{ "too deep", IN("* X ((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
	  "((((((((((((((((((((((((((((((((((((((\r\n"), IMAP_PERR_TOO_DEEP },
	{ "too deep brackets", IN("* 1 FETCH (B[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	  "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]\r\n"),
	  IMAP_PERR_TOO_DEEP },
};

static void test_malformed_table(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		const struct bad_case *bc = &bad[i];
		size_t len = bc->in_len;
		struct imap_parser *parser = imap_parser_new(NULL);
		size_t consumed;
		enum imap_parse_result ret = imap_parser_feed(parser,
			(const unsigned char *)bc->in, len, &consumed);

		if (!ok(ret == IMAP_PARSE_ERROR &&
			imap_parser_error(parser) == bc->error,
			"malformed: %s -> error %d", bc->label, (int)bc->error))
			diag("got result %d error %d (%s)", (int)ret,
			     (int)imap_parser_error(parser),
			     imap_parser_error_string(parser));
		ok(strlen(imap_parser_error_string(parser)) < 64,
		   "malformed: %s: short static error string", bc->label);
		ret = imap_parser_feed(parser, (const unsigned char *)"* OK\r\n",
				       6, &consumed);
		ok(ret == IMAP_PARSE_ERROR && consumed == 0,
		   "malformed: %s: parser stays dead", bc->label);
		ok(chunkings_agree((const unsigned char *)bc->in, len, NULL, NULL),
		   "malformed: %s: chunkings agree", bc->label);
		imap_parser_free(&parser);
	}
}

static void test_max_literal_boundary(void)
{
	struct imap_parser *parser = imap_parser_new(NULL);
	static const char in[] = "* 1 FETCH (BODY[] {4294967295}\r\n";
	size_t consumed;
	enum imap_parse_result ret = imap_parser_feed(parser,
		(const unsigned char *)in, sizeof(in) - 1, &consumed);

	ok(ret == IMAP_PARSE_LITERAL && consumed == sizeof(in) - 1 &&
	   imap_parser_literal_size(parser) == 4294967295ull,
	   "literal of exactly max_literal is streamed, not refused");
	ret = imap_parser_feed(parser, (const unsigned char *)"x", 1, &consumed);
	ok(ret == IMAP_PARSE_ERROR && consumed == 0,
	   "feeding before literal_done is an error");
	imap_parser_free(&parser);

	parser = imap_parser_new(NULL);
	imap_parser_literal_done(parser);
	ret = imap_parser_feed(parser, (const unsigned char *)"* OK\r\n", 6,
			       &consumed);
	ok(ret == IMAP_PARSE_ERROR, "literal_done without a literal is an error");
	imap_parser_free(&parser);
}

/* 10 MiB without CRLF, max_line 1 MiB: the error comes at 1 MiB and the
   parser consumes (hence buffers) no more than that. */
static void test_line_too_long(void)
{
	const size_t chunk = 64 * 1024, total = 10 * MiB;
	unsigned char *as = xmalloc(chunk);
	struct imap_parser *parser = imap_parser_new(NULL);
	enum imap_parse_result ret = IMAP_PARSE_NEED_MORE;
	size_t fed = 0, consumed_total = 0, consumed;

	memset(as, 'A', chunk);
	while (fed < total) {
		ret = imap_parser_feed(parser, as, chunk, &consumed);
		consumed_total += consumed;
		fed += chunk;
		if (ret != IMAP_PARSE_NEED_MORE)
			break;
	}
	ok(ret == IMAP_PARSE_ERROR &&
	   imap_parser_error(parser) == IMAP_PERR_LINE_TOO_LONG,
	   "10 MiB without CRLF: LINE_TOO_LONG");
	ok(consumed_total == (size_t)MiB,
	   "consumption (and the line buffer) stopped at max_line (%zu)",
	   consumed_total);
	ret = imap_parser_feed(parser, as, chunk, &consumed);
	ok(ret == IMAP_PARSE_ERROR && consumed == 0,
	   "after LINE_TOO_LONG nothing more is consumed");
	imap_parser_free(&parser);
	free(as);

	/* The same at a small scale, in every chunking; the limit counts
	   literal headers and all lines of a response, but not literals. */
	const struct imap_parser_limits small = {
		.max_line = 40, .max_depth = 8,
		.max_inline_literal = 100, .max_literal = 1000,
	};
	static const char fits[] = "* 1 FETCH (A {50}\r\n"
		"01234567890123456789012345678901234567890123456789 B)\r\n";
	static const char too_long[] = "* 1 FETCH (A {3}\r\nabc B CCCCCCCCCCCCCCCCCCCC)\r\n";
	char *t;

	ok(chunkings_agree((const unsigned char *)fits, sizeof(fits) - 1,
			   &small, &t) && strstr(t, "UNTAGGED #1 FETCH") != NULL,
	   "inline literal bytes don't count toward max_line");
	free(t);
	bool agree = chunkings_agree((const unsigned char *)too_long,
				     sizeof(too_long) - 1, &small, &t);

	if (!ok(agree && strcmp(t, "43: error 1\n") == 0,
		"max_line spans the lines of one response"))
		diag("transcript: %s", t);
	free(t);
}

/* 100,000 nested lists: refused by max_depth; with the limit raised they
   parse and dump fine, since neither uses C recursion. */
static void test_deep_nesting(void)
{
	const size_t n = 100000;
	struct buf in = { 0 };

	buf_appendf(&in, "* X ");
	for (size_t i = 0; i < n; i++)
		buf_append(&in, "(", 1);
	buf_append(&in, "\r\n", 2);

	struct imap_parser *parser = imap_parser_new(NULL);
	size_t consumed;
	enum imap_parse_result ret = imap_parser_feed(parser, in.data, in.len,
						      &consumed);

	ok(ret == IMAP_PARSE_ERROR &&
	   imap_parser_error(parser) == IMAP_PERR_TOO_DEEP,
	   "100,000 nested ( -> TOO_DEEP");
	imap_parser_free(&parser);

	in.len -= 2;
	for (size_t i = 0; i < n; i++)
		buf_append(&in, ")", 1);
	buf_append(&in, "\r\n", 2);

	const struct imap_parser_limits deep = {
		.max_line = 1 * MiB, .max_depth = n,
		.max_inline_literal = 100, .max_literal = 1000,
	};
	const struct imap_response *resp;

	parser = imap_parser_new(&deep);
	ok(parse_one(parser, (const char *)in.data, in.len, &resp),
	   "100,000 nested () parse with max_depth 100,000");

	char *dump = imap_response_dump(resp);

	ok(strlen(dump) == strlen("UNTAGGED X args=") + 2 * n,
	   "and dump without recursion");
	free(dump);
	imap_parser_free(&parser);
	buf_free(&in);
}

/* Issue 8, case 1: what a server sent goes back on the wire only in a
   form no server can read as anything but one flag or one date. */
static void test_wire_checks(void)
{
	static const struct { const char *in, *out; } flags[] = {
		{ "\\Seen", "\\Seen" }, { "\\seen", "\\Seen" }, { "\\ANSWERED", "\\Answered" },
		{ "\\Flagged", "\\Flagged" }, { "\\Deleted", "\\Deleted" }, { "\\Draft", "\\Draft" },
		{ "$Label1", "$Label1" }, { "NonJunk", "NonJunk" }, { "a-b.c_d+e!", "a-b.c_d+e!" },
		{ "\\Recent", NULL }, { "\\Forwarded", NULL }, { "\\", NULL }, { "", NULL },
		{ "a]b", NULL }, { "a\"b", NULL }, { "a b", NULL }, { "a(b", NULL }, { "a{3}", NULL },
		{ "a%b", NULL }, { "a*b", NULL }, { "a\\b", NULL }, { "\xc3\xa9t\xc3\xa9", NULL },
		{ "a\x7f", NULL }, { "a\tb", NULL },
	};
	char out[IMAP_KEYWORD_MAX + 1], date[IMAP_DATE_TIME_LEN];

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		bool okay = imap_flag_canonical(flags[i].in, out);
		ok(flags[i].out ? okay && strcmp(out, flags[i].out) == 0 : !okay,
		   "flag \"%s\": %s", flags[i].in, flags[i].out ? flags[i].out : "refused");
	}
	char long_kw[IMAP_KEYWORD_MAX + 2];
	memset(long_kw, 'k', sizeof(long_kw) - 1);
	long_kw[sizeof(long_kw) - 1] = '\0';
	ok(!imap_flag_canonical(long_kw, out), "a keyword past %d bytes is refused",
	   IMAP_KEYWORD_MAX);
	long_kw[IMAP_KEYWORD_MAX] = '\0';
	ok(imap_flag_canonical(long_kw, out), "one of %d bytes is kept", IMAP_KEYWORD_MAX);

	static const struct { const char *in, *out; } dates[] = {
		{ "01-Jan-2024 10:00:00 +0000", "01-Jan-2024 10:00:00 +0000" },
		{ " 7-Mar-2023 08:09:10 -0130", "07-Mar-2023 08:09:10 -0130" },
		{ "7-mAR-2023 08:09:10 +0200", "07-Mar-2023 08:09:10 +0200" },
		{ "29-Feb-2024 23:59:60 +1400", "29-Feb-2024 23:59:60 +1400" },
		{ "01-Jan-2024 10:00:00 +0000\\", NULL },
		{ "01-Jan-2024 \"10:00:00\" +0000", NULL },
		{ "01-Jan-2024 10:00:00 +0000 ", NULL }, { "32-Jan-2024 10:00:00 +0000", NULL },
		{ "31-Apr-2024 10:00:00 +0000", NULL }, { "01-Foo-2024 10:00:00 +0000", NULL },
		{ "01-Jan-1969 10:00:00 +0000", NULL }, { "01-Jan-2024 24:00:00 +0000", NULL },
		{ "01-Jan-2024 10:60:00 +0000", NULL }, { "01-Jan-2024 10:00:00 0000", NULL },
		{ "01-Jan-2024 10:00:00 +2400", NULL }, { "", NULL }, { "01-Jan-2024", NULL },
	};
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		bool okay = imap_date_time_canonical(dates[i].in, date);
		ok(dates[i].out ? okay && strcmp(date, dates[i].out) == 0 : !okay,
		   "date \"%s\": %s", dates[i].in, dates[i].out ? dates[i].out : "refused");
	}
}

int main(void)
{
	test_wire_checks();
	test_valid_table();
	test_stream_of_responses();
	test_field_access();
	test_streamed_literal();
	test_inline_budget();
	test_malformed_table();
	test_max_literal_boundary();
	test_line_too_long();
	test_deep_nesting();
	return tap_done();
}
