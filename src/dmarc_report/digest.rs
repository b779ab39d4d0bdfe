//! One parsed report reduced to what the summary counts, so the parsing threads hand the
//! aggregator a few numbers per row instead of whole reports (identifiers, auth details and
//! extensions are dropped here).

use std::net::IpAddr;

use mail_auth::report::{
    ActionDisposition, Discovery, Disposition as Published, DkimResult, DmarcResult, Report,
    SpfResult,
};

/// A domain's published `p=`, as the reports state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// The report left `p` out or gave an unknown value; recommendations treat it as `none`.
    Unknown,
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Unknown => "unknown",
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    /// One step up the DMARC ladder, none → quarantine → reject; None at the top.
    pub fn next(self) -> Option<Policy> {
        match self {
            Policy::Unknown | Policy::None => Some(Policy::Quarantine),
            Policy::Quarantine => Some(Policy::Reject),
            Policy::Reject => None,
        }
    }
}

impl From<Published> for Policy {
    fn from(p: Published) -> Self {
        match p {
            Published::None => Policy::None,
            Published::Quarantine => Policy::Quarantine,
            Published::Reject => Policy::Reject,
            Published::Unspecified => Policy::Unknown,
        }
    }
}

/// What the receiver did with the messages (policy_evaluated/disposition). RFC 9990 adds
/// `pass`; `unknown` is a missing or unrecognized value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    None = 0,
    Pass = 1,
    Quarantine = 2,
    Reject = 3,
    Unknown = 4,
}

impl Disposition {
    pub const ALL: [Disposition; 5] = [
        Disposition::None,
        Disposition::Pass,
        Disposition::Quarantine,
        Disposition::Reject,
        Disposition::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Pass => "pass",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
            Disposition::Unknown => "unknown",
        }
    }
}

impl From<ActionDisposition> for Disposition {
    fn from(d: ActionDisposition) -> Self {
        match d {
            ActionDisposition::None => Disposition::None,
            ActionDisposition::Pass => Disposition::Pass,
            ActionDisposition::Quarantine => Disposition::Quarantine,
            ActionDisposition::Reject => Disposition::Reject,
            ActionDisposition::Unspecified => Disposition::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// The reporting organization (org_name, or the domain of its email when that is empty).
    pub org: String,
    pub report_id: String,
    /// policy_published/domain, lowercased: the domain the report is about.
    pub domain: String,
    pub policy: Policy,
    /// date_range in unix seconds; 0 when the report did not give a usable number.
    pub begin: u64,
    pub end: u64,
    pub rows: Vec<Row>,
    pub rfc9990: Rfc9990,
}

/// What an RFC 9990 report adds about the policy and the reporter: the namespace it declared,
/// `np`, `testing` (`t=y`), how the receiver found the policy, and the software that wrote it.
/// All are absent or false in an RFC 7489 report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rfc9990 {
    /// The document declares `urn:ietf:params:xml:ns:dmarc-2.0`.
    pub namespace: bool,
    pub np: Option<Policy>,
    pub testing: bool,
    /// `psl` or `treewalk`.
    pub discovery_method: Option<&'static str>,
    pub generator: Option<String>,
}

/// One record: `count` messages from one source with one set of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// None when the report's source_ip is missing or unparsable.
    pub ip: Option<IpAddr>,
    pub count: u64,
    /// policy_evaluated: the receiver's DMARC verdict for DKIM and SPF, i.e. passing *and*
    /// aligned with the From domain. A missing value counts as a failure.
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// auth_results: some DKIM signature / the SPF check passed, aligned or not. Missing
    /// auth_results (optional for DKIM) count as no pass.
    pub dkim_pass: bool,
    pub spf_pass: bool,
    pub disposition: Disposition,
}

impl Row {
    /// DMARC passes when either aligned check passes (RFC 7489 section 4.2).
    pub fn dmarc_pass(&self) -> bool {
        self.dkim_aligned || self.spf_aligned
    }
}

impl Digest {
    pub fn of(report: &Report) -> Digest {
        let meta = &report.report_metadata;
        let mut org = meta.org_name.trim().to_owned();
        if org.is_empty() {
            org = meta
                .email
                .rsplit_once('@')
                .map(|(_, domain)| domain.trim().to_owned())
                .unwrap_or_default();
        }
        if org.is_empty() {
            org = "(unnamed)".to_owned();
        }
        let rows = report
            .record
            .iter()
            .map(|record| {
                let evaluated = &record.row.policy_evaluated;
                Row {
                    // An IPv4-mapped IPv6 address is the IPv4 sender: one source, one line.
                    ip: record.row.source_ip.map(|ip| ip.to_canonical()),
                    count: u64::from(record.row.count),
                    dkim_aligned: evaluated.dkim == DmarcResult::Pass,
                    spf_aligned: evaluated.spf == DmarcResult::Pass,
                    dkim_pass: record
                        .auth_results
                        .dkim
                        .iter()
                        .any(|d| d.result == DkimResult::Pass),
                    spf_pass: record
                        .auth_results
                        .spf
                        .iter()
                        .any(|s| s.result == SpfResult::Pass),
                    disposition: evaluated.disposition.into(),
                }
            })
            .collect();
        Digest {
            org,
            report_id: meta.report_id.trim().to_owned(),
            domain: report
                .policy_published
                .domain
                .trim()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            policy: report.policy_published.p.into(),
            begin: meta.date_range.begin,
            end: meta.date_range.end,
            rows,
            rfc9990: Rfc9990 {
                namespace: false,
                np: match report.policy_published.np {
                    Published::Unspecified => None,
                    np => Some(np.into()),
                },
                testing: report.policy_published.testing,
                discovery_method: match report.policy_published.discovery_method {
                    Discovery::Psl => Some("psl"),
                    Discovery::Treewalk => Some("treewalk"),
                    Discovery::Unspecified => None,
                },
                generator: meta
                    .generator
                    .as_deref()
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned),
            },
        }
    }

    /// Records whether the document declared the RFC 9990 namespace (the parser does not).
    pub fn with_format(mut self, namespace: bool) -> Digest {
        self.rfc9990.namespace = namespace;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_a_report_to_its_counts() {
        let xml = br#"<feedback><report_metadata><org_name></org_name>
            <email>dmarc@reports.example.net</email><report_id> 42 </report_id>
            <date_range><begin>10</begin><end>20</end></date_range></report_metadata>
            <policy_published><domain>News.Example.COM.</domain><p>quarantine</p></policy_published>
            <record><row><source_ip>::ffff:192.0.2.9</source_ip><count>5</count>
              <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated></row>
              <identifiers><header_from>news.example.com</header_from></identifiers>
              <auth_results><spf><domain>news.example.com</domain><result>pass</result></spf></auth_results></record>
            <record><row><source_ip>not-an-ip</source_ip><count>2</count>
              <policy_evaluated><dkim>pass</dkim></policy_evaluated></row>
              <auth_results><dkim><domain>x</domain><result>pass</result></dkim></auth_results></record>
            </feedback>"#;
        let d = Digest::of(&Report::parse_xml(xml).unwrap());
        assert_eq!(d.org, "reports.example.net");
        assert_eq!(d.report_id, "42");
        assert_eq!(d.domain, "news.example.com");
        assert_eq!(d.policy, Policy::Quarantine);
        assert_eq!((d.begin, d.end), (10, 20));
        assert_eq!(
            d.rows,
            [
                Row {
                    ip: Some("192.0.2.9".parse().unwrap()),
                    count: 5,
                    dkim_aligned: false,
                    spf_aligned: true,
                    dkim_pass: false,
                    spf_pass: true,
                    disposition: Disposition::Quarantine,
                },
                Row {
                    ip: None,
                    count: 2,
                    dkim_aligned: true,
                    spf_aligned: false,
                    dkim_pass: true,
                    spf_pass: false,
                    disposition: Disposition::Unknown,
                },
            ]
        );
    }

    #[test]
    fn the_policy_ladder() {
        assert_eq!(Policy::Unknown.next(), Some(Policy::Quarantine));
        assert_eq!(Policy::None.next(), Some(Policy::Quarantine));
        assert_eq!(Policy::Quarantine.next(), Some(Policy::Reject));
        assert_eq!(Policy::Reject.next(), None);
    }

    #[test]
    fn rfc9990_fields_are_kept() {
        let xml = br#"<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><report_metadata>
            <org_name>mx.example.org</org_name><email>r@mx.example.org</email>
            <report_id>1</report_id><date_range><begin>10</begin><end>20</end></date_range>
            <generator> Example MTA 4.2 </generator></report_metadata>
            <policy_published><domain>news.example.com</domain><p>reject</p><np>quarantine</np>
            <testing>y</testing><discovery_method>treewalk</discovery_method></policy_published>
            </feedback>"#;
        let d = Digest::of(&Report::parse_xml(xml).unwrap()).with_format(true);
        assert_eq!(
            d.rfc9990,
            Rfc9990 {
                namespace: true,
                np: Some(Policy::Quarantine),
                testing: true,
                discovery_method: Some("treewalk"),
                generator: Some("Example MTA 4.2".into()),
            }
        );
    }
}
