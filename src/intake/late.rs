//! Late bounces in the campaign's report: a recipient the relay accepted (`sent`) whose
//! message bounced afterwards becomes `bounced`, with the DSN's status and diagnostic in the
//! SMTP columns. `failed` stays what the relay refused during the SMTP conversation itself.

use std::path::Path;

use anyhow::Context;

use super::effects::read_bounces;

/// Rewrites `<run_dir>/report.csv` (atomically: a new file renamed over the old) with every
/// recorded late bounce. Returns how many rows changed; a campaign without a report is left
/// alone.
pub fn mark_report(run_dir: &Path) -> anyhow::Result<usize> {
    let path = run_dir.join("report.csv");
    if !path.exists() {
        return Ok(0);
    }
    let bounces = read_bounces(run_dir).context("cannot read the late-bounce record")?;
    if bounces.is_empty() {
        return Ok(0);
    }
    let mut reader =
        csv::Reader::from_path(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(row_c), Some(status_c), Some(code_c), Some(text_c)) = (
        col("row"),
        col("status"),
        col("smtp_code"),
        col("smtp_text"),
    ) else {
        anyhow::bail!("{} does not have mailshot's report columns", path.display());
    };
    let tmp = run_dir.join("report.csv.tmp");
    let mut writer = csv::Writer::from_path(&tmp)?;
    writer.write_record(&headers)?;
    let mut changed = 0;
    for rec in reader.records() {
        let rec = rec?;
        let mut fields: Vec<String> = rec.iter().map(str::to_owned).collect();
        let row = fields[row_c].parse::<u64>().ok();
        if let Some((status, diag)) = row.and_then(|r| bounces.get(&r))
            && matches!(fields[status_c].as_str(), "sent" | "bounced")
        {
            changed += usize::from(fields[status_c] == "sent");
            fields[status_c] = "bounced".into();
            fields[code_c] = String::new();
            fields[text_c] = format!("late bounce {status}: {diag}")
                .trim_end()
                .to_owned();
        }
        writer.write_record(&fields)?;
    }
    writer.flush()?;
    drop(writer);
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(changed)
}
