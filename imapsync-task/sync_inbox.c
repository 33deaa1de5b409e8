/* sync_inbox.c - INBOX-only retrieval (folders = inbox).
 *
 * Candidates are the remote INBOX messages without \Seen and \Deleted.
 * Each goes through the journal states
 *
 *     (none) -> INTENT -> DELIVERED -> SEEN [-> DELETED]
 *
 * and every transition is a journal line written before the step that
 * depends on it.  INTENT lines are fsync'd before the APPEND: after a
 * crash an INTENT means "maybe delivered", and reconcile_intents() looks
 * for the message in the local INBOX (UIDs from the UIDNEXT noted in the
 * intent, same size, same content hash) before anything is sent again.
 * A message is marked \Seen on the remote only once it is DELIVERED, so
 * the \Seen flag never hides a message that is not safely local.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "log.h"
#include "sync.h"
#include "util.h"

#define INBOX "INBOX"

/* jentry.mbox is not const: a writable copy of the name. */
static char inbox_name[] = INBOX;
#define BATCH_MSGS 64
#define STORE_CHUNK 500

struct batch_msg {
	uint32_t uid;
	char flags[512];
	char date[64];
	struct msgbody *body;
	bool fetched;
};

struct batch {
	struct batch_msg *msgs;
	size_t n;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static int fail(struct sync_env *env, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct sync_env *env, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(env->error, sizeof(env->error), fmt, ap);
	va_end(ap);
	return rc;
}

/* The exit code of a failed command, with its side named. */
static int cmd_failed(struct sync_env *env, struct imap_client *c, int rc,
		      const struct imap_result *res, const char *what)
{
	if (res->status == IMAP_STATUS_NONE)
		return fail(env, rc, "%s", res->text);
	return fail(env, rc, "%s: %s failed: %s%s%s%s", imap_client_label(c), what,
		    res->code[0] ? "[" : "", res->code, res->code[0] ? "] " : "", res->text);
}

struct entry_list {
	struct jentry **v;
	size_t n, cap;
	enum jstate state;
	uint32_t ruv;
	bool any_ruv;
};

static void collect_entry(void *ctx, struct jentry *e)
{
	struct entry_list *l = ctx;

	if (strcmp(e->mbox, INBOX) != 0 || e->state != l->state ||
	    (!l->any_ruv && e->ruv != l->ruv))
		return;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = e;
}

static int cmp_entry_ruid(const void *a, const void *b)
{
	const struct jentry *x = *(struct jentry *const *)a, *y = *(struct jentry *const *)b;
	return x->ruid < y->ruid ? -1 : x->ruid > y->ruid;
}

static int cmp_u32_asc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void entries_in_state(struct sync_env *env, enum jstate st, uint32_t ruv,
			     bool any_ruv, struct entry_list *l)
{
	memset(l, 0, sizeof(*l));
	l->state = st;
	l->ruv = ruv;
	l->any_ruv = any_ruv;
	journal_foreach(env->journal, collect_entry, l);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_entry_ruid);
}

/* Run "UID STORE set +FLAGS.SILENT (flag)" over entries, in chunks. */
static int store_flag(struct sync_env *env, struct jentry **v, size_t n, const char *flag)
{
	for (size_t i = 0; i < n; i += STORE_CHUNK) {
		size_t k = n - i < STORE_CHUNK ? n - i : STORE_CHUNK;
		uint32_t *uids = xcalloc(k, sizeof(*uids));
		struct imap_result res;
		for (size_t m = 0; m < k; m++)
			uids[m] = v[i + m]->ruid;
		char *set = uid_list_to_set(uids, k);
		int rc = imap_simple(env->remote, &res, "UID STORE %s +FLAGS.SILENT (%s)", set, flag);
		free(set);
		free(uids);
		if (rc != 0)
			return cmd_failed(env, env->remote, rc, &res, "UID STORE");
	}
	return 0;
}

static int journal_failed(struct sync_env *env, int rc)
{
	return fail(env, rc, "state journal: %s", journal_error(env->journal));
}

/* ------------------------------------------------------------------ */
/* crash reconciliation                                                */

struct local_probe {
	struct uid_list uids;
	uint64_t *sizes;
	size_t nsizes, cap;
	uint64_t want_hash;
	uint64_t want_size;
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

/* Hash of the last n bytes of a body: an LMTP delivery adds
   Return-Path, Delivered-To and Received in front of the original. */
static uint64_t suffix_hash(const struct msgbody *b, uint64_t n)
{
	unsigned char chunk[65536];
	uint64_t h = FNV1A64_INIT, size = msgbody_size(b), off = size - n;

	while (off < size) {
		ssize_t got = msgbody_read(b, off, chunk, sizeof(chunk));
		if (got <= 0)
			return 0;
		h = fnv1a64(h, chunk, (size_t)got);
		off += (uint64_t)got;
	}
	return h;
}

static void probe_hash_cb(void *ctx, struct imap_fetched *m)
{
	struct local_probe *p = ctx;

	if (m->body == NULL)
		return;
	if (!p->suffix)
		p->found = msgbody_hash(m->body) == p->want_hash;
	else if (msgbody_size(m->body) >= p->want_size)
		p->found = suffix_hash(m->body, p->want_size) == p->want_hash;
}

static bool luid_claimed(const struct entry_list *claimed, uint32_t luv, uint32_t luid)
{
	for (size_t i = 0; i < claimed->n; i++)
		if (claimed->v[i]->luv == luv && claimed->v[i]->luid == luid)
			return true;
	return false;
}

static void entry_list_add(struct entry_list *l, struct jentry *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = e;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Look for each unsettled intent in the local INBOX: a message at or
   above the UIDNEXT noted in the intent, of the same size and the same
   content hash, not already claimed by another entry.  Found ones become
   DELIVERED; *left_r counts the rest. */
static int probe_intents(struct sync_env *env, struct entry_list *intents,
			 struct entry_list *claimed, struct sync_counts *counts,
			 size_t *left_r)
{
	struct local_probe probe = { 0 };
	struct imap_mailbox box;
	struct imap_result res;
	uint32_t from = UINT32_MAX;
	int rc;

	*left_r = 0;
	probe.suffix = env->task->delivery == DELIVERY_LMTP;
	rc = imap_select(env->local_imap, INBOX, true, &box, &res);
	if (rc != 0)
		return cmd_failed(env, env->local_imap, rc, &res, "EXAMINE INBOX");
	for (size_t i = 0; i < intents->n; i++) {
		struct jentry *e = intents->v[i];
		/* If the local INBOX was recreated, its UIDs start over. */
		uint32_t start = e->luv == box.uidvalidity && e->luidnext > 0 ? e->luidnext : 1;
		if (e->state == J_INTENT && start < from)
			from = start;
	}
	if (box.exists > 0 && from != UINT32_MAX) {
		char set[32];
		snprintf(set, sizeof(set), "%u:*", from);
		rc = imap_uid_fetch(env->local_imap, set, "RFC822.SIZE", probe_size_cb, &probe, &res);
		if (rc != 0) {
			rc = cmd_failed(env, env->local_imap, rc, &res, "UID FETCH");
			goto out;
		}
	}
	for (size_t i = 0; i < intents->n && rc == 0; i++) {
		struct jentry *e = intents->v[i];
		uint32_t start = e->luv == box.uidvalidity ? e->luidnext : 1, match = 0;

		if (e->state != J_INTENT)
			continue;
		for (size_t k = 0; k < probe.uids.count && match == 0 && rc == 0; k++) {
			uint32_t luid = probe.uids.uids[k];
			char one[16];

			bool size_ok = probe.suffix ? probe.sizes[k] >= e->size : probe.sizes[k] == e->size;
			if (!size_ok || luid < start ||
			    luid_claimed(claimed, box.uidvalidity, luid))
				continue;
			snprintf(one, sizeof(one), "%u", luid);
			probe.want_hash = e->hash;
			probe.want_size = e->size;
			probe.found = false;
			rc = imap_uid_fetch(env->local_imap, one, "BODY.PEEK[]", probe_hash_cb, &probe, &res);
			if (rc != 0)
				rc = cmd_failed(env, env->local_imap, rc, &res, "UID FETCH");
			else if (probe.found)
				match = luid;
		}
		if (rc != 0)
			break;
		if (match == 0) {
			(*left_r)++;
			continue;
		}
		if ((rc = journal_delivered(env->journal, e, box.uidvalidity, match)) != 0) {
			rc = journal_failed(env, rc);
			break;
		}
		counts->reconciled++;
		entry_list_add(claimed, e);
		log_info("remote UID %u was delivered before the interruption (local UID %u)",
			 e->ruid, match);
	}
out:
	uid_list_free(&probe.uids);
	free(probe.sizes);
	return rc;
}

/* Settle INTENT entries left by a crash: delivered (found in the local
   INBOX by size and content) or abandoned (so the message is a
   candidate again).  Never re-send before this has run.

   One race needs care: when the previous run died with an APPEND on the
   wire, the server may still be saving it - it has the data, and our
   disappearance does not cancel the command.  Abandoning then would
   deliver twice.  So when the journal says an APPEND was unsettled, the
   probe is repeated until every intent is found or RECONCILE_GRACE
   seconds have passed since the previous run's last sign of life (its
   last write of message data, or its exit when it ended by itself). */
#define RECONCILE_GRACE 10.0

static int reconcile_intents(struct sync_env *env, struct sync_counts *counts)
{
	struct entry_list intents, claimed;
	size_t left = 0;
	int rc = 0;

	entries_in_state(env, J_INTENT, 0, true, &intents);
	if (intents.n == 0) {
		free(intents.v);
		return 0;
	}
	log_info("reconciling %zu message(s) whose delivery a previous run did not confirm",
		 intents.n);
	if (env->dry_run) {
		free(intents.v);
		return 0;
	}
	double deadline = journal_append_in_flight(env->journal)
		? env->last_alive + RECONCILE_GRACE : 0;
	entries_in_state(env, J_DELIVERED, 0, true, &claimed);
	for (;;) {
		rc = probe_intents(env, &intents, &claimed, counts, &left);
		if (rc != 0 || left == 0 || wall_now() >= deadline)
			break;
		struct timespec nap = { 0, 250 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	}
	for (size_t i = 0; i < intents.n && rc == 0; i++) {
		if (intents.v[i]->state != J_INTENT)
			continue;
		if ((rc = journal_abandon(env->journal, intents.v[i])) != 0)
			rc = journal_failed(env, rc);
	}
	if (rc == 0 && (rc = journal_sync(env->journal)) != 0)
		rc = journal_failed(env, rc);
	free(claimed.v);
	free(intents.v);
	return rc;
}

/* delivery = sieve: run the user's active Sieve script on exactly the
   messages this task appended (FILTER SIEVE DELIVERY UID set), then
   UID EXPUNGE exactly those UIDs: Dovecot flags \Deleted the copies the
   script filed elsewhere, and a bare EXPUNGE would also remove messages
   the user had flagged \Deleted.

   A crash between FILTER and the journal's FILTERED line must not run
   the script twice (a fileinto :copy would file a second copy), so the
   FILTERING line is synced first; an entry found FILTERING afterwards
   is only expunged-if-deleted, never filtered again.  At worst such a
   message stays unfiltered in the INBOX: never lost, never doubled. */
static int expunge_local(struct sync_env *env, struct jentry **v, size_t n)
{
	struct imap_result res;
	int rc = 0;

	if (n == 0)
		return 0;
	uint32_t *uids = xcalloc(n, sizeof(*uids));
	for (size_t i = 0; i < n; i++)
		uids[i] = v[i]->luid;
	qsort(uids, n, sizeof(*uids), cmp_u32_asc);
	char *set = uid_list_to_set(uids, n);
	rc = imap_simple(env->local_imap, &res, "UID EXPUNGE %s", set);
	free(set);
	free(uids);
	if (rc != 0)
		return cmd_failed(env, env->local_imap, rc, &res, "UID EXPUNGE");
	return 0;
}

static int filter_delivered(struct sync_env *env, uint32_t ruv)
{
	struct entry_list pending, leftover;
	struct imap_mailbox box;
	struct imap_result res;
	int rc;

	entries_in_state(env, J_DELIVERED, ruv, false, &pending);
	entries_in_state(env, J_FILTERING, 0, true, &leftover);
	if (pending.n + leftover.n == 0 || env->dry_run) {
		if (pending.n > 0)
			log_info("would run the Sieve script on %zu delivered message(s)", pending.n);
		free(pending.v);
		free(leftover.v);
		return 0;
	}
	if (!imap_client_has_cap(env->local_imap, CAP_FILTER_SIEVE)) {
		free(pending.v);
		free(leftover.v);
		return fail(env, EXIT_CONFIG, "local: delivery = sieve needs FILTER=SIEVE "
			    "(Pigeonhole imap_filter_sieve plugin) on the local server");
	}
	rc = imap_select(env->local_imap, INBOX, false, &box, &res);
	if (rc != 0) {
		rc = cmd_failed(env, env->local_imap, rc, &res, "SELECT INBOX");
		goto out;
	}
	/* Leftovers of an interrupted run: expunge what the script moved. */
	size_t w = 0;
	for (size_t i = 0; i < leftover.n; i++)
		if (leftover.v[i]->luv == box.uidvalidity && leftover.v[i]->luid != 0)
			leftover.v[w++] = leftover.v[i];
	if (w > 0)
		log_msg(LOGL_WARNING, "%zu message(s) were being filtered when a run was interrupted; "
			"not filtering them again", w);
	if ((rc = expunge_local(env, leftover.v, w)) != 0)
		goto out;
	entries_in_state(env, J_FILTERING, 0, true, &leftover);
	for (size_t i = 0; i < leftover.n && rc == 0; i++)
		if ((rc = journal_filtered(env->journal, leftover.v[i])) != 0)
			rc = journal_failed(env, rc);
	/* Fresh deliveries: only those whose local UID is known and valid. */
	w = 0;
	for (size_t i = 0; i < pending.n && rc == 0; i++) {
		struct jentry *e = pending.v[i];
		if (e->luv != box.uidvalidity || e->luid == 0) {
			log_msg(LOGL_WARNING, "remote UID %u: local UID unknown, not filtered", e->ruid);
			rc = journal_filtered(env->journal, e);
		} else {
			pending.v[w++] = e;
			rc = journal_filtering(env->journal, e);
		}
		if (rc != 0)
			rc = journal_failed(env, rc);
	}
	if (rc != 0 || w == 0)
		goto out;
	if ((rc = journal_sync(env->journal)) != 0) {
		rc = journal_failed(env, rc);
		goto out;
	}
	uint32_t *uids = xcalloc(w, sizeof(*uids));
	for (size_t i = 0; i < w; i++)
		uids[i] = pending.v[i]->luid;
	qsort(uids, w, sizeof(*uids), cmp_u32_asc);
	char *set = uid_list_to_set(uids, w);
	free(uids);
	rc = imap_simple(env->local_imap, &res, "FILTER SIEVE DELIVERY UID %s", set);
	free(set);
	journal_killpoint();
	if (rc != 0 && res.status == IMAP_STATUS_NONE) {
		rc = cmd_failed(env, env->local_imap, rc, &res, "FILTER SIEVE");
		goto out;
	}
	if (rc != 0) {
		/* The script failed: the messages simply stay in the INBOX. */
		log_msg(LOGL_WARNING, "local: FILTER SIEVE failed, messages stay in INBOX: %s", res.text);
		rc = 0;
	}
	if ((rc = expunge_local(env, pending.v, w)) != 0)
		goto out;
	for (size_t i = 0; i < w && rc == 0; i++)
		if ((rc = journal_filtered(env->journal, pending.v[i])) != 0)
			rc = journal_failed(env, rc);
out:
	free(pending.v);
	free(leftover.v);
	return rc;
}

/* Delivered (and, with sieve, filtered) but not yet \Seen on the
   remote: mark them now. */
static int mark_delivered_seen(struct sync_env *env, uint32_t ruv)
{
	struct entry_list l, f;
	int rc = 0;

	if (env->task->delivery == DELIVERY_SIEVE && !env->dry_run &&
	    (rc = filter_delivered(env, ruv)) != 0)
		return rc;
	entries_in_state(env, env->task->delivery == DELIVERY_SIEVE && !env->dry_run
			 ? J_FILTERED : J_DELIVERED, ruv, false, &l);
	/* FILTERED entries left by an earlier sieve-mode run count too. */
	entries_in_state(env, J_FILTERED, ruv, false, &f);
	if (env->task->delivery != DELIVERY_SIEVE || env->dry_run)
		for (size_t i = 0; i < f.n; i++)
			entry_list_add(&l, f.v[i]);
	free(f.v);
	if (l.n > 0 && env->dry_run) {
		log_info("would mark %zu delivered message(s) \\Seen on the remote", l.n);
	} else if (l.n > 0) {
		rc = store_flag(env, l.v, l.n, "\\Seen");
		for (size_t i = 0; i < l.n && rc == 0; i++)
			if ((rc = journal_seen(env->journal, l.v[i])) != 0)
				rc = journal_failed(env, rc);
	}
	free(l.v);
	return rc;
}

/* ------------------------------------------------------------------ */
/* a changed remote UIDVALIDITY                                         */

/* Entries recorded under another UIDVALIDITY cannot be mapped by UID.
   Their content (size + hash) still identifies them: a candidate that
   matches one was delivered already and is only marked \Seen.  This is
   what keeps a UIDVALIDITY change from causing a redelivery storm. */
struct stale_set {
	struct jentry **v;
	size_t n, cap;
	uint32_t ruv;     /* the current UIDVALIDITY: others are stale */
};

static void collect_stale(void *ctx, struct jentry *e)
{
	struct stale_set *s = ctx;

	if (strcmp(e->mbox, INBOX) != 0 || e->ruv == s->ruv ||
	    (e->state != J_DELIVERED && e->state != J_SEEN))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n++] = e;
}

/* After a complete run under the new UIDVALIDITY every old message that
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
		return journal_failed(env, rc);
	if (n > 0)
		log_info("forgot %zu entries recorded under the previous UIDVALIDITY", n);
	return 0;
}

/* Entries whose remote message no longer exists can never matter again:
   drop them, so the state does not grow with every message ever taken.
   Only with ESEARCH, whose answer stays one short line however large
   the mailbox is. */
static int forget_gone(struct sync_env *env, uint32_t ruv)
{
	struct uid_list all;
	struct imap_result res;
	struct entry_list seen, skipped;
	int rc;

	if (env->dry_run || !imap_client_has_cap(env->remote, CAP_ESEARCH))
		return 0;
	rc = imap_uid_search(env->remote, "ALL", &all, &res);
	if (rc != 0) {
		uid_list_free(&all);
		return cmd_failed(env, env->remote, rc, &res, "UID SEARCH ALL");
	}
	entries_in_state(env, J_SEEN, ruv, false, &seen);
	entries_in_state(env, J_SKIPPED, ruv, false, &skipped);
	for (size_t i = 0; i < skipped.n; i++)
		entry_list_add(&seen, skipped.v[i]);
	for (size_t i = 0; i < seen.n && rc == 0; i++) {
		uint32_t uid = seen.v[i]->ruid;
		if (bsearch(&uid, all.uids, all.count, sizeof(uint32_t), cmp_u32_asc) == NULL &&
		    (rc = journal_forget(env->journal, seen.v[i])) != 0)
			rc = journal_failed(env, rc);
	}
	free(seen.v);
	free(skipped.v);
	uid_list_free(&all);
	return rc;
}

static struct jentry *stale_match(struct stale_set *s, uint64_t size, uint64_t hash)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i] != NULL && s->v[i]->size == size && s->v[i]->hash == hash) {
			struct jentry *e = s->v[i];
			s->v[i] = NULL;  /* one stale entry matches one message */
			return e;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* delivery                                                            */

static void batch_fetch_cb(void *ctx, struct imap_fetched *m)
{
	struct batch *b = ctx;

	for (size_t i = 0; i < b->n; i++) {
		struct batch_msg *bm = &b->msgs[i];
		if (bm->uid != m->uid || bm->fetched || m->body == NULL)
			continue;
		bm->fetched = true;
		bm->body = m->body;
		m->body = NULL;
		snprintf(bm->flags, sizeof(bm->flags), "%s", m->flags);
		snprintf(bm->date, sizeof(bm->date), "%s", m->internaldate);
		return;
	}
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		msgbody_free(&b->msgs[i].body);
	free(b->msgs);
	memset(b, 0, sizeof(*b));
}

/* Deliver msgs[0..n) (already INTENT and synced) to the local INBOX.
   On return each delivered one is DELIVERED; with MULTIAPPEND a refusal
   means none was saved, so their intents are abandoned. */
static int append_batch(struct sync_env *env, struct batch_msg **msgs, struct jentry **ents,
			size_t n, struct sync_counts *counts, bool *per_message_r)
{
	struct imap_append_msg *am = xcalloc(n, sizeof(*am));
	uint32_t *luids = xcalloc(n, sizeof(*luids));
	uint32_t luv = 0;
	struct imap_result res;
	int rc;

	*per_message_r = false;
	for (size_t i = 0; i < n; i++) {
		am[i].flags = msgs[i]->flags;
		am[i].internaldate = msgs[i]->date[0] ? msgs[i]->date : NULL;
		am[i].body = msgs[i]->body;
	}
	if ((rc = journal_append_started(env->journal, INBOX)) != 0) {
		rc = journal_failed(env, rc);
		goto out;
	}
	rc = imap_append(env->local_imap, INBOX, am, n, &luv, luids, &res);
	journal_killpoint();
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			rc = journal_delivered(env->journal, ents[i], luv, luids[i]);
			if (rc != 0)
				rc = journal_failed(env, rc);
			counts->copied++;
			counts->bytes += msgbody_size(msgs[i]->body);
		}
		if (rc == 0 && (rc = journal_sync(env->journal)) != 0)
			rc = journal_failed(env, rc);
		goto out;
	}
	/* The connection died: the outcome is unknown, the intents stay
	   and the next run reconciles them. */
	if (res.status == IMAP_STATUS_NONE) {
		rc = cmd_failed(env, env->local_imap, rc, &res, "APPEND");
		goto out;
	}
	/* A tagged NO: nothing of this command was saved (RFC 3502 for
	   MULTIAPPEND, RFC 3501 for a single APPEND). */
	bool atomic = n == 1 || imap_client_has_cap(env->local_imap, CAP_MULTIAPPEND);
	uint32_t ruv = ents[0]->ruv;  /* the entries go with the abandon */
	if (atomic) {
		for (size_t i = 0; i < n; i++) {
			int jrc = journal_abandon(env->journal, ents[i]);
			ents[i] = NULL;
			if (jrc != 0) {
				rc = journal_failed(env, jrc);
				goto out;
			}
		}
	}
	if (res.scope == IMAP_SCOPE_MESSAGE && n > 1 && atomic) {
		/* One message spoiled the transaction: retry one by one. */
		*per_message_r = true;
		rc = 0;
	} else if (res.scope == IMAP_SCOPE_MESSAGE && n == 1) {
		log_msg(LOGL_WARNING, "remote UID %u (%llu bytes) refused by the local server, skipped: [%s] %s",
			msgs[0]->uid, (unsigned long long)msgbody_size(msgs[0]->body), res.code, res.text);
		int jrc = journal_skipped(env->journal, INBOX, ruv, msgs[0]->uid,
					  msgbody_size(msgs[0]->body));
		if (jrc != 0) {
			rc = journal_failed(env, jrc);
			goto out;
		}
		counts->skipped++;
		rc = 0;
	} else if (strcmp(res.code, "OVERQUOTA") == 0) {
		rc = fail(env, EXIT_CANTCREAT, "local: mailbox of %s is over quota; "
			  "%zu message(s) not delivered and left unseen on the remote: %s",
			  env->task->local_user, n, res.text);
	} else {
		rc = cmd_failed(env, env->local_imap, rc, &res, "APPEND to INBOX");
	}
out:
	free(am);
	free(luids);
	return rc;
}

/* delivery = lmtp: one message at a time through the LMTP session.  The
   'B' marker before each DATA tells a restarted run that this delivery
   may have completed (see reconcile_intents). */
static int deliver_lmtp(struct sync_env *env, struct batch_msg **msgs, struct jentry **ents,
			size_t n, struct sync_counts *counts)
{
	char err[600], from[512];
	int rc = 0;
	size_t i;

	for (i = 0; i < n && rc == 0; i++) {
		if ((rc = journal_append_started(env->journal, INBOX)) != 0) {
			rc = journal_failed(env, rc);
			break;
		}
		lmtp_envelope_sender(msgs[i]->body, from, sizeof(from));
		enum lmtp_outcome o = lmtp_deliver(env->lmtp, from, env->task->local_user,
						   msgs[i]->body, err, sizeof(err));
		journal_killpoint();
		switch (o) {
		case LMTP_DELIVERED:
			counts->copied++;
			counts->bytes += msgbody_size(msgs[i]->body);
			rc = journal_delivered(env->journal, ents[i], 0, 0);
			break;
		case LMTP_PERMFAIL: {
			uint32_t ruv = ents[i]->ruv;  /* the entry goes with the abandon */
			log_msg(LOGL_WARNING, "remote UID %u skipped: %s", msgs[i]->uid, err);
			counts->skipped++;
			rc = journal_abandon(env->journal, ents[i]);
			ents[i] = NULL;
			if (rc == 0)
				rc = journal_skipped(env->journal, INBOX, ruv, msgs[i]->uid,
						     msgbody_size(msgs[i]->body));
			break;
		}
		case LMTP_OVERQUOTA:
			(void)journal_abandon(env->journal, ents[i]);
			rc = fail(env, EXIT_CANTCREAT, "local: mailbox of %s is over quota; "
				  "the message stays unseen on the remote: %s", env->task->local_user, err);
			break;
		case LMTP_TEMPFAIL:
			(void)journal_abandon(env->journal, ents[i]);
			rc = fail(env, EXIT_TEMPFAIL, "%s", err);
			break;
		case LMTP_LOST:
			/* Unknown outcome: the intent stays for reconciliation. */
			rc = fail(env, EXIT_TEMPFAIL, "%s", err);
			break;
		}
		if (rc == EXIT_IOERR || rc == EXIT_CANTCREAT) {
			if (o == LMTP_DELIVERED || o == LMTP_PERMFAIL)
				rc = journal_failed(env, rc);
		}
	}
	/* Intents never tried are not delivered: drop them. */
	for (; i < n; i++)
		(void)journal_abandon(env->journal, ents[i]);
	int src = journal_sync(env->journal);
	if (rc == 0 && src != 0)
		rc = journal_failed(env, src);
	return rc;
}

/* Fetch, journal and deliver one batch of candidate UIDs. */
static int deliver_batch(struct sync_env *env, uint32_t ruv, const uint32_t *uids,
			 size_t n, struct stale_set *stale, struct sync_counts *counts)
{
	struct batch b = { xcalloc(n, sizeof(struct batch_msg)), n };
	struct batch_msg **todo = xcalloc(n, sizeof(*todo));
	struct jentry **ents = xcalloc(n, sizeof(*ents));
	struct imap_mailbox lbox;
	struct imap_result res;
	size_t ntodo = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		b.msgs[i].uid = uids[i];
	char *set = uid_list_to_set(uids, n);
	rc = imap_uid_fetch(env->remote, set, "FLAGS INTERNALDATE BODY.PEEK[]",
			    batch_fetch_cb, &b, &res);
	free(set);
	if (rc != 0) {
		rc = cmd_failed(env, env->remote, rc, &res, "UID FETCH");
		goto out;
	}
	if (!env->dry_run) {
		rc = imap_status(env->local_imap, INBOX, &lbox, &res);
		if (rc != 0) {
			rc = cmd_failed(env, env->local_imap, rc, &res, "STATUS INBOX");
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct batch_msg *m = &b.msgs[i];
		if (!m->fetched)
			continue;  /* expunged meanwhile: gone, not an error */
		uint64_t size = msgbody_size(m->body), hash = msgbody_hash(m->body);
		if (msgbody_has_nul(m->body) &&
		    !imap_client_has_cap(env->local_imap, CAP_BINARY)) {
			log_msg(LOGL_WARNING, "remote UID %u contains NUL bytes the local server cannot take; skipped",
				m->uid);
			counts->skipped++;
			if (!env->dry_run && (rc = journal_skipped(env->journal, INBOX, ruv, m->uid, size)) != 0) {
				rc = journal_failed(env, rc);
				goto out;
			}
			continue;
		}
		struct jentry *old = stale_match(stale, size, hash);
		struct jentry tmpl = { .mbox = inbox_name, .ruv = ruv, .ruid = m->uid, .size = size,
				       .hash = hash, .luv = env->dry_run ? 0 : lbox.uidvalidity,
				       .luidnext = env->dry_run ? 0 : lbox.uidnext };
		if (env->dry_run) {
			log_info("would deliver remote UID %u (%llu bytes, %s)%s", m->uid,
				 (unsigned long long)size, m->date,
				 old ? " - no: delivered before a UIDVALIDITY change" : "");
			if (old == NULL) {
				counts->copied++;
				counts->bytes += size;
			}
			continue;
		}
		if ((rc = journal_intent(env->journal, &tmpl)) != 0) {
			rc = journal_failed(env, rc);
			goto out;
		}
		struct jentry *e = journal_get(env->journal, INBOX, ruv, m->uid);
		if (old != NULL) {
			/* Same content delivered under the old UIDVALIDITY: the
			   entry moves to the new key. */
			if ((rc = journal_delivered(env->journal, e, old->luv, old->luid)) != 0 ||
			    (rc = journal_forget(env->journal, old)) != 0) {
				rc = journal_failed(env, rc);
				goto out;
			}
			counts->reconciled++;
			continue;
		}
		todo[ntodo] = m;
		ents[ntodo++] = e;
	}
	if (env->dry_run || ntodo == 0)
		goto out;
	/* The intents must be on disk before the APPEND: a crash after the
	   server saved the messages would otherwise duplicate them. */
	if ((rc = journal_sync(env->journal)) != 0) {
		rc = journal_failed(env, rc);
		goto out;
	}
	if (env->task->delivery == DELIVERY_LMTP) {
		rc = deliver_lmtp(env, todo, ents, ntodo, counts);
		goto out;
	}
	bool per_message = false;
	rc = append_batch(env, todo, ents, ntodo, counts, &per_message);
	if (rc == 0 && per_message) {
		for (size_t i = 0; i < ntodo && rc == 0; i++) {
			struct jentry tmpl = { .mbox = inbox_name, .ruv = ruv, .ruid = todo[i]->uid,
					       .size = msgbody_size(todo[i]->body),
					       .hash = msgbody_hash(todo[i]->body),
					       .luv = lbox.uidvalidity, .luidnext = lbox.uidnext };
			if ((rc = journal_intent(env->journal, &tmpl)) != 0 ||
			    (rc = journal_sync(env->journal)) != 0) {
				rc = journal_failed(env, rc);
				break;
			}
			ents[i] = journal_get(env->journal, INBOX, ruv, todo[i]->uid);
			rc = append_batch(env, &todo[i], &ents[i], 1, counts, &per_message);
		}
	}
out:
	batch_free(&b);
	free(todo);
	free(ents);
	return rc;
}

/* ------------------------------------------------------------------ */
/* deletion on the remote                                              */

static int expunge_entries(struct sync_env *env, struct jentry **v, size_t n,
			   struct sync_counts *counts)
{
	struct imap_result res;
	int rc;

	if (n == 0)
		return 0;
	if (env->dry_run) {
		for (size_t i = 0; i < n; i++)
			log_info("would delete remote UID %u", v[i]->ruid);
		counts->deleted += n;
		return 0;
	}
	bool uidplus = imap_client_has_cap(env->remote, CAP_UIDPLUS);
	if (!uidplus) {
		/* A plain EXPUNGE removes every \Deleted message: only safe
		   when none but ours carries the flag. */
		struct uid_list flagged;
		rc = imap_uid_search(env->remote, "DELETED", &flagged, &res);
		size_t foreign = flagged.count;
		uid_list_free(&flagged);
		if (rc != 0)
			return cmd_failed(env, env->remote, rc, &res, "UID SEARCH DELETED");
		if (foreign > 0) {
			log_msg(LOGL_WARNING, "remote has no UIDPLUS and %zu other message(s) flagged \\Deleted: "
				"not deleting, a plain EXPUNGE would remove them too", foreign);
			return 0;
		}
	}
	if ((rc = store_flag(env, v, n, "\\Deleted")) != 0)
		return rc;
	for (size_t i = 0; i < n; i += STORE_CHUNK) {
		size_t k = n - i < STORE_CHUNK ? n - i : STORE_CHUNK;
		uint32_t *uids = xcalloc(k, sizeof(*uids));
		for (size_t m = 0; m < k; m++)
			uids[m] = v[i + m]->ruid;
		char *set = uid_list_to_set(uids, k);
		if (uidplus)
			rc = imap_simple(env->remote, &res, "UID EXPUNGE %s", set);
		else
			rc = imap_simple(env->remote, &res, "EXPUNGE");
		free(set);
		free(uids);
		if (rc != 0)
			return cmd_failed(env, env->remote, rc, &res, "EXPUNGE");
		for (size_t m = 0; m < k; m++) {
			if ((rc = journal_deleted(env->journal, v[i + m])) != 0)
				return journal_failed(env, rc);
			counts->deleted++;
		}
	}
	return 0;
}

static void imap_date(time_t t, char *buf, size_t len)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%d-%s-%d", tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900);
}

static int delete_after_sync(struct sync_env *env, uint32_t ruv, struct sync_counts *counts)
{
	struct entry_list l;
	int rc;

	entries_in_state(env, J_SEEN, ruv, false, &l);
	rc = expunge_entries(env, l.v, l.n, counts);
	free(l.v);
	return rc;
}

/* Older than N days (INTERNALDATE, server-side day granularity) AND
   delivered by this task.  Old mail this task never delivered stays. */
static int delete_older_than(struct sync_env *env, uint32_t ruv, struct sync_counts *counts)
{
	struct uid_list old;
	struct imap_result res;
	struct jentry **v;
	char crit[64], date[32];
	size_t n = 0;
	int rc;

	imap_date(env->now - (time_t)env->task->delete_older_than_days * 86400, date, sizeof(date));
	snprintf(crit, sizeof(crit), "BEFORE %s UNDELETED", date);
	rc = imap_uid_search(env->remote, crit, &old, &res);
	if (rc != 0)
		return cmd_failed(env, env->remote, rc, &res, "UID SEARCH BEFORE");
	v = xcalloc(old.count + 1, sizeof(*v));
	for (size_t i = 0; i < old.count; i++) {
		struct jentry *e = journal_get(env->journal, INBOX, ruv, old.uids[i]);
		if (e != NULL && (e->state == J_SEEN || e->state == J_DELIVERED))
			v[n++] = e;
		else
			counts->kept_old++;
	}
	if (counts->kept_old > 0)
		log_info("kept %llu old message(s) that were never imported",
			 (unsigned long long)counts->kept_old);
	rc = expunge_entries(env, v, n, counts);
	free(v);
	uid_list_free(&old);
	return rc;
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static void count_seen_elsewhere(struct sync_env *env, uint32_t ruv, struct sync_counts *counts)
{
	struct uid_list seen;
	struct imap_result res;

	if (imap_uid_search(env->remote, "SEEN UNDELETED", &seen, &res) != 0) {
		uid_list_free(&seen);
		return;
	}
	for (size_t i = 0; i < seen.count; i++)
		if (journal_get(env->journal, INBOX, ruv, seen.uids[i]) == NULL)
			counts->seen_elsewhere++;
	uid_list_free(&seen);
}

int sync_inbox(struct sync_env *env, struct sync_counts *counts)
{
	struct imap_mailbox rbox;
	struct imap_result res;
	struct uid_list cand = { 0 };
	struct stale_set stale = { 0 };
	int rc;

	log_set_folder(INBOX);
	rc = imap_select(env->remote, INBOX, env->dry_run, &rbox, &res);
	if (rc != 0)
		return cmd_failed(env, env->remote, rc, &res, "SELECT INBOX");
	uint32_t ruv = rbox.uidvalidity;

	if ((rc = reconcile_intents(env, counts)) != 0)
		return rc;
	if ((rc = mark_delivered_seen(env, ruv)) != 0)
		return rc;

	stale.ruv = ruv;
	journal_foreach(env->journal, collect_stale, &stale);
	if (stale.n > 0)
		log_msg(LOGL_WARNING, "remote INBOX UIDVALIDITY is now %u; %zu message(s) recorded "
			"under an earlier one are matched by content, not redelivered", ruv, stale.n);

	rc = imap_uid_search(env->remote, "UNSEEN UNDELETED", &cand, &res);
	if (rc != 0) {
		rc = cmd_failed(env, env->remote, rc, &res, "UID SEARCH UNSEEN");
		goto out;
	}
	/* Never take again what this task took once, even if someone
	   marked it unread on the remote since. */
	size_t w = 0;
	for (size_t i = 0; i < cand.count; i++)
		if (journal_get(env->journal, INBOX, ruv, cand.uids[i]) == NULL)
			cand.uids[w++] = cand.uids[i];
	cand.count = w;
	count_seen_elsewhere(env, ruv, counts);
	log_info("%zu new message(s) in the remote INBOX", cand.count);

	for (size_t i = 0; i < cand.count && rc == 0;) {
		if (env->stop != NULL && *env->stop) {
			rc = fail(env, EXIT_TEMPFAIL, "stopped by a signal; the next run resumes");
			break;
		}
		size_t k = cand.count - i < BATCH_MSGS ? cand.count - i : BATCH_MSGS;
		rc = deliver_batch(env, ruv, cand.uids + i, k, &stale, counts);
		if (rc == 0) {
			rc = mark_delivered_seen(env, ruv);
		} else if (!imap_client_failed(env->remote, NULL) &&
			   !imap_client_failed(env->local_imap, NULL)) {
			/* The batch stopped on the local side's word (quota, a
			   temporary LMTP reply): what did arrive is marked now
			   rather than next run.  The first error is the one told. */
			char first[sizeof(env->error)];
			memcpy(first, env->error, sizeof(first));
			(void)mark_delivered_seen(env, ruv);
			memcpy(env->error, first, sizeof(first));
		}
		i += k;
		if (env->progress)
			log_info("%zu/%zu processed, %llu delivered, %llu MB", i, cand.count,
				 (unsigned long long)counts->copied,
				 (unsigned long long)(counts->bytes / 1000000));
	}
	if (rc == 0 && env->task->delete_mode == DELETE_AFTER_SYNC)
		rc = delete_after_sync(env, ruv, counts);
	else if (rc == 0 && env->task->delete_mode == DELETE_OLDER_THAN)
		rc = delete_older_than(env, ruv, counts);
	if (rc == 0 && !env->dry_run)
		rc = forget_stale(env, &stale);
	if (rc == 0)
		rc = forget_gone(env, ruv);
out:
	free(stale.v);
	uid_list_free(&cand);
	log_set_folder(NULL);
	return rc;
}
