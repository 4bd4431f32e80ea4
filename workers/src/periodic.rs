//! Periodic jobs defined in code: on every slot of a cron schedule, enqueue a job.
//!
//! A pool registers its definitions when it starts (`bosun.schedule_periodic`, idempotent, so
//! every replica may), and the maintenance leader fires them (see
//! [`crate::maintenance::scheduler`]). Operators see and manage the same rows from SQL
//! (`bosun.periodic_jobs`, `bosun.pause_periodic`, ...).
//!
//! ```
//! use bosun_queue::NewJob;
//! use bosun_workers::{CatchUp, Periodic};
//! // Every 5 minutes; a sixth leading field would be seconds.
//! let reconcile = Periodic::new("exports.reconcile", "*/5 * * * *", NewJob::new("exports.reconcile", serde_json::json!({})));
//! assert!(reconcile.is_ok());
//! assert!(Periodic::new("bad", "every tuesday", NewJob::new("echo", serde_json::json!({}))).is_err());
//! // At 09:00 in Berlin, summer and winter; after downtime, each missed day's job, up to 30.
//! let report = Periodic::new("report.daily", "0 9 * * *", NewJob::new("report.daily", serde_json::json!({})))
//!     .and_then(|p| p.timezone("Europe/Berlin"))
//!     .and_then(|p| p.catch_up(CatchUp::All).catch_up_max(30));
//! assert!(report.is_ok());
//! ```

pub(crate) mod catch_up;
pub(crate) mod slots;

use bosun_queue::{
    periodic::{CatchUp, PeriodicOptions, CATCH_UP_MAX_LIMIT},
    NewJob,
};

use crate::{Error, Result};

/// A periodic job: `job` enqueued on every slot of `cron`.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) job: NewJob,
    pub(crate) options: PeriodicOptions,
}

impl Periodic {
    /// Enqueue `job` on every slot of `cron` (5 fields: minute hour day-of-month month
    /// day-of-week; 6 with seconds first; or `@hourly`, `@daily`, ...), in UTC unless
    /// [`Periodic::timezone`] says otherwise. Each slot's job gets the unique key
    /// `periodic:<name>:<slot in UTC>`. After downtime the latest missed slot fires
    /// ([`CatchUp::Latest`]) unless [`Periodic::catch_up`] says otherwise.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `cron` does not parse.
    pub fn new(name: impl Into<String>, cron: impl Into<String>, job: NewJob) -> Result<Periodic> {
        let cron = cron.into();
        slots::parse_cron(&cron).map_err(Error::InvalidConfig)?;
        Ok(Periodic {
            name: name.into(),
            cron,
            job,
            options: PeriodicOptions::default(),
        })
    }

    /// Read the cron expression in the IANA time zone `zone` (e.g. `Europe/Berlin`): `0 9 * *
    /// *` fires at 09:00 local time all year. On the day clocks go forward, a time of day
    /// that does not exist fires at the first instant after the gap; on the day they go back,
    /// a time of day that happens twice fires once, the first time (see `docs/sql.md`,
    /// "Time zones").
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `zone` is not an IANA time zone name.
    pub fn timezone(mut self, zone: &str) -> Result<Periodic> {
        slots::parse_zone(zone).map_err(Error::InvalidConfig)?;
        self.options.timezone = zone.to_string();
        Ok(self)
    }

    /// What happens to slots that came while no leader fired them (see [`CatchUp`]).
    pub fn catch_up(mut self, policy: CatchUp) -> Periodic {
        self.options.catch_up = policy;
        self
    }

    /// With [`CatchUp::All`], fire at most `max` missed slots (the latest ones; 100 unless
    /// set), skipping the older ones.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `max` is 1 to 10,000.
    pub fn catch_up_max(mut self, max: u32) -> Result<Periodic> {
        self.options.catch_up_max = i32::try_from(max)
            .ok()
            .filter(|max| (1..=CATCH_UP_MAX_LIMIT).contains(max))
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "catch_up_max must be 1 to {CATCH_UP_MAX_LIMIT}, got {max}"
                ))
            })?;
        Ok(self)
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
