//! The header-style field blocks that machine-readable report parts use: RFC 3464's
//! `message/delivery-status` (a per-message block, then one block per recipient) and RFC
//! 5965's `message/feedback-report`. Folded lines are unfolded; names are lowercased. Also
//! the two helpers every classifier uses: finding a part by type, and cleaning remote text.

use mail_parser::{Message, MimeHeaders};

/// Blocks read at most, and fields per block: a real DSN has a handful of each, and a hostile
/// one with a million blank lines must not make a million vectors.
const MAX_BLOCKS: usize = 1000;
const MAX_FIELDS: usize = 200;

pub type Block = Vec<(String, String)>;

pub fn blocks(text: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    let mut cur: Block = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                if out.len() >= MAX_BLOCKS {
                    return out;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && cur.len() < MAX_FIELDS
        {
            cur.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The first value of a field in a block.
pub fn get<'a>(block: &'a Block, name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; user@example.com` (RFC 3464's address-type; value) -> `user@example.com`, or
/// None when there is no address in it.
pub fn typed_address(value: &str) -> Option<String> {
    let addr = value.split_once(';').map_or(value, |(_, a)| a);
    let addr = addr
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (addr.contains('@') && !addr.contains(char::is_whitespace)).then(|| addr.to_lowercase())
}

/// An RFC 3463 enhanced status code found in free text: `550 5.1.1`, `(#5.1.1)` (qmail),
/// or a bare `5.7.1`. Class 2, 4 or 5, subject 0-7 (RFC 3463 defines no more), detail up to
/// three digits, with no digit or dot on either side (so an IP address or `4.96.1` is not one).
pub fn enhanced_status(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 5 <= b.len() {
        if matches!(b[i], b'2' | b'4' | b'5')
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.'))
            && let Some(len) = status_at(&b[i..])
        {
            return Some(text[i..i + len].to_owned());
        }
        i += 1;
    }
    None
}

fn status_at(b: &[u8]) -> Option<usize> {
    if b.get(1) != Some(&b'.') {
        return None;
    }
    let subj = b[2..].iter().take_while(|c| c.is_ascii_digit()).count();
    if subj != 1 || b[2] > b'7' {
        return None;
    }
    if b.get(3) != Some(&b'.') {
        return None;
    }
    let detail = b[4..].iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=3).contains(&detail) {
        return None;
    }
    let end = 4 + detail;
    match b.get(end) {
        Some(c)
            if c.is_ascii_digit()
                || *c == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit) =>
        {
            None
        }
        _ => Some(end),
    }
}

/// The first part whose Content-Type is one of `types` (lowercase `type/subtype`), searched
/// in the message and the parts it nests, to the depth limit.
pub fn part_of_type<'m>(
    msg: &'m Message<'m>,
    types: &[&str],
) -> Option<&'m mail_parser::MessagePart<'m>> {
    msg.parts.iter().find(|p| {
        p.content_type().is_some_and(|c| {
            let t = format!(
                "{}/{}",
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or_default().to_ascii_lowercase()
            );
            types.contains(&t.as_str())
        })
    })
}

/// At most this much of a remote server's text goes into the summary and the suppression list.
const MAX_TEXT: usize = 300;

/// One line, bounded, without control characters: remote text is shown to people and written
/// into files, and must not forge lines there.
pub fn clean_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if out.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

/// `multipart/report; report-type=...`, lowercase.
pub fn report_type(msg: &Message<'_>) -> Option<String> {
    let ct = msg.root_part().content_type()?;
    (ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report")))
    .then(|| ct.attribute("report-type").map(str::to_ascii_lowercase))
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_and_split() {
        let b = blocks(
            "Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; Ann@Example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n  user unknown\r\n",
        );
        assert_eq!(b.len(), 2);
        assert_eq!(get(&b[1], "action"), Some("failed"));
        assert_eq!(
            get(&b[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(
            typed_address(get(&b[1], "final-recipient").unwrap()).as_deref(),
            Some("ann@example.com")
        );
    }

    #[test]
    fn status_codes_in_text() {
        assert_eq!(
            enhanced_status("550 5.1.1 <a@b>: no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("Sorry, no mailbox here by that name. (#5.1.1)").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("host 192.0.2.1 said 452 4.2.2 over quota").as_deref(),
            Some("4.2.2")
        );
        assert_eq!(enhanced_status("Exim 4.96.1 at 10.4.5.6"), None);
        assert_eq!(enhanced_status("version 5.1.12.3"), None);
    }
}
