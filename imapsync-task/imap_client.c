/* imap_client.c - the IMAP command layer.
 *
 * One connection, one parser, one queue.  Commands are built as a list of
 * parts (text, literals, continuation lines) and sent when cmd_sendable()
 * allows; responses are read incrementally and dispatched: tagged ones to
 * their command, untagged ones first to the client's own state
 * (capabilities, mailbox counters) and then to the oldest in-flight
 * command that claims them.  Large literals (message bodies) never pass
 * through the parser's buffers: they are streamed into a msgbody.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "imap_client.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define MAX_INFLIGHT 64
#define MAX_STREAMED 4
#define IO_CHUNK 65536

enum part_kind {
	PART_TEXT,          /* bytes sent as they are */
	PART_LITERAL,       /* a literal from memory (credentials, names) */
	PART_BODY,          /* a literal streamed from a msgbody */
	PART_CONT_LINE,     /* sent only after a "+" (SASL without SASL-IR) */
};

struct cmd_part {
	enum part_kind kind;
	struct buf data;            /* TEXT, LITERAL, CONT_LINE */
	const struct msgbody *body; /* BODY: not owned */
	bool literal8;
	bool secret;                /* never traced */
};

struct imap_cmd;
typedef bool untagged_fn(struct imap_client *c, struct imap_cmd *cmd,
			 const struct imap_response *resp);

struct imap_cmd {
	struct imap_cmd *next;
	char tag[16];
	struct cmd_part *parts;
	size_t nparts, next_part;
	bool barrier;       /* nothing else may be in flight with it */
	bool started, waiting_cont, sent_all, done;
	struct imap_result res;
	untagged_fn *untagged;
	void *ctx;
};

struct imap_client {
	struct imap_client_opts opts;
	char label[32];
	struct net_conn *conn;
	struct imap_parser *parser;
	struct buf in;
	size_t in_pos;
	struct buf out;
	uint32_t caps;
	unsigned tag_seq;
	struct imap_cmd *queue;      /* not started yet, in order */
	struct imap_cmd *inflight;   /* started, in order */
	struct imap_cmd *sending;    /* the one whose parts are not all out */
	size_t ninflight;
	struct msgbody *streamed[MAX_STREAMED];
	size_t nstreamed;
	struct imap_mailbox box;     /* from the last SELECT/EXAMINE */
	bool selected;               /* box is a selected mailbox */
	bool box_grew;               /* EXISTS went up since the SELECT */
	/* Overall bounds on top of the silence timeout (see io_timeout). */
	bool in_setup;               /* inside imap_client_connect/imap_login */
	int64_t setup_deadline;      /* connect to login done; 0: none */
	int64_t cmd_floor;           /* a command may always run until here */
	int64_t cmd_credit;          /* ...and longer while data keeps moving */
	bool bound_hit;              /* the last wait was cut by a bound */
	char bound_text[200];
	char *secrets[2];            /* login data as sent, registered with log.c */
	bool bye;
	char bye_text[200];
	int failed;                  /* exit class once the connection is dead */
	char fail_text[400];
};

/* ------------------------------------------------------------------ */
/* failure and classification                                          */

static void client_fail(struct imap_client *c, int exit_class, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void client_fail(struct imap_client *c, int exit_class, const char *fmt, ...)
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

/* RFC 5530 codes, by what they break.  Human text is never matched. */
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

static struct cmd_part *cmd_add_part(struct imap_cmd *cmd, enum part_kind kind)
{
	cmd->parts = xreallocarray(cmd->parts, cmd->nparts + 1, sizeof(*cmd->parts));
	struct cmd_part *p = &cmd->parts[cmd->nparts++];
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	return p;
}

static void cmd_text(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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
		p = cmd_add_part(cmd, PART_TEXT);
	if (vasprintf(&s, fmt, ap) < 0)
		fatalx("out of memory");
	buf_append(&p->data, s, strlen(s));
	free(s);
}

static void cmd_text(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_vtext(cmd, fmt, ap);
	va_end(ap);
}

static void cmd_literal(struct imap_cmd *cmd, const char *data, size_t len, bool secret)
{
	struct cmd_part *p = cmd_add_part(cmd, PART_LITERAL);

	buf_append(&p->data, data, len);
	p->secret = secret;
}

static struct imap_cmd *cmd_new(struct imap_client *c)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	snprintf(cmd->tag, sizeof(cmd->tag), "t%u", ++c->tag_seq);
	cmd_text(cmd, "%s ", cmd->tag);
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

static void cmd_enqueue(struct imap_client *c, struct imap_cmd *cmd)
{
	struct imap_cmd **pp = &c->queue;

	/* A continuation line carries its own CRLF. */
	if (cmd->nparts == 0 || cmd->parts[cmd->nparts - 1].kind != PART_CONT_LINE)
		cmd_text(cmd, "\r\n");
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

static ssize_t read_bounded(struct imap_client *c, void *buf, size_t len,
			    enum net_status *st_r)
{
	int ms = io_timeout(c);
	ssize_t n;

	if (ms == 0) {
		*st_r = NET_ERR_TIMEOUT;
		return -1;
	}
	n = net_read(c->conn, buf, len, ms, st_r);
	if (n > 0)
		bound_credit(c, (size_t)n);
	return n;
}

static bool write_bounded(struct imap_client *c, const void *buf, size_t len)
{
	int ms = io_timeout(c);
	enum net_status st = ms > 0 ? net_write(c->conn, buf, len, ms) : NET_ERR_TIMEOUT;

	if (st != NET_OK) {
		client_fail(c, EXIT_TEMPFAIL, "%s", io_error(c, st));
		return false;
	}
	bound_credit(c, len);
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

static void trace_out(struct imap_client *c, const struct cmd_part *p)
{
	if (!c->opts.trace)
		return;
	if (p->secret)
		log_debug("%s >> <credentials>", c->label);
	else if (p->kind == PART_TEXT || p->kind == PART_CONT_LINE)
		log_debug("%s >> %.*s", c->label, (int)p->data.len, (const char *)p->data.data);
	else
		log_debug("%s >> <literal %zu bytes>", c->label, p->data.len);
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
			client_fail(c, EXIT_IOERR, "cannot read spooled message: %s",
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
		client_fail(c, EXIT_PROTOCOL, "unexpected tag in server response");
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

static void handle_untagged(struct imap_client *c, const struct imap_response *resp)
{
	if (resp->status == IMAP_STATUS_BYE) {
		/* Remember why; the EOF that follows is the real failure. */
		c->bye = true;
		log_redact(c->bye_text, sizeof(c->bye_text), resp->text);
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
		client_fail(c, EXIT_PROTOCOL, "unexpected command continuation request");
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
				client_fail(c, EXIT_TEMPFAIL, "unexpected end of data in a literal: %s",
					    io_error(c, st));
				break;
			}
			src = chunk;
			n = (size_t)r;
		}
		if (write_ok && !msgbody_write(body, src, n)) {
			write_ok = false;
			client_fail(c, errno == ENOSPC ? EXIT_CANTCREAT : EXIT_IOERR,
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

/* Read and handle exactly one response (or fail). */
static void read_response(struct imap_client *c)
{
	for (;;) {
		enum imap_parse_result r = feed_buffered(c);

		switch (r) {
		case IMAP_PARSE_RESPONSE: {
			const struct imap_response *resp = imap_parser_response(c->parser);
			if (c->opts.trace)
				log_debug("%s << %s %s %s", c->label,
					  resp->type == IMAP_RESP_TAGGED ? resp->tag :
					  resp->type == IMAP_RESP_UNTAGGED ? "*" : "+",
					  resp->name ? resp->name : "", resp->text ? resp->text : "");
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
			client_fail(c, EXIT_PROTOCOL, "malformed response from server: %s",
				    imap_parser_error_string(c->parser));
			return;
		case IMAP_PARSE_NEED_MORE:
			break;
		}
		enum net_status st;
		if (fill_input(c, &st) < 0) {
			if (c->bye)
				client_fail(c, EXIT_TEMPFAIL, "server closed the connection: %s",
					    c->bye_text);
			else
				client_fail(c, EXIT_TEMPFAIL, "%s", io_error(c, st));
			return;
		}
	}
}

/* Run the connection until cmd has its tagged reply (or the connection
   died); the result is in cmd->res.  Returns the exit class: 0 for OK. */
static int cmd_wait(struct imap_client *c, struct imap_cmd *cmd)
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
		cmd->res.status = IMAP_STATUS_NONE;
		cmd->res.scope = IMAP_SCOPE_CONNECTION;
		cmd->res.exit_class = c->failed;
		snprintf(cmd->res.text, sizeof(cmd->res.text), "%s", c->fail_text);
		return c->failed;
	}
	return cmd->res.exit_class == EXIT_OK && cmd->res.status == IMAP_STATUS_OK
		? 0 : (cmd->res.exit_class ? cmd->res.exit_class : EXIT_TEMPFAIL);
}

static void cmds_release(struct imap_client *c, struct imap_cmd **cmds, size_t n);

/* Send, wait, copy the result out and free the command. */
static int cmd_run(struct imap_client *c, struct imap_cmd *cmd, struct imap_result *res)
{
	int rc;

	cmd_enqueue(c, cmd);
	rc = cmd_wait(c, cmd);
	if (res != NULL)
		*res = cmd->res;
	/* Unhook the caller's context: the command may outlive this call
	   on a dead connection. */
	cmd->untagged = NULL;
	cmds_release(c, &cmd, 1);
	return rc;
}

/* ------------------------------------------------------------------ */
/* connection setup                                                    */

static int read_greeting(struct imap_client *c, char *err, size_t errlen)
{
	for (;;) {
		enum imap_parse_result r = feed_buffered(c);

		if (r == IMAP_PARSE_RESPONSE) {
			const struct imap_response *g = imap_parser_response(c->parser);
			if (g->type != IMAP_RESP_UNTAGGED || g->status == IMAP_STATUS_NONE ||
			    g->status == IMAP_STATUS_NO || g->status == IMAP_STATUS_BAD) {
				snprintf(err, errlen, "%s: %s sent no IMAP greeting",
					 c->label, net_peer(c->conn));
				return EXIT_PROTOCOL;
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

static int query_capabilities(struct imap_client *c, char *err, size_t errlen)
{
	struct imap_result res;
	struct imap_cmd *cmd = cmd_new(c);

	cmd_text(cmd, "CAPABILITY");
	int rc = cmd_run(c, cmd, &res);
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
	struct imap_cmd *cmd = cmd_new(c);
	cmd_text(cmd, "STARTTLS");
	cmd->barrier = true;
	rc = cmd_run(c, cmd, &res);
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
	return query_capabilities(c, err, errlen);
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
	if (c->caps == 0 && (rc = query_capabilities(c, err, errlen)) != 0)
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
	for (size_t i = 0; i < N_ELEMENTS(c->secrets); i++) {
		if (c->secrets[i] == NULL)
			continue;
		log_forget_secret(c->secrets[i]);
		explicit_wipe(c->secrets[i], strlen(c->secrets[i]));
		free(c->secrets[i]);
	}
	net_close(&c->conn);
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
		struct imap_cmd *cmd = cmd_new(c);
		cmd_text(cmd, "LOGOUT");
		c->opts.timeout_ms = c->opts.timeout_ms > 10000 ? 10000 : c->opts.timeout_ms;
		(void)cmd_run(c, cmd, NULL);
	}
	imap_client_free(cp);
}

/* ------------------------------------------------------------------ */
/* login                                                               */

static char *base64_encode(const unsigned char *in, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len) v |= in[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static bool credential_ok(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

/* Keep a form of the credentials as they went out, registered as a
   secret for the client's lifetime: a server may echo it in any later
   reply text (a NO, a BYE). */
static void keep_secret(struct imap_client *c, size_t slot, char *s)
{
	if (c->secrets[slot] != NULL) {
		log_forget_secret(c->secrets[slot]);
		explicit_wipe(c->secrets[slot], strlen(c->secrets[slot]));
		free(c->secrets[slot]);
	}
	c->secrets[slot] = s;
	log_register_secret(s);
}

static int login_run(struct imap_client *c, const char *user, const char *password,
		     const char *authzid, char sep, char *err, size_t errlen)
{
	struct imap_result res;
	struct imap_cmd *cmd;
	int rc;

	if (!credential_ok(user) || !credential_ok(password) ||
	    (authzid != NULL && !credential_ok(authzid))) {
		snprintf(err, errlen, "%s: user name or password contains CR or LF", c->label);
		return EXIT_CONFIG;
	}
	if (c->caps & CAP_LOGINDISABLED && !(c->caps & CAP_AUTH_PLAIN)) {
		snprintf(err, errlen, "%s: server refuses logins (LOGINDISABLED)", c->label);
		return EXIT_NOPERM;
	}
	/* The password as an IMAP quoted string would escape " and \. */
	char *quoted = imap_quote(password);
	quoted[strlen(quoted) - 1] = '\0';
	if (strcmp(quoted + 1, password) != 0)
		keep_secret(c, 1, xstrdup(quoted + 1));
	explicit_wipe(quoted, strlen(quoted));
	free(quoted);
	cmd = cmd_new(c);
	cmd->barrier = true;
	if (c->caps & CAP_AUTH_PLAIN) {
		/* SASL PLAIN: authzid NUL authcid NUL password.  For a master
		   login the target user is the authzid and the master user
		   authenticates, so no separator is ever joined by hand. */
		struct buf sasl = { 0 };
		const char *authcid = authzid != NULL ? authzid : user;
		const char *target = authzid != NULL ? user : "";
		buf_append(&sasl, target, strlen(target));
		buf_append(&sasl, "", 1);
		buf_append(&sasl, authcid, strlen(authcid));
		buf_append(&sasl, "", 1);
		buf_append(&sasl, password, strlen(password));
		char *b64 = base64_encode(sasl.data, sasl.len);
		explicit_wipe(sasl.data, sasl.len);
		buf_free(&sasl);
		if (c->caps & CAP_SASL_IR) {
			cmd_text(cmd, "AUTHENTICATE PLAIN ");
			struct cmd_part *p = cmd_add_part(cmd, PART_TEXT);
			p->secret = true;
			buf_append(&p->data, b64, strlen(b64));
		} else {
			cmd_text(cmd, "AUTHENTICATE PLAIN\r\n");
			struct cmd_part *p = cmd_add_part(cmd, PART_CONT_LINE);
			p->secret = true;
			buf_append(&p->data, b64, strlen(b64));
		}
		keep_secret(c, 0, b64);
	} else {
		char *login = authzid != NULL ? xasprintf("%s%c%s", user, sep, authzid)
					      : xstrdup(user);
		cmd_text(cmd, "LOGIN ");
		cmd_literal(cmd, login, strlen(login), false);
		cmd_text(cmd, " ");
		cmd_literal(cmd, password, strlen(password), true);
		free(login);
	}
	rc = cmd_run(c, cmd, &res);
	if (rc == 0) {
		/* Servers may change capabilities after login. */
		if (res.code[0] == '\0' || strcmp(res.code, "CAPABILITY") != 0)
			return query_capabilities(c, err, errlen);
		return 0;
	}
	if (res.status == IMAP_STATUS_NONE) {
		snprintf(err, errlen, "%s", res.text);
		return rc;
	}
	snprintf(err, errlen, "%s: login as %s%s%s%s failed%s%s: %s", c->label, user,
		 authzid ? " (master user " : "", authzid ? authzid : "",
		 authzid ? ")" : "", res.code[0] ? " " : "", res.code, res.text);
	/* A NO to a login is an authentication failure whatever the code. */
	return res.status == IMAP_STATUS_NO ? EXIT_NOPERM : rc;
}

int imap_login(struct imap_client *c, const char *user, const char *password,
	       const char *authzid, char sep, char *err, size_t errlen)
{
	int rc;

	/* The deadline set at connect covers the login too. */
	if (c->setup_deadline == 0)
		c->setup_deadline = now_ms() + c->opts.timeout_ms;
	c->in_setup = true;
	rc = login_run(c, user, password, authzid, sep, err, errlen);
	c->in_setup = false;
	c->setup_deadline = 0;
	return rc;
}

/* ------------------------------------------------------------------ */
/* generic commands                                                    */

char *imap_quote(const char *s)
{
	struct buf b = { 0 };

	buf_append(&b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(&b, "\\", 1);
		buf_append(&b, s, 1);
	}
	buf_append(&b, "\"", 2);  /* includes the NUL */
	return (char *)b.data;
}

int imap_simple(struct imap_client *c, struct imap_result *res, const char *fmt, ...)
{
	struct imap_cmd *cmd = cmd_new(c);
	va_list ap;

	va_start(ap, fmt);
	cmd_vtext(cmd, fmt, ap);
	va_end(ap);
	return cmd_run(c, cmd, res);
}

int imap_select(struct imap_client *c, const char *mailbox, bool readonly,
		struct imap_mailbox *box_r, struct imap_result *res)
{
	char *q = imap_quote(mailbox);
	int rc;

	memset(&c->box, 0, sizeof(c->box));
	c->selected = false;
	c->box_grew = false;
	rc = imap_simple(c, res, "%s %s", readonly ? "EXAMINE" : "SELECT", q);
	free(q);
	c->selected = rc == 0;
	*box_r = c->box;
	return rc;
}

static bool status_untagged(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *resp)
{
	struct imap_mailbox *box = cmd->ctx;
	const struct imap_arg *a;
	uint64_t v;

	if (resp->name == NULL || strcmp(resp->name, "STATUS") != 0)
		return false;
	a = resp->args;
	if (a == NULL || a->next == NULL || a->next->type != IMAP_ARG_LIST)
		return true;
	for (a = a->next->list; a != NULL && a->next != NULL; a = a->next->next) {
		if (!imap_arg_get_number(a->next, &v))
			continue;
		if (imap_arg_is_atom(a, "UIDNEXT"))
			box->uidnext = (uint32_t)v;
		else if (imap_arg_is_atom(a, "UIDVALIDITY"))
			box->uidvalidity = (uint32_t)v;
		else if (imap_arg_is_atom(a, "MESSAGES"))
			box->exists = (uint32_t)v;
		else if (imap_arg_is_atom(a, "HIGHESTMODSEQ"))
			box->highestmodseq = v;
	}
	return true;
}

int imap_status(struct imap_client *c, const char *mailbox,
		struct imap_mailbox *box_r, struct imap_result *res)
{
	struct imap_cmd *cmd = cmd_new(c);
	char *q = imap_quote(mailbox);

	memset(box_r, 0, sizeof(*box_r));
	cmd_text(cmd, "STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)", q);
	free(q);
	cmd->untagged = status_untagged;
	cmd->ctx = box_r;
	return cmd_run(c, cmd, res);
}

/* ------------------------------------------------------------------ */
/* UID SEARCH (UID lists and sets: uidset.c)                          */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* A search answer is collected up to the selected mailbox's EXISTS plus
   this margin (an EXISTS may still come before the tagged reply); the
   exact check is made when the command is done. */
#define SEARCH_MARGIN 1000
#define SEARCH_MAX (50u * 1000 * 1000)

static size_t search_bound(const struct imap_client *c)
{
	return c->selected ? (size_t)c->box.exists + SEARCH_MARGIN : SEARCH_MAX;
}

static bool search_untagged(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *resp)
{
	struct uid_list *l = cmd->ctx;
	uint64_t v;

	if (resp->name == NULL)
		return false;
	if (strcmp(resp->name, "SEARCH") == 0) {
		for (const struct imap_arg *a = resp->args; a != NULL; a = a->next) {
			if (!imap_arg_get_number(a, &v) || v == 0 || v > UINT32_MAX)
				continue;
			if (l->count >= search_bound(c)) {
				client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists more UIDs than "
					    "the mailbox has messages (%u)", c->box.exists);
				break;
			}
			uid_list_add(l, (uint32_t)v);
		}
		return true;
	}
	if (strcmp(resp->name, "ESEARCH") == 0) {
		for (const struct imap_arg *a = resp->args; a != NULL; a = a->next) {
			if (imap_arg_is_atom(a, "ALL") && a->next != NULL &&
			    a->next->type == IMAP_ARG_ATOM &&
			    !uid_set_parse(a->next->str, l, search_bound(c)))
				client_fail(c, EXIT_PROTOCOL, "malformed ESEARCH result, or more UIDs "
					    "than the mailbox has messages (%u)", c->box.exists);
		}
		return true;
	}
	return false;
}

/* An answer no server could give for the selected mailbox: more UIDs
   than messages, or a UID at or past the UIDNEXT announced at SELECT
   while no new message was announced (EXISTS went up) since. */
static bool search_absurd(struct imap_client *c, const struct uid_list *l)
{
	if (!c->selected || l->count == 0)
		return false;
	if (l->count > c->box.exists) {
		client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists %zu UIDs but the mailbox "
			    "has %u messages", l->count, c->box.exists);
		return true;
	}
	if (!c->box_grew && c->box.uidnext != 0 && l->uids[l->count - 1] >= c->box.uidnext) {
		client_fail(c, EXIT_PROTOCOL, "SEARCH answer lists UID %u but UIDNEXT is %u",
			    l->uids[l->count - 1], c->box.uidnext);
		return true;
	}
	return false;
}

int imap_uid_search(struct imap_client *c, const char *criteria,
		    struct uid_list *uids_r, struct imap_result *res)
{
	struct imap_cmd *cmd = cmd_new(c);
	int rc;

	memset(uids_r, 0, sizeof(*uids_r));
	if (c->caps & CAP_ESEARCH)
		cmd_text(cmd, "UID SEARCH RETURN (ALL) %s", criteria);
	else
		cmd_text(cmd, "UID SEARCH %s", criteria);
	cmd->untagged = search_untagged;
	cmd->ctx = uids_r;
	rc = cmd_run(c, cmd, res);
	if (uids_r->count > 1) {
		/* Sorted and without duplicates: a UID listed twice must not
		   be fetched and delivered twice. */
		size_t w = 1;
		qsort(uids_r->uids, uids_r->count, sizeof(uint32_t), cmp_u32);
		for (size_t i = 1; i < uids_r->count; i++)
			if (uids_r->uids[i] != uids_r->uids[w - 1])
				uids_r->uids[w++] = uids_r->uids[i];
		uids_r->count = w;
	}
	if (rc == 0 && search_absurd(c, uids_r)) {
		uid_list_free(uids_r);
		rc = c->failed;
		if (res != NULL) {
			res->status = IMAP_STATUS_NONE;
			res->scope = IMAP_SCOPE_CONNECTION;
			res->exit_class = rc;
			snprintf(res->text, sizeof(res->text), "%s", c->fail_text);
		}
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* FETCH                                                               */

struct fetch_ctx {
	imap_fetch_cb *cb;
	void *ctx;
};

/* Only flags that can go back on the wire are kept (imap_flag_canonical);
   \Recent is dropped silently, anything else is counted. */
static void fetch_flags(struct imap_fetched *m, const struct imap_arg *list)
{
	char canon[IMAP_KEYWORD_MAX + 1];
	size_t o = 0;

	m->flags[0] = '\0';
	if (list->type != IMAP_ARG_LIST)
		return;
	for (const struct imap_arg *f = list->list; f != NULL; f = f->next) {
		if (f->type == IMAP_ARG_ATOM && strcasecmp(f->str, "\\Recent") == 0)
			continue;
		if (f->type != IMAP_ARG_ATOM || !imap_flag_canonical(f->str, canon)) {
			m->flags_dropped++;
			continue;
		}
		int n = snprintf(m->flags + o, sizeof(m->flags) - o, "%s%s",
				 o ? " " : "", canon);
		if (n < 0 || (size_t)n >= sizeof(m->flags) - o) {
			m->flags[o] = '\0';
			m->flags_dropped++;  /* absurdly many keywords: keep what fits */
			continue;
		}
		o += (size_t)n;
	}
}

/* The body is taken only from the exact section asked for: a partial
   (BODY[]<0>) or another section (BODY[HEADER]) is not the message. */
static bool is_body_item(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM && strcasecmp(a->str, "BODY[]") == 0;
}

static bool fetch_untagged(struct imap_client *c, struct imap_cmd *cmd,
			   const struct imap_response *resp)
{
	struct fetch_ctx *fc = cmd->ctx;
	struct imap_fetched m;
	size_t streamed = 0;
	uint64_t v;

	if (resp->name == NULL || strcmp(resp->name, "FETCH") != 0 ||
	    resp->args == NULL || resp->args->type != IMAP_ARG_LIST)
		return false;
	memset(&m, 0, sizeof(m));
	for (const struct imap_arg *a = resp->args->list; a != NULL && a->next != NULL;
	     a = a->next->next) {
		const struct imap_arg *val = a->next;
		if (val->type == IMAP_ARG_LITERAL_STREAMED && streamed < c->nstreamed &&
		    m.body == NULL && is_body_item(a)) {
			m.body = c->streamed[streamed];
			c->streamed[streamed] = NULL;
			streamed++;
			continue;
		}
		if (val->type == IMAP_ARG_LITERAL_STREAMED)
			streamed++;
		if (imap_arg_is_atom(a, "UID") && imap_arg_get_number(val, &v) && v <= UINT32_MAX)
			m.uid = (uint32_t)v;
		else if (imap_arg_is_atom(a, "FLAGS"))
			fetch_flags(&m, val);
		else if (imap_arg_is_atom(a, "INTERNALDATE"))
			m.date_invalid = val->type != IMAP_ARG_STRING ||
				!imap_date_time_canonical(val->str, m.internaldate);
		else if (imap_arg_is_atom(a, "RFC822.SIZE") && imap_arg_get_number(val, &v))
			m.size = v;
		else if (is_body_item(a) && m.body == NULL &&
			 (val->type == IMAP_ARG_LITERAL || val->type == IMAP_ARG_STRING)) {
			m.body = msgbody_new(c->opts.spool_dir);
			if (!msgbody_write(m.body, val->str, val->len))
				client_fail(c, EXIT_IOERR, "cannot spool a message: %s",
					    strerror(errno));
		}
	}
	/* FETCH without UID is an unsolicited flag update: not ours. */
	if (m.uid != 0)
		fc->cb(fc->ctx, &m);
	msgbody_free(&m.body);
	return true;
}

int imap_uid_fetch(struct imap_client *c, const char *uidset, const char *items,
		   imap_fetch_cb *cb, void *ctx, struct imap_result *res)
{
	return imap_uid_fetch_many(c, &uidset, 1, items, cb, ctx, res);
}

/* Forget commands that are done or were never sent; ones still in
   flight belong to a dead connection and go with the client. */
static void cmds_release(struct imap_client *c, struct imap_cmd **cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
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

int imap_uid_fetch_many(struct imap_client *c, const char *const *uidsets, size_t n,
			const char *items, imap_fetch_cb *cb, void *ctx,
			struct imap_result *res)
{
	struct fetch_ctx fc = { cb, ctx };
	struct imap_cmd **cmds = xcalloc(n, sizeof(*cmds));
	int rc = 0;

	/* All on the wire at once: the server streams the answers back to
	   back, with no round trip between the commands. */
	for (size_t i = 0; i < n; i++) {
		cmds[i] = cmd_new(c);
		cmd_text(cmds[i], "UID FETCH %s (UID %s)", uidsets[i], items);
		cmds[i]->untagged = fetch_untagged;
		cmds[i]->ctx = &fc;
		cmd_enqueue(c, cmds[i]);
	}
	for (size_t i = 0; i < n; i++) {
		int r = cmd_wait(c, cmds[i]);
		if (r != 0 && rc == 0) {
			rc = r;
			if (res != NULL)
				*res = cmds[i]->res;
		} else if (rc == 0 && res != NULL) {
			*res = cmds[i]->res;
		}
	}
	/* A command that is not done must not keep a pointer to fc. */
	for (size_t i = 0; i < n; i++)
		cmds[i]->untagged = NULL;
	cmds_release(c, cmds, n);
	free(cmds);
	return rc;
}

/* ------------------------------------------------------------------ */
/* APPEND                                                              */

/* Flags and date are checked again here, whoever built them: this is
   the last place before the wire (see imap_flag_canonical). */
static void append_one(struct imap_client *c, struct imap_cmd *cmd,
		       const struct imap_append_msg *m)
{
	char canon[IMAP_KEYWORD_MAX + 1], date[IMAP_DATE_TIME_LEN];
	struct cmd_part *p;
	const char *f = m->flags ? m->flags : "";
	bool first = true;

	cmd_text(cmd, " (");
	while (*f != '\0') {
		size_t len = strcspn(f, " ");
		char *one = xstrndup(f, len);
		if (imap_flag_canonical(one, canon)) {
			cmd_text(cmd, "%s%s", first ? "" : " ", canon);
			first = false;
		}
		free(one);
		f += len;
		f += strspn(f, " ");
	}
	cmd_text(cmd, ")");
	if (m->internaldate != NULL && imap_date_time_canonical(m->internaldate, date))
		cmd_text(cmd, " \"%s\"", date);
	cmd_text(cmd, " ");
	p = cmd_add_part(cmd, PART_BODY);
	p->body = m->body;
	/* NUL bytes only travel in a literal8, which BINARY allows. */
	p->literal8 = msgbody_has_nul(m->body) && (c->caps & CAP_BINARY);
}

static void fill_uids(const struct imap_result *r, size_t n,
		      uint32_t *uidvalidity_r, uint32_t *uids_r)
{
	struct uid_list l = { 0 };

	if (r->appenduid_set[0] != '\0' && uid_set_parse(r->appenduid_set, &l, n) &&
	    l.count == n) {
		memcpy(uids_r, l.uids, n * sizeof(*uids_r));
		*uidvalidity_r = r->appenduid_validity;
	}
	uid_list_free(&l);
}

int imap_append(struct imap_client *c, const char *mailbox,
		const struct imap_append_msg *msgs, size_t n,
		uint32_t *uidvalidity_r, uint32_t *uids_r, struct imap_result *res)
{
	char *q = imap_quote(mailbox);
	int rc = 0;

	*uidvalidity_r = 0;
	memset(uids_r, 0, n * sizeof(*uids_r));
	if (n > 1 && (c->caps & CAP_MULTIAPPEND)) {
		/* One transaction: all messages are saved, or none is
		   (RFC 3502), which keeps the journal's intents simple. */
		struct imap_cmd *cmd = cmd_new(c);
		cmd_text(cmd, "APPEND %s", q);
		for (size_t i = 0; i < n; i++)
			append_one(c, cmd, &msgs[i]);
		rc = cmd_run(c, cmd, res);
		if (rc == 0)
			fill_uids(res, n, uidvalidity_r, uids_r);
		free(q);
		return rc;
	}
	/* Without MULTIAPPEND: pipeline single APPENDs, then collect. */
	struct imap_cmd **cmds = xcalloc(n, sizeof(*cmds));
	for (size_t i = 0; i < n; i++) {
		cmds[i] = cmd_new(c);
		cmd_text(cmds[i], "APPEND %s", q);
		append_one(c, cmds[i], &msgs[i]);
		cmd_enqueue(c, cmds[i]);
	}
	for (size_t i = 0; i < n; i++) {
		int r = cmd_wait(c, cmds[i]);
		uint32_t uv = 0;
		if (r == 0) {
			fill_uids(&cmds[i]->res, 1, &uv, &uids_r[i]);
			if (uv != 0)
				*uidvalidity_r = uv;
		} else if (rc == 0) {
			rc = r;
			*res = cmds[i]->res;
		}
		if (rc == 0 && res != NULL)
			*res = cmds[i]->res;
	}
	cmds_release(c, cmds, n);
	free(cmds);
	free(q);
	return rc;
}

/* ------------------------------------------------------------------ */
/* LIST, NAMESPACE, ENABLE, ID                                         */

struct list_ctx {
	struct imap_list_entry *v;
	size_t n, cap;
};

static unsigned list_attr(const char *a)
{
	static const struct { const char *name; unsigned attr; } map[] = {
		{ "\\Noselect", MBOX_NOSELECT }, { "\\NonExistent", MBOX_NONEXISTENT },
		{ "\\Noinferiors", MBOX_NOINFERIORS }, { "\\HasChildren", MBOX_HASCHILDREN },
		{ "\\Subscribed", MBOX_SUBSCRIBED }, { "\\Sent", MBOX_SENT },
		{ "\\Drafts", MBOX_DRAFTS }, { "\\Trash", MBOX_TRASH }, { "\\Junk", MBOX_JUNK },
		{ "\\Archive", MBOX_ARCHIVE }, { "\\All", MBOX_ALL }, { "\\Flagged", MBOX_FLAGGED },
	};

	for (size_t i = 0; i < N_ELEMENTS(map); i++)
		if (strcasecmp(a, map[i].name) == 0)
			return map[i].attr;
	return 0;
}

static bool list_untagged(struct imap_client *c, struct imap_cmd *cmd,
			  const struct imap_response *resp)
{
	struct list_ctx *lc = cmd->ctx;
	const struct imap_arg *attrs, *delim, *name;
	const char *d, *nm;

	(void)c;
	if (resp->name == NULL || strcmp(resp->name, "LIST") != 0)
		return false;
	attrs = resp->args;
	delim = attrs ? attrs->next : NULL;
	name = delim ? delim->next : NULL;
	if (attrs == NULL || attrs->type != IMAP_ARG_LIST || name == NULL ||
	    !imap_arg_get_nstring(delim, &d) || (nm = imap_arg_as_astring(name)) == NULL ||
	    strlen(nm) != name->len)
		return true;   /* malformed or NUL in a name: not a usable mailbox */
	if (lc->n == lc->cap) {
		lc->cap = lc->cap ? lc->cap * 2 : 32;
		lc->v = xreallocarray(lc->v, lc->cap, sizeof(*lc->v));
	}
	struct imap_list_entry *e = &lc->v[lc->n++];
	e->name = xstrdup(nm);
	e->delim = d != NULL ? d[0] : '\0';
	e->attrs = 0;
	for (const struct imap_arg *a = attrs->list; a != NULL; a = a->next)
		if (a->type == IMAP_ARG_ATOM)
			e->attrs |= list_attr(a->str);
	return true;
}

int imap_list(struct imap_client *c, const char *pattern,
	      struct imap_list_entry **entries_r, size_t *n_r, struct imap_result *res)
{
	struct list_ctx lc = { 0 };
	struct imap_cmd *cmd = cmd_new(c);
	char *q = imap_quote(pattern);
	int rc;

	if ((c->caps & CAP_LIST_EXTENDED) && (c->caps & CAP_SPECIAL_USE))
		cmd_text(cmd, "LIST \"\" %s RETURN (SPECIAL-USE SUBSCRIBED)", q);
	else
		cmd_text(cmd, "LIST \"\" %s", q);
	free(q);
	cmd->untagged = list_untagged;
	cmd->ctx = &lc;
	rc = cmd_run(c, cmd, res);
	*entries_r = lc.v;
	*n_r = lc.n;
	return rc;
}

void imap_list_free(struct imap_list_entry *entries, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(entries[i].name);
	free(entries);
}

struct ns_ctx {
	char *prefix;
	size_t len;
	char delim;
	bool found;
};

static bool namespace_untagged(struct imap_client *c, struct imap_cmd *cmd,
			       const struct imap_response *resp)
{
	struct ns_ctx *ns = cmd->ctx;
	const struct imap_arg *personal = resp->args, *first;
	const char *p, *d;

	(void)c;
	if (resp->name == NULL || strcmp(resp->name, "NAMESPACE") != 0)
		return false;
	/* (("prefix" "delim") ...) NIL NIL: the first personal one. */
	if (personal == NULL || personal->type != IMAP_ARG_LIST ||
	    (first = personal->list) == NULL || first->type != IMAP_ARG_LIST ||
	    first->list == NULL || first->list->next == NULL)
		return true;
	p = imap_arg_as_astring(first->list);
	if (p == NULL || !imap_arg_get_nstring(first->list->next, &d))
		return true;
	snprintf(ns->prefix, ns->len, "%s", p);
	ns->delim = d != NULL ? d[0] : '\0';
	ns->found = true;
	return true;
}

int imap_namespace(struct imap_client *c, char *prefix, size_t prefix_len,
		   char *delim_r, struct imap_result *res)
{
	struct ns_ctx ns = { prefix, prefix_len, '\0', false };
	int rc;

	prefix[0] = '\0';
	*delim_r = '\0';
	if (c->caps & CAP_NAMESPACE) {
		struct imap_cmd *cmd = cmd_new(c);
		cmd_text(cmd, "NAMESPACE");
		cmd->untagged = namespace_untagged;
		cmd->ctx = &ns;
		if ((rc = cmd_run(c, cmd, res)) != 0)
			return rc;
		if (ns.found) {
			*delim_r = ns.delim;
			return 0;
		}
	}
	/* Without NAMESPACE: the delimiter of the root, per RFC 3501 6.3.8. */
	struct imap_list_entry *v = NULL;
	size_t n = 0;
	struct imap_cmd *cmd = cmd_new(c);
	struct list_ctx lc = { 0 };
	cmd_text(cmd, "LIST \"\" \"\"");
	cmd->untagged = list_untagged;
	cmd->ctx = &lc;
	rc = cmd_run(c, cmd, res);
	v = lc.v;
	n = lc.n;
	if (rc == 0 && n > 0)
		*delim_r = v[0].delim;
	imap_list_free(v, n);
	return rc;
}

int imap_enable(struct imap_client *c, const char *exts, struct imap_result *res)
{
	if (!(c->caps & CAP_ENABLE))
		return 0;
	return imap_simple(c, res, "ENABLE %s", exts);
}

int imap_id(struct imap_client *c, struct imap_result *res)
{
	if (!(c->caps & CAP_ID))
		return 0;
	return imap_simple(c, res, "ID (\"name\" \"imapsync-task\" \"version\" \"%s\")",
			   PACKAGE_VERSION);
}
