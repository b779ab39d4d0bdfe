//! The gate before a send: the survey's verdict on the rows, the content lint, the preflight
//! audit and `preflight.json`. `check` and `send` both pass through here, so they can never
//! disagree on what blocks. It lives under `commands/` rather than as a room of its own in
//! `src/` because it is presentation and decision for the command line (it prints, and it
//! reads `--override` and the output format), not a step of the data's path.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{DnsArgs, Format};
use crate::clock::Clock;
use crate::commands::{self, Loaded};
use crate::preflight::{Audit, Check, Severity, render};

/// Who is asking, which decides what is shown.
pub enum Show {
    /// `send`: the survey and a one-line verdict, the audit in full only when it blocks;
    /// the audit is also written to `audit_file`. A blocking lint stops before the audit.
    Send { audit_file: PathBuf },
    /// `check`: the whole audit and the lint, human or JSON, and nothing written.
    Check(Format),
}

/// Runs the gate. `Some(audit)` if nothing unresolved blocks; `None` if something does
/// (what, and why, has been printed).
pub async fn gate(
    loaded: &Loaded,
    dns_args: &DnsArgs,
    overrides: &[String],
    clock: &dyn Clock,
    show: &Show,
) -> anyhow::Result<Option<Audit>> {
    let lint = &loaded.survey.lint;
    let lint_blocking: Vec<&str> = lint
        .blocking(&loaded.campaign.lint.block)
        .map(|t| t.id)
        .collect();
    if let Show::Send { .. } = show {
        print_survey(loaded);
        if !lint_blocking.is_empty() {
            eprintln!(
                "mailshot: not sending: lint findings that campaign.toml's lint.block names: {}",
                lint_blocking.join(", ")
            );
            return Ok(None);
        }
    }
    let overrides = &honoured(overrides);
    // The preflight: blocking findings stop the run unless each is overridden by id.
    let dns = commands::dns(&loaded.campaign, dns_args)?;
    let audit = commands::audit(loaded, &dns, clock, true).await?;
    let unresolved = audit.unresolved(overrides);
    let passes = unresolved.is_empty() && lint_blocking.is_empty();
    match show {
        Show::Check(Format::Human) => {
            out!("{}", render::human(&audit, overrides));
            outln!("\nContent lint ({} recipients)", loaded.survey.valid);
            let lines = lint.lines(loaded.survey.valid);
            if lines.is_empty() {
                outln!("  no findings");
            }
            for l in lines {
                outln!("  {l}");
            }
        }
        Show::Check(Format::Json) => outln!("{}", render::json(&audit, overrides, Some(lint))),
        Show::Send { audit_file } => {
            if let Some(dir) = audit_file.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // Replaces a symlink planted at the name instead of writing through it.
            crate::files::write_replacing(
                audit_file,
                render::json(&audit, overrides, Some(lint)).as_bytes(),
            )
            .with_context(|| format!("cannot write {}", audit_file.display()))?;
            if !passes {
                out!("{}", render::human(&audit, overrides));
                eprintln!(
                    "mailshot: not sending: {} blocking preflight finding{} ({}); full audit in {}",
                    unresolved.len(),
                    if unresolved.len() == 1 { "" } else { "s" },
                    unresolved
                        .iter()
                        .map(|f| f.id)
                        .collect::<Vec<_>>()
                        .join(", "),
                    audit_file.display()
                );
            } else {
                print_verdict(&audit, overrides);
            }
        }
    }
    Ok(passes.then_some(audit))
}

/// The overrides that can take effect. `dkim.key-strength` is not one: it reports a key
/// mailshot will not sign with, so letting the run through would only fail at the first
/// message (or send it unsigned); the gate keeps blocking, and says why.
fn honoured(overrides: &[String]) -> Vec<String> {
    let strength = Check::DkimKeyStrength.id();
    if overrides.iter().any(|o| o == strength) {
        eprintln!(
            "mailshot: --override {strength} is ignored: mailshot does not sign with a key it refuses; replace the key (see the finding's fix)"
        );
    }
    overrides
        .iter()
        .filter(|o| *o != strength)
        .cloned()
        .collect()
}

/// The rows' tally, the problems found (the first ones), and the content lint.
fn print_survey(loaded: &Loaded) {
    let s = &loaded.survey;
    outln!(
        "{}: {} rows: {} valid, {} invalid, {} duplicate",
        loaded.campaign.recipients.file.display(),
        s.rows,
        s.valid,
        s.invalid,
        s.duplicate
    );
    for p in &s.problems {
        outln!("  {}", crate::terminal::field(p));
    }
    let listed = s.problems.len() as u64;
    if s.invalid + s.duplicate > listed {
        outln!(
            "  ... and {} more (all are in the report)",
            s.invalid + s.duplicate - listed
        );
    }
    let lint_lines = s.lint.lines(s.valid);
    if !lint_lines.is_empty() {
        outln!("content lint:");
        for l in &lint_lines {
            outln!("  {l}");
        }
    }
}

/// The audit in one line, with what was overridden, then each warning.
fn print_verdict(audit: &Audit, overrides: &[String]) {
    let overridden: Vec<&str> = audit
        .blocking()
        .map(|f| f.id)
        .filter(|id| overrides.iter().any(|o| o == id))
        .collect();
    outln!(
        "preflight: {} ({} pass, {} warn{})",
        render::verdict(audit, overrides),
        audit.count(Severity::Pass),
        audit.count(Severity::Warn),
        if overridden.is_empty() {
            String::new()
        } else {
            format!(", OVERRIDDEN: {}", overridden.join(", "))
        }
    );
    for f in audit
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
    {
        outln!("  warn {}: {}", f.id, crate::terminal::field(&f.message));
    }
}
