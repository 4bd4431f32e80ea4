//! The workloads of `bosun bench`, one function each. Each gets a scratch database with a
//! fresh schema and returns what it measured.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use bosun_queue::{
    bench::{self as storage, Probe},
    periodic::database_now,
    runtime::{job_claim, job_complete_many},
    Client, JobState, NewJob,
};

use super::{RunResult, Scratch, Sizes};

/// Batch size of bulk enqueues (W1, and the setup of W0 and W2).
const ENQUEUE_BATCH: usize = 10_000;
/// W0: connections and rows per claim.
const CEILING_CONNECTIONS: usize = 4;
const CEILING_BATCH: i64 = 100;
/// W3: pause between two enqueues.
const LATENCY_GAP: Duration = Duration::from_millis(20);
/// How long a drain may take before the run fails.
const DEADLINE: Duration = Duration::from_secs(600);
/// W2r: completed jobs kept in the table, in multiples of the jobs drained.
const RETAINED: u64 = 10;
/// W4: rounds of enqueue-then-drain, and how long completed jobs are kept meanwhile (also
/// how often they are pruned).
const SUSTAINED_ROUNDS: u64 = 16;
const SUSTAINED_RETENTION: &str = "1s";

/// One of the workloads (the table in the module docs of [`crate::bench`] says what each
/// measures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    W0,
    W0j,
    W1,
    W1b,
    W1c,
    W1w,
    W1p,
    W2,
    W2x4,
    W2r,
    W3,
    W4,
    W5,
    S1,
    S4,
}

impl Workload {
    /// Every workload, in the order they run.
    pub const ALL: [Workload; 15] = [
        Workload::W0,
        Workload::W0j,
        Workload::W1,
        Workload::W1b,
        Workload::W1c,
        Workload::W1w,
        Workload::W1p,
        Workload::W2,
        Workload::W2x4,
        Workload::W2r,
        Workload::W3,
        Workload::W4,
        Workload::W5,
        Workload::S1,
        Workload::S4,
    ];

    /// Its name, as `--only` takes it and the report prints it.
    pub fn name(self) -> &'static str {
        match self {
            Workload::W0 => "W0",
            Workload::W0j => "W0j",
            Workload::W1 => "W1",
            Workload::W1b => "W1b",
            Workload::W1c => "W1c",
            Workload::W1w => "W1w",
            Workload::W1p => "W1p",
            Workload::W2 => "W2",
            Workload::W2x4 => "W2x4",
            Workload::W2r => "W2r",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
            Workload::S1 => "S1",
            Workload::S4 => "S4",
        }
    }

    /// The workload named `text`, in any case.
    pub fn named(text: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(text))
    }

    /// Whether it runs only when `--only` names it (it takes minutes).
    pub fn only_when_named(self) -> bool {
        self == Workload::W5
    }

    /// Whether it drains jobs through workers (its rate is reported against W0's ceiling).
    pub fn drains(self) -> bool {
        matches!(self, Workload::W2 | Workload::W2x4 | Workload::W2r)
    }

    /// How many jobs (or sagas) it handles at `sizes`.
    pub fn size(self, sizes: Sizes) -> u64 {
        match self {
            Workload::W1b | Workload::W1c | Workload::W1w | Workload::W1p => sizes.single,
            Workload::W3 => sizes.latency,
            Workload::S1 | Workload::S4 => sizes.sagas,
            Workload::W4 => sizes.jobs * SUSTAINED_ROUNDS,
            Workload::W5 => sizes.pinned.jobs(),
            _ => sizes.jobs,
        }
    }

    /// One run of it on `scratch`.
    pub async fn run(self, scratch: &Scratch, sizes: Sizes) -> anyhow::Result<RunResult> {
        match self {
            Workload::W0 => ceiling(scratch, sizes.jobs).await,
            Workload::W0j => ceiling_on_jobs(scratch, sizes.jobs).await,
            Workload::W1 => bulk_enqueue(scratch, sizes.jobs).await,
            Workload::W1b => single_enqueue(scratch, sizes.single).await,
            Workload::W1c => concurrent_enqueue(scratch, sizes.single).await,
            Workload::W1w => concurrent_enqueue_to_a_worker(scratch, sizes.single).await,
            Workload::W1p => plain_inserts(scratch, sizes.single).await,
            Workload::W2 => drain(scratch, sizes.jobs, 1).await,
            Workload::W2x4 => drain(scratch, sizes.jobs, 4).await,
            Workload::W2r => drain_with_history(scratch, sizes.jobs).await,
            Workload::W4 => sustained(scratch, sizes.jobs).await,
            Workload::W5 => super::pinned::run(scratch, sizes.pinned).await,
            Workload::W3 => latency(scratch, sizes.latency).await,
            Workload::S1 => sagas(scratch, sizes.sagas, 1).await,
            Workload::S4 => sagas(scratch, sizes.sagas, 4).await,
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn per_s(count: u64, elapsed: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)] // job counts far below 2^52
    let count = count as f64;
    count / elapsed.as_secs_f64().max(1e-9)
}

async fn enqueue_noops(scratch: &Scratch, count: u64) -> anyhow::Result<()> {
    let mut left = usize::try_from(count)?;
    while left > 0 {
        let batch = left.min(ENQUEUE_BATCH);
        let jobs = (0..batch).map(|_| NewJob::new("echo", serde_json::json!({})));
        scratch.client.enqueue_many(jobs).await?;
        left -= batch;
    }
    Ok(())
}

/// W0: the plain-SQL claim-and-complete cycle on a minimal table, several connections.
async fn ceiling(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    storage::ceiling_create(scratch.client.pool(), i64::try_from(count)?).await?;
    let started = Instant::now();
    on_connections(scratch, |client| async move {
        storage::ceiling_drain(client.pool(), CEILING_BATCH).await?;
        anyhow::Ok(())
    })
    .await?;
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// W0j: the same cycle through Bosun's own claim and batched completion statements on
/// `bosun.jobs`: what the table and the statements cost before any worker runtime runs.
async fn ceiling_on_jobs(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    enqueue_noops(scratch, count).await?;
    let kinds = vec!["echo".to_string()];
    let started = Instant::now();
    on_connections(scratch, |client| {
        let kinds = kinds.clone();
        async move {
            let pool = client.pool();
            loop {
                let jobs = job_claim(pool, "default", &kinds, CEILING_BATCH, "w0j")
                    .await?
                    .jobs;
                if jobs.is_empty() {
                    return anyhow::Ok(());
                }
                let held: Vec<bosun_queue::Lease> =
                    jobs.iter().map(bosun_queue::Job::lease).collect();
                job_complete_many(pool, &held).await?;
            }
        }
    })
    .await?;
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// Run `cycle` on [`CEILING_CONNECTIONS`] tasks at once and wait for all of them.
async fn on_connections<F, Fut>(scratch: &Scratch, cycle: F) -> anyhow::Result<()>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let tasks: Vec<_> = (0..CEILING_CONNECTIONS)
        .map(|_| tokio::spawn(cycle(scratch.client.clone())))
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// W1: bulk enqueue.
async fn bulk_enqueue(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    enqueue_noops(scratch, count).await?;
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// W1b: one job per transaction.
async fn single_enqueue(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    for _ in 0..count {
        scratch
            .client
            .enqueue(NewJob::new("echo", serde_json::json!({})))
            .await?;
    }
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// Connections of W1c.
const CONCURRENT_ENQUEUERS: u64 = 8;

/// W1c: W1b from [`CONCURRENT_ENQUEUERS`] connections at once, with no worker waiting for
/// jobs: what an application enqueueing from many requests gets while its workers are busy.
async fn concurrent_enqueue(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let mut enqueuers = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT_ENQUEUERS {
        let client = scratch.client.clone();
        let share = count / CONCURRENT_ENQUEUERS + u64::from(i < count % CONCURRENT_ENQUEUERS);
        enqueuers.spawn(async move {
            for _ in 0..share {
                client
                    .enqueue(NewJob::new("echo", serde_json::json!({})))
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = enqueuers.join_next().await {
        done??;
    }
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// W1w: W1c while a worker runs the jobs as they come, so that it keeps going back to
/// waiting for them: what an application enqueueing from many requests gets while its
/// workers keep up. Enqueues per second; the run ends when the worker has done them all.
async fn concurrent_enqueue_to_a_worker(
    scratch: &Scratch,
    count: u64,
) -> anyhow::Result<RunResult> {
    let workers = Workers::start(scratch, 1)?;
    wait_until(scratch, Probe::WorkerWaiting).await?;
    let enqueued = concurrent_enqueue(scratch, count).await?;
    wait_until(scratch, Probe::JobsDrained).await?;
    drop(workers);
    Ok(enqueued)
}

/// W1p: W1b's yardstick, a plain single-row INSERT into `bosun.jobs` per transaction, the
/// same commit settings.
async fn plain_inserts(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    for _ in 0..count {
        storage::job_insert_plain(scratch.client.pool(), "echo", &serde_json::json!({})).await?;
    }
    Ok(RunResult {
        per_s: per_s(count, started.elapsed()),
        ..RunResult::default()
    })
}

/// `bosun worker` processes on the scratch database.
pub(super) struct Workers(Vec<Child>);

impl Workers {
    fn start(scratch: &Scratch, count: usize) -> anyhow::Result<Workers> {
        Workers::start_with(scratch, count, &[])
    }

    /// `count` workers with `extra` arguments.
    pub(super) fn start_with(
        scratch: &Scratch,
        count: usize,
        extra: &[&str],
    ) -> anyhow::Result<Workers> {
        let exe = std::env::current_exe().context("finding the bosun binary")?;
        let mut children = Vec::new();
        for i in 0..count {
            children.push(
                Command::new(&exe)
                    .args([
                        "worker",
                        "--bench-kinds",
                        "--queues",
                        "default=32",
                        "--worker-id",
                    ])
                    .arg(format!("bench-{i}"))
                    .args(extra)
                    .env("DATABASE_URL", &scratch.url)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("starting bosun worker")?,
            );
        }
        Ok(Workers(children))
    }

    /// The largest peak RSS among the workers, MiB (Linux only).
    fn peak_rss_mib(&self) -> Option<f64> {
        self.0
            .iter()
            .filter_map(|child| {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
                let kib: f64 = status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmHWM:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kib / 1024.0)
            })
            .reduce(f64::max)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait until `probe` holds, polling every 10 ms.
pub(super) async fn wait_until(scratch: &Scratch, probe: Probe) -> anyhow::Result<()> {
    wait_polling(scratch, probe, Duration::from_millis(10)).await
}

/// Wait until `probe` holds, polling every `every`.
async fn wait_polling(scratch: &Scratch, probe: Probe, every: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if probe.holds(scratch.client.pool()).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("gave up after {DEADLINE:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// W2: queued no-op jobs drained by `processes` workers, start-up included. The time is the
/// database's, from just before the workers start to the last completion, so that the
/// check for the end can be rare: each check walks the claim index's entries for every job
/// claimed so far (0.8 ms halfway through a drain), which every 10 ms would take 4% of a
/// two-core machine from the workers being measured.
async fn drain(scratch: &Scratch, count: u64, processes: usize) -> anyhow::Result<RunResult> {
    enqueue_noops(scratch, count).await?;
    let started = database_now(scratch.client.pool()).await?;
    let workers = Workers::start(scratch, processes)?;
    wait_polling(scratch, Probe::JobsDrained, Duration::from_millis(100)).await?;
    let unfinished = storage::jobs_count_not_completed(scratch.client.pool()).await?;
    if unfinished > 0 {
        bail!(
            "{unfinished} of {} not completed",
            crate::commands::count(count, "job", "jobs")
        );
    }
    let secs = storage::jobs_finished_since(scratch.client.pool(), started).await?;
    let elapsed = Duration::from_secs_f64(secs.max(f64::EPSILON));
    Ok(RunResult {
        per_s: per_s(count, elapsed),
        rss_mib: workers.peak_rss_mib(),
        ..RunResult::default()
    })
}

/// W2r: W2 on a table that keeps [`RETAINED`] times as many completed jobs, finished an hour
/// ago and vacuumed, as a table under a day's retention would: the claim must not slow down
/// with the history it keeps.
async fn drain_with_history(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    storage::jobs_insert_history(scratch.client.pool(), i64::try_from(count * RETAINED)?).await?;
    let completed = || storage::jobs_count_in_state(scratch.client.pool(), JobState::Completed);
    let before = completed().await?;
    let result = drain(scratch, count, 1).await;
    let after = completed().await?;
    if after != before + i64::try_from(count)? {
        bail!("{after} completed jobs after the drain, {before} before");
    }
    result
}

/// W4: sustained load. [`SUSTAINED_ROUNDS`] rounds, each enqueueing `count` jobs and waiting
/// until one worker, keeping completed jobs [`SUSTAINED_RETENTION`], has drained them. Reports
/// jobs/s over the whole run and how much `bosun.jobs` with its indexes grew over the second
/// half of the rounds: the table first grows to hold a round's jobs, their dead versions and
/// the free space between two vacuums, and from then on pruning and vacuum should hold it
/// flat (about 1), where a table that grew by the same amount every round would be near 2.
async fn sustained(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    let retention = ["--retain-completed", SUSTAINED_RETENTION];
    let pruning = ["--prune-interval", SUSTAINED_RETENTION];
    let workers = Workers::start_with(scratch, 1, &[retention, pruning].concat())?;
    let started = Instant::now();
    let mut sizes = Vec::new();
    for _ in 0..SUSTAINED_ROUNDS {
        enqueue_noops(scratch, count).await?;
        wait_until(scratch, Probe::JobsDrained).await?;
        let bytes = storage::jobs_total_size(scratch.client.pool()).await?;
        #[allow(clippy::cast_precision_loss)] // sizes far below 2^52
        sizes.push(bytes as f64);
    }
    let elapsed = started.elapsed();
    drop(workers);
    Ok(RunResult {
        per_s: per_s(count * SUSTAINED_ROUNDS, elapsed),
        growth: Some(sizes[sizes.len() - 1] / sizes[sizes.len() / 2 - 1]),
        ..RunResult::default()
    })
}

/// W3: enqueue-to-handler-start latency on an idle worker: from the start of the enqueue's
/// transaction (the job's `created_at`, by the database's clock) to the moment the handler
/// began (written by the `bench.started` kind, by the worker's clock). The database runs on
/// this host, so the two clocks are one.
async fn latency(scratch: &Scratch, count: u64) -> anyhow::Result<RunResult> {
    storage::starts_create(scratch.client.pool()).await?;
    let workers = Workers::start(scratch, 1)?;
    wait_until(scratch, Probe::WorkerRegistered).await?;
    // Let it settle into waiting for notifications.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for _ in 0..count {
        scratch
            .client
            .enqueue(NewJob::new("bench.started", serde_json::json!({})))
            .await?;
        tokio::time::sleep(LATENCY_GAP).await;
    }
    wait_until(scratch, Probe::JobsDrained).await?;
    let elapsed = started.elapsed();
    let (stamped, latency_ms) = storage::start_latency(scratch.client.pool()).await?;
    drop(workers);
    anyhow::ensure!(
        u64::try_from(stamped) == Ok(count),
        "W3: {stamped} of {count} handlers wrote their start"
    );
    Ok(RunResult {
        per_s: per_s(count, elapsed),
        latency_ms: Some(latency_ms),
        ..RunResult::default()
    })
}

/// S1 / S4: sagas of three no-op steps (`bench.noop3`), started up front, run by
/// `processes` workers.
async fn sagas(scratch: &Scratch, count: u64, processes: usize) -> anyhow::Result<RunResult> {
    storage::sagas_start_many(scratch.client.pool(), "bench.noop3", i64::try_from(count)?).await?;
    let started = Instant::now();
    let workers = Workers::start(scratch, processes)?;
    wait_until(scratch, Probe::SagasSucceeded).await?;
    let elapsed = started.elapsed();
    Ok(RunResult {
        per_s: per_s(count, elapsed),
        rss_mib: workers.peak_rss_mib(),
        ..RunResult::default()
    })
}
