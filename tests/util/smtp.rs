//! Rust side of the loopback SMTP server: starts tests/support/smtp_server.py (real aiosmtpd) as a child process and reads back what it received.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::tls::TestPki;

pub mod scripted;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
/// Debian installs aiosmtpd for the system interpreter only.
const PYTHON: &str = "/usr/bin/python3";
/// Generous: two cores shared with a concurrent cargo build.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Cleartext listener that offers STARTTLS and refuses MAIL until it is used.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No TLS, no AUTH.
    Plain,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Starttls => "starttls",
            Mode::Implicit => "implicit",
            Mode::Plain => "plain",
        }
    }
}

/// Faults injected through aiosmtpd's own hooks and options (see the docstring of
/// tests/support/smtp_server.py). The default injects nothing.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// RCPT TO for each address gets `550 5.1.1 <addr>: user unknown`.
    pub fail_rcpt: Vec<String>,
    /// (address or `*`, whole reply): RCPT TO for that address is answered with the reply.
    pub rcpt_reply: Vec<(String, String)>,
    /// (N, reply): every Nth DATA the server receives is answered with the reply, not stored.
    pub data_reply_every: Option<(u32, String)>,
    /// (count, seconds): the first `count` DATA transactions wait that long before the
    /// server stores and answers them; a client that hangs up meanwhile delivers nothing.
    pub stall_data: Option<(u32, f64)>,
    /// aiosmtpd's idle timeout in seconds: it closes connections idle this long.
    pub idle_timeout: Option<f64>,
    /// Do not advertise PIPELINING: the client must send MAIL, RCPT and DATA one at a time.
    pub no_pipelining: bool,
}

/// A running aiosmtpd on 127.0.0.1:`port`, killed on drop.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
    events_path: PathBuf,
    // Held open on purpose: the server exits on stdin EOF, so if this test
    // process dies without running Drop the server still goes away.
    _stdin: ChildStdin,
    stderr_path: PathBuf,
    // Declared last so it is removed after the child is gone.
    _dir: tempfile::TempDir,
}

/// One message as the server stored it.
#[derive(Clone, Debug)]
pub struct Received {
    /// DATA exactly as the client submitted it (dot-unstuffed, CRLFs intact).
    pub raw: Vec<u8>,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Unix time at which the server had the complete DATA.
    pub received_at: f64,
    /// Login name the session authenticated as, if it did.
    pub auth_user: Option<String>,
    /// Path of the `.eml` file.
    pub path: PathBuf,
}

impl SmtpServer {
    pub fn start(mode: Mode, pki: &TestPki, auth: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::start_with(mode, pki, auth, &[])
    }

    /// Like `start`, and RCPT TO for each address in `fail_rcpt` gets
    /// `550 5.1.1 <addr>: user unknown`.
    pub fn start_with(
        mode: Mode,
        pki: &TestPki,
        auth: Option<(&str, &str)>,
        fail_rcpt: &[&str],
    ) -> SmtpServer {
        let faults = Faults {
            fail_rcpt: fail_rcpt.iter().map(|a| a.to_string()).collect(),
            ..Faults::default()
        };
        SmtpServer::start_faulty(mode, pki, auth, &faults)
    }

    /// A plain-SMTP (loopback) server with `faults`: no TLS, so no certificates to keep.
    pub fn plain_faulty(faults: &Faults) -> SmtpServer {
        SmtpServer::start_faulty(Mode::Plain, &TestPki::new(), None, faults)
    }

    /// Like `start`, with the faults in `faults` injected.
    pub fn start_faulty(
        mode: Mode,
        pki: &TestPki,
        auth: Option<(&str, &str)>,
        faults: &Faults,
    ) -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("mailshot-smtp-")
            .tempdir()
            .expect("create SMTP tempdir");
        let maildir = dir.path().join("maildir");
        let stderr_path = dir.path().join("server.stderr");
        let events_path = dir.path().join("events.log");
        // A file, not a pipe: nobody drains stderr while a test runs, and a
        // full pipe would block the server's logging and so the server.
        let stderr = File::create(&stderr_path).expect("create server stderr file");

        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT)
            .args(["--mode", mode.arg()])
            .arg("--cert")
            .arg(&pki.leaf_cert)
            .arg("--key")
            .arg(&pki.leaf_key)
            .arg("--maildir")
            .arg(&maildir)
            .args(["--port", "0"])
            .arg("--events")
            .arg(&events_path);
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        for addr in &faults.fail_rcpt {
            cmd.args(["--fail-rcpt", addr]);
        }
        for (addr, reply) in &faults.rcpt_reply {
            cmd.args(["--rcpt-reply", addr, reply]);
        }
        if let Some((n, reply)) = &faults.data_reply_every {
            cmd.args(["--data-reply-every", &n.to_string(), reply]);
        }
        if let Some((count, secs)) = faults.stall_data {
            cmd.args(["--stall-data", &count.to_string(), &secs.to_string()]);
        }
        if let Some(secs) = faults.idle_timeout {
            cmd.args(["--timeout", &secs.to_string()]);
        }
        if faults.no_pipelining {
            cmd.arg("--no-pipelining");
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PYTHON} {SCRIPT}: {e}"));
        let stdin = child.stdin.take().expect("child stdin");
        let stdout = child.stdout.take().expect("child stdout");

        // A thread reads stdout so the wait below can time out; it keeps
        // draining afterwards so a stray print can never block the server.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });

        let ready = rx.recv_timeout(READY_TIMEOUT);
        let port = ready
            .as_deref()
            .ok()
            .and_then(|line| line.strip_prefix("READY "))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|&p| p != 0);
        let Some(port) = port else {
            let _ = child.kill();
            let status = child.wait();
            let log = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!(
                "SMTP server ({mode:?}) did not report READY (waited up to {READY_TIMEOUT:?}): \
                 first stdout line {ready:?}, exit {status:?}\n--- server stderr ---\n{log}"
            );
        };

        SmtpServer {
            port,
            maildir,
            child,
            events_path,
            _stdin: stdin,
            stderr_path,
            _dir: dir,
        }
    }

    /// Messages stored so far, in arrival order.  Only messages whose
    /// metadata exists are returned; the server writes it after the body,
    /// so every returned `raw` is complete.
    pub fn received(&self) -> Vec<Received> {
        let mut seqs: Vec<(u64, PathBuf)> = fs::read_dir(&self.maildir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let stem = p.file_stem()?.to_str()?;
                let seq = (stem.len() == 6).then(|| stem.parse::<u64>().ok())??;
                Some((seq, p))
            })
            .collect();
        seqs.sort();
        seqs.into_iter()
            .map(|(_, json)| read_message(json))
            .collect()
    }

    /// Polls `received()` until at least `count` messages are there.
    ///
    /// The server stores a message before it answers 250, so after a client
    /// has seen its 250 `received()` alone is enough; this is for clients
    /// whose completion the test cannot observe directly.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= count {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {count} message(s) within {timeout:?}, got {}\n--- server stderr ---\n{}",
                    got.len(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far (aiosmtpd logs every command at INFO).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// How many messages are stored so far: a directory listing without reading them, cheap
    /// enough to poll while thousands arrive.
    pub fn count(&self) -> usize {
        fs::read_dir(&self.maildir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.len() == 11
                            && name.ends_with(".json")
                            && name[..6].bytes().all(|b| b.is_ascii_digit())
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Kills the server (SIGKILL, mid-transaction if it is in one) and keeps what it stored,
    /// for tests of a relay that dies during a run.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every event line so far, each as its kind and its words, in the order they happened:
    /// what a test reads to tell what came between two events.
    pub fn all_events(&self) -> Vec<(String, Vec<String>)> {
        let text = fs::read_to_string(&self.events_path).unwrap_or_default();
        text.lines()
            .take(text.matches('\n').count())
            .filter_map(|l| {
                let mut words = l.split(' ');
                let kind = words.next()?.to_owned();
                Some((kind, words.map(str::to_owned).collect()))
            })
            .collect()
    }

    /// The server's event lines of one kind (`rcpt-refused`, `data-stall`, `data-refused`,
    /// `stored`), each split into its words after the kind, in the order they happened.
    pub fn events(&self, kind: &str) -> Vec<Vec<String>> {
        let text = fs::read_to_string(&self.events_path).unwrap_or_default();
        text.lines()
            // Only whole lines: the server may be writing the last one as we read.
            .take(text.matches('\n').count())
            .filter_map(|l| {
                let mut words = l.split(' ');
                (words.next() == Some(kind)).then(|| words.map(str::to_owned).collect())
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_message(json_path: PathBuf) -> Received {
    let eml = json_path.with_extension("eml");
    let raw = fs::read(&eml).unwrap_or_else(|e| panic!("read {}: {e}", eml.display()));
    let text = fs::read_to_string(&json_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", json_path.display()));
    let meta: Meta = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}: {text}", json_path.display()));
    Received {
        raw,
        mail_from: meta.mail_from.0,
        rcpt_tos: meta.rcpt_tos.into_iter().map(|a| a.0).collect(),
        received_at: meta.received_at,
        auth_user: meta.auth_user,
        path: eml,
    }
}

/// The server's `<seq>.json`. A struct rather than `serde_json::Value` because a Value
/// cannot hold the lone surrogates the server may write (see `LossyString`).
#[derive(Deserialize)]
struct Meta {
    mail_from: LossyString,
    rcpt_tos: Vec<LossyString>,
    received_at: f64,
    // deserialize_with makes a missing key an error; a plain Option would read it as null.
    #[serde(deserialize_with = "nullable_lossy")]
    auth_user: Option<String>,
}

/// A JSON string in which lone UTF-16 surrogate escapes become U+FFFD.
///
/// aiosmtpd decodes envelope addresses with `surrogateescape`, so a non-UTF-8 byte in
/// MAIL FROM or RCPT TO reaches the metadata as a lone `\udcXX` escape. serde_json
/// rejects those when it builds a `String`, which would make `received()` panic on
/// exactly the input a fault test wants to look at. Read as bytes, serde_json keeps them
/// as WTF-8 instead, and this type replaces each one with U+FFFD.
struct LossyString(String);

impl<'de> Deserialize<'de> for LossyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LossyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<LossyString, E> {
                Ok(LossyString(wtf8_lossy(b)))
            }
        }
        d.deserialize_bytes(V)
    }
}

fn nullable_lossy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<LossyString>::deserialize(d)?.map(|s| s.0))
}

/// WTF-8 to UTF-8, each surrogate becoming U+FFFD.
fn wtf8_lossy(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // A surrogate is the only thing WTF-8 adds to UTF-8: 0xED then 0xA0..=0xBF and one
        // continuation byte (0xED with 0x80..=0x9F is an ordinary character, U+D000..U+D7FF).
        if b[i] == 0xED && b.get(i + 1).is_some_and(|&c| c >= 0xA0) {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Lossy only as a backstop: serde_json hands over valid UTF-8 apart from surrogates.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's escapes as Python writes them: a surrogate pair, a lone surrogate
    /// from surrogateescape, and a quoted local part.
    #[test]
    fn harness_reads_lone_surrogates_in_server_metadata_as_replacement_characters() {
        let meta: Meta = serde_json::from_str(
            r#"{"mail_from": "\u00e9l\u00e8ve@ex.com", "rcpt_tos": ["\"q\\\"t\"@ex.com", "\ud83d\ude00@x", "a\udcffb@x"], "received_at": 1795688989.1545045, "auth_user": null}"#,
        )
        .unwrap();
        assert_eq!(meta.mail_from.0, "élève@ex.com");
        let rcpts: Vec<&str> = meta.rcpt_tos.iter().map(|a| a.0.as_str()).collect();
        assert_eq!(rcpts, ["\"q\\\"t\"@ex.com", "😀@x", "a\u{FFFD}b@x"]);
        // Not exact: without its float_roundtrip feature serde_json may land one ulp
        // (here 2.4e-7 s) off the nearest double, far below any timing tolerance.
        assert!((meta.received_at - 1795688989.1545045).abs() < 1e-6);
        assert_eq!(meta.auth_user, None);
        assert!(
            serde_json::from_str::<Meta>(r#"{"mail_from": "a", "rcpt_tos": [], "received_at": 1}"#)
                .is_err(),
            "auth_user is required"
        );
    }
}
