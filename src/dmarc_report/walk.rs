//! Which files to read: named files as they are, folders recursively in name order, with
//! Maildir's rules (a message in tmp/ is still being delivered) and mail-store bookkeeping
//! files left out.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    /// Paths that could not be listed or do not exist, with the error.
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

pub fn files(paths: &[PathBuf]) -> Found {
    let mut found = Found::default();
    for path in paths {
        // A named path is taken as given, hidden or symlinked.
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut found),
            Ok(_) => found.files.push(path.clone()),
            Err(e) => found.unreadable.push((path.clone(), e)),
        }
    }
    found
}

fn walk(dir: &Path, found: &mut Found) {
    let entries = match fs::read_dir(dir).and_then(|rd| rd.collect::<Result<Vec<_>, _>>()) {
        Ok(entries) => entries,
        Err(e) => {
            found.unreadable.push((dir.to_owned(), e));
            return;
        }
    };
    let mut entries: Vec<(String, PathBuf)> = entries
        .into_iter()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    // Name order, so the skipped list and any tie in the results read the same every run.
    entries.sort();
    let is_maildir = ["cur", "new"].iter().all(|sub| {
        entries
            .iter()
            .any(|(name, path)| name == sub && path.is_dir())
    });
    for (name, path) in entries {
        // symlink_metadata: a symlinked folder is not followed, so a link back up the tree
        // cannot loop; a symlinked file is read.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if is_maildir && name == "tmp" {
                continue;
            }
            walk(&path, found);
        } else if (meta.is_file() || (meta.is_symlink() && path.is_file())) && !ignored(&name) {
            found.files.push(path);
        }
    }
}

/// Hidden files (.DS_Store, editor swap files) and the index files Dovecot and Courier keep
/// beside Maildir folders: never reports, and listing them as skipped would only be noise.
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
        let found = files(&[d.to_owned(), d.join(".DS_Store"), d.join("missing")]);
        let rel: Vec<String> = found
            .files
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
}
