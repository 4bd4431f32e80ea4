//! Periodic jobs' storage (migration 0009): schedules, and the fenced "fire this slot" call
//! the maintenance leader makes. Cron parsing and the choice of slot live in
//! `bosun-workers`' scheduler; the database only makes sure a slot is enqueued at most once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{NewJob, Result};

/// A row of `bosun.periodic_jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PeriodicJob {
    /// Name, unique.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first, or an @alias.
    pub cron: String,
    /// Kind of the jobs it enqueues.
    pub kind: String,
    /// Their args.
    pub args: serde_json::Value,
    /// Their queue.
    pub queue: String,
    /// Their priority.
    pub priority: i16,
    /// Their attempts.
    pub max_attempts: i32,
    /// Their target.
    pub target: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// The latest slot enqueued.
    pub last_slot: Option<DateTime<Utc>>,
    /// The job of that slot.
    pub last_job_id: Option<i64>,
    /// The next slot, as the leader computed it.
    pub next_at: Option<DateTime<Utc>>,
    /// Why the leader cannot fire it.
    pub error: Option<String>,
    /// Defined.
    pub created_at: DateTime<Utc>,
    /// Last redefined or paused.
    pub updated_at: DateTime<Utc>,
}

/// Define or redefine periodic job `name`: on every slot of `cron`, enqueue `job` (its kind,
/// args, queue, priority, max attempts and target; a unique key and schedule of its own are
/// replaced by the slot's). Keeps an operator's pause and the last slot fired.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming the bad argument.
pub async fn periodic_schedule(
    pool: &PgPool,
    name: &str,
    cron: &str,
    job: &NewJob,
) -> Result<PeriodicJob> {
    Ok(sqlx::query_as(
        "SELECT * FROM bosun.schedule_periodic($1, $2, $3, $4, coalesce($5, 'default'),
                                               coalesce($6, 0), coalesce($7, 20), $8)",
    )
    .bind(name)
    .bind(cron)
    .bind(&job.kind)
    .bind(&job.args)
    .bind(job.queue.as_deref())
    .bind(job.priority.map(i32::from))
    .bind(job.max_attempts)
    .bind(job.target.as_deref())
    .fetch_one(pool)
    .await?)
}

/// Every periodic job, by name.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn periodic_list(pool: &PgPool) -> Result<Vec<PeriodicJob>> {
    Ok(
        sqlx::query_as("SELECT * FROM bosun.periodic_jobs ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

/// Pause (`enabled = false`) or resume periodic job `name`.
///
/// # Errors
/// [`crate::Error::NotFound`] for an unknown name.
pub async fn periodic_set_enabled(pool: &PgPool, name: &str, enabled: bool) -> Result<PeriodicJob> {
    let sql = if enabled {
        "SELECT * FROM bosun.resume_periodic($1)"
    } else {
        "SELECT * FROM bosun.pause_periodic($1)"
    };
    Ok(sqlx::query_as(sql).bind(name).fetch_one(pool).await?)
}

/// Remove periodic job `name`; the jobs it enqueued stay.
///
/// # Errors
/// [`crate::Error::NotFound`] for an unknown name.
pub async fn periodic_unschedule(pool: &PgPool, name: &str) -> Result<PeriodicJob> {
    Ok(
        sqlx::query_as("SELECT * FROM bosun.unschedule_periodic($1)")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
}

/// For the leader: enqueue the job of `slot` unless that slot or a later one was enqueued,
/// and remember `next_at`. The new job's id, or `None` when nothing was enqueued.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
pub async fn periodic_fire(
    pool: &PgPool,
    name: &str,
    slot: DateTime<Utc>,
    next_at: Option<DateTime<Utc>>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT bosun.periodic_fire($1, $2, $3)")
        .bind(name)
        .bind(slot)
        .bind(next_at)
        .fetch_one(pool)
        .await?)
}

/// For the leader: record the next slot, or why none can be computed.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
pub async fn periodic_note(
    pool: &PgPool,
    name: &str,
    next_at: Option<DateTime<Utc>>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query("SELECT bosun.periodic_note($1, $2, $3)")
        .bind(name)
        .bind(next_at)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// The database's clock, which every schedule is read against.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn database_now(pool: &PgPool) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?)
}
