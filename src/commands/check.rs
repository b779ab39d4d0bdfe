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
    let lint = &loaded.survey.lint;
    match args.format {
        Format::Human => {
            print!("{}", render::human(&audit, &args.overrides));
            println!("\nContent lint ({} recipients)", loaded.survey.valid);
            let lines = lint.lines(loaded.survey.valid);
            if lines.is_empty() {
                println!("  no findings");
            }
            for l in lines {
                println!("  {l}");
            }
        }
        Format::Json => println!("{}", render::json(&audit, &args.overrides, Some(lint))),
    }
    let lint_blocks = lint.blocking(&loaded.campaign.lint.block).next().is_some();
    Ok(
        if audit.unresolved(&args.overrides).is_empty() && !lint_blocks {
            Exit::Success
        } else {
            Exit::SomeFailed
        },
    )
}
