//! The grade: for each provider, the blocking items that fail; and the human and JSON forms.
//!
//! One received message does not show how many were sent, so it is graded as bulk mail
//! (5,000+ a day): SPF *and* DKIM must pass for Gmail, Yahoo and Microsoft alike, as each
//! provider's bulk-sender page asks (cited per provider, see `preflight::providers`). The
//! under-bulk rule (SPF or DKIM, Gmail and Yahoo) is reported as `verify.spf-or-dkim`.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Item, Provider, Report, Status};
use crate::terminal::field;

/// One provider's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderGrade {
    pub provider: Provider,
    /// The provider's page the grade applies.
    pub cites: &'static str,
    pub passes: bool,
    /// Ids of the failing items that block this provider.
    pub blocking: Vec<&'static str>,
}

pub fn grade(items: &[Item]) -> Vec<ProviderGrade> {
    Provider::ALL
        .iter()
        .map(|&p| {
            let mut blocking: Vec<&'static str> =
                items.iter().filter(|i| i.blocks(p)).map(|i| i.id).collect();
            blocking.dedup();
            ProviderGrade {
                provider: p,
                cites: p.page(),
                passes: blocking.is_empty(),
                blocking,
            }
        })
        .collect()
}

/// The human form: the grade first, then every item that is not a pass, then the passes.
pub fn human(r: &Report) -> String {
    let mut s = String::new();
    // Everything below but our own words comes from the message or DNS: escaped.
    let _ = writeln!(s, "{}", field(&r.source));
    let _ = writeln!(s, "  graded as {}", r.graded_as);
    for g in &r.grade {
        let _ = writeln!(
            s,
            "  {:<24} {}",
            g.provider.name(),
            if g.passes {
                "PASS".to_owned()
            } else {
                format!("BLOCKED by {}", g.blocking.join(", "))
            }
        );
    }
    let rx = &r.receiver;
    let _ = writeln!(
        s,
        "  receiver: connecting IP {}, TLS {}, envelope {}",
        rx.connecting_ip.map_or("unknown".into(), |i| i.to_string()),
        match rx.hop.as_ref().and_then(|h| h.tls) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        },
        field(rx.mailfrom.as_deref().unwrap_or("unknown"))
    );
    let mut items: Vec<&Item> = r.items.iter().collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.status));
    for i in items {
        let _ = writeln!(
            s,
            "  {:<9} {:<28} {}",
            i.status.label(),
            i.id,
            field(&i.message)
        );
        if i.status != Status::Pass {
            if let Some(e) = &i.evidence {
                for line in e.lines() {
                    let _ = writeln!(s, "            seen: {}", field(line));
                }
            }
            if let Some(f) = &i.fix {
                let _ = writeln!(s, "            fix: {}", field(f));
            }
        }
    }
    s
}

/// The JSON form of several reports.
pub fn json(reports: &[Report], unreadable: &[(String, String)]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        schema: &'static str,
        blocked: bool,
        messages: &'a [Report],
        unreadable: Vec<Unreadable<'a>>,
    }
    #[derive(Serialize)]
    struct Unreadable<'a> {
        path: &'a str,
        error: &'a str,
    }
    let out = Out {
        schema: "mailshot.verify/1",
        blocked: reports.iter().any(Report::blocked),
        messages: reports,
        unreadable: unreadable
            .iter()
            .map(|(p, e)| Unreadable { path: p, error: e })
            .collect(),
    };
    serde_json::to_string_pretty(&out).unwrap_or_default()
}
