/* conn_hint.c - the first bytes of a connection, classified (see
 * conn_hint.h). */
#include "config.h"

#include <stdio.h>

#include "conn_hint.h"

bool conn_hint_tls_record(const unsigned char *p, size_t n)
{
	/* 20 change_cipher_spec, 21 alert, 22 handshake, 23 data; SSL 3.0
	   to TLS 1.3 all carry major version 3 in the record header. */
	return n >= 2 && p[0] >= 20 && p[0] <= 23 && p[1] == 3 &&
		(n < 3 || p[2] <= 4);
}

bool conn_hint_plain_text(const unsigned char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	}
	return true;
}

void conn_hint_show(const unsigned char *p, size_t n, char *buf, size_t size)
{
	size_t o = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < n && o + 5 <= size; i++) {
		if (p[i] >= 0x20 && p[i] <= 0x7e && p[i] != '\\' && p[i] != '"')
			o += (size_t)snprintf(buf + o, size - o, "%c", p[i]);
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", p[i]);
	}
}
