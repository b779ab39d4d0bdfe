//! `send --seed`: one copy to each seed address before the campaign, outside the journal, the
//! report and the counts, and never suppressed.

use crate::util::journal::read_journal;
use crate::util::scenario::{PASSWORD, PASSWORD_ENV, Scenario};
use crate::util::smtp::Mode;
use crate::util::{run, stdout};

#[test]
fn seed_copies_arrive_first_and_stay_out_of_journal_and_report() {
    let (server, c) = Scenario::new().login().smtp(Mode::Starttls);
    // A suppression list naming the seed: a seed is sent anyway.
    std::fs::write(
        c.path().join("suppressed.csv"),
        "email\nme@seed.example.net\n",
    )
    .unwrap();
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    std::fs::write(
        &c.toml,
        format!("{toml}\n[suppression]\nfile = \"suppressed.csv\"\n"),
    )
    .unwrap();
    let out = run(
        &[
            "send",
            "--seed",
            "me@seed.example.net",
            "--seed",
            "Second Seed <two@seed.example.org>",
            c.toml_str(),
        ],
        &[(PASSWORD_ENV, PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(0));
    let got = server.received();
    let rcpts: Vec<&str> = got.iter().map(|r| r.rcpt_tos[0].as_str()).collect();
    // The seeds first, in order; the campaign's recipients (sent concurrently) after.
    assert_eq!(rcpts[..2], ["me@seed.example.net", "two@seed.example.org"]);
    let mut rest = rcpts[2..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        ["ann@example.com", "bob@example.org", "cat@example.net"]
    );
    // The campaign's recipients arrive only after both seeds.
    let last_seed = got[1].received_at;
    assert!(got[2..].iter().all(|r| r.received_at >= last_seed));
    // The seed copy is the campaign's message, addressed to the seed.
    let seed = String::from_utf8_lossy(&got[0].raw);
    assert!(
        seed.contains("\r\nTo: me@seed.example.net\r\n")
            || seed.contains("\r\nTo: <me@seed.example.net>\r\n"),
        "{seed}"
    );
    assert!(seed.contains("DKIM-Signature:"));

    let report = c.report("report.csv");
    assert_eq!(report.len(), 3, "{report:?}");
    assert!(report.iter().all(|r| !r.address.contains("seed.example")));
    let journal = read_journal(&c);
    assert!(
        journal
            .lines
            .iter()
            .all(|l| !l.address.contains("seed.example"))
    );
    // The summary counts the campaign only.
    assert!(stdout(&out).contains("3 sent"), "{}", stdout(&out));
}

#[test]
fn a_bad_seed_address_stops_before_anything_is_sent() {
    let (server, c) = Scenario::new().login().smtp(Mode::Starttls);
    let out = run(
        &["send", "--seed", "not-an-address", c.toml_str()],
        &[(PASSWORD_ENV, PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::util::stderr(&out).contains("--seed \"not-an-address\""));
    assert!(server.received().is_empty());
}
