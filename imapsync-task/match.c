/* match.c - one-to-one content matching (see match.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "util.h"

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

/* The exact bytes first; then, where the entry has one, the content
   hash: a server may store line ends, a missing final newline or NULs
   its own way (FAULTS row 33). */
bool match_copy(const struct jentry *e, const struct msgbody *local, bool suffix)
{
	uint64_t size = msgbody_size(local);

	if (!suffix && size == e->size && msgbody_hash(local) == e->hash)
		return true;
	if (suffix && size >= e->size && suffix_hash(local, e->size) == e->hash)
		return true;
	if (e->clen == 0)
		return false;
	if (!suffix)
		return msgbody_content_hash(local) == e->chash &&
			msgbody_content_len(local) == e->clen;
	return content_suffix_hash(local, e->clen) == e->chash;
}

int match_size_rank(const struct jentry *e, uint64_t size, bool suffix)
{
	if (suffix ? size >= e->size : size == e->size)
		return 0;
	return e->clen != 0 ? 1 : -1;
}


static void collect_stale(void *ctx, struct jentry *e)
{
	struct stale_set *s = ctx;

	if (e->ruv == s->ruv || (e->state != J_DELIVERED && e->state != J_SEEN))
		return;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
	}
	s->v[s->n++] = e;
}

void stale_collect(struct journal *j, const char *mbox, uint32_t ruv, struct stale_set *s)
{
	memset(s, 0, sizeof(*s));
	s->ruv = ruv;
	journal_folder_foreach(j, mbox, collect_stale, s);
}

struct jentry *stale_claim(struct stale_set *s, uint64_t size, uint64_t hash)
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

void stale_free(struct stale_set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ */
/* the local pool                                                      */

static void pool_size_cb(void *ctx, struct imap_fetched *m)
{
	struct local_pool *p = ctx;

	if (p->uids.count == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->sizes = xreallocarray(p->sizes, p->cap, sizeof(*p->sizes));
		p->taken = xreallocarray(p->taken, p->cap, sizeof(*p->taken));
		p->ids = xreallocarray(p->ids, p->cap, sizeof(*p->ids));
	}
	p->sizes[p->uids.count] = m->size;
	p->taken[p->uids.count] = false;
	memset(&p->ids[p->uids.count], 0, sizeof(*p->ids));
	uid_list_add(&p->uids, m->uid);
}

static void mark_claimed(void *ctx, struct jentry *e)
{
	struct local_pool *p = ctx;

	if (e->luv != p->luv || e->luid == 0)
		return;
	for (size_t i = 0; i < p->uids.count; i++)
		if (p->uids.uids[i] == e->luid)
			p->taken[i] = true;
}

int local_pool_load(struct imap_client *local, const char *local_name,
		    struct journal *j, const char *mbox, struct local_pool *p,
		    struct imap_result *res)
{
	struct imap_mailbox box;
	int rc;

	memset(p, 0, sizeof(*p));
	if ((rc = imap_select(local, local_name, true, &box, res)) != 0)
		return rc;
	p->luv = box.uidvalidity;
	if (box.exists == 0)
		return 0;
	if ((rc = imap_uid_fetch(local, "1:*", "RFC822.SIZE", pool_size_cb, p, res)) != 0)
		return rc;
	journal_folder_foreach(j, mbox, mark_claimed, p);
	return 0;
}

/* A local body's identity, fetched once per message. */
static void pool_hash_cb(void *ctx, struct imap_fetched *m)
{
	struct jentry *id = ctx;

	if (m->body == NULL)
		return;
	id->size = msgbody_size(m->body);
	id->hash = msgbody_hash(m->body);
	id->chash = msgbody_content_hash(m->body);
	id->clen = msgbody_content_len(m->body);
	id->state = J_DELIVERED;   /* "known" */
}

/* Only messages of the same size are compared (a first run into a full
   folder must not fetch every local body for every remote one), and each
   local body is fetched at most once. */
int64_t local_pool_claim(struct imap_client *local, struct local_pool *p,
			 const struct jentry *want, struct imap_result *res)
{
	for (size_t i = 0; i < p->uids.count; i++) {
		struct jentry *id = &p->ids[i];
		char one[16];

		if (p->taken[i] || p->sizes[i] != want->size)
			continue;
		if (id->state == 0) {
			snprintf(one, sizeof(one), "%u", p->uids.uids[i]);
			if (imap_uid_fetch(local, one, "BODY.PEEK[]", pool_hash_cb, id, res) != 0)
				return -1;
		}
		bool same = id->state != 0 && id->size == want->size &&
			(id->hash == want->hash ||
			 (want->clen != 0 && id->chash == want->chash && id->clen == want->clen));
		if (same) {
			p->taken[i] = true;
			return p->uids.uids[i];
		}
	}
	return 0;
}

void local_pool_free(struct local_pool *p)
{
	uid_list_free(&p->uids);
	free(p->sizes);
	free(p->taken);
	free(p->ids);
	memset(p, 0, sizeof(*p));
}
