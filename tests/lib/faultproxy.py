"""A TCP fault proxy on 127.0.0.1 in front of a real server (the remote
IMAP port, the local IMAP port or the local LMTP port of a DovecotPair).

    from faultproxy import FaultProxy, Fault
    p = FaultProxy(pair.remote.host, pair.remote.imap_port)   # listens on p.port
    p.reset(record=True)          # count (and keep) the bytes of one clean run
    ... run the worker against p.port ...
    total = p.bytes["s2c"]        # server -> client bytes of that run
    p.reset(fault=Fault("s2c", 12345, "cut"))
    ... run again: after 12345 bytes from the server, both sides are closed ...
    p.fired                       # None, or a dict telling where it struck
    p.close()

A fault strikes once, as soon as exactly `offset` bytes have been
forwarded in its direction ("s2c": server to client, "c2s": client to
server), counted over every connection since the last reset(), or
`offset` bytes after the start of an anchor line (see Fault):

    cut     the bytes up to the offset are delivered, then both sides are
            closed (FIN): a clean end of stream in the middle of anything.
    reset   the same, but both sides get a TCP RST (SO_LINGER 0): the
            peers see ECONNRESET, and data still queued is thrown away.
    stall   nothing more is forwarded, in either direction, for
            stall_seconds (make it longer than the client's --timeout);
            what arrives meanwhile is held.  If the client hangs up
            during the stall, both sides are closed; otherwise the held
            bytes flow again when the stall ends.

The counts (.bytes) are of the bytes forwarded; what a stall held back
and let through later is not counted.

The proxy needs only the Python standard library.  The byte counts and,
with record=True, the bytes themselves (as forwarded, per direction,
connections one after the other) let a test measure a clean run and then
choose offsets across it; scan_imap() and scan_lmtp() find the places
worth aiming at (literals, tagged replies, commands, DATA)."""

import errno
import fcntl
import re
import select
import socket
import struct
import termios
import threading
import time

DIRECTIONS = ("c2s", "s2c")
KINDS = ("cut", "reset", "stall")
_CHUNK = 65536
_BACKPRESSURE = 4 * 1024 * 1024     # stop reading a side while this much waits


class Fault:
    """What to do, where: after `offset` bytes in `direction`; or, with
    anchor (bytes), `offset` bytes after the start of the nth (from 0)
    line that begins with anchor in that direction.  A line begins at the
    start of a connection and after every LF.  Anchors keep a fault point
    where it was meant to be when the bytes before it vary in length from
    run to run (Dovecot's "(0.001 + 0.000 secs)" timings)."""

    def __init__(self, direction, offset, kind, stall_seconds=10.0, anchor=None, nth=0):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}")
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}")
        if offset < 0:
            raise ValueError(f"offset {offset}")
        if anchor is not None and (not anchor or b"\n" in anchor):
            raise ValueError(f"anchor {anchor!r}")
        self.direction = direction
        self.offset = int(offset)
        self.kind = kind
        self.stall_seconds = stall_seconds
        self.anchor = anchor
        self.nth = nth

    def __repr__(self):
        where = f"@{self.offset}"
        if self.anchor is not None:
            where = f"@line {self.anchor!r}#{self.nth}+{self.offset}"
        return f"Fault({self.direction} {self.kind} {where})"


def _outq(sock):
    """Bytes the kernel has not yet had acknowledged on sock (TIOCOUTQ)."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]
    except OSError:
        return 0


def _drain(sock, deadline):
    """Wait until what was written to sock has left (bounded)."""
    while time.monotonic() < deadline and _outq(sock) > 0:
        time.sleep(0.005)


def _abort(sock, rst):
    """Close sock: with rst, a TCP RST instead of a FIN."""
    try:
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """Listen on 127.0.0.1 (a free port, .port); forward every accepted
    connection to upstream (host, port); apply the current Fault."""

    def __init__(self, upstream_host, upstream_port, name="proxy"):
        self.upstream = (upstream_host, upstream_port)
        self.name = name
        self._lock = threading.Lock()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind(("127.0.0.1", 0))
        self._lsock.listen(16)
        self.host, self.port = self._lsock.getsockname()
        self._closing = False
        self._conns = []           # live connection threads
        self.reset()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"{name}-accept")
        self._thread.start()

    # -- control ------------------------------------------------------------

    def reset(self, fault=None, record=False):
        """Zero the counters, forget what was recorded, arm `fault` (or
        none).  Connections still open from before are closed."""
        self._kill_conns()
        with self._lock:
            self.fault = fault
            self.fired = None
            self.record = record
            self.bytes = {d: 0 for d in DIRECTIONS}
            self.stream = {d: bytearray() for d in DIRECTIONS}
            # Offsets (per direction) where each connection's bytes begin.
            self.conn_starts = []
            self.connections = 0
            self._stall_until = 0.0
            self._tail = {d: b"" for d in DIRECTIONS}     # last bytes forwarded
            # Anchored fault: absolute offset once the anchor line is seen.
            self._target = None if fault is not None and fault.anchor is not None else (
                fault.offset if fault is not None else None)
            self._seen = 0                                 # anchor lines passed
            self._at_line_start = {d: True for d in DIRECTIONS}

    def close(self):
        self._closing = True
        try:
            self._lsock.close()
        except OSError:
            pass
        self._kill_conns()
        self._thread.join(timeout=5)

    def wait_idle(self, timeout=5.0):
        """Wait until every proxied connection has ended."""
        deadline = time.monotonic() + timeout
        for t in list(self._conns):
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._conns = [t for t in self._conns if t.is_alive()]
        return not self._conns

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _kill_conns(self):
        for t in list(getattr(self, "_conns", [])):
            t.kill = True
        for t in list(getattr(self, "_conns", [])):
            t.join(timeout=5)
        self._conns = []

    # -- the work -------------------------------------------------------------

    def _accept_loop(self):
        while not self._closing:
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.2)
                if not r:
                    continue
                client, _ = self._lsock.accept()
            except OSError:
                if self._closing:
                    return
                continue
            t = threading.Thread(target=self._serve, args=(client,), daemon=True,
                                 name=f"{self.name}-conn")
            t.kill = False
            self._conns = [c for c in self._conns if c.is_alive()] + [t]
            t.start()

    def _resolve(self, f, data, flush):
        """Look for the anchor line in data (the next bytes of f's
        direction).  Returns how many leading bytes of data may be released
        now: a last line that has begun like the anchor but is still too
        short to tell is held back (unless flush)."""
        base = self.bytes[f.direction]
        if self._at_line_start[f.direction]:
            pos = 0
        else:
            j = data.find(b"\n")
            pos = j + 1 if j >= 0 else None
        while pos is not None and pos < len(data):
            if pos + len(f.anchor) > len(data):
                if not flush and f.anchor.startswith(data[pos:]):
                    return pos                 # maybe the anchor: wait for more
            elif data.startswith(f.anchor, pos):
                if self._seen == f.nth:
                    self._target = base + pos + f.offset
                    return len(data)
                self._seen += 1
            j = data.find(b"\n", pos)
            pos = j + 1 if j >= 0 else None
        return len(data)

    def _account(self, direction, data, flush=False):
        """Split data (just read, going `direction`) into: what may pass
        now, what comes after a fault that strikes here, the fault (or
        None), and what is held back until more data comes (anchor)."""
        with self._lock:
            f = self.fault
            held = b""
            armed = f is not None and self.fired is None and f.direction == direction
            if armed and self._target is None:
                n = self._resolve(f, data, flush)
                data, held = data[:n], data[n:]
            n = self.bytes[direction]
            if armed and self._target is not None and n + len(data) >= self._target:
                keep = max(0, self._target - n)
                self.fired = {"fault": f, "at": time.monotonic(), "offset": n + keep,
                              "context": (self._tail[direction] + data[:keep])[-120:],
                              "next": bytes(data[keep:keep + 120]),
                              "connection": self.connections}
                if f.kind == "stall":
                    self._stall_until = time.monotonic() + f.stall_seconds
            else:
                keep, f = len(data), None
            now = data[:keep]
            if now:
                self.bytes[direction] += keep
                self._tail[direction] = (self._tail[direction] + now)[-120:]
                self._at_line_start[direction] = now.endswith(b"\n")
                if self.record:
                    self.stream[direction] += now
            return now, data[keep:], f, held

    def _stalled(self):
        return time.monotonic() < self._stall_until

    def _serve(self, client):
        me = threading.current_thread()
        try:
            up = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _abort(client, rst=False)
            return
        with self._lock:
            self.connections += 1
            self.conn_starts.append({d: self.bytes[d] for d in DIRECTIONS})
            self._at_line_start = {d: True for d in DIRECTIONS}
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        peer = {client: up, up: client}
        way = {client: "c2s", up: "s2c"}          # direction of what we read there
        out = {client: bytearray(), up: bytearray()}   # to be written to that socket
        held = {client: bytearray(), up: bytearray()}  # held back by a stall
        anchor_hold = {client: b"", up: b""}           # read there, not yet judged
        hold_since = {client: 0.0, up: 0.0}
        eof = set()                                    # sides that sent FIN
        shut = set()                                   # sides we sent FIN to

        def finish(rst):
            _abort(client, rst)
            _abort(up, rst)

        def flush_blocking(sock, deadline):
            while out[sock] and time.monotonic() < deadline:
                try:
                    n = sock.send(out[sock])
                    del out[sock][:n]
                except BlockingIOError:
                    select.select([], [sock], [], 0.05)
                except OSError:
                    return
            _drain(sock, deadline)

        def take(s, data, flush=False):
            """Data read from s: pass it on, or strike.  True when the
            connection is over."""
            if self._stalled():
                held[peer[s]] += data
                return False
            data, anchor_hold[s] = anchor_hold[s] + data, b""
            now, rest, fault, keep = self._account(way[s], data, flush)
            if keep:
                anchor_hold[s], hold_since[s] = keep, time.monotonic()
            out[peer[s]] += now
            if fault is None:
                return False
            # Deliver the bytes up to the offset, then strike.
            flush_blocking(peer[s], time.monotonic() + 2)
            if fault.kind == "cut":
                finish(False)
                return True
            if fault.kind == "reset":
                finish(True)
                return True
            held[peer[s]] += rest + anchor_hold[s]      # stall
            anchor_hold[s] = b""
            return False

        try:
            while not me.kill and not self._closing:
                stalled = self._stalled()
                if not stalled:
                    for s in (client, up):
                        if held[s]:
                            out[s] += held[s]
                            held[s].clear()
                # A partial line held for an anchor: never for long.
                for s in (client, up):
                    if anchor_hold[s] and (s in eof or time.monotonic() - hold_since[s] > 0.2):
                        if take(s, b"", flush=True):
                            return
                rl = [s for s in (client, up)
                      if s not in eof and len(out[peer[s]]) + len(held[peer[s]]) < _BACKPRESSURE]
                wl = [s for s in (client, up) if out[s]]
                try:
                    r, w, _ = select.select(rl, wl, [], 0.05)
                except (OSError, ValueError):
                    return finish(False)
                for s in w:
                    try:
                        n = s.send(out[s])
                        del out[s][:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        return finish(True)
                for s in r:
                    try:
                        data = s.recv(_CHUNK)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        # A peer reset: pass the reset on.
                        return finish(e.errno in (errno.ECONNRESET, errno.EPIPE))
                    if not data:
                        eof.add(s)
                        if stalled and s is client:
                            return finish(False)     # the client gave up waiting
                        continue
                    if take(s, data):
                        return
                # Pass a half-close on once everything before it went out.
                for s in (client, up):
                    if s in eof and peer[s] not in shut and not out[peer[s]] and \
                            not held[peer[s]] and not anchor_hold[s]:
                        try:
                            peer[s].shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        shut.add(peer[s])
                if len(eof) == 2 and not out[client] and not out[up]:
                    return finish(False)
            finish(False)
        except Exception:
            finish(True)
            raise


# ---------------------------------------------------------------------------
# Where to aim: the structure of a recorded stream

_LIT = re.compile(rb"~?\{(\d+)(\+?)\}\r\n$")


def imap_lines(stream):
    """Split an IMAP stream (one direction) into logical lines, literals
    skipped over.  Yields dicts: start, end (offset after the CRLF), text
    (the line without literal data), literals [(start, end), ...]."""
    i, n = 0, len(stream)
    while i < n:
        start, text, lits = i, bytearray(), []
        while True:
            j = stream.find(b"\r\n", i)
            if j < 0:
                text += stream[i:]
                i = n
                break
            seg = stream[i:j + 2]
            text += seg
            i = j + 2
            m = _LIT.search(seg)
            if not m:
                break
            size = int(m.group(1))
            lits.append((i, min(i + size, n)))
            i = min(i + size, n)
        yield {"start": start, "end": i, "text": bytes(text), "literals": lits}


def imap_commands(stream):
    """tag -> command name ("UID STORE", "APPEND", ...) of a client->server
    IMAP stream."""
    tags = {}
    for ln in imap_lines(stream):
        words = ln["text"].rstrip(b"\r\n").split(b" ", 3)
        if len(words) < 2 or words[0] in (b"*", b"+"):
            continue
        name = words[1].decode(errors="replace").upper()
        if name == "UID" and len(words) > 2:
            name += " " + words[2].decode(errors="replace").upper()
        tags[words[0]] = name
    return tags


def scan_imap(stream, requests=None):
    """The places of an IMAP stream worth aiming at, as a sorted list of
    (offset, label).  Every logical line gives "start WHAT" and
    "end WHAT", every literal in it "literal#K start|middle|last byte
    WHAT (N bytes)", where WHAT is "cmd:NAME" for a command (client to
    server), "tagged:NAME STATUS" for a tagged reply (NAME is the
    command, known when `requests` is the client->server stream of the
    same run), or "untagged:WORDS" ("untagged:7 FETCH")."""
    tags = imap_commands(requests) if requests is not None else {}
    marks = []
    for ln in imap_lines(stream):
        t = ln["text"].rstrip(b"\r\n")
        words = t.split(b" ", 3)
        if t.startswith(b"* ") or t.startswith(b"+"):
            what = "untagged:" + b" ".join(words[1:3]).decode(errors="replace").strip()
        elif len(words) > 1 and words[1].upper() in (b"OK", b"NO", b"BAD"):
            what = f"tagged:{tags.get(words[0], '?')} {words[1].decode().upper()}"
        else:
            name = words[1].decode(errors="replace").upper() if len(words) > 1 else "?"
            if name == "UID" and len(words) > 2:
                name += " " + words[2].decode(errors="replace").upper()
            what = "cmd:" + name
        marks.append((ln["start"], "start " + what))
        marks.append((ln["end"], "end " + what))
        for k, (a, b) in enumerate(ln["literals"]):
            marks.append((a, f"literal#{k} start {what} ({b - a} bytes)"))
            marks.append(((a + b) // 2, f"literal#{k} middle {what} ({b - a} bytes)"))
            marks.append((max(a, b - 1), f"literal#{k} last byte {what} ({b - a} bytes)"))
    return sorted(marks)


def scan_lmtp(stream, direction):
    """LMTP places, as a sorted list of (offset, label).  Client->server:
    "cmd:NAME" at each command, and for the K-th message (from 0)
    "data#K start", "data#K middle", "data#K before final dot" (the
    CRLF.CRLF not yet sent) and "data#K after final dot".
    Server->client: "reply:CODE" at each reply line, "reply:354 #K" and
    "reply:data#K" (the reply to the K-th message's data)."""
    marks = []
    stream = bytes(stream)
    if direction == "c2s":
        i, k = 0, 0
        while i < len(stream):
            j = stream.find(b"\r\n", i)
            if j < 0:
                break
            line = stream[i:j]
            marks.append((i, "cmd:" + line.split(b" ", 1)[0].decode(errors="replace").upper()))
            i = j + 2
            if line.upper() == b"DATA":
                e = stream.find(b"\r\n.\r\n", i - 2)
                end = len(stream) if e < 0 else e + 5
                marks += [(i, f"data#{k} start"), ((i + end) // 2, f"data#{k} middle"),
                          (end - 3, f"data#{k} before final dot"),
                          (end, f"data#{k} after final dot")]
                i, k = end, k + 1
    else:
        k, after_354 = 0, False
        for m in re.finditer(rb"(?m)^(\d{3})([ -])", stream):
            code = m.group(1).decode()
            if after_354 and m.group(2) == b" ":
                marks.append((m.start(), f"reply:data#{k}"))
                after_354, k = False, k + 1
            elif code == "354":
                marks.append((m.start(), f"reply:354 #{k}"))
                after_354 = True
            else:
                marks.append((m.start(), "reply:" + code))
    return sorted(marks)


def find_mark(marks, pattern, nth=0):
    """The offset of the nth mark whose label matches the regex pattern."""
    hits = [off for off, label in marks if re.search(pattern, label)]
    if len(hits) <= nth:
        raise LookupError(f"no mark {pattern!r} (#{nth}) among {len(marks)}")
    return hits[nth]


def imap_line_starts(stream):
    """Offsets where the logical lines of an IMAP stream begin."""
    return [ln["start"] for ln in imap_lines(stream)]


def lmtp_line_starts(stream, direction):
    """Offsets of the LMTP command lines (client->server: not the message
    data) or reply lines (server->client)."""
    if direction == "s2c":
        return [0] + [m.end() for m in re.finditer(rb"\n", bytes(stream))][:-1]
    return [off for off, label in scan_lmtp(stream, "c2s") if label.startswith("cmd:")]


def line_anchor(stream, offset, starts, width=9, end=False):
    """Express `offset` of a recorded stream as (anchor, nth, delta) for a
    Fault: delta bytes after the nth line (counting every line, literals
    included) that begins with anchor, the first bytes of the protocol
    line (one of `starts`) at or before offset; with end, before offset
    (the offset is the end of that line: the fault strikes as soon as the
    line has passed, without waiting for what comes next).  The anchor
    stops before '<' so that no address or user name is part of it."""
    stream = bytes(stream)
    p = max(q for q in starts if (q < offset if end else q <= offset))
    anchor = stream[p:p + width].split(b"\n")[0].split(b"\r")[0].split(b"<")[0]
    if not anchor:
        raise ValueError(f"no usable anchor at {p} for offset {offset}")
    nth = sum(1 for m in re.finditer(rb"(?m)^" + re.escape(anchor), stream) if m.start() < p)
    return anchor, nth, offset - p
