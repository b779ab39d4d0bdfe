//! Independent DKIM verification for tests: runs tests/support/dkim_verify.py (dkimpy) against a message and a test zone file, and writes such zone files.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/dkim_verify.py");
/// Debian installs dkimpy for the system interpreter only.
const PYTHON: &str = "/usr/bin/python3";

/// Outcome of dkimpy's verdict on every DKIM-Signature of a message.
#[derive(Debug, Clone)]
pub struct DkimCheck {
    /// True only if there is at least one signature and all verify.
    pub ok: bool,
    /// The script's JSON line (one entry per signature, with d=, s=, a= and
    /// the failure reason), followed by its stderr if it wrote any.
    pub output: String,
}

pub fn verify_with_dkimpy(message: &Path, zone: &Path) -> DkimCheck {
    let out = Command::new(PYTHON)
        .arg(SCRIPT)
        .arg("--zone")
        .arg(zone)
        .arg(message)
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON} {SCRIPT}: {e}"));
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.stderr.is_empty() {
        output.push_str("\n--- stderr ---\n");
        output.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    DkimCheck {
        ok: out.status.success(),
        output,
    }
}

/// One zone-file line publishing `value` as TXT at `name`.
///
/// The value is split into quoted strings of at most 255 bytes, as a real DNS
/// TXT record must be (an RSA-2048 `p=` alone is ~400 bytes), so the test
/// also covers verifiers rejoining the strings.  `"` and `\` are escaped.
pub fn zone_txt_record(name: &str, value: &str) -> String {
    let mut line = format!("{name} 300 IN TXT");
    let bytes = value.as_bytes();
    for chunk in bytes.chunks(255) {
        line.push_str(" \"");
        for &b in chunk {
            match b {
                b'"' | b'\\' => {
                    line.push('\\');
                    line.push(b as char);
                }
                // \DDD keeps multi-byte UTF-8 split across strings intact.
                0x20..=0x7e => line.push(b as char),
                _ => line.push_str(&format!("\\{b:03}")),
            }
        }
        line.push('"');
    }
    line.push('\n');
    line
}
