//! `mailshot dmarc report` on hand-written aggregate reports (tests/fixtures/dmarc, see its
//! README.md): totals per source, broken files, the JSON schema, the recommendation, scale,
//! and the same per-source totals from parsedmarc (PyPI, installed by tests/setup).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{run, stderr, stdout};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dmarc/reports");
const WRAPPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/parsedmarc_json.py"
);
/// parsedmarc is not packaged by Debian; tests/setup pip-installs it into this venv.
const PYTHON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/target/interop-venv/bin/python"
);

const CUT_OFF: &str = "broken/cut-off.xml";
const TRUNCATED_GZ: &str = "broken/google.com!news.example.com!1!2.xml.gz";

/// Messages per source, added up by hand from make_fixtures.py (README.md has the table).
const EXPECTED: [(&str, u64); 5] = [
    // Google 1,200 + 1,100, Yahoo 400, Outlook 600, RFC 9990 reporter 300.
    ("192.0.2.10", 3_600),
    // Google 800 + 750, Outlook 200 (written 2001:DB8:0:0:0:0:0:25).
    ("2001:db8::25", 1_750),
    // The mailing list: Google 30, RFC 9990 reporter 10.
    ("2001:db8:face::1", 40),
    // The forgotten ESP: Yahoo 25, RFC 9990 reporter 5.
    ("198.51.100.7", 30),
    // The spoofer: Google 12, Outlook 8.
    ("203.0.113.66", 20),
];

fn report_json(paths: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["dmarc", "report", "--format", "json"];
    args.extend(paths);
    let out = run(&args, &[]);
    let json: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("dmarc report --format json printed no JSON ({e})"));
    (out.status.code(), json, stderr(&out))
}

fn source<'a>(json: &'a Value, ip: &str) -> &'a Value {
    json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["ip"] == ip)
        .unwrap_or_else(|| panic!("no source {ip} in {:#}", json["sources"]))
}

fn messages_per_source(json: &Value) -> BTreeMap<String, u64> {
    json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["ip"].as_str().unwrap().to_owned(),
                s["messages"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn totals_per_source_match_the_hand_count() {
    let (code, json, _) = report_json(&[FIXTURES]);
    assert_eq!(code, Some(0));
    assert_eq!(json["schema"], "mailshot.dmarc-report/1");

    let expected: BTreeMap<String, u64> = EXPECTED
        .iter()
        .map(|(ip, n)| (ip.to_string(), *n))
        .collect();
    assert_eq!(messages_per_source(&json), expected);

    // (ip, DKIM aligned, SPF aligned, DMARC pass, flagged)
    for (ip, dkim, spf, dmarc, flagged) in [
        ("192.0.2.10", 3_600, 3_600, 3_600, false),
        ("2001:db8::25", 1_750, 1_750, 1_750, false),
        // Forwarded: the signature survives, the list's envelope does not align.
        ("2001:db8:face::1", 40, 0, 40, false),
        // Authenticated as the ESP's own domains, aligned with nothing.
        ("198.51.100.7", 0, 0, 0, true),
        ("203.0.113.66", 0, 0, 0, true),
    ] {
        let s = source(&json, ip);
        assert_eq!(s["dkim_aligned"], dkim, "{ip}");
        assert_eq!(s["spf_aligned"], spf, "{ip}");
        assert_eq!(s["dmarc_pass"], dmarc, "{ip}");
        assert_eq!(s["flagged"], flagged, "{ip}");
        assert_eq!(s["disposition"]["none"], s["messages"], "{ip}");
    }
    // Raw authentication, aligned or not: the ESP passes both, the spoofer neither.
    assert_eq!(source(&json, "198.51.100.7")["dkim_pass"], 30);
    assert_eq!(source(&json, "198.51.100.7")["spf_pass"], 30);
    assert_eq!(source(&json, "203.0.113.66")["dkim_pass"], 0);
    // Reported by both organizations that saw it, more messages first.
    let orgs: Vec<&str> = source(&json, "203.0.113.66")["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["org"].as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["google.com", "Enterprise Outlook"]);

    let totals = &json["totals"];
    assert_eq!(totals["messages"], 5_440);
    assert_eq!(totals["dmarc_pass"], 5_390);
    assert_eq!(totals["dmarc_pass_pct"], 99.08);

    // Five reports: Google twice (zip, Maildir cur/), Yahoo (.xml.gz, and again in new/),
    // Outlook (.eml) and the RFC 9990 reporter (.xml). Maildir/tmp/ is not read at all.
    assert_eq!(json["reports"]["counted"], 5);
    assert_eq!(json["reports"]["duplicates"], 1);
    assert_eq!(json["files"]["found"], 8);
    assert_eq!(json["files"]["read"], 6);
    assert_eq!(json["files"]["skipped"], 2);
    let per_org: BTreeMap<&str, (u64, u64)> = json["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["org"].as_str().unwrap(),
                (
                    o["reports"].as_u64().unwrap(),
                    o["messages"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        per_org,
        BTreeMap::from([
            ("Enterprise Outlook", (1, 808)),
            ("Yahoo", (1, 425)),
            ("google.com", (2, 3_892)),
            ("mx.example.org", (1, 315)),
        ])
    );

    let range = &json["date_range"];
    assert_eq!(range["begin"], "2026-10-01T00:00:00Z");
    assert_eq!(range["end"], "2026-10-22T00:00:00Z");
    assert_eq!(range["days"], 21.0);
}

#[test]
fn broken_files_are_named_and_skipped_while_the_rest_count() {
    let out = run(&["dmarc", "report", FIXTURES], &[]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr(&out);
    let text = stdout(&out);
    for (name, why) in [
        (CUT_OFF, "truncated"),
        (TRUNCATED_GZ, "gzip data is corrupt or truncated"),
    ] {
        let path = Path::new(FIXTURES).join(name);
        let line = err
            .lines()
            .find(|l| l.contains(&*path.to_string_lossy()))
            .unwrap_or_else(|| panic!("{name} not named on stderr:\n{err}"));
        assert!(line.starts_with("mailshot: skipped "), "{line}");
        assert!(line.contains(why), "{line}");
        assert!(
            text.contains(&*path.to_string_lossy()),
            "{name} not in the summary"
        );
    }
    // The half-delivered message in Maildir/tmp/ is neither read nor reported.
    assert!(!err.contains("Maildir/tmp"), "{err}");
    assert!(!text.contains("Maildir/tmp"), "{text}");
    assert!(
        text.contains("Reports read:   5 (and 1 duplicate, counted once)"),
        "{text}"
    );
    assert!(
        text.contains("Files:          8 found, 2 skipped: 2 unreadable"),
        "{text}"
    );
    assert!(
        text.contains("Messages:       5,440, 99.1% aligned"),
        "{text}"
    );
    assert!(
        text.contains("Date range:     2026-10-01 .. 2026-10-21 UTC (21 days)"),
        "{text}"
    );
    let flagged: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_end().ends_with('✗'))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(flagged, ["198.51.100.7", "203.0.113.66"], "{text}");

    // JSON names them too, with their kind.
    let (_, json, _) = report_json(&[FIXTURES]);
    let skipped: Vec<(String, String)> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let at = |name: &str| Path::new(FIXTURES).join(name).display().to_string();
    assert_eq!(
        skipped,
        [
            (at(CUT_OFF), "broken".into()),
            (at(TRUNCATED_GZ), "broken".into())
        ]
    );
}

#[test]
fn the_recommendation_states_its_thresholds() {
    let out = run(&["dmarc", "report", "--quiet", FIXTURES], &[]);
    let text = stdout(&out);
    assert!(
        text.contains("Recommendation for news.example.com (p=none now):"),
        "{text}"
    );
    assert!(
        text.contains("  99.1% of 5,440 messages over 21 days aligned; ready for p=quarantine."),
        "{text}"
    );
    assert!(
        text.contains(
            "  Thresholds: ready to move up one step (none → quarantine → reject) at ≥ 98% of \
             messages aligned over ≥ 14 days and ≥ 1,000 messages; a source is flagged ✗ \
             below 90% aligned."
        ),
        "{text}"
    );
    // The flagged sources' mail is what the next step would quarantine: named before it.
    assert!(
        text.contains("198.51.100.7 (30 of 30 failing), 203.0.113.66 (20 of 20 failing)"),
        "{text}"
    );

    let (_, json, _) = report_json(&[FIXTURES]);
    let domain = &json["domains"][0];
    assert_eq!(domain["domain"], "news.example.com");
    assert_eq!(domain["policy"], "none");
    assert_eq!(domain["recommendation"]["verdict"], "ready");
    assert_eq!(domain["recommendation"]["next_policy"], "quarantine");
    assert_eq!(json["thresholds"]["min_aligned_pct"], 98.0);
    assert_eq!(json["thresholds"]["min_days"], 14.0);
    assert_eq!(json["thresholds"]["min_messages"], 1_000);
}

#[test]
fn nothing_readable_exits_2() {
    let broken = Path::new(FIXTURES).join("broken");
    let missing = Path::new(FIXTURES).join("no-such-folder");
    let (code, json, err) = report_json(&[broken.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(json["reports"]["counted"], 0);
    assert_eq!(json["files"]["skipped"], 3);
    assert!(err.contains("cut-off.xml"), "{err}");
    assert!(err.contains("no-such-folder"), "{err}");
    assert!(
        err.contains("mailshot: error: no DMARC aggregate report could be read"),
        "{err}"
    );
}

/// One report with three records; its source addresses and counts follow from `i`.
fn generated_report(i: u32) -> String {
    let begin = 1_790_812_800 + u64::from(i % 30) * 86_400;
    let mut records = String::new();
    for (ip, count, aligned) in [
        (format!("192.0.2.{}", i % 4 + 1), 10, "pass"),
        ("2001:db8::25".to_owned(), 5, "pass"),
        ("203.0.113.66".to_owned(), 1, "fail"),
    ] {
        records.push_str(&format!(
            "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>{aligned}</dkim><spf>{aligned}</spf>\
             </policy_evaluated></row><identifiers><header_from>news.example.com</header_from>\
             </identifiers><auth_results><spf><domain>news.example.com</domain><result>\
             {aligned}</result></spf></auth_results></record>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>org{}.example</org_name>\
         <email>d@example.org</email><report_id>{i}</report_id><date_range><begin>{begin}</begin>\
         <end>{}</end></date_range></report_metadata><policy_published><domain>news.example.com\
         </domain><p>quarantine</p></policy_published>\n{records}</feedback>\n",
        i % 7,
        begin + 86_399
    )
}

#[test]
fn ten_thousand_reports_in_seconds() {
    const N: u32 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..N {
        let xml = generated_report(i);
        // Every other report gzipped, as they arrive.
        if i % 2 == 0 {
            std::fs::write(dir.path().join(format!("r{i}.xml")), xml).unwrap();
        } else {
            let f = std::fs::File::create(dir.path().join(format!("r{i}.xml.gz"))).unwrap();
            let mut gz =
                mail_auth::flate2::write::GzEncoder::new(f, mail_auth::flate2::Compression::fast());
            gz.write_all(xml.as_bytes()).unwrap();
            gz.finish().unwrap();
        }
    }
    let started = Instant::now();
    let (code, json, _) = report_json(&[dir.path().to_str().unwrap()]);
    let took = started.elapsed();
    eprintln!("10,000 reports summarized in {took:?}");
    assert_eq!(code, Some(0));
    assert_eq!(json["reports"]["counted"], N);
    assert_eq!(json["totals"]["messages"], u64::from(N) * 16);
    assert_eq!(source(&json, "2001:db8::25")["messages"], u64::from(N) * 5);
    assert_eq!(source(&json, "203.0.113.66")["messages"], u64::from(N));
    assert_eq!(
        source(&json, "192.0.2.1")["messages"],
        u64::from(N / 4) * 10
    );
    assert_eq!(json["date_range"]["days"], 30.0);
    // 10,000 of 160,000 messages fail: 93.75%, below 98% at p=quarantine.
    assert_eq!(json["domains"][0]["recommendation"]["verdict"], "fix_first");
    assert_eq!(
        json["domains"][0]["recommendation"]["fix_first"][0]["ip"],
        "203.0.113.66"
    );
    // A debug build on a busy 2-core machine; a release build takes a fraction of this.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

/// parsedmarc's reading of `paths`, as printed by tests/support/parsedmarc_json.py.
fn parsedmarc(paths: &[&Path]) -> Value {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run tests/setup (it installs parsedmarc into the venv)"
    );
    let out = Command::new(PYTHON)
        .arg(WRAPPER)
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON} {WRAPPER}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "parsedmarc_json.py failed:\n{text}\n{err}"
    );
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("parsedmarc_json.py printed bad JSON ({e}):\n{text}\n{err}"))
}

fn per_ip(json: &Value) -> BTreeMap<String, u64> {
    json["sources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(ip, n)| (ip.clone(), n.as_u64().unwrap()))
        .collect()
}

/// mailshot's per-source totals equal parsedmarc's over the same folder, with one
/// intentional difference: parsedmarc repairs an XML report that was cut off (lxml's
/// recover mode) and counts its complete records, while mailshot skips the file and names
/// it, because a cut-off report's totals are silently short. So the comparison is
/// parsedmarc(everything) − parsedmarc(what it salvaged from files mailshot refused).
/// Both drop the repeated Yahoo report (parsedmarc's mailbox readers dedupe on org_name and
/// report_id, which the wrapper does too) and both refuse the truncated gzip.
#[test]
fn per_source_totals_match_parsedmarc() {
    let (_, ours, _) = report_json(&[FIXTURES]);
    let theirs = parsedmarc(&[Path::new(FIXTURES)]);

    let status: BTreeMap<String, String> = theirs["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let refused: Vec<String> = ours["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect();
    let at = |name: &str| Path::new(FIXTURES).join(name).display().to_string();
    assert_eq!(status[&at(TRUNCATED_GZ)], "failed", "{theirs:#}");
    let salvaged: Vec<&String> = refused
        .iter()
        .filter(|p| status.get(*p).is_some_and(|s| s == "aggregate"))
        .collect();
    assert_eq!(salvaged, [&at(CUT_OFF)], "{theirs:#}");
    // Same files read otherwise (the Maildir's tmp/ by neither).
    assert_eq!(
        status.len() as u64,
        ours["files"]["found"].as_u64().unwrap()
    );

    let salvaged_paths: Vec<&Path> = salvaged.iter().map(|p| Path::new(p.as_str())).collect();
    let repaired = parsedmarc(&salvaged_paths);
    let mut expected = per_ip(&theirs);
    for (ip, n) in per_ip(&repaired) {
        let total = expected.get_mut(&ip).unwrap();
        *total -= n;
        if *total == 0 {
            expected.remove(&ip);
        }
    }
    assert_eq!(
        messages_per_source(&ours),
        expected,
        "parsedmarc: {theirs:#}"
    );
    assert_eq!(
        ours["reports"]["counted"].as_u64().unwrap(),
        theirs["reports"].as_u64().unwrap() - repaired["reports"].as_u64().unwrap()
    );
    assert_eq!(ours["reports"]["duplicates"], theirs["duplicates"]);
    assert_eq!(
        ours["totals"]["messages"].as_u64().unwrap(),
        theirs["messages"].as_u64().unwrap() - repaired["messages"].as_u64().unwrap()
    );
}
