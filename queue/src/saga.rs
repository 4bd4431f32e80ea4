//! Sagas' storage: the saga rows, their step ledger, and the fenced transitions the runner in
//! `bosun-workers` makes (each one SQL function, so a step's outcome, its
//! output and the enqueue of what comes next commit together).
//!
//! A saga's steps run as jobs of kind `saga:<saga kind>` with args
//! `{"saga_id", "step", "direction"}` and the unique key `saga:<id>:<step>:<do|undo>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{pg_enum::text_states, Error, Result};

/// The job kind that runs the steps of saga kind `kind`.
pub fn saga_job_kind(kind: &str) -> String {
    format!("saga:{kind}")
}

text_states!(
    /// Where a saga is (`bosun.saga_state`).
    SagaState, "saga_state", {
        /// Steps run forward.
        Running => "running",
        /// A step failed or the saga was cancelled: undos run in reverse.
        Compensating => "compensating",
        /// Every step succeeded.
        Succeeded => "succeeded",
        /// Every succeeded step was undone.
        Compensated => "compensated",
        /// An undo gave up; waits for `bosun.retry_saga`.
        Stuck => "stuck",
    }
);

text_states!(
    /// Where one step of a saga is (`bosun.saga_step_state`).
    SagaStepState, "saga_step_state", {
        /// Not reached.
        Pending => "pending",
        /// Running (or retrying).
        Running => "running",
        /// Done; its output is recorded.
        Succeeded => "succeeded",
        /// Failed for good; the saga compensates.
        Failed => "failed",
        /// Its undo is running.
        Undoing => "undoing",
        /// Undone.
        Undone => "undone",
        /// Its undo gave up; the saga is stuck.
        UndoFailed => "undo_failed",
    }
);

/// A row of `bosun.sagas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Saga {
    /// Id.
    pub id: Uuid,
    /// Saga kind (a definition registered with a worker).
    pub kind: String,
    /// Idempotency key: names this saga, and derives its resources' names.
    pub key: String,
    /// Inputs, a JSON object.
    pub inputs: serde_json::Value,
    /// Where it is.
    pub state: SagaState,
    /// The step running forward, or being undone.
    pub current_step: i32,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// Why it failed or is stuck: the latest error.
    pub error: Option<String>,
    /// Every error it recorded, oldest first: `{"at", "step", "state", "error"}` objects.
    pub errors: serde_json::Value,
    /// Queue of its step jobs.
    pub queue: String,
    /// Started.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Reached `succeeded` or `compensated`.
    pub finished_at: Option<DateTime<Utc>>,
    /// The target its steps act on, if any (see [`crate::targets`]).
    pub target: Option<String>,
}

/// A row of the ledger `bosun.saga_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SagaStep {
    /// The saga.
    pub saga_id: Uuid,
    /// Position, from 0.
    pub idx: i32,
    /// Step name.
    pub name: String,
    /// Where it is.
    pub state: SagaStepState,
    /// Whether the step has an undo.
    pub has_undo: bool,
    /// Attempts of its run.
    pub attempts: i32,
    /// Attempts of its undo.
    pub undo_attempts: i32,
    /// Its output once succeeded.
    pub output: Option<serde_json::Value>,
    /// The last error.
    pub error: Option<String>,
    /// Reported progress, percent.
    pub progress_pct: Option<f32>,
    /// Reported progress message.
    pub progress_message: Option<String>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Succeeded or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Undo first started.
    pub undo_started_at: Option<DateTime<Utc>>,
    /// Undone.
    pub undone_at: Option<DateTime<Utc>>,
}

/// Start saga `kind` under `key` (see `bosun.start_saga`): idempotent on the key.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad kind, key or inputs; [`Error::Database`] with
/// SQLSTATE 23505 when the key names a saga of another kind or with other inputs.
pub async fn saga_start<'c>(
    executor: impl PgExecutor<'c>,
    kind: &str,
    key: &str,
    inputs: &serde_json::Value,
    target: Option<&str>,
) -> Result<Uuid> {
    Ok(sqlx::query_scalar(include_str!("sql/saga_start.sql"))
        .bind(kind)
        .bind(key)
        .bind(inputs)
        .bind(target)
        .fetch_one(executor)
        .await?)
}

/// One saga.
///
/// # Errors
/// [`Error::NotFound`].
pub async fn saga_get(pool: impl PgExecutor<'_> + Copy, id: Uuid) -> Result<Saga> {
    sqlx::query_as(include_str!("sql/saga_get.sql"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no saga with id {id}")))
}

/// A saga's ledger, in step order.
///
/// # Errors
/// [`Error::Database`] if the query fails.
pub async fn saga_steps(pool: impl PgExecutor<'_> + Copy, id: Uuid) -> Result<Vec<SagaStep>> {
    Ok(sqlx::query_as(include_str!("sql/saga_step_list.sql"))
        .bind(id)
        .fetch_all(pool)
        .await?)
}

/// Sagas, newest first, optionally of one state and kind.
///
/// # Errors
/// [`Error::InvalidArgument`] for a limit below 1.
pub async fn saga_list(
    pool: impl PgExecutor<'_> + Copy,
    state: Option<SagaState>,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<Saga>> {
    if limit < 1 {
        return Err(Error::InvalidArgument(format!(
            "limit must be at least 1, got {limit}"
        )));
    }
    Ok(sqlx::query_as(include_str!("sql/saga_list.sql"))
        .bind(state)
        .bind(kind)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Request a cancel (`bosun.cancel_saga`).
///
/// # Errors
/// [`Error::NotFound`]; [`Error::WrongState`] for a finished saga.
pub async fn saga_cancel(pool: impl PgExecutor<'_> + Copy, id: Uuid) -> Result<Saga> {
    Ok(sqlx::query_as(include_str!("sql/saga_cancel.sql"))
        .bind(id)
        .fetch_one(pool)
        .await?)
}

/// Resume a saga that has not finished and is not moving (`bosun.retry_saga`): a stuck
/// saga runs its failed undo again; a running or compensating saga whose step has no live
/// job runs that step's job again (enqueued afresh if it was pruned).
///
/// # Errors
/// [`Error::NotFound`]; [`Error::WrongState`] for a finished saga, or one whose step job
/// will run anyway.
pub async fn saga_retry(pool: impl PgExecutor<'_> + Copy, id: Uuid) -> Result<Saga> {
    Ok(sqlx::query_as(include_str!("sql/saga_retry.sql"))
        .bind(id)
        .fetch_one(pool)
        .await?)
}

/// Delete a saga that never started a step, with its waiting job (`bosun.delete_saga`), so
/// that its key is free again. Returns the deleted saga.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::WrongState`] once a step has started.
pub async fn saga_delete(pool: impl PgExecutor<'_> + Copy, id: Uuid) -> Result<Saga> {
    Ok(sqlx::query_as(include_str!("sql/saga_delete.sql"))
        .bind(id)
        .fetch_one(pool)
        .await?)
}

/// The runner's calls: each is one SQL function; the `bool` ones return
/// false when fenced out (the runner no longer holds its job).
///
/// The transitions that may enqueue the saga's next job ([`step_done`], [`step_fail`],
/// [`step_skip`], [`undo_done`], [`undo_gone`], [`undo_fail`]) do so without a wake-up
/// notification (setting `bosun.notify_inserts` off): a notifying commit waits its turn
/// behind every other, and the next job is on the queue of the worker that calls them, which claims it itself.
/// A caller that is not that worker must wake one.
///
/// Internal: used by Bosun's own runtime, not covered by semver.
#[doc(hidden)]
pub mod runner {
    use super::{PgExecutor, Result, Saga, Uuid};
    use crate::Lease;

    /// List every step in the ledger and start step `step`; `None` when the saga no longer
    /// runs forward or the runner no longer holds `job` (call [`step_skip`], which is fenced).
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn step_begin(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        names: &[String],
        has_undo: &[bool],
        max_attempts: i32,
    ) -> Result<Option<Saga>> {
        let saga: Option<Saga> = sqlx::query_as(include_str!("sql/saga_step_begin.sql"))
            .bind(job.id)
            .bind(job.attempt)
            .bind(saga_id)
            .bind(step)
            .bind(names)
            .bind(has_undo)
            .bind(max_attempts)
            .fetch_optional(pool)
            .await?;
        Ok(saga)
    }

    /// Outputs of the saga's succeeded steps, by step name.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the query fails.
    pub async fn step_outputs(
        pool: impl PgExecutor<'_> + Copy,
        saga_id: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        Ok(sqlx::query_as(include_str!("sql/saga_step_outputs.sql"))
            .bind(saga_id)
            .fetch_all(pool)
            .await?)
    }

    /// Step `step` succeeded with `output`.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails (nothing is recorded then).
    pub async fn step_done(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        step_count: i32,
        output: &serde_json::Value,
    ) -> Result<bool> {
        Ok(sqlx::query_scalar(include_str!("sql/saga_step_done.sql"))
            .bind(job.id)
            .bind(job.attempt)
            .bind(saga_id)
            .bind(step)
            .bind(step_count)
            .bind(output)
            .fetch_one(pool)
            .await?)
    }

    /// Step `step` failed for good; the saga compensates.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn step_fail(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        error: &str,
    ) -> Result<bool> {
        fenced(
            pool,
            include_str!("sql/saga_step_fail.sql"),
            job,
            saga_id,
            step,
            Some(error),
        )
        .await
    }

    /// The saga was cancelled before step `step` ran.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn step_skip(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
    ) -> Result<bool> {
        fenced(
            pool,
            include_str!("sql/saga_step_skip.sql"),
            job,
            saga_id,
            step,
            None,
        )
        .await
    }

    /// The undo of step `step` is starting; `None` when the runner no longer holds `job`.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn undo_begin(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        max_attempts: i32,
    ) -> Result<Option<Saga>> {
        Ok(sqlx::query_as(include_str!("sql/saga_undo_begin.sql"))
            .bind(job.id)
            .bind(job.attempt)
            .bind(saga_id)
            .bind(step)
            .bind(max_attempts)
            .fetch_optional(pool)
            .await?)
    }

    /// The undo of step `step` succeeded.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn undo_done(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
    ) -> Result<bool> {
        fenced(
            pool,
            include_str!("sql/saga_undo_done.sql"),
            job,
            saga_id,
            step,
            None,
        )
        .await
    }

    /// The undo of step `step` found its target gone (`reason`): it counts as undone, with the
    /// reason on the ledger, and compensation goes on.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn undo_gone(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        reason: &str,
    ) -> Result<bool> {
        fenced(
            pool,
            include_str!("sql/saga_undo_gone.sql"),
            job,
            saga_id,
            step,
            Some(reason),
        )
        .await
    }

    /// The undo of step `step` gave up; the saga is stuck.
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn undo_fail(
        pool: impl PgExecutor<'_> + Copy,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        error: &str,
    ) -> Result<bool> {
        fenced(
            pool,
            include_str!("sql/saga_undo_fail.sql"),
            job,
            saga_id,
            step,
            Some(error),
        )
        .await
    }

    /// Note a retryable error of step `step` on the ledger (best effort).
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn step_note_error(
        pool: impl PgExecutor<'_> + Copy,
        saga_id: Uuid,
        step: i32,
        error: &str,
    ) -> Result<()> {
        sqlx::query(include_str!("sql/saga_step_note_error.sql"))
            .bind(saga_id)
            .bind(step)
            .bind(error)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Report progress of step `step` (best effort).
    ///
    /// # Errors
    /// [`crate::Error::Database`] if the call fails.
    pub async fn step_progress(
        pool: impl PgExecutor<'_> + Copy,
        saga_id: Uuid,
        step: i32,
        pct: f32,
        message: &str,
    ) -> Result<()> {
        sqlx::query(include_str!("sql/saga_step_progress.sql"))
            .bind(saga_id)
            .bind(step)
            .bind(pct)
            .bind(message)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn fenced(
        pool: impl PgExecutor<'_> + Copy,
        sql: &'static str,
        job: Lease,
        saga_id: Uuid,
        step: i32,
        error: Option<&str>,
    ) -> Result<bool> {
        let query = sqlx::query_scalar(sql)
            .bind(job.id)
            .bind(job.attempt)
            .bind(saga_id)
            .bind(step);
        let query = match error {
            Some(error) => query.bind(error),
            None => query,
        };
        Ok(query.fetch_one(pool).await?)
    }
}
