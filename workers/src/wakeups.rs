//! Wakes a queue's producer when a retry or a snooze this worker wrote falls due.
//!
//! Inserts notify, but a retry or a snooze is an update that becomes due later, with nobody
//! to say so: without this, a job retried after 200 ms would wait for the next poll. The
//! worker knows each due time from the write that set it, so it keeps them, a set per queue,
//! and one task per queue sleeps until the earliest. Due times are rounded up to
//! [`GRAIN`], so that a burst of retries makes a handful of wake-ups rather than one each;
//! those further off than [`HORIZON`] are left to the poll, which is then at most a small
//! part of their wait.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

/// Due times are kept to this precision (rounded up: a wake-up is never early).
const GRAIN: Duration = Duration::from_millis(5);
/// Due times further off than this are left to the poll.
const HORIZON: Duration = Duration::from_secs(300);

/// The due times one queue's producer should wake for.
#[derive(Default)]
pub(crate) struct Wakeups {
    due: Mutex<BTreeSet<Instant>>,
    /// An earlier due time than the task sleeps for was added.
    sooner: Notify,
}

impl Wakeups {
    /// Wake the producer `due_in` from now (when that is within [`HORIZON`]).
    pub(crate) fn wake_in(&self, due_in: Duration) {
        if due_in > HORIZON {
            return;
        }
        let at = round_up(Instant::now() + due_in);
        let mut due = self.lock();
        let earliest = due.first().is_none_or(|first| at < *first);
        if due.insert(at) && earliest {
            self.sooner.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Instant>> {
        // Each operation is one insert or removal: a panic cannot leave the set half-changed.
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One [`Notify`] per queue: wakes that queue's producer to claim now (a notification came,
/// a retry fell due, or a saga transition of this worker enqueued the next step without
/// notifying). Clones share the same wakers.
#[derive(Clone)]
pub(crate) struct Wakers(Arc<HashMap<String, Arc<Notify>>>);

impl Wakers {
    pub(crate) fn for_queues<'a>(queues: impl IntoIterator<Item = &'a str>) -> Wakers {
        Wakers(Arc::new(
            queues
                .into_iter()
                .map(|queue| (queue.to_string(), Arc::new(Notify::new())))
                .collect(),
        ))
    }

    /// The waker of `queue`'s producer.
    pub(crate) fn get(&self, queue: &str) -> Option<&Arc<Notify>> {
        self.0.get(queue)
    }

    /// Wake `queue`'s producer, if this worker works it.
    pub(crate) fn wake(&self, queue: &str) {
        if let Some(waker) = self.0.get(queue) {
            waker.notify_one();
        }
    }

    /// Wake every producer.
    pub(crate) fn wake_all(&self) {
        self.0.values().for_each(|waker| waker.notify_one());
    }
}

/// The [`Wakeups`] of every queue. Clones share them.
#[derive(Clone)]
pub(crate) struct DueTimes(Arc<HashMap<String, Arc<Wakeups>>>);

impl DueTimes {
    pub(crate) fn for_queues<'a>(queues: impl IntoIterator<Item = &'a str>) -> DueTimes {
        DueTimes(Arc::new(
            queues
                .into_iter()
                .map(|queue| (queue.to_string(), Arc::new(Wakeups::default())))
                .collect(),
        ))
    }

    /// Wake `queue`'s producer `due_in` from now (see [`Wakeups::wake_in`]).
    pub(crate) fn wake_in(&self, queue: &str, due_in: Duration) {
        if let Some(wakeups) = self.0.get(queue) {
            wakeups.wake_in(due_in);
        }
    }

    /// One task per queue that wakes its producer (through `wakers`) when a due time comes,
    /// until `stop`.
    pub(crate) fn spawn(
        &self,
        wakers: &Wakers,
        stop: &CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.0
            .iter()
            .filter_map(|(queue, wakeups)| {
                let waker = Arc::clone(wakers.get(queue)?);
                Some(tokio::spawn(run(Arc::clone(wakeups), waker, stop.clone())))
            })
            .collect()
    }
}

/// Sleep until the earliest due time, wake the producer (`claim`), and go on, until `stop`.
async fn run(wakeups: Arc<Wakeups>, claim: Arc<Notify>, stop: CancellationToken) {
    loop {
        let next = wakeups.lock().first().copied();
        let due = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = due => {
                let now = Instant::now();
                wakeups.lock().retain(|at| *at > now);
                claim.notify_one();
            }
            () = wakeups.sooner.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// `at` rounded up to a multiple of [`GRAIN`] since a fixed instant of this process.
fn round_up(at: Instant) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let since = at.saturating_duration_since(base).as_nanos();
    let grain = GRAIN.as_nanos();
    let rounded = since.div_ceil(grain) * grain;
    base + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_producer_is_woken_at_each_due_time_never_before() {
        let wakeups = Arc::new(Wakeups::default());
        let claim = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(Arc::clone(&wakeups), Arc::clone(&claim), stop.clone()));
        let started = Instant::now();
        wakeups.wake_in(Duration::from_millis(800));
        tokio::task::yield_now().await;
        // A sooner one, added while the task sleeps for the later one.
        wakeups.wake_in(Duration::from_millis(200));
        claim.notified().await;
        let first = started.elapsed();
        assert!(
            first >= Duration::from_millis(200) && first < Duration::from_millis(200) + GRAIN * 2,
            "{first:?}"
        );
        claim.notified().await;
        let second = started.elapsed();
        assert!(
            second >= Duration::from_millis(800) && second < Duration::from_millis(800) + GRAIN * 2,
            "{second:?}"
        );
        // Beyond the horizon: left to the poll.
        wakeups.wake_in(HORIZON * 2);
        assert!(wakeups.lock().is_empty());
        stop.cancel();
        task.await.unwrap();
    }
}
