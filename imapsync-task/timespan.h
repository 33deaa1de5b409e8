/* timespan.h - systemd time spans (systemd.time(7)), as the INI key
 * interval writes them and as the generator writes them into units.
 *
 * Only the subset that systemd reads the same way: whole numbers with
 * the units s, min, h, d, w (and their long spellings), summed.
 */
#ifndef TIMESPAN_H
#define TIMESPAN_H

#include <stdbool.h>
#include <stdint.h>

/* Parse "15min", "1h 30min", "90s", "90", "2d"; whole seconds.  False
   for anything else, and for a sum systemd could not hold (it keeps
   microseconds in 64 bits). */
bool timespan_parse(const char *text, uint64_t *sec_r);

/* Room for any timespan_format() result. */
#define TIMESPAN_FORMAT_MAX 24

/* sec in the one form systemd never misreads ("900s"); returns buf. */
const char *timespan_format(uint64_t sec, char buf[TIMESPAN_FORMAT_MAX]);

#endif
