/* reconcile.h - settle one folder's unconfirmed deliveries after a crash.
 *
 * An INTENT in the journal means "maybe delivered".  Before anything of
 * the folder is sent again, each is looked for in the local folder (from
 * the UIDNEXT noted in the intent, by content: match.h): found, it
 * becomes DELIVERED; not found, it is abandoned and its message is a
 * candidate again.
 */
#ifndef RECONCILE_H
#define RECONCILE_H

#include "sync.h"

/* Seconds a server may take to finish saving what a dead run sent. */
#define RECONCILE_GRACE 10.0

int reconcile_folder(struct sync_env *env, const struct folder_pair *fp,
		     struct sync_counts *counts);

#endif
