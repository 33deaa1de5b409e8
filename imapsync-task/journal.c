/* journal.c - per-task state: snapshot + append-only journal. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "journal.h"
#include "util.h"

#define JOURNAL_MAGIC "imapsync-task-journal 1"
#define STATE_MAGIC "imapsync-task-state 1"

struct journal {
	char *dir;
	int fd;                 /* journal, O_APPEND */
	struct jentry **slots;  /* open addressing, power of two */
	size_t nslots, count;
	bool append_in_flight;  /* last batch marker not yet settled */
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

static void format_entry(struct buf *b, char letter, const struct jentry *e)
{
	buf_appendf(b, "%c ", letter);
	put_name(b, e->mbox);
	buf_appendf(b, " %u %u %llu %016llx %u %u %u\n", e->ruv, e->ruid,
		    (unsigned long long)e->size, (unsigned long long)e->hash,
		    e->luv, e->luid, e->luidnext);
}

/* Apply one line.  'A' (abandoned) removes the entry. */
static bool apply_line(struct journal *j, char *line)
{
	char letter, name[4096];
	unsigned ruv, ruid, luv, luid, luidnext;
	unsigned long long size, hash;
	char *mbox;
	int n;

	if (sscanf(line, "%c %4095s %u %u %llu %llx %u %u %u%n", &letter, name, &ruv,
		   &ruid, &size, &hash, &luv, &luid, &luidnext, &n) != 9 ||
	    line[n] != '\0' || !get_name(name, &mbox))
		return false;
	/* 'B' marks an APPEND about to be sent; the D (confirmed) or A
	   (refused) lines that follow settle it.  It names no message. */
	if (letter == 'B') {
		free(mbox);
		j->append_in_flight = true;
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

static int load_file(struct journal *j, const char *name, const char *magic,
		     bool tolerate_torn_tail)
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
	char *line = text, *nl;
	size_t lineno = 0;
	while (rc == 0 && (nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		lineno++;
		if (lineno == 1) {
			if (strcmp(line, magic) != 0) {
				snprintf(j->error, sizeof(j->error),
					 "%s: incompatible or corrupt state (first line is not \"%s\"); "
					 "move the task's state directory away to rebuild it", path, magic);
				rc = EXIT_DATAERR;
			}
		} else if (!apply_line(j, line)) {
			snprintf(j->error, sizeof(j->error), "%s:%zu: malformed entry", path, lineno);
			rc = EXIT_DATAERR;
		}
		line = nl + 1;
	}
	/* A line without its newline is a write torn by a crash: the step it
	   records never completed, so it is safe to drop - but only in the
	   journal, and only at the very end. */
	if (rc == 0 && *line != '\0' && !tolerate_torn_tail) {
		snprintf(j->error, sizeof(j->error), "%s: truncated", path);
		rc = EXIT_DATAERR;
	}
	if (rc == 0 && lineno == 0 && *line != '\0' && tolerate_torn_tail)
		rc = 0;
	free(text);
	free(path);
	return rc;
}

static int journal_open_append(struct journal *j)
{
	char *path = xasprintf("%s/journal", j->dir);
	off_t end;

	j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		snprintf(j->error, sizeof(j->error), "cannot open %s: %s", path, strerror(errno));
		free(path);
		return EXIT_IOERR;
	}
	end = lseek(j->fd, 0, SEEK_END);
	if (end == 0) {
		if (write_full(j->fd, JOURNAL_MAGIC "\n", sizeof(JOURNAL_MAGIC)) < 0 ||
		    fdatasync(j->fd) < 0) {
			snprintf(j->error, sizeof(j->error), "cannot write %s: %s", path,
				 strerror(errno));
			free(path);
			return io_exit_code(errno);
		}
	}
	free(path);
	return 0;
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

int journal_open(const char *dir, bool read_only, struct journal **j_r,
		 char *err, size_t errlen)
{
	struct journal *j = xcalloc(1, sizeof(*j));
	int rc;

	j->dir = xstrdup(dir);
	j->fd = -1;
	grow(j);
	rc = load_file(j, "state", STATE_MAGIC, false);
	if (rc == 0)
		rc = load_file(j, "journal", JOURNAL_MAGIC, true);
	if (rc == 0 && !read_only)
		rc = trim_torn_tail(j);
	if (rc == 0 && !read_only)
		rc = journal_open_append(j);
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

	if (rc == 0)
		j->append_in_flight = true;
	return rc;
}

bool journal_append_in_flight(const struct journal *j)
{
	return j->append_in_flight;
}

int journal_sync(struct journal *j)
{
	journal_killpoint();
	if (fdatasync(j->fd) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot sync %s/journal: %s", j->dir,
			 strerror(errno));
		return io_exit_code(errno);
	}
	return 0;
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

	buf_appendf(&b, "%s\n", STATE_MAGIC);
	for (size_t i = 0; i < j->nslots; i++) {
		struct jentry *e = j->slots[i];
		/* Deleted-on-remote entries are finished: the remote UID will
		   never come back, so they need not be remembered. */
		if (e != NULL && e->state != J_DELETED)
			format_entry(&b, state_letter[e->state], e);
	}
	/* An APPEND left unsettled must stay known as such (the next run
	   waits for the server to finish it); last, because the D and K
	   lines above settle the marker when replayed. */
	if (j->append_in_flight) {
		struct jentry marker = { .mbox = (char *)"-" };
		format_entry(&b, 'B', &marker);
	}
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
	if (ftruncate(j->fd, 0) < 0 ||
	    write_full(j->fd, JOURNAL_MAGIC "\n", sizeof(JOURNAL_MAGIC)) < 0 ||
	    fdatasync(j->fd) < 0) {
		rc = io_exit_code(errno);
		snprintf(j->error, sizeof(j->error), "cannot reset %s: %s", jpath, strerror(errno));
	}
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
