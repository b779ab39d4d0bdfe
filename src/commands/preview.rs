//! `mailshot preview`: chosen recipients' messages, built by the same code path as `send`
//! (rendered, signed, same Message-ID), shown on the terminal or written as a browsable folder.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use mail_parser::MessageParser;

use crate::cli::PreviewArgs;
use crate::clock::Clock;
use crate::commands::{Exit, load};
use crate::lint::LintFinding;
use crate::message::Prepared;
use crate::recipients::{Recipient, RecipientReader, Row};
use crate::terminal::{field, text};

/// One previewed message: the bytes as sent, and what a mail client would show.
struct Shown {
    prepared: Prepared,
    /// Decoded From, To and Reply-To, as a mail client shows them.
    addresses: Vec<(&'static str, String)>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    findings: Vec<LintFinding>,
}

pub fn run(args: &PreviewArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Exit> {
    let loaded = load(&args.campaign, clock)?;
    let chosen = choose(
        &loaded.campaign.recipients,
        args,
        loaded.survey.valid,
        &loaded.candidates,
    )?;
    let mut shown = Vec::new();
    for r in chosen {
        let findings = loaded.assembler.check(&r)?;
        let prepared = loaded.assembler.assemble(r)?;
        let parsed = MessageParser::default()
            .parse(&prepared.bytes)
            .context("the built message does not parse")?;
        let show = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first())
                .map(|a| match (a.name(), a.address()) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    (None, Some(e)) => e.to_owned(),
                    (n, None) => n.unwrap_or_default().to_owned(),
                })
        };
        let addresses = [
            ("From", show(parsed.from())),
            ("To", show(parsed.to())),
            ("Reply-To", show(parsed.reply_to())),
        ]
        .into_iter()
        .filter_map(|(h, v)| v.map(|v| (h, v)))
        .collect();
        let subject = parsed.subject().unwrap_or_default().to_owned();
        let text = parsed.body_text(0).map(|t| t.into_owned());
        let html = parsed.body_html(0).map(|t| t.into_owned());
        drop(parsed);
        shown.push(Shown {
            prepared,
            addresses,
            subject,
            text,
            html,
            findings,
        });
    }
    match &args.out {
        Some(dir) => write_folder(dir, &shown)?,
        None => {
            for s in &shown {
                out!("{}", terminal(s));
            }
        }
    }
    Ok(Exit::Success)
}

/// The recipients to preview, in file order: by row, by address, a spread sample, or the
/// first valid one.
fn choose(
    source: &crate::config::RecipientSource,
    args: &PreviewArgs,
    valid: u64,
    candidates: &Arc<crate::recipients::Candidates>,
) -> anyhow::Result<Vec<Recipient>> {
    let emails: Vec<String> = args.email.iter().map(|e| e.trim().to_lowercase()).collect();
    let sample_at: Vec<u64> = match args.sample {
        Some(0) => bail!("--sample needs at least 1"),
        Some(n) => (0..n as u64).map(|i| i * valid / n as u64).collect(),
        None => Vec::new(),
    };
    let any_filter = !args.row.is_empty() || !emails.is_empty() || args.sample.is_some();
    let mut reader = RecipientReader::open(source)?.with_candidates(candidates.clone());
    let mut out = Vec::new();
    let mut index = 0u64;
    let mut problems = Vec::new();
    while let Some(row) = reader.next_row() {
        let row = row?;
        let row_no = row.row();
        match row {
            Row::Valid(r) => {
                let wanted = !any_filter && out.is_empty()
                    || args.row.contains(&r.row)
                    || emails.contains(&r.address.to_string().to_lowercase())
                    || sample_at.contains(&index);
                if wanted {
                    out.push(r);
                }
                index += 1;
            }
            Row::Invalid { reason, .. } if args.row.contains(&row_no) => {
                problems.push(format!("row {row_no} is not sendable: {reason}"));
            }
            Row::Duplicate { first_row, .. } if args.row.contains(&row_no) => {
                problems.push(format!(
                    "row {row_no} duplicates row {first_row} and is skipped"
                ));
            }
            _ => {}
        }
    }
    for p in &problems {
        eprintln!("mailshot: {p}");
    }
    if out.is_empty() {
        bail!(
            "no recipient matches; --row takes the CSV row (the header is row 1), --email an address in the file"
        );
    }
    Ok(out)
}

fn header(bytes: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_owned())
        .collect()
}

fn terminal(s: &Shown) -> String {
    let b = &s.prepared.bytes;
    let mut o = String::new();
    let r = &s.prepared.recipient;
    let _ = writeln!(o, "── row {}: {} {}", r.row, r.address, "─".repeat(40));
    // Every value below comes from the CSV or the rendered message: escaped, so a cell
    // cannot paint the terminal or forge lines (see crate::terminal).
    for (h, v) in &s.addresses {
        let _ = writeln!(o, "{h}: {}", field(v));
    }
    // Not a header: the envelope sender the relay is given, where bounces go (VERP's tag).
    let _ = writeln!(o, "MAIL FROM: <{}>", s.prepared.envelope_from);
    for h in [
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    ] {
        for v in header(b, h) {
            let _ = writeln!(o, "{h}: {}", field(&v));
        }
    }
    let _ = writeln!(o, "Subject: {}", field(&s.subject));
    for sig in header(b, "DKIM-Signature") {
        let tag = |t: &str| {
            sig.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{t}=")).map(str::to_owned))
                .unwrap_or_default()
        };
        let _ = writeln!(
            o,
            "DKIM-Signature: d={} s={} a={}",
            field(&tag("d")),
            field(&tag("s")),
            field(&tag("a"))
        );
    }
    let _ = writeln!(
        o,
        "Size: {} bytes (text part {} bytes, HTML part {} bytes)",
        b.len(),
        s.text.as_deref().map_or(0, str::len),
        s.html.as_deref().map_or(0, str::len)
    );
    let _ = writeln!(o);
    match &s.text {
        Some(t) => {
            let _ = writeln!(o, "{}", text(t.trim_end()));
        }
        None => {
            let _ = writeln!(o, "(no text part)");
        }
    }
    let _ = writeln!(o);
    if s.findings.is_empty() {
        let _ = writeln!(o, "Lint: no findings");
    } else {
        let _ = writeln!(o, "Lint:");
        for f in &s.findings {
            let _ = writeln!(
                o,
                "  {} {}: {}\n      fix: {}",
                f.level.label(),
                f.id,
                field(&f.message),
                field(&f.fix)
            );
        }
    }
    let _ = writeln!(o);
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn write_folder(dir: &Path, shown: &[Shown]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rows = String::new();
    for s in shown {
        let r = &s.prepared.recipient;
        let stem = crate::send::transport::file_stem(r);
        let write = |ext: &str, data: &[u8]| {
            let p = dir.join(format!("{stem}.{ext}"));
            std::fs::write(&p, data).with_context(|| format!("cannot write {}", p.display()))
        };
        write("eml", &s.prepared.bytes)?;
        if let Some(t) = &s.text {
            write("txt", t.as_bytes())?;
        }
        if let Some(h) = &s.html {
            write("html", h.as_bytes())?;
        }
        let links = [
            s.html
                .as_ref()
                .map(|_| format!("<a href=\"{stem}.html\">HTML</a>")),
            s.text
                .as_ref()
                .map(|_| format!("<a href=\"{stem}.txt\">text</a>")),
            Some(format!("<a href=\"{stem}.eml\">.eml</a>")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        let findings = if s.findings.is_empty() {
            "none".to_owned()
        } else {
            s.findings
                .iter()
                .map(|f| {
                    format!(
                        "<li title=\"{}\">{} {}: {}</li>",
                        esc(&f.fix),
                        f.level.label(),
                        f.id,
                        esc(&f.message)
                    )
                })
                .collect::<Vec<_>>()
                .join("")
        };
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td title=\"MAIL FROM &lt;{}&gt;\">{}</td><td class=\"subject\">{}</td><td>{}</td><td><ul>{}</ul></td><td>{}</td></tr>",
            r.row,
            esc(s.prepared.envelope_from.as_ref()),
            esc(r.address.as_ref()),
            esc(&s.subject),
            s.prepared.bytes.len(),
            findings,
            links
        );
    }
    let index = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mailshot preview</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>\n<body><h1>mailshot preview</h1>\n<p>{} message(s), exactly as <code>mailshot send</code> would send them.</p>\n<table><thead><tr><th>Row</th><th>To</th><th>Subject</th><th>Bytes</th><th>Lint findings</th><th>Open</th></tr></thead><tbody>\n{rows}</tbody></table></body></html>\n",
        shown.len()
    );
    std::fs::write(dir.join("index.html"), index)
        .with_context(|| format!("cannot write {}", dir.join("index.html").display()))?;
    outln!(
        "wrote {} message(s) and index.html to {}",
        shown.len(),
        dir.display()
    );
    Ok(())
}
