//! `mailshot report`: the reports of a campaign sent in shards, merged into one
//! (`<state_dir>/<id>/report.csv`), after checking that every row of the recipient file is
//! in exactly one shard's report.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::cli::ReportArgs;
use crate::commands::Exit;
use crate::config::Campaign;
use crate::recipients::RecipientReader;
use crate::shard::{self, Shard};

pub fn run(args: &ReportArgs) -> anyhow::Result<Exit> {
    let campaign = Campaign::load(&args.campaign)?;
    let run_dir = campaign.run_dir();
    let Some(n) = shard::recorded(&run_dir)? else {
        eprintln!(
            "mailshot: campaign {} was not sent in shards; its report is {}",
            campaign.id,
            run_dir.join("report.csv").display()
        );
        return Ok(Exit::CouldNotStart);
    };
    let mut header = None;
    // Row number -> (the shard that reported it, the record).
    let mut rows: BTreeMap<u64, (u32, csv::StringRecord)> = BTreeMap::new();
    let mut twice = Vec::new();
    let mut missing_reports = Vec::new();
    for k in 1..=n {
        let path = Shard { k, n }.dir(&run_dir).join("report.csv");
        if !path.exists() {
            missing_reports.push(format!("{k}/{n}"));
            continue;
        }
        let mut r = csv::Reader::from_path(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        header.get_or_insert(r.headers()?.clone());
        for rec in r.records() {
            let rec = rec.with_context(|| format!("{}", path.display()))?;
            let row: u64 = rec
                .get(0)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{}: a line without a row number", path.display()))?;
            if let Some((first, _)) = rows.insert(row, (k, rec)) {
                twice.push(format!("row {row} (shards {first} and {k})"));
            }
        }
    }
    let total = count_rows(&campaign)?;
    let absent: Vec<u64> = (2..total + 2).filter(|r| !rows.contains_key(r)).collect();
    let merged = run_dir.join("report.csv");
    write(&merged, header, &rows)?;
    println!(
        "{}: {} rows from {n} shards merged into {}",
        campaign.id,
        rows.len(),
        merged.display()
    );
    if missing_reports.is_empty() && twice.is_empty() && absent.is_empty() {
        println!(
            "every row of {} appears exactly once",
            campaign.recipients.file.display()
        );
        return Ok(Exit::Success);
    }
    if !missing_reports.is_empty() {
        eprintln!(
            "mailshot: no report yet from shard {}: run it",
            missing_reports.join(", ")
        );
    }
    if !twice.is_empty() {
        eprintln!("mailshot: reported by two shards: {}", first_few(&twice));
    }
    if !absent.is_empty() {
        let shown: Vec<String> = absent.iter().map(|r| format!("row {r}")).collect();
        eprintln!(
            "mailshot: {} rows in no shard's report: {}",
            absent.len(),
            first_few(&shown)
        );
    }
    Ok(Exit::SomeFailed)
}

fn first_few(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 10 {
        s.push_str(&format!(" and {} more", items.len() - 10));
    }
    s
}

/// Data rows in the recipient file, every shard's included.
fn count_rows(campaign: &Campaign) -> anyhow::Result<u64> {
    let mut reader = RecipientReader::open(&campaign.recipients)?;
    let mut n = 0;
    while let Some(row) = reader.next_row() {
        row?;
        n += 1;
    }
    Ok(n)
}

fn write(
    path: &Path,
    header: Option<csv::StringRecord>,
    rows: &BTreeMap<u64, (u32, csv::StringRecord)>,
) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(h) = header {
        w.write_record(&h)?;
    }
    for (_, rec) in rows.values() {
        w.write_record(rec)?;
    }
    w.flush()?;
    Ok(())
}
