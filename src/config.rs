//! campaign.toml: what the user wrote (`raw`), checked once and resolved into a [`Campaign`].
//!
//! Like ripgrep's low/high args split: the serde structs mirror the file exactly and reject
//! unknown keys; [`Campaign`] holds what the program will do, with absolute paths and parsed
//! addresses. Secrets are not read here, only where they are needed (see [`SecretSource`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::Address;
use lettre::message::Mailbox;

use crate::address::MAX_LOCAL_PART;
use crate::secret::SecretSource;

/// The most that VERP (`[campaign] verp`) appends to the return path's local part: `+`, a
/// row of up to 10 digits, `-` and a 16-character MAC. The tag itself is made in
/// `message::verp`, which checks that it fits this.
pub const VERP_SUFFIX_MAX: usize = 1 + 10 + 1 + 16;

/// Why a campaign file could not be used. Every variant names the file; `Invalid` also names
/// the key, so the user knows which line to edit.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// toml's message carries the line, the column and the offending key.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    /// A bad value whose place in the file is known: the line the user has to edit.
    #[error("{path}, line {line}: `{key}`: {message}")]
    InvalidAt {
        path: PathBuf,
        line: usize,
        key: &'static str,
        message: String,
    },
}

mod raw {
    //! The file as written. `deny_unknown_fields` everywhere: a misspelt key must be an error,
    //! not a silently ignored setting.
    use serde::Deserialize;
    use toml::Spanned;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub campaign: Campaign,
        pub templates: Templates,
        pub recipients: Recipients,
        #[serde(default)]
        pub dkim: Vec<Dkim>,
        /// One `[smtp]` table or several `[[smtp]]` tables.
        #[serde(default, deserialize_with = "super::relays::one_or_many")]
        pub smtp: Vec<Spanned<Smtp>>,
        pub outbox: Option<Outbox>,
        #[serde(default)]
        pub limits: Limits,
        pub unsubscribe: Option<Unsubscribe>,
        #[serde(default)]
        pub preflight: Preflight,
        pub suppression: Option<Suppression>,
        #[serde(default)]
        pub retry: Retry,
        #[serde(default)]
        pub lint: Lint,
        #[serde(default)]
        pub intake: Intake,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Intake {
        pub soft_bounce_limit: Option<u32>,
        pub password_env: Option<String>,
        pub password_file: Option<String>,
        pub ca_file: Option<String>,
        pub move_to: Option<String>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Lint {
        pub max_message_kb: Option<usize>,
        #[serde(default)]
        pub block: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Suppression {
        pub file: String,
        #[serde(default)]
        pub add_permanent_failures: bool,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Retry {
        pub attempts: Option<u32>,
        pub first_delay_secs: Option<u64>,
        pub max_delay_secs: Option<u64>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Preflight {
        pub nameserver: Option<String>,
        pub zone: Option<String>,
        #[serde(default)]
        pub sending_ips: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Campaign {
        pub id: String,
        /// Spanned, so a bad address can be reported with its line.
        pub from: Spanned<String>,
        pub reply_to: Option<Spanned<String>>,
        pub return_path: Option<Spanned<String>>,
        pub subject: String,
        pub state_dir: Option<String>,
        pub list_id: Option<String>,
        pub feedback_id: Option<String>,
        /// VERP: a per-recipient envelope sender, `<local>+<tag>@<domain>`.
        #[serde(default)]
        pub verp: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Templates {
        pub text: Option<String>,
        pub html: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Recipients {
        pub file: String,
        #[serde(default = "default_address_column")]
        pub address_column: String,
        pub name_column: Option<String>,
    }

    fn default_address_column() -> String {
        "email".into()
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dkim {
        pub domain: String,
        pub selector: String,
        pub private_key: String,
    }

    #[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
    #[serde(rename_all = "lowercase")]
    pub enum Tls {
        Starttls,
        Implicit,
        None,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Smtp {
        /// Names the relay in the report and in messages; the host when left out.
        pub name: Option<Spanned<String>>,
        /// Share of the messages among relays of the same priority (default 1).
        pub weight: Option<Spanned<u32>>,
        /// Lower first: a higher priority is used only while every lower one is benched.
        pub priority: Option<u32>,
        pub per_second: Option<u32>,
        pub per_hour: Option<u32>,
        /// The addresses this relay sends from, for its SPF check (`preflight.sending_ips`
        /// when left out).
        #[serde(default)]
        pub sending_ips: Vec<Spanned<String>>,
        pub host: String,
        pub port: Option<u16>,
        pub tls: Tls,
        pub username: Option<String>,
        pub password_env: Option<String>,
        pub password_file: Option<String>,
        pub ca_file: Option<String>,
        pub pool_size: Option<u32>,
        pub timeout_secs: Option<u64>,
        pub helo_name: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Outbox {
        pub dir: String,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Limits {
        pub per_second: Option<u32>,
        pub per_hour: Option<u32>,
        pub per_day: Option<u32>,
        pub concurrency: Option<u32>,
        pub max_field_kb: Option<u64>,
        /// Per destination domain (and its provider group): `"gmail.com" = { per_hour = 500 }`.
        #[serde(default)]
        pub domains: std::collections::BTreeMap<Spanned<String>, DomainLimit>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DomainLimit {
        pub per_second: Option<u32>,
        pub per_hour: Option<u32>,
        pub per_day: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Unsubscribe {
        pub url: Option<String>,
        pub mailto: Option<String>,
        pub secret_env: Option<String>,
        pub secret_file: Option<String>,
        pub previous_secret_env: Option<String>,
        pub previous_secret_file: Option<String>,
        pub previous_until: Option<String>,
    }
}

mod relays;

pub(crate) use raw::Tls;
pub use relays::RelayConfig;

/// A campaign, resolved: what `send`, `preview` and `check` act on.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The campaign file itself, for messages and for the resume command.
    pub path: PathBuf,
    /// A stable name: it goes into Message-IDs and state paths, so it must not change between
    /// a run and its resume.
    pub id: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The envelope sender (MAIL FROM, which becomes Return-Path). With `verp`, each message's
    /// is `<its local part>+<tag>@<its domain>` instead (`message::verp`).
    pub return_path: Address,
    /// `[campaign] verp`: a per-recipient, HMAC-tagged envelope sender, so any bounce names
    /// its recipient. Needs the `[unsubscribe]` secret, which keys the tag.
    pub verp: bool,
    /// Subject template source.
    pub subject: String,
    /// The List-Id header value (RFC 2919), `Name <label.domain>`.
    pub list_id: Option<String>,
    /// The Feedback-ID header value (Gmail's feedback loop), e.g. `campaign:customer:mailshot`.
    pub feedback_id: Option<String>,
    pub text_template: Option<PathBuf>,
    pub html_template: Option<PathBuf>,
    pub recipients: RecipientSource,
    pub dkim: Vec<DkimKeyConfig>,
    pub transport: TransportConfig,
    /// Every relay, in file order; the first is also `transport`'s (empty for an outbox).
    pub relays: Vec<RelayConfig>,
    pub limits: Limits,
    pub unsubscribe: Option<UnsubscribeConfig>,
    /// Where reports (and later the journal) live: `<state_dir>/<id>/`.
    pub state_dir: PathBuf,
    pub preflight: PreflightConfig,
    pub suppression: Option<SuppressionConfig>,
    pub retry: RetryPolicy,
    pub lint: LintSettings,
    pub intake: IntakeConfig,
}

/// `[intake]`: how `mailshot intake` reads the mailbox and when soft bounces suppress.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Soft bounces in this many distinct campaigns suppress the address.
    pub soft_bounce_limit: usize,
    /// The IMAP password, as `[smtp]`'s: an environment variable or a file.
    pub password: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    /// Move processed IMAP messages to this folder instead of flagging them.
    pub move_to: Option<String>,
}

/// Content lint settings: an optional size limit, and the rule ids that should stop `send`
/// (none by default: lint findings are advice).
#[derive(Debug, Clone, Default)]
pub struct LintSettings {
    pub max_message_bytes: Option<usize>,
    pub block: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SuppressionConfig {
    pub file: PathBuf,
    /// Append recipients the relay refused as unknown (5.1.x) to the file.
    pub add_permanent_failures: bool,
}

/// Transient failures are retried within the run: `attempts` in all, waiting
/// `first_delay * 2^(n-1)` (with jitter) up to `max_delay` between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

/// Where the audit's DNS answers come from, and what it knows about the relay.
#[derive(Debug, Clone, Default)]
pub struct PreflightConfig {
    /// `IP[:PORT]` of the one nameserver to ask; the system resolver when unset.
    pub nameserver: Option<String>,
    /// A zone file of records about to be published, answered instead of DNS for its names.
    pub zone: Option<PathBuf>,
    /// The addresses the relay sends from, for the SPF and reverse-DNS checks.
    pub sending_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct RecipientSource {
    pub file: PathBuf,
    pub address_column: String,
    pub name_column: Option<String>,
    /// A CSV cell longer than this makes its row invalid (`limits.max_field_kb`).
    pub max_field_bytes: usize,
    /// `send --shard K/N`: every reader of the file sees only the shard's rows. Not in
    /// campaign.toml: it is chosen per run (per machine).
    pub shard: Option<crate::shard::Shard>,
}

/// The caps on numbers a campaign file sets (the README's "Limits" table). Each keeps a typo
/// or a hostile value from becoming gigabytes of memory, an overflow or a panic.
pub mod caps {
    /// `limits.concurrency` (and `smtp.pool_size`): SMTP connections at once. Each costs a
    /// sender task and its buffers; real relays allow tens.
    pub const MAX_CONCURRENCY: u32 = 1_000;
    /// `retry.first_delay_secs` and `retry.max_delay_secs`: one day. A longer wait is not a
    /// retry; it also keeps the back-off arithmetic far from overflowing.
    pub const MAX_RETRY_DELAY_SECS: u64 = 86_400;
    /// `retry.attempts`.
    pub const MAX_RETRY_ATTEMPTS: u32 = 100;
    /// `smtp.timeout_secs`: one hour.
    pub const MAX_TIMEOUT_SECS: u64 = 3_600;
    /// `lint.max_message_kb`: 1 GiB, far above any relay's message size limit.
    pub const MAX_MESSAGE_KB: usize = 1 << 20;
    /// `limits.max_field_kb`: the default, and the largest value allowed (the row cap, see
    /// `recipients::MAX_ROW_BYTES`, must hold at least one such field).
    pub const DEFAULT_FIELD_KB: u64 = 64;
    pub const MAX_FIELD_KB: u64 = 8 << 10;
}

#[derive(Debug, Clone)]
pub struct DkimKeyConfig {
    pub domain: String,
    pub selector: String,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone)]
pub enum TransportConfig {
    Smtp(SmtpConfig),
    Outbox { dir: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub pool_size: u32,
    pub timeout: Duration,
    pub helo_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub per_second: Option<NonZeroU32>,
    pub per_hour: Option<NonZeroU32>,
    /// The warm-up cap: messages per UTC day, across runs (counted from the journal).
    pub per_day: Option<NonZeroU32>,
    pub concurrency: usize,
    /// Per provider group, across relays.
    pub domains: Vec<crate::providers::DomainLimit>,
}

#[derive(Debug, Clone)]
pub struct UnsubscribeConfig {
    /// An https URL: the one-click (RFC 8058) endpoint and the visible link.
    pub url: Option<String>,
    pub mailto: Option<Address>,
    pub secret: SecretSource,
    /// A secret being rotated out: tokens made with it are still accepted until the time.
    pub previous: Option<PreviousSecret>,
}

#[derive(Debug, Clone)]
pub struct PreviousSecret {
    pub secret: SecretSource,
    pub until: std::time::SystemTime,
}

impl Campaign {
    /// Reads and resolves a campaign file. Relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Campaign, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Campaign::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Campaign, ConfigError> {
        let file: raw::File = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: parse_message(text, &e),
        })?;
        Resolver { path, text }.resolve(file)
    }

    /// The folder that holds this campaign's report (and journal).
    pub fn run_dir(&self) -> PathBuf {
        self.state_dir.join(&self.id)
    }

    /// The domain of the From address: DMARC's identifier, and the right-hand side of our
    /// Message-IDs.
    pub fn sender_domain(&self) -> &str {
        self.from.email.domain()
    }
}

struct Resolver<'a> {
    path: &'a Path,
    /// The file's text, to turn a value's span into a line number.
    text: &'a str,
}

impl Resolver<'_> {
    /// An error at the line holding byte `at` of the file.
    fn invalid_at(&self, key: &'static str, at: usize, message: impl Into<String>) -> ConfigError {
        let before = self.text.get(..at).unwrap_or_default();
        ConfigError::InvalidAt {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            key,
            message: message.into(),
        }
    }

    fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key,
            message: message.into(),
        }
    }

    fn file_path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// Parses `Name <user@domain>` or `user@domain` with the rule every recipient gets
    /// ([`crate::address::parse`]); an internationalized domain is turned into its ASCII
    /// (punycode) form, which is what SMTP and DKIM carry. The error names the value's line.
    fn mailbox(
        &self,
        key: &'static str,
        value: &toml::Spanned<String>,
    ) -> Result<Mailbox, ConfigError> {
        let (email, name) = crate::address::parse(value.get_ref())
            .map_err(|why| self.invalid_at(key, value.span().start, why))?;
        Ok(Mailbox::new(name, email))
    }

    /// A header value written by the user: one line of printable ASCII.
    fn header_text(&self, key: &'static str, v: &str) -> Result<String, ConfigError> {
        let v = v.trim();
        if v.is_empty() || v.len() > 200 || !v.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(self.invalid(
                key,
                "must be one line of printable ASCII, at most 200 characters",
            ));
        }
        Ok(v.to_owned())
    }

    /// RFC 2919: `[phrase] <list-label.namespace>`; a bare `label.domain` gets the brackets.
    fn list_id(&self, v: &str) -> Result<String, ConfigError> {
        let v = self.header_text("campaign.list_id", v)?;
        let (phrase, id) = match (v.rfind('<'), v.strip_suffix('>')) {
            (Some(lt), Some(_)) => (v[..lt].trim(), &v[lt + 1..v.len() - 1]),
            _ => ("", v.as_str()),
        };
        let ok = id.contains('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(self.invalid(
                "campaign.list_id",
                "must be `Name <label.your-domain>` (RFC 2919), e.g. \"News <news.example.com>\"",
            ));
        }
        Ok(if phrase.is_empty() {
            format!("<{id}>")
        } else {
            format!("{phrase} <{id}>")
        })
    }

    /// A domain name in lowercase ASCII form, checked label by label.
    fn domain(&self, key: &'static str, value: &str) -> Result<String, ConfigError> {
        crate::address::domain_name(value).map_err(|m| self.invalid(key, m))
    }

    fn resolve(&self, f: raw::File) -> Result<Campaign, ConfigError> {
        let id = self.id(&f.campaign.id)?;
        let from = self.mailbox("campaign.from", &f.campaign.from)?;
        let reply_to = f
            .campaign
            .reply_to
            .as_ref()
            .map(|v| self.mailbox("campaign.reply_to", v))
            .transpose()?;
        let return_path = match f.campaign.return_path.as_ref() {
            Some(v) => self.mailbox("campaign.return_path", v)?.email,
            None => from.email.clone(),
        };
        if f.campaign.subject.trim().is_empty() {
            return Err(self.invalid("campaign.subject", "must not be empty"));
        }
        let list_id = f
            .campaign
            .list_id
            .as_deref()
            .map(|v| self.list_id(v))
            .transpose()?;
        let feedback_id = f
            .campaign
            .feedback_id
            .as_deref()
            .map(|v| self.header_text("campaign.feedback_id", v))
            .transpose()?;

        if f.templates.text.is_none() && f.templates.html.is_none() {
            return Err(self.invalid(
                "templates",
                "set `text`, `html` or both: a campaign needs a body",
            ));
        }

        let dkim = self.dkim(f.dkim)?;
        let limits = self.limits(&f.limits)?;
        let relays = self.relays(f.smtp, limits.concurrency)?;
        let transport = self.transport(relays.first(), f.outbox)?;
        let unsubscribe = f.unsubscribe.map(|u| self.unsubscribe(u)).transpose()?;
        let preflight = self.preflight(f.preflight)?;
        let retry = self.retry(&f.retry)?;
        let suppression = f.suppression.map(|s| SuppressionConfig {
            file: self.file_path(&s.file),
            add_permanent_failures: s.add_permanent_failures,
        });
        let lint = self.lint(f.lint)?;

        let intake = self.intake(f.intake)?;
        if f.campaign.verp {
            self.verp(&return_path, unsubscribe.is_some())?;
        }
        Ok(Campaign {
            path: self.path.to_owned(),
            id,
            from,
            reply_to,
            return_path,
            verp: f.campaign.verp,
            subject: f.campaign.subject,
            list_id,
            feedback_id,
            text_template: f.templates.text.as_deref().map(|p| self.file_path(p)),
            html_template: f.templates.html.as_deref().map(|p| self.file_path(p)),
            recipients: RecipientSource {
                file: self.file_path(&f.recipients.file),
                address_column: f.recipients.address_column,
                name_column: f.recipients.name_column,
                max_field_bytes: self.max_field_bytes(&f.limits)?,
                shard: None,
            },
            dkim,
            transport,
            relays,
            limits,
            unsubscribe,
            state_dir: self.file_path(f.campaign.state_dir.as_deref().unwrap_or(".mailshot")),
            preflight,
            suppression,
            retry,
            lint,
            intake,
        })
    }

    /// VERP's preconditions: a key for the tag, and room for the tag in the local part.
    fn verp(&self, return_path: &Address, has_secret: bool) -> Result<(), ConfigError> {
        if !has_secret {
            return Err(self.invalid(
                "campaign.verp",
                "needs an [unsubscribe] table with secret_env or secret_file: that HMAC key authenticates the VERP tag, so a forged bounce cannot name a recipient",
            ));
        }
        let local = return_path.user();
        if local.starts_with('"') {
            return Err(self.invalid(
                "campaign.verp",
                "needs a return_path whose local part is not quoted (e.g. bounces@your-domain): the tag is appended to it",
            ));
        }
        let room = MAX_LOCAL_PART - VERP_SUFFIX_MAX;
        if local.len() > room {
            return Err(self.invalid(
                "campaign.verp",
                format!(
                    "the return_path's local part {local:?} is {} octets; VERP appends up to {} (+tag), and SMTP allows {} in all (RFC 5321 4.5.3.1.1): use a local part of at most {room} octets, e.g. bounces@",
                    local.len(),
                    VERP_SUFFIX_MAX,
                    MAX_LOCAL_PART
                ),
            ));
        }
        Ok(())
    }

    fn id(&self, raw: &str) -> Result<String, ConfigError> {
        let id = raw.trim().to_owned();
        if !id.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(self.invalid(
                "campaign.id",
                format!("{id:?} must start with a letter or digit and use only letters, digits, '-', '_' and '.': it becomes part of every Message-ID and of file names"),
            ));
        }
        Ok(id)
    }

    fn dkim(&self, keys: Vec<raw::Dkim>) -> Result<Vec<DkimKeyConfig>, ConfigError> {
        if keys.is_empty() {
            return Err(self.invalid(
                "dkim",
                "add at least one [[dkim]] table (domain, selector, private_key): Gmail, Yahoo and Microsoft reject unsigned bulk mail",
            ));
        }
        keys.into_iter()
            .map(|d| {
                let domain = self.domain("dkim.domain", &d.domain)?;
                let selector = d.selector.trim().to_ascii_lowercase();
                if !crate::address::is_dns_name(&selector) {
                    return Err(self.invalid(
                        "dkim.selector",
                        format!("{:?} is not a DNS label (letters, digits, '-', '_', dots between labels)", d.selector),
                    ));
                }
                Ok(DkimKeyConfig {
                    domain,
                    selector,
                    private_key: self.file_path(&d.private_key),
                })
            })
            .collect()
    }

    fn limits(&self, l: &raw::Limits) -> Result<Limits, ConfigError> {
        let concurrency = l.concurrency.unwrap_or(4);
        if concurrency == 0 {
            return Err(self.invalid("limits.concurrency", "must be at least 1"));
        }
        if concurrency > caps::MAX_CONCURRENCY {
            return Err(self.invalid(
                "limits.concurrency",
                format!("at most {} connections at once", caps::MAX_CONCURRENCY),
            ));
        }

        if l.per_second.is_some_and(|n| n > 100_000) {
            return Err(self.invalid(
                "limits.per_second",
                "at most 100000; leave it out for no limit",
            ));
        }
        Ok(Limits {
            per_second: nonzero(self, "limits.per_second", l.per_second)?,
            per_hour: nonzero(self, "limits.per_hour", l.per_hour)?,
            per_day: nonzero(self, "limits.per_day", l.per_day)?,
            concurrency: concurrency as usize,
            domains: self.domain_limits(&l.domains)?,
        })
    }

    /// `limits.max_field_kb`, in bytes: it goes to the recipient reader, not the pacer.
    fn max_field_bytes(&self, l: &raw::Limits) -> Result<usize, ConfigError> {
        let kb = l.max_field_kb.unwrap_or(caps::DEFAULT_FIELD_KB);
        if !(1..=caps::MAX_FIELD_KB).contains(&kb) {
            return Err(self.invalid(
                "limits.max_field_kb",
                format!("must be from 1 to {} (KB per CSV cell)", caps::MAX_FIELD_KB),
            ));
        }
        Ok((kb * 1024) as usize)
    }

    fn retry(&self, r: &raw::Retry) -> Result<RetryPolicy, ConfigError> {
        let retry = RetryPolicy {
            attempts: r.attempts.unwrap_or(3),
            first_delay: Duration::from_secs(r.first_delay_secs.unwrap_or(10)),
            max_delay: Duration::from_secs(r.max_delay_secs.unwrap_or(300)),
        };
        if !(1..=caps::MAX_RETRY_ATTEMPTS).contains(&retry.attempts) {
            return Err(self.invalid(
                "retry.attempts",
                format!("must be from 1 (no retry) to {}", caps::MAX_RETRY_ATTEMPTS),
            ));
        }
        for (key, delay) in [
            ("retry.first_delay_secs", retry.first_delay),
            ("retry.max_delay_secs", retry.max_delay),
        ] {
            if delay.as_secs() > caps::MAX_RETRY_DELAY_SECS {
                return Err(self.invalid(
                    key,
                    format!("at most {} (one day)", caps::MAX_RETRY_DELAY_SECS),
                ));
            }
        }
        Ok(retry)
    }

    fn transport(
        &self,
        smtp: Option<&RelayConfig>,
        outbox: Option<raw::Outbox>,
    ) -> Result<TransportConfig, ConfigError> {
        match (smtp, outbox) {
            (Some(_), Some(_)) => Err(self.invalid(
                "smtp",
                "both [smtp] and [outbox] are set; keep the one this campaign should use",
            )),
            (None, None) => Err(self.invalid(
                "smtp",
                "no transport: add an [smtp] table (or [outbox] to write .eml files)",
            )),
            (None, Some(o)) => Ok(TransportConfig::Outbox {
                dir: self.file_path(&o.dir),
            }),
            (Some(r), None) => Ok(TransportConfig::Smtp(r.smtp.clone())),
        }
    }

    fn lint(&self, l: raw::Lint) -> Result<LintSettings, ConfigError> {
        for id in &l.block {
            if !crate::lint::RULES.iter().any(|r| r.id == id) {
                return Err(self.invalid(
                    "lint.block",
                    format!(
                        "{id:?} is not a lint rule; the rules are {}",
                        crate::lint::RULES
                            .iter()
                            .map(|r| r.id)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        if l.max_message_kb.is_some_and(|kb| kb > caps::MAX_MESSAGE_KB) {
            return Err(self.invalid(
                "lint.max_message_kb",
                format!("at most {} (1 GiB)", caps::MAX_MESSAGE_KB),
            ));
        }
        Ok(LintSettings {
            max_message_bytes: l.max_message_kb.map(|kb| kb.saturating_mul(1024)),
            block: l.block,
        })
    }

    fn preflight(&self, p: raw::Preflight) -> Result<PreflightConfig, ConfigError> {
        let sending_ips = p
            .sending_ips
            .iter()
            .map(|ip| {
                ip.trim().parse::<IpAddr>().map_err(|_| {
                    self.invalid(
                        "preflight.sending_ips",
                        format!("{ip:?} is not an IP address"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreflightConfig {
            nameserver: p.nameserver,
            zone: p.zone.as_deref().map(|z| self.file_path(z)),
            sending_ips,
        })
    }

    /// A `*_env` key must hold a variable's name; anything else is refused without echoing
    /// it (it is most likely the secret itself).
    fn env_source(&self, key: &'static str, var: String) -> Result<SecretSource, ConfigError> {
        if !crate::secret::is_env_name(&var) {
            return Err(self.invalid(
                key,
                "must be the NAME of an environment variable (letters, digits and _), not the secret itself; the value is not shown",
            ));
        }
        Ok(SecretSource::Env(var))
    }

    fn intake(&self, i: raw::Intake) -> Result<IntakeConfig, ConfigError> {
        let password = self.password("intake.password_env", i.password_env, i.password_file)?;
        let soft_bounce_limit = i.soft_bounce_limit.unwrap_or(3);
        if soft_bounce_limit == 0 {
            return Err(self.invalid(
                "intake.soft_bounce_limit",
                "must be at least 1 (1 suppresses on the first soft bounce)",
            ));
        }
        Ok(IntakeConfig {
            soft_bounce_limit: soft_bounce_limit as usize,
            password,
            ca_file: i.ca_file.as_deref().map(|p| self.file_path(p)),
            move_to: i.move_to.filter(|m| !m.trim().is_empty()),
        })
    }

    /// `password_env` or `password_file`, not both: passwords are never written in the file.
    fn password(
        &self,
        key: &'static str,
        env: Option<String>,
        file: Option<String>,
    ) -> Result<Option<SecretSource>, ConfigError> {
        match (env, file) {
            (Some(_), Some(_)) => {
                Err(self.invalid(key, "set password_env or password_file, not both"))
            }
            (Some(var), None) => Ok(Some(self.env_source(key, var)?)),
            (None, Some(file)) => Ok(Some(SecretSource::File(self.file_path(&file)))),
            (None, None) => Ok(None),
        }
    }

    fn smtp(&self, s: raw::Smtp, concurrency: usize) -> Result<SmtpConfig, ConfigError> {
        let host = s.host.trim().to_owned();
        if host.is_empty() {
            return Err(self.invalid("smtp.host", "must not be empty"));
        }
        let password = self.password("smtp.password_env", s.password_env, s.password_file)?;
        if s.username.is_some() && password.is_none() {
            return Err(self.invalid(
                "smtp.username",
                "a username needs `password_env` (the name of an environment variable) or `password_file`; passwords are never written in campaign.toml",
            ));
        }
        if s.tls == Tls::None {
            // Plain SMTP is for a relay on this machine (a local MTA or a test sink); anywhere
            // else mail and credentials would cross the network in clear.
            if !is_loopback(&host) {
                return Err(self.invalid(
                    "smtp.tls",
                    format!("\"none\" is only allowed for a relay on this machine (127.0.0.1, ::1, localhost), not {host}; use \"starttls\" (port 587) or \"implicit\" (port 465)"),
                ));
            }
            if s.username.is_some() {
                return Err(self.invalid(
                    "smtp.tls",
                    "\"none\" cannot be combined with a username: a password never travels without TLS",
                ));
            }
        }
        let port = s.port.unwrap_or(match s.tls {
            Tls::Starttls => 587,
            Tls::Implicit => 465,
            Tls::None => 25,
        });
        let pool_size = s.pool_size.unwrap_or(concurrency as u32);
        if pool_size == 0 || pool_size > caps::MAX_CONCURRENCY {
            return Err(self.invalid(
                "smtp.pool_size",
                format!("must be from 1 to {}", caps::MAX_CONCURRENCY),
            ));
        }
        if s.timeout_secs
            .is_some_and(|t| t == 0 || t > caps::MAX_TIMEOUT_SECS)
        {
            return Err(self.invalid(
                "smtp.timeout_secs",
                format!("must be from 1 to {} (one hour)", caps::MAX_TIMEOUT_SECS),
            ));
        }
        Ok(SmtpConfig {
            host,
            port,
            tls: s.tls,
            username: s.username,
            password,
            ca_file: s.ca_file.as_deref().map(|p| self.file_path(p)),
            pool_size,
            timeout: Duration::from_secs(s.timeout_secs.unwrap_or(60)),
            helo_name: s.helo_name,
        })
    }

    fn unsubscribe(&self, u: raw::Unsubscribe) -> Result<UnsubscribeConfig, ConfigError> {
        if u.url.is_none() && u.mailto.is_none() {
            return Err(self.invalid("unsubscribe", "set `url` (https), `mailto`, or both"));
        }
        if let Some(url) = &u.url {
            check_unsubscribe_url(url).map_err(|m| self.invalid("unsubscribe.url", m))?;
        }
        let mailto = u
            .mailto
            .as_deref()
            .map(|m| {
                m.trim_start_matches("mailto:")
                    .parse::<Address>()
                    .map_err(|e| {
                        self.invalid(
                            "unsubscribe.mailto",
                            format!("{m:?} is not an address ({e})"),
                        )
                    })
            })
            .transpose()?;
        let secret = match (u.secret_env, u.secret_file) {
            (Some(var), None) => self.env_source("unsubscribe.secret_env", var)?,
            (None, Some(file)) => SecretSource::File(self.file_path(&file)),
            _ => {
                return Err(self.invalid(
                    "unsubscribe.secret_env",
                    "set exactly one of secret_env or secret_file: the HMAC key that makes unsubscribe tokens unforgeable",
                ));
            }
        };
        let previous = self.previous_secret(
            u.previous_secret_env,
            u.previous_secret_file,
            u.previous_until,
        )?;
        Ok(UnsubscribeConfig {
            url: u.url,
            mailto,
            secret,
            previous,
        })
    }

    /// Secret rotation: the old secret and the time its tokens stop being accepted.
    fn previous_secret(
        &self,
        env: Option<String>,
        file: Option<String>,
        until: Option<String>,
    ) -> Result<Option<PreviousSecret>, ConfigError> {
        let secret = match (env, file) {
            (None, None) if until.is_none() => return Ok(None),
            (Some(var), None) => SecretSource::Env(var),
            (None, Some(file)) => SecretSource::File(self.file_path(&file)),
            _ => {
                return Err(self.invalid(
                    "unsubscribe.previous_secret_env",
                    "set exactly one of previous_secret_env or previous_secret_file, with previous_until",
                ));
            }
        };
        let Some(until) = until else {
            return Err(self.invalid(
                "unsubscribe.previous_until",
                "set the end of the grace period, e.g. previous_until = \"2026-12-31T00:00:00Z\"",
            ));
        };
        let until = humantime::parse_rfc3339_weak(&until).map_err(|e| {
            self.invalid(
                "unsubscribe.previous_until",
                format!("{until:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z ({e})"),
            )
        })?;
        Ok(Some(PreviousSecret { secret, until }))
    }
}

/// A key whose value may be a secret: a password pasted as `password = "..."`, a `*_env`
/// holding the value instead of a name, an inline key.
fn secret_bearing(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "key", "credential"]
        .iter()
        .any(|w| key.contains(w))
}

/// toml's message (line, column, the line quoted, a caret), unless it would show the value of
/// a secret-bearing key: then the line number, the key and toml's reason with the value cut.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let full = e.to_string().trim_end().to_owned();
    // (line number, key, value as written) of every `key = value` line with a secret-bearing key.
    let secrets: Vec<(usize, &str, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (key, value) = line.split_once('=')?;
            let key = key.trim().trim_matches(['"', '\'']);
            let value = value.trim().trim_matches(['"', '\'']);
            (secret_bearing(key) && !value.is_empty()).then_some((i + 1, key, value))
        })
        .collect();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let lines = e.span().map(|s| line_of(s.start)..=line_of(s.end));
    let hit = secrets.iter().find(|(n, _, v)| {
        lines.as_ref().is_some_and(|l| l.contains(n)) || (v.len() >= 4 && full.contains(v))
    });
    let Some(&(n, key, _)) = hit else {
        return full;
    };
    let mut reason = e.message().trim_end().to_owned();
    for (_, _, value) in &secrets {
        if reason.contains(value) {
            reason = "its value is not valid here".to_owned();
        }
    }
    let mut out = format!("line {n}, `{key}` (value not shown: it may be a secret): {reason}");
    if key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("secret") {
        out.push_str("; secrets are never written in campaign.toml: name an environment variable in `password_env`/`secret_env`, or a file in `password_file`/`secret_file`");
    }
    out
}

/// The URL goes inside `<...>` in a header and gets `?email=...&token=...` appended, so it
/// must be plain ASCII, HTTPS, with a host and no fragment.
fn check_unsubscribe_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!(
            "{url:?} must start with https://: RFC 8058 one-click unsubscribe needs HTTPS"
        ));
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains('#') {
        return Err(format!(
            "{url:?} has a #fragment; mailshot appends the parameters, which would land inside it"
        ));
    }
    if let Some(c) = url
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '<' | '>' | '"' | '\\'))
    {
        return Err(format!(
            "{url:?} contains {c:?}; percent-encode it (the URL is written into a header)"
        ));
    }
    Ok(())
}

fn nonzero(
    r: &Resolver<'_>,
    key: &'static str,
    v: Option<u32>,
) -> Result<Option<NonZeroU32>, ConfigError> {
    match v {
        None => Ok(None),
        Some(n) => NonZeroU32::new(n)
            .map(Some)
            .ok_or_else(|| r.invalid(key, "must be at least 1 (leave it out for no limit)")),
    }
}

/// True for hosts that cannot be reached from another machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[campaign]
id = "nov"
from = "News <news@example.com>"
subject = "Hello {{name}}"

[templates]
text = "t.txt.hbs"

[recipients]
file = "r.csv"

[[dkim]]
domain = "Example.com"
selector = "s1"
private_key = "k.pem"

[outbox]
dir = "out"
"#;

    fn parse(text: &str) -> Result<Campaign, ConfigError> {
        Campaign::parse(Path::new("/camp/campaign.toml"), text)
    }

    #[test]
    fn resolves_relative_paths_and_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.text_template.as_deref().unwrap(),
            Path::new("/camp/t.txt.hbs")
        );
        assert_eq!(c.recipients.file, Path::new("/camp/r.csv"));
        assert_eq!(c.recipients.address_column, "email");
        assert_eq!(c.dkim[0].domain, "example.com");
        assert_eq!(c.return_path.to_string(), "news@example.com");
        assert_eq!(c.run_dir(), Path::new("/camp/.mailshot/nov"));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = GOOD.replace("[outbox]", "[outbox]\ndirectory = \"x\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("line 19"), "{err}");
        assert!(err.contains("directory"), "{err}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let text = format!("{GOOD}\n[limits]\nper_second = \"ten\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("line 22"), "{err}");
        assert!(
            err.contains("per_second") || err.contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn plaintext_smtp_only_to_loopback_and_never_with_auth() {
        let remote = GOOD.replace(
            "[outbox]\ndir = \"out\"",
            "[smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"",
        );
        let err = parse(&remote).unwrap_err().to_string();
        assert!(err.contains("smtp.tls"), "{err}");

        let local_auth = GOOD.replace(
            "[outbox]\ndir = \"out\"",
            "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"P\"",
        );
        let err = parse(&local_auth).unwrap_err().to_string();
        assert!(err.contains("never travels without TLS"), "{err}");

        let local = GOOD.replace(
            "[outbox]\ndir = \"out\"",
            "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nport = 2525",
        );
        assert!(parse(&local).is_ok());
    }

    #[test]
    fn username_without_password_source_is_an_error() {
        let text = GOOD.replace(
            "[outbox]\ndir = \"out\"",
            "[smtp]\nhost = \"smtp.example.com\"\ntls = \"starttls\"\nusername = \"u\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("password_env"), "{err}");
    }

    #[test]
    fn unsubscribe_url_must_be_https() {
        let text =
            format!("{GOOD}\n[unsubscribe]\nurl = \"http://example.com/u\"\nsecret_env = \"S\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
    }

    #[test]
    fn unsubscribe_url_shapes() {
        assert!(check_unsubscribe_url("https://news.example.com/u?list=1").is_ok());
        for bad in [
            "https://",
            "https://x.example/u#top",
            "https://x.example/a b",
            "https://x.example/a>,<https://evil.example/",
            "https://bücher.example/u",
        ] {
            assert!(check_unsubscribe_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_domains_and_ids_are_checked() {
        let sel = GOOD.replace("selector = \"s1\"", "selector = \"s1; d=evil.example\"");
        assert!(
            parse(&sel)
                .unwrap_err()
                .to_string()
                .contains("dkim.selector")
        );
        let id = GOOD.replace("id = \"nov\"", "id = \"..\"");
        assert!(parse(&id).is_err());
        let idn = GOOD.replace("News <news@example.com>", "News <news@bücher.example>");
        assert_eq!(
            parse(&idn).unwrap().from.email.domain(),
            "xn--bcher-kva.example"
        );
    }

    /// From, Reply-To and return_path get the recipients' rule (crate::address), and the
    /// error names the key and the line to edit.
    #[test]
    fn sender_addresses_get_the_recipient_checks_and_name_the_line() {
        let with = |key: &str, value: &str| {
            let line = format!("{key} = \"{value}\"\n");
            GOOD.replace("subject = ", &format!("{line}subject = "))
                .replace("from = \"News <news@example.com>\"\n", "")
        };
        for key in ["from", "reply_to", "return_path"] {
            for (bad, why) in [
                ("News <news@xn--zz.example>", "not a valid domain name"),
                ("news@news.example.123", "looks like an IP address"),
                // A TOML escape: the value holds a form feed.
                ("Ann\\fExample <news@example.com>", "control character"),
                ("news@localhost", "has no dot"),
                ("jörg@example.com", "non-ASCII local part"),
                ("news@[127.0.0.1]", "IP address literal"),
            ] {
                let mut text = with(key, bad);
                if key != "from" {
                    text = text.replace("[campaign]\n", "[campaign]\nfrom = \"n@example.com\"\n");
                }
                let line = 1 + text[..text.find(&format!("{key} =")).unwrap()]
                    .matches('\n')
                    .count();
                let err = parse(&text).unwrap_err().to_string();
                assert!(err.contains(&format!("`campaign.{key}`")), "{err}");
                assert!(err.contains(&format!("line {line}:")), "{err}");
                assert!(err.contains(why), "{key} = {bad:?}: {err}");
            }
        }
        let ok = with("reply_to", "Équipe <support@bücher.example>")
            .replace("[campaign]\n", "[campaign]\nfrom = \"N <n@example.com>\"\n");
        let c = parse(&ok).unwrap();
        assert_eq!(
            c.reply_to.unwrap().email.to_string(),
            "support@xn--bcher-kva.example"
        );
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("smtp.example.com"));
    }
}
