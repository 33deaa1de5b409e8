/* imap_client.h - the IMAP command layer: connection setup with the TLS
 * policy, capabilities, tags, a pipelined command queue, literals in both
 * directions, and response codes classified by what they break.
 *
 * The sync engine talks to this interface only; it never sees a socket,
 * a tag or IMAP syntax beyond search criteria and flag names.
 */
#ifndef IMAP_CLIENT_H
#define IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_parser.h"
#include "msgbody.h"
#include "task.h"
#include "uidset.h"

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
	   (see sync_inbox.c, reconcile_intents). */
	void (*progress)(void *ctx);
	void *progress_ctx;
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

/* Authenticate as user; with authzid (master login) as authzid via
   SASL PLAIN when offered, else LOGIN "authzid<sep>user".  Credentials
   travel base64-encoded or as literals, never hand-quoted. */
int imap_login(struct imap_client *c, const char *user, const char *password,
	       const char *authzid, char sep, char *err, size_t errlen);

/* A simple command with no special untagged data.  fmt is IMAP syntax;
   use imap_quote() for strings. */
int imap_simple(struct imap_client *c, struct imap_result *res,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Quote a mailbox name or string as an IMAP quoted string (the caller
   guarantees no CR/LF/NUL: folder names are validated before). */
char *imap_quote(const char *s);

int imap_select(struct imap_client *c, const char *mailbox, bool readonly,
		struct imap_mailbox *box_r, struct imap_result *res);
int imap_status(struct imap_client *c, const char *mailbox,
		struct imap_mailbox *box_r, struct imap_result *res);

/* LIST: one mailbox.  name is as the server sent it (modified UTF-7,
   or UTF-8 with UTF8=ACCEPT); delim is 0 for a flat namespace. */
enum imap_mbox_attr {
	MBOX_NOSELECT = 1u << 0,
	MBOX_NONEXISTENT = 1u << 1,
	MBOX_NOINFERIORS = 1u << 2,
	MBOX_HASCHILDREN = 1u << 3,
	MBOX_SUBSCRIBED = 1u << 4,
	MBOX_SENT = 1u << 8,       /* RFC 6154 special use */
	MBOX_DRAFTS = 1u << 9,
	MBOX_TRASH = 1u << 10,
	MBOX_JUNK = 1u << 11,
	MBOX_ARCHIVE = 1u << 12,
	MBOX_ALL = 1u << 13,
	MBOX_FLAGGED = 1u << 14,
};

struct imap_list_entry {
	char *name;
	char delim;
	unsigned attrs;
};

/* LIST "" pattern, with RETURN (SPECIAL-USE SUBSCRIBED) when the server
   has LIST-EXTENDED and SPECIAL-USE.  Free with imap_list_free(). */
int imap_list(struct imap_client *c, const char *pattern,
	      struct imap_list_entry **entries_r, size_t *n_r, struct imap_result *res);
void imap_list_free(struct imap_list_entry *entries, size_t n);

/* NAMESPACE: the first personal namespace's prefix and delimiter
   ("" and the LIST delimiter when the server lacks NAMESPACE). */
int imap_namespace(struct imap_client *c, char *prefix, size_t prefix_len,
		   char *delim_r, struct imap_result *res);
/* ENABLE extensions (e.g. "CONDSTORE QRESYNC") when offered; ID. */
int imap_enable(struct imap_client *c, const char *exts, struct imap_result *res);
int imap_id(struct imap_client *c, struct imap_result *res);

/* UID SEARCH criteria -> sorted UIDs (ESEARCH used when offered). */
int imap_uid_search(struct imap_client *c, const char *criteria,
		    struct uid_list *uids_r, struct imap_result *res);

struct imap_fetched {
	uint32_t uid;
	char flags[512];          /* space-separated, canonical; \Recent and
	                             flags no server could take dropped */
	unsigned flags_dropped;   /* how many were dropped (not \Recent) */
	char internaldate[64];    /* re-formatted, "" if absent or invalid */
	bool date_invalid;        /* the server sent one, but not a date */
	uint64_t size;            /* RFC822.SIZE, 0 if absent */
	struct msgbody *body;     /* BODY[] when asked; callee may take it */
};
typedef void imap_fetch_cb(void *ctx, struct imap_fetched *msg);

/* UID FETCH uidset (items); cb for every message that has a UID. */
int imap_uid_fetch(struct imap_client *c, const char *uidset, const char *items,
		   imap_fetch_cb *cb, void *ctx, struct imap_result *res);

/* The same for several UID sets, all pipelined: every command is on the
   wire before the first answer is read. */
int imap_uid_fetch_many(struct imap_client *c, const char *const *uidsets, size_t n,
			const char *items, imap_fetch_cb *cb, void *ctx,
			struct imap_result *res);

struct imap_append_msg {
	const char *flags;        /* "\Seen $Label", may be "" */
	const char *internaldate; /* may be NULL */
	struct msgbody *body;
};
/* APPEND n messages to mailbox: one MULTIAPPEND transaction when
   offered, else pipelined APPENDs.  uids_r[i] receives each new UID from
   APPENDUID (0 if the server did not say). */
int imap_append(struct imap_client *c, const char *mailbox,
		const struct imap_append_msg *msgs, size_t n,
		uint32_t *uidvalidity_r, uint32_t *uids_r, struct imap_result *res);

#endif
