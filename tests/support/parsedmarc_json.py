"""Owns the parsedmarc interop wrapper: reads DMARC aggregate reports with parsedmarc's Python API, offline, and prints per-source-IP message totals as one JSON line.

Usage (parsedmarc comes from PyPI, installed by tests/setup into target/interop-venv):

    target/interop-venv/bin/python tests/support/parsedmarc_json.py PATH...

Prints
    {"reports": int, "duplicates": int, "messages": int,
     "sources": {"<ip>": int, ...},
     "files": [{"path": str, "status": "aggregate" | "duplicate" | "failed" | "other",
                "error": str | null}]}
on one line and exits 0 whatever parsedmarc thought of the files; a crash (a traceback, exit
1) means the wrapper or parsedmarc broke.

What it does, and why, so that the totals mean the same as mailshot's:
  * Folders are walked as `mailshot dmarc report` walks them: recursively, in sorted order,
    skipping hidden files and the tmp/ folder of a Maildir (cur/ and new/ beside it), where
    half-delivered messages live. Each file goes to parsedmarc.parse_report_file, which sniffs
    zip, gzip, XML and email content itself.
  * An aggregate report already seen (same org_name and report_id) is dropped, which is what
    parsedmarc's own mailbox readers do (_classify_parsed_email keys on
    f"{org_name}_{report_id}"); parse_report_file alone never deduplicates.
  * offline=True and always_use_local_files=True: no reverse DNS, no geolocation download, no
    reverse-DNS-map or PSL-override download. parsedmarc's bundled IPinfo database still
    answers country/ASN, locally. As a guard, every socket connect and name lookup in this
    process raises, so a code path that ignored the flags fails loudly instead of reaching the
    network.
  * normalize_timespan_threshold_hours is set out of reach: otherwise parsedmarc splits a
    record of a report spanning more than 24 hours into per-day records, pro-rating its count
    (the sum is kept, but a report whose begin equals its end would lose its records).
  * Source addresses are printed in canonical form (ipaddress.ip_address): parsedmarc keeps
    the text as the report wrote it, lowercased, so 2001:DB8:0:0:0:0:0:25 and 2001:db8::25
    would be two sources. mailshot parses addresses, so they are one.
"""

import ipaddress
import json
import logging
import os
import socket
import sys


def forbid_network() -> None:
    """Makes any attempt to open a connection or resolve a name raise."""

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "parsedmarc_json.py: network access attempted; parsedmarc must run offline"
        )

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    socket.gethostbyname = refuse
    socket.gethostbyaddr = refuse


forbid_network()

# Imported after the guard: parsedmarc loads its PSL overrides at import time (offline, from
# its bundled copy, in this version).
import parsedmarc  # noqa: E402

# Out of reach: never split a record into per-day buckets (see the module docstring).
NO_NORMALIZATION_HOURS = 1e12


def walk(path: str):
    if not os.path.isdir(path):
        yield path
        return
    names = sorted(os.listdir(path))
    is_maildir = "cur" in names and "new" in names
    for name in names:
        full = os.path.join(path, name)
        if os.path.isdir(full):
            if is_maildir and name == "tmp":
                continue
            yield from walk(full)
        elif not name.startswith("."):
            yield full


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    # parsedmarc logs a warning per record it cannot use; they go to stderr for the test's
    # failure message, never to stdout.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)

    seen = set()
    files = []
    sources = {}
    reports = duplicates = messages = 0
    for arg in sys.argv[1:]:
        for path in walk(arg):
            entry = {"path": path, "status": "other", "error": None}
            files.append(entry)
            try:
                parsed = parsedmarc.parse_report_file(
                    path,
                    offline=True,
                    always_use_local_files=True,
                    normalize_timespan_threshold_hours=NO_NORMALIZATION_HOURS,
                )
            except Exception as e:  # parsedmarc raises ParserError and friends
                entry["status"] = "failed"
                entry["error"] = f"{type(e).__name__}: {e}"
                continue
            if parsed["report_type"] != "aggregate":
                continue
            report = parsed["report"]
            meta = report["report_metadata"]
            key = f"{meta['org_name']}_{meta['report_id']}"
            if key in seen:
                entry["status"] = "duplicate"
                duplicates += 1
                continue
            seen.add(key)
            entry["status"] = "aggregate"
            reports += 1
            for record in report["records"]:
                ip = str(ipaddress.ip_address(record["source"]["ip_address"]))
                sources[ip] = sources.get(ip, 0) + record["count"]
                messages += record["count"]

    print(
        json.dumps(
            {
                "reports": reports,
                "duplicates": duplicates,
                "messages": messages,
                "sources": sources,
                "files": files,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
