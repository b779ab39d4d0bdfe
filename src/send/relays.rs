//! Which relay takes the next message: smooth weighted round-robin among the healthy relays
//! of the best priority, and a bench for relays that fail, with a back-off that doubles.
//!
//! The rules, in the words of the README:
//! - connect, TLS handshake, greeting and temporary AUTH failures bench a relay for 5 s, then
//!   10 s, 20 s, ... up to 5 minutes; one success clears its record;
//! - three 421 replies in a row from one relay bench it the same way (it is shedding load);
//! - a refused login (535), an untrusted certificate, or a 5xx to MAIL FROM retires the relay
//!   for the rest of the run: none of those mends itself, and another AUTH attempt with a
//!   refused password can lock the account;
//! - when every relay is retired, [`Pick::NoneLeft`] is the verdict the pipeline stops on;
//!   when some are only benched, [`Pick::Wait`] says until when.
//!
//! Smooth weighted round-robin (nginx's): each pick adds every candidate's weight to its
//! credit, takes the one with the most credit and charges it the sum of the weights. Weights
//! 3:1 give A A B A, A A B A, ...: the split is exact over every cycle and never bursty.

use std::time::Duration;

use tokio::time::Instant;

const BENCH_FIRST: Duration = Duration::from_secs(5);
const BENCH_MAX: Duration = Duration::from_secs(300);
/// 421s in a row from one relay before it is benched.
const THROTTLE_STRIKES: u32 = 3;

/// What went wrong with a relay, as far as choosing relays is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// Connection refused or timed out, TLS handshake failed, no or bad greeting, temporary
    /// AUTH failure (454).
    Unavailable,
    /// A 421 reply: the relay is closing the connection, usually to shed load.
    Throttled,
    /// The login was refused, the certificate is not trusted, or MAIL FROM got a 5xx: the
    /// relay will not take this campaign today.
    Refused,
}

/// What [`Board::trouble`] did with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; the relay stays in use.
    Noted,
    Benched {
        until: Instant,
    },
    Retired,
}

/// The next relay to use, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    Relay(usize),
    /// Every usable relay is benched; the first comes back then.
    Wait(Instant),
    NoneLeft(NoRelay),
}

/// Every relay is retired: the run stops, and the user is told why each one left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no relay left: {}", .reasons.iter().map(|(n, w)| format!("{n}: {w}")).collect::<Vec<_>>().join("; "))]
pub struct NoRelay {
    pub reasons: Vec<(String, String)>,
}

/// One relay as the board sees it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub weight: u32,
    /// Lower goes first; higher priorities are used only while all lower ones are benched.
    pub priority: u32,
}

#[derive(Debug)]
struct Slot {
    spec: Spec,
    credit: i64,
    benched_until: Option<Instant>,
    /// Benchings since the last success: the back-off doubles with each.
    strikes: u32,
    throttles: u32,
    retired: Option<String>,
}

#[derive(Debug)]
pub struct Board {
    slots: Vec<Slot>,
}

impl Board {
    pub fn new(specs: Vec<Spec>) -> Board {
        Board {
            slots: specs
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    credit: 0,
                    benched_until: None,
                    strikes: 0,
                    throttles: 0,
                    retired: None,
                })
                .collect(),
        }
    }

    /// Some relay is not retired (it may be benched for now).
    pub fn any_left(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.retired.is_none() && s.spec.weight > 0)
    }

    fn usable(s: &Slot, now: Instant) -> bool {
        s.retired.is_none() && s.spec.weight > 0 && s.benched_until.is_none_or(|u| u <= now)
    }

    pub fn pick(&mut self, now: Instant) -> Pick {
        let best = self
            .slots
            .iter()
            .filter(|s| Board::usable(s, now))
            .map(|s| s.spec.priority)
            .min();
        let Some(best) = best else {
            return self.none_usable();
        };
        let mut total = 0i64;
        for s in &mut self.slots {
            if Board::usable(s, now) && s.spec.priority == best {
                s.credit += i64::from(s.spec.weight);
                total += i64::from(s.spec.weight);
            }
        }
        let Some(chosen) = self.max_credit(best, now) else {
            return self.none_usable();
        };
        self.slots[chosen].credit -= total;
        Pick::Relay(chosen)
    }

    /// The usable relay of priority `best` with the most credit; the first on a tie.
    fn max_credit(&self, best: u32, now: Instant) -> Option<usize> {
        let mut chosen: Option<(usize, i64)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if Board::usable(s, now)
                && s.spec.priority == best
                && chosen.is_none_or(|(_, c)| s.credit > c)
            {
                chosen = Some((i, s.credit));
            }
        }
        chosen.map(|(i, _)| i)
    }

    fn none_usable(&self) -> Pick {
        let back = self
            .slots
            .iter()
            .filter(|s| s.retired.is_none() && s.spec.weight > 0)
            .filter_map(|s| s.benched_until)
            .min();
        match back {
            Some(t) => Pick::Wait(t),
            None => Pick::NoneLeft(NoRelay {
                reasons: self
                    .slots
                    .iter()
                    .map(|s| {
                        let why = s.retired.clone().unwrap_or_else(|| "weight 0".into());
                        (s.spec.name.clone(), why)
                    })
                    .collect(),
            }),
        }
    }

    /// The relay took a message: its record is clean again.
    pub fn ok(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.strikes = 0;
        s.throttles = 0;
    }

    pub fn trouble(&mut self, i: usize, kind: Trouble, why: &str, now: Instant) -> Verdict {
        let s = &mut self.slots[i];
        if s.retired.is_some() {
            return Verdict::Retired;
        }
        match kind {
            Trouble::Refused => {
                s.retired = Some(why.to_owned());
                tracing::warn!("relay {}: {why}; not used again in this run", s.spec.name);
                return Verdict::Retired;
            }
            Trouble::Throttled => {
                s.throttles += 1;
                if s.throttles < THROTTLE_STRIKES {
                    return Verdict::Noted;
                }
                s.throttles = 0;
            }
            Trouble::Unavailable => {}
        }
        // Several senders can hit the same dead relay at once: one benching per outage.
        if let Some(until) = s.benched_until.filter(|u| *u > now) {
            return Verdict::Benched { until };
        }
        let wait = BENCH_FIRST
            .saturating_mul(1 << s.strikes.min(16))
            .min(BENCH_MAX);
        s.strikes += 1;
        let until = now + wait;
        s.benched_until = Some(until);
        tracing::warn!(
            "relay {}: {why}; benched for {} s",
            s.spec.name,
            wait.as_secs()
        );
        Verdict::Benched { until }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(weights: &[(u32, u32)]) -> Board {
        Board::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, &(weight, priority))| Spec {
                    name: format!("r{i}"),
                    weight,
                    priority,
                })
                .collect(),
        )
    }

    fn picks(b: &mut Board, n: usize, now: Instant) -> Vec<usize> {
        (0..n)
            .map(|_| match b.pick(now) {
                Pick::Relay(i) => i,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn weights_three_to_one_interleave_evenly() {
        let mut b = board(&[(3, 0), (1, 0)]);
        let now = Instant::now();
        assert_eq!(picks(&mut b, 8, now), [0, 0, 1, 0, 0, 0, 1, 0]);
        let many = picks(&mut b, 4000, now);
        assert_eq!(many.iter().filter(|&&i| i == 1).count(), 1000);
    }

    #[test]
    fn priority_is_used_only_while_the_first_is_benched() {
        let mut b = board(&[(1, 0), (1, 1)]);
        let now = Instant::now();
        assert_eq!(picks(&mut b, 3, now), [0, 0, 0]);
        let Verdict::Benched { until } = b.trouble(0, Trouble::Unavailable, "refused", now) else {
            panic!()
        };
        assert_eq!(until, now + BENCH_FIRST);
        assert_eq!(picks(&mut b, 2, now), [1, 1]);
        assert_eq!(picks(&mut b, 1, until), [0]);
    }

    #[test]
    fn back_off_doubles_and_a_success_clears_it() {
        let mut b = board(&[(1, 0), (1, 0)]);
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let Verdict::Benched { until } = b.trouble(0, Trouble::Unavailable, "x", now) else {
                panic!()
            };
            waits.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        b.ok(0);
        let Verdict::Benched { until } = b.trouble(0, Trouble::Unavailable, "x", now) else {
            panic!()
        };
        assert_eq!(until - now, BENCH_FIRST);
    }

    #[test]
    fn one_outage_seen_by_many_senders_is_one_benching() {
        let mut b = board(&[(1, 0), (1, 0)]);
        let now = Instant::now();
        let first = b.trouble(0, Trouble::Unavailable, "x", now);
        let second = b.trouble(0, Trouble::Unavailable, "x", now + Duration::from_secs(1));
        assert_eq!(first, second);
    }

    #[test]
    fn repeated_421_benches_and_a_refusal_retires() {
        let mut b = board(&[(1, 0), (1, 0)]);
        let now = Instant::now();
        assert_eq!(b.trouble(1, Trouble::Throttled, "421", now), Verdict::Noted);
        assert_eq!(b.trouble(1, Trouble::Throttled, "421", now), Verdict::Noted);
        assert!(matches!(
            b.trouble(1, Trouble::Throttled, "421", now),
            Verdict::Benched { .. }
        ));
        assert_eq!(
            b.trouble(0, Trouble::Refused, "535 bad login", now),
            Verdict::Retired
        );
        // r0 retired, r1 benched: wait for r1.
        assert_eq!(b.pick(now), Pick::Wait(now + BENCH_FIRST));
        b.trouble(1, Trouble::Refused, "550 sender refused", now);
        let Pick::NoneLeft(why) = b.pick(now) else {
            panic!()
        };
        let text = why.to_string();
        assert!(text.contains("r0: 535 bad login"), "{text}");
        assert!(text.contains("r1: 550 sender refused"), "{text}");
    }
}
