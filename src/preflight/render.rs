//! Audit output: human (verdict first, then one line per finding grouped by protocol, with
//! evidence and fixes under the ones that need attention) and JSON (schema in the README).

use serde::Serialize;

use super::providers::PROVIDERS;
use super::{Audit, Finding, Group, Severity};
use crate::lint::LintSummary;
use crate::terminal::field;

pub const SCHEMA: &str = "mailshot.preflight/1";

#[derive(Serialize)]
struct Counts {
    pass: usize,
    info: usize,
    warn: usize,
    fail: usize,
    temperror: usize,
}

#[derive(Serialize)]
struct Json<'a> {
    schema: &'static str,
    campaign: &'a str,
    from_domain: &'a str,
    envelope_domain: &'a str,
    /// "pass", "warn" or "blocked".
    verdict: &'static str,
    may_send: bool,
    counts: Counts,
    blocking: Vec<&'static str>,
    overridden: Vec<&'a str>,
    dns_queries: usize,
    findings: &'a [Finding],
    /// The content lint over every recipient (advice; see `lint.block`).
    lint: Option<&'a LintSummary>,
}

pub fn verdict(audit: &Audit, overrides: &[String]) -> &'static str {
    if !audit.unresolved(overrides).is_empty() {
        "blocked"
    } else if audit.count(Severity::Warn) > 0 || audit.blocking().next().is_some() {
        "warn"
    } else {
        "pass"
    }
}

pub fn json(audit: &Audit, overrides: &[String], lint: Option<&LintSummary>) -> String {
    let blocking: Vec<&'static str> = audit.unresolved(overrides).iter().map(|f| f.id).collect();
    let overridden: Vec<&str> = overrides
        .iter()
        .map(String::as_str)
        .filter(|o| audit.blocking().any(|f| f.id == *o))
        .collect();
    let j = Json {
        schema: SCHEMA,
        campaign: &audit.campaign,
        from_domain: &audit.from_domain,
        envelope_domain: &audit.envelope_domain,
        verdict: verdict(audit, overrides),
        may_send: blocking.is_empty(),
        counts: Counts {
            pass: audit.count(Severity::Pass),
            info: audit.count(Severity::Info),
            warn: audit.count(Severity::Warn),
            fail: audit.count(Severity::Fail),
            temperror: audit.count(Severity::TempError),
        },
        blocking,
        overridden,
        dns_queries: audit.dns_queries,
        findings: &audit.findings,
        lint,
    };
    serde_json::to_string_pretty(&j).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub fn human(audit: &Audit, overrides: &[String]) -> String {
    let mut s = String::new();
    let unresolved = audit.unresolved(overrides);
    s.push_str(&format!(
        "Preflight for {}: From domain {}, envelope domain {}\n",
        field(&audit.campaign),
        field(&audit.from_domain),
        field(&audit.envelope_domain)
    ));
    if unresolved.is_empty() {
        let warns = audit.count(Severity::Warn);
        s.push_str(&format!(
            "Verdict: you may send{}\n",
            if warns > 0 {
                format!(" ({warns} warning{})", if warns == 1 { "" } else { "s" })
            } else {
                String::new()
            }
        ));
    } else {
        s.push_str(&format!(
            "Verdict: BLOCKED by {} finding{}:\n",
            unresolved.len(),
            if unresolved.len() == 1 { "" } else { "s" }
        ));
        for f in &unresolved {
            s.push_str(&format!(
                "  {:<9} {:<24} {}\n",
                f.severity.label(),
                f.id,
                field(&f.message)
            ));
            if let Some(fix) = &f.fix {
                s.push_str(&format!("  {:<9} {:<24} fix: {}\n", "", "", field(fix)));
            }
        }
        s.push_str(
            "  (fix them, or pass --override <id> to send anyway; the override is recorded)\n",
        );
    }
    let overridden: Vec<&Finding> = audit
        .blocking()
        .filter(|f| overrides.iter().any(|o| o == f.id))
        .collect();
    for f in overridden {
        s.push_str(&format!("  OVERRIDDEN {} ({})\n", f.id, field(&f.message)));
    }
    for group in [
        Group::Spf,
        Group::Dkim,
        Group::Dmarc,
        Group::Tls,
        Group::Dns,
        Group::Bulk,
    ] {
        let items: Vec<&Finding> = audit.findings.iter().filter(|f| f.group == group).collect();
        if items.is_empty() {
            continue;
        }
        s.push_str(&format!("\n{}\n", group.title()));
        let mut cited = None;
        for f in items {
            // The per-provider rows come in runs, each under its provider and page.
            if f.cites.is_some() && f.cites != cited {
                cited = f.cites;
                let name = PROVIDERS
                    .iter()
                    .find(|p| Some(p.page()) == f.cites)
                    .map_or("", |p| p.name());
                s.push_str(&format!("  {name}, per {}\n", f.cites.unwrap_or_default()));
            }
            s.push_str(&format!(
                "  {:<9} {:<24} {}: {}\n",
                f.severity.label(),
                f.id,
                field(&f.subject),
                field(&f.message)
            ));
            if f.severity >= Severity::Warn {
                if let Some(e) = &f.evidence {
                    // One record per line; a line break inside a record from DNS starts another
                    // "seen:" line, never a line of ours.
                    for line in e.lines() {
                        s.push_str(&format!("  {:<9} {:<24} seen: {}\n", "", "", field(line)));
                    }
                }
                if let Some(fix) = &f.fix {
                    s.push_str(&format!("  {:<9} {:<24} fix: {}\n", "", "", field(fix)));
                }
            }
        }
    }
    s
}
