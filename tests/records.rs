//! Set-up commands: `dkim keygen` keys verify with dkimpy against the record it prints, and
//! the zone fragment of `dns records` audits clean through `check --zone`.

use crate::util::dkim::verify_with_dkimpy;
use crate::util::dns::DnsServer;
use crate::util::{CampaignDir, Spec, run, stdout};

/// Generates a key with `dkim keygen`, signs the campaign's messages with it (via preview,
/// the send code path), and verifies them with dkimpy against exactly the printed record.
fn keygen_key_verifies(algorithm: &str) {
    let c = CampaignDir::new(&Spec::default());
    let key = c.path().join("keys/new.pem");
    let out = run(
        &[
            "dkim",
            "keygen",
            "--domain",
            "news.example.com",
            "--selector",
            "s2026r",
            "--algorithm",
            algorithm,
            "--out",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let printed = stdout(&out);
    let record = printed
        .lines()
        .find(|l| l.starts_with("s2026r._domainkey.news.example.com."))
        .expect("a record line")
        .to_owned();
    for s in record.split('"').skip(1).step_by(2) {
        assert!(s.len() <= 255, "a TXT string over 255 characters");
    }
    assert!(
        printed.contains("private_key = "),
        "campaign.toml lines: {printed}"
    );

    // Use the new key for the RSA selector's slot (the record names s2026r).
    let toml = std::fs::read_to_string(&c.toml).unwrap().replace(
        "private_key = \"keys/s2026r.pem\"",
        "private_key = \"keys/new.pem\"",
    );
    std::fs::write(&c.toml, toml).unwrap();
    let preview = c.path().join("preview");
    let out = run(
        &["preview", "--out", preview.to_str().unwrap(), c.toml_str()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    let ed = std::fs::read_to_string(&c.zone)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("s2026e."))
        .collect::<Vec<_>>()
        .join("\n");
    let zone = c.path().join("printed.zone");
    std::fs::write(&zone, format!("{record}\n{ed}\n")).unwrap();
    let eml = preview.join("000002-ann@example.com.eml");
    let check = verify_with_dkimpy(&eml, &zone);
    assert!(check.ok, "{}", check.output);

    // And keygen never overwrites.
    let again = run(
        &[
            "dkim",
            "keygen",
            "--domain",
            "news.example.com",
            "--selector",
            "x",
            "--out",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn keygen_rsa_key_signs_what_dkimpy_verifies() {
    keygen_key_verifies("rsa2048");
}

#[test]
fn keygen_ed25519_key_signs_what_dkimpy_verifies() {
    keygen_key_verifies("ed25519");
}

/// A domain with nothing but an MX: the fragment supplies SPF, DKIM and DMARC, and the audit
/// through it as an overlay lets the campaign send.
#[test]
fn dns_records_audit_clean_through_the_overlay() {
    let dns = DnsServer::start(&[("news.example.com", "@ IN MX 10 mx\nmx IN A 192.0.2.25\n")]);
    let preflight = dns.preflight();
    let c = CampaignDir::new(&Spec {
        preflight: &preflight,
        ..Spec::default()
    });
    let before = run(&["check", c.toml_str()], &[]);
    assert_eq!(before.status.code(), Some(1), "the bare domain is blocked");

    let out = run(&["dns", "records", "--tls-reporting", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let fragment = stdout(&out);
    assert!(
        fragment.contains("\"v=spf1 ip4:192.0.2.25 -all\""),
        "{fragment}"
    );
    assert!(fragment.contains("v=DMARC1; p=none; rua=mailto:dmarc-reports@news.example.com"));
    for line in fragment
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
    {
        assert!(
            line.contains(" IN TXT "),
            "every record is a zone line: {line}"
        );
    }
    let zone = c.path().join("planned.zone");
    std::fs::write(&zone, &fragment).unwrap();
    let after = run(
        &["check", "--zone", zone.to_str().unwrap(), c.toml_str()],
        &[],
    );
    assert_eq!(after.status.code(), Some(0), "{}", stdout(&after));
}

/// The example audits clean with the records generated from it.
#[test]
fn the_example_audits_clean_with_its_generated_records() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/newsletter/campaign.toml"
    );
    let out = run(&["dns", "records", example], &[]);
    assert_eq!(out.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("generated.zone");
    std::fs::write(&zone, stdout(&out)).unwrap();
    let check = run(&["check", "--zone", zone.to_str().unwrap(), example], &[]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}
