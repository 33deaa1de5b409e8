#!/usr/bin/python3
"""TAP test of the Dovecot harness itself (tests/lib/dovecot.py): the
servers other integration tests rely on behave as those tests assume."""

import datetime as dt
import imaplib
import os
import smtplib
import socket
import ssl
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("TOP_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
# By hand: pairs go under build/ (scripts/check's build dir) if it exists,
# else under the temp dir; never into the source tree.
if not os.environ.get("TOP_BUILDDIR") and os.path.isdir(os.path.join(TOP_SRCDIR, "build")):
    os.environ["TOP_BUILDDIR"] = os.path.join(TOP_SRCDIR, "build")
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "lib"))

import dovecot  # noqa: E402
from dovecot import imap, make_message, read_mailbox, seed  # noqa: E402

results = []


def check(desc, fn):
    """Run one test point; an exception or a false result fails it."""
    start = time.monotonic()
    try:
        ok = fn()
        ok = True if ok is None else bool(ok)
        diag = "" if ok else "returned false"
    except Exception:
        ok, diag = False, traceback.format_exc()
    results.append(ok)
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {desc}", flush=True)
    took = time.monotonic() - start
    if took > 0.5:
        diag += f"took {took:.1f}s"
    if diag:
        for line in diag.rstrip().splitlines():
            print(f"# {line}", flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def start_pairs():
    """Start a default pair and a courier pair (remote with the wrong-name
    certificate) at the same time."""
    pairs, errors = {}, []

    def run(key, **kw):
        try:
            pairs[key] = dovecot.DovecotPair(name=f"t_harness-{key}", **kw).start()
        except Exception:
            errors.append(traceback.format_exc())
    threads = [threading.Thread(target=run, args=("main",)),
               threading.Thread(target=run, args=("courier",),
                                kwargs={"layout": "courier", "remote_cert": "wrong"})]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for p in pairs.values():
            p.stop()
        raise RuntimeError("\n".join(errors))
    return pairs["main"], pairs["courier"]


def main():
    dovecot.install_cleanup_handlers()
    t0 = time.monotonic()
    pair, cpair = start_pairs()
    failed_before = None
    try:
        r, l = pair.remote, pair.local
        r.add_user("alice", "remote-pw")
        l.add_user("alice", "local-pw")
        cpair.remote.add_user("carol", "courier-pw")

        def pairs_have_distinct_ports():
            ports = r.ports() + l.ports() + cpair.remote.ports() + cpair.local.ports()
            expect(len(ports) == 10, f"ports {ports}")
            expect(len(set(ports)) == len(ports), f"duplicate ports {ports}")
            expect(pair.dir != cpair.dir, "same work dir")
        check("two pairs started at once get different ports", pairs_have_distinct_ports)

        def master_login():
            body = make_message(1, size=3000)
            seed(l, "alice", "INBOX", [{"bytes": body, "flags": ["\\Seen"]}])
            got = read_mailbox(l, "alice", "INBOX", master=True)
            expect(len(got) == 1 and got[0]["bytes"] == body, "bytes differ via master")
            conn = imap(l, "alice", master=True)
            try:
                typ, data = conn.select("INBOX", readonly=True)
                expect(typ == "OK" and int(data[0]) == 1, f"SELECT {typ} {data}")
            finally:
                conn.logout()
        check("master login alice*vmail reads what alice stored", master_login)

        def wrong_master_password():
            try:
                imap(l, "alice", password="not-the-master-password", master=True)
            except imaplib.IMAP4.error as e:
                expect("AUTHENTICATIONFAILED" in str(e), f"no response code in {e}")
                return
            raise AssertionError("login succeeded")
        check("a wrong master password is refused with AUTHENTICATIONFAILED",
              wrong_master_password)

        def tls_verifies():
            for server in (r, l):
                for mode in ("starttls", "imaps"):
                    for name in ("127.0.0.1", "localhost"):
                        cert = dovecot.tls_handshake(server, mode, server_hostname=name)
                        expect(("IP Address", "127.0.0.1") in cert["subjectAltName"],
                               f"SAN {cert['subjectAltName']}")
            for server in (r, l):                         # and imaplib's own path
                for tls in ("starttls", "imaps"):
                    conn = imap(server, "alice", tls=tls)
                    expect(isinstance(conn.sock, ssl.SSLSocket), f"{tls} not TLS")
                    conn.logout()
        check("the CA verifies both servers over STARTTLS and IMAPS (check_hostname on)",
              tls_verifies)

        def wrong_name_refused():
            for mode in ("starttls", "imaps"):
                for name in ("127.0.0.1", "localhost"):
                    try:
                        dovecot.tls_handshake(cpair.remote, mode, server_hostname=name)
                    except ssl.SSLCertVerificationError as e:
                        expect("mismatch" in str(e), str(e))
                        continue
                    raise AssertionError(f"{mode} {name}: wrong-name certificate accepted")
            # Same CA: fine for the name it was made for (the harness's own
            # clients use that, so seeding such a remote still works).
            dovecot.tls_handshake(cpair.remote, "imaps", server_hostname="wrong.example")
            imap(cpair.remote, "carol").logout()
        check("a wrong-name certificate fails hostname verification", wrong_name_refused)

        def plain_login():
            conn = imap(r, "alice", tls="none")
            expect(not isinstance(conn.sock, ssl.SSLSocket), "unexpected TLS")
            conn.logout()
        check("plain LOGIN without TLS works (security = none)", plain_login)

        def filter_sieve():
            conn = imap(l, "alice")
            try:
                typ, data = conn.capability()
                caps = data[0].decode().upper().split()
                expect("FILTER=SIEVE" in caps, f"capabilities {caps}")
                expect("QUOTA" in caps, f"capabilities {caps}")
            finally:
                conn.logout()
        check("local advertises FILTER=SIEVE and QUOTA", filter_sieve)

        def lmtp_delivery():
            body = make_message(2, subject="via LMTP")
            with smtplib.LMTP(l.host, l.lmtp_port, timeout=30) as s:
                refused = s.sendmail("bob@example.org", ["alice@example.test"], body)
                expect(not refused, f"refused {refused}")
            got = [m["bytes"] for m in read_mailbox(l, "alice", "INBOX")]
            expect(any(b.endswith(body) for b in got), "delivered message not in INBOX")
        check("LMTP accepts a message for alice and it lands in INBOX", lmtp_delivery)

        def vacation_capture():
            l.set_sieve("alice", 'require "vacation";\nvacation :days 1 "Away.";\n')
            with smtplib.LMTP(l.host, l.lmtp_port, timeout=30) as s:
                s.sendmail("bob@example.org", ["alice@example.test"],
                           make_message(3, subject="hello"))
            deadline = time.monotonic() + 10
            while not l.sent_mail() and time.monotonic() < deadline:
                time.sleep(0.05)
            sent = l.sent_mail()
            expect(len(sent) == 1, f"{len(sent)} messages sent")
            expect("bob@example.org" in sent[0]["args"], f"args {sent[0]['args']}")
            expect(b"Auto-Submitted: auto-replied" in sent[0]["bytes"], "not a vacation reply")
            l.set_sieve("alice", "keep;\n")
        check("set_sieve activates a script; vacation replies reach the sendmail capture",
              vacation_capture)

        def quota():
            l.set_quota("alice", 10_000)
            try:
                seed(l, "alice", "INBOX", [make_message(4, size=20_000)])
            except imaplib.IMAP4.error as e:
                expect("[OVERQUOTA]" in str(e), f"no OVERQUOTA in {e}")
            else:
                raise AssertionError("APPEND over quota succeeded")
            finally:
                l.set_quota("alice", None)
            seed(l, "alice", "INBOX", [make_message(5, size=20_000)])
        check("set_quota: APPEND over the limit fails with OVERQUOTA; lifting it works",
              quota)

        def round_trip():
            tz = dt.timezone(dt.timedelta(hours=-7))
            msgs = [
                {"bytes": make_message(10, size=1500),
                 "flags": ["\\Seen", "\\Flagged"],
                 "internaldate": dt.datetime(2023, 7, 5, 1, 2, 3, tzinfo=tz)},
                {"bytes": b"Subject: 8bit\r\n\r\nbody with 8-bit \xc3\xa4 and a long line "
                          + b"z" * 2000 + b"\r\n",
                 "flags": ["$Label1", "\\Answered"],
                 "internaldate": dt.datetime(2020, 12, 31, 23, 59, 59,
                                             tzinfo=dt.timezone.utc)},
                {"bytes": make_message(11), "flags": [],
                 "internaldate": "01-Feb-2019 10:00:00 +0100"},
            ]
            uids = seed(r, "alice", "Archive/2024", msgs)
            got = read_mailbox(r, "alice", "Archive/2024")
            expect([m["uid"] for m in got] == uids, f"uids {uids} vs {got}")
            for m, g in zip(msgs, got):
                expect(g["bytes"] == m["bytes"], f"bytes differ: {g['bytes'][:60]!r}")
                expect(g["flags"] == sorted(m["flags"]), f"flags {g['flags']}")
            # Maildir keeps the instant, not the zone; the servers run in UTC.
            expect(got[0]["internaldate"] == "05-Jul-2023 08:02:03 +0000", got[0]["internaldate"])
            expect(got[1]["internaldate"] == "31-Dec-2020 23:59:59 +0000", got[1]["internaldate"])
            expect(got[2]["internaldate"] == "01-Feb-2019 09:00:00 +0000", got[2]["internaldate"])
            expect(dovecot.parse_internaldate(got[0]["internaldate"])
                   == msgs[0]["internaldate"], "parse_internaldate")
        check("seed/read_mailbox preserve bytes, flags and INTERNALDATE", round_trip)

        def unicode_folders():
            seed(r, "alice", "Entwürfe", [make_message(20)])
            folders = dovecot.list_folders(r, "alice")
            expect("Entwürfe" in folders and "Archive/2024" in folders, f"{folders}")
            raw = [m["raw"] for m in dovecot.list_mailboxes(r, "alice")]
            expect("Entw&APw-rfe" in raw, f"raw {raw}")
            expect(len(read_mailbox(r, "alice", "Entwürfe")) == 1, "message missing")
        check("folder names travel as modified UTF-7", unicode_folders)

        def special_use_local():
            boxes = {m["name"]: m["flags"] for m in dovecot.list_mailboxes(l, "alice")}
            for name in ("Sent", "Drafts", "Trash", "Junk"):
                expect(name in boxes and f"\\{name}" in boxes[name], f"{name}: {boxes}")
        check("local has special-use Sent, Drafts, Trash, Junk", special_use_local)

        def courier_layout():
            cr = cpair.remote
            seed(cr, "carol", cr.mailbox_name("Archive/2024"), [make_message(30)])
            boxes = dovecot.list_mailboxes(cr, "carol")
            names = {m["name"]: m["delimiter"] for m in boxes}
            expect(names.get("INBOX.Archive.2024") == ".", f"{names}")
            expect(all(n == "INBOX" or n.startswith("INBOX.") for n in names), f"{names}")
            expect(set(names.values()) == {"."}, f"{names}")
        check("courier layout: remote LIST shows INBOX. prefix and . separator",
              courier_layout)

        def no_password_in_argv():
            secrets = [pair.master_password, "remote-pw", "local-pw"]
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv = f.read().decode(errors="replace")
                except OSError:
                    continue
                for s in secrets:
                    expect(s not in argv, f"password in argv of pid {pid}")
        check("no password appears in any process's argv", no_password_in_argv)

        def env_file():
            path = pair.write_env(os.path.join(pair.dir, "env"))
            facts = {}
            with open(path) as f:
                for line in f:
                    if "=" in line and not line.startswith("#"):
                        k, v = line.rstrip("\n").split("=", 1)
                        facts[k] = v
            expect(facts["LOCAL_LMTP_PORT"] == str(l.lmtp_port), f"{facts}")
            expect(facts["MASTER_USER"] == "vmail", f"{facts}")
            with open(facts["MASTER_PASSWORD_FILE"]) as f:
                expect(f.read() == pair.master_password, "master password file")
            expect(os.stat(facts["MASTER_PASSWORD_FILE"]).st_mode & 0o077 == 0,
                   "password file readable by others")
        check("write_env writes host/port/password facts", env_file)
        failed_before = not all(results)
    finally:
        dovecot.stop_pairs([pair, cpair])
        for p in (pair, cpair):
            if failed_before is not False:
                p.keep = True
            p.__exit__(None, None, None)

    def stopped():
        for p in (pair, cpair):
            for s in (p.remote, p.local):
                expect(not s.running, f"{s.role} still running")
                for port in s.ports():
                    try:
                        socket.create_connection((s.host, port), timeout=1).close()
                    except OSError:
                        continue
                    raise AssertionError(f"port {port} still open")
    check("stop() ends both servers of both pairs", stopped)

    print(f"1..{len(results)}")
    print(f"# {time.monotonic() - t0:.1f}s", flush=True)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
