/* imap_parser.h - pure, incremental, bounded IMAP response parser.
 *
 * Contract (after Dovecot's lib-imap/imap-parser.h): the parser never
 * touches a socket.  The caller feeds it bytes; it answers "need more",
 * "one response is complete", "a large literal starts here: you stream
 * its bytes", or "error".  It can be resumed at any byte boundary, so
 * feeding one byte at a time gives the same result as feeding the whole
 * input.  Every peer-controlled size is bounded by a limit the caller
 * sets.  Lists are built with parent links, not C recursion.
 *
 * Message bodies are never buffered: a literal larger than
 * limits.max_inline_literal is handed to the caller as IMAP_PARSE_LITERAL
 * and appears in the finished response as IMAP_ARG_LITERAL_STREAMED
 * (size only).
 */
#ifndef IMAP_PARSER_H
#define IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_types.h"       /* enum imap_status */

enum imap_arg_type {
	IMAP_ARG_ATOM,              /* includes flags (\Seen), numbers, and
	                               BODY[HEADER.FIELDS (X)]<0> as one atom */
	IMAP_ARG_STRING,            /* quoted string, escapes removed */
	IMAP_ARG_LITERAL,           /* literal kept inline (small) */
	IMAP_ARG_LITERAL_STREAMED,  /* literal streamed by the caller */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, STRING, LITERAL: the bytes, NUL-terminated for convenience;
	   a LITERAL may hold NULs, so use len.  NULL for NIL and LIST. */
	const char *str;
	size_t len;
	/* LITERAL, LITERAL_STREAMED: announced size; literal8 for ~{n}. */
	uint64_t literal_size;
	bool literal8;
	/* LIST: first child (NULL when empty) and number of children. */
	const struct imap_arg *list;
	size_t list_count;
	/* Next sibling; NULL at the end of a list or of the response. */
	const struct imap_arg *next;
};

enum imap_resp_type {
	IMAP_RESP_TAGGED,
	IMAP_RESP_UNTAGGED,
	IMAP_RESP_CONTINUATION,
};

struct imap_response {
	enum imap_resp_type type;
	const char *tag;            /* TAGGED only */
	/* UNTAGGED: "* 12 FETCH ..." has has_number, number = 12, name =
	   "FETCH".  "* CAPABILITY ..." has name = "CAPABILITY".  Status
	   responses ("* OK", "a1 NO") have name = "OK"/"NO"/... and status
	   set.  name is upper-cased.  NULL for continuations. */
	bool has_number;
	uint32_t number;
	const char *name;
	enum imap_status status;
	/* Status responses: the response code inside [...], upper-cased
	   ("APPENDUID", "OVERQUOTA"), NULL when absent; its arguments as a
	   sibling chain (atoms and lists), NULL when none. */
	const char *code;
	const struct imap_arg *code_args;
	/* Status responses and continuations: the human-readable text to the
	   end of the line (never tokenized), "" when absent. */
	const char *text;
	/* Non-status untagged responses: the arguments after name. */
	const struct imap_arg *args;
};

struct imap_parser_limits {
	size_t max_line;            /* bytes of one response outside literals */
	size_t max_depth;           /* nesting of ( and [ */
	size_t max_inline_literal;  /* larger literals are streamed; so is
	                               every further literal of a response
	                               once its inline literals total
	                               16 * max_inline_literal */
	uint64_t max_literal;       /* larger literals are a protocol error */
};

#define IMAP_PARSER_DEFAULT_LIMITS { \
	.max_line = 1024 * 1024, \
	.max_depth = 64, \
	.max_inline_literal = 64 * 1024, \
	.max_literal = (uint64_t)4 * 1024 * 1024 * 1024 - 1, \
}

enum imap_parse_result {
	IMAP_PARSE_NEED_MORE,   /* all input consumed, response incomplete */
	IMAP_PARSE_RESPONSE,    /* imap_parser_response() is complete */
	IMAP_PARSE_LITERAL,     /* a streamed literal starts right after the
	                           consumed bytes: see imap_parser_literal_size() */
	IMAP_PARSE_ERROR,       /* see imap_parser_error(); parser is dead */
};

enum imap_parse_error {
	IMAP_PERR_NONE = 0,
	IMAP_PERR_LINE_TOO_LONG,
	IMAP_PERR_TOO_DEEP,
	IMAP_PERR_LITERAL_TOO_BIG,   /* includes overflowing sizes */
	IMAP_PERR_NUL,               /* NUL outside a literal */
	IMAP_PERR_SYNTAX,
};

struct imap_parser;

/* limits may be NULL for IMAP_PARSER_DEFAULT_LIMITS. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **parser);

/* Consume bytes from data.  *consumed_r says how many were used (the
   rest belongs to the next call).  Stops at the first event.  After
   IMAP_PARSE_RESPONSE, the response stays valid until the next feed. */
enum imap_parse_result imap_parser_feed(struct imap_parser *parser,
					const unsigned char *data, size_t len,
					size_t *consumed_r);

/* After IMAP_PARSE_LITERAL: size of the literal the caller must now read
   from the stream itself, and whether it was ~{n} (literal8).  The
   partial response so far (tag/number/name and the args before the
   literal; the last complete arg is usually the FETCH item name such as
   "BODY[]") is visible through imap_parser_response(); its last arg
   is already the IMAP_ARG_LITERAL_STREAMED one. */
uint64_t imap_parser_literal_size(const struct imap_parser *parser);
/* After IMAP_PARSE_LITERAL: true for ~{n} (literal8). */
bool imap_parser_literal8(const struct imap_parser *parser);
/* The caller has consumed the literal's bytes; parsing continues. */
void imap_parser_literal_done(struct imap_parser *parser);

const struct imap_response *imap_parser_response(const struct imap_parser *parser);
/* The most recently completed top-level arg (for IMAP_PARSE_LITERAL: the
   item name before the literal), or NULL.  Precisely: the last arg
   completed at the innermost level still open, so during a literal it is
   the literal's previous sibling (NULL if the literal opens a list), and
   after a response it is the last top-level arg. */
const struct imap_arg *imap_parser_last_arg(const struct imap_parser *parser);

enum imap_parse_error imap_parser_error(const struct imap_parser *parser);
const char *imap_parser_error_string(const struct imap_parser *parser);

/* A canonical one-line rendering of a response, for tests and debug
   traces: non-printable bytes are escaped as \xHH, streamed literals show
   only their size.  The caller frees the result. */
char *imap_response_dump(const struct imap_response *resp);

/* Small helpers for consumers. */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *upper);
/* ATOM/STRING/LITERAL as a string (NULL otherwise). */
const char *imap_arg_as_astring(const struct imap_arg *arg);
/* NIL as NULL, strings as above. */
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r);
bool imap_arg_get_number(const struct imap_arg *arg, uint64_t *num_r);

/* Server data that goes back on the wire.  A flag or a date a server
   refuses as syntax is answered BAD, and with LITERAL+ the message that
   follows is then read as commands: so nothing taken from one server is
   sent to the other unless it passes these. */

/* A flag as APPEND/STORE may send it: one of the five settable system
   flags, or a keyword made of ATOM-CHARs (RFC 3501), at most
   IMAP_KEYWORD_MAX bytes.  Writes the canonical spelling ("\Seen") to
   out (at least IMAP_KEYWORD_MAX + 1 bytes) and returns true, or false
   for anything else (\Recent, unknown system flags, 8-bit, specials). */
#define IMAP_KEYWORD_MAX 250
bool imap_flag_canonical(const char *flag, char *out);

/* An INTERNALDATE ("dd-Mon-yyyy hh:mm:ss +zzzz", day space- or
   zero-padded or one digit) re-formatted from its parsed fields as
   "dd-Mon-yyyy hh:mm:ss +zzzz" into out (at least
   IMAP_DATE_TIME_LEN bytes).  False when it is not a valid date-time. */
#define IMAP_DATE_TIME_LEN 27
bool imap_date_time_canonical(const char *s, char *out);

#endif
