//! The scheduler: fires periodic jobs (see [`crate::Periodic`]).
//!
//! On each pass, for every enabled schedule, it reads the database clock and finds the slots
//! that came after the schedule's record: the last slot fired or skipped, or the schedule's
//! creation. Slots are instants; the cron expression is read in the schedule's time zone
//! ([`crate::periodic::slots`]). When the leader keeps up, that is the one slot that just
//! came and it fires. After downtime, or a pause, there can be many, and the schedule's
//! catch-up policy picks which fire ([`crate::periodic::catch_up`]); the others are recorded
//! on the row as skipped (`skipped_from`, `skipped_to`) and logged. The database enqueues a
//! slot at most once (a fenced call and a unique key per slot), and neither the last slot
//! fired nor the last one skipped moves back, so two leaders overlapping for a moment cannot
//! double a tick.

use std::time::Duration;

use bosun_queue::{
    periodic::{database_now, periodic_fire, periodic_list, periodic_note, periodic_skip},
    Client,
};
use chrono::{DateTime, SubsecRound, Utc};
use tracing::info;

use crate::periodic::{catch_up, slots::Schedule};

use super::service::Service;

/// Under [`crate::CatchUp::None`], a slot the leader finds more than this long after it came
/// counts as missed and is skipped. Long enough for a leader's handover (a lease and a tick),
/// short enough that a job is not run an outage late.
pub const LATE_AFTER: Duration = Duration::from_secs(60);

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
        let pool = self.client.db();
        // Slots are whole seconds; cron arithmetic on a time with a fraction would carry the
        // fraction into the slot, and two passes would then see two "different" slots.
        let now = database_now(pool).await?.trunc_subsecs(0);
        let late_after = chrono::Duration::from_std(LATE_AFTER).unwrap_or(chrono::Duration::MAX);
        let mut fired = Vec::new();
        for periodic in periodic_list(pool).await? {
            if !periodic.enabled {
                continue;
            }
            let schedule = match Schedule::new(&periodic.cron, &periodic.timezone) {
                Ok(schedule) => schedule,
                Err(problem) => {
                    periodic_note(pool, &periodic.name, None, Some(&problem)).await?;
                    continue;
                }
            };
            let since = periodic
                .last_slot
                .max(periodic.skipped_to)
                .unwrap_or(periodic.created_at)
                .trunc_subsecs(0);
            let max = usize::try_from(periodic.catch_up_max).unwrap_or(1);
            let Some(plan) =
                catch_up::plan(&schedule, since, now, periodic.catch_up, max, late_after)
            else {
                let problem = format!("cron expression {:?} has no next slot", periodic.cron);
                periodic_note(pool, &periodic.name, None, Some(&problem)).await?;
                continue;
            };
            if let Some((first, last)) = plan.skip {
                if periodic_skip(pool, &periodic.name, first, last).await? {
                    info!(
                        periodic = %periodic.name,
                        catch_up = %periodic.catch_up,
                        skipped_from = %first,
                        skipped_to = %last,
                        "skipped missed slots of a periodic job"
                    );
                }
            }
            if plan.fire.is_empty() {
                periodic_note(
                    pool,
                    &periodic.name,
                    plan.next_at,
                    periodic.error.as_deref(),
                )
                .await?;
                continue;
            }
            for slot in plan.fire {
                // Nothing enqueued: the schedule was paused or removed meanwhile, another
                // leader fired the slot, or the target is expunged (the row says so). The
                // later slots wait for the next pass rather than try the same again.
                let Some(job_id) = periodic_fire(pool, &periodic.name, slot, plan.next_at).await?
                else {
                    break;
                };
                fired.push(Fired {
                    name: periodic.name.clone(),
                    slot,
                    job_id,
                });
            }
        }
        Ok(fired)
    }
}

impl Service for Scheduler {
    type Report = Vec<Fired>;

    fn name(&self) -> &'static str {
        "scheduler"
    }

    async fn run_once(&self) -> bosun_queue::Result<Vec<Fired>> {
        Scheduler::run_once(self).await
    }

    fn report(&self, fired: &Vec<Fired>) {
        for f in fired {
            info!(periodic = %f.name, slot = %f.slot, job = f.job_id, "fired periodic job");
        }
    }
}
