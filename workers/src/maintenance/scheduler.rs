//! The scheduler: fires periodic jobs (see [`crate::Periodic`]).
//!
//! On each pass, for every enabled schedule, it reads the database clock and finds the first
//! slot after the last one fired (or after the schedule was made). When that slot has come, it
//! fires the latest slot that has come, once: slots missed while no leader ran collapse into
//! one job instead of a burst. The database enqueues a slot at most once (a fenced call and a
//! unique key per slot), so two leaders overlapping for a moment cannot double a tick.

use bosun_queue::{
    periodic::{database_now, periodic_fire, periodic_list, periodic_note},
    Client,
};
use chrono::{DateTime, SubsecRound, Utc};

/// One slot fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The periodic job.
    pub name: String,
    /// The slot.
    pub slot: DateTime<Utc>,
    /// The job enqueued for it.
    pub job_id: i64,
}

/// The scheduler service.
#[derive(Debug, Clone)]
pub struct Scheduler {
    client: Client,
}

impl Scheduler {
    /// A scheduler on `client`'s database.
    pub fn new(client: Client) -> Self {
        Scheduler { client }
    }

    /// One pass over every schedule. Idempotent: a second pass in the same slot fires nothing.
    ///
    /// # Errors
    /// [`bosun_queue::Error::Database`] if a call fails; schedules fired before stay fired.
    pub async fn run_once(&self) -> bosun_queue::Result<Vec<Fired>> {
        let pool = self.client.pool();
        // Slots are whole seconds; cron arithmetic on a time with a fraction would carry the
        // fraction into the slot, and two passes would then see two "different" slots.
        let now = database_now(pool).await?.trunc_subsecs(0);
        let mut fired = Vec::new();
        for periodic in periodic_list(pool).await? {
            if !periodic.enabled {
                continue;
            }
            let cron = match crate::periodic::parse(&periodic.cron) {
                Ok(cron) => cron,
                Err(problem) => {
                    periodic_note(pool, &periodic.name, None, Some(&problem)).await?;
                    continue;
                }
            };
            let since = periodic
                .last_slot
                .unwrap_or(periodic.created_at)
                .trunc_subsecs(0);
            let Ok(first_due) = cron.find_next_occurrence(&since, false) else {
                let problem = format!("cron expression {:?} has no next slot", periodic.cron);
                periodic_note(pool, &periodic.name, None, Some(&problem)).await?;
                continue;
            };
            if first_due > now {
                periodic_note(
                    pool,
                    &periodic.name,
                    Some(first_due),
                    periodic.error.as_deref(),
                )
                .await?;
                continue;
            }
            // The latest slot that has come (at least `first_due`).
            let slot = cron
                .find_previous_occurrence(&now, true)
                .map_or(first_due, |latest| latest.max(first_due));
            let next_at = cron.find_next_occurrence(&slot, false).ok();
            if let Some(job_id) = periodic_fire(pool, &periodic.name, slot, next_at).await? {
                fired.push(Fired {
                    name: periodic.name,
                    slot,
                    job_id,
                });
            }
        }
        Ok(fired)
    }
}
