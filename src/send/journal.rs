//! The journal: an append-only record of every recipient's state, so an interrupted run
//! resumes without sending twice and without losing anyone.
//!
//! One line per event, tab-separated: `I` in flight (written and synced before the SMTP
//! transaction starts), `S` sent (after the relay's 250), `D` deferred, `F` failed
//! permanently, `X` suppressed. The first line names the format and the inputs' fingerprint.
//!
//! Syncs are grouped: one writer thread writes whatever has queued up and calls fsync once
//! for all of it. A sender waits for that sync only for its `I` line, and only before it
//! hands over the message itself (the envelope goes out meanwhile), so every message the
//! relay may have accepted is on disk first; `S` lines ride along with the next sync.
//! Because a sender's next `I` is synced after its previous `S` was written, at most
//! `concurrency` recipients can be in flight without a durable outcome: the in-doubt bound.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

pub const HEADER: &str = "mailshot-journal 1";

/// A recipient's last known state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    InFlight,
    Sent,
    Deferred,
    Failed,
    Suppressed,
    /// In doubt after a crash, and the user chose `--in-doubt skip`: settled, not resent.
    Skipped,
    /// Written to an outbox folder: settled for outbox runs, not sent for relay runs.
    Written,
}

impl State {
    fn code(self) -> char {
        match self {
            State::InFlight => 'I',
            State::Sent => 'S',
            State::Deferred => 'D',
            State::Failed => 'F',
            State::Suppressed => 'X',
            State::Skipped => 'K',
            State::Written => 'W',
        }
    }

    fn from_code(c: &str) -> Option<State> {
        Some(match c {
            "I" => State::InFlight,
            "S" => State::Sent,
            "D" => State::Deferred,
            "F" => State::Failed,
            "X" => State::Suppressed,
            "K" => State::Skipped,
            "W" => State::Written,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a mailshot journal (first line {found:?})")]
    Format { path: PathBuf, found: String },
    #[error("cannot write the journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What earlier runs left behind.
#[derive(Debug, Default)]
pub struct Prior {
    /// Lowercase address -> (row, last state, the relay's reply for sent/failed).
    pub states: HashMap<Box<str>, (u64, State)>,
    /// The fingerprint the journal was started with, if there was a journal.
    pub fingerprint: Option<String>,
    /// Lines that could not be read (a line cut by a crash is expected at most once).
    pub damaged_lines: usize,
}

impl Prior {
    pub fn state(&self, address: &str) -> Option<State> {
        self.states
            .get(address.to_lowercase().as_str())
            .map(|(_, s)| *s)
    }

    pub fn count(&self, s: State) -> usize {
        self.states.values().filter(|(_, st)| *st == s).count()
    }

    /// Recipients in flight when an earlier run died: (row, address), by row.
    pub fn in_doubt(&self) -> Vec<(u64, String)> {
        let mut v: Vec<(u64, String)> = self
            .states
            .iter()
            .filter(|(_, (_, s))| *s == State::InFlight)
            .map(|(a, (r, _))| (*r, a.to_string()))
            .collect();
        v.sort();
        v
    }
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\t' || c.is_control() { ' ' } else { c })
        .collect()
}

/// Reads an existing journal. A missing file is an empty history.
pub fn read(path: &Path) -> Result<Prior, JournalError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Prior::default()),
        Err(source) => {
            return Err(JournalError::Open {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut prior = Prior::default();
    let mut lines = BufReader::new(file).lines();
    let first = match lines.next() {
        None => return Ok(prior),
        Some(l) => l.map_err(|source| JournalError::Open {
            path: path.to_owned(),
            source,
        })?,
    };
    let mut head = first.split('\t');
    if head.next() != Some(HEADER) {
        return Err(JournalError::Format {
            path: path.to_owned(),
            found: first,
        });
    }
    prior.fingerprint = head.next().map(str::to_owned);
    for line in lines {
        let Ok(line) = line else {
            prior.damaged_lines += 1;
            continue;
        };
        if line.starts_with("R\t") {
            // A run marker.
            continue;
        }
        if let Some(fp) = line.strip_prefix("P\t") {
            // The inputs changed and the user accepted it (--accept-changes).
            prior.fingerprint = Some(fp.to_owned());
            continue;
        }
        let mut f = line.split('\t');
        // All five fields: a line cut inside the address must not name another recipient.
        let (Some(code), Some(row), Some(addr), Some(_), Some(_)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            prior.damaged_lines += 1;
            continue;
        };
        let (Some(state), Ok(row)) = (State::from_code(code), row.parse::<u64>()) else {
            // A last line cut short by a crash.
            prior.damaged_lines += 1;
            continue;
        };
        prior
            .states
            .insert(addr.to_lowercase().into_boxed_str(), (row, state));
    }
    Ok(prior)
}

enum Msg {
    Line(String, Option<oneshot::Sender<Result<(), String>>>),
    Sync(std_mpsc::Sender<Result<(), String>>),
}

/// The writing side, shared by the sender tasks.
#[derive(Clone)]
pub struct Journal {
    tx: std_mpsc::Sender<Msg>,
}

impl Journal {
    /// Opens (creating if needed) the journal for appending and starts the writer thread.
    /// A new journal starts with the header and `fingerprint`; an existing one whose
    /// fingerprint differs (the user accepted the change) records the new one.
    pub fn open(
        path: &Path,
        fingerprint: &str,
        previous: Option<&str>,
        run_marker: &str,
    ) -> Result<Journal, JournalError> {
        let err = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        // A crash can leave a last line without its newline; start on a line of our own.
        let cut = !fresh
            && std::fs::read(path)
                .map(|b| b.last() != Some(&b'\n'))
                .unwrap_or(false);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let mut start = String::new();
        if cut {
            start.push('\n');
        }
        if fresh {
            start.push_str(&format!("{HEADER}\t{fingerprint}\n"));
        } else if previous.is_some_and(|p| p != fingerprint) {
            start.push_str(&format!("P\t{fingerprint}\n"));
        }
        start.push_str(&format!("R\t{}\n", clean(run_marker)));
        file.write_all(start.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|source| JournalError::Write {
                path: path.to_owned(),
                source,
            })?;
        let (tx, rx) = std_mpsc::channel();
        std::thread::spawn(move || writer(file, rx));
        Ok(Journal { tx })
    }

    fn line(state: State, row: u64, address: &str, code: Option<u16>, text: &str) -> String {
        format!(
            "{}\t{row}\t{}\t{}\t{}\n",
            state.code(),
            clean(address),
            code.map(|c| c.to_string()).unwrap_or_default(),
            clean(text)
        )
    }

    /// Records that `address` is about to be sent. The line is queued at once; the returned
    /// future resolves once it is on disk, and the message must not be handed over before.
    pub fn in_flight(
        &self,
        row: u64,
        address: &str,
    ) -> impl Future<Output = Result<(), String>> + use<> {
        let (ack, done) = oneshot::channel();
        let queued = self.tx.send(Msg::Line(
            Journal::line(State::InFlight, row, address, None, ""),
            Some(ack),
        ));
        async move {
            queued.map_err(|_| "the journal writer stopped".to_owned())?;
            done.await
                .map_err(|_| "the journal writer stopped".to_owned())?
        }
    }

    /// Records an outcome; it reaches the disk with the next sync.
    pub fn record(&self, state: State, row: u64, address: &str, code: Option<u16>, text: &str) {
        let _ = self.tx.send(Msg::Line(
            Journal::line(state, row, address, code, text),
            None,
        ));
    }

    /// Writes and syncs everything queued so far (at the end of a run, or on Ctrl-C).
    pub fn sync(&self) -> Result<(), String> {
        let (tx, rx) = std_mpsc::channel();
        self.tx
            .send(Msg::Sync(tx))
            .map_err(|_| "the journal writer stopped".to_owned())?;
        rx.recv()
            .map_err(|_| "the journal writer stopped".to_owned())?
    }
}

/// Group commit: take everything queued, write it, sync once, then answer every waiter.
fn writer(mut file: File, rx: std_mpsc::Receiver<Msg>) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let mut buf = String::new();
        let mut must_sync = false;
        for m in &batch {
            match m {
                Msg::Line(l, ack) => {
                    buf.push_str(l);
                    must_sync |= ack.is_some();
                }
                Msg::Sync(_) => must_sync = true,
            }
        }
        if failed.is_none() {
            let r = file
                .write_all(buf.as_bytes())
                .and_then(|()| if must_sync { file.sync_data() } else { Ok(()) });
            if let Err(e) = r {
                failed = Some(e.to_string());
            }
        }
        for m in batch {
            let result = failed.clone().map_or(Ok(()), Err);
            match m {
                Msg::Line(_, Some(ack)) => {
                    let _ = ack.send(result);
                }
                Msg::Line(_, None) => {}
                Msg::Sync(tx) => {
                    let _ = tx.send(result);
                }
            }
        }
    }
    let _ = file.sync_data();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_keeps_the_last_state_per_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::open(&path, "fp1", None, "run 1").unwrap();
        j.in_flight(2, "Ann@Example.com").await.unwrap();
        j.record(
            State::Sent,
            2,
            "Ann@Example.com",
            Some(250),
            "2.0.0 ok\tqueued",
        );
        j.in_flight(3, "bob@example.org").await.unwrap();
        j.record(
            State::Deferred,
            4,
            "cat@example.net",
            Some(451),
            "try later",
        );
        j.sync().unwrap();
        drop(j);
        // A crash mid-line leaves a fragment at the end; reading must survive it.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"S\t9").unwrap();
        let p = read(&path).unwrap();
        assert_eq!(p.fingerprint.as_deref(), Some("fp1"));
        assert_eq!(p.state("ann@example.com"), Some(State::Sent));
        assert_eq!(p.state("BOB@example.org"), Some(State::InFlight));
        assert_eq!(p.state("cat@example.net"), Some(State::Deferred));
        assert_eq!(p.in_doubt(), [(3, "bob@example.org".to_owned())]);
        assert_eq!(p.damaged_lines, 1);

        // Reopening appends under the original header.
        let j = Journal::open(&path, "fp1", Some("fp1"), "run 2").unwrap();
        j.in_flight(3, "bob@example.org").await.unwrap();
        j.record(State::Sent, 3, "bob@example.org", Some(250), "ok");
        j.sync().unwrap();
        let p = read(&path).unwrap();
        assert_eq!(p.fingerprint.as_deref(), Some("fp1"));
        assert!(p.in_doubt().is_empty());

        // Accepted changes move the fingerprint on.
        drop(j);
        let j = Journal::open(&path, "fp2", Some("fp1"), "run 3").unwrap();
        j.sync().unwrap();
        assert_eq!(read(&path).unwrap().fingerprint.as_deref(), Some("fp2"));
    }
}
