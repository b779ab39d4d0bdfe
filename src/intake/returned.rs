//! The returned original inside a bounce, and the bounces that are not RFC 3464 reports.
//!
//! A bounce carries the message it could not deliver: as a `message/rfc822` part, as
//! `text/rfc822-headers` (RFC 3462), or, in Exim's and qmail's plain-text bounces, as the
//! original header lines pasted below a marker line. mailshot's Message-IDs are made from the
//! campaign and the address, so the original's Message-ID names the recipient exactly. The
//! bounce's own In-Reply-To and References are never used: an auto-reply carries them too.
//! With VERP, the address the bounce came back to names the recipient even when nothing of
//! the original is returned, and nothing else does: the Message-ID then only corroborates
//! that a message is a bounce (see [`super::verp`]).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::context::Context;
use super::fields::{clean_text, enhanced_status};
use super::known::{IdMatch, Known};
use super::verdict::{Bounce, BounceFormat, Signal, Verdict};
use super::verp::{self, Envelope, NO_TAG};

/// Text searched for pasted header lines, per part: the original's headers come within the
/// first screenfuls of a bounce.
const MAX_SCAN: usize = 256 * 1024;

/// What the returned originals' Message-IDs say, the best match first: one of ours for a
/// recipient of this campaign, else another campaign's, else nothing.
pub fn original(msg: &Message<'_>, known: &Known) -> IdMatch {
    let mut best = IdMatch::Unknown;
    for id in returned_ids(msg) {
        match known.message_id(&id) {
            m @ IdMatch::Ours(_) => return m,
            m @ IdMatch::OtherCampaign(_) => best = m,
            IdMatch::Unknown => {}
        }
    }
    best
}

/// The Message-IDs of returned originals: attached messages, attached header blocks and
/// header lines pasted into text parts.
fn returned_ids(msg: &Message<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, part) in msg.parts.iter().enumerate() {
        match &part.body {
            PartType::Message(m) => ids.extend(m.message_id().map(str::to_owned)),
            PartType::Text(t) => {
                let is_headers = part.content_type().is_some_and(|c| {
                    c.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                });
                if is_headers {
                    if let Some(h) = MessageParser::new().parse_headers(t.as_bytes()) {
                        ids.extend(h.message_id().map(str::to_owned));
                    }
                } else if i > 0 || msg.parts.len() == 1 {
                    ids.extend(pasted_ids(t));
                }
            }
            _ => {}
        }
    }
    ids
}

/// `Message-ID: <...>` lines (the value possibly on the next, folded line) in a text part.
fn pasted_ids(text: &str) -> Vec<String> {
    let mut end = text.len().min(MAX_SCAN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut ids = Vec::new();
    let mut lines = text[..end].lines().peekable();
    while let Some(line) = lines.next() {
        let l = line.trim_start();
        if l.len() < 11 || !l[..11].eq_ignore_ascii_case("message-id:") {
            continue;
        }
        let mut value = l[11..].trim().to_owned();
        if value.is_empty()
            && let Some(next) = lines.peek()
        {
            value = next.trim().to_owned();
        }
        if let (Some(a), Some(b)) = (value.find('<'), value.find('>'))
            && a < b
        {
            ids.push(value[a + 1..b].to_owned());
        }
    }
    ids
}

/// A message from a mail system rather than a person: the null return path RFC 5321 gives
/// bounces, a MAILER-DAEMON or postmaster sender, or Exim's X-Failed-Recipients.
fn from_mail_system(msg: &Message<'_>) -> bool {
    let null_path = msg
        .header_raw("Return-Path")
        .is_some_and(|v| matches!(v.trim(), "<>" | ""));
    null_path || from_daemon(msg) || msg.header_raw("X-Failed-Recipients").is_some()
}

/// From a MAILER-DAEMON or postmaster address: what mail systems sign their bounces with.
fn from_daemon(msg: &Message<'_>) -> bool {
    msg.from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .and_then(|a| a.split('@').next())
        .is_some_and(|local| {
            ["mailer-daemon", "postmaster", "mail-daemon"].contains(&local.to_lowercase().as_str())
        })
}

/// An automatic reply (an out-of-office, a ticket receipt): not a bounce, whatever address it
/// came back to (RFC 3834 sends them to the Return-Path, so to the VERP address too, often
/// with a null return path of their own). RFC 3834's `Auto-Submitted` with any value but `no`
/// marks one in any language, except that mail systems put `Auto-Submitted: auto-replied` on
/// their bounces too: a DSN, a message with X-Failed-Recipients or one from a MAILER-DAEMON
/// or postmaster address is still read as a bounce.
fn auto_reply(msg: &Message<'_>) -> bool {
    let has = |h: &str| msg.header_raw(h).is_some();
    let auto_submitted = msg.header_raw("Auto-Submitted").is_some_and(|v| {
        // `auto-replied; owner-email="..."`: the keyword is before any parameter.
        let keyword = v.split(';').next().unwrap_or_default().trim();
        !keyword.is_empty() && !keyword.eq_ignore_ascii_case("no")
    });
    let bounce_like = super::fields::report_type(msg).as_deref() == Some("delivery-status")
        || has("X-Failed-Recipients")
        || from_daemon(msg);
    let precedence = msg
        .header_raw("Precedence")
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("auto_reply"));
    let subject = msg.subject().unwrap_or_default().to_ascii_lowercase();
    (auto_submitted && !bounce_like)
        || has("X-Autoreply")
        || has("X-Autorespond")
        || precedence
        || ["auto:", "automatic reply", "out of office", "autoreply"]
            .iter()
            .any(|p| subject.starts_with(p))
}

/// A bounce that is not an RFC 3464 report (Exim's and qmail's plain text, older Exchange):
/// acted on only through its VERP address, or, when the campaign does not use VERP, the
/// returned Message-ID. Its status is the first RFC 3463 code in its text; without one it
/// counts as soft, so an unreadable bounce never suppresses anyone. A message with nothing
/// but the VERP address to say it is a bounce (no returned original) and no status code is
/// not one: an out-of-office reply must never count toward `soft_bounce_limit`.
pub fn classify(msg: &Message<'_>, cx: &Context<'_>) -> Verdict {
    if !from_mail_system(msg) || auto_reply(msg) {
        return Verdict::Other;
    }
    let returned = original(msg, cx.known);
    let corroborated = matches!(returned, IdMatch::Ours(_));
    let (recipient, signal) = match (verp::envelope(msg, cx), returned) {
        (Envelope::Refused(why), _) => return Verdict::Ignored { why },
        // A bounce of a seed copy: `send --seed` mail, no recipient of the campaign.
        (Envelope::Seed, _) => return Verdict::Other,
        (Envelope::Ours(r), _) => (r, Signal::Verp),
        (_, IdMatch::OtherCampaign(c)) => {
            return Verdict::Ignored {
                why: format!("a bounce for campaign {c:?}, not this one: left for its intake"),
            };
        }
        // VERP is on, and this campaign's bounce would have come back to a tagged address.
        (Envelope::Untagged, IdMatch::Ours(r)) => {
            return Verdict::Ignored {
                why: format!("a bounce for {} with {NO_TAG}: ignored", r.address),
            };
        }
        (Envelope::Off, IdMatch::Ours(r)) => (r, Signal::ReturnedMessageId),
        (_, IdMatch::Unknown) => return Verdict::Other,
    };
    let text: String = msg
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    let status = enhanced_status(&text[..floor(&text, MAX_SCAN)]).unwrap_or_default();
    if status.is_empty() && !corroborated {
        return Verdict::Other;
    }
    let delayed = msg.subject().is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        [
            "delay",
            "warning",
            "still being retried",
            "not yet been delivered",
        ]
        .iter()
        .any(|w| s.contains(w))
    });
    let diagnostic = text
        .lines()
        .find(|l| !status.is_empty() && l.contains(status.as_str()))
        .map(clean_text)
        .unwrap_or_default();
    Verdict::Bounce {
        format: BounceFormat::NonStandard,
        bounces: vec![Bounce {
            recipient,
            hard: status.starts_with('5') && !delayed,
            status,
            diagnostic,
            signal,
            final_recipient: None,
        }],
        ignored: Vec::new(),
    }
}

fn floor(s: &str, max: usize) -> usize {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_header_lines() {
        let ids = pasted_ids(
            "------ This is a copy of the message's headers. ------\n\nMessage-ID:\n <c.0123@x.example>\nSubject: hi\nmessage-id: <d@y>\n",
        );
        assert_eq!(ids, ["c.0123@x.example", "d@y"]);
    }
}
