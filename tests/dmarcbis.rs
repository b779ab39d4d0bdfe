//! The RFC 9989 side of `mailshot check`, against knot serving one zone set per case: the
//! tree walk beside the public suffix list (psd=y, psd=n, np), the organizational domain it
//! gives to alignment and to external rua authorization, a record without p=, `t=y`, obsolete
//! tags, and a SERVFAIL under the DMARC record that must make every derived finding a
//! temperror.

use serde_json::Value;

use crate::util::dns::DnsServer;
use crate::util::{CampaignDir, Spec, run, stdout};

/// news.example.com with SPF, MX and the campaign's DKIM keys; DMARC per case.
fn zone(dmarc: &str) -> String {
    let keys = CampaignDir::new(&Spec::default());
    format!(
        "@ IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n@ IN MX 10 mx\nmx IN A 192.0.2.25\n{dmarc}{}",
        std::fs::read_to_string(&keys.zone).unwrap()
    )
}

/// The campaign's DKIM key records, moved from news.example.com to `domain`.
fn keys_at(domain: &str) -> String {
    let keys = CampaignDir::new(&Spec::default());
    std::fs::read_to_string(&keys.zone)
        .unwrap()
        .replace("news.example.com.", &format!("{domain}."))
}

fn check(dns: &DnsServer) -> (Option<i32>, Value) {
    check_as(
        dns,
        "news.example.com",
        "news.example.com",
        "news.example.com",
    )
}

/// `check` with the From domain, the return_path domain and the DKIM d= moved.
fn check_as(dns: &DnsServer, from: &str, envelope: &str, dkim: &str) -> (Option<i32>, Value) {
    let preflight = dns.preflight();
    let c = CampaignDir::new(&Spec {
        preflight: &preflight,
        ..Spec::default()
    });
    let toml = std::fs::read_to_string(&c.toml)
        .unwrap()
        .replace("<news@news.example.com>", &format!("<news@{from}>"))
        .replace("bounces@news.example.com", &format!("bounces@{envelope}"))
        .replace(
            "domain = \"news.example.com\"",
            &format!("domain = \"{dkim}\""),
        );
    std::fs::write(&c.toml, toml).unwrap();
    let out = run(&["check", "--format", "json", c.toml_str()], &[]);
    let json: Value = serde_json::from_str(&stdout(&out)).expect("check --format json");
    (out.status.code(), json)
}

fn finding<'a>(j: &'a Value, id: &str) -> Vec<&'a Value> {
    j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// The message of the only finding with `id`.
fn message(j: &Value, id: &str) -> String {
    let f = finding(j, id);
    assert_eq!(f.len(), 1, "{id}: {j:#}");
    f[0]["message"].as_str().unwrap().to_owned()
}

/// Asserts that `text` contains every one of `parts`.
fn says(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "missing {p:?} in:\n{text}");
    }
}

fn sev(j: &Value, id: &str) -> Vec<String> {
    finding(j, id)
        .iter()
        .map(|f| f["severity"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn psd_n_below_the_psl_answer_is_reported_with_both() {
    // The From domain marks itself an organizational domain: the tree walk stops there, the
    // public suffix list still says example.com.
    let dns = DnsServer::start(&[
        (
            "news.example.com",
            &zone("_dmarc IN TXT \"v=DMARC1; p=reject; psd=n; rua=mailto:d@news.example.com\"\n"),
        ),
        ("com", "_dmarc.example.com. IN TXT \"v=DMARC1; p=none\"\n"),
    ]);
    let (code, j) = check(&dns);
    assert_eq!(sev(&j, "dmarc.discovery"), ["warn"], "{j:#}");
    let f = finding(&j, "dmarc.discovery")[0];
    let evidence = f["evidence"].as_str().unwrap();
    assert!(
        evidence.contains(
            "news.example.com (by the RFC 9989 tree walk: _dmarc.news.example.com has psd=n) for RFC 9989 receivers"
        ) && evidence.contains("example.com by the public suffix list for RFC 7489 receivers"),
        "{evidence}"
    );
    // A difference to know about, not a reason to stop.
    assert_eq!(code, Some(0), "{j:#}");
}

#[test]
fn the_walk_and_the_psl_agree_when_the_parent_publishes_too() {
    // Records at the From domain and at its parent: the walk's organizational domain is the
    // record with the fewest labels, example.com, as the public suffix list says.
    let dns = DnsServer::start(&[
        (
            "news.example.com",
            &zone("_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:d@news.example.com\"\n"),
        ),
        ("com", "_dmarc.example.com. IN TXT \"v=DMARC1; p=none\"\n"),
    ]);
    let (_, j) = check(&dns);
    assert_eq!(sev(&j, "dmarc.discovery"), ["info"], "{j:#}");
    let msg = finding(&j, "dmarc.discovery")[0]["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("organizational domain example.com"), "{msg}");
}

#[test]
fn a_lone_subdomain_record_is_its_own_organizational_domain_by_the_walk() {
    // Only _dmarc.news.example.com exists: RFC 9989 makes news.example.com the
    // organizational domain, the public suffix list example.com. Both are reported.
    let dns = DnsServer::start(&[
        (
            "news.example.com",
            &zone("_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:d@news.example.com\"\n"),
        ),
        ("com", ""),
    ]);
    let (_, j) = check(&dns);
    assert_eq!(sev(&j, "dmarc.discovery"), ["warn"], "{j:#}");
}

#[test]
fn t_y_and_obsolete_tags_warn() {
    let dns = DnsServer::start(&[
        (
            "news.example.com",
            &zone(
                "_dmarc IN TXT \"v=DMARC1; p=reject; t=y; pct=50; ri=3600; rua=mailto:d@news.example.com\"\n",
            ),
        ),
        ("com", ""),
    ]);
    let (_, j) = check(&dns);
    let t = finding(&j, "dmarc.testing");
    assert_eq!(t.len(), 1, "{j:#}");
    assert!(
        t[0]["message"]
            .as_str()
            .unwrap()
            .contains("p=reject lowered by t=y to quarantine")
    );
    assert_eq!(sev(&j, "dmarc.obsolete-tag"), ["warn", "warn"], "{j:#}");
}

#[test]
fn servfail_under_the_dmarc_record_is_a_temperror_everywhere_it_leads() {
    // _dmarc.news.example.com is its own (broken) zone: knot answers SERVFAIL for it.
    let dns = DnsServer::start_with_broken(
        &[("news.example.com", &zone("")), ("com", "")],
        &["_dmarc.news.example.com"],
    );
    let (code, j) = check(&dns);
    for id in [
        "dmarc.record",
        "dmarc.discovery",
        "dmarc.align-dkim",
        "dmarc.align-spf",
        "bulk.dmarc",
        "bulk.alignment",
    ] {
        assert_eq!(sev(&j, id), ["temperror"], "{id}: {j:#}");
    }
    // Nothing tells the user to change a record that may be fine.
    for f in j["findings"].as_array().unwrap() {
        if f["group"] == "dmarc" {
            assert_ne!(f["severity"], "fail", "{f:#}");
        }
    }
    assert_eq!(code, Some(1));
}

/// gov.example publishes psd=y, as a public suffix operator would; the public suffix list does
/// not know it, so RFC 7489 receivers see gov.example as one organization.
fn psd_zone() -> String {
    let host = "IN MX 10 mx.health\n";
    let spf = "IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";
    format!(
        "_dmarc IN TXT \"v=DMARC1; p=reject; psd=y\"\nmx.health IN A 192.0.2.25\nhealth {host}health {spf}other {host}other {spf}{}{}",
        keys_at("health.gov.example"),
        keys_at("other.gov.example")
    )
}

#[test]
fn psd_y_makes_two_customers_of_a_suffix_two_organizations_for_the_walk_only() {
    let dns = DnsServer::start(&[("gov.example", &psd_zone()), ("example", "")]);
    // DKIM at the From domain, the envelope at the other customer of gov.example.
    let (code, j) = check_as(
        &dns,
        "health.gov.example",
        "other.gov.example",
        "health.gov.example",
    );
    assert_eq!(sev(&j, "dmarc.align-dkim"), ["pass"], "{j:#}");
    assert_eq!(sev(&j, "dmarc.align-spf"), ["warn"], "{j:#}");
    says(
        &message(&j, "dmarc.align-spf"),
        &[
            "envelope domain other.gov.example does not align with From health.gov.example for RFC 9989 receivers, but does for RFC 7489 receivers",
            "other.gov.example is under other.gov.example (by the RFC 9989 tree walk: _dmarc.gov.example has psd=y, so the organizational domain is one label below it)",
            "health.gov.example under health.gov.example (by the RFC 9989 tree walk: _dmarc.gov.example has psd=y",
            "but the public suffix list puts other.gov.example under gov.example and health.gov.example under gov.example",
        ],
    );
    // The suffix's own policy applies to its customer: found by both, named with both.
    assert_eq!(sev(&j, "dmarc.record"), ["pass"], "{j:#}");
    says(
        &message(&j, "dmarc.record"),
        &[
            "inherits _dmarc.gov.example's",
            "the same record at the organizational domain gov.example (by the public suffix list)",
        ],
    );
    assert_eq!(sev(&j, "dmarc.discovery"), ["warn"], "{j:#}");
    says(
        &message(&j, "dmarc.discovery"),
        &[
            "organizational domain health.gov.example (by the RFC 9989 tree walk: _dmarc.gov.example has psd=y",
        ],
    );
    assert_eq!(code, Some(0), "{j:#}");

    // Sign as the other customer too: RFC 7489 receivers still pass DMARC, RFC 9989 ones fail it.
    let (code, j) = check_as(
        &dns,
        "health.gov.example",
        "other.gov.example",
        "other.gov.example",
    );
    for id in ["dmarc.align-dkim", "dmarc.align-spf"] {
        assert_eq!(sev(&j, id), ["fail"], "{id}: {j:#}");
        says(
            &message(&j, id),
            &[
                "for RFC 9989 receivers, but does for RFC 7489 receivers (relaxed)",
                ". No identifier aligns for RFC 9989 receivers, so DMARC fails there",
                "(by the RFC 9989 tree walk: _dmarc.gov.example has psd=y",
                "the public suffix list puts other.gov.example under gov.example",
            ],
        );
    }
    assert_eq!(sev(&j, "bulk.alignment"), ["fail"], "{j:#}");
    assert_eq!(code, Some(1), "{j:#}");
}

/// news.example.com marks itself an organizational domain (psd=n) and sends its reports to
/// its parent, example.com: one organization by the public suffix list, two by the walk.
fn psd_n_zones(authorized: bool) -> DnsServer {
    let auth = if authorized {
        "news.example.com._report._dmarc IN TXT \"v=DMARC1\"\n"
    } else {
        ""
    };
    let parent = format!(
        "@ IN MX 10 mx.news.example.com.\n@ IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n_dmarc IN TXT \"v=DMARC1; p=none\"\n{auth}"
    );
    DnsServer::start(&[
        (
            "news.example.com",
            &zone("_dmarc IN TXT \"v=DMARC1; p=reject; psd=n; rua=mailto:d@example.com\"\n"),
        ),
        ("example.com", &parent),
        ("com", ""),
    ])
}

#[test]
fn psd_n_decides_alignment_and_the_external_rua_authorization() {
    let dns = psd_n_zones(false);
    let (code, j) = check_as(&dns, "news.example.com", "example.com", "news.example.com");
    assert_eq!(sev(&j, "dmarc.align-dkim"), ["pass"], "{j:#}");
    assert_eq!(sev(&j, "dmarc.align-spf"), ["warn"], "{j:#}");
    says(
        &message(&j, "dmarc.align-spf"),
        &[
            "envelope domain example.com does not align with From news.example.com for RFC 9989 receivers, but does for RFC 7489 receivers",
            "example.com is under example.com (by the RFC 9989 tree walk: _dmarc.example.com is the record with the fewest labels above example.com)",
            "news.example.com under news.example.com (by the RFC 9989 tree walk: _dmarc.news.example.com has psd=n)",
            "but the public suffix list puts example.com under example.com and news.example.com under example.com",
        ],
    );
    // Reports to the parent cross organizations by the walk: without the authorization record
    // RFC 9989 receivers send none, RFC 7489 receivers (one organization by the list) still do.
    assert_eq!(sev(&j, "dmarc.rua-authorization"), ["warn"], "{j:#}");
    says(
        &message(&j, "dmarc.rua-authorization"),
        &[
            "reports go to d@example.com, another organization than news.example.com by the RFC 9989 tree walk",
            "news.example.com is under news.example.com (by the RFC 9989 tree walk: _dmarc.news.example.com has psd=n)",
            "news.example.com._report._dmarc.example.com does not authorize it: RFC 9989 receivers will not send them",
            "RFC 7489 receivers still send them, because the public suffix list puts news.example.com under example.com and example.com under example.com",
        ],
    );
    assert!(sev(&j, "dmarc.rua").is_empty(), "{j:#}");
    assert_eq!(code, Some(0), "{j:#}");

    let dns = psd_n_zones(true);
    let (_, j) = check_as(&dns, "news.example.com", "example.com", "news.example.com");
    assert!(sev(&j, "dmarc.rua-authorization").is_empty(), "{j:#}");
    assert_eq!(sev(&j, "dmarc.rua"), ["pass"], "{j:#}");
    says(
        &message(&j, "dmarc.rua"),
        &[
            "news.example.com._report._dmarc.example.com authorizes news.example.com",
            "(by the RFC 9989 tree walk: _dmarc.news.example.com has psd=n)",
            "so RFC 7489 receivers judge otherwise",
        ],
    );
}

#[test]
fn np_applies_to_a_from_domain_that_does_not_exist() {
    // example.com's record has a weak sp= and a strict np=; ghost.example.com has no A, AAAA
    // or MX record. DKIM and the envelope stay at news.example.com.
    let org = format!(
        "_dmarc IN TXT \"v=DMARC1; p=reject; sp=none; np=reject; rua=mailto:d@example.com\"\nnews IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\nnews IN MX 10 mx.news\nmx.news IN A 192.0.2.25\n{}",
        keys_at("news.example.com")
    );
    let dns = DnsServer::start(&[("example.com", &org), ("com", "")]);
    let (_, j) = check_as(
        &dns,
        "ghost.example.com",
        "news.example.com",
        "news.example.com",
    );
    // RFC 7489 knows no np: its receivers apply sp=none, so the policy warns with both.
    assert_eq!(sev(&j, "dmarc.policy"), ["warn"], "{j:#}");
    says(
        &message(&j, "dmarc.policy"),
        &[
            "RFC 9989 receivers apply np=reject from _dmarc.example.com (ghost.example.com has no A, AAAA or MX record, so np= applies)",
            "RFC 7489 receivers, going by the organizational domain example.com (by the public suffix list), apply sp=none from _dmarc.example.com",
        ],
    );
    assert_eq!(sev(&j, "dmarc.record"), ["pass"], "{j:#}");
    says(
        &message(&j, "dmarc.record"),
        &[
            "ghost.example.com has no record of its own and inherits _dmarc.example.com's",
            "the organizational domain example.com (by the public suffix list)",
        ],
    );
    for (id, who) in [
        ("dmarc.align-dkim", "DKIM d=news.example.com"),
        ("dmarc.align-spf", "envelope domain news.example.com"),
    ] {
        assert_eq!(sev(&j, id), ["pass"], "{id}: {j:#}");
        says(
            &message(&j, id),
            &[
                &format!("{who} aligns with From ghost.example.com (relaxed)"),
                "both under example.com (by the RFC 9989 tree walk: _dmarc.example.com is the record with the fewest labels above",
                "the public suffix list puts news.example.com under example.com and ghost.example.com under example.com too",
            ],
        );
    }
    assert_eq!(sev(&j, "dmarc.discovery"), ["warn"], "{j:#}");
}

#[test]
fn a_record_without_p_is_p_none_not_a_failure() {
    for (record, severity, older) in [
        (
            "v=DMARC1; rua=mailto:d@news.example.com",
            "info",
            "RFC 7489 receivers do the same because rua= names a report address",
        ),
        (
            "v=DMARC1; adkim=s",
            "warn",
            "this record has none, so they apply no DMARC at all",
        ),
    ] {
        let dns = DnsServer::start(&[
            (
                "news.example.com",
                &zone(&format!("_dmarc IN TXT \"{record}\"\n")),
            ),
            ("com", ""),
        ]);
        let (_, j) = check(&dns);
        assert_eq!(sev(&j, "dmarc.syntax"), [severity], "{record}: {j:#}");
        says(
            &message(&j, "dmarc.syntax"),
            &["no p= tag: RFC 9989 receivers read it as p=none", older],
        );
        assert_eq!(sev(&j, "dmarc.record"), ["pass"], "{record}: {j:#}");
        assert_eq!(sev(&j, "dmarc.policy"), ["warn"], "{record}: {j:#}");
        says(
            &message(&j, "dmarc.policy"),
            &[
                "RFC 9989 receivers apply p=none (the record has no p=, which RFC 9989 reads as none)",
            ],
        );
        for f in j["findings"].as_array().unwrap() {
            if f["group"] == "dmarc" {
                assert_ne!(f["severity"], "fail", "{record}: {f:#}");
            }
        }
    }
}

#[test]
fn servfail_above_the_record_makes_relaxed_alignment_a_temperror() {
    // The policy is found at news.example.com, but the walk for the organizational domain
    // goes on to _dmarc.example.com, which fails: relaxed alignment of the envelope's
    // subdomain is unknown, not a failure. DKIM d= is the From domain itself: no walk needed.
    let dns = DnsServer::start_with_broken(
        &[(
            "news.example.com",
            &zone(
                "_dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:d@news.example.com\"\nbounces IN MX 10 mx\nbounces IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n",
            ),
        )],
        &["example.com"],
    );
    let (code, j) = check_as(
        &dns,
        "news.example.com",
        "bounces.news.example.com",
        "news.example.com",
    );
    assert_eq!(sev(&j, "dmarc.record"), ["pass"], "{j:#}");
    assert_eq!(sev(&j, "dmarc.align-dkim"), ["pass"], "{j:#}");
    assert_eq!(sev(&j, "dmarc.align-spf"), ["temperror"], "{j:#}");
    // The discovery finding says the organizational domain is unknown, without turning a
    // policy that was found into a temperror: the alignment that needed it already is one.
    let discovery = message(&j, "dmarc.discovery");
    assert!(
        discovery.contains("organizational domain unknown"),
        "{discovery}"
    );
    says(
        &message(&j, "dmarc.align-spf"),
        &[
            "alignment with From news.example.com is unknown for RFC 9989 receivers, aligned for RFC 7489 receivers",
            "the RFC 9989 tree walk for their organizational domains failed",
            "_dmarc.example.com",
        ],
    );
    assert_eq!(sev(&j, "bulk.alignment"), ["temperror"], "{j:#}");
    assert_eq!(code, Some(1), "{j:#}");
}
