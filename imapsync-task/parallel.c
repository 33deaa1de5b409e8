/* parallel.c - threads that take turns under one lock (see parallel.h). */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "net.h"
#include "parallel.h"
#include "util.h"

static pthread_mutex_t turn = PTHREAD_MUTEX_INITIALIZER;
static bool turns;   /* inside parallel_run: the turn is held */

static void turn_give(void)
{
	pthread_mutex_unlock(&turn);
}

static void turn_take(void)
{
	pthread_mutex_lock(&turn);
}

struct worker {
	pthread_t thread;
	bool started;
	parallel_fn *fn;
	void *ctx;
	unsigned i;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	turn_take();
	w->fn(w->ctx, w->i);
	turn_give();
	return NULL;
}

void parallel_run(unsigned n, parallel_fn *fn, void *ctx)
{
	struct worker *w;
	sigset_t all, old;

	if (n <= 1) {
		fn(ctx, 0);
		return;
	}
	w = xcalloc(n, sizeof(*w));
	turn_take();
	turns = true;
	net_set_wait_hooks(turn_give, turn_take);
	/* Threads inherit the blocked set: SIGTERM reaches this thread,
	   whose handler sets the stop flag every wait looks at. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 1; i < n; i++) {
		w[i] = (struct worker){ .fn = fn, .ctx = ctx, .i = i };
		w[i].started = pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	fn(ctx, 0);
	turn_give();
	for (unsigned i = 1; i < n; i++)
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
	net_set_wait_hooks(NULL, NULL);
	turns = false;
	free(w);
}

void parallel_nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (turns)
		turn_give();
	nanosleep(&ts, NULL);
	if (turns)
		turn_take();
}
