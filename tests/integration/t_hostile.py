#!/usr/bin/python3
"""A hostile remote: a scripted fake IMAP server on 127.0.0.1 plays the
peer faults of FAULTS.md (STARTTLS stripping, PREAUTH, injection after
STARTTLS, oversized and malformed responses, unknown tags, silence, BYE,
a literal cut short).  The local side is a real Dovecot.  Each case
checks the documented exit code, and that no credential left the client
when the policy says it must not."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, read_mailbox  # noqa: E402
from worker import Tap, TaskEnv, output  # noqa: E402
from fakeimap import CAPS, FakeServer, basic  # noqa: E402

tap = Tap()


def run_case(pair, name, greeting, handler, security="none", cmd="check", timeout=20):
    fake = FakeServer(greeting, handler)
    te = TaskEnv(pair, "hostile", name=name, remote_password="Hostile-Secret-9",
                 security=security)
    # Point the remote at the fake server.
    te.write_task("hostile", "hostile", security, fake.port)
    try:
        if cmd == "check":
            r = te.cmd("--timeout", "3", "check", "--connect", name, timeout=timeout)
        else:
            r = te.cmd("--timeout", "3", "run", name, timeout=timeout)
    finally:
        fake.stop()
    return r, fake


def creds_sent(fake):
    return b"LOGIN" in fake.received.upper() or b"AUTHENTICATE" in fake.received.upper()


def main():
    with DovecotPair(name="hostile") as pair:
        pair.local.add_user("hostile", "local-pw")

        # 5: STARTTLS required but not offered.
        r, fake = run_case(pair, "nostarttls", b"* OK [CAPABILITY " + CAPS + b"] hi\r\n",
                           basic, security="starttls")
        tap.ok(r.returncode == 76, "STARTTLS missing: exit 76", output(r))
        tap.ok("does not offer STARTTLS" in output(r), "and says so", output(r))
        tap.ok(not creds_sent(fake), "no credential was sent", fake.received)

        # 6: PREAUTH while TLS is required.
        r, fake = run_case(pair, "preauth", b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n",
                           basic, security="starttls")
        tap.ok(r.returncode == 76 and "PREAUTH" in output(r), "PREAUTH with starttls: exit 76",
               output(r))
        tap.ok(not creds_sent(fake), "no credential was sent", fake.received)

        # 7: plaintext pipelined after the STARTTLS OK.
        def inject(tag, cmd, line, conn):
            if cmd == b"STARTTLS":
                return tag + b" OK begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "inject", b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n",
                           inject, security="starttls")
        tap.ok(r.returncode == 76 and "plain-text data after STARTTLS" in output(r),
               "bytes injected after STARTTLS OK: exit 76", output(r))
        tap.ok(not creds_sent(fake), "no credential was sent", fake.received)

        # 13: a line past the limit without CRLF.
        r, fake = run_case(pair, "longline", b"* OK " + b"A" * (10 * 1024 * 1024), basic)
        tap.ok(r.returncode == 76, "10 MiB line without CRLF: exit 76", output(r))

        # 14: literal size overflow.
        def overflow(tag, cmd, line, conn):
            if cmd == b"CAPABILITY":
                return b"* CAPABILITY {18446744073709551616}\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "overflow", b"* OK hi\r\n", overflow)
        tap.ok(r.returncode == 76 and "malformed" in output(r),
               "literal {18446744073709551616}: exit 76", output(r))

        # 17: 100,000 nested parentheses.
        def nested(tag, cmd, line, conn):
            if cmd == b"CAPABILITY":
                return b"* CAPABILITY " + b"(" * 100000 + b"\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "nested", b"* OK hi\r\n", nested)
        tap.ok(r.returncode == 76, "100,000 nested '(': exit 76", output(r))

        # 18: unknown tag, and a continuation nobody asked for.
        def badtag(tag, cmd, line, conn):
            if cmd == b"CAPABILITY":
                return b"zz99 OK what\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "badtag", b"* OK hi\r\n", badtag)
        tap.ok(r.returncode == 76 and "unexpected tag" in output(r), "unknown tag: exit 76",
               output(r))

        def badcont(tag, cmd, line, conn):
            if cmd == b"CAPABILITY":
                return b"+ go ahead\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "badcont", b"* OK hi\r\n", badcont)
        tap.ok(r.returncode == 76 and "continuation" in output(r),
               "unexpected '+': exit 76", output(r))

        # 2: the greeting never comes.
        t0 = time.monotonic()
        r, fake = run_case(pair, "silent", None, basic)
        took = time.monotonic() - t0
        tap.ok(r.returncode == 69 and "no greeting" in output(r),
               "silent server: exit 69 (greeting deadline)", output(r))
        tap.ok(took < 15, f"within the 3 s deadline plus start-up ({took:.1f} s)")

        # 1: nothing listens.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        te = TaskEnv(pair, "hostile", name="refused", remote_password="x")
        te.write_task("hostile", "hostile", "none", port)
        r = te.cmd("--timeout", "3", "check", "--connect", "refused")
        tap.ok(r.returncode == 69 and f"127.0.0.1:{port}" in output(r),
               "connection refused: exit 69 naming host:port", output(r))

        # 9: the remote refuses the login.
        def refuse(tag, cmd, line, conn):
            if cmd in (b"LOGIN", b"AUTHENTICATE"):
                return tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "refuse", b"* OK [CAPABILITY " + CAPS + b"] hi\r\n", refuse)
        tap.ok(r.returncode == 77, "remote NO [AUTHENTICATIONFAILED]: exit 77", output(r))
        tap.ok(fake.received.upper().count(b"AUTHENTICATE") == 1, "no retry loop", fake.received)
        tap.ok("Hostile-Secret-9" not in output(r), "password not printed")

        # 11: without AUTH=PLAIN the password goes as a literal, never
        # hand-quoted; synchronizing literals wait for "+".
        for label, caps in (("literal+", b"IMAP4rev1 LITERAL+"), ("sync", b"IMAP4rev1")):
            state = {}

            def login_lit(tag, cmd, line, conn, state=state, caps=caps):
                if cmd == b"CAPABILITY":
                    return b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK done\r\n"
                if cmd == b"LOGIN":
                    state["tag"] = tag
                if "tag" in state and line.endswith(b"}"):
                    return None if line.endswith(b"+}") else b"+ go on\r\n"
                if "tag" in state:
                    t = state.pop("tag")
                    return t + b" OK [CAPABILITY " + caps + b"] logged in\r\n"
                return basic(tag, cmd, line, conn)
            secret = 'Q"uo\\te d'   # quote, backslash, space
            fake = FakeServer(b"* OK [CAPABILITY " + caps + b"] hi\r\n", login_lit)
            te = TaskEnv(pair, "hostile", name="lit" + label.replace("+", "p"),
                         remote_password=secret)
            te.write_task("hostile", "hostile", "none", fake.port)
            try:
                r = te.cmd("--timeout", "5", "check", "--connect", te.name)
            finally:
                fake.stop()
            plus = b"+" if label == "literal+" else b""
            want = b"LOGIN {7%s}\r\nhostile {%d%s}\r\n" % (plus, len(secret.encode()), plus)
            tap.ok(r.returncode == 0 and want in fake.received and
                   secret.encode() + b"\r\n" in fake.received,
                   f"LOGIN with {label} literals: user and password sent as literals",
                   output(r) + repr(fake.received[-200:]))
            tap.ok(secret not in output(r), f"{label}: password not printed")

        # 21: BYE in the middle of a session.
        def bye(tag, cmd, line, conn):
            if cmd in (b"SELECT", b"EXAMINE"):
                conn.sendall(b"* BYE server shutting down\r\n")
                return "close"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "bye", b"* OK [CAPABILITY " + CAPS + b"] hi\r\n", bye, cmd="run")
        tap.ok(r.returncode == 75 and "shutting down" in output(r),
               "BYE mid-session: exit 75 with the server's reason", output(r))

        # A BAD to a command we sent means we sent something wrong: our bug,
        # the internal-error class (70), not a retry loop.
        def bad(tag, cmd, line, conn):
            if cmd in (b"SELECT", b"EXAMINE"):
                return tag + b" BAD Error in IMAP command SELECT: Unknown argument\r\n"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "bad", b"* OK [CAPABILITY " + CAPS + b"] hi\r\n", bad, cmd="run")
        tap.ok(r.returncode == 70 and "internal-error" in output(r),
               "a BAD answer to our command: exit 70 (internal error)", output(r))

        # 16/22: a message literal cut short, then the connection drops.
        def truncated(tag, cmd, line, conn):
            if cmd == b"SELECT":
                return (b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n" +
                        tag + b" OK [READ-WRITE] selected\r\n")
            if cmd == b"UID SEARCH":
                return b"* SEARCH 1\r\n" + tag + b" OK done\r\n" if b"UNSEEN" in line else \
                    b"* SEARCH\r\n" + tag + b" OK done\r\n"
            if cmd == b"UID FETCH":
                conn.sendall(b'* 1 FETCH (UID 1 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" '
                             b'BODY[] {500000}\r\nSubject: cut\r\n\r\n' + b'x' * 100000)
                return "close"
            return basic(tag, cmd, line, conn)
        r, fake = run_case(pair, "truncated", b"* OK [CAPABILITY " + CAPS + b"] hi\r\n",
                           truncated, cmd="run")
        tap.ok(r.returncode == 75 and "literal" in output(r),
               "literal cut short: exit 75 (unexpected end of data)", output(r))
        tap.ok(read_mailbox(pair.local, "hostile", "INBOX", master=True) == [],
               "nothing was delivered from the partial message")
    tap.done()


if __name__ == "__main__":
    main()
