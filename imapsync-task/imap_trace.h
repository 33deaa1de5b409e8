/* imap_trace.h - the protocol trace of -vv: what a server sends, line by
 * line as it arrived, with line ends shown as \r\n and the contents of
 * message literals left out.
 *
 * Fed with every byte read from the connection (after TLS), it emits
 * one log line per protocol line: "remote << * 1 FETCH (UID 7 BODY[]
 * {3120}\r\n", then "remote << <literal: 3120 bytes of message data>",
 * then "remote << )\r\n".  A literal in a FETCH response is message
 * data and is never shown; other literals (a folder name in a LIST
 * answer) are, escaped.  Control characters are escaped (\r \n \t \xHH)
 * so a peer cannot forge log lines; every line also goes through the
 * logger's redaction of registered secrets.  What the client sends is
 * traced by imap_client.c with imap_trace_escape().
 */
#ifndef IMAP_TRACE_H
#define IMAP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest protocol line shown whole; the rest is counted, not shown. */
#define IMAP_TRACE_LINE_MAX 1000

struct imap_trace {
	char label[64];
	const char *arrow;            /* "<<" */
	struct buf line;              /* the line so far, raw (capped) */
	size_t line_len;              /* its real length */
	char tail[32];                /* the line's last bytes (its literal
	                                 announcement, however long it is) */
	size_t tail_n;
	bool line_started;            /* a response is open (after a literal) */
	bool in_fetch;                /* the open response is a FETCH */
	uint64_t literal_left;        /* literal bytes still to come */
	uint64_t literal_size;
	bool literal_shown;           /* its contents are shown (not FETCH) */
	/* Where lines go; default: log_debug("%s %s %s", label, arrow, text). */
	void (*emit)(void *ctx, const char *text);
	void *emit_ctx;
};

void imap_trace_init(struct imap_trace *t, const char *label, const char *arrow);
void imap_trace_feed(struct imap_trace *t, const void *data, size_t len);
/* Emit what is left of an unfinished line ("... (incomplete)"). */
void imap_trace_flush(struct imap_trace *t);
void imap_trace_free(struct imap_trace *t);

/* Append data escaped for a log line: \r, \n, \t, \\x.. for other control
   bytes and DEL; everything else as is. */
void imap_trace_escape(struct buf *out, const void *data, size_t len);

#endif
