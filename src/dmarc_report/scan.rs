//! Reading many reports at once: the mailbox reader yields files and messages one at a time on
//! the calling thread, worker threads parse them and reduce each report to a digest, and the
//! calling thread folds the digests into the totals as they arrive, so only the items in
//! flight (a few per thread, the channels are bounded) are ever held in memory.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::aggregate::Aggregate;
use super::container::{self, ReadError, SkipKind};
use super::digest::Digest;
use super::summary::Skipped;
use crate::mailbox::{Item, ItemError};

/// Progress, as each item is finished.
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

/// Parses every item with up to `threads` threads. Results arrive in completion order; the
/// totals do not depend on it (the only order-sensitive step, which copy of a duplicate
/// report counts, matters only if a receiver sent two different reports under one id).
/// `unreadable` are sources that could not be listed, reported first.
pub fn scan(
    items: impl Iterator<Item = Item> + Send,
    unreadable: Vec<(String, String)>,
    threads: usize,
    mut observe: impl FnMut(Event<'_>),
) -> Scanned {
    let mut out = Scanned {
        aggregate: Aggregate::default(),
        files_found: unreadable.len() as u64,
        files_read: 0,
        skipped: Vec::new(),
    };
    for (path, e) in unreadable {
        out.skip(PathBuf::from(path), SkipKind::Broken, e, &mut observe);
    }
    let threads = threads.max(1);
    type Work = (PathBuf, Result<Vec<u8>, ItemError>);
    type Done = (PathBuf, Result<Vec<Digest>, ReadError>);
    let (work_tx, work_rx) = mpsc::sync_channel::<Work>(threads * 2);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (tx, rx) = mpsc::sync_channel::<Done>(threads * 4);
    std::thread::scope(|s| {
        // The reader runs on its own thread and feeds the workers; the work channel is
        // bounded, so it waits while they are busy.
        s.spawn(move || {
            for item in items {
                if work_tx
                    .send((PathBuf::from(item.origin.to_string()), item.bytes))
                    .is_err()
                {
                    break;
                }
            }
        });
        for _ in 0..threads {
            let (tx, work_rx) = (tx.clone(), Arc::clone(&work_rx));
            s.spawn(move || {
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((path, data))) = next else { break };
                    let result = match data {
                        Ok(data) => std::panic::catch_unwind(|| parse(&data))
                            .unwrap_or(Err(ReadError::Crashed)),
                        Err(e) => Err(unread(e)),
                    };
                    if tx.send((path, result)).is_err() {
                        break;
                    }
                }
            });
        }
        // The workers hold the only senders left, so the loop below ends when they do.
        drop(tx);
        for (path, result) in rx {
            out.files_found += 1;
            match result {
                Ok(digests) => {
                    out.files_read += 1;
                    for d in &digests {
                        out.aggregate.add(d);
                    }
                    observe(Event::Read);
                }
                Err(e) => out.skip(path, e.kind(), e.to_string(), &mut observe),
            }
        }
    });
    out
}

impl Scanned {
    fn skip(
        &mut self,
        path: PathBuf,
        kind: SkipKind,
        reason: String,
        observe: &mut impl FnMut(Event<'_>),
    ) {
        let skipped = Skipped { path, kind, reason };
        observe(Event::Skipped(&skipped));
        self.skipped.push(skipped);
    }
}

/// A message the reader could not read, in the report reader's terms.
fn unread(e: ItemError) -> ReadError {
    match e {
        ItemError::TooLarge { .. } => ReadError::TooLarge,
        ItemError::NotAFile => ReadError::NotAFile,
        other => ReadError::Io(std::io::Error::other(other.to_string())),
    }
}

fn parse(data: &[u8]) -> Result<Vec<Digest>, ReadError> {
    let reports = container::reports_in(data)?;
    Ok(reports
        .iter()
        .map(|p| Digest::of(&p.report).with_format(p.rfc9990))
        .collect())
}
