//! The send pipeline: recipient rows flow through preparer threads (render, build, sign:
//! CPU work, kept off the async runtime) into a bounded queue, then to `concurrency` sender
//! tasks that pace themselves and deliver over the transport; every row ends as one
//! [`Outcome`] in the report.
//!
//! Memory stays flat: the queues are bounded and rows are streamed from the file.

pub mod rate;
pub mod transport;
pub mod validate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lettre::Address;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::config::RecipientSource;
use crate::message::{Assembler, Prepared, RowError};
use crate::progress::Progress;
use crate::recipients::{RecipientReader, RecipientsError};
use crate::report::{Outcome, ReportWriter, Status, Tally};

pub use rate::Pacer;
pub use transport::{DeliveryError, FailureClass, Transport};
use validate::{Checked, check_row};

/// What kind of run this is: it decides the status a delivered message gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Smtp,
    Outbox,
    DryRun,
}

/// Why the pipeline stopped early. Recipients not yet tried are reported as not attempted.
#[derive(Debug, Clone)]
pub enum Stop {
    Delivery(DeliveryError),
    Recipients(String),
    Report(String),
    Internal(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Delivery(e) => f.write_str(&e.text),
            Stop::Recipients(e) | Stop::Report(e) | Stop::Internal(e) => f.write_str(e),
        }
    }
}

pub struct RunResult {
    pub tally: Tally,
    pub stopped: Option<Stop>,
}

/// Shared state for stopping early: the first fatal error wins.
#[derive(Default)]
struct Abort {
    flag: AtomicBool,
    reason: Mutex<Option<Stop>>,
}

impl Abort {
    fn trip(&self, why: Stop) {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            *reason = Some(why);
        }
        self.flag.store(true, Ordering::SeqCst);
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

pub struct Pipeline {
    pub assembler: Arc<Assembler>,
    pub transport: Arc<Transport>,
    pub pacer: Arc<Pacer>,
    pub envelope_from: Address,
    pub concurrency: usize,
    pub mode: Mode,
    pub clock: Arc<dyn Clock>,
    /// Rows the survey counted; the run checks that every one of them was reported.
    pub expected_rows: u64,
}

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
        let abort = Arc::new(Abort::default());
        let (outcome_tx, mut outcome_rx) = mpsc::channel::<Outcome>(1024);
        let (job_tx, job_rx) = mpsc::channel::<Prepared>(self.concurrency * 2);
        let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));

        let reader = RecipientReader::open(source)
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
                };
                preparers.push(std::thread::spawn(move || p.run()));
            }
        }
        drop(job_tx);

        let mut senders = Vec::new();
        for _ in 0..self.concurrency {
            let s = Sender {
                jobs: job_rx.clone(),
                outcomes: outcome_tx.clone(),
                transport: self.transport.clone(),
                pacer: self.pacer.clone(),
                from: self.envelope_from.clone(),
                abort: abort.clone(),
                mode: self.mode,
                clock: self.clock.clone(),
            };
            senders.push(tokio::spawn(s.run()));
        }
        // Only the senders hold the queue now: if they all die, the preparers' sends fail
        // instead of blocking forever.
        drop(job_rx);
        drop(outcome_tx);

        let mut tally = Tally::default();
        let mut refused_in_a_row = 0u64;
        let mut report_ok = true;
        while let Some(o) = outcome_rx.recv().await {
            tally.add(o.status);
            match o.status {
                Status::Sent | Status::Written | Status::DryRun => refused_in_a_row = 0,
                Status::Failed | Status::Deferred if o.message_id.is_some() => {
                    refused_in_a_row += 1;
                    if refused_in_a_row == breaker_limit(self.concurrency) {
                        abort.trip(Stop::Delivery(DeliveryError {
                            class: FailureClass::Fatal,
                            code: o.code,
                            text: format!(
                                "{refused_in_a_row} recipients in a row were refused (last: {}); the relay is refusing this sender, not these recipients",
                                o.text
                            ),
                        }));
                    }
                }
                _ => {}
            }
            if !matches!(o.status, Status::Invalid | Status::Duplicate) {
                progress.inc();
            }
            if report_ok && let Err(e) = report.write(&o) {
                // Without a report nobody can tell who got the message: stop taking new
                // recipients, let the ones in flight finish.
                abort.trip(Stop::Report(e.to_string()));
                report_ok = false;
            }
        }
        for s in senders {
            if let Err(e) = s.await {
                abort.trip(Stop::Internal(format!("a sender task failed: {e}")));
            }
        }
        for p in preparers {
            if p.join().is_err() {
                abort.trip(Stop::Internal("a preparer thread panicked".into()));
            }
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
}

struct Preparer {
    reader: Arc<Mutex<RecipientReader>>,
    assembler: Arc<Assembler>,
    jobs: mpsc::Sender<Prepared>,
    outcomes: mpsc::Sender<Outcome>,
    abort: Arc<Abort>,
    clock: Arc<dyn Clock>,
}

impl Preparer {
    fn next(&self) -> Option<Result<crate::recipients::Row, RecipientsError>> {
        self.reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_row()
    }

    fn emit(&self, o: Outcome) -> bool {
        self.outcomes.blocking_send(o).is_ok()
    }

    fn run(self) {
        while let Some(row) = self.next() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    self.abort.trip(Stop::Recipients(e.to_string()));
                    return;
                }
            };
            let now = self.clock.now();
            let outcome = |row, address, status, text: String| Outcome {
                row,
                address,
                status,
                code: None,
                text,
                message_id: None,
                time: now,
            };
            let row_no = row.row();
            let checked = match check_row(row, None) {
                Ok(c) => c,
                Err(e) => Checked::Invalid {
                    row: row_no,
                    address: String::new(),
                    reason: e.to_string(),
                },
            };
            let sent_on = match checked {
                Checked::Invalid {
                    row,
                    address,
                    reason,
                } => self.emit(outcome(row, address, Status::Invalid, reason)),
                Checked::Duplicate {
                    row,
                    address,
                    first_row,
                } => self.emit(outcome(
                    row,
                    address,
                    Status::Duplicate,
                    format!("same address as row {first_row}"),
                )),
                Checked::Ok(r) if self.abort.is_set() => self.emit(outcome(
                    r.row,
                    r.address.to_string(),
                    Status::NotAttempted,
                    NOT_ATTEMPTED.into(),
                )),
                Checked::Ok(r) => {
                    let (row, address) = (r.row, r.address.to_string());
                    match self.assembler.assemble(r) {
                        Ok(p) => match self.jobs.blocking_send(p) {
                            Ok(()) => true,
                            // No sender is left to take it: the run is over.
                            Err(mpsc::error::SendError(p)) => self.emit(outcome(
                                p.recipient.row,
                                address,
                                Status::NotAttempted,
                                NOT_ATTEMPTED.into(),
                            )),
                        },
                        Err(RowError::Injection(e)) => {
                            self.emit(outcome(row, address, Status::Invalid, e.to_string()))
                        }
                        Err(e) => self.emit(outcome(row, address, Status::Failed, e.to_string())),
                    }
                }
            };
            if !sent_on {
                return;
            }
        }
    }
}

const NOT_ATTEMPTED: &str = "the run stopped before this recipient";

struct Sender {
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Prepared>>>,
    outcomes: mpsc::Sender<Outcome>,
    transport: Arc<Transport>,
    pacer: Arc<Pacer>,
    from: Address,
    abort: Arc<Abort>,
    mode: Mode,
    clock: Arc<dyn Clock>,
}

impl Sender {
    async fn run(self) {
        loop {
            let job = { self.jobs.lock().await.recv().await };
            let Some(msg) = job else { return };
            if !self.abort.is_set() {
                self.pacer.wait().await;
            }
            // Checked after the wait too: a fatal error may have come in meanwhile, and one
            // more attempt with a refused password could lock the account.
            let outcome = if self.abort.is_set() {
                self.outcome(&msg, Status::NotAttempted, None, NOT_ATTEMPTED.into())
            } else {
                match self.transport.send(&self.from, &msg).await {
                    Ok(ok) => {
                        let status = match self.mode {
                            Mode::Smtp => Status::Sent,
                            Mode::Outbox => Status::Written,
                            Mode::DryRun => Status::DryRun,
                        };
                        self.outcome(&msg, status, ok.code, ok.text)
                    }
                    Err(e) => {
                        let status = match e.class {
                            FailureClass::Permanent => Status::Failed,
                            FailureClass::Transient => Status::Deferred,
                            FailureClass::Fatal => {
                                self.abort.trip(Stop::Delivery(e.clone()));
                                Status::Deferred
                            }
                        };
                        self.outcome(&msg, status, e.code, e.text)
                    }
                }
            };
            if self.outcomes.send(outcome).await.is_err() {
                return;
            }
        }
    }

    fn outcome(&self, msg: &Prepared, status: Status, code: Option<u16>, text: String) -> Outcome {
        Outcome {
            row: msg.recipient.row,
            address: msg.recipient.address.to_string(),
            status,
            code,
            text,
            message_id: Some(msg.message_id.clone()),
            time: self.clock.now(),
        }
    }
}
