#!/usr/bin/python3
"""The IMAP client core against the real Dovecot pair: plain, STARTTLS and
IMAPS with verification on, the master-user login, a certificate for the
wrong name refused before any credential, a pipelined FETCH of 1,000
messages, the typed commands (STORE, EXPUNGE, SEARCH, CREATE, SUBSCRIBE)
on them, and a 50 MB message streamed with a small peak RSS."""

import hashlib
import os
import re
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, imap, make_message, read_mailbox, seed  # noqa: E402
from worker import BIN, TOP_BUILDDIR, Tap, TaskEnv, output  # noqa: E402

tap = Tap()
PROBE = os.path.join(TOP_BUILDDIR, "tests", "integration", "imap_probe")


def side(prefix, server, user, security="starttls", ca=None, verify="yes", master=None,
         password_file=None):
    port = server.imaps_port if security == "tls" else server.imap_port
    return {f"{prefix}_HOST": server.host, f"{prefix}_PORT": str(port),
            f"{prefix}_SECURITY": security, f"{prefix}_CA": ca or "",
            f"{prefix}_VERIFY": verify, f"{prefix}_USER": user,
            f"{prefix}_PASSFILE": password_file, f"{prefix}_MASTER": master or ""}


def probe(env, *args):
    e = dict(os.environ)
    e.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([PROBE, *args], env=e, capture_output=True, text=True, timeout=300)


def secret_file(pair, name, value):
    path = os.path.join(pair.dir, f"probe-{name}.pw")
    with open(path, "w") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return path


def test_logins(pair):
    pair.remote.add_user("alice", "alice-remote")
    pair.local.add_user("alice", "alice-local")
    rpw = secret_file(pair, "alice", "alice-remote")
    mpw = secret_file(pair, "master", pair.master_password)
    for sec in ("none", "starttls", "tls"):
        r = probe(side("SRC", pair.remote, "alice", sec, pair.ca_file, password_file=rpw), "login")
        tap.ok(r.returncode == 0 and "logged in" in r.stdout,
               f"remote login over {sec} with verification on", output(r))
    for sec in ("starttls", "tls"):
        r = probe(side("SRC", pair.local, "alice", sec, pair.ca_file, master="vmail",
                       password_file=mpw), "login")
        tap.ok(r.returncode == 0, f"local master-user login alice*vmail over {sec}", output(r))
    bad = secret_file(pair, "bad", "not-the-master")
    r = probe(side("SRC", pair.local, "alice", "starttls", pair.ca_file, master="vmail",
                   password_file=bad), "login")
    tap.ok(r.returncode == 77 and "AUTHENTICATIONFAILED" in output(r),
           "wrong master password: 77, AUTHENTICATIONFAILED", output(r))
    tap.ok("not-the-master" not in output(r), "the password is not echoed")
    # The system store does not know the throwaway CA: verification fails closed.
    r = probe(side("SRC", pair.remote, "alice", "tls", None, password_file=rpw), "login")
    tap.ok(r.returncode == 76 and "certificate" in output(r),
           "unknown CA refused with exit 76", output(r))


def test_list(pair):
    mpw = secret_file(pair, "master", pair.master_password)
    r = probe(side("SRC", pair.local, "alice", "starttls", pair.ca_file, master="vmail",
                   password_file=mpw), "list")
    tap.ok(r.returncode == 0 and 'namespace "" "/"' in r.stdout,
           "local NAMESPACE: personal prefix \"\" with \"/\"", output(r))
    tap.ok(re.search(r'^mailbox "Sent" "/" \\Sent', r.stdout, re.M) and
           re.search(r'^mailbox "Junk" "/" \\Junk', r.stdout, re.M) and
           re.search(r'^mailbox "INBOX" "/"', r.stdout, re.M),
           "LIST returns special-use attributes (RETURN (SPECIAL-USE))", output(r))
    with DovecotPair(name="courier", layout="courier") as cp:
        cp.remote.add_user("cy", "cy-pw")
        seed(cp.remote, "cy", cp.remote.mailbox_name("Archive/2024"), [make_message(1)])
        seed(cp.remote, "cy", cp.remote.mailbox_name("Entwürfe"), [make_message(2)])
        pw = secret_file(cp, "cy", "cy-pw")
        r = probe(side("SRC", cp.remote, "cy", "starttls", cp.ca_file, password_file=pw), "list")
        tap.ok(r.returncode == 0 and 'namespace "INBOX." "."' in r.stdout,
               "Courier-style remote: NAMESPACE prefix INBOX. with '.'", output(r))
        tap.ok('mailbox "INBOX.Archive.2024" "."' in r.stdout and
               'mailbox "INBOX.Entw&APw-rfe" "."' in r.stdout,
               "LIST names as sent: '.' hierarchy, modified UTF-7", output(r))


def test_wrong_name():
    with DovecotPair(name="wrongcert", remote_cert="wrong") as pair:
        pair.remote.add_user("alice", "alice-remote")
        rpw = secret_file(pair, "alice", "alice-remote")
        for sec in ("starttls", "tls"):
            r = probe(side("SRC", pair.remote, "alice", sec, pair.ca_file, password_file=rpw),
                      "login")
            tap.ok(r.returncode == 76, f"{sec}: certificate for another name refused (76)",
                   output(r))
            tap.ok("expected name 127.0.0.1" in output(r) and "wrong.example" in output(r) or
                   "subject" in output(r),
                   f"{sec}: the error names the expected name and the certificate", output(r))
        with open(pair.remote.log_path, errors="replace") as f:
            log = f.read()
        tap.ok("user=<alice>" not in log and "auth" in log.lower(),
               "the server saw no login attempt for alice (no credential was sent)",
               log[-2000:])
        r = probe(side("SRC", pair.remote, "alice", "tls", pair.ca_file, verify="no",
                       password_file=rpw), "login")
        tap.ok(r.returncode == 0 and "verification is turned off" in output(r),
               "tls_verify = no connects, with a warning", output(r))


def test_pipelined_fetch(pair):
    pair.remote.add_user("pipe", "pipe-pw")
    rpw = secret_file(pair, "pipe", "pipe-pw")
    seed(pair.remote, "pipe", "INBOX", [make_message(10000 + i) for i in range(1000)])
    r = probe(side("SRC", pair.remote, "pipe", "starttls", pair.ca_file, password_file=rpw),
              "fetch", "10")
    tap.ok(r.returncode == 0 and "fetched 1000 messages in 10 pipelined commands" in r.stdout,
           "a pipelined FETCH of 1,000 messages returns all of them", output(r))
    tap.diag(r.stdout.strip())


def test_typed_commands(pair):
    """The typed commands on pipe's 1,000 messages (after the FETCH test):
    UID STORE over more UIDs than one command takes, given unsorted;
    UID EXPUNGE of exactly the \\Deleted ones; SEARCH by keys and by date;
    CREATE and SUBSCRIBE."""
    rpw = secret_file(pair, "pipe", "pipe-pw")
    r = probe(side("SRC", pair.remote, "pipe", "starttls", pair.ca_file, password_file=rpw),
              "ops")
    out = r.stdout
    tap.ok(r.returncode == 0 and "store +seen 1000: seen 1000 unseen 0" in out,
           "UID STORE +FLAGS on 1,000 unsorted UIDs (two commands) flags them all", output(r))
    tap.ok("store +deleted 3: deleted 3" in out and "uid expunge 4: left 997" in out,
           "UID EXPUNGE of 4 UIDs removes only the 3 flagged \\Deleted", output(r))
    tap.ok("store -seen 1000: unseen 997" in out,
           "UID STORE -FLAGS clears them again (3 of the UIDs are gone: no error)", output(r))
    tap.ok("before tomorrow 997, before 2-Jan-1970 0" in out,
           "SEARCH BEFORE a date: UTC day, both sides of now", output(r))
    tap.ok("created 1, subscribed 1" in out, "CREATE and SUBSCRIBE a mailbox", output(r))


def big_message(size):
    head = (b"From: Big <big@example.org>\r\nTo: alice@example.test\r\n"
            b"Subject: fifty megabytes\r\nMessage-ID: <big-50mb@example.org>\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+!?\r\n"
    body = line * ((size - len(head)) // len(line))
    return head + body + b"x" * (size - len(head) - len(body))


def rss_limit_kib():
    """16 MiB, or 32 MiB for a sanitizer build (ASan's shadow memory and
    quarantine cost more than the program itself): either way far below
    the 50 MiB message."""
    with open(BIN, "rb") as f:
        data = f.read()
    asan = b"__asan_init" in data or b"AddressSanitizer" in data
    return (32 if asan else 16) * 1024


def test_stream_50mb(pair):
    pair.remote.add_user("big", "big-pw")
    pair.local.add_user("big", "big-local")
    rpw = secret_file(pair, "big", "big-pw")
    mpw = secret_file(pair, "master", pair.master_password)
    msg = big_message(50 * 1024 * 1024)
    conn = imap(pair.remote, "big")
    conn.append("INBOX", None, None, msg)
    conn.logout()
    env = side("SRC", pair.remote, "big", "starttls", pair.ca_file, password_file=rpw)
    env.update(side("DST", pair.local, "big", "starttls", pair.ca_file, master="vmail",
                    password_file=mpw))
    r = probe(env, "stream", "1")
    m = re.search(r"peak rss (\d+) KiB", r.stdout)
    tap.ok(r.returncode == 0 and m, "50 MB message streamed from one server to the other",
           output(r))
    rss = int(m.group(1)) if m else 10**9
    tap.diag(f"imap_probe stream: peak RSS {rss} KiB for a {len(msg)} byte message")
    tap.ok(rss < rss_limit_kib(),
           f"probe peak RSS {rss} KiB is far below the 51200 KiB message (limit {rss_limit_kib()})")
    local = read_mailbox(pair.local, "big", "INBOX", master=True)
    tap.ok(len(local) == 1 and hashlib.sha256(local[0]["bytes"]).digest()
           == hashlib.sha256(msg).digest(), "the streamed copy is byte-identical")

    # The worker itself: an INBOX task copying the same 50 MB message.
    pair.remote.add_user("big2", "big2-pw")
    pair.local.add_user("big2", "big2-local")
    conn = imap(pair.remote, "big2")
    conn.append("INBOX", None, None, msg)
    conn.logout()
    te = TaskEnv(pair, "big2")
    wrap = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "sys.stdout.write(r.stdout + r.stderr)\n"
            "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            "sys.exit(r.returncode)\n")
    r = subprocess.run([sys.executable, "-c", wrap, *te.argv("run", "big2")],
                       capture_output=True, text=True, timeout=300)
    m = re.search(r"maxrss (\d+)", r.stdout)
    wrss = int(m.group(1)) if m else 10**9
    tap.diag(f"imapsync-task run: peak RSS {wrss} KiB for a 50 MiB message")
    tap.ok(r.returncode == 0 and wrss < rss_limit_kib(),
           f"worker copies it with peak RSS {wrss} KiB (limit {rss_limit_kib()} KiB)", output(r))
    local = read_mailbox(pair.local, "big2", "INBOX", master=True)
    tap.ok(len(local) == 1 and local[0]["bytes"] == msg, "the worker's copy is byte-identical")


def main():
    with DovecotPair(name="core") as pair:
        for t in (test_logins, test_list, test_pipelined_fetch, test_typed_commands,
                  test_stream_50mb):
            try:
                t(pair)
            except Exception as e:
                import traceback
                tap.ok(False, f"{t.__name__} raised {e!r}", traceback.format_exc())
    try:
        test_wrong_name()
    except Exception as e:
        import traceback
        tap.ok(False, f"test_wrong_name raised {e!r}", traceback.format_exc())
    tap.done()


if __name__ == "__main__":
    main()
