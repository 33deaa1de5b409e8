/* msgbody.c - message bytes in memory or in an unlinked spool file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgbody.h"
#include "util.h"

struct msgbody {
	const char *spool_dir;
	struct buf mem;
	int fd;                 /* -1 while in memory */
	uint64_t size;
	uint64_t hash;
	struct content_hash canon;
	bool has_nul;
};

/* Bytes all in-memory bodies hold (one thread, one process). */
static size_t mem_total;

struct msgbody *msgbody_new(const char *spool_dir)
{
	struct msgbody *b = xcalloc(1, sizeof(*b));

	b->spool_dir = spool_dir != NULL ? spool_dir : "/tmp";
	b->fd = -1;
	b->hash = FNV1A64_INIT;
	content_hash_init(&b->canon);
	return b;
}

/* Move the in-memory bytes to an unlinked file in the spool directory:
   O_TMPFILE leaves nothing behind even if we are killed. */
static bool spill_to_file(struct msgbody *b)
{
	int fd = open(b->spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		char *tmpl = xasprintf("%s/imapsync-task-spool.XXXXXX", b->spool_dir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
		free(tmpl);
		if (fd < 0)
			return false;
	}
	if (write_full(fd, b->mem.data, b->mem.len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return false;
	}
	mem_total -= b->mem.len;
	buf_free(&b->mem);
	b->fd = fd;
	return true;
}

bool msgbody_write(struct msgbody *b, const void *data, size_t len)
{
	hash_both_update(&b->hash, &b->canon, data, len);
	if (!b->has_nul && memchr(data, '\0', len) != NULL)
		b->has_nul = true;
	b->size += len;
	if (b->fd < 0 && (b->mem.len + len > MSGBODY_MEM_MAX ||
			  mem_total + len > MSGBODY_MEM_TOTAL) && !spill_to_file(b))
		return false;
	if (b->fd < 0) {
		buf_append(&b->mem, data, len);
		mem_total += len;
		return true;
	}
	return write_full(b->fd, data, len) == 0;
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
	if (b->fd < 0) {
		memcpy(buf, b->mem.data + offset, len);
		return (ssize_t)len;
	}
	return pread(b->fd, buf, len, (off_t)offset);
}

void msgbody_free(struct msgbody **bp)
{
	struct msgbody *b = *bp;

	if (b == NULL)
		return;
	if (b->fd >= 0)
		close(b->fd);
	else
		mem_total -= b->mem.len;
	buf_free(&b->mem);
	free(b);
	*bp = NULL;
}

bool msgbody_spooled(const struct msgbody *b)
{
	return b->fd >= 0;
}
