/* sync_inbox.c - INBOX-only retrieval (folders = inbox): the policy.
 *
 * Candidates are the remote INBOX messages without \Seen and \Deleted.
 * Each goes through the journal states
 *
 *     (none) -> INTENT -> DELIVERED [-> FILTERING -> FILTERED] -> SEEN
 *            [-> DELETED]
 *
 * The copy itself (intent fsync'd before the delivery) is copy.c's, the
 * settling of a crash's leftovers reconcile.c's, deletion on the remote
 * remote_delete.c's.  What is this mode's own: which messages are
 * candidates, the \Seen marker that makes a message taken once never
 * taken again, and delivery = sieve.  A message is marked \Seen on the
 * remote only once it is DELIVERED, so the flag never hides a message
 * that is not safely local.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "dry_run.h"
#include "exitcode.h"
#include "log.h"
#include "match.h"
#include "progress.h"
#include "reconcile.h"
#include "remote_delete.h"
#include "sync.h"
#include "util.h"

static const struct folder_pair inbox_pair = { "INBOX", "INBOX", "INBOX", 0 };

/* ------------------------------------------------------------------ */
/* delivery = sieve                                                    */

/* Run the user's active Sieve script on exactly the messages this task
   appended (FILTER SIEVE DELIVERY on their UIDs), then UID EXPUNGE
   exactly those UIDs: Dovecot flags \Deleted the copies the script
   filed elsewhere, and a bare EXPUNGE would also remove messages the
   user had flagged \Deleted.

   A crash between FILTER and the journal's FILTERED line must not run
   the script twice (a fileinto :copy would file a second copy), so the
   FILTERING line is synced first; an entry found FILTERING afterwards
   is only expunged-if-deleted, never filtered again.  At worst such a
   message stays unfiltered in the INBOX: never lost, never doubled. */
static int expunge_local(struct sync_env *env, struct jentry **v, size_t n)
{
	struct imap_result res;
	int rc;

	if (n == 0)
		return 0;
	uint32_t *uids = entry_uids(v, n, true);
	rc = imap_uid_expunge(env->local_imap, uids, n, &res);
	free(uids);
	return rc != 0 ? sync_cmd_failed(env, env->local_imap, rc, &res, "UID EXPUNGE") : 0;
}

/* Leftovers of an interrupted run: expunge what the script moved, and
   call them filtered. */
static int settle_filtering(struct sync_env *env, const struct folder_pair *fp, uint32_t luv)
{
	struct entry_list leftover, known = { 0 };
	int rc;

	sync_entries(env, fp->remote, J_FILTERING, 0, true, &leftover);
	for (size_t i = 0; i < leftover.n; i++)
		if (leftover.v[i]->luv == luv && leftover.v[i]->luid != 0)
			entry_list_add(&known, leftover.v[i]);
	if (known.n > 0)
		log_msg(LOGL_WARNING, "%zu message(s) were being filtered when a run was "
			"interrupted; not filtering them again", known.n);
	rc = expunge_local(env, known.v, known.n);
	for (size_t i = 0; i < leftover.n && rc == 0; i++)
		if ((rc = journal_filtered(env->journal, leftover.v[i])) != 0)
			rc = sync_journal_failed(env, rc);
	entry_list_free(&known);
	entry_list_free(&leftover);
	return rc;
}

static int filter_delivered(struct sync_env *env, const struct folder_pair *fp)
{
	struct entry_list pending, fresh = { 0 };
	struct imap_mailbox box;
	struct imap_result res;
	int rc;

	sync_entries(env, fp->remote, J_DELIVERED, fp->ruv, false, &pending);
	sync_entries(env, fp->remote, J_FILTERING, 0, true, &fresh);
	size_t leftovers = fresh.n;
	entry_list_free(&fresh);
	if (pending.n + leftovers == 0 || env->dry_run) {
		if (pending.n > 0)
			log_info("would run the Sieve script on %zu delivered message(s)", pending.n);
		entry_list_free(&pending);
		return 0;
	}
	if (!imap_client_has_cap(env->local_imap, CAP_FILTER_SIEVE)) {
		entry_list_free(&pending);
		return sync_fail(env, EXIT_CONFIG, "local: delivery = sieve needs FILTER=SIEVE "
				 "(Pigeonhole imap_filter_sieve plugin) on the local server");
	}
	rc = imap_select(env->local_imap, fp->local, false, &box, &res);
	if (rc != 0) {
		rc = sync_cmd_failed(env, env->local_imap, rc, &res, "SELECT");
		goto out;
	}
	if ((rc = settle_filtering(env, fp, box.uidvalidity)) != 0)
		goto out;
	/* Fresh deliveries: only those whose local UID is known and valid. */
	for (size_t i = 0; i < pending.n && rc == 0; i++) {
		struct jentry *e = pending.v[i];
		if (e->luv != box.uidvalidity || e->luid == 0) {
			log_msg(LOGL_WARNING, "remote UID %u: local UID unknown, not filtered", e->ruid);
			rc = journal_filtered(env->journal, e);
		} else {
			entry_list_add(&fresh, e);
			rc = journal_filtering(env->journal, e);
		}
		if (rc != 0)
			rc = sync_journal_failed(env, rc);
	}
	if (rc != 0 || fresh.n == 0)
		goto out;
	if ((rc = journal_sync(env->journal)) != 0) {
		rc = sync_journal_failed(env, rc);
		goto out;
	}
	uint32_t *uids = entry_uids(fresh.v, fresh.n, true);
	rc = imap_filter_sieve(env->local_imap, uids, fresh.n, &res);
	free(uids);
	journal_killpoint();
	if (rc != 0 && res.status == IMAP_STATUS_NONE) {
		rc = sync_cmd_failed(env, env->local_imap, rc, &res, "FILTER SIEVE");
		goto out;
	}
	if (rc != 0) {
		/* The script failed: the messages simply stay in the INBOX. */
		log_msg(LOGL_WARNING, "local: FILTER SIEVE failed, messages stay in INBOX: %s",
			res.text);
		rc = 0;
	}
	if ((rc = expunge_local(env, fresh.v, fresh.n)) != 0)
		goto out;
	for (size_t i = 0; i < fresh.n && rc == 0; i++)
		if ((rc = journal_filtered(env->journal, fresh.v[i])) != 0)
			rc = sync_journal_failed(env, rc);
out:
	entry_list_free(&fresh);
	entry_list_free(&pending);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the \Seen marker                                                    */

/* Delivered (and, with sieve, filtered) but not yet \Seen on the
   remote: mark them now. */
static int mark_delivered_seen(struct sync_env *env, const struct folder_pair *fp)
{
	bool sieve = env->task->delivery == DELIVERY_SIEVE && !env->dry_run;
	struct entry_list l, f;
	int rc = 0;

	if (sieve && (rc = filter_delivered(env, fp)) != 0)
		return rc;
	/* In a dry run, through its overlay: what the copy would have
	   delivered is marked too, and what was marked once is not again. */
	dry_entries(env, fp->remote, sieve ? J_FILTERED : J_DELIVERED, fp->ruv, &l);
	/* FILTERED entries left by an earlier sieve-mode run count too. */
	dry_entries(env, fp->remote, J_FILTERED, fp->ruv, &f);
	for (size_t i = 0; !sieve && i < f.n; i++)
		entry_list_add(&l, f.v[i]);
	entry_list_free(&f);
	if (l.n > 0 && env->dry_run) {
		uint32_t *uids = entry_uids(l.v, l.n, false);
		char *set = uid_list_to_set(uids, uid_array_sort_unique(uids, l.n));
		log_info("would mark %zu delivered message(s) \\Seen on the remote: UID %s",
			 l.n, set);
		free(set);
		free(uids);
		for (size_t i = 0; i < l.n; i++)
			dry_note_seen(env, l.v[i]);
	} else if (l.n > 0) {
		struct imap_result res;
		uint32_t *uids = entry_uids(l.v, l.n, false);
		log_debug("marking %zu delivered message(s) \\Seen on the remote", l.n);
		rc = imap_uid_store(env->remote, uids, l.n, true, "\\Seen", &res);
		free(uids);
		if (rc != 0)
			rc = sync_cmd_failed(env, env->remote, rc, &res, "UID STORE");
		for (size_t i = 0; i < l.n && rc == 0; i++)
			if ((rc = journal_seen(env->journal, l.v[i])) != 0)
				rc = sync_journal_failed(env, rc);
	}
	entry_list_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* keeping the state bounded                                           */

/* After a complete run under a new UIDVALIDITY every old message that
   came back as a candidate has been matched; the rest kept their \Seen
   flag and will not come back, so their old entries are dropped. */
static int forget_stale(struct sync_env *env, struct stale_set *s)
{
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < s->n && rc == 0; i++) {
		if (s->v[i] == NULL)
			continue;
		rc = journal_forget(env->journal, s->v[i]);
		s->v[i] = NULL;
		n++;
	}
	if (rc != 0)
		return sync_journal_failed(env, rc);
	if (n > 0)
		log_info("forgot %zu entries recorded under the previous UIDVALIDITY", n);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Entries whose remote message no longer exists can never matter again:
   drop them, so the state does not grow with every message ever taken.
   Only with ESEARCH, whose answer stays one short line however large
   the mailbox is. */
static int forget_gone(struct sync_env *env, const struct folder_pair *fp)
{
	struct uid_list all;
	struct imap_result res;
	struct entry_list done, skipped;
	int rc;

	if (env->dry_run || !imap_client_has_cap(env->remote, CAP_ESEARCH))
		return 0;
	rc = imap_uid_search(env->remote, SEARCH_ALL, 0, &all, &res);
	if (rc != 0) {
		uid_list_free(&all);
		return sync_cmd_failed(env, env->remote, rc, &res, "UID SEARCH ALL");
	}
	sync_entries(env, fp->remote, J_SEEN, fp->ruv, false, &done);
	sync_entries(env, fp->remote, J_SKIPPED, fp->ruv, false, &skipped);
	for (size_t i = 0; i < skipped.n; i++)
		entry_list_add(&done, skipped.v[i]);
	for (size_t i = 0; i < done.n && rc == 0; i++) {
		uint32_t uid = done.v[i]->ruid;
		if (bsearch(&uid, all.uids, all.count, sizeof(uint32_t), cmp_u32) == NULL &&
		    (rc = journal_forget(env->journal, done.v[i])) != 0)
			rc = sync_journal_failed(env, rc);
	}
	entry_list_free(&done);
	entry_list_free(&skipped);
	uid_list_free(&all);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void count_seen_elsewhere(struct sync_env *env, const struct folder_pair *fp,
				 struct sync_counts *counts)
{
	struct uid_list seen;
	struct imap_result res;

	if (imap_uid_search(env->remote, SEARCH_SEEN | SEARCH_UNDELETED, 0, &seen, &res) == 0)
		for (size_t i = 0; i < seen.count; i++)
			if (journal_get(env->journal, fp->remote, fp->ruv, seen.uids[i]) == NULL)
				counts->seen_elsewhere++;
	uid_list_free(&seen);
}

/* Unseen, undeleted, and never taken by this task (even if someone
   marked it unread on the remote since). */
static int find_candidates(struct sync_env *env, const struct folder_pair *fp,
			   struct uid_list *cand)
{
	struct imap_result res;
	int rc = imap_uid_search(env->remote, SEARCH_UNSEEN | SEARCH_UNDELETED, 0, cand, &res);
	size_t w = 0;

	if (rc != 0)
		return sync_cmd_failed(env, env->remote, rc, &res, "UID SEARCH UNSEEN");
	for (size_t i = 0; i < cand->count; i++)
		if (journal_get(env->journal, fp->remote, fp->ruv, cand->uids[i]) == NULL)
			cand->uids[w++] = cand->uids[i];
	cand->count = w;
	return 0;
}

/* Delivered messages are marked \Seen on the remote after every
   SEEN_EVERY messages copied (in whole batches), and at the end.  Not after each batch: on a Maildir server
   every flag change renames files and makes the next command rescan the
   whole folder, a cost that grows with the INBOX.  A crash in between
   loses nothing: the journal knows what was delivered, the next run
   never takes it again and marks it first thing. */
#define SEEN_EVERY 1024
#define SEEN_EVERY_BATCHES (SEEN_EVERY / COPY_BATCH > 0 ? SEEN_EVERY / COPY_BATCH : 1)

struct after_batch {
	struct sync_env *env;
	const struct folder_pair *fp;
	unsigned batches;
};

static int mark_after_batch(void *ctx, int rc)
{
	struct after_batch *a = ctx;

	if (rc == 0)
		return ++a->batches % SEEN_EVERY_BATCHES == 0 ? mark_delivered_seen(a->env, a->fp) : 0;
	if (!imap_client_failed(a->env->remote, NULL) &&
	    !imap_client_failed(a->env->local_imap, NULL))
		/* The batch stopped on the local side's word (quota, a
		   temporary LMTP reply): what did arrive is marked now
		   rather than next run.  The first error is the one told. */
		(void)mark_delivered_seen(a->env, a->fp);
	return rc;
}

static int copy_candidates(struct sync_env *env, const struct folder_pair *fp,
			   const struct uid_list *cand, struct stale_set *stale,
			   struct sync_counts *counts)
{
	struct after_batch a = { env, fp, 0 };
	int rc = copy_uids(env, fp, cand->uids, cand->count, stale, NULL, counts,
			   mark_after_batch, &a);

	return rc == 0 ? mark_delivered_seen(env, fp) : rc;
}

int sync_inbox(struct sync_env *env, struct sync_counts *counts)
{
	struct folder_pair fp = inbox_pair;
	struct imap_mailbox rbox;
	struct imap_result res;
	struct uid_list cand = { 0 };
	struct stale_set stale;
	int rc;

	log_set_folder(fp.remote);
	progress_step("%s remote folder %s", env->dry_run ? "examining" : "selecting", fp.remote);
	rc = imap_select(env->remote, fp.remote_wire, env->dry_run, &rbox, &res);
	if (rc != 0) {
		log_set_folder(NULL);
		return sync_cmd_failed(env, env->remote, rc, &res, "SELECT INBOX");
	}
	fp.ruv = rbox.uidvalidity;
	if ((rc = reconcile_folder(env, &fp, counts)) != 0 ||
	    (rc = mark_delivered_seen(env, &fp)) != 0) {
		log_set_folder(NULL);
		return rc;
	}
	stale_collect(env->journal, fp.remote, fp.ruv, &stale);
	if (stale.n > 0)
		log_msg(LOGL_WARNING, "remote INBOX UIDVALIDITY is now %u; %zu message(s) recorded "
			"under an earlier one are matched by content, not redelivered",
			fp.ruv, stale.n);
	if ((rc = find_candidates(env, &fp, &cand)) != 0)
		goto out;
	count_seen_elsewhere(env, &fp, counts);
	log_info("%zu new message(s) in the remote INBOX", cand.count);
	progress_begin_folder(fp.remote, cand.count);
	rc = copy_candidates(env, &fp, &cand, &stale, counts);
	progress_end();
	if (rc == 0 && env->task->delete_mode == DELETE_AFTER_SYNC)
		rc = delete_after_sync(env, &fp, J_SEEN, counts);
	else if (rc == 0 && env->task->delete_mode == DELETE_OLDER_THAN)
		rc = delete_older_than(env, &fp, counts);
	if (rc == 0 && !env->dry_run)
		rc = forget_stale(env, &stale);
	if (rc == 0)
		rc = forget_gone(env, &fp);
	if (rc == 0 && env->protocol_errors > 0)
		rc = sync_fail(env, EXIT_PROTOCOL, "%u message(s) not taken: the remote server's "
			       "answers for them were incomplete (see the warnings); they stay "
			       "unseen there and the next run tries again", env->protocol_errors);
out:
	stale_free(&stale);
	uid_list_free(&cand);
	log_set_folder(NULL);
	return rc;
}
