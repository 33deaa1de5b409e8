/* net.h - TCP connections with deadlines, and the TLS policy.
 *
 * net.c is the only file that includes OpenSSL.  Every wait is bounded by
 * a timeout of silence; TLS certificates and host names are verified
 * unless the caller explicitly turns verification off.
 */
#ifndef NET_H
#define NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum net_status {
	NET_OK = 0,
	NET_ERR_RESOLVE,     /* name lookup failed */
	NET_ERR_CONNECT,     /* refused, unreachable */
	NET_ERR_TIMEOUT,     /* the peer stayed silent past the deadline */
	NET_ERR_EOF,         /* the peer closed the connection */
	NET_ERR_IO,          /* reset, other socket error */
	NET_ERR_TLS,         /* handshake failed, certificate refused */
	NET_ERR_INTERRUPTED, /* the stop flag was set by a signal */
};

/* How a connection is secured: STARTTLS on the plain port, TLS from the
   first byte, or not at all.  The INI key security names them (task.c). */
enum security { SECURITY_STARTTLS, SECURITY_TLS, SECURITY_NONE };

#include <signal.h>
/* A flag set by a signal handler: any wait returns NET_ERR_INTERRUPTED
   once it is set, so SIGTERM never waits for a silent server. */
void net_set_stop_flag(volatile sig_atomic_t *flag);

struct net_tls_opts {
	const char *ca_file;  /* NULL: the system store */
	bool verify;          /* false only on explicit tls_verify = no */
};

struct net_conn;

/* Connect to host:port; timeout_ms bounds the whole connect phase. */
enum net_status net_connect(const char *host, uint16_t port, int timeout_ms,
			    struct net_conn **conn_r, char *err, size_t errlen);
/* Connect to a local stream socket (LMTP on a unix socket). */
enum net_status net_connect_unix(const char *path, int timeout_ms,
				 struct net_conn **conn_r, char *err, size_t errlen);
/* Run a TLS handshake on the connection (implicit TLS or after
   STARTTLS).  Verifies the chain and the host name given at connect. */
enum net_status net_start_tls(struct net_conn *conn,
			      const struct net_tls_opts *opts, int timeout_ms,
			      char *err, size_t errlen);
bool net_is_tls(const struct net_conn *conn);

/* Read up to len bytes (at least 1).  Returns bytes read, or -1 with
   *status_r set (NET_ERR_EOF on orderly close). */
ssize_t net_read(struct net_conn *conn, void *buf, size_t len, int timeout_ms,
		 enum net_status *status_r);
/* Write everything. */
enum net_status net_write(struct net_conn *conn, const void *buf, size_t len,
			  int timeout_ms);
/* The same, but when conn takes no more for now and watch has data to
   read, return early (NET_OK, *watch_ready_r set), so that the caller
   reads watch and calls again for the rest.  *written_r: the bytes
   written (all of them unless watch_ready).  The rest must be passed
   again unchanged (same address): OpenSSL retries a write with it. */
enum net_status net_write_watching(struct net_conn *conn, const void *buf, size_t len,
				   int timeout_ms, struct net_conn *watch,
				   size_t *written_r, bool *watch_ready_r);
/* Wait until the connection has data to read (NET_OK), at most
   timeout_ms (NET_ERR_TIMEOUT), or until the stop flag is set.  Nothing
   is read. */
enum net_status net_wait_readable(struct net_conn *conn, int timeout_ms);
/* Wait until a or b has data to read (OpenSSL's buffered bytes count),
   at most timeout_ms: 1 for a (also when both have, or poll fails), 2
   for b, 0 when neither in time, -1 once the stop flag is set.  Nothing
   is read. */
int net_wait_either(struct net_conn *a, struct net_conn *b, int timeout_ms);
/* Bytes received and held by OpenSSL, which poll() does not see. */
bool net_pending(const struct net_conn *conn);
/* Does host:port answer a TLS ClientHello with a TLS record, that is,
   does it speak TLS at once (imaps)?  Tried on a connection of its own,
   dropped after the first answer; false when it does not answer within
   timeout_ms, answers anything else, or watch (may be NULL) gets data
   first (the greeting the probe was for arrived after all). */
bool net_probe_tls(const char *host, uint16_t port, int timeout_ms,
		   const struct net_conn *watch);
/* Last error text for status codes returned above. */
const char *net_error(const struct net_conn *conn);
const char *net_peer(const struct net_conn *conn);   /* "host:port" */
/* The connection's socket (non-blocking), for a caller that drives
   several plain connections from one poll() loop (lmtp.c); never for a
   TLS connection, whose bytes only net_read and net_write may touch. */
int net_fd(const struct net_conn *conn);

void net_close(struct net_conn **conn);

#endif
