//! The preflight audit: proves, before the first message leaves, that the sending domain will
//! authenticate (SPF, DKIM, DMARC and alignment), that every relay's TLS is sound and its
//! sending addresses pass SPF, and that the bulk-sender requirements of the large mailbox
//! providers are met.
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

use std::net::IpAddr;

use crate::config::{Campaign, TransportConfig};
use crate::dns::Dns;
use crate::message::dkim::DkimKeyPair;
use spf::{Relay, RelayIps};

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
    /// `preflight.sending_ips`: the sending addresses of every relay that lists none itself.
    pub sending_ips: Vec<IpAddr>,
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
    let relays = relay_addresses(dns, c, &input.sending_ips).await;
    let relay_ips = RelayIps::union(&relays);

    let (spf_f, dkim_f, dmarc_f, dmarcbis_f, tls_f, dns_f) = tokio::join!(
        spf::audit(dns, &envelope_domain, &relays, c.verp),
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
    let (bulk, states) = bulk::checklist(&findings, input);
    let per_provider = providers::rows(&states, &findings, &c.id);
    findings.extend(bulk);
    findings.extend(per_provider);
    Audit {
        campaign: c.id.clone(),
        from_domain,
        envelope_domain,
        findings,
        dns_queries: dns.queries(),
        dkim_records,
    }
}

/// Each relay of the campaign, by name, with the addresses it sends from: its own
/// `sending_ips`, else `preflight.sending_ips` (`default`), else its host's addresses
/// (resolved, a guess; a host on this machine leaves them unknown). Without an `[smtp]`
/// table (the outbox) one unnamed relay stands for the one the campaign will use.
pub async fn relay_addresses(dns: &Dns, campaign: &Campaign, default: &[IpAddr]) -> Vec<Relay> {
    let configured = |ips: &[IpAddr], source: &str| RelayIps::Known {
        ips: ips.to_vec(),
        source: source.into(),
        configured: true,
    };
    if let TransportConfig::Outbox { .. } = campaign.transport {
        let ips = if default.is_empty() {
            RelayIps::Unknown("the outbox transport has no relay".into())
        } else {
            configured(default, "preflight.sending_ips")
        };
        return vec![Relay { name: None, ips }];
    }
    let mut out = Vec::with_capacity(campaign.relays.len());
    for r in &campaign.relays {
        let ips = if !r.sending_ips.is_empty() {
            configured(&r.sending_ips, "its sending_ips")
        } else if !default.is_empty() {
            configured(default, "preflight.sending_ips")
        } else {
            resolved(dns, &r.smtp.host).await
        };
        out.push(Relay {
            name: Some(r.name.clone()),
            ips,
        });
    }
    out
}

/// Every relay's sending addresses together: for the records `mailshot dns` proposes and
/// the reverse-DNS checks, which are about the addresses, not about one relay.
pub async fn sending_addresses(dns: &Dns, campaign: &Campaign, default: &[IpAddr]) -> RelayIps {
    RelayIps::union(&relay_addresses(dns, campaign, default).await)
}

/// A relay host's addresses, as a guess at where it sends from.
async fn resolved(dns: &Dns, host: &str) -> RelayIps {
    if crate::config::is_loopback(host) {
        return RelayIps::Unknown(format!(
            "{host} is this machine; the relay's public address is not known"
        ));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return RelayIps::Known {
            ips: vec![ip],
            source: "smtp.host".into(),
            configured: false,
        };
    }
    match dns.ips(host).await {
        Ok(ips) if !ips.is_empty() => RelayIps::Known {
            ips,
            source: format!("resolved from {host}; a relay may send from other addresses"),
            configured: false,
        },
        Ok(_) => RelayIps::Unknown(format!("{host} has no A/AAAA record")),
        Err(e) => RelayIps::Unknown(format!("resolving {host} failed: {e}")),
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
