/* journal.c - per-task state: per-folder snapshots + one append-only
 * journal (see journal.h).
 *
 * On disk, version 2:
 *   state           index: magic, owner, one "P FOLDER" line per folder
 *                   with a snapshot, "end COUNT CHECKSUM"
 *   state.<hash>    one folder's snapshot: magic, owner, "folder NAME",
 *                   its record, its entries, "end COUNT CHECKSUM"
 *   journal         magic with the file's generation, owner, one line per
 *                   step (state_line.h), each with its own checksum
 *   journal.mark    the journal's generation and length at the last sync
 * A commit rewrites only the snapshots of folders that changed.  Version
 * 1 (one "state" file, no owner, no checksums) is read, and rewritten as
 * version 2 at once when opened for writing.
 */
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
#include "state_line.h"
#include "util.h"

#define JOURNAL_MAGIC_V1 "imapsync-task-journal 1"
#define STATE_MAGIC_V1 "imapsync-task-state 1"
#define JOURNAL_MAGIC "imapsync-task-journal 2"
#define STATE_MAGIC "imapsync-task-state 2"
#define FOLDER_MAGIC "imapsync-task-folder 2"

struct jfolder {
	char *name;
	char *file;              /* "state.<16 hex digits>" */
	struct jentry *head;     /* its entries, doubly linked */
	size_t count;
	struct jfolder_rec rec;
	bool has_rec;
	bool in_flight;          /* a delivery not yet settled */
	uint32_t in_flight_uid;  /* ... of this remote UID only; 0: all */
	bool dirty;              /* changed since its snapshot was written */
	bool on_disk;            /* listed in the index on disk */
};

struct journal {
	char *dir;
	char *owner;            /* "task=NAME remote=USER@HOST" or NULL */
	int fd;                 /* journal, O_APPEND */
	int mark_fd;            /* journal.mark */
	uint64_t gen;           /* the journal file's generation */
	struct jentry **slots;  /* open addressing, power of two */
	size_t nslots, count;
	struct jfolder **folders;
	size_t nfolders;
	bool legacy;            /* a version 1 file was read */
	char error[512];
};

/* A full disk (or quota) is 73, like a full mailbox; other errors 74. */
static int io_exit_code(int err)
{
	return err == ENOSPC || err == EDQUOT ? EXIT_CANTCREAT : EXIT_IOERR;
}

static int data_error(struct journal *j, const char *path, const char *what)
{
	snprintf(j->error, sizeof(j->error), "%s: %s; the task needs an operator: move the "
		 "state directory away to rebuild it (see imapsync-task(8))", path, what);
	return EXIT_DATAERR;
}

/* ------------------------------------------------------------------ */
/* folders                                                             */

static struct jfolder *folder_find(const struct journal *j, const char *name)
{
	for (size_t i = 0; i < j->nfolders; i++)
		if (strcmp(j->folders[i]->name, name) == 0)
			return j->folders[i];
	return NULL;
}

static struct jfolder *folder_get(struct journal *j, const char *name)
{
	struct jfolder *f = folder_find(j, name);

	if (f != NULL)
		return f;
	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->file = xasprintf("state.%016llx",
			    (unsigned long long)fnv1a64(FNV1A64_INIT, name, strlen(name)));
	j->folders = xreallocarray(j->folders, j->nfolders + 1, sizeof(*j->folders));
	j->folders[j->nfolders++] = f;
	return f;
}

static void folder_link(struct jfolder *f, struct jentry *e)
{
	e->folder = f;
	e->mbox = f->name;
	e->prev = NULL;
	e->next = f->head;
	if (f->head != NULL)
		f->head->prev = e;
	f->head = e;
	f->count++;
}

static void folder_unlink(struct jentry *e)
{
	struct jfolder *f = e->folder;

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		f->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	f->count--;
}

/* ------------------------------------------------------------------ */
/* the table: (folder, UIDVALIDITY, UID) -> entry                      */

static uint64_t key_hash(const char *mbox, uint32_t ruv, uint32_t ruid)
{
	uint64_t h = fnv1a64(FNV1A64_INIT, mbox, strlen(mbox));
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
		folder_link(folder_get(j, mbox), *slot);
		(*slot)->ruv = ruv;
		(*slot)->ruid = ruid;
		j->count++;
	}
	(*slot)->folder->dirty = true;
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
	e->folder->dirty = true;
	folder_unlink(e);
	free(e->flags);
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
	for (size_t f = 0; f < j->nfolders; f++)
		journal_folder_foreach(j, j->folders[f]->name, cb, ctx);
}

void journal_folder_foreach(struct journal *j, const char *mbox,
			    void (*cb)(void *ctx, struct jentry *e), void *ctx)
{
	struct jfolder *f = folder_find(j, mbox);

	/* next is taken first: the callback may change states (never
	   remove). */
	for (struct jentry *e = f ? f->head : NULL, *next; e != NULL; e = next) {
		next = e->next;
		cb(ctx, e);
	}
}

size_t journal_count(const struct journal *j, enum jstate state)
{
	size_t n = 0;

	for (size_t f = 0; f < j->nfolders; f++)
		for (const struct jentry *e = j->folders[f]->head; e != NULL; e = e->next)
			n += e->state == state;
	return n;
}

bool journal_folder_record(const struct journal *j, const char *mbox, struct jfolder_rec *r)
{
	struct jfolder *f = folder_find(j, mbox);

	if (f == NULL || !f->has_rec)
		return false;
	*r = f->rec;
	return true;
}

const char *journal_error(const struct journal *j)
{
	return j->error;
}

/* ------------------------------------------------------------------ */
/* replay                                                              */

static void set_flags(struct jentry *e, const char *flags)
{
	free(e->flags);
	e->flags = flags != NULL ? xstrdup(flags) : NULL;
}

/* Apply one parsed line.  'A' (abandoned) removes the entry; 'B' marks
   a delivery on the wire, settled by the D, A or K line that follows. */
static void apply_line(struct journal *j, const struct sline *l)
{
	struct jfolder *f = folder_get(j, l->mbox);
	static const struct { char letter; enum jstate state; } states[] = {
		{ 'I', J_INTENT }, { 'D', J_DELIVERED }, { 'S', J_SEEN }, { 'X', J_DELETED },
		{ 'K', J_SKIPPED }, { 'f', J_FILTERING }, { 'F', J_FILTERED },
	};

	f->dirty = true;
	if (l->letter == 'R') {
		f->rec = (struct jfolder_rec){ l->ruv, l->luv, l->maxuid, l->modseq };
		f->has_rec = true;
		return;
	}
	if (l->letter == 'B') {
		f->in_flight = true;
		f->in_flight_uid = l->ruid;
		return;
	}
	if (l->letter == 'D' || l->letter == 'A' || l->letter == 'K')
		f->in_flight = false;
	struct jentry *e = upsert(j, l->mbox, l->ruv, l->ruid);
	if (l->letter == 'A') {
		remove_entry(j, e);
		return;
	}
	for (size_t i = 0; i < N_ELEMENTS(states); i++)
		if (states[i].letter == l->letter)
			e->state = states[i].state;
	e->size = l->size;
	e->hash = l->hash;
	e->luv = l->luv;
	e->luid = l->luid;
	e->luidnext = l->luidnext;
	e->chash = l->chash;
	e->clen = l->clen;
	set_flags(e, l->flags);
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

/* The owner line binds a state to its task and remote account: another
   task's state copied in would make the deletion policies act on mail
   this task never imported. */
static int check_owner(struct journal *j, const char *path, const char *line)
{
	char *owner;

	if (strncmp(line, "owner ", 6) != 0 || !sline_get_name(line + 6, &owner))
		return data_error(j, path, "malformed owner line");
	bool ok = j->owner == NULL || strcmp(owner, "-") == 0 || strcmp(owner, j->owner) == 0;
	if (!ok) {
		/* Named %-escaped again: one line, whatever the file holds (a
		   damaged token may carry raw control bytes). */
		struct buf b = { 0 };
		char what[600];
		sline_put_name(&b, owner);
		buf_append(&b, "", 1);
		snprintf(what, sizeof(what), "written for %.250s, not for %.250s",
			 (const char *)b.data, j->owner);
		buf_free(&b);
		free(owner);
		return data_error(j, path, what);
	}
	free(owner);
	return 0;
}

static int line_error(struct journal *j, const char *path, size_t lineno, const char *what)
{
	char *where = xasprintf("%s:%zu", path, lineno);
	int rc = data_error(j, where, what);

	free(where);
	return rc;
}

/* A snapshot file: its magic, the owner, header lines (header_lines of
   them after the owner, given to body()), body lines, and "end COUNT
   CHECKSUM" over every byte before it: a snapshot cut short or edited is
   refused.  Version 1 (legacy_magic, the first release's single state
   file) has only a magic and entry lines. */
struct snapshot_reader {
	const char *magic, *legacy_magic;
	int (*body)(struct journal *j, void *ctx, const char *path, size_t lineno,
		    char *line, bool legacy);
	void *ctx;
};

static int read_snapshot(struct journal *j, const char *path, char *text,
			 const struct snapshot_reader *sr)
{
	char *line = text, *nl;
	size_t lineno = 0, count = 0;
	bool legacy = false, ended = false;
	uint64_t sum_before = FNV1A64_INIT;  /* of every line before this one */
	int rc = 0;

	while (rc == 0 && (nl = strchr(line, '\n')) != NULL) {
		uint64_t sum_here = sum_before;
		sum_before = fnv1a64(sum_before, line, (size_t)(nl + 1 - line));
		*nl = '\0';
		lineno++;
		if (ended) {
			rc = data_error(j, path, "data after the end line");
		} else if (lineno == 1) {
			legacy = sr->legacy_magic != NULL && strcmp(line, sr->legacy_magic) == 0;
			if (!legacy && strcmp(line, sr->magic) != 0)
				rc = data_error(j, path, "incompatible or corrupt state (unknown first line)");
			j->legacy |= legacy;
		} else if (lineno == 2 && !legacy) {
			rc = check_owner(j, path, line);
		} else if (!legacy && strncmp(line, "end ", 4) == 0) {
			unsigned long long n, sum;
			int len;
			if (sscanf(line, "end %llu %llx%n", &n, &sum, &len) != 2 || line[len] != '\0' ||
			    n != count || sum != sum_here)
				rc = data_error(j, path, "checksum mismatch: the snapshot was damaged");
			ended = true;
		} else {
			rc = sr->body(j, sr->ctx, path, lineno, line, legacy);
			count++;
		}
		line = nl + 1;
	}
	if (rc == 0 && (*line != '\0' || (!legacy && !ended && lineno > 0)))
		rc = data_error(j, path, "truncated");
	return rc;
}

static int entry_body(struct journal *j, void *ctx, const char *path, size_t lineno,
		      char *line, bool legacy)
{
	struct jfolder *only = ctx;   /* a folder file holds one folder */
	struct sline l;

	if (!sline_parse(line, legacy, &l))
		return line_error(j, path, lineno, "malformed or damaged entry");
	if (only != NULL && strcmp(l.mbox, only->name) != 0 && strcmp(l.mbox, "-") != 0) {
		sline_free(&l);
		return line_error(j, path, lineno, "an entry of another folder");
	}
	/* The first release named its one folder "-" in a marker line. */
	if (strcmp(l.mbox, "-") == 0) {
		free(l.mbox);
		l.mbox = xstrdup(only != NULL ? only->name : "INBOX");
	}
	apply_line(j, &l);
	sline_free(&l);
	return 0;
}

static int load_folder_file(struct journal *j, struct jfolder *f)
{
	char *path = xasprintf("%s/%s", j->dir, f->file);
	size_t len;
	char *text = slurp(path, &len);
	struct snapshot_reader sr = { FOLDER_MAGIC, NULL, entry_body, f };
	int rc;

	if (text == NULL)
		rc = errno == ENOENT ? data_error(j, path, "missing: the index lists it")
			: (snprintf(j->error, sizeof(j->error), "cannot read %s: %s", path,
				    strerror(errno)), EXIT_IOERR);
	else if (strlen(text) != len)
		rc = data_error(j, path, "NUL byte in the file");
	else
		rc = read_snapshot(j, path, text, &sr);
	free(text);
	free(path);
	f->dirty = false;
	f->on_disk = true;
	return rc;
}

/* An index line names a folder whose snapshot is loaded at once. */
static int index_body(struct journal *j, void *ctx, const char *path, size_t lineno,
		      char *line, bool legacy)
{
	char *name;

	(void)ctx;
	if (legacy)
		return entry_body(j, NULL, path, lineno, line, true);
	if (strncmp(line, "P ", 2) != 0 || !sline_get_name(line + 2, &name))
		return line_error(j, path, lineno, "malformed index line");
	struct jfolder *f = folder_get(j, name);
	free(name);
	return load_folder_file(j, f);
}

/* The journal: magic with the file's generation, owner, steps.  A last
   line without its newline is a write torn by a crash: the step it
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
		} else {
			rc = entry_body(j, NULL, path, lineno, line, legacy);
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
	struct snapshot_reader sr = { STATE_MAGIC, STATE_MAGIC_V1, index_body, NULL };
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
	if (strlen(text) != len) {
		rc = data_error(j, path, "NUL byte in the file");
	} else if (strcmp(name, "state") == 0) {
		rc = read_snapshot(j, path, text, &sr);
		/* Version 1: every folder still has to get its own file. */
		for (size_t i = 0; rc == 0 && j->legacy && i < j->nfolders; i++)
			j->folders[i]->dirty = true;
	} else if ((rc = load_journal(j, path, text)) == 0) {
		rc = check_mark(j, len);
	}
	free(text);
	free(path);
	return rc;
}

/* ------------------------------------------------------------------ */
/* open and close                                                      */

static uint64_t new_generation(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t g = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^
		((uint64_t)getpid() << 40);
	return g != 0 ? g : 1;
}

static void format_owner(struct buf *b, const char *owner)
{
	buf_append(b, "owner ", 6);
	sline_put_name(b, owner != NULL ? owner : "-");
	buf_append(b, "\n", 1);
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
	int rc = 0;

	j->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd >= 0)
		j->mark_fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (j->fd < 0 || j->mark_fd < 0) {
		snprintf(j->error, sizeof(j->error), "cannot open %s: %s",
			 j->fd < 0 ? path : mark, strerror(errno));
		rc = io_exit_code(errno);
	} else if (lseek(j->fd, 0, SEEK_END) == 0) {
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
	for (size_t i = 0; i < j->nslots; i++) {
		if (j->slots[i] != NULL) {
			free(j->slots[i]->flags);
			free(j->slots[i]);
		}
	}
	for (size_t i = 0; i < j->nfolders; i++) {
		free(j->folders[i]->name);
		free(j->folders[i]->file);
		free(j->folders[i]);
	}
	free(j->folders);
	free(j->slots);
	free(j->owner);
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

static struct sline entry_line(char letter, const struct jentry *e)
{
	return (struct sline){ .letter = letter, .mbox = e->mbox, .ruv = e->ruv,
			       .ruid = e->ruid, .size = e->size, .hash = e->hash,
			       .luv = e->luv, .luid = e->luid, .luidnext = e->luidnext,
			       .chash = e->chash, .clen = e->clen, .flags = e->flags };
}

static int append_line(struct journal *j, const struct sline *l)
{
	struct buf b = { 0 };
	int rc = 0;

	journal_killpoint();
	sline_format(&b, l);
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

static int append_entry(struct journal *j, char letter, const struct jentry *e)
{
	struct sline l = entry_line(letter, e);

	return append_line(j, &l);
}

static int mark_in_flight(struct journal *j, const char *mbox, uint32_t ruv, uint32_t ruid)
{
	struct sline l = { .letter = 'B', .mbox = (char *)mbox, .ruv = ruv, .ruid = ruid };
	int rc = append_line(j, &l);

	if (rc == 0) {
		struct jfolder *f = folder_get(j, mbox);
		f->in_flight = true;
		f->in_flight_uid = ruid;
		f->dirty = true;
	}
	return rc;
}

int journal_append_started(struct journal *j, const char *mbox)
{
	return mark_in_flight(j, mbox, 0, 0);
}

int journal_delivery_started(struct journal *j, const struct jentry *e)
{
	return mark_in_flight(j, e->mbox, e->ruv, e->ruid);
}

bool journal_append_in_flight(const struct journal *j)
{
	for (size_t i = 0; i < j->nfolders; i++)
		if (j->folders[i]->in_flight)
			return true;
	return false;
}

bool journal_in_flight(const struct journal *j, const struct jentry *e)
{
	const struct jfolder *f = e->folder;

	return f->in_flight && (f->in_flight_uid == 0 || f->in_flight_uid == e->ruid);
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
	struct jentry next = *tmpl;
	int rc;

	next.luid = 0;
	rc = append_entry(j, 'I', &next);
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
		set_flags(e, tmpl->flags);
	}
	return rc;
}

static int transition(struct journal *j, struct jentry *e, char letter, enum jstate st)
{
	int rc = append_entry(j, letter, e);

	if (rc == 0) {
		e->state = st;
		e->folder->dirty = true;
	}
	return rc;
}

int journal_delivered(struct journal *j, struct jentry *e, uint32_t luv, uint32_t luid)
{
	(void)j;
	e->folder->in_flight = false;
	e->luv = luv;
	e->luid = luid;
	return transition(j, e, 'D', J_DELIVERED);
}

int journal_abandon(struct journal *j, struct jentry *e)
{
	int rc = append_entry(j, 'A', e);

	e->folder->in_flight = false;
	if (rc == 0)
		remove_entry(j, e);
	return rc;
}

int journal_forget(struct journal *j, struct jentry *e)
{
	int rc = append_entry(j, 'A', e);

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

int journal_set_flags(struct journal *j, struct jentry *e, const char *flags)
{
	static const char letters[] = { 0, 'I', 'D', 'S', 'X', 'K', 'f', 'F' };
	char *old = e->flags;
	int rc;

	e->flags = (char *)flags;
	rc = append_entry(j, letters[e->state], e);
	e->flags = old;
	if (rc == 0) {
		set_flags(e, flags);
		e->folder->dirty = true;
	}
	return rc;
}

int journal_skipped(struct journal *j, const char *mbox, uint32_t ruv,
		    uint32_t ruid, uint64_t size)
{
	struct jentry tmpl = { .mbox = (char *)mbox, .ruv = ruv, .ruid = ruid,
			       .size = size, .state = J_SKIPPED };
	int rc = append_entry(j, 'K', &tmpl);

	if (rc == 0) {
		struct jentry *e = upsert(j, mbox, ruv, ruid);
		e->state = J_SKIPPED;
		e->size = size;
		e->folder->in_flight = false;
	}
	return rc;
}

int journal_set_folder_record(struct journal *j, const char *mbox, const struct jfolder_rec *r)
{
	struct sline l = { .letter = 'R', .mbox = (char *)mbox, .ruv = r->ruv, .luv = r->luv,
			   .maxuid = r->maxuid, .modseq = r->modseq };
	int rc = append_line(j, &l);

	if (rc == 0) {
		struct jfolder *f = folder_get(j, mbox);
		f->rec = *r;
		f->has_rec = true;
		f->dirty = true;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* commit                                                              */

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

/* name.new, fsync, rename to name.  On failure the old file stays. */
/* A snapshot file, written as it is formatted: the bytes go out in
   pieces of SNAPSHOT_CHUNK, so a folder of many thousand entries never
   sits in memory whole, and the checksum of the end line runs along.
   Then fsync, and the rename that makes it the snapshot. */
#define SNAPSHOT_CHUNK (64 * 1024)

struct snapshot {
	struct journal *j;
	char *tmp, *path;
	int fd, rc;
	struct buf b;       /* formatted, not written yet */
	uint64_t sum;       /* FNV-1a of what was written */
};

static void snap_fail(struct snapshot *s)
{
	if (s->rc == 0) {
		s->rc = io_exit_code(errno);
		snprintf(s->j->error, sizeof(s->j->error), "cannot write %s: %s", s->tmp,
			 strerror(errno));
	}
}

static void snap_begin(struct snapshot *s, struct journal *j, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->j = j;
	s->tmp = xasprintf("%s/%s.new", j->dir, name);
	s->path = xasprintf("%s/%s", j->dir, name);
	s->sum = FNV1A64_INIT;
	unlink(s->tmp);
	journal_killpoint();
	s->fd = open(s->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s->fd < 0)
		snap_fail(s);
}

static void snap_flush(struct snapshot *s, bool all)
{
	if (!all && s->b.len < SNAPSHOT_CHUNK)
		return;
	s->sum = fnv1a64(s->sum, s->b.data, s->b.len);
	if (s->rc == 0 && write_full(s->fd, s->b.data, s->b.len) < 0)
		snap_fail(s);
	s->b.len = 0;
}

/* The end line (count and checksum of everything before it), then the
   file is made durable and put in place.  0 or an exit code. */
static int snap_end(struct snapshot *s, size_t count)
{
	snap_flush(s, true);
	buf_appendf(&s->b, "end %zu %016llx\n", count, (unsigned long long)s->sum);
	snap_flush(s, true);
	if (s->rc == 0 && fsync(s->fd) < 0)
		snap_fail(s);
	if (s->fd >= 0)
		close(s->fd);
	if (s->rc == 0 && rename(s->tmp, s->path) < 0) {
		s->rc = EXIT_IOERR;
		snprintf(s->j->error, sizeof(s->j->error), "cannot replace %s: %s", s->path,
			 strerror(errno));
	}
	if (s->rc != 0)
		unlink(s->tmp);
	free(s->tmp);
	free(s->path);
	buf_free(&s->b);
	return s->rc;
}

static bool folder_kept(const struct jfolder *f)
{
	for (const struct jentry *e = f->head; e != NULL; e = e->next)
		if (e->state != J_DELETED)
			return true;
	return f->has_rec || f->in_flight;
}

static int write_folder(struct journal *j, const struct jfolder *f)
{
	static const char letters[] = { 0, 'I', 'D', 'S', 'X', 'K', 'f', 'F' };
	struct snapshot snap;
	struct buf *b = &snap.b;
	size_t count = 0;

	snap_begin(&snap, j, f->file);
	buf_appendf(b, "%s\n", FOLDER_MAGIC);
	format_owner(b, j->owner);
	if (f->has_rec) {
		struct sline r = { .letter = 'R', .mbox = f->name, .ruv = f->rec.ruv,
				   .luv = f->rec.luv, .maxuid = f->rec.maxuid,
				   .modseq = f->rec.modseq };
		sline_format(b, &r);
		count++;
	}
	for (const struct jentry *e = f->head; e != NULL; e = e->next) {
		if (e->state == J_DELETED)
			continue;
		struct sline l = entry_line(letters[e->state], e);
		sline_format(b, &l);
		count++;
		snap_flush(&snap, false);
	}
	/* An unsettled delivery must stay known as such (the next run waits
	   for the server to finish it); last, because the D and K lines
	   above settle the marker when replayed. */
	if (f->in_flight) {
		struct sline m = { .letter = 'B', .mbox = f->name, .ruid = f->in_flight_uid };
		sline_format(b, &m);
		count++;
	}
	return snap_end(&snap, count);
}

static int write_index(struct journal *j)
{
	struct snapshot snap;
	struct buf *b = &snap.b;
	size_t count = 0;

	snap_begin(&snap, j, "state");
	buf_appendf(b, "%s\n", STATE_MAGIC);
	format_owner(b, j->owner);
	for (size_t i = 0; i < j->nfolders; i++) {
		if (!j->folders[i]->on_disk)
			continue;
		buf_append(b, "P ", 2);
		sline_put_name(b, j->folders[i]->name);
		buf_append(b, "\n", 1);
		count++;
	}
	return snap_end(&snap, count);
}

/* Fold the journal into the snapshots.  Order is important!  Folder
   snapshots first, then the index that lists them, then the directory
   is synced, and only then is the journal emptied: a crash anywhere
   before replays the journal over snapshots that already hold some of
   its steps, which only repeats them.  Only folders that changed are
   rewritten. */
int journal_commit(struct journal *j)
{
	bool index_changed = j->legacy;
	int rc = 0;

	for (size_t i = 0; i < j->nfolders && rc == 0; i++) {
		struct jfolder *f = j->folders[i];
		if (!f->dirty)
			continue;
		bool keep = folder_kept(f);
		if (keep)
			rc = write_folder(j, f);
		if (keep != f->on_disk) {
			f->on_disk = keep;
			index_changed = true;
		}
	}
	if (rc == 0 && index_changed)
		rc = write_index(j);
	journal_killpoint();
	if (rc == 0 && fsync_dir(j->dir) < 0) {
		rc = EXIT_IOERR;
		snprintf(j->error, sizeof(j->error), "cannot sync %s: %s", j->dir, strerror(errno));
	}
	if (rc != 0)
		return rc;
	journal_killpoint();
	if (ftruncate(j->fd, 0) < 0) {
		snprintf(j->error, sizeof(j->error), "cannot reset %s/journal: %s", j->dir,
			 strerror(errno));
		return io_exit_code(errno);
	}
	if ((rc = write_journal_header(j)) == 0)
		rc = write_mark(j);
	j->legacy = false;
	/* What the snapshots no longer hold goes from memory too: deleted
	   entries, and the files of folders with nothing left. */
	for (size_t i = 0; i < j->nfolders; i++) {
		struct jfolder *f = j->folders[i];
		if (!f->dirty)
			continue;
		for (struct jentry *e = f->head, *next; e != NULL; e = next) {
			next = e->next;
			if (e->state == J_DELETED)
				remove_entry(j, e);
		}
		if (!f->on_disk) {
			char *path = xasprintf("%s/%s", j->dir, f->file);
			unlink(path);
			free(path);
		}
		f->dirty = false;
	}
	return rc;
}
