//! The journal: an append-only record of every recipient's state, so an interrupted run
//! resumes without sending twice and without losing anyone.
//!
//! One line per event, tab-separated: `I` in flight (on disk before the message itself is
//! handed to the relay), `S` sent (after the relay's 250), `D` deferred, `F` failed
//! permanently, `X` suppressed. The first line names the format and the inputs' fingerprint;
//! an `R` line starts each run (`run <time> <transport>`) and marks each UTC midnight a run
//! goes through (`day <time>`), which dates the `S` lines after it for `per_day`.
//!
//! Syncs are grouped, and as late as they can be. Lines queue in memory; one writer thread
//! writes and fsyncs everything queued, in one write and one sync, when a sender waits for
//! its `I` line, which it does only after the relay's 354, just before it hands over the
//! message. So every message the relay may have accepted is on disk first, one sync serves
//! every sender that has reached that point, and `S` lines ride along with the next sync
//! (or are written, unsynced, after 50 ms without one). Because a sender's next `I` is synced
//! after its previous `S` was queued, at most `concurrency` recipients can be in flight
//! without a durable outcome: the in-doubt bound.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// Why a line is not known to be on disk. Every sender waiting on the failed sync gets a
/// copy, hence the shared `io::Error`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SyncError {
    /// A write or fsync failed; nothing is written after it.
    #[error("{0}")]
    Disk(Arc<std::io::Error>),
    /// The writer thread ended (a panic included) before the line was synced.
    #[error("the journal writer stopped")]
    WriterStopped,
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
    /// Messages the relay has or may have per UTC day (days since 1970), for `per_day`:
    /// `S` lines, and recipients left in doubt (a last `I` line, or `K` after one), each on
    /// the date of the last `R` line before it: the run's start or the day marker a run
    /// crossing midnight writes (see [`Journal::day_turned`]). Counting the in-doubt ones
    /// keeps a crash from letting a same-day rerun go up to `concurrency` over the cap.
    pub sent_per_day: HashMap<u64, u64>,
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
    let mut day: Option<u64> = None;
    // The day of each recipient's `I` line not yet followed by an outcome: a handful at a
    // time (one per sender), since every other line settles one.
    let mut in_flight: HashMap<Box<str>, u64> = HashMap::new();
    for line in lines {
        let Ok(line) = line else {
            prior.damaged_lines += 1;
            continue;
        };
        if let Some(marker) = line.strip_prefix("R\t") {
            // A run marker: "run <RFC 3339 time> <transport>".
            day = marker
                .split(' ')
                .nth(1)
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .map(crate::send::limits::utc_day);
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
        let addr = addr.to_lowercase().into_boxed_str();
        let started = match (state, day) {
            (State::InFlight, Some(d)) => {
                in_flight.insert(addr.clone(), d);
                None
            }
            _ => in_flight.remove(&addr),
        };
        let counted = match state {
            State::Sent => day,
            // Settled as possibly delivered: it counts where its attempt started.
            State::Skipped => started,
            _ => None,
        };
        if let Some(d) = counted {
            *prior.sent_per_day.entry(d).or_insert(0) += 1;
        }
        prior.states.insert(addr, (row, state));
    }
    for d in in_flight.into_values() {
        *prior.sent_per_day.entry(d).or_insert(0) += 1;
    }
    Ok(prior)
}

/// Someone waiting for the lines up to a sequence number to be on disk.
enum Waiter {
    Task(oneshot::Sender<Result<(), SyncError>>),
    Thread(std_mpsc::Sender<Result<(), SyncError>>),
}

impl Waiter {
    fn answer(self, r: Result<(), SyncError>) {
        match self {
            Waiter::Task(tx) => {
                let _ = tx.send(r);
            }
            Waiter::Thread(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

/// What the senders and the writer thread share.
#[derive(Default)]
struct Inner {
    /// Lines queued and not yet handed to the file.
    pending: String,
    /// The sequence number of the last line queued (the first is 1).
    queued: u64,
    /// Every line up to this number is on disk.
    synced: u64,
    /// Waiting for a sync, each up to its line.
    waiters: Vec<(u64, Waiter)>,
    /// A write or sync failed: nothing is on disk for sure any more.
    failed: Option<SyncError>,
    /// Every [`Journal`] handle is gone: write what is left, sync, stop.
    closed: bool,
}

struct Shared {
    inner: std::sync::Mutex<Inner>,
    wake: std::sync::Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tells the writer thread to finish once the last handle is dropped.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_one();
    }
}

/// The writing side, shared by the sender tasks.
#[derive(Clone)]
pub struct Journal {
    handle: Arc<Handle>,
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
            // Appending through a symlink planted as the journal would write elsewhere.
            .custom_flags(libc::O_NOFOLLOW)
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
        Ok(Journal::start(file))
    }

    /// Starts the writer thread on `sink`, which already holds the header lines.
    fn start(sink: impl Sink) -> Journal {
        let shared = Arc::new(Shared {
            inner: std::sync::Mutex::new(Inner::default()),
            wake: std::sync::Condvar::new(),
        });
        let for_writer = shared.clone();
        std::thread::spawn(move || writer(sink, &for_writer));
        Journal {
            handle: Arc::new(Handle(shared)),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.0
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

    /// Queues a line and returns its sequence number. The writer is not woken: the line goes
    /// out with the next sync someone waits for, or after [`IDLE_WRITE`] without one.
    fn queue(&self, line: &str) -> u64 {
        let mut inner = self.shared().lock();
        inner.pending.push_str(line);
        inner.queued += 1;
        inner.queued
    }

    /// Records that `address` is about to be sent. The line is queued at once; the returned
    /// future resolves once it is on disk, and the message must not be
    /// handed over before. The sync is asked for only when the future is first polled, that
    /// is when the sender needs it, so one sync covers every line queued until then.
    pub fn in_flight(
        &self,
        row: u64,
        address: &str,
    ) -> impl Future<Output = Result<(), SyncError>> + use<> {
        let seq = self.queue(&Journal::line(State::InFlight, row, address, None, ""));
        let handle = self.handle.clone();
        async move {
            let shared = &handle.0;
            let rx = {
                let mut inner = shared.lock();
                if let Some(e) = &inner.failed {
                    return Err(e.clone());
                }
                if inner.synced >= seq {
                    return Ok(());
                }
                let (tx, rx) = oneshot::channel();
                inner.waiters.push((seq, Waiter::Task(tx)));
                rx
            };
            shared.wake.notify_one();
            rx.await.map_err(|_| SyncError::WriterStopped)?
        }
    }

    /// Marks that a new UTC day began during this run: an `R` line in the run marker's
    /// form (`day <RFC 3339 time>`), so the `S` lines after it count toward `per_day` on the
    /// new day when a later run reads the journal (readers that know only run markers read it
    /// the same way). It reaches the disk with the next sync.
    pub fn day_turned(&self, now: std::time::SystemTime) {
        self.queue(&format!("R\tday {}\n", crate::clock::rfc3339(now)));
    }

    /// Records an outcome; it reaches the disk with the next sync.
    pub fn record(&self, state: State, row: u64, address: &str, code: Option<u16>, text: &str) {
        self.queue(&Journal::line(state, row, address, code, text));
    }

    /// Writes and syncs everything queued so far (at the end of a run, or on Ctrl-C).
    pub fn sync(&self) -> Result<(), SyncError> {
        let shared = self.shared();
        let rx = {
            let mut inner = shared.lock();
            if let Some(e) = &inner.failed {
                return Err(e.clone());
            }
            let seq = inner.queued;
            if inner.synced >= seq {
                return Ok(());
            }
            let (tx, rx) = std_mpsc::channel();
            inner.waiters.push((seq, Waiter::Thread(tx)));
            rx
        };
        shared.wake.notify_one();
        rx.recv().map_err(|_| SyncError::WriterStopped)?
    }
}

/// Where the writer thread puts the lines: the journal file (or, in tests, one that fails).
trait Sink: Send + 'static {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Sink for File {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

/// Fails whatever still waits when the writer thread ends.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        let e = inner.failed.get_or_insert(SyncError::WriterStopped).clone();
        for (_, w) in inner.waiters.drain(..) {
            w.answer(Err(e.clone()));
        }
    }
}

/// How long queued lines may wait for a sync before they are written anyway (not synced):
/// while a paced run idles, a killed process loses at most this much of its outcome lines,
/// and never an `I` line a sender waited for.
const IDLE_WRITE: std::time::Duration = std::time::Duration::from_millis(50);

/// Group commit, as late as it can be: the queued lines are written and synced, in one write
/// and one fsync, when someone waits for a sync; without one, they are written after
/// [`IDLE_WRITE`].
fn writer(mut sink: impl Sink, shared: &Shared) {
    // However the loop ends (a panic included), nobody may wait for it forever.
    let _stopped = Stopped(shared);
    let mut inner = shared.lock();
    loop {
        // Answer whoever the last sync (or a failure) settled.
        let synced = inner.synced;
        let failed = inner.failed.clone();
        let mut i = 0;
        while i < inner.waiters.len() {
            if failed.is_some() || inner.waiters[i].0 <= synced {
                let (_, w) = inner.waiters.swap_remove(i);
                w.answer(failed.clone().map_or(Ok(()), Err));
            } else {
                i += 1;
            }
        }
        let must_sync = !inner.waiters.is_empty() || (inner.closed && synced < inner.queued);
        // After a failure nothing more is written: what reaches the disk out of order
        // could make a later line look durable when an earlier one is not.
        if failed.is_some() {
            inner.pending.clear();
            if inner.closed {
                return;
            }
            inner = shared.wake.wait(inner).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        if !must_sync {
            if inner.pending.is_empty() && inner.closed {
                return;
            }
            let (guard, waited) = shared
                .wake
                .wait_timeout(inner, IDLE_WRITE)
                .unwrap_or_else(|e| e.into_inner());
            inner = guard;
            // Woken by a waiter (or the last handle going): settle that first.
            if !waited.timed_out() || inner.pending.is_empty() {
                continue;
            }
        }
        let batch = std::mem::take(&mut inner.pending);
        let upto = inner.queued;
        drop(inner);
        let result = sink
            .append(batch.as_bytes())
            .and_then(|()| if must_sync { sink.sync() } else { Ok(()) });
        inner = shared.lock();
        match result {
            Err(e) => inner.failed = Some(SyncError::Disk(Arc::new(e))),
            // Lines queued meanwhile have higher numbers: they wait for the next sync.
            Ok(()) if must_sync => inner.synced = upto,
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that starts at 23:59 UTC and goes on past midnight: the `S` lines before the
    /// day marker count on its first day, those after it on the next; a second run the next
    /// day adds to that day.
    #[tokio::test]
    async fn sent_lines_count_on_the_day_a_marker_dates_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let day = 20_000u64;
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(day * 86_400 + s);
        let marker = |s: u64| format!("run {} smtp", crate::clock::rfc3339(at(s)));
        let j = Journal::open(&path, "fp", None, &marker(86_340)).unwrap();
        let sent = |j: &Journal, row: u64| {
            j.record(
                State::Sent,
                row,
                &format!("r{row}@example.com"),
                Some(250),
                "ok",
            );
        };
        sent(&j, 1);
        sent(&j, 2);
        j.day_turned(at(86_400));
        for row in 3..6 {
            sent(&j, row);
        }
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(&path, "fp", Some("fp"), &marker(86_400 + 3_600)).unwrap();
        sent(&j, 6);
        j.sync().unwrap();
        drop(j);
        let p = read(&path).unwrap();
        assert_eq!(p.sent_per_day, HashMap::from([(day, 2), (day + 1, 4)]));
        assert_eq!(p.damaged_lines, 0);
        // A crash leaves two in flight on the second day: they may have been delivered, so
        // they count on it; one of them is later settled with --in-doubt skip and still does.
        let j = Journal::open(&path, "fp", Some("fp"), &marker(86_400 + 7_200)).unwrap();
        for row in 7..9 {
            j.record(
                State::InFlight,
                row,
                &format!("r{row}@example.com"),
                None,
                "",
            );
        }
        j.sync().unwrap();
        drop(j);
        let p = read(&path).unwrap();
        assert_eq!(p.sent_per_day, HashMap::from([(day, 2), (day + 1, 6)]));
        let j = Journal::open(&path, "fp", Some("fp"), &marker(2 * 86_400 + 60)).unwrap();
        j.record(
            State::Skipped,
            7,
            "r7@example.com",
            None,
            "in doubt, skipped",
        );
        j.sync().unwrap();
        drop(j);
        let p = read(&path).unwrap();
        assert_eq!(p.sent_per_day, HashMap::from([(day, 2), (day + 1, 6)]));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\nR\tday 2024-10-05T00:00:00Z\n"), "{text}");
    }

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

    /// Eight senders at once, each waiting for its own `I` line: every line lands, each
    /// sender's lines in its order, and one sync at the end leaves nobody in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_share_syncs_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let j = Journal::open(&path, "fp", None, "run").unwrap();
        let mut tasks = Vec::new();
        for s in 0..8u64 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..200u64 {
                    let row = 2 + s * 1000 + n;
                    let address = format!("s{s}n{n}@example.com");
                    j.in_flight(row, &address).await.unwrap();
                    j.record(State::Sent, row, &address, Some(250), "ok");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        j.sync().unwrap();
        let p = read(&path).unwrap();
        assert!(p.in_doubt().is_empty());
        assert_eq!(p.count(State::Sent), 8 * 200);
        let text = std::fs::read_to_string(&path).unwrap();
        for s in 0..8 {
            let rows: Vec<&str> = text
                .lines()
                .filter(|l| l.contains(&format!("\ts{s}n")))
                .map(|l| l.split('\t').next().unwrap())
                .collect();
            assert_eq!(rows.len(), 400);
            assert!(
                rows.chunks(2).all(|p| p == ["I", "S"]),
                "sender {s}: {rows:?}"
            );
        }
    }

    /// A disk whose syncs start failing: the sender waiting on that sync is told, every later
    /// attempt is refused at once, and nothing reports the failed lines as on disk.
    #[tokio::test]
    async fn a_failed_sync_fails_its_waiters_and_everything_after() {
        /// Fails its second sync only: the journal must not trust it again afterwards.
        struct Failing {
            syncs: usize,
        }
        impl Sink for Failing {
            fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
                Ok(())
            }
            fn sync(&mut self) -> std::io::Result<()> {
                self.syncs += 1;
                if self.syncs == 2 {
                    return Err(std::io::Error::other("the disk went away"));
                }
                Ok(())
            }
        }
        let j = Journal::start(Failing { syncs: 0 });
        j.in_flight(2, "ann@example.com").await.unwrap();
        j.record(State::Sent, 2, "ann@example.com", Some(250), "ok");
        let e = j.in_flight(3, "bob@example.org").await.unwrap_err();
        assert!(e.to_string().contains("the disk went away"), "{e}");
        let e = j.in_flight(4, "cat@example.net").await.unwrap_err();
        assert!(e.to_string().contains("the disk went away"), "{e}");
        assert!(j.sync().is_err());
    }

    /// When `in_flight` resolves, its line is inside what the last successful sync covered,
    /// for every one of several senders at once: a write alone does not count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_resolves_only_once_a_sync_covers_the_line() {
        let disk = Arc::new(std::sync::Mutex::new(Disk::default()));
        let j = Journal::start(Recording(disk.clone()));
        let mut tasks = Vec::new();
        for s in 0..4u64 {
            let (j, disk) = (j.clone(), disk.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..100u64 {
                    let address = format!("s{s}n{n}@example.com");
                    j.in_flight(2 + n, &address).await.unwrap();
                    let d = disk.lock().unwrap();
                    assert!(
                        d.synced_text()
                            .contains(&format!("I\t{}\t{address}\t", 2 + n)),
                        "{address} not synced yet"
                    );
                    drop(d);
                    j.record(State::Sent, 2 + n, &address, Some(250), "ok");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// What a [`Recording`] sink holds: every byte appended, and how many of them the last
    /// sync covered.
    #[derive(Default)]
    struct Disk {
        bytes: Vec<u8>,
        synced: usize,
    }

    impl Disk {
        fn synced_text(&self) -> String {
            String::from_utf8_lossy(&self.bytes[..self.synced]).into_owned()
        }
    }

    struct Recording(Arc<std::sync::Mutex<Disk>>);

    impl Sink for Recording {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.0.lock().unwrap().bytes.extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            let mut d = self.0.lock().unwrap();
            d.synced = d.bytes.len();
            Ok(())
        }
    }

    /// An `I` line written during an idle spell (after IDLE_WRITE, without a sync) is still
    /// synced before its sender is told it is on disk.
    #[tokio::test]
    async fn a_line_written_while_idle_still_waits_for_a_sync() {
        let disk = Arc::new(std::sync::Mutex::new(Disk::default()));
        let j = Journal::start(Recording(disk.clone()));
        let recorded = j.in_flight(7, "ann@example.com");
        // The idle write comes IDLE_WRITE after the line, or later on a busy machine: wait for
        // it (a fixed sleep failed under load), and give up only after seconds.
        let written =
            || String::from_utf8_lossy(&disk.lock().unwrap().bytes).contains("ann@example.com");
        for _ in 0..1000 {
            if written() {
                break;
            }
            tokio::time::sleep(IDLE_WRITE / 5).await;
        }
        {
            assert!(written(), "the idle write never came");
            let d = disk.lock().unwrap();
            assert!(
                !d.synced_text().contains("ann@example.com"),
                "written, not synced"
            );
        }
        recorded.await.unwrap();
        assert!(
            disk.lock()
                .unwrap()
                .synced_text()
                .contains("I\t7\tann@example.com\t")
        );
    }

    /// If the writer thread dies (here a panic), whoever waits is told, and nobody hangs.
    #[tokio::test]
    async fn a_dead_writer_fails_its_waiters() {
        struct Panicking;
        impl Sink for Panicking {
            fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
                panic!("the writer's sink panicked (on purpose, in a test)");
            }
            fn sync(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let j = Journal::start(Panicking);
        let waited = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            j.in_flight(2, "ann@example.com"),
        )
        .await
        .expect("the waiter must not hang");
        assert!(waited.is_err());
        assert!(j.sync().is_err());
    }

    /// Every address the recipient reader accepts is stored exactly: read back, it names the
    /// same recipient, so a resume skips it. Addresses are generated from the characters that
    /// matter here (TAB, other controls, quotes, spaces, backslash, `#`, non-ASCII).
    #[test]
    fn every_accepted_address_survives_a_journal_round_trip() {
        let alphabet = [
            "a", " ", "\t", "\"", "\\", "#", ".", "+", ",", "\u{b}", "\u{85}", "\u{7f}", "é",
        ];
        let mut locals = Vec::new();
        for x in alphabet {
            for y in alphabet {
                for z in alphabet {
                    locals.push(format!("{x}{y}{z}"));
                    locals.push(format!("\"{x}{y}{z}\""));
                }
            }
        }
        let mut accepted = Vec::new();
        for (i, local) in locals.iter().enumerate() {
            for domain in ["example.com", "bücher.example"] {
                if let Ok((address, _)) = crate::address::parse(&format!("{local}@{domain}")) {
                    accepted.push((i as u64 + 2, address.to_string()));
                }
            }
        }
        assert!(accepted.len() > 100, "{}", accepted.len());
        assert!(
            accepted
                .iter()
                .any(|(_, a)| a.starts_with('"') && a.contains(' '))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut text = format!("{HEADER}\tfp\n");
        for (row, address) in &accepted {
            text.push_str(&Journal::line(State::Sent, *row, address, Some(250), "ok"));
        }
        std::fs::write(&path, text).unwrap();
        let prior = read(&path).unwrap();
        assert_eq!(prior.damaged_lines, 0);
        // The same address may be generated twice (quotes and spaces normalize): the last
        // line for an address wins, in the journal as here.
        let last_row: HashMap<String, u64> = accepted
            .iter()
            .map(|(row, address)| (address.to_lowercase(), *row))
            .collect();
        for (row, address) in &accepted {
            assert_eq!(prior.state(address), Some(State::Sent), "{address:?}");
            let stored = prior.states.get(address.to_lowercase().as_str()).unwrap();
            assert_eq!(
                stored.0,
                last_row[&address.to_lowercase()],
                "{address:?} (row {row})"
            );
        }
    }
}
