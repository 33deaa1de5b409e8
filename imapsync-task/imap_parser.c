/* imap_parser.c - pure, incremental, bounded IMAP response parser.
 *
 * Design: bytes are collected into one line buffer up to LF.  Only a
 * complete line is tokenized, so the tokenizer itself never has to stop
 * in the middle of a token: resumability lives in the byte collector,
 * which keeps all of its state in the parser.  A response is one or more
 * such lines, glued together by literals: a line that ends in "{n}" is
 * followed by n raw bytes, then by the next line of the same response.
 * The arguments built so far (and the open-list stack, kept as parent
 * pointers) persist between those lines.
 *
 * Limits, each checked before memory is committed:
 *   max_line            every response byte outside literals (CRLFs and
 *                       literal headers included), so the line buffer
 *                       never holds more than max_line bytes;
 *   max_depth           open ( plus [ nesting;
 *   max_literal         announced literal sizes, checked digit by digit;
 *   max_inline_literal  larger literals are streamed by the caller.  So
 *                       that a response full of small literals cannot pin
 *                       unbounded memory either, once a response holds
 *                       INLINE_BUDGET_FACTOR * max_inline_literal inline
 *                       bytes, further literals are streamed as well.
 *
 * Every allocation for a response (args, strings, inline literals) comes
 * from one arena that is emptied when the next response starts.
 */
#include "config.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parser.h"
#include "util.h"

#define INLINE_BUDGET_FACTOR 16
#define ARENA_BLOCK_SIZE 8192
#define LINE_MIN_ALLOC 256

/* ---- arena ---------------------------------------------------------- */

struct arena_block {
	struct arena_block *next;
	size_t size, used;
	max_align_t data[];
};

/* A list under construction.  The parent link replaces C recursion: a
   closing ")" just steps back to the parent. */
struct list_node {
	struct imap_arg arg;        /* first, so a list_node is an imap_arg */
	struct list_node *parent;   /* enclosing open list, NULL at top */
	struct imap_arg *tail;      /* last child, for O(1) append */
};

/* Where arguments are appended: the response's args or its code's. */
struct arg_builder {
	const struct imap_arg **headp;
	struct imap_arg *tail;          /* last arg at top level */
	struct list_node *open;         /* innermost open list */
	size_t depth;                   /* open lists (+1 inside [code]) */
	const struct imap_arg *last_done;  /* last complete arg at this level */
	bool need_sep;                  /* a value just ended: SP or ) next */
};

enum phase {
	PHASE_LINE,             /* collecting a line */
	PHASE_INLINE_LITERAL,   /* copying literal bytes into the arena */
	PHASE_STREAM_LITERAL,   /* waiting for imap_parser_literal_done() */
	PHASE_DONE,             /* a response was returned */
	PHASE_ERROR,
};

/* What tokenizing one line produced. */
enum line_result {
	LINE_RESPONSE,
	LINE_ARGS,              /* header done, arguments follow */
	LINE_INLINE_LITERAL,
	LINE_STREAM_LITERAL,
	LINE_CODE_END,          /* inside [code]: the closing ] */
	LINE_ERROR,
};

struct cursor {
	const unsigned char *p, *end;
};

struct imap_parser {
	struct imap_parser_limits limits;
	enum phase phase;
	bool header_done;

	struct buf line;            /* current line, cap <= max_line */
	size_t line_total;          /* response bytes outside literals */

	struct arena_block *arena;
	struct imap_response resp;
	struct arg_builder args;

	size_t inline_total;        /* inline literal bytes in this response */
	unsigned char *literal_dst; /* PHASE_INLINE_LITERAL */
	size_t literal_left;
	uint64_t literal_size;      /* PHASE_STREAM_LITERAL */
	bool literal8;
	struct imap_arg *streamed;  /* its arg, "done" after literal_done */

	enum imap_parse_error error;
	const char *error_msg;
};

static void *arena_alloc(struct imap_parser *parser, size_t size)
{
	const size_t align = alignof(max_align_t);
	struct arena_block *b = parser->arena;

	if (size > SIZE_MAX - align)
		abort();    /* sizes are bounded by the limits long before */
	size = (size + align - 1) / align * align;
	if (b == NULL || b->size - b->used < size) {
		size_t bsize = size > ARENA_BLOCK_SIZE ? size : ARENA_BLOCK_SIZE;
		struct arena_block *nb = xmalloc(sizeof(*nb) + bsize);

		nb->size = bsize;
		nb->used = 0;
		/* A big one-off block goes behind the current one, so the
		   current block's free space is not wasted. */
		if (b != NULL && bsize > ARENA_BLOCK_SIZE &&
		    b->size - b->used >= ARENA_BLOCK_SIZE / 4) {
			nb->next = b->next;
			b->next = nb;
		} else {
			nb->next = b;
			parser->arena = nb;
		}
		b = nb;
	}
	void *p = (unsigned char *)b->data + b->used;
	b->used += size;
	memset(p, 0, size);
	return p;
}

static char *arena_strndup(struct imap_parser *parser,
			   const unsigned char *data, size_t len)
{
	char *s = arena_alloc(parser, len + 1);

	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

/* Free all but one ordinary block: responses come one after another, so
   keeping one block avoids a malloc per response. */
static void arena_clear(struct imap_parser *parser)
{
	struct arena_block *keep = NULL, *b, *next;

	for (b = parser->arena; b != NULL; b = next) {
		next = b->next;
		if (keep == NULL && b->size == ARENA_BLOCK_SIZE) {
			keep = b;
			keep->used = 0;
			keep->next = NULL;
		} else {
			free(b);
		}
	}
	parser->arena = keep;
}

/* ---- small helpers -------------------------------------------------- */

static enum line_result set_error(struct imap_parser *parser,
				  enum imap_parse_error error, const char *msg)
{
	parser->error = error;
	parser->error_msg = msg;
	return LINE_ERROR;
}

static char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static void str_upper(char *s)
{
	for (; *s != '\0'; s++)
		*s = ascii_upper(*s);
}

static bool ascii_strcaseeq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		if (ascii_upper(*a) != ascii_upper(*b))
			return false;
	}
	return *a == *b;
}

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Lenient ATOM-CHAR: servers put 8-bit bytes, "]", "%" and "*" into
   atoms ("\*", "1:*"), so only the bytes that start other tokens or
   separate them are excluded. */
static bool is_atom_char(unsigned char c)
{
	return !is_ctl(c) && c != ' ' && c != '(' && c != ')' &&
		c != '{' && c != '"';
}

/* RFC 3501 tag: ASTRING-CHAR except "+", and plain ASCII. */
static bool is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"%*\\+", c) == NULL;
}

static size_t cursor_left(const struct cursor *cur)
{
	return (size_t)(cur->end - cur->p);
}

static bool cursor_skip_char(struct cursor *cur, unsigned char c)
{
	if (cur->p < cur->end && *cur->p == c) {
		cur->p++;
		return true;
	}
	return false;
}

static const char *cursor_rest_dup(struct imap_parser *parser,
				   struct cursor *cur)
{
	const char *s = arena_strndup(parser, cur->p, cursor_left(cur));

	cur->p = cur->end;
	return s;
}

static enum imap_status status_from_name(const char *name)
{
	static const struct {
		const char *name;
		enum imap_status status;
	} statuses[] = {
		{ "OK", IMAP_STATUS_OK }, { "NO", IMAP_STATUS_NO },
		{ "BAD", IMAP_STATUS_BAD }, { "BYE", IMAP_STATUS_BYE },
		{ "PREAUTH", IMAP_STATUS_PREAUTH },
	};

	for (size_t i = 0; i < N_ELEMENTS(statuses); i++) {
		if (strcmp(name, statuses[i].name) == 0)
			return statuses[i].status;
	}
	return IMAP_STATUS_NONE;
}

/* ---- tokens --------------------------------------------------------- */

/* Scan a quoted string's body; p is just past the opening quote.  On
   success *end_r is past the closing quote and *len_r is the unescaped
   length.  Lines never contain LF and CR is invalid inside a string. */
static bool quoted_scan(const unsigned char *p, const unsigned char *end,
			const unsigned char **end_r, size_t *len_r)
{
	size_t len = 0;

	for (; p < end; p++) {
		if (*p == '"') {
			*end_r = p + 1;
			*len_r = len;
			return true;
		}
		if (*p == '\r')
			return false;
		if (*p == '\\' && ++p == end)
			return false;
		len++;
	}
	return false;
}

/* Copy a scanned quoted string, dropping the escaping backslashes. */
static char *quoted_copy(struct imap_parser *parser, const unsigned char *p,
			 size_t len)
{
	char *s = arena_alloc(parser, len + 1);

	for (size_t i = 0; i < len; i++, p++) {
		if (*p == '\\')
			p++;
		s[i] = (char)*p;
	}
	s[len] = '\0';
	return s;
}

enum atom_mode {
	ATOM_NAME,      /* tag-less names: stops at [ and ] too */
	ATOM_ARG,       /* "[" runs to its matching "]", spaces and all */
	ATOM_CODE,      /* inside [code]: "]" ends the atom, "[" is plain */
};

/* Length of the atom at cur (0 if none).  In ATOM_ARG mode a bracketed
   part may hold spaces, parens and quoted strings, so that
   BODY[HEADER.FIELDS (FROM)]<0> is one atom. */
static enum line_result atom_scan(struct imap_parser *parser,
				  const struct cursor *cur, enum atom_mode mode,
				  size_t depth, size_t *len_r)
{
	const unsigned char *p = cur->p, *qend;
	size_t brackets = 0, qlen;

	while (p < cur->end) {
		unsigned char c = *p;

		if (brackets > 0) {
			if (c == '"') {
				if (!quoted_scan(p + 1, cur->end, &qend, &qlen))
					return set_error(parser, IMAP_PERR_SYNTAX,
						"unterminated string in [...]");
				p = qend;
				continue;
			}
			if (is_ctl(c))
				return set_error(parser, IMAP_PERR_SYNTAX,
					"control character in [...]");
			if (c == '[' && ++brackets + depth > parser->limits.max_depth)
				return set_error(parser, IMAP_PERR_TOO_DEEP,
					"[...] nested too deep");
			if (c == ']')
				brackets--;
			p++;
			continue;
		}
		if (!is_atom_char(c))
			break;
		if (mode == ATOM_NAME && (c == '[' || c == ']'))
			break;
		if (mode == ATOM_CODE && c == ']')
			break;
		if (mode == ATOM_ARG && c == '[') {
			if (++brackets + depth > parser->limits.max_depth)
				return set_error(parser, IMAP_PERR_TOO_DEEP,
					"[...] nested too deep");
		}
		p++;
	}
	if (brackets > 0)
		return set_error(parser, IMAP_PERR_SYNTAX, "unterminated [ in atom");
	*len_r = (size_t)(p - cur->p);
	return LINE_ARGS;
}

/* "{123}", "{123+}" (LITERAL+, accepted from servers too) or, with the
   leading "~" already skipped by the caller, literal8.  The size is
   accumulated digit by digit and refused as soon as it passes
   max_literal, so neither an overflow nor an allocation can happen. */
static enum line_result literal_header_parse(struct imap_parser *parser,
					     struct cursor *cur,
					     uint64_t *size_r)
{
	uint64_t size = 0;
	bool digits = false;

	if (!cursor_skip_char(cur, '{'))
		return set_error(parser, IMAP_PERR_SYNTAX, "bad literal header");
	for (; cur->p < cur->end && *cur->p >= '0' && *cur->p <= '9'; cur->p++) {
		unsigned int d = (unsigned int)(*cur->p - '0');

		if (size > (UINT64_MAX - d) / 10)
			return set_error(parser, IMAP_PERR_LITERAL_TOO_BIG,
				"literal size overflows");
		size = size * 10 + d;
		if (size > parser->limits.max_literal)
			return set_error(parser, IMAP_PERR_LITERAL_TOO_BIG,
				"literal larger than the limit");
		digits = true;
	}
	(void)cursor_skip_char(cur, '+');
	if (!digits || !cursor_skip_char(cur, '}'))
		return set_error(parser, IMAP_PERR_SYNTAX, "bad literal header");
	/* The literal's bytes follow the CRLF, i.e. the end of this line. */
	if (cur->p != cur->end)
		return set_error(parser, IMAP_PERR_SYNTAX,
			"literal header not at end of line");
	*size_r = size;
	return LINE_ARGS;
}

/* ---- building args -------------------------------------------------- */

static struct imap_arg *arg_append(struct imap_parser *parser,
				   struct arg_builder *b,
				   enum imap_arg_type type)
{
	struct imap_arg *arg;

	if (type == IMAP_ARG_LIST)
		arg = &((struct list_node *)arena_alloc(parser,
			sizeof(struct list_node)))->arg;
	else
		arg = arena_alloc(parser, sizeof(*arg));
	arg->type = type;

	if (b->open != NULL) {
		if (b->open->tail != NULL)
			b->open->tail->next = arg;
		else
			b->open->arg.list = arg;
		b->open->tail = arg;
		b->open->arg.list_count++;
	} else {
		if (b->tail != NULL)
			b->tail->next = arg;
		else
			*b->headp = arg;
		b->tail = arg;
	}
	return arg;
}

static enum line_result list_open(struct imap_parser *parser,
				  struct arg_builder *b)
{
	if (b->depth >= parser->limits.max_depth)
		return set_error(parser, IMAP_PERR_TOO_DEEP, "lists nested too deep");

	struct list_node *list = (struct list_node *)
		arg_append(parser, b, IMAP_ARG_LIST);

	list->parent = b->open;
	b->open = list;
	b->depth++;
	b->last_done = NULL;
	return LINE_ARGS;
}

static enum line_result list_close(struct imap_parser *parser,
				   struct arg_builder *b)
{
	if (b->open == NULL)
		return set_error(parser, IMAP_PERR_SYNTAX, "unbalanced )");
	b->last_done = &b->open->arg;
	b->open = b->open->parent;
	b->depth--;
	return LINE_ARGS;
}

static enum line_result arg_atom(struct imap_parser *parser,
				 struct arg_builder *b, struct cursor *cur,
				 enum atom_mode mode)
{
	size_t len;

	if (atom_scan(parser, cur, mode, b->depth, &len) == LINE_ERROR)
		return LINE_ERROR;
	if (len == 0)
		return set_error(parser, IMAP_PERR_SYNTAX, "unexpected character");

	struct imap_arg *arg;

	if (len == 3 && ascii_upper((char)cur->p[0]) == 'N' &&
	    ascii_upper((char)cur->p[1]) == 'I' &&
	    ascii_upper((char)cur->p[2]) == 'L') {
		arg = arg_append(parser, b, IMAP_ARG_NIL);
	} else {
		arg = arg_append(parser, b, IMAP_ARG_ATOM);
		arg->str = arena_strndup(parser, cur->p, len);
		arg->len = len;
	}
	cur->p += len;
	b->last_done = arg;
	return LINE_ARGS;
}

static enum line_result arg_quoted(struct imap_parser *parser,
				   struct arg_builder *b, struct cursor *cur)
{
	const unsigned char *end;
	size_t len;

	if (!quoted_scan(cur->p + 1, cur->end, &end, &len))
		return set_error(parser, IMAP_PERR_SYNTAX, "unterminated string");

	struct imap_arg *arg = arg_append(parser, b, IMAP_ARG_STRING);

	arg->str = quoted_copy(parser, cur->p + 1, len);
	arg->len = len;
	cur->p = end;
	b->last_done = arg;
	return LINE_ARGS;
}

/* The literal is the last thing on its line.  Small ones are copied into
   the arena as they arrive; big ones are left to the caller. */
static enum line_result arg_literal(struct imap_parser *parser,
				    struct arg_builder *b, struct cursor *cur)
{
	bool literal8 = cursor_skip_char(cur, '~');
	uint64_t size;

	if (literal_header_parse(parser, cur, &size) == LINE_ERROR)
		return LINE_ERROR;

	size_t budget = parser->limits.max_inline_literal;
	budget = budget > SIZE_MAX / INLINE_BUDGET_FACTOR ? SIZE_MAX :
		budget * INLINE_BUDGET_FACTOR;
	bool inline_ok = size <= parser->limits.max_inline_literal &&
		size < SIZE_MAX && size <= budget - parser->inline_total;
	struct imap_arg *arg = arg_append(parser, b, inline_ok ?
		IMAP_ARG_LITERAL : IMAP_ARG_LITERAL_STREAMED);

	arg->literal_size = size;
	arg->literal8 = literal8;
	if (inline_ok) {
		unsigned char *dst = arena_alloc(parser, (size_t)size + 1);

		arg->str = (const char *)dst;
		arg->len = (size_t)size;
		parser->inline_total += (size_t)size;
		parser->literal_dst = dst;
		parser->literal_left = (size_t)size;
		b->last_done = arg;
		return LINE_INLINE_LITERAL;
	}
	/* last_done stays on the item name (BODY[]) until literal_done. */
	parser->literal_size = size;
	parser->literal8 = literal8;
	parser->streamed = arg;
	return LINE_STREAM_LITERAL;
}

/* Tokenize arguments up to the end of the line, a literal header, or in
   a response code, the closing "]".  Iterative: lists only move b->open. */
static enum line_result args_parse(struct imap_parser *parser,
				   struct arg_builder *b, struct cursor *cur,
				   bool in_code)
{
	enum line_result ret;

	for (;;) {
		if (cur->p < cur->end && *cur->p == ' ') {
			while (cursor_skip_char(cur, ' '))
				;
			b->need_sep = false;
		}
		if (cur->p == cur->end) {
			if (in_code)
				return set_error(parser, IMAP_PERR_SYNTAX,
					"unterminated response code");
			if (b->open != NULL)
				return set_error(parser, IMAP_PERR_SYNTAX,
					"unbalanced (");
			return LINE_RESPONSE;
		}

		unsigned char c = *cur->p;

		if (c == ')') {
			cur->p++;
			if (list_close(parser, b) == LINE_ERROR)
				return LINE_ERROR;
			b->need_sep = true;
			continue;
		}
		if (in_code && c == ']') {
			if (b->open != NULL)
				return set_error(parser, IMAP_PERR_SYNTAX,
					"unbalanced ( in response code");
			cur->p++;
			return LINE_CODE_END;
		}
		if (b->need_sep)
			return set_error(parser, IMAP_PERR_SYNTAX,
				"missing space between arguments");
		if (c == '(') {
			cur->p++;
			ret = list_open(parser, b);
			b->need_sep = false;
			if (ret == LINE_ERROR)
				return ret;
			continue;
		}
		b->need_sep = true;
		if (c == '{' || (c == '~' && cursor_left(cur) > 1 &&
				 cur->p[1] == '{')) {
			if (in_code)
				return set_error(parser, IMAP_PERR_SYNTAX,
					"literal in response code");
			return arg_literal(parser, b, cur);
		}
		if (c == '"')
			ret = arg_quoted(parser, b, cur);
		else
			ret = arg_atom(parser, b, cur,
				       in_code ? ATOM_CODE : ATOM_ARG);
		if (ret == LINE_ERROR)
			return ret;
	}
}

/* ---- response header ------------------------------------------------ */

/* "[CODE args]".  Returns false when the text merely starts with "[" but
   is no code (no name or no closing bracket): it is then plain text.
   Args that do not tokenize (RFC 3501 lets unknown codes carry free
   text) become one atom with the raw bytes up to the first "]". */
static bool resp_code_parse(struct imap_parser *parser, struct cursor *cur)
{
	struct imap_response *resp = &parser->resp;
	struct cursor c = *cur;
	size_t len;

	c.p++;
	if (atom_scan(parser, &c, ATOM_CODE, 0, &len) == LINE_ERROR || len == 0)
		return false;

	char *code = arena_strndup(parser, c.p, len);

	c.p += len;
	str_upper(code);
	if (!cursor_skip_char(&c, ']')) {
		if (!cursor_skip_char(&c, ' '))
			return false;

		struct cursor args_start = c;
		struct arg_builder b = {
			.headp = &resp->code_args,
			.depth = 1,   /* the [ of the code itself */
		};

		if (args_parse(parser, &b, &c, true) != LINE_CODE_END) {
			const unsigned char *close =
				memchr(args_start.p, ']', cursor_left(&args_start));

			parser->error = IMAP_PERR_NONE;
			parser->error_msg = NULL;
			resp->code_args = NULL;
			if (close == NULL)
				return false;

			struct imap_arg *raw = arena_alloc(parser, sizeof(*raw));

			raw->type = IMAP_ARG_ATOM;
			raw->len = (size_t)(close - args_start.p);
			raw->str = arena_strndup(parser, args_start.p, raw->len);
			resp->code_args = raw;
			c.p = close + 1;
		}
	}
	resp->code = code;
	*cur = c;
	return true;
}

/* After "tag OK" or "* BYE": optional [code], then text, never tokenized. */
static enum line_result resp_status_parse(struct imap_parser *parser,
					  struct cursor *cur)
{
	struct imap_response *resp = &parser->resp;

	resp->status = status_from_name(resp->name);
	if (cur->p < cur->end && !cursor_skip_char(cur, ' '))
		return set_error(parser, IMAP_PERR_SYNTAX,
			"bad character after status");
	if (cur->p < cur->end && *cur->p == '[' &&
	    resp_code_parse(parser, cur))
		(void)cursor_skip_char(cur, ' ');
	resp->text = cursor_rest_dup(parser, cur);
	return LINE_RESPONSE;
}

static enum line_result resp_name_parse(struct imap_parser *parser,
					struct cursor *cur)
{
	size_t len;

	if (atom_scan(parser, cur, ATOM_NAME, 0, &len) == LINE_ERROR)
		return LINE_ERROR;
	if (len == 0)
		return set_error(parser, IMAP_PERR_SYNTAX, "missing response name");

	char *name = arena_strndup(parser, cur->p, len);

	cur->p += len;
	str_upper(name);
	parser->resp.name = name;
	return LINE_ARGS;
}

static enum line_result resp_untagged_parse(struct imap_parser *parser,
					    struct cursor *cur)
{
	struct imap_response *resp = &parser->resp;

	resp->type = IMAP_RESP_UNTAGGED;
	if (!cursor_skip_char(cur, ' '))
		return set_error(parser, IMAP_PERR_SYNTAX, "missing space after *");
	if (resp_name_parse(parser, cur) == LINE_ERROR)
		return LINE_ERROR;
	if (resp->name[strspn(resp->name, "0123456789")] == '\0') {
		/* "* 23 EXISTS": the first word was the number. */
		if (!str_to_u32(resp->name, &resp->number))
			return set_error(parser, IMAP_PERR_SYNTAX,
				"message number too big");
		resp->has_number = true;
		if (!cursor_skip_char(cur, ' '))
			return set_error(parser, IMAP_PERR_SYNTAX,
				"missing name after number");
		if (resp_name_parse(parser, cur) == LINE_ERROR)
			return LINE_ERROR;
	} else if (status_from_name(resp->name) != IMAP_STATUS_NONE) {
		return resp_status_parse(parser, cur);
	}
	if (cur->p < cur->end && !cursor_skip_char(cur, ' '))
		return set_error(parser, IMAP_PERR_SYNTAX,
			"bad character after response name");
	return LINE_ARGS;
}

static enum line_result resp_tagged_parse(struct imap_parser *parser,
					  struct cursor *cur)
{
	struct imap_response *resp = &parser->resp;
	const unsigned char *start = cur->p;

	resp->type = IMAP_RESP_TAGGED;
	while (cur->p < cur->end && is_tag_char(*cur->p))
		cur->p++;
	if (cur->p == start || !cursor_skip_char(cur, ' '))
		return set_error(parser, IMAP_PERR_SYNTAX, "bad tag");
	resp->tag = arena_strndup(parser, start, (size_t)(cur->p - 1 - start));
	if (resp_name_parse(parser, cur) == LINE_ERROR)
		return LINE_ERROR;
	if (status_from_name(resp->name) == IMAP_STATUS_NONE)
		return set_error(parser, IMAP_PERR_SYNTAX,
			"tagged response without status");
	return resp_status_parse(parser, cur);
}

static enum line_result resp_header_parse(struct imap_parser *parser,
					  struct cursor *cur)
{
	if (cur->p == cur->end)
		return set_error(parser, IMAP_PERR_SYNTAX, "empty line");
	if (cursor_skip_char(cur, '+')) {
		/* "+" alone is valid; so is "+ " followed by anything. */
		parser->resp.type = IMAP_RESP_CONTINUATION;
		(void)cursor_skip_char(cur, ' ');
		parser->resp.text = cursor_rest_dup(parser, cur);
		return LINE_RESPONSE;
	}
	if (cursor_skip_char(cur, '*'))
		return resp_untagged_parse(parser, cur);
	return resp_tagged_parse(parser, cur);
}

/* ---- line collection and the feed loop ------------------------------- */

static enum line_result line_parse(struct imap_parser *parser)
{
	struct cursor cur = {
		parser->line.data, parser->line.data + parser->line.len
	};

	/* Strip LF and an optional CR before it. */
	cur.end--;
	if (cur.end > cur.p && cur.end[-1] == '\r')
		cur.end--;

	if (!parser->header_done) {
		enum line_result ret = resp_header_parse(parser, &cur);

		if (ret != LINE_ARGS)
			return ret;
		parser->header_done = true;
	}
	return args_parse(parser, &parser->args, &cur, false);
}

/* Grow the line buffer without ever allocating past max_line. */
static void line_reserve(struct imap_parser *parser, size_t need)
{
	struct buf *line = &parser->line;

	if (need <= line->cap)
		return;

	size_t cap = line->cap < LINE_MIN_ALLOC ? LINE_MIN_ALLOC :
		line->cap > SIZE_MAX / 2 ? SIZE_MAX : line->cap * 2;

	if (cap < need)
		cap = need;
	if (cap > parser->limits.max_line)
		cap = parser->limits.max_line;
	line->data = xrealloc(line->data, cap);
	line->cap = cap;
}

enum take_result { TAKE_PARTIAL, TAKE_LINE, TAKE_ERROR };

/* Append data up to and including LF.  Errors are pinned to the first
   offending byte, so any chunking of the input fails at the same spot. */
static enum take_result line_take(struct imap_parser *parser,
				  const unsigned char *data, size_t len,
				  size_t *taken_r)
{
	const unsigned char *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) + 1 : len;
	size_t room = parser->limits.max_line - parser->line_total;
	const unsigned char *nul = memchr(data, '\0', take < room ? take : room);

	if (nul != NULL) {
		*taken_r = (size_t)(nul - data);
		set_error(parser, IMAP_PERR_NUL, "NUL byte outside a literal");
		return TAKE_ERROR;
	}
	if (take > room) {
		*taken_r = room;
		set_error(parser, IMAP_PERR_LINE_TOO_LONG, "response line too long");
		return TAKE_ERROR;
	}
	/* line.len + take <= line_total + room == max_line */
	line_reserve(parser, parser->line.len + take);
	memcpy(parser->line.data + parser->line.len, data, take);
	parser->line.len += take;
	parser->line_total += take;
	*taken_r = take;
	return lf != NULL ? TAKE_LINE : TAKE_PARTIAL;
}

static void response_reset(struct imap_parser *parser)
{
	arena_clear(parser);
	memset(&parser->resp, 0, sizeof(parser->resp));
	parser->resp.text = "";
	memset(&parser->args, 0, sizeof(parser->args));
	parser->args.headp = &parser->resp.args;
	parser->header_done = false;
	parser->line.len = 0;
	parser->line_total = 0;
	parser->inline_total = 0;
	parser->streamed = NULL;
	parser->phase = PHASE_LINE;
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	static const struct imap_parser_limits defaults =
		IMAP_PARSER_DEFAULT_LIMITS;
	struct imap_parser *parser = xcalloc(1, sizeof(*parser));

	parser->limits = limits != NULL ? *limits : defaults;
	response_reset(parser);
	return parser;
}

void imap_parser_free(struct imap_parser **_parser)
{
	struct imap_parser *parser = *_parser;

	if (parser == NULL)
		return;
	*_parser = NULL;
	arena_clear(parser);
	free(parser->arena);    /* the one block arena_clear keeps */
	buf_free(&parser->line);
	free(parser);
}

static enum imap_parse_result feed_fail(struct imap_parser *parser,
					size_t pos, size_t *consumed_r)
{
	parser->phase = PHASE_ERROR;
	*consumed_r = pos;
	return IMAP_PARSE_ERROR;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *parser,
					const unsigned char *data, size_t len,
					size_t *consumed_r)
{
	size_t pos = 0, n;

	*consumed_r = 0;
	switch (parser->phase) {
	case PHASE_ERROR:
		return IMAP_PARSE_ERROR;
	case PHASE_STREAM_LITERAL:
		/* The bytes fed now would be the literal's: a caller bug. */
		set_error(parser, IMAP_PERR_SYNTAX,
			  "fed before imap_parser_literal_done()");
		return feed_fail(parser, 0, consumed_r);
	case PHASE_DONE:
		response_reset(parser);
		break;
	case PHASE_LINE:
	case PHASE_INLINE_LITERAL:
		break;
	}

	for (;;) {
		if (parser->phase == PHASE_INLINE_LITERAL) {
			n = len - pos < parser->literal_left ?
				len - pos : parser->literal_left;
			memcpy(parser->literal_dst, data + pos, n);
			parser->literal_dst += n;
			parser->literal_left -= n;
			pos += n;
			if (parser->literal_left > 0)
				break;
			parser->phase = PHASE_LINE;
		}
		if (pos == len)
			break;

		enum take_result take = line_take(parser, data + pos,
						  len - pos, &n);

		pos += n;
		if (take == TAKE_ERROR)
			return feed_fail(parser, pos, consumed_r);
		if (take == TAKE_PARTIAL)
			break;

		enum line_result ret = line_parse(parser);

		parser->line.len = 0;
		switch (ret) {
		case LINE_RESPONSE:
			parser->phase = PHASE_DONE;
			*consumed_r = pos;
			return IMAP_PARSE_RESPONSE;
		case LINE_INLINE_LITERAL:
			parser->phase = PHASE_INLINE_LITERAL;
			break;
		case LINE_STREAM_LITERAL:
			parser->phase = PHASE_STREAM_LITERAL;
			*consumed_r = pos;
			return IMAP_PARSE_LITERAL;
		case LINE_ARGS:
		case LINE_CODE_END:
			abort();    /* line_parse never ends there */
		case LINE_ERROR:
			return feed_fail(parser, pos, consumed_r);
		}
	}
	*consumed_r = pos;
	return IMAP_PARSE_NEED_MORE;
}

/* ---- accessors ------------------------------------------------------- */

uint64_t imap_parser_literal_size(const struct imap_parser *parser)
{
	return parser->phase == PHASE_STREAM_LITERAL ? parser->literal_size : 0;
}

bool imap_parser_literal8(const struct imap_parser *parser)
{
	return parser->phase == PHASE_STREAM_LITERAL && parser->literal8;
}

void imap_parser_literal_done(struct imap_parser *parser)
{
	if (parser->phase != PHASE_STREAM_LITERAL) {
		/* A caller bug; make the next feed say so. */
		if (parser->phase != PHASE_ERROR) {
			set_error(parser, IMAP_PERR_SYNTAX,
				  "imap_parser_literal_done() without a literal");
			parser->phase = PHASE_ERROR;
		}
		return;
	}
	parser->args.last_done = parser->streamed;
	parser->phase = PHASE_LINE;
}

const struct imap_response *imap_parser_response(const struct imap_parser *parser)
{
	return &parser->resp;
}

const struct imap_arg *imap_parser_last_arg(const struct imap_parser *parser)
{
	return parser->args.last_done;
}

enum imap_parse_error imap_parser_error(const struct imap_parser *parser)
{
	return parser->error;
}

const char *imap_parser_error_string(const struct imap_parser *parser)
{
	return parser->error_msg != NULL ? parser->error_msg : "no error";
}

bool imap_arg_is_atom(const struct imap_arg *arg, const char *upper)
{
	return arg != NULL && arg->type == IMAP_ARG_ATOM &&
		ascii_strcaseeq(arg->str, upper);
}

const char *imap_arg_as_astring(const struct imap_arg *arg)
{
	if (arg == NULL)
		return NULL;
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		return arg->str;
	case IMAP_ARG_LITERAL_STREAMED:
	case IMAP_ARG_NIL:
	case IMAP_ARG_LIST:
		break;
	}
	return NULL;
}

bool imap_arg_get_nstring(const struct imap_arg *arg, const char **str_r)
{
	if (arg != NULL && arg->type == IMAP_ARG_NIL) {
		*str_r = NULL;
		return true;
	}
	*str_r = imap_arg_as_astring(arg);
	return *str_r != NULL;
}

bool imap_arg_get_number(const struct imap_arg *arg, uint64_t *num_r)
{
	return arg != NULL && arg->type == IMAP_ARG_ATOM &&
		str_to_u64(arg->str, num_r);
}

/* ---- dump ------------------------------------------------------------ */

static void dump_bytes(struct buf *out, const char *s, size_t len, bool quote)
{
	if (quote)
		buf_append(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_ctl(c) || c >= 0x80)
			buf_appendf(out, "\\x%02x", c);
		else if (quote && (c == '"' || c == '\\'))
			buf_appendf(out, "\\%c", c);
		else
			buf_append(out, &c, 1);
	}
	if (quote)
		buf_append(out, "\"", 1);
}

/* Iterative: the stack holds, per open list, the sibling to resume at. */
static void dump_args(struct buf *out, const struct imap_arg *arg)
{
	const struct imap_arg **stack = NULL;
	size_t depth = 0, cap = 0;
	bool first = true;

	for (;;) {
		if (arg == NULL) {
			if (depth == 0)
				break;
			buf_append(out, ")", 1);
			arg = stack[--depth];
			first = false;
			continue;
		}
		if (!first)
			buf_append(out, " ", 1);
		first = false;
		switch (arg->type) {
		case IMAP_ARG_ATOM:
			dump_bytes(out, arg->str, arg->len, false);
			break;
		case IMAP_ARG_STRING:
			dump_bytes(out, arg->str, arg->len, true);
			break;
		case IMAP_ARG_LITERAL:
		case IMAP_ARG_LITERAL_STREAMED:
			buf_appendf(out, "%s{%llu}", arg->literal8 ? "~" : "",
				    (unsigned long long)arg->literal_size);
			if (arg->type == IMAP_ARG_LITERAL)
				dump_bytes(out, arg->str, arg->len, true);
			else
				buf_append(out, "<streamed>", 10);
			break;
		case IMAP_ARG_NIL:
			buf_append(out, "NIL", 3);
			break;
		case IMAP_ARG_LIST:
			if (depth == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				stack = xreallocarray(stack, cap, sizeof(*stack));
			}
			stack[depth++] = arg->next;
			buf_appendf(out, "(");
			arg = arg->list;
			first = true;
			continue;
		}
		arg = arg->next;
	}
	free(stack);
}

char *imap_response_dump(const struct imap_response *resp)
{
	struct buf out = { 0 };

	switch (resp->type) {
	case IMAP_RESP_TAGGED:
		buf_appendf(&out, "TAGGED %s", resp->tag != NULL ? resp->tag : "?");
		break;
	case IMAP_RESP_UNTAGGED:
		buf_appendf(&out, "UNTAGGED");
		break;
	case IMAP_RESP_CONTINUATION:
		buf_appendf(&out, "CONTINUATION");
		break;
	}
	if (resp->has_number)
		buf_appendf(&out, " #%u", (unsigned int)resp->number);
	if (resp->name != NULL)
		buf_appendf(&out, " %s", resp->name);
	if (resp->code != NULL) {
		buf_appendf(&out, " [%s", resp->code);
		if (resp->code_args != NULL) {
			buf_append(&out, " ", 1);
			dump_args(&out, resp->code_args);
		}
		buf_append(&out, "]", 1);
	}
	if (resp->status != IMAP_STATUS_NONE ||
	    resp->type == IMAP_RESP_CONTINUATION) {
		buf_append(&out, " text=", 6);
		dump_bytes(&out, resp->text, strlen(resp->text), true);
	}
	if (resp->args != NULL) {
		buf_append(&out, " args=", 6);
		dump_args(&out, resp->args);
	}
	buf_append(&out, "", 1);
	return (char *)out.data;
}

/* ------------------------------------------------------------------ */
/* server data that goes back on the wire                              */

static bool atom_char(unsigned char ch)
{
	/* ATOM-CHAR: any CHAR except atom-specials: ( ) { SP CTL % * " \ ] */
	return ch > 0x20 && ch < 0x7f && strchr("(){%*\"\\]", ch) == NULL;
}

bool imap_flag_canonical(const char *flag, char *out)
{
	static const char *const system_flags[] = {
		"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
	};
	size_t len = strlen(flag);

	if (flag[0] == '\\') {
		for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
			if (strcasecmp(flag, system_flags[i]) == 0) {
				memcpy(out, system_flags[i], strlen(system_flags[i]) + 1);
				return true;
			}
		}
		return false;
	}
	if (len == 0 || len > IMAP_KEYWORD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!atom_char((unsigned char)flag[i]))
			return false;
	memcpy(out, flag, len + 1);
	return true;
}

static bool digits(const char *s, size_t n, int *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

bool imap_date_time_canonical(const char *s, char *out)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int day, mon = -1, year, hh, mm, ss, zh, zm;
	const char *p = s;

	/* date-day-fixed: " 1" or "01"; one digit is seen in the wild. */
	if (p[0] == ' ' && digits(p + 1, 1, &day))
		p += 2;
	else if (digits(p, 2, &day))
		p += 2;
	else if (digits(p, 1, &day))
		p += 1;
	else
		return false;
	if (*p++ != '-')
		return false;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(p, months + 3 * i, 3) == 0)
			mon = i;
	if (mon < 0 || p[3] != '-')
		return false;
	p += 4;
	if (!digits(p, 4, &year) || p[4] != ' ' || !digits(p + 5, 2, &hh) || p[7] != ':' ||
	    !digits(p + 8, 2, &mm) || p[10] != ':' || !digits(p + 11, 2, &ss) ||
	    p[13] != ' ' || (p[14] != '+' && p[14] != '-') ||
	    !digits(p + 15, 2, &zh) || !digits(p + 17, 2, &zm) || p[19] != '\0')
		return false;
	if (day < 1 || day > mdays[mon] || year < 1970 || hh > 23 || mm > 59 ||
	    ss > 60 || zh > 23 || zm > 59)
		return false;
	snprintf(out, IMAP_DATE_TIME_LEN, "%02d-%.3s-%04d %02d:%02d:%02d %c%02d%02d", day,
		 months + 3 * mon, year, hh, mm, ss, p[14], zh, zm);
	return true;
}
