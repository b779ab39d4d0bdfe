//! The preflight audit: proves, before the first message leaves, that the sending domain will
//! authenticate (SPF, DKIM, DMARC and alignment), that the relay's TLS is sound, and that the
//! bulk-sender requirements of the large mailbox providers are met.
//!
//! Findings are values with a severity, the evidence as seen and the fix; `check` prints
//! them, `send` stops on blocking ones unless the user overrides them by id. The ids, the
//! finding and audit types live in [`finding`]; the bulk-sender checklist, derived from the
//! other groups' findings, in [`bulk`]; each group's checks in its own module.

pub mod bulk;
pub mod dkim;
pub mod dmarc;
pub mod dmarcbis;
pub mod finding;
pub mod hygiene;
pub mod providers;
pub mod records;
pub mod render;
pub mod spf;
pub mod tls;

use crate::config::{Campaign, TransportConfig};
use crate::dns::Dns;
use crate::message::dkim::DkimKeyPair;
use spf::RelayIps;

pub use finding::{Audit, Check, Finding, Group, Severity};

/// What the audit needs besides DNS.
pub struct Inputs<'a> {
    pub campaign: &'a Campaign,
    /// Valid recipients: from 5,000 a campaign is bulk by Gmail's definition.
    pub recipients: u64,
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

    let (spf_f, dkim_f, dmarc_f, dmarcbis_f, tls_f, dns_f) = tokio::join!(
        spf::audit(dns, &envelope_domain, &relay_ips),
        dkim::audit(dns, input.keys, input.sample),
        dmarc::audit(dns, &from_domain, &envelope_domain, input.keys),
        dmarcbis::audit(dns, &from_domain),
        async {
            match &c.transport {
                // Every relay of several `[[smtp]]` tables gets its own probe.
                TransportConfig::Smtp(_) if input.probe_tls && c.relays.len() > 1 => {
                    let mut all = Vec::new();
                    for r in &c.relays {
                        all.extend(tls::audit(&r.smtp, input.now).await);
                    }
                    all
                }
                TransportConfig::Smtp(s) if input.probe_tls => tls::audit(s, input.now).await,
                TransportConfig::Smtp(s) => vec![Finding::new(
                    Check::TlsRelay,
                    Severity::Info,
                    &s.host,
                    "not probed in this run".into(),
                )],
                TransportConfig::Outbox { dir } => vec![Finding::new(
                    Check::TlsRelay,
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
    findings.extend(dmarcbis_f);
    findings.extend(tls_f);
    findings.extend(dns_f);
    let bulk = bulk::checklist(&findings, input);
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
