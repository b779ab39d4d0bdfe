//! The classifier on the fixtures in tests/fixtures/intake (each names where its shape came
//! from) and on hostile input built here.

use std::path::Path;

use super::classify::classify;
use super::context::Context;
use super::known::Known;
use super::verdict::{Bounce, BounceFormat, Signal, Verdict};
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

/// What `c` sent, as intake reads it from the journal: ann, bob and cat, rows 2 to 4.
fn sent_to_three(c: &Campaign) -> Known {
    let mut k = Known::empty(c);
    for (row, a) in [
        (2, "ann@example.com"),
        (3, "bob@example.org"),
        (4, "cat@example.net"),
    ] {
        k.add(c, row, a);
    }
    k
}

fn known() -> (Campaign, Known) {
    let c = campaign("spring");
    let k = sent_to_three(&c);
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
    run_with(bytes, k, None)
}

fn run_with(bytes: &[u8], k: &Known, verp: Option<&crate::message::verp::Verp>) -> Verdict {
    classify(
        bytes,
        &Context {
            known: k,
            unsubscribe: None,
            mailto: None,
            now: std::time::SystemTime::UNIX_EPOCH,
            verp,
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
        verp: None,
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

/// A VERP campaign (its key is the `[unsubscribe]` secret) that sent to rows 2 to 4, in a
/// folder that lives as long as the first value is kept.
fn verp_campaign() -> (
    tempfile::TempDir,
    Campaign,
    Known,
    crate::message::verp::Verp,
) {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    std::fs::write(dir.join("secret"), "verp-k3y\n").unwrap();
    let toml = TOML.replace(
        "[outbox]",
        "[unsubscribe]\nurl = \"https://news.example.com/u\"\nsecret_file = \"secret\"\n[outbox]",
    );
    let toml = toml.replacen("[templates]", "verp = true\n[templates]", 1);
    let c = Campaign::parse(&dir.join("campaign.toml"), &toml).unwrap();
    let k = sent_to_three(&c);
    let v = crate::message::verp::Verp::new(&c).unwrap().unwrap();
    (folder, c, k, v)
}

/// The bounces in `v`, which must be a bounce report in `format`.
fn bounces_in(v: &Verdict, format: BounceFormat) -> &[Bounce] {
    let Verdict::Bounce {
        format: f, bounces, ..
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(*f, format);
    bounces
}

/// Fails unless `v` is Ignored with a reason that says `because`.
fn assert_ignored(v: &Verdict, because: &str) {
    assert!(
        matches!(v, Verdict::Ignored { why } if why.contains(because)),
        "{v:?}"
    );
}

fn run_verp(bytes: &[u8], k: &Known, v: &crate::message::verp::Verp) -> Verdict {
    run_with(bytes, k, Some(v))
}

fn tag_for(v: &crate::message::verp::Verp, row: u64, address: &str) -> String {
    v.envelope(row, &address.parse().unwrap())
        .unwrap()
        .to_string()
}

#[test]
fn a_bounce_with_nothing_of_the_original_maps_through_its_verp_address() {
    let (_dir, _, k, v) = verp_campaign();
    let to = tag_for(&v, 3, "bob@example.org");
    let bare = |to: &str| {
        format!(
            "Return-Path: <>\r\nDelivered-To: {to}\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: {to}\r\nSubject: failure notice\r\n\r\nSorry, no mailbox here by that name. 550 5.1.1\r\n"
        )
    };
    let v1 = run_verp(bare(&to).as_bytes(), &k, &v);
    let bounces = bounces_in(&v1, BounceFormat::NonStandard);
    assert_eq!(bounces[0].recipient.row, 3);
    assert_eq!(bounces[0].recipient.address, "bob@example.org");
    assert_eq!(bounces[0].signal, Signal::Verp);
    assert!(bounces[0].hard);
    // The same bounce to an altered tag (row 3's MAC on row 2) is ignored, and said.
    let altered = to.replacen("+3-", "+2-", 1);
    let v2 = run_verp(bare(&altered).as_bytes(), &k, &v);
    assert_ignored(&v2, "does not verify");
    // A well-formed tag for a row never sent.
    let unsent = tag_for(&v, 9, "zed@example.com");
    let v3 = run_verp(bare(&unsent).as_bytes(), &k, &v);
    assert_ignored(&v3, "row 9");
    // Without VERP configured, the same bounce names nobody.
    assert!(matches!(run(bare(&to).as_bytes(), &k), Verdict::Other));
    // An automatic reply to the VERP address is not a bounce.
    let ooo = format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@example.org\r\nTo: {to}\r\nSubject: Automatic reply: spring news\r\n\r\nI am away.\r\n"
    );
    assert!(matches!(run_verp(ooo.as_bytes(), &k, &v), Verdict::Other));
}

#[test]
fn a_genuine_postfix_dsn_maps_through_verp_and_a_forged_tag_is_ignored() {
    let (_dir, c, k, v) = verp_campaign();
    let dsn = |verp: &str| {
        String::from_utf8(fixture(
            "postfix-dsn.eml",
            "cat@example.net",
            &id_for(&c, "cat@example.net"),
        ))
        .unwrap()
        .replace("@@VERP@@", verp)
    };
    let good = tag_for(&v, 4, "cat@example.net");
    let verdict = run_verp(dsn(&good).as_bytes(), &k, &v);
    let bounces = bounces_in(&verdict, BounceFormat::Dsn);
    assert_eq!(bounces.len(), 1);
    assert_eq!(bounces[0].recipient.address, "cat@example.net");
    assert_eq!(bounces[0].signal, Signal::Verp);
    assert_eq!(bounces[0].status, "5.1.1");
    assert!(bounces[0].hard);
    // Without VERP the returned Message-ID still finds the recipient.
    let plain = run(dsn(&good).as_bytes(), &k);
    assert!(
        matches!(&plain, Verdict::Bounce { bounces, .. } if bounces[0].signal == Signal::ReturnedMessageId),
        "{plain:?}"
    );
    // A forged tag (another row's MAC) makes the whole report suspect: ignored, and said.
    let forged = good.replacen("+4-", "+2-", 1);
    let verdict = run_verp(dsn(&forged).as_bytes(), &k, &v);
    assert_ignored(&verdict, "does not verify");
}

/// With VERP on, only a verified tag ties a bounce to a recipient: the same bounces that the
/// returned Message-ID or the Final-Recipient map without VERP are ignored when they came
/// back to no tagged address, since anyone can write those.
#[test]
fn with_verp_on_an_untagged_bounce_is_ignored_whatever_else_it_names() {
    let (_dir, c, k, v) = verp_campaign();
    let bob = id_for(&c, "bob@example.org");
    let postfix = String::from_utf8(fixture("postfix-dsn.eml", "bob@example.org", &bob))
        .unwrap()
        .replace("@@VERP@@", "bounces@news.example.com");
    let cases = [
        (
            "rfc3464-failed.eml",
            fixture("rfc3464-failed.eml", "bob@example.org", &bob),
        ),
        (
            "exim-failed.eml",
            fixture("exim-failed.eml", "bob@example.org", &bob),
        ),
        (
            "qmail-failure.eml",
            fixture("qmail-failure.eml", "bob@example.org", &bob),
        ),
        (
            "forged-dsn.eml",
            fixture("forged-dsn.eml", "cat@example.net", ""),
        ),
        ("postfix-dsn.eml, untagged", postfix.into_bytes()),
    ];
    for (name, bytes) in cases {
        assert!(
            matches!(run(&bytes, &k), Verdict::Bounce { .. }),
            "{name} maps without VERP"
        );
        let verdict = run_verp(&bytes, &k, &v);
        assert!(
            matches!(&verdict, Verdict::Ignored { why } if why.contains(super::verp::NO_TAG)),
            "{name}: {verdict:?}"
        );
    }
    // A complaint does not come back to the envelope sender: VERP changes nothing for it.
    let arf = fixture("arf-abuse.eml", "", &id_for(&c, "cat@example.net"));
    assert!(matches!(run_verp(&arf, &k, &v), Verdict::Complaint { .. }));
}

/// RFC 3834 automatic replies come back to the envelope sender, so to the VERP address: an
/// out-of-office in any language is "other", never a soft bounce; a mail system's bounce,
/// which carries `Auto-Submitted: auto-replied` too, is still a bounce.
#[test]
fn an_automatic_reply_to_the_verp_address_is_never_a_bounce() {
    let (_dir, c, k, v) = verp_campaign();
    let to = tag_for(&v, 3, "bob@example.org");
    let mail = |from: &str, extra: &str, body: &str| {
        format!(
            "Return-Path: <>\r\nFrom: {from}\r\nTo: {to}\r\n{extra}Subject: Abwesenheitsnotiz: spring news\r\n\r\n{body}\r\n"
        )
    };
    let away = "Ich bin bis Montag nicht im B\u{fc}ro.";
    for (what, m) in [
        (
            "auto-replied",
            mail("bob@example.org", "Auto-Submitted: auto-replied\r\n", away),
        ),
        (
            "auto-generated, with a parameter",
            mail(
                "bob@example.org",
                "Auto-Submitted: Auto-Generated; x=1\r\n",
                away,
            ),
        ),
        (
            "no marker, no status code",
            mail("bob@example.org", "", away),
        ),
        (
            "from a daemon, no status code",
            mail("MAILER-DAEMON@example.org", "", away),
        ),
    ] {
        let verdict = run_verp(m.as_bytes(), &k, &v);
        assert!(matches!(verdict, Verdict::Other), "{what}: {verdict:?}");
    }
    // Without VERP, an auto-reply quoting the original's Message-ID is not a bounce either.
    let quoting = mail(
        "bob@example.org",
        "Auto-Submitted: auto-replied\r\n",
        &format!(
            "{away}\r\n\r\nMessage-ID: <{}>",
            id_for(&c, "bob@example.org")
        ),
    );
    assert!(matches!(run(quoting.as_bytes(), &k), Verdict::Other));
    // `Auto-Submitted: no` is a person; a bounce with a status code is a bounce.
    let status = "550 5.1.1 no such user";
    for m in [
        mail("bob@example.org", "Auto-Submitted: no\r\n", status),
        mail(
            "MAILER-DAEMON@example.org",
            "Auto-Submitted: auto-replied\r\n",
            status,
        ),
        mail(
            "bob@example.org",
            "Auto-Submitted: auto-replied\r\nX-Failed-Recipients: bob@example.org\r\n",
            status,
        ),
    ] {
        let verdict = run_verp(m.as_bytes(), &k, &v);
        assert!(
            matches!(&verdict, Verdict::Bounce { bounces, .. } if bounces[0].hard),
            "{m}: {verdict:?}"
        );
    }
}

/// A verified VERP tag wins over the returned original's Message-ID for a DSN, as for a
/// plain-text bounce: another campaign's Message-ID in it does not hide this campaign's
/// recipient.
#[test]
fn a_dsn_with_a_verified_tag_is_ours_whatever_campaign_its_returned_message_id_names() {
    let (_dir, _, k, v) = verp_campaign();
    let theirs = id_for(&campaign("autumn"), "cat@example.net");
    let dsn = String::from_utf8(fixture("postfix-dsn.eml", "cat@example.net", &theirs))
        .unwrap()
        .replace("@@VERP@@", &tag_for(&v, 4, "cat@example.net"));
    let verdict = run_verp(dsn.as_bytes(), &k, &v);
    assert!(
        matches!(&verdict, Verdict::Bounce { bounces, .. }
            if bounces[0].recipient.row == 4 && bounces[0].signal == Signal::Verp),
        "{verdict:?}"
    );
    // Without a tag, the same DSN is left for that campaign's intake.
    let verdict = run(dsn.as_bytes(), &k);
    assert_ignored(&verdict, "autumn");
}

/// `send --seed` copies go out tagged for row 0, which no recipient has (rows start at 2): a
/// bounce of a seed copy is other, left alone, not "forged, or another campaign's".
#[test]
fn a_bounce_of_a_seed_copy_is_other() {
    let (_dir, _, k, v) = verp_campaign();
    let seed = tag_for(&v, 0, "seed@example.com");
    let dsn = String::from_utf8(fixture(
        "postfix-dsn.eml",
        "seed@example.com",
        "x@y.example",
    ))
    .unwrap()
    .replace("@@VERP@@", &seed);
    let bare = format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: {seed}\r\nSubject: failure notice\r\n\r\n550 5.1.1 no such user\r\n"
    );
    for m in [dsn, bare] {
        let verdict = run_verp(m.as_bytes(), &k, &v);
        assert!(matches!(verdict, Verdict::Other), "{verdict:?}\n{m}");
    }
}

/// Exim writes `Envelope-to:` with the address as given, and some systems end it with a `;`
/// or a `.`: the VERP address is read without that punctuation.
#[test]
fn an_envelope_to_with_trailing_punctuation_still_names_the_tag() {
    let (_dir, _, k, v) = verp_campaign();
    let to = tag_for(&v, 3, "bob@example.org");
    for value in [format!("{to};"), format!("<{to}>;"), format!("{to}.")] {
        let m = format!(
            "Return-Path: <>\r\nEnvelope-To: {value}\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: bounces@news.example.com\r\nSubject: failure notice\r\n\r\n550 5.1.1 no such user\r\n"
        );
        let verdict = run_verp(m.as_bytes(), &k, &v);
        assert!(
            matches!(&verdict, Verdict::Bounce { bounces, .. } if bounces[0].recipient.row == 3),
            "{value}: {verdict:?}"
        );
    }
}
