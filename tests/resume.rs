//! Resuming `mailshot send` after SIGKILL, Ctrl-C (SIGINT) and a changed recipient file:
//! nobody lost, duplicates only among recipients the journal declared in doubt.

use std::collections::{BTreeMap, BTreeSet};

use crate::util::background::Background;
use crate::util::journal::read_journal;
use crate::util::scenario::Scenario;
use crate::util::smtp::{Mode, SmtpServer};
use crate::util::{csv_of, message_id, report_counts, run, stderr, stdout};

/// From the resume summary "journal: X sent earlier, Y refused earlier, Z deferred (retried
/// now), N in doubt ...": (X, N).
fn journal_summary(stdout: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("journal: "))
        .unwrap_or_else(|| panic!("no journal summary in:\n{stdout}"));
    let number_before = |what: &str| -> usize {
        let head = &line[..line
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} in {line}"))];
        head.trim_end()
            .rsplit([' ', ','])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("number before {what:?} in {line}"))
    };
    (number_before(" sent earlier"), number_before(" in doubt"))
}

fn received_addresses(server: &SmtpServer) -> Vec<String> {
    server
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(",").to_lowercase())
        .collect()
}

/// THE resume test. 2000 recipients, four senders, no rate limit. mailshot is SIGKILLed at
/// three points (after ~15 %, ~50 % and ~80 % of the list reached the server) and resumed
/// each time with `--in-doubt resend`; the last run finishes. Then: everyone was delivered,
/// the duplicates are no more than (and only among) the recipients the journal declared in
/// doubt, copies carry the same Message-ID, and report, journal and server agree.
#[test]
fn sigkill_three_times_then_resume_delivers_everyone_with_duplicates_only_in_doubt() {
    const N: usize = 2000;
    const CONCURRENCY: usize = 4;
    let all: Vec<String> = (0..N).map(|i| format!("r{i:05}@example.com")).collect();
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml(&format!("[limits]\nconcurrency = {CONCURRENCY}\n"))
        .smtp(Mode::Plain);

    let mut in_doubt_sum = 0;
    let mut in_doubt_union: BTreeSet<String> = BTreeSet::new();
    // What the next run should announce, from this test's own reading of the journal.
    let mut expected: Option<(usize, usize)> = None;
    for (i, fraction) in [0.15, 0.50, 0.80].into_iter().enumerate() {
        let target = (N as f64 * fraction) as usize;
        let extra: &[&str] = if i == 0 {
            &[]
        } else {
            &["--in-doubt", "resend"]
        };
        let mut bg = Background::start(&c, extra, &format!("run{i}"));
        bg.wait_until(&format!("{target} messages arrived"), || {
            server.count() >= target
        });
        bg.signal("-KILL");
        let (status, out, _) = bg.finish();
        assert_eq!(status.code(), None, "killed, not exited: {status}");
        if let Some(want) = expected {
            assert_eq!(journal_summary(&out), want, "run {i} announced");
        }

        let j = read_journal(&c);
        let doubt = j.in_flight();
        // The journal's documented bound: one unresolved I line per sender.
        assert!(
            doubt.len() <= CONCURRENCY,
            "{} in doubt after kill {i}: {doubt:?}",
            doubt.len()
        );
        // Nothing is recorded sent that the server does not have.
        let at_server: BTreeSet<String> = received_addresses(&server).into_iter().collect();
        let last = j.last_states();
        let journal_sent: Vec<&String> = last
            .iter()
            .filter(|(_, (_, k))| *k == 'S')
            .map(|(a, _)| a)
            .collect();
        for a in &journal_sent {
            assert!(
                at_server.contains(*a),
                "journal says {a} sent; the server lacks it"
            );
        }
        for r in c.report("report.csv") {
            if r.status == "sent" {
                assert!(
                    at_server.contains(&r.address),
                    "report says {} sent",
                    r.address
                );
            }
        }
        in_doubt_sum += doubt.len();
        in_doubt_union.extend(doubt.iter().map(|(_, a)| a.clone()));
        expected = Some((journal_sent.len(), doubt.len()));
    }

    let out = run(
        &["send", "--quiet", "--in-doubt", "resend", c.toml_str()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "the last run finishes");
    assert_eq!(journal_summary(&stdout(&out)), expected.unwrap());

    // Everyone delivered; copies only for in-doubt recipients, at most one per declaration.
    let received = server.received();
    let mut copies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &received {
        copies
            .entry(r.rcpt_tos.join(",").to_lowercase())
            .or_default()
            .push(message_id(&r.raw));
    }
    let want: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(
        copies.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "the server's distinct recipients are the CSV's"
    );
    let duplicates = received.len() - copies.len();
    eprintln!(
        "{} messages for {} recipients: {duplicates} duplicate(s); {in_doubt_sum} declared in doubt",
        received.len(),
        copies.len()
    );
    assert!(
        duplicates <= in_doubt_sum,
        "{duplicates} duplicates but only {in_doubt_sum} recipients were declared in doubt"
    );
    for (addr, ids) in &copies {
        if ids.len() > 1 {
            assert!(
                in_doubt_union.contains(addr),
                "{addr} got {} copies but was never in doubt",
                ids.len()
            );
            assert!(
                ids.iter().all(|id| id == &ids[0]),
                "a resend must reuse the Message-ID: {addr} {ids:?}"
            );
        }
    }

    let rows = c.report("report.csv");
    assert_eq!(rows.len(), N);
    assert_eq!(report_counts(&rows), BTreeMap::from([("sent".into(), N)]));
    let j = read_journal(&c);
    assert_eq!(j.runs, 4, "four runs got as far as sending");
    let last = j.last_states();
    assert_eq!(last.len(), N);
    assert!(
        last.values().all(|(_, k)| *k == 'S'),
        "last journal state is S for everyone"
    );
}

/// SIGINT during a paced run: in-flight messages finish, exit 3 with the resume command,
/// nothing left in doubt, the untouched rows `not-attempted`. Resuming needs no
/// `--in-doubt` and delivers the rest: everyone exactly once.
#[test]
fn sigint_finishes_in_flight_and_resume_sends_the_rest_exactly_once() {
    const N: usize = 120;
    let all: Vec<String> = (0..N).map(|i| format!("p{i:03}@example.org")).collect();
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nper_second = 20\nconcurrency = 4\n")
        .smtp(Mode::Plain);

    let mut bg = Background::start(&c, &[], "interrupted");
    bg.wait_until("30 messages arrived", || server.count() >= 30);
    bg.signal("-INT");
    let (status, _, err) = bg.finish();
    assert_eq!(status.code(), Some(3), "stopped part-way");
    assert!(err.contains("Resume with"), "{err}");

    let j = read_journal(&c);
    assert!(
        j.in_flight().is_empty(),
        "in doubt after Ctrl-C: {:?}",
        j.in_flight()
    );
    let rows = c.report("report.csv");
    assert_eq!(rows.len(), N, "every row reported");
    let counts = report_counts(&rows);
    let sent: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.status == "sent")
        .map(|r| r.address.clone())
        .collect();
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["not-attempted", "sent"],
        "{counts:?}"
    );
    let at_server = received_addresses(&server);
    assert_eq!(
        at_server.iter().cloned().collect::<BTreeSet<_>>(),
        sent,
        "the report's sent rows are exactly what the server has"
    );
    assert_eq!(at_server.len(), sent.len(), "nothing twice");
    for r in rows.iter().filter(|r| r.status == "not-attempted") {
        assert_eq!(j.count('I', &r.address), 0, "{} was started", r.address);
    }

    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "no --in-doubt needed");
    let at_server = received_addresses(&server);
    assert_eq!(at_server.len(), N, "each exactly once");
    assert_eq!(
        at_server.into_iter().collect::<BTreeSet<_>>(),
        all.iter().cloned().collect::<BTreeSet<_>>()
    );
    let rows = c.report("report.csv");
    assert_eq!(report_counts(&rows), BTreeMap::from([("sent".into(), N)]));
}

/// A SIGKILL while two messages sit in DATA (aiosmtpd stalls its first two DATA
/// transactions) leaves two `I` lines without an outcome. The next run refuses to guess:
/// exit 2, listing those rows, without sending. `--in-doubt skip` then reports them
/// `in-doubt` (exit 1) and sends everyone else once.
#[test]
fn in_flight_after_sigkill_needs_an_in_doubt_choice_and_skip_reports_them() {
    let all = [
        "ann@example.com",
        "bob@example.org",
        "cat@example.net",
        "dan@example.com",
        "eve@example.org",
        "fay@example.net",
    ];
    let (server, c) = crate::util::background::stalling_two_in_data(&all);

    crate::util::background::kill_in_data(&c, &server, 2);
    let stalled: BTreeSet<String> = server
        .events("data-stall")
        .iter()
        .map(|e| e[1].clone())
        .collect();
    let j = read_journal(&c);
    let doubt = j.in_flight();
    assert_eq!(
        doubt
            .iter()
            .map(|(_, a)| a.clone())
            .collect::<BTreeSet<_>>(),
        stalled,
        "the journal's in-flight recipients are the ones the server was holding"
    );

    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no guessing about in-doubt recipients"
    );
    let err = stderr(&out);
    assert!(err.contains("2 recipients were in flight"), "{err}");
    for (row, addr) in &doubt {
        assert!(err.contains(&format!("row {row}: {addr}")), "{err}");
    }
    assert!(
        err.contains("--in-doubt resend") && err.contains("--in-doubt skip"),
        "{err}"
    );
    assert!(server.received().is_empty(), "nothing sent");
    assert_eq!(read_journal(&c).runs, 1, "the refused run did not start");

    let out = run(
        &["send", "--quiet", "--in-doubt", "skip", c.toml_str()],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "in-doubt rows are not delivered rows"
    );
    let rows = c.report("report.csv");
    for r in &rows {
        let want = if stalled.contains(&r.address) {
            "in-doubt"
        } else {
            "sent"
        };
        assert_eq!(r.status, want, "{r:?}");
    }
    let mut got = received_addresses(&server);
    got.sort();
    let want: Vec<String> = all
        .iter()
        .map(|a| a.to_string())
        .filter(|a| !stalled.contains(a))
        .collect();
    assert_eq!(got, want, "everyone else once; the skipped ones not resent");
}

/// A recipient file changed between runs (rows reordered, two addresses added): exit 2
/// naming the recipients and `--accept-changes`, nothing sent. With the flag, only the new
/// addresses are sent; the earlier ones are matched by address, not row, and skipped.
#[test]
fn changed_recipient_file_needs_accept_changes_and_sends_only_new_addresses() {
    let (server, c) = Scenario::new()
        .recipients(&["ann@example.com", "bob@example.org", "cat@example.net"])
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.received().len(), 3);

    let new_file = csv_of(&[
        "dan@example.com",
        "cat@example.net",
        "ann@example.com",
        "eve@example.org",
        "bob@example.org",
    ]);
    std::fs::write(c.path().join("recipients.csv"), new_file).unwrap();
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("recipients") && err.contains("--accept-changes"),
        "{err}"
    );
    assert_eq!(server.received().len(), 3, "nothing sent");

    let out = run(&["send", "--quiet", "--accept-changes", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let mut got = received_addresses(&server);
    got.sort();
    assert_eq!(
        got,
        [
            "ann@example.com",
            "bob@example.org",
            "cat@example.net",
            "dan@example.com",
            "eve@example.org"
        ],
        "only the new addresses were added"
    );
    let rows = c.report("report.csv");
    let by_row: Vec<(u64, &str, &str)> = rows
        .iter()
        .map(|r| (r.row, r.address.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        by_row,
        [
            (2, "dan@example.com", "sent"),
            (3, "cat@example.net", "sent"),
            (4, "ann@example.com", "sent"),
            (5, "eve@example.org", "sent"),
            (6, "bob@example.org", "sent"),
        ]
    );
    for r in &rows {
        let earlier = r.text.contains("earlier run");
        let old =
            ["ann@example.com", "bob@example.org", "cat@example.net"].contains(&r.address.as_str());
        assert_eq!(earlier, old, "{r:?}");
    }
}

/// A recipient sent in one run and on the suppression list in the next is not sent again
/// later, when the entry is gone: the journal's `S` is the fact that matters. (README: a
/// recipient is sent twice only when a run dies with it in flight.)
#[test]
fn sent_then_suppressed_then_unsuppressed_is_not_sent_twice() {
    let (server, c) = Scenario::new()
        .toml("[suppression]\nfile = \"suppressed.txt\"\n")
        .smtp(Mode::Plain);
    let list = c.path().join("suppressed.txt");
    std::fs::write(&list, "").unwrap();
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));

    // ann unsubscribes after she got the message, then the entry is removed again (an
    // undone unsubscribe, a list rebuilt from another source).
    std::fs::write(&list, "ann@example.com\n").unwrap();
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.received().len(), 3, "run 2 sends nothing");
    std::fs::write(&list, "").unwrap();
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let report = c.report("report.csv");
    assert!(report.iter().all(|r| r.status == "sent"), "{report:?}");

    // Regression test for a bug that was: (src/send/mod.rs, Preparer::run): the suppression
    // check runs before the journal lookup and journals `X` for ann although her last state was
    // `S`; run 3 then sees `X`, which settled_earlier() treats as unsettled, and sends her a
    // second copy.
    let mut got = received_addresses(&server);
    got.sort();
    assert_eq!(
        got,
        ["ann@example.com", "bob@example.org", "cat@example.net"],
        "each recipient exactly once across the three runs"
    );
}
