//! A sender task: it takes the next piece of work from the [`Scheduler`] (a retry whose time
//! has come first, else fresh messages), makes one attempt, and either settles the recipient
//! or puts it back in the queue with its back-off. A sender never sleeps through a back-off:
//! while one recipient waits, its sender is already on the next message.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::limits::{DayCap, DomainLimits, Slot};
use super::queue::{Next, Scheduler};
use super::{Abort, NOT_ATTEMPTED, Pacer, Stop};
use crate::clock::Clock;
use crate::config::RetryPolicy;
use crate::message::Prepared;
use crate::preflight::dkim::DkimVerifier;
use crate::report::{Outcome, Status};
use crate::send::journal::{Journal, State};
use crate::send::transport::{DeliveryError, FailureClass, Transport};
use crate::suppression::Suppression;

/// A message that waits in the queue, with what its earlier attempts got.
pub(super) struct Work {
    msg: Prepared,
    /// Attempts made so far.
    attempts: u32,
    last: Option<DeliveryError>,
}

/// Fresh messages from the preparers; recipients waiting for a retry or a provider's slot.
pub(super) type Queue = Scheduler<Prepared, Work>;

/// How many recipients may wait at once: past it, senders take no fresh messages until some
/// are done, so memory stays bounded (a few KB per signed message).
pub(super) const MAX_WAITING: usize = 4096;

pub(super) struct Sender {
    pub work: Arc<Queue>,
    pub outcomes: mpsc::Sender<Outcome>,
    pub transport: Arc<Transport>,
    pub pacer: Arc<Pacer>,
    pub domains: Arc<DomainLimits>,
    pub day_cap: Option<Arc<std::sync::Mutex<DayCap>>>,
    pub abort: Arc<Abort>,
    pub clock: Arc<dyn Clock>,
    pub journal: Option<Journal>,
    pub suppression: Arc<Suppression>,
    pub retry: RetryPolicy,
    pub verifier: Option<Arc<DkimVerifier>>,
    pub rng: Rng,
}

/// What one attempt came to.
enum Attempt {
    Settled(Outcome),
    /// A transient failure with attempts left.
    Again(DeliveryError),
}

impl Sender {
    pub async fn run(mut self) {
        loop {
            let next = if self.abort.is_set() {
                // Waiting recipients are handed out at once and reported deferred.
                self.work.stop();
                self.work.next().await
            } else {
                tokio::select! {
                    n = self.work.next() => n,
                    () = self.abort.stopped() => continue,
                }
            };
            let carry_on = match next {
                Next::Done => break,
                Next::Retry(w) => self.step(w).await,
                Next::Fresh(msg) => self.step(Work::fresh(msg)).await,
            };
            if !carry_on {
                // Nobody takes outcomes any more: the run is gone.
                self.work.close();
                break;
            }
        }
        // The pool is closed once, by the pipeline, after every sender is done: a sender
        // that finishes first must not hang up connections the others parked between
        // messages.
    }

    /// One attempt at `w`, then its outcome to the report or `w` back into the queue.
    async fn step(&mut self, mut w: Work) -> bool {
        if !self.abort.is_set()
            && let Err(wait) = self.domains.check(w.msg.recipient.address.domain())
        {
            // The provider's pace: not an attempt, so the count stays.
            self.work.retry_at(w, later(wait));
            return true;
        }
        match self.attempt(&w).await {
            Attempt::Settled(o) => {
                self.work.settled();
                self.outcomes.send(o).await.is_ok()
            }
            Attempt::Again(e) => {
                w.attempts += 1;
                let wait = self.back_off(w.attempts);
                tracing::info!(
                    "{}: {} ({}); retry {} of {} in {:.1} s",
                    w.msg.recipient.address,
                    crate::terminal::field(&e.text),
                    e.code.map(|c| c.to_string()).unwrap_or_default(),
                    w.attempts,
                    self.retry.attempts - 1,
                    wait.as_secs_f64()
                );
                w.last = Some(e);
                self.work.retry_at(w, later(wait));
                true
            }
        }
    }

    /// A fresh recipient takes one of today's `per_day` slots (its retries do not); with
    /// none left (false) the run stops cleanly, and this recipient is reported not attempted.
    /// The first slot of a UTC day that began during the run marks the journal (under the
    /// cap's lock, so before any of that day's lines): a later run then counts what follows
    /// on the new day.
    fn take_day_slot(&self) -> bool {
        let Some(cap) = &self.day_cap else {
            return true;
        };
        let mut cap = cap.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        match cap.take(now) {
            Slot::Taken => true,
            Slot::FirstOfDay => {
                if let Some(j) = &self.journal {
                    j.day_turned(now);
                }
                true
            }
            Slot::Full => {
                self.abort.trip(Stop::DayCap {
                    cap: cap.cap,
                    resets_at: cap.resets_at(),
                });
                false
            }
        }
    }

    /// `first_delay * 2^(n-1)`, capped at `max_delay`, with jitter so that recipients
    /// deferred together do not come back together (saturating: see [`super::backoff`]).
    fn back_off(&mut self, attempts: u32) -> Duration {
        super::backoff(&self.retry, attempts, self.rng.jitter())
    }

    /// Pace, journal, send.
    async fn attempt(&mut self, w: &Work) -> Attempt {
        let msg = &w.msg;
        if !self.abort.is_set() {
            // A stop (Ctrl-C, a fatal error) must not wait for a long pacing slot.
            tokio::select! {
                () = self.pacer.wait() => {}
                () = self.abort.stopped() => {}
            }
        }
        // Checked after the wait too: a fatal error may have come in meanwhile, and one more
        // attempt with a refused password could lock the account.
        if self.abort.is_set() {
            return Attempt::Settled(match &w.last {
                // Tried and failed transiently before the stop: deferred, not untouched.
                Some(e) => self.outcome(msg, Status::Deferred, e.code, e.text.clone()),
                None => self.outcome(msg, Status::NotAttempted, None, NOT_ATTEMPTED.into()),
            });
        }
        let (row, address) = (msg.recipient.row, msg.recipient.address.to_string());
        // The last look at the suppression store before the message starts: an unsubscribe
        // recorded while it waited (in the channel or the retry queue) stops it. Not
        // journaled: the recipient stays unsettled, so a later run checks the list again.
        if let Some(why) = self.suppression.check(&address) {
            return Attempt::Settled(self.outcome(msg, Status::Suppressed, None, why));
        }
        // The day's slot is taken as the message starts, after its pacing wait: it counts on
        // the day it goes out, and no sender holds a slot while it waits, so the cap's stop
        // cancels nobody who had one.
        if w.attempts == 0 && !self.take_day_slot() {
            return Attempt::Settled(self.outcome(
                msg,
                Status::NotAttempted,
                None,
                NOT_ATTEMPTED.into(),
            ));
        }
        // Queued now; synced when the transport asks, after DATA: see Transport::send.
        let recorded = self.journal.as_ref().map(|j| j.in_flight(row, &address));
        let recorded = async move {
            match recorded {
                Some(r) => r.await,
                None => Ok(()),
            }
        };
        match self.transport.send(msg, recorded).await {
            Ok(ok) => {
                if let Some(v) = &self.verifier
                    && let Err(why) = v.verify(&msg.bytes).await
                {
                    return Attempt::Settled(self.outcome(
                        msg,
                        Status::Failed,
                        None,
                        format!("written, but its DKIM signature does not verify against the published key: {why}"),
                    ));
                }
                if let Some((state, _)) = self.transport.journal() {
                    self.journal_record(state, row, &address, ok.code, &ok.text);
                }
                let mut o = self.outcome(msg, self.transport.delivered(), ok.code, ok.text);
                o.relay = ok.relay;
                Attempt::Settled(o)
            }
            Err(e) => self.failed(w, e),
        }
    }

    fn failed(&self, w: &Work, e: DeliveryError) -> Attempt {
        let msg = &w.msg;
        let (row, address) = (msg.recipient.row, msg.recipient.address.to_string());
        let settled = |status, text| Attempt::Settled(self.outcome(msg, status, e.code, text));
        match e.class {
            FailureClass::Unrecorded => {
                // Not handed over: without a record a crash could send it twice.
                self.abort.trip(Stop::Journal(e.text.clone()));
                let text = format!("journal: {}", e.text);
                Attempt::Settled(self.outcome(msg, Status::NotAttempted, None, text))
            }
            FailureClass::InDoubt => {
                // The `I` line stays the last word: the next run lists this recipient as in
                // doubt and asks. No retry, which could deliver it twice.
                tracing::warn!(
                    "a message's outcome is unknown (no reply after it was sent); it is reported in doubt"
                );
                settled(Status::InDoubt, e.text.clone())
            }
            FailureClass::Permanent => {
                self.journal_record(State::Failed, row, &address, e.code, &e.text);
                if e.hard_bounce {
                    let when = self.clock.now();
                    self.suppression
                        .add(&address, &e.text, when, &msg.message_id);
                }
                settled(Status::Failed, e.text.clone())
            }
            FailureClass::Fatal => {
                self.journal_record(State::Deferred, row, &address, e.code, &e.text);
                self.abort.trip(Stop::Delivery(e.clone()));
                settled(Status::Deferred, e.text.clone())
            }
            FailureClass::Transient => {
                // Recorded at once: a crash while it waits must not leave this recipient
                // looking in flight (in doubt) when it was refused.
                self.journal_record(State::Deferred, row, &address, e.code, &e.text);
                if is_throttle(&e) {
                    self.pacer.slow_down();
                }
                if w.attempts + 1 < self.retry.attempts {
                    return Attempt::Again(e);
                }
                let text = format!("{} (after {} attempts)", e.text, self.retry.attempts);
                settled(Status::Deferred, text)
            }
        }
    }

    fn journal_record(&self, state: State, row: u64, address: &str, code: Option<u16>, text: &str) {
        if let Some(j) = &self.journal {
            j.record(state, row, address, code, text);
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
            earlier: false,
            relay: None,
        }
    }
}

impl Work {
    fn fresh(msg: Prepared) -> Work {
        Work {
            msg,
            attempts: 0,
            last: None,
        }
    }
}

/// `wait` from now; a wait too long for the clock's range is a year (the config caps delays
/// at a day, so this is only a guard against a panic that would lose the row).
fn later(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or(now + Duration::from_secs(365 * 86_400))
}

/// Small xorshift generator for retry jitter; seeded by the caller, so tests can fix it.
pub(super) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// A factor in [0.5, 1.5).
    fn jitter(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        0.5 + (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Replies that mean "you are sending too fast" rather than "this message is unwelcome".
fn is_throttle(e: &DeliveryError) -> bool {
    match e.code {
        Some(421) => true,
        Some(450..=452) => e.text.contains("4.7."),
        _ => false,
    }
}
