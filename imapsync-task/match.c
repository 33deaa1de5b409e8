/* match.c - one-to-one content matching (see match.h). */
#include "config.h"

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
