//! Creating the files mailshot writes (the report, preflight.json, outbox messages) so that a
//! symlink planted at the name is replaced, never followed: a new file is created under a
//! fresh name with O_EXCL and O_NOFOLLOW, then renamed over the final name. rename(2) replaces
//! a symlink itself, so whatever it pointed at is left untouched.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name beside `path` that no other writer uses: the process id and a counter.
fn temp_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Opens a new file for writing: fails if anything, a symlink included, is at `path`.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A new, empty file at `path`, replacing whatever was there (a planted symlink included)
/// without following it. The file is in place when this returns, for a writer that appends
/// to it as it goes (the report).
pub fn replace(path: &Path) -> io::Result<File> {
    let tmp = temp_name(path);
    let file = create_new(&tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(file)
}

/// Writes `bytes` to a new file and renames it over `path` once complete, so a reader never
/// sees half of it and a symlink at `path` is replaced, not followed.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_name(path);
    let written = create_new(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_and_its_target_kept() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        for (i, write) in [
            |p: &Path| write_replacing(p, b"new"),
            |p: &Path| replace(p).and_then(|mut f| f.write_all(b"new")),
        ]
        .iter()
        .enumerate()
        {
            let link = dir.path().join(format!("report{i}.csv"));
            std::os::unix::fs::symlink(&target, &link).unwrap();
            write(&link).unwrap();
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
            assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
            assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
        }
        let link = dir.path().join("direct");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link).is_err());
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
