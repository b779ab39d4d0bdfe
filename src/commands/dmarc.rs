//! `mailshot dmarc report`: summarize DMARC aggregate reports from files, folders, Maildirs,
//! mbox files and IMAP mailboxes (through the shared mailbox reader), with a progress bar,
//! the skipped items on stderr, and the exit code.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{DmarcReportArgs, Format};
use crate::commands::{Exit, mailbox_options, sources};
use crate::dmarc_report::container::MAX_BYTES;
use crate::dmarc_report::{self, Event, Summary, render};
use crate::mailbox::{Access, Reader};
use crate::terminal::field;

/// Parsing threads at most: past this the disk, not the CPU, is the limit.
const MAX_THREADS: usize = 8;

pub fn run(args: &DmarcReportArgs, quiet: bool) -> anyhow::Result<Exit> {
    // Read-only: a report run never marks or moves anything on an IMAP server, and it reads
    // the reports intake has marked too (intake only totals them; the details are here).
    let opts = mailbox_options(&args.imap, None, MAX_BYTES, Access::ReadAll, None);
    let mut reader = Reader::open(&sources(&args.paths)?, opts)?;
    let bar = progress_bar(reader.known(), quiet);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    let unreadable = std::mem::take(&mut reader.unreadable);
    let scanned = dmarc_report::scan(&mut reader, unreadable, threads, |event| match event {
        Event::Read => bar.inc(1),
        Event::Skipped(s) => {
            // Named as it happens (above the bar), and again in the summary.
            bar.suspend(|| {
                eprintln!(
                    "mailshot: skipped {}: {}",
                    field(&s.path.to_string_lossy()),
                    field(&s.reason)
                )
            });
            bar.inc(1);
        }
    });
    reader.close();
    bar.finish_and_clear();

    let summary = Summary::new(
        &scanned.aggregate,
        scanned.files_found,
        scanned.files_read,
        &scanned.skipped,
    );
    let mut stdout = std::io::stdout().lock();
    let written = match args.format {
        Format::Human => stdout.write_all(render::human(&summary).as_bytes()),
        Format::Json => serde_json::to_writer_pretty(&mut stdout, &summary)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n")),
    }
    .and_then(|()| stdout.flush());
    // A reader that stopped early (`| head`) is not a failure; the exit code still says
    // whether any report was read.
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }

    if summary.reports.counted == 0 {
        eprintln!(
            "mailshot: error: no DMARC aggregate report could be read ({} files found, {} skipped)",
            summary.files.found, summary.files.skipped
        );
        return Ok(Exit::CouldNotStart);
    }
    Ok(Exit::Success)
}

/// A bar on a terminal; nothing with --quiet or when stderr is a pipe or a file, where a
/// summary follows within seconds anyway.
fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40.cyan/blue} {pos}/{len} files, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
