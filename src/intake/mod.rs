//! Intake: what comes back after a campaign, read from the sender's mailbox and acted on.
//!
//! | category | signal | effect |
//! |---|---|---|
//! | DSN (RFC 3464), `failed` + 5.x.x | with VERP on: the verified tag only; without: returned Message-ID, else Final-Recipient in the journal | suppress (hard-bounce), report row `bounced` |
//! | DSN, `delayed` or 4.x.x | the same | soft-bounce count; suppress at N campaigns |
//! | other MTAs' bounces (Exim, qmail, Exchange text), not automatic replies | with VERP on: the verified tag only; without: returned Message-ID, from a mail system | as a DSN, status from the text (VERP tag and no status: other) |
//! | a bounce with VERP on whose tag is missing or does not verify | - | ignored, said, left unmarked |
//! | a bounce of a seed copy (row 0 tag) | - | other |
//! | complaint (RFC 5965) | original's Message-ID, else its To, else Original-Rcpt-To, in the journal | suppress (complaint) |
//! | mailto unsubscribe | subject `unsubscribe ADDRESS TOKEN`, HMAC checked | suppress (unsubscribe) |
//! | DMARC aggregate report | attachment content | totals, as `dmarc report` |
//! | anything for nobody this campaign sent to | - | ignored, said, left unmarked |
//! | other | - | counted, left alone |
//!
//! - [`classify`] sorts a message ([`dsn`], [`arf`], [`mailto`], [`returned`], [`verp`];
//!   [`fields`] reads report fields; [`context`] is what they all take) into a
//!   [`verdict::Verdict`], using what [`known`] read from the journal.
//! - [`run`] drives the mailbox reader and turns verdicts into [`effects`] (behind the
//!   `Sink` boundary) and a [`summary`]; [`late`] writes late bounces into the report.

pub mod arf;
pub mod classify;
pub mod context;
pub mod dsn;
pub mod effects;
pub mod fields;
pub mod known;
pub mod late;
pub mod mailto;
pub mod returned;
pub mod run;
pub mod summary;
#[cfg(test)]
mod tests;
pub mod verdict;
pub mod verp;
