/* util.h - allocation that cannot fail quietly, small string helpers. */
#ifndef UTIL_H
#define UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* 64-bit FNV-1a: content identity for reconciliation, not security. */
uint64_t fnv1a64(uint64_t h, const void *data, size_t len);
#define FNV1A64_INIT 0xcbf29ce484222325ULL

/* A hash of a message's content as any server gives it back: CR, NUL
   and 0x80 bytes (Dovecot's stand-in for NUL) are left out, and so are
   newlines at the very end.  Bare LF stored as CRLF, a final newline
   added, NUL replaced: the same content hash.  len counts the bytes
   hashed. */
struct content_hash {
	uint64_t hash, len;
	uint64_t pending_lf;    /* newlines not hashed until more content */
	uint64_t skip;          /* content bytes still to leave out */
};
void content_hash_init(struct content_hash *ch);
/* Leave the first n content bytes out (to hash only a suffix). */
void content_hash_skip(struct content_hash *ch, uint64_t n);
void content_hash_update(struct content_hash *ch, const void *data, size_t len);
/* fnv1a64() on *raw and content_hash_update() on ch, in one pass: the two
   multiply chains run side by side in the CPU, for about the cost of
   one.  Every message's bytes go through both. */
void hash_both_update(uint64_t *raw, struct content_hash *ch, const void *data, size_t len);

/* Report "out of memory" on stderr and exit 70: nothing sensible can
   continue.  For allocators outside util.c (PCRE2 contexts, ...). */
void out_of_memory(void) __attribute__((noreturn));

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));

/* Growable byte buffer. */
struct buf {
	unsigned char *data;
	size_t len, cap;
};
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);   /* drop n bytes from the front */
void buf_free(struct buf *b);

/* Decimal parsing with overflow guard; whole string must be a number. */
bool str_to_u64(const char *s, uint64_t *num_r);
bool str_to_u32(const char *s, uint32_t *num_r);

/* Is s one of the strings of the NULL-terminated list? */
bool str_in_list(const char *s, const char *const *list);
/* The strings of a NULL-terminated list joined by sep ("a, b, c"). */
char *str_join(const char *const *list, const char *sep);

/* Decode the UTF-8 character at s (len > 0 bytes).  Returns its length,
   or 0 if it is truncated, overlong, a surrogate or beyond U+10FFFF. */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r);

/* Wipe memory in a way the compiler may not elide. */
void explicit_wipe(void *p, size_t len);

/* Write all of buf to fd (retrying EINTR/short writes). */
int write_full(int fd, const void *buf, size_t len);

#endif
