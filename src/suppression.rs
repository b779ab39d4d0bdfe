//! The suppression list: addresses and whole domains never to send to (unsubscribed,
//! bounced, complained). Checked before a message is rendered; optionally extended with
//! recipients the relay refused permanently as unknown.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SuppressionError {
    #[error(
        "cannot read the suppression list {path}: {source}; create it (it may be empty) or fix suppression.file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One file, one entry per line: `user@example.com`, or `@example.com` / `example.com` for a
/// whole domain. `#` starts a comment. Matching ignores case.
#[derive(Default)]
pub struct Suppression {
    addresses: HashSet<String>,
    domains: HashSet<String>,
    path: Option<PathBuf>,
    add_hard_bounces: bool,
    appender: Mutex<()>,
}

impl Suppression {
    pub fn none() -> Suppression {
        Suppression::default()
    }

    pub fn load(path: &Path, add_hard_bounces: bool) -> Result<Suppression, SuppressionError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            // A list we are allowed to grow may start out missing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && add_hard_bounces => String::new(),
            Err(source) => {
                return Err(SuppressionError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut s = Suppression {
            path: Some(path.to_owned()),
            add_hard_bounces,
            ..Suppression::default()
        };
        for line in text.lines() {
            let entry = normalize(line.split('#').next().unwrap_or_default().trim());
            if entry.is_empty() {
                continue;
            }
            match entry.strip_prefix('@') {
                Some(domain) => {
                    s.domains.insert(domain.to_owned());
                }
                None if !entry.contains('@') => {
                    s.domains.insert(entry);
                }
                None => {
                    s.addresses.insert(entry);
                }
            }
        }
        Ok(s)
    }

    pub fn len(&self) -> usize {
        self.addresses.len() + self.domains.len()
    }

    /// Why `address` is suppressed, if it is.
    pub fn check(&self, address: &str) -> Option<String> {
        let a = address.to_lowercase();
        if self.addresses.contains(&a) {
            return Some("on the suppression list".into());
        }
        let domain = a.rsplit_once('@').map(|(_, d)| d)?;
        self.domains
            .contains(domain)
            .then(|| format!("the domain {domain} is on the suppression list"))
    }

    /// Appends a hard-bounced address, when the user opted in. Returns whether it did.
    pub fn add(&self, address: &str, reason: &str, when: &str) -> bool {
        let Some(path) = &self.path else { return false };
        if !self.add_hard_bounces {
            return false;
        }
        let _guard = self.appender.lock().unwrap_or_else(|e| e.into_inner());
        let line = format!(
            "{address} # {when} {}\n",
            reason.replace(['\r', '\n', '#'], " ")
        );
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .is_ok()
    }
}

/// Lowercase, with an internationalized domain in the punycode form mailshot sends to.
fn normalize(entry: &str) -> String {
    let lower = entry.to_lowercase();
    let (local, domain) = match lower.rsplit_once('@') {
        Some((l, d)) => (Some(l), d),
        None => (None, lower.as_str()),
    };
    let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned());
    match local {
        Some(l) => format!("{l}@{domain}"),
        None => domain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        std::fs::write(
            &p,
            "# unsubscribed\nAnn@Example.com\n@blocked.example\nspam.example # complaints\nb@bücher.example\n",
        )
        .unwrap();
        let s = Suppression::load(&p, false).unwrap();
        assert!(s.check("ann@example.com").is_some());
        assert!(s.check("x@BLOCKED.example").is_some());
        assert!(s.check("y@spam.example").is_some());
        assert!(s.check("bob@example.com").is_none());
        assert!(s.check("b@xn--bcher-kva.example").is_some());
        assert_eq!(s.len(), 4);
    }
}
