/* test_mutf7.c - modified UTF-7 conversion: vectors, round trips, and
 * the malformed forms that must be refused in each direction. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"
#include "tap.h"
#include "util.h"

/* A valid pair: UTF-8 text and its one canonical mUTF-7 spelling. */
struct pair {
	const char *utf8;
	const char *mutf7;
};

static const struct pair pairs[] = {
	{ "", "" },
	{ "INBOX", "INBOX" },
	{ "Sent Items/2024 ~ old", "Sent Items/2024 ~ old" },
	{ "&", "&-" },
	{ "R&D", "R&-D" },
	{ "&&", "&-&-" },
	{ "a-b&-", "a-b&--" },
	{ "Entwürfe", "Entw&APw-rfe" },
	{ "Входящие", "&BBIERQQ+BDQETwRJBDgENQ-" },
	{ "台北", "&U,BTFw-" },
	{ "📧", "&2D3c5w-" },
	{ "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "ä&ö", "&AOQ-&-&APY-" },
	{ "日&", "&ZeU-&-" },
	{ "äö", "&AOQA9g-" },
	{ "x📧y€z", "x&2D3c5w-y&IKw-z" },
	{ "tab\there", "tab&AAk-here" },
	{ "del\x7f", "del&AH8-" },
	{ "\xf4\x8f\xbf\xbf", "&2,,f,w-" },		/* U+10FFFF */
	{ "\xef\xbf\xbf", "&,,8-" },			/* U+FFFF */
};

/* mUTF-7 that mutf7_to_utf8() must refuse. */
static const struct {
	const char *in;
	const char *why;
} bad_mutf7[] = {
	{ "&", "lone & at end" },
	{ "abc&U,BTFw", "unterminated shift" },
	{ "&U,B*Fw-", "bad base64 character" },
	{ "&U/BTFw-", "standard base64 '/' instead of ','" },
	{ "&U,BTFx-", "non-zero leftover bits" },
	{ "&U,BTFwA-", "superfluous base64 character" },
	{ "&A-", "six bits only" },
	{ "&AGE-", "encoded printable ASCII 'a'" },
	{ "&ACY-", "encoded '&'" },
	{ "&ACA-", "encoded space" },
	{ "&AAA-", "encoded NUL" },
	{ "&U,A-&UxA-", "two adjacent shift sequences" },
	{ "&2D0-", "lone high surrogate" },
	{ "&3Mw-", "lone low surrogate" },
	{ "&3MzYPQ-", "low surrogate before high" },
	{ "&2D3YPQ-", "high surrogate followed by high surrogate" },
	{ "&2D0-&3Mw-", "surrogate pair split across sequences" },
	{ "Entw\xc3\xbcrfe", "raw 8-bit bytes" },
	{ "a\tb", "raw control character" },
	{ "a\x7f", "raw DEL" },
	{ "&=-", "base64 padding character" },
};

/* UTF-8 that utf8_to_mutf7() must refuse. */
static const struct {
	const char *in;
	const char *why;
} bad_utf8[] = {
	{ "\xc0\xaf", "overlong '/' (2 bytes)" },
	{ "\xc1\xbf", "overlong (C1 lead)" },
	{ "\xe0\x80\xaf", "overlong '/' (3 bytes)" },
	{ "\xe0\x9f\xbf", "overlong U+07FF" },
	{ "\xf0\x80\x80\xaf", "overlong '/' (4 bytes)" },
	{ "\xf0\x8f\xbf\xbf", "overlong U+FFFF" },
	{ "\xed\xa0\x80", "UTF-8 encoded high surrogate" },
	{ "\xed\xbf\xbf", "UTF-8 encoded low surrogate" },
	{ "\xed\xa0\xbd\xed\xb3\x8c", "CESU-8 surrogate pair" },
	{ "\xf4\x90\x80\x80", "U+110000" },
	{ "\xf5\x80\x80\x80", "F5 lead byte" },
	{ "\xf8\x88\x80\x80\x80", "5-byte form" },
	{ "\xfe", "byte 0xfe" },
	{ "\xff", "byte 0xff" },
	{ "\x80", "lone continuation byte" },
	{ "Entw\xc3", "truncated 2-byte sequence" },
	{ "\xe5\x8f", "truncated 3-byte sequence" },
	{ "\xf0\x9f\x93", "truncated 4-byte sequence" },
	{ "\xc3\x28", "bad continuation byte" },
};

static void test_pairs(void)
{
	for (size_t i = 0; i < N_ELEMENTS(pairs); i++) {
		const struct pair *p = &pairs[i];
		char *enc = utf8_to_mutf7(p->utf8, strlen(p->utf8));
		char *dec = mutf7_to_utf8(p->mutf7, strlen(p->mutf7));

		ok(enc != NULL && strcmp(enc, p->mutf7) == 0,
		   "encode \"%s\" -> \"%s\" (got \"%s\")", p->utf8, p->mutf7,
		   enc != NULL ? enc : "(null)");
		ok(dec != NULL && strcmp(dec, p->utf8) == 0,
		   "decode \"%s\"", p->mutf7);
		free(enc);
		free(dec);
	}
}

static void test_bad_mutf7(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_mutf7); i++) {
		char *dec = mutf7_to_utf8(bad_mutf7[i].in,
					  strlen(bad_mutf7[i].in));
		ok(dec == NULL, "mUTF-7 refused: %s", bad_mutf7[i].why);
		free(dec);
	}
}

static void test_bad_utf8(void)
{
	for (size_t i = 0; i < N_ELEMENTS(bad_utf8); i++) {
		char *enc = utf8_to_mutf7(bad_utf8[i].in,
					  strlen(bad_utf8[i].in));
		ok(enc == NULL, "UTF-8 refused: %s", bad_utf8[i].why);
		free(enc);
	}
}

/* NUL can only be tested with explicit lengths. */
static void test_nul(void)
{
	char *s;

	s = mutf7_to_utf8("ab\0cd", 5);
	ok(s == NULL, "mUTF-7 refused: embedded NUL");
	free(s);
	s = utf8_to_mutf7("ab\0cd", 5);
	ok(s == NULL, "UTF-8 refused: embedded NUL");
	free(s);
	s = utf8_to_mutf7("\0", 1);
	ok(s == NULL, "UTF-8 refused: lone NUL");
	free(s);
	/* the length, not a NUL, ends the input */
	s = mutf7_to_utf8("&U,BTFw-XYZ", 8);
	ok(s != NULL && strcmp(s, "台北") == 0, "decode honours len");
	free(s);
}

/* A tiny deterministic generator, so failures are reproducible. */
static uint32_t rng_state = 0x2545f491;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/* A random scalar value (not NUL, not a surrogate), biased toward the
   interesting boundaries: ASCII, "&", "-", controls, BMP, astral. */
static uint32_t random_scalar(void)
{
	uint32_t c;

	switch (rng() % 6) {
	case 0:
		return 0x20 + rng() % 0x5f;
	case 1:
		return rng() % 2 ? '&' : '-';
	case 2:
		return 1 + rng() % 0x7f;
	case 3:
		c = 0x80 + rng() % (0xd800 - 0x80);
		return c;
	case 4:
		return 0xe000 + rng() % 0x2000;
	default:
		return 0x10000 + rng() % 0x100000;
	}
}

static size_t put_utf8(char *s, uint32_t c)
{
	if (c < 0x80) {
		s[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		s[0] = (char)(0xc0 | (c >> 6));
		s[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		s[0] = (char)(0xe0 | (c >> 12));
		s[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		s[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	s[0] = (char)(0xf0 | (c >> 18));
	s[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	s[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	s[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* Round trips in both directions over random valid strings. */
static void test_random_round_trips(void)
{
	unsigned int failures = 0, rounds = 2000;
	char text[16 * 4 + 1];

	for (unsigned int r = 0; r < rounds; r++) {
		size_t len = 0, nchars = rng() % 16;

		for (size_t i = 0; i < nchars; i++)
			len += put_utf8(text + len, random_scalar());
		text[len] = '\0';

		char *enc = utf8_to_mutf7(text, len);
		char *dec = enc == NULL ? NULL : mutf7_to_utf8(enc, strlen(enc));
		char *enc2 = dec == NULL ? NULL : utf8_to_mutf7(dec, strlen(dec));

		if (dec == NULL || strcmp(dec, text) != 0 ||
		    enc2 == NULL || strcmp(enc2, enc) != 0) {
			if (failures++ < 5)
				diag("round trip failed for mUTF-7 \"%s\"",
				     enc != NULL ? enc : "(null)");
		}
		free(enc);
		free(dec);
		free(enc2);
	}
	ok(failures == 0, "%u random strings round trip both ways", rounds);
}

int main(void)
{
	test_pairs();
	test_bad_mutf7();
	test_bad_utf8();
	test_nul();
	test_random_round_trips();
	return tap_done();
}
