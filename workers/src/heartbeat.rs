//! Heartbeats: the worker's lease on the database clock. Registered before the first claim,
//! renewed every `heartbeat_interval`, removed at graceful shutdown. If heartbeats stop
//! (crash, SIGSTOP, a cut network) the lease runs out and the leader's rescuer gives this
//! worker's jobs back; anything the worker writes about them later is fenced out.

use std::{sync::Arc, time::Duration};

use backon::Retryable;
use bosun_queue::liveness::{job_rescue_unheld, worker_heartbeat, WorkerIdentity};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::pool::Shared;

/// This process's identity as stored in `bosun.workers`.
pub(crate) fn identity(shared: &Shared) -> WorkerIdentity {
    WorkerIdentity {
        id: shared.worker_id.to_string(),
        host: crate::pool::host_name(),
        pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        queues: shared
            .config
            .queues
            .iter()
            .map(|(q, _)| q.clone())
            .collect(),
        kinds: shared.kinds.clone(),
    }
}

/// Register now; errors are the caller's (a pool that cannot register does not start), once
/// transient ones (a dropped connection, a deadlock with workers registering at the same
/// moment) have been retried for a while. A process that starts holds no job, so jobs still `running` under its id belong to an
/// earlier incarnation with the same id (a restart with a fixed `worker_id`): give them back
/// now rather than never, since this registration renews the lease they were waiting on.
pub(crate) async fn register(shared: &Shared) -> bosun_queue::Result<()> {
    let pool = shared.own();
    let me = identity(shared);
    (|| worker_heartbeat(pool, &me, shared.config.lease))
        .retry(registration_backoff())
        .when(bosun_queue::Error::is_transient)
        .notify(|error, delay| warn!(%error, ?delay, "registering failed; retrying"))
        .await?;
    let batch = shared.config.rescuer.batch_size;
    loop {
        let rescued = (|| job_rescue_unheld(pool, &shared.worker_id, &[], Duration::ZERO, batch))
            .retry(registration_backoff())
            .when(bosun_queue::Error::is_transient)
            .await?;
        let count = rescued.retried + rescued.failed;
        if count > 0 {
            info!(
                retried = rescued.retried,
                failed = rescued.failed,
                "gave back jobs held by this worker id before it restarted"
            );
        }
        if i64::try_from(count).unwrap_or(i64::MAX) < batch {
            return Ok(());
        }
    }
}

/// A few seconds of retries at start: enough for a deadlock or a dropped connection, short
/// enough that a worker that cannot reach its database says so soon.
fn registration_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(6)
        .with_jitter()
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let me = identity(&shared);
    // The first beat is one interval after the registration, which renewed the lease.
    let every = shared.config.heartbeat_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match worker_heartbeat(shared.own(), &me, shared.config.lease).await {
            Ok(registered_again) => {
                if failing || registered_again {
                    info!(registered_again, "heartbeat restored");
                }
                failing = false;
            }
            Err(error) => {
                if !failing {
                    warn!(%error, "heartbeat failed; retrying (jobs are rescued if the lease runs out)");
                }
                failing = true;
            }
        }
    }
}
