/* net.c - TCP connections with deadlines, and the TLS policy.
 *
 * The only file that includes OpenSSL.  Sockets are non-blocking and
 * every wait goes through poll() with the caller's timeout, so a silent
 * peer can never hang a run.  The TLS policy has no knobs but two: an
 * optional CA file, and an explicit "do not verify".  TLS 1.2 is the
 * minimum, SNI is sent, and the host name is checked by OpenSSL
 * (SSL_set1_host) during the handshake, before any credential is sent.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conn_hint.h"
#include "net.h"
#include "parallel.h"
#include "util.h"

struct net_conn {
	int fd;
	char *host;
	char peer[300];
	SSL_CTX *ctx;
	SSL *ssl;
	X509 *leaf;             /* the peer's certificate, seen while verifying */
	unsigned char first_record[5];  /* the first record header received */
	size_t first_record_len;
	char error[512];
};

static volatile sig_atomic_t *stop_flag;

void net_set_stop_flag(volatile sig_atomic_t *flag)
{
	stop_flag = flag;
}

/* The only place we block on the network (sockets are non-blocking):
   inside a flow of parallel.c the flow is parked, and the others run,
   until its fds answer. */
static int wait_poll(struct pollfd *pfd, nfds_t n, int ms)
{
	return parallel_poll(pfd, n, ms);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to become ready for events, at most until deadline. */
static enum net_status wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - now_ms();
		if (stop_flag != NULL && *stop_flag)
			return NET_ERR_INTERRUPTED;
		if (left <= 0)
			return NET_ERR_TIMEOUT;
		/* Short naps: a signal that lands just before poll() is seen
		   within a second, without ppoll() mask juggling. */
		int r = wait_poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (r > 0)
			return NET_OK;
		if (r < 0 && errno != EINTR)
			return NET_ERR_IO;
	}
}

static void set_socket_options(int fd)
{
	int one = 1;

	/* Commands are written in several pieces; without TCP_NODELAY Nagle
	   and delayed ACKs cost ~40 ms per command on loopback. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A dead peer behind a NAT is noticed even while we wait for it. */
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

static enum net_status connect_one(const struct addrinfo *ai, int64_t deadline,
				   int *fd_r, int *errno_r)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	if (fd < 0) {
		*errno_r = errno;
		return NET_ERR_CONNECT;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		*errno_r = errno;
		close(fd);
		return NET_ERR_CONNECT;
	}
	enum net_status st = wait_fd(fd, POLLOUT, deadline);
	if (st != NET_OK) {
		*errno_r = ETIMEDOUT;
		close(fd);
		return st;
	}
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
		*errno_r = soerr ? soerr : errno;
		close(fd);
		return NET_ERR_CONNECT;
	}
	set_socket_options(fd);
	*fd_r = fd;
	return NET_OK;
}

enum net_status net_connect(const char *host, uint16_t port, int timeout_ms,
			    struct net_conn **conn_r, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	char portstr[8];
	int64_t deadline = now_ms() + timeout_ms;
	enum net_status st = NET_ERR_CONNECT;
	int fd = -1, last_errno = 0;

	snprintf(portstr, sizeof(portstr), "%u", port);
	int r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return NET_ERR_RESOLVE;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		st = connect_one(ai, deadline, &fd, &last_errno);
		if (st == NET_OK || st == NET_ERR_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	if (st != NET_OK) {
		snprintf(err, errlen, "cannot connect to %s:%u: %s", host, port,
			 st == NET_ERR_TIMEOUT ? "connection timed out" :
			 strerror(last_errno));
		return st;
	}
	struct net_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->host = xstrdup(host);
	snprintf(c->peer, sizeof(c->peer), "%s:%u", host, port);
	*conn_r = c;
	return NET_OK;
}

enum net_status net_connect_unix(const char *path, int timeout_ms,
				 struct net_conn **conn_r, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct addrinfo ai = { .ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM,
			       .ai_addr = (struct sockaddr *)&sun, .ai_addrlen = sizeof(sun) };
	int fd = -1, e = 0;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NET_ERR_CONNECT;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	enum net_status st = connect_one(&ai, now_ms() + timeout_ms, &fd, &e);
	if (st != NET_OK) {
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(e));
		return st;
	}
	struct net_conn *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->host = xstrdup(path);
	snprintf(c->peer, sizeof(c->peer), "%s", path);
	*conn_r = c;
	return NET_OK;
}

int net_fd(const struct net_conn *conn)
{
	return conn->fd;
}

bool net_is_tls(const struct net_conn *conn)
{
	return conn->ssl != NULL;
}

const char *net_error(const struct net_conn *conn)
{
	return conn->error;
}

const char *net_peer(const struct net_conn *conn)
{
	return conn->peer;
}

static void openssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "unknown TLS error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static bool host_is_ip(const char *host)
{
	unsigned char tmp[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, tmp) == 1 ||
	       inet_pton(AF_INET6, host, tmp) == 1;
}

static SSL_CTX *make_ctx(const struct net_tls_opts *opts, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char e[256];

	if (ctx == NULL) {
		openssl_error_text(e, sizeof(e));
		snprintf(err, errlen, "TLS setup failed: %s", e);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Writes may be retried with a moved buffer after WANT_WRITE. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* Read what the socket has, up to 64 KiB, not a record's header and
	   then its body: two read() calls per 16 KiB record were a tenth of
	   our CPU on a copy.  Bytes read ahead are invisible to poll():
	   every wait asks net_pending() first. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
	if (opts->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		int ok = opts->ca_file != NULL && *opts->ca_file != '\0'
			? SSL_CTX_load_verify_locations(ctx, opts->ca_file, NULL)
			: SSL_CTX_set_default_verify_paths(ctx);
		if (ok != 1) {
			openssl_error_text(e, sizeof(e));
			snprintf(err, errlen, "cannot load CA certificates%s%s: %s",
				 opts->ca_file ? " from " : "",
				 opts->ca_file ? opts->ca_file : "", e);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/* The names a certificate is valid for (its subjectAltName DNS and IP
   entries) as "DNS:a, IP:1.2.3.4", or "" when it has none. */
static void cert_names(X509 *cert, char *buf, size_t size)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		char one[4 * 64 + 8] = "";

		if (gn->type == GEN_DNS) {
			const unsigned char *d = ASN1_STRING_get0_data(gn->d.dNSName);
			int len = ASN1_STRING_length(gn->d.dNSName);
			char show[4 * 64 + 1];

			/* shown escaped: a certificate is the peer's data */
			conn_hint_show(d, len > 64 ? 64 : (size_t)len, show, sizeof(show));
			snprintf(one, sizeof(one), "DNS:%.*s", (int)sizeof(one) - 5, show);
		} else if (gn->type == GEN_IPADD) {
			const unsigned char *d = ASN1_STRING_get0_data(gn->d.iPAddress);
			int len = ASN1_STRING_length(gn->d.iPAddress);
			char ip[INET6_ADDRSTRLEN] = "?";

			if (len == 4 || len == 16)
				inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
			snprintf(one, sizeof(one), "IP:%s", ip);
		} else {
			continue;
		}
		if (o + strlen(one) + 3 >= size) {
			snprintf(buf + o, size - o, "%s...", o ? ", " : "");
			break;
		}
		o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? ", " : "", one);
	}
	GENERAL_NAMES_free(names);
}

/* Describe why verification failed: expected name, certificate subject
   and the names it is valid for, and OpenSSL's reason (FAULTS rows 3
   and 4).  The certificate is the one the verify callback saw: after a
   failed verification OpenSSL keeps none for the session. */
static void describe_verify_failure(struct net_conn *c, char *err, size_t errlen)
{
	long vr = SSL_get_verify_result(c->ssl);
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	char subject[256], names[512], what[800] = "no certificate";

	if (cert == NULL && c->leaf != NULL && X509_up_ref(c->leaf) == 1)
		cert = c->leaf;
	if (cert != NULL) {
		X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
		cert_names(cert, names, sizeof(names));
		snprintf(what, sizeof(what), "certificate subject %s, %s%s", subject,
			 names[0] != '\0' ? "valid for " : "no subjectAltName", names);
		X509_free(cert);
	}
	bool mismatch = vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH;
	snprintf(err, errlen, "TLS certificate of %s refused: %s (expected name %s, %s)%s",
		 c->peer, X509_verify_cert_error_string(vr), c->host, what,
		 mismatch ? ": set host to a name the certificate is valid for" : "");
}

/* Keep the peer's certificate as verification sees it, for the message
   if verification fails; the verdict itself is OpenSSL's. */
static int verify_keep_leaf(int preverify_ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct net_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);

	if (c != NULL && c->leaf == NULL && leaf != NULL && X509_up_ref(leaf) == 1)
		c->leaf = leaf;
	return preverify_ok;
}

/* Keep the first record header the peer sent: when the handshake fails,
   it tells whether the peer speaks TLS at all. */
static void msg_keep_header(int write_p, int version, int content_type, const void *buf,
			    size_t len, SSL *ssl, void *arg)
{
	struct net_conn *c = arg;

	(void)version;
	(void)ssl;
	if (write_p || content_type != SSL3_RT_HEADER || c->first_record_len != 0 || len == 0)
		return;
	c->first_record_len = len < sizeof(c->first_record) ? len : sizeof(c->first_record);
	memcpy(c->first_record, buf, c->first_record_len);
}

/* Did the handshake fail because the peer went away (EOF, reset) rather
   than because of TLS itself (alert, bad certificate, version)? */
static bool handshake_conn_lost(int ssl_error)
{
	if (ssl_error == SSL_ERROR_SYSCALL)
		return true;    /* a socket error, or EOF (OpenSSL 1.1) */
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
	unsigned long e = ERR_peek_error();
	if (ssl_error == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return true;
#endif
	return false;
}

enum net_status net_start_tls(struct net_conn *c, const struct net_tls_opts *opts,
			      int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + timeout_ms;
	char e[256];

	c->ctx = make_ctx(opts, err, errlen);
	if (c->ctx == NULL)
		return NET_ERR_TLS;
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		openssl_error_text(e, sizeof(e));
		snprintf(err, errlen, "TLS setup failed: %s", e);
		return NET_ERR_TLS;
	}
	/* SNI only for names; RFC 6066 forbids IP literals there. */
	if (!host_is_ip(c->host))
		SSL_set_tlsext_host_name(c->ssl, c->host);
	if (opts->verify && SSL_set1_host(c->ssl, c->host) != 1) {
		snprintf(err, errlen, "TLS setup failed: cannot set host name");
		return NET_ERR_TLS;
	}
	SSL_set_app_data(c->ssl, c);
	if (opts->verify)
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, verify_keep_leaf);
	SSL_set_msg_callback(c->ssl, msg_keep_header);
	SSL_set_msg_callback_arg(c->ssl, c);
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		int se = SSL_get_error(c->ssl, r);
		enum net_status st;
		if (se == SSL_ERROR_WANT_READ)
			st = wait_fd(c->fd, POLLIN, deadline);
		else if (se == SSL_ERROR_WANT_WRITE)
			st = wait_fd(c->fd, POLLOUT, deadline);
		else {
			int saved = errno;
			if (opts->verify && SSL_get_verify_result(c->ssl) != X509_V_OK) {
				describe_verify_failure(c, err, errlen);
			} else if (handshake_conn_lost(se)) {
				/* Reset or closed mid-handshake: the connection
				   was lost, nothing was refused (75, not 76). */
				ERR_clear_error();
				snprintf(err, errlen, "connection to %s lost during the TLS handshake: %s",
					 c->peer, se == SSL_ERROR_SYSCALL && saved != 0
					 ? strerror(saved) : "closed by the peer");
				return se == SSL_ERROR_SYSCALL && saved != 0 ? NET_ERR_IO : NET_ERR_EOF;
			} else if (conn_hint_plain_text(c->first_record, c->first_record_len)) {
				/* "* OK ..." where a ServerHello was expected
				   (OpenSSL: wrong version number) */
				char show[4 * sizeof(c->first_record) + 1];

				ERR_clear_error();
				conn_hint_show(c->first_record, c->first_record_len, show, sizeof(show));
				snprintf(err, errlen, "TLS handshake with %s failed: the server sent "
					 "plain text (\"%s...\") instead of a TLS record; %s",
					 c->peer, show, CONN_HINT_SPEAKS_PLAIN);
			} else {
				openssl_error_text(e, sizeof(e));
				snprintf(err, errlen, "TLS handshake with %s failed: %s",
					 c->peer, e);
			}
			return NET_ERR_TLS;
		}
		if (st != NET_OK) {
			snprintf(err, errlen, "TLS handshake with %s timed out", c->peer);
			return st;
		}
	}
	return NET_OK;
}

ssize_t net_read(struct net_conn *c, void *buf, size_t len, int timeout_ms,
		 enum net_status *status_r)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		short want = POLLIN;
		if (c->ssl != NULL) {
			size_t got = 0;
			int r = SSL_read_ex(c->ssl, buf, len, &got);
			if (r == 1)
				return (ssize_t)got;
			int se = SSL_get_error(c->ssl, r);
			if (se == SSL_ERROR_ZERO_RETURN) {
				*status_r = NET_ERR_EOF;
				snprintf(c->error, sizeof(c->error), "%s closed the connection", c->peer);
				return -1;
			}
			if (se == SSL_ERROR_WANT_WRITE)
				want = POLLOUT;
			else if (se != SSL_ERROR_WANT_READ) {
				char e[256];
				openssl_error_text(e, sizeof(e));
				/* An unclean close is how most servers hang up. */
				*status_r = se == SSL_ERROR_SYSCALL || se == SSL_ERROR_SSL
					? NET_ERR_EOF : NET_ERR_IO;
				snprintf(c->error, sizeof(c->error), "connection to %s lost: %s", c->peer, e);
				return -1;
			}
		} else {
			ssize_t n = read(c->fd, buf, len);
			if (n > 0)
				return n;
			if (n == 0) {
				*status_r = NET_ERR_EOF;
				snprintf(c->error, sizeof(c->error), "%s closed the connection", c->peer);
				return -1;
			}
			if (errno != EAGAIN && errno != EINTR) {
				*status_r = NET_ERR_IO;
				snprintf(c->error, sizeof(c->error), "connection to %s lost: %s",
					 c->peer, strerror(errno));
				return -1;
			}
		}
		enum net_status st = wait_fd(c->fd, want, deadline);
		if (st != NET_OK) {
			*status_r = st;
			if (st == NET_ERR_INTERRUPTED)
				snprintf(c->error, sizeof(c->error), "stopped by a signal");
			else
				snprintf(c->error, sizeof(c->error), "%s sent nothing for %d s",
					 c->peer, timeout_ms / 1000);
			return -1;
		}
	}
}

/* Wait until a is ready for events or b has data (bytes OpenSSL holds
   count, poll() does not see them): 1 for a, 2 for b, 0 at the
   deadline, -1 once the stop flag is set, -2 when poll() fails. */
static int wait_either(struct net_conn *a, short events, struct net_conn *b, int64_t deadline)
{
	struct pollfd pfd[2] = { { .fd = a->fd, .events = events },
				 { .fd = b->fd, .events = POLLIN } };

	for (;;) {
		if (net_pending(b))
			return 2;
		int64_t left = deadline - now_ms();
		if (stop_flag != NULL && *stop_flag)
			return -1;
		if (left <= 0)
			return 0;
		int r = wait_poll(pfd, 2, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			return -2;
		if (r > 0 && pfd[0].revents != 0)
			return 1;
		if (r > 0 && pfd[1].revents != 0)
			return 2;
	}
}

/* Wait until c is ready for want, or watch (if any) has data: 1 for
   c, 2 for watch. */
static enum net_status wait_write(struct net_conn *c, short want, struct net_conn *watch,
				  int64_t deadline, int *which_r)
{
	*which_r = 1;
	if (watch == NULL)
		return wait_fd(c->fd, want, deadline);
	int r = wait_either(c, want, watch, deadline);
	*which_r = r == 2 ? 2 : 1;
	return r > 0 ? NET_OK : r == 0 ? NET_ERR_TIMEOUT :
	       r == -1 ? NET_ERR_INTERRUPTED : NET_ERR_IO;
}

enum net_status net_write(struct net_conn *c, const void *buf, size_t len,
			  int timeout_ms)
{
	size_t written;
	bool watch_ready;

	return net_write_watching(c, buf, len, timeout_ms, NULL, &written, &watch_ready);
}

enum net_status net_write_watching(struct net_conn *c, const void *buf, size_t len,
				   int timeout_ms, struct net_conn *watch,
				   size_t *written_r, bool *watch_ready_r)
{
	const unsigned char *p = buf;
	int64_t deadline = now_ms() + timeout_ms;

	*written_r = 0;
	*watch_ready_r = false;
	while (len > 0) {
		short want = POLLOUT;
		if (c->ssl != NULL) {
			size_t done = 0;
			int r = SSL_write_ex(c->ssl, p, len, &done);
			if (r == 1) {
				p += done;
				len -= done;
				*written_r += done;
				continue;
			}
			int se = SSL_get_error(c->ssl, r);
			if (se == SSL_ERROR_WANT_READ)
				want = POLLIN;
			else if (se != SSL_ERROR_WANT_WRITE) {
				char e[256];
				openssl_error_text(e, sizeof(e));
				snprintf(c->error, sizeof(c->error), "connection to %s lost: %s", c->peer, e);
				return NET_ERR_IO;
			}
		} else {
			ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n > 0) {
				p += n;
				len -= (size_t)n;
				*written_r += (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				snprintf(c->error, sizeof(c->error), "connection to %s lost: %s",
					 c->peer, strerror(errno));
				return errno == EPIPE || errno == ECONNRESET ? NET_ERR_EOF : NET_ERR_IO;
			}
		}
		int which;
		enum net_status st = wait_write(c, want, watch, deadline, &which);
		if (st != NET_OK) {
			if (st == NET_ERR_INTERRUPTED)
				snprintf(c->error, sizeof(c->error), "stopped by a signal");
			else
				snprintf(c->error, sizeof(c->error), "%s accepted no data for %d s",
					 c->peer, timeout_ms / 1000);
			return st;
		}
		if (which == 2) {
			*watch_ready_r = true;
			return NET_OK;
		}
	}
	return NET_OK;
}

void net_close(struct net_conn **connp)
{
	struct net_conn *c = *connp;

	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		/* Best effort; never wait for the peer's close_notify. */
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	X509_free(c->leaf);
	if (c->fd >= 0)
		close(c->fd);
	free(c->host);
	free(c);
	*connp = NULL;
}

enum net_status net_wait_readable(struct net_conn *c, int timeout_ms)
{
	if (net_pending(c))
		return NET_OK;
	return wait_fd(c->fd, POLLIN, now_ms() + timeout_ms);
}

bool net_pending(const struct net_conn *c)
{
	return c->ssl != NULL && SSL_has_pending(c->ssl);
}

int net_wait_either(struct net_conn *a, struct net_conn *b, int timeout_ms)
{
	/* Only a read changes what OpenSSL holds of a: once is enough. */
	if (net_pending(a))
		return 1;
	int r = wait_either(a, POLLIN, b, now_ms() + timeout_ms);
	return r == -2 ? 1 : r;   /* a failed poll(): let a's own read tell */
}

/* Wait until fd has data, at most until deadline; false also when
   watch (if >= 0) gets data first, or the stop flag is set. */
static bool wait_probe(int fd, int watch, int64_t deadline)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
				 { .fd = watch, .events = POLLIN } };

	for (;;) {
		int64_t left = deadline - now_ms();

		if ((stop_flag != NULL && *stop_flag) || left <= 0)
			return false;
		int r = wait_poll(pfd, watch >= 0 ? 2 : 1, left > 1000 ? 1000 : (int)left);
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0 && watch >= 0 && pfd[1].revents != 0)
			return false;
		if (r > 0 && pfd[0].revents != 0)
			return true;
	}
}

bool net_probe_tls(const char *host, uint16_t port, int timeout_ms, const struct net_conn *watch)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct net_conn *c = NULL;
	unsigned char head[5];
	char err[256];
	bool tls = false;

	if (timeout_ms <= 0 || net_connect(host, port, timeout_ms, &c, err, sizeof(err)) != NET_OK)
		return false;
	/* A ClientHello that verifies nothing: nothing but its first answer
	   is ever read, and the connection is dropped right after. */
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	if (ssl != NULL && SSL_set_fd(ssl, c->fd) == 1) {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		if (!host_is_ip(host))
			SSL_set_tlsext_host_name(ssl, host);
		SSL_set_msg_callback(ssl, msg_keep_header);
		SSL_set_msg_callback_arg(ssl, c);
		int r = SSL_connect(ssl);
		/* On loopback a whole TLS 1.3 handshake may be done in this
		   one call; or the answer's first record header was read
		   already (then it decides); or the ClientHello is out and
		   OpenSSL waits for the answer: peek at it. */
		if (r == 1) {
			tls = true;
		} else if (c->first_record_len == 0 &&
			   SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ) {
			if (wait_probe(c->fd, watch != NULL ? watch->fd : -1, deadline)) {
				ssize_t n = recv(c->fd, head, sizeof(head), MSG_PEEK);
				tls = n > 0 && conn_hint_tls_record(head, (size_t)n);
			}
		} else {
			tls = conn_hint_tls_record(c->first_record, c->first_record_len);
		}
	}
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	net_close(&c);
	return tls;
}
