//! The one place that reads the wall clock. Everything else takes a [`Clock`], so tests (and
//! reproducible previews) can pin time and get identical Date headers and signatures.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    fn unix(&self) -> u64 {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stopped at one instant.
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// A wall clock that starts at a chosen instant and then runs at the real pace (the
/// monotonic time elapsed since it was made is added), so a test can start a run just before
/// a UTC midnight and watch it go through.
pub struct StartedClock {
    start: SystemTime,
    origin: Instant,
}

impl StartedClock {
    pub fn new(start: SystemTime) -> StartedClock {
        StartedClock {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for StartedClock {
    fn now(&self) -> SystemTime {
        self.start + self.origin.elapsed()
    }
}

/// The environment variable that pins the clock (unix seconds). Meant for tests and for
/// reproducing a message byte for byte; documented in the README.
pub const FIXED_TIME_ENV: &str = "MAILSHOT_FIXED_TIME";

/// The environment variable that starts the clock at an RFC 3339 time (`2026-11-25T23:59:57Z`)
/// from which it runs on in real time. Meant for tests of what happens as time passes (a
/// `per_day` run going through midnight), which a pinned clock never reaches; documented in
/// the README beside [`FIXED_TIME_ENV`].
pub const CLOCK_START_ENV: &str = "MAILSHOT_CLOCK_START";

/// A clock variable that is set but unusable. Falling back to the system clock would
/// silently break what the variable was set for (identical bytes, a chosen midnight).
#[derive(Debug, thiserror::Error)]
pub enum ClockEnvError {
    #[error("{FIXED_TIME_ENV}={value:?} is not a time: give unix seconds (e.g. 1795600000)")]
    FixedTime { value: String },
    #[error(
        "{CLOCK_START_ENV}={value:?} is not a time: give RFC 3339 in UTC (e.g. 2026-11-25T23:59:57Z)"
    )]
    Start { value: String },
    #[error("{FIXED_TIME_ENV} and {CLOCK_START_ENV} are both set: unset one of them")]
    Both,
}

/// The clock the environment asks for: pinned, started at a chosen time, or the system's.
pub fn from_env() -> Result<Arc<dyn Clock>, ClockEnvError> {
    let var = |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    from_vars(var(FIXED_TIME_ENV), var(CLOCK_START_ENV))
}

fn from_vars(
    fixed: Option<String>,
    start: Option<String>,
) -> Result<Arc<dyn Clock>, ClockEnvError> {
    match (fixed, start) {
        (Some(_), Some(_)) => Err(ClockEnvError::Both),
        (Some(value), None) => match value.parse::<u64>() {
            Ok(secs) => Ok(Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(secs)))),
            Err(_) => Err(ClockEnvError::FixedTime { value }),
        },
        (None, Some(value)) => match humantime::parse_rfc3339(&value) {
            Ok(start) => Ok(Arc::new(StartedClock::new(start))),
            Err(_) => Err(ClockEnvError::Start { value }),
        },
        (None, None) => Ok(Arc::new(SystemClock)),
    }
}

/// RFC 3339 in UTC, second precision, for reports.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_clock_starts_at_its_time_and_runs_forward() {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_651_197);
        let c = StartedClock::new(start);
        let (a, b) = (c.now(), c.now());
        assert!(a >= start && b >= a);
        // Far less than a day has passed: still the same UTC date as the start.
        assert_eq!(rfc3339(a)[..10], *"2026-11-25");
    }

    #[test]
    fn the_variables_are_read_strictly() {
        let some = |s: &str| Some(s.to_owned());
        let fixed = from_vars(some("1795600000"), None).unwrap();
        assert_eq!(fixed.unix(), 1_795_600_000);
        let started = from_vars(None, some("2026-11-25T23:59:57Z")).unwrap();
        assert!(started.unix() >= 1_795_651_197);
        for bad in ["", "soon", "-1", "1795600000.5"] {
            let e = from_vars(some(bad), None).err().unwrap().to_string();
            assert!(e.contains(FIXED_TIME_ENV), "{e}");
        }
        for bad in [
            "",
            "1795651197",
            "2026-11-25 23:59:57",
            "2026-11-25T25:00:00Z",
        ] {
            let e = from_vars(None, some(bad)).err().unwrap().to_string();
            assert!(e.contains(CLOCK_START_ENV), "{e}");
        }
        let e = from_vars(some("1"), some("2026-11-25T23:59:57Z"));
        assert!(matches!(e, Err(ClockEnvError::Both)));
    }
}
