/* copy.h - the one copy path (see copy.c). */
#ifndef COPY_H
#define COPY_H

#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "sync.h"

/* At most this many messages per batch: 64 x 256 KiB in RAM at most. */
#define COPY_BATCH 64

/* Copy the remote messages uids[0..n) (n <= COPY_BATCH) of fp to its
   local folder.  A message matching an entry of stale (recorded under an
   earlier remote UIDVALIDITY) is not copied again: its entry moves to
   the new key; nor is one whose content an unclaimed message of pool
   has (may be NULL; the pool's folder must be the selected one).  Returns 0 or an exit code; a message refused alone is
   skipped and recorded (counts->skipped), one the remote answered badly
   for is left and counted in env->protocol_errors. */
int copy_batch(struct sync_env *env, const struct folder_pair *fp, const uint32_t *uids,
	       size_t n, struct stale_set *stale, struct local_pool *pool,
	       struct sync_counts *counts);

#endif
