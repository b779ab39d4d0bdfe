//! The per-recipient report (CSV) and the tally behind the closing summary.
//!
//! Every row of the recipient file gets exactly one line, so the counts always add up:
//! sent + written + dry-run + failed + deferred + not attempted + in doubt + suppressed +
//! invalid + duplicate = rows.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::clock::rfc3339;

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The relay answered 250 to the message.
    Sent,
    /// Written to the outbox folder (outbox transport).
    Written,
    /// `--dry-run`: rendered, signed and written, not sent.
    DryRun,
    /// A permanent (5xx) refusal, or the message could not be made.
    Failed,
    /// A transient failure; the recipient has not received the message.
    Deferred,
    /// The run stopped before this recipient was tried.
    NotAttempted,
    /// In flight when an earlier run died, and `--in-doubt skip` chose not to resend: it may
    /// or may not have been delivered.
    InDoubt,
    /// On the suppression list (unsubscribed, bounced, complained): never sent to.
    Suppressed,
    Invalid,
    Duplicate,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Written => "written",
            Status::DryRun => "dry-run",
            Status::Failed => "failed",
            Status::Deferred => "deferred",
            Status::NotAttempted => "not-attempted",
            Status::InDoubt => "in-doubt",
            Status::Suppressed => "suppressed",
            Status::Invalid => "invalid",
            Status::Duplicate => "duplicate",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub row: u64,
    pub address: String,
    pub status: Status,
    pub code: Option<u16>,
    pub text: String,
    pub message_id: Option<String>,
    pub time: SystemTime,
    /// Settled by an earlier run of the campaign (from the journal), not by this one.
    pub earlier: bool,
    /// Which relay took the message, when the campaign has several.
    pub relay: Option<std::sync::Arc<str>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub sent: u64,
    pub written: u64,
    pub dry_run: u64,
    pub failed: u64,
    pub deferred: u64,
    pub not_attempted: u64,
    pub in_doubt: u64,
    pub suppressed: u64,
    pub invalid: u64,
    pub duplicate: u64,
    /// Of `sent`, how many were sent by an earlier run of this campaign (from the journal).
    pub sent_earlier: u64,
}

impl Tally {
    pub fn add(&mut self, s: Status) {
        *match s {
            Status::Sent => &mut self.sent,
            Status::Written => &mut self.written,
            Status::DryRun => &mut self.dry_run,
            Status::Failed => &mut self.failed,
            Status::Deferred => &mut self.deferred,
            Status::NotAttempted => &mut self.not_attempted,
            Status::InDoubt => &mut self.in_doubt,
            Status::Suppressed => &mut self.suppressed,
            Status::Invalid => &mut self.invalid,
            Status::Duplicate => &mut self.duplicate,
        } += 1;
    }

    pub fn rows(&self) -> u64 {
        self.delivered()
            + self.failed
            + self.deferred
            + self.not_attempted
            + self.in_doubt
            + self.suppressed
            + self.invalid
            + self.duplicate
    }

    /// Messages that reached their destination for this kind of run.
    pub fn delivered(&self) -> u64 {
        self.sent + self.written + self.dry_run
    }

    /// Valid recipients that did not (or may not) have got the message.
    pub fn undelivered(&self) -> u64 {
        self.failed + self.deferred + self.not_attempted + self.in_doubt
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the report {path}: {source}")]
pub struct ReportError {
    pub path: PathBuf,
    pub source: csv::Error,
}

/// Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula; the report
/// echoes recipient data, so such cells get a leading apostrophe (OWASP's advice for CSV).
fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

pub struct ReportWriter {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl ReportWriter {
    pub fn create(path: &Path) -> Result<ReportWriter, ReportError> {
        let err = |source: csv::Error| ReportError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        }
        // A symlink planted as report.csv is replaced, not written through.
        let file = crate::files::replace(path).map_err(|e| err(e.into()))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(file));
        writer
            .write_record([
                "row",
                "address",
                "status",
                "smtp_code",
                "smtp_text",
                "message_id",
                "time",
                "relay",
            ])
            .map_err(err)?;
        Ok(ReportWriter {
            path: path.to_owned(),
            writer,
        })
    }

    /// Writes one line into the buffer; [`Self::flush`] hands it to the file. The pipeline
    /// flushes every tenth of a second, so a report cut short by a crash lists all but the
    /// last moment's recipients (the journal, synced, is what resume trusts).
    pub fn write(&mut self, o: &Outcome) -> Result<(), ReportError> {
        let code = o.code.map(|c| c.to_string()).unwrap_or_default();
        let message_id = o
            .message_id
            .as_deref()
            .map(|m| format!("<{m}>"))
            .unwrap_or_default();
        self.writer
            .write_record([
                o.row.to_string().as_str(),
                &defuse(&o.address),
                o.status.as_str(),
                &code,
                &defuse(&o.text),
                &message_id,
                &rfc3339(o.time),
                o.relay.as_deref().unwrap_or_default(),
            ])
            .map_err(|source| ReportError {
                path: self.path.clone(),
                source,
            })
    }

    pub fn flush(&mut self) -> Result<(), ReportError> {
        self.writer.flush().map_err(|e| ReportError {
            path: self.path.clone(),
            source: e.into(),
        })
    }

    pub fn finish(mut self) -> Result<PathBuf, ReportError> {
        self.writer.flush().map_err(|e| ReportError {
            path: self.path.clone(),
            source: e.into(),
        })?;
        Ok(self.path)
    }
}
