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
