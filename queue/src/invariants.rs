//! The rules Bosun's own writes never break, checked on demand (`bosun.check_invariants()`,
//! `bosun doctor`): an unfinished saga with no live job, a finished saga with an unfinished
//! step, a running job whose worker died longer ago than rescue takes, work on an expunged
//! target that can still run, counters below their rows, and the like. Operators run it to
//! find what needs a hand; the crash tests end with it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::Result;

/// How long a state may last before [`check_invariants`] counts it, by default: rescue takes
/// a lease (15 s) and a maintenance tick; reaping takes a tick.
pub const GRACE_DEFAULT: Duration = Duration::from_secs(60);

/// One violated rule, and the row it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Violation {
    /// The rule, e.g. `unfinished_saga_has_no_live_job`.
    pub invariant: String,
    /// The row: `saga <id>`, `job <id>`, `target <name>`, ...
    pub subject: String,
    /// What is wrong, and where it says so what repairs it.
    pub detail: String,
}

/// Every violation, rule by rule. States younger than `grace` are not counted yet.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn check_invariants(
    pool: impl PgExecutor<'_> + Copy,
    grace: Duration,
) -> Result<Vec<Violation>> {
    Ok(sqlx::query_as(include_str!("sql/invariants_check.sql"))
        .bind(grace.as_secs_f64())
        .fetch_all(pool)
        .await?)
}
