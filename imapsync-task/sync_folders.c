/* sync_folders.c - the all-folders migration (folders = all | all-except):
 * the policy.
 *
 * A run makes the folder plan (folders.c: names translated, special-use
 * folders mapped, exclusions, collisions), then gives each folder one
 * pass:
 *
 *   STATUS             unchanged since the last pass (same UIDVALIDITY,
 *                      UIDNEXT and HIGHESTMODSEQ)? then nothing more.
 *   EXAMINE | SELECT   the remote folder; settle a crash's leftovers
 *                      (reconcile.c)
 *   UID FETCH 1:* FLAGS  the remote's messages and their flags
 *   copy               every message without a journal entry, through
 *                      the one copy path (copy.c); where no mapping
 *                      exists, a local message of the same content is
 *                      claimed instead (match.h's local pool)
 *   flags              three-way: a flag the remote changed since the
 *                      last pass changes locally; what the local user
 *                      changed is never reverted
 *   record, delete, verify
 *
 * Entries go INTENT -> DELIVERED [-> DELETED]; nothing is ever deleted
 * locally, and a message the local user deleted is not copied again (its
 * entry stays).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "exitcode.h"
#include "folders.h"
#include "log.h"
#include "match.h"
#include "mutf7.h"
#include "parallel.h"
#include "progress.h"
#include "reconcile.h"
#include "remote_delete.h"
#include "sync.h"
#include "util.h"

/* The remote's messages as the pass found them. */
struct remote_msg {
	uint32_t uid;
	char *flags;       /* canonical, space-separated, \Recent dropped */
};

struct remote_list {
	struct remote_msg *v;
	size_t n, cap;
};

static void list_cb(void *ctx, struct imap_fetched *m)
{
	struct remote_list *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n].uid = m->uid;
	l->v[l->n].flags = xstrdup(m->flags);
	l->n++;
}

static void remote_list_free(struct remote_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].flags);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Does the space-separated set have this flag? */
static bool has_flag(const char *set, const char *flag)
{
	size_t len = strlen(flag);

	for (const char *p = set; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");
		if (n == len && strncasecmp(p, flag, len) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

/* The flags of a that b lacks, space-separated; \Deleted never: a
   remote expunge-to-be must not mark the local copy. */
static char *flags_minus(const char *a, const char *b)
{
	struct buf out = { 0 };

	for (const char *p = a; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");
		char *one = xstrndup(p, n);
		if (!has_flag(b, one) && strcasecmp(one, "\\Deleted") != 0)
			buf_appendf(&out, "%s%s", out.len ? " " : "", one);
		free(one);
		p += n;
		p += strspn(p, " ");
	}
	buf_append(&out, "", 1);
	return (char *)out.data;
}

/* ------------------------------------------------------------------ */
/* the plan                                                            */

static void to_entries(const struct imap_list_entry *l, size_t n, struct folder_entry **v_r)
{
	struct folder_entry *v = xcalloc(n + 1, sizeof(*v));

	for (size_t i = 0; i < n; i++)
		v[i] = (struct folder_entry){ l[i].name, l[i].delim, l[i].attrs };
	*v_r = v;
}

struct side {
	struct imap_list_entry *list;
	size_t n;
	struct folder_entry *entries;
	char prefix[256];
	char delim;
};

static int read_side(struct sync_env *env, struct imap_client *c, struct side *s)
{
	struct imap_result res;
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = imap_namespace(c, s->prefix, sizeof(s->prefix), &s->delim, &res)) != 0)
		return sync_cmd_failed(env, c, rc, &res, "NAMESPACE");
	if ((rc = imap_list(c, "*", &s->list, &s->n, &res)) != 0)
		return sync_cmd_failed(env, c, rc, &res, "LIST");
	to_entries(s->list, s->n, &s->entries);
	return 0;
}

static void side_free(struct side *s)
{
	imap_list_free(s->list, s->n);
	free(s->entries);
}

static bool excluded_cb(void *ctx, const char *utf8, char **why_r)
{
	const struct task *t = ctx;
	int err = 0;

	*why_r = NULL;
	const char *pattern = task_folder_exclude_match(t, utf8, &err);
	if (pattern == NULL) {
		if (err != 0) {
			char buf[128];
			task_match_strerror(err, buf, sizeof(buf));
			log_msg(LOGL_WARNING, "%s: exclude pattern failed (%s); the folder is "
				"left out", utf8, buf);
			*why_r = xstrdup(buf);
			return true;
		}
		return false;
	}
	*why_r = xasprintf("exclude = %s", pattern);
	return true;
}

static const char *action_text(const struct plan_folder *f)
{
	switch (f->action) {
	case PLAN_COPY: return f->create ? "create, copy" : "copy";
	case PLAN_EXCLUDED: return "excluded";
	case PLAN_PARENT_ONLY: return "parent only (\\Noselect)";
	case PLAN_COLLISION: return "not copied: another remote folder maps to this name";
	case PLAN_BAD_NAME: return "not copied: the name cannot be translated";
	case PLAN_OTHER_NAMESPACE: return "left out (not the personal namespace)";
	}
	return "?";
}

static int make_plan(struct sync_env *env, struct folder_plan *plan)
{
	struct side r, l;
	int rc;

	if ((rc = read_side(env, env->remote, &r)) != 0) {
		side_free(&r);
		return rc;
	}
	if ((rc = read_side(env, env->local_imap, &l)) != 0) {
		side_free(&r);
		side_free(&l);
		return rc;
	}
	/* Names in modified UTF-7 on both sides: UTF8=ACCEPT is not enabled. */
	struct folder_side rs = { .v = r.entries, .n = r.n, .delim = r.delim, .prefix = r.prefix };
	struct folder_side ls = { .v = l.entries, .n = l.n, .delim = l.delim, .prefix = l.prefix };
	folder_plan_make(&rs, &ls, excluded_cb, (void *)env->task, plan);
	side_free(&r);
	side_free(&l);
	for (size_t i = 0; i < plan->n; i++) {
		const struct plan_folder *f = &plan->v[i];
		bool problem = f->action == PLAN_COLLISION || f->action == PLAN_BAD_NAME;
		/* The remote name as the remote shows it (its prefix and
		   delimiter), in UTF-8. */
		char *shown = mutf7_to_utf8(f->remote_wire, strlen(f->remote_wire));
		log_msg(problem ? LOGL_WARNING : LOGL_INFO, "plan: %s -> %s: %s%s%s",
			shown != NULL ? shown : f->remote_wire,
			f->local_utf8 ? f->local_utf8 : "-", action_text(f),
			f->why ? ": " : "", f->why ? f->why : "");
		free(shown);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* one folder                                                          */

struct pass {
	struct sync_env *env;
	const struct plan_folder *pf;
	struct folder_pair fp;
	struct remote_list remote;     /* every remote message and its flags */
	struct imap_mailbox rbox;
	struct sync_counts *counts;
	uint64_t missing;              /* remote messages not local at the end */
};

static int create_local(struct sync_env *env, const struct plan_folder *pf)
{
	struct imap_result res;
	int rc;

	if (env->dry_run)
		return 0;
	rc = imap_create(env->local_imap, pf->local_wire, &res);
	if (rc != 0 && strcmp(res.code, "ALREADYEXISTS") != 0)
		return sync_cmd_failed(env, env->local_imap, rc, &res, "CREATE");
	if ((rc = imap_subscribe(env->local_imap, pf->local_wire, &res)) != 0)
		log_msg(LOGL_WARNING, "local: SUBSCRIBE %s failed: %s", pf->local_utf8, res.text);
	log_info("created local folder %s", pf->local_utf8);
	return 0;
}

/* Unchanged since the last pass: one STATUS says so. */
static bool unchanged(struct pass *p)
{
	struct sync_env *env = p->env;
	struct jfolder_rec rec;
	struct imap_mailbox st;
	struct imap_result res;
	struct entry_list intents;

	if (env->task->delete_mode != DELETE_NEVER ||
	    !journal_folder_record(env->journal, p->fp.remote, &rec) ||
	    imap_status(env->remote, p->fp.remote_wire, &st, &res) != 0)
		return false;
	sync_entries(env, p->fp.remote, J_INTENT, 0, true, &intents);
	bool pending = intents.n > 0;
	entry_list_free(&intents);
	return !pending && st.uidvalidity == rec.ruv && st.uidnext == rec.maxuid + 1 &&
		st.highestmodseq != 0 && st.highestmodseq == rec.modseq;
}

static bool is_candidate(struct pass *p, const struct remote_msg *m)
{
	/* \Deleted at the remote: about to be expunged there (FAULTS 37). */
	return !has_flag(m->flags, "\\Deleted") &&
		journal_get(p->env->journal, p->fp.remote, p->fp.ruv, m->uid) == NULL;
}

/* Where the journal knows nothing of this folder (first pass, lost
   state, a new remote UIDVALIDITY) and the local folder holds mail, the
   copy path may claim local messages instead of copying (match.h). */
static int need_pool(struct pass *p, bool *need_r)
{
	struct jfolder_rec rec;

	*need_r = !journal_folder_record(p->env->journal, p->fp.remote, &rec) ||
		rec.ruv != p->fp.ruv;
	return 0;
}

static int copy_new(struct pass *p)
{
	struct sync_env *env = p->env;
	struct local_pool pool = { 0 };
	struct stale_set stale;
	struct imap_result res;
	uint32_t *uids = xcalloc(p->remote.n + 1, sizeof(*uids));
	size_t n = 0;
	bool use_pool;
	int rc = 0;

	for (size_t i = 0; i < p->remote.n; i++)
		if (is_candidate(p, &p->remote.v[i]))
			uids[n++] = p->remote.v[i].uid;
	if (n == 0) {
		free(uids);
		return 0;
	}
	need_pool(p, &use_pool);
	stale_collect(env->journal, p->fp.remote, p->fp.ruv, &stale);
	if (use_pool && !p->pf->create &&
	    (rc = local_pool_load(env->local_imap, p->fp.local, env->journal, p->fp.remote,
				  &pool, &res)) != 0)
		rc = sync_cmd_failed(env, env->local_imap, rc, &res, "EXAMINE");
	log_info("%zu message(s) to copy", n);
	progress_begin_folder(p->fp.remote, n);
	if (rc == 0)
		rc = copy_uids(env, &p->fp, uids, n, &stale,
			       use_pool && !p->pf->create ? &pool : NULL, p->counts, NULL, NULL);
	progress_end();
	local_pool_free(&pool);
	stale_free(&stale);
	free(uids);
	return rc;
}

/* Three-way: for each message copied before, the flags the remote has
   now against those last synced.  Only what the remote changed is
   applied to the local copy, so a change the local user made (read,
   flagged, a keyword) is never reverted. */
static int sync_flags(struct pass *p)
{
	struct sync_env *env = p->env;
	struct imap_mailbox lbox;
	struct imap_result res;
	bool selected = false;
	int rc = 0;

	for (size_t i = 0; i < p->remote.n && rc == 0; i++) {
		const struct remote_msg *m = &p->remote.v[i];
		struct jentry *e = journal_get(env->journal, p->fp.remote, p->fp.ruv, m->uid);
		if (e == NULL || e->state != J_DELIVERED || e->flags == NULL ||
		    strcmp(e->flags, m->flags) == 0)
			continue;
		char *add = flags_minus(m->flags, e->flags), *del = flags_minus(e->flags, m->flags);
		if (!env->dry_run && e->luid != 0 && (add[0] != '\0' || del[0] != '\0')) {
			if (!selected) {
				rc = imap_select(env->local_imap, p->fp.local, false, &lbox, &res);
				if (rc != 0)
					rc = sync_cmd_failed(env, env->local_imap, rc, &res, "SELECT");
				selected = true;
			}
			if (rc == 0 && e->luv == lbox.uidvalidity && add[0] != '\0')
				rc = imap_uid_store(env->local_imap, &e->luid, 1, true, add, &res);
			if (rc == 0 && e->luv == lbox.uidvalidity && del[0] != '\0')
				rc = imap_uid_store(env->local_imap, &e->luid, 1, false, del, &res);
			if (rc != 0 && res.status != IMAP_STATUS_NONE)
				rc = sync_cmd_failed(env, env->local_imap, rc, &res, "UID STORE");
		}
		if (env->dry_run)
			log_info("would change the flags of remote UID %u: +(%s) -(%s)", m->uid,
				 add, del);
		else if (rc == 0 && (rc = journal_set_flags(env->journal, e, m->flags)) != 0)
			rc = sync_journal_failed(env, rc);
		free(add);
		free(del);
	}
	return rc;
}

/* Every remote message in scope (not \Deleted) has its local copy, or
   was skipped for good (recorded, and counted as skipped). */
static void verify(struct pass *p)
{
	uint64_t n = 0;

	if (p->env->dry_run)
		return;   /* nothing was copied: nothing to compare */
	for (size_t i = 0; i < p->remote.n; i++) {
		const struct remote_msg *m = &p->remote.v[i];
		if (has_flag(m->flags, "\\Deleted"))
			continue;
		n++;
		struct jentry *e = journal_get(p->env->journal, p->fp.remote, p->fp.ruv, m->uid);
		if (e == NULL || e->state == J_INTENT)
			p->missing++;
	}
	if (p->missing == 0)
		log_info("verify: all %llu message(s) of the remote folder are in the local "
			 "account", (unsigned long long)n);
	else
		log_msg(LOGL_WARNING, "verify: %llu of %llu message(s) of the remote folder are "
			"not in the local account", (unsigned long long)p->missing,
			(unsigned long long)n);
}

static int pass_folder(struct pass *p)
{
	struct sync_env *env = p->env;
	struct imap_result res;
	bool readonly = env->dry_run || env->task->delete_mode == DELETE_NEVER;
	int rc;

	progress_step("%s remote folder %s", readonly ? "examining" : "selecting", p->fp.remote);
	rc = imap_select(env->remote, p->fp.remote_wire, readonly, &p->rbox, &res);
	if (rc != 0)
		return sync_cmd_failed(env, env->remote, rc, &res, readonly ? "EXAMINE" : "SELECT");
	p->fp.ruv = p->rbox.uidvalidity;
	if (!p->pf->create && (rc = reconcile_folder(env, &p->fp, p->counts)) != 0)
		return rc;
	if (p->rbox.exists > 0 &&
	    (rc = imap_uid_fetch(env->remote, "1:*", "FLAGS", list_cb, &p->remote, &res)) != 0)
		return sync_cmd_failed(env, env->remote, rc, &res, "UID FETCH");
	if ((rc = copy_new(p)) != 0 || (rc = sync_flags(p)) != 0)
		return rc;
	verify(p);
	if (!env->dry_run) {
		struct imap_mailbox lst;
		struct jfolder_rec rec = { .ruv = p->fp.ruv, .maxuid = p->rbox.uidnext - 1,
					   .modseq = p->rbox.highestmodseq };
		if (imap_status(env->local_imap, p->fp.local, &lst, &res) == 0)
			rec.luv = lst.uidvalidity;
		if ((rc = journal_set_folder_record(env->journal, p->fp.remote, &rec)) != 0)
			return sync_journal_failed(env, rc);
	}
	/* A dry run predicts the deletions too: what it would have copied
	   counts as delivered (dry_run.h). */
	if (env->task->delete_mode == DELETE_AFTER_SYNC)
		return delete_after_sync(env, &p->fp, J_DELIVERED, p->counts);
	if (env->task->delete_mode == DELETE_OLDER_THAN)
		return delete_older_than(env, &p->fp, p->counts);
	return 0;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

/* A folder's failure is its own: the run goes on with the others and
   ends with the most severe code.  A lost connection ends the run. */
static bool run_can_go_on(struct sync_env *env)
{
	return !imap_client_failed(env->remote, NULL) &&
		!imap_client_failed(env->local_imap, NULL) &&
		(env->stop == NULL || !*env->stop);
}

/* One worker's share of the run: its own connection pair and first
   error; the counters are merged at the end. */
struct worker {
	struct sync_env *env;     /* the run's (worker 0), or own */
	struct sync_env own;
	struct sync_counts counts;
	uint64_t missing, scope;
	int worst;
	bool own_pair;            /* opened for this worker */
};

struct run {
	struct sync_env *env;           /* the run's, with the first pair */
	const struct folder_plan *plan;
	const bool *pass;               /* plan.v[i] needs a pass */
	size_t next;                    /* the next folder to take */
	struct worker *w;
};

static void note_rc(struct worker *w, int rc)
{
	w->worst = w->worst > rc ? w->worst : rc;
	w->counts.errors++;
}

/* The folder's step of the run: create it locally if needed, then its
   pass.  A folder's failure is told with its name and is its own. */
static void run_folder(struct worker *w, const struct plan_folder *pf)
{
	struct sync_env *env = w->env;
	int rc;

	/* A folder to copy gets its local folder first.  Parents are not
	   created on their own: CREATE of a child makes them, as \Noselect
	   parents, which is what they are on the remote. */
	if (pf->create && (rc = create_local(env, pf)) != 0) {
		log_msg(LOGL_WARNING, "folder %s: %s", pf->local_utf8, env->error);
		if (run_can_go_on(env))
			env->error[0] = '\0';
		note_rc(w, rc);
		return;
	}
	struct pass p = { .env = env, .pf = pf, .counts = &w->counts,
			  .fp = { pf->remote_utf8, pf->remote_wire, pf->local_wire, 0 } };
	log_set_folder(pf->remote_utf8);
	w->scope++;
	rc = pass_folder(&p);
	w->missing += p.missing;
	remote_list_free(&p.remote);
	log_set_folder(NULL);
	if (rc != 0) {
		/* Told now, with its folder; the next folder starts clean. */
		log_msg(LOGL_WARNING, "folder %s: %s", pf->remote_utf8, env->error);
		if (run_can_go_on(env))
			env->error[0] = '\0';
		note_rc(w, rc);
	}
}

/* A worker takes the next folder until none is left, or its connection
   pair is lost (the others go on with the rest). */
static void work(void *ctx, unsigned i)
{
	struct run *r = ctx;
	struct worker *w = &r->w[i];

	if (i > 0) {
		w->own = *r->env;
		w->env = &w->own;
		w->own.error[0] = '\0';
		w->own.protocol_errors = 0;
		w->own.remote = w->own.local_imap = NULL;
		int rc = r->env->open_pair(r->env->pair_ctx, &w->own.remote, &w->own.local_imap);
		if (rc != 0) {
			log_msg(LOGL_WARNING, "connection pair %u not opened; the others copy its "
				"share", i + 1);
			return;
		}
		w->own_pair = true;
		struct imap_result res;
		if (imap_client_has_cap(w->own.remote, CAP_CONDSTORE))
			(void)imap_enable(w->own.remote, "CONDSTORE", &res);
	}
	while (run_can_go_on(w->env) && r->next < r->plan->n) {
		size_t f = r->next++;
		if (r->pass[f])
			run_folder(w, &r->plan->v[f]);
	}
	if (w->own_pair)
		r->env->close_pair(r->env->pair_ctx, &w->own.remote, &w->own.local_imap);
}

/* Which folders need a pass: the plan's copies, less those one STATUS
   shows unchanged since the last pass (no connection pair is opened for
   a run with nothing to do).  Collisions and bad names count as errors
   here.  Returns how many need a pass. */
static size_t choose_passes(struct worker *w0, const struct folder_plan *plan, bool *pass)
{
	size_t n = 0;

	for (size_t i = 0; i < plan->n && run_can_go_on(w0->env); i++) {
		const struct plan_folder *pf = &plan->v[i];
		if (pf->action == PLAN_COLLISION || pf->action == PLAN_BAD_NAME) {
			note_rc(w0, EXIT_CONFIG);
			continue;
		}
		if (pf->action != PLAN_COPY)
			continue;
		struct pass p = { .env = w0->env, .pf = pf,
				  .fp = { pf->remote_utf8, pf->remote_wire, pf->local_wire, 0 } };
		if (!pf->create && unchanged(&p)) {
			log_set_folder(pf->remote_utf8);
			log_info("unchanged since the last run");
			log_set_folder(NULL);
			w0->scope++;
			continue;
		}
		pass[i] = true;
		n++;
	}
	return n;
}

static void merge(struct sync_env *env, struct worker *to, const struct worker *w)
{
	const struct sync_counts *c = &w->counts;

	to->counts.copied += c->copied;
	to->counts.skipped += c->skipped;
	to->counts.deleted += c->deleted;
	to->counts.errors += c->errors;
	to->counts.bytes += c->bytes;
	to->counts.seen_elsewhere += c->seen_elsewhere;
	to->counts.kept_old += c->kept_old;
	to->counts.reconciled += c->reconciled;
	to->missing += w->missing;
	to->scope += w->scope;
	to->worst = to->worst > w->worst ? to->worst : w->worst;
	if (w->env == env)
		return;
	env->protocol_errors += w->own.protocol_errors;
	if (env->error[0] == '\0' && w->own.error[0] != '\0')
		snprintf(env->error, sizeof(env->error), "%s", w->own.error);
}

int sync_folders(struct sync_env *env, struct sync_counts *counts)
{
	struct folder_plan plan = { 0 };
	int worst, rc;

	/* HIGHESTMODSEQ in SELECT answers, for the unchanged-folder check. */
	struct imap_result res;
	if (imap_client_has_cap(env->remote, CAP_CONDSTORE))
		(void)imap_enable(env->remote, "CONDSTORE", &res);
	if ((rc = make_plan(env, &plan)) != 0)
		return rc;
	bool *pass = xcalloc(plan.n + 1, sizeof(*pass));
	unsigned nw = env->task->max_connections;
	struct worker *w = xcalloc(nw, sizeof(*w));
	struct run r = { env, &plan, pass, 0, w };
	/* Worker 0 works with the run's own environment (its first pair
	   and its error); every worker's counters are added at the end. */
	w[0].env = env;
	size_t todo = choose_passes(&w[0], &plan, pass);
	if (env->dry_run || env->open_pair == NULL)
		nw = 1;   /* a dry run changes nothing: no need to hurry */
	if (nw > todo)
		nw = todo > 0 ? (unsigned)todo : 1;
	if (nw > 1)
		log_info("%zu folder(s) to copy, %u side by side", todo, nw);
	parallel_run(nw, work, &r);
	struct worker total = { .counts = *counts };
	for (unsigned i = 0; i < nw; i++)
		merge(env, &total, &w[i]);
	*counts = total.counts;
	worst = total.worst;
	free(w);
	free(pass);
	if (worst == 0 && !run_can_go_on(env) && env->stop != NULL && *env->stop)
		worst = sync_fail(env, EXIT_TEMPFAIL, "stopped by a signal; the next run resumes");
	if (worst == 0 && env->protocol_errors > 0)
		worst = sync_fail(env, EXIT_PROTOCOL, "%u message(s) not taken: the remote server's "
				  "answers for them were incomplete (see the warnings)",
				  env->protocol_errors);
	if (worst == 0 && total.missing > 0)
		worst = sync_fail(env, EXIT_TEMPFAIL, "verify: %llu message(s) are not in the "
				  "local account yet; the next run copies them",
				  (unsigned long long)total.missing);
	if (worst != 0 && env->error[0] == '\0')
		sync_fail(env, worst, "%llu folder error(s); the other folders were copied "
			  "(see the warnings)", (unsigned long long)counts->errors);
	if (worst == 0 && !env->dry_run)
		log_info("verify: every message of the %llu folder(s) copied is in the local "
			 "account", (unsigned long long)total.scope);
	folder_plan_free(&plan);
	return worst;
}
