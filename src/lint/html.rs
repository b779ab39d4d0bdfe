//! The HTML side of the lint: parses a rendered HTML part once and walks its tree once,
//! collecting what the rules read (visible text, links with their text, images).
//!
//! html5ever (through `scraper`) parses as a browser does, so malformed markup, entities and
//! attribute quoting come out as a reader's client would see them, and parsing never fails.

use scraper::{Html, Node};

/// What one walk of the tree found.
#[derive(Debug, Default)]
pub(super) struct Facts<'doc> {
    /// The visible text: outside script, style, head, title, template and noscript, with
    /// whitespace runs collapsed to one space.
    pub text: String,
    /// Characters of `text` a reader sees: not whitespace, not the invisible fillers that
    /// preheader tricks pad with.
    pub visible_chars: usize,
    pub links: Vec<Link<'doc>>,
    /// Every `<img>`.
    pub images: usize,
    /// `<img>` elements that are not tracking pixels: what a reader sees as pictures.
    pub content_images: usize,
    pub images_without_alt: usize,
}

/// An `<a>` or `<area>` with an href.
#[derive(Debug)]
pub(super) struct Link<'doc> {
    /// As the parser decoded it (entities resolved), untrimmed.
    pub href: &'doc str,
    /// The link's visible text, whitespace-collapsed and trimmed (empty for `<area>`).
    pub text: String,
}

pub(super) fn parse(html: &str) -> Html {
    Html::parse_document(html)
}

/// One step of the walk. The tree can be as deep as the markup is malformed, so the walk keeps
/// its own stack rather than recursing.
enum Step<N> {
    Enter(N),
    /// Leaving an element that separates text (a paragraph, a cell): a space goes between.
    Break,
    /// Leaving an `<a>`: its text is complete.
    EndLink,
}

/// Walks `doc` once, in document order.
pub(super) fn scan(doc: &Html) -> Facts<'_> {
    let mut facts = Facts {
        // Enough for the text of a typical newsletter without regrowing.
        text: String::with_capacity(4096),
        ..Facts::default()
    };
    // Indexes into facts.links of the `<a>` elements we are inside (the parser does not nest
    // them, but a stack costs nothing and is right whatever the tree).
    let mut open_links: Vec<usize> = Vec::new();
    let mut stack = vec![Step::Enter(doc.tree.root())];
    while let Some(step) = stack.pop() {
        let node = match step {
            Step::Enter(node) => node,
            Step::Break => {
                soft_space(&mut facts.text);
                continue;
            }
            Step::EndLink => {
                if let Some(i) = open_links.pop() {
                    let t = &mut facts.links[i].text;
                    if t.ends_with(' ') {
                        t.pop();
                    }
                }
                continue;
            }
        };
        match node.value() {
            Node::Text(t) => {
                facts.visible_chars += append_collapsed(&mut facts.text, t);
                if let Some(&i) = open_links.last() {
                    append_collapsed(&mut facts.links[i].text, t);
                }
            }
            Node::Element(el) => {
                let name = el.name();
                match name {
                    // Not shown to the reader (noscript holds unparsed markup as text, as the
                    // parser runs with scripting on).
                    "script" | "style" | "head" | "title" | "template" | "noscript" => continue,
                    "img" => {
                        facts.images += 1;
                        if el.attr("alt").is_none() {
                            facts.images_without_alt += 1;
                        }
                        if !is_pixel(el.attr("width"), el.attr("height")) {
                            facts.content_images += 1;
                        }
                    }
                    "a" | "area" => {
                        if let Some(href) = el.attr("href") {
                            facts.links.push(Link {
                                href,
                                text: String::new(),
                            });
                            if name == "a" {
                                open_links.push(facts.links.len() - 1);
                                stack.push(Step::EndLink);
                            }
                        }
                    }
                    _ => {}
                }
                if separates_text(name) {
                    soft_space(&mut facts.text);
                    stack.push(Step::Break);
                }
                stack.extend(node.children().rev().map(Step::Enter));
            }
            Node::Document | Node::Fragment => stack.extend(node.children().rev().map(Step::Enter)),
            _ => {}
        }
    }
    if facts.text.ends_with(' ') {
        facts.text.pop();
    }
    facts
}

/// Appends `s` with whitespace runs collapsed into the single space already at the end of
/// `buf`, if any, and never at its start. Returns how many visible characters it added.
///
/// This runs over every byte of text, so it works on bytes: runs of printable ASCII are
/// measured with one comparison a byte and copied whole; only controls and non-ASCII characters
/// (such as U+00A0 or U+200B) are decoded one by one.
fn append_collapsed(buf: &mut String, s: &str) -> usize {
    const PRINTABLE: std::ops::Range<u8> = 0x21..0x7f;
    let bytes = s.as_bytes();
    let mut visible = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if PRINTABLE.contains(&b) {
            let start = i;
            i += bytes[i..]
                .iter()
                .position(|b| !PRINTABLE.contains(b))
                .unwrap_or(bytes.len() - i);
            visible += i - start;
            buf.push_str(&s[start..i]);
        } else if b.is_ascii_whitespace() {
            i += bytes[i..]
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(bytes.len() - i);
            soft_space(buf);
        } else {
            let c = s[i..].chars().next().unwrap_or_default();
            i += c.len_utf8();
            if c.is_whitespace() {
                soft_space(buf);
            } else {
                buf.push(c);
                visible += usize::from(!is_invisible(c));
            }
        }
    }
    visible
}

fn soft_space(buf: &mut String) {
    if !buf.is_empty() && !buf.ends_with(' ') {
        buf.push(' ');
    }
}

/// Characters that take no room on screen: controls and the zero-width fillers (soft hyphen,
/// combining grapheme joiner, zero-width space and joiners, word joiner, BOM) that preheader
/// padding is made of. They must not make an image-only message look like text.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
        )
}

/// Elements whose boundaries separate words in what a reader sees ("<td>a</td><td>b</td>"
/// reads "a b"), so that text from neighbouring blocks does not run together.
fn separates_text(name: &str) -> bool {
    matches!(
        name,
        "address"
            | "article"
            | "aside"
            | "blockquote"
            | "body"
            | "br"
            | "caption"
            | "center"
            | "dd"
            | "div"
            | "dl"
            | "dt"
            | "figcaption"
            | "figure"
            | "footer"
            | "form"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "header"
            | "hr"
            | "li"
            | "main"
            | "nav"
            | "ol"
            | "p"
            | "pre"
            | "section"
            | "table"
            | "tbody"
            | "td"
            | "tfoot"
            | "th"
            | "thead"
            | "tr"
            | "ul"
    )
}

/// A tracking pixel: width and height both given and at most 1 (or either given as 0). It is
/// no picture to a reader, so it does not make a message image-heavy.
fn is_pixel(width: Option<&str>, height: Option<&str>) -> bool {
    let px = |v: Option<&str>| {
        v.map(|s| {
            let s = s.trim();
            let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..digits].parse::<u32>().ok()
        })
    };
    match (px(width), px(height)) {
        (Some(Some(0)), _) | (_, Some(Some(0))) => true,
        (Some(Some(w)), Some(Some(h))) => w <= 1 && h <= 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(html: &str) -> (String, usize, Vec<(String, String)>, [usize; 3]) {
        let doc = parse(html);
        let f = scan(&doc);
        let links = f
            .links
            .iter()
            .map(|l| (l.href.to_owned(), l.text.clone()))
            .collect();
        (
            f.text,
            f.visible_chars,
            links,
            [f.images, f.content_images, f.images_without_alt],
        )
    }

    #[test]
    fn visible_text_skips_hidden_elements_and_collapses_whitespace() {
        let (text, chars, _, _) = facts(
            "<html><head><title>Title</title><style>p{color:red}</style></head><body>\
             <script>var x = 'no';</script><noscript><p>no</p></noscript>\
             <p>  Hello\n\t <b>big</b>   world </p><p>Next</p><!-- a comment -->\
             <table><tr><td>a</td><td>b</td></tr></table>x<br>y</body></html>",
        );
        assert_eq!(text, "Hello big world Next a b x y");
        assert_eq!(chars, "HellobigworldNextabxy".len());
    }

    #[test]
    fn entities_are_decoded_in_text_and_hrefs() {
        let (text, _, links, _) = facts(
            "<p>Tom &amp; Jerry&nbsp;&#x21;</p>\
             <a href=\"https://u.example/?a=1&amp;b&#x3D;2\">Un&shy;subscribe</a>",
        );
        assert_eq!(text, "Tom & Jerry ! Un\u{AD}subscribe");
        assert_eq!(
            links,
            vec![(
                "https://u.example/?a=1&b=2".to_owned(),
                "Un\u{AD}subscribe".to_owned()
            )]
        );
    }

    #[test]
    fn invisible_fillers_are_not_visible_characters() {
        let (_, chars, _, _) = facts("<div>&zwnj;&nbsp;&#847;&zwnj;&nbsp;&#8203;&#xFEFF;</div>ok");
        assert_eq!(chars, 2);
    }

    #[test]
    fn links_keep_their_own_text() {
        let (_, _, links, _) = facts(
            "<p>Go to <a href='/a'> the <i>first</i>\n page </a> or <a>no href</a>\
             <map><area href='https://m.example/' alt='map'></map>\
             <a href='https://b.example'><img src='x.png' alt='B'></a></p>",
        );
        assert_eq!(
            links,
            vec![
                ("/a".to_owned(), "the first page".to_owned()),
                ("https://m.example/".to_owned(), String::new()),
                ("https://b.example".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn images_alt_and_tracking_pixels() {
        let (_, _, _, imgs) = facts(
            "<img src=a.png alt=''><img src=b.png><IMG SRC=c.png ALT=C>\
             <img src=t.gif width=1 height=1><img src=t2.gif width='0' style='display:none' alt>\
             <img src=wide.png width=600 height=1>",
        );
        assert_eq!(imgs, [6, 4, 3]);
    }

    #[test]
    fn malformed_html_still_yields_text_and_links() {
        let (text, _, links, _) = facts(
            "<p>Unclosed <b>bold <a href=https://a.example/x?a=1&b=2>link <div><td>stray cell\
             </span></p></table>tail &bogus; <a href='https://b.example/'>second",
        );
        assert_eq!(text, "Unclosed bold link stray cell tail &bogus; second");
        let hrefs: Vec<_> = links.iter().map(|l| l.0.as_str()).collect();
        // The unclosed <a> is reopened inside the <div>, as browsers do: the reader sees (and
        // can click) two links.
        let a = "https://a.example/x?a=1&b=2";
        assert_eq!(hrefs, [a, a, "https://b.example/"]);
        // An unterminated attribute swallows the rest, as in a browser; nothing panics.
        let (text, _, links, _) = facts("<p>Before <a href=\"https://a.example/>never closed");
        assert_eq!(text, "Before");
        assert!(links.is_empty());
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let html = "<div>".repeat(5_000) + "deep";
        let (text, chars, _, _) = facts(&html);
        assert_eq!(text, "deep");
        assert_eq!(chars, 4);
    }

    #[test]
    fn fragments_without_html_or_body_work() {
        let (text, _, links, _) = facts("Just <a href=http://x.example>text</a>");
        assert_eq!(text, "Just text");
        assert_eq!(links.len(), 1);
    }
}
