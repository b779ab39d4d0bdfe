//! DKIM: private keys parsed once at start-up, and signing with an injected clock.
//!
//! Two kinds of bad key are kept apart on purpose:
//! - A key file that cannot be read, is encrypted, is not PEM, or holds a key type DKIM has
//!   no use for (EC) is a [`KeyError`]: the command stops before anything runs (`check` exits
//!   2). Such a file is an unreadable part of the campaign, like an unreadable recipients
//!   file: mailshot cannot tell which key the user meant, so there is no public half to hold
//!   against DNS, and the fix is local (the path, the permissions, the format), not a fact
//!   about the domain that an audit reports.
//! - A well-formed RSA key under 2048 bits loads, with its public half, but is
//!   [`Refused`]: mailshot does not sign with it. The audit reports it as a finding
//!   (`dkim.key-strength`) beside everything else it can still check with the key's public
//!   half (the record, the match), and signing with it is an error, so nothing is ever sent
//!   with it or without its signature.
//!
//! mail-auth's `DkimSigner::sign` stamps `t=` from the system clock. We reuse its
//! canonicalization and crypto (all public API) but set `t=` ourselves, so signatures are
//! reproducible in tests and a preview signs exactly what `send` would.

use std::path::{Path, PathBuf};

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderStream, HeaderWriter, Writable, Writer};
use mail_auth::dkim::{Canonicalization, Signature};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::config::DkimKeyConfig;

/// Headers covered by every signature, each listed twice. mail-auth signs the instance a
/// message has and records the second name as absent (RFC 6376 section 5.4.2,
/// "oversigning"), so nobody can add a second From, Subject or Content-Type, nor a Reply-To
/// or List-* header the message lacks, without breaking the signature.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "To",
    "Subject",
    "Subject",
    "Date",
    "Date",
    "Message-ID",
    "Message-ID",
    "MIME-Version",
    "MIME-Version",
    "Content-Type",
    "Content-Type",
    "Reply-To",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Unsubscribe-Post",
    "List-Id",
    "List-Id",
    "Feedback-ID",
    "Feedback-ID",
];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "DKIM key {path} is encrypted; mailshot needs it unencrypted: `openssl pkey -in {path} -out plain.pem`, then keep plain.pem readable only by you (chmod 600)"
    )]
    Encrypted { path: PathBuf },
    #[error(
        "DKIM key {path} is not a PEM private key ({detail}); expected `-----BEGIN PRIVATE KEY-----` (PKCS#8, RSA or Ed25519) or `-----BEGIN RSA PRIVATE KEY-----`"
    )]
    NotPem { path: PathBuf, detail: String },
    #[error("DKIM key {path} is an EC (ECDSA) key; DKIM uses RSA (2048 bits or more) or Ed25519")]
    WrongType { path: PathBuf },
    #[error("DKIM key {path} could not be loaded: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// Signing failed for one message (should not happen with a loaded key).
#[derive(Debug, thiserror::Error)]
#[error("DKIM signing failed for d={domain} s={selector}: {detail}")]
pub struct SignError {
    pub domain: String,
    pub selector: String,
    pub detail: String,
}

/// The public half of a configured key, for comparing with what DNS publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// SubjectPublicKeyInfo DER (what `p=` normally carries) and the modulus size.
    Rsa { spki: Vec<u8>, bits: usize },
    /// The bare 32-byte key (RFC 8463).
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// The DKIM `k=` value.
    pub fn k(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// The `p=` value's bytes.
    pub fn p(&self) -> &[u8] {
        match self {
            PublicKey::Rsa { spki, .. } => spki,
            PublicKey::Ed25519(raw) => raw,
        }
    }
}

/// The smallest RSA modulus mailshot signs with. RFC 8301 section 3.2: signers "SHOULD use
/// RSA keys of at least 2048 bits"; verifiers must not accept keys under 1024 bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A configured key that loaded but that mailshot will not sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The private key file, as configured.
    pub path: PathBuf,
    /// The RSA modulus size.
    pub bits: usize,
}

/// Whether mailshot signs with a configured key.
enum Signing {
    Ready(DkimKey),
    Refused(Refused),
}

/// One configured key with its signature template.
pub struct DkimKeyPair {
    template: Signature,
    key: Signing,
    public: PublicKey,
}

impl DkimKeyPair {
    pub fn load(cfg: &DkimKeyConfig) -> Result<DkimKeyPair, KeyError> {
        let (key, public) = load_key(&cfg.private_key)?;
        let template = Signature {
            v: 1,
            a: match &key {
                Signing::Ready(k) => k.algorithm(),
                Signing::Refused(_) => mail_auth::common::crypto::Algorithm::RsaSha256,
            },
            d: cfg.domain.clone(),
            s: cfg.selector.clone(),
            h: SIGNED_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            ch: Canonicalization::Relaxed,
            cb: Canonicalization::Relaxed,
            ..Default::default()
        };
        Ok(DkimKeyPair {
            template,
            key,
            public,
        })
    }

    pub fn domain(&self) -> &str {
        &self.template.d
    }

    pub fn selector(&self) -> &str {
        &self.template.s
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `Some` when mailshot will not sign with this key (the audit says why and how to fix).
    pub fn refused(&self) -> Option<&Refused> {
        match &self.key {
            Signing::Ready(_) => None,
            Signing::Refused(r) => Some(r),
        }
    }

    /// The `DKIM-Signature: ...\r\n` header for `message`, signed at `now` (unix seconds).
    /// Reuses the body hash in `bh` if another key computed it (every key here hashes the
    /// relaxed body with SHA-256), or leaves its own there for the next key.
    fn signature_header(
        &self,
        message: &[u8],
        now: u64,
        bh: &mut Option<Vec<u8>>,
    ) -> Result<String, SignError> {
        let error = |detail: String| SignError {
            domain: self.template.d.clone(),
            selector: self.template.s.clone(),
            detail,
        };
        let key = match &self.key {
            Signing::Ready(k) => k,
            Signing::Refused(r) => {
                return Err(error(format!(
                    "mailshot does not sign with {} (RSA-{}, under {MIN_RSA_BITS} bits); `mailshot check` gives the fix",
                    r.path.display(),
                    r.bits
                )));
            }
        };
        let (_, headers, signed, body) = self.template.canonicalize(Fields::new(message));
        let mut sig = self.template.clone();
        sig.bh = bh
            .get_or_insert_with(|| key.hash(body).as_ref().to_vec())
            .clone();
        sig.t = now;
        sig.h = signed;
        let b = key
            .sign(Signable {
                headers,
                signature: &sig,
            })
            .map_err(|e| error(e.to_string()))?;
        sig.b = b;
        Ok(sig.to_header())
    }
}

/// What is signed: the canonical headers, then the signature header itself with an empty
/// `b=` (RFC 6376 section 3.7).
struct Signable<'a> {
    headers: mail_auth::dkim::canonicalize::CanonicalHeaders<'a>,
    signature: &'a Signature,
}

impl Writable for Signable<'_> {
    fn write(self, writer: &mut impl Writer) {
        self.headers.write(writer);
        self.signature.write(writer, false);
    }
}

/// Walks the header fields of a message that mail-builder wrote (CRLF line ends, a blank
/// line before the body). mail-auth's own iterator is crate-private; this yields the same
/// shape its canonicalizer expects: the name, and the value from after the colon up to and
/// including the CRLF that ends the field (continuation lines included).
struct Fields<'x> {
    msg: &'x [u8],
    pos: usize,
}

impl<'x> Fields<'x> {
    fn new(msg: &'x [u8]) -> Self {
        Fields { msg, pos: 0 }
    }

    /// Index just past the CRLF that ends the field starting at `start`.
    fn field_end(&self, start: usize) -> usize {
        let m = self.msg;
        let mut i = start;
        while i < m.len() {
            if m[i] == b'\n' && !matches!(m.get(i + 1), Some(b' ' | b'\t')) {
                return i + 1;
            }
            i += 1;
        }
        m.len()
    }
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        let rest = &self.msg[self.pos..];
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let start = self.pos;
        let end = self.field_end(start);
        self.pos = end;
        let field = &self.msg[start..end];
        Some(match field.iter().position(|&b| b == b':') {
            Some(colon) => (&field[..colon], &field[colon + 1..]),
            None => (field, &b""[..]),
        })
    }

    fn body(&mut self) -> &'x [u8] {
        while self.next_header().is_some() {}
        let rest = &self.msg[self.pos..];
        rest.strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .unwrap_or(rest)
    }
}

/// All configured keys. Signing prepends one DKIM-Signature per key (dual signing when
/// there are RSA and Ed25519 keys: receivers that know Ed25519 use it, the rest use RSA).
pub struct Signer {
    keys: Vec<DkimKeyPair>,
}

impl Signer {
    pub fn load(configs: &[DkimKeyConfig]) -> Result<Signer, KeyError> {
        Ok(Signer {
            keys: configs
                .iter()
                .map(DkimKeyPair::load)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn keys(&self) -> &[DkimKeyPair] {
        &self.keys
    }

    /// Returns the signed message: the signature headers followed by `message` unchanged.
    /// A key mailshot refuses is an error: nothing leaves without every configured signature.
    pub fn sign(&self, message: &[u8], now: u64) -> Result<Vec<u8>, SignError> {
        self.sign_with(message, now, false)
    }

    /// [`sign`](Self::sign) with only the keys mailshot signs with, leaving out refused ones:
    /// for the audit's sample, so the rest of the audit runs while the refusal is reported.
    pub fn sign_usable(&self, message: &[u8], now: u64) -> Result<Vec<u8>, SignError> {
        self.sign_with(message, now, true)
    }

    fn sign_with(
        &self,
        message: &[u8],
        now: u64,
        skip_refused: bool,
    ) -> Result<Vec<u8>, SignError> {
        let mut headers = Vec::with_capacity(self.keys.len());
        let mut bh = None;
        for key in &self.keys {
            if skip_refused && key.refused().is_some() {
                continue;
            }
            headers.push(key.signature_header(message, now, &mut bh)?);
        }
        let mut out =
            Vec::with_capacity(message.len() + headers.iter().map(String::len).sum::<usize>());
        for h in &headers {
            out.extend_from_slice(h.as_bytes());
        }
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn load_key(path: &Path) -> Result<(Signing, PublicKey), KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    warn_if_readable_by_others(path);
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED") {
        return Err(KeyError::Encrypted {
            path: path.to_owned(),
        });
    }
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| KeyError::NotPem {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    // A short RSA key is found by reading its modulus, before the crypto library (which
    // rejects it) sees it: it is refused, not an error, and keeps its public half.
    if let Some(public @ PublicKey::Rsa { bits, .. }) = short_rsa_public(&der) {
        let refused = Refused {
            path: path.to_owned(),
            bits,
        };
        return Ok((Signing::Refused(refused), public));
    }
    let invalid = |detail: String| KeyError::Invalid {
        path: path.to_owned(),
        detail,
    };
    let public_of = |result: Result<DkimKey, KeyError>, public: Option<PublicKey>| {
        let key = result?;
        public
            .map(|p| (Signing::Ready(key), p))
            .ok_or_else(|| invalid("cannot derive the public key".into()))
    };
    match der {
        PrivateKeyDer::Pkcs1(ref p1) => {
            let public = rsa_public(aws_lc_rs::rsa::KeyPair::from_der(p1.secret_pkcs1_der()).ok());
            public_of(
                RsaKey::<Sha256>::from_key_der(der.clone_key())
                    .map(DkimKey::from)
                    .map_err(|e| invalid(e.to_string())),
                public,
            )
        }
        PrivateKeyDer::Pkcs8(ref p8) => {
            let raw = p8.secret_pkcs8_der().to_vec();
            match RsaKey::<Sha256>::from_key_der(der.clone_key()) {
                Ok(k) => public_of(
                    Ok(DkimKey::from(k)),
                    rsa_public(aws_lc_rs::rsa::KeyPair::from_pkcs8(&raw).ok()),
                ),
                Err(rsa_err) => {
                    let public =
                        aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&raw)
                            .ok()
                            .map(|k| {
                                use aws_lc_rs::signature::KeyPair;
                                PublicKey::Ed25519(k.public_key().as_ref().to_vec())
                            });
                    public_of(
                        Ed25519Key::from_pkcs8_maybe_unchecked_der(&raw)
                            .map(DkimKey::from)
                            .map_err(|_| {
                                invalid(format!(
                                    "neither an RSA nor an Ed25519 key ({rsa_err}); an EC key? DKIM uses RSA or Ed25519"
                                ))
                            }),
                        public,
                    )
                }
            }
        }
        PrivateKeyDer::Sec1(_) => Err(KeyError::WrongType {
            path: path.to_owned(),
        }),
        _ => Err(invalid("unsupported key format".into())),
    }
}

/// DER OID 1.2.840.113549.1.1.1 (rsaEncryption).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Reads one DER element: (tag, contents, rest).
pub(crate) fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// One DER element of `tag` holding `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len().to_be_bytes();
    let skip = len.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// The bit length of a DER INTEGER's (unsigned) contents.
pub(crate) fn integer_bits(integer: &[u8]) -> Option<usize> {
    let m: &[u8] = &integer[integer.iter().take_while(|&&b| b == 0).count()..];
    let lead = m.first()?.leading_zeros() as usize;
    Some(m.len() * 8 - lead)
}

/// The public half of an RSA private key under [`MIN_RSA_BITS`], as SubjectPublicKeyInfo;
/// `None` for any other key (a large enough RSA key, Ed25519, or one that does not parse,
/// which the crypto library then reports).
fn short_rsa_public(key: &PrivateKeyDer<'_>) -> Option<PublicKey> {
    let (tag, seq, _) = der(key.secret_der())?;
    if tag != 0x30 {
        return None;
    }
    let rsa_private = match key {
        PrivateKeyDer::Pkcs1(_) => seq,
        PrivateKeyDer::Pkcs8(_) => {
            // PrivateKeyInfo: version, AlgorithmIdentifier, OCTET STRING holding the key.
            let (_, _, rest) = der(seq)?;
            let (alg_tag, alg, rest) = der(rest)?;
            let (oid_tag, oid, _) = der(alg)?;
            if alg_tag != 0x30 || oid_tag != 0x06 || oid != RSA_ENCRYPTION {
                return None;
            }
            let (octets_tag, octets, _) = der(rest)?;
            let (inner_tag, inner, _) = der(octets)?;
            if octets_tag != 0x04 || inner_tag != 0x30 {
                return None;
            }
            inner
        }
        _ => return None,
    };
    // RSAPrivateKey: version, modulus, publicExponent, ...
    let (_, _, rest) = der(rsa_private)?;
    let (n_tag, n, rest) = der(rest)?;
    let (e_tag, e, _) = der(rest)?;
    if n_tag != 0x02 || e_tag != 0x02 {
        return None;
    }
    let bits = integer_bits(n)?;
    if bits >= MIN_RSA_BITS {
        return None;
    }
    let rsa_public = tlv(0x30, &[tlv(0x02, n), tlv(0x02, e)].concat());
    let algorithm = tlv(
        0x30,
        &[tlv(0x06, RSA_ENCRYPTION), vec![0x05, 0x00]].concat(),
    );
    let bit_string = tlv(0x03, &[&[0u8][..], &rsa_public].concat());
    Some(PublicKey::Rsa {
        spki: tlv(0x30, &[algorithm, bit_string].concat()),
        bits,
    })
}

fn rsa_public(pair: Option<aws_lc_rs::rsa::KeyPair>) -> Option<PublicKey> {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::KeyPair;
    let pair = pair?;
    let spki: PublicKeyX509Der = pair.public_key().as_der().ok()?;
    Some(PublicKey::Rsa {
        spki: spki.as_ref().to_vec(),
        bits: pair.public_modulus_len() * 8,
    })
}

/// A DKIM key lets anyone sign as the domain; say so when others can read it.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "DKIM key {} is readable by group or others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            );
        }
    }
}
