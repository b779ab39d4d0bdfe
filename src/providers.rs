//! Mailbox providers as one receiver each (gmail.com and googlemail.com are one Gmail), and a
//! per-provider limit as campaign.toml writes it. A leaf: the configuration reads it, and
//! `send::limits` paces by it.

use std::num::NonZeroU32;
use std::time::Duration;

/// Domains that one mailbox provider receives for, as one throttle. The first domain names
/// the group in messages. Kept to domains whose MX is the provider's own.
pub const PROVIDERS: &[&[&str]] = &[
    &["gmail.com", "googlemail.com"],
    &[
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "hotmail.co.uk",
        "live.co.uk",
    ],
    &[
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "yahoo.de",
    ],
    &["aol.com", "aim.com"],
    &["icloud.com", "me.com", "mac.com"],
    &["gmx.de", "gmx.net", "gmx.com", "web.de"],
    &["yandex.ru", "yandex.com", "ya.ru"],
    &["mail.ru", "bk.ru", "inbox.ru", "list.ru"],
];

/// The group a (lowercase ASCII) domain belongs to: the first domain of its provider's entry
/// in [`PROVIDERS`], or the domain itself.
pub fn provider(domain: &str) -> &str {
    PROVIDERS
        .iter()
        .find(|g| g.contains(&domain))
        .map_or(domain, |g| g[0])
}

/// One domain limit as campaign.toml gives it (already checked by the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainLimit {
    pub domain: String,
    pub per_second: Option<NonZeroU32>,
    pub per_hour: Option<NonZeroU32>,
    pub per_day: Option<NonZeroU32>,
}

impl DomainLimit {
    /// The even interval between two messages to this provider.
    pub fn interval(&self) -> Option<Duration> {
        let per = |window: u64, n: Option<NonZeroU32>| {
            n.map(|n| Duration::from_nanos((window * 1_000_000_000).div_ceil(n.get() as u64)))
        };
        [
            per(1, self.per_second),
            per(3600, self.per_hour),
            per(86_400, self.per_day),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}
