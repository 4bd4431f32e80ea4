//! Bosun's metrics, recorded through the `metrics` facade: a program that installs a recorder
//! (the `bosun` binary serves Prometheus at `--metrics-addr`) sees them, and one that does not
//! pays next to nothing. Every name is listed here, with its labels, so that the catalogue in
//! docs/metrics.md and the Grafana dashboard have one place to agree with.
//!
//! Labels: `queue` and `kind` on job metrics, `outcome` on finished jobs (`completed`,
//! `retryable`, `failed`, `cancelled`, `snoozed`) and finished sagas (`succeeded`,
//! `compensated`, `stuck`).

use std::time::Duration;

use bosun_queue::{sampling::Sample, targets::Reaped, Job, JobState};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Counter: jobs claimed, by queue and kind.
pub const JOBS_CLAIMED: &str = "bosun_jobs_claimed_total";
/// Counter: attempts recorded, by queue, kind and outcome.
pub const JOBS_FINISHED: &str = "bosun_jobs_finished_total";
/// Histogram: how long a handler ran, by queue and kind (seconds).
pub const JOB_DURATION: &str = "bosun_job_duration_seconds";
/// Histogram: from `scheduled_at` to the claim, by queue and kind (seconds).
pub const JOB_WAIT: &str = "bosun_job_wait_seconds";
/// Gauge: handlers running in this process, by queue.
pub const JOBS_RUNNING: &str = "bosun_jobs_running";
/// Counter: jobs the rescuer gave back after their worker died (leader only).
pub const JOBS_RESCUED: &str = "bosun_jobs_rescued_total";
/// Counter: jobs the reaper failed because their target was expunged, by queue and kind
/// (leader only).
pub const JOBS_REAPED: &str = "bosun_jobs_reaped_total";

/// Counter: handlers aborted because they did not stop within the cancel grace after their
/// job was cancelled or lost, by queue and kind.
pub const HANDLERS_ABORTED: &str = "bosun_handlers_aborted_total";

/// Gauge: jobs per queue and state, sampled by the leader (finished states are estimates
/// on large tables; see `bosun.sample_queues`).
pub const QUEUE_JOBS: &str = "bosun_queue_jobs";
/// Gauge: per queue, how long the oldest job that could run now has waited (seconds),
/// sampled by the leader.
pub const QUEUE_OLDEST_AVAILABLE: &str = "bosun_queue_oldest_available_seconds";
/// Gauge: worker processes whose lease has not run out, sampled by the leader.
pub const WORKERS_ALIVE: &str = "bosun_workers_alive";
/// Gauge: 1 on the replica that leads maintenance, 0 elsewhere.
pub const LEADER: &str = "bosun_leader";
/// Counter: sagas finished, by kind and outcome, read from the database by the leader.
pub const SAGAS_FINISHED: &str = "bosun_sagas_finished_total";

/// Buckets for [`JOB_DURATION`] and [`JOB_WAIT`]: from half a millisecond to six hours, about
/// two or three per decade, so that sub-millisecond jobs and hour-long exports both resolve.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// Describe every metric to the installed recorder (units and help texts).
pub fn describe() {
    describe_counter!(JOBS_CLAIMED, "Jobs claimed by this worker.");
    describe_counter!(
        JOBS_FINISHED,
        "Job attempts recorded by this worker, by outcome."
    );
    describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "How long job handlers ran."
    );
    describe_histogram!(
        JOB_WAIT,
        metrics::Unit::Seconds,
        "Time from a job's scheduled_at to its claim."
    );
    describe_gauge!(JOBS_RUNNING, "Job handlers running in this worker.");
    describe_counter!(
        JOBS_RESCUED,
        "Jobs given back by the rescuer after their worker stopped heartbeating."
    );
    describe_counter!(
        JOBS_REAPED,
        "Jobs failed by the reaper because their target was expunged."
    );
    describe_counter!(
        HANDLERS_ABORTED,
        "Handlers aborted because they ran on past the cancel grace after being told to stop."
    );
    describe_gauge!(
        QUEUE_JOBS,
        "Jobs per queue and state (sampled by the leader)."
    );
    describe_gauge!(
        QUEUE_OLDEST_AVAILABLE,
        metrics::Unit::Seconds,
        "How long the oldest runnable job of each queue has waited (sampled by the leader)."
    );
    describe_gauge!(
        WORKERS_ALIVE,
        "Worker processes with a live lease (sampled by the leader)."
    );
    describe_gauge!(LEADER, "1 on the maintenance leader.");
    describe_counter!(SAGAS_FINISHED, "Sagas finished, by kind and outcome.");
    // Present from the start, so that a dashboard shows 0 rather than "no data".
    counter!(JOBS_RESCUED).absolute(0);
    leader(false);
}

/// A job was claimed.
pub(crate) fn claimed(job: &Job) {
    let labels = [("queue", job.queue.clone()), ("kind", job.kind.clone())];
    counter!(JOBS_CLAIMED, &labels).increment(1);
    if let Some(claimed_at) = job.attempted_at {
        let waited = (claimed_at - job.scheduled_at)
            .num_microseconds()
            .unwrap_or(0);
        #[allow(clippy::cast_precision_loss)] // microseconds of waiting fit an f64 exactly
        histogram!(JOB_WAIT, &labels).record(waited.max(0) as f64 / 1e6);
    }
}

/// A handler started (`+1`) or ended (`-1`) in `queue`.
pub(crate) fn running(queue: &str, delta: f64) {
    gauge!(JOBS_RUNNING, "queue" => queue.to_string()).increment(delta);
}

/// An attempt of `job` was recorded as `state` after its handler ran for `ran`.
pub(crate) fn finished(job: &Job, state: JobState, ran: Duration) {
    let outcome = match state {
        JobState::Completed => "completed",
        JobState::Retryable => "retryable",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
        // A running job goes back to `scheduled` only when its handler snoozes it.
        JobState::Scheduled => "snoozed",
        // Handed back at shutdown: not an outcome.
        JobState::Available | JobState::Running => return,
    };
    let labels = [("queue", job.queue.clone()), ("kind", job.kind.clone())];
    histogram!(JOB_DURATION, &labels).record(ran.as_secs_f64());
    counter!(
        JOBS_FINISHED,
        "queue" => job.queue.clone(),
        "kind" => job.kind.clone(),
        "outcome" => outcome
    )
    .increment(1);
}

/// The rescuer gave back `count` jobs.
pub(crate) fn rescued(count: u64) {
    counter!(JOBS_RESCUED).increment(count);
}

/// A handler that did not stop within the cancel grace was aborted.
pub(crate) fn aborted(job: &Job) {
    counter!(HANDLERS_ABORTED, "queue" => job.queue.clone(), "kind" => job.kind.clone())
        .increment(1);
}

/// The reaper failed these jobs.
pub(crate) fn reaped(jobs: &[Reaped]) {
    for job in jobs {
        counter!(JOBS_REAPED, "queue" => job.queue.clone(), "kind" => job.kind.clone())
            .increment(1);
    }
}

/// Set `bosun_queue_jobs{queue, state}`.
pub(crate) fn queue_jobs(queue: &str, state: &str, jobs: f64) {
    gauge!(QUEUE_JOBS, "queue" => queue.to_string(), "state" => state.to_string()).set(jobs);
}

/// Set `bosun_queue_oldest_available_seconds{queue}`.
pub(crate) fn oldest_available(queue: &str, secs: f64) {
    gauge!(QUEUE_OLDEST_AVAILABLE, "queue" => queue.to_string()).set(secs);
}

/// Set `bosun_workers_alive`.
pub(crate) fn workers_alive(count: f64) {
    gauge!(WORKERS_ALIVE).set(count);
}

/// Set `bosun_leader`.
pub(crate) fn leader(leading: bool) {
    gauge!(LEADER).set(if leading { 1.0 } else { 0.0 });
}

/// Set everything a sample holds.
pub(crate) fn sampled(sample: &Sample) {
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    {
        for count in &sample.queues {
            queue_jobs(&count.queue, &count.state, count.jobs as f64);
        }
        workers_alive(sample.workers_alive as f64);
    }
    for (queue, secs) in &sample.oldest_available {
        oldest_available(queue, *secs);
    }
    for outcome in &sample.saga_outcomes {
        counter!(
            SAGAS_FINISHED,
            "kind" => outcome.kind.clone(),
            "outcome" => outcome.outcome.clone()
        )
        .absolute(u64::try_from(outcome.total).unwrap_or(0));
    }
}
