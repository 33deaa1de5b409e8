#!/usr/bin/python3
"""The imapsync-task command line: usage errors, configuration errors with
FILE:LINE, password file checks, credentials from $CREDENTIALS_DIRECTORY,
and the list/status/check commands.  No server is needed except for the
credential case, which logs in to a real Dovecot pair."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from worker import BIN, Tap, TaskEnv, output  # noqa: E402

tap = Tap()


def run(*args, env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "JOURNAL_STREAM",
                      "IMAPSYNC_TASK_CONFIG_DIR")}
    if env:
        e.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=60)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def make_config(base):
    etc = os.path.join(base, "etc")
    write(os.path.join(etc, "imapsync-task.conf"),
          "[local]\nhost = 127.0.0.1\nport = 1143\nsecurity = starttls\n"
          f"master_password_file = {etc}/master.pwd\n")
    write(os.path.join(etc, "master.pwd"), "master-secret\n", 0o600)
    write(os.path.join(etc, "tasks", "good.ini"),
          "[task]\nlocal_user = john\nfolders = inbox\ninterval = 15min\n"
          "[remote]\nhost = imap.example.org\nuser = john@example.org\n")
    write(os.path.join(etc, "tasks", "good.pwd"), "remote-secret\n", 0o600)
    write(os.path.join(etc, "tasks", "manual.ini"),
          "[task]\nlocal_user = jane\ninterval = manual\n"
          "[remote]\nhost = imap.example.org\nuser = jane@example.org\n")
    write(os.path.join(etc, "tasks", "manual.pwd"), "x\n", 0o600)
    return etc


def main():
    base = tempfile.mkdtemp(prefix="t_cli-")
    try:
        etc = make_config(base)
        state = os.path.join(base, "state")

        r = run()
        tap.ok(r.returncode == 64 and "Usage" in r.stderr, "no command: usage, exit 64", output(r))
        r = run("frobnicate")
        tap.ok(r.returncode == 64 and "unknown command" in r.stderr, "unknown command: 64", output(r))
        r = run("--config-dir", etc, "run")
        tap.ok(r.returncode == 64, "run without a task name: 64", output(r))
        r = run("--config-dir", etc, "list", "--dry-run")
        tap.ok(r.returncode == 64, "--dry-run outside run: 64", output(r))
        r = run("--version")
        tap.ok(r.returncode == 0 and re.match(r"imapsync-task \d", r.stdout), "--version", output(r))
        r = run("--help")
        tap.ok(r.returncode == 0 and "check [--connect]" in r.stdout and "78" in r.stdout,
               "--help lists the commands and exit codes", output(r))

        r = run("--config-dir", etc, "check")
        tap.ok(r.returncode == 0 and "good: ok (inbox, 15min)" in r.stdout
               and "manual: ok (inbox, manual)" in r.stdout, "check validates every task", output(r))
        r = run("check", env={"IMAPSYNC_TASK_CONFIG_DIR": etc})
        tap.ok(r.returncode == 0 and "good: ok" in r.stdout,
               "IMAPSYNC_TASK_CONFIG_DIR selects the config dir", output(r))

        # A broken task: several errors, all reported with FILE:LINE: key: reason.
        bad = os.path.join(etc, "tasks", "bad.ini")
        write(bad, "[task]\nlocal_user = bob\nfolders = everything\ninterval = 15min\n"
                   "colour = blue\n[remote]\nhost = h\nport = 99999\nuser = u\n"
                   "password = hunter2\n")
        write(os.path.join(etc, "tasks", "bad.pwd"), "p\n", 0o600)
        r = run("--config-dir", etc, "check", "bad")
        tap.ok(r.returncode == 78, "broken task: exit 78", output(r))
        tap.ok(f"{bad}:3: folders:" in r.stderr, "bad enum value named with file:line:key", r.stderr)
        tap.ok(f"{bad}:5: colour:" in r.stderr, "unknown key named with its line", r.stderr)
        tap.ok(f"{bad}:8: port:" in r.stderr, "out-of-range port named with its line", r.stderr)
        tap.ok(f"{bad}:10: password:" in r.stderr and "hunter2" not in output(r),
               "a password in the INI is refused without echoing it", r.stderr)
        r = run("--config-dir", etc, "check")
        tap.ok(r.returncode == 78 and "good: ok" in r.stdout,
               "check of all tasks reports the bad one and still checks the others", output(r))
        os.unlink(bad)

        # A too-open password file.
        pw = os.path.join(etc, "tasks", "good.pwd")
        os.chmod(pw, 0o644)
        r = run("--config-dir", etc, "check", "good")
        tap.ok(r.returncode == 78 and pw in r.stderr and "600" in r.stderr,
               "a group/world-readable password file is refused, naming the file", output(r))
        os.chmod(pw, 0o600)

        r = run("--config-dir", etc, "--state-dir", state, "run", "../etc")
        tap.ok(r.returncode == 78 and "invalid task name" in r.stderr,
               "a task name with / or .. is refused", output(r))
        r = run("--config-dir", etc, "--state-dir", state, "status", "nosuch")
        tap.ok(r.returncode == 78, "status of an unknown task: 78", output(r))
        r = run("--config-dir", etc, "--state-dir", state, "list")
        tap.ok(r.returncode == 0 and re.search(r"^good\s+inbox\s+15min\s+never", r.stdout, re.M)
               and re.search(r"^manual\s+inbox\s+manual\s+never", r.stdout, re.M),
               "list shows every task, never run yet", output(r))
        r = run("--config-dir", etc, "--state-dir", state, "status", "good")
        tap.ok(r.returncode == 0 and "(none)" in r.stdout, "status of a task never run", output(r))

        # A manual run whose remote cannot be reached: 69, recorded in the state.
        write(os.path.join(etc, "tasks", "good.ini"),
              "[task]\nlocal_user = john\nfolders = inbox\ninterval = 15min\n"
              "[remote]\nhost = 127.0.0.1\nport = 1\nsecurity = none\nuser = john\n")
        r = run("--config-dir", etc, "--state-dir", state, "--timeout", "3", "run", "good")
        tap.ok(r.returncode == 69 and "127.0.0.1:1" in r.stderr, "unreachable remote: 69", output(r))
        tap.ok("remote-secret" not in output(r) and "master-secret" not in output(r),
               "no password in the output")
        tap.ok(re.search(r"summary: task=good copied=0 .* verdict=unavailable exit=69", r.stderr),
               "the summary line ends every run, with its verdict", r.stderr)
        r = run("--config-dir", etc, "--state-dir", state, "list")
        tap.ok(re.search(r"^good\s+inbox\s+15min\s+\S+ \S+\s+unavailable", r.stdout, re.M),
               "list shows the last result", output(r))

        # State that cannot be replayed: refuse to guess (65), say how to rebuild.
        with open(os.path.join(state, "good", "journal"), "w") as f:
            f.write("imapsync-task-journal 99\n")
        r = run("--config-dir", etc, "--state-dir", state, "--timeout", "3", "run", "good")
        tap.ok(r.returncode == 65 and "incompatible" in r.stderr and "rebuild" in r.stderr,
               "an unknown journal version: exit 65, with how to rebuild", output(r))
        os.unlink(os.path.join(state, "good", "journal"))
        # A state directory that cannot be created: 74.
        blocker = os.path.join(base, "notadir")
        write(blocker, "x")
        r = run("--config-dir", etc, "--state-dir", blocker, "--timeout", "3", "run", "good")
        tap.ok(r.returncode == 74 and "state directory" in r.stderr,
               "a state directory that cannot be created: exit 74", output(r))

        # $STATE_DIRECTORY as systemd sets it (StateDirectory=imapsync-task/good).
        sd = os.path.join(base, "sd", "good")
        os.makedirs(sd)
        r = run("--config-dir", etc, "--timeout", "3", "run", "good", env={"STATE_DIRECTORY": sd})
        tap.ok(os.path.exists(os.path.join(sd, "runs")) and
               not os.path.exists(os.path.join(sd, "good")),
               "$STATE_DIRECTORY ending in the task name is the task's own directory")

        # Credentials: a missing password file is fine when systemd's
        # LoadCredential= provided the credential.
        os.unlink(pw)
        r = run("--config-dir", etc, "check", "good")
        tap.ok(r.returncode == 78, "missing password file: 78", output(r))
        cred = os.path.join(base, "creds")
        write(os.path.join(cred, "task.good.password"), "remote-secret\n", 0o600)
        write(os.path.join(cred, "master.password"), "master-secret\n", 0o600)
        r = run("--config-dir", etc, "check", "good", env={"CREDENTIALS_DIRECTORY": cred})
        tap.ok(r.returncode == 0, "the credential in $CREDENTIALS_DIRECTORY stands in for it",
               output(r))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
