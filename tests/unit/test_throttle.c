/* test_throttle.c - the token buckets (throttle.c), alone, on a fake
   clock: sleeping moves the fake time, so nothing here really waits. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "throttle.h"
#include "util.h"

#define NS 1000000000LL

struct fake_clock {
	int64_t now;
	int64_t slept;          /* in all */
	unsigned sleeps;
};

static int64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static void fake_sleep(void *ctx, int64_t ns)
{
	struct fake_clock *f = ctx;

	f->now += ns;
	f->slept += ns;
	f->sleeps++;
}

static struct throttle *fake_throttle(struct fake_clock *f, uint64_t bps, double mps)
{
	struct throttle_clock clock = { fake_now, fake_sleep, f };

	memset(f, 0, sizeof(*f));
	f->now = 1000 * NS;   /* not 0: a clock starts anywhere */
	return throttle_new(bps, mps, &clock);
}

/* Read total bytes in reads of at most the bucket's size (as the client
   does), with the peer infinitely fast: the run takes what the rate
   says. */
static double run_bytes(uint64_t bps, uint64_t total)
{
	struct fake_clock f;
	struct throttle *t = fake_throttle(&f, bps, 0);
	int64_t start = f.now;
	size_t max = throttle_max_read(t);

	for (uint64_t got = 0; got < total;) {
		uint64_t n = total - got < max ? total - got : max;
		throttle_pace(t, n, 0);
		got += n;
	}
	throttle_free(&t);
	ok(t == NULL, "throttle_free clears the pointer");
	return (double)(f.now - start) / NS;
}

static void test_bytes(void)
{
	static const struct { uint64_t bps, total; } cases[] = {
		{ 200000, 1500000 }, { 1024, 100000 }, { 10 * 1024 * 1024, 500 * 1024 * 1024ULL },
		{ 500000, 3000000 },
	};

	for (size_t i = 0; i < N_ELEMENTS(cases); i++) {
		double want = (double)cases[i].total / (double)cases[i].bps;
		double took = run_bytes(cases[i].bps, cases[i].total);
		ok(took >= 0.95 * want && took <= want * 1.001,
		   "%llu bytes at %llu B/s take %.3f s (rate: %.3f s)",
		   (unsigned long long)cases[i].total, (unsigned long long)cases[i].bps,
		   took, want);
	}
}

static void test_burst_and_idle(void)
{
	struct fake_clock f;
	struct throttle *t = fake_throttle(&f, 100000, 0);

	/* The bucket starts full: its first tenth of a second is free. */
	ok(throttle_max_read(t) == 10000, "burst: a tenth of a second (%zu)", throttle_max_read(t));
	ok(throttle_take(t, 10000, 0) == 0, "a full bucket: no wait");
	int64_t w = throttle_take(t, 50000, 0);
	ok(w >= NS / 2 && w <= NS / 2 + 1000, "50000 bytes over: 0.5 s (%lld ns)", (long long)w);
	/* Idle time refills, but no more than the burst. */
	f.now += 100 * NS;
	ok(throttle_take(t, 0, 0) == 0, "idle: the debt is paid");
	ok(throttle_take(t, 10000, 0) == 0, "idle: a full bucket again");
	w = throttle_take(t, 1000, 0);
	ok(w > 0 && w <= NS / 100 + 1000, "idle: not more than the burst (%lld ns)", (long long)w);
	throttle_free(&t);

	/* The burst is at least 4 KiB. */
	t = fake_throttle(&f, 1024, 0);
	ok(throttle_max_read(t) == 4096, "slow rate: 4 KiB reads (%zu)", throttle_max_read(t));
	throttle_free(&t);
}

static void test_messages(void)
{
	struct fake_clock f;
	struct throttle *t = fake_throttle(&f, 0, 0.5);
	int64_t start = f.now;

	ok(throttle_max_read(t) == SIZE_MAX, "bytes unlimited: reads unlimited");
	/* 0.5 messages/s: the first now, then one every 2 s. */
	for (int i = 0; i < 10; i++)
		throttle_pace(t, 1000000, 1);
	ok(f.now - start == 18 * NS || (f.now - start >= 18 * NS && f.now - start < 18 * NS + 100),
	   "10 messages at 0.5/s: 18 s (%.3f)", (double)(f.now - start) / NS);
	ok(f.sleeps == 9, "one sleep per message after the first (%u)", f.sleeps);
	throttle_free(&t);

	t = fake_throttle(&f, 0, 20);
	start = f.now;
	for (int i = 0; i < 101; i++)
		throttle_pace(t, 0, 1);
	ok(f.now - start >= 5 * NS && f.now - start < 5 * NS + 1000,
	   "101 messages at 20/s: 5 s (%.6f)", (double)(f.now - start) / NS);
	throttle_free(&t);
}

static void test_both_and_none(void)
{
	struct fake_clock f;
	struct throttle *t = fake_throttle(&f, 0, 0);

	for (int i = 0; i < 1000; i++)
		throttle_pace(t, 1 << 20, 1);
	ok(f.sleeps == 0 && f.slept == 0, "unlimited: never sleeps");
	throttle_free(&t);

	/* The stricter of the two rates decides. */
	t = fake_throttle(&f, 1000000, 1);
	int64_t start = f.now;
	for (int i = 0; i < 5; i++)
		throttle_pace(t, 1000, 1);          /* messages are the limit */
	ok(f.now - start >= 4 * NS && f.now - start < 4 * NS + 1000,
	   "small messages: the message rate decides (%.3f s)", (double)(f.now - start) / NS);
	throttle_free(&t);
	t = fake_throttle(&f, 100000, 10);
	start = f.now;
	for (int i = 0; i < 5; i++)
		throttle_pace(t, 100000, 1);        /* bytes are the limit */
	ok(f.now - start >= (int64_t)(4.9 * NS) && f.now - start <= 5 * NS,
	   "big messages: the byte rate decides (%.3f s)", (double)(f.now - start) / NS);
	throttle_free(&t);

	/* A clock that goes back (it should not) does not refill. */
	t = fake_throttle(&f, 10000, 0);
	(void)throttle_take(t, 10000, 0);
	f.now -= 10 * NS;
	ok(throttle_take(t, 1000, 0) > 0, "a clock going back refills nothing");
	throttle_free(&t);
}

static void test_real_clock(void)
{
	/* The real clock: 1000 bytes at 1 MB/s is within the burst. */
	struct throttle *t = throttle_new(1000000, 0, NULL);

	ok(throttle_pace(t, 1000, 0) == 0, "real clock: within the burst, no sleep");
	throttle_free(&t);
}

int main(void)
{
	test_bytes();
	test_burst_and_idle();
	test_messages();
	test_both_and_none();
	test_real_clock();
	return tap_done();
}
