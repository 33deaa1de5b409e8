/* msgbody.h - a message's bytes, in memory when small and spooled to a
 * region of an unlinked temporary file (shared by many bodies) when
 * large, so a 50 MB message never sits in RAM.  A running 64-bit FNV-1a hash of the bytes is kept as they arrive:
 * it identifies the content when reconciling after a crash. */
#ifndef MSGBODY_H
#define MSGBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* One body keeps at most MSGBODY_MEM_MAX in RAM, and all bodies alive
   together at most MSGBODY_MEM_TOTAL (two batches per connection pair
   are in flight while copying): past either, a body's bytes go to its spool file, which
   costs page cache, not the process's memory. */
#define MSGBODY_MEM_MAX (256 * 1024)
#define MSGBODY_MEM_TOTAL (1024 * 1024)

struct msgbody;

struct msgbody *msgbody_new(const char *spool_dir);
/* The body will be size bytes (a literal's announced size), call it
   before the first msgbody_write(): a body that cannot stay in memory
   goes to its spool region before the first byte, and that region is
   in a file shared with other bodies (without it, a file of its own).
   A write past size then fails with EOVERFLOW. */
void msgbody_expect(struct msgbody *b, uint64_t size);
/* false with errno set when the spool file cannot be written. */
bool msgbody_write(struct msgbody *b, const void *data, size_t len);
uint64_t msgbody_size(const struct msgbody *b);
uint64_t msgbody_hash(const struct msgbody *b);
/* The content hash and length (see struct content_hash): what a server
   that stores line ends or NULs its own way still gives back. */
uint64_t msgbody_content_hash(const struct msgbody *b);
uint64_t msgbody_content_len(const struct msgbody *b);
bool msgbody_has_nul(const struct msgbody *b);
/* Read up to len bytes at offset; returns bytes read, -1 on error. */
ssize_t msgbody_read(const struct msgbody *b, uint64_t offset, void *buf, size_t len);
void msgbody_free(struct msgbody **b);
/* Are the bytes in the spool file rather than in memory? */
bool msgbody_spooled(const struct msgbody *b);


#endif
