//! One pass over the mailbox: read a message, skip it if the ledger knows it, classify it,
//! queue its effects; every batch, make the effects durable, then the ledger, and only then
//! mark the batch's messages on the server. A crash loses nothing (unmarked messages are read
//! again) and counts nothing twice (the ledger, synced before any mark, knows them).

use std::panic::AssertUnwindSafe;

use super::classify::classify;
use super::context::Context;
use super::effects::{Entry, Ledger, Reason, Sink};
use super::summary::{Named, Tally};
use super::verdict::{Bounce, BounceFormat, Signal, Verdict};
use crate::mailbox::{self, Origin, Reader};

/// Messages per durable step: one fsync of each file and one STORE per batch.
const BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot record intake's effects: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot mark processed messages: {0}")]
    Mark(#[from] mailbox::MailboxError),
}

pub struct Settings {
    /// Soft bounces, in distinct campaigns, after which an address is suppressed.
    pub soft_bounce_limit: usize,
}

pub struct Intake<'a> {
    pub cx: Context<'a>,
    pub sink: &'a mut dyn Sink,
    pub ledger: &'a mut Ledger,
    pub settings: Settings,
}

impl Intake<'_> {
    /// Reads everything; `tick` is called once per message, for the progress bar.
    pub fn run(
        &mut self,
        reader: &mut Reader,
        tally: &mut Tally,
        mut tick: impl FnMut(Option<&Named>),
    ) -> Result<(), RunError> {
        let mut to_mark: Vec<Origin> = Vec::new();
        let mut in_batch = 0;
        while let Some(item) = reader.next() {
            tally.counts.read += 1;
            let named = self.one(item, tally, &mut to_mark)?;
            tick(named.as_ref());
            if let Some(n) = named {
                tally.skipped(n);
            }
            in_batch += 1;
            if in_batch >= BATCH {
                self.commit(reader, tally, &mut to_mark)?;
                in_batch = 0;
            }
        }
        self.commit(reader, tally, &mut to_mark)?;
        tally.campaign_complaints = self.sink.complaints();
        Ok(())
    }

    /// Effects first, then the ledger, then the marks.
    fn commit(
        &mut self,
        reader: &mut Reader,
        tally: &mut Tally,
        to_mark: &mut Vec<Origin>,
    ) -> Result<(), RunError> {
        self.sink.commit()?;
        self.ledger.commit()?;
        reader.mark(to_mark)?;
        tally.marked += to_mark
            .iter()
            .filter(|o| matches!(o, Origin::Imap { .. }))
            .count() as u64;
        to_mark.clear();
        Ok(())
    }

    /// One message. Returns it named when it was skipped as unreadable.
    fn one(
        &mut self,
        item: mailbox::Item,
        tally: &mut Tally,
        to_mark: &mut Vec<Origin>,
    ) -> Result<Option<Named>, RunError> {
        let skipped = |why: String| Named {
            message: item.origin.to_string(),
            reason: why,
        };
        let bytes = match &item.bytes {
            Ok(b) => b,
            Err(e) => {
                tally.counts.skipped += 1;
                return Ok(Some(skipped(e.to_string())));
            }
        };
        let key = Ledger::key(bytes);
        let cx = &self.cx;
        // A parser bug on one hostile message must not stop the other 99,999.
        let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| classify(bytes, cx)))
            .unwrap_or_else(|_| Verdict::Skipped {
                why: "the classifier crashed on this message (a bug in mailshot or a library it uses)".into(),
            });
        if self.ledger.contains(&key) {
            tally.counts.already_processed += 1;
            // Processed, but a crash may have come before the mark: mark it now.
            if verdict.marks() {
                to_mark.push(item.origin.clone());
            }
            return Ok(None);
        }
        let evidence = item.origin.to_string();
        let named = self.apply(verdict, &evidence, tally, &mut || {
            to_mark.push(item.origin.clone())
        })?;
        self.ledger.add(key);
        Ok(named.map(skipped))
    }

    /// Queues a verdict's effects and counts it. Returns the reason when it was skipped.
    fn apply(
        &mut self,
        verdict: Verdict,
        evidence: &str,
        tally: &mut Tally,
        mark: &mut dyn FnMut(),
    ) -> Result<Option<String>, RunError> {
        if verdict.marks() {
            mark();
        }
        let campaign = self.cx.known.campaign_id.clone();
        let entry = |address: &str, reason: Reason, signal: Signal, detail: String| Entry {
            address: address.to_owned(),
            reason,
            signal,
            detail,
            campaign: campaign.clone(),
            evidence: evidence.to_owned(),
        };
        match verdict {
            Verdict::Bounce {
                format,
                bounces,
                ignored,
            } => {
                match format {
                    BounceFormat::Dsn => tally.counts.dsn += 1,
                    BounceFormat::NonStandard => tally.counts.non_standard_bounce += 1,
                }
                for b in bounces {
                    self.bounce(&b, tally, &entry)?;
                }
                for who in ignored {
                    tally.ignored(Named {
                        message: evidence.to_owned(),
                        reason: format!("a recipient never sent this campaign ({who}): ignored"),
                    });
                }
            }
            Verdict::Complaint {
                recipient,
                feedback_type,
                signal,
            } => {
                tally.counts.complaint += 1;
                self.sink
                    .complaint(&recipient.address, &feedback_type, evidence)?;
                let e = entry(&recipient.address, Reason::Complaint, signal, feedback_type);
                self.suppress(e, tally)?;
            }
            Verdict::Unsubscribe { address } => {
                tally.counts.unsubscribe += 1;
                let e = entry(
                    &address,
                    Reason::Unsubscribe,
                    Signal::Token,
                    "mailto request".into(),
                );
                self.suppress(e, tally)?;
            }
            Verdict::DmarcReport { digests } => {
                tally.counts.dmarc_report += 1;
                tally.dmarc_reports += digests.len() as u64;
                for d in &digests {
                    tally.dmarc.add(d);
                }
            }
            Verdict::Other => tally.counts.other += 1,
            Verdict::Ignored { why } => {
                tally.counts.ignored += 1;
                tally.ignored(Named {
                    message: evidence.to_owned(),
                    reason: why,
                });
            }
            Verdict::Skipped { why } => {
                tally.counts.skipped += 1;
                return Ok(Some(why));
            }
        }
        Ok(None)
    }

    fn bounce(
        &mut self,
        b: &Bounce,
        tally: &mut Tally,
        entry: &dyn Fn(&str, Reason, Signal, String) -> Entry,
    ) -> Result<(), RunError> {
        let r = &b.recipient;
        tally.bounce(&r.address, &b.status);
        let mut detail = format!("{} {}", b.status, b.diagnostic).trim().to_owned();
        if let Some(f) = &b.final_recipient {
            detail.push_str(&format!(" (forwarded to {f})"));
        }
        if b.hard {
            tally.counts.hard_bounce += 1;
            self.sink
                .bounced(r.row, &r.address, &b.status, &b.diagnostic)?;
            let e = entry(&r.address, Reason::HardBounce, b.signal, detail);
            return self.suppress(e, tally);
        }
        tally.counts.soft_bounce += 1;
        let campaign = self.cx.known.campaign_id.clone();
        let n = self.sink.soft_bounce(&r.address, &campaign, &b.status)?;
        if n >= self.settings.soft_bounce_limit {
            let detail = format!("soft bounces in {n} campaigns, the last {detail}");
            let e = entry(&r.address, Reason::HardBounce, b.signal, detail);
            self.suppress(e, tally)?;
        }
        Ok(())
    }

    fn suppress(&mut self, e: Entry, tally: &mut Tally) -> Result<(), RunError> {
        if self.sink.suppress(&e)? {
            tally.suppressed(e);
        }
        Ok(())
    }
}
