//! The vacuumer: vacuums `bosun.jobs` when dead row versions pile up faster than autovacuum
//! clears them.
//!
//! Every claim and every completion leaves a dead version of the job's row, and every pruned
//! job one more. Until a vacuum, their space is not reused, so the table and its indexes grow
//! with the throughput rather than with the jobs kept, and claims walk index entries that lead
//! to dead rows. Autovacuum is the first line (the table's thresholds are low, see its
//! storage parameters in migrations/schema.sql), but it looks at a database once a minute at
//! most, is throttled, and may be turned off. So the maintenance leader checks the statistics each tick and runs a plain `VACUUM`
//! (which claims and writes do not wait on) once the dead versions exceed both
//! [`VacuumerConfig::dead_min`] and [`VacuumerConfig::dead_fraction`] of the live rows, unless
//! a vacuum of the table is running already. The defaults make it a backstop: a working
//! autovacuum acts long before, and a worker that vacuums eagerly spends the database's CPU
//! while it drains; with them a table under steady load levels off instead of growing by
//! what each pass of the pruner deletes.
//!
//! While something holds the vacuum horizon back, a vacuum removes none of them: they are
//! not dead to every snapshot yet. A vacuum after which most of the dead versions are still
//! there marks the horizon as held, and the next one waits until they have doubled or a
//! minute has passed: otherwise the leader would scan the whole growing table on every tick
//! for nothing.
//!
//! The vacuums leave the table's empty end in place (`vacuum_truncate = false` on the
//! table): truncating it takes the table's ACCESS EXCLUSIVE lock, which every claim and
//! insert then waits behind.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{
    cleanup::{jobs_dead_rows, jobs_vacuum},
    Client,
};
use tracing::info;

use super::service::Service;

/// Default [`VacuumerConfig::dead_min`].
pub const DEAD_MIN_DEFAULT: i64 = 100_000;
/// Default [`VacuumerConfig::dead_fraction`].
pub const DEAD_FRACTION_DEFAULT: f64 = 1.0;

/// Vacuumer settings.
#[derive(Debug, Clone)]
pub struct VacuumerConfig {
    /// Whether the leader vacuums at all (off: autovacuum alone).
    pub enabled: bool,
    /// Vacuum only above this many dead row versions.
    pub dead_min: i64,
    /// ... and above this fraction of the live rows.
    pub dead_fraction: f64,
}

impl Default for VacuumerConfig {
    fn default() -> Self {
        VacuumerConfig {
            enabled: true,
            dead_min: DEAD_MIN_DEFAULT,
            dead_fraction: DEAD_FRACTION_DEFAULT,
        }
    }
}

/// After a vacuum that left the dead versions in place, the next waits this long unless they
/// double first.
const HELD_RETRY: Duration = Duration::from_secs(60);

/// A vacuum that removed less than half of the dead versions: the horizon is held.
#[derive(Debug, Clone, Copy)]
struct Held {
    dead_left: i64,
    at: Instant,
}

/// The vacuumer service.
#[derive(Debug, Clone)]
pub struct Vacuumer {
    client: Client,
    config: VacuumerConfig,
    held: Arc<Mutex<Option<Held>>>,
}

impl Vacuumer {
    /// A vacuumer on `client`'s database.
    pub fn new(client: Client, config: VacuumerConfig) -> Self {
        Vacuumer {
            client,
            config,
            held: Arc::new(Mutex::new(None)),
        }
    }

    /// Vacuum if the dead versions call for it; returns how many there were when it did.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if the check or the vacuum fails.
    pub async fn run_once(&self) -> bosun_queue::Result<Option<i64>> {
        if !self.config.enabled {
            return Ok(None);
        }
        let rows = jobs_dead_rows(self.client.db()).await?;
        #[allow(clippy::cast_precision_loss)] // row counts far below 2^52
        let over_fraction = rows.dead as f64 > rows.live as f64 * self.config.dead_fraction;
        // A role that does not own the table would get a warning and nothing done.
        if !rows.may_vacuum || rows.vacuuming || rows.dead < self.config.dead_min || !over_fraction
        {
            *self.held.lock().expect("vacuumer state") = None;
            return Ok(None);
        }
        let held = *self.held.lock().expect("vacuumer state");
        if held.is_some_and(|h| {
            rows.dead < h.dead_left.saturating_mul(2) && h.at.elapsed() < HELD_RETRY
        }) {
            return Ok(None);
        }
        jobs_vacuum(self.client.db()).await?;
        let left = jobs_dead_rows(self.client.db()).await?.dead;
        *self.held.lock().expect("vacuumer state") = (left >= rows.dead / 2).then(|| Held {
            dead_left: left,
            at: Instant::now(),
        });
        Ok(Some(rows.dead))
    }
}

impl Service for Vacuumer {
    type Report = Option<i64>;

    fn name(&self) -> &'static str {
        "vacuumer"
    }

    async fn run_once(&self) -> bosun_queue::Result<Option<i64>> {
        Vacuumer::run_once(self).await
    }

    fn report(&self, vacuumed: &Option<i64>) {
        if let Some(dead) = vacuumed {
            info!(dead, "vacuumed bosun.jobs");
        }
    }
}
