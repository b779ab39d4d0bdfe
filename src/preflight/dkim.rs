//! DKIM: each configured key is one mailshot signs with, each configured selector's record
//! exists and holds the public half of the configured private key, is not revoked or in
//! testing, has a sound key size, and a sample message signed by mailshot verifies through
//! DNS with mail-auth's verifier.
//!
//! A key mailshot refuses (RSA under 2048 bits) is a `dkim.key-strength` failure here, not an
//! error before the audit: the rest of the audit runs with its public half, and the gate
//! blocks `send` on it whatever is overridden. A failed lookup of a selector (SERVFAIL, a
//! timeout) is a temperror for the record and for the key match, never a "publish" fix.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

use super::{Check, Finding, Severity};
use crate::dns::{Dns, Txt as DnsTxt};
use crate::keygen::txt_value;
use crate::message::dkim::{DkimKeyPair, MIN_RSA_BITS, PublicKey, Refused, der, integer_bits};

/// The tags of a DKIM key record (RFC 6376 section 3.6.1), as published.
#[derive(Debug, Default)]
struct KeyRecord {
    v: Option<String>,
    k: Option<String>,
    p: Option<String>,
    t: Option<String>,
}

fn tags(record: &str) -> KeyRecord {
    let mut r = KeyRecord::default();
    for part in record.split(';') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v: String = v.split_whitespace().collect();
        match k.trim() {
            "v" => r.v = Some(v),
            "k" => r.k = Some(v.to_ascii_lowercase()),
            "p" => r.p = Some(v),
            "t" => r.t = Some(v),
            _ => {}
        }
    }
    r
}

/// Runs the DKIM checks. Also returns every key record found, for `send --dry-run` to verify
/// each message it writes against what DNS (or the overlay) publishes.
pub async fn audit(
    dns: &Dns,
    keys: &[DkimKeyPair],
    sample: &[u8],
) -> (Vec<Finding>, Vec<(String, DnsTxt)>) {
    let mut seen: Vec<(String, DnsTxt)> = Vec::new();
    let mut out = Vec::new();
    for key in keys {
        let (findings, record) = key_record(dns, key).await;
        out.extend(findings);
        seen.extend(record);
    }
    // The sample is verified against every record found, matching or not, so a revoked or
    // wrong key shows as the failure a receiver would see; selectors with no record at all
    // are already reported above.
    if !seen.is_empty() {
        let none_signs = keys.iter().all(|k| k.refused().is_some());
        out.extend(verify_sample(sample, &seen, none_signs).await);
    }
    (out, seen)
}

/// One key's selector record, fetched and judged; also the record when there is exactly one,
/// for verifying the sample against.
async fn key_record(dns: &Dns, key: &DkimKeyPair) -> (Vec<Finding>, Option<(String, DnsTxt)>) {
    let mut out = Vec::new();
    let name = format!("{}._domainkey.{}", key.selector(), key.domain());
    let subject = format!("s={} d={}", key.selector(), key.domain());
    let f = |id: Check, sev: Severity, msg: String| Finding::new(id, sev, &subject, msg);
    out.push(strength(key, &subject));
    let want = txt_value(key.public().k(), key.public().p());
    // A refused key's record is no use to publish: the fix is its replacement's.
    let fix_record = match key.refused() {
        Some(_) => format!(
            "replace the key first (see dkim.key-strength), then publish at {name} the record `mailshot dkim keygen` prints for the new one"
        ),
        None => format!("publish {name}. TXT \"{want}\" (split into 255-character strings)"),
    };
    let txts = match dns.txt(&name).await {
        Ok(t) => t,
        Err(e) => {
            // The record may well be fine: nothing here asks for a change.
            out.push(f(
                Check::DkimRecord,
                Severity::TempError,
                format!("the lookup of {name} failed: {e}"),
            ));
            out.push(f(
                Check::DkimKeyMatch,
                Severity::TempError,
                format!(
                    "unknown: whether {name} holds the configured key could not be checked ({e})"
                ),
            ));
            return (out, None);
        }
    };
    let dkim: Vec<DnsTxt> = txts
        .into_iter()
        .filter(|t| {
            let s = t.text();
            s.contains("p=") || s.trim_start().starts_with("v=DKIM1")
        })
        .collect();
    let Some(rec) = dkim.first() else {
        out.push(
            f(
                Check::DkimRecord,
                Severity::Fail,
                format!(
                    "no DKIM key at {name}: receivers cannot verify this selector's signatures"
                ),
            )
            .fix(fix_record),
        );
        return (out, None);
    };
    if dkim.len() > 1 {
        out.push(
            f(
                Check::DkimRecord,
                Severity::Fail,
                format!(
                    "{} key records at {name}; verifiers may pick either",
                    dkim.len()
                ),
            )
            .evidence(
                dkim.iter()
                    .map(DnsTxt::zone_form)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .fix("keep one record per selector".into()),
        );
        return (out, None);
    }
    out.extend(judge(key, &name, rec, &f, &fix_record));
    (out, Some((name, rec.clone())))
}

/// Whether mailshot signs with the configured key: a pass naming it, or the refusal with
/// the size, which receivers accept it, and the command that makes a replacement.
fn strength(key: &DkimKeyPair, subject: &str) -> Finding {
    let f = |sev, msg: String| Finding::new(Check::DkimKeyStrength, sev, subject, msg);
    let Some(Refused { path, bits }) = key.refused() else {
        let what = match key.public() {
            PublicKey::Rsa { bits, .. } => format!("RSA-{bits}"),
            PublicKey::Ed25519(_) => "Ed25519".into(),
        };
        return f(
            Severity::Pass,
            format!("mailshot signs with this key ({what})"),
        );
    };
    let (d, s) = (key.domain(), key.selector());
    let receivers = if *bits < 1024 {
        "below 1024 bits verifiers must not accept it at all (RFC 8301 section 3.2), so every signature with it fails"
    } else {
        "RFC 8301 has verifiers accept 1024 bits and up but signers use at least 2048; Gmail, Yahoo and Microsoft accept 1024-bit keys and recommend 2048"
    };
    f(
        Severity::Fail,
        format!(
            "the configured key is RSA-{bits}: mailshot signs only with RSA keys of {MIN_RSA_BITS} bits or more (or Ed25519), and will not send with it; {receivers}"
        ),
    )
    .evidence(format!("private_key = \"{}\" (RSA, {bits}-bit modulus)", path.display()))
    .fix(format!(
        "mailshot dkim keygen --domain {d} --selector {s}  (an RSA-2048 key: publish the record it prints, then point private_key in campaign.toml at the new file; to keep mail already signed with the old key verifying, give the new key a new --selector and switch once its record is published)"
    ))
}

/// The checks on one found record: syntax, key type, revocation, testing, size and whether
/// it is the configured key's public half.
fn judge(
    key: &DkimKeyPair,
    name: &str,
    rec: &DnsTxt,
    f: &impl Fn(Check, Severity, String) -> Finding,
    fix_record: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let text = rec.text();
    let t = tags(&text);
    let evidence = rec.zone_form();
    // A failing record: the evidence as seen, and the record to publish instead.
    let broken = |id, msg: String| {
        f(id, Severity::Fail, msg)
            .evidence(evidence.clone())
            .fix(fix_record.to_owned())
    };
    let k = t.k.clone().unwrap_or_else(|| "rsa".into());
    let p = t.p.clone().unwrap_or_default();
    let problem = match &t.v {
        Some(v) if v != "DKIM1" => Some(broken(
            Check::DkimSyntax,
            format!("v={v}; a DKIM key record says v=DKIM1"),
        )),
        _ if DomainKey::parse(text.as_bytes()).is_err() && !p.is_empty() => Some(broken(
            Check::DkimSyntax,
            "the key record does not parse".into(),
        )),
        _ if k != key.public().k() => Some(broken(
            Check::DkimKeyType,
            format!(
                "the record says k={k} but the configured key is {}",
                key.public().k()
            ),
        )),
        _ if p.is_empty() => Some(broken(
            Check::DkimRevoked,
            "the record has an empty p=: this key is revoked, and every signature with it fails"
                .into(),
        )),
        _ => None,
    };
    if let Some(finding) = problem {
        out.push(finding);
        return out;
    }
    out.push(
        f(
            Check::DkimRecord,
            Severity::Pass,
            format!("key record found at {name}"),
        )
        .evidence(evidence.clone()),
    );
    if t.t
        .as_deref()
        .is_some_and(|flags| flags.split(':').any(|x| x.trim() == "y"))
    {
        out.push(
            f(
                Check::DkimTesting,
                Severity::Warn,
                "t=y marks the key as testing: receivers may treat failures and passes alike"
                    .into(),
            )
            .evidence(evidence.clone())
            .fix("remove t=y from the record once signing works".into()),
        );
    }
    let Ok(bytes) = STANDARD.decode(&p) else {
        out.push(broken(Check::DkimSyntax, "p= is not valid base64".into()));
        return out;
    };
    // The size receivers see is the published key's, whatever the private key is; for a
    // refused key, dkim.key-strength has said it already.
    if k == "rsa" && key.refused().is_none() {
        match rsa_bits(&bytes) {
            Some(bits) => {
                let sev = match bits {
                    b if b < 1024 => Severity::Fail,
                    b if b < 2048 => Severity::Warn,
                    _ => Severity::Pass,
                };
                let mut finding = f(
                    Check::DkimKeySize,
                    sev,
                    format!("the published RSA key has {bits} bits"),
                );
                if sev != Severity::Pass {
                    finding = finding.evidence(evidence.clone()).fix("generate an RSA-2048 key under a new selector (mailshot init, or openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048), publish it, then switch campaign.toml to it".into());
                }
                out.push(finding);
            }
            None => out.push(broken(
                Check::DkimSyntax,
                "p= is not an RSA public key".into(),
            )),
        }
    }
    if !same_key(key.public(), &bytes) {
        out.push(broken(
            Check::DkimKeyMismatch,
            format!(
                "the published key is not the public half of the configured private key ({}): every signature will fail",
                key.selector()
            ),
        ));
        return out;
    }
    out.push(f(
        Check::DkimKeyMatch,
        Severity::Pass,
        "the published key matches the configured private key".into(),
    ));
    out
}

/// The modulus size of an RSA public key published as SubjectPublicKeyInfo (the usual form)
/// or as a bare RSAPublicKey.
pub fn rsa_bits(key: &[u8]) -> Option<usize> {
    let (tag, seq, _) = der(key)?;
    if tag != 0x30 {
        return None;
    }
    let (first_tag, _, after_first) = der(seq)?;
    let rsa_public = match first_tag {
        // SubjectPublicKeyInfo: AlgorithmIdentifier, then a BIT STRING holding RSAPublicKey.
        0x30 => {
            let (bs_tag, bits, _) = der(after_first)?;
            if bs_tag != 0x03 || bits.first() != Some(&0) {
                return None;
            }
            let (t, inner, _) = der(&bits[1..])?;
            if t != 0x30 {
                return None;
            }
            inner
        }
        // A bare RSAPublicKey: the modulus comes first.
        0x02 => seq,
        _ => return None,
    };
    let (t, modulus, _) = der(rsa_public)?;
    if t != 0x02 {
        return None;
    }
    integer_bits(modulus)
}

/// True when the record's key bytes are the configured key's public half. RSA keys may be
/// published as SubjectPublicKeyInfo (usual) or as a bare RSAPublicKey.
fn same_key(public: &PublicKey, published: &[u8]) -> bool {
    match public {
        PublicKey::Rsa { spki, .. } => {
            published == spki.as_slice() || (published.len() > 16 && spki.ends_with(published))
        }
        PublicKey::Ed25519(raw) => published == raw.as_slice(),
    }
}

/// mail-auth's DKIM verifier with its DNS answered only from the key records the audit
/// fetched (or the overlay supplied): a full receiver-side verification with no second path
/// to DNS. `send --dry-run` verifies every message it writes with it.
pub struct DkimVerifier {
    auth: MessageAuthenticator,
    cache: Seeded,
}

/// One signature's verdict: who signed, and whether it verified.
pub struct SignatureCheck {
    pub who: String,
    /// `<s>._domainkey.<d>`, lowercase.
    pub key_name: String,
    pub result: DkimResult,
}

impl DkimVerifier {
    pub fn new(published: &[(String, DnsTxt)]) -> Option<DkimVerifier> {
        let cache = Seeded::default();
        for (name, txt) in published {
            let entry = match DomainKey::parse(&txt.joined()) {
                Ok(k) => Txt::DomainKey(Arc::new(k)),
                Err(e) => Txt::Error(e),
            };
            cache.put(format!("{}.", name.to_ascii_lowercase()), entry);
        }
        let auth = MessageAuthenticator::new(
            ResolverConfig::from_name_servers(Vec::new()),
            Default::default(),
        )
        .ok()?;
        Some(DkimVerifier { auth, cache })
    }

    /// Answers `name` (`<s>._domainkey.<d>`) as a lookup that found no record, or, with
    /// `temporary`, as one that failed, so the verifier never asks DNS itself.
    pub fn seed_missing(&self, name: &str, temporary: Option<&str>) {
        use mail_auth::{DnsError, Error};
        let err = match temporary {
            Some(detail) => Error::Dns(DnsError::Resolver(detail.to_owned())),
            None => Error::Dns(DnsError::RecordNotFound(
                mail_auth::hickory_resolver::proto::op::ResponseCode::NXDomain,
            )),
        };
        self.cache
            .put(format!("{}.", name.to_ascii_lowercase()), Txt::Error(err));
    }

    /// Every signature's verdict; `None` when the message does not parse.
    pub async fn check(&self, message: &[u8]) -> Option<Vec<SignatureCheck>> {
        let msg = AuthenticatedMessage::parse(message)?;
        let results = self
            .auth
            .verify_dkim(Parameters::new(&msg).with_txt_cache(&self.cache))
            .await;
        Some(
            results
                .iter()
                .map(|r| SignatureCheck {
                    who: r
                        .signature()
                        .map(|s| format!("s={} d={} a={:?}", s.s, s.d, s.a))
                        .unwrap_or_default(),
                    key_name: r
                        .signature()
                        .map(|s| format!("{}._domainkey.{}", s.s, s.d).to_ascii_lowercase())
                        .unwrap_or_default(),
                    result: r.result().clone(),
                })
                .collect(),
        )
    }

    /// `Ok` when every signature verifies.
    pub async fn verify(&self, message: &[u8]) -> Result<(), String> {
        let checks = self
            .check(message)
            .await
            .ok_or("the message does not parse")?;
        if checks.is_empty() {
            return Err("no DKIM signature".into());
        }
        for c in checks {
            if c.result != DkimResult::Pass {
                return Err(format!("{}: {:?}", c.who, c.result));
            }
        }
        Ok(())
    }
}

/// `none_signs`: every configured key is refused, so the sample carries no signature.
async fn verify_sample(
    sample: &[u8],
    published: &[(String, DnsTxt)],
    none_signs: bool,
) -> Vec<Finding> {
    let f = |sev, msg: String| Finding::new(Check::DkimVerify, sev, "sample message", msg);
    let Some(verifier) = DkimVerifier::new(published) else {
        return vec![f(
            Severity::TempError,
            "could not set up the verifier".into(),
        )];
    };
    let Some(results) = verifier.check(sample).await else {
        return vec![f(
            Severity::Fail,
            "the sample message could not be parsed for verification".into(),
        )];
    };
    let mut out = Vec::new();
    let known: Vec<String> = published
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    for r in &results {
        let who = &r.who;
        // A signature whose selector has no record was reported as dkim.record already.
        let name = &r.key_name;
        if !known.contains(name) {
            continue;
        }
        out.push(match &r.result {
            DkimResult::Pass => f(
                Severity::Pass,
                format!("a message signed by mailshot verifies ({who})"),
            ),
            DkimResult::TempError(e) => f(Severity::TempError, format!("{who}: {e}")),
            other => f(
                Severity::Fail,
                format!("a message signed by mailshot does not verify ({who}): {other:?}"),
            ),
        });
    }
    if results.is_empty() {
        out.push(f(
            Severity::Fail,
            if none_signs {
                "the sample message carries no DKIM signature: mailshot signs with none of the configured keys (see dkim.key-strength)".into()
            } else {
                "the sample message carries no DKIM signature".into()
            },
        ));
    }
    out
}

/// A ResolverCache that only answers what was put in.
#[derive(Default)]
struct Seeded {
    map: Mutex<HashMap<Box<str>, Txt>>,
}

impl Seeded {
    fn put(&self, k: String, v: Txt) {
        self.entries().insert(k.into_boxed_str(), v);
    }

    /// The map; a panic elsewhere while it was held leaves it usable (it is only a cache).
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Txt>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolverCache<Box<str>, Txt> for Seeded {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.entries().insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_sizes_from_published_keys() {
        // The example's RSA-2048 key, as SubjectPublicKeyInfo.
        let spki = STANDARD.decode("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAlkqU1t51ZgJ5zeDp/68/+5CFKh21ZzzStGerfiW4Gbs8d/nn7FJrR07KtStGE2O38t/wMEjuzE7bOYqIQTs0YJvhu3X7b1rWO30pMu2/EiIfYdub7NudB4LHiCf1yYei8P0oqANIR3PKCwdVhAG1nyeezaNiB/SN3lqitMx1nviD/IwEf4RANeORN2DXxiQM/YI8Ovjd67c4yg1Y+2WTP+wbpGOlkYZcSRvy1IKIhYpTeIQbNg8OiWlyiLEZfyVhp442t4IBb0BZaH84nu33gE++gd6pqEpzGhoeRSUPaO+BUZI31qI4soX26BHNmwwsEQB9rpAmWXklkEeNIxPhIwIDAQAB").unwrap();
        assert_eq!(rsa_bits(&spki), Some(2048));
        // The same key's bare RSAPublicKey (the BIT STRING's contents).
        assert_eq!(rsa_bits(&spki[24..]), Some(2048));
        assert_eq!(rsa_bits(b"not der"), None);
    }
}
