//! RFC 3464 delivery status notifications: `multipart/report; report-type=delivery-status`.
//!
//! Each per-recipient block gives `Final-Recipient` (the address the failing server tried:
//! after forwarding, not the one mailshot sent to), `Action` and `Status`. The recipient is
//! the one the VERP address names (its tag verified). Without VERP, it is the returned
//! original's Message-ID's, else the Final-Recipient if this campaign sent to it; with VERP
//! on, a DSN without a verified tag is ignored, since anyone can write those two. A DSN for
//! anyone else is ignored and said: bounces are easy to forge, and a forged one must not
//! unsubscribe people.

use mail_parser::Message;

use super::fields::{self, clean_text, get, part_of_type, typed_address};
use super::known::{IdMatch, Known, Recipient};
use super::returned::original;
use super::verdict::{Bounce, BounceFormat, Signal, Verdict};
use super::verp::{Envelope, NO_TAG};

/// `envelope` is what the VERP address said (a refused tag has been dealt with already).
pub fn classify(msg: &Message<'_>, known: &Known, envelope: &Envelope) -> Verdict {
    let Some(part) = part_of_type(
        msg,
        &["message/delivery-status", "message/global-delivery-status"],
    ) else {
        return Verdict::Skipped {
            why: "a delivery report without its message/delivery-status part".into(),
        };
    };
    let text = String::from_utf8_lossy(part.contents());
    let blocks = fields::blocks(&text);
    let recipients: Vec<&fields::Block> = blocks
        .iter()
        .filter(|b| get(b, "final-recipient").is_some())
        .collect();
    if recipients.is_empty() {
        return Verdict::Skipped {
            why: "a DSN without a Final-Recipient".into(),
        };
    }
    let returned = original(msg, known);
    // A verified tag names this campaign's recipient, whatever the returned original says
    // (as for a plain-text bounce); without one, another campaign's original is its intake's.
    if let IdMatch::OtherCampaign(c) = &returned
        && !matches!(envelope, Envelope::Ours(_))
    {
        return Verdict::Ignored {
            why: format!("a DSN for campaign {c:?}, not this one: left for its intake"),
        };
    }
    let mut bounces = Vec::new();
    let mut ignored = Vec::new();
    let single = recipients.len() == 1;
    for block in recipients {
        let action = get(block, "action")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if matches!(action.as_str(), "delivered" | "relayed" | "expanded") {
            continue;
        }
        let Some(final_rcpt) = get(block, "final-recipient").and_then(typed_address) else {
            ignored.push("(an unreadable Final-Recipient)".to_owned());
            continue;
        };
        let Some((recipient, signal)) = resolve(envelope, &returned, &final_rcpt, single, known)
        else {
            ignored.push(clean_text(&final_rcpt));
            continue;
        };
        bounces.push(bounce(block, &action, recipient, signal, final_rcpt));
    }
    if bounces.is_empty() && ignored.is_empty() {
        // Only success notices (Action: delivered/relayed/expanded): nothing to act on.
        return Verdict::Other;
    }
    if bounces.is_empty() && *envelope == Envelope::Untagged {
        return Verdict::Ignored {
            why: format!("a DSN for {} with {NO_TAG}: ignored", ignored.join(", ")),
        };
    }
    if bounces.is_empty() {
        return Verdict::Ignored {
            why: format!(
                "a DSN for {}, never sent this campaign (forged, or another sender's mail): ignored",
                ignored.join(", ")
            ),
        };
    }
    Verdict::Bounce {
        format: BounceFormat::Dsn,
        bounces,
        ignored,
    }
}

/// Who a recipient block is about: with VERP, the tagged address's recipient only (one
/// recipient per mailshot message, so it names a single-recipient DSN's block, or the block
/// whose Final-Recipient is that address). Without VERP, the returned original's recipient
/// (the same way), else the Final-Recipient if it was sent to. With VERP on, nothing else
/// counts: its tag is keyed, while a Message-ID can be computed by anyone who knows the
/// campaign id and the address.
fn resolve(
    envelope: &Envelope,
    returned: &IdMatch,
    final_rcpt: &str,
    single: bool,
    known: &Known,
) -> Option<(Recipient, Signal)> {
    match envelope {
        Envelope::Ours(r) => {
            return (single || r.address == final_rcpt).then(|| (r.clone(), Signal::Verp));
        }
        Envelope::Off => {}
        Envelope::Untagged | Envelope::Refused(_) | Envelope::Seed => return None,
    }
    if let IdMatch::Ours(r) = returned
        && (single || r.address == final_rcpt)
    {
        return Some((r.clone(), Signal::ReturnedMessageId));
    }
    known
        .recipient(final_rcpt)
        .map(|r| (r, Signal::FinalRecipient))
}

fn bounce(
    block: &fields::Block,
    action: &str,
    recipient: Recipient,
    signal: Signal,
    final_rcpt: String,
) -> Bounce {
    // `Status: 5.1.1 (user unknown)`: the code is the first word.
    let status = get(block, "status")
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_default();
    let diagnostic = get(block, "diagnostic-code")
        .map(|d| d.split_once(';').map_or(d, |(_, t)| t))
        .map(clean_text)
        .unwrap_or_default();
    Bounce {
        hard: action == "failed" && status.starts_with('5'),
        final_recipient: (final_rcpt != recipient.address).then(|| clean_text(&final_rcpt)),
        recipient,
        status: clean_text(&status),
        diagnostic,
        signal,
    }
}
