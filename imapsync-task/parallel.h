/* parallel.h - work done side by side in one thread: a flow per
 * connection pair (folders = all with max_connections > 1), driven by
 * one poll() loop.
 *
 * A flow is plain sequential code with a stack of its own.  It runs
 * until it waits for the network: net.c's every wait calls
 * parallel_poll(), which parks the flow with its pollfds and deadline
 * and goes back to the loop in parallel_run().  The loop makes one
 * poll() over the pollfds of all parked flows and resumes each flow
 * whose wait is over, where it stopped (in the middle of a literal, a
 * batch, a handshake).  One thread, nothing at the same time: the
 * journal, the counters and the logs need no lock, and a flow is never
 * switched out anywhere but inside a wait.
 */
#ifndef PARALLEL_H
#define PARALLEL_H

#include <poll.h>

/* The most flows of one parallel_run (max_connections' upper bound). */
#define PARALLEL_MAX 8

typedef void parallel_fn(void *ctx, unsigned worker);

/* Run fn(ctx, i), 0 <= i < n, each as a flow, until all are done.  A
   flow that cannot be set up (no memory for its stack) is left out: the
   others take its share (fn must not rely on every worker running).
   n <= 1 runs fn(ctx, 0) directly, with no flow. */
void parallel_run(unsigned n, parallel_fn *fn, void *ctx);

/* poll(), for the network waits: inside a flow the flow is parked and
   the others run until one of its fds is ready or ms pass (ms < 0: no
   deadline); outside, a plain poll().  Same results and errno; EINTR
   when a signal interrupted the loop's poll(). */
int parallel_poll(struct pollfd *pfd, nfds_t n, int ms);

/* Sleep ms, the other flows running meanwhile (a plain sleep outside a
   flow). */
void parallel_nap(long ms);

/* The running flow's worker number; 0 outside parallel_run.  Per-flow
   state (the log's folder, the progress) is kept in arrays of
   PARALLEL_MAX indexed by it. */
unsigned parallel_worker(void);

#endif
