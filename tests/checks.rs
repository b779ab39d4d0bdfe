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

mod providers {
    //! The per-provider rows of `check` (Gmail, Yahoo, Microsoft) against knot serving the
    //! sending domain, with the relay's TLS probed on aiosmtpd.

    use serde_json::Value;

    use crate::util::dns::DnsServer;
    use crate::util::scenario::{PASSWORD, PASSWORD_ENV, Scenario};
    use crate::util::smtp::{Mode, SmtpServer};
    use crate::util::{CampaignDir, run, stdout};

    const SPF: &str = "@ IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";
    const REST: &str = r#"@ IN MX 10 mx
mx IN A 192.0.2.25
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@news.example.com"
"#;
    const GMAIL: &str = "https://support.google.com/a/answer/81126";
    const YAHOO: &str = "https://senders.yahooinc.com/best-practices/";
    const PROVIDERS: [(&str, &str); 3] = [
        ("gmail", GMAIL),
        ("yahoo", YAHOO),
        ("microsoft", "https://techcommunity.microsoft.com/"),
    ];
    const ROWS: [&str; 7] = [
        "spf-dkim",
        "dmarc",
        "alignment",
        "one-click",
        "visible-unsubscribe",
        "ptr",
        "tls",
    ];

    /// A campaign of `n` recipients relaying through aiosmtpd over STARTTLS, its audit asking
    /// knot only, with the relay's public address 192.0.2.25; knot serves the domain with
    /// `spf` (or none), both DKIM keys, and the relay's PTR.
    fn campaign(n: usize, spf: &str) -> (SmtpServer, CampaignDir, DnsServer) {
        campaign_broken(n, spf, &[])
    }

    /// As `campaign`, with the zones in `broken` answering SERVFAIL.
    fn campaign_broken(
        n: usize,
        spf: &str,
        broken: &[&str],
    ) -> (SmtpServer, CampaignDir, DnsServer) {
        let addresses: Vec<String> = (0..n).map(|i| format!("r{i}@example.com")).collect();
        let (server, c) = Scenario::new()
            .recipients(&addresses)
            .login()
            .smtp(Mode::Starttls);
        let dkim = std::fs::read_to_string(&c.zone).unwrap();
        let dns = DnsServer::start_with_broken(
            &[
                ("news.example.com", &format!("{spf}{REST}{dkim}")),
                ("2.0.192.in-addr.arpa", "25 IN PTR mx.news.example.com.\n"),
            ],
            broken,
        );
        let toml = std::fs::read_to_string(&c.toml).unwrap().replace(
            "[preflight]\nzone = \"dns.zone\"\nnameserver = \"none\"\n",
            &dns.preflight(),
        );
        std::fs::write(&c.toml, toml).unwrap();
        (server, c, dns)
    }

    fn check(c: &CampaignDir) -> (Option<i32>, Value) {
        let out = run(
            &["check", "--format", "json", c.toml_str()],
            &[(PASSWORD_ENV, PASSWORD)],
        );
        let j: Value = serde_json::from_str(&stdout(&out)).expect("check --format json");
        (out.status.code(), j)
    }

    /// The ids the gate blocks on.
    fn blocking(j: &Value) -> Vec<&str> {
        j["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect()
    }

    fn row<'a>(j: &'a Value, id: &str) -> &'a Value {
        let rows: Vec<&Value> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id)
            .collect();
        assert_eq!(rows.len(), 1, "{id}: {j:#}");
        rows[0]
    }

    #[test]
    fn a_good_domain_passes_every_provider_row() {
        let (_server, c, _dns) = campaign(3, SPF);
        let (code, j) = check(&c);
        assert_eq!(code, Some(0), "{j:#}");
        for (p, page) in PROVIDERS {
            for r in ROWS {
                let f = row(&j, &format!("bulk.{p}.{r}"));
                assert_eq!(f["severity"], "pass", "{p} {r}: {f:#}");
                assert_eq!(f["group"], "bulk");
                assert!(
                    f["cites"].as_str().unwrap().starts_with(page),
                    "{p} {r}: {f:#}"
                );
            }
        }
        assert_eq!(row(&j, "bulk.ptr")["severity"], "pass");
    }

    #[test]
    fn dkim_without_spf_fails_microsoft_and_in_bulk_gmail_and_yahoo() {
        // Three recipients: below 5,000 a day Gmail and Yahoo take SPF or DKIM.
        let (_server, c, _dns) = campaign(3, "");
        let (code, j) = check(&c);
        assert_eq!(code, Some(1), "{j:#}");
        let ms = row(&j, "bulk.microsoft.spf-dkim");
        assert_eq!(ms["severity"], "fail", "{ms:#}");
        assert!(
            ms["cites"]
                .as_str()
                .unwrap()
                .contains("techcommunity.microsoft.com")
        );
        assert_eq!(
            ms["enforced_by"],
            serde_json::json!(["bulk.spf", "bulk.dkim"])
        );
        for p in ["gmail", "yahoo"] {
            let f = row(&j, &format!("bulk.{p}.spf-dkim"));
            assert_eq!(f["severity"], "pass", "{p}: {f:#}");
        }
        // The gate blocks on the shared row, once, not on each provider's.
        let blocking = blocking(&j);
        assert!(blocking.contains(&"bulk.spf"), "{blocking:?}");
        assert!(
            !blocking.iter().any(|b| b.starts_with("bulk.microsoft.")),
            "{blocking:?}"
        );

        // 5,000 recipients: bulk, where every provider needs SPF and DKIM.
        let (_server, c, _dns) = campaign(5_000, "");
        let (code, j) = check(&c);
        assert_eq!(code, Some(1), "{j:#}");
        for (p, page) in PROVIDERS {
            let f = row(&j, &format!("bulk.{p}.spf-dkim"));
            assert_eq!(f["severity"], "fail", "{p}: {f:#}");
            assert!(f["cites"].as_str().unwrap().starts_with(page), "{f:#}");
            assert!(
                f["message"].as_str().unwrap().contains("SPF and DKIM"),
                "{f:#}"
            );
        }
    }

    #[test]
    fn a_servfail_under_dmarc_is_a_temperror_in_every_provider_row_and_blocks_once() {
        let (_server, c, _dns) = campaign_broken(3, SPF, &["_dmarc.news.example.com"]);
        let (code, j) = check(&c);
        assert_eq!(code, Some(1), "{j:#}");
        for p in ["gmail", "yahoo", "microsoft"] {
            for (r, shared) in [("dmarc", "bulk.dmarc"), ("alignment", "bulk.alignment")] {
                let f = row(&j, &format!("bulk.{p}.{r}"));
                assert_eq!(f["severity"], "temperror", "{p} {r}: {f:#}");
                assert_eq!(f["enforced_by"], serde_json::json!([shared]), "{f:#}");
            }
            // SPF and DKIM do not depend on the DMARC record.
            assert_eq!(row(&j, &format!("bulk.{p}.spf-dkim"))["severity"], "pass");
        }
        let blocking = blocking(&j);
        assert!(blocking.contains(&"bulk.dmarc"), "{blocking:?}");
        assert!(
            blocking.iter().all(|b| b.split('.').count() == 2),
            "no provider row blocks by itself: {blocking:?}"
        );
    }
}
