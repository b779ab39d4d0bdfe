//! `mailshot dmarc report`: summarize DMARC aggregate reports.

use crate::cli::DmarcReportArgs;
use crate::commands::Exit;

pub fn run(_args: &DmarcReportArgs, _quiet: bool) -> anyhow::Result<Exit> {
    anyhow::bail!("not implemented yet")
}
