//! The DMARC checks RFC 9989 adds beside the RFC 7489 ones in `dmarc.rs`: how the policy
//! record and the organizational domain are found by the tree walk and by the public suffix
//! list (and where they differ), `t=y`, and the tags RFC 9989 removed.

use super::{Check, Finding, Severity};
use crate::dmarc::discovery::{Applied, Discovery};
use crate::dmarc::{Tags, discover};
use crate::dns::Dns;

/// The RFC 9989 findings for the From domain.
pub async fn audit(dns: &Dns, from: &str) -> Vec<Finding> {
    let d = discover(dns, from).await;
    let mut out = vec![discovery(&d, from)];
    let Ok(side) = &d.walk else {
        return out;
    };
    let Some(found) = &side.record else {
        return out;
    };
    let f = |check, sev, msg: String| Finding::new(check, sev, from, msg);
    if let Some(a) = side.applied.as_ref().filter(|_| found.tags.testing) {
        // What RFC 7489 receivers apply comes from their own discovery (another record, or
        // sp where RFC 9989 would apply np), not from the walk's answer.
        let older = match &d.psl {
            Ok(psl) => policy_of(psl.applied.as_ref()),
            Err(e) => format!("an unknown policy (their lookup failed: {e})"),
        };
        out.push(
            f(
                Check::DmarcTesting,
                Severity::Warn,
                format!(
                    "t=y: RFC 9989 receivers apply one step less ({}); RFC 7489 receivers ignore t and apply {older}",
                    a.describe(),
                ),
            )
            .evidence(found.evidence.clone())
            .fix("remove t=y once the reports show your mail aligned".into()),
        );
    }
    for (name, value) in &found.tags.obsolete {
        out.push(
            f(
                Check::DmarcObsoleteTag,
                Severity::Warn,
                format!(
                    "{name}={value} is obsolete under RFC 9989: {}",
                    Tags::obsolete_note(name)
                ),
            )
            .evidence(found.evidence.clone())
            .fix(format!("remove {name}= from the record")),
        );
    }
    out
}

fn policy_of(a: Option<&Applied>) -> String {
    a.map_or("no policy".to_owned(), Applied::describe)
}

/// Where the policy and the organizational domain come from, under both disciplines.
fn discovery(d: &Discovery, from: &str) -> Finding {
    let f = |sev, msg: String| Finding::new(Check::DmarcDiscovery, sev, from, msg);
    let policy = policy_of;
    let walk = match &d.walk {
        // The policy itself could not be found: as unknown as the lookup that failed.
        Err(e) => {
            return f(
                Severity::TempError,
                format!("the RFC 9989 tree walk could not finish: {e}"),
            );
        }
        Ok(side) => side,
    };
    let at = walk
        .record
        .as_ref()
        .map_or("no record".to_owned(), |r| format!("_dmarc.{}", r.domain));
    let org = match &d.walk_org {
        Ok(o) => format!("organizational domain {}", o.named()),
        // Only relaxed alignment between two different domains needs it; say so, without
        // failing a policy that was found.
        Err(e) => format!(
            "organizational domain unknown: the walk above the record could not finish ({e})"
        ),
    };
    let ghost = match &d.exists {
        Some(Ok(false)) => "; the From domain has no A, AAAA or MX record, so np applies",
        _ => "",
    };
    let diffs = d.differences();
    let msg = format!(
        "RFC 9989 tree walk: policy {} from {at}{ghost}; {org}; the public suffix list gives {}",
        policy(walk.applied.as_ref()),
        d.psl_org
    );
    if diffs.is_empty() {
        f(Severity::Info, msg)
    } else {
        f(
            Severity::Warn,
            format!(
                "{msg}. Receivers on RFC 9989 use the tree walk, receivers still on RFC 7489 the public suffix list, and here they differ"
            ),
        )
        .evidence(diffs.join("\n"))
        .fix("publish a record at the From domain itself (or psd=n at your organizational domain) so both disciplines find the same policy".into())
    }
}
