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
    /// Audit the sending domain (SPF, DKIM, DMARC, alignment, relay TLS) before sending.
    Check(CheckArgs),
    /// Show chosen recipients' messages exactly as `send` would send them, with lint findings.
    Preview(PreviewArgs),
    /// Validate, audit, render, sign and deliver a campaign, then write a per-recipient report.
    Send(SendArgs),
    /// Grade received messages as the receiver saw them: authentication recomputed through
    /// DNS, format and content, with the blocking items of Gmail, Yahoo and Microsoft.
    Verify(VerifyArgs),
    /// Merge the reports of a campaign sent in shards into one, checking every row is there once.
    Report(ReportArgs),
    /// DKIM keys: generate one and print the record to publish.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// The DNS records a campaign needs, as a zone fragment.
    Dns {
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Read the mailbox bounces come back to (Maildir, mbox, imaps://): suppress hard
    /// bounces, complainers and mailto unsubscribes; count the rest.
    Intake(IntakeArgs),
    /// DMARC aggregate reports: who sends as your domain, and when the policy can tighten.
    Dmarc {
        #[command(subcommand)]
        command: DmarcCommand,
    },
    /// One-click unsubscribe (RFC 8058): the endpoint a campaign's [unsubscribe] url names.
    Unsubscribe {
        #[command(subcommand)]
        command: UnsubscribeCommand,
    },
    /// A campaign's suppression store: list, add, remove, import and export entries.
    Suppress {
        #[command(subcommand)]
        command: SuppressCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnsubscribeCommand {
    /// Answer one-click POSTs and unsubscribe pages for these campaigns, recording each
    /// unsubscribe in the campaign's suppression store. Stops cleanly on SIGTERM.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Loopback by default, for a reverse proxy in front.
    #[arg(long, default_value = "127.0.0.1:8025", value_name = "IP:PORT")]
    pub listen: std::net::SocketAddr,
    /// Campaign files whose [unsubscribe] url this server answers.
    #[arg(required = true, value_name = "CAMPAIGN.TOML")]
    pub campaigns: Vec<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address (only when something in front encrypts).
    #[arg(long)]
    pub allow_plain_http: bool,
    /// Seconds a client gets to send its request headers.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub header_timeout: u64,
    /// Seconds a client gets to send its request body.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub body_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Print the entries in force.
    List(SuppressListArgs),
    /// Add addresses or @domains.
    Add(SuppressAddArgs),
    /// Take addresses or @domains off the list.
    Remove(SuppressRemoveArgs),
    /// Add every entry of a plain text list (one per line, `#` comments).
    Import(SuppressImportArgs),
    /// Print the entries in force as a plain text list that `import` reads back.
    Export(SuppressExportArgs),
}

#[derive(Debug, Args)]
pub struct SuppressListArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasonArg {
    Unsubscribe,
    HardBounce,
    Complaint,
    Manual,
}

#[derive(Debug, Args)]
pub struct SuppressAddArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// Addresses, or @domain for a whole domain.
    #[arg(required = true)]
    pub entries: Vec<String>,
    #[arg(long, value_enum, default_value = "manual")]
    pub reason: ReasonArg,
}

#[derive(Debug, Args)]
pub struct SuppressRemoveArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// Addresses, or @domain, exactly as listed.
    #[arg(required = true)]
    pub entries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SuppressImportArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// The text list to import.
    pub file: PathBuf,
    /// The reason for entries whose comment names none (default: manual).
    #[arg(long, value_enum)]
    pub reason: Option<ReasonArg>,
}

#[derive(Debug, Args)]
pub struct SuppressExportArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Write a new private key (mode 600, never over an existing file) and print its record.
    Keygen(KeygenArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    Ed25519,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The signing domain (d=).
    #[arg(long)]
    pub domain: String,
    /// The selector (s=); the record goes at <selector>._domainkey.<domain>.
    #[arg(long)]
    pub selector: String,
    #[arg(long, value_enum, default_value = "rsa2048")]
    pub algorithm: KeyAlgorithm,
    /// Where to write the private key (default: <selector>.<domain>.pem in this folder).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Print every record this campaign needs (SPF, DKIM, DMARC, optionally TLS-RPT and
    /// MTA-STS) as a zone fragment that `check --zone` can audit.
    Records(RecordsArgs),
}

#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Also print TLS-RPT and MTA-STS records.
    #[arg(long)]
    pub tls_reporting: bool,
}

#[derive(Debug, Subcommand)]
pub enum DmarcCommand {
    /// Summarize aggregate reports: XML, .xml.gz, .zip, .eml or a Maildir of report mails.
    Report(DmarcReportArgs),
}

#[derive(Debug, Args)]
pub struct DmarcReportArgs {
    /// Files, folders (searched recursively; Maildirs included), mbox files, or IMAP
    /// mailboxes (imaps://USER@HOST[:PORT]/MAILBOX, or imap:// for STARTTLS).
    #[arg(required = true)]
    pub paths: Vec<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[command(flatten)]
    pub imap: ImapArgs,
}

/// How to log in to an IMAP source: the password from the environment or a file, never the
/// command line; a private CA for a server whose certificate it signed.
#[derive(Debug, Args, Clone, Default)]
pub struct ImapArgs {
    /// The environment variable that holds the IMAP password.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// A file that holds the IMAP password.
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the IMAP server, besides the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IntakeArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// Maildirs, folders, mbox files or IMAP mailboxes (imaps://USER@HOST[:PORT]/MAILBOX;
    /// imap:// requires STARTTLS). An @ in USER is written %40.
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Classify and report; suppress nothing, record nothing, mark nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Move processed IMAP messages to this folder (created if missing) instead of adding
    /// the $MailshotProcessed keyword.
    #[arg(long, value_name = "FOLDER")]
    pub move_to: Option<String>,
    #[command(flatten)]
    pub imap: ImapArgs,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// The recipient on this row of the CSV (the header is row 1). Repeatable.
    #[arg(long)]
    pub row: Vec<u64>,
    /// The recipient with this address (case-insensitive). Repeatable.
    #[arg(long)]
    pub email: Vec<String>,
    /// N recipients spread evenly over the list.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Write a browsable folder: each message as .eml, .html and .txt, and an index.html.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Where the preflight gets its DNS answers; flags override campaign.toml's [preflight].
#[derive(Debug, Args, Clone, Default)]
pub struct DnsArgs {
    /// Ask this nameserver (IP or IP:PORT) instead of the system resolver; `none` asks no DNS
    /// at all, so only the zone overlay answers.
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,
    /// A zone file of records you are about to publish: its names are answered from the file,
    /// everything else from DNS.
    #[arg(long, value_name = "FILE")]
    pub zone: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Treat this blocking finding (by id, e.g. dmarc.policy) as accepted. Repeatable.
    #[arg(long = "override", value_name = "ID", value_parser = crate::preflight::finding::parse_override)]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Received messages: .eml files, folders (Maildirs included) searched recursively, mbox
    /// files, or IMAP mailboxes (imaps://USER@HOST[:PORT]/MAILBOX, or imap:// for STARTTLS),
    /// read without marking anything.
    #[arg(required = true, value_name = "received.eml | Maildir | imaps://...")]
    pub inputs: Vec<String>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub imap: ImapArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to create (it may exist but must not already hold a campaign.toml).
    pub dir: PathBuf,
    /// The From domain to write into the scaffold.
    #[arg(long, default_value = "news.example.com")]
    pub domain: String,
}

#[derive(Debug, Args, Clone)]
pub struct SendArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
    /// Do everything except SMTP delivery: messages are written to
    /// <state_dir>/<id>/dry-run/ and the report says dry-run, never sent.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Send despite this blocking preflight finding (by id). Repeatable; recorded in
    /// <state_dir>/<id>/preflight.json.
    #[arg(long = "override", value_name = "ID", value_parser = crate::preflight::finding::parse_override)]
    pub overrides: Vec<String>,
    /// Recipients an interrupted run left in flight may or may not have received the message:
    /// `resend` them (same Message-ID) or `skip` them (reported as in doubt).
    #[arg(long, value_enum, value_name = "resend|skip")]
    pub in_doubt: Option<InDoubtArg>,
    /// Resume even though the recipient file or the templates changed since the journal began.
    #[arg(long)]
    pub accept_changes: bool,
    /// Before the campaign, send one copy to this address (repeatable), to check a real
    /// delivery with `mailshot verify`. Seeds are never journaled, reported, counted or
    /// suppressed.
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// Send only shard K of N (1-based): the rows whose address hashes there. Run every shard,
    /// on one machine or several; each keeps its journal, lock and report in
    /// <state_dir>/<id>/shard-K-of-N/, and `mailshot report` merges them.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::shard::Shard>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Path to campaign.toml.
    pub campaign: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InDoubtArg {
    Resend,
    Skip,
}
