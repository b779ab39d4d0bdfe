//! The classifier on the fixtures in tests/fixtures/intake (each names where its shape came
//! from) and on hostile input built here.

use std::path::Path;

use super::classify::{Context, classify};
use super::known::Known;
use super::verdict::{BounceFormat, Signal, Verdict};
use crate::config::Campaign;

const TOML: &str = r#"
[campaign]
id = "spring"
from = "News <news@news.example.com>"
subject = "Hello"
[templates]
text = "t.txt"
[recipients]
file = "r.csv"
[[dkim]]
domain = "news.example.com"
selector = "s"
private_key = "k.pem"
[outbox]
dir = "out"
"#;

fn campaign(id: &str) -> Campaign {
    Campaign::parse(Path::new("/x/campaign.toml"), &TOML.replace("spring", id)).unwrap()
}

fn known() -> (Campaign, Known) {
    let c = campaign("spring");
    let mut k = Known::empty(&c);
    for (row, a) in [
        (2, "ann@example.com"),
        (3, "bob@example.org"),
        (4, "cat@example.net"),
    ] {
        k.add(&c, row, a);
    }
    (c, k)
}

fn fixture(name: &str, rcpt: &str, msgid: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/intake")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("@@RCPT@@", rcpt)
        .replace("@@MSGID@@", msgid)
        .into_bytes()
}

fn id_for(c: &Campaign, address: &str) -> String {
    crate::message::Composer::new(c).message_id(&address.parse().unwrap())
}

fn run(bytes: &[u8], k: &Known) -> Verdict {
    classify(
        bytes,
        &Context {
            known: k,
            unsubscribe: None,
            mailto: None,
            now: std::time::SystemTime::UNIX_EPOCH,
        },
    )
}

/// (fixture, format, hard, status, signal)
const BOUNCES: &[(&str, BounceFormat, bool, &str)] = &[
    ("rfc3464-failed.eml", BounceFormat::Dsn, true, "5.1.1"),
    ("rfc3464-delayed.eml", BounceFormat::Dsn, false, "4.2.2"),
    ("gmail-failure.eml", BounceFormat::Dsn, true, "5.1.1"),
    ("exchange-ndr.eml", BounceFormat::Dsn, true, "5.1.10"),
    ("exim-failed.eml", BounceFormat::NonStandard, true, "5.1.1"),
    (
        "qmail-failure.eml",
        BounceFormat::NonStandard,
        true,
        "5.1.1",
    ),
];

#[test]
fn every_bounce_fixture_names_its_recipient_through_the_returned_message_id() {
    let (c, k) = known();
    for &(name, format, hard, status) in BOUNCES {
        let bytes = fixture(name, "bob@example.org", &id_for(&c, "bob@example.org"));
        let Verdict::Bounce {
            format: f, bounces, ..
        } = run(&bytes, &k)
        else {
            panic!("{name}: not a bounce: {:?}", run(&bytes, &k));
        };
        assert_eq!(f, format, "{name}");
        assert_eq!(bounces.len(), 1, "{name}");
        let b = &bounces[0];
        assert_eq!(b.recipient.address, "bob@example.org", "{name}");
        assert_eq!(b.recipient.row, 3, "{name}");
        assert_eq!((b.hard, b.status.as_str()), (hard, status), "{name}");
        assert_eq!(b.signal, Signal::ReturnedMessageId, "{name}");
    }
}

#[test]
fn a_dsn_without_a_returned_original_falls_back_to_final_recipient_in_the_journal() {
    let (_, k) = known();
    let v = run(&fixture("forged-dsn.eml", "cat@example.net", ""), &k);
    let Verdict::Bounce { bounces, .. } = v else {
        panic!("{v:?}")
    };
    assert_eq!(bounces[0].signal, Signal::FinalRecipient);
}

#[test]
fn a_forged_dsn_for_someone_never_sent_is_ignored_and_said() {
    let (_, k) = known();
    let v = run(&fixture("forged-dsn.eml", "victim@example.com", ""), &k);
    let Verdict::Ignored { why } = v else {
        panic!("{v:?}")
    };
    assert!(
        why.contains("victim@example.com") && why.contains("never sent"),
        "{why}"
    );
}

#[test]
fn plain_text_bounces_without_our_message_id_are_never_guessed() {
    let (_, k) = known();
    // The recipient's address is in the text, but the Message-ID is someone else's.
    let v = run(
        &fixture("exim-failed.eml", "ann@example.com", "other@else.example"),
        &k,
    );
    assert!(matches!(v, Verdict::Other), "{v:?}");
}

#[test]
fn another_campaigns_bounce_is_left_for_it() {
    let (_, k) = known();
    let other = campaign("autumn");
    let v = run(
        &fixture(
            "qmail-failure.eml",
            "ann@example.com",
            &id_for(&other, "ann@example.com"),
        ),
        &k,
    );
    let Verdict::Ignored { why } = v else {
        panic!("{v:?}")
    };
    assert!(why.contains("autumn"), "{why}");
}

#[test]
fn complaint_through_the_original_message_id_with_the_to_redacted() {
    let (c, k) = known();
    let v = run(
        &fixture("arf-abuse.eml", "", &id_for(&c, "cat@example.net")),
        &k,
    );
    let Verdict::Complaint {
        recipient,
        feedback_type,
        signal,
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(recipient.address, "cat@example.net");
    assert_eq!(feedback_type, "abuse");
    assert_eq!(signal, Signal::ComplaintMessageId);
}

#[test]
fn hostile_messages_are_named_not_fatal() {
    let (_, k) = known();
    // 100 levels of message/rfc822.
    let mut m = String::from("Subject: core\r\n\r\nx\r\n");
    for i in 0..100 {
        m = format!("Subject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n{m}");
    }
    let v = run(m.as_bytes(), &k);
    assert!(
        matches!(&v, Verdict::Skipped { why } if why.contains("nested")),
        "{v:?}"
    );
    // A DSN whose delivery-status part names no recipient.
    let no_rcpt = b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nAction: failed\r\n--B--\r\n";
    let v = run(no_rcpt, &k);
    assert!(
        matches!(&v, Verdict::Skipped { why } if why.contains("Final-Recipient")),
        "{v:?}"
    );
    // Not a message at all, and garbage MIME.
    assert!(matches!(run(b"", &k), Verdict::Skipped { .. }));
    let v = run(
        b"Content-Type: multipart/report; boundary=\"\r\n\r\n--\r\n--\r\n\x00\xff",
        &k,
    );
    assert!(
        !matches!(v, Verdict::Bounce { .. } | Verdict::Complaint { .. }),
        "{v:?}"
    );
}

#[test]
fn mailto_unsubscribe_needs_the_right_token() {
    let (_, k) = known();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "k3y\n").unwrap();
    let unsub = crate::unsubscribe::Unsubscriber::new(&crate::config::UnsubscribeConfig {
        url: None,
        mailto: Some("unsub@news.example.com".parse().unwrap()),
        secret: crate::secret::SecretSource::File(secret),
        previous: None,
    })
    .unwrap();
    let token = unsub.token(&"Dan@Example.com".parse().unwrap());
    let cx = Context {
        known: &k,
        unsubscribe: Some(&unsub),
        mailto: Some("unsub@news.example.com".into()),
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    let mail = |subject: &str| {
        format!("From: x@y.example\r\nTo: Unsub@News.Example.com\r\nSubject: {subject}\r\n\r\n")
    };
    // Not a recipient of this campaign: the token alone proves the request.
    let v = classify(
        mail(&format!("unsubscribe dan%40example.com {token}")).as_bytes(),
        &cx,
    );
    assert!(
        matches!(&v, Verdict::Unsubscribe { address } if address == "dan@example.com"),
        "{v:?}"
    );
    for subject in [
        format!("unsubscribe eve@example.com {token}"),
        format!("unsubscribe dan@example.com {}", &token[1..]),
        "please remove me".to_owned(),
    ] {
        let v = classify(mail(&subject).as_bytes(), &cx);
        assert!(matches!(v, Verdict::Ignored { .. }), "{subject}: {v:?}");
    }
}
