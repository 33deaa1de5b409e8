/* copy.c - the one copy path: FETCH a batch of remote messages, check
 * what the server sent, journal an intent for each and fsync it, deliver
 * (MULTIAPPEND, APPEND one by one, or LMTP), record what arrived.
 *
 * The rule that keeps a crash from doubling mail lives here: an intent
 * is on disk before its message goes out (journal_sync before
 * append_batch and deliver_lmtp).  See reconcile.c for the other half.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "dry_run.h"
#include "exitcode.h"
#include "log.h"
#include "progress.h"
#include "util.h"

struct batch_msg {
	uint32_t uid;
	char *flags;              /* NULL until answered with its body */
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
	struct imap_fetch_pending *fetch;   /* its UID FETCH, until answered */
};

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
		/* How far, message by message as they arrive: a batch of a
		   slow remote takes long. */
		progress_arrived(msgbody_size(bm->body));
		bm->announced = m->size;
		bm->flags_dropped = m->flags_dropped;
		bm->date_invalid = m->date_invalid;
		bm->flags = xstrdup(m->flags);
		snprintf(bm->date, sizeof(bm->date), "%s", m->internaldate);
		return;
	}
}

/* Send the UID FETCH of a batch; its answers fill the batch whenever
   they are read (see copy_uids).  Allocated: the callbacks hold it. */
static struct batch *batch_send(struct sync_env *env, const struct folder_pair *fp,
				const uint32_t *uids, size_t n)
{
	struct batch *b = xcalloc(1, sizeof(*b));

	b->msgs = xcalloc(n, sizeof(*b->msgs));
	b->n = n;
	for (size_t i = 0; i < n; i++)
		b->msgs[i].uid = uids[i];
	char *set = uid_list_to_set(uids, n);
	log_debug("batch: fetching %zu message(s) of %s, UID %s", n, fp->remote, set);
	free(set);
	b->fetch = imap_uid_fetch_send(env->remote, uids, n,
				       "FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[]",
				       batch_fetch_cb, b);
	return b;
}

/* The batch's FETCH answered, or failed (0 or its exit class). */
static int batch_wait(struct sync_env *env, struct batch *b, struct imap_result *res)
{
	return b->fetch != NULL ? imap_uid_fetch_wait(env->remote, &b->fetch, res) : 0;
}

static void batch_free(struct sync_env *env, struct batch **bp)
{
	struct batch *b = *bp;

	if (b == NULL)
		return;
	/* A fetch still running is read to its end (or its connection's),
	   so the remote session stays in step for what follows. */
	(void)batch_wait(env, b, NULL);
	for (size_t i = 0; i < b->n; i++) {
		msgbody_free(&b->msgs[i].body);
		free(b->msgs[i].flags);
	}
	free(b->msgs);
	free(b);
	*bp = NULL;
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

/* What the next intents record as the local UIDVALIDITY and UIDNEXT
   (a lower bound of the UIDs a crashed APPEND may have got) is known
   without a STATUS after an APPEND whose APPENDUID named every UID:
   the next UID is past them.  Otherwise lbox->uidnext = 0 asks for a
   STATUS.  One round trip per batch less, and Dovecot rescans a Maildir
   on each STATUS after a save: that grew with the folder. */
static void next_uid_known(struct imap_mailbox *lbox, uint32_t luv, const uint32_t *luids,
			   size_t n)
{
	uint32_t max = 0;

	for (size_t i = 0; i < n && luv != 0; i++) {
		if (luids[i] == 0) {
			luv = 0;
			break;
		}
		max = luids[i] > max ? luids[i] : max;
	}
	if (luv == 0 || max == UINT32_MAX) {
		lbox->uidnext = 0;
		return;
	}
	lbox->uidvalidity = luv;
	lbox->uidnext = max + 1;
}

/* Deliver msgs[0..n) (already INTENT and synced) to the local folder.
   On return each delivered one is DELIVERED.  A refusal that may be
   about one message sets *refused_r (and *refusal_r) and returns 0: none
   was saved (RFC 3502 for MULTIAPPEND, RFC 3501 for one APPEND), so the
   intents are abandoned and the caller tries the messages alone. */
static int append_batch(struct sync_env *env, const struct folder_pair *fp,
			struct batch_msg **msgs, struct jentry **ents,
			size_t n, struct sync_counts *counts, bool *refused_r,
			struct imap_result *refusal_r, struct imap_mailbox *lbox)
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
	if ((rc = journal_append_started(env->journal, fp->remote)) != 0) {
		rc = sync_journal_failed(env, rc);
		goto out;
	}
	rc = imap_append(env->local_imap, fp->local, am, n, &luv, luids, &res);
	journal_killpoint();
	next_uid_known(lbox, rc == 0 ? luv : 0, luids, n);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			rc = journal_delivered(env->journal, ents[i], luv, luids[i]);
			if (rc != 0)
				rc = sync_journal_failed(env, rc);
			counts->copied++;
			counts->bytes += msgbody_size(msgs[i]->body);
		}
		if (rc == 0 && (rc = journal_sync(env->journal)) != 0)
			rc = sync_journal_failed(env, rc);
		goto out;
	}
	/* The connection died: the outcome is unknown, the intents stay
	   and the next run reconciles them. */
	if (res.status == IMAP_STATUS_NONE) {
		rc = sync_cmd_failed(env, env->local_imap, rc, &res, "APPEND");
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
				rc = sync_journal_failed(env, jrc);
				goto out;
			}
		}
	}
	if (atomic && message_refusal(&res)) {
		*refused_r = true;
		*refusal_r = res;
		rc = 0;
	} else if (strcmp(res.code, "OVERQUOTA") == 0) {
		rc = sync_fail(env, EXIT_CANTCREAT, "local: mailbox of %s is over quota; "
			  "%zu message(s) not delivered and left unseen on the remote: %s",
			  env->task->local_user, n, res.text);
	} else {
		rc = sync_cmd_failed(env, env->local_imap, rc, &res, "APPEND");
	}
out:
	free(am);
	free(luids);
	return rc;
}

/* delivery = lmtp: the batch goes through the LMTP session's connections
   at once (lmtp_deliver_batch), several messages on the wire together.

   The 'B' marker before the first DATA tells a restarted run which
   deliveries may have completed (see reconcile_folder): the message's
   UID when the batch has one, else UID 0, every intent of the folder.
   A D, A or K line clears the marker, on replay too, so nothing is
   settled in the journal while a message is still on the wire: the
   outcomes are written once lmtp_deliver_batch has returned.  A crash
   before then leaves every intent of the batch under the marker; the
   next run waits for them and matches what arrived by content.  When a
   connection was lost after DATA (LMTP_LOST), that message's fate is
   unknown and the server may still be saving it, so nothing of the
   batch is settled: the intents and the marker stay for the next run,
   which reconciles them all. */
static int deliver_lmtp_group(struct sync_env *env, const struct folder_pair *fp,
			      struct batch_msg **msgs, struct jentry **ents,
			      size_t n, struct sync_counts *counts)
{
	struct lmtp_msg *lm = xcalloc(n, sizeof(*lm));
	char (*from)[512] = xcalloc(n, sizeof(*from));
	int rc;

	rc = n == 1 ? journal_delivery_started(env->journal, ents[0])
		: journal_append_started(env->journal, fp->remote);
	if (rc != 0) {
		rc = sync_journal_failed(env, rc);
		for (size_t i = 0; i < n; i++)
			(void)journal_abandon(env->journal, ents[i]);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		lmtp_envelope_sender(msgs[i]->body, from[i], sizeof(from[i]));
		lm[i].from = from[i];
		lm[i].body = msgs[i]->body;
	}
	lmtp_deliver_batch(env->lmtp, env->task->local_user, lm, n, env->stop);
	journal_killpoint();
	for (size_t i = 0; i < n; i++) {
		if (lm[i].tried && lm[i].outcome == LMTP_LOST) {
			/* Unknown outcome: every intent stays, under the marker. */
			rc = sync_fail(env, EXIT_TEMPFAIL, "%s", lm[i].err);
			goto out;
		}
	}
	/* Nothing is on the wire any more: settle each message.  A message
	   after one that stopped the batch may have been delivered too (it
	   was on another connection), so all are settled; the first failure
	   is the run's. */
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		int jrc = 0;
		if (!lm[i].tried) {
			/* Never tried: not delivered, drop the intent. */
			jrc = journal_abandon(env->journal, ents[i]);
			ents[i] = NULL;
		} else {
			switch (lm[i].outcome) {
			case LMTP_DELIVERED:
				counts->copied++;
				counts->bytes += msgbody_size(msgs[i]->body);
				/* The local UIDVALIDITY is kept (the UID is
				   unknown): reconcile_intents matches such
				   entries first. */
				jrc = journal_delivered(env->journal, ents[i], ents[i]->luv, 0);
				break;
			case LMTP_PERMFAIL: {
				uint32_t ruv = ents[i]->ruv;  /* the entry goes with the abandon */
				log_msg(LOGL_WARNING, "remote UID %u skipped: %s", msgs[i]->uid,
					lm[i].err);
				counts->skipped++;
				jrc = journal_abandon(env->journal, ents[i]);
				ents[i] = NULL;
				if (jrc == 0)
					jrc = journal_skipped(env->journal, fp->remote, ruv,
							      msgs[i]->uid,
							      msgbody_size(msgs[i]->body));
				break;
			}
			case LMTP_OVERQUOTA:
				jrc = journal_abandon(env->journal, ents[i]);
				ents[i] = NULL;
				if (rc == 0)
					rc = sync_fail(env, EXIT_CANTCREAT, "local: mailbox of %s is "
						       "over quota; the message stays unseen on the "
						       "remote: %s", env->task->local_user, lm[i].err);
				break;
			case LMTP_TEMPFAIL:
				jrc = journal_abandon(env->journal, ents[i]);
				ents[i] = NULL;
				if (rc == 0)
					rc = sync_fail(env, EXIT_TEMPFAIL, "%s", lm[i].err);
				break;
			case LMTP_LOST:
				break;   /* handled above */
			}
		}
		if (jrc != 0) {
			/* The journal fails: write nothing more.  What is left
			   stays an intent, and no message is on the wire, so
			   the next run settles it by content at once. */
			rc = sync_journal_failed(env, jrc);
			goto out;
		}
	}
	int src = journal_sync(env->journal);
	if (rc == 0 && src != 0)
		rc = sync_journal_failed(env, src);
out:
	free(lm);
	free(from);
	return rc;
}

/* LMTP outcomes are settled in the journal group by group (four
   messages per connection): until its group is settled, a crash leaves
   a delivered message to be found by content in INBOX, and one a Sieve
   rule filed elsewhere would come again.  A small group keeps that
   window as small as the parallel connections allow. */
#define LMTP_GROUP 16

static int deliver_lmtp(struct sync_env *env, const struct folder_pair *fp,
			struct batch_msg **msgs, struct jentry **ents,
			size_t n, struct sync_counts *counts)
{
	size_t i = 0;
	int rc = 0;

	while (i < n && rc == 0) {
		size_t k = n - i < LMTP_GROUP ? n - i : LMTP_GROUP;
		rc = deliver_lmtp_group(env, fp, msgs + i, ents + i, k, counts);
		i += k;
	}
	/* The groups never tried are not delivered: their intents go,
	   unless a delivery of unknown outcome keeps the folder's marker
	   (an 'A' line would clear it; the next run settles them then). */
	for (; i < n && !journal_append_in_flight(env->journal); i++)
		if (journal_abandon(env->journal, ents[i]) != 0)
			break;
	return rc;
}

/* Journal the intent for m (not synced yet).  The entry is verified:
   its hashes come from this run's fetch of that very UID. */
static int write_intent(struct sync_env *env, const struct folder_pair *fp,
			const struct imap_mailbox *lbox, const struct batch_msg *m,
			struct jentry **e_r)
{
	struct jentry tmpl = { .mbox = (char *)fp->remote, .ruv = fp->ruv, .ruid = m->uid,
			       .size = msgbody_size(m->body), .hash = msgbody_hash(m->body),
			       .chash = msgbody_content_hash(m->body),
			       .clen = msgbody_content_len(m->body),
			       .luv = lbox->uidvalidity, .luidnext = lbox->uidnext,
			       .flags = (char *)m->flags };
	int rc = journal_intent(env->journal, &tmpl);

	if (rc != 0)
		return sync_journal_failed(env, rc);
	*e_r = journal_get(env->journal, fp->remote, fp->ruv, m->uid);
	(*e_r)->verified = true;
	return 0;
}

static int record_skip(struct sync_env *env, const struct folder_pair *fp,
		       const struct batch_msg *m,
		       struct sync_counts *counts)
{
	int rc;

	counts->skipped++;
	if (env->dry_run)
		return 0;
	rc = journal_skipped(env->journal, fp->remote, fp->ruv, m->uid, msgbody_size(m->body));
	return rc != 0 ? sync_journal_failed(env, rc) : 0;
}

/* Keep only the system flags: keywords are what a server most often
   refuses (length, number).  True if something was removed. */
static bool drop_keywords(char *flags)
{
	char out[sizeof(((struct imap_fetched *)0)->flags)] = "";
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
static int append_alone(struct sync_env *env, const struct folder_pair *fp,
			struct imap_mailbox *lbox,
			struct batch_msg *m, struct sync_counts *counts)
{
	struct imap_result refusal;
	bool refused = false;
	struct jentry *e;
	int rc;

	for (int attempt = 0; attempt < 2; attempt++) {
		if ((rc = write_intent(env, fp, lbox, m, &e)) != 0)
			return rc;
		if ((rc = journal_sync(env->journal)) != 0)
			return sync_journal_failed(env, rc);
		rc = append_batch(env, fp, &m, &e, 1, counts, &refused, &refusal, lbox);
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
	return record_skip(env, fp, m, counts);
}

/* A fetched message fit to deliver?  What no local server can store is
   skipped for good (recorded, exit 2); what the remote answered badly
   is left for the next run and makes this one end with 76. */
static int check_fetched(struct sync_env *env, const struct folder_pair *fp, struct batch_msg *m,
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
		return record_skip(env, fp, m, counts);
	}
	if (msgbody_has_nul(m->body) && !imap_client_has_cap(env->local_imap, CAP_BINARY)) {
		log_msg(LOGL_WARNING, "remote UID %u contains NUL bytes the local server cannot take; "
			"skipped", m->uid);
		return record_skip(env, fp, m, counts);
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
/* Is m's content already local without being mapped: recorded under an
   earlier remote UIDVALIDITY (stale), or an unclaimed local message
   (pool)?  *old_r or *luid_r say which; -1 when a local FETCH failed. */
static int find_existing(struct sync_env *env, struct batch_msg *m, struct stale_set *stale,
			 struct local_pool *pool, struct jentry **old_r, uint32_t *luid_r)
{
	struct jentry want = { .size = msgbody_size(m->body), .hash = msgbody_hash(m->body),
			       .chash = msgbody_content_hash(m->body),
			       .clen = msgbody_content_len(m->body) };
	struct imap_result res;

	*luid_r = 0;
	*old_r = stale != NULL ? stale_claim(stale, want.size, want.hash) : NULL;
	if (*old_r != NULL || pool == NULL)
		return 0;
	int64_t luid = local_pool_claim(env->local_imap, pool, &want, &res);
	if (luid < 0)
		return sync_cmd_failed(env, env->local_imap, EXIT_TEMPFAIL, &res, "UID FETCH");
	*luid_r = (uint32_t)luid;
	return 0;
}

/* Deliver a batch whose FETCH was sent: wait for its answers, check
   them, journal the intents, deliver. */
static int copy_fetched(struct sync_env *env, const struct folder_pair *fp, struct batch *b,
			struct stale_set *stale, struct local_pool *pool,
			struct imap_mailbox *lbox, struct sync_counts *counts)
{
	size_t n = b->n;
	struct batch_msg **todo = xcalloc(n, sizeof(*todo));
	struct jentry **ents = xcalloc(n, sizeof(*ents));
	struct imap_result res;
	size_t ntodo = 0;
	int rc;

	rc = batch_wait(env, b, &res);
	if (rc != 0) {
		rc = sync_cmd_failed(env, env->remote, rc, &res, "UID FETCH");
		goto out;
	}
	if (!env->dry_run && lbox->uidnext == 0) {
		rc = imap_status(env->local_imap, fp->local, lbox, &res);
		if (rc != 0) {
			rc = sync_cmd_failed(env, env->local_imap, rc, &res, "STATUS");
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct batch_msg *m = &b->msgs[i];
		bool deliver;
		if ((rc = check_fetched(env, fp, m, counts, &deliver)) != 0)
			goto out;
		if (!deliver)
			continue;
		uint64_t size = msgbody_size(m->body);
		struct jentry *old;
		uint32_t luid;
		if ((rc = find_existing(env, m, stale, pool, &old, &luid)) != 0)
			goto out;
		if (env->dry_run) {
			bool inbox = strcmp(fp->remote, "INBOX") == 0;
			log_info("would deliver remote UID %u%s%s (%llu bytes, %s)%s", m->uid,
				 inbox ? "" : " in ", inbox ? "" : fp->remote,
				 (unsigned long long)size, m->date,
				 old ? " - no: delivered before a UIDVALIDITY change"
				 : luid ? " - no: already in the local folder" : "");
			if (old == NULL && luid == 0) {
				counts->copied++;
				counts->bytes += size;
			}
			/* Delivered or found local, it is DELIVERED for the
			   steps after the copy (\Seen, deletion). */
			dry_note_delivered(env, fp, m->uid, size, msgbody_hash(m->body));
			continue;
		}
		struct jentry *e;
		if ((rc = write_intent(env, fp, lbox, m, &e)) != 0)
			goto out;
		if (old != NULL || luid != 0) {
			/* Same content delivered under the old UIDVALIDITY (the
			   entry moves to the new key), or already local. */
			rc = old != NULL ? journal_delivered(env->journal, e, old->luv, old->luid)
				: journal_delivered(env->journal, e, pool->luv, luid);
			if (rc == 0 && old != NULL)
				rc = journal_forget(env->journal, old);
			if (rc != 0) {
				rc = sync_journal_failed(env, rc);
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
		rc = sync_journal_failed(env, rc);
		goto out;
	}
	if (env->task->delivery == DELIVERY_LMTP) {
		rc = deliver_lmtp(env, fp, todo, ents, ntodo, counts);
		lbox->uidnext = 0;   /* LMTP tells no UIDs */
		goto out;
	}
	bool refused = false;
	rc = append_batch(env, fp, todo, ents, ntodo, counts, &refused, &res, lbox);
	/* One message spoiled the transaction: each goes alone. */
	for (size_t i = 0; rc == 0 && refused && i < ntodo; i++)
		rc = append_alone(env, fp, lbox, todo[i], counts);
out:
	if (rc != 0)
		lbox->uidnext = 0;
	/* The rest of the batch is through too (gone from the remote, or
	   left after an error that ends the run). */
	size_t unfetched = 0;
	for (size_t i = 0; i < n; i++)
		unfetched += !b->msgs[i].fetched;
	progress_add(unfetched, 0);
	free(todo);
	free(ents);
	return rc;
}

static bool stopped(const struct sync_env *env)
{
	return env->stop != NULL && *env->stop;
}

int copy_uids(struct sync_env *env, const struct folder_pair *fp, const uint32_t *uids,
	      size_t n, struct stale_set *stale, struct local_pool *pool,
	      struct sync_counts *counts, copy_after_fn *after, void *after_ctx)
{
	struct batch *cur = NULL, *next = NULL;
	struct imap_mailbox lbox = { 0 };   /* the local folder, for the intents */
	size_t i = 0;
	int rc = 0;

	/* The first batches are small: the local server starts saving
	   while the remote is still read (nothing overlaps the first
	   fetch), then they grow to COPY_BATCH. */
	size_t size = COPY_BATCH / 8;
	if (n > 0 && !stopped(env))
		next = batch_send(env, fp, uids, n < size ? n : size);
	while (next != NULL) {
		cur = next;
		next = NULL;
		size_t k = cur->n, left = n - i - k;
		size = size * 4 < COPY_BATCH ? size * 4 : COPY_BATCH;
		/* The next batch's FETCH goes out before this one is
		   delivered: the remote streams it while the local server
		   saves this one (the local waits read it, see
		   imap_client_set_partner).  Two batches in memory at most. */
		if (left > 0 && !stopped(env))
			next = batch_send(env, fp, uids + i + k, left < size ? left : size);
		rc = copy_fetched(env, fp, cur, stale, pool, &lbox, counts);
		batch_free(env, &cur);
		if (after != NULL)
			rc = after(after_ctx, rc);
		i += k;
		if (rc != 0)
			break;
	}
	if (rc == 0 && i < n && stopped(env))
		rc = sync_fail(env, EXIT_TEMPFAIL, "stopped by a signal; the next run resumes");
	batch_free(env, &next);
	return rc;
}

