//! Where a domain's DMARC policy and organizational domain come from: the RFC 9989 DNS tree
//! walk, and beside it the RFC 7489 answer from the public suffix list, which receivers that
//! have not moved to RFC 9989 still give. Both are computed so callers can report where they
//! differ instead of silently picking one.
//!
//! Every lookup goes through the injected [`Dns`]. A lookup that fails (SERVFAIL, REFUSED, a
//! timeout) is a [`TempError`], never "no record": a walk that could not ask a name cannot
//! know what that name would have said.

use serde::Serialize;

use super::record::{Policy, Psd, Tags};
use crate::dns::{Dns, TempError, Txt};

/// RFC 9989 section 4.10: from more than this many labels the walk jumps to `JUMP_TO`.
const MAX_LABELS: usize = 8;
const JUMP_TO: usize = 7;

/// One DMARC record and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The domain whose `_dmarc` name holds it (lowercase, no trailing dot).
    pub domain: String,
    /// As it would appear in a zone file, for evidence.
    pub evidence: String,
    pub tags: Tags,
}

/// What one `_dmarc.<domain>` query gave, after discarding non-DMARC TXT records.
#[derive(Debug, Clone)]
enum Step {
    None,
    One(Box<Found>),
    /// More than one record: RFC 9989 discards them all and walks on; RFC 7489 stops.
    Many(usize),
}

/// The names the tree walk asks, in order: the domain, then its parents, jumping to seven
/// labels from more than eight, down to the top-level domain.
pub fn targets(domain: &str) -> Vec<String> {
    let d = clean(domain);
    let parts: Vec<&str> = d.split('.').filter(|l| !l.is_empty()).collect();
    let mut out = vec![parts.join(".")];
    let mut n = parts.len();
    if n > MAX_LABELS {
        n = JUMP_TO;
        out.push(parts[parts.len() - n..].join("."));
    }
    while n > 1 {
        n -= 1;
        out.push(parts[parts.len() - n..].join("."));
    }
    out
}

fn clean(domain: &str) -> String {
    domain.trim().trim_end_matches('.').to_ascii_lowercase()
}

async fn ask(dns: &Dns, domain: &str) -> Result<Step, TempError> {
    let name = format!("_dmarc.{domain}");
    let recs: Vec<(Txt, Tags)> = dns
        .txt(&name)
        .await?
        .into_iter()
        .filter_map(|t| Tags::parse(&t.text()).map(|tags| (t, tags)))
        .collect();
    Ok(match recs.len() {
        0 => Step::None,
        1 => {
            let (txt, tags) = recs.into_iter().next().expect("one record");
            Step::One(Box::new(Found {
                domain: domain.to_owned(),
                evidence: format!("{name}. TXT {}", txt.zone_form()),
                tags,
            }))
        }
        n => Step::Many(n),
    })
}

/// The walk's answers so far, and the failure that stopped it early, if any.
struct Walk {
    steps: Vec<(String, Step)>,
    error: Option<TempError>,
}

/// Walks up from `domain`. With `first_only` it stops at the first record (policy
/// discovery); otherwise at a record with `psd=y` or `psd=n`, or at the top.
async fn walk(dns: &Dns, domain: &str, first_only: bool) -> Walk {
    let mut steps = Vec::new();
    for target in targets(domain) {
        match ask(dns, &target).await {
            Err(e) => {
                return Walk {
                    steps,
                    error: Some(e),
                };
            }
            Ok(step) => {
                let stop = match &step {
                    Step::One(f) => first_only || f.tags.psd != Psd::Unknown,
                    _ => false,
                };
                steps.push((target, step));
                if stop {
                    break;
                }
            }
        }
    }
    Walk { steps, error: None }
}

/// The organizational domain and how it was found, in words for a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgDomain {
    pub domain: String,
    pub how: String,
}

impl OrgDomain {
    /// The domain and how the walk found it, for a finding: "example.com (by the RFC 9989
    /// tree walk: _dmarc.example.com has psd=n)".
    pub fn named(&self) -> String {
        format!("{} (by the RFC 9989 {})", self.domain, self.how)
    }
}

/// RFC 9989 section 4.10.2: the organizational domain by the tree walk.
pub async fn org_domain(dns: &Dns, domain: &str) -> Result<OrgDomain, TempError> {
    let d = clean(domain);
    let w = walk(dns, &d, false).await;
    if let Some(e) = w.error {
        return Err(e);
    }
    let found: Vec<&Found> = w
        .steps
        .iter()
        .filter_map(|(_, s)| match s {
            Step::One(f) => Some(f.as_ref()),
            _ => None,
        })
        .collect();
    let labels = |s: &str| s.split('.').count();
    if let Some(last) = found.last() {
        match last.tags.psd {
            Psd::No => {
                return Ok(OrgDomain {
                    domain: last.domain.clone(),
                    how: format!("tree walk: _dmarc.{} has psd=n", last.domain),
                });
            }
            // The domain itself marked as a public suffix has nothing below it on the path:
            // it is its own organizational domain.
            Psd::Yes if last.domain == d => {
                return Ok(OrgDomain {
                    domain: d.clone(),
                    how: format!("tree walk: _dmarc.{d} has psd=y, and {d} is the domain itself"),
                });
            }
            Psd::Yes => {
                let parts: Vec<&str> = d.split('.').collect();
                let below = parts[parts.len() - labels(&last.domain) - 1..].join(".");
                return Ok(OrgDomain {
                    domain: below,
                    how: format!(
                        "tree walk: _dmarc.{} has psd=y, so the organizational domain is one label below it",
                        last.domain
                    ),
                });
            }
            Psd::Unknown => {}
        }
    }
    Ok(match found.iter().min_by_key(|f| labels(&f.domain)) {
        Some(top) => OrgDomain {
            domain: top.domain.clone(),
            how: format!(
                "tree walk: _dmarc.{} is the record with the fewest labels above {d}",
                top.domain
            ),
        },
        None => OrgDomain {
            domain: d.clone(),
            how: format!("tree walk: no DMARC record at or above {d}, so it is its own"),
        },
    })
}

/// RFC 7489: the public suffix list's registrable domain, or the domain itself when the list
/// does not know it.
pub fn psl_org(domain: &str) -> String {
    let d = clean(domain);
    psl::domain_str(&d).map(str::to_owned).unwrap_or(d)
}

/// The policy a receiver applies to mail from the domain, and which tag gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// `p`, `sp` or `np` (or `p (absent)` when the record has no p=).
    pub tag: &'static str,
    /// The tag's value.
    pub requested: Policy,
    /// After `t=y` (RFC 9989 only): one step lower.
    pub effective: Policy,
}

impl Applied {
    pub fn describe(&self) -> String {
        // RFC 9989 reads a record without p= as p=none: say so rather than print the tag.
        if self.tag == "p (absent)" {
            return "p=none (the record has no p=, which RFC 9989 reads as none)".into();
        }
        if self.requested == self.effective {
            format!("{}={}", self.tag, self.requested.as_str())
        } else {
            format!(
                "{}={} lowered by t=y to {}",
                self.tag,
                self.requested.as_str(),
                self.effective.as_str()
            )
        }
    }
}

/// One discipline's answer: the record that applies, and its policy.
#[derive(Debug, Clone)]
pub struct Side {
    pub record: Option<Found>,
    pub applied: Option<Applied>,
}

/// Both answers for one author domain.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub domain: String,
    /// RFC 9989 policy discovery.
    pub walk: Result<Side, TempError>,
    /// RFC 9989 organizational domain.
    pub walk_org: Result<OrgDomain, TempError>,
    /// RFC 7489 policy discovery.
    pub psl: Result<Side, TempError>,
    pub psl_org: String,
    /// `_dmarc` names holding more than one record, with the count.
    pub multiple: Vec<(String, usize)>,
    /// Whether the domain exists (A, AAAA or MX), when `np` made it matter.
    pub exists: Option<Result<bool, TempError>>,
}

/// RFC 9091 / RFC 9989: a domain with no A, AAAA or MX record does not exist for DMARC.
/// One answer that shows the domain is enough; unknown only when none does and a lookup failed.
async fn exists(dns: &Dns, domain: &str) -> Result<bool, TempError> {
    let (ips, mx) = tokio::join!(dns.ips(domain), dns.mx(domain));
    match (ips, mx) {
        (Ok(i), _) if !i.is_empty() => Ok(true),
        (_, Ok(m)) if !m.is_empty() => Ok(true),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Ok(false),
    }
}

fn apply(found: &Found, author: &str, exists: Option<bool>, rfc9989: bool) -> Applied {
    let t = &found.tags;
    let (tag, requested) = if found.domain == author {
        match t.p {
            Some(p) => ("p", p),
            None => ("p (absent)", Policy::None),
        }
    } else if let (true, Some(false), Some(np)) = (rfc9989, exists, t.np) {
        ("np", np)
    } else if let Some(sp) = t.sp {
        ("sp", sp)
    } else {
        match t.p {
            Some(p) => ("p", p),
            None => ("p (absent)", Policy::None),
        }
    };
    let effective = if rfc9989 && t.testing {
        requested.lowered()
    } else {
        requested
    };
    Applied {
        tag,
        requested,
        effective,
    }
}

/// Both disciplines' policy and organizational domain for `domain`.
pub async fn discover(dns: &Dns, domain: &str) -> Discovery {
    let d = clean(domain);
    let policy_walk = walk(dns, &d, true).await;
    let multiple: Vec<(String, usize)> = policy_walk
        .steps
        .iter()
        .filter_map(|(n, s)| match s {
            Step::Many(k) => Some((n.clone(), *k)),
            _ => None,
        })
        .collect();
    let walk_found = policy_walk.steps.iter().find_map(|(_, s)| match s {
        Step::One(f) => Some(f.as_ref().clone()),
        _ => None,
    });
    let psl_org = psl_org(&d);
    let psl = psl_policy(dns, &d, &psl_org).await;
    let needs_exists = walk_found
        .as_ref()
        .is_some_and(|f| f.domain != d && f.tags.np.is_some());
    let exists = if needs_exists {
        Some(exists(dns, &d).await)
    } else {
        None
    };
    let walk = match (walk_found, policy_walk.error, &exists) {
        // Whether np applies cannot be known: the policy is as unknown as the lookup.
        (Some(_), _, Some(Err(e))) => Err(e.clone()),
        (Some(f), _, _) => {
            let known = exists.as_ref().and_then(|e| e.as_ref().ok().copied());
            Ok(Side {
                applied: Some(apply(&f, &d, known, true)),
                record: Some(f),
            })
        }
        (None, Some(e), _) => Err(e),
        (None, None, _) => Ok(Side {
            record: None,
            applied: None,
        }),
    };
    Discovery {
        walk_org: org_domain(dns, &d).await,
        domain: d,
        walk,
        psl,
        psl_org,
        multiple,
        exists,
    }
}

/// RFC 7489 section 6.6.3: the author domain, then (only if it has no record) the public
/// suffix list's organizational domain; more than one record stops discovery.
async fn psl_policy(dns: &Dns, d: &str, org: &str) -> Result<Side, TempError> {
    let mut step = ask(dns, d).await?;
    if matches!(step, Step::None) && org != d {
        step = ask(dns, org).await?;
    }
    Ok(match step {
        Step::One(f) => Side {
            applied: Some(apply(&f, d, None, false)),
            record: Some(*f),
        },
        Step::None | Step::Many(_) => Side {
            record: None,
            applied: None,
        },
    })
}

impl Discovery {
    /// Where the RFC 7489 answer differs from the RFC 9989 one, in words; empty when they
    /// agree or when a lookup failed (a temperror says nothing about a difference).
    pub fn differences(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(org) = &self.walk_org
            && org.domain != self.psl_org
        {
            out.push(format!(
                "organizational domain: {} for RFC 9989 receivers, {} by the public suffix list for RFC 7489 receivers",
                org.named(),
                self.psl_org
            ));
        }
        let (Ok(w), Ok(p)) = (&self.walk, &self.psl) else {
            return out;
        };
        let at = |s: &Side| {
            s.record
                .as_ref()
                .map_or("no record".to_owned(), |f| format!("_dmarc.{}", f.domain))
        };
        if at(w) != at(p) {
            out.push(format!(
                "policy record: {} by the tree walk, {} by the public suffix list",
                at(w),
                at(p)
            ));
        }
        let pol = |s: &Side| {
            s.applied
                .as_ref()
                .map_or("no policy".to_owned(), |a| a.effective.as_str().to_owned())
        };
        if pol(w) != pol(p) {
            out.push(format!(
                "applied policy: {} for RFC 9989 receivers ({}), {} for RFC 7489 receivers ({})",
                pol(w),
                w.applied.as_ref().map_or(String::new(), Applied::describe),
                pol(p),
                p.applied.as_ref().map_or(String::new(), Applied::describe),
            ));
        }
        out
    }
}

/// Relaxed alignment of two domains under both disciplines.
#[derive(Debug, Clone)]
pub struct Alignment {
    /// RFC 9989: the two organizational domains by the tree walk.
    pub walk: Result<(OrgDomain, OrgDomain), TempError>,
    /// RFC 7489: the two by the public suffix list.
    pub psl: (String, String),
}

impl Alignment {
    pub fn walk_aligned(&self) -> Result<bool, TempError> {
        self.walk
            .as_ref()
            .map(|(a, b)| a.domain == b.domain)
            .map_err(Clone::clone)
    }

    pub fn psl_aligned(&self) -> bool {
        self.psl.0 == self.psl.1
    }
}

/// Relaxed alignment of `a` with `b`: equal organizational domains. Equal domains are
/// aligned under any discipline, so they cost no lookup.
pub async fn relaxed(dns: &Dns, a: &str, b: &str) -> Alignment {
    let (a, b) = (clean(a), clean(b));
    let psl = (psl_org(&a), psl_org(&b));
    if a == b {
        let same = OrgDomain {
            domain: a.clone(),
            how: "tree walk: not needed, the two domains are the same".into(),
        };
        return Alignment {
            walk: Ok((same.clone(), same)),
            psl,
        };
    }
    let (x, y) = tokio::join!(org_domain(dns, &a), org_domain(dns, &b));
    Alignment {
        walk: x.and_then(|x| y.map(|y| (x, y))),
        psl,
    }
}

#[cfg(test)]
mod tests;
