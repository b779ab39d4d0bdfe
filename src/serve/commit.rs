//! Group commit: one thread per suppression file takes every unsubscribe waiting, appends
//! them in one write and one fsync, then answers each request. Under load a sync covers all
//! the requests that arrived during the previous one, so the rate is bounded by the disk's
//! sync latency times the batch, not by one sync per request.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::suppression::{Record, Store};

/// The most records one sync carries; a bound on the time one batch holds the lock.
const MAX_BATCH: usize = 1024;

struct Job {
    record: Record,
    /// `Ok(true)` written, `Ok(false)` already on the list, `Err` not recorded.
    reply: oneshot::Sender<Result<bool, String>>,
}

/// A handle to one file's commit thread; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
    pub store: Arc<Store>,
}

impl Committer {
    /// Starts the thread. It ends when every handle is dropped and the queue is drained, so
    /// a request that was accepted is recorded (or answered with an error) before exit.
    pub fn start(store: Arc<Store>) -> (Committer, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let s = store.clone();
        let handle = std::thread::spawn(move || run(&s, rx));
        (Committer { tx, store }, handle)
    }

    /// Records `record` durably; `Ok(false)` when it was already on the list.
    pub async fn record(&self, record: Record) -> Result<bool, String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Job { record, reply })
            .await
            .map_err(|_| "the store is shutting down".to_owned())?;
        done.await
            .map_err(|_| "the store stopped before recording".to_owned())?
    }
}

fn run(store: &Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let records: Vec<Record> = jobs.iter().map(|j| j.record.clone()).collect();
        match store.record(&records) {
            Ok(written) => {
                tracing::debug!(
                    "recorded a batch of {} ({} new)",
                    jobs.len(),
                    written.iter().filter(|w| **w).count()
                );
                for (job, w) in jobs.into_iter().zip(written) {
                    let _ = job.reply.send(Ok(w));
                }
            }
            Err(e) => {
                tracing::error!("{e}");
                for job in jobs {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}
