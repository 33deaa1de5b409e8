/* imap_client.h - the IMAP engine: one connection set up under the TLS
 * policy (greeting, STARTTLS, capabilities, login), a pipelined command
 * queue with literals in both directions, deadlines, and response codes
 * classified by what they break.
 *
 * The typed commands (SELECT, FETCH, APPEND, ...) are in imap_cmds.h; the
 * engine's internals, for the files that implement this interface, in
 * imap_client_p.h.  Neither the parser nor the configuration shows
 * through here.
 */
#ifndef IMAP_CLIENT_H
#define IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_types.h"       /* enum imap_status */
#include "net.h"              /* enum security */

enum imap_cap {
	CAP_IMAP4REV1 = 1u << 0,
	CAP_STARTTLS = 1u << 1,
	CAP_LOGINDISABLED = 1u << 2,
	CAP_AUTH_PLAIN = 1u << 3,
	CAP_SASL_IR = 1u << 4,
	CAP_LITERALPLUS = 1u << 5,
	CAP_LITERALMINUS = 1u << 6,
	CAP_UIDPLUS = 1u << 7,
	CAP_MULTIAPPEND = 1u << 8,
	CAP_ESEARCH = 1u << 9,
	CAP_CONDSTORE = 1u << 10,
	CAP_QRESYNC = 1u << 11,
	CAP_ID = 1u << 12,
	CAP_NAMESPACE = 1u << 13,
	CAP_SPECIAL_USE = 1u << 14,
	CAP_LIST_EXTENDED = 1u << 15,
	CAP_ENABLE = 1u << 16,
	CAP_BINARY = 1u << 17,
	CAP_FILTER_SIEVE = 1u << 18,
	CAP_UNSELECT = 1u << 19,
};

/* How much a failure breaks (isync's error classes). */
enum imap_scope {
	IMAP_SCOPE_NONE = 0,
	IMAP_SCOPE_MESSAGE,     /* skip this message, go on */
	IMAP_SCOPE_MAILBOX,     /* skip this mailbox, go on */
	IMAP_SCOPE_CONNECTION,  /* the connection is unusable */
	IMAP_SCOPE_TASK,        /* stop the task: auth, quota, TLS policy */
};

struct imap_result {
	enum imap_status status;  /* OK/NO/BAD; NONE when the connection died */
	char code[32];            /* response code, upper-case, "" if none */
	char text[300];           /* human text, for logs only */
	enum imap_scope scope;
	int exit_class;           /* exitcode.h value for this failure */
	uint32_t appenduid_validity;
	char appenduid_set[256];  /* APPENDUID's UID set, "" if none */
};

struct throttle;

struct imap_client_opts {
	const char *label;        /* "remote" / "local": names the side in errors */
	const char *host;
	uint16_t port;
	enum security security;
	const char *ca_file;
	bool tls_verify;
	int timeout_ms;           /* silence allowed per phase and command */
	const char *spool_dir;    /* where large bodies are spooled */
	bool trace;               /* log the protocol (secrets redacted) */
	/* Called as message data goes out: a sign of life for the next run
	   (see reconcile.c). */
	void (*progress)(void *ctx);
	void *progress_ctx;
	/* The remote side only: paces the bytes and message bodies read
	   (throttle.h; not owned, NULL: unlimited), and retries idempotent
	   commands the server refuses as throttled ([THROTTLED],
	   [UNAVAILABLE], "Suggested Backoff Time") after a wait. */
	struct throttle *throttle;
	bool backoff;
};

struct imap_mailbox {
	uint32_t exists;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	bool permflags_keywords;  /* PERMANENTFLAGS has \* */
};

struct imap_client;

/* Connect, apply the security mode, read the greeting and capabilities.
   Returns 0 or an exit code; err names the side and the reason. */
int imap_client_connect(const struct imap_client_opts *opts,
			struct imap_client **client_r, char *err, size_t errlen);
void imap_client_free(struct imap_client **client);
/* LOGOUT if the connection is still healthy, then free. */
void imap_client_logout(struct imap_client **client);

bool imap_client_has_cap(const struct imap_client *c, enum imap_cap cap);
const char *imap_client_label(const struct imap_client *c);
/* The reason the connection failed, and its exit class (0 if healthy). */
int imap_client_failed(const struct imap_client *c, const char **why_r);

/* While c waits for its own server's answer, read the answers the
   partner's server sends for the partner's commands in flight (their
   untagged hooks run then): the remote streams the next batch while the
   local server saves this one.  Never the other way round, and never
   while the partner is inside a read of its own. */
void imap_client_set_partner(struct imap_client *c, struct imap_client *partner);
/* The same for a poll() loop that is not an IMAP client's (lmtp.c's,
   see lmtp_set_side_reader; client is a struct imap_client): the socket
   to watch for answers to commands in flight (-1: none expected, or
   inside a read of its own; *ready_r: bytes buffered already), and the
   read of one response when it has data. */
int imap_client_side_fd(void *client, bool *ready_r);
void imap_client_side_read(void *client);
/* Authenticate as user; with authzid (master login) as authzid via
   SASL PLAIN when offered, else LOGIN "authzid<sep>user".  Credentials
   travel base64-encoded or as literals, never hand-quoted. */
int imap_login(struct imap_client *c, const char *user, const char *password,
	       const char *authzid, char sep, char *err, size_t errlen);

#endif
