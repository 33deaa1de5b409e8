/* fuzz_mutf7.c - libFuzzer target for modified UTF-7.
 *
 * Checks the two round-trip properties promised by mutf7.h:
 *  - if the input decodes as mUTF-7, encoding the result gives back
 *    exactly the input (only canonical forms are accepted);
 *  - if the input encodes as UTF-8, decoding the result gives back
 *    exactly the input, and the encoding is printable ASCII.
 * Any violation abort()s so the fuzzer records the input.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode_round_trip(const char *in, size_t size)
{
	char *dec, *enc;

	if ((dec = mutf7_to_utf8(in, size)) == NULL)
		return;
	/* decoded text never holds NUL, so strlen() is its length */
	if ((enc = utf8_to_mutf7(dec, strlen(dec))) == NULL)
		abort();	/* decoder produced invalid UTF-8 */
	if (strlen(enc) != size || memcmp(enc, in, size) != 0)
		abort();	/* a non-canonical form was accepted */
	free(enc);
	free(dec);
}

static void check_encode_round_trip(const char *in, size_t size)
{
	char *enc, *dec;
	size_t i, enc_len;

	if ((enc = utf8_to_mutf7(in, size)) == NULL)
		return;
	enc_len = strlen(enc);
	for (i = 0; i < enc_len; i++) {
		if (enc[i] < 0x20 || enc[i] > 0x7e)
			abort();	/* mUTF-7 is printable ASCII only */
	}
	if ((dec = mutf7_to_utf8(enc, enc_len)) == NULL)
		abort();	/* encoder produced invalid mUTF-7 */
	if (strlen(dec) != size || memcmp(dec, in, size) != 0)
		abort();
	free(dec);
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode_round_trip((const char *)data, size);
	check_encode_round_trip((const char *)data, size);
	return 0;
}
