#!/usr/bin/env python3
"""t_systemd_timers.py - timers follow the task files, and password files
anywhere reach the service, under a real systemd (PID 1 of a throwaway
Debian bookworm booted with systemd-nspawn, tests/lib/nspawn_container.py).

The built worker, generator, units and imapsync-task-reload go in where the
build says (like t_systemd_e2e.py).  imapsync-task.conf names a master
password file outside the configuration directory.

Timers (the one documented step after editing task files is
imapsync-task-reload; after each step "systemctl list-timers" must show
exactly the tasks with an interval, each with a NEXT time):
  - at boot: one (15min) has a timer, manual1 (manual) none;
  - add two (30min): its timer appears, with a NEXT time, without a reboot;
  - change one to 1h: the new interval is in effect;
  - break two (unknown key): its timer is gone (not left on the template's
    schedule), reload exits 1 naming the file, and the generator's error
    is in the journal, naming the file;
  - fix two: back; remove one: its timer is gone, not just unlisted;
  - two becomes manual: no timer left.
Credentials (password files outside tasks/, one with a space and a '%'
in its path):
  - the generator's 10-credentials.conf drop-in is in effect;
  - the worker runs in the sandbox (exit 69: nothing listens), not
    243/CREDENTIALS and not 78;
  - a probe instance sees exactly the two files' contents as
    task.NAME.password and master.password.

Needs root; the root file system is cached in /var/cache/imapsync-task-test/.
Every step is bounded; the container is torn down on every exit path.
Prints TAP.
"""
import hashlib
import os
import secrets
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from worker import Tap  # noqa: E402
from nspawn_container import Abort, Container, run, tools  # noqa: E402

TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", ".")
WORKER = os.environ.get("IMAPSYNC_TASK_BIN", "")
GENERATOR = os.environ.get("IMAPSYNC_TASK_GENERATOR", "")
RELOAD = os.environ.get("IMAPSYNC_TASK_RELOAD", "")

DEADLINE_SEC = 1200
T_RUN = 120
GENERATOR_DIRS = ("/usr/lib/systemd/system-generators", "/lib/systemd/system-generators",
                  "/usr/local/lib/systemd/system-generators", "/etc/systemd/system-generators")
STANDARD_UNIT_DIRS = ("/etc/systemd/system", "/usr/local/lib/systemd/system",
                      "/lib/systemd/system", "/usr/lib/systemd/system")
SECRETS_DIR = "/srv/imapsync secrets"          # outside the config dir; a space
MASTER_PWD = SECRETS_DIR + "/master.pwd"
FAR_PWD = SECRETS_DIR + "/far%p.pwd"           # '%' must reach systemd as %%

_tap = Tap()
ok = _tap.ok
diag = _tap.diag


def on_signal(signum, frame):
    raise Abort("signal %d" % signum)


def task_ini(interval, extra="", remote_extra=""):
    # Nothing listens on 127.0.0.1:1: a run ends with 69 (unavailable).
    return ("[task]\nlocal_user = alice\nfolders = inbox\ndelete = never\n"
            "delivery = append\ninterval = %s\n%s\n"
            "[remote]\nhost = 127.0.0.1\nport = 1\nsecurity = none\nuser = bob\n%s"
            % (interval, extra, remote_extra))


LOCAL_CONF = ("[local]\nhost = 127.0.0.1\nport = 1\nsecurity = none\n"
              "master_user = vmail\nmaster_separator = *\n"
              "master_password_file = %s\n" % MASTER_PWD)

PROBE_SCRIPT = r"""#!/bin/sh
cred() { if [ -r "$CREDENTIALS_DIRECTORY/$1" ]; then sha256sum < "$CREDENTIALS_DIRECTORY/$1" | cut -c1-64; else echo missing; fi; }
echo "probe cred_task=$(cred task.farprobe.password)"
echo "probe cred_master=$(cred master.password)"
echo "probe done=1"
"""


def built_facts():
    """(worker path, config dir) from the built service; the generator
    path from the built reload helper."""
    exec_path = conf_dir = gen_path = None
    with open(os.path.join(TOP_BUILDDIR, "units", "imapsync-task@.service")) as f:
        for line in f.read().splitlines():
            if line.startswith("ExecStart="):
                exec_path = line.split("=", 1)[1].split()[0]
            if line.startswith("Environment=IMAPSYNC_TASK_CONFIG_DIR="):
                conf_dir = line.split("=", 2)[2]
    with open(RELOAD) as f:
        for line in f.read().splitlines():
            if line.startswith("GENERATOR="):
                gen_path = line.split("=", 1)[1].strip("'\"")
    return exec_path, conf_dir, gen_path


def generator_unit_dir():
    """Where the built generator points its wants links."""
    with open(GENERATOR, "rb") as f:
        data = f.read()
    for d in STANDARD_UNIT_DIRS:
        if (d + "/imapsync-task@.timer").encode() in data:
            return d
    return None


class Env:
    def __init__(self, c, exec_path, conf_dir, passwords):
        self.c = c
        self.exec_path = exec_path
        self.conf_dir = conf_dir
        self.passwords = passwords
        self.reload_path = os.path.join(os.path.dirname(exec_path), "imapsync-task-reload")

    def task(self, name, text, pwd=True):
        self.c.put("%s/tasks/%s.ini" % (self.conf_dir, name), text, 0o644)
        if pwd:
            self.c.put("%s/tasks/%s.pwd" % (self.conf_dir, name),
                       self.passwords.setdefault(name, "pw-%s-%s" % (name, secrets.token_hex(6)))
                       + "\n", 0o600)

    def remove(self, name):
        for ext in (".ini", ".pwd"):
            p = self.c.path("%s/tasks/%s%s" % (self.conf_dir, name, ext))
            if os.path.exists(p):
                os.unlink(p)

    def reload(self):
        r = self.c.enter([self.reload_path], timeout=90)
        diag("imapsync-task-reload: exit %d" % r.returncode)
        for line in (r.stdout + r.stderr).splitlines():
            diag("  " + line)
        return r

    def expect_timers(self, label, names):
        timers = self.c.timers()
        want = {"imapsync-task@%s.timer" % n for n in names}
        ok(set(timers) == want, "%s: list-timers shows exactly %s (%s)"
           % (label, sorted(want) or "nothing", sorted(timers)))
        no_next = [u for u, t in timers.items() if t["next"] in ("-", "n/a", "")]
        ok(not no_next, "%s: every timer has a NEXT time (%s)"
           % (label, "; ".join(timers[u]["line"] for u in no_next) or "all do"))
        return timers

    def interval_in_effect(self, name):
        p = self.c.show("imapsync-task@%s.timer" % name, "TimersMonotonic")
        for line in p.get("TimersMonotonic", "").splitlines():
            if "OnUnitActiveUSec=" in line:
                return line.split("OnUnitActiveUSec=", 1)[1].split(" ;")[0]
        return None


def install(c, exec_path, conf_dir, gen_path, unit_dir, passwords):
    c.put(exec_path, (WORKER,), 0o755)
    c.put(os.path.join(os.path.dirname(exec_path), "imapsync-task-reload"), (RELOAD,), 0o755)
    c.put(GENERATOR_DIRS[0] + "/imapsync-task-generator", (GENERATOR,), 0o755)
    if gen_path and not gen_path.startswith(("/usr/lib/", "/lib/")):
        c.put(gen_path, (GENERATOR,), 0o755)
    for unit in ("imapsync-task@.service", "imapsync-task@.timer"):
        c.put(unit_dir + "/" + unit, (os.path.join(TOP_BUILDDIR, "units", unit),), 0o644)
    c.put(conf_dir + "/imapsync-task.conf", LOCAL_CONF, 0o644)
    os.chmod(c.path(conf_dir), 0o755)
    c.put(MASTER_PWD, passwords["master"] + "\n", 0o600)
    os.chmod(c.path(SECRETS_DIR), 0o700)
    c.put("/usr/local/lib/imapsync-task-test/probe.sh", PROBE_SCRIPT, 0o755)
    c.put("/etc/systemd/system/imapsync-task@farprobe.service.d/50-probe.conf",
          "[Service]\nExecStart=\nExecStart=/usr/local/lib/imapsync-task-test/probe.sh\n",
          0o644)


def sanitizer_dropin(c, exec_path):
    """A --enable-sanitizers build: LeakSanitizer needs ptrace, which the
    sandbox forbids; turn it off for the worker (and only then)."""
    r = c.enter(["ldd", exec_path])
    if "libasan" in r.stdout:
        diag("worker built with ASan: detect_leaks=0 in the container")
        c.put("/etc/systemd/system/imapsync-task@.service.d/90-asan.conf",
              "[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n", 0o644)
        c.systemctl("daemon-reload", check=True)


def check_timers(e):
    c = e.c
    e.expect_timers("at boot", ["one"])

    e.task("two", task_ini("30min"))
    r = e.reload()
    ok(r.returncode == 0, "add: imapsync-task-reload exits 0 (%d)" % r.returncode)
    e.expect_timers("add two", ["one", "two"])
    ok(e.interval_in_effect("two") == "30min",
       "add two: OnUnitActiveSec=30min in effect (%s)" % e.interval_in_effect("two"))

    e.task("one", task_ini("1h"), pwd=False)
    r = e.reload()
    e.expect_timers("change one", ["one", "two"])
    ok(e.interval_in_effect("one") == "1h",
       "change one to 1h: in effect after reload (%s)" % e.interval_in_effect("one"))

    cursor = c.cursor()
    e.task("two", task_ini("30min", "colour = blue\n"), pwd=False)
    r = e.reload()
    ok(r.returncode == 1 and "tasks/two.ini" in r.stderr and "colour" in r.stderr,
       "break two: imapsync-task-reload exits 1 and names the file and key (%d)"
       % r.returncode)
    e.expect_timers("break two", ["one"])
    p = c.show("imapsync-task@two.timer", "ActiveState")
    ok(p.get("ActiveState") == "inactive",
       "break two: its timer is stopped, not left on the template's schedule (%s)"
       % p.get("ActiveState"))
    # Filtered here, not by journalctl: with a match, --after-cursor skips
    # the first matching entry when the cursor's own entry does not match.
    def gen_msgs(es):
        return [str(x.get("MESSAGE")) for x in es
                if x.get("SYSLOG_IDENTIFIER") == "imapsync-task-generator"]

    def both(es):
        msgs = gen_msgs(es)
        return (any("tasks/two.ini" in m and "colour" in m for m in msgs) and
                any("tasks/two.ini" in m and "no timer" in m for m in msgs))

    entries = c.journal("--after-cursor=" + cursor, until=both)
    for m in gen_msgs(entries)[:8]:
        diag("journal: " + m)
    ok(both(entries), "break two: the generator's error, naming the file and the key, "
       "is in the journal")

    e.task("two", task_ini("30min"), pwd=False)
    r = e.reload()
    ok(r.returncode == 0, "fix two: imapsync-task-reload exits 0 (%d)" % r.returncode)
    e.expect_timers("fix two", ["one", "two"])

    e.remove("one")
    e.reload()
    e.expect_timers("remove one", ["two"])
    p = c.show("imapsync-task@one.timer", "ActiveState", "TimersMonotonic")
    ok(p.get("ActiveState") == "inactive",
       "remove one: its timer is stopped, it cannot fire on the template's 1h (%r)" % p)

    e.task("two", task_ini("manual"), pwd=False)
    e.reload()
    e.expect_timers("two manual", [])


def check_credentials(e):
    c = e.c
    e.task("far", task_ini("manual", remote_extra="password_file = %s\n" % FAR_PWD), pwd=False)
    e.task("farprobe", task_ini("manual", remote_extra="password_file = %s\n" % FAR_PWD),
           pwd=False)
    far_pw = "pw-far-%s" % secrets.token_hex(8)
    e.passwords["far"] = far_pw
    c.put(FAR_PWD, far_pw + "\n", 0o600)
    e.reload()

    p = c.show("imapsync-task@far.service", "DropInPaths")
    ok("/run/systemd/generator/imapsync-task@far.service.d/10-credentials.conf"
       in p.get("DropInPaths", ""),
       "the generator's credentials drop-in is in effect (%s)" % p.get("DropInPaths"))
    text = c.enter(["cat", "/run/systemd/generator/imapsync-task@far.service.d/"
                    "10-credentials.conf"]).stdout
    diag(text)
    ok("LoadCredential=task.far.password:%s\n" % FAR_PWD.replace("%", "%%") in text
       and "LoadCredential=master.password:%s\n" % MASTER_PWD in text,
       "it loads both files from where imapsync-task.conf and the task name them")

    unit = "imapsync-task@far.service"
    c.systemctl("start", unit, timeout=T_RUN)
    p = c.show(unit, "ExecMainCode", "ExecMainStatus", "Result")
    diag("%s: %r" % (unit, p))
    ok(p.get("ExecMainCode") == "1" and p.get("ExecMainStatus") == "69",
       "password files outside tasks/: the worker runs in the sandbox and exits 69 "
       "(nothing listens), not 243/CREDENTIALS or 78 (%s)" % p.get("ExecMainStatus"))

    unit = "imapsync-task@farprobe.service"
    r = c.systemctl("start", unit, timeout=T_RUN)
    seen = {}
    for x in c.journal("_SYSTEMD_UNIT=" + unit,
                       until=lambda es: any("probe done=1" in str(y.get("MESSAGE")) for y in es)):
        m = str(x.get("MESSAGE", ""))
        if m.startswith("probe ") and "=" in m:
            k, v = m[6:].split("=", 1)
            seen[k] = v

    def sha(s):
        return hashlib.sha256((s + "\n").encode()).hexdigest()

    ok(r.returncode == 0 and seen.get("cred_task") == sha(far_pw),
       "the probe sees the task's password file (path with a space and a %%) as "
       "task.farprobe.password (%s)" % seen.get("cred_task", "no output")[:16])
    ok(seen.get("cred_master") == sha(e.passwords["master"]),
       "the probe sees master_password_file (outside the config dir) as "
       "master.password (%s)" % seen.get("cred_master", "no output")[:16])
    whole = c.enter(["journalctl", "--no-pager", "-b", "-o", "cat"], check=True).stdout
    ok(not any(pw in whole for pw in e.passwords.values()), "no password in the journal")


def main():
    for label, path in (("IMAPSYNC_TASK_BIN", WORKER), ("IMAPSYNC_TASK_GENERATOR", GENERATOR),
                        ("IMAPSYNC_TASK_RELOAD", RELOAD)):
        if not path or not os.access(path, os.X_OK):
            print("Bail out! %s is not an executable: %r" % (label, path), flush=True)
            return 1
    exec_path, conf_dir, gen_path = built_facts()
    unit_dir = generator_unit_dir()
    if not (exec_path and conf_dir and exec_path.startswith(("/usr/", "/opt/"))
            and conf_dir.startswith(("/usr/", "/etc/", "/opt/")) and unit_dir
            and gen_path and gen_path.startswith(GENERATOR_DIRS)):
        # make distcheck configures a staging prefix: not a bootable layout.
        print("1..0 # SKIP built for a staging prefix (%s, %s, %s): not a bootable layout"
              % (exec_path, conf_dir, gen_path), flush=True)
        return 0
    if os.geteuid() != 0:
        print("Bail out! needs root (systemd-nspawn, debootstrap)", flush=True)
        return 1
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(DEADLINE_SEC)
    c = Container("ist-timers-%d" % os.getpid(), diag)
    t_start = time.monotonic()
    try:
        tools(diag)
        passwords = {"master": "pw-master-%s" % secrets.token_hex(8)}
        c.make_root()
        install(c, exec_path, conf_dir, gen_path, unit_dir, passwords)
        e = Env(c, exec_path, conf_dir, passwords)
        e.task("one", task_ini("15min"))
        e.task("manual1", task_ini("manual"))
        c.boot()
        state = c.wait_booted()
        ok(True, "the container boots (%s)" % state)
        sanitizer_dropin(c, exec_path)
        check_timers(e)
        check_credentials(e)
    except Abort as ex:
        ok(False, "test stopped: %s" % ex)
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        try:
            c.teardown(_tap.failed > 0)
        except Exception as ex:
            ok(False, "teardown: %s" % ex)
        diag("whole test %.1fs" % (time.monotonic() - t_start))
    print("1..%d" % _tap.n, flush=True)
    return 1 if _tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
