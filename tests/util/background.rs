//! `mailshot send` running in the background, for tests that act while it runs: signal it,
//! kill it, watch the server meanwhile.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::scenario::Scenario;
use super::smtp::{Faults, Mode, SmtpServer};
use super::{CampaignDir, mailshot};

/// `mailshot send` running in the background, its output going to files (nobody drains a
/// pipe while the test watches the server). Killed on drop if still running.
pub struct Background {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Background {
    /// `mailshot send --quiet EXTRA campaign.toml`.
    pub fn start(c: &CampaignDir, extra: &[&str], tag: &str) -> Background {
        let mut args = vec!["--quiet"];
        args.extend_from_slice(extra);
        Background::send(c, &args, tag)
    }

    /// `mailshot send ARGS campaign.toml`, its output in `<tag>.stdout` and `<tag>.stderr`.
    pub fn send(c: &CampaignDir, args: &[&str], tag: &str) -> Background {
        let out = c.path().join(format!("{tag}.stdout"));
        let err = c.path().join(format!("{tag}.stderr"));
        let child = mailshot()
            .arg("send")
            .args(args)
            .arg(c.toml_str())
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("spawn mailshot");
        Background {
            child: Some(child),
            out,
            err,
        }
    }

    /// Sends a signal with kill(1): no libc needed.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Polls `cond` until it holds; fails if mailshot exits first.
    pub fn wait_until(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if cond() {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let err = std::fs::read_to_string(&self.err).unwrap_or_default();
                panic!("mailshot exited ({st}) before {what}\n{err}");
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            // Each poll lists a directory of up to a few thousand files: not too often.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit and returns it with stdout and stderr (also printed, so a failing
    /// test shows them).
    pub fn finish(mut self) -> (ExitStatus, String, String) {
        let status = self.child.take().unwrap().wait().unwrap();
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        eprintln!("--- background mailshot: {status}\n--- stdout\n{out}--- stderr\n{err}");
        (status, out, err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain-SMTP campaign to `all` that sends two at a time, to an aiosmtpd that stalls its
/// first two DATA transactions: ready for `kill_in_data(.., 2)` to leave both in doubt.
pub fn stalling_two_in_data(all: &[&str]) -> (SmtpServer, CampaignDir) {
    Scenario::new()
        .recipients(all)
        .toml("[limits]\nconcurrency = 2\n")
        .faults(Faults {
            stall_data: Some((2, 60.0)),
            ..Faults::default()
        })
        .smtp(Mode::Plain)
}

/// Runs `mailshot send` and SIGKILLs it once aiosmtpd holds `stalled` DATA transactions (its
/// `stall_data` fault): those messages are left in doubt.
pub fn kill_in_data(c: &CampaignDir, server: &SmtpServer, stalled: usize) {
    let mut bg = Background::start(c, &[], "killed");
    bg.wait_until("the senders are in DATA", || {
        server.events("data-stall").len() == stalled
    });
    bg.signal("-KILL");
    let (status, _, _) = bg.finish();
    assert_eq!(status.code(), None, "killed, not exited: {status}");
}
