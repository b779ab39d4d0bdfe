//! `mailshot verify` on messages aiosmtpd received from `send`, with the headers a receiving
//! MX adds (Return-Path, Received, Authentication-Results), against knot serving the sending
//! domain; and on fixtures whose Authentication-Results take the shapes Gmail, Microsoft and
//! Yahoo write.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::dkim::{verify_with_dkimpy, zone_txt_record};
use crate::util::dns::DnsServer;
use crate::util::dovecot::{Dovecot, USER};
use crate::util::scenario::{PASSWORD, PASSWORD_ENV, Scenario};
use crate::util::smtp::{Mode, SmtpServer};
use crate::util::{CampaignDir, b64, run, stdout};

/// news.example.com as the receiver sees it: SPF for the relay's public network, PTR and A
/// for its address, DMARC p=reject. The DKIM keys are appended per case.
const DOMAIN: &str = r#"@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
@ IN MX 10 mx
mx IN A 192.0.2.25
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com"
"#;

/// Sends the campaign through aiosmtpd over STARTTLS and returns what arrived, in order.
fn deliver(c: &CampaignDir, server: &SmtpServer) -> Vec<crate::util::smtp::Received> {
    // The audit blocks a campaign without one-click unsubscribe; the override lets the
    // missing-header case reach the receiver.
    let out = run(
        &["send", "--override", "bulk.one-click", c.toml_str()],
        &[(PASSWORD_ENV, PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(0));
    server.received()
}

/// A campaign sending to aiosmtpd over STARTTLS with AUTH, as a real relay would take it.
fn relay() -> (SmtpServer, CampaignDir) {
    Scenario::new().login().smtp(Mode::Starttls)
}

/// What the receiving MX prepends: its verdicts (DKIM from dkimpy against the keys the
/// campaign publishes, SPF and DMARC as the domain's records give for 192.0.2.25), and the
/// Received field for a TLS 1.3 connection from the relay's public address.
fn as_received(raw: &[u8], mail_from: &str, dkim_ok: bool) -> Vec<u8> {
    let dkim = if dkim_ok { "pass" } else { "fail" };
    let mut out = format!(
        "Return-Path: <{mail_from}>\r\n\
         Authentication-Results: mx.example.org;\r\n\tdkim={dkim} header.d=news.example.com header.s=s2026r;\r\n\tdkim={dkim} header.d=news.example.com header.s=s2026e;\r\n\tspf=pass smtp.mailfrom={mail_from};\r\n\tdmarc=pass header.from=news.example.com\r\n\
         Received: from mx.news.example.com (mx.news.example.com [192.0.2.25])\r\n\tby mx.example.org with ESMTPS id 4Yt1 for <ann@example.com>\r\n\t(version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384); Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    )
    .into_bytes();
    out.extend_from_slice(raw);
    out
}

/// `mailshot verify --format json --nameserver <dns> EXTRA.. TARGET`: the command line every
/// case grades with, a file, a Maildir or an IMAP URL (which adds its login arguments).
fn run_verify(dns: &DnsServer, extra: &[&str], target: &str) -> std::process::Output {
    let nameserver = dns.nameserver();
    let mut args = vec!["verify", "--format", "json", "--nameserver", &nameserver];
    args.extend_from_slice(extra);
    args.push(target);
    run(&args, &[])
}

fn verify(path: &Path, dns: &DnsServer) -> (Option<i32>, Value) {
    let out = run_verify(dns, &[], path.to_str().unwrap());
    let json: Value = serde_json::from_str(&stdout(&out)).expect("verify --format json");
    assert_eq!(json["schema"], "mailshot.verify/1");
    (out.status.code(), json)
}

fn items<'a>(j: &'a Value, id: &str) -> Vec<&'a Value> {
    j["messages"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["id"] == id)
        .collect()
}

fn status(j: &Value, id: &str) -> Vec<String> {
    items(j, id)
        .iter()
        .map(|i| i["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids blocking `provider`.
fn blocking(j: &Value, provider: &str) -> Vec<String> {
    j["messages"][0]["grade"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["provider"] == provider)
        .unwrap()["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn start_dns(dkim_zone: &str) -> DnsServer {
    DnsServer::start(&[
        ("news.example.com", &format!("{DOMAIN}{dkim_zone}")),
        // The parents the RFC 9989 tree walk asks about.
        ("com", ""),
        ("2.0.192.in-addr.arpa", "25 IN PTR mx.news.example.com.\n"),
    ])
}

/// One delivered message, as the receiver stored it, with dkimpy's verdict in its header.
fn received_message(c: &CampaignDir, server: &SmtpServer) -> PathBuf {
    let got = deliver(c, server);
    let first = &got[0];
    let path = c.path().join("received.eml");
    let dkim = verify_with_dkimpy(&first.path, &c.zone);
    std::fs::write(&path, as_received(&first.raw, &first.mail_from, dkim.ok)).unwrap();
    path
}

#[test]
fn a_delivered_message_passes_for_every_provider() {
    let (server, c) = relay();
    let path = received_message(&c, &server);
    let dns = start_dns(&std::fs::read_to_string(&c.zone).unwrap());
    let (code, j) = verify(&path, &dns);
    assert_eq!(code, Some(0), "{j:#}");
    for p in ["gmail", "yahoo", "microsoft"] {
        assert!(blocking(&j, p).is_empty(), "{p}: {j:#}");
    }
    assert_eq!(status(&j, "verify.dkim.signature"), ["pass", "pass"]);
    for id in [
        "verify.dkim",
        "verify.spf",
        "verify.dmarc.record",
        "verify.dmarc.pass",
        "verify.one-click",
        "verify.one-click-signed",
        "verify.tls",
        "verify.ptr",
        "verify.format.from",
        "verify.format.text-part",
    ] {
        assert_eq!(status(&j, id), ["pass"], "{id}: {j:#}");
    }
    let rx = &j["messages"][0]["receiver"];
    assert_eq!(rx["connecting_ip"], "192.0.2.25");
    assert_eq!(rx["results"]["authserv_id"], "mx.example.org");
    assert!(items(&j, "verify.disagree.dkim").is_empty(), "{j:#}");
    // The organizational domain came from the walk, which knot answered to the top.
    let org = items(&j, "verify.dmarc.org-domain")[0]["message"]
        .as_str()
        .unwrap();
    assert!(
        org.starts_with("organizational domain news.example.com (tree walk"),
        "{org}"
    );
}

#[test]
fn a_body_changed_after_delivery_fails_dkim_and_says_why() {
    let (server, c) = relay();
    let path = received_message(&c, &server);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("News.", "Newz.", 1)).unwrap();
    let dns = start_dns(&std::fs::read_to_string(&c.zone).unwrap());
    let (code, j) = verify(&path, &dns);
    assert_eq!(code, Some(1), "{j:#}");
    assert_eq!(status(&j, "verify.dkim"), ["fail"]);
    // Graded as bulk mail, every provider needs DKIM as well as SPF; Gmail and Yahoo also
    // lose the signed one-click headers.
    for p in ["gmail", "yahoo", "microsoft"] {
        assert!(blocking(&j, p).contains(&"verify.dkim".to_owned()), "{p}");
    }
    assert!(blocking(&j, "gmail").contains(&"verify.one-click-signed".to_owned()));
    // SPF alone is what a small sender needs: reported, not blocking.
    assert_eq!(status(&j, "verify.spf-or-dkim"), ["pass"]);
    assert!(
        j["messages"][0]["graded_as"]
            .as_str()
            .unwrap()
            .starts_with("bulk mail")
    );
    // SPF still passes and aligns, so DMARC does too.
    assert_eq!(status(&j, "verify.dmarc.pass"), ["pass"]);
    let why: Vec<&str> = items(&j, "verify.disagree.dkim")
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert_eq!(why.len(), 2, "{j:#}");
    assert!(why[0].contains("body changed"), "{why:?}");
}

/// A fresh key pair from openssl: (k=, the p= value).
fn openssl_key(dir: &Path, alg: &str) -> (&'static str, String) {
    let key = dir.join(format!("{alg}.pem"));
    let mut genpkey = Command::new("openssl");
    genpkey
        .args(["genpkey", "-quiet", "-algorithm", alg, "-out"])
        .arg(&key);
    if alg == "RSA" {
        genpkey.args(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    assert!(genpkey.status().unwrap().success());
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap()
        .stdout;
    if alg == "RSA" {
        ("rsa", b64(&der))
    } else {
        ("ed25519", b64(&der[der.len() - 32..]))
    }
}

#[test]
fn a_rotated_key_is_named_as_the_likely_cause() {
    let (server, c) = relay();
    let path = received_message(&c, &server);
    // The domain has since published new keys under the same selectors.
    let mut rotated = String::new();
    for (sel, alg) in [("s2026r", "RSA"), ("s2026e", "ED25519")] {
        let (k, p) = openssl_key(c.path(), alg);
        rotated.push_str(&zone_txt_record(
            &format!("{sel}._domainkey.news.example.com."),
            &format!("v=DKIM1; k={k}; p={p}"),
        ));
    }
    let dns = start_dns(&rotated);
    let (code, j) = verify(&path, &dns);
    assert_eq!(code, Some(1), "{j:#}");
    assert_eq!(status(&j, "verify.dkim.signature"), ["fail", "fail"]);
    let why = items(&j, "verify.disagree.dkim");
    assert_eq!(why.len(), 2, "{j:#}");
    assert!(
        why[0]["message"].as_str().unwrap().contains("rotated"),
        "{j:#}"
    );
}

#[test]
fn a_message_without_one_click_headers_is_blocked_for_gmail_and_yahoo_only() {
    let (server, c) = relay();
    // Only a mailto: unsubscribe: List-Unsubscribe without https, no List-Unsubscribe-Post.
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    let toml = toml.replace("url = \"https://news.example.com/unsubscribe\"\n", "");
    std::fs::write(&c.toml, toml).unwrap();
    let path = received_message(&c, &server);
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(!raw.contains("\nList-Unsubscribe-Post:"), "{raw}");
    assert!(raw.contains("\nList-Unsubscribe: <mailto:"), "{raw}");
    let dns = start_dns(&std::fs::read_to_string(&c.zone).unwrap());
    let (code, j) = verify(&path, &dns);
    assert_eq!(code, Some(1), "{j:#}");
    assert_eq!(status(&j, "verify.one-click"), ["fail"]);
    assert_eq!(blocking(&j, "gmail"), ["verify.one-click"]);
    assert_eq!(blocking(&j, "yahoo"), ["verify.one-click"]);
    assert!(blocking(&j, "microsoft").is_empty(), "{j:#}");
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/verify");

/// The example campaign's domain as its dns.zone publishes it, plus the parents.
fn example_dns() -> DnsServer {
    let zone = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/newsletter/dns.zone"
    ))
    .unwrap();
    // Knot's harness adds its own $ORIGIN, $TTL, SOA and NS; keep the records.
    let body: String = zone
        .lines()
        .filter(|l| !l.starts_with('$') && !l.contains("in-addr.arpa"))
        .map(|l| format!("{l}\n"))
        .collect();
    DnsServer::start(&[
        ("news.example.com", &body),
        ("com", ""),
        ("2.0.192.in-addr.arpa", "25 IN PTR mx.news.example.com.\n"),
    ])
}

#[test]
fn provider_shaped_authentication_results_are_read() {
    let dns = example_dns();
    for (file, authserv, tls) in [
        ("gmail.eml", Some("mx.google.com"), true),
        ("microsoft.eml", None, true),
        (
            "yahoo.eml",
            Some("atlas-production.v2.mail-production.ne1.yahoo.com"),
            true,
        ),
    ] {
        let (code, j) = verify(&Path::new(FIXTURES).join(file), &dns);
        let rx = &j["messages"][0]["receiver"];
        assert_eq!(rx["results"]["authserv_id"].as_str(), authserv, "{file}");
        assert_eq!(rx["connecting_ip"], "192.0.2.25", "{file}");
        assert_eq!(rx["hop"]["tls"], tls, "{file}");
        let methods: Vec<(&str, &str)> = rx["results"]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["method"].as_str().unwrap(), o["result"].as_str().unwrap()))
            .filter(|(m, _)| ["spf", "dkim", "dmarc"].contains(m))
            .collect();
        assert!(methods.contains(&("dmarc", "pass")), "{file}: {methods:?}");
        assert!(methods.contains(&("spf", "pass")), "{file}: {methods:?}");
        // The example signs with both keys, so every provider's rules are met, and the
        // local results agree with each receiver's.
        assert_eq!(code, Some(0), "{file}: {j:#}");
        assert!(items(&j, "verify.disagree.dkim").is_empty(), "{file}");
        assert!(items(&j, "verify.disagree.spf").is_empty(), "{file}");
    }
}

#[test]
fn a_folder_of_messages_and_unreadable_input() {
    let dns = example_dns();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::copy(
        Path::new(FIXTURES).join("gmail.eml"),
        maildir.join("new/1.mx"),
    )
    .unwrap();
    std::fs::write(maildir.join("tmp/2.mx"), "From: half@delivered\r\n").unwrap();
    let out = run_verify(&dns, &[], maildir.to_str().unwrap());
    assert_eq!(out.status.code(), Some(0));
    let j: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // tmp/ holds messages still being delivered: not read.
    assert_eq!(j["messages"].as_array().unwrap().len(), 1);

    let not_mail = dir.path().join("notes.txt");
    std::fs::write(&not_mail, "just some text\n").unwrap();
    let out = run(&["verify", not_mail.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    // An IMAP mailbox needs a password from the environment or a file, before any connection.
    let out = run(&["verify", "imaps://me@imap.example.net/INBOX"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::util::stderr(&out).contains("IMAP needs a password"),
        "{}",
        crate::util::stderr(&out)
    );
}

/// (id, status) of every item of message `n`, in order.
fn statuses(j: &Value, n: usize) -> Vec<(String, String)> {
    j["messages"][n]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Flags other than \Recent, which belongs to whichever session saw the message first.
fn lasting(flags: Vec<(u32, Vec<String>)>) -> Vec<(u32, Vec<String>)> {
    flags
        .into_iter()
        .map(|(uid, f)| (uid, f.into_iter().filter(|x| x != "\\Recent").collect()))
        .collect()
}

#[test]
fn an_imap_mailbox_is_graded_as_its_files_are_and_left_as_it_was() {
    let (server, c) = relay();
    let good = received_message(&c, &server);
    let bad = c.path().join("tampered.eml");
    let text = std::fs::read_to_string(&good).unwrap();
    std::fs::write(&bad, text.replacen("News.", "Newz.", 1)).unwrap();
    let dns = start_dns(&std::fs::read_to_string(&c.zone).unwrap());
    let files: Vec<(Option<i32>, Value)> = [&good, &bad].iter().map(|p| verify(p, &dns)).collect();
    assert_eq!(files[0].0, Some(0), "{:#}", files[0].1);
    assert_eq!(files[1].0, Some(1), "{:#}", files[1].1);

    let imap = Dovecot::start();
    imap.append("INBOX", &[good.clone(), bad.clone()]);
    let before = lasting(imap.flags("INBOX"));
    assert_eq!(before.len(), 2);
    let login = [
        "--password-file",
        imap.password_file.to_str().unwrap(),
        "--ca-file",
        imap.pki.ca_pem.to_str().unwrap(),
    ];
    let out = run_verify(&dns, &login, &imap.url("INBOX"));
    // The tampered message blocks, as it does from its file.
    assert_eq!(out.status.code(), Some(1), "{}", crate::util::stderr(&out));
    let j: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let messages = j["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{j:#}");
    for (n, (_, file)) in files.iter().enumerate() {
        assert_eq!(
            messages[n]["grade"], file["messages"][0]["grade"],
            "message {n}"
        );
        assert_eq!(statuses(&j, n), statuses(file, 0), "message {n}");
        assert_eq!(
            messages[n]["source"],
            format!("{}@localhost:{}/INBOX UID {}", USER, imap.imaps_port, n + 1)
        );
    }
    // verify only reads: no \Seen, no keyword, nothing moved or expunged.
    assert_eq!(lasting(imap.flags("INBOX")), before);
    assert!(
        before.iter().all(|(_, f)| f.is_empty()),
        "APPEND set no flags: {before:?}"
    );
}

#[test]
fn list_id_and_feedback_id_are_set_signed_and_graded() {
    let c = crate::util::CampaignDir::new(&crate::util::Spec::default());
    let toml = std::fs::read_to_string(&c.toml).unwrap().replacen(
        "[campaign]\n",
        "[campaign]\nlist_id = \"Example News <news.news.example.com>\"\nfeedback_id = \"nov:news:mailshot\"\n",
        1,
    );
    std::fs::write(&c.toml, toml).unwrap();
    let check = run(&["check", "--format", "json", c.toml_str()], &[]);
    let j: Value = serde_json::from_str(&stdout(&check)).unwrap();
    let list = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "bulk.list-id")
        .unwrap();
    assert_eq!(list["severity"], "pass", "{j:#}");
    assert_eq!(run(&["send", c.toml_str()], &[]).status.code(), Some(0));
    let eml = &c.eml_files("outbox")[0];
    let raw = std::fs::read_to_string(eml).unwrap();
    assert!(
        raw.contains("\r\nList-Id: Example News <news.news.example.com>\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("\r\nFeedback-ID: nov:news:mailshot\r\n"),
        "{raw}"
    );
    // Signed, and dkimpy agrees the signatures still verify.
    let dkim = verify_with_dkimpy(eml, &c.zone);
    assert!(dkim.ok, "{}", dkim.output);
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n\t", " ")
        .replace("\r\n ", " ");
    let sig = head
        .lines()
        .find(|l| l.starts_with("DKIM-Signature:"))
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        sig.contains("list-id") && sig.contains("feedback-id"),
        "{sig}"
    );
}
