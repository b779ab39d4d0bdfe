//! The policy recommendation: when the reports justify moving a domain's DMARC policy one
//! step up (none → quarantine → reject), and what to fix first when they do not.

use super::digest::Policy;

/// Share of a domain's messages that must pass DMARC before tightening. What fails at this
/// level is mostly indirect mail (forwarding, mailing lists that rewrite the message) that no
/// sender-side fix reaches, plus spoofing, which a stricter policy is meant to stop; below it
/// there is usually a legitimate source still unaligned, whose mail the next step would
/// quarantine or reject.
pub const MIN_ALIGNED_PCT: f64 = 98.0;

/// Days the reports must span. Two full weeks see every weekly sender (newsletters, payroll,
/// weekly digests) at least twice and smooth out weekend lulls; monthly senders (invoices)
/// may still be missed, which is why the recommendation asks you to check flagged sources.
pub const MIN_DAYS: f64 = 14.0;

/// Messages the reports must cover. At 1,000 one percentage point is 10 messages, so the
/// 98% threshold is measured to well under a point (the binomial standard error at 98% is
/// about 0.44 points), rather than decided by a handful of messages.
pub const MIN_MESSAGES: u64 = 1_000;

/// A source is flagged when fewer than this share of its messages pass DMARC. A service that
/// is yours and set up (aligned DKIM or SPF) passes nearly always; under 90% it is not
/// aligned at all (a forgotten service), not yours (spoofing), or a forwarder.
pub const FLAG_BELOW_PCT: f64 = 90.0;

/// What one domain's evidence supports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Aligned enough, over enough days and messages: move to `next`.
    Ready { next: Policy },
    /// Aligned enough and already at p=reject: nothing stricter to move to.
    Strictest,
    /// Below [`MIN_ALIGNED_PCT`]: the failing sources come first.
    FixFirst,
    /// Aligned enough so far, but too few days or messages to rely on.
    Wait {
        short_of_days: bool,
        short_of_messages: bool,
    },
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready { .. } => "ready",
            Verdict::Strictest => "strictest",
            Verdict::FixFirst => "fix_first",
            Verdict::Wait { .. } => "wait",
        }
    }
}

/// The numbers a verdict is based on, for one policy domain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The policy of the most recent report.
    pub policy: Policy,
    pub messages: u64,
    /// Messages that passed DMARC (aligned DKIM or aligned SPF).
    pub passed: u64,
    /// Days the reports span, first begin to last end.
    pub days: f64,
}

impl Evidence {
    pub fn aligned_pct(&self) -> f64 {
        pct(self.passed, self.messages).unwrap_or(0.0)
    }
}

/// Alignment is judged before the amount of data: a failing source is worth fixing however
/// few days have been seen, while a good rate over too little data only says "wait".
pub fn verdict(e: &Evidence) -> Verdict {
    if e.messages > 0 && e.aligned_pct() < MIN_ALIGNED_PCT {
        return Verdict::FixFirst;
    }
    let short_of_days = e.days < MIN_DAYS;
    let short_of_messages = e.messages < MIN_MESSAGES;
    if short_of_days || short_of_messages {
        return Verdict::Wait {
            short_of_days,
            short_of_messages,
        };
    }
    match e.policy.next() {
        Some(next) => Verdict::Ready { next },
        None => Verdict::Strictest,
    }
}

/// `part` as a percentage of `whole`, None when `whole` is 0.
pub fn pct(part: u64, whole: u64) -> Option<f64> {
    // One division of exact integers: 4,900 of 5,000 is exactly 98.0, so the thresholds are
    // not missed by a rounding error.
    (whole > 0).then(|| (part as f64 * 100.0) / whole as f64)
}

/// A percentage for people: one decimal, but never "100.0%" while something failed nor
/// "0.0%" while something passed.
pub fn pct_text(part: u64, whole: u64) -> String {
    let Some(p) = pct(part, whole) else {
        return "-".to_owned();
    };
    let shown = if part < whole && p >= 99.95 {
        99.9
    } else if part > 0 && p < 0.05 {
        0.1
    } else {
        p
    };
    format!("{shown:.1}%")
}

/// 48120 → "48,120".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 21.0 → "21 days", 0.5 → "0.5 days", 1.0 → "1 day".
pub fn days_text(days: f64) -> String {
    if days == 1.0 {
        "1 day".to_owned()
    } else if days.fract() == 0.0 {
        format!("{days:.0} days")
    } else {
        format!("{days:.1} days")
    }
}

/// The thresholds in one line, printed under every recommendation.
pub fn thresholds_text() -> String {
    format!(
        "ready to move up one step (none → quarantine → reject) at ≥ {MIN_ALIGNED_PCT:.0}% of \
         messages aligned over ≥ {} and ≥ {} messages; a source is flagged ✗ below \
         {FLAG_BELOW_PCT:.0}% aligned",
        days_text(MIN_DAYS),
        thousands(MIN_MESSAGES),
    )
}

/// The recommendation sentence, e.g. "99.2% of 48,120 messages over 21 days aligned; ready
/// for p=quarantine".
pub fn sentence(e: &Evidence, v: Verdict) -> String {
    let measured = format!(
        "{} of {} messages over {} aligned",
        pct_text(e.passed, e.messages),
        thousands(e.messages),
        days_text(e.days)
    );
    match v {
        Verdict::Ready { next } => format!("{measured}; ready for p={}", next.as_str()),
        Verdict::Strictest => {
            format!("{measured}; already at p=reject, the strictest policy: keep monitoring")
        }
        Verdict::FixFirst => {
            let consequence = match e.policy {
                Policy::Quarantine | Policy::Reject => format!(
                    ", and p={} already applies to the mail that fails",
                    e.policy.as_str()
                ),
                _ => String::new(),
            };
            format!(
                "{measured}, below {MIN_ALIGNED_PCT:.0}%{consequence}: fix the failing sources \
                 before tightening the policy"
            )
        }
        Verdict::Wait {
            short_of_days,
            short_of_messages,
        } => {
            let mut short = Vec::new();
            if short_of_days {
                short.push(format!("{} of reports", days_text(MIN_DAYS)));
            }
            if short_of_messages {
                short.push(format!("{} messages", thousands(MIN_MESSAGES)));
            }
            let target = e.policy.next().map_or(String::new(), |next| {
                format!(" before moving to p={}", next.as_str())
            });
            format!(
                "{measured}; too little data: wait for at least {}{target}",
                short.join(" and ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(policy: Policy, messages: u64, passed: u64, days: f64) -> Evidence {
        Evidence {
            policy,
            messages,
            passed,
            days,
        }
    }

    #[test]
    fn ready_moves_exactly_one_step() {
        let none = ev(Policy::None, 48_120, 47_765, 21.0);
        assert_eq!(
            verdict(&none),
            Verdict::Ready {
                next: Policy::Quarantine
            }
        );
        assert_eq!(
            sentence(&none, verdict(&none)),
            "99.3% of 48,120 messages over 21 days aligned; ready for p=quarantine"
        );
        let q = ev(Policy::Quarantine, 48_120, 47_765, 21.0);
        assert_eq!(
            verdict(&q),
            Verdict::Ready {
                next: Policy::Reject
            }
        );
        let unknown = ev(Policy::Unknown, 48_120, 47_765, 21.0);
        assert_eq!(
            verdict(&unknown),
            Verdict::Ready {
                next: Policy::Quarantine
            }
        );
        let r = ev(Policy::Reject, 48_120, 47_765, 21.0);
        assert_eq!(verdict(&r), Verdict::Strictest);
    }

    #[test]
    fn thresholds_are_inclusive_at_the_boundary() {
        // Exactly 98%, exactly 14 days, exactly 1,000 messages.
        let e = ev(Policy::None, 1_000, 980, 14.0);
        assert_eq!(
            verdict(&e),
            Verdict::Ready {
                next: Policy::Quarantine
            }
        );
        // One message less aligned.
        let e = ev(Policy::None, 1_000, 979, 14.0);
        assert_eq!(verdict(&e), Verdict::FixFirst);
        // Half a day short.
        let e = ev(Policy::None, 1_000, 1_000, 13.5);
        assert_eq!(
            verdict(&e),
            Verdict::Wait {
                short_of_days: true,
                short_of_messages: false
            }
        );
        // One message short.
        let e = ev(Policy::None, 999, 999, 30.0);
        assert_eq!(
            verdict(&e),
            Verdict::Wait {
                short_of_days: false,
                short_of_messages: true
            }
        );
    }

    #[test]
    fn failing_alignment_comes_before_waiting() {
        let e = ev(Policy::None, 50, 20, 2.0);
        assert_eq!(verdict(&e), Verdict::FixFirst);
        assert_eq!(
            sentence(&e, verdict(&e)),
            "40.0% of 50 messages over 2 days aligned, below 98%: fix the failing sources \
             before tightening the policy"
        );
        let e = ev(Policy::Reject, 5_000, 4_000, 20.0);
        assert!(sentence(&e, verdict(&e)).contains("p=reject already applies"));
    }

    #[test]
    fn no_messages_means_wait() {
        let e = ev(Policy::None, 0, 0, 0.0);
        assert_eq!(
            verdict(&e),
            Verdict::Wait {
                short_of_days: true,
                short_of_messages: true
            }
        );
        assert_eq!(
            sentence(&e, verdict(&e)),
            "- of 0 messages over 0 days aligned; too little data: wait for at least 14 days \
             of reports and 1,000 messages before moving to p=quarantine"
        );
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(48_120), "48,120");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(pct_text(9_999, 10_000), "99.9%");
        assert_eq!(pct_text(99_999, 100_000), "99.9%");
        assert_eq!(pct_text(1, 100_000), "0.1%");
        assert_eq!(pct_text(5_390, 5_440), "99.1%");
        assert_eq!(pct_text(0, 0), "-");
        assert_eq!(days_text(1.0), "1 day");
        assert_eq!(days_text(13.5), "13.5 days");
    }
}
