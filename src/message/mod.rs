//! From a recipient to the exact bytes that leave: render the templates, build the MIME
//! message, DKIM-sign it. [`Assembler`] is the one code path that `send`, `send --dry-run`
//! and `preview` share, so what a user previews is what is sent. It also gives each message
//! its envelope sender: the return path, or with VERP ([`verp`]) the recipient's tagged one.

pub mod build;
pub mod dkim;
pub mod verp;

use std::sync::Arc;

pub use build::Composer;
pub use dkim::{SignError, Signer};

use crate::clock::Clock;
use crate::config::Campaign;
use crate::lint::{self, LintConfig, LintFinding, LintInput};
use crate::recipients::Recipient;
use crate::template::{self, Rendered, TemplateError, Templates};
use crate::unsubscribe::{Links, Unsubscriber};
use build::HeaderInjection;
use verp::Verp;

/// Why one recipient's message could not be made. Only this row is affected.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Injection(#[from] HeaderInjection),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Verp(#[from] verp::VerpError),
}

/// One message, ready for the transport.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub recipient: Recipient,
    /// Without angle brackets.
    pub message_id: String,
    /// MAIL FROM: the campaign's return path, or with VERP this recipient's tagged address.
    pub envelope_from: lettre::Address,
    pub bytes: Vec<u8>,
}

/// Everything that is parsed or compiled once per campaign, shared by the worker threads.
pub struct Assembler {
    pub campaign_id: String,
    columns: Arc<[String]>,
    templates: Templates,
    composer: Composer,
    signer: Signer,
    unsubscribe: Option<Unsubscriber>,
    return_path: lettre::Address,
    verp: Option<Verp>,
    clock: Arc<dyn Clock>,
    lint: LintConfig,
    /// Bytes the DKIM-Signature headers add, measured once, so the survey can lint message
    /// sizes without signing every message twice.
    signature_overhead: usize,
}

impl Assembler {
    pub fn new(
        campaign: &Campaign,
        columns: Arc<[String]>,
        templates: Templates,
        signer: Signer,
        unsubscribe: Option<Unsubscriber>,
        verp: Option<Verp>,
        clock: Arc<dyn Clock>,
    ) -> Assembler {
        let probe = b"From: a@example.com\r\nSubject: x\r\n\r\nx\r\n";
        let signature_overhead = signer
            .sign_usable(probe, 0)
            .map_or(0, |signed| signed.len() - probe.len());
        Assembler {
            campaign_id: campaign.id.clone(),
            columns,
            templates,
            composer: Composer::new(campaign),
            signer,
            unsubscribe,
            return_path: campaign.return_path.clone(),
            verp,
            clock,
            lint: LintConfig {
                max_message_bytes: campaign.lint.max_message_bytes,
            },
            signature_overhead,
        }
    }

    /// The DKIM keys, for the audit: parsed once, shared with signing.
    /// The recipient file's column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn keys(&self) -> &[dkim::DkimKeyPair] {
        self.signer.keys()
    }

    pub fn message_id(&self, address: &lettre::Address) -> String {
        self.composer.message_id(address)
    }

    /// MAIL FROM for the recipient: the return path, or its VERP form for the recipient's row.
    pub fn envelope_from(&self, r: &Recipient) -> Result<lettre::Address, verp::VerpError> {
        match &self.verp {
            Some(v) => v.envelope(r.row, &r.address),
            None => Ok(self.return_path.clone()),
        }
    }

    /// The recipient's one-click (HTTPS) unsubscribe URL, when one is configured.
    pub fn unsubscribe_url(&self, r: &Recipient) -> Option<String> {
        self.links(r).and_then(|l| l.https)
    }

    fn links(&self, r: &Recipient) -> Option<Links> {
        self.unsubscribe.as_ref().map(|u| u.links(&r.address))
    }

    fn data(
        &self,
        r: &Recipient,
        links: Option<&Links>,
    ) -> Result<serde_json::Value, TemplateError> {
        let url = links.map(Links::visible).unwrap_or_default();
        let mailto = links.and_then(|l| l.mailto.as_deref()).unwrap_or_default();
        template::context(
            &self.columns,
            &r.fields,
            &[
                ("unsubscribe_url", url),
                ("unsubscribe_mailto", mailto),
                ("campaign_id", &self.campaign_id),
            ],
        )
    }

    /// The validation pass's check of one row: everything `assemble` checks, without signing
    /// (or building, unless the lint measures sizes), so a template variable hidden in a
    /// branch, a header injection or a NUL is found before the first message is sent.
    /// Returns the content lint's findings for the row.
    pub fn check(&self, r: &Recipient) -> Result<Vec<LintFinding>, RowError> {
        self.envelope_from(r)?;
        let links = self.links(r);
        let rendered = self
            .templates
            .render(self.data(r, links.as_ref())?, &self.columns)?;
        // The whole message is built only to measure it for lint.message-size, the one rule
        // that reads the size; without a limit, the checks that building makes are enough.
        let message_bytes = if self.lint.max_message_bytes.is_some() {
            let unsigned = self.composer.compose(r, &rendered, links.as_ref(), 0)?;
            unsigned.len() + self.signature_overhead
        } else {
            self.composer.check(r, &rendered)?;
            0
        };
        Ok(self.lint(r, &rendered, links.as_ref(), message_bytes))
    }

    /// The content lint for one rendered message.
    pub fn lint(
        &self,
        r: &Recipient,
        rendered: &Rendered,
        links: Option<&Links>,
        message_bytes: usize,
    ) -> Vec<LintFinding> {
        let urls: Vec<&str> = links
            .map(|l| {
                [l.https.as_deref(), l.mailto.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect()
            })
            .unwrap_or_default();
        let empty: Vec<&str> = self
            .templates
            .greeting_vars()
            .iter()
            .filter(|v| {
                self.columns
                    .iter()
                    .position(|c| c == *v)
                    .is_some_and(|i| r.fields.get(i).is_some_and(|f| f.trim().is_empty()))
            })
            .map(String::as_str)
            .collect();
        lint::lint(
            &LintInput {
                subject: &rendered.subject,
                text: rendered.text.as_deref(),
                html: rendered.html.as_deref(),
                message_bytes,
                unsubscribe_urls: &urls,
                empty_fields_in_subject_or_greeting: &empty,
            },
            &self.lint,
        )
    }

    /// Renders, builds and signs one message.
    pub fn assemble(&self, r: Recipient) -> Result<Prepared, RowError> {
        self.assemble_with(r, false)
    }

    /// [`assemble`](Self::assemble) for the audit's sample message: signed with the keys
    /// mailshot signs with, leaving out any it refuses (the audit reports those).
    pub fn assemble_sample(&self, r: Recipient) -> Result<Prepared, RowError> {
        self.assemble_with(r, true)
    }

    /// `usable_only`: sign with only the keys mailshot signs with (the audit's sample).
    fn assemble_with(&self, r: Recipient, usable_only: bool) -> Result<Prepared, RowError> {
        let links = self.links(&r);
        let rendered = self
            .templates
            .render(self.data(&r, links.as_ref())?, &self.columns)?;
        let now = self.clock.unix();
        let unsigned = self.composer.compose(&r, &rendered, links.as_ref(), now)?;
        let bytes = if usable_only {
            self.signer.sign_usable(&unsigned, now)?
        } else {
            self.signer.sign(&unsigned, now)?
        };
        Ok(Prepared {
            message_id: self.composer.message_id(&r.address),
            envelope_from: self.envelope_from(&r)?,
            recipient: r,
            bytes,
        })
    }
}
