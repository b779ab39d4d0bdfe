//! `--override` names preflight checks by id: an id no check has is refused before anything
//! runs, with the list of valid ids; a valid one is taken.

use crate::util::{CampaignDir, Spec, run, stderr};

/// `check` and `send` refuse an unknown id with exit code 2 (bad input) and list the ids.
#[test]
fn unknown_override_id_is_refused_with_the_valid_ids() {
    let c = CampaignDir::new(&Spec::default());
    for cmd in ["check", "send"] {
        let out = run(&[cmd, "--override", "no.such-id", c.toml_str()], &[]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = stderr(&out);
        assert!(err.contains("no.such-id"), "{cmd}: {err}");
        for id in [
            "spf.all",
            "dkim.verify",
            "tls.relay",
            "bulk.visible-unsubscribe",
        ] {
            assert!(err.contains(id), "{cmd}: the error lists {id}: {err}");
        }
    }
    // A prefix of real ids is not an id either.
    let out = run(&["check", "--override", "spf", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"spf\""), "{}", stderr(&out));
    assert!(c.eml_files("outbox").is_empty(), "nothing may be written");
    assert!(
        !c.path()
            .join(".mailshot/test-campaign/preflight.json")
            .exists(),
        "send must stop before the audit"
    );
}

/// A real id is accepted: the run goes as it does without it.
#[test]
fn known_override_id_is_accepted() {
    let c = CampaignDir::new(&Spec::default());
    let plain = run(&["check", c.toml_str()], &[]);
    let with = run(&["check", "--override", "spf.all", c.toml_str()], &[]);
    assert_eq!(with.status.code(), plain.status.code());
    assert!(
        !stderr(&with).contains("no preflight check"),
        "{}",
        stderr(&with)
    );
}

/// Two `[[smtp]]` relays with their own `sending_ips`: a (192.0.2.25 and .26) and b
/// (198.51.100.7).
const TWO_RELAYS: &str = "[[smtp]]\nname = \"a\"\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nsending_ips = [\"192.0.2.25\", \"192.0.2.26\"]\n\n[[smtp]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = 2526\ntls = \"none\"\nsending_ips = [\"198.51.100.7\"]\n";

/// The two-relay campaign, its audit asking a knot that serves news.example.com with `records`
/// (the server is returned to keep it up).
fn two_relays_against(records: &str) -> (crate::util::dns::DnsServer, CampaignDir) {
    let dns = crate::util::dns::DnsServer::start(&[("news.example.com", records)]);
    let preflight = format!("[preflight]\nnameserver = \"{}\"\n", dns.nameserver());
    let c = CampaignDir::new(&Spec {
        preflight: &preflight,
        tail: TWO_RELAYS,
        ..Spec::default()
    });
    (dns, c)
}

/// `check --format json`: the exit code and the audit.
fn check_json(c: &CampaignDir) -> (Option<i32>, serde_json::Value) {
    let out = run(&["check", "--format", "json", c.toml_str()], &[]);
    let json = serde_json::from_str(&crate::util::stdout(&out))
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", stderr(&out)));
    (out.status.code(), json)
}

/// Two relays, each with its own `sending_ips`, and a real knot serving the envelope domain,
/// whose SPF record authorizes relay a's network only. `check` gives one `spf.relay` finding
/// per relay, naming it and its addresses: a passes, b fails and alone blocks (exit 1), and
/// the bulk checklist's SPF row takes the worst relay's verdict.
#[test]
fn each_relay_gets_its_own_spf_verdict() {
    let keys = CampaignDir::new(&Spec::default());
    let records = format!(
        "@ IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n@ IN MX 10 mx\nmx IN A 192.0.2.25\n_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com\"\n{}",
        std::fs::read_to_string(&keys.zone).unwrap()
    );
    let (_dns, c) = two_relays_against(&records);
    let (code, json) = check_json(&c);
    assert_eq!(code, Some(1), "{json:#}");
    let findings = json["findings"].as_array().unwrap();
    let of = |id: &str| -> Vec<(String, String, String)> {
        findings
            .iter()
            .filter(|f| f["id"] == id)
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                (s("subject"), s("severity"), s("message"))
            })
            .collect()
    };
    let relays = of("spf.relay");
    let verdicts: Vec<(&str, &str)> = relays
        .iter()
        .map(|(subject, sev, _)| (subject.as_str(), sev.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [("relay a", "pass"), ("relay b", "fail")],
        "{relays:?}"
    );
    assert!(
        relays[0]
            .2
            .starts_with("relay a sends from 192.0.2.25, 192.0.2.26"),
        "{relays:?}"
    );
    assert!(
        relays[1]
            .2
            .contains("check_host(198.51.100.7, news.example.com) = fail"),
        "{relays:?}"
    );
    // Relay b's verdict, and the checklist row derived from it, are all that block.
    assert_eq!(
        json["blocking"],
        serde_json::json!(["spf.relay", "bulk.spf"]),
        "{json:#}"
    );
    assert_eq!(of("bulk.spf")[0].1, "fail", "the worst relay decides");

    // The human audit names the relay that blocks, and the fix authorizes its address.
    let human = run(&["check", c.toml_str()], &[]);
    assert_eq!(human.status.code(), Some(1));
    let text = crate::util::stdout(&human);
    assert!(text.contains("relay b sends from 198.51.100.7"), "{text}");
    assert!(
        text.contains("\"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.7 -all\""),
        "{text}"
    );

    // Authorizing b's address in the record (as the fix says) clears the block.
    let fixed = records.replace(
        "ip4:192.0.2.0/24 -all",
        "ip4:192.0.2.0/24 ip4:198.51.100.7 -all",
    );
    let (_dns, c) = two_relays_against(&fixed);
    let (code, json) = check_json(&c);
    assert_eq!(code, Some(0), "{json:#}");
}
