#!/usr/bin/python3
"""Throttling for hosted providers (issue 13): the remote paced by
[remote] max_bytes_per_second and max_messages_per_second against a real
Dovecot pair, and backing off when a server throttles us (a scripted
fake remote answering NO [THROTTLED], or Office 365's "Suggested
Backoff Time: N milliseconds")."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, read_mailbox, seed  # noqa: E402
from worker import Tap, TaskEnv, output  # noqa: E402
from fakeimap import CAPS, FakeServer, basic, message, parse_set  # noqa: E402

tap = Tap()
DATE = b'"01-Jan-2024 00:00:00 +0000"'


def subjects(pair, user):
    return sorted(re.search(rb"Subject: ([^\r]*)", m["bytes"]).group(1)
                  for m in read_mailbox(pair.local, user, "INBOX", master=True))


def timed_run(te, *args):
    t0 = time.monotonic()
    r = te.run(*args)
    return r, time.monotonic() - t0


# --- pacing against the real pair ---------------------------------------

def test_rates(pair):
    pair.remote.add_user("pace", "pace-pw")
    pair.local.add_user("pace", "local-pw")
    # Unpaced: how long the run takes here, for the upper bounds.
    msgs = [{"bytes": make_message(1000 + i, size=50000), "flags": []} for i in range(30)]
    seed(pair.remote, "pace", "INBOX", msgs)
    total = sum(len(m["bytes"]) for m in msgs)
    te = TaskEnv(pair, "pace", name="pace-free")
    r, free = timed_run(te)
    tap.ok(r.returncode == 0, "unpaced run: exit 0", output(r))

    # Bytes: 200000 B/s over ~1.5 MB (plus the protocol around it).
    pair.remote.add_user("bytes", "bytes-pw")
    pair.local.add_user("bytes", "local-pw")
    seed(pair.remote, "bytes", "INBOX", msgs)
    rate = 200000
    te = TaskEnv(pair, "bytes", remote_extra=f"max_bytes_per_second = {rate}\n")
    r, took = timed_run(te)
    want = total / rate
    tap.ok(r.returncode == 0, "max_bytes_per_second = 200000: exit 0", output(r))
    tap.ok(len(subjects(pair, "bytes")) == 30, "every message arrived")
    tap.ok(took >= 0.95 * want, f"{total} bytes at {rate} B/s: {took:.2f} s >= 0.95 x {want:.2f} s")
    tap.ok(took <= 1.5 * want + free + 3, f"and not much longer ({took:.2f} s, unpaced {free:.2f} s)")

    # The suffix form.
    pair.remote.add_user("bytesk", "bytesk-pw")
    pair.local.add_user("bytesk", "local-pw")
    seed(pair.remote, "bytesk", "INBOX", msgs[:10])
    te = TaskEnv(pair, "bytesk", remote_extra="max_bytes_per_second = 250k\n")
    r, took = timed_run(te)
    want = sum(len(m["bytes"]) for m in msgs[:10]) / (250 * 1024)
    tap.ok(r.returncode == 0 and took >= 0.95 * want,
           f"max_bytes_per_second = 250k: {took:.2f} s >= 0.95 x {want:.2f} s", output(r))

    # Messages: 10 per second over 30 small messages: the first comes at
    # once, each next one 0.1 s later.
    pair.remote.add_user("msgs", "msgs-pw")
    pair.local.add_user("msgs", "local-pw")
    small = [{"bytes": make_message(3000 + i, size=500), "flags": []} for i in range(30)]
    seed(pair.remote, "msgs", "INBOX", small)
    te = TaskEnv(pair, "msgs", remote_extra="max_messages_per_second = 10\n")
    r, took = timed_run(te)
    want = (len(small) - 1) / 10
    tap.ok(r.returncode == 0, "max_messages_per_second = 10: exit 0", output(r))
    tap.ok(len(subjects(pair, "msgs")) == 30, "every message arrived")
    tap.ok(took >= 0.95 * want, f"30 messages at 10/s: {took:.2f} s >= 0.95 x {want:.2f} s")
    tap.ok(took <= 1.5 * want + free + 3, f"and not much longer ({took:.2f} s)")

    # Fractional: 2 messages at 0.5/s take 2 s.
    pair.remote.add_user("half", "half-pw")
    pair.local.add_user("half", "local-pw")
    seed(pair.remote, "half", "INBOX", small[:2])
    te = TaskEnv(pair, "half", remote_extra="max_messages_per_second = 0.5\n")
    r, took = timed_run(te)
    tap.ok(r.returncode == 0 and took >= 1.9,
           f"max_messages_per_second = 0.5: 2 messages take {took:.2f} s >= 1.9 s", output(r))

    # A broken value: the usual error, naming file, line and key.
    te = TaskEnv(pair, "half", name="broken", remote_extra="max_messages_per_second = fast\n")
    r = te.cmd("check", "broken")
    tap.ok(r.returncode == 78 and re.search(r"broken\.ini:\d+: max_messages_per_second: not a number",
                                            output(r)),
           "a broken value: exit 78, FILE:LINE: key: reason", output(r))


# --- backing off against a fake remote -----------------------------------

def throttling_server(throttle):
    """A remote INBOX of 3 unseen messages; throttle(cmd, tag) may return
    a refusal instead of the answer."""
    state = {"fetched": []}

    def handler(tag, cmd, line, conn):
        refusal = throttle(cmd, tag)
        if refusal is not None:
            return refusal
        if cmd in (b"CAPABILITY", b"LOGIN", b"AUTHENTICATE", b"LOGOUT"):
            return basic(tag, cmd, line, conn)
        if cmd in (b"SELECT", b"EXAMINE"):
            return (b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 4] n\r\n"
                    + tag + b" OK [READ-WRITE] selected\r\n")
        if cmd == b"UID SEARCH":
            if b"UNSEEN" in line:
                return b"* SEARCH 1 2 3\r\n" + tag + b" OK done\r\n"
            return b"* SEARCH\r\n" + tag + b" OK done\r\n"
        if cmd == b"UID FETCH":
            out = b""
            for uid in parse_set(line.split(b" ")[3]):
                if 1 <= uid <= 3:
                    body = message(uid)
                    state["fetched"].append(uid)
                    out += (b"* %d FETCH (UID %d FLAGS () INTERNALDATE %s RFC822.SIZE %d "
                            b"BODY[] {%d}\r\n" % (uid, uid, DATE, len(body), len(body))
                            + body + b")\r\n")
            return out + tag + b" OK fetched\r\n"
        return tag + b" OK done\r\n"
    return handler, state


def fake_run(pair, name, local_user, throttle, timeout_s=10):
    handler, state = throttling_server(throttle)
    fake = FakeServer(b"* OK [CAPABILITY " + CAPS + b"] hi\r\n", handler)
    te = TaskEnv(pair, "hostile", local_user=local_user, name=name, security="none",
                 remote_password="Throttle-Secret-1")
    te.write_task(local_user, "hostile", "none", fake.port)
    t0 = time.monotonic()
    try:
        r = te.cmd("--timeout", str(timeout_s), "run", name, timeout=120)
    finally:
        fake.stop()
    return r, time.monotonic() - t0, fake, state


def test_backoff(pair):
    for u in ("twice", "always", "o365", "bye"):
        pair.local.add_user(u, "local-pw")

    # NO [THROTTLED] twice on the SELECT, then OK.
    count = {"n": 0}

    def twice(cmd, tag):
        if cmd in (b"SELECT", b"EXAMINE") and count["n"] < 2:
            count["n"] += 1
            return tag + b" NO [THROTTLED] Too many requests, slow down\r\n"
        return None
    r, took, fake, state = fake_run(pair, "twice", "twice", twice)
    tap.ok(r.returncode == 0, "NO [THROTTLED] twice then OK: the run succeeds", output(r))
    tap.ok(subjects(pair, "twice") == [b"message 1", b"message 2", b"message 3"],
           "every message copied exactly once", subjects(pair, "twice"))
    tap.ok(sorted(state["fetched"]) == [1, 2, 3], "each body fetched once", state["fetched"])
    tap.ok(fake.received.count(b"SELECT") == 3, "SELECT sent three times",
           fake.received.count(b"SELECT"))
    tap.ok(output(r).count("server throttles us") == 1, "one backoff warning, not one per retry",
           output(r))
    tap.ok(took >= 3 * 0.95, f"waited 1 s then 2 s ({took:.2f} s)")

    # Throttled on a UID SEARCH and a UID STORE too.
    seen = {"SEARCH": 0, "STORE": 0}

    def others(cmd, tag):
        for k in seen:
            if cmd == b"UID " + k.encode() and seen[k] == 0:
                seen[k] += 1
                return tag + b" NO [UNAVAILABLE] Try again later\r\n"
        return None
    pair.local.add_user("others", "local-pw")
    r, took, fake, state = fake_run(pair, "others", "others", others)
    tap.ok(r.returncode == 0 and seen == {"SEARCH": 1, "STORE": 1},
           "NO [UNAVAILABLE] on UID SEARCH and UID STORE: retried, exit 0", output(r))
    tap.ok(subjects(pair, "others") == [b"message 1", b"message 2", b"message 3"],
           "every message copied exactly once", subjects(pair, "others"))

    # The body FETCH of the copy itself throttled once: sent again.
    fetches = {"n": 0}

    def body_fetch(cmd, tag):
        if cmd == b"UID FETCH" and fetches["n"] == 0:
            fetches["n"] += 1
            return tag + b" NO [THROTTLED] Too many requests, slow down\r\n"
        return None
    pair.local.add_user("bodyfetch", "local-pw")
    r, took, fake, state = fake_run(pair, "bodyfetch", "bodyfetch", body_fetch)
    tap.ok(r.returncode == 0 and fake.received.count(b"UID FETCH") == 2,
           "NO [THROTTLED] on the body FETCH: sent again after the wait, exit 0", output(r))
    tap.ok(subjects(pair, "bodyfetch") == [b"message 1", b"message 2", b"message 3"] and
           sorted(state["fetched"]) == [1, 2, 3],
           "every message fetched and copied exactly once", state["fetched"])

    # Always throttled: gives up after the backoff (--timeout 3 here) with 75.
    def always(cmd, tag):
        if cmd in (b"SELECT", b"EXAMINE"):
            return tag + b" NO [THROTTLED] Too many requests\r\n"
        return None
    r, took, fake, state = fake_run(pair, "always", "always", always, timeout_s=3)
    tap.ok(r.returncode == 75, "always throttled: exit 75", output(r))
    tap.ok("the server throttled us" in output(r), "and says the server throttled us", output(r))
    tap.ok(2.5 <= took <= 30, f"after backing off a while ({took:.2f} s)")
    tap.ok(subjects(pair, "always") == [], "nothing copied")

    # Office 365: a plain NO whose text suggests a wait.
    o365 = {"n": 0}

    def suggested(cmd, tag):
        if cmd == b"UID SEARCH" and o365["n"] == 0:
            o365["n"] += 1
            return tag + b" NO Request is throttled. Suggested Backoff Time: 1500 milliseconds\r\n"
        return None
    r, took, fake, state = fake_run(pair, "o365", "o365", suggested)
    tap.ok(r.returncode == 0, "Suggested Backoff Time: the run succeeds", output(r))
    tap.ok(took >= 1.4, f"the suggested 1500 ms honoured ({took:.2f} s)")
    tap.ok("as it suggests" in output(r), "the warning says so", output(r))
    tap.ok(subjects(pair, "o365") == [b"message 1", b"message 2", b"message 3"],
           "every message copied exactly once")

    # A suggestion longer than a command may wait: 75 at once.
    def too_long(cmd, tag):
        if cmd in (b"SELECT", b"EXAMINE"):
            return tag + b" BAD Request is throttled. Suggested Backoff Time: 299961 milliseconds\r\n"
        return None
    pair.local.add_user("toolong", "local-pw")
    r, took, fake, state = fake_run(pair, "toolong", "toolong", too_long, timeout_s=5)
    tap.ok(r.returncode == 75 and "the server throttled us" in output(r),
           "a 300 s suggestion (even as a BAD): exit 75 without waiting it", output(r))
    tap.ok(took < 20, f"at once ({took:.2f} s)")

    # A BYE asking to back off ends the run with 75.
    def bye(cmd, tag):
        if cmd in (b"SELECT", b"EXAMINE"):
            return b"* BYE [UNAVAILABLE] Too many connections, back off\r\n"
        return None
    r, took, fake, state = fake_run(pair, "bye", "bye", bye)
    tap.ok(r.returncode == 75, "BYE [UNAVAILABLE]: exit 75", output(r))
    tap.ok("asked us to back off" in output(r), "a log line says the server asked to back off",
           output(r))


def main():
    with DovecotPair(name="throttle") as pair:
        test_rates(pair)
        test_backoff(pair)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
