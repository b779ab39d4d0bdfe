//! `mailshot verify`: grades received messages (files or Maildirs) and prints the grade,
//! human or JSON. Exit 0 when no blocking item fails, 1 when one does, 2 when nothing could
//! be graded.

use std::io::Write as _;

use anyhow::bail;

use crate::cli::{Format, VerifyArgs};
use crate::commands::{Exit, dns_from};
use crate::mailbox::files::Files;
use crate::verify::{self, grade};

/// Larger inputs are not mail a receiver would have accepted; they are named and skipped.
const MAX_MESSAGE_BYTES: u64 = 50 * 1024 * 1024;

pub async fn run(args: &VerifyArgs) -> anyhow::Result<Exit> {
    if let Some(url) = args
        .inputs
        .iter()
        .filter_map(|p| p.to_str())
        .find(|p| p.starts_with("imap://") || p.starts_with("imaps://"))
    {
        bail!(
            "{url}: reading IMAP mailboxes is not supported yet; save the message as .eml (or point at a Maildir) and verify that"
        );
    }
    let dns = dns_from(args.dns.nameserver.as_deref(), args.dns.zone.as_deref())?;
    // Listed by the shared mailbox reader's walk (Maildir rules, bookkeeping files left out).
    let found = Files::list(&args.inputs, u64::MAX);
    let mut unreadable: Vec<(String, String)> = found
        .unreadable
        .iter()
        .map(|(p, e)| (p.display().to_string(), e.to_string()))
        .collect();
    let mut reports = Vec::new();
    for path in found.paths() {
        let name = path.display().to_string();
        match read(path) {
            Ok(raw) => reports.push(verify::verify(&dns, &name, &raw).await),
            Err(e) => unreadable.push((name, e)),
        }
    }
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

/// The file's bytes, when it looks like a message (a header block with a From field).
fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_MESSAGE_BYTES {
        return Err(format!(
            "{} bytes; larger than {MAX_MESSAGE_BYTES}",
            meta.len()
        ));
    }
    let raw = std::fs::read(path).map_err(|e| e.to_string())?;
    let (head, _) = verify::headers::split(&raw);
    if !verify::headers::fields(head)
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("from"))
    {
        return Err("not a mail message (no From field in a header block)".into());
    }
    Ok(raw)
}
