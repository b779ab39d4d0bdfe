//! Self-tests proving the harness is real: the servers speak verified TLS with the test CA only, store DATA byte-exactly, and dkimpy accepts good and rejects altered signatures.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::dkim::{verify_with_dkimpy, zone_txt_record};
use crate::util::smtp::{Mode, SmtpServer};
use crate::util::tls::TestPki;

/// `openssl s_client` is an independent TLS client: if it verifies the
/// server against our CA (and rejects it against another), the server and
/// PKI are sound regardless of what mailshot's client does.
fn s_client(server: &SmtpServer, starttls: bool, ca: &Path) -> Output {
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client");
    if starttls {
        cmd.args(["-starttls", "smtp"]);
    }
    cmd.args(["-connect", &format!("127.0.0.1:{}", server.port)])
        .arg("-CAfile")
        .arg(ca)
        // Also check the leaf's IP SAN, as a real client would.
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1", "-brief"])
        // EOF on stdin makes s_client close the connection and exit.
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_tls_trust(mode: Mode, starttls: bool) {
    let pki = TestPki::new();
    let server = SmtpServer::start(mode, &pki, Some(("user", "secret")));

    let good = s_client(&server, starttls, &pki.ca_pem);
    assert!(good.status.success(), "{}", text(&good));
    assert!(text(&good).contains("Verification: OK"), "{}", text(&good));

    let bad = s_client(&server, starttls, &pki.other_ca_pem);
    assert!(!bad.status.success(), "{}", text(&bad));
    // Make sure it failed for the right reason, not e.g. a refused connection.
    assert!(
        text(&bad).contains("certificate verify failed"),
        "{}",
        text(&bad)
    );
}

#[test]
fn harness_starttls_server_trusts_only_test_ca() {
    assert_tls_trust(Mode::Starttls, true);
}

#[test]
fn harness_implicit_tls_server_trusts_only_test_ca() {
    assert_tls_trust(Mode::Implicit, false);
}

/// Python's smtplib (verifying against the test CA) submits through
/// STARTTLS + AUTH; the stored message must be byte-identical, including
/// dot-stuffed lines, and the refusal/auth behaviour must be the server's.
#[test]
fn harness_starttls_auth_delivery_is_byte_exact() {
    let pki = TestPki::new();
    let server = SmtpServer::start_with(
        Mode::Starttls,
        &pki,
        Some(("user", "secret")),
        &["gone@example.net"],
    );
    let msg: &[u8] = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: dots\r\n\r\n\
        .one leading dot\r\n..two\r\n.\r\nbare\nLF kept\r\n\r\n";
    let msg_path = pki.dir.path().join("sent.eml");
    std::fs::write(&msg_path, msg).unwrap();

    let script = r#"
import smtplib, ssl, sys
port, ca, msg_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def session():
    s = smtplib.SMTP("localhost", port, timeout=20)
    s.starttls(context=ctx)
    return s
s = session()
try:
    s.login("user", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("badpass", e.smtp_code)
s.quit()
s = session()
s.login("user", "secret")
refused = s.sendmail("a@example.com", ["b@example.net", "gone@example.net"], open(msg_path, "rb").read())
print("refused", refused["gone@example.net"][0])
s.quit()
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &server.port.to_string()])
        .arg(&pki.ca_pem)
        .arg(&msg_path)
        .output()
        .unwrap();
    let out_text = text(&out);
    assert!(out.status.success(), "{out_text}\n{}", server.log());
    assert!(out_text.contains("badpass 535"), "{out_text}");
    assert!(out_text.contains("refused 550"), "{out_text}");

    let got = server.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].raw, msg, "stored DATA differs from what was sent");
    assert_eq!(got[0].mail_from, "a@example.com");
    assert_eq!(got[0].rcpt_tos, vec!["b@example.net".to_string()]);
    assert_eq!(got[0].auth_user.as_deref(), Some("user"));
    assert!(got[0].received_at > 1.6e9, "{}", got[0].received_at);
}

/// dkimpy signs with a fresh `openssl genrsa` key; our verifier must accept
/// that and reject the same message with one body byte changed.
#[test]
fn harness_dkim_verifier_accepts_good_and_rejects_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", text(&out));
        out
    };
    run(Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(d.join("k.pem"))
        .arg("2048"));
    run(Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(d.join("k.pem"))
        .arg("-out")
        .arg(d.join("pub.der")));
    std::fs::write(
        d.join("msg.eml"),
        b"From: a@example.com\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello there\r\n",
    )
    .unwrap();

    // Signs msg.eml into signed.eml and prints the p= value for the zone.
    let sign = "import dkim,base64,sys; d=sys.argv[1]; m=open(d+'/msg.eml','rb').read(); \
        open(d+'/signed.eml','wb').write(dkim.sign(m,b's1',b'example.com',open(d+'/k.pem','rb').read())+m); \
        print(base64.b64encode(open(d+'/pub.der','rb').read()).decode())";
    let out = run(Command::new("/usr/bin/python3").args(["-c", sign]).arg(d));
    let p = String::from_utf8(out.stdout).unwrap();
    let zone = d.join("zone.txt");
    std::fs::write(
        &zone,
        format!(
            "; test zone\n{}",
            zone_txt_record(
                "s1._domainkey.example.com.",
                &format!("v=DKIM1; k=rsa; p={}", p.trim())
            )
        ),
    )
    .unwrap();

    let signed = d.join("signed.eml");
    let good = verify_with_dkimpy(&signed, &zone);
    assert!(good.ok, "{}", good.output);
    assert!(good.output.contains(r#""s": "s1""#), "{}", good.output);

    let mut bytes = std::fs::read(&signed).unwrap();
    let at = bytes.windows(5).rposition(|w| w == b"Hello").unwrap(); // the body is last
    bytes[at] = b'J';
    let tampered = d.join("tampered.eml");
    std::fs::write(&tampered, bytes).unwrap();
    let bad = verify_with_dkimpy(&tampered, &zone);
    assert!(!bad.ok, "{}", bad.output);
    assert!(bad.output.contains("body hash mismatch"), "{}", bad.output);
}

/// Whether a process runs (a zombie, waiting for a parent that may never reap it, does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // `pid (comm) S ...`: the state follows the last `)`.
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

/// The Postfix harness greets as its own instance, records its master's pid, and ends the
/// master by that pid when `postfix stop` fails (here its main.cf is gone): no test leaves a
/// Postfix running.
#[test]
fn postfix_master_is_ended_by_its_pid_when_postfix_stop_fails() {
    use std::time::{Duration, Instant};
    let postfix = crate::util::postfix::Postfix::start(&[]);
    let pid = postfix.master_pid().expect("the master's pid is recorded");
    assert!(running(pid), "master {pid}");
    std::fs::remove_file(postfix.config_dir().join("main.cf")).unwrap();
    drop(postfix);
    let start = Instant::now();
    while running(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Postfix's master {pid} still runs after a failed `postfix stop`"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
