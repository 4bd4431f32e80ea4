//! One producer per queue: claims as many due jobs as there are free slots, in one
//! statement, and hands each to an executor task that holds its slot until the outcome is
//! recorded. A full batch means more may be waiting, so it claims again at once; otherwise
//! it sleeps until a notification, the poll tick, or shutdown.

use std::{sync::Arc, time::Duration};

use bosun_queue::runtime::job_claim;
use tokio::sync::{Notify, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::{executor::execute, pool::Shared};

const CLAIM_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    wake: Arc<Notify>,
    stop: CancellationToken,
    jobs: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut error_backoff = Duration::from_millis(100);
    loop {
        // Wait for one free slot, then take every other free one: the batch size.
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stop.cancelled() => return,
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(permit);
        }
        let limit = i64::try_from(permits.len()).unwrap_or(i64::MAX);
        let claimed = job_claim(
            shared.client.pool(),
            &queue,
            &shared.kinds,
            limit,
            &shared.worker_id,
        )
        .await;
        match claimed {
            Ok(claimed) => {
                error_backoff = Duration::from_millis(100);
                let full = claimed.len() == permits.len();
                for job in claimed {
                    crate::metrics::claimed(&job);
                    let Some(permit) = permits.pop() else { break };
                    jobs.spawn(execute(Arc::clone(&shared), job, permit));
                }
                drop(permits);
                if full {
                    continue;
                }
            }
            Err(error) => {
                drop(permits);
                warn!(%queue, %error, retry_in = ?error_backoff, "claiming failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(error_backoff) => {}
                    () = stop.cancelled() => return,
                }
                error_backoff = (error_backoff * 2).min(CLAIM_ERROR_BACKOFF_MAX);
                continue;
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(shared.config.poll_interval) => {}
            () = stop.cancelled() => return,
        }
    }
}
