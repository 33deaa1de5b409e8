#!/usr/bin/env python3
"""t_systemd_e2e.py - the units, the generator and the worker under a real
systemd (PID 1 of a throwaway Debian bookworm booted with systemd-nspawn).

Tasks in the container: alpha (15min) and beta (1h) scheduled, byhand
(manual), broken (unknown key), nopwd (manual, no password file), moved
(manual, password file elsewhere + a LoadCredential= drop-in) and probe
(manual; its service instance runs a probe script instead of the worker,
with the template's full sandbox).  The files are in place before boot, so
the boot-time generator run is what makes the timers; gamma (30min) is added
later to test daemon-reload + "systemctl start timers.target"; dove and
dovecheck (manual) are added last, pointing at a DovecotPair.

Asserts now:
  - the container boots; the worker and generator find their libraries;
  - timers exist for exactly the scheduled tasks, with the generated
    intervals (TimersMonotonic), drop-in and SourcePath=;
  - a task added later gets its timer after daemon-reload;
  - imapsync-task@alpha.service runs the worker under the full hardening:
    it exits with a documented worker code -- 69, as nothing listens on
    the configured 127.0.0.1:1 -- as a dynamic user, and its output is in
    the journal, without the passwords;
  - the probe sees what the worker needs and nothing more: both
    credentials, a writable $STATE_DIRECTORY, readable task files, no raw
    password files, read-only /etc, no /home, no capabilities,
    no_new_privs, seccomp;
  - a missing password file fails the unit with 243/CREDENTIALS; a
    LoadCredential= drop-in for a password file elsewhere replaces the
    template's credential of the same ID;
  - "imapsync-task list" (and --json, status) in the container reads the
    units over sd-bus: nopwd's last result is 243/CREDENTIALS, from the
    unit, side config; alpha's is the worker's own record (unavailable,
    side remote) with its unit's exit status; the broken task file is
    listed as invalid;
  - systemd-analyze security (online, in the container) stays <= 1.5;
  - with a DovecotPair (tests/lib/dovecot.py) on the host: "check
    --connect" under the template logs in to both sides; a run imports
    the remote INBOX byte for byte; a second run copies nothing; a run
    slowed down by a throttling proxy shows its progress (sd_notify
    STATUS=: folder, done/total, bytes, rate, ETA) in "systemctl show -p
    StatusText" and "systemctl status" while it lasts, and "list" shows
    it running; two tasks for that account started at once take turns
    through the shared account locks (StateDirectory=imapsync-task/.locks,
    one User=), every message arriving once, while each task still sees
    no other's state.
TODO(worker) below: folders = all, LMTP/Sieve delivery, deletion.

Needs root; installs systemd-container and debootstrap when missing; the
root file system is cached in /var/cache/imapsync-task-test/.  Bounded:
every step has a timeout and the whole test a deadline; the container is
torn down on every exit path.  Prints TAP.
"""
import collections
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", ".")
WORKER = os.environ.get("IMAPSYNC_TASK_BIN", "")
GENERATOR = os.environ.get("IMAPSYNC_TASK_GENERATOR", "")
NSPAWN_SH = os.path.join(TOP_SRCDIR, "tests", "lib", "nspawn.sh")

DEADLINE_SEC = 1500          # whole test, cold cache included
T_SHORT = 30                 # one systemctl/journalctl call
T_RUN = 120                  # one worker run
DYNAMIC_UID_RANGE = range(61184, 65520)
GENERATOR_DIR = "/usr/lib/systemd/system-generators"
STANDARD_UNIT_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system",
                      "/lib/systemd/system", "/usr/lib/systemd/system")
# The exit codes imapsync-task(8) documents.
WORKER_EXIT_CODES = {0, 2, 64, 65, 69, 70, 73, 74, 75, 76, 77, 78}

# TAP through the shared helper (tests/lib/worker.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from worker import Tap  # noqa: E402

_tap = Tap()
ok = _tap.ok
diag = _tap.diag


class Abort(Exception):
    """A step that later steps depend on failed, or time ran out."""


def on_signal(signum, frame):
    raise Abort("signal %d" % signum)


def run(argv, timeout, check=False, env=None):
    """Run ARGV in a process group of its own, so that a timeout or a
    signal to this test ends its children too (tar, debootstrap, ...)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise Abort("timed out after %ss: %s" % (timeout, " ".join(argv)))
        raise
    r = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and r.returncode != 0:
        diag(r.stdout + r.stderr)
        raise Abort("failed (%d): %s" % (r.returncode, " ".join(argv)))
    return r


# --- the container ---------------------------------------------------------

class Container:
    def __init__(self, name):
        self.name = name
        self.root = None
        self.proc = None
        self.leader = None
        self.log_path = None

    def make_root(self):
        self.root = tempfile.mkdtemp(prefix="imapsync-task-e2e.", dir="/var/tmp")
        run(["sh", NSPAWN_SH, "rootfs", self.root], timeout=1300, check=True)

    def boot(self):
        self.log_path = os.path.join(os.path.dirname(self.root),
                                     os.path.basename(self.root) + ".console")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["sh", NSPAWN_SH, "boot", self.name, self.root],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        r = run(["sh", NSPAWN_SH, "leader", str(self.proc.pid), "30"], timeout=40)
        if r.returncode != 0:
            diag(r.stderr)
            raise Abort("the container did not start")
        self.leader = r.stdout.strip()

    def enter(self, argv, timeout=T_SHORT, check=False):
        return run(["nsenter", "--target", self.leader, "--all", "--"] + argv,
                   timeout=timeout, check=check)

    def systemctl(self, *args, timeout=T_SHORT, check=False):
        return self.enter(["systemctl", "--no-pager"] + list(args), timeout, check)

    def show(self, unit, *props):
        """PROPS of UNIT; an array property (TimersMonotonic=) comes as
        one line per element: those are joined with newlines."""
        r = self.systemctl("show", unit, *("-p" + p for p in props), check=True)
        out = {}
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = out[k] + "\n" + v if k in out else v
        return out

    def journal(self, *match, until=None, wait=10):
        """Entries matching MATCH; journald stores stream lines a little
        after the unit ended, so poll until UNTIL(entries) holds (default:
        any entry) or WAIT seconds passed."""
        until = until or (lambda entries: len(entries) > 0)
        deadline = time.monotonic() + wait
        while True:
            r = self.enter(["journalctl", "--no-pager", "-b", "-o", "json"] + list(match),
                           check=True)
            entries = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
            if until(entries) or time.monotonic() > deadline:
                return entries
            time.sleep(0.2)

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def teardown(self):
        if self.proc is not None:
            run(["sh", NSPAWN_SH, "stop", self.name, str(self.proc.pid), self.leader or ""],
                timeout=90)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        if self.proc is not None and self.proc.poll() is None:
            diag("nspawn still running; leaving %s in place" % self.root)
            return
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.log_path and os.path.exists(self.log_path):
            if _tap.failed:
                with open(self.log_path, errors="replace") as f:
                    diag("container console (tail):")
                    lines = [l for l in f.read().splitlines() if l.strip()]
                    diag("\n".join(lines[-30:]))
            os.unlink(self.log_path)


# --- what gets installed ---------------------------------------------------

def built_unit_facts():
    """(sbin path of the worker, config dir) as the built service says."""
    with open(os.path.join(TOP_BUILDDIR, "units", "imapsync-task@.service")) as f:
        text = f.read()
    exec_path = conf_dir = None
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            exec_path = line.split("=", 1)[1].split()[0]
        if line.startswith("Environment=IMAPSYNC_TASK_CONFIG_DIR="):
            conf_dir = line.split("=", 2)[2]
    if not exec_path or not conf_dir:
        raise Abort("cannot find ExecStart= or the config dir in the built service")
    return exec_path, conf_dir


def task_ini(interval, extra="", remote_extra=""):
    # Nothing listens on 127.0.0.1:1: a run ends with 69 (unavailable).
    return ("[task]\nlocal_user = alice\nfolders = inbox\ndelete = never\n"
            "delivery = append\ninterval = %s\n%s\n"
            "[remote]\nhost = 127.0.0.1\nport = 1\nsecurity = none\nuser = bob\n%s"
            % (interval, extra, remote_extra))


LOCAL_CONF = ("[local]\nhost = 127.0.0.1\nport = 1\nsecurity = none\n"
              "master_user = vmail\nmaster_separator = *\n")

# name -> (interval or None when no timer is expected, ini text, has password)
TASKS = {
    "alpha": ("15min", task_ini("15min"), True),
    "beta": ("1h", task_ini("1h"), True),
    "byhand": (None, task_ini("manual"), True),
    "broken": (None, task_ini("15min", "colour = blue\n"), True),
    "nopwd": (None, task_ini("manual"), False),
    "probe": (None, task_ini("manual"), True),
    # Password file elsewhere: the admin adds a LoadCredential= drop-in.
    "moved": (None, task_ini("manual", remote_extra="password_file = {moved_pwd}\n"), False),
}
MOVED_PWD = "private/moved.pwd"          # relative to the config dir
LATE_TASK = ("gamma", "30min")
INTERVAL_SHOWN = {"15min": "15min", "1h": "1h", "30min": "30min"}

PROBE_SCRIPT = r"""#!/bin/sh
# Runs as imapsync-task@probe.service, i.e. with the template's sandbox.
cred() { if [ -r "$CREDENTIALS_DIRECTORY/$1" ]; then sha256sum < "$CREDENTIALS_DIRECTORY/$1" | cut -c1-64; else echo missing; fi; }
yesno() { if "$@" 2>/dev/null; then echo yes; else echo no; fi; }
echo "probe uid=$(id -u)"
echo "probe cred_task=$(cred task.probe.password)"
echo "probe cred_master=$(cred master.password)"
# $STATE_DIRECTORY lists the task's directory and the shared account
# locks (imapsync-task(8), "One run per account"), in systemd's order.
state=; locks=
for d in $(echo "${STATE_DIRECTORY:-}" | tr ':' ' '); do
	case $d in */.locks) locks=$d ;; *) state=$d ;; esac
done
echo "probe state_dir=${state:-unset}"
echo "probe state_writable=$(yesno touch "${state:-/nonexistent}/probe")"
echo "probe locks_writable=$(yesno touch "${locks:-/nonexistent}/probe")"
echo "probe other_state_listable=$(yesno ls /var/lib/imapsync-task/alpha/.)"
echo "probe config_readable=$(yesno test -r "$IMAPSYNC_TASK_CONFIG_DIR/tasks/probe.ini")"
echo "probe raw_password_readable=$(yesno cat "$IMAPSYNC_TASK_CONFIG_DIR/tasks/probe.pwd")"
echo "probe raw_master_readable=$(yesno cat "$IMAPSYNC_TASK_CONFIG_DIR/master.pwd")"
echo "probe etc_writable=$(yesno touch /etc/probe)"
echo "probe usr_writable=$(yesno touch /usr/probe)"
echo "probe home_listable=$(yesno ls /root/.)"
echo "probe tmp_writable=$(yesno touch /tmp/probe)"
echo "probe dev_mem=$(yesno test -e /dev/mem)"
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/^/probe /; s/:/=/'
"""


def install(c, exec_path, conf_dir, unit_dir, passwords):
    def put(inside, data, mode):
        p = c.path(inside)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(data, str):
            with open(p, "w") as f:
                f.write(data)
        else:
            shutil.copyfile(data[0], p)
        os.chmod(p, mode)

    put(exec_path, (WORKER,), 0o755)
    put(GENERATOR_DIR + "/imapsync-task-generator", (GENERATOR,), 0o755)
    for unit in ("imapsync-task@.service", "imapsync-task@.timer"):
        put(unit_dir + "/" + unit, (os.path.join(TOP_BUILDDIR, "units", unit),), 0o644)
    put(conf_dir + "/imapsync-task.conf", LOCAL_CONF, 0o644)
    put(conf_dir + "/master.pwd", passwords["master"] + "\n", 0o600)
    os.chmod(c.path(conf_dir), 0o755)
    moved_pwd = conf_dir + "/" + MOVED_PWD
    put(moved_pwd, passwords["moved"] + "\n", 0o600)
    put("/etc/systemd/system/imapsync-task@moved.service.d/50-credential.conf",
        "[Service]\nLoadCredential=task.moved.password:%s\n" % moved_pwd, 0o644)
    for name, (_, text, has_pwd) in TASKS.items():
        put("%s/tasks/%s.ini" % (conf_dir, name), text.replace("{moved_pwd}", moved_pwd),
            0o644)
        if has_pwd:
            put("%s/tasks/%s.pwd" % (conf_dir, name), passwords[name] + "\n", 0o600)
    os.chmod(c.path(conf_dir + "/tasks"), 0o755)
    put("/usr/local/lib/imapsync-task-test/probe.sh", PROBE_SCRIPT, 0o755)
    put("/etc/systemd/system/imapsync-task@probe.service.d/50-probe.conf",
        "[Service]\nExecStart=\nExecStart=/usr/local/lib/imapsync-task-test/probe.sh\n",
        0o644)


def libs_missing(c, path):
    r = c.enter(["ldd", path])
    return [l.strip() for l in (r.stdout + r.stderr).splitlines() if "not found" in l]


def sanitizer_dropin(c, exec_path):
    """A --enable-sanitizers build: LeakSanitizer needs ptrace, which the
    sandbox forbids; turn it off for the worker (and only then)."""
    r = c.enter(["ldd", exec_path])
    if "libasan" in r.stdout:
        diag("worker built with ASan: detect_leaks=0 in the container")
        p = c.path("/etc/systemd/system/imapsync-task@.service.d/90-asan.conf")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n")
        c.systemctl("daemon-reload", check=True)


# --- the checks ------------------------------------------------------------

def check_boot(c):
    # Until PID 1 has its private socket, systemctl fails at once; then
    # --wait returns when the boot is over.
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline:
        r = c.enter(["systemctl", "is-system-running", "--wait"], timeout=90)
        state = r.stdout.strip()
        if state not in ("", "offline", "unknown", "initializing", "starting"):
            break
        time.sleep(0.2)
    if not ok(state in ("running", "degraded"),
              "the container boots (is-system-running: %s)" % state):
        raise Abort("no usable systemd in the container")
    if state == "degraded":
        diag(c.systemctl("--failed", "--no-legend").stdout)


def check_timers(c, expect, absent):
    r = c.systemctl("list-timers", "--all", "--no-legend")
    listed = r.stdout
    for name in expect:
        ok("imapsync-task@%s.timer" % name in listed,
           "list-timers shows imapsync-task@%s.timer" % name)
    if absent:
        ok(not any("imapsync-task@%s.timer" % n in listed for n in absent),
           "no timer for %s" % ", ".join(sorted(absent)))
    return listed


def check_timer_props(c, name, interval, conf_dir):
    p = c.show("imapsync-task@%s.timer" % name, "ActiveState", "TimersMonotonic",
               "DropInPaths", "SourcePath", "UnitFileState")
    mono = p.get("TimersMonotonic", "")
    ok(p.get("ActiveState") == "active", "%s: timer active (%s)" % (name, p.get("ActiveState")))
    kinds = sorted(l.split()[1].split("=")[0] for l in mono.splitlines() if l.startswith("{"))
    ok("{ OnUnitActiveUSec=%s ;" % INTERVAL_SHOWN[interval] in mono
       and "{ OnBootUSec=2min ;" in mono and kinds == ["OnBootUSec", "OnUnitActiveUSec"],
       "%s: exactly OnBootSec=2min and OnUnitActiveSec=%s in effect (%s)"
       % (name, interval, mono.replace("\n", " ")))
    ok(p.get("DropInPaths") ==
       "/run/systemd/generator/imapsync-task@%s.timer.d/50-interval.conf" % name
       and p.get("SourcePath") == "%s/tasks/%s.ini" % (conf_dir, name)
       and p.get("UnitFileState") == "enabled-runtime",
       "%s: generated drop-in, SourcePath=, enabled-runtime" % name)


def check_worker_run(c, passwords):
    unit = "imapsync-task@alpha.service"
    t0 = time.monotonic()
    c.systemctl("start", unit, timeout=T_RUN)   # fails: nothing listens
    p = c.show(unit, "ExecMainCode", "ExecMainStatus", "Result", "ActiveState")
    diag("%s: %r (%.1fs)" % (unit, p, time.monotonic() - t0))
    code, status = p.get("ExecMainCode"), int(p.get("ExecMainStatus", "-1"))
    ok(code == "1" and status in WORKER_EXIT_CODES,
       "the worker ran to its end in the sandbox: exited (not killed), "
       "documented code %d" % status)
    ok(status == 69,
       "run with nothing listening at 127.0.0.1:1 exits 69 (unavailable), got %d" % status)
    entries = c.journal("_SYSTEMD_UNIT=" + unit)
    ok(len(entries) > 0, "the worker's output is in the journal (%d lines)" % len(entries))
    for e in entries[:10]:
        diag("journal: " + str(e.get("MESSAGE")))
    uids = {int(e.get("_UID", -1)) for e in entries}
    ok(uids and all(u in DYNAMIC_UID_RANGE for u in uids),
       "it ran as a dynamic user (uid %s)" % sorted(uids))
    whole = c.enter(["journalctl", "--no-pager", "-b", "-o", "cat"], check=True).stdout
    ok(not any(pw in whole for pw in passwords.values()),
       "no password anywhere in the journal")


def check_probe(c, passwords):
    unit = "imapsync-task@probe.service"
    r = c.systemctl("start", unit, timeout=T_RUN)
    p = c.show(unit, "ExecMainCode", "ExecMainStatus", "Result")
    ok(r.returncode == 0 and p.get("Result") == "success",
       "probe instance ran with the template's sandbox (%r)" % p)
    seen = {}
    done = lambda es: any(str(e.get("MESSAGE", "")).startswith("probe Seccomp") for e in es)
    for e in c.journal("_SYSTEMD_UNIT=" + unit, until=done):
        msg = str(e.get("MESSAGE", ""))
        if msg.startswith("probe ") and "=" in msg:
            k, v = msg[6:].split("=", 1)
            seen[k] = v
    diag("probe: %r" % seen)

    def sha(s):
        return hashlib.sha256((s + "\n").encode()).hexdigest()

    expected = {
        "cred_task": sha(passwords["probe"]),
        "cred_master": sha(passwords["master"]),
        "state_dir": "/var/lib/imapsync-task/probe",
        "state_writable": "yes",
        "locks_writable": "yes",
        "other_state_listable": "no",    # one User= for all, yet no sharing
        "config_readable": "yes",
        "raw_password_readable": "no",
        "raw_master_readable": "no",
        "etc_writable": "no",
        "usr_writable": "no",
        "home_listable": "no",
        "tmp_writable": "yes",
        "dev_mem": "no",
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "Seccomp": "2",
    }
    for k, v in expected.items():
        ok(seen.get(k) == v, "probe: %s = %s (got %r)" % (k, v, seen.get(k)))
    uid = int(seen.get("uid", "-1"))
    ok(uid in DYNAMIC_UID_RANGE, "probe: dynamic uid (%d)" % uid)
    st = c.enter(["stat", "-c", "%a", "/var/lib/private/imapsync-task/probe"])
    ok(st.stdout.strip() == "700", "state directory mode 0700 (%s)" % st.stdout.strip())


def check_missing_credential(c):
    unit = "imapsync-task@nopwd.service"
    c.systemctl("start", unit, timeout=T_RUN)
    p = c.show(unit, "ExecMainStatus", "Result")
    ok(p.get("Result") == "exit-code" and p.get("ExecMainStatus") == "243",
       "missing password file: the unit fails with 243/CREDENTIALS (%r)" % p)


def check_moved_credential(c):
    unit = "imapsync-task@moved.service"
    c.systemctl("start", unit, timeout=T_RUN)
    p = c.show(unit, "ExecMainStatus", "Result")
    ok(p.get("ExecMainStatus") == "69",
       "password file elsewhere + a LoadCredential= drop-in replaces the "
       "template's credential: the worker runs (69), not 243 (%r)" % p)


def check_late_task(c, conf_dir, passwords):
    name, interval = LATE_TASK
    p = c.path("%s/tasks/%s.ini" % (conf_dir, name))
    with open(p, "w") as f:
        f.write(task_ini(interval))
    os.chmod(p, 0o644)
    pw = c.path("%s/tasks/%s.pwd" % (conf_dir, name))
    with open(pw, "w") as f:
        f.write(passwords[name] + "\n")
    os.chmod(pw, 0o600)
    c.systemctl("daemon-reload", check=True)
    c.systemctl("start", "timers.target", check=True)
    check_timers(c, [name], [])
    check_timer_props(c, name, interval, conf_dir)


def check_security_online(c):
    r = c.enter(["systemd-analyze", "security", "--threshold=15",
                 "imapsync-task@alpha.service"], timeout=60)
    score = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
    diag(score[0] if score else r.stdout[-500:] + r.stderr[-500:])
    ok(r.returncode == 0, "systemd-analyze security in the container: at most 1.5")


# --- a real import between two Dovecot servers on the host ------------------

def put_file(c, inside, text, mode):
    p = c.path(inside)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)


UNIT_SUCCESS_ID = "7ad2d189f7e94e70a38c781354912448"   # "Deactivated successfully"


def run_instance(c, unit):
    """Start UNIT and wait for it; (exit status, its journal messages).
    A unit that ended well is garbage-collected at once, and "systemctl
    show" then describes a fresh one: so the status of a success is read
    from the journal (systemd's "Deactivated successfully", and the
    worker's "exit=N" summary when it printed one); a failed unit stays
    loaded with its ExecMainStatus."""
    r = c.enter(["journalctl", "-n0", "--show-cursor", "-q"], check=True)
    cursor = r.stdout.strip().split("cursor: ", 1)[-1]
    r = c.systemctl("start", unit, timeout=T_RUN)
    p = c.show(unit, "ExecMainCode", "ExecMainStatus")
    done = lambda es: any(e.get("MESSAGE_ID") == UNIT_SUCCESS_ID or
                          e.get("EXIT_STATUS") or e.get("UNIT_RESULT") for e in es)
    entries = c.journal("--after-cursor=" + cursor, "-u", unit, until=done)
    msgs = [str(e.get("MESSAGE", "")) for e in entries if e.get("_PID") != "1"]
    if p.get("ExecMainCode") == "1":
        status = int(p.get("ExecMainStatus", "-1"))
    elif r.returncode == 0 and any(e.get("MESSAGE_ID") == UNIT_SUCCESS_ID for e in entries):
        status = 0
        for m in msgs:
            if "summary:" in m and " exit=" in m:
                status = int(m.rsplit(" exit=", 1)[1].split()[0])
    else:
        status = -1
        diag(r.stderr)
        diag(c.systemctl("status", "--lines=20", unit).stdout)
    diag("%s: exit %d" % (unit, status))
    for m in msgs[-6:]:
        diag("  " + m)
    return status, msgs


def check_dovecot_import(c, exec_path, conf_dir, passwords):
    """The worker, started by systemd under the template's sandbox and
    credentials, logs in to both servers of a DovecotPair on the host (the
    container shares the host's network) and imports the remote INBOX."""
    sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lib"))
    import dovecot

    with dovecot.DovecotPair(name="t_systemd_e2e") as pair:
        passwords["remote-alice"] = pair.remote.add_user("alice")
        pair.local.add_user("alice")
        passwords["dovecot-master"] = pair.master_password
        sent = [dovecot.make_message(i) for i in range(1, 4)]
        dovecot.seed(pair.remote, "alice", "INBOX", sent)

        ca = conf_dir + "/test-ca.pem"
        with open(pair.ca_file) as f:
            put_file(c, ca, f.read(), 0o644)
        put_file(c, conf_dir + "/imapsync-task.conf",
                 "[local]\nhost = 127.0.0.1\nport = %d\nsecurity = starttls\n"
                 "ca_file = %s\nmaster_user = %s\nmaster_separator = *\n"
                 % (pair.local.imap_port, ca, pair.master_user), 0o644)
        put_file(c, conf_dir + "/master.pwd", pair.master_password + "\n", 0o600)
        ini = ("[task]\nlocal_user = alice\nfolders = inbox\ndelete = never\n"
               "delivery = append\ninterval = manual\n\n"
               "[remote]\nhost = 127.0.0.1\nport = %d\nsecurity = starttls\n"
               "ca_file = %s\nuser = alice\n" % (pair.remote.imap_port, ca))
        for name in ("dove", "dovecheck"):
            put_file(c, "%s/tasks/%s.ini" % (conf_dir, name), ini, 0o644)
            put_file(c, "%s/tasks/%s.pwd" % (conf_dir, name),
                     passwords["remote-alice"] + "\n", 0o600)
        # "check --connect" through the same template: same sandbox and
        # credentials as a run.
        put_file(c, "/etc/systemd/system/imapsync-task@dovecheck.service.d/50-check.conf",
                 "[Service]\nExecStart=\nExecStart=%s check --connect %%i\n" % exec_path,
                 0o644)
        c.systemctl("daemon-reload", check=True)

        status, _ = run_instance(c, "imapsync-task@dovecheck.service")
        ok(status == 0, "check --connect logs in to both Dovecot servers "
           "from the sandbox (exit %d)" % status)

        status, _ = run_instance(c, "imapsync-task@dove.service")
        ok(status == 0, "a run under systemd imports the remote INBOX (exit %d)" % status)
        got = dovecot.read_mailbox(pair.local, "alice", "INBOX", master=True)
        ok(sorted(m["bytes"] for m in got) == sorted(sent),
           "the 3 messages arrived byte for byte (%d in the local INBOX)" % len(got))
        # The summary is a structured journal record an admin can query.
        rec = c.journal("_SYSTEMD_UNIT=imapsync-task@dove.service", "TASK=dove", "COPIED=3",
                        until=lambda es: any(e.get("VERDICT") == "ok" for e in es))
        rec = [e for e in rec if e.get("VERDICT") == "ok"]
        ok(rec and rec[-1].get("EXIT_CODE") == "0" and rec[-1].get("SKIPPED") == "0" and
           "summary: task=dove copied=3" in str(rec[-1].get("MESSAGE", "")),
           "journal record with TASK=dove COPIED=3 VERDICT=ok EXIT_CODE=0 (%s)" %
           {k: v for k, v in (rec[-1] if rec else {}).items()
            if k in ("TASK", "COPIED", "BYTES", "VERDICT", "EXIT_CODE")})

        status, msgs = run_instance(c, "imapsync-task@dove.service")
        summary = [m for m in msgs if "summary:" in m]
        ok(status == 0 and summary and "copied=0" in summary[-1],
           "a second run copies nothing (exit %d, %s)" % (status, summary[-1:]))
        got = dovecot.read_mailbox(pair.local, "alice", "INBOX", master=True)
        ok(len(got) == 3, "still 3 messages after the second run (%d)" % len(got))
        st = c.enter(["ls", "-A", "/var/lib/private/imapsync-task/dove"])
        ok(st.returncode == 0 and st.stdout.strip() != "",
           "the task's state is in its StateDirectory (%s)" % " ".join(st.stdout.split()))
        check_account_turns(c, pair, conf_dir, ini, passwords, sent)
        check_progress_status(c, pair, exec_path, conf_dir, ca, passwords)
    whole = c.enter(["journalctl", "--no-pager", "-b", "-o", "cat"], check=True).stdout
    ok(not any(pw in whole for pw in passwords.values()),
       "still no password anywhere in the journal")
    # TODO(worker): folders = all once the worker has it.


def check_account_turns(c, pair, conf_dir, ini, passwords, sent):
    """dove and dove2 copy one remote account into one local user: started
    in the same second under the template, they take turns through the
    account locks all instances share (one User=, StateDirectory=
    imapsync-task/.locks), so every message arrives once."""
    import dovecot

    put_file(c, "%s/tasks/dove2.ini" % conf_dir, ini, 0o644)
    put_file(c, "%s/tasks/dove2.pwd" % conf_dir, passwords["remote-alice"] + "\n", 0o600)
    c.systemctl("daemon-reload", check=True)
    more = [dovecot.make_message(i) for i in range(100, 300)]
    dovecot.seed(pair.remote, "alice", "INBOX", more)
    r = c.enter(["journalctl", "-n0", "--show-cursor", "-q"], check=True)
    cursor = r.stdout.strip().split("cursor: ", 1)[-1]
    units = ["imapsync-task@dove.service", "imapsync-task@dove2.service"]
    c.systemctl("start", "--no-block", *units, check=True)
    deadline = time.monotonic() + T_RUN
    while time.monotonic() < deadline:
        states = [c.systemctl("is-active", u).stdout.strip() for u in units]
        if not any(s in ("activating", "active", "reloading") for s in states):
            break
        time.sleep(0.5)
    summaries = {}
    for u in units:
        es = c.journal("--after-cursor=" + cursor, "-u", u,
                       until=lambda es: any("summary:" in str(e.get("MESSAGE", ""))
                                            for e in es))
        summaries[u] = [str(e.get("MESSAGE", "")) for e in es]
    diag("account turns: %r" % {u: [m for m in ms if "summary:" in m or "in use" in m]
                                for u, ms in summaries.items()})
    ok(all(any("summary:" in m and " exit=0" in m for m in ms) for ms in summaries.values()),
       "two tasks for one account started at once under systemd: both exit 0")
    got = collections.Counter(m["bytes"] for m in
                              dovecot.read_mailbox(pair.local, "alice", "INBOX", master=True))
    want = sent + more
    ok(sorted(got) == sorted(want) and all(n == 1 for n in got.values()),
       "every one of the %d messages arrived once (%d local)" % (len(want), sum(got.values())))
    ok(any("is in use by task" in m for ms in summaries.values() for m in ms),
       "one waited for the other, by name")
    st = c.enter(["ls", "-A", "/var/lib/private/imapsync-task/.locks"])
    names = st.stdout.split()
    ok(any(n.startswith("remote-") for n in names) and any(n.startswith("local-") for n in names),
       "the account locks are in the shared StateDirectory (%s)" % " ".join(names))


# --- what list and status tell (issue 12) -----------------------------------

STATE_ROOT = "/var/lib/imapsync-task"     # StateDirectory=imapsync-task/%i


def worker_cli(c, exec_path, conf_dir, *args):
    """The worker's command line in the container, as an admin runs it."""
    return c.enter([exec_path, "--config-dir", conf_dir, "--state-dir", STATE_ROOT] +
                   list(args), timeout=T_SHORT)


def check_list_units(c, exec_path, conf_dir):
    """After check_worker_run (alpha: 69) and check_missing_credential
    (nopwd: 243): list reads the units through sd-bus."""
    r = worker_cli(c, exec_path, conf_dir, "list")
    diag(r.stdout + r.stderr)
    ok(r.returncode == 0 and
       re.search(r"^nopwd\s+inbox\s+manual\s+\S+ \S+\s+243/CREDENTIALS\s", r.stdout, re.M)
       and re.search(r"^    error \(config\): unit imapsync-task@nopwd\.service failed: "
                     r"243/CREDENTIALS", r.stdout, re.M),
       "list: the unit's own failure 243/CREDENTIALS, read from systemd, with its reason")
    ok(re.search(r"^alpha\s+inbox\s+15min\s+\S+ \S+\s+unavailable\s+0\s+0\s+0\s+"
                 r"127\.0\.0\.1:1\s+never\n    error \(remote\): remote: ", r.stdout, re.M),
       "list: a failure the worker recorded keeps its reason (remote side)")
    ok(re.search(r"^broken\s+\(invalid\)\s", r.stdout, re.M),
       "list: the broken task file is listed as invalid")
    r = worker_cli(c, exec_path, conf_dir, "list", "--json")
    try:
        doc = {t["name"]: t for t in json.loads(r.stdout)["tasks"]}
    except (ValueError, KeyError, TypeError) as e:
        ok(False, "list --json in the container: valid JSON (%s)" % e)
        diag(r.stdout[-2000:] + r.stderr[-1000:])
        return
    n, a = doc.get("nopwd", {}), doc.get("alpha", {})
    u = n.get("unit") or {}
    ok(n.get("result") == "243/CREDENTIALS" and n.get("result_source") == "unit" and
       n.get("error_side") == "config" and u.get("name") == "imapsync-task@nopwd.service" and
       u.get("active_state") == "failed" and u.get("result") == "exit-code" and
       u.get("exec_main_code") == "exited" and u.get("exec_main_status") == 243 and
       u.get("failure") == "243/CREDENTIALS",
       "list --json: nopwd's unit failed with 243/CREDENTIALS (%r)" % {k: n.get(k) for k in
                                                                      ("result", "unit")})
    au = a.get("unit") or {}
    ok(a.get("result") == "unavailable" and a.get("result_source") == "run" and
       a.get("error_side") == "remote" and (a.get("last_run") or {}).get("exit_code") == 69 and
       au.get("exec_main_status") == 69,
       "list --json: alpha's record and its unit agree (exit 69, side remote)")
    r = worker_cli(c, exec_path, conf_dir, "status", "nopwd")
    ok(re.search(r"^last result: 243/CREDENTIALS at ", r.stdout, re.M) and
       "unit imapsync-task@nopwd.service: failed (failed), 243/CREDENTIALS" in r.stdout,
       "status nopwd: the unit's failure", r.stdout)


def check_progress_status(c, pair, exec_path, conf_dir, ca, passwords):
    """A run slowed down by a throttling proxy: while it lasts, systemd
    shows the worker's STATUS= text (NotifyAccess=main)."""
    import dovecot
    from throttleproxy import ThrottleProxy

    pair.remote.add_user("sam")
    pair.local.add_user("sam")
    passwords["remote-sam"] = pair.remote.password("sam")
    n = 200
    dovecot.seed(pair.remote, "sam", "INBOX",
                 [dovecot.make_message(i, size=5000) for i in range(n)])
    unit = "imapsync-task@slow.service"
    with ThrottleProxy("127.0.0.1", pair.remote.imap_port, rate=100_000) as proxy:
        put_file(c, "%s/tasks/slow.ini" % conf_dir,
                 "[task]\nlocal_user = sam\nfolders = inbox\ndelete = never\n"
                 "delivery = append\ninterval = manual\n\n"
                 "[remote]\nhost = 127.0.0.1\nport = %d\nsecurity = starttls\n"
                 "ca_file = %s\nuser = sam\n" % (proxy.port, ca), 0o644)
        put_file(c, "%s/tasks/slow.pwd" % conf_dir, passwords["remote-sam"] + "\n", 0o600)
        c.systemctl("daemon-reload", check=True)
        r = c.enter(["journalctl", "-n0", "--show-cursor", "-q"], check=True)
        cursor = r.stdout.strip().split("cursor: ", 1)[-1]
        t0 = time.monotonic()
        c.systemctl("start", "--no-block", unit, check=True)
        texts, status_out, listed = [], "", None
        deadline = time.monotonic() + T_RUN
        while time.monotonic() < deadline:
            p = c.show(unit, "ActiveState", "StatusText")
            st, text = p.get("ActiveState", ""), p.get("StatusText", "")
            if text and (not texts or texts[-1] != text):
                texts.append(text)
            if st in ("inactive", "failed") and time.monotonic() - t0 > 1:
                break
            if text.startswith("INBOX: ") and not status_out:
                status_out = c.systemctl("status", "--lines=0", unit).stdout
                listed = worker_cli(c, exec_path, conf_dir, "list", "--json")
            time.sleep(0.3)
        took = time.monotonic() - t0
    diag("%s: %.1fs, StatusText seen: %r" % (unit, took, texts))
    prog = [t for t in texts if re.match(r"INBOX: \d+/%d messages, " % n, t)]
    ok(len(prog) >= 2,
       "systemctl show -p StatusText follows a slow run: folder and messages done/total "
       "(%d texts)" % len(prog))
    ok(any(re.match(r"INBOX: \d+/%d messages, [\d.]+ [kMG]?B, [\d.]+ [kMG]?B/s, ETA "
                    r"\d+:\d\d$" % n, t) for t in prog),
       "the status text has bytes, rate and ETA")
    ok(re.search(r"^\s*Status: \"INBOX: \d+/%d messages" % n, status_out, re.M) is not None,
       "systemctl status shows it as Status: (%s)" %
       " | ".join(l.strip() for l in status_out.splitlines() if "Status:" in l))
    try:
        t = {x["name"]: x for x in json.loads(listed.stdout)["tasks"]}["slow"]
    except (AttributeError, ValueError, KeyError, TypeError):
        t = {}
    ok(t.get("result") == "running" and t.get("running") is True and
       str(t.get("progress") or "").startswith("INBOX: "),
       "list --json during the run: running, with the progress (%r)" %
       {k: t.get(k) for k in ("result", "progress")})
    done = lambda es: any("summary:" in str(e.get("MESSAGE", "")) for e in es)  # noqa: E731
    msgs = [str(e.get("MESSAGE", "")) for e in
            c.journal("--after-cursor=" + cursor, "-u", unit, until=done)]
    summary = [m for m in msgs if "summary:" in m]
    ok(summary and "copied=%d" % n in summary[-1] and " exit=0" in summary[-1],
       "the slow run ends well (%s)" % summary[-1:])


# --- main --------------------------------------------------------------------

def preflight():
    if os.geteuid() != 0:
        print("Bail out! needs root (systemd-nspawn, debootstrap)", flush=True)
        sys.exit(1)
    for label, path in (("IMAPSYNC_TASK_BIN", WORKER), ("IMAPSYNC_TASK_GENERATOR", GENERATOR)):
        if not path or not os.access(path, os.X_OK):
            print("Bail out! %s is not an executable: %r" % (label, path), flush=True)
            sys.exit(1)
    r = run(["sh", NSPAWN_SH, "tools"], timeout=1300)
    if r.returncode != 0:
        diag(r.stderr)
        print("Bail out! cannot install systemd-container/debootstrap", flush=True)
        sys.exit(1)


def host_generator_unit_dir():
    """Where the built generator points its wants links (= the unit dir the
    build installs into)."""
    tmp = tempfile.mkdtemp(prefix="t_e2e_gen.")
    try:
        cfg = os.path.join(tmp, "cfg")
        os.makedirs(cfg + "/tasks")
        with open(cfg + "/tasks/x.ini", "w") as f:
            f.write(task_ini("15min"))
        fd = os.open(cfg + "/tasks/x.pwd", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x\n")
        os.close(fd)
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        env = dict(os.environ, IMAPSYNC_TASK_CONFIG_DIR=cfg,
                   IMAPSYNC_TASK_GENERATOR_LOG="stderr")
        r = run([GENERATOR, out], timeout=T_SHORT, env=env)
        link = os.path.join(out, "timers.target.wants", "imapsync-task@x.timer")
        if not os.path.islink(link):
            diag(r.stderr)
            raise Abort("the built generator made no timer for a valid task")
        target = os.readlink(link)
        unit_dir = os.path.dirname(target)
        if unit_dir not in STANDARD_UNIT_DIRS:
            diag("generator links to %s (not searched by systemd); units go to "
                 "/etc/systemd/system" % target)
            unit_dir = "/etc/systemd/system"
        return unit_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def system_layout(exec_path, conf_dir):
    """The installed paths must be ones a booted system keeps and the
    service may see: not a staging prefix under /tmp or /var/tmp (hidden
    by the container's tmpfs at boot) or /root, /home (ProtectHome=).
    make distcheck configures such a prefix; the suites proper use the
    default /usr/local layout."""
    for path in (exec_path, conf_dir):
        if not path.startswith(("/usr/", "/etc/", "/opt/")):
            return False
    return True


def main():
    exec_path, conf_dir = built_unit_facts()
    if not system_layout(exec_path, conf_dir):
        print("1..0 # SKIP built for a staging prefix (%s, %s): not a bootable layout"
              % (exec_path, conf_dir), flush=True)
        return 0
    preflight()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(DEADLINE_SEC)
    c = Container("ist-e2e-%d" % os.getpid())
    t_start = time.monotonic()
    try:
        exec_path, conf_dir = built_unit_facts()
        unit_dir = host_generator_unit_dir()
        passwords = {n: "pw-%s-%s" % (n, secrets.token_hex(8))
                     for n in list(TASKS) + [LATE_TASK[0], "master"]}

        t0 = time.monotonic()
        c.make_root()
        diag("root file system ready in %.1fs" % (time.monotonic() - t0))
        install(c, exec_path, conf_dir, unit_dir, passwords)
        t0 = time.monotonic()
        c.boot()
        check_boot(c)
        diag("booted in %.1fs" % (time.monotonic() - t0))

        for label, path in (("worker", exec_path),
                            ("generator", GENERATOR_DIR + "/imapsync-task-generator")):
            missing = libs_missing(c, path)
            ok(not missing, "%s finds its shared libraries in the container %s"
               % (label, missing or ""))
        sanitizer_dropin(c, exec_path)

        # Generated at boot, before timers.target: no daemon-reload needed.
        scheduled = [n for n, (iv, _, _) in TASKS.items() if iv]
        listed = check_timers(c, scheduled, [n for n in TASKS if n not in scheduled])
        diag(listed)
        for name in scheduled:
            check_timer_props(c, name, TASKS[name][0], conf_dir)
        check_late_task(c, conf_dir, passwords)

        check_worker_run(c, passwords)
        check_probe(c, passwords)
        check_missing_credential(c)
        check_list_units(c, exec_path, conf_dir)
        check_moved_credential(c)
        check_security_online(c)

        check_dovecot_import(c, exec_path, conf_dir, passwords)
    except Abort as e:
        ok(False, "end to end test stopped: %s" % e)
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)      # let teardown finish
        t0 = time.monotonic()
        try:
            c.teardown()
        except Exception as e:   # report, never mask the results
            ok(False, "teardown: %s" % e)
        diag("teardown %.1fs; whole test %.1fs" % (time.monotonic() - t0,
                                                   time.monotonic() - t_start))
    print("1..%d" % _tap.n, flush=True)
    return 1 if _tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
