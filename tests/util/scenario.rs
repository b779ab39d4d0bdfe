//! The set-up every sending test shares, as one builder: a relay on loopback (aiosmtpd with
//! a fresh test PKI, or the scripted responder) and a campaign folder pointed at it.
//!
//! ```ignore
//! let (server, c) = Scenario::new().recipients(&all).toml(limits).smtp(Mode::Plain);
//! let (responder, c) = Scenario::new().toml(retry).scripted(Script { .. });
//! ```
//!
//! The setters describe the campaign (they fill a `Spec`); the last call starts the relay
//! and writes the campaign. A campaign with no relay (the outbox) needs no builder:
//! `CampaignDir::new(&Spec { .. })`.
// Not every test uses every setter; the harness is shared.
#![allow(dead_code)]

use super::smtp::scripted::{Responder, Script};
use super::smtp::{Faults, Mode, SmtpServer};
use super::tls::TestPki;
use super::{CampaignDir, Spec, csv_of};

/// The account `login()` sets up on both sides: aiosmtpd accepts it, and campaign.toml names
/// it and reads the password from `PASSWORD_ENV`, which the test sets when it runs mailshot.
pub const USER: &str = "news@news.example.com";
pub const PASSWORD: &str = "correct horse battery staple";
pub const PASSWORD_ENV: &str = "MAILSHOT_TEST_SMTP_PASSWORD";

/// A campaign and the relay it sends through, described before anything starts.
#[derive(Default)]
pub struct Scenario<'a> {
    spec: Spec<'a>,
    /// A recipient file built by `recipients`; wins over `spec.csv`.
    csv: Option<String>,
    /// campaign.toml after the transport table: limits, retry, suppression.
    toml: String,
    faults: Faults,
    login: bool,
    untrusted: bool,
}

impl<'a> Scenario<'a> {
    /// The default campaign (`Spec::default()`: three recipients, text and HTML).
    pub fn new() -> Self {
        Scenario::default()
    }

    /// One recipient row per address (`csv_of`).
    pub fn recipients<S: AsRef<str>>(mut self, addresses: &[S]) -> Self {
        let refs: Vec<&str> = addresses.iter().map(AsRef::as_ref).collect();
        self.csv = Some(csv_of(&refs));
        self
    }

    /// The recipient file exactly as given.
    pub fn csv(mut self, csv: &'a str) -> Self {
        self.spec.csv = csv;
        self
    }

    pub fn subject(mut self, subject: &'a str) -> Self {
        self.spec.subject = subject;
        self
    }

    pub fn text(mut self, text: &'a str) -> Self {
        self.spec.text = text;
        self
    }

    pub fn html(mut self, html: Option<&'a str>) -> Self {
        self.spec.html = html;
        self
    }

    /// Appends `tables` to campaign.toml, after the transport table.
    pub fn toml(mut self, tables: &str) -> Self {
        self.toml.push_str(tables);
        self
    }

    /// Faults for aiosmtpd to inject (`smtp` only).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// AUTH with the test account (`USER`, `PASSWORD` from `PASSWORD_ENV`); TLS modes only,
    /// as mailshot sends no password in clear.
    pub fn login(mut self) -> Self {
        self.login = true;
        self
    }

    /// campaign.toml trusts the unrelated CA, not the one that signed the server's leaf.
    pub fn untrusted_ca(mut self) -> Self {
        self.untrusted = true;
        self
    }

    /// Starts aiosmtpd in `mode` and writes a campaign that sends through it: plain SMTP to
    /// 127.0.0.1, or TLS to `localhost` trusting the test CA (copied into the campaign as
    /// `ca.pem`, so the campaign folder holds everything it names).
    pub fn smtp(self, mode: Mode) -> (SmtpServer, CampaignDir) {
        let pki = TestPki::new();
        let auth = self.login.then_some((USER, PASSWORD));
        let server = SmtpServer::start_faulty(mode, &pki, auth, &self.faults);
        let tls = match mode {
            Mode::Plain => {
                assert!(!self.login, "no password without TLS");
                let c = self.write(&plain_tail(server.port, &self.toml));
                return (server, c);
            }
            Mode::Starttls => "starttls",
            Mode::Implicit => "implicit",
        };
        let login = if self.login {
            format!("username = \"{USER}\"\npassword_env = \"{PASSWORD_ENV}\"\n")
        } else {
            String::new()
        };
        let tail = format!(
            "[smtp]\nhost = \"localhost\"\nport = {}\ntls = \"{tls}\"\nca_file = \"ca.pem\"\n{login}pool_size = 2\ntimeout_secs = 20\n\n{}",
            server.port, self.toml
        );
        let c = self.write(&tail);
        let ca = if self.untrusted {
            &pki.other_ca_pem
        } else {
            &pki.ca_pem
        };
        std::fs::copy(ca, c.path().join("ca.pem")).expect("copy the test CA");
        (server, c)
    }

    /// Starts the scripted responder with `script` and writes a campaign that sends to it
    /// over plain SMTP.
    pub fn scripted(self, script: Script) -> (Responder, CampaignDir) {
        let responder = Responder::start(script);
        let c = self.write(&plain_tail(responder.port, &self.toml));
        (responder, c)
    }

    fn write(&self, tail: &str) -> CampaignDir {
        CampaignDir::new(&Spec {
            csv: self.csv.as_deref().unwrap_or(self.spec.csv),
            tail,
            ..self.spec
        })
    }
}

/// Plain SMTP to a server on loopback, then `extra` (limits, retry, suppression tables).
fn plain_tail(port: u16, extra: &str) -> String {
    format!("[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\n{extra}")
}
