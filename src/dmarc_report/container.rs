//! Finding the aggregate reports inside one file's bytes: plain XML, gzip, zip, or an email
//! with the report attached (forwarded ones too), decided by content, never by file name.
//!
//! Receivers name and label reports inconsistently (`application/octet-stream` attachments,
//! `.xml.gz` files saved as `.xml`, Maildir files without any extension), so every layer is
//! recognized by its first bytes: gzip and zip magic numbers, `<?xml`/`<feedback`, or an
//! RFC 5322 header line. mail-auth's `Report::parse_rfc5322` chooses by Content-Type and
//! attachment name instead and stops at the first report, so emails are walked here with
//! mail-parser and each part goes through the same sniffing as a file on disk.

use std::cell::Cell;
use std::io::{self, Cursor, Read};

use mail_auth::flate2::read::GzDecoder;
use mail_auth::report::Report;
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// The largest file read, and the most bytes all the decompression inside one file may produce
/// together (every layer, every zip member). Real aggregate reports run from a few KB to a few
/// MB (a big sender's daily Google report); 64 MiB leaves a wide margin while keeping a gzip or
/// zip bomb from exhausting memory or CPU on every worker at once. One budget for the whole
/// file, not one per member or layer: otherwise 200 zip entries pointing at the same
/// compressed data, or gzip nested in gzip, multiply the cap.
pub const MAX_BYTES: u64 = 64 << 20;

/// Zip members read per archive at most. A report archive holds one file; a crafted one can
/// list 65,535 entries, each costing a seek and a header parse before any budget applies.
pub const MAX_ZIP_MEMBERS: usize = 100;

/// Containers nested deeper than this (a zip in a forwarded email in an email...) are refused:
/// real reports use at most three layers (email, attachment, compression).
const MAX_DEPTH: u8 = 6;

/// RFC 9990 section 3: the XML namespace of the new aggregate report format. mail-auth reads
/// both formats but does not say which one a document declared.
pub const RFC9990_NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// One report and the format its document declared.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub report: Report,
    /// The document declares the RFC 9990 namespace.
    pub rfc9990: bool,
}

/// Why a file was skipped, in two kinds the summary counts apart: files that are not
/// aggregate reports at all, and reports that could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// Not a DMARC aggregate report (another kind of file or mail); nothing was lost.
    NotAReport,
    /// A report, or something claiming to be one, that is corrupt or truncated: its messages
    /// are missing from the totals.
    Broken,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("larger than the {} MiB limit", MAX_BYTES >> 20)]
    TooLarge,
    #[error("decompresses to more than the {} MiB limit (all layers and members together)", MAX_BYTES >> 20)]
    Bomb,
    #[error("not a regular file (a device, FIFO or socket); name the report files themselves")]
    NotAFile,
    #[error("a zip archive with more than {MAX_ZIP_MEMBERS} members; real reports hold one")]
    TooManyMembers,
    #[error("a zip archive whose members share compressed data (a zip bomb); refused")]
    OverlappingMembers,
    #[error("not a DMARC aggregate report (neither XML, gzip, zip nor an email)")]
    NotAReport,
    #[error("XML, but not a DMARC aggregate report (no <feedback> element)")]
    NotFeedback,
    #[error("an email without a DMARC aggregate report in it")]
    NoReportInMail,
    #[error("a zip archive without a DMARC aggregate report in it")]
    NoReportInZip,
    #[error("gzip data is corrupt or truncated: {0}")]
    Gzip(std::io::Error),
    #[error("zip archive is corrupt or truncated: {0}")]
    Zip(String),
    #[error("the report is truncated: it stops before </feedback>{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Truncated { detail: Option<String> },
    #[error("invalid aggregate report XML: {0}")]
    Xml(String),
    #[error("containers nested more than {MAX_DEPTH} deep")]
    TooDeep,
    /// A panic while parsing: a bug, but one file must not stop the other 9,999.
    #[error("the parser crashed on this file (a bug in mailshot or a library it uses)")]
    Crashed,
    /// A failure inside one part of a container, named so the user can find it.
    #[error("{part}: {source}")]
    InPart {
        part: String,
        #[source]
        source: Box<ReadError>,
    },
}

impl ReadError {
    pub fn kind(&self) -> SkipKind {
        match self {
            ReadError::NotAReport
            | ReadError::NotFeedback
            | ReadError::NoReportInMail
            | ReadError::NoReportInZip => SkipKind::NotAReport,
            ReadError::InPart { source, .. } => source.kind(),
            _ => SkipKind::Broken,
        }
    }
}

/// What the first bytes say a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Gzip,
    Zip,
    Xml,
    Mail,
    Unknown,
}

fn sniff(data: &[u8]) -> Sniffed {
    if data.starts_with(&[0x1f, 0x8b]) {
        return Sniffed::Gzip;
    }
    // A local file header, or the end record of an empty archive (which then holds no report).
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return Sniffed::Zip;
    }
    let text = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let text = text.trim_ascii_start();
    if text.starts_with(b"<?xml") || text.starts_with(b"<feedback") || text.starts_with(b"<!--") {
        return Sniffed::Xml;
    }
    if looks_like_mail(data) {
        return Sniffed::Mail;
    }
    Sniffed::Unknown
}

/// True when the first line is an RFC 5322 header field (`Name: value`), after an optional
/// mbox `From ` line. A report folder's other files (README, CSV, JSON) fail this at once.
fn looks_like_mail(data: &[u8]) -> bool {
    let mut data = data;
    if data.starts_with(b"From ") {
        match data.iter().position(|&b| b == b'\n') {
            Some(i) => data = &data[i + 1..],
            None => return false,
        }
    }
    let Some(colon) = data.iter().take(256).position(|&b| b == b':') else {
        return false;
    };
    // RFC 5322 2.2: a field name is printable ASCII except the colon, with no spaces.
    colon > 0 && data[..colon].iter().all(|&b| (33..=126).contains(&b))
}

/// Every aggregate report in `data`, whatever wraps it. A file that holds none is an error
/// whose kind says whether anything was lost.
pub fn reports_in(data: &[u8]) -> Result<Vec<Parsed>, ReadError> {
    Walker {
        budget: Budget::new(MAX_BYTES),
    }
    .unwrap(data, 0)
}

/// The bytes that decompression may still produce for the file being read.
struct Budget {
    left: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn new(bytes: u64) -> Budget {
        Budget {
            left: Cell::new(bytes),
            exceeded: Cell::new(false),
        }
    }
}

/// A decompressor's output, counted against the file's [`Budget`]. Going over is an I/O
/// error (the only kind `Read` has) and sets the budget's flag, which callers turn into
/// [`ReadError::Bomb`].
struct Metered<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.left.get();
        if buf.is_empty() {
            return Ok(0);
        }
        // With nothing left, one more byte tells a stream that ended exactly at the budget
        // from one that goes over it.
        let cap = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .clamp(1, buf.len());
        let n = self.inner.read(&mut buf[..cap])? as u64;
        // Read the budget again: a nested layer's reader, inside `inner`, spent from it.
        let left = self.budget.left.get();
        if n > left {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("decompression budget exceeded"));
        }
        self.budget.left.set(left - n);
        Ok(n as usize)
    }
}

struct Walker {
    budget: Budget,
}

impl Walker {
    /// An I/O error from a metered reader is a bomb when the budget says so.
    fn io(&self, e: io::Error, wrap: impl FnOnce(io::Error) -> ReadError) -> ReadError {
        if self.budget.exceeded.get() {
            ReadError::Bomb
        } else {
            wrap(e)
        }
    }

    fn unwrap(&self, data: &[u8], depth: u8) -> Result<Vec<Parsed>, ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        match sniff(data) {
            Sniffed::Gzip => {
                let (inner, layers) = self.gunzip(data, depth)?;
                self.unwrap(&inner, depth + layers)
            }
            Sniffed::Zip => self.unzip(data, depth),
            Sniffed::Xml => Ok(vec![parse_xml(data)?]),
            Sniffed::Mail => {
                let message = MessageParser::new()
                    .parse(data)
                    .ok_or(ReadError::NoReportInMail)?;
                let mut reports = Vec::new();
                self.walk_message(&message, depth, &mut reports)?;
                if reports.is_empty() {
                    return Err(ReadError::NoReportInMail);
                }
                Ok(reports)
            }
            Sniffed::Unknown => Err(ReadError::NotAReport),
        }
    }

    /// Decompresses gzip, and any gzip directly inside it, as one stream: the layers in between
    /// are never held in memory, and all of them count against the one budget. Returns the
    /// innermost content and the number of gzip layers taken off.
    fn gunzip(&self, data: &[u8], depth: u8) -> Result<(Vec<u8>, u8), ReadError> {
        let gz_err = |e| self.io(e, ReadError::Gzip);
        let mut reader: Box<dyn Read + '_> = Box::new(Metered {
            inner: GzDecoder::new(data),
            budget: &self.budget,
        });
        let mut layers = 1;
        loop {
            let mut head = Vec::with_capacity(2);
            (&mut reader)
                .take(2)
                .read_to_end(&mut head)
                .map_err(gz_err)?;
            if !head.starts_with(&[0x1f, 0x8b]) {
                let mut out = head;
                reader.read_to_end(&mut out).map_err(gz_err)?;
                return Ok((out, layers));
            }
            if depth + layers > MAX_DEPTH {
                return Err(ReadError::TooDeep);
            }
            layers += 1;
            reader = Box::new(Metered {
                inner: GzDecoder::new(Cursor::new(head).chain(reader)),
                budget: &self.budget,
            });
        }
    }

    /// Every member that is a report counts; members that are something else (a README) are
    /// passed over, but one broken member fails the whole archive, since its totals would be short.
    fn unzip(&self, data: &[u8], depth: u8) -> Result<Vec<Parsed>, ReadError> {
        let zip_err = |e: mail_auth::zip::result::ZipError| ReadError::Zip(e.to_string());
        let mut archive = mail_auth::zip::ZipArchive::new(Cursor::new(data)).map_err(zip_err)?;
        if archive.len() > MAX_ZIP_MEMBERS {
            return Err(ReadError::TooManyMembers);
        }
        // Members that share compressed data are how a 75 KB zip inflates to gigabytes; no
        // writer of real reports produces them.
        if archive.has_overlapping_files().map_err(zip_err)? {
            return Err(ReadError::OverlappingMembers);
        }
        let mut reports = Vec::new();
        for i in 0..archive.len() {
            let member = archive.by_index(i).map_err(zip_err)?;
            if member.is_dir() {
                continue;
            }
            let part = format!("zip member {:?}", member.name());
            let in_part = |e: ReadError| ReadError::InPart {
                part: part.clone(),
                source: Box::new(e),
            };
            if member.size() > self.budget.left.get() {
                return Err(in_part(ReadError::Bomb));
            }
            // The zip crate checks the CRC at the end of the member: a corrupt member is an I/O
            // error here.
            let mut bytes = Vec::new();
            Metered {
                inner: member,
                budget: &self.budget,
            }
            .read_to_end(&mut bytes)
            .map_err(|e| in_part(self.io(e, |io| ReadError::Zip(io.to_string()))))?;
            match self.unwrap(&bytes, depth + 1) {
                Ok(found) => reports.extend(found),
                Err(e) if e.kind() == SkipKind::NotAReport => {}
                Err(e) => return Err(in_part(e)),
            }
        }
        if reports.is_empty() {
            return Err(ReadError::NoReportInZip);
        }
        Ok(reports)
    }

    /// Every part of the message (mail-parser lists nested parts flat) is sniffed; a nested
    /// message (a report forwarded as an attachment) is walked in turn.
    fn walk_message(
        &self,
        message: &Message<'_>,
        depth: u8,
        reports: &mut Vec<Parsed>,
    ) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        for (i, part) in message.parts.iter().enumerate() {
            let label = || match part.attachment_name() {
                Some(name) => format!("attachment {name:?}"),
                None => format!("MIME part {}", i + 1),
            };
            let bytes: &[u8] = match &part.body {
                PartType::Text(text) | PartType::Html(text) => text.as_bytes(),
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes,
                PartType::Message(inner) => {
                    self.walk_message(inner, depth + 1, reports).map_err(|e| {
                        ReadError::InPart {
                            part: label(),
                            source: Box::new(e),
                        }
                    })?;
                    continue;
                }
                PartType::Multipart(_) => continue,
            };
            match self.unwrap(bytes, depth + 1) {
                Ok(found) => reports.extend(found),
                // The text body ("This is a DMARC report") and other attachments.
                Err(e) if e.kind() == SkipKind::NotAReport => {}
                Err(e) => {
                    return Err(ReadError::InPart {
                        part: label(),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }
}

/// mail-auth's parser stops quietly at the end of input, so a report cut off after some
/// complete records would parse and silently under-count. A complete report ends with
/// `</feedback>` (then only whitespace or comments), which is checked here.
fn parse_xml(data: &[u8]) -> Result<Parsed, ReadError> {
    let complete = ends_with_feedback(data);
    match Report::parse_xml(data) {
        Ok(report) if complete => Ok(Parsed {
            report,
            rfc9990: contains(data, RFC9990_NAMESPACE.as_bytes()),
        }),
        Ok(_) => Err(ReadError::Truncated { detail: None }),
        Err(e) if !contains(data, b"<feedback") => {
            tracing::debug!("not a feedback document: {e}");
            Err(ReadError::NotFeedback)
        }
        Err(e) if !complete => Err(ReadError::Truncated { detail: Some(e) }),
        Err(e) => Err(ReadError::Xml(e)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn ends_with_feedback(data: &[u8]) -> bool {
    let Some(at) = data.windows(10).rposition(|w| w == b"</feedback") else {
        return false;
    };
    let Some(mut rest) = data[at + 10..].trim_ascii_start().strip_prefix(b">") else {
        return false;
    };
    // Some writers pad with NULs or end with a comment; anything else means more content.
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b"\0") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return true;
        }
        let Some(comment) = rest.strip_prefix(b"<!--") else {
            return false;
        };
        match comment.windows(3).position(|w| w == b"-->") {
            Some(end) => rest = &comment[end + 3..],
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const REPORT: &str = r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>Example</org_name><email>d@example.org</email>
    <report_id>r1</report_id><date_range><begin>1</begin><end>86400</end></date_range>
  </report_metadata>
  <policy_published><domain>example.com</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>
  <record><row><source_ip>192.0.2.2</source_ip><count>4</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>
</feedback>
"#;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = mail_auth::flate2::write::GzEncoder::new(
            Vec::new(),
            mail_auth::flate2::Compression::default(),
        );
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zip(name: &str, data: &[u8]) -> Vec<u8> {
        let mut w = mail_auth::zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(
            name,
            mail_auth::zip::write::SimpleFileOptions::default()
                .compression_method(mail_auth::zip::CompressionMethod::Deflated),
        )
        .unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap().into_inner()
    }

    fn b64(data: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn mail(content_type: &str, name: &str, payload: &[u8]) -> Vec<u8> {
        format!(
            "From: r@example.org\r\nSubject: Report\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nA report.\r\n--b\r\n\
             Content-Type: {content_type}; name=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(payload)
        )
        .into_bytes()
    }

    fn counts(reports: &[Parsed]) -> Vec<u32> {
        reports
            .iter()
            .flat_map(|r| r.report.record.iter().map(|rec| rec.row.count))
            .collect()
    }

    #[test]
    fn every_wrapping_is_found_by_content() {
        let xml = REPORT.as_bytes();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("xml", xml.to_vec()),
            ("xml with BOM", [b"\xef\xbb\xbf".as_slice(), xml].concat()),
            ("gzip", gz(xml)),
            ("zip", zip("r.xml", xml)),
            ("zip of gzip", zip("r.xml.gz", &gz(xml))),
            (
                "mail with gzip",
                mail("application/gzip", "r.xml.gz", &gz(xml)),
            ),
            // Labels that lie: content decides.
            (
                "mail, octet-stream zip",
                mail("application/octet-stream", "report", &zip("x", xml)),
            ),
            ("mail, text/xml", mail("text/xml", "r.xml", xml)),
            (
                "gzip of mail",
                gz(&mail("application/zip", "r.zip", &zip("r.xml", xml))),
            ),
        ];
        for (what, data) in cases {
            let reports = reports_in(&data).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(counts(&reports), [3, 4], "{what}");
        }
    }

    #[test]
    fn forwarded_report_inside_a_message_attachment() {
        let inner = mail("application/gzip", "r.xml.gz", &gz(REPORT.as_bytes()));
        let outer = format!(
            "From: me@example.com\r\nSubject: Fwd: report\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\n\
             Content-Type: text/plain\r\n\r\nsee attached\r\n--o\r\n\
             Content-Type: message/rfc822\r\n\r\n{}\r\n--o--\r\n",
            String::from_utf8(inner).unwrap()
        );
        assert_eq!(counts(&reports_in(outer.as_bytes()).unwrap()), [3, 4]);
    }

    #[test]
    fn truncation_is_detected_at_every_layer() {
        let xml = REPORT.as_bytes();
        // Cut after the first complete record: mail-auth alone would return one record.
        let cut = &xml[..REPORT.find("<record><row><source_ip>192.0.2.2").unwrap()];
        let e = reports_in(cut).unwrap_err();
        assert!(matches!(e, ReadError::Truncated { .. }), "{e}");
        assert_eq!(e.kind(), SkipKind::Broken);

        let e = reports_in(&xml[..xml.len() / 2]).unwrap_err();
        assert!(matches!(e, ReadError::Truncated { .. }), "{e}");

        let g = gz(xml);
        let e = reports_in(&g[..g.len() - 12]).unwrap_err();
        assert!(matches!(e, ReadError::Gzip(_)), "{e}");

        let z = zip("r.xml", xml);
        let e = reports_in(&z[..z.len() - 30]).unwrap_err();
        assert!(matches!(e, ReadError::Zip(_)), "{e}");

        let m = mail("application/gzip", "r.xml.gz", &g[..g.len() - 12]);
        let e = reports_in(&m).unwrap_err();
        assert!(
            e.to_string().starts_with("attachment \"r.xml.gz\": gzip"),
            "{e}"
        );
        assert_eq!(e.kind(), SkipKind::Broken);
    }

    #[test]
    fn a_complete_report_may_end_with_padding_or_a_comment() {
        for tail in [
            "\n\n",
            "\0\0",
            "\n<!-- generated -->\n",
            " \n<!-- a --><!-- b -->",
        ] {
            let data = format!("{REPORT}{tail}");
            assert_eq!(
                counts(&reports_in(data.as_bytes()).unwrap()),
                [3, 4],
                "{tail:?}"
            );
        }
        let data = format!("{REPORT}<feedback>");
        assert!(reports_in(data.as_bytes()).is_err());
    }

    #[test]
    fn other_files_are_not_reports_and_lose_nothing() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("text", b"hello world\n".to_vec()),
            ("csv", b"ip,count\n192.0.2.1,3\n".to_vec()),
            ("tls-rpt json.gz", gz(br#"{"organization-name":"x"}"#)),
            ("other xml", b"<?xml version=\"1.0\"?><rss></rss>".to_vec()),
            (
                "mail without report",
                b"From: a@b\r\nSubject: hi\r\n\r\nhello\r\n".to_vec(),
            ),
            ("empty", Vec::new()),
        ];
        for (what, data) in cases {
            let e = reports_in(&data).unwrap_err();
            assert_eq!(e.kind(), SkipKind::NotAReport, "{what}: {e}");
        }
    }

    fn gz_level(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = mail_auth::flate2::write::GzEncoder::new(
            Vec::new(),
            mail_auth::flate2::Compression::new(level),
        );
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_layers_share_one_budget_and_a_deep_report_still_reads() {
        // 40 MiB stored, inside a compressed layer: each layer is under the limit, both
        // together are not.
        let stored = gz_level(&vec![0u8; 40 << 20], 0);
        assert!(stored.len() > 40 << 20);
        let e = reports_in(&gz_level(&stored, 9)).unwrap_err();
        assert!(matches!(e, ReadError::Bomb), "{e}");
        // Layers are taken off as one stream, up to the depth limit.
        let mut deep = REPORT.as_bytes().to_vec();
        for _ in 0..MAX_DEPTH {
            deep = gz(&deep);
        }
        assert_eq!(counts(&reports_in(&deep).unwrap()), [3, 4]);
        let e = reports_in(&gz(&deep)).unwrap_err();
        assert!(matches!(e, ReadError::TooDeep), "{e}");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 65 MiB of zeros compress to about 64 KiB.
        let mut e = mail_auth::flate2::write::GzEncoder::new(
            Vec::new(),
            mail_auth::flate2::Compression::best(),
        );
        let block = vec![0u8; 1 << 20];
        for _ in 0..65 {
            e.write_all(&block).unwrap();
        }
        let bomb = e.finish().unwrap();
        assert!(matches!(reports_in(&bomb).unwrap_err(), ReadError::Bomb));
    }
}
