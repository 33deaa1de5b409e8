/* lmtp.h - delivery through the local LMTP service (delivery = lmtp), so
 * the whole delivery path runs, Sieve vacation replies included. */
#ifndef LMTP_H
#define LMTP_H

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

/* target: "host:port" or an absolute unix socket path.  0 or an exit
   code with err set.  progress (may be NULL) is called as message data
   goes out: a sign of life for the next run, as in imap_client_opts. */
int lmtp_open(const char *target, int timeout_ms, void (*progress)(void *ctx),
	      void *progress_ctx, struct lmtp_session **s_r, char *err, size_t errlen);
void lmtp_close(struct lmtp_session **s);

/* Deliver one message to rcpt.  from is the envelope sender (may be ""). */
enum lmtp_outcome lmtp_deliver(struct lmtp_session *s, const char *from,
			       const char *rcpt, const struct msgbody *body,
			       char *err, size_t errlen);

/* The envelope sender for a message: its Return-Path, else the address
   in From:, else "" (the null sender). */
void lmtp_envelope_sender(const struct msgbody *body, char *buf, size_t len);

#endif
