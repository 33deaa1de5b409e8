/* imap_client_p.h - the engine's internals, for the files that implement
 * imap_client.h and imap_cmds.h: imap_client.c (the engine), imap_login.c
 * and imap_cmds.c.  Nothing else includes it.
 *
 * A command is a list of parts (text, literals, continuation lines) built
 * with imap_cmd_*(), queued, and run by the engine; the untagged responses
 * the engine does not consume itself are offered to the in-flight
 * commands' untagged() hooks, oldest first.
 */
#ifndef IMAP_CLIENT_P_H
#define IMAP_CLIENT_P_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_client.h"
#include "imap_parser.h"
#include "msgbody.h"
#include "net.h"
#include "util.h"

#define MAX_STREAMED 4

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
/* An untagged response offered to an in-flight command: true if it was
   the command's (no other command sees it then). */
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
	/* Literals of the response being handled, streamed to msgbodies:
	   an untagged() hook may take one (and set its slot to NULL). */
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
	struct imap_trace *trace_in; /* -vv: what the server sends (imap_trace.h) */
	/* Read while this connection waits (imap_client_set_partner). */
	struct imap_client *partner;
	bool reading;                /* inside read_response: not re-entered */
	int64_t silence_end;         /* a partner pump used the silence up to
	                                here; 0: no pump in this wait */
	int64_t backoff_warned;      /* when a throttling warning was logged */
	int64_t throttled_ms;        /* slept in all pacing opts.throttle */
};

/* The connection is dead from now on, for exit_class and this reason
   (the first reason stays). */
void imap_client_fail(struct imap_client *c, int exit_class, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* res as a command gets it on a dead connection: status NONE, scope
   CONNECTION, the connection's exit class and reason. */
void imap_client_dead_result(const struct imap_client *c, struct imap_result *res);

/* The setup bound (connect to login done, one timeout_ms): begin starts
   it unless imap_client_connect already did; end lifts it. */
void imap_client_setup_begin(struct imap_client *c);
void imap_client_setup_end(struct imap_client *c);
/* CAPABILITY, e.g. when a login answer did not carry them. */
int imap_client_query_caps(struct imap_client *c, char *err, size_t errlen);
/* Keep s (a form of the credentials as it went out, allocated) in slot,
   registered with log.c as a secret until the client is freed or the
   slot reused: a server may echo it in any later reply text (a NO, a
   BYE).  s == NULL only forgets the slot's old one. */
void imap_client_keep_secret(struct imap_client *c, size_t slot, char *s);

/* Pace the remote: one message body arrived (opts.throttle; no-op
   without one). */
void imap_client_throttle_message(struct imap_client *c);

/* Backing off when the server throttles us: an idempotent command is
   run in a loop
	struct imap_backoff bo = { 0 };
	do rc = run(...); while (rc != 0 && imap_backoff_retry(c, &bo, "SELECT", res));
   imap_backoff_retry() is true, after waiting, when res is a throttled
   answer (tagged NO or BAD with [THROTTLED], [UNAVAILABLE] or Office
   365's "Suggested Backoff Time: N milliseconds") and the run may still
   wait: the suggested time, else 1 s doubling up to BACKOFF_MAX_WAIT_MS,
   in all at most opts.timeout_ms per command.  Otherwise false, res
   then saying that the server throttled us when it did.  Only with
   opts.backoff.  res must not be NULL. */
struct imap_backoff {
	int64_t start;          /* the first throttled answer (ms); 0: none */
	int64_t next_wait;      /* the next wait without a suggestion */
	unsigned retries;
};
bool imap_backoff_retry(struct imap_client *c, struct imap_backoff *bo, const char *what,
			struct imap_result *res);

/* Building: a new command starts with its tag; text goes to the last
   text part unless that one is secret. */
struct imap_cmd *imap_cmd_new(struct imap_client *c);
void imap_cmd_text(struct imap_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
struct cmd_part *imap_cmd_add_part(struct imap_cmd *cmd, enum part_kind kind);
void imap_cmd_literal(struct imap_cmd *cmd, const char *data, size_t len, bool secret);

/* Running: enqueue ends the command (CRLF) and queues it; wait runs the
   connection until its tagged answer (or death), returning 0 or the exit
   class, with the answer in cmd->res. */
void imap_cmd_enqueue(struct imap_client *c, struct imap_cmd *cmd);
int imap_cmd_wait(struct imap_client *c, struct imap_cmd *cmd);
/* Put what is queued on the wire now, without waiting for any answer. */
void imap_client_flush(struct imap_client *c);
/* Enqueue, wait, copy the result to res (may be NULL), release. */
int imap_cmd_run(struct imap_client *c, struct imap_cmd *cmd, struct imap_result *res);
/* Wait for every one of cmds (all enqueued), in order.  Returns the first
   failure's exit class, 0 if none; res (may be NULL) gets that failure's
   result, or the last command's when all succeeded. */
int imap_cmds_wait(struct imap_client *c, struct imap_cmd *const *cmds, size_t n,
		   struct imap_result *res);
/* A whole command with no untagged data of its own: fmt is the IMAP text
   after the tag (strings through imap_quote()).  Run as imap_cmd_run(). */
int imap_simple(struct imap_client *c, struct imap_result *res, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Free the commands that are done or were never sent; one still in
   flight belongs to a dead connection and goes with the client, its
   untagged() hook unhooked from the caller's context. */
void imap_cmds_release(struct imap_client *c, struct imap_cmd **cmds, size_t n);

#endif
