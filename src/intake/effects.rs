//! What intake changes, behind one boundary ([`Sink`]) so the store it writes to can change
//! without touching the classifier or the run: suppressions (the campaign's suppression
//! list), soft-bounce counts across campaigns, and the late-bounce record the report reads.
//! Everything queued is made durable by [`Sink::commit`] (written and fsynced), which the run
//! calls before it marks any message processed.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::clock::rfc3339;
use crate::suppression::{self, Record, Store};

/// Why an address is suppressed, in the words the shared suppression store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    Unsubscribe,
    HardBounce,
    Complaint,
}

impl Reason {
    /// The store's own reason.
    fn store(self) -> suppression::Reason {
        match self {
            Reason::Unsubscribe => suppression::Reason::Unsubscribe,
            Reason::HardBounce => suppression::Reason::HardBounce,
            Reason::Complaint => suppression::Reason::Complaint,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsubscribe => "unsubscribe",
            Reason::HardBounce => "hard-bounce",
            Reason::Complaint => "complaint",
        }
    }
}

/// One suppression: the address, why, and where the evidence came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub address: String,
    pub reason: Reason,
    /// What tied the evidence to this address.
    pub signal: super::verdict::Signal,
    /// The status and diagnostic, the feedback type, or the soft-bounce count.
    pub detail: String,
    pub campaign: String,
    /// Where the evidence is: the bounce or complaint message (path, mbox index, IMAP UID).
    pub evidence: String,
}

pub trait Sink {
    /// Queues a suppression. Returns false when the address was already suppressed.
    fn suppress(&mut self, e: &Entry) -> io::Result<bool>;
    /// Records a soft bounce; returns in how many campaigns (this one included) the address
    /// has soft-bounced.
    fn soft_bounce(&mut self, address: &str, campaign: &str, status: &str) -> io::Result<usize>;
    /// Records a late bounce for the campaign's report.
    fn bounced(
        &mut self,
        row: u64,
        address: &str,
        status: &str,
        diagnostic: &str,
    ) -> io::Result<()>;
    /// Records a complaint for the campaign's complaint rate. A recipient counts once, however
    /// many reports or intake runs name them. Returns whether it was new.
    fn complaint(&mut self, address: &str, feedback_type: &str, evidence: &str)
    -> io::Result<bool>;
    /// Recipients who complained about this campaign, over every intake run (this one's
    /// included, queued or not).
    fn complaints(&self) -> u64;
    /// Writes and fsyncs everything queued.
    fn commit(&mut self) -> io::Result<()>;
}

/// An append-only text file: lines queue in memory and reach the disk, synced, on commit.
struct Appender {
    path: PathBuf,
    pending: String,
}

impl Appender {
    fn new(path: PathBuf) -> Appender {
        Appender {
            path,
            pending: String::new(),
        }
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(self.pending.as_bytes())?;
        f.sync_data()?;
        self.pending.clear();
        Ok(())
    }
}

/// Files: the campaign's `[suppression] file` (through the shared store),
/// `<state_dir>/soft-bounces` (shared by every campaign in the state folder),
/// `<state_dir>/<campaign>/bounces` and `<state_dir>/<campaign>/complaints`. With `dry_run`,
/// nothing is ever written.
pub struct FileSink {
    /// The shared suppression store (`send`, the unsubscribe endpoint and `suppress` write to
    /// it too): a batch is appended under its lock and fsynced by [`Store::record`].
    store: Store,
    /// Digests of the addresses queued since the last commit (16 bytes each, not the
    /// strings); once committed, the store itself knows them.
    added: HashSet<[u8; 16]>,
    pending: Vec<Record>,
    soft: Appender,
    soft_counts: SoftCounts,
    bounces: Appender,
    /// The campaign's complainers, by digest: the complaint rate's numerator across runs.
    /// Kept apart from the suppression list, where a complainer already unsubscribed or
    /// bounced gets no second entry, and an entry can be removed by hand.
    complained: HashSet<[u8; 16]>,
    complaints: Appender,
    now: SystemTime,
    dry_run: bool,
}

impl FileSink {
    pub fn open(
        suppression: &Path,
        state_dir: &Path,
        run_dir: &Path,
        now: SystemTime,
        dry_run: bool,
    ) -> anyhow::Result<FileSink> {
        let soft_path = state_dir.join("soft-bounces");
        let complaints = run_dir.join("complaints");
        let mut complained = HashSet::new();
        read_lines(&complaints, |line| {
            let address = line.split('\t').next().unwrap_or_default();
            complained.insert(Ledger::key(address.as_bytes()));
        })?;
        Ok(FileSink {
            // A dry run only reads (a missing list is empty); a real run creates the list if
            // need be, as the endpoint does.
            store: if dry_run {
                Store::open(suppression)?
            } else {
                Store::create(suppression)?
            },
            added: HashSet::new(),
            pending: Vec::new(),
            soft_counts: SoftCounts::read(&soft_path)?,
            soft: Appender::new(soft_path),
            bounces: Appender::new(run_dir.join("bounces")),
            complained,
            complaints: Appender::new(complaints),
            now,
            dry_run,
        })
    }
}

/// Calls `each` with every line of the file at `path`; a missing file has none.
fn read_lines(path: &Path, mut each: impl FnMut(&str)) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        each(&line?);
    }
    Ok(())
}

/// The campaigns each address soft-bounced in, from `address TAB campaign TAB time TAB
/// status` lines. The file is shared by every campaign and only grows, so an address is a
/// 16-byte digest and a campaign a number, not two strings per line.
#[derive(Default)]
struct SoftCounts {
    campaigns: HashMap<Box<str>, u32>,
    by_address: HashMap<[u8; 16], Vec<u32>>,
}

impl SoftCounts {
    fn read(path: &Path) -> io::Result<SoftCounts> {
        let mut counts = SoftCounts::default();
        read_lines(path, |line| {
            let mut f = line.split('\t');
            if let (Some(a), Some(c)) = (f.next(), f.next()) {
                counts.add(a, c);
            }
        })?;
        Ok(counts)
    }

    /// Records a soft bounce (both as written in the file); returns whether the campaign is
    /// new for the address, and in how many campaigns it has soft-bounced.
    fn add(&mut self, address: &str, campaign: &str) -> (bool, usize) {
        let next = self.campaigns.len() as u32;
        let id = *self.campaigns.entry(campaign.into()).or_insert(next);
        let seen = self
            .by_address
            .entry(Ledger::key(address.as_bytes()))
            .or_default();
        let new = !seen.contains(&id);
        if new {
            seen.push(id);
        }
        (new, seen.len())
    }
}

/// Tabs, newlines and `#` would break the line formats (and `#` starts a comment in the
/// suppression list); remote text can hold any of them.
fn field(s: &str) -> String {
    s.replace(['\t', '\r', '\n', '#'], " ")
}

impl Sink for FileSink {
    fn suppress(&mut self, e: &Entry) -> io::Result<bool> {
        if self.store.lookup(&e.address).is_some()
            || !self.added.insert(Ledger::key(e.address.as_bytes()))
        {
            return Ok(false);
        }
        let mut r = Record::add(&e.address, e.reason.store(), self.now);
        r.campaign = e.campaign.clone();
        r.note = field(&format!("{} ({})", e.detail, e.evidence));
        self.pending.push(r);
        Ok(true)
    }

    fn soft_bounce(&mut self, address: &str, campaign: &str, status: &str) -> io::Result<usize> {
        let (address, campaign) = (field(address), field(campaign));
        let (new, n) = self.soft_counts.add(&address, &campaign);
        if new {
            self.soft.pending.push_str(&format!(
                "{address}\t{campaign}\t{}\t{}\n",
                rfc3339(self.now),
                field(status)
            ));
        }
        Ok(n)
    }

    fn bounced(
        &mut self,
        row: u64,
        address: &str,
        status: &str,
        diagnostic: &str,
    ) -> io::Result<()> {
        self.bounces.pending.push_str(&format!(
            "{row}\t{}\t{}\t{}\t{}\n",
            field(address),
            field(status),
            field(diagnostic),
            rfc3339(self.now)
        ));
        Ok(())
    }

    fn complaint(
        &mut self,
        address: &str,
        feedback_type: &str,
        evidence: &str,
    ) -> io::Result<bool> {
        let address = address.to_lowercase();
        if !self.complained.insert(Ledger::key(address.as_bytes())) {
            return Ok(false);
        }
        self.complaints.pending.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            field(&address),
            rfc3339(self.now),
            field(feedback_type),
            field(evidence)
        ));
        Ok(true)
    }

    fn complaints(&self) -> u64 {
        self.complained.len() as u64
    }

    fn commit(&mut self) -> io::Result<()> {
        if self.dry_run {
            // What a dry run queued stays counted (`added`, `complained`), so its summary
            // is the one a real run would give.
            self.pending.clear();
            for a in [&mut self.soft, &mut self.bounces, &mut self.complaints] {
                a.pending.clear();
            }
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.store
                .record(&self.pending)
                .map_err(|e| io::Error::other(e.to_string()))?;
            self.pending.clear();
        }
        // Recorded: the store answers for these addresses from now on.
        self.added.clear();
        self.soft.commit()?;
        self.bounces.commit()?;
        self.complaints.commit()
    }
}

/// Late bounces recorded for a campaign: row -> (status, diagnostic).
pub fn read_bounces(run_dir: &Path) -> io::Result<HashMap<u64, (String, String)>> {
    let mut map = HashMap::new();
    read_lines(&run_dir.join("bounces"), |line| {
        let f: Vec<&str> = line.split('\t').collect();
        if let [row, _addr, status, diag, _time] = f[..]
            && let Ok(row) = row.parse()
        {
            map.insert(row, (status.to_owned(), diag.to_owned()));
        }
    })?;
    Ok(map)
}

/// The messages a campaign's intake has processed, by a digest of their bytes, so a rerun
/// (or a message also present in a second source) is never counted twice, whatever the
/// source; IMAP marks are a convenience on top of this.
pub struct Ledger {
    seen: HashSet<[u8; 16]>,
    file: Appender,
    dry_run: bool,
}

impl Ledger {
    pub fn open(run_dir: &Path, dry_run: bool) -> io::Result<Ledger> {
        let path = run_dir.join("intake-seen");
        let mut seen = HashSet::new();
        read_lines(&path, |line| {
            if let Some(k) = parse_key(line) {
                seen.insert(k);
            }
        })?;
        Ok(Ledger {
            seen,
            file: Appender::new(path),
            dry_run,
        })
    }

    pub fn key(bytes: &[u8]) -> [u8; 16] {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut k = [0u8; 16];
        k.copy_from_slice(&d.as_ref()[..16]);
        k
    }

    pub fn contains(&self, key: &[u8; 16]) -> bool {
        self.seen.contains(key)
    }

    pub fn add(&mut self, key: [u8; 16]) {
        if self.seen.insert(key) {
            for b in key {
                self.file.pending.push_str(&format!("{b:02x}"));
            }
            self.file.pending.push('\n');
        }
    }

    pub fn commit(&mut self) -> io::Result<()> {
        if self.dry_run {
            self.file.pending.clear();
            return Ok(());
        }
        self.file.commit()
    }
}

fn parse_key(line: &str) -> Option<[u8; 16]> {
    let line = line.trim();
    if line.len() != 32 {
        return None;
    }
    let mut k = [0u8; 16];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&line[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(dir: &Path, dry_run: bool) -> FileSink {
        let run_dir = dir.join("state/news");
        FileSink::open(
            &dir.join("suppressed.txt"),
            &dir.join("state"),
            &run_dir,
            SystemTime::UNIX_EPOCH,
            dry_run,
        )
        .unwrap()
    }

    /// A complainer counts once for the campaign, whatever the run, the report or the case.
    #[test]
    fn complaints_accumulate_across_runs_and_count_a_recipient_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = sink(dir.path(), false);
        assert!(first.complaint("ann@example.com", "abuse", "m1").unwrap());
        assert!(!first.complaint("Ann@Example.com", "abuse", "m2").unwrap());
        assert!(first.complaint("bob@example.com", "abuse", "m3").unwrap());
        first.commit().unwrap();
        assert_eq!(first.complaints(), 2);

        let mut dry = sink(dir.path(), true);
        assert_eq!(dry.complaints(), 2, "read back from the file");
        assert!(dry.complaint("cat@example.com", "abuse", "m4").unwrap());
        dry.commit().unwrap();
        assert_eq!(dry.complaints(), 3, "a dry run counts what it would record");

        let mut second = sink(dir.path(), false);
        assert_eq!(second.complaints(), 2, "the dry run wrote nothing");
        assert!(!second.complaint("bob@example.com", "abuse", "m5").unwrap());
        assert!(second.complaint("cat@example.com", "abuse", "m4").unwrap());
        second.commit().unwrap();
        assert_eq!(sink(dir.path(), false).complaints(), 3);
    }

    #[test]
    fn soft_bounces_count_distinct_campaigns_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), false);
        assert_eq!(
            s.soft_bounce("ann@example.com", "news", "4.2.2").unwrap(),
            1
        );
        assert_eq!(
            s.soft_bounce("ann@example.com", "news", "4.2.2").unwrap(),
            1
        );
        assert_eq!(
            s.soft_bounce("bob@example.com", "news", "4.2.2").unwrap(),
            1
        );
        assert_eq!(
            s.soft_bounce("ann@example.com", "spring", "4.4.1").unwrap(),
            2
        );
        s.commit().unwrap();
        let mut again = sink(dir.path(), false);
        assert_eq!(
            again
                .soft_bounce("ann@example.com", "news", "4.2.2")
                .unwrap(),
            2
        );
        assert_eq!(
            again
                .soft_bounce("ann@example.com", "fall", "4.2.2")
                .unwrap(),
            3
        );
        assert_eq!(
            again
                .soft_bounce("bob@example.com", "fall", "4.2.2")
                .unwrap(),
            2
        );
        let text = std::fs::read_to_string(dir.path().join("state/soft-bounces")).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    /// Once a batch is committed the store answers for its addresses; the run's own set
    /// holds only the batch in progress.
    #[test]
    fn a_committed_suppression_is_not_queued_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), false);
        let e = Entry {
            address: "ann@example.com".into(),
            reason: Reason::Complaint,
            signal: super::super::verdict::Signal::Token,
            detail: "abuse".into(),
            campaign: "news".into(),
            evidence: "m1".into(),
        };
        assert!(s.suppress(&e).unwrap());
        assert!(!s.suppress(&e).unwrap());
        s.commit().unwrap();
        assert!(s.added.is_empty());
        assert!(!s.suppress(&e).unwrap());
        s.commit().unwrap();
        let text = std::fs::read_to_string(dir.path().join("suppressed.txt")).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
