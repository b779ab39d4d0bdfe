//! `mailshot intake` end to end: a campaign sent to aiosmtpd, its bounces, complaint and
//! unsubscribe mail dropped into a real Dovecot, intake over IMAPS, and the next campaign
//! skipping exactly the recipients intake suppressed. Hostile messages in a Maildir.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::util::dovecot::Dovecot;
use crate::util::intake::{eml_files, fixture, gzip_bomb_mail, huge, maildir, nested, report};
use crate::util::smtp::{Mode, SmtpServer};
use crate::util::tls::TestPki;
use crate::util::{CampaignDir, Spec, run, stderr, stdout};

const CSV: &str = "email,first_name\nann@example.com,Ann\nbob@example.org,Bob\ncat@example.net,Cat\ndan@example.com,Dan\neve@example.org,Eve\nfay@example.net,Fay\n";
const DMARC_MAIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dmarc/reports/outlook/Report Domain news.example.com Submitter enterprise.protection.outlook.com.eml"
);

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

fn suppressed(v: &Value) -> HashSet<(String, String)> {
    v["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> HashSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The mail a recipient's client sends from the List-Unsubscribe mailto URI: the URI's
/// subject, percent-decoded, to its address.
fn unsubscribe_mail(received: &[u8], from: &str) -> Vec<u8> {
    let raw = String::from_utf8_lossy(received).replace("\r\n ", " ");
    let at = raw.find("<mailto:").expect("a mailto List-Unsubscribe URI");
    let uri = &raw[at + 8..at + raw[at..].find('>').unwrap()];
    let (to, query) = uri.split_once('?').unwrap();
    let subject = query.strip_prefix("subject=").unwrap();
    let subject = percent_encoding::percent_decode_str(subject).decode_utf8_lossy();
    format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n\r\n").into_bytes()
}

#[test]
fn full_loop_bounced_and_complaining_recipients_are_suppressed_next_time() {
    let pki = TestPki::new();
    let smtp = SmtpServer::start(Mode::Plain, &pki, None);
    let tail = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n[suppression]\nfile = \"suppressed.txt\"\n",
        smtp.port
    );
    let c = CampaignDir::new(&Spec {
        csv: CSV,
        tail: &tail,
        ..Spec::default()
    });
    std::fs::write(c.path().join("suppressed.txt"), "").unwrap();
    let sent = run(&["send", c.toml_str()], &[]);
    assert_eq!(sent.status.code(), Some(0), "{}", stderr(&sent));
    let received = smtp.received();
    assert_eq!(received.len(), 6);
    let report_path = c.path().join(".mailshot/test-campaign/report.csv");
    let rows = report(&report_path);
    let id = |a: &str| rows[a].2.clone();
    let eve = received
        .iter()
        .find(|r| r.rcpt_tos == ["eve@example.org"])
        .unwrap();

    let dovecot = Dovecot::start();
    let mail = vec![
        fixture("rfc3464-failed.eml", "ann@example.com", &id("ann@example.com")).into_bytes(),
        fixture("exim-failed.eml", "bob@example.org", &id("bob@example.org")).into_bytes(),
        fixture("arf-abuse.eml", "", &id("cat@example.net")).into_bytes(),
        fixture("rfc3464-delayed.eml", "dan@example.com", &id("dan@example.com")).into_bytes(),
        fixture("forged-dsn.eml", "victim@example.com", "").into_bytes(),
        unsubscribe_mail(&eve.raw, "eve@example.org"),
        std::fs::read(DMARC_MAIL).unwrap(),
        b"From: fay@example.net\r\nTo: news@news.example.com\r\nSubject: Re: Hello Fay\r\n\r\nThanks!\r\n".to_vec(),
    ];
    dovecot.append("INBOX", &eml_files(&c.path().join("mail"), &mail));

    let ca = dovecot.pki.ca_pem.to_str().unwrap().to_owned();
    let pw = dovecot.password_file.to_str().unwrap().to_owned();
    let url = dovecot.url("INBOX");
    let intake = |extra: &[&str]| {
        let mut args = vec!["intake", c.toml_str(), url.as_str(), "--password-file", &pw];
        args.extend(["--ca-file", &ca, "--format", "json"]);
        args.extend(extra);
        run(&args, &[])
    };

    // A dry run classifies the same and changes nothing.
    let dry = intake(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0));
    let dry = json(&dry);
    assert_eq!(dry["counts"]["hard_bounce"], 2);
    assert_eq!(dry["suppressed_total"], 4, "{dry}");
    assert_eq!(
        std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap(),
        ""
    );
    assert!(
        dovecot
            .flags("INBOX")
            .iter()
            .all(|(_, f)| f.is_empty() || !f.contains(&"$MailshotProcessed".to_owned()))
    );

    let out = intake(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let counts = &v["counts"];
    assert_eq!(counts["read"], 8);
    assert_eq!(counts["hard_bounce"], 2, "{v}");
    assert_eq!(counts["soft_bounce"], 1, "{v}");
    assert_eq!(counts["complaint"], 1, "{v}");
    assert_eq!(counts["unsubscribe"], 1, "{v}");
    assert_eq!(counts["dmarc_report"], 1, "{v}");
    assert_eq!(counts["other"], 1, "{v}");
    assert_eq!(counts["ignored"], 1, "{v}");
    assert_eq!(
        suppressed(&v),
        set(&[
            ("ann@example.com", "hard-bounce"),
            ("bob@example.org", "hard-bounce"),
            ("cat@example.net", "complaint"),
            ("eve@example.org", "unsubscribe"),
        ])
    );
    assert!(
        v["ignored"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("victim@example.com")
    );
    assert_eq!(v["complaints"]["sent"], 6);
    assert_eq!(v["complaints"]["gmail"], "at-or-above-0.3");
    assert_eq!(v["bounce_statuses"][0]["key"], "5.1.1");
    assert_eq!(v["bounce_statuses"][0]["count"], 2);

    // Everything acted on is flagged; the forged DSN is left for a person.
    let flags = dovecot.flags("INBOX");
    let flagged = flags
        .iter()
        .filter(|(_, f)| f.iter().any(|x| x == "$MailshotProcessed"))
        .count();
    assert_eq!((flags.len(), flagged), (8, 7), "{flags:?}");

    // Late bounces in the first campaign's report; the complaint stays `sent`.
    let rows = report(&report_path);
    assert_eq!(rows["ann@example.com"].0, "bounced");
    assert!(
        rows["ann@example.com"].1.contains("5.1.1"),
        "{:?}",
        rows["ann@example.com"]
    );
    assert_eq!(rows["bob@example.org"].0, "bounced");
    assert_eq!(rows["cat@example.net"].0, "sent");

    // A rerun reads only the unmarked message, which the ledger already counted.
    let again = json(&intake(&[]));
    assert_eq!(again["counts"]["read"], 1, "{again}");
    assert_eq!(again["counts"]["already_processed"], 1);
    assert!(again["suppressed"].as_array().unwrap().is_empty());

    // The next campaign to the same list: the four are suppressed, the rest sent once.
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    std::fs::write(
        &c.toml,
        toml.replace("id = \"test-campaign\"", "id = \"test-campaign-2\""),
    )
    .unwrap();
    let second = run(&["send", c.toml_str()], &[]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let rows = report(&c.path().join(".mailshot/test-campaign-2/report.csv"));
    for a in [
        "ann@example.com",
        "bob@example.org",
        "cat@example.net",
        "eve@example.org",
    ] {
        assert_eq!(rows[a].0, "suppressed", "{a}");
    }
    for a in ["dan@example.com", "fay@example.net"] {
        assert_eq!(rows[a].0, "sent", "{a}");
    }
    let all = smtp.received();
    assert_eq!(all.len(), 8);
    for a in ["dan@example.com", "fay@example.net"] {
        assert_eq!(all.iter().filter(|r| r.rcpt_tos == [a]).count(), 2, "{a}");
    }
}

/// A campaign "sent" to its outbox, so intake has a journal to check bounces against.
fn outbox_campaign() -> CampaignDir {
    let c = CampaignDir::new(&Spec {
        tail: "[outbox]\ndir = \"outbox\"\n\n[suppression]\nfile = \"suppressed.txt\"\n",
        ..Spec::default()
    });
    std::fs::write(c.path().join("suppressed.txt"), "").unwrap();
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    c
}

fn message_id(c: &CampaignDir, address: &str) -> String {
    report(&c.path().join(".mailshot/test-campaign/report.csv"))[address]
        .2
        .clone()
}

#[test]
fn hostile_messages_in_a_maildir_are_named_and_skipped_and_the_run_succeeds() {
    let c = outbox_campaign();
    let box_dir = maildir(
        &c.path().join("Maildir"),
        &[
            huge(50),
            nested(100),
            gzip_bomb_mail(200),
            fixture("forged-dsn.eml", "victim@example.com", "").into_bytes(),
            fixture(
                "gmail-failure.eml",
                "ann@example.com",
                &message_id(&c, "ann@example.com"),
            )
            .into_bytes(),
        ],
    );
    let dir = box_dir.to_str().unwrap();
    let out = run(&["intake", c.toml_str(), dir, "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let skipped: Vec<String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}: {}", s["message"], s["reason"]))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped[0].contains("000001") && skipped[0].contains("larger than the 25 MiB limit"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].contains("000002") && skipped[1].contains("nested more than"),
        "{skipped:?}"
    );
    assert!(
        skipped[2].contains("000003")
            && skipped[2].contains("DMARC report")
            && skipped[2].contains("64 MiB limit"),
        "{skipped:?}"
    );
    assert_eq!(v["counts"]["ignored"], 1);
    assert_eq!(suppressed(&v), set(&[("ann@example.com", "hard-bounce")]));
    let list = std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap();
    assert!(
        list.starts_with("ann@example.com\t# ") && list.contains("\thard-bounce\ttest-campaign\t"),
        "{list}"
    );

    // Human output names them too; a rerun suppresses nobody again.
    let again = run(&["intake", c.toml_str(), dir], &[]);
    assert_eq!(again.status.code(), Some(0));
    let text = stdout(&again);
    assert!(
        text.contains("messages read: 5 (4 processed by an earlier run)"),
        "{text}"
    );
    assert!(
        text.contains("skipped (1):\n") && text.contains("000001.test: larger than"),
        "{text}"
    );
    assert!(!text.contains("suppressed ("), "{text}");
    assert_eq!(
        std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap(),
        list
    );
}

#[test]
fn an_mbox_of_bounces_and_a_soft_bounce_limit_across_campaigns() {
    let c = outbox_campaign();
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    std::fs::write(
        &c.toml,
        format!("{toml}\n[intake]\nsoft_bounce_limit = 2\n"),
    )
    .unwrap();
    let delayed = fixture(
        "rfc3464-delayed.eml",
        "bob@example.org",
        &message_id(&c, "bob@example.org"),
    );
    let qmail = fixture(
        "qmail-failure.eml",
        "cat@example.net",
        &message_id(&c, "cat@example.net"),
    );
    // mboxrd: body lines starting with "From " are escaped with ">".
    let mbox = format!(
        "From MAILER-DAEMON Thu Jul 14 06:00:00 2026\n{}\nFrom MAILER-DAEMON Thu Jul 14 06:00:01 2026\n{}\n",
        delayed.replace("\nFrom ", "\n>From "),
        qmail.replace("\nFrom ", "\n>From ")
    );
    let path = c.path().join("bounces.mbox");
    std::fs::write(&path, mbox).unwrap();
    let out = run(
        &[
            "intake",
            c.toml_str(),
            path.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["counts"]["soft_bounce"], 1, "{v}");
    assert_eq!(v["counts"]["non_standard_bounce"], 1, "{v}");
    assert_eq!(suppressed(&v), set(&[("cat@example.net", "hard-bounce")]));

    // The same soft bounce in a second campaign reaches the limit of 2 campaigns.
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    std::fs::write(
        &c.toml,
        toml.replace("id = \"test-campaign\"", "id = \"other\""),
    )
    .unwrap();
    assert_eq!(run(&["send", c.toml_str()], &[]).status.code(), Some(0));
    let report2 = report(&c.path().join(".mailshot/other/report.csv"));
    let again = fixture(
        "rfc3464-delayed.eml",
        "bob@example.org",
        &report2["bob@example.org"].2,
    );
    let m2 = maildir(&c.path().join("Maildir2"), &[again.into_bytes()]);
    let v = json(&run(
        &[
            "intake",
            c.toml_str(),
            m2.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    ));
    assert_eq!(
        suppressed(&v),
        set(&[("bob@example.org", "hard-bounce")]),
        "{v}"
    );
    assert!(
        v["suppressed"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("soft bounces in 2 campaigns")
    );
}

#[test]
fn intake_needs_a_suppression_list_unless_dry_run() {
    let c = CampaignDir::new(&Spec::default());
    assert_eq!(run(&["send", c.toml_str()], &[]).status.code(), Some(0));
    let m = maildir(&c.path().join("M"), &[]);
    let out = run(&["intake", c.toml_str(), m.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("[suppression]"), "{}", stderr(&out));
    let dry = run(
        &["intake", "--dry-run", c.toml_str(), m.to_str().unwrap()],
        &[],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let _ = Path::new("");
}

/// The genuine article: a VERP campaign sent through a private Postfix, which accepts a
/// message for an unknown user, refuses it at delivery, and has its own bounce daemon write
/// an RFC 3464 DSN back to the VERP envelope sender, into a Maildir. Intake on that Maildir
/// suppresses exactly the bounced recipient, through the verified VERP address; the same DSN
/// with its tag altered is ignored and said.
#[test]
fn a_real_postfix_dsn_to_the_verp_address_suppresses_exactly_the_bounced_recipient() {
    use crate::util::postfix::Postfix;
    const BOUNCES: &str = "bounces@news.example.com";
    let postfix = Postfix::start(&["ann@rcpt.example", "cat@rcpt.example", BOUNCES]);
    let tail = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n[suppression]\nfile = \"suppressed.txt\"\n",
        postfix.port
    );
    let c = CampaignDir::new(&Spec {
        csv: "email,first_name\nann@rcpt.example,Ann\nnobody@rcpt.example,Nobody\ncat@rcpt.example,Cat\n",
        tail: &tail,
        ..Spec::default()
    });
    crate::util::verp::enable(&c);
    std::fs::write(c.path().join("suppressed.txt"), "").unwrap();
    let sent = run(&["send", c.toml_str()], &[]);
    assert_eq!(sent.status.code(), Some(0), "{}", stderr(&sent));

    // Postfix delivered two and bounced one, to the VERP address of the bounced row.
    postfix.wait_for_mail("ann@rcpt.example", 1);
    postfix.wait_for_mail("cat@rcpt.example", 1);
    let dsn_path = postfix.wait_for_mail(BOUNCES, 1).remove(0);
    let dsn = std::fs::read_to_string(&dsn_path).unwrap();
    let tag = crate::util::verp::envelope(3, "nobody@rcpt.example");
    for what in [
        "report-type=delivery-status".to_owned(),
        format!("Delivered-To: {tag}"),
        "Final-Recipient: rfc822; nobody@rcpt.example".to_owned(),
        "Status: 5.1.1".to_owned(),
    ] {
        assert!(dsn.contains(&what), "{what} in Postfix's DSN:\n{dsn}");
    }

    let bounces = postfix.maildir(BOUNCES);
    let out = run(
        &[
            "intake",
            c.toml_str(),
            bounces.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["counts"]["dsn"], 1, "{v}");
    assert_eq!(v["counts"]["hard_bounce"], 1, "{v}");
    assert_eq!(
        suppressed(&v),
        set(&[("nobody@rcpt.example", "hard-bounce")])
    );
    assert_eq!(v["suppressed"][0]["signal"], "verp", "{v}");
    let list = std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap();
    assert!(list.contains("nobody@rcpt.example"), "{list}");
    assert!(!list.contains("ann@") && !list.contains("cat@"), "{list}");

    // The same DSN, its tag moved to another row (whose MAC it does not carry): ignored, said.
    let altered = dsn.replace(&tag, &tag.replacen("+3-", "+2-", 1));
    let forged = maildir(&c.path().join("forged"), &[altered.into_bytes()]);
    let out = run(
        &[
            "intake",
            c.toml_str(),
            forged.to_str().unwrap(),
            "--dry-run",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["counts"]["ignored"], 1, "{v}");
    assert_eq!(v["suppressed_total"], 0, "{v}");
    let why = v["ignored"][0]["reason"].as_str().unwrap();
    assert!(why.contains("does not verify"), "{why}");
}

/// The complaint rate is the campaign's, over every intake run: complainers found by two runs
/// over two mailboxes add up, a recipient two reports name counts once, a dry run records
/// nothing, and reading a mailbox again changes nothing.
#[test]
fn the_complaint_rate_accumulates_across_runs_and_a_rerun_does_not_change_it() {
    let c = outbox_campaign();
    let complaint = |address: &str, copy: u32| {
        let arf = fixture("arf-abuse.eml", address, &message_id(&c, address));
        // Each report distinct, as two feedback loops' reports are.
        format!("X-Report-Copy: {copy}\n{arf}").into_bytes()
    };
    let first = maildir(&c.path().join("M1"), &[complaint("ann@example.com", 1)]);
    let second = maildir(
        &c.path().join("M2"),
        &[
            complaint("bob@example.org", 1),
            complaint("ann@example.com", 2),
        ],
    );
    let third = maildir(&c.path().join("M3"), &[complaint("cat@example.net", 1)]);
    let intake = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["intake", c.toml_str(), dir.to_str().unwrap()];
        args.extend(extra);
        let out = run(&args, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        out
    };
    let rate = |dir: &Path, extra: &[&str]| {
        let mut args = vec!["--format", "json"];
        args.extend(extra);
        let v = json(&intake(dir, &args));
        assert_eq!(v["schema"], "mailshot.intake/2");
        let c = &v["complaints"];
        assert_eq!(c["sent"], 3, "{v}");
        (
            c["this_run"].as_u64().unwrap(),
            c["campaign_total"].as_u64().unwrap(),
            c["rate_pct"].as_f64().unwrap(),
            c["gmail"].as_str().unwrap().to_owned(),
        )
    };
    let above = "at-or-above-0.3".to_owned();
    assert_eq!(rate(&first, &[]), (1, 1, 100.0 / 3.0, above.clone()));
    assert_eq!(rate(&second, &[]), (2, 2, 200.0 / 3.0, above.clone()));
    assert_eq!(
        rate(&third, &["--dry-run"]),
        (1, 3, 100.0, above.clone()),
        "a dry run shows what it would record"
    );
    for dir in [&first, &second] {
        assert_eq!(rate(dir, &[]), (0, 2, 200.0 / 3.0, above.clone()), "rerun");
    }
    let text = stdout(&intake(&first, &[]));
    assert!(
        text.contains("complaint rate, all intake runs: 66.667% (2 of 3 sent; 0 this run): AT OR ABOVE Gmail's 0.3% limit"),
        "{text}"
    );
    let ledger =
        std::fs::read_to_string(c.path().join(".mailshot/test-campaign/complaints")).unwrap();
    assert_eq!(ledger.lines().count(), 2, "{ledger}");
}
