//! The Gmail/Yahoo bulk-sender list (February 2024) as one checklist, derived from the other
//! groups' findings, matched by their typed [`Check`], plus the sample message itself.

use super::finding::{Check, Finding, Group, Severity};
use super::{Inputs, signed_headers};

/// The worst severity among findings of these checks (`None` when none was reported).
fn worst(findings: &[Finding], of: impl Fn(Check) -> bool) -> Option<Severity> {
    findings
        .iter()
        .filter(|f| of(f.check))
        .map(|f| f.severity)
        .max()
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
    yes: "SPF is published and passes for the relay (or cannot be checked without its address)",
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
/// Gmail's bulk-sender threshold: 5,000 messages a day to its users.
const BULK_RECIPIENTS: u64 = 5_000;

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

/// The checklist, in the order it is reported.
pub fn checklist(findings: &[Finding], input: &Inputs<'_>) -> Vec<Finding> {
    let campaign = input.campaign.id.as_str();
    let worst_of = |checks: &[Check]| worst(findings, |c| checks.contains(&c));
    // SPF: the record's state, or the relay's verdict once the record passes.
    let spf = match (worst_of(&[Check::SpfRecord]), worst_of(&[Check::SpfRelay])) {
        (Some(Severity::Pass), Some(s)) => Some(s),
        (s, _) => s,
    };
    let dkim = worst(findings, |c| c.group() == Group::Dkim);
    let align = worst_of(&[Check::DmarcAlignDkim, Check::DmarcAlignSpf]);
    let one_click = Some(match input.unsubscribe_url {
        Some(_) => Severity::Pass,
        None => Severity::Fail,
    });
    let signed = signed_headers(input.sample);
    let covered = ["list-unsubscribe", "list-unsubscribe-post"]
        .iter()
        .all(|h| signed.iter().all(|hs| hs.iter().any(|x| x == h)));
    let unsubscribe_signed = Some(if covered && !signed.is_empty() {
        Severity::Pass
    } else {
        Severity::Fail
    });
    let visible = Some(
        if input.unsubscribe_url.is_some() && input.visible_unsubscribe {
            Severity::Pass
        } else {
            Severity::Warn
        },
    );
    [
        (SPF, spf),
        (DKIM, dkim),
        (DMARC, worst_of(&[Check::DmarcRecord])),
        (ALIGNMENT, align),
        (ONE_CLICK, one_click),
        (UNSUBSCRIBE_SIGNED, unsubscribe_signed),
        (VISIBLE_UNSUBSCRIBE, visible),
    ]
    .iter()
    .map(|(item, state)| item.judge(*state, campaign))
    .chain([list_id(input)])
    .collect()
}

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
