//! The jobs this process is running right now: their attempt (fencing token) and the token
//! that tells the handler to stop. Shared by the executor, the notifier (operator cancels),
//! the lease check and shutdown.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bosun_queue::Lease;
use tokio_util::sync::CancellationToken;

/// Why a running job's handler was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The row no longer belongs to this attempt (cancelled, retried, taken over).
    LeaseLost,
    /// The worker is shutting down and the grace period ran out.
    Shutdown,
    /// An operator cancelled the saga this step belongs to.
    SagaCancelled,
}

struct Entry {
    attempt: i32,
    saga: Option<uuid::Uuid>,
    cancel: CancellationToken,
    stopped: Option<StopReason>,
    /// The handler returned a success whose completion waits for its batched write.
    finished: bool,
}

impl Entry {
    /// Record why the handler stops (the first reason stands) and tell it; true if it had
    /// not been told before.
    fn stop(&mut self, reason: StopReason) -> bool {
        let first = self.stopped.is_none();
        self.stopped.get_or_insert(reason);
        self.cancel.cancel();
        first
    }
}

#[derive(Clone, Default)]
pub(crate) struct RunningJobs {
    inner: Arc<Mutex<HashMap<i64, Entry>>>,
}

impl RunningJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // is a single insert, remove or field write), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Track job `id` at `attempt`; `saga` names the saga when it runs a saga step.
    pub(crate) fn insert(
        &self,
        id: i64,
        attempt: i32,
        saga: Option<uuid::Uuid>,
    ) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.lock().insert(
            id,
            Entry {
                attempt,
                saga,
                cancel: cancel.clone(),
                stopped: None,
                finished: false,
            },
        );
        cancel
    }

    /// Forget a finished job; returns why it was stopped, if it was.
    pub(crate) fn remove(&self, id: i64) -> Option<StopReason> {
        self.lock().remove(&id).and_then(|e| e.stopped)
    }

    /// Tell job `id`'s handler to stop, if it runs attempt `attempt` (any attempt if None).
    /// True only the first time: the lease check and a notification may both report the same
    /// lost job, every second while its handler runs on, and it is said once.
    pub(crate) fn stop(&self, id: i64, attempt: Option<i32>, reason: StopReason) -> bool {
        let mut map = self.lock();
        match map.get_mut(&id) {
            Some(entry) if attempt.is_none_or(|a| a == entry.attempt) => entry.stop(reason),
            _ => false,
        }
    }

    /// Tell the handlers running steps of `saga` to stop; true if one was not told before.
    pub(crate) fn stop_saga(&self, saga: uuid::Uuid) -> bool {
        let mut stopped = false;
        for entry in self.lock().values_mut().filter(|e| e.saga == Some(saga)) {
            stopped |= entry.stop(StopReason::SagaCancelled);
        }
        stopped
    }

    pub(crate) fn stop_all(&self, reason: StopReason) {
        for entry in self.lock().values_mut() {
            entry.stop(reason);
        }
    }

    /// Resolves once job `id`'s handler, told to stop through `cancel`, has had `grace` to
    /// return: then it is aborted. Never for a stop at shutdown, which has a grace of its
    /// own and hands the job back rather than ending it.
    pub(crate) async fn stop_overdue(&self, id: i64, cancel: &CancellationToken, grace: Duration) {
        cancel.cancelled().await;
        if self.stop_reason(id) == Some(StopReason::Shutdown) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    }

    /// Why job `id`'s handler was told to stop, if it was.
    pub(crate) fn stop_reason(&self, id: i64) -> Option<StopReason> {
        self.lock().get(&id).and_then(|e| e.stopped)
    }

    /// Job `id`'s handler succeeded: the job stays held until its completion is written, but
    /// there is no handler left to stop.
    pub(crate) fn finished(&self, id: i64) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.finished = true;
        }
    }

    /// `(id, attempt)` of every job held: claimed, running, or waiting for its completion to
    /// be written.
    pub(crate) fn held(&self) -> Vec<Lease> {
        self.leases(|_| true)
    }

    /// `(id, attempt)` of every held job whose handler has not succeeded yet (waiting for a
    /// slot, or running): those a lost lease has a handler to stop. A job waiting for its
    /// completion is left out: the write, fenced, settles it either way, and a lease check
    /// that raced the write would find it completed and call it lost.
    pub(crate) fn unfinished(&self) -> Vec<Lease> {
        self.leases(|e| !e.finished)
    }

    fn leases(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Lease> {
        self.lock()
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(id, e)| Lease {
                id: *id,
                attempt: e.attempt,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64, attempt: i32) -> Lease {
        Lease { id, attempt }
    }

    #[test]
    fn a_job_waiting_for_its_completion_is_held_but_not_unfinished() {
        let running = RunningJobs::default();
        running.insert(1, 3, None);
        running.insert(2, 1, None);
        running.finished(1);
        let mut held = running.held();
        held.sort_unstable();
        assert_eq!(held, vec![lease(1, 3), lease(2, 1)]);
        assert_eq!(running.unfinished(), vec![lease(2, 1)]);
        running.remove(1);
        running.finished(1);
        assert_eq!(
            running.held(),
            vec![lease(2, 1)],
            "finishing a forgotten job adds nothing"
        );
    }

    #[test]
    fn a_handler_is_told_to_stop_once() {
        let running = RunningJobs::default();
        let cancel = running.insert(1, 1, None);
        assert!(running.stop(1, Some(1), StopReason::LeaseLost));
        assert!(cancel.is_cancelled());
        assert!(!running.stop(1, None, StopReason::LeaseLost), "said once");
        assert!(!running.stop(2, None, StopReason::LeaseLost), "not held");
        assert_eq!(running.stop_reason(1), Some(StopReason::LeaseLost));
    }

    #[tokio::test(start_paused = true)]
    async fn an_overdue_stop_comes_after_the_grace_but_never_at_shutdown() {
        let running = RunningJobs::default();
        let lost = running.insert(1, 1, None);
        let shut = running.insert(2, 1, None);
        running.stop(1, None, StopReason::LeaseLost);
        running.stop(2, None, StopReason::Shutdown);
        let grace = Duration::from_secs(30);
        let started = tokio::time::Instant::now();
        running.stop_overdue(1, &lost, grace).await;
        assert_eq!(started.elapsed(), grace);
        let shutdown = running.stop_overdue(2, &shut, grace);
        assert!(
            tokio::time::timeout(grace * 10, shutdown).await.is_err(),
            "a stop at shutdown is never overdue"
        );
    }
}
