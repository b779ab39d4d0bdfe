//! VERP on the way back: the address a bounce was delivered to names the recipient, when the
//! campaign sent with `[campaign] verp`. The address is read from where mail systems record
//! the envelope recipient (Delivered-To, X-Original-To, Envelope-To), from the bounce's To
//! (a bounce is addressed to the envelope sender), from Postfix's `X-Postfix-Sender` DSN field
//! and from the returned original's Return-Path. A tag is believed only when its HMAC verifies
//! for the address the journal has at its row; one that does not is said, and the message is
//! left alone: a bounce to a forged tag was not caused by this campaign's mail.
//!
//! With VERP on, the tag is the only thing that ties a bounce (a DSN or any other) to a
//! recipient: a bounce of this campaign's mail comes back to a tagged address, so one without
//! a tag is ignored and said, however well its returned Message-ID (computable by anyone who
//! knows the campaign id and the address) or its Final-Recipient matches. Complaints and mailto
//! unsubscribes do not come back to the envelope sender and are matched as without VERP.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::classify::Context;
use super::fields::{self, clean_text, get, part_of_type, typed_address};
use super::known::Recipient;

/// Candidate addresses looked at, at most: a real bounce has a handful.
const MAX_CANDIDATES: usize = 64;

/// Header fields in which mail systems record the envelope recipient, and the bounce's To.
const ENVELOPE_FIELDS: &[&str] = &[
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "x-envelope-to",
    "to",
];

/// What the VERP address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// A tag that verifies, for a recipient this campaign sent to.
    Ours(Recipient),
    /// A VERP-shaped address whose tag does not verify (forged, altered, another campaign's),
    /// or names a row this campaign never sent: why, said in the summary.
    Refused(String),
    /// A tag for row 0, which `send --seed` gives its seed copies (recipients are numbered
    /// from row 2): "a bounce of a seed copy", counted as other and left alone. Its MAC cannot
    /// be checked (the seed's address is in no journal), and that does not matter: it acts
    /// on nobody.
    Seed,
    /// The campaign sends with VERP, and the message came back to no address of its shape:
    /// a bounce of this campaign's mail would have, so it may be forged and is acted on in no
    /// way (a returned Message-ID or a Final-Recipient can be written by anyone).
    Untagged,
    /// The campaign does not send with VERP.
    Off,
}

/// Why a bounce without a tag is ignored when the campaign uses VERP.
pub const NO_TAG: &str = "no VERP tag (the campaign uses VERP; a bounce without one may be forged)";

/// The best VERP evidence in the message: a verified tag wins over a seed copy's, which wins
/// over any refused one.
pub fn envelope(msg: &Message<'_>, cx: &Context<'_>) -> Envelope {
    let Some(verp) = cx.verp else {
        return Envelope::Off;
    };
    let mut refused = Envelope::Untagged;
    for address in candidates(msg) {
        let Some(tag) = verp.tag(&address) else {
            continue;
        };
        if tag.row == 0 {
            refused = Envelope::Seed;
            continue;
        }
        let shown = clean_text(&address);
        match cx.known.row(tag.row) {
            Some(r) if verp.verify(&tag, &r.address, cx.now) => return Envelope::Ours(r),
            Some(_) if refused == Envelope::Seed => {}
            Some(_) => {
                refused = Envelope::Refused(format!(
                    "a bounce to {shown}, whose VERP tag does not verify for this campaign (forged, altered, or another campaign's): ignored"
                ));
            }
            None if refused == Envelope::Untagged => {
                refused = Envelope::Refused(format!(
                    "a bounce to {shown}, whose VERP tag names row {}, which this campaign never sent (forged, or another campaign's): ignored",
                    tag.row
                ));
            }
            None => {}
        }
    }
    refused
}

/// Addresses from the envelope fields, the DSN's `X-Postfix-Sender` and the returned
/// originals' Return-Path, bounded.
fn candidates(msg: &Message<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in msg.headers_raw() {
        if ENVELOPE_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            out.extend(addresses_in(value));
        }
    }
    if let Some(part) = part_of_type(
        msg,
        &["message/delivery-status", "message/global-delivery-status"],
    ) {
        let text = String::from_utf8_lossy(part.contents());
        if let Some(first) = fields::blocks(&text).first() {
            out.extend(get(first, "x-postfix-sender").and_then(typed_address));
        }
    }
    for part in &msg.parts {
        match &part.body {
            PartType::Message(m) => out.extend(
                m.header_raw("Return-Path")
                    .map(addresses_in)
                    .into_iter()
                    .flatten(),
            ),
            PartType::Text(t)
                if part.content_type().is_some_and(|c| {
                    c.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                }) =>
            {
                if let Some(h) = MessageParser::new().parse_headers(t.as_bytes()) {
                    out.extend(
                        h.header_raw("Return-Path")
                            .map(addresses_in)
                            .into_iter()
                            .flatten(),
                    );
                }
            }
            _ => {}
        }
    }
    out.truncate(MAX_CANDIDATES);
    out
}

/// The address-like words of a header value (`Name <a@b>, c@d` -> a@b, c@d).
fn addresses_in(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c == '<' || c == '>' || c.is_whitespace())
        .filter(|w| w.contains('@'))
        .take(MAX_CANDIDATES)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::addresses_in;

    #[test]
    fn address_words() {
        assert_eq!(
            addresses_in("Bounces <bounces+2-abc@x.example>,\r\n c@d"),
            ["bounces+2-abc@x.example", "c@d"]
        );
    }
}
