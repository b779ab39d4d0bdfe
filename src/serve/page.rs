//! The two HTML pages a person sees: the question (GET) and the confirmation (after the POST).
//! Plain HTML and a little inline CSS: no script, no external resource, readable on a phone.

/// Escapes text for HTML content and double-quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:32em;\
margin:2em auto;padding:0 1em;line-height:1.5}}button{{font-size:1.2em;padding:.6em 1.4em}}\
</style></head><body>\n{body}\n</body></html>\n"
    )
}

/// The question. `action` is the request's own path and query, so the button POSTs the same
/// URL with the RFC 8058 body (`List-Unsubscribe=One-Click`) as a plain form.
pub fn confirm(list: &str, address: &str, action: &str) -> String {
    page(
        "Unsubscribe",
        &format!(
            "<h1>Unsubscribe</h1>\n<p>Stop mail from <strong>{}</strong> to <strong>{}</strong>?</p>\n\
<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\" id=\"unsubscribe\">Unsubscribe</button></form>",
            esc(list),
            esc(address),
            esc(action)
        ),
    )
}

/// The confirmation: the same for a mail client's one-click POST and for the button.
pub fn done(list: &str, address: &str) -> String {
    page(
        "Unsubscribed",
        &format!(
            "<h1 id=\"done\">You are unsubscribed</h1>\n<p><strong>{}</strong> will get no more mail from <strong>{}</strong>.</p>",
            esc(address),
            esc(list)
        ),
    )
}

/// A short page for a refused request: the status says what, and nothing more is revealed.
pub fn refused(what: &str) -> String {
    page("Unsubscribe", &format!("<h1>{}</h1>", esc(what)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_it_shows() {
        let p = super::confirm("News <&>", "\"a<b\"@x.example", "/u?email=a%40x&token=t\"");
        assert!(p.contains("News &lt;&amp;&gt;"));
        assert!(p.contains("&quot;a&lt;b&quot;@x.example"));
        assert!(p.contains("action=\"/u?email=a%40x&amp;token=t&quot;\""));
        assert!(!p.contains("<script"));
    }
}
