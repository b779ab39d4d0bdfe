//! The finished summary, built once from the running totals: what `--format json` prints
//! (its schema is documented on [`Summary`]) and what the human rendering reads.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::aggregate::{Aggregate, Counts, days_between};
use super::container::SkipKind;
use super::digest::{Disposition, Policy};
use super::recommend::{self, Evidence, Verdict};

pub const SCHEMA: &str = "mailshot.dmarc-report/1";

/// A file that contributed nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub path: PathBuf,
    pub kind: SkipKind,
    pub reason: String,
}

/// The summary of a set of DMARC aggregate reports; `--format json` prints it.
///
/// Schema `mailshot.dmarc-report/1` (the name changes if a field changes meaning):
///
/// ```json
/// {
///   "schema": "mailshot.dmarc-report/1",
///   "files": {"found": 8, "read": 6, "skipped": 2, "not_reports": 0, "broken": 2},
///   "reports": {"counted": 5, "duplicates": 1},
///   "skipped": [{"path": "reports/broken/cut-off.xml", "kind": "broken",
///                "reason": "the report is truncated: ..."}],
///   "date_range": {"begin": "2026-10-01T00:00:00Z", "end": "2026-10-22T00:00:00Z",
///                  "begin_unix": 1790812800, "end_unix": 1792627200, "days": 21.0},
///   "totals": COUNTS,
///   "organizations": [{"org": "google.com", "reports": 2, "generators": ["..."], ...COUNTS}],
///   "sources": [{"ip": "192.0.2.10", "flagged": false,
///                "orgs": [{"org": "google.com", "messages": 2300}],
///                "domains": ["news.example.com"], ...COUNTS}],
///   "domains": [{"domain": "news.example.com", "policy": "none", "np": "none" | null,
///                "testing": false, "reports": 5, "rfc9990_reports": 1,
///                "discovery_method": {"psl": 0, "treewalk": 1},
///                "date_range": {...} | null, ...COUNTS,
///                "recommendation": {"verdict": "ready", "next_policy": "quarantine",
///                                   "message": "99.1% of 5,440 messages over 21 days aligned; ready for p=quarantine",
///                                   "fix_first": [{"ip": "198.51.100.7", "messages": 30, "failed": 30}],
///                                   "review": [...same shape...]}}],
///   "thresholds": {"min_aligned_pct": 98.0, "min_days": 14.0, "min_messages": 1000,
///                  "flag_below_pct": 90.0}
/// }
/// ```
///
/// COUNTS, flattened into each object that has them:
/// `messages`; `dkim_aligned`, `spf_aligned` (policy_evaluated pass: passed *and* aligned);
/// `dmarc_pass` (either aligned); `dkim_pass`, `spf_pass` (auth_results: some signature or
/// the SPF check passed, aligned or not); `dkim_aligned_pct`, `spf_aligned_pct`,
/// `dmarc_pass_pct` (0–100, two decimals, null when there are no messages); and
/// `disposition`: `{"none", "pass", "quarantine", "reject", "unknown"}` message counts.
///
/// - `files`: every file found (walked folders, named files); `read` yielded at least one
///   report; `skipped` = `not_reports` (other files and mails: nothing lost) + `broken`
///   (corrupt or truncated: their messages are missing from the totals).
/// - `reports.duplicates`: reports seen again (same organization and report id), not counted.
/// - `date_range`: first begin to last end over the counted reports; null when none gave one.
///   `days` is rounded to the hour.
/// - `sources`: one per source IP (`"unknown"` when the reports gave none), most messages
///   first. `flagged`: under `thresholds.flag_below_pct` of its messages pass DMARC (a
///   forgotten service, a forwarder or spoofing).
/// - `organizations[].generators`: the report-writing software named by RFC 9990 reports.
/// - `domains[].np`, `testing`: RFC 9990's `np` and `testing` from the newest report (null
///   and false for RFC 7489 reports). `rfc9990_reports` counts the reports that declared the
///   `urn:ietf:params:xml:ns:dmarc-2.0` namespace; `discovery_method` counts how their
///   receivers found the policy (public suffix list or RFC 9989 tree walk).
/// - `domains`: one per policy_published domain. `policy` is the `p=` of its newest report
///   (`none`, `quarantine`, `reject`, or `unknown` when not stated). `recommendation.verdict`
///   is `ready` (move to `next_policy`), `strictest` (already p=reject), `fix_first` (below
///   `min_aligned_pct`: fix `fix_first`, the sources with failing messages, most failures
///   first) or `wait` (too few days or messages). `review` lists the flagged sources whose
///   mail the next step would affect.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub schema: &'static str,
    pub files: Files,
    pub reports: Reports,
    pub skipped: Vec<SkippedJson>,
    pub date_range: Option<DateRange>,
    pub totals: CountsJson,
    pub organizations: Vec<Organization>,
    pub sources: Vec<Source>,
    pub domains: Vec<Domain>,
    pub thresholds: Thresholds,
}

#[derive(Debug, Serialize)]
pub struct Files {
    pub found: u64,
    pub read: u64,
    pub skipped: u64,
    pub not_reports: u64,
    pub broken: u64,
}

#[derive(Debug, Serialize)]
pub struct Reports {
    pub counted: u64,
    pub duplicates: u64,
}

#[derive(Debug, Serialize)]
pub struct SkippedJson {
    pub path: String,
    pub kind: SkipKind,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct DateRange {
    pub begin: String,
    pub end: String,
    pub begin_unix: u64,
    pub end_unix: u64,
    pub days: f64,
}

impl DateRange {
    fn new(begin: Option<u64>, end: Option<u64>) -> Option<DateRange> {
        let (begin, end) = (begin?, end?);
        let time = |s: u64| crate::clock::rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        Some(DateRange {
            begin: time(begin),
            end: time(end),
            begin_unix: begin,
            end_unix: end,
            days: days_between(begin, end),
        })
    }
}

#[derive(Debug, Serialize)]
pub struct DispositionsJson {
    pub none: u64,
    pub pass: u64,
    pub quarantine: u64,
    pub reject: u64,
    pub unknown: u64,
}

#[derive(Debug, Serialize)]
pub struct CountsJson {
    pub messages: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    pub dmarc_pass: u64,
    pub dkim_pass: u64,
    pub spf_pass: u64,
    pub dkim_aligned_pct: Option<f64>,
    pub spf_aligned_pct: Option<f64>,
    pub dmarc_pass_pct: Option<f64>,
    pub disposition: DispositionsJson,
    #[serde(skip)]
    pub counts: Counts,
}

impl From<Counts> for CountsJson {
    fn from(c: Counts) -> Self {
        let pct = |part| recommend::pct(part, c.messages).map(|p| (p * 100.0).round() / 100.0);
        CountsJson {
            messages: c.messages,
            dkim_aligned: c.dkim_aligned,
            spf_aligned: c.spf_aligned,
            dmarc_pass: c.dmarc_pass,
            dkim_pass: c.dkim_pass,
            spf_pass: c.spf_pass,
            dkim_aligned_pct: pct(c.dkim_aligned),
            spf_aligned_pct: pct(c.spf_aligned),
            dmarc_pass_pct: pct(c.dmarc_pass),
            disposition: DispositionsJson {
                none: c.disposition(Disposition::None),
                pass: c.disposition(Disposition::Pass),
                quarantine: c.disposition(Disposition::Quarantine),
                reject: c.disposition(Disposition::Reject),
                unknown: c.disposition(Disposition::Unknown),
            },
            counts: c,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Organization {
    pub org: String,
    pub reports: u64,
    /// The software that wrote its reports (RFC 9990 `generator`), when they say.
    pub generators: Vec<String>,
    #[serde(flatten)]
    pub counts: CountsJson,
}

#[derive(Debug, Serialize)]
pub struct OrgMessages {
    pub org: String,
    pub messages: u64,
}

#[derive(Debug, Serialize)]
pub struct Source {
    /// The address in canonical form, or "unknown".
    pub ip: String,
    pub flagged: bool,
    /// Reporting organizations, most messages first.
    pub orgs: Vec<OrgMessages>,
    pub domains: Vec<String>,
    #[serde(flatten)]
    pub counts: CountsJson,
}

#[derive(Debug, Serialize)]
pub struct Domain {
    pub domain: String,
    pub policy: Policy,
    /// RFC 9990: the policy for non-existent subdomains, and whether `t=y` (testing) was
    /// published, from the newest report.
    pub np: Option<Policy>,
    pub testing: bool,
    pub reports: u64,
    /// Reports in RFC 9990's format (its namespace), and how their receivers found the policy.
    pub rfc9990_reports: u64,
    pub discovery_method: DiscoveryCounts,
    pub date_range: Option<DateRange>,
    #[serde(flatten)]
    pub counts: CountsJson,
    pub recommendation: Recommendation,
}

/// Reports per policy discovery method (RFC 9990 `discovery_method`); RFC 7489 reports say
/// neither.
#[derive(Debug, Serialize)]
pub struct DiscoveryCounts {
    pub psl: u64,
    pub treewalk: u64,
}

#[derive(Debug, Serialize)]
pub struct Recommendation {
    pub verdict: &'static str,
    pub next_policy: Option<Policy>,
    pub message: String,
    pub fix_first: Vec<SourceFailures>,
    pub review: Vec<SourceFailures>,
    #[serde(skip)]
    pub decided: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceFailures {
    pub ip: String,
    pub messages: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct Thresholds {
    pub min_aligned_pct: f64,
    pub min_days: f64,
    pub min_messages: u64,
    pub flag_below_pct: f64,
}

/// One source's counts, messages per organization, and the domains it sent as.
type SourceRollup<'a> = (Counts, BTreeMap<&'a str, u64>, BTreeSet<&'a str>);

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

fn flagged(c: &Counts) -> bool {
    recommend::pct(c.dmarc_pass, c.messages).is_some_and(|p| p < recommend::FLAG_BELOW_PCT)
}

impl Summary {
    pub fn new(agg: &Aggregate, files_found: u64, files_read: u64, skipped: &[Skipped]) -> Summary {
        let mut skipped: Vec<&Skipped> = skipped.iter().collect();
        skipped.sort();

        // Per source IP, across organizations and domains.
        let mut by_ip: BTreeMap<Option<IpAddr>, SourceRollup<'_>> = BTreeMap::new();
        let mut by_org: BTreeMap<&str, Counts> = BTreeMap::new();
        let mut by_domain: BTreeMap<&str, (Counts, BTreeMap<Option<IpAddr>, Counts>)> =
            BTreeMap::new();
        for (cell, counts) in &agg.cells {
            let (c, orgs, domains) = by_ip.entry(cell.ip).or_default();
            c.merge(counts);
            *orgs.entry(&cell.org).or_default() += counts.messages;
            domains.insert(&cell.domain);
            by_org.entry(&cell.org).or_default().merge(counts);
            let (dc, sources) = by_domain.entry(&cell.domain).or_default();
            dc.merge(counts);
            sources.entry(cell.ip).or_default().merge(counts);
        }

        let mut sources: Vec<Source> = by_ip
            .into_iter()
            .map(|(ip, (counts, orgs, domains))| {
                let mut orgs: Vec<OrgMessages> = orgs
                    .into_iter()
                    .map(|(org, messages)| OrgMessages {
                        org: org.to_owned(),
                        messages,
                    })
                    .collect();
                orgs.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.org.cmp(&b.org)));
                Source {
                    ip: ip_text(ip),
                    flagged: flagged(&counts),
                    orgs,
                    domains: domains.into_iter().map(str::to_owned).collect(),
                    counts: counts.into(),
                }
            })
            .collect();
        // Most messages first; the BTreeMap order (by address) breaks ties.
        sources.sort_by_key(|s| std::cmp::Reverse(s.counts.messages));

        let organizations = organizations(agg, &by_org);
        let domains = domains(agg, by_domain);

        let count = |kind| skipped.iter().filter(|s| s.kind == kind).count() as u64;
        Summary {
            schema: SCHEMA,
            files: Files {
                found: files_found,
                read: files_read,
                skipped: skipped.len() as u64,
                not_reports: count(SkipKind::NotAReport),
                broken: count(SkipKind::Broken),
            },
            reports: Reports {
                counted: agg.reports,
                duplicates: agg.duplicates,
            },
            skipped: skipped
                .iter()
                .map(|s| SkippedJson {
                    path: s.path.display().to_string(),
                    kind: s.kind,
                    reason: s.reason.clone(),
                })
                .collect(),
            date_range: DateRange::new(agg.begin, agg.end),
            totals: agg.totals().into(),
            organizations,
            sources,
            domains,
            thresholds: Thresholds {
                min_aligned_pct: recommend::MIN_ALIGNED_PCT,
                min_days: recommend::MIN_DAYS,
                min_messages: recommend::MIN_MESSAGES,
                flag_below_pct: recommend::FLAG_BELOW_PCT,
            },
        }
    }
}

/// One entry per reporting organization, most messages first.
fn organizations(agg: &Aggregate, by_org: &BTreeMap<&str, Counts>) -> Vec<Organization> {
    let mut organizations: Vec<Organization> = agg
        .orgs
        .iter()
        .map(|(org, &reports)| Organization {
            org: org.clone(),
            reports,
            generators: agg
                .generators
                .get(org)
                .map(|g| g.iter().cloned().collect())
                .unwrap_or_default(),
            counts: by_org.get(org.as_str()).copied().unwrap_or_default().into(),
        })
        .collect();
    organizations.sort_by(|a, b| {
        b.counts
            .messages
            .cmp(&a.counts.messages)
            .then(a.org.cmp(&b.org))
    });
    organizations
}

/// One entry per reported domain, by name, with its policy verdict.
fn domains(
    agg: &Aggregate,
    mut by_domain: BTreeMap<&str, (Counts, BTreeMap<Option<IpAddr>, Counts>)>,
) -> Vec<Domain> {
    let mut domain_names: Vec<&String> = agg.domains.keys().collect();
    domain_names.sort();
    domain_names
        .into_iter()
        .map(|name| {
            let span = agg.domains[name];
            let (counts, per_ip) = by_domain.remove(name.as_str()).unwrap_or_default();
            let policy = span.latest.map_or(Policy::Unknown, |(_, p)| p);
            let range = DateRange::new(span.begin, span.end);
            let evidence = Evidence {
                policy,
                messages: counts.messages,
                passed: counts.dmarc_pass,
                days: range.as_ref().map_or(0.0, |r| r.days),
            };
            Domain {
                domain: name.clone(),
                policy,
                np: span.np,
                testing: span.testing,
                reports: span.reports,
                rfc9990_reports: span.rfc9990_reports,
                discovery_method: DiscoveryCounts {
                    psl: span.by_psl,
                    treewalk: span.by_treewalk,
                },
                date_range: range,
                counts: counts.into(),
                recommendation: recommendation(&evidence, &per_ip),
            }
        })
        .collect()
}

fn recommendation(e: &Evidence, per_ip: &BTreeMap<Option<IpAddr>, Counts>) -> Recommendation {
    let decided = recommend::verdict(e);
    let failures = |keep: &dyn Fn(&Counts) -> bool| {
        let mut v: Vec<SourceFailures> = per_ip
            .iter()
            .filter(|(_, c)| keep(c))
            .map(|(ip, c)| SourceFailures {
                ip: ip_text(*ip),
                messages: c.messages,
                failed: c.failed(),
            })
            .collect();
        v.sort_by_key(|f| std::cmp::Reverse(f.failed));
        v
    };
    let (fix_first, review) = match decided {
        Verdict::FixFirst => (failures(&|c| c.failed() > 0), Vec::new()),
        _ => (Vec::new(), failures(&flagged)),
    };
    Recommendation {
        verdict: decided.as_str(),
        next_policy: match decided {
            Verdict::Ready { next } => Some(next),
            _ => None,
        },
        message: recommend::sentence(e, decided),
        fix_first,
        review,
        decided,
    }
}
