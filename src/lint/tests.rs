//! Tests of the content lint: each rule firing and not firing, and a realistic newsletter that
//! must come out clean.

use super::*;

const UNSUB: &str = "https://news.example.com/unsubscribe?email=ann%40example.org&token=AbC-123_x";
const UNSUB_MAILTO: &str =
    "mailto:unsubscribe@news.example.com?subject=unsubscribe%20ann%40example.org%20AbC-123_x";
const TEXT: &str = "Hi Ann,\n\nHere is your news.\n\nUnsubscribe: https://news.example.com/unsubscribe?email=ann%40example.org&token=AbC-123_x\n";

/// A small HTML body with enough text, a text part and the unsubscribe link: clean unless a
/// test changes something.
fn html_with(body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><title>News</title></head><body>\
         <p>Here is your November news from Example, with everything that changed this month.</p>\
         {body}\
         <p><a href=\"https://news.example.com/unsubscribe?email=ann%40example.org&amp;token=AbC-123_x\">Unsubscribe</a></p>\
         </body></html>"
    )
}

struct Msg {
    subject: String,
    text: Option<String>,
    html: Option<String>,
    bytes: usize,
    unsub: Vec<&'static str>,
    empty: Vec<&'static str>,
}

impl Msg {
    fn new(html_body: &str) -> Msg {
        Msg {
            subject: "Ann, your November news".into(),
            text: Some(TEXT.into()),
            html: Some(html_with(html_body)),
            bytes: 6000,
            unsub: vec![UNSUB, UNSUB_MAILTO],
            empty: vec![],
        }
    }

    fn run(&self, cfg: &LintConfig) -> Vec<LintFinding> {
        let input = LintInput {
            subject: &self.subject,
            text: self.text.as_deref(),
            html: self.html.as_deref(),
            message_bytes: self.bytes,
            unsubscribe_urls: &self.unsub,
            empty_fields_in_subject_or_greeting: &self.empty,
        };
        lint(&input, cfg)
    }

    fn ids(&self) -> Vec<&'static str> {
        self.run(&LintConfig::default())
            .iter()
            .map(|f| f.id)
            .collect()
    }

    fn only(&self, id: &str) -> LintFinding {
        let all = self.run(&LintConfig::default());
        let mut hits: Vec<_> = all.iter().filter(|f| f.id == id).cloned().collect();
        assert_eq!(hits.len(), 1, "expected one {id}, got {all:#?}");
        hits.pop().unwrap()
    }
}

#[test]
fn the_base_message_is_clean() {
    assert_eq!(Msg::new("").ids(), Vec::<&str>::new());
}

#[test]
fn html_size() {
    let mut m = Msg::new("");
    let base = m.html.as_ref().unwrap().len();
    // Exactly at the limit is not clipped; one byte more is.
    let pad = |n: usize| format!("<!--{}-->", "x".repeat(n - 7));
    m.html = Some(html_with(&pad(HTML_CLIP_BYTES - base)));
    assert_eq!(m.html.as_ref().unwrap().len(), HTML_CLIP_BYTES);
    assert!(!m.ids().contains(&"lint.html-size"));
    m.html = Some(html_with(&pad(HTML_CLIP_BYTES - base + 1)));
    let f = m.only("lint.html-size");
    assert_eq!(f.level, Level::Warn);
    assert!(
        f.message.contains("104449 bytes (102.0 KB)"),
        "{}",
        f.message
    );
}

#[test]
fn no_text_part() {
    let mut m = Msg::new("");
    m.text = None;
    let f = m.only("lint.no-text-part");
    assert!(f.message.contains("no text alternative"));
    m.text = Some(" \n ".into());
    assert!(m.only("lint.no-text-part").message.contains("empty"));
    // A text-only message is fine.
    let mut t = Msg::new("");
    t.html = None;
    assert_eq!(t.ids(), Vec::<&str>::new());
}

#[test]
fn no_visible_unsubscribe() {
    // Shown in the HTML only (href decoded by the parser: "&amp;" is "&").
    let mut m = Msg::new("");
    m.text = Some("Hi Ann,\n\nNo link here.\n".into());
    assert!(!m.ids().contains(&"lint.no-visible-unsubscribe"));
    // Shown in the text only.
    let mut m = Msg::new("");
    m.html = Some(
        "<p>Here is your November news from Example, with everything that changed.</p>".into(),
    );
    assert!(!m.ids().contains(&"lint.no-visible-unsubscribe"));
    // Shown as HTML text, not as a link.
    let mut m = Msg::new("");
    m.text = Some("Hi.".into());
    m.html = Some(format!(
        "<p>Here is your November news from Example, with everything that changed.</p>\
         <p>To leave: {}</p>",
        UNSUB.replace('&', "&amp;")
    ));
    assert!(!m.ids().contains(&"lint.no-visible-unsubscribe"));
    // The mailto alone counts.
    let mut m = Msg::new("");
    m.text = Some(format!("Write to {UNSUB_MAILTO}"));
    m.html = None;
    assert!(!m.ids().contains(&"lint.no-visible-unsubscribe"));

    // Neither part has it; another recipient's link does not count.
    let mut m = Msg::new("");
    m.text = Some("Hi Ann, https://news.example.com/unsubscribe?email=bob%40example.org".into());
    m.html = Some(
        "<p>Here is your November news from Example, with everything that changed.</p>\
         <a href=\"https://news.example.com/unsubscribe?email=bob%40example.org\">Unsubscribe</a>"
            .into(),
    );
    let f = m.only("lint.no-visible-unsubscribe");
    assert!(f.message.contains("none of this recipient's"));
    assert!(f.fix.contains("{{unsubscribe_url}}"));

    // Nothing configured: say so. An empty URL is not a configured one.
    let mut m = Msg::new("");
    m.unsub = vec![""];
    let f = m.only("lint.no-visible-unsubscribe");
    assert!(
        f.message.contains("no unsubscribe URL is configured"),
        "{}",
        f.message
    );
    assert!(f.fix.contains("[unsubscribe]"));
}

#[test]
fn http_link() {
    let m = Msg::new(
        "<p><a href=\"http://a.example/1\">one</a> <a href=\"HTTP://b.example/2\">two</a>\
         <a href=\"http://a.example/1\">again</a> <a href=\"http://c.example/\">three</a>\
         <a href=\" http://d.example/\">four</a></p>",
    );
    let f = m.only("lint.http-link");
    assert_eq!(f.level, Level::Warn);
    assert!(
        f.message.starts_with("5 links use http://"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .ends_with("http://a.example/1, HTTP://b.example/2, http://c.example/, ..."),
        "{}",
        f.message
    );
    let ok = Msg::new(
        "<p><a href=\"https://a.example/\">s</a> <a href=\"mailto:x@a.example\">m</a>\
         <a href=\"/rel\">r</a> <a href=\"#top\">t</a> <img src=\"http://img.example/x.png\" alt=\"\">\
         <a>http://not-a-link.example</a></p>",
    );
    assert!(!ok.ids().contains(&"lint.http-link"), "{:?}", ok.ids());
}

#[test]
fn link_text_mismatch() {
    for (text, href) in [
        ("www.bank.com", "https://evil.example/login"),
        ("https://a.example/x", "https://b.example/x"),
        ("bank.com", "https://bank.com.evil.net/"),
        ("https://bank.com", "https://bank.com@evil.net/"),
        ("paypal.com/signin", "http://192.0.2.7/"),
    ] {
        let m = Msg::new(&format!("<p><a href=\"{href}\">{text}</a></p>"));
        let f = m.only("lint.link-text-mismatch");
        assert!(f.message.contains(&format!("\"{text}\"")), "{}", f.message);
    }
    for (text, href) in [
        ("www.example.com", "https://example.com/"),
        ("Example.com", "https://www.example.com/path"),
        ("example.com", "https://news.example.com/"),
        ("news.example.com", "https://click.example.com/t?u=1"),
        (
            "https://news.example.com/2026/11",
            "https://news.example.com/2026/11",
        ),
        ("Read the issue", "https://elsewhere.example/"),
        ("Node.js", "https://nodejs.org/"),
        ("support@example.com", "mailto:support@example.com"),
        ("www.example.com", "mailto:support@example.com"),
    ] {
        let m = Msg::new(&format!("<p><a href=\"{href}\">{text}</a></p>"));
        assert!(
            !m.ids().contains(&"lint.link-text-mismatch"),
            "{text} -> {href}: {:?}",
            m.ids()
        );
    }
}

#[test]
fn url_shortener() {
    let m = Msg::new(
        "<p><a href=\"https://bit.ly/3abc\">offer</a> <a href=\"https://www.tinyurl.com/x\">x</a>\
         <a href=\"https://T.CO/y\">y</a></p>",
    );
    let f = m.only("lint.url-shortener");
    assert!(
        f.message.starts_with("3 links go through a URL shortener"),
        "{}",
        f.message
    );
    assert!(f.message.contains("https://bit.ly/3abc"));
    let ok = Msg::new(
        "<p><a href=\"https://bitly.example/x\">a</a> <a href=\"https://xt.co/\">b</a>\
         <a href=\"https://news.example.com/?via=bit.ly\">c</a></p>",
    );
    assert!(!ok.ids().contains(&"lint.url-shortener"));
}

#[test]
fn img_no_alt() {
    let m = Msg::new("<p><img src=\"a.png\"> <img src=\"b.png\" alt=\"\"> <img src=\"c.png\"></p>");
    let f = m.only("lint.img-no-alt");
    assert_eq!(f.level, Level::Warn);
    assert!(
        f.message.starts_with("2 of 3 images have no alt"),
        "{}",
        f.message
    );
    let ok = Msg::new("<p><img src=\"a.png\" alt=\"Logo\"> <img src=\"b.png\" alt></p>");
    assert!(!ok.ids().contains(&"lint.img-no-alt"));
}

#[test]
fn image_only() {
    // A banner and a few words: image-only.
    let mut m = Msg::new("");
    m.html = Some(format!(
        "<a href=\"https://shop.example/\"><img src=\"banner.jpg\" alt=\"Sale\"></a>\
         <p><a href=\"{}\">Unsubscribe</a></p>",
        UNSUB.replace('&', "&amp;")
    ));
    let f = m.only("lint.image-only");
    assert!(
        f.message.contains("1 image and 11 visible characters"),
        "{}",
        f.message
    );
    // Preheader filler does not count as text.
    let mut m = Msg::new("");
    m.html = Some(format!(
        "<div style=\"display:none\">{}</div><img src=\"banner.jpg\" alt=\"Sale\">",
        "&zwnj;&nbsp;&#847;".repeat(100)
    ));
    assert!(m.ids().contains(&"lint.image-only"));
    // Four pictures beside 300 characters: image-heavy.
    let m = Msg::new(&format!(
        "<p>{}</p>{}",
        "word ".repeat(60 - 18),
        "<img src=\"p.jpg\" alt=\"P\">".repeat(4)
    ));
    assert!(m.ids().contains(&"lint.image-only"), "{:?}", m.ids());

    // One logo and a short note is normal; so is a tracking pixel beside no text at all.
    let ok = Msg::new("<p><img src=\"logo.png\" alt=\"Example\" width=\"120\"></p>");
    assert!(!ok.ids().contains(&"lint.image-only"));
    let mut ok = Msg::new("");
    ok.html = Some("<p>Thanks</p><img src=\"t.gif\" width=\"1\" height=\"1\" alt=\"\">".into());
    assert!(!ok.ids().contains(&"lint.image-only"));
    // Three pictures with plenty of text.
    let ok = Msg::new(&format!(
        "<p>{}</p>{}",
        "words ".repeat(60),
        "<img src=\"p.jpg\" alt=\"P\">".repeat(3)
    ));
    assert!(!ok.ids().contains(&"lint.image-only"));
}

#[test]
fn subject_caps() {
    let mut m = Msg::new("");
    m.subject = "HUGE SALE TODAY only".into();
    let f = m.only("lint.subject-caps");
    assert!(f.message.contains("(13 of 17 letters)"), "{}", f.message);
    for ok in [
        "FAQ: Q4 NEWS",         // under 10 letters
        "Your Q4 news is here", // mixed case
        "ÉTÉ 2026: nouveautés de l'été",
        "十一月のニュース ABC",
    ] {
        m.subject = ok.into();
        assert!(!m.ids().contains(&"lint.subject-caps"), "{ok}");
    }
    m.subject = "ÉTÉ NOUVEAUTÉS".into();
    assert!(m.ids().contains(&"lint.subject-caps"));
}

#[test]
fn subject_exclaim() {
    let mut m = Msg::new("");
    for bad in ["Sale!!!", "Really???", "What?!?", "Big news！！！"] {
        m.subject = bad.into();
        assert_eq!(m.only("lint.subject-exclaim").level, Level::Warn, "{bad}");
    }
    for ok in ["Sale!", "Really?!", "Wow! Really? Yes!"] {
        m.subject = ok.into();
        assert!(!m.ids().contains(&"lint.subject-exclaim"), "{ok}");
    }
}

#[test]
fn subject_length() {
    let mut m = Msg::new("");
    m.subject = "  ".into();
    assert_eq!(m.only("lint.subject-length").level, Level::Warn);
    m.subject = "é".repeat(SUBJECT_MAX_CHARS);
    assert!(!m.ids().contains(&"lint.subject-length"));
    m.subject = "é".repeat(SUBJECT_MAX_CHARS + 1);
    let f = m.only("lint.subject-length");
    assert_eq!(f.level, Level::Info);
    assert!(f.message.contains("79 characters"));
}

#[test]
fn empty_field() {
    let mut m = Msg::new("");
    m.empty = vec!["first_name"];
    let f = m.only("lint.empty-field");
    assert!(
        f.message.contains("the column first_name is empty"),
        "{}",
        f.message
    );
    assert!(
        f.fix
            .contains("{{#if first_name}}Hi {{first_name}}{{else}}Hello{{/if}}"),
        "{}",
        f.fix
    );
    m.empty = vec!["first_name", "company"];
    assert!(
        m.only("lint.empty-field")
            .message
            .contains("first_name, company are empty")
    );
}

#[test]
fn message_size() {
    let m = Msg::new("");
    let with = |max| LintConfig {
        max_message_bytes: max,
    };
    let has = |cfg: &LintConfig| m.run(cfg).iter().any(|f| f.id == "lint.message-size");
    assert!(!has(&with(None)));
    assert!(!has(&with(Some(6000))));
    assert!(has(&with(Some(5999))));
}

#[test]
fn findings_follow_the_rule_order_and_every_id_is_listed() {
    let mut m = Msg::new(
        "<a href=\"http://bit.ly/x\">www.bank.com</a><img src=a.png><img src=b.png><img src=c.png>",
    );
    m.text = None;
    m.subject = "FREE MONEY NOW!!!".into();
    m.empty = vec!["first_name"];
    m.bytes = 10;
    let found = m.run(&LintConfig {
        max_message_bytes: Some(1),
    });
    let ids: Vec<_> = found.iter().map(|f| f.id).collect();
    let order: Vec<_> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(ids, order);
    assert_eq!(ids.len(), 10, "{ids:?}");
    for f in &found {
        let rule = RULES.iter().find(|r| r.id == f.id).expect("listed");
        assert!(f.level <= rule.level, "{} is louder than its rule", f.id);
        assert!(!f.fix.is_empty() && !f.message.is_empty());
    }
    let json = serde_json::to_value(&found[0]).unwrap();
    assert_eq!(json["level"], "warn");
}

#[test]
fn rules_are_unique_and_documented() {
    for (i, r) in RULES.iter().enumerate() {
        assert!(r.id.starts_with("lint."));
        assert!(!r.threshold.is_empty() && !r.source.is_empty() && !r.summary.is_empty());
        assert!(RULES[..i].iter().all(|o| o.id != r.id), "{} twice", r.id);
    }
    assert_eq!(RULES.len(), 13);
}

#[test]
fn a_realistic_newsletter_is_clean() {
    let html = NEWSLETTER.replace("{{unsubscribe_url}}", &UNSUB.replace('&', "&amp;"));
    assert!((4500..7000).contains(&html.len()), "{}", html.len());
    let text = format!(
        "Hi Ann,\n\nHere is your November news from Example.\n\n\
         Read the full issue: https://news.example.com/2026/11\n\n--\n\
         Example News, 1 Example Street, Springfield\nUnsubscribe: {UNSUB}\n"
    );
    let input = LintInput {
        subject: "Ann, your November news: the new dashboard is here",
        text: Some(&text),
        html: Some(&html),
        message_bytes: 14_000,
        unsubscribe_urls: &[UNSUB, UNSUB_MAILTO],
        empty_fields_in_subject_or_greeting: &[],
    };
    let cfg = LintConfig {
        max_message_bytes: Some(200_000),
    };
    let found = lint(&input, &cfg);
    assert!(found.is_empty(), "{found:#?}");
}

/// A typical responsive newsletter: head styles, a hidden preheader, a logo, a hero image,
/// sections with buttons, a tracking pixel, and a footer with the unsubscribe link.
const NEWSLETTER: &str = r##"<!DOCTYPE html>
<html lang="en" xmlns="http://www.w3.org/1999/xhtml">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Your November news</title>
  <style>
    body { margin: 0; padding: 0; background: #f4f4f7; }
    .wrapper { width: 100%; background: #f4f4f7; }
    .content { width: 600px; max-width: 600px; background: #ffffff; font-family: Arial, sans-serif; color: #222222; }
    .button { display: inline-block; padding: 12px 20px; background: #1a73e8; color: #ffffff; text-decoration: none; border-radius: 4px; }
    @media only screen and (max-width: 620px) { .content { width: 100% !important; } }
  </style>
  <!--[if mso]><style>.content { width: 600px; }</style><![endif]-->
</head>
<body>
  <div style="display:none; max-height:0; overflow:hidden;">The new dashboard, three tips for faster reports, and a date for the spring meetup.&zwnj;&nbsp;&zwnj;&nbsp;&zwnj;&nbsp;</div>
  <table role="presentation" class="wrapper" width="100%" cellpadding="0" cellspacing="0">
    <tr><td align="center" style="padding:24px;">
      <table role="presentation" class="content" width="600" cellpadding="0" cellspacing="0">
        <tr><td style="padding:24px;">
          <a href="https://news.example.com/"><img src="https://news.example.com/img/logo.png" alt="Example News" width="160" height="40"></a>
        </td></tr>
        <tr><td>
          <img src="https://news.example.com/img/2026-11-hero.jpg" alt="The new dashboard on a laptop" width="600" height="300" style="display:block; width:100%; height:auto;">
        </td></tr>
        <tr><td style="padding:24px;">
          <h1 style="font-size:22px;">Hi Ann,</h1>
          <p>Here is your November news from Example. This month we shipped the new dashboard,
             collected three tips from readers who build reports every week, and set a date for
             the spring meetup.</p>
          <h2 style="font-size:18px;">The new dashboard</h2>
          <p>Everything you check every morning now fits on one screen: sales by region, open
             tickets and the week's trend, with filters that remember your last choice. Pro
             members get it this week; everyone else in December.</p>
          <p><a class="button" href="https://news.example.com/2026/11/dashboard?utm_source=newsletter&amp;utm_medium=email">See the dashboard</a></p>
          <h2 style="font-size:18px;">Three tips for faster reports</h2>
          <ul>
            <li>Save a filter once and reuse it in every report.</li>
            <li>Schedule the Monday export instead of building it by hand.</li>
            <li>Share a live link rather than a spreadsheet that goes stale.</li>
          </ul>
          <p>Read the details at <a href="https://news.example.com/2026/11/tips">news.example.com/2026/11/tips</a>.</p>
          <h2 style="font-size:18px;">From the community</h2>
          <table role="presentation" width="100%" cellpadding="0" cellspacing="0">
            <tr>
              <td width="50%" valign="top" style="padding-right:8px;">
                <img src="https://news.example.com/img/2026-11-maps.jpg" alt="A sales map by region" width="270" height="150">
                <p><strong>Maps that answer questions.</strong> Priya from Leeds colours each
                   region by its change since last quarter, so the meeting starts with the
                   places that moved.</p>
                <p><a href="https://news.example.com/2026/11/maps">How she builds it</a></p>
              </td>
              <td width="50%" valign="top" style="padding-left:8px;">
                <img src="https://news.example.com/img/2026-11-alerts.jpg" alt="An alert on a phone" width="270" height="150">
                <p><strong>Alerts that stay quiet.</strong> Marco's team gets one message a
                   day, and only when a number leaves its usual range.</p>
                <p><a href="https://news.example.com/2026/11/alerts">Set up your own</a></p>
              </td>
            </tr>
          </table>
          <h2 style="font-size:18px;">Spring meetup</h2>
          <p>We meet on 14 March in Springfield. Seats are free but limited; reply to this email
             if you would like one, and tell us what you would like to hear about.</p>
          <p><a href="https://news.example.com/2026/11">Read the full issue</a> &middot;
             <a href="mailto:support@example.com">support@example.com</a></p>
        </td></tr>
        <tr><td style="padding:16px 24px; font-size:12px; color:#666666;">
          Example News, 1 Example Street, Springfield<br>
          You receive this because you subscribed at
          <a href="https://www.example.com/">www.example.com</a>.
          <a href="{{unsubscribe_url}}" style="color:#666666;">Unsubscribe</a> or
          <a href="https://news.example.com/preferences">change your preferences</a>.
        </td></tr>
      </table>
    </td></tr>
  </table>
  <img src="https://news.example.com/o.gif?m=2026-11&amp;r=1" width="1" height="1" alt="" style="display:block;">
</body>
</html>
"##;
