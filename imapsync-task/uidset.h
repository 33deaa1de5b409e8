/* uidset.h - lists of message UIDs and IMAP UID sets ("1:3,7").
 *
 * A UID set comes from the server (ESEARCH ALL, APPENDUID) and is not
 * trusted: uid_set_parse() accepts only the RFC 9051 sequence-set of
 * nz-numbers, bounds the number of UIDs before allocating any, and hands
 * back a sorted list without duplicates.  No I/O, no IMAP state: only
 * util.c is needed.
 */
#ifndef UIDSET_H
#define UIDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uid_list {
	uint32_t *uids;
	size_t count, cap;
};
void uid_list_add(struct uid_list *l, uint32_t uid);
/* Free the array and zero the list (it may be reused). */
void uid_list_free(struct uid_list *l);

/* The shortest set for uids[0..n): runs of consecutive UIDs become
   "a:b", the rest single numbers, comma-separated ("1:3,7").  uids must
   be sorted, without duplicates and without 0 for the result to be a
   valid set; n == 0 gives "".  Never NULL; free() it. */
char *uid_list_to_set(const uint32_t *uids, size_t n);

/* Sort uids[0..n) ascending and drop duplicates, in place; returns the
   new count.  What a list needs before uid_list_to_set(). */
size_t uid_array_sort_unique(uint32_t *uids, size_t n);

/* Parse a UID set ("1:3,7,9:8") and merge its UIDs into l.
 *
 * Accepted: comma-separated elements, each a number or a range "a:b"
 * of numbers 1..4294967295 (decimal digits only; "b:a" is the same
 * range as "a:b", RFC 9051).  Refused: an empty set or element, "*",
 * 0, a number above UINT32_MAX, signs or spaces, more than one ':' in
 * an element.
 *
 * On success l holds the union of what it held and the set, sorted
 * ascending and without duplicates, and true is returned.  The result
 * may hold at most max_count UIDs; that is checked before anything is
 * allocated, so "1:4294967295" costs nothing when refused.  On failure
 * (syntax, or too many UIDs) l is left exactly as it was.
 *
 * The order in which the server listed the UIDs is not kept: do not use
 * this where the order carries meaning (COPYUID's pairing). */
bool uid_set_parse(const char *set, struct uid_list *l, size_t max_count);

#endif
