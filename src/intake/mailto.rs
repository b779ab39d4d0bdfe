//! Unsubscribe requests by mail: the second List-Unsubscribe URI is
//! `mailto:<[unsubscribe] mailto>?subject=unsubscribe%20<address>%20<token>`, so the request
//! arrives with `unsubscribe <address> <token>` in its subject. The token is the address's
//! HMAC (see `unsubscribe.rs`), checked in constant time: only the recipient, who got the
//! link, can unsubscribe the address, whoever sends the mail.

use mail_parser::Message;
use percent_encoding::percent_decode_str;

use super::fields::clean_text;
use super::verdict::Verdict;
use crate::unsubscribe::Unsubscriber;

/// Sent to the unsubscribe address: in To or Cc, or the envelope recipient a delivery agent
/// recorded (Delivered-To, X-Original-To).
pub fn addressed_to(msg: &Message<'_>, mailto: &str) -> bool {
    let in_header = [msg.to(), msg.cc()]
        .into_iter()
        .flatten()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .any(|a| a.eq_ignore_ascii_case(mailto));
    in_header
        || ["Delivered-To", "X-Original-To"].iter().any(|h| {
            msg.header_raw(*h).is_some_and(|v| {
                v.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .eq_ignore_ascii_case(mailto)
            })
        })
}

pub fn classify(msg: &Message<'_>, unsub: &Unsubscriber, now: std::time::SystemTime) -> Verdict {
    let subject = msg.subject().unwrap_or_default();
    let words: Vec<&str> = subject.split_whitespace().collect();
    let Some(at) = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("unsubscribe"))
    else {
        return Verdict::Ignored {
            why: format!(
                "mail to the unsubscribe address without mailshot's request in the subject ({:?}): left for a person",
                clean_text(subject)
            ),
        };
    };
    let (Some(address), Some(token)) = (words.get(at + 1), words.get(at + 2)) else {
        return Verdict::Ignored {
            why: "an unsubscribe request without an address and token: left for a person".into(),
        };
    };
    // Mail clients decode the mailto URI's subject; a few leave it percent-encoded.
    let typed = percent_decode_str(address).decode_utf8_lossy();
    // Normalized as the recipient list was (the token is over that form).
    let Ok((parsed, _)) = crate::address::parse(&typed) else {
        return Verdict::Ignored {
            why: format!(
                "an unsubscribe request for {:?}, which is not an address",
                clean_text(&typed)
            ),
        };
    };
    let address = parsed.to_string().to_lowercase();
    if unsub.verify(&parsed, token, now) {
        Verdict::Unsubscribe { address }
    } else {
        Verdict::Ignored {
            why: format!(
                "an unsubscribe request for {} whose token does not match (forged or mangled)",
                clean_text(&address)
            ),
        }
    }
}
