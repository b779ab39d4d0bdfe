//! What the classifier decides about one message: a value, never an error. The run turns
//! verdicts into effects (suppressions, soft-bounce counts, late-bounce records) and counts.

use super::known::Recipient;
use crate::dmarc_report::digest::Digest;

/// The evidence that tied a message to a recipient. Every one of them is something mailshot
/// put into the message it sent, or a field the report format defines; none is free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// The returned original's Message-ID (a DSN's or a bounce's attached copy or headers).
    ReturnedMessageId,
    /// RFC 3464 `Final-Recipient`, found in the campaign's journal.
    FinalRecipient,
    /// RFC 5965: the attached original's Message-ID.
    ComplaintMessageId,
    /// RFC 5965: the attached original's To, found in the journal.
    ComplaintTo,
    /// RFC 5965 `Original-Rcpt-To`, found in the journal.
    OriginalRcptTo,
    /// The unsubscribe token in the subject, checked against the HMAC key.
    Token,
    /// The VERP address the bounce came back to: its tag's HMAC verified for the address the
    /// journal has at the tag's row.
    Verp,
}

/// One recipient's bounce.
#[derive(Debug, Clone)]
pub struct Bounce {
    pub recipient: Recipient,
    /// 5.x.x failed: permanent. 4.x.x, delayed, or no status at all: soft.
    pub hard: bool,
    /// RFC 3463 status (`5.1.1`), or empty when the bounce carried none.
    pub status: String,
    /// The remote server's words (Diagnostic-Code, or the bounce's own line), bounded.
    pub diagnostic: String,
    pub signal: Signal,
    /// Set when the DSN's Final-Recipient differs from the address mailshot sent to (the
    /// recipient forwards mail elsewhere): shown, while the address sent to is the one acted on.
    pub final_recipient: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BounceFormat {
    /// RFC 3464 `multipart/report; report-type=delivery-status`.
    Dsn,
    /// Plain-text or vendor bounces (Exim, qmail, older Exchange), matched only through the
    /// VERP address or, without VERP, the returned Message-ID.
    NonStandard,
}

#[derive(Debug)]
pub enum Verdict {
    Bounce {
        format: BounceFormat,
        bounces: Vec<Bounce>,
        /// Recipients in the same report that this campaign never sent to.
        ignored: Vec<String>,
    },
    Complaint {
        recipient: Recipient,
        feedback_type: String,
        signal: Signal,
    },
    Unsubscribe {
        address: String,
    },
    DmarcReport {
        digests: Vec<Digest>,
    },
    /// Not for mailshot to act on (a reply, a delivery notice, a newsletter): counted, left
    /// where it is, never deleted.
    Other,
    /// Looks like a bounce or a report, but names nobody this campaign sent to: a forgery, or
    /// another campaign's. Said, acted on in no way, left unmarked for a person or that
    /// campaign's own intake.
    Ignored {
        why: String,
    },
    /// Could not be read (malformed, too large, too deep, a decompression bomb): named, skipped.
    Skipped {
        why: String,
    },
}

impl Verdict {
    /// Whether the message is marked processed on IMAP. Ignored and skipped messages stay
    /// unmarked: a person (or another campaign's intake) may still need them.
    pub fn marks(&self) -> bool {
        !matches!(self, Verdict::Ignored { .. } | Verdict::Skipped { .. })
    }
}
