//! The pruner: deletes finished jobs once their retention has passed, per state, and finished
//! sagas with their ledgers once theirs has, so the tables and their indexes do not grow
//! without bound. Batches of `batch_size`, each a short statement that skips locked rows,
//! until a batch comes back short. Stuck sagas have not finished and are never pruned.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{
    cleanup::{job_prune_batch, saga_prune_batch},
    periodic::database_now,
    Client, JobState,
};
use chrono::{DateTime, Utc};
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
    /// How often a pass walks each state's jobs from the oldest rather than from where the
    /// last pass stopped, for a job finished by a transaction that began long before it
    /// committed.
    pub full_pass_every: Duration,
}

impl Default for PrunerConfig {
    fn default() -> Self {
        PrunerConfig {
            retain_completed: RETAIN_COMPLETED_DEFAULT,
            retain_failed: RETAIN_FAILED_DEFAULT,
            retain_cancelled: RETAIN_CANCELLED_DEFAULT,
            retain_sagas: RETAIN_SAGAS_DEFAULT,
            batch_size: BATCH_SIZE_DEFAULT,
            full_pass_every: FULL_PASS_EVERY_DEFAULT,
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

/// A pass starts its walk this long before where the last one stopped: a job finished in a
/// transaction that began earlier carries that transaction's start as its `finalized_at`.
const FLOOR_MARGIN: Duration = Duration::from_secs(60);
/// Default [`PrunerConfig::full_pass_every`].
pub const FULL_PASS_EVERY_DEFAULT: Duration = Duration::from_secs(600);

/// Where each state's passes start, and when one last walked from the start.
#[derive(Debug)]
struct Floors {
    after: HashMap<JobState, DateTime<Utc>>,
    full_pass: Option<Instant>,
}

/// The pruner service.
///
/// Each pass deletes every job of a state past its retention, so the next one starts its
/// walk of the finalized index where that one's cut-off was, less a margin: the index keeps
/// the entries of deleted rows until a vacuum, and while the vacuum horizon is held, a walk
/// from the start would cross every job pruned since, on every batch.
#[derive(Debug, Clone)]
pub struct Pruner {
    client: Client,
    config: PrunerConfig,
    floors: Arc<Mutex<Floors>>,
}

impl Pruner {
    /// A pruner on `client`'s database.
    pub fn new(client: Client, config: PrunerConfig) -> Self {
        Pruner {
            client,
            config,
            floors: Arc::new(Mutex::new(Floors {
                after: HashMap::new(),
                full_pass: None,
            })),
        }
    }

    /// One pass over the three final states of jobs, then finished sagas. Idempotent.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a batch fails; earlier batches stay done.
    pub async fn run_once(&self) -> bosun_queue::Result<PruneResult> {
        let mut result = PruneResult::default();
        let now = database_now(self.client.db()).await?;
        let full = {
            let mut floors = self.floors.lock().expect("pruner state");
            let full = floors
                .full_pass
                .is_none_or(|at| at.elapsed() >= self.config.full_pass_every);
            if full {
                floors.full_pass = Some(Instant::now());
            }
            full
        };
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
            let after = if full {
                None
            } else {
                self.floors
                    .lock()
                    .expect("pruner state")
                    .after
                    .get(&state)
                    .copied()
            };
            loop {
                let deleted = job_prune_batch(
                    self.client.db(),
                    state,
                    retain,
                    self.config.batch_size,
                    after,
                )
                .await?;
                *count += deleted;
                if i64::try_from(deleted).unwrap_or(i64::MAX) < self.config.batch_size {
                    break;
                }
            }
            let floor = chrono::Duration::from_std(retain + FLOOR_MARGIN)
                .ok()
                .and_then(|back| now.checked_sub_signed(back));
            let mut floors = self.floors.lock().expect("pruner state");
            match floor {
                Some(floor) => floors.after.insert(state, floor),
                None => floors.after.remove(&state),
            };
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
