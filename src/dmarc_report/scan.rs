//! Reading many files at once: worker threads read and parse files and reduce each report to
//! a digest; the calling thread folds the digests into the totals as they arrive, so only the
//! reports in flight (a few per thread, the channel is bounded) are ever held in memory.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::aggregate::Aggregate;
use super::container::{self, MAX_BYTES, ReadError, SkipKind};
use super::digest::Digest;
use super::summary::Skipped;
use super::walk::Found;

/// Progress, as each file is finished.
pub enum Event<'a> {
    Read,
    Skipped(&'a Skipped),
}

pub struct Scanned {
    pub aggregate: Aggregate,
    pub files_found: u64,
    pub files_read: u64,
    pub skipped: Vec<Skipped>,
}

/// Reads every file found with up to `threads` threads. Results arrive in completion order;
/// the totals do not depend on it (the only order-sensitive step, which copy of a duplicate
/// report counts, matters only if a receiver sent two different reports under one id).
pub fn scan(found: Found, threads: usize, mut observe: impl FnMut(Event<'_>)) -> Scanned {
    let files = found.files;
    let mut out = Scanned {
        aggregate: Aggregate::default(),
        files_found: (files.len() + found.unreadable.len()) as u64,
        files_read: 0,
        skipped: Vec::new(),
    };
    for (path, e) in found.unreadable {
        let skipped = Skipped {
            path,
            kind: SkipKind::Broken,
            reason: ReadError::Io(e).to_string(),
        };
        observe(Event::Skipped(&skipped));
        out.skipped.push(skipped);
    }

    let threads = threads.clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<Vec<Digest>, ReadError>)>(threads * 4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (files, next) = (&files, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let result = std::panic::catch_unwind(|| read_file(path))
                        .unwrap_or(Err(ReadError::Crashed));
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        // The workers hold the only senders left, so the loop below ends when they do.
        drop(tx);
        for (i, result) in rx {
            match result {
                Ok(digests) => {
                    out.files_read += 1;
                    for d in &digests {
                        out.aggregate.add(d);
                    }
                    observe(Event::Read);
                }
                Err(e) => {
                    let skipped = Skipped {
                        path: files[i].clone(),
                        kind: e.kind(),
                        reason: e.to_string(),
                    };
                    observe(Event::Skipped(&skipped));
                    out.skipped.push(skipped);
                }
            }
        }
    });
    out
}

fn read_file(path: &Path) -> Result<Vec<Digest>, ReadError> {
    let data = read_regular(path)?;
    let reports = container::reports_in(&data)?;
    Ok(reports
        .iter()
        .map(|p| Digest::of(&p.report).with_format(p.rfc9990))
        .collect())
}

/// The file's bytes, if it is a regular file of at most [`MAX_BYTES`]. Opened non-blocking, so
/// a FIFO cannot hang the worker, and checked on the open handle, so `/dev/zero` or a file
/// swapped for a device after the folder was listed is refused rather than read forever; the
/// read itself stops one byte past the cap in case the file grows.
fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok(data)
}
