//! Targets: the external things work acts on (a host, a storage pantry, a droplet), and the
//! reaper's storage calls.
//!
//! A job names its target with `target` on enqueue and a saga with
//! [`Client::start_saga_on`](crate::Client::start_saga_on); an unknown name is registered as
//! in service. Expunging a target is final: new work onto it is refused with
//! [`Error::WrongState`], and [`reap_expunged`] (run by the maintenance leader) fails the work
//! still on it and moves the sagas that depended on it towards `compensated`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::{pg_enum::text_states, Error, Result};

text_states!(
    /// Whether a target can take work (`bosun.target_state`).
    TargetState, "target_state", {
        /// It takes work.
        InService => "in_service",
        /// Gone for good; its work is reaped.
        Expunged => "expunged",
    }
);

/// A row of `bosun.targets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Target {
    /// Name, as jobs and sagas give it.
    pub name: String,
    /// What sort of thing it is (`host`, `pantry`), when registered with one.
    pub kind: Option<String>,
    /// In service or expunged.
    pub state: TargetState,
    /// First named.
    pub registered_at: DateTime<Utc>,
    /// When it was expunged.
    pub expunged_at: Option<DateTime<Utc>>,
    /// Why it was expunged.
    pub reason: Option<String>,
    /// Jobs the reaper failed because it was expunged.
    pub reaped_jobs: i64,
}

/// A row of `bosun.target_stats`: a target with its live work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TargetStats {
    /// The target.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub target: Target,
    /// Jobs on it that have not finished.
    pub live_jobs: i64,
    /// Sagas on it that have not finished (running, compensating or stuck).
    pub live_sagas: i64,
}

/// One job the reaper failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Reaped {
    /// The job.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// The expunged target.
    pub target: String,
    /// Whether it was running (its handler was told to stop).
    pub was_running: bool,
}

/// Make `name` known, with its `kind` if given (`bosun.register_target`). Idempotent.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad name or kind; [`Error::WrongState`] when it is
/// expunged.
pub async fn target_register(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    kind: Option<&str>,
) -> Result<Target> {
    Ok(sqlx::query_as(include_str!("sql/target_register.sql"))
        .bind(name)
        .bind(kind)
        .fetch_one(pool)
        .await?)
}

/// Expunge `name` for good (`bosun.expunge_target`). Idempotent: an expunged target is
/// returned unchanged.
///
/// # Errors
/// [`Error::NotFound`] when no work ever named it and it was never registered.
pub async fn target_expunge(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    reason: Option<&str>,
) -> Result<Target> {
    Ok(sqlx::query_as(include_str!("sql/target_expunge.sql"))
        .bind(name)
        .bind(reason)
        .fetch_one(pool)
        .await?)
}

/// Every target with its live and reaped work, in service first, then by name.
///
/// # Errors
/// [`Error::Database`] if the query fails.
pub async fn target_list(pool: impl PgExecutor<'_> + Copy) -> Result<Vec<TargetStats>> {
    Ok(sqlx::query_as(include_str!("sql/target_list.sql"))
        .fetch_all(pool)
        .await?)
}

/// One target with its counts.
///
/// # Errors
/// [`Error::NotFound`] when there is no such target.
pub async fn target_get(pool: impl PgExecutor<'_> + Copy, name: &str) -> Result<TargetStats> {
    sqlx::query_as(include_str!("sql/target_get.sql"))
        .bind(name)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no target named {}", crate::quote_short(name))))
}

/// One batch of the reaper (`bosun.reap_expunged`): fail up to `batch` unfinished jobs on
/// expunged targets, move their sagas on, and resume stuck sagas on expunged targets.
///
/// # Errors
/// [`Error::InvalidArgument`] when `batch` is below 1.
#[doc(hidden)]
pub async fn reap_expunged(pool: impl PgExecutor<'_> + Copy, batch: i32) -> Result<Vec<Reaped>> {
    Ok(sqlx::query_as(include_str!("sql/target_reap_expunged.sql"))
        .bind(batch)
        .fetch_all(pool)
        .await?)
}
