#!/usr/bin/python3
"""Issue 8: a hostile remote or a damaged state must never cost mail.

The remote is a real Dovecot, made hostile by a rewriting proxy in front
of it (tests/lib/rewriteproxy.py) where a case needs a server that says
what Dovecot would not; the local side is a real Dovecot with its master
user.  Each case checks the exit code and, above all, the mail: what is
local (exactly once), what is \\Seen and what is left on the remote."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import (DovecotPair, imap, make_message, parse_internaldate,  # noqa: E402
                     read_mailbox, seed)
from rewriteproxy import RewriteProxy, with_literal  # noqa: E402
from worker import Tap, TaskEnv, one_copy_each, output  # noqa: E402

tap = Tap()
UID_RE = re.compile(rb"\bUID (\d+)")


def uid_of(line):
    m = UID_RE.search(line)
    return int(m.group(1)) if m else None


def digests(msgs):
    return sorted(hashlib.sha256(m["bytes"]).hexdigest() for m in msgs)


def local_msgs(pair, user):
    return read_mailbox(pair.local, user, "INBOX", master=True)


def remote_msgs(pair, user):
    return read_mailbox(pair.remote, user, "INBOX")


def setup(pair, name, messages, local_seed=()):
    """A remote and a local user of that name; the remote INBOX seeded."""
    pair.remote.add_user(name)
    pair.local.add_user(name)
    if messages:
        seed(pair.remote, name, "INBOX", messages)
    if local_seed:
        seed(pair.local, name, "INBOX", list(local_seed), master=True)


def task_through(pair, name, proxy_port, extra=""):
    """A task whose remote is the proxy (plain text: the proxy reads it)."""
    te = TaskEnv(pair, name, security="none", task_extra=extra)
    te.write_task(name, name, "none", proxy_port, extra)
    return te


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


# -------------------------------------------------------------------------
# case 1: server strings re-quoted or refused, never sent raw

def case_injection(pair):
    name = "inject"
    attack = (b"Subject: attack\r\n\r\n"
              b"x1 UID STORE 1:* +FLAGS.SILENT (\\Deleted)\r\nx2 EXPUNGE\r\n")
    msgs = [make_message(1), attack, make_message(3), make_message(4)]
    own = [make_message(100), make_message(101)]
    setup(pair, name, msgs, local_seed=own)

    def rewrite(kind, data, state):
        if kind != "literal":
            return data
        line, body = data
        uid = uid_of(line)
        date = re.compile(rb'INTERNALDATE "[^"]*"')
        if uid == 2:    # a legal quoted string ending in a backslash
            line = date.sub(b'INTERNALDATE "01-Jan-2024 10:00:00 +0000\\\\\\\\"', line)
        elif uid == 3:  # a quote inside
            line = date.sub(b'INTERNALDATE "01-Jan-2024 \\\\"10:00:00\\\\" +0000"', line)
        elif uid == 4:  # a valid date, day space-padded, odd case
            line = date.sub(b'INTERNALDATE " 7-mAR-2023 08:09:10 -0130"', line)
        return line + body

    proxy = RewriteProxy(pair.remote.imap_port, rewrite)
    try:
        te = task_through(pair, name, proxy.port)
        r = te.run()
    finally:
        proxy.stop()
    tap.ok(r.returncode == 0, "1: hostile INTERNALDATEs: the run succeeds", output(r))
    local = local_msgs(pair, name)
    tap.ok(digests(local) == digests([{"bytes": b} for b in own + msgs]),
           "1: the local user's own mail is intact and every message arrived once",
           [m["bytes"][:60] for m in local])
    tap.ok(not any("\\Deleted" in m["flags"] for m in local),
           "1: nothing was flagged \\Deleted by an injected command")
    tap.ok(output(r).count("invalid INTERNALDATE") == 2,
           "1: both invalid dates are reported (the local server dates them now)", output(r))
    by_subject = {m["bytes"].split(b"\r\n")[2]: m for m in local}
    four = [m for m in local if m["bytes"] == msgs[3]]
    # The same instant: Dovecot answers in its own time zone.
    tap.ok(len(four) == 1 and parse_internaldate(four[0]["internaldate"]) ==
           parse_internaldate("07-Mar-2023 08:09:10 -0130"),
           "1: a valid date is re-formatted from its fields and kept",
           four[0]["internaldate"] if four else by_subject)
    tap.ok(all("\\Seen" in m["flags"] for m in remote_msgs(pair, name)),
           "1: every message is \\Seen on the remote")
    tap.ok(" BAD " not in output(r) and "internal-error" not in output(r),
           "1: the local server never answered BAD (so never read text as commands)",
           output(r))


# -------------------------------------------------------------------------
# cases 3 and 9: only the exact section, with its announced size

def case_partial_body(pair):
    name = "partial"
    msgs = [make_message(i, size=2000 + i) for i in range(1, 6)]
    setup(pair, name, msgs)

    def rewrite(kind, data, state):
        if kind != "literal":
            return data
        line, body = data
        uid = uid_of(line)
        if uid == 1:
            head = body[:body.index(b"\r\n\r\n") + 4]
            return with_literal(line.replace(b"BODY[]", b"BODY[HEADER]"), head) + head
        if uid == 2:
            part = body[:100]
            return with_literal(line.replace(b"BODY[]", b"BODY[]<0>"), part) + part
        if uid == 3:    # BODY[] cut short, RFC822.SIZE as it is
            part = body[:1000]
            return with_literal(line, part) + part
        if uid == 4:    # no BODY[] at all
            return re.sub(rb" BODY\[\] \{\d+\}\r\n$", b"", line)
        return line + body

    proxy = RewriteProxy(pair.remote.imap_port, rewrite)
    try:
        te = task_through(pair, name, proxy.port, "delete = after-sync\n")
        r = te.run()
    finally:
        proxy.stop()
    tap.ok(r.returncode == 76, "3/9: partial, truncated or missing bodies: exit 76", output(r))
    tap.ok("no BODY[]" in output(r) and output(r).count("RFC822.SIZE is") == 1,
           "3/9: each is named in a warning", output(r))
    local = local_msgs(pair, name)
    tap.ok(digests(local) == digests([{"bytes": msgs[4]}]),
           "3/9: only the intact message was delivered", [len(m["bytes"]) for m in local])
    remote = remote_msgs(pair, name)
    tap.ok(sorted(m["uid"] for m in remote) == [1, 2, 3, 4] and
           not any("\\Seen" in m["flags"] for m in remote),
           "3/9: the four others stay on the remote, unseen, not deleted",
           [(m["uid"], m["flags"]) for m in remote])
    # The next run without the hostile proxy takes them, exactly once.
    te.write_task(name, name, "none", pair.remote.imap_port, "delete = after-sync\n")
    r = te.run()
    local = local_msgs(pair, name)
    tap.ok(r.returncode == 0 and digests(local) == digests([{"bytes": b} for b in msgs]),
           "3/9: the next run converges: every message local exactly once", output(r))
    tap.ok(remote_msgs(pair, name) == [], "3/9: and deleted on the remote after delivery")


# -------------------------------------------------------------------------
# case 4: a message-scoped refusal skips that message only

def case_refusals(pair):
    name = "refusal"
    msgs = [make_message(i) for i in range(1, 7)]
    setup(pair, name, msgs)
    long_kw = b"k" * 80

    def rewrite(kind, data, state):
        if kind != "literal":
            return data
        line, body = data
        uid = uid_of(line)
        flags = re.compile(rb"FLAGS \([^)]*\)")
        if uid == 2:
            line = flags.sub(b"FLAGS (\\\\Forwarded \xc3\xa9t\xc3\xa9 $Ok a]b)", line)
        elif uid == 3:
            line = flags.sub(b"FLAGS (\\\\Flagged " + long_kw + b" $Label1)", line)
        elif uid == 4:  # an empty message
            line = re.sub(rb"RFC822\.SIZE \d+", b"RFC822.SIZE 0", line)
            return with_literal(line, b"")
        elif uid == 5:
            line = flags.sub(b"FLAGS (\\\\Recent \\\\Answered)", line)
        return line + body

    proxy = RewriteProxy(pair.remote.imap_port, rewrite)
    try:
        te = task_through(pair, name, proxy.port)
        r = te.run()
        tap.ok(r.returncode == 2, "4: one message cannot be stored: exit 2, not a failed batch",
               output(r))
        local = local_msgs(pair, name)
        want = [msgs[i] for i in (0, 1, 2, 4, 5)]
        tap.ok(digests(local) == digests([{"bytes": b} for b in want]),
               "4: every other message arrived, once", [m["bytes"][:40] for m in local])
        flags = {m["bytes"]: m["flags"] for m in local}
        tap.ok(flags.get(msgs[1]) == ["$Ok"], "4: unknown system flag, 8-bit and non-atom "
               "keywords dropped, a valid keyword kept", flags.get(msgs[1]))
        tap.ok("\\Flagged" in flags.get(msgs[2], []) and
               long_kw.decode() not in flags.get(msgs[2], []),
               "4: a keyword the local server refuses: retried without keywords, "
               "system flags kept", flags.get(msgs[2]))
        tap.ok(flags.get(msgs[4]) == ["\\Answered"], "4: \\Recent dropped, \\Answered kept",
               flags.get(msgs[4]))
        tap.ok("empty message" in output(r), "4: the empty message is named", output(r))
        r = te.run()
        tap.ok(r.returncode == 0 and "copied=0" in output(r),
               "4: the next run has nothing left to do (the skip is recorded)", output(r))
    finally:
        proxy.stop()


# -------------------------------------------------------------------------
# case 2: deletion only of mail proven imported by this task

def case_foreign_state(pair):
    msgs = [make_message(i) for i in range(1, 31)]
    setup(pair, "shared", msgs)
    pair.local.add_user("other")
    a = TaskEnv(pair, "shared", name="taska")
    r = a.run()
    tap.ok(r.returncode == 0 and len(local_msgs(pair, "shared")) == 30,
           "2: task A imports 30 messages (delete = never)", output(r))
    # Task B: same remote account, another local user, after-sync; A's
    # state copied in.
    b = TaskEnv(pair, "shared", local_user="other", name="taskb",
                task_extra="delete = after-sync\n")
    shutil.copytree(os.path.join(a.state_dir, "taska"), os.path.join(b.state_dir, "taskb"))
    os.remove(os.path.join(b.state_dir, "taskb", "lock"))
    r = b.run()
    tap.ok(r.returncode == 65, "2: another task's state is refused: exit 65", output(r))
    tap.ok("taska" in output(r), "2: and the error names its owner", output(r))
    tap.ok(len(remote_msgs(pair, "shared")) == 30, "2: nothing was deleted on the remote")

    # One changed UID digit in the snapshot of a task with after-sync.
    name = "digit"
    setup(pair, name, [make_message(i) for i in range(1, 11)])
    te = TaskEnv(pair, name)
    te.run()
    # The INBOX's own snapshot (state.<hash>; "state" is the index).
    sdir = os.path.join(te.state_dir, name)
    state = next(os.path.join(sdir, f) for f in sorted(os.listdir(sdir))
                 if f.startswith("state.") and not f.endswith(".new"))
    text = open(state).read()
    text2 = re.sub(r"^(S INBOX \d+ )3 ", r"\g<1>4 ", text, count=1, flags=re.M)
    tap.ok(text2 != text, "2: a UID digit changed in the snapshot")
    open(state, "w").write(text2)
    te.write_task(name, name, "starttls", pair.remote.imap_port, "delete = after-sync\n")
    r = te.run()
    tap.ok(r.returncode == 65 and "damaged" in output(r),
           "2: a damaged snapshot is refused: exit 65", output(r))
    tap.ok(len(remote_msgs(pair, name)) == 10, "2: nothing was deleted on the remote")

    # A version 1 state (no owner, no checksum) whose entry for UID 3
    # records the content of UID 4: the remote message is checked before
    # it is deleted.
    name = "legacy"
    lmsgs = [make_message(i, size=900 + i) for i in range(1, 6)]
    setup(pair, name, lmsgs)
    conn = imap(pair.remote, name)
    conn.select("INBOX")
    uv = int(conn.untagged_responses["UIDVALIDITY"][0])
    conn.store("1:*", "+FLAGS", "\\Seen")
    conn.logout()
    te = TaskEnv(pair, name, task_extra="delete = after-sync\n")
    os.makedirs(os.path.join(te.state_dir, name))
    lines = ["imapsync-task-state 1"]
    for uid in range(1, 6):
        src = lmsgs[uid] if uid == 3 else lmsgs[uid - 1]
        lines.append(f"S INBOX {uv} {uid} {len(src)} {fnv1a64(src):016x} 0 0 0")
    open(os.path.join(te.state_dir, name, "state"), "w").write("\n".join(lines) + "\n")
    r = te.run()
    tap.ok(r.returncode == 65 and "remote UID 3" in output(r),
           "2: a state entry that does not match the remote message stops the run: exit 65",
           output(r))
    tap.ok(len(remote_msgs(pair, name)) == 5, "2: and nothing was deleted")
    # The same state with every entry right: deletion goes ahead.
    lines = ["imapsync-task-state 1"]
    for uid in range(1, 6):
        src = lmsgs[uid - 1]
        lines.append(f"S INBOX {uv} {uid} {len(src)} {fnv1a64(src):016x} 0 0 0")
    open(os.path.join(te.state_dir, name, "state"), "w").write("\n".join(lines) + "\n")
    os.remove(os.path.join(te.state_dir, name, "journal"))
    r = te.run()
    tap.ok(r.returncode == 0 and "deleted=5" in output(r),
           "2: a version 1 state whose entries match: read, verified, deleted=5", output(r))
    text = open(os.path.join(te.state_dir, name, "state")).read()
    tap.ok(text.startswith("imapsync-task-state 2\nowner task=legacy%20remote=legacy@"),
           "2: and rewritten as version 2", text[:200])


# -------------------------------------------------------------------------
# case 16: a journal cut at a line boundary

def case_truncated_journal(pair):
    name = "trunc"
    setup(pair, name, [make_message(i) for i in range(1, 6)])
    te = TaskEnv(pair, name)
    # Stop the run right after its intents were synced (the 7th journal step).
    r = te.run(env={"IMAPSYNC_TEST_KILL_AT": "7"})
    jpath = os.path.join(te.state_dir, name, "journal")
    text = open(jpath, "rb").read()
    lines = text.split(b"\n")[:-1]
    tap.ok(r.returncode == 100 and sum(1 for x in lines if x.startswith(b"I ")) >= 2,
           "16: a run stopped with intents in its journal", (r.returncode, text))
    open(jpath, "wb").write(b"\n".join(lines[:-1]) + b"\n")
    before = len(local_msgs(pair, name))
    r = te.run()
    tap.ok(r.returncode == 65 and "missing" in output(r),
           "16: the journal cut at a line boundary is refused: exit 65", output(r))
    tap.ok(len(local_msgs(pair, name)) == before and
           not any("\\Seen" in m["flags"] for m in remote_msgs(pair, name)),
           "16: nothing was delivered or marked on its word")


# -------------------------------------------------------------------------
# cases 6, 7, 8, 15: a kill at every journal step, then a normal run

def reset_remote_seen(pair, user):
    conn = imap(pair.remote, user)
    conn.select("INBOX")
    conn.store("1:*", "-FLAGS", "\\Seen")
    conn.logout()


def kill_sweep(pair, label, user, want, extra="", proxy_rewrite=None, before_rerun=None,
               max_points=60):
    """For N = 1, 2, ...: fresh local user and state, run killed at step N,
    then a normal run; the local INBOX must hold want (bytes) exactly
    once each.  Stops when a run is no longer killed.  Returns the number
    of kill points and the failures."""
    proxy = RewriteProxy(pair.remote.imap_port, proxy_rewrite) if proxy_rewrite else None
    port = proxy.port if proxy else pair.remote.imap_port
    failures, points, slow = [], 0, 0.0
    try:
        for n in range(1, max_points + 1):
            local = f"{label}u{n}"
            pair.local.add_user(local)
            reset_remote_seen(pair, user)
            te = TaskEnv(pair, user, local_user=local, name=f"{label}{n}", security="none")
            te.write_task(local, user, "none", port, extra)
            r = te.run(env={"IMAPSYNC_TEST_KILL_AT": str(n)})
            killed = r.returncode == 100
            if before_rerun:
                before_rerun(te)
            t0 = time.monotonic()
            r2 = te.run()
            slow = max(slow, time.monotonic() - t0)
            got = local_msgs(pair, local)
            if r2.returncode not in (0, 2) or not one_copy_each(got, want):
                failures.append((n, r.returncode, r2.returncode, len(got), output(r2)[-600:]))
            points += killed
            te.cleanup()
            if not killed:
                break
    finally:
        if proxy:
            proxy.stop()
    return points, failures, slow


def case_kill_sweeps(pair):
    # 7: two byte-identical messages through LMTP.
    user = "twins"
    twin, third = make_message(7), make_message(8)
    setup(pair, user, [twin, twin, third])
    points, failures, _ = kill_sweep(pair, "tw", user, [twin, twin, third],
                                     extra="delivery = lmtp\n")
    tap.ok(points >= 5 and not failures,
           f"7: LMTP, two identical messages: {points} kill points, each converges to "
           "one copy per remote message", failures)

    # 6: a remote that sends bare LF and no final newline; the local
    # server stores CRLF: reconciliation still recognizes its copy.
    user = "barelf"
    plain = [make_message(i) for i in (1, 2, 3)]
    setup(pair, user, plain)

    def bare_lf(kind, data, state):
        if kind != "literal":
            return data
        line, body = data
        if uid_of(line) == 2:
            body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
            line = re.sub(rb"RFC822\.SIZE \d+", b"RFC822.SIZE %d" % len(body), line)
            return with_literal(line, body) + body
        return line + body

    for delivery in ("append", "lmtp"):
        points, failures, _ = kill_sweep(pair, "lf" + delivery[0], user, plain,
                                         extra=f"delivery = {delivery}\n",
                                         proxy_rewrite=bare_lf)
        tap.ok(points >= 5 and not failures,
               f"6: bare LF, no final newline ({delivery}): {points} kill points, "
               "each converges to exactly one copy", failures)

    # 15: the Sieve path after a crash (LeakSanitizer in the ASan build).
    user = "sieve"
    smsgs = [make_message(i) for i in (1, 2, 3)]
    setup(pair, user, smsgs)
    points, failures, _ = kill_sweep(pair, "sv", user, smsgs, extra="delivery = sieve\n")
    tap.ok(points >= 5 and not failures,
           f"15: delivery = sieve: {points} kill points, each converges cleanly", failures)

    # 8: the clock stepped back one hour after the crash.  A run is
    # stopped right after its APPEND (the journal still says "in
    # flight"); the local copy is removed, as if the server had not
    # finished saving it, and the lock's time (the last sign of life) set
    # one hour ahead.  The next run waits at most the 10 s grace, then
    # delivers the message again: once.
    user = "clock"
    cmsgs = [make_message(1)]
    setup(pair, user, cmsgs)
    found = None
    for n in range(1, 20):
        local = f"cku{n}"
        pair.local.add_user(local)
        reset_remote_seen(pair, user)
        te = TaskEnv(pair, user, local_user=local, name=f"ck{n}")
        r = te.run(env={"IMAPSYNC_TEST_KILL_AT": str(n)})
        journal = open(os.path.join(te.state_dir, te.name, "journal")).read()
        if r.returncode == 100 and "\nB " in journal and local_msgs(pair, local):
            found = (te, local)
            break
    tap.ok(found is not None, "8: a run stopped with its APPEND done but unconfirmed")
    if found:
        te, local = found
        conn = imap(pair.local, local, master=True)
        conn.select("INBOX")
        conn.store("1:*", "+FLAGS", "\\Deleted")
        conn.expunge()
        conn.logout()
        lock = os.path.join(te.state_dir, te.name, "lock")
        future = time.time() + 3600
        os.utime(lock, (future, future))
        t0 = time.monotonic()
        r = te.run(timeout=120)
        took = time.monotonic() - t0
        tap.ok(r.returncode == 0 and 5 <= took < 25,
               f"8: clock stepped back 1 h: the wait is bounded by the grace ({took:.1f} s)",
               output(r))
        tap.ok(one_copy_each(local_msgs(pair, local), cmsgs),
               "8: and the message is local exactly once")


# -------------------------------------------------------------------------
# case 5: a run killed while the local LMTP server still holds a delivery

class LmtpStall(threading.Thread):
    """Between the worker and the local LMTP server.  On the first
    connection, after DATA it stops reading for `stall` seconds, then
    takes the message; when the final dot arrives it calls on_dot() and
    holds the dot `hold` seconds before the server gets it."""

    def __init__(self, port, stall, hold, on_dot):
        super().__init__(daemon=True)
        self.upstream = ("127.0.0.1", port)
        self.stall, self.hold, self.on_dot = stall, hold, on_dot
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.first = True
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            first, self.first = self.first, False
            threading.Thread(target=self.serve, args=(c, first), daemon=True).start()

    def serve(self, c, first):
        s = socket.create_connection(self.upstream)

        def down():
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    c.sendall(d)
            except OSError:
                pass
        threading.Thread(target=down, daemon=True).start()
        buf, in_data = b"", False
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if not first:
                    s.sendall(d)
                    continue
                buf += d
                if not in_data and b"DATA\r\n" in buf:
                    in_data = True
                    s.sendall(buf)
                    buf = b""
                    time.sleep(self.stall)
                    continue
                if in_data and buf.endswith(b"\r\n.\r\n"):
                    s.sendall(buf[:-3])
                    self.on_dot()
                    time.sleep(self.hold)
                    s.sendall(buf[-3:])
                    buf, first = b"", False
                elif not in_data:
                    s.sendall(buf)
                    buf = b""
        except OSError:
            pass

    def stop(self):
        self.sock.close()


def case_lmtp_in_flight(pair):
    name = "lmtpgrace"
    msgs = [make_message(1, size=3000)]
    setup(pair, name, msgs)
    te = TaskEnv(pair, name, task_extra="delivery = lmtp\n")
    procs = []
    proxy = LmtpStall(pair.local.lmtp_port, stall=11, hold=3,
                      on_dot=lambda: procs and procs[0].kill())
    conf = os.path.join(te.config_dir, "imapsync-task.conf")
    text = open(conf).read()
    open(conf, "w").write(re.sub(r"lmtp = .*", f"lmtp = 127.0.0.1:{proxy.port}", text))
    env = dict(os.environ)
    for k in ("JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        env.pop(k, None)
    lock = os.path.join(te.state_dir, name, "lock")
    try:
        procs.append(subprocess.Popen(te.argv("run", name), env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        t0 = time.time()
        procs[0].wait(timeout=60)
        alive = os.stat(lock).st_mtime - t0 if os.path.exists(lock) else -1
        tap.ok(procs[0].returncode == -9, "5: the run was killed with its message at the "
               "LMTP server, not yet confirmed", procs[0].returncode)
        tap.ok(alive > 9, "5: its last sign of life is from the end, not the start, of "
               f"the delivery ({alive:.1f} s after the start)")
        r = te.run()
    finally:
        proxy.stop()
    time.sleep(1)
    tap.ok(r.returncode == 0 and one_copy_each(local_msgs(pair, name), msgs),
           "5: the next run waits for the delivery to complete: one copy, not two",
           output(r) + repr([m["bytes"][:80] for m in local_msgs(pair, name)]))


def main():
    with DovecotPair(name="robust") as pair:
        case_injection(pair)
        case_partial_body(pair)
        case_refusals(pair)
        case_foreign_state(pair)
        case_truncated_journal(pair)
        case_lmtp_in_flight(pair)
        case_kill_sweeps(pair)
    tap.done()


if __name__ == "__main__":
    main()
