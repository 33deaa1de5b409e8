/* msgbody.h - a message's bytes, in memory when small and spooled to an
 * unlinked temporary file when large, so a 50 MB message never sits in
 * RAM.  A running 64-bit FNV-1a hash of the bytes is kept as they arrive:
 * it identifies the content when reconciling after a crash. */
#ifndef MSGBODY_H
#define MSGBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* A batch holds up to 64 bodies: 64 x 256 KiB bounds what sits in RAM. */
#define MSGBODY_MEM_MAX (256 * 1024)

struct msgbody;

struct msgbody *msgbody_new(const char *spool_dir);
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


#endif
