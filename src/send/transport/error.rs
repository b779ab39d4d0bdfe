//! What a failed delivery is: its class (what the pipeline does next), its cause (what the
//! user should fix), and the errors that stop a transport from being set up at all.

use std::path::PathBuf;

/// How a failed delivery should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// 4xx, a dropped connection, a timeout: the recipient is deferred, not failed.
    Transient,
    /// 5xx for this recipient: recorded, never retried.
    Permanent,
    /// Authentication, TLS, a refused sender or configuration: every further attempt would
    /// fail the same way, so the campaign stops instead of failing each recipient in turn.
    Fatal,
    /// The whole message was written but no reply came (timeout, dropped connection): the
    /// relay may have accepted it. Never retried; reported and journaled as in doubt.
    InDoubt,
    /// The journal could not record the attempt (`text` says why), so the message was not
    /// handed over: the run must stop, since nothing further could be sent without a record.
    Unrecorded,
}

/// What went wrong, in the terms of what to change. Set by the transport where it classifies
/// the failure (it knows whether a handshake or a login failed), so the command that prints
/// the fix matches on this instead of guessing from the error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The relay refused the login (535, 534, 538).
    Login,
    /// The relay requires a login and none is configured (530).
    AuthRequired,
    /// The relay's certificate is not trusted for its host name.
    Certificate,
    /// TLS could not be set up for another reason (no STARTTLS offered, a failed handshake).
    Tls,
    /// The relay could not be reached: refused, unresolvable, timed out, cut off.
    Unreachable,
    /// The outbox folder could not be written.
    Outbox,
    /// The journal could not record the attempt.
    Journal,
    /// The relay answered and refused: its reply says why.
    Reply,
}

/// A delivery that did not happen. `text` is the server's reply or the local error.
#[derive(Debug, Clone)]
pub struct DeliveryError {
    pub class: FailureClass,
    pub code: Option<u16>,
    pub text: String,
    /// The relay refused the recipient at RCPT as unknown (550/551/553 with 5.1.1, 5.1.2,
    /// 5.1.3, 5.1.6 or 5.1.10): the one case the suppression list may learn from.
    pub hard_bounce: bool,
    pub cause: Cause,
}

impl DeliveryError {
    /// A failure of `class` with no reply code.
    pub fn new(class: FailureClass, cause: Cause, text: impl Into<String>) -> DeliveryError {
        DeliveryError {
            class,
            code: None,
            text: text.into(),
            hard_bounce: false,
            cause,
        }
    }

    /// The relay could not be reached or stopped answering: worth another try later.
    pub fn unreachable(text: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureClass::Transient, Cause::Unreachable, text)
    }

    /// Every further attempt would fail the same way.
    pub fn fatal(cause: Cause, text: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureClass::Fatal, cause, text)
    }

    /// The message may have reached the relay whole: never retried.
    pub fn in_doubt(text: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureClass::InDoubt, Cause::Unreachable, text)
    }

    /// The journal could not record the attempt, so nothing was handed over.
    pub fn unrecorded(text: impl Into<String>) -> DeliveryError {
        DeliveryError::new(FailureClass::Unrecorded, Cause::Journal, text)
    }

    /// The same failure, treated as fatal: a failure before the first message, or one that
    /// is about the sender rather than the recipient.
    pub fn into_fatal(mut self) -> DeliveryError {
        self.class = FailureClass::Fatal;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportSetupError {
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate: {detail}")]
    CaParse { path: PathBuf, detail: String },
    #[error("TLS setup for {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("SMTP password: {0}")]
    Secret(#[from] crate::secret::SecretError),
    #[error("cannot create the outbox folder {path}: {source}")]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
}
