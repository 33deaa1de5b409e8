/* mutf7.c - modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8, strict.
 *
 * Both directions accept only the one canonical form, so that
 * decode(encode(x)) == x and encode(decode(y)) == y hold for every
 * input either function accepts.  A mailbox name that two spellings
 * could reach would let two server folders map onto one local name
 * (or the other way round); refusing the second spelling is simpler
 * than reasoning about which one wins.
 *
 * Rules, as in Dovecot's imap_utf7_to_utf8():
 *  - printable US-ASCII (0x20-0x7e) other than "&" stands for itself and
 *    must never be base64-encoded; "&" is written "&-";
 *  - every other character (controls, 0x7f, non-ASCII) is UTF-16BE in
 *    modified base64 between "&" and "-", with the fewest characters and
 *    zero padding bits;
 *  - a shift sequence never directly follows another one: they would
 *    have been a single sequence;
 *  - NUL is invalid in either form.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>

#include "mutf7.h"
#include "util.h"

/* RFC 3501: base64 with "," in place of "/" and no "=" padding. */
static const char mb64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

#define UTF16_HIGH_FIRST 0xd800
#define UTF16_HIGH_LAST  0xdbff
#define UTF16_LOW_FIRST  0xdc00
#define UTF16_LOW_LAST   0xdfff

/* Printable US-ASCII: must appear literally in mUTF-7, never encoded. */
static bool is_printable_ascii(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Value of a modified-base64 character, or -1. */
static int mb64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static void utf8_put(struct buf *out, uint32_t cp)
{
	unsigned char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (unsigned char)(0xc0 | (cp >> 6));
		s[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (unsigned char)(0xe0 | (cp >> 12));
		s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (unsigned char)(0xf0 | (cp >> 18));
		s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, s, n);
}

/* --- mUTF-7 -> UTF-8 ------------------------------------------------ */

/* Take one decoded UTF-16 unit.  *high holds a pending high surrogate
   (0 if none) between calls. */
static bool utf16_unit_to_utf8(uint32_t unit, uint32_t *high,
			       struct buf *out)
{
	if (*high != 0) {
		if (unit < UTF16_LOW_FIRST || unit > UTF16_LOW_LAST)
			return false;
		utf8_put(out, 0x10000 + ((*high - UTF16_HIGH_FIRST) << 10) +
			 (unit - UTF16_LOW_FIRST));
		*high = 0;
		return true;
	}
	if (unit >= UTF16_HIGH_FIRST && unit <= UTF16_HIGH_LAST) {
		*high = unit;
		return true;
	}
	if (unit >= UTF16_LOW_FIRST && unit <= UTF16_LOW_LAST)
		return false;	/* low surrogate without a high one */
	if (unit == 0)
		return false;	/* NUL: no C string can carry it */
	if (is_printable_ascii(unit))
		return false;	/* must have been written literally */
	utf8_put(out, unit);
	return true;
}

/* Decode the base64 part of a shift sequence: in[*pos] is the first
   character after "&".  On success *pos points past the closing "-". */
static bool mutf7_decode_shift(const unsigned char *in, size_t len,
			       size_t *pos, struct buf *out)
{
	uint32_t bits = 0, high = 0;
	unsigned int nbits = 0, units = 0;
	size_t i = *pos;
	int v;

	for (;; i++) {
		if (i == len)
			return false;	/* unterminated */
		if (in[i] == '-')
			break;
		if ((v = mb64_value(in[i])) < 0)
			return false;
		/* bits < 2^nbits, nbits < 16: at most 22 bits here */
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 16) {
			nbits -= 16;
			if (!utf16_unit_to_utf8(bits >> nbits, &high, out))
				return false;
			bits &= (1U << nbits) - 1;
			units++;
		}
	}
	/* The shortest encoding leaves 0, 2 or 4 bits over, all zero; six
	   or more mean a superfluous character. */
	if (nbits >= 6 || bits != 0)
		return false;
	if (high != 0 || units == 0)
		return false;
	*pos = i + 1;
	return true;
}

char *mutf7_to_utf8(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	struct buf out = { NULL, 0, 0 };
	bool after_shift = false;
	size_t i = 0;

	while (i < len) {
		if (s[i] != '&') {
			/* raw 8-bit, controls and NUL are never literal */
			if (!is_printable_ascii(s[i]))
				goto fail;
			buf_append(&out, &s[i], 1);
			after_shift = false;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			buf_append(&out, "&", 1);
			after_shift = false;
			i++;
			continue;
		}
		/* "&AOQ-&APY-" is "&AOQA9g-" spelled differently */
		if (after_shift)
			goto fail;
		if (!mutf7_decode_shift(s, len, &i, &out))
			goto fail;
		after_shift = true;
	}
	buf_append(&out, "", 1);
	return (char *)out.data;
fail:
	buf_free(&out);
	return NULL;
}

/* --- UTF-8 -> mUTF-7 ------------------------------------------------ */

struct mb64_encoder {
	uint32_t bits;		/* the low nbits bits are pending */
	unsigned int nbits;	/* always < 6 between calls */
	bool open;		/* inside "&...-" */
};

static void mb64_put_unit(struct mb64_encoder *enc, struct buf *out,
			  uint32_t unit)
{
	if (!enc->open) {
		buf_append(out, "&", 1);
		enc->open = true;
	}
	/* bits < 2^5 before the shift: at most 21 bits */
	enc->bits = (enc->bits << 16) | unit;
	enc->nbits += 16;
	while (enc->nbits >= 6) {
		enc->nbits -= 6;
		buf_append(out, &mb64_chars[(enc->bits >> enc->nbits) & 0x3f], 1);
	}
	enc->bits &= (1U << enc->nbits) - 1;
}

static void mb64_close(struct mb64_encoder *enc, struct buf *out)
{
	if (!enc->open)
		return;
	if (enc->nbits > 0) {
		/* pad the last character with zero bits */
		buf_append(out, &mb64_chars[(enc->bits << (6 - enc->nbits)) & 0x3f],
			   1);
	}
	buf_append(out, "-", 1);
	enc->bits = 0;
	enc->nbits = 0;
	enc->open = false;
}

char *utf8_to_mutf7(const char *in, size_t len)
{
	const unsigned char *s = (const unsigned char *)in;
	struct mb64_encoder enc = { 0, 0, false };
	struct buf out = { NULL, 0, 0 };
	uint32_t cp;
	size_t i, n;

	for (i = 0; i < len; i += n) {
		if ((n = utf8_decode(s + i, len - i, &cp)) == 0 || cp == 0)
			goto fail;
		if (is_printable_ascii(cp)) {
			mb64_close(&enc, &out);
			if (cp == '&')
				buf_append(&out, "&-", 2);
			else
				buf_append(&out, &s[i], 1);
		} else if (cp >= 0x10000) {
			cp -= 0x10000;
			mb64_put_unit(&enc, &out, UTF16_HIGH_FIRST + (cp >> 10));
			mb64_put_unit(&enc, &out, UTF16_LOW_FIRST + (cp & 0x3ff));
		} else {
			mb64_put_unit(&enc, &out, cp);
		}
	}
	mb64_close(&enc, &out);
	buf_append(&out, "", 1);
	return (char *)out.data;
fail:
	buf_free(&out);
	return NULL;
}
