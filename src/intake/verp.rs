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

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::context::Context;
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
/// originals' Return-Path, in that order, at most [`MAX_CANDIDATES`]: the iterator reads no
/// further, so a header block of thousands of addresses is never collected.
fn candidates<'m>(msg: &'m Message<'m>) -> impl Iterator<Item = String> + 'm {
    let envelope = msg
        .headers_raw()
        .filter(|(name, _)| ENVELOPE_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f)))
        .flat_map(|(_, value)| addresses_in(value));
    let postfix = part_of_type(
        msg,
        &["message/delivery-status", "message/global-delivery-status"],
    )
    .and_then(|part| {
        let text = String::from_utf8_lossy(part.contents());
        let blocks = fields::blocks(&text);
        blocks
            .first()
            .and_then(|first| get(first, "x-postfix-sender"))
            .and_then(typed_address)
    });
    let returned = msg.parts.iter().flat_map(returned_path);
    envelope.chain(postfix).chain(returned).take(MAX_CANDIDATES)
}

/// The Return-Path addresses of a returned original (an attached message or header block).
fn returned_path(part: &MessagePart<'_>) -> Vec<String> {
    let value = match &part.body {
        PartType::Message(m) => m.header_raw("Return-Path").map(str::to_owned),
        PartType::Text(t)
            if part.content_type().is_some_and(|c| {
                c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            }) =>
        {
            MessageParser::new()
                .parse_headers(t.as_bytes())
                .and_then(|h| h.header_raw("Return-Path").map(str::to_owned))
        }
        _ => None,
    };
    value
        .map(|v| addresses_in(&v).take(MAX_CANDIDATES).collect())
        .unwrap_or_default()
}

/// The address-like words of a header value (`Name <a@b>, c@d` -> a@b, c@d), without the
/// punctuation some systems leave after one (`Envelope-To: a@b;`, a sentence's `a@b.`).
fn addresses_in(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(|c: char| c == ',' || c == '<' || c == '>' || c.is_whitespace())
        .map(|w| w.trim_end_matches([';', '.', '>']))
        .filter(|w| w.contains('@'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::{MAX_CANDIDATES, addresses_in, candidates};

    #[test]
    fn address_words() {
        let words = |v| addresses_in(v).collect::<Vec<_>>();
        assert_eq!(
            words("Bounces <bounces+2-abc@x.example>,\r\n c@d"),
            ["bounces+2-abc@x.example", "c@d"]
        );
        // Exim's Envelope-to, and other systems' trailing punctuation.
        assert_eq!(
            words("bounces+2-abc@x.example; d@e.example. f@g.example>;"),
            ["bounces+2-abc@x.example", "d@e.example", "f@g.example"]
        );
    }

    #[test]
    fn candidates_stop_at_the_bound() {
        let many: String = (0..5000).map(|i| format!("a{i}@x.example, ")).collect();
        let raw = format!("Delivered-To: {many}\r\nTo: {many}\r\nSubject: s\r\n\r\nbody\r\n");
        let msg = mail_parser::MessageParser::new()
            .parse(raw.as_bytes())
            .unwrap();
        let got: Vec<String> = candidates(&msg).collect();
        assert_eq!(got.len(), MAX_CANDIDATES);
        assert_eq!(
            got[MAX_CANDIDATES - 1],
            format!("a{}@x.example", MAX_CANDIDATES - 1)
        );
    }
}
