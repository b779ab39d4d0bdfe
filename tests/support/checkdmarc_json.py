"""Owns the checkdmarc interop wrapper: audits one domain's SPF and DMARC with checkdmarc's Python API against one loopback nameserver and prints the verdict as one JSON line.

Usage (checkdmarc comes from PyPI, installed by tests/setup into target/interop-venv):

    target/interop-venv/bin/python tests/support/checkdmarc_json.py \
        --nameserver 127.0.0.1 --port PORT DOMAIN

Prints
    {"spf": {"valid": bool, "dns_lookups": int|null, "void_lookups": int|null,
             "error": str|null},
     "dmarc": {"valid": bool, "record_found_at": str|null, "p": str|null,
               "error": str|null}}
on one line and exits 0 whatever the verdict; a crash (a traceback, exit 1) means the
wrapper or checkdmarc broke, not that the domain failed.

Pointing checkdmarc at a port: its `nameservers=` argument takes, besides strings (which
always mean port 53), ready-made `dns.nameserver.Nameserver` objects and passes them to
dnspython untouched (checkdmarc.utils._nameservers_to_resolver_input), so a
`Do53Nameserver(address, port)` is the supported way. Two guards back it up, because the
system resolver here is a real network address that tests must never reach:
  * every `dns.resolver.Resolver` built in this process starts pinned to the test server
    instead of reading /etc/resolv.conf (checkdmarc builds one per query and only then
    swaps in the nameservers it was given; a code path that forgot to pass them on would
    otherwise fall back to the system resolver);
  * dnspython's UDP and TCP senders refuse any other destination, so a leak is a loud
    failure rather than a silent query to the outside.
"""

import argparse
import json
import sys

import dns.nameserver
import dns.query
import dns.resolver

import checkdmarc.dmarc
import checkdmarc.spf

# Generous for a loopback server on a busy 2-core machine; checkdmarc's defaults (2 s, no
# retry) are tuned for the internet, where giving up fast on a dead server is the goal.
TIMEOUT = 5.0
RETRIES = 2


def pin_dnspython(address: str, port: int) -> None:
    """Makes every DNS query this process sends go to address:port, or fail."""
    base = dns.resolver.Resolver

    class PinnedResolver(base):
        def __init__(self, filename="/etc/resolv.conf", configure=True):
            # configure=False: never read the system's resolv.conf.
            super().__init__(filename=filename, configure=False)
            self.nameservers = [dns.nameserver.Do53Nameserver(address, port)]

    dns.resolver.Resolver = PinnedResolver
    # Any default resolver dnspython made before the swap would hold the system's servers.
    dns.resolver.reset_default_resolver()

    def guarded(send):
        def wrapper(q, where, *args, **kwargs):
            # Both senders take the port as keyword (Do53Nameserver) or fourth argument.
            target_port = kwargs.get("port", args[1] if len(args) > 1 else 53)
            if where != address or target_port != port:
                raise RuntimeError(
                    f"checkdmarc_json.py: refusing DNS query to {where}:{target_port}; "
                    f"only {address}:{port} is allowed"
                )
            return send(q, where, *args, **kwargs)

        return wrapper

    dns.query.udp = guarded(dns.query.udp)
    dns.query.tcp = guarded(dns.query.tcp)


def spf_summary(domain: str, nameservers: list) -> dict:
    # check_spf never raises for SPF problems: it returns {"valid": False, "error": ...}.
    # On an SPFError it deletes "dns_lookups" (SPFTooManyDNSLookups puts the count back
    # through the error's data), so every key but "valid" is read with .get().
    r = checkdmarc.spf.check_spf(
        domain, nameservers=nameservers, timeout=TIMEOUT, retries=RETRIES
    )
    return {
        "valid": bool(r["valid"]),
        "dns_lookups": r.get("dns_lookups"),
        "void_lookups": r.get("void_dns_lookups"),
        "error": r.get("error"),
    }


def dmarc_summary(domain: str, nameservers: list) -> dict:
    # check_dmarc returns DMARCResults {"record", "location", "valid": True, "warnings",
    # "tags": {tag: {"value", "explicit"}}} or DMARCErrorResults {"record", "location",
    # "valid": False, "error", "warnings"}. "location" is the domain whose _dmarc name
    # held the record (the queried domain, or an ancestor found by the RFC 9989 tree
    # walk), not the _dmarc owner name itself.
    r = checkdmarc.dmarc.check_dmarc(
        domain, nameservers=nameservers, timeout=TIMEOUT, retries=RETRIES
    )
    p = None
    if r["valid"]:
        p = r["tags"].get("p", {}).get("value")
    return {
        "valid": bool(r["valid"]),
        "record_found_at": r.get("location"),
        "p": p,
        "error": r.get("error"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nameserver", required=True, help="IP address of the test server")
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("domain")
    args = ap.parse_args()

    pin_dnspython(args.nameserver, args.port)
    nameservers = [dns.nameserver.Do53Nameserver(args.nameserver, args.port)]
    result = {
        "spf": spf_summary(args.domain, nameservers),
        "dmarc": dmarc_summary(args.domain, nameservers),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
