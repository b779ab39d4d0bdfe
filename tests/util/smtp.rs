//! Rust side of the loopback SMTP server: starts tests/support/smtp_server.py (real aiosmtpd) as a child process and reads back what it received.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::tls::TestPki;

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
    let meta =
        json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", json_path.display()));
    macro_rules! bad {
        ($k:expr) => {
            panic!(
                "{}: missing or malformed {:?}: {text}",
                json_path.display(),
                $k
            )
        };
    }
    let field = |k: &str| meta.get(k).unwrap_or_else(|| bad!(k));

    let mail_from = field("mail_from")
        .as_str()
        .unwrap_or_else(|| bad!("mail_from"))
        .to_owned();
    let rcpt_tos = match field("rcpt_tos") {
        json::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_else(|| bad!("rcpt_tos")).to_owned())
            .collect(),
        _ => bad!("rcpt_tos"),
    };
    let received_at = match field("received_at") {
        json::Value::Number(n) => *n,
        _ => bad!("received_at"),
    };
    let auth_user = match field("auth_user") {
        json::Value::Null => None,
        json::Value::String(s) => Some(s.clone()),
        _ => bad!("auth_user"),
    };
    Received {
        raw,
        mail_from,
        rcpt_tos,
        received_at,
        auth_user,
        path: eml,
    }
}

/// Just enough JSON for the server's metadata files.  serde_json is not a
/// dev-dependency of this crate, and the format is ours, so a small strict
/// reader is simpler than adding one.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }

        fn err<T>(&self, what: &str) -> Result<T, String> {
            Err(format!("{what} at byte {}", self.i))
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.s[self.i..].starts_with(lit.as_bytes()) {
                self.i += lit.len();
                true
            } else {
                false
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.s.get(self.i) {
                None => self.err("unexpected end"),
                Some(b'{') => {
                    self.i += 1;
                    let mut fields = Vec::new();
                    self.ws();
                    if self.eat("}") {
                        return Ok(Value::Object(fields));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.ws();
                        if !self.eat(":") {
                            return self.err("expected ':'");
                        }
                        fields.push((key, self.value()?));
                        self.ws();
                        if self.eat("}") {
                            return Ok(Value::Object(fields));
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or '}'");
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat("]") {
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        if self.eat("]") {
                            return Ok(Value::Array(items));
                        }
                        if !self.eat(",") {
                            return self.err("expected ',' or ']'");
                        }
                    }
                }
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(_) if self.eat("null") => Ok(Value::Null),
                Some(_) if self.eat("true") => Ok(Value::Bool(true)),
                Some(_) if self.eat("false") => Ok(Value::Bool(false)),
                Some(_) => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(
                            self.s[self.i],
                            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                        )
                    {
                        self.i += 1;
                    }
                    let tok = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    match tok.parse::<f64>() {
                        Ok(n) if !tok.is_empty() => Ok(Value::Number(n)),
                        _ => self.err("bad value"),
                    }
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let digits = self
                .s
                .get(self.i..self.i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            match digits.and_then(|h| u32::from_str_radix(h, 16).ok()) {
                Some(n) => {
                    self.i += 4;
                    Ok(n)
                }
                None => self.err("bad \\u escape"),
            }
        }

        fn string(&mut self) -> Result<String, String> {
            if !self.eat("\"") {
                return self.err("expected string");
            }
            // Bytes, not chars: unescaped runs are copied as-is, and the
            // input is a &str, so they stay valid UTF-8.
            let mut out: Vec<u8> = Vec::new();
            loop {
                let Some(&b) = self.s.get(self.i) else {
                    return self.err("unterminated string");
                };
                self.i += 1;
                match b {
                    b'"' => break,
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return self.err("unterminated escape");
                        };
                        self.i += 1;
                        let c = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                // Python escapes non-BMP characters as
                                // surrogate pairs, and SMTPUTF8 input it
                                // could not decode as lone surrogates.
                                if (0xD800..0xDC00).contains(&hi) && self.eat("\\u") {
                                    let lo = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&lo) {
                                        char::from_u32(
                                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00),
                                        )
                                        .unwrap_or('\u{FFFD}')
                                    } else {
                                        out.extend_from_slice("\u{FFFD}".as_bytes());
                                        char::from_u32(lo).unwrap_or('\u{FFFD}')
                                    }
                                } else {
                                    char::from_u32(hi).unwrap_or('\u{FFFD}')
                                }
                            }
                            _ => return self.err("bad escape"),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => out.push(b),
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn harness_json_reads_server_metadata() {
            let v = parse(
                r#"{"mail_from": "\u00e9l\u00e8ve@ex.com", "rcpt_tos": ["\"q\\\"t\"@ex.com", "\ud83d\ude00@x"], "received_at": 1795688989.1545045, "auth_user": null}"#,
            )
            .unwrap();
            assert_eq!(v.get("mail_from").unwrap().as_str(), Some("élève@ex.com"));
            assert_eq!(
                v.get("rcpt_tos").unwrap(),
                &Value::Array(vec![
                    Value::String("\"q\\\"t\"@ex.com".into()),
                    Value::String("😀@x".into())
                ])
            );
            assert_eq!(
                v.get("received_at"),
                Some(&Value::Number(1795688989.1545045))
            );
            assert_eq!(v.get("auth_user"), Some(&Value::Null));
            assert!(parse(r#"{"a": 1} x"#).is_err());
            assert!(parse(r#"{"a": "unterminated}"#).is_err());
        }
    }
}
