//! The slots of a cron schedule read in a time zone, as instants in order.
//!
//! The cron expression is matched against wall-clock times in the zone. Where the zone's
//! offset changes, a wall-clock time can be missing (clocks go forward) or happen twice
//! (clocks go back). Bosun follows the rules of the Open Cron Pattern Specification, which
//! croner implements, with a schedule of one time of day (seconds, minutes and hours each one
//! value, e.g. `30 2 * * *`) told apart from the others (`*`, steps or lists there):
//!
//! - a missing time: a time-of-day schedule fires once, at the first instant after the gap
//!   (`30 2 * * *` in Europe/Berlin fires at 03:00 on the day clocks go from 02:00 to 03:00);
//!   other schedules lose the times that do not exist (`*/30 * * * *` fires at 01:30 and
//!   03:00), since they measure elapsed time;
//! - a repeated time: a time-of-day schedule fires once, at the first of the two instants;
//!   other schedules fire at both (`*/30 * * * *` keeps firing every half hour of real time).
//!
//! croner's own search walks wall-clock time, and in the repeated hour that does not give
//! instants in order (an instant of the second pass can come after one of the first pass that
//! it found later). The scheduler needs them in order, since a schedule's record only moves
//! forward, so this module walks real time instead: in stretches of constant offset, where
//! wall clock and real time move together, croner matches wall-clock times (evaluated as if
//! they were UTC) and the offset turns them into instants; at each change of offset the rules
//! above decide.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;

/// Offset changes are looked for at this step (then pinned to the second by bisection): zones
/// change their offset at most a few times a year, never twice within six hours.
const TRANSITION_PROBE: Duration = Duration::hours(6);

/// A slot is looked for across at most this many offset changes (two a year for a century);
/// a cron expression that matches no time in that span has no next slot.
const MAX_STRETCHES: usize = 200;

/// A cron schedule read in a time zone.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: croner::Cron,
    zone: Tz,
    /// One time of day: fires once where that time is missing or repeated.
    time_of_day: bool,
}

impl Schedule {
    /// Parse `cron` and the IANA zone name `zone`, or say which does not parse.
    pub(crate) fn new(cron: &str, zone: &str) -> Result<Schedule, String> {
        let cron = parse_cron(cron)?;
        let zone = parse_zone(zone)?;
        let time_of_day = cron.determine_job_type() == croner::JobType::FixedTime;
        Ok(Schedule {
            cron,
            zone,
            time_of_day,
        })
    }

    /// The first slot after `after` (not `after` itself), in whole seconds; `None` when the
    /// expression matches no time in the next century or so.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Slots are whole seconds: a fraction would be carried into every slot found.
        let mut from = after.trunc_subsecs(0);
        // At the start of a stretch after an offset change the stretch's first instant can be
        // a slot itself; at `after` it cannot.
        let mut inclusive = false;
        for _ in 0..MAX_STRETCHES {
            let offset = self.offset_at(from);
            let wall = from.naive_utc() + offset;
            let matched = self
                .cron
                .find_next_occurrence(&Utc.from_utc_datetime(&wall), inclusive)
                .ok()?
                .naive_utc();
            let candidate = (matched - offset).and_utc();
            match self.offset_change(from, candidate) {
                None => {
                    if self.time_of_day && self.is_second_pass(matched, candidate) {
                        from = candidate;
                        inclusive = false;
                        continue;
                    }
                    return Some(candidate);
                }
                Some(change) => {
                    let after_change = self.offset_at(change);
                    if self.time_of_day && after_change > offset {
                        // Clocks went forward: wall-clock times from `change + offset` up to
                        // `change + after_change` do not exist. One of them that matches fires
                        // at the first instant after the gap.
                        let gap_start = change.naive_utc() + offset;
                        let gap_end = change.naive_utc() + after_change;
                        let in_gap = self
                            .cron
                            .find_next_occurrence(&Utc.from_utc_datetime(&gap_start), true)
                            .is_ok_and(|m| m.naive_utc() < gap_end);
                        if in_gap {
                            return Some(change);
                        }
                    }
                    from = change;
                    inclusive = true;
                }
            }
        }
        None
    }

    /// The zone's offset from UTC at `at`.
    fn offset_at(&self, at: DateTime<Utc>) -> Duration {
        let seconds = self
            .zone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc();
        Duration::seconds(i64::from(seconds))
    }

    /// The first instant in `(from, to]` at which the offset differs from the one at `from`.
    fn offset_change(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let offset = self.offset_at(from);
        let mut before = from;
        while before < to {
            let probe = (before + TRANSITION_PROBE).min(to);
            if self.offset_at(probe) == offset {
                before = probe;
                continue;
            }
            // The offset is `offset` at `before` and another at `after`: halve to the second,
            // in whole seconds (both ends are whole seconds, and so stays every slot).
            let mut after = probe;
            while after - before > Duration::seconds(1) {
                let middle = before + Duration::seconds((after - before).num_seconds() / 2);
                if self.offset_at(middle) == offset {
                    before = middle;
                } else {
                    after = middle;
                }
            }
            return Some(after);
        }
        None
    }

    /// Whether `instant`, whose wall-clock time is `wall`, is the later of the two instants of
    /// a wall-clock time that happens twice.
    fn is_second_pass(&self, wall: NaiveDateTime, instant: DateTime<Utc>) -> bool {
        match self.zone.from_local_datetime(&wall) {
            chrono::LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc) < instant,
            _ => false,
        }
    }
}

/// Parse a cron expression, or say why it does not parse.
pub(crate) fn parse_cron(cron: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(cron)
        .map_err(|error| format!("cron expression {cron:?} does not parse: {error}"))
}

/// Parse an IANA time zone name, or say that it is not one.
pub(crate) fn parse_zone(zone: &str) -> Result<Tz, String> {
    Tz::from_str(zone).map_err(|_| {
        format!("time zone {zone:?} is not an IANA time zone name such as \"Europe/Berlin\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The slots after `from` up to `to`, as RFC 3339 UTC times.
    fn slots(cron: &str, zone: &str, from: &str, to: &str) -> Vec<String> {
        let schedule = Schedule::new(cron, zone).unwrap();
        let (mut from, to) = (at(from), at(to));
        let mut out = Vec::new();
        while let Some(slot) = schedule.next_after(from).filter(|slot| *slot <= to) {
            assert_eq!(
                slot.timestamp_subsec_nanos(),
                0,
                "{slot}: slots are whole seconds"
            );
            out.push(slot.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            from = slot;
        }
        out
    }

    #[test]
    fn utc_is_croner_unchanged() {
        assert_eq!(
            slots(
                "*/20 * * * *",
                "UTC",
                "2026-06-01T10:00:00Z",
                "2026-06-01T11:00:00Z"
            ),
            [
                "2026-06-01T10:20:00Z",
                "2026-06-01T10:40:00Z",
                "2026-06-01T11:00:00Z"
            ]
        );
        let schedule = Schedule::new("0 0 * * *", "UTC").unwrap();
        assert_eq!(
            schedule.next_after(at("2026-06-01T10:00:00.750Z")),
            Some(at("2026-06-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_time_of_day_is_local_all_year() {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(
            slots(
                "0 9 * * *",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T00:00:00Z"
            ),
            [
                "2026-03-28T08:00:00Z",
                "2026-03-29T07:00:00Z",
                "2026-03-30T07:00:00Z"
            ]
        );
        assert_eq!(
            slots(
                "0 9 * * *",
                "America/New_York",
                "2026-11-01T00:00:00Z",
                "2026-11-03T00:00:00Z"
            ),
            ["2026-11-01T14:00:00Z", "2026-11-02T14:00:00Z"]
        );
    }

    #[test]
    fn a_time_of_day_in_the_skipped_hour_fires_once_after_the_gap() {
        // On 2026-03-29 Berlin's clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
        assert_eq!(
            slots(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T00:00:00Z"
            ),
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z"
            ]
        );
    }

    #[test]
    fn a_time_of_day_in_the_repeated_hour_fires_once_at_its_first_pass() {
        // On 2026-10-25 Berlin's clocks go back from 03:00 CEST to 02:00 CET (01:00 UTC):
        // 02:30 is 00:30 UTC and again 01:30 UTC.
        assert_eq!(
            slots(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-23T12:00:00Z",
                "2026-10-27T00:00:00Z"
            ),
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z"
            ]
        );
        // Also when the search starts between the two passes.
        let schedule = Schedule::new("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            schedule.next_after(at("2026-10-25T01:00:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn an_interval_loses_missing_times_and_keeps_both_passes_of_repeated_ones() {
        // From a start that is an odd number of seconds before the change of clock.
        assert_eq!(
            slots(
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-10-24T23:40:01Z",
                "2026-10-25T01:00:00Z"
            ),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z"
            ]
        );
        assert_eq!(
            slots(
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-03-29T00:00:00Z",
                "2026-03-29T02:00:00Z"
            ),
            [
                "2026-03-29T00:30:00Z", // 01:30 CET
                "2026-03-29T01:00:00Z", // 03:00 CEST
                "2026-03-29T01:30:00Z",
                "2026-03-29T02:00:00Z"
            ]
        );
        assert_eq!(
            slots(
                "*/30 * * * *",
                "Europe/Berlin",
                "2026-10-24T23:00:00Z",
                "2026-10-25T02:00:00Z"
            ),
            [
                "2026-10-24T23:30:00Z", // 01:30 CEST
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T01:30:00Z", // 02:30 CET
                "2026-10-25T02:00:00Z"  // 03:00 CET
            ]
        );
        // From inside the repeated hour, the next slot is the next half hour of real time.
        let schedule = Schedule::new("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            schedule.next_after(at("2026-10-25T00:40:00Z")),
            Some(at("2026-10-25T01:00:00Z"))
        );
    }

    #[test]
    fn a_list_of_hours_is_not_a_time_of_day() {
        assert_eq!(
            slots(
                "0 1,2 * * *",
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                "2026-10-25T12:00:00Z"
            ),
            [
                "2026-10-24T23:00:00Z", // 01:00 CEST
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T01:00:00Z"  // 02:00 CET
            ]
        );
    }

    #[test]
    fn a_zone_whose_offset_changes_by_half_an_hour() {
        // Lord Howe Island goes from +10:30 to +11 on 2026-10-04 at 02:00 local.
        assert_eq!(
            slots(
                "15 2 * * *",
                "Australia/Lord_Howe",
                "2026-10-02T12:00:00Z",
                "2026-10-05T12:00:00Z"
            ),
            [
                "2026-10-02T15:45:00Z",
                "2026-10-03T15:30:00Z", // 02:15 did not exist: 02:30 +11
                "2026-10-04T15:15:00Z"
            ]
        );
    }

    #[test]
    fn an_expression_that_never_matches_has_no_next_slot() {
        let schedule = Schedule::new("0 0 30 2 *", "Europe/Berlin").unwrap();
        assert_eq!(schedule.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn zone_names_are_iana_names() {
        assert!(parse_zone("Europe/Berlin").is_ok());
        assert!(parse_zone("UTC").is_ok());
        for bad in [
            "",
            "europe/berlin",
            "Mars/Olympus_Mons",
            "localtime",
            "+02:00",
            "UTC\n",
        ] {
            let error = parse_zone(bad).unwrap_err();
            assert!(error.contains("is not an IANA time zone name"), "{error}");
        }
    }
}
