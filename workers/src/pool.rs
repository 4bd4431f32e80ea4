//! [`WorkerPool`]: one process's workers, from start to graceful shutdown.
//!
//! ```text
//!            NOTIFY bosun_jobs ──► notifier ──wake──┐
//!                                                   ▼
//!   poll tick ───────────────────────────────► producer (one per queue)
//!                                                   │ claim ≤ free slots (SKIP LOCKED)
//!                                                   ▼
//!                                   executor task per job (slot held)
//!                                                   │ fenced write of the outcome
//!                                                   ▼
//!                                               bosun.jobs
//!   lease check (every second): held (id, attempt) no longer running ──► stop the handler
//!   NOTIFY bosun_control {cancel} ──► notifier ──► stop the handler
//! ```
//!
//! Connections: claims, outcomes, heartbeats, lease checks and maintenance run on a small pool
//! of the worker's own (see [`own_pool`]); handlers, the LISTEN connection and the leader's
//! prune passes and `VACUUM` use the client's pool.
//!
//! Shutdown: stop claiming, wait up to `shutdown_timeout` for running handlers, then tell the
//! rest to stop and hand their jobs back (`available`, attempt not counted).

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use bosun_queue::{liveness::worker_deregister, runtime::job_release_many, Client, Db};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{
    heartbeat, lost_leases, maintenance, notifier, producer,
    running::{RunningJobs, StopReason},
    Error, Registry, Result, Worker,
};

/// Default time between polls for due jobs when no notification arrives.
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Default time between checks that running jobs are still held.
pub const LEASE_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Default grace period for running handlers at shutdown.
pub const SHUTDOWN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default [`PoolBuilder::cancel_grace`].
pub const CANCEL_GRACE_DEFAULT: Duration = Duration::from_secs(30);
/// Default time between heartbeats.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
/// Default lease: a worker that has not heartbeated for this long is dead, and its jobs are
/// rescued on the leader's next maintenance tick.
pub const LEASE_DEFAULT: Duration = Duration::from_secs(15);
/// Default time between maintenance ticks (leader election, rescuer).
pub const MAINTENANCE_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
/// Default time between pruner passes.
pub const PRUNE_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`PoolBuilder::sample_interval`].
pub const SAMPLE_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// Connections of the worker's own pool besides one per queue (for its claims): one for
/// the batched completions, which the rest (heartbeats, lease checks, failed attempts,
/// maintenance) share with the claims. Every connection is a server process to start and
/// warm up, and a worker opens all of them in its first few milliseconds: with several
/// workers starting together, a connection more each slows the drain more than the work it
/// takes off the others (docs/performance.md has the runs).
const OWN_CONNECTIONS_BESIDES_QUEUES: usize = 1;
/// Most connections of the worker's own pool, however many queues it works.
const OWN_CONNECTIONS_MAX: usize = 10;
/// After the shutdown timeout, how long stopped handlers get to return before their jobs are
/// handed back from outside.
const SHUTDOWN_STOP_GRACE: Duration = Duration::from_secs(1);

/// How a [`WorkerPool`] runs. Build it with [`WorkerPool::builder`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Queues to work, each with its concurrency (most jobs running at once).
    pub queues: Vec<(String, usize)>,
    /// Poll for due jobs this often even without notifications.
    pub poll_interval: Duration,
    /// LISTEN for insert notifications (turn off behind a transaction-mode pooler).
    pub listen: bool,
    /// Check this often that running jobs were not cancelled or taken over.
    pub lease_check_interval: Duration,
    /// How long running handlers may finish after shutdown begins.
    pub shutdown_timeout: Duration,
    /// How long a handler told to stop (its job cancelled, its target expunged, its saga
    /// cancelled, or its job taken over) may run on before it is aborted.
    pub cancel_grace: Duration,
    /// This process's id in `attempted_by` and error entries (default: host:pid:random).
    pub worker_id: String,
    /// Renew this worker's lease this often.
    pub heartbeat_interval: Duration,
    /// How long this worker counts as alive after its last heartbeat; also the term of the
    /// maintenance leadership.
    pub lease: Duration,
    /// Try to lead, and run maintenance when leading, this often.
    pub maintenance_interval: Duration,
    /// Rescuer settings.
    pub rescuer: crate::maintenance::rescuer::RescuerConfig,
    /// Pruner settings.
    pub pruner: crate::maintenance::pruner::PrunerConfig,
    /// Vacuumer settings.
    pub vacuumer: crate::maintenance::vacuumer::VacuumerConfig,
    /// Reaper settings.
    pub reaper: crate::maintenance::reaper::ReaperConfig,
    /// Periodic jobs this pool defines (registered when it starts).
    pub periodic: Vec<crate::Periodic>,
    /// Run the pruner this often (when leading).
    pub prune_interval: Duration,
    /// Sample queue depth and the other database-wide gauges this often (when leading).
    pub sample_interval: Duration,
}

/// What a pool did at shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers did not finish in time and were handed back.
    pub released: Vec<i64>,
}

/// State shared by every task of one pool.
pub(crate) struct Shared {
    /// The client handlers get; also the LISTEN connection's, the prune passes' and the
    /// `VACUUM`'s.
    pub(crate) client: Client,
    /// The worker's own connections, for the statements its liveness and its rate hang on:
    /// claims, outcomes, heartbeats, lease checks, maintenance (see [`own_pool`]). Made when
    /// the pool starts to run: a pool needs a Tokio runtime, which `build` may lack.
    own: std::sync::OnceLock<sqlx::PgPool>,
    pub(crate) registry: Registry,
    pub(crate) running: RunningJobs,
    pub(crate) worker_id: Arc<str>,
    pub(crate) kinds: Vec<String>,
    pub(crate) config: PoolConfig,
    /// Signalled when a target is expunged: the maintenance loop reaps at once.
    pub(crate) expunged: tokio::sync::Notify,
    /// One per queue: wakes that queue's producer to claim now (a notification came, or a
    /// saga transition of this worker enqueued the next step without notifying).
    pub(crate) wakers: HashMap<String, Arc<Notify>>,
    /// One per queue: the due times of retries and snoozes this worker wrote, to wake that
    /// queue's producer for.
    pub(crate) wakeups: HashMap<String, Arc<crate::wakeups::Wakeups>>,
    /// Batches the completions of succeeded handlers.
    pub(crate) completer: crate::completer::Completer,
    /// Jobs handed back at shutdown by their own executor task.
    handed_back: std::sync::Mutex<Vec<i64>>,
}

impl Shared {
    /// The worker's own pool ([`Shared::own`]), made on first use.
    pub(crate) fn own(&self) -> Db<'_> {
        let pool = self
            .own
            .get_or_init(|| own_pool(&self.client, self.config.queues.len()));
        Db::new(pool, self.client.pooler())
    }

    pub(crate) fn record_handed_back(&self, id: i64) {
        self.handed_back
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
    }

    fn take_handed_back(&self) -> Vec<i64> {
        std::mem::take(
            &mut *self
                .handed_back
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Builds a [`WorkerPool`].
#[derive(Debug)]
pub struct PoolBuilder {
    client: Client,
    registry: Registry,
    queues: Vec<(String, usize)>,
    poll_interval: Duration,
    listen: bool,
    lease_check_interval: Duration,
    shutdown_timeout: Duration,
    cancel_grace: Duration,
    worker_id: Option<String>,
    heartbeat_interval: Duration,
    lease: Duration,
    maintenance_interval: Duration,
    pruner: crate::maintenance::pruner::PrunerConfig,
    vacuumer: crate::maintenance::vacuumer::VacuumerConfig,
    prune_interval: Duration,
    sample_interval: Duration,
    sagas: Vec<crate::saga::SagaDefinition>,
    periodic: Vec<crate::Periodic>,
}

impl PoolBuilder {
    /// Add a handler.
    pub fn register<W: Worker>(mut self, worker: W) -> Self {
        self.registry.register(worker);
        self
    }

    /// Enqueue a job on every slot of a cron schedule (see [`crate::Periodic`]). The schedule
    /// is registered in `bosun.periodic_jobs` when the pool starts; the maintenance leader
    /// fires it.
    pub fn periodic(mut self, periodic: crate::Periodic) -> Self {
        self.periodic.push(periodic);
        self
    }

    /// Run the steps of sagas of this kind (jobs of kind `saga:<kind>`).
    pub fn saga(mut self, definition: crate::saga::SagaDefinition) -> Self {
        self.sagas.push(definition);
        self
    }

    /// Use these handlers (replacing any registered so far).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Work `queue` with up to `concurrency` jobs at once.
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Poll for due jobs this often (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// LISTEN for notifications (default on). Off: polling alone. A client behind a pooler in
    /// transaction mode ([`bosun_queue::Pooler::Transaction`]) never listens: a pooler that
    /// lends a server connection per transaction cannot hold a `LISTEN`.
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Check held jobs this often (default 1 s).
    pub fn lease_check_interval(mut self, interval: Duration) -> Self {
        self.lease_check_interval = interval;
        self
    }

    /// Grace period for running handlers at shutdown (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long a handler told to stop may run on before its task is aborted, freeing its
    /// slot (default 30 s). A handler that ignores [`crate::JobContext::cancelled`] would
    /// otherwise hold its slot for as long as it runs. Not used at shutdown, which has
    /// [`PoolBuilder::shutdown_timeout`].
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// This process's id (default host:pid:random).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Renew the lease this often (default 2 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long without a heartbeat before this worker's jobs are rescued (default 15 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Retention and batch size of the pruner (defaults: completed 1 day, failed and
    /// cancelled 7 days).
    pub fn pruner(mut self, config: crate::maintenance::pruner::PrunerConfig) -> Self {
        self.pruner = config;
        self
    }

    /// When the leader vacuums `bosun.jobs` (default: above 100,000 dead row versions that
    /// also outnumber the live rows); `enabled: false` leaves it to autovacuum alone.
    pub fn vacuumer(mut self, config: crate::maintenance::vacuumer::VacuumerConfig) -> Self {
        self.vacuumer = config;
        self
    }

    /// Run the pruner this often when leading (default 60 s).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Sample queue depth, the oldest waiting job, live workers and finished sagas for the
    /// metrics this often when leading (default 10 s).
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// Run leader election and maintenance this often (default 2 s).
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Check the configuration and build the pool.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no queues, a repeated or malformed queue name, a
    /// concurrency of 0, no registered handlers, or a zero interval.
    pub fn build(self) -> Result<WorkerPool> {
        if self.queues.is_empty() {
            return Err(Error::InvalidConfig(
                "no queues to work: add at least one".into(),
            ));
        }
        let mut seen = HashMap::new();
        for (queue, concurrency) in &self.queues {
            if !bosun_queue::is_valid_queue_name(queue) {
                return Err(Error::InvalidConfig(format!(
                    "queue {queue:?} is not a valid name: use 1 to 64 letters, digits, '_', '.' or '-'"
                )));
            }
            if *concurrency == 0 {
                return Err(Error::InvalidConfig(format!(
                    "queue {queue:?} has concurrency 0: use 1 or more"
                )));
            }
            if seen.insert(queue.as_str(), ()).is_some() {
                return Err(Error::InvalidConfig(format!(
                    "queue {queue:?} is listed twice"
                )));
            }
        }
        let mut registry = self.registry;
        for definition in self.sagas {
            if let Some(problem) = definition.problem() {
                return Err(Error::InvalidConfig(problem));
            }
            registry.register_erased(
                bosun_queue::saga::saga_job_kind(definition.kind()),
                Arc::new(crate::saga::SagaRunner::new(definition)),
            );
        }
        if registry.is_empty() {
            return Err(Error::InvalidConfig(
                "no workers registered: register at least one kind".into(),
            ));
        }
        for (name, interval) in [
            ("poll_interval", self.poll_interval),
            ("lease_check_interval", self.lease_check_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("maintenance_interval", self.maintenance_interval),
            ("prune_interval", self.prune_interval),
            ("sample_interval", self.sample_interval),
        ] {
            if interval.is_zero() {
                return Err(Error::InvalidConfig(format!("{name} must be above zero")));
            }
        }
        let vacuumer = &self.vacuumer;
        if vacuumer.dead_min < 0
            || !(vacuumer.dead_fraction >= 0.0 && vacuumer.dead_fraction.is_finite())
        {
            return Err(Error::InvalidConfig(format!(
                "vacuumer: dead_min ({}) and dead_fraction ({}) must be finite and not negative",
                vacuumer.dead_min, vacuumer.dead_fraction
            )));
        }
        if self.lease < self.heartbeat_interval * 2 {
            return Err(Error::InvalidConfig(format!(
                "lease ({:?}) must be at least twice the heartbeat_interval ({:?}), or one late heartbeat would count as death",
                self.lease, self.heartbeat_interval
            )));
        }
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let kinds = registry.kinds();
        let listen = self.listen && !self.client.pooler().is_transaction();
        Ok(WorkerPool {
            shared: Arc::new(Shared {
                client: self.client,
                own: std::sync::OnceLock::new(),
                registry,
                running: RunningJobs::default(),
                worker_id: Arc::from(worker_id.as_str()),
                kinds,
                handed_back: std::sync::Mutex::new(Vec::new()),
                expunged: tokio::sync::Notify::new(),
                wakers: self
                    .queues
                    .iter()
                    .map(|(queue, _)| (queue.clone(), Arc::new(Notify::new())))
                    .collect(),
                wakeups: crate::wakeups::for_queues(self.queues.iter().map(|(queue, _)| queue)),
                completer: crate::completer::Completer::new(),
                config: PoolConfig {
                    queues: self.queues,
                    poll_interval: self.poll_interval,
                    listen,
                    lease_check_interval: self.lease_check_interval,
                    shutdown_timeout: self.shutdown_timeout,
                    cancel_grace: self.cancel_grace,
                    worker_id,
                    heartbeat_interval: self.heartbeat_interval,
                    lease: self.lease,
                    maintenance_interval: self.maintenance_interval,
                    rescuer: crate::maintenance::rescuer::RescuerConfig {
                        min_age: self.lease,
                        ..Default::default()
                    },
                    pruner: self.pruner,
                    vacuumer: self.vacuumer,
                    reaper: crate::maintenance::reaper::ReaperConfig::default(),
                    periodic: self.periodic,
                    prune_interval: self.prune_interval,
                    sample_interval: self.sample_interval,
                },
            }),
        })
    }
}

/// The workers of one process: a producer per queue, the executor, and the notifier.
pub struct WorkerPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("config", &self.shared.config)
            .field("kinds", &self.shared.kinds)
            .finish()
    }
}

impl WorkerPool {
    /// Start building a pool on `client`'s database.
    pub fn builder(client: Client) -> PoolBuilder {
        PoolBuilder {
            client,
            registry: Registry::new(),
            queues: Vec::new(),
            poll_interval: POLL_INTERVAL_DEFAULT,
            listen: true,
            lease_check_interval: LEASE_CHECK_INTERVAL_DEFAULT,
            shutdown_timeout: SHUTDOWN_TIMEOUT_DEFAULT,
            cancel_grace: CANCEL_GRACE_DEFAULT,
            worker_id: None,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            lease: LEASE_DEFAULT,
            maintenance_interval: MAINTENANCE_INTERVAL_DEFAULT,
            pruner: crate::maintenance::pruner::PrunerConfig::default(),
            vacuumer: crate::maintenance::vacuumer::VacuumerConfig::default(),
            prune_interval: PRUNE_INTERVAL_DEFAULT,
            sample_interval: SAMPLE_INTERVAL_DEFAULT,
            sagas: Vec::new(),
            periodic: Vec::new(),
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// How many jobs are running right now.
    pub fn running(&self) -> usize {
        self.shared.running.len()
    }

    /// Register this worker, work until `shutdown` resolves, then shut down gracefully.
    ///
    /// # Errors
    /// [`Error::Queue`] if the worker cannot register at start, or if handing jobs back at
    /// shutdown failed (they stay `running` and are rescued once the lease runs out).
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) -> Result<ShutdownReport> {
        let shared = &self.shared;
        let stop_claiming = CancellationToken::new();
        let stop_background = CancellationToken::new();
        let jobs = TaskTracker::new();

        heartbeat::register(shared).await?;
        for periodic in &shared.config.periodic {
            bosun_queue::periodic::periodic_schedule_with(
                shared.client.db(),
                &periodic.name,
                &periodic.cron,
                &periodic.job,
                &periodic.options,
            )
            .await?;
        }
        // Producers first: the first claim gets the connection the registration opened.
        let producers: Vec<_> = shared
            .config
            .queues
            .iter()
            .map(|(queue, concurrency)| {
                tokio::spawn(producer::run(
                    Arc::clone(shared),
                    queue.clone(),
                    *concurrency,
                    Arc::clone(&shared.wakers[queue]),
                    stop_claiming.clone(),
                    jobs.clone(),
                ))
            })
            .collect();
        let mut background = Vec::new();
        background.push(tokio::spawn(heartbeat::run(
            Arc::clone(shared),
            stop_background.clone(),
        )));
        background.push(tokio::spawn(crate::completer::run(
            Arc::clone(shared),
            stop_background.clone(),
        )));
        background.push(tokio::spawn(maintenance::run(
            Arc::clone(shared),
            stop_background.clone(),
        )));
        if shared.config.listen {
            background.push(tokio::spawn(notifier::run(
                Arc::clone(shared),
                stop_background.clone(),
            )));
        }
        for (queue, wakeups) in &shared.wakeups {
            background.push(tokio::spawn(crate::wakeups::run(
                Arc::clone(wakeups),
                Arc::clone(&shared.wakers[queue]),
                stop_background.clone(),
            )));
        }
        background.push(tokio::spawn(lost_leases::run(
            Arc::clone(shared),
            stop_background.clone(),
        )));
        info!(
            worker_id = %shared.worker_id,
            queues = ?shared.config.queues,
            kinds = ?shared.kinds,
            listen = shared.config.listen,
            "worker pool started"
        );

        shutdown.await;
        info!(
            running = shared.running.len(),
            "shutting down: no new claims"
        );
        stop_claiming.cancel();
        for producer in producers {
            let _ = producer.await;
        }
        jobs.close();
        let mut report = ShutdownReport::default();
        if tokio::time::timeout(shared.config.shutdown_timeout, jobs.wait())
            .await
            .is_err()
        {
            // Tell the handlers; those that return now hand their own jobs back. Whatever is
            // still held after a short grace is handed back here, fenced as always.
            warn!(
                jobs = shared.running.len(),
                "shutdown timeout reached: stopping handlers and handing their jobs back"
            );
            shared.running.stop_all(StopReason::Shutdown);
            let _ = tokio::time::timeout(SHUTDOWN_STOP_GRACE, jobs.wait()).await;
            // Jobs whose completion waits for its write are held too: write them first,
            // so that none of them is handed back to run again.
            shared.completer.drained().await;
            let held = shared.running.held();
            report.released = job_release_many(shared.own(), &held).await?;
        }
        shared.completer.drained().await;
        report.released.extend(shared.take_handed_back());
        report.released.sort_unstable();
        report.released.dedup();
        stop_background.cancel();
        for task in background {
            let _ = task.await;
        }
        if let Err(error) = worker_deregister(shared.own(), &shared.worker_id).await {
            warn!(%error, "could not deregister; the registration expires with its lease");
        }
        info!(released = report.released.len(), "worker pool stopped");
        Ok(report)
    }
}

/// A pool of its own for the worker's hot path and liveness, on the client's database.
///
/// Why not the client's pool: handlers share that one, and a burst of handlers holding its
/// connections would hold up claims, completions and, worst, heartbeats, until a live
/// worker looks dead. And why so small: a pool grows to its maximum under a busy loop (a
/// connection given back is returned on a task of its own, so the next acquire often finds
/// none idle and opens another), and every extra server process costs the database a fork
/// and a cold cache of plans and catalogs; with several worker processes starting at once
/// that warm-up is a visible part of a drain.
fn own_pool(client: &Client, queues: usize) -> sqlx::PgPool {
    let options = client.pool().connect_options();
    let connections = (queues + OWN_CONNECTIONS_BESIDES_QUEUES).min(OWN_CONNECTIONS_MAX);
    bosun_queue::pool_options()
        .max_connections(u32::try_from(connections).unwrap_or(u32::MAX))
        .connect_lazy_with(options.as_ref().clone())
}

/// This machine's host name, as well as it can be found without extra dependencies.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn default_worker_id() -> String {
    format!("{}:{}:{}", host_name(), std::process::id(), uuid_fragment())
}

/// Eight hex digits that differ between processes started in the same instant.
fn uuid_fragment() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", hasher.finish() & 0xffff_ffff)
}
