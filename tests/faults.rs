//! `mailshot send` against faulty relays: dropped connections, refused greetings, 4xx and 5xx
//! replies, idle timeouts and a relay that refuses everyone. Each test checks that the report,
//! the journal and what the server actually received tell the same story.
//!
//! Faults a real server produces on demand are injected into aiosmtpd through its own hooks
//! and options (`util::smtp::Faults`). Only the ones it cannot produce (a 421 greeting for
//! chosen connections, a connection cut halfway through DATA) come from the scripted
//! responder (`util::smtp::scripted`), which speaks just enough SMTP for lettre.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::util::journal::read_journal;
use crate::util::scenario::Scenario;
use crate::util::smtp::scripted::Script;
use crate::util::smtp::{Faults, Mode, SmtpServer};
use crate::util::tls::TestPki;
use crate::util::{ReportRow, message_id, report_counts, run, stderr};

/// Every RCPT answered with a policy refusal (5.7.1), which is no unknown user.
fn refusing_everyone() -> Faults {
    Faults {
        rcpt_reply: vec![(
            "*".into(),
            "550 5.7.1 sender address blocked by policy".into(),
        )],
        ..Faults::default()
    }
}

/// `n` distinct addresses: user00@example.com, user01@example.com, ...
fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:02}@example.com")).collect()
}

fn by_address(rows: &[ReportRow]) -> BTreeMap<String, ReportRow> {
    rows.iter()
        .map(|r| (r.address.to_ascii_lowercase(), r.clone()))
        .collect()
}

fn addresses_with(rows: &[ReportRow], status: &str) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.status == status)
        .map(|r| r.address.to_ascii_lowercase())
        .collect()
}
/// A connection cut after the whole message was handed over, before the relay answered, is
/// in doubt: the relay may have queued it. mailshot does not retry it (a retry could deliver
/// it twice), keeps its `I` line as the journal's last word, and reports it `in-doubt`; the
/// next run asks, and `--in-doubt resend` delivers it. Nothing is ever reported `sent`
/// that the server did not acknowledge, and nobody gets two copies.
#[test]
fn connection_dropped_during_data_is_in_doubt_and_resent_only_on_request() {
    let once = [
        "ann@example.com",
        "bob@example.org",
        "cat@example.net",
        "dan@example.com",
        "eve@example.org",
    ];
    let always = "lost@example.net";
    let mut cut_data: HashMap<String, usize> = once.iter().map(|a| (a.to_string(), 1)).collect();
    cut_data.insert(always.into(), usize::MAX);
    let all: Vec<&str> = once.iter().copied().chain([always]).collect();
    let (responder, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 2\n\n[retry]\nattempts = 3\nfirst_delay_secs = 0\n")
        .scripted(Script {
            cut_data,
            ..Script::default()
        });

    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "in-doubt recipients are not delivered"
    );
    let rows = c.report("report.csv");
    assert_eq!(rows.len(), all.len());
    for r in &rows {
        assert_eq!(r.status, "in-doubt", "{r:?}");
        assert!(r.text.contains("may or may not"), "{r:?}");
    }
    {
        // The guard holds the responder's lock: release it before the next run connects.
        let seen = responder.seen();
        assert!(seen.delivered.is_empty(), "every DATA was cut");
        for a in &all {
            assert_eq!(seen.data_attempts.get(*a), Some(&1), "not retried: {a}");
        }
    }
    let j = read_journal(&c);
    let last = j.last_states();
    for a in &all {
        assert_eq!(
            last[*a].1, 'I',
            "the in-flight line stays the last word for {a}"
        );
        assert_eq!(j.count('D', a), 0);
    }

    // The next run asks; with --in-doubt resend the five are delivered once each.
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "in-doubt recipients need a decision"
    );
    let out = run(
        &["send", "--quiet", "--in-doubt", "resend", c.toml_str()],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the always-cut recipient is in doubt again"
    );
    let report = by_address(&c.report("report.csv"));
    for a in once {
        assert_eq!(
            (report[a].status.as_str(), report[a].code.as_str()),
            ("sent", "250")
        );
    }
    assert_eq!(report[always].status, "in-doubt");
    let seen = responder.seen();
    let mut delivered: Vec<String> = seen.delivered.iter().map(|(a, _)| a.clone()).collect();
    delivered.sort();
    let mut want: Vec<String> = once.iter().map(|a| a.to_string()).collect();
    want.sort();
    assert_eq!(
        delivered, want,
        "delivered exactly once each, never {always}"
    );
    for (addr, raw) in &seen.delivered {
        assert_eq!(message_id(raw), report[addr].message_id, "{addr}");
    }
    let j = read_journal(&c);
    for a in once {
        assert_eq!(j.last_states()[a].1, 'S', "{a}");
    }
}

/// A relay that says 354 and then closes without reading the message: a message larger than
/// the socket buffers cannot be written whole, so the relay cannot have it. It is deferred and
/// retried, not reported in doubt, and the retry delivers it once.
#[test]
fn message_cut_off_while_being_written_is_retried_not_in_doubt() {
    // 8 MB of text: twice the largest send buffer Linux grants by default (tcp_wmem).
    let line = "All the news that fits, and a little more to make this line long.\n";
    let text = format!(
        "Hi {{{{first_name}}}},\n{}Unsubscribe: {{{{unsubscribe_url}}}}\n",
        line.repeat(8 << 20 >> 6)
    );
    let (responder, c) = Scenario::new()
        .recipients(&["ann@example.com"])
        .text(&text)
        .html(None)
        .toml("[retry]\nattempts = 2\nfirst_delay_secs = 0\n")
        .scripted(Script {
            close_at_354: HashMap::from([("ann@example.com".to_owned(), 1)]),
            ..Script::default()
        });
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = by_address(&c.report("report.csv"));
    assert_eq!(report["ann@example.com"].status, "sent");
    assert_eq!(responder.delivered_to(), ["ann@example.com"]);
    assert_eq!(
        responder.seen().data_attempts.get("ann@example.com"),
        Some(&2)
    );
    let j = read_journal(&c);
    let a = "ann@example.com";
    assert_eq!(
        (j.count('I', a), j.count('D', a), j.count('S', a)),
        (2, 1, 1)
    );
}

/// With pipelining, a relay that refuses a recipient and hangs up before answering DATA (as
/// Postfix does after too many errors) has still refused that recipient: it is failed with
/// the 550, once, not deferred and retried; the others go out on a new connection.
#[test]
fn pipelined_refusal_followed_by_a_hang_up_is_a_refusal() {
    let all = ["ann@example.com", "bob@example.org", "cat@example.net"];
    let (responder, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 1\n\n[retry]\nattempts = 3\nfirst_delay_secs = 0\n")
        .scripted(Script {
            pipelining: true,
            refuse_rcpt_and_hang_up: vec!["bob@example.org".into()],
            ..Script::default()
        });
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = by_address(&c.report("report.csv"));
    let bob = &report["bob@example.org"];
    assert_eq!(
        (bob.status.as_str(), bob.code.as_str()),
        ("failed", "550"),
        "{bob:?}"
    );
    assert!(bob.text.contains("5.1.1"), "{bob:?}");
    for a in ["ann@example.com", "cat@example.net"] {
        assert_eq!(report[a].status, "sent", "{:?}", report[a]);
    }
    let mut delivered = responder.delivered_to();
    delivered.sort();
    assert_eq!(delivered, ["ann@example.com", "cat@example.net"]);
    let seen = responder.seen();
    assert_eq!(
        seen.rcpt_attempts.get("bob@example.org"),
        Some(&1),
        "not retried"
    );
    assert_eq!(seen.data_attempts.get("bob@example.org"), None);
    drop(seen);
    let j = read_journal(&c);
    let b = "bob@example.org";
    assert_eq!(
        (j.count('I', b), j.count('F', b), j.count('D', b)),
        (1, 1, 0)
    );
}

/// A 421 greeting on the very first connection is mailshot's start check failing: "cannot
/// start", exit 2, one connection tried, nothing journaled or sent. Run again once the relay
/// answers, the campaign goes out whole.
#[test]
fn greeting_421_on_the_first_connection_means_cannot_start() {
    let (responder, c) = Scenario::new()
        .toml("[retry]\nattempts = 3\nfirst_delay_secs = 0\n")
        .scripted(Script {
            refuse_greeting: vec![1],
            ..Script::default()
        });
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2), "could not start");
    let err = stderr(&out);
    assert!(err.contains("cannot start") && err.contains("421"), "{err}");
    {
        let seen = responder.seen();
        assert_eq!(
            (seen.connections, seen.refused_greetings),
            (1, 1),
            "the start check is one attempt"
        );
        assert!(seen.delivered.is_empty());
    }
    let state = c.path().join(".mailshot/test-campaign");
    assert!(
        !state.join("journal").exists(),
        "nothing was attempted, so nothing is journaled"
    );
    assert!(!state.join("report.csv").exists());

    // The relay recovered (connection 2 is greeted normally).
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let mut got = responder.delivered_to();
    got.sort();
    assert_eq!(
        got,
        ["ann@example.com", "bob@example.org", "cat@example.net"]
    );
    let rows = c.report("report.csv");
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:?}");
}

/// After the start check, a 421 greeting hits one send attempt: it is transient (and a
/// throttling reply), retried, and every recipient ends up sent exactly once. The journal
/// records exactly that one refusal.
#[test]
fn greeting_421_after_the_start_check_is_retried() {
    // The start check's connection hangs up after its NOOP, so the first message needs a
    // new connection, which is number 2: the one refused.
    let all = [
        "ann@example.com",
        "bob@example.org",
        "cat@example.net",
        "dan@example.com",
    ];
    let (responder, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 2\n\n[retry]\nattempts = 3\nfirst_delay_secs = 0\n")
        .scripted(Script {
            hang_up_after_noop: vec![1],
            refuse_greeting: vec![2],
            ..Script::default()
        });
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "the 421 was retried");

    let rows = c.report("report.csv");
    assert_eq!(report_counts(&rows), BTreeMap::from([("sent".into(), 4)]));
    let mut got = responder.delivered_to();
    got.sort();
    assert_eq!(got, all, "each delivered exactly once");
    assert_eq!(responder.seen().refused_greetings, 1);

    let j = read_journal(&c);
    let deferred: Vec<_> = j.lines.iter().filter(|l| l.kind == 'D').collect();
    assert_eq!(
        deferred.len(),
        1,
        "one refused greeting, one D line: {deferred:?}"
    );
    assert_eq!(deferred[0].code, "421", "{deferred:?}");
    let last = j.last_states();
    assert!(all.iter().all(|a| last[*a].1 == 'S'), "{last:?}");
}

/// aiosmtpd answers every third DATA with 451 (its handle_DATA hook). All recipients end up
/// sent, none deferred, each stored exactly once, and the journal's 451 lines match the
/// server's refusals one for one.
///
/// One sender, so the retry is the very next DATA and cannot be refused again. (With two
/// senders and no retry delay the timing phase-locks: a 451 closes lettre's connection, the
/// reconnect lasts about two of the other sender's transactions, and the same recipient
/// lands on every third DATA until its attempts run out.)
#[test]
fn every_third_data_answered_451_is_retried_until_sent() {
    let every = 3;
    let all = numbered(12);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 1\n\n[retry]\nattempts = 3\nfirst_delay_secs = 0\n")
        .faults(Faults {
            data_reply_every: Some((every, "451 4.3.0 local problem, try again later".into())),
            ..Faults::default()
        })
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));

    let rows = c.report("report.csv");
    assert_eq!(
        report_counts(&rows),
        BTreeMap::from([("sent".into(), all.len())]),
        "no deferred"
    );
    let received = server.received();
    let mut got: Vec<String> = received.iter().map(|r| r.rcpt_tos.join(",")).collect();
    got.sort();
    assert_eq!(got, all, "each stored exactly once");

    // 12 stored + R refused DATA, every third refused and the last one stored: R = 5.
    let refused = server.events("data-refused");
    let total_data = received.len() + refused.len();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert_eq!(total_data, 17);
    let refused_numbers: Vec<&str> = refused.iter().map(|e| e[0].as_str()).collect();
    assert_eq!(refused_numbers, ["3", "6", "9", "12", "15"]);

    // Each refusal is one D line with 451 for the same recipient, in the same order, and
    // the refused recipient's next DATA (its retry) was stored.
    let j = read_journal(&c);
    let journal_refused: Vec<String> = j
        .lines
        .iter()
        .filter(|l| l.kind == 'D')
        .inspect(|l| assert_eq!(l.code, "451", "{l:?}"))
        .map(|l| l.address.clone())
        .collect();
    let server_refused: Vec<String> = refused.iter().map(|e| e[1].clone()).collect();
    assert_eq!(journal_refused, server_refused);
    for e in &refused {
        assert_eq!(j.count('D', &e[1]), 1, "{} refused once, then sent", e[1]);
    }
    // One I line per DATA the server saw, and the last word S for everyone.
    assert_eq!(j.lines.iter().filter(|l| l.kind == 'I').count(), total_data);
    let last = j.last_states();
    assert!(all.iter().all(|a| last[a].1 == 'S'), "{last:?}");
}

/// A 550 fails that recipient at once, with no retry: the server sees one RCPT for it.
/// With `add_permanent_failures`, a 5.1.1 (unknown user) is added to the suppression list
/// and a policy 5.7.1 is not; a second run reports the first `suppressed` and sends nothing.
/// The envelope goes out pipelined (RFC 2920), so the refused RCPT's DATA is refused too and
/// the connection must be reset, not reused mid-transaction.
#[test]
fn permanent_550_fails_once_and_a_5_1_1_lands_in_the_suppression_list() {
    permanent_550(true);
}

/// The same, to a relay without PIPELINING: MAIL, RCPT and DATA one at a time.
#[test]
fn permanent_550_without_pipelining_fails_once_and_the_rest_are_sent() {
    permanent_550(false);
}

fn permanent_550(pipelining: bool) {
    let (server, c) = Scenario::new()
        .toml("[retry]\nattempts = 3\nfirst_delay_secs = 0\n\n[suppression]\nfile = \"suppressed.txt\"\nadd_permanent_failures = true\n")
        .faults(Faults {
            no_pipelining: !pipelining,
            fail_rcpt: vec!["bob@example.org".into()],
            rcpt_reply: vec![(
                "cat@example.net".into(),
                "550 5.7.1 <cat@example.net>: rejected by local policy".into(),
            )],
            ..Faults::default()
        })
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(1), "some failed");

    let report = by_address(&c.report("report.csv"));
    assert_eq!(report["ann@example.com"].status, "sent");
    for (a, enhanced) in [("bob@example.org", "5.1.1"), ("cat@example.net", "5.7.1")] {
        let r = &report[a];
        assert_eq!(
            (r.status.as_str(), r.code.as_str()),
            ("failed", "550"),
            "{r:?}"
        );
        assert!(r.text.contains(enhanced), "{r:?}");
    }
    let got: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect();
    assert_eq!(got, ["ann@example.com"]);
    let want = if pipelining { "pipelined" } else { "alone" };
    let mails = server.events("mail");
    assert_eq!(mails.len(), 3, "one MAIL FROM per recipient: {mails:?}");
    assert!(mails.iter().all(|e| e[0] == want), "{want}: {mails:?}");
    // Not retried: one RCPT refusal each on the server, one I and one F in the journal.
    let refusals: Vec<String> = server
        .events("rcpt-refused")
        .iter()
        .map(|e| format!("{} {}", e[0], e[1]))
        .collect();
    assert_eq!(
        refusals.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"bob@example.org 550".into(), &"cat@example.net 550".into()]),
        "{refusals:?}"
    );
    assert_eq!(refusals.len(), 2, "no retry of a 5xx: {refusals:?}");
    let j = read_journal(&c);
    for a in ["bob@example.org", "cat@example.net"] {
        assert_eq!(
            (j.count('I', a), j.count('F', a), j.count('D', a)),
            (1, 1, 0),
            "{a}"
        );
    }

    // Only the unknown user is suppressed from now on.
    let list = std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap();
    let entries: Vec<&str> = list
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(entries, ["bob@example.org"], "{list}");

    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    let report = by_address(&c.report("report.csv"));
    assert_eq!(report["bob@example.org"].status, "suppressed");
    assert_eq!(report["ann@example.com"].status, "sent", "from the journal");
    assert_eq!(
        report["cat@example.net"].status, "failed",
        "a permanent refusal is not retried on resume"
    );
    assert_eq!(out.status.code(), Some(1), "cat is still failed");
    assert_eq!(server.received().len(), 1, "the second run sent nothing");
    assert_eq!(server.events("rcpt-refused").len(), 2, "nor tried anyone");
}

/// aiosmtpd closes connections idle for 0.5 s, and one message a second leaves every pooled
/// connection idle longer than that. The pool notices the dead connections: every recipient
/// is still sent exactly once, with no deferral. One attempt per recipient: a closed pooled
/// connection must not cost one (a retry that happened to land on a fresh connection used
/// to hide it, and the test failed under load when it did not).
#[test]
fn server_closing_idle_pooled_connections_loses_nothing() {
    let all = [
        "ann@example.com",
        "bob@example.org",
        "cat@example.net",
        "dan@example.com",
        "eve@example.org",
    ];
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nper_second = 1\nconcurrency = 2\n\n[retry]\nattempts = 1\n")
        .faults(Faults {
            idle_timeout: Some(0.5),
            ..Faults::default()
        })
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let rows = c.report("report.csv");
    assert_eq!(report_counts(&rows), BTreeMap::from([("sent".into(), 5)]));
    let mut got: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect();
    got.sort();
    assert_eq!(got, all, "each exactly once");
    // The fault really happened: the server timed connections out while mailshot ran.
    let timeouts = server.log().matches("connection timeout").count();
    assert!(timeouts >= 2, "aiosmtpd timed out {timeouts} connection(s)");
    let j = read_journal(&c);
    assert!(all.iter().all(|a| j.count('S', a) == 1));
}

/// A relay that refuses every recipient with a policy 550 5.7.1 trips the circuit breaker
/// after max(10, 2 * concurrency) refusals in a row: exit 3, the rest `not-attempted` and
/// never shown to the server, every row accounted for. Policy refusals are not unknown
/// users, so nothing is added to the suppression list.
#[test]
fn circuit_breaker_stops_when_every_recipient_is_refused() {
    let total = 60;
    let all = numbered(total);
    let concurrency = 2;
    let limit = (2 * concurrency).max(10);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml(&format!(
            "[limits]\nconcurrency = {concurrency}\n\n[suppression]\nfile = \"suppressed.txt\"\nadd_permanent_failures = true\n"
        ))
        .faults(refusing_everyone())
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(3), "stopped part-way");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{limit} recipients in a row were refused")),
        "{err}"
    );

    let rows = c.report("report.csv");
    assert_eq!(rows.len(), total, "every row reported");
    let counts = report_counts(&rows);
    let failed = counts.get("failed").copied().unwrap_or(0);
    let not_attempted = counts.get("not-attempted").copied().unwrap_or(0);
    assert_eq!(failed + not_attempted, total, "{counts:?}");
    // At least the limit; beyond it only what was already in flight when it tripped (the
    // bound is loose because outcomes reach the breaker asynchronously).
    assert!(
        failed >= limit && failed <= 2 * limit,
        "{failed} refused before the stop"
    );
    assert!(server.received().is_empty());

    // The server refused exactly the recipients reported failed, each once; the
    // not-attempted ones never reached it. The journal says the same.
    let refused: Vec<String> = server
        .events("rcpt-refused")
        .iter()
        .map(|e| e[0].clone())
        .collect();
    let refused_set: BTreeSet<String> = refused.iter().cloned().collect();
    assert_eq!(
        refused.len(),
        refused_set.len(),
        "no recipient refused twice"
    );
    assert_eq!(refused_set, addresses_with(&rows, "failed"));
    let j = read_journal(&c);
    let journal_failed: BTreeSet<String> = j
        .last_states()
        .into_iter()
        .filter(|(_, (_, s))| *s == 'F')
        .map(|(a, _)| a)
        .collect();
    assert_eq!(journal_failed, refused_set);
    assert!(j.in_flight().is_empty(), "{:?}", j.in_flight());
    for a in addresses_with(&rows, "not-attempted") {
        assert_eq!(j.count('I', &a), 0, "{a} was never started");
    }

    let list = std::fs::read_to_string(c.path().join("suppressed.txt")).unwrap_or_default();
    assert!(
        list.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "a 5.7.1 policy refusal is not an unknown user: {list}"
    );

    // Last, so that everything above is checked even while this fails.
    // Regression test for a bug that was: (src/commands/send.rs, hint()): the breaker's text
    // contains "refused", so the fix printed is the one for an unreachable relay ("check
    // smtp.host and smtp.port, and that the relay is reachable"), though the relay answered
    // every command. The fix must point at the sender (account, sender address), not at the
    // network.
    let fix = err
        .lines()
        .find(|l| l.trim_start().starts_with("fix:"))
        .unwrap_or("");
    assert!(
        !fix.contains("reachable") && !fix.contains("smtp.port"),
        "misleading fix for a tripped circuit breaker: {fix}"
    );
}

/// After the circuit breaker stopped a run and the sender problem is fixed (here: the
/// campaign points at a relay that accepts), resuming sends the `not-attempted` rest. The
/// recipients refused in the first run stay `failed` without being tried again.
#[test]
fn resume_after_the_circuit_breaker_sends_the_rest() {
    let pki = TestPki::new();
    let total = 40;
    let all = numbered(total);
    let (refusing, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 2\n")
        .faults(refusing_everyone())
        .smtp(Mode::Plain);
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(3), "the breaker tripped");
    let first = c.report("report.csv");
    let refused = addresses_with(&first, "failed");
    let untried = addresses_with(&first, "not-attempted");
    assert_eq!(refused.len() + untried.len(), total);
    assert!(!untried.is_empty());

    // The sender is fixed: a relay that accepts. campaign.toml is not part of the journal's
    // fingerprint, so this is a plain resume.
    let accepting = SmtpServer::start(Mode::Plain, &pki, None);
    let toml = std::fs::read_to_string(&c.toml).unwrap();
    let toml = toml.replace(
        &format!("port = {}\n", refusing.port),
        &format!("port = {}\n", accepting.port),
    );
    std::fs::write(&c.toml, toml).unwrap();

    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    let second = c.report("report.csv");
    // Regression test for a bug that was: (src/send/mod.rs, Pipeline::run's outcome loop): rows
    // refused in an earlier run come back from the journal as `failed` outcomes with a
    // message_id, and the breaker counts them as fresh refusals; ten of them in a row trip it
    // again before the relay is even asked, so a campaign stopped by the breaker can never be
    // resumed.
    assert_eq!(
        addresses_with(&second, "sent"),
        untried,
        "the resume sends exactly the rows the breaker left untried"
    );
    assert_eq!(addresses_with(&second, "failed"), refused);
    assert_eq!(
        out.status.code(),
        Some(1),
        "finished, with the earlier refusals failed"
    );
    let mut got: Vec<String> = accepting
        .received()
        .iter()
        .map(|r| r.rcpt_tos.join(","))
        .collect();
    got.sort();
    assert_eq!(got, untried.into_iter().collect::<Vec<_>>());
}
