/* dry_run.h - what a dry run would have changed, kept in memory.
 *
 * A dry run opens the journal read-only and writes nothing.  But the
 * steps after the copy (marking \Seen, deleting on the remote) act on
 * what the copy did: a dry run that asked the journal alone would not
 * mark or delete the messages it would have delivered, and so would
 * predict less than the real run does.  So in a dry run the copy path
 * notes each message it would deliver (or find already local) here, the
 * \Seen step notes what it would mark, and the later steps read the
 * journal through this overlay.  Outside a dry run every function here
 * is the plain journal call.
 */
#ifndef DRY_RUN_H
#define DRY_RUN_H

#include <stdint.h>

#include "journal.h"
#include "sync.h"

/* Remote UID ruid of fp (size and hash as fetched now) would be
   DELIVERED by this run. */
void dry_note_delivered(struct sync_env *env, const struct folder_pair *fp, uint32_t ruid,
			uint64_t size, uint64_t hash);
/* e (a journal entry or one of the overlay's) would be marked \Seen. */
void dry_note_seen(struct sync_env *env, const struct jentry *e);

/* journal_get() as the run would see it now. */
struct jentry *dry_get(struct sync_env *env, const char *mbox, uint32_t ruv, uint32_t ruid);
/* sync_entries() (one remote UIDVALIDITY) as the run would see it now:
   the overlay's entries replace the journal's. */
void dry_entries(struct sync_env *env, const char *mbox, enum jstate st, uint32_t ruv,
		 struct entry_list *l);

/* Forget the overlay (end of the run). */
void dry_free(struct sync_env *env);

#endif
