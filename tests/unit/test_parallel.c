/* test_parallel.c - flows in one thread, driven by one poll() loop:
 * every worker runs once, on a stack of its own, in the caller's
 * thread; a flow parked in parallel_poll() is woken by its fd, by its
 * deadline or by a signal; a reader stopped mid-message resumes where
 * it was; a deep stack fits; one worker is no flow at all.  Links
 * parallel.c only. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "parallel.h"
#include "tap.h"

#define WORKERS 4
#define STEPS 6

static struct {
	long caller_tid;
	uintptr_t caller_stack;
	unsigned runs[WORKERS];
	unsigned worker_seen[WORKERS];
	bool same_thread[WORKERS];
	uintptr_t stack[WORKERS];
	int running;
	bool overlap;
	unsigned events[WORKERS * STEPS], nevents;
} S;

static long tid(void)
{
	return (long)syscall(SYS_gettid);
}

static void worker(void *ctx, unsigned i)
{
	int here;

	(void)ctx;
	S.runs[i]++;
	S.worker_seen[i] = parallel_worker();
	S.same_thread[i] = tid() == S.caller_tid;
	S.stack[i] = (uintptr_t)&here;
	for (int step = 0; step < STEPS; step++) {
		if (++S.running != 1)
			S.overlap = true;
		S.events[S.nevents++] = i;
		S.running--;
		parallel_nap(5);
	}
}

static uintptr_t distance(uintptr_t a, uintptr_t b)
{
	return a > b ? a - b : b - a;
}

static void test_turns(void)
{
	int here;

	memset(&S, 0, sizeof(S));
	S.caller_tid = tid();
	S.caller_stack = (uintptr_t)&here;
	parallel_run(1, worker, NULL);
	ok(S.runs[0] == 1 && distance(S.stack[0], S.caller_stack) < 65536,
	   "one worker runs directly, on the caller's stack");

	memset(&S, 0, sizeof(S));
	S.caller_tid = tid();
	S.caller_stack = (uintptr_t)&here;
	parallel_run(WORKERS, worker, NULL);
	bool once = true, numbered = true, thread = true, stacks = true;
	for (unsigned i = 0; i < WORKERS; i++) {
		once = once && S.runs[i] == 1;
		numbered = numbered && S.worker_seen[i] == i;
		thread = thread && S.same_thread[i];
		stacks = stacks && distance(S.stack[i], S.caller_stack) > 65536;
		for (unsigned k = 0; k < i; k++)
			stacks = stacks && distance(S.stack[i], S.stack[k]) > 65536;
	}
	ok(once, "every worker ran exactly once");
	ok(numbered && parallel_worker() == 0, "parallel_worker() names the running flow");
	ok(thread, "every flow runs in the caller's thread");
	ok(stacks, "every flow has a stack of its own");
	ok(!S.overlap && S.nevents == WORKERS * STEPS, "never two workers at once (%u steps)",
	   S.nevents);
	unsigned switches = 0;
	for (unsigned k = 1; k < S.nevents; k++)
		switches += S.events[k] != S.events[k - 1];
	ok(switches > WORKERS - 1, "the loop passes to another flow while one waits "
	   "(%u switches)", switches);
}

/* Flow 0 writes a message to each reader's pipe in pieces, in reverse
   order; readers 1..3 wait in parallel_poll() and read what is there,
   a piece at a time, like a literal read across waits. */
#define MSG "a literal of some length, read in pieces across waits"
static int pipes[WORKERS][2];
static struct {
	char got[WORKERS][64];
	size_t len[WORKERS];
	int woke_by_data[WORKERS];
} R;

static void piece_writer(void)
{
	size_t total = strlen(MSG);

	for (size_t off = 0; off < total; off += 7) {
		for (unsigned i = WORKERS - 1; i >= 1; i--) {
			size_t n = total - off < 7 ? total - off : 7;
			if (write(pipes[i][1], MSG + off, n) != (ssize_t)n)
				return;
		}
		parallel_nap(2);
	}
	for (unsigned i = WORKERS - 1; i >= 1; i--)
		close(pipes[i][1]);
}

static void reader(void *ctx, unsigned i)
{
	(void)ctx;
	if (i == 0) {
		piece_writer();
		return;
	}
	for (;;) {
		struct pollfd pfd = { .fd = pipes[i][0], .events = POLLIN };
		int r = parallel_poll(&pfd, 1, 5000);
		if (r != 1)
			return;
		R.woke_by_data[i]++;
		ssize_t n = read(pipes[i][0], R.got[i] + R.len[i], sizeof(R.got[i]) - 1 - R.len[i]);
		if (n <= 0)
			return;
		R.len[i] += (size_t)n;
	}
}

static void test_poll(void)
{
	memset(&R, 0, sizeof(R));
	for (unsigned i = 1; i < WORKERS; i++)
		if (pipe(pipes[i]) != 0) {
			ok(0, "pipe: %s", strerror(errno));
			return;
		}
	parallel_run(WORKERS, reader, NULL);
	bool whole = true, pieces = true;
	for (unsigned i = 1; i < WORKERS; i++) {
		whole = whole && strcmp(R.got[i], MSG) == 0;
		pieces = pieces && R.woke_by_data[i] > 2;
		close(pipes[i][0]);
	}
	ok(whole, "each reader got the whole message, in order");
	ok(pieces, "... woken by its fd once per piece (%d, %d, %d wakes)",
	   R.woke_by_data[1], R.woke_by_data[2], R.woke_by_data[3]);
}

/* Deadlines and signals. */
static volatile sig_atomic_t alarmed;
static struct {
	int timeout_r, signal_r, signal_errno;
} D;

static void on_alarm(int sig)
{
	(void)sig;
	alarmed = 1;
}

static void waiter(void *ctx, unsigned i)
{
	int p[2];

	(void)ctx;
	if (pipe(p) != 0)
		return;
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	if (i == 0) {
		D.timeout_r = parallel_poll(&pfd, 1, 30);
	} else {
		errno = 0;
		D.signal_r = parallel_poll(&pfd, 1, 10000);
		D.signal_errno = errno;
	}
	close(p[0]);
	close(p[1]);
}

static void test_deadline_and_signal(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };   /* no SA_RESTART */
	struct itimerval it = { .it_value = { 0, 200000 } };

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	parallel_run(2, waiter, NULL);
	ok(D.timeout_r == 0, "a wait whose deadline passes returns 0 (%d)", D.timeout_r);
	ok(alarmed && D.signal_r == -1 && D.signal_errno == EINTR,
	   "a signal wakes a parked flow with EINTR (%d, %s)", D.signal_r,
	   strerror(D.signal_errno));
	signal(SIGALRM, SIG_DFL);
}

/* 2 MiB of stack in a flow: the sync code was written for a thread's. */
static unsigned deep(unsigned depth)
{
	volatile char frame[4096];

	frame[0] = (char)depth;
	frame[sizeof(frame) - 1] = (char)depth;
	if (depth == 0)
		return (unsigned char)frame[0];
	return deep(depth - 1) + (unsigned char)frame[sizeof(frame) - 1] % 2;
}

static unsigned deep_result[2];

static void deep_worker(void *ctx, unsigned i)
{
	(void)ctx;
	parallel_nap(1);
	deep_result[i] = deep(512);
}

int main(void)
{
	sigset_t before, after;

	sigprocmask(SIG_BLOCK, NULL, &before);
	test_turns();
	test_poll();
	test_deadline_and_signal();
	parallel_run(2, deep_worker, NULL);
	ok(deep_result[0] == 256 && deep_result[1] == 256,
	   "a flow has room for 2 MiB of stack (%u, %u)", deep_result[0], deep_result[1]);
	sigprocmask(SIG_BLOCK, NULL, &after);
	ok(sigismember(&after, SIGTERM) == sigismember(&before, SIGTERM) &&
	   sigismember(&after, SIGALRM) == sigismember(&before, SIGALRM),
	   "the signal mask is as it was");
	return tap_done();
}
