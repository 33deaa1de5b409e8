#!/usr/bin/python3
"""INBOX-only retrieval against a real Dovecot pair: exactly once, \\Seen as
the marker, crash safety, deletion, quota, authentication failures."""

import collections
import datetime as dt
import fcntl
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, imap, make_message, read_mailbox, seed  # noqa: E402
from worker import Tap, TaskEnv, output  # noqa: E402

tap = Tap()
random.seed(20261122)


def msgid(raw):
    m = re.search(rb"^Message-ID:\s*(<[^>]+>)", raw, re.M | re.I)
    return m.group(1).decode() if m else None


def local_ids(pair, user):
    return collections.Counter(msgid(m["bytes"]) for m in
                               read_mailbox(pair.local, user, "INBOX", master=True))


def remote_flags(pair, user):
    return {msgid(m["bytes"]): m["flags"] for m in read_mailbox(pair.remote, user, "INBOX")}


def summary(r):
    m = re.search(r"summary: .*copied=(\d+) skipped=(\d+) deleted=(\d+)", output(r))
    return tuple(int(x) for x in m.groups()) if m else None


def test_basic(pair):
    pair.remote.add_user("bob", "remote-Pw\"x\\y")
    pair.local.add_user("bob", "bob-local-pw")
    d0 = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
    msgs = []
    for i in range(12):
        msgs.append({"bytes": make_message(100 + i, size=2000 + i * 37),
                     "flags": ["\\Seen"] if i % 4 == 0 else (["$Label1"] if i == 1 else []),
                     "internaldate": d0 + dt.timedelta(days=i)})
    seed(pair.remote, "bob", "INBOX", msgs)
    te = TaskEnv(pair, "bob")

    dry = te.run("--dry-run")
    tap.ok(dry.returncode == 0, "dry run exits 0", output(dry))
    tap.ok(output(dry).count("would deliver") == 9, "dry run lists the 9 unseen messages",
           output(dry))
    tap.ok(sum(local_ids(pair, "bob").values()) == 0, "dry run delivered nothing")
    tap.ok(sum("\\Seen" in f for f in remote_flags(pair, "bob").values()) == 3,
           "dry run marked nothing \\Seen on the remote")

    r = te.run()
    tap.ok(r.returncode == 0, "first run exits 0", output(r))
    tap.ok(summary(r) == (9, 0, 0), "summary says 9 copied", output(r))
    tap.ok("seen-elsewhere=3" in output(r), "summary counts the 3 messages already \\Seen",
           output(r))
    local = read_mailbox(pair.local, "bob", "INBOX", master=True)
    remote = read_mailbox(pair.remote, "bob", "INBOX")
    want = {msgid(m["bytes"]): m for m in msgs if "\\Seen" not in m["flags"]}
    got = {msgid(m["bytes"]): m for m in local}
    tap.ok(set(got) == set(want), "exactly the unseen messages arrived locally")
    tap.ok(all(got[k]["bytes"] == want[k]["bytes"] for k in got), "bytes are identical")
    rdates = {msgid(m["bytes"]): m["internaldate"] for m in remote}
    tap.ok(all(got[k]["internaldate"] == rdates[k] for k in got), "INTERNALDATE kept",
           [(got[k]["internaldate"], rdates[k]) for k in got])
    lab = [m for m in local if msgid(m["bytes"]) == msgid(msgs[1]["bytes"])]
    tap.ok(lab and "$Label1" in lab[0]["flags"] and "\\Seen" not in lab[0]["flags"],
           "keyword copied; the local copy stays unread", lab and lab[0]["flags"])
    tap.ok(all("\\Seen" in m["flags"] for m in remote), "every remote message is \\Seen now")

    r2 = te.run()
    tap.ok(r2.returncode == 0 and summary(r2) == (0, 0, 0), "rerun copies nothing", output(r2))

    # The user deletes a delivered message locally: it must not come back.
    conn = imap(pair.local, "bob", master=True)
    conn.select("INBOX")
    conn.uid("STORE", str(local[0]["uid"]), "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    # Someone marks a taken message unread on the remote: still not retaken.
    conn = imap(pair.remote, "bob")
    conn.select("INBOX")
    conn.uid("STORE", str(remote[1]["uid"]), "-FLAGS", "(\\Seen)")
    conn.logout()
    r3 = te.run()
    tap.ok(r3.returncode == 0 and summary(r3) == (0, 0, 0),
           "a message deleted locally or unmarked remotely is not re-imported", output(r3))
    tap.ok(sum(local_ids(pair, "bob").values()) == 8, "local INBOX holds 8 messages")

    # New mail arrives: only it is taken.
    seed(pair.remote, "bob", "INBOX", [make_message(900)])
    r4 = te.run()
    tap.ok(r4.returncode == 0 and summary(r4) == (1, 0, 0), "new mail is taken on the next run",
           output(r4))
    st = te.cmd("status", "bob")
    tap.ok(st.returncode == 0 and "lifetime: 4 runs" in st.stdout and "copied 10" in st.stdout,
           "status shows the runs and lifetime counters", output(st))
    ls = te.cmd("list")
    tap.ok(ls.returncode == 0 and re.search(r"^bob\s+inbox\s+15min\s+\S+ \S+\s+ok\s+1\s", ls.stdout, re.M),
           "list shows mode, schedule, last result and counts", output(ls))
    # Another client expunges 2 taken messages on the remote: their
    # entries can never matter again and leave the state.
    conn = imap(pair.remote, "bob")
    conn.select("INBOX")
    conn.uid("STORE", f"{remote[2]['uid']},{remote[3]['uid']}", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    r5 = te.run()
    st2 = te.cmd("status", "bob")
    tap.ok(r5.returncode == 0 and summary(r5) == (0, 0, 0) and
           "8 delivered and \\Seen" in st2.stdout,
           "entries of messages gone from the remote are dropped (10 -> 8)", output(st2))
    for r in (dry, r, r2, r3, r4, st, ls):
        if "remote-Pw" in output(r) or pair.master_password in output(r):
            tap.ok(False, "no password in any output")
            break
    else:
        tap.ok(True, "no password in any output (a password with quote and backslash logs in)")


def kill_sweep(te, max_step):
    """Kill the worker at journal step 1, then 2, ... max_step, each run
    resuming what the one before left; then let a run finish.  Every
    position in the journal's cycle (intent, sync, after APPEND, delivered,
    seen, commit) is hit at least once."""
    kills = 0
    for n in range(1, max_step + 1):
        r = te.run(env={"IMAPSYNC_TEST_KILL_AT": str(n)})
        if r.returncode == 100:
            kills += 1
        elif r.returncode != 0:
            tap.diag(output(r))
            return kills, False
    r = te.run()
    if r.returncode != 0:
        tap.diag(output(r))
    return kills, r.returncode == 0


def test_crash(pair):
    pair.remote.add_user("carol", "carol-pw")
    pair.local.add_user("carol", "carol-local")
    msgs = [make_message(2000 + i, size=600 + (i * 131) % 5000) for i in range(300)]
    # Two byte-identical messages: identity is the UID, so both are copied.
    msgs.append(msgs[5])
    seed(pair.remote, "carol", "INBOX", msgs)
    te = TaskEnv(pair, "carol")
    kills, finished = kill_sweep(te, 240)
    tap.ok(finished, f"retrieval finished after {kills} kills at journal steps")
    tap.diag(f"kill points tried at journal steps: {kills}")
    ids = local_ids(pair, "carol")
    want = collections.Counter(msgid(m) for m in msgs)
    tap.ok(ids == want, "after journal-step kills every message is local exactly once",
           f"missing={want - ids} extra={ids - want}")

    # Real SIGKILLs at random moments of a retrieval in progress.  New mail
    # arrives before every attempt, so there is always work to interrupt,
    # however fast the machine.
    more, real_kills = [], 0
    for attempt in range(200):
        chunk = [make_message(5000 + len(more) + i, size=3000 + 7 * i) for i in range(40)]
        seed(pair.remote, "carol", "INBOX", chunk)
        more += chunk
        p = subprocess.Popen(te.argv("run", "carol"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.002, 0.04))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            real_kills += 1
        p.wait()
        if real_kills >= 25:
            break
    r = te.run()
    tap.ok(r.returncode == 0, "a run after random SIGKILLs completes", output(r))
    tap.diag(f"random SIGKILLs delivered: {real_kills}")
    tap.ok(real_kills >= 25, f"25 runs were killed mid-flight ({real_kills} in {attempt + 1} attempts)")
    ids = local_ids(pair, "carol")
    want.update(msgid(m) for m in more)
    tap.ok(ids == want, "after random SIGKILLs every message is local exactly once",
           f"missing={want - ids} extra={ids - want}")
    flags = read_mailbox(pair.remote, "carol", "INBOX")
    tap.ok(all("\\Seen" in m["flags"] for m in flags), "every remote message is \\Seen")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0), "idempotence run copies 0", output(r))


def test_after_sync(pair):
    pair.remote.add_user("dave", "dave-pw")
    pair.local.add_user("dave", "dave-local")
    seed(pair.remote, "dave", "INBOX",
         [{"bytes": make_message(3000 + i), "flags": ["\\Seen"] if i < 2 else []}
          for i in range(7)])
    te = TaskEnv(pair, "dave", task_extra="delete = after-sync\n")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (5, 0, 5), "after-sync: 5 copied, 5 deleted",
           output(r))
    remote = read_mailbox(pair.remote, "dave", "INBOX")
    tap.ok(len(remote) == 2 and all("\\Seen" in m["flags"] for m in remote),
           "after-sync kept the 2 messages it never delivered")
    tap.ok(sum(local_ids(pair, "dave").values()) == 5, "the 5 are local")


def test_older_than(pair):
    pair.remote.add_user("erin", "erin-pw")
    pair.local.add_user("erin", "erin-local")
    now = dt.datetime.now(dt.timezone.utc)
    msgs = []
    for i in range(12):
        age = 10 * i          # 0 .. 110 days, spread over months
        msgs.append({"bytes": make_message(4000 + i), "internaldate": now - dt.timedelta(days=age, hours=1),
                     "flags": ["\\Seen"] if i % 3 == 0 else []})
    seed(pair.remote, "erin", "INBOX", msgs)
    te = TaskEnv(pair, "erin", task_extra="delete = older-than\ndelete_older_than_days = 45\n")
    r = te.run()
    old_imported = [i for i in range(12) if 10 * i > 46 and i % 3 != 0]
    old_never = [i for i in range(12) if 10 * i > 46 and i % 3 == 0]
    tap.ok(r.returncode == 0, "older-than run exits 0", output(r))
    remote_ids = set(msgid(m["bytes"]) for m in read_mailbox(pair.remote, "erin", "INBOX"))
    gone = {msgid(msgs[i]["bytes"]) for i in range(12)} - remote_ids
    tap.ok(gone == {msgid(msgs[i]["bytes"]) for i in old_imported},
           f"older-than deleted exactly the {len(old_imported)} old imported messages",
           f"gone={sorted(gone)}")
    tap.ok(f"kept {len(old_never)} old message(s) that were never imported" in output(r),
           "older-than says it kept the old never-imported ones", output(r))
    tap.ok(sum(local_ids(pair, "erin").values()) == 8, "all 8 unseen messages are local")


def test_quota(pair):
    pair.remote.add_user("fred", "fred-pw")
    pair.local.add_user("fred", "fred-local", quota_bytes=20000)
    big = make_message(6000, size=60000)
    seed(pair.remote, "fred", "INBOX", [make_message(6001, size=1000), big])
    te = TaskEnv(pair, "fred")
    r = te.run()
    tap.ok(r.returncode == 73, "over quota: exit code 73", output(r))
    tap.ok("over quota" in output(r) and "fred" in output(r), "the message names quota and user",
           output(r))
    flags = remote_flags(pair, "fred")
    tap.ok("\\Seen" not in flags[msgid(big)], "the refused message is not \\Seen on the remote")
    pair.local.set_quota("fred", 10_000_000)
    time.sleep(1.1)   # passwd-file reload is mtime-based (1 s granularity)
    r = te.run()
    tap.ok(r.returncode == 0, "after raising the quota the run succeeds", output(r))
    ids = local_ids(pair, "fred")
    tap.ok(ids[msgid(big)] == 1 and sum(ids.values()) == 2, "each message is local exactly once",
           ids)


def test_too_big(pair):
    pair.remote.add_user("mike", "mike-pw")
    pair.local.add_user("mike", "mike-local", max_mail_size=8000)
    small, big = make_message(9600, size=2000), make_message(9601, size=30000)
    seed(pair.remote, "mike", "INBOX", [small, big, make_message(9602, size=3000)])
    te = TaskEnv(pair, "mike")
    r = te.run()
    tap.ok(r.returncode == 2, "a message the local server refuses as too big: exit 2", output(r))
    tap.ok(summary(r) == (2, 1, 0) and "skipped" in output(r),
           "summary: 2 copied, 1 skipped, and the log says which", output(r))
    flags = remote_flags(pair, "mike")
    tap.ok("\\Seen" not in flags[msgid(big)] and "\\Seen" in flags[msgid(small)],
           "the skipped message stays unseen on the remote; the others are \\Seen")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0),
           "the skip is recorded: the next run does not retry it every time", output(r))
    st = te.cmd("status", "mike")
    tap.ok("1 skipped" in st.stdout, "status shows the skipped message", output(st))

    # Through LMTP Dovecot refuses the same message with 451 4.2.0, a
    # temporary reply: the run stops with 75, the message stays unseen
    # on the remote and is tried again next time (never lost, never
    # skipped on the server's temporary word).
    pair.remote.add_user("mick", "mick-pw")
    pair.local.add_user("mick", "mick-local", max_mail_size=8000)
    small, big = make_message(9650, size=2000), make_message(9651, size=30000)
    seed(pair.remote, "mick", "INBOX", [small, big])
    te = TaskEnv(pair, "mick", task_extra="delivery = lmtp\n")
    r = te.run()
    tap.ok(r.returncode == 75 and summary(r) == (1, 0, 0) and "451" in output(r),
           "lmtp: a 4xx reply is temporary (exit 75), the LMTP reply is shown", output(r))
    flags = remote_flags(pair, "mick")
    tap.ok("\\Seen" not in flags[msgid(big)] and "\\Seen" in flags[msgid(small)],
           "lmtp: the refused message stays unseen on the remote")
    pair.local.add_user("mick", "mick-local", max_mail_size=100000)
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (1, 0, 0),
           "lmtp: once the server takes it, the next run delivers it", output(r))
    tap.ok(sum(local_ids(pair, "mick").values()) == 2, "lmtp: each message once")


def fill(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096) > 0:
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_disk_full(pair):
    """The state directory's disk is full: the run stops before acting
    when its journal cannot be written (exit 73), or stops with 73/74 at
    the first write that fails, never with a message delivered that the
    journal does not know may be; with room again the next run converges
    to exactly one copy of everything."""
    pair.remote.add_user("nora", "nora-pw")
    pair.local.add_user("nora", "nora-local")
    first = [make_message(9800 + i) for i in range(3)]
    seed(pair.remote, "nora", "INBOX", first)
    te = TaskEnv(pair, "nora")
    mnt = os.path.join(te.base, "small")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", mnt], check=True)
    try:
        te.state_dir = mnt
        filler = os.path.join(mnt, "filler")
        fill(filler)
        r = te.run()
        tap.ok(r.returncode == 73 and "No space left" in output(r),
               "a journal that cannot be written: exit 73, and it says why", output(r))
        tap.ok(sum(local_ids(pair, "nora").values()) == 0 and
               all("\\Seen" not in f for f in remote_flags(pair, "nora").values()),
               "nothing was delivered or marked \\Seen without a journal")
        os.unlink(filler)
        r = te.run()
        tap.ok(r.returncode == 0 and summary(r) == (3, 0, 0), "with room: the 3 arrive", output(r))

        later = [make_message(9850 + i, size=4000) for i in range(5)]
        seed(pair.remote, "nora", "INBOX", later)
        fill(filler)
        r = te.run()
        tap.ok(r.returncode == 73 and "No space left" in output(r),
               "disk full in the middle of a run: exit 73, and it says why", output(r))
        os.unlink(filler)
        r = te.run()
        tap.ok(r.returncode == 0, "with room again the next run succeeds", output(r))
        tap.ok(local_ids(pair, "nora") == collections.Counter(msgid(m) for m in first + later),
               "every message local exactly once")
        tap.ok(all("\\Seen" in f for f in remote_flags(pair, "nora").values()),
               "every remote message \\Seen")
    finally:
        subprocess.run(["umount", "-l", mnt])


def test_auth(pair):
    pair.remote.add_user("gina", "gina-right")
    pair.local.add_user("gina", "gina-local")
    te = TaskEnv(pair, "gina", remote_password="WrongRemotePass1")
    r = te.run()
    tap.ok(r.returncode == 77, "wrong remote password: exit 77", output(r))
    tap.ok("remote" in output(r) and "AUTHENTICATIONFAILED" in output(r),
           "message says remote authentication failed", output(r))
    tap.ok("WrongRemotePass1" not in output(r), "the remote password is not printed")
    te2 = TaskEnv(pair, "gina", name="gina2", master_password="WrongMasterPass2")
    r2 = te2.run()
    tap.ok(r2.returncode == 77, "wrong master password: exit 77", output(r2))
    tap.ok("local" in output(r2) and "master" in output(r2),
           "message says the local master login failed", output(r2))
    tap.ok("WrongMasterPass2" not in output(r2) and pair.remote.password("gina") not in output(r2),
           "no password printed")
    tap.ok(output(r) != output(r2), "the two failures are told apart")


def test_lock(pair):
    pair.remote.add_user("hank", "hank-pw")
    pair.local.add_user("hank", "hank-local")
    te = TaskEnv(pair, "hank")
    os.makedirs(os.path.join(te.state_dir, "hank"), exist_ok=True)
    with open(os.path.join(te.state_dir, "hank", "lock"), "w") as f:
        f.write(f"{os.getpid()}\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        t0 = time.monotonic()
        r = te.run()
        took = time.monotonic() - t0
    tap.ok(r.returncode == 75, "a second concurrent run exits 75", output(r))
    tap.ok(f"pid {os.getpid()}" in output(r), "and names the pid holding the lock", output(r))
    tap.ok(took < 5, f"promptly ({took:.2f} s)")
    r = te.run()
    tap.ok(r.returncode == 0, "once the lock is free the run works", output(r))


def test_sigterm(pair):
    pair.remote.add_user("ivy", "ivy-pw")
    pair.local.add_user("ivy", "ivy-local")
    msgs = [make_message(7000 + i, size=20000) for i in range(400)]
    seed(pair.remote, "ivy", "INBOX", msgs)
    te = TaskEnv(pair, "ivy")
    p = subprocess.Popen(te.argv("run", "ivy"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=60)
    tap.ok(p.returncode in (0, 75), f"SIGTERM ends the run with 75 (or 0 if done): {p.returncode}",
           out)
    if p.returncode == 75:
        tap.ok("stopped by a signal" in out, "and says it was stopped", out)
    else:
        tap.ok(True, "run had finished before the signal (nothing to say)")
    r = te.run()
    tap.ok(r.returncode == 0, "the next run resumes", output(r))
    ids = local_ids(pair, "ivy")
    want = collections.Counter(msgid(m) for m in msgs)
    tap.ok(ids == want, "every message local exactly once",
           f"missing={len(want - ids)} {list(want - ids)[:5]} extra={len(ids - want)} {list(ids - want)[:5]}")


def test_sieve(pair):
    pair.remote.add_user("jack", "jack-pw")
    pair.local.add_user("jack", "jack-local")
    pair.local.set_sieve("jack", 'require ["fileinto", "mailbox"];\n'
                         'if header :contains "subject" "work" { fileinto :create "Work"; }\n')
    # A message the user flagged \Deleted in the local INBOX must survive.
    keep = make_message(8999, subject="user flagged this deleted")
    seed(pair.local, "jack", "INBOX", [{"bytes": keep, "flags": ["\\Deleted"]}], master=True)
    msgs = [make_message(9000 + i, subject=("work item %d" % i) if i % 2 else "private %d" % i)
            for i in range(6)]
    seed(pair.remote, "jack", "INBOX", msgs)
    te = TaskEnv(pair, "jack", task_extra="delivery = sieve\n")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (6, 0, 0), "sieve delivery: 6 copied", output(r))
    work = collections.Counter(msgid(m["bytes"]) for m in
                               read_mailbox(pair.local, "jack", "Work", master=True))
    inbox = collections.Counter(msgid(m["bytes"]) for m in
                                read_mailbox(pair.local, "jack", "INBOX", master=True))
    tap.ok(work == collections.Counter(msgid(msgs[i]) for i in (1, 3, 5)),
           "the user's rule filed the 3 work messages into Work", work)
    tap.ok(inbox == collections.Counter([msgid(keep)] + [msgid(msgs[i]) for i in (0, 2, 4)]),
           "INBOX holds the 3 others and the user's \\Deleted message survived", inbox)
    tap.ok(all("\\Seen" in m["flags"] for m in read_mailbox(pair.remote, "jack", "INBOX")),
           "every remote message is \\Seen")
    r = te.run()
    work2 = collections.Counter(msgid(m["bytes"]) for m in
                                read_mailbox(pair.local, "jack", "Work", master=True))
    tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0) and work2 == work,
           "rerun copies and files nothing again", output(r))


def test_lmtp(pair):
    pair.remote.add_user("kate", "kate-pw")
    pair.local.add_user("kate", "kate-local")
    pair.local.set_sieve("kate", 'require ["vacation"];\n'
                         'vacation :days 1 :subject "Away" "I am away until Monday.";\n')
    before = len(pair.local.sent_mail())
    msgs = [make_message(9500 + i, size=1500 + 100 * i) for i in range(3)]
    seed(pair.remote, "kate", "INBOX", msgs)
    te = TaskEnv(pair, "kate", task_extra="delivery = lmtp\n")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (3, 0, 0), "lmtp delivery: 3 copied", output(r))
    local = read_mailbox(pair.local, "kate", "INBOX", master=True)
    tap.ok(len(local) == 3 and all(any(m["bytes"].endswith(o) for m in local) for o in msgs),
           "each message arrived through LMTP with its bytes intact after the trace headers")
    tap.ok(all(b"Delivered-To: kate" in m["bytes"] for m in local),
           "the LMTP delivery path added Delivered-To (it really went through LMTP)")
    sent = pair.local.sent_mail()[before:]
    tap.ok(len(sent) >= 1 and any(b"I am away" in m["bytes"] for m in sent),
           "the vacation rule sent a reply", sent)
    tap.ok(any(b"sender9500@example.org" in m["bytes"] or
               any("sender9500@example.org" in a for a in m["args"]) for m in sent),
           "the reply goes to the original sender (envelope from Return-Path/From)", sent)
    tap.ok(all("\\Seen" in m["flags"] for m in read_mailbox(pair.remote, "kate", "INBOX")),
           "every remote message is \\Seen")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0), "rerun copies nothing", output(r))


def test_uidvalidity(pair):
    """The remote INBOX is rebuilt (new UIDVALIDITY) and its flags lost:
    mail delivered before is matched by content, not delivered again."""
    pair.remote.add_user("lena", "lena-pw")
    pair.local.add_user("lena", "lena-local")
    msgs = [make_message(9700 + i, size=900 + 50 * i) for i in range(5)]
    seed(pair.remote, "lena", "INBOX", msgs)
    te = TaskEnv(pair, "lena")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (5, 0, 0), "UIDVALIDITY case: 5 copied first",
           output(r))
    conn = imap(pair.remote, "lena")
    conn.select("INBOX")
    conn.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")
    conn.logout()
    pair.remote.doveadm("mailbox", "update", "--uid-validity", "4242", "-u", "lena", "INBOX")
    new = make_message(9799)
    seed(pair.remote, "lena", "INBOX", [new])
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (1, 0, 0) and "reconciled=5" in output(r),
           "after a UIDVALIDITY change only the new message is delivered, 5 matched by content",
           output(r))
    tap.ok("UIDVALIDITY is now 4242" in output(r), "the change is logged", output(r))
    ids = local_ids(pair, "lena")
    tap.ok(ids == collections.Counter(msgid(m) for m in msgs + [new]),
           "no redelivery storm: every message local exactly once", ids)
    tap.ok(all("\\Seen" in m["flags"] for m in read_mailbox(pair.remote, "lena", "INBOX")),
           "the matched messages are \\Seen again on the remote")


def main():
    with DovecotPair(name="inbox") as pair:
        for t in (test_basic, test_sieve, test_lmtp, test_uidvalidity, test_crash, test_after_sync, test_older_than, test_quota,
                  test_too_big, test_disk_full,
                  test_auth, test_lock, test_sigterm):
            try:
                t(pair)
            except Exception as e:  # a crash in one test must not hide the others
                import traceback
                tap.ok(False, f"{t.__name__} raised {e!r}", traceback.format_exc())
    tap.done()


if __name__ == "__main__":
    main()
