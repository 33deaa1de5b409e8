/* test_journal.c - the state journal: replay, commit, torn tails, and
 * refusal to guess on corrupt state.  Links only journal.c and util.c. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "exitcode.h"
#include "journal.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/test-journal.XXXXXX";

static void write_text(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write_full(fd, text, strlen(text)) < 0)
		abort();
	close(fd);
	free(path);
}

static void reset_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		unlink(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
}

static void test_roundtrip(void)
{
	struct journal *j;
	char err[512];
	char name[] = "Archive/2024 & more%";

	reset_dir();
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0, "open empty state");
	struct jentry t = { .mbox = name, .ruv = 7, .ruid = 42, .size = 1234,
			    .hash = 0xdeadbeefcafef00dULL, .luv = 9, .luidnext = 100 };
	ok(journal_intent(j, &t) == 0 && journal_sync(j) == 0, "intent written and synced");
	struct jentry *e = journal_get(j, name, 7, 42);
	ok(e != NULL && e->state == J_INTENT && e->luidnext == 100, "intent visible in memory");
	ok(journal_delivered(j, e, 9, 101) == 0, "delivered recorded");
	t.ruid = 43;
	ok(journal_intent(j, &t) == 0, "second intent");
	ok(journal_abandon(j, journal_get(j, name, 7, 43)) == 0, "second intent abandoned");
	ok(journal_get(j, name, 7, 43) == NULL, "abandoned entry removed");
	ok(journal_skipped(j, "INBOX", 7, 5, 99) == 0, "skip recorded");
	journal_close(&j);

	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0, "reopen replays the journal");
	e = journal_get(j, name, 7, 42);
	ok(e != NULL && e->state == J_DELIVERED && e->luid == 101 && e->size == 1234 &&
	   e->hash == 0xdeadbeefcafef00dULL, "delivered entry replayed with every field");
	ok(journal_get(j, name, 7, 43) == NULL, "abandon replayed");
	ok(journal_count(j, J_SKIPPED) == 1, "skip replayed");
	ok(journal_seen(j, e) == 0 && journal_commit(j) == 0, "seen + commit");
	journal_close(&j);

	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0, "reopen from snapshot %s", err);
	e = journal_get(j, name, 7, 42);
	ok(e != NULL && e->state == J_SEEN, "snapshot keeps the seen state");
	ok(journal_deleted(j, e) == 0 && journal_commit(j) == 0, "deleted + commit");
	ok(journal_get(j, name, 7, 42) == NULL, "deleted entries are dropped at commit");
	journal_close(&j);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0 && journal_get(j, name, 7, 42) == NULL,
	   "and stay dropped after reopening");
	journal_close(&j);
}

static void test_many(void)
{
	struct journal *j;
	char err[512];
	bool all = true;

	reset_dir();
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	for (uint32_t i = 1; i <= 5000; i++) {
		struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = i, .size = i };
		journal_intent(j, &t);
		if (i % 3 == 0)
			journal_abandon(j, journal_get(j, "INBOX", 1, i));
	}
	journal_close(&j);
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	for (uint32_t i = 1; i <= 5000; i++) {
		struct jentry *e = journal_get(j, "INBOX", 1, i);
		if ((i % 3 == 0) != (e == NULL) || (e != NULL && e->size != i))
			all = false;
	}
	ok(all, "5000 entries with removals replay exactly");
	ok(journal_count(j, J_INTENT) == 5000 - 5000 / 3, "count by state");
	journal_close(&j);
}

static void test_in_flight_marker(void)
{
	struct journal *j;
	char err[512];

	reset_dir();
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = 9, .size = 5 };
	journal_intent(j, &t);
	journal_skipped(j, "INBOX", 1, 8, 3);
	ok(journal_append_started(j, "INBOX") == 0 && journal_append_in_flight(j),
	   "APPEND marked as started");
	ok(journal_commit(j) == 0, "commit with an APPEND unsettled");
	journal_close(&j);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0 && journal_append_in_flight(j),
	   "the snapshot keeps the in-flight marker");
	ok(journal_delivered(j, journal_get(j, "INBOX", 1, 9), 2, 3) == 0 &&
	   !journal_append_in_flight(j), "a delivered line settles it");
	ok(journal_commit(j) == 0, "commit");
	journal_close(&j);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0 && !journal_append_in_flight(j),
	   "and it stays settled after reopening");
	journal_close(&j);
}

static void test_read_only(void)
{
	struct journal *j;
	char err[512];
	char *path = xasprintf("%s/journal", dir);

	reset_dir();
	ok(journal_open(dir, NULL, true, &j, err, sizeof(err)) == 0, "read-only open of an empty state");
	ok(access(path, F_OK) != 0, "creates no journal file");
	journal_close(&j);
	write_text("journal", "imapsync-task-journal 1\nI INBOX 1 2 10 00000000000000aa 3 0 5\nD INBOX");
	ok(journal_open(dir, NULL, true, &j, err, sizeof(err)) == 0 && journal_get(j, "INBOX", 1, 2) != NULL,
	   "read-only open replays");
	journal_close(&j);
	struct stat st;
	ok(stat(path, &st) == 0 && st.st_size == (off_t)strlen("imapsync-task-journal 1\nI INBOX 1 2 10 00000000000000aa 3 0 5\nD INBOX"),
	   "and leaves a torn tail as it found it");
	free(path);
}

static void test_damage(void)
{
	struct journal *j = NULL;
	char err[512];

	reset_dir();
	write_text("journal", "imapsync-task-journal 1\n"
		   "I INBOX 1 2 10 00000000000000aa 3 0 5\n"
		   "D INBOX 1 2 10 00000000000000aa 3 7");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0, "torn last line is tolerated");
	struct jentry *e = j ? journal_get(j, "INBOX", 1, 2) : NULL;
	ok(e != NULL && e->state == J_INTENT, "torn step is treated as not done");
	struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = 3 };
	ok(j != NULL && journal_intent(j, &t) == 0, "appending after a torn tail works");
	journal_close(&j);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0 && journal_get(j, "INBOX", 1, 3) != NULL,
	   "new line after the repaired tail replays");
	journal_close(&j);

	reset_dir();
	write_text("journal", "imapsync-task-journal 99\n");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == EXIT_DATAERR, "unknown version refused");
	ok(strstr(err, "incompatible") != NULL, "and the error says so: %s", err);

	reset_dir();
	write_text("journal", "imapsync-task-journal 1\nI INBOX one 2 10 aa 3 0 5\n");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == EXIT_DATAERR, "malformed entry refused");
	ok(strstr(err, ":2:") != NULL, "error names the line: %s", err);

	reset_dir();
	write_text("state", "imapsync-task-state 1\nS INBOX 1 2 10 aa 3 4");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == EXIT_DATAERR, "truncated snapshot refused");

	reset_dir();
	write_text("journal", "imapsync-task-journal 1\nQ INBOX 1 2 10 aa 3 0 5\n");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == EXIT_DATAERR, "unknown record letter refused");
}

static char *read_text(const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	static char text[65536];
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;

	text[n] = '\0';
	if (f)
		fclose(f);
	free(path);
	return text;
}

/* The name of the (only) folder snapshot file, "state.<hash>". */
static const char *folder_file(void)
{
	static char name[256];
	DIR *d = opendir(dir);
	struct dirent *de;

	name[0] = '\0';
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "state.", 6) == 0 && strstr(de->d_name, ".new") == NULL)
			snprintf(name, sizeof(name), "%s", de->d_name);
	if (d != NULL)
		closedir(d);
	return name;
}

/* Issue 8, case 2: state bound to its owner, snapshot checksummed. */
static void test_owner_and_checksum(void)
{
	struct journal *j = NULL;
	char err[512];
	const char *me = "task=a remote=u@h:993", *other = "task=b remote=u@h:993";

	reset_dir();
	ok(journal_open(dir, me, false, &j, err, sizeof(err)) == 0, "open a new state with an owner");
	struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = 30, .size = 10,
			    .chash = 0x1234, .clen = 9 };
	journal_intent(j, &t);
	journal_delivered(j, journal_get(j, "INBOX", 1, 30), 2, 5);
	journal_close(&j);
	ok(journal_open(dir, other, false, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "another task's journal is refused");
	ok(strstr(err, "task=a") != NULL && strstr(err, "task=b") != NULL,
	   "and the error names both owners: %s", err);
	ok(journal_open(dir, me, false, &j, err, sizeof(err)) == 0, "its own owner opens it");
	struct jentry *e = j ? journal_get(j, "INBOX", 1, 30) : NULL;
	ok(e != NULL && e->chash == 0x1234 && e->clen == 9, "content hash and length replayed");
	ok(j != NULL && journal_seen(j, e) == 0 && journal_commit(j) == 0, "commit a snapshot");
	journal_close(&j);
	ok(journal_open(dir, other, true, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "another task's snapshot is refused");

	/* One changed UID digit in the folder's snapshot. */
	const char *fname = folder_file();
	char *state = xstrdup(read_text(fname));
	char *p = strstr(state, " 1 30 ");
	ok(p != NULL, "the snapshot holds the entry");
	if (p != NULL)
		p[4] = '1';
	write_text(fname, state);
	ok(journal_open(dir, me, true, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "a changed digit in the snapshot is refused");
	ok(strstr(err, "damaged") != NULL, "as damaged: %s", err);

	/* A snapshot cut at a line boundary (its end line gone). */
	if (p != NULL)
		p[4] = '0';
	char *end = strstr(state, "end ");
	if (end != NULL)
		*end = '\0';
	write_text(fname, state);
	ok(journal_open(dir, me, true, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "a snapshot without its end line is refused");
	free(state);

	/* A changed digit in a journal line. */
	reset_dir();
	journal_open(dir, me, false, &j, err, sizeof(err));
	t.ruid = 40;
	journal_intent(j, &t);
	journal_sync(j);
	journal_close(&j);
	char *jtext = xstrdup(read_text("journal"));
	p = strstr(jtext, " 1 40 ");
	if (p != NULL)
		p[4] = '1';
	write_text("journal", jtext);
	free(jtext);
	ok(journal_open(dir, me, false, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "a changed digit in a journal line is refused: %s", err);
}

/* Issue 8, case 16: a journal cut at a line boundary. */
static void test_truncated_journal(void)
{
	struct journal *j = NULL;
	char err[512];

	reset_dir();
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	for (uint32_t i = 1; i <= 3; i++) {
		struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = i, .size = 5 };
		journal_intent(j, &t);
	}
	journal_sync(j);
	journal_close(&j);
	char *jtext = xstrdup(read_text("journal"));
	char *last = strrchr(jtext, 'I');
	ok(last != NULL, "three intents on disk");
	if (last != NULL)
		*last = '\0';  /* drop the last whole line */
	write_text("journal", jtext);
	free(jtext);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == EXIT_DATAERR,
	   "a journal shorter than its last sync is refused");
	ok(strstr(err, "missing") != NULL, "and the error says lines are missing: %s", err);

	/* Lines written after the last sync may be lost by a crash. */
	reset_dir();
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	struct jentry t = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = 1, .size = 5 };
	journal_intent(j, &t);
	journal_sync(j);
	t.ruid = 2;
	journal_intent(j, &t);
	journal_close(&j);
	jtext = xstrdup(read_text("journal"));
	last = strrchr(jtext, 'I');
	if (last != NULL)
		*last = '\0';
	write_text("journal", jtext);
	free(jtext);
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0,
	   "losing an unsynced line is not damage");
	journal_close(&j);
}

/* A state written by the first release is read and upgraded. */
static void test_legacy(void)
{
	struct journal *j = NULL;
	char err[512];

	reset_dir();
	write_text("state", "imapsync-task-state 1\nS INBOX 1 2 10 00000000000000aa 3 4 5\n");
	write_text("journal", "imapsync-task-journal 1\nI INBOX 1 3 10 00000000000000bb 3 0 5\n");
	ok(journal_open(dir, "task=a remote=u@h:1", false, &j, err, sizeof(err)) == 0,
	   "a version 1 state opens: %s", err);
	struct jentry *e = j ? journal_get(j, "INBOX", 1, 2) : NULL;
	ok(e != NULL && e->state == J_SEEN && e->luid == 4 && e->hash == 0xaa,
	   "its snapshot entry is read");
	e = j ? journal_get(j, "INBOX", 1, 3) : NULL;
	ok(e != NULL && e->state == J_INTENT, "its journal entry is replayed");
	journal_close(&j);
	ok(strncmp(read_text("state"), "imapsync-task-state 2\nowner task=a", 34) == 0,
	   "and it is rewritten as version 2 with its owner");
	ok(journal_open(dir, "task=a remote=u@h:1", false, &j, err, sizeof(err)) == 0 &&
	   journal_get(j, "INBOX", 1, 3) != NULL, "which opens again");
	journal_close(&j);
}

static ino_t inode_of_folder(const char *mbox)
{
	/* The file name is the FNV-1a 64 of the folder name. */
	char *path = xasprintf("%s/state.%016llx", dir,
			       (unsigned long long)fnv1a64(FNV1A64_INIT, mbox, strlen(mbox)));
	struct stat st;
	ino_t ino = stat(path, &st) == 0 ? st.st_ino : 0;

	free(path);
	return ino;
}

static void count_cb(void *ctx, struct jentry *e)
{
	(void)e;
	(*(size_t *)ctx)++;
}

/* Issue 9: per-folder records, flags, markers; a commit rewrites only the
   folders that changed. */
static void test_folders(void)
{
	struct journal *j = NULL;
	char err[512];
	struct jfolder_rec rec = { .ruv = 11, .luv = 12, .maxuid = 300, .modseq = 4242 }, got;

	reset_dir();
	journal_open(dir, NULL, false, &j, err, sizeof(err));
	for (uint32_t i = 1; i <= 3; i++) {
		struct jentry a = { .mbox = (char *)"INBOX", .ruv = 1, .ruid = i, .size = i };
		struct jentry b = { .mbox = (char *)"Archive/2024", .ruv = 2, .ruid = i, .size = i,
				    .flags = (char *)"\\Seen" };
		journal_intent(j, &a);
		journal_intent(j, &b);
	}
	ok(journal_set_folder_record(j, "Archive/2024", &rec) == 0, "folder record written");
	struct jentry *e = journal_get(j, "Archive/2024", 2, 2);
	ok(e != NULL && journal_set_flags(j, e, "\\Seen \\Flagged $Work") == 0,
	   "flags last synced written");
	ok(journal_append_started(j, "INBOX") == 0, "an APPEND in flight in INBOX");
	ok(journal_commit(j) == 0, "commit two folders");
	journal_close(&j);

	ino_t inbox = inode_of_folder("INBOX"), archive = inode_of_folder("Archive/2024");
	ok(inbox != 0 && archive != 0, "each folder has its own snapshot file");
	ok(journal_open(dir, NULL, false, &j, err, sizeof(err)) == 0, "reopen");
	size_t n_inbox = 0, n_archive = 0;
	journal_folder_foreach(j, "INBOX", count_cb, &n_inbox);
	journal_folder_foreach(j, "Archive/2024", count_cb, &n_archive);
	ok(n_inbox == 3 && n_archive == 3, "entries listed per folder (%zu, %zu)", n_inbox, n_archive);
	ok(journal_folder_record(j, "Archive/2024", &got) && got.ruv == 11 && got.luv == 12 &&
	   got.maxuid == 300 && got.modseq == 4242, "the folder record survives");
	ok(!journal_folder_record(j, "INBOX", &got), "a folder without a record has none");
	e = journal_get(j, "Archive/2024", 2, 2);
	ok(e != NULL && e->flags != NULL && strcmp(e->flags, "\\Seen \\Flagged $Work") == 0,
	   "flags survive the snapshot");
	e = journal_get(j, "Archive/2024", 2, 1);
	struct jentry *ie = journal_get(j, "INBOX", 1, 1);
	ok(ie != NULL && journal_in_flight(j, ie) && e != NULL && !journal_in_flight(j, e),
	   "the in-flight marker is per folder");
	/* Change INBOX only: Archive's snapshot is not rewritten. */
	ok(ie != NULL && journal_delivered(j, ie, 5, 6) == 0 && journal_commit(j) == 0,
	   "change one folder and commit");
	ok(inode_of_folder("Archive/2024") == archive, "the unchanged folder's file was not rewritten");
	ok(inode_of_folder("INBOX") != inbox, "the changed folder's file was");
	/* A folder whose entries are all gone loses its file. */
	for (uint32_t i = 1; i <= 3; i++)
		journal_forget(j, journal_get(j, "INBOX", 1, i));
	ok(journal_commit(j) == 0 && inode_of_folder("INBOX") == 0,
	   "an emptied folder's file is removed");
	journal_close(&j);
	ok(journal_open(dir, NULL, true, &j, err, sizeof(err)) == 0 &&
	   journal_get(j, "INBOX", 1, 2) == NULL && journal_get(j, "Archive/2024", 2, 3) != NULL,
	   "and the index no longer lists it: %s", err);
	journal_close(&j);
}

int main(void)
{
	if (mkdtemp(dir) == NULL)
		return 1;
	test_roundtrip();
	test_many();
	test_damage();
	test_read_only();
	test_in_flight_marker();
	test_owner_and_checksum();
	test_truncated_journal();
	test_legacy();
	test_folders();
	reset_dir();
	rmdir(dir);
	return tap_done();
}
