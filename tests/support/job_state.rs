//! Putting a job into a state by hand, as a worker would have left it: tests of operator
//! functions, the rescuer and the CLI need a running, failed or finished job without running
//! a worker to get there.

use sqlx::PgExecutor;

/// The attempt a forced state records: its number, the worker that made it, and how long ago
/// it started.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The job's `attempt` (the fencing token of the claim).
    pub number: i32,
    /// The job's `attempted_by`.
    pub worker: &'a str,
    /// `attempted_at` is this many minutes before the database's `now()`.
    pub started_minutes_ago: i32,
}

/// Put job `id` into `state` at `attempt`, as a worker named `test-worker` would have just
/// left it: finished states (`completed`, `failed`, `cancelled`) get `finalized_at`.
///
/// # Panics
/// When the update fails or there is no job `id`.
pub async fn force_state<'c>(db: impl PgExecutor<'c>, id: i64, state: &str, attempt: i32) {
    force_state_as(
        db,
        id,
        state,
        Attempt {
            number: attempt,
            worker: "test-worker",
            started_minutes_ago: 0,
        },
    )
    .await;
}

/// Put job `id` into `state`, recording `attempt`: its number, its worker and when it started.
/// Finished states (`completed`, `failed`, `cancelled`) get `finalized_at = now()`.
///
/// # Panics
/// When the update fails or there is no job `id`.
pub async fn force_state_as<'c>(
    db: impl PgExecutor<'c>,
    id: i64,
    state: &str,
    attempt: Attempt<'_>,
) {
    let done = sqlx::query(
        "UPDATE bosun.jobs
         SET state = $2::text::bosun.job_state, attempt = $3, attempted_by = $4,
             attempted_at = now() - make_interval(mins => $5),
             finalized_at = CASE WHEN $2::text IN ('completed', 'failed', 'cancelled')
                                 THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(attempt.number)
    .bind(attempt.worker)
    .bind(attempt.started_minutes_ago)
    .execute(db)
    .await
    .unwrap_or_else(|e| panic!("forcing job {id} to {state}: {e}"));
    assert_eq!(done.rows_affected(), 1, "job {id} exists");
}
