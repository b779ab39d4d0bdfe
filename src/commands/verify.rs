//! `mailshot verify`: grades received messages (files, Maildirs, mbox files and IMAP
//! mailboxes, through the shared mailbox reader) and prints the grade, human or JSON. Exit 0
//! when no blocking item fails, 1 when one does, 2 when nothing could be graded.
//!
//! IMAP mailboxes are opened read-only (EXAMINE, BODY.PEEK): verify never sets a flag, adds a
//! keyword or moves a message.

use std::io::Write as _;

use crate::cli::{Format, VerifyArgs};
use crate::commands::{Exit, dns_from, mailbox_options, sources};
use crate::mailbox::{self, Access, MailboxError, Reader};
use crate::verify::{self, grade};

/// Larger inputs are not mail a receiver would have accepted; they are named and skipped.
const MAX_MESSAGE_BYTES: u64 = 50 * 1024 * 1024;

/// What the reader thread hands over: first what could not be listed, then each message.
enum Read {
    Unreadable(Vec<(String, String)>),
    Message(mailbox::Item),
}

pub async fn run(args: &VerifyArgs) -> anyhow::Result<Exit> {
    let sources = sources(&args.inputs)?;
    let dns = dns_from(args.dns.nameserver.as_deref(), args.dns.zone.as_deref())?;
    // Read-only: a grade never marks or moves anything on an IMAP server, and a message
    // intake has already processed is still graded.
    let opts = mailbox_options(&args.imap, None, MAX_MESSAGE_BYTES, Access::ReadAll, None);
    // The reader is blocking (IMAP runs its own small runtime): it lives on its own thread
    // and hands messages over one at a time, so memory stays flat on a big mailbox.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Read, MailboxError>>(2);
    let reader = std::thread::spawn(move || {
        let mut reader = match Reader::open(&sources, opts) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let listed = std::mem::take(&mut reader.unreadable);
        let mut open = tx.blocking_send(Ok(Read::Unreadable(listed))).is_ok();
        while open && let Some(item) = reader.next() {
            open = tx.blocking_send(Ok(Read::Message(item))).is_ok();
        }
        reader.close();
    });
    let mut unreadable: Vec<(String, String)> = Vec::new();
    let mut reports = Vec::new();
    while let Some(read) = rx.recv().await {
        match read? {
            Read::Unreadable(listed) => unreadable.extend(listed),
            Read::Message(item) => {
                let name = item.origin.to_string();
                match item.bytes.map_err(|e| e.to_string()).and_then(mail) {
                    Ok(raw) => reports.push(verify::verify(&dns, &name, &raw).await),
                    Err(e) => unreadable.push((name, e)),
                }
            }
        }
    }
    let _ = reader.join();
    for (p, e) in &unreadable {
        eprintln!("mailshot: skipped {p}: {e}");
    }
    let text = match args.format {
        Format::Human => reports.iter().map(|r| grade::human(r) + "\n").collect(),
        Format::Json => grade::json(&reports, &unreadable) + "\n",
    };
    // A closed pipe (`| head`) is the reader's choice, not an error.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(if reports.is_empty() {
        Exit::CouldNotStart
    } else if reports.iter().any(verify::Report::blocked) {
        Exit::SomeFailed
    } else {
        Exit::Success
    })
}

/// The bytes, when they look like a message (a header block with a From field).
fn mail(raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let (head, _) = verify::headers::split(&raw);
    if !verify::headers::fields(head)
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("from"))
    {
        return Err("not a mail message (no From field in a header block)".into());
    }
    Ok(raw)
}
