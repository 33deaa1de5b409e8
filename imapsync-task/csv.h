/* csv.h - an RFC 4180 CSV reader over a buffer in memory.
 *
 * Pure: no I/O, no global state.  The rules:
 *
 *  - fields are separated by ',' and records by CRLF, LF or a lone CR;
 *    the last record may lack its line end;
 *  - a field that starts with '"' is quoted: it ends at a '"' that is
 *    not doubled, "" inside stands for one '"', and commas, CR and LF
 *    inside are data; after the closing quote only ',' or the end of
 *    the record may follow;
 *  - an unquoted field is taken as it is (spaces included) and must not
 *    contain '"';
 *  - a UTF-8 byte order mark at the very start is skipped; every field
 *    must be valid UTF-8 without NUL bytes.
 *
 * Each record knows the physical line it starts on (quoted fields may
 * span lines), for "FILE:LINE" messages.  An error stops the reader.
 */
#ifndef CSV_H
#define CSV_H

#include <stdbool.h>
#include <stddef.h>

struct csv_reader {
	const char *p, *end;
	unsigned line;          /* physical line of p, from 1 */
	bool failed;
	unsigned error_line;
	char error[160];
};

struct csv_record {
	char **fields;          /* n allocated, NUL-terminated strings */
	bool *quoted;           /* n: was field i quoted? */
	size_t n;
	unsigned line;          /* the physical line the record starts on */
};

enum csv_result { CSV_RECORD, CSV_END, CSV_ERROR };

/* Read from text (len bytes; it must outlive the reader). */
void csv_init(struct csv_reader *r, const char *text, size_t len);
/* The next record into rec (freed first with csv_record_free, so a
   zeroed rec can be reused across calls).  CSV_END at the end of the
   text, CSV_ERROR with r->error and r->error_line set. */
enum csv_result csv_next(struct csv_reader *r, struct csv_record *rec);
/* Wipe (fields may hold passwords) and free the fields. */
void csv_record_free(struct csv_record *rec);

/* Is every field of rec empty or made of spaces and tabs only (a blank
   line, or ",,,")? */
bool csv_record_blank(const struct csv_record *rec);

#endif
