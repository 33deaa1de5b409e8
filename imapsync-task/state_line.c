/* state_line.c - the text of one state line (see state_line.h). */
#include "config.h"

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

bool sline_parse(char *line, bool legacy, struct sline *l)
{
	char name[4096], flags[4096];
	unsigned ruv, ruid, luv, luid, luidnext;
	unsigned long long size, hash, chash = 0, clen = 0;
	int n;

	memset(l, 0, sizeof(*l));
	if (!legacy && !take_check(line))
		return false;
	if (!legacy && line[0] == 'R') {
		unsigned long long modseq;
		if (sscanf(line, "R %4095s %u %u %u %llu%n", name, &ruv, &luv, &luid, &modseq,
			   &n) != 5 || line[n] != '\0' || !sline_get_name(name, &l->mbox))
			return false;
		l->letter = 'R';
		l->ruv = ruv;
		l->luv = luv;
		l->maxuid = luid;
		l->modseq = modseq;
		return true;
	}
	if (legacy) {
		if (sscanf(line, "%c %4095s %u %u %llu %llx %u %u %u%n", &l->letter, name, &ruv,
			   &ruid, &size, &hash, &luv, &luid, &luidnext, &n) != 9 || line[n] != '\0')
			return false;
	} else if (sscanf(line, "%c %4095s %u %u %llu %llx %u %u %u %llx %llu %4095s%n",
			  &l->letter, name, &ruv, &ruid, &size, &hash, &luv, &luid, &luidnext,
			  &chash, &clen, flags, &n) != 12 || line[n] != '\0' ||
		   !parse_flags(flags, &l->flags)) {
		return false;
	}
	if (l->letter == '\0' || strchr("IDSXKfFAB", l->letter) == NULL ||
	    !sline_get_name(name, &l->mbox)) {
		sline_free(l);
		return false;
	}
	l->ruv = ruv;
	l->ruid = ruid;
	l->size = size;
	l->hash = hash;
	l->luv = luv;
	l->luid = luid;
	l->luidnext = luidnext;
	l->chash = chash;
	l->clen = clen;
	return true;
}
