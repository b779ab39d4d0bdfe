//! The running totals: per (policy domain, reporting organization, source IP) counters that
//! each report is folded into as it arrives, so memory grows with the number of distinct
//! sources, never with the number of reports.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use super::digest::{Digest, Disposition, Policy, Row};

/// Message counts for one group of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub messages: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    pub dmarc_pass: u64,
    pub dkim_pass: u64,
    pub spf_pass: u64,
    /// Indexed by `Disposition as usize`.
    pub dispositions: [u64; 5],
}

impl Counts {
    pub fn add(&mut self, row: &Row) {
        let n = row.count;
        self.messages += n;
        self.dkim_aligned += if row.dkim_aligned { n } else { 0 };
        self.spf_aligned += if row.spf_aligned { n } else { 0 };
        self.dmarc_pass += if row.dmarc_pass() { n } else { 0 };
        self.dkim_pass += if row.dkim_pass { n } else { 0 };
        self.spf_pass += if row.spf_pass { n } else { 0 };
        self.dispositions[row.disposition as usize] += n;
    }

    pub fn merge(&mut self, other: &Counts) {
        self.messages += other.messages;
        self.dkim_aligned += other.dkim_aligned;
        self.spf_aligned += other.spf_aligned;
        self.dmarc_pass += other.dmarc_pass;
        self.dkim_pass += other.dkim_pass;
        self.spf_pass += other.spf_pass;
        for (mine, theirs) in self.dispositions.iter_mut().zip(other.dispositions) {
            *mine += theirs;
        }
    }

    pub fn failed(&self) -> u64 {
        self.messages - self.dmarc_pass
    }

    pub fn disposition(&self, d: Disposition) -> u64 {
        self.dispositions[d as usize]
    }
}

/// The key of one counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    pub domain: String,
    pub org: String,
    pub ip: Option<IpAddr>,
}

/// Per policy domain: which reports covered it and what it published last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DomainSpan {
    pub reports: u64,
    pub begin: Option<u64>,
    pub end: Option<u64>,
    /// (end of the report, its p=): the newest report's policy is the one in force, since the
    /// owner may have tightened it during the period.
    pub latest: Option<(u64, Policy)>,
    /// `np` and `testing` from the same newest report (RFC 9990; none and false in older
    /// reports).
    pub np: Option<Policy>,
    pub testing: bool,
    /// Reports that declared the RFC 9990 namespace.
    pub rfc9990_reports: u64,
    /// Reports whose receiver found the policy by the public suffix list, and by the tree
    /// walk (RFC 9990 `discovery_method`).
    pub by_psl: u64,
    pub by_treewalk: u64,
}

impl DomainSpan {
    fn add(&mut self, d: &Digest) {
        self.reports += 1;
        if let Some((begin, end)) = usable_range(d) {
            self.begin = Some(self.begin.map_or(begin, |b| b.min(begin)));
            self.end = Some(self.end.map_or(end, |e| e.max(end)));
        }
        // Ties (two reports ending together) go to the stricter policy, so the result does
        // not depend on the order the reports were read in.
        if self.latest.is_none_or(|latest| (d.end, d.policy) > latest) {
            self.latest = Some((d.end, d.policy));
            self.np = d.rfc9990.np;
            self.testing = d.rfc9990.testing;
        }
        self.rfc9990_reports += u64::from(d.rfc9990.namespace);
        match d.rfc9990.discovery_method {
            Some("psl") => self.by_psl += 1,
            Some(_) => self.by_treewalk += 1,
            None => {}
        }
    }
}

/// Reports with a missing (0) or reversed date range say nothing about the period.
fn usable_range(d: &Digest) -> Option<(u64, u64)> {
    (d.begin > 0 && d.end >= d.begin).then_some((d.begin, d.end))
}

/// Whether a report was counted or had been seen already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Counted,
    Duplicate,
}

#[derive(Debug, Default)]
pub struct Aggregate {
    /// (organization, report id) of every report counted: the same report saved twice (a
    /// download and the Maildir it came from) must count once. Receivers promise report ids
    /// unique per organization (RFC 7489 appendix C; parsedmarc keys on the same pair).
    seen: HashSet<(String, String)>,
    pub reports: u64,
    pub duplicates: u64,
    pub begin: Option<u64>,
    pub end: Option<u64>,
    pub cells: HashMap<Cell, Counts>,
    /// Reports counted per organization.
    pub orgs: HashMap<String, u64>,
    /// The report-writing software each organization named (RFC 9990 `generator`).
    pub generators: HashMap<String, BTreeSet<String>>,
    pub domains: HashMap<String, DomainSpan>,
}

impl Aggregate {
    pub fn add(&mut self, d: &Digest) -> Added {
        // A report without an id cannot be recognized again; it is counted.
        if !d.report_id.is_empty()
            && !self
                .seen
                .insert((d.org.to_lowercase(), d.report_id.clone()))
        {
            self.duplicates += 1;
            return Added::Duplicate;
        }
        self.reports += 1;
        if let Some((begin, end)) = usable_range(d) {
            self.begin = Some(self.begin.map_or(begin, |b| b.min(begin)));
            self.end = Some(self.end.map_or(end, |e| e.max(end)));
        }
        *self.orgs.entry(d.org.clone()).or_default() += 1;
        if let Some(g) = &d.rfc9990.generator {
            self.generators
                .entry(d.org.clone())
                .or_default()
                .insert(g.clone());
        }
        self.domains.entry(d.domain.clone()).or_default().add(d);
        for row in &d.rows {
            let cell = Cell {
                domain: d.domain.clone(),
                org: d.org.clone(),
                ip: row.ip,
            };
            self.cells.entry(cell).or_default().add(row);
        }
        Added::Counted
    }

    pub fn totals(&self) -> Counts {
        let mut all = Counts::default();
        for counts in self.cells.values() {
            all.merge(counts);
        }
        all
    }
}

/// Days between a first begin and a last end, to the nearest hour: reports end at 23:59:59
/// (Google) or at the next midnight (Microsoft), and fourteen daily reports are 14 days
/// either way.
pub fn days_between(begin: u64, end: u64) -> f64 {
    let hours = (end.saturating_sub(begin) as f64 / 3600.0).round();
    hours / 24.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ip: &str, count: u64, dkim: bool, spf: bool) -> Row {
        Row {
            ip: Some(ip.parse().unwrap()),
            count,
            dkim_aligned: dkim,
            spf_aligned: spf,
            dkim_pass: dkim,
            spf_pass: true,
            disposition: Disposition::None,
        }
    }

    fn digest(org: &str, id: &str, begin: u64, end: u64, policy: Policy, rows: Vec<Row>) -> Digest {
        Digest {
            org: org.into(),
            report_id: id.into(),
            domain: "news.example.com".into(),
            policy,
            begin,
            end,
            rows,
            rfc9990: Default::default(),
        }
    }

    #[test]
    fn counts_fold_per_org_and_source() {
        let mut a = Aggregate::default();
        let g = digest(
            "google.com",
            "1",
            86_400,
            2 * 86_400 - 1,
            Policy::None,
            vec![
                row("192.0.2.10", 100, true, true),
                row("203.0.113.66", 7, false, false),
                row("192.0.2.10", 5, true, false),
            ],
        );
        let y = digest(
            "Yahoo",
            "1",
            15 * 86_400,
            16 * 86_400 - 1,
            Policy::Quarantine,
            vec![
                row("192.0.2.10", 10, false, true),
                row("2001:db8::25", 3, true, true),
            ],
        );
        assert_eq!(a.add(&g), Added::Counted);
        assert_eq!(a.add(&y), Added::Counted);
        // The same report again (the organization compared without case).
        let mut again = y.clone();
        again.org = "YAHOO".into();
        assert_eq!(a.add(&again), Added::Duplicate);

        assert_eq!((a.reports, a.duplicates), (2, 1));
        assert_eq!((a.begin, a.end), (Some(86_400), Some(16 * 86_400 - 1)));
        assert_eq!(days_between(a.begin.unwrap(), a.end.unwrap()), 15.0);

        let cell = |org: &str, ip: &str| Cell {
            domain: "news.example.com".into(),
            org: org.into(),
            ip: Some(ip.parse().unwrap()),
        };
        let google_relay = a.cells[&cell("google.com", "192.0.2.10")];
        assert_eq!(google_relay.messages, 105);
        assert_eq!(google_relay.dkim_aligned, 105);
        assert_eq!(google_relay.spf_aligned, 100);
        assert_eq!(google_relay.dmarc_pass, 105);
        assert_eq!(a.cells[&cell("Yahoo", "192.0.2.10")].dkim_aligned, 0);
        assert_eq!(a.cells[&cell("Yahoo", "192.0.2.10")].dmarc_pass, 10);
        assert_eq!(a.cells[&cell("google.com", "203.0.113.66")].failed(), 7);

        let t = a.totals();
        assert_eq!(t.messages, 125);
        assert_eq!(t.dmarc_pass, 118);
        assert_eq!(t.disposition(Disposition::None), 125);

        let span = a.domains["news.example.com"];
        assert_eq!(span.reports, 2);
        assert_eq!(span.latest, Some((16 * 86_400 - 1, Policy::Quarantine)));
        assert_eq!(a.orgs["google.com"], 1);
    }

    #[test]
    fn the_newest_report_decides_the_policy_whatever_the_order() {
        let old = digest("a", "1", 100, 200, Policy::None, vec![]);
        let new = digest("b", "2", 300, 400, Policy::Reject, vec![]);
        let tie = digest("c", "3", 300, 400, Policy::Quarantine, vec![]);
        for order in [[&old, &new, &tie], [&tie, &new, &old], [&new, &old, &tie]] {
            let mut a = Aggregate::default();
            for d in order {
                a.add(d);
            }
            assert_eq!(
                a.domains["news.example.com"].latest,
                Some((400, Policy::Reject))
            );
        }
    }

    #[test]
    fn reports_without_an_id_or_a_range() {
        let mut a = Aggregate::default();
        let d = digest(
            "a",
            "",
            0,
            0,
            Policy::None,
            vec![row("192.0.2.1", 1, true, true)],
        );
        assert_eq!(a.add(&d), Added::Counted);
        assert_eq!(a.add(&d), Added::Counted);
        assert_eq!(a.reports, 2);
        assert_eq!((a.begin, a.end), (None, None));
        assert_eq!(a.totals().messages, 2);
    }

    #[test]
    fn days_round_to_the_hour() {
        assert_eq!(days_between(0, 14 * 86_400 - 1), 14.0);
        assert_eq!(days_between(0, 14 * 86_400), 14.0);
        assert_eq!(days_between(0, 12 * 3600), 0.5);
        assert_eq!(days_between(10, 5), 0.0);
    }
}
