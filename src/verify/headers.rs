//! Reading a received message's header block: unfolded fields in order, the receiver's
//! `Authentication-Results` (RFC 8601, in the forms Gmail, Yahoo and Microsoft write), and
//! the connecting IP and TLS from its `Received` field.

use std::net::IpAddr;

use serde::Serialize;

/// Header fields in order, as (name, unfolded value). Bytes that are not UTF-8 are replaced,
/// which the format check reports separately.
pub fn fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// The header block and the body of a raw message.
pub fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let at = |sep: &[u8]| raw.windows(sep.len()).position(|w| w == sep);
    match (at(b"\r\n\r\n"), at(b"\n\n")) {
        (Some(i), Some(j)) if j < i => (&raw[..j + 1], &raw[j + 2..]),
        (Some(i), _) => (&raw[..i + 2], &raw[i + 4..]),
        (None, Some(j)) => (&raw[..j + 1], &raw[j + 2..]),
        (None, None) => (raw, &[]),
    }
}

/// Every value of the fields named `name` (case-insensitive).
pub fn all<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One `method=result` of an Authentication-Results field, with its properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub method: String,
    pub result: String,
    /// `ptype.property=value` and `reason=...`, as written (lowercase keys).
    pub props: Vec<(String, String)>,
    /// The comments, which carry the connecting IP in Gmail's and Microsoft's forms.
    #[serde(skip)]
    pub comments: Vec<String>,
}

impl Outcome {
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One Authentication-Results field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResults {
    /// Absent in Microsoft's form, which starts with the first result.
    pub authserv_id: Option<String>,
    pub outcomes: Vec<Outcome>,
}

const METHODS: &[&str] = &[
    "spf",
    "dkim",
    "dmarc",
    "arc",
    "auth",
    "iprev",
    "compauth",
    "bimi",
    "dkim-atps",
    "x-",
];

/// Removes RFC 5322 comments (nested parentheses, outside quotes) and returns them apart.
fn decomment(s: &str) -> (String, Vec<String>) {
    let (mut out, mut comments, mut cur) = (String::new(), Vec::new(), String::new());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth > 0 {
                cur.push(c)
            } else {
                out.push(c)
            }
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => {
                if depth > 0 {
                    cur.push(c);
                }
                depth += 1;
            }
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    comments.push(std::mem::take(&mut cur).trim().to_owned());
                    out.push(' ');
                } else {
                    cur.push(c);
                }
            }
            _ if depth > 0 => cur.push(c),
            _ => out.push(c),
        }
    }
    (out, comments)
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: fn(char) -> bool) -> Vec<String> {
    let (mut parts, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if !quoted && sep(c) {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Parses one Authentication-Results value.
pub fn auth_results(value: &str) -> AuthResults {
    let mut segments = split_unquoted(value, |c| c == ';').into_iter();
    let mut authserv_id = None;
    let mut pending = Vec::new();
    if let Some(first) = segments.next() {
        let (plain, _) = decomment(&first);
        let head = plain.split_whitespace().next().unwrap_or_default();
        let method = head
            .split(['=', '/'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if head.contains('=') && METHODS.iter().any(|m| method.starts_with(m)) {
            pending.push(first);
        } else {
            authserv_id = Some(head.to_ascii_lowercase());
        }
    }
    pending.extend(segments);
    let outcomes = pending.iter().filter_map(|s| outcome(s)).collect();
    AuthResults {
        authserv_id,
        outcomes,
    }
}

fn outcome(segment: &str) -> Option<Outcome> {
    let (plain, comments) = decomment(segment);
    let mut tokens = split_unquoted(&plain, char::is_whitespace).into_iter();
    let (method, result) = tokens.next()?.split_once('=').map(|(m, r)| {
        let m = m.split('/').next().unwrap_or(m);
        (m.trim().to_ascii_lowercase(), r.trim().to_ascii_lowercase())
    })?;
    if method == "none" || result.is_empty() {
        return None;
    }
    let props = tokens
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.to_ascii_lowercase(), v.trim_matches('"').to_owned()))
        })
        .collect();
    Some(Outcome {
        method,
        result,
        props,
        comments,
    })
}

/// What the receiver's Received field says about the connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The connecting client's address, from the `from` clause.
    pub ip: Option<IpAddr>,
    /// `Some(true)` when the field shows TLS (ESMTPS, a TLS version), `Some(false)` when it
    /// shows plain ESMTP/SMTP, `None` when it does not say.
    pub tls: Option<bool>,
    /// The TLS detail as written, e.g. `version=TLS1_3`.
    pub tls_detail: Option<String>,
    pub by: Option<String>,
}

/// Reads the receiver's own Received field: the one whose `from` clause names `ip` (the
/// connecting address the receiver recorded elsewhere), else the topmost that names one.
/// Providers such as Microsoft put internal hops above it.
pub fn receiver_hop(received: &[&str], ip: Option<IpAddr>) -> Option<Hop> {
    let hop = |r: &&str| {
        let found = from_clause_ip(r)?;
        Some(Hop {
            ip: Some(found),
            tls: tls_of(r),
            tls_detail: tls_detail(r),
            by: word_after(r, " by "),
        })
    };
    let matching = ip.and_then(|ip| received.iter().filter_map(hop).find(|h| h.ip == Some(ip)));
    matching.or_else(|| received.iter().find_map(hop))
}

fn word_after(s: &str, key: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let at = lower.find(key)? + key.len();
    s[at..].split_whitespace().next().map(str::to_owned)
}

/// The address in `from helo (rdns [IP])`, `from helo ([IPv6:...])` or Microsoft's
/// `from helo (IP)`.
fn from_clause_ip(r: &str) -> Option<IpAddr> {
    let lower = r.to_ascii_lowercase();
    let start = lower.find("from ")?;
    let end = lower.find(" by ").unwrap_or(lower.len());
    let clause = &r[start..end.max(start)];
    clause
        .split(|c: char| c == '[' || c == ']' || c == '(' || c == ')' || c.is_whitespace())
        .filter_map(|t| {
            let t = t.trim_end_matches('.');
            let t = t
                .strip_prefix("IPv6:")
                .or_else(|| t.strip_prefix("ipv6:"))
                .unwrap_or(t);
            t.parse::<IpAddr>().ok()
        })
        .next()
}

fn tls_of(r: &str) -> Option<bool> {
    let lower = r.to_ascii_lowercase();
    if tls_detail(r).is_some()
        || lower.contains(" with esmtps")
        || lower.contains(" with esmtpsa")
        || lower.contains(" with smtps")
        || lower.contains(" with utf8smtps")
    {
        Some(true)
    } else if lower.contains(" with esmtp") || lower.contains(" with smtp") {
        Some(false)
    } else {
        None
    }
}

fn tls_detail(r: &str) -> Option<String> {
    let lower = r.to_ascii_lowercase();
    ["version=tls", "using tls"].iter().find_map(|k| {
        let at = lower.find(k)?;
        let detail: String = r[at..]
            .chars()
            .take_while(|c| !matches!(c, ')' | ',' | ';'))
            .collect();
        Some(detail.trim().to_owned())
    })
}

/// An address named in comments or properties, where receivers put it: Gmail's "designates
/// IP as permitted sender", Microsoft's "sender IP is IP", `smtp.remote-ip`, `policy.iprev`,
/// or `client-ip=` in Received-SPF.
pub fn ip_from_results(results: &[AuthResults], received_spf: &[&str]) -> Option<IpAddr> {
    let parse = |s: &str| {
        s.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != ':' && c != '.')
            .parse::<IpAddr>()
            .ok()
    };
    for r in results {
        for o in &r.outcomes {
            for key in ["smtp.remote-ip", "policy.iprev", "smtp.client-ip"] {
                if let Some(ip) = o.prop(key).and_then(parse) {
                    return Some(ip);
                }
            }
            for c in &o.comments {
                let words: Vec<&str> = c.split_whitespace().collect();
                for (i, w) in words.iter().enumerate() {
                    let before = i.checked_sub(1).map(|j| words[j]);
                    if matches!(before, Some("designates") | Some("is"))
                        && let Some(ip) = parse(w)
                    {
                        return Some(ip);
                    }
                }
            }
        }
    }
    received_spf.iter().find_map(|v| {
        let at = v.find("client-ip=")? + "client-ip=".len();
        parse(v[at..].split(';').next()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_form() {
        let v = "mx.google.com; dkim=pass header.i=@news.example.com header.s=s2026r header.b=AbCd; spf=pass (google.com: domain of bounces@news.example.com designates 192.0.2.25 as permitted sender) smtp.mailfrom=bounces@news.example.com; dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=news.example.com";
        let r = auth_results(v);
        assert_eq!(r.authserv_id.as_deref(), Some("mx.google.com"));
        let m: Vec<_> = r
            .outcomes
            .iter()
            .map(|o| (o.method.as_str(), o.result.as_str()))
            .collect();
        assert_eq!(m, [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]);
        assert_eq!(r.outcomes[0].prop("header.i"), Some("@news.example.com"));
        assert_eq!(
            ip_from_results(&[r], &[]),
            Some("192.0.2.25".parse().unwrap())
        );
    }

    #[test]
    fn microsoft_form_has_no_authserv_id() {
        let v = "spf=pass (sender IP is 192.0.2.25) smtp.mailfrom=news.example.com; dkim=pass (signature was verified) header.d=news.example.com;dmarc=pass action=none header.from=news.example.com;compauth=pass reason=100";
        let r = auth_results(v);
        assert_eq!(r.authserv_id, None);
        assert_eq!(r.outcomes.len(), 4);
        assert_eq!(r.outcomes[2].prop("action"), Some("none"));
        assert_eq!(
            ip_from_results(&[r], &[]),
            Some("192.0.2.25".parse().unwrap())
        );
    }

    #[test]
    fn yahoo_form_and_none() {
        let r = auth_results(
            "atlas.yahoo.com; dkim=pass header.i=@news.example.com header.s=s2026r; spf=pass smtp.mailfrom=news.example.com; dmarc=pass(p=REJECT) header.from=news.example.com;",
        );
        assert_eq!(r.outcomes[2].result, "pass");
        assert_eq!(r.outcomes[2].comments, ["p=REJECT"]);
        assert!(auth_results("mx.example.net; none").outcomes.is_empty());
    }

    #[test]
    fn received_fields() {
        let gmail = "from mail.news.example.com (mail.news.example.com. [192.0.2.25]) by mx.google.com with ESMTPS id x1 for <a@gmail.example> (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); Fri, 27 Nov 2026 10:00:00 -0800 (PST)";
        let h = receiver_hop(&[gmail], None).unwrap();
        assert_eq!(h.ip, Some("192.0.2.25".parse().unwrap()));
        assert_eq!(h.tls, Some(true));
        assert_eq!(
            h.tls_detail.as_deref(),
            Some("version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256")
        );
        let ms = "from mail.news.example.com (192.0.2.25) by BN1NAM02FT001.mail.protection.outlook.com (10.13.2.1) with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.1; Fri, 27 Nov 2026 18:00:00 +0000";
        let internal = "from BN8PR12MB1234.namprd12.prod.outlook.com (2603:10b6:408:1::10) by SA1PR12MB5678.namprd12.prod.outlook.com with HTTPS; Fri, 27 Nov 2026 18:00:01 +0000";
        let h = receiver_hop(&[internal, ms], Some("192.0.2.25".parse().unwrap())).unwrap();
        assert_eq!(h.ip, Some("192.0.2.25".parse().unwrap()));
        assert_eq!(h.tls, Some(true));
        let plain = "from relay ([IPv6:2001:db8::25]) by mx.example.net with ESMTP id 1";
        let h = receiver_hop(&["by local with LMTP", plain], None).unwrap();
        assert_eq!(h.ip, Some("2001:db8::25".parse().unwrap()));
        assert_eq!(h.tls, Some(false));
    }

    #[test]
    fn folding_and_split() {
        let raw = b"Subject: a\r\n b\r\nFrom: x@y\r\n\r\nbody\r\n";
        let (head, body) = split(raw);
        assert_eq!(body, b"body\r\n");
        assert_eq!(
            fields(head),
            [
                ("Subject".into(), "a b".into()),
                ("From".into(), "x@y".into())
            ]
        );
    }
}
