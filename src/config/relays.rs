//! The delivery side of campaign.toml: one `[smtp]` table or several `[[smtp]]` relays (name,
//! weight, priority, own limits, sending addresses), and the per-destination limits of
//! `[limits.domains]`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor, value};
use toml::Spanned;

use super::{ConfigError, Resolver, SmtpConfig, nonzero, raw};
use crate::providers::{DomainLimit, provider};

/// One relay: its connection settings and how the run shares messages with it.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub name: String,
    pub weight: u32,
    pub priority: u32,
    pub limits: RelayLimits,
    /// The addresses the relay sends from (`sending_ips` in its table), for the SPF audit of
    /// this relay; empty when not given (the preflight then uses `preflight.sending_ips`, or
    /// resolves the host).
    pub sending_ips: Vec<IpAddr>,
    pub smtp: SmtpConfig,
}

/// A relay's own pace, on top of the campaign's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayLimits {
    pub per_second: Option<NonZeroU32>,
    pub per_hour: Option<NonZeroU32>,
}

/// `smtp` as a single table (`[smtp]`, as before there were several) or an array of tables
/// (`[[smtp]]`). Both go through the table's own deserializer, so a misspelt key still gets
/// toml's message with its line.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Spanned<raw::Smtp>>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<Spanned<raw::Smtp>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an [smtp] table or [[smtp]] tables")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            // A span cannot be had through a map's own deserializer: an empty one stands for
            // "the [smtp] table", which `relays` finds in the text.
            let one = raw::Smtp::deserialize(value::MapAccessDeserializer::new(map))?;
            Ok(vec![Spanned::new(0..0, one)])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(OneOrMany)
}

impl Resolver<'_> {
    pub(super) fn relays(
        &self,
        tables: Vec<Spanned<raw::Smtp>>,
        concurrency: usize,
    ) -> Result<Vec<RelayConfig>, ConfigError> {
        let mut relays: Vec<RelayConfig> = Vec::with_capacity(tables.len());
        let mut first_span = None;
        for table in tables {
            let at = match table.span() {
                s if s.is_empty() => self.text.find("[smtp]").unwrap_or(0),
                s => s.start,
            };
            first_span.get_or_insert(at);
            let mut t = table.into_inner();
            let (name, name_at) = match t.name.take() {
                Some(n) => {
                    let at = n.span().start;
                    (n.into_inner().trim().to_owned(), at)
                }
                None => (t.host.trim().to_owned(), at),
            };
            if name.is_empty() || name.chars().any(|c| c.is_control() || c == ',') {
                return Err(self.invalid_at(
                    "smtp.name",
                    name_at,
                    format!("{name:?}: give the relay a name without commas or control characters (it goes into the report)"),
                ));
            }
            if relays.iter().any(|r| r.name == name) {
                return Err(self.invalid_at(
                    "smtp.name",
                    name_at,
                    format!("two relays are named {name:?}; give each [[smtp]] table its own `name` (the report's relay column tells them apart by it)"),
                ));
            }
            let weight = t.weight.take().map_or(1, Spanned::into_inner);
            let limits = RelayLimits {
                per_second: nonzero(self, "smtp.per_second", t.per_second)?,
                per_hour: nonzero(self, "smtp.per_hour", t.per_hour)?,
            };
            let priority = t.priority.unwrap_or(0);
            let sending_ips = self.relay_ips(&name, std::mem::take(&mut t.sending_ips))?;
            let smtp = self.smtp(t, concurrency)?;
            relays.push(RelayConfig {
                name,
                weight,
                priority,
                limits,
                sending_ips,
                smtp,
            });
        }
        if !relays.is_empty() && relays.iter().all(|r| r.weight == 0) {
            return Err(self.invalid_at(
                "smtp.weight",
                first_span.unwrap_or(0),
                "every relay has weight 0, so none would get a message; give at least one a weight of 1 or more",
            ));
        }
        Ok(relays)
    }

    /// A relay's `sending_ips`, each an IP address; a bad one is named with its line.
    fn relay_ips(
        &self,
        relay: &str,
        ips: Vec<Spanned<String>>,
    ) -> Result<Vec<IpAddr>, ConfigError> {
        ips.into_iter()
            .map(|ip| {
                let at = ip.span().start;
                ip.get_ref().trim().parse::<IpAddr>().map_err(|_| {
                    self.invalid_at(
                        "smtp.sending_ips",
                        at,
                        format!(
                            "{:?} (relay {relay:?}) is not an IP address; list the addresses the relay sends from, e.g. [\"192.0.2.25\", \"2001:db8::25\"]",
                            ip.get_ref()
                        ),
                    )
                })
            })
            .collect()
    }

    pub(super) fn domain_limits(
        &self,
        table: &BTreeMap<Spanned<String>, raw::DomainLimit>,
    ) -> Result<Vec<DomainLimit>, ConfigError> {
        let mut out: Vec<(DomainLimit, usize)> = Vec::new();
        for (key, l) in table {
            let at = key.span().start;
            let domain = crate::address::domain_name(key.get_ref()).map_err(|why| {
                self.invalid_at(
                    "limits.domains",
                    at,
                    format!("{:?} is not a domain name ({why}); write the domain after the @, e.g. \"gmail.com\"", key.get_ref()),
                )
            })?;
            if let Some((other, _)) = out
                .iter()
                .find(|(o, _)| provider(&o.domain) == provider(&domain))
            {
                return Err(self.invalid_at(
                    "limits.domains",
                    at,
                    format!(
                        "{domain} and {} belong to one provider ({}), whose limit covers all its domains; keep one of the two",
                        other.domain,
                        provider(&domain)
                    ),
                ));
            }
            let limit = DomainLimit {
                domain,
                per_second: nonzero(self, "limits.domains.per_second", l.per_second)?,
                per_hour: nonzero(self, "limits.domains.per_hour", l.per_hour)?,
                per_day: nonzero(self, "limits.domains.per_day", l.per_day)?,
            };
            if limit.interval().is_none() {
                return Err(self.invalid_at(
                    "limits.domains",
                    at,
                    format!(
                        "the limit for {} sets none of per_second, per_hour, per_day",
                        limit.domain
                    ),
                ));
            }
            out.push((limit, at));
        }
        Ok(out.into_iter().map(|(l, _)| l).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Campaign, ConfigError};
    use std::path::Path;

    const HEAD: &str = r#"[campaign]
id = "nov"
from = "News <news@example.com>"
subject = "Hello"

[templates]
text = "t.txt.hbs"

[recipients]
file = "r.csv"

[[dkim]]
domain = "example.com"
selector = "s1"
private_key = "k.pem"
"#;

    fn parse(tail: &str) -> Result<Campaign, ConfigError> {
        Campaign::parse(Path::new("/camp/campaign.toml"), &format!("{HEAD}{tail}"))
    }

    /// The line of the first occurrence of `needle` in the whole file.
    fn line_of(tail: &str, needle: &str) -> usize {
        let text = format!("{HEAD}{tail}");
        text[..text.find(needle).unwrap()].matches('\n').count() + 1
    }

    #[test]
    fn a_single_smtp_table_is_one_relay_named_after_its_host() {
        let c = parse("[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nport = 2525\n").unwrap();
        assert_eq!(c.relays.len(), 1);
        assert_eq!(c.relays[0].name, "127.0.0.1");
        assert_eq!(c.relays[0].weight, 1);
        assert!(
            matches!(c.transport, super::super::TransportConfig::Smtp(ref s) if s.port == 2525)
        );
    }

    #[test]
    fn several_relays_with_names_weights_and_limits() {
        let tail = "[[smtp]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nweight = 3\nper_second = 5\n\n[[smtp]]\nname = \"b\"\nhost = \"localhost\"\ntls = \"none\"\npriority = 1\n";
        let c = parse(tail).unwrap();
        let names: Vec<_> = c
            .relays
            .iter()
            .map(|r| (r.name.as_str(), r.weight, r.priority))
            .collect();
        assert_eq!(names, [("a", 3, 0), ("b", 1, 1)]);
        assert_eq!(c.relays[0].limits.per_second.map(|n| n.get()), Some(5));
    }

    #[test]
    fn each_relay_has_its_own_sending_ips_and_a_bad_one_names_its_line() {
        let tail = "[[smtp]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nsending_ips = [\"192.0.2.25\", \"2001:db8::25\"]\n\n[[smtp]]\nname = \"b\"\nhost = \"localhost\"\ntls = \"none\"\n";
        let c = parse(tail).unwrap();
        let ips: Vec<Vec<String>> = c
            .relays
            .iter()
            .map(|r| r.sending_ips.iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(ips, [vec!["192.0.2.25", "2001:db8::25"], vec![]]);

        let single =
            "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nsending_ips = [\"198.51.100.7\"]\n";
        let c = parse(single).unwrap();
        assert_eq!(
            c.relays[0].sending_ips,
            ["198.51.100.7".parse::<std::net::IpAddr>().unwrap()]
        );

        let bad = tail.replace("\"2001:db8::25\"", "\"relay.example.com\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("line {}:", line_of(&bad, "sending_ips"))),
            "{e}"
        );
        assert!(
            e.contains("\"relay.example.com\" (relay \"a\") is not an IP address"),
            "{e}"
        );
    }

    #[test]
    fn a_repeated_name_is_refused_at_its_line() {
        let tail = "[[smtp]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n\n[[smtp]]\nhost = \"localhost\"\nname = \"a\"\ntls = \"none\"\n";
        let e = parse(tail).unwrap_err().to_string();
        let line = line_of(tail, "name = \"a\"\ntls");
        assert!(e.contains(&format!("line {line}:")), "{e}");
        assert!(e.contains("two relays are named \"a\""), "{e}");
    }

    #[test]
    fn weight_zero_everywhere_is_refused() {
        let tail = "[[smtp]]\nname = \"a\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nweight = 0\n\n[[smtp]]\nname = \"b\"\nhost = \"localhost\"\ntls = \"none\"\nweight = 0\n";
        let e = parse(tail).unwrap_err().to_string();
        assert!(e.contains("weight 0"), "{e}");
        assert!(e.contains("line "), "{e}");
        let one = tail.replacen("weight = 0", "weight = 2", 1);
        assert!(parse(&one).is_ok());
    }

    #[test]
    fn domain_limits_name_the_line_of_a_bad_domain_and_group_providers() {
        let ok = "[outbox]\ndir = \"o\"\n\n[limits]\nper_day = 1000\n\n[limits.domains]\n\"gmail.com\" = { per_hour = 500 }\n\"Outlook.com\" = { per_second = 1 }\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.limits.per_day.map(|n| n.get()), Some(1000));
        let mut d: Vec<_> = c.limits.domains.iter().map(|l| l.domain.as_str()).collect();
        d.sort();
        assert_eq!(d, ["gmail.com", "outlook.com"]);

        let bad = "[outbox]\ndir = \"o\"\n\n[limits.domains]\n\"gmail.com\" = { per_hour = 500 }\n\"not a domain\" = { per_hour = 5 }\n";
        let e = parse(bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("line {}:", line_of(bad, "\"not a domain\""))),
            "{e}"
        );
        assert!(e.contains("is not a domain name"), "{e}");

        let twice = "[outbox]\ndir = \"o\"\n\n[limits.domains]\n\"gmail.com\" = { per_hour = 500 }\n\"googlemail.com\" = { per_hour = 5 }\n";
        let e = parse(twice).unwrap_err().to_string();
        assert!(e.contains("one provider (gmail.com)"), "{e}");

        let empty = "[outbox]\ndir = \"o\"\n\n[limits.domains]\n\"gmail.com\" = {}\n";
        assert!(parse(empty).unwrap_err().to_string().contains("sets none"));
    }
}
