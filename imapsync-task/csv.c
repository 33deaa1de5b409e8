/* csv.c - an RFC 4180 CSV reader over a buffer in memory (see csv.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "util.h"

void csv_init(struct csv_reader *r, const char *text, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->p = text;
	r->end = text + len;
	r->line = 1;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		r->p += 3;
}

static void __attribute__((format(printf, 3, 4)))
fail(struct csv_reader *r, unsigned line, const char *fmt, ...)
{
	va_list ap;

	r->failed = true;
	r->error_line = line;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

void csv_record_free(struct csv_record *rec)
{
	for (size_t i = 0; i < rec->n; i++) {
		explicit_wipe(rec->fields[i], strlen(rec->fields[i]));
		free(rec->fields[i]);
	}
	free(rec->fields);
	free(rec->quoted);
	rec->fields = NULL;
	rec->quoted = NULL;
	rec->n = 0;
	rec->line = 0;
}

bool csv_record_blank(const struct csv_record *rec)
{
	for (size_t i = 0; i < rec->n; i++) {
		if (rec->fields[i][strspn(rec->fields[i], " \t")] != '\0')
			return false;
	}
	return true;
}

/* At a line end?  Consume it (CRLF, LF or CR) and count the line. */
static bool eat_line_end(struct csv_reader *r)
{
	if (r->p < r->end && *r->p == '\r') {
		r->p++;
		if (r->p < r->end && *r->p == '\n')
			r->p++;
		r->line++;
		return true;
	}
	if (r->p < r->end && *r->p == '\n') {
		r->p++;
		r->line++;
		return true;
	}
	return false;
}

/* The field's bytes: valid UTF-8, no NUL. */
static bool check_field(struct csv_reader *r, const struct buf *b, unsigned line,
			size_t index)
{
	size_t i = 0;

	while (i < b->len) {
		uint32_t cp;
		size_t n;

		if (b->data[i] == '\0') {
			fail(r, line, "field %zu: NUL byte", index + 1);
			return false;
		}
		n = utf8_decode(b->data + i, b->len - i, &cp);
		if (n == 0) {
			fail(r, line, "field %zu: not valid UTF-8", index + 1);
			return false;
		}
		i += n;
	}
	return true;
}

static void wipe_buf(struct buf *b)
{
	if (b->data != NULL)
		explicit_wipe(b->data, b->cap);
	buf_free(b);
}

/* One field at r->p into b.  Returns false after fail(). */
static bool read_field(struct csv_reader *r, struct buf *b, size_t index)
{
	if (r->p < r->end && *r->p == '"') {
		unsigned start = r->line;

		r->p++;
		for (;;) {
			if (r->p >= r->end) {
				fail(r, start, "field %zu: the quote opened here is never closed",
				     index + 1);
				return false;
			}
			if (*r->p == '"') {
				if (r->p + 1 < r->end && r->p[1] == '"') {
					buf_append(b, "\"", 1);
					r->p += 2;
					continue;
				}
				r->p++;
				break;
			}
			if (*r->p == '\n' || (*r->p == '\r' &&
			    (r->p + 1 >= r->end || r->p[1] != '\n')))
				r->line++;
			buf_append(b, r->p, 1);
			r->p++;
		}
		if (r->p < r->end && *r->p != ',' && *r->p != '\r' && *r->p != '\n') {
			fail(r, r->line, "field %zu: text after the closing quote "
			     "(a '\"' inside a quoted field is written '\"\"')", index + 1);
			return false;
		}
		return true;
	}
	while (r->p < r->end && *r->p != ',' && *r->p != '\r' && *r->p != '\n') {
		if (*r->p == '"') {
			fail(r, r->line, "field %zu: a '\"' inside an unquoted field "
			     "(quote the whole field and write the '\"' as '\"\"')",
			     index + 1);
			return false;
		}
		buf_append(b, r->p, 1);
		r->p++;
	}
	return true;
}

enum csv_result csv_next(struct csv_reader *r, struct csv_record *rec)
{
	csv_record_free(rec);
	if (r->failed)
		return CSV_ERROR;
	if (r->p >= r->end)
		return CSV_END;
	rec->line = r->line;
	for (;;) {
		struct buf b = { 0 };
		unsigned line = r->line;
		bool quoted = r->p < r->end && *r->p == '"';

		if (!read_field(r, &b, rec->n) || !check_field(r, &b, line, rec->n)) {
			wipe_buf(&b);
			csv_record_free(rec);
			return CSV_ERROR;
		}
		rec->fields = xreallocarray(rec->fields, rec->n + 1, sizeof(*rec->fields));
		rec->quoted = xreallocarray(rec->quoted, rec->n + 1, sizeof(*rec->quoted));
		rec->quoted[rec->n] = quoted;
		rec->fields[rec->n++] = xstrndup(b.len ? (const char *)b.data : "", b.len);
		wipe_buf(&b);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		/* the end of the record: a line end or the end of the text */
		(void)eat_line_end(r);
		return CSV_RECORD;
	}
}
