//! Turns notifications into action: wake the producer of a queue that got jobs, and stop the
//! handler of a job an operator cancelled. Reconnects with backoff when the connection drops,
//! and wakes every producer afterwards because notifications may have been missed meanwhile.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use bosun_queue::listener::{Listener, Notice};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    running::{RunningJobs, StopReason},
    wakeups::Wakers,
};

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the notifier acts on.
pub(crate) struct Notifier {
    /// The client, for the LISTEN connection.
    pub(crate) client: bosun_queue::Client,
    pub(crate) wakers: Wakers,
    pub(crate) running: RunningJobs,
    /// Told when a target is expunged: the maintenance loop reaps at once.
    pub(crate) expunged: Arc<Notify>,
}

impl Notifier {
    pub(crate) async fn run(self, stop: CancellationToken) {
        let Notifier {
            client,
            wakers,
            running,
            expunged,
        } = &self;
        // Also what a new connection, first or after a drop, calls for: notifications may have
        // been missed, and marks as waiting made before it may be gone (a server crash forgets
        // them). Every producer claims, and marks itself again if it finds too little.
        let wake_all = || wakers.wake_all();
        let mut backoff = Duration::from_millis(200);
        loop {
            let connected = tokio::select! {
                connected = Listener::connect(client.pool()) => connected,
                () = stop.cancelled() => return,
            };
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(error) => {
                    warn!(%error, retry_in = ?backoff, "LISTEN connection failed; polling meanwhile");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            wake_all();
            loop {
                let notice = tokio::select! {
                    notice = listener.recv() => notice,
                    () = stop.cancelled() => return,
                };
                match notice {
                    Ok(Notice::JobsAvailable(None) | Notice::Reconnected) => wake_all(),
                    Ok(Notice::JobsAvailable(Some(queues))) => {
                        for queue in queues {
                            wakers.wake(&queue);
                        }
                    }
                    Ok(Notice::Cancel { id, attempt }) => {
                        if running.stop(id, Some(attempt), StopReason::LeaseLost) {
                            info!(
                            job = id,
                            attempt, "job cancelled (by an operator, or its target expunged); stopping its handler"
                        );
                        }
                    }
                    Ok(Notice::CancelSaga { saga_id }) => {
                        if running.stop_saga(saga_id) {
                            info!(%saga_id, "saga cancelled by an operator; stopping its running step");
                        }
                    }
                    Ok(Notice::TargetExpunged { target }) => {
                        info!(%target, "target expunged; reaping its work");
                        expunged.notify_one();
                    }
                    Err(error) => {
                        warn!(%error, "LISTEN connection lost; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}
