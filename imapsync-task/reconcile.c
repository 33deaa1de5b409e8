/* reconcile.c - settle one folder's unconfirmed deliveries (see
 * reconcile.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "log.h"
#include "match.h"
#include "parallel.h"
#include "reconcile.h"
#include "util.h"

struct local_probe {
	struct uid_list uids;
	uint64_t *sizes;
	size_t nsizes, cap;
	const struct jentry *want;
	bool suffix;      /* LMTP: the server prepended trace headers */
	bool found;
};

static void probe_size_cb(void *ctx, struct imap_fetched *m)
{
	struct local_probe *p = ctx;

	if (p->nsizes == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->sizes = xreallocarray(p->sizes, p->cap, sizeof(*p->sizes));
	}
	uid_list_add(&p->uids, m->uid);
	p->sizes[p->nsizes++] = m->size;
}

static void probe_hash_cb(void *ctx, struct imap_fetched *m)
{
	struct local_probe *p = ctx;

	if (m->body != NULL && !p->found)
		p->found = match_copy(p->want, m->body, p->suffix);
}

static bool luid_claimed(const struct entry_list *claimed, uint32_t luv, uint32_t luid)
{
	for (size_t i = 0; i < claimed->n; i++)
		if (claimed->v[i]->luv == luv && claimed->v[i]->luid == luid)
			return true;
	return false;
}

static double clock_now(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Find the local copy of one entry: a message at or above the UIDNEXT
   noted in its intent, not claimed by another entry, whose content is
   the entry's.  Returns the local UID, 0 if none, or -1 on failure. */
static int64_t find_local_copy(struct sync_env *env, struct local_probe *probe,
			       const struct jentry *e, uint32_t luv,
			       const struct entry_list *claimed, struct imap_result *res)
{
	uint32_t start = e->luv == luv ? e->luidnext : 1;

	probe->want = e;
	for (int rank = 0; rank <= 1; rank++) {
		for (size_t k = 0; k < probe->uids.count; k++) {
			uint32_t luid = probe->uids.uids[k];
			char one[16];

			if (luid < start ||
			    match_size_rank(e, probe->sizes[k], probe->suffix) != rank ||
			    luid_claimed(claimed, luv, luid))
				continue;
			snprintf(one, sizeof(one), "%u", luid);
			probe->found = false;
			if (imap_uid_fetch(env->local_imap, one, "BODY.PEEK[]", probe_hash_cb,
					   probe, res) != 0)
				return -1;
			if (probe->found)
				return luid;
		}
	}
	return 0;
}

/* Look for each unsettled intent in the local folder (find_local_copy).
   Found ones become DELIVERED; *left_r counts those not found that were
   on the wire (waiting): the server may still be saving them.

   LMTP tells no local UID, so its deliveries are recorded with UID 0
   and could not claim their copies: an intent for a byte-identical
   message would then take the copy of one delivered just before it (one
   local copy for two remote messages).  So LMTP deliveries of the same
   batch are matched too, in delivery (remote UID) order, each claiming
   its copy first. */
static int probe_intents(struct sync_env *env, const struct folder_pair *fp,
			 struct entry_list *intents, const struct entry_list *waiting,
			 struct entry_list *claimed, struct sync_counts *counts, size_t *left_r)
{
	struct local_probe probe = { 0 };
	struct imap_mailbox box;
	struct imap_result res;
	struct entry_list targets = { 0 };
	uint32_t from = UINT32_MAX;
	int rc;

	*left_r = 0;
	probe.suffix = env->task->delivery == DELIVERY_LMTP;
	rc = imap_select(env->local_imap, fp->local, true, &box, &res);
	if (rc != 0)
		return sync_cmd_failed(env, env->local_imap, rc, &res, "EXAMINE");
	for (size_t i = 0; i < intents->n; i++) {
		struct jentry *e = intents->v[i];
		/* If the local folder was recreated, its UIDs start over. */
		uint32_t start = e->luv == box.uidvalidity && e->luidnext > 0 ? e->luidnext : 1;
		if (e->state != J_INTENT)
			continue;
		if (start < from)
			from = start;
		entry_list_add(&targets, e);
	}
	for (size_t i = 0; probe.suffix && i < claimed->n; i++) {
		struct jentry *e = claimed->v[i];
		if (e->luid == 0 && e->luv == box.uidvalidity && e->luidnext >= from &&
		    from != UINT32_MAX)
			entry_list_add(&targets, e);
	}
	if (targets.n > 1)
		qsort(targets.v, targets.n, sizeof(*targets.v), cmp_entry_ruid);
	if (box.exists > 0 && from != UINT32_MAX) {
		char set[32];
		snprintf(set, sizeof(set), "%u:*", from);
		rc = imap_uid_fetch(env->local_imap, set, "RFC822.SIZE", probe_size_cb, &probe, &res);
		if (rc != 0) {
			rc = sync_cmd_failed(env, env->local_imap, rc, &res, "UID FETCH");
			goto out;
		}
	}
	for (size_t i = 0; i < targets.n && rc == 0; i++) {
		struct jentry *e = targets.v[i];
		bool intent = e->state == J_INTENT;
		int64_t match = find_local_copy(env, &probe, e, box.uidvalidity, claimed, &res);

		if (match < 0) {
			rc = sync_cmd_failed(env, env->local_imap, EXIT_TEMPFAIL, &res, "UID FETCH");
			break;
		}
		if (match == 0) {
			/* Only a delivery that was on the wire can still appear. */
			*left_r += intent && entry_listed(waiting, e);
			continue;
		}
		/* An LMTP delivery keeps its state; it only learns its UID. */
		if (!intent) {
			e->luid = (uint32_t)match;
			continue;
		}
		rc = journal_delivered(env->journal, e, box.uidvalidity, (uint32_t)match);
		if (rc != 0) {
			rc = sync_journal_failed(env, rc);
			break;
		}
		counts->reconciled++;
		entry_list_add(claimed, e);
		log_info("remote UID %u was delivered before the interruption (local UID %u)",
			 e->ruid, (uint32_t)match);
	}
out:
	free(targets.v);
	uid_list_free(&probe.uids);
	free(probe.sizes);
	return rc;
}

/* One race needs care: when the previous run died with a delivery on the
   wire, the server may still be saving it - it has the data, and our
   disappearance does not cancel the command.  Abandoning then would
   deliver twice.  So the probe is repeated until every such intent is
   found or RECONCILE_GRACE seconds have passed since the previous run's
   last sign of life (its last write of message data, a heartbeat while
   it waited for an answer, or its exit when it ended by itself).

   That time is a wall-clock one (a file's mtime): the time left to wait
   is taken from it once, bounded by the grace itself, and counted on the
   monotonic clock, so a clock stepped back cannot turn ten seconds into
   an hour. */
int reconcile_folder(struct sync_env *env, const struct folder_pair *fp,
		     struct sync_counts *counts)
{
	struct entry_list intents, claimed, waiting = { 0 };
	size_t left = 0;
	int rc = 0;

	sync_entries(env, fp->remote, J_INTENT, 0, true, &intents);
	if (intents.n > 0)
		log_info("reconciling %zu message(s) whose delivery a previous run did not confirm",
			 intents.n);
	if (intents.n == 0 || env->dry_run) {
		entry_list_free(&intents);
		return 0;
	}
	/* Only what was on the wire is worth waiting for: with LMTP that is
	   one message, not the rest of its batch. */
	for (size_t i = 0; i < intents.n; i++)
		if (journal_in_flight(env->journal, intents.v[i]))
			entry_list_add(&waiting, intents.v[i]);
	double wait = 0;
	if (waiting.n > 0) {
		wait = env->last_alive + RECONCILE_GRACE - clock_now(CLOCK_REALTIME);
		wait = wait < 0 ? 0 : wait > RECONCILE_GRACE ? RECONCILE_GRACE : wait;
	}
	double deadline = clock_now(CLOCK_MONOTONIC) + wait;
	sync_entries(env, fp->remote, J_DELIVERED, 0, true, &claimed);
	for (;;) {
		rc = probe_intents(env, fp, &intents, &waiting, &claimed, counts, &left);
		if (rc != 0 || left == 0 || clock_now(CLOCK_MONOTONIC) >= deadline)
			break;
		parallel_nap(250);
	}
	for (size_t i = 0; i < intents.n && rc == 0; i++) {
		if (intents.v[i]->state != J_INTENT)
			continue;
		if ((rc = journal_abandon(env->journal, intents.v[i])) != 0)
			rc = sync_journal_failed(env, rc);
	}
	if (rc == 0 && (rc = journal_sync(env->journal)) != 0)
		rc = sync_journal_failed(env, rc);
	entry_list_free(&waiting);
	entry_list_free(&claimed);
	entry_list_free(&intents);
	return rc;
}
