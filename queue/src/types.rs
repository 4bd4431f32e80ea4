//! The shared vocabulary: job states, job rows, the jobs to enqueue and what became of them.
//!
//! This module does no I/O. Every other module, and the `bosun-workers` runtime, speaks in
//! these types, so a job looks the same whether it came from a claim, a listing or a test.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, Result};

/// Where a job is in its life. Stored as the PostgreSQL enum `bosun.job_state`.
///
/// ```text
///  enqueue ──► scheduled ──(time)──► available ──claim──► running ──ok──► completed
///                  ▲                    ▲                  │  │
///                  └──── snooze ────────┼──────────────────┘  ├─error──► retryable ──(backoff)──► claim
///                                       │                     ├─error, no attempts left──► failed
///                                       └─ retry_job ◄────────┴─cancel──► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waits for `scheduled_at`. Moved in by an enqueue with a future time or a snooze;
    /// claimable once `scheduled_at` has passed.
    Scheduled,
    /// Ready to run. Moved in by enqueue, `retry_job`, or a graceful shutdown handing a job
    /// back; moved out by a claim.
    Available,
    /// Claimed by one worker; `attempt` is the fencing token for that worker's writes.
    /// Moved out by the worker's outcome or by `cancel_job`.
    Running,
    /// An attempt failed; runs again at `scheduled_at` (the backoff). Claimable then.
    Retryable,
    /// Done. Final, except that an operator may `retry_job` it.
    Completed,
    /// Will not run again: attempts exhausted or a permanent error. `retry_job` revives it.
    Failed,
    /// Stopped on request (`cancel_job`, or the handler cancelled itself).
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name used in SQL and JSON (`"retryable"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether a job in this state will not run again on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

crate::pg_enum::impl_pg_text_enum!(JobState, "job_state");

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "state {} is not one of scheduled, available, running, retryable, completed, failed, cancelled",
                    crate::quote_short(s)
                ))
            })
    }
}

/// One entry of a job's `errors`: what went wrong in one attempt. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed (1 for the first).
    pub attempt: i32,
    /// When it was recorded (database clock).
    pub at: DateTime<Utc>,
    /// The error's text.
    pub error: String,
    /// The worker that ran the attempt, if one did.
    #[serde(default)]
    pub worker: Option<String>,
    /// What kind of failure: `error`, `panic`, `decode`, `permanent`, `cancelled`, ...
    #[serde(default)]
    pub kind: Option<String>,
}

/// What a worker holds of a job it claimed: the job's id and the attempt it claimed, which
/// fence every write about the job. Such a write applies only while the row is `running` at
/// that attempt; once an operator cancelled the job or another worker took it over, it
/// changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lease {
    /// The job's id.
    pub id: i64,
    /// The attempt claimed.
    pub attempt: i32,
}

/// A job row as stored in `bosun.jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Job {
    /// Unique id, increasing in enqueue order.
    pub id: i64,
    /// What the job does; a worker registered for this kind runs it.
    pub kind: String,
    /// The queue it waits in.
    pub queue: String,
    /// The handler's arguments, a JSON object.
    pub args: serde_json::Value,
    /// Where it is in its life.
    pub state: JobState,
    /// Lower runs first.
    pub priority: i16,
    /// How many times it was claimed; the fencing token of the current claim.
    pub attempt: i32,
    /// After this many failed attempts the job is `failed`.
    pub max_attempts: i32,
    /// When it may run (next).
    pub scheduled_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the current or last attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finalized_at: Option<DateTime<Utc>>,
    /// The worker that holds or last held it.
    pub attempted_by: Option<String>,
    /// One entry per failed attempt, as JSON ([`AttemptError`]).
    pub errors: serde_json::Value,
    /// Deterministic name that makes enqueue idempotent.
    pub unique_key: Option<String>,
    /// The external thing the job acts on.
    pub target: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Free-form metadata, a JSON object.
    pub meta: serde_json::Value,
}

impl Job {
    /// The lease of this attempt, for the fenced writes about it.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            attempt: self.attempt,
        }
    }

    /// The recorded attempt errors, oldest first. Entries that do not parse are skipped.
    pub fn attempt_errors(&self) -> Vec<AttemptError> {
        match &self.errors {
            serde_json::Value::Array(entries) => entries
                .iter()
                .filter_map(|entry| serde_json::from_value(entry.clone()).ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// A typed job: its arguments are a serde struct, its kind a constant.
///
/// ```
/// use bosun_queue::JobArgs;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail { to: String }
///
/// impl JobArgs for SendEmail {
///     const KIND: &'static str = "email.send";
///     fn options() -> bosun_queue::JobOptions {
///         bosun_queue::JobOptions { queue: Some("mail".into()), ..Default::default() }
///     }
/// }
/// ```
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job's kind, e.g. `"email.send"`.
    const KIND: &'static str;

    /// Defaults for every job of this kind; a [`NewJob`] builder call overrides them.
    fn options() -> JobOptions {
        JobOptions::default()
    }
}

/// Per-kind enqueue defaults (see [`JobArgs::options`]). `None` means Bosun's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// Queue (default `"default"`).
    pub queue: Option<String>,
    /// Priority (default 0; lower runs first).
    pub priority: Option<i16>,
    /// Attempts before the job fails (default 20).
    pub max_attempts: Option<i32>,
}

/// A job to enqueue: kind, JSON args and options. Build one with [`NewJob::new`] (untyped)
/// or [`NewJob::from_args`] (typed), then chain options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJob {
    pub(crate) kind: String,
    pub(crate) args: serde_json::Value,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<i16>,
    pub(crate) scheduled_at: Option<DateTime<Utc>>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) unique_key: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) meta: Option<serde_json::Value>,
    pub(crate) on_conflict: OnConflict,
}

/// What enqueueing a job whose `unique_key` is taken does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Return the job that holds the key, whatever it holds (`inserted: false`). The default,
    /// and what makes re-enqueueing after a crash harmless.
    #[default]
    ReturnExisting,
    /// Return the job that holds the key if it is the same job (kind, args, queue and
    /// target); otherwise fail with [`Error::Conflict`], naming what differs. For keys that
    /// name a command: the same key with other arguments is a mistake, not a retry.
    ErrorIfDifferent,
}

impl OnConflict {
    /// The name used in SQL (`on_conflict => 'error_if_different'`).
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::ReturnExisting => "return_existing",
            OnConflict::ErrorIfDifferent => "error_if_different",
        }
    }
}

impl NewJob {
    /// An untyped job. The database validates `kind` and `args` when it is enqueued.
    pub fn new(kind: impl Into<String>, args: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            args,
            queue: None,
            priority: None,
            scheduled_at: None,
            max_attempts: None,
            unique_key: None,
            target: None,
            tags: Vec::new(),
            meta: None,
            on_conflict: OnConflict::ReturnExisting,
        }
    }

    /// A typed job, with the kind's [`JobArgs::options`] applied.
    ///
    /// # Errors
    /// [`Error::Serialization`] if the args do not serialize, [`Error::InvalidArgument`] if
    /// they do not serialize to a JSON object.
    pub fn from_args<A: JobArgs>(args: &A) -> Result<Self> {
        let value = serde_json::to_value(args)?;
        if !value.is_object() {
            return Err(Error::InvalidArgument(format!(
                "args of kind {} must serialize to a JSON object, got {}",
                A::KIND,
                json_type_name(&value)
            )));
        }
        let options = A::options();
        let mut job = NewJob::new(A::KIND, value);
        job.queue = options.queue;
        job.priority = options.priority;
        job.max_attempts = options.max_attempts;
        Ok(job)
    }

    /// Queue to wait in.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Priority; lower runs first.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Run no earlier than `at`.
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// Attempts before the job is `failed`.
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// A deterministic name: enqueueing a key that exists returns the existing job.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// The external thing the job acts on.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Free-form labels.
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Free-form metadata (a JSON object).
    pub fn meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(meta);
        self
    }

    /// What a taken `unique_key` does (default [`OnConflict::ReturnExisting`]).
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        self.on_conflict = on_conflict;
        self
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

/// Anything that can be enqueued: a [`NewJob`] or a typed [`JobArgs`] value.
pub trait IntoNewJob {
    /// Turn into a [`NewJob`].
    ///
    /// # Errors
    /// As [`NewJob::from_args`].
    fn into_new_job(self) -> Result<NewJob>;
}

impl IntoNewJob for NewJob {
    fn into_new_job(self) -> Result<NewJob> {
        Ok(self)
    }
}

impl<A: JobArgs> IntoNewJob for A {
    fn into_new_job(self) -> Result<NewJob> {
        NewJob::from_args(&self)
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job's id: new, or the existing job's when its `unique_key` was taken.
    pub id: i64,
    /// False when a job with the same `unique_key` existed and was returned instead.
    pub inserted: bool,
}

/// A row of `bosun.queues`: settings every replica sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct QueueRow {
    /// Queue name.
    pub name: String,
    /// Whether workers skip it.
    pub paused: bool,
    /// Since when it is paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A row of the view `bosun.queue_stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs waiting for their time.
    pub scheduled: i64,
    /// Jobs ready to run.
    pub available: i64,
    /// Jobs being run.
    pub running: i64,
    /// Jobs waiting to retry.
    pub retryable: i64,
    /// Completed jobs still retained.
    pub completed: i64,
    /// Failed jobs.
    pub failed: i64,
    /// Cancelled jobs.
    pub cancelled: i64,
    /// Seconds the oldest due, unclaimed job has waited.
    pub oldest_available_secs: Option<f64>,
}

/// Filters for [`crate::Client::job_list`]. Empty means everything, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with an id below this (for paging).
    pub before_id: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<i64>,
}

/// Whether `name` is a valid queue name: 1 to 64 letters, digits, `_`, `.` or `-`, not
/// starting with `.` or `-`. The same rule as `bosun.valid_queue` in SQL.
pub fn is_valid_queue_name(name: &str) -> bool {
    valid_name(name, 64, b"_.-")
}

/// Whether `kind` is a valid job kind: 1 to 128 letters, digits, `_`, `.`, `:` or `-`, not
/// starting with `.`, `:` or `-`. The same rule as `bosun.valid_kind` in SQL.
pub fn is_valid_kind(kind: &str) -> bool {
    valid_name(kind, 128, b"_.:-")
}

fn valid_name(name: &str, max_len: usize, punctuation: &[u8]) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || punctuation.contains(b))
}

pub(crate) fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!(matches!(
            "done".parse::<JobState>(),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[derive(Serialize, Deserialize)]
    struct NotAnObject(u32);

    impl JobArgs for NotAnObject {
        const KIND: &'static str = "bad";
    }

    #[test]
    fn typed_args_must_be_objects() {
        let err = NewJob::from_args(&NotAnObject(3)).unwrap_err();
        assert!(err
            .to_string()
            .contains("must serialize to a JSON object, got number"));
    }
}
