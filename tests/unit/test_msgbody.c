/* test_msgbody.c - message bodies in memory and spooled: the bytes read
 * back as written either way, one body past MSGBODY_MEM_MAX is spooled,
 * and all bodies together stay within MSGBODY_MEM_TOTAL (what bounds the
 * memory of two batches in flight), the budget coming back as bodies are
 * spooled or freed; the hashes kept as bytes arrive.  Links only msgbody.c and util.c. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgbody.h"
#include "tap.h"

#define NBODIES 40
#define BODY_SIZE (200 * 1024)

static char *spool_dir;

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static struct msgbody *make_body(size_t size, unsigned seed)
{
	struct msgbody *b = msgbody_new(spool_dir);
	char chunk[4096];

	for (size_t done = 0; done < size;) {
		size_t n = size - done < sizeof(chunk) ? size - done : sizeof(chunk);
		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)('a' + (done + i + seed) % 26);
		if (!msgbody_write(b, chunk, n))
			return b;
		done += n;
	}
	return b;
}

static bool reads_back(const struct msgbody *b, size_t size, unsigned seed)
{
	char chunk[4096];
	uint64_t off = 0;

	while (off < size) {
		ssize_t n = msgbody_read(b, off, chunk, sizeof(chunk));
		if (n <= 0)
			return false;
		for (ssize_t i = 0; i < n; i++)
			if (chunk[i] != (char)('a' + (off + (uint64_t)i + seed) % 26))
				return false;
		off += (uint64_t)n;
	}
	return msgbody_size(b) == size && msgbody_read(b, off, chunk, 1) == 0;
}

int main(void)
{
	char tmpl[] = "/tmp/test_msgbody.XXXXXX";
	struct msgbody *v[NBODIES];
	size_t in_mem = 0, spooled = 0;
	bool all_read = true;

	spool_dir = mkdtemp(tmpl);
	if (spool_dir == NULL) {
		perror("mkdtemp");
		return 1;
	}

	struct msgbody *small = make_body(1000, 1);
	ok(!msgbody_spooled(small) && reads_back(small, 1000, 1),
	   "a small body stays in memory and reads back");
	struct msgbody *large = make_body(MSGBODY_MEM_MAX + 1, 2);
	ok(msgbody_spooled(large) && reads_back(large, MSGBODY_MEM_MAX + 1, 2),
	   "one byte past MSGBODY_MEM_MAX is spooled and reads back");
	msgbody_free(&small);
	msgbody_free(&large);
	ok(small == NULL && large == NULL, "free clears the pointer");

	/* Forty 200 KiB bodies alive together: 8 MB, past the budget. */
	for (size_t i = 0; i < NBODIES; i++) {
		v[i] = make_body(BODY_SIZE, (unsigned)i);
		if (msgbody_spooled(v[i]))
			spooled++;
		else
			in_mem++;
	}
	for (size_t i = 0; i < NBODIES; i++)
		all_read = all_read && reads_back(v[i], BODY_SIZE, (unsigned)i);
	ok(in_mem * BODY_SIZE <= MSGBODY_MEM_TOTAL,
	   "bodies in memory stay within the total budget (%zu x 200 KiB)", in_mem);
	ok(in_mem == MSGBODY_MEM_TOTAL / BODY_SIZE,
	   "the budget is used up before spooling (%zu in memory, %zu spooled)",
	   in_mem, spooled);
	ok(all_read, "every body reads back its own bytes, in memory or spooled");

	/* Freeing the ones in memory gives their budget back. */
	for (size_t i = 0; i < NBODIES; i++)
		if (!msgbody_spooled(v[i]))
			msgbody_free(&v[i]);
	struct msgbody *again = make_body(BODY_SIZE, 99);
	ok(!msgbody_spooled(again) && reads_back(again, BODY_SIZE, 99),
	   "after freeing, a new body fits in memory again");
	msgbody_free(&again);

	/* A body that grows past MSGBODY_MEM_MAX gives its memory back. */
	for (size_t i = 0; i < NBODIES; i++)
		msgbody_free(&v[i]);
	size_t fit = 0;
	struct msgbody *grow = make_body(MSGBODY_MEM_MAX + 4096, 5);
	for (size_t i = 0; i < NBODIES; i++) {
		v[i] = make_body(BODY_SIZE, (unsigned)i);
		if (!msgbody_spooled(v[i]))
			fit++;
	}
	ok(msgbody_spooled(grow) && fit == MSGBODY_MEM_TOTAL / BODY_SIZE,
	   "a body spooled after growing leaves the whole budget (%zu fit)", fit);
	msgbody_free(&grow);
	for (size_t i = 0; i < NBODIES; i++)
		msgbody_free(&v[i]);

	/* Bodies whose size is announced share spool files: written in
	   turns, a piece of each at a time (as connection pairs do), each
	   reads back its own bytes, and forty of them open one file or two,
	   not forty.  A write past the announced size is refused. */
	int fds_before = open_fds();
	for (size_t i = 0; i < NBODIES; i++) {
		v[i] = msgbody_new(spool_dir);
		msgbody_expect(v[i], BODY_SIZE);
	}
	for (size_t done = 0; done < BODY_SIZE; done += 4096) {
		for (size_t i = 0; i < NBODIES; i++) {
			char chunk[4096];
			for (size_t k = 0; k < sizeof(chunk); k++)
				chunk[k] = (char)('a' + (done + k + i) % 26);
			msgbody_write(v[i], chunk, sizeof(chunk) < BODY_SIZE - done ?
				      sizeof(chunk) : BODY_SIZE - done);
		}
	}
	all_read = true;
	spooled = 0;
	for (size_t i = 0; i < NBODIES; i++) {
		all_read = all_read && reads_back(v[i], BODY_SIZE, (unsigned)i);
		spooled += msgbody_spooled(v[i]);
	}
	int fds_during = open_fds();
	ok(all_read && spooled >= NBODIES - MSGBODY_MEM_TOTAL / BODY_SIZE,
	   "bodies written in turns into shared spool files read back (%zu spooled)", spooled);
	ok(fds_during - fds_before <= 2, "%zu spooled bodies hold %d file(s)", spooled,
	   fds_during - fds_before);
	size_t last = NBODIES - 1;
	while (last > 0 && !msgbody_spooled(v[last]))
		last--;
	errno = 0;
	bool refused = !msgbody_write(v[last], "x", 1) && errno == EOVERFLOW;
	all_read = true;
	for (size_t i = 0; i < NBODIES; i++)
		if (i != last)
			all_read = all_read && reads_back(v[i], BODY_SIZE, (unsigned)i);
	ok(refused && all_read,
	   "a write past the announced size is refused; the other bodies are intact");
	for (size_t i = 0; i < NBODIES; i++)
		msgbody_free(&v[i]);
	ok(open_fds() - fds_before <= 1, "freed, at most one emptied file stays open (%d)",
	   open_fds() - fds_before);

	/* Both hashes in one pass equal each computed alone, whatever the
	   pieces: bytes that the content hash leaves out (CR, NUL, 0x80),
	   newlines held back across pieces, final newlines. */
	static const char alphabet[] = "ab\r\n\n\0\x80 .";
	bool same = true;
	unsigned seed = 7;
	for (int round = 0; round < 200; round++) {
		char data[3000];
		size_t len = (size_t)(round * 15 % 3000);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			data[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		struct msgbody *b = msgbody_new(spool_dir);
		for (size_t off = 0; off < len;) {
			seed = seed * 1103515245u + 12345u;
			size_t n = 1 + (seed >> 16) % 97;
			n = n > len - off ? len - off : n;
			msgbody_write(b, data + off, n);
			off += n;
		}
		struct content_hash ch;
		content_hash_init(&ch);
		content_hash_update(&ch, data, len);
		same = same && msgbody_hash(b) == fnv1a64(FNV1A64_INIT, data, len) &&
			msgbody_content_hash(b) == ch.hash && msgbody_content_len(b) == ch.len;
		msgbody_free(&b);
	}
	ok(same, "the one-pass hashes equal fnv1a64 and content_hash_update, in any pieces");

	rmdir(spool_dir);
	return tap_done();
}
