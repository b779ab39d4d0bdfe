//! One thin file per subcommand, the exit codes they return, and the loading steps that
//! `check`, `send` and `preview` share.

pub mod check;
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod gate;
pub mod init;
pub mod intake;
pub mod preview;
pub mod report;
pub mod send;
pub mod suppress;
pub mod unsubscribe;
pub mod verify;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::{DnsArgs, ImapArgs};
use crate::clock::Clock;
use crate::config::Campaign;
use crate::dns::{Dns, Overlay, Source};
use crate::message::{Assembler, Signer};
use crate::preflight::{self, Audit, Inputs};
use crate::recipients::RecipientReader;
use crate::survey::{Survey, survey};
use crate::template::Templates;
use crate::unsubscribe::Unsubscriber;

/// Process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// send: every valid recipient was sent. check: you may send.
    Success = 0,
    /// send: the run finished, but some recipients failed or were deferred.
    /// check: blocking findings.
    SomeFailed = 1,
    /// Nothing was sent: bad configuration or input, blocking preflight findings, or the
    /// relay could not be used. check: the audit could not run.
    CouldNotStart = 2,
    /// The run stopped part-way (authentication or TLS failure, unreadable input); the
    /// report says which recipients were not attempted.
    Stopped = 3,
}

/// A campaign with everything parsed and compiled once, and its recipients surveyed.
pub struct Loaded {
    pub campaign: Campaign,
    pub assembler: Arc<Assembler>,
    pub survey: Survey,
    /// The addresses that can be duplicates: every pass over the file remembers only these.
    pub candidates: Arc<crate::recipients::Candidates>,
}

/// The campaign's unsubscribe signer, if it has an [unsubscribe] table: its secret is read
/// here, once, for every command that signs or checks tokens.
pub fn unsubscriber(campaign: &Campaign) -> anyhow::Result<Option<Unsubscriber>> {
    campaign
        .unsubscribe
        .as_ref()
        .map(Unsubscriber::new)
        .transpose()
        .context("unsubscribe secret")
}

pub fn load(path: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Loaded> {
    load_shard(path, clock, None)
}

/// [`load`], seeing only the rows of `shard` (`send --shard`).
pub fn load_shard(
    path: &Path,
    clock: Arc<dyn Clock>,
    shard: Option<crate::shard::Shard>,
) -> anyhow::Result<Loaded> {
    let mut campaign = Campaign::load(path)?;
    campaign.recipients.shard = shard;
    let columns = RecipientReader::open(&campaign.recipients)?
        .headers()
        .clone();
    let templates = Templates::compile(&campaign)?;
    let signer = Signer::load(&campaign.dkim)?;
    let unsubscribe = unsubscriber(&campaign)?;
    let verp =
        crate::message::verp::Verp::new(&campaign).context("VERP key ([unsubscribe] secret)")?;
    let assembler = Arc::new(Assembler::new(
        &campaign,
        columns,
        templates,
        signer,
        unsubscribe,
        verp,
        clock,
    ));
    let candidates = Arc::new(crate::recipients::duplicate_candidates(
        &campaign.recipients,
    )?);
    let survey = survey(&campaign.recipients, &assembler, &candidates)?;
    Ok(Loaded {
        campaign,
        assembler,
        survey,
        candidates,
    })
}

/// Builds the audit's DNS from flags, falling back to campaign.toml's [preflight].
pub fn dns(campaign: &Campaign, args: &DnsArgs) -> anyhow::Result<Dns> {
    let nameserver = args
        .nameserver
        .clone()
        .or(campaign.preflight.nameserver.clone());
    let zone = args.zone.clone().or(campaign.preflight.zone.clone());
    dns_from(nameserver.as_deref(), zone.as_deref())
}

/// The DNS for a nameserver (`IP[:PORT]`, `none`, or the system resolver when absent) under
/// an optional zone overlay: the one resolver every lookup of a command goes through.
pub fn dns_from(nameserver: Option<&str>, zone: Option<&Path>) -> anyhow::Result<Dns> {
    let source = match nameserver {
        // Only the zone overlay answers: for planned records and fictional example domains.
        Some("none") => Source::Offline,
        Some(ns) => Source::nameserver(ns)?,
        None => Source::System,
    };
    let overlay = zone.map(Overlay::load).transpose()?;
    Ok(Dns::new(&source, overlay)?)
}

/// Runs the preflight on a loaded campaign.
pub async fn audit(
    loaded: &Loaded,
    dns: &Dns,
    clock: &dyn Clock,
    probe_tls: bool,
) -> anyhow::Result<Audit> {
    let first = loaded
        .survey
        .first
        .clone()
        .context("no valid recipient to build a sample message from")?;
    let visible_unsubscribe = !loaded
        .assembler
        .check(&first)?
        .iter()
        .any(|f| f.id == "lint.no-visible-unsubscribe");
    let unsubscribe_url = loaded.assembler.unsubscribe_url(&first);
    // A configured key mailshot refuses is a finding of the audit, not a reason to stop it.
    let sample = loaded.assembler.assemble_sample(first)?;
    let inputs = Inputs {
        recipients: loaded.survey.valid,
        campaign: &loaded.campaign,
        keys: loaded.assembler.keys(),
        sample: &sample.bytes,
        visible_unsubscribe,
        unsubscribe_url,
        sending_ips: loaded.campaign.preflight.sending_ips.clone(),
        probe_tls,
        now: clock.now(),
    };
    Ok(preflight::run(dns, &inputs).await)
}

/// The sources as typed: IMAP URLs checked now (a bad one is an error before anything runs).
pub fn sources(typed: &[String]) -> anyhow::Result<Vec<crate::mailbox::Source>> {
    typed
        .iter()
        .map(|s| crate::mailbox::Source::parse(s).map_err(anyhow::Error::from))
        .collect()
}

/// The mailbox reader's options: flags first, then campaign.toml's `[intake]`.
pub fn mailbox_options(
    args: &ImapArgs,
    cfg: Option<&crate::config::IntakeConfig>,
    max_bytes: u64,
    access: crate::mailbox::Access,
    move_to: Option<String>,
) -> crate::mailbox::Options {
    use crate::secret::SecretSource;
    let password = match (&args.password_env, &args.password_file) {
        (Some(var), _) => Some(SecretSource::Env(var.clone())),
        (None, Some(file)) => Some(SecretSource::File(file.clone())),
        (None, None) => cfg.and_then(|c| c.password.clone()),
    };
    let mark = match move_to.or_else(|| cfg.and_then(|c| c.move_to.clone())) {
        Some(folder) => crate::mailbox::Mark::Move(folder),
        None => crate::mailbox::Mark::Keyword(crate::mailbox::DEFAULT_KEYWORD.into()),
    };
    crate::mailbox::Options {
        max_bytes,
        access,
        mark,
        password,
        ca_file: args
            .ca_file
            .clone()
            .or_else(|| cfg.and_then(|c| c.ca_file.clone())),
    }
}
