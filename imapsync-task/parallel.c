/* parallel.c - flows in one thread, driven by one poll() loop (see
 * parallel.h).
 *
 * A flow's stack is an mmap'd region with a guard page below it (pages
 * are only committed as they are touched), switched to with
 * swapcontext().  The loop runs on the caller's stack.  AddressSanitizer
 * and valgrind are told about each switch and each stack, or they would
 * take a switch for a wild stack pointer.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "parallel.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define FLOW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FLOW_ASAN 1
#endif
#endif
#ifdef FLOW_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FLOW_VALGRIND 1
#endif
#endif

/* As a thread's default: the sync code was written for one (64 KiB
   buffers on the stack, OpenSSL's handshake, sanitizer redzones).  Only
   the pages a flow touches cost memory. */
#define FLOW_STACK (8u << 20)

struct flow {
	ucontext_t uc;
	unsigned char *map;     /* guard page + stack */
	size_t map_size;
	bool started, done;
	bool ready;             /* run it: started, or its wait is over */
	/* the wait it is parked in */
	struct pollfd *pfd;
	nfds_t n;
	int64_t deadline;       /* ms, CLOCK_MONOTONIC; INT64_MAX: none */
	int result, err;
	parallel_fn *fn;
	void *ctx;
	unsigned i;
	void *fake_stack;       /* ASan's, while switched out */
	unsigned vg_stack;      /* valgrind's stack id */
};

static struct {
	struct flow *flows;
	unsigned n;
	struct flow *current;   /* NULL: the loop runs, or no parallel_run */
	ucontext_t loop;
	const void *loop_bottom;  /* the loop's stack, for ASan */
	size_t loop_size;
	struct pollfd *all;     /* the loop's poll() set */
	size_t all_cap;
} S;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ASan keeps its own idea of the current stack: each switch is
   announced before (start) and confirmed after (finish).  A flow that
   ends passes no save slot, so its fake stack is freed. */
static void asan_start(void **fake_save, const void *bottom, size_t size)
{
#ifdef FLOW_ASAN
	__sanitizer_start_switch_fiber(fake_save, bottom, size);
#else
	(void)fake_save, (void)bottom, (void)size;
#endif
}

static void asan_finish(void *fake_save, const void **bottom_old, size_t *size_old)
{
#ifdef FLOW_ASAN
	__sanitizer_finish_switch_fiber(fake_save, bottom_old, size_old);
#else
	(void)fake_save, (void)bottom_old, (void)size_old;
#endif
}

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096;
}

static unsigned char *stack_base(const struct flow *f)
{
	return f->map + page_size();
}

static size_t stack_size(const struct flow *f)
{
	return f->map_size - page_size();
}

/* Back in the loop, from the running flow f. */
static void to_loop(struct flow *f)
{
	asan_start(f->done ? NULL : &f->fake_stack, S.loop_bottom, S.loop_size);
	swapcontext(&f->uc, &S.loop);
	asan_finish(f->fake_stack, &S.loop_bottom, &S.loop_size);
}

/* makecontext passes only ints: the flow to run is S.current. */
static void flow_main(void)
{
	struct flow *f = S.current;

	asan_finish(NULL, &S.loop_bottom, &S.loop_size);
	f->fn(f->ctx, f->i);
	f->done = true;
	to_loop(f);
	abort();   /* a done flow is never resumed */
}

static bool flow_setup(struct flow *f)
{
	size_t guard = page_size();

	f->map_size = FLOW_STACK + guard;
	f->map = mmap(NULL, f->map_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		return false;
	}
	/* An overflow faults on the guard page instead of writing into
	   whatever lies below. */
	if (mprotect(f->map, guard, PROT_NONE) != 0 || getcontext(&f->uc) != 0) {
		munmap(f->map, f->map_size);
		f->map = NULL;
		return false;
	}
	f->uc.uc_stack.ss_sp = stack_base(f);
	f->uc.uc_stack.ss_size = stack_size(f);
	f->uc.uc_link = NULL;
	makecontext(&f->uc, flow_main, 0);
#ifdef FLOW_VALGRIND
	f->vg_stack = VALGRIND_STACK_REGISTER(stack_base(f), f->map + f->map_size);
#endif
	return true;
}

static void flow_teardown(struct flow *f)
{
	if (f->map == NULL)
		return;
#ifdef FLOW_VALGRIND
	VALGRIND_STACK_DEREGISTER(f->vg_stack);
#endif
	munmap(f->map, f->map_size);
	f->map = NULL;
}

/* Run f until it waits again or ends. */
static void resume(struct flow *f)
{
	void *fake = NULL;

	f->ready = false;
	S.current = f;
	asan_start(&fake, stack_base(f), stack_size(f));
	swapcontext(&S.loop, &f->uc);
	asan_finish(fake, NULL, NULL);
	S.current = NULL;
}

static bool parked(const struct flow *f)
{
	return f->started && !f->done && !f->ready;
}

/* One poll() over every parked flow's pollfds, then mark ready each
   flow whose fds answered or whose deadline passed.  A failed poll()
   (EINTR: a signal) wakes them all with its error: each wait looks at
   the stop flag and its own deadline. */
static void poll_parked(void)
{
	size_t total = 0;
	int64_t first = INT64_MAX;

	for (unsigned i = 0; i < S.n; i++) {
		const struct flow *f = &S.flows[i];
		if (!parked(f))
			continue;
		total += f->n;
		if (f->deadline < first)
			first = f->deadline;
	}
	if (total > S.all_cap) {
		S.all_cap = total;
		S.all = xrealloc(S.all, total * sizeof(*S.all));
	}
	total = 0;
	for (unsigned i = 0; i < S.n; i++) {
		const struct flow *f = &S.flows[i];
		if (!parked(f))
			continue;
		for (nfds_t k = 0; k < f->n; k++)
			S.all[total++] = f->pfd[k];
	}
	int64_t left = first == INT64_MAX ? -1 : first - now_ms();
	int r = poll(S.all, total, left < 0 && first != INT64_MAX ? 0 :
		     left > INT32_MAX ? INT32_MAX : (int)left);
	int err = errno;
	int64_t now = now_ms();
	total = 0;
	for (unsigned i = 0; i < S.n; i++) {
		struct flow *f = &S.flows[i];
		if (!parked(f))
			continue;
		int answered = 0;
		for (nfds_t k = 0; k < f->n; k++) {
			f->pfd[k].revents = r > 0 ? S.all[total].revents : 0;
			answered += f->pfd[k].revents != 0;
			total++;
		}
		if (r < 0) {
			f->result = -1;
			f->err = err;
			f->ready = true;
		} else if (answered > 0 || now >= f->deadline) {
			f->result = answered;
			f->err = 0;
			f->ready = true;
		}
	}
}

/* The loop: run every ready flow, then wait for the parked ones, until
   none is left. */
static void run_loop(void)
{
	for (;;) {
		bool any = false;
		for (unsigned i = 0; i < S.n; i++) {
			struct flow *f = &S.flows[i];
			if (f->started && !f->done && f->ready)
				resume(f);
			any = any || (f->started && !f->done);
		}
		if (!any)
			return;
		poll_parked();
	}
}

void parallel_run(unsigned n, parallel_fn *fn, void *ctx)
{
	unsigned started = 0;

	if (n > PARALLEL_MAX)
		n = PARALLEL_MAX;
	if (n <= 1 || S.flows != NULL) {
		fn(ctx, 0);
		return;
	}
	S.flows = xcalloc(n, sizeof(*S.flows));
	S.n = n;
	for (unsigned i = 0; i < n; i++) {
		struct flow *f = &S.flows[i];
		*f = (struct flow){ .fn = fn, .ctx = ctx, .i = i };
		f->started = f->ready = flow_setup(f);
		started += f->started;
	}
	if (started > 0)
		run_loop();
	for (unsigned i = 0; i < n; i++)
		flow_teardown(&S.flows[i]);
	free(S.flows);
	free(S.all);
	S.flows = NULL;
	S.n = 0;
	S.all = NULL;
	S.all_cap = 0;
	if (started == 0)
		fn(ctx, 0);
}

int parallel_poll(struct pollfd *pfd, nfds_t n, int ms)
{
	struct flow *f = S.current;

	if (f == NULL)
		return poll(pfd, n, ms);
	f->pfd = pfd;
	f->n = n;
	f->deadline = ms < 0 ? INT64_MAX : now_ms() + ms;
	to_loop(f);
	errno = f->err;
	return f->result;
}

void parallel_nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (S.current != NULL)
		(void)parallel_poll(NULL, 0, (int)ms);
	else
		nanosleep(&ts, NULL);
}

unsigned parallel_worker(void)
{
	return S.current != NULL ? S.current->i : 0;
}
