/* lmtp.c - a small LMTP client (RFC 2033) for delivery = lmtp.
 *
 * One session per run: LHLO once, then MAIL/RCPT/DATA per message.  The
 * body is streamed from its msgbody with dot-stuffing; it is never held
 * whole in memory.  Replies are classified by their codes, with the
 * enhanced status code telling a full mailbox (x.2.2) apart.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "lmtp.h"
#include "net.h"
#include "util.h"

#define LMTP_LINE_MAX 4096

struct lmtp_session {
	struct net_conn *conn;
	int timeout_ms;
	struct buf in;
	struct buf out;
	void (*progress)(void *ctx);
	void *progress_ctx;
};

/* Read what the server says, within the session's timeout, showing a
   sign of life every second: while the server is still taking or saving
   a message, this run is alive, and a crash now must leave the next run
   its full grace (sync_inbox.c, reconcile_intents). */
static ssize_t read_alive(struct lmtp_session *s)
{
	int left = s->timeout_ms;

	buf_reserve(&s->in, 4096);
	for (;;) {
		int slice = left < 1000 ? left : 1000;
		enum net_status st;
		ssize_t n = net_read(s->conn, s->in.data + s->in.len, 4096, slice, &st);
		if (n >= 0 || st != NET_ERR_TIMEOUT || (left -= slice) <= 0)
			return n;
		if (s->progress != NULL)
			s->progress(s->progress_ctx);
	}
}

/* Read one reply (possibly multi-line "250-..."); *code_r gets the
   three-digit code and text the last line. */
static bool read_reply(struct lmtp_session *s, int *code_r, char *text, size_t len)
{
	for (;;) {
		unsigned char *nl = s->in.len ? memchr(s->in.data, '\n', s->in.len) : NULL;
		if (nl == NULL) {
			if (s->in.len > LMTP_LINE_MAX)
				return false;
			ssize_t n = read_alive(s);
			if (n < 0)
				return false;
			s->in.len += (size_t)n;
			continue;
		}
		size_t linelen = (size_t)(nl - s->in.data) + 1;
		char line[LMTP_LINE_MAX + 1];
		size_t copy = linelen < sizeof(line) ? linelen : sizeof(line) - 1;
		memcpy(line, s->in.data, copy);
		line[copy] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		buf_consume(&s->in, linelen);
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5')
			return false;
		if (line[3] == '-')
			continue;
		*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		snprintf(text, len, "%s", line);
		return true;
	}
}

/* Send prefix + arg + suffix as one line; arg never holds CR or LF. */
static bool send_line(struct lmtp_session *s, const char *prefix, const char *arg,
		      const char *suffix)
{
	char line[1100];
	int n = snprintf(line, sizeof(line), "%s%s%s\r\n", prefix, arg, suffix);

	if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(arg, "\r\n") != NULL)
		return false;
	return net_write(s->conn, line, (size_t)n, s->timeout_ms) == NET_OK;
}

int lmtp_open(const char *target, int timeout_ms, void (*progress)(void *ctx),
	      void *progress_ctx, struct lmtp_session **s_r, char *err, size_t errlen)
{
	struct lmtp_session *s = xcalloc(1, sizeof(*s));
	char sub[400], text[LMTP_LINE_MAX];
	enum net_status st;
	int code;

	s->timeout_ms = timeout_ms;
	s->progress = progress;
	s->progress_ctx = progress_ctx;
	if (target[0] == '/') {
		st = net_connect_unix(target, timeout_ms, &s->conn, sub, sizeof(sub));
	} else {
		const char *colon = strrchr(target, ':');
		char *host = colon ? xstrndup(target, (size_t)(colon - target)) : xstrdup(target);
		uint32_t port = 24;
		if (colon != NULL && (!str_to_u32(colon + 1, &port) || port == 0 || port > 65535)) {
			free(host);
			free(s);
			snprintf(err, errlen, "lmtp: bad address %s", target);
			return EXIT_CONFIG;
		}
		st = net_connect(host, (uint16_t)port, timeout_ms, &s->conn, sub, sizeof(sub));
		free(host);
	}
	if (st != NET_OK) {
		snprintf(err, errlen, "local LMTP: %s", sub);
		free(s);
		return EXIT_UNAVAILABLE;
	}
	if (!read_reply(s, &code, text, sizeof(text)) || code != 220 ||
	    !send_line(s, "LHLO ", "imapsync-task.localhost", "") ||
	    !read_reply(s, &code, text, sizeof(text)) || code != 250) {
		snprintf(err, errlen, "local LMTP at %s: no usable greeting", target);
		lmtp_close(&s);
		return EXIT_UNAVAILABLE;
	}
	*s_r = s;
	return 0;
}

void lmtp_close(struct lmtp_session **sp)
{
	struct lmtp_session *s = *sp;

	if (s == NULL)
		return;
	if (s->conn != NULL) {
		(void)send_line(s, "QUIT", "", "");
		net_close(&s->conn);
	}
	buf_free(&s->in);
	buf_free(&s->out);
	free(s);
	*sp = NULL;
}

/* Stream the body with dot-stuffing and a guaranteed final CRLF. */
static bool send_body(struct lmtp_session *s, const struct msgbody *body)
{
	unsigned char chunk[65536];
	uint64_t off = 0, size = msgbody_size(body);
	bool at_line_start = true;
	unsigned char last = '\n';

	while (off < size) {
		ssize_t n = msgbody_read(body, off, chunk, sizeof(chunk));
		if (n <= 0)
			return false;
		s->out.len = 0;
		for (ssize_t i = 0; i < n; i++) {
			if (at_line_start && chunk[i] == '.')
				buf_append(&s->out, ".", 1);
			buf_append(&s->out, &chunk[i], 1);
			at_line_start = chunk[i] == '\n';
		}
		last = chunk[n - 1];
		off += (uint64_t)n;
		if (net_write(s->conn, s->out.data, s->out.len, s->timeout_ms) != NET_OK)
			return false;
		/* A sign of life while the message goes out: a run that dies
		   now leaves a delivery the server may still complete, and the
		   next run waits for it from this moment (sync_inbox.c). */
		if (s->progress != NULL)
			s->progress(s->progress_ctx);
	}
	const char *end = last == '\n' ? ".\r\n" : "\r\n.\r\n";
	bool sent = net_write(s->conn, end, strlen(end), s->timeout_ms) == NET_OK;
	if (s->progress != NULL)
		s->progress(s->progress_ctx);
	return sent;
}

static enum lmtp_outcome classify(int code, const char *text)
{
	int c, cls, sub, detail;

	if (code == 250)
		return LMTP_DELIVERED;
	/* Enhanced status code (RFC 3463) x.2.2: mailbox full. */
	if (sscanf(text, "%d %d.%d.%d", &c, &cls, &sub, &detail) == 4 && sub == 2 && detail == 2)
		return LMTP_OVERQUOTA;
	return code >= 500 ? LMTP_PERMFAIL : LMTP_TEMPFAIL;
}

enum lmtp_outcome lmtp_deliver(struct lmtp_session *s, const char *from,
			       const char *rcpt, const struct msgbody *body,
			       char *err, size_t errlen)
{
	char text[LMTP_LINE_MAX];
	int code;

	if (!send_line(s, "MAIL FROM:<", from, ">") ||
	    !read_reply(s, &code, text, sizeof(text)))
		goto lost_before;
	if (code != 250)
		goto refused;
	if (!send_line(s, "RCPT TO:<", rcpt, ">") || !read_reply(s, &code, text, sizeof(text)))
		goto lost_before;
	if (code != 250)
		goto refused;
	if (!send_line(s, "DATA", "", "") || !read_reply(s, &code, text, sizeof(text)))
		goto lost_before;
	if (code != 354)
		goto refused;
	/* From here on a lost connection leaves the outcome unknown. */
	if (!send_body(s, body) || !read_reply(s, &code, text, sizeof(text))) {
		snprintf(err, errlen, "local LMTP: connection lost during delivery");
		return LMTP_LOST;
	}
	if (code == 250)
		return LMTP_DELIVERED;
refused:
	snprintf(err, errlen, "local LMTP refused the message: %s", text);
	enum lmtp_outcome o = classify(code, text);
	/* Ready the session for the next message. */
	if (send_line(s, "RSET", "", ""))
		(void)read_reply(s, &code, text, sizeof(text));
	return o;
lost_before:
	snprintf(err, errlen, "local LMTP: connection lost");
	return LMTP_TEMPFAIL;
}

/* Copy the first address-looking token of a header value: <...> or a
   bare word with '@'.  Never more than len-1 bytes, no CR/LF/<>. */
static void extract_address(const char *v, char *buf, size_t len)
{
	const char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	const char *start = NULL, *end = NULL;

	if (lt != NULL && gt != NULL) {
		start = lt + 1;
		end = gt;
	} else {
		for (const char *p = v; *p != '\0'; p++) {
			if (*p == '@') {
				start = p;
				while (start > v && !strchr(" \t,;\"", start[-1]))
					start--;
				end = p;
				while (*end != '\0' && !strchr(" \t,;\"\r\n", *end))
					end++;
				break;
			}
		}
	}
	buf[0] = '\0';
	if (start == NULL || end <= start || (size_t)(end - start) >= len)
		return;
	for (const char *p = start; p < end; p++)
		if (*p <= ' ' || *p == '<' || *p == '>' || (unsigned char)*p >= 0x7f)
			return;
	memcpy(buf, start, (size_t)(end - start));
	buf[end - start] = '\0';
}

void lmtp_envelope_sender(const struct msgbody *body, char *buf, size_t len)
{
	char head[16384], from[512] = "";
	ssize_t n = msgbody_read(body, 0, head, sizeof(head) - 1);

	buf[0] = '\0';
	if (n <= 0)
		return;
	head[n] = '\0';
	char *end = strstr(head, "\r\n\r\n");
	if (end == NULL)
		end = strstr(head, "\n\n");
	if (end != NULL)
		*end = '\0';
	for (char *line = head; line != NULL && *line != '\0';) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncasecmp(line, "Return-Path:", 12) == 0) {
			extract_address(line + 12, buf, len);
			if (buf[0] != '\0' || strchr(line + 12, '<') != NULL)
				return;   /* "<>" is a deliberate null sender */
		} else if (from[0] == '\0' && strncasecmp(line, "From:", 5) == 0) {
			extract_address(line + 5, from, sizeof(from));
		}
		line = next;
	}
	snprintf(buf, len, "%s", from);
}
