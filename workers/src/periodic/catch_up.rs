//! Which due slots of a schedule a scheduler's pass fires, and which it skips.
//!
//! The due slots are those after the schedule's record (the last slot fired or skipped, or
//! its creation) up to now. When the leader keeps up that is the one slot that just came;
//! after downtime, or a pause, it can be many, and the schedule's [`CatchUp`] policy decides:
//! `latest` fires the latest, `all` the latest `catch_up_max` in order, `none` the latest only
//! if it is on time. Whatever does not fire is skipped, as one range from the oldest due slot
//! to the newest one not fired: every due slot older than the first one fired.
//!
//! A schedule every second, down for a month, has millions of due slots, so they are not
//! walked from the oldest: the search looks back from now over a window that doubles until it
//! holds more slots than the pass keeps (or reaches back to the record), and walks only that.

use std::collections::VecDeque;

use bosun_queue::periodic::CatchUp;
use chrono::{DateTime, Duration, Utc};

use super::slots::Schedule;

/// What a pass does with one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Slots to fire, oldest first.
    pub(crate) fire: Vec<DateTime<Utc>>,
    /// Due slots not fired: every slot from the first to the second.
    pub(crate) skip: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The first slot after now.
    pub(crate) next_at: Option<DateTime<Utc>>,
}

/// The plan for `schedule` recorded up to `since`, at `now`. `late_after`: how late a slot may
/// be found and still fire under [`CatchUp::None`]; `max`: how many [`CatchUp::All`] fires.
/// `None` when the schedule has no slot after `since` at all.
pub(crate) fn plan(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: CatchUp,
    max: usize,
    late_after: Duration,
) -> Option<Plan> {
    let first_due = schedule.next_after(since)?;
    if first_due > now {
        return Some(Plan {
            fire: Vec::new(),
            skip: None,
            next_at: Some(first_due),
        });
    }
    let keep = match policy {
        CatchUp::Latest | CatchUp::None => 1,
        CatchUp::All => max.max(1),
    };
    let (mut fire, mut last_skipped) = latest_due(schedule, since, now, keep);
    if policy == CatchUp::None && fire.last().is_some_and(|latest| now - *latest > late_after) {
        last_skipped = fire.pop();
    }
    let last_due = fire.last().copied().or(last_skipped)?;
    Some(Plan {
        fire,
        skip: last_skipped.map(|last| (first_due, last)),
        next_at: schedule.next_after(last_due),
    })
}

/// The latest `keep` slots in `(since, now]`, oldest first, and the slot just before them when
/// there is one in that range.
fn latest_due(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    keep: usize,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut window = Duration::minutes(1);
    loop {
        let start = now
            .checked_sub_signed(window)
            .map_or(since, |start| start.max(since));
        // The last keep + 1 slots of (start, now].
        let mut latest = VecDeque::with_capacity(keep + 1);
        let mut from = start;
        while let Some(slot) = schedule.next_after(from).filter(|slot| *slot <= now) {
            if latest.len() == keep + 1 {
                latest.pop_front();
            }
            latest.push_back(slot);
            from = slot;
        }
        if latest.len() > keep || start == since {
            let before = (latest.len() > keep).then(|| latest.pop_front()).flatten();
            return (latest.into(), before);
        }
        window = window * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn plan_at(cron: &str, since: &str, now: &str, policy: CatchUp, max: usize) -> Plan {
        let schedule = Schedule::new(cron, "UTC").unwrap();
        plan(
            &schedule,
            at(since),
            at(now),
            policy,
            max,
            Duration::minutes(1),
        )
        .unwrap()
    }

    #[test]
    fn nothing_due_shows_the_next_slot() {
        let plan = plan_at(
            "0 * * * *",
            "2026-06-01T10:00:00Z",
            "2026-06-01T10:59:59Z",
            CatchUp::All,
            5,
        );
        assert_eq!(
            plan,
            Plan {
                fire: vec![],
                skip: None,
                next_at: Some(at("2026-06-01T11:00:00Z"))
            }
        );
    }

    #[test]
    fn latest_fires_the_latest_and_skips_the_rest() {
        let plan = plan_at(
            "0 * * * *",
            "2026-06-01T05:30:00Z",
            "2026-06-01T10:20:00Z",
            CatchUp::Latest,
            5,
        );
        assert_eq!(plan.fire, [at("2026-06-01T10:00:00Z")]);
        assert_eq!(
            plan.skip,
            Some((at("2026-06-01T06:00:00Z"), at("2026-06-01T09:00:00Z")))
        );
        assert_eq!(plan.next_at, Some(at("2026-06-01T11:00:00Z")));
        // One due slot: nothing skipped.
        let plan = plan_at(
            "0 * * * *",
            "2026-06-01T09:30:00Z",
            "2026-06-01T10:20:00Z",
            CatchUp::Latest,
            5,
        );
        assert_eq!(
            (plan.fire, plan.skip),
            (vec![at("2026-06-01T10:00:00Z")], None)
        );
    }

    #[test]
    fn all_fires_every_due_slot_up_to_its_cap() {
        let plan = plan_at(
            "0 * * * *",
            "2026-06-01T07:30:00Z",
            "2026-06-01T10:20:00Z",
            CatchUp::All,
            5,
        );
        assert_eq!(
            plan.fire,
            [
                at("2026-06-01T08:00:00Z"),
                at("2026-06-01T09:00:00Z"),
                at("2026-06-01T10:00:00Z")
            ]
        );
        assert_eq!(plan.skip, None);
        let plan = plan_at(
            "0 * * * *",
            "2026-06-01T03:30:00Z",
            "2026-06-01T10:20:00Z",
            CatchUp::All,
            3,
        );
        assert_eq!(
            plan.fire,
            [
                at("2026-06-01T08:00:00Z"),
                at("2026-06-01T09:00:00Z"),
                at("2026-06-01T10:00:00Z")
            ]
        );
        assert_eq!(
            plan.skip,
            Some((at("2026-06-01T04:00:00Z"), at("2026-06-01T07:00:00Z")))
        );
    }

    #[test]
    fn all_after_a_long_outage_of_a_schedule_every_second() {
        // Two million due slots; the pass looks at a few hundred of them.
        let plan = plan_at(
            "* * * * * *",
            "2026-05-01T00:00:00Z",
            "2026-05-24T12:00:00Z",
            CatchUp::All,
            100,
        );
        assert_eq!(plan.fire.len(), 100);
        assert_eq!(plan.fire.first(), Some(&at("2026-05-24T11:58:21Z")));
        assert_eq!(plan.fire.last(), Some(&at("2026-05-24T12:00:00Z")));
        assert_eq!(
            plan.skip,
            Some((at("2026-05-01T00:00:01Z"), at("2026-05-24T11:58:20Z")))
        );
    }

    #[test]
    fn none_fires_only_a_slot_found_on_time() {
        let late = plan_at(
            "0 * * * *",
            "2026-06-01T05:30:00Z",
            "2026-06-01T10:20:00Z",
            CatchUp::None,
            5,
        );
        assert!(late.fire.is_empty());
        assert_eq!(
            late.skip,
            Some((at("2026-06-01T06:00:00Z"), at("2026-06-01T10:00:00Z")))
        );
        assert_eq!(late.next_at, Some(at("2026-06-01T11:00:00Z")));
        let on_time = plan_at(
            "0 * * * *",
            "2026-06-01T05:30:00Z",
            "2026-06-01T10:00:40Z",
            CatchUp::None,
            5,
        );
        assert_eq!(on_time.fire, [at("2026-06-01T10:00:00Z")]);
        assert_eq!(
            on_time.skip,
            Some((at("2026-06-01T06:00:00Z"), at("2026-06-01T09:00:00Z")))
        );
    }
}
