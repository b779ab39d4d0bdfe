//! The per-provider rows of the bulk-sender checklist: Gmail, Yahoo and Microsoft (Outlook.com)
//! each get one row per requirement (SPF and/or DKIM, DMARC, alignment, one-click unsubscribe,
//! the visible link, PTR, TLS), judged by that provider's own page, which each row cites.
//!
//! The rows are derived from the same [`States`] as the shared `bulk.*` rows and never block
//! by themselves: a failing row names the shared rows (or `tls.*` findings) that carry it to
//! the gate in `enforced_by`, so one cause is one id to fix or `--override`. A temperror in a
//! source stays a temperror in every row derived from it, unless another source the row
//! needs fails for certain.
//!
//! SPF and DKIM, as the pages state them (checked 2026-11):
//! - Gmail (<https://support.google.com/a/answer/81126>): every sender needs SPF or DKIM;
//!   bulk senders (5,000+ messages a day) need SPF, DKIM and DMARC.
//! - Yahoo (<https://senders.yahooinc.com/best-practices/>): SPF or DKIM for every sender;
//!   bulk senders implement both, with DMARC.
//! - Outlook.com (the April 2025 announcement, enforced from May 2025): senders of 5,000+ a
//!   day must pass SPF and DKIM, with DMARC at least `p=none`, aligned. It names no lesser
//!   rule for smaller senders and recommends all three to every sender, so mailshot holds
//!   every campaign to it.
//!
//! Bulk is decided by the campaign's valid recipients (5,000 or more), the one size the audit
//! knows before sending.

use super::bulk::States;
use super::finding::{Check, Finding, Group, Severity};

/// A provider whose published sender rules the rows apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Gmail,
    Yahoo,
    Microsoft,
}

pub const PROVIDERS: [Provider; 3] = [Provider::Gmail, Provider::Yahoo, Provider::Microsoft];

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Gmail => "Gmail",
            Provider::Yahoo => "Yahoo",
            Provider::Microsoft => "Microsoft (Outlook.com)",
        }
    }

    /// The page the rows cite; the README's section on the provider names it too.
    pub fn page(self) -> &'static str {
        match self {
            Provider::Gmail => "https://support.google.com/a/answer/81126",
            Provider::Yahoo => "https://senders.yahooinc.com/best-practices/",
            Provider::Microsoft => {
                "https://techcommunity.microsoft.com/blog/microsoftdefenderforoffice365blog/strengthening-email-ecosystem-outlook%E2%80%99s-new-requirements-for-high%E2%80%90volume-senders/4399730"
            }
        }
    }

    /// Whether this provider asks for SPF *and* DKIM (otherwise either one) at this size.
    pub fn needs_both(self, bulk: bool) -> bool {
        bulk || self == Provider::Microsoft
    }

    /// How strongly the page asks for `req` at this size.
    fn level(self, req: Req, bulk: bool) -> Level {
        use {Level::*, Provider::*, Req::*};
        match (self, req) {
            (_, Authentication) => Required,
            (Gmail | Yahoo, Dmarc | Alignment | OneClick | VisibleUnsubscribe) if !bulk => {
                Recommended
            }
            (Gmail | Yahoo, _) if req != Tls => Required,
            (Gmail, Tls) => Required,
            (Microsoft, Dmarc | Alignment) => Required,
            _ => Recommended,
        }
    }

    fn check(self, req: Req) -> Check {
        use {Provider::*, Req::*};
        match (self, req) {
            (Gmail, Authentication) => Check::GmailAuthentication,
            (Gmail, Dmarc) => Check::GmailDmarc,
            (Gmail, Alignment) => Check::GmailAlignment,
            (Gmail, OneClick) => Check::GmailOneClick,
            (Gmail, VisibleUnsubscribe) => Check::GmailVisibleUnsubscribe,
            (Gmail, Ptr) => Check::GmailPtr,
            (Gmail, Tls) => Check::GmailTls,
            (Yahoo, Authentication) => Check::YahooAuthentication,
            (Yahoo, Dmarc) => Check::YahooDmarc,
            (Yahoo, Alignment) => Check::YahooAlignment,
            (Yahoo, OneClick) => Check::YahooOneClick,
            (Yahoo, VisibleUnsubscribe) => Check::YahooVisibleUnsubscribe,
            (Yahoo, Ptr) => Check::YahooPtr,
            (Yahoo, Tls) => Check::YahooTls,
            (Microsoft, Authentication) => Check::MicrosoftAuthentication,
            (Microsoft, Dmarc) => Check::MicrosoftDmarc,
            (Microsoft, Alignment) => Check::MicrosoftAlignment,
            (Microsoft, OneClick) => Check::MicrosoftOneClick,
            (Microsoft, VisibleUnsubscribe) => Check::MicrosoftVisibleUnsubscribe,
            (Microsoft, Ptr) => Check::MicrosoftPtr,
            (Microsoft, Tls) => Check::MicrosoftTls,
        }
    }
}

/// One requirement, in the order the rows are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    Authentication,
    Dmarc,
    Alignment,
    OneClick,
    VisibleUnsubscribe,
    Ptr,
    Tls,
}

const REQS: [Req; 7] = [
    Req::Authentication,
    Req::Dmarc,
    Req::Alignment,
    Req::OneClick,
    Req::VisibleUnsubscribe,
    Req::Ptr,
    Req::Tls,
];

/// Required: an unmet requirement fails. Recommended: it warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Required,
    Recommended,
}

/// The state of a requirement: the severity its sources give, and the ids enforcing it.
struct Source {
    /// Nothing reported counts as a fail.
    state: Severity,
    enforced_by: Vec<&'static str>,
    what: &'static str,
}

fn source(st: &States, findings: &[Finding], p: Provider, req: Req) -> Source {
    let one = |state: Option<Severity>, id: Check, what| Source {
        state: fail_if_none(state),
        enforced_by: vec![id.id()],
        what,
    };
    match req {
        Req::Authentication => {
            let (spf, dkim) = (fail_if_none(st.spf), fail_if_none(st.dkim));
            let (state, what) = if p.needs_both(st.bulk) {
                // Both are needed: one that fails is not met, whatever the other's lookup did.
                (
                    std::cmp::max_by_key(spf, dkim, |s| s.rank()),
                    "SPF and DKIM",
                )
            } else {
                (either(spf, dkim), "SPF or DKIM")
            };
            Source {
                state,
                enforced_by: vec![Check::BulkSpf.id(), Check::BulkDkim.id()],
                what,
            }
        }
        Req::Dmarc => one(
            st.dmarc,
            Check::BulkDmarc,
            "a DMARC record (p=none or stronger)",
        ),
        Req::Alignment => one(
            st.alignment,
            Check::BulkAlignment,
            "From aligned with SPF or DKIM",
        ),
        Req::OneClick => Source {
            state: fail_if_none(st.one_click).max(fail_if_none(st.unsubscribe_signed)),
            enforced_by: vec![Check::BulkOneClick.id(), Check::BulkUnsubscribeSigned.id()],
            what: "one-click unsubscribe (RFC 8058), signed by DKIM",
        },
        Req::VisibleUnsubscribe => one(
            st.visible_unsubscribe,
            Check::BulkVisibleUnsubscribe,
            "a visible unsubscribe link in the body",
        ),
        Req::Ptr => one(
            st.ptr,
            Check::BulkPtr,
            "forward-confirmed reverse DNS (PTR)",
        ),
        Req::Tls => Source {
            state: fail_if_none(st.tls),
            enforced_by: findings
                .iter()
                .filter(|f| f.group == Group::Tls && f.severity.blocks())
                .map(|f| f.id)
                .collect(),
            what: "TLS to the receiver",
        },
    }
}

fn fail_if_none(s: Option<Severity>) -> Severity {
    s.unwrap_or(Severity::Fail)
}

/// SPF or DKIM: a pass if either passes; otherwise a temperror if either is one.
fn either(a: Severity, b: Severity) -> Severity {
    if a == Severity::Pass || b == Severity::Pass {
        Severity::Pass
    } else {
        a.max(b)
    }
}

/// Every provider's rows.
pub fn rows(st: &States, findings: &[Finding], campaign: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in PROVIDERS {
        for req in REQS {
            out.push(row(st, findings, campaign, p, req));
        }
    }
    out
}

fn row(st: &States, findings: &[Finding], campaign: &str, p: Provider, req: Req) -> Finding {
    let src = source(st, findings, p, req);
    let level = p.level(req, st.bulk);
    let size = match (st.bulk, p.needs_both(false) && level == Level::Required) {
        (true, _) => "at 5,000+ a day (bulk)",
        // Outlook.com states its rules for 5,000+ a day and no lesser ones (see the module doc).
        (false, true) => "(its rule for 5,000+ a day, applied at every size)",
        (false, false) => "under 5,000 a day",
    };
    let verb = match level {
        Level::Required => "requires",
        Level::Recommended => "recommends",
    };
    let (sev, outcome) = match src.state {
        Severity::Pass => (Severity::Pass, "met"),
        Severity::TempError => (Severity::TempError, "not known (a DNS lookup failed)"),
        Severity::Info => (Severity::Info, "not checked in this run"),
        Severity::Warn => (Severity::Warn, "only partly met"),
        Severity::Fail => match level {
            Level::Required => (Severity::Fail, "NOT met"),
            Level::Recommended => (Severity::Warn, "not met"),
        },
    };
    let message = format!("{}: {outcome}; {} {verb} it {size}", src.what, p.name());
    let mut f = Finding::new(p.check(req), sev, campaign, message);
    f.cites = Some(p.page());
    if sev.blocks() {
        f.fix = Some(format!("see {}", src.enforced_by.join(", ")));
        f.enforced_by = src.enforced_by;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(spf: Severity, bulk: bool) -> States {
        States {
            spf: Some(spf),
            ptr: Some(Severity::Info),
            tls: Some(Severity::Info),
            ..States::passing(bulk)
        }
    }

    fn sev(rows: &[Finding], id: &str) -> Severity {
        rows.iter().find(|f| f.id == id).unwrap().severity
    }

    #[test]
    fn dkim_without_spf_fails_microsoft_always_and_gmail_yahoo_only_in_bulk() {
        let small = rows(&states(Severity::Fail, false), &[], "c");
        assert_eq!(sev(&small, "bulk.microsoft.spf-dkim"), Severity::Fail);
        assert_eq!(sev(&small, "bulk.gmail.spf-dkim"), Severity::Pass);
        assert_eq!(sev(&small, "bulk.yahoo.spf-dkim"), Severity::Pass);
        let bulk = rows(&states(Severity::Fail, true), &[], "c");
        for p in ["gmail", "yahoo", "microsoft"] {
            let f = bulk
                .iter()
                .find(|f| f.id == format!("bulk.{p}.spf-dkim"))
                .unwrap();
            assert_eq!(f.severity, Severity::Fail, "{p}");
            // Carried to the gate by the shared rows, never by itself.
            assert!(!f.blocks());
            assert_eq!(f.enforced_by, ["bulk.spf", "bulk.dkim"]);
            assert!(f.cites.is_some());
        }
    }

    #[test]
    fn temperror_stays_temperror_in_every_derived_row() {
        let mut st = states(Severity::TempError, true);
        st.dmarc = Some(Severity::TempError);
        let r = rows(&st, &[], "c");
        for p in ["gmail", "yahoo", "microsoft"] {
            assert_eq!(sev(&r, &format!("bulk.{p}.spf-dkim")), Severity::TempError);
            assert_eq!(sev(&r, &format!("bulk.{p}.dmarc")), Severity::TempError);
        }
        // Below bulk, SPF's temperror does not matter to Gmail when DKIM passes.
        let r = rows(&states(Severity::TempError, false), &[], "c");
        assert_eq!(sev(&r, "bulk.gmail.spf-dkim"), Severity::Pass);
    }

    /// SPF refused and DKIM's lookup failed: "SPF and DKIM" is definitely not met, so the
    /// bulk rows fail; "SPF or DKIM" (Gmail below bulk) is unknown, since DKIM may pass.
    #[test]
    fn a_failure_outranks_the_other_sources_temperror_when_both_are_needed() {
        for bulk in [true, false] {
            let mut st = states(Severity::Fail, bulk);
            st.dkim = Some(Severity::TempError);
            let r = rows(&st, &[], "c");
            assert_eq!(sev(&r, "bulk.microsoft.spf-dkim"), Severity::Fail);
            let gmail = if bulk {
                Severity::Fail
            } else {
                Severity::TempError
            };
            assert_eq!(sev(&r, "bulk.gmail.spf-dkim"), gmail, "bulk {bulk}");
        }
    }

    #[test]
    fn requirements_follow_each_page() {
        let mut st = states(Severity::Pass, false);
        st.ptr = Some(Severity::Fail);
        st.tls = Some(Severity::Fail);
        st.visible_unsubscribe = Some(Severity::Warn);
        let r = rows(&st, &[], "c");
        assert_eq!(sev(&r, "bulk.gmail.ptr"), Severity::Fail);
        assert_eq!(sev(&r, "bulk.yahoo.ptr"), Severity::Fail);
        assert_eq!(sev(&r, "bulk.microsoft.ptr"), Severity::Warn);
        assert_eq!(sev(&r, "bulk.gmail.tls"), Severity::Fail);
        assert_eq!(sev(&r, "bulk.yahoo.tls"), Severity::Warn);
        assert_eq!(sev(&r, "bulk.gmail.visible-unsubscribe"), Severity::Warn);
        assert_eq!(r.len(), 21);
    }
}
