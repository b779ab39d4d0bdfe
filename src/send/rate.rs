//! Pacing: one governor limiter shared by every sender task.
//!
//! Both limits are enforced as an even pace: one message per `max(1 s / per_second,
//! 1 h / per_hour)`, with no burst. With a burst allowance a GCRA limiter admits the burst
//! *plus* the refill inside one window, so a sliding window could see nearly twice the
//! configured count; even pacing guarantees that no one-second window holds more than
//! `per_second` messages and no one-hour window more than `per_hour`, and it is also what
//! receivers' throttles like best.

use std::time::Duration;

use governor::clock::{Clock as GovClock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::Limits;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as GovClock>::Instant>>;

pub struct Pacer {
    limiter: Option<Limiter<DefaultClock>>,
    throttle: std::sync::Mutex<Throttle>,
}

/// Extra spacing after the relay said "slow down" (421, 4.7.x, 454): every throttling reply
/// doubles the gap between messages (from 1 s, up to 60 s), and it lasts five minutes after
/// the last such reply.
#[derive(Default)]
struct Throttle {
    gap: Duration,
    until: Option<tokio::time::Instant>,
    next: Option<tokio::time::Instant>,
}

const THROTTLE_MIN: Duration = Duration::from_secs(1);
const THROTTLE_MAX: Duration = Duration::from_secs(60);
const THROTTLE_FOR: Duration = Duration::from_secs(300);

/// The interval between two messages, or `None` when no limit is set.
pub fn interval(limits: &Limits) -> Option<Duration> {
    // Rounded up to the nanosecond: rounding down would let n + 1 starts into a window.
    let per =
        |window: u64, n: u32| Duration::from_nanos((window * 1_000_000_000).div_ceil(n as u64));
    let per_second = limits.per_second.map(|n| per(1, n.get()));
    let per_hour = limits.per_hour.map(|n| per(3600, n.get()));
    match (per_second, per_hour) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn quota(limits: &Limits) -> Option<Quota> {
    // `with_period` gives a burst of one: the even pace described above.
    interval(limits).and_then(Quota::with_period)
}

impl Pacer {
    pub fn new(limits: &Limits) -> Pacer {
        Pacer {
            limiter: quota(limits).map(RateLimiter::direct),
            throttle: Default::default(),
        }
    }

    /// No pacing: the outbox and dry runs deliver nowhere that could throttle.
    pub fn none() -> Pacer {
        Pacer {
            limiter: None,
            throttle: Default::default(),
        }
    }

    /// Waits until the next message may start.
    pub async fn wait(&self) {
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        let slot = {
            let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
            let now = tokio::time::Instant::now();
            match t.until {
                Some(until) if now < until => {
                    let start = t.next.map_or(now, |n| n.max(now));
                    t.next = Some(start + t.gap);
                    Some(start)
                }
                _ => None,
            }
        };
        if let Some(start) = slot {
            tokio::time::sleep_until(start).await;
        }
    }

    /// The relay asked us to slow down.
    pub fn slow_down(&self) {
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.gap = (t.gap * 2).clamp(THROTTLE_MIN, THROTTLE_MAX);
        t.until = Some(tokio::time::Instant::now() + THROTTLE_FOR);
        tracing::warn!(
            "the relay is throttling; spacing messages {} s apart for the next {} s",
            t.gap.as_secs(),
            THROTTLE_FOR.as_secs()
        );
    }

    pub fn describe(limits: &Limits) -> String {
        match interval(limits) {
            None => "no rate limit".into(),
            Some(d) => format!("one message every {:.3} s", d.as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::num::NonZeroU32;

    fn limits(per_second: Option<u32>, per_hour: Option<u32>) -> Limits {
        Limits {
            per_second: per_second.and_then(NonZeroU32::new),
            per_hour: per_hour.and_then(NonZeroU32::new),
            per_day: None,
            concurrency: 8,
            domains: Vec::new(),
        }
    }

    /// Drives the limiter with a fake clock in 1 ms steps, taking a permit whenever one is
    /// free (as eager senders would), and returns the admission times in ms.
    fn admissions(l: &Limits, total_ms: u64) -> Vec<u64> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(l).unwrap(), clock.clone());
        let mut at = Vec::new();
        for ms in 0..total_ms {
            while limiter.check().is_ok() {
                at.push(ms);
            }
            clock.advance(Duration::from_millis(1));
        }
        at
    }

    fn max_in_window(times: &[u64], window_ms: u64) -> usize {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                times[i..]
                    .iter()
                    .take_while(|&&u| u < t + window_ms)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_second_holds_more_than_per_second() {
        let times = admissions(&limits(Some(7), None), 10_000);
        assert_eq!(max_in_window(&times, 1000), 7);
        // And the limiter is not simply slower than asked: 7/s over 10 s.
        assert!(times.len() >= 69, "{}", times.len());
    }

    #[test]
    fn the_stricter_limit_wins() {
        // 3600/h is one per second; per_second = 10 would allow more.
        let times = admissions(&limits(Some(10), Some(3600)), 5_000);
        assert_eq!(max_in_window(&times, 1000), 1);
        assert_eq!(
            interval(&limits(Some(10), Some(3600))),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn interval_rounds_up() {
        // 1 s / 3 is 333,333,333.3 ns: rounding down would fit a 4th start into one second.
        assert_eq!(
            interval(&limits(Some(3), None)),
            Some(Duration::from_nanos(333_333_334))
        );
        assert_eq!(
            interval(&limits(None, Some(7))),
            Some(Duration::from_nanos(514_285_714_286))
        );
    }

    #[test]
    fn no_limit_means_no_limiter() {
        assert!(interval(&limits(None, None)).is_none());
    }
}
