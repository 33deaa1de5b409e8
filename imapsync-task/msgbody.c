/* msgbody.c - message bytes in memory or in a region of an unlinked
 * spool file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgbody.h"
#include "util.h"

/* Spooled bodies share files: a segment is one unlinked file holding the
 * regions of many bodies, each reserved at the size its server announced
 * (msgbody_expect), so bodies written in turns by several connection
 * pairs never overlap.  One file per body cost an inode allocation and
 * release per message (more CPU than writing the bytes, on ext4) and an
 * open file each: thousands at once with max_connections pairs.  A body
 * whose size is not known has a segment of its own.  The bytes of a
 * freed region are punched out of the file; a segment with no body left
 * is emptied for reuse if it is the one taking new regions, else closed. */
struct spool_seg {
	int fd;
	char *dir;
	uint64_t end;           /* where the next region starts */
	unsigned bodies;        /* regions in use */
};

/* New regions go to a new segment past this size. */
#define SEG_MAX ((uint64_t)16 << 20)

struct msgbody {
	const char *spool_dir;
	struct buf mem;
	struct spool_seg *seg;  /* NULL while in memory */
	uint64_t base;          /* its region in seg */
	uint64_t room;          /* the region's size; UINT64_MAX: seg is its own */
	uint64_t filled;        /* bytes written to the region */
	uint64_t expected;      /* the announced size; 0: unknown */
	uint64_t size;
	uint64_t hash;
	struct content_hash canon;
	bool has_nul;
};

/* Bytes all in-memory bodies hold, and the segment taking new regions
   (one thread, one process). */
static size_t mem_total;
static struct spool_seg *current;

struct msgbody *msgbody_new(const char *spool_dir)
{
	struct msgbody *b = xcalloc(1, sizeof(*b));

	b->spool_dir = spool_dir != NULL ? spool_dir : "/tmp";
	b->hash = FNV1A64_INIT;
	content_hash_init(&b->canon);
	return b;
}

/* O_TMPFILE leaves nothing behind even if we are killed. */
static struct spool_seg *seg_open(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		char *tmpl = xasprintf("%s/imapsync-task-spool.XXXXXX", dir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
		free(tmpl);
		if (fd < 0)
			return NULL;
	}
	struct spool_seg *s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->dir = xstrdup(dir);
	return s;
}

static void seg_close(struct spool_seg *s)
{
	close(s->fd);
	free(s->dir);
	free(s);
}

/* The body's region: size bytes at the end of the current segment (a
   new one when there is none, it is full or in another directory), or
   a segment of its own when the size is unknown. */
static bool region_take(struct msgbody *b)
{
	if (b->expected == 0) {
		b->seg = seg_open(b->spool_dir);
		b->base = 0;
		b->room = UINT64_MAX;
	} else {
		if (current != NULL && (current->end >= SEG_MAX ||
					strcmp(current->dir, b->spool_dir) != 0)) {
			if (current->bodies == 0)
				seg_close(current);
			current = NULL;
		}
		if (current == NULL)
			current = seg_open(b->spool_dir);
		b->seg = current;
		b->base = current != NULL ? current->end : 0;
		b->room = b->expected;
		if (current != NULL)
			current->end += b->expected;
	}
	if (b->seg == NULL)
		return false;
	b->seg->bodies++;
	return true;
}

static void region_give(struct msgbody *b)
{
	struct spool_seg *s = b->seg;

	b->seg = NULL;
	if (--s->bodies > 0) {
		/* Page cache and disk back now, not when the segment ends;
		   where the file system cannot, they come back then. */
		if (b->filled > 0)
			(void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					(off_t)b->base, (off_t)b->filled);
		return;
	}
	if (s != current) {
		seg_close(s);
		return;
	}
	if (ftruncate(s->fd, 0) == 0) {
		s->end = 0;
		return;
	}
	current = NULL;
	seg_close(s);
}

static bool region_write(struct msgbody *b, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len > b->room - b->filled) {
		/* More than the server announced: cannot happen for a
		   literal, which is exactly its size. */
		errno = EOVERFLOW;
		return false;
	}
	while (len > 0) {
		ssize_t n = pwrite(b->seg->fd, p, len, (off_t)(b->base + b->filled));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return false;
		}
		p += n;
		len -= (size_t)n;
		b->filled += (uint64_t)n;
	}
	return true;
}

/* Move the in-memory bytes to the body's spool region. */
static bool spill_to_file(struct msgbody *b)
{
	if (!region_take(b))
		return false;
	if (!region_write(b, b->mem.data, b->mem.len)) {
		int e = errno;
		region_give(b);
		b->filled = 0;
		errno = e;
		return false;
	}
	mem_total -= b->mem.len;
	buf_free(&b->mem);
	return true;
}

void msgbody_expect(struct msgbody *b, uint64_t size)
{
	if (b->seg != NULL || b->size != 0)
		return;
	b->expected = size;
	/* Past MSGBODY_MEM_MAX it would be spooled anyway: at once, the
	   bytes are not copied to memory first.  A failure is reported by
	   the msgbody_write() that tries again. */
	if (size > MSGBODY_MEM_MAX) {
		(void)spill_to_file(b);
		return;
	}
	/* Likely to stay in memory: one allocation, not one per doubling. */
	if (mem_total + size <= MSGBODY_MEM_TOTAL)
		buf_reserve(&b->mem, (size_t)size);
}

bool msgbody_write(struct msgbody *b, const void *data, size_t len)
{
	hash_both_update(&b->hash, &b->canon, data, len);
	if (!b->has_nul && memchr(data, '\0', len) != NULL)
		b->has_nul = true;
	b->size += len;
	if (b->seg == NULL && (b->mem.len + len > MSGBODY_MEM_MAX ||
			       mem_total + len > MSGBODY_MEM_TOTAL) && !spill_to_file(b))
		return false;
	if (b->seg == NULL) {
		buf_append(&b->mem, data, len);
		mem_total += len;
		return true;
	}
	return region_write(b, data, len);
}

uint64_t msgbody_size(const struct msgbody *b)
{
	return b->size;
}

uint64_t msgbody_hash(const struct msgbody *b)
{
	return b->hash;
}

uint64_t msgbody_content_hash(const struct msgbody *b)
{
	return b->canon.hash;
}

uint64_t msgbody_content_len(const struct msgbody *b)
{
	return b->canon.len;
}

bool msgbody_has_nul(const struct msgbody *b)
{
	return b->has_nul;
}

ssize_t msgbody_read(const struct msgbody *b, uint64_t offset, void *buf, size_t len)
{
	if (offset >= b->size)
		return 0;
	if (len > b->size - offset)
		len = (size_t)(b->size - offset);
	if (b->seg == NULL) {
		memcpy(buf, b->mem.data + offset, len);
		return (ssize_t)len;
	}
	return pread(b->seg->fd, buf, len, (off_t)(b->base + offset));
}

void msgbody_free(struct msgbody **bp)
{
	struct msgbody *b = *bp;

	if (b == NULL)
		return;
	if (b->seg != NULL)
		region_give(b);
	else
		mem_total -= b->mem.len;
	buf_free(&b->mem);
	free(b);
	*bp = NULL;
}

bool msgbody_spooled(const struct msgbody *b)
{
	return b->seg != NULL;
}
