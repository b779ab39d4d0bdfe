//! DKIM key generation: a new private key written 0600 (never over an existing file), and
//! the selector's TXT record in zone-file syntax.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub struct NewKey {
    pub private_pem: String,
    /// SubjectPublicKeyInfo DER, what `p=` carries.
    pub public_der: Vec<u8>,
}

pub fn rsa2048() -> anyhow::Result<NewKey> {
    rsa(KeySize::Rsa2048)
}

pub fn rsa(size: KeySize) -> anyhow::Result<NewKey> {
    let pair = KeyPair::generate(size).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
    let private: Pkcs8V1Der = pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
    let public: PublicKeyX509Der = pair
        .public_key()
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA public key encoding failed"))?;
    Ok(NewKey {
        private_pem: pem("PRIVATE KEY", private.as_ref()),
        public_der: public.as_ref().to_vec(),
    })
}

/// An Ed25519 key: PKCS#8 for the file, and the bare 32-byte public key that RFC 8463 puts in
/// `p=`.
pub fn ed25519() -> anyhow::Result<NewKey> {
    use aws_lc_rs::signature::Ed25519KeyPair;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("Ed25519 key generation failed"))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
        .map_err(|_| anyhow::anyhow!("Ed25519 key encoding failed"))?;
    Ok(NewKey {
        private_pem: pem("PRIVATE KEY", doc.as_ref()),
        public_der: pair.public_key().as_ref().to_vec(),
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Creates `path` with mode 0600; fails if it exists, so a key in use is never replaced.
pub fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                " (mailshot never overwrites a key; choose another file or selector)"
            } else {
                ""
            }
        )
    })?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

/// The record's value: `v=DKIM1; k=<type>; p=<base64>`.
pub fn txt_value(key_type: &str, public: &[u8]) -> String {
    format!("v=DKIM1; k={key_type}; p={}", STANDARD.encode(public))
}

/// `selector._domainkey.domain. IN TXT "v=DKIM1; k=rsa; p=..."`, split into strings of at
/// most 255 characters as DNS requires.
pub fn txt_record(selector: &str, domain: &str, key_type: &str, public_der: &[u8]) -> String {
    format!(
        "{selector}._domainkey.{domain}. 3600 IN TXT ( {} )",
        quoted(&txt_value(key_type, public_der))
    )
}

/// A TXT value in zone-file syntax: quoted strings of at most 255 characters each, as DNS
/// requires, with `"` escaped.
pub fn quoted(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c).replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_strings_are_at_most_255() {
        let rec = txt_record("s", "example.com", "rsa", &[7u8; 400]);
        for s in rec.split('"').skip(1).step_by(2) {
            assert!(s.len() <= 255, "{}", s.len());
        }
        assert!(rec.starts_with("s._domainkey.example.com. 3600 IN TXT ( \"v=DKIM1; k=rsa; p="));
    }

    #[test]
    fn never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_private(&p, "a").unwrap();
        assert!(write_private(&p, "b").is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
