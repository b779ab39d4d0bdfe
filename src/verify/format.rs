//! The received message's form: one From, Date and Message-ID, line lengths, raw 8-bit
//! header bytes, a text part, List-Id and Feedback-ID, and the content lint `preview` runs.

use mail_parser::{MessageParser, PartType};

use super::headers::all;
use super::{Item, Provider, Status};
use crate::lint::{self, Level, LintConfig, LintInput};

/// RFC 5322 section 2.1.1: lines MUST be no more than 998 characters, SHOULD be 78.
const MAX_LINE: usize = 998;
const SHOULD_LINE: usize = 78;

const ALL: &[Provider] = &[Provider::Gmail, Provider::Yahoo, Provider::Microsoft];
const GMAIL_YAHOO: &[Provider] = &[Provider::Gmail, Provider::Yahoo];

/// Checks the message's form. `fields` are the unfolded header fields, `head` the raw block.
pub fn check(raw: &[u8], head: &[u8], fields: &[(String, String)]) -> Vec<Item> {
    let mut out = Vec::new();
    for (name, id, blocks) in [
        ("From", "verify.format.from", ALL),
        ("Date", "verify.format.date", GMAIL_YAHOO),
        ("Message-ID", "verify.format.message-id", GMAIL_YAHOO),
    ] {
        let n = all(fields, name).len();
        out.push(if n == 1 {
            Item::new(id, Status::Pass, format!("exactly one {name}"))
        } else {
            Item::new(
                id,
                Status::Fail,
                format!("{n} {name} fields; RFC 5322 wants exactly one"),
            )
            .blocking(blocks)
            .fix(format!("send exactly one {name} header"))
        });
    }
    out.push(line_lengths(raw));
    let eight_bit = head.iter().any(|b| *b >= 0x80);
    out.push(if eight_bit {
        Item::new(
            "verify.format.header-encoding",
            Status::Warn,
            "a header carries raw 8-bit bytes; without SMTPUTF8 end to end they should be RFC 2047 encoded-words".into(),
        )
        .fix("encode non-ASCII header text (RFC 2047)".into())
    } else {
        Item::new("verify.format.header-encoding", Status::Pass, "headers are ASCII (non-ASCII text as RFC 2047 encoded-words)".into())
    });
    let parsed = MessageParser::default().parse(raw);
    let text = parsed.as_ref().and_then(|m| part(m, false));
    let html = parsed.as_ref().and_then(|m| part(m, true));
    out.push(match (&text, &html) {
        (Some(_), _) => Item::new(
            "verify.format.text-part",
            Status::Pass,
            "there is a text/plain part".into(),
        ),
        _ => Item::new(
            "verify.format.text-part",
            Status::Warn,
            "no text/plain part: filters score HTML-only mail worse, and some readers show nothing"
                .into(),
        )
        .fix("add a text template beside the HTML one".into()),
    });
    out.push(match all(fields, "List-Id").first() {
        Some(v) => Item::new(
            "verify.format.list-id",
            Status::Pass,
            format!("List-Id: {v}"),
        ),
        None => Item::new(
            "verify.format.list-id",
            Status::Warn,
            "no List-Id (RFC 2919): providers group and rate bulk mail by it".into(),
        )
        .fix("set [campaign] list_id".into()),
    });
    out.push(match all(fields, "Feedback-ID").first() {
        Some(v) => Item::new(
            "verify.format.feedback-id",
            Status::Pass,
            format!("Feedback-ID: {v}"),
        ),
        None => Item::new(
            "verify.format.feedback-id",
            Status::Info,
            "no Feedback-ID: Gmail's feedback loop cannot report spam rates per campaign".into(),
        )
        .fix("set [campaign] feedback_id (Gmail's a:b:c:SenderId form)".into()),
    });
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or_default();
    out.extend(content_lint(
        subject,
        text.as_deref(),
        html.as_deref(),
        raw.len(),
        fields,
    ));
    out
}

fn line_lengths(raw: &[u8]) -> Item {
    let longest = raw
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
        .max()
        .unwrap_or(0);
    let id = "verify.format.line-length";
    if longest > MAX_LINE {
        Item::new(
            id,
            Status::Fail,
            format!("a line has {longest} characters; RFC 5322 allows 998"),
        )
        .blocking(GMAIL_YAHOO)
        .fix("encode long lines (quoted-printable or base64)".into())
    } else if longest > SHOULD_LINE {
        Item::new(
            id,
            Status::Info,
            format!(
                "the longest line has {longest} characters (RFC 5322 asks for 78, requires 998)"
            ),
        )
    } else {
        Item::new(
            id,
            Status::Pass,
            format!("every line is at most {SHOULD_LINE} characters"),
        )
    }
}

/// The first text/plain (or text/html) part's decoded text.
fn part(m: &mail_parser::Message<'_>, html: bool) -> Option<String> {
    m.parts.iter().find_map(|p| match (&p.body, html) {
        (PartType::Text(t), false) | (PartType::Html(t), true) => Some(t.to_string()),
        _ => None,
    })
}

/// The same rules as `preview`, on what arrived.
fn content_lint(
    subject: &str,
    text: Option<&str>,
    html: Option<&str>,
    size: usize,
    fields: &[(String, String)],
) -> Vec<Item> {
    let urls: Vec<String> = all(fields, "List-Unsubscribe")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|u| {
            u.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|u| !u.is_empty())
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let input = LintInput {
        subject,
        text,
        html,
        message_bytes: size,
        unsubscribe_urls: &urls,
        empty_fields_in_subject_or_greeting: &[],
    };
    lint::lint(&input, &LintConfig::default())
        .into_iter()
        .map(|f| {
            let status = match f.level {
                Level::Info => Status::Info,
                Level::Warn => Status::Warn,
            };
            Item::new(f.id, status, f.message).fix(f.fix)
        })
        .collect()
}
