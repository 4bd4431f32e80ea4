//! The simulated cloud that the built-in saga `example.provision` acts on, and the holds the
//! crash tests stop its steps at. Internal: used by Bosun's own runtime, CLI, bench and
//! tests, not covered by semver.
//!
//! Resources are named rows in the database's `bosun_example` schema, so that every worker
//! process sees the same ones and they outlive a killed worker, as a real external system
//! would. Like many real APIs it is strongly consistent by name and eventually consistent in
//! listings: [`create`] of a name that exists answers "already exists" at once, which is how
//! a retried step finds and adopts what an earlier attempt made; [`list`] shows a resource
//! only some time after it was created (the `listing_lag` given at creation), so a step that
//! looked for its resource in a listing could miss it and make a second one. Every call is
//! written to a call log, so tests can count how often something was really created or
//! deleted.
//!
//! A hold stops a step at a named point (see [`hold`]) until it is [`release`]d, so that the
//! crash tests can kill a worker at an exact place: after a claim, after a side effect that
//! is not yet recorded, between two steps, or in the middle of an undo.
//!
//! Its calls run on their own connections, never inside a job's transaction. The schema is
//! made on first use and is not part of Bosun's own; remove it with
//! `DROP SCHEMA bosun_example CASCADE`. The statements live here, with Bosun's, so that every
//! statement is a file under `sql/` that `tests/sql_statements.rs` prepares.

use std::{future::Future, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::Result;

/// What [`create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The resource was made by this call.
    New,
    /// A resource of that name existed already (made by an earlier attempt).
    Existing,
}

/// Create resource `name` of `kind` unless it exists. Listings show it after `listing_lag`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn create(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    kind: &str,
    listing_lag: Duration,
) -> Result<Created> {
    let made: bool = on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/sim/resource_create.sql"))
            .bind(name)
            .bind(kind)
            .bind(listing_lag.as_secs_f64())
            .bind(pid())
            .fetch_one(pool)
    })
    .await?;
    Ok(if made {
        Created::New
    } else {
        Created::Existing
    })
}

/// Delete resource `name`; true when it existed. Deleting what is gone is fine, like an HTTP
/// 404 on delete.
///
/// # Errors
/// When the database cannot be reached.
pub async fn delete(pool: impl PgExecutor<'_> + Copy, name: &str) -> Result<bool> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/sim/resource_delete.sql"))
            .bind(name)
            .bind(pid())
            .fetch_one(pool)
    })
    .await
}

/// The resources whose name starts with `prefix` that listings show by now, sorted.
///
/// # Errors
/// When the database cannot be reached.
pub async fn list(pool: impl PgExecutor<'_> + Copy, prefix: &str) -> Result<Vec<String>> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/sim/resource_list.sql"))
            .bind(prefix)
            .fetch_all(pool)
    })
    .await
}

/// The calls made on `name`, oldest first: `create`, `exists`, `delete` or `missing`.
///
/// # Errors
/// When the database cannot be reached.
pub async fn calls(pool: impl PgExecutor<'_> + Copy, name: &str) -> Result<Vec<String>> {
    on_schema(pool, || {
        sqlx::query_scalar(include_str!("sql/sim/call_list.sql"))
            .bind(name)
            .fetch_all(pool)
    })
    .await
}

/// Where in a step a hold stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// Stop here until [`release`]d: record that `step` of the saga `saga_key` is held at `point`
/// by this process, then wait. The wait ignores cancellation on purpose, like a handler that
/// does not cooperate, so a worker paused past its lease goes on to try to record its step.
///
/// # Errors
/// When the database cannot be reached.
pub async fn hold(
    pool: impl PgExecutor<'_> + Copy,
    saga_key: &str,
    step: &str,
    point: HoldPoint,
    attempt: i32,
) -> Result<()> {
    on_schema(pool, || {
        sqlx::query(include_str!("sql/sim/hold_insert.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .bind(attempt)
            .bind(pid())
            .execute(pool)
    })
    .await?;
    loop {
        let released: bool = sqlx::query_scalar(include_str!("sql/sim/hold_released.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .fetch_one(pool)
            .await?;
        if released {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query(include_str!("sql/sim/hold_resume.sql"))
        .bind(saga_key)
        .bind(step)
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
        sqlx::query_as(include_str!("sql/sim/hold_get.sql"))
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
        sqlx::query(include_str!("sql/sim/hold_release.sql"))
            .bind(saga_key)
            .bind(step)
            .bind(point.as_str())
            .execute(pool)
    })
    .await?;
    Ok(())
}

fn pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

/// Run `call`; when the schema does not exist yet, make it and run `call` once more.
async fn on_schema<T, F, Fut>(pool: impl PgExecutor<'_> + Copy, call: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    match call().await {
        Err(error) if is_missing_schema(&error) => {
            sqlx::raw_sql(include_str!("sql/sim/scripts/schema_create.sql"))
                .execute(pool)
                .await?;
            Ok(call().await?)
        }
        result => Ok(result?),
    }
}

/// Undefined table (42P01) or undefined schema (3F000).
fn is_missing_schema(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "42P01" || code == "3F000")
}
