#!/usr/bin/python3
"""A hostile network in front of real servers: a fault proxy
(tests/lib/faultproxy.py) sits between the worker and the remote IMAP
server, the local IMAP server or the local LMTP server, and cuts (FIN),
resets (RST) or stalls the connection after N bytes in one direction.

A clean run through the proxies first measures each configuration's byte
streams; the fault points are then chosen across them: before and inside
the greeting and the login, inside FETCH literals (small, spooled
> 256 KiB, without final CRLF, with bare LF), before each tagged reply
(FETCH, the \\Seen STORE, the \\Deleted STORE, UID EXPUNGE), inside and
right after the APPEND literals, before the APPEND's OK, inside and
after each LMTP DATA, and before its reply.  Stalls outlast the worker's
--timeout.

For every fault point: a fresh remote user seeded with the same 22
messages (20 candidates, 2 already \\Seen), a fresh local user and fresh
task state; one run through the faulty proxy, then one clean run, then an
idempotence run.  The invariants (../shared/FAULTS.md I1, I2, I4):

  - the faulty run ends with 0, 69 or 75 (never 70, nor anything else),
    and gives up on a stall within its --timeout;
  - right after it: no message is local twice and nothing foreign is
    local; every candidate that is \\Seen, \\Deleted or gone on the remote
    is local (\\Seen and deletion only after the local side confirmed);
    the 2 messages seen elsewhere are untouched;
  - the clean run ends with 0 and the local INBOX then holds exactly one
    copy of each of the 20 candidates (compared by content hash, as a
    multiset: two of them are byte-identical); the remote keeps
    everything (delete = never) or only the 2 never-imported messages
    (delete = after-sync);
  - the third run copies 0;
  - no password (remote, master, or the AUTHENTICATE PLAIN payloads)
    appears in the output of any run, traced with -v -v.

FAULTPROXY_JOBS (default 3) fault points run in parallel, each with its
own proxies and users; FAULTPROXY_ONLY=REGEX runs the matching points only."""

import base64
import collections
import concurrent.futures
import datetime as dt
import hashlib
import os
import queue
import re
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, read_mailbox, seed  # noqa: E402
from faultproxy import (Fault, FaultProxy, find_mark, imap_line_starts, line_anchor,  # noqa: E402
                        lmtp_line_starts, scan_imap, scan_lmtp)
from worker import Tap, TaskEnv, output  # noqa: E402

tap = Tap()
ALLOWED = (0, 69, 75)
TIMEOUT = 20            # --timeout of the runs without a stall
STALL_TIMEOUT = 2       # --timeout of a run that meets a stall
STALL_SECONDS = 15      # how long the proxy stalls: longer than the above
JOBS = max(1, int(os.environ.get("FAULTPROXY_JOBS", "3")))
ONLY = os.environ.get("FAULTPROXY_ONLY")

CONFIGS = {
    # name: delivery, delete, security (both sides)
    "A": ("append", "never", "none"),
    "B": ("append", "after-sync", "none"),
    "L": ("lmtp", "after-sync", "none"),
    "T": ("append", "never", "starttls"),
}


# --------------------------------------------------------------------------
# the messages: the same bytes for every fault point

def build_messages():
    """22 messages: 20 candidates and 2 already \\Seen (indexes 5 and 14).
    Returns (messages for seed(), notes by index)."""
    d0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    sizes = {0: 700, 1: 1500, 2: 2600, 3: 4100, 4: 9000, 5: 1800, 6: 17000, 7: 33000,
             8: 65000, 9: 120000, 10: 300 * 1024, 14: 2000, 15: 600 * 1024,
             16: 3000, 17: 5000, 18: 800, 19: 1100, 20: 12000, 21: 7000}
    msgs, notes = [], {}
    for i in range(22):
        flags = []
        if i in (5, 14):
            flags, notes[i] = ["\\Seen"], "seen elsewhere"
        if i == 7:
            flags = ["\\Flagged"]
        if i == 9:
            flags = ["$Label1"]
        if i == 11:
            raw = make_message(8000 + i, size=2200)[:-2]
            notes[i] = "no final CRLF"
        elif i == 12:
            raw = make_message(8000 + i, size=2500).replace(b"\r\n", b"\n")
            notes[i] = "bare LF"
        elif i == 13:
            raw = msgs[3]["bytes"]
            notes[i] = "byte-identical to #3"
        else:
            raw = make_message(8000 + i, size=sizes[i])
            if sizes[i] > 256 * 1024:
                notes[i] = f"{sizes[i] // 1024} KiB, spooled"
        msgs.append({"bytes": raw, "flags": flags,
                     "internaldate": d0 + dt.timedelta(hours=i)})
    return msgs, notes


MSGS, NOTES = build_messages()
SEEN = (5, 14)
CAND = [i for i in range(len(MSGS)) if i not in SEEN]     # UID order = delivery order


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


# --------------------------------------------------------------------------
# invariants

class Truth:
    """The messages as the remote serves them (Dovecot turns bare LF into
    CRLF on FETCH): what must arrive locally."""

    def __init__(self, remote_bytes):
        self.bytes = remote_bytes                  # by seed index
        self.key = [sha(b) for b in remote_bytes]
        self.want = collections.Counter(self.key[i] for i in CAND)
        self.seen_keys = {self.key[i] for i in SEEN}
        self.name = {}
        for i in range(len(remote_bytes)):
            self.name.setdefault(self.key[i], []).append(
                f"#{i} ({len(remote_bytes[i])} bytes{', ' + NOTES[i] if i in NOTES else ''})")
        self._unique = sorted({(k, bytes(b)) for k, b in zip(self.key, self.bytes)},
                              key=lambda kb: -len(kb[1]))

    def label(self, k):
        return "/".join(self.name.get(k, [f"foreign {k[:12]}"]))

    def local_key(self, raw, lmtp):
        """A local message -> the key of the remote message it is a copy
        of.  LMTP puts Return-Path, Delivered-To and Received in front."""
        k = sha(raw)
        if k in self.name or not lmtp:
            return k
        for key, b in self._unique:
            # DATA must end with CRLF: the worker adds one where the
            # message has none (LMTP cannot carry it verbatim).
            tail = b if b.endswith(b"\n") else b + b"\r\n"
            if len(raw) > len(tail) and raw.endswith(tail) and len(raw) - len(tail) < 4096:
                return key
        return k


def check_state(truth, local, remote, delete, final, lmtp):
    """Problems (strings) of a local INBOX and a remote INBOX, each a list
    of {"bytes", "flags"}.  final: after a clean run, when everything
    must be there."""
    problems = []
    lk = collections.Counter(truth.local_key(m["bytes"], lmtp) for m in local)
    for k, n in lk.items():
        if k not in truth.want:
            problems.append(f"foreign or never-candidate message local x{n}: {truth.label(k)}")
        elif n > truth.want[k]:
            problems.append(f"doubled: {truth.label(k)} is local {n} times "
                            f"(the remote had {truth.want[k]})")
    rk = collections.Counter(sha(m["bytes"]) for m in remote)
    rflag = collections.Counter(sha(m["bytes"]) for m in remote
                                if "\\Seen" in m["flags"] or "\\Deleted" in m["flags"])
    for k, n in truth.want.items():
        gone = max(0, n - rk[k])
        marked = rflag[k]
        if gone + marked > lk[k]:
            problems.append(f"lost: {truth.label(k)}: {gone} gone from the remote and "
                            f"{marked} \\Seen/\\Deleted there, but {lk[k]} local")
        if gone and delete == "never":
            problems.append(f"deleted on the remote although delete = never: {truth.label(k)}")
        if final and lk[k] != n:
            problems.append(f"after the clean run {truth.label(k)} is local {lk[k]} times, "
                            f"want {n}")
    for i in SEEN:
        k = truth.key[i]
        ms = [m for m in remote if sha(m["bytes"]) == k]
        if len(ms) != 1 or "\\Deleted" in ms[0]["flags"]:
            problems.append(f"the message seen elsewhere {truth.label(k)} was deleted or "
                            f"flagged on the remote: {[m['flags'] for m in ms]}")
    if final:
        if delete == "never":
            unseen = [truth.label(sha(m["bytes"])) for m in remote if "\\Seen" not in m["flags"]]
            if unseen:
                problems.append(f"still unseen on the remote after the clean run: {unseen}")
        else:
            left = [truth.label(k) for k in rk if k not in truth.seen_keys]
            if left:
                problems.append(f"still on the remote after a clean after-sync run: {left}")
    return problems


def self_test(truth):
    """The checker itself must see a doubled, a lost and a foreign message."""
    good_local = [{"bytes": truth.bytes[i], "flags": []} for i in CAND]
    remote = [{"bytes": truth.bytes[i], "flags": ["\\Seen"]} for i in range(len(MSGS))]
    tap.ok(check_state(truth, good_local, remote, "never", True, False) == [],
           "checker: a correct final state passes")
    doubled = good_local + [good_local[4]]
    tap.ok(any("doubled" in p for p in check_state(truth, doubled, remote, "never", True, False)),
           "checker: a doubled message is detected")
    dup_pair = [m for m in good_local if sha(m["bytes"]) != truth.key[3]] + \
        [{"bytes": truth.bytes[3], "flags": []}]
    tap.ok(any("after the clean run" in p
               for p in check_state(truth, dup_pair, remote, "never", True, False)),
           "checker: one copy of two byte-identical messages is not enough")
    lost_remote = [m for m in remote if sha(m["bytes"]) != truth.key[10]]
    lost_local = [m for m in good_local if sha(m["bytes"]) != truth.key[10]]
    tap.ok(any(p.startswith("lost") for p in
               check_state(truth, lost_local, lost_remote, "after-sync", False, False)),
           "checker: a remote deletion of a message that is not local is detected")
    tap.ok(any(p.startswith("lost") for p in
               check_state(truth, lost_local, remote, "never", False, False)),
           "checker: a remote \\Seen on a message that is not local is detected")
    foreign = good_local + [{"bytes": truth.bytes[5], "flags": []}]
    tap.ok(any("foreign" in p for p in check_state(truth, foreign, remote, "never", False, False)),
           "checker: a message seen elsewhere that was imported anyway is detected")
    lmtp_local = [{"bytes": b"Return-Path: <x@y>\r\nDelivered-To: u\r\n" + m["bytes"] +
                   (b"" if m["bytes"].endswith(b"\n") else b"\r\n"), "flags": []}
                  for m in good_local]
    tap.ok(check_state(truth, lmtp_local, remote, "never", True, True) == [],
           "checker: LMTP copies (trace headers in front) are matched by suffix")


# --------------------------------------------------------------------------
# tasks through proxies

def _write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class Slot:
    """One set of proxies (remote IMAP, local IMAP, local LMTP); one fault
    point at a time uses it."""

    def __init__(self, pair, n):
        self.proxy = {
            "remote": FaultProxy(pair.remote.host, pair.remote.imap_port, f"remote{n}"),
            "local": FaultProxy(pair.local.host, pair.local.imap_port, f"local{n}"),
            "lmtp": FaultProxy(pair.local.host, pair.local.lmtp_port, f"lmtp{n}"),
        }

    def arm(self, side=None, fault=None, record=False):
        for name, p in self.proxy.items():
            p.reset(fault=fault if name == side else None, record=record)

    def idle(self):
        for p in self.proxy.values():
            p.wait_idle(10)

    def close(self):
        for p in self.proxy.values():
            p.close()


def remote_password(user):
    return f"Rem0te-Secret-{user}-qX"


def new_task(pair, slot, user, cfg):
    """A fresh remote user seeded with MSGS, a fresh local user, and a task
    whose three connections go through slot's proxies."""
    delivery, delete, security = CONFIGS[cfg]
    pw = remote_password(user)
    pair.remote.add_user(user, pw)
    pair.local.add_user(user, f"local-{user}")
    seed(pair.remote, user, "INBOX", MSGS)
    te = TaskEnv(pair, user, remote_password=pw)
    p = slot.proxy
    _write(os.path.join(te.config_dir, "imapsync-task.conf"),
           "[local]\n"
           f"host = 127.0.0.1\nport = {p['local'].port}\nsecurity = {security}\n"
           "master_user = vmail\nmaster_separator = *\n"
           f"master_password_file = {te.config_dir}/master.pwd\n"
           f"ca_file = {pair.ca_file}\n"
           f"lmtp = 127.0.0.1:{p['lmtp'].port}\n", 0o644)
    te.write_task(user, user, security, p["remote"].port,
                  f"delivery = {delivery}\ndelete = {delete}\n")
    return te


def run(te, timeout):
    t0 = time.monotonic()
    r = te.run("--timeout", str(timeout), "-v", "-v", timeout=240)
    return r, time.monotonic() - t0


def tail(r, n=15):
    """The last lines of a run's output worth reading (not the protocol
    trace of -v -v)."""
    lines = [ln for ln in output(r).splitlines() if not re.search(r" (<<|>>) |: ignored untagged", ln)]
    return lines[-n:]


def copied(r):
    m = re.search(r"summary: .*\bcopied=(\d+)", output(r))
    return int(m.group(1)) if m else None


def secrets(pair, user):
    pw = remote_password(user)
    out = [pw, pair.master_password,
           base64.b64encode(f"\0{user}\0{pw}".encode()).decode(),
           base64.b64encode(f"{user}\0vmail\0{pair.master_password}".encode()).decode()]
    return [s for s in out if s]


# --------------------------------------------------------------------------
# measuring, and choosing the fault points

def measure(pair, slot, cfg, user):
    """One clean run of configuration cfg through slot's proxies, recorded."""
    te = new_task(pair, slot, user, cfg)
    slot.arm(record=True)
    r, took = run(te, TIMEOUT)
    slot.idle()
    streams = {side: {d: bytes(p.stream[d]) for d in ("c2s", "s2c")}
               for side, p in slot.proxy.items()}
    tap.ok(r.returncode == 0 and copied(r) == len(CAND),
           f"measuring configuration {cfg} {CONFIGS[cfg]}: a clean run copies "
           f"{len(CAND)} ({took:.2f} s)", output(r))
    tap.diag(f"config {cfg} bytes: " + ", ".join(
        f"{side} c2s={len(s['c2s'])} s2c={len(s['s2c'])}" for side, s in streams.items()))
    return te, streams


def plan(meas):
    """The fault points: (config, side, direction, kind, where, label); where
    is (anchor, nth, delta) (see faultproxy.line_anchor), or (None, 0,
    offset) through TLS, where there are no lines to see."""
    pts = []
    seq = {i: i + 1 for i in range(len(MSGS))}          # sequence number of message i
    pos = {i: CAND.index(i) for i in CAND}              # its place in APPEND / LMTP

    def add(cfg, side, d, kind, off, label, end=False):
        """end: off is where a line ends; strike as soon as it has passed."""
        stream = meas[cfg][side][d]
        if CONFIGS[cfg][2] != "none":
            where = (None, 0, int(off))
        elif side == "lmtp":
            where = line_anchor(stream, off, lmtp_line_starts(stream, d), end=end)
        else:
            where = line_anchor(stream, off, imap_line_starts(stream), end=end)
        pts.append((cfg, side, d, kind, where, label))

    for cfg in ("A", "B"):
        s = meas[cfg]
        rs = scan_imap(s["remote"]["s2c"], s["remote"]["c2s"])
        rc = scan_imap(s["remote"]["c2s"])
        ls = scan_imap(s["local"]["s2c"], s["local"]["c2s"])
        lc = scan_imap(s["local"]["c2s"])
        R = lambda pat, n=0: find_mark(rs, pat, n)      # noqa: E731
        RC = lambda pat, n=0: find_mark(rc, pat, n)     # noqa: E731
        L = lambda pat, n=0: find_mark(ls, pat, n)      # noqa: E731
        LC = lambda pat, n=0: find_mark(lc, pat, n)     # noqa: E731
        lit = lambda where, i: R(rf"literal#0 {where} untagged:{seq[i]} FETCH ")  # noqa: E731
        alit = lambda where, i: LC(rf"literal#{pos[i]} {where} cmd:APPEND")      # noqa: E731
        if cfg == "A":
            add("A", "remote", "s2c", "cut", 0, "before the greeting")
            add("A", "remote", "s2c", "reset", 60, "inside the greeting")
            add("A", "remote", "s2c", "cut", R("start tagged:AUTHENTICATE OK"), "before the login OK")
            add("A", "remote", "s2c", "reset", R("start tagged:SELECT OK"), "before the SELECT OK")
            add("A", "remote", "s2c", "cut", R("start untagged:ESEARCH"), "before the UNSEEN search result")
            add("A", "remote", "s2c", "cut", lit("start", 0), "first byte of the first FETCH literal")
            add("A", "remote", "s2c", "cut", lit("middle", 10), "inside the 300 KiB FETCH literal (spool)")
            add("A", "remote", "s2c", "reset", lit("middle", 15), "inside the 600 KiB FETCH literal (spool)")
            add("A", "remote", "s2c", "cut", lit("last byte", 11), "last byte of the no-final-CRLF literal")
            add("A", "remote", "s2c", "reset", lit("middle", 12), "inside the bare-LF literal")
            add("A", "remote", "s2c", "cut", R("start tagged:UID FETCH OK"), "before the FETCH OK")
            add("A", "remote", "s2c", "cut", R("start tagged:UID STORE OK"), "before the \\Seen STORE OK")
            add("A", "remote", "s2c", "cut", R("start untagged:BYE"), "before the LOGOUT BYE")
            add("A", "remote", "c2s", "cut", 30, "inside AUTHENTICATE")
            add("A", "remote", "c2s", "cut", RC("start cmd:UID FETCH") + 20, "inside UID FETCH")
            add("A", "remote", "c2s", "cut", RC("end cmd:UID STORE"), "after the \\Seen STORE was sent", end=True)
            add("A", "remote", "c2s", "reset", RC("start cmd:UID STORE") + 10, "inside the \\Seen STORE")
            add("A", "remote", "s2c", "stall", 0, "before the greeting")
            add("A", "remote", "s2c", "stall", lit("middle", 10), "inside the 300 KiB FETCH literal")
            add("A", "remote", "s2c", "stall", R("start tagged:UID STORE OK"), "before the \\Seen STORE OK")
            add("A", "remote", "c2s", "stall", RC("start cmd:UID STORE"), "the \\Seen STORE held back")
            add("A", "local", "s2c", "reset", 0, "before the greeting")
            add("A", "local", "c2s", "cut", 30, "inside the master AUTHENTICATE")
            add("A", "local", "s2c", "cut", L("start untagged:STATUS"), "before the STATUS answer")
            add("A", "local", "c2s", "reset", alit("start", 0), "first byte of the first APPEND literal")
            add("A", "local", "c2s", "cut", alit("middle", 10), "inside the 300 KiB APPEND literal")
            add("A", "local", "c2s", "cut", alit("last byte", 11), "last byte of the no-final-CRLF APPEND literal")
            add("A", "local", "c2s", "cut", LC("end cmd:APPEND"), "after the whole APPEND was sent", end=True)
            add("A", "local", "s2c", "cut", L("start tagged:APPEND OK"), "before the APPEND OK (saved, unconfirmed)")
            add("A", "local", "s2c", "stall", L("start tagged:APPEND OK"), "before the APPEND OK")
        else:
            add("B", "remote", "s2c", "reset", R("start tagged:UID STORE OK", 0), "before the \\Seen STORE OK")
            add("B", "remote", "s2c", "cut", R("start tagged:UID STORE OK", 1), "before the \\Deleted STORE OK")
            add("B", "remote", "s2c", "reset", R(r"start untagged:\d+ EXPUNGE", 5), "among the EXPUNGE responses")
            add("B", "remote", "s2c", "cut", R("start tagged:UID EXPUNGE OK"), "before the UID EXPUNGE OK")
            add("B", "remote", "s2c", "reset", R("start tagged:UID SEARCH OK", 2), "before the SEARCH ALL OK")
            add("B", "remote", "c2s", "cut", RC("end cmd:UID STORE", 1), "after the \\Deleted STORE was sent", end=True)
            add("B", "remote", "c2s", "reset", RC("start cmd:UID EXPUNGE") + 5, "inside UID EXPUNGE")
            add("B", "remote", "c2s", "cut", RC("end cmd:UID EXPUNGE"), "after UID EXPUNGE was sent", end=True)
            add("B", "remote", "s2c", "stall", R("start tagged:UID STORE OK", 1), "before the \\Deleted STORE OK")
            add("B", "remote", "s2c", "stall", R("start tagged:UID EXPUNGE OK"), "before the UID EXPUNGE OK")
            add("B", "local", "c2s", "reset", alit("middle", 15), "inside the 600 KiB APPEND literal")
            add("B", "local", "c2s", "cut", LC("end cmd:APPEND") - 2, "before the APPEND's final CRLF")
            add("B", "local", "c2s", "reset", LC("end cmd:APPEND"), "after the whole APPEND was sent", end=True)
            add("B", "local", "s2c", "reset", L("start tagged:APPEND OK"), "before the APPEND OK (saved, unconfirmed)")
            add("B", "local", "c2s", "stall", alit("middle", 15), "inside the 600 KiB APPEND literal")

    s = meas["L"]["lmtp"]
    ms, mc = scan_lmtp(s["s2c"], "s2c"), scan_lmtp(s["c2s"], "c2s")
    M = lambda pat: find_mark(ms, pat)                  # noqa: E731
    MC = lambda pat: find_mark(mc, pat)                 # noqa: E731
    add("L", "lmtp", "c2s", "cut", 10, "inside LHLO")
    add("L", "lmtp", "s2c", "reset", M(r"reply:354 #0$"), "before the first 354")
    add("L", "lmtp", "c2s", "reset", MC(r"data#0 middle"), "inside the first DATA")
    add("L", "lmtp", "c2s", "cut", MC(rf"data#{pos[11]} before final dot"), "no-final-CRLF DATA, before the dot")
    add("L", "lmtp", "c2s", "cut", MC(r"data#2 after final dot"), "after a final dot (delivered, reply unread)", end=True)
    add("L", "lmtp", "c2s", "reset", MC(rf"data#{pos[15]} after final dot"), "after the 600 KiB DATA's dot", end=True)
    add("L", "lmtp", "s2c", "cut", M(r"reply:data#5$"), "before a DATA reply")
    add("L", "lmtp", "s2c", "cut", M(rf"reply:data#{pos[11]}$"),
        "before the DATA reply of the no-final-CRLF message")
    add("L", "lmtp", "s2c", "reset", M(rf"reply:data#{len(CAND) - 1}$"), "before the last DATA reply")
    add("L", "lmtp", "s2c", "stall", M(r"reply:data#3$"), "before a DATA reply")
    add("L", "lmtp", "c2s", "stall", MC(r"data#8 middle"), "inside a DATA")

    s = meas["T"]
    add("T", "remote", "s2c", "cut", len(s["remote"]["s2c"]) * 0.5, "TLS, mid-run (inside FETCH)")
    add("T", "remote", "s2c", "reset", len(s["remote"]["s2c"]) * 0.9, "TLS, late in FETCH")
    add("T", "remote", "c2s", "cut", len(s["remote"]["c2s"]) * 0.85, "TLS, late commands")
    add("T", "local", "c2s", "reset", len(s["local"]["c2s"]) * 0.5, "TLS, inside APPEND")
    add("T", "local", "s2c", "cut", len(s["local"]["s2c"]) * 0.95, "TLS, near the end")
    return pts


# --------------------------------------------------------------------------
# one fault point

def fault_point(pair, slot, truth, n, pt):
    """Returns (checks, diags) for TAP: checks are (cond, name, detail)."""
    cfg, side, d, kind, (anchor, nth, off), label = pt
    delivery, delete, _ = CONFIGS[cfg]
    lmtp = delivery == "lmtp"
    user = f"fp{n:03d}"
    at = f"@{off}" if anchor is None else f"@{anchor.decode(errors='replace')!r}#{nth}+{off}"
    name = f"[{user} {cfg} {side} {d} {kind} {at}: {label}]"
    checks, diags = [], []

    def check(cond, what, detail=None):
        if isinstance(detail, list):
            detail = "\n".join(map(str, detail))
        checks.append((bool(cond), f"{name} {what}", detail))
        return cond

    def state():
        return (read_mailbox(pair.local, user, "INBOX", master=True),
                read_mailbox(pair.remote, user, "INBOX"))

    te = new_task(pair, slot, user, cfg)
    fault = Fault(d, off, kind, stall_seconds=STALL_SECONDS, anchor=anchor, nth=nth)
    slot.arm(side, fault)
    r1, took = run(te, STALL_TIMEOUT if kind == "stall" else TIMEOUT)
    slot.idle()
    fired = slot.proxy[side].fired
    where = ""
    if fired:
        where = (f"struck at byte {fired['offset']} of connection {fired['connection']}, after "
                 f"...{fired['context'][-48:]!r} | next {fired['next'][:32]!r}")
    check(fired is not None, "the fault struck", f"{side} bytes: {slot.proxy[side].bytes}")
    ok = r1.returncode in ALLOWED
    if kind == "stall":
        ok = ok and took < STALL_SECONDS - 2
    check(ok, f"faulty run: exit {r1.returncode} in {ALLOWED}"
          + (f", gave up in {took:.1f} s" if kind == "stall" else ""),
          tail(r1) + [where])
    local, remote = state()
    probs = check_state(truth, local, remote, delete, False, lmtp)
    check(not probs, f"after the faulty run: nothing doubled, nothing \\Seen or deleted "
          f"on the remote that is not local ({len(local)} local)",
          tail(r1) + [where] + probs)

    slot.arm()
    r2, took2 = run(te, TIMEOUT)
    slot.idle()
    local, remote = state()
    probs = check_state(truth, local, remote, delete, True, lmtp)
    check(r2.returncode == 0 and not probs,
          f"clean run: exit {r2.returncode}, every candidate local exactly once "
          f"({len(local)} local)",
          ["--- faulty run:"] + tail(r1, 8) + ["--- clean run:"] + tail(r2, 12) + [where] + probs)

    r3, _ = run(te, TIMEOUT)
    local3 = read_mailbox(pair.local, user, "INBOX", master=True)
    check(r3.returncode == 0 and copied(r3) == 0 and
          sorted(sha(m["bytes"]) for m in local3) == sorted(sha(m["bytes"]) for m in local),
          f"idempotence run: exit {r3.returncode}, copied={copied(r3)}", tail(r3))

    leaked = [f"run {k + 1}: {s[:6]}..." for k, r in enumerate((r1, r2, r3))
              for s in secrets(pair, user) if s in output(r)]
    check(not leaked, "no password in any output", leaked)
    diags.append(f"{name} exit {r1.returncode} in {took:.1f} s, then {r2.returncode} in "
                 f"{took2:.1f} s; {where}")
    te.cleanup()
    return checks, diags


def main():
    # The fault points are byte offsets in one LMTP connection's stream:
    # the worker's parallel LMTP connections (lmtp.c) would interleave
    # theirs.  t_lmtp.py cuts and kills in the middle of parallel ones.
    os.environ["IMAPSYNC_TEST_LMTP_CONNS"] = "1"
    t_start = time.monotonic()
    emit_lock = threading.Lock()
    with DovecotPair(name="faultproxy") as pair:
        slots = [Slot(pair, k) for k in range(JOBS)]
        try:
            # What the remote serves is the reference for every comparison.
            pair.remote.add_user("fmtru", remote_password("fmtru"))
            seed(pair.remote, "fmtru", "INBOX", MSGS)
            served = read_mailbox(pair.remote, "fmtru", "INBOX")
            tap.ok(len(served) == len(MSGS), f"the remote serves the {len(MSGS)} seeded messages")
            truth = Truth([m["bytes"] for m in served])
            self_test(truth)

            meas = {}
            for k, cfg in enumerate(CONFIGS):
                _, meas[cfg] = measure(pair, slots[0], cfg, f"fm{k:03d}")
            pts = plan(meas)
            if ONLY:
                pts = [p for p in pts if re.search(ONLY, " ".join(map(str, p)))]
            split = collections.Counter(f"{p[1]} {p[3]}" + (" (TLS)" if p[0] == "T" else "")
                                        for p in pts)
            tap.diag(f"{len(pts)} fault points: " + ", ".join(
                f"{k} {v}" for k, v in sorted(split.items())))

            free = queue.Queue()
            for s in slots:
                free.put(s)

            def job(n, pt):
                slot = free.get()
                try:
                    return fault_point(pair, slot, truth, n, pt)
                except Exception as e:
                    return [(False, f"[fp{n:03d} {pt}] raised {e!r}", traceback.format_exc())], []
                finally:
                    free.put(slot)

            with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as ex:
                futs = [ex.submit(job, n, pt) for n, pt in enumerate(pts, 1)]
                for f in concurrent.futures.as_completed(futs):
                    checks, diags = f.result()
                    with emit_lock:
                        for d in diags:
                            tap.diag(d)
                        for cond, what, detail in checks:
                            tap.ok(cond, what, detail)
        finally:
            for s in slots:
                s.close()
    tap.diag(f"fault proxy suite: {time.monotonic() - t_start:.0f} s")
    tap.done()


if __name__ == "__main__":
    main()
