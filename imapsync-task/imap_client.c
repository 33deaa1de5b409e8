/* imap_client.c - the IMAP engine.
 *
 * One connection, one parser, one queue.  Commands are built as a list of
 * parts (text, literals, continuation lines) and sent when cmd_sendable()
 * allows; responses are read incrementally and dispatched: tagged ones to
 * their command, untagged ones first to the client's own state
 * (capabilities, mailbox counters) and then to the oldest in-flight
 * command that claims them.  Large literals (message bodies) never pass
 * through the parser's buffers: they are streamed into a msgbody.
 *
 * Here too: connection setup under the TLS policy (greeting, STARTTLS),
 * the deadlines, and response codes classified.  The login is in
 * imap_login.c, the typed commands in imap_cmds.c; both build on the
 * internals declared in imap_client_p.h.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn_hint.h"
#include "exitcode.h"
#include "imap_client_p.h"
#include "imap_trace.h"
#include "log.h"
#include "net.h"
#include "throttle.h"
#include "util.h"

#define MAX_INFLIGHT 64
#define IO_CHUNK 65536

/* ------------------------------------------------------------------ */
/* failure and classification                                          */

void imap_client_fail(struct imap_client *c, int exit_class, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	if (c->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->failed = exit_class;
	snprintf(c->fail_text, sizeof(c->fail_text), "%s: %s", c->label, msg);
}

void imap_client_dead_result(const struct imap_client *c, struct imap_result *res)
{
	res->status = IMAP_STATUS_NONE;
	res->scope = IMAP_SCOPE_CONNECTION;
	res->exit_class = c->failed;
	snprintf(res->text, sizeof(res->text), "%s", c->fail_text);
}

int imap_client_failed(const struct imap_client *c, const char **why_r)
{
	if (why_r != NULL)
		*why_r = c->fail_text;
	return c->failed;
}

const char *imap_client_label(const struct imap_client *c)
{
	return c->label;
}

bool imap_client_has_cap(const struct imap_client *c, enum imap_cap cap)
{
	return (c->caps & cap) != 0;
}

/* Office 365 throttles with a plain NO (or BAD) whose only sign is its
   text: "Request is throttled. Suggested Backoff Time: 299961
   milliseconds".  The one exception to never matching human text: the
   wait it suggests, in ms, or -1 when the text has none. */
#define SUGGESTED_BACKOFF "Suggested Backoff Time:"

static int64_t suggested_backoff_ms(const char *text)
{
	const char *p = strcasestr(text, SUGGESTED_BACKOFF);
	int64_t ms = 0;

	if (p == NULL)
		return -1;
	p += strlen(SUGGESTED_BACKOFF);
	p += strspn(p, " ");
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		if (ms < INT64_MAX / 100)
			ms = ms * 10 + (*p - '0');
	p += strspn(p, " ");
	if (strncasecmp(p, "milliseconds", 12) != 0 && strncasecmp(p, "ms", 2) != 0)
		return -1;
	return ms;
}

/* The server says "not now, too much": [THROTTLED] (not in RFC 5530,
   but used by hosted servers), [UNAVAILABLE], or Office 365's text. */
static bool is_throttled(const char *code, const char *text)
{
	return strcmp(code, "THROTTLED") == 0 || strcmp(code, "UNAVAILABLE") == 0 ||
		(code[0] == '\0' && suggested_backoff_ms(text) >= 0);
}

/* RFC 5530 codes, by what they break.  Human text is never matched
   (but for Office 365's throttling: is_throttled). */
static void classify(struct imap_result *r)
{
	static const struct { const char *code; enum imap_scope scope; int exit_class; } map[] = {
		{ "AUTHENTICATIONFAILED", IMAP_SCOPE_TASK, EXIT_NOPERM },
		{ "AUTHORIZATIONFAILED", IMAP_SCOPE_TASK, EXIT_NOPERM },
		{ "EXPIRED", IMAP_SCOPE_TASK, EXIT_NOPERM },
		{ "PRIVACYREQUIRED", IMAP_SCOPE_TASK, EXIT_PROTOCOL },
		{ "NOPERM", IMAP_SCOPE_TASK, EXIT_NOPERM },
		{ "OVERQUOTA", IMAP_SCOPE_TASK, EXIT_CANTCREAT },
		{ "TOOBIG", IMAP_SCOPE_MESSAGE, EXIT_SKIPPED },
		{ "LIMIT", IMAP_SCOPE_MESSAGE, EXIT_SKIPPED },
		{ "EXPUNGEISSUED", IMAP_SCOPE_MESSAGE, EXIT_OK },
		{ "TRYCREATE", IMAP_SCOPE_MAILBOX, EXIT_TEMPFAIL },
		{ "NONEXISTENT", IMAP_SCOPE_MAILBOX, EXIT_OK },
		{ "ALREADYEXISTS", IMAP_SCOPE_MAILBOX, EXIT_OK },
		{ "CANNOT", IMAP_SCOPE_MAILBOX, EXIT_DATAERR },
		{ "UIDVALIDITY", IMAP_SCOPE_MAILBOX, EXIT_DATAERR },
		{ "INUSE", IMAP_SCOPE_CONNECTION, EXIT_TEMPFAIL },
		{ "UNAVAILABLE", IMAP_SCOPE_CONNECTION, EXIT_TEMPFAIL },
		{ "THROTTLED", IMAP_SCOPE_CONNECTION, EXIT_TEMPFAIL },
		{ "SERVERBUG", IMAP_SCOPE_CONNECTION, EXIT_TEMPFAIL },
		{ "CONTACTADMIN", IMAP_SCOPE_TASK, EXIT_NOPERM },
	};

	if (r->status == IMAP_STATUS_OK) {
		r->scope = IMAP_SCOPE_NONE;
		r->exit_class = EXIT_OK;
		return;
	}
	for (size_t i = 0; i < N_ELEMENTS(map); i++) {
		if (strcmp(r->code, map[i].code) == 0) {
			r->scope = map[i].scope;
			r->exit_class = map[i].exit_class;
			return;
		}
	}
	if (is_throttled(r->code, r->text)) {
		/* Even as a BAD (Office 365 sends either): not our bug. */
		r->scope = IMAP_SCOPE_CONNECTION;
		r->exit_class = EXIT_TEMPFAIL;
		return;
	}
	/* A BAD is our bug or a server we do not understand; a plain NO
	   is mailbox-scoped and retried by the next run. */
	r->scope = IMAP_SCOPE_MAILBOX;
	r->exit_class = r->status == IMAP_STATUS_BAD ? EXIT_SOFTWARE : EXIT_TEMPFAIL;
}

/* ------------------------------------------------------------------ */
/* capabilities                                                        */

static void caps_from_atom(struct imap_client *c, const char *a)
{
	static const struct { const char *name; enum imap_cap cap; } map[] = {
		{ "IMAP4REV1", CAP_IMAP4REV1 }, { "STARTTLS", CAP_STARTTLS },
		{ "LOGINDISABLED", CAP_LOGINDISABLED }, { "AUTH=PLAIN", CAP_AUTH_PLAIN },
		{ "SASL-IR", CAP_SASL_IR }, { "LITERAL+", CAP_LITERALPLUS },
		{ "LITERAL-", CAP_LITERALMINUS }, { "UIDPLUS", CAP_UIDPLUS },
		{ "MULTIAPPEND", CAP_MULTIAPPEND }, { "ESEARCH", CAP_ESEARCH },
		{ "CONDSTORE", CAP_CONDSTORE }, { "QRESYNC", CAP_QRESYNC },
		{ "ID", CAP_ID }, { "NAMESPACE", CAP_NAMESPACE },
		{ "SPECIAL-USE", CAP_SPECIAL_USE }, { "LIST-EXTENDED", CAP_LIST_EXTENDED },
		{ "ENABLE", CAP_ENABLE }, { "BINARY", CAP_BINARY },
		{ "FILTER=SIEVE", CAP_FILTER_SIEVE }, { "UNSELECT", CAP_UNSELECT },
	};

	for (size_t i = 0; i < N_ELEMENTS(map); i++)
		if (strcasecmp(a, map[i].name) == 0)
			c->caps |= map[i].cap;
}

static void caps_set(struct imap_client *c, const struct imap_arg *args)
{
	c->caps = 0;
	for (const struct imap_arg *a = args; a != NULL; a = a->next)
		if (a->type == IMAP_ARG_ATOM)
			caps_from_atom(c, a->str);
}

/* ------------------------------------------------------------------ */
/* commands: building                                                  */

struct cmd_part *imap_cmd_add_part(struct imap_cmd *cmd, enum part_kind kind)
{
	cmd->parts = xreallocarray(cmd->parts, cmd->nparts + 1, sizeof(*cmd->parts));
	struct cmd_part *p = &cmd->parts[cmd->nparts++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	return p;
}

static void cmd_vtext(struct imap_cmd *cmd, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Append text to the command, to its last text part when there is one. */
static void cmd_vtext(struct imap_cmd *cmd, const char *fmt, va_list ap)
{
	struct cmd_part *p;
	char *s;

	if (cmd->nparts > 0 && cmd->parts[cmd->nparts - 1].kind == PART_TEXT &&
	    !cmd->parts[cmd->nparts - 1].secret)
		p = &cmd->parts[cmd->nparts - 1];
	else
		p = imap_cmd_add_part(cmd, PART_TEXT);
	if (vasprintf(&s, fmt, ap) < 0)
		fatalx("out of memory");
	buf_append(&p->data, s, strlen(s));
	free(s);
}

void imap_cmd_text(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_vtext(cmd, fmt, ap);
	va_end(ap);
}

void imap_cmd_literal(struct imap_cmd *cmd, const char *data, size_t len, bool secret)
{
	struct cmd_part *p = imap_cmd_add_part(cmd, PART_LITERAL);

	buf_append(&p->data, data, len);
	p->secret = secret;
}

struct imap_cmd *imap_cmd_new(struct imap_client *c)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	snprintf(cmd->tag, sizeof(cmd->tag), "t%u", ++c->tag_seq);
	imap_cmd_text(cmd, "%s ", cmd->tag);
	return cmd;
}

static void cmd_free(struct imap_cmd *cmd)
{
	for (size_t i = 0; i < cmd->nparts; i++) {
		if (cmd->parts[i].secret)
			explicit_wipe(cmd->parts[i].data.data, cmd->parts[i].data.len);
		buf_free(&cmd->parts[i].data);
	}
	free(cmd->parts);
	free(cmd);
}

void imap_cmd_enqueue(struct imap_client *c, struct imap_cmd *cmd)
{
	struct imap_cmd **pp = &c->queue;

	/* A continuation line carries its own CRLF. */
	if (cmd->nparts == 0 || cmd->parts[cmd->nparts - 1].kind != PART_CONT_LINE)
		imap_cmd_text(cmd, "\r\n");
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = cmd;
}

/* ------------------------------------------------------------------ */
/* overall bounds                                                      */

/* timeout_ms bounds each silence, but a peer that sends one byte just
   before every timeout would hold the run for hours.  On top of it:
   - the setup (TLS, greeting, STARTTLS, login) must be done timeout_ms
     after the TCP connection is up, however slowly bytes trickle in;
   - a command may always run CMD_MIN_TIMEOUTS * timeout_ms; beyond that
     only while the peer keeps up MIN_RATE bytes/s: every byte moved
     buys 1000 / MIN_RATE ms, banked at most timeout_ms ahead (a leaky
     bucket).  A 50 MB FETCH over a slow link goes on; a drip does not. */
#define CMD_MIN_TIMEOUTS 4
#define MIN_RATE 1000

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bound_cmd_start(struct imap_client *c)
{
	int64_t now = now_ms();

	c->cmd_floor = now + (int64_t)CMD_MIN_TIMEOUTS * c->opts.timeout_ms;
	c->cmd_credit = now + c->opts.timeout_ms;
}

static void bound_credit(struct imap_client *c, size_t n)
{
	int64_t cap = now_ms() + c->opts.timeout_ms;

	c->cmd_credit += (int64_t)n * 1000 / MIN_RATE;
	if (c->cmd_credit > cap)
		c->cmd_credit = cap;
}

/* How long the next read or write may wait: the silence timeout, cut
   to what the overall bound leaves.  0 once the bound has passed. */
static int io_timeout(struct imap_client *c)
{
	int64_t end = 0, left = c->opts.timeout_ms, now = now_ms();

	if (c->setup_deadline != 0)
		end = c->setup_deadline;
	else if (c->cmd_floor != 0)
		end = c->cmd_floor > c->cmd_credit ? c->cmd_floor : c->cmd_credit;
	c->bound_hit = false;
	if (end != 0 && end - now < left) {
		left = end - now;
		c->bound_hit = true;
	}
	return left > 0 ? (int)left : 0;
}

/* Why the last read or write failed, in words. */
static const char *io_error(struct imap_client *c, enum net_status st)
{
	if (st != NET_ERR_TIMEOUT || !c->bound_hit)
		return net_error(c->conn);
	if (c->setup_deadline != 0)
		snprintf(c->bound_text, sizeof(c->bound_text),
			 "%s did not complete greeting, TLS and login within %d s",
			 net_peer(c->conn), c->opts.timeout_ms / 1000);
	else
		snprintf(c->bound_text, sizeof(c->bound_text),
			 "%s is too slow: less than %d bytes/s after %d s",
			 net_peer(c->conn), MIN_RATE, CMD_MIN_TIMEOUTS * c->opts.timeout_ms / 1000);
	return c->bound_text;
}

/* Pace the remote (the task's max_bytes_per_second and
   max_messages_per_second): sleep off what was read beyond the rates,
   then move the bounds by as long.  Our own sleep is neither silence
   nor slowness of the peer: the next read gets its whole silence
   timeout, and the command bounds (setup deadline, cmd_floor,
   cmd_credit) stand where they stood before the sleep. */
static void throttle_pause(struct imap_client *c, uint64_t bytes, unsigned msgs)
{
	int64_t ns = throttle_pace(c->opts.throttle, bytes, msgs);
	int64_t ms = (ns + 999999) / 1000000;

	if (ns <= 0)
		return;
	if (c->setup_deadline != 0)
		c->setup_deadline += ms;
	if (c->cmd_floor != 0)
		c->cmd_floor += ms;
	c->cmd_credit += ms;
	c->throttled_ms += ms;
}

void imap_client_throttle_message(struct imap_client *c)
{
	if (c->opts.throttle != NULL)
		throttle_pause(c, 0, 1);
}

static ssize_t read_bounded(struct imap_client *c, void *buf, size_t len,
			    enum net_status *st_r)
{
	/* Throttled: no more at once than the byte bucket holds, so that
	   the pauses stay short and even. */
	if (c->opts.throttle != NULL && len > throttle_max_read(c->opts.throttle))
		len = throttle_max_read(c->opts.throttle);
	int ms = io_timeout(c);
	ssize_t n;

	if (c->silence_end != 0) {
		/* What a partner pump left of the silence allowed. */
		int64_t left = c->silence_end - now_ms();
		if (left < ms)
			ms = left > 1 ? (int)left : 1;
		c->silence_end = 0;
	}
	if (ms == 0) {
		*st_r = NET_ERR_TIMEOUT;
		return -1;
	}
	n = net_read(c->conn, buf, len, ms, st_r);
	if (n > 0)
		bound_credit(c, (size_t)n);
	if (n > 0 && c->trace_in != NULL)
		imap_trace_feed(c->trace_in, buf, (size_t)n);
	if (n > 0 && c->opts.throttle != NULL)
		throttle_pause(c, (uint64_t)n, 0);
	return n;
}

static void read_response(struct imap_client *c);

/* The partner to read while c's server is slow to take or to answer:
   one with answers due, and not being read already. */
static struct imap_client *pump_target(const struct imap_client *c)
{
	struct imap_client *p = c->partner;

	return p != NULL && p->ninflight > 0 && !p->failed && !p->reading ? p : NULL;
}

/* Write everything; while c's server takes no more (a big APPEND into
   a busy local Dovecot), read the partner's answers as they arrive, so
   the remote keeps sending the next batch meanwhile. */
static bool write_bounded(struct imap_client *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		struct imap_client *partner = pump_target(c);
		int ms = io_timeout(c);
		size_t done = 0;
		bool partner_ready = false;
		enum net_status st = ms <= 0 ? NET_ERR_TIMEOUT :
			net_write_watching(c->conn, p, len, ms,
					   partner != NULL ? partner->conn : NULL,
					   &done, &partner_ready);
		if (st != NET_OK) {
			imap_client_fail(c, EXIT_TEMPFAIL, "%s", io_error(c, st));
			return false;
		}
		bound_credit(c, done);
		p += done;
		len -= done;
		if (partner_ready)
			read_response(partner);
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* commands: sending                                                   */

/* May the next queued command go on the wire now?  IMAP allows many
   commands in flight, but:
   - only one command at a time may be partially sent: its literal data
     must not interleave with another command's bytes;
   - a barrier (STARTTLS, LOGIN, AUTHENTICATE) changes the connection's
     state, so it goes alone: nothing before it may still be in flight
     and nothing is sent after it until its tagged reply has arrived;
   - the depth is bounded, so a slow server cannot make us buffer
     without end (FAULTS I5). */
static bool cmd_sendable(const struct imap_client *c, const struct imap_cmd *cmd)
{
	if (c->sending != NULL)
		return false;
	if (c->ninflight >= MAX_INFLIGHT)
		return false;
	for (const struct imap_cmd *f = c->inflight; f != NULL; f = f->next)
		if (f->barrier)
			return false;
	if (cmd->barrier && c->ninflight > 0)
		return false;
	return true;
}

static bool flush_out(struct imap_client *c)
{
	if (c->out.len == 0 || c->failed)
		return !c->failed;
	bool ok = write_bounded(c, c->out.data, c->out.len);
	explicit_wipe(c->out.data, c->out.len);
	c->out.len = 0;
	return ok;
}

/* -vv: what goes out, line ends shown as \r\n (imap_trace.h); never
   credentials or message bodies. */
static void trace_out(struct imap_client *c, const struct cmd_part *p)
{
	struct buf b = { 0 };

	if (!c->opts.trace)
		return;
	if (p->secret) {
		log_debug("%s >> <credentials, not shown>", c->label);
		return;
	}
	if (p->kind == PART_BODY) {
		log_debug("%s >> <literal: %llu bytes of message data, not shown>", c->label,
			  (unsigned long long)msgbody_size(p->body));
		return;
	}
	imap_trace_escape(&b, p->data.data, p->data.len);
	if (p->kind == PART_CONT_LINE)
		buf_append(&b, "\\r\\n", 4);
	buf_append(&b, "", 1);
	log_debug("%s >> %s", c->label, (const char *)b.data);
	buf_free(&b);
}

static bool literal_nonsync(const struct imap_client *c, uint64_t len)
{
	/* RFC 7888: LITERAL+ for any size, LITERAL- up to 4096 bytes. */
	return (c->caps & CAP_LITERALPLUS) ||
	       ((c->caps & CAP_LITERALMINUS) && len <= 4096);
}

static bool send_body(struct imap_client *c, const struct msgbody *body)
{
	unsigned char chunk[IO_CHUNK];
	uint64_t off = 0, size = msgbody_size(body);

	if (!flush_out(c))
		return false;
	while (off < size) {
		ssize_t n = msgbody_read(body, off, chunk, sizeof(chunk));
		if (n <= 0) {
			imap_client_fail(c, EXIT_IOERR, "cannot read spooled message: %s",
				    n < 0 ? strerror(errno) : "short file");
			return false;
		}
		if (!write_bounded(c, chunk, (size_t)n))
			return false;
		off += (uint64_t)n;
		if (c->opts.progress != NULL)
			c->opts.progress(c->opts.progress_ctx);
	}
	return true;
}

/* Send parts of c->sending until it is all out or must wait for "+". */
static void send_parts(struct imap_client *c)
{
	struct imap_cmd *cmd = c->sending;

	while (cmd->next_part < cmd->nparts && !c->failed) {
		struct cmd_part *p = &cmd->parts[cmd->next_part];
		uint64_t len;

		switch (p->kind) {
		case PART_TEXT:
			trace_out(c, p);
			buf_append(&c->out, p->data.data, p->data.len);
			cmd->next_part++;
			continue;
		case PART_CONT_LINE:
			if (!cmd->waiting_cont) {
				cmd->waiting_cont = true;
				flush_out(c);
				return;
			}
			break;
		case PART_LITERAL:
		case PART_BODY:
			len = p->kind == PART_BODY ? msgbody_size(p->body) : p->data.len;
			if (!cmd->waiting_cont) {
				bool nonsync = literal_nonsync(c, len);
				buf_appendf(&c->out, "%s{%llu%s}\r\n", p->literal8 ? "~" : "",
					    (unsigned long long)len, nonsync ? "+" : "");
				if (c->opts.trace && !p->secret)
					log_debug("%s >> %s{%llu%s}\\r\\n", c->label,
						  p->literal8 ? "~" : "", (unsigned long long)len,
						  nonsync ? "+" : "");
				if (!nonsync) {
					cmd->waiting_cont = true;
					flush_out(c);
					return;
				}
			}
			break;
		}
		/* Here the data of a literal or continuation line goes out. */
		cmd->waiting_cont = false;
		trace_out(c, p);
		if (p->kind == PART_BODY) {
			if (!send_body(c, p->body))
				return;
		} else {
			buf_append(&c->out, p->data.data, p->data.len);
			if (p->kind == PART_CONT_LINE)
				buf_append(&c->out, "\r\n", 2);
		}
		cmd->next_part++;
	}
	cmd->sent_all = true;
	c->sending = NULL;
}

static void pump_send(struct imap_client *c)
{
	if (c->sending != NULL && !c->sending->waiting_cont)
		send_parts(c);
	while (c->queue != NULL && !c->failed && cmd_sendable(c, c->queue)) {
		struct imap_cmd *cmd = c->queue, **pp = &c->inflight;

		c->queue = cmd->next;
		cmd->next = NULL;
		while (*pp != NULL)
			pp = &(*pp)->next;
		*pp = cmd;
		c->ninflight++;
		cmd->started = true;
		c->sending = cmd;
		send_parts(c);
	}
	flush_out(c);
}

/* ------------------------------------------------------------------ */
/* responses                                                           */

static void take_result(struct imap_result *r, const struct imap_response *resp)
{
	r->status = resp->status;
	snprintf(r->code, sizeof(r->code), "%s", resp->code ? resp->code : "");
	/* Redacted before it is cut: a cut secret is no longer a match, and
	   servers do echo what they were sent. */
	log_redact(r->text, sizeof(r->text), resp->text ? resp->text : "");
	if (resp->code != NULL && strcmp(resp->code, "APPENDUID") == 0) {
		const struct imap_arg *a = resp->code_args;
		uint64_t v;
		if (a != NULL && imap_arg_get_number(a, &v) && v <= UINT32_MAX &&
		    a->next != NULL && a->next->type == IMAP_ARG_ATOM) {
			r->appenduid_validity = (uint32_t)v;
			snprintf(r->appenduid_set, sizeof(r->appenduid_set), "%s", a->next->str);
		}
	}
	classify(r);
}

static void handle_tagged(struct imap_client *c, const struct imap_response *resp)
{
	struct imap_cmd **pp = &c->inflight;

	while (*pp != NULL && strcmp((*pp)->tag, resp->tag) != 0)
		pp = &(*pp)->next;
	if (*pp == NULL) {
		imap_client_fail(c, EXIT_PROTOCOL, "unexpected tag in server response");
		return;
	}
	struct imap_cmd *cmd = *pp;
	if (cmd == c->sending) {
		/* The server refused before taking all literal data
		   (e.g. NO [TOOBIG] instead of "+"). */
		c->sending = NULL;
	}
	*pp = cmd->next;
	cmd->next = NULL;
	c->ninflight--;
	take_result(&cmd->res, resp);
	if (resp->code != NULL && strcmp(resp->code, "CAPABILITY") == 0)
		caps_set(c, resp->code_args);
	cmd->done = true;
}

static void update_mailbox_state(struct imap_client *c, const struct imap_response *resp)
{
	uint64_t v;

	if (resp->has_number && resp->name != NULL && strcmp(resp->name, "EXISTS") == 0) {
		if (c->selected && resp->number > c->box.exists)
			c->box_grew = true;   /* new mail: UIDs past UIDNEXT are fine */
		c->box.exists = resp->number;
		return;
	}
	if (resp->status != IMAP_STATUS_OK || resp->code == NULL)
		return;
	const struct imap_arg *a = resp->code_args;
	if (strcmp(resp->code, "UIDVALIDITY") == 0 && imap_arg_get_number(a, &v))
		c->box.uidvalidity = (uint32_t)v;
	else if (strcmp(resp->code, "UIDNEXT") == 0 && imap_arg_get_number(a, &v))
		c->box.uidnext = (uint32_t)v;
	else if (strcmp(resp->code, "HIGHESTMODSEQ") == 0 && imap_arg_get_number(a, &v))
		c->box.highestmodseq = v;
	else if (strcmp(resp->code, "PERMANENTFLAGS") == 0 && a != NULL &&
		 a->type == IMAP_ARG_LIST) {
		c->box.permflags_keywords = false;
		for (const struct imap_arg *f = a->list; f != NULL; f = f->next)
			if (imap_arg_is_atom(f, "\\*"))
				c->box.permflags_keywords = true;
	} else if (strcmp(resp->code, "CAPABILITY") == 0)
		caps_set(c, a);
}

static void bye_backoff(struct imap_client *c, const struct imap_response *resp);

static void handle_untagged(struct imap_client *c, const struct imap_response *resp)
{
	if (resp->status == IMAP_STATUS_BYE) {
		/* Remember why; the EOF that follows is the real failure. */
		c->bye = true;
		log_redact(c->bye_text, sizeof(c->bye_text), resp->text);
		bye_backoff(c, resp);
		return;
	}
	if (resp->name != NULL && strcmp(resp->name, "CAPABILITY") == 0) {
		caps_set(c, resp->args);
		return;
	}
	update_mailbox_state(c, resp);
	for (struct imap_cmd *cmd = c->inflight; cmd != NULL; cmd = cmd->next)
		if (cmd->untagged != NULL && cmd->untagged(c, cmd, resp))
			return;
	if (c->opts.trace)
		log_debug("%s: ignored untagged %s", c->label, resp->name ? resp->name : "?");
}

static void handle_continuation(struct imap_client *c)
{
	if (c->sending == NULL || !c->sending->waiting_cont) {
		imap_client_fail(c, EXIT_PROTOCOL, "unexpected command continuation request");
		return;
	}
	send_parts(c);
	flush_out(c);
}

static void drop_streamed(struct imap_client *c)
{
	for (size_t i = 0; i < c->nstreamed; i++)
		msgbody_free(&c->streamed[i]);
	c->nstreamed = 0;
}

/* Stream a large literal out of the input into a msgbody. */
static void stream_literal(struct imap_client *c, uint64_t size)
{
	struct msgbody *body = msgbody_new(c->opts.spool_dir);
	unsigned char chunk[IO_CHUNK];
	bool write_ok = true;

	msgbody_expect(body, size);
	while (size > 0 && !c->failed) {
		const unsigned char *src;
		size_t n;

		if (c->in_pos < c->in.len) {
			src = c->in.data + c->in_pos;
			n = c->in.len - c->in_pos;
			if (n > size)
				n = (size_t)size;
			c->in_pos += n;
		} else {
			enum net_status st;
			size_t want = size < sizeof(chunk) ? (size_t)size : sizeof(chunk);
			ssize_t r = read_bounded(c, chunk, want, &st);
			if (r < 0) {
				imap_client_fail(c, EXIT_TEMPFAIL, "unexpected end of data in a literal: %s",
					    io_error(c, st));
				break;
			}
			src = chunk;
			n = (size_t)r;
		}
		if (write_ok && !msgbody_write(body, src, n)) {
			write_ok = false;
			imap_client_fail(c, errno == ENOSPC ? EXIT_CANTCREAT : EXIT_IOERR,
				    "cannot spool a message: %s", strerror(errno));
		}
		size -= n;
	}
	if (c->failed || c->nstreamed >= MAX_STREAMED)
		msgbody_free(&body);
	else
		c->streamed[c->nstreamed++] = body;
	imap_parser_literal_done(c->parser);
}

static void compact_input(struct imap_client *c)
{
	if (c->in_pos == 0)
		return;
	buf_consume(&c->in, c->in_pos);
	c->in_pos = 0;
}

/* Hand the buffered input to the parser, up to its next event. */
static enum imap_parse_result feed_buffered(struct imap_client *c)
{
	enum imap_parse_result r = IMAP_PARSE_NEED_MORE;
	size_t used = 0;

	if (c->in_pos < c->in.len) {
		r = imap_parser_feed(c->parser, c->in.data + c->in_pos,
				     c->in.len - c->in_pos, &used);
		c->in_pos += used;
	}
	return r;
}

/* Append what the peer sends next to the input buffer. */
static ssize_t fill_input(struct imap_client *c, enum net_status *st_r)
{
	ssize_t n;

	compact_input(c);
	buf_reserve(&c->in, IO_CHUNK);
	n = read_bounded(c, c->in.data + c->in.len, IO_CHUNK, st_r);
	if (n > 0)
		c->in.len += (size_t)n;
	return n;
}

void imap_client_set_partner(struct imap_client *c, struct imap_client *partner)
{
	c->partner = partner;
}

/* c has no whole response buffered and is about to wait for its server:
   meanwhile, handle the partner's answers as they arrive.  The silence
   allowed to c's server is counted from here, however long the partner
   keeps us busy (read_bounded takes it over). */
static void pump_partner(struct imap_client *c)
{
	struct imap_client *p;
	int64_t end = now_ms() + c->opts.timeout_ms;

	while ((p = pump_target(c)) != NULL) {
		int64_t left = end - now_ms();
		int ms = io_timeout(c);
		if (left < ms) {
			ms = left > 0 ? (int)left : 0;
			c->bound_hit = false;
		}
		int which = net_wait_either(c->conn, p->conn, ms);
		if (which == 2) {
			read_response(p);
			continue;
		}
		if (which == 0 && c->bound_hit)
			imap_client_fail(c, EXIT_TEMPFAIL, "%s", io_error(c, NET_ERR_TIMEOUT));
		else if (which == 0)
			imap_client_fail(c, EXIT_TEMPFAIL, "%s sent nothing for %d s",
					 net_peer(c->conn), c->opts.timeout_ms / 1000);
		break;   /* c's own answer is there, or a signal came */
	}
	c->silence_end = end;
}

/* Read and handle exactly one response (or fail). */
static void read_one(struct imap_client *c)
{
	for (;;) {
		enum imap_parse_result r = feed_buffered(c);

		switch (r) {
		case IMAP_PARSE_RESPONSE: {
			const struct imap_response *resp = imap_parser_response(c->parser);
			if (resp->type == IMAP_RESP_TAGGED)
				handle_tagged(c, resp);
			else if (resp->type == IMAP_RESP_UNTAGGED)
				handle_untagged(c, resp);
			else
				handle_continuation(c);
			drop_streamed(c);
			return;
		}
		case IMAP_PARSE_LITERAL:
			stream_literal(c, imap_parser_literal_size(c->parser));
			if (c->failed)
				return;
			continue;
		case IMAP_PARSE_ERROR:
			imap_client_fail(c, EXIT_PROTOCOL, "malformed response from server: %s",
				    imap_parser_error_string(c->parser));
			return;
		case IMAP_PARSE_NEED_MORE:
			break;
		}
		enum net_status st;
		if (c->partner != NULL)
			pump_partner(c);
		if (c->failed)
			return;
		if (fill_input(c, &st) < 0) {
			if (c->bye)
				imap_client_fail(c, EXIT_TEMPFAIL, "server closed the connection: %s",
					    c->bye_text);
			else
				imap_client_fail(c, EXIT_TEMPFAIL, "%s", io_error(c, st));
			return;
		}
	}
}

static void read_response(struct imap_client *c)
{
	c->reading = true;
	read_one(c);
	c->reading = false;
}

int imap_client_side_fd(void *client, bool *ready_r)
{
	struct imap_client *c = client;

	*ready_r = false;
	if (c->failed || c->reading || c->ninflight == 0)
		return -1;
	*ready_r = c->in_pos < c->in.len || net_pending(c->conn);
	return net_fd(c->conn);
}

void imap_client_side_read(void *client)
{
	struct imap_client *c = client;

	if (!c->failed && !c->reading && c->ninflight > 0)
		read_response(c);
}

void imap_client_flush(struct imap_client *c)
{
	if (!c->failed)
		pump_send(c);
}

/* Run the connection until cmd has its tagged reply (or the connection
   died); the result is in cmd->res.  Returns the exit class: 0 for OK. */
int imap_cmd_wait(struct imap_client *c, struct imap_cmd *cmd)
{
	if (!c->in_setup)
		c->setup_deadline = 0;   /* connected but never logged in */
	bound_cmd_start(c);
	while (!cmd->done && !c->failed) {
		pump_send(c);
		if (cmd->done || c->failed)
			break;
		read_response(c);
	}
	c->cmd_floor = 0;
	if (!cmd->done) {
		imap_client_dead_result(c, &cmd->res);
		return c->failed;
	}
	return cmd->res.exit_class == EXIT_OK && cmd->res.status == IMAP_STATUS_OK
		? 0 : (cmd->res.exit_class ? cmd->res.exit_class : EXIT_TEMPFAIL);
}

int imap_cmd_run(struct imap_client *c, struct imap_cmd *cmd, struct imap_result *res)
{
	int rc;

	imap_cmd_enqueue(c, cmd);
	rc = imap_cmd_wait(c, cmd);
	if (res != NULL)
		*res = cmd->res;
	imap_cmds_release(c, &cmd, 1);
	return rc;
}

int imap_cmds_wait(struct imap_client *c, struct imap_cmd *const *cmds, size_t n,
		   struct imap_result *res)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		int r = imap_cmd_wait(c, cmds[i]);
		if (rc == 0 && res != NULL)
			*res = cmds[i]->res;
		if (rc == 0)
			rc = r;
	}
	return rc;
}

void imap_cmds_release(struct imap_client *c, struct imap_cmd **cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* Unhook the caller's context: a command in flight on a dead
		   connection outlives the call that made it. */
		cmds[i]->untagged = NULL;
		if (!cmds[i]->done && cmds[i]->started)
			continue;
		struct imap_cmd **pp = &c->queue;
		while (*pp != NULL && *pp != cmds[i])
			pp = &(*pp)->next;
		if (*pp == cmds[i])
			*pp = cmds[i]->next;
		cmd_free(cmds[i]);
	}
}

/* ------------------------------------------------------------------ */
/* connection setup                                                    */

/* A plain-text greeting is due (security = starttls or none), and the
   port might speak TLS at once (993): such a server waits for our
   ClientHello and says nothing.  After GREETING_PROBE_MS of silence a
   ClientHello on a second connection tells, within seconds instead of
   at the greeting deadline.  A slow plain-text server only sees one
   short-lived extra connection. */
#define GREETING_PROBE_MS 2000
#define GREETING_PROBE_MAX_MS 5000

static int greeting_probe(struct imap_client *c, char *err, size_t errlen)
{
	int ms = io_timeout(c);

	if (ms <= GREETING_PROBE_MS || c->in_pos < c->in.len)
		return 0;
	if (net_wait_readable(c->conn, GREETING_PROBE_MS) != NET_ERR_TIMEOUT)
		return 0;       /* data (or an error the read will report) */
	ms = io_timeout(c);
	log_debug("%s: no greeting from %s in %d s: does it speak TLS at once?", c->label,
		  net_peer(c->conn), GREETING_PROBE_MS / 1000);
	if (!net_probe_tls(c->opts.host, c->opts.port,
			   ms < GREETING_PROBE_MAX_MS ? ms : GREETING_PROBE_MAX_MS, c->conn)) {
		log_debug("%s: %s does not answer a TLS handshake either", c->label,
			  net_peer(c->conn));
		return 0;
	}
	snprintf(err, errlen, "%s: %s sent no greeting in %d s but answers a TLS handshake; %s",
		 c->label, net_peer(c->conn), GREETING_PROBE_MS / 1000, CONN_HINT_SPEAKS_TLS);
	return EXIT_PROTOCOL;
}

/* The first bytes of a plain-text connection: a TLS record (an alert
   answering what the server took for a broken ClientHello) instead of
   "* OK". */
static bool greeting_is_tls(struct imap_client *c, char *err, size_t errlen)
{
	const unsigned char *p = c->in.data + c->in_pos;
	size_t n = c->in.len - c->in_pos;
	char show[4 * 5 + 1];

	if (net_is_tls(c->conn) || !conn_hint_tls_record(p, n))
		return false;
	conn_hint_show(p, n < 5 ? n : 5, show, sizeof(show));
	snprintf(err, errlen, "%s: %s answered with a TLS record (%s) instead of an IMAP "
		 "greeting; %s", c->label, net_peer(c->conn), show, CONN_HINT_SPEAKS_TLS);
	return true;
}

static int read_greeting(struct imap_client *c, char *err, size_t errlen)
{
	int rc;

	if (!net_is_tls(c->conn) && (rc = greeting_probe(c, err, errlen)) != 0)
		return rc;
	bool first = !net_is_tls(c->conn);     /* no byte of it parsed yet */
	for (;;) {
		enum imap_parse_result r = IMAP_PARSE_NEED_MORE;
		size_t n = c->in.len - c->in_pos;

		if (first && greeting_is_tls(c, err, errlen))
			return EXIT_PROTOCOL;
		/* One byte that may start a TLS record: wait for the second. */
		if (!first || n > 1 || (n == 1 && (c->in.data[c->in_pos] < 20 ||
						   c->in.data[c->in_pos] > 23))) {
			r = feed_buffered(c);
			first = false;
		}

		if (r == IMAP_PARSE_RESPONSE) {
			const struct imap_response *g = imap_parser_response(c->parser);
			if (g->type != IMAP_RESP_UNTAGGED || g->status == IMAP_STATUS_NONE ||
			    g->status == IMAP_STATUS_NO || g->status == IMAP_STATUS_BAD) {
				snprintf(err, errlen, "%s: %s sent no IMAP greeting",
					 c->label, net_peer(c->conn));
				return EXIT_PROTOCOL;
			}
			if (g->status == IMAP_STATUS_BYE &&
			    is_throttled(g->code != NULL ? g->code : "", g->text)) {
				/* Too many connections or requests: later. */
				snprintf(err, errlen, "%s: %s refused the connection, the server "
					 "asked us to back off: %s", c->label, net_peer(c->conn),
					 g->text);
				return EXIT_TEMPFAIL;
			}
			if (g->status == IMAP_STATUS_BYE) {
				snprintf(err, errlen, "%s: %s refused the connection: %s",
					 c->label, net_peer(c->conn), g->text);
				return EXIT_UNAVAILABLE;
			}
			if (g->status == IMAP_STATUS_PREAUTH &&
			    c->opts.security == SECURITY_STARTTLS) {
				/* PREAUTH means no STARTTLS can follow: the
				   session would stay in plain text. */
				snprintf(err, errlen, "%s: %s greeted with PREAUTH but TLS is required",
					 c->label, net_peer(c->conn));
				return EXIT_PROTOCOL;
			}
			if (g->code != NULL && strcmp(g->code, "CAPABILITY") == 0)
				caps_set(c, g->code_args);
			return 0;
		}
		if (r == IMAP_PARSE_ERROR || r == IMAP_PARSE_LITERAL) {
			snprintf(err, errlen, "%s: malformed greeting from %s", c->label,
				 net_peer(c->conn));
			return EXIT_PROTOCOL;
		}
		enum net_status st;
		if (fill_input(c, &st) < 0) {
			snprintf(err, errlen, "%s: no greeting from %s: %s", c->label,
				 net_peer(c->conn), io_error(c, st));
			return st == NET_ERR_TIMEOUT ? EXIT_UNAVAILABLE : EXIT_TEMPFAIL;
		}
	}
}

int imap_client_query_caps(struct imap_client *c, char *err, size_t errlen)
{
	struct imap_result res;
	int rc = imap_simple(c, &res, "CAPABILITY");

	if (rc != 0)
		snprintf(err, errlen, "%s: CAPABILITY failed: %s", c->label, res.text);
	return rc;
}

static int start_tls(struct imap_client *c, char *err, size_t errlen)
{
	struct net_tls_opts tls = { .ca_file = c->opts.ca_file, .verify = c->opts.tls_verify };
	enum net_status st;
	int ms = io_timeout(c);

	if (!tls.verify)
		log_msg(LOGL_WARNING, "%s: TLS certificate verification is turned off (tls_verify = no)",
			c->label);
	st = ms > 0 ? net_start_tls(c->conn, &tls, ms, err, errlen) : NET_ERR_TIMEOUT;
	if (st == NET_OK)
		return 0;
	if (st == NET_ERR_TIMEOUT && c->bound_hit)
		snprintf(err, errlen, "%s", io_error(c, st));
	/* A refused certificate or a TLS protocol error is the peer's
	   violation (76); a connection reset, closed or silent in the
	   middle of the handshake is a lost connection (75). */
	return st == NET_ERR_TLS ? EXIT_PROTOCOL : EXIT_TEMPFAIL;
}

static int do_starttls(struct imap_client *c, char *err, size_t errlen)
{
	struct imap_result res;
	char sub[256];
	int rc;

	if (!(c->caps & CAP_STARTTLS)) {
		snprintf(err, errlen, "%s: server does not offer STARTTLS but TLS is required",
			 c->label);
		return EXIT_PROTOCOL;
	}
	struct imap_cmd *cmd = imap_cmd_new(c);
	imap_cmd_text(cmd, "STARTTLS");
	cmd->barrier = true;
	rc = imap_cmd_run(c, cmd, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s: STARTTLS refused: %s", c->label, res.text);
		return c->failed ? c->failed : EXIT_PROTOCOL;
	}
	/* Anything already buffered was sent in plain text after the OK:
	   it could be injected by a man in the middle (CVE-2011-0411). */
	if (c->in_pos < c->in.len) {
		snprintf(err, errlen, "%s: server sent plain-text data after STARTTLS", c->label);
		return EXIT_PROTOCOL;
	}
	rc = start_tls(c, sub, sizeof(sub));
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", c->label, sub);
		return rc;
	}
	/* Capabilities learnt before TLS cannot be trusted. */
	c->caps = 0;
	return imap_client_query_caps(c, err, errlen);
}

static int connect_setup(struct imap_client *c, char *err, size_t errlen)
{
	const struct imap_client_opts *opts = &c->opts;
	char sub[400];
	int rc;

	enum net_status st = net_connect(opts->host, opts->port, opts->timeout_ms,
					 &c->conn, sub, sizeof(sub));
	if (st != NET_OK) {
		snprintf(err, errlen, "%s: %s", c->label, sub);
		return EXIT_UNAVAILABLE;
	}
	/* From here to the end of imap_login, one deadline (io_timeout). */
	c->setup_deadline = now_ms() + opts->timeout_ms;
	if (opts->security == SECURITY_TLS) {
		rc = start_tls(c, sub, sizeof(sub));
		if (rc != 0) {
			snprintf(err, errlen, "%s: %s", c->label, sub);
			return rc;
		}
	}
	rc = read_greeting(c, err, errlen);
	if (rc != 0)
		return rc;
	if (c->caps == 0 && (rc = imap_client_query_caps(c, err, errlen)) != 0)
		return rc;
	if (opts->security == SECURITY_STARTTLS && (rc = do_starttls(c, err, errlen)) != 0)
		return rc;
	return 0;
}

int imap_client_connect(const struct imap_client_opts *opts,
			struct imap_client **client_r, char *err, size_t errlen)
{
	struct imap_parser_limits limits = IMAP_PARSER_DEFAULT_LIMITS;
	struct imap_client *c = xcalloc(1, sizeof(*c));
	int rc;

	c->opts = *opts;
	snprintf(c->label, sizeof(c->label), "%s", opts->label);
	c->parser = imap_parser_new(&limits);
	if (opts->trace) {
		c->trace_in = xcalloc(1, sizeof(*c->trace_in));
		imap_trace_init(c->trace_in, c->label, "<<");
	}
	*client_r = c;
	c->in_setup = true;
	rc = connect_setup(c, err, errlen);
	c->in_setup = false;
	if (rc != 0 && !c->failed) {
		/* Half set up is unusable: no LOGOUT to a peer that may still
		   be dripping its greeting. */
		c->failed = rc;
		snprintf(c->fail_text, sizeof(c->fail_text), "%s", err);
	}
	return rc;
}

void imap_client_setup_begin(struct imap_client *c)
{
	/* The deadline set at connect covers the login too. */
	if (c->setup_deadline == 0)
		c->setup_deadline = now_ms() + c->opts.timeout_ms;
	c->in_setup = true;
}

void imap_client_setup_end(struct imap_client *c)
{
	c->in_setup = false;
	c->setup_deadline = 0;
}

void imap_client_keep_secret(struct imap_client *c, size_t slot, char *s)
{
	if (c->secrets[slot] != NULL) {
		log_forget_secret(c->secrets[slot]);
		explicit_wipe(c->secrets[slot], strlen(c->secrets[slot]));
		free(c->secrets[slot]);
	}
	c->secrets[slot] = s;
	if (s != NULL)
		log_register_secret(s);
}

void imap_client_free(struct imap_client **cp)
{
	struct imap_client *c = *cp;

	if (c == NULL)
		return;
	while (c->queue != NULL) {
		struct imap_cmd *n = c->queue->next;
		cmd_free(c->queue);
		c->queue = n;
	}
	while (c->inflight != NULL) {
		struct imap_cmd *n = c->inflight->next;
		cmd_free(c->inflight);
		c->inflight = n;
	}
	drop_streamed(c);
	for (size_t i = 0; i < N_ELEMENTS(c->secrets); i++)
		imap_client_keep_secret(c, i, NULL);
	net_close(&c->conn);
	if (c->trace_in != NULL) {
		imap_trace_flush(c->trace_in);
		imap_trace_free(c->trace_in);
		free(c->trace_in);
	}
	imap_parser_free(&c->parser);
	buf_free(&c->in);
	explicit_wipe(c->out.data, c->out.cap);
	buf_free(&c->out);
	free(c);
	*cp = NULL;
}

void imap_client_logout(struct imap_client **cp)
{
	struct imap_client *c = *cp;

	if (c != NULL && c->conn != NULL && !c->failed && c->inflight == NULL) {
		c->opts.timeout_ms = c->opts.timeout_ms > 10000 ? 10000 : c->opts.timeout_ms;
		(void)imap_simple(c, NULL, "LOGOUT");
	}
	imap_client_free(cp);
}

/* ------------------------------------------------------------------ */
/* a command with no untagged data of its own                          */

int imap_simple(struct imap_client *c, struct imap_result *res, const char *fmt, ...)
{
	struct imap_cmd *cmd = imap_cmd_new(c);
	va_list ap;

	va_start(ap, fmt);
	cmd_vtext(cmd, fmt, ap);
	va_end(ap);
	return imap_cmd_run(c, cmd, res);
}

/* ------------------------------------------------------------------ */
/* backing off when the server throttles us                            */

/* Without a suggestion from the server: 1 s, doubling, each wait at
   most BACKOFF_MAX_WAIT_MS; a command's waits together at most
   opts.timeout_ms (the silence we allow a server; 120 s by default).
   One warning per BACKOFF_WARN_MS, not one per retry. */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_WAIT_MS 30000
#define BACKOFF_WARN_MS 600000

static void backoff_give_up(struct imap_result *res, const char *what, int64_t spent,
			    const char *why)
{
	char text[sizeof(res->text)];

	snprintf(text, sizeof(text), "the server throttled us (%s; %s, after %lld s of "
		 "backing off): %s%s%s%s", what, why, (long long)(spent / 1000),
		 res->code[0] ? "[" : "", res->code, res->code[0] ? "] " : "", res->text);
	memcpy(res->text, text, sizeof(res->text));
	res->scope = IMAP_SCOPE_CONNECTION;
	res->exit_class = EXIT_TEMPFAIL;
}

bool imap_backoff_retry(struct imap_client *c, struct imap_backoff *bo, const char *what,
			struct imap_result *res)
{
	int64_t now = now_ms(), total = c->opts.timeout_ms, suggested, spent, wait;

	if (!c->opts.backoff || c->failed || c->conn == NULL ||
	    (res->status != IMAP_STATUS_NO && res->status != IMAP_STATUS_BAD) ||
	    !is_throttled(res->code, res->text))
		return false;
	if (bo->start == 0) {
		bo->start = now;
		bo->next_wait = BACKOFF_FIRST_MS;
	}
	spent = now - bo->start;
	suggested = res->code[0] == '\0' || strcmp(res->code, "THROTTLED") == 0
		? suggested_backoff_ms(res->text) : -1;
	if (suggested >= 0) {
		wait = suggested;
		if (spent + wait > total) {
			char why[120];
			snprintf(why, sizeof(why), "it asks for %lld ms more, beyond the %lld s "
				 "a command may wait", (long long)wait, (long long)(total / 1000));
			backoff_give_up(res, what, spent, why);
			log_msg(LOGL_WARNING, "%s: %s", c->label, res->text);
			return false;
		}
	} else {
		wait = bo->next_wait < total - spent ? bo->next_wait : total - spent;
		if (wait < BACKOFF_FIRST_MS) {
			backoff_give_up(res, what, spent, "giving up; the next run resumes");
			log_msg(LOGL_WARNING, "%s: %s", c->label, res->text);
			return false;
		}
		bo->next_wait = bo->next_wait * 2 > BACKOFF_MAX_WAIT_MS
			? BACKOFF_MAX_WAIT_MS : bo->next_wait * 2;
	}
	if (bo->retries == 0 &&
	    (c->backoff_warned == 0 || now - c->backoff_warned >= BACKOFF_WARN_MS)) {
		c->backoff_warned = now;
		log_msg(LOGL_WARNING, "%s: server throttles us (%s: %s%s%s%s); backing off "
			"%lld ms%s, at most %lld s", c->label, what, res->code[0] ? "[" : "",
			res->code, res->code[0] ? "] " : "", res->text, (long long)wait,
			suggested >= 0 ? " as it suggests" : "", (long long)(total / 1000));
	} else {
		log_debug("%s: %s still throttled (retry %u): backing off %lld ms", c->label,
			  what, bo->retries + 1, (long long)wait);
	}
	bo->retries++;
	/* Wait on the connection: a BYE or a signal cuts it short. */
	if (wait > 0 && net_wait_readable(c->conn, wait > INT32_MAX ? INT32_MAX : (int)wait)
	    == NET_ERR_INTERRUPTED)
		return false;
	return true;
}

/* A BYE asking us to back off: say so, in the log and in the reason the
   connection died (75: the next run resumes). */
static void bye_backoff(struct imap_client *c, const struct imap_response *resp)
{
	char text[sizeof(c->bye_text)];

	if (!is_throttled(resp->code != NULL ? resp->code : "", c->bye_text))
		return;
	snprintf(text, sizeof(text), "the server asked us to back off: %s%s%s%s",
		 resp->code != NULL ? "[" : "", resp->code != NULL ? resp->code : "",
		 resp->code != NULL ? "] " : "", c->bye_text);
	memcpy(c->bye_text, text, sizeof(c->bye_text));
	log_msg(LOGL_WARNING, "%s: %s; the next run resumes", c->label, c->bye_text);
}
