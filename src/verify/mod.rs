//! `mailshot verify`: grades a message as a receiver saw it. It reads what the receiver
//! concluded (Authentication-Results, Received), recomputes DKIM, SPF and DMARC through the
//! injected DNS, checks the message's form and content, and grades it against the blocking
//! requirements of Gmail, Yahoo and Microsoft. One message does not show the campaign's size,
//! so it is graded as bulk mail ([`GRADED_AS`]): SPF and DKIM must both pass for all three.
//!
//! - [`headers`]: the header block, Authentication-Results (RFC 8601) and Received.
//! - [`auth`]: the local recomputation.
//! - [`checks`]: authentication items, and where the receiver and the local result disagree.
//! - [`format`]: form and content lint.
//! - [`grade`]: per-provider verdicts, human and JSON output.

pub mod auth;
pub mod checks;
pub mod format;
pub mod grade;
pub mod headers;

use std::net::IpAddr;

use serde::Serialize;

use crate::dns::Dns;
use crate::preflight::providers;
use headers::{AuthResults, Hop};

/// A mailbox provider whose bulk-sender rules the grade applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Gmail,
    Yahoo,
    Microsoft,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Gmail, Provider::Yahoo, Provider::Microsoft];

    pub fn name(self) -> &'static str {
        self.rules().name()
    }

    /// The page whose rules the grade applies: the same one `check`'s provider rows cite.
    pub fn page(self) -> &'static str {
        self.rules().page()
    }

    fn rules(self) -> providers::Provider {
        match self {
            Provider::Gmail => providers::Provider::Gmail,
            Provider::Yahoo => providers::Provider::Yahoo,
            Provider::Microsoft => providers::Provider::Microsoft,
        }
    }
}

/// What a single message is graded as, said in every report.
pub const GRADED_AS: &str = "bulk mail (5,000+ a day): one message does not show the campaign's size, so each provider's bulk-sender rules apply, SPF and DKIM both";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Info,
    Warn,
    Fail,
    /// A DNS failure: not known, never a pass.
    #[serde(rename = "temperror")]
    TempError,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::TempError => "TEMPERROR",
        }
    }
}

/// One graded item. `blocking` names the providers for which a fail (or temperror) of this
/// item blocks; for the others it is a warning.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: &'static str,
    pub status: Status,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocking: Vec<Provider>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Item {
    pub fn new(id: &'static str, status: Status, message: String) -> Item {
        Item {
            id,
            status,
            message,
            blocking: Vec::new(),
            evidence: None,
            fix: None,
        }
    }

    pub fn blocking(mut self, providers: &[Provider]) -> Item {
        self.blocking = providers.to_vec();
        self
    }

    pub fn evidence(mut self, e: String) -> Item {
        self.evidence = Some(e);
        self
    }

    pub fn fix(mut self, f: String) -> Item {
        self.fix = Some(f);
        self
    }

    /// True when this item blocks delivery to `p`.
    pub fn blocks(&self, p: Provider) -> bool {
        matches!(self.status, Status::Fail | Status::TempError) && self.blocking.contains(&p)
    }
}

/// What the receiver recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiverView {
    /// The topmost Authentication-Results field: the receiver's own.
    pub results: Option<AuthResults>,
    pub hop: Option<Hop>,
    pub connecting_ip: Option<IpAddr>,
    /// The envelope sender: Return-Path, else the receiver's smtp.mailfrom.
    pub mailfrom: Option<String>,
}

impl ReceiverView {
    /// The receiver's result for `method` (the first one), e.g. "pass".
    pub fn result(&self, method: &str) -> Option<&headers::Outcome> {
        self.results
            .as_ref()?
            .outcomes
            .iter()
            .find(|o| o.method == method)
    }
}

/// One message's grade.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where it came from: a file, or an IMAP mailbox and UID.
    pub source: String,
    /// Always [`GRADED_AS`].
    pub graded_as: &'static str,
    pub from_domain: Option<String>,
    pub receiver: ReceiverView,
    pub items: Vec<Item>,
    pub grade: Vec<grade::ProviderGrade>,
}

impl Report {
    /// True when some provider's blocking item fails.
    pub fn blocked(&self) -> bool {
        self.grade.iter().any(|g| !g.passes)
    }
}

/// Grades one raw message.
pub async fn verify(dns: &Dns, source: &str, raw: &[u8]) -> Report {
    let (head, _) = headers::split(raw);
    let fields = headers::fields(head);
    let receiver = receiver_view(&fields);
    let from_domain = from_domain(&fields);
    let mut items =
        checks::authentication(dns, raw, &receiver, from_domain.as_deref(), &fields).await;
    items.extend(format::check(raw, head, &fields));
    let grade = grade::grade(&items);
    Report {
        source: source.to_owned(),
        graded_as: GRADED_AS,
        from_domain,
        receiver,
        items,
        grade,
    }
}

fn receiver_view(fields: &[(String, String)]) -> ReceiverView {
    let results: Vec<AuthResults> = headers::all(fields, "Authentication-Results")
        .into_iter()
        .map(headers::auth_results)
        .collect();
    // The receiver's own statement of the address first: Received chains often start with
    // internal hops.
    let stated = headers::ip_from_results(&results, &headers::all(fields, "Received-SPF"));
    let hop = headers::receiver_hop(&headers::all(fields, "Received"), stated);
    let connecting_ip = stated.or_else(|| hop.as_ref().and_then(|h| h.ip));
    let first = results.into_iter().next();
    let return_path = headers::all(fields, "Return-Path")
        .first()
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|v| !v.is_empty());
    let mailfrom = return_path.or_else(|| {
        first
            .as_ref()?
            .outcomes
            .iter()
            .find(|o| o.method == "spf")?
            .prop("smtp.mailfrom")
            .map(str::to_owned)
    });
    ReceiverView {
        results: first,
        hop,
        connecting_ip,
        mailfrom,
    }
}

/// The domain of the (first) From address.
fn from_domain(fields: &[(String, String)]) -> Option<String> {
    let v = headers::all(fields, "From").into_iter().next()?;
    let addr = match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v,
    };
    let (_, d) = addr.trim().rsplit_once('@')?;
    Some(d.trim().trim_end_matches('.').to_ascii_lowercase())
}

/// The domain part of an address or a bare domain.
pub fn domain_of(s: &str) -> String {
    s.rsplit_once('@')
        .map_or(s, |(_, d)| d)
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}
