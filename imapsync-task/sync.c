/* sync.c - what every sync mode shares (see sync.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync.h"
#include "util.h"

int sync_fail(struct sync_env *env, int rc, const char *fmt, ...)
{
	va_list ap;

	if (env->error[0] != '\0')
		return rc;
	va_start(ap, fmt);
	vsnprintf(env->error, sizeof(env->error), fmt, ap);
	va_end(ap);
	return rc;
}

int sync_cmd_failed(struct sync_env *env, struct imap_client *c, int rc,
		    const struct imap_result *res, const char *what)
{
	if (res->status == IMAP_STATUS_NONE)
		return sync_fail(env, rc, "%s", res->text);
	return sync_fail(env, rc, "%s: %s failed: %s%s%s%s", imap_client_label(c), what,
			 res->code[0] ? "[" : "", res->code, res->code[0] ? "] " : "", res->text);
}

int sync_journal_failed(struct sync_env *env, int rc)
{
	return sync_fail(env, rc, "state journal: %s", journal_error(env->journal));
}

void entry_list_add(struct entry_list *l, struct jentry *e)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = e;
}

bool entry_listed(const struct entry_list *l, const struct jentry *e)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] == e)
			return true;
	return false;
}

void entry_list_free(struct entry_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int cmp_entry_ruid(const void *a, const void *b)
{
	const struct jentry *x = *(struct jentry *const *)a, *y = *(struct jentry *const *)b;
	return x->ruid < y->ruid ? -1 : x->ruid > y->ruid;
}

struct entry_query {
	struct entry_list *l;
	enum jstate state;
	uint32_t ruv;
	bool any_ruv;
};

static void collect_entry(void *ctx, struct jentry *e)
{
	struct entry_query *q = ctx;

	if (e->state == q->state && (q->any_ruv || e->ruv == q->ruv))
		entry_list_add(q->l, e);
}

void sync_entries(struct sync_env *env, const char *mbox, enum jstate st, uint32_t ruv,
		  bool any_ruv, struct entry_list *l)
{
	struct entry_query q = { l, st, ruv, any_ruv };

	memset(l, 0, sizeof(*l));
	journal_folder_foreach(env->journal, mbox, collect_entry, &q);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cmp_entry_ruid);
}

uint32_t *entry_uids(struct jentry *const *v, size_t n, bool local)
{
	uint32_t *uids = xcalloc(n + 1, sizeof(*uids));

	for (size_t i = 0; i < n; i++)
		uids[i] = local ? v[i]->luid : v[i]->ruid;
	return uids;
}
