//! DMARC for the From domain: the policy record (found by the RFC 9989 tree walk), its syntax
//! and policy, report destinations and their authorization, and alignment of From with DKIM
//! d= and the envelope domain. Organizational domains come from the tree walk; wherever the
//! public suffix list of RFC 7489 gives another answer (another record, another organizational
//! domain, another alignment verdict), both are reported with the receivers that use each,
//! because receivers that have not moved to RFC 9989 still use the list. How discovery went,
//! `t=y` and the removed tags are `dmarcbis.rs`'s findings.

use super::{Check, Finding, Severity};
use crate::dmarc::discover;
use crate::dmarc::discovery::{Discovery, Found, Side, org_domain, psl_org, relaxed};
use crate::dmarc::record::Policy;
use crate::dns::{Dns, TempError};
use crate::message::dkim::DkimKeyPair;

/// A domain's organizational domain as receivers still on RFC 7489 find it, in words.
fn psl_named(domain: &str) -> String {
    format!("{} (by the public suffix list)", psl_org(domain))
}

fn clean(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

pub async fn audit(dns: &Dns, from: &str, envelope: &str, keys: &[DkimKeyPair]) -> Vec<Finding> {
    let d = discover(dns, from).await;
    let mut out = record(&d);
    let walk = match &d.walk {
        Ok(w) => w,
        Err(_) => {
            out.extend(alignment_unknown(&d.domain));
            return out;
        }
    };
    let Some(found) = &walk.record else {
        out.extend(alignment(dns, &d, envelope, keys).await);
        return out;
    };
    out.extend(syntax(&d.domain, found));
    out.extend(policy(&d, walk, found));
    out.extend(reports(dns, &d, found).await);
    out.extend(alignment(dns, &d, envelope, keys).await);
    out
}

/// `dmarc.record`: the record RFC 9989 receivers apply, and the one RFC 7489 receivers apply
/// when it is another (or none).
fn record(d: &Discovery) -> Vec<Finding> {
    let from = d.domain.as_str();
    let f = |sev, msg: String| Finding::new(Check::DmarcRecord, sev, from, msg);
    let walk = match &d.walk {
        Err(e) => {
            return vec![f(
                Severity::TempError,
                format!("the DMARC lookup failed, so the RFC 9989 tree walk could not finish: {e}"),
            )];
        }
        Ok(w) => w,
    };
    let walk_at = |s: &Side| {
        s.record
            .as_ref()
            .map_or("no record".to_owned(), |r| format!("_dmarc.{}", r.domain))
    };
    // RFC 7489 receivers ask only the From domain and, when it has no record, the PSL's
    // organizational domain: duplicates anywhere else are skipped by RFC 9989 receivers and
    // never seen by RFC 7489 ones.
    let own_none = !d.multiple.iter().any(|(name, _)| name == from)
        && !matches!(&d.psl, Ok(s) if s.record.as_ref().is_some_and(|r| r.domain == from));
    let mut out: Vec<Finding> = d.multiple.iter().map(|(name, n)| {
        let older_ask = name == from || (name == &d.psl_org && own_none);
        let (sev, older) = if older_ask {
            (Severity::Fail, "RFC 7489 receivers then apply no DMARC policy")
        } else {
            (Severity::Warn, "RFC 7489 receivers never look there")
        };
        f(sev, format!("{n} DMARC records at _dmarc.{name}: {older}; RFC 9989 receivers skip the name and walk on (to {})", walk_at(walk)))
            .fix(format!("keep exactly one v=DMARC1 record at _dmarc.{name}"))
    }).collect();
    let Some(found) = &walk.record else {
        // At the public suffix list's organizational domain a record is found by both
        // disciplines: the walk passes it on the way up, and RFC 7489 looks there.
        let org = &d.psl_org;
        out.push(f(Severity::Fail, format!("no DMARC record at _dmarc.{from} or at any name above it (the RFC 9989 tree walk), so none at _dmarc.{org} either (the organizational domain by the public suffix list, for RFC 7489 receivers): Gmail, Yahoo and Microsoft require one from bulk senders"))
            .fix(format!("publish _dmarc.{org}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}\"")));
        return out;
    };
    let own = found.domain == from;
    let walk_words = if own {
        format!("one DMARC record at _dmarc.{from}")
    } else {
        format!(
            "{from} has no record of its own and inherits _dmarc.{}'s, the first the RFC 9989 tree walk finds above it",
            found.domain
        )
    };
    let (sev, psl_words) = match &d.psl {
        Err(e) => {
            out.push(f(Severity::TempError, format!("the lookup RFC 7489 receivers make (at _dmarc.{from}, then at the organizational domain {}) failed, so their policy is unknown: {e}", psl_named(from))));
            (Severity::Pass, String::new())
        }
        Ok(Side {
            record: Some(p), ..
        }) if p.domain == found.domain => (
            Severity::Pass,
            if own {
                String::new()
            } else {
                format!(
                    "; RFC 7489 receivers find the same record at the organizational domain {}",
                    psl_named(from)
                )
            },
        ),
        Ok(Side {
            record: Some(p), ..
        }) => (
            Severity::Warn,
            format!(
                "; RFC 7489 receivers look at _dmarc.{from} and then at the organizational domain {}, and apply _dmarc.{} instead",
                psl_named(from),
                p.domain
            ),
        ),
        Ok(Side { record: None, .. }) => (
            Severity::Fail,
            format!(
                "; RFC 7489 receivers look only at _dmarc.{from} and at the organizational domain {}, find no usable record there, and apply no DMARC policy",
                psl_named(from)
            ),
        ),
    };
    let mut finding = f(sev, format!("{walk_words}{psl_words}")).evidence(found.evidence.clone());
    // With duplicates at the From domain, their own finding says what to fix.
    if sev != Severity::Pass && d.multiple.is_empty() {
        finding = finding.fix(format!(
            "publish the policy you mean at _dmarc.{from} itself: receivers of both kinds look there first"
        ));
    }
    out.push(finding);
    out
}

/// `dmarc.syntax`: values RFC 9989 does not allow, and a record without `p=`, which RFC 9989
/// reads as `p=none`.
fn syntax(from: &str, found: &Found) -> Vec<Finding> {
    let f = |sev, msg: String| {
        Finding::new(Check::DmarcSyntax, sev, from, msg).evidence(found.evidence.clone())
    };
    let t = &found.tags;
    let mut out = Vec::new();
    if !t.invalid.is_empty() {
        out.push(
            f(
                Severity::Fail,
                format!(
                    "values RFC 9989 does not allow: {}; receivers treat each such tag as absent",
                    t.invalid.join(", ")
                ),
            )
            .fix("p, sp and np take none, quarantine or reject; psd y, n or u; t y or n; adkim and aspf r or s".into()),
        );
    }
    let p_written = t.invalid.iter().any(|i| i.starts_with("p="));
    if t.p.is_none() && !p_written {
        // RFC 7489 section 6.6.3 reads a record without a valid p= as p=none only when rua=
        // names a report address; RFC 9989 always does.
        let (sev, older) = if t.rua.is_empty() {
            (
                Severity::Warn,
                "RFC 7489 receivers do so only when rua= names a report address, and this record has none, so they apply no DMARC at all",
            )
        } else {
            (
                Severity::Info,
                "RFC 7489 receivers do the same because rua= names a report address",
            )
        };
        out.push(
            f(
                sev,
                format!("the record has no p= tag: RFC 9989 receivers read it as p=none; {older}"),
            )
            .fix("write p=none explicitly (then p=quarantine once the reports show your mail aligned)".into()),
        );
    }
    out
}

/// `dmarc.policy` and `dmarc.pct`: the policy each kind of receiver applies, judged by the
/// weaker of the two.
fn policy(d: &Discovery, walk: &Side, found: &Found) -> Vec<Finding> {
    let from = d.domain.as_str();
    let f = |id, sev, msg: String| Finding::new(id, sev, from, msg);
    let Some(a) = &walk.applied else {
        return Vec::new();
    };
    let mut msg = format!(
        "RFC 9989 receivers apply {} from _dmarc.{}",
        a.describe(),
        found.domain
    );
    if a.tag == "np" {
        msg.push_str(&format!(
            " ({from} has no A, AAAA or MX record, so np= applies)"
        ));
    }
    let mut weakest = a.effective;
    match &d.psl {
        Ok(Side {
            applied: Some(p),
            record: Some(r),
        }) => {
            if p.effective == a.effective && p.tag == a.tag && r.domain == found.domain {
                msg.push_str("; RFC 7489 receivers apply the same");
            } else {
                msg.push_str(&format!(
                    "; RFC 7489 receivers, going by the organizational domain {}, apply {} from _dmarc.{}",
                    psl_named(from),
                    p.describe(),
                    r.domain
                ));
            }
            weakest = weakest.min(p.effective);
        }
        Ok(_) => {
            msg.push_str(&format!(
                "; RFC 7489 receivers, going by the organizational domain {}, find no record and apply none",
                psl_named(from)
            ));
            weakest = Policy::None;
        }
        Err(e) => msg.push_str(&format!(
            "; the policy of RFC 7489 receivers is unknown (their lookup failed: {e})"
        )),
    }
    let mut out = vec![match weakest {
        Policy::None => f(Check::DmarcPolicy, Severity::Warn, format!("{msg}. Under none, receivers report but do not act on failures, so spoofing your domain still works"))
            .evidence(found.evidence.clone())
            .fix("once reports show all your mail aligned (mailshot dmarc report), move to p=quarantine, then p=reject".into()),
        _ => f(Check::DmarcPolicy, Severity::Pass, format!("the policy is enforced: {msg}")),
    }];
    let pct = found.tags.obsolete.iter().find(|(n, _)| *n == "pct");
    if let Some((_, pct)) = pct
        && pct.parse::<u8>().map_or(true, |n| n < 100)
    {
        out.push(
            f(
                Check::DmarcPct,
                Severity::Warn,
                format!("pct={pct}: RFC 7489 receivers apply the policy to only part of the failing mail (RFC 9989 receivers ignore pct)"),
            )
            .evidence(found.evidence.clone())
            .fix("remove pct (100 is the default) once you are confident".into()),
        );
    }
    out
}

/// `dmarc.rua` and `dmarc.rua-authorization`: whether aggregate reports are requested, and
/// whether each destination outside the policy domain's organizational domain authorizes it.
async fn reports(dns: &Dns, d: &Discovery, found: &Found) -> Vec<Finding> {
    let from = d.domain.as_str();
    if found.tags.rua.is_empty() {
        return vec![Finding::new(Check::DmarcRua, Severity::Warn, from, "no rua=: you receive no aggregate reports, so you cannot see who sends as you or when the policy can tighten".into())
            .fix(format!("add rua=mailto:dmarc-reports@{} to the record", found.domain))];
    }
    let mut out = Vec::new();
    for uri in &found.tags.rua {
        // URI schemes are case-insensitive (RFC 3986 3.1): MAILTO: is as good as mailto:.
        let Some(addr) = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
            .map(|_| &uri[7..])
        else {
            continue;
        };
        let addr = addr.split('!').next().unwrap_or(addr);
        let Some((_, dest)) = addr.rsplit_once('@') else {
            continue;
        };
        out.push(destination(dns, from, &found.domain, addr, &clean(dest)).await);
    }
    out
}

/// One `mailto:` report destination. RFC 9989 section 3.3 asks for
/// `<policy domain>._report._dmarc.<destination>` when the two organizational domains differ;
/// the tree walk decides that, and the public suffix list's verdict is named where it differs.
async fn destination(dns: &Dns, from: &str, policy: &str, addr: &str, dest: &str) -> Finding {
    let f = |id, sev, msg: String| Finding::new(id, sev, from, msg);
    let auth = format!("{policy}._report._dmarc.{dest}");
    if dest == policy {
        return f(
            Check::DmarcRua,
            Severity::Pass,
            format!(
                "aggregate reports go to {addr}, at the policy domain itself: no authorization needed"
            ),
        );
    }
    let (po, qo) = tokio::join!(org_domain(dns, policy), org_domain(dns, dest));
    let (po, qo) = match (po, qo) {
        (Ok(p), Ok(q)) => (p, q),
        // At worst reports go missing: never a reason to block sending.
        (Err(e), _) | (_, Err(e)) => {
            return f(
                Check::DmarcRuaAuthorization,
                Severity::Warn,
                format!(
                    "reports go to {addr}, but whether {dest} needs to authorize {policy} is unknown: the RFC 9989 tree walk for the organizational domains failed ({e})"
                ),
            );
        }
    };
    let walk_same = po.domain == qo.domain;
    let psl_same = psl_org(policy) == psl_org(dest);
    let orgs = if walk_same {
        format!("{policy} and {dest} are both under {}", po.named())
    } else {
        format!(
            "{policy} is under {}, {dest} under {}",
            po.named(),
            qo.named()
        )
    };
    let psl = format!(
        "the public suffix list puts {policy} under {} and {dest} under {}",
        psl_org(policy),
        psl_org(dest)
    );
    if walk_same && psl_same {
        return f(
            Check::DmarcRua,
            Severity::Pass,
            format!(
                "aggregate reports go to {addr}, no authorization needed: {orgs}; the public suffix list agrees"
            ),
        );
    }
    let authorized = match dns.txt(&auth).await {
        Ok(v) => v.iter().any(|t| {
            // `v=DMARC1` as a whole tag: not `v=DMARC10`.
            let text = t.text();
            let v = text.trim_start().split(';').next().unwrap_or("");
            v.trim() == "v=DMARC1"
        }),
        Err(e) => {
            return f(
                Check::DmarcRuaAuthorization,
                Severity::Warn,
                format!("reports go to {addr} ({orgs}), but the lookup of {auth} failed: {e}"),
            );
        }
    };
    let psl_note = if walk_same == psl_same {
        "; the public suffix list agrees".to_owned()
    } else {
        format!("; {psl}, so RFC 7489 receivers judge otherwise")
    };
    let fix = format!("the owner of {dest} publishes {auth}. TXT \"v=DMARC1\"");
    match (authorized, walk_same) {
        (true, _) => f(
            Check::DmarcRua,
            Severity::Pass,
            format!("aggregate reports go to {addr}, and {auth} authorizes {policy}: {orgs}{psl_note}"),
        ),
        (false, false) => {
            let older = if psl_same {
                format!("; RFC 7489 receivers still send them, because {psl}")
            } else {
                "; the public suffix list agrees, so no receiver sends them".to_owned()
            };
            f(Check::DmarcRuaAuthorization, Severity::Warn, format!("reports go to {addr}, another organization than {policy} by the RFC 9989 tree walk ({orgs}), and {auth} does not authorize it: RFC 9989 receivers will not send them{older}")).fix(fix)
        }
        (false, true) => f(Check::DmarcRuaAuthorization, Severity::Warn, format!("reports go to {addr}: {orgs}, so RFC 9989 receivers send them without authorization; but {psl}, so RFC 7489 receivers look for {auth}, find nothing, and send none")).fix(fix),
    }
    .evidence(format!("{auth}. TXT: {}", if authorized { "v=DMARC1" } else { "none" }))
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

/// One identifier's alignment with From under both disciplines.
struct Judged {
    domain: String,
    /// RFC 9989: by the tree walk's organizational domains (or exactly, when strict).
    walk: Result<bool, TempError>,
    /// RFC 7489: by the public suffix list's (or exactly, when strict).
    psl: bool,
    /// How the organizational domains were found, in words.
    why: String,
}

impl Judged {
    /// Best first: aligned under the walk, then unknown, then not; the PSL breaks ties.
    fn rank(&self) -> (u8, bool) {
        let w = match self.walk {
            Ok(true) => 2,
            Err(_) => 1,
            Ok(false) => 0,
        };
        (w, self.psl)
    }
}

/// `strict` is (RFC 9989's record says s, RFC 7489's record says s): the two disciplines may
/// apply different records.
async fn judge(dns: &Dns, domain: &str, from: &str, strict: (bool, bool)) -> Judged {
    let domain = clean(domain);
    let same = domain == from;
    let a = relaxed(dns, &domain, from).await;
    let walk = if strict.0 { Ok(same) } else { a.walk_aligned() };
    let psl = if strict.1 { same } else { a.psl_aligned() };
    let why = if same {
        "the same domain".to_owned()
    } else {
        let walk_words = match (&a.walk, strict.0) {
            (_, true) => format!("strict alignment for RFC 9989 receivers: {domain} is not {from}"),
            (Ok((x, y)), false) if x.domain == y.domain => format!("both under {}", x.named()),
            (Ok((x, y)), false) => format!(
                "{domain} is under {}, {from} under {}",
                x.named(),
                y.named()
            ),
            (Err(e), false) => {
                format!("the RFC 9989 tree walk for their organizational domains failed: {e}")
            }
        };
        let psl_words = if strict.1 {
            format!("strict alignment for RFC 7489 receivers: {domain} is not {from}")
        } else {
            format!(
                "the public suffix list puts {domain} under {} and {from} under {}",
                a.psl.0, a.psl.1
            )
        };
        if walk.as_ref().is_ok_and(|w| *w == psl) {
            format!("{walk_words}; {psl_words} too")
        } else {
            format!("{walk_words}; but {psl_words}")
        }
    };
    Judged {
        domain,
        walk,
        psl,
        why,
    }
}

/// `dmarc.align-dkim` and `dmarc.align-spf`. An identifier that aligns under one discipline
/// and not the other is reported with both; it fails when, under either, neither identifier
/// aligns (DMARC then fails at those receivers).
async fn alignment(dns: &Dns, d: &Discovery, envelope: &str, keys: &[DkimKeyPair]) -> Vec<Finding> {
    let from = d.domain.as_str();
    let modes = |side: &Result<Side, TempError>| {
        side.as_ref()
            .ok()
            .and_then(|s| s.record.as_ref())
            .map_or((false, false), |r| {
                (r.tags.adkim_strict, r.tags.aspf_strict)
            })
    };
    let (w, p) = (modes(&d.walk), modes(&d.psl));
    // A key mailshot refuses to sign with (`dkim.key-strength`) puts no signature on the
    // message, so its d= cannot align anything.
    let mut domains: Vec<String> = keys
        .iter()
        .filter(|k| k.refused().is_none())
        .map(|k| clean(k.domain()))
        .collect();
    domains.sort();
    domains.dedup();
    let mut dkim = Vec::new();
    for domain in &domains {
        dkim.push(judge(dns, domain, from, (w.0, p.0)).await);
    }
    let dkim = dkim.into_iter().max_by_key(Judged::rank).unwrap_or(Judged {
        domain: "(no key)".into(),
        walk: Ok(false),
        psl: false,
        why: "no DKIM key that mailshot signs with is configured".into(),
    });
    let spf = judge(dns, envelope, from, (w.1, p.1)).await;
    let org = match &d.walk_org {
        Ok(o) if o.domain == d.psl_org => {
            format!(" (or under {}, with relaxed alignment)", o.named())
        }
        _ => String::new(),
    };
    vec![
        with_fix(
            finding(
                Check::DmarcAlignDkim,
                "DKIM d=",
                &dkim,
                &spf,
                from,
                (w.0, p.0),
            ),
            format!("sign with a key whose d= is {from}{org}"),
        ),
        with_fix(
            finding(
                Check::DmarcAlignSpf,
                "envelope domain ",
                &spf,
                &dkim,
                from,
                (w.1, p.1),
            ),
            format!("use a return_path under {from}{org}"),
        ),
    ]
}

/// One identifier's finding, given the other identifier's verdict.
fn finding(
    check: Check,
    label: &str,
    me: &Judged,
    other: &Judged,
    from: &str,
    strict: (bool, bool),
) -> Finding {
    let mode = |s: bool| if s { "strict" } else { "relaxed" };
    let modes = if strict.0 == strict.1 {
        mode(strict.0).to_owned()
    } else {
        format!(
            "{} for RFC 9989 receivers, {} for RFC 7489 receivers",
            mode(strict.0),
            mode(strict.1)
        )
    };
    let head = format!("{label}{}", me.domain);
    let (sev, verdict, fails) = match me.walk {
        Err(_) => (
            Severity::TempError,
            format!(
                "{head}: alignment with From {from} is unknown for RFC 9989 receivers, {} for RFC 7489 receivers",
                if me.psl { "aligned" } else { "not aligned" }
            ),
            "",
        ),
        Ok(true) if me.psl => (
            Severity::Pass,
            format!("{head} aligns with From {from}"),
            "",
        ),
        Ok(w) => {
            // DMARC fails outright under a discipline where neither identifier aligns.
            let walk_fails = !w && matches!(other.walk, Ok(false));
            let psl_fails = !me.psl && !other.psl;
            let sev = if walk_fails || psl_fails {
                Severity::Fail
            } else {
                Severity::Warn
            };
            let who = match (w, me.psl) {
                (true, false) => format!(
                    "{head} aligns with From {from} for RFC 9989 receivers but not for RFC 7489 receivers"
                ),
                (false, true) => format!(
                    "{head} does not align with From {from} for RFC 9989 receivers, but does for RFC 7489 receivers"
                ),
                _ => format!("{head} does not align with From {from}"),
            };
            let fails = match (walk_fails, psl_fails) {
                (true, true) => ". No identifier aligns, so DMARC fails at every receiver",
                (true, false) => {
                    ". No identifier aligns for RFC 9989 receivers, so DMARC fails there"
                }
                (false, true) => {
                    ". No identifier aligns for RFC 7489 receivers, so DMARC fails there"
                }
                (false, false) => "",
            };
            (sev, who, fails)
        }
    };
    Finding::new(
        check,
        sev,
        from,
        format!("{verdict} ({modes}): {}{fails}", me.why),
    )
}

/// A fix only where the finding is a warning or a failure: a temperror asks for no change.
fn with_fix(f: Finding, fix: String) -> Finding {
    match f.severity {
        Severity::Warn | Severity::Fail => f.fix(fix),
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dns::{Overlay, Source};

    /// Everything under com. answered by the overlay; anything else is a temperror.
    const ZONE: &str = r#"$ORIGIN com.
$TTL 300
; two records at the From domain, one at its parent
_dmarc.two.dup.com.  TXT "v=DMARC1; p=none"
_dmarc.two.dup.com.  TXT "v=DMARC1; p=reject"
_dmarc.dup.com.      TXT "v=DMARC1; p=quarantine; rua=mailto:d@dup.com"
; a record between the From domain and the PSL's organizational domain
_dmarc.eu.mid.com.   TXT "v=DMARC1; p=reject; rua=mailto:d@eu.mid.com"
; two records at a name between a.b.dup2.com and its organizational domain dup2.com
_dmarc.b.dup2.com.   TXT "v=DMARC1; p=none"
_dmarc.b.dup2.com.   TXT "v=DMARC1; p=reject"
_dmarc.dup2.com.     TXT "v=DMARC1; p=quarantine; rua=mailto:d@dup2.com"
; a report destination written with an upper-case scheme, in another organization
_dmarc.upper.com.    TXT "v=DMARC1; p=reject; rua=MAILTO:reports@other.com"
"#;

    async fn findings(from: &str) -> Vec<Finding> {
        let o = Overlay::parse(Path::new("t.zone"), ZONE).unwrap();
        let dns = Dns::new(&Source::Offline, Some(o)).unwrap();
        audit(&dns, from, from, &[]).await
    }

    fn of(f: &[Finding], c: Check) -> Vec<(Severity, &str)> {
        f.iter()
            .filter(|x| x.check == c)
            .map(|x| (x.severity, x.message.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn duplicates_stop_rfc7489_and_the_walk_goes_on() {
        let f = findings("two.dup.com").await;
        let rec = of(&f, Check::DmarcRecord);
        assert_eq!(rec.len(), 2, "{f:#?}");
        assert_eq!(rec[0].0, Severity::Fail);
        assert!(
            rec[0].1.contains("2 DMARC records at _dmarc.two.dup.com"),
            "{}",
            rec[0].1
        );
        assert!(
            rec[0].1.contains("walk on (to _dmarc.dup.com)"),
            "{}",
            rec[0].1
        );
        // RFC 7489 receivers stop at the duplicates and apply nothing.
        assert_eq!(rec[1].0, Severity::Fail);
        assert!(rec[1].1.contains("apply no DMARC policy"), "{}", rec[1].1);
        let pol = of(&f, Check::DmarcPolicy);
        assert_eq!(pol[0].0, Severity::Warn);
        assert!(
            pol[0]
                .1
                .contains("RFC 9989 receivers apply p=quarantine from _dmarc.dup.com"),
            "{}",
            pol[0].1
        );
    }

    /// Duplicates at a name RFC 7489 receivers never ask (neither the From domain nor the
    /// PSL's organizational domain) are a warning: those receivers apply dup2.com's record.
    #[tokio::test]
    async fn duplicates_where_rfc7489_never_looks_are_a_warning() {
        let f = findings("a.b.dup2.com").await;
        let rec = of(&f, Check::DmarcRecord);
        let dup = rec
            .iter()
            .find(|(_, m)| m.contains("2 DMARC records at _dmarc.b.dup2.com"))
            .unwrap_or_else(|| panic!("{f:#?}"));
        assert_eq!(dup.0, Severity::Warn, "{}", dup.1);
        assert!(
            dup.1.contains("RFC 7489 receivers never look there"),
            "{}",
            dup.1
        );
        assert!(!dup.1.contains("apply no DMARC policy"), "{}", dup.1);
    }

    /// `MAILTO:` is a mailto URI (schemes are case-insensitive): its destination in another
    /// organization is checked for authorization, not dropped.
    #[tokio::test]
    async fn an_upper_case_mailto_is_still_a_report_destination() {
        let f = findings("upper.com").await;
        let auth = of(&f, Check::DmarcRuaAuthorization);
        assert_eq!(auth.len(), 1, "{f:#?}");
        assert!(auth[0].1.contains("other.com"), "{}", auth[0].1);
    }

    #[tokio::test]
    async fn a_record_the_psl_skips_is_named_with_both() {
        // The walk finds _dmarc.eu.mid.com; RFC 7489 asks a.eu.mid.com, then mid.com: nothing.
        let f = findings("a.eu.mid.com").await;
        let rec = of(&f, Check::DmarcRecord);
        assert_eq!(rec.len(), 1, "{f:#?}");
        assert_eq!(rec[0].0, Severity::Fail);
        assert!(
            rec[0].1.contains("inherits _dmarc.eu.mid.com's"),
            "{}",
            rec[0].1
        );
        assert!(
            rec[0]
                .1
                .contains("organizational domain mid.com (by the public suffix list)"),
            "{}",
            rec[0].1
        );
        let pol = of(&f, Check::DmarcPolicy);
        assert_eq!(pol[0].0, Severity::Warn);
        assert!(
            pol[0].1.contains("find no record and apply none"),
            "{}",
            pol[0].1
        );
    }
}
