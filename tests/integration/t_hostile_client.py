#!/usr/bin/python3
"""A hostile peer against the client's own bounds (issue 8, cases 10-14):
a scripted fake IMAP server on 127.0.0.1 as the remote (and, where the
case needs it, as the local side), a real local Dovecot for delivery.

  10  duplicate UIDs in a SEARCH answer are delivered once
  11  a dripping greeting, login or command answer is bounded overall;
      a SEARCH/ESEARCH answer larger than the mailbox is a protocol error
  12  a server echoing the credentials (LOGIN literal, SASL PLAIN base64,
      master-user form) never gets them into the output
  13  a reset or close during the STARTTLS handshake is a lost connection
  14  run refuses an unsupported folders mode before connecting
"""

import base64
import os
import random
import re
import socket
import string
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, read_mailbox  # noqa: E402
from worker import Tap, TaskEnv, output  # noqa: E402
from fakeimap import CAPS, FakeServer, basic, message, parse_set  # noqa: E402

tap = Tap()
DATE = b'"01-Jan-2024 00:00:00 +0000"'


def mailbox(exists, uidnext, search_unseen, uids=None, caps=CAPS, big=None):
    """A remote INBOX: SELECT announces exists/uidnext, UID SEARCH UNSEEN
    answers search_unseen (bytes after "* "), everything else is empty;
    UID FETCH serves message(uid) (or big[uid]) for every uid in uids."""
    uids = set(uids if uids is not None else range(1, exists + 1))
    big = big or {}

    def handler(tag, cmd, line, conn):
        if cmd == b"CAPABILITY":
            return b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n"
        if cmd in (b"SELECT", b"EXAMINE"):
            return (b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT %d] n\r\n"
                    % (exists, uidnext) + tag + b" OK [READ-WRITE] selected\r\n")
        if cmd == b"UID SEARCH":
            if b"UNSEEN" in line:
                return search_unseen.replace(b"TAG", tag) + tag + b" OK done\r\n"
            return (b"* ESEARCH (TAG \"" + tag + b"\") UID\r\n" if b"RETURN" in line
                    else b"* SEARCH\r\n") + tag + b" OK done\r\n"
        if cmd == b"UID FETCH":
            for seq, uid in enumerate(u for u in parse_set(line.split(b" ")[3]) if u in uids):
                if uid in big:
                    big[uid](conn, seq + 1, uid)
                    continue
                body = message(uid)
                conn.sendall(b"* %d FETCH (UID %d FLAGS () INTERNALDATE %s RFC822.SIZE %d "
                             b"BODY[] {%d}\r\n" % (seq + 1, uid, DATE, len(body), len(body))
                             + body + b")\r\n")
            return tag + b" OK fetched\r\n"
        return basic(tag, cmd, line, conn)
    return handler


def greeting(caps=CAPS):
    return b"* OK [CAPABILITY " + caps + b"] hi\r\n"


def run_cmd(te, args, timeout):
    """te.cmd, but a hang past timeout is a result, not an exception."""
    t0 = time.monotonic()
    try:
        r = te.cmd(*args, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        r = subprocess.CompletedProcess(args, -1, stdout=(e.stdout or b"").decode(errors="replace"),
                                        stderr=(e.stderr or b"").decode(errors="replace")
                                        + f"\n(killed after {timeout} s)")
    return r, time.monotonic() - t0


def case(pair, name, fake, cmd="run", timeout_s=3, limit=60, local_user="hostile",
         local_port=None, remote_password="Hostile-Secret-9", master_password=None,
         verbose=False, folders="inbox"):
    te = TaskEnv(pair, "hostile", local_user=local_user, name=name, security="none",
                 remote_password=remote_password, master_password=master_password)
    te.write_task(local_user, "hostile", "none", fake.port)
    if folders != "inbox":
        path = os.path.join(te.config_dir, "tasks", f"{name}.ini")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("folders = inbox", f"folders = {folders}"))
    if local_port is not None:
        path = os.path.join(te.config_dir, "imapsync-task.conf")
        with open(path) as f:
            text = f.read()
        text = re.sub(r"(?m)^port = \d+$", f"port = {local_port}", text)
        text = re.sub(r"(?m)^security = \w+$", "security = none", text)
        with open(path, "w") as f:
            f.write(text)
    args = ["--timeout", str(timeout_s)] + (["-v", "-v"] if verbose else [])
    args += ["check", "--connect", name] if cmd == "check" else ["run", name]
    try:
        r, took = run_cmd(te, args, limit)
    finally:
        fake.stop()
    return r, took


def drip(data, every=0.5, total=40):
    """Send data one byte every `every` seconds, for at most `total` s."""
    def send(conn):
        end = time.monotonic() + total
        for i in range(len(data)):
            if time.monotonic() > end:
                return "close"
            try:
                conn.sendall(data[i:i + 1])
            except OSError:
                return "close"
            time.sleep(every)
        return None
    return send


def windows(secret, n=8):
    return {secret[i:i + n] for i in range(len(secret) - n + 1)}


def main():
    with DovecotPair(name="hostclient") as pair:
        for u in ("hostile", "dup", "grew", "slowbig"):
            pair.local.add_user(u, "local-pw")

        # --- 10: "* SEARCH 1 2 2 3" delivers three messages, once each.
        fake = FakeServer(greeting(), mailbox(3, 4, b"* SEARCH 1 2 2 3\r\n"))
        r, _ = case(pair, "dupsearch", fake, local_user="dup")
        got = read_mailbox(pair.local, "dup", "INBOX", master=True)
        subjects = sorted(re.search(rb"Subject: ([^\r]*)", m["bytes"]).group(1) for m in got)
        tap.ok(r.returncode == 0, "duplicate UIDs in SEARCH: the run succeeds", output(r))
        tap.ok(subjects == [b"message 1", b"message 2", b"message 3"],
               "duplicate UIDs in SEARCH: each message delivered exactly once", subjects)
        fetches = re.findall(rb"UID FETCH (\S+)", fake.received)
        tap.ok(all(len(parse_set(s)) == len(set(parse_set(s))) for s in fetches),
               "no UID asked for twice in a FETCH", fetches)

        # --- 11: overall bounds.
        # A greeting dripped at 2 bytes/s: each byte resets the silence
        # timeout, the setup deadline does not move.
        fake = FakeServer(None, basic, on_connect=drip(b"* OK " + b"x" * 200 + b"\r\n"))
        r, took = case(pair, "dripgreet", fake, cmd="check")
        tap.ok(r.returncode == 69 and "no greeting" in output(r),
               "greeting dripped byte by byte: exit 69", output(r))
        tap.ok(took < 15, f"  within the 3 s setup deadline plus start-up ({took:.1f} s)")

        # The login answer dripped: still the setup deadline.
        def drip_login(tag, cmd, line, conn):
            if cmd in (b"LOGIN", b"AUTHENTICATE"):
                drip(b"* OK " + b"y" * 200 + b"\r\n")(conn)
                return "close"
            return basic(tag, cmd, line, conn)
        fake = FakeServer(greeting(), drip_login)
        r, took = case(pair, "driplogin", fake, cmd="check")
        tap.ok(r.returncode == 75 and "within 3 s" in output(r),
               "login answer dripped: exit 75, setup deadline", output(r))
        tap.ok(took < 15, f"  within the setup deadline plus start-up ({took:.1f} s)")

        # A command answer dripped (untagged lines, never the tagged one):
        # bounded by the command's floor (4 x timeout), not hours.
        def drip_select(tag, cmd, line, conn):
            if cmd in (b"SELECT", b"EXAMINE"):
                drip(b"* OK [ALERT] still working on it\r\n" * 20, every=0.1)(conn)
                return "close"
            return basic(tag, cmd, line, conn)
        fake = FakeServer(greeting(), drip_select)
        r, took = case(pair, "dripcmd", fake)
        tap.ok(r.returncode == 75 and "too slow" in output(r),
               "SELECT answer dripped at 10 bytes/s: exit 75 (too slow)", output(r))
        tap.ok(took < 30, f"  after about 4 x the 3 s timeout ({took:.1f} s)")

        # A big body at ~30 KB/s runs past 4 x timeout (8 s) and still
        # completes: the bound is a throughput floor, not a cap.
        def slow_body(conn, seq, uid):
            body = message(uid) + b"z" * 300_000 + b"\r\n"
            conn.sendall(b"* %d FETCH (UID %d FLAGS () INTERNALDATE %s RFC822.SIZE %d "
                         b"BODY[] {%d}\r\n" % (seq, uid, DATE, len(body), len(body)))
            for i in range(0, len(body), 3000):
                conn.sendall(body[i:i + 3000])
                time.sleep(0.1)
            conn.sendall(b")\r\n")
        fake = FakeServer(greeting(), mailbox(1, 2, b"* SEARCH 1\r\n", big={1: slow_body}))
        r, took = case(pair, "slowbig", fake, timeout_s=2, local_user="slowbig")
        got = read_mailbox(pair.local, "slowbig", "INBOX", master=True)
        tap.ok(r.returncode == 0 and len(got) == 1 and len(got[0]["bytes"]) > 300_000,
               f"a 300 KB body at ~30 KB/s for {took:.0f} s (> 4 x 2 s) is delivered", output(r))

        # ESEARCH ALL 1:49999999 against a mailbox of 10 messages.
        es_caps = CAPS + b" ESEARCH"
        fake = FakeServer(greeting(es_caps),
                          mailbox(10, 11, b'* ESEARCH (TAG "TAG") UID ALL 1:49999999\r\n',
                                  caps=es_caps))
        r, took = case(pair, "esearchbig", fake)
        tap.ok(r.returncode == 76 and "ESEARCH" in output(r),
               "ESEARCH ALL 1:49999999 with 10 EXISTS: exit 76", output(r))
        tap.ok(took < 15, f"  within seconds ({took:.1f} s)")

        # SEARCH with more UIDs than EXISTS.
        fake = FakeServer(greeting(), mailbox(3, 4, b"* SEARCH 1 2 3 4 5\r\n"))
        r, _ = case(pair, "searchmany", fake)
        tap.ok(r.returncode == 76 and "5 UIDs but the mailbox has 3" in output(r),
               "SEARCH with 5 UIDs for 3 EXISTS: exit 76", output(r))

        # A UID at or past UIDNEXT with no new mail announced.
        fake = FakeServer(greeting(), mailbox(3, 4, b"* SEARCH 1 99\r\n"))
        r, _ = case(pair, "searchuidnext", fake)
        tap.ok(r.returncode == 76 and "UIDNEXT is 4" in output(r),
               "SEARCH with UID 99 >= UIDNEXT 4, no EXISTS since: exit 76", output(r))

        # New mail announced during the session (EXISTS went up): UIDs
        # past the old UIDNEXT are then fine.
        fake = FakeServer(greeting(), mailbox(3, 4, b"* 4 EXISTS\r\n* SEARCH 1 2 3 7\r\n",
                                              uids=[1, 2, 3, 7]))
        r, _ = case(pair, "searchgrew", fake, local_user="grew")
        got = read_mailbox(pair.local, "grew", "INBOX", master=True)
        tap.ok(r.returncode == 0 and len(got) == 4,
               "after * 4 EXISTS, UID 7 past the SELECT's UIDNEXT is accepted", output(r))

        # --- 12: echoed credentials are redacted, whole or cut.
        rnd = random.Random(8012)
        alphabet = string.ascii_letters + string.digits + "!#$%&'()*+,-./:;<=>?@^_`{|}~"
        pw = "".join(rnd.choice(alphabet) for _ in range(500))
        mpw = "".join(rnd.choice(alphabet) for _ in range(500))
        plain_b64 = base64.b64encode(b"\0hostile\0" + pw.encode()).decode()
        master_b64 = base64.b64encode(b"hostile\0vmail\0" + mpw.encode()).decode()

        def leaks(text, secrets):
            return sorted({w for s in secrets for w in windows(s) if w in text})[:5]

        def echo_sasl(ir):
            state = {}

            def handler(tag, cmd, line, conn):
                caps = CAPS + (b" SASL-IR" if ir else b"")
                if cmd == b"CAPABILITY":
                    return b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n"
                if "tag" in state:
                    return state.pop("tag") + b" NO [AUTHENTICATIONFAILED] you sent " + \
                        line + b" and that is wrong\r\n"
                if cmd == b"AUTHENTICATE":
                    words = line.split(b" ")
                    if len(words) > 3:
                        return tag + b" NO [AUTHENTICATIONFAILED] you sent " + words[3] + \
                            b" and that is wrong\r\n"
                    state["tag"] = tag
                    return b"+ \r\n"
                return basic(tag, cmd, line, conn)
            return handler

        for ir in (False, True):
            fake = FakeServer(greeting(CAPS + (b" SASL-IR" if ir else b"")), echo_sasl(ir))
            r, _ = case(pair, "echosasl" + ("ir" if ir else ""), fake, cmd="check",
                        remote_password=pw, verbose=True)
            sent = plain_b64.encode() in fake.received
            tap.ok(r.returncode == 77 and sent and "<redacted>" in output(r),
                   f"SASL PLAIN{' (SASL-IR)' if ir else ''} echoed in NO: exit 77, redacted",
                   output(r))
            bad = leaks(output(r), [pw, plain_b64])
            tap.ok(not bad, "  no 8 bytes of the password or its base64 in the output", bad)

        def echo_login(tag, cmd, line, conn, state={}):
            if cmd == b"CAPABILITY":
                return b"* CAPABILITY IMAP4rev1 LITERAL+\r\n" + tag + b" OK done\r\n"
            if cmd == b"LOGIN":
                state["tag"], state["n"] = tag, 0
                return None
            if "tag" in state:
                state["n"] += 1
                if state["n"] == 2:
                    return state.pop("tag") + b" NO [AUTHENTICATIONFAILED] bad password " + \
                        line + b" for you\r\n"
                return None
            return basic(tag, cmd, line, conn)
        fake = FakeServer(greeting(b"IMAP4rev1 LITERAL+"), echo_login)
        r, _ = case(pair, "echologin", fake, cmd="check", remote_password=pw, verbose=True)
        tap.ok(r.returncode == 77 and "<redacted>" in output(r),
               "LOGIN password literal echoed in NO: exit 77, redacted", output(r))
        bad = leaks(output(r), [pw])
        tap.ok(not bad, "  no 8 bytes of the password in the output", bad)

        # The local side (master user): authzid NUL user NUL password.
        local_fake = FakeServer(greeting(), echo_sasl(False))
        remote_fake = FakeServer(greeting(), basic)
        try:
            r, _ = case(pair, "echomaster", remote_fake, cmd="check", local_port=local_fake.port,
                        master_password=mpw, verbose=True)
        finally:
            local_fake.stop()
        sent = master_b64.encode() in local_fake.received
        tap.ok(r.returncode == 77 and sent and "<redacted>" in output(r),
               "master-user SASL PLAIN echoed in NO: exit 77, redacted", output(r))
        bad = leaks(output(r), [mpw, master_b64])
        tap.ok(not bad, "  no 8 bytes of the master password or its base64 in the output", bad)

        # --- 13: the connection dies during the STARTTLS handshake.
        for how in ("reset", "close"):
            def starttls_die(tag, cmd, line, conn, how=how):
                if cmd == b"STARTTLS":
                    conn.sendall(tag + b" OK begin TLS\r\n")
                    conn.recv(65536)          # the ClientHello: mid-handshake now
                    if how == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                    conn.close()
                    return "close"
                return basic(tag, cmd, line, conn)
            fake = FakeServer(greeting(CAPS + b" STARTTLS"), starttls_die)
            te = TaskEnv(pair, "hostile", name="tls" + how, security="starttls",
                         remote_password="Hostile-Secret-9")
            te.write_task("hostile", "hostile", "starttls", fake.port)
            try:
                r, _ = run_cmd(te, ["--timeout", "3", "check", "--connect", te.name], 60)
            finally:
                fake.stop()
            tap.ok(r.returncode == 75 and "lost during the TLS handshake" in output(r),
                   f"connection {how} during the STARTTLS handshake: exit 75, not 76", output(r))
            tap.ok(b"AUTHENTICATE" not in fake.received.upper(), "  no credential was sent")

        # --- 14: run refuses a mode it cannot run before any connection
        # (folders = all copies with APPEND: delivery = lmtp is refused).
        remote_fake = FakeServer(greeting(), basic)
        local_fake = FakeServer(greeting(), basic)
        try:
            r, _ = case(pair, "foldersall", remote_fake, folders="all\ndelivery = lmtp",
                        local_port=local_fake.port)
        finally:
            local_fake.stop()
        tap.ok(r.returncode == 78 and "delivery" in output(r),
               "run with folders = all and delivery = lmtp: exit 78", output(r))
        tap.ok(remote_fake.connections == 0 and local_fake.connections == 0,
               "  and neither server saw a connection",
               f"remote {remote_fake.connections}, local {local_fake.connections}: "
               f"{remote_fake.received!r}")
    tap.done()


if __name__ == "__main__":
    main()
