//! Messages in files: named files as they are, folders recursively in name order, with
//! Maildir's rules (a message in tmp/ is still being delivered) and mail-store bookkeeping
//! files left out. A file that starts with an mbox `From ` line is read as an mbox.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::mbox::Mbox;
use super::{Item, ItemError, Origin};

/// The files under the named paths, listed once (paths only: a few MB for 100,000 messages),
/// then read one at a time.
pub struct Files {
    files: Vec<PathBuf>,
    next: usize,
    max_bytes: u64,
    mbox: Option<Mbox>,
    /// Paths that could not be listed or do not exist, with the error.
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

impl Files {
    pub fn list(paths: &[PathBuf], max_bytes: u64) -> Files {
        let mut found = Files {
            files: Vec::new(),
            next: 0,
            max_bytes,
            mbox: None,
            unreadable: Vec::new(),
        };
        for path in paths {
            // A named path is taken as given, hidden or symlinked.
            match fs::metadata(path) {
                Ok(meta) if meta.is_dir() => found.walk(path),
                Ok(_) => found.files.push(path.clone()),
                Err(e) => found.unreadable.push((path.clone(), e)),
            }
        }
        found
    }

    /// Files listed (an mbox file counts once here; its messages are counted as read).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    fn walk(&mut self, dir: &Path) {
        // Names only, sorted, then one path at a time: a 100,000-message folder would
        // otherwise hold every DirEntry and a second copy of every name at once.
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        let listed = fs::read_dir(dir).and_then(|rd| {
            for e in rd {
                names.push(e?.file_name());
            }
            Ok(())
        });
        if let Err(e) = listed {
            self.unreadable.push((dir.to_owned(), e));
            return;
        }
        // Name order, so the skipped list and any tie in the results read the same every run.
        names.sort();
        let is_maildir = ["cur", "new"]
            .iter()
            .all(|sub| names.iter().any(|n| n == *sub) && dir.join(sub).is_dir());
        for name in names {
            let path = dir.join(&name);
            // symlink_metadata: a symlinked folder is not followed, so a link back up the tree
            // cannot loop; a symlinked file is read.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let name = name.to_string_lossy();
            if meta.is_dir() {
                if is_maildir && name == "tmp" {
                    continue;
                }
                self.walk(&path);
            } else if (meta.is_file() || (meta.is_symlink() && path.is_file())) && !ignored(&name) {
                self.files.push(path);
            }
        }
    }

    /// The paths listed, in the order they are read.
    #[cfg(test)]
    pub fn paths(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Iterator for Files {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(m) = &mut self.mbox {
                match m.next() {
                    Some(item) => return Some(item),
                    None => self.mbox = None,
                }
            }
            let path = self.files.get(self.next)?.clone();
            self.next += 1;
            if is_mbox(&path) {
                match Mbox::open(&path, self.max_bytes) {
                    Ok(m) => {
                        self.mbox = Some(m);
                        continue;
                    }
                    Err(e) => {
                        return Some(Item {
                            origin: Origin::File(path),
                            bytes: Err(ItemError::Io(e.to_string())),
                        });
                    }
                }
            }
            let bytes = super::read_regular(&path, self.max_bytes);
            return Some(Item {
                origin: Origin::File(path),
                bytes,
            });
        }
    }
}

/// An mbox starts with a `From ` separator line; a single message file never does (its first
/// line is a header field).
fn is_mbox(path: &Path) -> bool {
    let mut head = [0u8; 5];
    fs::metadata(path).is_ok_and(|m| m.is_file())
        && fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && &head == b"From "
}

/// Hidden files (.DS_Store, editor swap files) and the index files Dovecot and Courier keep
/// beside Maildir folders: never messages, and listing them as skipped would only be noise.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with("dovecot")
        || name.starts_with("courierimap")
        || name == "maildirfolder"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_folders_and_respects_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.xml",
            "sub/b.xml.gz",
            ".DS_Store",
            "box/cur/1",
            "box/new/2",
            "box/tmp/3",
            "box/dovecot-uidlist",
            "box/.Archive/cur/4",
            "box/.Archive/new/5",
            "box/.Archive/tmp/6",
            "notmaildir/tmp/7",
        ] {
            let p = d.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, "x").unwrap();
        }
        let found = Files::list(
            &[d.to_owned(), d.join(".DS_Store"), d.join("missing")],
            1 << 20,
        );
        let rel: Vec<String> = found
            .paths()
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rel,
            [
                "a.xml",
                "box/.Archive/cur/4",
                "box/.Archive/new/5",
                "box/cur/1",
                "box/new/2",
                "notmaildir/tmp/7",
                "sub/b.xml.gz",
                // Named on the command line: taken even though hidden.
                ".DS_Store",
            ]
        );
        assert_eq!(found.unreadable.len(), 1);
        assert_eq!(found.unreadable[0].0, d.join("missing"));
    }

    #[test]
    fn oversized_files_and_mbox_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("a"), "Subject: a\n\nshort\n").unwrap();
        fs::write(d.join("b"), vec![b'x'; 2048]).unwrap();
        fs::write(
            d.join("c.mbox"),
            "From a@b Mon Jan  1 00:00:00 2024\nSubject: 1\n\n>From here\n\nFrom x@y Mon Jan  1 00:00:00 2024\nSubject: 2\n\nbody\n",
        )
        .unwrap();
        let items: Vec<Item> = Files::list(&[d.to_owned()], 1024).collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].bytes.as_ref().unwrap(), b"Subject: a\n\nshort\n");
        assert!(matches!(
            items[1].bytes,
            Err(ItemError::TooLarge { size: 2048, .. })
        ));
        assert_eq!(
            items[2].bytes.as_ref().unwrap(),
            b"Subject: 1\n\nFrom here\n"
        );
        assert_eq!(
            items[3].origin.to_string(),
            format!("{} message 2", d.join("c.mbox").display())
        );
    }
}
