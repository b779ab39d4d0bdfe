//! `mailshot send`: the gate, the resume, the transport, the pipeline, and the summary.

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{InDoubtArg, SendArgs};
use crate::clock::Clock;
use crate::commands::gate::{Show, gate};
use crate::commands::{Exit, Loaded, load_shard};
use crate::config::{Campaign, TransportConfig};
use crate::preflight::dkim::DkimVerifier;
use crate::progress::Progress;
use crate::report::{ReportWriter, Tally};
use crate::send::journal::Journal;
use crate::send::limits::{DayCap, DomainLimits};
use crate::send::resume::{self, ResumeError, Resumed};
use crate::send::seed;
use crate::send::transport::Cause;
use crate::send::{Abort, DeliveryError, InDoubt, Pacer, Pipeline, RunResult, Stop, Transport};
use crate::suppression::Suppression;

pub async fn run(args: &SendArgs, quiet: bool, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let loaded = load_shard(&args.campaign, clock.clone(), args.shard)?;
    let campaign = &loaded.campaign;
    if campaign.unsubscribe.is_none() {
        tracing::warn!(
            "no [unsubscribe] table: Gmail and Yahoo require one-click unsubscribe (RFC 8058) for bulk mail"
        );
    }
    let Some(run_dir) = state_folder(campaign, args.shard)? else {
        return Ok(Exit::CouldNotStart);
    };
    let prefix = if args.dry_run { "dry-run-" } else { "" };
    let audit_file = run_dir.join(format!("{prefix}preflight.json"));
    // The lock first: a run refused by it must not touch the running one's files.
    let Some(lock) = unless_refused(resume::lock(campaign, &run_dir))? else {
        return Ok(Exit::CouldNotStart);
    };
    let show = Show::Send { audit_file };
    let Some(audit) = gate(&loaded, &args.dns, &args.overrides, clock.as_ref(), &show).await?
    else {
        return Ok(Exit::CouldNotStart);
    };
    let in_doubt = args.in_doubt.map(|a| match a {
        InDoubtArg::Resend => InDoubt::Resend,
        InDoubtArg::Skip => InDoubt::Skip,
    });
    let resumed = resume::resume(
        campaign,
        &run_dir,
        lock,
        args.dry_run,
        args.accept_changes,
        in_doubt,
    );
    let Some(resumed) = unless_refused(resumed)? else {
        return Ok(Exit::CouldNotStart);
    };
    if let Some(line) = resumed.summary() {
        outln!("{line}");
    }
    let suppression = suppression(campaign)?;
    let dry_run_dir = run_dir.join("dry-run");
    let transport = Transport::new(
        &campaign.transport,
        &campaign.relays,
        args.dry_run.then_some(&*dry_run_dir),
    )?;
    if let Err(e) = transport.check().await {
        let (what, fix) = (transport.describe(), hint(&e, campaign));
        eprintln!(
            "mailshot: cannot start: {what}: {}\n  fix: {fix}",
            crate::terminal::field(&e.text)
        );
        return Ok(Exit::CouldNotStart);
    }
    send_seeds(args, &loaded, &transport).await?;
    let word = transport.delivered_word();
    let verifier = transport
        .verifies()
        .then(|| DkimVerifier::new(&audit.dkim_records));
    let pipeline = pipeline(
        &loaded,
        transport,
        resumed,
        suppression,
        verifier.flatten(),
        clock,
    )?;
    let started = Instant::now();
    let report_path = run_dir.join(format!("{prefix}report.csv"));
    let (result, report_path) = deliver(pipeline, &loaded, report_path, quiet).await?;
    let dry_run_dir = args.dry_run.then_some(&*dry_run_dir);
    summarize(
        campaign,
        &result.tally,
        word,
        started,
        &report_path,
        dry_run_dir,
    );
    Ok(finish(&result, campaign, &resume_args(args)))
}

/// A resume step's answer: the value, or `None` once a refusal (another run holds the lock,
/// changed inputs, recipients in doubt) has been printed with its fix.
fn unless_refused<T>(r: Result<T, ResumeError>) -> anyhow::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(ResumeError::Refused(why)) => {
            eprintln!("mailshot: {why}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--seed`: one copy to each seed address before the campaign, outside the journal and the
/// report, so the user can verify one real delivery first.
async fn send_seeds(args: &SendArgs, loaded: &Loaded, transport: &Transport) -> anyhow::Result<()> {
    let campaign = &loaded.campaign;
    let seeds = seed::recipients(
        &args.seeds,
        loaded.survey.first.as_ref(),
        loaded.assembler.columns(),
        &campaign.recipients.address_column,
    )
    .and_then(|s| seed::build(&loaded.assembler, s))?;
    let results = seed::send(transport, &seeds).await;
    for (copy, result) in seeds.iter().zip(results) {
        match result {
            Ok(a) => outln!(
                "seed: {} accepted ({})",
                copy.recipient.address,
                crate::terminal::field(&a.text)
            ),
            Err(e) => eprintln!(
                "mailshot: seed {} not sent: {}",
                copy.recipient.address,
                crate::terminal::field(&e.text)
            ),
        }
    }
    Ok(())
}

/// Where this run keeps its journal, lock and report: the campaign's folder, or its shard's.
/// A campaign is sharded one way for good: a different count (or none after some) would move
/// rows between journals, and rows would be sent twice. `None`: refused (said why).
fn state_folder(
    campaign: &Campaign,
    shard: Option<crate::shard::Shard>,
) -> anyhow::Result<Option<PathBuf>> {
    let run_dir = campaign.run_dir();
    let recorded = crate::shard::recorded(&run_dir)
        .with_context(|| format!("cannot read {}", run_dir.join("shards").display()))?;
    match (shard, recorded) {
        (None, None) => Ok(Some(run_dir)),
        (None, Some(n)) => {
            eprintln!(
                "mailshot: campaign {} is sent in {n} shards ({}); run each with --shard K/{n}",
                campaign.id,
                run_dir.join("shards").display()
            );
            Ok(None)
        }
        (Some(s), _) if run_dir.join("journal").exists() => {
            eprintln!(
                "mailshot: --shard {s}: campaign {} was started without shards ({} exists); resume it without --shard, or give the campaign a new id",
                campaign.id,
                run_dir.join("journal").display()
            );
            Ok(None)
        }
        (Some(s), _) => match s.check_count(&run_dir, &campaign.id) {
            Ok(()) => {
                let dir = s.dir(&run_dir);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                Ok(Some(dir))
            }
            Err(e @ crate::shard::ShardError::CountChanged { .. }) => {
                eprintln!("mailshot: {e}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Today's allowance under `limits.per_day` (a shard's share of it), less what the journal
/// says was sent today; `None` without a cap or for an unpaced transport.
fn day_cap(
    campaign: &Campaign,
    resumed: &Resumed,
    paced: bool,
    clock: &dyn Clock,
) -> Option<Arc<std::sync::Mutex<DayCap>>> {
    let cap = campaign.limits.per_day.filter(|_| paced)?;
    let shard = campaign.recipients.shard.map(|s| (s.k, s.n));
    let day = crate::send::limits::utc_day(clock.now());
    Some(Arc::new(std::sync::Mutex::new(DayCap {
        cap: DayCap::share(u64::from(cap.get()), shard),
        used: resumed.prior.sent_per_day.get(&day).copied().unwrap_or(0),
        day,
    })))
}

/// The arguments that resume this run: the campaign file, and the shard if there is one.
fn resume_args(args: &SendArgs) -> String {
    match args.shard {
        Some(s) => format!("--shard {s} {}", args.campaign.display()),
        None => args.campaign.display().to_string(),
    }
}

/// The suppression list, if campaign.toml names one.
fn suppression(campaign: &Campaign) -> anyhow::Result<Suppression> {
    Ok(match &campaign.suppression {
        Some(cfg) => {
            let s = Suppression::load(&cfg.file, cfg.add_permanent_failures)?
                .for_campaign(&campaign.id);
            outln!(
                "suppression list: {} entries ({})",
                s.len(),
                cfg.file.display()
            );
            s
        }
        None => Suppression::none(),
    })
}

/// The pipeline for this run: the concurrency the transport allows, pacing if it is paced,
/// the journal if it keeps one (watched by the signal handler).
fn pipeline(
    loaded: &Loaded,
    transport: Transport,
    resumed: Resumed,
    suppression: Suppression,
    verifier: Option<DkimVerifier>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Pipeline> {
    let campaign = &loaded.campaign;
    let limits = &campaign.limits;
    let concurrency = transport
        .max_senders()
        .map_or(limits.concurrency, |max| limits.concurrency.min(max));
    let paced = transport.paced();
    outln!(
        "{}: sending {} messages via {}, {}, {} at a time",
        campaign.id,
        loaded.survey.valid,
        transport.describe(),
        if paced {
            Pacer::describe(limits)
        } else {
            "unpaced".into()
        },
        concurrency
    );
    let journal = match transport.journal() {
        Some((_, name)) => Some(Journal::open(
            &resumed.journal_path,
            &resumed.fingerprint,
            resumed.prior.fingerprint.as_deref(),
            &format!("run {} {name}", crate::clock::rfc3339(clock.now())),
        )?),
        None => None,
    };
    let abort = Arc::new(Abort::default());
    watch_signals(abort.clone(), journal.clone());
    Ok(Pipeline {
        assembler: loaded.assembler.clone(),
        transport: Arc::new(transport),
        pacer: Arc::new(if paced {
            Pacer::new(limits)
        } else {
            Pacer::none()
        }),
        day_cap: day_cap(campaign, &resumed, paced, clock.as_ref()),
        domains: Arc::new(if paced {
            DomainLimits::new(&limits.domains)
        } else {
            DomainLimits::new(&[])
        }),
        concurrency,
        clock,
        expected_rows: loaded.survey.rows,
        abort,
        journal,
        in_doubt: resumed.in_doubt,
        prior: Arc::new(resumed.prior),
        suppression: Arc::new(suppression),
        retry: campaign.retry,
        seed: seed(),
        candidates: loaded.candidates.clone(),
        verifier: verifier.map(Arc::new),
    })
}

/// Runs the pipeline into the report; a report that cannot be finished stops the run.
async fn deliver(
    pipeline: Pipeline,
    loaded: &Loaded,
    report_path: PathBuf,
    quiet: bool,
) -> anyhow::Result<(RunResult, PathBuf)> {
    let mut report = ReportWriter::create(&report_path)?;
    let mut progress = Progress::new(loaded.survey.valid, quiet);
    let mut result = pipeline
        .run(&loaded.campaign.recipients, &mut report, &mut progress)
        .await;
    let report_path = match report.finish() {
        Ok(p) => {
            // Late bounces that intake recorded stay `bounced` when a resume rewrites the report.
            if let Some(dir) = p.parent().filter(|_| p.ends_with("report.csv"))
                && let Err(e) = crate::intake::late::mark_report(dir)
            {
                tracing::warn!("the report's late bounces: {e:#}");
            }
            p
        }
        Err(e) => {
            result.stopped.get_or_insert(Stop::Report(e.to_string()));
            report_path
        }
    };
    Ok((result, report_path))
}

/// What was delivered, how fast, and what became of the rest.
fn summarize(
    campaign: &Campaign,
    t: &Tally,
    delivered_word: &str,
    started: Instant,
    report_path: &Path,
    dry_run_dir: Option<&Path>,
) {
    let secs = started.elapsed().as_secs_f64();
    outln!(
        "{}: {} {delivered_word} in {secs:.1} s ({:.1} msg/s)",
        campaign.id,
        t.delivered(),
        // The rate of this run's own messages: the journal's earlier ones cost nothing.
        t.delivered().saturating_sub(t.sent_earlier) as f64 / secs.max(1e-3)
    );
    if t.sent_earlier > 0 {
        outln!(
            "  ({} of them by earlier runs, from the journal)",
            t.sent_earlier
        );
    }
    outln!(
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
    outln!("  report: {}", report_path.display());
    if let Some(dir) = dry_run_dir {
        outln!("  messages: {}", dir.display());
    }
}

/// The exit code, and for a run that stopped, why and what to do.
fn finish(result: &RunResult, campaign: &Campaign, resume: &str) -> Exit {
    let fix = match &result.stopped {
        None if result.tally.undelivered() > 0 => return Exit::SomeFailed,
        None => return Exit::Success,
        Some(Stop::Interrupted) => {
            eprintln!(
                "mailshot: interrupted; the journal is synced. Resume with:\n  mailshot send {resume}"
            );
            return Exit::Stopped;
        }
        Some(Stop::Delivery(e)) => hint(e, campaign),
        Some(Stop::DayCap { resets_at, .. }) => {
            eprintln!(
                "mailshot: {}; the next run after {} continues where this one stopped:\n  mailshot send {resume}",
                result.stopped.as_ref().map(ToString::to_string).unwrap_or_default(),
                crate::clock::rfc3339(*resets_at)
            );
            return Exit::Stopped;
        }
        Some(Stop::Refusals { .. }) => "the relay answered but refused a run of recipients: check the envelope sender (campaign.return_path), the account's sending rights and limits at the relay, and the replies in the report; then run the same command to resume".into(),
        Some(Stop::Recipients(_)) => "fix the recipient file".into(),
        Some(Stop::Report(_)) => "free disk space or fix the state folder's permissions; the report lists every recipient it could record".into(),
        Some(Stop::Internal(_)) => "this is a bug in mailshot; the report lists what was done".into(),
        Some(Stop::Journal(_)) => JOURNAL_FIX.into(),
    };
    if let Some(stop) = &result.stopped {
        eprintln!(
            "mailshot: stopped: {stop}\n  fix: {fix}\n  then resume with: mailshot send {resume}"
        );
    }
    Exit::Stopped
}

const JOURNAL_FIX: &str = "free disk space or fix the state folder's permissions, then resume";

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

/// Seeds the retry jitter from the system's random source.
fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
}

/// One sentence on what to change, from the cause the transport gave the failure.
fn hint(e: &DeliveryError, campaign: &Campaign) -> String {
    match e.cause {
        Cause::Login => {
            let password_from = match &campaign.transport {
                TransportConfig::Smtp(s) => match &s.password {
                    Some(crate::secret::SecretSource::Env(v)) => {
                        format!("the environment variable {v}")
                    }
                    Some(crate::secret::SecretSource::File(p)) => {
                        format!("the file {}", p.display())
                    }
                    None => "smtp.password_env".into(),
                },
                TransportConfig::Outbox { .. } => String::new(),
            };
            format!(
                "the relay refused the login; check smtp.username and the password in {password_from}"
            )
        }
        Cause::AuthRequired => {
            "the relay requires authentication; set smtp.username and smtp.password_env".into()
        }
        Cause::Outbox => {
            "check that the outbox folder exists, is writable and has free space".into()
        }
        Cause::Certificate => "the relay's TLS certificate is not trusted for this host name; if the relay uses a private CA, point smtp.ca_file at it".into(),
        Cause::Tls => "the relay's TLS handshake failed; check smtp.tls (\"starttls\" for port 587, \"implicit\" for 465) and smtp.port".into(),
        Cause::Unreachable => {
            "check smtp.host and smtp.port, and that the relay is reachable from this machine"
                .into()
        }
        Cause::Journal => JOURNAL_FIX.into(),
        Cause::Reply => "see the relay's reply above".into(),
    }
}
