//! Test PKI for the loopback SMTP servers: a trusted CA, a leaf it signs for `localhost`/127.0.0.1, and an unrelated CA for negative tests.
// Not every test uses every field; the harness is shared.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// PEM files on disk, removed with `dir`.
///
/// The server presents `leaf_cert`/`leaf_key`; a client that trusts `ca_pem`
/// must accept it, one that trusts only `other_ca_pem` must refuse it.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    pub leaf_cert: PathBuf,
    pub leaf_key: PathBuf,
    pub other_ca_pem: PathBuf,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("mailshot-pki-")
            .tempdir()
            .expect("create PKI tempdir");

        // Fresh keys every run: nothing secret or expiring lives in the repo.
        let (ca_params, ca_key) = ca("mailshot test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign test CA");
        let issuer = Issuer::new(ca_params, ca_key);

        // rustls (webpki) refuses a CA certificate used as the end-entity
        // certificate, so the server gets a separate non-CA leaf.
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf SANs");
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        set_validity(&mut leaf);
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("sign leaf");

        // Same shape as the trusted CA but a different key and name: a client
        // trusting only this one must fail verification of the leaf.
        let (other_params, other_key) = ca("mailshot untrusted CA");
        let other_cert = other_params
            .self_signed(&other_key)
            .expect("self-sign other CA");

        let ca_pem = write(dir.path(), "ca.pem", &ca_cert.pem());
        let leaf_cert = write(dir.path(), "leaf.pem", &leaf_cert.pem());
        let leaf_key = write(dir.path(), "leaf.key", &leaf_key.serialize_pem());
        let other_ca_pem = write(dir.path(), "other-ca.pem", &other_cert.pem());

        TestPki {
            dir,
            ca_pem,
            leaf_cert,
            leaf_key,
            other_ca_pem,
        }
    }
}

fn ca(common_name: &str) -> (CertificateParams, KeyPair) {
    let mut params = CertificateParams::default();
    params.distinguished_name.remove(DnType::CommonName);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "mailshot tests");
    set_validity(&mut params);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    (params, key)
}

/// Yesterday .. +30 days: tolerant of small clock skew, and rcgen's default
/// (1975 .. 4096) would not exercise real expiry handling at all.
// The project injects time everywhere else (clippy.toml), but here the
// validity must bracket the real clock that rustls/OpenSSL consult during
// verification, which no injected Clock controls.
#[allow(clippy::disallowed_methods)]
fn set_validity(params: &mut CertificateParams) {
    // rcgen exposes `time::OffsetDateTime` without us depending on `time`;
    // the epoch plus a std Duration gives "now" in that type.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let now = date_time_ymd(1970, 1, 1) + since_epoch;
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    params.not_before = now - DAY;
    params.not_after = now + 30 * DAY;
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
