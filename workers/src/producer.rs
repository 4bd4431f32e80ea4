//! One producer per queue: claims due jobs in batches sized by the room this worker has for
//! them, and feeds them to executor tasks, each of which holds one of the queue's
//! `concurrency` slots while its handler runs.
//!
//! Room is counted in jobs held: claimed and not yet finished, whether running or waiting for
//! a slot. For long jobs a worker holds at most one job per slot and claims as soon as a slot
//! frees, like a plain worker pool. For short jobs (under [`SHORT_JOB`] on average) a slot
//! that waits for the next claim's round trip runs nothing for as long as many jobs take, so
//! the worker also holds the jobs its slots get through in [`AHEAD`], up to [`MAX_ROOM`]
//! jobs in all: the next batch is claimed while the current one runs, and claims wait until
//! half that room is free, so that each one brings a batch rather than a job or two. Jobs
//! held but not started are a short local queue, a few tens of milliseconds of work at most.
//! Jobs count as short only on evidence that would have seen the slow ones (see
//! [`RunTimes::room`]): a queue that mixes fast and slow jobs holds one job per slot while a
//! slow one runs, so long jobs are never hoarded away from other replicas.
//!
//! Why so much room for the shortest jobs: a claim costs the database a fixed part (its
//! statement, its commit, walking the claim index to the first due job) and a part per job,
//! and one producer claims one batch at a time; small batches spend most of each claim on
//! the fixed part (see [`MAX_ROOM`]).
//!
//! A batch that filled its room means more jobs may be waiting, so the producer claims again
//! as soon as there is room; otherwise it sleeps until a notification, the poll tick, or
//! shutdown. Inserts notify only while some worker is marked as waiting on their queue
//! (`bosun.waiting_workers`: a notifying commit waits for every other one). A listening
//! producer's claims outside a backlog mark it in the same transaction when they come back
//! short (`bosun.claim_jobs`), so it sleeps right after one of those; a claim made in a backlog does
//! not mark (it would wait for the inserts committing meanwhile), so when one comes back
//! short the producer claims once more, marking, before it sleeps. A claim that fills its
//! room removes the mark. At shutdown, jobs claimed but not started are handed back at once.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{Duration, Instant},
};

use bosun_queue::{
    liveness::worker_has_peers,
    runtime::{job_claim, job_claim_or_wait},
    Job,
};
use sqlx::{pool::PoolConnection, Postgres};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, warn};

use crate::{executor::execute, pool::Shared};

const CLAIM_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Jobs whose handlers take less than this on average are claimed ahead.
const SHORT_JOB: Duration = Duration::from_millis(5);
/// How much work, in time across all slots, a worker of short jobs holds beyond its slots.
const AHEAD: Duration = Duration::from_millis(50);
/// Handlers a queue must have seen finish before it may claim ahead (see [`RunTimes::room`]).
const WARM_UP_SAMPLES: u64 = 32;
/// Most jobs a queue of short jobs holds (unless its concurrency is higher), so claims bring
/// up to half of it: large enough that a claim's fixed cost is a small part of it, small
/// enough that what is held is tens of milliseconds of work (docs/performance.md has the
/// runs that chose it).
const MAX_ROOM: usize = 1024;
/// Claims in flight at once while a backlog of short jobs lasts, each for up to an equal
/// share of the room, when no other worker serves the queue. One claim at a time left the
/// database's second core idle a fifth of the time: a claim's commit and reply, and the
/// worker's handling of its rows, are time the next claim can use. The database runs the two
/// one after the other, and their jobs start in the order the claims were made (see
/// [`ClaimTurn`]).
///
/// Where other workers serve the queue, their claims overlap this worker's already, and a
/// second claim each only has every claim skip more rows that others have locked, which
/// drains more slowly than one claim each.
const CLAIMS_IN_FLIGHT: usize = 2;
/// How often a worker in a backlog looks again for other live workers on its queue, once it
/// has been at it for a while: a few trivial queries a second, next to the hundreds of claims
/// and completions of a backlog.
const PEERS_RECHECK: Duration = Duration::from_millis(250);
/// The first interval between those lookups; it doubles up to [`PEERS_RECHECK`] (see
/// [`Peers`]).
const PEERS_RECHECK_FIRST: Duration = Duration::from_millis(20);

/// How long this queue's handlers take, as a moving average, and whether they can be trusted
/// to be short: a queue claims ahead only once it has seen that its jobs are short (see
/// [`RunTimes::room`]).
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
    fn new() -> RunTimes {
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
    /// Jobs count as short only on evidence that covers the queue's slow jobs too: at least
    /// [`WARM_UP_SAMPLES`] samples, the first of them [`AHEAD`] ago or more, and no handler
    /// of the queue running longer than [`AHEAD`] right now. A queue's fast jobs finish first
    /// and its slow ones last, so its first samples (at start, after a restart) are all fast
    /// ones; and on a queue that mixes fast and slow jobs the slow ones hold their slots while
    /// the average says "short". Jobs held beyond the slots would wait behind them.
    fn room(&self, concurrency: usize) -> usize {
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

/// What an executor holds for a job: its slot while the handler runs, and its place among
/// the jobs the queue holds until it finishes.
pub(crate) struct Reservation {
    pub(crate) _slot: OwnedSemaphorePermit,
    pub(crate) _place: OwnedSemaphorePermit,
    pub(crate) run_times: Arc<RunTimes>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    wake: Arc<Notify>,
    stop: CancellationToken,
    jobs: TaskTracker,
) {
    let capacity = MAX_ROOM.max(concurrency);
    let places = Arc::new(Semaphore::new(capacity));
    let run_times = Arc::new(RunTimes::new());
    let (claimed_tx, claimed_rx) = mpsc::unbounded_channel();
    let dispatcher = tokio::spawn(dispatch(
        Arc::clone(&shared),
        claimed_rx,
        Arc::new(Semaphore::new(concurrency)),
        Arc::clone(&run_times),
        stop.clone(),
        jobs,
    ));
    let queue: Arc<str> = queue.into();
    let mut claims = JoinSet::new();
    let mut error_backoff = Duration::from_millis(100);
    let mut backlog = false;
    let mut sleep = false;
    let mut peers = Peers::default();
    let turns = Arc::new(watch::Sender::new(0));
    let mut issued: u64 = 0;
    loop {
        // Room for how many jobs (see the module docs); beyond the slots only for short jobs.
        let allowed = run_times.room(concurrency);
        let ahead = allowed > concurrency;
        // Settle the claims that came back, and wait while as many are in flight as the
        // backlog allows.
        let in_flight = if ahead && backlog && !peers.any(&shared, &queue).await {
            CLAIMS_IN_FLIGHT
        } else {
            1
        };
        let settled = if claims.len() >= in_flight {
            tokio::select! {
                settled = claims.join_next() => settled,
                () = stop.cancelled() => break,
            }
        } else {
            claims.try_join_next()
        };
        if let Some(settled) = settled {
            match settled {
                Ok(Ok(ClaimResult { full, marked })) => {
                    error_backoff = Duration::from_millis(100);
                    backlog = full;
                    // A short claim lets a listening producer sleep only if it marked it as
                    // waiting; one made in the backlog did not, so the next claim does.
                    sleep = !full && (marked || !shared.config.listen);
                }
                Ok(Err(error)) => {
                    backlog = false;
                    warn!(%queue, %error, retry_in = ?error_backoff, "claiming failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(error_backoff) => {}
                        () = stop.cancelled() => break,
                    }
                    error_backoff = (error_backoff * 2).min(CLAIM_ERROR_BACKOFF_MAX);
                }
                Err(error) => warn!(%queue, %error, "a claim task failed"),
            }
            continue;
        }
        if sleep {
            // The last claim took every due job: wait for news.
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(shared.config.poll_interval) => {}
                () = stop.cancelled() => break,
            }
            sleep = false;
        }
        // How much of the room to wait for, and to take.
        let wanted = if ahead && backlog { allowed / 2 } else { 1 };
        let most = allowed / in_flight;
        let reserved = capacity - allowed;
        let Ok(need) = u32::try_from(reserved + wanted) else {
            return;
        };
        let mut room = tokio::select! {
            permits = Arc::clone(&places).acquire_many_owned(need) => match permits {
                Ok(permits) => permits,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        while room.num_permits() < reserved + most {
            match Arc::clone(&places).try_acquire_owned() {
                Ok(more) => room.merge(more),
                Err(_) => break,
            }
        }
        // The places beyond what is allowed go back now.
        drop(room.split(reserved));
        // The connection is taken here, in the order the claims are made, so that they reach
        // the database in that order too (see [`claim`]).
        let connection = tokio::select! {
            connection = shared.own().pool().acquire() => connection,
            () = stop.cancelled() => break,
        };
        claims.spawn(claim(
            Arc::clone(&shared),
            Arc::clone(&queue),
            ClaimTurn::new(&turns, issued),
            connection,
            room,
            MarksWaiting(shared.config.listen && !backlog),
            claimed_tx.clone(),
        ));
        issued += 1;
    }
    // Jobs of claims still in flight go to the dispatcher, which hands them back.
    while claims.join_next().await.is_some() {}
    drop(claimed_tx);
    let _ = dispatcher.await;
}

/// Whether other live workers serve the queue, as last looked up. Until the first answer,
/// and when the lookup fails, the last answer stands (at first: none).
///
/// The lookups come quickly at first and then slow down to every [`PEERS_RECHECK`]: workers
/// started together (a deploy, a scale-up) register within a few tens of milliseconds of each
/// other, and one that looked too early would keep a second claim in flight against the
/// others for a quarter of a second.
struct Peers {
    checked: Option<Instant>,
    every: Duration,
    any: bool,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            checked: None,
            every: PEERS_RECHECK_FIRST,
            any: false,
        }
    }
}

impl Peers {
    async fn any(&mut self, shared: &Shared, queue: &str) -> bool {
        if self.checked.is_none_or(|at| at.elapsed() >= self.every) {
            self.checked = Some(Instant::now());
            self.every = (self.every * 2).min(PEERS_RECHECK);
            match worker_has_peers(shared.own(), &shared.worker_id, queue).await {
                Ok(any) => self.any = any,
                Err(error) => debug!(%queue, %error, "looking for other workers failed"),
            }
        }
        self.any
    }
}

/// A claim's place in the order the producer made its claims: its jobs go to the dispatcher
/// only after those of every claim made before it.
///
/// Why: with two claims in flight, the database runs them one after the other
/// (`bosun.claim_jobs` takes a lock of the worker's and the queue's), so the later one takes
/// the due jobs after the earlier one's; but the replies are handled by two tasks, in either
/// order, and the later claim's jobs could start first (a job of priority 5 before one of
/// priority 0 that waited beside it).
struct ClaimTurn {
    turns: Arc<watch::Sender<u64>>,
    this: u64,
    passed: bool,
}

impl ClaimTurn {
    fn new(turns: &Arc<watch::Sender<u64>>, this: u64) -> ClaimTurn {
        ClaimTurn {
            turns: Arc::clone(turns),
            this,
            passed: false,
        }
    }

    /// Wait until every claim made before this one has handed over its jobs.
    async fn come(&self) {
        turn_comes(&self.turns, self.this).await;
    }

    /// Let the next claim hand over its jobs.
    fn pass(mut self) {
        self.turns.send_replace(self.this + 1);
        self.passed = true;
    }
}

async fn turn_comes(turns: &watch::Sender<u64>, this: u64) {
    let _ = turns.subscribe().wait_for(|t| *t == this).await;
}

impl Drop for ClaimTurn {
    /// A claim task that ended without passing its turn (it panicked) still passes it when
    /// it comes, or every later claim would wait for ever.
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        // Outside a runtime (its shutdown) no claim waits any more.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let turns = Arc::clone(&self.turns);
        let this = self.this;
        runtime.spawn(async move {
            turn_comes(&turns, this).await;
            turns.send_replace(this + 1);
        });
    }
}

/// Whether a claim marks its worker as waiting on the queue when it comes back short
/// ([`job_claim_or_wait`]). Claims made in a backlog do not: they would wait for the inserts
/// committing meanwhile, and a backlog's claims mostly come back full.
struct MarksWaiting(bool);

/// What a claim came back with: whether its jobs filled its room (more may be waiting), and
/// whether it marked the worker as waiting (it was [`MarksWaiting`] and came back short; unless
/// inserts held the queue's lock past its timeout, and then the worker finds jobs by polling).
struct ClaimResult {
    full: bool,
    marked: bool,
}

/// Claim as many jobs as `room` has places on `connection`, and send them to the dispatcher
/// in their turn, each with its place.
async fn claim(
    shared: Arc<Shared>,
    queue: Arc<str>,
    turn: ClaimTurn,
    connection: Result<PoolConnection<Postgres>, sqlx::Error>,
    mut room: OwnedSemaphorePermit,
    MarksWaiting(marking): MarksWaiting,
    claimed_tx: mpsc::UnboundedSender<Claimed>,
) -> bosun_queue::Result<ClaimResult> {
    let limit = room.num_permits();
    let claimed = match connection {
        Ok(mut connection) => {
            let (conn, kinds, worker) = (
                shared.own().on(&mut connection),
                &shared.kinds,
                &shared.worker_id,
            );
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            if marking {
                job_claim_or_wait(conn, &queue, kinds, limit, worker).await
            } else {
                job_claim(conn, &queue, kinds, limit, worker).await
            }
        }
        Err(error) => Err(error.into()),
    };
    // A failed claim takes its turn too, or the claims after it would wait for ever.
    turn.come().await;
    let result = claimed.map(|claimed| {
        let full = claimed.len() == limit;
        let took = ClaimResult {
            full,
            marked: marking && !full,
        };
        if !claimed.unreadable.is_empty() {
            tokio::spawn(crate::executor::fail_unreadable(
                Arc::clone(&shared),
                claimed.unreadable,
            ));
        }
        for job in claimed.jobs {
            crate::metrics::claimed(&job);
            let Some(place) = room.split(1) else { break };
            let saga = crate::executor::saga_of(&job);
            let cancel = shared.running.insert(job.id, job.attempt, saga);
            let _ = claimed_tx.send((job, place, cancel));
        }
        took
    });
    turn.pass();
    result
}

type Claimed = (Job, OwnedSemaphorePermit, CancellationToken);

/// Start claimed jobs as slots free up, in claim order. At shutdown, hand back the jobs that
/// have not started, including those of a claim that was in flight when shutdown began: the
/// channel is read until the producer has closed it.
async fn dispatch(
    shared: Arc<Shared>,
    mut claimed: mpsc::UnboundedReceiver<Claimed>,
    slots: Arc<Semaphore>,
    run_times: Arc<RunTimes>,
    stop: CancellationToken,
    jobs: TaskTracker,
) {
    let mut waiting = Vec::new();
    loop {
        let next = tokio::select! {
            next = claimed.recv() => next,
            () = stop.cancelled() => None,
        };
        let Some((job, place, cancel)) = next else {
            break;
        };
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.ok(),
            () = stop.cancelled() => None,
        };
        let Some(slot) = slot else {
            waiting.push(job);
            break;
        };
        let held = Reservation {
            _slot: slot,
            _place: place,
            run_times: Arc::clone(&run_times),
        };
        jobs.spawn(execute(Arc::clone(&shared), job, cancel, held));
    }
    while let Some((job, _, _)) = claimed.recv().await {
        waiting.push(job);
    }
    crate::executor::hand_back_unstarted(&shared, &waiting).await;
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

    #[tokio::test]
    async fn a_claim_that_never_passes_its_turn_does_not_hold_up_the_next() {
        let turns = Arc::new(watch::Sender::new(0));
        let first = ClaimTurn::new(&turns, 0);
        let second = ClaimTurn::new(&turns, 1);
        let third = ClaimTurn::new(&turns, 2);
        drop(second); // its task ended before its turn came
        first.come().await;
        first.pass();
        tokio::time::timeout(Duration::from_secs(5), third.come())
            .await
            .expect("the third claim's turn comes");
        third.pass();
        assert_eq!(*turns.borrow(), 3);
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
}
