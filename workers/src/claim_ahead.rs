//! The claim-ahead policy: how many jobs a queue's producer may hold, how many claims it may
//! have in flight, and how much each one asks for.
//!
//! Room is counted in jobs held: claimed and not yet finished, whether running or waiting for
//! a slot. For long jobs a worker holds at most one job per slot and claims as soon as a slot
//! frees, like a plain worker pool. For short jobs (under [`SHORT_JOB`] on average) a slot
//! that waits for the next claim's round trip runs nothing for as long as many jobs take, so
//! the worker also holds the jobs its slots get through in [`AHEAD`], up to [`MAX_ROOM`] jobs
//! in all: the next batch is claimed while the current one runs, and claims wait until half
//! that room is free, so that each one brings a batch rather than a job or two. Jobs held but
//! not started are a short local queue, a few tens of milliseconds of work at most.
//!
//! Why so much room for the shortest jobs: a claim costs the database a fixed part (its
//! statement, its commit, walking the claim index to the first due job) and a part per job,
//! and one claim brings one batch; small batches spend most of each claim on the fixed part.
//!
//! Jobs count as short only on evidence that would have seen the slow ones (see
//! [`RunTimes::room`]): a queue's fast jobs finish first, so its first samples are all fast
//! ones, and on a queue that mixes fast and slow jobs the slow ones hold their slots while
//! the average says "short". A queue holds one job per slot until it knows better, and while
//! any of its handlers runs long, so long jobs are never hoarded away from other replicas.
//!
//! Claims in flight: while a backlog of short jobs lasts and no other worker serves the
//! queue, [`CLAIMS_IN_FLIGHT`] claims, each for an equal share of the room. One claim at a
//! time leaves the database idle while a claim's commit and reply travel and the worker
//! handles its rows; the next claim can use that time. Where other workers serve the queue,
//! their claims overlap this worker's already, and a second claim each only has every claim
//! skip more rows that others have locked.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

use bosun_queue::{liveness::worker_has_peers, Db};
use tracing::debug;

/// Jobs whose handlers take less than this on average are claimed ahead.
const SHORT_JOB: Duration = Duration::from_millis(5);
/// How much work, in time across all slots, a worker of short jobs holds beyond its slots.
const AHEAD: Duration = Duration::from_millis(50);
/// Handlers a queue must have seen finish before it may claim ahead (see [`RunTimes::room`]).
const WARM_UP_SAMPLES: u64 = 32;
/// Most jobs a queue of short jobs holds (unless its concurrency is higher), so claims bring
/// up to half of it: large enough that a claim's fixed cost is a small part of it, small
/// enough that what is held is tens of milliseconds of work.
pub(crate) const MAX_ROOM: usize = 1024;
/// Claims in flight at once while a backlog of short jobs lasts on a queue no other worker
/// serves.
const CLAIMS_IN_FLIGHT: usize = 2;
/// How often a worker in a backlog looks again for other live workers on its queue, once it
/// has been at it for a while: a few trivial queries a second, next to the hundreds of claims
/// and completions of a backlog.
const PEERS_RECHECK: Duration = Duration::from_millis(250);
/// The first interval between those lookups; it doubles up to [`PEERS_RECHECK`] (see
/// [`Peers`]).
const PEERS_RECHECK_FIRST: Duration = Duration::from_millis(20);

/// How long this queue's handlers take, as a moving average, and whether they can be trusted
/// to be short (see [`RunTimes::room`]).
pub(crate) struct RunTimes {
    /// The moving average in microseconds; `u64::MAX` before the first sample.
    mean: AtomicU64,
    samples: AtomicU64,
    /// When the first sample came.
    first: OnceLock<Instant>,
    /// Handlers of the queue running right now for longer than [`AHEAD`].
    long: AtomicUsize,
}

/// A handler counted as running long in its queue's [`RunTimes`], until dropped.
pub(crate) struct RunningLong<'a>(&'a AtomicUsize);

impl Drop for RunningLong<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RunTimes {
    pub(crate) fn new() -> RunTimes {
        RunTimes {
            mean: AtomicU64::new(u64::MAX),
            samples: AtomicU64::new(0),
            first: OnceLock::new(),
            long: AtomicUsize::new(0),
        }
    }

    /// Count one handler that ran for `ran`.
    pub(crate) fn record(&self, ran: Duration) {
        self.first.get_or_init(Instant::now);
        self.samples.fetch_add(1, Ordering::Relaxed);
        let sample = u64::try_from(ran.as_micros()).unwrap_or(u64::MAX - 1);
        let _ = self
            .mean
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
                Some(if mean == u64::MAX {
                    sample
                } else {
                    mean - mean / 8 + sample / 8
                })
            });
    }

    /// Resolves once a handler started now has run for [`AHEAD`], with a mark that counts it
    /// as running long until it ends.
    pub(crate) async fn running_long(&self) -> RunningLong<'_> {
        tokio::time::sleep(AHEAD).await;
        self.long.fetch_add(1, Ordering::Relaxed);
        RunningLong(&self.long)
    }

    /// How many jobs a queue of `concurrency` slots may hold: one per slot, and for short
    /// jobs as many more as the slots get through in [`AHEAD`], within [`MAX_ROOM`].
    ///
    /// Jobs count as short only with at least [`WARM_UP_SAMPLES`] samples, the first of them
    /// [`AHEAD`] ago or more, and no handler of the queue running longer than [`AHEAD`] right
    /// now.
    pub(crate) fn room(&self, concurrency: usize) -> usize {
        let mean = self.mean.load(Ordering::Relaxed);
        let warm = self.samples.load(Ordering::Relaxed) >= WARM_UP_SAMPLES
            && self
                .first
                .get()
                .is_some_and(|first| first.elapsed() >= AHEAD);
        if !warm
            || self.long.load(Ordering::Relaxed) > 0
            || u128::from(mean) >= SHORT_JOB.as_micros()
        {
            return concurrency;
        }
        let ahead = concurrency as u128 * AHEAD.as_micros() / u128::from(mean).max(1);
        let ahead = usize::try_from(ahead).unwrap_or(usize::MAX);
        concurrency
            .saturating_add(ahead)
            .min(MAX_ROOM.max(concurrency))
    }
}

/// What the producer's next claim may do, given the room the queue's run times allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Jobs the queue may hold in all.
    pub(crate) room: usize,
    /// Claims that may be in flight at once.
    pub(crate) in_flight: usize,
}

impl Plan {
    /// Whether the queue holds jobs beyond its slots.
    fn ahead(self, concurrency: usize) -> bool {
        self.room > concurrency
    }

    /// How many free places the next claim waits for: half the room in a backlog of short
    /// jobs, so that each claim brings a batch; otherwise one.
    pub(crate) fn wanted(self, concurrency: usize, backlog: bool) -> usize {
        if self.ahead(concurrency) && backlog {
            self.room / 2
        } else {
            1
        }
    }

    /// The most jobs one claim takes: an equal share of the room per claim in flight.
    pub(crate) fn most(self) -> usize {
        self.room / self.in_flight
    }
}

/// The plan for a queue of `concurrency` slots, `backlog` when its last claim came back full.
/// Looks up other workers on the queue (through `peers`) only when a second claim in flight
/// is in question.
pub(crate) async fn plan(
    run_times: &RunTimes,
    concurrency: usize,
    backlog: bool,
    peers: &mut Peers,
    db: Db<'_>,
    queue: &str,
) -> Plan {
    let room = run_times.room(concurrency);
    let in_flight = if room > concurrency && backlog && !peers.any(db, queue).await {
        CLAIMS_IN_FLIGHT
    } else {
        1
    };
    Plan { room, in_flight }
}

/// Whether other live workers serve the queue, as last looked up. Until the first answer,
/// and when the lookup fails, the last answer stands (at first: none).
///
/// The lookups come quickly at first and then slow down to every [`PEERS_RECHECK`]: workers
/// started together (a deploy, a scale-up) register within a few tens of milliseconds of each
/// other, and one that looked too early would keep a second claim in flight against the
/// others for a quarter of a second.
pub(crate) struct Peers {
    worker_id: std::sync::Arc<str>,
    checked: Option<Instant>,
    every: Duration,
    any: bool,
}

impl Peers {
    /// Peers of the worker `worker_id`.
    pub(crate) fn of(worker_id: std::sync::Arc<str>) -> Peers {
        Peers {
            worker_id,
            checked: None,
            every: PEERS_RECHECK_FIRST,
            any: false,
        }
    }

    async fn any(&mut self, db: Db<'_>, queue: &str) -> bool {
        if self.checked.is_none_or(|at| at.elapsed() >= self.every) {
            self.checked = Some(Instant::now());
            self.every = (self.every * 2).min(PEERS_RECHECK);
            match worker_has_peers(db, &self.worker_id, queue).await {
                Ok(any) => self.any = any,
                Err(error) => debug!(%queue, %error, "looking for other workers failed"),
            }
        }
        self.any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue's run times after `runs` samples of `ran`, the first of them `ago`.
    fn after(runs: u64, ran: Duration, ago: Duration) -> RunTimes {
        let times = RunTimes::new();
        times
            .first
            .set(Instant::now().checked_sub(ago).expect("a past instant"))
            .expect("no sample yet");
        for _ in 0..runs {
            times.record(ran);
        }
        times
    }

    fn warmed(ran: Duration) -> RunTimes {
        after(WARM_UP_SAMPLES, ran, AHEAD)
    }

    #[test]
    fn a_queue_holds_one_job_per_slot_until_it_has_seen_its_jobs_are_short() {
        assert_eq!(RunTimes::new().room(32), 32);
        assert_eq!(warmed(Duration::from_millis(5)).room(32), 32);
        assert_eq!(warmed(Duration::from_secs(3)).room(1), 1);
    }

    #[test]
    fn a_queue_claims_ahead_only_after_a_warm_up_in_samples_and_in_time() {
        let fast = Duration::from_millis(1);
        assert_eq!(after(1, fast, AHEAD).room(32), 32, "one sample");
        assert_eq!(after(WARM_UP_SAMPLES - 1, fast, AHEAD).room(32), 32);
        assert_eq!(
            after(WARM_UP_SAMPLES, fast, AHEAD / 2).room(32),
            32,
            "the first sample too recent: slow jobs started with it may still be running"
        );
        assert!(warmed(fast).room(32) > 32);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_running_long_stops_its_queue_claiming_ahead_until_it_ends() {
        let times = warmed(Duration::from_millis(1));
        let ahead = times.room(32);
        assert!(ahead > 32);
        let mark = times.running_long().await;
        assert_eq!(times.room(32), 32);
        drop(mark);
        assert_eq!(times.room(32), ahead);
    }

    #[test]
    fn short_jobs_are_held_for_the_time_the_slots_take_within_the_most_room() {
        // 32 slots at 4 ms a job get through 400 jobs in 50 ms.
        assert_eq!(warmed(Duration::from_millis(4)).room(32), 32 + 400);
        assert_eq!(warmed(Duration::from_micros(10)).room(32), MAX_ROOM);
        assert_eq!(warmed(Duration::ZERO).room(32), MAX_ROOM);
        // More slots than the most room: one job per slot still.
        assert_eq!(warmed(Duration::ZERO).room(5000), 5000);
    }

    #[test]
    fn a_backlog_of_short_jobs_waits_for_half_the_room_and_splits_it_between_claims() {
        let plan = Plan {
            room: 1024,
            in_flight: 2,
        };
        assert_eq!(plan.wanted(32, true), 512);
        assert_eq!(
            plan.wanted(32, false),
            1,
            "no backlog: claim as soon as a place frees"
        );
        assert_eq!(plan.most(), 512);
        let slots_only = Plan {
            room: 32,
            in_flight: 1,
        };
        assert_eq!(
            slots_only.wanted(32, true),
            1,
            "long jobs: one place at a time"
        );
        assert_eq!(slots_only.most(), 32);
    }
}
