//! `mailshot preview`: the same bytes as `send`, and a browsable folder that renders in a real
//! browser (Debian's headless Chromium).

use std::path::Path;
use std::process::Command;

use crate::util::{CampaignDir, Spec, b64, run, stdout};

/// Headless Chromium with the flags that keep it off the network and out of the profile.
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Runs headless Chromium on `page` with `args` and returns its stdout; fails the test if it fails.
fn chromium_on(page: &Path, profile: &Path, args: &[String]) -> Vec<u8> {
    let out = chromium(profile)
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn dump_dom(page: &Path, profile: &Path) -> String {
    let out = chromium_on(page, profile, &["--dump-dom".into()]);
    String::from_utf8_lossy(&out).into_owned()
}

fn screenshot(page: &Path, png: &Path, profile: &Path) {
    chromium_on(
        page,
        profile,
        &[
            "--window-size=1024,768".into(),
            format!("--screenshot={}", png.display()),
        ],
    );
    let bytes = std::fs::read(png).expect("a screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 1000, "an empty screenshot");
}

#[test]
fn preview_writes_the_bytes_send_would_send() {
    let c = CampaignDir::new(&Spec::default());
    let out_dir = c.path().join("preview");
    let out = run(
        &[
            "preview",
            "--row",
            "3",
            "--email",
            "CAT@example.net",
            "--out",
            out_dir.to_str().unwrap(),
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let dry = run(&["send", "--dry-run", c.toml_str()], &[]);
    assert_eq!(dry.status.code(), Some(0));
    for name in ["000003-bob@example.org.eml", "000004-cat@example.net.eml"] {
        let previewed = std::fs::read(out_dir.join(name)).unwrap();
        let sent =
            std::fs::read(c.path().join(".mailshot/test-campaign/dry-run").join(name)).unwrap();
        assert!(previewed == sent, "{name}: preview and send differ");
    }
    assert!(
        !out_dir.join("000002-ann@example.com.eml").exists(),
        "only the chosen rows"
    );
}

#[test]
fn terminal_preview_shows_headers_decoded_text_and_sizes() {
    let c = CampaignDir::new(&Spec {
        csv: "email,first_name\n\"Chloé Durand <chloe@example.net>\",Chloé\n",
        subject: "{{first_name}}, ça va?",
        ..Spec::default()
    });
    let out = run(&["preview", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let o = stdout(&out);
    assert!(o.contains("Subject: Chloé, ça va?"), "{o}");
    assert!(o.contains("Message-ID: <test-campaign."), "{o}");
    assert!(
        o.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{o}"
    );
    assert!(
        o.contains("DKIM-Signature: d=news.example.com s=s2026e a=ed25519-sha256"),
        "{o}"
    );
    assert!(o.contains("Hi Chloé,"), "the decoded text part: {o}");
    assert!(o.contains("Size: "), "{o}");
}

#[test]
fn preview_folder_renders_in_chromium() {
    let c = CampaignDir::new(&Spec::default());
    let out_dir = c.path().join("preview");
    let out = run(
        &[
            "preview",
            "--sample",
            "3",
            "--out",
            out_dir.to_str().unwrap(),
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let profile = tempfile::tempdir().unwrap();

    let index = out_dir.join("index.html");
    let dom = dump_dom(&index, profile.path());
    for subject in ["Hello Ann", "Hello Bob", "Hello Cat"] {
        assert!(dom.contains(subject), "index.html lacks {subject:?}: {dom}");
    }
    screenshot(&index, &c.path().join("index.png"), profile.path());

    let message = out_dir.join("000002-ann@example.com.html");
    let dom = dump_dom(&message, profile.path());
    assert!(dom.contains("Hi Ann,"), "{dom}");
    assert!(
        dom.contains("https://news.example.com/unsubscribe?email=ann%40example.com"),
        "{dom}"
    );
    screenshot(&message, &c.path().join("message.png"), profile.path());
}

/// A campaign whose rows trip different lint rules: an http link and a shortener in every
/// message, an all-caps subject for one row, an empty greeting field for another.
fn linty() -> CampaignDir {
    CampaignDir::new(&Spec {
        csv: "email,first_name,shout\nann@example.com,Ann,\nbob@example.org,,\ncat@example.net,Cat,yes\n",
        subject: "{{#if shout}}HUGE NEWS FOR EVERYONE TODAY{{else}}News for {{first_name}}{{/if}}",
        text: "Hi {{first_name}},\n\nRead more.\nUnsubscribe: {{unsubscribe_url}}\n",
        html: Some(
            "<p>Hi {{first_name}},</p><p><a href=\"http://news.example.com/read\">Read</a> or <a href=\"https://bit.ly/abc\">this</a>.</p><p><a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>\n",
        ),
        ..Spec::default()
    })
}

#[test]
fn check_lints_every_recipient() {
    let c = linty();
    let out = run(&["check", "--format", "json", c.toml_str()], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "lint findings do not block by default"
    );
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let rules = j["lint"]["rules"].as_array().unwrap();
    let count = |id: &str| {
        rules
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["recipients"].as_u64().unwrap())
    };
    assert_eq!(count("lint.http-link"), Some(3), "{rules:?}");
    assert_eq!(count("lint.url-shortener"), Some(3));
    assert_eq!(count("lint.subject-caps"), Some(1));
    assert_eq!(count("lint.empty-field"), Some(1));
    let empty = rules
        .iter()
        .find(|r| r["id"] == "lint.empty-field")
        .unwrap();
    assert_eq!(empty["first_row"], 3, "bob, on row 3, has no first name");
    assert_eq!(count("lint.no-visible-unsubscribe"), None);
}

#[test]
fn lint_block_stops_send_and_preview_shows_findings() {
    let c = linty();
    let text =
        std::fs::read_to_string(&c.toml).unwrap() + "\n[lint]\nblock = [\"lint.url-shortener\"]\n";
    std::fs::write(&c.toml, text).unwrap();
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::util::stderr(&out).contains("lint.url-shortener"));
    assert!(c.eml_files("outbox").is_empty());

    let dir = c.path().join("preview");
    let out = run(
        &[
            "preview",
            "--sample",
            "3",
            "--out",
            dir.to_str().unwrap(),
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        index.contains("lint.http-link") && index.contains("lint.subject-caps"),
        "{index}"
    );
}

/// The dry run verifies every written message against the key DNS publishes: with a wrong
/// published key (overridden past the preflight), every message is reported failed.
#[test]
fn dry_run_verifies_each_message_against_the_published_key() {
    let c = CampaignDir::new(&Spec::default());
    // Publish someone else's Ed25519 key at our Ed25519 selector in the campaign's zone.
    let zone = std::fs::read_to_string(c.path().join("dns.zone")).unwrap();
    let other = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519"])
        .output()
        .unwrap()
        .stdout;
    let other_key = c.path().join("other.pem");
    std::fs::write(&other_key, other).unwrap();
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&other_key)
        .output()
        .unwrap()
        .stdout;
    let raw = &der[der.len() - 32..];
    let b64 = b64(raw);
    let replaced: String = zone
        .lines()
        .map(|l| {
            if l.starts_with("s2026e.") {
                format!(
                    "s2026e._domainkey.news.example.com. 300 IN TXT \"v=DKIM1; k=ed25519; p={b64}\""
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(c.path().join("dns.zone"), replaced + "\n").unwrap();
    let out = run(
        &[
            "send",
            "--dry-run",
            "--override",
            "dkim.key-mismatch",
            "--override",
            "dkim.verify",
            "--override",
            "bulk.dkim",
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let rows = c.report("dry-run-report.csv");
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.status, "failed");
        assert!(r.text.contains("does not verify"), "{}", r.text);
    }
}
