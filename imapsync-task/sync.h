/* sync.h - what every sync mode shares: the run's environment, its
 * counters, the first error, and lists of journal entries.
 *
 * The sync files drive two imap_client connections and the journal
 * through typed calls; they never see sockets, tags, TLS or IMAP syntax.
 * A folder is a parameter of everything shared (struct folder_pair), so
 * the INBOX-only mode and the all-folders mode use one copy path.
 */
#ifndef SYNC_H
#define SYNC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "imap_cmds.h"
#include "journal.h"
#include "lmtp.h"
#include "task.h"

struct dry_overlay;

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
	struct dry_overlay *dry;       /* dry run: what it would have
	                                  changed (dry_run.h) */
	char error[512];               /* why the run stopped: the first
	                                  error told wins */
	/* More connection pairs, for folders side by side (sync_folders);
	   open_pair NULL: the one pair only.  Each returns 0 or an exit
	   code, after logging why. */
	int (*open_pair)(void *ctx, struct imap_client **remote_r,
			 struct imap_client **local_r);
	void (*close_pair)(void *ctx, struct imap_client **remote,
			   struct imap_client **local);
	void *pair_ctx;
};

/* One folder as both sides name it. */
struct folder_pair {
	const char *remote;       /* the journal's key: remote name, UTF-8 */
	const char *remote_wire;  /* as the remote server names it */
	const char *local;        /* as the local server names it */
	uint32_t ruv;             /* remote UIDVALIDITY of this pass */
};

/* Record why the run stops (unless an earlier error was recorded) and
   return rc. */
int sync_fail(struct sync_env *env, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A failed command: its exit code, with the side named. */
int sync_cmd_failed(struct sync_env *env, struct imap_client *c, int rc,
		    const struct imap_result *res, const char *what);
/* A failed journal write: rc, with the journal's reason. */
int sync_journal_failed(struct sync_env *env, int rc);

struct entry_list {
	struct jentry **v;
	size_t n, cap;
};
void entry_list_add(struct entry_list *l, struct jentry *e);
bool entry_listed(const struct entry_list *l, const struct jentry *e);
void entry_list_free(struct entry_list *l);
/* The entries of one folder in one state (of one remote UIDVALIDITY
   unless any_ruv), sorted by remote UID. */
void sync_entries(struct sync_env *env, const char *mbox, enum jstate st, uint32_t ruv,
		  bool any_ruv, struct entry_list *l);
/* Their remote (or local) UIDs, in list order; the caller frees. */
uint32_t *entry_uids(struct jentry *const *v, size_t n, bool local);
int cmp_entry_ruid(const void *a, const void *b);

/* INBOX-only retrieval (sync_inbox.c).  Returns an exit code. */
int sync_inbox(struct sync_env *env, struct sync_counts *counts);
/* The all-folders migration (sync_folders.c).  Returns an exit code. */
int sync_folders(struct sync_env *env, struct sync_counts *counts);

#endif
