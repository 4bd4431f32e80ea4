//! The default delay between failed attempts.
//!
//! `delay(attempt) = min(attempt^4, 86_400)` seconds, at least one second:
//! 1 s, 16 s, 81 s, 4 m 16 s, 10 m 25 s, ... 2 h 47 m at attempt 10, capped at one day from
//! attempt 18. Over the default 20 attempts a job keeps retrying for about six days, long
//! enough to ride out a weekend outage of whatever it calls. The database adds +/-10% jitter
//! when it records the failure (`now() + delay * (0.9 + random() * 0.2)`), so jobs that failed
//! together spread out, and the time base is the database clock, not the worker's.

use std::time::Duration;

/// Longest delay between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);

/// The default backoff after attempt `attempt` (1-based) failed.
pub fn retry_delay(attempt: i32) -> Duration {
    let attempt = u64::from(attempt.max(1).unsigned_abs());
    let secs = attempt.saturating_pow(4).min(MAX_RETRY_DELAY.as_secs());
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_as_the_fourth_power_and_caps_at_a_day() {
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(16));
        assert_eq!(retry_delay(10), Duration::from_secs(10_000));
        assert_eq!(retry_delay(18), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(i32::MAX), MAX_RETRY_DELAY);
    }
}
