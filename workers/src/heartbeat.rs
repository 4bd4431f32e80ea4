//! Heartbeats: the worker's lease on the database clock. Registered before the first claim,
//! renewed every `heartbeat_interval`, removed at graceful shutdown. If heartbeats stop
//! (crash, SIGSTOP, a cut network) the lease runs out and the leader's rescuer gives this
//! worker's jobs back; anything the worker writes about them later is fenced out.

use std::time::Duration;

use backon::Retryable;
use bosun_queue::liveness::{job_rescue_unheld, worker_heartbeat, WorkerIdentity};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::connections::OwnConnections;

/// Default time between heartbeats.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(2);
/// Default lease: a worker that has not heartbeated for this long is dead, and its jobs are
/// rescued on the leader's next maintenance tick.
pub const LEASE_DEFAULT: Duration = Duration::from_secs(15);

/// What the heartbeat needs.
pub(crate) struct Heartbeat {
    pub(crate) own: OwnConnections,
    /// This process as stored in `bosun.workers`.
    pub(crate) identity: WorkerIdentity,
    pub(crate) lease: Duration,
    pub(crate) every: Duration,
    /// Rows per batch when giving back jobs of an earlier incarnation.
    pub(crate) rescue_batch: i64,
}

/// This process's identity as stored in `bosun.workers`.
pub(crate) fn identity(
    worker_id: &str,
    queues: &[(String, usize)],
    kinds: &[String],
) -> WorkerIdentity {
    WorkerIdentity {
        id: worker_id.to_string(),
        host: host_name(),
        pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        queues: queues.iter().map(|(q, _)| q.clone()).collect(),
        kinds: kinds.to_vec(),
    }
}

impl Heartbeat {
    /// Register now; errors are the caller's (a pool that cannot register does not start),
    /// once transient ones (a dropped connection, a deadlock with workers registering at the
    /// same moment) have been retried for a while. A process that starts holds no job, so
    /// jobs still `running` under its id belong to an earlier incarnation with the same id
    /// (a restart with a fixed `worker_id`): give them back now rather than never, since this
    /// registration renews the lease they were waiting on.
    pub(crate) async fn register(&self) -> bosun_queue::Result<()> {
        let pool = self.own.db();
        let me = &self.identity;
        (|| worker_heartbeat(pool, me, self.lease))
            .retry(registration_backoff())
            .when(bosun_queue::Error::is_transient)
            .notify(|error, delay| warn!(%error, ?delay, "registering failed; retrying"))
            .await?;
        let batch = self.rescue_batch;
        loop {
            let rescued = (|| job_rescue_unheld(pool, &me.id, &[], Duration::ZERO, batch))
                .retry(registration_backoff())
                .when(bosun_queue::Error::is_transient)
                .await?;
            let count = rescued.retried + rescued.failed;
            if count > 0 {
                info!(
                    retried = rescued.retried,
                    failed = rescued.failed,
                    "gave back jobs held by this worker id before it restarted"
                );
            }
            if i64::try_from(count).unwrap_or(i64::MAX) < batch {
                return Ok(());
            }
        }
    }

    /// Renew the lease every interval until `stop`.
    pub(crate) async fn run(self, stop: CancellationToken) {
        // The first beat is one interval after the registration, which renewed the lease.
        let every = self.every;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            match worker_heartbeat(self.own.db(), &self.identity, self.lease).await {
                Ok(registered_again) => {
                    if failing || registered_again {
                        info!(registered_again, "heartbeat restored");
                    }
                    failing = false;
                }
                Err(error) => {
                    if !failing {
                        warn!(%error, "heartbeat failed; retrying (jobs are rescued if the lease runs out)");
                    }
                    failing = true;
                }
            }
        }
    }
}

/// A few seconds of retries at start: enough for a deadlock or a dropped connection, short
/// enough that a worker that cannot reach its database says so soon.
fn registration_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(1))
        .with_max_times(6)
        .with_jitter()
}

/// This machine's host name, as well as it can be found without extra dependencies.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A worker id for this process: host, pid, and eight hex digits that differ between
/// processes started in the same instant.
pub(crate) fn default_worker_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let fragment = hasher.finish() & 0xffff_ffff;
    format!("{}:{}:{fragment:08x}", host_name(), std::process::id())
}
