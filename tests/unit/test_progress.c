/* test_progress.c - the progress text (folder, done/total, bytes, rate,
 * ETA), the rate limit of the updates, the terminal line and the -v
 * lines, with a fake clock and fake outputs. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "progress.h"
#include "tap.h"

static double now_s;
static char notes[64][512];
static int nnotes;
static char ttys[64][512];
static bool tty_final[64];
static int ntty;

static double fake_clock(void) { return now_s; }

static void fake_notify(const char *status)
{
	if (nnotes < 64)
		snprintf(notes[nnotes++], sizeof(notes[0]), "%s", status);
}

static void fake_tty(const char *text, bool final)
{
	if (ntty < 64) {
		snprintf(ttys[ntty], sizeof(ttys[0]), "%s", text ? text : "(clear)");
		tty_final[ntty++] = final;
	}
}

static void reset(void)
{
	nnotes = ntty = 0;
}

static const char *fmt(const char *folder, uint64_t total, uint64_t done, uint64_t bytes,
		       double elapsed)
{
	static char buf[512];
	struct progress_view v = { folder, total, done, bytes, elapsed };

	progress_format(buf, sizeof(buf), &v);
	return buf;
}

int main(void)
{
	char b[64];

	/* --- the text --------------------------------------------------- */
	progress_format_bytes(b, sizeof(b), 999);
	ok(strcmp(b, "999 B") == 0, "bytes: %s", b);
	progress_format_bytes(b, sizeof(b), 12345);
	ok(strcmp(b, "12.3 kB") == 0, "kilobytes: %s", b);
	progress_format_bytes(b, sizeof(b), 4.0e6);
	ok(strcmp(b, "4.0 MB") == 0, "megabytes: %s", b);
	progress_format_bytes(b, sizeof(b), 1.25e9);
	ok(strcmp(b, "1.2 GB") == 0 || strcmp(b, "1.3 GB") == 0, "gigabytes: %s", b);

	const char *s = fmt("INBOX", 1000, 0, 0, 0.5);
	ok(strcmp(s, "INBOX: 0/1000 messages, 0 B") == 0, "nothing done yet: no rate, no ETA: %s", s);
	s = fmt("INBOX", 1000, 250, 2500000, 10.0);
	ok(strcmp(s, "INBOX: 250/1000 messages, 2.5 MB, 250.0 kB/s, ETA 0:30") == 0,
	   "a quarter in 10 s: rate and 30 s left: %s", s);
	s = fmt("Archiv/2019", 100000, 1, 1000, 2.0);
	ok(strcmp(s, "Archiv/2019: 1/100000 messages, 1.0 kB, 500 B/s, ETA 55:33:18") == 0,
	   "hours in the ETA: %s", s);
	s = fmt("INBOX", 64, 64, 64000, 2.0);
	ok(strcmp(s, "INBOX: 64/64 messages, 64.0 kB, 32.0 kB/s") == 0, "done: no ETA: %s", s);
	s = fmt("Sent", 0, 0, 0, 1.0);
	ok(strcmp(s, "Sent: nothing to copy") == 0, "an empty folder: %s", s);

	/* --- updates, rate-limited -------------------------------------- */
	progress_set_hooks(fake_clock, fake_notify, fake_tty);
	log_init("test", NULL, -1);   /* no log lines from -v paths */
	progress_init(0, false);
	reset();
	now_s = 100.0;
	progress_step("connecting to remote imap.example.org:993");
	ok(nnotes == 1 && strcmp(notes[0], "connecting to remote imap.example.org:993") == 0,
	   "a step is the status text: %s", nnotes ? notes[0] : "(none)");
	now_s = 100.05;
	progress_step("logging in");
	ok(nnotes == 1, "a second update within %.2f s is held back", PROGRESS_MIN_INTERVAL);
	now_s = 100.1;
	progress_tick();
	ok(nnotes == 1, "a tick before the interval sends nothing");
	now_s = 100.3;
	progress_tick();
	ok(nnotes == 2 && strcmp(notes[1], "logging in") == 0,
	   "a tick after the interval sends the held-back text: %s", nnotes > 1 ? notes[1] : "");
	now_s = 100.4;
	progress_tick();
	ok(nnotes == 2, "nothing held back: a tick sends nothing");

	now_s = 101.0;
	progress_begin_folder("INBOX", 200);
	ok(nnotes == 3 && strcmp(notes[2], "INBOX: 0/200 messages, 0 B") == 0,
	   "folder start: %s", notes[2]);
	/* 20 batches in 2 seconds: at most 1 + 2 / interval updates. */
	int before = nnotes;
	for (int i = 0; i < 20; i++) {
		now_s += 0.1;
		progress_add(10, 10000);
	}
	int sent = nnotes - before;
	ok(sent >= 4 && sent <= 9, "20 batches in 2 s: %d updates (a few per second)", sent);
	ok(strstr(notes[nnotes - 1], "/200 messages") != NULL, "last update: %s",
	   notes[nnotes - 1]);
	now_s = 103.0;
	progress_end();
	ok(strcmp(notes[nnotes - 1], "INBOX: 200/200 messages, 200.0 kB, 100.0 kB/s") == 0,
	   "the folder's end is sent at once: %s", notes[nnotes - 1]);
	progress_finish("ok: copied 200");
	ok(strcmp(notes[nnotes - 1], "ok: copied 200") == 0, "the run's end is sent at once");
	ok(ntty == 0, "no terminal: no progress line");

	/* --- redaction ---------------------------------------------------- */
	static const char secret[] = "s3cret-Passw0rd";
	log_register_secret(secret);
	now_s += 1.0;
	progress_step("login as bob with s3cret-Passw0rd");
	ok(strstr(notes[nnotes - 1], secret) == NULL &&
	   strstr(notes[nnotes - 1], "<redacted>") != NULL,
	   "a registered secret never reaches the status: %s", notes[nnotes - 1]);
	log_forget_secret(secret);

	/* --- a terminal ----------------------------------------------------- */
	progress_init(0, true);
	reset();
	now_s += 1.0;
	progress_begin_folder("INBOX", 3);
	now_s += 1.0;
	progress_add(3, 3000);
	progress_end();
	ok(ntty >= 2 && !tty_final[0] && strcmp(ttys[0], "INBOX: 0/3 messages, 0 B") == 0,
	   "terminal: the line is rewritten in place: %s", ntty ? ttys[0] : "");
	ok(ntty >= 2 && tty_final[ntty - 1] &&
	   strcmp(ttys[ntty - 1], "INBOX: 3/3 messages, 3.0 kB, 3.0 kB/s") == 0,
	   "terminal: the folder's last line stays: %s", ntty ? ttys[ntty - 1] : "");
	progress_finish("ok");
	ok(strcmp(ttys[ntty - 1], "(clear)") == 0, "terminal: the end clears the line");

	/* -v: log lines, no terminal line. */
	progress_init(1, true);
	reset();
	now_s += 1.0;
	progress_begin_folder("INBOX", 3);
	progress_add(3, 3000);
	progress_end();
	ok(ntty == 0, "with -v the terminal gets log lines, not a progress line");
	ok(nnotes >= 2, "with -v the status is still sent (%d)", nnotes);
	return tap_done();
}
