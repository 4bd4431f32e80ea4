//! Assertions for the tests of an application that enqueues Bosun jobs (feature `testing`):
//! a test runs the code under test, then checks which jobs it left waiting to run, without a
//! worker pool. When an assertion fails, its message lists every job that waits, so the test
//! output shows what was enqueued instead.
//!
//! "Enqueued" means waiting to run: `scheduled`, `available` or `retryable`. A [`JobMatch`]
//! names a kind, a queue and args, each optional; args match by JSON containment (`@>`): the
//! job's args hold every key given, with the same value, and may hold more.
//!
//! ```no_run
//! # async fn check(client: bosun_queue::Client) {
//! use bosun_queue::testing::{assert_enqueued, refute_enqueued, JobMatch};
//! use serde_json::json;
//!
//! // ... run the code that should enqueue a welcome email ...
//! assert_enqueued(client.db(), &JobMatch::kind("email.send").args(json!({"to": "a@b.c"}))).await;
//! refute_enqueued(client.db(), &JobMatch::kind("email.send").queue("bulk")).await;
//! # }
//! ```
//!
//! Each call takes any executor: `client.db()`, a pool, or `&mut *tx` to see the jobs a
//! transaction enqueued before it commits.
//!
//! [`drain_progress`] (with [`crate::periodic::database_now`]) is what
//! `bosun_workers::testing::drain_queue` reads to know when a queue is drained and what became
//! of its jobs.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgExecutor, Row};

use crate::{Job, JobArgs, Result};

/// At most this many waiting jobs are listed in a failed assertion's message.
const LISTED_MAX: usize = 50;

/// What a job must be to match: every field that is set must hold. `JobMatch::default()`
/// matches every job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMatch {
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs in this queue.
    pub queue: Option<String>,
    /// Only jobs whose args contain this JSON (`args @> value`).
    pub args: Option<serde_json::Value>,
}

impl JobMatch {
    /// Jobs of `kind`.
    pub fn kind(kind: impl Into<String>) -> Self {
        JobMatch {
            kind: Some(kind.into()),
            ..JobMatch::default()
        }
    }

    /// Jobs of the kind of the typed args `A` (`A::KIND`).
    pub fn of<A: JobArgs>() -> Self {
        JobMatch::kind(A::KIND)
    }

    /// Jobs of the kind of `args` whose args contain all of `args`, serialized: the typed
    /// form of [`JobMatch::kind`] and [`JobMatch::args`] together.
    ///
    /// # Panics
    /// If `args` does not serialize to JSON.
    pub fn args_of<A: JobArgs>(args: &A) -> Self {
        let value = serde_json::to_value(args)
            .unwrap_or_else(|e| panic!("args of kind {} do not serialize: {e}", A::KIND));
        JobMatch::of::<A>().args(value)
    }

    /// Only jobs in `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only jobs whose args contain `args` (JSON containment).
    pub fn args(mut self, args: serde_json::Value) -> Self {
        self.args = Some(args);
        self
    }
}

impl fmt::Display for JobMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(kind) = &self.kind {
            parts.push(format!("kind {kind:?}"));
        }
        if let Some(queue) = &self.queue {
            parts.push(format!("queue {queue:?}"));
        }
        if let Some(args) = &self.args {
            parts.push(format!("args containing {args}"));
        }
        if parts.is_empty() {
            f.write_str("any job")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Every job waiting to run, oldest first, and whether it matches `filter`.
async fn waiting<'c>(db: impl PgExecutor<'c>, filter: &JobMatch) -> Result<Vec<(Job, bool)>> {
    let rows = sqlx::query(include_str!("sql/testing_enqueued.sql"))
        .bind(filter.kind.as_deref())
        .bind(filter.queue.as_deref())
        .bind(filter.args.as_ref())
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| Ok((Job::from_row(row)?, row.try_get("matches")?)))
        .collect()
}

/// The jobs waiting to run that match `filter`, oldest first (Oban's `all_enqueued`).
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn enqueued<'c>(db: impl PgExecutor<'c>, filter: &JobMatch) -> Result<Vec<Job>> {
    Ok(waiting(db, filter)
        .await?
        .into_iter()
        .filter_map(|(job, matches)| matches.then_some(job))
        .collect())
}

/// Assert that at least one job waiting to run matches `filter`, and return the matching jobs,
/// oldest first (Oban's `assert_enqueued`, River's `RequireInserted`).
///
/// # Panics
/// When none matches (the message lists every waiting job), or the query fails.
pub async fn assert_enqueued<'c>(db: impl PgExecutor<'c>, filter: &JobMatch) -> Vec<Job> {
    let jobs = waiting(db, filter)
        .await
        .unwrap_or_else(|e| panic!("reading the enqueued jobs: {e}"));
    let matching: Vec<Job> = jobs
        .iter()
        .filter(|(_, matches)| *matches)
        .map(|(job, _)| job.clone())
        .collect();
    if matching.is_empty() {
        let all: Vec<&Job> = jobs.iter().map(|(job, _)| job).collect();
        panic!(
            "expected an enqueued job matching {filter}, found none; {}",
            listing(&all)
        );
    }
    matching
}

/// Assert that no job waiting to run matches `filter` (Oban's `refute_enqueued`, River's
/// `RequireNotInserted`).
///
/// # Panics
/// When one does (the message lists the jobs that match), or the query fails.
pub async fn refute_enqueued<'c>(db: impl PgExecutor<'c>, filter: &JobMatch) {
    let jobs = waiting(db, filter)
        .await
        .unwrap_or_else(|e| panic!("reading the enqueued jobs: {e}"));
    let matching: Vec<&Job> = jobs
        .iter()
        .filter(|(_, matches)| *matches)
        .map(|(job, _)| job)
        .collect();
    if !matching.is_empty() {
        panic!(
            "expected no enqueued job matching {filter}, found {}; {}",
            matching.len(),
            listing(&matching)
        );
    }
}

/// What became of the jobs a drain of one queue ran, by the state each was left in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Drained {
    /// Jobs that completed.
    pub completed: i64,
    /// Jobs whose last attempt failed and that will run again after their backoff.
    pub retryable: i64,
    /// Jobs that failed for good (a permanent error, or out of attempts).
    pub failed: i64,
    /// Jobs cancelled (by their handler, or an operator).
    pub cancelled: i64,
    /// Jobs snoozed: scheduled to run again later.
    pub snoozed: i64,
}

/// Where a drain of one queue stands: the work left, and what became of the jobs it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainProgress {
    /// Jobs of the queue running or due now: the drain is over when this is 0.
    pub due_or_running: i64,
    /// The jobs of the queue attempted since the drain started, by state.
    pub drained: Drained,
}

/// Where a drain of `queue` that started at `since` (the database's clock, as
/// [`crate::periodic::database_now`] reads it) stands, over the jobs of `kinds` (those its
/// pool runs).
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn drain_progress<'c>(
    db: impl PgExecutor<'c>,
    queue: &str,
    kinds: &[String],
    since: DateTime<Utc>,
) -> Result<DrainProgress> {
    let row = sqlx::query(include_str!("sql/testing_drain_progress.sql"))
        .bind(queue)
        .bind(since)
        .bind(kinds)
        .fetch_one(db)
        .await?;
    Ok(DrainProgress {
        due_or_running: row.try_get("due_or_running")?,
        drained: Drained::from_row(&row)?,
    })
}

/// `jobs`, one per line, for an assertion's message.
fn listing(jobs: &[&Job]) -> String {
    if jobs.is_empty() {
        return "no job is enqueued".to_string();
    }
    let mut text = format!("enqueued ({}):", jobs.len());
    for job in jobs.iter().take(LISTED_MAX) {
        text.push_str(&format!(
            "\n  job {}: kind {:?}, queue {:?}, {}, args {}",
            job.id, job.kind, job.queue, job.state, job.args
        ));
    }
    if jobs.len() > LISTED_MAX {
        text.push_str(&format!("\n  ... and {} more", jobs.len() - LISTED_MAX));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::JobMatch;
    use serde_json::json;

    #[test]
    fn a_filter_says_what_it_matches() {
        assert_eq!(JobMatch::default().to_string(), "any job");
        assert_eq!(
            JobMatch::kind("email.send")
                .queue("mail")
                .args(json!({"to": "a@b.c"}))
                .to_string(),
            r#"kind "email.send", queue "mail", args containing {"to":"a@b.c"}"#
        );
    }
}
