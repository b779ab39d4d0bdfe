//! Sorting one message into a [`Verdict`]: by its MIME report type first (RFC 3464 DSN,
//! RFC 5965 complaint), then by its address (the `[unsubscribe] mailto`), then by content (a
//! DMARC aggregate report), then by the shape of a bounce carrying mailshot's Message-ID or
//! coming back to a VERP address.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::context::Context;
use super::fields::report_type;
use super::verdict::Verdict;
use super::verp::{self, Envelope};
use super::{arf, dsn, mailto, returned};
use crate::dmarc_report::container::{self, SkipKind};
use crate::dmarc_report::digest::Digest;

/// message/rfc822 parts nested deeper than this are not looked into, and a message that goes
/// deeper is skipped as hostile: a real bounce or complaint carries its original one level
/// down, a forwarded one two or three.
pub const MAX_DEPTH: usize = 8;

pub fn classify(bytes: &[u8], cx: &Context<'_>) -> Verdict {
    let Some(msg) = MessageParser::new().parse(bytes) else {
        return Verdict::Skipped {
            why: "not a parsable message (no header fields)".into(),
        };
    };
    if let Some(depth) = too_deep(&msg, 0) {
        return Verdict::Skipped {
            why: format!("attached messages nested more than {depth} deep"),
        };
    }
    match report_type(&msg).as_deref() {
        Some("delivery-status") => {
            return match verp::envelope(&msg, cx) {
                Envelope::Refused(why) => Verdict::Ignored { why },
                // A bounce of a seed copy (`send --seed`): nobody of the campaign's.
                Envelope::Seed => Verdict::Other,
                envelope => dsn::classify(&msg, cx.known, &envelope),
            };
        }
        Some("feedback-report") => return arf::classify(&msg, cx.known),
        _ => {}
    }
    if let (Some(unsub), Some(to)) = (cx.unsubscribe, cx.mailto.as_deref())
        && mailto::addressed_to(&msg, to)
    {
        return mailto::classify(&msg, unsub, cx.now);
    }
    if looks_like_dmarc_report(&msg) {
        match container::reports_in(bytes) {
            Ok(reports) => {
                return Verdict::DmarcReport {
                    digests: reports
                        .iter()
                        .map(|p| Digest::of(&p.report).with_format(p.rfc9990))
                        .collect(),
                };
            }
            Err(e) if e.kind() == SkipKind::Broken => {
                return Verdict::Skipped {
                    why: format!("a DMARC report that cannot be read: {e}"),
                };
            }
            Err(_) => {}
        }
    }
    returned::classify(&msg, cx)
}

/// The depth limit, if the message goes past it.
fn too_deep(msg: &Message<'_>, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return Some(MAX_DEPTH);
    }
    msg.parts.iter().find_map(|p| match &p.body {
        PartType::Message(m) => too_deep(m, depth + 1),
        _ => None,
    })
}

/// Receivers attach aggregate reports as zip, gzip or XML (often labelled
/// application/octet-stream), with a subject that starts `Report Domain:` (RFC 7489 7.2.1.1).
fn looks_like_dmarc_report(msg: &Message<'_>) -> bool {
    if msg
        .subject()
        .is_some_and(|s| s.to_ascii_lowercase().contains("report domain:"))
    {
        return true;
    }
    msg.attachments().any(|p| {
        let ct = p
            .content_type()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or_default().to_ascii_lowercase()
                )
            })
            .unwrap_or_default();
        let name = p.attachment_name().unwrap_or_default().to_ascii_lowercase();
        matches!(
            ct.as_str(),
            "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/x-zip-compressed"
                | "application/xml"
                | "text/xml"
        ) || [".xml", ".xml.gz", ".zip", ".gz"]
            .iter()
            .any(|ext| name.ends_with(ext))
    })
}
