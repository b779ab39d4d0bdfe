//! The local recomputation of a received message's authentication through the injected DNS:
//! every DKIM signature (verdict, key size, `l=`, what `h=` covers), SPF for the connecting
//! IP and the Return-Path domain, and DMARC alignment under RFC 9989 and the PSL.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::{AuthenticatedMessage, DkimResult};
use serde::Serialize;

use crate::dmarc::discovery::Side;
use crate::dmarc::{self, Discovery};
use crate::dns::{Dns, TempError, Txt};
use crate::preflight::dkim::{DkimVerifier, rsa_bits};
use crate::preflight::spf::{SpfResult, check_host};

/// A verdict in the RFC's words, reduced to what a grade needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail(String),
    #[serde(rename = "temperror")]
    TempError(String),
    /// Could not be computed here (no connecting IP, no signature).
    Unknown(String),
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::TempError(_) => "temperror",
            Verdict::Unknown(_) => "unknown",
        }
    }
}

/// One DKIM signature as recomputed here.
#[derive(Debug, Clone, Serialize)]
pub struct SigCheck {
    pub d: String,
    pub s: String,
    pub algorithm: String,
    /// Lowercase `h=`.
    pub signed: Vec<String>,
    /// `l=`, when the signature covers only part of the body.
    pub body_length: Option<u64>,
    /// RSA modulus bits, or 256 for Ed25519; `None` when the key was not found.
    pub key_bits: Option<usize>,
    pub verdict: Verdict,
    /// The body hash did not match: the body changed after signing.
    pub body_changed: bool,
}

impl SigCheck {
    pub fn covers(&self, header: &str) -> bool {
        self.signed.iter().any(|h| h.eq_ignore_ascii_case(header))
    }
}

/// Verifies every signature with mail-auth, its key records fetched through `dns` only.
pub async fn dkim(dns: &Dns, raw: &[u8]) -> Vec<SigCheck> {
    let Some(msg) = AuthenticatedMessage::parse(raw) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Txt)> = Vec::new();
    let mut missing: Vec<(String, Option<String>)> = Vec::new();
    let mut sigs = Vec::new();
    for h in &msg.dkim_headers {
        let sig = &h.header;
        let name = format!("{}._domainkey.{}", sig.s, sig.d).to_ascii_lowercase();
        let (bits, verdict) = match dns.txt(&name).await {
            Ok(txts) => match txts.into_iter().find(|t| t.text().contains("p=")) {
                Some(t) => {
                    let bits = key_bits(&t.text());
                    found.push((name.clone(), t));
                    (bits, None)
                }
                None => {
                    missing.push((name.clone(), None));
                    let why = format!("no key record at {name}");
                    (None, Some(Verdict::Fail(why)))
                }
            },
            Err(e) => {
                missing.push((name.clone(), Some(e.to_string())));
                (None, Some(Verdict::TempError(e.to_string())))
            }
        };
        sigs.push(SigCheck {
            d: sig.d.to_ascii_lowercase(),
            s: sig.s.clone(),
            algorithm: format!("{:?}", sig.a),
            signed: sig.h.iter().map(|x| x.to_ascii_lowercase()).collect(),
            body_length: (sig.l > 0).then_some(sig.l),
            key_bits: bits,
            verdict: verdict.unwrap_or(Verdict::Unknown(String::new())),
            body_changed: false,
        });
    }
    let Some(verifier) = DkimVerifier::new(&found) else {
        return sigs;
    };
    for (name, temp) in &missing {
        verifier.seed_missing(name, temp.as_deref());
    }
    let Some(results) = verifier.check(raw).await else {
        return sigs;
    };
    // mail-auth returns one result per signature, in header order.
    for (sig, r) in sigs.iter_mut().zip(results) {
        if matches!(sig.verdict, Verdict::Unknown(_)) {
            // mail-auth reports a body hash mismatch as neutral (RFC 6376 leaves it to the
            // verifier); for a grade it is a failure, and the likely cause matters.
            sig.body_changed = matches!(
                r.result,
                DkimResult::Fail(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::FailedBodyHashMatch
                )) | DkimResult::Neutral(mail_auth::Error::Dkim(
                    mail_auth::dkim::DkimError::FailedBodyHashMatch
                ))
            );
            sig.verdict = match r.result {
                DkimResult::Pass => Verdict::Pass,
                DkimResult::TempError(e) => Verdict::TempError(e.to_string()),
                DkimResult::Fail(e) | DkimResult::PermError(e) | DkimResult::Neutral(e) => {
                    Verdict::Fail(e.to_string())
                }
                DkimResult::None => Verdict::Fail("no verdict".into()),
            };
        }
    }
    sigs
}

fn key_bits(record: &str) -> Option<usize> {
    let mut k = "rsa".to_owned();
    let mut p = String::new();
    for part in record.split(';') {
        if let Some((name, v)) = part.split_once('=') {
            match name.trim() {
                "k" => k = v.trim().to_ascii_lowercase(),
                "p" => p = v.split_whitespace().collect(),
                _ => {}
            }
        }
    }
    match k.as_str() {
        "ed25519" => Some(256),
        _ => rsa_bits(&STANDARD.decode(p).ok()?),
    }
}

/// SPF (RFC 7208 check_host) for the connecting IP and the envelope domain.
pub async fn spf(dns: &Dns, ip: Option<IpAddr>, domain: Option<&str>) -> Verdict {
    let (Some(ip), Some(domain)) = (ip, domain) else {
        return Verdict::Unknown(match ip {
            None => "no connecting IP in Received or Authentication-Results".into(),
            Some(_) => "no Return-Path or smtp.mailfrom to check".into(),
        });
    };
    match check_host(dns, ip, domain.to_owned(), 0).await {
        SpfResult::Pass => Verdict::Pass,
        SpfResult::TempError(e) => Verdict::TempError(e),
        other => Verdict::Fail(format!("{other} for {ip} at {domain}")),
    }
}

/// DMARC as recomputed here: the discovery, and whether an authenticated identifier aligns
/// with From under each discipline.
#[derive(Debug, Clone)]
pub struct DmarcCheck {
    pub discovery: Discovery,
    /// RFC 9989 result: aligned DKIM or SPF pass.
    pub walk: Verdict,
    /// RFC 7489 result.
    pub psl: Verdict,
    /// Which identifier aligned under the walk, for the message.
    pub aligned_by: Vec<String>,
}

/// Computes DMARC for `from` given the local DKIM and SPF results.
pub async fn dmarc(
    dns: &Dns,
    from: &str,
    sigs: &[SigCheck],
    spf: &Verdict,
    mailfrom: Option<&str>,
) -> DmarcCheck {
    let discovery = dmarc::discover(dns, from).await;
    let tags = |side: &Result<Side, TempError>| {
        side.as_ref()
            .ok()
            .and_then(|s| s.record.as_ref())
            .map(|f| (f.tags.adkim_strict, f.tags.aspf_strict))
            .unwrap_or((false, false))
    };
    let mut ids: Vec<(String, &'static str)> = sigs
        .iter()
        .filter(|s| s.verdict.passed())
        .map(|s| (s.d.clone(), "dkim"))
        .collect();
    if spf.passed()
        && let Some(m) = mailfrom
    {
        ids.push((m.to_ascii_lowercase(), "spf"));
    }
    let (mut walk_ok, mut psl_ok, mut temp) = (Vec::new(), false, None);
    let (ws, ps) = (tags(&discovery.walk), tags(&discovery.psl));
    for (domain, how) in &ids {
        let (w_strict, p_strict) = if *how == "dkim" {
            (ws.0, ps.0)
        } else {
            (ws.1, ps.1)
        };
        let a = dmarc::relaxed(dns, domain, from).await;
        let same = domain.eq_ignore_ascii_case(from);
        match a.walk_aligned() {
            Ok(r) if (w_strict && same) || (!w_strict && r) => {
                let id = format!("{how} d={domain}");
                if !walk_ok.contains(&id) {
                    walk_ok.push(id);
                }
            }
            Ok(_) => {}
            Err(e) => temp = Some(e.to_string()),
        }
        psl_ok |= if p_strict { same } else { a.psl_aligned() };
    }
    fn has(side: &Result<Side, TempError>) -> Result<bool, TempError> {
        side.as_ref()
            .map(|s| s.record.is_some())
            .map_err(Clone::clone)
    }
    let walk = match (has(&discovery.walk), walk_ok.is_empty(), &temp) {
        (Err(e), _, _) => Verdict::TempError(e.to_string()),
        (Ok(false), _, _) => Verdict::Fail("no DMARC record".into()),
        (Ok(true), false, _) => Verdict::Pass,
        (Ok(true), true, Some(e)) => Verdict::TempError(e.clone()),
        (Ok(true), true, None) => Verdict::Fail("no passing identifier aligns with From".into()),
    };
    let psl = match has(&discovery.psl) {
        Err(e) => Verdict::TempError(e.to_string()),
        Ok(false) => Verdict::Fail("no DMARC record".into()),
        Ok(true) if psl_ok => Verdict::Pass,
        Ok(true) => Verdict::Fail("no passing identifier aligns with From".into()),
    };
    DmarcCheck {
        discovery,
        walk,
        psl,
        aligned_by: walk_ok,
    }
}
