//! Storage for live workers, leadership and rescue: the calls behind heartbeats, the
//! maintenance leader and the rescuer in `bosun-workers` (pruning and vacuuming are in
//! [`crate::cleanup`]).
//!
//! Internal: used by Bosun's own runtime, CLI and bench, not covered by semver (hidden from
//! the documentation).
//!
//! Liveness is a lease on the database clock: a worker is alive while `expires_at > now()`,
//! and renews it by heartbeating. A job whose `attempted_by` names a worker without a live
//! lease is an orphan; [`job_rescue_many`] gives it back. Nothing here trusts a worker's own
//! clock, so a worker whose clock is far off is judged like any other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::{JobState, Result};

/// The leadership that runs maintenance (rescuer, pruner, ...).
pub const MAINTENANCE_LEADER: &str = "maintenance";

/// What a worker says about itself when it heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerIdentity {
    /// Unique id (host:pid:random by default).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Queues it works.
    pub queues: Vec<String>,
    /// Kinds it runs.
    pub kinds: Vec<String>,
}

/// A row of `bosun.workers`, with what it is doing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct WorkerRow {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Queues it works.
    pub queues: Vec<String>,
    /// Kinds it runs.
    pub kinds: Vec<String>,
    /// When it registered.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// When its lease runs out unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Whether the lease is still running.
    pub alive: bool,
    /// Jobs it holds.
    pub running: i64,
    /// Whether it leads maintenance.
    pub leader: bool,
}

/// What one rescue pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescueResult {
    /// Jobs made retryable.
    pub retried: u64,
    /// Jobs failed because they had used their attempts.
    pub failed: u64,
}

/// Register `worker` or renew its lease for `lease` from now (database clock). Returns true
/// when the worker was not registered (first heartbeat, or its row had been pruned).
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn worker_heartbeat(
    pool: impl PgExecutor<'_> + Copy,
    worker: &WorkerIdentity,
    lease: Duration,
) -> Result<bool> {
    Ok(sqlx::query_scalar(include_str!("sql/worker_heartbeat.sql"))
        .bind(&worker.id)
        .bind(&worker.host)
        .bind(worker.pid)
        .bind(&worker.queues)
        .bind(&worker.kinds)
        .bind(lease.as_secs_f64())
        .fetch_one(pool)
        .await?)
}

/// Whether a live worker other than `worker_id` serves `queue`.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn worker_has_peers(
    pool: impl PgExecutor<'_> + Copy,
    worker_id: &str,
    queue: &str,
) -> Result<bool> {
    Ok(sqlx::query_scalar(include_str!("sql/worker_peers.sql"))
        .bind(worker_id)
        .bind(queue)
        .fetch_one(pool)
        .await?)
}

/// Remove a worker's registration (graceful shutdown) and give up any leadership it holds.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn worker_deregister(pool: impl PgExecutor<'_> + Copy, worker_id: &str) -> Result<()> {
    sqlx::query(include_str!("sql/worker_deregister.sql"))
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Every registered worker, oldest first, with its running jobs and leadership.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn worker_list(pool: impl PgExecutor<'_> + Copy) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(include_str!("sql/worker_list.sql"))
        .fetch_all(pool)
        .await?)
}

/// Forget workers whose lease ran out more than `after` ago and that hold no running job,
/// and the marks of workers no longer registered (a dead worker's mark would only make
/// inserts notify for nobody). Returns how many workers were removed.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn worker_prune_expired(
    pool: impl PgExecutor<'_> + Copy,
    after: Duration,
) -> Result<u64> {
    let pruned = sqlx::query(include_str!("sql/worker_prune_expired.sql"))
        .bind(after.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected();
    sqlx::query(include_str!("sql/worker_prune_waiting.sql"))
        .execute(pool)
        .await?;
    Ok(pruned)
}

/// Take or renew leadership `name` for `worker_id` for `term` from now. True when this worker
/// leads afterwards.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn leader_acquire(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    worker_id: &str,
    term: Duration,
) -> Result<bool> {
    let holder: Option<String> = sqlx::query_scalar(include_str!("sql/leader_acquire.sql"))
        .bind(name)
        .bind(worker_id)
        .bind(term.as_secs_f64())
        .fetch_optional(pool)
        .await?;
    Ok(holder.is_some())
}

/// Rescue up to `limit` jobs held by workers whose lease expired, leaving alone jobs claimed
/// less than `min_age` ago, and with `after`, jobs claimed before it (none is running, per
/// [`job_running_oldest`]). Idempotent: a second pass finds nothing new.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails (nothing is rescued then).
pub async fn job_rescue_many(
    pool: impl PgExecutor<'_> + Copy,
    limit: i64,
    min_age: Duration,
    after: Option<DateTime<Utc>>,
) -> Result<RescueResult> {
    rescue(pool, limit, min_age, None, after).await
}

/// The database's now, and when the oldest job running that was claimed at `after` or later
/// (`None`: of all) was claimed, if any is running.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn job_running_oldest(
    pool: impl PgExecutor<'_> + Copy,
    after: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    Ok(sqlx::query_as(include_str!("sql/job_running_oldest.sql"))
        .bind(after)
        .fetch_one(pool)
        .await?)
}

/// Rescue up to `limit` jobs `running` under `worker_id` that the worker does not hold (all
/// but `held`) and that were claimed more than `min_age` ago. A starting worker holds nothing,
/// so it gives back what an earlier incarnation with its id held; a running one gives back
/// claims whose reply it never received.
///
/// # Errors
/// [`crate::Error::Database`] if the write fails.
pub async fn job_rescue_unheld(
    pool: impl PgExecutor<'_> + Copy,
    worker_id: &str,
    held: &[i64],
    min_age: Duration,
    limit: i64,
) -> Result<RescueResult> {
    rescue(pool, limit, min_age, Some((worker_id, held)), None).await
}

async fn rescue(
    pool: impl PgExecutor<'_> + Copy,
    limit: i64,
    min_age: Duration,
    unheld_by: Option<(&str, &[i64])>,
    after: Option<DateTime<Utc>>,
) -> Result<RescueResult> {
    let rows: Vec<(i64, JobState)> = sqlx::query_as(include_str!("sql/job_rescue_many.sql"))
        .bind(limit)
        .bind(min_age.as_secs_f64())
        .bind(unheld_by.map(|(worker, _)| worker))
        .bind(unheld_by.map_or(&[][..], |(_, held)| held))
        .bind(after)
        .fetch_all(pool)
        .await?;
    let failed = rows.iter().filter(|(_, s)| *s == JobState::Failed).count();
    Ok(RescueResult {
        retried: (rows.len() - failed) as u64,
        failed: failed as u64,
    })
}

/// Of `kinds`, those that no worker has ever registered (`bosun.served_kinds`), in the order
/// given. A saga's steps run as jobs of kind `saga:<kind>`.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn kinds_never_served(
    pool: impl PgExecutor<'_> + Copy,
    kinds: &[String],
) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar(include_str!("sql/kinds_never_served.sql"))
            .bind(kinds)
            .fetch_all(pool)
            .await?,
    )
}
