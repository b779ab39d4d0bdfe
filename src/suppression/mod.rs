//! The suppression store: addresses and whole domains never to send to (unsubscribed,
//! bounced, complained, added by hand), shared by `send`, the unsubscribe endpoint
//! (`unsubscribe serve`), `suppress` and, later, mail intake, all of which may write at once.
//!
//! **Why an append-only text file with a lock and fsync, not SQLite.** The list was already a
//! text file (`[suppression] file`) that people write by hand, grep and keep in git; the store
//! is that same file, so a campaign that worked keeps working, with nothing to install or
//! migrate and no second copy to drift. Every entry the store writes is one line: the entry,
//! then its facts (time, reason, campaign, Message-ID, note) after `\t# `, then a checksum, so
//! an older reader that stops at `#` still sees the entry, and a torn line is recognised.
//! Removals are tombstone lines (`#-entry ...`), so the file only ever grows at its end, which
//! is what lets a running `send` follow it cheaply: one `stat` per recipient, and reading only
//! the new tail when the file grew. Writers (the endpoint, `send` adding a hard bounce,
//! `suppress`) take an exclusive `flock`, append a whole batch in one write and `fdatasync`
//! before anyone is told it is recorded; the endpoint gathers the requests that arrive while a
//! sync runs into the next one (group commit), so one sync covers many unsubscribes. SQLite
//! (WAL) would give the same guarantees, but with a C build, a binary file people cannot read
//! or edit, and an import step for every existing list.
//!
//! See `record` for the line formats, `store` for the locking and the follower, and `index`
//! for what the follower keeps in memory (a hash and a place per entry, not the entry).

mod index;
mod record;
mod store;

use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

pub use index::Index;
pub use record::{Key, Op, Reason, Record, check_entry, parse_text};
pub use store::{StoreError, StoreFile};

/// A suppression file, its index, and whether a refresh has failed (warned once).
#[derive(Debug)]
pub struct Store {
    file: StoreFile,
    index: Mutex<Index>,
    warned: std::sync::atomic::AtomicBool,
}

impl Store {
    /// Reads the whole file. A missing file is an empty list (the first write creates it).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let file = StoreFile::new(path);
        let mut index = Index::default();
        file.refresh(&mut index)?;
        if index.skipped > 0 {
            tracing::warn!(
                "{}: {} line(s) could not be read and were skipped (torn or altered lines, or text that is not an entry)",
                path.display(),
                index.skipped
            );
        }
        Ok(Store {
            file,
            index: Mutex::new(index),
            warned: Default::default(),
        })
    }

    /// Opens the store, creating an empty file (mode 600) if there is none yet: for the
    /// writers (`unsubscribe serve`), so a `send` started next finds the list.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Write {
                path: path.to_owned(),
                source,
            })?;
        Store::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry that suppresses `address` (itself, or its domain), as of now: whatever any
    /// writer has recorded so far is read first. If the file cannot be read mid-run, what was
    /// read before still counts (warned once).
    pub fn lookup(&self, address: &str) -> Option<Record> {
        let mut index = self.lock();
        if let Err(e) = self.file.refresh(&mut index)
            && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!("{e}; going on with the entries read before");
        }
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| Key::of(&format!("@{d}")));
        for key in std::iter::once(Key::of(address)).chain(domain) {
            match self.file.find(&mut index, &key) {
                Ok(None) => {}
                Ok(Some(r)) => return Some(r),
                // The index holds it, but its line cannot be read back to confirm: the safe
                // side is suppressed.
                Err(e) => {
                    tracing::warn!("{e}; treating {address} as suppressed");
                    return Some(Record {
                        note: format!("its line could not be read back: {e}"),
                        time: None,
                        ..Record::add(address, Reason::Manual, SystemTime::UNIX_EPOCH)
                    });
                }
            }
        }
        None
    }

    /// Records a batch durably (fsynced) and returns, per record, whether it changed the
    /// list (an address already on it is not added twice).
    pub fn record(&self, batch: &[Record]) -> Result<Vec<bool>, StoreError> {
        let mut index = self.lock();
        self.file.append(&mut index, batch)
    }

    /// The entries in force, oldest first.
    pub fn entries(&self) -> Result<Vec<Record>, StoreError> {
        let mut index = self.lock();
        self.file.entries(&mut index)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What `send` asks: is this recipient suppressed, and (when the user opted in) record a hard
/// bounce. It follows the store while the run goes on, so an unsubscribe recorded mid-run
/// stops a message that has not started.
#[derive(Debug, Default)]
pub struct Suppression {
    store: Option<Store>,
    add_hard_bounces: bool,
    campaign: String,
}

impl Suppression {
    pub fn none() -> Suppression {
        Suppression::default()
    }

    /// Opens the list for a run. A missing file is an error unless the run may create it
    /// (`add_permanent_failures`): a mistyped path must not quietly mean "nobody is
    /// suppressed".
    pub fn load(path: &Path, add_hard_bounces: bool) -> Result<Suppression, StoreError> {
        if !add_hard_bounces && !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_owned(),
            });
        }
        Ok(Suppression {
            store: Some(Store::open(path)?),
            add_hard_bounces,
            campaign: String::new(),
        })
    }

    /// The campaign id written as the source of the entries this run adds.
    pub fn for_campaign(mut self, id: &str) -> Suppression {
        self.campaign = id.to_owned();
        self
    }

    pub fn len(&self) -> usize {
        self.store.as_ref().map_or(0, Store::len)
    }

    /// Why `address` is suppressed, if it is.
    pub fn check(&self, address: &str) -> Option<String> {
        let r = self.store.as_ref()?.lookup(address)?;
        let what = match r.key() {
            Key::Address(_) => "on the suppression list".to_owned(),
            Key::Domain(d) => format!("the domain {d} is on the suppression list"),
        };
        Some(match r.time {
            Some(t) => format!(
                "{what} ({} {})",
                r.reason.as_str(),
                crate::clock::rfc3339(t)
            ),
            None => what,
        })
    }

    /// Records a hard-bounced address, when the user opted in, with the reply and the
    /// Message-ID of the refused message. Returns whether it did.
    pub fn add(&self, address: &str, reply: &str, when: SystemTime, message_id: &str) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        if !self.add_hard_bounces {
            return false;
        }
        let r = Record {
            campaign: self.campaign.clone(),
            message_id: format!("<{message_id}>"),
            note: reply.to_owned(),
            ..Record::add(address, Reason::HardBounce, when)
        };
        match store.record(&[r]) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        std::fs::write(
            &p,
            "# unsubscribed\nAnn@Example.com\n@blocked.example\nspam.example # complaints\nb@bücher.example\n",
        )
        .unwrap();
        let s = Suppression::load(&p, false).unwrap();
        assert!(s.check("ann@example.com").is_some());
        assert!(s.check("x@BLOCKED.example").is_some());
        assert!(s.check("y@spam.example").is_some());
        assert!(s.check("bob@example.com").is_none());
        assert!(s.check("b@xn--bcher-kva.example").is_some());
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_running_reader_sees_another_writers_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        assert!(matches!(
            Suppression::load(&p, false),
            Err(StoreError::Missing { .. })
        ));
        let send = Suppression::load(&p, true).unwrap().for_campaign("news");
        assert!(send.check("ann@example.com").is_none());
        let endpoint = Store::open(&p).unwrap();
        let r = Record::add(
            "ann@example.com",
            Reason::Unsubscribe,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(endpoint.record(&[r]).unwrap(), [true]);
        let why = send.check("Ann@example.com").unwrap();
        assert!(
            why.starts_with("on the suppression list (unsubscribe "),
            "{why}"
        );
        assert!(send.add(
            "bob@example.org",
            "550 5.1.1 unknown",
            SystemTime::UNIX_EPOCH,
            "m.1@news.example"
        ));
        let bob = endpoint.lookup("bob@example.org").unwrap();
        assert_eq!(
            (bob.reason, bob.campaign.as_str(), bob.message_id.as_str()),
            (Reason::HardBounce, "news", "<m.1@news.example>")
        );
    }
}
