//! Unsubscribe links: per-recipient HTTPS and mailto URIs carrying an HMAC token of the
//! address, for the List-Unsubscribe header (RFC 2369, RFC 8058) and the visible link.
//!
//! The token is `base64url(HMAC-SHA256(secret, lowercase(address)))` without padding. The
//! endpoint recomputes it from the `email` parameter to know the request is genuine, so it
//! needs no database of issued links, and nobody can unsubscribe an address they only guess.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::SystemTime;

use lettre::Address;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::UnsubscribeConfig;
use crate::secret::SecretError;

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds the links. The key is derived once at start-up.
pub struct Unsubscriber {
    url: Option<String>,
    mailto: Option<Address>,
    key: hmac::Key,
    /// The secret being rotated out, accepted (never issued) until the time.
    previous: Option<(hmac::Key, SystemTime)>,
}

/// One recipient's unsubscribe links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub https: Option<String>,
    pub mailto: Option<String>,
}

impl Unsubscriber {
    pub fn new(cfg: &UnsubscribeConfig) -> Result<Unsubscriber, SecretError> {
        let secret = cfg.secret.load()?;
        let previous = match &cfg.previous {
            Some(p) => {
                let old = p.secret.load()?;
                Some((
                    hmac::Key::new(hmac::HMAC_SHA256, old.expose().as_bytes()),
                    p.until,
                ))
            }
            None => None,
        };
        Ok(Unsubscriber {
            url: cfg.url.clone(),
            mailto: cfg.mailto.clone(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes()),
            previous,
        })
    }

    /// Whether `token` is genuine for `address` at `now`: made with the current secret, or
    /// with the previous one before its grace period ended. The comparison is constant-time
    /// (`hmac::verify`); a token that is not base64url is simply false.
    pub fn verify(&self, address: &Address, token: &str, now: SystemTime) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        let message = address.to_string().to_lowercase();
        let current = hmac::verify(&self.key, message.as_bytes(), &tag).is_ok();
        let previous = self.previous.as_ref().is_some_and(|(key, until)| {
            now < *until && hmac::verify(key, message.as_bytes(), &tag).is_ok()
        });
        current | previous
    }

    pub fn token(&self, address: &Address) -> String {
        let tag = hmac::sign(&self.key, address.to_string().to_lowercase().as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    pub fn links(&self, address: &Address) -> Links {
        let token = self.token(address);
        let email = utf8_percent_encode(address.as_ref(), COMPONENT).to_string();
        Links {
            https: self.url.as_ref().map(|base| {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}email={email}&token={token}")
            }),
            mailto: self
                .mailto
                .as_ref()
                .map(|to| format!("mailto:{to}?subject=unsubscribe%20{email}%20{token}")),
        }
    }
}

impl Links {
    /// The List-Unsubscribe value: HTTPS first, as receivers prefer it.
    pub fn header_value(&self) -> Option<String> {
        let parts: Vec<String> = [&self.https, &self.mailto]
            .into_iter()
            .flatten()
            .map(|u| format!("<{u}>"))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// RFC 8058 one-click needs an HTTPS URI; a mailto alone cannot be one-click.
    pub fn one_click(&self) -> bool {
        self.https.is_some()
    }

    /// The link for the body: the web page when there is one.
    pub fn visible(&self) -> &str {
        self.https
            .as_deref()
            .or(self.mailto.as_deref())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;

    fn unsub(url: Option<&str>, mailto: Option<&str>) -> Unsubscriber {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        Unsubscriber::new(&UnsubscribeConfig {
            url: url.map(str::to_owned),
            mailto: mailto.map(|m| m.parse().unwrap()),
            secret: SecretSource::File(path),
            previous: None,
        })
        .unwrap()
    }

    #[test]
    fn token_is_hmac_of_lowercase_address() {
        let u = unsub(Some("https://x.example/u"), None);
        let a: Address = "Ann@Example.com".parse().unwrap();
        let b: Address = "ann@example.com".parse().unwrap();
        assert_eq!(u.token(&a), u.token(&b));
        // Independent computation: HMAC-SHA256("s3cret", "ann@example.com").
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let want = URL_SAFE_NO_PAD.encode(hmac::sign(&key, b"ann@example.com").as_ref());
        assert_eq!(u.token(&b), want);
        assert_eq!(want.len(), 43);
    }

    #[test]
    fn verify_current_and_previous_within_grace() {
        use std::time::{Duration, UNIX_EPOCH};
        let dir = tempfile::tempdir().unwrap();
        let (new, old) = (dir.path().join("new"), dir.path().join("old"));
        std::fs::write(&new, "new-secret").unwrap();
        std::fs::write(&old, "old-secret").unwrap();
        let cfg = |secret: &std::path::Path, previous| UnsubscribeConfig {
            url: Some("https://x.example/u".into()),
            mailto: None,
            secret: SecretSource::File(secret.to_owned()),
            previous,
        };
        let until = UNIX_EPOCH + Duration::from_secs(1000);
        let u = Unsubscriber::new(&cfg(
            &new,
            Some(crate::config::PreviousSecret {
                secret: SecretSource::File(old.clone()),
                until,
            }),
        ))
        .unwrap();
        let issued_before = Unsubscriber::new(&cfg(&old, None)).unwrap();
        let a: Address = "ann@example.com".parse().unwrap();
        let before = until - Duration::from_secs(1);
        assert!(u.verify(&a, &u.token(&a), until));
        assert!(u.verify(&a, &issued_before.token(&a), before));
        assert!(!u.verify(&a, &issued_before.token(&a), until), "grace over");
        assert!(!u.verify(&"bob@example.com".parse().unwrap(), &u.token(&a), before));
        assert!(!u.verify(&a, "not base64!", before));
        assert!(!u.verify(&a, &u.token(&a)[..42], before));
    }

    #[test]
    fn links_and_header() {
        let u = unsub(
            Some("https://x.example/u?list=news"),
            Some("unsub@x.example"),
        );
        let l = u.links(&"a+b@example.com".parse().unwrap());
        let https = l.https.clone().unwrap();
        assert!(
            https.starts_with("https://x.example/u?list=news&email=a%2Bb%40example.com&token=")
        );
        assert!(
            l.mailto
                .as_deref()
                .unwrap()
                .starts_with("mailto:unsub@x.example?subject=unsubscribe%20a%2Bb%40example.com%20")
        );
        let h = l.header_value().unwrap();
        assert!(
            h.starts_with("<https://") && h.contains(">, <mailto:"),
            "{h}"
        );
        assert!(l.one_click());
        let mailto_only =
            unsub(None, Some("unsub@x.example")).links(&"a@example.com".parse().unwrap());
        assert!(!mailto_only.one_click());
    }
}
