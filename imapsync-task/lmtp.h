/* lmtp.h - delivery through the local LMTP service (delivery = lmtp), so
 * the whole delivery path runs, Sieve vacation replies included. */
#ifndef LMTP_H
#define LMTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "msgbody.h"

enum lmtp_outcome {
	LMTP_DELIVERED,
	LMTP_OVERQUOTA,     /* 452/552 with enhanced code 4.2.2/5.2.2 */
	LMTP_PERMFAIL,      /* another 5xx: this message will not go */
	LMTP_TEMPFAIL,      /* another 4xx: try again next run */
	LMTP_LOST,          /* connection lost: outcome unknown after DATA */
};

struct lmtp_session;

/* How many LMTP connections a session keeps.  Dovecot spends a delivery
   almost entirely in its lmtp process (parsing, Sieve, index and cache
   updates, the fsync of the new file), and serves each connection with
   one process: several connections keep several of them busy while the
   client only feeds bytes.  Four fill the small hosts this runs on (two
   to four cores) without taking every lmtp process (Dovecot's default
   process_limit is 100, shared with the mail that keeps arriving). */
#define LMTP_CONNS 4

/* target: "host:port" or an absolute unix socket path.  0 or an exit
   code with err set (only the first connection must open; the others
   are a bonus).  progress (may be NULL) is called as message data goes
   out and every second while a reply is awaited: a sign of life for the
   next run, as in imap_client_opts. */
int lmtp_open(const char *target, int timeout_ms, void (*progress)(void *ctx),
	      void *progress_ctx, struct lmtp_session **s_r, char *err, size_t errlen);
void lmtp_close(struct lmtp_session **s);

/* One message of a batch. */
struct lmtp_msg {
	const char *from;              /* envelope sender (may be "") */
	const struct msgbody *body;
	bool tried;                    /* out: its transaction was started */
	enum lmtp_outcome outcome;     /* out: when tried */
	char err[600];                 /* out: why, when not LMTP_DELIVERED */
};

/* Deliver msgs[0..n) to rcpt, in order of start, over the session's
   connections at once (PIPELINING: MAIL, RCPT and DATA in one write when
   the server offers it; the body only after 354).  Returns when nothing
   is on the wire any more.  Once a message ends LMTP_OVERQUOTA,
   LMTP_TEMPFAIL or LMTP_LOST no further one is started: those keep
   tried false.  stop (may be NULL) set by a signal ends every
   transaction at once: TEMPFAIL before the body went, LOST after. */
void lmtp_deliver_batch(struct lmtp_session *s, const char *rcpt, struct lmtp_msg *msgs,
			size_t n, volatile sig_atomic_t *stop);

/* Deliver one message to rcpt (lmtp_deliver_batch with one message). */
enum lmtp_outcome lmtp_deliver(struct lmtp_session *s, const char *from,
			       const char *rcpt, const struct msgbody *body,
			       char *err, size_t errlen);

/* While deliveries wait for the server, read another connection as its
   data arrives (the remote's answers for the next batch): fd_of(ctx)
   names the socket to watch, -1 for none now, with *ready_r set when
   data is buffered already; read(ctx) handles what arrived. */
void lmtp_set_side_reader(struct lmtp_session *s, int (*fd_of)(void *ctx, bool *ready_r),
			  void (*read)(void *ctx), void *ctx);

/* The envelope sender for a message: its Return-Path, else the address
   in From:, else "" (the null sender). */
void lmtp_envelope_sender(const struct msgbody *body, char *buf, size_t len);

#endif
