//! campaign.toml's sender addresses get the recipients' address rule: a From, Reply-To or
//! return_path that a CSV row could not use is refused before anything is sent, and the
//! error names the file, the line and the key.

use crate::util::{CampaignDir, Spec, run, stderr};

/// Replaces `old` with `new` in the campaign file, runs `send`, and checks that it stops
/// (exit 2) with `campaign.<key>`, the line that holds it and `why` in the error, and that
/// nothing was written to the outbox.
fn assert_refused(old: &str, new: &str, key: &str, why: &str) {
    let c = CampaignDir::new(&Spec::default());
    let text = std::fs::read_to_string(&c.toml).unwrap();
    assert!(text.contains(old), "the campaign file has no {old:?}");
    let text = text.replacen(old, new, 1);
    std::fs::write(&c.toml, &text).unwrap();
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with(&format!("{key} =")))
        .unwrap();

    let out = run(&["send", c.toml_str()], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let place = format!("campaign.toml, line {line}: `campaign.{key}`");
    assert!(err.contains(&place), "want {place:?} in: {err}");
    assert!(err.contains(why), "want {why:?} in: {err}");
    assert!(c.eml_files("outbox").is_empty());
}

const FROM: &str = "from = \"Example News <news@news.example.com>\"";

/// `xn--zz` is an ASCII label that is not valid punycode: IDNA refuses it, as it does in the CSV.
#[test]
fn from_with_a_bad_idna_label_is_refused_with_its_line() {
    assert_refused(
        FROM,
        "from = \"Example News <news@xn--zz.example.com>\"",
        "from",
        "is not a valid domain name",
    );
}

/// A last label of digits is an IP address written as a domain, refused in the CSV too.
#[test]
fn from_with_an_all_digit_tld_is_refused_with_its_line() {
    assert_refused(
        FROM,
        "from = \"news@news.example.123\"",
        "from",
        "looks like an IP address",
    );
}

/// Reply-To gets the same rule: here a form feed in the display name, which would reach the
/// Reply-To header (TOML's `\f` escape puts it in the value).
#[test]
fn reply_to_with_a_control_character_is_refused_with_its_line() {
    assert_refused(
        "return_path =",
        "reply_to = \"Support\\fDesk <support@news.example.com>\"\nreturn_path =",
        "reply_to",
        "a control character",
    );
}

/// The envelope sender gets the rule as well: a domain without a dot is refused.
#[test]
fn return_path_without_a_dot_is_refused_with_its_line() {
    assert_refused(
        "return_path = \"bounces@news.example.com\"",
        "return_path = \"bounces@localhost\"",
        "return_path",
        "has no dot",
    );
}
