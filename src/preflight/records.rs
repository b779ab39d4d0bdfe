//! The records a campaign needs, as a zone fragment: SPF (keeping a published record and
//! adding the relay within the lookup budget), DKIM for every key, DMARC (a first policy, or
//! the next step), and optionally TLS-RPT and MTA-STS. `check --zone` reads the output as an
//! overlay, so the records can be audited before they are published.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::spf::{self, RelayIps, SpfLookupError, SpfResult, Walk};
use crate::config::Campaign;
use crate::dns::Dns;
use crate::keygen::{quoted, txt_record};
use crate::message::dkim::DkimKeyPair;

fn term(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("ip4:{ip}"),
        IpAddr::V6(_) => format!("ip6:{ip}"),
    }
}

pub async fn fragment(
    dns: &Dns,
    campaign: &Campaign,
    keys: &[DkimKeyPair],
    relay: &RelayIps,
    tls_reporting: bool,
) -> String {
    let from = campaign.sender_domain().to_ascii_lowercase();
    let envelope = campaign.return_path.domain().to_ascii_lowercase();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "; DNS records for campaign {} (From {from}, envelope {envelope}), by mailshot dns records.\n; Names are absolute; audit them before publishing: mailshot check --zone <this file> campaign.toml\n",
        campaign.id
    );

    spf(dns, &envelope, relay, &mut o).await;
    o.push('\n');

    // DKIM
    let _ = writeln!(
        o,
        "; DKIM: the public half of each configured key, so receivers can verify the signatures."
    );
    for k in keys {
        // Publishing the record of a key mailshot will not sign with would only invite
        // receivers to trust it: the fragment says what to do instead.
        if let Some(r) = k.refused() {
            let _ = writeln!(
                o,
                "; s={} d={}: not published: {} is RSA-{}, which mailshot does not sign with; make a new key with `mailshot dkim keygen --domain {} --selector NEW` and publish the record it prints.",
                k.selector(),
                k.domain(),
                r.path.display(),
                r.bits,
                k.domain()
            );
            continue;
        }
        let _ = writeln!(
            o,
            "{}",
            txt_record(k.selector(), k.domain(), k.public().k(), k.public().p())
        );
    }
    o.push('\n');

    dmarc(dns, &from, &mut o).await;

    if tls_reporting {
        o.push('\n');
        let _ = writeln!(
            o,
            "; TLS-RPT: receivers report TLS problems delivering mail to {from}."
        );
        let _ = writeln!(
            o,
            "_smtp._tls.{from}. 3600 IN TXT {}",
            quoted(&format!("v=TLSRPTv1; rua=mailto:tls-reports@{from}"))
        );
        let _ = writeln!(
            o,
            "; MTA-STS: also serve a policy at https://mta-sts.{from}/.well-known/mta-sts.txt; change id= whenever it changes."
        );
        let _ = writeln!(
            o,
            "_mta-sts.{from}. 3600 IN TXT {}",
            quoted("v=STSv1; id=1")
        );
    }
    o
}

/// The SPF record for the envelope domain: the published one with the relay added, or a new one.
async fn spf(dns: &Dns, envelope: &str, relay: &RelayIps, o: &mut String) {
    let envelope = envelope.to_owned();
    let _ = writeln!(
        o,
        "; SPF for the envelope domain {envelope}: which servers may send its mail."
    );
    let existing = spf::record(dns, &envelope).await;
    match (&existing, relay) {
        (Ok(Some((txt, _))), RelayIps::Known { ips, .. }) => {
            let mut missing = Vec::new();
            for ip in ips {
                if spf::check_host(dns, *ip, envelope.clone(), 0).await != SpfResult::Pass {
                    missing.push(term(ip));
                }
            }
            let mut record = txt.text();
            if missing.is_empty() {
                let _ = writeln!(
                    o,
                    "; The published record already authorizes the relay; kept as it is."
                );
            } else {
                let mut w = Walk::default();
                spf::walk(dns, envelope.clone(), Vec::new(), &mut w).await;
                for t in &missing {
                    record = spf::insert_term(&record, t);
                }
                let _ = writeln!(
                    o,
                    "; Your record, with the relay's addresses added ({}). ip4/ip6 terms cost no DNS lookups: {} of 10 stay used.",
                    missing.join(" "),
                    w.lookups
                );
                if w.lookups > 10 {
                    let _ = writeln!(
                        o,
                        "; WARNING: the record already needs {} lookups, over the limit of 10; replace includes with ip4/ip6 terms.",
                        w.lookups
                    );
                }
            }
            let _ = writeln!(o, "{envelope}. 3600 IN TXT {}", quoted(&record));
        }
        (Ok(Some((txt, _))), RelayIps::Unknown(why)) => {
            let _ = writeln!(
                o,
                "; Your published record, kept. The relay's addresses are unknown ({why}): make sure your provider's include: is in it."
            );
            let _ = writeln!(o, "{envelope}. 3600 IN TXT {}", quoted(&txt.text()));
        }
        (Ok(None), RelayIps::Known { ips, .. }) => {
            let terms: Vec<String> = ips.iter().map(term).collect();
            let _ = writeln!(
                o,
                "; No SPF record yet: authorize the relay's addresses, refuse everyone else."
            );
            let _ = writeln!(
                o,
                "{envelope}. 3600 IN TXT {}",
                quoted(&format!("v=spf1 {} -all", terms.join(" ")))
            );
        }
        (Ok(None), RelayIps::Unknown(why)) => {
            let _ = writeln!(
                o,
                "; No SPF record yet, and the relay's addresses are unknown ({why}).\n; Add your provider's include (e.g. include:_spf.provider.example) before -all, or set preflight.sending_ips."
            );
            let _ = writeln!(o, "{envelope}. 3600 IN TXT {}", quoted("v=spf1 -all"));
        }
        (Err(SpfLookupError::Multiple(recs)), _) => {
            let _ = writeln!(
                o,
                "; {} SPF records are published; receivers treat that as an error. Merge them into one and delete the rest:",
                recs.len()
            );
            let merged = recs.first().map(|t| t.text()).unwrap_or_default();
            let _ = writeln!(o, "{envelope}. 3600 IN TXT {}", quoted(&merged));
        }
        (Err(e), _) => {
            let _ = writeln!(
                o,
                "; The current SPF record could not be read ({e:?}); fix that first."
            );
        }
    }
}

/// The DMARC record: a first monitoring policy, or the next step from the published one.
async fn dmarc(dns: &Dns, from: &str, o: &mut String) {
    let name = format!("_dmarc.{from}");
    let current = dns.txt(&name).await.ok().and_then(|v| {
        v.into_iter()
            .map(|t| t.text())
            .find(|t| t.trim_start().starts_with("v=DMARC1"))
    });
    match current {
        None => {
            let _ = writeln!(
                o,
                "; DMARC: start by monitoring (p=none) with aggregate reports, then tighten as `mailshot dmarc report` shows your mail aligned."
            );
            let _ = writeln!(
                o,
                "{name}. 3600 IN TXT {}",
                quoted(&format!(
                    "v=DMARC1; p=none; rua=mailto:dmarc-reports@{from}"
                ))
            );
        }
        Some(rec) => {
            let p = rec
                .split(';')
                .find_map(|t| {
                    t.trim()
                        .strip_prefix("p=")
                        .map(|v| v.trim().to_ascii_lowercase())
                })
                .unwrap_or_default();
            let next = match p.as_str() {
                "none" => Some("quarantine"),
                "quarantine" => Some("reject"),
                _ => None,
            };
            match next {
                Some(n) => {
                    let stepped = rec
                        .split(';')
                        .map(|t| {
                            if t.trim().starts_with("p=") {
                                format!(" p={n}")
                            } else {
                                t.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(";");
                    let _ = writeln!(
                        o,
                        "; DMARC: the next step from p={p}. Publish it only once `mailshot dmarc report` shows your mail aligned (it states the threshold)."
                    );
                    let _ = writeln!(o, "{name}. 3600 IN TXT {}", quoted(stepped.trim()));
                }
                None => {
                    let _ = writeln!(o, "; DMARC: p={p} is already the strongest policy; kept.");
                    let _ = writeln!(o, "{name}. 3600 IN TXT {}", quoted(&rec));
                }
            }
        }
    }
}
