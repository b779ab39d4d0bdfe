//! VERP (variable envelope return path): each message's envelope sender is
//! `<return_path local part>+<tag>@<return_path domain>`, where the tag names the recipient's
//! row and is authenticated with an HMAC, so that any bounce, even one that returns nothing of
//! the original, comes back to an address that names its recipient, and nobody without the
//! key can make one that does.
//!
//! The tag is `<row>-<mac>`: the row in decimal (no leading zero), then the first 80 bits of
//! `HMAC-SHA256(verp key, "<campaign>\0<row>\0<lowercase address>")` in lowercase base32
//! (16 characters). The campaign is inside the MAC, not in the tag, so a tag from another
//! campaign does not verify here. The VERP key is derived from the `[unsubscribe]` secret K as
//! `HMAC-SHA256(K, "mailshot-verp-v1")`, so the unsubscribe tokens (keyed with K itself) and
//! the tags are separate by construction: no input of one can be a MAC of the other. Only the
//! local part grows: the domain, and with it SPF and DMARC alignment, is the return path's.

use std::time::SystemTime;

use aws_lc_rs::{constant_time, hmac};
use lettre::Address;

use crate::address::MAX_LOCAL_PART as MAX_LOCAL;
use crate::config::Campaign;
use crate::config::VERP_SUFFIX_MAX as MAX_SUFFIX;
use crate::secret::SecretError;

/// MAC characters in a tag: 10 bytes of the HMAC in base32.
const MAC_CHARS: usize = 16;
// The campaign's check of the return path (in config, below this module) counts on the tag
// being at most this long: `+`, a row of up to 10 digits, `-`, the MAC.
const _: () = assert!(MAX_SUFFIX == 1 + 10 + 1 + MAC_CHARS);

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The row's VERP address cannot be made. Only this row is affected.
#[derive(Debug, thiserror::Error)]
pub enum VerpError {
    /// Only past row 9,999,999,999: the configuration keeps the local part short enough for
    /// any smaller row.
    #[error(
        "the VERP envelope sender for row {row} would have a {octets}-octet local part; SMTP allows {MAX_LOCAL}: shorten campaign.return_path's local part"
    )]
    TooLong { row: u64, octets: usize },
    #[error("the VERP envelope sender for row {row} is not a valid address ({why})")]
    Invalid { row: u64, why: String },
}

/// Makes and checks tags. Built once per campaign; the key never leaves it.
pub struct Verp {
    campaign_id: String,
    /// The return path's local part, as configured (its case kept on the envelope).
    local: String,
    /// The return path's domain, lowercase.
    domain: String,
    key: hmac::Key,
    /// The unsubscribe secret being rotated out: its tags are accepted (never made) until then.
    previous: Option<(hmac::Key, SystemTime)>,
}

/// A VERP address's tag, read but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub row: u64,
    /// Lowercase base32.
    mac: String,
}

impl Verp {
    /// The campaign's VERP, when `[campaign] verp` is on. The configuration has checked that
    /// there is an `[unsubscribe]` secret and room in the local part.
    pub fn new(campaign: &Campaign) -> Result<Option<Verp>, SecretError> {
        let Some(unsub) = campaign.unsubscribe.as_ref().filter(|_| campaign.verp) else {
            return Ok(None);
        };
        let key = |s: &crate::secret::Secret| subkey(s.expose().as_bytes());
        let previous = match &unsub.previous {
            Some(p) => Some((key(&p.secret.load()?), p.until)),
            None => None,
        };
        Ok(Some(Verp {
            campaign_id: campaign.id.clone(),
            local: campaign.return_path.user().to_owned(),
            domain: campaign.return_path.domain().to_ascii_lowercase(),
            key: key(&unsub.secret.load()?),
            previous,
        }))
    }

    /// The envelope sender for one recipient. The same in every run of the campaign, so a
    /// resumed message carries the tag the first attempt had.
    pub fn envelope(&self, row: u64, address: &Address) -> Result<Address, VerpError> {
        let local = format!("{}+{row}-{}", self.local, self.mac(&self.key, row, address));
        if local.len() > MAX_LOCAL {
            return Err(VerpError::TooLong {
                row,
                octets: local.len(),
            });
        }
        Address::new(local, &self.domain).map_err(|e| VerpError::Invalid {
            row,
            why: e.to_string(),
        })
    }

    /// The tag of an address that has this campaign's VERP shape (`<local>+<row>-<mac>@<domain>`,
    /// compared without case), or None for any other address.
    pub fn tag(&self, address: &str) -> Option<Tag> {
        let address = address.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = address.rsplit_once('@')?;
        let (base, tag) = local.rsplit_once('+')?;
        if !base.eq_ignore_ascii_case(&self.local) || !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let (row, mac) = tag.split_once('-')?;
        // Canonical decimal only (`envelope` writes no leading zero): `+07-` is not row 7's.
        let row_ok = !row.is_empty()
            && row.len() <= 20
            && row.bytes().all(|b| b.is_ascii_digit())
            && (row == "0" || !row.starts_with('0'));
        let mac = mac.to_ascii_lowercase();
        let mac_ok = mac.len() == MAC_CHARS && mac.bytes().all(|b| BASE32.contains(&b));
        if !(row_ok && mac_ok) {
            return None;
        }
        Some(Tag {
            row: row.parse().ok()?,
            mac,
        })
    }

    /// Whether the tag was made for `address` (the journal's address for the tag's row) in this
    /// campaign: with the current key, or the previous one before its grace period ended. The
    /// comparison is constant-time.
    pub fn verify(&self, tag: &Tag, address: &str, now: SystemTime) -> bool {
        let Ok(address) = address.parse::<Address>() else {
            return false;
        };
        let same = |key: &hmac::Key| {
            let want = self.mac(key, tag.row, &address);
            constant_time::verify_slices_are_equal(want.as_bytes(), tag.mac.as_bytes()).is_ok()
        };
        let current = same(&self.key);
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|(key, until)| now < *until && same(key));
        current | previous
    }

    fn mac(&self, key: &hmac::Key, row: u64, address: &Address) -> String {
        let input = format!(
            "{}\0{row}\0{}",
            self.campaign_id,
            address.to_string().to_lowercase()
        );
        base32(&hmac::sign(key, input.as_bytes()).as_ref()[..MAC_CHARS * 5 / 8])
    }
}

/// The VERP key derived from the `[unsubscribe]` secret: `HMAC-SHA256(secret, label)`.
fn subkey(secret: &[u8]) -> hmac::Key {
    let parent = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::Key::new(
        hmac::HMAC_SHA256,
        hmac::sign(&parent, b"mailshot-verp-v1").as_ref(),
    )
}

/// RFC 4648 base32 in lowercase, without padding, for a whole number of 5-byte groups.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for group in bytes.chunks(5) {
        let n = group.iter().fold(0u64, |n, &b| n << 8 | u64::from(b));
        for i in (0..8).rev() {
            out.push(char::from(BASE32[(n >> (i * 5) & 31) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn campaign(dir: &std::path::Path, return_path: &str, previous: bool) -> Campaign {
        for (name, value) in [("new", "new-secret\n"), ("old", "old-secret\n")] {
            if !dir.join(name).exists() {
                std::fs::write(dir.join(name), value).unwrap();
            }
        }
        let previous = if previous {
            "previous_secret_file = \"old\"\nprevious_until = \"1970-01-01T00:16:40Z\"\n"
        } else {
            ""
        };
        let toml = format!(
            "[campaign]\nid = \"spring\"\nfrom = \"news@news.example.com\"\nreturn_path = \"{return_path}\"\nsubject = \"s\"\nverp = true\n[templates]\ntext = \"t\"\n[recipients]\nfile = \"r.csv\"\n[[dkim]]\ndomain = \"news.example.com\"\nselector = \"s\"\nprivate_key = \"k.pem\"\n[outbox]\ndir = \"o\"\n[unsubscribe]\nurl = \"https://news.example.com/u\"\nsecret_file = \"new\"\n{previous}"
        );
        Campaign::parse(&dir.join("campaign.toml"), &toml).unwrap()
    }

    fn verp(return_path: &str) -> Verp {
        let dir = tempfile::tempdir().unwrap();
        Verp::new(&campaign(dir.path(), return_path, false))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_tag_is_the_row_and_an_hmac_of_campaign_row_and_address() {
        let v = verp("Bounces@News.Example.com");
        let ann: Address = "Ann@Example.com".parse().unwrap();
        let env = v.envelope(7, &ann).unwrap().to_string();
        // Independent computation of the documented construction.
        let parent = hmac::Key::new(hmac::HMAC_SHA256, b"new-secret");
        let derived = hmac::sign(&parent, b"mailshot-verp-v1");
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        let mac = hmac::sign(&key, b"spring\x007\0ann@example.com");
        let want = base32(&mac.as_ref()[..10]);
        assert_eq!(env, format!("Bounces+7-{want}@news.example.com"));
        assert_eq!(
            v.envelope(7, &"ann@example.com".parse().unwrap())
                .unwrap()
                .to_string(),
            env
        );
        let tag = v.tag(&env.to_uppercase()).expect("case does not matter");
        assert_eq!(tag.row, 7);
        assert!(v.verify(&tag, "ann@example.com", UNIX_EPOCH));
    }

    #[test]
    fn an_altered_or_forged_tag_does_not_verify() {
        let v = verp("bounces@news.example.com");
        let env = v
            .envelope(7, &"ann@example.com".parse().unwrap())
            .unwrap()
            .to_string();
        let tag = v.tag(&env).unwrap();
        assert!(
            !v.verify(&tag, "bob@example.com", UNIX_EPOCH),
            "another address"
        );
        let moved = v.tag(&env.replace("+7-", "+8-")).unwrap();
        assert!(
            !v.verify(&moved, "ann@example.com", UNIX_EPOCH),
            "another row"
        );
        let at = env.find('@').unwrap();
        let other = if &env[at - 1..at] == "a" { "b" } else { "a" };
        let flipped = v
            .tag(&format!("{}{other}{}", &env[..at - 1], &env[at..]))
            .unwrap();
        assert!(
            !v.verify(&flipped, "ann@example.com", UNIX_EPOCH),
            "one character changed"
        );
        for not_ours in [
            "bounces@news.example.com",
            "other+7-aaaaaaaaaaaaaaaa@news.example.com",
            "bounces+7-aaaaaaaaaaaaaaaa@elsewhere.example",
            "bounces+7-aaaaaaaaaaaaaaa@news.example.com",
            "bounces+x-aaaaaaaaaaaaaaaa@news.example.com",
            "bounces+7-aaaaaaaaaaaaaaa1@news.example.com",
            "bounces+07-aaaaaaaaaaaaaaaa@news.example.com",
            "bounces+00-aaaaaaaaaaaaaaaa@news.example.com",
        ] {
            assert_eq!(v.tag(not_ours), None, "{not_ours}");
        }
        let seed = v.tag("bounces+0-aaaaaaaaaaaaaaaa@news.example.com");
        assert_eq!(seed.map(|t| t.row), Some(0), "row 0 is written \"0\"");
        // Another campaign with the same key and return path makes another tag.
        let dir = tempfile::tempdir().unwrap();
        let mut other = campaign(dir.path(), "bounces@news.example.com", false);
        other.id = "autumn".into();
        let other = Verp::new(&other).unwrap().unwrap();
        let theirs = other
            .envelope(7, &"ann@example.com".parse().unwrap())
            .unwrap();
        assert!(!v.verify(
            &v.tag(theirs.as_ref()).unwrap(),
            "ann@example.com",
            UNIX_EPOCH
        ));
    }

    #[test]
    fn the_previous_key_counts_until_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let rotated = Verp::new(&campaign(dir.path(), "bounces@news.example.com", true))
            .unwrap()
            .unwrap();
        // Tags made before the rotation, with the old secret as the only one.
        std::fs::write(dir.path().join("new"), "old-secret\n").unwrap();
        let before = Verp::new(&campaign(dir.path(), "bounces@news.example.com", false))
            .unwrap()
            .unwrap();
        let old = before
            .envelope(3, &"ann@example.com".parse().unwrap())
            .unwrap();
        let tag = rotated.tag(old.as_ref()).unwrap();
        let until = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(rotated.verify(&tag, "ann@example.com", until - Duration::from_secs(1)));
        assert!(!rotated.verify(&tag, "ann@example.com", until));
    }

    #[test]
    fn the_local_part_stays_within_64_octets() {
        let longest = "b".repeat(MAX_LOCAL - MAX_SUFFIX);
        let v = verp(&format!("{longest}@news.example.com"));
        let ann: Address = "ann@example.com".parse().unwrap();
        let env = v.envelope(9_999_999_999, &ann).unwrap();
        assert_eq!(env.user().len(), MAX_LOCAL);
        let e = v.envelope(10_000_000_000, &ann).unwrap_err();
        assert!(
            matches!(e, VerpError::TooLong { octets, .. } if octets == MAX_LOCAL + 1),
            "{e}"
        );
        // The configuration refuses a local part one octet longer.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("new"), "s").unwrap();
        let toml = format!(
            "[campaign]\nid = \"c\"\nfrom = \"n@x.example\"\nreturn_path = \"b{longest}@x.example\"\nsubject = \"s\"\nverp = true\n[templates]\ntext = \"t\"\n[recipients]\nfile = \"r.csv\"\n[[dkim]]\ndomain = \"x.example\"\nselector = \"s\"\nprivate_key = \"k.pem\"\n[outbox]\ndir = \"o\"\n[unsubscribe]\nurl = \"https://x.example/u\"\nsecret_file = \"new\"\n"
        );
        let err = Campaign::parse(&dir.path().join("campaign.toml"), &toml)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("campaign.verp") && err.contains("37 octets"),
            "{err}"
        );
        let no_key = toml.split("[unsubscribe]").next().unwrap().to_owned();
        let err = Campaign::parse(&dir.path().join("campaign.toml"), &no_key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("[unsubscribe]"), "{err}");
    }

    #[test]
    fn base32_is_rfc_4648() {
        // RFC 4648 section 10: BASE32("fooba") = "MZXW6YTB".
        assert_eq!(base32(b"fooba"), "mzxw6ytb");
    }
}
