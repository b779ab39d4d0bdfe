//! `mailshot intake CAMPAIGN SOURCE...`: read what came back (bounces, complaints, mailto
//! unsubscribes, DMARC reports) and act on it: the summary, the exit code, the late bounces
//! in the campaign's report.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Format, IntakeArgs};
use crate::clock::Clock;
use crate::commands::{self, Exit, mailbox_options, sources};
use crate::config::Campaign;
use crate::intake::context::Context;
use crate::intake::effects::{FileSink, Ledger};
use crate::intake::known::Known;
use crate::intake::late;
use crate::intake::run::{Intake, Settings};
use crate::intake::summary::{self, Tally};
use crate::mailbox::{Access, Reader};
use crate::progress::Progress;

/// The largest message read. Bounces carry at most the original (mailshot's are small) and
/// reports are compressed; a 50 MB "bounce" is named and skipped without being read.
pub const MAX_MESSAGE: u64 = 25 << 20;

pub fn run(args: &IntakeArgs, quiet: bool, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let campaign = Campaign::load(&args.campaign)?;
    let suppression = match (&campaign.suppression, args.dry_run) {
        (Some(s), _) => s.file.clone(),
        // A dry run writes nothing, so it needs no list to write to.
        (None, true) => campaign.run_dir().join("(no suppression list)"),
        (None, false) => anyhow::bail!(
            "{}: intake records suppressions in the campaign's suppression list; add\n  [suppression]\n  file = \"suppressed.txt\"\n(or run with --dry-run to only classify)",
            campaign.path.display()
        ),
    };
    let known = Known::load(&campaign)?;
    let unsubscribe = commands::unsubscriber(&campaign)?;
    let verp =
        crate::message::verp::Verp::new(&campaign).context("VERP key ([unsubscribe] secret)")?;
    let mailto = campaign
        .unsubscribe
        .as_ref()
        .and_then(|u| u.mailto.as_ref())
        .map(|a| a.to_string().to_lowercase());
    let run_dir = campaign.run_dir();
    let mut sink = FileSink::open(
        &suppression,
        &campaign.state_dir,
        &run_dir,
        clock.now(),
        args.dry_run,
    )?;
    let mut ledger = Ledger::open(&run_dir, args.dry_run)
        .with_context(|| format!("cannot read {}", run_dir.join("intake-seen").display()))?;

    let opts = mailbox_options(
        &args.imap,
        Some(&campaign.intake),
        MAX_MESSAGE,
        if args.dry_run {
            Access::DryRun
        } else {
            Access::Process
        },
        args.move_to.clone(),
    );
    let mut reader = Reader::open(&sources(&args.sources)?, opts)?;
    let mut tally = Tally::default();
    for (path, e) in std::mem::take(&mut reader.unreadable) {
        tally.counts.skipped += 1;
        tally.skipped(summary::Named {
            message: path,
            reason: e,
        });
    }
    let mut progress = Progress::new(reader.known(), quiet || args.format == Format::Json);
    let mut intake = Intake {
        cx: Context {
            known: &known,
            unsubscribe: unsubscribe.as_ref(),
            mailto,
            now: clock.now(),
            verp: verp.as_ref(),
        },
        sink: &mut sink,
        ledger: &mut ledger,
        settings: Settings {
            soft_bounce_limit: campaign.intake.soft_bounce_limit,
        },
    };
    let result = intake.run(&mut reader, &mut tally, |_| progress.inc());
    progress.finish();
    reader.close();
    if let Err(e) = result {
        eprintln!(
            "mailshot: error: {e:#}\n  what was recorded before this is kept; run intake again to continue"
        );
        return Ok(Exit::Stopped);
    }
    if !args.dry_run {
        late::mark_report(&run_dir)?;
    }
    let summary = tally.finish(&campaign.id, args.dry_run, known.sent);
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Human => stdout.write_all(summary::human(&summary).as_bytes())?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut stdout, &summary)?;
            stdout.write_all(b"\n")?;
        }
    }
    stdout.flush()?;
    Ok(Exit::Success)
}
