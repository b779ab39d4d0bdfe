//! `mailshot suppress`: what is written reads back exactly as written (issue 16, item 4),
//! through the store, the text export and a second import, and `send` matches it exactly.

use std::collections::BTreeSet;

use crate::util::{CampaignDir, Spec, run, stderr, stdout};

const STORE: &str = "[suppression]\nfile = \"suppressed.txt\"\n";

fn campaign() -> CampaignDir {
    CampaignDir::new(&Spec {
        tail: &format!("[outbox]\ndir = \"outbox\"\n\n{STORE}"),
        ..Spec::default()
    })
}

fn entries(c: &CampaignDir) -> BTreeSet<String> {
    let out = run(&["suppress", "list", "--format", "json", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| r["entry"].as_str().unwrap().to_owned())
        .collect()
}

/// Entries with `#`, quotes, spaces in a quoted local part and a trailing dot survive the
/// store, `export`, and `import` into another campaign, byte for byte.
#[test]
fn hostile_entries_read_back_exactly_through_store_export_and_import() {
    let hostile = [
        "example.com#fail@attacker.example",
        "\"a b\"@example.com",
        "\"x#y z\"@example.com",
        "user.@example.com",
        "ann@example.com.",
        "@blocked.example",
    ];
    let a = campaign();
    let mut args = vec!["suppress", "add", a.toml_str(), "--reason", "hard-bounce"];
    args.extend(hostile);
    let out = run(&args, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).starts_with("added 6, already on the list 0"),
        "{}",
        stdout(&out)
    );
    let want: BTreeSet<String> = hostile.iter().map(|s| s.to_string()).collect();
    assert_eq!(entries(&a), want);

    let export = run(&["suppress", "export", a.toml_str()], &[]);
    assert_eq!(export.status.code(), Some(0));
    let text = a.path().join("exported.txt");
    std::fs::write(&text, &export.stdout).unwrap();
    let b = campaign();
    let out = run(
        &["suppress", "import", b.toml_str(), text.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(entries(&b), want, "export then import");
    let listed = run(&["suppress", "list", "--format", "json", b.toml_str()], &[]);
    assert!(
        stdout(&listed).matches("\"hard-bounce\"").count() == 6,
        "reasons kept"
    );

    // Adding again changes nothing; removing one takes exactly that one off.
    let out = run(
        &["suppress", "add", b.toml_str(), "\"a b\"@example.com"],
        &[],
    );
    assert!(
        stdout(&out).starts_with("added 0, already on the list 1"),
        "{}",
        stdout(&out)
    );
    let out = run(
        &[
            "suppress",
            "remove",
            b.toml_str(),
            "example.com#fail@attacker.example",
        ],
        &[],
    );
    assert!(stdout(&out).starts_with("removed 1"), "{}", stdout(&out));
    assert_eq!(entries(&b).len(), 5);
}

/// The poisoning of issue 16, item 4: an address with `#` on the list must not turn into its
/// domain. `send` still writes ann@example.com and suppresses only the listed addresses.
#[test]
fn an_address_with_a_hash_does_not_suppress_its_domain() {
    let c = CampaignDir::new(&Spec {
        csv: "email,first_name\nann@example.com,Ann\nbob@example.org,Bob\ncat@example.net,Cat\n",
        tail: &format!("[outbox]\ndir = \"outbox\"\n\n{STORE}"),
        ..Spec::default()
    });
    // The line as mailshot before the store appended it for a hard bounce, then a new entry.
    std::fs::write(
        c.path().join("suppressed.txt"),
        "example.com#fail@attacker.example # 2026-11-01T00:00:00Z 550 5.1.1 unknown\n",
    )
    .unwrap();
    let out = run(&["suppress", "add", c.toml_str(), "Cat@Example.NET"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["send", "--quiet", c.toml_str()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = c.report("report.csv");
    let status = |a: &str| {
        report
            .iter()
            .find(|r| r.address == a)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(status("ann@example.com"), "written");
    assert_eq!(status("bob@example.org"), "written");
    assert_eq!(status("cat@example.net"), "suppressed");
}

/// A hand-written list with a bad line: the error names the file and line, and nothing is
/// imported. The good list imports with comments, `@domain` and bare domains.
#[test]
fn import_names_the_bad_line_and_imports_nothing() {
    let c = campaign();
    let bad = c.path().join("bad.txt");
    std::fs::write(
        &bad,
        "# from the old system\nann@example.com\n\"open@example.com\n",
    )
    .unwrap();
    let out = run(
        &["suppress", "import", c.toml_str(), bad.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.txt:3") && err.contains("nothing was imported"),
        "{err}"
    );
    assert!(entries(&c).is_empty());

    let good = c.path().join("good.txt");
    std::fs::write(
        &good,
        "# from the old system\nann@example.com   # phoned in\n@spam.example\nold.example\n",
    )
    .unwrap();
    let out = run(
        &[
            "suppress",
            "import",
            c.toml_str(),
            good.to_str().unwrap(),
            "--reason",
            "complaint",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        entries(&c),
        BTreeSet::from([
            "ann@example.com".into(),
            "@spam.example".into(),
            "old.example".into()
        ])
    );
}
