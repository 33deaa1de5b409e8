/* uidset.c - lists of message UIDs and IMAP UID sets.
 *
 * Parsing never trusts the set: it is read into ranges first, the ranges
 * are sorted and merged, and only when the size of the union with what
 * the list already holds is known to be within max_count is an array of
 * exactly that size allocated and filled, in order.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "uidset.h"
#include "util.h"

void uid_list_add(struct uid_list *l, uint32_t uid)
{
	if (l->count == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->uids = xreallocarray(l->uids, l->cap, sizeof(*l->uids));
	}
	l->uids[l->count++] = uid;
}

void uid_list_free(struct uid_list *l)
{
	free(l->uids);
	memset(l, 0, sizeof(*l));
}

char *uid_list_to_set(const uint32_t *uids, size_t n)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < n;) {
		size_t j = i;
		/* a run ends at UINT32_MAX: uids[j] + 1 would wrap to 0 */
		while (j + 1 < n && uids[j] != UINT32_MAX && uids[j + 1] == uids[j] + 1)
			j++;
		if (b.len > 0)
			buf_append(&b, ",", 1);
		if (j > i)
			buf_appendf(&b, "%u:%u", uids[i], uids[j]);
		else
			buf_appendf(&b, "%u", uids[i]);
		i = j + 1;
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

struct uid_range {
	uint32_t lo, hi;        /* lo <= hi */
};

/* nz-number: decimal digits, value 1..UINT32_MAX.  Leading zeros are
   tolerated ("007" is 7); the value decides, not the spelling. */
static bool parse_nz_number(const char **p, uint32_t *num_r)
{
	const char *s = *p;
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (unsigned)(*s - '0');
		if (n > UINT32_MAX)     /* checked per digit: n never overflows */
			return false;
	}
	if (n == 0)
		return false;
	*p = s;
	*num_r = (uint32_t)n;
	return true;
}

/* "a", "a:b" or "b:a", comma-separated, nothing else. */
static bool parse_ranges(const char *set, struct uid_range **ranges_r, size_t *n_r)
{
	/* Every element takes at least two bytes ("1,") but the last one:
	   this many ranges can never be exceeded. */
	size_t max = strlen(set) / 2 + 1, n = 0;
	struct uid_range *ranges = xreallocarray(NULL, max, sizeof(*ranges));
	const char *p = set;

	for (;;) {
		uint32_t a, b;

		if (!parse_nz_number(&p, &a))
			goto fail;
		b = a;
		if (*p == ':') {
			p++;
			if (!parse_nz_number(&p, &b))
				goto fail;
		}
		ranges[n].lo = a < b ? a : b;
		ranges[n].hi = a < b ? b : a;
		n++;
		if (*p == '\0')
			break;
		if (*p != ',')
			goto fail;
		p++;
	}
	*ranges_r = ranges;
	*n_r = n;
	return true;
fail:
	free(ranges);
	return false;
}

static int range_cmp(const void *a, const void *b)
{
	const struct uid_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sort and merge overlapping or adjacent ranges in place; returns the
   new number of ranges. */
static size_t merge_ranges(struct uid_range *r, size_t n)
{
	size_t w = 0;

	if (n == 0)
		return 0;
	qsort(r, n, sizeof(*r), range_cmp);
	for (size_t i = 1; i < n; i++) {
		/* in 64 bits: hi + 1 may be 2^32 */
		if ((uint64_t)r[i].lo <= (uint64_t)r[w].hi + 1) {
			if (r[i].hi > r[w].hi)
				r[w].hi = r[i].hi;
		} else {
			r[++w] = r[i];
		}
	}
	return w + 1;
}

size_t uid_array_sort_unique(uint32_t *v, size_t n)
{
	size_t w = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), u32_cmp);
	for (size_t i = 1; i < n; i++)
		if (v[i] != v[w])
			v[++w] = v[i];
	return w + 1;
}

/* The sorted union of disjoint sorted ranges and sorted distinct old
   UIDs.  With out == NULL only counts (in 64 bits: the ranges alone may
   hold 2^32 UIDs); otherwise writes exactly that many UIDs to out. */
static uint64_t merge_union(const struct uid_range *r, size_t nr,
			    const uint32_t *old, size_t nold, uint32_t *out)
{
	uint64_t total = 0;
	size_t i = 0;

	for (size_t k = 0; k < nr; k++) {
		for (; i < nold && old[i] < r[k].lo; i++) {
			if (out != NULL)
				out[total] = old[i];
			total++;
		}
		if (out != NULL) {
			for (uint64_t u = r[k].lo; u <= r[k].hi; u++)
				out[total++] = (uint32_t)u;
		} else {
			total += (uint64_t)r[k].hi - r[k].lo + 1;
		}
		while (i < nold && old[i] <= r[k].hi)
			i++;    /* already in this range */
	}
	for (; i < nold; i++) {
		if (out != NULL)
			out[total] = old[i];
		total++;
	}
	return total;
}

bool uid_set_parse(const char *set, struct uid_list *l, size_t max_count)
{
	struct uid_range *ranges;
	uint32_t *old = NULL, *out;
	size_t nr, nold = 0;
	uint64_t total;

	if (!parse_ranges(set, &ranges, &nr))
		return false;
	nr = merge_ranges(ranges, nr);
	if (l->count > 0) {
		/* a sorted, distinct copy: l stays as it is until success */
		old = xreallocarray(NULL, l->count, sizeof(*old));
		memcpy(old, l->uids, l->count * sizeof(*old));
		nold = uid_array_sort_unique(old, l->count);
	}
	total = merge_union(ranges, nr, old, nold, NULL);
	if (total > max_count) {
		free(old);
		free(ranges);
		return false;
	}
	/* total <= max_count: it fits in a size_t */
	out = xreallocarray(NULL, (size_t)total, sizeof(*out));
	(void)merge_union(ranges, nr, old, nold, out);
	free(old);
	free(ranges);
	free(l->uids);
	l->uids = out;
	l->count = l->cap = (size_t)total;
	return true;
}
