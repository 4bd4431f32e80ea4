//! The storage calls the worker runtime makes: claim, record an outcome, hand back, check
//! leases. Application code should not need these; `bosun-workers` is their user.
//!
//! Internal: used by Bosun's own runtime, CLI and bench, not covered by semver (hidden from
//! the documentation).
//!
//! Every write about a claimed job is fenced: it applies only while the row is `running` with
//! the attempt the worker claimed. A write that finds the row changed (cancelled by an
//! operator, handed to another worker) affects nothing and reports [`Recorded::FencedOut`].

use std::time::Duration;

use sqlx::{PgExecutor, Row};

use crate::{Job, JobState, Lease, Result};

/// Longest error text stored per attempt; longer messages are cut (on a char boundary).
pub const MAX_ERROR_LEN: usize = 4096;

/// What a handler's attempt came to, as the runtime records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success: the job is `completed`.
    Completed,
    /// The attempt failed. The job is `retryable` after `retry_in` (with jitter), or `failed`
    /// when `permanent` or out of attempts.
    Errored {
        /// The error's text.
        error: String,
        /// The failure's kind, stored with it: `error`, `panic`, `decode`, `timeout`, ...
        kind: &'static str,
        /// Backoff before the next attempt.
        retry_in: Duration,
        /// Do not retry.
        permanent: bool,
    },
    /// The handler cancelled its job.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The handler asked to run again later; not counted as a failed attempt.
    Snoozed {
        /// How long to wait.
        delay: Duration,
    },
}

/// The result of a fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Written; the job is now in this state.
    Now(JobState),
    /// The worker no longer holds the job; nothing was written.
    FencedOut,
}

/// What a claim took: the jobs to run, and the rows it claimed but could not read as a
/// [`Job`] (see [`Unreadable`]).
#[derive(Debug, Default)]
pub struct Claimed {
    /// The claimed jobs, in the order they should start.
    pub jobs: Vec<Job>,
    /// Claimed rows that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// The claim waited for another claim of the same worker on the queue, which took the
    /// due jobs before it (only known when the claim took any).
    pub waited: bool,
}

impl Claimed {
    /// How many rows the claim took, read or not.
    pub fn len(&self) -> usize {
        self.jobs.len() + self.unreadable.len()
    }

    /// Whether it took none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A claimed row that does not read as a [`Job`]: a value no reader can take (JSON nested
/// deeper than serde_json decodes, a time beyond chrono's range), written past the table's
/// checks. The claim is held like any other: the runtime fails this attempt, fenced by
/// `attempt`, with `error` saying why, so the row fails alone and its batch runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The job's id.
    pub id: i64,
    /// The attempt claimed: the fencing token of the failure's write.
    pub attempt: i32,
    /// Why it does not read.
    pub error: String,
}

/// Claim up to `limit` due jobs of `queue` whose kind is in `kinds`, for `worker_id`.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails (nothing is claimed then).
pub async fn job_claim(
    executor: impl sqlx::PgExecutor<'_>,
    queue: &str,
    kinds: &[String],
    limit: i64,
    worker_id: &str,
) -> Result<Claimed> {
    claim(executor, queue, kinds, limit, worker_id, false).await
}

/// As [`job_claim`], and if fewer than `limit` jobs were due, mark `worker_id` as waiting on
/// `queue` in the same transaction (`bosun.claim_jobs`): from its commit, inserts into the queue
/// notify, and none committed before it was missed by this claim. So a worker that gets
/// fewer jobs than it asked for may sleep until a notification. A claim that fills `limit`
/// removes the mark: its worker claims again as soon as it has room.
///
/// If inserts hold the queue's waiting lock for 200 ms (only a transaction that ran
/// `SET CONSTRAINTS ALL IMMEDIATE` does), the claim goes on without marking and the server
/// warns; the worker then finds new jobs by polling.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails (nothing is claimed or marked then).
pub async fn job_claim_or_wait(
    executor: impl sqlx::PgExecutor<'_>,
    queue: &str,
    kinds: &[String],
    limit: i64,
    worker_id: &str,
) -> Result<Claimed> {
    claim(executor, queue, kinds, limit, worker_id, true).await
}

async fn claim(
    executor: impl sqlx::PgExecutor<'_>,
    queue: &str,
    kinds: &[String],
    limit: i64,
    worker_id: &str,
    wait: bool,
) -> Result<Claimed> {
    if limit <= 0 {
        return Ok(Claimed::default());
    }
    let rows = sqlx::query(include_str!("sql/job_claim.sql"))
        .bind(queue)
        .bind(limit)
        .bind(kinds)
        .bind(worker_id)
        .bind(wait)
        .fetch_all(executor)
        .await?;
    let mut claimed = Claimed {
        waited: rows
            .first()
            .and_then(|row| {
                row.try_get::<Option<bool>, _>("claim_waited")
                    .ok()
                    .flatten()
            })
            .unwrap_or(false),
        ..Claimed::default()
    };
    for row in rows {
        match read_job(&row) {
            Ok(job) => claimed.jobs.push(job),
            Err(error) => {
                // The id and attempt are plain integers, so they read even when the rest
                // does not; a row where they did not could not be claimed at all.
                if let (Ok(id), Ok(attempt)) = (row.try_get("id"), row.try_get("attempt")) {
                    claimed.unreadable.push(Unreadable { id, attempt, error });
                }
            }
        }
    }
    Ok(claimed)
}

/// One claimed row as a [`Job`], or why it is not one. sqlx's decoding of a time beyond
/// chrono's range panics rather than failing, so the panic is caught here too.
fn read_job(row: &sqlx::postgres::PgRow) -> std::result::Result<Job, String> {
    use sqlx::FromRow;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Job::from_row(row))) {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(error)) => Err(format!("the job's row could not be read: {error}")),
        Err(_) => Err("the job's row could not be read: a value is out of range".to_string()),
    }
}

/// Complete many jobs at once, each fenced by its lease. Returns
/// the ids completed now; a job missing from it was cancelled or taken over meanwhile.
///
/// # Errors
/// [`crate::Error::Database`] if the statement fails (then none was completed).
pub async fn job_complete_many(
    pool: impl PgExecutor<'_> + Copy,
    held: &[Lease],
) -> Result<Vec<i64>> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = held.iter().map(|l| (l.id, l.attempt)).unzip();
    Ok(
        sqlx::query_scalar(include_str!("sql/job_complete_many.sql"))
            .bind(&ids)
            .bind(&attempts)
            .fetch_all(pool)
            .await?,
    )
}

/// Record `outcome` for attempt `attempt` of job `id`, fenced.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails; the job stays `running` then.
pub async fn job_record(
    pool: impl PgExecutor<'_> + Copy,
    id: i64,
    attempt: i32,
    outcome: &Outcome,
) -> Result<Recorded> {
    Ok(job_record_due(pool, id, attempt, outcome).await?.0)
}

/// [`job_record`], and when the job will run again: for a retry or a snooze, how long from
/// the write until it is due (with the jitter the database added), so that the worker can
/// wake for it.
///
/// Delays saturate at [`MAX_DELAY`]: a handler's backoff or snooze of a thousand years is
/// written as a hundred, rather than overflowing the timestamp and leaving the job
/// `running` for the rescuer, attempt after attempt.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails; the job stays `running` then.
pub async fn job_record_due(
    pool: impl PgExecutor<'_> + Copy,
    id: i64,
    attempt: i32,
    outcome: &Outcome,
) -> Result<(Recorded, Option<Duration>)> {
    let written: Option<(JobState, Option<f64>)> = match outcome {
        Outcome::Completed => {
            sqlx::query_as(include_str!("sql/job_complete.sql"))
                .bind(id)
                .bind(attempt)
                .fetch_optional(pool)
                .await?
        }
        Outcome::Errored {
            error,
            kind,
            retry_in,
            permanent,
        } => {
            sqlx::query_as(include_str!("sql/job_error.sql"))
                .bind(id)
                .bind(attempt)
                .bind(*permanent)
                .bind(millis(*retry_in))
                .bind(truncate(error))
                .bind(*kind)
                .fetch_optional(pool)
                .await?
        }
        Outcome::Cancelled { reason } => {
            sqlx::query_as(include_str!("sql/job_cancel_running.sql"))
                .bind(id)
                .bind(attempt)
                .bind(truncate(reason))
                .fetch_optional(pool)
                .await?
        }
        Outcome::Snoozed { delay } => {
            sqlx::query_as(include_str!("sql/job_snooze.sql"))
                .bind(id)
                .bind(attempt)
                .bind(millis(*delay))
                .fetch_optional(pool)
                .await?
        }
    };
    Ok(match written {
        None => (Recorded::FencedOut, None),
        Some((state, due_in)) => (
            Recorded::Now(state),
            due_in.map(|secs| Duration::try_from_secs_f64(secs).unwrap_or_default()),
        ),
    })
}

/// Hand back the jobs of these leases at shutdown: available now, the attempt not counted.
/// Returns the ids actually handed back (the others were no longer held).
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn job_release_many(
    pool: impl PgExecutor<'_> + Copy,
    held: &[Lease],
) -> Result<Vec<i64>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    held_query(include_str!("sql/job_release_many.sql"), pool, held).await
}

/// Of the leases a worker holds, the ids of the jobs it no longer holds.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn job_lost_leases(pool: impl PgExecutor<'_> + Copy, held: &[Lease]) -> Result<Vec<i64>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    held_query(include_str!("sql/job_lost_leases.sql"), pool, held).await
}

/// Run a query over leases bound as two arrays (ids, attempts), returning job ids.
async fn held_query(
    sql: &'static str,
    pool: impl PgExecutor<'_> + Copy,
    held: &[Lease],
) -> Result<Vec<i64>> {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = held.iter().map(|l| (l.id, l.attempt)).unzip();
    Ok(sqlx::query_scalar(sql)
        .bind(ids)
        .bind(attempts)
        .fetch_all(pool)
        .await?)
}

/// Longest delay a retry or snooze is written with (about a hundred years, plus a retry's
/// jitter of up to a tenth): far enough to mean "not in this system's lifetime", near enough
/// that no timestamp overflows.
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `duration` in milliseconds, at most [`MAX_DELAY`].
fn millis(duration: Duration) -> f64 {
    duration.min(MAX_DELAY).as_secs_f64() * 1000.0
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_ERROR_LEN {
        return text;
    }
    let mut end = MAX_ERROR_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short"), "short");
    }
}
