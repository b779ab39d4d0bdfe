//! The outcome of one intake run: counts per category, the addresses suppressed and why, the
//! top bounce statuses and domains, the campaign's complaint rate (over every intake run)
//! against the lines Gmail draws, and the messages ignored or skipped. Serialized as the `--format json` schema (README).

use std::collections::HashMap;

use serde::Serialize;

use super::effects::Entry;
use crate::dmarc_report::aggregate::Aggregate;

pub const SCHEMA: &str = "mailshot.intake/2";
/// Gmail's sender guidelines: keep the spam rate below 0.1%; never reach 0.3%.
pub const GMAIL_TARGET_PCT: f64 = 0.1;
pub const GMAIL_LIMIT_PCT: f64 = 0.3;
const TOP: usize = 10;
/// Entries listed per list (suppressed, ignored, skipped): the counts are always complete,
/// the suppression list has every address, and a summary of 75,000 lines helps nobody.
pub const MAX_LISTED: usize = 1000;

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Messages read from the sources (including those processed by an earlier run).
    pub read: u64,
    /// Processed by an earlier run (the ledger knew them): not counted again.
    pub already_processed: u64,
    /// Bounce messages in RFC 3464 form, and in other MTAs' forms (one message may report
    /// several recipients; the per-recipient counts follow).
    pub dsn: u64,
    pub non_standard_bounce: u64,
    /// Recipients that bounced permanently (5.x.x) or temporarily (4.x.x, delayed).
    pub hard_bounce: u64,
    pub soft_bounce: u64,
    pub complaint: u64,
    pub unsubscribe: u64,
    pub dmarc_report: u64,
    pub other: u64,
    pub ignored: u64,
    pub skipped: u64,
}

#[derive(Debug, Serialize)]
pub struct Named {
    /// Where the message is: a path, `<mbox> message N`, or `<user>@<host>/<mailbox> UID N`.
    pub message: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Ranked {
    pub key: String,
    pub count: u64,
}

/// The campaign's complaint rate: what Gmail measures is every complaint about the mail
/// sent, not the ones one run of intake happened to read.
#[derive(Debug, Serialize)]
pub struct Complaints {
    /// Complaint messages acted on by this run.
    pub this_run: u64,
    /// Recipients of this campaign who complained, over every intake run so far (this one
    /// included); a recipient counts once, however many reports name them.
    pub campaign_total: u64,
    /// Recipients the relay accepted in this campaign (from the journal).
    pub sent: u64,
    /// campaign_total / sent, in percent; null when nothing was sent.
    pub rate_pct: Option<f64>,
    /// `below-0.1`, `at-or-above-0.1` or `at-or-above-0.3`.
    pub gmail: &'static str,
}

#[derive(Debug, Serialize)]
pub struct DmarcTotals {
    pub reports: u64,
    pub messages: u64,
    pub dmarc_pass: u64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub schema: &'static str,
    pub campaign: String,
    pub dry_run: bool,
    pub counts: Counts,
    /// Addresses newly suppressed by this run (already suppressed ones are not repeated):
    /// how many, and the first MAX_LISTED of them.
    pub suppressed_total: u64,
    pub suppressed: Vec<Entry>,
    pub bounce_statuses: Vec<Ranked>,
    pub bounce_domains: Vec<Ranked>,
    pub complaints: Complaints,
    pub dmarc: DmarcTotals,
    pub ignored: Vec<Named>,
    pub skipped: Vec<Named>,
    /// IMAP messages marked processed (keyword or move).
    pub marked: u64,
}

/// Accumulates a run.
#[derive(Default)]
pub struct Tally {
    pub counts: Counts,
    pub suppressed_total: u64,
    pub suppressed: Vec<Entry>,
    pub statuses: HashMap<String, u64>,
    pub domains: HashMap<String, u64>,
    pub ignored: Vec<Named>,
    pub skipped: Vec<Named>,
    pub dmarc: Aggregate,
    pub dmarc_reports: u64,
    pub marked: u64,
    /// Complainers over every intake run of the campaign (see [`Complaints`]).
    pub campaign_complaints: u64,
}

impl Tally {
    pub fn suppressed(&mut self, e: Entry) {
        self.suppressed_total += 1;
        if self.suppressed.len() < MAX_LISTED {
            self.suppressed.push(e);
        }
    }

    pub fn ignored(&mut self, n: Named) {
        if self.ignored.len() < MAX_LISTED {
            self.ignored.push(n);
        }
    }

    pub fn skipped(&mut self, n: Named) {
        if self.skipped.len() < MAX_LISTED {
            self.skipped.push(n);
        }
    }

    pub fn bounce(&mut self, address: &str, status: &str) {
        let status = if status.is_empty() { "(none)" } else { status };
        *self.statuses.entry(status.to_owned()).or_default() += 1;
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        *self.domains.entry(domain.to_owned()).or_default() += 1;
    }

    pub fn finish(self, campaign: &str, dry_run: bool, sent: u64) -> Summary {
        let total = self.campaign_complaints;
        let rate_pct = (sent > 0).then(|| total as f64 * 100.0 / sent as f64);
        let gmail = match rate_pct {
            Some(r) if r >= GMAIL_LIMIT_PCT => "at-or-above-0.3",
            Some(r) if r >= GMAIL_TARGET_PCT => "at-or-above-0.1",
            _ => "below-0.1",
        };
        let totals = self.dmarc.totals();
        Summary {
            schema: SCHEMA,
            campaign: campaign.to_owned(),
            dry_run,
            complaints: Complaints {
                this_run: self.counts.complaint,
                campaign_total: total,
                sent,
                rate_pct,
                gmail,
            },
            dmarc: DmarcTotals {
                reports: self.dmarc_reports,
                messages: totals.messages,
                dmarc_pass: totals.dmarc_pass,
            },
            counts: self.counts,
            suppressed_total: self.suppressed_total,
            suppressed: self.suppressed,
            bounce_statuses: top(self.statuses),
            bounce_domains: top(self.domains),
            ignored: self.ignored,
            skipped: self.skipped,
            marked: self.marked,
        }
    }
}

/// The most frequent first; ties by name, so the output is the same every run.
fn top(map: HashMap<String, u64>) -> Vec<Ranked> {
    let mut v: Vec<Ranked> = map
        .into_iter()
        .map(|(key, count)| Ranked { key, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    v.truncate(TOP);
    v
}

/// The summary for people.
pub fn human(s: &Summary) -> String {
    let c = &s.counts;
    let mut out = format!(
        "intake for campaign {}{}\n  messages read: {} ({} processed by an earlier run)\n",
        s.campaign,
        if s.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        },
        c.read,
        c.already_processed
    );
    for (name, n) in [
        ("hard bounces", c.hard_bounce),
        ("soft bounces", c.soft_bounce),
        ("complaints", c.complaint),
        ("unsubscribe mails", c.unsubscribe),
        ("DMARC reports", c.dmarc_report),
        ("other (left alone)", c.other),
        ("ignored (not this campaign's)", c.ignored),
        ("skipped (unreadable)", c.skipped),
    ] {
        out.push_str(&format!("  {name:<30} {n}\n"));
    }
    let rate = s
        .complaints
        .rate_pct
        .map_or("n/a (nothing sent)".to_owned(), |r| format!("{r:.3}%"));
    let line = match s.complaints.gmail {
        "at-or-above-0.3" => "AT OR ABOVE Gmail's 0.3% limit: stop and fix the list",
        "at-or-above-0.1" => "at or above Gmail's 0.1% target (0.3% is the limit)",
        _ => "below Gmail's 0.1% target",
    };
    out.push_str(&format!(
        "  complaint rate, all intake runs: {rate} ({} of {} sent; {} this run): {line}\n",
        s.complaints.campaign_total, s.complaints.sent, s.complaints.this_run
    ));
    if !s.suppressed.is_empty() {
        out.push_str(&format!(
            "suppressed{} ({}{}):\n",
            if s.dry_run { ", would be" } else { "" },
            s.suppressed_total,
            if s.suppressed_total > s.suppressed.len() as u64 {
                format!(", the first {} listed", s.suppressed.len())
            } else {
                String::new()
            }
        ));
        for e in &s.suppressed {
            out.push_str(&format!(
                "  {} {}: {}\n",
                e.address,
                e.reason.as_str(),
                e.detail
            ));
        }
    }
    for (title, list) in [
        ("top bounce statuses", &s.bounce_statuses),
        ("top bounce domains", &s.bounce_domains),
    ] {
        if !list.is_empty() {
            let items: Vec<String> = list
                .iter()
                .map(|r| format!("{} ({})", r.key, r.count))
                .collect();
            out.push_str(&format!("{title}: {}\n", items.join(", ")));
        }
    }
    if s.dmarc.reports > 0 {
        out.push_str(&format!(
            "DMARC: {} reports, {} messages, {} passed DMARC (details: mailshot dmarc report)\n",
            s.dmarc.reports, s.dmarc.messages, s.dmarc.dmarc_pass
        ));
    }
    for (title, list, total) in [
        ("ignored", &s.ignored, c.ignored),
        ("skipped", &s.skipped, c.skipped),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("{title} ({total}):\n"));
            for n in list {
                out.push_str(&format!("  {}: {}\n", n.message, n.reason));
            }
        }
    }
    if s.marked > 0 {
        out.push_str(&format!("marked processed on IMAP: {}\n", s.marked));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(this_run: u64, total: u64) -> Tally {
        Tally {
            counts: Counts {
                complaint: this_run,
                ..Counts::default()
            },
            campaign_complaints: total,
            ..Tally::default()
        }
    }

    fn complaints(this_run: u64, total: u64, sent: u64) -> Complaints {
        tally(this_run, total)
            .finish("news", false, sent)
            .complaints
    }

    /// The rate is the campaign's complainers over its sent count, not this run's messages.
    #[test]
    fn the_rate_is_the_campaigns_across_runs_with_gmails_lines() {
        let c = complaints(0, 3, 1000);
        assert_eq!((c.this_run, c.campaign_total), (0, 3));
        assert_eq!(c.rate_pct, Some(0.3));
        assert_eq!(c.gmail, "at-or-above-0.3");
        assert_eq!(complaints(1, 1, 1000).gmail, "at-or-above-0.1");
        assert_eq!(complaints(2, 2, 2001).gmail, "below-0.1");
        assert_eq!(complaints(5, 0, 0).rate_pct, None);
        let text = human(&tally(1, 2).finish("news", false, 1000));
        assert!(
            text.contains("all intake runs: 0.200% (2 of 1000 sent; 1 this run): at or above"),
            "{text}"
        );
    }
}
