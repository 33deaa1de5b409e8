"""Check a local Dovecot Maildir against the expected corpus.

Reads the files Dovecot wrote (Maildir++, separator '/', listescape,
modified UTF-7 names): the bytes (LF, as Dovecot stores them), the flags
in the file name (keywords through dovecot-keywords) and the mtime, which
is the INTERNALDATE.  Messages are matched by the SHA-256 of their bytes.

A message delivered through LMTP (or by fetchmail/getmail) gets trace
headers in front (Return-Path, Delivered-To, Received): then the original
is looked for from the corpus's first header line on, the prefix must be
header lines only, and its INTERNALDATE is the delivery time (not
checked)."""

import collections
import hashlib
import os
import re

MARK = b"Received: from mx.example.org (mx.example.org [192.0.2."
_LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen",
            "T": "\\Deleted"}
_HDR = re.compile(rb"^(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*)*$")


def _unescape(part, utf7_decode):
    part = re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), part)
    return utf7_decode(part)


def _keywords(d):
    kw = {}
    try:
        with open(os.path.join(d, "dovecot-keywords")) as f:
            for line in f:
                i, _, name = line.rstrip("\n").partition(" ")
                if i.isdigit():
                    kw[chr(ord("a") + int(i))] = name
    except FileNotFoundError:
        pass
    return kw


def strip_fields(data, names):
    """Remove the header fields called NAMES (lower case) from data's
    header; returns (data, removed names)."""
    end = data.find(b"\n\n")
    if end < 0 or not names:
        return data, ()
    head, out, removed, skip = data[:end + 1], [], [], False
    for line in head.split(b"\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            if not skip:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].decode("ascii", "replace")
        skip = name.lower() in names
        if skip:
            removed.append(name)
        else:
            out.append(line)
    if not removed:
        return data, ()
    return b"\n".join(out) + b"\n" + data[end + 1:], tuple(removed)


def read_maildir(root, utf7_decode, strip=()):
    """{folder: [(sha, tail_sha, flags(tuple), mtime, added_names)]}.
    strip: header fields the tool adds to every message (mbsync's X-TUID),
    taken out before hashing and reported."""
    strip = {x.lower() for x in strip}
    out = {}
    dirs = [("INBOX", root)]
    if os.path.isdir(root):
        for e in sorted(os.listdir(root)):
            p = os.path.join(root, e)
            if e.startswith(".") and e not in (".", "..") and os.path.isdir(p):
                parts = e[1:].split(".")
                dirs.append(("/".join(_unescape(x, utf7_decode) for x in parts), p))
    for folder, d in dirs:
        kw = _keywords(d)
        msgs = []
        for sub in ("cur", "new"):
            sd = os.path.join(d, sub)
            if not os.path.isdir(sd):
                continue
            for name in os.listdir(sd):
                path = os.path.join(sd, name)
                try:
                    st = os.stat(path)
                    with open(path, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                data = data.replace(b"\r\n", b"\n")
                data, removed = strip_fields(data, strip)
                flags = set()
                if ":2," in name:
                    for c in name.split(":2,", 1)[1]:
                        if c in _LETTERS:
                            flags.add(_LETTERS[c])
                        elif c in kw:
                            flags.add(kw[c])
                        elif "a" <= c <= "z":
                            flags.add(f"?keyword-{c}")
                sha = hashlib.sha256(data).hexdigest()
                tail, prefix = None, None
                if not data.startswith(MARK):
                    i = data.find(b"\n" + MARK)
                    if i >= 0:
                        tail = hashlib.sha256(data[i + 1:]).hexdigest()
                        prefix = data[:i + 1]
                names = tuple(removed)
                if prefix is not None:
                    if _HDR.match(prefix):
                        names += tuple(sorted(set(
                            ln.split(b":", 1)[0].decode("ascii", "replace")
                            for ln in prefix.split(b"\n") if ln and ln[:1] not in b" \t")))
                    else:
                        tail = None          # not a header prefix: altered
                msgs.append((sha, tail, tuple(sorted(flags)), int(st.st_mtime), names))
        if msgs or folder == "INBOX":
            out[folder] = msgs
    return out


def compare(expected, got, lmtp=False, check_flags=True):
    """expected: list of corpus records (dicts).  got: read_maildir().
    Returns (ok, summary, details{...})."""
    exp_by_folder = collections.defaultdict(list)
    for r in expected:
        exp_by_folder[r["folder"]].append(r)
    problems = []
    stats = collections.Counter()
    added_headers = set()
    lost, gained = collections.Counter(), collections.Counter()
    for folder in sorted(set(exp_by_folder) | set(got)):
        exp = exp_by_folder.get(folder, [])
        have = got.get(folder, [])
        if not exp and not have:
            continue
        if not exp:
            problems.append(f"{folder}: {len(have)} unexpected message(s) in a folder "
                            "the remote does not have")
            stats["extra"] += len(have)
            continue
        if folder not in got:
            problems.append(f"{folder}: folder missing ({len(exp)} messages)")
            stats["missing"] += len(exp)
            continue
        want = collections.defaultdict(list)
        for r in exp:
            want[r["sha"]].append(r)
        missing = extra = bad_flags = bad_date = 0
        for sha, tail, flags, mtime, names in have:
            key = sha if sha in want and want[sha] else None
            via_tail = False
            if key is not None:
                added_headers.update(names)
            if key is None and lmtp and tail is not None and want.get(tail):
                key, via_tail = tail, True
                added_headers.update(names)
            if key is None:
                extra += 1
                continue
            r = want[key].pop()
            if check_flags and tuple(r["flags"]) != flags:
                bad_flags += 1
                for f in set(r["flags"]) - set(flags):
                    lost[f] += 1
                for f in set(flags) - set(r["flags"]):
                    gained[f] += 1
                if bad_flags <= 3:
                    problems.append(f"{folder}: {r['key']} flags {list(flags)} "
                                    f"!= {r['flags']}")
            if not via_tail and not lmtp and r["mtime"] != mtime:
                bad_date += 1
                if bad_date <= 3:
                    problems.append(f"{folder}: {r['key']} INTERNALDATE {mtime} "
                                    f"!= {r['mtime']}")
        missing = sum(len(v) for v in want.values())
        if missing:
            problems.append(f"{folder}: {missing} of {len(exp)} message(s) missing")
        if extra:
            problems.append(f"{folder}: {extra} extra or altered message(s) "
                            f"({len(have)} present, {len(exp)} expected)")
        if bad_flags:
            problems.append(f"{folder}: {bad_flags} message(s) with other flags")
        if bad_date:
            problems.append(f"{folder}: {bad_date} message(s) with another INTERNALDATE")
        stats.update(missing=missing, extra=extra, flags=bad_flags, date=bad_date,
                     messages=len(have))
    ok = not any(stats[k] for k in ("missing", "extra", "flags", "date"))
    parts = []
    for k, label in (("missing", "missing"), ("extra", "extra/altered"),
                     ("flags", "flags differ"), ("date", "INTERNALDATE differs")):
        if stats[k]:
            parts.append(f"{stats[k]} {label}")
            if k == "flags":
                how = [f"{f} lost on {c}" for f, c in sorted(lost.items())]
                how += [f"{f} added on {c}" for f, c in sorted(gained.items())]
                parts[-1] += " (" + ", ".join(how) + ")"
    summary = "ok" if ok else "WRONG COPY: " + ", ".join(parts)
    return ok, summary, {"problems": problems, "stats": dict(stats),
                         "added_headers": sorted(added_headers)}
