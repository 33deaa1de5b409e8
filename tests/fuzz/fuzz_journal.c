/* fuzz_journal.c - libFuzzer target for journal replay (journal.c).
 *
 * The input is the files of a task's state directory, separated by NUL
 * bytes (which the files themselves never hold):
 *
 *     STATE \0 JOURNAL \0 JOURNAL.MARK \0 FOLDER-1 \0 FOLDER-2 ...
 *
 * STATE is the index ("state"), FOLDER-k the snapshot of the folder
 * named by the index's k-th "P NAME" line, written under the file name
 * journal.c gives that folder.  A missing or empty part means that file
 * does not exist: a seed without a NUL byte is a snapshot alone, and
 * "\0TEXT" a journal alone.  Per input:
 *  - journal_open(read_only) succeeds, or fails with EXIT_DATAERR and a
 *    one-line message; on success every entry is well-formed and found
 *    again with journal_get, and the counts add up;
 *  - then the same files are opened writable (which repairs a torn tail
 *    and upgrades version 1), committed, and opened read-only again:
 *    every entry (every field, its flags, whether its delivery is in
 *    flight) and every folder record survive unchanged, except J_DELETED
 *    entries, which a commit drops on purpose.
 * Only journal.h is used to drive the journal; the folder file names
 * follow its on-disk layout (state_line.h for the name escapes).  The
 * directory is made once per process (on tmpfs when there is one: the
 * writable round fsyncs); each input only replaces its files.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exitcode.h"
#include "journal.h"
#include "state_line.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The owner the seeds are written for (an "owner -" line matches any). */
#define OWNER "task=f remote=u@imap.example.org:143"

/* Folder snapshots beyond this many are ignored (inputs stay small). */
#define MAX_FOLDER_FILES 16

static char *state_dir;

static void check(bool cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_journal: invariant broken: %s\n", what);
		abort();
	}
}

/* Remove every file of the directory (journal.c may add its own). */
static void empty_dir(void)
{
	DIR *d = opendir(state_dir);
	struct dirent *de;

	check(d != NULL, "opendir");
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *path = xasprintf("%s/%s", state_dir, de->d_name);

		(void)unlink(path);
		free(path);
	}
	closedir(d);
}

static void remove_dir(void)
{
	empty_dir();
	(void)rmdir(state_dir);
	free(state_dir);
	state_dir = NULL;
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	state_dir = xasprintf("%s/fuzz-journal.XXXXXX", tmp);
	check(mkdtemp(state_dir) != NULL, "mkdtemp");
	/* IMAPSYNC_TEST_KILL_AT would end the process at a journal step */
	unsetenv("IMAPSYNC_TEST_KILL_AT");
	atexit(remove_dir);
}

/* ------------------------------------------------------------------ */
/* the input as files                                                  */

struct parts {
	const char *data[3 + MAX_FOLDER_FILES];
	size_t len[3 + MAX_FOLDER_FILES];
	size_t n;
	char *folders[MAX_FOLDER_FILES];   /* names of the index's P lines */
	size_t nfolders;
};

static void split_input(const uint8_t *data, size_t size, struct parts *p)
{
	size_t pos = 0;

	memset(p, 0, sizeof(*p));
	while (p->n < N_ELEMENTS(p->data)) {
		const uint8_t *nul = memchr(data + pos, '\0', size - pos);
		size_t len = nul != NULL ? (size_t)(nul - (data + pos)) : size - pos;

		p->data[p->n] = (const char *)data + pos;
		p->len[p->n] = len;
		p->n++;
		if (nul == NULL)
			break;
		pos += len + 1;
	}
}

/* The folder names of the index's "P NAME" lines, in order. */
static void index_folders(struct parts *p)
{
	const char *s = p->data[0], *end = s + p->len[0];

	while (s < end && p->nfolders < MAX_FOLDER_FILES) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t len = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);

		if (len > 2 && s[0] == 'P' && s[1] == ' ') {
			char *token = xstrndup(s + 2, len - 2), *name;

			if (sline_get_name(token, &name))
				p->folders[p->nfolders++] = name;
			free(token);
		}
		s += len + 1;
	}
}

static void write_file(const char *name, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s", state_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	check(fd >= 0 && write_full(fd, data, len) == 0 && close(fd) == 0,
	      "cannot write a test file");
	free(path);
}

static void write_parts(struct parts *p)
{
	static const char *const names[] = { "state", "journal", "journal.mark" };

	empty_dir();
	for (size_t i = 0; i < p->n; i++) {
		if (p->len[i] == 0)
			continue;
		if (i < N_ELEMENTS(names)) {
			write_file(names[i], p->data[i], p->len[i]);
		} else if (i - N_ELEMENTS(names) < p->nfolders) {
			/* journal.c: "state.<fnv1a64 of the name, 16 hex digits>" */
			const char *folder = p->folders[i - N_ELEMENTS(names)];
			char *name = xasprintf("state.%016llx", (unsigned long long)
					       fnv1a64(FNV1A64_INIT, folder, strlen(folder)));

			write_file(name, p->data[i], p->len[i]);
			free(name);
		}
	}
}

static void parts_free(struct parts *p)
{
	for (size_t i = 0; i < p->nfolders; i++)
		free(p->folders[i]);
}

/* ------------------------------------------------------------------ */
/* a copy of every entry and folder record, to compare two replays     */

struct entry_copy {
	struct jentry e;        /* mbox and flags owned; links unused */
	bool in_flight;
};

struct record_copy {
	char *mbox;
	bool present;
	struct jfolder_rec rec;
};

struct snapshot {
	struct entry_copy *e;
	size_t n, cap;
	struct record_copy *r;
	size_t nr;
	struct journal *j;
};

static void collect(void *ctx, struct jentry *e)
{
	struct snapshot *s = ctx;
	struct entry_copy *c;

	check(e->mbox != NULL, "entry has a mailbox");
	check(e->state >= J_INTENT && e->state <= J_FILTERED, "entry state is known");
	check(journal_get(s->j, e->mbox, e->ruv, e->ruid) == e,
	      "journal_get finds every entry");
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->e = xreallocarray(s->e, s->cap, sizeof(*s->e));
	}
	c = &s->e[s->n++];
	memset(c, 0, sizeof(*c));
	c->e.mbox = xstrdup(e->mbox);
	c->e.ruv = e->ruv;
	c->e.ruid = e->ruid;
	c->e.state = e->state;
	c->e.size = e->size;
	c->e.hash = e->hash;
	c->e.luv = e->luv;
	c->e.luid = e->luid;
	c->e.luidnext = e->luidnext;
	c->e.chash = e->chash;
	c->e.clen = e->clen;
	c->e.flags = e->flags != NULL ? xstrdup(e->flags) : NULL;
	c->in_flight = journal_in_flight(s->j, e);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct jentry *x = &((const struct entry_copy *)a)->e;
	const struct jentry *y = &((const struct entry_copy *)b)->e;
	int c = strcmp(x->mbox, y->mbox);

	if (c != 0)
		return c;
	if (x->ruv != y->ruv)
		return x->ruv < y->ruv ? -1 : 1;
	return x->ruid < y->ruid ? -1 : x->ruid > y->ruid;
}

static bool str_same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static bool entry_same(const struct entry_copy *a, const struct entry_copy *b)
{
	const struct jentry *x = &a->e, *y = &b->e;

	return entry_cmp(a, b) == 0 && x->state == y->state && x->size == y->size &&
		x->hash == y->hash && x->luv == y->luv && x->luid == y->luid &&
		x->luidnext == y->luidnext && x->chash == y->chash &&
		x->clen == y->clen && str_same(x->flags, y->flags) &&
		a->in_flight == b->in_flight;
}

/* Folder records of every folder named by an entry or by the input. */
static void collect_records(struct snapshot *s, const struct parts *p)
{
	size_t max = s->n + p->nfolders;

	s->r = xcalloc(max > 0 ? max : 1, sizeof(*s->r));
	for (size_t i = 0; i < s->n + p->nfolders; i++) {
		const char *mbox = i < s->n ? s->e[i].e.mbox : p->folders[i - s->n];
		bool seen = false;

		for (size_t k = 0; k < s->nr && !seen; k++)
			seen = strcmp(s->r[k].mbox, mbox) == 0;
		if (seen)
			continue;
		struct record_copy *r = &s->r[s->nr++];

		r->mbox = xstrdup(mbox);
		r->present = journal_folder_record(s->j, mbox, &r->rec);
	}
}

static void snapshot_take(struct snapshot *s, struct journal *j, const struct parts *p)
{
	size_t total = 0;

	memset(s, 0, sizeof(*s));
	s->j = j;
	journal_foreach(j, collect, s);
	if (s->n > 1)
		qsort(s->e, s->n, sizeof(*s->e), entry_cmp);
	for (size_t i = 1; i < s->n; i++)
		check(entry_cmp(&s->e[i - 1], &s->e[i]) != 0, "keys are unique");
	for (int st = J_INTENT; st <= J_FILTERED; st++)
		total += journal_count(j, (enum jstate)st);
	check(total == s->n, "journal_count adds up to the entries");
	collect_records(s, p);
}

static void entry_copy_free(struct entry_copy *c)
{
	free(c->e.mbox);
	free(c->e.flags);
}

static void snapshot_drop_deleted(struct snapshot *s)
{
	size_t w = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->e[i].e.state == J_DELETED)
			entry_copy_free(&s->e[i]);
		else
			s->e[w++] = s->e[i];
	}
	s->n = w;
}

static void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		entry_copy_free(&s->e[i]);
	for (size_t i = 0; i < s->nr; i++)
		free(s->r[i].mbox);
	free(s->e);
	free(s->r);
	memset(s, 0, sizeof(*s));
}

static void check_same(const struct snapshot *a, const struct snapshot *b,
		       const char *what)
{
	check(a->n == b->n, what);
	for (size_t i = 0; i < a->n; i++)
		check(entry_same(&a->e[i], &b->e[i]), what);
	/* a folder record, once there, stays as it was */
	for (size_t i = 0; i < a->nr; i++) {
		const struct record_copy *x = &a->r[i];

		for (size_t k = 0; k < b->nr; k++) {
			const struct record_copy *y = &b->r[k];

			if (strcmp(x->mbox, y->mbox) != 0 || !x->present)
				continue;
			check(y->present && x->rec.ruv == y->rec.ruv &&
			      x->rec.luv == y->rec.luv && x->rec.maxuid == y->rec.maxuid &&
			      x->rec.modseq == y->rec.modseq, "folder records survive");
		}
	}
}

/* ------------------------------------------------------------------ */

static void check_error(int rc, const char *err)
{
	check(rc == EXIT_DATAERR, "a replay fails only with EXIT_DATAERR");
	check(*err != '\0', "a failure has a message");
	/* It goes to the log: names from the files stay escaped (the seeds
	   regression-owner-newline*). */
	for (const char *c = err; *c != '\0'; c++)
		check((unsigned char)*c >= 0x20 && *c != 0x7f,
		      "the message is one line without control characters");
}

static void run(struct parts *p)
{
	struct journal *j = NULL;
	struct snapshot before, after;
	bool in_flight;
	char err[1024] = "";
	int rc;

	rc = journal_open(state_dir, OWNER, true, &j, err, sizeof(err));
	if (rc != 0) {
		check(j == NULL, "no journal on failure");
		check_error(rc, err);
		return;
	}
	snapshot_take(&before, j, p);
	in_flight = journal_append_in_flight(j);
	journal_close(&j);
	check(j == NULL, "journal_close clears the pointer");
	/* A commit drops J_DELETED entries on purpose, and a writable open
	   of a version 1 state commits at once: compare the rest. */
	snapshot_drop_deleted(&before);

	/* Writable: repairs a torn tail, upgrades version 1, then commit. */
	rc = journal_open(state_dir, OWNER, false, &j, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "fuzz_journal: writable open: %s\n", err);
	check(rc == 0, "what opens read-only also opens writable");
	snapshot_take(&after, j, p);
	snapshot_drop_deleted(&after);
	check_same(&before, &after, "a writable open replays the same entries");
	check(journal_append_in_flight(j) == in_flight, "same append marker writable");
	snapshot_free(&after);
	rc = journal_commit(j);
	if (rc != 0)
		fprintf(stderr, "fuzz_journal: commit: %s\n", journal_error(j));
	check(rc == 0, "commit");
	journal_close(&j);

	rc = journal_open(state_dir, OWNER, true, &j, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "fuzz_journal: reopen after commit: %s\n", err);
	check(rc == 0, "a committed state opens again");
	snapshot_take(&after, j, p);
	check(journal_append_in_flight(j) == in_flight, "append marker survives a commit");
	journal_close(&j);
	check_same(&before, &after, "a commit keeps every entry but the deleted ones");
	snapshot_free(&before);
	snapshot_free(&after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct parts p;

	if (state_dir == NULL)
		setup();
	split_input(data, size, &p);
	index_folders(&p);
	write_parts(&p);
	run(&p);
	parts_free(&p);
	return 0;
}
