//! DMARC (RFC 7489): the policy record (at the From domain, else its organizational domain
//! from the public suffix list), its syntax and strength, report destinations and their
//! authorization, and alignment of the From domain with DKIM d= and the envelope domain.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::Dmarc;

use super::{Check, Finding, Severity};
use crate::dns::{Dns, Txt};
use crate::message::dkim::DkimKeyPair;

/// The organizational domain (public suffix plus one label); the domain itself when the
/// list does not know it.
pub fn org_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map(str::to_owned).unwrap_or(d)
}

/// Relaxed alignment compares organizational domains; strict compares exactly.
pub fn aligned(a: &str, b: &str, strict: bool) -> bool {
    let (a, b) = (
        a.trim_end_matches('.').to_ascii_lowercase(),
        b.trim_end_matches('.').to_ascii_lowercase(),
    );
    if strict {
        a == b
    } else {
        org_domain(&a) == org_domain(&b)
    }
}

#[derive(Debug, Default)]
struct Tags {
    p: Option<String>,
    sp: Option<String>,
    pct: Option<String>,
    rua: Option<String>,
    adkim: Option<String>,
    aspf: Option<String>,
}

fn tags(record: &str) -> Tags {
    let mut t = Tags::default();
    for part in record.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "p" => t.p = Some(v.to_ascii_lowercase()),
            "sp" => t.sp = Some(v.to_ascii_lowercase()),
            "pct" => t.pct = Some(v),
            "rua" => t.rua = Some(v),
            "adkim" => t.adkim = Some(v.to_ascii_lowercase()),
            "aspf" => t.aspf = Some(v.to_ascii_lowercase()),
            _ => {}
        }
    }
    t
}

async fn records(dns: &Dns, domain: &str) -> Result<Vec<Txt>, crate::dns::TempError> {
    Ok(dns
        .txt(&format!("_dmarc.{domain}"))
        .await?
        .into_iter()
        .filter(|t| t.text().trim_start().starts_with("v=DMARC1"))
        .collect())
}

pub async fn audit(dns: &Dns, from: &str, envelope: &str, keys: &[DkimKeyPair]) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, from, msg);
    let org = org_domain(from);
    let starter = format!("_dmarc.{org}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}\"");

    let (mut recs, mut policy_domain) = match records(dns, from).await {
        Ok(r) => (r, from.to_owned()),
        Err(e) => {
            out.push(f(
                Check::DmarcRecord,
                Severity::TempError,
                format!("the DMARC lookup failed: {e}"),
            ));
            out.extend(alignment_unknown(from));
            return out;
        }
    };
    let mut inherited = false;
    if recs.is_empty() && org != from {
        match records(dns, &org).await {
            Ok(r) if !r.is_empty() => {
                recs = r;
                policy_domain = org.clone();
                inherited = true;
            }
            Ok(_) => {}
            Err(e) => {
                out.push(f(
                    Check::DmarcRecord,
                    Severity::TempError,
                    format!("the DMARC lookup at the organizational domain failed: {e}"),
                ));
                out.extend(alignment_unknown(from));
                return out;
            }
        }
    }
    let Some(rec) = recs.first() else {
        out.push(f(Check::DmarcRecord, Severity::Fail, format!("no DMARC record at _dmarc.{from} or _dmarc.{org}: Gmail and Yahoo require one from bulk senders")).fix(format!("publish {starter}")));
        out.extend(alignment(from, envelope, keys, false, false));
        return out;
    };
    if recs.len() > 1 {
        out.push(
            f(
                Check::DmarcRecord,
                Severity::Fail,
                format!(
                    "{} DMARC records at _dmarc.{policy_domain}; receivers then apply none",
                    recs.len()
                ),
            )
            .evidence(
                recs.iter()
                    .map(Txt::zone_form)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .fix("keep exactly one v=DMARC1 record".into()),
        );
        return out;
    }
    let text = rec.text();
    let evidence = format!("_dmarc.{policy_domain}. TXT {}", rec.zone_form());
    if let Err(e) = Dmarc::parse(text.as_bytes()) {
        out.push(
            f(
                Check::DmarcSyntax,
                Severity::Fail,
                format!("the record does not parse: {e}"),
            )
            .evidence(evidence)
            .fix(format!("publish a valid record, for example {starter}")),
        );
        return out;
    }
    let t = tags(&text);
    let Some(p) = t.p.clone() else {
        out.push(
            f(
                Check::DmarcSyntax,
                Severity::Fail,
                "the record has no p= tag".into(),
            )
            .evidence(evidence)
            .fix(format!("publish {starter}")),
        );
        return out;
    };
    out.push(
        f(
            Check::DmarcRecord,
            Severity::Pass,
            if inherited {
                format!("{from} has no record of its own and inherits {org}'s")
            } else {
                format!("one DMARC record at _dmarc.{policy_domain}")
            },
        )
        .evidence(evidence.clone()),
    );

    let effective = if inherited {
        t.sp.clone().unwrap_or_else(|| p.clone())
    } else {
        p.clone()
    };
    out.extend(policy(from, &effective, t.pct.as_deref(), &evidence));
    out.extend(reports(dns, from, &org, &policy_domain, t.rua.as_deref()).await);
    let strict_dkim = t.adkim.as_deref() == Some("s");
    let strict_spf = t.aspf.as_deref() == Some("s");
    out.extend(alignment(from, envelope, keys, strict_dkim, strict_spf));
    out
}

/// The policy in force (`sp=` when inherited) and `pct=`.
fn policy(from: &str, effective: &str, pct: Option<&str>, evidence: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, from, msg);
    let evidence = evidence.to_owned();
    match effective {
        "none" => out.push(f(Check::DmarcPolicy, Severity::Warn, "p=none: receivers report but do not act on failures, so spoofing your domain still works".into()).evidence(evidence.clone()).fix("once reports show all your mail aligned (mailshot dmarc report), move to p=quarantine, then p=reject".into())),
        "quarantine" | "reject" => out.push(f(Check::DmarcPolicy, Severity::Pass, format!("policy {effective} is enforced"))),
        other => out.push(f(Check::DmarcSyntax, Severity::Fail, format!("p={other} is not none, quarantine or reject")).evidence(evidence.clone())),
    }
    if let Some(pct) = pct
        && pct.parse::<u8>().map_or(true, |n| n < 100)
    {
        out.push(
            f(
                Check::DmarcPct,
                Severity::Warn,
                format!("pct={pct}: the policy applies to only part of the failing mail"),
            )
            .evidence(evidence.clone())
            .fix("remove pct (100 is the default) once you are confident".into()),
        );
    }
    out
}

/// Whether aggregate reports are requested, and whether each external destination
/// authorizes the policy domain.
async fn reports(
    dns: &Dns,
    from: &str,
    org: &str,
    policy_domain: &str,
    rua: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, from, msg);
    match rua {
        None => out.push(f(Check::DmarcRua, Severity::Warn, "no rua=: you receive no aggregate reports, so you cannot see who sends as you or when the policy can tighten".into()).fix(format!("add rua=mailto:dmarc-reports@{org} to the record"))),
        Some(rua) => {
            for uri in rua.split(',') {
                let uri = uri.trim();
                let Some(addr) = uri.strip_prefix("mailto:") else { continue };
                let addr = addr.split('!').next().unwrap_or(addr);
                let Some((_, rua_domain)) = addr.rsplit_once('@') else { continue };
                if org_domain(rua_domain) == org_domain(policy_domain) {
                    out.push(f(Check::DmarcRua, Severity::Pass, format!("aggregate reports go to {addr}")));
                    continue;
                }
                let auth = format!("{policy_domain}._report._dmarc.{rua_domain}");
                match dns.txt(&auth).await {
                    Ok(v) if v.iter().any(|t| t.text().trim_start().starts_with("v=DMARC1")) => {
                        out.push(f(Check::DmarcRua, Severity::Pass, format!("external report destination {rua_domain} authorizes {policy_domain}")));
                    }
                    Ok(_) => out.push(f(Check::DmarcRuaAuthorization, Severity::Warn, format!("reports go to {addr}, outside {policy_domain}, but {auth} does not authorize it: receivers will not send them")).fix(format!("the owner of {rua_domain} publishes {auth}. TXT \"v=DMARC1\""))),
                    // At worst reports go missing: never a reason to block sending.
                    Err(e) => out.push(f(Check::DmarcRuaAuthorization, Severity::Warn, format!("the lookup of {auth} failed: {e}"))),
                }
            }
        }
    }
    out
}

/// Alignment when the policy record could not be fetched: its `adkim`/`aspf` modes are
/// unknown, so alignment is a temperror too, never a failure that asks for record changes.
fn alignment_unknown(from: &str) -> Vec<Finding> {
    [Check::DmarcAlignDkim, Check::DmarcAlignSpf]
        .into_iter()
        .map(|c| {
            Finding::new(
                c,
                Severity::TempError,
                from,
                "unknown: the DMARC lookup failed, so the alignment modes are not known".into(),
            )
        })
        .collect()
}

fn alignment(
    from: &str,
    envelope: &str,
    keys: &[DkimKeyPair],
    strict_dkim: bool,
    strict_spf: bool,
) -> Vec<Finding> {
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, from, msg);
    let mode = |s: bool| if s { "strict" } else { "relaxed" };
    let dkim_ok: Vec<&str> = keys
        .iter()
        .filter(|k| aligned(k.domain(), from, strict_dkim))
        .map(|k| k.domain())
        .collect();
    let spf_ok = aligned(envelope, from, strict_spf);
    let mut out = Vec::new();
    if dkim_ok.is_empty() {
        out.push(f(
            Check::DmarcAlignDkim,
            if spf_ok { Severity::Warn } else { Severity::Fail },
            format!("no DKIM d= ({}) aligns with From {from} under {} alignment", keys.iter().map(|k| k.domain()).collect::<Vec<_>>().join(", "), mode(strict_dkim)),
        ).fix(format!("sign with a key under {from} (or its organizational domain, with relaxed alignment)")));
    } else {
        out.push(f(
            Check::DmarcAlignDkim,
            Severity::Pass,
            format!(
                "DKIM d={} aligns with From {from} ({})",
                dkim_ok[0],
                mode(strict_dkim)
            ),
        ));
    }
    if spf_ok {
        out.push(f(
            Check::DmarcAlignSpf,
            Severity::Pass,
            format!(
                "envelope domain {envelope} aligns with From {from} ({})",
                mode(strict_spf)
            ),
        ));
    } else {
        out.push(
            f(
                Check::DmarcAlignSpf,
                if dkim_ok.is_empty() {
                    Severity::Fail
                } else {
                    Severity::Warn
                },
                format!(
                    "envelope domain {envelope} does not align with From {from} ({})",
                    mode(strict_spf)
                ),
            )
            .fix(format!("use a return_path under {}", org_domain(from))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains_and_alignment() {
        assert_eq!(org_domain("news.example.com"), "example.com");
        assert_eq!(org_domain("a.b.example.co.uk"), "example.co.uk");
        assert!(aligned("news.example.com", "example.com", false));
        assert!(!aligned("news.example.com", "example.com", true));
        assert!(!aligned("example.net", "example.com", false));
    }
}
