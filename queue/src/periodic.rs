//! Periodic jobs' storage: schedules, and the fenced "fire this
//! slot" and "skip these slots" calls the maintenance leader makes. Cron parsing, time zones
//! and the choice of slots live in `bosun-workers`' scheduler; the database only makes sure a
//! slot is enqueued at most once and that the schedule's record only moves forward.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;

use crate::{NewJob, Result};

/// What the scheduler does with the slots that came while no leader fired them (every
/// replica was down, or the schedule was paused). Stored as text in
/// `bosun.periodic_jobs.catch_up`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire the latest slot that has come, once; the older ones are skipped.
    #[default]
    Latest,
    /// Fire every slot that has come, oldest first, at most `catch_up_max` of them (the
    /// latest ones); older ones are skipped.
    All,
    /// Fire a slot only when the leader finds it on time; missed slots are skipped and the
    /// next slot that comes fires.
    None,
}

impl CatchUp {
    /// The name used in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
            CatchUp::None => "none",
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CatchUp {
    type Err = crate::Error;

    /// `latest`, `all` or `none`, as in SQL.
    fn from_str(s: &str) -> Result<CatchUp> {
        match s {
            "latest" => Ok(CatchUp::Latest),
            "all" => Ok(CatchUp::All),
            "none" => Ok(CatchUp::None),
            _ => Err(crate::Error::InvalidArgument(format!(
                "catch_up {} must be \"latest\", \"all\" or \"none\"",
                crate::quote_short(s)
            ))),
        }
    }
}

impl sqlx::Type<sqlx::Postgres> for CatchUp {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for CatchUp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
    }
}

impl sqlx::Decode<'_, sqlx::Postgres> for CatchUp {
    fn decode(
        value: sqlx::postgres::PgValueRef<'_>,
    ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(text.parse()?)
    }
}

/// The default of `catch_up_max`: how many missed slots [`CatchUp::All`] fires at most.
pub const CATCH_UP_MAX_DEFAULT: i32 = 100;

/// The largest `catch_up_max` a schedule may have: one leader's pass enqueues at most this
/// many jobs for one schedule.
pub const CATCH_UP_MAX_LIMIT: i32 = 10_000;

/// How a schedule fires besides its cron expression: its catch-up policy and its time zone.
/// The default is today's UTC behaviour: the latest missed slot fires, in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicOptions {
    /// What happens to slots missed while no leader fired them.
    pub catch_up: CatchUp,
    /// With [`CatchUp::All`], the most missed slots fired at once (1 to
    /// [`CATCH_UP_MAX_LIMIT`]); the oldest beyond it are skipped.
    pub catch_up_max: i32,
    /// The IANA time zone the cron expression is read in, e.g. `Europe/Berlin`.
    pub timezone: String,
}

impl Default for PeriodicOptions {
    fn default() -> Self {
        PeriodicOptions {
            catch_up: CatchUp::Latest,
            catch_up_max: CATCH_UP_MAX_DEFAULT,
            timezone: "UTC".to_string(),
        }
    }
}

/// A row of `bosun.periodic_jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PeriodicJob {
    /// Name, unique.
    pub name: String,
    /// Cron expression: 5 fields, or 6 with seconds first, or an @alias.
    pub cron: String,
    /// Kind of the jobs it enqueues.
    pub kind: String,
    /// Their args.
    pub args: serde_json::Value,
    /// Their queue.
    pub queue: String,
    /// Their priority.
    pub priority: i16,
    /// Their attempts.
    pub max_attempts: i32,
    /// Their target.
    pub target: Option<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// The latest slot enqueued.
    pub last_slot: Option<DateTime<Utc>>,
    /// The job of that slot.
    pub last_job_id: Option<i64>,
    /// The next slot, as the leader computed it.
    pub next_at: Option<DateTime<Utc>>,
    /// Why the leader cannot fire it.
    pub error: Option<String>,
    /// Defined.
    pub created_at: DateTime<Utc>,
    /// Last redefined or paused.
    pub updated_at: DateTime<Utc>,
    /// What happens to missed slots.
    pub catch_up: CatchUp,
    /// With [`CatchUp::All`], the most missed slots fired at once.
    pub catch_up_max: i32,
    /// The IANA time zone the cron expression is read in.
    pub timezone: String,
    /// The oldest of the slots the latest catch-up skipped (none fired for them).
    pub skipped_from: Option<DateTime<Utc>>,
    /// The newest of them: every slot from `skipped_from` to here was skipped.
    pub skipped_to: Option<DateTime<Utc>>,
}

/// Define or redefine periodic job `name`: on every slot of `cron`, in UTC, enqueue `job` (its
/// kind, args, queue, priority, max attempts and target; a unique key and schedule of its own
/// are replaced by the slot's); after downtime the latest missed slot fires. Keeps an
/// operator's pause and the last slot fired. [`periodic_schedule_with`] sets the time zone and
/// the catch-up policy.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming the bad argument.
pub async fn periodic_schedule(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    cron: &str,
    job: &NewJob,
) -> Result<PeriodicJob> {
    periodic_schedule_with(pool, name, cron, job, &PeriodicOptions::default()).await
}

/// [`periodic_schedule`] with a catch-up policy and a time zone of its own.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] naming the bad argument, e.g. a time zone PostgreSQL
/// does not know or a `catch_up_max` out of range.
pub async fn periodic_schedule_with(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    cron: &str,
    job: &NewJob,
    options: &PeriodicOptions,
) -> Result<PeriodicJob> {
    Ok(sqlx::query_as(include_str!("sql/periodic_schedule.sql"))
        .bind(name)
        .bind(cron)
        .bind(&job.kind)
        .bind(&job.args)
        .bind(job.queue.as_deref())
        .bind(job.priority.map(i32::from))
        .bind(job.max_attempts)
        .bind(job.target.as_deref())
        .bind(options.catch_up)
        .bind(options.catch_up_max)
        .bind(&options.timezone)
        .fetch_one(pool)
        .await?)
}

/// Every periodic job, by name.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn periodic_list(pool: impl PgExecutor<'_> + Copy) -> Result<Vec<PeriodicJob>> {
    Ok(sqlx::query_as(include_str!("sql/periodic_list.sql"))
        .fetch_all(pool)
        .await?)
}

/// Pause (`enabled = false`) or resume periodic job `name`.
///
/// # Errors
/// [`crate::Error::NotFound`] for an unknown name.
pub async fn periodic_set_enabled(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    enabled: bool,
) -> Result<PeriodicJob> {
    let sql = if enabled {
        include_str!("sql/periodic_resume.sql")
    } else {
        include_str!("sql/periodic_pause.sql")
    };
    Ok(sqlx::query_as(sql).bind(name).fetch_one(pool).await?)
}

/// Remove periodic job `name`; the jobs it enqueued stay.
///
/// # Errors
/// [`crate::Error::NotFound`] for an unknown name.
pub async fn periodic_unschedule(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
) -> Result<PeriodicJob> {
    Ok(sqlx::query_as(include_str!("sql/periodic_unschedule.sql"))
        .bind(name)
        .fetch_one(pool)
        .await?)
}

/// For the leader: enqueue the job of `slot` unless that slot or a later one was enqueued or
/// skipped, and remember `next_at`. The new job's id, or `None` when nothing was enqueued.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
#[doc(hidden)]
pub async fn periodic_fire(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    slot: DateTime<Utc>,
    next_at: Option<DateTime<Utc>>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(include_str!("sql/periodic_fire.sql"))
        .bind(name)
        .bind(slot)
        .bind(next_at)
        .fetch_one(pool)
        .await?)
}

/// For the leader: record that no job is enqueued for the slots from `first` to `last` (the
/// catch-up policy skipped them), unless a slot that late was fired or skipped already.
/// Whether it was recorded.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] when `last` is before `first`; [`crate::Error::Database`]
/// if the call fails.
#[doc(hidden)]
pub async fn periodic_skip(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Result<bool> {
    Ok(sqlx::query_scalar(include_str!("sql/periodic_skip.sql"))
        .bind(name)
        .bind(first)
        .bind(last)
        .fetch_one(pool)
        .await?)
}

/// For the leader: record the next slot, or why none can be computed.
///
/// # Errors
/// [`crate::Error::Database`] if the call fails.
#[doc(hidden)]
pub async fn periodic_note(
    pool: impl PgExecutor<'_> + Copy,
    name: &str,
    next_at: Option<DateTime<Utc>>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(include_str!("sql/periodic_note.sql"))
        .bind(name)
        .bind(next_at)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// The database's clock, which every schedule is read against.
///
/// # Errors
/// [`crate::Error::Database`] if the query fails.
pub async fn database_now(pool: impl PgExecutor<'_> + Copy) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(include_str!("sql/database_now.sql"))
        .fetch_one(pool)
        .await?)
}
