//! A real Postfix (Debian's) for the bounce tests: a private instance with its own
//! config_directory, queue_directory and data_directory under a temporary folder, smtpd on a
//! free loopback port, and virtual(8) delivery into Maildirs. smtpd accepts mail for unknown
//! users of the recipient domain (`smtpd_reject_unlisted_recipient = no`), so virtual(8)
//! refuses them after acceptance and Postfix's own bounce daemon writes a genuine RFC 3464
//! DSN to the envelope sender, which is a Maildir of this same instance.
//!
//! Postfix's master runs only as root (it drops to `mail_owner` itself): the test suite runs
//! as root on the CI machine, and this harness says so plainly when it does not. The master's
//! pid is recorded once it is up, so a failed `postfix stop` still ends it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::free_port;

const POSTFIX: &str = "/usr/sbin/postfix";

/// The recipients' domain, delivered by this instance.
pub const RCPT_DOMAIN: &str = "rcpt.example";
/// The instance's `myhostname`, which its smtpd greets with.
const MYHOSTNAME: &str = "mx.rcpt.example";

/// A running Postfix, stopped on drop.
pub struct Postfix {
    pub port: u16,
    conf: PathBuf,
    /// The master daemon's pid, from `<queue_directory>/pid/master.pid`: signalled directly on
    /// drop if `postfix stop` fails, so that no test leaves a Postfix running.
    master: Option<i32>,
    dir: tempfile::TempDir,
}

/// The uid and gid of the `postfix` account the Debian package creates.
fn postfix_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postfix"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no `postfix` user: tests/setup installs Postfix"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl Postfix {
    /// Starts an instance that delivers `mailboxes` (full addresses, in its recipient domain
    /// or any other domain named there) to Maildirs and bounces every other address of those
    /// domains after accepting it. `recipient_delimiter` is `+`, so `bounces+tag@d` is
    /// delivered to the `bounces@d` Maildir.
    pub fn start(mailboxes: &[&str]) -> Postfix {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "Postfix's master runs only as root; run the test suite as root (as CI does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mailshot-postfix-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        // Postfix's daemons run as `postfix` and must reach the queue and the Maildirs.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = postfix_ids();
        for sub in ["conf", "queue", "data", "mail"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for sub in ["data", "mail"] {
            std::os::unix::fs::chown(d.join(sub), Some(uid), Some(gid)).unwrap();
        }
        let port = free_port();
        let conf = d.join("conf");
        let mut domains: Vec<&str> = mailboxes
            .iter()
            .filter_map(|m| m.split_once('@').map(|(_, dom)| dom))
            .chain([RCPT_DOMAIN])
            .collect();
        domains.sort_unstable();
        domains.dedup();
        std::fs::write(conf.join("main.cf"), main_cf(d, &domains, uid, gid)).unwrap();
        std::fs::write(conf.join("master.cf"), master_cf(port)).unwrap();
        let maps: String = mailboxes.iter().map(|m| format!("{m} {m}/\n")).collect();
        std::fs::write(conf.join("vmailbox"), maps).unwrap();
        let mut postfix = Postfix {
            port,
            conf,
            master: None,
            dir,
        };
        let out = postfix.command("start");
        assert!(
            out.as_ref().is_ok_and(|o| o.status.success()),
            "postfix start failed (tests/setup installs Postfix): {out:?}\n{}",
            postfix.log()
        );
        postfix.wait_ready();
        postfix
    }

    fn command(&self, what: &str) -> std::io::Result<std::process::Output> {
        Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.conf)
            .arg(what)
            .output()
    }

    /// Waits for the master's pid file and for this instance's smtpd banner on the port (a
    /// bare TCP connect could reach another program that took the port first).
    fn wait_ready(&mut self) {
        let pid_file = self.dir.path().join("queue/pid/master.pid");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.master.is_none() {
                self.master = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
            }
            if self.master.is_some() && self.banner_is_ours() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Postfix (master pid {:?}) did not greet as {MYHOSTNAME} on {}:\n{}",
            self.master,
            self.port,
            self.log()
        );
    }

    /// Whether the port answers with a `220 <this instance's myhostname>` greeting.
    fn banner_is_ours(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let greeted = BufReader::new(&stream).read_line(&mut line).is_ok()
            && line.starts_with(&format!("220 {MYHOSTNAME} "));
        let _ = stream.write_all(b"QUIT\r\n");
        greeted
    }

    /// The master daemon's pid, once started.
    pub fn master_pid(&self) -> Option<i32> {
        self.master
    }

    /// The instance's configuration directory (a test may break it on purpose).
    pub fn config_dir(&self) -> &Path {
        &self.conf
    }

    /// Postfix's own log (maillog_file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The Maildir a mailbox address is delivered to.
    pub fn maildir(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("mail").join(mailbox)
    }

    /// Waits until the mailbox's Maildir holds `count` delivered messages; their paths.
    pub fn wait_for_mail(&self, mailbox: &str, count: usize) -> Vec<PathBuf> {
        let new = self.maildir(mailbox).join("new");
        let start = Instant::now();
        loop {
            let files: Vec<PathBuf> = std::fs::read_dir(&new)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            if files.len() >= count {
                return files;
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!(
                    "{mailbox}: {} of {count} message(s) delivered\n--- maillog ---\n{}",
                    files.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let stopped = self.command("stop").is_ok_and(|o| o.status.success());
        if !stopped && let Some(pid) = self.master {
            // What `postfix stop` does: SIGTERM makes the master end its children and exit.
            // SAFETY: kill has no memory effects; the pid is the one the master wrote.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

fn main_cf(d: &Path, domains: &[&str], uid: u32, gid: u32) -> String {
    let d = d.display();
    format!(
        "compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = {MYHOSTNAME}
mydomain = {RCPT_DOMAIN}
myorigin = {RCPT_DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtputf8_enable = no
alias_maps =
alias_database =
biff = no
recipient_delimiter = +
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = texthash:{d}/conf/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
# Accept unknown users at RCPT, so that virtual(8) refuses them after acceptance and the
# bounce daemon writes a DSN (a 550 at RCPT would be the client's to report).
smtpd_reject_unlisted_recipient = no
default_transport = error:this test instance sends nothing outward
relay_transport = error:this test instance sends nothing outward
",
        domains = domains.join(", ")
    )
}

/// Only the services a local delivery and a bounce need, none chrooted (the queue directory
/// holds no copy of /etc).
fn master_cf(port: u16) -> String {
    let services = [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "virtual unix - n n - - virtual",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ];
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
        services.join("\n")
    )
}
