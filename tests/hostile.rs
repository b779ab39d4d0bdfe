//! Hostile input from the security review (issue 16): archive bombs, special files, terminal
//! injection, oversized rows and numbers, symlinks, secrets in errors, a closed stdout. Each
//! test failed before its fix; the bombs are generated here, never committed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::hostile::{gzip, gzip_zeros, overlapping_zip, report_xml, run_or_kill, zip};
use crate::util::{CampaignDir, Spec, mailshot, run, stderr, stdout};

/// `dmarc report --format json` on these files: the skipped files' reasons, in order.
fn skip_reasons(dir: &Path, names: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut args = vec![
        "dmarc".to_owned(),
        "report".into(),
        "--format".into(),
        "json".into(),
    ];
    args.extend(
        names
            .iter()
            .map(|n| dir.join(n).to_string_lossy().into_owned()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args, &[]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON summary");
    let mut reasons = Vec::new();
    for name in names {
        let path = dir.join(name).to_string_lossy().into_owned();
        let skipped = json["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path.as_str())
            .map(|s| s["reason"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| "read".to_owned());
        reasons.push(skipped);
    }
    (out.status.code(), reasons)
}

/// Item 1: 100 entries sharing one compressed stream, 150 members, and two honest members
/// that together inflate past the per-file budget are all refused; a good report beside them
/// still counts.
#[test]
fn zip_bombs_are_refused_with_one_budget_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("overlap.zip"), overlapping_zip(100, 1 << 20)).unwrap();
    let tiny: Vec<(String, Vec<u8>)> = (0..150).map(|i| (format!("{i}.txt"), vec![b'x'])).collect();
    let tiny: Vec<(&str, &[u8])> = tiny
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    std::fs::write(d.join("many.zip"), zip(&tiny)).unwrap();
    // Each member alone is under the 64 MiB cap; together they are not.
    let big = vec![0u8; 40 << 20];
    std::fs::write(d.join("two.zip"), zip(&[("a.xml", &big), ("b.xml", &big)])).unwrap();
    let good = report_xml("Good Org", "example.com");
    std::fs::write(d.join("good.zip"), zip(&[("r.xml", good.as_bytes())])).unwrap();

    let (code, reasons) = skip_reasons(d, &["overlap.zip", "many.zip", "two.zip", "good.zip"]);
    assert_eq!(code, Some(0), "the good report still counts");
    assert!(reasons[0].contains("share compressed data"), "{reasons:?}");
    assert!(reasons[1].contains("more than 100 members"), "{reasons:?}");
    assert!(
        reasons[2].contains("decompresses to more than the 64 MiB limit"),
        "{reasons:?}"
    );
    assert_eq!(reasons[3], "read");
}

/// Item 2: gzip inside gzip. Each layer alone is under the cap (34 MiB stored, then 34 MiB of
/// zeros), but the layers share one budget.
#[test]
fn nested_gzip_layers_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Level 0 stores: the inner gzip is as large as its content.
    let inner = gzip_zeros(34 << 20, 0);
    std::fs::write(d.join("nested.gz"), gzip(&inner, 9)).unwrap();
    // A report three gzip layers deep still reads: the budget counts bytes, not layers.
    let good = report_xml("Layered Org", "example.com");
    std::fs::write(
        d.join("good.xml.gz"),
        gzip(&gzip(&gzip(good.as_bytes(), 6), 6), 6),
    )
    .unwrap();

    let (code, reasons) = skip_reasons(d, &["nested.gz", "good.xml.gz"]);
    assert_eq!(code, Some(0));
    assert!(
        reasons[0].contains("decompresses to more than the 64 MiB limit"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], "read");
}

/// Item 10: a device and a FIFO are refused at once, not read until the kernel kills the
/// process or forever.
#[test]
fn special_files_are_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let good = dir.path().join("good.xml");
    std::fs::write(&good, report_xml("Good Org", "example.com")).unwrap();
    let mut cmd = mailshot();
    cmd.args(["dmarc", "report", "--format", "json", "/dev/zero"])
        .arg(&fifo)
        .arg(&good)
        .stdin(Stdio::null());
    let out = run_or_kill(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = json["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    for s in skipped {
        assert!(
            s["reason"].as_str().unwrap().contains("not a regular file"),
            "{s}"
        );
    }
    assert_eq!(json["reports"]["counted"], 1);
}

/// Item 3: outside text reaches the terminal escaped: a report's org_name and domain, a CSV
/// cell in `preview`, a DNS TXT record in `check`. JSON keeps the exact value.
#[test]
fn outside_text_is_escaped_on_the_terminal() {
    const ESC: char = '\u{1b}';
    let dir = tempfile::tempdir().unwrap();
    let forged = "Evil&#10;&#10;Recommendation for example.com (p=none now):&#10;  Ready: publish p=reject now.\u{1b}[8m";
    let path = dir.path().join("r.xml");
    std::fs::write(&path, report_xml(forged, "example.com")).unwrap();
    let out = run(&["dmarc", "report", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(!text.contains(ESC), "{text:?}");
    assert_eq!(text.matches("\nRecommendation for").count(), 1, "{text}");
    assert!(text.contains("Evil\\n\\nRecommendation"), "{text}");
    let json = run(
        &[
            "dmarc",
            "report",
            "--format",
            "json",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        stdout(&json).contains("Evil\\n\\nRecommendation"),
        "JSON escapes as JSON"
    );

    // preview: a cell used in the body.
    let c = CampaignDir::new(&Spec {
        csv: "email,first_name,note\nann@example.com,Ann,\"\u{1b}]0;pwned\u{7}\u{1b}[2J\"\n",
        text: "Hi {{first_name}},\n{{note}}\nUnsubscribe: {{unsubscribe_url}}\n",
        ..Spec::default()
    });
    let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(!text.contains(ESC) && !text.contains('\u{7}'), "{text:?}");
    assert!(text.contains("\\u{1b}[2J"), "{text}");

    // check: a DMARC record with an escape sequence and a line break, shown as evidence (p=none
    // warns). Evidence is one record per line, so the break starts another "seen:" line.
    let zone = std::fs::read_to_string(c.path().join("dns.zone")).unwrap();
    let zone = zone.replace(
        "\"v=DMARC1; p=quarantine;",
        "\"v=DMARC1; p=none; x=\\027[8mhidden\\010fake: all clear;",
    );
    std::fs::write(c.path().join("dns.zone"), zone).unwrap();
    let out = run(&["check", c.toml_str()], &[]);
    let text = stdout(&out);
    assert!(
        text.contains("x=\\u{1b}[8mhidden"),
        "the record is shown: {text}"
    );
    assert!(!text.contains(ESC), "{text:?}");
    assert!(
        text.lines().all(|l| !l.trim_start().starts_with("fake")),
        "every line of a record is marked as evidence: {text}"
    );
}

/// Item 13: stdout closed before mailshot writes (`send | head -0`): every message is still
/// sent and the exit code is the run's, not 2 ("nothing was sent").
#[test]
fn a_closed_stdout_keeps_the_documented_exit_code() {
    let c = CampaignDir::new(&Spec::default());
    let mut cmd = mailshot();
    cmd.args(["send", c.toml_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The only read end goes away before mailshot prints anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(c.eml_files("outbox").len(), 3);
    let rows = c.report("report.csv");
    assert!(rows.iter().all(|r| r.status == "written"), "{rows:?}");
}

/// Item 5: a hostile signup row is an invalid row with its reason, not a stalled worker: a
/// rendered Subject over 998 characters, a display name over 256, any cell over
/// `limits.max_field_kb`. The honest row is still sent.
#[test]
fn oversized_subjects_names_and_cells_make_a_row_invalid() {
    let long_name = "A".repeat(2_000);
    let long_display = format!("\"{}\" <bob@example.org>", "B".repeat(1_000));
    let huge_cell = "C".repeat(1 << 20);
    let csv = format!(
        "email,first_name,note\nann@example.com,Ann,hi\ncat@example.net,{long_name},hi\n\
         {long_display},Bob,hi\ndan@example.com,Dan,{huge_cell}\n"
    );
    let c = CampaignDir::new(&Spec {
        csv: &csv,
        text: "Hi {{first_name}},\n{{note}}\nUnsubscribe: {{unsubscribe_url}}\n",
        ..Spec::default()
    });
    let out = run(&["send", c.toml_str()], &[]);
    // Invalid rows are reported, not failed deliveries: the run itself succeeds.
    assert_eq!(out.status.code(), Some(0));
    let rows = c.report("report.csv");
    let status: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.status.as_str(), r.text.as_str()))
        .collect();
    assert_eq!(status[0].0, "written", "{status:?}");
    assert_eq!(status[1].0, "invalid");
    assert!(
        status[1]
            .1
            .contains("the rendered Subject is 2006 characters; at most 998"),
        "{status:?}"
    );
    assert_eq!(status[2].0, "invalid");
    assert!(
        status[2].1.contains("display name is 1000 characters"),
        "{status:?}"
    );
    assert_eq!(status[3].0, "invalid");
    assert!(
        status[3]
            .1
            .contains("column \"note\" is 1024 KB; the limit is 64 KB (limits.max_field_kb"),
        "{status:?}"
    );
    assert_eq!(c.eml_files("outbox").len(), 1);

    // The cap is the user's to raise, named in the error above.
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    std::fs::write(&c.toml, format!("{toml}\n[limits]\nmax_field_kb = 2048\n")).unwrap();
    let out = run(&["preview", c.toml_str(), "--row", "5"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Item 7: numbers and sizes that used to abort, overflow or run for minutes are refused with
/// the key or row named: concurrency, retry delays, max_message_kb, a 20 MB CSV row, a
/// recursive partial. 40,000 columns (once quadratic) still load.
#[test]
fn hostile_numbers_and_sizes_are_refused_with_the_setting_named() {
    let c = CampaignDir::new(&Spec::default());
    let base = std::fs::read_to_string(&c.toml).unwrap();
    for (extra, key) in [
        ("[limits]\nconcurrency = 10000000\n", "limits.concurrency"),
        (
            "[retry]\nfirst_delay_secs = 18446744073709551615\n",
            "retry.first_delay_secs",
        ),
        (
            "[retry]\nmax_delay_secs = 18446744073709551000\n",
            "retry.max_delay_secs",
        ),
        (
            "[lint]\nmax_message_kb = 18014398509481984\n",
            "lint.max_message_kb",
        ),
        ("[limits]\nmax_field_kb = 0\n", "limits.max_field_kb"),
    ] {
        std::fs::write(&c.toml, format!("{base}\n{extra}")).unwrap();
        let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
        assert_eq!(out.status.code(), Some(2), "{extra}");
        assert!(
            stderr(&out).contains(&format!("`{key}`")),
            "{extra}: {}",
            stderr(&out)
        );
    }
    std::fs::write(&c.toml, &base).unwrap();

    // A 20 MB row (over the 16 MiB cap) stops the survey before anything is sent.
    let mut csv = String::from("email,first_name\nann@example.com,Ann\nbob@example.org,\"");
    csv.push_str(&"x".repeat(20 << 20));
    csv.push_str("\"\ncat@example.net,Cat\n");
    std::fs::write(c.path().join("recipients.csv"), csv).unwrap();
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("row 3 is longer than 16 MiB"),
        "{}",
        stderr(&out)
    );
    assert!(c.eml_files("outbox").is_empty());

    // 40,000 columns load (the duplicate check was quadratic); a duplicate is still named.
    let mut header: Vec<String> = (0..40_000).map(|i| format!("c{i}")).collect();
    header.insert(0, "email".into());
    header.push("first_name".into());
    let row = format!("ann@example.com{}Ann\n", ",".repeat(40_001));
    std::fs::write(
        c.path().join("recipients.csv"),
        format!("{}\n{row}", header.join(",")),
    )
    .unwrap();
    let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    header.push("c17".into());
    std::fs::write(
        c.path().join("recipients.csv"),
        format!("{}\n{row}", header.join(",")),
    )
    .unwrap();
    let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
    assert!(
        stderr(&out).contains("two columns are named \"c17\""),
        "{}",
        stderr(&out)
    );

    // A partial that includes itself: an error, not a stack overflow abort.
    std::fs::write(
        c.path().join("recipients.csv"),
        "email,first_name\nann@example.com,Ann\n",
    )
    .unwrap();
    std::fs::write(
        c.path().join("message.txt.hbs"),
        "{{#*inline \"loop\"}}again {{> loop}}{{/inline}}Hi {{first_name}} {{> loop}}\n{{unsubscribe_url}}\n",
    )
    .unwrap();
    let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the partial loop -> loop includes itself"),
        "{}",
        stderr(&out)
    );
}

/// Item 12: a password pasted into campaign.toml, or into a `*_env` key, is never printed
/// back; a secret file others can read gets a warning, as DKIM keys do.
#[test]
fn secrets_are_not_echoed_and_readable_secret_files_warn() {
    const PASTED: &str = "Tr0ub4dor-and-3";
    let c = CampaignDir::new(&Spec::default());
    let base = std::fs::read_to_string(&c.toml).unwrap();
    let pasted_password = format!(
        "[smtp]\nhost = \"127.0.0.1\"\ntls = \"starttls\"\nusername = \"u\"\npassword = \"{PASTED}\"\n"
    );
    let with_smtp = base.replace("[outbox]\ndir = \"outbox\"\n", &pasted_password);
    for (toml, says) in [
        (with_smtp, "password_env"),
        (
            base.replace(
                "secret_file = \"unsub.secret\"",
                &format!("secret_env = \"{PASTED}\""),
            ),
            "NAME of an environment variable",
        ),
        (
            base.replace(
                "secret_file = \"unsub.secret\"",
                "secret_env = \"hunter2lowercase\"",
            ),
            "not shown",
        ),
    ] {
        std::fs::write(&c.toml, &toml).unwrap();
        let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
        assert_eq!(out.status.code(), Some(2));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains(PASTED) && !all.contains("hunter2lowercase"),
            "{all}"
        );
        assert!(all.contains(says), "{all}");
    }

    std::fs::write(&c.toml, &base).unwrap();
    let secret = c.path().join("unsub.secret");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(
        &["preview", c.toml_str(), "--row", "2"],
        &[("RUST_LOG", "warn")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("is readable by group or others (mode 644)"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(&["preview", c.toml_str(), "--row", "2"], &[]);
    assert!(!stderr(&out).contains("secret file"), "{}", stderr(&out));
}

/// Item 6: a TAB inside a quoted local part is refused. RFC 5321 has no room for it, and the
/// journal stored it as a space, so resume never matched it and every run sent it again.
#[test]
fn a_tab_in_a_quoted_local_part_is_refused_every_run() {
    let c = CampaignDir::new(&Spec {
        csv: "email,first_name\n\"\"\"a\tb\"\"@example.com\",Tab\nann@example.com,Ann\n",
        ..Spec::default()
    });
    for _ in 0..2 {
        let out = run(&["send", c.toml_str()], &[]);
        assert_eq!(out.status.code(), Some(0));
        let rows = c.report("report.csv");
        assert_eq!(rows[0].status, "invalid", "{rows:?}");
        assert!(rows[0].text.contains("TAB"), "{rows:?}");
    }
    assert_eq!(c.eml_files("outbox").len(), 1);
}

/// Item 8: symlinks planted as report.csv, preflight.json, the journal and an outbox
/// temporary file are replaced or refused, never written through: their targets keep their
/// bytes.
#[test]
fn planted_symlinks_are_not_followed() {
    use std::os::unix::fs::symlink;
    let c = CampaignDir::new(&Spec::default());
    let victims = tempfile::tempdir().unwrap();
    let run_dir = c.path().join(".mailshot/test-campaign");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::create_dir_all(c.path().join("outbox")).unwrap();
    let planted = [
        run_dir.join("report.csv"),
        run_dir.join("preflight.json"),
        c.path().join("outbox/.000002-ann@example.com.eml.tmp"),
        c.path().join("outbox/000003-bob@example.org.eml"),
    ];
    for (i, link) in planted.iter().enumerate() {
        let victim = victims.path().join(format!("victim{i}"));
        std::fs::write(&victim, "precious").unwrap();
        symlink(&victim, link).unwrap();
    }
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for i in 0..planted.len() {
        let victim = victims.path().join(format!("victim{i}"));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "victim{i}"
        );
    }
    assert_eq!(c.report("report.csv").len(), 3);
    assert!(!std::fs::symlink_metadata(&planted[0]).unwrap().is_symlink());
    assert_eq!(c.eml_files("outbox").len(), 3);

    // The journal is appended to: a symlink there stops the run instead.
    let journal = run_dir.join("journal");
    std::fs::remove_file(&journal).unwrap();
    let victim = victims.path().join("journal-victim");
    std::fs::write(&victim, "precious").unwrap();
    symlink(&victim, &journal).unwrap();
    let out = run(&["send", c.toml_str()], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Item 9: a second `send`, refused by the lock of a running one, writes nothing into the
/// state folder: the running campaign's preflight.json (its recorded overrides) stays.
#[test]
fn a_send_refused_by_the_lock_writes_nothing() {
    let c = CampaignDir::new(&Spec::default());
    let run_dir = c.path().join(".mailshot/test-campaign");
    std::fs::create_dir_all(&run_dir).unwrap();
    let audit = run_dir.join("preflight.json");
    std::fs::write(&audit, "{\"overridden\": [\"the running campaign's\"]}").unwrap();
    // This test holds the lock, as a running `send` would.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run_dir.join("lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is in progress"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&audit).unwrap(),
        "{\"overridden\": [\"the running campaign's\"]}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lock", "preflight.json"]);
    drop(lock);
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
}

/// Item 11: plain SMTP to "localhost" connects to what the name resolves to only if that is
/// loopback (the rule itself, with a name resolving elsewhere, is unit-tested beside the
/// transport: `plain_smtp_connects_only_to_a_resolved_loopback_address`).
#[test]
fn plain_smtp_to_localhost_uses_its_loopback_address() {
    let server = crate::util::smtp::SmtpServer::plain_faulty(&Default::default());
    let tail = format!(
        "[smtp]\nhost = \"localhost\"\nport = {}\ntls = \"none\"\n",
        server.port
    );
    let c = CampaignDir::new(&Spec {
        tail: &tail,
        ..Spec::default()
    });
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.received().len(), 3);
}
