//! The storage calls of `bosun bench` and of the kinds it runs: its yardstick table, its
//! probes for the end of a workload, its measurements on `bosun.jobs`, and its scratch
//! database. Internal: used by Bosun's own runtime, CLI and bench, not covered by semver.
//!
//! They live here rather than in the CLI so that every statement Bosun sends is a file under
//! `sql/`, prepared by `tests/sql_statements.rs`.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use crate::{JobState, Result};

/// W0: make the yardstick table afresh, with `rows` ready rows.
///
/// # Errors
/// [`crate::Error::Database`] if a statement fails.
pub async fn ceiling_create(pool: &PgPool, rows: i64) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/bench/scripts/ceiling_create.sql"))
        .execute(pool)
        .await?;
    sqlx::query(include_str!("sql/bench/ceiling_fill.sql"))
        .bind(rows)
        .execute(pool)
        .await?;
    Ok(())
}

/// W0: on one connection of `pool`, claim `batch` rows of the yardstick table at a time and
/// complete them, until none is left.
///
/// # Errors
/// [`crate::Error::Database`] if a statement fails.
pub async fn ceiling_drain(pool: &PgPool, batch: i64) -> Result<()> {
    let mut conn = pool.acquire().await?;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(include_str!("sql/bench/ceiling_claim.sql"))
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(include_str!("sql/bench/ceiling_complete.sql"))
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
    }
}

/// W1p: the plainest insert of a job, the yardstick of a single enqueue.
///
/// # Errors
/// [`crate::Error::Database`] if the insert fails.
pub async fn job_insert_plain(
    pool: impl PgExecutor<'_>,
    kind: &str,
    args: &serde_json::Value,
) -> Result<()> {
    sqlx::query(include_str!("sql/bench/job_insert_plain.sql"))
        .bind(kind)
        .bind(args)
        .execute(pool)
        .await?;
    Ok(())
}

/// W2r: `count` jobs completed an hour ago, then `VACUUM ANALYZE`.
///
/// # Errors
/// [`crate::Error::Database`] if a statement fails.
pub async fn jobs_insert_history(pool: impl PgExecutor<'_> + Copy, count: i64) -> Result<()> {
    sqlx::query(include_str!("sql/bench/job_insert_history.sql"))
        .bind(count)
        .execute(pool)
        .await?;
    sqlx::raw_sql(include_str!("sql/bench/scripts/jobs_vacuum_analyze.sql"))
        .execute(pool)
        .await?;
    Ok(())
}

/// What a workload waits for before it ends or goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No job is left to run.
    JobsDrained,
    /// A worker is marked as waiting for jobs.
    WorkerWaiting,
    /// A worker has registered.
    WorkerRegistered,
    /// Every saga succeeded.
    SagasSucceeded,
}

impl Probe {
    /// Whether it holds now.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the query fails.
    pub async fn holds(self, pool: impl PgExecutor<'_>) -> Result<bool> {
        let sql = match self {
            Probe::JobsDrained => include_str!("sql/bench/jobs_drained.sql"),
            Probe::WorkerWaiting => include_str!("sql/bench/workers_any_waiting.sql"),
            Probe::WorkerRegistered => include_str!("sql/bench/workers_any_registered.sql"),
            Probe::SagasSucceeded => include_str!("sql/bench/sagas_all_succeeded.sql"),
        };
        Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
    }
}

/// How many jobs are not `completed`.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_count_not_completed(pool: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar(include_str!("sql/bench/jobs_count_not_completed.sql"))
            .fetch_one(pool)
            .await?,
    )
}

/// How many jobs are in `state`.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_count_in_state(pool: impl PgExecutor<'_>, state: JobState) -> Result<i64> {
    Ok(
        sqlx::query_scalar(include_str!("sql/bench/jobs_count_in_state.sql"))
            .bind(state)
            .fetch_one(pool)
            .await?,
    )
}

/// Seconds from `started` to the last job's finish, by the database's clock.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_finished_since(pool: impl PgExecutor<'_>, started: DateTime<Utc>) -> Result<f64> {
    Ok(
        sqlx::query_scalar(include_str!("sql/bench/jobs_finished_since.sql"))
            .bind(started)
            .fetch_one(pool)
            .await?,
    )
}

/// Bytes of `bosun.jobs` with its indexes.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_total_size(pool: impl PgExecutor<'_>) -> Result<i64> {
    Ok(
        sqlx::query_scalar(include_str!("sql/bench/jobs_total_size.sql"))
            .fetch_one(pool)
            .await?,
    )
}

/// S1, S4: `count` sagas of `kind`, with empty inputs.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
pub async fn sagas_start_many(pool: impl PgExecutor<'_>, kind: &str, count: i64) -> Result<()> {
    sqlx::query(include_str!("sql/bench/saga_start_many.sql"))
        .bind(kind)
        .bind(count)
        .execute(pool)
        .await?;
    Ok(())
}

/// W3: make afresh the table `bench.started` writes to.
///
/// # Errors
/// [`crate::Error::Database`] if a statement fails.
pub async fn starts_create(pool: impl PgExecutor<'_>) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/bench/scripts/starts_create.sql"))
        .execute(pool)
        .await?;
    Ok(())
}

/// W3, the kind `bench.started`: the handler of job `job_id` began `at`.
///
/// # Errors
/// [`crate::Error::Database`] if the insert fails.
pub async fn start_record(pool: impl PgExecutor<'_>, job_id: i64, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(include_str!("sql/bench/start_insert.sql"))
        .bind(job_id)
        .bind(at)
        .execute(pool)
        .await?;
    Ok(())
}

/// W3's measurement: how many handlers wrote their start, and the 50th, 95th and 99th
/// percentiles of the milliseconds from enqueue to handler start.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn start_latency(pool: impl PgExecutor<'_>) -> Result<(i64, [f64; 3])> {
    let (count, p50, p95, p99): (i64, f64, f64, f64) =
        sqlx::query_as(include_str!("sql/bench/start_latency.sql"))
            .fetch_one(pool)
            .await?;
    Ok((count, [p50, p95, p99]))
}

/// W5, the producer: a plain `INSERT` of `count` no-op jobs in one statement.
///
/// # Errors
/// [`crate::Error::Database`] if the insert fails.
pub async fn pinned_insert(pool: impl PgExecutor<'_>, count: i64) -> Result<()> {
    sqlx::query(include_str!("sql/bench/pinned_insert.sql"))
        .bind(count)
        .execute(pool)
        .await?;
    Ok(())
}

/// W5: jobs completed in `[from, to)`, and the 50th and 99th percentiles of their enqueue to
/// claim, in milliseconds.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn pinned_window(
    pool: impl PgExecutor<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(i64, f64, f64)> {
    Ok(sqlx::query_as(include_str!("sql/bench/pinned_window.sql"))
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?)
}

/// What `bosun.jobs` holds on disk: dead row versions (the statistics' estimate), bytes of
/// its heap, bytes of its indexes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage {
    /// Dead row versions.
    pub dead: i64,
    /// Bytes of the heap.
    pub table_bytes: i64,
    /// Bytes of the indexes.
    pub index_bytes: i64,
}

/// W5: what `bosun.jobs` holds on disk now.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn pinned_storage(pool: impl PgExecutor<'_>) -> Result<Storage> {
    let (dead, table_bytes, index_bytes) =
        sqlx::query_as(include_str!("sql/bench/pinned_storage.sql"))
            .fetch_one(pool)
            .await?;
    Ok(Storage {
        dead,
        table_bytes,
        index_bytes,
    })
}

/// What the transaction that holds the vacuum horizon back reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRead {
    /// `bosun.jobs`, as a report or `pg_dump` would: the transaction also holds a lock on it.
    Jobs,
    /// Only a table of the application's own.
    Other,
}

/// W5: open a transaction on `pool` that holds its snapshot (and so the vacuum horizon)
/// from one read until it is dropped or committed.
///
/// # Errors
/// [`crate::Error::Database`] if a statement fails.
pub async fn pin_horizon(
    pool: &PgPool,
    read: PinRead,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    if read == PinRead::Other {
        sqlx::raw_sql(include_str!("sql/bench/scripts/pinned_other_create.sql"))
            .execute(pool)
            .await?;
    }
    let mut tx = pool.begin().await?;
    sqlx::query(include_str!("sql/bench/pinned_repeatable_read.sql"))
        .execute(&mut *tx)
        .await?;
    let sql = match read {
        PinRead::Jobs => include_str!("sql/bench/pinned_read_jobs.sql"),
        PinRead::Other => include_str!("sql/bench/pinned_read_other.sql"),
    };
    sqlx::query(sql).execute(&mut *tx).await?;
    Ok(tx)
}

/// Drop the Bosun schema of the scratch database whole.
///
/// # Errors
/// [`crate::Error::Database`] if it fails.
pub async fn schema_drop(pool: impl PgExecutor<'_>) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/bench/scripts/schema_drop.sql"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Create database `name` on the server of `pool`; false when it exists already.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a name that is not a plain identifier;
/// [`crate::Error::Database`] if it fails otherwise (e.g. the role may not create databases).
pub async fn database_create(pool: &PgPool, name: &str) -> Result<bool> {
    let name = identifier(name)?;
    // SQL built at run time: a database's name cannot be a parameter.
    match sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(pool)
        .await
    {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "42P04") =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// Drop database `name` if it exists, ending the connections to it.
///
/// # Errors
/// As [`database_create`].
pub async fn database_drop(pool: &PgPool, name: &str) -> Result<()> {
    let name = identifier(name)?;
    // SQL built at run time: a database's name cannot be a parameter.
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(pool)
        .await?;
    Ok(())
}

/// `name`, if it is an identifier that needs no quoting (lower-case letters, digits, `_`).
fn identifier(name: &str) -> Result<&str> {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(name)
    } else {
        Err(crate::Error::InvalidArgument(format!(
            "database name {}: use lower-case letters, digits and _",
            crate::quote_short(name)
        )))
    }
}
