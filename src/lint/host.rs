//! Hosts for the link rules: the scheme and host of an href as a browser reads it, the host a
//! link's text claims when that text is an address, and whether two hosts are the same site.
//!
//! No HTML here: hrefs and texts arrive already decoded by the parser. This is a small,
//! deliberately partial reading of the WHATWG URL rules, enough to find the host the way a
//! browser would (so that tricks like "https://bank.com\@evil.net" resolve to the real host).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::URL_SHORTENERS;

/// An absolute http or https URL, reduced to what the rules need.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HttpUrl {
    pub https: bool,
    /// Lowercase, without userinfo, port or trailing dot; IDNs in their ASCII (xn--) form.
    pub host: String,
}

/// The scheme and host of `href` when it is an absolute http(s) URL; `None` for other schemes
/// (mailto, tel), relative links and fragments.
pub(super) fn http_url(href: &str) -> Option<HttpUrl> {
    // Browsers strip leading and trailing controls and spaces, and drop tabs and newlines
    // anywhere, so "ht\ntp://x" is an http link.
    let href = href.trim_matches(|c: char| c <= ' ');
    let href: Cow<'_, str> = if href.contains(['\t', '\n', '\r']) {
        Cow::Owned(href.replace(['\t', '\n', '\r'], ""))
    } else {
        Cow::Borrowed(href)
    };
    let (scheme, rest) = href.split_once(':')?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return None;
    };
    let host = authority_host(rest)?;
    Some(HttpUrl { https, host })
}

/// The host after "http:" or "https:". For these schemes browsers accept any number of slashes
/// or backslashes before the authority, and end it at a slash, a backslash, "?" or "#".
fn authority_host(rest: &str) -> Option<String> {
    let rest = rest.trim_start_matches(['/', '\\']);
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // "https://bank.com@evil.net/" goes to evil.net: everything up to the last "@" is
    // userinfo.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.find(']').map_or(host_port, |i| &host_port[..=i])
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    normalize_host(host)
}

/// Lowercase, percent-decoded (browsers decode "%65vil.net"), IDNA to ASCII, no trailing dot.
fn normalize_host(host: &str) -> Option<String> {
    let decoded = percent_decode_str(host).decode_utf8().ok()?;
    let mut h = if decoded.is_ascii() {
        decoded.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(&decoded).ok()?
    };
    while h.ends_with('.') {
        h.pop();
    }
    (!h.is_empty()).then_some(h)
}

/// Punctuation around an address in prose: "(bank.com)", quotes, a full stop after it.
const WRAPPING: &[char] = &[
    '(', ')', '<', '>', '[', ']', '"', '\'', ',', '.', ';', ':', '!', '?', '\u{AB}', '\u{BB}',
    '\u{201C}', '\u{201D}', '\u{2018}', '\u{2019}',
];

/// The host that a link's text shows, when the whole text is a web address: "https://a.example/x",
/// "www.bank.com", "bank.com/login". `None` for words, email addresses and other schemes.
pub(super) fn text_host(text: &str) -> Option<String> {
    let t = text.trim_matches(|c: char| c.is_whitespace() || WRAPPING.contains(&c));
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    if t.contains("://") {
        return http_url(t).map(|u| u.host);
    }
    if t.contains('@') {
        return None;
    }
    let end = t.find(['/', '\\', '?', '#', ':']).unwrap_or(t.len());
    let host = normalize_host(&t[..end])?;
    let labels_ok = host.contains('.')
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !labels_ok {
        return None;
    }
    // A dotted word is not yet an address ("Node.js", "v2.0", "e.g"): it needs "www." or a
    // suffix from the public suffix list with a name before it.
    let known = psl::domain(host.as_bytes()).is_some_and(|d| d.suffix().is_known());
    (host.starts_with("www.") || known).then_some(host)
}

/// Whether a link showing `shown` and going to `target` goes where it says: the same host
/// (ignoring "www."), one a subdomain of the other, or the same registrable domain.
pub(super) fn same_site(shown: &str, target: &str) -> bool {
    let a = strip_www(shown);
    let b = strip_www(target);
    if a == b || is_subdomain(a, b) || is_subdomain(b, a) {
        return true;
    }
    // Same organization, different hosts: "example.com" shown, "click.example.com" or
    // "news.example.com" linked. The public suffix list keeps "alice.github.io" apart from
    // "bob.github.io" and "bank.co.uk" from "evil.co.uk".
    match (registrable(a), registrable(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

pub(super) fn is_shortener(host: &str) -> bool {
    URL_SHORTENERS.contains(&strip_www(host))
}

fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// `child` is below `parent`, and `parent` is more than a public suffix (so "co.uk" does not
/// vouch for every site under it).
fn is_subdomain(child: &str, parent: &str) -> bool {
    child.len() > parent.len()
        && child.ends_with(parent)
        && child.as_bytes()[child.len() - parent.len() - 1] == b'.'
        && psl::domain(parent.as_bytes()).is_some()
}

fn registrable(host: &str) -> Option<&[u8]> {
    let d = psl::domain(host.as_bytes())?;
    d.suffix().is_known().then(|| d.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(href: &str) -> Option<(bool, String)> {
        http_url(href).map(|u| (u.https, u.host))
    }

    #[test]
    fn reads_the_host_as_a_browser_does() {
        assert_eq!(
            host("https://Example.COM/x"),
            Some((true, "example.com".into()))
        );
        assert_eq!(
            host("HTTP://a.example:8080?q"),
            Some((false, "a.example".into()))
        );
        assert_eq!(
            host("  https://a.example.  "),
            Some((true, "a.example".into()))
        );
        assert_eq!(
            host("https://bank.com@evil.net/"),
            Some((true, "evil.net".into()))
        );
        assert_eq!(
            host("https://evil.net\\@bank.com"),
            Some((true, "evil.net".into()))
        );
        assert_eq!(host("https:evil.net/x"), Some((true, "evil.net".into())));
        assert_eq!(host("ht\ntps://evil.net"), Some((true, "evil.net".into())));
        assert_eq!(host("https://%65vil.net"), Some((true, "evil.net".into())));
        assert_eq!(
            host("https://bücher.de/"),
            Some((true, "xn--bcher-kva.de".into()))
        );
        assert_eq!(host("https://[::1]:443/"), Some((true, "[::1]".into())));
        assert_eq!(host("mailto:a@b.example"), None);
        assert_eq!(host("/relative/path"), None);
        assert_eq!(host("#top"), None);
        assert_eq!(host("https://"), None);
        assert_eq!(host("javascript:alert(1)"), None);
    }

    #[test]
    fn link_text_counts_as_an_address_only_when_it_is_one() {
        assert_eq!(text_host("www.bank.com").as_deref(), Some("www.bank.com"));
        assert_eq!(
            text_host("https://a.example/x").as_deref(),
            Some("a.example")
        );
        assert_eq!(text_host("(Bank.com/login)").as_deref(), Some("bank.com"));
        assert_eq!(
            text_host("example.co.uk.").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(text_host("bücher.de").as_deref(), Some("xn--bcher-kva.de"));
        for words in [
            "Read more",
            "Node.js",
            "v2.0",
            "e.g.",
            "support@bank.com",
            "ftp://files.example.com",
            "visit bank.com today",
            "co.uk",
            "",
        ] {
            assert_eq!(text_host(words), None, "{words:?}");
        }
    }

    #[test]
    fn same_site_allows_subdomains_and_one_organization() {
        assert!(same_site("www.bank.com", "bank.com"));
        assert!(same_site("bank.com", "secure.bank.com"));
        assert!(same_site("news.example.com", "click.example.com"));
        assert!(same_site("example.co.uk", "www.example.co.uk"));
        assert!(!same_site("bank.com", "bank.com.evil.net"));
        assert!(!same_site("bank.com", "evilbank.com"));
        assert!(!same_site("alice.github.io", "bob.github.io"));
        assert!(!same_site("bank.co.uk", "evil.co.uk"));
    }

    #[test]
    fn shorteners_match_exact_hosts() {
        assert!(is_shortener("bit.ly"));
        assert!(is_shortener("www.bit.ly"));
        assert!(!is_shortener("xt.co"));
        assert!(!is_shortener("bit.ly.example.com"));
    }
}
