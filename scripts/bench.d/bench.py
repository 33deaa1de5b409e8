#!/usr/bin/python3
"""scripts/bench driver: imapsync-task against its peers on one Dovecot pair.

Run by scripts/bench (which installs the tools and builds the worker);
see docs/benchmarks.md for what it measures and how.  Nothing here is part
of `make check`.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # leave no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
sys.path.insert(0, HERE)

import dovecot  # noqa: E402
import corpus  # noqa: E402
import verify  # noqa: E402

DOVEADM = shutil.which("doveadm", path=dovecot.SBIN_PATH) or "doveadm"
TIME = "/usr/bin/time"             # GNU time (Debian: time)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


# --------------------------------------------------------------------------
# measuring a child

def timed(argv, env, cwd, logfile, timeout):
    """Run argv under GNU time; returns dict(rc, wall, cpu, rss_kb,
    timed_out).  Wall time is measured here; CPU (user + system) and peak
    RSS come from GNU time, which reports its child and the children that
    child waited for.  (wait4() in this process would report this Python's
    own RSS: the high-water mark survives fork and exec.)"""
    tfile = logfile + ".time"
    with open(logfile, "ab") as out:
        out.write(("$ " + " ".join(shlex.quote(a) for a in argv) + "\n").encode())
        out.flush()
        t0 = time.monotonic()
        p = subprocess.Popen([TIME, "-o", tfile, "-f", "%U %S %M"] + argv,
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             start_new_session=True)
        fired = []

        def kill():
            fired.append(True)
            os.killpg(p.pid, signal.SIGKILL)
        timer = threading.Timer(timeout, kill)
        timer.start()
        p.wait()                # blocking: Popen.wait(timeout) polls in 50 ms steps
        wall = time.monotonic() - t0
        timer.cancel()
        timed_out = bool(fired)
    cpu, rss = 0.0, 0
    try:
        with open(tfile) as f:
            last = [ln for ln in f.read().splitlines() if ln.strip()][-1].split()
        cpu, rss = float(last[0]) + float(last[1]), int(last[2])
    except (OSError, IndexError, ValueError):
        pass
    return {"rc": p.returncode, "wall": wall, "cpu": cpu, "rss_kb": rss,
            "timed_out": timed_out}


# --------------------------------------------------------------------------
# the tools

class Tool:
    name = "?"
    label = "?"
    scenarios = ("all", "inbox")
    lmtp = False                # delivered through LMTP: trace headers, no dates
    adds = ()                   # header fields the tool adds to each message
    ok_codes = (0,)

    def __init__(self, b):
        self.b = b

    def setup(self, ctx):
        pass

    def argv(self, ctx, phase):
        raise NotImplementedError


class Ours(Tool):
    def __init__(self, b, name, label, folders, delivery, scenarios):
        super().__init__(b)
        self.name, self.label = name, label
        self.folders, self.delivery, self.scenarios = folders, delivery, scenarios
        self.lmtp = delivery == "lmtp"

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        etc = os.path.join(d, "etc")
        os.makedirs(os.path.join(etc, "tasks"), exist_ok=True)
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        l = b.pair.local
        write(os.path.join(etc, "imapsync-task.conf"),
              "[local]\n"
              f"host = {l.host}\nport = {l.imap_port}\nsecurity = starttls\n"
              "master_user = vmail\nmaster_separator = *\n"
              f"master_password_file = {etc}/master.pwd\n"
              f"ca_file = {b.pair.ca_file}\n"
              f"lmtp = {l.host}:{l.lmtp_port}\n", 0o644)
        write(os.path.join(etc, "master.pwd"), b.pair.master_password + "\n")
        write(os.path.join(etc, "tasks", f"{ctx['user']}.pwd"), ctx["rpass"] + "\n")
        r = b.pair.remote
        write(os.path.join(etc, "tasks", f"{ctx['user']}.ini"),
              "[task]\n"
              f"local_user = {ctx['user']}\nfolders = {self.folders}\n"
              f"delivery = {self.delivery}\ninterval = manual\n"
              "[remote]\n"
              f"host = {r.host}\nport = {r.imaps_port}\nsecurity = tls\n"
              f"user = {ctx['user']}\nca_file = {b.pair.ca_file}\n", 0o644)
        ctx["etc"] = etc

    def argv(self, ctx, phase):
        # BENCH_OURS_PREFIX (e.g. "strace -f -c -o FILE"): for profiling
        # only; it changes what GNU time measures.
        prefix = shlex.split(os.environ.get("BENCH_OURS_PREFIX", ""))
        return prefix + [self.b.worker, "--config-dir", ctx["etc"], "--state-dir",
                os.path.join(ctx["dir"], "state"), "run", ctx["user"]]


class Mbsync(Tool):
    name, label = "mbsync", "mbsync (isync)"
    adds = ("X-TUID",)          # mbsync's own marker to find what it appended

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        r, l = b.pair.remote, b.pair.local
        rp = os.path.join(d, "remote.pwd")
        mp = os.path.join(d, "master.pwd")
        write(rp, ctx["rpass"])
        write(mp, b.pair.master_password)
        os.makedirs(os.path.join(d, "syncstate"), exist_ok=True)
        patterns = "INBOX" if ctx["scenario"] == "inbox" else "*"
        # The certificates name IP:127.0.0.1 and DNS:localhost; mbsync only
        # matches DNS names: Host localhost (resolves to 127.0.0.1 here).
        write(os.path.join(d, "mbsyncrc"),
              f"""IMAPAccount remote
Host localhost
Port {r.imaps_port}
User "{ctx['user']}"
PassCmd "cat {rp}"
SSLType IMAPS
CertificateFile {b.pair.ca_file}

IMAPStore remote
Account remote

IMAPAccount local
Host localhost
Port {l.imap_port}
User "{ctx['user']}*{b.pair.master_user}"
PassCmd "cat {mp}"
SSLType STARTTLS
CertificateFile {b.pair.ca_file}

IMAPStore local
Account local

Channel pull
Far :remote:
Near :local:
Patterns {patterns}
Sync Pull
Create Near
Remove None
Expunge None
CopyArrivalDate yes
SyncState {d}/syncstate/
""")
        ctx["rc"] = os.path.join(d, "mbsyncrc")

    def argv(self, ctx, phase):
        return ["mbsync", "-c", ctx["rc"], "-q", "pull"]


class Dsync(Tool):
    ok_codes = (0,)

    def __init__(self, b, mode):
        super().__init__(b)
        self.mode = mode
        self.name = "doveadm-backup" if mode == "backup" else "doveadm-sync1"
        self.label = ("doveadm backup -R (imapc)" if mode == "backup"
                      else "doveadm sync -1 -R (imapc)")

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        r = b.pair.remote
        # Dovecot's documented imapc migration settings (rfc822.size and
        # fetch-headers, mail_prefetch_count = 20); mail_fsync stays default.
        write(os.path.join(d, "dsync.conf"),
              f"!include {b.pair.local.conf}\n"
              f"imapc_host = {r.host}\nimapc_port = {r.imaps_port}\n"
              "imapc_ssl = imaps\nimapc_ssl_verify = yes\n"
              f"imapc_user = {ctx['user']}\nimapc_password = {ctx['rpass']}\n"
              "imapc_features = rfc822.size fetch-headers\n"
              "mail_prefetch_count = 20\n"
              f"ssl_client_ca_file = {b.pair.ca_file}\n")
        ctx["conf"] = os.path.join(d, "dsync.conf")

    def argv(self, ctx, phase):
        a = [DOVEADM, "-c", ctx["conf"], self.mode]
        if self.mode == "sync":
            a.append("-1")
        a += ["-R", "-u", ctx["user"]]
        if ctx["scenario"] == "inbox":
            a += ["-m", "INBOX"]
        return a + ["imapc:"]


class Fetchmail(Tool):
    name, label = "fetchmail", "fetchmail (LMTP)"
    scenarios = ("inbox",)
    lmtp = True
    ok_codes = (0, 1)            # 1: no new mail

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        r, l = b.pair.remote, b.pair.local
        write(os.path.join(d, "fetchmailrc"),
              "set no syslog\n"
              f"poll localhost via {r.host} service {r.imaps_port} with proto IMAP\n"
              f"  user \"{ctx['user']}\" there with password \"{ctx['rpass']}\" "
              f"is \"{ctx['user']}\" here\n"
              f"  ssl sslcertck sslcertfile \"{b.pair.ca_file}\" sslcommonname localhost\n"
              "  folder INBOX\n"
              "  keep\n"
              f"  smtphost {l.host}/{l.lmtp_port} lmtp\n"
              f"  smtpname \"{ctx['user']}\"\n")
        ctx["rc"] = os.path.join(d, "fetchmailrc")

    def argv(self, ctx, phase):
        d = ctx["dir"]
        return ["fetchmail", "-f", ctx["rc"], "--idfile", os.path.join(d, "fetchids"),
                "--pidfile", os.path.join(d, "fetchmail.pid")]


class Getmail(Tool):
    name, label = "getmail6", "getmail6 (LMTP)"
    scenarios = ("inbox",)
    lmtp = True
    adds = ("X-getmail-retrieved-from-mailbox",)

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        r, l = b.pair.remote, b.pair.local
        rp = os.path.join(d, "remote.pwd")
        write(rp, ctx["rpass"])
        # Unseen only, marked \Seen afterwards (like ours and fetchmail):
        # imap_search = UNSEEN, "delete" that only sets \Seen.
        write(os.path.join(d, "getmailrc"),
              "[retriever]\n"
              "type = SimpleIMAPSSLRetriever\n"
              f"server = localhost\nport = {r.imaps_port}\n"
              f"username = {ctx['user']}\n"
              f"password_command = (\"/bin/cat\", \"{rp}\")\n"
              f"ca_certs = {b.pair.ca_file}\n"
              "mailboxes = (\"INBOX\",)\n"
              "imap_search = UNSEEN\n"
              "imap_on_delete = (\\Seen)\n"
              "[destination]\n"
              "type = MDA_lmtp\n"
              f"host = {l.host}\nport = {l.lmtp_port}\n"
              f"override = {ctx['user']}\n"
              "[options]\n"
              "verbose = 0\nread_all = true\ndelete = true\n"
              "received = false\ndelivered_to = false\n")
        ctx["rc"] = os.path.join(d, "getmailrc")

    def argv(self, ctx, phase):
        return ["getmail", "--getmaildir", ctx["dir"], "--rcfile", ctx["rc"]]


class Imapsync(Tool):
    name, label = "imapsync", "imapsync"

    def setup(self, ctx):
        b, d = self.b, ctx["dir"]
        write(os.path.join(d, "remote.pwd"), ctx["rpass"] + "\n")
        write(os.path.join(d, "master.pwd"), b.pair.master_password + "\n")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)

    def argv(self, ctx, phase):
        b, d = self.b, ctx["dir"]
        r, l = b.pair.remote, b.pair.local
        a = [b.imapsync,
             "--host1", "localhost", "--port1", str(r.imaps_port), "--ssl1",
             "--user1", ctx["user"], "--passfile1", os.path.join(d, "remote.pwd"),
             "--sslargs1", f"SSL_ca_file={b.pair.ca_file}",
             "--sslargs1", "SSL_verify_mode=1",
             "--host2", "localhost", "--port2", str(l.imap_port), "--tls2",
             "--user2", f"{ctx['user']}*{b.pair.master_user}",
             "--passfile2", os.path.join(d, "master.pwd"),
             "--sslargs2", f"SSL_ca_file={b.pair.ca_file}",
             "--sslargs2", "SSL_verify_mode=1",
             "--nolog", "--noreleasecheck", "--tmpdir", os.path.join(d, "tmp")]
        if ctx["scenario"] == "inbox":
            a += ["--folder", "INBOX"]
        return a


# --------------------------------------------------------------------------
# the run

PHASES = ("initial", "rerun", "delta")
SLOW = ("fetchmail", "getmail6", "imapsync")     # skipped above --slow-max


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.worker = os.path.abspath(args.worker)
        self.imapsync = args.imapsync
        self.results = []
        self.meta = {}
        self.pair = None

    # -- remote mailboxes ---------------------------------------------------

    def stage(self, n):
        """Write the corpora for n messages once; returns dict kind ->
        (records, delta_records, dir, delta_dir)."""
        out = {}
        delta_n = max(1, n // 100)
        for kind in ("all", "inbox"):
            t0 = time.monotonic()
            msgs, delta = corpus.generate(self.args.seed, n, self.args.folders, kind,
                                          delta_n)
            base = os.path.join(self.work, "corpus", f"{kind}-{n}")
            shutil.rmtree(base, ignore_errors=True)
            d0, d1 = os.path.join(base, "Maildir"), os.path.join(base, "delta")
            recs = [m.record() for m in msgs]
            drecs = [m.record() for m in delta]
            corpus.write_maildir(d0, msgs, self.args.seed, dovecot.imap_utf7_encode)
            corpus.write_maildir(d1, delta, self.args.seed, dovecot.imap_utf7_encode,
                                 first_idx=5_000_000, new=(kind == "inbox"))
            total = sum(r["size"] for r in recs)
            log(f"corpus {kind} n={n}: {len(recs)} messages, {total / 1e6:.1f} MB, "
                f"delta {len(drecs)} ({sum(r['size'] for r in drecs) / 1e6:.2f} MB), "
                f"{len(set(r['folder'] for r in recs))} folder(s), "
                f"{time.monotonic() - t0:.1f} s")
            out[kind] = (recs, drecs, d0, d1)
        return out

    def clone(self, src, dst):
        """Copy a staged Maildir: message files hard-linked (Dovecot never
        rewrites one), the rest copied; owned by the mail account."""
        uid, gid = self.pair.remote.uid, self.pair.remote.gid
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            target = os.path.normpath(os.path.join(dst, rel))
            os.makedirs(target, exist_ok=True)
            os.chown(target, uid, gid)
            leaf = os.path.basename(dirpath)
            for f in filenames:
                s, t = os.path.join(dirpath, f), os.path.join(target, f)
                if leaf in ("cur", "new"):
                    os.link(s, t)
                else:
                    shutil.copy2(s, t)
                os.chown(t, uid, gid)

    def remote_status(self, user):
        r = self.pair.remote.doveadm("mailbox", "status", "-u", user,
                                     "messages vsize", "*")
        total = 0
        for line in r.stdout.splitlines():
            m = re.search(r"messages=(\d+)", line)
            if m:
                total += int(m.group(1))
        return total

    # -- one tool, one scenario --------------------------------------------

    def run_tool(self, tool, kind, n, staged):
        recs, drecs, src, dsrc = staged[kind]
        user = f"{kind}{n}-{tool.name}"
        d = os.path.join(self.work, "tools", user)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        r, l = self.pair.remote, self.pair.local
        for s in (r, l):
            shutil.rmtree(s.home(user), ignore_errors=True)
        rpass = r.add_user(user)
        l.add_user(user)
        self.clone(src, r.maildir(user))
        seen = self.remote_status(user)           # indexes the remote copy
        if seen != len(recs):
            raise RuntimeError(f"{user}: remote has {seen} messages, expected {len(recs)}")
        ctx = {"user": user, "dir": d, "rpass": rpass, "scenario": kind}
        tool.setup(ctx)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin",
               "HOME": d, "LANG": "C.UTF-8", "TZ": "UTC"}
        logfile = os.path.join(self.work, "logs", f"{user}.log")
        expected = list(recs)
        for phase in PHASES:
            if phase == "delta":
                self.clone(dsrc, r.maildir(user))
                expected = recs + drecs
            copied = {"initial": recs, "rerun": [], "delta": drecs}[phase]
            os.sync()                              # start from clean page cache
            m = timed(tool.argv(ctx, phase), env, d, logfile, self.args.timeout)
            got = verify.read_maildir(l.maildir(user), dovecot.imap_utf7_decode,
                                      tool.adds)
            ok, summary, det = verify.compare(expected, got, lmtp=tool.lmtp)
            failed = m["timed_out"] or m["rc"] not in tool.ok_codes
            if failed:
                why = "TIMEOUT" if m["timed_out"] else f"exit {m['rc']}"
                summary = (f"FAILED ({why}); " + summary) if not ok else f"FAILED ({why})"
                ok = False
            res = {"n": n, "scenario": kind, "tool": tool.name, "label": tool.label,
                   "phase": phase, "messages": len(copied),
                   "bytes": sum(x["size"] for x in copied), **m,
                   "ok": ok, "verdict": summary, "problems": det["problems"][:12],
                   "added_headers": det["added_headers"], "lmtp": tool.lmtp}
            self.results.append(res)
            self.save()
            log(f"{kind:5} n={n} {tool.name:16} {phase:7} {m['wall']:8.2f} s "
                f"cpu {m['cpu']:7.2f} s rss {m['rss_kb'] / 1024:7.1f} MB rc {m['rc']} "
                f"{summary}")
            for p in det["problems"][:6]:
                log(f"    {p}")
        if not self.args.keep:
            for s in (r, l):
                shutil.rmtree(s.home(user), ignore_errors=True)
                os.makedirs(s.home(user), exist_ok=True)
                os.chown(s.home(user), s.uid, s.gid)

    def save(self):
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"meta": self.meta, "results": self.results}, f, indent=1)

    def tools(self, n):
        t = [Ours(self, "ours-all", "imapsync-task (folders = all)", "all", "append",
                  ("all",)),
             Ours(self, "ours-append", "imapsync-task (inbox, append)", "inbox",
                  "append", ("inbox",)),
             Ours(self, "ours-lmtp", "imapsync-task (inbox, lmtp)", "inbox", "lmtp",
                  ("inbox",)),
             Mbsync(self), Dsync(self, "backup"), Dsync(self, "sync"),
             Fetchmail(self), Getmail(self)]
        if self.imapsync:
            t.append(Imapsync(self))
        if self.args.tools:
            want = self.args.tools.split(",")
            t = [x for x in t if x.name in want]
        if self.args.slow_max and n > self.args.slow_max:
            t = [x for x in t if x.name not in SLOW]
        return t

    def run(self):
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.meta = machine_info(self)
        self.meta["started"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.pair = dovecot.DovecotPair(work_dir=os.path.join(self.work, "pair"), keep=True)
        self.pair.start()
        try:
            self.meta["fs"] = fs_info(self.pair.dir)
            for n in self.args.sizes:
                staged = self.stage(n)
                for kind in self.args.scenarios:
                    for tool in self.tools(n):
                        if kind in tool.scenarios:
                            self.run_tool(tool, kind, n, staged)
                shutil.rmtree(os.path.join(self.work, "corpus"), ignore_errors=True)
        finally:
            self.meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="seconds")
            self.meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
            self.save()
            self.pair.stop()


# --------------------------------------------------------------------------
# facts about the machine and the tools

def _out(argv, lines=1):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        text = (r.stdout or "") + (r.stderr or "")
        keep = [ln for ln in text.splitlines() if ln.strip()
                and "Running as root" not in ln]
        return " ".join(keep[:lines]).strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def machine_info(b):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    git = _out(["git", "-C", TOP, "rev-parse", "--short", "HEAD"])
    v = {
        "imapsync-task": f"{_out([b.worker, '--version'])} ({b.args.worker_source})",
        "Dovecot": _out(["dovecot", "--version"]),
        "mbsync": _out(["mbsync", "--version"]),
        "fetchmail": re.sub(r"^This is fetchmail release ([^+ ]+).*", r"fetchmail \1",
                            _out(["fetchmail", "-V"])),
        "getmail6": _out(["getmail", "--version"]),
        "imapsync": (_out([b.imapsync, "--version"]) if b.imapsync else "not run (IMAPSYNC unset)"),
        "OpenSSL": _out(["openssl", "version"]),
        "gcc": _out(["gcc", "--version"]),
        "Python": platform.python_version(),
    }
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": mem,
            "kernel": platform.release(), "os": _out(["cat", "/etc/debian_version"]),
            "git": git, "versions": v, "command": b.args.command,
            "sizes": b.args.sizes, "folders": b.args.folders, "seed": b.args.seed,
            "cflags": b.args.cflags, "slow_max": b.args.slow_max,
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def fs_info(path):
    r = subprocess.run(["df", "-T", path], capture_output=True, text=True)
    dev, fstype = "?", "?"
    lines = r.stdout.splitlines()
    if len(lines) > 1:
        parts = lines[1].split()
        dev, fstype = parts[0], parts[1]
    opts = "?"
    with open("/proc/mounts") as f:
        for line in f:
            p = line.split()
            if p[0] == dev:
                opts = p[3]
    journal = "?"
    if fstype.startswith("ext"):
        r = subprocess.run(["dumpe2fs", "-h", dev], capture_output=True, text=True)
        m = re.search(r"features:\s*(.*)", r.stdout)
        if m:
            journal = "journal" if "has_journal" in m.group(1) else "no journal"
        else:                   # no dumpe2fs access: a journal has a jbd2 entry
            base = os.path.basename(dev)
            try:
                jbd = os.listdir("/proc/fs/jbd2")
                journal = ("journal" if any(e.startswith(base + "-") or e == base
                                            for e in jbd) else "no journal")
            except OSError:
                pass
    return {"device": dev, "type": fstype, "options": opts, "journal": journal,
            "path": path}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--worker", required=True)
    ap.add_argument("--worker-source", default="work tree")
    ap.add_argument("--cflags", default="")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[2000])
    ap.add_argument("--folders", type=int, default=10)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--scenarios", type=lambda s: s.split(","), default=["all", "inbox"])
    ap.add_argument("--tools", default="")
    ap.add_argument("--imapsync", default="")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--slow-max", type=int, default=0,
                    help="run fetchmail, getmail6 and imapsync only up to this N")
    ap.add_argument("--command", default="scripts/bench")
    ap.add_argument("--doc", default="")
    ap.add_argument("--render-only", action="store_true",
                    help="write the doc from WORK/results.json")
    args = ap.parse_args()
    import report
    if not args.render_only:
        b = Bench(args)
        dovecot.install_cleanup_handlers()
        b.run()
    with open(os.path.join(args.work, "results.json")) as f:
        data = json.load(f)
    if args.doc:
        with open(args.doc, "w") as f:
            f.write(report.render(data))
        log(f"wrote {args.doc}")
    print(report.summary(data))
    # A peer's wrong copy is a finding; exit 1 only when ours failed.
    bad = [r for r in data["results"] if not r["ok"] and r["tool"].startswith("ours-")]
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
