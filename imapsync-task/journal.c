/* journal.c - per-task state: snapshot + append-only journal. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "journal.h"
#include "util.h"

/* Version 1 files (the first release) are still read; anything opened
   writable is rewritten as version 2 at once. */
#define JOURNAL_MAGIC_V1 "imapsync-task-journal 1"
#define STATE_MAGIC_V1 "imapsync-task-state 1"
#define JOURNAL_MAGIC "imapsync-task-journal 2"
#define STATE_MAGIC "imapsync-task-state 2"

struct journal {
	char *dir;
	int fd;                 /* journal, O_APPEND */
	struct jentry **slots;  /* open addressing, power of two */
	size_t nslots, count;
	bool append_in_flight;  /* last batch marker not yet settled */
	uint32_t in_flight_uid; /* ... for this remote UID only; 0: all */
	char *owner;            /* "task=NAME remote=USER@HOST:PORT" or NULL */
	uint64_t gen;           /* this journal file's generation */
	int mark_fd;            /* journal.mark: gen and synced length */
	bool legacy;            /* a version 1 file was read */
	char error[512];
};

/* A full disk (or quota) is 73, like a full mailbox; other errors 74. */
static int io_exit_code(int err)
{
	return err == ENOSPC || err == EDQUOT ? EXIT_CANTCREAT : EXIT_IOERR;
}

/* ------------------------------------------------------------------ */
/* the table                                                           */

static uint64_t fnv_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t key_hash(const char *mbox, uint32_t ruv, uint32_t ruid)
{
	uint64_t h = fnv_str(mbox);
	h ^= ((uint64_t)ruv << 32 | ruid) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

static struct jentry **find_slot(struct journal *j, const char *mbox,
				 uint32_t ruv, uint32_t ruid)
{
	size_t mask = j->nslots - 1;
	size_t i = (size_t)key_hash(mbox, ruv, ruid) & mask;

	for (;; i = (i + 1) & mask) {
		struct jentry *e = j->slots[i];
		if (e == NULL || (e->ruid == ruid && e->ruv == ruv &&
				  strcmp(e->mbox, mbox) == 0))
			return &j->slots[i];
	}
}

static void grow(struct journal *j)
{
	struct jentry **old = j->slots;
	size_t oldn = j->nslots;

	j->nslots = oldn ? oldn * 2 : 1024;
	j->slots = xcalloc(j->nslots, sizeof(*j->slots));
	for (size_t i = 0; i < oldn; i++)
		if (old[i] != NULL)
			*find_slot(j, old[i]->mbox, old[i]->ruv, old[i]->ruid) = old[i];
	free(old);
}

static struct jentry *upsert(struct journal *j, const char *mbox,
			     uint32_t ruv, uint32_t ruid)
{
	if ((j->count + 1) * 2 > j->nslots)
		grow(j);
	struct jentry **slot = find_slot(j, mbox, ruv, ruid);
	if (*slot == NULL) {
		*slot = xcalloc(1, sizeof(**slot));
		(*slot)->mbox = xstrdup(mbox);
		(*slot)->ruv = ruv;
		(*slot)->ruid = ruid;
		j->count++;
	}
	return *slot;
}

/* Removing from open addressing: re-insert the rest of the cluster. */
static void remove_entry(struct journal *j, struct jentry *e)
{
	size_t mask = j->nslots - 1;
	struct jentry **slot = find_slot(j, e->mbox, e->ruv, e->ruid);
	size_t i = (size_t)(slot - j->slots);

	j->slots[i] = NULL;
	j->count--;
	for (i = (i + 1) & mask; j->slots[i] != NULL; i = (i + 1) & mask) {
		struct jentry *m = j->slots[i];
		j->slots[i] = NULL;
		*find_slot(j, m->mbox, m->ruv, m->ruid) = m;
	}
	free(e->mbox);
	free(e);
}

struct jentry *journal_get(struct journal *j, const char *mbox,
			   uint32_t ruv, uint32_t ruid)
{
	if (j->nslots == 0)
		return NULL;
	return *find_slot(j, mbox, ruv, ruid);
}

void journal_foreach(struct journal *j, void (*cb)(void *ctx, struct jentry *e),
		     void *ctx)
{
	/* Collect first: the callback may change states (never remove). */
	for (size_t i = 0; i < j->nslots; i++)
		if (j->slots[i] != NULL)
			cb(ctx, j->slots[i]);
}

size_t journal_count(const struct journal *j, enum jstate state)
{
	size_t n = 0;

	for (size_t i = 0; i < j->nslots; i++)
		if (j->slots[i] != NULL && j->slots[i]->state == state)
			n++;
	return n;
}

const char *journal_error(const struct journal *j)
{
	return j->error;
}

/* ------------------------------------------------------------------ */
/* the line format                                                     */

/* Mailbox names are %-escaped so a line is always space-separated
   tokens: no space, '%', control or 8-bit byte appears raw. */
static void put_name(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c == '%' || c >= 0x7f)
			buf_appendf(b, "%%%02X", c);
		else
			buf_append(b, s, 1);
	}
}

static bool get_name(const char *tok, char **name_r)
{
	char *out = xmalloc(strlen(tok) + 1), *o = out;

	for (const char *s = tok; *s != '\0'; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		unsigned v;
		if (sscanf(s + 1, "%2X", &v) != 1 || v == 0 || s[1] == '\0' || s[2] == '\0') {
			free(out);
			return false;
		}
		*o++ = (char)v;
		s += 2;
	}
	*o = '\0';
	*name_r = out;
	return true;
}

static const char state_letter[] = { 0, 'I', 'D', 'S', 'X', 'K', 'f', 'F' };

static uint32_t line_check(const char *s, size_t len)
{
	uint32_t h = 0x811c9dc5u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x01000193u;
	}
	return h;
}

/* Version 2 line: the v1 fields, the canonical hash and length, and a
   checksum of the line, so a changed digit is refused, not acted on. */
static void format_entry(struct buf *b, char letter, const struct jentry *e)
{
	size_t start = b->len;

	buf_appendf(b, "%c ", letter);
	put_name(b, e->mbox);
	buf_appendf(b, " %u %u %llu %016llx %u %u %u %016llx %llu", e->ruv, e->ruid,
		    (unsigned long long)e->size, (unsigned long long)e->hash,
		    e->luv, e->luid, e->luidnext, (unsigned long long)e->chash,
		    (unsigned long long)e->clen);
	buf_appendf(b, " #%08x\n", line_check((const char *)b->data + start, b->len - start));
}

static void format_owner(struct buf *b, const char *owner)
{
	buf_append(b, "owner ", 6);
	put_name(b, owner != NULL ? owner : "-");
	buf_append(b, "\n", 1);
}

/* Apply one line (v2 unless legacy).  'A' (abandoned) removes the
   entry. */
static bool apply_line(struct journal *j, char *line, bool legacy)
{
	char letter, name[4096];
	unsigned ruv, ruid, luv, luid, luidnext, check;
	unsigned long long size, hash, chash = 0, clen = 0;
	char *mbox;
	int n;

	if (legacy) {
		if (sscanf(line, "%c %4095s %u %u %llu %llx %u %u %u%n", &letter, name, &ruv,
			   &ruid, &size, &hash, &luv, &luid, &luidnext, &n) != 9 ||
		    line[n] != '\0')
			return false;
	} else {
		char *sum = strrchr(line, '#');
		if (sum == NULL || sum == line || sum[-1] != ' ' ||
		    sscanf(sum, "#%8x%n", &check, &n) != 1 || sum[n] != '\0' || n != 9 ||
		    check != line_check(line, (size_t)(sum - 1 - line)))
			return false;
		sum[-1] = '\0';
		if (sscanf(line, "%c %4095s %u %u %llu %llx %u %u %u %llx %llu%n", &letter, name,
			   &ruv, &ruid, &size, &hash, &luv, &luid, &luidnext, &chash, &clen,
			   &n) != 11 || line[n] != '\0')
			return false;
	}
	if (!get_name(name, &mbox))
		return false;
	/* 'B' marks an APPEND about to be sent; the D (confirmed) or A
	   (refused) lines that follow settle it.  It names no message. */
	if (letter == 'B') {
		free(mbox);
		j->append_in_flight = true;
		j->in_flight_uid = ruid;
		return true;
	}
	if (letter == 'D' || letter == 'A' || letter == 'K')
		j->append_in_flight = false;
	struct jentry *e = upsert(j, mbox, ruv, ruid);
	free(mbox);
	switch (letter) {
	case 'A':
		remove_entry(j, e);
		return true;
	case 'I': e->state = J_INTENT; break;
	case 'D': e->state = J_DELIVERED; break;
	case 'S': e->state = J_SEEN; break;
	case 'X': e->state = J_DELETED; break;
	case 'K': e->state = J_SKIPPED; break;
	case 'f': e->state = J_FILTERING; break;
	case 'F': e->state = J_FILTERED; break;
	default:
		remove_entry(j, e);
		return false;
	}
	e->size = size;
	e->hash = hash;
	e->luv = luv;
	e->luid = luid;
	e->luidnext = luidnext;
	e->chash = chash;
	e->clen = clen;
	return true;
}

/* Read a whole file; NULL with errno = ENOENT when it does not exist. */
static char *slurp(const char *path, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf b = { 0 };
	char chunk[65536];
	ssize_t n;

	if (fd < 0)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	int e = errno;
	close(fd);
	if (n < 0) {
		buf_free(&b);
		errno = e;
		return NULL;
	}
	buf_append(&b, "", 1);
	*len_r = b.len - 1;
	return (char *)b.data;
}

static int data_error(struct journal *j, const char *path, const char *what)
{
	snprintf(j->error, sizeof(j->error), "%s: %s; the task needs an operator: move the "
		 "state directory away to rebuild it (see imapsync-task(8))", path, what);
	return EXIT_DATAERR;
}

/* The owner line binds a state to its task and remote account: another
   task's state copied in would make the deletion policies act on mail
   this task never imported. */
static int check_owner(struct journal *j, const char *path, const char *line)
{
	char *owner;

	if (strncmp(line, "owner ", 6) != 0 || !get_name(line + 6, &owner))
		return data_error(j, path, "malformed owner line");
	bool ok = j->owner == NULL || strcmp(owner, "-") == 0 || strcmp(owner, j->owner) == 0;
	if (!ok) {
		char what[600];
		snprintf(what, sizeof(what), "written for %.250s, not for %.250s", owner, j->owner);
		free(owner);
		return data_error(j, path, what);
	}
	free(owner);
	return 0;
}

/* The snapshot: magic, owner, entries, "end COUNT CHECKSUM" over every
   byte before it, so a truncated or edited snapshot is refused. */
static int load_state(struct journal *j, const char *path, char *text)
{
	char *line = text, *nl;
	size_t lineno = 0, entries = 0;
	bool legacy = false, ended = false;
	int rc = 0;

	uint64_t sum_before = FNV1A64_INIT;  /* of every line before this one */

	while (rc == 0 && (nl = strchr(line, '\n')) != NULL) {
		uint64_t sum_here = sum_before;
		sum_before = fnv1a64(sum_before, line, (size_t)(nl + 1 - line));
		*nl = '\0';
		lineno++;
		if (ended) {
			rc = data_error(j, path, "data after the end line");
		} else if (lineno == 1) {
			legacy = strcmp(line, STATE_MAGIC_V1) == 0;
			if (!legacy && strcmp(line, STATE_MAGIC) != 0)
				rc = data_error(j, path, "incompatible or corrupt state (unknown first line)");
			j->legacy |= legacy;
		} else if (lineno == 2 && !legacy) {
			rc = check_owner(j, path, line);
		} else if (!legacy && strncmp(line, "end ", 4) == 0) {
			unsigned long long count, sum;
			int n;
			if (sscanf(line, "end %llu %llx%n", &count, &sum, &n) != 2 || line[n] != '\0' ||
			    count != entries || sum != sum_here)
				rc = data_error(j, path, "checksum mismatch: the snapshot was damaged");
			ended = true;
		} else if (!apply_line(j, line, legacy)) {
			char *where = xasprintf("%s:%zu", path, lineno);
			rc = data_error(j, where, "malformed or damaged entry");
			free(where);
		} else {
			entries++;
		}
		line = nl + 1;
	}
	if (rc == 0 && (*line != '\0' || (!legacy && !ended && lineno > 0)))
		rc = data_error(j, path, "truncated");
	return rc;
}

/* The journal: magic (with the file's generation), owner, entries.  A
   last line without its newline is a write torn by a crash: the step it
   records never completed, so it is dropped. */
static int load_journal(struct journal *j, const char *path, char *text)
{
	char *line = text, *nl;
	size_t lineno = 0;
	bool legacy = false;
	int rc = 0;

	while (rc == 0 && (nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		lineno++;
		if (lineno == 1) {
			unsigned long long gen;
			int n;
			legacy = strcmp(line, JOURNAL_MAGIC_V1) == 0;
			j->legacy |= legacy;
			if (!legacy && (sscanf(line, JOURNAL_MAGIC " %llx%n", &gen, &n) != 1 ||
					line[n] != '\0'))
				rc = data_error(j, path, "incompatible or corrupt journal (unknown first line)");
			else if (!legacy)
				j->gen = gen;
		} else if (lineno == 2 && !legacy) {
			rc = check_owner(j, path, line);
		} else if (!apply_line(j, line, legacy)) {
			char *where = xasprintf("%s:%zu", path, lineno);
			rc = data_error(j, where, "malformed or damaged entry");
			free(where);
		}
		line = nl + 1;
	}
	return rc;
}

/* journal.mark holds the journal's generation and its length at the
   last sync.  A journal shorter than that lost lines it had on disk (a
   restore, a damaged file system): its intents are gone, and acting on
   the rest could deliver twice.  So it is refused. */
static int check_mark(struct journal *j, size_t journal_len)
{
	char *path = xasprintf("%s/journal.mark", j->dir);
	size_t len;
	char *text = slurp(path, &len);
	unsigned long long gen, synced;
	int rc = 0, n;

	if (text != NULL && sscanf(text, "%llx %llu\n%n", &gen, &synced, &n) == 2 &&
	    gen == j->gen && j->gen != 0 && journal_len < synced) {
		char what[160];
		snprintf(what, sizeof(what), "%zu bytes, but %llu were on disk at the last sync: "
			 "lines are missing", journal_len, synced);
		free(path);
		path = xasprintf("%s/journal", j->dir);
		rc = data_error(j, path, what);
	}
	free(text);
	free(path);
	return rc;
}

static int load_file(struct journal *j, const char *name)
{
	char *path = xasprintf("%s/%s", j->dir, name);
	size_t len;
	char *text = slurp(path, &len);
	int rc = 0;

	if (text == NULL) {
		if (errno != ENOENT) {
			snprintf(j->error, sizeof(j->error), "cannot read %s: %s", path,
				 strerror(errno));
			rc = EXIT_IOERR;
		}
		free(path);
		return rc;
	}
	if (strlen(text) != len)
		rc = data_error(j, path, "NUL byte in the file");
	else if (strcmp(name, "state") == 0)
		rc = load_state(j, path, text);
	else if ((rc = load_journal(j, path, text)) == 0)
		rc = check_mark(j, len);
	free(text);
	free(path);
	return rc;
}

static uint64_t new_generation(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t g = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^
		((uint64_t)getpid() << 40);
	return g != 0 ? g : 1;
}

/* The header of a new (or emptied) journal: magic with a fresh
   generation, and the owner. */
static int write_journal_header(struct journal *j)
{
	struct buf b = { 0 };
	int rc = 0;

	j->gen = new_generation();
	buf_appendf(&b, "%s %016llx\n", JOURNAL_MAGIC, (unsigned long long)j->gen);
	format_owner(&b, j->owner);
	if (write_full(j->fd, b.data, b.len) < 0 || fdatasync(j->fd) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot write %s/journal: %s", j->dir,
			 strerror(errno));
		rc = io_exit_code(errno);
	}
	buf_free(&b);
	return rc;
}

/* Record the journal's generation and synced length (see check_mark).
   Fixed width, so it is rewritten in place. */
static int write_mark(struct journal *j)
{
	char line[64];
	off_t len = lseek(j->fd, 0, SEEK_END);
	int n = snprintf(line, sizeof(line), "%016llx %020lld\n", (unsigned long long)j->gen,
			 (long long)len);

	if (len < 0 || pwrite(j->mark_fd, line, (size_t)n, 0) != n || fdatasync(j->mark_fd) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot write %s/journal.mark: %s", j->dir,
			 strerror(errno));
		return io_exit_code(errno);
	}
	return 0;
}

static int journal_open_append(struct journal *j)
{
	char *path = xasprintf("%s/journal", j->dir);
	char *mark = xasprintf("%s/journal.mark", j->dir);
	off_t end;
	int rc = 0;

	j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd >= 0)
		j->mark_fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0 || j->mark_fd < 0) {
		snprintf(j->error, sizeof(j->error), "cannot open %s: %s",
			 j->fd < 0 ? path : mark, strerror(errno));
		rc = io_exit_code(errno);
	} else if ((end = lseek(j->fd, 0, SEEK_END)) == 0) {
		rc = write_journal_header(j);
	}
	if (rc == 0)
		rc = write_mark(j);
	free(path);
	free(mark);
	return rc;
}

/* Drop a torn last line (no newline) so new lines start clean. */
static int trim_torn_tail(struct journal *j)
{
	char *path = xasprintf("%s/journal", j->dir);
	size_t len;
	char *text = slurp(path, &len);
	int rc = 0;

	if (text != NULL && len > 0 && text[len - 1] != '\n') {
		char *last = strrchr(text, '\n');
		off_t keep = last != NULL ? (off_t)(last - text + 1) : 0;
		if (truncate(path, keep) < 0) {
			snprintf(j->error, sizeof(j->error), "cannot repair %s: %s", path,
				 strerror(errno));
			rc = EXIT_IOERR;
		}
	}
	free(text);
	free(path);
	return rc;
}

int journal_open(const char *dir, const char *owner, bool read_only,
		 struct journal **j_r, char *err, size_t errlen)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	int rc;

	j->dir = xstrdup(dir);
	j->owner = owner != NULL ? xstrdup(owner) : NULL;
	j->fd = -1;
	j->mark_fd = -1;
	grow(j);
	rc = load_file(j, "state");
	if (rc == 0)
		rc = load_file(j, "journal");
	if (rc == 0 && !read_only)
		rc = trim_torn_tail(j);
	if (rc == 0 && !read_only)
		rc = journal_open_append(j);
	/* A version 1 state becomes version 2 (with its owner) before any
	   line of the new format is added to it. */
	if (rc == 0 && !read_only && j->legacy)
		rc = journal_commit(j);
	if (rc != 0) {
		snprintf(err, errlen, "%s", j->error);
		journal_close(&j);
		return rc;
	}
	*j_r = j;
	return 0;
}

void journal_close(struct journal **jp)
{
	struct journal *j = *jp;

	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	if (j->mark_fd >= 0)
		close(j->mark_fd);
	free(j->owner);
	for (size_t i = 0; i < j->nslots; i++) {
		if (j->slots[i] != NULL) {
			free(j->slots[i]->mbox);
			free(j->slots[i]);
		}
	}
	free(j->slots);
	free(j->dir);
	free(j);
	*jp = NULL;
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

void journal_killpoint(void)
{
	static long kill_at = -1, step;

	if (kill_at < 0) {
		const char *s = getenv("IMAPSYNC_TEST_KILL_AT");
		kill_at = s != NULL ? strtol(s, NULL, 10) : 0;
	}
	if (kill_at > 0 && ++step == kill_at)
		_exit(100);
}

static int append_line(struct journal *j, char letter, const struct jentry *e)
{
	struct buf b = { 0 };
	int rc = 0;

	journal_killpoint();
	format_entry(&b, letter, e);
	/* One write() per line: O_APPEND keeps it whole unless the disk is
	   full, and a torn tail is dropped at the next open. */
	if (write_full(j->fd, b.data, b.len) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot write %s/journal: %s", j->dir,
			 strerror(errno));
		rc = io_exit_code(errno);
	}
	buf_free(&b);
	return rc;
}

int journal_append_started(struct journal *j, const char *mbox)
{
	struct jentry marker = { .mbox = (char *)mbox };
	int rc = append_line(j, 'B', &marker);

	if (rc == 0) {
		j->append_in_flight = true;
		j->in_flight_uid = 0;
	}
	return rc;
}

int journal_delivery_started(struct journal *j, const struct jentry *e)
{
	struct jentry marker = { .mbox = e->mbox, .ruv = e->ruv, .ruid = e->ruid };
	int rc = append_line(j, 'B', &marker);

	if (rc == 0) {
		j->append_in_flight = true;
		j->in_flight_uid = e->ruid;
	}
	return rc;
}

bool journal_append_in_flight(const struct journal *j)
{
	return j->append_in_flight;
}

bool journal_in_flight(const struct journal *j, const struct jentry *e)
{
	return j->append_in_flight && (j->in_flight_uid == 0 || j->in_flight_uid == e->ruid);
}

int journal_sync(struct journal *j)
{
	journal_killpoint();
	if (fdatasync(j->fd) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot sync %s/journal: %s", j->dir,
			 strerror(errno));
		return io_exit_code(errno);
	}
	return write_mark(j);
}

int journal_intent(struct journal *j, const struct jentry *tmpl)
{
	int rc = append_line(j, 'I', tmpl);

	if (rc == 0) {
		struct jentry *e = upsert(j, tmpl->mbox, tmpl->ruv, tmpl->ruid);
		e->state = J_INTENT;
		e->size = tmpl->size;
		e->hash = tmpl->hash;
		e->luv = tmpl->luv;
		e->luid = 0;
		e->luidnext = tmpl->luidnext;
		e->chash = tmpl->chash;
		e->clen = tmpl->clen;
	}
	return rc;
}

static int transition(struct journal *j, struct jentry *e, char letter, enum jstate st)
{
	struct jentry next = *e;
	int rc;

	next.state = st;
	rc = append_line(j, letter, &next);
	if (rc == 0)
		e->state = st;
	return rc;
}

int journal_delivered(struct journal *j, struct jentry *e, uint32_t luv, uint32_t luid)
{
	j->append_in_flight = false;
	e->luv = luv;
	e->luid = luid;
	return transition(j, e, 'D', J_DELIVERED);
}

int journal_abandon(struct journal *j, struct jentry *e)
{
	int rc = append_line(j, 'A', e);

	j->append_in_flight = false;
	if (rc == 0)
		remove_entry(j, e);
	return rc;
}

int journal_forget(struct journal *j, struct jentry *e)
{
	int rc = append_line(j, 'A', e);

	if (rc == 0)
		remove_entry(j, e);
	return rc;
}

int journal_seen(struct journal *j, struct jentry *e)
{
	return transition(j, e, 'S', J_SEEN);
}

int journal_filtering(struct journal *j, struct jentry *e)
{
	return transition(j, e, 'f', J_FILTERING);
}

int journal_filtered(struct journal *j, struct jentry *e)
{
	return transition(j, e, 'F', J_FILTERED);
}

int journal_deleted(struct journal *j, struct jentry *e)
{
	return transition(j, e, 'X', J_DELETED);
}

int journal_skipped(struct journal *j, const char *mbox, uint32_t ruv,
		    uint32_t ruid, uint64_t size)
{
	struct jentry tmpl = { .mbox = (char *)mbox, .ruv = ruv, .ruid = ruid,
			       .size = size, .state = J_SKIPPED };
	int rc = append_line(j, 'K', &tmpl);

	if (rc == 0) {
		struct jentry *e = upsert(j, mbox, ruv, ruid);
		e->state = J_SKIPPED;
		e->size = size;
	}
	return rc;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int journal_commit(struct journal *j)
{
	char *tmp = xasprintf("%s/state.new", j->dir);
	char *state = xasprintf("%s/state", j->dir);
	char *jpath = xasprintf("%s/journal", j->dir);
	struct buf b = { 0 };
	int fd = -1, rc = 0;

	size_t count = 0;
	buf_appendf(&b, "%s\n", STATE_MAGIC);
	format_owner(&b, j->owner);
	for (size_t i = 0; i < j->nslots; i++) {
		struct jentry *e = j->slots[i];
		/* Deleted-on-remote entries are finished: the remote UID will
		   never come back, so they need not be remembered. */
		if (e != NULL && e->state != J_DELETED) {
			format_entry(&b, state_letter[e->state], e);
			count++;
		}
	}
	/* An APPEND left unsettled must stay known as such (the next run
	   waits for the server to finish it); last, because the D and K
	   lines above settle the marker when replayed. */
	if (j->append_in_flight) {
		struct jentry marker = { .mbox = (char *)"-", .ruid = j->in_flight_uid };
		format_entry(&b, 'B', &marker);
		count++;
	}
	buf_appendf(&b, "end %zu %016llx\n", count,
		    (unsigned long long)fnv1a64(FNV1A64_INIT, b.data, b.len));
	/* Order is important!  The new snapshot must be durable under its
	   final name before the journal it replaces is emptied; a crash in
	   between replays the journal over the new snapshot, which only
	   repeats transitions already in it. */
	unlink(tmp);
	journal_killpoint();
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		rc = io_exit_code(errno);
		snprintf(j->error, sizeof(j->error), "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	journal_killpoint();
	if (rename(tmp, state) < 0 || fsync_dir(j->dir) < 0) {
		rc = EXIT_IOERR;
		snprintf(j->error, sizeof(j->error), "cannot replace %s: %s", state, strerror(errno));
		goto out;
	}
	journal_killpoint();
	if (ftruncate(j->fd, 0) < 0) {
		rc = io_exit_code(errno);
		snprintf(j->error, sizeof(j->error), "cannot reset %s: %s", jpath, strerror(errno));
	} else if ((rc = write_journal_header(j)) == 0) {
		rc = write_mark(j);
	}
	j->legacy = false;
	/* Deleted entries are now only in the old journal, which is gone. */
	for (size_t i = 0; i < j->nslots; i++) {
		struct jentry *e = j->slots[i];
		if (e != NULL && e->state == J_DELETED) {
			remove_entry(j, e);
			i = (size_t)-1;  /* the table moved: rescan */
		}
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	buf_free(&b);
	free(tmp);
	free(state);
	free(jpath);
	return rc;
}
