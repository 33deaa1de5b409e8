"""A TCP relay that slows down what the server sends, so that a run lasts
long enough to be watched (progress tests: sd_notify STATUS=, the terminal
line, "systemctl status" under the booted systemd).

    with ThrottleProxy("127.0.0.1", pair.remote.imap_port, rate=200_000) as p:
        ... connect to 127.0.0.1:p.port ...

Server to client is paced to `rate` bytes per second (in small chunks);
client to server passes at once.  TLS (STARTTLS, implicit) goes through
untouched: it is only bytes here.  Listens on 127.0.0.1 (or `listen`),
on a free port; one thread per direction and connection; close() ends all.
"""

import socket
import threading
import time


class ThrottleProxy:
    def __init__(self, upstream_host, upstream_port, rate=200_000, listen="127.0.0.1",
                 chunk=2048):
        self.upstream = (upstream_host, upstream_port)
        self.rate = float(rate)
        self.chunk = chunk
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.host = listen
        self._closing = threading.Event()
        self._conns = []
        self._lock = threading.Lock()
        self.connections = 0
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._closing.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns = []

    def _accept(self):
        while not self._closing.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, self.rate),
                             daemon=True).start()

    def _pump(self, src, dst, rate):
        start = time.monotonic()
        sent = 0
        try:
            while not self._closing.is_set():
                data = src.recv(self.chunk if rate else 65536)
                if not data:
                    break
                if rate:
                    sent += len(data)
                    due = start + sent / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        # Idle time is not credit for a later burst.
                        start, sent = time.monotonic(), 0
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
