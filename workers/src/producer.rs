//! One producer per queue: claims due jobs in batches sized by the room this worker has for
//! them ([`crate::claim_ahead`]), and passes them to the queue's dispatcher, which starts
//! each on an executor task as a slot frees.
//!
//! A batch that filled its room means more jobs may be waiting, so the producer claims again
//! as soon as there is room; otherwise it sleeps until a notification, the poll tick, or
//! shutdown. Inserts notify only while some worker is marked as waiting on their queue
//! (`bosun.waiting_workers`: a notifying commit waits for every other one). A listening
//! producer's claims outside a backlog mark it in the same transaction when they come back
//! short (`bosun.claim_jobs`), so it sleeps right after one of those; a claim made in a
//! backlog does not mark (it would wait for the inserts committing meanwhile), so when one
//! comes back short the producer claims once more, marking, before it sleeps. A claim that
//! fills its room removes the mark. At shutdown, jobs claimed but not started are handed
//! back at once.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bosun_queue::{
    runtime::{job_claim, job_claim_or_wait},
    PooledConnection,
};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::{
    claim_ahead::{self, Peers, Plan, RunTimes, MAX_ROOM},
    connections::OwnConnections,
    dispatch::{Claimed, Dispatcher},
    executor::Executor,
    outcome::Outcomes,
    running::RunningJobs,
};

const CLAIM_ERROR_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const CLAIM_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a queue's producer needs.
pub(crate) struct Producer {
    pub(crate) own: OwnConnections,
    pub(crate) running: RunningJobs,
    pub(crate) executor: Executor,
    pub(crate) outcomes: Outcomes,
    /// The kinds this worker runs: it claims only those.
    pub(crate) kinds: Arc<[String]>,
    pub(crate) worker_id: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) concurrency: usize,
    /// Whether the worker LISTENs (and so may sleep until a notification).
    pub(crate) listen: bool,
    pub(crate) poll_interval: Duration,
    /// Wakes this producer to claim now.
    pub(crate) wake: Arc<Notify>,
}

/// What the claim loop does after [`Producer::settle`].
enum Settled {
    /// Nothing came back, or room is left for another claim in flight: claim.
    Claim,
    /// A claim came back: plan again.
    Again,
    /// Shutdown.
    Stop,
}

/// Where the claim loop stands after the claims that came back.
struct Progress {
    /// The last claim filled its room: more jobs may be waiting.
    backlog: bool,
    /// The last claim took every due job (and marked the worker as waiting, if it listens):
    /// wait for news before the next.
    sleep: bool,
    error_backoff: Duration,
}

impl Progress {
    /// Take in a settled claim; returns how long to wait after a failed one.
    fn settle(
        &mut self,
        result: bosun_queue::Result<ClaimResult>,
        listen: bool,
    ) -> Option<Duration> {
        match result {
            Ok(ClaimResult { full, marked }) => {
                self.error_backoff = CLAIM_ERROR_BACKOFF_FIRST;
                self.backlog = full;
                // A short claim lets a listening producer sleep only if it marked it as
                // waiting; one made in the backlog did not, so the next claim does.
                self.sleep = !full && (marked || !listen);
                None
            }
            Err(_) => {
                self.backlog = false;
                let wait = self.error_backoff;
                self.error_backoff = (self.error_backoff * 2).min(CLAIM_ERROR_BACKOFF_MAX);
                Some(wait)
            }
        }
    }
}

impl Producer {
    /// Claim until `stop`; executor tasks go on `jobs`. Returns once the claims in flight
    /// have settled and the dispatcher has handed back what did not start.
    pub(crate) async fn run(self, stop: CancellationToken, jobs: TaskTracker) {
        let capacity = MAX_ROOM.max(self.concurrency);
        let places = Arc::new(Semaphore::new(capacity));
        let run_times = Arc::new(RunTimes::new());
        let (claimed_tx, claimed_rx) = mpsc::unbounded_channel();
        let dispatcher = Dispatcher {
            executor: self.executor.clone(),
            outcomes: self.outcomes.clone(),
            slots: Arc::new(Semaphore::new(self.concurrency)),
            run_times: Arc::clone(&run_times),
        };
        let dispatcher = tokio::spawn(dispatcher.run(claimed_rx, stop.clone(), jobs));
        let this = Arc::new(self);
        let mut claims = Claims::default();
        let mut progress = Progress {
            backlog: false,
            sleep: false,
            error_backoff: CLAIM_ERROR_BACKOFF_FIRST,
        };
        let mut peers = Peers::of(Arc::clone(&this.worker_id));
        let queue = &this.queue;
        loop {
            let plan = claim_ahead::plan(
                &run_times,
                this.concurrency,
                progress.backlog,
                &mut peers,
                this.own.db(),
                queue,
            )
            .await;
            match this
                .settle(&mut claims, &mut progress, plan.in_flight, &stop)
                .await
            {
                Settled::Claim => {}
                Settled::Again => continue,
                Settled::Stop => break,
            }
            if progress.sleep {
                tokio::select! {
                    () = this.wake.notified() => {}
                    () = tokio::time::sleep(this.poll_interval) => {}
                    () = stop.cancelled() => break,
                }
                progress.sleep = false;
            }
            let room = tokio::select! {
                room = take_room(&places, capacity, plan, this.concurrency, progress.backlog) => room,
                () = stop.cancelled() => break,
            };
            let Some(room) = room else { break };
            // The connection is taken here, in the order the claims are made, so that they
            // reach the database in that order too (see [`ClaimTurn`]).
            let connection = tokio::select! {
                connection = this.own.db().acquire() => connection,
                () = stop.cancelled() => break,
            };
            let marks = MarksWaiting(this.listen && !progress.backlog);
            claims.spawn(
                Arc::clone(&this),
                connection,
                room,
                marks,
                claimed_tx.clone(),
            );
        }
        // Jobs of claims still in flight go to the dispatcher, which hands them back.
        while claims.in_flight.join_next().await.is_some() {}
        drop(claimed_tx);
        let _ = dispatcher.await;
    }

    /// Take in the claims that came back, waiting while as many are in flight as the plan
    /// allows, and after a failed one for its backoff.
    async fn settle(
        &self,
        claims: &mut Claims,
        progress: &mut Progress,
        in_flight: usize,
        stop: &CancellationToken,
    ) -> Settled {
        let settled = if claims.in_flight.len() >= in_flight {
            tokio::select! {
                settled = claims.in_flight.join_next() => settled,
                () = stop.cancelled() => return Settled::Stop,
            }
        } else {
            claims.in_flight.try_join_next()
        };
        let queue = &self.queue;
        match settled {
            Some(Ok(result)) => {
                if let Err(error) = &result {
                    warn!(%queue, %error, retry_in = ?progress.error_backoff, "claiming failed; retrying");
                }
                if let Some(wait) = progress.settle(result, self.listen) {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => return Settled::Stop,
                    }
                }
                Settled::Again
            }
            Some(Err(error)) => {
                warn!(%queue, %error, "a claim task failed");
                Settled::Again
            }
            None => Settled::Claim,
        }
    }

    /// Claim as many jobs as `room` has places on `connection`, and leave them for the
    /// dispatcher in the claim's place (`handover`), each with its place in the room.
    async fn claim(
        &self,
        send: ClaimTurn,
        handover: HandoverSlot,
        connection: bosun_queue::Result<PooledConnection>,
        mut room: OwnedSemaphorePermit,
        MarksWaiting(marking): MarksWaiting,
        claimed_tx: mpsc::UnboundedSender<Claimed>,
    ) -> bosun_queue::Result<ClaimResult> {
        let limit = room.num_permits();
        // Sent in the order made: the database takes the due jobs in the order the claims
        // reach it, and their jobs start in the order they were made.
        send.come().await;
        let claimed = match connection {
            Ok(mut connection) => {
                let conn = self.own.db().on(&mut connection);
                let (queue, kinds, worker) = (&*self.queue, &self.kinds[..], &*self.worker_id);
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let statement = async {
                    if marking {
                        job_claim_or_wait(conn, queue, kinds, limit, worker).await
                    } else {
                        job_claim(conn, queue, kinds, limit, worker).await
                    }
                };
                pass_after_first_poll(statement, send).await
            }
            Err(error) => {
                send.pass();
                Err(error)
            }
        };
        let mut taken = Vec::new();
        let mut waited = false;
        let result = claimed.map(|claimed| {
            waited = claimed.waited;
            let full = claimed.len() == limit;
            if !claimed.unreadable.is_empty() {
                tokio::spawn(self.outcomes.clone().fail_unreadable(claimed.unreadable));
            }
            for job in claimed.jobs {
                crate::metrics::claimed(&job);
                let Some(place) = room.split(1) else { break };
                let saga = crate::executor::saga_of(&job);
                let cancel = self.running.insert(job.id, job.attempt, saga);
                taken.push((job, place, cancel));
            }
            ClaimResult {
                full,
                marked: marking && !full,
            }
        });
        // A failed claim leaves its place empty, or the claims after it would wait for ever.
        handover.deposit(taken, waited, &claimed_tx);
        result
    }
}

/// Wait for the places the next claim wants, and take up to the most it may have; the
/// places beyond what the plan allows stay reserved so that they are not taken. `None` if
/// the semaphore was closed.
async fn take_room(
    places: &Arc<Semaphore>,
    capacity: usize,
    plan: Plan,
    concurrency: usize,
    backlog: bool,
) -> Option<OwnedSemaphorePermit> {
    let reserved = capacity - plan.room;
    let need = u32::try_from(reserved + plan.wanted(concurrency, backlog)).ok()?;
    let mut room = Arc::clone(places).acquire_many_owned(need).await.ok()?;
    while room.num_permits() < reserved + plan.most() {
        match Arc::clone(places).try_acquire_owned() {
            Ok(more) => room.merge(more),
            Err(_) => break,
        }
    }
    // The places beyond what is allowed go back now.
    drop(room.split(reserved));
    Some(room)
}

/// The claims in flight, and the order they were made in.
struct Claims {
    in_flight: JoinSet<bosun_queue::Result<ClaimResult>>,
    /// The claim whose statement may be sent next.
    sends: Arc<watch::Sender<u64>>,
    /// Where claims leave their jobs for the dispatcher; it counts the claims made.
    handover: Arc<Mutex<Handover>>,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            in_flight: JoinSet::new(),
            sends: Arc::new(watch::Sender::new(0)),
            handover: Arc::default(),
        }
    }
}

impl Claims {
    fn spawn(
        &mut self,
        producer: Arc<Producer>,
        connection: bosun_queue::Result<PooledConnection>,
        room: OwnedSemaphorePermit,
        marks: MarksWaiting,
        claimed_tx: mpsc::UnboundedSender<Claimed>,
    ) {
        let this = {
            let mut handover = self.handover.lock().unwrap_or_else(PoisonError::into_inner);
            handover.issued += 1;
            handover.issued - 1
        };
        let send = ClaimTurn::new(&self.sends, this);
        let handover = HandoverSlot {
            handover: Arc::clone(&self.handover),
            this,
            tx: Some(claimed_tx.clone()),
        };
        self.in_flight.spawn(async move {
            producer
                .claim(send, handover, connection, room, marks, claimed_tx)
                .await
        });
    }
}

/// The jobs of claims that came back, waiting for those of every claim made before them.
///
/// Why: with two claims in flight, the database runs them one after the other
/// (`bosun.claim_jobs` takes a lock of the worker's and the queue's), so the one that reaches
/// it later takes the due jobs after the earlier one's; but two tasks send them and handle
/// the replies, in either order. The jobs go to the dispatcher in the order the claims were
/// made, and those of claims that came back together are merged in the claims' own order
/// (priority, then age, then id): whichever claim the database ran first, a job of
/// priority 5 does not start before one of priority 0 that waited beside it.
#[derive(Default)]
struct Handover {
    /// The claim whose jobs go next.
    next: u64,
    /// How many claims have been made.
    issued: u64,
    /// Jobs of claims that came back before they could go, by claim.
    waiting: std::collections::BTreeMap<u64, Deposit>,
}

/// What a claim left in the [`Handover`].
struct Deposit {
    jobs: Vec<Claimed>,
    /// The claim waited for the database to run the claim made after it, which took the
    /// due jobs first and has not come back yet: this one goes with it.
    after_next: bool,
}

/// A claim's place in the [`Handover`]; a claim task that ends without depositing (it
/// panicked) leaves its place empty, so that the claims after it are not held up.
struct HandoverSlot {
    handover: Arc<Mutex<Handover>>,
    this: u64,
    tx: Option<mpsc::UnboundedSender<Claimed>>,
}

impl HandoverSlot {
    /// Leave `jobs` for the dispatcher, with those of the claims that wait for this one;
    /// `waited`: the claim waited for another claim of the worker on the queue.
    fn deposit(
        mut self,
        jobs: Vec<Claimed>,
        waited: bool,
        claimed_tx: &mpsc::UnboundedSender<Claimed>,
    ) {
        self.tx = None;
        deposit(&self.handover, self.this, jobs, waited, claimed_tx);
    }
}

impl Drop for HandoverSlot {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            deposit(&self.handover, self.this, Vec::new(), false, &tx);
        }
    }
}

fn deposit(
    handover: &Mutex<Handover>,
    this: u64,
    jobs: Vec<Claimed>,
    waited: bool,
    claimed_tx: &mpsc::UnboundedSender<Claimed>,
) {
    // Each use inserts and removes whole entries: a panic cannot leave it half-changed.
    let mut handover = handover.lock().unwrap_or_else(PoisonError::into_inner);
    // At most two claims are in flight: when the claim made before this one has come back,
    // the one this claim waited for is the claim made after it, if that is still out.
    let before_back = this == handover.next || handover.waiting.contains_key(&(this - 1));
    let after_next = waited
        && before_back
        && this + 1 < handover.issued
        && !handover.waiting.contains_key(&(this + 1));
    handover.waiting.insert(this, Deposit { jobs, after_next });
    let mut ready = Vec::new();
    let mut claims = 0;
    loop {
        let next = handover.next;
        let Some(deposit) = handover.waiting.get(&next) else {
            break;
        };
        if deposit.after_next && !handover.waiting.contains_key(&(next + 1)) {
            break;
        }
        let Some(deposit) = handover.waiting.remove(&next) else {
            break;
        };
        ready.extend(deposit.jobs);
        handover.next += 1;
        claims += 1;
    }
    if claims > 1 {
        ready.sort_by_key(|(job, _, _)| (job.priority, job.scheduled_at, job.id));
    }
    // Sent under the lock, so that a later deposit's jobs cannot overtake these.
    for claimed in ready {
        let _ = claimed_tx.send(claimed);
    }
}

/// Run `statement`, passing `send` once its first poll has written it to the connection:
/// the next claim's statement then goes out after it.
async fn pass_after_first_poll<F: std::future::Future>(statement: F, send: ClaimTurn) -> F::Output {
    let mut statement = std::pin::pin!(statement);
    let mut send = Some(send);
    std::future::poll_fn(|cx| {
        let poll = statement.as_mut().poll(cx);
        if let Some(send) = send.take() {
            send.pass();
        }
        poll
    })
    .await
}

/// A claim's place in the order the producer made its claims: its statement is sent only
/// after that of every claim made before it, so that the database mostly runs them in that
/// order too (see [`Handover`] for when it does not).
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
/// whether it marked the worker as waiting (it was [`MarksWaiting`] and came back short;
/// unless inserts held the queue's lock past its timeout, and then the worker finds jobs by
/// polling).
struct ClaimResult {
    full: bool,
    marked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
