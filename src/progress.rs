//! Progress: an indicatif bar on a terminal, a plain line every few seconds otherwise (logs,
//! CI), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many entries wait and when the first is due: the progress line's figures
/// (the retry queue fills it in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub count: usize,
    pub next_due: Option<tokio::time::Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(5);

fn waiting_text(w: &Waiting) -> String {
    match w.next_due {
        Some(due) if w.count > 0 => {
            let secs = due
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64();
            format!(", {} waiting for a retry, next in {secs:.0} s", w.count)
        }
        _ => String::new(),
    }
}

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        done: u64,
        start: Instant,
        last: Instant,
        /// Recipients waiting for a retry, and when the first is due.
        waiting: Waiting,
    },
    Hidden,
}

impl Progress {
    pub fn new(total: u64, quiet: bool) -> Progress {
        if quiet {
            return Progress::Hidden;
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} {per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            let now = Instant::now();
            Progress::Lines {
                total,
                done: 0,
                start: now,
                last: now,
                waiting: Waiting {
                    count: 0,
                    next_due: None,
                },
            }
        }
    }

    pub fn inc(&mut self) {
        match self {
            Progress::Bar(b) => b.inc(1),
            Progress::Lines {
                total,
                done,
                start,
                last,
                waiting,
            } => {
                *done += 1;
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    let secs = start.elapsed().as_secs_f64().max(1e-3);
                    let rate = *done as f64 / secs;
                    let eta = if rate > 0.0 {
                        (*total - (*done).min(*total)) as f64 / rate
                    } else {
                        0.0
                    };
                    eprintln!(
                        "progress: {done}/{total} ({:.0}%), {rate:.1} msg/s, ETA {eta:.0} s{}",
                        *done as f64 * 100.0 / (*total).max(1) as f64,
                        waiting_text(waiting)
                    );
                }
            }
            Progress::Hidden => {}
        }
    }

    /// How many recipients wait for a retry and when the next is due: refreshed while the
    /// run is quiet, so a run with only retries left does not look stuck.
    pub fn waiting(&mut self, w: Waiting) {
        match self {
            Progress::Bar(b) => b.set_message(waiting_text(&w)),
            Progress::Lines {
                total,
                done,
                last,
                waiting,
                ..
            } => {
                *waiting = w;
                if w.count > 0 && last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("progress: {done}/{total}{}", waiting_text(waiting));
                }
            }
            Progress::Hidden => {}
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}
