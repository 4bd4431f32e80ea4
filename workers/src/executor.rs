//! Runs one claimed job: decode its args, run the handler in its own task (so a panic fails
//! the attempt, not the worker), apply the per-kind timeout and the cancel grace, and hand
//! what it came to to the outcome writer ([`crate::outcome`]).

use std::{sync::Arc, time::Duration};

use bosun_queue::{
    runtime::{Outcome, Recorded},
    Client, Job,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::{
    attempt::{Handled, SagaTransition},
    claim_ahead::RunTimes,
    outcome::Outcomes,
    running::{RunningJobs, StopReason},
    worker::StopGrace,
    JobContext, JobError, Registry,
};

/// What an executor holds for a job: its slot while the handler runs, and its place among
/// the jobs the queue holds until it finishes.
pub(crate) struct Reservation {
    pub(crate) _slot: OwnedSemaphorePermit,
    pub(crate) _place: OwnedSemaphorePermit,
    pub(crate) run_times: Arc<RunTimes>,
}

/// What the executor tasks of one pool share. Clones share it.
#[derive(Clone)]
pub(crate) struct Executor(Arc<Inner>);

struct Inner {
    /// The client handlers get.
    client: Client,
    registry: Registry,
    running: RunningJobs,
    worker_id: Arc<str>,
    cancel_grace: Duration,
    outcomes: Outcomes,
}

/// How a handler's run ended, before its outcome is written.
enum Ended {
    Outcome(Outcome),
    /// A saga step's end; `retry_in` is the backoff should its write fail.
    Saga {
        transition: SagaTransition,
        retry_in: Duration,
    },
    /// The job is no longer this attempt's: nothing to write.
    NotHeld,
}

impl Executor {
    pub(crate) fn new(
        client: Client,
        registry: Registry,
        running: RunningJobs,
        worker_id: Arc<str>,
        cancel_grace: Duration,
        outcomes: Outcomes,
    ) -> Executor {
        Executor(Arc::new(Inner {
            client,
            registry,
            running,
            worker_id,
            cancel_grace,
            outcomes,
        }))
    }

    /// Run `job` to an outcome and record it. `cancel` tells its handler to stop (the job is
    /// in the running set since its claim); `held` is its slot and its place in the queue's
    /// room.
    pub(crate) async fn execute(self, job: Job, cancel: CancellationToken, held: Reservation) {
        let job = Arc::new(job);
        let span = info_span!(
            "job",
            id = job.id,
            kind = %job.kind,
            queue = %job.queue,
            attempt = job.attempt,
            saga = saga_of(&job).map(tracing::field::display),
        );
        self.execute_in_span(job, cancel, held)
            .instrument(span)
            .await;
    }

    async fn execute_in_span(&self, job: Arc<Job>, cancel: CancellationToken, held: Reservation) {
        let (running, outcomes) = (&self.0.running, &self.0.outcomes);
        // Lost while it waited for a slot (cancelled, or taken over): the row is no longer
        // this worker's, so there is nothing to run. A job whose saga was cancelled still
        // starts, with its token cancelled, as it would have had it been running already.
        if running.stop_reason(job.id) == Some(StopReason::LeaseLost) {
            running.remove(job.id);
            info!("job no longer held before it started; not running it");
            return;
        }
        crate::metrics::running(&job.queue, 1.0);
        let started = std::time::Instant::now();
        let ended = self.run_handler(&job, cancel, &held.run_times).await;
        let mut ran = started.elapsed();
        // A saga step's run includes its transition, which the step commits as it ends: its
        // queue's run times and its metrics count the write, as they do the step's own
        // statements.
        if !matches!(ended, Ended::Saga { .. }) {
            held.run_times.record(ran);
        }
        let recorded = match ended {
            // A success is written by the completer, in a batch. The slot is freed once the
            // completion is queued (which waits only while the completer is full), and the
            // job stays held until its completion is written.
            Ended::Outcome(Outcome::Completed) => {
                crate::metrics::running(&job.queue, -1.0);
                outcomes.complete(job, ran).await;
                drop(held);
                return;
            }
            // A step's end is the saga's, whatever stopped the handler.
            Ended::Saga {
                transition,
                retry_in,
            } => {
                let recorded = outcomes.saga(&job, &transition, retry_in).await;
                ran = started.elapsed();
                held.run_times.record(ran);
                recorded
            }
            Ended::NotHeld => Some(Recorded::FencedOut),
            // A handler stopped by shutdown that did not finish its work is handed back
            // rather than recorded: its error or cancel is an artifact of the shutdown.
            Ended::Outcome(_) if running.stop_reason(job.id) == Some(StopReason::Shutdown) => {
                outcomes.hand_back(&job).await
            }
            Ended::Outcome(outcome) => outcomes.record(&job, &outcome).await,
        };
        crate::metrics::running(&job.queue, -1.0);
        let stopped = running.remove(job.id);
        match (recorded, stopped) {
            (Some(Recorded::Now(state)), _) => {
                crate::metrics::finished(&job, state, ran);
                debug!(%state, "attempt recorded");
            }
            (Some(Recorded::FencedOut), Some(StopReason::Shutdown)) => {
                debug!("attempt not recorded: the job was handed back at shutdown")
            }
            (Some(Recorded::FencedOut), _) => {
                info!("attempt not recorded: the job was cancelled or taken over while it ran")
            }
            (None, _) => {}
        }
        drop(held);
    }
}

/// The saga a job is a step of, from its args.
pub(crate) fn saga_of(job: &Job) -> Option<uuid::Uuid> {
    job.kind
        .starts_with("saga:")
        .then(|| job.args.get("saga_id")?.as_str()?.parse().ok())
        .flatten()
}

impl Executor {
    async fn run_handler(
        &self,
        job: &Arc<Job>,
        cancel: CancellationToken,
        run_times: &RunTimes,
    ) -> Ended {
        let inner = &self.0;
        let Some(worker) = inner.registry.get(&job.kind) else {
            // Claims filter on registered kinds, so this means the registry changed under us.
            return Ended::Outcome(Outcome::Errored {
                error: format!("no worker registered for kind {:?}", job.kind),
                kind: "unknown_kind",
                retry_in: crate::backoff::retry_delay(job.attempt),
                permanent: false,
            });
        };
        let ctx = JobContext::new(
            Arc::clone(job),
            inner.client.clone(),
            cancel.clone(),
            Arc::clone(&inner.worker_id),
            StopGrace {
                running: inner.running.clone(),
                grace: inner.cancel_grace,
            },
        );
        let retry_in = worker.backoff(job);
        let future = match worker.run(ctx, &job.args) {
            Ok(future) => future,
            Err(error) => {
                return Ended::Outcome(Outcome::Errored {
                    error: format!("could not decode args for kind {}: {error}", job.kind),
                    kind: "decode",
                    retry_in,
                    permanent: false,
                })
            }
        };
        let handle = tokio::spawn(future.in_current_span());
        let overdue = async {
            if worker.aborts_itself() {
                std::future::pending::<()>().await;
            }
            let grace = inner.cancel_grace;
            inner.running.stop_overdue(job.id, &cancel, grace).await;
        };
        let joined = match wait_for(handle, worker.timeout(), overdue, run_times).await {
            Waited::Joined(joined) => joined,
            Waited::TimedOut(limit) => {
                return Ended::Outcome(Outcome::Errored {
                    error: format!("timed out after {}", humanize(limit)),
                    kind: "timeout",
                    retry_in,
                    permanent: false,
                })
            }
            Waited::Overdue => {
                let grace = humanize(inner.cancel_grace);
                warn!(%grace, "the handler did not stop within the cancel grace of being told to; aborted it");
                crate::metrics::aborted(job);
                return Ended::Outcome(Outcome::Errored {
                    error: format!(
                        "aborted: the handler did not stop within {grace} of being cancelled"
                    ),
                    kind: "aborted",
                    retry_in,
                    permanent: false,
                });
            }
        };
        Ended::Outcome(match joined {
            Ok(Handled::Saga(transition)) => {
                return Ended::Saga {
                    transition,
                    retry_in,
                }
            }
            Ok(Handled::NotHeld) => return Ended::NotHeld,
            Ok(Handled::Returned(Ok(()))) => Outcome::Completed,
            Ok(Handled::Returned(Err(JobError::Retry(error)))) => Outcome::Errored {
                error: error.to_string(),
                kind: "error",
                retry_in,
                permanent: false,
            },
            Ok(Handled::Returned(Err(JobError::Permanent(error)))) => Outcome::Errored {
                error: error.to_string(),
                kind: "permanent",
                retry_in,
                permanent: true,
            },
            Ok(Handled::Returned(Err(JobError::TargetGone(reason)))) => Outcome::Errored {
                error: format!("target gone: {reason}"),
                kind: "target_gone",
                retry_in,
                permanent: true,
            },
            Ok(Handled::Returned(Err(JobError::Cancel(reason)))) => Outcome::Cancelled { reason },
            Ok(Handled::Returned(Err(JobError::Snooze(delay)))) => Outcome::Snoozed { delay },
            Err(join) if join.is_panic() => Outcome::Errored {
                error: format!("handler panicked: {}", panic_message(join.into_panic())),
                kind: "panic",
                retry_in,
                permanent: false,
            },
            Err(_) => Outcome::Errored {
                error: "handler task was aborted".to_string(),
                kind: "aborted",
                retry_in,
                permanent: false,
            },
        })
    }
}

/// How the wait for a handler's task ended.
enum Waited {
    Joined(Result<Handled, tokio::task::JoinError>),
    /// It ran past its kind's timeout, and was aborted.
    TimedOut(Duration),
    /// It ran past the cancel grace after being told to stop, and was aborted.
    Overdue,
}

/// Wait for a handler's task, aborting it at its `timeout` or when it is `overdue`. While it
/// runs past the claim-ahead horizon it counts as running long in `run_times`, which keeps
/// its queue from claiming ahead (see [`crate::producer`]).
async fn wait_for(
    mut handle: tokio::task::JoinHandle<Handled>,
    timeout: Option<Duration>,
    overdue: impl std::future::Future<Output = ()>,
    run_times: &RunTimes,
) -> Waited {
    let timed_out = async {
        match timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let long = run_times.running_long();
    tokio::pin!(timed_out, overdue, long);
    let mut running_long = None;
    loop {
        tokio::select! {
            joined = &mut handle => return Waited::Joined(joined),
            () = &mut timed_out => {
                handle.abort();
                return Waited::TimedOut(timeout.unwrap_or_default());
            }
            () = &mut overdue => {
                handle.abort();
                return Waited::Overdue;
            }
            mark = &mut long, if running_long.is_none() => running_long = Some(mark),
        }
    }
}

pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_string()
    }
}

pub(crate) fn humanize(duration: Duration) -> String {
    format!("{:.3}s", duration.as_secs_f64())
}
