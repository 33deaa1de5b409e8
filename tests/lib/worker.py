"""Run the imapsync-task worker against a DovecotPair, and TAP output.

    from worker import Tap, TaskEnv
    tap = Tap()
    with DovecotPair() as pair:
        te = TaskEnv(pair, "alice")        # config dir, state dir, passwords
        r = te.run()                       # CompletedProcess, .returncode
        tap.ok(r.returncode == 0, "first run succeeds")
    tap.done()
"""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.dirname(os.path.dirname(HERE)))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", TOP_SRCDIR)
BIN = os.environ.get("IMAPSYNC_TASK_BIN",
                     os.path.join(TOP_BUILDDIR, "imapsync-task", "imapsync-task"))
# The worker binary itself, even when BIN is a wrapper (below).
REAL_BIN = BIN
# IMAPSYNC_TASK_WRAPPER names a program that runs the worker for the
# tests, such as tests/lib/valgrind-wrap.  BIN is then the wrapper, which
# finds the worker in $IMAPSYNC_TASK_REAL_BIN: every test that runs BIN,
# directly or through TaskEnv, runs the worker through it.
WRAPPER = os.environ.get("IMAPSYNC_TASK_WRAPPER", "")
if WRAPPER:
    os.environ["IMAPSYNC_TASK_REAL_BIN"] = REAL_BIN
    BIN = WRAPPER


class Tap:
    """Minimal TAP producer: every check is one test point."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            if detail:
                for line in str(detail).splitlines()[-40:]:
                    print(f"#   {line}", flush=True)
        return cond

    def diag(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class TaskEnv:
    """A config dir and a state dir for one task against a pair.

    The remote user and the local user must exist on the pair; the
    remote password and the master password are copied into 0600 files
    (never put in argv)."""

    def __init__(self, pair, user, local_user=None, name=None, security="starttls",
                 local_security="starttls", task_extra="", remote_extra="",
                 remote_password=None, master_password=None, base=None):
        self.pair = pair
        self.name = name or user
        self.base = base or tempfile.mkdtemp(prefix="task-", dir=pair.dir)
        self.config_dir = os.path.join(self.base, "etc")
        self.state_dir = os.path.join(self.base, "state")
        os.makedirs(os.path.join(self.config_dir, "tasks"), exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        self.remote_password = remote_password or pair.remote.password(user)
        self.master_password = master_password or pair.master_password
        r, l = pair.remote, pair.local
        rport = r.imaps_port if security == "tls" else r.imap_port
        lport = l.imaps_port if local_security == "tls" else l.imap_port
        _write(os.path.join(self.config_dir, "imapsync-task.conf"),
               "[local]\n"
               f"host = {l.host}\nport = {lport}\nsecurity = {local_security}\n"
               "master_user = vmail\nmaster_separator = *\n"
               f"master_password_file = {self.config_dir}/master.pwd\n"
               f"ca_file = {pair.ca_file}\n"
               f"lmtp = {l.host}:{l.lmtp_port}\n", 0o644)
        self.write_task(local_user or user, user, security, rport, task_extra,
                        remote_extra)
        _write(os.path.join(self.config_dir, "master.pwd"), self.master_password + "\n")
        _write(os.path.join(self.config_dir, "tasks", f"{self.name}.pwd"),
               self.remote_password + "\n")

    def write_task(self, local_user, user, security, port, task_extra="", remote_extra=""):
        r = self.pair.remote
        _write(os.path.join(self.config_dir, "tasks", f"{self.name}.ini"),
               "[task]\n"
               f"local_user = {local_user}\nfolders = inbox\ninterval = 15min\n"
               f"{task_extra}"
               "[remote]\n"
               f"host = {r.host}\nport = {port}\nsecurity = {security}\n"
               f"user = {user}\nca_file = {self.pair.ca_file}\n"
               f"{remote_extra}", 0o644)

    def argv(self, *args):
        return [BIN, "--config-dir", self.config_dir, "--state-dir", self.state_dir,
                "--timeout", "20", *args]

    def run(self, *args, env=None, timeout=300):
        """imapsync-task run ARGS NAME; output captured as text."""
        e = dict(os.environ)
        e.pop("JOURNAL_STREAM", None)
        e.pop("CREDENTIALS_DIRECTORY", None)
        e.pop("STATE_DIRECTORY", None)
        if env:
            e.update(env)
        return subprocess.run(self.argv("run", *args, self.name), env=e,
                              capture_output=True, text=True, timeout=timeout)

    def cmd(self, *args, env=None, timeout=120):
        e = dict(os.environ)
        e.pop("JOURNAL_STREAM", None)
        if env:
            e.update(env)
        return subprocess.run(self.argv(*args), env=e, capture_output=True,
                              text=True, timeout=timeout)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


def output(r):
    return (r.stdout or "") + (r.stderr or "")


def normalized(data):
    return data.replace(b"\r\n", b"\n").rstrip(b"\n")


def one_copy_each(local, want):
    """Each wanted message has exactly one local copy: the same content
    once line ends are normalized, LMTP's trace headers allowed in front."""
    left = [normalized(m["bytes"]) for m in local]
    for w in want:
        nw = normalized(w)
        hit = next((i for i, b in enumerate(left) if b.endswith(nw)), None)
        if hit is None:
            return False
        left.pop(hit)
    return not left
