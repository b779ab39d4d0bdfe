//! The lint over a whole campaign: how many recipients each rule fired for, with the first
//! example, for the terminal, `preflight.json` and the `lint.block` gate.

use super::{Level, LintFinding};

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
    pub(crate) fn add(&mut self, row: u64, findings: &[LintFinding]) {
        for f in findings {
            match self.rules.iter_mut().find(|t| t.id == f.id) {
                Some(t) => {
                    t.recipients += 1;
                    if row < t.first_row {
                        t.first_row = row;
                        t.example = f.message.clone();
                        t.fix = f.fix.clone();
                    }
                }
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

    pub(crate) fn merge(&mut self, other: LintSummary) {
        for t in other.rules {
            match self.rules.iter_mut().find(|m| m.id == t.id) {
                Some(m) => {
                    m.recipients += t.recipients;
                    if t.first_row < m.first_row {
                        m.first_row = t.first_row;
                        m.example = t.example;
                        m.fix = t.fix;
                    }
                }
                None => self.rules.push(t),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(id: &'static str, message: &str) -> LintFinding {
        LintFinding {
            id,
            level: Level::Warn,
            message: message.into(),
            fix: format!("fix {message}"),
        }
    }

    /// Workers merge in any order; the tally keeps the count and the lowest row's example.
    #[test]
    fn merge_counts_and_keeps_the_first_row() {
        let mut a = LintSummary::default();
        a.add(9, &[finding("subject.caps", "row 9")]);
        let mut b = LintSummary::default();
        b.add(
            3,
            &[finding("subject.caps", "row 3"), finding("html.clip", "x")],
        );
        a.merge(b);
        let caps = a.rules.iter().find(|t| t.id == "subject.caps").unwrap();
        assert_eq!((caps.recipients, caps.first_row), (2, 3));
        assert_eq!(caps.example, "row 3");
        let block = ["html.clip".to_owned()];
        let blocking: Vec<_> = a.blocking(&block).map(|t| t.id).collect();
        assert_eq!(blocking, ["html.clip"]);
    }
}
