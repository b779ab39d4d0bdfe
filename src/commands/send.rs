//! `mailshot send`: validate everything, then run the pipeline and summarize.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::cli::{InDoubtArg, SendArgs};
use crate::clock::Clock;
use crate::commands::{self, Exit, load};
use crate::config::{Campaign, TransportConfig};
use crate::preflight::dkim::DkimVerifier;
use crate::preflight::{Severity, render};
use crate::progress::Progress;
use crate::report::ReportWriter;
use crate::send::journal::{self, Journal};
use crate::send::transport::{Outbox, SmtpRelay};
use crate::send::{
    Abort, DeliveryError, FailureClass, InDoubt, Mode, Pacer, Pipeline, Stop, Transport,
};
use crate::suppression::Suppression;

pub async fn run(args: &SendArgs, quiet: bool, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let loaded = load(&args.campaign, clock.clone())?;
    let campaign = &loaded.campaign;
    if campaign.unsubscribe.is_none() {
        tracing::warn!(
            "no [unsubscribe] table: Gmail and Yahoo require one-click unsubscribe (RFC 8058) for bulk mail"
        );
    }
    let s = &loaded.survey;
    println!(
        "{}: {} rows: {} valid, {} invalid, {} duplicate",
        campaign.recipients.file.display(),
        s.rows,
        s.valid,
        s.invalid,
        s.duplicate
    );
    for p in &s.problems {
        println!("  {p}");
    }
    let listed = s.problems.len() as u64;
    if s.invalid + s.duplicate > listed {
        println!(
            "  ... and {} more (all are in the report)",
            s.invalid + s.duplicate - listed
        );
    }

    let lint_lines = s.lint.lines(s.valid);
    if !lint_lines.is_empty() {
        println!("content lint:");
        for l in &lint_lines {
            println!("  {l}");
        }
    }
    let lint_blocking: Vec<&str> = s
        .lint
        .blocking(&campaign.lint.block)
        .map(|t| t.id)
        .collect();
    if !lint_blocking.is_empty() {
        eprintln!(
            "mailshot: not sending: lint findings that campaign.toml's lint.block names: {}",
            lint_blocking.join(", ")
        );
        return Ok(Exit::CouldNotStart);
    }

    // The preflight: blocking findings stop the run unless each is overridden by id.
    let dns = commands::dns(campaign, &args.dns)?;
    let audit = commands::audit(&loaded, &dns, clock.as_ref(), true).await?;
    let run_dir = campaign.run_dir();
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    let audit_path = run_dir.join(if args.dry_run {
        "dry-run-preflight.json"
    } else {
        "preflight.json"
    });
    std::fs::write(
        &audit_path,
        render::json(&audit, &args.overrides, Some(&loaded.survey.lint)),
    )
    .with_context(|| format!("cannot write {}", audit_path.display()))?;
    let unresolved = audit.unresolved(&args.overrides);
    if !unresolved.is_empty() {
        print!("{}", render::human(&audit, &args.overrides));
        eprintln!(
            "mailshot: not sending: {} blocking preflight finding{} ({}); full audit in {}",
            unresolved.len(),
            if unresolved.len() == 1 { "" } else { "s" },
            unresolved
                .iter()
                .map(|f| f.id)
                .collect::<Vec<_>>()
                .join(", "),
            audit_path.display()
        );
        return Ok(Exit::CouldNotStart);
    }
    let overridden: Vec<&str> = audit
        .blocking()
        .map(|f| f.id)
        .filter(|id| args.overrides.iter().any(|o| o == id))
        .collect();
    println!(
        "preflight: {} ({} pass, {} warn{})",
        render::verdict(&audit, &args.overrides),
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
        println!("  warn {}: {}", f.id, f.message);
    }

    let assembler = loaded.assembler.clone();

    // The journal: what earlier runs of this campaign did. Dry runs read it (to show what a
    // real run would skip) but never write it.
    // One run per campaign at a time: two processes reading the same journal would each
    // send to everyone. The lock is released when this process exits, however it exits.
    let lock_path = run_dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "mailshot: another mailshot run of campaign {} is in progress ({} is locked); wait for it or stop it first",
            campaign.id,
            lock_path.display()
        );
        return Ok(Exit::CouldNotStart);
    }
    let journal_path = run_dir.join("journal");
    // A dry run shows every message as a real run would build it, and never reads the
    // journal: its report must never say `sent`.
    let prior = if args.dry_run {
        journal::Prior::default()
    } else {
        journal::read(&journal_path)?
    };
    let fingerprint = fingerprint(campaign)?;
    if let Some(old) = &prior.fingerprint
        && *old != fingerprint
        && !args.accept_changes
    {
        let what: Vec<&str> = ["recipients", "templates"]
            .into_iter()
            .filter(|part| field(old, part) != field(&fingerprint, part))
            .collect();
        eprintln!(
            "mailshot: the {} changed since this campaign's journal began ({}).\n  Addresses already sent to are still skipped; rerun with --accept-changes to resume with the new files,\n  or give the campaign a new id to start over.",
            if what.is_empty() {
                "inputs".to_owned()
            } else {
                what.join(" and ")
            },
            journal_path.display()
        );
        return Ok(Exit::CouldNotStart);
    }
    let doubt = prior.in_doubt();
    let in_doubt = match (args.in_doubt, doubt.is_empty()) {
        (_, true) | (Some(InDoubtArg::Resend), _) => InDoubt::Resend,
        (Some(InDoubtArg::Skip), _) => InDoubt::Skip,
        (None, false) => {
            eprintln!(
                "mailshot: {} recipient{} were in flight when an earlier run stopped; they may or may not have received the message:",
                doubt.len(),
                if doubt.len() == 1 { "" } else { "s" }
            );
            for (row, addr) in doubt.iter().take(20) {
                eprintln!("  row {row}: {addr}");
            }
            if doubt.len() > 20 {
                eprintln!("  ... and {} more", doubt.len() - 20);
            }
            eprintln!(
                "  rerun with --in-doubt resend (they may get it twice; the Message-ID is the same, so many receivers drop the copy)\n  or --in-doubt skip (they may not get it at all; the report marks them in-doubt)."
            );
            return Ok(Exit::CouldNotStart);
        }
    };
    if prior.fingerprint.is_some() {
        println!(
            "journal: {} sent earlier, {} refused earlier, {} deferred (retried now), {} in doubt{}",
            prior.count(journal::State::Sent),
            prior.count(journal::State::Failed),
            prior.count(journal::State::Deferred),
            doubt.len(),
            if doubt.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    if in_doubt == InDoubt::Resend {
                        "resending"
                    } else {
                        "skipping"
                    }
                )
            }
        );
    }
    let suppression = match &campaign.suppression {
        Some(cfg) => {
            let s = Suppression::load(&cfg.file, cfg.add_permanent_failures)?;
            println!(
                "suppression list: {} entries ({})",
                s.len(),
                cfg.file.display()
            );
            s
        }
        None => Suppression::none(),
    };
    let (transport, mode, report_path) = if args.dry_run {
        let outbox = Outbox::new(&run_dir.join("dry-run"))?;
        (
            Transport::Outbox(outbox),
            Mode::DryRun,
            run_dir.join("dry-run-report.csv"),
        )
    } else {
        match &campaign.transport {
            TransportConfig::Smtp(cfg) => (
                Transport::Smtp(SmtpRelay::new(cfg)?),
                Mode::Smtp,
                run_dir.join("report.csv"),
            ),
            TransportConfig::Outbox { dir } => (
                Transport::Outbox(Outbox::new(dir)?),
                Mode::Outbox,
                run_dir.join("report.csv"),
            ),
        }
    };
    if let Err(e) = transport.check().await {
        eprintln!(
            "mailshot: cannot start: {}: {}\n  fix: {}",
            transport.describe(),
            e.text,
            hint(&e, campaign)
        );
        return Ok(Exit::CouldNotStart);
    }

    // Each sender holds one SMTP connection, so the pool size caps the concurrency.
    let concurrency = match &campaign.transport {
        TransportConfig::Smtp(cfg) if mode == Mode::Smtp => {
            campaign.limits.concurrency.min(cfg.pool_size as usize)
        }
        _ => campaign.limits.concurrency,
    };
    println!(
        "{}: sending {} messages via {}, {}, {} at a time",
        campaign.id,
        s.valid,
        transport.describe(),
        if mode == Mode::Smtp {
            Pacer::describe(&campaign.limits)
        } else {
            "unpaced".into()
        },
        concurrency
    );
    let journal = if mode == Mode::DryRun {
        None
    } else {
        Some(Journal::open(
            &journal_path,
            &fingerprint,
            prior.fingerprint.as_deref(),
            &format!("run {} {:?}", crate::clock::rfc3339(clock.now()), mode),
        )?)
    };
    let abort = Arc::new(Abort::default());
    watch_signals(abort.clone(), journal.clone());
    let mut report = ReportWriter::create(&report_path)?;
    let mut progress = Progress::new(s.valid, quiet);
    let started = Instant::now();
    let pipeline = Pipeline {
        assembler,
        transport: Arc::new(transport),
        pacer: Arc::new(if mode == Mode::Smtp {
            Pacer::new(&campaign.limits)
        } else {
            Pacer::none()
        }),
        envelope_from: campaign.return_path.clone(),
        concurrency,
        mode,
        clock,
        expected_rows: s.rows,
        abort,
        journal,
        prior: Arc::new(prior),
        in_doubt,
        suppression: Arc::new(suppression),
        retry: campaign.retry,
        seed: seed(),
        candidates: loaded.candidates.clone(),
        verifier: if mode == Mode::DryRun {
            DkimVerifier::new(&audit.dkim_records).map(Arc::new)
        } else {
            None
        },
    };
    let mut result = pipeline
        .run(&campaign.recipients, &mut report, &mut progress)
        .await;
    let report_path = match report.finish() {
        Ok(p) => p,
        Err(e) => {
            result.stopped.get_or_insert(Stop::Report(e.to_string()));
            report_path
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let t = result.tally;

    let delivered_word = match mode {
        Mode::Smtp => "sent",
        Mode::Outbox => "written to the outbox",
        Mode::DryRun => {
            "rendered, signed and DKIM-verified against the published keys (dry run, nothing sent)"
        }
    };
    println!(
        "{}: {} {delivered_word} in {secs:.1} s ({:.1} msg/s)",
        campaign.id,
        t.delivered(),
        // The rate of this run's own messages: the journal's earlier ones cost nothing.
        t.delivered().saturating_sub(t.sent_earlier) as f64 / secs.max(1e-3)
    );
    if t.sent_earlier > 0 {
        println!(
            "  ({} of them by earlier runs, from the journal)",
            t.sent_earlier
        );
    }
    println!(
        "  failed {} · deferred {} · not attempted {} · in doubt {} · suppressed {} · invalid {} · duplicate {} · rows {}",
        t.failed,
        t.deferred,
        t.not_attempted,
        t.in_doubt,
        t.suppressed,
        t.invalid,
        t.duplicate,
        t.rows()
    );
    println!("  report: {}", report_path.display());
    if mode == Mode::DryRun {
        println!("  messages: {}", run_dir.join("dry-run").display());
    }

    if let Some(Stop::Interrupted) = &result.stopped {
        eprintln!(
            "mailshot: interrupted; the journal is synced. Resume with:\n  mailshot send {}",
            args.campaign.display()
        );
        return Ok(Exit::Stopped);
    }
    if let Some(stop) = &result.stopped {
        let fix = match stop {
            Stop::Delivery(e) => hint(e, campaign),
            Stop::Refusals { .. } => "the relay answered but refused a run of recipients: check the envelope sender (campaign.return_path), the account's sending rights and limits at the relay, and the replies in the report; then run the same command to resume".into(),
            Stop::Recipients(_) => "fix the recipient file".into(),
            Stop::Report(_) => "free disk space or fix the state folder's permissions; the report lists every recipient it could record".into(),
            Stop::Internal(_) => "this is a bug in mailshot; the report lists what was done".into(),
            Stop::Journal(_) => "free disk space or fix the state folder's permissions, then resume".into(),
            Stop::Interrupted => String::new(),
        };
        eprintln!("mailshot: stopped: {stop}\n  fix: {fix}");
        return Ok(Exit::Stopped);
    }
    Ok(if t.undelivered() > 0 {
        Exit::SomeFailed
    } else {
        Exit::Success
    })
}

/// First Ctrl-C (or SIGTERM): stop taking recipients, let those in flight finish. Second:
/// sync the journal and exit at once; every message that may have left is already journaled
/// as in flight, so the journal stays consistent.
fn watch_signals(abort: Arc<Abort>, journal: Option<Journal>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut count = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
            }
            count += 1;
            if count == 1 {
                abort.trip(Stop::Interrupted);
                eprintln!(
                    "\nmailshot: stopping: finishing the messages in flight (Ctrl-C again to quit at once)"
                );
            } else {
                if let Some(j) = &journal {
                    let _ = j.sync();
                }
                eprintln!(
                    "mailshot: quit; the journal is consistent, resume with the same command"
                );
                std::process::exit(130);
            }
        }
    });
}

/// What the journal remembers of the inputs, to notice a resume with different files:
/// `recipients=<hash>;templates=<hash>`.
fn fingerprint(c: &Campaign) -> anyhow::Result<String> {
    use aws_lc_rs::digest::{Context, SHA256};
    let hash_files = |paths: &[&std::path::Path], extra: &str| -> anyhow::Result<String> {
        let mut ctx = Context::new(&SHA256);
        for p in paths {
            let mut f =
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf)?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
            }
        }
        ctx.update(extra.as_bytes());
        Ok(ctx.finish().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    };
    let templates: Vec<&std::path::Path> = [&c.text_template, &c.html_template]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    Ok(format!(
        "recipients={};templates={}",
        hash_files(&[&c.recipients.file], "")?,
        hash_files(&templates, &c.subject)?
    ))
}

fn field<'a>(fingerprint: &'a str, name: &str) -> Option<&'a str> {
    fingerprint
        .split(';')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Seeds the retry jitter from the system's random source.
fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
}

/// One sentence on what to change, from the kind of failure.
fn hint(e: &DeliveryError, campaign: &Campaign) -> String {
    let text = e.text.to_ascii_lowercase();
    let password_from = match &campaign.transport {
        TransportConfig::Smtp(s) => match &s.password {
            Some(crate::secret::SecretSource::Env(v)) => format!("the environment variable {v}"),
            Some(crate::secret::SecretSource::File(p)) => format!("the file {}", p.display()),
            None => "smtp.password_env".into(),
        },
        TransportConfig::Outbox { .. } => String::new(),
    };
    match e.code {
        Some(535 | 534 | 538) => {
            return format!(
                "the relay refused the login; check smtp.username and the password in {password_from}"
            );
        }
        Some(530) => {
            return "the relay requires authentication; set smtp.username and smtp.password_env"
                .into();
        }
        _ => {}
    }
    if e.class == FailureClass::Fatal && text.starts_with("cannot write") {
        return "check that the outbox folder exists, is writable and has free space".into();
    }
    if text.contains("certificate")
        || text.contains("invalid peer")
        || text.contains("unknownissuer")
    {
        "the relay's TLS certificate is not trusted for this host name; if the relay uses a private CA, point smtp.ca_file at it".into()
    } else if text.contains("starttls") || text.contains("tls") {
        "the relay's TLS handshake failed; check smtp.tls (\"starttls\" for port 587, \"implicit\" for 465) and smtp.port".into()
    } else if [
        "refused",
        "connect",
        "resolve",
        "lookup",
        "timed out",
        "unreachable",
    ]
    .iter()
    .any(|w| text.contains(w))
    {
        "check smtp.host and smtp.port, and that the relay is reachable from this machine".into()
    } else {
        "see the relay's reply above".into()
    }
}
