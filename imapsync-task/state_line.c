/* state_line.c - the text of one state line (see state_line.h). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_line.h"

void sline_put_name(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= 0x20 || c == '%' || c >= 0x7f)
			buf_appendf(b, "%%%02X", c);
		else
			buf_append(b, s, 1);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool sline_get_name(const char *tok, char **name_r)
{
	char *out = xmalloc(strlen(tok) + 1), *o = out;

	for (const char *s = tok; *s != '\0'; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
		if (lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return false;
		}
		*o++ = (char)(hi * 16 + lo);
		s += 2;
	}
	*o = '\0';
	*name_r = out;
	return true;
}

static uint32_t line_check(const char *s, size_t len)
{
	uint32_t h = 0x811c9dc5u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x01000193u;
	}
	return h;
}

void sline_format(struct buf *b, const struct sline *l)
{
	size_t start = b->len;

	buf_appendf(b, "%c ", l->letter);
	sline_put_name(b, l->mbox);
	if (l->letter == 'R') {
		buf_appendf(b, " %u %u %u %llu", l->ruv, l->luv, l->maxuid,
			    (unsigned long long)l->modseq);
	} else {
		buf_appendf(b, " %u %u %llu %016llx %u %u %u %016llx %llu ", l->ruv, l->ruid,
			    (unsigned long long)l->size, (unsigned long long)l->hash,
			    l->luv, l->luid, l->luidnext, (unsigned long long)l->chash,
			    (unsigned long long)l->clen);
		if (l->flags == NULL || l->flags[0] == '\0')
			buf_append(b, l->flags == NULL ? "-" : "%", 1);
		else
			sline_put_name(b, l->flags);
	}
	buf_appendf(b, " #%08x\n", line_check((const char *)b->data + start, b->len - start));
}

void sline_free(struct sline *l)
{
	free(l->mbox);
	free(l->flags);
	l->mbox = l->flags = NULL;
}

/* Strip and check " #CRC" at the end of a version 2 line. */
static bool take_check(char *line)
{
	char *sum = strrchr(line, '#');
	unsigned check;
	int n;

	if (sum == NULL || sum == line || sum[-1] != ' ' ||
	    sscanf(sum, "#%8x%n", &check, &n) != 1 || n != 9 || sum[n] != '\0' ||
	    check != line_check(line, (size_t)(sum - 1 - line)))
		return false;
	sum[-1] = '\0';
	return true;
}

static bool parse_flags(const char *tok, char **flags_r)
{
	*flags_r = NULL;
	if (strcmp(tok, "-") == 0)
		return true;
	if (strcmp(tok, "%") == 0) {
		*flags_r = xstrdup("");
		return true;
	}
	return sline_get_name(tok, flags_r);
}

/* Split line in place at single spaces: at most max tokens.  Returns
   their number, or -1 when there are more, or an empty one. */
static int split(char *line, char **tok, int max)
{
	int n = 0;

	for (char *p = line;;) {
		if (n == max || *p == '\0' || *p == ' ')
			return -1;
		tok[n++] = p;
		p += strcspn(p, " ");
		if (*p == '\0')
			return n;
		*p++ = '\0';
	}
}

/* A whole token as a number of at most max: decimal, or hex. */
static bool number(const char *tok, bool hex, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;

	if (*tok == '\0' || strlen(tok) > (hex ? 16 : 20))
		return false;
	for (const char *p = tok; *p != '\0'; p++) {
		int d = hex ? hexval(*p) : (*p >= '0' && *p <= '9' ? *p - '0' : -1);
		if (d < 0 || (!hex && v > (UINT64_MAX - (uint64_t)d) / 10))
			return false;
		v = hex ? v << 4 | (uint64_t)d : v * 10 + (uint64_t)d;
	}
	*v_r = v;
	return v <= max;
}

static bool u32(const char *tok, uint32_t *v_r)
{
	uint64_t v;

	if (!number(tok, false, UINT32_MAX, &v))
		return false;
	*v_r = (uint32_t)v;
	return true;
}

/* No field has a fixed length: a folder name of any length that
   sline_format() wrote is read back. */
bool sline_parse(char *line, bool legacy, struct sline *l)
{
	char *tok[13];
	int n;

	memset(l, 0, sizeof(*l));
	if (!legacy && !take_check(line))
		return false;
	n = split(line, tok, 13);
	if (n < 2 || strlen(tok[0]) != 1)
		return false;
	l->letter = tok[0][0];
	if (!legacy && l->letter == 'R') {
		if (n != 6 || !u32(tok[2], &l->ruv) || !u32(tok[3], &l->luv) ||
		    !u32(tok[4], &l->maxuid) || !number(tok[5], false, UINT64_MAX, &l->modseq) ||
		    !sline_get_name(tok[1], &l->mbox))
			return false;
		return true;
	}
	if (n != (legacy ? 9 : 12) || strchr("IDSXKfFAB", l->letter) == NULL ||
	    !u32(tok[2], &l->ruv) || !u32(tok[3], &l->ruid) ||
	    !number(tok[4], false, UINT64_MAX, &l->size) ||
	    !number(tok[5], true, UINT64_MAX, &l->hash) || !u32(tok[6], &l->luv) ||
	    !u32(tok[7], &l->luid) || !u32(tok[8], &l->luidnext))
		return false;
	if (!legacy && (!number(tok[9], true, UINT64_MAX, &l->chash) ||
			!number(tok[10], false, UINT64_MAX, &l->clen) ||
			!parse_flags(tok[11], &l->flags)))
		return false;
	if (!sline_get_name(tok[1], &l->mbox)) {
		sline_free(l);
		return false;
	}
	return true;
}
