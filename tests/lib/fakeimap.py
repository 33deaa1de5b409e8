"""A scripted fake IMAP server on 127.0.0.1, for the peer faults a real
Dovecot will not play (tests/integration/t_hostile*.py, t_import_hints.py).

    fake = FakeServer(b"* OK hi\\r\\n", handler)
    ... point a task at fake.port ...
    fake.stop()

Connections are served one after the other.  For each: on_connect(conn)
if given (it may return "close"), else the greeting is sent (None: no
greeting); then every command line goes through
handler(tag, cmd, line, conn) -> bytes | "close" | None, where cmd is the
upper-cased command word ("UID FETCH" for UID commands).  Everything
received is kept in .received, connections are counted in .connections.

Also here, for the handlers: CAPS, basic() (answers CAPABILITY, LOGIN,
AUTHENTICATE and LOGOUT as a well-behaved server, OK to the rest),
message(uid) and parse_set(set).
"""

import socket
import threading


class FakeServer(threading.Thread):
    def __init__(self, greeting, handler=None, on_connect=None):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.handler = handler or (lambda tag, cmd, line, conn: None)
        self.on_connect = on_connect
        self.received = b""
        self.connections = 0
        self.stopping = False
        self.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            try:
                self.serve(conn)
            except OSError:
                pass
            finally:
                conn.close()

    def serve(self, conn):
        conn.settimeout(60)
        if self.on_connect is not None:
            if self.on_connect(conn) == "close":
                return
        elif self.greeting is not None:
            conn.sendall(self.greeting)
        buf = b""
        while not self.stopping:
            data = conn.recv(65536)
            if not data:
                return
            self.received += data
            buf += data
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                parts = line.split(b" ", 2)
                tag = parts[0]
                cmd = parts[1].upper() if len(parts) > 1 else b""
                if cmd == b"UID" and len(parts) > 2:
                    cmd = b"UID " + parts[2].split(b" ", 1)[0].upper()
                reply = self.handler(tag, cmd, line, conn)
                if reply == "close":
                    return
                if reply:
                    conn.sendall(reply)

    def stop(self):
        self.stopping = True
        self.sock.close()


CAPS = b"IMAP4rev1 LITERAL+ UIDPLUS AUTH=PLAIN"


def basic(tag, cmd, line, conn):
    """A minimal well-behaved server for the commands before the fault."""
    if cmd == b"CAPABILITY":
        return b"* CAPABILITY " + CAPS + b"\r\n" + tag + b" OK done\r\n"
    if cmd in (b"LOGIN", b"AUTHENTICATE"):
        return tag + b" OK [CAPABILITY " + CAPS + b"] logged in\r\n"
    if cmd == b"LOGOUT":
        return b"* BYE bye\r\n" + tag + b" OK bye\r\n"
    return tag + b" OK done\r\n"


def message(uid):
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\n"
            b"Message-ID: <m%d@example.org>\r\n\r\nbody %d\r\n" % (uid, uid, uid))


def parse_set(s):
    """The UIDs of a UID set the client sent ("1:3,7"; "3:1" is 1:3)."""
    uids = []
    for el in s.split(b","):
        a, _, b = el.partition(b":")
        lo, hi = int(a), int(b or a)
        uids.extend(range(min(lo, hi), max(lo, hi) + 1))
    return uids
