//! Starts a queue's claimed jobs as its slots free up, in the order they were claimed, each
//! on an executor task that holds the slot while its handler runs.
//!
//! At shutdown it hands back the jobs that have not started, including those of a claim that
//! was in flight when shutdown began: the channel is read until the producer has closed it.

use std::sync::Arc;

use bosun_queue::Job;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    claim_ahead::RunTimes,
    executor::{Executor, Reservation},
    outcome::Outcomes,
};

/// A claimed job on its way to a slot: its place in the queue's room, and the token that
/// tells its handler to stop.
pub(crate) type Claimed = (Job, OwnedSemaphorePermit, CancellationToken);

/// The dispatcher of one queue.
pub(crate) struct Dispatcher {
    pub(crate) executor: Executor,
    pub(crate) outcomes: Outcomes,
    /// The queue's `concurrency` slots.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) run_times: Arc<RunTimes>,
}

impl Dispatcher {
    /// Start what comes on `claimed` until `stop`, on tasks of `jobs`; then hand back what
    /// did not start.
    pub(crate) async fn run(
        self,
        mut claimed: mpsc::UnboundedReceiver<Claimed>,
        stop: CancellationToken,
        jobs: TaskTracker,
    ) {
        let mut waiting = Vec::new();
        loop {
            let next = tokio::select! {
                next = claimed.recv() => next,
                () = stop.cancelled() => None,
            };
            let Some((job, place, cancel)) = next else {
                break;
            };
            let slot = tokio::select! {
                slot = Arc::clone(&self.slots).acquire_owned() => slot.ok(),
                () = stop.cancelled() => None,
            };
            let Some(slot) = slot else {
                waiting.push(job);
                break;
            };
            let held = Reservation {
                _slot: slot,
                _place: place,
                run_times: Arc::clone(&self.run_times),
            };
            jobs.spawn(self.executor.clone().execute(job, cancel, held));
        }
        while let Some((job, _, _)) = claimed.recv().await {
            waiting.push(job);
        }
        self.outcomes.hand_back_unstarted(&waiting).await;
    }
}
