//! Batches completions. A handler that succeeded hands its job to the completer and gives up
//! its slot at once: the next job starts while the completion waits for its write. The
//! completer writes everything waiting in one fenced statement (`job_complete_many`), with a
//! couple of such statements in flight. There is no timer: a batch is whatever queued while
//! earlier statements ran, so an idle worker completes at once and a busy one completes
//! hundreds of jobs per round trip.
//!
//! Why the slot is not held until the write: a slot that waits for a round trip is a slot
//! that runs nothing: with writes of a millisecond, a slot held through its write could
//! never run more than a thousand jobs a second, however fast the database is.
//!
//! Nothing is lost on a crash: a job whose completion was not written yet is still `running`
//! under this worker, and is rescued and run again like any job of a dead worker (at least
//! once, never lost). Until its completion is written the job stays in this worker's set of
//! held jobs, so the lease check and the give-back of unheld claims leave it alone, and
//! shutdown writes every waiting completion ([`Completer::drained`]) before it hands back
//! what is still held. Waiting completions are bounded ([`MAX_WAITING`]): when the database
//! falls behind, handlers wait to give up their slots, and claims slow down with them.

use std::{collections::HashSet, sync::Arc, time::Duration};

use backon::Retryable;
use bosun_queue::{runtime::job_complete_many, Job, JobState, Lease};
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::retry::record_backoff;
use crate::{
    connections::OwnConnections,
    running::{RunningJobs, StopReason},
};

/// Most completions per statement, and statements in flight at once. Since slots are given
/// up before the write, the completions of a busy worker queue up during a write and the
/// next statement takes them all: few large statements, rather than many small ones.
const MAX_BATCH: usize = 500;
const IN_FLIGHT: usize = 2;
/// Most completions waiting for their write before handlers have to wait.
const MAX_WAITING: usize = 4 * MAX_BATCH;

struct Pending {
    job: Arc<Job>,
    ran: Duration,
    _waiting: OwnedSemaphorePermit,
}

/// Where executors send their completions.
pub(super) struct Completer {
    sender: mpsc::UnboundedSender<Pending>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Semaphore>,
}

impl Completer {
    pub(super) fn new() -> Completer {
        let (sender, receiver) = mpsc::unbounded_channel();
        Completer {
            sender,
            receiver: Mutex::new(Some(receiver)),
            waiting: Arc::new(Semaphore::new(MAX_WAITING)),
        }
    }

    /// Queue the completion of `job`, whose handler succeeded after running for `ran`. Waits
    /// only while [`MAX_WAITING`] completions are already waiting. The job stays held (in the
    /// running set) until the write; the completer then records the outcome in the metrics
    /// and forgets the job.
    pub(super) async fn complete(&self, job: Arc<Job>, ran: Duration) {
        let Ok(waiting) = Arc::clone(&self.waiting).acquire_owned().await else {
            return;
        };
        let _ = self.sender.send(Pending {
            job,
            ran,
            _waiting: waiting,
        });
    }

    /// Wait until every queued completion has been written (or given up on).
    pub(super) async fn drained(&self) {
        let all = u32::try_from(MAX_WAITING).unwrap_or(u32::MAX);
        if let Ok(permits) = self.waiting.acquire_many(all).await {
            drop(permits);
        }
    }
}

impl Completer {
    /// Write completions on `own` until `stop`, then write what is still waiting and
    /// return. Each job is forgotten in `running` once its write is settled.
    pub(super) async fn run(
        &self,
        own: &OwnConnections,
        running: &RunningJobs,
        stop: CancellationToken,
    ) {
        let Some(mut receiver) = self.receiver.lock().await.take() else {
            return;
        };
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let flushes = tokio_util::task::TaskTracker::new();
        loop {
            let first = tokio::select! {
                first = receiver.recv() => first,
                () = stop.cancelled() => {
                    let mut rest = Vec::new();
                    while let Ok(pending) = receiver.try_recv() {
                        rest.push(pending);
                    }
                    for batch in rest.chunks(MAX_BATCH) {
                        flush(own, running, batch).await;
                    }
                    flushes.close();
                    flushes.wait().await;
                    return;
                }
            };
            let Some(first) = first else {
                flushes.close();
                flushes.wait().await;
                return;
            };
            // Take the batch only once a statement may start: completions that arrive
            // meanwhile join it.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            let (own, running) = (own.clone(), running.clone());
            flushes.spawn(async move {
                flush(&own, &running, &batch).await;
                drop(slot);
            });
        }
    }
}

/// Write one batch, retrying while the database is unreachable, then settle each job: count
/// it, forget it, and say so when it was fenced out.
async fn flush(own: &OwnConnections, running: &RunningJobs, batch: &[Pending]) {
    let held: Vec<Lease> = batch.iter().map(|p| p.job.lease()).collect();
    let pool = own.db();
    let result = (|| job_complete_many(pool, &held))
        .retry(record_backoff())
        .when(bosun_queue::Error::is_transient)
        .notify(|error, delay| {
            warn!(%error, ?delay, jobs = held.len(), "completing jobs failed; retrying");
        })
        .await;
    let done: HashSet<i64> = match result {
        Ok(done) => done.into_iter().collect(),
        Err(error) => {
            warn!(%error, jobs = held.len(), "could not complete jobs; they stay running until recovered");
            for pending in batch {
                running.remove(pending.job.id);
            }
            return;
        }
    };
    for pending in batch {
        let job = &pending.job;
        let stopped = running.remove(job.id);
        if done.contains(&job.id) {
            crate::metrics::finished(job, JobState::Completed, pending.ran);
        } else if stopped == Some(StopReason::Shutdown) {
            debug!(
                job = job.id,
                "completion not recorded: the job was handed back at shutdown"
            );
        } else {
            info!(
                job = job.id,
                attempt = job.attempt,
                "completion not recorded: the job was cancelled or taken over while it ran"
            );
        }
    }
}
