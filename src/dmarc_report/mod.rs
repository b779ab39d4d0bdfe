//! DMARC aggregate reports (RFC 7489 appendix C, RFC 9990): finding them in files, folders,
//! archives and mail, totalling them per organization and source, and judging whether the
//! domain's policy can tighten. `mailshot dmarc report` is the command over this.
//!
//! - Which files and messages to read is the mailbox reader's (`crate::mailbox`).
//! - [`container`]: the reports inside one file, by content sniffing; corrupt or truncated
//!   input is an error naming why.
//! - [`digest`]: one parsed report reduced to counts.
//! - [`scan`]: parsing what the reader yields on worker threads, folding digests into [`aggregate`] as they
//!   arrive.
//! - [`summary`]: the finished summary (the JSON schema), with [`recommend`]'s verdicts and
//!   thresholds; [`render`] prints it for people.

pub mod aggregate;
pub mod container;
pub mod digest;
pub mod recommend;
pub mod render;
pub mod scan;
pub mod summary;

pub use scan::{Event, scan};
pub use summary::Summary;
