//! The end of a graceful shutdown, once claiming has stopped: wait up to `shutdown_timeout`
//! for running handlers, then tell the rest to stop and hand their jobs back (`available`,
//! attempt not counted), fenced as always.

use std::time::Duration;

use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::{
    outcome::Outcomes,
    running::{RunningJobs, StopReason},
};

/// After the shutdown timeout, how long stopped handlers get to return before their jobs are
/// handed back from outside.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What a pool did at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers did not finish in time and were handed back.
    pub released: Vec<i64>,
}

/// Let the executor tasks on `jobs` finish within `timeout`, then stop and hand back what is
/// still held; returns once every completion is written.
///
/// # Errors
/// When handing jobs back failed: they stay `running` and are rescued once the lease runs
/// out.
pub(crate) async fn finish_jobs(
    jobs: TaskTracker,
    timeout: Duration,
    running: &RunningJobs,
    outcomes: &Outcomes,
) -> bosun_queue::Result<ShutdownReport> {
    jobs.close();
    let mut report = ShutdownReport::default();
    if tokio::time::timeout(timeout, jobs.wait()).await.is_err() {
        // Tell the handlers; those that return now hand their own jobs back. Whatever is
        // still held after a short grace is handed back here.
        warn!(
            jobs = running.len(),
            "shutdown timeout reached: stopping handlers and handing their jobs back"
        );
        running.stop_all(StopReason::Shutdown);
        let _ = tokio::time::timeout(STOP_GRACE, jobs.wait()).await;
        report.released = outcomes.hand_back_held().await?;
    }
    outcomes.drained().await;
    report.released.extend(outcomes.take_handed_back());
    report.released.sort_unstable();
    report.released.dedup();
    Ok(report)
}
