"""A throwaway Debian bookworm booted with a real systemd as PID 1, for
tests (tests/lib/nspawn.sh does the work; /work/shared/SYSTEMD-IN-CI.md
has the facts behind it).

    from nspawn_container import Container, Abort, run
    c = Container("ist-x-%d" % os.getpid(), diag)
    try:
        c.make_root()                      # from the cached tar
        c.put("/etc/foo", "text", 0o644)   # files go in through the root dir
        c.boot()
        c.wait_booted()
        c.systemctl("daemon-reload", check=True)
    finally:
        c.teardown(failed)

Every call is bounded: a command that overruns its timeout is killed with
its process group and raises Abort, as does a failed check=True command.
The container shares the host's network, so a DovecotPair started on the
host (127.0.0.1) is reachable from inside.  Needs root.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NSPAWN_SH = os.path.join(HERE, "nspawn.sh")
T_SHORT = 30          # one systemctl/journalctl call
# systemd's "Deactivated successfully" (a unit that ended well).
UNIT_SUCCESS_ID = "7ad2d189f7e94e70a38c781354912448"


class Abort(Exception):
    """A step that later steps depend on failed, or time ran out."""


def _no_diag(text):
    pass


def run(argv, timeout, check=False, env=None, diag=_no_diag, input=None):
    """Run ARGV in a process group of its own, so that a timeout or a
    signal to the test ends its children too (tar, debootstrap, ...)."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
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


def tools(diag=_no_diag):
    """Install systemd-container and debootstrap when missing."""
    r = run(["sh", NSPAWN_SH, "tools"], timeout=1300)
    if r.returncode != 0:
        diag(r.stderr)
        raise Abort("cannot install systemd-container/debootstrap")


class Container:
    def __init__(self, name, diag=_no_diag):
        self.name = name
        self.diag = diag
        self.root = None
        self.proc = None
        self.leader = None
        self.log_path = None

    # --- life cycle ---------------------------------------------------------

    def make_root(self):
        self.root = tempfile.mkdtemp(prefix="imapsync-task-ct.", dir="/var/tmp")
        run(["sh", NSPAWN_SH, "rootfs", self.root], timeout=1300, check=True,
            diag=self.diag)

    def boot(self):
        self.log_path = self.root.rstrip("/") + ".console"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["sh", NSPAWN_SH, "boot", self.name, self.root],
                                     stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        r = run(["sh", NSPAWN_SH, "leader", str(self.proc.pid), "30"], timeout=40)
        if r.returncode != 0:
            self.diag(r.stderr)
            raise Abort("the container did not start")
        self.leader = r.stdout.strip()

    def wait_booted(self, timeout=90):
        """The state of is-system-running once the boot is over
        ("running" or "degraded"); raises Abort otherwise."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            r = self.enter(["systemctl", "is-system-running", "--wait"], timeout=timeout)
            state = r.stdout.strip()
            if state not in ("", "offline", "unknown", "initializing", "starting"):
                break
            time.sleep(0.2)
        if state == "degraded":
            self.diag(self.systemctl("--failed", "--no-legend").stdout)
        if state not in ("running", "degraded"):
            raise Abort("no usable systemd in the container (%s)" % state)
        return state

    def teardown(self, failed=False):
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
            self.diag("nspawn still running; leaving %s in place" % self.root)
            return
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.log_path and os.path.exists(self.log_path):
            if failed:
                with open(self.log_path, errors="replace") as f:
                    lines = [l for l in f.read().splitlines() if l.strip()]
                self.diag("container console (tail):")
                self.diag("\n".join(lines[-30:]))
            os.unlink(self.log_path)

    # --- driving it -----------------------------------------------------------

    def enter(self, argv, timeout=T_SHORT, check=False, input=None):
        return run(["nsenter", "--target", self.leader, "--all", "--"] + argv,
                   timeout=timeout, check=check, diag=self.diag, input=input)

    def systemctl(self, *args, timeout=T_SHORT, check=False):
        return self.enter(["systemctl", "--no-pager"] + list(args), timeout, check)

    def show(self, unit, *props):
        """PROPS of UNIT; an array property (TimersMonotonic=) comes as one
        line per element: those are joined with newlines."""
        r = self.systemctl("show", unit, *("-p" + p for p in props), check=True)
        out = {}
        for line in r.stdout.splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = out[k] + "\n" + v if k in out else v
        return out

    def journal(self, *match, until=None, wait=10):
        """Entries matching MATCH (journalctl arguments); journald stores
        lines a little after they were written, so poll until
        UNTIL(entries) holds (default: any entry) or WAIT seconds passed."""
        until = until or (lambda entries: len(entries) > 0)
        deadline = time.monotonic() + wait
        while True:
            r = self.enter(["journalctl", "--no-pager", "-b", "-o", "json"] + list(match),
                           check=True)
            entries = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
            if until(entries) or time.monotonic() > deadline:
                return entries
            time.sleep(0.2)

    def cursor(self):
        r = self.enter(["journalctl", "-n0", "--show-cursor", "-q"], check=True)
        return r.stdout.strip().split("cursor: ", 1)[-1]

    def timers(self, glob="imapsync-task@*.timer"):
        """{unit: {"next": NEXT column, "line": the list-timers line}} of
        every timer systemd lists (active ones, --all: inactive too)."""
        r = self.systemctl("list-timers", "--all", "--no-legend", glob, check=True)
        out = {}
        for line in r.stdout.splitlines():
            words = line.split()
            units = [w for w in words if w.endswith(".timer")]
            if units:
                out[units[0]] = {"next": "-" if line.startswith("-") else line[:30].strip(),
                                 "line": line}
        return out

    # --- files ---------------------------------------------------------------

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))

    def put(self, inside, data, mode):
        """Write DATA (text, or a 1-tuple naming a host file to copy) at
        INSIDE, parent directories included."""
        p = self.path(inside)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(data, str):
            with open(p, "w") as f:
                f.write(data)
        else:
            shutil.copyfile(data[0], p)
        os.chmod(p, mode)
        return p
