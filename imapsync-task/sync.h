/* sync.h - the sync algorithms.  They drive two imap_client connections
 * and the journal; they never see sockets, tags or TLS. */
#ifndef SYNC_H
#define SYNC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "imap_client.h"
#include "journal.h"
#include "lmtp.h"
#include "task.h"

struct sync_counts {
	uint64_t copied;        /* delivered this run */
	uint64_t skipped;       /* permanently skipped by policy or limits */
	uint64_t deleted;       /* expunged on the remote */
	uint64_t errors;
	uint64_t bytes;         /* bytes delivered */
	uint64_t seen_elsewhere; /* already \Seen on the remote, never ours */
	uint64_t kept_old;      /* older-than: old but never imported, kept */
	uint64_t reconciled;    /* crash leftovers settled without a copy */
};

struct sync_env {
	const struct task *task;
	const struct local_config *local;
	struct imap_client *remote;
	struct imap_client *local_imap;
	struct journal *journal;
	const char *spool_dir;
	bool dry_run;
	bool progress;                 /* a person is watching: say how far */
	volatile sig_atomic_t *stop;   /* set by SIGTERM/SIGINT */
	time_t now;                    /* the run's clock, for older-than */
	double last_alive;             /* when the previous run last showed
	                                  life (wall clock, seconds) */
	struct lmtp_session *lmtp;     /* delivery = lmtp; NULL otherwise */
	unsigned protocol_errors;      /* messages not taken because the
	                                  remote answered badly: exit 76 */
	char error[512];               /* why the run stopped, for the log */
};

/* INBOX-only retrieval.  Returns an exit code (exitcode.h). */
int sync_inbox(struct sync_env *env, struct sync_counts *counts);

#endif
