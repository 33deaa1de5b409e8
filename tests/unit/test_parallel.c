/* test_parallel.c - threads taking turns under one lock: every worker
 * runs once, never two at the same time, the turn passes while one
 * waits (parallel_nap, as in a network wait), the workers block the
 * signals, and one worker is no thread at all.  Links parallel.c and
 * net.c (for the wait hooks). */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "parallel.h"
#include "tap.h"

#define WORKERS 4
#define STEPS 6

static struct {
	pthread_t caller;
	unsigned runs[WORKERS];
	bool other_thread[WORKERS];
	bool sigterm_blocked[WORKERS];
	int running;             /* workers between taking and giving the turn */
	bool overlap;            /* two ran at once */
	unsigned events[WORKERS * STEPS], nevents;
} S;

static void worker(void *ctx, unsigned i)
{
	sigset_t now;

	(void)ctx;
	S.runs[i]++;
	S.other_thread[i] = !pthread_equal(pthread_self(), S.caller);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	S.sigterm_blocked[i] = sigismember(&now, SIGTERM) == 1;
	for (int step = 0; step < STEPS; step++) {
		if (++S.running != 1)
			S.overlap = true;
		S.events[S.nevents++] = i;
		S.running--;
		parallel_nap(5);
	}
}

int main(void)
{
	S.caller = pthread_self();

	parallel_run(1, worker, NULL);
	ok(S.runs[0] == 1 && !S.other_thread[0] && !S.sigterm_blocked[0],
	   "one worker runs in the calling thread, signals unblocked");

	memset(&S, 0, sizeof(S));
	S.caller = pthread_self();
	parallel_run(WORKERS, worker, NULL);
	bool once = true, threads = true, blocked = true;
	for (unsigned i = 0; i < WORKERS; i++) {
		once = once && S.runs[i] == 1;
		if (i > 0) {
			threads = threads && S.other_thread[i];
			blocked = blocked && S.sigterm_blocked[i];
		}
	}
	ok(once, "every worker ran exactly once");
	ok(threads && !S.other_thread[0], "worker 0 in the caller, the others in threads");
	ok(blocked && !S.sigterm_blocked[0], "the threads block SIGTERM; the caller gets it");
	ok(!S.overlap && S.nevents == WORKERS * STEPS, "never two workers at once (%u steps)",
	   S.nevents);
	unsigned switches = 0;
	for (unsigned k = 1; k < S.nevents; k++)
		switches += S.events[k] != S.events[k - 1];
	ok(switches > WORKERS - 1, "the turn passes while a worker waits (%u switches)",
	   switches);
	sigset_t now;
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	ok(sigismember(&now, SIGTERM) == 0, "the caller's signal mask is as it was");
	return tap_done();
}
