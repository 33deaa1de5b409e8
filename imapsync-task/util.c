/* util.c - allocation that cannot fail quietly, small string helpers. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void out_of_memory(void)
{
	/* Nothing sensible can continue; the journal stays consistent
	   because every state change is written before it is acted on. */
	static const char msg[] = "imapsync-task: out of memory\n";
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(70);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

void *xreallocarray(void *ptr, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		out_of_memory();
	return xrealloc(ptr, n * size);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		out_of_memory();
	return p;
}

void buf_reserve(struct buf *b, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - b->len)
		out_of_memory();
	need = b->len + extra;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	if (len == 0)
		return;
	buf_reserve(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		out_of_memory();
	buf_append(b, s, (size_t)n);
	free(s);
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

bool str_to_u64(const char *s, uint64_t *num_r)
{
	uint64_t n = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		/* overflow guard: n * 10 + d must fit */
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*num_r = n;
	return true;
}

bool str_to_u32(const char *s, uint32_t *num_r)
{
	uint64_t n;

	if (!str_to_u64(s, &n) || n > UINT32_MAX)
		return false;
	*num_r = (uint32_t)n;
	return true;
}

bool str_in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(s, *list) == 0)
			return true;
	}
	return false;
}

char *str_join(const char *const *list, const char *sep)
{
	struct buf b = { 0 };
	char *ret;

	for (; *list != NULL; list++)
		buf_appendf(&b, "%s%s", b.len ? sep : "", *list);
	ret = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return ret;
}

size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t n, i;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2; min = 0x80; cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3; min = 0x800; cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4; min = 0x10000; cp = s[0] & 0x07;
	} else {
		/* a continuation byte, or a 5/6-byte or 0xfe/0xff lead */
		return 0;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Checking the value afterwards covers C0/C1, E0 80-9F, F0 80-8F
	   (overlong), ED A0-BF (surrogates) and F4 90+/F5+ (too large). */
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

void explicit_wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;

	while (len-- > 0)
		*v++ = 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void content_hash_init(struct content_hash *ch)
{
	ch->hash = FNV1A64_INIT;
	ch->len = 0;
	ch->pending_lf = 0;
	ch->skip = 0;
}

void content_hash_skip(struct content_hash *ch, uint64_t n)
{
	ch->skip = n;
}

static void content_hash_byte(struct content_hash *ch, unsigned char c)
{
	if (ch->skip > 0) {
		ch->skip--;
		return;
	}
	ch->hash = (ch->hash ^ c) * 0x100000001b3ULL;
	ch->len++;
}

void content_hash_update(struct content_hash *ch, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '\r' || c == '\0' || c == 0x80)
			continue;
		if (c == '\n') {
			ch->pending_lf++;
			continue;
		}
		for (; ch->pending_lf > 0; ch->pending_lf--)
			content_hash_byte(ch, '\n');
		content_hash_byte(ch, c);
	}
}

void hash_both_update(uint64_t *raw, struct content_hash *ch, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = *raw, c = ch->hash, clen = ch->len, lf = ch->pending_lf;

	if (ch->skip > 0) {
		*raw = fnv1a64(h, data, len);
		content_hash_update(ch, data, len);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char b = p[i];
		h = (h ^ b) * 0x100000001b3ULL;
		if (b == '\r' || b == '\0' || b == 0x80)
			continue;
		if (b == '\n') {
			lf++;
			continue;
		}
		for (; lf > 0; lf--, clen++)
			c = (c ^ '\n') * 0x100000001b3ULL;
		c = (c ^ b) * 0x100000001b3ULL;
		clen++;
	}
	*raw = h;
	ch->hash = c;
	ch->len = clen;
	ch->pending_lf = lf;
}
