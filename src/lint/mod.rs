//! The content lint: judges each rendered message (subject, text and HTML parts, size) the way
//! mailbox providers' filters and tools like mail-tester do, and says what to change.
//!
//! It runs for every recipient, so it is one pass over cheap facts: the HTML is scanned once
//! by [`html::scan`] (a tokenizer, no tree), and every rule below reads the facts that scan
//! collected. Findings never block sending; they are advice with a stable id.

mod host;
mod html;
mod summary;

pub use summary::LintSummary;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
        }
    }
}

/// One finding. `id` is stable: it is what users and JSON consumers match on.
#[derive(Debug, Clone, Serialize)]
pub struct LintFinding {
    pub id: &'static str,
    pub level: Level,
    pub message: String,
    pub fix: String,
}

/// The user's settings, from campaign.toml's `[lint]` table.
#[derive(Debug, Clone, Default)]
pub struct LintConfig {
    /// Warn when a whole signed message is larger than this; `None` means no limit.
    pub max_message_bytes: Option<usize>,
}

/// One rendered message, for one recipient.
pub struct LintInput<'a> {
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
    /// The whole signed message's size in bytes.
    pub message_bytes: usize,
    /// This recipient's unsubscribe URLs (https and/or mailto), if configured.
    pub unsubscribe_urls: &'a [&'a str],
    /// Names of CSV columns that are empty for this recipient and are used by the subject
    /// template or by the first line (greeting) of the text or HTML template.
    pub empty_fields_in_subject_or_greeting: &'a [&'a str],
}

/// What a rule checks, for the README and a rule listing.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub level: Level,
    /// What it looks at, in a few words.
    pub summary: &'static str,
    /// When it fires.
    pub threshold: &'static str,
    /// Why: the provider behaviour, filter rule or standard it follows.
    pub source: &'static str,
}

/// Gmail clips the HTML of a message past about 102 KB and hides the rest behind
/// "[Message clipped] View entire message", which usually takes the footer and its
/// unsubscribe link with it.
pub const HTML_CLIP_BYTES: usize = 102 * 1024;
/// Below this many visible characters, an HTML part with images reads as image-only.
pub const IMAGE_ONLY_MIN_CHARS: usize = 40;
/// With this many images or more, each needs this many visible characters beside it.
pub const IMAGE_RATIO_MIN_IMAGES: usize = 3;
pub const IMAGE_RATIO_CHARS_PER_IMAGE: usize = 100;
/// The subject-caps rule needs at least this many cased letters, so that "FAQ" or "Q4 NEWS"
/// are not judged.
pub const SUBJECT_CAPS_MIN_LETTERS: usize = 10;
/// Percentage of cased letters that are capitals at which a subject counts as shouting.
pub const SUBJECT_CAPS_PERCENT: usize = 70;
/// RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters, header included.
pub const SUBJECT_MAX_CHARS: usize = 78;
/// How many example links a finding quotes.
const EXAMPLES: usize = 3;

/// Link shorteners that blocklists (Spamhaus DBL, URIBL, SURBL) often list, because spammers
/// hide their real domains behind them. Matched against the exact host, after "www.".
pub const URL_SHORTENERS: &[&str] = &[
    "bit.ly",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "tiny.cc",
    "bl.ink",
    "lnkd.in",
    "s.id",
    "rb.gy",
];

/// Every rule, in the order [`lint`] reports them.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "lint.html-size",
        level: Level::Warn,
        summary: "the HTML part's size",
        threshold: "more than 102 KB (104,448 bytes) of decoded HTML",
        source: "Gmail clips messages whose HTML exceeds about 102 KB (\"[Message clipped]\"), \
                 hiding the rest, usually the unsubscribe link",
    },
    RuleInfo {
        id: "lint.no-text-part",
        level: Level::Warn,
        summary: "an HTML part without a text alternative",
        threshold: "HTML part present, text part missing or blank",
        source: "SpamAssassin MIME_HTML_ONLY; filters distrust HTML-only mail",
    },
    RuleInfo {
        id: "lint.no-visible-unsubscribe",
        level: Level::Warn,
        summary: "an unsubscribe link in the body",
        threshold: "no unsubscribe URL of this recipient in the text part, nor in an HTML \
                    link or HTML text (or none configured)",
        source: "Gmail and Yahoo bulk-sender guidelines (2024): a clearly visible unsubscribe \
                 link in the body",
    },
    RuleInfo {
        id: "lint.http-link",
        level: Level::Warn,
        summary: "links without TLS",
        threshold: "any <a>/<area> href starting with http://",
        source: "provider and filter distrust of plain-http links; browsers mark them \
                 \"Not secure\"",
    },
    RuleInfo {
        id: "lint.link-text-mismatch",
        level: Level::Warn,
        summary: "link text that shows one address and links to another",
        threshold: "link text is a URL or domain whose host is neither the href's host, a \
                    parent or subdomain of it, nor the same registrable domain (public suffix list)",
        source: "phishing heuristic: SpamAssassin HTTPS_HTTP_MISMATCH and URI mismatch rules",
    },
    RuleInfo {
        id: "lint.url-shortener",
        level: Level::Warn,
        summary: "links through URL shorteners",
        threshold: "an href host (after \"www.\") in the built-in list: bit.ly, tinyurl.com, \
                    t.co, goo.gl, ow.ly, is.gd, buff.ly, rebrand.ly, cutt.ly, shorturl.at, \
                    tiny.cc, bl.ink, lnkd.in, s.id, rb.gy",
        source: "Spamhaus DBL and URIBL often list shortener domains; providers distrust them",
    },
    RuleInfo {
        id: "lint.img-no-alt",
        level: Level::Warn,
        summary: "images without alt text",
        threshold: "any <img> without an alt attribute (alt=\"\" is fine)",
        source: "most clients block images by default and show the alt text instead; \
                 WCAG 1.1.1",
    },
    RuleInfo {
        id: "lint.image-only",
        level: Level::Warn,
        summary: "HTML that is mostly images",
        threshold: "an image and fewer than 40 visible characters, or 3+ images and fewer \
                    than 100 visible characters per image (tracking pixels not counted)",
        source: "SpamAssassin HTML_IMAGE_ONLY_xx and HTML_IMAGE_RATIO_xx",
    },
    RuleInfo {
        id: "lint.subject-caps",
        level: Level::Warn,
        summary: "a subject in capitals",
        threshold: "at least 10 cased letters, 70% or more of them capitals",
        source: "SpamAssassin SUBJ_ALL_CAPS",
    },
    RuleInfo {
        id: "lint.subject-exclaim",
        level: Level::Warn,
        summary: "runs of ! or ? in the subject",
        threshold: "3 or more of ! and ? in a row (\"!!!\", \"???\", \"?!?\")",
        source: "SpamAssassin PLING_QUERY and similar subject punctuation heuristics",
    },
    RuleInfo {
        id: "lint.subject-length",
        level: Level::Warn,
        summary: "an empty or long subject",
        threshold: "empty (warn); longer than 78 characters (info)",
        source: "RFC 5322 2.1.1 line-length guidance; mobile clients truncate at about 40-60 \
                 characters",
    },
    RuleInfo {
        id: "lint.empty-field",
        level: Level::Warn,
        summary: "empty fields in the subject or greeting",
        threshold: "a CSV column used by the subject or the first line is empty for this \
                    recipient",
        source: "\"Hi ,\" greetings read as careless bulk mail to people and to filters",
    },
    RuleInfo {
        id: "lint.message-size",
        level: Level::Warn,
        summary: "the whole signed message's size",
        threshold: "more than [lint] max_message_kb (no limit unless set)",
        source: "your own limit (relays and receivers refuse or distrust large messages)",
    },
];

/// Judges one rendered message. Findings come in the order of [`RULES`].
pub fn lint(input: &LintInput<'_>, cfg: &LintConfig) -> Vec<LintFinding> {
    let mut out = Vec::new();
    // The scan is most of the cost of a lint; it happens once.
    let facts = input.html.map(html::scan);
    // An empty URL is "contained" in every body; it must not count as shown.
    let unsub: Vec<&str> = input
        .unsubscribe_urls
        .iter()
        .copied()
        .filter(|u| !u.trim().is_empty())
        .collect();

    if let Some(h) = input.html
        && h.len() > HTML_CLIP_BYTES
    {
        out.push(finding(
            "lint.html-size",
            Level::Warn,
            format!(
                "the HTML part is {} bytes ({:.1} KB); Gmail clips HTML over 102 KB \
                 (104,448 bytes) and hides the rest, usually with the unsubscribe link",
                h.len(),
                h.len() as f64 / 1024.0
            ),
            "shrink the HTML: inline less CSS, drop comments and unused styles, link to the \
             full content on the web",
        ));
    }

    if input.html.is_some() {
        let blank = input.text.map(|t| t.trim().is_empty());
        if blank != Some(false) {
            let what = if blank.is_none() {
                "the message has an HTML part but no text alternative"
            } else {
                "the text alternative is empty"
            };
            out.push(finding(
                "lint.no-text-part",
                Level::Warn,
                format!("{what}; spam filters score HTML-only mail (SpamAssassin MIME_HTML_ONLY)"),
                "add a text template ([templates] text) with the same content",
            ));
        }
    }

    no_visible_unsubscribe(input, facts.as_ref(), &unsub, &mut out);

    if let Some(f) = &facts {
        link_rules(f, &mut out);
        image_rules(f, &mut out);
    }

    subject_rules(input.subject, &mut out);

    if !input.empty_fields_in_subject_or_greeting.is_empty() {
        let names = input.empty_fields_in_subject_or_greeting.join(", ");
        let plural = input.empty_fields_in_subject_or_greeting.len() > 1;
        out.push(finding(
            "lint.empty-field",
            Level::Warn,
            format!(
                "{} {names} {} empty for this recipient but used in the subject or greeting \
                 (\"Hi ,\")",
                if plural { "the columns" } else { "the column" },
                if plural { "are" } else { "is" },
            ),
            format!(
                "fill in {names} in the CSV, or give a fallback in the template: \
                 {{{{#if {first}}}}}Hi {{{{{first}}}}}{{{{else}}}}Hello{{{{/if}}}}",
                first = input.empty_fields_in_subject_or_greeting[0]
            ),
        ));
    }

    if let Some(max) = cfg.max_message_bytes
        && input.message_bytes > max
    {
        out.push(finding(
            "lint.message-size",
            Level::Warn,
            format!(
                "the signed message is {} bytes, over the [lint] max_message_kb limit ({max} bytes)",
                input.message_bytes
            ),
            "link to large content instead of embedding it, or raise [lint] max_message_kb",
        ));
    }

    out
}

fn finding(id: &'static str, level: Level, message: String, fix: impl Into<String>) -> LintFinding {
    LintFinding {
        id,
        level,
        message,
        fix: fix.into(),
    }
}

fn no_visible_unsubscribe(
    input: &LintInput<'_>,
    facts: Option<&html::Facts<'_>>,
    unsub: &[&str],
    out: &mut Vec<LintFinding>,
) {
    if unsub.is_empty() {
        out.push(finding(
            "lint.no-visible-unsubscribe",
            Level::Warn,
            "no unsubscribe URL is configured, so the body cannot show one; Gmail and Yahoo \
             require a visible unsubscribe link in bulk mail"
                .into(),
            "add [unsubscribe] with an https url (and a secret) to campaign.toml, and put \
             {{unsubscribe_url}} in the text and HTML templates",
        ));
        return;
    }
    // The text part is plain text: the URL appears as it is. In HTML, hrefs and text are
    // compared after the parser decoded entities, so "&amp;" or "&#x3D;" from template
    // escaping do not hide a URL that a reader sees.
    let in_text = input
        .text
        .is_some_and(|t| unsub.iter().any(|u| t.contains(u)));
    let in_html = facts.is_some_and(|f| {
        unsub
            .iter()
            .any(|u| f.links.iter().any(|l| l.href.contains(u)) || f.text.contains(u))
    });
    if !in_text && !in_html {
        out.push(finding(
            "lint.no-visible-unsubscribe",
            Level::Warn,
            "the body shows none of this recipient's unsubscribe URLs; Gmail and Yahoo \
             require a clearly visible unsubscribe link in bulk mail"
                .into(),
            "put {{unsubscribe_url}} in the text and HTML templates, e.g. \
             <a href=\"{{unsubscribe_url}}\">Unsubscribe</a>",
        ));
    }
}

fn link_rules(f: &html::Facts<'_>, out: &mut Vec<LintFinding>) {
    let mut plain = Examples::default();
    let mut mismatched = Examples::default();
    let mut shortened = Examples::default();
    for link in &f.links {
        let Some(url) = host::http_url(&link.href) else {
            continue;
        };
        if !url.https {
            plain.add(link.href.trim().to_owned());
        }
        if host::is_shortener(&url.host) {
            shortened.add(link.href.trim().to_owned());
        }
        if let Some(shown) = host::text_host(&link.text)
            && !host::same_site(&shown, &url.host)
        {
            mismatched.add(format!("\"{}\" links to {}", link.text, url.host));
        }
    }
    if plain.count > 0 {
        out.push(finding(
            "lint.http-link",
            Level::Warn,
            format!(
                "{} use http:// instead of https://: {}",
                plain.links(),
                plain.list()
            ),
            "link with https:// (serve the pages over TLS)",
        ));
    }
    if mismatched.count > 0 {
        out.push(finding(
            "lint.link-text-mismatch",
            Level::Warn,
            format!(
                "{} show one address and go to another, as phishing does: {}",
                mismatched.links(),
                mismatched.list()
            ),
            "make the link text match where it goes, or use words (\"Read the issue\") \
             instead of an address",
        ));
    }
    if shortened.count > 0 {
        out.push(finding(
            "lint.url-shortener",
            Level::Warn,
            format!(
                "{} go through a URL shortener, which blocklists often list: {}",
                shortened.links(),
                shortened.list()
            ),
            "link to the full URL on your own domain",
        ));
    }
}

fn image_rules(f: &html::Facts<'_>, out: &mut Vec<LintFinding>) {
    if f.images_without_alt > 0 {
        out.push(finding(
            "lint.img-no-alt",
            Level::Warn,
            format!(
                "{} of {} images {} no alt attribute; with images blocked (the default in many \
                 clients) readers see nothing in their place",
                f.images_without_alt,
                f.images,
                if f.images_without_alt == 1 {
                    "has"
                } else {
                    "have"
                }
            ),
            "give every <img> an alt attribute: a short description, or alt=\"\" for \
             decorative images and tracking pixels",
        ));
    }
    let shown = f.content_images;
    let chars = f.visible_chars;
    let image_only = shown > 0 && chars < IMAGE_ONLY_MIN_CHARS;
    let image_heavy =
        shown >= IMAGE_RATIO_MIN_IMAGES && chars < IMAGE_RATIO_CHARS_PER_IMAGE * shown;
    if image_only || image_heavy {
        out.push(finding(
            "lint.image-only",
            Level::Warn,
            format!(
                "the HTML is mostly images: {shown} {} and {chars} visible characters of text; \
                 filters score image-only mail (SpamAssassin HTML_IMAGE_ONLY)",
                if shown == 1 { "image" } else { "images" }
            ),
            format!(
                "put the message in text, not in pictures: at least {} characters, and {} per \
                 image when there are {} or more",
                IMAGE_ONLY_MIN_CHARS, IMAGE_RATIO_CHARS_PER_IMAGE, IMAGE_RATIO_MIN_IMAGES
            ),
        ));
    }
}

fn subject_rules(subject: &str, out: &mut Vec<LintFinding>) {
    // Only cased letters count: digits, punctuation and scripts without case (CJK) say
    // nothing about shouting.
    let (mut upper, mut cased) = (0usize, 0usize);
    for c in subject.chars() {
        if c.is_uppercase() {
            upper += 1;
            cased += 1;
        } else if c.is_lowercase() {
            cased += 1;
        }
    }
    if cased >= SUBJECT_CAPS_MIN_LETTERS && upper * 100 >= cased * SUBJECT_CAPS_PERCENT {
        out.push(finding(
            "lint.subject-caps",
            Level::Warn,
            format!(
                "the subject is mostly capitals ({upper} of {cased} letters); filters score \
                 shouting subjects (SpamAssassin SUBJ_ALL_CAPS)"
            ),
            "write the subject in sentence case",
        ));
    }

    let mut run = 0usize;
    let mut longest = 0usize;
    for c in subject.chars() {
        if matches!(c, '!' | '?' | '\u{FF01}' | '\u{FF1F}') {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    if longest >= 3 {
        out.push(finding(
            "lint.subject-exclaim",
            Level::Warn,
            format!("the subject has {longest} ! or ? in a row; filters score that as spam"),
            "use at most one ! or ?",
        ));
    }

    let chars = subject.chars().count();
    if subject.trim().is_empty() {
        out.push(finding(
            "lint.subject-length",
            Level::Warn,
            "the subject is empty; filters and readers distrust mail without one".into(),
            "set [campaign] subject",
        ));
    } else if chars > SUBJECT_MAX_CHARS {
        out.push(finding(
            "lint.subject-length",
            Level::Info,
            format!(
                "the subject is {chars} characters; over 78 it folds (RFC 5322), and mobile \
                 clients show only the first 40-60"
            ),
            "shorten the subject and put what matters in its first 40 characters",
        ));
    }
}

/// Offending links: how many, and the first few distinct ones to quote.
#[derive(Default)]
struct Examples {
    count: usize,
    shown: Vec<String>,
}

impl Examples {
    fn add(&mut self, s: String) {
        self.count += 1;
        if self.shown.len() < EXAMPLES && !self.shown.contains(&s) {
            self.shown.push(s);
        }
    }

    fn links(&self) -> String {
        if self.count == 1 {
            "1 link".into()
        } else {
            format!("{} links", self.count)
        }
    }

    fn list(&self) -> String {
        let mut s = self.shown.join(", ");
        if self.count > self.shown.len() {
            s.push_str(", ...");
        }
        s
    }
}

#[cfg(test)]
mod tests;
