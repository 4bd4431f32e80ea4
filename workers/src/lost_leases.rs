//! The lease check: every `lease_check_interval`, ask the database which of the jobs this
//! process runs it no longer holds (an operator cancelled or retried them, or another worker
//! took them over) and tell those handlers to stop. It is how a cancel reaches a handler when
//! LISTEN is off, and a backstop when a notification was missed. Their results are fenced out
//! regardless; this only saves the work.
//!
//! It also gives back jobs running under this worker's id that it does not hold (see
//! [`LeaseCheck::give_back_unheld`]).

use std::time::Duration;

use bosun_queue::{liveness::job_rescue_unheld, runtime::job_lost_leases, Lease};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    connections::OwnConnections,
    running::{RunningJobs, StopReason},
};

/// What the lease check needs.
pub(crate) struct LeaseCheck {
    pub(crate) own: OwnConnections,
    pub(crate) running: RunningJobs,
    pub(crate) worker_id: std::sync::Arc<str>,
    pub(crate) every: Duration,
    /// Claims older than this that this worker does not hold are given back.
    pub(crate) lease: Duration,
    pub(crate) batch: i64,
}

impl LeaseCheck {
    /// Check every interval until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        // Nothing is held yet at the start: the first check is one interval in, rather than
        // a statement racing the first claim for a connection.
        let every = self.every;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            self.give_back_unheld(&self.running.held()).await;
            let unfinished = self.running.unfinished();
            if unfinished.is_empty() {
                continue;
            }
            match job_lost_leases(self.own.db(), &unfinished).await {
                Ok(lost) => {
                    for id in lost {
                        if self.running.stop(id, None, StopReason::LeaseLost) {
                            info!(
                                job = id,
                                "job no longer held by this worker; stopping its handler"
                            );
                        }
                    }
                }
                Err(error) => debug!(%error, "lease check failed; next tick retries"),
            }
        }
    }

    /// Jobs `running` under this worker's id that it does not hold: claims whose reply was
    /// lost when the connection dropped after the commit. Nobody else would ever rescue them,
    /// since this worker's lease stays alive. Only claims older than a lease are considered,
    /// far longer than a claim's reply takes to be handled.
    async fn give_back_unheld(&self, held: &[Lease]) {
        let ids: Vec<i64> = held.iter().map(|lease| lease.id).collect();
        let result =
            job_rescue_unheld(self.own.db(), &self.worker_id, &ids, self.lease, self.batch).await;
        match result {
            Ok(r) if r.retried + r.failed > 0 => warn!(
                retried = r.retried,
                failed = r.failed,
                "gave back jobs claimed under this worker's id whose claim reply was lost"
            ),
            Ok(_) => {}
            Err(error) => debug!(%error, "checking for lost claims failed; next tick retries"),
        }
    }
}
