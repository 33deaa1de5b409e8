"""Deterministic benchmark corpus for scripts/bench.

The same seed gives the same bytes, flags and dates on every machine
(random.Random only; no uuid, no clock).  A corpus is a list of message
records; the bytes are written straight into a Maildir of the remote
Dovecot (template user), the way Dovecot itself stores them: LF line ends,
",S=<size on disk>,W=<RFC822.SIZE>" in the name, flags after ":2,", the
INTERNALDATE as the file's mtime, keywords in dovecot-keywords.

Sizes: most messages are small text mails (log-normal, median ~6 KB), one
in five carries an attachment (log-normal, median ~150 KB, capped at
10 MB), and a few large messages (8, 20 and 50 MB) sit in INBOX.  Mean
about 55 KB, so 2,000 messages are ~110 MB plus the large ones.
"""

import base64
import datetime as dt
import hashlib
import math
import os
import random

KEYWORDS = ["$Forwarded", "NonJunk"]          # dovecot-keywords letters a, b
LARGE_SIZES = [8 << 20, 20 << 20, 50 << 20]

# name, share of the messages, flags profile
FOLDERS = [
    ("INBOX", 0.30, "inbox"),
    ("Sent", 0.15, "sent"),
    ("Archive/2023", 0.15, "archive"),
    ("Archive/2024", 0.12, "archive"),
    ("Archive", 0.07, "archive"),
    ("Lists/debian-devel", 0.10, "list"),
    ("Trash", 0.04, "archive"),
    ("Junk", 0.02, "archive"),
    ("Projekte/Übersicht", 0.02, "archive"),
    ("Drafts", 0.01, "drafts"),
]

_WORDS = ("the of and to in is that for it as with was on be by this are from "
          "at or an have not which but all were when we there can been has "
          "more if will one their about would what so no other into out "
          "mailbox server migration message folder dovecot import delivery "
          "invoice meeting tomorrow please attached report project budget "
          "schedule thanks regards review update change release version "
          "customer order shipping payment account password network backup").split()

_NAMES = ["Anna Berg", "Bruno Costa", "Chiara Dini", "David Evans", "Eva Fischer",
          "Frank Gallo", "Greta Hahn", "Hugo Ibsen", "Ines Jansen", "Jonas Keller",
          "Klara Lund", "Luca Moretti", "Maria Novak", "Nils Olsen", "Olga Petrova"]


def folder_plan(n, nfolders):
    """[(name, count, profile)] for n messages over nfolders folders."""
    if nfolders < 1:
        raise ValueError("at least one folder")
    base = list(FOLDERS[:nfolders])
    k = len(base)
    while len(base) < nfolders:
        k += 1
        base.append((f"Extra/Folder {k:02d}", 0.02, "archive"))
    total = sum(w for _, w, _ in base)
    counts = [max(1 if n >= nfolders else 0, int(n * w / total)) for _, w, _ in base]
    counts[0] += n - sum(counts)
    return [(name, c, prof) for (name, _, prof), c in zip(base, counts)]


def _size(rng):
    if rng.random() < 0.2:
        s = int(rng.lognormvariate(math.log(150_000), 1.0))
        return max(20_000, min(s, 10 << 20)), True
    s = int(rng.lognormvariate(math.log(6_000), 0.8))
    return max(900, min(s, 200_000)), False


def _flags(rng, profile, unseen_only):
    if unseen_only:
        return []
    f = []
    if profile == "drafts":
        return ["\\Draft"] + (["\\Seen"] if rng.random() < 0.5 else [])
    seen_p = {"inbox": 0.70, "sent": 1.0, "archive": 0.97, "list": 0.85}[profile]
    if rng.random() < seen_p:
        f.append("\\Seen")
    if profile != "sent" and rng.random() < 0.08:
        f.append("\\Answered")
    if rng.random() < 0.04:
        f.append("\\Flagged")
    if rng.random() < 0.03:
        f.append("$Forwarded")
    if profile == "inbox" and rng.random() < 0.02:
        f.append("NonJunk")
    return f


def _text_lines(rng, nbytes):
    out, have = [], 0
    while have < nbytes:
        words = rng.choices(_WORDS, k=rng.randint(8, 13))
        line = " ".join(words)
        out.append(line)
        have += len(line) + 2
    return out


def make_message(rng, seed, key, size, attach, date, subject, sender, to):
    """CRLF bytes of roughly `size` bytes."""
    tz = dt.timezone(dt.timedelta(minutes=rng.choice([-300, 0, 60, 120, 330])))
    hdate = (date - dt.timedelta(seconds=rng.randint(1, 900))).astimezone(tz)
    head = [
        f"Received: from mx.example.org (mx.example.org [192.0.2.{rng.randint(1, 254)}])"
        f"\r\n\tby imap.example.org with ESMTPS id {rng.getrandbits(64):016x}"
        f"\r\n\tfor <{to[1]}>; {hdate.strftime('%a, %d %b %Y %H:%M:%S %z')}",
        f"From: {sender[0]} <{sender[1]}>",
        f"To: {to[0]} <{to[1]}>",
        f"Subject: {subject}",
        f"Date: {hdate.strftime('%a, %d %b %Y %H:%M:%S %z')}",
        f"Message-ID: <{key}.{seed}@bench.imapsync-task.test>",
        "MIME-Version: 1.0",
    ]
    if not attach:
        head += ["Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: 8bit"]
        body = _text_lines(rng, max(0, size - 600))
        text = "\r\n".join(head) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
        return text.encode()
    bnd = f"=_bench_{rng.getrandbits(48):012x}"
    head.append(f'Content-Type: multipart/mixed; boundary="{bnd}"')
    intro = _text_lines(rng, rng.randint(200, 2000))
    raw_len = max(100, (size - 1200 - sum(len(x) + 2 for x in intro)) * 57 // 78)
    payload = base64.encodebytes(rng.randbytes(raw_len)).replace(b"\n", b"\r\n")
    name = f"attachment-{key}.{rng.choice(['pdf', 'jpg', 'zip', 'docx'])}"
    parts = ("\r\n".join(head) + "\r\n\r\n"
             "This is a multi-part message in MIME format.\r\n"
             f"--{bnd}\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n" + "\r\n".join(intro) + "\r\n"
             f"--{bnd}\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n"
             "Content-Transfer-Encoding: base64\r\n"
             f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n").encode()
    return parts + payload + f"\r\n--{bnd}--\r\n".encode()


class Msg:
    __slots__ = ("folder", "key", "flags", "mtime", "size", "lf_size", "sha",
                 "msgid", "data")

    def __init__(self, folder, key, flags, mtime, data):
        self.folder = folder
        self.key = key
        self.flags = sorted(flags)
        self.mtime = mtime
        self.size = len(data)                       # RFC822.SIZE (CRLF)
        lf = data.replace(b"\r\n", b"\n")
        self.lf_size = len(lf)
        self.sha = hashlib.sha256(lf).hexdigest()
        self.msgid = key
        self.data = lf                              # dropped once written

    def record(self):
        return {"folder": self.folder, "key": self.key, "flags": self.flags,
                "mtime": self.mtime, "size": self.size, "lf_size": self.lf_size,
                "sha": self.sha}


def generate(seed, n, nfolders, kind, delta_n, large=True):
    """(messages, delta) for kind "all" (n over nfolders folders, mixed
    flags) or "inbox" (n unseen messages in INBOX).  The delta are the
    messages added to the remote for the 1% delta phase."""
    rng = random.Random(f"{seed}:{kind}:{n}:{nfolders}")
    if kind == "inbox":
        plan = [("INBOX", n, "inbox")]
    else:
        plan = folder_plan(n, nfolders)
    t_lo = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    t_hi = dt.datetime(2024, 12, 31, tzinfo=dt.timezone.utc).timestamp()
    me = ("Alice Example", "alice@example.test")
    msgs = []
    serial = 0

    def one(folder, profile, when, size, attach, unseen_only, tag):
        nonlocal serial
        serial += 1
        key = f"{kind}-{tag}{serial:06d}"
        other = rng.choice(_NAMES)
        addr = (other, other.lower().replace(" ", ".") + "@example.org")
        sender, to = (me, addr) if profile in ("sent", "drafts") else (addr, me)
        subject = " ".join(rng.choices(_WORDS, k=rng.randint(3, 8))).capitalize()
        data = make_message(rng, seed, key, size, attach,
                            dt.datetime.fromtimestamp(when, dt.timezone.utc),
                            subject, sender, to)
        return Msg(folder, key, _flags(rng, profile, unseen_only), int(when), data)

    for folder, count, profile in plan:
        times = sorted(rng.uniform(t_lo, t_hi) for _ in range(count))
        for when in times:
            size, attach = _size(rng)
            msgs.append(one(folder, profile, when, size, attach, kind == "inbox", ""))
    if large and n >= 100:
        # Replace the last few INBOX messages by large ones (same count).
        inbox = [i for i, m in enumerate(msgs) if m.folder == "INBOX"]
        for j, size in enumerate(LARGE_SIZES):
            i = inbox[-(j + 1) * max(1, len(inbox) // 7)]
            old = msgs[i]
            msgs[i] = one("INBOX", "inbox", old.mtime, size, True, kind == "inbox", "L")
    delta = []
    t_new = dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc).timestamp()
    dplan = [(f, max(0, round(delta_n * c / max(1, n))), p) for f, c, p in plan]
    short = delta_n - sum(c for _, c, _ in dplan)
    dplan[0] = (dplan[0][0], dplan[0][1] + short, dplan[0][2])
    for folder, count, profile in dplan:
        for k in range(count):
            size, attach = _size(rng)
            delta.append(one(folder, profile, t_new + 3600 * k + rng.randint(0, 3000),
                             size, attach, kind == "inbox", "D"))
    return msgs, delta


def maildir_dir(root, folder, utf7):
    """Directory of a folder in a Dovecot Maildir++ (separator '/', the
    listescape plugin, names in modified UTF-7)."""
    if folder.upper() == "INBOX":
        return root
    return os.path.join(root, "." + utf7(folder).replace("/", "."))


def maildir_name(m, idx, seed):
    letters = ""
    for f, c in (("\\Draft", "D"), ("\\Flagged", "F"), ("\\Answered", "R"),
                 ("\\Seen", "S"), ("\\Deleted", "T")):
        if f in m.flags:
            letters += c
    for kw_i, kw in enumerate(KEYWORDS):
        if kw in m.flags:
            letters += chr(ord("a") + kw_i)
    return f"1700000000.M{idx:07d}P{seed}.bench,S={m.lf_size},W={m.size}:2,{letters}"


def write_maildir(root, msgs, seed, utf7, first_idx=0, new=False):
    """Write msgs into the Maildir at root (folders made as needed).
    new=True writes into new/ (no flags: as just delivered)."""
    made = set()
    for i, m in enumerate(msgs):
        d = maildir_dir(root, m.folder, utf7)
        if d not in made:
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(d, sub), exist_ok=True)
            if d != root:
                open(os.path.join(d, "maildirfolder"), "a").close()
            kw = os.path.join(d, "dovecot-keywords")
            if not os.path.exists(kw):
                with open(kw, "w") as f:
                    f.write("".join(f"{j} {k}\n" for j, k in enumerate(KEYWORDS)))
            made.add(d)
        name = maildir_name(m, first_idx + i, seed)
        if new:
            assert not m.flags
            path = os.path.join(d, "new", name.split(":2,")[0])
        else:
            path = os.path.join(d, "cur", name)
        with open(path, "wb") as f:
            f.write(m.data)
        os.utime(path, (m.mtime, m.mtime))
        m.data = None
