//! `mailshot suppress list|add|remove|import|export`: the campaign's suppression store by
//! hand. Writes go through the store (locked, fsynced), so they are safe while the endpoint
//! or a `send` runs.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::Exit;
use crate::cli::{Format, ReasonArg, SuppressCommand};
use crate::clock::Clock;
use crate::config::Campaign;
use crate::suppression::{Op, Reason, Record, Store, check_entry, parse_text};

pub fn run(command: &SuppressCommand, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    match command {
        SuppressCommand::List(a) => list(&open(&a.campaign)?, a.format),
        SuppressCommand::Add(a) => {
            let (store, id) = open_with_id(&a.campaign)?;
            let records = a
                .entries
                .iter()
                .map(|e| {
                    check_entry(e).with_context(|| format!("cannot add {e:?}"))?;
                    Ok(Record {
                        campaign: id.clone(),
                        ..Record::add(e, reason(a.reason), clock.now())
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            write(&store, &records, "added", "already on the list")
        }
        SuppressCommand::Remove(a) => {
            let store = open(&a.campaign)?;
            let records: Vec<Record> = a
                .entries
                .iter()
                .map(|e| Record {
                    op: Op::Remove,
                    ..Record::add(e, Reason::Manual, clock.now())
                })
                .collect();
            write(&store, &records, "removed", "not on the list")
        }
        SuppressCommand::Import(a) => {
            let store = open(&a.campaign)?;
            let records = read_text(&a.file, a.reason.map(reason), clock.now())?;
            write(&store, &records, "imported", "already on the list")
        }
        SuppressCommand::Export(a) => {
            let store = open(&a.campaign)?;
            let mut text =
                String::from("# mailshot suppression list: entry  # reason time source\n");
            for r in store.entries()? {
                text.push_str(&r.to_text());
            }
            print(&text)
        }
    }
}

fn reason(r: ReasonArg) -> Reason {
    match r {
        ReasonArg::Unsubscribe => Reason::Unsubscribe,
        ReasonArg::HardBounce => Reason::HardBounce,
        ReasonArg::Complaint => Reason::Complaint,
        ReasonArg::Manual => Reason::Manual,
    }
}

fn open(campaign: &Path) -> anyhow::Result<Store> {
    Ok(open_with_id(campaign)?.0)
}

fn open_with_id(campaign: &Path) -> anyhow::Result<(Store, String)> {
    let c = Campaign::load(campaign)?;
    let Some(cfg) = &c.suppression else {
        bail!(
            "{}: no [suppression] table; add\n  [suppression]\n  file = \"suppressed.txt\"",
            campaign.display()
        );
    };
    Ok((Store::open(&cfg.file)?, c.id))
}

/// Every entry of a text list, or the first bad line (nothing is imported then).
fn read_text(
    path: &Path,
    reason: Option<Reason>,
    now: std::time::SystemTime,
) -> anyhow::Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let r = parse_text(line).with_context(|| {
            format!(
                "{}:{}: {line:?} is not an entry; nothing was imported (fix or remove the line)",
                path.display(),
                n + 1
            )
        })?;
        if let Some(mut r) = r {
            if let Some(reason) = reason
                && r.reason == Reason::Manual
            {
                r.reason = reason;
            }
            r.time = r.time.or(Some(now));
            r.campaign = format!("import:{}", path.display());
            records.push(r);
        }
    }
    Ok(records)
}

fn write(store: &Store, records: &[Record], done: &str, skipped: &str) -> anyhow::Result<Exit> {
    let written = store.record(records)?;
    let n = written.iter().filter(|w| **w).count();
    println!(
        "{done} {n}, {skipped} {} ({})",
        written.len() - n,
        store.path().display()
    );
    Ok(Exit::Success)
}

fn list(store: &Store, format: Format) -> anyhow::Result<Exit> {
    let entries = store.entries()?;
    let text = match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = entries
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "entry": r.entry,
                        "reason": r.reason.as_str(),
                        "time": r.time.map(crate::clock::rfc3339),
                        "campaign": r.campaign,
                        "message_id": r.message_id,
                        "note": r.note,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&rows)? + "\n"
        }
        Format::Human => {
            let mut t = String::new();
            for r in &entries {
                let time = r
                    .time
                    .map(crate::clock::rfc3339)
                    .unwrap_or_else(|| "-".into());
                // Entries come from outside (a signup, an SMTP reply): escape what a terminal
                // would act on.
                t.push_str(&format!(
                    "{}\t{}\t{time}\t{}\n",
                    r.entry.escape_debug(),
                    r.reason.as_str(),
                    r.campaign.escape_debug()
                ));
            }
            t.push_str(&format!("{} entries\n", entries.len()));
            t
        }
    };
    print(&text)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<Exit> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        r => r?,
    }
    Ok(Exit::Success)
}
