//! RFC 5965 feedback reports (ARF): `multipart/report; report-type=feedback-report`, sent by
//! mailbox providers' feedback loops when a recipient marks a message as spam.
//!
//! The recipient is found through the attached original: its Message-ID first (providers
//! often redact the To address, never mailshot's Message-ID), then its To, then the report's
//! `Original-Rcpt-To`, each only if this campaign sent to that address.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::fields::{self, clean_text, get, part_of_type, typed_address};
use super::known::{IdMatch, Known};
use super::returned::original;
use super::verdict::{Signal, Verdict};

pub fn classify(msg: &Message<'_>, known: &Known) -> Verdict {
    let Some(part) = part_of_type(msg, &["message/feedback-report"]) else {
        return Verdict::Skipped {
            why: "a feedback report without its message/feedback-report part".into(),
        };
    };
    let text = String::from_utf8_lossy(part.contents());
    let report = fields::blocks(&text).into_iter().next().unwrap_or_default();
    let feedback_type = get(&report, "feedback-type")
        .unwrap_or("abuse")
        .to_ascii_lowercase();
    if feedback_type == "not-spam" {
        // The opposite of a complaint: nothing to suppress.
        return Verdict::Other;
    }
    let feedback_type = clean_text(&feedback_type);
    let found = match original(msg, known) {
        IdMatch::Ours(r) => Some((r, Signal::ComplaintMessageId)),
        IdMatch::OtherCampaign(c) => {
            return Verdict::Ignored {
                why: format!("a complaint about campaign {c:?}, not this one: left for its intake"),
            };
        }
        IdMatch::Unknown => None,
    };
    let found = found
        .or_else(|| {
            original_to(msg)
                .and_then(|a| known.recipient(&a))
                .map(|r| (r, Signal::ComplaintTo))
        })
        .or_else(|| {
            get(&report, "original-rcpt-to")
                .and_then(typed_address)
                .and_then(|a| known.recipient(&a))
                .map(|r| (r, Signal::OriginalRcptTo))
        });
    match found {
        Some((recipient, signal)) => Verdict::Complaint {
            recipient,
            feedback_type,
            signal,
        },
        None => Verdict::Ignored {
            why: "a complaint about a message this campaign did not send (no mailshot Message-ID, no recipient it sent to)".into(),
        },
    }
}

/// The To address of the attached original (a message/rfc822 part or text/rfc822-headers).
fn original_to(msg: &Message<'_>) -> Option<String> {
    let first = |m: &Message<'_>| {
        m.to()
            .and_then(|t| t.first())
            .and_then(|a| a.address())
            .map(str::to_lowercase)
    };
    msg.parts.iter().find_map(|p| match &p.body {
        PartType::Message(m) => first(m),
        PartType::Text(t)
            if p.content_type().is_some_and(|c| {
                c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            }) =>
        {
            MessageParser::new()
                .parse_headers(t.as_bytes())
                .and_then(|h| first(&h))
        }
        _ => None,
    })
}
