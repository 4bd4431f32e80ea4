//! The rescuer: gives back jobs held by workers that stopped heartbeating.
//!
//! A job is `running` under the worker named in `attempted_by`. When that worker's lease has
//! run out (it crashed, was paused past its lease, or lost its network), the job becomes
//! `retryable` at once, or `failed` if it has used its attempts, with an error entry naming
//! the worker. A slow job on a live worker is never rescued: only liveness counts, not age.
//! Old registrations of dead workers are forgotten once they hold nothing.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{
    liveness::{job_rescue_many, job_running_oldest, worker_prune_expired, RescueResult},
    Client,
};
use chrono::{DateTime, Utc};
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
    /// Passes walk the running jobs from the oldest entry of their index, unless that walk
    /// took longer than this (entries of jobs that ran while the vacuum horizon was held):
    /// then from the oldest job running at the last pass, until the next full pass.
    pub slow_walk: Duration,
    /// How often, while walks are slow, a pass walks from the oldest entry anyway, for a job
    /// claimed in a transaction that began long before it committed, or set running by hand.
    pub full_pass_every: Duration,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        RescuerConfig {
            batch_size: BATCH_SIZE_DEFAULT,
            min_age: crate::heartbeat::LEASE_DEFAULT,
            forget_workers_after: FORGET_WORKERS_AFTER_DEFAULT,
            slow_walk: SLOW_WALK_DEFAULT,
            full_pass_every: FULL_PASS_EVERY_DEFAULT,
        }
    }
}

/// A pass starts its walk this long before the oldest job that was running at the last one:
/// a claim made in a transaction that began earlier carries that start as `attempted_at`.
const FLOOR_MARGIN: Duration = Duration::from_secs(60);
/// Default [`RescuerConfig::full_pass_every`].
pub const FULL_PASS_EVERY_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`RescuerConfig::slow_walk`].
pub const SLOW_WALK_DEFAULT: Duration = Duration::from_millis(10);

/// Where passes start their walk, when one last walked from the start, and whether that walk
/// was slow.
#[derive(Debug, Default)]
struct Floor {
    after: Option<DateTime<Utc>>,
    full_pass: Option<Instant>,
    slow: bool,
}

/// The rescuer service.
///
/// A pass walks the running jobs in the order they were claimed. The index of running jobs
/// keeps an entry for every job that has run since the last vacuum, and while the vacuum
/// horizon is held, a walk from its start crosses every one of them, on every tick. So when
/// that walk turns slow, passes start from the oldest job running at the last pass (less a
/// margin), and walk from the start only every [`RescuerConfig::full_pass_every`].
#[derive(Debug, Clone)]
pub struct Rescuer {
    client: Client,
    config: RescuerConfig,
    floor: Arc<Mutex<Floor>>,
}

impl Rescuer {
    /// A rescuer on `client`'s database.
    pub fn new(client: Client, config: RescuerConfig) -> Self {
        Rescuer {
            client,
            config,
            floor: Arc::default(),
        }
    }

    /// One pass: rescue orphaned jobs in batches until a batch comes back short, then forget
    /// long-dead workers. Idempotent.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a batch fails; earlier batches stay done.
    pub async fn run_once(&self) -> bosun_queue::Result<RescueResult> {
        let pool = self.client.db();
        let mut total = RescueResult::default();
        let floor = {
            let floor = self.floor.lock().expect("rescuer state");
            let floored = floor.slow
                && floor
                    .full_pass
                    .is_some_and(|at| at.elapsed() < self.config.full_pass_every);
            floored.then_some(floor.after).flatten()
        };
        let walk = Instant::now();
        let (now, oldest) = job_running_oldest(pool, floor).await?;
        if floor.is_none() {
            let mut state = self.floor.lock().expect("rescuer state");
            state.full_pass = Some(Instant::now());
            state.slow = walk.elapsed() > self.config.slow_walk;
        }
        // Where the next pass starts: before the oldest running now, and before anything
        // claimed from now on could be old enough to rescue.
        let margin = chrono::Duration::from_std(FLOOR_MARGIN).unwrap_or_default();
        let next = chrono::Duration::from_std(self.config.min_age + FLOOR_MARGIN)
            .ok()
            .and_then(|back| now.checked_sub_signed(back))
            .map(|floor| oldest.map_or(floor, |oldest| floor.min(oldest - margin)));
        // Nothing running: nothing to rescue.
        while let Some(oldest) = oldest {
            let batch = job_rescue_many(
                pool,
                self.config.batch_size,
                self.config.min_age,
                Some(oldest),
            )
            .await?;
            total.retried += batch.retried;
            total.failed += batch.failed;
            let done = batch.retried + batch.failed;
            if i64::try_from(done).unwrap_or(i64::MAX) < self.config.batch_size {
                break;
            }
        }
        self.floor.lock().expect("rescuer state").after = next;
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
