/* test_log.c - redaction of registered secrets (log_redact). */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tap.h"
#include "util.h"

static char out[4096];

static const char *redact(const char *s)
{
	log_redact(out, sizeof(out), s);
	return out;
}

/* Does any n-byte piece of secret appear in s? */
static bool has_piece(const char *s, const char *secret, size_t n)
{
	size_t len = strlen(secret);

	for (size_t i = 0; i + n <= len; i++)
		if (memmem(s, strlen(s), secret + i, n) != NULL)
			return true;
	return false;
}

int main(void)
{
	static const char pw[] = "Correct-Horse-Battery-Staple-42";
	char big[600], cut[301], small[40];

	log_register_secret(pw);

	ok(strcmp(redact("login pw=Correct-Horse-Battery-Staple-42 done"),
		  "login pw=<redacted> done") == 0, "a whole secret is redacted: %s", out);
	ok(strcmp(redact("a\r\nb"), "a??b") == 0, "control characters cannot forge lines");

	/* Cut after: a prefix of the secret at the end of the string. */
	ok(strcmp(redact("you sent Correct-Horse-Bat"), "you sent <redacted>") == 0,
	   "a prefix at the end (cut after it) is redacted: %s", out);
	/* Cut before: a suffix of the secret at the start of the string. */
	ok(strcmp(redact("Battery-Staple-42 was wrong"), "<redacted> was wrong") == 0,
	   "a suffix at the start (cut before it) is redacted: %s", out);
	/* Pieces shorter than the minimum are ordinary text. */
	ok(strcmp(redact("word Corre"), "word Corre") == 0, "5 bytes at the end stay: %s", out);
	ok(strcmp(redact("Correct horse"), "Correct horse") == 0,
	   "a prefix not at the end is not a cut secret: %s", out);

	/* What a 300-byte buffer keeps of a 500-byte echoed secret. */
	char *longpw = xmalloc(501);
	for (int i = 0; i < 500; i++)
		longpw[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 + i / 36) % 36];
	longpw[500] = '\0';
	log_register_secret(longpw);
	snprintf(big, sizeof(big), "NO echo %s", longpw);
	snprintf(cut, sizeof(cut), "%s", big);          /* cut, then redact */
	redact(cut);
	ok(!has_piece(out, longpw, 8), "cut before redaction: no 8 bytes survive: %.60s", out);
	log_redact(small, sizeof(small), big);          /* redact into a small buffer */
	ok(!has_piece(small, longpw, 8) && strncmp(small, "NO echo <redacted>", 18) == 0,
	   "redacting into a small buffer: %s", small);

	log_forget_secret(longpw);
	ok(strstr(redact(big), "<redacted>") == NULL, "a forgotten secret is printed again");
	free(longpw);
	log_forget_secret(pw);
	ok(strcmp(redact("pw=Correct-Horse-Battery-Staple-42"),
		  "pw=Correct-Horse-Battery-Staple-42") == 0, "nothing registered: nothing redacted");
	return tap_done();
}
