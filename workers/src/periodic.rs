//! Periodic jobs defined in code: on every slot of a cron schedule, enqueue a job.
//!
//! A pool registers its definitions when it starts (`bosun.schedule_periodic`, idempotent, so
//! every replica may), and the maintenance leader fires them (see
//! [`crate::maintenance::scheduler`]). Operators see and manage the same rows from SQL
//! (`bosun.periodic_jobs`, `bosun.pause_periodic`, ...).
//!
//! ```
//! use bosun_queue::NewJob;
//! use bosun_workers::Periodic;
//! // Every 5 minutes; a sixth leading field would be seconds.
//! let reconcile = Periodic::new("exports.reconcile", "*/5 * * * *", NewJob::new("exports.reconcile", serde_json::json!({})));
//! assert!(reconcile.is_ok());
//! assert!(Periodic::new("bad", "every tuesday", NewJob::new("echo", serde_json::json!({}))).is_err());
//! ```

use std::str::FromStr;

use bosun_queue::NewJob;

use crate::{Error, Result};

/// A periodic job: `job` enqueued on every slot of `cron`.
#[derive(Debug, Clone)]
pub struct Periodic {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) job: NewJob,
}

impl Periodic {
    /// Enqueue `job` on every slot of `cron` (5 fields: minute hour day-of-month month
    /// day-of-week; 6 with seconds first; or `@hourly`, `@daily`, ...), in UTC. Each slot's
    /// job gets the unique key `periodic:<name>:<slot>`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `cron` does not parse.
    pub fn new(name: impl Into<String>, cron: impl Into<String>, job: NewJob) -> Result<Periodic> {
        let cron = cron.into();
        parse(&cron).map_err(Error::InvalidConfig)?;
        Ok(Periodic {
            name: name.into(),
            cron,
            job,
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Parse a cron expression, or say why it does not parse.
pub(crate) fn parse(cron: &str) -> std::result::Result<croner::Cron, String> {
    croner::Cron::from_str(cron)
        .map_err(|error| format!("cron expression {cron:?} does not parse: {error}"))
}
