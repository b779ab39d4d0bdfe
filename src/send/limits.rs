//! Warm-up and destination limits: the daily cap (`per_day`) and the per-provider pace
//! (`[limits.domains]`), beside the relay-wide pace in [`super::rate`].
//!
//! **Providers.** Mailbox providers throttle by who they are, not by domain name: Gmail sees
//! gmail.com and googlemail.com as one receiver. A limit written for any domain of a group in
//! [`PROVIDERS`] applies to the whole group, across every relay; a domain in no group is its
//! own group.
//!
//! **Even pacing.** Each limit is a governor quota with a burst of one (one message every
//! `window / n`), as in `rate.rs`: `per_hour = 500` is one message every 7.2 s, never 500 at
//! the top of the hour. A message whose provider is not ready is not waited for by its
//! sender: [`DomainLimits::check`] says how long until its slot, and the pipeline puts the
//! message in the retry queue until then.
//!
//! **The day.** `per_day` counts per calendar day in UTC (by the injected clock): campaign.toml
//! has no time zone, and the journal, the report and the run markers are all in UTC. A run
//! starts with what the journal says was sent today; one that reaches the cap stops cleanly
//! and the next day's run carries on where it stopped. A run still going at 00:00 UTC opens
//! the new day's allowance there and then, and writes a day marker into the journal, so the
//! messages sent after midnight count on the day they were sent (not on the day the run
//! started) when a later run reads the journal. Midnight changes only the count, never the
//! pace: nothing waits for 00:00, so nothing bursts at 00:00; the messages go on at the
//! even pace of `rate.rs` and `[limits.domains]`.
//!
//! A message takes its slot as it starts, after its pacing wait, so it counts on the day it
//! goes out, and the stop at the cap cancels no sender that held a slot. The journal credits
//! a message to the day its `S` line was written, so up to `concurrency` messages in flight
//! at midnight (and retries of earlier days' recipients) may count on the new day when a
//! later run reads the journal: the error is always toward sending less.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock as GovClock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

pub use crate::providers::{DomainLimit, provider};

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as GovClock>::Instant>>;

/// One even pace per provider group that has a limit.
pub struct DomainLimits<C: GovClock = DefaultClock> {
    by_group: HashMap<String, Limiter<C>>,
    clock: C,
}

impl DomainLimits<DefaultClock> {
    pub fn new(limits: &[DomainLimit]) -> DomainLimits<DefaultClock> {
        DomainLimits::with_clock(limits, DefaultClock::default())
    }
}

impl<C: GovClock + Clone> DomainLimits<C> {
    pub fn with_clock(limits: &[DomainLimit], clock: C) -> DomainLimits<C> {
        let by_group = limits
            .iter()
            .filter_map(|l| {
                let q = Quota::with_period(l.interval()?)?;
                let limiter = RateLimiter::direct_with_clock(q, clock.clone());
                Some((provider(&l.domain).to_owned(), limiter))
            })
            .collect();
        DomainLimits { by_group, clock }
    }

    /// Takes the slot for one message to `domain` if its provider is ready; otherwise says
    /// how long until it is (and takes nothing).
    pub fn check(&self, domain: &str) -> Result<(), Duration> {
        let Some(l) = self.by_group.get(provider(domain)) else {
            return Ok(());
        };
        l.check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Days since 1970-01-01, UTC.
pub fn utc_day(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// What [`DayCap::take`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Taken,
    /// Taken, and the first of a new UTC day that began during the run.
    FirstOfDay,
    /// Today's cap is reached.
    Full,
}

/// The daily cap for this run: how many more messages today allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCap {
    pub cap: u64,
    pub used: u64,
    pub day: u64,
}

impl DayCap {
    /// A shard's share of a campaign's cap: shards run at once and cannot see each other's
    /// journals as they are written, so each gets `cap / n` and the first `cap % n` one more.
    pub fn share(cap: u64, shard: Option<(u32, u32)>) -> u64 {
        match shard {
            None => cap,
            Some((k, n)) => cap / u64::from(n) + u64::from(u64::from(k) <= cap % u64::from(n)),
        }
    }

    /// Takes one message from today's allowance. A new UTC day starts a new allowance, which
    /// the first message of that day is told of (its sender marks the journal).
    pub fn take(&mut self, now: SystemTime) -> Slot {
        let today = utc_day(now);
        // Only forward: a clock stepped back over midnight must not reopen a spent day.
        let new_day = today > self.day;
        if new_day {
            self.day = today;
            self.used = 0;
        }
        if self.used >= self.cap {
            return Slot::Full;
        }
        self.used += 1;
        if new_day {
            Slot::FirstOfDay
        } else {
            Slot::Taken
        }
    }

    /// When the next allowance starts (the next UTC midnight), for the resume hint.
    pub fn resets_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs((self.day + 1) * 86_400)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::providers::PROVIDERS;
    use governor::clock::FakeRelativeClock;

    fn limit(domain: &str, per_hour: u32) -> DomainLimit {
        DomainLimit {
            domain: domain.into(),
            per_second: None,
            per_hour: NonZeroU32::new(per_hour),
            per_day: None,
        }
    }

    #[test]
    fn providers_group_their_domains() {
        assert_eq!(provider("googlemail.com"), "gmail.com");
        assert_eq!(provider("hotmail.com"), "outlook.com");
        assert_eq!(provider("msn.com"), "outlook.com");
        assert_eq!(provider("ymail.com"), "yahoo.com");
        assert_eq!(provider("example.org"), "example.org");
        // Every domain is in one group at most.
        let all: Vec<&str> = PROVIDERS.iter().flat_map(|g| g.iter().copied()).collect();
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(all.len(), dedup.len());
    }

    /// 3600/h is one message a second to the whole group, evenly: at most one in any second,
    /// whichever of the group's domains it goes to; other domains are not held back.
    #[test]
    fn a_group_shares_one_even_pace() {
        let clock = FakeRelativeClock::default();
        let l = DomainLimits::with_clock(&[limit("gmail.com", 3600)], clock.clone());
        let mut admitted = 0;
        for ms in 0..10_000u64 {
            let domain = if ms % 2 == 0 {
                "gmail.com"
            } else {
                "googlemail.com"
            };
            if l.check(domain).is_ok() {
                admitted += 1;
            }
            assert!(l.check("example.org").is_ok());
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(admitted, 10);
        // Due again now; right after, refused until the next slot, one interval on.
        assert!(l.check("gmail.com").is_ok());
        let wait = l.check("gmail.com").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn the_strictest_window_sets_the_interval() {
        let mut l = limit("gmail.com", 500);
        assert_eq!(l.interval(), Some(Duration::from_millis(7200)));
        l.per_day = NonZeroU32::new(1000);
        assert_eq!(l.interval(), Some(Duration::from_millis(86_400)));
    }

    #[test]
    fn the_day_cap_stops_and_a_new_day_resumes() {
        let day = 20_000u64;
        let t = |d: u64, s: u64| UNIX_EPOCH + Duration::from_secs(d * 86_400 + s);
        let mut cap = DayCap {
            cap: 3,
            used: 1,
            day,
        };
        assert_eq!(cap.take(t(day, 10)), Slot::Taken);
        assert_eq!(cap.take(t(day, 20)), Slot::Taken);
        assert_eq!(cap.take(t(day, 30)), Slot::Full);
        assert_eq!(cap.resets_at(), t(day + 1, 0));
        assert_eq!(cap.take(t(day + 1, 5)), Slot::FirstOfDay);
        assert_eq!(cap.used, 1);
        assert_eq!(cap.take(t(day + 1, 6)), Slot::Taken);
        // A clock stepped back over midnight does not reopen the spent day.
        assert_eq!(cap.take(t(day, 86_399)), Slot::Taken);
        assert_eq!(cap.day, day + 1);
        assert_eq!(cap.used, 3);
    }

    /// A run paced at one message a minute (`per_hour = 60`, through the same interval and
    /// governor quota as `rate.rs`) from 23:30 to 00:30 UTC, with `per_day = 40` of which the
    /// journal says 5 went earlier today. Driven by one injected clock in 100 ms steps:
    /// the day's allowance is counted per calendar day (35 by midnight, then afresh), the new
    /// day's first message is the one at 00:00 exactly, and it keeps the minute's spacing
    /// with the last of the old day: no message is held for midnight, none bursts at it.
    #[test]
    fn across_midnight_the_new_allowance_opens_at_the_same_pace() {
        use super::super::rate::interval;
        use crate::config::Limits;

        let limits = Limits {
            per_second: None,
            per_hour: NonZeroU32::new(60),
            per_day: NonZeroU32::new(40),
            concurrency: 4,
            domains: Vec::new(),
        };
        let every = interval(&limits).unwrap();
        assert_eq!(every, Duration::from_secs(60));
        let fake = FakeRelativeClock::default();
        let pace = RateLimiter::direct_with_clock(Quota::with_period(every).unwrap(), fake.clone());
        let day = 20_000u64;
        let start = UNIX_EPOCH + Duration::from_secs((day + 1) * 86_400 - 1_800);
        let mut cap = DayCap {
            cap: 40,
            used: 5,
            day,
        };
        let (mut sent, mut first_of_day) = (Vec::new(), Vec::new());
        for step in 0..36_000u64 {
            let now = start + Duration::from_millis(step * 100);
            if pace.check().is_ok() {
                match cap.take(now) {
                    Slot::Taken => sent.push(now),
                    Slot::FirstOfDay => {
                        sent.push(now);
                        first_of_day.push(now);
                    }
                    Slot::Full => panic!("the cap is not reached in this hour"),
                }
            }
            fake.advance(Duration::from_millis(100));
        }
        let midnight = UNIX_EPOCH + Duration::from_secs((day + 1) * 86_400);
        let before = sent.iter().filter(|t| **t < midnight).count();
        assert_eq!(before, 30, "23:30 to 23:59, one a minute");
        assert_eq!(first_of_day, [midnight]);
        assert_eq!(sent.len() - before, 30, "00:00 to 00:29");
        assert_eq!(cap.day, day + 1);
        assert_eq!(cap.used, 30, "the new day counts only its own");
        for pair in sent.windows(2) {
            assert_eq!(pair[1].duration_since(pair[0]).unwrap(), every);
        }
    }

    #[test]
    fn shard_shares_add_up_to_the_cap() {
        for cap in [0u64, 1, 7, 1000, 1001] {
            for n in 1..=5u32 {
                let sum: u64 = (1..=n).map(|k| DayCap::share(cap, Some((k, n)))).sum();
                assert_eq!(sum, cap, "cap {cap}, {n} shards");
            }
        }
    }
}
