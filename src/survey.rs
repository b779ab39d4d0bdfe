//! The survey: reads the whole recipient file once before anything is sent, so the user sees
//! valid / invalid / duplicate counts first, and a template variable the CSV does not provide
//! stops the run before the first message. `send`, `check` and `preview` all start with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::RecipientSource;
use crate::lint::{LintFinding, LintSummary};
use crate::message::{Assembler, RowError};
use crate::recipients::Candidates;
use crate::recipients::{RecipientReader, RecipientsError, Row};
use crate::template::TemplateError;

/// How many problem rows the summary lists by name; the report has all of them.
const LISTED: usize = 10;

#[derive(Debug, Default)]
pub struct Survey {
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    pub duplicate: u64,
    /// The first few problems by row, as `row N: reason` lines.
    pub problems: Vec<String>,
    /// The rows of `problems`, kept sorted.
    problem_rows: Vec<u64>,
    /// The first valid recipient: the sample for the preflight and the template check.
    pub first: Option<crate::recipients::Recipient>,
    /// The content lint over every valid recipient.
    pub lint: LintSummary,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// A template cannot render for anyone (a variable that is not a column, a bad helper).
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{path} has a header row but no recipients")]
    NoRecipients { path: String },
    #[error("{path}: none of the {rows} rows is a valid recipient; see the problems listed above")]
    NoneValid { path: String, rows: u64 },
}

/// Takes a row's CSV-level verdict further: a valid row is rendered and built in full, and
/// becomes invalid if that fails for this row alone. A missing variable is not a row problem
/// but a template problem, so it is returned as an error. Also returns the row's lint.
pub fn check_row(
    row: Row,
    assembler: &Assembler,
) -> Result<(Row, Vec<LintFinding>), TemplateError> {
    let mut findings = Vec::new();
    let checked = match row {
        Row::Valid(r) => match assembler.check(&r) {
            Ok(f) => {
                findings = f;
                Row::Valid(r)
            }
            Err(RowError::Template(e @ TemplateError::MissingVariable { .. }))
            | Err(RowError::Template(e @ TemplateError::ShadowedBuiltin(_))) => return Err(e),
            Err(e) => Row::Invalid {
                row: r.row,
                address: r.address.to_string(),
                reason: e.to_string(),
            },
        },
        Row::Invalid {
            row,
            address,
            reason,
        } => Row::Invalid {
            row,
            address,
            reason,
        },
        Row::Duplicate {
            row,
            address,
            first_row,
        } => Row::Duplicate {
            row,
            address,
            first_row,
        },
    };
    Ok((checked, findings))
}

/// Reads every row once, rendering, building and linting each on all cores (the survey
/// is most of the CPU a campaign costs before sending), then merges the workers' counts.
pub fn survey(
    source: &RecipientSource,
    assembler: &Assembler,
    candidates: &Arc<Candidates>,
) -> Result<Survey, ValidateError> {
    let reader = Mutex::new(RecipientReader::open(source)?.with_candidates(candidates.clone()));
    let stop = AtomicBool::new(false);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let parts: Vec<Result<Survey, ValidateError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| survey_worker(&reader, assembler, &stop)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut s = Survey::default();
    for part in parts {
        s.merge(part?);
    }
    let path = source.file.display().to_string();
    if s.rows == 0 {
        return Err(ValidateError::NoRecipients { path });
    }
    if s.first.is_none() {
        return Err(ValidateError::NoneValid { path, rows: s.rows });
    }
    Ok(s)
}

/// One worker's share: rows are taken from the shared reader one at a time, so each row is
/// classified exactly once and duplicates are judged in file order.
fn survey_worker(
    reader: &Mutex<RecipientReader>,
    assembler: &Assembler,
    stop: &AtomicBool,
) -> Result<Survey, ValidateError> {
    let mut s = Survey::default();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(s);
        }
        let row = match reader.lock().unwrap_or_else(|e| e.into_inner()).next_row() {
            None => return Ok(s),
            Some(r) => r,
        };
        let result = row
            .map_err(ValidateError::from)
            .and_then(|row| check_row(row, assembler).map_err(ValidateError::from));
        let (checked, findings) = match result {
            Ok(c) => c,
            Err(e) => {
                // Every worker would hit the same template error: stop them all.
                stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        s.rows += 1;
        if !findings.is_empty() {
            s.lint.add(checked.row(), &findings);
        }
        match checked {
            Row::Valid(r) => {
                s.valid += 1;
                if s.first.as_ref().is_none_or(|f| r.row < f.row) {
                    s.first = Some(r);
                }
            }
            Row::Invalid { row, reason, .. } => {
                s.invalid += 1;
                s.note_problem(row, format!("row {row}: {reason}"));
            }
            Row::Duplicate {
                row,
                address,
                first_row,
            } => {
                s.duplicate += 1;
                s.note_problem(
                    row,
                    format!("row {row}: {address} duplicates row {first_row}, skipped"),
                );
            }
        }
    }
}

impl Survey {
    /// Keeps the first problems by row, whichever worker met them.
    fn note_problem(&mut self, row: u64, text: String) {
        if self.problem_rows.len() < LISTED || self.problem_rows.last().is_some_and(|&r| row < r) {
            let at = self.problem_rows.partition_point(|&r| r < row);
            self.problem_rows.insert(at, row);
            self.problems.insert(at, text);
            self.problem_rows.truncate(LISTED);
            self.problems.truncate(LISTED);
        }
    }

    fn merge(&mut self, other: Survey) {
        self.rows += other.rows;
        self.valid += other.valid;
        self.invalid += other.invalid;
        self.duplicate += other.duplicate;
        for (row, text) in other.problem_rows.into_iter().zip(other.problems) {
            self.note_problem(row, text);
        }
        if let Some(f) = other.first
            && self.first.as_ref().is_none_or(|s| f.row < s.row)
        {
            self.first = Some(f);
        }
        self.lint.merge(other.lint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_the_first_rows_whatever_the_order_they_arrive_in() {
        let mut a = Survey::default();
        let mut b = Survey::default();
        for row in (1..20u64).rev().map(|i| 2 * i) {
            a.note_problem(row, format!("row {row}"));
        }
        for row in (3..41).step_by(2) {
            b.note_problem(row, format!("row {row}"));
        }
        a.merge(b);
        let want: Vec<String> = (2..12).map(|r| format!("row {r}")).collect();
        assert_eq!(a.problems, want);
    }
}
