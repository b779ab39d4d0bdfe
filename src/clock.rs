//! The one place that reads the wall clock. Everything else takes a [`Clock`], so tests (and
//! reproducible previews) can pin time and get identical Date headers and signatures.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The environment variable that pins the clock (unix seconds). Meant for tests and for
/// reproducing a message byte for byte; documented in the README.
pub const FIXED_TIME_ENV: &str = "MAILSHOT_FIXED_TIME";

pub fn from_env() -> Arc<dyn Clock> {
    match std::env::var(FIXED_TIME_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(secs) => Arc::new(FixedClock(UNIX_EPOCH + Duration::from_secs(secs))),
        None => Arc::new(SystemClock),
    }
}

/// RFC 3339 in UTC, second precision, for reports.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
