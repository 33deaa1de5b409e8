/* conn_hint.h - what the first bytes of a connection say about a
 * security mode that does not fit the port, and the hints for the
 * messages.  Pure: no I/O (net.c and imap_client.c feed it bytes).
 *
 *  - security = starttls or none on a port that speaks TLS at once
 *    (993): the server waits for a ClientHello and says nothing, or
 *    answers plain text with a TLS record (an alert, 0x15 0x03 ...);
 *  - security = tls on a port that speaks plain text (143): where a TLS
 *    record was expected, "* OK ..." arrives (OpenSSL: "wrong version
 *    number").
 */
#ifndef CONN_HINT_H
#define CONN_HINT_H

#include <stdbool.h>
#include <stddef.h>

#define CONN_HINT_SPEAKS_TLS "this port speaks TLS at once: security = tls?"
#define CONN_HINT_SPEAKS_PLAIN "this port speaks plain text: security = starttls?"

/* Do the first n bytes of what a peer sent start like a TLS record: a
   content type 20-23 (change_cipher_spec, alert, handshake,
   application_data) and a protocol major version 3?  At least two bytes
   are needed; with fewer it is false. */
bool conn_hint_tls_record(const unsigned char *p, size_t n);

/* Could a TLS record header (the n <= 5 bytes where one was expected)
   be plain text instead: printable ASCII and spaces only, as in "* OK "
   or "+OK D"?  False for n == 0. */
bool conn_hint_plain_text(const unsigned char *p, size_t n);

/* The bytes, for a message: printable ASCII kept, others as \xHH,
   in buf (at least 4 * n + 1 bytes). */
void conn_hint_show(const unsigned char *p, size_t n, char *buf, size_t size);

#endif
