//! `--override` names preflight checks by id: an id no check has is refused before anything
//! runs, with the list of valid ids; a valid one is taken.

use crate::util::{CampaignDir, Spec, run, stderr};

/// `check` and `send` refuse an unknown id with exit code 2 (bad input) and list the ids.
#[test]
fn unknown_override_id_is_refused_with_the_valid_ids() {
    let c = CampaignDir::new(&Spec::default());
    for cmd in ["check", "send"] {
        let out = run(&[cmd, "--override", "no.such-id", c.toml_str()], &[]);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = stderr(&out);
        assert!(err.contains("no.such-id"), "{cmd}: {err}");
        for id in [
            "spf.all",
            "dkim.verify",
            "tls.relay",
            "bulk.visible-unsubscribe",
        ] {
            assert!(err.contains(id), "{cmd}: the error lists {id}: {err}");
        }
    }
    // A prefix of real ids is not an id either.
    let out = run(&["check", "--override", "spf", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("\"spf\""), "{}", stderr(&out));
    assert!(c.eml_files("outbox").is_empty(), "nothing may be written");
    assert!(
        !c.path()
            .join(".mailshot/test-campaign/preflight.json")
            .exists(),
        "send must stop before the audit"
    );
}

/// A real id is accepted: the run goes as it does without it.
#[test]
fn known_override_id_is_accepted() {
    let c = CampaignDir::new(&Spec::default());
    let plain = run(&["check", c.toml_str()], &[]);
    let with = run(&["check", "--override", "spf.all", c.toml_str()], &[]);
    assert_eq!(with.status.code(), plain.status.code());
    assert!(
        !stderr(&with).contains("no preflight check"),
        "{}",
        stderr(&with)
    );
}
