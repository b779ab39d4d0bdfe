//! Rust side of the loopback DNS server: runs a real Knot DNS (`knotd`) as a child process, authoritative for the test zones on 127.0.0.1 (UDP and TCP), and stops it on drop.
//!
//! Zones whose file is deliberately unparseable are still configured: knot 3.2 then answers
//! SERVFAIL (no AA bit, no records) for every name at or below them, over UDP and TCP, with or
//! without RD. A configured zone whose file is missing behaves the same way. Names outside
//! every configured zone get REFUSED, as from any authoritative-only server.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Debian puts knotd in sbin, which a non-root PATH often lacks.
const KNOTD: &str = "/usr/sbin/knotd";
/// Generous: two cores shared with a concurrent cargo build and other tests' servers.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// A port can be taken between our probe and knotd's bind (see `pick_port`); each such
/// collision costs one quick knotd start, so a handful of attempts is plenty.
const START_ATTEMPTS: u32 = 5;
/// How long SIGTERM gets before SIGKILL; knotd normally exits in well under a second.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Ports this process has handed to a knotd. Without it two test threads could probe the
/// same just-released port; knotd would then fail to bind and be retried, which works but
/// wastes a start.
static PORTS_IN_USE: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
/// Makes every server's identity unique within this process (the pid does across processes).
static SERVER_SEQ: AtomicU32 = AtomicU32::new(0);

/// A running knotd on 127.0.0.1:`port`, stopped on drop.
pub struct DnsServer {
    pub port: u16,
    knotd: Knotd,
    log_path: PathBuf,
    // Declared last so it is removed after knotd is gone.
    _dir: tempfile::TempDir,
}

impl DnsServer {
    /// Starts knotd on 127.0.0.1:<free port> (UDP and TCP), authoritative for each
    /// (origin, body) zone.
    ///
    /// `body` is zone-file text without SOA and NS. The harness puts before it
    /// `$ORIGIN <origin>.`, `$TTL 300`, an SOA, the glue `ns.<origin>. A 127.0.0.1` and,
    /// last, `@ NS ns.<origin>.`, so relative names (`_dmarc`, `@`) and absolute ones
    /// (`_dmarc.example.com.`) both work, and a first body line that starts with
    /// whitespace (no owner) belongs to the apex. Zones load with `semantic-checks: soft`,
    /// so misconfigurations that still parse (a CNAME beside other data, say) are served
    /// as a real misconfigured domain would be, with a notice in `log()`.
    ///
    /// An authoritative server REFUSES names outside its zones. A client that walks up the
    /// tree (RFC 9989 DMARC discovery, checkdmarc) treats that as an error, not as "no
    /// record": serve the parents it will ask about too, e.g. `("com", "")`.
    ///
    /// Panics, with knot's log, if knotd does not start, a zone does not load, or the
    /// server does not answer within 20 s.
    pub fn start(zones: &[(&str, &str)]) -> DnsServer {
        DnsServer::start_with_broken(zones, &[])
    }

    /// Like `start`, plus zones that are configured but whose zone file is deliberately
    /// unparseable, so knot answers SERVFAIL for every name in them. Returns only after
    /// knot has logged that each of them failed to load.
    pub fn start_with_broken(zones: &[(&str, &str)], broken: &[&str]) -> DnsServer {
        let good: Vec<String> = zones.iter().map(|(o, _)| normalize_origin(o)).collect();
        let bad: Vec<String> = broken.iter().map(|o| normalize_origin(o)).collect();
        let mut seen = BTreeSet::new();
        for o in good.iter().chain(&bad) {
            assert!(seen.insert(o.clone()), "zone {o:?} given twice");
        }

        let dir = tempfile::Builder::new()
            .prefix("mailshot-dns-")
            .tempdir()
            .expect("create DNS tempdir");
        let d = dir.path();
        for sub in ["zones", "run", "db"] {
            fs::create_dir(d.join(sub)).expect("create knot subdirectory");
        }
        let mut zone_files = Vec::new();
        for (i, ((_, body), origin)) in zones.iter().zip(&good).enumerate() {
            let path = d.join(format!("zones/{i}.zone"));
            fs::write(&path, format!("{}{body}\n", preamble(origin))).expect("write zone file");
            zone_files.push((origin.as_str(), path));
        }
        for (i, origin) in bad.iter().enumerate() {
            let path = d.join(format!("zones/broken-{i}.zone"));
            // A valid start, then a line knot's parser rejects ("unsupported record
            // type"): the zone fails to load as a whole, however good the rest is.
            fs::write(
                &path,
                format!("{}this line is not a resource record\n", preamble(origin)),
            )
            .expect("write broken zone file");
            zone_files.push((origin.as_str(), path));
        }

        let log_path = d.join("knotd.log");
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = pick_port();
            let identity = format!(
                "mailshot-test-{}-{}",
                std::process::id(),
                SERVER_SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let conf = d.join("knot.conf");
            fs::write(&conf, knot_conf(d, port, &identity, &zone_files)).expect("write knot.conf");
            match launch(&conf, &log_path, port, &identity, &good, &bad) {
                Ok(knotd) => {
                    return DnsServer {
                        port,
                        knotd,
                        log_path,
                        _dir: dir,
                    };
                }
                Err(Launch::PortTaken) => {
                    release_port(port);
                    let _ = writeln!(
                        failures,
                        "attempt {attempt}: port {port} was taken\n{}",
                        read_log(&log_path)
                    );
                }
                Err(Launch::Failed(why)) => {
                    release_port(port);
                    // knot's errors cite zone-file line numbers, and the files go away
                    // with the tempdir, so show them numbered.
                    let mut files = String::new();
                    for (origin, path) in &zone_files {
                        let _ = writeln!(files, "--- zone {origin} ({}) ---", path.display());
                        let text = fs::read_to_string(path).unwrap_or_default();
                        for (n, line) in text.lines().enumerate() {
                            let _ = writeln!(files, "{:>4} {line}", n + 1);
                        }
                    }
                    panic!(
                        "knotd did not start: {why}\n--- knot.conf ---\n{}{files}--- knotd log ---\n{}",
                        fs::read_to_string(&conf).unwrap_or_default(),
                        read_log(&log_path)
                    );
                }
            }
        }
        panic!("knotd could not bind a free port in {START_ATTEMPTS} attempts\n{failures}");
    }

    /// "127.0.0.1:PORT", for `--nameserver`.
    pub fn nameserver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The campaign's `[preflight]` table for an audit that asks this server only, with the
    /// relay's sending address set to 192.0.2.25 (the address the test zones authorize).
    pub fn preflight(&self) -> String {
        format!(
            "[preflight]\nnameserver = \"{}\"\nsending_ips = [\"192.0.2.25\"]\n",
            self.nameserver()
        )
    }

    /// knotd's log so far (zone loads, semantic-check notices, errors).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Stop first, so no other server of ours is handed the port while knotd holds it.
        self.knotd.stop();
        release_port(self.port);
    }
}

/// knotd and its watchdog. Stopping both on drop means no early return or panic in
/// `launch` can leak a server.
struct Knotd {
    child: Child,
    // A `sh` that waits for EOF on the pipe and then sends knotd SIGTERM: if the test
    // process dies without running Drop, the pipe closes and knotd still goes away.
    watchdog: Option<(Child, ChildStdin)>,
}

impl Knotd {
    /// Idempotent: later calls find nothing left to stop.
    fn stop(&mut self) {
        // Watchdog first: once it is gone nothing else can signal knotd's pid, which stays
        // ours (unreaped, so not reusable) until `stop` below reaps it.
        if let Some((mut watchdog, _stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        stop(&mut self.child);
    }
}

impl Drop for Knotd {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Launch {
    /// knotd exited because another process holds the port: retry with another one.
    PortTaken,
    Failed(String),
}

/// Spawns knotd and waits until it is really serving: it answers our unique identity (so the
/// answers come from this knotd, not another server that holds the port), every good zone
/// answers its SOA authoritatively over UDP, the first one also over TCP, and every broken
/// zone has failed to load.
fn launch(
    conf: &Path,
    log_path: &Path,
    port: u16,
    identity: &str,
    good: &[String],
    bad: &[String],
) -> Result<Knotd, Launch> {
    // A file, not a pipe: nobody drains knotd's output while a test runs, and a full pipe
    // would block its logging and so the server.
    let log = File::create(log_path).expect("create knotd log");
    let log2 = log.try_clone().expect("clone knotd log handle");
    let knotd = if Path::new(KNOTD).exists() {
        KNOTD
    } else {
        "knotd"
    };
    let child = Command::new(knotd)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .map_err(|e| {
            Launch::Failed(format!(
                "spawn {knotd}: {e} (is Debian's knot installed? run tests/setup)"
            ))
        })?;
    let pid = child.id();
    let mut knotd = Knotd {
        child,
        watchdog: None,
    };
    let mut watchdog = Command::new("sh")
        .args([
            "-c",
            "read -r _ || :; kill -TERM \"$1\" 2>/dev/null",
            "dns-watchdog",
        ])
        .arg(pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh for the knotd watchdog");
    let stdin = watchdog.stdin.take().expect("watchdog stdin");
    knotd.watchdog = Some((watchdog, stdin));

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = knotd.child.try_wait() {
            let log = read_log(log_path);
            // knotd binds UDP with SO_REUSEPORT, so a UDP port shared with another knotd of
            // ours goes unnoticed; the TCP bind (no reuseport by default) is what fails.
            return Err(if log.contains("address already in use") {
                Launch::PortTaken
            } else {
                Launch::Failed(format!("knotd exited with {status}"))
            });
        }
        let log = read_log(log_path).to_ascii_lowercase();
        for origin in good {
            if log.contains(&format!("[{origin}.] zone event 'load' failed")) {
                return Err(Launch::Failed(format!("zone {origin:?} did not load")));
            }
        }
        if ready(port, identity, good, bad, &log) {
            return Ok(knotd);
        }
        if Instant::now() >= deadline {
            return Err(Launch::Failed(format!(
                "no authoritative answers from 127.0.0.1:{port} within {READY_TIMEOUT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn ready(port: u16, identity: &str, good: &[String], bad: &[String], log: &str) -> bool {
    let ours = udp_query(port, "id.server.", TYPE_TXT, CLASS_CH)
        .is_some_and(|r| contains(&r.raw, identity.as_bytes()));
    if !ours {
        return false;
    }
    let authoritative = |r: Option<Reply>| r.is_some_and(|r| r.rcode == 0 && r.aa && r.answers > 0);
    if !good
        .iter()
        .all(|o| authoritative(udp_query(port, o, TYPE_SOA, CLASS_IN)))
    {
        return false;
    }
    let tcp_ok = match good.first() {
        Some(o) => authoritative(tcp_query(port, o, TYPE_SOA, CLASS_IN)),
        None => tcp_query(port, "id.server.", TYPE_TXT, CLASS_CH)
            .is_some_and(|r| contains(&r.raw, identity.as_bytes())),
    };
    tcp_ok
        && bad
            .iter()
            .all(|o| log.contains(&format!("[{o}.] zone event 'load' failed")))
}

/// SIGTERM, a grace period, then SIGKILL; always reaps.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // std only sends SIGKILL; knotd deserves a clean shutdown (it flushes its timer DB).
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A port free on 127.0.0.1 for both UDP and TCP at the time of asking, and not handed to
/// another server of this process. The probe sockets are closed before knotd binds, so
/// another process can still take it in between; `launch` notices and we retry.
fn pick_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP probe socket");
        let port = udp.local_addr().expect("probe socket address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        if PORTS_IN_USE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1 after 100 tries");
}

fn release_port(port: u16) {
    PORTS_IN_USE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&port);
}

/// "Example.COM." and "example.com" name the same zone; knot logs it lowercase.
fn normalize_origin(origin: &str) -> String {
    let o = origin.trim().trim_end_matches('.').to_ascii_lowercase();
    assert!(
        !o.is_empty()
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "test zone origin {origin:?} must be a plain domain name"
    );
    o
}

/// What every test zone starts with. The NS comes last so that a body line without an owner
/// continues the apex rather than `ns`.
fn preamble(origin: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n\
         $TTL 300\n\
         @ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 300\n\
         ns.{origin}. IN A 127.0.0.1\n\
         @ IN NS ns.{origin}.\n"
    )
}

fn knot_conf(dir: &Path, port: u16, identity: &str, zones: &[(&str, PathBuf)]) -> String {
    let d = dir.display();
    let mut conf = format!(
        r#"# Written by tests/util/dns.rs for one test; everything lives in this directory.
server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
    # Answered for CH TXT id.server.: lets the harness tell this knotd from another
    # server that grabbed the same port.
    identity: "{identity}"
    # Many servers run at once on two cores; one worker of each kind is plenty for tests.
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    # No `user`: knotd runs as whoever starts it, root in CI or not.

control:
    listen: "{d}/run/knot.sock"

log:
  - target: stderr
    any: info

database:
    storage: "{d}/db"
    # LMDB maps these sizes up front; the defaults (up to 20 GiB) are for real servers.
    journal-db-max-size: 16M
    kasp-db-max-size: 8M
    timer-db-max-size: 8M
    catalog-db-max-size: 8M

template:
  - id: default
    storage: "{d}/zones"
    # The zone file is the whole truth: loaded as is, never written back, no journal.
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    # Serve parseable misconfigurations (they are what an audit must see); parse errors
    # still stop a zone from loading.
    semantic-checks: soft

zone:
"#
    );
    for (origin, path) in zones {
        let _ = writeln!(
            conf,
            "  - domain: \"{origin}.\"\n    file: \"{}\"",
            path.display()
        );
    }
    conf
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

// Just enough DNS to ask knot whether it is up. Only the readiness poll uses this; tests
// check answers with independent clients (kdig, dnspython, checkdmarc, mailshot itself).

const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const CLASS_IN: u16 = 1;
const CLASS_CH: u16 = 3;

struct Reply {
    rcode: u8,
    aa: bool,
    answers: u16,
    raw: Vec<u8>,
}

static QUERY_ID: AtomicU32 = AtomicU32::new(1);

fn build_query(name: &str, qtype: u16, qclass: u16) -> (u16, Vec<u8>) {
    let id = QUERY_ID.fetch_add(1, Ordering::Relaxed) as u16;
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    // Flags 0: a standard query without RD, as asked of an authoritative server.
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    (id, q)
}

fn parse_reply(id: u16, raw: Vec<u8>) -> Option<Reply> {
    if raw.len() < 12 || raw[..2] != id.to_be_bytes() || raw[2] & 0x80 == 0 {
        return None;
    }
    Some(Reply {
        rcode: raw[3] & 0x0f,
        aa: raw[2] & 0x04 != 0,
        answers: u16::from_be_bytes([raw[6], raw[7]]),
        raw,
    })
}

fn udp_query(port: u16, name: &str, qtype: u16, qclass: u16) -> Option<Reply> {
    let (id, q) = build_query(name, qtype, qclass);
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    // Connected, so a closed port shows up as an error instead of a timeout.
    sock.connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    sock.send(&q).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    parse_reply(id, buf)
}

fn tcp_query(port: u16, name: &str, qtype: u16, qclass: u16) -> Option<Reply> {
    let (id, q) = build_query(name, qtype, qclass);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    s.write_all(&msg).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    parse_reply(id, buf)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
