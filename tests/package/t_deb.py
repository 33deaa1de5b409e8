#!/usr/bin/env python3
"""t_deb.py - the Debian package, installed the way an admin would, in a
booted Debian 12 (systemd as PID 1, systemd-nspawn; tests/lib/nspawn.sh).

    IMAPSYNC_TASK_DEB=build-pkg/imapsync-task_0.1.0_amd64.deb \\
    IMAPSYNC_TASK_LINTIAN_LOG=build-pkg/lintian.txt \\
        python3 tests/package/t_deb.py

Run once per CI run by .ci/run (stage "package", after scripts/package),
not by make check: it tests the .deb, not a build tree.

The package:
  - lintian reported no error (its report, when given);
  - its files: binary and reload helper in /usr/sbin, units and generator
    in the directories pkg-config systemd names, the conffile
    /etc/imapsync-task/imapsync-task.conf, an empty tasks/, the example
    under /usr/share/doc, the man pages; maintainer scripts.
In the container:
  - dpkg -i installs it; the worker and the generator run there;
  - a task for a DovecotPair on the host, then imapsync-task-reload: its
    timer is listed with a NEXT time, fires on its own (interval 1min),
    and the service imports the remote INBOX byte for byte;
  - reinstalling keeps the admin's imapsync-task.conf (a conffile);
  - dpkg -r stops the timer and keeps conffile and state; dpkg -P removes
    the conffile and the state (/var/lib/imapsync-task and
    /var/lib/private/imapsync-task), leaves the admin's task file.
Needs root.  Prints TAP.
"""
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lib"))
from worker import Tap  # noqa: E402
from nspawn_container import Abort, Container, run, tools, UNIT_SUCCESS_ID  # noqa: E402

DEB = os.environ.get("IMAPSYNC_TASK_DEB", "")
LINTIAN_LOG = os.environ.get("IMAPSYNC_TASK_LINTIAN_LOG", "")
DEADLINE_SEC = 1200
T_FIRE = 180              # the timer's first run: OnBootSec=1min + up to 15s
CONF = "/etc/imapsync-task/imapsync-task.conf"
TASK = "pkgmail"
STATE_DIRS = ("/var/lib/imapsync-task", "/var/lib/private/imapsync-task")

_tap = Tap()
ok = _tap.ok
diag = _tap.diag


def on_signal(signum, frame):
    raise Abort("signal %d" % signum)


def pkg_config(var):
    r = run(["pkg-config", "--variable=" + var, "systemd"], timeout=30)
    return r.stdout.strip() or None


def check_static():
    if LINTIAN_LOG:
        if os.path.exists(LINTIAN_LOG):
            with open(LINTIAN_LOG) as f:
                lines = f.read().splitlines()
            errors = [l for l in lines if l.startswith("E:")]
            warnings = [l for l in lines if l.startswith("W:")]
            for l in errors + warnings:
                diag("lintian: " + l)
            ok(not errors, "lintian: no error (%d warning(s))" % len(warnings))
        else:
            ok(False, "lintian's report %s exists" % LINTIAN_LOG)

    r = run(["dpkg-deb", "-c", DEB], timeout=30, check=True)
    files = {}
    for line in r.stdout.splitlines():
        words = line.split()
        path = words[5][1:] if len(words) >= 6 else ""
        files[path.rstrip("/") or "/"] = words[0]
    unit_dir = pkg_config("systemdsystemunitdir") or "/lib/systemd/system"
    gen_dir = pkg_config("systemdsystemgeneratordir") or "/lib/systemd/system-generators"
    groups = [
        ("the worker and the reload helper in /usr/sbin, executable",
         {"/usr/sbin/imapsync-task": "-rwxr-xr-x", "/usr/sbin/imapsync-task-reload": "-rwxr-xr-x"}),
        ("the generator in %s (pkg-config systemd)" % gen_dir,
         {gen_dir + "/imapsync-task-generator": "-rwxr-xr-x"}),
        ("the unit templates in %s (pkg-config systemd)" % unit_dir,
         {unit_dir + "/imapsync-task@.service": "-rw-r--r--",
          unit_dir + "/imapsync-task@.timer": "-rw-r--r--"}),
        ("/etc/imapsync-task/imapsync-task.conf and an empty tasks/",
         {CONF: "-rw-r--r--", "/etc/imapsync-task/tasks": "drwxr-xr-x"}),
        ("the annotated example under /usr/share/doc/imapsync-task/, uncompressed",
         {"/usr/share/doc/imapsync-task/examples/example.ini.sample": "-rw-r--r--"}),
        ("the man pages",
         {"/usr/share/man/man8/imapsync-task.8.gz": "-rw-r--r--",
          "/usr/share/man/man8/imapsync-task-reload.8.gz": "-rw-r--r--",
          "/usr/share/man/man5/imapsync-task.ini.5.gz": "-rw-r--r--"}),
    ]
    for label, want in groups:
        bad = {p: files.get(p) for p, mode in want.items() if files.get(p) != mode}
        ok(not bad, "package: %s%s" % (label, " (wrong: %r)" % bad if bad else ""))
    tasks_content = [p for p in files if p.startswith("/etc/imapsync-task/tasks/")]
    ok(not tasks_content, "package: nothing in tasks/ (%s)" % tasks_content)

    r = run(["dpkg-deb", "-f", DEB, "Package", "Version", "Architecture", "Depends"],
            timeout=30, check=True)
    diag(r.stdout)
    tmp = tempfile.mkdtemp(prefix="t_deb.")
    try:
        run(["dpkg-deb", "-e", DEB, tmp + "/DEBIAN"], timeout=30, check=True)
        ctrl = set(os.listdir(tmp + "/DEBIAN"))
        conffiles = []
        if "conffiles" in ctrl:
            with open(tmp + "/DEBIAN/conffiles") as f:
                conffiles = f.read().split()
        scripts = {}
        for name in ("postinst", "prerm", "postrm"):
            if name in ctrl:
                with open(tmp + "/DEBIAN/" + name) as f:
                    scripts[name] = f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ok(conffiles == [CONF], "package: conffiles is exactly %s (%r)" % (CONF, conffiles))
    ok(set(scripts) == {"postinst", "prerm", "postrm"},
       "package: postinst, prerm and postrm (%s)" % " ".join(sorted(ctrl)))
    ok("imapsync-task-reload" in scripts.get("postinst", "")
       and "daemon-reload" in scripts.get("postrm", "")
       and "/var/lib/private/imapsync-task" in scripts.get("postrm", ""),
       "package: postinst reloads and applies the tasks, postrm reloads and purges the state")


def put(c, path, text, mode):
    c.put(path, text, mode)


def run_in(c, argv, timeout=60):
    r = c.enter(argv, timeout=timeout)
    if r.returncode != 0:
        diag("%s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout[-1500:],
                                    r.stderr[-1500:]))
    return r


def check_container(c):
    import dovecot

    inside_deb = "/root/" + os.path.basename(DEB)
    c.put(inside_deb, (DEB,), 0o644)
    r = run_in(c, ["dpkg", "-i", inside_deb], timeout=120)
    ok(r.returncode == 0, "dpkg -i installs the package in the booted container")
    st = c.enter(["dpkg-query", "-W", "-f=${Status}", "imapsync-task"]).stdout
    if not ok(st == "install ok installed", "dpkg says: %s" % st):
        raise Abort("not installed")
    r = run_in(c, ["imapsync-task", "--version"])
    ok(r.returncode == 0 and "imapsync-task" in r.stdout + r.stderr,
       "the installed worker runs (%s)" % (r.stdout + r.stderr).strip()[:60])
    ok(c.enter(["test", "-d", "/etc/imapsync-task/tasks"]).returncode == 0,
       "/etc/imapsync-task/tasks/ exists")

    with dovecot.DovecotPair(name="t_deb") as pair:
        remote_pw = pair.remote.add_user("alice")
        pair.local.add_user("alice")
        sent = [dovecot.make_message(i) for i in range(1, 4)]
        dovecot.seed(pair.remote, "alice", "INBOX", sent)

        ca = "/etc/imapsync-task/test-ca.pem"
        with open(pair.ca_file) as f:
            put(c, ca, f.read(), 0o644)
        admin_conf = ("# edited by the admin\n[local]\nhost = 127.0.0.1\nport = %d\n"
                      "security = starttls\nca_file = %s\nmaster_user = %s\n"
                      "master_separator = *\n" % (pair.local.imap_port, ca, pair.master_user))
        put(c, CONF, admin_conf, 0o644)
        put(c, "/etc/imapsync-task/master.pwd", pair.master_password + "\n", 0o600)
        put(c, "/etc/imapsync-task/tasks/%s.ini" % TASK,
            "[task]\nlocal_user = alice\nfolders = inbox\ndelete = never\n"
            "delivery = append\ninterval = 1min\n\n"
            "[remote]\nhost = 127.0.0.1\nport = %d\nsecurity = starttls\n"
            "ca_file = %s\nuser = alice\n" % (pair.remote.imap_port, ca), 0o644)
        put(c, "/etc/imapsync-task/tasks/%s.pwd" % TASK, remote_pw + "\n", 0o600)

        r = run_in(c, ["imapsync-task-reload"], timeout=90)
        diag(r.stdout)
        ok(r.returncode == 0, "imapsync-task-reload exits 0 (%d)" % r.returncode)
        timers = c.timers()
        unit = "imapsync-task@%s.timer" % TASK
        ok(list(timers) == [unit] and timers[unit]["next"] not in ("-", ""),
           "list-timers shows %s with a NEXT time (%s)"
           % (unit, "; ".join(t["line"] for t in timers.values())))

        # The timer fires by itself: OnBootSec=1min after the container's
        # start, RandomizedDelaySec=15s.
        deadline = time.monotonic() + T_FIRE
        summary = []
        while time.monotonic() < deadline:
            es = c.journal("_SYSTEMD_UNIT=imapsync-task@%s.service" % TASK, wait=0)
            summary = [e for e in es if e.get("TASK") == TASK and e.get("VERDICT")]
            if summary:
                break
            time.sleep(2)
        p = c.show(unit, "LastTriggerUSec", "ActiveState")
        diag("%s: %r" % (unit, p))
        ok(summary and p.get("LastTriggerUSec", "n/a") not in ("", "n/a", "0"),
           "the timer started the service by itself (within %ds)" % T_FIRE)
        ok(summary and summary[0].get("VERDICT") == "ok" and summary[0].get("EXIT_CODE") == "0",
           "the run under the timer ended well (%s)"
           % (str(summary[0].get("MESSAGE"))[:120] if summary else "no run"))
        got = dovecot.read_mailbox(pair.local, "alice", "INBOX", master=True)
        ok(sorted(m["bytes"] for m in got) == sorted(sent),
           "the 3 messages arrived byte for byte (%d in the local INBOX)" % len(got))
        st = c.enter(["ls", "-A", "/var/lib/private/imapsync-task/" + TASK])
        ok(st.returncode == 0 and st.stdout.strip() != "",
           "the task's state is in /var/lib/private/imapsync-task/%s" % TASK)

        # Reinstall (as an upgrade does): the admin's conffile stays.
        r = run_in(c, ["dpkg", "-i", "--force-confold", inside_deb], timeout=120)
        with open(c.path(CONF)) as f:
            kept = f.read()
        ok(r.returncode == 0 and kept == admin_conf,
           "reinstalling keeps the admin's imapsync-task.conf")
        p = c.show(unit, "ActiveState")
        ok(p.get("ActiveState") == "active", "the timer is still active after the reinstall (%s)"
           % p.get("ActiveState"))

    r = run_in(c, ["dpkg", "-r", "imapsync-task"], timeout=120)
    ok(r.returncode == 0, "dpkg -r removes the package")
    timers = c.timers()
    ok(not timers, "after dpkg -r: no imapsync-task timer left (%s)" % list(timers))
    gone = c.enter(["test", "-e", "/usr/sbin/imapsync-task"]).returncode != 0
    kept = all(c.enter(["test", "-e", p]).returncode == 0
               for p in (CONF, "/var/lib/private/imapsync-task/" + TASK))
    ok(gone and kept, "after dpkg -r: the binary is gone, conffile and state are kept")

    r = run_in(c, ["dpkg", "-P", "imapsync-task"], timeout=120)
    ok(r.returncode == 0, "dpkg -P purges the package")
    left = [p for p in STATE_DIRS + (CONF,) if c.enter(["test", "-e", p]).returncode == 0]
    ok(not left, "after dpkg -P: state and conffile are gone (left: %s)" % left)
    ok(c.enter(["test", "-e", "/etc/imapsync-task/tasks/%s.ini" % TASK]).returncode == 0,
       "after dpkg -P: the admin's task file is still there")


def main():
    if not DEB or not os.path.isfile(DEB):
        print("Bail out! IMAPSYNC_TASK_DEB does not name a .deb: %r" % DEB, flush=True)
        return 1
    if os.geteuid() != 0:
        print("Bail out! needs root (systemd-nspawn, dpkg in the container)", flush=True)
        return 1
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(s, on_signal)
    signal.alarm(DEADLINE_SEC)
    c = Container("ist-deb-%d" % os.getpid(), diag)
    t_start = time.monotonic()
    try:
        check_static()
        tools(diag)
        c.make_root()
        c.boot()
        ok(True, "the container boots (%s)" % c.wait_booted())
        check_container(c)
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
