//! The one mailbox reader that `intake`, `dmarc report` and `verify` share: Maildirs, folders of
//! message files, mbox files and IMAP mailboxes, read one message at a time so memory stays
//! flat however big the mailbox is, with a way to mark what has been processed.
//!
//! - [`files`]: named files and folders (Maildir rules: `tmp/` is skipped, index files too).
//! - [`mbox`]: mbox files, mboxrd and mboxo `From ` lines.
//! - [`imap`]: IMAP over TLS (implicit or STARTTLS), marking by keyword or by a move.
//!
//! **Who skips what is marked.** Only `intake` (and its dry run) skips messages that carry
//! the processed keyword: it is the one consumer the keyword belongs to. `verify` and
//! `dmarc report` read every message, marked or not ([`Access::ReadAll`]): a message intake
//! has seen must still be graded when asked, and intake does not hand a DMARC report on (it
//! adds the report to its totals and points to `dmarc report` for the details), so skipping
//! the reports it tagged would hide from `dmarc report` exactly the ones the user asks about.

pub mod files;
pub mod imap;
pub mod mbox;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::SecretSource;

/// Why a whole source could not be read. One message that cannot be read is an [`Item`]
/// with an error instead, so the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error(transparent)]
    Imap(#[from] imap::ImapError),
}

/// Where to read from, as the user named it.
#[derive(Debug, Clone)]
pub enum Source {
    Path(PathBuf),
    Imap(imap::Url),
}

impl Source {
    /// `imaps://` and `imap://` are mailboxes on a server; anything else is a path.
    pub fn parse(s: &str) -> Result<Source, imap::ImapError> {
        if s.starts_with("imaps://") || s.starts_with("imap://") {
            return Ok(Source::Imap(imap::Url::parse(s)?));
        }
        Ok(Source::Path(PathBuf::from(s)))
    }
}

/// Where one message came from: named in messages, and used to mark it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// The n-th message (from 1) of an mbox file.
    Mbox {
        path: PathBuf,
        index: u64,
    },
    Imap {
        mailbox: String,
        uid: u32,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Mbox { path, index } => write!(f, "{} message {index}", path.display()),
            Origin::Imap { mailbox, uid } => write!(f, "{mailbox} UID {uid}"),
        }
    }
}

/// Why one message was not read; the others still are.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ItemError {
    #[error("larger than the {limit} MiB limit ({size} bytes)", limit = .limit >> 20)]
    TooLarge { size: u64, limit: u64 },
    #[error("not a regular file")]
    NotAFile,
    #[error("cannot read: {0}")]
    Io(String),
}

/// One message, or why it could not be read.
#[derive(Debug)]
pub struct Item {
    pub origin: Origin,
    pub bytes: Result<Vec<u8>, ItemError>,
}

/// How processed IMAP messages are marked (files are never changed: the caller keeps a ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Add this keyword (`$MailshotProcessed` by default); later intake runs skip flagged
    /// messages.
    Keyword(String),
    /// Move the message to this folder.
    Move(String),
}

pub const DEFAULT_KEYWORD: &str = "$MailshotProcessed";

/// What a run does with the messages it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read the messages not marked processed yet, and mark them: `intake`.
    Process,
    /// Read what [`Access::Process`] would, read-only (EXAMINE), marking nothing:
    /// `intake --dry-run`.
    DryRun,
    /// Read every message, marked processed or not, read-only, marking nothing: `verify`
    /// and `dmarc report` (see the module doc for why they do not skip).
    ReadAll,
}

impl Access {
    /// IMAP mailboxes are opened with EXAMINE and nothing is marked.
    pub fn read_only(self) -> bool {
        self != Access::Process
    }
}

/// How to open the sources.
#[derive(Debug, Clone)]
pub struct Options {
    /// A message larger than this is an [`ItemError::TooLarge`], never read into memory.
    pub max_bytes: u64,
    pub access: Access,
    pub mark: Mark,
    pub password: Option<SecretSource>,
    /// Extra trust roots for the IMAP server (a private CA), as `[smtp] ca_file`.
    pub ca_file: Option<PathBuf>,
}

/// Reads every source in order, one message at a time.
pub struct Reader {
    opts: Options,
    /// Every source, opened by [`Reader::open`]; IMAP sessions stay open until [`Reader::close`]
    /// so that messages read from them can still be marked.
    opened: Vec<Open>,
    current: usize,
    /// Paths that could not be listed or do not exist, with the error.
    pub unreadable: Vec<(String, String)>,
}

enum Open {
    Files(files::Files),
    Imap(Box<imap::Session>),
}

impl Reader {
    /// Lists every path and logs in to every IMAP source now, so a wrong password or an
    /// untrusted certificate stops the run before anything is read.
    pub fn open(sources: &[Source], opts: Options) -> Result<Reader, MailboxError> {
        let mut reader = Reader {
            opts,
            opened: Vec::new(),
            current: 0,
            unreadable: Vec::new(),
        };
        for src in sources {
            let open = match src {
                Source::Path(p) => {
                    let f = files::Files::list(std::slice::from_ref(p), reader.opts.max_bytes);
                    for (path, e) in &f.unreadable {
                        reader
                            .unreadable
                            .push((path.display().to_string(), e.to_string()));
                    }
                    Open::Files(f)
                }
                Source::Imap(url) => Open::Imap(Box::new(imap::Session::open(url, &reader.opts)?)),
            };
            reader.opened.push(open);
        }
        Ok(reader)
    }

    /// How many messages are known before reading (mbox files add theirs as they are read).
    pub fn known(&self) -> u64 {
        self.opened
            .iter()
            .map(|o| match o {
                Open::Files(f) => f.len() as u64,
                Open::Imap(s) => s.len() as u64,
            })
            .sum()
    }

    /// Marks messages whose effects are durable. Files and mbox messages are left as they are.
    pub fn mark(&mut self, done: &[Origin]) -> Result<(), MailboxError> {
        if self.opts.access.read_only() {
            return Ok(());
        }
        for open in &mut self.opened {
            let Open::Imap(s) = open else { continue };
            let uids: Vec<u32> = done
                .iter()
                .filter_map(|o| match o {
                    Origin::Imap { mailbox, uid } if *mailbox == s.label() => Some(*uid),
                    _ => None,
                })
                .collect();
            if !uids.is_empty() {
                s.mark(&uids, &self.opts.mark)?;
            }
        }
        Ok(())
    }

    /// Logs out of the IMAP servers cleanly.
    pub fn close(self) {
        for open in self.opened {
            if let Open::Imap(s) = open {
                s.close();
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            let item = match self.opened.get_mut(self.current)? {
                Open::Files(f) => f.next(),
                Open::Imap(s) => s.next(),
            };
            match item {
                Some(i) => return Some(i),
                None => self.current += 1,
            }
        }
    }
}

/// Reads a regular file of at most `max` bytes; a FIFO, device or oversized file is an error
/// named for that message, never a hang or an unbounded read. Opened non-blocking (a FIFO
/// cannot hang the reader) and checked on the open handle (a file swapped for a device after
/// the folder was listed is refused); the read stops one byte past the cap if the file grows.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, ItemError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| ItemError::Io(e.to_string());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ItemError::NotAFile);
    }
    if meta.len() > max {
        return Err(ItemError::TooLarge {
            size: meta.len(),
            limit: max,
        });
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() as u64 > max {
        return Err(ItemError::TooLarge {
            size: data.len() as u64,
            limit: max,
        });
    }
    Ok(data)
}
