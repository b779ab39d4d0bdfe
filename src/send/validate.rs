//! The validation pass: reads the whole recipient file once before anything is sent, so the
//! user sees valid / invalid / duplicate counts first, and a template variable the CSV does
//! not provide stops the run before the first message.

use crate::config::RecipientSource;
use std::sync::Arc;

use crate::lint::{Level, LintFinding};
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
    /// The first few problems, as `row N: reason` lines.
    pub problems: Vec<String>,
    /// The first valid recipient: the sample for the preflight and the template check.
    pub first: Option<crate::recipients::Recipient>,
    /// The content lint over every valid recipient.
    pub lint: LintSummary,
}

/// How many recipients each lint rule fired for, with the first example.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct LintSummary {
    pub rules: Vec<LintTally>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LintTally {
    pub id: &'static str,
    pub level: Level,
    pub recipients: u64,
    pub first_row: u64,
    pub example: String,
    pub fix: String,
}

impl LintSummary {
    fn add(&mut self, row: u64, findings: &[LintFinding]) {
        for f in findings {
            match self.rules.iter_mut().find(|t| t.id == f.id) {
                Some(t) => t.recipients += 1,
                None => self.rules.push(LintTally {
                    id: f.id,
                    level: f.level,
                    recipients: 1,
                    first_row: row,
                    example: f.message.clone(),
                    fix: f.fix.clone(),
                }),
            }
        }
    }

    /// The rules that fired and that campaign.toml's `lint.block` names.
    pub fn blocking<'a>(&'a self, block: &'a [String]) -> impl Iterator<Item = &'a LintTally> {
        self.rules
            .iter()
            .filter(|t| block.iter().any(|b| b == t.id))
    }

    /// One line per rule that fired, for the terminal.
    pub fn lines(&self, valid: u64) -> Vec<String> {
        let mut rules = self.rules.clone();
        rules.sort_by_key(|t| (std::cmp::Reverse(t.level), t.id));
        rules
            .iter()
            .map(|t| {
                format!(
                    "{} {} ({} of {valid} recipients, first row {}): {}\n      fix: {}",
                    t.level.label(),
                    t.id,
                    t.recipients,
                    t.first_row,
                    t.example,
                    t.fix
                )
            })
            .collect()
    }
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

pub fn survey(
    source: &RecipientSource,
    assembler: &Assembler,
    candidates: &Arc<Candidates>,
) -> Result<Survey, ValidateError> {
    let mut reader = RecipientReader::open(source)?.with_candidates(candidates.clone());
    let mut s = Survey::default();
    let mut first_valid = None;
    while let Some(row) = reader.next_row() {
        s.rows += 1;
        let (checked, findings) = check_row(row?, assembler)?;
        if !findings.is_empty() {
            s.lint.add(checked.row(), &findings);
        }
        match checked {
            Row::Valid(r) => {
                s.valid += 1;
                if first_valid.is_none() {
                    first_valid = Some(r);
                }
            }
            Row::Invalid { row, reason, .. } => {
                s.invalid += 1;
                if s.problems.len() < LISTED {
                    s.problems.push(format!("row {row}: {reason}"));
                }
            }
            Row::Duplicate {
                row,
                address,
                first_row,
            } => {
                s.duplicate += 1;
                if s.problems.len() < LISTED {
                    s.problems.push(format!(
                        "row {row}: {address} duplicates row {first_row}, skipped"
                    ));
                }
            }
        }
    }
    let path = source.file.display().to_string();
    if s.rows == 0 {
        return Err(ValidateError::NoRecipients { path });
    }
    match first_valid {
        Some(r) => s.first = Some(r),
        None => {
            return Err(ValidateError::NoneValid { path, rows: s.rows });
        }
    }
    Ok(s)
}
