/* journal.h - the per-task state: which remote message (mailbox,
 * UIDVALIDITY, UID) went where (local UIDVALIDITY, UID), and how far
 * each one got.
 *
 * On disk: a snapshot ("state") plus an append-only, line-oriented,
 * versioned journal ("journal").  Every change is a journal line first.
 * An intent is written and fsync'd BEFORE the APPEND that acts on it, so
 * a crash can never leave a delivered message the journal does not know
 * might exist (FAULTS I2).  Replay refuses to guess: an unknown version
 * or a malformed line stops the task with EXIT_DATAERR.
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jstate {
	J_INTENT = 1,    /* about to be appended; outcome unknown after a crash */
	J_DELIVERED,     /* the destination confirmed it */
	J_SEEN,          /* delivered, and marked \Seen on the remote */
	J_DELETED,       /* delivered, and expunged on the remote */
	J_SKIPPED,       /* permanently skipped (too big, NUL bytes) */
	J_FILTERING,     /* delivered; FILTER SIEVE about to run on it */
	J_FILTERED,      /* delivered and filtered (delivery = sieve) */
};

struct jfolder;

struct jentry {
	char *mbox;              /* remote folder name (UTF-8); the folder's */
	uint32_t ruv, ruid;      /* remote UIDVALIDITY, UID */
	enum jstate state;
	uint64_t size;           /* bytes of the message */
	uint64_t hash;           /* FNV-1a 64 of the bytes */
	uint32_t luv, luid;      /* local UIDVALIDITY, UID (0: unknown) */
	uint32_t luidnext;       /* local UIDNEXT seen before the APPEND */
	uint64_t chash, clen;    /* content hash and length (util.h); 0:
	                            unknown (recorded by version 1) */
	char *flags;             /* flags last synced; NULL: not recorded */
	bool verified;           /* not on disk: this run fetched the remote
	                            message under this key and hashed it */
	/* the journal's own: the folder's list of entries */
	struct jfolder *folder;
	struct jentry *prev, *next;
};

/* What a folder looked like at the end of its last pass. */
struct jfolder_rec {
	uint32_t ruv, luv;       /* remote and local UIDVALIDITY */
	uint32_t maxuid;         /* highest remote UID seen */
	uint64_t modseq;         /* remote HIGHESTMODSEQ, 0 if none */
};

struct journal;

/* Load dir/state, replay dir/journal.  0, or an exit code with err set.
   read_only: change nothing on disk (status, dry runs); no writes then.
   owner names the task and remote account ("task=N remote=U@H:P"): a
   state written for another owner is refused with EXIT_DATAERR.  NULL
   checks nothing.  A state written by version 1 is read, and (unless
   read_only) rewritten at once in the current version. */
int journal_open(const char *dir, const char *owner, bool read_only,
		 struct journal **j_r, char *err, size_t errlen);
void journal_close(struct journal **j);

struct jentry *journal_get(struct journal *j, const char *mbox,
			   uint32_t ruv, uint32_t ruid);
/* Call cb for every entry, or every entry of one folder (order
   unspecified).  cb may change states, not remove entries. */
void journal_foreach(struct journal *j, void (*cb)(void *ctx, struct jentry *e),
		     void *ctx);
void journal_folder_foreach(struct journal *j, const char *mbox,
			    void (*cb)(void *ctx, struct jentry *e), void *ctx);
/* A folder's record; false if it has none. */
bool journal_folder_record(const struct journal *j, const char *mbox,
			   struct jfolder_rec *rec_r);
int journal_set_folder_record(struct journal *j, const char *mbox,
			      const struct jfolder_rec *rec);
size_t journal_count(const struct journal *j, enum jstate state);

/* Record transitions.  Each writes one journal line; 0 or EXIT_IOERR /
   EXIT_CANTCREAT (disk full).  journal_intent() lines become durable
   only with journal_sync(), which the caller runs before acting. */
int journal_intent(struct journal *j, const struct jentry *e);
int journal_delivered(struct journal *j, struct jentry *e, uint32_t luv, uint32_t luid);
int journal_abandon(struct journal *j, struct jentry *e);
/* Drop an entry that can no longer matter (its remote message is gone,
   or it was re-keyed after a UIDVALIDITY change).  Same record as an
   abandon: the entry is simply no longer known. */
int journal_forget(struct journal *j, struct jentry *e);
int journal_seen(struct journal *j, struct jentry *e);
int journal_filtering(struct journal *j, struct jentry *e);
int journal_filtered(struct journal *j, struct jentry *e);
int journal_deleted(struct journal *j, struct jentry *e);
/* Record the flags last synced for e (its state unchanged). */
int journal_set_flags(struct journal *j, struct jentry *e, const char *flags);
int journal_skipped(struct journal *j, const char *mbox, uint32_t ruv,
		    uint32_t ruid, uint64_t size);
int journal_sync(struct journal *j);
/* Mark that an APPEND of the intents just synced is about to be sent
   (not fsync'd: only a crash of this process, not of the machine, can
   leave the server still saving it).  journal_append_in_flight() tells,
   after a restart, whether the last run died with an APPEND unsettled. */
int journal_append_started(struct journal *j, const char *mbox);
/* The same for the delivery of one message (LMTP): only its intent may
   be still in the server's hands after a crash. */
int journal_delivery_started(struct journal *j, const struct jentry *e);
bool journal_append_in_flight(const struct journal *j);
/* Whether e's delivery may still be completing (see above). */
bool journal_in_flight(const struct journal *j, const struct jentry *e);

/* Fold the journal into the snapshots of the folders that changed
   (each: write .new, fsync, rename), then the index, fsync the
   directory, then empty the journal.  Order is important! */
int journal_commit(struct journal *j);

const char *journal_error(const struct journal *j);

/* Fault-injection hook (FAULTS row 24): with IMAPSYNC_TEST_KILL_AT=N in
   the environment, the Nth call exits the process at once with 100, as
   a SIGKILL would stop it.  Called at every journal step. */
void journal_killpoint(void);

#endif
