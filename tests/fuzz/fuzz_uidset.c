/* fuzz_uidset.c - libFuzzer target for UID sets (uidset.c).
 *
 * The input is a UID set as a server would send it (up to the first NUL
 * byte).  When uid_set_parse() accepts it:
 *  - the list is sorted ascending, without duplicates or 0, within the
 *    bound, and holds both ends of every element of the input;
 *  - parse(to_set(list)) gives back exactly the list, and to_set of that
 *    gives back the same text (the canonical form is stable);
 *  - parsing the input into a list that already holds some UIDs gives
 *    the sorted union.
 * When it refuses the input, the list is left untouched.  Any violation
 * abort()s so the fuzzer records the input.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uidset.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that a fuzzer's "1:9999" costs little: speed matters
   more here than size, which the unit test covers. */
#define MAX_UIDS 5000

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_uidset: invariant broken: %s\n", what);
		abort();
	}
}

static bool contains(const struct uid_list *l, uint32_t u)
{
	size_t lo = 0, hi = l->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->uids[mid] == u)
			return true;
		if (l->uids[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void check_canonical(const struct uid_list *l, size_t max)
{
	check(l->count > 0 && l->count <= max, "count within 1..max");
	check(l->cap >= l->count, "cap >= count");
	for (size_t i = 0; i < l->count; i++) {
		check(l->uids[i] != 0, "no UID 0");
		check(i == 0 || l->uids[i - 1] < l->uids[i], "sorted, no duplicates");
	}
}

/* Both ends of every element are in the list (the set was accepted, so
   it is digits, ':' and ',' only). */
static void check_ends(const char *set, const struct uid_list *l)
{
	const char *p = set;

	while (*p != '\0') {
		char *end;
		unsigned long long u = strtoull(p, &end, 10);

		check(end != p && u >= 1 && u <= UINT32_MAX, "accepted number");
		check(contains(l, (uint32_t)u), "every number of the set is in the list");
		p = end;
		if (*p == ':' || *p == ',')
			p++;
	}
}

static void check_round_trip(const struct uid_list *l)
{
	struct uid_list back = { 0 };
	char *set = uid_list_to_set(l->uids, l->count), *again;

	check(set != NULL && *set != '\0', "to_set gives a non-empty set");
	check(uid_set_parse(set, &back, l->count), "to_set output parses");
	check(back.count == l->count &&
	      memcmp(back.uids, l->uids, l->count * sizeof(*l->uids)) == 0,
	      "parse(to_set(x)) == x");
	again = uid_list_to_set(back.uids, back.count);
	check(strcmp(set, again) == 0, "to_set is stable");
	free(again);
	free(set);
	uid_list_free(&back);
}

/* Parsing into a list holding 3, 1, 3, UINT32_MAX gives the union. */
static void check_union(const char *set, const struct uid_list *alone)
{
	static const uint32_t extra[] = { 3, 1, 3, UINT32_MAX };
	struct uid_list l = { 0 };
	size_t want = alone->count;

	for (size_t i = 0; i < N_ELEMENTS(extra); i++)
		uid_list_add(&l, extra[i]);
	for (size_t i = 0; i < N_ELEMENTS(extra); i++)
		if (i != 2 && !contains(alone, extra[i]))
			want++;
	check(uid_set_parse(set, &l, want), "the union fits a bound of its size");
	check_canonical(&l, want);
	check(l.count == want, "union size");
	for (size_t i = 0; i < alone->count; i++)
		check(contains(&l, alone->uids[i]), "union holds the set");
	for (size_t i = 0; i < N_ELEMENTS(extra); i++)
		check(contains(&l, extra[i]), "union holds the old UIDs");
	uid_list_free(&l);

	/* one less than the union is refused, and changes nothing */
	for (size_t i = 0; i < N_ELEMENTS(extra); i++)
		uid_list_add(&l, extra[i]);
	check(!uid_set_parse(set, &l, want - 1), "a bound below the union refuses");
	check(l.count == N_ELEMENTS(extra) &&
	      memcmp(l.uids, extra, sizeof(extra)) == 0, "refusal leaves the list");
	uid_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *set = xstrndup((const char *)data, size);
	struct uid_list l = { 0 };

	if (uid_set_parse(set, &l, MAX_UIDS)) {
		check_canonical(&l, MAX_UIDS);
		check_ends(set, &l);
		check_round_trip(&l);
		check_union(set, &l);
	} else {
		check(l.count == 0 && l.uids == NULL && l.cap == 0,
		      "a refused set leaves the list empty");
	}
	uid_list_free(&l);
	free(set);
	return 0;
}
