/* test_imap_syntax.c - the IMAP text the typed commands put on the wire:
 * quoted strings, SEARCH dates (UTC, whatever TZ says, day boundaries,
 * the four-digit year) and UID SEARCH criteria from keys.  Links only
 * imap_syntax.c and util.c. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap_syntax.h"
#include "tap.h"

static void expect_quote(const char *in, const char *want)
{
	char *got = imap_quote(in);

	ok(strcmp(got, want) == 0, "quote %s -> %s (got %s)", in, want, got);
	free(got);
}

static void expect_date(time_t t, const char *want)
{
	char got[IMAP_SEARCH_DATE_LEN];
	bool r = imap_search_date(t, got);

	ok(r && strcmp(got, want) == 0, "date %lld -> %s (got %s%s)", (long long)t, want,
	   r ? "" : "refused ", got);
}

static void expect_criteria(unsigned keys, time_t before, const char *want)
{
	char *got = imap_search_criteria(keys, before);

	ok(got != NULL && strcmp(got, want) == 0, "criteria 0x%x, %lld -> \"%s\" (got \"%s\")",
	   keys, (long long)before, want, got != NULL ? got : "(refused)");
	free(got);
}

static void test_quote(void)
{
	expect_quote("INBOX", "\"INBOX\"");
	expect_quote("", "\"\"");
	expect_quote("a\"b\\c", "\"a\\\"b\\\\c\"");
	expect_quote("Sent Items", "\"Sent Items\"");
}

static void test_date(void)
{
	char out[IMAP_SEARCH_DATE_LEN];

	expect_date(0, "1-Jan-1970");
	expect_date(1709251199, "29-Feb-2024");        /* 2024-02-29 23:59:59 UTC */
	expect_date(1709251200, "1-Mar-2024");         /* one second later */
	expect_date(253402300799, "31-Dec-9999");      /* the longest, the last */
	expect_date(-1, "31-Dec-1969");
	/* The day is the UTC day, whatever the local time zone says. */
	setenv("TZ", "XYZ-14", 1);                     /* POSIX for UTC+14 */
	tzset();
	expect_date(1709251199, "29-Feb-2024");
	setenv("TZ", "UTC", 1);
	tzset();
	ok(!imap_search_date(253402300800, out) && out[0] == '\0',
	   "the year 10000 has no four-digit date: refused, out is \"\"");
}

static void test_criteria(void)
{
	expect_criteria(SEARCH_ALL, 0, "ALL");
	expect_criteria(SEARCH_UNSEEN | SEARCH_UNDELETED, 0, "UNSEEN UNDELETED");
	expect_criteria(SEARCH_SEEN | SEARCH_UNDELETED, 0, "SEEN UNDELETED");
	expect_criteria(SEARCH_DELETED, 0, "DELETED");
	expect_criteria(SEARCH_UNDELETED, 1709251200, "BEFORE 1-Mar-2024 UNDELETED");
	expect_criteria(SEARCH_ALL, 1709251200, "BEFORE 1-Mar-2024");
	ok(imap_search_criteria(1u << 7, 0) == NULL, "a bit that is no key is refused");
	ok(imap_search_criteria(SEARCH_SEEN, 253402300800) == NULL,
	   "a date with no four-digit year is refused");
}

int main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	test_quote();
	test_date();
	test_criteria();
	return tap_done();
}
