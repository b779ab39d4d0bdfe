//! The in-memory index of the suppression file: for each entry in force, a keyed 64-bit hash
//! of its key and where its line is, and nothing else.
//!
//! **Why not the parsed entries.** A list of 75,000 entries, each kept whole with its note
//! (an SMTP reply, the evidence's path), held about 40 MB, more than the rest of an intake or
//! send run together. A hash and a location are 24 bytes a slot, about 3 MB for the same list.
//! The entry itself is read back from the file when it is asked for, which is only on a hit,
//! and most lookups (every recipient of a `send`) miss. A hit is confirmed by reading the
//! line and comparing keys, so a hash that two keys share never suppresses the wrong address:
//! the second key of such a pair is kept whole beside the table.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::unix::fs::FileExt;

use super::record::{Key, Op, Record, parse_text};

/// Where an entry's line is in the file: its first byte and its length without the newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub offset: u64,
    pub len: u64,
}

/// Where in the file the index has got to, and which file it was (a replaced file is read
/// again from the start).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// A line the index points to no longer reads back as the entry it was: the file was changed
/// in place (edited, not appended to), so the index must be built again.
#[derive(Debug, thiserror::Error)]
#[error("the suppression list was changed in place while it was read; run again")]
pub(super) struct Stale;

pub(super) fn stale() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Stale)
}

pub(super) fn is_stale(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stale>())
}

/// What one line of the file says.
enum Line {
    Entry(Record),
    /// Blank or a comment.
    Nothing,
    /// Torn, altered, or not an entry.
    Bad,
}

fn parse_line(bytes: &[u8]) -> Line {
    let Ok(line) = std::str::from_utf8(bytes) else {
        return Line::Bad;
    };
    let line = line.trim_end_matches('\r');
    match Record::from_line(line) {
        Some(r) => Line::Entry(r),
        // The store's shape with a bad checksum: torn or altered, never an entry.
        None if line.contains("\t# ") => Line::Bad,
        // Hand-written and older lines: the plain-list rules.
        None => match parse_text(line) {
            Ok(Some(r)) => Line::Entry(r),
            Ok(None) => Line::Nothing,
            Err(_) => Line::Bad,
        },
    }
}

/// Where a key stands in the index.
enum Slot {
    /// In force: its entry, read back, and whether it is kept whole beside the table.
    Held(Record, bool),
    /// Not in force, and no other key has its hash.
    Free,
    /// Not in force; another key in force has the same hash.
    Taken,
}

/// The entries in force, as of `pos`.
#[derive(Debug, Default)]
pub struct Index {
    by_hash: HashMap<u64, Loc>,
    /// Keys whose hash another key in force already had (about one list in 10^10 has one).
    collided: HashMap<Key, Loc>,
    /// Keyed per process, so nobody can choose addresses that share a hash.
    hasher: RandomState,
    /// The file `pos` describes, to read entries back from.
    reader: Option<File>,
    pub(super) pos: Position,
    /// Lines that could not be read (torn, altered, or not an entry): skipped, counted.
    pub skipped: u64,
    /// Tests: every key has the same hash, so every key after the first is a collision.
    #[cfg(test)]
    pub(super) one_hash: bool,
}

impl Index {
    pub fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    pub(super) fn has_reader(&self) -> bool {
        self.reader.is_some()
    }

    /// Empties the index, to read `reader` (the file at `pos`) from its start.
    pub(super) fn reset(&mut self, pos: Position, reader: Option<File>) {
        // New maps, not cleared ones: a shorter list gives the memory back.
        self.by_hash = HashMap::new();
        self.collided = HashMap::new();
        self.reader = reader;
        self.pos = pos;
        self.skipped = 0;
    }

    fn hash(&self, key: &Key) -> u64 {
        #[cfg(test)]
        if self.one_hash {
            return 7;
        }
        self.hasher.hash_one(key)
    }

    /// The entry whose line is at `loc`. A line that is gone or no longer an entry means the
    /// file changed in place: [`Stale`].
    fn read_at(&self, loc: Loc) -> io::Result<Record> {
        let file = self.reader.as_ref().ok_or_else(stale)?;
        let len = usize::try_from(loc.len).map_err(|_| stale())?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, loc.offset)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => stale(),
                _ => e,
            })?;
        match parse_line(&buf) {
            Line::Entry(r) if r.op == Op::Add => Ok(r),
            _ => Err(stale()),
        }
    }

    fn slot(&self, key: &Key, hash: u64) -> io::Result<Slot> {
        if let Some(&loc) = self.collided.get(key) {
            let r = self.read_at(loc)?;
            return match r.key() == *key {
                true => Ok(Slot::Held(r, true)),
                false => Err(stale()),
            };
        }
        let Some(&loc) = self.by_hash.get(&hash) else {
            return Ok(Slot::Free);
        };
        let r = self.read_at(loc)?;
        Ok(match r.key() == *key {
            true => Slot::Held(r, false),
            false => Slot::Taken,
        })
    }

    /// The entry in force for `key`, read back from the file.
    pub(super) fn find(&self, key: &Key) -> io::Result<Option<Record>> {
        Ok(match self.slot(key, self.hash(key))? {
            Slot::Held(r, _) => Some(r),
            Slot::Free | Slot::Taken => None,
        })
    }

    /// Takes in the record whose line is at `loc`: an entry added again points at its newest
    /// line; a removal drops it.
    pub(super) fn apply(&mut self, r: &Record, loc: Loc) -> io::Result<()> {
        let key = r.key();
        let hash = self.hash(&key);
        let slot = self.slot(&key, hash)?;
        match (r.op, slot) {
            (Op::Add, Slot::Held(_, true) | Slot::Taken) => {
                self.collided.insert(key, loc);
            }
            (Op::Add, Slot::Held(_, false) | Slot::Free) => {
                self.by_hash.insert(hash, loc);
            }
            (Op::Remove, Slot::Held(_, true)) => {
                self.collided.remove(&key);
            }
            (Op::Remove, Slot::Held(_, false)) => {
                self.by_hash.remove(&hash);
            }
            (Op::Remove, Slot::Free | Slot::Taken) => {}
        }
        Ok(())
    }

    /// Takes in one complete line (without its newline) found at `offset`.
    pub(super) fn apply_line(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        match parse_line(bytes) {
            Line::Entry(r) => self.apply(
                &r,
                Loc {
                    offset,
                    len: bytes.len() as u64,
                },
            ),
            Line::Nothing => Ok(()),
            Line::Bad => {
                self.skipped += 1;
                Ok(())
            }
        }
    }

    /// The entries in force, read back in file order, then sorted oldest first.
    pub(super) fn entries(&self) -> io::Result<Vec<Record>> {
        let mut locs: Vec<Loc> = self
            .by_hash
            .values()
            .chain(self.collided.values())
            .copied()
            .collect();
        locs.sort_by_key(|l| l.offset);
        let mut all = locs
            .into_iter()
            .map(|l| self.read_at(l))
            .collect::<io::Result<Vec<Record>>>()?;
        all.sort_by(|a, b| (a.time, &a.entry).cmp(&(b.time, &b.entry)));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::Reason;
    use super::*;
    use std::io::Write;
    use std::time::UNIX_EPOCH;

    /// Writes `lines` to a file and indexes it, with every key on one hash when `one_hash`.
    fn indexed(dir: &std::path::Path, lines: &[String], one_hash: bool) -> Index {
        let path = dir.join("s.txt");
        let mut f = File::create(&path).unwrap();
        for l in lines {
            f.write_all(l.as_bytes()).unwrap();
        }
        let mut index = Index {
            one_hash,
            ..Index::default()
        };
        index.reset(Position::default(), Some(File::open(&path).unwrap()));
        let mut offset = 0;
        for l in lines {
            let body = l.trim_end_matches('\n');
            index.apply_line(body.as_bytes(), offset).unwrap();
            offset += l.len() as u64;
        }
        index
    }

    fn add(entry: &str, reason: Reason) -> String {
        Record::add(entry, reason, UNIX_EPOCH).to_line()
    }

    fn remove(entry: &str) -> String {
        Record {
            op: Op::Remove,
            ..Record::add(entry, Reason::Manual, UNIX_EPOCH)
        }
        .to_line()
    }

    fn lines() -> Vec<String> {
        vec![
            add("ann@example.com", Reason::Unsubscribe),
            "bob@example.org  # asked by phone\n".into(),
            add("cat@example.net", Reason::Complaint),
            add("@spam.example", Reason::Manual),
            remove("ann@example.com"),
            add("dan@example.com", Reason::HardBounce),
            add("Cat@Example.net", Reason::HardBounce),
            remove("eve@example.com"),
        ]
    }

    /// Lookups and removals give the same answers whether keys share a hash or not.
    #[test]
    fn collisions_never_change_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        for one_hash in [false, true] {
            let index = indexed(dir.path(), &lines(), one_hash);
            let find = |e: &str| index.find(&Key::of(e)).unwrap();
            assert_eq!(index.len(), 4, "{one_hash}");
            assert!(find("ann@example.com").is_none(), "removed ({one_hash})");
            assert_eq!(find("BOB@example.org").unwrap().note, "asked by phone");
            assert_eq!(
                find("cat@example.net").unwrap().reason,
                Reason::HardBounce,
                "the newest line wins ({one_hash})"
            );
            assert!(find("spam.example").is_some());
            assert!(find("dan@example.com").is_some());
            assert!(find("eve@example.com").is_none());
            assert!(find("x@spam.example").is_none(), "keys are exact");
            let entries: Vec<String> = index
                .entries()
                .unwrap()
                .into_iter()
                .map(|r| r.entry)
                .collect();
            assert_eq!(entries.len(), 4, "{entries:?}");
            assert!(entries.contains(&"Cat@Example.net".to_owned()));
        }
    }

    #[test]
    fn a_removed_first_key_leaves_the_collided_one_found() {
        let dir = tempfile::tempdir().unwrap();
        let l = vec![
            add("ann@example.com", Reason::Unsubscribe),
            add("bob@example.com", Reason::Unsubscribe),
            remove("ann@example.com"),
            add("cat@example.com", Reason::Unsubscribe),
            remove("bob@example.com"),
            add("bob@example.com", Reason::Complaint),
        ];
        let index = indexed(dir.path(), &l, true);
        assert_eq!(index.len(), 2);
        assert!(index.find(&Key::of("ann@example.com")).unwrap().is_none());
        assert_eq!(
            index
                .find(&Key::of("bob@example.com"))
                .unwrap()
                .unwrap()
                .reason,
            Reason::Complaint
        );
        assert!(index.find(&Key::of("cat@example.com")).unwrap().is_some());
    }

    #[test]
    fn a_line_changed_in_place_is_stale_not_a_wrong_answer() {
        let dir = tempfile::tempdir().unwrap();
        let index = indexed(dir.path(), &lines(), false);
        let path = dir.path().join("s.txt");
        let text = std::fs::read_to_string(&path).unwrap();
        // Same length, same file: an edit a follower cannot see from the size.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(text.replace("dan@", "dam@").as_bytes(), 0)
            .unwrap();
        let e = index.find(&Key::of("dan@example.com")).unwrap_err();
        assert!(is_stale(&e), "{e}");
    }

    #[test]
    fn a_slot_is_a_hash_and_a_place_not_the_entry() {
        assert_eq!(std::mem::size_of::<(u64, Loc)>(), 24);
    }
}
