/* imap_syntax.c - IMAP text built from plain values (see imap_syntax.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_syntax.h"
#include "util.h"

char *imap_quote(const char *s)
{
	struct buf b = { 0 };

	buf_append(&b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(&b, "\\", 1);
		buf_append(&b, s, 1);
	}
	buf_append(&b, "\"", 2);  /* includes the NUL */
	return (char *)b.data;
}

bool imap_search_date(time_t t, char *out)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	out[0] = '\0';
	/* tm_year + 1900 cannot overflow: it is range-checked as tm_year. */
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return false;
	/* Longest output: "31-Dec-9999" is 11 bytes + NUL = IMAP_SEARCH_DATE_LEN. */
	snprintf(out, IMAP_SEARCH_DATE_LEN, "%d-%s-%04d", tm.tm_mday, mon[tm.tm_mon],
		 tm.tm_year + 1900);
	return true;
}

char *imap_search_criteria(unsigned keys, time_t before)
{
	/* In this order, so the criteria read as they always did. */
	static const struct { unsigned key; const char *atom; } map[] = {
		{ SEARCH_SEEN, "SEEN" }, { SEARCH_UNSEEN, "UNSEEN" },
		{ SEARCH_DELETED, "DELETED" }, { SEARCH_UNDELETED, "UNDELETED" },
	};
	unsigned known = 0;
	struct buf b = { 0 };

	for (size_t i = 0; i < N_ELEMENTS(map); i++)
		known |= map[i].key;
	if ((keys & ~known) != 0)
		return NULL;
	if (before != 0) {
		char date[IMAP_SEARCH_DATE_LEN];
		if (!imap_search_date(before, date))
			return NULL;
		buf_appendf(&b, "BEFORE %s", date);
	}
	for (size_t i = 0; i < N_ELEMENTS(map); i++)
		if (keys & map[i].key)
			buf_appendf(&b, "%s%s", b.len > 0 ? " " : "", map[i].atom);
	if (b.len == 0)
		buf_appendf(&b, "ALL");
	buf_append(&b, "", 1);
	return (char *)b.data;
}
