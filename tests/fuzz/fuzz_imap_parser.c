/* fuzz_imap_parser.c - libFuzzer target for the IMAP response parser.
 *
 * The whole input is IMAP server output (so seeds stay readable).  Its
 * first bytes also choose the parser limits and a chunking pattern.  The
 * input is run three times: whole, byte by byte, and in those chunks;
 * the transcripts (every event with its stream position, responses as
 * canonical dumps) must be identical, or the target aborts.  Streamed
 * literals are skipped the way a caller would read them.  Structural
 * invariants of every response are checked on the way.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parser.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PATTERN_LEN 8

static const struct imap_parser_limits limit_sets[] = {
	IMAP_PARSER_DEFAULT_LIMITS,
	{ .max_line = 256, .max_depth = 4, .max_inline_literal = 8,
	  .max_literal = 1000 },
	{ .max_line = 64, .max_depth = 2, .max_inline_literal = 0,
	  .max_literal = 100 },
	{ .max_line = 4096, .max_depth = 16, .max_inline_literal = 64,
	  .max_literal = UINT64_MAX },
};

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_imap_parser: invariant broken: %s\n", what);
		abort();
	}
}

static void check_arg(const struct imap_arg *arg)
{
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
		check(arg->str != NULL && strlen(arg->str) == arg->len,
		      "atom/string length");
		check(arg->type != IMAP_ARG_ATOM || arg->len > 0, "empty atom");
		break;
	case IMAP_ARG_LITERAL:
		check(arg->str != NULL && arg->str[arg->len] == '\0' &&
		      arg->len == arg->literal_size, "inline literal");
		break;
	case IMAP_ARG_LITERAL_STREAMED:
	case IMAP_ARG_NIL:
		check(arg->str == NULL, "no bytes for NIL/streamed");
		break;
	case IMAP_ARG_LIST: {
		size_t n = 0;

		for (const struct imap_arg *c = arg->list; c != NULL; c = c->next)
			n++;
		check(n == arg->list_count, "list_count");
		break;
	}
	}
}

/* Walk args without recursion.  The stack is as deep as the deepest
   max_depth in limit_sets: deeper lists mean the limit leaked. */
static void check_args(const struct imap_arg *arg)
{
	const struct imap_arg *stack[64];
	size_t depth = 0;

	for (;;) {
		if (arg == NULL) {
			if (depth == 0)
				return;
			arg = stack[--depth]->next;
			continue;
		}
		check_arg(arg);
		if (arg->type == IMAP_ARG_LIST && arg->list != NULL) {
			check(depth < N_ELEMENTS(stack), "list depth");
			stack[depth++] = arg;
			arg = arg->list;
			continue;
		}
		arg = arg->next;
	}
}

static void check_response(const struct imap_response *resp)
{
	check(resp->text != NULL, "text never NULL");
	check((resp->type == IMAP_RESP_TAGGED) == (resp->tag != NULL), "tag");
	check((resp->type == IMAP_RESP_CONTINUATION) == (resp->name == NULL),
	      "name");
	check(resp->status == IMAP_STATUS_NONE || resp->args == NULL,
	      "status responses have no args");
	check(resp->code != NULL || resp->code_args == NULL, "code args");
	check_args(resp->code_args);
	check_args(resp->args);
}

enum chunking { CHUNK_WHOLE, CHUNK_BYTES, CHUNK_PATTERN };

/* Chunk sizes 1..16 from the input's first bytes. */
static size_t chunk_size(enum chunking how, const uint8_t *data, size_t size,
			 size_t n)
{
	size_t plen = size < PATTERN_LEN ? size : PATTERN_LEN;

	switch (how) {
	case CHUNK_WHOLE:
		return SIZE_MAX;
	case CHUNK_BYTES:
		return 1;
	case CHUNK_PATTERN:
		break;
	}
	return (size_t)(data[n % plen] % 16) + 1;
}

/* Feed the input and return the transcript of events. */
static char *run(const uint8_t *data, size_t size,
		 const struct imap_parser_limits *limits, enum chunking how)
{
	struct imap_parser *parser = imap_parser_new(limits);
	struct buf out = { 0 };
	size_t pos = 0, n = 0;

	while (pos < size) {
		size_t chunk = chunk_size(how, data, size, n++), consumed;

		if (chunk > size - pos)
			chunk = size - pos;

		enum imap_parse_result ret =
			imap_parser_feed(parser, data + pos, chunk, &consumed);

		check(consumed <= chunk, "consumed <= fed");
		pos += consumed;
		if (ret == IMAP_PARSE_NEED_MORE) {
			check(consumed == chunk, "NEED_MORE consumes all");
		} else if (ret == IMAP_PARSE_RESPONSE) {
			const struct imap_response *resp =
				imap_parser_response(parser);
			char *dump = imap_response_dump(resp);

			check(consumed > 0, "a response takes bytes");
			check_response(resp);
			buf_appendf(&out, "%zu R %s\n", pos, dump);
			free(dump);
		} else if (ret == IMAP_PARSE_LITERAL) {
			uint64_t lsize = imap_parser_literal_size(parser);
			const struct imap_arg *last = imap_parser_last_arg(parser);

			/* Small ones too, past the per-response inline budget. */
			check(lsize <= limits->max_literal, "streamed size");
			buf_appendf(&out, "%zu L %llu %d %d\n", pos,
				    (unsigned long long)lsize,
				    (int)imap_parser_literal8(parser),
				    last != NULL ? (int)last->type : -1);
			/* The caller reads the literal from the stream. */
			pos = lsize > size - pos ? size : pos + (size_t)lsize;
			imap_parser_literal_done(parser);
		} else {
			check(imap_parser_error(parser) != IMAP_PERR_NONE,
			      "error has a code");
			buf_appendf(&out, "%zu E %d\n", pos,
				    (int)imap_parser_error(parser));
			break;
		}
	}
	imap_parser_free(&parser);
	buf_append(&out, "", 1);
	return (char *)out.data;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int sum = 0;

	for (size_t i = 0; i < size && i < PATTERN_LEN; i++)
		sum += data[i];

	const struct imap_parser_limits *limits =
		&limit_sets[sum % N_ELEMENTS(limit_sets)];
	char *whole = run(data, size, limits, CHUNK_WHOLE);
	char *bytes = run(data, size, limits, CHUNK_BYTES);
	char *pattern = run(data, size, limits, CHUNK_PATTERN);

	if (strcmp(whole, bytes) != 0 || strcmp(whole, pattern) != 0) {
		fprintf(stderr, "whole:\n%s\nbytes:\n%s\npattern:\n%s\n",
			whole, bytes, pattern);
		abort();
	}
	free(whole);
	free(bytes);
	free(pattern);
	return 0;
}
