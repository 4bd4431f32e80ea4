//! Heartbeats: the worker's lease on the database clock. Registered before the first claim,
//! renewed every `heartbeat_interval`, removed at graceful shutdown. If heartbeats stop
//! (crash, SIGSTOP, a cut network) the lease runs out and the leader's rescuer gives this
//! worker's jobs back; anything the worker writes about them later is fenced out.

use std::sync::Arc;

use bosun_queue::liveness::{worker_heartbeat, WorkerIdentity};
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

/// Register now; errors are the caller's (a pool that cannot register does not start).
pub(crate) async fn register(shared: &Shared) -> bosun_queue::Result<()> {
    worker_heartbeat(shared.client.pool(), &identity(shared), shared.config.lease).await?;
    Ok(())
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let me = identity(&shared);
    let mut tick = tokio::time::interval(shared.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        match worker_heartbeat(shared.client.pool(), &me, shared.config.lease).await {
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
