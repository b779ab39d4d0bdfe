//! `mailshot check` (and the audit `send` runs first) against a real authoritative DNS server
//! (knot) on loopback, one zone set per case.

use serde_json::Value;

use crate::util::dns::DnsServer;
use crate::util::{CampaignDir, Spec, b64, public_der, run, stderr, stdout};

const ORIGIN: &str = "news.example.com";

/// news.example.com as it should be: SPF for the relay's network, MX, DMARC at p=reject
/// with local reports, and (appended by `zone`) both DKIM keys.
const GOOD: &str = r#"@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
@ IN MX 10 mx
mx IN A 192.0.2.25
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com"
"#;

/// A campaign (outbox transport, relay address 192.0.2.25) whose audit asks `dns` only.
fn campaign(dns: &DnsServer) -> CampaignDir {
    let preflight = dns.preflight();
    CampaignDir::new(&Spec {
        preflight: &preflight,
        ..Spec::default()
    })
}

/// The zone body for news.example.com: `records`, plus the campaign's real DKIM keys unless
/// a case replaces them.
fn zone(records: &str, with_dkim: bool) -> String {
    let keys = CampaignDir::new(&Spec::default());
    let dkim = if with_dkim {
        std::fs::read_to_string(&keys.zone).unwrap()
    } else {
        String::new()
    };
    format!("{records}{dkim}")
}

fn audit(c: &CampaignDir) -> (Option<i32>, Value) {
    let out = run(&["check", "--format", "json", c.toml_str()], &[]);
    let json: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("check --format json printed no JSON ({e})"));
    assert_eq!(json["schema"], "mailshot.preflight/1");
    (out.status.code(), json)
}

/// The severities of every finding with `id`.
fn sev(json: &Value, id: &str) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .map(|f| f["severity"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_sev(json: &Value, id: &str, want: &str) {
    let got = sev(json, id);
    assert!(
        got.iter().any(|s| s == want),
        "{id}: wanted {want}, got {got:?}\n{json:#}"
    );
}

fn blocked(json: &Value) -> bool {
    json["may_send"] == false
}

#[test]
fn a_good_domain_passes_every_check() {
    let reverse = "25 IN PTR mx.news.example.com.\n";
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(GOOD, true)),
        ("2.0.192.in-addr.arpa", reverse),
    ]);
    let c = campaign(&dns);
    let (code, j) = audit(&c);
    assert_eq!(code, Some(0), "{j:#}");
    assert_eq!(j["verdict"], "pass", "{j:#}");
    assert_eq!(j["counts"]["fail"], 0);
    assert_eq!(j["counts"]["temperror"], 0);
    for id in [
        "spf.record",
        "spf.all",
        "spf.lookups",
        "spf.relay",
        "dkim.record",
        "dkim.key-match",
        "dkim.key-size",
        "dkim.verify",
        "dmarc.record",
        "dmarc.policy",
        "dmarc.align-dkim",
        "dmarc.align-spf",
        "bulk.one-click",
        "bulk.unsubscribe-signed",
        "bulk.visible-unsubscribe",
        "dns.mx",
        "dns.fcrdns",
    ] {
        assert_sev(&j, id, "pass");
    }
    // Both selectors verify end to end.
    assert_eq!(sev(&j, "dkim.verify"), ["pass", "pass"]);
}

#[test]
fn two_spf_records_fail() {
    let records = format!("{GOOD}@ IN TXT \"v=spf1 include:other.example -all\"\n");
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (code, j) = audit(&campaign(&dns));
    assert_eq!(code, Some(1));
    assert_sev(&j, "spf.record", "fail");
    assert!(blocked(&j));
}

#[test]
fn plus_all_fails() {
    let records = GOOD.replace("ip4:192.0.2.0/24 -all", "ip4:192.0.2.0/24 +all");
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "spf.all", "fail");
    assert!(blocked(&j));
}

/// The good zone whose SPF record includes _i1, which includes _i2, ... up to _i{n}: `n`
/// DNS-querying terms.
fn include_chain(n: u32) -> String {
    let mut records = GOOD.replace(
        "ip4:192.0.2.0/24 -all",
        "ip4:192.0.2.0/24 include:_i1.news.example.com -all",
    );
    for i in 1..=n {
        let next = if i < n {
            format!("include:_i{}.news.example.com ", i + 1)
        } else {
            String::new()
        };
        records.push_str(&format!(
            "_i{i} IN TXT \"v=spf1 {next}ip4:198.51.100.{i} -all\"\n"
        ));
    }
    records
}

#[test]
fn an_eleven_lookup_include_chain_fails() {
    let records = include_chain(11);
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "spf.lookups", "fail");
    let msg = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "spf.lookups")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.starts_with("11 DNS-querying terms"), "{msg}");
}

#[test]
fn an_include_loop_fails() {
    let records = GOOD.replace(
        "ip4:192.0.2.0/24 -all",
        "ip4:192.0.2.0/24 include:_a.news.example.com -all",
    ) + "_a IN TXT \"v=spf1 include:_b.news.example.com -all\"\n_b IN TXT \"v=spf1 include:_a.news.example.com -all\"\n";
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "spf.loop", "fail");
}

#[test]
fn three_void_lookups_fail() {
    let records = GOOD.replace(
        "ip4:192.0.2.0/24 -all",
        "ip4:192.0.2.0/24 a:gone1.news.example.com a:gone2.news.example.com a:gone3.news.example.com -all",
    );
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "spf.void-lookups", "fail");
}

/// The key records for this case: the real Ed25519 one, and `rsa_value` at the RSA selector.
fn dkim_case(rsa_value: &str) -> String {
    let keys = CampaignDir::new(&Spec::default());
    let ed = std::fs::read_to_string(&keys.zone)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("s2026e."))
        .collect::<Vec<_>>()
        .join("\n");
    let strings: Vec<String> = rsa_value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{GOOD}{ed}\ns2026r._domainkey IN TXT {}\n",
        strings.join(" ")
    )
}

fn real_rsa_value() -> String {
    let keys = CampaignDir::new(&Spec::default());
    let zone = std::fs::read_to_string(&keys.zone).unwrap();
    let line = zone.lines().find(|l| l.starts_with("s2026r.")).unwrap();
    // Rejoin the quoted strings of the line.
    line.split('"').skip(1).step_by(2).collect()
}

#[test]
fn a_revoked_key_fails() {
    let dns = DnsServer::start(&[(ORIGIN, &dkim_case("v=DKIM1; k=rsa; p="))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "dkim.revoked", "fail");
    assert!(blocked(&j));
}

#[test]
fn testing_mode_warns() {
    let value = real_rsa_value().replace("v=DKIM1; k=rsa;", "v=DKIM1; k=rsa; t=y;");
    let dns = DnsServer::start(&[(ORIGIN, &dkim_case(&value))]);
    let (code, j) = audit(&campaign(&dns));
    assert_sev(&j, "dkim.testing", "warn");
    assert_sev(&j, "dkim.key-match", "pass");
    assert_eq!(code, Some(0), "a warning does not block");
}

fn openssl_public(bits: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    b64(&public_der(&key))
}

#[test]
fn a_published_key_that_is_not_ours_fails() {
    let value = format!("v=DKIM1; k=rsa; p={}", openssl_public(2048));
    let dns = DnsServer::start(&[(ORIGIN, &dkim_case(&value))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "dkim.key-mismatch", "fail");
    assert!(blocked(&j));
}

#[test]
fn a_1024_bit_published_key_warns_about_its_size() {
    let value = format!("v=DKIM1; k=rsa; p={}", openssl_public(1024));
    let dns = DnsServer::start(&[(ORIGIN, &dkim_case(&value))]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "dkim.key-size", "warn");
    let size = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "dkim.key-size" && f["severity"] == "warn")
        .unwrap();
    assert!(size["message"].as_str().unwrap().contains("1024 bits"));
}

#[test]
fn no_dmarc_fails() {
    let records = GOOD.replace(
        "_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com\"\n",
        "",
    );
    // example.com is served too (empty), so the organizational fallback gets a real answer.
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(&records, true)),
        ("example.com", ""),
        ("com", ""),
    ]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "dmarc.record", "fail");
    assert_sev(&j, "bulk.dmarc", "fail");
    assert!(blocked(&j));
}

#[test]
fn p_none_warns() {
    let records = GOOD.replace("p=reject", "p=none");
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let (code, j) = audit(&campaign(&dns));
    assert_sev(&j, "dmarc.policy", "warn");
    assert_eq!(code, Some(0));
}

#[test]
fn a_misaligned_from_fails() {
    // From at another organization; DKIM and the envelope stay at news.example.com.
    let other = "_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@other.example\"\n@ IN MX 10 mx.news.example.com.\n";
    // The parents the RFC 9989 tree walk asks about for each organizational domain.
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(GOOD, true)),
        ("other.example", other),
        ("com", ""),
        ("example", ""),
    ]);
    let c = campaign(&dns);
    let text = std::fs::read_to_string(&c.toml).unwrap().replace(
        "from = \"Example News <news@news.example.com>\"",
        "from = \"Example News <news@other.example>\"",
    );
    std::fs::write(&c.toml, text).unwrap();
    let (code, j) = audit(&c);
    assert_sev(&j, "dmarc.align-dkim", "fail");
    assert_sev(&j, "dmarc.align-spf", "fail");
    assert_sev(&j, "bulk.alignment", "fail");
    assert_eq!(code, Some(1));
}

#[test]
fn a_subdomain_inherits_its_organizations_dmarc() {
    let records = GOOD.replace(
        "_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com\"\n",
        "",
    );
    let org = "_dmarc IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com\"\n";
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true)), ("example.com", org)]);
    let (code, j) = audit(&campaign(&dns));
    assert_sev(&j, "dmarc.record", "pass");
    assert_sev(&j, "dmarc.policy", "pass");
    let rec = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "dmarc.record")
        .unwrap();
    assert!(
        rec["message"].as_str().unwrap().contains("inherits"),
        "{rec}"
    );
    assert_eq!(code, Some(0));
}

#[test]
fn an_external_rua_needs_its_authorization_record() {
    let records = GOOD.replace(
        "rua=mailto:dmarc@news.example.com",
        "rua=mailto:reports@dmarc-service.example",
    );
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(&records, true)),
        ("dmarc-service.example", ""),
        ("com", ""),
        ("example", ""),
    ]);
    let (_, j) = audit(&campaign(&dns));
    assert_sev(&j, "dmarc.rua-authorization", "warn");

    let authorized = "news.example.com._report._dmarc IN TXT \"v=DMARC1\"\n";
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(&records, true)),
        ("dmarc-service.example", authorized),
        ("com", ""),
        ("example", ""),
    ]);
    let (_, j) = audit(&campaign(&dns));
    assert!(sev(&j, "dmarc.rua-authorization").is_empty(), "{j:#}");
    assert_sev(&j, "dmarc.rua", "pass");
}

#[test]
fn servfail_is_a_temperror_never_a_pass() {
    let dns = DnsServer::start_with_broken(&[], &[ORIGIN]);
    let (code, j) = audit(&campaign(&dns));
    assert_sev(&j, "spf.record", "temperror");
    assert_sev(&j, "dkim.record", "temperror");
    assert_sev(&j, "dmarc.record", "temperror");
    for id in [
        "spf.record",
        "dkim.record",
        "dmarc.record",
        "bulk.spf",
        "bulk.dkim",
        "bulk.dmarc",
    ] {
        assert!(
            !sev(&j, id).contains(&"pass".to_owned()),
            "{id} passed on SERVFAIL"
        );
    }
    assert_eq!(code, Some(1));
}

/// `send` runs the same audit: a blocking finding stops it before anything is written, and
/// an explicit override lets it through and is recorded.
#[test]
fn send_stops_on_blocking_findings_and_records_overrides() {
    let records = GOOD.replace("ip4:192.0.2.0/24 -all", "ip4:192.0.2.0/24 +all");
    let dns = DnsServer::start(&[(ORIGIN, &zone(&records, true))]);
    let c = campaign(&dns);
    let out = run(&["send", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        c.eml_files("outbox").is_empty(),
        "nothing may be written when blocked"
    );

    let out = run(&["send", "--override", "spf.all", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(c.eml_files("outbox").len(), 3);
    assert!(
        stdout(&out).contains("OVERRIDDEN: spf.all"),
        "{}",
        stdout(&out)
    );
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(c.path().join(".mailshot/test-campaign/preflight.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["overridden"], serde_json::json!(["spf.all"]));
}

/// SPF and DMARC verdicts agree with checkdmarc (an independent auditor, from PyPI) on the
/// same zones. Where the two tools disagree by design, the case says so.
#[test]
fn spf_and_dmarc_verdicts_agree_with_checkdmarc() {
    use crate::util::interop::checkdmarc;
    let chain = include_chain(11);
    let cases: Vec<(&str, String)> = vec![
        ("good", GOOD.to_owned()),
        ("p=none", GOOD.replace("p=reject", "p=none")),
        (
            "two SPF records",
            format!("{GOOD}@ IN TXT \"v=spf1 -all\"\n"),
        ),
        ("11 lookups", chain),
        (
            "include loop",
            GOOD.replace("ip4:192.0.2.0/24 -all", "include:_a.news.example.com -all")
                + "_a IN TXT \"v=spf1 include:_b.news.example.com -all\"\n_b IN TXT \"v=spf1 include:_a.news.example.com -all\"\n",
        ),
        (
            "3 void lookups",
            GOOD.replace(
                "ip4:192.0.2.0/24 -all",
                "a:gone1.news.example.com a:gone2.news.example.com a:gone3.news.example.com -all",
            ),
        ),
        (
            "no DMARC",
            GOOD.replace(
                "_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com\"\n",
                "",
            ),
        ),
    ];
    // SPF validity as RFC 7208 sees it (what checkdmarc's `valid` means); `+all` or `?all`
    // are policy findings in mailshot, not record errors, so they are left out here.
    let spf_ids = [
        "spf.record",
        "spf.syntax",
        "spf.lookups",
        "spf.loop",
        "spf.void-lookups",
    ];
    for (name, records) in cases {
        // checkdmarc walks _dmarc up to the top-level domain: serve the parents (empty).
        let dns = DnsServer::start(&[
            (ORIGIN, &zone(&records, true)),
            ("example.com", ""),
            ("com", ""),
        ]);
        let (_, ours) = audit(&campaign(&dns));
        let theirs = checkdmarc(dns.port, ORIGIN);
        let our_spf_valid = spf_ids.iter().all(|id| {
            !sev(&ours, id)
                .iter()
                .any(|s| s == "fail" || s == "temperror")
        });
        assert_eq!(
            our_spf_valid, theirs.spf_valid,
            "{name}: SPF validity differs\nmailshot: {ours:#}\ncheckdmarc: {}",
            theirs.raw
        );
        let our_dmarc_valid = sev(&ours, "dmarc.record").iter().any(|s| s == "pass");
        assert_eq!(
            our_dmarc_valid, theirs.dmarc_valid,
            "{name}: DMARC validity differs\ncheckdmarc: {}",
            theirs.raw
        );
        if our_spf_valid {
            // The lookup count both tools report for a valid record.
            let ours_n: u32 = ours["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == "spf.lookups")
                .and_then(|f| f["message"].as_str())
                .and_then(|m| m.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            assert_eq!(
                Some(ours_n),
                theirs.spf_lookups,
                "{name}: lookup counts differ\n{}",
                theirs.raw
            );
        }
        if let Some(p) = theirs.dmarc_p.as_deref() {
            let policy = if p == "none" { "warn" } else { "pass" };
            assert_sev(&ours, "dmarc.policy", policy);
        }
    }
}

/// A fresh RSA private key of `bits` in `dir`, as openssl writes it: PKCS#8, or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`) with `traditional`.
fn openssl_private(dir: &std::path::Path, bits: u32, traditional: bool) -> std::path::PathBuf {
    let key = dir.join(format!("rsa{bits}.pem"));
    let mut cmd = std::process::Command::new("openssl");
    if traditional {
        cmd.args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg(bits.to_string());
    } else {
        cmd.args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
            .arg(format!("rsa_keygen_bits:{bits}"))
            .arg("-out")
            .arg(&key);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key
}

/// The campaign with its RSA key (selector s2026r) replaced by a new RSA-`bits` key, and a
/// server publishing GOOD with that key's record and the real Ed25519 one.
fn weak_key_campaign(bits: u32, traditional: bool) -> (DnsServer, CampaignDir) {
    let tmp = tempfile::tempdir().unwrap();
    let key = openssl_private(tmp.path(), bits, traditional);
    let value = format!("v=DKIM1; k=rsa; p={}", b64(&public_der(&key)));
    let dns = DnsServer::start(&[(ORIGIN, &dkim_case(&value))]);
    let c = campaign(&dns);
    std::fs::copy(&key, c.path().join("keys/s2026r.pem")).unwrap();
    (dns, c)
}

/// The one finding with `id` and `severity`.
fn finding<'a>(json: &'a Value, id: &str, severity: &str) -> &'a Value {
    let found: Vec<&Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id && f["severity"] == severity)
        .collect();
    assert_eq!(found.len(), 1, "one {severity} {id}\n{json:#}");
    found[0]
}

/// A configured RSA-1024 key whose record is published is a finding with its fix, not a
/// reason to stop: the rest of the audit runs (with the key's public half) and `check` exits
/// 1. `send` refuses it, even when told to override it, and writes nothing.
#[test]
fn a_weak_configured_key_is_a_finding_and_send_refuses_it() {
    let (_dns, c) = weak_key_campaign(1024, false);
    let (code, j) = audit(&c);
    assert_eq!(code, Some(1), "{j:#}");
    let weak = finding(&j, "dkim.key-strength", "fail");
    assert_eq!(weak["subject"], "s=s2026r d=news.example.com");
    let message = weak["message"].as_str().unwrap();
    assert!(message.contains("RSA-1024"), "{message}");
    assert!(
        message.contains("RFC 8301") && message.contains("Gmail"),
        "{message}"
    );
    let fix = weak["fix"].as_str().unwrap();
    assert!(
        fix.starts_with("mailshot dkim keygen --domain news.example.com --selector s2026r"),
        "{fix}"
    );
    // The Ed25519 key is one mailshot signs with.
    finding(&j, "dkim.key-strength", "pass");
    // The published record is the weak key's public half, as mailshot derived it.
    assert_eq!(sev(&j, "dkim.key-mismatch"), Vec::<String>::new(), "{j:#}");
    assert_eq!(sev(&j, "dkim.key-match"), ["pass", "pass"], "{j:#}");
    // The rest of the audit ran.
    for (id, want) in [
        ("spf.record", "pass"),
        ("spf.relay", "pass"),
        ("dmarc.record", "pass"),
        ("dmarc.policy", "pass"),
        ("tls.relay", "info"),
        ("bulk.dkim", "fail"),
    ] {
        assert_sev(&j, id, want);
    }
    // The human report says the same.
    let human = run(&["check", c.toml_str()], &[]);
    assert_eq!(human.status.code(), Some(1));
    let text = stdout(&human);
    assert!(
        text.contains("dkim.key-strength")
            && text.contains("mailshot dkim keygen --domain news.example.com --selector s2026r"),
        "{text}"
    );

    // `dns records` does not offer the weak key's record for publishing, only the way out.
    let records = run(&["dns", "records", c.toml_str()], &[]);
    assert_eq!(records.status.code(), Some(0), "{}", stderr(&records));
    let zone = stdout(&records);
    assert!(!zone.contains("s2026r._domainkey"), "{zone}");
    assert!(
        zone.contains("; s=s2026r d=news.example.com: not published")
            && zone.contains("mailshot dkim keygen --domain news.example.com"),
        "{zone}"
    );
    assert!(zone.contains("s2026e._domainkey"), "{zone}");

    for args in [
        vec!["send", c.toml_str()],
        vec!["send", "--override", "dkim.key-strength", c.toml_str()],
    ] {
        let out = run(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("not sending") && err.contains("dkim.key-strength"),
            "{err}"
        );
        assert!(
            c.eml_files("outbox").is_empty(),
            "{args:?}: nothing may be written"
        );
    }
    let out = run(
        &["send", "--override", "dkim.key-strength", c.toml_str()],
        &[],
    );
    assert!(stderr(&out).contains("--override dkim.key-strength is ignored"));
}

/// The same for a PKCS#1 (`BEGIN RSA PRIVATE KEY`) key under 1024 bits: receivers must not
/// accept it at all, and the finding says so.
#[test]
fn a_pkcs1_key_under_1024_bits_is_a_finding_too() {
    let (_dns, c) = weak_key_campaign(768, true);
    let (code, j) = audit(&c);
    assert_eq!(code, Some(1), "{j:#}");
    let weak = finding(&j, "dkim.key-strength", "fail");
    let message = weak["message"].as_str().unwrap();
    assert!(
        message.contains("RSA-768") && message.contains("must not accept"),
        "{message}"
    );
    assert_eq!(sev(&j, "dkim.key-match"), ["pass", "pass"], "{j:#}");
}

/// A SERVFAIL on one selector's record: a temperror in the record and key-match findings
/// and in the bulk checklist's DKIM row, and nowhere a fix asking to publish a record.
#[test]
fn servfail_on_a_selector_is_a_temperror_in_what_derives_from_it() {
    let keys = CampaignDir::new(&Spec::default());
    let ed: String = std::fs::read_to_string(&keys.zone)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("s2026e."))
        .collect();
    let dns = DnsServer::start_with_broken(
        &[(ORIGIN, &format!("{GOOD}{ed}\n"))],
        &["s2026r._domainkey.news.example.com"],
    );
    let (code, j) = audit(&campaign(&dns));
    assert_eq!(code, Some(1), "{j:#}");
    let selector = "s=s2026r d=news.example.com";
    for id in ["dkim.record", "dkim.key-match"] {
        let of_selector: Vec<&Value> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id && f["subject"] == selector)
            .collect();
        assert_eq!(of_selector.len(), 1, "{id}\n{j:#}");
        assert_eq!(of_selector[0]["severity"], "temperror", "{id}\n{j:#}");
    }
    assert_eq!(sev(&j, "bulk.dkim"), ["temperror"], "{j:#}");
    // The other selector is still checked.
    assert_sev(&j, "dkim.verify", "pass");
    for f in j["findings"].as_array().unwrap() {
        let derived = f["group"] == "dkim" || f["id"] == "bulk.dkim";
        let fix = f["fix"].as_str().unwrap_or_default();
        assert!(
            !(derived && fix.contains("publish")),
            "a temperror must not ask to publish: {f:#}"
        );
        assert!(f["id"] != "dkim.record" || f["severity"] != "fail", "{f:#}");
    }
}

/// One resolver: with a named nameserver, reverse DNS and the way back are asked of it, and
/// neither this machine's hosts file nor the resolver library's built-in `localhost` answers
/// (RFC 6761) take part. The server has no PTR for 127.0.0.1; it has one for 127.0.0.2
/// naming `localhost.`, and a `localhost` zone whose A record is 127.0.0.2, so only an answer
/// from the server confirms it.
#[test]
fn reverse_dns_asks_the_named_nameserver_only() {
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(GOOD, true)),
        ("0.0.127.in-addr.arpa", "2 IN PTR localhost.\n"),
        ("localhost", "@ IN A 127.0.0.2\n"),
    ]);
    let preflight = format!(
        "[preflight]\nnameserver = \"{}\"\nsending_ips = [\"127.0.0.1\", \"127.0.0.2\"]\n",
        dns.nameserver()
    );
    let c = CampaignDir::new(&Spec {
        preflight: &preflight,
        ..Spec::default()
    });
    let (_, j) = audit(&c);
    let fcrdns = |ip: &str| -> Value {
        let of: Vec<&Value> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == "dns.fcrdns" && f["subject"] == ip)
            .collect();
        assert_eq!(of.len(), 1, "{ip}\n{j:#}");
        of[0].clone()
    };
    let one = fcrdns("127.0.0.1");
    assert_eq!(one["severity"], "warn", "{one:#}");
    let message = one["message"].as_str().unwrap();
    assert!(
        message.contains("no PTR") && !message.contains("localhost"),
        "{message}"
    );
    let two = fcrdns("127.0.0.2");
    assert_eq!(two["severity"], "pass", "{two:#}");
    assert_eq!(two["message"], "127.0.0.2 -> localhost. -> 127.0.0.2");
}

/// A name only this machine's hosts file knows (not `localhost`, which RFC 6761 covers
/// above), if it has one: Debian writes the host's own name there.
fn name_only_in_hosts_file() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(|l| l.split_whitespace().skip(1).map(str::to_ascii_lowercase))
        .find(|n| {
            let n = n.trim_end_matches('.');
            n != "localhost" && !n.ends_with(".localhost") && !n.starts_with("ip6-")
        })
}

/// The way back from a PTR name that only the hosts file knows is asked of the nameserver,
/// which refuses it (it serves no such zone): unknown, not an answer from the hosts file.
#[test]
fn a_name_in_the_hosts_file_is_not_resolved_with_a_named_nameserver() {
    let Some(name) = name_only_in_hosts_file() else {
        eprintln!("skipped: /etc/hosts names nothing but localhost here");
        return;
    };
    let dns = DnsServer::start(&[
        (ORIGIN, &zone(GOOD, true)),
        ("2.0.192.in-addr.arpa", &format!("25 IN PTR {name}.\n")),
    ]);
    let (_, j) = audit(&campaign(&dns));
    let ptr: Vec<&Value> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "dns.fcrdns")
        .collect();
    assert_eq!(ptr.len(), 1, "{j:#}");
    assert_eq!(ptr[0]["severity"], "temperror", "{name}: {:#}", ptr[0]);
    let message = ptr[0]["message"].as_str().unwrap();
    assert!(message.contains("resolving it back failed"), "{message}");
}
