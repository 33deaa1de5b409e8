/* test_uidset.c - UID lists and UID sets: formatting, strict parsing,
 * sorting and deduplication (also of a bare array), the max_count bound,
 * and that a refused set leaves the list alone.  Links only uidset.c and
 * util.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "uidset.h"
#include "util.h"

/* "1,2,3" for the list, to compare with what a test expects. */
static char *list_text(const struct uid_list *l)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < l->count; i++)
		buf_appendf(&b, "%s%u", i > 0 ? "," : "", l->uids[i]);
	buf_append(&b, "", 1);
	return (char *)b.data;
}

static void expect_parse(const char *set, size_t max, const char *want)
{
	struct uid_list l = { 0 };
	bool r = uid_set_parse(set, &l, max);
	char *got = list_text(&l);

	ok(r && strcmp(got, want) == 0, "parse \"%s\" (max %zu) -> %s (got %s%s)",
	   set, max, want, r ? "" : "refused ", got);
	free(got);
	uid_list_free(&l);
}

static void expect_refused(const char *set, size_t max, const char *why)
{
	struct uid_list l = { 0 };
	bool r = uid_set_parse(set, &l, max);

	ok(!r && l.count == 0 && l.uids == NULL, "refuse \"%s\": %s", set, why);
	uid_list_free(&l);
}

static void expect_to_set(const uint32_t *uids, size_t n, const char *want)
{
	char *got = uid_list_to_set(uids, n);

	ok(got != NULL && strcmp(got, want) == 0, "to_set -> \"%s\" (got \"%s\")",
	   want, got != NULL ? got : "(null)");
	free(got);
}

static void test_to_set(void)
{
	static const uint32_t a[] = { 1, 2, 3, 7 };
	static const uint32_t b[] = { 5 };
	static const uint32_t c[] = { 1, 3, 5, 6, 7, 8, 10 };
	static const uint32_t d[] = { 4294967293u, 4294967294u, 4294967295u };
	static const uint32_t e[] = { 4294967295u, 1 };   /* not sorted */

	expect_to_set(a, 0, "");
	expect_to_set(a, N_ELEMENTS(a), "1:3,7");
	expect_to_set(b, 1, "5");
	expect_to_set(c, N_ELEMENTS(c), "1,3,5:8,10");
	expect_to_set(d, N_ELEMENTS(d), "4294967293:4294967295");
	/* a run never wraps from UINT32_MAX to 0/1 */
	expect_to_set(e, N_ELEMENTS(e), "4294967295,1");
	expect_to_set(c + 2, 3, "5:7");
}

static void test_parse_valid(void)
{
	expect_parse("1", 10, "1");
	expect_parse("1:3,7", 10, "1,2,3,7");
	expect_parse("3:1", 10, "1,2,3");
	expect_parse("7,1:3", 10, "1,2,3,7");
	expect_parse("5,5,5", 10, "5");
	expect_parse("1:5,3:8", 10, "1,2,3,4,5,6,7,8");
	expect_parse("2:4,4:2", 10, "2,3,4");
	expect_parse("9,1:2,8,3", 10, "1,2,3,8,9");
	expect_parse("4294967295", 1, "4294967295");
	expect_parse("4294967294:4294967295", 2, "4294967294,4294967295");
	expect_parse("007", 1, "7");
	/* the bound counts distinct UIDs: these are three */
	expect_parse("1:3,1:3,2", 3, "1,2,3");
	expect_parse("1:3", 3, "1,2,3");
}

static void test_parse_refused(void)
{
	expect_refused("", 10, "empty set");
	expect_refused(",", 10, "empty elements");
	expect_refused("1,", 10, "trailing empty element");
	expect_refused(",1", 10, "leading empty element");
	expect_refused("1,,2", 10, "empty element in the middle");
	expect_refused("1:", 10, "range without an end");
	expect_refused(":3", 10, "range without a start");
	expect_refused("*", 10, "'*' is no UID here");
	expect_refused("1:*", 10, "'*' as the end of a range");
	expect_refused("0", 10, "0 is no UID");
	expect_refused("0:3", 10, "0 as the start of a range");
	expect_refused("00", 10, "0 spelled twice");
	expect_refused("4294967296", 10, "above UINT32_MAX");
	expect_refused("1:4294967296", 10, "range end above UINT32_MAX");
	expect_refused("99999999999999999999999", 10, "far above UINT64_MAX");
	expect_refused("1:2:3", 10, "two colons");
	expect_refused("+1", 10, "a sign");
	expect_refused("-1", 10, "a minus");
	expect_refused(" 1", 10, "leading space");
	expect_refused("1 ", 10, "trailing space");
	expect_refused("1, 2", 10, "space after a comma");
	expect_refused("1;2", 10, "another separator");
	expect_refused("a", 10, "not a number");
	expect_refused("1:3", 2, "a range over max_count");
	expect_refused("1,2,3", 2, "elements over max_count in total");
	expect_refused("1:4294967295", 1000, "a huge range is refused before allocating");
	/* overlapping ranges count once: 2^32 - 1 UIDs, one over the bound */
	expect_refused("1:4294967295,1:4294967295", 4294967294u,
		       "huge overlapping ranges are counted once, and refused");
	expect_refused("5", 0, "max_count 0 takes nothing");
}

static void test_merge_into_list(void)
{
	struct uid_list l = { 0 };
	char *text;

	uid_list_add(&l, 9);
	uid_list_add(&l, 2);
	uid_list_add(&l, 9);
	ok(uid_set_parse("1:3,5", &l, 10), "parse into a non-empty list");
	text = list_text(&l);
	ok(strcmp(text, "1,2,3,5,9") == 0, "the union, sorted, no duplicates (%s)", text);
	free(text);

	/* 1,2,3,5,9 + 4,6,7,8,10 = 10 distinct: fits; one more does not */
	ok(uid_set_parse("4,6:8,10", &l, 10) && l.count == 10,
	   "the bound counts the union (%zu)", l.count);
	ok(!uid_set_parse("11", &l, 10) && l.count == 10, "one over the bound is refused");
	ok(uid_set_parse("1:10", &l, 10) && l.count == 10,
	   "UIDs already there do not count twice");

	/* a refusal leaves the list as it was, even unsorted */
	uid_list_free(&l);
	uid_list_add(&l, 7);
	uid_list_add(&l, 3);
	uint32_t *before = l.uids;
	ok(!uid_set_parse("1,,2", &l, 10) && l.count == 2 && l.uids == before &&
	   l.uids[0] == 7 && l.uids[1] == 3, "a syntax error leaves the list alone");
	ok(!uid_set_parse("1:20", &l, 10) && l.count == 2 && l.uids[0] == 7 &&
	   l.uids[1] == 3, "too many UIDs leave the list alone");

	/* the list stays usable with uid_list_add after a parse */
	ok(uid_set_parse("4", &l, 10), "parse once more");
	uid_list_add(&l, 100);
	text = list_text(&l);
	ok(strcmp(text, "3,4,7,100") == 0, "uid_list_add after a parse (%s)", text);
	free(text);
	uid_list_free(&l);
	ok(l.uids == NULL && l.count == 0 && l.cap == 0, "uid_list_free zeroes the list");
}

static void test_round_trip(void)
{
	struct uid_list l = { 0 }, back = { 0 };
	unsigned seed = 12345;
	bool all_ok = true;

	for (int round = 0; round < 200 && all_ok; round++) {
		uint32_t u = 1;

		uid_list_free(&l);
		uid_list_free(&back);
		for (int k = 0; k < 50; k++) {
			seed = seed * 1103515245u + 12345u;
			u += 1 + (seed >> 16) % (round % 3 == 0 ? 2 : 1000);
			uid_list_add(&l, u);
		}
		char *set = uid_list_to_set(l.uids, l.count);
		all_ok = uid_set_parse(set, &back, l.count) && back.count == l.count &&
			memcmp(back.uids, l.uids, l.count * sizeof(*l.uids)) == 0;
		if (!all_ok)
			diag("round %d: %s", round, set);
		free(set);
	}
	ok(all_ok, "parse(to_set(x)) == x for 200 random sorted lists");
	uid_list_free(&l);
	uid_list_free(&back);
}

static void expect_sort_unique(const uint32_t *in, size_t n, const char *want)
{
	struct uid_list l = { 0 };
	char *got;

	for (size_t i = 0; i < n; i++)
		uid_list_add(&l, in[i]);
	l.count = uid_array_sort_unique(l.uids, l.count);
	got = list_text(&l);
	ok(strcmp(got, want) == 0, "sort_unique -> %s (got %s)", want, got);
	free(got);
	uid_list_free(&l);
}

static void test_sort_unique(void)
{
	static const uint32_t a[] = { 7, 3, 3, 1, 4294967295u, 7, 2 };
	static const uint32_t b[] = { 5, 5, 5 };
	static const uint32_t c[] = { 9 };

	expect_sort_unique(a, N_ELEMENTS(a), "1,2,3,7,4294967295");
	expect_sort_unique(b, N_ELEMENTS(b), "5");
	expect_sort_unique(c, N_ELEMENTS(c), "9");
	expect_sort_unique(NULL, 0, "");
}

int main(void)
{
	test_to_set();
	test_sort_unique();
	test_parse_valid();
	test_parse_refused();
	test_merge_into_list();
	test_round_trip();
	return tap_done();
}
