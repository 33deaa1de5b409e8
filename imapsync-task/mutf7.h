/* mutf7.h - modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8, strict.
 *
 * Invalid input in either direction is an error, never a best-effort
 * guess: an unterminated "&", bad base64, non-zero padding bits, an
 * encoded printable ASCII character, "&-" split wrongly, UTF-16 surrogate
 * misuse, overlong or invalid UTF-8, raw 8-bit bytes in mUTF-7 input.
 */
#ifndef MUTF7_H
#define MUTF7_H

#include <stddef.h>

/* Return a newly allocated NUL-terminated string, or NULL if the input
   (len bytes, may contain NUL which is invalid) is not valid. */
char *mutf7_to_utf8(const char *in, size_t len);
char *utf8_to_mutf7(const char *in, size_t len);

#endif
