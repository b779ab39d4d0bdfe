//! A zone-file reader (RFC 1035 section 5 master-file syntax) for the overlay: `$ORIGIN`,
//! `$TTL`, relative and `@` owners, blank owners, optional TTL and class, parentheses across
//! lines, comments, and quoted strings with `\"`, `\\` and `\DDD` escapes. It keeps A, AAAA,
//! MX, TXT and PTR records; other types only mark their name as existing.
//!
//! hickory-proto 0.26's parser loses quoted strings inside parentheses, which is exactly how
//! long DKIM keys are written, so the overlay reads zone files itself.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Mx(u16, String),
    Txt(Vec<Vec<u8>>),
    Ptr(String),
    Cname(String),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Lowercase, absolute.
    pub name: String,
    pub data: Data,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub origin: Option<String>,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(Vec<u8>),
}

/// One logical entry: its tokens, whether it started with white space (same owner as the
/// previous entry), and the line it started on.
struct Entry {
    tokens: Vec<Token>,
    blank_owner: bool,
    line: usize,
}

/// Reads a quoted string whose opening quote is at `bytes[at]`, with `\DDD` and `\X` escapes;
/// returns it and the index past the closing quote, counting the lines it spans.
fn quoted(bytes: &[u8], at: usize, line: &mut usize) -> Result<(Vec<u8>, usize), String> {
    let start_line = *line;
    let mut s = Vec::new();
    let mut i = at + 1;
    loop {
        let Some(&b) = bytes.get(i) else {
            return Err(format!("line {start_line}: a quoted string is not closed"));
        };
        match b {
            b'"' => {
                i += 1;
                break;
            }
            b'\\' => {
                let d: Vec<u8> = bytes[i + 1..].iter().take(3).copied().collect();
                if d.len() == 3 && d.iter().all(u8::is_ascii_digit) {
                    let n = (d[0] - b'0') as u32 * 100
                        + (d[1] - b'0') as u32 * 10
                        + (d[2] - b'0') as u32;
                    s.push(
                        u8::try_from(n).map_err(|_| format!("line {line}: \\{n} is not a byte"))?,
                    );
                    i += 4;
                } else if let Some(&n) = bytes.get(i + 1) {
                    s.push(n);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            b'\n' => {
                *line += 1;
                s.push(b);
                i += 1;
            }
            _ => {
                s.push(b);
                i += 1;
            }
        }
    }
    Ok((s, i))
}

fn entries(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    let mut cur: Option<Entry> = None;
    let mut depth = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                line_start = true;
                if depth == 0
                    && let Some(e) = cur.take()
                    && !e.tokens.is_empty()
                {
                    out.push(e);
                }
                i += 1;
                continue;
            }
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                if line_start && depth == 0 && cur.is_none() {
                    cur = Some(Entry {
                        tokens: Vec::new(),
                        blank_owner: true,
                        line,
                    });
                }
                line_start = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        line_start = false;
        let e = cur.get_or_insert_with(|| Entry {
            tokens: Vec::new(),
            blank_owner: false,
            line,
        });
        match c {
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("line {line}: ')' without '('"))?;
                i += 1;
            }
            b'"' => {
                let (s, next) = quoted(bytes, i, &mut line)?;
                i = next;
                e.tokens.push(Token::Quoted(s));
            }
            _ => {
                let start = i;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b';' | b'"'
                    )
                {
                    i += 1;
                }
                e.tokens.push(Token::Word(
                    String::from_utf8_lossy(&bytes[start..i]).into_owned(),
                ));
            }
        }
    }
    if depth != 0 {
        return Err("a '(' is not closed".into());
    }
    if let Some(e) = cur
        && !e.tokens.is_empty()
    {
        out.push(e);
    }
    Ok(out)
}

fn absolute(name: &str, origin: Option<&str>, line: usize) -> Result<String, String> {
    let n = name.to_ascii_lowercase();
    if n == "@" {
        return origin
            .map(str::to_owned)
            .ok_or_else(|| format!("line {line}: @ needs a $ORIGIN"));
    }
    if n.ends_with('.') {
        return Ok(n);
    }
    match origin {
        Some(o) => Ok(format!("{n}.{o}")),
        None => Err(format!(
            "line {line}: {name:?} is relative but there is no $ORIGIN; write it with a final dot"
        )),
    }
}

const CLASSES: &[&str] = &["IN", "CH", "HS", "CS"];

pub fn parse(text: &str) -> Result<Zone, String> {
    let mut origin: Option<String> = None;
    let mut last_owner: Option<String> = None;
    let mut records = Vec::new();
    for e in entries(text)? {
        let line = e.line;
        let word = |t: &Token| match t {
            Token::Word(w) => Some(w.clone()),
            Token::Quoted(_) => None,
        };
        let mut toks = e.tokens.iter().peekable();
        if !e.blank_owner
            && let Some(Token::Word(w)) = toks.peek()
            && w.starts_with('$')
        {
            let w = w.to_ascii_uppercase();
            toks.next();
            match w.as_str() {
                "$ORIGIN" => {
                    let o = toks
                        .next()
                        .and_then(word)
                        .ok_or_else(|| format!("line {line}: $ORIGIN needs a name"))?;
                    origin = Some(absolute(&o, origin.as_deref(), line)?);
                }
                "$TTL" => {}
                other => return Err(format!("line {line}: {other} is not supported here")),
            }
            continue;
        }
        let owner = if e.blank_owner {
            last_owner
                .clone()
                .ok_or_else(|| format!("line {line}: the first record needs an owner name"))?
        } else {
            let o = toks
                .next()
                .and_then(word)
                .ok_or_else(|| format!("line {line}: expected an owner name"))?;
            absolute(&o, origin.as_deref(), line)?
        };
        last_owner = Some(owner.clone());
        // [ttl] [class] or [class] [ttl], then the type.
        let mut rtype = None;
        for _ in 0..3 {
            let Some(t) = toks.next().and_then(word) else {
                break;
            };
            let up = t.to_ascii_uppercase();
            // TTLs may carry units (1h, 2d, 1w2d).
            let ttl = up.starts_with(|c: char| c.is_ascii_digit())
                && up
                    .chars()
                    .all(|c| c.is_ascii_digit() || "SMHDW".contains(c));
            if ttl || CLASSES.contains(&up.as_str()) {
                continue;
            }
            rtype = Some(up);
            break;
        }
        let rtype =
            rtype.ok_or_else(|| format!("line {line}: expected a record type after {owner}"))?;
        let rest: Vec<&Token> = toks.collect();
        let data = data(&rtype, &rest, origin.as_deref(), line)?;
        records.push(Record {
            name: owner,
            data,
            line,
        });
    }
    Ok(Zone { origin, records })
}

/// A record's data from the tokens after its type.
fn data(rtype: &str, rest: &[&Token], origin: Option<&str>, line: usize) -> Result<Data, String> {
    let word = |t: &Token| match t {
        Token::Word(w) => Some(w.clone()),
        Token::Quoted(_) => None,
    };
    let words = || -> Vec<String> { rest.iter().filter_map(|t| word(t)).collect() };
    Ok(match rtype {
        "A" => Data::A(
            words()
                .first()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("line {line}: A needs an IPv4 address"))?,
        ),
        "AAAA" => Data::Aaaa(
            words()
                .first()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("line {line}: AAAA needs an IPv6 address"))?,
        ),
        "MX" => {
            let w = words();
            let pref = w
                .first()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("line {line}: MX needs a preference"))?;
            let host = w
                .get(1)
                .ok_or_else(|| format!("line {line}: MX needs a host"))?;
            Data::Mx(pref, absolute(host, origin, line)?)
        }
        "PTR" => Data::Ptr(absolute(
            words()
                .first()
                .ok_or_else(|| format!("line {line}: PTR needs a name"))?,
            origin,
            line,
        )?),
        "CNAME" => Data::Cname(absolute(
            words()
                .first()
                .ok_or_else(|| format!("line {line}: CNAME needs a target"))?,
            origin,
            line,
        )?),
        "TXT" | "SPF" => {
            let mut strings = Vec::new();
            for t in rest {
                let s = match t {
                    Token::Word(w) => w.as_bytes().to_vec(),
                    Token::Quoted(q) => q.clone(),
                };
                if s.len() > 255 {
                    return Err(format!(
                        "line {line}: a TXT string of {} characters; DNS allows 255 per string, so split it into several quoted strings",
                        s.len()
                    ));
                }
                strings.push(s);
            }
            if rtype == "SPF" {
                Data::Other
            } else {
                Data::Txt(strings)
            }
        }
        _ => Data::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_zone_files_use() {
        let z = parse(
            "$ORIGIN Example.COM.\n$TTL 300\n@ IN TXT \"v=spf1 -all\" ; comment\n  300 IN MX 10 mx\nmx A 192.0.2.1\ns._domainkey IN TXT ( \"v=DKIM1; k=rsa; \"\n   \"p=AB\\\"C\\059\" )\nabs.example.net. 60 IN AAAA ::1\n",
        )
        .unwrap();
        assert_eq!(z.origin.as_deref(), Some("example.com."));
        let names: Vec<&str> = z.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "example.com.",
                "example.com.",
                "mx.example.com.",
                "s._domainkey.example.com.",
                "abs.example.net."
            ]
        );
        assert_eq!(z.records[1].data, Data::Mx(10, "mx.example.com.".into()));
        assert_eq!(
            z.records[3].data,
            Data::Txt(vec![b"v=DKIM1; k=rsa; ".to_vec(), b"p=AB\"C;".to_vec()])
        );
        assert_eq!(z.records[3].line, 6);
    }

    #[test]
    fn ttl_units_and_cname() {
        let z = parse("$ORIGIN a.test.\n@ 1h IN TXT \"v=spf1 -all\"\nsel._domainkey 2d CNAME sel.esp.example.\n").unwrap();
        assert_eq!(z.records[0].data, Data::Txt(vec![b"v=spf1 -all".to_vec()]));
        assert_eq!(z.records[1].data, Data::Cname("sel.esp.example.".into()));
    }

    #[test]
    fn long_strings_and_broken_syntax_name_the_line() {
        let long = format!("$ORIGIN a.test.\nx TXT \"{}\"\n", "a".repeat(300));
        assert!(
            parse(&long)
                .unwrap_err()
                .starts_with("line 2: a TXT string of 300")
        );
        assert!(parse("$ORIGIN a.test.\nx TXT ( \"v\"\n").is_err());
        assert!(parse("x TXT \"v\"\n").unwrap_err().contains("no $ORIGIN"));
    }
}
