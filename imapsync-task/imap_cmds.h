/* imap_cmds.h - the typed IMAP commands: the client's interface for the
 * sync engine.  Callers pass values (mailbox names, UID arrays, search
 * keys, flags) and get values back; the IMAP text is written here, in
 * imap_cmds.c, and nowhere else.
 *
 * Every command takes the connection (imap_client.h), returns 0 or an
 * exit code (exitcode.h), and fills res (may be NULL) with the tagged
 * answer: status, response code, what it breaks.
 */
#ifndef IMAP_CMDS_H
#define IMAP_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_client.h"
#include "imap_types.h"       /* enum imap_search_key */
#include "msgbody.h"
#include "uidset.h"

/* The most UIDs in one UID STORE or UID EXPUNGE: scattered UIDs then
   stay far below a server's line limit (Dovecot's is 64 KiB). */
#define IMAP_UID_CHUNK 500

/* SELECT, or EXAMINE when readonly; box_r gets what the server announced
   (EXISTS, UIDVALIDITY, UIDNEXT, ...).  STATUS asks for MESSAGES, UIDNEXT
   and UIDVALIDITY without selecting. */
int imap_select(struct imap_client *c, const char *mailbox, bool readonly,
		struct imap_mailbox *box_r, struct imap_result *res);
int imap_status(struct imap_client *c, const char *mailbox,
		struct imap_mailbox *box_r, struct imap_result *res);

/* LIST: one mailbox.  name is as the server sent it (modified UTF-7,
   or UTF-8 with UTF8=ACCEPT); delim is 0 for a flat namespace. */

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

/* UID SEARCH in the selected mailbox: the messages that have every key
   of keys (enum imap_search_key bits; SEARCH_ALL: every message) and,
   when before is not 0, an INTERNALDATE before the UTC day of before
   (BEFORE d-Mon-yyyy: whole days, the server's clock).  uids_r gets them
   sorted, without duplicates (ESEARCH used when offered); an answer no
   server could give for the mailbox is a protocol error.  A key bit that
   is no key, or a before with no such day, is refused without sending:
   status BAD, EXIT_SOFTWARE. */
int imap_uid_search(struct imap_client *c, unsigned keys, time_t before,
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

/* UID FETCH of uids[0..n), sent now and answered later: only answers
   for these UIDs are taken, so several may be in flight.  cb runs
   whenever the answers
   are read, by the wait, by another command's wait on c, or while a
   connection c is the partner of waits (imap_client_set_partner).  The
   wait releases the pending fetch, whatever its outcome. */
struct imap_fetch_pending;
struct imap_fetch_pending *imap_uid_fetch_send(struct imap_client *c, const uint32_t *uids,
					       size_t n, const char *items,
					       imap_fetch_cb *cb, void *ctx);
int imap_uid_fetch_wait(struct imap_client *c, struct imap_fetch_pending **p,
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

/* Flags on messages by UID: "UID STORE set +FLAGS.SILENT (flags)" when
   add, else -FLAGS.SILENT.  flags is space-separated ("\Seen",
   "\Deleted $Label"); a flag that could not go on the wire is dropped,
   as in APPEND.  uids need not be sorted; one command per IMAP_UID_CHUNK of
   them, in order, stopping at the first failure (res: that failure's
   result, else the last one's).  n == 0 sends nothing and returns 0. */
int imap_uid_store(struct imap_client *c, const uint32_t *uids, size_t n, bool add,
		   const char *flags, struct imap_result *res);
/* UID EXPUNGE (RFC 4315, UIDPLUS): remove exactly these messages, if they
   are flagged \Deleted; chunked like imap_uid_store().  Without UIDPLUS
   it is refused without sending (status BAD, EXIT_SOFTWARE). */
int imap_uid_expunge(struct imap_client *c, const uint32_t *uids, size_t n,
		     struct imap_result *res);
/* EXPUNGE: remove every message of the mailbox flagged \Deleted,
   whoever flagged it. */
int imap_expunge(struct imap_client *c, struct imap_result *res);
/* Run the user's active Sieve script on these messages as if they were
   just delivered: "FILTER SIEVE DELIVERY UID set", one command for all
   (capability CAP_FILTER_SIEVE: Pigeonhole's imap_filter_sieve plugin,
   draft-bosch-imap-filter-sieve).  n == 0 sends nothing. */
int imap_filter_sieve(struct imap_client *c, const uint32_t *uids, size_t n,
		      struct imap_result *res);

/* CREATE and SUBSCRIBE a mailbox, named as the server names it (modified
   UTF-7, see imap_list). */
int imap_create(struct imap_client *c, const char *mailbox, struct imap_result *res);
int imap_subscribe(struct imap_client *c, const char *mailbox, struct imap_result *res);

#endif
