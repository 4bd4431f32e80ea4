//! Keeping the tables small: delete finished jobs and sagas past their retention, in short
//! batches, and vacuum `bosun.jobs` when autovacuum falls behind. The calls behind the
//! pruner and the vacuumer in `bosun-workers`.
//!
//! Internal: used by Bosun's own runtime, not covered by semver (hidden from the
//! documentation).

use std::time::Duration;

use sqlx::PgExecutor;

use crate::{JobState, Result};

/// Delete up to `limit` jobs in final `state` that finished more than `older_than` ago.
/// Returns how many were deleted.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a state that is not final; [`crate::Error::Database`]
/// if the delete fails.
pub async fn job_prune_batch(
    pool: impl PgExecutor<'_> + Copy,
    state: JobState,
    older_than: Duration,
    limit: i64,
) -> Result<u64> {
    if !state.is_final() {
        return Err(crate::Error::InvalidArgument(format!(
            "only completed, failed or cancelled jobs are pruned, not {state}"
        )));
    }
    Ok(sqlx::query(include_str!("sql/job_prune_batch.sql"))
        .bind(state)
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Delete up to `limit` sagas that finished (succeeded or compensated) more than
/// `older_than` ago, with their ledgers. Returns how many were deleted.
///
/// # Errors
/// [`crate::Error::Database`] if the delete fails.
pub async fn saga_prune_batch(
    pool: impl PgExecutor<'_> + Copy,
    older_than: Duration,
    limit: i64,
) -> Result<u64> {
    Ok(sqlx::query(include_str!("sql/saga_prune_batch.sql"))
        .bind(older_than.as_secs_f64())
        .bind(limit)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Dead and live row versions of `bosun.jobs` per the statistics, for the vacuumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadRows {
    /// Row versions no transaction can see any more, not yet vacuumed.
    pub dead: i64,
    /// Live rows.
    pub live: i64,
    /// Whether a vacuum of the table (autovacuum or another) is running now.
    pub vacuuming: bool,
    /// Whether the connected role may vacuum the table (it is, or is a member of, its owner).
    pub may_vacuum: bool,
}

/// How many dead row versions `bosun.jobs` holds.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn jobs_dead_rows(pool: impl PgExecutor<'_> + Copy) -> Result<DeadRows> {
    Ok(sqlx::query_as(include_str!("sql/jobs_dead_rows.sql"))
        .fetch_one(pool)
        .await?)
}

/// `VACUUM bosun.jobs`: makes the space of dead row versions reusable and drops index
/// entries that lead to them. Takes no lock that claims, enqueues or completions wait on.
///
/// # Errors
/// [`crate::Error::Database`] if it fails (e.g. the role may not vacuum the table).
pub async fn jobs_vacuum(pool: impl PgExecutor<'_> + Copy) -> Result<()> {
    sqlx::raw_sql(include_str!("sql/scripts/jobs_vacuum.sql"))
        .execute(pool)
        .await?;
    Ok(())
}
