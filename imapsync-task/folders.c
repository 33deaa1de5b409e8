/* folders.c - the folder plan: remote LIST + local LIST -> pairs (see
 * folders.h for the rules).
 *
 * The plan is made in passes over one array of items, one per remote
 * LIST line (plus the parents the LIST left out):
 *   1. classify and translate each name (namespace, levels, remote_utf8);
 *   2. special use and exclusions of each selectable folder;
 *   3. local names: onto a local special-use folder, below one, or
 *      translated;
 *   4. collisions among the folders to copy;
 *   5. which local folders are missing, and their missing parents;
 *   6. order.
 * Nothing here does I/O; every string of the plan is malloc'd.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "folders.h"
#include "mutf7.h"
#include "util.h"

/* ---------------------------------------------------------------------
 * Well-known names of special-use folders, for servers that mark none.
 */

static const struct {
	const char *name;
	unsigned use;
} well_known[] = {
	{ "Sent", MBOX_SENT },
	{ "Sent Items", MBOX_SENT },
	{ "Sent Messages", MBOX_SENT },
	{ "Sent Mail", MBOX_SENT },
	{ "[Gmail]/Sent Mail", MBOX_SENT },
	{ "Gesendete Objekte", MBOX_SENT },
	{ "Gesendete Elemente", MBOX_SENT },
	{ "\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", MBOX_SENT },
	{ "Messages envoy\xc3\xa9s", MBOX_SENT },
	{ "Posta inviata", MBOX_SENT },
	{ "Elementos enviados", MBOX_SENT },
	{ "Enviados", MBOX_SENT },
	{ "Verzonden items", MBOX_SENT },
	{ "Drafts", MBOX_DRAFTS },
	{ "Entw\xc3\xbcrfe", MBOX_DRAFTS },
	{ "Brouillons", MBOX_DRAFTS },
	{ "Bozze", MBOX_DRAFTS },
	{ "Borradores", MBOX_DRAFTS },
	{ "Concepten", MBOX_DRAFTS },
	{ "Trash", MBOX_TRASH },
	{ "Deleted Items", MBOX_TRASH },
	{ "Deleted Messages", MBOX_TRASH },
	{ "Papierkorb", MBOX_TRASH },
	{ "Gel\xc3\xb6schte Elemente", MBOX_TRASH },
	{ "Corbeille", MBOX_TRASH },
	{ "Cestino", MBOX_TRASH },
	{ "Papelera", MBOX_TRASH },
	{ "Elementos eliminados", MBOX_TRASH },
	{ "Prullenbak", MBOX_TRASH },
	{ "[Gmail]/Trash", MBOX_TRASH },
	{ "[Gmail]/Bin", MBOX_TRASH },
	{ "Junk", MBOX_JUNK },
	{ "Junk E-mail", MBOX_JUNK },
	{ "Junk Email", MBOX_JUNK },
	{ "Spam", MBOX_JUNK },
	{ "Bulk Mail", MBOX_JUNK },
	{ "[Gmail]/Spam", MBOX_JUNK },
	{ "Spamverdacht", MBOX_JUNK },
	{ "Ind\xc3\xa9sirables", MBOX_JUNK },
	{ "Posta indesiderata", MBOX_JUNK },
	{ "Correo no deseado", MBOX_JUNK },
	{ "Archive", MBOX_ARCHIVE },
	{ "Archives", MBOX_ARCHIVE },
	{ "Archiv", MBOX_ARCHIVE },
};

/* First levels whose children are looked up by their own name:
   "INBOX/Sent" (servers that keep folders below INBOX), Gmail's. */
static const char *const well_known_parents[] = {
	"INBOX", "[Gmail]", "[Google Mail]",
};

#define ALL_WHY "\\All (Gmail) holds copies of every message"

/* The byte s[i], folded to lower case: ASCII letters, and Latin-1
   letters U+00C0-U+00DE (not U+00D7), which are 0xC3 0x80-0x9E in UTF-8
   and 0x20 higher in lower case.  0xC3 is never a continuation byte. */
static unsigned char fold_byte(const char *s, size_t i)
{
	unsigned char c = (unsigned char)s[i];

	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c + 0x20);
	if (i > 0 && (unsigned char)s[i - 1] == 0xc3 && c >= 0x80 &&
	    c <= 0x9e && c != 0x97)
		return (unsigned char)(c + 0x20);
	return c;
}

/* Are the n bytes at a the NUL-terminated b, case folded? */
static bool fold_eq(const char *a, size_t n, const char *b)
{
	if (strlen(b) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (fold_byte(a, i) != fold_byte(b, i))
			return false;
	}
	return true;
}

/* The use of the n bytes at name in the table; paths ("[Gmail]/...")
   only if with_paths. */
static unsigned well_known_use(const char *name, size_t n, bool with_paths)
{
	for (size_t i = 0; i < N_ELEMENTS(well_known); i++) {
		if (!with_paths && strchr(well_known[i].name, '/') != NULL)
			continue;
		if (fold_eq(name, n, well_known[i].name))
			return well_known[i].use;
	}
	return 0;
}

unsigned folder_special_by_name(const char *path)
{
	const char *slash = strchr(path, '/');
	unsigned use = well_known_use(path, strlen(path), true);

	if (use != 0 || slash == NULL || strchr(slash + 1, '/') != NULL)
		return use;
	for (size_t i = 0; i < N_ELEMENTS(well_known_parents); i++) {
		if (fold_eq(path, (size_t)(slash - path), well_known_parents[i]))
			return well_known_use(slash + 1, strlen(slash + 1), false);
	}
	return 0;
}

const char *plan_action_name(enum plan_action a)
{
	switch (a) {
	case PLAN_COPY:
		return "copy";
	case PLAN_EXCLUDED:
		return "excluded";
	case PLAN_PARENT_ONLY:
		return "parent";
	case PLAN_COLLISION:
		return "collision";
	case PLAN_BAD_NAME:
		return "bad-name";
	case PLAN_OTHER_NAMESPACE:
		return "other-namespace";
	}
	return "?";
}

/* ---------------------------------------------------------------------
 * Names.
 */

static bool is_inbox(const char *s, size_t n)
{
	return n == 5 && strncasecmp(s, "INBOX", 5) == 0;
}

/* A name for a message: in double quotes, bytes outside printable
   ASCII (and '"', '\') as \xNN. */
static char *quoted(const char *s)
{
	struct buf b = { 0 };

	buf_append(&b, "\"", 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			buf_appendf(&b, "\\x%02x", c);
		else
			buf_append(&b, s, 1);
	}
	buf_append(&b, "\"", 1);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* Does name start with the namespace prefix pfx?  *len_r gets how much
   of name it covers.  The namespace's root (the prefix without its
   trailing delimiter) is covered too.  A prefix starting with "INBOX"
   matches that part in any case. */
static bool ns_match(const char *name, const char *pfx, char delim,
		     size_t *len_r)
{
	size_t n = strlen(pfx), i = 0;

	if (n >= 5 && strncasecmp(pfx, "INBOX", 5) == 0 &&
	    strncasecmp(name, "INBOX", 5) == 0)
		i = 5;
	if (strncmp(name + i, pfx + i, n - i) == 0) {
		*len_r = n;
		return true;
	}
	if (n > i && delim != '\0' && pfx[n - 1] == delim &&
	    strlen(name) == n - 1 && strncmp(name + i, pfx + i, n - 1 - i) == 0) {
		*len_r = n - 1;
		return true;
	}
	return false;
}

/* The part of a (non-INBOX) name below the personal prefix, or NULL if
   the name belongs to another namespace. */
static const char *personal_rest(const struct folder_side *s,
				 const char *name, char delim)
{
	const char *pfx = s->prefix != NULL ? s->prefix : "";
	size_t plen, olen;
	char *dflt[3] = { NULL, NULL, NULL };
	const char *const *other = s->other_prefixes;
	bool personal = ns_match(name, pfx, delim, &plen);

	if (other == NULL && delim == '\0') {
		other = (const char *const *)dflt;
	} else if (other == NULL) {
		dflt[0] = xasprintf("Shared%c", delim);
		dflt[1] = xasprintf("Public%c", delim);
		other = (const char *const *)dflt;
	}
	for (size_t i = 0; personal && other[i] != NULL; i++) {
		if (ns_match(name, other[i], delim, &olen) && olen > plen)
			personal = false;
	}
	free(dflt[0]);
	free(dflt[1]);
	if (!personal)
		return NULL;
	/* a prefix written without its delimiter: "INBOX" for "INBOX.x" */
	if (plen > 0 && pfx[plen - 1] != delim && name[plen] == delim &&
	    delim != '\0')
		plen++;
	return name + plen;
}

static void levels_free(char **levels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(levels[i]);
	free(levels);
}

/* One level of a name to UTF-8: decoded from modified UTF-7, or checked
   as UTF-8; no control characters.  NULL with *why_r set. */
static char *level_decode(const char *s, size_t n, bool utf8, char **why_r)
{
	const char *what = utf8 ? "not valid UTF-8" : "not valid modified UTF-7";
	char *ret = NULL;
	uint32_t cp;
	size_t i, k;

	if (n == 0) {
		*why_r = xstrdup("empty hierarchy level");
		return NULL;
	}
	if (!utf8) {
		ret = mutf7_to_utf8(s, n);
	} else {
		for (i = 0; i < n; i += k) {
			k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
			if (k == 0 || cp == 0)
				break;
		}
		if (i == n)
			ret = xstrndup(s, n);
	}
	if (ret == NULL) {
		*why_r = xstrdup(what);
		return NULL;
	}
	for (i = 0; ret[i] != '\0'; i++) {
		if ((unsigned char)ret[i] < 0x20 || ret[i] == 0x7f) {
			*why_r = xstrdup("contains a control character");
			free(ret);
			return NULL;
		}
	}
	return ret;
}

/* Split rest at delim (0: a flat name) and decode each level.  On
   failure return false with *why_r ("WHAT: \"NAME\""). */
static bool levels_decode(const char *rest, char delim, bool utf8,
			  const char *wire, char ***levels_r, size_t *n_r,
			  char **why_r)
{
	char **levels = NULL, *why = NULL, *q;
	size_t n = 0;
	const char *p = rest, *end;

	for (;;) {
		end = delim != '\0' ? strchr(p, delim) : NULL;
		if (end == NULL)
			end = p + strlen(p);
		levels = xreallocarray(levels, n + 1, sizeof(*levels));
		levels[n] = level_decode(p, (size_t)(end - p), utf8, &why);
		if (levels[n] == NULL)
			break;
		n++;
		if (*end == '\0') {
			*levels_r = levels;
			*n_r = n;
			return true;
		}
		p = end + 1;
	}
	levels_free(levels, n);
	q = quoted(wire);
	*why_r = xasprintf("%s: %s", why, q);
	free(q);
	free(why);
	return false;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		(c >= 'A' && c <= 'F');
}

/* The levels joined with '/': a '/' in a level is "%2F", a '%' that
   could be read as such an escape (two hex digits follow) is "%25". */
static char *remote_utf8_join(char *const *levels, size_t n)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append(&b, "/", 1);
		for (const char *p = levels[i]; *p != '\0'; p++) {
			if (*p == '/')
				buf_append(&b, "%2F", 3);
			else if (*p == '%' && is_hex(p[1]) && is_hex(p[2]))
				buf_append(&b, "%25", 3);
			else
				buf_append(&b, p, 1);
		}
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* The look-alike that stands for the local delimiter inside a level. */
static const char *delim_lookalike(char delim)
{
	if (delim == '/')
		return "\xe2\x88\x95";          /* U+2215 DIVISION SLASH */
	if (delim == '.')
		return "\xe2\x80\xa4";          /* U+2024 ONE DOT LEADER */
	return "_";
}

/* A wire name in UTF-8 for logs (the wire name if it does not decode). */
static char *display_utf8(const char *wire, bool utf8)
{
	char *s = utf8 ? NULL : mutf7_to_utf8(wire, strlen(wire));

	return s != NULL ? s : xstrdup(wire);
}

/* A local name as a key: "INBOX" as the first level in any case is the
   one INBOX, so it is written in upper case. */
static char *local_key(const char *wire, char delim)
{
	char *key = xstrdup(wire);

	if (strncasecmp(key, "INBOX", 5) == 0 &&
	    (key[5] == '\0' || key[5] == delim))
		memcpy(key, "INBOX", 5);
	return key;
}

/* ---------------------------------------------------------------------
 * The items of the plan while it is made.
 */

enum rank {                     /* who keeps a local name: lowest */
	RANK_INBOX,
	RANK_BY_ATTR,
	RANK_SAME_NAME,         /* by well-known name, the local one's own */
	RANK_BY_NAME,
	RANK_OTHER,
};

struct item {
	struct plan_folder f;
	char **levels;          /* UTF-8 levels below the prefix, or NULL */
	size_t n_levels;
	size_t base_levels;     /* levels a local special-use folder replaced */
	size_t rest_off;        /* where the levels start in remote_wire */
	char delim;             /* the remote delimiter of this name */
	size_t order;           /* LIST position: the last tie-break */
	enum rank rank;
	char *lkey;             /* local_key() of local_wire */
	const char *ckey;       /* what a collision pass compares */
	bool mapped;            /* onto a local special-use folder */
};

/* A sorted string -> item lookup. */
struct index_ent {
	const char *key;
	size_t i;
};

struct index {
	struct index_ent *v;
	size_t n;
};

struct maker {
	const struct folder_side *remote, *local;
	char ldelim;
	struct item *v;
	size_t n;
	struct index by_remote;         /* remote_utf8 -> item */
	struct index local_names;       /* local key -> local LIST entry */
	/* The local special-use folders, by bit (MBOX_SENT = bit 8...). */
	const char *special_local[16];
};

static int index_ent_cmp(const void *a, const void *b)
{
	const struct index_ent *x = a, *y = b;
	int r = strcmp(x->key, y->key);

	return r != 0 ? r : (x->i > y->i) - (x->i < y->i);
}

static void index_add(struct index *ix, const char *key, size_t i)
{
	ix->v = xreallocarray(ix->v, ix->n + 1, sizeof(*ix->v));
	ix->v[ix->n].key = key;
	ix->v[ix->n].i = i;
	ix->n++;
}

static void index_sort(struct index *ix)
{
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), index_ent_cmp);
}

/* The first entry of key, or NULL. */
static const struct index_ent *index_find(const struct index *ix,
					  const char *key)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(ix->v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ix->n && strcmp(ix->v[lo].key, key) == 0 ? &ix->v[lo] : NULL;
}

static void index_free(struct index *ix)
{
	free(ix->v);
	ix->v = NULL;
	ix->n = 0;
}

static void remote_index_build(struct maker *m)
{
	index_free(&m->by_remote);
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].levels != NULL)
			index_add(&m->by_remote, m->v[i].f.remote_utf8, i);
	}
	index_sort(&m->by_remote);
}

/* The personal folder with this remote_utf8, or NULL. */
static struct item *item_find(struct maker *m, const char *remote_utf8)
{
	const struct index_ent *e = index_find(&m->by_remote, remote_utf8);

	return e != NULL ? &m->v[e->i] : NULL;
}

static struct item *item_new(struct maker *m, const char *wire,
			     unsigned attrs)
{
	struct item *it;

	m->v = xreallocarray(m->v, m->n + 1, sizeof(*m->v));
	it = &m->v[m->n];
	memset(it, 0, sizeof(*it));
	it->f.remote_wire = xstrdup(wire);
	it->f.attrs = attrs;
	it->order = m->n++;
	it->rank = RANK_OTHER;
	return it;
}

/* remote_utf8 of the first k levels of a personal folder (its ancestor):
   remote_utf8 cut before its k-th '/'. */
static char *ancestor_path(const struct item *it, size_t k)
{
	const char *p = it->f.remote_utf8;

	for (size_t i = 0; i < k; i++)
		p = strchr(p + 1, '/');
	return xstrndup(it->f.remote_utf8, (size_t)(p - it->f.remote_utf8));
}

/* 1. One remote LIST line. */
static void item_from_entry(struct maker *m, const struct folder_entry *e)
{
	const struct folder_side *s = m->remote;
	char delim = e->delim != '\0' ? e->delim : s->delim;
	bool inbox = is_inbox(e->name, strlen(e->name));
	const char *rest = inbox ? e->name : personal_rest(s, e->name, delim);
	char **levels = NULL, *why = NULL;
	size_t n = 0;
	struct item *it;

	if (rest != NULL && *rest == '\0')
		return;         /* the personal namespace's root */
	it = item_new(m, e->name, e->attrs);
	it->delim = delim;
	if (rest != NULL)
		it->rest_off = (size_t)(rest - e->name);
	if (inbox) {
		it->rank = RANK_INBOX;
		it->f.remote_utf8 = xstrdup("INBOX");
		it->f.local_wire = xstrdup("INBOX");
		it->f.local_utf8 = xstrdup("INBOX");
		it->lkey = xstrdup("INBOX");
		levels = xcalloc(1, sizeof(*levels));
		levels[n++] = xstrdup("INBOX");
	} else if (!levels_decode(rest != NULL ? rest : e->name, delim,
				  s->utf8_names, e->name, &levels, &n, &why)) {
		it->f.remote_utf8 = quoted(e->name);
		if (rest != NULL) {
			it->f.action = PLAN_BAD_NAME;
			it->f.why = why;
		} else {
			it->f.action = PLAN_OTHER_NAMESPACE;
			free(why);
		}
		return;
	} else {
		/* "inbox/x" is below the one INBOX */
		if (is_inbox(levels[0], strlen(levels[0])))
			memcpy(levels[0], "INBOX", 5);
		it->f.remote_utf8 = remote_utf8_join(levels, n);
	}
	if (rest == NULL) {
		it->f.action = PLAN_OTHER_NAMESPACE;
		levels_free(levels, n);
		return;
	}
	it->levels = levels;
	it->n_levels = n;
	it->f.action = (e->attrs & (MBOX_NOSELECT | MBOX_NONEXISTENT)) != 0 ?
		PLAN_PARENT_ONLY : PLAN_COPY;
}

/* 2. Special use and exclusions of the selectable folders. */
static void items_classify(struct maker *m, folder_excluded_fn *excluded,
			   void *ctx)
{
	unsigned marked = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].f.action == PLAN_COPY)
			marked |= m->v[i].f.attrs & FOLDER_SPECIAL_USES;
	}
	for (size_t i = 0; i < m->n; i++) {
		struct item *it = &m->v[i];
		char *why = NULL;

		if (it->f.action != PLAN_COPY)
			continue;
		if (it->rank != RANK_INBOX) {
			it->f.special = it->f.attrs & FOLDER_SPECIAL_USES;
			it->rank = it->f.special != 0 ? RANK_BY_ATTR : RANK_OTHER;
		}
		if (it->rank == RANK_OTHER) {
			it->f.special = folder_special_by_name(it->f.remote_utf8) &
				~marked;
			it->f.special_by_name = it->f.special != 0;
			it->rank = it->f.special != 0 ? RANK_BY_NAME : RANK_OTHER;
		}
		if ((it->f.attrs & MBOX_ALL) != 0) {
			it->f.action = PLAN_EXCLUDED;
			it->f.why = xstrdup(ALL_WHY);
		} else if (excluded != NULL &&
			   excluded(ctx, it->f.remote_utf8, &why)) {
			it->f.action = PLAN_EXCLUDED;
			it->f.why = why != NULL ? why : xstrdup("excluded");
		} else {
			free(why);
		}
	}
}

/* The local names: base (a local wire name and its UTF-8, possibly "")
   followed by levels, each with the local delimiter replaced and
   encoded for the local side.  False if a level cannot be encoded. */
static bool local_names_make(struct maker *m, struct item *it,
			     const char *base_wire, const char *base_utf8,
			     size_t from)
{
	const char *sub = delim_lookalike(m->ldelim);
	struct buf w = { 0 }, u = { 0 };

	buf_append(&w, base_wire, strlen(base_wire));
	buf_append(&u, base_utf8, strlen(base_utf8));
	for (size_t i = from; i < it->n_levels; i++) {
		struct buf lvl = { 0 };
		char *enc;

		for (const char *p = it->levels[i]; *p != '\0'; p++) {
			if (*p == m->ldelim)
				buf_append(&lvl, sub, strlen(sub));
			else
				buf_append(&lvl, p, 1);
		}
		enc = m->local->utf8_names ?
			xstrndup((const char *)lvl.data, lvl.len) :
			utf8_to_mutf7((const char *)lvl.data, lvl.len);
		if (w.len > 0 && w.data[w.len - 1] != (unsigned char)m->ldelim) {
			buf_append(&w, &m->ldelim, 1);
			buf_append(&u, &m->ldelim, 1);
		}
		if (enc != NULL)
			buf_append(&w, enc, strlen(enc));
		buf_append(&u, lvl.data, lvl.len);
		buf_free(&lvl);
		if (enc == NULL) {
			buf_free(&w);
			buf_free(&u);
			return false;
		}
		free(enc);
	}
	buf_append(&w, "", 1);
	buf_append(&u, "", 1);
	it->f.local_wire = (char *)w.data;
	it->f.local_utf8 = (char *)u.data;
	return true;
}

/* The local special-use folder a folder maps onto, or NULL. */
static const char *special_target(const struct maker *m,
				  const struct item *it)
{
	unsigned use = it->f.special & -it->f.special;   /* the lowest */

	if (use == 0 || (it->f.action != PLAN_COPY &&
			 it->f.action != PLAN_EXCLUDED))
		return NULL;
	for (unsigned bit = 0; bit < N_ELEMENTS(m->special_local); bit++) {
		if (use == 1u << bit)
			return m->special_local[bit];
	}
	return NULL;
}

/* 3. The local names of a personal folder: onto its local special-use
   folder; else below the nearest ancestor that maps onto one; else the
   translated name after the local prefix. */
static void item_local_names(struct maker *m, struct item *it)
{
	const struct folder_side *l = m->local;
	const char *pfx = l->prefix != NULL ? l->prefix : "";
	const struct item *base = NULL;
	char *base_utf8;
	bool ok;

	if (it->levels == NULL || it->f.local_wire != NULL)
		return;         /* not personal, or INBOX */
	for (size_t k = it->n_levels - 1; k > 0 && base == NULL; k--) {
		char *path = ancestor_path(it, k);
		const struct item *anc = item_find(m, path);

		free(path);
		if (anc != NULL && anc->mapped) {
			base = anc;
			it->base_levels = k;
		}
	}
	if (base != NULL) {
		ok = local_names_make(m, it, base->f.local_wire,
				      base->f.local_utf8, it->base_levels);
	} else {
		base_utf8 = display_utf8(pfx, l->utf8_names);
		ok = local_names_make(m, it, pfx, base_utf8, 0);
		free(base_utf8);
	}
	if (!ok) {
		char *q = quoted(it->f.remote_utf8);

		it->f.action = PLAN_BAD_NAME;
		it->f.why = xasprintf("cannot be encoded for the local "
				      "server: %s", q);
		free(q);
		return;
	}
	it->lkey = local_key(it->f.local_wire, m->ldelim);
}

static void items_local_names(struct maker *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct item *it = &m->v[i];
		const char *target = special_target(m, it);

		if (target == NULL)
			continue;
		it->f.local_wire = xstrdup(target);
		it->f.local_utf8 = display_utf8(target, m->local->utf8_names);
		it->lkey = local_key(target, m->ldelim);
		it->base_levels = it->n_levels;
		it->mapped = true;
		if (it->rank == RANK_BY_NAME &&
		    strcmp(it->f.local_utf8, it->f.remote_utf8) == 0)
			it->rank = RANK_SAME_NAME;
	}
	for (size_t i = 0; i < m->n; i++)
		item_local_names(m, &m->v[i]);
}

/* ---------------------------------------------------------------------
 * 4. Collisions.
 */

/* remote_utf8 compared level by level: '/' sorts before every other
   character, so "a" < "a/b" < "a b" and a parent precedes its
   children. */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned ca = *a == '/' ? 1 : *a == '\0' ? 0 : (unsigned char)*a + 1u;
		unsigned cb = *b == '/' ? 1 : *b == '\0' ? 0 : (unsigned char)*b + 1u;

		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca == 0)
			return 0;
	}
}

/* Plan order: INBOX first, then remote_utf8, then LIST order. */
static int item_order_cmp(const struct item *x, const struct item *y)
{
	int r;

	if ((x->rank == RANK_INBOX) != (y->rank == RANK_INBOX))
		return x->rank == RANK_INBOX ? -1 : 1;
	if ((r = path_cmp(x->f.remote_utf8, y->f.remote_utf8)) != 0)
		return r;
	return (x->order > y->order) - (x->order < y->order);
}

/* Who keeps a name: rank, then plan order. */
static int item_winner_cmp(const struct item *x, const struct item *y)
{
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return item_order_cmp(x, y);
}

static int item_ptr_order_cmp(const void *a, const void *b)
{
	return item_order_cmp(*(struct item *const *)a, *(struct item *const *)b);
}

static int item_key_cmp(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a;
	const struct item *y = *(struct item *const *)b;
	int r = strcmp(x->ckey, y->ckey);

	return r != 0 ? r : item_winner_cmp(x, y);
}

/* Among the folders to copy, the second and later with one local name
   (by_remote: one remote_utf8) become collisions naming the first. */
static void collisions_mark(struct maker *m, bool by_remote)
{
	struct item **p = xcalloc(m->n + 1, sizeof(*p));
	size_t n = 0, i, j;

	for (i = 0; i < m->n; i++) {
		if (m->v[i].f.action != PLAN_COPY)
			continue;
		m->v[i].ckey = by_remote ? m->v[i].f.remote_utf8 : m->v[i].lkey;
		p[n++] = &m->v[i];
	}
	if (n > 1)
		qsort(p, n, sizeof(*p), item_key_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(p[i]->ckey, p[j]->ckey) == 0; j++) {
			p[j]->f.action = PLAN_COLLISION;
			p[j]->f.why = xstrdup(p[i]->f.remote_utf8);
		}
	}
	free(p);
}

/* ---------------------------------------------------------------------
 * 5. Missing local folders and their parents.
 */

/* Is the local folder key there: selectable, or listed at all? */
static bool local_has(const struct maker *m, const char *key, bool selectable)
{
	const struct index_ent *e;
	unsigned attrs;

	if (strcmp(key, "INBOX") == 0)
		return true;
	if ((e = index_find(&m->local_names, key)) == NULL)
		return false;
	attrs = m->local->v[e->i].attrs;
	return !selectable ||
		(attrs & (MBOX_NOSELECT | MBOX_NONEXISTENT)) == 0;
}

static void local_index_build(struct maker *m)
{
	const struct folder_side *l = m->local;

	for (size_t i = 0; i < l->n; i++) {
		const struct folder_entry *e = &l->v[i];
		unsigned use = e->attrs & FOLDER_SPECIAL_USES;

		index_add(&m->local_names, local_key(e->name, m->ldelim), i);
		if ((e->attrs & (MBOX_NOSELECT | MBOX_NONEXISTENT)) != 0)
			continue;
		for (unsigned bit = 0; bit < N_ELEMENTS(m->special_local); bit++) {
			if ((use & (1u << bit)) != 0 && m->special_local[bit] == NULL)
				m->special_local[bit] = e->name;
		}
	}
	index_sort(&m->local_names);
}

/* The number of levels of a remote_utf8. */
static size_t path_levels(const char *path)
{
	size_t n = 1;

	while ((path = strchr(path, '/')) != NULL) {
		path++;
		n++;
	}
	return n;
}

/* Add the parent (its first k levels) of m->v[src] that the remote LIST
   left out. */
static void parent_add(struct maker *m, size_t src, size_t k)
{
	struct item *it = item_new(m, "", MBOX_NONEXISTENT);
	const struct item *from = &m->v[src];   /* after item_new's realloc */
	const char *p = from->f.remote_wire + from->rest_off;

	for (size_t i = 0; i < k; i++)
		p = strchr(p, from->delim) + 1;
	free(it->f.remote_wire);
	it->f.remote_wire = xstrndup(from->f.remote_wire,
				     (size_t)(p - 1 - from->f.remote_wire));
	it->f.remote_utf8 = ancestor_path(from, k);
	it->f.action = PLAN_PARENT_ONLY;
	it->delim = from->delim;
	it->rest_off = from->rest_off;
	it->n_levels = k;
	it->levels = xcalloc(k, sizeof(*it->levels));
	for (size_t i = 0; i < k; i++)
		it->levels[i] = xstrdup(from->levels[i]);
}

/* The ancestors of each folder to create, below the local folder its
   base stands for: with missing, collect those the remote LIST left out
   (path -> the folder); without, have those missing locally created. */
static void ancestors_pass(struct maker *m, struct index *missing)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct item *it = &m->v[i];

		if (it->f.action != PLAN_COPY || !it->f.create)
			continue;
		for (size_t k = it->base_levels + 1; k < it->n_levels; k++) {
			char *path = ancestor_path(it, k);
			struct item *anc = item_find(m, path);

			if (anc == NULL && missing != NULL) {
				index_add(missing, path, i);
				continue;
			}
			if (anc != NULL && missing == NULL && anc->lkey != NULL &&
			    !local_has(m, anc->lkey, false))
				anc->f.create = true;
			free(path);
		}
	}
}

static void items_create(struct maker *m)
{
	struct index missing = { 0 };
	size_t n = m->n, i;

	for (i = 0; i < m->n; i++) {
		struct item *it = &m->v[i];

		it->f.create = it->f.action == PLAN_COPY &&
			!local_has(m, it->lkey, true);
	}
	ancestors_pass(m, &missing);
	index_sort(&missing);
	for (i = 0; i < missing.n; i++) {
		if (i == 0 || strcmp(missing.v[i - 1].key, missing.v[i].key) != 0)
			parent_add(m, missing.v[i].i, path_levels(missing.v[i].key));
	}
	for (i = 0; i < missing.n; i++)
		free((char *)missing.v[i].key);
	index_free(&missing);
	remote_index_build(m);
	for (i = n; i < m->n; i++)
		item_local_names(m, &m->v[i]);
	ancestors_pass(m, NULL);
}

/* ---------------------------------------------------------------------
 * 6. The plan.
 */

static void item_free(struct item *it)
{
	levels_free(it->levels, it->n_levels);
	free(it->lkey);
}

static void plan_folder_clear(struct plan_folder *f)
{
	free(f->remote_wire);
	free(f->remote_utf8);
	free(f->local_wire);
	free(f->local_utf8);
	free(f->why);
}

void folder_plan_make(const struct folder_side *remote,
		      const struct folder_side *local,
		      folder_excluded_fn *excluded, void *ctx,
		      struct folder_plan *plan_r)
{
	struct maker m = { .remote = remote, .local = local };
	struct index creates = { 0 };
	struct item **p;
	size_t i;

	m.ldelim = local->delim != '\0' ? local->delim : '/';
	local_index_build(&m);
	for (i = 0; i < remote->n; i++)
		item_from_entry(&m, &remote->v[i]);
	remote_index_build(&m);
	items_classify(&m, excluded, ctx);
	items_local_names(&m);
	collisions_mark(&m, false);
	collisions_mark(&m, true);
	items_create(&m);

	p = xcalloc(m.n + 1, sizeof(*p));
	for (i = 0; i < m.n; i++)
		p[i] = &m.v[i];
	if (m.n > 1)
		qsort(p, m.n, sizeof(*p), item_ptr_order_cmp);
	/* a local name is created once, by the first entry that has it */
	for (i = 0; i < m.n; i++) {
		if (p[i]->f.create)
			index_add(&creates, p[i]->lkey, i);
	}
	index_sort(&creates);
	for (i = 1; i < creates.n; i++) {
		if (strcmp(creates.v[i - 1].key, creates.v[i].key) == 0)
			p[creates.v[i].i]->f.create = false;
	}
	index_free(&creates);
	plan_r->n = m.n;
	plan_r->v = xcalloc(m.n + 1, sizeof(*plan_r->v));
	for (i = 0; i < m.n; i++) {
		plan_r->v[i] = p[i]->f;
		item_free(p[i]);
	}
	free(p);
	free(m.v);
	index_free(&m.by_remote);
	for (i = 0; i < m.local_names.n; i++)
		free((char *)m.local_names.v[i].key);
	index_free(&m.local_names);
}

void folder_plan_free(struct folder_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		plan_folder_clear(&plan->v[i]);
	free(plan->v);
	plan->v = NULL;
	plan->n = 0;
}
