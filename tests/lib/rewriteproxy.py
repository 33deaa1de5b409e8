"""A TCP proxy on 127.0.0.1 in front of a real IMAP server that rewrites
what the server says: a hostile remote made from a real one.

The server's stream is cut into IMAP pieces: lines (CRLF included), and
lines that announce a literal ({N} at the end) together with it.  Each
piece goes through rewrite(kind, data, state) -> bytes before it is
forwarded: kind "line" with data the line, or kind "literal" with data
(line, literal); state is a dict kept per connection.  What the client
sends passes unchanged and is kept in .from_client.

    proxy = RewriteProxy(server.imap_port, rewrite)
    ... point the task at proxy.port ...
    proxy.stop()
"""

import re
import socket
import threading

LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


def literal_size(line):
    """The size of the literal a line announces, or None."""
    m = LITERAL_AT_END.search(line)
    return int(m.group(1)) if m else None


def with_literal(line, body):
    """line (which announces a literal) re-announcing len(body)."""
    return LITERAL_AT_END.sub(b"{%d}\r\n" % len(body), line)


class RewriteProxy(threading.Thread):
    def __init__(self, upstream_port, rewrite, upstream_host="127.0.0.1"):
        super().__init__(daemon=True)
        self.upstream = (upstream_host, upstream_port)
        self.rewrite = rewrite
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.from_client = b""
        self.stopping = False
        self.start()

    def run(self):
        self.sock.settimeout(0.3)
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client):
        try:
            server = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        threading.Thread(target=self.pump_up, args=(client, server), daemon=True).start()
        self.pump_down(server, client)

    def pump_up(self, client, server):
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                self.from_client += data
                server.sendall(data)
        except OSError:
            pass
        finally:
            try:
                server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def pump_down(self, server, client):
        state = {}
        buf = b""
        want = None      # bytes still owed to the current literal
        literal = b""
        announce = b""
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                buf += data
                out = b""
                while True:
                    if want is not None:
                        take = buf[:want]
                        literal += take
                        buf = buf[len(take):]
                        want -= len(take)
                        if want > 0:
                            break
                        out += self.rewrite("literal", (announce, literal), state)
                        want, literal = None, b""
                        continue
                    nl = buf.find(b"\r\n")
                    if nl < 0:
                        break
                    line, buf = buf[:nl + 2], buf[nl + 2:]
                    size = literal_size(line)
                    if size is None:
                        out += self.rewrite("line", line, state)
                    else:
                        want, literal, announce = size, b"", line
                if out:
                    client.sendall(out)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        self.sock.close()
