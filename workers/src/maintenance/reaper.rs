//! The reaper: fails the work attached to expunged targets.
//!
//! A target (a host, a storage pantry) that is expunged never comes back, so nothing queued on
//! it can succeed and nothing running on it should finish. Each pass fails every unfinished
//! job on an expunged target with an error entry naming the target and the reason; a running
//! job's handler is told to stop and its late writes are fenced like any lost lease. Saga step
//! jobs move their saga on: a step to do fails and the saga compensates, an undo counts as
//! done. Stuck sagas on an expunged target resume compensating the same way. The leader runs a
//! pass on every maintenance tick and at once when an expunge is announced.

use bosun_queue::{
    targets::{reap_expunged, Reaped},
    Client,
};
use tracing::{debug, info};

use super::service::Service;

/// Default jobs per batch.
pub const BATCH_SIZE_DEFAULT: i32 = 1000;

/// Reaper settings.
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    /// Jobs per batch (one transaction each).
    pub batch_size: i32,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        ReaperConfig {
            batch_size: BATCH_SIZE_DEFAULT,
        }
    }
}

/// The reaper service.
#[derive(Debug, Clone)]
pub struct Reaper {
    client: Client,
    config: ReaperConfig,
}

impl Reaper {
    /// A reaper on `client`'s database.
    pub fn new(client: Client, config: ReaperConfig) -> Self {
        Reaper { client, config }
    }

    /// One pass: reap in batches until a batch comes back short. Idempotent: a second pass
    /// finds nothing.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a batch fails; earlier batches stay done.
    pub async fn run_once(&self) -> bosun_queue::Result<Vec<Reaped>> {
        let mut reaped = Vec::new();
        loop {
            let batch = reap_expunged(self.client.db(), self.config.batch_size).await?;
            let short = batch.len() < usize::try_from(self.config.batch_size).unwrap_or(0);
            reaped.extend(batch);
            if short {
                return Ok(reaped);
            }
        }
    }
}

impl Service for Reaper {
    type Report = Vec<Reaped>;

    fn name(&self) -> &'static str {
        "reaper"
    }

    async fn run_once(&self) -> bosun_queue::Result<Vec<Reaped>> {
        Reaper::run_once(self).await
    }

    fn report(&self, reaped: &Vec<Reaped>) {
        if reaped.is_empty() {
            debug!("reaper: nothing to do");
            return;
        }
        crate::metrics::reaped(reaped);
        info!(
            reaped = reaped.len(),
            running = reaped.iter().filter(|r| r.was_running).count(),
            "reaped jobs on expunged targets"
        );
    }
}
