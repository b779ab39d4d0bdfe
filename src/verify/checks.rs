//! The authentication items of a grade: DKIM, SPF, DMARC (RFC 9989 and the PSL), one-click
//! unsubscribe covered by DKIM, TLS and reverse DNS of the connection, and every place where
//! the receiver's recorded result and the local one disagree, with the likely reason.

use std::net::IpAddr;

use super::auth::{self, DmarcCheck, SigCheck, Verdict};
use super::headers::all;
use super::{Item, Provider, ReceiverView, Status, domain_of};
use crate::dmarc::Tags;
use crate::dns::Dns;

const ALL: &[Provider] = &[Provider::Gmail, Provider::Yahoo, Provider::Microsoft];
const GMAIL_YAHOO: &[Provider] = &[Provider::Gmail, Provider::Yahoo];
/// Who needs SPF *and* DKIM to pass. One received message does not show the campaign's size,
/// so it is graded as bulk mail (5,000+ a day), where all three providers ask for both
/// (see [`crate::preflight::providers`] for the pages).
const SPF_AND_DKIM: &[Provider] = ALL;

fn status(v: &Verdict) -> Status {
    match v {
        Verdict::Pass => Status::Pass,
        Verdict::Fail(_) => Status::Fail,
        Verdict::TempError(_) => Status::TempError,
        Verdict::Unknown(_) => Status::Warn,
    }
}

/// Every authentication item for one message.
pub async fn authentication(
    dns: &Dns,
    raw: &[u8],
    rx: &ReceiverView,
    from: Option<&str>,
    fields: &[(String, String)],
) -> Vec<Item> {
    let sigs = auth::dkim(dns, raw).await;
    let mailfrom = rx.mailfrom.as_deref().map(domain_of);
    let spf_local = auth::spf(dns, rx.connecting_ip, mailfrom.as_deref()).await;
    let mut out = dkim_items(&sigs);
    out.extend(spf_items(&spf_local, rx, &sigs));
    match from {
        Some(from) => {
            let d = auth::dmarc(
                dns,
                from,
                &sigs,
                &effective_spf(&spf_local, rx),
                mailfrom.as_deref(),
            )
            .await;
            out.extend(dmarc_items(&d));
        }
        None => out.push(
            Item::new(
                "verify.dmarc.pass",
                Status::Fail,
                "no From domain to evaluate DMARC for".into(),
            )
            .blocking(ALL),
        ),
    }
    out.extend(one_click(fields, &sigs));
    out.extend(connection(dns, rx).await);
    out.extend(disagreements(rx, &sigs, &spf_local));
    out
}

/// The local SPF result, or the receiver's when it cannot be computed here (no IP).
fn effective_spf(local: &Verdict, rx: &ReceiverView) -> Verdict {
    match (local, rx.result("spf")) {
        (Verdict::Unknown(_), Some(o)) if o.result == "pass" => Verdict::Pass,
        (Verdict::Unknown(_), Some(o)) => {
            Verdict::Fail(format!("{} (as the receiver recorded)", o.result))
        }
        _ => local.clone(),
    }
}

fn dkim_items(sigs: &[SigCheck]) -> Vec<Item> {
    let mut out = Vec::new();
    for s in sigs {
        let who = format!(
            "d={} s={} ({}, {})",
            s.d,
            s.s,
            s.algorithm,
            s.key_bits
                .map_or("key not found".into(), |b| format!("{b}-bit key"))
        );
        let detail = match &s.verdict {
            Verdict::Pass => String::new(),
            Verdict::Fail(e) | Verdict::TempError(e) | Verdict::Unknown(e) => format!(": {e}"),
        };
        out.push(
            Item::new(
                "verify.dkim.signature",
                status(&s.verdict),
                format!("{who} {}{detail}", s.verdict.word()),
            )
            .evidence(format!("h={}", s.signed.join(":"))),
        );
        let rsa_bits = s.key_bits.filter(|_| s.algorithm.starts_with("Rsa"));
        match rsa_bits {
            Some(b) if b < 1024 => out.push(Item::new("verify.dkim.key-size", Status::Fail, format!("d={} s={}: {b}-bit RSA; receivers treat keys under 1024 bits as no signature", s.d, s.s)).blocking(ALL).fix("publish a 2048-bit key (mailshot dkim keygen) under a new selector".into())),
            Some(b) if b < 2048 => out.push(Item::new("verify.dkim.key-size", Status::Warn, format!("d={} s={}: {b}-bit RSA; 2048 is the recommended size", s.d, s.s)).fix("mailshot dkim keygen --algorithm rsa2048 under a new selector".into())),
            _ => {}
        }
        if let Some(l) = s.body_length {
            out.push(Item::new("verify.dkim.body-length", Status::Warn, format!("d={} s={} signs only the first {l} body bytes (l=): anything appended still verifies", s.d, s.s)).fix("sign without l=".into()));
        }
    }
    let any = sigs.iter().find(|s| s.verdict.passed());
    let temp = sigs
        .iter()
        .find(|s| matches!(s.verdict, Verdict::TempError(_)));
    out.push(match (any, temp) {
        (Some(s), _) => Item::new(
            "verify.dkim",
            Status::Pass,
            format!("DKIM passes (d={})", s.d),
        ),
        (None, Some(_)) => Item::new(
            "verify.dkim",
            Status::TempError,
            "no signature verified, and a key lookup failed".into(),
        )
        .blocking(SPF_AND_DKIM),
        (None, None) if sigs.is_empty() => Item::new(
            "verify.dkim",
            Status::Fail,
            "the message has no DKIM signature".into(),
        )
        .blocking(SPF_AND_DKIM)
        .fix("sign with [[dkim]]".into()),
        (None, None) => Item::new(
            "verify.dkim",
            Status::Fail,
            "no DKIM signature verifies".into(),
        )
        .blocking(SPF_AND_DKIM),
    });
    out
}

fn spf_items(local: &Verdict, rx: &ReceiverView, sigs: &[SigCheck]) -> Vec<Item> {
    let effective = effective_spf(local, rx);
    let how = match local {
        Verdict::Unknown(why) => format!(
            "not recomputed ({why}); the receiver recorded {}",
            rx.result("spf").map_or("nothing", |o| o.result.as_str())
        ),
        _ => format!(
            "for {} at {}",
            rx.connecting_ip.map_or("?".into(), |i| i.to_string()),
            rx.mailfrom.as_deref().map_or("?".into(), domain_of)
        ),
    };
    let mut spf = Item::new(
        "verify.spf",
        status(&effective),
        format!("SPF {} {how}", effective.word()),
    )
    .blocking(SPF_AND_DKIM);
    if let Verdict::Fail(e) = &effective {
        spf = spf.evidence(e.clone());
    }
    // The rule for senders under 5,000 a day (Gmail and Yahoo accept either one). A message
    // is graded as bulk, so it is reported and does not block; verify.spf and verify.dkim do.
    let either = effective.passed() || sigs.iter().any(|s| s.verdict.passed());
    vec![
        spf,
        if either {
            Item::new(
                "verify.spf-or-dkim",
                Status::Pass,
                "SPF or DKIM passes (enough for Gmail and Yahoo below 5,000 a day; graded as bulk, every provider needs both)".into(),
            )
        } else {
            Item::new(
                "verify.spf-or-dkim",
                Status::Fail,
                "neither SPF nor DKIM passes: even a small sender fails Gmail's and Yahoo's rules"
                    .into(),
            )
        },
    ]
}

fn dmarc_items(d: &DmarcCheck) -> Vec<Item> {
    let disc = &d.discovery;
    let mut out = Vec::new();
    let record = match &disc.walk {
        Err(e) => Item::new(
            "verify.dmarc.record",
            Status::TempError,
            format!("the DMARC lookup failed: {e}"),
        ),
        Ok(side) => match (&side.record, &side.applied) {
            (Some(f), Some(a)) => Item::new(
                "verify.dmarc.record",
                Status::Pass,
                format!(
                    "policy {} from _dmarc.{} (RFC 9989 tree walk)",
                    a.describe(),
                    f.domain
                ),
            )
            .evidence(f.evidence.clone()),
            _ => Item::new(
                "verify.dmarc.record",
                Status::Fail,
                format!("no DMARC record at or above {}", disc.domain),
            )
            .fix(format!(
                "publish _dmarc.{}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{}\"",
                disc.domain, disc.domain
            )),
        },
    };
    out.push(record.blocking(ALL));
    for (name, n) in &disc.multiple {
        out.push(Item::new("verify.dmarc.multiple", Status::Warn, format!("_dmarc.{name} has {n} DMARC records: RFC 9989 receivers skip them and walk on, RFC 7489 receivers apply no policy")).fix(format!("keep one record at _dmarc.{name}")));
    }
    out.push(match &disc.walk_org {
        Ok(org) => Item::new("verify.dmarc.org-domain", Status::Info, format!("organizational domain {} ({}); the public suffix list says {}", org.domain, org.how, disc.psl_org)),
        // Only relaxed alignment between different domains needs it; those items say so.
        Err(e) => Item::new("verify.dmarc.org-domain", Status::Info, format!("the tree walk could not finish ({e}), so the organizational domain is unknown; the public suffix list says {}", disc.psl_org)),
    });
    let diffs = disc.differences();
    if !diffs.is_empty() {
        out.push(Item::new("verify.dmarc.discovery", Status::Warn, "RFC 9989 receivers (tree walk) and RFC 7489 receivers (public suffix list) see this domain differently".into()).evidence(diffs.join("\n")));
    }
    if let Some(f) = disc.walk.as_ref().ok().and_then(|s| s.record.as_ref()) {
        for (name, v) in &f.tags.obsolete {
            out.push(
                Item::new(
                    "verify.dmarc.obsolete-tag",
                    Status::Warn,
                    format!(
                        "{name}={v} is obsolete under RFC 9989: {}",
                        Tags::obsolete_note(name)
                    ),
                )
                .fix(format!("remove {name}=")),
            );
        }
    }
    let by = if d.aligned_by.is_empty() {
        String::new()
    } else {
        format!(" ({})", d.aligned_by.join(", "))
    };
    out.push(
        Item::new(
            "verify.dmarc.pass",
            status(&d.walk),
            match &d.walk {
                Verdict::Pass => format!("DMARC passes under RFC 9989{by}"),
                v => format!(
                    "DMARC {} under RFC 9989: {}",
                    v.word(),
                    match v {
                        Verdict::Fail(e) | Verdict::TempError(e) | Verdict::Unknown(e) =>
                            e.as_str(),
                        Verdict::Pass => "",
                    }
                ),
            },
        )
        .blocking(ALL),
    );
    if d.psl.word() != d.walk.word() {
        out.push(Item::new(
            "verify.dmarc.psl",
            Status::Warn,
            format!(
                "receivers still on RFC 7489 (public suffix list) would give DMARC {} instead",
                d.psl.word()
            ),
        ));
    }
    out
}

/// RFC 8058 one-click: an https List-Unsubscribe, `List-Unsubscribe-Post:
/// List-Unsubscribe=One-Click`, and a passing signature whose h= covers both.
fn one_click(fields: &[(String, String)], sigs: &[SigCheck]) -> Vec<Item> {
    let lu = all(fields, "List-Unsubscribe");
    let https = lu.iter().any(|v| v.contains("<https://"));
    let post = all(fields, "List-Unsubscribe-Post")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("List-Unsubscribe=One-Click"));
    let mut out = vec![if https && post {
        Item::new("verify.one-click", Status::Pass, "List-Unsubscribe has an https URL, with List-Unsubscribe-Post: List-Unsubscribe=One-Click".into())
    } else {
        let missing = match (https, post) {
            (false, false) => "List-Unsubscribe (https) and List-Unsubscribe-Post",
            (false, true) => "an https URL in List-Unsubscribe",
            _ => "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        };
        Item::new(
            "verify.one-click",
            Status::Fail,
            format!("no one-click unsubscribe: missing {missing}"),
        )
        .blocking(GMAIL_YAHOO)
        .fix("configure [unsubscribe] with an https url".into())
    }];
    if https && post {
        let covered = sigs.iter().any(|s| {
            s.verdict.passed() && s.covers("list-unsubscribe") && s.covers("list-unsubscribe-post")
        });
        out.push(if covered {
            Item::new("verify.one-click-signed", Status::Pass, "a passing DKIM signature covers List-Unsubscribe and List-Unsubscribe-Post".into())
        } else {
            Item::new("verify.one-click-signed", Status::Fail, "no passing DKIM signature covers both List-Unsubscribe headers (RFC 8058 section 4)".into()).blocking(GMAIL_YAHOO).fix("sign List-Unsubscribe and List-Unsubscribe-Post (h=)".into())
        });
    }
    out
}

/// TLS from the receiver's Received field; forward-confirmed reverse DNS of the connecting IP.
async fn connection(dns: &Dns, rx: &ReceiverView) -> Vec<Item> {
    let hop = rx.hop.as_ref();
    let tls = match hop.and_then(|h| h.tls) {
        Some(true) => Item::new(
            "verify.tls",
            Status::Pass,
            format!(
                "delivered over TLS{}",
                hop.and_then(|h| h.tls_detail.clone())
                    .map_or(String::new(), |d| format!(" ({d})"))
            ),
        ),
        Some(false) => Item::new(
            "verify.tls",
            Status::Fail,
            "the receiver's Received field shows plain SMTP, without TLS".into(),
        )
        .blocking(&[Provider::Gmail])
        .fix("use a relay that delivers with STARTTLS".into()),
        None => Item::new(
            "verify.tls",
            Status::Info,
            "the Received fields do not say whether TLS was used".into(),
        ),
    };
    let Some(ip) = rx.connecting_ip else {
        return vec![
            tls,
            Item::new(
                "verify.ptr",
                Status::Info,
                "no connecting IP found, so reverse DNS was not checked".into(),
            ),
        ];
    };
    vec![tls, fcrdns(dns, ip).await]
}

async fn fcrdns(dns: &Dns, ip: IpAddr) -> Item {
    let names = match dns.ptr(ip).await {
        Ok(n) => n,
        Err(e) => {
            return Item::new(
                "verify.ptr",
                Status::TempError,
                format!("the PTR lookup of {ip} failed: {e}"),
            )
            .blocking(GMAIL_YAHOO);
        }
    };
    for name in &names {
        match dns.ips(name).await {
            Ok(ips) if ips.contains(&ip) => {
                return Item::new(
                    "verify.ptr",
                    Status::Pass,
                    format!("{ip} has reverse DNS {name}, which resolves back to it"),
                );
            }
            Ok(_) => {}
            Err(e) => {
                return Item::new(
                    "verify.ptr",
                    Status::TempError,
                    format!("resolving {name} failed: {e}"),
                )
                .blocking(GMAIL_YAHOO);
            }
        }
    }
    Item::new(
        "verify.ptr",
        Status::Fail,
        if names.is_empty() {
            format!("{ip} has no PTR record")
        } else {
            format!(
                "{ip}'s PTR ({}) does not resolve back to it",
                names.join(", ")
            )
        },
    )
    .blocking(GMAIL_YAHOO)
    .fix("ask the relay's operator for a PTR whose name resolves to the address".into())
}

/// Where the receiver's result and the local one differ, and why that may be.
fn disagreements(rx: &ReceiverView, sigs: &[SigCheck], spf: &Verdict) -> Vec<Item> {
    let mut out = Vec::new();
    let Some(results) = &rx.results else {
        out.push(Item::new(
            "verify.receiver",
            Status::Info,
            "no Authentication-Results field: only the local results are known".into(),
        ));
        return out;
    };
    let id = results
        .authserv_id
        .clone()
        .unwrap_or_else(|| "the receiver".into());
    out.push(Item::new(
        "verify.receiver",
        Status::Info,
        format!(
            "{id} recorded {}",
            results
                .outcomes
                .iter()
                .map(|o| format!("{}={}", o.method, o.result))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ));
    for o in results.outcomes.iter().filter(|o| o.method == "dkim") {
        let d = o
            .prop("header.d")
            .map(str::to_owned)
            .or_else(|| o.prop("header.i").map(domain_of));
        let sel = o.prop("header.s");
        let local = sigs.iter().find(|s| {
            d.as_deref().is_none_or(|d| d.eq_ignore_ascii_case(&s.d))
                && sel.is_none_or(|x| x == s.s)
        });
        let Some(local) = local else { continue };
        let (theirs, ours) = (o.result == "pass", local.verdict.passed());
        if theirs && !ours && !matches!(local.verdict, Verdict::TempError(_)) {
            let why = if local.body_changed {
                "the body changed after the receiver checked it (a forwarder, list or gateway rewrote it)"
            } else {
                "the key at the selector has probably been rotated or revoked since delivery, or a signed header was changed afterwards"
            };
            out.push(Item::new(
                "verify.disagree.dkim",
                Status::Warn,
                format!(
                    "{id} says dkim=pass for d={} s={}, but it does not verify here: {why}",
                    local.d, local.s
                ),
            ));
        } else if !theirs && ours {
            out.push(Item::new("verify.disagree.dkim", Status::Warn, format!("{id} says dkim={} for d={}, but it verifies here: the receiver may have seen a modified copy (a forwarder) or had a DNS failure", o.result, local.d)));
        }
    }
    if let Some(o) = rx.result("spf")
        && !matches!(spf, Verdict::Unknown(_) | Verdict::TempError(_))
        && (o.result == "pass") != spf.passed()
    {
        out.push(Item::new("verify.disagree.spf", Status::Warn, format!("{id} says spf={}, here it is {}: the message may have reached it through a forwarder (another connecting IP), or the SPF record changed since", o.result, spf.word())));
    }
    out
}
