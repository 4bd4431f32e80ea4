//! Claim floors: where each lane (a queue's jobs of one priority) has no claimable row
//! below, so that claims walk the claimable index from there rather than from the head of
//! the queue's range, which fills with entries of claimed rows whenever something holds the
//! vacuum horizon back. Rows lower the floors themselves when they commit; the maintenance
//! leader raises them with these calls (migrations/0004_claim_floors.up.sql says why the
//! two cannot cross).
//!
//! Internal: used by Bosun's own runtime, not covered by semver (hidden from the
//! documentation).

use sqlx::PgExecutor;

use crate::Result;

/// A lane: a queue and a priority.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Lane {
    /// The queue.
    pub queue: String,
    /// The priority.
    pub priority: i16,
}

/// Every lane with a floor.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn claim_floor_lanes(pool: impl PgExecutor<'_>) -> Result<Vec<Lane>> {
    Ok(sqlx::query_as(include_str!("sql/claim_floor_lanes.sql"))
        .fetch_all(pool)
        .await?)
}

/// Raise the floor of `lane` to its lowest claimable row (in a transaction of its own when
/// `pool` is a pool). `Some(true)` if it moved, `Some(false)` if it was there already, `None`
/// if a commit into the lane was checking it (the next run retries) or the lane is gone.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
pub async fn claim_floor_advance(pool: impl PgExecutor<'_>, lane: &Lane) -> Result<Option<bool>> {
    Ok(
        sqlx::query_scalar(include_str!("sql/claim_floor_advance.sql"))
            .bind(&lane.queue)
            .bind(i32::from(lane.priority))
            .fetch_one(pool)
            .await?,
    )
}
