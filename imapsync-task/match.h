/* match.h - one-to-one content matching: is this body the copy of that
 * journal entry?  Used by crash reconciliation (a local copy of an
 * unconfirmed delivery) and UIDVALIDITY re-keying (a remote message
 * recorded under an earlier UIDVALIDITY).
 *
 * Content is size + a 64-bit FNV-1a hash of the bytes, and where the
 * entry has one, the content hash of util.h (line ends, a final newline
 * and NULs as any server stores them).  An LMTP copy carries trace
 * headers in front: its end is compared ("suffix").
 */
#ifndef MATCH_H
#define MATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "imap_cmds.h"
#include "journal.h"
#include "msgbody.h"

/* Is local the copy of e? */
bool match_copy(const struct jentry *e, const struct msgbody *local, bool suffix);
/* Can a local message of this size be the copy of e?  0: by its size, it
   may be (try first); 1: only by content hash (try last); -1: no. */
int match_size_rank(const struct jentry *e, uint64_t size, bool suffix);

/* Entries of one folder recorded under another remote UIDVALIDITY than
   the current one, delivered or seen: each can be claimed once by a
   message of the same content. */
struct stale_set {
	struct jentry **v;
	size_t n, cap;
	uint32_t ruv;     /* the current UIDVALIDITY: others are stale */
};
void stale_collect(struct journal *j, const char *mbox, uint32_t ruv, struct stale_set *s);
/* The stale entry with this size and hash (then no longer in the set),
   or NULL. */
struct jentry *stale_claim(struct stale_set *s, uint64_t size, uint64_t hash);
void stale_free(struct stale_set *s);

/* The messages of a local folder that no journal entry claims: where
   there is no mapping (a first run into a folder that already holds
   some of the mail, a lost state directory), a remote message with the
   same content as one of them is matched to it, one to one, instead of
   being copied again. */
struct local_pool {
	uint32_t luv;            /* the local folder's UIDVALIDITY */
	struct uid_list uids;
	uint64_t *sizes;
	bool *taken;
	struct jentry *ids;      /* each body's hashes once fetched
	                            (state != 0) */
	size_t cap;
};
/* EXAMINE the local folder (it stays selected for local_pool_claim) and
   list its messages, less those entries of mbox already claim.  0, or
   the failing command's exit code with res set. */
int local_pool_load(struct imap_client *local, const char *local_name,
		    struct journal *j, const char *mbox, struct local_pool *p,
		    struct imap_result *res);
/* The local UID of an unclaimed message whose content is want's (then
   claimed), 0 if none; -1 when a FETCH failed (res set). */
int64_t local_pool_claim(struct imap_client *local, struct local_pool *p,
			 const struct jentry *want, struct imap_result *res);
void local_pool_free(struct local_pool *p);

#endif
