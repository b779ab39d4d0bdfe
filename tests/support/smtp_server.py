"""Owns the loopback SMTP server (real aiosmtpd) that mailshot's integration tests deliver to, and the on-disk maildir format the Rust harness reads back.

Usage (only /usr/bin/python3 can import Debian's aiosmtpd):

    /usr/bin/python3 tests/support/smtp_server.py --mode {starttls,implicit,plain} \
        --cert LEAF.pem --key LEAF.key --maildir DIR \
        [--user U --password P] [--fail-rcpt ADDR ...] [--port 0]
        [--rcpt-reply ADDR|* REPLY ...] [--data-reply-every N REPLY]
        [--stall-data COUNT SECS] [--timeout SECS] [--events FILE]

Contract with tests/util/smtp.rs:
  * exactly one stdout line "READY <port>" once the listener accepts connections;
  * each accepted message becomes DIR/<seq>.eml (the DATA bytes exactly as the
    client submitted them, after dot-unstuffing) and then DIR/<seq>.json
    (envelope metadata).  The .json is renamed into place last, so its
    presence means the .eml is complete;
  * the process exits 0 on SIGTERM, SIGINT or EOF on stdin.  Stdin EOF matters
    because a test process that dies without running Drop closes our stdin,
    so the server cannot outlive the test run.  Consequently do not start it
    with stdin at /dev/null (e.g. `</dev/null` or some nohup setups): it
    would stop immediately.

Fault injection (all through aiosmtpd's own handler hooks and options, so the
faults are ones a real server produces):
  * --rcpt-reply ADDR REPLY: RCPT TO for ADDR (or every address, for "*") is
    answered REPLY, e.g. "550 5.7.1 rejected by policy";
  * --data-reply-every N REPLY: every Nth DATA the server receives (counting
    refused ones) is answered REPLY instead of being stored;
  * --stall-data COUNT SECS: the first COUNT DATA transactions wait SECS
    seconds before they are stored and answered (a slow relay); a client
    that hangs up meanwhile stores nothing, because aiosmtpd cancels the
    handler when the connection is lost;
  * --timeout SECS: aiosmtpd's idle timeout, after which it closes the
    connection.
With --events FILE, each fault and each stored message appends one line to
FILE, so tests can count what the server did, not only what it kept:
  "rcpt-refused <addr> <code>", "data-stall <n> <addrs>",
  "data-refused <n> <addrs> <code>", "stored <seq> <addrs>"
(<n> counts DATA transactions from 1; <addrs> are comma-separated).
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

# Generous so bulk/attachment tests never hit it by accident.  (aiosmtpd's own
# 1000-octet line limit is left alone: that is real-server behaviour.)
DATA_SIZE_LIMIT = 50 * 1024 * 1024


class _PreboundController(Controller):
    """Controller that serves on a socket we bound ourselves.

    aiosmtpd's Controller with port=0 would bind an ephemeral port but then
    pokes the server on self.port (still 0) to finish start-up, which fails.
    Binding first gives us the real port before the controller starts, with
    no window in which another process could take it.
    """

    def __init__(self, handler, sock, **kwargs):
        self._sock = sock
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)

    def _create_server(self):
        return self.loop.create_server(
            self._factory_invoker, sock=self._sock, ssl=self.ssl_context
        )


class MaildirHandler:
    """aiosmtpd handler: records every message and can refuse chosen recipients."""

    def __init__(self, maildir, fail_rcpts, rcpt_replies=(), data_reply_every=None,
                 stall_data=None, events=None, pipelining=True):
        self.maildir = maildir
        self.pipelining = pipelining
        # Case-insensitive match: the tests name the address they want refused
        # and should not depend on the client's capitalisation of the domain.
        self.fail_rcpts = {a.lower() for a in fail_rcpts}
        # The first matching --rcpt-reply wins; "*" matches every address.
        self.rcpt_replies = [(a.lower(), r) for a, r in rcpt_replies]
        self.data_reply_every = data_reply_every
        self.stall_data = stall_data
        self.events = events
        # Every DATA transaction, refused or stored: what --data-reply-every counts.
        self.data_seen = 0
        self.seq = self._last_seq() + 1

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands line by line, so a batch of pipelined commands
        # is handled like the same commands one at a time; it just never says so.
        # Production relays (Postfix, Exim, the big providers) all advertise
        # PIPELINING, so the tests do too unless --no-pipelining is given.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        self._event("EHLO", "pipelining" if self.pipelining else "stepwise")
        return responses

    def _event(self, *words):
        if self.events is None:
            return
        # One write and a flush per line: the test reads the file while we run,
        # and the handler runs on one event-loop thread, so lines never interleave.
        self.events.write(" ".join(str(w) for w in words) + "\n")
        self.events.flush()

    def _rcpt_reply(self, address):
        a = address.lower()
        for want, reply in self.rcpt_replies:
            if want == "*" or want == a:
                return reply
        if a in self.fail_rcpts:
            return f"550 5.1.1 <{address}>: user unknown"
        return None

    def _last_seq(self):
        # Continue numbering if the directory is reused, so nothing is
        # overwritten and readers that sort by seq still see arrival order.
        last = 0
        for name in os.listdir(self.maildir):
            stem, _, ext = name.partition(".")
            if ext in ("eml", "json") and stem.isdigit():
                last = max(last, int(stem))
        return last

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Whether the client sent RCPT TO along with MAIL FROM, before this reply
        # (RFC 2920): what is already in the connection's read buffer tells.
        # The buffer is asyncio's StreamReader._buffer, not public but stable.
        buffered = bytes(getattr(server._reader, "_buffer", b""))
        self._event("mail", "pipelined" if b"RCPT TO" in buffered.upper() else "alone")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self._rcpt_reply(address)
        if refusal is not None:
            self._event("rcpt-refused", address, refusal[:3])
            return refusal
        # Once a handle_RCPT hook exists aiosmtpd no longer records the
        # recipient itself, so accepting means doing its bookkeeping here.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # Taken first: "when DATA completed" is what rate-limit tests measure.
        received_at = time.time()
        self.data_seen += 1
        n = self.data_seen
        rcpts = ",".join(envelope.rcpt_tos)
        if self.stall_data is not None and n <= self.stall_data[0]:
            # Logged before the wait, so a test can act while the client is
            # still waiting for our answer.
            self._event("data-stall", n, rcpts)
            await asyncio.sleep(self.stall_data[1])
        if self.data_reply_every is not None and n % self.data_reply_every[0] == 0:
            reply = self.data_reply_every[1]
            self._event("data-refused", n, rcpts, reply[:3])
            return reply
        seq = self.seq
        self.seq += 1
        stem = os.path.join(self.maildir, f"{seq:06d}")

        # original_content is the dot-unstuffed DATA with its CRLFs intact and
        # without the terminating ".\r\n": byte-for-byte what the client meant
        # to submit.  (envelope.content would be the same bytes here, but
        # original_content stays raw even if decode_data were ever enabled.)
        _write_atomically(stem + ".eml", envelope.original_content)

        auth_user = None
        if session.authenticated and session.auth_data is not None:
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "received_at": received_at,
            "auth_user": auth_user,
        }
        # ensure_ascii keeps the file pure ASCII: SMTPUTF8 addresses may carry
        # surrogate escapes that are not encodable as UTF-8, and the Rust
        # reader decodes \u escapes itself.
        _write_atomically(stem + ".json", json.dumps(meta, ensure_ascii=True).encode("ascii"))
        self._event("stored", f"{seq:06d}", rcpts)
        return "250 OK: queued as " + f"{seq:06d}"


def _write_atomically(path, data):
    # rename() is atomic on one filesystem, so a reader never sees a partial file.
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _make_authenticator(user, password):
    want_user = user.encode("utf-8")
    want_password = password.encode("utf-8")

    def authenticator(server, session, envelope, mechanism, auth_data):
        # Builtin PLAIN and LOGIN both hand us a LoginPassword(login, password).
        ok = auth_data.login == want_user and auth_data.password == want_password
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False without a message makes aiosmtpd send its own
        # "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=False, handled=False)

    return authenticator


def _server_tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", required=True, choices=["starttls", "implicit", "plain"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--maildir", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--fail-rcpt", action="append", default=[])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--rcpt-reply", nargs=2, action="append", default=[],
                   metavar=("ADDR", "REPLY"))
    p.add_argument("--data-reply-every", nargs=2, metavar=("N", "REPLY"))
    p.add_argument("--stall-data", nargs=2, metavar=("COUNT", "SECS"))
    p.add_argument("--timeout", type=float)
    p.add_argument("--events")
    p.add_argument("--no-pipelining", action="store_true",
                   help="do not advertise PIPELINING (RFC 2920) in the EHLO reply")
    args = p.parse_args()

    if (args.user is None) != (args.password is None):
        p.error("--user and --password go together")
    if args.mode != "plain" and not (args.cert and args.key):
        p.error(f"--mode {args.mode} needs --cert and --key")
    if args.mode == "plain" and args.user is not None:
        # aiosmtpd refuses AUTH without TLS anyway; fail loudly instead of
        # producing a server no client can log in to.
        p.error("--mode plain does not support AUTH")

    # Log to stderr: the Rust harness saves it to a file and shows it when
    # a test cannot start the server.
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    os.makedirs(args.maildir, exist_ok=True)
    data_reply_every = None
    if args.data_reply_every is not None:
        every = int(args.data_reply_every[0])
        if every < 1:
            p.error("--data-reply-every needs N >= 1")
        data_reply_every = (every, args.data_reply_every[1])
    stall_data = None
    if args.stall_data is not None:
        stall_data = (int(args.stall_data[0]), float(args.stall_data[1]))
    for _, reply in args.rcpt_reply + ([list(data_reply_every)] if data_reply_every else []):
        if not (len(reply) > 4 and reply[:3].isdigit() and reply[3] == " "):
            p.error(f"a reply must be 'CODE text', got {reply!r}")
    # Line-buffered append: the tests may read it at any time.
    events = open(args.events, "a", buffering=1) if args.events else None
    handler = MaildirHandler(args.maildir, args.fail_rcpt, args.rcpt_reply,
                             data_reply_every, stall_data, events,
                             pipelining=not args.no_pipelining)

    smtp_kwargs = dict(
        data_size_limit=DATA_SIZE_LIMIT,
        enable_SMTPUTF8=True,
        # A fixed name avoids socket.getfqdn(), which can stall on DNS.
        server_hostname="localhost",
    )
    if args.timeout is not None:
        # aiosmtpd closes a connection idle this long (default 300 s).
        smtp_kwargs["timeout"] = args.timeout
    if args.user is not None:
        smtp_kwargs["auth_required"] = True
        smtp_kwargs["authenticator"] = _make_authenticator(args.user, args.password)

    if args.mode == "starttls":
        smtp_kwargs["tls_context"] = _server_tls_context(args.cert, args.key)
        smtp_kwargs["require_starttls"] = True
        smtp_kwargs["auth_require_tls"] = True
    elif args.mode == "implicit":
        smtp_kwargs["ssl_context"] = _server_tls_context(args.cert, args.key)
        # aiosmtpd 1.4 only knows about TLS it negotiated via STARTTLS; with
        # TLS from the first byte it treats the session as cleartext and, with
        # auth_require_tls=True, neither advertises nor accepts AUTH
        # (aio-libs/aiosmtpd#281, #274).  Every byte on this listener is
        # inside TLS, so turning the check off loses nothing.
        smtp_kwargs["auth_require_tls"] = False
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        logging.getLogger("mail.log").addFilter(
            lambda rec: "auth_require_tls == False" not in rec.getMessage()
        )

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]

    controller = _PreboundController(handler, sock, **smtp_kwargs)

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        # os.read on the raw fd, not sys.stdin: a daemon thread blocked inside
        # a BufferedReader holds its lock, and CPython aborts (SIGABRT, exit
        # 134) when it finalizes while that lock is held.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    # start() returns only after the listener is up and the SMTP factory has
    # answered a probe connection, so READY is never premature.
    controller.start()
    threading.Thread(target=watch_stdin, daemon=True).start()
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()

    # Short timed waits keep the main thread responsive to signals.
    while not stop.wait(0.2):
        pass
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
