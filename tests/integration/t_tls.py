#!/usr/bin/python3
"""TLS policy against real TLS servers (openssl s_server) whose
certificates are expired, not yet valid, self-signed, or that speak only
TLS 1.1: every handshake fails closed with exit 76 and OpenSSL's reason,
before any IMAP byte (so before any credential)."""

import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dovecot import make_tls  # noqa: E402
from worker import TOP_BUILDDIR, Tap, output  # noqa: E402

tap = Tap()
PROBE = os.path.join(TOP_BUILDDIR, "tests", "integration", "imap_probe")
LEAF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_leaf]
subjectAltName = IP:127.0.0.1,DNS:localhost
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
"""


def openssl(*args, fake=None, cwd=None):
    argv = ["openssl", *args]
    if fake:
        argv = ["faketime", "-f", fake, *argv]
    r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr}")


def leaf(d, tls, name, fake=None, days=30, self_signed=False):
    cnf = os.path.join(d, "leaf.cnf")
    with open(cnf, "w") as f:
        f.write(LEAF)
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    if self_signed:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", key, "-out", pem, "-days", str(days), "-config", cnf,
                "-extensions", "v3_leaf")
        return pem, key
    csr = os.path.join(d, name + ".csr")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", csr, "-config", cnf)
    openssl("x509", "-req", "-in", csr, "-CA", tls["ca"], "-CAkey", tls["ca"][:-4] + ".key",
            "-set_serial", "0x%x" % int(time.time() * 1000), "-days", str(days), "-out", pem,
            "-extfile", cnf, "-extensions", "v3_leaf", fake=fake)
    return pem, key


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(pem, key, extra=()):
    port = free_port()
    p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pem,
                          "-key", key, "-quiet", *extra],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def probe(port, ca, pwfile):
    env = dict(os.environ, SRC_HOST="127.0.0.1", SRC_PORT=str(port), SRC_SECURITY="tls",
               SRC_CA=ca, SRC_USER="nobody", SRC_PASSFILE=pwfile)
    return subprocess.run([PROBE, "login"], env=env, capture_output=True, text=True, timeout=60)


def main():
    with tempfile.TemporaryDirectory(prefix="t_tls-") as d:
        tls = make_tls(os.path.join(d, "ca"))
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("Tls-Secret-1\n")
        os.chmod(pw, 0o600)
        cases = [
            ("expired", leaf(d, tls, "expired", fake="-400d", days=30), (),
             "certificate has expired"),
            ("not yet valid", leaf(d, tls, "future", fake="+30d", days=30), (),
             "certificate is not yet valid"),
            ("self-signed", leaf(d, tls, "self", self_signed=True), (),
             "self-signed certificate"),
            ("TLS 1.1 only", (tls["good_cert"], tls["good_key"]),
             ("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"), "protocol version"),
        ]
        for name, (pem, key), extra, reason in cases:
            server, port = serve(pem, key, extra)
            try:
                r = probe(port, tls["ca"], pw)
            finally:
                server.kill()
                server.wait()
            tap.ok(r.returncode == 76, f"{name}: refused with exit 76", output(r))
            tap.ok(reason in output(r), f"{name}: the error says \"{reason}\"", output(r))
            tap.ok("Tls-Secret-1" not in output(r), f"{name}: no password in the output")
        # The same good certificate over TLS 1.2+ works (the CA is fine).
        server, port = serve(tls["good_cert"], tls["good_key"])
        try:
            # s_server speaks no IMAP: a handshake that succeeds ends in a
            # greeting timeout (69), not in a TLS refusal (76).
            env = dict(os.environ, SRC_HOST="127.0.0.1", SRC_PORT=str(port), SRC_SECURITY="tls",
                       SRC_CA=tls["ca"], SRC_USER="nobody", SRC_PASSFILE=pw, SRC_TIMEOUT="3")
            r = subprocess.run([PROBE, "login"], env=env, capture_output=True, text=True,
                               timeout=120)
        finally:
            server.kill()
            server.wait()
        tap.ok(r.returncode != 76 and "certificate" not in output(r),
               "control: a valid certificate passes the handshake", output(r))
    tap.done()


if __name__ == "__main__":
    main()
