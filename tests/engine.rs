//! The delivery engine against real aiosmtpd relays: transiently refused recipients wait in
//! the retry queue while their sender goes on, and a stop leaves the waiting ones deferred.
//! Every assertion is read from the server's event log, the report and the journal; none
//! from the wall clock.

use std::collections::BTreeMap;

use crate::util::background::Background;
use crate::util::journal::read_journal;
use crate::util::report_counts;
use crate::util::run;
use crate::util::scenario::Scenario;
use crate::util::smtp::{Faults, Mode, SmtpServer};

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:02}@example.com")).collect()
}

fn every_fifth_data_451() -> Faults {
    Faults {
        data_reply_every: Some((5, "451 4.3.0 local problem, try again later".into())),
        ..Faults::default()
    }
}

/// For each refused DATA: its recipient, and how many other recipients' messages the server
/// stored between that refusal and the recipient's own next stored message.
fn stored_while_waiting(server: &SmtpServer) -> Vec<(String, usize)> {
    let events = server.all_events();
    let mut out = Vec::new();
    for (i, (kind, words)) in events.iter().enumerate() {
        if kind != "data-refused" {
            continue;
        }
        let who = &words[1];
        let between = events[i + 1..]
            .iter()
            .filter(|(k, _)| k == "stored" || k == "data-refused")
            .take_while(|(_, w)| &w[1] != who)
            .filter(|(k, _)| k == "stored")
            .count();
        out.push((who.clone(), between));
    }
    out
}

/// Every fifth DATA answered 451 with one sender and a back-off of seconds: everyone is sent
/// exactly once, and while a refused recipient waits, its (only) sender delivers others.
/// A sender that slept through the back-off would show nothing stored between a refusal and
/// that recipient's retry.
#[test]
fn every_fifth_data_tempfailed_everyone_sent_once_and_the_sender_keeps_working() {
    let all = numbered(30);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 1\n\n[retry]\nattempts = 6\nfirst_delay_secs = 3\n")
        .faults(every_fifth_data_451())
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));

    let rows = c.report("report.csv");
    assert_eq!(
        report_counts(&rows),
        BTreeMap::from([("sent".into(), all.len())])
    );
    let mut got: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect();
    got.sort();
    assert_eq!(got, all, "each stored exactly once");

    // The refusals among the first 20 DATA transactions came while at least ten recipients
    // were still fresh: each refused recipient's sender went on to other messages.
    let refused = server.events("data-refused");
    assert!(refused.len() >= 6, "{refused:?}");
    let early: Vec<(String, usize)> = stored_while_waiting(&server)
        .into_iter()
        .zip(&refused)
        .filter(|(_, e)| e[0].parse::<u32>().unwrap() <= 20)
        .map(|(w, _)| w)
        .collect();
    assert_eq!(early.len(), 4, "DATA 5, 10, 15, 20: {early:?}");
    for (who, between) in &early {
        assert!(*between >= 1, "{who}: nothing stored while it waited");
    }

    // The journal: one I per DATA, a D for each refusal, and S the last word for everyone.
    let j = read_journal(&c);
    let total_data = server.received().len() + refused.len();
    assert_eq!(j.lines.iter().filter(|l| l.kind == 'I').count(), total_data);
    assert_eq!(
        j.lines.iter().filter(|l| l.kind == 'D').count(),
        refused.len()
    );
    let last = j.last_states();
    assert!(all.iter().all(|a| last[a].1 == 'S'), "{last:?}");
}

/// Two recipients refused with an hour's back-off; everyone else is sent and the run waits.
/// The progress line says how many wait; Ctrl-C then ends the run at once with those two
/// `deferred` (journal and report), and the next run sends them.
#[test]
fn ctrl_c_while_retries_wait_leaves_them_deferred_and_the_next_run_sends_them() {
    let all = numbered(10);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 1\n\n[retry]\nattempts = 3\nfirst_delay_secs = 3600\n")
        .faults(every_fifth_data_451())
        .smtp(Mode::Plain);
    let mut bg = Background::send(&c, &[], "waiting");
    bg.wait_until("eight stored and two refused", || {
        server.count() >= 8 && server.events("data-refused").len() >= 2
    });
    bg.wait_until("the progress line counts the waiting", || {
        bg_stderr_has(&c, "2 waiting for a retry")
    });
    bg.signal("-INT");
    let (status, _, err) = bg.finish();
    assert_eq!(status.code(), Some(3), "stopped part-way: {err}");

    let refused: Vec<String> = server
        .events("data-refused")
        .into_iter()
        .map(|e| e[1].clone())
        .collect();
    assert_eq!(refused, ["user04@example.com", "user09@example.com"]);
    let rows = c.report("report.csv");
    assert_eq!(
        report_counts(&rows),
        BTreeMap::from([("deferred".into(), 2), ("sent".into(), 8)])
    );
    for r in rows.iter().filter(|r| r.status == "deferred") {
        assert!(refused.contains(&r.address), "{r:?}");
        assert_eq!(r.code, "451", "{r:?}");
    }
    let j = read_journal(&c);
    assert!(j.in_flight().is_empty(), "{:?}", j.in_flight());
    let last = j.last_states();
    for a in &refused {
        assert_eq!(last[a].1, 'D', "{a}");
    }

    // DATA 11 and 12: neither is a fifth, so both go through.
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.received().len(), 10, "each exactly once");
    let rows = c.report("report.csv");
    assert_eq!(report_counts(&rows), BTreeMap::from([("sent".into(), 10)]));
}

fn bg_stderr_has(c: &crate::util::CampaignDir, needle: &str) -> bool {
    std::fs::read_to_string(c.path().join("waiting.stderr")).is_ok_and(|s| s.contains(needle))
}
