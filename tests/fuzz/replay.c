/* replay.c - runs a fuzz target over its seed corpus when no fuzzing
 * engine is linked, so every seed is a regression test in make check.
 *
 * Generic: it links against any LLVMFuzzerTestOneInput.  Without
 * arguments it replays every regular file in CORPUS_DIR (a macro the
 * Makefile defines), in name order, after a built-in empty input; with
 * arguments it replays the named files or directories instead (handy for
 * a crash file).  Output is TAP; a target that aborts fails the test.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#ifndef CORPUS_DIR
#error "CORPUS_DIR must name the fuzz target's seed corpus"
#endif

/* Seeds are small; a bigger file is a mistake, not a test. */
#define MAX_INPUT_SIZE (64 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int test_count, test_failed;

static void tap_result(bool ok, const char *name, const char *why)
{
	test_count++;
	if (!ok)
		test_failed++;
	printf("%s %d - %s%s%s\n", ok ? "ok" : "not ok", test_count, name,
	       why != NULL ? ": " : "", why != NULL ? why : "");
	fflush(stdout);
}

static bool read_file(const char *path, unsigned char **data_r, size_t *size_r,
		      const char **why_r)
{
	FILE *f = fopen(path, "rb");
	struct buf b = { 0 };
	unsigned char chunk[8192];
	size_t n;

	if (f == NULL) {
		*why_r = strerror(errno);
		return false;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > MAX_INPUT_SIZE) {
			*why_r = "file too big";
			break;
		}
		buf_append(&b, chunk, n);
	}
	bool ok = !ferror(f) && n == 0;

	if (ferror(f))
		*why_r = "read error";
	fclose(f);
	if (!ok) {
		buf_free(&b);
		return false;
	}
	*data_r = b.data;
	*size_r = b.len;
	return true;
}

static void replay_file(const char *path, const char *name)
{
	unsigned char *data = NULL;
	size_t size = 0;
	const char *why = NULL;

	if (!read_file(path, &data, &size, &why)) {
		tap_result(false, name, why);
		return;
	}
	/* A copy of exactly size bytes, so ASan sees any overread. */
	unsigned char *copy = xmalloc(size);

	if (size > 0)
		memcpy(copy, data, size);
	(void)LLVMFuzzerTestOneInput(copy, size);
	free(copy);
	free(data);
	tap_result(true, name, NULL);
}

static int skip_hidden(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static void replay_path(const char *path)
{
	struct stat st;
	struct dirent **names;
	int n;

	if (stat(path, &st) < 0) {
		tap_result(false, path, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path, path);
		return;
	}
	n = scandir(path, &names, skip_hidden, alphasort);
	if (n < 0) {
		tap_result(false, path, strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		char *file = xasprintf("%s/%s", path, names[i]->d_name);

		if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
			replay_file(file, names[i]->d_name);
		free(file);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	(void)LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	tap_result(true, "built-in empty input", NULL);

	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			replay_path(argv[i]);
	} else {
		replay_path(CORPUS_DIR);
	}
	if (test_count == 1)
		tap_result(false, "inputs", "no seed files found");
	printf("1..%d\n", test_count);
	return test_failed > 0 ? 1 : 0;
}
