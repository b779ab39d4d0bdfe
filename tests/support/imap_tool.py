"""Fills and inspects the test Dovecot over IMAP, as an independent client (Python's imaplib).

usage: imap_tool.py PORT USER PASSWORD CAFILE append MAILBOX FILE...
       imap_tool.py PORT USER PASSWORD CAFILE flags MAILBOX   -> JSON [[uid, [flags...]], ...]

Implicit TLS to 127.0.0.1, the certificate checked against CAFILE (the test CA).
"""
import imaplib
import json
import re
import ssl
import sys


def main():
    port, user, password, cafile, command, mailbox = sys.argv[1:7]
    ctx = ssl.create_default_context(cafile=cafile)
    m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
    m.login(user, password)
    if command == "append":
        for path in sys.argv[7:]:
            with open(path, "rb") as f:
                data = f.read()
            typ, resp = m.append(mailbox, None, None, data)
            if typ != "OK":
                sys.exit(f"APPEND {path}: {resp}")
    elif command == "flags":
        typ, _ = m.select(mailbox, readonly=True)
        if typ != "OK":
            print("[]")
        else:
            typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
            out = []
            for line in data or []:
                if not line:
                    continue
                text = line.decode() if isinstance(line, bytes) else line[0].decode()
                uid = re.search(r"UID (\d+)", text)
                flags = re.search(r"FLAGS \(([^)]*)\)", text)
                if uid and flags:
                    out.append([int(uid.group(1)), flags.group(1).split()])
            print(json.dumps(sorted(out)))
    else:
        sys.exit(f"unknown command {command}")
    m.logout()


main()
