//! Independent SPF/DMARC verdicts for interop tests: runs tests/support/checkdmarc_json.py (checkdmarc from PyPI, in the venv tests/setup makes) against a loopback DNS server and reads back its JSON line.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/checkdmarc_json.py"
);
/// checkdmarc is not packaged by Debian; tests/setup pip-installs it into this venv.
const PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/interop-venv/bin/python"
);

/// checkdmarc's verdict on one domain, as reduced by the wrapper script.
#[derive(Debug, Clone)]
pub struct Checkdmarc {
    /// check_spf's `valid`: a record was found, parsed, and stayed within the limits.
    pub spf_valid: bool,
    /// DNS-querying terms counted (RFC 7208 4.6.4), None when checkdmarc gave up first.
    pub spf_lookups: Option<u32>,
    /// Lookups that returned nothing (RFC 7208 4.6.4's void limit of 2).
    pub spf_void: Option<u32>,
    pub spf_error: Option<String>,
    pub dmarc_valid: bool,
    /// The `p=` of the record that applies, None when there is none or it is invalid.
    pub dmarc_p: Option<String>,
    /// The domain whose `_dmarc` name held that record (the domain or an ancestor).
    pub dmarc_location: Option<String>,
    pub dmarc_error: Option<String>,
    /// The script's JSON line, followed by its stderr if it wrote any, for assert messages.
    pub raw: String,
}

/// Audits `domain` with checkdmarc, asking only the DNS server on 127.0.0.1:`ns_port`.
/// Panics, with the script's output, if it crashes or prints something unexpected.
pub fn checkdmarc(ns_port: u16, domain: &str) -> Checkdmarc {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run tests/setup (it creates the checkdmarc venv)"
    );
    let out = Command::new(PYTHON)
        .arg(SCRIPT)
        .args(["--nameserver", "127.0.0.1", "--port", &ns_port.to_string()])
        .arg(domain)
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON} {SCRIPT}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut raw = stdout.trim_end().to_owned();
    if !out.stderr.is_empty() {
        raw.push_str("\n--- stderr ---\n");
        raw.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(out.status.success(), "checkdmarc_json.py failed: {raw}");

    let v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {raw}"));
    let field = |section: &str, key: &str| -> &Value {
        v.get(section)
            .and_then(|s| s.get(key))
            .unwrap_or_else(|| panic!("no {section}.{key} in: {raw}"))
    };
    let boolean = |section: &str, key: &str| match field(section, key) {
        Value::Bool(b) => *b,
        other => panic!("{section}.{key} is {other:?}, not a bool: {raw}"),
    };
    // As f64, so a count Python wrote as a float (3.0) still reads as a count.
    let count = |section: &str, key: &str| match field(section, key) {
        Value::Null => None,
        Value::Number(n) => match n.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Some(n as u32),
            _ => panic!("{section}.{key} is {n}, not a count: {raw}"),
        },
        other => panic!("{section}.{key} is {other:?}, not a count: {raw}"),
    };
    let text = |section: &str, key: &str| match field(section, key) {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("{section}.{key} is {other:?}, not a string: {raw}"),
    };
    Checkdmarc {
        spf_valid: boolean("spf", "valid"),
        spf_lookups: count("spf", "dns_lookups"),
        spf_void: count("spf", "void_lookups"),
        spf_error: text("spf", "error"),
        dmarc_valid: boolean("dmarc", "valid"),
        dmarc_p: text("dmarc", "p"),
        dmarc_location: text("dmarc", "record_found_at"),
        dmarc_error: text("dmarc", "error"),
        raw,
    }
}
