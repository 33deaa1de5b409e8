/* throttle.h - token buckets that pace what the remote sends us: bytes
 * per second and messages per second (a task's max_bytes_per_second and
 * max_messages_per_second).
 *
 * Pure arithmetic over a clock that the caller may inject: nothing here
 * knows about IMAP or sockets.  The IMAP client counts what it reads
 * and calls throttle_pace(), which sleeps just long enough that over a
 * run the rates are honoured; with a fake clock (test_throttle.c) the
 * "sleep" only moves the fake time.
 */
#ifndef THROTTLE_H
#define THROTTLE_H

#include <stddef.h>
#include <stdint.h>

/* Time in nanoseconds on a monotonic clock, and a sleep on it. */
struct throttle_clock {
	int64_t (*now_ns)(void *ctx);
	void (*sleep_ns)(void *ctx, int64_t ns);
	void *ctx;
};

struct throttle;

/* bytes_per_sec 0 and msgs_per_sec 0: that one is unlimited.  clock
   NULL: CLOCK_MONOTONIC and nanosleep().  Both buckets start full. */
struct throttle *throttle_new(uint64_t bytes_per_sec, double msgs_per_sec,
			      const struct throttle_clock *clock);
void throttle_free(struct throttle **t);

/* Count bytes and msgs that arrived now; returns how long (ns) to wait
   before taking more so as to stay within both rates, 0 if within them.
   Pure: nothing sleeps. */
int64_t throttle_take(struct throttle *t, uint64_t bytes, unsigned msgs);

/* throttle_take(), then sleep that long on the clock.  Returns the time
   slept, in ns. */
int64_t throttle_pace(struct throttle *t, uint64_t bytes, unsigned msgs);

/* The most bytes worth reading at once: a read of more would only be
   paid for with one long sleep after it.  SIZE_MAX when bytes are not
   limited. */
size_t throttle_max_read(const struct throttle *t);

#endif
