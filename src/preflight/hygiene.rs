//! DNS hygiene around the sending domains: MX records (receivers check that a sender domain
//! can receive replies and bounces), forward-confirmed reverse DNS of the sending addresses,
//! and MTA-STS / TLS-RPT, which are good practice but not required. A lookup that fails is a
//! temperror here too, never a record to fix.

use super::spf::RelayIps;
use super::{Check, Finding, Severity};
use crate::dns::Dns;

/// The forward half of FCrDNS.
enum Confirmed {
    /// This PTR name resolves back to the address.
    Yes(String),
    /// None does, and at least one lookup failed.
    Unknown(crate::dns::TempError),
    No,
}

/// Whether one of `names` (the PTR answers for `ip`) resolves back to `ip`, through the same
/// resolver as everything else (never this machine's hosts file when a nameserver is named).
async fn confirm(dns: &Dns, ip: std::net::IpAddr, names: &[String]) -> Confirmed {
    let mut failed = None;
    for n in names {
        match dns.ips_of(n, ip.is_ipv4()).await {
            Ok(v) if v.contains(&ip) => return Confirmed::Yes(n.clone()),
            Ok(_) => {}
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Confirmed::No, Confirmed::Unknown)
}

pub async fn audit(dns: &Dns, from: &str, envelope: &str, relay: &RelayIps) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut domains = vec![(from, "From")];
    if envelope != from {
        domains.push((envelope, "envelope"));
    }
    for (domain, role) in domains {
        let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, domain, msg);
        match dns.mx(domain).await {
            Ok(mx) if !mx.is_empty() => out.push(f(Check::DnsMx, Severity::Pass, format!("the {role} domain has MX {}", mx.iter().map(|(p, h)| format!("{p} {h}")).collect::<Vec<_>>().join(", ")))),
            Ok(_) => match dns.ips(domain).await {
                Ok(ips) if !ips.is_empty() => out.push(f(Check::DnsMx, Severity::Warn, format!("the {role} domain has no MX; mail to it falls back to its A/AAAA record")).fix(format!("publish {domain}. MX 10 <your inbound mail host>."))),
                Ok(_) => out.push(f(Check::DnsMx, Severity::Warn, format!("the {role} domain has no MX and no address: replies and bounces cannot reach it, and some receivers reject such senders")).fix(format!("publish {domain}. MX 10 <your inbound mail host>."))),
                Err(e) => out.push(f(Check::DnsMx, Severity::TempError, e.to_string())),
            },
            Err(e) => out.push(f(Check::DnsMx, Severity::TempError, e.to_string())),
        }
    }

    match relay {
        RelayIps::Unknown(why) => out.push(Finding::new(
            Check::DnsFcrdns,
            Severity::Info,
            from,
            format!("forward-confirmed reverse DNS not checked: sending addresses unknown ({why})"),
        )),
        RelayIps::Known { ips, .. } => {
            for ip in ips {
                let subject = ip.to_string();
                let f =
                    |sev: Severity, msg: String| Finding::new(Check::DnsFcrdns, sev, &subject, msg);
                match dns.ptr(*ip).await {
                    Ok(names) if names.is_empty() => out.push(f(Severity::Warn, format!("{ip} has no PTR record; many receivers distrust such senders")).fix("ask the owner of the address (your provider) for a PTR record naming the relay".into())),
                    Ok(names) => out.push(match confirm(dns, *ip, &names).await {
                        Confirmed::Yes(n) => f(Severity::Pass, format!("{ip} -> {n} -> {ip}")),
                        // The way back could not be looked up: unknown, not a wrong record.
                        Confirmed::Unknown(e) => f(Severity::TempError, format!("{ip} has PTR {}, but resolving it back failed: {e}", names.join(", "))),
                        Confirmed::No => f(Severity::Warn, format!("{ip} has PTR {} but that name does not resolve back to {ip}", names.join(", "))).fix("make the PTR name's A/AAAA record include the address".into()),
                    }),
                    Err(e) => out.push(f(Severity::TempError, e.to_string())),
                }
            }
        }
    }

    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, from, msg);
    let (sts_name, rpt_name) = (format!("_mta-sts.{from}"), format!("_smtp._tls.{from}"));
    let (sts, rpt) = tokio::join!(dns.txt(&sts_name), dns.txt(&rpt_name));
    out.push(match sts {
        Ok(v) if v.iter().any(|t| t.text().starts_with("v=STSv1")) => f(
            Check::DnsMtaSts,
            Severity::Info,
            "MTA-STS is published".into(),
        ),
        Ok(_) => f(
            Check::DnsMtaSts,
            Severity::Info,
            "no MTA-STS record (optional: it protects mail sent to you)".into(),
        ),
        Err(e) => f(
            Check::DnsMtaSts,
            Severity::Info,
            format!("MTA-STS lookup failed: {e}"),
        ),
    });
    out.push(match rpt {
        Ok(v) if v.iter().any(|t| t.text().starts_with("v=TLSRPTv1")) => f(
            Check::DnsTlsRpt,
            Severity::Info,
            "TLS-RPT is published".into(),
        ),
        Ok(_) => f(
            Check::DnsTlsRpt,
            Severity::Info,
            "no TLS-RPT record (optional)".into(),
        )
        .fix(format!(
            "_smtp._tls.{from}. TXT \"v=TLSRPTv1; rua=mailto:tls-reports@{from}\""
        )),
        Err(e) => f(
            Check::DnsTlsRpt,
            Severity::Info,
            format!("TLS-RPT lookup failed: {e}"),
        ),
    });
    out
}
