//! The RFC 9989 side of `mailshot check`, against knot serving one zone set per case: the
//! tree walk beside the public suffix list, `t=y`, obsolete tags, and a SERVFAIL under the
//! DMARC record that must make every derived finding a temperror.

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

fn check(dns: &DnsServer) -> (Option<i32>, Value) {
    let preflight = format!(
        "[preflight]\nnameserver = \"{}\"\nsending_ips = [\"192.0.2.25\"]\n",
        dns.nameserver()
    );
    let c = CampaignDir::new(&Spec {
        preflight: &preflight,
        ..Spec::default()
    });
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
        evidence.contains("news.example.com by the RFC 9989 tree walk")
            && evidence.contains("example.com by the public suffix list"),
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
