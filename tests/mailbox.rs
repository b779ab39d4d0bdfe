//! The mailbox reader against a real Dovecot: implicit TLS and STARTTLS, a wrong password,
//! an untrusted certificate, read-only report runs, marking by keyword or move, and reruns.

use crate::util::dovecot::Dovecot;
use crate::util::intake::{eml_files, fixture};
use crate::util::{CampaignDir, Spec, run, stderr, stdout};

const DMARC_MAIL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dmarc/reports/outlook/Report Domain news.example.com Submitter enterprise.protection.outlook.com.eml"
);

fn filled() -> (Dovecot, tempfile::TempDir) {
    let d = Dovecot::start();
    let tmp = tempfile::tempdir().unwrap();
    let mail = vec![
        std::fs::read(DMARC_MAIL).unwrap(),
        fixture("forged-dsn.eml", "victim@example.com", "").into_bytes(),
    ];
    d.append("INBOX", &eml_files(tmp.path(), &mail));
    (d, tmp)
}

/// A campaign sent to its outbox, with an empty suppression file for intake to add to: what
/// intake needs to tie the mailbox's messages to it.
fn sent_campaign() -> CampaignDir {
    let c = CampaignDir::new(&Spec {
        tail: "[outbox]\ndir = \"outbox\"\n\n[suppression]\nfile = \"suppressed.txt\"\n",
        ..Spec::default()
    });
    std::fs::write(c.path().join("suppressed.txt"), "").unwrap();
    assert_eq!(run(&["send", c.toml_str()], &[]).status.code(), Some(0));
    c
}

#[test]
fn dmarc_report_reads_imaps_and_starttls_read_only() {
    let (d, _tmp) = filled();
    let ca = d.pki.ca_pem.to_str().unwrap();
    let pw = d.password_file.to_str().unwrap();
    for url in [d.url("INBOX"), d.starttls_url("INBOX")] {
        let out = run(
            &[
                "dmarc",
                "report",
                &url,
                "--password-file",
                pw,
                "--ca-file",
                ca,
                "--format",
                "json",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(0), "{url}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["reports"]["counted"], 1, "{url}: {}", stdout(&out));
        assert_eq!(v["files"]["found"], 2, "{url}");
    }
    // A report run never marks anything.
    assert!(
        d.flags("INBOX")
            .iter()
            .all(|(_, f)| f.iter().all(|x| x != "$MailshotProcessed"))
    );
}

#[test]
fn a_wrong_password_and_an_untrusted_certificate_stop_before_reading() {
    let (d, _tmp) = filled();
    let url = d.url("INBOX");
    let ca = d.pki.ca_pem.to_str().unwrap();
    let wrong = run(
        &[
            "dmarc",
            "report",
            &url,
            "--password-env",
            "MAILSHOT_TEST_IMAP_PW",
            "--ca-file",
            ca,
        ],
        &[("MAILSHOT_TEST_IMAP_PW", "not-the-password")],
    );
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("refused the login for bounces@news.example.com"),
        "{}",
        stderr(&wrong)
    );
    assert!(!stderr(&wrong).contains("not-the-password"));

    let other = d.pki.other_ca_pem.to_str().unwrap();
    let pw = d.password_file.to_str().unwrap();
    for (url, ca) in [
        (d.url("INBOX"), Some(other)),
        (d.starttls_url("INBOX"), None),
    ] {
        let mut args = vec!["dmarc", "report", url.as_str(), "--password-file", pw];
        if let Some(ca) = ca {
            args.extend(["--ca-file", ca]);
        }
        let out = run(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{url}");
        assert!(
            stderr(&out).contains("TLS with localhost") && stderr(&out).contains("certificate"),
            "{}",
            stderr(&out)
        );
    }
    let no_pw = run(&["dmarc", "report", &url, "--ca-file", ca], &[]);
    assert_eq!(no_pw.status.code(), Some(2));
    assert!(
        stderr(&no_pw).contains("--password-env"),
        "{}",
        stderr(&no_pw)
    );
}

#[test]
fn intake_moves_processed_messages_to_the_folder_named_and_leaves_the_rest() {
    let (d, _tmp) = filled();
    let c = sent_campaign();
    let url = d.url("INBOX");
    let pw = d.password_file.to_str().unwrap();
    let ca = d.pki.ca_pem.to_str().unwrap();
    let args = [
        "intake",
        c.toml_str(),
        &url,
        "--password-file",
        pw,
        "--ca-file",
        ca,
        "--move-to",
        "Processed",
    ];
    let out = run(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("marked processed on IMAP: 1"),
        "{}",
        stdout(&out)
    );
    // The DMARC report moved; the forged DSN stays for a person.
    assert_eq!(d.flags("Processed").len(), 1);
    assert_eq!(d.flags("INBOX").len(), 1);
    let again = run(&args, &[]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        stdout(&again).contains("messages read: 1 (1 processed by an earlier run)"),
        "{}",
        stdout(&again)
    );
    assert_eq!(d.flags("Processed").len(), 1);
}

/// `$MailshotProcessed` belongs to intake: intake tags the DMARC report it read, and then
/// `verify` still grades that message (as it grades the same message from its file) and
/// `dmarc report` still counts it, since intake only totals reports and leaves their details
/// to `dmarc report`. Neither reader changes a flag.
#[test]
fn messages_intake_tagged_are_still_graded_and_summarized() {
    let (d, tmp) = filled();
    let c = sent_campaign();
    let url = d.url("INBOX");
    let pw = d.password_file.to_str().unwrap();
    let ca = d.pki.ca_pem.to_str().unwrap();
    let imap = ["--password-file", pw, "--ca-file", ca];
    let intake = run(&[&["intake", c.toml_str(), &url][..], &imap].concat(), &[]);
    assert_eq!(intake.status.code(), Some(0), "{}", stderr(&intake));
    let tagged: Vec<u32> = d
        .flags("INBOX")
        .into_iter()
        .filter(|(_, f)| f.iter().any(|x| x == "$MailshotProcessed"))
        .map(|(uid, _)| uid)
        .collect();
    assert_eq!(tagged, [1], "intake tagged the DMARC report (UID 1) only");
    // \Recent belongs to whichever session saw a message first; the others last.
    let lasting = || {
        let mut f = d.flags("INBOX");
        f.iter_mut()
            .for_each(|(_, f)| f.retain(|x| x != "\\Recent"));
        f
    };
    let flags = lasting();

    let verify = |input: &str, extra: &[&str]| {
        let args = [
            &["verify", "--format", "json", "--nameserver", "none", input][..],
            extra,
        ];
        let out = run(&args.concat(), &[]);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("verify --format json: {e}: {}", stderr(&out)));
        j["messages"].as_array().unwrap().clone()
    };
    let from_imap = verify(&url, &imap);
    assert_eq!(from_imap.len(), 2, "both messages graded: {from_imap:#?}");
    let report = &from_imap[0];
    assert!(
        report["source"].as_str().unwrap().ends_with("/INBOX UID 1"),
        "{report:#}"
    );
    let file = tmp.path().join("report.eml");
    std::fs::copy(DMARC_MAIL, &file).unwrap();
    let from_file = verify(file.to_str().unwrap(), &[]);
    assert_eq!(report["grade"], from_file[0]["grade"]);
    assert_eq!(report["items"], from_file[0]["items"]);

    let summary = run(
        &[&["dmarc", "report", &url, "--format", "json"][..], &imap].concat(),
        &[],
    );
    assert_eq!(summary.status.code(), Some(0), "{}", stderr(&summary));
    let v: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(v["reports"]["counted"], 1, "{}", stdout(&summary));
    assert_eq!(lasting(), flags, "the readers changed no flag");
}
