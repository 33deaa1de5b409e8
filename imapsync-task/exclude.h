/* exclude.h - the folder exclusion pattern (folders = all-except).
 *
 * exclude.c is the only file that includes PCRE2.  It knows nothing of
 * the configuration: a bad pattern comes back as an error text for the
 * caller to report.
 */
#ifndef EXCLUDE_H
#define EXCLUDE_H

#include <stdbool.h>
#include <stddef.h>

struct exclude;

/* Compile a PCRE2 pattern (UTF mode, \C refused).  On failure return NULL
   and set *error_r to "invalid regular expression at offset N: WHY"
   (free it). */
struct exclude *exclude_compile(const char *pattern, char **error_r);
void exclude_free(struct exclude **ex);

/* Does the pattern match utf8_name (UTF-8, '/' as hierarchy separator)?
   Matching runs under PCRE2 match/depth/heap limits: when a limit is hit
   (or matching fails otherwise) it returns false and sets *err_r to the
   negative PCRE2 error code; otherwise *err_r is 0.  Invalid UTF-8 in
   utf8_name is no error (it simply does not match where it is
   invalid). */
bool exclude_match(const struct exclude *ex, const char *utf8_name,
		   int *err_r);
/* Describe an *err_r of exclude_match() for a log line. */
void exclude_strerror(int err, char *buf, size_t size);

#endif
