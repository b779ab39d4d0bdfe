//! `mailshot preview`: the same bytes as `send`, and a browsable folder that renders in a real
//! browser (Debian's headless Chromium).

use std::path::Path;
use std::process::Command;

use crate::util::{CampaignDir, Spec, run, stdout};

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

fn dump_dom(page: &Path, profile: &Path) -> String {
    let out = chromium(profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(page: &Path, png: &Path, profile: &Path) {
    let out = chromium(profile)
        .arg("--window-size=1024,768")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
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
