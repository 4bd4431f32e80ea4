//! Holds stop a saga's step at a named point until a test releases it, so that the crash tests
//! can kill a worker at an exact place: after a claim, after a side effect that is not yet
//! recorded, between two steps, or in the middle of an undo.
//!
//! The test asks for a hold with [`request_hold`], a row of its own in the `bosun_example`
//! schema, so the saga's inputs carry nothing for tests. The saga's steps call [`checkpoint`]
//! at each point; it stops only where a request was written, at the cost of one lookup by
//! primary key (none at all while the schema does not exist). The test waits for the step to
//! be [`held`], kills or pauses the worker, and may [`release`] the step.

use std::time::Duration;

use sqlx::PgExecutor;

use bosun_queue::Result;

use crate::schema::{is_missing_schema, on_schema, pid};

/// Where in a step a hold stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldPoint {
    /// The step's job is claimed and the step begun; nothing done outside yet.
    Before,
    /// The step's resource exists outside; its success is not recorded yet.
    After,
    /// The undo is begun; nothing deleted yet.
    UndoBefore,
    /// The undo deleted the resource; its success is not recorded yet.
    UndoAfter,
}

impl HoldPoint {
    fn as_str(self) -> &'static str {
        match self {
            HoldPoint::Before => "before",
            HoldPoint::After => "after",
            HoldPoint::UndoBefore => "undo_before",
            HoldPoint::UndoAfter => "undo_after",
        }
    }
}

/// Which attempt of which step reaches a checkpoint: what a hold request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepAttempt<'a> {
    /// The saga's key.
    pub saga_key: &'a str,
    /// The step's name.
    pub step: &'a str,
    /// The attempt of the step's job (or of its undo's job).
    pub attempt: i32,
}

/// Ask for `step` of the saga `saga_key` to be held at `point` on `attempt` (of the step's
/// job, or of its undo's job). Only that attempt is held, so the attempt after a crash runs
/// through. Write it before the step gets there, for instance before starting the saga.
///
/// # Errors
/// When the database cannot be reached.
pub async fn request_hold(
    pool: impl PgExecutor<'_> + Copy,
    saga_key: &str,
    step: &str,
    point: HoldPoint,
    attempt: i32,
) -> Result<()> {
    on_schema(pool, || {
        sqlx::query(include_str!("sql/hold_request_insert.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .bind(attempt)
            .execute(pool)
    })
    .await?;
    Ok(())
}

/// Pass `point` of a step: when a hold was requested there for this attempt, record that this
/// process holds the step and wait until it is [`release`]d; otherwise go on at once. The wait
/// ignores cancellation on purpose, like a handler that does not cooperate, so a worker paused
/// past its lease goes on to try to record its step.
///
/// # Errors
/// When the database cannot be reached.
pub async fn checkpoint(
    pool: impl PgExecutor<'_> + Copy,
    at: StepAttempt<'_>,
    point: HoldPoint,
) -> Result<()> {
    let asked = sqlx::query_scalar(include_str!("sql/hold_checkpoint.sql"))
        .bind(at.saga_key)
        .bind(at.step)
        .bind(point.as_str())
        .bind(at.attempt)
        .bind(pid())
        .fetch_one(pool)
        .await;
    let asked: bool = match asked {
        // No schema or no request table: nobody asked for a hold.
        Err(error) if is_missing_schema(&error) => false,
        result => result?,
    };
    if !asked {
        return Ok(());
    }
    loop {
        let released: bool = sqlx::query_scalar(include_str!("sql/hold_released.sql"))
            .bind(at.saga_key)
            .bind(at.step)
            .bind(point.as_str())
            .fetch_one(pool)
            .await?;
        if released {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query(include_str!("sql/hold_resume.sql"))
        .bind(at.saga_key)
        .bind(at.step)
        .bind(point.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

/// A step held at a point: which process holds it, and whether it went on after release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The worker process that holds the step.
    pub pid: u32,
    /// Whether the step went on after it was released.
    pub resumed: bool,
}

/// Whether `step` of saga `saga_key` is (or was) held at `point`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn held(
    pool: impl PgExecutor<'_> + Copy,
    saga_key: &str,
    step: &str,
    point: HoldPoint,
) -> Result<Option<Held>> {
    let row: Option<(i32, bool)> = on_schema(pool, || {
        sqlx::query_as(include_str!("sql/hold_get.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .fetch_optional(pool)
    })
    .await?;
    Ok(row.map(|(pid, resumed)| Held {
        pid: u32::try_from(pid).unwrap_or_default(),
        resumed,
    }))
}

/// Let a held step go on.
///
/// # Errors
/// When the database cannot be reached.
pub async fn release(
    pool: impl PgExecutor<'_> + Copy,
    saga_key: &str,
    step: &str,
    point: HoldPoint,
) -> Result<()> {
    on_schema(pool, || {
        sqlx::query(include_str!("sql/hold_release.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .execute(pool)
    })
    .await?;
    Ok(())
}
