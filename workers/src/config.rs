//! How a [`crate::WorkerPool`] runs: [`PoolConfig`], its defaults, and the [`PoolBuilder`]
//! that checks it.

use std::{collections::HashSet, sync::Arc, time::Duration};

use bosun_queue::Client;

use crate::{
    heartbeat::{default_worker_id, HEARTBEAT_INTERVAL_DEFAULT, LEASE_DEFAULT},
    maintenance::{
        compactor::CompactorConfig, pruner::PrunerConfig, reaper::ReaperConfig,
        rescuer::RescuerConfig, vacuumer::VacuumerConfig,
    },
    saga::{SagaDefinition, SagaRunner},
    Error, Periodic, Registry, Result, Worker,
};

/// Default time between polls for due jobs when no notification arrives.
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Default time between checks that running jobs are still held.
pub const LEASE_CHECK_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Default grace period for running handlers at shutdown.
pub const SHUTDOWN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default [`PoolBuilder::cancel_grace`].
pub const CANCEL_GRACE_DEFAULT: Duration = Duration::from_secs(30);
/// Default time between maintenance ticks (leader election, rescuer).
pub const MAINTENANCE_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
/// Default time between pruner passes.
pub const PRUNE_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`PoolBuilder::sample_interval`].
pub const SAMPLE_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);

/// How a [`crate::WorkerPool`] runs. Build it with [`crate::WorkerPool::builder`].
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
    pub rescuer: RescuerConfig,
    /// Pruner settings.
    pub pruner: PrunerConfig,
    /// Vacuumer settings.
    pub vacuumer: VacuumerConfig,
    /// Compactor settings.
    pub compactor: CompactorConfig,
    /// Reaper settings.
    pub reaper: ReaperConfig,
    /// Periodic jobs this pool defines (registered when it starts).
    pub periodic: Vec<Periodic>,
    /// Run the pruner this often (when leading).
    pub prune_interval: Duration,
    /// Sample queue depth and the other database-wide gauges this often (when leading).
    pub sample_interval: Duration,
}

/// Builds a [`crate::WorkerPool`].
#[derive(Debug)]
pub struct PoolBuilder {
    pub(crate) client: Client,
    pub(crate) registry: Registry,
    sagas: Vec<SagaDefinition>,
    /// `worker_id` is empty until set, and filled in by [`PoolBuilder::check`].
    config: PoolConfig,
}

/// A configuration that passed [`PoolBuilder::check`].
pub(crate) struct Checked {
    pub(crate) client: Client,
    /// With the saga runners registered.
    pub(crate) registry: Registry,
    pub(crate) config: PoolConfig,
}

impl PoolBuilder {
    pub(crate) fn new(client: Client) -> PoolBuilder {
        PoolBuilder {
            client,
            registry: Registry::new(),
            sagas: Vec::new(),
            config: PoolConfig {
                queues: Vec::new(),
                poll_interval: POLL_INTERVAL_DEFAULT,
                listen: true,
                lease_check_interval: LEASE_CHECK_INTERVAL_DEFAULT,
                shutdown_timeout: SHUTDOWN_TIMEOUT_DEFAULT,
                cancel_grace: CANCEL_GRACE_DEFAULT,
                worker_id: String::new(),
                heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
                lease: LEASE_DEFAULT,
                maintenance_interval: MAINTENANCE_INTERVAL_DEFAULT,
                rescuer: RescuerConfig::default(),
                pruner: PrunerConfig::default(),
                vacuumer: VacuumerConfig::default(),
                compactor: CompactorConfig::default(),
                reaper: ReaperConfig::default(),
                periodic: Vec::new(),
                prune_interval: PRUNE_INTERVAL_DEFAULT,
                sample_interval: SAMPLE_INTERVAL_DEFAULT,
            },
        }
    }

    /// Add a handler.
    pub fn register<W: Worker>(mut self, worker: W) -> Self {
        self.registry.register(worker);
        self
    }

    /// Enqueue a job on every slot of a cron schedule (see [`crate::Periodic`]). The schedule
    /// is registered in `bosun.periodic_jobs` when the pool starts; the maintenance leader
    /// fires it.
    pub fn periodic(mut self, periodic: Periodic) -> Self {
        self.config.periodic.push(periodic);
        self
    }

    /// Run the steps of sagas of this kind (jobs of kind `saga:<kind>`).
    pub fn saga(mut self, definition: SagaDefinition) -> Self {
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
        self.config.queues.push((queue.into(), concurrency));
        self
    }

    /// Poll for due jobs this often (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// LISTEN for notifications (default on). Off: polling alone. A client behind a pooler in
    /// transaction mode ([`bosun_queue::Pooler::Transaction`]) never listens: a pooler that
    /// lends a server connection per transaction cannot hold a `LISTEN`.
    pub fn listen(mut self, listen: bool) -> Self {
        self.config.listen = listen;
        self
    }

    /// Check held jobs this often (default 1 s).
    pub fn lease_check_interval(mut self, interval: Duration) -> Self {
        self.config.lease_check_interval = interval;
        self
    }

    /// Grace period for running handlers at shutdown (default 30 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// How long a handler told to stop may run on before its task is aborted, freeing its
    /// slot (default 30 s). A handler that ignores [`crate::JobContext::cancelled`] would
    /// otherwise hold its slot for as long as it runs. Not used at shutdown, which has
    /// [`PoolBuilder::shutdown_timeout`].
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.config.cancel_grace = grace;
        self
    }

    /// This process's id (default host:pid:random).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.config.worker_id = id.into();
        self
    }

    /// Renew the lease this often (default 2 s).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// How long without a heartbeat before this worker's jobs are rescued (default 15 s).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// Retention and batch size of the pruner (defaults: completed 1 day, failed and
    /// cancelled 7 days).
    pub fn pruner(mut self, config: PrunerConfig) -> Self {
        self.config.pruner = config;
        self
    }

    /// When the leader vacuums `bosun.jobs` (default: above 100,000 dead row versions that
    /// also outnumber the live rows); `enabled: false` leaves it to autovacuum alone.
    pub fn vacuumer(mut self, config: VacuumerConfig) -> Self {
        self.config.vacuumer = config;
        self
    }

    /// Whether and how the leader gives back what `bosun.jobs` grew by while vacuum could
    /// not run (default: on, looking at a grown heap's end every 10 s).
    pub fn compactor(mut self, config: CompactorConfig) -> Self {
        self.config.compactor = config;
        self
    }

    /// Run the pruner this often when leading (default 60 s).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config.prune_interval = interval;
        self
    }

    /// Sample queue depth, the oldest waiting job, live workers and finished sagas for the
    /// metrics this often when leading (default 10 s).
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.config.sample_interval = interval;
        self
    }

    /// Run leader election and maintenance this often (default 2 s).
    pub fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.config.maintenance_interval = interval;
        self
    }

    /// Check the configuration, register the saga runners, and fill in what is derived.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for no queues, a repeated or malformed queue name, a
    /// concurrency of 0, no registered handlers, or a zero interval.
    pub(crate) fn check(self) -> Result<Checked> {
        let PoolBuilder {
            client,
            mut registry,
            sagas,
            mut config,
        } = self;
        check_queues(&config.queues)?;
        for definition in sagas {
            if let Some(problem) = definition.problem() {
                return Err(Error::InvalidConfig(problem));
            }
            registry.register_erased(
                bosun_queue::saga::saga_job_kind(definition.kind()),
                Arc::new(SagaRunner::new(definition)),
            );
        }
        if registry.is_empty() {
            return Err(Error::InvalidConfig(
                "no workers registered: register at least one kind".into(),
            ));
        }
        for (name, interval) in [
            ("poll_interval", config.poll_interval),
            ("lease_check_interval", config.lease_check_interval),
            ("heartbeat_interval", config.heartbeat_interval),
            ("maintenance_interval", config.maintenance_interval),
            ("prune_interval", config.prune_interval),
            ("sample_interval", config.sample_interval),
        ] {
            if interval.is_zero() {
                return Err(Error::InvalidConfig(format!("{name} must be above zero")));
            }
        }
        let vacuumer = &config.vacuumer;
        if vacuumer.dead_min < 0
            || !(vacuumer.dead_fraction >= 0.0 && vacuumer.dead_fraction.is_finite())
        {
            return Err(Error::InvalidConfig(format!(
                "vacuumer: dead_min ({}) and dead_fraction ({}) must be finite and not negative",
                vacuumer.dead_min, vacuumer.dead_fraction
            )));
        }
        if config.lease < config.heartbeat_interval * 2 {
            return Err(Error::InvalidConfig(format!(
                "lease ({:?}) must be at least twice the heartbeat_interval ({:?}), or one late heartbeat would count as death",
                config.lease, config.heartbeat_interval
            )));
        }
        if config.worker_id.is_empty() {
            config.worker_id = default_worker_id();
        }
        config.listen &= !client.pooler().is_transaction();
        config.rescuer.min_age = config.lease;
        Ok(Checked {
            client,
            registry,
            config,
        })
    }
}

fn check_queues(queues: &[(String, usize)]) -> Result<()> {
    if queues.is_empty() {
        return Err(Error::InvalidConfig(
            "no queues to work: add at least one".into(),
        ));
    }
    let mut seen = HashSet::new();
    for (queue, concurrency) in queues {
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
        if !seen.insert(queue.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "queue {queue:?} is listed twice"
            )));
        }
    }
    Ok(())
}
