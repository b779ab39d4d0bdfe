//! Self-tests proving the DNS harness is real: knotd serves the test zones (checked with kdig, an independent client), a broken zone answers SERVFAIL, and checkdmarc audits SPF and DMARC through the loopback server.

use std::process::Command;

use crate::util::dns::DnsServer;
use crate::util::interop::checkdmarc;

/// kdig (Debian's knot-dnsutils) output for one question, with the header kept so the
/// status can be checked. `+norec` because the server is authoritative, not a resolver.
fn kdig(server: &DnsServer, args: &[&str]) -> String {
    let out = Command::new("kdig")
        .arg("@127.0.0.1")
        .args([
            "-p",
            &server.port.to_string(),
            "+norec",
            "+time=3",
            "+retry=2",
        ])
        .args(args)
        .output()
        .expect("run kdig (knot-dnsutils; run tests/setup)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kdig {args:?} failed:\n{text}");
    text
}

fn status(answer: &str) -> &str {
    answer
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no status in kdig output:\n{answer}"))
}

#[test]
fn dns_harness_serves_txt_records_over_udp_and_tcp() {
    let server = DnsServer::start(&[(
        "selftest.test",
        "@ IN TXT \"v=spf1 -all\"\n\
         rel IN TXT \"relative owner\"\n\
         abs.selftest.test. IN TXT \"absolute owner\" \"second string\"\n",
    )]);
    assert_eq!(server.nameserver(), format!("127.0.0.1:{}", server.port));

    for transport in ["+notcp", "+tcp"] {
        let apex = kdig(&server, &[transport, "TXT", "selftest.test."]);
        assert_eq!(status(&apex), "NOERROR", "{apex}");
        // aa: answered from the zone itself, as the real authoritative server would.
        assert!(apex.contains(" aa"), "{apex}");
        assert!(apex.contains("\"v=spf1 -all\""), "{apex}");
    }
    let short = |name: &str| kdig(&server, &["+short", "TXT", name]).trim().to_owned();
    assert_eq!(short("rel.selftest.test."), "\"relative owner\"");
    assert_eq!(
        short("abs.selftest.test."),
        "\"absolute owner\" \"second string\""
    );
    // The harness's own records: SOA and NS with in-zone glue.
    assert_eq!(
        kdig(&server, &["+short", "A", "ns.selftest.test."]).trim(),
        "127.0.0.1"
    );
    assert_eq!(
        kdig(&server, &["+short", "NS", "selftest.test."]).trim(),
        "ns.selftest.test."
    );
    let missing = kdig(&server, &["TXT", "nothing.selftest.test."]);
    assert_eq!(status(&missing), "NXDOMAIN", "{missing}");
}

#[test]
fn dns_harness_broken_zone_answers_servfail() {
    let server =
        DnsServer::start_with_broken(&[("good.test", "@ IN TXT \"fine\"\n")], &["broken.test"]);
    for transport in ["+notcp", "+tcp"] {
        for (qtype, name) in [
            ("TXT", "broken.test."),
            ("SOA", "broken.test."),
            ("A", "deep.name.broken.test."),
            ("TXT", "_dmarc.broken.test."),
        ] {
            let a = kdig(&server, &[transport, qtype, name]);
            assert_eq!(status(&a), "SERVFAIL", "{transport} {qtype} {name}:\n{a}");
        }
    }
    // Also with RD set, as mailshot's resolver sends it.
    let rd = kdig(&server, &["+rec", "TXT", "broken.test."]);
    assert_eq!(status(&rd), "SERVFAIL", "{rd}");
    // The good zone beside it is unaffected; a name in no zone is refused.
    let good = kdig(&server, &["TXT", "good.test."]);
    assert_eq!(status(&good), "NOERROR", "{good}");
    let other = kdig(&server, &["TXT", "example.org."]);
    assert_eq!(status(&other), "REFUSED", "{other}");
    assert!(
        server
            .log()
            .contains("[broken.test.] zone event 'load' failed"),
        "{}",
        server.log()
    );
}

#[test]
fn dns_harness_checkdmarc_audits_through_loopback_server() {
    let server = DnsServer::start(&[
        (
            "interop.test",
            "@ IN TXT \"v=spf1 include:_spf.interop.test -all\"\n\
             _spf IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n\
             _dmarc IN TXT \"v=DMARC1; p=reject\"\n\
             mail IN A 192.0.2.1\n",
        ),
        // checkdmarc's DMARC tree walk from a subdomain goes up to _dmarc.test; without this
        // zone knot would REFUSE that name and checkdmarc would report an error.
        ("test", ""),
    ]);

    let r = checkdmarc(server.port, "interop.test");
    assert!(r.spf_valid, "{}", r.raw);
    assert_eq!(r.spf_lookups, Some(1), "{}", r.raw);
    assert_eq!(r.spf_void, Some(0), "{}", r.raw);
    assert_eq!(r.spf_error, None, "{}", r.raw);
    assert!(r.dmarc_valid, "{}", r.raw);
    assert_eq!(r.dmarc_p.as_deref(), Some("reject"), "{}", r.raw);
    assert_eq!(
        r.dmarc_location.as_deref(),
        Some("interop.test"),
        "{}",
        r.raw
    );
    assert_eq!(r.dmarc_error, None, "{}", r.raw);

    // A subdomain with only an A record: no SPF, and DMARC found by walking up.
    let sub = checkdmarc(server.port, "mail.interop.test");
    assert!(!sub.spf_valid, "{}", sub.raw);
    assert!(sub.spf_error.is_some(), "{}", sub.raw);
    assert!(sub.dmarc_valid, "{}", sub.raw);
    assert_eq!(
        sub.dmarc_location.as_deref(),
        Some("interop.test"),
        "{}",
        sub.raw
    );
}
