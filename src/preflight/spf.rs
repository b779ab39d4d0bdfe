//! SPF (RFC 7208) for the envelope sender's domain: the record, its syntax, the lookup
//! budget across nested includes, loops, the `all` term, and for each relay whether its
//! sending addresses pass, evaluated with check_host() as a receiver would.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::spf::{Macro, Mechanism, Qualifier, Spf};

use super::{Check, Finding, Severity};
use crate::dns::{Dns, TempError, Txt};

/// RFC 7208 section 4.6.4.
const MAX_LOOKUPS: usize = 10;
const MAX_VOID: usize = 2;

/// The result of check_host(), in the RFC's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError(String),
    PermError(String),
}

impl std::fmt::Display for SpfResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpfResult::Pass => f.write_str("pass"),
            SpfResult::Fail => f.write_str("fail"),
            SpfResult::SoftFail => f.write_str("softfail"),
            SpfResult::Neutral => f.write_str("neutral"),
            SpfResult::None => f.write_str("none"),
            SpfResult::TempError(e) => write!(f, "temperror ({e})"),
            SpfResult::PermError(e) => write!(f, "permerror ({e})"),
        }
    }
}

/// Fetches the SPF record of `domain`: `Ok(None)` when there is none, `Err` for a DNS failure
/// or when more than one record makes the result a permerror.
pub async fn record(dns: &Dns, domain: &str) -> Result<Option<(Txt, Spf)>, SpfLookupError> {
    let txts = dns.txt(domain).await.map_err(SpfLookupError::Temp)?;
    let spf: Vec<Txt> = txts.into_iter().filter(|t| is_spf(&t.joined())).collect();
    match spf.len() {
        0 => Ok(None),
        1 => {
            let t = spf.into_iter().next().unwrap_or_else(|| unreachable!());
            match Spf::parse(&t.joined()) {
                Ok(parsed) => Ok(Some((t, parsed))),
                Err(e) => Err(SpfLookupError::Syntax(t, e.to_string())),
            }
        }
        _ => Err(SpfLookupError::Multiple(spf)),
    }
}

fn is_spf(record: &[u8]) -> bool {
    let r = record.to_ascii_lowercase();
    r == b"v=spf1" || r.starts_with(b"v=spf1 ")
}

#[derive(Debug, Clone)]
pub enum SpfLookupError {
    Temp(TempError),
    Multiple(Vec<Txt>),
    Syntax(Txt, String),
}

/// What a static walk of the record tree found.
#[derive(Debug, Default)]
pub struct Walk {
    pub lookups: usize,
    pub voids: usize,
    pub loops: Vec<String>,
    pub ptr: Vec<String>,
    pub macros: Vec<String>,
    /// Records reached through include or redirect that end with `+all`: through them the
    /// domain authorizes every server too.
    pub nested_plus_all: Vec<String>,
    pub problems: Vec<String>,
    pub temp: Vec<TempError>,
    /// (depth, domain, record) for the evidence.
    pub tree: Vec<(usize, String, String)>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Walks every include and redirect, counting DNS-querying terms (nested ones included)
/// and void lookups, as the limits of RFC 7208 section 4.6.4 are counted.
pub fn walk<'a>(
    dns: &'a Dns,
    domain: String,
    stack: Vec<String>,
    w: &'a mut Walk,
) -> Boxed<'a, ()> {
    Box::pin(async move {
        let (txt, spf) = match record(dns, &domain).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                if !stack.is_empty() {
                    w.voids += 1;
                    w.problems.push(format!(
                        "{domain} is included but publishes no SPF record (permerror)"
                    ));
                }
                return;
            }
            Err(SpfLookupError::Temp(t)) => {
                w.temp.push(t);
                return;
            }
            Err(SpfLookupError::Multiple(_)) => {
                w.problems.push(format!(
                    "{domain} publishes more than one SPF record (permerror)"
                ));
                return;
            }
            Err(SpfLookupError::Syntax(_, e)) => {
                w.problems.push(format!("{domain}: SPF syntax error: {e}"));
                return;
            }
        };
        w.tree.push((stack.len(), domain.clone(), txt.text()));
        if !stack.is_empty() && matches!(all_qualifier(&spf), Some(Qualifier::Pass)) {
            w.nested_plus_all.push(domain.clone());
        }
        let mut next = Vec::new();
        for d in spf.directives.iter() {
            match &d.mechanism {
                Mechanism::Include { macro_string } => {
                    w.lookups += 1;
                    match literal(macro_string, &domain) {
                        Some(t) => next.push(t),
                        None => w.macros.push(format!("{domain}: include uses a macro")),
                    }
                }
                Mechanism::A { macro_string, .. } => {
                    w.lookups += 1;
                    if let Some(t) = literal(macro_string, &domain) {
                        match dns.ips(&t).await {
                            Ok(ips) if ips.is_empty() => w.voids += 1,
                            Ok(_) => {}
                            Err(e) => w.temp.push(e),
                        }
                    } else {
                        w.macros.push(format!("{domain}: a uses a macro"));
                    }
                }
                Mechanism::Mx { macro_string, .. } => {
                    w.lookups += 1;
                    if let Some(t) = literal(macro_string, &domain) {
                        match dns.mx(&t).await {
                            Ok(mx) if mx.is_empty() => w.voids += 1,
                            Ok(mx) if mx.len() > 10 => w.problems.push(format!(
                                "{t} has {} MX records; SPF allows 10 per mx term (permerror)",
                                mx.len()
                            )),
                            Ok(_) => {}
                            Err(e) => w.temp.push(e),
                        }
                    } else {
                        w.macros.push(format!("{domain}: mx uses a macro"));
                    }
                }
                Mechanism::Ptr { .. } => {
                    w.lookups += 1;
                    w.ptr.push(domain.clone());
                }
                Mechanism::Exists { macro_string } => {
                    w.lookups += 1;
                    if literal(macro_string, &domain).is_none() {
                        w.macros.push(format!("{domain}: exists uses a macro"));
                    }
                }
                Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {}
            }
        }
        // RFC 7208 6.1: a redirect in a record that has an `all` term is never used, so it
        // costs no lookup.
        let has_all = spf
            .directives
            .iter()
            .any(|d| matches!(d.mechanism, Mechanism::All));
        if let Some(r) = spf.redirect.as_ref().filter(|_| !has_all) {
            w.lookups += 1;
            match literal(r, &domain) {
                Some(t) => next.push(t),
                None => w.macros.push(format!("{domain}: redirect uses a macro")),
            }
        }
        for target in next {
            let t = crate::dns::normalize(&target);
            if stack.contains(&t) || t == crate::dns::normalize(&domain) {
                w.loops.push(format!("{} -> {}", stack.join(" -> "), t));
                continue;
            }
            // Stop early: a loop or a huge tree must not make the audit itself run away.
            if w.lookups > 4 * MAX_LOOKUPS {
                break;
            }
            let mut s = stack.clone();
            s.push(crate::dns::normalize(&domain));
            walk(dns, t, s, w).await;
        }
    })
}

/// A macro-string without macros, as a domain name (`None` in the record means the current
/// domain).
fn literal(m: &Macro, current: &str) -> Option<String> {
    match m {
        Macro::None => Some(current.to_owned()),
        Macro::Literal(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// RFC 7208 check_host() for one IP, over the cached DNS.
pub fn check_host<'a>(
    dns: &'a Dns,
    ip: IpAddr,
    domain: String,
    depth: usize,
) -> Boxed<'a, SpfResult> {
    Box::pin(async move {
        if depth > MAX_LOOKUPS {
            return SpfResult::PermError("too many nested lookups".into());
        }
        let spf = match record(dns, &domain).await {
            Ok(Some((_, spf))) => spf,
            Ok(None) => return SpfResult::None,
            Err(SpfLookupError::Temp(t)) => return SpfResult::TempError(t.to_string()),
            Err(SpfLookupError::Multiple(_)) => {
                return SpfResult::PermError(format!("{domain} has more than one SPF record"));
            }
            Err(SpfLookupError::Syntax(_, e)) => return SpfResult::PermError(e),
        };
        for d in spf.directives.iter() {
            let matched = match &d.mechanism {
                Mechanism::All => Ok(true),
                Mechanism::Ip4 { addr, mask } => Ok(match ip {
                    IpAddr::V4(v4) => u32::from(v4) & mask == u32::from(*addr) & mask,
                    IpAddr::V6(_) => false,
                }),
                Mechanism::Ip6 { addr, mask } => Ok(match ip {
                    IpAddr::V6(v6) => u128::from(v6) & mask == u128::from(*addr) & mask,
                    IpAddr::V4(_) => false,
                }),
                Mechanism::A {
                    macro_string,
                    ip4_mask,
                    ip6_mask,
                } => match literal(macro_string, &domain) {
                    None => Err(SpfResult::Neutral),
                    Some(t) => match dns.ips_of(&t, ip.is_ipv4()).await {
                        Ok(ips) => Ok(ips.iter().any(|a| in_net(ip, *a, *ip4_mask, *ip6_mask))),
                        Err(e) => Err(SpfResult::TempError(e.to_string())),
                    },
                },
                Mechanism::Mx {
                    macro_string,
                    ip4_mask,
                    ip6_mask,
                } => match literal(macro_string, &domain) {
                    None => Err(SpfResult::Neutral),
                    Some(t) => mx_matches(dns, ip, &t, *ip4_mask, *ip6_mask).await,
                },
                Mechanism::Include { macro_string } => match literal(macro_string, &domain) {
                    None => Err(SpfResult::Neutral),
                    Some(t) => match check_host(dns, ip, t, depth + 1).await {
                        SpfResult::Pass => Ok(true),
                        SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                        SpfResult::None => Err(SpfResult::PermError(
                            "an included domain has no SPF record".into(),
                        )),
                        other => Err(other),
                    },
                },
                Mechanism::Exists { macro_string } => match literal(macro_string, &domain) {
                    None => Err(SpfResult::Neutral),
                    // `exists` always asks for A (RFC 7208 5.7).
                    Some(t) => match dns.ips_of(&t, true).await {
                        Ok(ips) => Ok(!ips.is_empty()),
                        Err(e) => Err(SpfResult::TempError(e.to_string())),
                    },
                },
                Mechanism::Ptr { macro_string } => match literal(macro_string, &domain) {
                    None => Err(SpfResult::Neutral),
                    Some(t) => Ok(ptr_matches(dns, ip, &t).await),
                },
            };
            match matched {
                Ok(true) => {
                    return match d.qualifier {
                        Qualifier::Pass => SpfResult::Pass,
                        Qualifier::Fail => SpfResult::Fail,
                        Qualifier::SoftFail => SpfResult::SoftFail,
                        Qualifier::Neutral => SpfResult::Neutral,
                    };
                }
                Ok(false) => {}
                Err(SpfResult::Neutral) => {
                    return SpfResult::TempError(
                        "the record uses macros, which the audit does not expand".into(),
                    );
                }
                Err(other) => return other,
            }
        }
        if let Some(r) = &spf.redirect {
            return match literal(r, &domain) {
                None => SpfResult::TempError("redirect uses a macro".into()),
                Some(t) => match check_host(dns, ip, t, depth + 1).await {
                    SpfResult::None => {
                        SpfResult::PermError("the redirect target has no SPF record".into())
                    }
                    other => other,
                },
            };
        }
        SpfResult::Neutral
    })
}

/// The `mx` mechanism: whether `ip` is in the network of one of `domain`'s first ten MX hosts.
async fn mx_matches(
    dns: &Dns,
    ip: IpAddr,
    domain: &str,
    m4: u32,
    m6: u128,
) -> Result<bool, SpfResult> {
    let mx = dns
        .mx(domain)
        .await
        .map_err(|e| SpfResult::TempError(e.to_string()))?;
    for (_, host) in mx.iter().take(10) {
        match dns.ips_of(host, ip.is_ipv4()).await {
            Ok(ips) if ips.iter().any(|a| in_net(ip, *a, m4, m6)) => return Ok(true),
            Ok(_) => {}
            Err(e) => return Err(SpfResult::TempError(e.to_string())),
        }
    }
    Ok(false)
}

fn in_net(ip: IpAddr, candidate: IpAddr, m4: u32, m6: u128) -> bool {
    match (ip, candidate) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) & m4 == u32::from(b) & m4,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) & m6 == u128::from(b) & m6,
        _ => false,
    }
}

/// The validated-domain test of `ptr` (RFC 7208 section 5.5).
async fn ptr_matches(dns: &Dns, ip: IpAddr, target: &str) -> bool {
    let target = crate::dns::normalize(target);
    let Ok(names) = dns.ptr(ip).await else {
        return false;
    };
    for n in names.iter().take(10) {
        if (n == &target || n.ends_with(&format!(".{target}")))
            && dns.ips(n).await.is_ok_and(|ips| ips.contains(&ip))
        {
            return true;
        }
    }
    false
}

/// The `all` term of the top-level record, with its qualifier.
fn all_qualifier(spf: &Spf) -> Option<&Qualifier> {
    spf.directives
        .iter()
        .find(|d| matches!(d.mechanism, Mechanism::All))
        .map(|d| &d.qualifier)
}

/// Runs the SPF checks for `domain` (the envelope sender's domain), with one verdict per
/// relay on whether the record authorizes that relay's sending addresses. With `verp`, each
/// message's envelope sender is `<local>+<tag>@domain`: only the local part changes, so the
/// checks (and DMARC's SPF alignment) are the same for every message, and the finding says so.
pub async fn audit(dns: &Dns, domain: &str, relays: &[Relay], verp: bool) -> Vec<Finding> {
    let suggestion = suggested_record(&RelayIps::union(relays));
    let (txt, spf) = match lookup(dns, domain, &suggestion).await {
        Ok(r) => r,
        Err(findings) => return findings,
    };
    let mut out = vec![
        Finding::new(
            Check::SpfRecord,
            Severity::Pass,
            domain,
            if verp {
                "exactly one SPF record; VERP changes only the envelope sender's local part (bounces+<tag>@), so this domain's SPF and alignment hold for every message".into()
            } else {
                "exactly one SPF record".into()
            },
        )
        .evidence(txt.zone_form()),
    ];
    out.extend(shape(domain, &txt, &spf));
    out.extend(tree(dns, domain).await);
    for r in relays {
        out.push(relay(dns, domain, &txt, r).await);
    }
    out
}

/// The one SPF record of `domain`, or the findings that say why there is none to audit.
async fn lookup(dns: &Dns, domain: &str, suggestion: &str) -> Result<(Txt, Spf), Vec<Finding>> {
    let mut out = Vec::new();
    let f = |id: Check, severity: Severity, message: String| {
        Finding::new(id, severity, domain, message)
    };
    let (txt, spf) = match record(dns, domain).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            out.push(
                f(Check::SpfRecord, Severity::Fail, format!("{domain} publishes no SPF record; receivers cannot tell which servers may send as it"))
                    .fix(format!("publish {domain}. TXT \"{suggestion}\"")),
            );
            return Err(out);
        }
        Err(SpfLookupError::Temp(t)) => {
            out.push(f(
                Check::SpfRecord,
                Severity::TempError,
                format!("the SPF lookup failed: {t}"),
            ));
            return Err(out);
        }
        Err(SpfLookupError::Multiple(recs)) => {
            out.push(
                f(Check::SpfRecord, Severity::Fail, format!("{domain} publishes {} SPF records; receivers treat that as a permanent error", recs.len()))
                    .evidence(recs.iter().map(Txt::zone_form).collect::<Vec<_>>().join("\n"))
                    .fix("merge them into one v=spf1 record and delete the others".into()),
            );
            return Err(out);
        }
        Err(SpfLookupError::Syntax(t, e)) => {
            out.push(
                f(
                    Check::SpfSyntax,
                    Severity::Fail,
                    format!("the SPF record does not parse: {e}"),
                )
                .evidence(t.zone_form())
                .fix(format!(
                    "publish a valid record, for example {domain}. TXT \"{suggestion}\""
                )),
            );
            return Err(out);
        }
    };
    Ok((txt, spf))
}

/// The record's strings and answer size, and its `all` term.
fn shape(domain: &str, txt: &Txt, spf: &Spf) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: Check, severity: Severity, message: String| {
        Finding::new(id, severity, domain, message)
    };
    if let Some(long) = txt.strings.iter().find(|s| s.len() > 255) {
        out.push(
            f(
                Check::SpfLength,
                Severity::Fail,
                format!(
                    "a TXT string is {} characters; DNS allows 255 per string",
                    long.len()
                ),
            )
            .fix(
                "split the record into several quoted strings of at most 255 characters each"
                    .into(),
            ),
        );
    }
    let wire = 12 + domain.len() + 2 + 4 + 12 + txt.joined().len() + txt.strings.len();
    if wire > 512 {
        out.push(f(Check::SpfLength, Severity::Warn, format!("the SPF answer is about {wire} bytes, over the 512 that plain UDP DNS carries; some receivers will fail over to TCP or give up")));
    }

    match all_qualifier(spf) {
        Some(Qualifier::Pass) => out.push(
            f(
                Check::SpfAll,
                Severity::Fail,
                "`+all` authorizes every server on the internet to send as this domain".into(),
            )
            .fix("end the record with -all (or ~all while you are still adding senders)".into()),
        ),
        Some(Qualifier::Neutral) => out.push(
            f(
                Check::SpfAll,
                Severity::Warn,
                "`?all` says nothing about other servers; receivers treat them as neutral".into(),
            )
            .fix("end the record with -all or ~all".into()),
        ),
        Some(_) => out.push(f(
            Check::SpfAll,
            Severity::Pass,
            "the record ends with -all or ~all".into(),
        )),
        None if spf.redirect.is_none() => out.push(
            f(
                Check::SpfAll,
                Severity::Warn,
                "no `all` term: mail from unlisted servers is neutral".into(),
            )
            .fix("end the record with -all or ~all".into()),
        ),
        None => {}
    }

    out
}

/// The include/redirect tree: lookups, loops, void lookups, nested `+all`, ptr and macros.
async fn tree(dns: &Dns, domain: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: Check, severity: Severity, message: String| {
        Finding::new(id, severity, domain, message)
    };
    let mut w = Walk::default();
    walk(dns, domain.to_owned(), Vec::new(), &mut w).await;
    let tree = w
        .tree
        .iter()
        .map(|(d, name, rec)| format!("{}{name} \"{rec}\"", "  ".repeat(*d)))
        .collect::<Vec<_>>()
        .join("\n");
    if !w.temp.is_empty() {
        out.push(f(
            Check::SpfLookups,
            Severity::TempError,
            format!(
                "{} lookup(s) in the SPF tree failed: {}",
                w.temp.len(),
                w.temp[0]
            ),
        ));
    }
    if !w.nested_plus_all.is_empty() {
        out.push(
            f(
                Check::SpfAll,
                Severity::Fail,
                format!(
                    "{} is included or redirected to from your record and ends with `+all`: through it every server on the internet passes SPF for {domain}",
                    w.nested_plus_all.join(", ")
                ),
            )
            .evidence(tree.clone())
            .fix("remove that include/redirect, or have its owner end it with -all or ~all".into()),
        );
    }
    if !w.loops.is_empty() {
        out.push(
            f(
                Check::SpfLoop,
                Severity::Fail,
                format!("include/redirect loop: {}", w.loops[0]),
            )
            .evidence(tree.clone())
            .fix("remove the include or redirect that points back up the chain".into()),
        );
    }
    if w.lookups > MAX_LOOKUPS {
        out.push(
            f(Check::SpfLookups, Severity::Fail, format!("{} DNS-querying terms (include, a, mx, ptr, exists, redirect), nested ones included; receivers stop at {MAX_LOOKUPS} with a permerror", w.lookups))
                .evidence(tree.clone())
                .fix("replace includes you no longer use, or flatten them into ip4:/ip6: terms".into()),
        );
    } else if w.temp.is_empty() {
        out.push(
            f(
                Check::SpfLookups,
                Severity::Pass,
                format!("{} of {MAX_LOOKUPS} DNS-querying terms used", w.lookups),
            )
            .evidence(tree.clone()),
        );
    }
    if w.voids > MAX_VOID {
        out.push(
            f(
                Check::SpfVoidLookups,
                Severity::Fail,
                format!(
                    "{} lookups return no records; receivers allow {MAX_VOID} before a permerror",
                    w.voids
                ),
            )
            .evidence(tree.clone())
            .fix("remove terms that name domains without records".into()),
        );
    }
    for p in &w.problems {
        out.push(f(Check::SpfSyntax, Severity::Fail, p.clone()).evidence(tree.clone()));
    }
    if !w.ptr.is_empty() {
        out.push(
            f(
                Check::SpfPtr,
                Severity::Warn,
                format!(
                    "`ptr` is used ({}); RFC 7208 says not to, and some receivers ignore it",
                    w.ptr.join(", ")
                ),
            )
            .fix("replace ptr with ip4:/ip6: terms for the servers it meant".into()),
        );
    }
    if !w.macros.is_empty() {
        out.push(f(
            Check::SpfMacros,
            Severity::Info,
            format!(
                "macros are used ({}); the audit counts them but does not expand them",
                w.macros.join("; ")
            ),
        ));
    }

    out
}

/// One relay's verdict: check_host() for each of its sending addresses, as a receiver would
/// evaluate it, in one finding that names the relay and its addresses.
async fn relay(dns: &Dns, domain: &str, txt: &Txt, relay: &Relay) -> Finding {
    let who = relay.who();
    let subject = relay
        .name
        .as_ref()
        .map_or_else(|| domain.to_owned(), |n| format!("relay {n}"));
    let (ips, source, configured) = match &relay.ips {
        RelayIps::Unknown(why) => {
            return Finding::new(
                Check::SpfRelay,
                Severity::Info,
                subject,
                format!(
                    "{who}: the sending addresses are unknown ({why}); set sending_ips in its [smtp] table (or preflight.sending_ips) to check that SPF authorizes them"
                ),
            );
        }
        RelayIps::Known {
            ips,
            source,
            configured,
        } => (ips, source, *configured),
    };
    let mut results = Vec::with_capacity(ips.len());
    for ip in ips {
        results.push((*ip, check_host(dns, *ip, domain.to_owned(), 0).await));
    }
    // One address refused outranks another's failed lookup: the fix below names it.
    let sev = results
        .iter()
        .map(|(_, r)| ip_severity(r, configured))
        .max_by_key(|s| s.rank())
        .unwrap_or(Severity::Info);
    let listed = ips
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let not_passing: Vec<String> = results
        .iter()
        .filter(|(_, r)| *r != SpfResult::Pass)
        .map(|(ip, r)| format!("check_host({ip}, {domain}) = {r}"))
        .collect();
    let verdict = if not_passing.is_empty() {
        format!("SPF for {domain} authorizes every one")
    } else {
        not_passing.join("; ")
    };
    let evidence = results
        .iter()
        .map(|(ip, r)| format!("check_host({ip}, {domain}) = {r}"))
        .collect::<Vec<_>>()
        .join("\n");
    let finding = Finding::new(
        Check::SpfRelay,
        sev,
        subject,
        format!("{who} sends from {listed} ({source}): {verdict}"),
    )
    .evidence(evidence);
    if !configured && sev != Severity::Pass {
        finding.fix("set sending_ips in the relay's [smtp] table to the addresses it sends from (your provider documents them) to check SPF for real".into())
    } else if sev == Severity::Fail {
        // Only the refused addresses: one whose lookup failed may well pass.
        let terms: Vec<String> = results
            .iter()
            .filter(|(_, r)| ip_severity(r, configured) == Severity::Fail)
            .map(|(ip, _)| term(*ip))
            .collect();
        let record = terms.iter().fold(txt.text(), |rec, t| insert_term(&rec, t));
        finding.fix(format!("authorize {who}: add {} (or its provider's include:) before the all term: {domain}. TXT \"{record}\"; or take the relay out of campaign.toml", terms.join(" ")))
    } else {
        finding
    }
}

/// One address's check_host() result as a severity. Addresses resolved from the submission
/// host are a guess (hosted relays send from other machines): only configured addresses can
/// fail the audit.
fn ip_severity(r: &SpfResult, configured: bool) -> Severity {
    match r {
        SpfResult::Pass => Severity::Pass,
        SpfResult::TempError(e) if e.contains("macros") => Severity::Warn,
        SpfResult::TempError(_) if configured => Severity::TempError,
        _ if !configured => Severity::Warn,
        _ => Severity::Fail,
    }
}

fn term(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("ip4:{ip}"),
        IpAddr::V6(_) => format!("ip6:{ip}"),
    }
}

/// Where a relay's addresses came from.
#[derive(Debug, Clone)]
pub enum RelayIps {
    Known {
        ips: Vec<IpAddr>,
        source: String,
        /// Written in campaign.toml (the relay's or the preflight's `sending_ips`), rather
        /// than resolved from the submission host: only these can fail the audit.
        configured: bool,
    },
    Unknown(String),
}

impl RelayIps {
    /// Every relay's known addresses together, each once (for the DNS records to publish and
    /// the reverse-DNS checks); unknown only when no relay's addresses are known.
    pub fn union(relays: &[Relay]) -> RelayIps {
        let mut ips: Vec<IpAddr> = Vec::new();
        let (mut sources, mut configured, mut unknown) = (Vec::new(), true, Vec::new());
        for r in relays {
            match &r.ips {
                RelayIps::Known {
                    ips: own,
                    source,
                    configured: c,
                } => {
                    for ip in own {
                        if !ips.contains(ip) {
                            ips.push(*ip);
                        }
                    }
                    if !sources.contains(source) {
                        sources.push(source.clone());
                    }
                    configured &= c;
                }
                RelayIps::Unknown(why) => unknown.push(format!("{}: {why}", r.who())),
            }
        }
        if ips.is_empty() {
            return RelayIps::Unknown(unknown.join("; "));
        }
        RelayIps::Known {
            ips,
            source: sources.join("; "),
            configured,
        }
    }
}

/// One relay of the campaign, by name, with its sending addresses. `name` is `None` when
/// there is no `[smtp]` table (the outbox): `preflight.sending_ips` then stands for the relay
/// the campaign will use.
#[derive(Debug, Clone)]
pub struct Relay {
    pub name: Option<String>,
    pub ips: RelayIps,
}

impl Relay {
    /// "relay NAME", or "the relay" when it has none.
    fn who(&self) -> String {
        match &self.name {
            Some(n) => format!("relay {n}"),
            None => "the relay".into(),
        }
    }
}

fn suggested_record(ips: &RelayIps) -> String {
    let terms: Vec<String> = match ips {
        RelayIps::Known { ips, .. } => ips.iter().copied().map(term).collect(),
        RelayIps::Unknown(_) => vec!["include:<your-provider's-spf-domain>".into()],
    };
    format!("v=spf1 {} -all", terms.join(" "))
}

/// Puts `term` before the record's `all` (or at the end).
pub fn insert_term(record: &str, term: &str) -> String {
    let mut parts: Vec<&str> = record.split_whitespace().collect();
    let pos = parts
        .iter()
        .position(|p| {
            p.trim_start_matches(['+', '-', '~', '?'])
                .eq_ignore_ascii_case("all")
                || p.starts_with("redirect=")
        })
        .unwrap_or(parts.len());
    parts.insert(pos, term);
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Overlay, Source};

    fn dns(zone: &str) -> Dns {
        let o = Overlay::parse(std::path::Path::new("t.zone"), zone).unwrap();
        Dns::new(&Source::Offline, Some(o)).unwrap()
    }

    #[tokio::test]
    async fn a_mx_include_and_redirect_evaluate_like_a_receiver() {
        let d = dns("$ORIGIN example.com.\n\
            @ TXT \"v=spf1 a:relay.example.com mx include:_i.example.com redirect=_r.example.com\"\n\
            relay A 192.0.2.1\n\
            @ MX 10 mx\n\
            mx A 192.0.2.2\n\
            _i TXT \"v=spf1 ip4:198.51.100.0/24 -all\"\n\
            _r TXT \"v=spf1 ip6:2001:db8::/32 -all\"\n");
        let host = |ip: &str| check_host(&d, ip.parse().unwrap(), "example.com".into(), 0);
        assert_eq!(host("192.0.2.1").await, SpfResult::Pass);
        assert_eq!(host("192.0.2.2").await, SpfResult::Pass);
        assert_eq!(host("198.51.100.7").await, SpfResult::Pass);
        assert_eq!(host("2001:db8::1").await, SpfResult::Pass);
        assert_eq!(host("203.0.113.1").await, SpfResult::Fail);
    }

    #[tokio::test]
    async fn plus_all_through_an_include_is_flagged() {
        let d = dns(
            "$ORIGIN example.com.\n@ TXT \"v=spf1 include:_i.example.com -all\"\n_i TXT \"v=spf1 +all\"\n",
        );
        let unknown = Relay {
            name: None,
            ips: RelayIps::Unknown("test".into()),
        };
        let findings = audit(&d, "example.com", &[unknown], false).await;
        assert!(
            findings
                .iter()
                .any(|f| f.id == "spf.all" && f.severity == Severity::Fail),
            "{findings:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_beside_all_costs_no_lookup() {
        let d = dns(
            "$ORIGIN example.com.\n@ TXT \"v=spf1 ip4:192.0.2.0/24 redirect=_r.example.com -all\"\n_r TXT \"v=spf1 include:a.example include:b.example -all\"\n",
        );
        let mut w = Walk::default();
        walk(&d, "example.com".into(), Vec::new(), &mut w).await;
        assert_eq!(w.lookups, 0);
    }

    fn relay(name: &str, ips: &[&str], configured: bool) -> Relay {
        Relay {
            name: Some(name.into()),
            ips: RelayIps::Known {
                ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                source: "test".into(),
                configured,
            },
        }
    }

    /// One `spf.relay` finding per relay, named after it: the authorized relay passes, the
    /// configured one outside the record fails with the record to publish, a guessed address
    /// only warns, and an unknown relay is information.
    #[tokio::test]
    async fn each_relay_gets_its_own_verdict() {
        let d = dns("$ORIGIN example.com.\n@ TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n");
        let relays = [
            relay("a", &["192.0.2.25", "192.0.2.26"], true),
            relay("b", &["192.0.2.27", "203.0.113.9"], true),
            relay("c", &["198.51.100.1"], false),
            Relay {
                name: Some("d".into()),
                ips: RelayIps::Unknown("localhost is this machine".into()),
            },
        ];
        let findings = audit(&d, "example.com", &relays, false).await;
        let verdicts: Vec<(&str, Severity)> = findings
            .iter()
            .filter(|f| f.check == Check::SpfRelay)
            .map(|f| (f.subject.as_str(), f.severity))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("relay a", Severity::Pass),
                ("relay b", Severity::Fail),
                ("relay c", Severity::Warn),
                ("relay d", Severity::Info),
            ]
        );
        let b = findings.iter().find(|f| f.subject == "relay b").unwrap();
        assert!(
            b.message
                .starts_with("relay b sends from 192.0.2.27, 203.0.113.9"),
            "{}",
            b.message
        );
        assert!(
            b.message
                .contains("check_host(203.0.113.9, example.com) = fail"),
            "{}",
            b.message
        );
        assert!(
            !b.message.contains("192.0.2.27, example.com"),
            "{}",
            b.message
        );
        let fix = b.fix.as_deref().unwrap();
        assert!(
            fix.contains("\"v=spf1 ip4:192.0.2.0/24 ip4:203.0.113.9 -all\""),
            "{fix}"
        );
    }

    /// One address refused and another whose check_host() hit a failed lookup: the relay
    /// fails (not temperror, which would only say "ask again"), and the fix authorizes the
    /// refused address alone.
    #[tokio::test]
    async fn a_refused_address_outranks_another_addresss_temperror() {
        let d = dns(
            "$ORIGIN example.com.\n@ TXT \"v=spf1 -ip4:198.51.100.1 include:spf.example.net -all\"\n",
        );
        let relays = [relay("a", &["198.51.100.1", "203.0.113.9"], true)];
        let findings = audit(&d, "example.com", &relays, false).await;
        let a = findings.iter().find(|f| f.subject == "relay a").unwrap();
        assert!(
            a.message
                .contains("check_host(203.0.113.9, example.com) = temperror"),
            "{}",
            a.message
        );
        assert_eq!(a.severity, Severity::Fail, "{}", a.message);
        let fix = a.fix.as_deref().unwrap();
        assert!(fix.contains("add ip4:198.51.100.1 "), "{fix}");
        assert!(!fix.contains("203.0.113.9"), "{fix}");
    }

    #[test]
    fn the_union_lists_each_address_once_and_is_unknown_only_when_all_are() {
        let both = [
            relay("a", &["192.0.2.1", "192.0.2.2"], true),
            relay("b", &["192.0.2.2"], false),
        ];
        match RelayIps::union(&both) {
            RelayIps::Known {
                ips, configured, ..
            } => {
                assert_eq!(ips.len(), 2);
                assert!(!configured);
            }
            other => panic!("{other:?}"),
        }
        let none = [Relay {
            name: Some("a".into()),
            ips: RelayIps::Unknown("x".into()),
        }];
        assert!(matches!(RelayIps::union(&none), RelayIps::Unknown(w) if w == "relay a: x"));
    }
}
