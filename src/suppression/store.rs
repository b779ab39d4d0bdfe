//! The suppression file on disk: appends under an exclusive lock with one fsync per batch,
//! and an index that follows the file's new tail.
//!
//! Readers take no lock. Writers append whole lines with one `write` each batch, so a reader
//! can only ever see a complete prefix plus, at worst, the start of a line still being
//! written: it reads up to the last newline and comes back for the rest. A writer that finds
//! the file not ending in a newline (a writer killed mid-line) starts on a fresh line, so a
//! torn fragment stays alone, fails its checksum and is skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::record::{Key, Op, Record, parse_text};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the suppression list {path} does not exist; create it (it may be empty: `touch` it), or fix suppression.file"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the suppression list {path}: {source}; fix its permissions or suppression.file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot write the suppression list {path}: {source}; the entry was NOT recorded (check the disk and the file's permissions)"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where in the file the index has got to, and which file it was (a replaced file is read
/// again from the start).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Position {
    dev: u64,
    ino: u64,
    offset: u64,
}

/// The entries in force, by key, as of `pos`.
#[derive(Debug, Default)]
pub struct Index {
    active: HashMap<Key, Record>,
    pos: Position,
    /// Lines that could not be read (torn, altered, or not an entry): skipped, counted.
    pub skipped: u64,
}

impl Index {
    pub fn get(&self, key: &Key) -> Option<&Record> {
        self.active.get(key)
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// The entries in force, oldest first.
    pub fn entries(&self) -> Vec<Record> {
        let mut all: Vec<Record> = self.active.values().cloned().collect();
        all.sort_by(|a, b| (a.time, &a.entry).cmp(&(b.time, &b.entry)));
        all
    }

    fn apply(&mut self, r: Record) {
        match r.op {
            Op::Add => {
                self.active.insert(r.key(), r);
            }
            Op::Remove => {
                self.active.remove(&r.key());
            }
        }
    }

    /// Applies complete lines from `bytes` (read at the current offset); returns how many
    /// bytes were consumed (up to the last newline).
    fn apply_bytes(&mut self, bytes: &[u8]) -> u64 {
        let Some(last) = memchr::memrchr(b'\n', bytes) else {
            return 0;
        };
        for line in bytes[..last].split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                self.skipped += 1;
                continue;
            };
            match Record::from_line(line.trim_end_matches('\r')) {
                Some(r) => self.apply(r),
                // The store's shape with a bad checksum: torn or altered, never an entry.
                None if line.contains("\t# ") => self.skipped += 1,
                // Hand-written and older lines: the plain-list rules.
                None => match parse_text(line) {
                    Ok(Some(r)) => self.apply(r),
                    Ok(None) => {}
                    Err(_) => self.skipped += 1,
                },
            }
        }
        last as u64 + 1
    }
}

/// The suppression file at one path.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub path: PathBuf,
}

impl StoreFile {
    pub fn new(path: &Path) -> StoreFile {
        StoreFile {
            path: path.to_owned(),
        }
    }

    /// Brings `index` up to the file's end. Cheap when nothing changed: one `stat`.
    /// A missing file is an empty list (the first writer creates it).
    pub fn refresh(&self, index: &mut Index) -> Result<(), StoreError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if index.pos != Position::default() {
                    *index = Index::default();
                }
                return Ok(());
            }
            Err(source) => return Err(self.read_err(source)),
        };
        if (meta.dev(), meta.ino()) == (index.pos.dev, index.pos.ino)
            && meta.len() == index.pos.offset
        {
            return Ok(());
        }
        let file = File::open(&self.path).map_err(|e| self.read_err(e))?;
        self.read_tail(&file, index).map_err(|e| self.read_err(e))
    }

    /// Reads what `file` holds past the index's offset (from the start if it is another
    /// file, or shorter than the offset: replaced or rewritten by hand).
    fn read_tail(&self, file: &File, index: &mut Index) -> std::io::Result<()> {
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (index.pos.dev, index.pos.ino)
            || meta.len() < index.pos.offset
        {
            *index = Index::default();
            index.pos.dev = meta.dev();
            index.pos.ino = meta.ino();
        }
        let mut buf = Vec::new();
        let mut f = file;
        f.seek(SeekFrom::Start(index.pos.offset))?;
        f.read_to_end(&mut buf)?;
        index.pos.offset += index.apply_bytes(&buf);
        Ok(())
    }

    /// Appends every record of `batch` that changes something (an entry already in force is
    /// not added again; a removal of an absent entry is dropped), in one write under an
    /// exclusive lock, fsynced before it returns. Returns, per record, whether it was written.
    pub fn append(&self, index: &mut Index, batch: &[Record]) -> Result<Vec<bool>, StoreError> {
        let file = self.open_locked()?;
        // Other writers may have appended since the last look: decide against the file as
        // it is now, under the lock.
        self.read_tail(&file, index).map_err(|e| self.read_err(e))?;
        let end = file.metadata().map_err(|e| self.write_err(e))?.len();
        let mut out = String::new();
        let mut last = [b'\n'];
        if end > 0 {
            file.read_exact_at(&mut last, end - 1)
                .map_err(|e| self.read_err(e))?;
        }
        if last[0] != b'\n' {
            out.push('\n');
        }
        let mut written = Vec::with_capacity(batch.len());
        for r in batch {
            let in_force = index.get(&r.key()).is_some();
            let changes = match r.op {
                Op::Add => !in_force,
                Op::Remove => in_force,
            };
            if changes {
                out.push_str(&r.to_line());
                index.apply(r.clone());
            }
            written.push(changes);
        }
        if written.iter().all(|w| !w) {
            return Ok(written);
        }
        file.write_all_at(out.as_bytes(), end)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.write_err(e))?;
        index.pos.offset = end + out.len() as u64;
        Ok(written)
    }

    /// Opens (creating it, mode 600: addresses are personal data) and locks the file. A file
    /// replaced while we waited for the lock is opened again, so no write lands in an
    /// unlinked file.
    fn open_locked(&self) -> Result<File, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                // Appends only: never truncate what other writers recorded.
                .truncate(false)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| self.write_err(e))?;
            file.lock().map_err(|e| self.write_err(e))?;
            let held = file.metadata().map_err(|e| self.write_err(e))?;
            match std::fs::metadata(&self.path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok(file),
                _ => continue,
            }
        }
    }

    fn read_err(&self, source: std::io::Error) -> StoreError {
        StoreError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_err(&self, source: std::io::Error) -> StoreError {
        StoreError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Used by tests and `suppress` to write a text line as-is (never by the store itself).
#[cfg(test)]
pub fn write_raw(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[cfg(test)]
mod tests {
    use super::super::record::Reason;
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn append_is_idempotent_and_followers_see_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = StoreFile::new(&dir.path().join("s.txt"));
        let mut w = Index::default();
        let mut r = Index::default();
        s.refresh(&mut r).unwrap();
        assert_eq!(r.len(), 0, "missing file: empty");
        let a = Record::add("ann@example.com", Reason::Unsubscribe, UNIX_EPOCH);
        assert_eq!(
            s.append(&mut w, &[a.clone(), a.clone()]).unwrap(),
            [true, false]
        );
        // Another writer with its own stale index still writes it once.
        assert_eq!(
            s.append(&mut Index::default(), std::slice::from_ref(&a))
                .unwrap(),
            [false]
        );
        s.refresh(&mut r).unwrap();
        assert!(r.get(&Key::of("ANN@example.com")).is_some());
        let rm = Record {
            op: Op::Remove,
            ..a.clone()
        };
        assert_eq!(s.append(&mut w, &[rm]).unwrap(), [true]);
        s.refresh(&mut r).unwrap();
        assert_eq!(r.len(), 0);
        let text = std::fs::read_to_string(&s.path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_torn_tail_stays_alone_and_plain_lines_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.txt");
        write_raw(
            &path,
            "# people\ncarl@example.com # asked by phone\n@spam.example\n",
        );
        let torn = Record::add("dora@example.com", Reason::Unsubscribe, UNIX_EPOCH).to_line();
        write_raw(&path, &torn[..torn.len() - 5]);
        let s = StoreFile::new(&path);
        let mut r = Index::default();
        s.refresh(&mut r).unwrap();
        assert_eq!(r.len(), 2, "the torn line is not complete yet");
        let e = Record::add("eve@example.com", Reason::Manual, UNIX_EPOCH);
        s.append(&mut Index::default(), &[e]).unwrap();
        let mut fresh = Index::default();
        s.refresh(&mut fresh).unwrap();
        assert_eq!(fresh.len(), 3);
        assert_eq!(fresh.skipped, 1, "the torn fragment");
        assert!(
            fresh.get(&Key::of("x@spam.example")).is_none(),
            "keys are exact"
        );
        assert!(fresh.get(&Key::of("@spam.example")).is_some());
        assert!(fresh.get(&Key::of("dora@example.com")).is_none());
    }
}
