//! The preflight audit: proves, before the first message leaves, that the sending domain will
//! authenticate (SPF, DKIM, DMARC and alignment), that the relay's TLS is sound, and that the
//! bulk-sender requirements of the large mailbox providers are met.
//!
//! Findings are values with a severity, the evidence as seen and the fix; `check` prints
//! them, `send` stops on blocking ones unless the user overrides them by id.

pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod hygiene;
pub mod records;
pub mod render;
pub mod spf;
pub mod tls;
pub mod zone;

use serde::Serialize;

use crate::config::{Campaign, TransportConfig};
use crate::message::dkim::DkimKeyPair;
use dns::Dns;
use spf::RelayIps;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Pass,
    Info,
    Warn,
    Fail,
    /// A DNS failure: the check could not be made. Never a pass.
    #[serde(rename = "temperror")]
    TempError,
}

impl Severity {
    /// Severities that block `send` (see [`Finding::blocks`]).
    pub fn blocks(self) -> bool {
        matches!(self, Severity::Fail | Severity::TempError)
    }

    pub fn label(self) -> &'static str {
        match self {
            Severity::Pass => "PASS",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
            Severity::TempError => "TEMPERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Spf,
    Dkim,
    Dmarc,
    Tls,
    Dns,
    Bulk,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::Spf => "SPF",
            Group::Dkim => "DKIM",
            Group::Dmarc => "DMARC",
            Group::Tls => "Relay TLS",
            Group::Dns => "DNS hygiene",
            Group::Bulk => "Bulk-sender requirements (Gmail, Yahoo, Microsoft)",
        }
    }
}

/// One finding. `id` is stable: it is what `--override` names and what JSON consumers match.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub group: Group,
    pub severity: Severity,
    /// What it is about: a domain, a selector, a host.
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(
        group: Group,
        id: &'static str,
        severity: Severity,
        subject: impl Into<String>,
        message: String,
    ) -> Finding {
        Finding {
            id,
            group,
            severity,
            subject: subject.into(),
            message,
            evidence: None,
            fix: None,
        }
    }

    /// Fails and temperrors block `send`, except in DNS hygiene: MX, reverse DNS and MTA-STS
    /// matter for reputation but do not decide whether mail authenticates.
    pub fn blocks(&self) -> bool {
        self.severity.blocks() && self.group != Group::Dns
    }

    pub fn evidence(mut self, e: String) -> Finding {
        self.evidence = Some(e);
        self
    }

    pub fn fix(mut self, f: String) -> Finding {
        self.fix = Some(f);
        self
    }
}

/// A finished audit.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub campaign: String,
    pub from_domain: String,
    pub envelope_domain: String,
    pub findings: Vec<Finding>,
    /// Distinct (name, type) questions asked: each is asked once per run.
    pub dns_queries: usize,
    /// The DKIM key records found, for verifying messages against them.
    #[serde(skip)]
    pub dkim_records: Vec<(String, dns::Txt)>,
}

impl Audit {
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.blocks())
    }

    /// Blocking findings whose id the user did not override.
    pub fn unresolved<'a>(&'a self, overrides: &'a [String]) -> Vec<&'a Finding> {
        self.blocking()
            .filter(|f| !overrides.iter().any(|o| o == f.id))
            .collect()
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

/// What the audit needs besides DNS.
pub struct Inputs<'a> {
    pub campaign: &'a Campaign,
    pub keys: &'a [DkimKeyPair],
    /// One message exactly as `send` would produce it, signed.
    pub sample: &'a [u8],
    /// Whether the sample's body shows its unsubscribe link (the content lint decides, with
    /// a real HTML parser, so escaped URLs in href attributes count).
    pub visible_unsubscribe: bool,
    /// The sample's unsubscribe URL, if any.
    pub unsubscribe_url: Option<String>,
    pub sending_ips: Vec<std::net::IpAddr>,
    /// Skip connecting to the relay (e.g. `send --dry-run` with an outbox).
    pub probe_tls: bool,
    /// For certificate expiry.
    pub now: std::time::SystemTime,
}

/// Runs every check. Independent checks run concurrently; the DNS cache makes shared names
/// cost one query.
pub async fn run(dns: &Dns, input: &Inputs<'_>) -> Audit {
    let c = input.campaign;
    let from_domain = c.sender_domain().to_ascii_lowercase();
    let envelope_domain = c.return_path.domain().to_ascii_lowercase();
    let relay_ips = relay_ips(dns, input).await;

    let (spf_f, dkim_f, dmarc_f, tls_f, dns_f) = tokio::join!(
        spf::audit(dns, &envelope_domain, &relay_ips),
        dkim::audit(dns, input.keys, input.sample),
        dmarc::audit(dns, &from_domain, &envelope_domain, input.keys),
        async {
            match &c.transport {
                TransportConfig::Smtp(s) if input.probe_tls => tls::audit(s, input.now).await,
                TransportConfig::Smtp(s) => vec![Finding::new(
                    Group::Tls,
                    "tls.relay",
                    Severity::Info,
                    &s.host,
                    "not probed in this run".into(),
                )],
                TransportConfig::Outbox { dir } => vec![Finding::new(
                    Group::Tls,
                    "tls.relay",
                    Severity::Info,
                    dir.display().to_string(),
                    "the outbox transport writes files; there is no relay to probe".into(),
                )],
            }
        },
        hygiene::audit(dns, &from_domain, &envelope_domain, &relay_ips),
    );
    let mut findings = Vec::new();
    findings.extend(spf_f);
    let (dkim_f, dkim_records) = dkim_f;
    findings.extend(dkim_f);
    findings.extend(dmarc_f);
    findings.extend(tls_f);
    findings.extend(dns_f);
    let bulk = bulk_checklist(&findings, input);
    findings.extend(bulk);
    Audit {
        campaign: c.id.clone(),
        from_domain,
        envelope_domain,
        findings,
        dns_queries: dns.queries(),
        dkim_records,
    }
}

async fn relay_ips(dns: &Dns, input: &Inputs<'_>) -> RelayIps {
    sending_addresses(dns, input.campaign, &input.sending_ips).await
}

/// The relay's sending addresses: configured, or resolved from the relay host.
pub async fn sending_addresses(
    dns: &Dns,
    campaign: &Campaign,
    configured: &[std::net::IpAddr],
) -> RelayIps {
    if !configured.is_empty() {
        return RelayIps::Known {
            ips: configured.to_vec(),
            source: "preflight.sending_ips".into(),
        };
    }
    match &campaign.transport {
        TransportConfig::Outbox { .. } => {
            RelayIps::Unknown("the outbox transport has no relay".into())
        }
        TransportConfig::Smtp(s) if crate::config::is_loopback(&s.host) => {
            RelayIps::Unknown(format!(
                "{} is this machine; the relay's public address is not known",
                s.host
            ))
        }
        TransportConfig::Smtp(s) => {
            if let Ok(ip) = s.host.parse::<std::net::IpAddr>() {
                return RelayIps::Known {
                    ips: vec![ip],
                    source: "smtp.host".into(),
                };
            }
            match dns.ips(&s.host).await {
                Ok(ips) if !ips.is_empty() => RelayIps::Known {
                    ips,
                    source: format!(
                        "resolved from {}; a relay may send from other addresses",
                        s.host
                    ),
                },
                Ok(_) => RelayIps::Unknown(format!("{} has no A/AAAA record", s.host)),
                Err(e) => RelayIps::Unknown(format!("resolving {} failed: {e}", s.host)),
            }
        }
    }
}

/// The Gmail/Yahoo bulk-sender list (February 2024) as one checklist, derived from the
/// findings above plus the message itself.
fn bulk_checklist(findings: &[Finding], input: &Inputs<'_>) -> Vec<Finding> {
    let worst = |prefix: &str| {
        findings
            .iter()
            .filter(|f| f.id.starts_with(prefix))
            .map(|f| f.severity)
            .max()
    };
    let item = |id: &'static str, ok: Option<Severity>, yes: &str, no: &str, fix: &str| {
        let sev = match ok {
            Some(Severity::Pass) | Some(Severity::Info) => Severity::Pass,
            Some(Severity::Warn) => Severity::Warn,
            Some(Severity::TempError) => Severity::TempError,
            Some(Severity::Fail) | None => Severity::Fail,
        };
        let f = Finding::new(
            Group::Bulk,
            id,
            sev,
            &input.campaign.id,
            if sev == Severity::Pass { yes } else { no }.to_owned(),
        );
        if sev == Severity::Pass {
            f
        } else {
            f.fix(fix.to_owned())
        }
    };
    let spf_state = match (worst("spf.record"), worst("spf.relay")) {
        (Some(Severity::Pass), Some(s)) => Some(s),
        (s, _) => s,
    };
    let align = worst("dmarc.align");
    let mut out = vec![
        item(
            "bulk.spf",
            spf_state,
            "SPF is published and passes for the relay (or cannot be checked without its address)",
            "SPF does not pass",
            "see the SPF findings",
        ),
        item(
            "bulk.dkim",
            worst("dkim."),
            "DKIM signatures verify through DNS",
            "DKIM does not verify",
            "see the DKIM findings",
        ),
        item(
            "bulk.dmarc",
            worst("dmarc.record").map(|s| {
                if s == Severity::Pass {
                    Severity::Pass
                } else {
                    s
                }
            }),
            "a DMARC record exists (p=none or stronger)",
            "no usable DMARC record",
            "see the DMARC findings",
        ),
        item(
            "bulk.alignment",
            align,
            "From aligns with DKIM d= (and SPF where checked)",
            "From is not aligned with an authenticated domain",
            "see the DMARC alignment findings",
        ),
    ];
    let one_click = input
        .unsubscribe_url
        .as_deref()
        .map(|_| Severity::Pass)
        .or(Some(Severity::Fail));
    out.push(item(
        "bulk.one-click",
        one_click,
        "List-Unsubscribe with an HTTPS URL and List-Unsubscribe-Post (RFC 8058)",
        "no one-click unsubscribe: Gmail and Yahoo require it for bulk mail",
        "add [unsubscribe] with an https url and a secret",
    ));
    let signed = signed_headers(input.sample);
    let covered = ["list-unsubscribe", "list-unsubscribe-post"]
        .iter()
        .all(|h| signed.iter().all(|hs| hs.iter().any(|x| x == h)));
    out.push(item(
        "bulk.unsubscribe-signed",
        Some(if covered && !signed.is_empty() {
            Severity::Pass
        } else {
            Severity::Fail
        }),
        "the DKIM h= of every signature covers List-Unsubscribe and List-Unsubscribe-Post",
        "a DKIM signature does not cover the List-Unsubscribe headers; RFC 8058 requires it",
        "sign List-Unsubscribe and List-Unsubscribe-Post",
    ));
    let visible = input.unsubscribe_url.is_some() && input.visible_unsubscribe;
    out.push(item(
        "bulk.visible-unsubscribe",
        Some(if visible {
            Severity::Pass
        } else {
            Severity::Warn
        }),
        "the body shows the unsubscribe link",
        "the body has no visible unsubscribe link",
        "put {{unsubscribe_url}} in the text and HTML templates",
    ));
    out
}

/// The lowercase `h=` list of every DKIM-Signature in `message`.
pub fn signed_headers(message: &[u8]) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("dkim-signature:"))
        .map(|l| {
            l.split(';')
                .filter_map(|tag| tag.trim().strip_prefix("h="))
                .flat_map(|h| {
                    h.split(':')
                        .map(|x| x.trim().to_ascii_lowercase())
                        .collect::<Vec<_>>()
                })
                .filter(|x| !x.is_empty())
                .collect()
        })
        .collect()
}
