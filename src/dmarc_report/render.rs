//! The summary for people: a header, a table per source IP, the reporting organizations, the
//! skipped files, and a recommendation per policy domain with its thresholds.

use std::fmt::Write;

use super::container::SkipKind;
use super::digest::{Disposition, Policy};
use super::recommend::{self, Verdict, days_text, pct_text, thousands};
use super::summary::{CountsJson, DateRange, Summary};
use crate::terminal::{field, field_str};

/// Reporting organizations named per source before "+N more": the table stays one line per
/// source; the JSON has them all.
const ORGS_SHOWN: usize = 3;
/// Organizations named in the header, most messages first.
const ORGS_IN_HEADER: usize = 6;
/// Sources named in a recommendation; the JSON lists them all.
const SOURCES_NAMED: usize = 5;

pub fn human(s: &Summary) -> String {
    let mut out = String::new();
    header(&mut out, s);
    if !s.sources.is_empty() {
        sources(&mut out, s);
        organizations(&mut out, s);
    }
    skipped(&mut out, s);
    recommendations(&mut out, s);
    out
}

fn header(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "DMARC aggregate reports");
    let dup = match s.reports.duplicates {
        0 => String::new(),
        1 => " (and 1 duplicate, counted once)".to_owned(),
        n => format!(" (and {n} duplicates, counted once)"),
    };
    let _ = writeln!(
        out,
        "  Reports read:   {}{dup}",
        thousands(s.reports.counted)
    );
    let mut skipped = format!("{} skipped", thousands(s.files.skipped));
    if s.files.skipped > 0 {
        let mut kinds = Vec::new();
        if s.files.broken > 0 {
            kinds.push(format!("{} unreadable", thousands(s.files.broken)));
        }
        if s.files.not_reports > 0 {
            kinds.push(format!("{} not reports", thousands(s.files.not_reports)));
        }
        let _ = write!(skipped, ": {}", kinds.join(", "));
    }
    let _ = writeln!(
        out,
        "  Files:          {} found, {skipped}",
        thousands(s.files.found)
    );
    let mut orgs: Vec<String> = s
        .organizations
        .iter()
        .take(ORGS_IN_HEADER)
        .map(|o| field_str(&o.org).into_owned())
        .collect();
    if s.organizations.len() > ORGS_IN_HEADER {
        orgs.push(format!("{} more", s.organizations.len() - ORGS_IN_HEADER));
    }
    let _ = writeln!(
        out,
        "  Organizations:  {}{}",
        s.organizations.len(),
        if orgs.is_empty() {
            String::new()
        } else {
            format!(" ({})", orgs.join(", "))
        }
    );
    let range = s.date_range.as_ref().map_or_else(|| "-".to_owned(), dates);
    let _ = writeln!(out, "  Date range:     {range}");
    let _ = writeln!(
        out,
        "  Messages:       {}, {} aligned (passed DMARC)",
        thousands(s.totals.messages),
        pct_text(s.totals.dmarc_pass, s.totals.messages)
    );
}

/// "2026-10-01 .. 2026-10-21 UTC (21 days)": the end shown is the last second covered, so a
/// report ending at the next midnight does not show the next day.
fn dates(r: &DateRange) -> String {
    let day = |unix: u64| {
        let t = crate::clock::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix));
        t[..10].to_owned()
    };
    let last = if r.end_unix > r.begin_unix {
        r.end_unix - 1
    } else {
        r.end_unix
    };
    format!(
        "{} .. {} UTC ({})",
        day(r.begin_unix),
        day(last),
        days_text(r.days)
    )
}

fn dispositions(c: &CountsJson) -> String {
    let parts: Vec<String> = Disposition::ALL
        .iter()
        .filter_map(|&d| {
            let n = c.counts.disposition(d);
            (n > 0).then(|| format!("{} {}", d.as_str(), thousands(n)))
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

fn sources(out: &mut String, s: &Summary) {
    let _ = writeln!(
        out,
        "\nSources (DKIM, SPF: aligned pass; DMARC: either; ✗: under {:.0}% pass DMARC, a \
         forgotten service, a forwarder or spoofing)",
        recommend::FLAG_BELOW_PCT
    );
    let rows: Vec<[String; 8]> = s
        .sources
        .iter()
        .map(|src| {
            let mut orgs: Vec<String> = src
                .orgs
                .iter()
                .take(ORGS_SHOWN)
                .map(|o| field_str(&o.org).into_owned())
                .collect();
            let more = src.orgs.len().saturating_sub(ORGS_SHOWN);
            orgs.extend((more > 0).then(|| format!("+{more} more")));
            let c = &src.counts;
            [
                field_str(&src.ip).into_owned(),
                thousands(c.messages),
                pct_text(c.dkim_aligned, c.messages),
                pct_text(c.spf_aligned, c.messages),
                pct_text(c.dmarc_pass, c.messages),
                dispositions(c),
                orgs.join(", "),
                if src.flagged { "✗" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let head = [
        "Source IP",
        "Messages",
        "DKIM",
        "SPF",
        "DMARC",
        "Dispositions",
        "Reported by",
        "",
    ]
    .map(str::to_owned);
    table(
        out,
        &head,
        &rows,
        &[false, true, true, true, true, false, false, false],
    );
}

fn organizations(out: &mut String, s: &Summary) {
    let _ = writeln!(out, "\nReporting organizations");
    let rows: Vec<[String; 4]> = s
        .organizations
        .iter()
        .map(|o| {
            [
                if o.generators.is_empty() {
                    field_str(&o.org).into_owned()
                } else {
                    // Both are the reporter's own words: escaped like every outside text.
                    let g: Vec<String> = o
                        .generators
                        .iter()
                        .map(|g| field_str(g).into_owned())
                        .collect();
                    format!("{} ({})", field_str(&o.org), g.join(", "))
                },
                thousands(o.reports),
                thousands(o.counts.messages),
                pct_text(o.counts.dmarc_pass, o.counts.messages),
            ]
        })
        .collect();
    let head = ["Organization", "Reports", "Messages", "DMARC pass"].map(str::to_owned);
    table(out, &head, &rows, &[false, true, true, true]);
}

/// Columns padded to their widest cell (in characters: ✗ and → are one column wide).
fn table<const N: usize>(
    out: &mut String,
    head: &[String; N],
    rows: &[[String; N]],
    right: &[bool; N],
) {
    let mut widths = head.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(head).chain(rows) {
        let mut line = String::new();
        for ((cell, &w), &r) in row.iter().zip(&widths).zip(right) {
            let pad = " ".repeat(w - cell.chars().count());
            line.push_str("  ");
            if r {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn skipped(out: &mut String, s: &Summary) {
    if s.skipped.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nSkipped files");
    for f in &s.skipped {
        let what = match f.kind {
            SkipKind::Broken => "unreadable",
            SkipKind::NotAReport => "not a report",
        };
        let _ = writeln!(out, "  {} ({what}): {}", field(&f.path), field(&f.reason));
    }
}

/// What RFC 9990 reports said about the published policy and how receivers found it; none
/// for a domain covered only by RFC 7489 reports.
fn rfc9990_line(d: &super::summary::Domain) -> Option<String> {
    if d.rfc9990_reports == 0 && d.np.is_none() && !d.testing {
        return None;
    }
    let mut parts = vec![format!(
        "{} of {} reports in RFC 9990 format",
        d.rfc9990_reports, d.reports
    )];
    if let Some(np) = d.np {
        parts.push(format!("np={}", np.as_str()));
    }
    if d.testing {
        parts.push("t=y (testing: receivers apply one step less)".into());
    }
    let m = &d.discovery_method;
    if m.psl + m.treewalk > 0 {
        parts.push(format!(
            "policy found by tree walk in {}, by public suffix list in {}",
            m.treewalk, m.psl
        ));
    }
    Some(parts.join("; "))
}

fn recommendations(out: &mut String, s: &Summary) {
    for d in &s.domains {
        let r = &d.recommendation;
        let _ = writeln!(
            out,
            "\nRecommendation for {} (p={} now):",
            field(&d.domain),
            d.policy.as_str()
        );
        let _ = writeln!(out, "  {}.", field(&r.message));
        if let Some(line) = rfc9990_line(d) {
            let _ = writeln!(out, "  {line}");
        }
        let named = |list: &[super::summary::SourceFailures]| {
            let mut names: Vec<String> = list
                .iter()
                .take(SOURCES_NAMED)
                .map(|f| {
                    format!(
                        "{} ({} of {} failing)",
                        field(&f.ip),
                        thousands(f.failed),
                        thousands(f.messages)
                    )
                })
                .collect();
            if list.len() > SOURCES_NAMED {
                names.push(format!("{} more", list.len() - SOURCES_NAMED));
            }
            names.join(", ")
        };
        if !r.fix_first.is_empty() {
            let _ = writeln!(
                out,
                "  Fix first: {}. If a source is yours, sign its mail with an aligned DKIM key \
                 or use your domain as its envelope sender; if not, the next policy step will \
                 stop it.",
                named(&r.fix_first)
            );
        }
        if !r.review.is_empty() {
            let failing = thousands(r.review.iter().map(|f| f.failed).sum());
            let line = match r.decided {
                Verdict::Ready { next } => format!(
                    "Check first: under p={} the flagged sources' failing mail ({failing} \
                     messages) would be {}",
                    next.as_str(),
                    if next == Policy::Reject {
                        "rejected"
                    } else {
                        "quarantined"
                    }
                ),
                Verdict::Strictest => format!(
                    "Check: the flagged sources' failing mail ({failing} messages) is rejected"
                ),
                _ => format!("Watch: the flagged sources ({failing} failing messages)"),
            };
            let _ = writeln!(
                out,
                "  {line}: {}. Make sure none of them is a service of yours.",
                named(&r.review)
            );
        }
        let _ = writeln!(out, "  Thresholds: {}.", recommend::thresholds_text());
    }
    if s.domains.is_empty() {
        let _ = writeln!(
            out,
            "\nRecommendation: none, no report could be read.\n  Thresholds: {}.",
            recommend::thresholds_text()
        );
    }
}
