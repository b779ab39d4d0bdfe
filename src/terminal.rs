//! Human output on a terminal: text from outside (report files, DNS, CSV cells, SMTP replies)
//! escaped so it cannot move the cursor, recolour or hide what follows, or forge lines of our
//! own; and stdout writes that treat a closed pipe (`mailshot send | head`) as "stop printing",
//! not as a failure. JSON output does not go through here: serde already escapes it.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io::Write;

/// True for a character that must not reach a terminal raw: C0 and C1 controls and DEL (line
/// breaks, ESC, backspace, carriage return), the Unicode line and paragraph separators, and the
/// bidirectional overrides and isolates, which reorder what is displayed after them.
fn hostile(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        )
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn push_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// One field from outside, for a single line of output: every hostile character, line breaks
/// included, is shown as an escape (`\n`, `\u{1b}`), so a field stays one field on one line.
pub struct Field<'a>(pub &'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if hostile(c) {
                push_escaped(f, c)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Shorthand for [`Field`].
pub fn field(s: &str) -> Field<'_> {
    Field(s)
}

/// [`Field`] as an owned string, borrowing when there is nothing to escape.
pub fn field_str(s: &str) -> Cow<'_, str> {
    if s.chars().any(hostile) {
        Cow::Owned(Field(s).to_string())
    } else {
        Cow::Borrowed(s)
    }
}

/// A multi-line text from outside (a message body): line feeds and tabs stay, everything
/// else hostile is escaped.
pub fn text(s: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !s.chars().any(|c| hostile(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hostile(c) && !keep(c) {
            let _ = push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes to stdout. A reader that went away (a closed pipe) is not an error: the rest of
/// the output is dropped and the command carries on to its documented exit code, as ripgrep
/// does. Other write errors are dropped too: stdout is a summary, and the report file is the
/// record.
pub fn write_out(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` that cannot panic on a closed stdout (see [`write_out`]).
macro_rules! outln {
    () => {
        $crate::terminal::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::terminal::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that cannot panic on a closed stdout (see [`write_out`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::terminal::write_out(format_args!($($arg)*))
    };
}

/// True when an error chain ends in a closed pipe: the reader stopped reading, which is not a
/// failure of the command (`mailshot dmarc report --format json | head`).
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_stays_on_one_line_and_shows_its_controls() {
        let forged = "Example\n\nRecommendation: publish p=reject now\u{1b}[8m\r\u{202e}x";
        let shown = field(forged).to_string();
        assert_eq!(
            shown,
            "Example\\n\\nRecommendation: publish p=reject now\\u{1b}[8m\\r\\u{202e}x"
        );
        assert!(!shown.chars().any(hostile));
        assert!(matches!(field_str("plain ✓ text"), Cow::Borrowed(_)));
        assert_eq!(field_str("a\u{7f}b\u{9b}c"), "a\\u{7f}b\\u{9b}c");
    }

    #[test]
    fn a_text_keeps_its_lines_but_not_escapes() {
        assert_eq!(text("Hi\tAnn,\n\nnews\n"), "Hi\tAnn,\n\nnews\n");
        assert_eq!(text("Hi \u{1b}[2J\r\n"), "Hi \\u{1b}[2J\\r\n");
    }
}
