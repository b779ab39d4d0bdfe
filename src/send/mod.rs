//! The send pipeline: recipient rows flow through preparer threads (render, build, sign:
//! CPU work, kept off the async runtime) into a bounded queue, then to `concurrency` sender
//! tasks that pace themselves and deliver over the transport; every row ends as one
//! [`Outcome`] in the report.
//!
//! Memory stays flat: the queues are bounded and rows are streamed from the file.

pub mod journal;
pub mod limits;
pub mod queue;
pub mod rate;
pub mod relays;
pub mod resume;
pub mod seed;
mod sender;
pub mod transport;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::RecipientSource;
use crate::config::RetryPolicy;
use crate::message::{Assembler, Prepared, RowError};
use crate::preflight::dkim::DkimVerifier;
use crate::progress::Progress;
use crate::recipients::Recipient;
use crate::recipients::{RecipientReader, RecipientsError, Row};
use crate::report::{Outcome, ReportWriter, Status, Tally};
use crate::suppression::Suppression;
use journal::{Journal, Prior, State};
use limits::DomainLimits;
use queue::Scheduler;
use resume::{Plan, Settled};
use sender::{MAX_WAITING, Queue, Rng, Sender};

pub use rate::Pacer;
pub use resume::InDoubt;
pub use transport::{DeliveryError, Transport};

/// Why the pipeline stopped early. Recipients not yet tried are reported as not attempted.
#[derive(Debug, Clone)]
pub enum Stop {
    Delivery(DeliveryError),
    /// The circuit breaker: this many recipients in a row were refused; the last reply.
    Refusals {
        count: u64,
        last: String,
    },
    Recipients(String),
    Report(String),
    Journal(String),
    /// Ctrl-C (or SIGTERM): in-flight messages finished, nothing new started.
    Interrupted,
    /// `limits.per_day` is reached for today (UTC); the next allowance starts at `resets_at`.
    DayCap {
        cap: u64,
        resets_at: std::time::SystemTime,
    },
    Internal(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // SMTP replies are the relay's text: escaped for the terminal.
            Stop::Delivery(e) => write!(f, "{}", crate::terminal::field(&e.text)),
            Stop::Refusals { count, last } => write!(
                f,
                "{count} recipients in a row were refused (last: {}); the relay is refusing this sender, not these recipients",
                crate::terminal::field(last)
            ),
            Stop::Recipients(e) | Stop::Report(e) | Stop::Journal(e) | Stop::Internal(e) => {
                f.write_str(e)
            }
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::DayCap { cap, .. } => write!(
                f,
                "today's cap of {cap} messages (limits.per_day) is reached"
            ),
        }
    }
}

pub struct RunResult {
    pub tally: Tally,
    pub stopped: Option<Stop>,
}

/// Shared state for stopping early: the first reason wins. Tripped by fatal errors, by the
/// circuit breaker, and by Ctrl-C.
#[derive(Default)]
pub struct Abort {
    flag: AtomicBool,
    reason: Mutex<Option<Stop>>,
    wake: tokio::sync::Notify,
}

impl Abort {
    pub fn trip(&self, why: Stop) {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            *reason = Some(why);
        }
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Returns once the run is stopped.
    async fn stopped(&self) {
        loop {
            let woken = self.wake.notified();
            if self.is_set() {
                return;
            }
            woken.await;
        }
    }
}

pub struct Pipeline {
    pub assembler: Arc<Assembler>,
    pub transport: Arc<Transport>,
    pub pacer: Arc<Pacer>,
    /// Per-provider paces, across relays.
    pub domains: Arc<DomainLimits>,
    /// `limits.per_day`: what today still allows.
    pub day_cap: Option<Arc<Mutex<limits::DayCap>>>,
    pub concurrency: usize,
    pub clock: Arc<dyn Clock>,
    /// Rows the survey counted; the run checks that every one of them was reported.
    pub expected_rows: u64,
    pub abort: Arc<Abort>,
    /// `None` for dry runs, which never mark anything as sent.
    pub journal: Option<Journal>,
    pub prior: Arc<Prior>,
    pub in_doubt: InDoubt,
    pub suppression: Arc<Suppression>,
    pub retry: RetryPolicy,
    /// Seeds the retry jitter.
    pub seed: u64,
    /// Dry runs verify every written message against the key records the preflight saw.
    pub verifier: Option<Arc<DkimVerifier>>,
    pub candidates: Arc<crate::recipients::Candidates>,
}

/// How often the progress line is refreshed while no outcome comes (recipients waiting).
const WAITING_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the report's buffered lines are handed to the file during a run.
const REPORT_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// After this many recipients in a row were refused, the problem is the sender, not them:
/// an account suspended mid-run, a sender address the relay no longer accepts, a relay going
/// down. Stopping keeps the rest of the list from being marked failed.
fn breaker_limit(concurrency: usize) -> u64 {
    (2 * concurrency as u64).max(10)
}

impl Pipeline {
    /// Runs the campaign over every row of `source`.
    pub async fn run(
        self,
        source: &RecipientSource,
        report: &mut ReportWriter,
        progress: &mut Progress,
    ) -> RunResult {
        let abort = self.abort.clone();
        let (outcome_tx, outcome_rx) = mpsc::channel::<Outcome>(1024);
        // Messages travel in batches of up to BATCH: one wake-up of a sender (and of a
        // preparer waiting for room) per batch instead of per message.
        let (job_tx, job_rx) = mpsc::channel::<Vec<Prepared>>(self.concurrency);
        // Every sender takes from one scheduler: retries that are due, then fresh messages.
        let work: Arc<Queue> = Arc::new(Scheduler::new(job_rx, MAX_WAITING));

        let reader = RecipientReader::open(source)
            .map(|r| r.with_candidates(self.candidates.clone()))
            .map_err(|e| abort.trip(Stop::Recipients(e.to_string())))
            .ok()
            .map(|r| Arc::new(Mutex::new(r)));

        // Preparers: as many threads as cores, since signing (RSA especially) is the CPU
        // cost of a campaign.
        let mut preparers = Vec::new();
        if let Some(reader) = reader {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            for _ in 0..threads {
                let p = Preparer {
                    reader: reader.clone(),
                    assembler: self.assembler.clone(),
                    jobs: job_tx.clone(),
                    outcomes: outcome_tx.clone(),
                    abort: abort.clone(),
                    clock: self.clock.clone(),
                    prior: self.prior.clone(),
                    in_doubt: self.in_doubt,
                    suppression: self.suppression.clone(),
                    journal: self.journal.clone(),
                    outbox_run: self.transport.delivered() == Status::Written,
                };
                preparers.push(std::thread::spawn(move || p.run()));
            }
        }
        drop(job_tx);

        let mut senders = Vec::new();
        for i in 0..self.concurrency {
            let s = Sender {
                work: work.clone(),
                outcomes: outcome_tx.clone(),
                transport: self.transport.clone(),
                pacer: self.pacer.clone(),
                domains: self.domains.clone(),
                day_cap: self.day_cap.clone(),
                abort: abort.clone(),
                clock: self.clock.clone(),
                journal: self.journal.clone(),
                suppression: self.suppression.clone(),
                retry: self.retry,
                verifier: self.verifier.clone(),
                rng: Rng::new(self.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            };
            senders.push(tokio::spawn(s.run()));
        }
        drop(outcome_tx);

        let tally = self.collect(outcome_rx, &work, report, progress).await;
        // The senders are gone: if the preparers still wait for room, their sends fail now
        // instead of blocking forever.
        drop(work);
        for s in senders {
            if let Err(e) = s.await {
                abort.trip(Stop::Internal(format!("a sender task failed: {e}")));
            }
        }
        self.transport.close().await;
        for p in preparers {
            if p.join().is_err() {
                abort.trip(Stop::Internal("a preparer thread panicked".into()));
            }
        }
        if let Some(j) = &self.journal
            && let Err(e) = j.sync()
        {
            abort.trip(Stop::Journal(e.to_string()));
        }
        progress.finish();
        if tally.rows() != self.expected_rows && !abort.is_set() {
            abort.trip(Stop::Internal(format!(
                "{} rows were reported but the recipient file has {}; the file may have changed during the run",
                tally.rows(),
                self.expected_rows
            )));
        }
        let stopped = abort
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        RunResult { tally, stopped }
    }

    /// Takes every outcome into the tally and the report (a batch per REPORT_FLUSH), and
    /// trips the circuit breaker on a run of refusals.
    async fn collect(
        &self,
        mut outcome_rx: mpsc::Receiver<Outcome>,
        work: &Queue,
        report: &mut ReportWriter,
        progress: &mut Progress,
    ) -> Tally {
        let abort = &self.abort;
        let mut tally = Tally::default();
        let mut refused_in_a_row = 0u64;
        let mut report_ok = true;
        let mut last_flush = std::time::Instant::now();
        // Lines written since the last flush: when no outcome comes for REPORT_FLUSH (a paced
        // run, a slow relay), they are flushed without waiting for the next one.
        let mut unflushed = false;
        loop {
            let next = match outcome_rx.try_recv() {
                Ok(o) => Some(o),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if unflushed && report_ok => {
                    match tokio::time::timeout(REPORT_FLUSH, outcome_rx.recv()).await {
                        Ok(o) => o,
                        Err(_) => {
                            last_flush = std::time::Instant::now();
                            unflushed = false;
                            if let Err(e) = report.flush() {
                                abort.trip(Stop::Report(e.to_string()));
                                report_ok = false;
                            }
                            continue;
                        }
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout(WAITING_TICK, outcome_rx.recv()).await {
                        Ok(o) => o,
                        Err(_) => {
                            // Quiet: only retries may be left. Say how many and when.
                            progress.waiting(work.waiting());
                            continue;
                        }
                    }
                }
            };
            let Some(o) = next else { break };
            tally.add(o.status);
            // Only deliveries: failures settled earlier are counted as failed, not here.
            if o.earlier && matches!(o.status, Status::Sent | Status::Written) {
                tally.sent_earlier += 1;
            }
            match o.status {
                Status::Sent | Status::Written | Status::DryRun => refused_in_a_row = 0,
                // Outcomes settled by earlier runs say nothing about the relay today.
                Status::Failed | Status::Deferred if o.message_id.is_some() && !o.earlier => {
                    refused_in_a_row += 1;
                    if refused_in_a_row == breaker_limit(self.concurrency) {
                        abort.trip(Stop::Refusals {
                            count: refused_in_a_row,
                            last: o.text.clone(),
                        });
                    }
                }
                _ => {}
            }
            if !matches!(o.status, Status::Invalid | Status::Duplicate) && !o.earlier {
                progress.inc();
            }
            if report_ok {
                // One write per REPORT_FLUSH, not per line; the journal is the record that
                // must survive a crash, and `finish` flushes the rest.
                unflushed = true;
                let written = report.write(&o).and_then(|()| {
                    if last_flush.elapsed() >= REPORT_FLUSH {
                        last_flush = std::time::Instant::now();
                        unflushed = false;
                        report.flush()
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = written {
                    // Without a report nobody can tell who got the message: stop taking new
                    // recipients, let the ones in flight finish.
                    abort.trip(Stop::Report(e.to_string()));
                    report_ok = false;
                }
            }
        }
        tally
    }
}

struct Preparer {
    reader: Arc<Mutex<RecipientReader>>,
    assembler: Arc<Assembler>,
    jobs: mpsc::Sender<Vec<Prepared>>,
    outcomes: mpsc::Sender<Outcome>,
    abort: Arc<Abort>,
    clock: Arc<dyn Clock>,
    prior: Arc<Prior>,
    in_doubt: InDoubt,
    suppression: Arc<Suppression>,
    journal: Option<Journal>,
    /// The run writes to an outbox: what an earlier outbox run wrote is settled.
    outbox_run: bool,
}

impl Preparer {
    fn next(&self) -> Option<Result<Row, RecipientsError>> {
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_row()
    }

    fn emit(&self, o: Outcome) -> bool {
        self.outcomes.blocking_send(o).is_ok()
    }

    fn run(self) {
        let mut batch = Vec::with_capacity(BATCH);
        self.produce(&mut batch);
        // Whatever was prepared goes on, even after a stop: the senders report it.
        self.hand_over(&mut batch);
    }

    /// Passes `batch` to the senders; if none is left, reports its messages as not
    /// attempted. False when even that is impossible (the run is gone).
    fn hand_over(&self, batch: &mut Vec<Prepared>) -> bool {
        if batch.is_empty() {
            return true;
        }
        match self.jobs.blocking_send(std::mem::take(batch)) {
            Ok(()) => true,
            // No sender is left to take them: the run is over.
            Err(mpsc::error::SendError(left)) => left.into_iter().all(|p| {
                self.emit(unsent(
                    p.recipient.row,
                    p.recipient.address.to_string(),
                    Status::NotAttempted,
                    NOT_ATTEMPTED.into(),
                    self.clock.now(),
                ))
            }),
        }
    }

    fn produce(&self, batch: &mut Vec<Prepared>) {
        while let Some(row) = self.next() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    self.abort.trip(Stop::Recipients(e.to_string()));
                    return;
                }
            };
            let now = self.clock.now();
            let outcome = |row, address, status, text| unsent(row, address, status, text, now);
            // The survey already checked every row; assembling checks it again anyway.
            let checked = row;
            let sent_on = match checked {
                Row::Invalid {
                    row,
                    address,
                    reason,
                } => self.emit(outcome(row, address, Status::Invalid, reason)),
                Row::Duplicate {
                    row,
                    address,
                    first_row,
                } => self.emit(outcome(
                    row,
                    address,
                    Status::Duplicate,
                    format!("same address as row {first_row}"),
                )),
                Row::Valid(r) => {
                    let suppressed = self.suppression.check(r.address.as_ref());
                    let prior = self.prior.state(r.address.as_ref());
                    match resume::plan(prior, suppressed.is_some(), self.outbox_run, self.in_doubt)
                    {
                        Plan::Settled(settled) => self.emit(self.settled_earlier(&r, settled, now)),
                        Plan::Suppress { record } => {
                            let why = suppressed.unwrap_or_default();
                            if let Some(j) = &self.journal
                                && record
                            {
                                j.record(State::Suppressed, r.row, r.address.as_ref(), None, &why);
                            }
                            self.emit(outcome(
                                r.row,
                                r.address.to_string(),
                                Status::Suppressed,
                                why,
                            ))
                        }
                        Plan::Send => self.prepare(r, batch, now),
                    }
                }
            };
            if !sent_on {
                return;
            }
        }
    }

    /// A row nobody settled: not attempted after a stop, else assembled and queued.
    fn prepare(&self, r: Recipient, batch: &mut Vec<Prepared>, now: std::time::SystemTime) -> bool {
        let (row, address) = (r.row, r.address.to_string());
        let outcome = |status, text| unsent(row, address, status, text, now);
        if self.abort.is_set() {
            return self.emit(outcome(Status::NotAttempted, NOT_ATTEMPTED.into()));
        }
        // After what earlier runs settled: those are reported as they are, even now.
        match self.assembler.assemble(r) {
            Ok(p) => {
                batch.push(p);
                // A full batch goes; so does a partial one when the queue is empty, so no
                // sender waits for a batch to fill.
                if batch.len() >= BATCH || self.jobs.capacity() == self.jobs.max_capacity() {
                    self.hand_over(batch)
                } else {
                    true
                }
            }
            Err(RowError::Injection(e)) => self.emit(outcome(Status::Invalid, e.to_string())),
            Err(e) => self.emit(outcome(Status::Failed, e.to_string())),
        }
    }
}

/// The outcome of a row that never became a message on its way (invalid, duplicate,
/// suppressed, not attempted).
fn unsent(
    row: u64,
    address: String,
    status: Status,
    text: String,
    time: std::time::SystemTime,
) -> Outcome {
    Outcome {
        row,
        address,
        status,
        code: None,
        text,
        message_id: None,
        time,
        earlier: false,
        relay: None,
    }
}

pub(crate) const NOT_ATTEMPTED: &str = "the run stopped before this recipient";

/// Messages per hand-over from a preparer to a sender, at most.
const BATCH: usize = 4;

impl Preparer {
    /// The outcome of a row an earlier run settled. Skipping one in doubt is remembered, so
    /// the next run does not ask about it again.
    fn settled_earlier(&self, r: &Recipient, s: Settled, now: std::time::SystemTime) -> Outcome {
        if s.record_skip
            && let Some(j) = &self.journal
        {
            j.record(
                State::Skipped,
                r.row,
                r.address.as_ref(),
                None,
                "in doubt, skipped",
            );
        }
        Outcome {
            row: r.row,
            address: r.address.to_string(),
            status: s.status,
            code: None,
            text: s.text.into(),
            message_id: Some(self.assembler.message_id(&r.address)),
            time: now,
            earlier: s.earlier(),
            relay: None,
        }
    }
}
/// The wait before retry `attempt` (1-based): the first delay doubled per attempt, at most
/// the maximum, times `jitter` (0.5 to 1.5). Saturating and checked throughout: the config caps
/// the delays, but a wait must never be a panic that loses the row from the report.
fn backoff(retry: &crate::config::RetryPolicy, attempt: u32, jitter: f64) -> std::time::Duration {
    let base = retry
        .first_delay
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(retry.max_delay);
    std::time::Duration::try_from_secs_f64(base.as_secs_f64() * jitter).unwrap_or(base)
}

#[cfg(test)]
mod backoff_tests {
    use std::time::Duration;

    use super::backoff;
    use crate::config::RetryPolicy;

    #[test]
    fn a_huge_delay_saturates_instead_of_panicking() {
        let retry = RetryPolicy {
            attempts: 40,
            first_delay: Duration::from_secs(u64::MAX - 1),
            max_delay: Duration::MAX,
        };
        for attempt in [1, 2, 17, 40] {
            for jitter in [0.5, 1.0, 1.4999] {
                assert!(backoff(&retry, attempt, jitter) >= Duration::from_secs(u64::MAX / 4));
            }
        }
        let normal = RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(300),
        };
        assert_eq!(backoff(&normal, 1, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(&normal, 3, 0.5), Duration::from_secs(20));
        assert_eq!(backoff(&normal, 30, 1.0), Duration::from_secs(300));
    }
}
