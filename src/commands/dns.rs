//! `mailshot dns records`: the records a campaign needs, as a zone fragment that `check
//! --zone` can audit before anything is published.

use std::sync::Arc;

use crate::cli::RecordsArgs;
use crate::clock::Clock;
use crate::commands::{self, Exit};
use crate::config::Campaign;
use crate::message::Signer;
use crate::preflight::{records, sending_addresses};

pub async fn run(args: &RecordsArgs, _clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let campaign = Campaign::load(&args.campaign)?;
    let signer = Signer::load(&campaign.dkim)?;
    let dns = commands::dns(&campaign, &args.dns)?;
    let relay = sending_addresses(&dns, &campaign, &campaign.preflight.sending_ips).await;
    out!(
        "{}",
        records::fragment(&dns, &campaign, signer.keys(), &relay, args.tls_reporting).await
    );
    Ok(Exit::Success)
}
