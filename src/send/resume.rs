//! Resuming a campaign: one run at a time (the lock), what earlier runs did (the journal),
//! whether the inputs changed since (the fingerprint), what to do with recipients left in
//! doubt, and how each row is settled by an earlier run. Every rule is a plain function of
//! its inputs, tested below; the pipeline and the `send` command only ask.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::config::Campaign;
use crate::report::Status;
use crate::send::journal::{self, JournalError, Prior, State};

/// What to do with recipients an earlier run left in flight (see the journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubt {
    /// Send again, with the same Message-ID: at worst a duplicate the receiver may drop.
    Resend,
    /// Do not send: report them as in doubt.
    Skip,
}

/// Why a run cannot resume; each message is the one the user sees, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "another mailshot run of campaign {campaign} is in progress ({} is locked); wait for it or stop it first",
        lock.display()
    )]
    Locked { campaign: String, lock: PathBuf },
    #[error(
        "the {} changed since this campaign's journal began ({}).\n  Addresses already sent to are still skipped; rerun with --accept-changes to resume with the new files,\n  or give the campaign a new id to start over.",
        changed_words(parts),
        journal.display()
    )]
    Changed {
        parts: Vec<&'static str>,
        journal: PathBuf,
    },
    #[error("{}", in_doubt_text(.0))]
    InDoubt(Vec<(u64, String)>),
}

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("cannot open {}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}", path.display())]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

fn changed_words(parts: &[&str]) -> String {
    if parts.is_empty() {
        "inputs".to_owned()
    } else {
        parts.join(" and ")
    }
}

fn in_doubt_text(doubt: &[(u64, String)]) -> String {
    let mut s = format!(
        "{} recipient{} were in flight when an earlier run stopped; they may or may not have received the message:",
        doubt.len(),
        if doubt.len() == 1 { "" } else { "s" }
    );
    for (row, addr) in doubt.iter().take(20) {
        s.push_str(&format!("\n  row {row}: {}", crate::terminal::field(addr)));
    }
    if doubt.len() > 20 {
        s.push_str(&format!("\n  ... and {} more", doubt.len() - 20));
    }
    s.push_str("\n  rerun with --in-doubt resend (they may get it twice; the Message-ID is the same, so many receivers drop the copy)\n  or --in-doubt skip (they may not get it at all; the report marks them in-doubt).");
    s
}

/// What this run starts from.
pub struct Resumed {
    pub prior: Prior,
    pub fingerprint: String,
    pub in_doubt: InDoubt,
    pub journal_path: PathBuf,
    /// Held for the whole run; the lock goes when the process exits, however it exits.
    _lock: RunLock,
}

/// The campaign's lock: one run per campaign at a time, since two processes reading the same
/// journal would each send to everyone. Taken before anything is written into the state
/// folder (preflight.json included), so a second, refused run changes nothing of the first.
pub struct RunLock {
    _file: File,
}

/// Creates the state folder if needed and takes its lock, without waiting.
pub fn lock(campaign: &Campaign, run_dir: &Path) -> Result<RunLock, ResumeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock_path = run_dir.join("lock");
    let err = |source| ResumeError::Lock {
        path: lock_path.clone(),
        source,
    };
    std::fs::create_dir_all(run_dir).map_err(err)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        // A symlink planted as the lock is not followed (and not created through).
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(err)?;
    if lock.try_lock().is_err() {
        return Err(Refusal::Locked {
            campaign: campaign.id.clone(),
            lock: lock_path,
        }
        .into());
    }
    Ok(RunLock { _file: lock })
}

/// Reads the campaign's journal under its `lock`. A dry run never reads the journal: its
/// report must never say `sent`.
pub fn resume(
    campaign: &Campaign,
    run_dir: &Path,
    lock: RunLock,
    dry_run: bool,
    accept_changes: bool,
    in_doubt: Option<InDoubt>,
) -> Result<Resumed, ResumeError> {
    let journal_path = run_dir.join("journal");
    let prior = if dry_run {
        Prior::default()
    } else {
        journal::read(&journal_path)?
    };
    let fingerprint = fingerprint(campaign)?;
    let in_doubt =
        decide(&prior, &fingerprint, accept_changes, in_doubt).map_err(|r| r.at(&journal_path))?;
    Ok(Resumed {
        prior,
        fingerprint,
        in_doubt,
        journal_path,
        _lock: lock,
    })
}

impl Refusal {
    fn at(self, journal_path: &Path) -> Refusal {
        match self {
            Refusal::Changed { parts, .. } => Refusal::Changed {
                parts,
                journal: journal_path.to_owned(),
            },
            r => r,
        }
    }
}

/// The rules for going on from `prior`: changed inputs need `accept_changes`; recipients in
/// doubt need a choice, unless there are none (then nothing is resent either way).
pub fn decide(
    prior: &Prior,
    fingerprint: &str,
    accept_changes: bool,
    in_doubt: Option<InDoubt>,
) -> Result<InDoubt, Refusal> {
    if let Some(old) = &prior.fingerprint
        && old != fingerprint
        && !accept_changes
    {
        let parts = ["recipients", "templates"]
            .into_iter()
            .filter(|part| field(old, part) != field(fingerprint, part))
            .collect();
        return Err(Refusal::Changed {
            parts,
            journal: PathBuf::new(),
        });
    }
    let doubt = prior.in_doubt();
    match (in_doubt, doubt.is_empty()) {
        (_, true) => Ok(InDoubt::Resend),
        (Some(choice), false) => Ok(choice),
        (None, false) => Err(Refusal::InDoubt(doubt)),
    }
}

impl Resumed {
    /// The line that says what the journal holds, for a campaign that has one.
    pub fn summary(&self) -> Option<String> {
        let p = &self.prior;
        p.fingerprint.as_ref()?;
        let doubt = p.in_doubt().len();
        Some(format!(
            "journal: {} sent earlier, {} refused earlier, {} deferred (retried now), {} in doubt{}",
            p.count(State::Sent),
            p.count(State::Failed),
            p.count(State::Deferred),
            doubt,
            match (doubt, self.in_doubt) {
                (0, _) => "",
                (_, InDoubt::Resend) => " (resending)",
                (_, InDoubt::Skip) => " (skipping)",
            }
        ))
    }
}

/// What the journal remembers of the inputs, to notice a resume with different files:
/// `recipients=<hash>;templates=<hash>`.
pub fn fingerprint(c: &Campaign) -> Result<String, ResumeError> {
    let templates: Vec<&Path> = [&c.text_template, &c.html_template]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    Ok(format!(
        "recipients={};templates={}",
        hash_files(&[&c.recipients.file], "")?,
        hash_files(&templates, &c.subject)?
    ))
}

/// The first 8 bytes of SHA-256 over the files' contents and `extra`, in hex.
fn hash_files(paths: &[&Path], extra: &str) -> Result<String, ResumeError> {
    use aws_lc_rs::digest::{Context, SHA256};
    let mut ctx = Context::new(&SHA256);
    for p in paths {
        let input = |source| ResumeError::Input {
            path: p.to_path_buf(),
            source,
        };
        let mut f = File::open(p).map_err(input)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(input)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
    }
    ctx.update(extra.as_bytes());
    Ok(ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn field<'a>(fingerprint: &'a str, name: &str) -> Option<&'a str> {
    fingerprint
        .split(';')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// What becomes of a valid row, given what earlier runs did to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Settled by an earlier run: reported as it was, never sent again.
    Settled(Settled),
    /// On the suppression list: not sent. `record` is false when the journal already says
    /// "refused", which must stay (a later run would send to a "suppressed" one whose list
    /// entry was removed).
    Suppress { record: bool },
    /// Sent now.
    Send,
}

/// How an earlier run settled a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub status: Status,
    pub text: &'static str,
    /// The choice to skip is written to the journal, so the next run does not ask again.
    pub record_skip: bool,
}

impl Settled {
    /// Counted as done by an earlier run (in doubt is not: nobody knows).
    pub fn earlier(&self) -> bool {
        self.status != Status::InDoubt
    }
}

/// The rule for one row: sent (or skipped by choice) stays settled even if the address was
/// put on the suppression list since; suppression comes next; then the other settled states.
/// What an outbox run wrote is settled only for another outbox run: a relay sends it.
pub fn plan(prior: Option<State>, suppressed: bool, outbox_run: bool, in_doubt: InDoubt) -> Plan {
    let settled = |status, text, record_skip| {
        Plan::Settled(Settled {
            status,
            text,
            record_skip,
        })
    };
    match prior {
        Some(State::Sent) => settled(Status::Sent, "sent by an earlier run (journal)", false),
        Some(State::Skipped) => settled(
            Status::InDoubt,
            "in flight when an earlier run stopped, and skipped by choice (--in-doubt skip); not sent again",
            false,
        ),
        Some(State::Written) if outbox_run => settled(
            Status::Written,
            "written by an earlier run (journal)",
            false,
        ),
        _ if suppressed => Plan::Suppress {
            record: prior != Some(State::Failed),
        },
        Some(State::Failed) => settled(
            Status::Failed,
            "refused permanently in an earlier run (journal); not retried",
            false,
        ),
        Some(State::InFlight) if in_doubt == InDoubt::Skip => settled(
            Status::InDoubt,
            "in flight when an earlier run stopped; skipped (--in-doubt skip): it may or may not have been delivered",
            true,
        ),
        // Written to an outbox, not sent: a run over a relay sends it.
        Some(State::Written | State::InFlight | State::Deferred | State::Suppressed) | None => {
            Plan::Send
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "recipients=aaaa;templates=bbbb";

    fn prior(states: &[(&str, State)]) -> Prior {
        Prior {
            states: states
                .iter()
                .enumerate()
                .map(|(i, (a, s))| (Box::from(*a), (i as u64 + 2, *s)))
                .collect(),
            fingerprint: Some(FP.into()),
            damaged_lines: 0,
            ..Prior::default()
        }
    }

    #[test]
    fn recipients_in_doubt_need_a_choice() {
        let p = prior(&[
            ("ann@example.com", State::InFlight),
            ("bob@example.com", State::Sent),
        ]);
        let Err(Refusal::InDoubt(list)) = decide(&p, FP, false, None) else {
            panic!("in doubt without --in-doubt must refuse");
        };
        assert_eq!(list, vec![(2, "ann@example.com".to_owned())]);
        let text = Refusal::InDoubt(list).to_string();
        assert!(text.starts_with("1 recipient were in flight"), "{text}");
        assert!(text.contains("\n  row 2: ann@example.com\n"), "{text}");

        assert_eq!(
            decide(&p, FP, false, Some(InDoubt::Skip)).unwrap(),
            InDoubt::Skip
        );
        assert_eq!(
            decide(&p, FP, false, Some(InDoubt::Resend)).unwrap(),
            InDoubt::Resend
        );
    }

    #[test]
    fn without_recipients_in_doubt_no_choice_is_needed() {
        let p = prior(&[("bob@example.com", State::Sent)]);
        assert_eq!(decide(&p, FP, false, None).unwrap(), InDoubt::Resend);
        // A choice given anyway changes nothing that could be resent.
        assert_eq!(
            decide(&p, FP, false, Some(InDoubt::Skip)).unwrap(),
            InDoubt::Resend
        );
        assert_eq!(
            decide(&Prior::default(), FP, false, None).unwrap(),
            InDoubt::Resend
        );
    }

    #[test]
    fn changed_inputs_refuse_unless_accepted_and_name_what_changed() {
        let p = prior(&[("bob@example.com", State::Sent)]);
        let cases = [
            ("recipients=cccc;templates=bbbb", vec!["recipients"]),
            ("recipients=aaaa;templates=cccc", vec!["templates"]),
            (
                "recipients=cccc;templates=cccc",
                vec!["recipients", "templates"],
            ),
        ];
        for (now, want) in cases {
            let Err(Refusal::Changed { parts, .. }) = decide(&p, now, false, None) else {
                panic!("{now}: a changed input must refuse");
            };
            assert_eq!(parts, want, "{now}");
            assert_eq!(decide(&p, now, true, None).unwrap(), InDoubt::Resend);
        }
        let r = Refusal::Changed {
            parts: vec![],
            journal: "j".into(),
        };
        assert!(r.to_string().starts_with("the inputs changed since"), "{r}");
        // Checked before the recipients in doubt: the changed files come first.
        let p = prior(&[("ann@example.com", State::InFlight)]);
        assert!(matches!(
            decide(&p, "recipients=cccc;templates=bbbb", false, None),
            Err(Refusal::Changed { .. })
        ));
    }

    #[test]
    fn written_to_an_outbox_is_sent_by_a_relay_run_and_settled_for_an_outbox_run() {
        let w = Some(State::Written);
        assert_eq!(plan(w, false, false, InDoubt::Resend), Plan::Send);
        let Plan::Settled(s) = plan(w, false, true, InDoubt::Resend) else {
            panic!("an outbox run does not write it again");
        };
        assert_eq!(s.status, Status::Written);
        assert!(s.earlier());
    }

    #[test]
    fn a_suppressed_row_already_sent_stays_sent() {
        for in_doubt in [InDoubt::Resend, InDoubt::Skip] {
            let Plan::Settled(s) = plan(Some(State::Sent), true, false, in_doubt) else {
                panic!("sent stays sent");
            };
            assert_eq!(s.status, Status::Sent);
            assert!(!s.record_skip);
        }
        // Skipped by choice stays skipped too.
        let Plan::Settled(s) = plan(Some(State::Skipped), true, false, InDoubt::Resend) else {
            panic!("skipped stays skipped");
        };
        assert_eq!(s.status, Status::InDoubt);
        assert!(!s.earlier());
    }

    #[test]
    fn suppression_never_overwrites_a_permanent_refusal() {
        assert_eq!(
            plan(Some(State::Failed), true, false, InDoubt::Resend),
            Plan::Suppress { record: false }
        );
        assert_eq!(
            plan(None, true, false, InDoubt::Resend),
            Plan::Suppress { record: true }
        );
        assert_eq!(
            plan(Some(State::InFlight), true, false, InDoubt::Skip),
            Plan::Suppress { record: true }
        );
    }

    #[test]
    fn in_doubt_rows_follow_the_choice_and_skips_are_recorded() {
        let f = Some(State::InFlight);
        assert_eq!(plan(f, false, false, InDoubt::Resend), Plan::Send);
        let Plan::Settled(s) = plan(f, false, false, InDoubt::Skip) else {
            panic!("skip settles it");
        };
        assert_eq!(s.status, Status::InDoubt);
        assert!(s.record_skip);
        for retried in [State::Deferred, State::Suppressed] {
            assert_eq!(plan(Some(retried), false, false, InDoubt::Skip), Plan::Send);
        }
        let Plan::Settled(s) = plan(Some(State::Failed), false, false, InDoubt::Resend) else {
            panic!("a refusal is not retried");
        };
        assert_eq!(s.status, Status::Failed);
    }
}
