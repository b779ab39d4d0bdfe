//! VERP in tests: turning it on in a test campaign, and the tag computed independently of
//! mailshot from the documented construction (README, "VERP"), so a test checks the envelope
//! sender against the specification rather than against mailshot's own code.

use aws_lc_rs::hmac;

use super::CampaignDir;

/// The test campaign's `[unsubscribe]` secret (`unsub.secret`), which keys the tag.
pub const SECRET: &[u8] = b"test-secret";
pub const CAMPAIGN: &str = "test-campaign";

/// Adds `verp = true` to the campaign's `[campaign]` table.
pub fn enable(c: &CampaignDir) {
    let path = c.path().join("campaign.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    let toml = toml.replacen("[templates]", "verp = true\n\n[templates]", 1);
    std::fs::write(&path, toml).unwrap();
}

/// `bounces+<row>-<mac>@news.example.com`: the mac is the first 10 bytes of
/// HMAC-SHA256(verp key, "<campaign>\0<row>\0<lowercase address>") in lowercase base32, where
/// the verp key is HMAC-SHA256(secret, "mailshot-verp-v1").
pub fn envelope(row: u64, address: &str) -> String {
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, SECRET),
        b"mailshot-verp-v1",
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
    let input = format!("{CAMPAIGN}\0{row}\0{}", address.to_lowercase());
    let mac = hmac::sign(&key, input.as_bytes());
    format!(
        "bounces+{row}-{}@news.example.com",
        base32(&mac.as_ref()[..10])
    )
}

/// RFC 4648 base32, lowercase, for whole 5-byte groups, bit by bit.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    bits.chunks(5)
        .map(|c| char::from(ALPHABET[c.iter().fold(0usize, |n, &b| n << 1 | usize::from(b))]))
        .collect()
}
