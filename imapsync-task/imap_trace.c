/* imap_trace.c - the -vv trace of what a server sends (see imap_trace.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_trace.h"
#include "log.h"

static void default_emit(void *ctx, const char *text)
{
	struct imap_trace *t = ctx;

	log_debug("%s %s %s", t->label, t->arrow, text);
}

void imap_trace_init(struct imap_trace *t, const char *label, const char *arrow)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->label, sizeof(t->label), "%s", label);
	t->arrow = arrow;
	t->emit = default_emit;
	t->emit_ctx = t;
}

void imap_trace_free(struct imap_trace *t)
{
	buf_free(&t->line);
}

void imap_trace_escape(struct buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		switch (c) {
		case '\r': buf_append(out, "\\r", 2); break;
		case '\n': buf_append(out, "\\n", 2); break;
		case '\t': buf_append(out, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_appendf(out, "\\x%02x", c);
			else
				buf_append(out, &c, 1);
		}
	}
}

/* Emit prefix + escaped(data) + suffix, redacted before a suffix is
   added: a secret cut at the end of what is shown must still be found
   at the end of the string. */
static void emit_escaped(struct imap_trace *t, const char *prefix, const void *data,
			 size_t len, const char *suffix)
{
	struct buf b = { 0 };
	char red[4 * IMAP_TRACE_LINE_MAX + 200];

	buf_appendf(&b, "%s", prefix);
	imap_trace_escape(&b, data, len);
	buf_append(&b, "", 1);
	log_redact(red, sizeof(red), (const char *)b.data);
	buf_free(&b);
	if (suffix[0] != '\0') {
		size_t n = strlen(red);
		snprintf(red + n, sizeof(red) - n, "%s", suffix);
	}
	t->emit(t->emit_ctx, red);
}

/* "* 12 FETCH ..." (any case)? */
static bool is_fetch(const unsigned char *s, size_t len)
{
	size_t i = 0;

	if (len < 2 || s[0] != '*' || s[1] != ' ')
		return false;
	i = 2;
	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	return len - i >= 7 && strncasecmp((const char *)s + i, " FETCH ", 7) == 0;
}

/* Does the line (its last bytes in tail) announce a literal: "{N}" or
   "{N+}" right before the line end? */
static bool literal_announced(const char *tail, size_t len, uint64_t *size_r)
{
	if (len > 0 && tail[len - 1] == '\n')
		len--;
	if (len > 0 && tail[len - 1] == '\r')
		len--;
	if (len < 3 || tail[len - 1] != '}')
		return false;
	len--;
	if (tail[len - 1] == '+')
		len--;
	size_t end = len;
	while (len > 0 && tail[len - 1] >= '0' && tail[len - 1] <= '9')
		len--;
	if (len == 0 || tail[len - 1] != '{' || end == len || end - len > 19)
		return false;
	uint64_t v = 0;
	for (size_t i = len; i < end; i++)
		v = v * 10 + (uint64_t)(tail[i] - '0');
	*size_r = v;
	return true;
}

static void literal_done(struct imap_trace *t)
{
	char what[96];

	if (!t->literal_shown) {
		snprintf(what, sizeof(what), "<literal: %llu bytes of message data, not shown>",
			 (unsigned long long)t->literal_size);
		t->emit(t->emit_ctx, what);
	} else {
		snprintf(what, sizeof(what), "<literal %llu bytes> ",
			 (unsigned long long)t->literal_size);
		char more[64] = "";
		if (t->line_len > t->line.len)
			snprintf(more, sizeof(more), " ... (%llu bytes in all)",
				 (unsigned long long)t->line_len);
		emit_escaped(t, what, t->line.data, t->line.len, more);
	}
	t->line.len = 0;
	t->line_len = 0;
}

static void line_done(struct imap_trace *t, const char *tail, size_t tail_len)
{
	char more[64] = "";
	uint64_t lit;

	if (!t->line_started)
		t->in_fetch = is_fetch(t->line.data, t->line.len);
	if (t->line_len > t->line.len)
		snprintf(more, sizeof(more), " ... (%llu bytes in all)",
			 (unsigned long long)t->line_len);
	emit_escaped(t, "", t->line.data, t->line.len, more);
	t->line.len = 0;
	t->line_len = 0;
	if (literal_announced(tail, tail_len, &lit)) {
		t->line_started = true;
		t->literal_left = t->literal_size = lit;
		t->literal_shown = !t->in_fetch;
		if (lit == 0)
			literal_done(t);
	} else {
		t->line_started = false;
		t->in_fetch = false;
	}
}

void imap_trace_feed(struct imap_trace *t, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		if (t->literal_left > 0) {
			size_t n = len < t->literal_left ? len : (size_t)t->literal_left;
			if (t->literal_shown && t->line.len < IMAP_TRACE_LINE_MAX) {
				size_t keep = IMAP_TRACE_LINE_MAX - t->line.len;
				buf_append(&t->line, p, n < keep ? n : keep);
			}
			t->line_len += n;
			t->literal_left -= n;
			p += n;
			len -= n;
			if (t->literal_left == 0)
				literal_done(t);
			continue;
		}
		const unsigned char *lf = memchr(p, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - p) + 1 : len;
		if (t->line.len < IMAP_TRACE_LINE_MAX) {
			size_t keep = IMAP_TRACE_LINE_MAX - t->line.len;
			buf_append(&t->line, p, n < keep ? n : keep);
		}
		/* Keep the line's last bytes apart: a long line's literal
		   announcement is past what is shown. */
		size_t cap = sizeof(t->tail);
		if (n >= cap) {
			memcpy(t->tail, p + n - cap, cap);
			t->tail_n = cap;
		} else {
			if (t->tail_n + n > cap) {
				size_t drop = t->tail_n + n - cap;
				memmove(t->tail, t->tail + drop, t->tail_n - drop);
				t->tail_n -= drop;
			}
			memcpy(t->tail + t->tail_n, p, n);
			t->tail_n += n;
		}
		t->line_len += n;
		p += n;
		len -= n;
		if (lf != NULL) {
			line_done(t, t->tail, t->tail_n);
			t->tail_n = 0;
		}
	}
}

void imap_trace_flush(struct imap_trace *t)
{
	if (t->line_len == 0 && t->literal_left == 0)
		return;
	if (t->literal_left > 0) {
		char what[96];
		snprintf(what, sizeof(what), "<literal: %llu of %llu bytes, incomplete>",
			 (unsigned long long)(t->literal_size - t->literal_left),
			 (unsigned long long)t->literal_size);
		t->emit(t->emit_ctx, what);
	} else {
		emit_escaped(t, "", t->line.data, t->line.len, " ... (incomplete line)");
	}
	t->line.len = 0;
	t->line_len = 0;
	t->tail_n = 0;
	t->literal_left = 0;
}
