//! Helpers for users' own tests (feature `testing`): of their sagas ([`saga`]), and of their
//! handlers and queues:
//!
//! - [`perform_job`] runs one handler inline, as an attempt of a job with the given args: the
//!   args go through JSON as they would through the table, the handler gets a [`JobContext`],
//!   and its [`JobResult`] comes back. Nothing is claimed or recorded: no row is written (the
//!   handler's own writes through `ctx.client()` are its own).
//! - [`drain_queue`] runs every job of a queue that is due through a real [`WorkerPool`] of
//!   the given [`Registry`], until no job it can run is left due or running, and counts what
//!   became of the jobs it ran.
//!
//! ```no_run
//! # use bosun_workers::{JobContext, JobResult, Worker};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct SendEmail { to: String }
//! # impl bosun_queue::JobArgs for SendEmail { const KIND: &'static str = "email.send"; }
//! # struct Mailer;
//! # impl Worker for Mailer { type Args = SendEmail;
//! #     async fn work(&self, _: JobContext, _: SendEmail) -> JobResult { Ok(()) } }
//! # async fn check(client: bosun_queue::Client) {
//! use bosun_workers::{testing, Registry};
//!
//! let result = testing::perform_job(&client, &Mailer, SendEmail { to: "a@b.c".into() }).await;
//! assert!(result.is_ok());
//!
//! let mut registry = Registry::new();
//! registry.register(Mailer);
//! let drained = testing::drain_queue(&client, &registry, "default").await;
//! assert_eq!((drained.completed, drained.failed), (1, 0));
//! # }
//! ```

pub mod saga;

use std::time::Duration;

use bosun_queue::{
    periodic::database_now,
    testing::{drain_progress, DrainProgress},
    Client, Job, JobArgs, JobState,
};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{JobContext, JobError, JobResult, Registry, Worker, WorkerPool};

pub use bosun_queue::testing::Drained;

/// How long [`drain_queue`] may take before it gives up.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// How many jobs the pool of [`drain_queue`] runs at once.
pub const DRAIN_CONCURRENCY: usize = 8;

/// The worker id a handler run by [`perform_job`] sees.
pub const TESTING_WORKER_ID: &str = "testing";

/// The row a handler sees on the first attempt of a job with `args`, as a claim leaves it:
/// `running`, attempt 1, the kind's [`JobArgs::options`] (or Bosun's defaults), id 1. It is
/// not in the database. Change its fields (a later `attempt`, `meta`, ...) and run it with
/// [`perform_claimed`].
///
/// # Panics
/// If `args` do not serialize to JSON.
pub fn claimed_job<A: JobArgs>(args: &A) -> Job {
    let value = serde_json::to_value(args)
        .unwrap_or_else(|e| panic!("args of kind {} do not serialize: {e}", A::KIND));
    let options = A::options();
    let now = chrono::Utc::now();
    Job {
        id: 1,
        kind: A::KIND.to_string(),
        queue: options.queue.unwrap_or_else(|| "default".to_string()),
        args: value,
        state: JobState::Running,
        priority: options.priority.unwrap_or(0),
        attempt: 1,
        max_attempts: options.max_attempts.unwrap_or(20),
        scheduled_at: now,
        created_at: now,
        attempted_at: Some(now),
        finalized_at: None,
        attempted_by: Some(TESTING_WORKER_ID.to_string()),
        errors: serde_json::json!([]),
        unique_key: None,
        target: None,
        tags: Vec::new(),
        meta: serde_json::json!({}),
    }
}

/// Run `worker`'s handler once, inline, on a job with `args` (see [`claimed_job`]), and
/// return what it returned (Oban's `perform_job`, River's `rivertest.Worker.Work`). The
/// handler's `ctx.client()` is `client`; Bosun writes nothing. A panic in the handler
/// propagates to the test.
///
/// # Panics
/// If `args` do not serialize to JSON.
pub async fn perform_job<W: Worker>(client: &Client, worker: &W, args: W::Args) -> JobResult {
    perform_claimed(client, worker, claimed_job(&args)).await
}

/// Run `worker`'s handler once, inline, on the claimed row `job`, decoding its args as the
/// pool does: args that do not decode end the attempt with a retryable error, as in the pool.
///
/// # Panics
/// If `job` is of another kind than `worker` serves.
pub async fn perform_claimed<W: Worker>(client: &Client, worker: &W, job: Job) -> JobResult {
    let kind = <W::Args as JobArgs>::KIND;
    assert_eq!(
        job.kind, kind,
        "job {} is of kind {:?}, the worker serves {kind:?}",
        job.id, job.kind
    );
    let args = match W::Args::deserialize(&job.args) {
        Ok(args) => args,
        Err(error) => {
            return Err(JobError::retry(format!(
                "could not decode args for kind {kind}: {error}"
            )))
        }
    };
    let ctx = detached_context(job, client.clone(), CancellationToken::new());
    worker.work(ctx, args).await
}

/// Run every job of `queue` that `registry` can run, through a real [`WorkerPool`], until
/// none is due or running (Oban's `drain_queue`): jobs the handlers enqueue there run too,
/// and a job whose retry falls due before the drain ends runs again. Returns what became of the
/// jobs it ran, by the state each was left in. Jobs scheduled for later stay as they are.
///
/// # Panics
/// If the pool cannot be built (an empty registry, a bad queue name), the database cannot be
/// read, or jobs are still due after [`DRAIN_DEADLINE`] (a paused queue, say).
pub async fn drain_queue(client: &Client, registry: &Registry, queue: &str) -> Drained {
    let kinds = registry.kinds();
    let pool = WorkerPool::builder(client.clone())
        .registry(registry.clone())
        .queue(queue, DRAIN_CONCURRENCY)
        .poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|e| panic!("a pool to drain queue {queue:?}: {e}"));
    let since = database_now(client.db())
        .await
        .unwrap_or_else(|e| panic!("reading the database clock: {e}"));
    let progress = || async {
        drain_progress(client.db(), queue, &kinds, since)
            .await
            .unwrap_or_else(|e| panic!("reading the drain of queue {queue:?}: {e}"))
    };
    let stop = CancellationToken::new();
    let watch = async {
        let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let DrainProgress { due_or_running, .. } = progress().await;
            if due_or_running == 0 && pool.running() == 0 {
                stop.cancel();
                return None;
            }
            if tokio::time::Instant::now() > deadline {
                stop.cancel();
                return Some(due_or_running);
            }
        }
    };
    let (report, left) = tokio::join!(pool.run_until(stop.clone().cancelled_owned()), watch);
    report.unwrap_or_else(|e| panic!("the pool draining queue {queue:?} failed: {e}"));
    if let Some(left) = left {
        panic!(
            "queue {queue:?} still has {left} jobs due or running after {DRAIN_DEADLINE:?} \
             (is it paused?)"
        );
    }
    progress().await.drained
}

/// A context for running a handler outside any pool: a job no worker claimed, the worker id
/// [`TESTING_WORKER_ID`], and a cancel token that only the caller can fire.
fn detached_context(job: Job, client: Client, cancel: CancellationToken) -> JobContext {
    JobContext::new(
        std::sync::Arc::new(job),
        client,
        cancel,
        std::sync::Arc::from(TESTING_WORKER_ID),
        crate::worker::StopGrace {
            running: crate::running::RunningJobs::default(),
            grace: crate::CANCEL_GRACE_DEFAULT,
        },
    )
}
