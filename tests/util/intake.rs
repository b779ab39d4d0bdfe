//! Helpers for the intake tests: the bounce fixtures filled in for a recipient, Maildirs,
//! report rows by address, and hostile messages (deep nesting, decompression bombs).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intake");

/// A fixture with the recipient and the Message-ID mailshot gave its message.
pub fn fixture(name: &str, rcpt: &str, message_id: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .replace("@@RCPT@@", rcpt)
        .replace("@@MSGID@@", message_id.trim_matches(['<', '>']))
}

/// A Maildir (cur, new, tmp) with each message as a file in new/, named in order.
pub fn maildir(dir: &Path, messages: &[Vec<u8>]) -> PathBuf {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (i, m) in messages.iter().enumerate() {
        std::fs::write(dir.join("new").join(format!("{:06}.test", i + 1)), m).unwrap();
    }
    dir.to_owned()
}

/// Writes messages as numbered .eml files (for IMAP APPEND).
pub fn eml_files(dir: &Path, messages: &[Vec<u8>]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.join(format!("{:03}.eml", i + 1));
            std::fs::write(&p, m).unwrap();
            p
        })
        .collect()
}

/// A campaign's report rows: address -> (status, smtp_text, message_id).
pub fn report(path: &Path) -> HashMap<String, (String, String, String)> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[1].to_owned(),
                (rec[2].to_owned(), rec[4].to_owned(), rec[5].to_owned()),
            )
        })
        .collect()
}

/// `depth` levels of message/rfc822, each wrapping the next.
pub fn nested(depth: usize) -> Vec<u8> {
    let mut m = String::from("Subject: core\r\n\r\nthe innermost body\r\n");
    for i in 0..depth {
        m = format!(
            "From: a@example.com\r\nSubject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n{m}"
        );
    }
    m.into_bytes()
}

/// A mail with a "DMARC report" attachment that gunzips to `mib` MiB of zeros (gzip does it:
/// an independent compressor, and a few hundred KB on disk).
pub fn gzip_bomb_mail(mib: usize) -> Vec<u8> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!("head -c {mib}M /dev/zero | gzip -9 | base64 -w 76"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b64 = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut b64).unwrap();
    child.wait().unwrap();
    format!(
        "From: noreply-dmarc@bomb.example\r\nTo: dmarc@news.example.com\r\nSubject: Report Domain: news.example.com Submitter: bomb.example Report-ID: 1\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: application/gzip; name=\"bomb.example!news.example.com!1!2.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--B--\r\n"
    )
    .into_bytes()
}

/// A message of about `mib` MiB.
pub fn huge(mib: usize) -> Vec<u8> {
    let mut m = b"From: a@example.com\r\nSubject: huge\r\n\r\n".to_vec();
    let line = [b'x'; 998];
    while m.len() < mib << 20 {
        m.extend_from_slice(&line);
        m.extend_from_slice(b"\r\n");
    }
    m
}
