//! The bulk-sender checklist (Gmail and Yahoo, February 2024; Outlook.com, May 2025), derived
//! from the other groups' findings, matched by their typed [`Check`], plus the sample message
//! itself. These shared `bulk.*` rows are what the gate blocks on; the per-provider rows in
//! [`super::providers`] are derived from the same [`States`] and name these rows as the ones
//! enforcing them.

use super::finding::{Check, Finding, Group, Severity};
use super::{Inputs, signed_headers};

/// The worst severity among findings of these checks (`None` when none was reported).
/// A definite failure outranks a temperror here: a row derived from one selector that fails
/// and another whose lookup timed out fails, since the first will not mend by asking again.
fn worst(findings: &[Finding], of: impl Fn(Check) -> bool) -> Option<Severity> {
    findings
        .iter()
        .filter(|f| of(f.check))
        .map(|f| f.severity)
        .max_by_key(|s| s.rank())
}

/// One checklist line: what it says when it holds, when it does not, and the fix.
struct Item {
    check: Check,
    yes: &'static str,
    no: &'static str,
    fix: &'static str,
}

impl Item {
    /// The line for `state`, the worst severity of what it derives from: an info is a pass,
    /// nothing reported is a fail.
    fn judge(&self, state: Option<Severity>, campaign: &str) -> Finding {
        let sev = match state {
            Some(Severity::Pass) | Some(Severity::Info) => Severity::Pass,
            Some(Severity::Warn) => Severity::Warn,
            Some(Severity::TempError) => Severity::TempError,
            Some(Severity::Fail) | None => Severity::Fail,
        };
        let message = if sev == Severity::Pass {
            self.yes
        } else {
            self.no
        };
        let f = Finding::new(self.check, sev, campaign, message.to_owned());
        if sev == Severity::Pass {
            f
        } else {
            f.fix(self.fix.to_owned())
        }
    }
}

const SPF: Item = Item {
    check: Check::BulkSpf,
    yes: "SPF is published and passes for every relay (or cannot be checked without their addresses)",
    no: "SPF does not pass",
    fix: "see the SPF findings",
};
const DKIM: Item = Item {
    check: Check::BulkDkim,
    yes: "DKIM signatures verify through DNS",
    no: "DKIM does not verify",
    fix: "see the DKIM findings",
};
const DMARC: Item = Item {
    check: Check::BulkDmarc,
    yes: "a DMARC record exists (p=none or stronger)",
    no: "no usable DMARC record",
    fix: "see the DMARC findings",
};
const ALIGNMENT: Item = Item {
    check: Check::BulkAlignment,
    yes: "From aligns with DKIM d= (and SPF where checked)",
    no: "From is not aligned with an authenticated domain",
    fix: "see the DMARC alignment findings",
};
const ONE_CLICK: Item = Item {
    check: Check::BulkOneClick,
    yes: "List-Unsubscribe with an HTTPS URL and List-Unsubscribe-Post (RFC 8058)",
    no: "no one-click unsubscribe: Gmail and Yahoo require it for bulk mail",
    fix: "add [unsubscribe] with an https url and a secret",
};
const UNSUBSCRIBE_SIGNED: Item = Item {
    check: Check::BulkUnsubscribeSigned,
    yes: "the DKIM h= of every signature covers List-Unsubscribe and List-Unsubscribe-Post",
    no: "a DKIM signature does not cover the List-Unsubscribe headers; RFC 8058 requires it",
    fix: "sign List-Unsubscribe and List-Unsubscribe-Post",
};
/// The bulk-sender threshold of Gmail, Yahoo and Outlook.com: 5,000 messages a day.
pub const BULK_RECIPIENTS: u64 = 5_000;

const LIST_ID: Item = Item {
    check: Check::BulkListId,
    yes: "the message carries List-Id (RFC 2919), covered by DKIM h=",
    no: "no List-Id: providers group and rate bulk mail by it (RFC 2919)",
    fix: "set [campaign] list_id = \"Name <label.your-domain>\"",
};
const VISIBLE_UNSUBSCRIBE: Item = Item {
    check: Check::BulkVisibleUnsubscribe,
    yes: "the body shows the unsubscribe link",
    no: "the body has no visible unsubscribe link",
    fix: "put {{unsubscribe_url}} in the text and HTML templates",
};

/// What the checklist and the per-provider rows derive from: the worst severity of each
/// requirement's source findings (`None`: nothing was reported, which is a fail).
#[derive(Debug, Clone, Copy)]
pub struct States {
    pub spf: Option<Severity>,
    pub dkim: Option<Severity>,
    pub dmarc: Option<Severity>,
    pub alignment: Option<Severity>,
    pub one_click: Option<Severity>,
    pub unsubscribe_signed: Option<Severity>,
    pub visible_unsubscribe: Option<Severity>,
    /// Forward-confirmed reverse DNS: a pass, a fail, a temperror, or info when the sending
    /// addresses are unknown.
    pub ptr: Option<Severity>,
    /// The relay's TLS: info when it was not probed.
    pub tls: Option<Severity>,
    /// 5,000 recipients or more: bulk by Gmail's, Yahoo's and Microsoft's count.
    pub bulk: bool,
}

#[cfg(test)]
impl States {
    /// Every source passing: the tests' starting point, changed one field at a time.
    pub fn passing(bulk: bool) -> States {
        let pass = Some(Severity::Pass);
        States {
            spf: pass,
            dkim: pass,
            dmarc: pass,
            alignment: pass,
            one_click: pass,
            unsubscribe_signed: pass,
            visible_unsubscribe: pass,
            ptr: pass,
            tls: pass,
            bulk,
        }
    }
}

impl States {
    pub fn new(findings: &[Finding], input: &Inputs<'_>) -> States {
        let worst_of = |checks: &[Check]| worst(findings, |c| checks.contains(&c));
        // SPF: the record's state, or the relay's verdict once the record passes.
        let spf = match (worst_of(&[Check::SpfRecord]), worst_of(&[Check::SpfRelay])) {
            (Some(Severity::Pass), Some(s)) => Some(s),
            (s, _) => s,
        };
        let signed = signed_headers(input.sample);
        let covered = ["list-unsubscribe", "list-unsubscribe-post"]
            .iter()
            .all(|h| signed.iter().all(|hs| hs.iter().any(|x| x == h)));
        let bulk = input.recipients >= BULK_RECIPIENTS;
        let visible = input.unsubscribe_url.is_some() && input.visible_unsubscribe;
        States {
            spf,
            dkim: worst(findings, |c| c.group() == Group::Dkim),
            dmarc: worst_of(&[Check::DmarcRecord]),
            alignment: worst_of(&[Check::DmarcAlignDkim, Check::DmarcAlignSpf]),
            one_click: Some(pass_or(input.unsubscribe_url.is_some(), Severity::Fail)),
            unsubscribe_signed: Some(pass_or(covered && !signed.is_empty(), Severity::Fail)),
            // Gmail and Yahoo require the visible link of bulk senders; below that it is advice.
            visible_unsubscribe: Some(pass_or(
                visible,
                if bulk { Severity::Fail } else { Severity::Warn },
            )),
            // dns.fcrdns warns (DNS hygiene never blocks); Gmail and Yahoo require it.
            ptr: Some(ptr_state(findings)),
            tls: worst(findings, |c| c.group() == Group::Tls),
            bulk,
        }
    }
}

/// `dns.fcrdns` as a requirement: its definite failure is a warning (hygiene never blocks),
/// which still outranks a temperror for another address, as a fail does in [`worst`]; info
/// when nothing was checked.
fn ptr_state(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .filter(|f| f.check == Check::DnsFcrdns)
        .map(|f| match f.severity {
            Severity::Warn => Severity::Fail,
            s => s,
        })
        .max_by_key(|s| s.rank())
        .unwrap_or(Severity::Info)
}

fn pass_or(ok: bool, otherwise: Severity) -> Severity {
    if ok { Severity::Pass } else { otherwise }
}

/// The checklist, in the order it is reported, and the states it was judged from (the
/// per-provider rows are derived from the same).
pub fn checklist(findings: &[Finding], input: &Inputs<'_>) -> (Vec<Finding>, States) {
    let campaign = input.campaign.id.as_str();
    let st = States::new(findings, input);
    let out: Vec<Finding> = [
        (SPF, st.spf),
        (DKIM, st.dkim),
        (DMARC, st.dmarc),
        (ALIGNMENT, st.alignment),
        (ONE_CLICK, st.one_click),
        (UNSUBSCRIBE_SIGNED, st.unsubscribe_signed),
        (VISIBLE_UNSUBSCRIBE, st.visible_unsubscribe),
    ]
    .iter()
    .map(|(item, state)| item.judge(*state, campaign))
    .chain([list_id(input), ptr(&st, campaign)])
    .collect();
    (out, st)
}

/// `bulk.ptr`: Gmail and Yahoo require forward-confirmed reverse DNS of every sender. A
/// failure blocks; a lookup that failed is a temperror enforced as `dns.fcrdns` is (not
/// blocking: the reverse zone is the address owner's, not a record the user can fix).
fn ptr(st: &States, campaign: &str) -> Finding {
    if st.ptr == Some(Severity::Info) {
        return Finding::new(
            Check::BulkPtr,
            Severity::Info,
            campaign,
            "the sending addresses are not known, so reverse DNS was not checked (see dns.fcrdns)"
                .into(),
        );
    }
    let mut f = PTR.judge(st.ptr, campaign);
    if f.severity == Severity::TempError {
        f.enforced_by = vec![Check::DnsFcrdns.id()];
    }
    f
}

const PTR: Item = Item {
    check: Check::BulkPtr,
    yes: "every sending address has reverse DNS that resolves back to it",
    no: "a sending address has no forward-confirmed reverse DNS: Gmail and Yahoo require it of every sender",
    fix: "ask the owner of the address (your relay provider) for a PTR whose name resolves back to it; see dns.fcrdns",
};

/// List-Id: a pass when set; without it a warning for a bulk campaign (Gmail counts 5,000
/// messages a day as bulk) and advice below that.
fn list_id(input: &Inputs<'_>) -> Finding {
    let id = input.campaign.id.as_str();
    if input.campaign.list_id.is_some() {
        return Finding::new(
            Check::BulkListId,
            Severity::Pass,
            id,
            LIST_ID.yes.to_owned(),
        );
    }
    let (sev, scale) = if input.recipients >= BULK_RECIPIENTS {
        (Severity::Warn, "a bulk campaign")
    } else {
        (Severity::Info, "not bulk at this size, but recommended")
    };
    Finding::new(
        Check::BulkListId,
        sev,
        id,
        format!("{} ({scale})", LIST_ID.no),
    )
    .fix(LIST_ID.fix.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ptr(ptr: Severity) -> States {
        States {
            ptr: Some(ptr),
            ..States::passing(false)
        }
    }

    #[test]
    fn reverse_dns_blocks_when_missing_but_not_when_its_lookup_failed() {
        let missing = ptr(&with_ptr(Severity::Fail), "c");
        assert_eq!(missing.severity, Severity::Fail);
        assert!(missing.blocks());
        let unknown = ptr(&with_ptr(Severity::TempError), "c");
        assert_eq!(unknown.severity, Severity::TempError);
        assert!(!unknown.blocks());
        assert_eq!(unknown.enforced_by, ["dns.fcrdns"]);
        let unchecked = ptr(&with_ptr(Severity::Info), "c");
        assert_eq!(unchecked.severity, Severity::Info);
    }

    /// One address without a PTR (dns.fcrdns warns) and another whose lookup failed: the
    /// requirement is not met, whatever the second lookup would say, so bulk.ptr fails.
    #[test]
    fn a_missing_ptr_outranks_another_address_whose_lookup_failed() {
        let fcrdns = |ip: &str, sev| Finding::new(Check::DnsFcrdns, sev, ip, String::new());
        let missing = fcrdns("192.0.2.1", Severity::Warn);
        let failed = fcrdns("192.0.2.2", Severity::TempError);
        let passed = fcrdns("192.0.2.3", Severity::Pass);
        for order in [[&missing, &failed], [&failed, &missing]] {
            let findings: Vec<Finding> = order.into_iter().cloned().collect();
            assert_eq!(ptr_state(&findings), Severity::Fail);
        }
        assert_eq!(
            ptr_state(&[failed.clone(), passed.clone()]),
            Severity::TempError
        );
        assert_eq!(ptr_state(&[passed]), Severity::Pass);
        assert_eq!(ptr_state(&[]), Severity::Info);
        let missing_and_failed = States {
            ptr: Some(ptr_state(&[missing, failed])),
            ..States::passing(false)
        };
        assert!(ptr(&missing_and_failed, "c").blocks());
    }
}
