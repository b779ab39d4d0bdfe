//! Builds one recipient's message with mail-builder: headers, the MIME structure and the
//! deterministic identifiers (Message-ID, boundary) that make previews and resumes exact.

use std::borrow::Cow;

use aws_lc_rs::digest;
use lettre::Address;
use lettre::message::Mailbox;
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address as MbAddress;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use crate::address::header_unsafe_char;
use crate::config::Campaign;
use crate::recipients::Recipient;
use crate::template::Rendered;
use crate::unsubscribe::Links;

/// A rendered value would have broken the message's structure. The row is skipped; nothing
/// is sent.
#[derive(Debug, thiserror::Error)]
pub enum HeaderInjection {
    #[error(
        "the rendered {header} contains {what}, which would inject a header; remove it from the recipient's fields"
    )]
    Header {
        header: &'static str,
        what: &'static str,
    },
    #[error(
        "the rendered {part} part contains a NUL byte, which mail cannot carry; remove it from the recipient's fields"
    )]
    Nul { part: &'static str },
    #[error(
        "the rendered {part} part contains this message's MIME boundary, which would let it forge a MIME part"
    )]
    Boundary { part: &'static str },
    #[error(
        "the rendered Subject is {chars} characters; at most {MAX_SUBJECT_CHARS} are sent; shorten the recipient's fields or the subject template"
    )]
    SubjectTooLong { chars: usize },
}

/// The longest rendered Subject, in characters: RFC 5322's line limit. Mail clients show well
/// under 100, and mail-builder's encoded-word folding is quadratic in a value's length (a
/// 1 MB name in the Subject took 38 s to build one message), so one hostile signup row would
/// stall a sender without this cap.
pub const MAX_SUBJECT_CHARS: usize = 998;

/// Holds what is the same for every message of a campaign.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    campaign_id: String,
    id_domain: String,
    list_id: Option<String>,
    feedback_id: Option<String>,
}

impl Composer {
    pub fn new(campaign: &Campaign) -> Composer {
        Composer {
            from: campaign.from.clone(),
            reply_to: campaign.reply_to.clone(),
            campaign_id: campaign.id.clone(),
            id_domain: campaign.sender_domain().to_ascii_lowercase(),
            list_id: campaign.list_id.clone(),
            feedback_id: campaign.feedback_id.clone(),
        }
    }

    /// `<campaign>.<hash>@<from domain>`, without angle brackets. The same for a recipient in
    /// every run of the campaign, so a resend after a crash carries the same Message-ID and
    /// receivers can discard the duplicate. The hash keeps the address out of the header.
    pub fn message_id(&self, address: &Address) -> String {
        format!(
            "{}.{}@{}",
            self.campaign_id,
            self.hash("message-id", address),
            self.id_domain
        )
    }

    /// 96 bits of SHA-256 over a purpose, the campaign and the lowercase address, in hex:
    /// stable for a recipient within a campaign, different across campaigns and purposes, and
    /// not the address. The boundary cannot be read off the (visible) Message-ID.
    fn hash(&self, purpose: &str, address: &Address) -> String {
        let input = format!(
            "{purpose}\0{}\0{}",
            self.campaign_id,
            address.to_string().to_lowercase()
        );
        let d = digest::digest(&digest::SHA256, input.as_bytes());
        let mut hex = String::with_capacity(24);
        for b in &d.as_ref()[..12] {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        hex
    }

    /// What [`Self::compose`] refuses, without building the message: a header-unsafe
    /// subject, a NUL or the MIME boundary in a body.
    pub fn check(&self, recipient: &Recipient, rendered: &Rendered) -> Result<(), HeaderInjection> {
        self.checked(recipient, rendered).map(|_| ())
    }

    /// The boundary and the bodies with normalized line ends, once they pass the checks.
    #[allow(clippy::type_complexity)]
    fn checked<'r>(
        &self,
        recipient: &Recipient,
        rendered: &'r Rendered,
    ) -> Result<(String, Option<Cow<'r, str>>, Option<Cow<'r, str>>), HeaderInjection> {
        if let Some(what) = header_unsafe_char(&rendered.subject) {
            return Err(HeaderInjection::Header {
                header: "Subject",
                what,
            });
        }
        // Byte length first: the character count is only needed past the cap.
        if rendered.subject.len() > MAX_SUBJECT_CHARS {
            let chars = rendered.subject.chars().count();
            if chars > MAX_SUBJECT_CHARS {
                return Err(HeaderInjection::SubjectTooLong { chars });
            }
        }
        let boundary = format!("=_mailshot_{}", self.hash("boundary", &recipient.address));
        let text = rendered.text.as_deref().map(normalize_newlines);
        let html = rendered.html.as_deref().map(normalize_newlines);
        for (part, body) in [("text", &text), ("HTML", &html)] {
            if let Some(b) = body {
                if memchr::memchr(0, b.as_bytes()).is_some() {
                    return Err(HeaderInjection::Nul { part });
                }
                if memchr::memmem::find(b.as_bytes(), boundary.as_bytes()).is_some() {
                    return Err(HeaderInjection::Boundary { part });
                }
            }
        }
        Ok((boundary, text, html))
    }

    /// Serializes the unsigned message. `date` is unix seconds.
    pub fn compose(
        &self,
        recipient: &Recipient,
        rendered: &Rendered,
        links: Option<&Links>,
        date: u64,
    ) -> Result<Vec<u8>, HeaderInjection> {
        let (boundary, text, html) = self.checked(recipient, rendered)?;
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
        // Validated in config as one line of printable ASCII.
        if let Some(v) = &self.list_id {
            builder = builder.header("List-Id", HeaderType::Raw(Raw::new(v.as_str())));
        }
        if let Some(v) = &self.feedback_id {
            builder = builder.header("Feedback-ID", HeaderType::Raw(Raw::new(v.as_str())));
        }
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
        let text = text.map(|t| MimePart::new("text/plain", t));
        let html = html.map(|h| MimePart::new("text/html", h));
        let body = match (text, html) {
            (Some(t), Some(h)) => MimePart::new(
                // mail-builder would pick a random boundary; ours is derived from the
                // recipient so the same message always has the same bytes.
                ContentType::new("multipart/alternative").attribute("boundary", boundary),
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

/// Line ends as LF only; mail-builder writes each as CRLF. A bare CR would otherwise reach
/// the wire, where DKIM verifiers disagree on how to hash it.
///
/// Rendered templates rarely hold a CR, so the common case is one `memchr` and a borrow.
fn normalize_newlines(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::normalize_newlines;

    #[test]
    fn every_line_end_becomes_lf_and_plain_text_is_borrowed() {
        assert!(matches!(
            normalize_newlines("a\nb"),
            std::borrow::Cow::Borrowed("a\nb")
        ));
        assert_eq!(
            normalize_newlines("a\r\nb\rc\n\r\n\rd\r"),
            "a\nb\nc\n\n\nd\n"
        );
    }
}
