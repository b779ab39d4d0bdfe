//! The HTML side of the lint: one pass over a rendered HTML part that collects what the rules
//! read (visible text, links with their text, images), without building a tree.
//!
//! The lint runs for every recipient, so this is a tokenizer in the manner of the WHATWG one
//! (tags, attributes with their quoting, comments, raw-text elements such as `<style>`,
//! character references from the full named-entity table) driving a few flags instead of a
//! document tree. It follows what a browser shows for the markup mail is made of; where a
//! browser would rebuild a broken tree (an unclosed `<a>` reopened in the next block), it
//! sees the same text and URLs, once. A test checks it against html5ever's tree on a corpus.

use std::borrow::Cow;

use memchr::{memchr, memmem};

/// What one pass found.
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
    /// With character references decoded, untrimmed; borrowed when there were none.
    pub href: Cow<'doc, str>,
    /// The link's visible text, whitespace-collapsed and trimmed (empty for `<area>`).
    pub text: String,
}

/// Scans `html` once, in document order. Never fails: malformed markup yields what a browser
/// would show of it, and a tag cut off by the end of the input is dropped, as browsers do.
pub(super) fn scan(html: &str) -> Facts<'_> {
    let mut s = Scanner {
        src: html,
        pos: 0,
        facts: Facts {
            // Enough for the text of a typical newsletter without regrowing.
            text: String::with_capacity(4096),
            ..Facts::default()
        },
        in_head: false,
        body_started: false,
        template_depth: 0,
        open_link: None,
    };
    s.run();
    s.close_link();
    let mut facts = s.facts;
    if facts.text.ends_with(' ') {
        facts.text.pop();
    }
    facts
}

struct Scanner<'doc> {
    src: &'doc str,
    pos: usize,
    facts: Facts<'doc>,
    /// Between `<head>` and its (possibly implied) end: nothing there is shown.
    in_head: bool,
    /// Something was shown already, so a late `<head>` is ignored (as a browser does).
    body_started: bool,
    /// Inside this many `<template>`s: their content is inert.
    template_depth: usize,
    /// The index in `facts.links` of the `<a href>` we are inside.
    open_link: Option<usize>,
}

/// A start or end tag, with the attributes the rules read (the first of each name wins).
#[derive(Default)]
struct Tag<'doc> {
    /// Lowercase; empty when longer than any name the walk looks at.
    name: TagName,
    href: Option<&'doc str>,
    alt: bool,
    width: Option<&'doc str>,
    height: Option<&'doc str>,
}

/// A tag name, lowercased into a small buffer: the names the walk knows are short.
#[derive(Default, Clone, Copy)]
struct TagName {
    buf: [u8; 12],
    len: usize,
}

impl TagName {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Elements a `<head>` holds; any other start tag ends it, as in a browser.
fn belongs_in_head(name: &str) -> bool {
    matches!(
        name,
        "base"
            | "basefont"
            | "bgsound"
            | "link"
            | "meta"
            | "noscript"
            | "script"
            | "style"
            | "template"
            | "title"
            | "head"
            | "html"
    )
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl<'doc> Scanner<'doc> {
    fn bytes(&self) -> &'doc [u8] {
        self.src.as_bytes()
    }

    fn run(&mut self) {
        let b = self.bytes();
        while self.pos < b.len() {
            let next = memchr(b'<', &b[self.pos..]).map_or(b.len(), |i| self.pos + i);
            if next > self.pos {
                self.text(&self.src[self.pos..next], true);
            }
            self.pos = next;
            if self.pos < b.len() {
                self.markup();
            }
        }
    }

    /// At a `<`: a tag, a comment, a doctype, or just a `<` in the text.
    fn markup(&mut self) {
        let b = self.bytes();
        let at = self.pos;
        let next = b.get(at + 1).copied();
        match next {
            Some(b'!') if b[at..].starts_with(b"<!--") => {
                let body = at + 4;
                // "<!-->" and "<!--->" are complete (empty) comments.
                self.pos = if b.get(body) == Some(&b'>') {
                    body + 1
                } else if b[body..].starts_with(b"->") {
                    body + 2
                } else {
                    memmem::find(&b[body..], b"-->").map_or(b.len(), |i| body + i + 3)
                };
            }
            // A doctype, a CDATA section or a processing instruction: nothing shown.
            Some(b'!' | b'?') => self.skip_past_gt(at + 2),
            Some(b'/') => match b.get(at + 2) {
                Some(c) if c.is_ascii_alphabetic() => {
                    if let Some(tag) = self.tag(at + 2) {
                        self.end_tag(&tag);
                    }
                }
                Some(b'>') => self.pos = at + 3,
                None => {
                    self.text("</", false);
                    self.pos = b.len();
                }
                Some(_) => self.skip_past_gt(at + 2),
            },
            Some(c) if c.is_ascii_alphabetic() => {
                if let Some(tag) = self.tag(at + 1) {
                    self.start_tag(&tag);
                }
            }
            _ => {
                self.text("<", false);
                self.pos = at + 1;
            }
        }
    }

    fn skip_past_gt(&mut self, from: usize) {
        let b = self.bytes();
        self.pos = memchr(b'>', &b[from.min(b.len())..]).map_or(b.len(), |i| from + i + 1);
    }

    /// Reads a tag whose name starts at `from`; leaves `pos` after its `>`. `None` when the
    /// input ends inside it: a browser drops such a tag, and the rest with it.
    fn tag(&mut self, from: usize) -> Option<Tag<'doc>> {
        let b = self.bytes();
        let src = self.src;
        let mut i = from;
        while i < b.len() && !is_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let mut tag = Tag::default();
        if i - from <= tag.name.buf.len() {
            tag.name.len = i - from;
            for (d, s) in tag.name.buf.iter_mut().zip(&b[from..i]) {
                *d = s.to_ascii_lowercase();
            }
        }
        loop {
            while i < b.len() && (is_space(b[i]) || b[i] == b'/') {
                i += 1;
            }
            match b.get(i) {
                None => {
                    self.pos = b.len();
                    return None;
                }
                Some(b'>') => {
                    self.pos = i + 1;
                    return Some(tag);
                }
                Some(_) => {}
            }
            // An attribute name: up to a space, "/", ">" or "=" (an "=" first is part of it).
            let name_start = i;
            i += 1;
            while i < b.len() && !is_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            let name = &b[name_start..i];
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            let mut value = "";
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && is_space(b[i]) {
                    i += 1;
                }
                match b.get(i) {
                    Some(&q @ (b'"' | b'\'')) => {
                        let start = i + 1;
                        let Some(len) = memchr(q, &b[start..]) else {
                            self.pos = b.len();
                            return None;
                        };
                        value = &src[start..start + len];
                        i = start + len + 1;
                    }
                    Some(b'>') | None => {}
                    Some(_) => {
                        let start = i;
                        while i < b.len() && !is_space(b[i]) && b[i] != b'>' {
                            i += 1;
                        }
                        value = &src[start..i];
                    }
                }
            }
            if name.eq_ignore_ascii_case(b"href") {
                tag.href.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"alt") {
                tag.alt = true;
            } else if name.eq_ignore_ascii_case(b"width") {
                tag.width.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"height") {
                tag.height.get_or_insert(value);
            }
        }
    }

    /// Everything up to `</name` (any case) followed by a space, "/" or ">", or to the end:
    /// the content of an element whose content is not markup (style, script, title...).
    /// Leaves `pos` at that end tag's `<`.
    fn raw_content(&mut self, name: &str) -> &'doc str {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        while let Some(off) = memmem::find(&b[i..], b"</") {
            let at = i + off;
            let after = at + 2 + name.len();
            if b.len() >= after
                && b[at + 2..after].eq_ignore_ascii_case(name.as_bytes())
                && b.get(after)
                    .is_none_or(|&c| is_space(c) || c == b'/' || c == b'>')
            {
                self.pos = at;
                return &self.src[start..at];
            }
            i = at + 2;
        }
        self.pos = b.len();
        &self.src[start..]
    }

    fn start_tag(&mut self, tag: &Tag<'doc>) {
        let name = tag.name.as_str();
        // Elements whose content is not markup: consumed here, shown or not.
        match name {
            "script" | "style" | "noscript" | "iframe" | "noembed" | "noframes" | "title" => {
                self.raw_content(name);
                return;
            }
            "textarea" | "xmp" => {
                let content = self.raw_content(name);
                self.text(content, name == "textarea");
                return;
            }
            "plaintext" => {
                let rest = &self.src[self.pos..];
                self.pos = self.src.len();
                self.text(rest, false);
                return;
            }
            _ => {}
        }
        if self.template_depth > 0 {
            self.template_depth += usize::from(name == "template");
            return;
        }
        if name == "template" {
            self.template_depth = 1;
            return;
        }
        if name == "head" {
            self.in_head = !self.body_started;
            return;
        }
        if !belongs_in_head(name) {
            self.in_head = false;
            self.body_started = true;
        }
        match name {
            "img" => {
                self.facts.images += 1;
                if !tag.alt {
                    self.facts.images_without_alt += 1;
                }
                let width = tag.width.map(|v| decode(v, true));
                let height = tag.height.map(|v| decode(v, true));
                if !is_pixel(width.as_deref(), height.as_deref()) {
                    self.facts.content_images += 1;
                }
            }
            "a" => {
                // An <a> inside an <a> closes the first, as in a browser.
                self.close_link();
                if let Some(href) = tag.href {
                    self.facts.links.push(Link {
                        href: decode(href, true),
                        text: String::new(),
                    });
                    self.open_link = Some(self.facts.links.len() - 1);
                }
            }
            "area" => {
                if let Some(href) = tag.href {
                    self.facts.links.push(Link {
                        href: decode(href, true),
                        text: String::new(),
                    });
                }
            }
            _ => {}
        }
        if separates_text(name) {
            soft_space(&mut self.facts.text);
        }
    }

    fn end_tag(&mut self, tag: &Tag<'doc>) {
        let name = tag.name.as_str();
        if self.template_depth > 0 {
            self.template_depth -= usize::from(name == "template");
            return;
        }
        match name {
            "head" => self.in_head = false,
            "a" => self.close_link(),
            _ => {}
        }
        if separates_text(name) {
            soft_space(&mut self.facts.text);
        }
    }

    fn close_link(&mut self) {
        if let Some(i) = self.open_link.take() {
            let t = &mut self.facts.links[i].text;
            if t.ends_with(' ') {
                t.pop();
            }
        }
    }

    /// Text as the reader sees it; `references` says whether `&...;` is decoded in it.
    fn text(&mut self, t: &str, references: bool) {
        if self.template_depth > 0 {
            return;
        }
        if !t.bytes().any(|c| !is_space(c)) {
            // Whitespace: shown only as a separator, and never in a head.
            if !self.in_head {
                soft_space(&mut self.facts.text);
                if let Some(i) = self.open_link {
                    soft_space(&mut self.facts.links[i].text);
                }
            }
            return;
        }
        // Text that is not whitespace ends the head, as in a browser.
        self.in_head = false;
        self.body_started = true;
        let t = if references {
            decode(t, false)
        } else {
            Cow::Borrowed(t)
        };
        self.facts.visible_chars += append_collapsed(&mut self.facts.text, &t);
        if let Some(i) = self.open_link {
            append_collapsed(&mut self.facts.links[i].text, &t);
        }
    }
}

/// `s` with its character references (`&amp;`, `&#x3D;`, `&nbsp`) replaced by what they
/// stand for, borrowed when there are none. In an attribute value, a legacy reference without
/// its ";" that runs into a letter, digit or "=" stays as written (`?a=1&copy=2`).
fn decode(s: &str, in_attribute: bool) -> Cow<'_, str> {
    let Some(first) = memchr(b'&', s.as_bytes()) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..first]);
    let mut rest = &s[first..];
    while !rest.is_empty() {
        // `rest` starts with "&".
        match reference(&rest[1..], in_attribute) {
            Some((c1, c2, used)) => {
                out.push(c1);
                out.extend(c2);
                rest = &rest[1 + used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
        let next = memchr(b'&', rest.as_bytes()).unwrap_or(rest.len());
        out.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    Cow::Owned(out)
}

/// The reference at the start of `s` (just after its "&"): its one or two characters and
/// how many bytes of `s` it used. `None` when `s` does not start one.
fn reference(s: &str, in_attribute: bool) -> Option<(char, Option<char>, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'#') {
        let hex = matches!(b.get(1), Some(b'x' | b'X'));
        let start = if hex { 2 } else { 1 };
        let radix = if hex { 16 } else { 10 };
        let digits = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || hex && c.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            return None;
        }
        let value = b[start..start + digits].iter().fold(0u32, |v, c| {
            let d = char::from(*c).to_digit(radix).unwrap_or(0);
            v.saturating_mul(radix).saturating_add(d).min(0x11_0000)
        });
        let mut used = start + digits;
        if b.get(used) == Some(&b';') {
            used += 1;
        }
        return Some((numeric(value), None, used));
    }
    let n = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    if n == 0 {
        return None;
    }
    let full = |name: &str| {
        web_atoms::NAMED_ENTITIES
            .get(name)
            .filter(|(c1, _)| *c1 != 0)
            .and_then(|&(c1, c2)| {
                Some((char::from_u32(c1)?, char::from_u32(c2).filter(|_| c2 != 0)))
            })
    };
    // The table's names are at most 32 bytes long, with their ";".
    if b.get(n) == Some(&b';')
        && n < 32
        && let Some((c1, c2)) = full(&s[..=n])
    {
        return Some((c1, c2, n + 1));
    }
    // A legacy name without ";" ("&nbsp", "&copy"): the longest one that fits.
    for k in (2..=n.min(32)).rev() {
        if let Some((c1, c2)) = full(&s[..k]) {
            if in_attribute
                && b.get(k)
                    .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'=')
            {
                return None;
            }
            return Some((c1, c2, k));
        }
    }
    None
}

/// A numeric reference's character, with the substitutions browsers make: NUL, surrogates
/// and values past U+10FFFF become U+FFFD, and 0x80 to 0x9F are read as Windows-1252.
fn numeric(value: u32) -> char {
    match value {
        0x80..=0x9f => web_atoms::C1_REPLACEMENTS[(value - 0x80) as usize]
            .unwrap_or_else(|| char::from_u32(value).unwrap_or('\u{FFFD}')),
        0 => '\u{FFFD}',
        v => char::from_u32(v).unwrap_or('\u{FFFD}'),
    }
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

/// The tree walk this scanner replaced, over html5ever's document tree (through `scraper`):
/// the reference that `agrees_with_html5evers_tree` compares against.
#[cfg(test)]
mod reference {
    use super::{Facts, Link, append_collapsed, is_pixel, separates_text, soft_space};
    use scraper::{Html, Node};

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
                                    href: href.into(),
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
                Node::Document | Node::Fragment => {
                    stack.extend(node.children().rev().map(Step::Enter))
                }
                _ => {}
            }
        }
        if facts.text.ends_with(' ') {
            facts.text.pop();
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(html: &str) -> (String, usize, Vec<(String, String)>, [usize; 3]) {
        let f = scan(html);
        let links = f
            .links
            .iter()
            .map(|l| (l.href.to_string(), l.text.clone()))
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
        // A browser reopens the unclosed <a> inside the <div> (two elements, one URL); the
        // scan sees the URL once, which the rules judge the same.
        assert_eq!(hrefs, ["https://a.example/x?a=1&b=2", "https://b.example/"]);
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

    /// The scanner and html5ever's tree agree on every fact, over the shipped templates and
    /// markup that exercises the tokenizer's corners, alone and spliced together. In splices
    /// the tree may close a `<p>` that a later block start implies (in `<p>x<xmp>`), which
    /// puts a space in its text where the scan has none: there the text is compared without
    /// spaces, the visible characters exactly.
    #[test]
    fn agrees_with_html5evers_tree() {
        let mut corpus: Vec<String> = [
            include_str!("../../templates/message.html.hbs"),
            include_str!("../../examples/newsletter/templates/newsletter.html.hbs"),
            include_str!("../../bench/templates/newsletter.html.hbs"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let pieces = [
            "<!DOCTYPE html><html lang=en>",
            "<head><meta charset=utf-8><title>T &amp; t</title><style>a>b{x:'</p>'}</style></head>",
            "<HEAD><Link rel=x href='https://head.example/'></HEAD>",
            "<body class=\"a>b\">",
            "<p>Caf&eacute; &amp;amp; &lt;b&gt; &#233;&#xE9;&#128;&#0;&#x110000; &notit; &nbsp</p>",
            "<a href=\"https://a.example/?q=1&amp;r=2&copy=3&copy;\">Read &gt; more</a>",
            "<a href=https://b.example/x>B</a><a HREF='https://c.example'>C <b>c</b></a>",
            "<a name=top>anchor</a><area href=/map alt=m>",
            "<img src=a.png alt='A'><img src=b.png width=1 height=1><IMG src=c WIDTH=\"600\">",
            "<img src=d width='&#48;'><img alt src=e height=0>",
            "<!-- comment <p>hidden</p> --><!----><!--->x<!-- - -->",
            "<script>if (a < b) { document.write('</scr' + 'ipt>') }</script>",
            "<noscript><p>no</p></noscript><template><p>inert <template>x</template></p></template>",
            "<div>one</div><div>two</div>three<br>four<hr>five",
            "<table><tr><td>a</td><td>b</td></tr></table>",
            "<ul><li>x</li><li>y</li></ul><ol><li>z</ol>",
            "<textarea>a &amp; <b>b</b></textarea><xmp>&amp;<i></xmp>",
            "<span>\u{200B}\u{00AD}&zwnj;&#847;</span>\u{A0}\t\n",
            "text with a < sign and </ > and <3 and <!x> and <?pi?>",
            "<p title='x' / data-x=\"y\"/>self / closing<br/>",
            "</p></div></b>stray ends",
            "<center>c</center><h1>H</h1><blockquote>q</blockquote>",
        ];
        corpus.extend(pieces.iter().map(|p| p.to_string()));
        let exact = corpus.len();
        // Splices of the pieces, in a fixed pseudo-random order.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let mut doc = String::new();
            for _ in 0..6 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                doc.push_str(pieces[(x % pieces.len() as u64) as usize]);
            }
            corpus.push(doc);
        }
        for (n, doc) in corpus.iter().enumerate() {
            let tree = reference::parse(doc);
            let want = reference::scan(&tree);
            let got = scan(doc);
            let links = |f: &Facts<'_>| -> Vec<(String, String)> {
                f.links
                    .iter()
                    .map(|l| (l.href.to_string(), l.text.clone()))
                    .collect()
            };
            if n < exact {
                assert_eq!(got.text, want.text, "text of {doc:?}");
            } else {
                let squeeze = |t: &str| t.replace(' ', "");
                assert_eq!(squeeze(&got.text), squeeze(&want.text), "text of {doc:?}");
            }
            assert_eq!(got.visible_chars, want.visible_chars, "{doc:?}");
            assert_eq!(links(&got), links(&want), "links of {doc:?}");
            assert_eq!(
                (got.images, got.content_images, got.images_without_alt),
                (want.images, want.content_images, want.images_without_alt),
                "images of {doc:?}"
            );
        }
    }
}
