//! Progress: an indicatif bar on a terminal, a plain line every few seconds otherwise (logs,
//! CI), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const LINE_EVERY: Duration = Duration::from_secs(5);

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        done: u64,
        start: Instant,
        last: Instant,
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
                        "progress: {done}/{total} ({:.0}%), {rate:.1} msg/s, ETA {eta:.0} s",
                        *done as f64 * 100.0 / (*total).max(1) as f64
                    );
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
