//! The [`Worker`] trait a handler implements, the [`JobContext`] it receives, and the
//! [`JobError`] it returns to say what should happen next.

use std::{future::Future, time::Duration};

use bosun_queue::{Client, Job, JobArgs};
use tokio_util::sync::CancellationToken;

use crate::backoff;

/// A boxed error, the payload of [`JobError::Retry`] and [`JobError::Permanent`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns: `Ok(())` completes the job.
pub type JobResult = Result<(), JobError>;

/// A handler's answer other than success.
///
/// Any `std::error::Error` converts into [`JobError::Retry`], so `?` inside a handler means
/// "this attempt failed, retry with backoff".
#[derive(Debug)]
#[non_exhaustive]
pub enum JobError {
    /// The attempt failed; retry after the worker's backoff, unless attempts are exhausted.
    Retry(BoxError),
    /// The job can never succeed: fail it now without using its remaining attempts.
    Permanent(BoxError),
    /// Stop the job: it ends `cancelled` with this reason.
    Cancel(String),
    /// Not now: run again after this long. Does not count as a failed attempt.
    Snooze(Duration),
    /// The job's target is gone (e.g. a 404 from a service that restarted and lost its
    /// state): fail it now without using its remaining attempts. In a saga, a step to do
    /// fails and the saga compensates; an undo counts as done, since what it would delete
    /// went with the target.
    TargetGone(String),
}

impl JobError {
    /// A retryable failure.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        JobError::Retry(error.into())
    }

    /// A permanent failure.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        JobError::Permanent(error.into())
    }

    /// Cancel the job.
    pub fn cancel(reason: impl Into<String>) -> Self {
        JobError::Cancel(reason.into())
    }

    /// Run again after `delay`.
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }

    /// The job's target is gone.
    pub fn target_gone(reason: impl Into<String>) -> Self {
        JobError::TargetGone(reason.into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::Retry(Box::new(error))
    }
}

/// A job handler for one kind, whose arguments are `Self::Args`.
///
/// ```
/// use bosun_workers::{JobContext, JobResult, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize { image: String, width: u32 }
/// impl bosun_queue::JobArgs for Resize { const KIND: &'static str = "image.resize"; }
///
/// struct Resizer;
/// impl Worker for Resizer {
///     type Args = Resize;
///     async fn work(&self, ctx: JobContext, args: Resize) -> JobResult {
///         if ctx.is_cancelled() { return Ok(()); }
///         println!("resizing {} to {}", args.image, args.width);
///         Ok(())
///     }
/// }
/// ```
pub trait Worker: Send + Sync + 'static {
    /// The job's arguments; the kind is `Args::KIND`.
    type Args: JobArgs;

    /// Run one attempt. Must be safe to run again for the same job (at-least-once).
    fn work(&self, ctx: JobContext, args: Self::Args) -> impl Future<Output = JobResult> + Send;

    /// How long to wait before the next attempt after `job`'s attempt `job.attempt` failed.
    /// Default: [`backoff::retry_delay`] of the attempt. The database adds +/-10% jitter.
    fn backoff(&self, job: &Job) -> Duration {
        backoff::retry_delay(job.attempt)
    }

    /// Longest an attempt may run; past it the handler is dropped and the attempt fails with
    /// a `timeout` error. Default: no limit (a slow job on a live worker is never cut short).
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// What a handler knows about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    job: std::sync::Arc<Job>,
    client: Client,
    cancel: CancellationToken,
    worker_id: std::sync::Arc<str>,
    /// How long the handler has to return once told to stop, before it is aborted.
    stop_grace: StopGrace,
}

/// What tells when a handler told to stop has run on too long (`RunningJobs::stop_overdue`).
#[derive(Clone)]
pub(crate) struct StopGrace {
    pub(crate) running: crate::running::RunningJobs,
    pub(crate) grace: Duration,
}

impl std::fmt::Debug for StopGrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopGrace")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    pub(crate) fn new(
        job: std::sync::Arc<Job>,
        client: Client,
        cancel: CancellationToken,
        worker_id: std::sync::Arc<str>,
        stop_grace: StopGrace,
    ) -> Self {
        JobContext {
            job,
            client,
            cancel,
            worker_id,
            stop_grace,
        }
    }

    /// A context for running a handler outside any pool (`crate::testing`): a job no worker
    /// claimed, a worker id of `testing`, and a cancel token that only the caller can fire.
    #[cfg(feature = "testing")]
    pub(crate) fn detached(job: Job, client: Client, cancel: CancellationToken) -> Self {
        JobContext::new(
            std::sync::Arc::new(job),
            client,
            cancel,
            std::sync::Arc::from(crate::testing::TESTING_WORKER_ID),
            StopGrace {
                running: crate::running::RunningJobs::default(),
                grace: crate::CANCEL_GRACE_DEFAULT,
            },
        )
    }

    /// Resolves once this handler, told to stop (not at shutdown), has had the pool's cancel
    /// grace to return: whoever runs it aborts it then.
    pub(crate) async fn stop_overdue(&self) {
        let StopGrace { running, grace } = &self.stop_grace;
        running
            .stop_overdue(self.job.id, &self.cancel, *grace)
            .await;
    }

    /// The pool's cancel grace.
    pub(crate) fn stop_grace(&self) -> Duration {
        self.stop_grace.grace
    }

    /// The job row as claimed (state `running`, `attempt` already counted).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's id.
    pub fn id(&self) -> i64 {
        self.job.id
    }

    /// This attempt's number (1 for the first).
    pub fn attempt(&self) -> i32 {
        self.job.attempt
    }

    /// A client on the same database, e.g. to enqueue follow-up jobs.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The id of the worker process running this attempt.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Whether the job was cancelled (by an operator, or because the worker lost it or is
    /// shutting down past its timeout). A handler should stop soon after.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Resolves when the job is cancelled; use in `tokio::select!` around long waits.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
