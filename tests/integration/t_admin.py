#!/usr/bin/python3
"""Issue 11, as an administrator meets it, against a real Dovecot pair:

1. one run per account at a time: two tasks for one remote account and
   one local user started at the same moment deliver every message once;
   the second waits for the first, or (--lock-wait 0) exits 75 naming it;
   check warns about the duplicate;
2. hand runs never break the service: a run as root of a task whose state
   belongs to another user (the service's) refuses and names the systemctl
   command; run history survives a run that cannot read it;
3. the dry run predicts exactly: its would deliver / would mark \\Seen /
   would delete lines are what the real run then does, for delete = never,
   after-sync and older-than (folders = inbox) and folders = all with
   after-sync."""

import collections
import datetime as dt
import fcntl
import os
import pwd
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, read_mailbox, seed  # noqa: E402
from worker import Tap, TaskEnv, output  # noqa: E402

tap = Tap()


def msgid(raw):
    m = re.search(rb"^Message-ID:\s*(<[^>]+>)", raw, re.M | re.I)
    return m.group(1).decode() if m else None


def summary(r):
    m = re.search(r"summary: (.*)$", output(r), re.M)
    if not m:
        return {}
    return dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)


def clean_env():
    e = dict(os.environ)
    for k in ("JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        e.pop(k, None)
    return e


def fnv1a64(text):
    h = 0xcbf29ce484222325
    for b in text.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def local_counter(pair, user, folder="INBOX"):
    """Message-IDs of a local folder and how often each is there (an
    empty Counter while the folder does not exist)."""
    try:
        msgs = read_mailbox(pair.local, user, folder, master=True)
    except Exception as e:          # noqa: BLE001 - EXAMINE of a missing folder
        if "EXAMINE" not in str(e):
            raise
        msgs = []
    return collections.Counter(msgid(m["bytes"]) for m in msgs)


# -------------------------------------------------------------------------
# 1. one run per account at a time

def two_tasks(pair, remote_user, local_user, names, task_extra=""):
    """Tasks names[0] and names[1], one config dir and one state root."""
    a = TaskEnv(pair, remote_user, local_user=local_user, name=names[0],
                task_extra=task_extra)
    b = TaskEnv(pair, remote_user, local_user=local_user, name=names[1],
                task_extra=task_extra, base=a.base)
    return a, b


def run_together(tasks, *args):
    procs = [subprocess.Popen(t.argv("run", *args, t.name), env=clean_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for t in tasks]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    return [subprocess.CompletedProcess(p.args, p.returncode, o, "")
            for p, o in zip(procs, outs)]


def test_account_lock(pair):
    pair.remote.add_user("carol", "carol-remote-pw")
    pair.local.add_user("carol", "carol-local-pw")
    msgs = [make_message(1000 + i, size=3000) for i in range(300)]
    seed(pair.remote, "carol", "INBOX", msgs)
    a, b = two_tasks(pair, "carol", "carol", ("carol-a", "carol-b"))

    ra, rb = run_together((a, b))
    tap.ok(ra.returncode == 0 and rb.returncode == 0,
           f"two tasks for one account started at once: both exit 0 "
           f"({ra.returncode}, {rb.returncode})", output(ra) + output(rb))
    got = local_counter(pair, "carol")
    want = {msgid(m) for m in msgs}
    tap.ok(set(got) == want and all(n == 1 for n in got.values()),
           f"every one of the 300 messages arrived exactly once "
           f"({sum(got.values())} local, {len(got)} distinct)")
    copied = sorted(int(summary(r).get("copied", -1)) for r in (ra, rb))
    tap.ok(copied == [0, 300], f"one run copied 300, the other 0 ({copied})",
           output(ra) + output(rb))
    waited = [(r, other) for r, other in ((ra, "carol-b"), (rb, "carol-a"))
              if re.search(r"is in use by task %s \(pid \d+\): waiting" % other, output(r))]
    tap.ok(len(waited) == 1,
           "the second run waited, naming the task that held the account",
           output(ra) + output(rb))

    # --lock-wait 0: the second gives up at once with 75, naming the other.
    msgs2 = [make_message(2000 + i, size=3000) for i in range(300)]
    seed(pair.remote, "carol", "INBOX", msgs2)
    ra, rb = run_together((a, b), "--lock-wait", "0")
    codes = sorted((ra.returncode, rb.returncode))
    tap.ok(codes == [0, 75], f"--lock-wait 0: one run exits 0, the other 75 ({codes})",
           output(ra) + output(rb))
    loser, other = (ra, "carol-b") if ra.returncode == 75 else (rb, "carol-a")
    tap.ok(re.search(r"in use by task %s \(pid \d+\)" % other, output(loser)) is not None
           and "verdict=temporary-failure" in output(loser),
           "the run that gave up names the task holding the account", output(loser))
    got = local_counter(pair, "carol")
    want |= {msgid(m) for m in msgs2}
    tap.ok(set(got) == want and all(n == 1 for n in got.values()),
           f"still every message exactly once ({sum(got.values())} local, 600 sent)")

    # A run that holds the local user's lock file is named in the refusal
    # (the lock named by a hash of the local user, under ROOT/.locks).
    seed(pair.remote, "carol", "INBOX", [make_message(2999)])
    lock = os.path.join(a.state_dir, ".locks", f"local-{fnv1a64('carol')}.lock")
    tap.ok(os.path.exists(lock), "the local user's lock file is ROOT/.locks/local-HASH.lock",
           sorted(os.listdir(os.path.join(a.state_dir, ".locks"))))
    with open(lock, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write("task=someone-else pid=4242\n")
        f.flush()
        r = a.run("--lock-wait", "1")
    tap.ok(r.returncode == 75 and "local user carol is in use by task someone-else (pid 4242)"
           in output(r), "a held local-user lock: exit 75 after the wait, naming its holder",
           output(r))
    r = a.run()
    tap.ok(r.returncode == 0 and summary(r).get("copied") == "1",
           "once free, the next run takes the message", output(r))

    # check: the duplicate is reported (and only it), host case ignored.
    ck = a.cmd("check")
    tap.ok(ck.returncode == 0 and re.search(
        r"warning: tasks carol-a and carol-b both copy remote account "
        r"carol@127\.0\.0\.1:\d+ into local user carol: a duplicate", output(ck)),
        "check warns that two tasks copy one remote account into one local user",
        output(ck))
    tasks = os.path.join(a.config_dir, "tasks")
    for name, host, user, local in (("x1", "Mail.Example.ORG", "u", "l"),
                                    ("x2", "mail.example.org", "u", "l"),
                                    ("x3", "mail.example.org", "u", "other"),
                                    ("x4", "mail.example.org", "v", "l")):
        with open(os.path.join(tasks, f"{name}.ini"), "w") as f:
            f.write(f"[task]\nlocal_user = {local}\ninterval = 1h\n[remote]\nhost = {host}\n"
                    f"user = {user}\n"
                    "security = tls\n")
        with open(os.path.join(tasks, f"{name}.pwd"), "w") as f:
            f.write("pw\n")
        os.chmod(os.path.join(tasks, f"{name}.pwd"), 0o600)
    ck = a.cmd("check", "x1")
    warn = [l for l in output(ck).splitlines() if l.startswith("warning: tasks")]
    tap.ok(len(warn) == 1 and "tasks x1 and x2" in warn[0] and "u@mail.example.org:993" in warn[0],
           "check NAME: the duplicate differing only in host case is found, and no other",
           output(ck))
    for name in ("x1", "x2", "x3", "x4"):
        os.unlink(os.path.join(tasks, f"{name}.ini"))
        os.unlink(os.path.join(tasks, f"{name}.pwd"))


# -------------------------------------------------------------------------
# 2. hand runs never break the service

NOBODY = pwd.getpwnam("nobody")


def tree_owners(path):
    owners = {}
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(d, n)
            owners[os.path.relpath(p, path)] = os.lstat(p).st_uid
    owners["."] = os.lstat(path).st_uid
    return owners


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), uid, gid)


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)


def run_as_service(te, *args):
    """The service stand-in: the task run as the state's owner (nobody)."""
    return subprocess.run(te.argv("run", *args, te.name), env=clean_env(),
                          preexec_fn=as_nobody, capture_output=True, text=True, timeout=300)


def snapshot(path):
    out = {}
    for d, _, files in os.walk(path):
        for n in files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = (st.st_uid, st.st_mtime_ns, f.read())
    return out


def test_hand_run(pair):
    pair.remote.add_user("erin", "erin-remote-pw")
    pair.local.add_user("erin", "erin-local-pw")
    seed(pair.remote, "erin", "INBOX", [make_message(3000 + i) for i in range(5)])
    te = TaskEnv(pair, "erin")
    r = te.run()
    tap.ok(r.returncode == 0, "first run (as root, state created as root's) exits 0", output(r))
    r = te.run()
    tap.ok(r.returncode == 0, "second run exits 0", output(r))

    # The service takes the state over (systemd chowns it to the dynamic
    # user); nobody stands in for that user.  Everyone may reach the
    # configuration and the state root, as in /etc and /var/lib.
    for d in (te.base, te.config_dir, os.path.join(te.config_dir, "tasks"), te.state_dir):
        os.chmod(d, 0o755)
    for n in ("master.pwd", os.path.join("tasks", "erin.pwd")):
        os.chown(os.path.join(te.config_dir, n), NOBODY.pw_uid, NOBODY.pw_gid)
    task_dir = os.path.join(te.state_dir, "erin")
    chown_tree(task_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    locks = os.path.join(te.state_dir, ".locks")
    tap.ok(os.path.isdir(locks), "the state root has the account lock directory .locks")
    if os.path.isdir(locks):
        chown_tree(locks, NOBODY.pw_uid, NOBODY.pw_gid)
    r = run_as_service(te)
    tap.ok(r.returncode == 0, "the service (as the state's owner) runs", output(r))

    seed(pair.remote, "erin", "INBOX", [make_message(3100)])
    before = snapshot(task_dir)
    r = te.run()
    tap.ok(r.returncode == 78, f"a hand run as root of the service's task refuses: exit 78 "
           f"({r.returncode})", output(r))
    tap.ok("systemctl start imapsync-task@erin.service" in output(r)
           and f"belongs to uid {NOBODY.pw_uid}" in output(r),
           "the refusal names the owner and the command to use instead", output(r))
    tap.ok(snapshot(task_dir) == before and
           all(u == NOBODY.pw_uid for u in tree_owners(task_dir).values()),
           "the refused run changed nothing in the state directory", tree_owners(task_dir))
    tap.ok(sum(local_counter(pair, "erin").values()) == 5,
           "the refused run delivered nothing")

    # A dry run by hand is allowed: it reads only, and a lock file it
    # has to create is given to the directory's owner.
    os.unlink(os.path.join(task_dir, "lock"))
    for n in os.listdir(locks) if os.path.isdir(locks) else ():
        os.unlink(os.path.join(locks, n))
    r = te.run("--dry-run")
    tap.ok(r.returncode == 0 and "would deliver remote UID 6" in output(r),
           "a hand dry run of the service's task is allowed", output(r))
    owners = dict(tree_owners(task_dir))
    owners.update({"locks/" + k: v for k, v in
                   (tree_owners(locks) if os.path.isdir(locks) else {}).items()})
    tap.ok(all(u == NOBODY.pw_uid for u in owners.values()),
           "after the hand dry run every state and lock file is still the owner's", owners)
    r = run_as_service(te)
    tap.ok(r.returncode == 0 and summary(r).get("copied") == "1",
           "the service's next run works and takes the new message", output(r))

    # Run history: an older version's hand run left root-owned files the
    # service cannot read.  Its failing run must not replace the history
    # with its own record; after the documented chown everything is there.
    st = te.cmd("status", "erin")
    m = re.search(r"lifetime: (\d+) runs", st.stdout)
    runs_before = int(m.group(1)) if m else -1
    tap.ok(runs_before == 4, f"status counts 4 runs so far ({runs_before})", output(st))
    # What such a run rewrote (by rename) became root's: the snapshot
    # files and the run history; lock and journal kept their owner.
    chown_tree(task_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    for n in os.listdir(task_dir):
        p = os.path.join(task_dir, n)
        if (n.startswith("state") or n in ("runs", "totals")) and os.path.isfile(p):
            os.chown(p, 0, 0)
            os.chmod(p, 0o600)
    history = {n: open(os.path.join(task_dir, n), "rb").read() for n in ("runs", "totals")}
    r = run_as_service(te)
    tap.ok(r.returncode == 74, f"the service fails on root-owned state files: 74 "
           f"({r.returncode})", output(r))
    tap.ok(all(open(os.path.join(task_dir, n), "rb").read() == history[n]
               for n in ("runs", "totals")),
           "the failed run left runs and totals as they were (history kept)", output(r))
    tap.ok("cannot record the run" in output(r), "and said it could not record itself",
           output(r))
    chown_tree(task_dir, NOBODY.pw_uid, NOBODY.pw_gid)      # the documented repair
    seed(pair.remote, "erin", "INBOX", [make_message(3200)])
    r = run_as_service(te)
    tap.ok(r.returncode == 0 and summary(r).get("copied") == "1",
           "after the chown the service runs again", output(r))
    st = te.cmd("status", "erin")
    m = re.search(r"lifetime: (\d+) runs.*copied (\d+)", st.stdout)
    tap.ok(m is not None and int(m.group(1)) == 5 and int(m.group(2)) == 7,
           "status: the earlier runs are all still counted (5 runs, 7 copied)", output(st))
    tap.ok(len(re.findall(r"^  \d{4}-\d\d-\d\d ", st.stdout, re.M)) == 5,
           "status lists the 5 runs", output(st))
    tap.ok(sum(local_counter(pair, "erin").values()) == 7, "7 messages local, each once")

    # A damaged totals file is kept aside, not silently overwritten.
    with open(os.path.join(task_dir, "totals"), "w") as f:
        f.write("garbage\n")
    os.chown(os.path.join(task_dir, "totals"), NOBODY.pw_uid, NOBODY.pw_gid)
    r = run_as_service(te)
    tap.ok(r.returncode == 0 and open(os.path.join(task_dir, "totals.damaged")).read()
           == "garbage\n", "a damaged totals file is moved to totals.damaged", output(r))


# -------------------------------------------------------------------------
# 3. the dry run predicts exactly

def parse_dry(r):
    """(deliver, mark, delete): sets of (folder, remote UID)."""
    deliver, mark, delete = set(), set(), set()
    for line in output(r).splitlines():
        m = re.search(r"would deliver remote UID (\d+)(?: in (\S+))? \(.*\)(.*)$", line)
        if m and " - no:" not in m.group(3):
            deliver.add((m.group(2) or "INBOX", int(m.group(1))))
        m = re.search(r"would mark (\d+) delivered message\(s\) \\Seen on the remote: "
                      r"UID (\S+)$", line)
        if m:
            uids = set()
            for part in m.group(2).split(","):
                lo, _, hi = part.partition(":")
                uids |= set(range(int(lo), int(hi or lo) + 1))
            if len(uids) != int(m.group(1)):
                tap.ok(False, "a would-mark line's count matches its UID set", line)
            mark |= {("INBOX", u) for u in uids}
        m = re.search(r"would delete remote UID (\d+)(?: in (\S+))?$", line)
        if m:
            delete.add((m.group(2) or "INBOX", int(m.group(1))))
    return deliver, mark, delete


def remote_state(pair, user, folders):
    return {f: {m["uid"]: m for m in read_mailbox(pair.remote, user, f)} for f in folders}


def compare(label, pair, te, user, folders, local_folders):
    """Dry run, then the real run; compare the prediction with the outcome."""
    before = remote_state(pair, user, folders)
    local_before = {f: local_counter(pair, user, lf) for f, lf in local_folders.items()}
    dry = te.run("--dry-run")
    tap.ok(dry.returncode == 0, f"{label}: dry run exits 0", output(dry))
    tap.ok(remote_state(pair, user, folders) == before and
           {f: local_counter(pair, user, lf) for f, lf in local_folders.items()} == local_before,
           f"{label}: the dry run changed nothing on either side")
    deliver, mark, delete = parse_dry(dry)
    real = te.run()
    tap.ok(real.returncode == 0, f"{label}: real run exits 0", output(real))
    after = remote_state(pair, user, folders)
    deleted = {(f, u) for f in folders for u in before[f] if u not in after[f]}
    marked = {(f, u) for f in folders for u, m in after[f].items()
              if "\\Seen" in m["flags"] and "\\Seen" not in before[f][u]["flags"]}
    delivered = set()
    for f, lf in local_folders.items():
        new = local_counter(pair, user, lf) - local_before[f]
        ids = {msgid(m["bytes"]): u for u, m in before[f].items()}
        tap.ok(all(n == 1 for n in new.values()), f"{label}: {f}: each message delivered "
               f"once", new)
        delivered |= {(f, ids.get(k)) for k in new}
    tap.ok(deliver == delivered,
           f"{label}: would deliver = delivered ({len(deliver)} = {len(delivered)})",
           f"predicted only {sorted(deliver - delivered)}\nhappened only "
           f"{sorted(delivered - deliver)}")
    tap.ok(delete == deleted,
           f"{label}: would delete = deleted on the remote ({len(delete)} = {len(deleted)})",
           f"predicted only {sorted(delete - deleted)}\nhappened only "
           f"{sorted(deleted - delete)}\n{output(dry)}")
    # \Seen is observable on what stays; what was deleted was marked too
    # (or, folders = all, is not marked at all).
    observable = {k for k in mark if k not in deleted}
    tap.ok(observable == marked and (mark - observable) <= deleted,
           f"{label}: would mark \\Seen = marked ({len(mark)}; {len(marked)} still visible)",
           f"predicted {sorted(mark)}\nmarked {sorted(marked)}")
    sd, sr = summary(dry), summary(real)
    tap.ok(sd.get("copied") == sr.get("copied") and sd.get("deleted") == sr.get("deleted")
           and sd.get("kept-old") == sr.get("kept-old"),
           f"{label}: summaries agree: copied {sd.get('copied')}/{sr.get('copied')}, "
           f"deleted {sd.get('deleted')}/{sr.get('deleted')}, kept-old "
           f"{sd.get('kept-old')}/{sr.get('kept-old')}", output(dry) + output(real))
    return deliver, mark, delete, sd


NOW = dt.datetime.now(dt.timezone.utc)


def seed_mixed(pair, user, base, n_unseen, n_seen, days_old=0):
    date = NOW - dt.timedelta(days=days_old)
    msgs = [{"bytes": make_message(base + i), "internaldate": date} for i in range(n_unseen)]
    msgs += [{"bytes": make_message(base + 500 + i), "flags": ["\\Seen"], "internaldate": date}
             for i in range(n_seen)]
    seed(pair.remote, user, "INBOX", msgs)


def test_dry_never(pair):
    pair.remote.add_user("frank", "fpw")
    pair.local.add_user("frank", "fpw-l")
    seed_mixed(pair, "frank", 4000, 7, 3)
    te = TaskEnv(pair, "frank")
    deliver, mark, delete, _ = compare("never", pair, te, "frank", ["INBOX"], {"INBOX": "INBOX"})
    tap.ok(len(deliver) == 7 and mark == deliver and not delete,
           "never: 7 to deliver, the same 7 to mark, none to delete")


def test_dry_after_sync(pair):
    pair.remote.add_user("gina", "gpw")
    pair.local.add_user("gina", "gpw-l")
    seed_mixed(pair, "gina", 5000, 5, 2)
    te = TaskEnv(pair, "gina")
    r = te.run()                     # delete = never at first: 5 taken, kept
    tap.ok(r.returncode == 0 and summary(r).get("copied") == "5",
           "after-sync: a first run with delete = never takes 5", output(r))
    te.write_task("gina", "gina", "starttls", pair.remote.imap_port, "delete = after-sync\n")
    seed_mixed(pair, "gina", 5100, 4, 1)
    deliver, mark, delete, sd = compare("after-sync", pair, te, "gina", ["INBOX"],
                                        {"INBOX": "INBOX"})
    tap.ok(len(deliver) == 4 and len(delete) == 9 and sd.get("deleted") == "9",
           "after-sync: 4 to deliver; 9 to delete (the 5 taken before and the 4 new)",
           (deliver, delete))


def test_dry_older_than(pair):
    pair.remote.add_user("hank", "hpw")
    pair.local.add_user("hank", "hpw-l")
    seed_mixed(pair, "hank", 6000, 3, 2, days_old=60)     # old: 3 unseen, 2 seen
    seed_mixed(pair, "hank", 6100, 2, 1)                  # new: 2 unseen, 1 seen
    te = TaskEnv(pair, "hank", task_extra="delete = older-than\ndelete_older_than_days = 30\n")
    deliver, mark, delete, sd = compare("older-than", pair, te, "hank", ["INBOX"],
                                        {"INBOX": "INBOX"})
    tap.ok(len(deliver) == 5 and len(delete) == 3 and sd.get("kept-old") == "2",
           "older-than: 5 to deliver, the 3 old ones to delete, 2 old seen ones kept",
           sd)


def test_dry_folders_after_sync(pair):
    pair.remote.add_user("ivy", "ipw")
    pair.local.add_user("ivy", "ipw-l")
    seed(pair.remote, "ivy", "INBOX", [make_message(7000 + i) for i in range(4)])
    seed(pair.remote, "ivy", "Work", [{"bytes": make_message(7100 + i),
                                       "flags": ["\\Seen"] if i % 2 else []}
                                      for i in range(5)])
    te = TaskEnv(pair, "ivy", task_extra="delete = after-sync\n")
    path = os.path.join(te.config_dir, "tasks", "ivy.ini")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("folders = inbox\n", "folders = all\n"))
    deliver, mark, delete, sd = compare("all + after-sync", pair, te, "ivy",
                                        ["INBOX", "Work"], {"INBOX": "INBOX", "Work": "Work"})
    tap.ok(len(deliver) == 9 and delete == deliver and not mark,
           "all + after-sync: 9 to copy, the same 9 to delete, none to mark",
           (deliver, delete, mark))
    seed(pair.remote, "ivy", "Work", [make_message(7200)])
    deliver, mark, delete, sd = compare("all + after-sync, new mail", pair, te, "ivy",
                                        ["INBOX", "Work"], {"INBOX": "INBOX", "Work": "Work"})
    tap.ok(len(deliver) == 1 and delete == deliver,
           "all + after-sync: then the one new message, copied and deleted",
           (deliver, delete))


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP needs root (Dovecot pair, a state owned by another user)")
        return
    with DovecotPair() as pair:
        test_account_lock(pair)
        test_hand_run(pair)
        test_dry_never(pair)
        test_dry_after_sync(pair)
        test_dry_older_than(pair)
        test_dry_folders_after_sync(pair)
    tap.done()


main()
