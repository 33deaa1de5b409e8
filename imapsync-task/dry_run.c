/* dry_run.c - the dry run's overlay of the journal (see dry_run.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dry_run.h"
#include "util.h"

/* Open addressing on (folder, UIDVALIDITY, UID); never shrinks. */
struct dry_overlay {
	struct jentry **slots;
	size_t nslots, n;
};

static uint64_t key_hash(const char *mbox, uint32_t ruv, uint32_t ruid)
{
	uint64_t h = fnv1a64(FNV1A64_INIT, mbox, strlen(mbox));

	h = fnv1a64(h, &ruv, sizeof(ruv));
	return fnv1a64(h, &ruid, sizeof(ruid));
}

static struct jentry **find_slot(struct dry_overlay *o, const char *mbox, uint32_t ruv,
				 uint32_t ruid)
{
	size_t i = (size_t)key_hash(mbox, ruv, ruid) & (o->nslots - 1);

	while (o->slots[i] != NULL) {
		struct jentry *e = o->slots[i];
		if (e->ruv == ruv && e->ruid == ruid && strcmp(e->mbox, mbox) == 0)
			break;
		i = (i + 1) & (o->nslots - 1);
	}
	return &o->slots[i];
}

static struct jentry *lookup(struct sync_env *env, const char *mbox, uint32_t ruv,
			     uint32_t ruid)
{
	if (env->dry == NULL)
		return NULL;
	return *find_slot(env->dry, mbox, ruv, ruid);
}

static void grow(struct dry_overlay *o)
{
	struct dry_overlay bigger = { xcalloc(o->nslots ? o->nslots * 2 : 256,
					      sizeof(struct jentry *)),
				      o->nslots ? o->nslots * 2 : 256, o->n };

	for (size_t i = 0; i < o->nslots; i++)
		if (o->slots[i] != NULL)
			*find_slot(&bigger, o->slots[i]->mbox, o->slots[i]->ruv,
				   o->slots[i]->ruid) = o->slots[i];
	free(o->slots);
	*o = bigger;
}

/* The overlay's entry for the key, made from tmpl if there is none. */
static struct jentry *upsert(struct sync_env *env, const struct jentry *tmpl)
{
	if (env->dry == NULL)
		env->dry = xcalloc(1, sizeof(*env->dry));
	struct dry_overlay *o = env->dry;
	if ((o->n + 1) * 2 > o->nslots)
		grow(o);
	struct jentry **slot = find_slot(o, tmpl->mbox, tmpl->ruv, tmpl->ruid);
	if (*slot == NULL) {
		struct jentry *e = xcalloc(1, sizeof(*e));
		e->mbox = xstrdup(tmpl->mbox);
		e->ruv = tmpl->ruv;
		e->ruid = tmpl->ruid;
		e->size = tmpl->size;
		e->hash = tmpl->hash;
		e->luv = tmpl->luv;
		e->luid = tmpl->luid;
		e->chash = tmpl->chash;
		e->clen = tmpl->clen;
		e->verified = tmpl->verified;
		e->state = tmpl->state;
		*slot = e;
		o->n++;
	}
	return *slot;
}

void dry_note_delivered(struct sync_env *env, const struct folder_pair *fp, uint32_t ruid,
			uint64_t size, uint64_t hash)
{
	if (!env->dry_run)
		return;
	/* Fetched by this run under this very key: a deletion needs no
	   second fetch to prove it, as in the real run. */
	struct jentry tmpl = { .mbox = (char *)fp->remote, .ruv = fp->ruv, .ruid = ruid,
			       .size = size, .hash = hash, .state = J_DELIVERED,
			       .verified = true };
	struct jentry *e = upsert(env, &tmpl);
	e->state = J_DELIVERED;
	e->size = size;
	e->hash = hash;
	e->verified = true;
}

void dry_note_seen(struct sync_env *env, const struct jentry *e)
{
	if (!env->dry_run)
		return;
	upsert(env, e)->state = J_SEEN;
}

struct jentry *dry_get(struct sync_env *env, const char *mbox, uint32_t ruv, uint32_t ruid)
{
	struct jentry *e = env->dry_run ? lookup(env, mbox, ruv, ruid) : NULL;

	return e != NULL ? e : journal_get(env->journal, mbox, ruv, ruid);
}

void dry_entries(struct sync_env *env, const char *mbox, enum jstate st, uint32_t ruv,
		 struct entry_list *l)
{
	size_t w = 0;

	sync_entries(env, mbox, st, ruv, false, l);
	if (!env->dry_run || env->dry == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		if (lookup(env, mbox, ruv, l->v[i]->ruid) == NULL)
			l->v[w++] = l->v[i];
	l->n = w;
	struct dry_overlay *o = env->dry;
	for (size_t i = 0; i < o->nslots; i++) {
		struct jentry *e = o->slots[i];
		if (e != NULL && e->state == st && e->ruv == ruv && strcmp(e->mbox, mbox) == 0)
			entry_list_add(l, e);
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_entry_ruid);
}

void dry_free(struct sync_env *env)
{
	struct dry_overlay *o = env->dry;

	if (o == NULL)
		return;
	for (size_t i = 0; i < o->nslots; i++) {
		if (o->slots[i] != NULL) {
			free(o->slots[i]->mbox);
			free(o->slots[i]);
		}
	}
	free(o->slots);
	free(o);
	env->dry = NULL;
}
