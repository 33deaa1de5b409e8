#!/usr/bin/python3
"""Issue 12, what an admin meets first: tasks in bulk from NethServer's
CSV (import-csv), errors that say what to change, and the INI edge cases.

- import-csv against a real Dovecot pair: --check writes nothing; the
  import writes 0600 password files that log in (passwords with commas,
  quotes, UTF-8), a run copies mail; a repeated import is refused naming
  FILE:LINE; --update replaces a password; standard input.
- hints: security = starttls or none on the imaps port (real Dovecot: the
  server says nothing) and a server answering with a TLS alert (fake)
  name "security = tls?" within seconds; security = tls on the plain port
  names "security = starttls?"; a silent or slow plain-text server gets
  no false hint; a master login refused with AUTHORIZATIONFAILED says
  the local user may not exist; a certificate for another name is named
  with its subject and SANs; check --connect prints "ok" only after the
  logins and failures on stderr.
- INI: user = alice#1 refused with FILE:LINE, a BOM and STARTTLS in
  capitals accepted, through the command line."""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, read_mailbox, seed  # noqa: E402
from worker import BIN, Tap, output  # noqa: E402
from fakeimap import FakeServer  # noqa: E402

tap = Tap()
HEADER = "localusername,remoteusername,remotepassword,remotehostname,remoteport,security"
# Dovecot's passwd-file cannot hold ':'; everything else a CSV may.
PW_ALICE = 'p,w"d \'äö€ x'
PW_BOB = "B0b;#;pw"


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.chmod(path, mode)


def csv_field(value):
    return '"' + value.replace('"', '""') + '"'


class Config:
    """A configuration directory for the pair's local side, no tasks."""

    def __init__(self, pair, base):
        self.pair = pair
        self.dir = os.path.join(base, "etc")
        self.state = os.path.join(base, "state")
        l = pair.local
        write(os.path.join(self.dir, "imapsync-task.conf"),
              "[local]\n"
              f"host = {l.host}\nport = {l.imap_port}\nsecurity = starttls\n"
              "master_user = vmail\nmaster_separator = *\n"
              f"master_password_file = {self.dir}/master.pwd\n"
              f"ca_file = {pair.ca_file}\n")
        write(os.path.join(self.dir, "master.pwd"), pair.master_password + "\n", 0o600)
        os.makedirs(os.path.join(self.dir, "tasks"), exist_ok=True)

    def task(self, name, text, password="x"):
        write(os.path.join(self.dir, "tasks", name + ".ini"), text)
        write(os.path.join(self.dir, "tasks", name + ".pwd"), password + "\n", 0o600)

    def cmd(self, *args, stdin=None, timeout=120, env=None):
        e = {k: v for k, v in os.environ.items()
             if k not in ("JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")}
        # The tasks import-csv makes have no ca_file: the test CA is the
        # system store for OpenSSL here.
        e["SSL_CERT_FILE"] = self.pair.ca_file
        if env:
            e.update(env)
        return subprocess.run([BIN, "--config-dir", self.dir, "--state-dir", self.state,
                               *args], input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=e)


def test_import(pair, base):
    r, l = pair.remote, pair.local
    r.add_user("alice", PW_ALICE)
    r.add_user("bob", PW_BOB)
    l.add_user("alice", "local-a")
    l.add_user("bob", "local-b")
    cfg = Config(pair, base)
    tasks = os.path.join(cfg.dir, "tasks")
    csv = os.path.join(base, "users.csv")
    # Columns in another order, CRLF, a blank line, NethServer's security
    # names: tls is STARTTLS, ssl is TLS at once.
    write(csv, "remotehostname,remoteport,security,localusername,remoteusername,"
               "remotepassword\r\n"
               f"{r.host},{r.imap_port},tls,alice,alice,{csv_field(PW_ALICE)}\r\n"
               "\r\n"
               f"{r.host},{r.imaps_port},ssl,bob,bob,{csv_field(PW_BOB)}\r\n", 0o600)

    res = cfg.cmd("import-csv", "--check", csv)
    tap.ok(res.returncode == 0 and "alice_alice: ok (line 2): would create" in res.stdout and
           "bob_bob: ok (line 4): would create" in res.stdout,
           "import-csv --check: every row valid, with its line", output(res))
    tap.ok(os.listdir(tasks) == [], "--check writes nothing", os.listdir(tasks))

    res = cfg.cmd("import-csv", csv)
    tap.ok(res.returncode == 0 and "2 tasks created" in res.stdout,
           "import-csv: two tasks created", output(res))
    tap.ok(sorted(os.listdir(tasks)) ==
           ["alice_alice.ini", "alice_alice.pwd", "bob_bob.ini", "bob_bob.pwd"],
           "one task file and one password file per row", os.listdir(tasks))
    st = os.stat(os.path.join(tasks, "alice_alice.pwd"))
    with open(os.path.join(tasks, "alice_alice.pwd"), encoding="utf-8") as f:
        pw = f.read()
    tap.ok(st.st_mode & 0o777 == 0o600 and pw == PW_ALICE + "\n",
           "the password file is 0600 and holds the password exactly", oct(st.st_mode))
    tap.ok(PW_ALICE not in output(res) and PW_BOB not in output(res),
           "no password in the output")
    with open(os.path.join(tasks, "bob_bob.ini")) as f:
        ini = f.read()
    tap.ok(f"port = {r.imaps_port}" in ini and "security = tls" in ini and
           "folders = \"all\"" in ini and "interval = \"manual\"" in ini,
           "ssl is security = tls; NethServer's defaults: all folders, manual", ini)

    res = cfg.cmd("check", "--connect", "alice_alice", "bob_bob")
    tap.ok(res.returncode == 0 and "alice_alice: ok (all, manual)" in res.stdout and
           "alice_alice: logged in to remote" in res.stdout and
           "bob_bob: logged in to remote" in res.stdout,
           "both tasks log in: passwords with commas, quotes and UTF-8 work", output(res))

    # (imaplib logs in with ASCII passwords only: bob's is.)
    seed(r, "bob", "INBOX", [make_message(1, subject="from the csv")])
    res = cfg.cmd("run", "bob_bob")
    got = read_mailbox(l, "bob", "INBOX", master=True)
    tap.ok(res.returncode == 0 and len(got) == 1,
           "a run of an imported task (TLS at once) copies the mail", output(res))

    res = cfg.cmd("import-csv", csv)
    tap.ok(res.returncode == 78 and
           f"{csv}:2: remote account alice on {r.host} is already imported into local user "
           "alice by task alice_alice" in res.stderr and f"{csv}:4: " in res.stderr and
           "nothing was written" in res.stderr,
           "importing the same rows again: 78, each refused with FILE:LINE and why",
           output(res))

    # The remote password changes: the task fails until --update.
    new_pw = 'n€w "pass", too'
    r.add_user("alice", new_pw)
    res = cfg.cmd("check", "--connect", "alice_alice")
    tap.ok(res.returncode == 77 and "alice_alice: ok" not in res.stdout and
           "alice_alice: not ok" in res.stderr,
           "a refused login: check --connect exits 77, no \"ok\", the failure on stderr",
           output(res))
    upd = f"{HEADER}\nalice,alice,{csv_field(new_pw)},{r.host},{r.imap_port},tls\n"
    res = cfg.cmd("import-csv", "--update", "-", stdin=upd)
    tap.ok(res.returncode == 0 and "alice_alice: updated (line 2): password" in res.stdout,
           "import-csv --update - (standard input) replaces the password", output(res))
    res = cfg.cmd("check", "--connect", "alice_alice")
    tap.ok(res.returncode == 0 and "logged in" in res.stdout,
           "and the task logs in again", output(res))

    # A bad row stops the whole file.
    bad = (f"{HEADER}\ncarol,carol,pw,{r.host},{r.imap_port},tls\n"
           f"dave,dave,pw,{r.host},imap,tls\n")
    res = cfg.cmd("import-csv", "-", stdin=bad)
    tap.ok(res.returncode == 78 and
           "(standard input):3: remoteport: not a port number: \"imap\"" in res.stderr and
           not os.path.exists(os.path.join(tasks, "carol_carol.ini")),
           "a bad row: 78 naming FILE:LINE: column, and the good row is not written either",
           output(res))
    res = cfg.cmd("import-csv", "--check", "--update")
    tap.ok(res.returncode == 64, "import-csv without a file: 64", output(res))
    res = cfg.cmd("list", "--update")
    tap.ok(res.returncode == 64, "--update outside import-csv: 64", output(res))
    return cfg


def plain_server(greeting, delay=0.0):
    """A fake server (tests/lib/fakeimap.py) that waits delay seconds, then
    sends greeting (None: nothing, and it hangs up after the client's first
    bytes) and answers commands minimally as a plain IMAP server."""
    caps = b"IMAP4rev1 AUTH=PLAIN SASL-IR"

    def on_connect(conn):
        conn.settimeout(30)
        time.sleep(delay)
        if greeting is None:
            conn.recv(65536)
            return "close"
        conn.sendall(greeting)
        return None

    def handler(tag, cmd, line, conn):
        if cmd == b"CAPABILITY":
            return b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n"
        if cmd == b"LOGOUT":
            conn.sendall(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
            return "close"
        return tag + b" OK done\r\n"

    return FakeServer(greeting, handler, on_connect=on_connect)


def remote_task(cfg, name, port, security, host="127.0.0.1", local_user="alice",
                password=None, extra=""):
    cfg.task(name, "[task]\n"
             f"local_user = {local_user}\nfolders = inbox\ninterval = manual\n"
             "[remote]\n"
             f"host = {host}\nport = {port}\nsecurity = {security}\nuser = alice\n"
             f"ca_file = {cfg.pair.ca_file}\n{extra}",
             password or cfg.pair.remote.password("alice"))


def timed(cfg, *args, timeout_s="20"):
    t0 = time.monotonic()
    res = cfg.cmd("--timeout", timeout_s, *args)
    return res, time.monotonic() - t0


def test_hints(pair, cfg):
    r = pair.remote

    # STARTTLS (and none) on the port that speaks TLS at once: Dovecot
    # waits for a ClientHello and says nothing.
    for sec in ("starttls", "none"):
        remote_task(cfg, "imaps_" + sec, r.imaps_port, sec)
        res, took = timed(cfg, "check", "--connect", "imaps_" + sec)
        tap.ok(res.returncode == 76 and
               "this port speaks TLS at once: security = tls?" in res.stderr,
               f"security = {sec} on the imaps port: 76, \"security = tls?\"", output(res))
        tap.ok(took < 10, f"said within seconds ({took:.1f} s), not after the 20 s timeout")
        tap.ok(f"imaps_{sec}: ok" not in res.stdout and f"imaps_{sec}: not ok" in res.stderr,
               "no \"ok\"; the failure on stderr", output(res))

    # A server that answers with a TLS alert at once (what a TLS server
    # says to plain text).
    fake = plain_server(b"\x15\x03\x01\x00\x02\x02\x46")
    try:
        remote_task(cfg, "alert", fake.port, "starttls")
        res, took = timed(cfg, "check", "--connect", "alert")
    finally:
        fake.stop()
    tap.ok(res.returncode == 76 and "answered with a TLS record (\\x15\\x03\\x01" in res.stderr
           and "security = tls?" in res.stderr and took < 10,
           "a TLS alert instead of a greeting: 76, the bytes shown, \"security = tls?\"",
           output(res))

    # security = tls on the plain port: "* OK" where a ServerHello was due.
    remote_task(cfg, "plain_tls", r.imap_port, "tls")
    res, took = timed(cfg, "check", "--connect", "plain_tls")
    tap.ok(res.returncode == 76 and "the server sent plain text (\"* OK " in res.stderr and
           "this port speaks plain text: security = starttls?" in res.stderr and took < 10,
           "security = tls on the plain port: 76, \"security = starttls?\"", output(res))

    # No false hint: a silent plain-text server, a slow one.
    fake = plain_server(None)
    try:
        remote_task(cfg, "silent", fake.port, "none")
        res, took = timed(cfg, "check", "--connect", "silent", timeout_s="4")
    finally:
        fake.stop()
    tap.ok(res.returncode == 69 and "no greeting" in res.stderr and
           "security = tls?" not in res.stderr and took < 12,
           f"a silent server: still 69, no hint ({took:.1f} s)", output(res))
    fake = plain_server(b"* OK slow but fine\r\n", delay=3.5)
    try:
        remote_task(cfg, "slow", fake.port, "none")
        res, took = timed(cfg, "check", "--connect", "slow")
    finally:
        fake.stop()
    tap.ok(res.returncode == 0 and "slow: logged in" in res.stdout and took < 10,
           f"a greeting after 3.5 s: logged in, no hint, no extra wait ({took:.1f} s)",
           output(res))

    # The master user may not become a local user that does not exist.
    remote_task(cfg, "nolocal", r.imap_port, "starttls", local_user="nosuchuser")
    res = cfg.cmd("check", "--connect", "nolocal")
    tap.ok(res.returncode == 77 and "AUTHORIZATIONFAILED" in res.stderr and
           "the local user nosuchuser may not exist (check local_user)" in res.stderr,
           "a local login refused with AUTHORIZATIONFAILED: the user may not exist",
           output(res))
    tap.ok("nolocal: not ok" in res.stderr and "nolocal: ok" not in res.stdout,
           "and check --connect says \"not ok\" on stderr", output(res))

    # A wrong remote password: 77, and never "ok".
    remote_task(cfg, "wrongpw", r.imap_port, "starttls", password="wrong-password")
    res = cfg.cmd("check", "--connect", "wrongpw", "imaps_none")
    tap.ok(res.returncode == 77 and res.stdout.strip() == "" and
           "wrongpw: not ok: connecting or logging in failed (exit 77, auth-failed)"
           in res.stderr and "imaps_none: not ok" in res.stderr,
           "check --connect of two failing tasks: no \"ok\" at all; the first failure's "
           "status", output(res))


def test_wrong_cert(base):
    with DovecotPair(name="hintcert", remote_cert="wrong") as pair:
        pair.remote.add_user("alice", "alice-remote")
        pair.local.add_user("alice", "alice-local")
        cfg = Config(pair, base)
        for sec, port in (("starttls", pair.remote.imap_port), ("tls", pair.remote.imaps_port)):
            remote_task(cfg, "cert_" + sec, port, sec)
            res = cfg.cmd("check", "--connect", "cert_" + sec)
            tap.ok(res.returncode == 76 and "expected name 127.0.0.1" in res.stderr and
                   "certificate subject /CN=wrong.example" in res.stderr and
                   "valid for DNS:wrong.example" in res.stderr and
                   "(no certificate)" not in res.stderr,
                   f"{sec}: a certificate for another name is named: subject and SANs",
                   output(res))
            tap.ok("set host to a name the certificate is valid for" in res.stderr,
                   f"{sec}: and what to change", output(res))


def test_ini(pair, cfg):
    r = pair.remote
    remote_task(cfg, "hash", r.imap_port, "starttls")
    path = os.path.join(cfg.dir, "tasks", "hash.ini")
    with open(path) as f:
        text = f.read().replace("user = alice\n", "user = alice#1\n")
    write(path, text)
    res = cfg.cmd("check", "hash")
    line = text.splitlines().index("user = alice#1") + 1
    tap.ok(res.returncode == 78 and
           f"{path}:{line}: user: '#' inside an unquoted value would start a comment" in
           res.stderr, "user = alice#1 is refused with FILE:LINE, not cut to alice",
           output(res))
    write(path, text.replace("user = alice#1\n", "user = \"alice#1\"  # quoted\n"))
    res = cfg.cmd("check", "hash")
    tap.ok(res.returncode == 0, "quoted, it is accepted", output(res))

    remote_task(cfg, "upper", r.imap_port, "STARTTLS")
    path = os.path.join(cfg.dir, "tasks", "upper.ini")
    with open(path) as f:
        text = f.read()
    write(path, "\ufeff" + text.replace("\n", "\r\n").replace("folders = inbox",
                                                              "folders = INBOX"))
    res = cfg.cmd("check", "--connect", "upper")
    tap.ok(res.returncode == 0 and "upper: ok (inbox, manual)" in res.stdout and
           "logged in" in res.stdout,
           "a BOM, CRLF, security = STARTTLS and folders = INBOX: valid, and it logs in",
           output(res))
    remote_task(cfg, "badsec", r.imap_port, "SSL")
    res = cfg.cmd("check", "badsec")
    tap.ok(res.returncode == 78 and
           'security: invalid value "SSL" (valid: starttls, tls, none)' in res.stderr,
           "an unknown security value names the valid ones", output(res))


def main():
    base = tempfile.mkdtemp(prefix="t_import_hints-")
    try:
        with DovecotPair(name="hints") as pair:
            cfg = test_import(pair, os.path.join(base, "import"))
            test_hints(pair, cfg)
            test_ini(pair, cfg)
        test_wrong_cert(os.path.join(base, "cert"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    tap.done()


if __name__ == "__main__":
    main()
