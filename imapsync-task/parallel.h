/* parallel.h - work done side by side, one thread per connection pair
 * (folders = all with max_connections > 1).
 *
 * The threads take turns under one lock, held at all times except while
 * a thread waits for the network (net.c's wait hooks).  So the journal,
 * the counters, the logs and the sync code stay single-threaded in
 * effect: no two threads ever run them at once; only the waits for the
 * servers overlap, which is where the time of a copy goes.
 */
#ifndef PARALLEL_H
#define PARALLEL_H

typedef void parallel_fn(void *ctx, unsigned worker);

/* Run fn(ctx, 0) in the calling thread and fn(ctx, i), 1 <= i < n, in
   threads of their own, under the lock; return when all are done.  A
   thread that cannot be started is left out: the others take its share
   (fn must not rely on every worker running).  n <= 1 runs fn(ctx, 0)
   alone, with no thread and no lock.  The threads block the signals:
   the calling thread gets them. */
void parallel_run(unsigned n, parallel_fn *fn, void *ctx);

/* Sleep ms, the other threads taking their turns meanwhile (a plain
   sleep outside parallel_run). */
void parallel_nap(long ms);

#endif
