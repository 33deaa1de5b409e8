/* imap_syntax.h - IMAP text built from plain values: quoted strings and
 * UID SEARCH criteria.
 *
 * Pure: no I/O, no connection state, only util.c is needed, so
 * tests/unit/test_imap_syntax.c checks every byte these put on the wire.
 * The typed commands (imap_cmds.c) are their only users: callers of the
 * client pass values, never IMAP syntax.
 */
#ifndef IMAP_SYNTAX_H
#define IMAP_SYNTAX_H

#include <stdbool.h>
#include <time.h>

#include "imap_types.h"       /* enum imap_search_key */

/* s as an IMAP quoted string: '"' and '\' escaped, in double quotes.  The
   caller guarantees no CR/LF/NUL (folder names are validated before).
   Never NULL; free() it. */
char *imap_quote(const char *s);

/* The calendar day of t in UTC as a SEARCH date ("d-Mon-yyyy", RFC 3501
   date-text: day without padding, four-digit year) into out, at least
   IMAP_SEARCH_DATE_LEN bytes.  False when that day is not in the years
   0 to 9999 (out is then ""). */
#define IMAP_SEARCH_DATE_LEN 12
bool imap_search_date(time_t t, char *out);

/* The criteria of UID SEARCH for keys (enum imap_search_key bits, all of
   them must hold) and, when before is not 0, "BEFORE <the UTC day of
   before>": "BEFORE 1-Mar-2024 UNDELETED", "UNSEEN UNDELETED", "ALL" for
   SEARCH_ALL and no date.  NULL when keys has a bit that is no key or
   before has no SEARCH date; otherwise free() it. */
char *imap_search_criteria(unsigned keys, time_t before);

#endif
