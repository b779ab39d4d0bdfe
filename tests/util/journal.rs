//! The test side's own reader of a campaign's journal (`.mailshot/<id>/journal`), kept apart
//! from mailshot's reader so that a test judges the file, not the code that wrote it.

use std::collections::{BTreeMap, BTreeSet};

use super::CampaignDir;

/// One event line of the journal: `I|S|D|F|X <row> <address> <code> <text>`.
#[derive(Debug, Clone)]
pub struct JournalLine {
    pub kind: char,
    pub row: u64,
    /// Lowercased, as mailshot matches addresses.
    pub address: String,
    pub code: String,
}

/// The journal as this test reads it, independently of mailshot's own reader.
#[derive(Debug)]
pub struct Journal {
    /// `R` lines: one per run that got as far as sending.
    pub runs: usize,
    pub lines: Vec<JournalLine>,
    /// `R day <time>` lines (a run going through a UTC midnight): how many event lines came
    /// before each, and its time as written.
    pub days: Vec<(usize, String)>,
}

impl Journal {
    /// Lowercase address -> (row, kind of its last line).
    pub fn last_states(&self) -> BTreeMap<String, (u64, char)> {
        self.lines
            .iter()
            .map(|l| (l.address.clone(), (l.row, l.kind)))
            .collect()
    }

    /// (row, address) of every recipient whose last line is `I`: in doubt.
    pub fn in_flight(&self) -> BTreeSet<(u64, String)> {
        self.last_states()
            .into_iter()
            .filter(|(_, (_, k))| *k == 'I')
            .map(|(a, (row, _))| (row, a))
            .collect()
    }

    pub fn count(&self, kind: char, address: &str) -> usize {
        let address = address.to_lowercase();
        self.lines
            .iter()
            .filter(|l| l.kind == kind && l.address == address)
            .count()
    }
}

pub fn read_journal(c: &CampaignDir) -> Journal {
    let path = c.path().join(".mailshot/test-campaign/journal");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    // Small journals are printed so that a failing test shows the history it judged.
    if text.lines().count() <= 200 {
        eprintln!("--- journal\n{text}");
    }
    // A SIGKILL can cut the last line short; only newline-terminated lines are whole.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    let mut lines = whole.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("mailshot-journal 1\trecipients="),
        "bad journal header {header:?}"
    );
    let mut j = Journal {
        runs: 0,
        lines: Vec::new(),
        days: Vec::new(),
    };
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        match f[0] {
            // A run's start; `R day <time>` marks midnight inside a run.
            "R" => match f.get(1).and_then(|m| m.strip_prefix("day ")) {
                Some(time) => j.days.push((j.lines.len(), time.to_owned())),
                None => j.runs += 1,
            },
            // mailshot itself starts a fresh line after a cut one; skip the blank.
            "" => {}
            k @ ("I" | "S" | "D" | "F" | "X") if f.len() >= 5 => j.lines.push(JournalLine {
                kind: k.chars().next().unwrap(),
                row: f[1].parse().unwrap_or_else(|_| panic!("bad row in {l:?}")),
                address: f[2].to_lowercase(),
                code: f[3].to_owned(),
            }),
            _ => panic!("unexpected journal line {l:?}"),
        }
    }
    j
}
