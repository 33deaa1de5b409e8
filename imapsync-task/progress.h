/* progress.h - how far a run is, for whoever watches it.
 *
 * The sync code calls a handful of functions; this module decides where
 * the news goes:
 *
 *   - systemd: sd_notify("STATUS=...") (shown by "systemctl status" and
 *     "systemctl show -p StatusText"; a no-op without $NOTIFY_SOCKET),
 *     at most PROGRESS_MIN_INTERVAL apart;
 *   - a terminal (stderr a tty, not the journal, no -v): one line,
 *     rewritten in place with \r, at the same rate;
 *   - -v: a log line per step and per batch.
 *
 * The text of an update: "INBOX: 128/1000 messages, 12.3 MB, 1.5 MB/s,
 * ETA 0:09" (folder, messages done/total, bytes delivered, rate, time
 * left), or the step being done ("connecting to remote imap.example.org:993").
 */
#ifndef PROGRESS_H
#define PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_MIN_INTERVAL 0.25   /* seconds between two updates */

/* Start of a run.  verbosity: -v count; tty: stderr is a terminal
   (not the journal). */
void progress_init(int verbosity, bool tty);

/* A step of the run (connect, login, select, deletion, ...): a debug log
   line (-v) and the status text. */
void progress_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The copy of a folder starts: total messages to go through. */
void progress_begin_folder(const char *folder, uint64_t total);
/* A batch is through: msgs more handled (those progress_arrived did
   not count), bytes more; at -v a log line says how far. */
void progress_add(uint64_t msgs, uint64_t bytes);
/* One message more, as it arrives: the status only (no -v line). */
void progress_arrived(uint64_t bytes);
/* The folder's copy is over (also after an error). */
void progress_end(void);
/* Called often (as data flows): sends an update held back by the rate
   limit once its time has come. */
void progress_tick(void);
/* The run is over: the last status text, sent whatever the rate; the
   terminal line is cleared. */
void progress_finish(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- for tests ------------------------------------------------------ */

struct progress_view {
	const char *folder;
	uint64_t total, done, bytes;
	double elapsed;         /* seconds since the folder's start */
};
/* The status text of v. */
void progress_format(char *buf, size_t len, const struct progress_view *v);
/* "999 B", "12.3 kB", "4.0 MB", "1.2 GB" (powers of 1000). */
void progress_format_bytes(char *buf, size_t len, double bytes);
/* Replace the clock (monotonic seconds) and the two outputs; NULL keeps
   the default (CLOCK_MONOTONIC, sd_notify, stderr). */
void progress_set_hooks(double (*clock)(void), void (*notify)(const char *status),
			void (*tty)(const char *text, bool final));

#endif
