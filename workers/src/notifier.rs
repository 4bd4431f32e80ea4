//! Turns notifications into action: wake the producer of a queue that got jobs, and stop the
//! handler of a job an operator cancelled. Reconnects with backoff when the connection drops,
//! and wakes every producer afterwards because notifications may have been missed meanwhile.

use std::{sync::Arc, time::Duration};

use bosun_queue::listener::{Listener, Notice};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{pool::Shared, running::StopReason};

const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let wakers = &shared.wakers;
    // Also what a new connection, first or after a drop, calls for: notifications may have
    // been missed, and marks as waiting made before it may be gone (a server crash forgets
    // them). Every producer claims, and marks itself again if it finds too little.
    let wake_all = || wakers.values().for_each(|w| w.notify_one());
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = tokio::select! {
            connected = Listener::connect(shared.client.pool()) => connected,
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
                        if let Some(waker) = wakers.get(&queue) {
                            waker.notify_one();
                        }
                    }
                }
                Ok(Notice::Cancel { id, attempt }) => {
                    if shared
                        .running
                        .stop(id, Some(attempt), StopReason::LeaseLost)
                    {
                        info!(
                            job = id,
                            attempt, "job cancelled (by an operator, or its target expunged); stopping its handler"
                        );
                    }
                }
                Ok(Notice::CancelSaga { saga_id }) => {
                    if shared.running.stop_saga(saga_id) {
                        info!(%saga_id, "saga cancelled by an operator; stopping its running step");
                    }
                }
                Ok(Notice::TargetExpunged { target }) => {
                    info!(%target, "target expunged; reaping its work");
                    shared.expunged.notify_one();
                }
                Err(error) => {
                    warn!(%error, "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}
