/* throttle.c - token buckets (see throttle.h).
 *
 * Each bucket holds at most `burst` tokens and refills at `rate` tokens
 * per second.  What arrives is taken from it even when that drives it
 * below zero (a read cannot be undone): the debt is the wait.  Paying
 * the debt at once, right after the data arrived, keeps the long-run
 * rate exact: N bytes take at least (N - burst) / rate seconds.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "throttle.h"
#include "util.h"

#define NS_PER_SEC 1000000000LL
/* The byte bucket holds a tenth of a second's worth (at least 4 KiB):
   small enough that the rate holds over seconds, large enough that a
   fast link is not cut into tiny reads. */
#define BYTE_BURST_DIV 10
#define BYTE_BURST_MIN 4096.0
/* One message may come at once; the next waits its turn. */
#define MSG_BURST 1.0

struct bucket {
	double rate;            /* tokens per second; 0: unlimited */
	double burst;           /* most tokens held */
	double tokens;          /* may be negative: a debt */
};

struct throttle {
	struct bucket bytes, msgs;
	int64_t last_ns;        /* time of the last refill */
	struct throttle_clock clock;
};

static int64_t real_now_ns(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void real_sleep_ns(void *ctx, int64_t ns)
{
	struct timespec ts = { (time_t)(ns / NS_PER_SEC), (long)(ns % NS_PER_SEC) };

	(void)ctx;
	/* A signal (SIGTERM) cuts the sleep short: the caller's loop sees
	   the flag sooner, and the bucket stays in debt for the rest. */
	(void)nanosleep(&ts, NULL);
}

static void bucket_init(struct bucket *b, double rate, double burst)
{
	b->rate = rate;
	b->burst = burst;
	b->tokens = burst;
}

struct throttle *throttle_new(uint64_t bytes_per_sec, double msgs_per_sec,
			      const struct throttle_clock *clock)
{
	struct throttle *t = xcalloc(1, sizeof(*t));
	double bburst = (double)bytes_per_sec / BYTE_BURST_DIV;

	if (bburst < BYTE_BURST_MIN)
		bburst = BYTE_BURST_MIN;
	bucket_init(&t->bytes, (double)bytes_per_sec, bburst);
	bucket_init(&t->msgs, msgs_per_sec > 0 ? msgs_per_sec : 0, MSG_BURST);
	if (clock != NULL) {
		t->clock = *clock;
	} else {
		t->clock.now_ns = real_now_ns;
		t->clock.sleep_ns = real_sleep_ns;
	}
	t->last_ns = t->clock.now_ns(t->clock.ctx);
	return t;
}

void throttle_free(struct throttle **t)
{
	free(*t);
	*t = NULL;
}

static void bucket_refill(struct bucket *b, int64_t elapsed_ns)
{
	if (b->rate <= 0)
		return;
	b->tokens += b->rate * (double)elapsed_ns / NS_PER_SEC;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

/* The wait until the bucket is out of debt. */
static int64_t bucket_debt_ns(const struct bucket *b)
{
	if (b->rate <= 0 || b->tokens >= 0)
		return 0;
	double ns = -b->tokens / b->rate * NS_PER_SEC;
	return ns >= (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)ns + 1;
}

int64_t throttle_take(struct throttle *t, uint64_t bytes, unsigned msgs)
{
	int64_t now = t->clock.now_ns(t->clock.ctx);
	int64_t wb, wm;

	if (now > t->last_ns) {
		bucket_refill(&t->bytes, now - t->last_ns);
		bucket_refill(&t->msgs, now - t->last_ns);
		t->last_ns = now;
	}
	if (t->bytes.rate > 0)
		t->bytes.tokens -= (double)bytes;
	if (t->msgs.rate > 0)
		t->msgs.tokens -= (double)msgs;
	wb = bucket_debt_ns(&t->bytes);
	wm = bucket_debt_ns(&t->msgs);
	return wb > wm ? wb : wm;
}

int64_t throttle_pace(struct throttle *t, uint64_t bytes, unsigned msgs)
{
	int64_t ns = throttle_take(t, bytes, msgs);

	if (ns <= 0)
		return 0;
	int64_t before = t->clock.now_ns(t->clock.ctx);
	t->clock.sleep_ns(t->clock.ctx, ns);
	int64_t slept = t->clock.now_ns(t->clock.ctx) - before;
	return slept > 0 ? slept : 0;
}

size_t throttle_max_read(const struct throttle *t)
{
	if (t->bytes.rate <= 0)
		return SIZE_MAX;
	return (size_t)t->bytes.burst;
}
