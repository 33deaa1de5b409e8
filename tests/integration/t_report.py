#!/usr/bin/python3
"""What an admin sees of a task (issue 12):

  - list and status tell the last result and why: the error and its side,
    the remote host, the folder mode, the deletion policy with its days;
    a task file with an invalid name or that does not load is listed as
    such, never skipped; run records of the previous format still read;
  - list --json and status --json: valid JSON (parsed with the json
    module), exactly the documented keys (every one in imapsync-task(8)),
    strings escaped (quotes, control characters, invalid UTF-8);
  - progress of a run: sd_notify STATUS= texts (caught on a NOTIFY_SOCKET
    of our own: folder, done/total, bytes, rate, ETA, a few per second at
    most), a \\r-rewritten line on a terminal (a pty), log lines with -v;
  - -v names each step (connect, login, select, batches, deletion); -vv
    is the protocol trace: line ends shown as \\r\\n, server data kept,
    credentials and message bodies never shown.

The unit's own failures (243/CREDENTIALS) and STATUS= under a real
systemd are in t_systemd_e2e.py.  Prints TAP."""

import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, seed  # noqa: E402
from throttleproxy import ThrottleProxy  # noqa: E402
from worker import BIN, TOP_SRCDIR, Tap, TaskEnv, output  # noqa: E402

tap = Tap()

# The documented, stable keys (imapsync-task(8), JSON OUTPUT).
LIST_KEYS = {"version", "tasks"}
TASK_KEYS = {"name", "file", "valid", "config_error", "folders", "schedule", "delivery",
             "delete_policy", "delete_days", "local_user", "remote_host", "remote_port",
             "remote_user", "remote_security", "state_dir", "result", "result_source",
             "result_time", "error", "error_side", "running", "progress", "last_run", "unit"}
RUN_KEYS = {"start", "end", "exit_code", "verdict", "copied", "skipped", "deleted", "errors",
            "bytes", "error", "error_side"}
UNIT_KEYS = {"name", "active_state", "sub_state", "result", "exec_main_code",
             "exec_main_status", "failure", "status_text", "changed"}
STATUS_EXTRA_KEYS = {"version", "runs", "totals", "journal", "journal_error"}
TOTALS_KEYS = {"runs", "first_start", "last_end", "copied", "skipped", "deleted", "errors",
               "bytes"}
JOURNAL_KEYS = {"pending", "delivered", "seen", "skipped"}


def clean_env(extra=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "JOURNAL_STREAM",
                      "IMAPSYNC_TASK_CONFIG_DIR", "NOTIFY_SOCKET")}
    # A developer box whose PID 1 is systemd must not add unit facts here.
    e["IMAPSYNC_TASK_NO_SYSTEMD"] = "1"
    if extra:
        e.update(extra)
    return e


def run(*args, env=None, text=True):
    return subprocess.run([BIN, *args], capture_output=True, text=text, env=clean_env(env),
                          timeout=120)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    os.chmod(path, mode)


def parse_json(r, what):
    """The command's stdout as JSON (bytes decoded strictly as UTF-8)."""
    raw = r.stdout if isinstance(r.stdout, bytes) else r.stdout.encode()
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        tap.ok(False, f"{what}: valid JSON ({e})", raw[:2000])
        return None


def by_name(doc):
    return {t["name"]: t for t in doc["tasks"]}


# --------------------------------------------------------------------------
# list and status without servers

def make_config(base):
    etc = os.path.join(base, "etc")
    write(os.path.join(etc, "imapsync-task.conf"),
          "[local]\nhost = 127.0.0.1\nport = 1143\nsecurity = starttls\n"
          f"master_password_file = {etc}/master.pwd\n")
    write(os.path.join(etc, "master.pwd"), "master-secret\n", 0o600)
    t = os.path.join(etc, "tasks")
    write(os.path.join(t, "good.ini"),
          "[task]\nlocal_user = john\nfolders = inbox\ninterval = 15min\n"
          "delete = older-than\ndelete_older_than_days = 30\n"
          "[remote]\nhost = imap.example.org\nport = 993\nsecurity = tls\n"
          "user = john@example.org\n")
    write(os.path.join(t, "good.pwd"), "remote-secret\n", 0o600)
    write(os.path.join(t, "mig.ini"),
          "[task]\nlocal_user = jane\nfolders = all\ninterval = manual\n"
          "delete = after-sync\n"
          "[remote]\nhost = old.example.net\nuser = jane\n")
    write(os.path.join(t, "mig.pwd"), "x\n", 0o600)
    write(os.path.join(t, "broken.ini"),
          "[task]\nlocal_user = bob\nfolders = everything\ninterval = 15min\n"
          "[remote]\nhost = h\nuser = u\n")
    write(os.path.join(t, "broken.pwd"), "p\n", 0o600)
    write(os.path.join(t, "b@d.ini"),
          "[task]\nlocal_user = x\n[remote]\nhost = h\nuser = u\n")
    write(os.path.join(t, "nopwd.ini"),
          "[task]\nlocal_user = nick\ninterval = manual\n"
          "[remote]\nhost = imap.example.com\nuser = nick\n")
    # A name that is not UTF-8: listed, and the JSON stays valid UTF-8.
    write(os.path.join(t.encode(), b"caf\xe9.ini"), "[task]\n")
    return etc


def check_keys(obj, keys, what):
    got = set(obj.keys()) if isinstance(obj, dict) else None
    tap.ok(got == keys, f"{what}: exactly the documented keys",
           f"missing {sorted(keys - (got or set()))}, unknown {sorted((got or set()) - keys)}")


def test_list_status(base):
    etc = make_config(base)
    state = os.path.join(base, "state")
    common = ["--config-dir", etc, "--state-dir", state]

    r = run(*common, "list")
    tap.ok(r.returncode == 0, "list exits 0 with broken task files among the good", output(r))
    out = r.stdout
    tap.ok(re.search(r"^good\s+inbox\s+15min\s+never\s+never\s+-\s+-\s+-\s+"
                     r"imap\.example\.org:993\s+older-than:30d$", out, re.M),
           "list: folder mode, schedule, remote host, deletion policy with its days", out)
    tap.ok(re.search(r"^mig\s+all\s+manual\s+never\s+never\s.*old\.example\.net:143\s+"
                     r"after-sync$", out, re.M), "list: folders = all, after-sync", out)
    tap.ok(re.search(r"^broken\s+\(invalid\)\s+-\s+never\s+invalid\s", out, re.M) and
           re.search(r"^    error \(config\): \S*broken\.ini:3: folders:", out, re.M),
           "a task file that does not load is listed as invalid, with its first error", out)
    tap.ok(re.search(r"^b@d\s+\(invalid-name\)\s.*\binvalid\b", out, re.M) and
           "b@d.ini: invalid task name" in out,
           "a task file with an invalid name is listed as such, not skipped", out)
    tap.ok(re.search(r"^caf.\s+\(invalid-name\)", out, re.M),
           "a file name that is not UTF-8 is listed too", out)
    tap.ok(re.search(r"^nopwd\s+inbox\s+manual\s+never\s+never\s", out, re.M) and
           re.search(r"^    problem \(config\): .*nopwd\.pwd", out, re.M),
           "a task without its password file: shown, with the problem", out)

    r = run(*common, "list", "--json", text=False)
    doc = parse_json(r, "list --json")
    tap.ok(r.returncode == 0 and doc is not None, "list --json exits 0 with JSON on stdout",
           r.stderr)
    if doc is None:
        return
    check_keys(doc, LIST_KEYS, "list --json")
    tap.ok(doc.get("version") == 1, "list --json: version 1")
    tasks = by_name(doc)
    tap.ok(sorted(tasks) == sorted(["b@d", "broken", "caf\ufffd", "good", "mig", "nopwd"]),
           "list --json: every task file, in order of name", sorted(tasks))
    for name, t in sorted(tasks.items()):
        check_keys(t, TASK_KEYS, f"list --json task {name!r}")
    g = tasks["good"]
    tap.ok(g["valid"] is True and g["config_error"] is None and g["folders"] == "inbox" and
           g["schedule"] == "15min" and g["delivery"] == "append" and
           g["delete_policy"] == "older-than" and g["delete_days"] == 30 and
           g["local_user"] == "john" and g["remote_host"] == "imap.example.org" and
           g["remote_port"] == 993 and g["remote_user"] == "john@example.org" and
           g["remote_security"] == "tls" and g["state_dir"] == os.path.join(state, "good"),
           "list --json: the task's settings", g)
    tap.ok(g["result"] == "never" and g["result_source"] is None and g["result_time"] is None
           and g["error"] is None and g["error_side"] is None and g["running"] is False and
           g["progress"] is None and g["last_run"] is None and g["unit"] is None,
           "list --json: never run, no unit (no systemd here)", g)
    m = tasks["mig"]
    tap.ok(m["folders"] == "all" and m["schedule"] == "manual" and
           m["delete_policy"] == "after-sync" and m["delete_days"] is None,
           "list --json: after-sync has no days", m)
    b = tasks["broken"]
    tap.ok(b["valid"] is False and b["result"] == "invalid" and b["result_source"] == "config"
           and "broken.ini:3: folders:" in (b["config_error"] or "") and
           b["error"] == b["config_error"] and b["error_side"] == "config" and
           b["folders"] is None and b["remote_host"] is None,
           "list --json: a broken task file: valid false, its error", b)
    d = tasks["b@d"]
    tap.ok(d["valid"] is False and "invalid task name" in (d["config_error"] or "") and
           d["state_dir"] is None and d["result"] == "invalid",
           "list --json: an invalid name: valid false, no state directory", d)
    n = tasks["nopwd"]
    tap.ok(n["valid"] is True and "nopwd.pwd" in (n["config_error"] or "") and
           n["result"] == "never", "list --json: a missing password file is a config_error of a "
           "valid task", n)

    # Run records of the previous format (eight numbers a line) still read.
    write(os.path.join(state, "mig", "runs"),
          "1700000000 1700000060 0 12 1 3 0 45678\n1700003600 1700003601 75 0 0 0 1 0\n")
    write(os.path.join(state, "mig", "totals"), "2 1700000000 1700003601 75 12 1 3 1 45678\n")
    r = run(*common, "list")
    tap.ok(re.search(r"^mig\s+all\s+manual\s+\S+ \S+\s+temporary-failure\s+0\s+0\s+0\s", r.stdout,
                     re.M) and not re.search(r"^mig.*\n    error", r.stdout, re.M),
           "old run records: the last result, no reason (none was recorded)", r.stdout)
    r = run(*common, "status", "--json", "mig", text=False)
    s = parse_json(r, "status --json (old records)")
    if s is not None:
        check_keys(s, TASK_KEYS | STATUS_EXTRA_KEYS, "status --json")
        tap.ok(r.returncode == 0 and len(s["runs"]) == 2 and s["runs"][0]["copied"] == 12 and
               s["runs"][0]["verdict"] == "ok" and s["runs"][1]["exit_code"] == 75 and
               s["runs"][1]["error"] is None and s["runs"][1]["error_side"] is None,
               "status --json: the old records, oldest first", s["runs"])
        for i, rr in enumerate(s["runs"]):
            check_keys(rr, RUN_KEYS, f"status --json runs[{i}]")
        check_keys(s["totals"], TOTALS_KEYS, "status --json totals")
        tap.ok(s["totals"]["runs"] == 2 and s["totals"]["copied"] == 12 and
               s["totals"]["first_start"] == 1700000000, "status --json: totals", s["totals"])
        check_keys(s["journal"], JOURNAL_KEYS, "status --json journal")
        tap.ok(s["journal"] == {"pending": 0, "delivered": 0, "seen": 0, "skipped": 0} and
               s["journal_error"] is None, "status --json: an empty journal", s)
        tap.ok(s["last_run"] == s["runs"][-1] and s["result"] == "temporary-failure" and
               s["result_source"] == "run" and s["result_time"] == 1700003601,
               "status --json: last_run is the newest record", s)

    # A failed run: its reason is recorded and shown, with its side.
    write(os.path.join(etc, "tasks", "good.ini"),
          "[task]\nlocal_user = john\nfolders = inbox\ninterval = 15min\n"
          "delete = older-than\ndelete_older_than_days = 7\n"
          "[remote]\nhost = 127.0.0.1\nport = 1\nsecurity = none\nuser = john\n")
    r = run(*common, "--timeout", "3", "run", "good")
    tap.ok(r.returncode == 69, "a run against a closed port: 69", output(r))
    runs = open(os.path.join(state, "good", "runs")).read()
    tap.ok(re.search(r"^\d+ \d+ 69 0 0 0 1 0 side=remote error=remote: .*127\.0\.0\.1:1",
                     runs, re.M), "the run record keeps the reason and its side", runs)
    r = run(*common, "list")
    tap.ok(re.search(r"^good\s+inbox\s+15min\s+\S+ \S+\s+unavailable\s+0\s+0\s+0\s+127\.0\.0\.1:1"
                     r"\s+older-than:7d\n    error \(remote\): remote: .*127\.0\.0\.1:1",
                     r.stdout, re.M), "list tells the reason and its side", r.stdout)
    r = run(*common, "status", "good")
    tap.ok(r.returncode == 0 and "remote: john@127.0.0.1:1 (none)" in r.stdout and
           "delete older-than (7 days)" in r.stdout and
           re.search(r"^last result: unavailable at ", r.stdout, re.M) and
           re.search(r"^last error \(remote\): remote: .*127\.0\.0\.1:1", r.stdout, re.M) and
           re.search(r"exit 69 .*\n      error \(remote\): ", r.stdout),
           "status tells the remote, the deletion days, the last result and why", r.stdout)
    r = run(*common, "status", "--json", "nopwd", text=False)
    s = parse_json(r, "status --json of a task never run")
    tap.ok(r.returncode == 0 and s is not None and s["runs"] == [] and s["totals"] is None and
           s["journal"] is None and s["last_run"] is None and s["result"] == "never",
           "status --json of a task never run: no runs, no totals, no journal", s)
    r = run(*common, "status", "--json", "good", text=False)
    s = parse_json(r, "status --json")
    if s is not None:
        tap.ok(s["result"] == "unavailable" and s["error_side"] == "remote" and
               "127.0.0.1:1" in s["error"] and s["last_run"]["exit_code"] == 69 and
               s["last_run"]["error_side"] == "remote" and s["delete_days"] == 7,
               "status --json: the result, the error and its side", s)

    # Escaping: quotes, backslashes, control characters, UTF-8, invalid UTF-8.
    nasty = 'remote: said "no" \\ to C:\\x \u00fcml\u00e4ut \u20ac'.encode() + b" bad\xff\xfebyte"
    write(os.path.join(state, "mig", "runs"),
          b"1700000000 1700000060 77 0 0 0 1 0 side=remote error=" + nasty + b"\n")
    r = run(*common, "list", "--json", text=False)
    doc = parse_json(r, "list --json with a nasty error")
    if doc is not None:
        e = by_name(doc)["mig"]["error"]
        tap.ok(e == 'remote: said "no" \\ to C:\\x \u00fcml\u00e4ut \u20ac bad\ufffd\ufffdbyte',
               "list --json: quotes, backslashes and UTF-8 kept, invalid bytes U+FFFD", repr(e))
    r = run(*common, "status", "--json", "mig", text=False)
    tap.ok(parse_json(r, "status --json with a nasty error") is not None,
           "status --json with the same: valid JSON")

    # status of a task that does not load / an invalid name, in JSON: still
    # an object, and 78.
    r = run(*common, "status", "--json", "broken", text=False)
    s = parse_json(r, "status --json of a broken task")
    tap.ok(r.returncode == 78 and s is not None and s["valid"] is False and
           "folders:" in s["config_error"], "status --json of a broken task: 78, valid false",
           s)
    r = run(*common, "status", "--json", "b@d", text=False)
    s = parse_json(r, "status --json of an invalid name")
    tap.ok(r.returncode == 78 and s is not None and s["valid"] is False,
           "status --json of an invalid name: 78, valid false", s)
    r = run(*common, "status", "broken")
    tap.ok(r.returncode == 78 and "broken.ini:3: folders:" in r.stderr,
           "status of a broken task (text): its errors, 78", output(r))
    r = run(*common, "run", "--json", "good")
    tap.ok(r.returncode == 64, "--json outside list and status: 64", output(r))
    r = run("--help")
    tap.ok("list [--json]" in r.stdout and "status [--json] NAME" in r.stdout,
           "--help names --json", r.stdout)

    # Every key is documented, in the man page's JSON OUTPUT section.
    man = open(os.path.join(TOP_SRCDIR, "man", "imapsync-task.8")).read()
    m = re.search(r"^\.SH JSON OUTPUT\n(.*?)^\.SH ", man, re.M | re.S)
    section = m.group(1) if m else ""
    keys = LIST_KEYS | TASK_KEYS | RUN_KEYS | UNIT_KEYS | STATUS_EXTRA_KEYS | TOTALS_KEYS | \
        JOURNAL_KEYS
    missing = sorted(k for k in keys
                     if not re.search(r"^\.B %s$" % re.escape(k), section, re.M))
    tap.ok(section and not missing, "every JSON key is documented in imapsync-task(8), "
           "section JSON OUTPUT", missing)


# --------------------------------------------------------------------------
# progress and verbosity against a Dovecot pair

class NotifySocket:
    """A NOTIFY_SOCKET of our own: every datagram, with its arrival time."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.got.append((time.monotonic(), data.decode("utf-8", "replace")))

    def close(self):
        time.sleep(0.3)
        self.stop.set()
        self.thread.join(5)
        self.sock.close()

    def statuses(self):
        out = []
        for t, d in self.got:
            for line in d.split("\n"):
                if line.startswith("STATUS="):
                    out.append((t, line[7:]))
        return out


def run_on_pty(argv, env):
    """Run with stderr (and stdout) on a terminal; all it wrote."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:        # EIO: the other end is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    p.wait(timeout=300)
    return p.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_progress(pair, tmp):
    pair.remote.add_user("pia")
    pair.local.add_user("pia")
    n = 300
    seed(pair.remote, "pia", "INBOX", [make_message(i, size=3000) for i in range(n)])
    with ThrottleProxy(pair.remote.host, pair.remote.imap_port, rate=400_000) as proxy:
        te = TaskEnv(pair, "pia")
        te.write_task("pia", "pia", "starttls", proxy.port)
        ns = NotifySocket(tmp)
        t0 = time.monotonic()
        r = te.run(env={"NOTIFY_SOCKET": ns.path})
        took = time.monotonic() - t0
        ns.close()
    tap.ok(r.returncode == 0 and f"copied={n}" in output(r),
           f"a throttled run of {n} messages ({took:.1f} s)", output(r)[-2000:])
    st = ns.statuses()
    texts = [s for _, s in st]
    tap.diag("STATUS= texts: %d, e.g. %s" % (len(texts), texts[:3] + texts[-3:]))
    tap.ok(texts and texts[0].startswith("connecting to remote "),
           "the first status: connecting to the remote", texts[:3])
    prog = [s for s in texts if re.match(r"INBOX: \d+/%d messages, " % n, s)]
    tap.ok(len(prog) >= 3, f"STATUS= tells the folder and messages done/total ({len(prog)})",
           texts)
    full = [s for s in prog if re.match(r"INBOX: \d+/\d+ messages, [\d.]+ [kMG]?B, [\d.]+ "
                                        r"[kMG]?B/s, ETA \d+:\d\d$", s)]
    tap.ok(full, "a STATUS= text with bytes, rate and ETA", prog)
    done = [int(re.match(r"INBOX: (\d+)/", s).group(1)) for s in prog]
    tap.ok(done == sorted(done) and done[-1] == n, "messages done only grow, to the total",
           done)
    tap.ok(texts[-1].startswith(f"ok: copied {n}, skipped 0, deleted 0 (exit 0)"),
           "the last status: the result", texts[-1])
    # At most one update per PROGRESS_MIN_INTERVAL (0.25 s), but for the
    # two sent at once at the end (the folder's last state, the result).
    times = [t for t, _ in st][:-2]
    gaps = [b - a for a, b in zip(times, times[1:])]
    tap.ok(all(g >= 0.18 for g in gaps), "updates are rate-limited (smallest gap %.3f s)"
           % (min(gaps) if gaps else -1), ["%.3f" % g for g in gaps])
    tap.ok(len(st) <= took / 0.25 + 3, f"a few updates per second at most ({len(st)} in "
           f"{took:.1f} s)")
    tap.ok("\r" not in r.stderr and "processed" not in r.stderr,
           "not a terminal, no -v: no progress lines on stderr", r.stderr[-1500:])

    # A terminal: the same news on one line, rewritten in place.
    pair.remote.add_user("tom")
    pair.local.add_user("tom")
    seed(pair.remote, "tom", "INBOX", [make_message(i, size=2000) for i in range(150)])
    te = TaskEnv(pair, "tom")
    env = clean_env()
    code, out = run_on_pty(te.argv("run", "tom"), env)
    tap.ok(code == 0 and "copied=150" in out, "a run on a terminal", out[-1500:])
    tap.ok(re.search(r"\rINBOX: \d+/150 messages, [^\r\n]*\x1b\[K", out) is not None,
           "on a terminal: a progress line rewritten with \\r", repr(out[-800:]))
    tap.ok(re.search(r"\rINBOX: 150/150 messages, [^\r\n]*\x1b\[K\r?\n", out) is not None,
           "the folder's last state stays on its own line", repr(out[-800:]))
    tap.ok(not re.search(r"\x1b\[K[^\r\n]*imapsync-task\[tom\]: summary", out),
           "log lines never run into the progress line", repr(out[-800:]))


def test_verbose(pair):
    pair.remote.add_user("vic")
    pair.local.add_user("vic")
    marker = "BODY-MARKER-7f3a9c"
    seed(pair.remote, "vic", "INBOX",
         [make_message(i, size=1500, subject=f"{marker} {i}") for i in range(70)])
    te = TaskEnv(pair, "vic", task_extra="delete = after-sync\n")
    r = te.run("-v")
    out = r.stderr
    tap.ok(r.returncode == 0 and "copied=70" in out and "deleted=70" in out,
           "a -v run copies and deletes", out[-1500:])
    steps = [("connect", r"connecting to remote \S+:\d+ \(starttls\)"),
             ("remote login", r"logging in to remote as vic"),
             ("local connect", r"connecting to local \S+:\d+ \(starttls\)"),
             ("local login", r"logging in to local as vic\*vmail"),
             ("select", r"selecting remote folder INBOX"),
             ("batches", r"batch: fetching \d+ message\(s\) of INBOX, UID 1:\d+"),
             ("batch progress", r"INBOX: \d+/70 messages, "),
             ("all through", r"INBOX: 70/70 messages, "),
             ("marking", r"marking \d+ delivered message\(s\) \\Seen on the remote"),
             ("deletion", r"deleting 70 message\(s\) in remote folder INBOX")]
    for what, rx in steps:
        tap.ok(re.search(r"^imapsync-task\[vic\]: " + rx, out, re.M),
               f"-v shows the step: {what}", out[-3000:])
    tap.ok(" >> " not in out and " << " not in out, "-v has no protocol trace")

    pair.remote.add_user("wes", "wes-Remote-Pw-1234")
    pair.local.add_user("wes")
    seed(pair.remote, "wes", "INBOX",
         [make_message(i, size=1200, subject=f"{marker} {i}") for i in range(3)])
    te = TaskEnv(pair, "wes")
    r = te.run("-v", "-v")
    out = r.stderr
    tap.ok(r.returncode == 0 and "copied=3" in out, "a -vv run", out[-1500:])
    trace = [l for l in out.splitlines() if " >> " in l or " << " in l]
    tap.diag("trace: %d lines, e.g.\n%s" % (len(trace), "\n".join(trace[:12])))
    has = lambda rx: any(re.search(rx, l) for l in trace)  # noqa: E731
    tap.ok(has(r"remote << \* OK .*\\r\\n$"), "-vv: the greeting, line end shown as \\r\\n")
    tap.ok(has(r"remote >> t\d+ STARTTLS\\r\\n$"), "-vv: a command with its \\r\\n")
    tap.ok(has(r"remote << \* CAPABILITY IMAP4rev1 .*\\r\\n$"),
           "-vv: server data kept (CAPABILITY)")
    tap.ok(has(r"remote << \* ESEARCH \(TAG \"t\d+\"\) UID ALL 1:3\\r\\n$"),
           "-vv: server data kept (the SEARCH answer)")
    tap.ok(has(r"remote << \* \d+ FETCH \(.*BODY\[\] \{\d+\}\\r\\n$") and
           has(r"remote << <literal: \d+ bytes of message data, not shown>$"),
           "-vv: the FETCH line, its body left out")
    tap.ok(has(r"local \(Dovecot master user\) >> \{\d+\+?\}\\r\\n$") and
           has(r"local \(Dovecot master user\) >> <literal: \d+ bytes of message data, not "
               r"shown>$"), "-vv: APPEND's literal announced, its body left out")
    tap.ok(has(r">> <credentials, not shown>$"), "-vv: credentials left out")
    tap.ok(marker not in out and "This is test message" not in out,
           "-vv: no byte of any message (header or body) in the output")
    tap.ok("wes-Remote-Pw-1234" not in out and pair.master_password not in out,
           "-vv: no password in the output")
    tap.ok("\r" not in out and not any("??" in l for l in trace),
           "-vv: no raw CR, no line end shown as ??")


def main():
    base = tempfile.mkdtemp(prefix="t_report-")
    try:
        try:
            test_list_status(base)
        except Exception as e:
            import traceback
            tap.ok(False, f"test_list_status raised {e!r}", traceback.format_exc())
        with DovecotPair(name="report") as pair:
            for t in (test_progress, test_verbose):
                try:
                    t(pair, base) if t is test_progress else t(pair)
                except Exception as e:  # one failing part must not hide the others
                    import traceback
                    tap.ok(False, f"{t.__name__} raised {e!r}", traceback.format_exc())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
