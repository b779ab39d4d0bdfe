//! The unsubscribe endpoint under test: `mailshot unsubscribe serve` started on a free
//! loopback port, tokens computed independently of mailshot, and curl (Debian) as the client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use base64::Engine;

use super::mailshot;

/// A running `mailshot unsubscribe serve`, killed on drop. Its stderr (the tracing log,
/// access lines included) goes to `log`.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts the server for `campaigns` with `extra` flags and waits for its "listening"
    /// line. `fixed_time` pins its clock (unix seconds) instead of the suite's default.
    pub fn start(campaigns: &[&Path], extra: &[&str], fixed_time: Option<&str>) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut c = mailshot();
        c.args(["-v", "unsubscribe", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .args(campaigns)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(t) = fixed_time {
            c.env("MAILSHOT_FIXED_TIME", t);
        }
        let mut child = c.spawn().expect("start mailshot unsubscribe serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let Some(addr) = first.trim().strip_prefix("mailshot: listening on ") else {
            let _ = child.kill();
            panic!(
                "server did not start: {first:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Serve {
            addr: addr.to_owned(),
            child,
            log,
            _dir: dir,
        }
    }

    /// `http://addr/unsubscribe?email=...&token=...` for `address` and `token`.
    pub fn url(&self, address: &str, token: &str) -> String {
        format!(
            "http://{}{}",
            self.addr,
            query("/unsubscribe", address, token)
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `path?email=<encoded>&token=<token>`, as mailshot's links are built.
pub fn query(path: &str, address: &str, token: &str) -> String {
    let email: String = form_urlencoded::byte_serialize(address.as_bytes()).collect();
    format!("{path}?email={email}&token={token}")
}

/// The token, computed here: base64url(HMAC-SHA256(secret, lowercase(address))).
pub fn token(secret: &str, address: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, address.to_lowercase().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// A curl answer: the status (0 when no HTTP answer came) and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Runs curl with `args`, returning the status and body.
pub fn curl(args: &[&str]) -> Answer {
    let out: Output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    Answer {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

/// A one-click POST (RFC 8058) of `url`.
pub fn one_click(url: &str) -> Answer {
    curl(&["-d", "List-Unsubscribe=One-Click", url])
}
