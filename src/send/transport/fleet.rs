//! Several SMTP relays as one transport: each message goes to the relay the board picks
//! (smooth weighted round-robin among the healthy ones, see `send::relays`), and a relay that
//! fails is benched or retired while the others carry the run.
//!
//! Only failures that are about the relay count against it: no connection, a failed TLS
//! handshake, a 421, a refused login or sender, a connection lost mid-message. A 4xx or 5xx
//! for one recipient is that recipient's. A failure that retires one relay while others
//! remain is transient for the recipient (another relay will take it); the run stops only
//! when no relay is left.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::{Accepted, Cause, DeliveryError, FailureClass, SmtpRelay, TransportSetupError};
use crate::config::{Limits, RelayConfig};
use crate::message::Prepared;
use crate::send::Pacer;
use crate::send::relays::{Board, Pick, Spec, Trouble, Verdict};

pub struct Fleet {
    relays: Vec<SmtpRelay>,
    /// Each relay's own `per_second` / `per_hour`, on top of the campaign's pace.
    pacers: Vec<Pacer>,
    names: Vec<Arc<str>>,
    board: Mutex<Board>,
    pub(super) describe: String,
}

impl Fleet {
    pub fn new(cfgs: &[RelayConfig]) -> Result<Fleet, TransportSetupError> {
        let relays = cfgs
            .iter()
            .map(|c| SmtpRelay::new(&c.smtp))
            .collect::<Result<Vec<_>, _>>()?;
        let board = Board::new(
            cfgs.iter()
                .map(|c| Spec {
                    name: c.name.clone(),
                    weight: c.weight,
                    priority: c.priority,
                })
                .collect(),
        );
        let describe = cfgs
            .iter()
            .zip(&relays)
            .map(|(c, r)| format!("{} ({}, weight {})", c.name, r.describe, c.weight))
            .collect::<Vec<_>>()
            .join(", ");
        let pacers = cfgs
            .iter()
            .map(|c| {
                Pacer::new(&Limits {
                    per_second: c.limits.per_second,
                    per_hour: c.limits.per_hour,
                    per_day: None,
                    concurrency: 1,
                    domains: Vec::new(),
                })
            })
            .collect();
        Ok(Fleet {
            pacers,
            names: cfgs.iter().map(|c| Arc::from(c.name.as_str())).collect(),
            relays,
            board: Mutex::new(board),
            describe,
        })
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens one connection to every relay; a relay that fails is benched or retired before
    /// the first message. The run cannot start only if no relay is usable.
    pub(super) async fn check(&self) -> Result<(), DeliveryError> {
        let mut last = None;
        for (i, r) in self.relays.iter().enumerate() {
            match r.check().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!("relay {}: {}", self.names[i], e.text);
                    let kind = trouble(&e).unwrap_or(Trouble::Unavailable);
                    self.board().trouble(i, kind, &e.text, Instant::now());
                    last = Some(e);
                }
            }
        }
        match (self.board().any_left(), last) {
            (true, _) | (false, None) => Ok(()),
            (false, Some(e)) => Err(e),
        }
    }

    /// Delivers `msg` through the relay the board picks; the relay's name comes back with
    /// the acceptance.
    pub(super) async fn send<E: std::fmt::Display>(
        &self,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), E>>,
    ) -> Result<Accepted, DeliveryError> {
        let pick = self.board().pick(Instant::now());
        let i = match pick {
            Pick::Relay(i) => i,
            Pick::Wait(until) => {
                return Err(DeliveryError::unreachable(format!(
                    "every relay is benched; the first comes back in {} s",
                    until.saturating_duration_since(Instant::now()).as_secs()
                )));
            }
            Pick::NoneLeft(why) => {
                return Err(DeliveryError::fatal(Cause::Unreachable, why.to_string()));
            }
        };
        self.pacers[i].wait().await;
        match self.relays[i].send(msg, recorded).await {
            Ok(mut a) => {
                self.board().ok(i);
                a.relay = Some(self.names[i].clone());
                Ok(a)
            }
            Err(mut e) => {
                if let Some(kind) = trouble(&e) {
                    let verdict = self.board().trouble(i, kind, &e.text, Instant::now());
                    // Retired or benched, the relay is out for now: the recipient is
                    // another relay's, unless none is left (the next pick says so).
                    if e.class == FailureClass::Fatal && verdict != Verdict::Noted {
                        e.class = FailureClass::Transient;
                    }
                }
                e.text = format!("{}: {}", self.names[i], e.text);
                Err(e)
            }
        }
    }

    pub(super) async fn close(&self) {
        for r in &self.relays {
            r.close().await;
        }
    }

    /// Each sender holds one connection at a time, to one relay.
    pub(super) fn pool_size(&self) -> usize {
        self.relays.iter().map(|r| r.pool_size).max().unwrap_or(1)
    }
}

/// Whether a failure is the relay's, and which kind.
fn trouble(e: &DeliveryError) -> Option<Trouble> {
    if e.code == Some(421) {
        return Some(Trouble::Throttled);
    }
    match (e.class, e.cause) {
        (FailureClass::Fatal, Cause::Login | Cause::AuthRequired | Cause::Certificate) => {
            Some(Trouble::Refused)
        }
        // A 5xx to MAIL FROM: this relay refuses the sender.
        (FailureClass::Fatal, Cause::Reply) => Some(Trouble::Refused),
        (_, Cause::Tls | Cause::Unreachable) => Some(Trouble::Unavailable),
        (FailureClass::InDoubt, _) => Some(Trouble::Unavailable),
        _ => None,
    }
}
