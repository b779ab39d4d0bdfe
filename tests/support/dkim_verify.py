"""Owns independent DKIM verification for the integration tests: checks every DKIM-Signature of a message with dkimpy, resolving keys from a test zone file instead of DNS.

Usage (dkimpy is Debian's python3-dkim, importable only from /usr/bin/python3):

    /usr/bin/python3 tests/support/dkim_verify.py --zone ZONEFILE MESSAGE.eml

Prints one JSON line
    {"signatures": [{"index": 0, "d": ..., "s": ..., "a": ..., "ok": true, "error": null}, ...]}
and exits 0 only if there is at least one signature and all of them verify.

ZONEFILE uses master-file syntax for TXT records, e.g.
    ; comment
    s1._domainkey.example.com. 300 IN TXT "v=DKIM1; k=rsa; " "p=MIIB..."
    s2._domainkey.example.com. TXT ( "v=DKIM1; k=ed25519; "
                                     "p=..." )
TTL and class are optional and ignored, several strings are concatenated
(RFC 6376 3.6.2.2), parentheses continue a record over lines, and a line that
starts with whitespace reuses the previous owner name.  Names are taken as
absolute whether or not they end in "."; $ORIGIN and "@" are not supported
and are reported as errors rather than guessed at.
"""

import argparse
import json
import logging
import sys

import dkim
from dkim.util import parse_tag_value

CLASSES = {"IN", "CH", "HS", "CS"}


class ZoneError(Exception):
    pass


def _tokenize_line(line, lineno):
    """Split one physical line into (text, quoted) tokens, honouring ; and quotes."""
    tokens = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t\r\n":
            i += 1
        elif c == ";":
            break
        elif c in "()":
            tokens.append((c, False))
            i += 1
        elif c == '"':
            i += 1
            buf = bytearray()
            while True:
                if i >= n:
                    raise ZoneError(f"line {lineno}: unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    # Master-file escapes: \DDD is a decimal octet, \X is X.
                    if line[i + 1:i + 4].isdigit() and len(line[i + 1:i + 4]) == 3:
                        buf.append(int(line[i + 1:i + 4]))
                        i += 4
                        continue
                    if i + 1 >= n:
                        raise ZoneError(f"line {lineno}: dangling backslash")
                    c = line[i + 1]
                    i += 1
                buf.extend(c.encode("utf-8"))
                i += 1
            tokens.append((bytes(buf), True))
        else:
            j = i
            while j < n and line[j] not in ' \t\r\n;()"':
                j += 1
            tokens.append((line[i:j], False))
            i = j
    return tokens


def load_zone(path):
    """Return {lowercased absolute name: [txt bytes, ...]} in file order."""
    records = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()

    owner = None
    pending = None  # (tokens, starts_blank, first_lineno) while inside ( ... )
    depth = 0
    for lineno, line in enumerate(lines, 1):
        toks = _tokenize_line(line, lineno)
        if pending is None:
            if not toks:
                continue
            pending = ([], line[:1] in (" ", "\t"), lineno)
        for t in toks:
            if t == ("(", False):
                depth += 1
            elif t == (")", False):
                depth -= 1
                if depth < 0:
                    raise ZoneError(f"line {lineno}: unbalanced ')'")
            else:
                pending[0].append(t)
        if depth > 0:
            continue
        toks, starts_blank, first = pending
        pending = None
        if not toks:
            continue
        if toks[0][0].startswith("$") and not toks[0][1]:
            if toks[0][0].upper() == "$TTL":
                continue
            raise ZoneError(f"line {first}: unsupported directive {toks[0][0]}")
        if starts_blank:
            if owner is None:
                raise ZoneError(f"line {first}: record without an owner name")
        else:
            name, _ = toks.pop(0)
            if name == "@":
                raise ZoneError(f"line {first}: '@' needs $ORIGIN, which is unsupported")
            owner = name.lower() if name.endswith(".") else name.lower() + "."
        # Skip the optional TTL and class, in either order.
        while toks and not toks[0][1] and (
            toks[0][0].isdigit() or toks[0][0].upper() in CLASSES
        ):
            toks.pop(0)
        if not toks:
            raise ZoneError(f"line {first}: missing record type")
        rtype = toks.pop(0)[0].upper()
        if rtype != "TXT":
            continue  # other record types are legal but irrelevant to DKIM
        if not toks:
            raise ZoneError(f"line {first}: TXT record without strings")
        value = b"".join(t if quoted else t.encode("utf-8") for t, quoted in toks)
        records.setdefault(owner, []).append(value)
    if depth > 0:
        raise ZoneError("unbalanced '(' at end of file")
    return records


def make_dnsfunc(records):
    # dkimpy 1.1.4 calls dnsfunc(name, timeout=...) with name as *bytes*
    # ending in "." (b"sel._domainkey.example.com.") and expects the TXT
    # value back as bytes with the strings already joined, or None when the
    # name does not exist (it then reports "missing public key").
    def dnsfunc(name, timeout=5):
        key = name.decode("ascii", "replace").lower()
        if not key.endswith("."):
            key += "."
        values = records.get(key)
        # Like dkimpy's own dnspython resolver, use the first TXT record.
        return values[0] if values else None

    return dnsfunc


class _Capture(logging.Handler):
    """Keeps dkimpy's log lines: for key problems it logs and returns False
    instead of raising, so the log is the only place the reason appears."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.errors = []

    def emit(self, record):
        if record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())


def _text(b):
    return None if b is None else b.decode("utf-8", "replace")


def verify_all(message, dnsfunc):
    sig_headers = [
        v for k, v in dkim.DKIM(message).headers if k.lower() == b"dkim-signature"
    ]
    results = []
    for idx, raw in enumerate(sig_headers):
        entry = {"index": idx, "d": None, "s": None, "a": None, "ok": False, "error": None}
        try:
            tags = parse_tag_value(raw.replace(b"\r\n", b"").replace(b"\n", b""))
            entry["d"], entry["s"], entry["a"] = (
                _text(tags.get(b"d")), _text(tags.get(b"s")), _text(tags.get(b"a"))
            )
        except Exception as e:  # reported through verify() below as well
            entry["error"] = f"cannot parse tags: {e}"

        # A fresh DKIM object and logger per signature: verify() keeps key
        # state on the instance, and errors must not bleed between entries.
        capture = _Capture()
        logger = logging.getLogger(f"dkim_verify.sig{idx}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.handlers = [capture]
        try:
            ok = bool(dkim.DKIM(message, logger=logger).verify(idx=idx, dnsfunc=dnsfunc))
            entry["ok"] = ok
            if ok:
                entry["error"] = None
            else:
                entry["error"] = "; ".join(capture.errors) or "signature did not verify"
        except Exception as e:  # dkim.DKIMException and anything unexpected
            entry["ok"] = False
            entry["error"] = f"{type(e).__name__}: {e}"
        results.append(entry)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zone", required=True)
    p.add_argument("message")
    args = p.parse_args()

    try:
        records = load_zone(args.zone)
    except (OSError, ZoneError) as e:
        print(json.dumps({"signatures": [], "error": f"zone: {e}"}))
        return 1
    with open(args.message, "rb") as f:
        message = f.read()

    results = verify_all(message, make_dnsfunc(records))
    print(json.dumps({"signatures": results}))
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
