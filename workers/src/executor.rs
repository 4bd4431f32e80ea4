//! Runs one claimed job: decode its args, run the handler in its own task (so a panic fails
//! the attempt, not the worker), apply the per-kind timeout, and record the outcome with a
//! fenced write that is retried while the database is unreachable.

use std::{sync::Arc, time::Duration};

use backon::{ExponentialBuilder, Retryable};
use bosun_queue::{
    runtime::{job_record, job_record_due, job_release_many, Outcome, Recorded, Unreadable},
    Job, Lease,
};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::{
    pool::Shared,
    producer::{Reservation, RunTimes},
    registry::Handled,
    running::StopReason,
    worker::StopGrace,
    JobContext, JobError,
};

/// Run `job` to an outcome and record it. `cancel` tells its handler to stop (the job is in
/// the running set since its claim); `held` is its slot and its place in the queue's room.
pub(crate) async fn execute(
    shared: Arc<Shared>,
    job: Job,
    cancel: tokio_util::sync::CancellationToken,
    held: Reservation,
) {
    let job = Arc::new(job);
    let span = info_span!(
        "job",
        id = job.id,
        kind = %job.kind,
        queue = %job.queue,
        attempt = job.attempt,
        saga = saga_of(&job).map(tracing::field::display),
    );
    async move {
        // Lost while it waited for a slot (cancelled, or taken over): the row is no longer
        // this worker's, so there is nothing to run. A job whose saga was cancelled still
        // starts, with its token cancelled, as it would have had it been running already.
        if shared.running.stop_reason(job.id) == Some(StopReason::LeaseLost) {
            shared.running.remove(job.id);
            info!("job no longer held before it started; not running it");
            return;
        }
        crate::metrics::running(&job.queue, 1.0);
        let started = std::time::Instant::now();
        let handled = run_handler(&shared, &job, cancel, &held.run_times).await;
        let ran = started.elapsed();
        held.run_times.record(ran);
        let recorded = match handled {
            Err(recorded) => Some(recorded),
            // A success is written by the completer, in a batch. The slot is freed once the
            // completion is queued (which waits only while the completer is full), and the
            // job stays held until its completion is written.
            Ok(Outcome::Completed) => {
                crate::metrics::running(&job.queue, -1.0);
                shared.running.finished(job.id);
                shared.completer.complete(job, ran).await;
                drop(held);
                return;
            }
            // A handler stopped by shutdown that did not finish its work is handed back
            // rather than recorded: its error or cancel is an artifact of the shutdown.
            Ok(_) if shared.running.stop_reason(job.id) == Some(StopReason::Shutdown) => {
                hand_back(&shared, &job).await
            }
            Ok(outcome) => record(&shared, &job, &outcome).await,
        };
        crate::metrics::running(&job.queue, -1.0);
        let stopped = shared.running.remove(job.id);
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
    .instrument(span)
    .await;
}

/// The saga a job is a step of, from its args.
pub(crate) fn saga_of(job: &Job) -> Option<uuid::Uuid> {
    job.kind
        .starts_with("saga:")
        .then(|| job.args.get("saga_id")?.as_str()?.parse().ok())
        .flatten()
}

async fn run_handler(
    shared: &Shared,
    job: &Arc<Job>,
    cancel: tokio_util::sync::CancellationToken,
    run_times: &RunTimes,
) -> Result<Outcome, Recorded> {
    let Some(worker) = shared.registry.get(&job.kind) else {
        // Claims filter on registered kinds, so this means the registry changed under us.
        return Ok(Outcome::Errored {
            error: format!("no worker registered for kind {:?}", job.kind),
            kind: "unknown_kind",
            retry_in: crate::backoff::retry_delay(job.attempt),
            permanent: false,
        });
    };
    let ctx = JobContext::new(
        Arc::clone(job),
        shared.client.clone(),
        cancel.clone(),
        Arc::clone(&shared.worker_id),
        shared.wakers.get(&job.queue).cloned(),
        StopGrace {
            running: shared.running.clone(),
            grace: shared.config.cancel_grace,
        },
    );
    let retry_in = worker.backoff(job);
    let future = match worker.run(ctx, &job.args) {
        Ok(future) => future,
        Err(error) => {
            return Ok(Outcome::Errored {
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
        let grace = shared.config.cancel_grace;
        shared.running.stop_overdue(job.id, &cancel, grace).await;
    };
    let joined = match wait_for(handle, worker.timeout(), overdue, run_times).await {
        Waited::Joined(joined) => joined,
        Waited::TimedOut(limit) => {
            return Ok(Outcome::Errored {
                error: format!("timed out after {}", humanize(limit)),
                kind: "timeout",
                retry_in,
                permanent: false,
            })
        }
        Waited::Overdue => {
            let grace = humanize(shared.config.cancel_grace);
            warn!(%grace, "the handler did not stop within the cancel grace of being told to; aborted it");
            crate::metrics::aborted(job);
            return Ok(Outcome::Errored {
                error: format!(
                    "aborted: the handler did not stop within {grace} of being cancelled"
                ),
                kind: "aborted",
                retry_in,
                permanent: false,
            });
        }
    };
    Ok(match joined {
        Ok(Handled::Recorded(recorded)) => return Err(recorded),
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

/// Record the outcome, retrying while the database is unreachable. `None` when it could not
/// be recorded at all; the job then stays `running` until it is rescued or handed back.
/// A retry or snooze written wakes this worker's producer when it falls due.
async fn record(shared: &Shared, job: &Job, outcome: &Outcome) -> Option<Recorded> {
    let pool = shared.own();
    let result = (|| job_record_due(pool, job.id, job.attempt, outcome))
        .retry(record_backoff())
        .when(bosun_queue::Error::is_transient)
        .notify(|error, delay| {
            warn!(%error, ?delay, "recording the attempt failed; retrying");
        })
        .await;
    match result {
        Ok((recorded, due_in)) => {
            if let (Some(due_in), Some(wakeups)) = (due_in, shared.wakeups.get(&job.queue)) {
                wakeups.wake_in(due_in);
            }
            Some(recorded)
        }
        Err(error) => {
            warn!(%error, "could not record the attempt; the job stays running until it is recovered");
            None
        }
    }
}

/// Fail claimed rows that could not be read as jobs: their handler cannot run, so the
/// attempt fails for good, fenced as always, with the reason in the row's errors.
pub(crate) async fn fail_unreadable(shared: Arc<Shared>, rows: Vec<Unreadable>) {
    let pool = shared.own();
    for row in rows {
        warn!(id = row.id, attempt = row.attempt, error = %row.error, "claimed a job that cannot be read; failing it");
        let outcome = Outcome::Errored {
            error: row.error.clone(),
            kind: "decode",
            retry_in: Duration::ZERO,
            permanent: true,
        };
        let result = (|| job_record(pool, row.id, row.attempt, &outcome))
            .retry(record_backoff())
            .when(bosun_queue::Error::is_transient)
            .await;
        if let Err(error) = result {
            warn!(id = row.id, %error, "could not fail the unreadable job; it stays running until it is rescued");
        }
    }
}

/// How writes of outcomes are retried while the database is unreachable: about a minute and a
/// half in all, then the job is left `running` for the rescuer.
pub(crate) fn record_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(40)
        .with_jitter()
}

/// Give the job back to its queue (available, attempt not counted), fenced.
async fn hand_back(shared: &Shared, job: &Job) -> Option<Recorded> {
    match release(shared, &[job.lease()]).await {
        Ok(released) if released.contains(&job.id) => {
            shared.record_handed_back(job.id);
            Some(Recorded::Now(bosun_queue::JobState::Available))
        }
        Ok(_) => Some(Recorded::FencedOut),
        Err(error) => {
            warn!(%error, "could not hand the job back; it stays running until it is recovered");
            None
        }
    }
}

/// Hand back jobs that were claimed but never started (shutdown came first), and forget them.
pub(crate) async fn hand_back_unstarted(shared: &Shared, jobs: &[Job]) {
    if jobs.is_empty() {
        return;
    }
    let held: Vec<Lease> = jobs.iter().map(Job::lease).collect();
    match release(shared, &held).await {
        Ok(released) => {
            for id in released {
                shared.record_handed_back(id);
            }
        }
        Err(error) => warn!(
            %error,
            jobs = held.len(),
            "could not hand back jobs that had not started; they stay running until recovered"
        ),
    }
    for job in jobs {
        shared.running.remove(job.id);
    }
}

/// The fenced hand-back, retried briefly while the database is unreachable.
async fn release(shared: &Shared, held: &[Lease]) -> bosun_queue::Result<Vec<i64>> {
    let pool = shared.own();
    (|| job_release_many(pool, held))
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_millis(500))
                .with_max_times(5),
        )
        .when(bosun_queue::Error::is_transient)
        .await
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
