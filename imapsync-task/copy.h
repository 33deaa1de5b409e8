/* copy.h - the one copy path (see copy.c). */
#ifndef COPY_H
#define COPY_H

#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "sync.h"

/* At most this many messages per batch; two batches are in memory at
   most (bounded by msgbody.h's memory budget). */
#define COPY_BATCH 256

/* Called after each batch with its result (0 or an exit code); what it
   returns is the batch's result from then on. */
typedef int copy_after_fn(void *ctx, int rc);

/* Copy the remote messages uids[0..n) of fp to its local folder, in
   batches of COPY_BATCH, the next batch fetched while one is delivered
   (the remote must be the local client's partner for the overlap, see
   imap_client_set_partner).  A message matching an entry of stale
   (recorded under an earlier remote UIDVALIDITY) is not copied again:
   its entry moves to the new key; nor is one whose content an unclaimed
   message of pool has (may be NULL; the pool's folder must be the
   selected one).  after (may be NULL) runs after each batch.  Returns 0
   or an exit code (the first batch that failed stops the copy; a stop
   signal ends it with EXIT_TEMPFAIL); a message refused alone is
   skipped and recorded (counts->skipped), one the remote answered badly
   for is left and counted in env->protocol_errors. */
int copy_uids(struct sync_env *env, const struct folder_pair *fp, const uint32_t *uids,
	      size_t n, struct stale_set *stale, struct local_pool *pool,
	      struct sync_counts *counts, copy_after_fn *after, void *after_ctx);

#endif
