//! The pruner: deletes finished jobs once their retention has passed, per state, and finished
//! sagas with their ledgers once theirs has, so the tables and their indexes do not grow
//! without bound. Batches of `batch_size`, each a short statement that skips locked rows,
//! until a batch comes back short. Stuck sagas have not finished and are never pruned.

use std::time::Duration;

use bosun_queue::{
    cleanup::{job_prune_batch, saga_prune_batch},
    Client, JobState,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::service::Service;

/// Default retention of completed jobs.
pub const RETAIN_COMPLETED_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Default retention of failed jobs (kept longer: someone may want to retry them).
pub const RETAIN_FAILED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default retention of cancelled jobs.
pub const RETAIN_CANCELLED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default retention of succeeded and compensated sagas (and their ledgers).
pub const RETAIN_SAGAS_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default rows per batch.
pub const BATCH_SIZE_DEFAULT: i64 = 1000;

/// Pruner settings.
#[derive(Debug, Clone)]
pub struct PrunerConfig {
    /// Keep completed jobs this long after they finished.
    pub retain_completed: Duration,
    /// Keep failed jobs this long.
    pub retain_failed: Duration,
    /// Keep cancelled jobs this long.
    pub retain_cancelled: Duration,
    /// Keep succeeded and compensated sagas this long after they finished.
    pub retain_sagas: Duration,
    /// Rows per batch.
    pub batch_size: i64,
}

impl Default for PrunerConfig {
    fn default() -> Self {
        PrunerConfig {
            retain_completed: RETAIN_COMPLETED_DEFAULT,
            retain_failed: RETAIN_FAILED_DEFAULT,
            retain_cancelled: RETAIN_CANCELLED_DEFAULT,
            retain_sagas: RETAIN_SAGAS_DEFAULT,
            batch_size: BATCH_SIZE_DEFAULT,
        }
    }
}

/// What one pass deleted, per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneResult {
    /// Completed jobs deleted.
    pub completed: u64,
    /// Failed jobs deleted.
    pub failed: u64,
    /// Cancelled jobs deleted.
    pub cancelled: u64,
    /// Finished sagas deleted.
    #[serde(default)]
    pub sagas: u64,
}

/// The pruner service.
#[derive(Debug, Clone)]
pub struct Pruner {
    client: Client,
    config: PrunerConfig,
}

impl Pruner {
    /// A pruner on `client`'s database.
    pub fn new(client: Client, config: PrunerConfig) -> Self {
        Pruner { client, config }
    }

    /// One pass over the three final states of jobs, then finished sagas. Idempotent.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a batch fails; earlier batches stay done.
    pub async fn run_once(&self) -> bosun_queue::Result<PruneResult> {
        let mut result = PruneResult::default();
        for (state, retain, count) in [
            (
                JobState::Completed,
                self.config.retain_completed,
                &mut result.completed,
            ),
            (
                JobState::Failed,
                self.config.retain_failed,
                &mut result.failed,
            ),
            (
                JobState::Cancelled,
                self.config.retain_cancelled,
                &mut result.cancelled,
            ),
        ] {
            loop {
                let deleted =
                    job_prune_batch(self.client.db(), state, retain, self.config.batch_size)
                        .await?;
                *count += deleted;
                if i64::try_from(deleted).unwrap_or(i64::MAX) < self.config.batch_size {
                    break;
                }
            }
        }
        loop {
            let deleted = saga_prune_batch(
                self.client.db(),
                self.config.retain_sagas,
                self.config.batch_size,
            )
            .await?;
            result.sagas += deleted;
            if i64::try_from(deleted).unwrap_or(i64::MAX) < self.config.batch_size {
                break;
            }
        }
        Ok(result)
    }
}

impl Service for Pruner {
    type Report = PruneResult;

    fn name(&self) -> &'static str {
        "pruner"
    }

    async fn run_once(&self) -> bosun_queue::Result<PruneResult> {
        Pruner::run_once(self).await
    }

    fn report(&self, result: &PruneResult) {
        if result.completed + result.failed + result.cancelled == 0 {
            debug!("pruner: nothing to do");
            return;
        }
        info!(
            completed = result.completed,
            failed = result.failed,
            cancelled = result.cancelled,
            "pruned finished jobs past their retention"
        );
    }
}
