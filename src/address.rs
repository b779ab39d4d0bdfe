//! Email addresses and domain names: one rule for the recipient CSV and campaign.toml alike.
//!
//! Parsing (`Name <user@domain>`), IDNA (internationalized domains travel as punycode),
//! header safety and the domain checks all live here, so the From, Reply-To and return-path
//! addresses get exactly the checks every recipient gets. A leaf: it imports nothing from the
//! rest of the crate. Errors are sentences that say what is wrong and how to fix it.

use lettre::Address;

/// RFC 5321 4.5.3.1.1: the longest local part a server must accept, in octets.
pub const MAX_LOCAL_PART: usize = 64;

/// Names a character that must never reach a header value. A line break would let a value
/// start a header of its own (header injection); other control characters (form feed, NUL,
/// escape...) are not allowed in headers and are canonicalized differently by different DKIM
/// verifiers, so a signature could verify at one receiver and fail at the next. TAB is fine.
pub(crate) fn header_unsafe_char(s: &str) -> Option<&'static str> {
    s.chars().find_map(|c| match c {
        '\r' => Some("a carriage return (CR)"),
        '\n' => Some("a line feed (LF)"),
        '\0' => Some("a NUL byte"),
        '\t' => None,
        c if c.is_control() => Some("a control character"),
        _ => None,
    })
}

/// Parses `user@example.com` or `Name <user@example.com>`.
/// Returns the address (domain in ASCII form) and any display name.
pub(crate) fn parse(cell: &str) -> Result<(Address, Option<String>), String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Err("the address is empty".into());
    }
    if let Some(c) = header_unsafe_char(cell) {
        return Err(format!(
            "the address contains {c}, which could inject a header; fix the cell"
        ));
    }
    // `Name <address>`: split at the last '<' ourselves, so names with commas or other
    // specials ("Example, Inc") work without the quoting RFC 5322 would want.
    let (addr_text, display) = match (cell.strip_suffix('>'), cell.rfind('<')) {
        (Some(_), Some(lt)) => {
            let name = display_name(&cell[..lt]);
            (cell[lt + 1..cell.len() - 1].trim().to_owned(), Some(name))
        }
        _ => (cell.to_owned(), None),
    };
    let address = parse_bare(&addr_text)?;
    Ok((address, display.filter(|d| !d.is_empty())))
}

/// The display name as a person reads it: an RFC 5322 quoted string loses its quotes and
/// its quoted-pairs (`\"`, `\\`) their backslash, so `"Ann \"B\"" <a@x>` shows `Ann "B"`.
fn display_name(raw: &str) -> String {
    let raw = raw.trim();
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.trim_matches('"').trim().to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

/// `user@domain` without a display name.
fn parse_bare(addr_text: &str) -> Result<Address, String> {
    let Some((user, domain)) = addr_text.rsplit_once('@') else {
        return Err(format!("{addr_text:?} has no @domain part"));
    };
    // RFC 5321 allows no TAB or other control character in an address, not even quoted, and
    // the journal, which matches recipients by address on resume, could not store one
    // exactly: such a recipient was sent again on every run.
    if addr_text.contains('\t') {
        return Err(format!(
            "{addr_text:?} contains a TAB, which RFC 5321 does not allow in an address; remove it"
        ));
    }
    if addr_text.chars().any(char::is_control) {
        return Err(format!(
            "{addr_text:?} contains a control character, which RFC 5321 does not allow in an address; remove it"
        ));
    }
    // A quoted local part may hold spaces (RFC 5321); anywhere else a space is a typo.
    let quoted = user.len() >= 2 && user.starts_with('"') && user.ends_with('"');
    if (!quoted && user.contains(char::is_whitespace)) || domain.contains(char::is_whitespace) {
        return Err(format!("{addr_text:?} contains a space"));
    }
    if user.is_empty() {
        return Err(format!("{addr_text:?} has nothing before the @"));
    }
    if domain.is_empty() {
        return Err(format!("{addr_text:?} has no domain after the @"));
    }
    if domain.starts_with('[') {
        return Err(format!(
            "{addr_text:?} uses an IP address literal as its domain; bulk mail goes to domains"
        ));
    }
    if !user.is_ascii() {
        return Err(format!(
            "{addr_text:?} has a non-ASCII local part, which needs SMTPUTF8 end to end; mailshot does not send those"
        ));
    }
    let ascii_domain = mail_domain(domain).map_err(|why| format!("{addr_text:?}: {why}"))?;
    Address::new(user, &ascii_domain).map_err(|e| {
        let what = match e {
            lettre::address::AddressError::InvalidUser => "the part before the @ is not valid",
            lettre::address::AddressError::InvalidDomain => "the domain is not valid",
            _ => "it is not a valid address",
        };
        format!("{addr_text:?}: {what}")
    })
}

/// The domain of a mail address in ASCII (punycode) form, or why mail cannot go to it:
/// not a valid IDNA name, no dot, or an all-digit last label (an IP address, not a domain).
fn mail_domain(domain: &str) -> Result<String, String> {
    let ascii = to_ascii(domain)
        .filter(|a| is_dns_name(a))
        .ok_or_else(|| format!("the domain {domain:?} is not a valid domain name"))?;
    if !ascii.contains('.') {
        return Err(format!(
            "the domain {domain:?} has no dot; is a part like .com missing?"
        ));
    }
    if ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "the domain {domain:?} looks like an IP address; bulk mail goes to domains"
        ));
    }
    Ok(ascii)
}

/// A domain name (a DKIM `d=` domain, say) in lowercase ASCII form, checked label by label;
/// a trailing dot is dropped.
pub(crate) fn domain_name(value: &str) -> Result<String, String> {
    let d = value.trim().trim_end_matches('.');
    match idna::domain_to_ascii(d) {
        Ok(ascii) if is_dns_name(&ascii) && ascii.contains('.') => Ok(ascii),
        _ => Err(format!("{value:?} is not a valid domain name")),
    }
}

/// The domain in ASCII (punycode) form; `None` when it is not a valid IDNA name, which also
/// catches ASCII labels with broken punycode such as `xn--zz`.
fn to_ascii(domain: &str) -> Option<String> {
    let ascii = idna::domain_to_ascii(domain).ok()?;
    let (_, check) = idna::domain_to_unicode(&ascii);
    check.ok()?;
    Some(ascii)
}

/// Labels of letters, digits, '-' and '_' (DKIM selectors and `_dmarc`-style names use '_'),
/// at most 63 characters each, separated by single dots.
pub(crate) fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(parse("a@example.com").is_ok());
        let (a, n) = parse("Ann Example <ann@example.com>").unwrap();
        assert_eq!(a.to_string(), "ann@example.com");
        assert_eq!(n.as_deref(), Some("Ann Example"));
        let (_, n) = parse("\"Example, Inc\" <j@example.com>").unwrap();
        assert_eq!(n.as_deref(), Some("Example, Inc"));
        let (_, n) = parse("Example, Inc <j@example.com>").unwrap();
        assert_eq!(n.as_deref(), Some("Example, Inc"));
        // Quoted-pairs lose their backslash (RFC 5322 3.2.4): the name a reader sees.
        let (_, n) = parse(r#""Ann \"B\" \\ C" <a@example.com>"#).unwrap();
        assert_eq!(n.as_deref(), Some(r#"Ann "B" \ C"#));
        let (_, n) = parse("<j@example.com>").unwrap();
        assert_eq!(n, None);
        assert_eq!(
            parse("b@bücher.example").unwrap().0.to_string(),
            "b@xn--bcher-kva.example"
        );
        assert!(parse("\"quoted local\"@example.com").is_ok());
        assert!(why_tab().contains("TAB"));
        for bad in [
            "",
            "a b@example.com",
            "ab.example.com",
            "@example.com",
            "a@",
            "a@localhost",
            "a@[127.0.0.1]",
            "a@example.com\r\nBcc: x@example.com",
            "Ann\u{c}Example <a@example.com>",
            "jörg@example.com",
            "h@123.123.123.123",
            "i@xn--zz.example",
            "k@example..com",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    fn why_tab() -> String {
        parse("\"a\tb\"@example.com").unwrap_err()
    }

    #[test]
    fn errors_say_why() {
        let why = |a: &str| parse(a).unwrap_err();
        assert!(why("i@xn--zz.example").contains("not a valid domain name"));
        assert!(why("h@news.example.123").contains("looks like an IP address"));
        assert!(why("a@localhost").contains("has no dot"));
        assert!(why("a@example.com\nBcc: x@example.com").contains("line feed"));
        let long = format!("l@{}.example", "a".repeat(64));
        assert!(why(&long).contains("not a valid domain name"));
    }

    #[test]
    fn header_safety() {
        assert_eq!(header_unsafe_char("tab\tis fine"), None);
        assert_eq!(header_unsafe_char("a\rb"), Some("a carriage return (CR)"));
        assert_eq!(header_unsafe_char("a\0b"), Some("a NUL byte"));
        assert_eq!(header_unsafe_char("a\u{1b}b"), Some("a control character"));
    }

    #[test]
    fn domain_names() {
        assert_eq!(domain_name(" Example.COM. ").unwrap(), "example.com");
        assert_eq!(
            domain_name("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in ["localhost", "a..example", "a b.example", ""] {
            assert!(domain_name(bad).is_err(), "{bad:?}");
        }
        assert!(is_dns_name("_dmarc.example.com"));
        assert!(!is_dns_name("s1; d=evil.example"));
    }
}
