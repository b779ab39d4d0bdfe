//! `mailshot unsubscribe serve`, driven by real clients: curl for every request shape of RFC
//! 8058 and the refusals, headless Chromium for the page and its button, many parallel
//! connections, a SIGKILL mid-load, a `send` that meets an unsubscribe mid-run, and secret
//! rotation under a pinned clock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::http::{Serve, curl, one_click, query, token};
use crate::util::{CampaignDir, Spec, run, stderr};

const SECRET: &str = "test-secret";
const STORE: &str = "[suppression]\nfile = \"suppressed.txt\"\n";

fn campaign(extra: &str) -> CampaignDir {
    CampaignDir::new(&Spec {
        tail: &format!("[outbox]\ndir = \"outbox\"\n\n{STORE}{extra}"),
        ..Spec::default()
    })
}

/// The entries in force, as `mailshot suppress list --format json` reads them: entry -> reason.
pub fn listed(c: &CampaignDir) -> HashMap<String, String> {
    let out = run(&["suppress", "list", "--format", "json", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["entry"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn store_lines(c: &CampaignDir) -> Vec<String> {
    std::fs::read_to_string(c.path().join("suppressed.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every request shape of RFC 8058 and every refusal, with curl: only the valid POST writes,
/// once, and the log never holds a token or an address.
#[test]
fn curl_one_click_get_head_and_every_refusal() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &["--body-timeout", "2"], None);
    let ann = s.url("ann@example.com", &token(SECRET, "ann@example.com"));

    let get = curl(&[&ann]);
    assert_eq!(get.status, 200);
    assert!(get.body.contains("ann@example.com"), "{}", get.body);
    assert!(get.body.contains("<form method=\"post\""), "{}", get.body);
    assert!(
        get.body
            .contains("name=\"List-Unsubscribe\" value=\"One-Click\"")
    );
    assert!(!get.body.contains("<script"));
    let head = curl(&["-I", &ann]);
    assert_eq!(head.status, 200);
    assert!(store_lines(&c).is_empty(), "GET and HEAD never unsubscribe");

    let bob_token = token(SECRET, "bob@example.org");
    let refusals: Vec<(u16, Vec<String>)> = vec![
        // A forged token, a token for another address, no token, no address.
        (
            403,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                s.url("ann@example.com", &bob_token),
            ],
        ),
        (
            403,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                s.url("ann@example.com", "AAAA"),
            ],
        ),
        (
            400,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                format!("http://{}/unsubscribe?email=ann%40example.com", s.addr),
            ],
        ),
        (
            400,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                format!("http://{}/unsubscribe?token={bob_token}", s.addr),
            ],
        ),
        // An address that does not parse (its token is genuine for the string).
        (
            400,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                s.url("not an address", &token(SECRET, "not an address")),
            ],
        ),
        // A POST without the one-click body, with another body, and as JSON.
        (400, vec!["-X".into(), "POST".into(), ann.clone()]),
        (
            400,
            vec!["-d".into(), "List-Unsubscribe=Later".into(), ann.clone()],
        ),
        (
            400,
            vec![
                "-H".into(),
                "Content-Type: application/json".into(),
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                ann.clone(),
            ],
        ),
        // Another path; an unsupported method.
        (
            404,
            vec![
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                ann.replace("/unsubscribe?", "/other?"),
            ],
        ),
        (
            405,
            vec![
                "-X".into(),
                "PUT".into(),
                "-d".into(),
                "List-Unsubscribe=One-Click".into(),
                ann.clone(),
            ],
        ),
        (405, vec!["-X".into(), "DELETE".into(), ann.clone()]),
        // An oversized body (declared, and chunked with no length) and oversized headers.
        (
            413,
            vec![
                "-d".into(),
                format!("List-Unsubscribe=One-Click&pad={}", "x".repeat(5000)),
                ann.clone(),
            ],
        ),
        (
            413,
            vec![
                "-H".into(),
                "Transfer-Encoding: chunked".into(),
                "-d".into(),
                format!("List-Unsubscribe=One-Click&pad={}", "x".repeat(5000)),
                ann.clone(),
            ],
        ),
        (
            431,
            vec![
                "-H".into(),
                format!("X-Pad: {}", "x".repeat(20000)),
                ann.clone(),
            ],
        ),
    ];
    for (want, args) in &refusals {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let got = curl(&args);
        assert_eq!(got.status, *want, "{args:?}: {}", got.body);
        assert!(
            !got.body.contains("ann@example.com"),
            "a refusal reveals nothing"
        );
    }
    assert!(store_lines(&c).is_empty(), "no refusal writes");

    // A slow client: the body trickles in at 1 byte/s, past the 2 s body timeout.
    let slow = curl(&[
        "--limit-rate",
        "1",
        "-d",
        "List-Unsubscribe=One-Click",
        &ann,
    ]);
    assert_eq!(slow.status, 408, "{}", slow.body);
    assert!(store_lines(&c).is_empty());

    // The one-click POST, then the same POST again: 200 both times, one record.
    let first = one_click(&ann);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("You are unsubscribed"));
    assert_eq!(one_click(&ann).status, 200);
    assert_eq!(store_lines(&c).len(), 1, "{:?}", store_lines(&c));
    assert_eq!(listed(&c)["ann@example.com"], "unsubscribe");

    assert_eq!(curl(&[&format!("http://{}/healthz", s.addr)]).status, 200);
    let status = s.terminate();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

/// RFC 8058 allows the one-click body as multipart/form-data too (curl -F sends it so): the
/// right field records the address, any other field or value is refused and writes nothing.
#[test]
fn a_multipart_one_click_body_is_accepted_and_a_wrong_one_refused() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &[], None);
    let ann = s.url("ann@example.com", &token(SECRET, "ann@example.com"));
    for wrong in ["List-Unsubscribe=Maybe", "Unsubscribe=One-Click"] {
        let got = curl(&["-F", wrong, &ann]);
        assert_eq!(got.status, 400, "{wrong}: {}", got.body);
    }
    assert!(
        store_lines(&c).is_empty(),
        "a wrong multipart body writes nothing"
    );
    let got = curl(&["-F", "List-Unsubscribe=One-Click", &ann]);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(listed(&c)["ann@example.com"], "unsubscribe");
    assert!(s.terminate().success());
}

/// The access log: every request is there with its path and status, and no token, no
/// address, no query at all.
#[test]
fn the_access_log_never_has_the_token_or_the_address() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &[], None);
    let tok = token(SECRET, "ann@example.com");
    let url = s.url("ann@example.com", &tok);
    assert_eq!(curl(&[&url]).status, 200);
    assert_eq!(one_click(&url).status, 200);
    assert_eq!(one_click(&s.url("ann@example.com", "forged")).status, 403);
    let log = s.log_text();
    assert!(
        log.contains("method=POST path=/unsubscribe status=200"),
        "{log}"
    );
    assert!(log.contains("status=403"), "{log}");
    assert!(!log.contains(&tok) && !log.contains("forged"), "{log}");
    assert!(
        !log.contains("ann@example.com") && !log.contains("ann%40"),
        "{log}"
    );
}

/// 1,000 one-click POSTs (and 200 replays) over 50 parallel connections: each address is
/// recorded exactly once and every line of the file reads back whole.
#[test]
fn a_thousand_posts_over_fifty_connections_are_recorded_exactly_once() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &[], None);
    let addresses: Vec<String> = (0..1000).map(|i| format!("u{i}@example.com")).collect();
    let mut config = String::new();
    for a in addresses.iter().chain(addresses.iter().take(200)) {
        config.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            s.url(a, &token(SECRET, a))
        ));
    }
    let cfg = c.path().join("curl.cfg");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--parallel",
            "--parallel-max",
            "50",
            "-w",
            "%{http_code}\n",
        ])
        // The body applies to every URL of the config file.
        .args(["-d", "List-Unsubscribe=One-Click", "-K"])
        .arg(&cfg)
        .output()
        .unwrap();
    let codes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        codes.lines().filter(|l| *l == "200").count(),
        1200,
        "{codes}"
    );

    let lines = store_lines(&c);
    assert_eq!(lines.len(), 1000, "one line per address");
    let on_list = listed(&c);
    assert_eq!(
        on_list.len(),
        1000,
        "every line reads back (none torn or skipped)"
    );
    for a in &addresses {
        assert_eq!(
            on_list.get(a).map(String::as_str),
            Some("unsubscribe"),
            "{a}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{a}\t")))
                .count(),
            1,
            "{a}"
        );
    }
}

/// SIGKILL while POSTs arrive: every POST that got its 200 is in the store afterwards, and
/// the file reads back (a torn last line, if any, is skipped, never misread).
#[test]
fn sigkill_mid_load_keeps_every_acknowledged_unsubscribe() {
    let c = campaign("");
    let mut s = Serve::start(&[&c.toml], &[], None);
    let mut config = String::new();
    for i in 0..20_000 {
        let a = format!("k{i}@example.com");
        config.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            s.url(&a, &token(SECRET, &a))
        ));
    }
    let cfg = c.path().join("curl.cfg");
    std::fs::write(&cfg, config).unwrap();
    let mut client = Command::new("curl")
        .args([
            "-s",
            "--parallel",
            "--parallel-max",
            "20",
            "-w",
            "%{http_code} %{url}\n",
        ])
        .args(["-d", "List-Unsubscribe=One-Click", "-K"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut answers: Vec<String> = Vec::new();
    // Kill once 300 answers are in: the rest are arriving.
    while answers.len() < 300 {
        answers.push(lines.next().unwrap().unwrap());
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    answers.extend(lines.map(Result::unwrap));
    client.wait().unwrap();

    let acked: Vec<String> = answers
        .iter()
        .filter_map(|l| l.strip_prefix("200 "))
        .map(|u| {
            let q = u.split_once('?').unwrap().1;
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "email")
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    assert!(acked.len() >= 300, "{} acknowledged", acked.len());
    assert!(
        answers.iter().any(|l| !l.starts_with("200 ")),
        "the kill cut requests"
    );
    let on_list = listed(&c);
    for a in &acked {
        assert!(
            on_list.contains_key(a),
            "{a} got 200 but is not in the store"
        );
    }
}

/// Secret rotation: a token made with the previous secret is accepted until
/// `previous_until`, and refused after it; the current secret's tokens always work.
#[test]
fn the_previous_secret_is_accepted_only_within_its_grace_period() {
    let c = campaign("");
    std::fs::write(c.path().join("old.secret"), "old-secret\n").unwrap();
    // [unsubscribe] is already in the file; rotation keys join it.
    let toml = std::fs::read_to_string(&c.toml).unwrap().replace(
        "secret_file = \"unsub.secret\"\n",
        "secret_file = \"unsub.secret\"\nprevious_secret_file = \"old.secret\"\nprevious_until = \"2026-12-31T00:00:00Z\"\n",
    );
    std::fs::write(&c.toml, toml).unwrap();
    let old = |s: &Serve, a: &str| one_click(&s.url(a, &token("old-secret", a))).status;
    let new = |s: &Serve, a: &str| one_click(&s.url(a, &token(SECRET, a))).status;

    // 2026-12-30T23:59:59Z, one second inside the grace period.
    let within = Serve::start(&[&c.toml], &[], Some("1798675199"));
    assert_eq!(old(&within, "ann@example.com"), 200);
    assert_eq!(new(&within, "bob@example.org"), 200);
    drop(within);
    // 2026-12-31T00:00:00Z: over.
    let after = Serve::start(&[&c.toml], &[], Some("1798675200"));
    assert_eq!(old(&after, "cat@example.net"), 403);
    assert_eq!(new(&after, "dan@example.net"), 200);
    let on_list = listed(&c);
    assert!(on_list.contains_key("ann@example.com") && !on_list.contains_key("cat@example.net"));
}

/// Two campaigns on one server: a token is checked against the secret of the campaign whose
/// path it came in on, and each records into its own store.
#[test]
fn each_campaign_checks_its_own_secret_on_its_own_path() {
    let a = campaign("");
    let b = campaign("");
    std::fs::write(b.path().join("unsub.secret"), "b-secret\n").unwrap();
    let toml = std::fs::read_to_string(&b.toml)
        .unwrap()
        .replace("news.example.com/unsubscribe", "news.example.com/u/b")
        .replace("id = \"test-campaign\"", "id = \"campaign-b\"");
    std::fs::write(&b.toml, toml).unwrap();
    let s = Serve::start(&[&a.toml, &b.toml], &[], None);
    let b_url = |t: &str| format!("http://{}{}", s.addr, query("/u/b", "ann@example.com", t));
    assert_eq!(
        one_click(&b_url(&token(SECRET, "ann@example.com"))).status,
        403,
        "a's token on b's path"
    );
    assert_eq!(
        one_click(&b_url(&token("b-secret", "ann@example.com"))).status,
        200
    );
    assert!(listed(&a).is_empty());
    assert_eq!(listed(&b)["ann@example.com"], "unsubscribe");
}

/// HTTPS with a certificate: curl verifies it against the test CA. Plain HTTP on a public
/// address is refused before anything listens.
#[test]
fn https_with_a_certificate_and_no_plain_http_on_a_public_address() {
    let pki = crate::util::tls::TestPki::new();
    let c = campaign("");
    let (cert, key) = (
        pki.leaf_cert.to_str().unwrap(),
        pki.leaf_key.to_str().unwrap(),
    );
    let s = Serve::start(&[&c.toml], &["--tls-cert", cert, "--tls-key", key], None);
    let url = s
        .url("ann@example.com", &token(SECRET, "ann@example.com"))
        .replace("http://", "https://");
    let got = curl(&[
        "--cacert",
        pki.ca_pem.to_str().unwrap(),
        "-d",
        "List-Unsubscribe=One-Click",
        &url,
    ]);
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(curl(&[&url]).status, 0, "an unknown CA is refused by curl");

    let out = run(
        &[
            "unsubscribe",
            "serve",
            "--listen",
            "0.0.0.0:0",
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing to serve plain HTTP on 0.0.0.0:0"),
        "{}",
        stderr(&out)
    );
}

/// Start-up failures are clear: a port in use, a campaign file that does not load, one
/// without a store.
#[test]
fn clear_exits_on_a_port_in_use_and_bad_campaign_files() {
    let c = campaign("");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &["unsubscribe", "serve", "--listen", &addr, c.toml_str()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("another process is listening there"));

    let missing = c.path().join("nope.toml");
    let out = run(&["unsubscribe", "serve", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));

    let no_store = CampaignDir::new(&Spec::default());
    let out = run(&["unsubscribe", "serve", no_store.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no [suppression] file"),
        "{}",
        stderr(&out)
    );
}

/// A slow client that never finishes its headers is cut by the header timeout, and nothing
/// is written.
#[test]
fn a_client_that_never_finishes_its_headers_is_cut() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &["--header-timeout", "1"], None);
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    let q = query(
        "/unsubscribe",
        "ann@example.com",
        &token(SECRET, "ann@example.com"),
    );
    conn.write_all(format!("POST {q} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    // The server closes the connection: read returns (EOF or an error), not the timeout.
    let r = conn.read_to_end(&mut rest);
    assert!(
        r.is_ok()
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200"), "{rest:?}");
    assert!(store_lines(&c).is_empty());
}

/// A `send` meets an unsubscribe mid-run: while the relay holds the first message's DATA, a
/// recipient whose message has not started unsubscribes through the endpoint. That message
/// was already prepared and queued: it is not sent, and the report says `suppressed`.
#[test]
fn send_skips_a_recipient_who_unsubscribes_mid_run() {
    use crate::util::smtp::{Faults, SmtpServer};
    let smtp = SmtpServer::plain_faulty(&Faults {
        // Long enough for the POST below even on a loaded machine; the test waits it out.
        stall_data: Some((1, 15.0)),
        ..Faults::default()
    });
    let c = CampaignDir::new(&Spec {
        tail: &format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n[limits]\nconcurrency = 1\n\n{STORE}",
            smtp.port
        ),
        ..Spec::default()
    });
    let s = Serve::start(&[&c.toml], &[], None);
    let send = crate::util::mailshot()
        .args(["send", "--quiet", c.toml_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One message is in flight (journaled) and its DATA is held by the relay. Which one is
    // up to the preparers (one per core, in parallel); the other two have not started.
    let journal = c.path().join(".mailshot/test-campaign/journal");
    let all = ["ann@example.com", "bob@example.org", "cat@example.net"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let first = loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if let Some(a) = all.iter().find(|a| text.contains(&format!("\t{a}\t"))) {
            break *a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no message went in flight"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let leaver = *all.iter().rev().find(|a| **a != first).unwrap();
    let link = s.url(leaver, &token(SECRET, leaver));
    assert_eq!(one_click(&link).status, 200);
    let out = send.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = c.report("report.csv");
    for a in all {
        let row = report.iter().find(|r| r.address == a).unwrap();
        let want = if a == leaver { "suppressed" } else { "sent" };
        assert_eq!(
            row.status,
            want,
            "{a} (in flight first: {first}): {report:?}\n{}",
            std::fs::read_to_string(&journal).unwrap_or_default()
        );
    }
    let mut got: Vec<String> = smtp
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect();
    got.sort();
    let mut want: Vec<&str> = all.into_iter().filter(|a| *a != leaver).collect();
    want.sort();
    assert_eq!(got, want);
}

/// Headless Chromium opens the GET page on a phone-sized viewport, a DevTools mouse click
/// presses the button, and the confirmation page loads; only then is the address recorded.
/// Both screenshots are kept in target/tmp/unsubscribe/.
#[test]
fn chromium_clicks_the_button_and_sees_the_confirmation() {
    let c = campaign("");
    let s = Serve::start(&[&c.toml], &[], None);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("unsubscribe");
    std::fs::create_dir_all(&out_dir).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/cdp_click.py");
    let url = s.url("ann@example.com", &token(SECRET, "ann@example.com"));
    let out = Command::new("/usr/bin/python3")
        .args([script, &url])
        .arg(&out_dir)
        .arg(profile.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let before = got["before"].as_str().unwrap();
    assert!(
        before.contains("ann@example.com") && before.contains("Unsubscribe"),
        "{before}"
    );
    let after = got["after"].as_str().unwrap();
    assert!(after.contains("You are unsubscribed"), "{after}");
    for png in got["screenshots"].as_array().unwrap() {
        let bytes = std::fs::read(png.as_str().unwrap()).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 1000, "{png}");
    }
    assert_eq!(listed(&c)["ann@example.com"], "unsubscribe");
    let log = s.log_text();
    let get = log
        .find("method=GET path=/unsubscribe status=200")
        .expect("the GET");
    let post = log
        .find("method=POST path=/unsubscribe status=200")
        .expect("the click's POST");
    assert!(get < post, "{log}");
}
