//! The audit's vocabulary: every check id ([`Check`], listed once in [`CHECKS`]), the
//! severities and groups, one [`Finding`], and a finished [`Audit`].
//!
//! A new check is one row in the `checks!` table below (its variant, group and id text),
//! one row in the README's table of check ids, and the code that emits
//! `Finding::new(Check::TheNewOne, ...)` in its group's module.

use serde::Serialize;

use crate::dns;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Pass,
    Info,
    Warn,
    Fail,
    /// A DNS failure: the check could not be made. Never a pass.
    #[serde(rename = "temperror")]
    TempError,
}

impl Severity {
    /// Severities that block `send` (see [`Finding::blocks`]).
    pub fn blocks(self) -> bool {
        matches!(self, Severity::Fail | Severity::TempError)
    }

    /// How bad, for the worst of several: a definite failure outranks a temperror, since it
    /// will not mend by asking again (otherwise the declaration order).
    pub fn rank(self) -> u8 {
        match self {
            Severity::Fail => 5,
            s => s as u8,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Severity::Pass => "PASS",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Fail => "FAIL",
            Severity::TempError => "TEMPERROR",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Spf,
    Dkim,
    Dmarc,
    Tls,
    Dns,
    Bulk,
}

impl Group {
    pub fn title(self) -> &'static str {
        match self {
            Group::Spf => "SPF",
            Group::Dkim => "DKIM",
            Group::Dmarc => "DMARC",
            Group::Tls => "Relay TLS",
            Group::Dns => "DNS hygiene",
            Group::Bulk => "Bulk-sender requirements (Gmail, Yahoo, Microsoft)",
        }
    }
}

/// One check's entry in [`CHECKS`].
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub check: Check,
    /// The stable id: what `--override` names and what JSON consumers match.
    pub id: &'static str,
    pub group: Group,
}

/// Declares [`Check`] and [`CHECKS`] from one list, so each id's text is written once and the
/// table cannot miss a variant.
macro_rules! checks {
    ($($variant:ident => $group:ident $id:literal,)*) => {
        /// Every check the audit makes, by id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Check {
            $($variant,)*
        }

        /// Every check, in the order of [`Check`] (so `CHECKS[c as usize].check == c`).
        pub const CHECKS: &[CheckInfo] = &[
            $(CheckInfo { check: Check::$variant, id: $id, group: Group::$group },)*
        ];
    };
}

checks! {
    SpfRecord => Spf "spf.record",
    SpfSyntax => Spf "spf.syntax",
    SpfLength => Spf "spf.length",
    SpfAll => Spf "spf.all",
    SpfLookups => Spf "spf.lookups",
    SpfLoop => Spf "spf.loop",
    SpfVoidLookups => Spf "spf.void-lookups",
    SpfPtr => Spf "spf.ptr",
    SpfMacros => Spf "spf.macros",
    SpfRelay => Spf "spf.relay",
    DkimRecord => Dkim "dkim.record",
    DkimSyntax => Dkim "dkim.syntax",
    DkimKeyType => Dkim "dkim.key-type",
    DkimRevoked => Dkim "dkim.revoked",
    DkimTesting => Dkim "dkim.testing",
    DkimKeySize => Dkim "dkim.key-size",
    DkimKeyStrength => Dkim "dkim.key-strength",
    DkimKeyMismatch => Dkim "dkim.key-mismatch",
    DkimKeyMatch => Dkim "dkim.key-match",
    DkimVerify => Dkim "dkim.verify",
    DmarcRecord => Dmarc "dmarc.record",
    DmarcSyntax => Dmarc "dmarc.syntax",
    DmarcPolicy => Dmarc "dmarc.policy",
    DmarcPct => Dmarc "dmarc.pct",
    DmarcRua => Dmarc "dmarc.rua",
    DmarcRuaAuthorization => Dmarc "dmarc.rua-authorization",
    DmarcAlignDkim => Dmarc "dmarc.align-dkim",
    DmarcAlignSpf => Dmarc "dmarc.align-spf",
    DmarcDiscovery => Dmarc "dmarc.discovery",
    DmarcTesting => Dmarc "dmarc.testing",
    DmarcObsoleteTag => Dmarc "dmarc.obsolete-tag",
    TlsRelay => Tls "tls.relay",
    TlsConnect => Tls "tls.connect",
    TlsCertificate => Tls "tls.certificate",
    TlsExpiry => Tls "tls.expiry",
    TlsAuthBeforeTls => Tls "tls.auth-before-tls",
    TlsAuth => Tls "tls.auth",
    DnsMx => Dns "dns.mx",
    DnsFcrdns => Dns "dns.fcrdns",
    DnsMtaSts => Dns "dns.mta-sts",
    DnsTlsRpt => Dns "dns.tls-rpt",
    BulkSpf => Bulk "bulk.spf",
    BulkDkim => Bulk "bulk.dkim",
    BulkDmarc => Bulk "bulk.dmarc",
    BulkAlignment => Bulk "bulk.alignment",
    BulkOneClick => Bulk "bulk.one-click",
    BulkUnsubscribeSigned => Bulk "bulk.unsubscribe-signed",
    BulkVisibleUnsubscribe => Bulk "bulk.visible-unsubscribe",
    BulkListId => Bulk "bulk.list-id",
    BulkPtr => Bulk "bulk.ptr",
    GmailAuthentication => Bulk "bulk.gmail.spf-dkim",
    GmailDmarc => Bulk "bulk.gmail.dmarc",
    GmailAlignment => Bulk "bulk.gmail.alignment",
    GmailOneClick => Bulk "bulk.gmail.one-click",
    GmailVisibleUnsubscribe => Bulk "bulk.gmail.visible-unsubscribe",
    GmailPtr => Bulk "bulk.gmail.ptr",
    GmailTls => Bulk "bulk.gmail.tls",
    YahooAuthentication => Bulk "bulk.yahoo.spf-dkim",
    YahooDmarc => Bulk "bulk.yahoo.dmarc",
    YahooAlignment => Bulk "bulk.yahoo.alignment",
    YahooOneClick => Bulk "bulk.yahoo.one-click",
    YahooVisibleUnsubscribe => Bulk "bulk.yahoo.visible-unsubscribe",
    YahooPtr => Bulk "bulk.yahoo.ptr",
    YahooTls => Bulk "bulk.yahoo.tls",
    MicrosoftAuthentication => Bulk "bulk.microsoft.spf-dkim",
    MicrosoftDmarc => Bulk "bulk.microsoft.dmarc",
    MicrosoftAlignment => Bulk "bulk.microsoft.alignment",
    MicrosoftOneClick => Bulk "bulk.microsoft.one-click",
    MicrosoftVisibleUnsubscribe => Bulk "bulk.microsoft.visible-unsubscribe",
    MicrosoftPtr => Bulk "bulk.microsoft.ptr",
    MicrosoftTls => Bulk "bulk.microsoft.tls",
}

impl Check {
    fn info(self) -> &'static CheckInfo {
        &CHECKS[self as usize]
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn group(self) -> Group {
        self.info().group
    }

    /// The check with this id, exactly as written in [`CHECKS`].
    pub fn from_id(id: &str) -> Option<Check> {
        CHECKS.iter().find(|c| c.id == id).map(|c| c.check)
    }
}

/// Checks that `id` names a check, for `--override`: the error lists every valid id.
pub fn parse_override(id: &str) -> Result<String, String> {
    match Check::from_id(id) {
        Some(c) => Ok(c.id().to_owned()),
        None => Err(format!(
            "no preflight check has the id {id:?}; the ids are: {}",
            CHECKS.iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// One finding. `id` is stable: it is what `--override` names and what JSON consumers match.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The typed check; `id` and `group` are its text and group, kept as fields for the JSON
    /// and for the callers that print or compare ids.
    #[serde(skip)]
    pub check: Check,
    pub id: &'static str,
    pub group: Group,
    pub severity: Severity,
    /// What it is about: a domain, a selector, a host.
    pub subject: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// A row derived from other findings that carry it to the gate: it never blocks by
    /// itself, these ids do (and `--override` names them). Set on the per-provider rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enforced_by: Vec<&'static str>,
    /// The page a per-provider row judges by (its README section gives the URL too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cites: Option<&'static str>,
}

impl Finding {
    pub fn new(
        check: Check,
        severity: Severity,
        subject: impl Into<String>,
        message: String,
    ) -> Finding {
        Finding {
            check,
            id: check.id(),
            group: check.group(),
            severity,
            subject: subject.into(),
            message,
            evidence: None,
            fix: None,
            enforced_by: Vec::new(),
            cites: None,
        }
    }

    /// Fails and temperrors block `send`, except in DNS hygiene (MX, reverse DNS and MTA-STS
    /// matter for reputation but do not decide whether mail authenticates) and in rows that
    /// name the findings enforcing them ([`Finding::enforced_by`]), so one cause is one id
    /// to fix or override.
    pub fn blocks(&self) -> bool {
        self.severity.blocks() && self.group != Group::Dns && self.enforced_by.is_empty()
    }

    pub fn evidence(mut self, e: String) -> Finding {
        self.evidence = Some(e);
        self
    }

    pub fn fix(mut self, f: String) -> Finding {
        self.fix = Some(f);
        self
    }
}

/// A finished audit.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub campaign: String,
    pub from_domain: String,
    pub envelope_domain: String,
    pub findings: Vec<Finding>,
    /// Distinct (name, type) questions asked: each is asked once per run.
    pub dns_queries: usize,
    /// The DKIM key records found, for verifying messages against them.
    #[serde(skip)]
    pub dkim_records: Vec<(String, dns::Txt)>,
}

impl Audit {
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.blocks())
    }

    /// Blocking findings whose id the user did not override.
    pub fn unresolved<'a>(&'a self, overrides: &'a [String]) -> Vec<&'a Finding> {
        self.blocking()
            .filter(|f| !overrides.iter().any(|o| o == f.id))
            .collect()
    }

    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The group's name as JSON writes it (`"spf"`, ..., `"bulk"`).
    fn key(g: Group) -> String {
        serde_json::to_value(g)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn table_matches_the_enum_and_ids_are_unique() {
        for (i, c) in CHECKS.iter().enumerate() {
            assert_eq!(c.check as usize, i, "{} is out of order", c.id);
            assert_eq!(Check::from_id(c.id), Some(c.check));
            assert!(
                c.id.starts_with(&format!("{}.", key(c.group))),
                "{} is not in group {:?}",
                c.id,
                c.group
            );
        }
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), CHECKS.len(), "an id is listed twice");
    }

    #[test]
    fn override_ids_are_checked() {
        assert_eq!(parse_override("spf.all").as_deref(), Ok("spf.all"));
        let e = parse_override("no.such-id").unwrap_err();
        assert!(e.contains("\"no.such-id\""), "{e}");
        assert!(
            e.contains("spf.all") && e.contains("bulk.visible-unsubscribe"),
            "{e}"
        );
        // Prefixes and other commands' ids are not check ids.
        assert!(parse_override("spf").is_err());
        assert!(parse_override("lint.http-link").is_err());
    }

    /// The README's table of check ids (under "Check ids") lists exactly the ids above, each
    /// with its group.
    #[test]
    fn readme_table_matches_checks() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("| id | group | checks |")
            .expect("README has the check id table");
        let rows: Vec<(&str, &str)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`'), cells[2].trim_matches('`'))
            })
            .collect();
        for c in CHECKS {
            assert!(
                rows.contains(&(c.id, key(c.group).as_str())),
                "README's check table lacks `{}` (group {})",
                c.id,
                key(c.group)
            );
        }
        for (id, _) in &rows {
            assert!(
                Check::from_id(id).is_some(),
                "README lists `{id}`, which is not in CHECKS"
            );
        }
        assert_eq!(rows.len(), CHECKS.len(), "README lists an id twice");
    }
}
