//! The command line as typed: clap definitions only. Commands resolve these into settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mailshot",
    version,
    about = "Send bulk email campaigns from your own domain: DKIM-signed, over TLS, paced, resumable"
)]
pub struct Cli {
    /// No progress output; only the summary and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a campaign folder: campaign.toml, recipients.csv, templates and a DKIM key.
    Init(InitArgs),
    /// Validate, render, sign and deliver a campaign, then write a per-recipient report.
    Send(SendArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create (it may exist but must not already hold a campaign.toml).
    pub dir: PathBuf,
    /// The From domain to write into the scaffold.
    #[arg(long, default_value = "news.example.com")]
    pub domain: String,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// Do everything except SMTP delivery: messages are written to
    /// <state_dir>/<id>/dry-run/ and the report says dry-run, never sent.
    #[arg(long)]
    pub dry_run: bool,
}
