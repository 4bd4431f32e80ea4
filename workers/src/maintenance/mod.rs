//! Maintenance: services that keep the jobs table healthy, run by exactly one replica.
//!
//! Every worker process runs this loop. Each tick it tries to take or renew the
//! `maintenance` leadership (a row in `bosun.leaders` with a term on the database clock);
//! the one that holds it runs every service's `run_once`. If the leader dies, its term runs
//! out and another replica takes over on its next tick, so handover takes at most the lease
//! plus one interval.
//!
//! Why leader-only: the services are idempotent and would be correct on every replica, but
//! N replicas scanning for the same rows is N times the load for the same result.
//!
//! Services: the scheduler (periodic jobs), the rescuer (jobs of dead workers), the reaper
//! (work on expunged targets; also run at once when an expunge is announced), the pruner
//! (finished jobs past their retention) and the vacuumer (dead row versions, when autovacuum
//! falls behind). There is no stager: claims take `scheduled` and `retryable` rows directly
//! once `scheduled_at` has passed, so no job waits on a periodic move to `available`.
//!
//! The pruner's passes and the vacuumer's `VACUUM` run on tasks of their own ([`Background`]),
//! on the client's connections: on a large table a `VACUUM` takes minutes, and under
//! sustained load a prune pass lasts as long as jobs keep passing their retention faster
//! than it deletes them. In this loop either would hold up the leadership's renewal, the
//! rescuer and the reaper, and a pass that never ended would keep the vacuumer from ever
//! starting, while the dead rows it leaves make every later batch slower. Neither holds one of
//! the worker's own connections for that long either: those are the claims' and the
//! completions'. A pass stops when the leadership is lost, as both stop at shutdown.
//!
//! Writing a service: one file, a `Config` with defaults, and an `async fn run_once` that
//! takes no input, works in batches until a batch comes back short, and returns counts. It
//! does not retry inside a run; the next tick is the retry.

pub mod pruner;
pub mod reaper;
pub mod rescuer;
pub mod sampler;
pub mod scheduler;
pub mod vacuumer;

use std::{future::Future, sync::Arc, time::Instant};

use bosun_queue::liveness::{leader_acquire, MAINTENANCE_LEADER};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::pool::Shared;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    // Maintenance runs on the worker's own connections, but for the prune passes and the
    // VACUUM: they hold a connection for as long as the table takes, which the hot path must
    // not wait behind.
    let own = bosun_queue::Client::with_pooler(shared.own().pool().clone(), shared.own().pooler());
    let rescuer = rescuer::Rescuer::new(own.clone(), shared.config.rescuer.clone());
    let pruner = pruner::Pruner::new(shared.client.clone(), shared.config.pruner.clone());
    let reaper = reaper::Reaper::new(own.clone(), shared.config.reaper.clone());
    let scheduler = scheduler::Scheduler::new(own.clone());
    let sampler = sampler::Sampler::new(own, sampler::EXACT_BELOW_DEFAULT);
    let vacuumer = vacuumer::Vacuumer::new(shared.client.clone(), shared.config.vacuumer.clone());
    let mut last_sampled: Option<Instant> = None;
    let mut last_pruned: Option<Instant> = None;
    let mut tick = tokio::time::interval(shared.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = false;
    let mut vacuuming = Background::default();
    let mut pruning = Background::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.expunged.notified() => {}
            () = stop.cancelled() => {
                // An interrupted VACUUM leaves the table as it was, less what it cleaned; an
                // interrupted prune pass, the batches it finished.
                vacuuming.abort();
                pruning.abort();
                return;
            }
        }
        let acquired = leader_acquire(
            shared.own(),
            MAINTENANCE_LEADER,
            &shared.worker_id,
            shared.config.lease,
        )
        .await;
        match acquired {
            Ok(true) => {
                if !leading {
                    info!("elected maintenance leader");
                }
                leading = true;
                crate::metrics::leader(true);
            }
            Ok(false) => {
                if leading {
                    info!("no longer the maintenance leader");
                    sampler.forget();
                    last_sampled = None;
                    // The new leader prunes; a running VACUUM is left to finish its work.
                    pruning.abort();
                }
                leading = false;
                crate::metrics::leader(false);
                continue;
            }
            Err(error) => {
                warn!(%error, "leader election failed; next tick retries");
                continue;
            }
        }
        match scheduler.run_once().await {
            Ok(fired) => {
                for f in fired {
                    info!(periodic = %f.name, slot = %f.slot, job = f.job_id, "fired periodic job");
                }
            }
            Err(error) => warn!(%error, "scheduler failed; next tick retries"),
        }
        match rescuer.run_once().await {
            Ok(result) if result.retried + result.failed > 0 => {
                crate::metrics::rescued(result.retried + result.failed);
                info!(
                    retried = result.retried,
                    failed = result.failed,
                    "rescued jobs of workers that stopped heartbeating"
                );
            }
            Ok(_) => debug!("rescuer: nothing to do"),
            Err(error) => warn!(%error, "rescuer failed; next tick retries"),
        }
        match reaper.run_once().await {
            Ok(reaped) if !reaped.is_empty() => {
                crate::metrics::reaped(&reaped);
                info!(
                    reaped = reaped.len(),
                    running = reaped.iter().filter(|r| r.was_running).count(),
                    "reaped jobs on expunged targets"
                );
            }
            Ok(_) => debug!("reaper: nothing to do"),
            Err(error) => warn!(%error, "reaper failed; next tick retries"),
        }
        if last_sampled.is_none_or(|at| at.elapsed() >= shared.config.sample_interval) {
            last_sampled = Some(Instant::now());
            if let Err(error) = sampler.run_once().await {
                warn!(%error, "sampling metrics failed; next interval retries");
            }
        }
        if vacuuming.is_idle() {
            let vacuumer = vacuumer.clone();
            vacuuming.start(async move {
                match vacuumer.run_once().await {
                    Ok(Some(dead)) => info!(dead, "vacuumed bosun.jobs"),
                    Ok(None) => {}
                    Err(error) => warn!(%error, "vacuuming bosun.jobs failed; next tick retries"),
                }
            });
        }
        let pruned_lately =
            last_pruned.is_some_and(|at| at.elapsed() < shared.config.prune_interval);
        if pruning.is_idle() && !pruned_lately {
            last_pruned = Some(Instant::now());
            let pruner = pruner.clone();
            pruning.start(async move {
                match pruner.run_once().await {
                    Ok(result) if result.completed + result.failed + result.cancelled > 0 => {
                        info!(
                            completed = result.completed,
                            failed = result.failed,
                            cancelled = result.cancelled,
                            "pruned finished jobs past their retention"
                        );
                    }
                    Ok(_) => debug!("pruner: nothing to do"),
                    Err(error) => warn!(%error, "pruner failed; next tick retries"),
                }
            });
        }
    }
}

/// A maintenance service's run on a task of its own, at most one at a time.
#[derive(Default)]
struct Background(Option<JoinHandle<()>>);

impl Background {
    /// No run is in progress.
    fn is_idle(&self) -> bool {
        self.0.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn start(&mut self, run: impl Future<Output = ()> + Send + 'static) {
        self.0 = Some(tokio::spawn(run));
    }

    /// Stop the run in progress, if any, at its next await.
    fn abort(&mut self) {
        if let Some(run) = self.0.take() {
            run.abort();
        }
    }
}
