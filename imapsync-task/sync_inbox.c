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
	uint64_t announced;       /* RFC822.SIZE */
	unsigned flags_dropped;   /* flags no server could take */
	bool date_invalid;
	bool answered;            /* a FETCH answer named this UID */
	bool fetched;             /* ... and carried its whole body */
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

/* The content hash (util.h) of the last n content bytes of a body. */
static uint64_t content_suffix_hash(const struct msgbody *b, uint64_t n)
{
	unsigned char chunk[65536];
	struct content_hash ch;
	uint64_t off = 0;
	ssize_t got;

	if (msgbody_content_len(b) < n)
		return 0;
	content_hash_init(&ch);
	content_hash_skip(&ch, msgbody_content_len(b) - n);
	while ((got = msgbody_read(b, off, chunk, sizeof(chunk))) > 0) {
		content_hash_update(&ch, chunk, (size_t)got);
		off += (uint64_t)got;
	}
	return ch.hash;
}

/* Is this local body the copy of want?  The exact bytes first; then,
   where the entry has one, the content hash: a server may store line
   ends, a missing final newline or NULs its own way (FAULTS row 33). */
static void probe_hash_cb(void *ctx, struct imap_fetched *m)
{
	struct local_probe *p = ctx;
	const struct jentry *e = p->want;
	uint64_t size;

	if (m->body == NULL || p->found)
		return;
	size = msgbody_size(m->body);
	if (!p->suffix)
		p->found = size == e->size && msgbody_hash(m->body) == e->hash;
	else if (size >= e->size)
		p->found = suffix_hash(m->body, e->size) == e->hash;
	if (p->found || e->clen == 0)
		return;
	if (!p->suffix)
		p->found = msgbody_content_hash(m->body) == e->chash &&
			msgbody_content_len(m->body) == e->clen;
	else
		p->found = content_suffix_hash(m->body, e->clen) == e->chash;
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

static bool entry_listed(const struct entry_list *l, const struct jentry *e)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == e)
			return true;
	return false;
}

static double clock_now(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A local message can be the copy of e by its size alone?  Exact for
   APPEND, at least as large for LMTP; with a content hash any size may
   be (the server's line ends), so those are tried last. */
static int size_rank(const struct local_probe *p, const struct jentry *e, uint64_t size)
{
	if (p->suffix ? size >= e->size : size == e->size)
		return 0;
	return e->clen != 0 ? 1 : -1;
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

			if (luid < start || size_rank(probe, e, probe->sizes[k]) != rank ||
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

/* Look for each unsettled intent in the local INBOX (find_local_copy).
   Found ones become DELIVERED; *left_r counts those not found that were
   on the wire (waiting): the server may still be saving them.

   LMTP tells no local UID, so its deliveries are recorded with UID 0
   and could not claim their copies: an intent for a byte-identical
   message would then take the copy of one delivered just before it (one
   local copy for two remote messages).  So LMTP deliveries of the same
   batch are matched too, in delivery (remote UID) order, each claiming
   its copy first. */
static int probe_intents(struct sync_env *env, struct entry_list *intents,
			 const struct entry_list *waiting, struct entry_list *claimed,
			 struct sync_counts *counts, size_t *left_r)
{
	struct local_probe probe = { 0 };
	struct imap_mailbox box;
	struct imap_result res;
	struct entry_list targets = { 0 };
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
		if (e->state == J_INTENT)
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
			rc = cmd_failed(env, env->local_imap, rc, &res, "UID FETCH");
			goto out;
		}
	}
	for (size_t i = 0; i < targets.n && rc == 0; i++) {
		struct jentry *e = targets.v[i];
		bool intent = e->state == J_INTENT;
		int64_t match = find_local_copy(env, &probe, e, box.uidvalidity, claimed, &res);

		if (match < 0) {
			rc = cmd_failed(env, env->local_imap, EXIT_TEMPFAIL, &res, "UID FETCH");
			break;
		}
		if (match == 0) {
			/* Only a delivery that was on the wire can still appear. */
			*left_r += intent && entry_listed(waiting, e);
			continue;
		}
		/* An LMTP delivery keeps its state; it only learns its UID. */
		if (intent)
			rc = journal_delivered(env->journal, e, box.uidvalidity, (uint32_t)match);
		else
			e->luid = (uint32_t)match;
		if (rc != 0) {
			rc = journal_failed(env, rc);
			break;
		}
		if (intent) {
			counts->reconciled++;
			entry_list_add(claimed, e);
			log_info("remote UID %u was delivered before the interruption (local UID %u)",
				 e->ruid, (uint32_t)match);
		}
	}
out:
	free(targets.v);
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
	struct entry_list intents, claimed, waiting = { 0 };
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
	/* The previous run's last sign of life is a wall-clock time (a file's
	   mtime): the time left to wait is taken from it once, bounded by
	   the grace itself, and counted on the monotonic clock.  A clock
	   stepped back must not turn ten seconds into an hour. */
	double wait = 0;
	if (journal_append_in_flight(env->journal)) {
		wait = env->last_alive + RECONCILE_GRACE - clock_now(CLOCK_REALTIME);
		wait = wait < 0 ? 0 : wait > RECONCILE_GRACE ? RECONCILE_GRACE : wait;
	}
	double deadline = clock_now(CLOCK_MONOTONIC) + wait;
	/* Only what was on the wire is worth waiting for: with LMTP that is
	   one message, not the rest of its batch. */
	for (size_t i = 0; i < intents.n; i++)
		if (journal_in_flight(env->journal, intents.v[i]))
			entry_list_add(&waiting, intents.v[i]);
	entries_in_state(env, J_DELIVERED, 0, true, &claimed);
	for (;;) {
		rc = probe_intents(env, &intents, &waiting, &claimed, counts, &left);
		if (rc != 0 || left == 0 || clock_now(CLOCK_MONOTONIC) >= deadline)
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
	free(waiting.v);
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
	free(leftover.v);
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
		if (bm->uid != m->uid || bm->fetched)
			continue;
		bm->answered = true;
		if (m->body == NULL)
			return;  /* an unsolicited FLAGS update, or a server bug */
		bm->fetched = true;
		bm->body = m->body;
		m->body = NULL;
		bm->announced = m->size;
		bm->flags_dropped = m->flags_dropped;
		bm->date_invalid = m->date_invalid;
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

/* Can a refusal be about one message (its size, a flag, its content)
   rather than the mailbox or the session?  Then the message is tried
   alone, and skipped if it is refused alone. */
static bool message_refusal(const struct imap_result *res)
{
	if (res->status != IMAP_STATUS_NO && res->status != IMAP_STATUS_BAD)
		return false;
	if (res->scope == IMAP_SCOPE_MESSAGE)
		return true;
	return res->scope == IMAP_SCOPE_MAILBOX && strcmp(res->code, "TRYCREATE") != 0 &&
		strcmp(res->code, "NONEXISTENT") != 0 && strcmp(res->code, "UIDVALIDITY") != 0;
}

/* Deliver msgs[0..n) (already INTENT and synced) to the local INBOX.
   On return each delivered one is DELIVERED.  A refusal that may be
   about one message sets *refused_r (and *refusal_r) and returns 0: none
   was saved (RFC 3502 for MULTIAPPEND, RFC 3501 for one APPEND), so the
   intents are abandoned and the caller tries the messages alone. */
static int append_batch(struct sync_env *env, struct batch_msg **msgs, struct jentry **ents,
			size_t n, struct sync_counts *counts, bool *refused_r,
			struct imap_result *refusal_r)
{
	struct imap_append_msg *am = xcalloc(n, sizeof(*am));
	uint32_t *luids = xcalloc(n, sizeof(*luids));
	uint32_t luv = 0;
	struct imap_result res;
	int rc;

	*refused_r = false;
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
	if (atomic && message_refusal(&res)) {
		*refused_r = true;
		*refusal_r = res;
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
		if ((rc = journal_delivery_started(env->journal, ents[i])) != 0) {
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
			/* The local UIDVALIDITY is kept (the UID is unknown):
			   reconcile_intents matches such entries first. */
			rc = journal_delivered(env->journal, ents[i], ents[i]->luv, 0);
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

/* Journal the intent for m (not synced yet).  The entry is verified:
   its hashes come from this run's fetch of that very UID. */
static int write_intent(struct sync_env *env, uint32_t ruv, const struct imap_mailbox *lbox,
			const struct batch_msg *m, struct jentry **e_r)
{
	struct jentry tmpl = { .mbox = inbox_name, .ruv = ruv, .ruid = m->uid,
			       .size = msgbody_size(m->body), .hash = msgbody_hash(m->body),
			       .chash = msgbody_content_hash(m->body),
			       .clen = msgbody_content_len(m->body),
			       .luv = lbox->uidvalidity, .luidnext = lbox->uidnext };
	int rc = journal_intent(env->journal, &tmpl);

	if (rc != 0)
		return journal_failed(env, rc);
	*e_r = journal_get(env->journal, INBOX, ruv, m->uid);
	(*e_r)->verified = true;
	return 0;
}

static int record_skip(struct sync_env *env, uint32_t ruv, const struct batch_msg *m,
		       struct sync_counts *counts)
{
	int rc;

	counts->skipped++;
	if (env->dry_run)
		return 0;
	rc = journal_skipped(env->journal, INBOX, ruv, m->uid, msgbody_size(m->body));
	return rc != 0 ? journal_failed(env, rc) : 0;
}

/* Keep only the system flags: keywords are what a server most often
   refuses (length, number).  True if something was removed. */
static bool drop_keywords(char *flags)
{
	char out[sizeof(((struct batch_msg *)0)->flags)] = "";
	size_t o = 0;
	bool dropped = false;

	for (char *tok = strtok(flags, " "); tok != NULL; tok = strtok(NULL, " ")) {
		if (tok[0] != '\\') {
			dropped = true;
			continue;
		}
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", o ? " " : "", tok);
	}
	strcpy(flags, out);
	return dropped;
}

/* One message, alone: intent, sync, APPEND.  Refused alone, it is tried
   once more without its keywords; refused again, it is skipped for
   good and recorded, so it never blocks the messages after it. */
static int append_alone(struct sync_env *env, uint32_t ruv, const struct imap_mailbox *lbox,
			struct batch_msg *m, struct sync_counts *counts)
{
	struct imap_result refusal;
	bool refused = false;
	struct jentry *e;
	int rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		if ((rc = write_intent(env, ruv, lbox, m, &e)) != 0)
			return rc;
		if ((rc = journal_sync(env->journal)) != 0)
			return journal_failed(env, rc);
		rc = append_batch(env, &m, &e, 1, counts, &refused, &refusal);
		if (rc != 0 || !refused)
			return rc;
		if (attempt > 0 || !drop_keywords(m->flags))
			break;
		log_msg(LOGL_WARNING, "remote UID %u refused by the local server with its keywords "
			"([%s] %s); trying again without them", m->uid, refusal.code, refusal.text);
	}
	log_msg(LOGL_WARNING, "remote UID %u (%llu bytes) refused by the local server, skipped "
		"for good: %s%s%s%s", m->uid, (unsigned long long)msgbody_size(m->body),
		refusal.code[0] ? "[" : "", refusal.code, refusal.code[0] ? "] " : "", refusal.text);
	return record_skip(env, ruv, m, counts);
}

/* A fetched message fit to deliver?  What no local server can store is
   skipped for good (recorded, exit 2); what the remote answered badly
   is left for the next run and makes this one end with 76. */
static int check_fetched(struct sync_env *env, uint32_t ruv, struct batch_msg *m,
			 struct sync_counts *counts, bool *deliver_r)
{
	*deliver_r = false;
	if (!m->answered)
		return 0;  /* expunged meanwhile: gone, not an error */
	if (!m->fetched) {
		log_msg(LOGL_WARNING, "remote UID %u: the server's FETCH answer has no BODY[]; "
			"not taken", m->uid);
		env->protocol_errors++;
		return 0;
	}
	uint64_t size = msgbody_size(m->body);
	if (size != m->announced) {
		/* A partial or truncated body: taking it would lose the rest. */
		log_msg(LOGL_WARNING, "remote UID %u: RFC822.SIZE is %llu but BODY[] has %llu bytes; "
			"not taken", m->uid, (unsigned long long)m->announced,
			(unsigned long long)size);
		env->protocol_errors++;
		return 0;
	}
	if (size == 0) {
		log_msg(LOGL_WARNING, "remote UID %u is an empty message, which IMAP cannot store; "
			"skipped", m->uid);
		return record_skip(env, ruv, m, counts);
	}
	if (msgbody_has_nul(m->body) && !imap_client_has_cap(env->local_imap, CAP_BINARY)) {
		log_msg(LOGL_WARNING, "remote UID %u contains NUL bytes the local server cannot take; "
			"skipped", m->uid);
		return record_skip(env, ruv, m, counts);
	}
	if (m->flags_dropped > 0)
		log_msg(LOGL_WARNING, "remote UID %u: %u flag(s) no IMAP server could take were "
			"dropped", m->uid, m->flags_dropped);
	if (m->date_invalid)
		log_msg(LOGL_WARNING, "remote UID %u: invalid INTERNALDATE; the local server "
			"dates it now", m->uid);
	*deliver_r = true;
	return 0;
}

/* Fetch, journal and deliver one batch of candidate UIDs. */
static int deliver_batch(struct sync_env *env, uint32_t ruv, const uint32_t *uids,
			 size_t n, struct stale_set *stale, struct sync_counts *counts)
{
	struct batch b = { xcalloc(n, sizeof(struct batch_msg)), n };
	struct batch_msg **todo = xcalloc(n, sizeof(*todo));
	struct jentry **ents = xcalloc(n, sizeof(*ents));
	struct imap_mailbox lbox = { 0 };
	struct imap_result res;
	size_t ntodo = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		b.msgs[i].uid = uids[i];
	char *set = uid_list_to_set(uids, n);
	rc = imap_uid_fetch(env->remote, set, "FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]",
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
		bool deliver;
		if ((rc = check_fetched(env, ruv, m, counts, &deliver)) != 0)
			goto out;
		if (!deliver)
			continue;
		uint64_t size = msgbody_size(m->body), hash = msgbody_hash(m->body);
		struct jentry *old = stale_match(stale, size, hash);
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
		struct jentry *e;
		if ((rc = write_intent(env, ruv, &lbox, m, &e)) != 0)
			goto out;
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
	bool refused = false;
	rc = append_batch(env, todo, ents, ntodo, counts, &refused, &res);
	/* One message spoiled the transaction: each goes alone. */
	for (size_t i = 0; rc == 0 && refused && i < ntodo; i++)
		rc = append_alone(env, ruv, &lbox, todo[i], counts);
out:
	batch_free(&b);
	free(todo);
	free(ents);
	return rc;
}

/* ------------------------------------------------------------------ */
/* deletion on the remote                                              */

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
	for (size_t i = 0; i < n && rc == 0; i += BATCH_MSGS) {
		size_t k = n - i < BATCH_MSGS ? n - i : BATCH_MSGS, m = 0;
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
				rc = cmd_failed(env, env->remote, rc, &res, "UID FETCH");
		}
		free(uids);
	}
	if (rc == 0 && vc.bad_uid != 0)
		rc = fail(env, EXIT_DATAERR, "remote UID %u is not the message this task's state "
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
	if (!env->dry_run && (rc = verify_before_delete(env, v, &n)) != 0)
		return rc;
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
	if (rc == 0 && env->protocol_errors > 0)
		rc = fail(env, EXIT_PROTOCOL, "%u message(s) not taken: the remote server's answers "
			  "for them were incomplete (see the warnings); they stay unseen there and "
			  "the next run tries again", env->protocol_errors);
out:
	free(stale.v);
	uid_list_free(&cand);
	log_set_folder(NULL);
	return rc;
}
