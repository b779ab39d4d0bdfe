//! `mailshot send`: validate everything, then run the pipeline and summarize.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::cli::SendArgs;
use crate::clock::Clock;
use crate::commands::{self, Exit, load};
use crate::config::{Campaign, TransportConfig};
use crate::preflight::{Severity, render};
use crate::progress::Progress;
use crate::report::ReportWriter;
use crate::send::transport::{Outbox, SmtpRelay};
use crate::send::{DeliveryError, Mode, Pacer, Pipeline, Stop, Transport};

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
    std::fs::write(&audit_path, render::json(&audit, &args.overrides))
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
        campaign.limits.concurrency
    );
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
        concurrency: campaign.limits.concurrency,
        mode,
        clock,
        expected_rows: s.rows,
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
        Mode::DryRun => "rendered and signed (dry run, nothing sent)",
    };
    println!(
        "{}: {} {delivered_word} in {secs:.1} s ({:.1} msg/s)",
        campaign.id,
        t.delivered(),
        t.delivered() as f64 / secs.max(1e-3)
    );
    println!(
        "  failed {} · deferred {} · not attempted {} · invalid {} · duplicate {} · rows {}",
        t.failed,
        t.deferred,
        t.not_attempted,
        t.invalid,
        t.duplicate,
        t.rows()
    );
    println!("  report: {}", report_path.display());
    if mode == Mode::DryRun {
        println!("  messages: {}", run_dir.join("dry-run").display());
    }

    if let Some(stop) = &result.stopped {
        let fix = match stop {
            Stop::Delivery(e) => hint(e, campaign),
            Stop::Recipients(_) => "fix the recipient file".into(),
            Stop::Report(_) => "free disk space or fix the state folder's permissions; the report lists every recipient it could record".into(),
            Stop::Internal(_) => "this is a bug in mailshot; the report lists what was done".into(),
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
    if text.contains("certificate")
        || text.contains("invalid peer")
        || text.contains("unknownissuer")
    {
        "the relay's TLS certificate is not trusted for this host name; if the relay uses a private CA, point smtp.ca_file at it".into()
    } else if text.contains("starttls") || text.contains("tls") {
        "the relay's TLS handshake failed; check smtp.tls (\"starttls\" for port 587, \"implicit\" for 465) and smtp.port".into()
    } else if text.contains("refused") || text.contains("connection") || text.contains("resolve") {
        "check smtp.host and smtp.port, and that the relay is reachable from this machine".into()
    } else {
        "see the relay's reply above".into()
    }
}
