#!/usr/bin/python3
"""Issue 10: all-folders migration (folders = all | all-except) against a
real Dovecot pair, plus a Courier-layout remote (INBOX. prefix, '.').

Every case checks what the local account holds afterwards, folder by
folder: the multiset of message bytes, the flags and the INTERNALDATE of
each message compared with the remote's, the folder names (translated
hierarchy, modified UTF-7 decoded) and the special-use targets; and that
a second run copies nothing."""

import base64
import collections
import datetime as dt
import email.utils
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import (DovecotPair, _list_tokens, create_folder, imap,  # noqa: E402
                     imap_utf7_decode, imap_utf7_encode, imap_quote, mail_account,
                     make_message, parse_internaldate, read_mailbox, seed,
                     list_mailboxes)
from worker import Tap, TaskEnv, output  # noqa: E402

tap = Tap()
RNG = random.Random(20261201)
LOCAL_DEFAULT = {"INBOX", "Sent", "Drafts", "Trash", "Junk"}   # local special-use
T0 = dt.datetime(2023, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


# -------------------------------------------------------------------------
# the task

class FolderTask(TaskEnv):
    """A TaskEnv whose task says folders = FOLDERS (and one exclude line
    per pattern) instead of the folders = inbox TaskEnv writes."""

    def __init__(self, pair, user, folders="all", exclude=(), **kw):
        self.folders = folders
        self.exclude = list(exclude)
        super().__init__(pair, user, **kw)

    def write_task(self, local_user, user, security, port, task_extra="", remote_extra=""):
        super().write_task(local_user, user, security, port, task_extra, remote_extra)
        path = os.path.join(self.config_dir, "tasks", f"{self.name}.ini")
        with open(path) as f:
            text = f.read()
        assert "folders = inbox\n" in text, text

        def value(p):
            if any(c in p for c in ';#') or p != p.strip():
                assert '"' not in p
                return '"' + p + '"'
            return p
        lines = f"folders = {self.folders}\n" + "".join(
            f"exclude = {value(p)}\n" for p in self.exclude)
        with open(path, "w") as f:
            f.write(text.replace("folders = inbox\n", lines, 1))
        os.chmod(path, 0o644)

    @property
    def task_state(self):
        return os.path.join(self.state_dir, self.name)


def summary(r):
    """The summary line's fields as a dict (strings), or {}."""
    m = re.search(r"summary: (.*)$", output(r), re.M)
    if not m:
        return {}
    return dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv)


def copied(r):
    v = summary(r).get("copied")
    return int(v) if v is not None and v.isdigit() else None


def ok_run(r, n=None):
    """Exit 0 and (when n is given) copied=n."""
    return r.returncode == 0 and (n is None or copied(r) == n)


# -------------------------------------------------------------------------
# mailbox contents

def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def entry(m):
    """(content id, flags, instant) of one message from read_mailbox."""
    return (sha(m["bytes"]), tuple(sorted(m["flags"])),
            parse_internaldate(m["internaldate"]).timestamp())


def selectable(mb):
    return not ({"\\Noselect", "\\NonExistent"} & {f for f in mb["flags"]})


def local_mailboxes(pair, user):
    return {m["name"]: m for m in list_mailboxes(pair.local, user, master=True)}


def local_folders(pair, user):
    """Names (Unicode) of the local user's selectable folders."""
    return {n for n, m in local_mailboxes(pair, user).items() if selectable(m)}


def local_state(pair, user):
    """{local folder: Counter(entries)} for every selectable local folder."""
    return {f: collections.Counter(entry(m) for m in
                                   read_mailbox(pair.local, user, f, master=True))
            for f in local_folders(pair, user)}


def remote_personal(pair, user):
    """The remote user's selectable folders of the personal namespace."""
    return [m["name"] for m in list_mailboxes(pair.remote, user)
            if selectable(m) and not m["name"].startswith(("Public", "Shared"))]


def remote_snapshot(pair, user):
    """Everything observable on the remote: {folder: [(uid, sha, flags, date)]}."""
    out = {}
    for f in remote_personal(pair, user):
        out[f] = [(m["uid"], sha(m["bytes"]), tuple(m["flags"]), m["internaldate"])
                  for m in read_mailbox(pair.remote, user, f)]
    return out


def remote_entries(pair, user, folders):
    return {f: collections.Counter(entry(m) for m in read_mailbox(pair.remote, user, f))
            for f in folders}


def expected_local(pair, ruser, plan, extra=None, remote=None):
    """plan {remote folder: local folder}; extra {local folder: [entries]}
    (the local account's own mail).  -> {local folder: Counter(entries)}."""
    remote = remote if remote is not None else remote_entries(pair, ruser, plan)
    exp = collections.defaultdict(collections.Counter)
    for rf, lf in plan.items():
        exp[lf].update(remote[rf])
    for lf, es in (extra or {}).items():
        exp[lf].update(es)
    return dict(exp)


def project(counter, key):
    out = collections.Counter()
    for e, n in counter.items():
        out[key(e)] += n
    return out


def diff(exp, got, key):
    bad = []
    for f in sorted(set(exp) | set(got)):
        a = project(exp.get(f, collections.Counter()), key)
        b = project(got.get(f, collections.Counter()), key)
        if a != b:
            bad.append(f"{f}: missing={dict(a - b)} extra={dict(b - a)}")
    return bad


def check_copy(label, exp, got, folders=None):
    """Three test points: bytes, flags, INTERNALDATE, folder by folder.
    folders: limit the comparison to these local folders (default: the
    expected ones, so a local folder that must stay empty is listed with
    an empty Counter)."""
    keys = folders if folders is not None else exp.keys()
    e = {f: exp.get(f, collections.Counter()) for f in keys}
    g = {f: got.get(f, collections.Counter()) for f in keys}
    b = diff(e, g, lambda x: x[0])
    tap.ok(not b, f"{label}: every folder holds exactly the remote's messages, "
                  "byte-identical, as many times as the remote has them", "\n".join(b))
    fl = diff(e, g, lambda x: (x[0], x[1]))
    tap.ok(not fl, f"{label}: flags kept message by message (system flags, keywords)",
           "\n".join(fl))
    d = diff(e, g, lambda x: (x[0], x[2]))
    tap.ok(not d, f"{label}: INTERNALDATE kept message by message", "\n".join(d))


def subscribed(pair, user):
    conn = imap(pair.local, user, master=True)
    try:
        typ, data = conn.lsub('""', '"*"')
        names = set()
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                names.add(imap_utf7_decode(item[1].decode()))
            else:
                names.add(imap_utf7_decode(_list_tokens(item.decode())[2]))
        return names
    finally:
        conn.logout()


def flag_op(server, user, folder, uid, op, flags, master=False):
    conn = imap(server, user, master=master)
    try:
        typ, data = conn.select(imap_quote(imap_utf7_encode(folder)))
        assert typ == "OK", data
        typ, data = conn.uid("STORE", str(uid), op, f"({flags})")
        assert typ == "OK", data
    finally:
        conn.logout()


def expunge_uid(server, user, folder, uid, master=False):
    conn = imap(server, user, master=master)
    try:
        conn.select(imap_quote(imap_utf7_encode(folder)))
        conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        typ, data = conn.uid("EXPUNGE", str(uid))
        assert typ == "OK", data
    finally:
        conn.logout()


def find_uid(server, user, folder, raw, master=False):
    for m in read_mailbox(server, user, folder, master=master):
        if m["bytes"] == raw:
            return m["uid"], m["flags"]
    return None, None


# -------------------------------------------------------------------------
# the dry run's plan

def name_forms(name):
    return {name, imap_utf7_encode(name)}


def plan_has(out, rname, lname):
    """A line that names the remote folder, "->" and the local folder."""
    for line in out.splitlines():
        if "->" not in line:
            continue
        left, _, right = line.partition("->")
        if any(r in left for r in name_forms(rname)) and \
           any(n in right for n in name_forms(lname)):
            return True
    return False


def plan_excludes(out, rname):
    return any(any(r in line for r in name_forms(rname)) and "exclude" in line.lower()
               for line in out.splitlines())


# -------------------------------------------------------------------------
# messages

def msg(i, flags=(), days=0, size=None, subject=None):
    when = T0 + dt.timedelta(days=days, minutes=i)
    return {"bytes": make_message(i, size=size or 700 + 37 * (i % 50), date=when,
                                  subject=subject),
            "flags": list(flags), "internaldate": when}


def raw_message(head, body="Body.\r\n", when=None):
    when = when or T0
    text = "\r\n".join(head + [f"Date: {email.utils.format_datetime(when)}"]) + \
        "\r\n\r\n" + body
    return text.encode() if isinstance(text, str) else text


def odd_messages(base):
    """The awkward ones: no Message-ID, two sharing one with different
    content, a byte-identical pair (with different flags), 8-bit headers."""
    when = T0 + dt.timedelta(days=3)
    no_id = raw_message([f"From: nobody{base}@example.org", "To: alice@example.test",
                         f"Subject: no message id {base}"], when=when)
    a = make_message(base + 1, subject="shared id A")
    mid = re.search(rb"^Message-ID: .*$", a, re.M).group(0)
    b = re.sub(rb"^Message-ID: .*$", mid.replace(b"\\", b"\\\\"),
               make_message(base + 2, subject="shared id B (other content)"), flags=re.M)
    dup = make_message(base + 3, subject="byte-identical twice")
    eight = (b"From: J\xc3\xbcrgen M\xc3\xbcller <jm@example.org>\r\n"
             b"To: alice@example.test\r\n"
             b"Subject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x93 8-bit\r\n"
             b"Message-ID: <8bit." + str(base).encode() + b"@example.org>\r\n"
             b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n"
             b"Sch\xc3\xb6ne Gr\xc3\xbc\xc3\x9fe.\r\n")
    return [
        {"bytes": no_id, "flags": ["\\Answered"], "internaldate": when},
        {"bytes": a, "flags": [], "internaldate": when + dt.timedelta(hours=1)},
        {"bytes": b, "flags": ["\\Seen"], "internaldate": when + dt.timedelta(hours=2)},
        {"bytes": dup, "flags": [], "internaldate": when + dt.timedelta(hours=3)},
        {"bytes": dup, "flags": ["\\Seen", "$Label2"], "internaldate": when + dt.timedelta(hours=4)},
        {"bytes": eight, "flags": ["\\Flagged"], "internaldate": when + dt.timedelta(hours=5)},
    ]


def setup_users(pair, ruser, luser=None, **local_kw):
    pair.remote.add_user(ruser)
    luser = luser or ruser
    if luser not in pair.local.users:
        pair.local.add_user(luser, **local_kw)
    return luser


def seed_all(pair, user, folders):
    """folders: {remote folder (server's own name): [messages]}; [] makes
    an empty folder."""
    for f, ms in folders.items():
        if ms:
            seed(pair.remote, user, f, ms)
        else:
            conn = imap(pair.remote, user)
            try:
                create_folder(conn, f)
            finally:
                conn.logout()


# -------------------------------------------------------------------------
# default layout: the whole account, then reruns

def test_main(pair):
    user = "mig"
    setup_users(pair, user)
    inbox = [msg(1), msg(2, ["\\Seen", "\\Answered"]), msg(3, ["\\Flagged", "$Label1"]),
             msg(4, ["\\Seen"], days=-400)] + odd_messages(100)
    folders = {
        "INBOX": inbox,
        "Sent": [msg(10, ["\\Seen"]), msg(11, ["\\Seen", "\\Answered"])],
        "Drafts": [msg(12, ["\\Draft"])],
        "Archive/2023": [msg(20, ["\\Seen"], days=-200), msg(21, ["\\Seen", "work"], days=-190),
                         msg(22, [], days=-180)],
        "Archive/2024": [msg(23, ["\\Seen"], days=-20), msg(24, ["\\Seen", "\\Flagged"])],
        "Büro": [msg(30, ["\\Seen"])],
        "Büro/Rechnungen": [msg(31), msg(32, ["\\Seen", "$Forwarded"])],
        "R&D": [msg(33), msg(34, ["\\Seen"])],
        "日本語": [msg(35, subject="日本語の件名")],
        "Empty": [],
    }
    seed_all(pair, user, folders)
    plan = {f: f for f in folders}
    total = sum(len(v) for v in folders.values())
    te = FolderTask(pair, user)

    before = remote_snapshot(pair, user)
    dry = te.run("--dry-run")
    out = output(dry)
    tap.ok(dry.returncode == 0, "main: dry run exits 0", out)
    missing = [f for f in plan if not plan_has(out, f, plan[f])]
    tap.ok(not missing, "main: the dry run prints the plan, one 'remote -> local' line "
                        "per folder", f"no plan line for {missing}\n{out}")
    tap.ok(dry.returncode == 0 and local_folders(pair, user) == LOCAL_DEFAULT and
           all(not c for c in local_state(pair, user).values()),
           "main: the dry run created no local folder and copied no message",
           local_folders(pair, user))
    tap.ok(dry.returncode == 0 and remote_snapshot(pair, user) == before,
           "main: the dry run left the remote unchanged")

    r = te.run()
    out = output(r)
    tap.ok(r.returncode == 0, "main: first run exits 0", out)
    tap.ok(copied(r) == total, f"main: the summary says copied={total}", out)
    exp = expected_local(pair, user, plan)
    got = local_state(pair, user)
    check_copy("main", exp, got)
    want = LOCAL_DEFAULT | set(plan.values())
    tap.ok(local_folders(pair, user) == want,
           "main: the local account has exactly the remote's folders (hierarchy, "
           "non-ASCII and '&' names kept; Sent/Drafts are the existing special-use ones)",
           f"want {sorted(want)}\ngot {sorted(local_folders(pair, user))}")
    mbs = local_mailboxes(pair, user)
    tap.ok("Archive/2023" in mbs and ("Archive" not in mbs or not selectable(mbs["Archive"])),
           "main: the remote's \\Noselect 'Archive' exists locally only as a parent",
           mbs.get("Archive"))
    for name in ("Büro", "Büro/Rechnungen", "R&D", "日本語"):
        tap.ok(name in got and sum(got[name].values()) == len(folders[name]),
               f"main: '{name}' survives the round trip (mUTF-7 decoded and re-encoded) "
               "with its messages", sorted(got))
    subs = subscribed(pair, user)
    created = set(plan.values()) - LOCAL_DEFAULT
    tap.ok(created <= subs, "main: every created local folder is subscribed",
           f"not subscribed: {sorted(created - subs)}")
    tap.ok(r.returncode == 0 and remote_snapshot(pair, user) == before,
           "main: the run changed nothing on the remote (delete = never: no flag set, "
           "nothing deleted)")

    r = te.run()
    tap.ok(ok_run(r, 0), "main: a rerun copies 0", output(r))
    tap.ok(r.returncode == 0 and local_state(pair, user) == got,
           "main: the rerun changed nothing locally")

    # The state directory is lost: content matching must find everything.
    shutil.rmtree(te.task_state, ignore_errors=True)
    r = te.run()
    tap.ok(ok_run(r, 0), "main: state directory deleted: the rerun copies 0 (content match)",
           output(r))
    tap.ok(local_state(pair, user) == got,
           "main: state directory deleted: nothing doubled, local unchanged",
           "\n".join(diff(got, local_state(pair, user), lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0), "main: and the next run copies 0 as well", output(r))

    # New remote mail, in old folders and in a new nested one.
    new = {"INBOX": [msg(40)], "Archive/2023": [msg(41, ["\\Seen"], days=-170)],
           "Neu/Unter": [msg(42, ["\\Flagged"])]}
    seed_all(pair, user, new)
    plan["Neu/Unter"] = "Neu/Unter"
    r = te.run()
    tap.ok(ok_run(r, 3), "main: new remote mail: only the 3 new messages are copied",
           output(r))
    exp = expected_local(pair, user, plan)
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x),
           "main: after new mail the local account is again an exact copy",
           "\n".join(diff(exp, got, lambda x: x)))

    # Flags: the remote changes some, the local user others.
    u1, _ = find_uid(pair.remote, user, "INBOX", inbox[0]["bytes"])
    u2, _ = find_uid(pair.remote, user, "INBOX", inbox[1]["bytes"])
    flag_op(pair.remote, user, "INBOX", u1, "+FLAGS", "\\Flagged")
    flag_op(pair.remote, user, "INBOX", u2, "-FLAGS", "\\Answered")
    l3, _ = find_uid(pair.local, user, "INBOX", inbox[2]["bytes"], master=True)
    s0 = folders["Sent"][1]["bytes"]          # \Seen \Answered on both sides
    ls0, _ = find_uid(pair.local, user, "Sent", s0, master=True)
    r0 = folders["R&D"][0]["bytes"]
    lr0, _ = find_uid(pair.local, user, "R&D", r0, master=True)
    flag_op(pair.local, user, "INBOX", l3, "+FLAGS", "\\Seen", master=True)
    flag_op(pair.local, user, "Sent", ls0, "-FLAGS", "\\Seen", master=True)
    flag_op(pair.local, user, "R&D", lr0, "+FLAGS", "$Local", master=True)
    r = te.run()
    tap.ok(ok_run(r, 0), "main: flag changes: the rerun copies 0", output(r))
    f1 = find_uid(pair.local, user, "INBOX", inbox[0]["bytes"], master=True)[1] or []
    f2 = find_uid(pair.local, user, "INBOX", inbox[1]["bytes"], master=True)[1] or []
    tap.ok("\\Flagged" in f1 and "\\Answered" not in f2,
           "main: remote flag changes (+\\Flagged, -\\Answered) reach the local copies",
           f"{f1} {f2}\n{output(r)}")
    f3 = find_uid(pair.local, user, "INBOX", inbox[2]["bytes"], master=True)[1] or []
    fs = find_uid(pair.local, user, "Sent", s0, master=True)[1]
    fr = find_uid(pair.local, user, "R&D", r0, master=True)[1] or []
    tap.ok("\\Seen" in f3, "main: a local +\\Seen survives the rerun", f3)
    tap.ok(fs is not None and "\\Seen" not in fs and "\\Answered" in fs,
           "main: a local -\\Seen survives the rerun", fs)
    tap.ok("$Local" in fr, "main: a local keyword survives the rerun", fr)
    f3r = find_uid(pair.remote, user, "INBOX", inbox[2]["bytes"])[1] or []
    tap.ok("\\Seen" not in f3r, "main: the local \\Seen was not written to the remote", f3r)

    # Deletions: the local user expunges one; the remote expunges another;
    # the local user has mail and a folder of their own.
    before_local = local_state(pair, user)
    lno, _ = find_uid(pair.local, user, "INBOX", inbox[4]["bytes"], master=True)
    expunge_uid(pair.local, user, "INBOX", lno, master=True)
    gone_remote = folders["Archive/2024"][0]["bytes"]
    ru, _ = find_uid(pair.remote, user, "Archive/2024", gone_remote)
    expunge_uid(pair.remote, user, "Archive/2024", ru)
    own = msg(50, ["\\Seen"])
    seed(pair.local, user, "Archive/2023", [own], master=True)
    seed(pair.local, user, "Lokal", [msg(51)], master=True)
    r = te.run()
    tap.ok(ok_run(r, 0), "main: after deletions the rerun copies 0", output(r))
    got = local_state(pair, user)
    tap.ok(sha(inbox[4]["bytes"]) not in {e[0] for e in got.get("INBOX", {})},
           "main: a message the local user deleted is not copied again")
    tap.ok(sha(gone_remote) in {e[0] for e in got.get("Archive/2024", {})},
           "main: a message expunged on the remote stays local (nothing deleted locally)")
    tap.ok(sha(own["bytes"]) in {e[0] for e in got.get("Archive/2023", {})} and
           "Lokal" in got and sum(got["Lokal"].values()) == 1,
           "main: the local user's own message and folder survive")
    b = [f for f in before_local
         if project(before_local[f], lambda x: x[0]) - project(got.get(f, {}), lambda x: x[0])]
    tap.ok(b == ["INBOX"] and sum(got["INBOX"].values()) == sum(before_local["INBOX"].values()) - 1,
           "main: nothing else went missing locally", b)
    r = te.run()
    tap.ok(ok_run(r, 0), "main: idempotence: one more run copies 0", output(r))


# -------------------------------------------------------------------------
# special-use by well-known name (and by attribute: Drafts)

def test_special_names(pair):
    cases = {
        "spec1": ({"Sent Items": [msg(60, ["\\Seen"]), msg(61, ["\\Seen"])],
                   "Deleted Items": [msg(62, ["\\Seen"])],
                   "Junk E-mail": [msg(63)],
                   "Drafts": [msg(64, ["\\Draft"])],
                   "INBOX": [msg(65)]},
                  {"Sent Items": "Sent", "Deleted Items": "Trash", "Junk E-mail": "Junk",
                   "Drafts": "Drafts", "INBOX": "INBOX"}),
        "spec2": ({"Gesendete Objekte": [msg(66, ["\\Seen"])], "Spam": [msg(67)]},
                  {"Gesendete Objekte": "Sent", "Spam": "Junk"}),
        "spec3": ({"Posta inviata": [msg(68, ["\\Seen"]), msg(69, ["\\Seen"])]},
                  {"Posta inviata": "Sent"}),
    }
    own_sent = msg(70, ["\\Seen"])
    for user, (folders, plan) in cases.items():
        setup_users(pair, user)
        seed_all(pair, user, folders)
        extra = {}
        if user == "spec1":     # the local Sent already holds the user's mail
            seed(pair.local, user, "Sent", [own_sent], master=True)
            extra = {"Sent": [entry(m) for m in
                              read_mailbox(pair.local, user, "Sent", master=True)]}
        te = FolderTask(pair, user)
        r = te.run()
        tap.ok(r.returncode == 0, f"special {user}: run exits 0", output(r))
        exp = expected_local(pair, user, plan, extra)
        got = local_state(pair, user)
        tap.ok(not diff(exp, got, lambda x: x),
               f"special {user}: {', '.join(f'{a!r} -> {b}' for a, b in plan.items() if a != b)}: "
               "the messages are in the local special-use folders",
               "\n".join(diff(exp, got, lambda x: x)) + "\n" + output(r))
        tap.ok(r.returncode == 0 and local_folders(pair, user) == LOCAL_DEFAULT,
               f"special {user}: no second Sent/Trash/Junk folder was created",
               sorted(local_folders(pair, user)))
        r = te.run()
        tap.ok(ok_run(r, 0), f"special {user}: a rerun copies 0", output(r))


# -------------------------------------------------------------------------
# first run into a local account that already holds part of the mail

def test_preseeded(pair):
    user = "pre"
    setup_users(pair, user)
    dup = msg(81, ["\\Seen"], days=-5)
    folders = {"INBOX": [msg(80), msg(82, ["\\Seen"]), msg(83), msg(84, ["\\Flagged"])],
               "Archive/2023": [dup, dict(dup), msg(85, days=-6)]}
    seed_all(pair, user, folders)
    own = msg(86)
    seed(pair.local, user, "INBOX", [folders["INBOX"][0], folders["INBOX"][2]], master=True)
    seed(pair.local, user, "Archive/2023", [dup, own], master=True)
    own_e = entry(read_mailbox(pair.local, user, "Archive/2023", master=True)[1])
    te = FolderTask(pair, user)
    r = te.run()
    tap.ok(r.returncode == 0, "pre-seeded: run exits 0", output(r))
    exp = expected_local(pair, user, {"INBOX": "INBOX", "Archive/2023": "Archive/2023"},
                         {"Archive/2023": [own_e]})
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x[0]),
           "pre-seeded: nothing doubled: each message as often as on the remote "
           "(the byte-identical pair: once more), the local user's own kept",
           "\n".join(diff(exp, got, lambda x: x[0])))
    tap.ok(copied(r) == 4, "pre-seeded: only the 4 missing messages were copied", output(r))
    r = te.run()
    tap.ok(ok_run(r, 0), "pre-seeded: a rerun copies 0", output(r))


# -------------------------------------------------------------------------
# all-except: several patterns, one with a space, one non-ASCII

def test_exclusions(pair):
    user = "exc"
    setup_users(pair, user)
    folders = {"INBOX": [msg(90)], "Posta inviata": [msg(91, ["\\Seen"])],
               "Lists": [msg(92)], "Lists/old": [msg(93)], "Lists/old/2019": [msg(94)],
               "Noise": [msg(95)], "Noise/a": [msg(96)], "Ärger": [msg(97)],
               "Keep": [msg(98)], "Keep Posta inviata": [msg(99)]}
    seed_all(pair, user, folders)
    patterns = ["^Posta inviata$", "^Lists/old$", "^Noise(/.*)?$", "^Ärger$"]
    excluded = ["Posta inviata", "Lists/old", "Noise", "Noise/a", "Ärger"]
    plan = {f: f for f in folders if f not in excluded}
    te = FolderTask(pair, user, folders="all-except", exclude=patterns)
    chk = te.cmd("check", user)
    tap.ok(chk.returncode == 0, "exclude: a task with four exclude lines is valid",
           output(chk))

    dry = te.run("--dry-run")
    out = output(dry)
    tap.ok(dry.returncode == 0, "exclude: dry run exits 0", out)
    tap.ok(all(plan_has(out, f, f) for f in plan),
           "exclude: the plan has a 'remote -> local' line for every copied folder",
           f"missing: {[f for f in plan if not plan_has(out, f, f)]}\n{out}")
    tap.ok(all(plan_excludes(out, f) for f in excluded),
           "exclude: the plan marks each excluded folder 'excluded'",
           f"not marked: {[f for f in excluded if not plan_excludes(out, f)]}\n{out}")
    tap.ok(dry.returncode == 0 and local_folders(pair, user) == LOCAL_DEFAULT,
           "exclude: the dry run created nothing")

    r = te.run()
    tap.ok(r.returncode == 0, "exclude: run exits 0", output(r))
    got = local_state(pair, user)
    lf = local_folders(pair, user)
    tap.ok(lf == LOCAL_DEFAULT | set(plan.values()),
           "exclude: the excluded folders are not created, the others are ('Lists/old/2019' "
           "under an excluded parent, 'Keep Posta inviata' that only contains a pattern's text)",
           f"want {sorted(LOCAL_DEFAULT | set(plan.values()))}\ngot {sorted(lf)}")
    tap.ok(r.returncode == 0 and not got.get("Sent"), "exclude: the excluded 'Posta inviata' did not go into Sent",
           got.get("Sent"))
    exp = expected_local(pair, user, plan)
    tap.ok(not diff(exp, got, lambda x: x),
           "exclude: the copied folders are exact copies",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0), "exclude: a rerun copies 0", output(r))


# -------------------------------------------------------------------------
# remote deletion

def test_after_sync(pair):
    user = "das"
    setup_users(pair, user)
    folders = {"INBOX": [msg(110), msg(111, ["\\Seen"]), msg(112)],
               "Archive/2023": [msg(113, ["\\Seen"]), msg(114)],
               "Büro": [msg(115, ["$Label1"]), msg(116)]}
    seed_all(pair, user, folders)
    plan = {f: f for f in folders}
    exp = expected_local(pair, user, plan)
    te = FolderTask(pair, user, task_extra="delete = after-sync\n")
    r = te.run()
    tap.ok(r.returncode == 0 and copied(r) == 7, "after-sync: run exits 0, copied=7", output(r))
    left = {f: len(v) for f, v in remote_snapshot(pair, user).items() if v}
    tap.ok(not left, "after-sync: the remote folders hold none of the copied messages", left)
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x), "after-sync: everything deleted is local, exactly",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0) and local_state(pair, user) == got,
           "after-sync: a rerun copies 0 and changes nothing locally", output(r))


def test_after_sync_quota(pair):
    user = "dasq"
    setup_users(pair, user, quota_bytes=20000)
    big = msg(121, size=60000)
    folders = {"INBOX": [msg(120, size=1000), msg(122, size=1000)],
               "Archive/2023": [big, msg(123, size=1000)]}
    seed_all(pair, user, folders)
    plan = {f: f for f in folders}
    exp = expected_local(pair, user, plan)
    all_msgs = collections.Counter()
    for c in exp.values():
        all_msgs.update(e[0] for e in c.elements())
    te = FolderTask(pair, user, task_extra="delete = after-sync\n")
    r = te.run()
    tap.ok(r.returncode in (73, 2), f"after-sync + quota: exit 73 or 2 ({r.returncode})",
           output(r))
    rem = collections.Counter(e[1] for v in remote_snapshot(pair, user).values() for e in v)
    loc = collections.Counter(e[0] for c in local_state(pair, user).values() for e in c.elements())
    tap.ok(r.returncode in (73, 2) and rem[sha(big["bytes"])] == 1 and loc[sha(big["bytes"])] == 0,
           "after-sync + quota: the message refused by quota stays on the remote", (rem, loc))
    lost = all_msgs - rem - loc
    tap.ok(r.returncode in (73, 2) and not lost and not (loc - all_msgs),
           "after-sync + quota: every message is on the remote or local, none lost, "
           "none doubled", f"lost={lost} extra={loc - all_msgs}")
    pair.local.set_quota(user, 10_000_000)
    time.sleep(1.1)
    r = te.run()
    tap.ok(r.returncode == 0, "after-sync + quota: with room, the next run exits 0", output(r))
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x) and not any(remote_snapshot(pair, user).values()),
           "after-sync + quota: then everything is local exactly once and gone from the remote",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0), "after-sync + quota: a rerun copies 0", output(r))


def test_older_than(pair):
    user = "dold"
    setup_users(pair, user)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def aged(i, days):
        when = now - dt.timedelta(days=days, hours=2)
        return {"bytes": make_message(i, date=when), "flags": ["\\Seen"] if i % 2 else [],
                "internaldate": when}
    folders = {"INBOX": [aged(130, 2), aged(131, 20), aged(132, 45), aged(133, 400)],
               "Archive/2023": [aged(134, 10), aged(135, 60)]}
    young = {sha(m["bytes"]) for f in folders.values() for m in f
             if m["internaldate"] > now - dt.timedelta(days=30)}
    seed_all(pair, user, folders)
    plan = {f: f for f in folders}
    exp = expected_local(pair, user, plan)
    te = FolderTask(pair, user, task_extra="delete = older-than\ndelete_older_than_days = 30\n")
    r = te.run()
    tap.ok(r.returncode == 0 and copied(r) == 6, "older-than: run exits 0, copied=6", output(r))
    rem = {e[1] for v in remote_snapshot(pair, user).values() for e in v}
    tap.ok(rem == young, "older-than: exactly the messages older than 30 days are gone "
                         "from the remote", f"remote={rem} want={young}")
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x), "older-than: all 6 are local",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0) and {e[1] for v in remote_snapshot(pair, user).values() for e in v} == young,
           "older-than: a rerun copies 0 and deletes nothing more", output(r))


# -------------------------------------------------------------------------
# exit codes: a folder the remote cannot SELECT; a message skipped for good

def test_select_refused(pair):
    user = "sel"
    setup_users(pair, user)
    folders = {"INBOX": [msg(140), msg(141)], "Good": [msg(142), msg(143)],
               "Broken": [msg(144), msg(145)]}
    seed_all(pair, user, folders)
    plan = {f: f for f in folders}
    exp = expected_local(pair, user, plan)
    broken = os.path.join(pair.remote.maildir(user), ".Broken")
    te = FolderTask(pair, user)
    os.chmod(broken, 0)                  # SELECT answers NO [SERVERBUG]
    try:
        conn = imap(pair.remote, user)
        typ, _ = conn.select('"Broken"')
        conn.logout()
        tap.ok(typ == "NO", "select-refused: (setup) the remote refuses to SELECT 'Broken'")
        r = te.run()
        out = output(r)
        tap.ok(r.returncode not in (0, 64, 78, 100) and
               summary(r).get("exit") == str(r.returncode),
               f"select-refused: the exit code says the run was partial ({r.returncode})", out)
        tap.ok(any("Broken" in line and ("error" in line.lower() or "warning" in line.lower()
                                         or "fail" in line.lower() or "skip" in line.lower())
                   for line in out.splitlines()),
               "select-refused: the failed folder is reported by name", out)
        got = local_state(pair, user)
        others = diff({f: exp[f] for f in ("INBOX", "Good")},
                      {f: got.get(f, collections.Counter()) for f in ("INBOX", "Good")},
                      lambda x: x)
        tap.ok(not others, "select-refused: the other folders are copied exactly",
               "\n".join(others) + "\n" + out)
    finally:
        os.chmod(broken, 0o700)
    r = te.run()
    tap.ok(r.returncode == 0, "select-refused: once the folder opens again the run exits 0",
           output(r))
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x),
           "select-refused: then every folder is an exact copy, nothing doubled",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0), "select-refused: a rerun copies 0", output(r))


def test_skipped(pair):
    user = "skp"
    setup_users(pair, user, max_mail_size=8000)
    big = msg(151, size=30000)
    folders = {"INBOX": [msg(150), big], "Other": [msg(152), msg(153)]}
    seed_all(pair, user, folders)
    te = FolderTask(pair, user)
    r = te.run()
    tap.ok(r.returncode == 2, "skipped: a message the local server refuses as too big: "
                              "exit 2", output(r))
    tap.ok(copied(r) == 3 and summary(r).get("skipped") == "1",
           "skipped: summary copied=3 skipped=1", output(r))
    got = local_state(pair, user)
    tap.ok(sum(got.get("INBOX", {}).values()) == 1 and sum(got.get("Other", {}).values()) == 2
           and sha(big["bytes"]) not in {e[0] for c in got.values() for e in c},
           "skipped: the others are copied, the big one is not", got)
    r = te.run()
    tap.ok(r.returncode in (0, 2) and copied(r) == 0,
           "skipped: a rerun copies 0 (the skip is not retried every run)", output(r))


# -------------------------------------------------------------------------
# a 30 MB message

def test_big(pair):
    user = "big"
    setup_users(pair, user)
    payload = RNG.randbytes(22 * 1024 * 1024)
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    head = (b"From: Big <big@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: a 30 MB attachment\r\nMessage-ID: <big.1@example.org>\r\n"
            b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    raw = head + b64 + b"--b1--\r\n"
    folders = {"Anhänge": [{"bytes": raw, "flags": ["\\Seen", "$Big"],
                            "internaldate": T0}, msg(160)]}
    seed_all(pair, user, folders)
    te = FolderTask(pair, user)
    t = time.monotonic()
    r = te.run()
    took = time.monotonic() - t
    tap.ok(r.returncode == 0 and copied(r) == 2,
           f"30 MB: run exits 0, copied=2 ({len(raw) / 1e6:.1f} MB in {took:.1f} s)", output(r))
    exp = expected_local(pair, user, {"Anhänge": "Anhänge"})
    got = local_state(pair, user)
    tap.ok(not diff(exp, got, lambda x: x),
           "30 MB: the message is byte-identical locally, flags and date kept",
           "\n".join(diff(exp, got, lambda x: x)))
    r = te.run()
    tap.ok(ok_run(r, 0), "30 MB: a rerun copies 0", output(r))


# -------------------------------------------------------------------------
# kill sweep

def test_kill_sweep(pair):
    ruser = "ks"
    pair.remote.add_user(ruser)
    d = msg(173, ["\\Seen"])
    folders = {"INBOX": [msg(170), msg(171, ["\\Seen"]), msg(172, ["\\Flagged"]), msg(174)],
               "Archive/2023": [msg(175, ["\\Seen"], days=-100), msg(176), msg(177, ["$Label1"]),
                                msg(178)],
               "Büro": [d, dict(d), msg(179), msg(180, ["\\Answered"])]}
    seed_all(pair, ruser, folders)
    plan = {f: f for f in folders}
    remote = remote_entries(pair, ruser, plan)
    exp = expected_local(pair, ruser, plan, remote=remote)
    kills, bad_run, bad_copy, bad_rerun, last = 0, [], [], [], None
    for n in range(1, 1000):
        luser = f"ks{n}"
        pair.local.add_user(luser)
        te = FolderTask(pair, ruser, local_user=luser, name=luser)
        r = te.run(env={"IMAPSYNC_TEST_KILL_AT": str(n)})
        if r.returncode != 100:
            last = (n, r)
            break
        kills += 1
        r = te.run()
        if r.returncode != 0:
            bad_run.append((n, r.returncode, output(r)[-600:]))
            continue
        got = local_state(pair, luser)       # every local folder: none may hold extras
        dd = diff(exp, got, lambda x: x[0])
        if dd:
            bad_copy.append((n, dd, sorted(got)))
        r = te.run()
        if not ok_run(r, 0):
            bad_rerun.append((n, r.returncode, copied(r)))
        te.cleanup()
    tap.diag(f"kill sweep: {kills} kill points (IMAPSYNC_TEST_KILL_AT=1..{kills}) over "
             f"3 folders x 4 messages")
    n, r = last
    tap.ok(kills >= 12 and r.returncode == 0,
           f"kill sweep: {kills} kill points, then a run that is not killed exits 0 "
           f"(N={n}: exit {r.returncode})", output(r))
    tap.ok(kills > 0 and not bad_run, f"kill sweep: after each of the {kills} kills the next run exits 0",
           "\n".join(f"N={a}: exit {b}: {c}" for a, b, c in bad_run[:5]))
    tap.ok(not bad_copy and kills > 0,
           "kill sweep: after each kill and rerun the local account is an exact copy "
           "(per-folder multiset of message bytes), nothing doubled",
           "\n".join(f"N={a}: {b} folders={c}" for a, b, c in bad_copy[:8]))
    tap.ok(not bad_rerun and kills > 0, "kill sweep: and a further run copies 0 every time",
           bad_rerun[:8])


def killed_runs(pair, te, ruser, names, base, rnd, lo, hi, want, attempts):
    """Runs of te's task, each SIGKILLed after a random nap of lo to hi
    seconds (if still running), with a new message in every folder of
    names before each, so there is always work to interrupt; until want
    were killed or attempts made.  Returns (kills, attempts made)."""
    kills = 0
    for attempt in range(attempts):
        seed_all(pair, ruser, {f: [msg(base + 10 * attempt + k)] for k, f in enumerate(names)})
        p = subprocess.Popen(te.argv("run", te.name), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(lo, hi))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        if kills >= want:
            break
    return kills, attempt + 1


def test_random_kills(pair):
    """Real SIGKILLs at random moments of a multi-folder copy of 1,500
    messages (4 folders), each followed by the next attempt; new mail
    arrives in every folder before each attempt, so there is always work
    to interrupt.  At the end: an exact copy, nothing doubled."""
    import random
    rnd = random.Random(20261201)
    ruser, luser = "rk", "rk"
    setup_users(pair, ruser, luser)
    names = ["INBOX", "Archive/2022", "Büro", "Lists/dev"]
    folders = {f: [msg(2000 + 400 * k + i, size=1500 + 13 * i) for i in range(375)]
               for k, f in enumerate(names)}
    seed_all(pair, ruser, folders)
    te = FolderTask(pair, ruser, local_user=luser, name="rk")
    kills, attempt = killed_runs(pair, te, ruser, names, 90000, rnd, 0.01, 0.25, 15, 120)
    r = te.run()
    tap.ok(ok_run(r), "random kills: a run after them exits 0", output(r))
    tap.diag(f"random SIGKILLs delivered: {kills} in {attempt} attempts")
    tap.ok(kills >= 15, f"random kills: 15 runs were killed mid-flight ({kills})")
    plan = {f: f for f in names}
    exp = expected_local(pair, ruser, plan)
    got = local_state(pair, luser)
    dd = diff(exp, got, lambda x: x[0])
    tap.ok(not dd, "random kills: the local account is an exact copy, nothing doubled",
           str(dd)[:2000])
    r = te.run()
    tap.ok(ok_run(r, 0), "random kills: and a further run copies 0", output(r))


def test_parallel(pair):
    """max_connections: folders side by side over several connection
    pairs.  With 3 pairs over 7 folders the log says so, the copy is
    exact and a rerun opens no extra pair (every folder unchanged, one
    STATUS each); with 1 pair nothing runs side by side and the copy is
    the same.  SIGKILLs while several pairs copy: the next run converges
    to an exact copy, nothing doubled.  A pair the remote refuses (its
    limit of sessions per account) costs speed only: the others copy its
    share."""
    names = ["INBOX", "Sent", "Archive/2021", "Archive/2022", "Projekte", "Büro",
             "Lists/dev"]

    def seeded(ruser, base):
        setup_users(pair, ruser)
        folders = {f: [msg(base + 100 * k + i, ["\\Seen"] if i % 3 else [],
                           size=900 + 37 * i) for i in range(40)]
                   for k, f in enumerate(names)}
        seed_all(pair, ruser, folders)
        return {f: f for f in names}

    plan = seeded("par3", 40000)
    te = FolderTask(pair, "par3", remote_extra="max_connections = 3\n")
    r = te.run("-v")
    out = output(r)
    tap.ok(ok_run(r, 40 * len(names)), "parallel: 3 pairs copy all 280 messages", out)
    tap.ok(re.search(r"7 folder\(s\) to copy, 3 side by side", out) is not None,
           "parallel: the log says 3 pairs work side by side", out)
    dd = diff(expected_local(pair, "par3", plan), local_state(pair, "par3"), lambda x: x)
    tap.ok(not dd, "parallel: an exact copy (bytes, flags, dates) in every folder",
           str(dd)[:2000])
    r = te.run("-v")
    out = output(r)
    tap.ok(ok_run(r, 0) and out.count("unchanged since the last run") == len(names) and
           "side by side" not in out,
           "parallel: the rerun copies 0, every folder unchanged, no extra pair", out)

    plan = seeded("par1", 50000)
    te = FolderTask(pair, "par1", remote_extra="max_connections = 1\n")
    r = te.run("-v")
    out = output(r)
    dd = diff(expected_local(pair, "par1", plan), local_state(pair, "par1"), lambda x: x)
    tap.ok(ok_run(r, 280) and "side by side" not in out and not dd,
           "parallel: max_connections = 1 copies the same, one folder at a time",
           out + str(dd)[:1000])

    plan = seeded("park", 60000)
    te = FolderTask(pair, "park", remote_extra="max_connections = 4\n")
    kills, _ = killed_runs(pair, te, "park", names, 69000, random.Random(13), 0.02, 0.3, 8, 60)
    r = te.run()
    tap.ok(ok_run(r) and kills >= 8,
           f"parallel: a run after {kills} SIGKILLs of 4-pair runs exits 0", output(r))
    dd = diff(expected_local(pair, "park", plan), local_state(pair, "park"), lambda x: x[0])
    tap.ok(not dd, "parallel: after the kills an exact copy, nothing doubled",
           str(dd)[:2000])

    # A provider's limit of sessions per account: past the second remote
    # connection the login is refused (a proxy turns the server's OK into
    # NO [LIMIT]).  Those pairs are left out; the others copy everything.
    import threading
    from rewriteproxy import RewriteProxy
    plan = seeded("parlim", 70000)
    seen = {"conns": 0, "refused": 0}
    lock = threading.Lock()

    def limit(kind, data, state):
        if "conn" not in state:
            with lock:
                seen["conns"] += 1
                state["conn"] = seen["conns"]
        if kind != "line":
            return data[0] + data[1]
        if state["conn"] > 2 and not state.get("answered") and \
                re.match(rb"[A-Za-z0-9.]+ OK", data):
            state["answered"] = True
            with lock:
                seen["refused"] += 1
            return data.split(b" ", 1)[0] + \
                b" NO [LIMIT] Maximum number of connections from user+IP exceeded\r\n"
        return data

    proxy = RewriteProxy(pair.remote.imap_port, limit)
    try:
        te = FolderTask(pair, "parlim", security="none")
        te.write_task("parlim", "parlim", "none", proxy.port, "", "max_connections = 4\n")
        r = te.run("-v")
    finally:
        proxy.stop()
    out = output(r)
    dd = diff(expected_local(pair, "parlim", plan), local_state(pair, "parlim"), lambda x: x)
    tap.ok(ok_run(r, 280) and seen["refused"] == 2 and
           out.count("not opened; the others copy its share") == 2 and not dd,
           "parallel: pairs the remote refuses (its session limit) are left out, the "
           "others copy all", f"{seen} " + out[-3000:] + str(dd)[:1000])


# -------------------------------------------------------------------------
# Courier layout remote: INBOX. prefix, '.' separator

def test_courier(pair):
    user = "cour"
    setup_users(pair, user)
    r_ = pair.remote
    assert r_.prefix == "INBOX." and r_.separator == "."
    slash = [msg(206), msg(207, ["\\Seen"])]
    folders = {"INBOX": [msg(200), msg(201, ["\\Seen"])],
               "INBOX.Archive": [msg(202)],
               "INBOX.Archive.2023": [msg(203, ["\\Seen"], days=-100), msg(204, ["work"])],
               "INBOX.Sent": [msg(205, ["\\Seen"])],
               "INBOX.a/b": slash,
               "INBOX.Büro": [msg(208)],
               "INBOX.R&D": [msg(209)],
               "INBOX.Deleted Items": [msg(210, ["\\Seen"])]}
    seed_all(pair, user, folders)
    plan = {"INBOX": "INBOX", "INBOX.Archive": "Archive", "INBOX.Archive.2023": "Archive/2023",
            "INBOX.Sent": "Sent", "INBOX.Büro": "Büro", "INBOX.R&D": "R&D",
            "INBOX.Deleted Items": "Trash"}
    te = FolderTask(pair, user)
    dry = te.run("--dry-run")
    out = output(dry)
    tap.ok(dry.returncode == 0, "courier: dry run exits 0", out)
    tap.ok(all(plan_has(out, rf, lf) for rf, lf in plan.items()),
           "courier: the plan translates names ('INBOX.Archive.2023 -> Archive/2023', "
           "'INBOX.Sent -> Sent', 'INBOX.Deleted Items -> Trash')",
           f"missing: {[(a, b) for a, b in plan.items() if not plan_has(out, a, b)]}\n{out}")
    tap.ok(any("INBOX.a/b" in line and "->" in line for line in out.splitlines()),
           "courier: the plan has a line for 'INBOX.a/b'", out)
    tap.ok(dry.returncode == 0 and local_folders(pair, user) == LOCAL_DEFAULT,
           "courier: the dry run created nothing")

    r = te.run()
    tap.ok(r.returncode == 0 and copied(r) == 11, "courier: run exits 0, copied=11", output(r))
    got = local_state(pair, user)
    exp = expected_local(pair, user, plan)
    check_copy("courier", exp, got,
               folders=set(plan.values()))
    slash_ids = {sha(m["bytes"]) for m in slash}
    holders = [f for f, c in got.items() if slash_ids & {e[0] for e in c}]
    mbs = local_mailboxes(pair, user)
    tap.ok(len(holders) == 1 and
           {e[0] for e in got[holders[0]].elements()} == slash_ids and
           "/" not in holders[0] and "a" not in mbs,
           "courier: 'INBOX.a/b' (a '/' in a '.'-separated name) is one local folder, "
           "escaped, not split into 'a' and child 'b'", f"holders={holders} "
           f"folders={sorted(mbs)}")
    want = LOCAL_DEFAULT | set(plan.values()) | set(holders[:1])
    tap.ok(local_folders(pair, user) == want and not any(
           f.startswith("INBOX") and f != "INBOX" for f in mbs),
           "courier: no 'INBOX.' prefix and no second Sent/Trash locally; exactly the "
           "translated folders", f"want {sorted(want)}\ngot {sorted(local_folders(pair, user))}")
    r = te.run()
    tap.ok(ok_run(r, 0), "courier: a rerun copies 0", output(r))

    # exclusion patterns see the '/' form without the prefix
    user = "courx"
    setup_users(pair, user)
    folders = {"INBOX.Archive": [msg(220)], "INBOX.Archive.2023": [msg(221)],
               "INBOX.Archive.2024": [msg(222)], "INBOX.Keep": [msg(223)]}
    seed_all(pair, user, folders)
    te = FolderTask(pair, user, folders="all-except", exclude=["^Archive/2023$"])
    r = te.run()
    lf = local_folders(pair, user)
    tap.ok(r.returncode == 0 and lf == LOCAL_DEFAULT | {"Archive", "Archive/2024", "Keep"},
           "courier: exclude '^Archive/2023$' matches 'INBOX.Archive.2023' and only it",
           f"{sorted(lf)}\n{output(r)}")
    r = te.run()
    tap.ok(ok_run(r, 0), "courier: exclusion task: a rerun copies 0", output(r))


# -------------------------------------------------------------------------
# special-use by attribute, and a Public namespace left out

ATTR_CONF = """\
namespace inbox {
  mailbox Ausgang7 {
    special_use = \\Sent
  }
  mailbox Muell7 {
    special_use = \\Junk
  }
}
namespace public {
  type = public
  prefix = Public/
  separator = /
  location = maildir:@DIR@/public
  subscriptions = no
  list = yes
}
"""


def test_attributes_and_public(pair):
    uid, gid, _ = mail_account()
    pub = os.path.join(pair.remote.dir, "public")
    os.makedirs(pub, exist_ok=True)
    os.chown(pub, uid, gid)
    user = "attr"
    setup_users(pair, user)
    ann = [msg(230), msg(231)]
    seed(pair.remote, user, "Public/Announcements", ann)
    folders = {"INBOX": [msg(232)], "Ausgang7": [msg(233, ["\\Seen"]), msg(234, ["\\Seen"])],
               "Muell7": [msg(235)]}
    seed_all(pair, user, folders)
    flags = {m["name"]: m["flags"] for m in list_mailboxes(pair.remote, user)}
    tap.ok("\\Sent" in flags.get("Ausgang7", []) and "Public/Announcements" in flags,
           "attributes: (setup) the remote marks Ausgang7 \\Sent and lists a Public namespace",
           flags)
    plan = {"INBOX": "INBOX", "Ausgang7": "Sent", "Muell7": "Junk"}
    te = FolderTask(pair, user)
    r = te.run()
    tap.ok(r.returncode == 0 and copied(r) == 4, "attributes: run exits 0, copied=4", output(r))
    got = local_state(pair, user)
    exp = expected_local(pair, user, plan)
    tap.ok(not diff(exp, got, lambda x: x),
           "attributes: \\Sent 'Ausgang7' -> local Sent, \\Junk 'Muell7' -> local Junk",
           "\n".join(diff(exp, got, lambda x: x)))
    lf = local_folders(pair, user)
    ann_ids = {sha(m["bytes"]) for m in ann}
    tap.ok(r.returncode == 0 and lf == LOCAL_DEFAULT and not any(ann_ids & {e[0] for e in c} for c in got.values())
           and not any(n.startswith("Public") for n in local_mailboxes(pair, user)),
           "attributes: no local Ausgang7/Muell7; the Public namespace is left out",
           sorted(local_mailboxes(pair, user)))
    r = te.run()
    tap.ok(ok_run(r, 0), "attributes: a rerun copies 0", output(r))


# -------------------------------------------------------------------------

def run_tests(tests, pair):
    for t in tests:
        t0 = time.monotonic()
        try:
            t(pair)
        except Exception as e:  # a crash in one test must not hide the others
            import traceback
            tap.ok(False, f"{t.__name__} raised {e!r}", traceback.format_exc())
        tap.diag(f"{t.__name__}: {time.monotonic() - t0:.1f} s")


def test_parallel_faults(pair):
    """Connections lost in the middle of a 3-pair copy.  One cut by the
    remote: its pair's flow gives up, the other flows copy the rest of
    the folders.  All stalled past --timeout: the flows wait in the one
    poll() loop side by side, so they give up together, within one
    timeout.  Each run ends with 75, and the next one converges to an
    exact copy, nothing doubled."""
    from faultproxy import Fault, FaultProxy
    names = ["INBOX", "F1", "F2", "F3", "F4", "F5"]
    for kind in ("cut", "stall"):
        ruser = f"pf{kind}"
        setup_users(pair, ruser)
        folders = {f: [msg(90000 + 1000 * k + i + (500 if kind == "stall" else 0),
                           size=3000 + 11 * i) for i in range(80)]
                   for k, f in enumerate(names)}
        seed_all(pair, ruser, folders)
        plan = {f: f for f in names}
        proxy = FaultProxy(pair.remote.host, pair.remote.imap_port)
        try:
            te = FolderTask(pair, ruser, security="none")
            te.write_task(ruser, ruser, "none", proxy.port, "", "max_connections = 3\n")
            # Past the logins and the first batches: 40% of the bytes.
            proxy.reset(fault=Fault("s2c", 600000, kind, stall_seconds=30))
            t0 = time.monotonic()
            r = te.run("--timeout", "4", "-v")
            fired = proxy.fired
            # From the fault on: the stall's cost, not the copy before it.
            took = time.monotonic() - (fired["at"] if fired else t0)
        finally:
            proxy.close()
        out = output(r)
        got = local_state(pair, ruser)
        copied_now = copied(r)
        arrived = sum(sum(c.values()) for c in got.values())
        if kind == "cut":
            tap.ok(fired is not None and r.returncode == 75 and copied_now is not None and
                   copied_now >= 400 and copied_now == arrived,
                   f"parallel cut: one connection lost, the other flows copy the rest "
                   f"({copied_now} of 480, {arrived} arrived), exit 75", out[-3000:])
        else:
            # The proxy holds every connection: each flow waits in the
            # same poll(), so all give up together, within one --timeout
            # (one after another, two would take 8 s).  A flow caught
            # between two folders says so in the run's error, not in a
            # folder warning: at least two warnings.
            stalled = len(re.findall(r"warning: folder \S+: remote: .* sent nothing for 4 s",
                                     out))
            tap.ok(fired is not None and r.returncode == 75 and stalled >= 2 and took < 8 and
                   copied_now == arrived,
                   f"parallel stall: the {stalled} stalled flows give up together after "
                   f"--timeout 4 ({took:.1f} s after the stall), exit 75", out[-3000:])
        te.write_task(ruser, ruser, "none", pair.remote.imap_port, "", "max_connections = 3\n")
        r = te.run()
        dd = diff(expected_local(pair, ruser, plan), local_state(pair, ruser), lambda x: x)
        tap.ok(ok_run(r) and not dd and got is not None,
               f"parallel {kind}: the next run converges to an exact copy, nothing doubled",
               output(r)[-2000:] + str(dd)[:2000])


def test_many_spooled(pair):
    """Eight pairs, each with a batch in flight and the next fetched
    ahead: thousands of message bodies are held at once, nearly all in
    spool files (past the 1 MiB kept in memory).  Under the soft limit
    of 1,024 open files that systemd gives a service, the run still
    copies everything exactly: bodies share spool files, and the worker
    raises its soft limit to the hard one."""
    import resource
    names = ["INBOX"] + [f"Bulk/{k}" for k in range(7)]
    setup_users(pair, "spool8")
    folders = {f: [msg(80000 + 500 * k + i, size=5000 + 7 * i) for i in range(400)]
               for k, f in enumerate(names)}
    seed_all(pair, "spool8", folders)
    te = FolderTask(pair, "spool8", remote_extra="max_connections = 8\n")
    # SIGTERM while several flows are in the middle of their batches:
    # the one poll() loop wakes them all, and the run ends with 75.
    p = subprocess.Popen(te.argv("run", "-v", te.name), stderr=subprocess.PIPE, text=True)
    fetching, seen = set(), []
    for line in p.stderr:
        seen.append(line)
        m = re.search(r"batch: fetching \d+ message\(s\) of (\S+)", line)
        if m:
            fetching.add(m.group(1))
        if len(fetching) >= 3:
            break
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=60)[1]
    took = time.monotonic() - t0
    tap.ok(len(fetching) >= 3 and p.returncode == 75 and took < 10 and
           "stopped by a signal" in rest,
           f"many spooled: SIGTERM with {len(fetching)} flows copying ends the run with "
           f"75 in {took:.1f} s", "".join(seen[-20:]) + rest[-2000:])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        r = te.run("-v")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    out = output(r)
    tap.ok(ok_run(r) and re.search(r"folder\(s\) to copy, [2-8] side by side", out),
           "many spooled: 8 pairs copy the rest of 3,200 messages under a soft limit of "
           "1,024 files",
           out[-3000:])
    dd = diff(expected_local(pair, "spool8", {f: f for f in names}),
              local_state(pair, "spool8"), lambda x: x)
    tap.ok(not dd, "many spooled: an exact copy (bytes, flags, dates)", str(dd)[:2000])


def main():
    with DovecotPair(name="folders") as pair:
        run_tests((test_main, test_special_names, test_preseeded, test_exclusions,
                   test_after_sync, test_after_sync_quota, test_older_than,
                   test_select_refused, test_skipped, test_big, test_kill_sweep,
                   test_random_kills, test_parallel, test_parallel_faults,
                   test_many_spooled), pair)
    with DovecotPair(name="folders-courier", layout="courier") as pair:
        run_tests((test_courier,), pair)
    with DovecotPair(name="folders-attr", remote_extra_conf=ATTR_CONF) as pair:
        run_tests((test_attributes_and_public,), pair)
    tap.done()


if __name__ == "__main__":
    main()
