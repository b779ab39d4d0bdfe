//! mbox files: messages separated by `From ` lines, read one message at a time.
//!
//! Writers escape a body line that starts with `From ` by prefixing `>`: mboxo escapes only
//! `From `, mboxrd also `>From `, `>>From `, ... (so the escape can be undone exactly). One
//! `>` is removed from every `>+From ` line, which undoes mboxrd exactly and mboxo in all but
//! the rare body line that already began with `>From `. A separator is a `From ` line at the
//! start of the file or after a blank line; the blank line belongs to the separator.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{Item, ItemError, Origin};

pub struct Mbox {
    path: PathBuf,
    reader: BufReader<File>,
    max_bytes: u64,
    index: u64,
    /// The separator line of the next message has been read already.
    at_separator: bool,
    done: bool,
}

impl Mbox {
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Mbox> {
        Ok(Mbox {
            path: path.to_owned(),
            reader: BufReader::with_capacity(64 * 1024, File::open(path)?),
            max_bytes,
            index: 0,
            at_separator: false,
            done: false,
        })
    }

    /// Reads the current message's lines up to the next separator. Returns the message (or
    /// its size if it went past the limit) and whether another message follows.
    fn read_message(&mut self) -> io::Result<(Result<Vec<u8>, u64>, bool)> {
        let mut msg = Vec::new();
        let mut size: u64 = 0;
        let mut over = false;
        let mut line = Vec::new();
        let mut prev_blank = false;
        loop {
            line.clear();
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Ok((if over { Err(size) } else { Ok(msg) }, false));
            }
            if prev_blank && line.starts_with(b"From ") {
                // The blank line before the separator is not part of the message.
                if !over {
                    strip_blank_line(&mut msg);
                }
                return Ok((if over { Err(size) } else { Ok(msg) }, true));
            }
            prev_blank = line == b"\n" || line == b"\r\n";
            let body: &[u8] = if is_escaped_from(&line) {
                &line[1..]
            } else {
                &line
            };
            size += body.len() as u64;
            if size > self.max_bytes {
                over = true;
                msg = Vec::new();
            } else if !over {
                msg.extend_from_slice(body);
            }
        }
    }
}

fn is_escaped_from(line: &[u8]) -> bool {
    let gt = line.iter().take_while(|&&b| b == b'>').count();
    gt > 0 && line[gt..].starts_with(b"From ")
}

fn strip_blank_line(msg: &mut Vec<u8>) {
    if msg.ends_with(b"\r\n") {
        msg.truncate(msg.len() - 2);
    } else if msg.ends_with(b"\n") {
        msg.truncate(msg.len() - 1);
    }
}

impl Iterator for Mbox {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.done {
            return None;
        }
        if !self.at_separator {
            // The first line of the file is the first separator.
            let mut first = Vec::new();
            match self.reader.read_until(b'\n', &mut first) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(self.item(Err(ItemError::Io(e.to_string()))));
                }
            }
        }
        self.index += 1;
        let bytes = match self.read_message() {
            Ok((msg, more)) => {
                self.at_separator = more;
                self.done = !more;
                msg.map_err(|size| ItemError::TooLarge {
                    size,
                    limit: self.max_bytes,
                })
            }
            Err(e) => {
                self.done = true;
                Err(ItemError::Io(e.to_string()))
            }
        };
        Some(self.item(bytes))
    }
}

impl Mbox {
    fn item(&self, bytes: Result<Vec<u8>, ItemError>) -> Item {
        Item {
            origin: Origin::Mbox {
                path: self.path.clone(),
                index: self.index,
            },
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, max: u64) -> Vec<Result<Vec<u8>, ItemError>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box");
        std::fs::write(&p, text).unwrap();
        Mbox::open(&p, max).unwrap().map(|i| i.bytes).collect()
    }

    #[test]
    fn mboxrd_unescapes_one_level_and_splits_on_separators_only() {
        let got = read(
            "From MAILER-DAEMON Mon Jan  1 00:00:00 2024\nSubject: a\n\n>From me\n>>From you\nFrom inside a paragraph\n\nFrom b@c Tue Jan  2 00:00:00 2024\nSubject: b\n\nx\n",
            1 << 20,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].as_ref().unwrap(),
            b"Subject: a\n\nFrom me\n>From you\nFrom inside a paragraph\n"
        );
        assert_eq!(got[1].as_ref().unwrap(), b"Subject: b\n\nx\n");
    }

    #[test]
    fn an_oversized_message_is_named_and_the_next_is_still_read() {
        let big = "y".repeat(5000);
        let got = read(
            &format!("From a\nSubject: big\n\n{big}\n\nFrom b\nSubject: small\n\nz\n"),
            1000,
        );
        assert!(matches!(got[0], Err(ItemError::TooLarge { .. })));
        assert_eq!(got[1].as_ref().unwrap(), b"Subject: small\n\nz\n");
    }
}
