#!/usr/bin/python3
"""Throwaway Dovecot servers for the imapsync-task tests and demo.

A DovecotPair is two standalone Dovecot 2.3 instances built from generated
configuration (nothing is read from /etc/dovecot):

  remote  the server mail is copied from: IMAP (STARTTLS) and IMAPS,
          passwd-file users, Maildir, separator "/" -- or, with
          layout="courier", a personal namespace "INBOX." with separator ".".
  local   the NethServer-like mail host mail is copied into: its own users,
          a master user ("vmail", LOGIN user*vmail), quota, Sieve (LMTP and
          IMAP FILTER=SIEVE), special-use folders, an LMTP listener and a
          sendmail stand-in that keeps every message it is given.

Only the Python standard library is used.  Passwords never appear in the
argv of a spawned process: they live in files.

Library use:

    with DovecotPair() as pair:
        pair.remote.add_user("alice", "secret")
        pair.local.add_user("alice", "other", quota_bytes=10_000_000)
        seed(pair.remote, "alice", "INBOX", [{"bytes": make_message(1)}])
        msgs = read_mailbox(pair.local, "alice", "INBOX", master=True)

Command line (for shell scripts):

    dovecot.py serve --dir DIR [--seed-demo] [--env-file FILE]   # until ^C
    dovecot.py start --dir DIR [--seed-demo] [--env-file FILE]   # background
    dovecot.py stop  --dir DIR
"""

import argparse
import atexit
import base64
import datetime as dt
import email.header
import email.utils
import grp
import imaplib
import json
import math
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HOST = "127.0.0.1"
MAIL_ACCOUNT = "imapsynctest"      # system user mail processes run as (root only)
MASTER_USER = "vmail"              # the NethServer master user
DH_FILE = "/usr/share/dovecot/dh.pem"
STATE_FILE = "harness.json"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# A Unix socket path holds at most 107 bytes; Dovecot appends up to ~30
# (e.g. "token-login/imap-urlauth").  Longer base_dirs move to /tmp.
MAX_BASE_DIR = 70


class HarnessError(Exception):
    """The harness could not set up or talk to a server."""


class _PortInUse(HarnessError):
    pass


# --------------------------------------------------------------------------
# small utilities

def _which(name, env_var):
    path = os.environ.get(env_var) or shutil.which(name, path=SBIN_PATH)
    if not path:
        raise HarnessError(f"{name} not found (Debian: dovecot-core)")
    return path


def _write_file(path, data, mode=0o644, uid=None, gid=None):
    """Write atomically: temp file, fsync not needed (throwaway), rename."""
    if isinstance(data, str):
        data = data.encode()
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _random_password():
    return secrets.token_urlsafe(18)


def _pid_alive(pid):
    """True if pid runs and is not a zombie (daemonized masters are not
    our children, and some container inits never reap them)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _pid_is_dovecot(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "dovecot"
    except OSError:
        return False


def _children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return kids


def _traversable_by_others(path):
    """Can a user other than the owner reach files under path?"""
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except FileNotFoundError:
            pass
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


_port_lock = threading.Lock()
_ports_given = set()


def free_ports(n):
    """n distinct TCP ports on HOST that were free a moment ago.  They are
    bound together (so distinct), then closed; a collision with another
    process is caught when Dovecot starts, and the caller retries."""
    with _port_lock:
        socks, ports = [], []
        try:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((HOST, 0))
                socks.append(s)
                port = s.getsockname()[1]
                if port not in _ports_given:
                    ports.append(port)
        finally:
            for s in socks:
                s.close()
        _ports_given.update(ports)
        return ports


# --------------------------------------------------------------------------
# accounts

_account_lock = threading.Lock()


def mail_account():
    """(uid, gid, name) that mail processes run as.  As root: the system user
    MAIL_ACCOUNT, created once.  Otherwise: the current user."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name
    with _account_lock:
        try:
            pw = pwd.getpwnam(MAIL_ACCOUNT)
        except KeyError:
            useradd = _which("useradd", "USERADD")
            r = subprocess.run([useradd, "--system", "--no-create-home",
                                "--shell", "/usr/sbin/nologin", MAIL_ACCOUNT],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True)
            try:        # another process may have won the race (exit 9)
                pw = pwd.getpwnam(MAIL_ACCOUNT)
            except KeyError:
                raise HarnessError(f"useradd {MAIL_ACCOUNT} failed: "
                                   f"{r.stderr.strip()}") from None
        return pw.pw_uid, pw.pw_gid, pw.pw_name


def _service_users():
    """(internal user, internal group, login user) for Dovecot's own
    processes.  As root the Debian package's dovecot/dovenull; otherwise
    everything runs as the current user."""
    if os.geteuid() != 0:
        name = pwd.getpwuid(os.getuid()).pw_name
        return name, grp.getgrgid(os.getgid()).gr_name, name
    try:
        internal = pwd.getpwnam("dovecot")
        login = pwd.getpwnam("dovenull").pw_name
    except KeyError as e:
        raise HarnessError(f"Dovecot system users missing ({e}); "
                           "reinstall dovecot-core") from None
    return internal.pw_name, grp.getgrgid(internal.pw_gid).gr_name, login


# --------------------------------------------------------------------------
# TLS material

_CA_CNF = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = imapsync-task throwaway test CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


def make_tls(tls_dir, days=3650):
    """Create a CA, a server certificate for IP:127.0.0.1 and DNS:localhost
    ("good") and one for DNS:wrong.example only ("wrong").  Returns a dict of
    paths: ca, good_cert, good_key, wrong_cert, wrong_key."""
    openssl = _which("openssl", "OPENSSL")
    os.makedirs(tls_dir, exist_ok=True)
    p = lambda name: os.path.join(tls_dir, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        r = subprocess.run([openssl, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           env=dict(os.environ, OPENSSL_CONF=p("ca.cnf")))
        if r.returncode != 0:
            raise HarnessError(f"openssl {args[0]} failed: {r.stderr.strip()}")

    _write_file(p("ca.cnf"), _CA_CNF)
    run("req", "-x509", "-new", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"),
        "-days", str(days), "-config", p("ca.cnf"))
    for kind, cn, san in (("good", "localhost", "IP:127.0.0.1,DNS:localhost"),
                          ("wrong", "wrong.example", "DNS:wrong.example")):
        cnf = p(f"{kind}.cnf")
        _write_file(cnf, _LEAF_CNF.format(cn=cn, san=san))
        run("req", "-new", *ec, "-keyout", p(f"{kind}.key"),
            "-out", p(f"{kind}.csr"), "-config", cnf)
        run("x509", "-req", "-in", p(f"{kind}.csr"), "-CA", p("ca.pem"),
            "-CAkey", p("ca.key"), "-set_serial", "0x" + secrets.token_hex(12),
            "-days", str(days), "-out", p(f"{kind}.pem"),
            "-extfile", cnf, "-extensions", "v3_leaf")
    for name in os.listdir(tls_dir):
        os.chmod(p(name), 0o600 if name.endswith(".key") else 0o644)
    return {"ca": p("ca.pem"),
            "good_cert": p("good.pem"), "good_key": p("good.key"),
            "wrong_cert": p("wrong.pem"), "wrong_key": p("wrong.key")}


def ssl_context(ca_file):
    """Client context trusting only the harness CA, hostname checks on."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --------------------------------------------------------------------------
# Dovecot configuration

_COMMON_CONF = """\
# Generated by tests/lib/dovecot.py ({role}).  Includes nothing from
# /etc/dovecot; everything lives under {dir}.
instance_name = imapsynctest-{role}
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
listen = {host}
protocols = {protocols}
hostname = localhost
postmaster_address = postmaster@example.test

default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_dh = <{dh}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Tests log in with wrong passwords on purpose; do not make them wait:
# no failure delay, and no auth penalty (auth cannot reach this socket).
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
mail_plugins = {mail_plugins}

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {passwd}
}}

service imap-login {{
{chroot}  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
"""

_NONROOT_CONF = """\
# Not root: no chroot for the services that default to one.
service anvil {
  chroot =
}
service ipc {
  chroot =
}
service imap-urlauth-login {
  chroot =
}
"""

_REMOTE_NS = {
    "default": """\
namespace inbox {
  inbox = yes
  prefix =
  separator = /
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Trash {
    special_use = \\Trash
  }
}
""",
    # Courier/Cyrus style: every folder lives under "INBOX.".
    "courier": """\
namespace inbox {
  inbox = yes
  prefix = INBOX.
  separator = .
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Trash {
    special_use = \\Trash
  }
}
""",
}

_LOCAL_CONF = """\
# NethServer-like mail host.
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {master_passwd}
  master = yes
  pass = yes
}}
sendmail_path = {sendmail}

namespace inbox {{
  inbox = yes
  prefix =
  separator = /
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}

service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp_port}
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins imap_quota imap_filter_sieve
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  quota = maildir:User quota
  sieve = file:~/sieve;active=~/.dovecot.sieve
  # Reply even when the user's address is not in To/Cc, so a test that
  # expects no vacation reply is not passing by accident.
  sieve_vacation_dont_check_recipient = yes
}}
"""

_SENDMAIL = """\
#!/bin/sh
# Generated by tests/lib/dovecot.py: stands in for sendmail(8) and keeps
# every message it is given as NAME.eml, its arguments as NAME.args.
dir='{sent_dir}'
name="$(date +%s%N).$$"
printf '%s\\n' "$@" > "$dir/.$name.args" || exit 75
cat > "$dir/.$name.eml" || exit 75
mv "$dir/.$name.args" "$dir/$name.args" && mv "$dir/.$name.eml" "$dir/$name.eml"
"""


class DovecotServer:
    """One Dovecot instance.  Made by DovecotPair; see the module doc."""

    def __init__(self, role, directory, tls, cert="good", layout="default",
                 extra_conf=""):
        if role not in ("remote", "local"):
            raise ValueError(role)
        if layout not in _REMOTE_NS or (role == "local" and layout != "default"):
            raise ValueError(f"layout {layout!r} for {role}")
        self.role = role
        self.host = HOST
        self.dir = directory
        self.layout = layout
        self.separator = "." if layout == "courier" else "/"
        self.prefix = "INBOX." if layout == "courier" else ""
        # Appended to the generated dovecot.conf (e.g. more special-use
        # mailboxes, another namespace); "@DIR@" stands for this
        # server's directory.
        self.extra_conf = extra_conf or ""
        self.conf = os.path.join(directory, "dovecot.conf")
        self.log_path = os.path.join(directory, "dovecot.log")
        # One passwd-file per user (passwd.d/NAME): see _write_passwd.
        self.passwd_dir = os.path.join(directory, "passwd.d")
        self.mail_root = os.path.join(directory, "mail")
        self.ca_file = tls["ca"]
        # The name the harness's own clients verify the certificate against.
        self.tls_name = "wrong.example" if cert == "wrong" else HOST
        self.cert_file = tls[f"{cert}_cert"]
        self.key_file = tls[f"{cert}_key"]
        self.imap_port = self.imaps_port = self.lmtp_port = None
        self.pid = None
        self.base_dir = None
        self.master_user = self.master_password = None
        self.master_passwd_file = None
        self.sendmail_path = self.sent_dir = None
        self.users = {}          # name -> {"password": str, "quota_bytes": int|None}
        self._tmp_dirs = []
        self._lock = threading.Lock()
        self.uid, self.gid, _ = mail_account()
        self._auth_gid = None
        if os.geteuid() == 0:   # auth runs as the internal user and reads passwd
            self._auth_gid = pwd.getpwnam(_service_users()[0]).pw_gid

    # -- users ------------------------------------------------------------

    def add_user(self, name, password=None, quota_bytes=None, max_mail_size=None):
        """Create (or update) a user, home owned by the mail account.
        Returns the password (random when not given).  Works while the
        server runs: a new user at once, a changed one within about a
        second (see _write_passwd).  quota_bytes, max_mail_size (the
        largest message the user may receive: APPEND answers NO [LIMIT]):
        local only."""
        if password is None:
            password = _random_password()
        if not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*", name):
            raise ValueError(f"user name {name!r}: use letters, digits, . _ + -")
        if not password or any(c in password for c in ":\n\r\0"):
            raise ValueError(f"password {password!r} not usable in a passwd-file")
        if (quota_bytes is not None or max_mail_size is not None) and self.role != "local":
            raise ValueError("quota is only configured on the local server")
        with self._lock:
            self.users[name] = {"password": password, "quota_bytes": quota_bytes,
                                "max_mail_size": max_mail_size}
            home = self.home(name)
            os.makedirs(home, exist_ok=True)
            os.chown(home, self.uid, self.gid)
            os.chmod(home, 0o700)
            self._write_passwd(name)
        return password

    def set_quota(self, user, quota_bytes):
        """Set a user's storage limit in bytes (None or 0: no limit).  Takes
        effect for new sessions within about a second (see _write_passwd)."""
        if self.role != "local":
            raise ValueError("quota is only configured on the local server")
        with self._lock:
            self.users[user]["quota_bytes"] = quota_bytes
            self._write_passwd(user)

    def password(self, user):
        return self.users[user]["password"]

    def password_file(self, user):
        """Path of a 0600 file holding the user's password (no newline)."""
        path = os.path.join(os.path.dirname(self.dir), "secrets",
                            f"{self.role}-{user}.password")
        _write_file(path, self.password(user), mode=0o600)
        return path

    def home(self, user):
        return os.path.join(self.mail_root, user)

    def maildir(self, user):
        return os.path.join(self.home(user), "Maildir")

    def passwd_path(self, user):
        return os.path.join(self.passwd_dir, user)

    def _write_passwd(self, name):
        """Write passwd.d/NAME.  Dovecot's auth stats a passwd-file at most
        once a second (passwd_file_sync: last_sync_time == ioloop_time), so
        a change to a file it has already read may stay unseen until the
        next second: then we wait for that.  A new user gets a new file,
        which auth has never seen (path with %n): no wait."""
        u = self.users[name]
        extra = ""
        if self.role == "local":
            # storage=0 is "no limit"; it must be said, or Maildir++ quota
            # keeps the last limit it wrote into maildirsize.
            extra = f"userdb_quota_rule=*:storage={int(u['quota_bytes'] or 0)}B"
            if u.get("max_mail_size"):
                extra += f" userdb_quota_max_mail_size={int(u['max_mail_size'])}B"
        path = self.passwd_path(name)
        existed = os.path.exists(path)
        self._write_secret_file(
            path, f"{name}:{{PLAIN}}{u['password']}::::{self.home(name)}::{extra}\n")
        if existed and self.running:
            time.sleep(math.floor(time.time()) + 1.01 - time.time())

    def _write_secret_file(self, path, text):
        """0640 root:<dovecot group> as root, 0600 otherwise.  The mtime is
        moved forward so Dovecot notices even two rewrites in one second."""
        old = None
        try:
            old = os.stat(path).st_mtime
        except FileNotFoundError:
            pass
        if self._auth_gid is not None:
            _write_file(path, text, mode=0o640, gid=self._auth_gid)
        else:
            _write_file(path, text, mode=0o600)
        if old is not None:
            new = max(time.time(), old + 1)
            os.utime(path, (new, new))

    # -- Sieve and sendmail (local) ---------------------------------------

    def set_sieve(self, user, script_text, name="harness"):
        """Write ~/sieve/NAME.sieve and make it the active script."""
        home = self.home(user)
        sdir = os.path.join(home, "sieve")
        os.makedirs(sdir, exist_ok=True)
        os.chown(sdir, self.uid, self.gid)
        path = os.path.join(sdir, f"{name}.sieve")
        _write_file(path, script_text, mode=0o600, uid=self.uid, gid=self.gid)
        try:
            os.unlink(os.path.join(sdir, f"{name}.svbin"))
        except FileNotFoundError:
            pass
        link = os.path.join(home, ".dovecot.sieve")
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(f"sieve/{name}.sieve", tmp)
        os.lchown(tmp, self.uid, self.gid)
        os.replace(tmp, link)
        return path

    def sent_mail(self):
        """Messages handed to sendmail (vacation replies, redirects), oldest
        first: list of {"args": [str], "bytes": bytes}."""
        out = []
        if not self.sent_dir or not os.path.isdir(self.sent_dir):
            return out
        for entry in sorted(os.listdir(self.sent_dir)):
            if entry.startswith(".") or not entry.endswith(".eml"):
                continue
            base = os.path.join(self.sent_dir, entry[:-4])
            with open(base + ".eml", "rb") as f:
                data = f.read()
            try:
                with open(base + ".args") as f:
                    args = f.read().splitlines()
            except FileNotFoundError:
                args = []
            out.append({"args": args, "bytes": data})
        return out

    # -- names ------------------------------------------------------------

    def mailbox_name(self, path):
        """Map a "/"-separated folder path ("Archive/2024") to this server's
        name ("INBOX.Archive.2024" on a courier layout)."""
        if path.upper() == "INBOX":
            return "INBOX"
        return self.prefix + path.replace("/", self.separator)

    # -- lifecycle --------------------------------------------------------

    @property
    def running(self):
        return _pid_alive(self.pid)

    def _prepare(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.makedirs(self.mail_root, exist_ok=True)
        os.chmod(self.mail_root, 0o755)
        run = os.path.join(self.dir, "run")
        if len(run) + len("/base") > MAX_BASE_DIR:
            tmp = tempfile.mkdtemp(prefix=f"imapsynctest-{self.role}-", dir="/tmp")
            os.chmod(tmp, 0o755)
            self._tmp_dirs.append(tmp)
            if os.path.lexists(run):
                os.unlink(run)
            os.symlink(tmp, run)
            run = tmp
        else:
            os.makedirs(run, exist_ok=True)
        self.base_dir = os.path.join(run, "base")
        self.state_dir = os.path.join(self.dir, "state")
        if self.role == "local":
            self.master_user = MASTER_USER
            if self.master_password is None:
                self.master_password = _random_password()
            self.master_passwd_file = os.path.join(self.dir, "master-passwd")
            self._write_secret_file(self.master_passwd_file,
                                    f"{self.master_user}:{{PLAIN}}{self.master_password}\n")
            self.sent_dir = os.path.join(self.dir, "sent")
            os.makedirs(self.sent_dir, exist_ok=True)
            os.chown(self.sent_dir, self.uid, self.gid)
            self.sendmail_path = os.path.join(self.dir, "sendmail")
            _write_file(self.sendmail_path, _SENDMAIL.format(sent_dir=self.sent_dir),
                        mode=0o755)
        os.makedirs(self.passwd_dir, exist_ok=True)
        if self._auth_gid is not None:
            os.chown(self.passwd_dir, 0, self._auth_gid)
            os.chmod(self.passwd_dir, 0o750)
        else:
            os.chmod(self.passwd_dir, 0o700)

    def _write_conf(self):
        internal_user, internal_group, login_user = _service_users()
        root = os.geteuid() == 0
        plugins = "listescape quota" if self.role == "local" else "listescape"
        text = _COMMON_CONF.format(
            role=self.role, dir=self.dir, base_dir=self.base_dir,
            state_dir=self.state_dir, log=self.log_path, host=self.host,
            protocols="imap lmtp" if self.role == "local" else "imap",
            internal_user=internal_user, internal_group=internal_group,
            login_user=login_user, cert=self.cert_file, key=self.key_file,
            dh=DH_FILE, uid=self.uid, gid=self.gid, mail_plugins=plugins,
            passwd=os.path.join(self.passwd_dir, "%n"), imap_port=self.imap_port,
            imaps_port=self.imaps_port,
            chroot="" if root else "  chroot =\n")
        if not root:
            text += _NONROOT_CONF
        if self.role == "remote":
            text += _REMOTE_NS[self.layout]
        else:
            text += _LOCAL_CONF.format(master_passwd=self.master_passwd_file,
                                       sendmail=self.sendmail_path,
                                       host=self.host, lmtp_port=self.lmtp_port)
        if self.extra_conf:
            text += "# extra_conf\n" + self.extra_conf.replace("@DIR@", self.dir)
        _write_file(self.conf, text)

    def start(self, attempts=5):
        """Start with fresh ports; retry when a port was taken meanwhile."""
        if self.running:
            return
        self._prepare()
        dovecot = _which("dovecot", "DOVECOT")
        for attempt in range(attempts):
            n = 3 if self.role == "local" else 2
            ports = free_ports(n)
            self.imap_port, self.imaps_port = ports[0], ports[1]
            self.lmtp_port = ports[2] if self.role == "local" else None
            self._write_conf()
            out = os.path.join(self.dir, "dovecot.stdout")
            err = os.path.join(self.dir, "dovecot.stderr")
            with open(out, "ab") as o, open(err, "wb") as e:
                # The master keeps the caller's stdio: give it files.
                # TZ=UTC: INTERNALDATEs come back as +0000 (Maildir keeps
                # the instant, not the zone), whatever the host's zone.
                r = subprocess.run([dovecot, "-c", self.conf],
                                   stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                   env=dict(os.environ, TZ="UTC"), timeout=60)
            if r.returncode == 0:
                break
            with open(err, errors="replace") as f:
                msg = f.read().strip()
            if "Address already in use" in msg and attempt + 1 < attempts:
                continue
            raise HarnessError(f"dovecot ({self.role}) failed to start "
                               f"(exit {r.returncode}): {msg}\n{self.log_tail()}")
        pid_file = os.path.join(self.base_dir, "master.pid")
        deadline = time.monotonic() + 20
        while True:
            try:
                with open(pid_file) as f:
                    self.pid = int(f.read().strip())
                break
            except (FileNotFoundError, ValueError):
                if time.monotonic() > deadline:
                    raise HarnessError(f"dovecot ({self.role}) wrote no "
                                       f"{pid_file}\n{self.log_tail()}") from None
                time.sleep(0.02)
        for port in self.ports():
            self._wait_port(port, deadline)

    def ports(self):
        return [p for p in (self.imap_port, self.imaps_port, self.lmtp_port) if p]

    def _wait_port(self, port, deadline):
        while True:
            try:
                socket.create_connection((self.host, port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or not self.running:
                    raise HarnessError(f"dovecot ({self.role}) not listening on "
                                       f"{port}\n{self.log_tail()}") from None
                time.sleep(0.02)

    def stop(self, timeout=10):
        """doveadm stop; SIGKILL the master (and its children) if it hangs."""
        _stop_instance(self.conf, self.pid, timeout)
        self.pid = None
        for d in self._tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._tmp_dirs = []

    def state(self):
        return {"role": self.role, "conf": self.conf, "pid": self.pid,
                "tmp_dirs": list(self._tmp_dirs)}

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def doveadm(self, *args, check=True):
        """Run `doveadm -c CONF ARGS...`; returns CompletedProcess (text)."""
        doveadm = _which("doveadm", "DOVEADM")
        r = subprocess.run([doveadm, "-c", self.conf, *args],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise HarnessError(f"doveadm {' '.join(args)}: exit {r.returncode}: "
                               f"{r.stderr.strip()}")
        return r


def stop_servers(servers):
    """Stop servers in parallel (a Dovecot master takes ~1 s to exit)."""
    threads = [threading.Thread(target=s.stop) for s in servers if s.running]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers:           # pid bookkeeping and temp dirs, now quick
        s.stop()


def stop_pairs(pairs):
    """Stop several pairs in parallel."""
    threads = [threading.Thread(target=p.stop) for p in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _stop_instance(conf, pid, timeout=10):
    if pid and not _pid_is_dovecot(pid):
        pid = None              # gone, or the number was reused
    if not pid:
        return
    doveadm = shutil.which("doveadm", path=SBIN_PATH)
    proc = None
    if doveadm and os.path.exists(conf):
        # doveadm stop signals the master, then polls it once a second: we
        # poll faster ourselves and do not wait for doveadm's next look.
        proc = subprocess.Popen([doveadm, "-c", conf, "stop"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    else:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc is not None:
        if proc.poll() is None:
            proc.kill()         # only waiting; it ignores SIGTERM meanwhile
        proc.wait()
    if _pid_alive(pid):
        for victim in _children_of(pid) + [pid]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


# --------------------------------------------------------------------------
# cleanup on exit and on signals

_live = set()
_live_lock = threading.Lock()
_handlers_installed = False


def _stop_all():
    with _live_lock:
        pairs = list(_live)
    for pair in pairs:
        try:
            pair.stop()
        except Exception as e:          # keep stopping the others
            print(f"dovecot.py: stopping {pair.dir}: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    # Unwind with-blocks and finally-clauses; atexit then stops the rest.
    raise SystemExit(128 + signum)


def install_cleanup_handlers():
    """atexit, plus SIGTERM/SIGHUP -> SystemExit so with-blocks unwind (only
    where no handler is set yet; SIGINT already raises KeyboardInterrupt)."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


# --------------------------------------------------------------------------
# the pair

def _default_parent_dir():
    top = os.environ.get("TOP_BUILDDIR")
    if top:
        parent = os.path.join(top, "tests", "run")
        if os.geteuid() != 0 or _traversable_by_others(parent):
            return parent
    return tempfile.gettempdir()


class DovecotPair:
    """Two Dovecot instances, .remote and .local.  A context manager:
    started on __enter__, stopped on __exit__ (and at exit or on
    SIGTERM/SIGHUP if the process dies early).

    work_dir     where everything goes; default: a fresh directory under
                 $TOP_BUILDDIR/tests/run (or the temp dir), removed after a
                 clean exit unless keep=True or $IMAPSYNC_TEST_KEEP is set.
    layout       "default" or "courier" (remote namespace INBOX. and ".").
    remote_cert  "good" or "wrong" (certificate for DNS:wrong.example).
    remote_extra_conf  text appended to the remote's dovecot.conf, e.g.
                 "namespace inbox { mailbox X { special_use = \\Sent } }"
                 or a public namespace; "@DIR@" is the remote's directory.
    """

    def __init__(self, work_dir=None, layout="default", remote_cert="good",
                 keep=None, name="pair", remote_extra_conf=""):
        if remote_cert not in ("good", "wrong"):
            raise ValueError(f"remote_cert {remote_cert!r}")
        self._auto_dir = work_dir is None
        if work_dir is None:
            parent = _default_parent_dir()
            os.makedirs(parent, exist_ok=True)
            work_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=parent)
        self.dir = os.path.abspath(work_dir)
        self.layout = layout
        self.remote_cert = remote_cert
        self.remote_extra_conf = remote_extra_conf
        if keep is None:
            keep = bool(os.environ.get("IMAPSYNC_TEST_KEEP"))
        self.keep = keep
        self.master_user = MASTER_USER
        self.master_password = None
        self.remote = self.local = None
        self.ca_file = None

    # -- lifecycle --------------------------------------------------------

    def start(self):
        install_cleanup_handlers()
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0 and not _traversable_by_others(self.dir):
            raise HarnessError(f"{self.dir}: mail processes ({MAIL_ACCOUNT}) "
                               "cannot reach it (a parent lacks o+x)")
        stop_dir(self.dir)                      # a stale instance from before
        for sub in ("tls", "remote", "local", "secrets"):
            shutil.rmtree(os.path.join(self.dir, sub), ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "secrets"), mode=0o700)
        tls = make_tls(os.path.join(self.dir, "tls"))
        self.ca_file = tls["ca"]
        self.remote = DovecotServer("remote", os.path.join(self.dir, "remote"),
                                    tls, cert=self.remote_cert, layout=self.layout,
                                    extra_conf=self.remote_extra_conf)
        self.local = DovecotServer("local", os.path.join(self.dir, "local"), tls)
        with _live_lock:
            _live.add(self)
        try:
            self.remote.start()
            self.local.start()
        except BaseException:
            self.stop()
            raise
        self.master_password = self.local.master_password
        self._write_state()
        return self

    def stop(self):
        with _live_lock:
            _live.discard(self)
        stop_servers([s for s in (self.local, self.remote) if s is not None])
        self._write_state()

    def detach(self):
        """Leave the servers running after this process exits (CLI start)."""
        with _live_lock:
            _live.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if self._auto_dir and not self.keep and exc_type is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif exc_type is not None:
            print(f"# dovecot.py: kept {self.dir} for inspection", file=sys.stderr)
        return False

    def _write_state(self):
        if not os.path.isdir(self.dir):
            return
        state = {"servers": [s.state() for s in (self.remote, self.local) if s]}
        _write_file(os.path.join(self.dir, STATE_FILE), json.dumps(state, indent=1))

    # -- facts for shell scripts -----------------------------------------

    def env(self, user=None):
        """KEY -> value facts (see README); user: the user to describe
        (default: the first one added on each server)."""
        r, l = self.remote, self.local
        e = {
            "IMAPSYNCTEST_DIR": self.dir,
            "CA_FILE": self.ca_file,
            "REMOTE_HOST": r.host, "REMOTE_IMAP_PORT": r.imap_port,
            "REMOTE_IMAPS_PORT": r.imaps_port, "REMOTE_LAYOUT": r.layout,
            "REMOTE_SEPARATOR": r.separator, "REMOTE_PREFIX": r.prefix,
            "REMOTE_CONF": r.conf, "REMOTE_LOG": r.log_path, "REMOTE_PID": r.pid,
            "LOCAL_HOST": l.host, "LOCAL_IMAP_PORT": l.imap_port,
            "LOCAL_IMAPS_PORT": l.imaps_port, "LOCAL_LMTP_PORT": l.lmtp_port,
            "LOCAL_CONF": l.conf, "LOCAL_LOG": l.log_path, "LOCAL_PID": l.pid,
            "LOCAL_SENT_DIR": l.sent_dir,
            "MASTER_USER": self.master_user,
            "MASTER_PASSWORD": self.master_password,
            "MASTER_PASSWORD_FILE": self._secret("master", self.master_password),
        }
        for prefix, server in (("REMOTE", r), ("LOCAL", l)):
            name = user if user in server.users else next(iter(server.users), None)
            if name:
                e[f"{prefix}_USER"] = name
                e[f"{prefix}_PASSWORD"] = server.password(name)
                e[f"{prefix}_PASSWORD_FILE"] = server.password_file(name)
        return e

    def _secret(self, name, value):
        path = os.path.join(self.dir, "secrets", f"{name}.password")
        _write_file(path, value, mode=0o600)
        return path

    def write_env(self, path, user=None):
        lines = [f"{k}={shlex.quote(str(v))}\n"
                 for k, v in self.env(user).items() if v is not None]
        _write_file(path, "# Generated by tests/lib/dovecot.py\n" + "".join(lines),
                    mode=0o600)
        return path


def stop_dir(work_dir):
    """Stop the servers recorded in WORK_DIR/harness.json (if running)."""
    path = os.path.join(work_dir, STATE_FILE)
    try:
        with open(path) as f:
            state = json.load(f)
    except (FileNotFoundError, ValueError):
        return False
    live = [s for s in state.get("servers", []) if s.get("pid") and _pid_alive(s["pid"])]
    threads = [threading.Thread(target=_stop_instance, args=(s["conf"], s["pid"]))
               for s in live]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in state.get("servers", []):
        for d in s.get("tmp_dirs", []):
            shutil.rmtree(d, ignore_errors=True)
        s["pid"] = None
        s["tmp_dirs"] = []
    _write_file(path, json.dumps(state, indent=1))
    return bool(live)


# --------------------------------------------------------------------------
# IMAP helpers

def imap_utf7_encode(name):
    """Unicode folder name -> modified UTF-7 (RFC 3501 5.1.3)."""
    out, buf = [], []

    def flush():
        if buf:
            b64 = base64.b64encode("".join(buf).encode("utf-16-be")).decode()
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            buf.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def imap_utf7_decode(name):
    def dec(m):
        if not m.group(1):
            return "&"
        b64 = m.group(1).replace(",", "/")
        return base64.b64decode(b64 + "=" * (-len(b64) % 4)).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, name)


def imap_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mbox_arg(name):
    return imap_quote(imap_utf7_encode(name))


def tls_handshake(server, mode="imaps", server_hostname=None, ca_file=None,
                  timeout=10):
    """Connect to server over IMAPS or STARTTLS and verify its certificate
    against the harness CA with hostname checking.  Returns the peer
    certificate dict; raises ssl.SSLCertVerificationError on mismatch."""
    ctx = ssl_context(ca_file or server.ca_file)
    port = server.imaps_port if mode == "imaps" else server.imap_port
    sock = socket.create_connection((server.host, port), timeout=timeout)
    try:
        if mode == "starttls":
            f = sock.makefile("rb")
            f.readline()                                   # greeting
            sock.sendall(b"s STARTTLS\r\n")
            while True:
                line = f.readline()
                if not line:
                    raise HarnessError("connection closed during STARTTLS")
                if line.startswith(b"s "):
                    if not line.startswith(b"s OK"):
                        raise HarnessError(f"STARTTLS refused: {line!r}")
                    break
        elif mode != "imaps":
            raise ValueError(mode)
        tls = ctx.wrap_socket(sock, server_hostname=server_hostname or server.tls_name)
        cert = tls.getpeercert()
        tls.close()
        return cert
    finally:
        sock.close()


class _IMAP4_SSL(imaplib.IMAP4_SSL):
    """IMAP4_SSL that verifies the certificate against a given name."""

    def __init__(self, host, port, tls_name, **kw):
        self._tls_name = tls_name
        super().__init__(host, port, **kw)

    def _create_socket(self, timeout):
        sock = imaplib.IMAP4._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._tls_name)


def imap(server, user, password=None, master=False, tls="starttls",
         timeout=30, server_hostname=None):
    """A logged-in imaplib connection.  tls: "starttls", "imaps" or "none";
    the certificate is checked against the harness CA and server_hostname
    (default server.tls_name).  master=True logs in as USER*vmail with the
    master password (password, when given, replaces the master password:
    for negative tests)."""
    ctx = ssl_context(server.ca_file)
    name = server_hostname or server.tls_name
    if tls == "imaps":
        conn = _IMAP4_SSL(server.host, server.imaps_port, name,
                          ssl_context=ctx, timeout=timeout)
    elif tls in ("starttls", "none"):
        conn = imaplib.IMAP4(server.host, server.imap_port, timeout=timeout)
        if tls == "starttls":
            conn.host = name            # imaplib verifies against .host
            conn.starttls(ssl_context=ctx)
    else:
        raise ValueError(f"tls {tls!r}")
    # APPEND writes command and literal separately: without TCP_NODELAY each
    # one waits ~40 ms for a delayed ACK on loopback.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if master:
            if server.master_user is None:
                raise HarnessError(f"{server.role} has no master user")
            login = f"{user}*{server.master_user}"
            secret = password if password is not None else server.master_password
        else:
            login = user
            secret = password if password is not None else server.password(user)
        conn.login(imap_quote(login), secret)
    except BaseException:
        try:
            conn.shutdown()
        except OSError:
            pass
        raise
    return conn


def _logout(conn):
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def parse_internaldate(text):
    """INTERNALDATE string ("05-Jul-2024 10:11:12 +0200") -> aware datetime.
    Compare instants: Maildir keeps the time, not the zone, and the harness
    servers answer in UTC."""
    return dt.datetime.strptime(text.strip().replace("  ", " "),
                                "%d-%b-%Y %H:%M:%S %z")


def _internaldate_arg(value):
    if value is None:
        return None
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)      # naive: UTC
    if isinstance(value, str) and not value.startswith('"'):
        return '"' + value + '"'
    return imaplib.Time2Internaldate(value)


def create_folder(conn, name):
    """CREATE unless it exists (ALREADYEXISTS is fine)."""
    if name.upper() == "INBOX":
        return
    typ, data = conn._simple_command("CREATE", _mbox_arg(name))
    if typ != "OK" and b"[ALREADYEXISTS]" not in b" ".join(
            d for d in data if isinstance(d, bytes)):
        raise imaplib.IMAP4.error(f"CREATE {name}: {data}")


def append(conn, folder, message, flags=(), internaldate=None):
    """APPEND raw bytes exactly as given (imaplib.append would rewrite bare
    LF/CR to CRLF).  Returns the APPENDUID uid or None."""
    flag_arg = "(" + " ".join(flags) + ")" if flags else None
    conn.literal = bytes(message)
    typ, data = conn._simple_command("APPEND", _mbox_arg(folder), flag_arg,
                                     _internaldate_arg(internaldate))
    if typ != "OK":
        raise imaplib.IMAP4.error(f"APPEND {folder}: {typ} {data}")
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", b" ".join(
        d for d in data if isinstance(d, bytes)))
    return int(m.group(1)) if m else None


def seed(server, user, folder, messages, master=False, tls="starttls"):
    """APPEND messages into user's folder (created if needed).  Each message
    is bytes or a dict {"bytes", "flags": [..], "internaldate": datetime,
    time tuple, epoch or INTERNALDATE string}.  Returns the new UIDs."""
    conn = imap(server, user, master=master, tls=tls)
    try:
        create_folder(conn, folder)
        uids = []
        for m in messages:
            if isinstance(m, (bytes, bytearray)):
                m = {"bytes": m}
            uids.append(append(conn, folder, m["bytes"], m.get("flags", ()),
                               m.get("internaldate")))
        return uids
    finally:
        _logout(conn)


_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_FETCH_DATE = re.compile(rb'\bINTERNALDATE "([^"]*)"')


def read_mailbox(server, user, folder, master=False, tls="starttls"):
    """Every message of a folder (EXAMINE, so nothing changes), by UID:
    list of {"uid", "bytes", "flags" (sorted, no \\Recent), "internaldate"
    (as the server returns it)}."""
    conn = imap(server, user, master=master, tls=tls)
    try:
        typ, data = conn.select(_mbox_arg(folder), readonly=True)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"EXAMINE {folder}: {data}")
        if int(data[0]) == 0:
            return []
        typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"UID FETCH {folder}: {data}")
        msgs, cur = [], None
        for item in data:
            if isinstance(item, tuple):
                cur = {"meta": item[0], "bytes": item[1]}
                msgs.append(cur)
            elif isinstance(item, bytes) and cur is not None and not item[:1].isdigit():
                cur["meta"] += b" " + item       # the part after the literal
            else:
                cur = None                       # unsolicited FETCH, no body
        out = []
        for m in msgs:
            meta = m["meta"]
            uid, flags, date = (_FETCH_UID.search(meta), _FETCH_FLAGS.search(meta),
                                _FETCH_DATE.search(meta))
            if not (uid and flags and date):
                raise HarnessError(f"cannot parse FETCH response {meta!r}")
            out.append({
                "uid": int(uid.group(1)),
                "bytes": m["bytes"],
                "flags": sorted(f for f in flags.group(1).decode().split()
                                if f != "\\Recent"),
                "internaldate": date.group(1).decode(),
            })
        out.sort(key=lambda m: m["uid"])
        return out
    finally:
        _logout(conn)


def _list_tokens(line):
    """Tokens of a LIST response: (flags) delimiter name."""
    toks, i = [], 0
    while i < len(line):
        c = line[i]
        if c == " ":
            i += 1
        elif c == "(":
            j = line.index(")", i)
            toks.append(line[i + 1:j].split())
            i = j + 1
        elif c == '"':
            j, buf = i + 1, []
            while line[j] != '"':
                if line[j] == "\\":
                    j += 1
                buf.append(line[j])
                j += 1
            toks.append("".join(buf))
            i = j + 1
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            toks.append(line[i:j])
            i = j
    return toks


def list_mailboxes(server, user, master=False, pattern="*", tls="starttls"):
    """LIST "" pattern: list of {"name" (Unicode), "raw" (modified UTF-7),
    "delimiter" (str or None), "flags" [..]}, in server order."""
    conn = imap(server, user, master=master, tls=tls)
    try:
        typ, data = conn.list('""', imap_quote(pattern))
        if typ != "OK":
            raise imaplib.IMAP4.error(f"LIST: {data}")
        out = []
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):      # name sent as a literal
                toks = _list_tokens(item[0].decode().rsplit("{", 1)[0].strip())
                toks.append(item[1].decode())
            else:
                toks = _list_tokens(item.decode())
            flags, delim, raw = toks[0], toks[1], toks[2]
            out.append({"name": imap_utf7_decode(raw), "raw": raw,
                        "delimiter": None if delim == "NIL" else delim,
                        "flags": flags})
        return out
    finally:
        _logout(conn)


def list_folders(server, user, master=False):
    """Sorted Unicode names of user's folders."""
    return sorted(m["name"] for m in list_mailboxes(server, user, master=master))


def make_message(i, size=None, date=None, subject=None,
                 sender="Sender {i} <sender{i}@example.org>",
                 to="Alice <alice@example.test>"):
    """An RFC 5322 message (CRLF line ends, unique Message-ID).  With size,
    the body is padded so the message is exactly that many bytes (when the
    headers leave room)."""
    if date is None:
        date = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i)
    elif date.tzinfo is None:
        date = date.replace(tzinfo=dt.timezone.utc)
    subject = subject if subject is not None else f"Test message {i}"
    if not subject.isascii():
        subject = email.header.Header(subject, "utf-8").encode()
    head = [
        f"From: {sender.format(i=i)}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {email.utils.format_datetime(date)}",
        f"Message-ID: <{uuid.uuid4().hex}.{i}@imapsync-task.test>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
    ]
    body = [f"This is test message number {i}."]
    text = "\r\n".join(head) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
    if size is not None:
        need = size - len(text)
        pad = []
        while need >= 78:
            pad.append("x" * 76)
            need -= 78
        if need >= 3:
            pad.append("y" * (need - 2))
            need = 0
        if need > 0:        # 1 or 2 bytes left: lengthen the first body line
            body[0] += "." * need
        text = ("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(body + pad) + "\r\n")
    return text.encode()


# --------------------------------------------------------------------------
# demo data and the command line

DEMO_USER = "alice"


def seed_demo(pair):
    """remote alice: 20 messages in INBOX (every third \\Seen), Sent,
    Archive/2024 and Entwürfe; local alice: an empty mailbox."""
    r, l = pair.remote, pair.local
    if DEMO_USER not in r.users:
        r.add_user(DEMO_USER)
    if DEMO_USER not in l.users:
        l.add_user(DEMO_USER)
    base = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc)

    def msgs(first, n, flags, subject):
        out = []
        for k in range(first, first + n):
            when = base + dt.timedelta(days=k)
            out.append({"bytes": make_message(k, date=when, subject=f"{subject} {k}",
                                              size=600 + 97 * k),
                        "flags": flags(k), "internaldate": when})
        return out
    seed(r, DEMO_USER, "INBOX",
         msgs(1, 20, lambda k: (["\\Seen"] if k % 3 == 0 else [])
              + (["\\Flagged"] if k % 7 == 0 else []), "Hello"))
    seed(r, DEMO_USER, r.mailbox_name("Sent"), msgs(21, 3, lambda k: ["\\Seen"], "Re:"))
    seed(r, DEMO_USER, r.mailbox_name("Archive/2024"),
         msgs(24, 5, lambda k: ["\\Seen"], "Archived"))
    seed(r, DEMO_USER, r.mailbox_name("Entwürfe"),
         msgs(29, 2, lambda k: ["\\Draft"], "Entwurf"))


def describe(pair, env_file=None):
    r, l = pair.remote, pair.local
    e = pair.env()
    lines = [
        f"Dovecot pair in {pair.dir}",
        f"  remote  imap://{r.host}:{r.imap_port} (STARTTLS)  "
        f"imaps://{r.host}:{r.imaps_port}  layout={r.layout}",
        f"  local   imap://{l.host}:{l.imap_port} (STARTTLS)  "
        f"imaps://{l.host}:{l.imaps_port}  lmtp {l.host}:{l.lmtp_port}",
        f"  CA      {pair.ca_file}",
        f"  master  {pair.master_user} (log in as USER*{pair.master_user}), "
        f"password in {e['MASTER_PASSWORD_FILE']}",
    ]
    for label, s in (("remote", r), ("local", l)):
        for u in s.users:
            lines.append(f"  {label:6}  user {u}  password {s.password(u)}")
    if env_file:
        lines.append(f"  env     {env_file}  (. it in a shell)")
    lines.append(f"  try     openssl s_client -quiet -connect {r.host}:{r.imaps_port} "
                 f"-CAfile {pair.ca_file}")
    lines.append(f"  logs    {r.log_path}  {l.log_path}")
    return "\n".join(lines)


def _start_from_args(args):
    pair = DovecotPair(work_dir=args.dir, layout=args.layout,
                       remote_cert=args.remote_cert, keep=True)
    pair.start()
    try:
        if args.seed_demo:
            seed_demo(pair)
        env_file = args.env_file or os.path.join(pair.dir, "env")
        pair.write_env(env_file)
    except BaseException:
        pair.stop()
        raise
    return pair, env_file


def main(argv=None):
    ap = argparse.ArgumentParser(prog="dovecot.py",
                                 description="throwaway Dovecot pair for imapsync-task")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name, hlp in (("serve", "start, stay up until SIGINT/SIGTERM, stop"),
                      ("start", "start in the background and return")):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--dir", required=(name == "start"),
                       help="work directory (serve: default a temp dir)")
        p.add_argument("--seed-demo", action="store_true", help="seed demo mail")
        p.add_argument("--env-file", help="where to write KEY=value facts "
                       "(default DIR/env)")
        p.add_argument("--layout", choices=["default", "courier"], default="default")
        p.add_argument("--remote-cert", choices=["good", "wrong"], default="good")
    p = sub.add_parser("stop", help="stop a pair started with start")
    p.add_argument("--dir", required=True)
    args = ap.parse_args(argv)

    if args.cmd == "stop":
        stop_dir(args.dir)
        return 0

    tmp = None
    if args.cmd == "serve" and not args.dir:
        tmp = args.dir = tempfile.mkdtemp(prefix="imapsync-demo-")
    pair, env_file = _start_from_args(args)
    print(describe(pair, env_file), flush=True)
    if args.cmd == "start":
        pair.detach()
        print(f"stop with: {sys.executable} {os.path.abspath(__file__)} "
              f"stop --dir {shlex.quote(pair.dir)}", flush=True)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    print("serving; Ctrl-C stops", flush=True)
    try:
        while not stop.wait(3600):
            pass
    finally:
        pair.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
