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
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::index::{Index, Loc, Position, is_stale};
use super::record::{Key, Op, Record};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the suppression list {path} does not exist; create it (it may be empty: `touch` it), or fix suppression.file"
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot read the suppression list {path}: {source}; fix its permissions or suppression.file"
    )]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "cannot write the suppression list {path}: {source}; the entry was NOT recorded (check the disk and the file's permissions)"
    )]
    Write { path: PathBuf, source: io::Error },
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if index.pos != Position::default() {
                    index.reset(Position::default(), None);
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
        self.catch_up(&file, index).map_err(|e| self.read_err(e))
    }

    /// Reads what `file` holds past the index's offset; if a line the index points to
    /// changed in place, builds the index again from the start, once.
    fn catch_up(&self, file: &File, index: &mut Index) -> io::Result<()> {
        match self.read_tail(file, index) {
            Err(e) if is_stale(&e) => {
                index.reset(Position::default(), None);
                self.read_tail(file, index)
            }
            done => done,
        }
    }

    /// Reads what `file` holds past the index's offset (from the start if it is another
    /// file, or shorter than the offset: replaced or rewritten by hand), a line at a time, up
    /// to the last newline: a line still being written is read on the next look.
    fn read_tail(&self, file: &File, index: &mut Index) -> io::Result<()> {
        let meta = file.metadata()?;
        if (meta.dev(), meta.ino()) != (index.pos.dev, index.pos.ino)
            || meta.len() < index.pos.offset
            || !index.has_reader()
        {
            let pos = Position {
                dev: meta.dev(),
                ino: meta.ino(),
                offset: 0,
            };
            index.reset(pos, Some(self.reader(pos)?));
        }
        let mut f = file;
        f.seek(SeekFrom::Start(index.pos.offset))?;
        let mut lines = BufReader::with_capacity(64 << 10, f);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = lines.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(());
            }
            index.apply_line(&line[..n - 1], index.pos.offset)?;
            index.pos.offset += n as u64;
        }
    }

    /// A read-only handle on the file at `pos`, for the index to read entries back from.
    /// Opened apart from a writer's handle: a copy of that one would hold its lock.
    fn reader(&self, pos: Position) -> io::Result<File> {
        let file = File::open(&self.path)?;
        let meta = file.metadata()?;
        match (meta.dev(), meta.ino()) == (pos.dev, pos.ino) {
            true => Ok(file),
            // Replaced between two opens: the next look reads the new one.
            false => Err(super::index::stale()),
        }
    }

    /// Runs a read of the index; if it finds the file changed in place, builds the index
    /// again and runs it once more.
    fn again<T>(
        &self,
        index: &mut Index,
        read: impl Fn(&Index) -> io::Result<T>,
    ) -> Result<T, StoreError> {
        match read(index) {
            Err(e) if is_stale(&e) => {
                index.reset(Position::default(), None);
                self.refresh(index)?;
                read(index).map_err(|e| self.read_err(e))
            }
            done => done.map_err(|e| self.read_err(e)),
        }
    }

    /// The entry in force for `key`, read back from the file.
    pub fn find(&self, index: &mut Index, key: &Key) -> Result<Option<Record>, StoreError> {
        self.again(index, |i| i.find(key))
    }

    /// The entries in force, oldest first.
    pub fn entries(&self, index: &mut Index) -> Result<Vec<Record>, StoreError> {
        self.refresh(index)?;
        self.again(index, Index::entries)
    }

    /// Appends every record of `batch` that changes something (an entry already in force is
    /// not added again; a removal of an absent entry is dropped), in one write under an
    /// exclusive lock, fsynced before it returns. Returns, per record, whether it was written.
    pub fn append(&self, index: &mut Index, batch: &[Record]) -> Result<Vec<bool>, StoreError> {
        let file = self.open_locked()?;
        // Other writers may have appended since the last look: decide against the file as
        // it is now, under the lock.
        self.catch_up(&file, index).map_err(|e| self.read_err(e))?;
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
        // Keys this batch already decided (in force or not): their lines are not on disk yet.
        let mut decided: HashMap<Key, bool> = HashMap::new();
        let mut placed: Vec<Option<Loc>> = Vec::with_capacity(batch.len());
        for r in batch {
            let key = r.key();
            let in_force = match decided.get(&key) {
                Some(&f) => f,
                None => self.find(index, &key)?.is_some(),
            };
            let changes = match r.op {
                Op::Add => !in_force,
                Op::Remove => in_force,
            };
            placed.push(changes.then(|| {
                let line = r.to_line();
                let loc = Loc {
                    offset: end + out.len() as u64,
                    len: line.len() as u64 - 1,
                };
                out.push_str(&line);
                decided.insert(key, r.op == Op::Add);
                loc
            }));
        }
        let written: Vec<bool> = placed.iter().map(Option::is_some).collect();
        if written.iter().all(|w| !w) {
            return Ok(written);
        }
        file.write_all_at(out.as_bytes(), end)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.write_err(e))?;
        // On disk: the index learns the batch only now, so a failed write leaves it true.
        for (r, loc) in batch.iter().zip(placed) {
            if let Some(loc) = loc
                && index.apply(r, loc).is_err()
            {
                // Changed in place under us: the next look reads the file afresh.
                index.reset(Position::default(), None);
                return Ok(written);
            }
        }
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

    fn read_err(&self, source: io::Error) -> StoreError {
        StoreError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_err(&self, source: io::Error) -> StoreError {
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
        assert!(
            s.find(&mut r, &Key::of("ANN@example.com"))
                .unwrap()
                .is_some()
        );
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
            s.find(&mut fresh, &Key::of("x@spam.example"))
                .unwrap()
                .is_none(),
            "keys are exact"
        );
        assert!(
            s.find(&mut fresh, &Key::of("@spam.example"))
                .unwrap()
                .is_some()
        );
        assert!(
            s.find(&mut fresh, &Key::of("dora@example.com"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_batch_decides_each_record_against_the_ones_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = StoreFile::new(&dir.path().join("s.txt"));
        let a = Record::add("ann@example.com", Reason::Unsubscribe, UNIX_EPOCH);
        let rm = Record {
            op: Op::Remove,
            ..a.clone()
        };
        let mut w = Index::default();
        assert_eq!(
            s.append(
                &mut w,
                &[rm.clone(), a.clone(), rm.clone(), a.clone(), a.clone()]
            )
            .unwrap(),
            [false, true, true, true, false]
        );
        let mut r = Index::default();
        s.refresh(&mut r).unwrap();
        assert_eq!((r.len(), w.len()), (1, 1));
        let found = s.find(&mut w, &Key::of("ann@example.com")).unwrap();
        assert_eq!(found, Some(a), "read back from the line the writer placed");
    }

    #[test]
    fn a_line_spoiled_in_place_makes_the_index_read_the_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.txt");
        let s = StoreFile::new(&path);
        let batch: Vec<Record> = ["ann@example.com", "bob@example.com"]
            .iter()
            .map(|e| Record::add(e, Reason::Manual, UNIX_EPOCH))
            .collect();
        s.append(&mut Index::default(), &batch).unwrap();
        let mut r = Index::default();
        s.refresh(&mut r).unwrap();
        // Same length, same file: the follower's `stat` sees nothing.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("ann@", "amm@", 1)).unwrap();
        assert_eq!(s.find(&mut r, &Key::of("ann@example.com")).unwrap(), None);
        assert_eq!(
            (r.len(), r.skipped),
            (1, 1),
            "rebuilt: the spoiled line skipped"
        );
        assert!(
            s.find(&mut r, &Key::of("bob@example.com"))
                .unwrap()
                .is_some()
        );
    }
}
