#!/usr/bin/python3
"""Issue 13: delivery = lmtp over several pipelined LMTP connections.

The local server is the real Dovecot; a small LMTP proxy between the
worker and it counts connections and transactions, can hide PIPELINING
from the LHLO reply (and then checks that the worker never sends a
command before the reply to the previous one), and can kill the worker
when a given final dot arrives, holding that dot a few seconds before
the server gets it, while other messages are on their own connections.
Every case checks the mail: each remote message local exactly once."""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import DovecotPair, make_message, read_mailbox, seed  # noqa: E402
from worker import Tap, TaskEnv, one_copy_each, output  # noqa: E402

tap = Tap()


def summary(r):
    m = re.search(r"summary: .*copied=(\d+) skipped=(\d+) deleted=(\d+)", output(r))
    return tuple(int(x) for x in m.groups()) if m else None


class LmtpProxy(threading.Thread):
    """Between the worker and Dovecot's LMTP listener."""

    def __init__(self, port, hide_pipelining=False, kill_at_dot=0, hold=0.0, cut_at_dot=0):
        super().__init__(daemon=True)
        self.cut_at_dot = cut_at_dot
        self.upstream = ("127.0.0.1", port)
        self.hide_pipelining = hide_pipelining
        self.kill_at_dot, self.hold = kill_at_dot, hold
        self.victim = None          # a Popen to kill at dot number kill_at_dot
        self.lock = threading.Lock()
        self.connections = 0
        self.mail_per_conn = []     # MAIL FROM count of each connection
        self.dots = 0
        self.max_busy = 0           # most connections inside a transaction at once
        self.busy = 0
        self.violations = []        # a command sent before the previous reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                k = self.connections
                self.connections += 1
                self.mail_per_conn.append(0)
            threading.Thread(target=self.serve, args=(c, k), daemon=True).start()

    def serve(self, c, k):
        s = socket.create_connection(self.upstream)
        st = {"pending": 1}   # replies owed: the greeting first

        def down():
            buf = b""
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                    out = b""
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        line += b"\n"
                        if self.hide_pipelining:
                            line = line.replace(b"PIPELINING", b"XPIPELINEX")
                        if len(line) >= 4 and line[3:4] == b" ":
                            with self.lock:
                                st["pending"] -= 1
                        out += line
                    c.sendall(out)
            except OSError:
                pass
            c.close()
        threading.Thread(target=down, daemon=True).start()
        buf, in_data, in_txn = b"", False, False
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
                while buf:
                    if in_data:
                        end = buf.find(b"\r\n.\r\n")
                        if end < 0 and buf.startswith(b".\r\n"):
                            end, cut = 0, 3
                        else:
                            cut = end + 5
                        if end < 0:
                            keep = buf[-4:]
                            s.sendall(buf[:-4])
                            buf = keep
                            break
                        with self.lock:
                            self.dots += 1
                            n = self.dots
                            st["pending"] += 1   # the reply to the dot
                            self.busy -= 1
                        s.sendall(buf[:cut - 3])
                        if n == self.kill_at_dot and self.victim is not None:
                            self.victim.send_signal(signal.SIGKILL)
                            time.sleep(self.hold)
                        s.sendall(buf[cut - 3:cut])
                        if n == self.cut_at_dot:
                            # The server has the whole message; the worker
                            # gets a reset instead of the reply.
                            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                            c.close()
                            threading.Timer(2.0, s.close).start()
                            return
                        buf, in_data, in_txn = buf[cut:], False, False
                        continue
                    if b"\n" not in buf:
                        break
                    line, buf = buf.split(b"\n", 1)
                    line += b"\n"
                    with self.lock:
                        if st["pending"] > 0 and self.hide_pipelining:
                            self.violations.append((k, line))
                        st["pending"] += 1
                        if line.upper().startswith(b"MAIL FROM"):
                            self.mail_per_conn[k] += 1
                            in_txn = True
                            self.busy += 1
                            self.max_busy = max(self.max_busy, self.busy)
                    s.sendall(line)
                    if line.upper().startswith(b"DATA"):
                        in_data = True
        except OSError:
            pass
        if in_txn:
            with self.lock:
                self.busy -= 1
        s.close()

    def stop(self):
        self.sock.close()


def through_proxy(te, proxy):
    conf = os.path.join(te.config_dir, "imapsync-task.conf")
    text = open(conf).read()
    open(conf, "w").write(re.sub(r"lmtp = .*", f"lmtp = 127.0.0.1:{proxy.port}", text))


def messages(n, first=1):
    """Small ones, a few spooled (> 256 KiB) ones, and lines starting with
    a dot (dot-stuffing) in every tenth."""
    out = []
    for i in range(first, first + n):
        if i % 50 == 7:
            m = make_message(i, size=300_000 + i)
        elif i % 10 == 3:
            m = make_message(i).rstrip(b"\r\n") + b"\r\n.\r\n..two dots\r\n.\r\nend\r\n"
        else:
            m = make_message(i, size=800 + (i * 37) % 4000)
        out.append(m)
    return out


def local_msgs(pair, user):
    return read_mailbox(pair.local, user, "INBOX", master=True)


def case_parallel(pair):
    user = "many"
    want = messages(300)
    pair.remote.add_user(user)
    pair.local.add_user(user)
    seed(pair.remote, user, "INBOX", want)
    te = TaskEnv(pair, user, task_extra="delivery = lmtp\n")
    proxy = LmtpProxy(pair.local.lmtp_port)
    through_proxy(te, proxy)
    try:
        r = te.run()
    finally:
        proxy.stop()
    tap.ok(r.returncode == 0 and summary(r) == (300, 0, 0),
           "parallel: 300 messages copied through LMTP", output(r)[-2000:])
    used = sum(1 for x in proxy.mail_per_conn if x > 0)
    tap.ok(used >= 2 and proxy.max_busy >= 2,
           f"parallel: {used} connections carried mail, up to {proxy.max_busy} "
           "transactions at once", proxy.mail_per_conn)
    tap.ok(one_copy_each(local_msgs(pair, user), want),
           "parallel: each message local exactly once, bytes intact (dots, spooled bodies)")
    r = te.run()
    tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0), "parallel: rerun copies nothing",
           output(r)[-2000:])


def case_no_pipelining(pair):
    user = "nopipe"
    want = messages(40, first=1000)
    pair.remote.add_user(user)
    pair.local.add_user(user)
    seed(pair.remote, user, "INBOX", want)
    te = TaskEnv(pair, user, task_extra="delivery = lmtp\n")
    proxy = LmtpProxy(pair.local.lmtp_port, hide_pipelining=True)
    through_proxy(te, proxy)
    try:
        r = te.run()
    finally:
        proxy.stop()
    tap.ok(r.returncode == 0 and summary(r) == (40, 0, 0),
           "no PIPELINING: 40 messages copied", output(r)[-2000:])
    tap.ok(not proxy.violations,
           "no PIPELINING: never a command before the reply to the previous one",
           proxy.violations[:5])
    tap.ok(sum(1 for x in proxy.mail_per_conn if x > 0) >= 2,
           "no PIPELINING: still several connections", proxy.mail_per_conn)
    tap.ok(one_copy_each(local_msgs(pair, user), want),
           "no PIPELINING: each message local exactly once")


def case_kill_mid_batch(pair):
    """The worker is killed when the k-th final dot reaches the proxy;
    that dot reaches Dovecot `hold` seconds later, after the worker is
    dead, while other deliveries may be on other connections.  The next
    run must wait for what was on the wire and end with one copy each."""
    want = messages(30, first=2000)
    for k in (1, 4, 13, 29):
        user = f"kill{k}"
        pair.remote.add_user(user)
        pair.local.add_user(user)
        seed(pair.remote, user, "INBOX", want)
        te = TaskEnv(pair, user, task_extra="delivery = lmtp\n")
        proxy = LmtpProxy(pair.local.lmtp_port, kill_at_dot=k, hold=2.0)
        through_proxy(te, proxy)
        env = dict(os.environ)
        for var in ("JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            env.pop(var, None)
        try:
            p = subprocess.Popen(te.argv("run", te.name), env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            proxy.victim = p
            p.communicate(timeout=120)
            killed = p.returncode == -signal.SIGKILL
            time.sleep(0.2)
            r = te.run()
        finally:
            proxy.stop()
        # A copy the next run made while the held one was still coming
        # would show only once the held dot has been taken.
        time.sleep(3.0)
        ok = r.returncode == 0 and one_copy_each(local_msgs(pair, user), want)
        tap.ok(killed and ok, f"kill at final dot {k} of 30 (held 2 s): the next run "
               "converges to one copy each", (p.returncode, output(r)[-1500:]))
        r = te.run()
        tap.ok(r.returncode == 0 and summary(r) == (0, 0, 0),
               f"kill at final dot {k}: a further run copies nothing", output(r)[-800:])


def case_cut_mid_batch(pair):
    """One connection is reset right after a final dot reached the
    server, while the other connections carry their own messages: the
    run ends with 75, the next one waits for what was on the wire and
    converges to one copy each."""
    user = "cut"
    want = messages(30, first=4000)
    pair.remote.add_user(user)
    pair.local.add_user(user)
    seed(pair.remote, user, "INBOX", want)
    te = TaskEnv(pair, user, task_extra="delivery = lmtp\n")
    proxy = LmtpProxy(pair.local.lmtp_port, cut_at_dot=6)
    through_proxy(te, proxy)
    try:
        r = te.run()
        tap.ok(r.returncode == 75 and "connection lost during delivery" in output(r),
               "cut after the 6th final dot: the run ends with 75, outcome unknown",
               output(r)[-1500:])
        local = local_msgs(pair, user)
        tap.ok(len(local) >= 5, f"cut: the messages that went are local ({len(local)})")
        r = te.run()
    finally:
        proxy.stop()
    tap.ok(r.returncode == 0 and one_copy_each(local_msgs(pair, user), want),
           "cut: the next run converges to one copy each", output(r)[-1500:])


def case_kill_sweep(pair):
    """IMAPSYNC_TEST_KILL_AT at every journal step of a 6-message run."""
    user = "ksweep"
    want = messages(6, first=3000)
    pair.remote.add_user(user)
    seed(pair.remote, user, "INBOX", want)
    failures, points = [], 0
    for n in range(1, 80):
        local = f"ksu{n}"
        pair.local.add_user(local)
        te = TaskEnv(pair, user, local_user=local, name=f"ks{n}",
                     task_extra="delivery = lmtp\n")
        r = te.run(env={"IMAPSYNC_TEST_KILL_AT": str(n)})
        killed = r.returncode == 100
        r2 = te.run()
        got = local_msgs(pair, local)
        if r2.returncode != 0 or not one_copy_each(got, want):
            failures.append((n, r.returncode, r2.returncode, len(got), output(r2)[-600:]))
        te.cleanup()
        # Put the remote back as it was (unseen) for the next point.
        from dovecot import imap
        conn = imap(pair.remote, user)
        conn.select("INBOX")
        conn.store("1:*", "-FLAGS", "\\Seen")
        conn.logout()
        if not killed:
            break
        points += 1
    tap.ok(points >= 5 and not failures,
           f"journal-step kills: {points} points, each converges to one copy each", failures)


def main():
    only = os.environ.get("T_LMTP_ONLY")   # a case's name, e.g. kill_mid_batch
    cases = (case_parallel, case_no_pipelining, case_kill_mid_batch, case_cut_mid_batch,
             case_kill_sweep)
    with DovecotPair(name="lmtp") as pair:
        for case in cases:
            if not only or case.__name__ == "case_" + only:
                case(pair)
    tap.done()


if __name__ == "__main__":
    main()
