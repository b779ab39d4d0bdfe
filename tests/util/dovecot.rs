//! A real IMAP server for the intake tests: Dovecot from Debian, started on two loopback
//! ports (implicit TLS and STARTTLS) with the test PKI's leaf certificate and one
//! passwd-file user, and an independent client (Python's imaplib, tests/support/imap_tool.py)
//! to fill it over APPEND and read the flags back.
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::tls::TestPki;

const TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/imap_tool.py");
const PYTHON: &str = "/usr/bin/python3";
pub const USER: &str = "bounces@news.example.com";
pub const PASSWORD: &str = "imap-test-password";

/// A running Dovecot, stopped on drop.
pub struct Dovecot {
    pub imaps_port: u16,
    pub starttls_port: u16,
    pub pki: TestPki,
    /// A file holding the user's password, for `--password-file`.
    pub password_file: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl Dovecot {
    pub fn start() -> Dovecot {
        let pki = TestPki::new();
        let dir = tempfile::Builder::new()
            .prefix("mailshot-dovecot-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("run")).unwrap();
        std::fs::create_dir_all(d.join("home")).unwrap();
        std::fs::write(d.join("users"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let password_file = d.join("password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let (imaps_port, starttls_port) = (free_port(), free_port());
        std::fs::write(
            d.join("dovecot.conf"),
            config(d, &pki, imaps_port, starttls_port),
        )
        .unwrap();
        let child = Command::new("dovecot")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dovecot (tests/setup installs dovecot-imapd)");
        let dovecot = Dovecot {
            imaps_port,
            starttls_port,
            pki,
            password_file,
            child,
            dir,
        };
        dovecot.wait_ready();
        dovecot
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if [self.imaps_port, self.starttls_port]
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "dovecot did not listen within 30 s; its log:\n{}",
            std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
        );
    }

    /// `imaps://bounces%40news.example.com@localhost:PORT/MAILBOX`.
    pub fn url(&self, mailbox: &str) -> String {
        format!(
            "imaps://{}@localhost:{}/{mailbox}",
            USER.replace('@', "%40"),
            self.imaps_port
        )
    }

    /// The STARTTLS form, `imap://`.
    pub fn starttls_url(&self, mailbox: &str) -> String {
        format!(
            "imap://{}@localhost:{}/{mailbox}",
            USER.replace('@', "%40"),
            self.starttls_port
        )
    }

    fn tool(&self, args: &[&str]) -> String {
        let port = self.imaps_port.to_string();
        let out = Command::new(PYTHON)
            .arg(TOOL)
            .args([port.as_str(), USER, PASSWORD])
            .arg(&self.pki.ca_pem)
            .args(args)
            .output()
            .expect("run imap_tool.py");
        assert!(
            out.status.success(),
            "imap_tool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// APPENDs each file to the mailbox, in order.
    pub fn append(&self, mailbox: &str, files: &[PathBuf]) {
        let mut args = vec!["append", mailbox];
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        self.tool(&args);
    }

    /// (UID, flags) of every message in the mailbox; empty if it does not exist.
    pub fn flags(&self, mailbox: &str) -> Vec<(u32, Vec<String>)> {
        serde_json::from_str(&self.tool(&["flags", mailbox])).unwrap()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its login and imap processes too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// As root, mail is stored as `nobody`; otherwise Dovecot runs entirely as this user.
fn config(d: &Path, pki: &TestPki, imaps: u16, starttls: u16) -> String {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    let (uid, users) = if me == 0 {
        let home = d.join("home");
        let _ = std::os::unix::fs::chown(&home, Some(65534), Some(65534));
        ("65534".to_owned(), String::new())
    } else {
        let name = std::env::var("USER").unwrap_or_else(|_| "nobody".into());
        (
            me.to_string(),
            format!("default_internal_user = {name}\ndefault_login_user = {name}\n"),
        )
    };
    let d = d.display();
    format!(
        r#"base_dir = {d}/run
state_dir = {d}/run/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
auth_mechanisms = plain login
first_valid_uid = 1
{users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={d}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {starttls}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#,
        cert = pki.leaf_cert.display(),
        key = pki.leaf_key.display(),
    )
}
