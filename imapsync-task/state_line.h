/* state_line.h - one line of the task's state files, as text.
 *
 * Journal and snapshots share one line format (version 2): a letter, the
 * remote folder name %-escaped (so a line is always space-separated
 * tokens), numbers, the flags last synced, and a checksum of the line,
 * so that a changed digit is refused instead of acted on:
 *
 *   L MBOX RUV RUID SIZE HASH LUV LUID LUIDNEXT CHASH CLEN FLAGS #CRC
 *   R MBOX RUV LUV MAXUID MODSEQ #CRC        (a folder's record)
 *
 * Version 1 lines (the first release) have the first nine fields only and
 * no checksum; sline_parse() reads them when told.  Pure: no I/O, so it
 * is unit-tested and fuzzed on its own.
 */
#ifndef STATE_LINE_H
#define STATE_LINE_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct sline {
	char letter;             /* I D S X K f F (states), A (abandon),
	                            B (delivery in flight), R (folder record) */
	char *mbox;              /* remote folder name, UTF-8 */
	uint32_t ruv, ruid;      /* R: ruv */
	uint64_t size, hash;
	uint32_t luv, luid, luidnext;
	uint64_t chash, clen;
	char *flags;             /* space-separated; NULL: not recorded */
	uint32_t maxuid;         /* R only: highest remote UID seen */
	uint64_t modseq;         /* R only: HIGHESTMODSEQ, 0 if none */
};

/* Append the line (with its checksum and newline) to b. */
void sline_format(struct buf *b, const struct sline *l);
/* Parse one line (no newline; it may be modified).  legacy: the version
   1 format.  False when malformed or the checksum does not match; on
   success free with sline_free(). */
bool sline_parse(char *line, bool legacy, struct sline *l);
void sline_free(struct sline *l);

/* A name as one token: %-escape space, '%', controls and 8-bit bytes. */
void sline_put_name(struct buf *b, const char *name);
/* The reverse; false on a bad escape or an escaped NUL. */
bool sline_get_name(const char *token, char **name_r);

#endif
