//! The one writer of an attempt's end: completions (batched), errors, cancels and snoozes,
//! saga transitions, hand-backs, and the failure of rows that cannot be read as jobs.
//!
//! Every write here is fenced by the attempt's [`Lease`]: a worker that lost its job (it was
//! cancelled, or rescued and claimed again) writes nothing. A write that fails while the
//! database is unreachable is retried for a while ([`retry`]); one that never goes through
//! leaves the job `running`, for the rescuer, which is why nothing is lost when a worker dies
//! between a handler's return and its write. Once a write is settled the job leaves this
//! worker's running set.

mod completer;
mod retry;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use backon::Retryable;
use bosun_queue::{
    runtime::{job_record, job_record_due, job_release_many, Outcome, Recorded, Unreadable},
    saga::runner::{step_done, step_fail, step_skip, undo_done, undo_fail, undo_gone},
    Client, Job, JobState, Lease,
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::{
    attempt::SagaTransition,
    connections::OwnConnections,
    running::RunningJobs,
    wakeups::{DueTimes, Wakers},
};
use completer::Completer;

/// The outcome writer of one pool. Clones share it.
#[derive(Clone)]
pub(crate) struct Outcomes(Arc<Inner>);

struct Inner {
    own: OwnConnections,
    /// Saga transitions run on the client's connections, as the steps' own statements do.
    client: Client,
    running: RunningJobs,
    due: DueTimes,
    wakers: Wakers,
    completer: Completer,
    /// Jobs handed back at shutdown by their own executor task, for the shutdown report.
    handed_back: Mutex<Vec<i64>>,
}

impl Outcomes {
    pub(crate) fn new(
        own: OwnConnections,
        client: Client,
        running: RunningJobs,
        due: DueTimes,
        wakers: Wakers,
    ) -> Outcomes {
        Outcomes(Arc::new(Inner {
            own,
            client,
            running,
            due,
            wakers,
            completer: Completer::new(),
            handed_back: Mutex::new(Vec::new()),
        }))
    }

    /// Write completions in batches until `stop`, then what is still waiting.
    pub(crate) async fn run_completer(self, stop: CancellationToken) {
        let inner = &self.0;
        inner.completer.run(&inner.own, &inner.running, stop).await;
    }

    /// Queue the completion of `job`, whose handler succeeded after running for `ran`. Waits
    /// only while the completer is full. The job stays held until the write.
    pub(crate) async fn complete(&self, job: Arc<Job>, ran: Duration) {
        self.0.running.finished(job.id);
        self.0.completer.complete(job, ran).await;
    }

    /// Wait until every queued completion has been written (or given up on).
    pub(crate) async fn drained(&self) {
        self.0.completer.drained().await;
    }

    /// Record an error, cancel or snooze, retrying while the database is unreachable. `None`
    /// when it could not be recorded at all. A retry or snooze written wakes this worker's
    /// producer when it falls due.
    pub(crate) async fn record(&self, job: &Job, outcome: &Outcome) -> Option<Recorded> {
        let pool = self.0.own.db();
        let result = (|| job_record_due(pool, job.id, job.attempt, outcome))
            .retry(retry::record_backoff())
            .when(bosun_queue::Error::is_transient)
            .notify(|error, delay| {
                warn!(%error, ?delay, "recording the attempt failed; retrying");
            })
            .await;
        match result {
            Ok((recorded, due_in)) => {
                if let Some(due_in) = due_in {
                    self.0.due.wake_in(&job.queue, due_in);
                }
                Some(recorded)
            }
            Err(error) => {
                warn!(%error, "could not record the attempt; the job stays running until it is recovered");
                None
            }
        }
    }

    /// Write a saga step's end. When it goes through it may have enqueued the saga's next
    /// job without notifying (see `bosun_queue::saga::runner`): this worker claims it now.
    /// When it fails, the step's outcome is lost with it: the job retries after `retry_in`
    /// and the step runs again, which it must tolerate (it is idempotent).
    pub(crate) async fn saga(
        &self,
        job: &Job,
        transition: &SagaTransition,
        retry_in: Duration,
    ) -> Option<Recorded> {
        match write_transition(self.0.client.db(), job.lease(), transition).await {
            Ok(true) => {
                self.0.wakers.wake(&job.queue);
                Some(Recorded::Now(transition.job_state()))
            }
            Ok(false) => Some(Recorded::FencedOut),
            Err(error) => {
                let outcome = Outcome::Errored {
                    error: format!("recording the step's outcome failed: {error}"),
                    kind: "error",
                    retry_in,
                    permanent: false,
                };
                self.record(job, &outcome).await
            }
        }
    }

    /// Give the job back to its queue (available, attempt not counted), fenced.
    pub(crate) async fn hand_back(&self, job: &Job) -> Option<Recorded> {
        match self.release(&[job.lease()]).await {
            Ok(released) if released.contains(&job.id) => {
                self.record_handed_back(&[job.id]);
                Some(Recorded::Now(JobState::Available))
            }
            Ok(_) => Some(Recorded::FencedOut),
            Err(error) => {
                warn!(%error, "could not hand the job back; it stays running until it is recovered");
                None
            }
        }
    }

    /// Hand back jobs that were claimed but never started (shutdown came first), and forget
    /// them.
    pub(crate) async fn hand_back_unstarted(&self, jobs: &[Job]) {
        if jobs.is_empty() {
            return;
        }
        let held: Vec<Lease> = jobs.iter().map(Job::lease).collect();
        match self.release(&held).await {
            Ok(released) => self.record_handed_back(&released),
            Err(error) => warn!(
                %error,
                jobs = held.len(),
                "could not hand back jobs that had not started; they stay running until recovered"
            ),
        }
        for job in jobs {
            self.0.running.remove(job.id);
        }
    }

    /// At shutdown, once the grace is over: hand back every job still held, fenced, once
    /// the waiting completions are written (so that none of those runs again). Returns the
    /// ids handed back.
    pub(crate) async fn hand_back_held(&self) -> bosun_queue::Result<Vec<i64>> {
        self.drained().await;
        let held = self.0.running.held();
        job_release_many(self.0.own.db(), &held).await
    }

    /// Fail claimed rows that could not be read as jobs: their handler cannot run, so the
    /// attempt fails for good, fenced as always, with the reason in the row's errors.
    pub(crate) async fn fail_unreadable(self, rows: Vec<Unreadable>) {
        let pool = self.0.own.db();
        for row in rows {
            warn!(id = row.id, attempt = row.attempt, error = %row.error, "claimed a job that cannot be read; failing it");
            let outcome = Outcome::Errored {
                error: row.error.clone(),
                kind: "decode",
                retry_in: Duration::ZERO,
                permanent: true,
            };
            let result = (|| job_record(pool, row.id, row.attempt, &outcome))
                .retry(retry::record_backoff())
                .when(bosun_queue::Error::is_transient)
                .await;
            if let Err(error) = result {
                warn!(id = row.id, %error, "could not fail the unreadable job; it stays running until it is rescued");
            }
        }
    }

    /// The ids handed back so far by [`Outcomes::hand_back`] and
    /// [`Outcomes::hand_back_unstarted`], for the shutdown report.
    pub(crate) fn take_handed_back(&self) -> Vec<i64> {
        std::mem::take(&mut *self.handed_back())
    }

    fn record_handed_back(&self, ids: &[i64]) {
        self.handed_back().extend_from_slice(ids);
    }

    fn handed_back(&self) -> std::sync::MutexGuard<'_, Vec<i64>> {
        // Each use is one extend or take: a panic cannot leave the list half-changed.
        self.0
            .handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The fenced hand-back, retried briefly while the database is unreachable.
    async fn release(&self, held: &[Lease]) -> bosun_queue::Result<Vec<i64>> {
        let pool = self.0.own.db();
        (|| job_release_many(pool, held))
            .retry(retry::release_backoff())
            .when(bosun_queue::Error::is_transient)
            .await
    }
}

/// The saga's fenced transition for `transition`: true if it went through, false if the job
/// is no longer held by `lease`.
async fn write_transition(
    db: bosun_queue::Db<'_>,
    lease: Lease,
    transition: &SagaTransition,
) -> bosun_queue::Result<bool> {
    match transition {
        SagaTransition::StepDone {
            saga,
            step,
            steps,
            output,
        } => step_done(db, lease, *saga, *step, *steps, output).await,
        SagaTransition::StepFailed { saga, step, error } => {
            step_fail(db, lease, *saga, *step, error).await
        }
        SagaTransition::StepSkipped { saga, step } => step_skip(db, lease, *saga, *step).await,
        SagaTransition::UndoDone { saga, step } => undo_done(db, lease, *saga, *step).await,
        SagaTransition::UndoGone { saga, step, reason } => {
            undo_gone(db, lease, *saga, *step, reason).await
        }
        SagaTransition::UndoFailed { saga, step, error } => {
            undo_fail(db, lease, *saga, *step, error).await
        }
    }
}
