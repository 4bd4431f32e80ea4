//! The rescuer: gives back jobs held by workers that stopped heartbeating.
//!
//! A job is `running` under the worker named in `attempted_by`. When that worker's lease has
//! run out (it crashed, was paused past its lease, or lost its network), the job becomes
//! `retryable` at once, or `failed` if it has used its attempts, with an error entry naming
//! the worker. A slow job on a live worker is never rescued: only liveness counts, not age.
//! Old registrations of dead workers are forgotten once they hold nothing.

use std::time::Duration;

use bosun_queue::{
    liveness::{job_rescue_many, worker_prune_expired, RescueResult},
    Client,
};
use tracing::{debug, info};

use super::service::Service;

/// Default rows per batch.
pub const BATCH_SIZE_DEFAULT: i64 = 1000;
/// Default time after its lease ran out before a dead worker's row is deleted.
pub const FORGET_WORKERS_AFTER_DEFAULT: Duration = Duration::from_secs(3600);

/// Rescuer settings.
#[derive(Debug, Clone)]
pub struct RescuerConfig {
    /// Rows per batch.
    pub batch_size: i64,
    /// Leave jobs claimed less than this long ago alone (a claim racing its worker's first
    /// heartbeat). Defaults to the lease.
    pub min_age: Duration,
    /// Delete dead workers' rows this long after their lease ran out.
    pub forget_workers_after: Duration,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        RescuerConfig {
            batch_size: BATCH_SIZE_DEFAULT,
            min_age: crate::heartbeat::LEASE_DEFAULT,
            forget_workers_after: FORGET_WORKERS_AFTER_DEFAULT,
        }
    }
}

/// The rescuer service.
#[derive(Debug, Clone)]
pub struct Rescuer {
    client: Client,
    config: RescuerConfig,
}

impl Rescuer {
    /// A rescuer on `client`'s database.
    pub fn new(client: Client, config: RescuerConfig) -> Self {
        Rescuer { client, config }
    }

    /// One pass: rescue orphaned jobs in batches until a batch comes back short, then forget
    /// long-dead workers. Idempotent.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a batch fails; earlier batches stay done.
    pub async fn run_once(&self) -> bosun_queue::Result<RescueResult> {
        let pool = self.client.db();
        let mut total = RescueResult::default();
        loop {
            let batch = job_rescue_many(pool, self.config.batch_size, self.config.min_age).await?;
            total.retried += batch.retried;
            total.failed += batch.failed;
            let done = batch.retried + batch.failed;
            if i64::try_from(done).unwrap_or(i64::MAX) < self.config.batch_size {
                break;
            }
        }
        worker_prune_expired(pool, self.config.forget_workers_after).await?;
        Ok(total)
    }
}

impl Service for Rescuer {
    type Report = RescueResult;

    fn name(&self) -> &'static str {
        "rescuer"
    }

    async fn run_once(&self) -> bosun_queue::Result<RescueResult> {
        Rescuer::run_once(self).await
    }

    fn report(&self, result: &RescueResult) {
        if result.retried + result.failed == 0 {
            debug!("rescuer: nothing to do");
            return;
        }
        crate::metrics::rescued(result.retried + result.failed);
        info!(
            retried = result.retried,
            failed = result.failed,
            "rescued jobs of workers that stopped heartbeating"
        );
    }
}
