//! Where prepared messages go: an SMTP relay ([`smtp`]), an outbox folder of `.eml` files
//! ([`outbox`]), or a dry run's folder. All take the signed bytes unchanged.
//!
//! **Adding a transport** is one file here plus one variant of [`Transport`]:
//! - the file holds the transport's type, with `new` (set up once, before the run:
//!   credentials, trust, folders; errors are [`TransportSetupError`]), `check` (optional:
//!   fail before the first recipient if the destination cannot be used) and `send`
//!   (deliver one message, waiting for `recorded` before anything leaves, and classify a
//!   failure with a [`DeliveryError`] constructor, which sets its [`FailureClass`] and
//!   [`Cause`]). State kept between messages (connections) lives inside that type: many
//!   sender tasks share one transport.
//! - the variant goes into [`Transport`], and an arm into each of its methods: the report
//!   status and journal state a delivered message gets, whether the run is paced, how many
//!   senders it takes, and how to describe it. `Transport::new` builds it from
//!   `config::TransportConfig`. The commands never match on a transport kind: they ask.

mod error;
mod fleet;
mod outbox;
mod smtp;
mod stream;

use std::path::Path;

pub use error::{Cause, DeliveryError, FailureClass, TransportSetupError};
pub use fleet::Fleet;
pub use outbox::{Outbox, file_stem};
pub use smtp::SmtpRelay;

use crate::config::{RelayConfig, TransportConfig};
use crate::message::Prepared;
use crate::report::Status;
use crate::send::journal::State;

/// The relay's acceptance (or the outbox's file).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub code: Option<u16>,
    pub text: String,
    /// Which of several relays took it (`None` with a single relay or an outbox).
    pub relay: Option<std::sync::Arc<str>>,
}

pub enum Transport {
    Smtp(Box<SmtpRelay>),
    /// Several `[[smtp]]` relays, by weight, with a bench for failing ones.
    Fleet(Box<Fleet>),
    Outbox(Outbox),
    /// `--dry-run`: every message written to a folder, never sent, never journaled.
    DryRun(Outbox),
}

impl Transport {
    /// The transport campaign.toml names (`relays`: every `[[smtp]]` table), or the dry
    /// run's folder `dry_run` instead.
    pub fn new(
        cfg: &TransportConfig,
        relays: &[RelayConfig],
        dry_run: Option<&Path>,
    ) -> Result<Transport, TransportSetupError> {
        Ok(match (dry_run, cfg) {
            (Some(dir), _) => Transport::DryRun(Outbox::new(dir)?),
            (None, TransportConfig::Smtp(_)) if relays.len() > 1 => {
                Transport::Fleet(Box::new(Fleet::new(relays)?))
            }
            (None, TransportConfig::Smtp(smtp)) => Transport::Smtp(Box::new(SmtpRelay::new(smtp)?)),
            (None, TransportConfig::Outbox { dir }) => Transport::Outbox(Outbox::new(dir)?),
        })
    }

    /// Opens one connection (TLS and AUTH included) so that a wrong host, an untrusted
    /// certificate or a wrong password stops the run before the first recipient.
    pub async fn check(&self) -> Result<(), DeliveryError> {
        match self {
            Transport::Smtp(s) => s.check().await,
            Transport::Fleet(f) => f.check().await,
            Transport::Outbox(_) | Transport::DryRun(_) => Ok(()),
        }
    }

    /// Delivers `msg`. `recorded` resolves once the journal holds the attempt: the message
    /// is not handed over before then. The envelope is, since a relay takes nothing before
    /// the final "."; so the journal is asked for its sync only after DATA's 354, and one sync
    /// covers every sender that got that far meanwhile.
    pub async fn send<E: std::fmt::Display>(
        &self,
        msg: &Prepared,
        recorded: impl Future<Output = Result<(), E>>,
    ) -> Result<Accepted, DeliveryError> {
        match self {
            Transport::Smtp(s) => s.send(msg, recorded).await,
            Transport::Fleet(f) => f.send(msg, recorded).await,
            Transport::Outbox(o) | Transport::DryRun(o) => {
                recorded
                    .await
                    .map_err(|e| DeliveryError::unrecorded(e.to_string()))?;
                o.write(msg)
            }
        }
    }

    /// Says goodbye on open connections when a sender is done.
    pub async fn close(&self) {
        match self {
            Transport::Smtp(s) => s.close().await,
            Transport::Fleet(f) => f.close().await,
            Transport::Outbox(_) | Transport::DryRun(_) => {}
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(s) => s.describe.clone(),
            Transport::Fleet(f) => f.describe.clone(),
            Transport::Outbox(o) | Transport::DryRun(o) => format!("outbox {}", o.dir.display()),
        }
    }

    /// The report's status for a delivered message.
    pub fn delivered(&self) -> Status {
        match self {
            Transport::Smtp(_) | Transport::Fleet(_) => Status::Sent,
            Transport::Outbox(_) => Status::Written,
            Transport::DryRun(_) => Status::DryRun,
        }
    }

    /// What the run's summary says of the delivered messages.
    pub fn delivered_word(&self) -> &'static str {
        match self {
            Transport::Smtp(_) | Transport::Fleet(_) => "sent",
            Transport::Outbox(_) => "written to the outbox",
            Transport::DryRun(_) => {
                "rendered, signed and DKIM-verified against the published keys (dry run, nothing sent)"
            }
        }
    }

    /// The journal state of a delivered message, and the name the journal's run line gives
    /// the transport; `None` for a dry run, which never writes the journal. The outbox's
    /// "written" must not count as sent if the campaign later switches to a relay.
    pub fn journal(&self) -> Option<(State, &'static str)> {
        match self {
            Transport::Smtp(_) | Transport::Fleet(_) => Some((State::Sent, "Smtp")),
            Transport::Outbox(_) => Some((State::Written, "Outbox")),
            Transport::DryRun(_) => None,
        }
    }

    /// Whether the campaign's rate limits apply: only a relay is paced.
    pub fn paced(&self) -> bool {
        matches!(self, Transport::Smtp(_) | Transport::Fleet(_))
    }

    /// Whether every message is checked against the published DKIM keys after it is written
    /// (the dry run's promise).
    pub fn verifies(&self) -> bool {
        matches!(self, Transport::DryRun(_))
    }

    /// How many senders the transport takes at once: each sender holds one SMTP connection,
    /// so the pool size caps the concurrency.
    pub fn max_senders(&self) -> Option<usize> {
        match self {
            Transport::Smtp(s) => Some(s.pool_size),
            Transport::Fleet(f) => Some(f.pool_size()),
            Transport::Outbox(_) | Transport::DryRun(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn prepared() -> Prepared {
        Prepared {
            recipient: crate::recipients::Recipient {
                row: 2,
                address: "ann@example.com".parse().unwrap(),
                name: None,
                fields: vec![],
            },
            message_id: "id@example.com".into(),
            envelope_from: "news@example.com".parse().unwrap(),
            bytes: b"Subject: x\r\n\r\nx\r\n".to_vec(),
        }
    }

    #[tokio::test]
    async fn nothing_is_handed_over_before_the_journal_holds_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::Outbox(Outbox::new(dir.path()).unwrap());
        let msg = prepared();

        let failed = std::future::ready(Err("disk full".to_owned()));
        let e = t.send(&msg, failed).await.unwrap_err();
        assert_eq!(e.class, FailureClass::Unrecorded);
        assert_eq!(e.text, "disk full");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let ok = std::future::ready(Ok::<(), String>(()));
        t.send(&msg, ok).await.unwrap();
        let written = std::fs::read(dir.path().join("000002-ann@example.com.eml")).unwrap();
        assert_eq!(written, msg.bytes);
    }
}
