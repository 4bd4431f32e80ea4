//! W5: sustained load while a transaction holds PostgreSQL's vacuum horizon back. A producer
//! inserts no-op jobs by plain `INSERT`s every 10 ms at an offered rate, one worker runs
//! them, and for a while a `REPEATABLE READ` transaction holds its snapshot after one read
//! (of `bosun.jobs`, or of a table of the application's own). Nothing that claims or
//! completes leaves removable garbage while the snapshot lives, so this is where a queue
//! that keeps its speed only through vacuum loses it. Every 10 s window reports the jobs
//! enqueued and done, the enqueue-to-claim percentiles, the slowest insert (a lock held
//! against enqueues shows there), dead row versions and the bytes of the table and its
//! indexes.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bosun_queue::{
    bench::{self as storage, PinRead, Probe},
    periodic::database_now,
};
use serde::Serialize;

use super::{workloads::Workers, RunResult, Scratch};

/// Length of a window.
const WINDOW: Duration = Duration::from_secs(10);
/// The producer's tick.
const TICK: Duration = Duration::from_millis(10);
/// The worker's retention of completed jobs, and how often it prunes: long enough that a
/// window's jobs are still there when the window is measured.
const RETENTION: &str = "30s";
const PRUNE_EVERY: &str = "2s";

/// What W5 runs: the offered rate, how long the horizon is held and by what, and how long
/// the load goes on after.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Jobs offered per second.
    pub rate: u64,
    /// Load before the horizon is held, for the figures without it in the same run.
    pub before: Duration,
    /// How long the horizon is held.
    pub pin: Duration,
    /// What the holding transaction read.
    pub read: PinRead,
    /// Load after the horizon moves.
    pub after: Duration,
}

impl Settings {
    /// Jobs offered in one run.
    pub fn jobs(&self) -> u64 {
        let secs = (self.before + self.pin + self.after).as_secs();
        self.rate * secs
    }
}

/// Which part of the run a window belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    Pinned,
    After,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Before => "before",
            Phase::Pinned => "pinned",
            Phase::After => "after",
        })
    }
}

/// One 10 s window of a W5 run.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// Seconds from the start of the load to the window's end.
    pub at_s: u64,
    pub phase: Phase,
    /// Jobs enqueued per second.
    pub enqueued_per_s: f64,
    /// Jobs completed per second.
    pub done_per_s: f64,
    /// Enqueue to claim, 50th and 99th percentiles, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The slowest of the producer's inserts, ms.
    pub slowest_insert_ms: f64,
    /// Dead row versions of `bosun.jobs` at the window's end.
    pub dead: i64,
    /// Bytes of its heap and of its indexes, MiB.
    pub table_mib: f64,
    pub indexes_mib: f64,
}

/// What the producer has done, shared with the windows that read it.
#[derive(Default)]
struct Produced {
    jobs: AtomicU64,
    slowest_insert_us: AtomicI64,
}

/// The producer: every [`TICK`], one plain `INSERT` of the jobs due by then at `rate`, so
/// that inserts that fall behind catch up and the offered load stays what was asked.
async fn produce(
    client: bosun_queue::Client,
    rate: u64,
    produced: Arc<Produced>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
        let count = due.saturating_sub(sent);
        if count == 0 {
            continue;
        }
        let insert = Instant::now();
        storage::pinned_insert(client.pool(), i64::try_from(count)?).await?;
        let took = i64::try_from(insert.elapsed().as_micros()).unwrap_or(i64::MAX);
        produced
            .slowest_insert_us
            .fetch_max(took, Ordering::Relaxed);
        sent += count;
        produced.jobs.fetch_add(count, Ordering::Relaxed);
    }
    Ok(())
}

/// One run of W5.
pub async fn run(scratch: &Scratch, settings: Settings) -> anyhow::Result<RunResult> {
    let extra = [
        "--retain-completed",
        RETENTION,
        "--prune-interval",
        PRUNE_EVERY,
    ];
    let workers = Workers::start_with(scratch, 1, &extra)?;
    super::workloads::wait_until(scratch, Probe::WorkerRegistered).await?;
    let pool = scratch.client.pool();
    let produced = Arc::new(Produced::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(
        scratch.client.clone(),
        settings.rate,
        Arc::clone(&produced),
        Arc::clone(&stop),
    ));
    let phases = [
        (Phase::Before, settings.before),
        (Phase::Pinned, settings.pin),
        (Phase::After, settings.after),
    ];
    let mut windows = Vec::new();
    let mut pin = None;
    let mut at = Duration::ZERO;
    let mut jobs_before = 0;
    let mut from = database_now(pool).await?;
    'phases: for (phase, length) in phases {
        if phase == Phase::Pinned {
            pin = Some(storage::pin_horizon(pool, settings.read).await?);
        } else if let Some(tx) = pin.take() {
            tx.commit().await?;
        }
        let mut left = length;
        while !left.is_zero() {
            let step = left.min(WINDOW);
            tokio::time::sleep(step).await;
            left -= step;
            at += step;
            // The producer stopped only on an error, which its join below reports.
            if producer.is_finished() {
                break 'phases;
            }
            let to = database_now(pool).await?;
            let jobs = produced.jobs.load(Ordering::Relaxed);
            let slowest = produced.slowest_insert_us.swap(0, Ordering::Relaxed);
            let (done, p50_ms, p99_ms) = storage::pinned_window(pool, from, to).await?;
            let disk = storage::pinned_storage(pool).await?;
            let secs = (to - from).to_std().unwrap_or(step).as_secs_f64().max(1e-9);
            #[allow(clippy::cast_precision_loss)] // counts and bytes far below 2^52
            windows.push(Window {
                at_s: at.as_secs(),
                phase,
                enqueued_per_s: (jobs - jobs_before) as f64 / secs,
                done_per_s: done as f64 / secs,
                p50_ms,
                p99_ms,
                slowest_insert_ms: slowest as f64 / 1000.0,
                dead: disk.dead,
                table_mib: disk.table_bytes as f64 / 1_048_576.0,
                indexes_mib: disk.index_bytes as f64 / 1_048_576.0,
            });
            jobs_before = jobs;
            from = to;
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.await??;
    drop(pin);
    drop(workers);
    summarize(windows)
}

/// The run's line in the summary table: its slowest window's jobs done per second, and how
/// much the table with its indexes grew from the end of the unpinned load to the end of the
/// run; the windows themselves are printed apart.
fn summarize(windows: Vec<Window>) -> anyhow::Result<RunResult> {
    let slowest = windows
        .iter()
        .map(|w| w.done_per_s)
        .reduce(f64::min)
        .ok_or_else(|| anyhow::anyhow!("W5: no window was measured"))?;
    let size = |w: &Window| w.table_mib + w.indexes_mib;
    let before = windows.iter().rfind(|w| w.phase == Phase::Before).map(size);
    let growth = before
        .zip(windows.last().map(size))
        .map(|(before, end)| end / before.max(f64::EPSILON));
    Ok(RunResult {
        per_s: slowest,
        growth,
        windows,
        ..RunResult::default()
    })
}
