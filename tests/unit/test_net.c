/* test_net.c - net_write_watching, on unix sockets of this process: a
 * write the peer does not take returns early when the watched
 * connection has data, the rest goes through when called again, and a
 * write nobody takes times out.  The reader runs as a second flow of
 * parallel.c, so both sides are driven by its one poll() loop.  Links
 * net.c and parallel.c. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "parallel.h"
#include "tap.h"

#define BIG (8u << 20)   /* far more than a unix socket buffers */

static char path[108];
static int listener = -1;

static bool listen_here(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(path, sizeof(path), "/tmp/test_net.%ld.sock", (long)getpid());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	listener = socket(AF_UNIX, SOCK_STREAM, 0);
	return listener >= 0 && bind(listener, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	       listen(listener, 4) == 0;
}

/* A connection of ours and the server end of it. */
static bool pair(struct net_conn **c, int *server)
{
	char err[256];

	if (net_connect_unix(path, 2000, c, err, sizeof(err)) != NET_OK) {
		diag("connect: %s", err);
		return false;
	}
	*server = accept(listener, NULL, NULL);
	return *server >= 0;
}

static struct {
	struct net_conn *out, *watch;
	int out_server, watch_server;
	unsigned char *data;
	size_t first_written, total_written, received;
	bool first_ready, later_ready;
	enum net_status first, rest;
	bool same;
	unsigned watch_reads;
} T;

/* Flow 0: write BIG bytes, reading the watched connection whenever it
   has data, as the IMAP client reads the remote while the local server
   is slow to take an APPEND. */
static void writer(void)
{
	const unsigned char *p = T.data;
	size_t left = BIG, done = 0;
	bool ready = false;

	T.first = net_write_watching(T.out, p, left, 5000, T.watch, &done, &ready);
	T.first_written = done;
	T.first_ready = ready;
	while (T.first == NET_OK && left > 0) {
		p += done;
		left -= done;
		T.total_written += done;
		if (ready) {
			char buf[64];
			enum net_status st;
			if (net_read(T.watch, buf, sizeof(buf), 1000, &st) > 0)
				T.watch_reads++;
		}
		if (left == 0)
			break;
		T.rest = net_write_watching(T.out, p, left, 5000, T.watch, &done, &ready);
		if (T.rest != NET_OK)
			break;
		T.later_ready = T.later_ready || ready;
	}
}

/* Flow 1: read the written bytes slowly, sending a line on the watched
   connection now and then. */
static void reader(void)
{
	unsigned char *got = malloc(BIG);
	size_t n = 0;
	unsigned chunks = 0;

	if (got == NULL)
		return;
	/* The writer fills the socket and finds the watch ready first. */
	if (write(T.watch_server, "* 1 FETCH\r\n", 11) != 11)
		return;
	while (n < BIG) {
		struct pollfd pfd = { .fd = T.out_server, .events = POLLIN };
		if (parallel_poll(&pfd, 1, 5000) != 1)
			break;
		ssize_t r = read(T.out_server, got + n, 65536);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (++chunks % 16 == 0 && write(T.watch_server, "* 2 FETCH\r\n", 11) != 11)
			break;
		parallel_nap(1);
	}
	T.received = n;
	T.same = n == BIG && memcmp(got, T.data, BIG) == 0;
	free(got);
}

static void flow(void *ctx, unsigned i)
{
	(void)ctx;
	if (i == 0)
		writer();
	else
		reader();
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!ok(listen_here(), "a unix socket to talk to"))
		return tap_done();
	T.data = malloc(BIG);
	for (size_t i = 0; i < BIG; i++)
		T.data[i] = (unsigned char)(i * 2654435761u >> 13);
	if (!pair(&T.out, &T.out_server) || !pair(&T.watch, &T.watch_server)) {
		ok(0, "connections");
		return tap_done();
	}
	parallel_run(2, flow, NULL);
	ok(T.first == NET_OK && T.first_ready && T.first_written > 0 &&
	   T.first_written < BIG,
	   "a write the peer does not take returns early when the watch has data "
	   "(%zu of %u bytes written)", T.first_written, BIG);
	ok(T.rest == NET_OK && T.total_written == BIG, "called again, the rest goes through "
	   "(%zu bytes)", T.total_written);
	ok(T.same, "the peer got every byte, in order (%zu)", T.received);
	ok(T.watch_reads >= 2 && T.later_ready, "the watched connection was read while "
	   "writing (%u times)", T.watch_reads);

	/* Nobody reads, nothing to watch: the timeout holds. */
	size_t done = 0;
	bool ready = true;
	enum net_status st = net_write_watching(T.out, T.data, BIG, 200, NULL, &done, &ready);
	ok(st == NET_ERR_TIMEOUT && !ready, "a write nobody takes times out (%d, %zu bytes)",
	   (int)st, done);
	net_close(&T.out);
	net_close(&T.watch);
	close(T.out_server);
	close(T.watch_server);
	close(listener);
	unlink(path);
	free(T.data);
	return tap_done();
}
