//! How the writes of outcomes are retried while the database is unreachable.

use std::time::Duration;

use backon::ExponentialBuilder;

/// About a minute and a half in all; then the job is left `running`, for the rescuer (or
/// for this worker's give-back of jobs it no longer holds).
pub(super) fn record_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(40)
        .with_jitter()
}

/// A hand-back is retried briefly: at shutdown, what it misses is rescued anyway.
pub(super) fn release_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(5)
}
