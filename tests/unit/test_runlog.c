/* test_runlog.c - the run records: the reason of a failure (side and
 * message) is kept, a "runs" file written by an older version (eight
 * numbers a line) is still read, and the side of an error is found. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcode.h"
#include "runlog.h"
#include "tap.h"
#include "util.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		perror(path);
		exit(99);
	}
	fputs(text, f);
	fclose(f);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	static char buf[8192];
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int main(void)
{
	char tmpl[] = "/tmp/test_runlog.XXXXXX";
	char *dir = mkdtemp(tmpl);
	struct run_record recs[10], tot;
	uint64_t runs;

	if (dir == NULL) {
		perror("mkdtemp");
		return 99;
	}
	char *runs_path = xasprintf("%s/runs", dir), *tot_path = xasprintf("%s/totals", dir);

	/* A state directory of the previous version. */
	write_file(runs_path, "1700000000 1700000010 0 3 0 0 0 999\n"
			      "1700000100 1700000101 69 0 0 0 1 0\n");
	write_file(tot_path, "2 1700000000 1700000101 69 3 0 0 1 999\n");
	size_t n = runlog_read(dir, recs, 10);
	ok(n == 2 && recs[0].copied == 3 && recs[1].exit_code == 69 && recs[1].errors == 1,
	   "an old runs file is read (%zu records)", n);
	ok(n == 2 && recs[1].error[0] == '\0' && recs[1].side[0] == '\0',
	   "old records have no reason");

	/* A new failed run is appended with its reason. */
	struct run_record r = { .start = 1700000200, .end = 1700000205, .exit_code = 77,
				.errors = 1 };
	snprintf(r.side, sizeof(r.side), "remote");
	snprintf(r.error, sizeof(r.error), "remote: login as bob failed: [AUTHENTICATIONFAILED] "
		 "Authentication failed.\nforged line");
	ok(runlog_append(dir, &r) == 0, "append a failed run");
	char *text = read_all(runs_path);
	ok(text != NULL && strstr(text, "1700000000 1700000010 0 3 0 0 0 999\n") != NULL,
	   "the old lines stay as they were");
	ok(text != NULL && strstr(text, "1700000200 1700000205 77 0 0 0 1 0 side=remote error=remote: "
				  "login as bob failed: [AUTHENTICATIONFAILED] Authentication "
				  "failed.?forged line\n") != NULL,
	   "the new line: numbers, then side and error on the same line");
	n = runlog_read(dir, recs, 10);
	ok(n == 3 && recs[2].exit_code == 77 && strcmp(recs[2].side, "remote") == 0 &&
	   strncmp(recs[2].error, "remote: login as bob failed", 27) == 0,
	   "read back: side %s, error %s", n == 3 ? recs[2].side : "", n == 3 ? recs[2].error : "");
	ok(n == 3 && recs[0].error[0] == '\0' && recs[0].copied == 3, "the old records still read");
	ok(runlog_totals(dir, &tot, &runs) == 0 && runs == 3 && tot.errors == 2 &&
	   tot.copied == 3 && tot.exit_code == 77, "totals add up (%llu runs)",
	   (unsigned long long)runs);
	text = read_all(tot_path);
	ok(text != NULL && strstr(text, "error=") == NULL && strstr(text, "side=") == NULL,
	   "the totals file keeps its format");

	/* What the previous version's parser reads of a new line: the
	   eight numbers (sscanf stops there). */
	long long a, b;
	int code;
	unsigned long long c, k, d, er, by;
	text = read_all(runs_path);
	const char *last = strstr(text, "1700000200");
	ok(last != NULL && sscanf(last, "%lld %lld %d %llu %llu %llu %llu %llu", &a, &b, &code,
				  &c, &k, &d, &er, &by) == 8 && code == 77,
	   "an older version still reads the numbers of a new line");

	/* A successful run has no reason. */
	struct run_record okr = { .start = 1700000300, .end = 1700000301, .exit_code = 0 };
	runlog_append(dir, &okr);
	n = runlog_read(dir, recs, 1);
	ok(n == 1 && recs[0].exit_code == 0 && recs[0].error[0] == '\0', "a success has no reason");
	text = read_all(runs_path);
	ok(strstr(text, "1700000300 1700000301 0 0 0 0 0 0\n") != NULL,
	   "a success is written as before");

	/* A line with fields of a later version: the numbers are read. */
	write_file(runs_path, "1 2 75 0 0 0 1 0 side=local future=x error=local: over quota\n");
	n = runlog_read(dir, recs, 10);
	ok(n == 1 && recs[0].exit_code == 75 && strcmp(recs[0].side, "local") == 0 &&
	   strcmp(recs[0].error, "local: over quota") == 0, "unknown fields are passed over");

	/* The side of an error. */
	struct { int code; const char *msg, *side; } sides[] = {
		{ EXIT_CONFIG, "remote password: cannot open x.pwd", "config" },
		{ EXIT_DATAERR, "state: journal damaged", "state" },
		{ EXIT_IOERR, "cannot write", "state" },
		{ EXIT_UNAVAILABLE, "remote: cannot connect to 127.0.0.1:1: Connection refused", "remote" },
		{ EXIT_NOPERM, "local (Dovecot master user): login as bob*vmail failed", "local" },
		{ EXIT_TEMPFAIL, "local LMTP: connection lost", "local" },
		{ EXIT_CANTCREAT, "local: mailbox of bob is over quota", "local" },
		{ EXIT_CANTCREAT, "disk full", "local" },
		{ EXIT_PROTOCOL, "2 message(s) not taken: the remote server's answers were incomplete",
		  "remote" },
		{ EXIT_TEMPFAIL, "stopped by a signal; the next run resumes", "" },
		{ EXIT_TEMPFAIL, "state journal: fsync failed", "state" },
	};
	for (size_t i = 0; i < N_ELEMENTS(sides); i++) {
		const char *got = runlog_error_side(sides[i].code, sides[i].msg);
		ok(strcmp(got, sides[i].side) == 0, "side of %d \"%s\": %s", sides[i].code,
		   sides[i].msg, got);
	}

	unlink(runs_path);
	unlink(tot_path);
	rmdir(dir);
	free(runs_path);
	free(tot_path);
	return tap_done();
}
