//! One suppression entry and its two spellings: the store's line (every field, escaped, with a
//! checksum) and the plain text list (`user@example.com  # comment`) that people write and
//! that `suppress import`/`export` read and write.
//!
//! Both spellings read back exactly what was written (issue 16, item 4): in a store line the
//! entry is percent-escaped (`%`, `#`, TAB, CR, LF and other control characters), so a `#`
//! inside an address can never start a comment, not even for an older reader that cuts lines
//! at the first `#`; in the plain list a `#` starts a comment only at the start of a line or
//! after white space, and an entry that starts with `"` runs to its closing quote, so
//! `"a b"@example.com` keeps its space.

use std::time::SystemTime;

/// Why an entry is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Unsubscribe,
    HardBounce,
    Complaint,
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Unsubscribe,
        Reason::HardBounce,
        Reason::Complaint,
        Reason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unsubscribe => "unsubscribe",
            Reason::HardBounce => "hard-bounce",
            Reason::Complaint => "complaint",
            Reason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An entry is added, or a later line takes it off the list again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
}

/// One line of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub op: Op,
    /// As written: `user@example.com`, `@example.com`, or (plain lists) `example.com`.
    pub entry: String,
    pub reason: Reason,
    /// `None` for hand-written lines, which carry no time.
    pub time: Option<SystemTime>,
    /// The campaign id the entry came from (empty when unknown).
    pub campaign: String,
    /// The Message-ID of the message that led to it, when known.
    pub message_id: String,
    /// Free text: an SMTP reply, an import comment.
    pub note: String,
}

impl Record {
    pub fn add(entry: &str, reason: Reason, time: SystemTime) -> Record {
        Record {
            op: Op::Add,
            entry: entry.to_owned(),
            reason,
            time: Some(time),
            campaign: String::new(),
            message_id: String::new(),
            note: String::new(),
        }
    }

    /// The matching key: lowercase, with an internationalized domain in punycode (the form
    /// mailshot sends to). A bare domain or `@domain` gives [`Key::Domain`].
    pub fn key(&self) -> Key {
        Key::of(&self.entry)
    }

    /// The store's line, newline included.
    pub fn to_line(&self) -> String {
        let prefix = match self.op {
            Op::Add => "",
            // A comment to the plain-list reader: an older mailshot keeps the entry (the safe
            // side) instead of mistaking the tombstone for an entry.
            Op::Remove => "#-",
        };
        let time = self.time.map(crate::clock::rfc3339).unwrap_or_default();
        let mut line = format!(
            "{prefix}{}\t# {time}\t{}\t{}\t{}\t{}\t",
            escape(&self.entry),
            self.reason.as_str(),
            escape(&self.campaign),
            escape(&self.message_id),
            escape(&self.note),
        );
        let sum = fnv1a(line.as_bytes());
        line.push_str(&format!("{sum:08x}\n"));
        line
    }

    /// Reads a store line (without its newline). `None` when it is not one: a comment, a
    /// plain-list line, or a torn or altered store line (the checksum does not match).
    pub fn from_line(line: &str) -> Option<Record> {
        let (body, sum) = line.rsplit_once('\t')?;
        if sum.len() != 8
            || u32::from_str_radix(sum, 16).ok()? != fnv1a(&line.as_bytes()[..=body.len()])
        {
            return None;
        }
        let (op, rest) = match line.strip_prefix("#-") {
            Some(r) => (Op::Remove, r),
            None => (Op::Add, line),
        };
        let (entry, meta) = rest.split_once("\t# ")?;
        let f: Vec<&str> = meta.split('\t').collect();
        let [time, reason, campaign, message_id, note, _sum] = f.as_slice() else {
            return None;
        };
        let time = match *time {
            "" => None,
            t => Some(humantime::parse_rfc3339(t).ok()?),
        };
        Some(Record {
            op,
            entry: unescape(entry)?,
            reason: Reason::parse(reason)?,
            time,
            campaign: unescape(campaign)?,
            message_id: unescape(message_id)?,
            note: unescape(note)?,
        })
    }

    /// The plain-list line for `export`: the entry, then its facts as a comment.
    pub fn to_text(&self) -> String {
        let mut line = format!("{}  # {}", self.entry, self.reason.as_str());
        if let Some(t) = self.time {
            line.push(' ');
            line.push_str(&crate::clock::rfc3339(t));
        }
        for extra in [&self.campaign, &self.message_id] {
            if !extra.is_empty() {
                line.push(' ');
                line.push_str(&extra.replace(char::is_whitespace, "_"));
            }
        }
        line.push('\n');
        line
    }
}

/// The problem with one plain-list line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the quoted local part is not closed")]
    UnclosedQuote,
    #[error("{0:?} follows the entry; a comment starts with `#` after a space")]
    Trailing(String),
    #[error("{0:?} contains a control character, which no address has")]
    Control(String),
    #[error("{0:?} is not an address, @domain or domain")]
    Shape(String),
}

/// Reads one plain-list line: `Ok(None)` for blank and comment lines. A comment whose first
/// words are a reason and a time (as `export` writes them) gives them back.
pub fn parse_text(line: &str) -> Result<Option<Record>, TextError> {
    let line = line.trim_matches([' ', '\t', '\r']);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = entry_end(line)?;
    let (entry, rest) = line.split_at(end);
    let rest = rest.trim_start_matches([' ', '\t']);
    let comment = match rest.strip_prefix('#') {
        Some(c) => c.trim(),
        None if rest.is_empty() => "",
        None => return Err(TextError::Trailing(rest.to_owned())),
    };
    check_entry(entry)?;
    let mut words = comment.split_whitespace();
    let reason = words.next().and_then(Reason::parse);
    let time = reason
        .and(words.next())
        .and_then(|t| humantime::parse_rfc3339(t).ok());
    Ok(Some(Record {
        op: Op::Add,
        entry: entry.to_owned(),
        reason: reason.unwrap_or(Reason::Manual),
        time,
        campaign: String::new(),
        message_id: String::new(),
        note: if reason.is_some() {
            String::new()
        } else {
            comment.to_owned()
        },
    }))
}

/// Where the entry of a plain-list line ends: at the first white space, except inside a
/// quoted local part (RFC 5321 allows spaces there, escaped with `\`).
fn entry_end(line: &str) -> Result<usize, TextError> {
    let mut start = 0;
    if let Some(quoted) = line.strip_prefix('"') {
        let mut escaped = false;
        let close = quoted.char_indices().find(|&(_, c)| {
            let stop = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            stop
        });
        start = match close {
            Some((i, _)) => i + 2,
            None => return Err(TextError::UnclosedQuote),
        };
    }
    Ok(line[start..]
        .find([' ', '\t'])
        .map_or(line.len(), |i| start + i))
}

/// The shape every entry must have, whoever wrote it: one `@` at most outside quotes with
/// something on each side of it (or `@domain`), and no control characters.
pub fn check_entry(entry: &str) -> Result<(), TextError> {
    if entry.chars().any(char::is_control) {
        return Err(TextError::Control(entry.to_owned()));
    }
    let domain = entry.rsplit_once('@').map_or(entry, |(_, d)| d);
    if domain.is_empty() || domain.contains(['"', ' ', '@']) || entry.ends_with('@') {
        return Err(TextError::Shape(entry.to_owned()));
    }
    Ok(())
}

/// What an entry matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Address(String),
    Domain(String),
}

impl Key {
    pub fn of(entry: &str) -> Key {
        let lower = entry.to_lowercase();
        match lower.rsplit_once('@') {
            Some(("", d)) => Key::Domain(ascii_domain(d)),
            Some((l, d)) => Key::Address(format!("{l}@{}", ascii_domain(d))),
            None => Key::Domain(ascii_domain(&lower)),
        }
    }
}

fn ascii_domain(d: &str) -> String {
    idna::domain_to_ascii(d).unwrap_or_else(|_| d.to_owned())
}

/// Percent-escapes what would break a line or start a comment.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '#') || c.is_ascii_control() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// FNV-1a, 32 bits: enough to tell a torn or hand-altered line from a whole one.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// Issue 16, item 4: whatever is written reads back exactly as written.
    const HOSTILE: &[&str] = &[
        "example.com#fail@attacker.example",
        "\"a b\"@example.com",
        "\"a#b \\\" c\"@example.com",
        "\"quoted\"@example.com",
        "user.@example.com",
        "user@example.com.",
        "a%23b@example.com",
        "@bücher.example",
        "ann@example.com",
    ];

    fn full(entry: &str) -> Record {
        Record {
            op: Op::Add,
            entry: entry.to_owned(),
            reason: Reason::HardBounce,
            time: Some(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
            campaign: "news #4\tspring".into(),
            message_id: "<x.1@news.example>".into(),
            note: "550 5.1.1 <a#b@x>: unknown\r\nuser 100%".into(),
        }
    }

    #[test]
    fn store_lines_read_back_exactly() {
        for e in HOSTILE {
            for op in [Op::Add, Op::Remove] {
                let r = Record { op, ..full(e) };
                let line = r.to_line();
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
                assert_eq!(
                    Record::from_line(line.trim_end_matches('\n')),
                    Some(r),
                    "{line:?}"
                );
            }
        }
    }

    #[test]
    fn an_older_reader_that_cuts_at_hash_never_sees_a_shorter_entry() {
        let line = full("example.com#fail@attacker.example").to_line();
        let old = line.split('#').next().unwrap().trim();
        assert_eq!(old, "example.com%23fail@attacker.example");
        let tomb = Record {
            op: Op::Remove,
            ..full("ann@example.com")
        }
        .to_line();
        assert_eq!(
            tomb.split('#').next().unwrap().trim(),
            "",
            "a tombstone is a comment"
        );
    }

    #[test]
    fn torn_or_altered_lines_are_refused() {
        let line = full("ann@example.com").to_line();
        let line = line.trim_end();
        for cut in 1..line.len() {
            if line.is_char_boundary(cut) {
                assert_eq!(Record::from_line(&line[..cut]), None, "{cut}");
            }
        }
        assert_eq!(Record::from_line(&line.replace("ann", "bob")), None);
    }

    #[test]
    fn text_lines_read_back_exactly() {
        for e in HOSTILE {
            let r = Record {
                campaign: String::new(),
                message_id: String::new(),
                note: String::new(),
                ..full(e)
            };
            let text = r.to_text();
            let back = parse_text(&text).unwrap().unwrap();
            assert_eq!(back.entry, *e, "{text:?}");
            assert_eq!((back.reason, back.time), (r.reason, r.time), "{text:?}");
        }
    }

    #[test]
    fn plain_lists_as_people_write_them() {
        let p = |l| parse_text(l).unwrap().map(|r| (r.entry, r.reason, r.note));
        assert_eq!(p("# unsubscribed"), None);
        assert_eq!(p("   "), None);
        assert_eq!(
            p("Ann@Example.com"),
            Some(("Ann@Example.com".into(), Reason::Manual, String::new()))
        );
        assert_eq!(
            p("spam.example # complaints"),
            Some(("spam.example".into(), Reason::Manual, "complaints".into()))
        );
        // What mailshot before the store wrote for a hard bounce.
        assert_eq!(
            p("bob@x.example # 2026-11-01T00:00:00Z 550 5.1.1 unknown")
                .unwrap()
                .0,
            "bob@x.example"
        );
        assert!(matches!(
            parse_text("a@x.example junk"),
            Err(TextError::Trailing(_))
        ));
        assert!(matches!(
            parse_text("\"a b@x.example"),
            Err(TextError::UnclosedQuote)
        ));
        assert!(matches!(parse_text("a@"), Err(TextError::Shape(_))));
    }

    #[test]
    fn keys() {
        assert_eq!(
            Key::of("Ann@Example.COM"),
            Key::Address("ann@example.com".into())
        );
        assert_eq!(
            Key::of("@Bücher.example"),
            Key::Domain("xn--bcher-kva.example".into())
        );
        assert_eq!(Key::of("spam.example"), Key::Domain("spam.example".into()));
        assert_eq!(
            Key::of("example.com#fail@attacker.example"),
            Key::Address("example.com#fail@attacker.example".into())
        );
    }
}
