//! One DMARC record's tags as RFC 9989 reads them: `p` (absent means none), `sp`, `np`, `psd`,
//! `t`, alignment modes and `rua`; `pct`, `rf` and `ri` are kept only to report as obsolete.

use serde::Serialize;

/// A requested disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    fn parse(v: &str) -> Option<Policy> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    /// RFC 9989 `t=y`: the receiver applies one step less (reject as quarantine, quarantine
    /// as none).
    pub fn lowered(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine | Policy::None => Policy::None,
        }
    }
}

/// RFC 9989 `psd`: whether the record's domain is a public suffix domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Psd {
    /// `psd=y`: a public suffix; the organizational domain is one label below it.
    Yes,
    /// `psd=n`: this domain is an organizational domain.
    No,
    /// `psd=u` or no tag: the tree walk goes on.
    Unknown,
}

/// The tags of one record. Values that do not parse are listed in `invalid` and otherwise
/// treated as absent, which is what receivers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags {
    /// `p`, or `None` when the record has none (RFC 9989: then it is p=none).
    pub p: Option<Policy>,
    pub sp: Option<Policy>,
    pub np: Option<Policy>,
    pub psd: Psd,
    /// `t=y`.
    pub testing: bool,
    pub adkim_strict: bool,
    pub aspf_strict: bool,
    /// The `rua` URIs as written.
    pub rua: Vec<String>,
    /// Tags RFC 9989 removed, as (name, value): `pct`, `rf`, `ri`.
    pub obsolete: Vec<(&'static str, String)>,
    /// `tag=value` pairs whose value is not one RFC 9989 allows.
    pub invalid: Vec<String>,
}

impl Tags {
    /// Parses a record's text. `None` unless it starts with `v=DMARC1` (RFC 9989 discards
    /// anything else found at `_dmarc`).
    pub fn parse(text: &str) -> Option<Tags> {
        let mut parts = text.split(';');
        let (k, v) = parts.next()?.split_once('=')?;
        if k.trim() != "v" || v.trim() != "DMARC1" {
            return None;
        }
        let mut t = Tags {
            p: None,
            sp: None,
            np: None,
            psd: Psd::Unknown,
            testing: false,
            adkim_strict: false,
            aspf_strict: false,
            rua: Vec::new(),
            obsolete: Vec::new(),
            invalid: Vec::new(),
        };
        for part in parts {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            t.set(&k.trim().to_ascii_lowercase(), v.trim());
        }
        Some(t)
    }

    fn set(&mut self, k: &str, v: &str) {
        let lower = v.to_ascii_lowercase();
        let ok = match k {
            "p" => {
                self.p = Policy::parse(v);
                self.p.is_some()
            }
            "sp" => {
                self.sp = Policy::parse(v);
                self.sp.is_some()
            }
            "np" => {
                self.np = Policy::parse(v);
                self.np.is_some()
            }
            "psd" => {
                self.psd = match lower.as_str() {
                    "y" => Psd::Yes,
                    "n" => Psd::No,
                    _ => Psd::Unknown,
                };
                matches!(lower.as_str(), "y" | "n" | "u")
            }
            "t" => {
                self.testing = lower == "y";
                matches!(lower.as_str(), "y" | "n")
            }
            "adkim" | "aspf" => {
                let strict = lower == "s";
                if k == "adkim" {
                    self.adkim_strict = strict;
                } else {
                    self.aspf_strict = strict;
                }
                matches!(lower.as_str(), "s" | "r")
            }
            "rua" => {
                self.rua = v.split(',').map(|u| u.trim().to_owned()).collect();
                true
            }
            "pct" | "rf" | "ri" => {
                let name = match k {
                    "pct" => "pct",
                    "rf" => "rf",
                    _ => "ri",
                };
                self.obsolete.push((name, v.to_owned()));
                true
            }
            _ => true,
        };
        if !ok {
            self.invalid.push(format!("{k}={v}"));
        }
    }

    /// What a receiver still on RFC 7489 does with each obsolete tag, for the finding.
    pub fn obsolete_note(name: &str) -> &'static str {
        match name {
            "pct" => {
                "RFC 7489 receivers apply the policy to that percentage of failing mail; \
                 RFC 9989 receivers ignore it (use t=y for a trial instead)"
            }
            "rf" => {
                "RFC 7489 receivers read it as the failure-report format; RFC 9989 and \
                 RFC 9991 receivers ignore it (AFRF is the only format)"
            }
            _ => {
                "RFC 7489 receivers read it as the wished aggregate-report interval; \
                 RFC 9989 receivers ignore it and send daily"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9989_tags() {
        let t = Tags::parse("v=DMARC1; p=reject; np=quarantine; psd=n; t=y; rua=mailto:a@x.example,mailto:b@y.example!10m").unwrap();
        assert_eq!(t.p, Some(Policy::Reject));
        assert_eq!(t.np, Some(Policy::Quarantine));
        assert_eq!(t.psd, Psd::No);
        assert!(t.testing);
        assert_eq!(t.rua, ["mailto:a@x.example", "mailto:b@y.example!10m"]);
        assert_eq!(Policy::Reject.lowered(), Policy::Quarantine);
        assert_eq!(Policy::Quarantine.lowered(), Policy::None);
    }

    #[test]
    fn no_p_is_none_and_obsolete_tags_are_kept() {
        let t = Tags::parse("v=DMARC1; rua=mailto:r@x.example; pct=50; ri=3600; rf=afrf").unwrap();
        assert_eq!(t.p, None);
        let names: Vec<_> = t.obsolete.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["pct", "ri", "rf"]);
    }

    #[test]
    fn not_dmarc_and_bad_values() {
        assert!(Tags::parse("v=spf1 -all").is_none());
        assert!(Tags::parse("p=reject; v=DMARC1").is_none());
        let t = Tags::parse("v=DMARC1; p=block; psd=maybe").unwrap();
        assert_eq!(t.p, None);
        assert_eq!(t.invalid, ["p=block", "psd=maybe"]);
    }
}
