/* remote_delete.h - deletion on the remote (delete = after-sync |
 * older-than), for one folder, of messages proven to be the ones this
 * task delivered. */
#ifndef REMOTE_DELETE_H
#define REMOTE_DELETE_H

#include "sync.h"

/* Every message of fp this task delivered and marked done (state done,
   e.g. J_SEEN), whatever its age. */
int delete_after_sync(struct sync_env *env, const struct folder_pair *fp, enum jstate done,
		      struct sync_counts *counts);
/* The same, limited to messages whose INTERNALDATE is older than the
   task's delete_older_than_days (server-side day granularity).  Old mail
   this task never delivered stays, counted as kept_old. */
int delete_older_than(struct sync_env *env, const struct folder_pair *fp,
		      struct sync_counts *counts);

#endif
