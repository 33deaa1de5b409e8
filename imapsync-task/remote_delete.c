/* remote_delete.c - deletion on the remote (see remote_delete.h).
 *
 * Nothing is deleted on the state's word alone: each message is fetched
 * again, unless this run fetched it under that UID itself, and must be
 * the one this task delivered (size and hash recorded at delivery).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "dry_run.h"
#include "exitcode.h"
#include "log.h"
#include "progress.h"
#include "remote_delete.h"
#include "util.h"

struct verify_ctx {
	struct jentry **v;        /* sorted by remote UID */
	size_t n;
	bool *same;               /* per entry: the remote message matched */
	uint32_t bad_uid;         /* first one that did not, 0 if none */
};

static void verify_cb(void *ctx, struct imap_fetched *m)
{
	struct verify_ctx *vc = ctx;
	struct jentry key = { .ruid = m->uid }, *kp = &key;
	struct jentry **hit = bsearch(&kp, vc->v, vc->n, sizeof(*vc->v), cmp_entry_ruid);

	if (hit == NULL || m->body == NULL)
		return;
	size_t i = (size_t)(hit - vc->v);
	if (msgbody_size(m->body) == (*hit)->size && msgbody_hash(m->body) == (*hit)->hash)
		vc->same[i] = true;
	else if (vc->bad_uid == 0)
		vc->bad_uid = m->uid;
}

/* Nothing is deleted on the remote on the state's word alone: each
   message is fetched again and must be the one this task delivered
   (size and hash recorded at delivery), unless this run fetched it under
   that UID itself.  One that differs means the state is not this
   account's (copied, damaged): stop with 65, delete nothing.  One that
   is no longer there is left out.  v is compacted to the proven ones. */
static int verify_before_delete(struct sync_env *env, struct jentry **v, size_t *n_r)
{
	struct verify_ctx vc = { v, *n_r, xcalloc(*n_r + 1, sizeof(bool)), 0 };
	struct imap_result res;
	size_t n = *n_r, w = 0;
	int rc = 0;

	qsort(v, n, sizeof(*v), cmp_entry_ruid);
	for (size_t i = 0; i < n && rc == 0; i += COPY_BATCH) {
		size_t k = n - i < COPY_BATCH ? n - i : COPY_BATCH, m = 0;
		uint32_t *uids = xcalloc(k, sizeof(*uids));
		for (size_t j = 0; j < k; j++) {
			if (v[i + j]->verified)
				vc.same[i + j] = true;
			else
				uids[m++] = v[i + j]->ruid;
		}
		if (m > 0) {
			char *set = uid_list_to_set(uids, m);
			rc = imap_uid_fetch(env->remote, set, "RFC822.SIZE BODY.PEEK[]", verify_cb,
					    &vc, &res);
			free(set);
			if (rc != 0)
				rc = sync_cmd_failed(env, env->remote, rc, &res, "UID FETCH");
		}
		free(uids);
	}
	if (rc == 0 && vc.bad_uid != 0)
		rc = sync_fail(env, EXIT_DATAERR, "remote UID %u is not the message this task's state "
			  "records under that UID: the state does not belong to this account or is "
			  "damaged; nothing was deleted (move the state directory away to rebuild it)",
			  vc.bad_uid);
	for (size_t i = 0; i < n && rc == 0; i++)
		if (vc.same[i])
			v[w++] = v[i];
	free(vc.same);
	*n_r = w;
	return rc;
}


static int expunge_entries(struct sync_env *env, struct jentry **v, size_t n,
			   struct sync_counts *counts)
{
	struct imap_result res;
	int rc;

	if (n == 0)
		return 0;
	/* A dry run checks as the real run does (both only read), so that
	   it names exactly the messages the real run would delete. */
	if ((rc = verify_before_delete(env, v, &n)) != 0 || n == 0)
		return rc;
	bool uidplus = imap_client_has_cap(env->remote, CAP_UIDPLUS);
	if (!uidplus) {
		/* A plain EXPUNGE removes every \Deleted message: only safe
		   when none but ours carries the flag. */
		struct uid_list flagged;
		rc = imap_uid_search(env->remote, SEARCH_DELETED, 0, &flagged, &res);
		size_t foreign = flagged.count;
		uid_list_free(&flagged);
		if (rc != 0)
			return sync_cmd_failed(env, env->remote, rc, &res, "UID SEARCH DELETED");
		if (foreign > 0) {
			log_msg(LOGL_WARNING, "remote has no UIDPLUS and %zu other message(s) "
				"flagged \\Deleted: not deleting, a plain EXPUNGE would remove "
				"them too", foreign);
			return 0;
		}
	}
	if (env->dry_run) {
		for (size_t i = 0; i < n; i++) {
			bool inbox = strcmp(v[i]->mbox, "INBOX") == 0;
			log_info("would delete remote UID %u%s%s", v[i]->ruid,
				 inbox ? "" : " in ", inbox ? "" : v[i]->mbox);
		}
		counts->deleted += n;
		return 0;
	}
	progress_step("deleting %zu message(s) in remote folder %s", n, v[0]->mbox);
	uint32_t *uids = entry_uids(v, n, false);
	rc = imap_uid_store(env->remote, uids, n, true, "\\Deleted", &res);
	if (rc == 0)
		rc = uidplus ? imap_uid_expunge(env->remote, uids, n, &res)
			: imap_expunge(env->remote, &res);
	free(uids);
	if (rc != 0)
		return sync_cmd_failed(env, env->remote, rc, &res, "EXPUNGE");
	for (size_t i = 0; i < n; i++) {
		if ((rc = journal_deleted(env->journal, v[i])) != 0)
			return sync_journal_failed(env, rc);
		counts->deleted++;
	}
	return 0;
}

int delete_after_sync(struct sync_env *env, const struct folder_pair *fp, enum jstate done,
		      struct sync_counts *counts)
{
	struct entry_list l;
	int rc;

	dry_entries(env, fp->remote, done, fp->ruv, &l);
	rc = expunge_entries(env, l.v, l.n, counts);
	entry_list_free(&l);
	return rc;
}

int delete_older_than(struct sync_env *env, const struct folder_pair *fp,
		      struct sync_counts *counts)
{
	struct uid_list old;
	struct imap_result res;
	struct entry_list l = { 0 };
	uint64_t kept = 0;
	int rc;

	rc = imap_uid_search(env->remote, SEARCH_UNDELETED,
			     env->now - (time_t)env->task->delete_older_than_days * 86400,
			     &old, &res);
	if (rc != 0) {
		uid_list_free(&old);
		return sync_cmd_failed(env, env->remote, rc, &res, "UID SEARCH BEFORE");
	}
	for (size_t i = 0; i < old.count; i++) {
		/* In a dry run, what it would have delivered counts too. */
		struct jentry *e = dry_get(env, fp->remote, fp->ruv, old.uids[i]);
		if (e != NULL && (e->state == J_SEEN || e->state == J_DELIVERED))
			entry_list_add(&l, e);
		else
			kept++;
	}
	counts->kept_old += kept;
	if (kept > 0)
		log_info("kept %llu old message(s) that were never imported",
			 (unsigned long long)kept);
	rc = expunge_entries(env, l.v, l.n, counts);
	entry_list_free(&l);
	uid_list_free(&old);
	return rc;
}
