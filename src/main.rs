//! Start-up and the exit code: parse the command line, set up logging and the runtime, run
//! one subcommand, print any error chain once.

// First, so its `outln!` and `out!` macros are in scope in every module below.
#[macro_use]
mod terminal;

mod address;
mod cli;
mod clock;
mod commands;
mod config;
mod dmarc;
mod dmarc_report;
mod dns;
mod files;
mod intake;
mod keygen;
mod lint;
mod mailbox;
mod message;
mod preflight;
mod progress;
mod providers;
mod recipients;
mod report;
mod secret;
mod send;
mod serve;
mod shard;
mod suppression;
mod survey;
mod template;
mod tls;
mod unsubscribe;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};
use commands::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(&cli) {
        Ok(exit) => ExitCode::from(exit as u8),
        // The reader of our output went away (`| head`): not a failure, as in ripgrep.
        Err(e) if terminal::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailshot: error: {e:#}");
            ExitCode::from(Exit::CouldNotStart as u8)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<Exit> {
    let clock = clock::from_env()?;
    match &cli.command {
        Command::Init(args) => {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret)
                .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
            commands::init::run(args, &secret)
        }
        Command::Check(args) => runtime()?.block_on(commands::check::run(args, clock)),
        Command::Verify(args) => runtime()?.block_on(commands::verify::run(args)),
        Command::Preview(args) => commands::preview::run(args, clock),
        Command::Intake(args) => commands::intake::run(args, cli.quiet, clock),
        Command::Report(args) => commands::report::run(args),
        Command::Dmarc {
            command: cli::DmarcCommand::Report(args),
        } => commands::dmarc::run(args, cli.quiet),
        Command::Dkim {
            command: cli::DkimCommand::Keygen(args),
        } => commands::dkim::run(args),
        Command::Dns {
            command: cli::DnsCommand::Records(args),
        } => runtime()?.block_on(commands::dns::run(args, clock)),
        Command::Unsubscribe {
            command: cli::UnsubscribeCommand::Serve(args),
        } => commands::unsubscribe::run(args, clock),
        Command::Suppress { command } => commands::suppress::run(command, clock),
        Command::Send(args) => {
            // On a worker thread rather than this one, which block_on would make an extra
            // thread for the pipeline's hand-offs to wake.
            let (args, quiet) = (args.clone(), cli.quiet);
            runtime()?.block_on(async move {
                tokio::spawn(async move { commands::send::run(&args, quiet, clock).await }).await?
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs and CI output stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
