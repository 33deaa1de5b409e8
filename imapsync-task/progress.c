/* progress.c - how far a run is (see progress.h).
 *
 * The only file that calls sd_notify.  Under systemd the unit needs
 * NotifyAccess=main (Type=oneshot accepts no notification otherwise).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "parallel.h"
#include "progress.h"

#define TEXT_MAX 512

static double default_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void default_notify(const char *status)
{
	/* Without $NOTIFY_SOCKET this does nothing; a failure to send is
	   never a reason to fail the run. */
	(void)sd_notifyf(0, "STATUS=%s", status);
}

static bool tty_shown;

static void default_tty(const char *text, bool final)
{
	if (text == NULL) {
		if (tty_shown)
			(void)!write(STDERR_FILENO, "\r\033[K", 4);
		tty_shown = false;
		return;
	}
	char line[TEXT_MAX + 16];
	int n = snprintf(line, sizeof(line), "\r%s\033[K%s", text, final ? "\n" : "");
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n
			     : sizeof(line) - 1);
	tty_shown = !final;
}

static struct {
	double (*clock)(void);
	void (*notify)(const char *status);
	void (*tty)(const char *text, bool final);
	int verbosity;
	bool tty_on;
	double last_sent;        /* < 0: nothing sent yet */
	char pending[TEXT_MAX];  /* a text not sent because of the rate */
} P = { default_clock, default_notify, default_tty, 0, false, -1.0, "" };

/* The folder being copied: one per flow, as folders are copied side
   by side (parallel.c); the status shows the last news of any. */
struct folder_progress {
	char folder[256];
	bool in_folder;
	uint64_t total, done, bytes;
	double started;
};
static struct folder_progress flows[PARALLEL_MAX];

static struct folder_progress *this_flow(void)
{
	return &flows[parallel_worker()];
}

void progress_set_hooks(double (*clock)(void), void (*notify)(const char *status),
			void (*tty)(const char *text, bool final))
{
	P.clock = clock != NULL ? clock : default_clock;
	P.notify = notify != NULL ? notify : default_notify;
	P.tty = tty != NULL ? tty : default_tty;
}

/* A log line on stderr first clears the terminal's progress line. */
static void clear_tty(void)
{
	if (P.tty_on)
		P.tty(NULL, false);
}

void progress_init(int verbosity, bool tty)
{
	P.verbosity = verbosity;
	/* With -v the news is in log lines; a \r line would fight them. */
	P.tty_on = tty && verbosity == 0;
	P.last_sent = -1.0;
	P.pending[0] = '\0';
	for (unsigned i = 0; i < PARALLEL_MAX; i++)
		flows[i].in_folder = false;
	log_set_stderr_hook(P.tty_on ? clear_tty : NULL);
}

/* Send text now if the last update is old enough (or force), else keep
   it for the next call. */
static void publish(const char *text, bool force)
{
	double now = P.clock();

	if (!force && P.last_sent >= 0 && now - P.last_sent < PROGRESS_MIN_INTERVAL) {
		snprintf(P.pending, sizeof(P.pending), "%s", text);
		return;
	}
	P.pending[0] = '\0';
	P.last_sent = now;
	char red[TEXT_MAX];
	log_redact(red, sizeof(red), text);
	P.notify(red);
	if (P.tty_on)
		P.tty(red, false);
}

void progress_format_bytes(char *buf, size_t len, double bytes)
{
	static const char *const unit[] = { "kB", "MB", "GB", "TB" };
	int u = -1;

	while (bytes >= 1000.0 && u < 3) {
		bytes /= 1000.0;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%.0f B", bytes);
	else
		snprintf(buf, len, "%.1f %s", bytes, unit[u]);
}

static void format_duration(char *buf, size_t len, double secs)
{
	unsigned long s = secs < 0 ? 0 : (unsigned long)(secs + 0.5);

	if (s >= 3600)
		snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lu:%02lu", s / 60, s % 60);
}

void progress_format(char *buf, size_t len, const struct progress_view *v)
{
	char bytes[32], rate[32], eta[32];
	int n;

	if (v->total == 0) {
		snprintf(buf, len, "%s: nothing to copy", v->folder);
		return;
	}
	progress_format_bytes(bytes, sizeof(bytes), (double)v->bytes);
	n = snprintf(buf, len, "%s: %llu/%llu messages, %s", v->folder,
		     (unsigned long long)v->done, (unsigned long long)v->total, bytes);
	if (n < 0 || (size_t)n >= len || v->done == 0 || v->elapsed <= 0.0)
		return;
	progress_format_bytes(rate, sizeof(rate), (double)v->bytes / v->elapsed);
	n += snprintf(buf + n, len - (size_t)n, ", %s/s", rate);
	if ((size_t)n >= len || v->done >= v->total)
		return;
	format_duration(eta, sizeof(eta), v->elapsed * (double)(v->total - v->done) /
			(double)v->done);
	snprintf(buf + n, len - (size_t)n, ", ETA %s", eta);
}

static void folder_text(char *buf, size_t len)
{
	struct folder_progress *cur = this_flow();
	struct progress_view v = { cur->folder, cur->total, cur->done, cur->bytes,
				   P.clock() - cur->started };
	progress_format(buf, len, &v);
}

void progress_step(const char *fmt, ...)
{
	char text[TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("%s", text);
	publish(text, false);
}

void progress_begin_folder(const char *folder, uint64_t total)
{
	struct folder_progress *cur = this_flow();
	char text[TEXT_MAX];

	snprintf(cur->folder, sizeof(cur->folder), "%s", folder);
	cur->in_folder = true;
	cur->total = total;
	cur->done = 0;
	cur->bytes = 0;
	cur->started = P.clock();
	folder_text(text, sizeof(text));
	publish(text, false);
}

static void add(uint64_t msgs, uint64_t bytes, bool say)
{
	struct folder_progress *cur = this_flow();
	char text[TEXT_MAX];

	if (!cur->in_folder)
		return;
	cur->done += msgs;
	if (cur->done > cur->total)
		cur->total = cur->done;
	cur->bytes += bytes;
	folder_text(text, sizeof(text));
	if (say && P.verbosity > 0)
		log_info("%s", text);
	publish(text, false);
}

void progress_add(uint64_t msgs, uint64_t bytes)
{
	add(msgs, bytes, true);
}

void progress_arrived(uint64_t bytes)
{
	add(1, bytes, false);
}

void progress_end(void)
{
	struct folder_progress *cur = this_flow();
	char text[TEXT_MAX];

	if (!cur->in_folder)
		return;
	cur->in_folder = false;
	if (cur->total == 0)
		return;
	folder_text(text, sizeof(text));
	publish(text, true);
	/* The folder's last state stays on the terminal. */
	if (P.tty_on) {
		char red[TEXT_MAX];
		log_redact(red, sizeof(red), text);
		P.tty(red, true);
	}
}

void progress_tick(void)
{
	char text[TEXT_MAX];

	if (P.pending[0] == '\0' || P.clock() - P.last_sent < PROGRESS_MIN_INTERVAL)
		return;
	snprintf(text, sizeof(text), "%s", P.pending);
	publish(text, false);
}

void progress_finish(const char *fmt, ...)
{
	struct folder_progress *cur = this_flow();
	char text[TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	cur->in_folder = false;
	char red[TEXT_MAX];
	log_redact(red, sizeof(red), text);
	P.notify(red);
	P.last_sent = P.clock();
	P.pending[0] = '\0';
	clear_tty();
}
