//! The delivery engine against real aiosmtpd relays: transiently refused recipients wait in
//! the retry queue while their sender goes on, and a stop leaves the waiting ones deferred.
//! Every assertion is read from the server's event log, the report and the journal; none
//! from the wall clock.

use std::collections::BTreeMap;

use crate::util::background::Background;
use crate::util::journal::read_journal;
use crate::util::scenario::{PASSWORD, PASSWORD_ENV, Scenario, USER};
use crate::util::smtp::{Faults, Mode, SmtpServer};
use crate::util::tls::TestPki;
use crate::util::{CampaignDir, Spec, csv_of, report_counts, run, run_from, stderr};

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
    // DATA 5 and 10 (which recipients depends on how the preparers' batches interleave).
    assert_eq!(refused.len(), 2, "{refused:?}");
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

/// One `[[smtp]]` table for a relay on loopback: plain, or STARTTLS with the test account
/// (trusting `ca.pem`, which the caller copies into the campaign).
fn relay(name: &str, port: u16, weight: u32, login: bool) -> String {
    let tls = if login {
        format!(
            "host = \"localhost\"\ntls = \"starttls\"\nca_file = \"ca.pem\"\nusername = \"{USER}\"\npassword_env = \"{PASSWORD_ENV}\"\n"
        )
    } else {
        "host = \"127.0.0.1\"\ntls = \"none\"\n".to_owned()
    };
    format!("[[smtp]]\nname = \"{name}\"\nport = {port}\nweight = {weight}\n{tls}\n")
}

fn campaign_with(csv: &str, tail: &str) -> CampaignDir {
    CampaignDir::new(&Spec {
        csv,
        tail,
        ..Spec::default()
    })
}

fn addresses(server: &SmtpServer) -> Vec<String> {
    server
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect()
}

/// Two relays; the one with three times the weight refuses the login (it knows another
/// password). It is retired before the first message, the other carries the whole run, and
/// the report's relay column names it for every row.
#[test]
fn a_relay_refusing_auth_is_benched_and_the_other_carries_the_run() {
    let all = numbered(12);
    let pki = TestPki::new();
    let good = SmtpServer::start_faulty(
        Mode::Starttls,
        &pki,
        Some((USER, PASSWORD)),
        &Faults::default(),
    );
    let bad = SmtpServer::start_faulty(
        Mode::Starttls,
        &pki,
        Some((USER, "another password")),
        &Faults::default(),
    );
    let tail = format!(
        "{}{}",
        relay("good", good.port, 1, true),
        relay("bad", bad.port, 3, true)
    );
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let c = campaign_with(&csv_of(&refs), &tail);
    std::fs::copy(&pki.ca_pem, c.path().join("ca.pem")).unwrap();

    let out = run(
        &["send", "--quiet", c.toml_str()],
        &[(PASSWORD_ENV, PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("relay bad"), "{}", stderr(&out));
    let mut got = addresses(&good);
    got.sort();
    assert_eq!(got, all, "the good relay took everyone, once");
    assert!(addresses(&bad).is_empty());
    let rows = c.report("report.csv");
    assert!(
        rows.iter().all(|r| r.status == "sent" && r.relay == "good"),
        "{rows:?}"
    );
}

/// Two relays of equal weight; one is killed (SIGKILL) once it has stored a few messages.
/// Nobody is lost, nobody is stored twice except recipients reported in doubt, and the
/// report's relay column adds up to what each server stored.
#[test]
fn a_relay_killed_mid_run_loses_nothing_and_the_relay_column_adds_up() {
    let all = numbered(60);
    let mut a = SmtpServer::plain_faulty(&Faults::default());
    let mut b = SmtpServer::plain_faulty(&Faults::default());
    let tail = format!(
        "{}{}[limits]\nper_second = 30\nconcurrency = 2\n\n[retry]\nattempts = 5\nfirst_delay_secs = 1\n",
        relay("a", a.port, 1, false),
        relay("b", b.port, 1, false)
    );
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let c = campaign_with(&csv_of(&refs), &tail);
    let mut bg = Background::start(&c, &[], "killed-relay");
    bg.wait_until("relay b stored five", || b.count() >= 5);
    b.kill();
    let (status, _, err) = bg.finish();

    let rows = c.report("report.csv");
    let in_doubt: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == "in-doubt")
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(
        status.code(),
        Some(if in_doubt.is_empty() { 0 } else { 1 }),
        "{err}"
    );
    let (at_a, at_b) = (addresses(&a), addresses(&b));
    let mut union: Vec<String> = at_a.iter().chain(&at_b).cloned().collect();
    union.sort();
    let mut once = union.clone();
    once.dedup();
    for a in &all {
        assert!(
            once.contains(a) || in_doubt.contains(&a.as_str()),
            "{a} lost"
        );
    }
    assert!(
        union.len() - once.len() <= in_doubt.len(),
        "duplicates beyond the in-doubt: {union:?}"
    );
    for (name, server) in [("a", &at_a), ("b", &at_b)] {
        let by_report = rows
            .iter()
            .filter(|r| r.status == "sent" && r.relay == name)
            .count();
        let stored_and_sent = rows
            .iter()
            .filter(|r| r.status == "sent" && server.contains(&r.address) && r.relay == name)
            .count();
        assert_eq!(
            by_report, stored_and_sent,
            "relay {name}: every row it is credited with is on it"
        );
    }
    let sent = rows.iter().filter(|r| r.status == "sent").count();
    let credited = rows
        .iter()
        .filter(|r| r.status == "sent" && !r.relay.is_empty())
        .count();
    assert_eq!(sent, credited, "every sent row names its relay");
    assert!(
        sent + in_doubt.len() == all.len(),
        "{:?}",
        report_counts(&rows)
    );
    a.kill();
}

/// `send` with the injected clock `n` days after the harness's fixed time.
fn send_on_day(c: &CampaignDir, n: u64) -> std::process::Output {
    let day = crate::util::FIXED_TIME.parse::<u64>().unwrap() + n * 86_400;
    run(
        &["send", "--quiet", c.toml_str()],
        &[("MAILSHOT_FIXED_TIME", &day.to_string())],
    )
}

/// `per_day = 5` over 12 recipients: the first run sends 5 and stops cleanly (exit 3, saying
/// when the next allowance starts); another run the same day sends nothing; runs on the next
/// two days (the injected clock moved on) send 5 and the last 2.
#[test]
fn per_day_stops_a_run_and_the_next_day_continues() {
    let all = numbered(12);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nper_day = 5\nconcurrency = 2\n")
        .smtp(Mode::Plain);
    let send = |n: u64| send_on_day(&c, n);

    let out = send(0);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("per_day"), "{}", stderr(&out));
    assert_eq!(server.received().len(), 5);
    let rows = c.report("report.csv");
    assert_eq!(
        report_counts(&rows),
        BTreeMap::from([("not-attempted".into(), 7), ("sent".into(), 5)])
    );
    assert_eq!(send(0).status.code(), Some(3));
    assert_eq!(server.received().len(), 5, "nothing more on the same day");
    assert_eq!(send(1).status.code(), Some(3));
    assert_eq!(server.received().len(), 10);
    assert_eq!(send(2).status.code(), Some(0));
    let mut got = addresses(&server);
    got.sort();
    assert_eq!(got, all, "everyone once, over three days");
}

/// `[limits.domains]` paces one provider: two a second to example.org, none to example.com.
/// From the server's arrival times, consecutive example.org messages are about 0.5 s apart
/// (with room for a loaded machine's jitter; unpaced they would be milliseconds apart), and
/// example.com messages arrive between them: the senders did not wait for example.org's slots.
#[test]
fn a_domain_limit_paces_that_domain_only() {
    let org: Vec<String> = (0..5).map(|i| format!("o{i}@example.org")).collect();
    let com: Vec<String> = (0..30).map(|i| format!("c{i:02}@example.com")).collect();
    // example.org first in the file: its later messages wait while example.com's go.
    let all: Vec<String> = org.iter().chain(&com).cloned().collect();
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml(
            "[limits]\nconcurrency = 2\n\n[limits.domains]\n\"example.org\" = { per_second = 2 }\n",
        )
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let mut received = server.received();
    received.sort_by(|a, b| a.received_at.total_cmp(&b.received_at));
    let org_times: Vec<f64> = received
        .iter()
        .filter(|r| r.rcpt_tos[0].ends_with("@example.org"))
        .map(|r| r.received_at)
        .collect();
    assert_eq!(org_times.len(), org.len());
    // Starts are 0.5 s apart; an arrival can lag its start by more than the next one does
    // when the machine is busy, so a gap must be 0.2 s, not 0.5. Unpaced, concurrent
    // senders would deliver them milliseconds apart.
    for pair in org_times.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.2,
            "example.org messages {:.3} s apart",
            pair[1] - pair[0]
        );
    }
    let span = org_times[org_times.len() - 1] - org_times[0];
    // Four intervals of 0.5 s, less a quarter for jitter at either end.
    let least = 0.75 * 0.5 * (org_times.len() - 1) as f64;
    assert!(
        span >= least,
        "{span:.3} s for {} messages",
        org_times.len()
    );
    let between = received
        .iter()
        .filter(|r| r.received_at > org_times[0] && r.received_at < org_times[org_times.len() - 1])
        .filter(|r| r.rcpt_tos[0].ends_with("@example.com"))
        .count();
    assert!(between > 0, "example.com waited for example.org");
}

/// `per_day = 5` with a pace (10 a second) and three senders, so that senders wait for their
/// pacing slot while the cap is reached: the day's slots are taken as messages start, after
/// the wait, so the cap is met exactly (5 stored, 7 not attempted), not cut short by the
/// stop cancelling senders that held a slot while they waited. The next day sends 5 more.
#[test]
fn per_day_with_a_pace_sends_exactly_the_cap() {
    let all = numbered(12);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nper_day = 5\nper_second = 10\nconcurrency = 3\n")
        .smtp(Mode::Plain);
    let send = |n: u64| send_on_day(&c, n);
    let out = send(0);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(server.received().len(), 5);
    assert_eq!(
        report_counts(&c.report("report.csv")),
        BTreeMap::from([("not-attempted".into(), 7), ("sent".into(), 5)])
    );
    assert_eq!(send(1).status.code(), Some(3));
    assert_eq!(server.received().len(), 10);
    let journal = read_journal(&c);
    assert_eq!(journal.runs, 2);
}

/// `per_day = 5` at one message every 2 s (`per_hour = 1800`), one sender, and a clock started
/// at 23:59:52 UTC that runs on: at most 4 messages fit before midnight (so today's cap is
/// never met, and a start-up of up to about 8 s on a loaded machine still leaves one before
/// midnight), and at 00:00 the
/// new day's allowance opens in the same run, which writes the journal's day marker and stops
/// at the new day's cap: exactly 5 sent after the marker, the rest not attempted. A run later
/// that second day sends nothing (the 5 count on it, not on the day the run started); one
/// the next day sends 5 more. How many went before midnight depends on how fast the run
/// started, so it is read from the journal, never assumed.
#[test]
fn per_day_across_midnight_opens_the_new_day_within_the_run() {
    const N: usize = 5;
    let all = numbered(20);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml(&format!(
            "[limits]\nper_day = {N}\nper_hour = 1800\nconcurrency = 1\n"
        ))
        .smtp(Mode::Plain);
    let send = |start: &str| run_from(start, &["send", "--quiet", c.toml_str()]);

    let out = send("2026-11-25T23:59:52Z");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("per_day"), "{}", stderr(&out));
    let journal = read_journal(&c);
    assert_eq!(journal.days.len(), 1, "one midnight, one day marker");
    let (at, time) = &journal.days[0];
    assert!(time.starts_with("2026-11-26T"), "day marker at {time}");
    let sent = |lines: &[crate::util::journal::JournalLine]| {
        lines.iter().filter(|l| l.kind == 'S').count()
    };
    let (before, after) = (sent(&journal.lines[..*at]), sent(&journal.lines[*at..]));
    assert!(
        before < N,
        "{before} before midnight: the old day's cap was not met"
    );
    assert_eq!(after, N, "the new day's allowance, exactly");
    assert_eq!(server.received().len(), before + N);
    assert_eq!(
        report_counts(&c.report("report.csv")),
        BTreeMap::from([
            ("not-attempted".into(), all.len() - before - N),
            ("sent".into(), before + N)
        ])
    );

    let out = send("2026-11-26T12:00:00Z");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        server.received().len(),
        before + N,
        "nothing more on the second day"
    );

    let out = send("2026-11-27T08:00:00Z");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(server.received().len(), before + 2 * N);
    let mut got = addresses(&server);
    let stored = got.len();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), stored, "nobody twice");
}

/// An unusable clock variable stops mailshot before it does anything, naming the variable.
#[test]
fn a_bad_clock_start_is_refused_by_name() {
    let c = CampaignDir::new(&Spec::default());
    let out = run_from("tomorrow", &["send", "--quiet", c.toml_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("MAILSHOT_CLOCK_START"),
        "{}",
        stderr(&out)
    );
    assert!(!c.path().join("outbox").exists());
}
