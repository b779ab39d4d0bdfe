//! `send --shard K/N` against one real aiosmtpd: shard processes running at once share a
//! list without overlap, a killed shard resumes on its own journal, and `mailshot report`
//! merges the shards' reports and checks that every row is there once.

use std::collections::{BTreeMap, BTreeSet};

use crate::util::background::Background;
use crate::util::scenario::Scenario;
use crate::util::smtp::{Mode, SmtpServer};
use crate::util::{CampaignDir, report_counts, run, stderr};

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("s{i:03}@example.com")).collect()
}

/// Every address the server stored, with how many times.
fn stored(server: &SmtpServer) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in server.received() {
        *m.entry(r.rcpt_tos.join(",")).or_insert(0) += 1;
    }
    m
}

/// A shard's journal, read here: the addresses whose last line is `I` (in doubt).
fn in_doubt(c: &CampaignDir, k: u32, n: u32) -> BTreeSet<String> {
    let path = c
        .path()
        .join(format!(".mailshot/test-campaign/shard-{k}-of-{n}/journal"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut last = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() >= 5 && f[0].len() == 1 {
            last.insert(f[2].to_lowercase(), f[0].to_owned());
        }
    }
    last.into_iter()
        .filter(|(_, k)| k == "I")
        .map(|(a, _)| a)
        .collect()
}

fn shards_at_once(c: &CampaignDir, n: u32, tag: &str) -> Vec<Background> {
    (1..=n)
        .map(|k| Background::start(c, &["--shard", &format!("{k}/{n}")], &format!("{tag}-{k}")))
        .collect()
}

/// Four shard processes at once: each exits 0, the server has every address exactly once,
/// each shard's report holds its rows only, and the merged report is complete.
#[test]
fn four_shards_at_once_send_everyone_exactly_once_and_the_reports_merge() {
    let all = numbered(40);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nconcurrency = 2\n")
        .smtp(Mode::Plain);
    for bg in shards_at_once(&c, 4, "shard") {
        let (status, _, err) = bg.finish();
        assert_eq!(status.code(), Some(0), "{err}");
    }
    let got = stored(&server);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), all);
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    let mut per_shard = 0;
    for k in 1..=4 {
        let rows = c.report(&format!("shard-{k}-of-4/report.csv"));
        assert!(!rows.is_empty(), "shard {k} got no rows");
        per_shard += rows.len();
    }
    assert_eq!(per_shard, all.len(), "no row in two shards' reports");

    let out = run(&["report", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let merged = c.report("report.csv");
    assert_eq!(merged.len(), all.len());
    assert_eq!(
        report_counts(&merged),
        BTreeMap::from([("sent".into(), all.len())])
    );
}

/// One of four shards is killed (SIGKILL) mid-run; the others finish. The merged report then
/// says that shard's rows are missing; its resume (on its own journal) sends the rest, and
/// only its in-doubt recipients can have reached the server twice.
#[test]
fn a_killed_shard_resumes_alone_and_the_merged_report_completes() {
    let all = numbered(80);
    let (server, c) = Scenario::new()
        .recipients(&all)
        .toml("[limits]\nper_second = 10\nconcurrency = 2\n")
        .smtp(Mode::Plain);
    let mut shards = shards_at_once(&c, 4, "killed");
    let mut victim = shards.remove(1);
    victim.wait_until("ten messages stored", || server.count() >= 10);
    victim.signal("-KILL");
    let (status, _, _) = victim.finish();
    assert_eq!(status.code(), None, "killed");
    for bg in shards {
        let (status, _, err) = bg.finish();
        assert_eq!(status.code(), Some(0), "{err}");
    }
    let out = run(&["report", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(1), "shard 2 is incomplete");

    let doubt = in_doubt(&c, 2, 4);
    let out = run(
        &[
            "send",
            "--quiet",
            "--shard",
            "2/4",
            "--in-doubt",
            "resend",
            c.toml_str(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = stored(&server);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), all, "nobody lost");
    for (a, n) in &got {
        assert!(
            *n == 1 || (*n == 2 && doubt.contains(a)),
            "{a} stored {n} times"
        );
    }
    let out = run(&["report", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(c.report("report.csv").len(), all.len());
}

/// `--shard 3/2` and `0/0` are refused before anything happens; a campaign started in four
/// shards refuses two, and refuses a run without --shard, naming the count it was started with.
#[test]
fn bad_and_changed_shard_counts_are_refused() {
    let all = numbered(6);
    let (server, c) = Scenario::new().recipients(&all).smtp(Mode::Plain);
    for bad in ["3/2", "0/0"] {
        let out = run(&["send", "--quiet", "--shard", bad, c.toml_str()], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("numbered 1 to N"), "{}", stderr(&out));
    }
    let out = run(&["send", "--quiet", "--shard", "1/4", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&["send", "--quiet", "--shard", "1/2", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("4 shards") && err.contains("test-campaign"),
        "{err}"
    );
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--shard K/4"), "{}", stderr(&out));
    drop(server);
}
