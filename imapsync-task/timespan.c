/* timespan.c - systemd time spans: parse what users write, format what
 * units get.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "timespan.h"
#include "util.h"

/* Seconds per unit; a subset of systemd.time(7) that systemd parses the
   same way. */
static const struct {
	const char *name;
	uint64_t sec;
} timespan_units[] = {
	{ "s", 1 }, { "sec", 1 }, { "second", 1 }, { "seconds", 1 },
	{ "m", 60 }, { "min", 60 }, { "minute", 60 }, { "minutes", 60 },
	{ "h", 3600 }, { "hr", 3600 }, { "hour", 3600 }, { "hours", 3600 },
	{ "d", 86400 }, { "day", 86400 }, { "days", 86400 },
	{ "w", 604800 }, { "week", 604800 }, { "weeks", 604800 },
};

/* systemd keeps time spans in microseconds. */
#define TIMESPAN_MAX_SEC (UINT64_MAX / 1000000)

/* Seconds per unit of the len letters at unit; 0 if unknown. */
static uint64_t unit_sec(const char *unit, size_t len)
{
	for (size_t i = 0; i < N_ELEMENTS(timespan_units); i++) {
		if (strlen(timespan_units[i].name) == len &&
		    memcmp(timespan_units[i].name, unit, len) == 0)
			return timespan_units[i].sec;
	}
	return 0;
}

static const char *skip_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

bool timespan_parse(const char *text, uint64_t *sec_r)
{
	const char *p = skip_blanks(text);
	uint64_t total = 0;
	bool any = false;

	while (*p != '\0') {
		uint64_t n = 0, mult;
		const char *unit;

		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p - '0');

			if (n > (TIMESPAN_MAX_SEC - d) / 10)
				return false;
			n = n * 10 + d;
			p++;
		}
		unit = p = skip_blanks(p);
		while (*p >= 'a' && *p <= 'z')
			p++;
		/* a bare number is seconds */
		mult = p == unit ? 1 : unit_sec(unit, (size_t)(p - unit));
		if (mult == 0)
			return false;
		if (n > TIMESPAN_MAX_SEC / mult ||
		    total > TIMESPAN_MAX_SEC - n * mult)
			return false;
		total += n * mult;
		any = true;
		p = skip_blanks(p);
	}
	if (!any)
		return false;
	*sec_r = total;
	return true;
}

const char *timespan_format(uint64_t sec, char buf[TIMESPAN_FORMAT_MAX])
{
	snprintf(buf, TIMESPAN_FORMAT_MAX, "%llus", (unsigned long long)sec);
	return buf;
}
