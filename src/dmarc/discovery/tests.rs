//! The RFC 9989 cases against the zone overlay, with no network: every name under `com.` is
//! answered by the overlay, and anything else is a temperror.

use std::path::Path;

use super::*;
use crate::dns::{Overlay, Source};

const ZONE: &str = r#"$ORIGIN com.
$TTL 300
; a record between the author domain and the PSL's organizational domain
_dmarc.eu.example.com.    TXT "v=DMARC1; p=reject"
_dmarc.example.com.       TXT "v=DMARC1; p=none; rua=mailto:d@example.com"
; psd=n below the PSL's organizational domain
_dmarc.shop.brand.com.    TXT "v=DMARC1; p=quarantine; psd=n"
_dmarc.brand.com.         TXT "v=DMARC1; p=reject"
; a hosting provider that marks itself a public suffix
_dmarc.hosted.com.        TXT "v=DMARC1; p=none; psd=y"
; np for subdomains that do not exist
_dmarc.npx.com.           TXT "v=DMARC1; p=none; sp=quarantine; np=reject"
www.npx.com.              A   192.0.2.1
; testing mode
_dmarc.trial.com.         TXT "v=DMARC1; p=reject; t=y"
; no p= at all
_dmarc.nop.com.           TXT "v=DMARC1; rua=mailto:r@nop.com"
; two records at the author domain, one at its parent
_dmarc.two.dup.com.       TXT "v=DMARC1; p=none"
_dmarc.two.dup.com.       TXT "v=DMARC1; p=reject"
_dmarc.dup.com.           TXT "v=DMARC1; p=quarantine"
; ten labels: the walk jumps from ten to seven, past the eight-label record
_dmarc.l3.l4.l5.l6.l7.l8.jump.com. TXT "v=DMARC1; p=reject"
_dmarc.l5.l6.l7.l8.jump.com.       TXT "v=DMARC1; p=quarantine"
"#;

fn dns() -> Dns {
    let o = Overlay::parse(Path::new("t.zone"), ZONE).unwrap();
    Dns::new(&Source::Offline, Some(o)).unwrap()
}

fn effective(side: &Result<Side, TempError>) -> Option<Policy> {
    side.as_ref().unwrap().applied.as_ref().map(|a| a.effective)
}

fn at(side: &Result<Side, TempError>) -> Option<String> {
    side.as_ref()
        .unwrap()
        .record
        .as_ref()
        .map(|f| f.domain.clone())
}

#[test]
fn the_walk_asks_parents_and_jumps_from_more_than_eight_labels() {
    assert_eq!(
        targets("a.b.example.com."),
        ["a.b.example.com", "b.example.com", "example.com", "com"]
    );
    let t = targets("l1.l2.l3.l4.l5.l6.l7.l8.jump.com");
    assert_eq!(t.len(), 8);
    assert_eq!(t[1], "l4.l5.l6.l7.l8.jump.com");
    assert_eq!(t.last().unwrap(), "com");
    // Exactly eight labels: one at a time.
    assert_eq!(targets("a.b.c.d.e.f.g.com").len(), 8);
}

#[tokio::test]
async fn an_intermediate_record_wins_the_walk_but_not_the_psl() {
    let d = discover(&dns(), "mail.eu.example.com").await;
    assert_eq!(at(&d.walk).as_deref(), Some("eu.example.com"));
    assert_eq!(effective(&d.walk), Some(Policy::Reject));
    assert_eq!(at(&d.psl).as_deref(), Some("example.com"));
    assert_eq!(effective(&d.psl), Some(Policy::None));
    assert_eq!(d.walk_org.as_ref().unwrap().domain, "example.com");
    assert_eq!(d.psl_org, "example.com");
    let diff = d.differences();
    assert_eq!(diff.len(), 2, "{diff:?}");
    assert!(diff[0].contains("_dmarc.eu.example.com by the tree walk"));
}

#[tokio::test]
async fn psd_n_makes_its_domain_the_organizational_domain() {
    let dns = dns();
    let d = discover(&dns, "a.shop.brand.com").await;
    let org = d.walk_org.as_ref().unwrap();
    assert_eq!(org.domain, "shop.brand.com");
    assert!(org.how.contains("psd=n"), "{}", org.how);
    assert_eq!(d.psl_org, "brand.com");
    // Relaxed alignment with the parent brand: yes by the PSL, no by the tree walk.
    let a = relaxed(&dns, "a.shop.brand.com", "brand.com").await;
    assert!(a.psl_aligned());
    assert!(!a.walk_aligned().unwrap());
}

#[tokio::test]
async fn psd_y_puts_the_organizational_domain_one_label_below() {
    let dns = dns();
    let org = org_domain(&dns, "news.alice.hosted.com").await.unwrap();
    assert_eq!(org.domain, "alice.hosted.com");
    // Two customers of the provider: aligned by the PSL (both hosted.com), not by the walk.
    let a = relaxed(&dns, "news.alice.hosted.com", "bob.hosted.com").await;
    assert!(a.psl_aligned());
    assert!(!a.walk_aligned().unwrap());
    // The suffix itself is its own organizational domain.
    assert_eq!(
        org_domain(&dns, "hosted.com").await.unwrap().domain,
        "hosted.com"
    );
}

#[tokio::test]
async fn np_applies_to_a_subdomain_that_does_not_exist() {
    let dns = dns();
    let ghost = discover(&dns, "ghost.npx.com").await;
    assert_eq!(ghost.exists.as_ref().unwrap().as_ref().ok(), Some(&false));
    let a = ghost.walk.as_ref().unwrap().applied.clone().unwrap();
    assert_eq!((a.tag, a.effective), ("np", Policy::Reject));
    // RFC 7489 receivers do not know np: sp.
    assert_eq!(effective(&ghost.psl), Some(Policy::Quarantine));
    let www = discover(&dns, "www.npx.com").await;
    let a = www.walk.as_ref().unwrap().applied.clone().unwrap();
    assert_eq!((a.tag, a.effective), ("sp", Policy::Quarantine));
}

#[tokio::test]
async fn t_y_lowers_the_policy_one_step_for_rfc9989_receivers_only() {
    let d = discover(&dns(), "trial.com").await;
    let a = d.walk.as_ref().unwrap().applied.clone().unwrap();
    assert_eq!(a.requested, Policy::Reject);
    assert_eq!(a.effective, Policy::Quarantine);
    assert_eq!(a.describe(), "p=reject lowered by t=y to quarantine");
    assert_eq!(effective(&d.psl), Some(Policy::Reject));
}

#[tokio::test]
async fn a_record_without_p_is_p_none() {
    let d = discover(&dns(), "nop.com").await;
    let a = d.walk.as_ref().unwrap().applied.clone().unwrap();
    assert_eq!((a.tag, a.effective), ("p (absent)", Policy::None));
}

#[tokio::test]
async fn duplicate_records_are_skipped_by_the_walk_and_stop_the_psl() {
    let d = discover(&dns(), "two.dup.com").await;
    assert_eq!(d.multiple, [("two.dup.com".to_owned(), 2)]);
    assert_eq!(at(&d.walk).as_deref(), Some("dup.com"));
    assert_eq!(at(&d.psl), None);
}

#[tokio::test]
async fn more_than_eight_labels_skip_to_seven() {
    let d = discover(&dns(), "l1.l2.l3.l4.l5.l6.l7.l8.jump.com").await;
    // The eight-label record is never asked for.
    assert_eq!(at(&d.walk).as_deref(), Some("l5.l6.l7.l8.jump.com"));
}

#[tokio::test]
async fn a_failed_lookup_is_a_temperror_not_no_record() {
    let dns = dns();
    // Outside the overlay, with DNS off: every lookup fails.
    let d = discover(&dns, "news.example.org").await;
    assert!(d.walk.is_err());
    assert!(d.psl.is_err());
    assert!(d.walk_org.is_err());
    assert!(d.differences().is_empty());
    let a = relaxed(&dns, "news.example.org", "example.org").await;
    assert!(a.walk_aligned().is_err());
    // Equal domains need no lookup at all.
    assert!(
        relaxed(&dns, "x.example.org", "X.example.org.")
            .await
            .walk_aligned()
            .unwrap()
    );
}
