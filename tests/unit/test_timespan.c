/* test_timespan.c - systemd time spans (timespan.c), alone. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "timespan.h"
#include "util.h"

#define MIN 60ULL
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define WEEK (7 * DAY)
/* UINT64_MAX microseconds: the longest span systemd can hold */
#define SYSTEMD_MAX_SEC 18446744073709ULL

/* A span in seconds and as text. */
struct span {
	uint64_t sec;
	const char *text;
};

static void test_parse_good(void)
{
	static const struct span cases[] = {
		{ 0, "0" }, { 0, "0s" }, { 45, "45" }, { 45, "45 s" },
		{ 3, "1 second 1 sec 1 s" }, { 20, "10 10" },
		{ 15 * MIN, "15min" }, { 15 * MIN, "15 m" },
		{ 2 * MIN, "1minute 1minutes" },
		{ 90 * MIN, "1h 30min" }, { 90 * MIN, "1h30min" },
		{ 3 * HOUR, "3 hours" }, { 2 * HOUR, "1hr 1hour" },
		{ 3 * DAY, "1 day 2 days" }, { 2 * DAY, "2d" },
		{ 3 * WEEK, "2 weeks 1 week" }, { WEEK + DAY, "1w 1d" },
		{ HOUR, "\t1h\t" }, { 2 * HOUR, "  2h  " },
		{ DAY + HOUR + MIN + 1, "1d1h1m1s" },
		{ SYSTEMD_MAX_SEC, "18446744073709s" },
		{ SYSTEMD_MAX_SEC, "18446744073708s 1s" },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		uint64_t sec = 12345;
		bool parsed = timespan_parse(cases[i].text, &sec);

		ok(parsed && sec == cases[i].sec,
		   "\"%s\" = %llu (got %llu)", cases[i].text,
		   (unsigned long long)cases[i].sec, (unsigned long long)sec);
	}
}

static void test_parse_bad(void)
{
	static const char *const bad[] = {
		"", " ", "\t", "abc", "min", "1.5h", "-1", "+1", "15 parsecs",
		"1M", "1H", "1h,30min", "1h-30min", "99999999999999999999",
		"18446744073709551615s", "10000000000000w",
		"18446744073710s", "18446744073709s 1s",  /* one past the limit */
		"1ms", "1us", "1 months", "1y", "h1", "1 h m", "1h;",
	};

	for (size_t i = 0; i < N_ELEMENTS(bad); i++) {
		uint64_t sec = 777;

		ok(!timespan_parse(bad[i], &sec) && sec == 777,
		   "\"%s\" refused, result untouched", bad[i]);
	}
}

static void test_format(void)
{
	static const struct span cases[] = {
		{ 0, "0s" }, { 1, "1s" }, { 900, "900s" }, { 86400, "86400s" },
		{ UINT64_MAX, "18446744073709551615s" },
	};
	char buf[TIMESPAN_FORMAT_MAX];

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		const char *s = timespan_format(cases[i].sec, buf);

		ok(s == buf && strcmp(s, cases[i].text) == 0,
		   "format %s (got %s)", cases[i].text, s);
	}

	/* what is formatted parses back to the same value */
	for (uint64_t sec = 0; sec < 200000; sec += 997) {
		uint64_t back = 0;

		if (!timespan_parse(timespan_format(sec, buf), &back) ||
		    back != sec) {
			ok(0, "round trip of %llu (got %llu)",
			   (unsigned long long)sec, (unsigned long long)back);
			return;
		}
	}
	ok(1, "format then parse is the identity");
}

int main(void)
{
	test_parse_good();
	test_parse_bad();
	test_format();
	return tap_done();
}
