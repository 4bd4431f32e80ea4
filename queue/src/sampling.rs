//! What the metrics sampler reads: cheap, bounded queries the maintenance
//! leader runs on an interval, so that scraping metrics never touches the jobs table.
//!
//! Internal: used by Bosun's own runtime, CLI and bench, not covered by semver (hidden from
//! the documentation).

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::Result;

/// Jobs of one queue in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: String,
    /// How many.
    pub jobs: i64,
    /// Whether `jobs` is the planner's estimate rather than a count.
    pub estimated: bool,
}

/// Sagas of one kind that finished one way, since the database was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SagaOutcome {
    /// Saga kind.
    pub kind: String,
    /// `succeeded`, `compensated` or `stuck`.
    pub outcome: String,
    /// How many, ever.
    pub total: i64,
}

/// Everything the sampler reads in one pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Jobs per queue and state: exact for unfinished states; finished states are estimated
    /// once the table holds `exact_below` rows or more.
    pub queues: Vec<QueueCount>,
    /// Per queue, how long the oldest job that could run now has waited (seconds).
    pub oldest_available: Vec<(String, f64)>,
    /// Worker processes whose lease has not run out.
    pub workers_alive: i64,
    /// Finished sagas by kind and outcome.
    pub saga_outcomes: Vec<SagaOutcome>,
}

/// Read a [`Sample`].
///
/// # Errors
/// [`crate::Error::Database`] if a query fails.
pub async fn sample(pool: impl PgExecutor<'_> + Copy, exact_below: i64) -> Result<Sample> {
    let queues = sqlx::query_as(include_str!("sql/sample_queues.sql"))
        .bind(exact_below)
        .fetch_all(pool)
        .await?;
    let oldest_available = sqlx::query_as(include_str!("sql/sample_oldest_available.sql"))
        .fetch_all(pool)
        .await?;
    let workers_alive = sqlx::query_scalar(include_str!("sql/sample_workers_alive.sql"))
        .fetch_one(pool)
        .await?;
    let saga_outcomes = sqlx::query_as(include_str!("sql/sample_saga_outcomes.sql"))
        .fetch_all(pool)
        .await?;
    Ok(Sample {
        queues,
        oldest_available,
        workers_alive,
        saga_outcomes,
    })
}
