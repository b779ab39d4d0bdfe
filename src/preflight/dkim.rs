//! DKIM: each configured selector's record exists and holds the public half of the configured
//! private key, is not revoked or in testing, has a sound key size, and a sample message
//! signed by mailshot verifies through DNS with mail-auth's verifier.

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

use super::dns::{Dns, Txt as DnsTxt};
use super::{Finding, Group, Severity};
use crate::keygen::txt_value;
use crate::message::dkim::{DkimKeyPair, PublicKey};

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

pub async fn audit(dns: &Dns, keys: &[DkimKeyPair], sample: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut published: Vec<(String, DnsTxt)> = Vec::new();
    for key in keys {
        let name = format!("{}._domainkey.{}", key.selector(), key.domain());
        let subject = format!("s={} d={}", key.selector(), key.domain());
        let f = |id: &'static str, sev: Severity, msg: String| {
            Finding::new(Group::Dkim, id, sev, &subject, msg)
        };
        let want = txt_value(key.public().k(), key.public().p());
        let fix_record =
            format!("publish {name}. TXT \"{want}\" (split into 255-character strings)");
        let txts = match dns.txt(&name).await {
            Ok(t) => t,
            Err(e) => {
                out.push(f(
                    "dkim.record",
                    Severity::TempError,
                    format!("the lookup of {name} failed: {e}"),
                ));
                continue;
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
                    "dkim.record",
                    Severity::Fail,
                    format!(
                        "no DKIM key at {name}: receivers cannot verify this selector's signatures"
                    ),
                )
                .fix(fix_record),
            );
            continue;
        };
        if dkim.len() > 1 {
            out.push(
                f(
                    "dkim.record",
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
            continue;
        }
        let text = rec.text();
        let t = tags(&text);
        let evidence = rec.zone_form();
        if let Some(v) = &t.v
            && v != "DKIM1"
        {
            out.push(
                f(
                    "dkim.syntax",
                    Severity::Fail,
                    format!("v={v}; a DKIM key record says v=DKIM1"),
                )
                .evidence(evidence.clone())
                .fix(fix_record.clone()),
            );
            continue;
        }
        if DomainKey::parse(text.as_bytes()).is_err()
            && t.p.as_deref().is_some_and(|p| !p.is_empty())
        {
            out.push(
                f(
                    "dkim.syntax",
                    Severity::Fail,
                    "the key record does not parse".into(),
                )
                .evidence(evidence.clone())
                .fix(fix_record.clone()),
            );
            continue;
        }
        let k = t.k.clone().unwrap_or_else(|| "rsa".into());
        if k != key.public().k() {
            out.push(
                f(
                    "dkim.key-type",
                    Severity::Fail,
                    format!(
                        "the record says k={k} but the configured key is {}",
                        key.public().k()
                    ),
                )
                .evidence(evidence.clone())
                .fix(fix_record.clone()),
            );
            continue;
        }
        let p = t.p.clone().unwrap_or_default();
        if p.is_empty() {
            out.push(f("dkim.revoked", Severity::Fail, "the record has an empty p=: this key is revoked, and every signature with it fails".into()).evidence(evidence.clone()).fix(fix_record.clone()));
            continue;
        }
        out.push(
            f(
                "dkim.record",
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
                    "dkim.testing",
                    Severity::Warn,
                    "t=y marks the key as testing: receivers may treat failures and passes alike"
                        .into(),
                )
                .evidence(evidence.clone())
                .fix("remove t=y from the record once signing works".into()),
            );
        }
        let Ok(bytes) = STANDARD.decode(&p) else {
            out.push(
                f(
                    "dkim.syntax",
                    Severity::Fail,
                    "p= is not valid base64".into(),
                )
                .evidence(evidence.clone())
                .fix(fix_record.clone()),
            );
            continue;
        };
        if !same_key(key.public(), &bytes) {
            out.push(
                f(
                    "dkim.key-mismatch",
                    Severity::Fail,
                    format!(
                        "the published key is not the public half of {}: every signature will fail",
                        key.selector()
                    ),
                )
                .evidence(evidence.clone())
                .fix(fix_record.clone()),
            );
            continue;
        }
        out.push(f(
            "dkim.key-match",
            Severity::Pass,
            "the published key matches the configured private key".into(),
        ));
        if let PublicKey::Rsa { bits, .. } = key.public() {
            let sev = match bits {
                b if *b < 1024 => Severity::Fail,
                b if *b < 2048 => Severity::Warn,
                _ => Severity::Pass,
            };
            let mut finding = f("dkim.key-size", sev, format!("RSA key of {bits} bits"));
            if sev != Severity::Pass {
                finding = finding.fix("generate an RSA-2048 key under a new selector (mailshot init, or openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048) and publish it before switching".into());
            }
            out.push(finding);
        }
        published.push((name.clone(), rec.clone()));
    }
    if !published.is_empty() {
        out.extend(verify_sample(sample, &published).await);
    }
    out
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

/// Verifies the sample with mail-auth, its DNS answered from the records the audit fetched:
/// a full receiver-side verification, with no second path to DNS.
async fn verify_sample(sample: &[u8], published: &[(String, DnsTxt)]) -> Vec<Finding> {
    let cache = Seeded::default();
    for (name, txt) in published {
        let entry = match DomainKey::parse(&txt.joined()) {
            Ok(k) => Txt::DomainKey(Arc::new(k)),
            Err(e) => Txt::Error(e),
        };
        cache.put(format!("{}.", name.to_ascii_lowercase()), entry);
    }
    let f = |sev, msg: String| Finding::new(Group::Dkim, "dkim.verify", sev, "sample message", msg);
    let Some(msg) = AuthenticatedMessage::parse(sample) else {
        return vec![f(
            Severity::Fail,
            "the sample message could not be parsed for verification".into(),
        )];
    };
    let Ok(auth) = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(Vec::new()),
        Default::default(),
    ) else {
        return vec![f(
            Severity::TempError,
            "could not set up the verifier".into(),
        )];
    };
    let results = auth
        .verify_dkim(Parameters::new(&msg).with_txt_cache(&cache))
        .await;
    let mut out = Vec::new();
    for r in &results {
        let who = r
            .signature()
            .map(|s| format!("s={} d={} a={:?}", s.s, s.d, s.a))
            .unwrap_or_default();
        out.push(match r.result() {
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
            "the sample message carries no DKIM signature".into(),
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
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k.into_boxed_str(), v);
    }
}

impl ResolverCache<Box<str>, Txt> for Seeded {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, value);
    }
}
