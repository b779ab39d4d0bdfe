//! `mailshot check`: the preflight audit and the content lint on their own, human or JSON:
//! the gate `send` passes through, without sending.

use std::sync::Arc;

use crate::cli::CheckArgs;
use crate::clock::Clock;
use crate::commands::gate::{Show, gate};
use crate::commands::{Exit, load};

pub async fn run(args: &CheckArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let loaded = load(&args.campaign, clock.clone())?;
    let show = Show::Check(args.format);
    let passed = gate(&loaded, &args.dns, &args.overrides, clock.as_ref(), &show).await?;
    Ok(if passed.is_some() {
        Exit::Success
    } else {
        Exit::SomeFailed
    })
}
