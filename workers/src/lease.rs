//! The lease check: every `lease_check_interval`, ask the database which of the jobs this
//! process runs it no longer holds (an operator cancelled or retried them, or another worker
//! took them over) and tell those handlers to stop. It is how a cancel reaches a handler when
//! LISTEN is off, and a backstop when a notification was missed. Their results are fenced out
//! regardless; this only saves the work.

use std::sync::Arc;

use bosun_queue::runtime::job_lost_leases;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::{pool::Shared, running::StopReason};

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.lease_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let held = shared.running.held();
        if held.is_empty() {
            continue;
        }
        match job_lost_leases(shared.client.pool(), &held).await {
            Ok(lost) => {
                for id in lost {
                    if shared.running.stop(id, None, StopReason::LeaseLost) {
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
