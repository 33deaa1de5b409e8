/* test_conn_hint.c - the first bytes of a connection, classified
 * (conn_hint.c), alone. */
#include "config.h"

#include <string.h>

#include "conn_hint.h"
#include "tap.h"

#define B(s) (const unsigned char *)(s), sizeof(s) - 1

int main(void)
{
	char show[64];

	ok(conn_hint_tls_record(B("\x16\x03\x03\x00\x7a")), "a handshake record (ServerHello)");
	ok(conn_hint_tls_record(B("\x15\x03\x01\x00\x02")), "an alert record");
	ok(conn_hint_tls_record(B("\x14\x03\x03")) && conn_hint_tls_record(B("\x17\x03\x04")),
	   "change_cipher_spec, application data");
	ok(conn_hint_tls_record(B("\x16\x03")), "two bytes are enough");
	ok(!conn_hint_tls_record(B("\x16")), "one byte is not");
	ok(!conn_hint_tls_record(B("* OK [CAPABILITY IMAP4rev1] ready\r\n")),
	   "an IMAP greeting is no TLS record");
	ok(!conn_hint_tls_record(B("\x18\x03\x03")) && !conn_hint_tls_record(B("\x13\x03\x03")),
	   "content types outside 20-23");
	ok(!conn_hint_tls_record(B("\x16\x02\x00")) && !conn_hint_tls_record(B("\x16\x03\x09")),
	   "a major version other than 3, a minor beyond TLS 1.3");
	ok(!conn_hint_tls_record(B("")), "nothing is no record");

	ok(conn_hint_plain_text(B("* OK ")), "\"* OK \" is plain text");
	ok(conn_hint_plain_text(B("+OK D")), "a POP3 greeting too");
	ok(!conn_hint_plain_text(B("\x16\x03\x03\x00\x7a")), "a TLS record header is not");
	ok(!conn_hint_plain_text(B("* OK\r")), "CR is not (a header has 5 bytes of text)");
	ok(!conn_hint_plain_text(B("")), "nothing is not plain text");

	conn_hint_show(B("* OK "), show, sizeof(show));
	ok(strcmp(show, "* OK ") == 0, "shown: printable kept");
	conn_hint_show(B("\x15\x03\x01\"\\"), show, sizeof(show));
	ok(strcmp(show, "\\x15\\x03\\x01\\x22\\x5c") == 0, "shown: others as \\xHH (%s)", show);
	conn_hint_show(B("\x01\x02\x03\x04"), show, 10);
	ok(strlen(show) < 10 && strcmp(show, "\\x01\\x02") == 0, "shown: cut to the buffer (%s)", show);
	ok(strstr(CONN_HINT_SPEAKS_TLS, "security = tls?") != NULL &&
	   strstr(CONN_HINT_SPEAKS_PLAIN, "security = starttls?") != NULL, "the hints");
	return tap_done();
}
