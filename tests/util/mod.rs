//! Shared test helpers: the mailshot binary, campaign folders and what they produce (report,
//! journal), the set-up builder (scenario) and the real servers (tls: a test CA; smtp:
//! aiosmtpd and the scripted responder; dns: knot; dkim: dkimpy). Test files import from
//! here only, never from each other.
#![allow(dead_code)]

pub mod background;
pub mod dkim;
pub mod dns;
pub mod dovecot;
pub mod hostile;
pub mod http;
pub mod intake;
pub mod interop;
pub mod journal;
pub mod postfix;
pub mod scenario;
pub mod smtp;
pub mod tls;
pub mod verp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixed clock every test run uses, so Date headers and signatures repeat.
pub const FIXED_TIME: &str = "1795600000";

pub fn mailshot() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mailshot"));
    c.env("MAILSHOT_FIXED_TIME", FIXED_TIME)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    c
}

/// Runs mailshot and returns its output, printing it so failing tests show it.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = mailshot();
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    output_of(c, args)
}

/// Runs mailshot with its clock started at `start` (RFC 3339) and running on in real time,
/// instead of pinned: for what happens as time passes, such as a run going through midnight.
pub fn run_from(start: &str, args: &[&str]) -> Output {
    let mut c = mailshot();
    c.env_remove("MAILSHOT_FIXED_TIME")
        .env("MAILSHOT_CLOCK_START", start)
        .args(args);
    output_of(c, args)
}

fn output_of(mut c: Command, args: &[&str]) -> Output {
    let out = c.output().expect("run mailshot");
    show(&format!("mailshot {args:?}"), &out);
    out
}

/// Prints a finished run's exit code and output, so a failing test shows what it judged.
pub fn show(what: &str, out: &Output) {
    eprintln!(
        "--- {what} exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback port free a moment ago, for servers that take their port from a config file
/// (Dovecot, Postfix) and so cannot be asked for port 0 and tell us what they got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A recipient file with one row per address (`first_name` is what the templates use).
pub fn csv_of(addresses: &[&str]) -> String {
    let mut csv = String::from("email,first_name\n");
    for (i, a) in addresses.iter().enumerate() {
        csv.push_str(&format!("{a},Name{i}\n"));
    }
    csv
}

/// Status -> how many report rows have it.
pub fn report_counts(rows: &[ReportRow]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.status.clone()).or_default() += 1;
    }
    m
}

/// The Message-ID header of a raw message, angle brackets included (as the report has it).
pub fn message_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default()
}

const EXAMPLE_KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/newsletter/keys");

/// A campaign in a temporary folder: campaign.toml, recipients.csv, templates, both example
/// DKIM keys (RSA s2026r, Ed25519 s2026e, domain news.example.com) and a zone file with
/// their public halves for the independent verifier.
pub struct CampaignDir {
    pub dir: tempfile::TempDir,
    pub toml: PathBuf,
    pub zone: PathBuf,
}

pub struct Spec<'a> {
    /// The [preflight] table; the default answers from the campaign's own dns.zone only.
    pub preflight: &'a str,
    pub csv: &'a str,
    /// The transport table(s) and anything else appended to campaign.toml.
    pub tail: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            preflight: "[preflight]\nzone = \"dns.zone\"\nnameserver = \"none\"\n",
            csv: "email,first_name\nann@example.com,Ann\nbob@example.org,Bob\ncat@example.net,Cat\n",
            tail: "[outbox]\ndir = \"outbox\"\n",
            subject: "Hello {{first_name}}",
            text: "Hi {{first_name}},\n\nNews.\n.leading dot line\n\nUnsubscribe: {{unsubscribe_url}}\n",
            html: Some(
                "<p>Hi {{first_name}},</p><p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>\n",
            ),
        }
    }
}

impl CampaignDir {
    pub fn new(spec: &Spec<'_>) -> CampaignDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("keys")).unwrap();
        for k in ["s2026r.pem", "s2026e.pem"] {
            std::fs::copy(Path::new(EXAMPLE_KEYS).join(k), d.join("keys").join(k)).unwrap();
        }
        std::fs::write(d.join("recipients.csv"), spec.csv).unwrap();
        std::fs::write(d.join("message.txt.hbs"), spec.text).unwrap();
        let html_line = match spec.html {
            Some(h) => {
                std::fs::write(d.join("message.html.hbs"), h).unwrap();
                "html = \"message.html.hbs\"\n"
            }
            None => "",
        };
        std::fs::write(d.join("unsub.secret"), "test-secret\n").unwrap();
        let toml = format!(
            r#"[campaign]
id = "test-campaign"
from = "Example News <news@news.example.com>"
return_path = "bounces@news.example.com"
subject = "{subject}"

[templates]
text = "message.txt.hbs"
{html_line}
[recipients]
file = "recipients.csv"

[[dkim]]
domain = "news.example.com"
selector = "s2026r"
private_key = "keys/s2026r.pem"

[[dkim]]
domain = "news.example.com"
selector = "s2026e"
private_key = "keys/s2026e.pem"

[unsubscribe]
url = "https://news.example.com/unsubscribe"
mailto = "unsubscribe@news.example.com"
secret_file = "unsub.secret"

{preflight}
{tail}"#,
            subject = spec.subject,
            preflight = spec.preflight,
            tail = spec.tail,
        );
        let path = d.join("campaign.toml");
        std::fs::write(&path, toml).unwrap();
        let zone = d.join("dkim.zone");
        let dkim = dkim_zone(d);
        std::fs::write(&zone, &dkim).unwrap();
        std::fs::write(d.join("dns.zone"), format!("{DOMAIN_ZONE}{dkim}")).unwrap();
        CampaignDir {
            dir,
            toml: path,
            zone,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn toml_str(&self) -> &str {
        self.toml.to_str().unwrap()
    }

    /// The report rows as (row, address, status, code) plus the raw line.
    pub fn report(&self, name: &str) -> Vec<ReportRow> {
        let path = self.path().join(".mailshot/test-campaign").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut rows: Vec<ReportRow> = parse_csv(&text)
            .into_iter()
            .skip(1)
            .map(|f| ReportRow {
                row: f[0].parse().unwrap(),
                address: f[1].clone(),
                status: f[2].clone(),
                code: f[3].clone(),
                text: f[4].clone(),
                message_id: f[5].clone(),
                relay: f.get(7).cloned().unwrap_or_default(),
            })
            .collect();
        rows.sort_by_key(|r| r.row);
        rows
    }

    /// The .eml files of an outbox folder, sorted by name.
    pub fn eml_files(&self, sub: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.path().join(sub)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }
}

#[derive(Debug, Clone)]
pub struct ReportRow {
    pub row: u64,
    pub address: String,
    pub status: String,
    pub code: String,
    pub text: String,
    pub message_id: String,
    /// The relay that took it, when the campaign has several.
    pub relay: String,
}

/// A minimal RFC 4180 reader for the report (quoted fields, doubled quotes, newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The rest of news.example.com's records for the preflight overlay (the DKIM lines, in
/// absolute form, follow). SPF authorizes loopback, where the test servers are.
const DOMAIN_ZONE: &str = "$ORIGIN news.example.com.
$TTL 300
@ IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\"
@ IN MX 10 mx.news.example.com.
mx IN A 127.0.0.1
_dmarc IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@news.example.com\"
";

/// Zone lines for the example keys, public halves computed by openssl (not by mailshot).
fn dkim_zone(dir: &Path) -> String {
    let rsa = public_der(&dir.join("keys/s2026r.pem"));
    let ed = public_der(&dir.join("keys/s2026e.pem"));
    // RFC 8463: an Ed25519 p= is the bare 32-byte key, the tail of its SubjectPublicKeyInfo.
    let ed_raw = &ed[ed.len() - 32..];
    format!(
        "{}\n{}\n",
        dkim::zone_txt_record(
            "s2026r._domainkey.news.example.com.",
            &format!("v=DKIM1; k=rsa; p={}", b64(&rsa))
        ),
        dkim::zone_txt_record(
            "s2026e._domainkey.news.example.com.",
            &format!("v=DKIM1; k=ed25519; p={}", b64(ed_raw))
        ),
    )
}

/// The DER SubjectPublicKeyInfo of a PEM private key, computed by openssl.
pub fn public_der(key: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(key)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl pkey failed");
    out.stdout
}

/// Standard base64 (RFC 4648 alphabet, padded), the encoding of a DKIM record's `p=`.
pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
