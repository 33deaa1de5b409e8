#!/usr/bin/env python3
"""t_generator.py - imapsync-task-generator against a throwaway config dir.

Builds CONFIG/tasks/ with two scheduled tasks (15min, 1h), a manual task,
a task with an unknown key, a file name that is not a valid task name and
a non-.ini file; runs the generator the way systemd does (three output
directories) with IMAPSYNC_TASK_CONFIG_DIR pointing at it, and checks
exactly what it wrote: timer links and interval drop-ins for the scheduled
tasks, a credentials drop-in (LoadCredential= of the task's password file
and of the master password file, wherever they are) for every valid task.
Also: the generated drop-ins load in systemd (systemd-analyze verify), a
broken imapsync-task.conf leaves the master credential to the template
(and says so), a missing config dir writes nothing and exits 0, a wrong
command line exits nonzero.  Prints TAP.
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile

TIMEOUT = 30

GENERATOR = os.environ.get("IMAPSYNC_TASK_GENERATOR")
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", ".")

# TAP through the shared helper (tests/lib/worker.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from worker import Tap  # noqa: E402

_tap = Tap()
ok = _tap.ok
diag = _tap.diag


def bail(reason):
    print("Bail out! " + reason, flush=True)
    sys.exit(1)


def task_ini(name, interval, extra="", password_file="{cfg}/tasks/%s.pwd"):
    return (
        "[task]\n"
        "local_user = alice\n"
        "folders = inbox\n"
        "delete = never\n"
        "delivery = append\n"
        "interval = %s\n"
        "%s"
        "\n"
        "[remote]\n"
        "host = imap.example.org\n"
        "port = 993\n"
        "security = tls\n"
        "user = alice@example.org\n"
        "password_file = %s\n" % (interval, extra, password_file.replace("%s", name))
    )


# name -> (ini text, expected interval in seconds or None for "no timer")
TASKS = {
    "every15": (task_ini("every15", "15min"), 900),
    "hourly": (task_ini("hourly", "1h"), 3600),
    # No password file: the generator does not check it (it may come as a
    # credential from a drop-in); the service fails visibly if it is missing.
    "nopwd": (task_ini("nopwd", "2h"), 7200),
    "byhand": (task_ini("byhand", "manual"), None),
    "broken": (task_ini("broken", "15min", "colour = blue\n"), None),
    "bad name": (task_ini("bad name", "15min"), None),
    # Password file outside the config dir, written with "." and "//".
    "elsewhere": (task_ini("elsewhere", "manual",
                           password_file="{root}/secrets/./x//elsewhere.pwd"), None),
}
# Valid tasks: a credentials drop-in each, manual ones too.
VALID = ("every15", "hourly", "nopwd", "byhand", "elsewhere")


def write_file(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def make_config(root):
    cfg = os.path.join(root, "config")
    tasks = os.path.join(cfg, "tasks")
    os.makedirs(tasks, mode=0o755)
    os.chmod(cfg, 0o755)
    os.chmod(tasks, 0o755)
    os.makedirs(os.path.join(root, "secrets", "x"))
    for name, (text, _) in TASKS.items():
        write_file(os.path.join(tasks, name + ".ini"),
                   text.replace("{cfg}", cfg).replace("{root}", root), 0o644)
        if name == "elsewhere":
            write_file(os.path.join(root, "secrets", "x", "elsewhere.pwd"), "secret\n", 0o600)
        elif name != "nopwd":
            write_file(os.path.join(tasks, name + ".pwd"), "secret\n", 0o600)
    write_file(os.path.join(tasks, "README.txt"),
               "[task]\ninterval = 5min\n", 0o644)
    # The master password file outside the config dir, relative to it.
    write_file(os.path.join(cfg, "imapsync-task.conf"),
               "[local]\nmaster_password_file = ../secrets/master.pwd\n", 0o644)
    write_file(os.path.join(root, "secrets", "master.pwd"), "master\n", 0o600)
    return cfg


def run_generator(args, cfg):
    env = dict(os.environ)
    env.pop("IMAPSYNC_TASK_CONFIG_DIR", None)
    if cfg is not None:
        env["IMAPSYNC_TASK_CONFIG_DIR"] = cfg
    env["IMAPSYNC_TASK_GENERATOR_LOG"] = "stderr"
    return subprocess.run([GENERATOR] + args, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def tree(top):
    """Every path under TOP (relative) -> ('dir'|'file'|'link', detail)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("dir", None)
        for f in filenames:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            else:
                with open(p) as fh:
                    out[rel] = ("file", fh.read())
    return out


def dropin_settings(text):
    """[(section, key, value)] in order, comments skipped."""
    settings = []
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.append((section, key, value))
    return settings


def values(settings, section, key):
    return [v for s, k, v in settings if (s, k) == (section, key)]


def check_scheduled(out, cfg, name, interval):
    link = "timers.target.wants/imapsync-task@%s.timer" % name
    dropin = "imapsync-task@%s.timer.d/50-interval.conf" % name
    kind, target = out.get(link, (None, None))
    ok(kind == "link" and os.path.isabs(target)
       and os.path.basename(target) == "imapsync-task@.timer",
       "%s: wants link to the absolute template path (%r)" % (name, target))
    kind, text = out.get(dropin, (None, ""))
    if not ok(kind == "file", "%s: drop-in %s written" % (name, dropin)):
        return
    source = os.path.join(cfg, "tasks", name + ".ini")
    s = dropin_settings(text)
    ok("imapsync-task-generator" in text.splitlines()[0]
       and source in text.split("[Unit]")[0],
       "%s: header comment names the generator and the source" % name)
    ok(values(s, "Unit", "SourcePath") == [source], "%s: SourcePath=%s" % (name, source))
    # An empty assignment to any timer setting clears them all (template
    # defaults and values written before it): exactly one, and first.
    timer = [(k, v) for sec, k, v in s if sec == "Timer"]
    resets = [i for i, (k, v) in enumerate(timer) if v == ""]
    ok(resets == [0] and timer[0][0] in ("OnBootSec", "OnUnitActiveSec"),
       "%s: one reset of the template's times, before any value (%r)" % (name, timer))
    ok(values(s, "Timer", "OnUnitActiveSec")[-1:] == ["%ds" % interval],
       "%s: OnUnitActiveSec=%ds" % (name, interval))
    boot = [v for v in values(s, "Timer", "OnBootSec") if v]
    ok(len(boot) == 1 and boot[0].endswith("s")
       and 0 < int(boot[0][:-1]) <= interval,
       "%s: OnBootSec= at most the interval (%r)" % (name, boot))
    rnd = values(s, "Timer", "RandomizedDelaySec")
    ok(len(rnd) == 1 and rnd[0].endswith("s")
       and 0 <= int(rnd[0][:-1]) <= min(interval // 4, 300),
       "%s: RandomizedDelaySec=%r within min(interval/4, 5min)" % (name, rnd))
    st = os.lstat(os.path.join(OUT_TOP, dropin))
    ok(stat.S_IMODE(st.st_mode) == 0o644, "%s: drop-in mode 0644" % name)


def check_credentials(out, name, task_pwd, master_pwd):
    dropin = "imapsync-task@%s.service.d/10-credentials.conf" % name
    kind, text = out.get(dropin, (None, ""))
    if not ok(kind == "file", "%s: credentials drop-in %s written" % (name, dropin)):
        return
    s = dropin_settings(text)
    creds = values(s, "Service", "LoadCredential")
    want = ["task.%s.password:%s" % (name, task_pwd)]
    if master_pwd is not None:
        want.append("master.password:%s" % master_pwd)
    ok(creds == want, "%s: LoadCredential= exactly %r (%r)" % (name, want, creds))
    source = os.path.join(CFG, "tasks", name + ".ini")
    ok("imapsync-task-generator" in text.splitlines()[0]
       and values(s, "Unit", "SourcePath") == [source],
       "%s: credentials drop-in names the generator, SourcePath=%s" % (name, source))
    st = os.lstat(os.path.join(OUT_TOP, dropin))
    ok(stat.S_IMODE(st.st_mode) == 0o644, "%s: credentials drop-in mode 0644" % name)


def verify_with_systemd(root, out):
    """Load a generated timer with its drop-in in systemd-analyze verify."""
    units = os.path.join(TOP_BUILDDIR, "units")
    src_timer = os.path.join(units, "imapsync-task@.timer")
    src_service = os.path.join(units, "imapsync-task@.service")
    if not (os.path.exists(src_timer) and os.path.exists(src_service)):
        ok(False, "built units exist in %s (make units first)" % units)
        return
    unitdir = os.path.join(root, "units")
    os.makedirs(unitdir)
    shutil.copy(src_timer, unitdir)
    # verify checks that ExecStart= exists: point it at something that does.
    with open(src_service) as f:
        service = [("ExecStart=/bin/true" if l.startswith("ExecStart=") else l)
                   for l in f.read().splitlines()]
    with open(os.path.join(unitdir, "imapsync-task@.service"), "w") as f:
        f.write("\n".join(service) + "\n")
    env = dict(os.environ, SYSTEMD_UNIT_PATH="%s:%s:" % (out, unitdir),
               SYSTEMD_LOG_LEVEL="notice")
    for unit in ("imapsync-task@every15.timer", "imapsync-task@elsewhere.service"):
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                           env=env, capture_output=True, text=True, timeout=TIMEOUT)
        output = (r.stdout + r.stderr).strip()
        if output:
            diag(output)
        ok(r.returncode == 0 and output == "",
           "systemd-analyze verify loads %s with its drop-in, silently" % unit)


def main():
    global OUT_TOP, CFG
    if not GENERATOR or not os.access(GENERATOR, os.X_OK):
        bail("IMAPSYNC_TASK_GENERATOR is not an executable: %r" % GENERATOR)
    root = tempfile.mkdtemp(prefix="t_generator.")
    try:
        cfg = make_config(root)
        CFG = cfg
        normal, early, late = (os.path.join(root, d) for d in ("normal", "early", "late"))
        for d in (normal, early, late):
            os.mkdir(d)
        OUT_TOP = normal

        r = run_generator([normal, early, late], cfg)
        ok(r.returncode == 0, "generator exits 0 with broken tasks present (rc=%d)" % r.returncode)
        out = tree(normal)
        expected = {"timers.target.wants"}
        for name, (_, interval) in TASKS.items():
            if interval is not None:
                expected |= {"timers.target.wants/imapsync-task@%s.timer" % name,
                             "imapsync-task@%s.timer.d" % name,
                             "imapsync-task@%s.timer.d/50-interval.conf" % name}
        for name in VALID:
            expected |= {"imapsync-task@%s.service.d" % name,
                         "imapsync-task@%s.service.d/10-credentials.conf" % name}
        if not ok(set(out) == expected, "exactly the expected links and drop-ins"):
            diag("unexpected: %s" % sorted(set(out) - expected))
            diag("missing: %s" % sorted(expected - set(out)))
        ok(tree(early) == {} and tree(late) == {}, "early and late dirs untouched")
        for name, (_, interval) in TASKS.items():
            if interval is not None:
                check_scheduled(out, cfg, name, interval)
        master = os.path.join(root, "secrets", "master.pwd")
        for name in VALID:
            task_pwd = os.path.join(cfg, "tasks", name + ".pwd")
            if name == "elsewhere":
                task_pwd = os.path.join(root, "secrets", "x", "elsewhere.pwd")
            check_credentials(out, name, task_pwd, master)
        ok(not any(("byhand" in p and not p.startswith("imapsync-task@byhand.service.d"))
                   or "broken" in p or "README" in p or "bad name" in p for p in out),
           "only credentials for the manual task, nothing for the broken task, a bad "
           "name or a non-ini file")

        err_lines = r.stderr.splitlines()
        diag("generator stderr:")
        diag(r.stderr or "(empty)")
        broken_lines = [l for l in err_lines if "broken.ini" in l]
        ok(len(broken_lines) >= 1
           and all(l.startswith("imapsync-task-generator: ") for l in err_lines),
           "an error line names broken.ini, every line is prefixed")
        ok(any("colour" in l for l in broken_lines),
           "the error for broken.ini names the bad key")
        ok(not any(n in l for l in err_lines
                   for n in ("every15", "hourly", "byhand", "nopwd", "elsewhere",
                             "imapsync-task.conf")),
           "no complaint about the good tasks or imapsync-task.conf")
        ok("secret" not in r.stderr and "master\n" not in r.stderr,
           "no password in the log")

        # The same input gives the same output (one-argument form too).
        again = os.path.join(root, "again")
        os.mkdir(again)
        r2 = run_generator([again], cfg)
        ok(r2.returncode == 0 and tree(again) == out,
           "one-argument form writes the same files")

        verify_with_systemd(root, normal)

        # The master password file need not exist (it may come as an
        # encrypted credential): not checked, still passed, no complaint.
        conf = os.path.join(cfg, "imapsync-task.conf")
        os.unlink(conf)
        write_file(conf, "[local]\nmaster_password_file = /nonexistent/m.pwd\n", 0o644)
        nomaster = os.path.join(root, "nomaster")
        os.mkdir(nomaster)
        r6 = run_generator([nomaster], cfg)
        creds = values(dropin_settings(tree(nomaster).get(
            "imapsync-task@every15.service.d/10-credentials.conf", (None, ""))[1]),
            "Service", "LoadCredential")
        ok(creds[-1:] == ["master.password:/nonexistent/m.pwd"]
           and "imapsync-task.conf" not in r6.stderr,
           "a master password file that does not exist is passed on, unchecked (%r)"
           % creds[-1:])

        # A broken imapsync-task.conf: the tasks keep their timers and
        # their own credential; master.password stays the template's.
        os.unlink(conf)
        write_file(conf, "[local]\nmaster_password_file = ../secrets/master.pwd\n"
                   "colour = blue\n", 0o644)
        bad = os.path.join(root, "badconf")
        os.mkdir(bad)
        r5 = run_generator([bad], cfg)
        out5 = tree(bad)
        creds = values(dropin_settings(out5.get(
            "imapsync-task@every15.service.d/10-credentials.conf", (None, ""))[1]),
            "Service", "LoadCredential")
        ok(r5.returncode == 0 and
           "timers.target.wants/imapsync-task@every15.timer" in out5 and
           creds == ["task.every15.password:%s" % os.path.join(cfg, "tasks", "every15.pwd")],
           "broken imapsync-task.conf: timers stay, only the task credential is written (%r)"
           % creds)
        ok(any("imapsync-task.conf" in l and "colour" in l for l in r5.stderr.splitlines())
           and any("imapsync-task.conf" in l and "template's default" in l
                   for l in r5.stderr.splitlines()),
           "broken imapsync-task.conf: the error and its consequence are logged")

        # Missing config dir, and a config dir without tasks/.
        for label, cfgdir in (("missing config dir", os.path.join(root, "nope")),
                              ("config dir without tasks/", os.path.join(root, "empty"))):
            if label.startswith("config dir without"):
                os.mkdir(cfgdir)
            o = tempfile.mkdtemp(dir=root)
            r3 = run_generator([o, o, o], cfgdir)
            ok(r3.returncode == 0 and tree(o) == {} and r3.stderr == "",
               "%s: exit 0, nothing written, silent (rc=%d, stderr=%r)"
               % (label, r3.returncode, r3.stderr))

        # Command line: 0 or 2 directories is a usage error.
        for args in ([], [normal, early]):
            r4 = run_generator(args, cfg)
            ok(r4.returncode != 0 and "usage" in r4.stderr,
               "%d argument(s): usage error" % len(args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("1..%d" % _tap.n, flush=True)
    return 1 if _tap.failed else 0


OUT_TOP = None
CFG = None

if __name__ == "__main__":
    sys.exit(main())
