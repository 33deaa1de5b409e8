/* fuzz_journal.c - libFuzzer target for journal replay (journal.c).
 *
 * The input is up to three files of a task's state directory, separated
 * by NUL bytes (which the files themselves never hold):
 *
 *     STATE \0 JOURNAL \0 JOURNAL.MARK
 *
 * A missing or empty part means that file does not exist, so a seed
 * without a NUL byte is a snapshot alone, and "\0TEXT" a journal alone.
 * Only the public API of journal.h is used.  Per input:
 *  - journal_open(read_only) must succeed or fail with EXIT_DATAERR and a
 *    one-line message; on success every entry is well-formed and can be
 *    found again with journal_get, and the counts add up;
 *  - then the same files are opened writable and committed, and opened
 *    again read-only: what was replayed survives the commit unchanged
 *    (except J_DELETED entries, which a commit drops on purpose).
 * The directory is made once per process (on tmpfs when there is one:
 * the writable round fsyncs); each input only replaces its files.
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
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The owner the seeds are written for (an "owner -" line matches any). */
#define OWNER "task=f remote=u@imap.example.org:143"

static const char *const part_names[] = { "state", "journal", "journal.mark" };

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

static void write_parts(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	empty_dir();
	for (size_t i = 0; i < N_ELEMENTS(part_names) && pos <= size; i++) {
		const uint8_t *nul = pos < size ? memchr(data + pos, '\0', size - pos) : NULL;
		size_t len = nul != NULL ? (size_t)(nul - (data + pos)) : size - pos;

		if (len > 0) {
			char *path = xasprintf("%s/%s", state_dir, part_names[i]);
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

			check(fd >= 0 && write_full(fd, data + pos, len) == 0 &&
			      close(fd) == 0, "cannot write a test file");
			free(path);
		}
		if (nul == NULL)
			break;
		pos += len + 1;
	}
}

/* ------------------------------------------------------------------ */
/* a copy of every entry, to compare two replays                       */

struct snapshot {
	struct jentry *e;
	size_t n, cap;
	struct journal *j;      /* for the journal_get check */
};

static void collect(void *ctx, struct jentry *e)
{
	struct snapshot *s = ctx;

	check(e->mbox != NULL, "entry has a mailbox");
	check(e->state >= J_INTENT && e->state <= J_FILTERED, "entry state is known");
	check(journal_get(s->j, e->mbox, e->ruv, e->ruid) == e,
	      "journal_get finds every entry");
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->e = xreallocarray(s->e, s->cap, sizeof(*s->e));
	}
	s->e[s->n] = *e;
	s->e[s->n].mbox = xstrdup(e->mbox);
	s->n++;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct jentry *x = a, *y = b;
	int c = strcmp(x->mbox, y->mbox);

	if (c != 0)
		return c;
	if (x->ruv != y->ruv)
		return x->ruv < y->ruv ? -1 : 1;
	return x->ruid < y->ruid ? -1 : x->ruid > y->ruid;
}

static bool entry_same(const struct jentry *x, const struct jentry *y)
{
	return entry_cmp(x, y) == 0 && x->state == y->state && x->size == y->size &&
		x->hash == y->hash && x->luv == y->luv && x->luid == y->luid &&
		x->luidnext == y->luidnext && x->chash == y->chash && x->clen == y->clen;
}

static void snapshot_take(struct snapshot *s, struct journal *j)
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
}

static void snapshot_drop_deleted(struct snapshot *s)
{
	size_t w = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->e[i].state == J_DELETED)
			free(s->e[i].mbox);
		else
			s->e[w++] = s->e[i];
	}
	s->n = w;
}

static void snapshot_free(struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->e[i].mbox);
	free(s->e);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ */

static void check_error(int rc, const char *err)
{
	check(rc == EXIT_DATAERR, "a replay fails only with EXIT_DATAERR");
	check(*err != '\0', "a failure has a message");
	/* KNOWN BUG (journal.c, reported): the owner-mismatch message quotes
	   the file's owner as decoded, control characters included ("%0A"
	   is a newline; get_name() even takes "%a" for it).  Until that is
	   fixed, that message is exempt; the seeds known-bug-owner-* keep
	   the case in the corpus. */
	if (strstr(err, ": written for ") == NULL)
		check(strchr(err, '\n') == NULL, "the message is one line");
}

/* KNOWN BUG (journal.c, reported): a mailbox name whose %-escaped form
   is longer than the 4095 bytes apply_line() reads is written, but its
   line can never be read back (exit 65 at the next run).  Until that is
   fixed, inputs holding such a name skip the writable round; the seed
   known-bug-long-name keeps the case in the corpus.  The escaping is
   journal.c's put_name(). */
static bool has_unreadable_name(const struct snapshot *s)
{
	for (size_t i = 0; i < s->n; i++) {
		size_t len = 0;

		for (const char *p = s->e[i].mbox; *p != '\0'; p++) {
			unsigned char c = (unsigned char)*p;

			len += c <= 0x20 || c == '%' || c >= 0x7f ? 3 : 1;
		}
		if (len > 4095)
			return true;
	}
	return false;
}

static void check_same(const struct snapshot *a, const struct snapshot *b,
		       const char *what)
{
	check(a->n == b->n, what);
	for (size_t i = 0; i < a->n; i++)
		check(entry_same(&a->e[i], &b->e[i]), what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct journal *j = NULL;
	struct snapshot before, after;
	bool in_flight;
	char err[1024] = "";
	int rc;

	if (state_dir == NULL)
		setup();
	write_parts(data, size);

	rc = journal_open(state_dir, OWNER, true, &j, err, sizeof(err));
	if (rc != 0) {
		check(j == NULL, "no journal on failure");
		check_error(rc, err);
		return 0;
	}
	snapshot_take(&before, j);
	in_flight = journal_append_in_flight(j);
	journal_close(&j);
	check(j == NULL, "journal_close clears the pointer");
	/* A commit drops J_DELETED entries on purpose, and a writable open
	   of a version 1 state commits at once: compare the rest. */
	snapshot_drop_deleted(&before);
	if (has_unreadable_name(&before)) {
		snapshot_free(&before);
		return 0;
	}

	/* Writable: repairs a torn tail, upgrades version 1, then commit. */
	rc = journal_open(state_dir, OWNER, false, &j, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "fuzz_journal: writable open: %s\n", err);
	check(rc == 0, "what opens read-only also opens writable");
	snapshot_take(&after, j);
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
	snapshot_take(&after, j);
	check(journal_append_in_flight(j) == in_flight, "append marker survives a commit");
	journal_close(&j);
	check_same(&before, &after, "a commit keeps every entry but the deleted ones");
	snapshot_free(&before);
	snapshot_free(&after);
	return 0;
}
