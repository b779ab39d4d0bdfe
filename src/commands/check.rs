//! `mailshot check`: the preflight audit on its own, human or JSON.

use std::sync::Arc;

use crate::cli::{CheckArgs, Format};
use crate::clock::Clock;
use crate::commands::{Exit, audit, dns, load};
use crate::preflight::render;

pub async fn run(args: &CheckArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let loaded = load(&args.campaign, clock.clone())?;
    let dns = dns(&loaded.campaign, &args.dns)?;
    let audit = audit(&loaded, &dns, clock.as_ref(), true).await?;
    match args.format {
        Format::Human => print!("{}", render::human(&audit, &args.overrides)),
        Format::Json => println!("{}", render::json(&audit, &args.overrides)),
    }
    Ok(if audit.unresolved(&args.overrides).is_empty() {
        Exit::Success
    } else {
        Exit::SomeFailed
    })
}
