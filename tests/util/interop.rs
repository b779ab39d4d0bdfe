//! Independent SPF/DMARC verdicts for interop tests: runs tests/support/checkdmarc_json.py (checkdmarc from PyPI, in the venv tests/setup makes) against a loopback DNS server and reads back its JSON line.
// Not every test uses every helper; the harness is shared.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

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

    let v = json::parse(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {raw}"));
    let field = |section: &str, key: &str| -> &json::Value {
        v.get(section)
            .and_then(|s| s.get(key))
            .unwrap_or_else(|| panic!("no {section}.{key} in: {raw}"))
    };
    let boolean = |section: &str, key: &str| match field(section, key) {
        json::Value::Bool(b) => *b,
        other => panic!("{section}.{key} is {other:?}, not a bool: {raw}"),
    };
    let count = |section: &str, key: &str| match field(section, key) {
        json::Value::Null => None,
        json::Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u32),
        other => panic!("{section}.{key} is {other:?}, not a count: {raw}"),
    };
    let text = |section: &str, key: &str| match field(section, key) {
        json::Value::Null => None,
        json::Value::String(s) => Some(s.clone()),
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

/// A small strict JSON reader for the wrapper's one line. serde_json is not a
/// dev-dependency, and util::smtp's reader is private to that module.
mod json {
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Result<Value, String> {
        let mut r = Reader {
            chars: text.char_indices().peekable(),
            text,
        };
        let v = r.value()?;
        r.skip_ws();
        match r.chars.next() {
            None => Ok(v),
            Some((i, _)) => Err(format!("trailing text at byte {i}")),
        }
    }

    struct Reader<'a> {
        chars: std::iter::Peekable<std::str::CharIndices<'a>>,
        text: &'a str,
    }

    impl Reader<'_> {
        fn skip_ws(&mut self) {
            while self
                .chars
                .next_if(|(_, c)| matches!(c, ' ' | '\t' | '\n' | '\r'))
                .is_some()
            {}
        }

        fn expect(&mut self, want: char) -> Result<(), String> {
            self.skip_ws();
            match self.chars.next() {
                Some((_, c)) if c == want => Ok(()),
                Some((i, c)) => Err(format!("expected {want:?}, found {c:?} at byte {i}")),
                None => Err(format!("expected {want:?}, found the end")),
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.skip_ws();
            let Some(&(start, c)) = self.chars.peek() else {
                return Err("unexpected end".into());
            };
            match c {
                '{' => {
                    self.chars.next();
                    let mut members = Vec::new();
                    self.skip_ws();
                    if self.chars.next_if(|&(_, c)| c == '}').is_some() {
                        return Ok(Value::Object(members));
                    }
                    loop {
                        self.skip_ws();
                        let key = self.string()?;
                        self.expect(':')?;
                        members.push((key, self.value()?));
                        self.skip_ws();
                        match self.chars.next() {
                            Some((_, ',')) => {}
                            Some((_, '}')) => return Ok(Value::Object(members)),
                            _ => return Err(format!("unterminated object from byte {start}")),
                        }
                    }
                }
                '[' => {
                    self.chars.next();
                    let mut items = Vec::new();
                    self.skip_ws();
                    if self.chars.next_if(|&(_, c)| c == ']').is_some() {
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.skip_ws();
                        match self.chars.next() {
                            Some((_, ',')) => {}
                            Some((_, ']')) => return Ok(Value::Array(items)),
                            _ => return Err(format!("unterminated array from byte {start}")),
                        }
                    }
                }
                '"' => Ok(Value::String(self.string()?)),
                _ => {
                    // A bare word: a literal or a number, running to the next delimiter.
                    let mut end = start;
                    while let Some((i, c)) = self
                        .chars
                        .next_if(|(_, c)| c.is_ascii_alphanumeric() || "+-.".contains(*c))
                    {
                        end = i + c.len_utf8();
                    }
                    match &self.text[start..end] {
                        "null" => Ok(Value::Null),
                        "true" => Ok(Value::Bool(true)),
                        "false" => Ok(Value::Bool(false)),
                        word => word
                            .parse::<f64>()
                            .map(Value::Number)
                            .map_err(|_| format!("bad value {word:?} at byte {start}")),
                    }
                }
            }
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect('"')?;
            let mut s = String::new();
            loop {
                match self.chars.next() {
                    None => return Err("unterminated string".into()),
                    Some((_, '"')) => return Ok(s),
                    Some((_, '\\')) => match self.chars.next() {
                        Some((_, 'n')) => s.push('\n'),
                        Some((_, 't')) => s.push('\t'),
                        Some((_, 'r')) => s.push('\r'),
                        Some((_, 'b')) => s.push('\u{8}'),
                        Some((_, 'f')) => s.push('\u{c}'),
                        Some((_, 'u')) => {
                            let hi = self.hex4()?;
                            // Python's json.dumps escapes non-ASCII, astral characters as
                            // a surrogate pair.
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if !matches!(
                                    (self.chars.next(), self.chars.next()),
                                    (Some((_, '\\')), Some((_, 'u')))
                                ) {
                                    return Err("lone surrogate in \\u escape".into());
                                }
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                hi
                            };
                            s.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        Some((_, c @ ('"' | '\\' | '/'))) => s.push(c),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, c)) => s.push(c),
                }
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let mut n = 0;
            for _ in 0..4 {
                let d = self
                    .chars
                    .next()
                    .and_then(|(_, c)| c.to_digit(16))
                    .ok_or("bad \\u escape")?;
                n = n * 16 + d;
            }
            Ok(n)
        }
    }
}
