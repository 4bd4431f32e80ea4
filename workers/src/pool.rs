//! [`WorkerPool`]: one process's workers, from start to graceful shutdown. This module only
//! wires the tasks together; each task's module says what it does.
//!
//! ```text
//!            NOTIFY bosun_jobs ──► notifier ──wake──┐
//!                                                   ▼
//!   poll tick, due retries (wakeups) ──────────► producer (one per queue)
//!                                                   │ claim ≤ room (SKIP LOCKED), claim_ahead
//!                                                   ▼
//!                                   dispatch ──► executor task per job (slot held)
//!                                                   │ what the handler came to
//!                                                   ▼
//!                                   outcome: fenced writes (completions batched)
//!                                                   ▼
//!                                               bosun.jobs
//!   lost_leases (every second): held (id, attempt) no longer running ──► stop the handler
//!   NOTIFY bosun_control {cancel} ──► notifier ──► stop the handler
//!   heartbeat: the worker's lease        maintenance: the leader's services
//! ```
//!
//! Connections: claims, outcomes, heartbeats, lease checks and maintenance run on the
//! worker's own small pool ([`crate::connections`]); handlers, saga transitions, the LISTEN
//! connection and the leader's prune passes and `VACUUM` use the client's pool.
//!
//! Shutdown: stop claiming, let running handlers finish ([`crate::shutdown`]), stop the
//! background tasks, deregister.

use std::{future::Future, sync::Arc};

use bosun_queue::{liveness::worker_deregister, Client};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{
    config::{PoolBuilder, PoolConfig},
    connections::OwnConnections,
    executor::Executor,
    heartbeat::{self, Heartbeat},
    lost_leases::LeaseCheck,
    maintenance::Maintenance,
    notifier::Notifier,
    outcome::Outcomes,
    producer::Producer,
    running::RunningJobs,
    shutdown::{self, ShutdownReport},
    wakeups::{DueTimes, Wakers},
    Result,
};

/// The workers of one process: a producer per queue, the executor, and the notifier.
pub struct WorkerPool {
    client: Client,
    config: PoolConfig,
    worker_id: Arc<str>,
    kinds: Arc<[String]>,
    own: OwnConnections,
    running: RunningJobs,
    wakers: Wakers,
    due: DueTimes,
    outcomes: Outcomes,
    executor: Executor,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("config", &self.config)
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl PoolBuilder {
    /// Check the configuration and build the pool.
    ///
    /// # Errors
    /// [`crate::Error::InvalidConfig`] for no queues, a repeated or malformed queue name, a
    /// concurrency of 0, no registered handlers, or a zero interval.
    pub fn build(self) -> Result<WorkerPool> {
        let checked = self.check()?;
        let (client, registry, config) = (checked.client, checked.registry, checked.config);
        let queues = || config.queues.iter().map(|(queue, _)| queue.as_str());
        let own = OwnConnections::new(client.clone(), config.queues.len());
        let running = RunningJobs::default();
        let wakers = Wakers::for_queues(queues());
        let due = DueTimes::for_queues(queues());
        let outcomes = Outcomes::new(
            own.clone(),
            client.clone(),
            running.clone(),
            due.clone(),
            wakers.clone(),
        );
        let worker_id: Arc<str> = Arc::from(config.worker_id.as_str());
        let executor = Executor::new(
            client.clone(),
            registry.clone(),
            running.clone(),
            Arc::clone(&worker_id),
            config.cancel_grace,
            outcomes.clone(),
        );
        Ok(WorkerPool {
            worker_id,
            executor,
            kinds: registry.kinds().into(),
            client,
            config,
            own,
            running,
            wakers,
            due,
            outcomes,
        })
    }
}

impl WorkerPool {
    /// Start building a pool on `client`'s database.
    pub fn builder(client: Client) -> PoolBuilder {
        PoolBuilder::new(client)
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// How many jobs are running right now.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Register this worker, work until `shutdown` resolves, then shut down gracefully.
    ///
    /// # Errors
    /// [`crate::Error::Queue`] if the worker cannot register at start, or if handing jobs
    /// back at shutdown failed (they stay `running` and are rescued once the lease runs out).
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) -> Result<ShutdownReport> {
        let config = &self.config;
        let stop_claiming = CancellationToken::new();
        let stop_background = CancellationToken::new();
        let jobs = TaskTracker::new();

        let heartbeat = Heartbeat {
            own: self.own.clone(),
            identity: heartbeat::identity(&self.worker_id, &config.queues, &self.kinds),
            lease: config.lease,
            every: config.heartbeat_interval,
            rescue_batch: config.rescuer.batch_size,
        };
        heartbeat.register().await?;
        for periodic in &config.periodic {
            bosun_queue::periodic::periodic_schedule_with(
                self.client.db(),
                &periodic.name,
                &periodic.cron,
                &periodic.job,
                &periodic.options,
            )
            .await?;
        }
        // Producers first: the first claim gets the connection the registration opened.
        let producers: Vec<_> = config
            .queues
            .iter()
            .map(|(queue, concurrency)| {
                let producer = self.producer(queue, *concurrency);
                tokio::spawn(producer.run(stop_claiming.clone(), jobs.clone()))
            })
            .collect();
        let background = self.spawn_background(heartbeat, &stop_background);
        info!(
            worker_id = %self.worker_id,
            queues = ?config.queues,
            kinds = ?self.kinds,
            listen = config.listen,
            "worker pool started"
        );

        shutdown.await;
        info!(running = self.running.len(), "shutting down: no new claims");
        stop_claiming.cancel();
        for producer in producers {
            let _ = producer.await;
        }
        let report =
            shutdown::finish_jobs(jobs, config.shutdown_timeout, &self.running, &self.outcomes)
                .await?;
        stop_background.cancel();
        for task in background {
            let _ = task.await;
        }
        if let Err(error) = worker_deregister(self.own.db(), &self.worker_id).await {
            warn!(%error, "could not deregister; the registration expires with its lease");
        }
        info!(released = report.released.len(), "worker pool stopped");
        Ok(report)
    }

    fn producer(&self, queue: &str, concurrency: usize) -> Producer {
        let config = &self.config;
        Producer {
            own: self.own.clone(),
            running: self.running.clone(),
            executor: self.executor.clone(),
            outcomes: self.outcomes.clone(),
            kinds: Arc::clone(&self.kinds),
            worker_id: Arc::clone(&self.worker_id),
            queue: queue.into(),
            concurrency,
            listen: config.listen,
            poll_interval: config.poll_interval,
            wake: Arc::clone(self.wakers.get(queue).expect("a waker per queue")),
        }
    }

    /// The tasks that run until the pool stops: heartbeat, completer, maintenance, notifier
    /// (when listening), the due-time wakeups, and the lease check.
    fn spawn_background(
        &self,
        heartbeat: Heartbeat,
        stop: &CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let config = &self.config;
        let expunged = Arc::new(Notify::new());
        let mut tasks = vec![
            tokio::spawn(heartbeat.run(stop.clone())),
            tokio::spawn(self.outcomes.clone().run_completer(stop.clone())),
        ];
        let maintenance = Maintenance {
            own: self.own.client().clone(),
            client: self.client.clone(),
            worker_id: Arc::clone(&self.worker_id),
            lease: config.lease,
            every: config.maintenance_interval,
            rescuer: config.rescuer.clone(),
            reaper: config.reaper.clone(),
            pruner: config.pruner.clone(),
            prune_interval: config.prune_interval,
            vacuumer: config.vacuumer.clone(),
            compactor: config.compactor.clone(),
            sample_interval: config.sample_interval,
            expunged: Arc::clone(&expunged),
        };
        tasks.push(tokio::spawn(maintenance.run(stop.clone())));
        if config.listen {
            let notifier = Notifier {
                client: self.client.clone(),
                wakers: self.wakers.clone(),
                running: self.running.clone(),
                expunged,
            };
            tasks.push(tokio::spawn(notifier.run(stop.clone())));
        }
        tasks.extend(self.due.spawn(&self.wakers, stop));
        let lease_check = LeaseCheck {
            own: self.own.clone(),
            running: self.running.clone(),
            worker_id: Arc::clone(&self.worker_id),
            every: config.lease_check_interval,
            lease: config.lease,
            batch: config.rescuer.batch_size,
        };
        tasks.push(tokio::spawn(lease_check.run(stop.clone())));
        tasks
    }
}
