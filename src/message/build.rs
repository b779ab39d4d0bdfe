//! Builds one recipient's message with mail-builder: headers, the MIME structure and the
//! deterministic identifiers (Message-ID, boundary) that make previews and resumes exact.

use aws_lc_rs::digest;
use lettre::Address;
use lettre::message::Mailbox;
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use crate::config::Campaign;
use crate::recipients::{Recipient, header_unsafe_char};
use crate::template::Rendered;
use crate::unsubscribe::Links;

/// A rendered value would have broken a header. The row is skipped; nothing is sent.
#[derive(Debug, thiserror::Error)]
#[error(
    "the rendered {header} contains {what}, which would inject a header; remove line breaks from the recipient's fields"
)]
pub struct HeaderInjection {
    pub header: &'static str,
    pub what: &'static str,
}

/// Holds what is the same for every message of a campaign.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    campaign_id: String,
    id_domain: String,
}

impl Composer {
    pub fn new(campaign: &Campaign) -> Composer {
        Composer {
            from: campaign.from.clone(),
            reply_to: campaign.reply_to.clone(),
            campaign_id: campaign.id.clone(),
            id_domain: campaign.sender_domain().to_ascii_lowercase(),
        }
    }

    /// `<campaign>.<hash>@<from domain>`, without angle brackets. The same for a recipient in
    /// every run of the campaign, so a resend after a crash carries the same Message-ID and
    /// receivers can discard the duplicate. The hash keeps the address out of the header.
    pub fn message_id(&self, address: &Address) -> String {
        format!(
            "{}.{}@{}",
            self.campaign_id,
            recipient_hash(address),
            self.id_domain
        )
    }

    /// Serializes the unsigned message. `date` is unix seconds.
    pub fn compose(
        &self,
        recipient: &Recipient,
        rendered: &Rendered,
        links: Option<&Links>,
        date: u64,
    ) -> Result<Vec<u8>, HeaderInjection> {
        if let Some(what) = header_unsafe_char(&rendered.subject) {
            return Err(HeaderInjection {
                header: "Subject",
                what,
            });
        }
        let hash = recipient_hash(&recipient.address);
        let to_email = recipient.address.to_string();
        let to = MbAddress::new_address(recipient.name.as_deref(), to_email.as_str());
        let from_email = self.from.email.to_string();
        let mut builder = MessageBuilder::new()
            .from(MbAddress::new_address(
                self.from.name.as_deref(),
                from_email.as_str(),
            ))
            .to(to);
        let reply_email = self.reply_to.as_ref().map(|r| r.email.to_string());
        if let (Some(r), Some(email)) = (&self.reply_to, &reply_email) {
            builder = builder.reply_to(MbAddress::new_address(r.name.as_deref(), email.as_str()));
        }
        builder = builder
            .subject(rendered.subject.as_str())
            .date(date as i64)
            .message_id(self.message_id(&recipient.address))
            .header("MIME-Version", HeaderType::Raw(Raw::new("1.0")));
        if let Some(links) = links
            && let Some(value) = links.header_value()
        {
            builder = builder.header("List-Unsubscribe", HeaderType::Raw(Raw::new(value)));
            if links.one_click() {
                builder = builder.header(
                    "List-Unsubscribe-Post",
                    HeaderType::Raw(Raw::new("List-Unsubscribe=One-Click")),
                );
            }
        }
        let text = rendered
            .text
            .as_deref()
            .map(|t| MimePart::new("text/plain", t));
        let html = rendered
            .html
            .as_deref()
            .map(|h| MimePart::new("text/html", h));
        let body = match (text, html) {
            (Some(t), Some(h)) => MimePart::new(
                // mail-builder would pick a random boundary; ours is derived from the
                // recipient so the same message always has the same bytes.
                ContentType::new("multipart/alternative")
                    .attribute("boundary", format!("=_mailshot_{hash}")),
                vec![t, h],
            ),
            (Some(t), None) => t,
            (None, Some(h)) => h,
            (None, None) => MimePart::new("text/plain", ""),
        };
        let mut out = Vec::with_capacity(4096);
        builder.body(body).serialize(&mut out);
        Ok(out)
    }
}

/// 96 bits of SHA-256 over the lowercase address, in hex: stable, and not the address.
fn recipient_hash(address: &Address) -> String {
    let d = digest::digest(
        &digest::SHA256,
        address.to_string().to_lowercase().as_bytes(),
    );
    d.as_ref()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
