//! Builders for hostile input (archives, compressed layers, reports) made in the test itself,
//! and a watchdog for commands that the bug under test would hang.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mail_auth::flate2::Compression;
use mail_auth::flate2::write::{DeflateEncoder, GzEncoder};

/// A small, valid DMARC aggregate report with one record from 192.0.2.1; `org` is inserted
/// as written (the caller escapes XML).
pub fn report_xml(org: &str, domain: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>{org}</org_name><email>d@example.org</email>
    <report_id>hostile-1</report_id><date_range><begin>1</begin><end>86400</end></date_range>
  </report_metadata>
  <policy_published><domain>{domain}</domain><p>none</p></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>{domain}</header_from></identifiers>
    <auth_results><spf><domain>{domain}</domain><result>fail</result></spf></auth_results></record>
</feedback>
"#
    )
}

pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Feeds `len` zero bytes to `w` in 1 MiB blocks (no `len`-sized buffer).
fn write_zeros(w: &mut impl Write, len: usize) {
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        w.write_all(&block[..n]).unwrap();
        left -= n;
    }
}

/// `len` zero bytes, gzipped at `level` (0 stores them: the output is larger than `len`).
pub fn gzip_zeros(len: usize, level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    write_zeros(&mut e, len);
    e.finish().unwrap()
}

fn deflate_zeros(len: usize) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
    write_zeros(&mut e, len);
    e.finish().unwrap()
}

/// A zip whose `entries` central-directory records all point at one local file: `len` zero
/// bytes deflated once. Written by hand, as no zip writer makes this (it is the attack).
/// CRC-32 of the zeros is computed, so every entry is individually valid.
pub fn overlapping_zip(entries: u16, len: u32) -> Vec<u8> {
    let data = deflate_zeros(len as usize);
    let crc = crc32_zeros(len);
    let mut out = Vec::new();
    let local = |out: &mut Vec<u8>, name: &[u8]| {
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&8u16.to_le_bytes()); // deflate
        out.extend_from_slice(&[0; 4]); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name);
    };
    local(&mut out, b"r.xml");
    out.extend_from_slice(&data);
    let cd_start = out.len() as u32;
    for i in 0..entries {
        let name = format!("r{i}.xml");
        out.extend_from_slice(b"PK\x01\x02");
        out.extend_from_slice(&20u16.to_le_bytes()); // made by
        out.extend_from_slice(&20u16.to_le_bytes()); // needed
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 12]); // extra, comment, disk, internal and external attrs
        out.extend_from_slice(&0u32.to_le_bytes()); // every entry: the one local header
        out.extend_from_slice(name.as_bytes());
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A well-formed zip of the given members (deflated), from the zip crate's writer.
pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    use mail_auth::zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};
    let mut w = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(
            *name,
            SimpleFileOptions::default()
                .compression_method(CompressionMethod::Deflated)
                .large_file(data.len() > u32::MAX as usize),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// CRC-32 (IEEE) of `len` zero bytes, bit by bit: small enough for tests, no extra crate.
fn crc32_zeros(len: u32) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut crc = !0u32;
    for _ in 0..len {
        crc = table[(crc & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Runs a command that the bug under test would hang (a FIFO) or grow without end
/// (`/dev/zero`). Not a timing assertion: the limit is minutes, far above any real run, and
/// only stops a broken build from hanging the suite.
pub fn run_or_kill(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mailshot");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mailshot did not finish in {limit:?} (killed); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    super::show("mailshot", &out);
    out
}
