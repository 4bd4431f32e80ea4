//! The command line, as clap parses it. Usage errors exit with status 2.

use std::time::Duration;

use bosun_queue::{JobState, Pooler};
use clap::{Args, Parser, Subcommand};

/// Bosun: a durable job queue, worker pool and saga engine on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "bosun", version, propagate_version = true)]
pub struct Cli {
    /// PostgreSQL URL (`postgres://user@host/db`). Every command needs one, except `demo`
    /// and `bench`, which without it start a throwaway PostgreSQL from the local installation
    /// and remove it on exit. Connect with least privilege (docs/security.md): `enqueue` as
    /// a member of bosun_enqueuer, `worker` of bosun_worker, the other commands of
    /// bosun_operator, `migrate` as the schema's owner.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// How the database is reached: `none` (directly, or a pooler in session mode) or
    /// `transaction`, through a pooler in transaction mode such as PgBouncer with
    /// `pool_mode = transaction`: no named prepared statements and no LISTEN (workers poll).
    #[arg(
        long,
        env = "BOSUN_POOLER",
        global = true,
        value_name = "MODE",
        default_value_t = Pooler::None
    )]
    pub pooler: Pooler,

    /// Log format on stderr: `text` for people, `json` (one object per line) for machines.
    /// Filter with RUST_LOG, e.g. `RUST_LOG=bosun_workers=debug`.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line, with the span fields (job id, kind, queue, attempt, saga).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations (idempotent; safe from many replicas at once).
    Migrate(MigrateArgs),
    /// Run a worker pool with the built-in example kinds (echo, sleep, fail, flaky).
    Worker(WorkerArgs),
    /// Enqueue a job.
    Enqueue(EnqueueArgs),
    /// List jobs, newest first.
    Jobs(JobsArgs),
    /// Show one job with its attempt errors.
    Job(JobArgs),
    /// Run a job again now, or every job matching filters with --all.
    Retry(RetryArgs),
    /// Cancel a job that has not finished (a running job's handler is told to stop).
    Cancel(CancelArgs),
    /// Queue statistics; pause or resume a queue.
    Queues(QueuesArgs),
    /// Registered worker processes: liveness, running jobs, the maintenance leader.
    Workers(WorkersArgs),
    /// List sagas (filter by state and kind), or start one.
    Sagas(SagasArgs),
    /// One saga and its step ledger as a timeline; cancel it or resume a stuck one.
    Saga(SagaArgs),
    /// Targets (hosts, pantries, ...) with their live and reaped work; register one.
    Targets(TargetsArgs),
    /// Expunge a target for good: its work is failed and its sagas unwind.
    Expunge(ExpungeArgs),
    /// Check the invariants Bosun's writes keep (sagas that cannot move, jobs of dead
    /// workers or expunged targets, counters); exit 1 when any is violated.
    Doctor(DoctorArgs),
    /// Measure throughput and latency on a scratch database (created and dropped on the
    /// server given; without DATABASE_URL a throwaway server).
    Bench(BenchArgs),
    /// Migrate, enqueue a few hundred example jobs (with failures and retries), work them
    /// with a live progress line, and print a summary.
    Demo(DemoArgs),
}

/// `bosun bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Runs of each workload (median and spread are reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Only these workloads, e.g. `W2,W3` (W0 W0j W1 W1b W1c W1w W1p W2 W2x4 W2r W3 W4 W5 S1 S4).
    /// Without it every workload but W5 runs (W5 takes minutes: name it).
    #[arg(long, value_delimiter = ',', value_parser = parse_workload)]
    pub only: Option<Vec<crate::bench::Workload>>,
    /// Jobs of W0, W1 and W2.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub jobs: u64,
    /// Jobs of W1b and W1p (one per transaction).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub single: u64,
    /// Jobs of W3 (about 20 ms apart).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub latency_jobs: u64,
    /// Sagas of S1 and S4 (three no-op steps each).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sagas: u64,
    /// W5: jobs offered per second (plain INSERTs every 10 ms).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub w5_rate: u64,
    /// W5: how long the load runs before the vacuum horizon is held.
    #[arg(long, default_value = "30s", value_parser = parse_bench_span)]
    pub w5_before: Duration,
    /// W5: how long a REPEATABLE READ transaction holds the vacuum horizon back.
    #[arg(long, default_value = "60s", value_parser = parse_bench_span)]
    pub w5_pin: Duration,
    /// W5: what that transaction read: `jobs` (bosun.jobs, as a report or pg_dump would) or
    /// `other` (only a table of the application's own).
    #[arg(long, default_value = "jobs", value_parser = parse_pin_kind)]
    pub w5_pin_kind: bosun_queue::bench::PinRead,
    /// W5: how long the load goes on after the horizon moves.
    #[arg(long, default_value = "60s", value_parser = parse_bench_span)]
    pub w5_after: Duration,
    /// One JSON object per workload and line.
    #[arg(long)]
    pub json: bool,
}

/// A span of W5: whole 10 s windows, from 10 s to a day.
fn parse_bench_span(text: &str) -> Result<Duration, String> {
    let span = parse_duration(text)?;
    let secs = span.as_secs();
    if span.subsec_nanos() != 0 || secs % 10 != 0 || !(10..=86_400).contains(&secs) {
        return Err(format!(
            "{text}: use whole 10 s windows from 10s to 24h (e.g. 60s, 10m)"
        ));
    }
    Ok(span)
}

fn parse_pin_kind(text: &str) -> Result<bosun_queue::bench::PinRead, String> {
    use bosun_queue::bench::PinRead;
    match text {
        "jobs" => Ok(PinRead::Jobs),
        "other" => Ok(PinRead::Other),
        _ => Err(format!("{text:?}: use jobs or other")),
    }
}

fn parse_workload(text: &str) -> Result<crate::bench::Workload, String> {
    use crate::bench::Workload;
    Workload::named(text).ok_or_else(|| {
        let names: Vec<&str> = Workload::ALL.into_iter().map(Workload::name).collect();
        format!("no workload {text:?}: use {}", names.join(", "))
    })
}

/// `bosun migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Revert down to this version instead (0 removes Bosun's schema and all its jobs).
    #[arg(long, value_name = "VERSION")]
    pub down_to: Option<i64>,
    /// Only print the current and latest versions.
    #[arg(long, conflicts_with = "down_to")]
    pub status: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues and their concurrency, e.g. `mail=8,default=32`.
    #[arg(long, default_value = "default=32", value_parser = parse_queues)]
    pub queues: QueueList,
    /// Also run the kinds `bosun bench` uses (`bench.started`, the saga `bench.noop3`).
    #[arg(long)]
    pub bench_kinds: bool,
    /// Do not LISTEN for notifications; poll only (implied by `--pooler transaction`).
    #[arg(long)]
    pub no_listen: bool,
    /// Serve Prometheus metrics at `http://ADDR/metrics`, e.g. `0.0.0.0:9464`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Poll for due jobs this often, e.g. `1s`, `250ms`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long running jobs may finish after SIGINT/SIGTERM before they are handed back.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How long a handler told to stop (its job or saga cancelled, its target expunged) may
    /// run on before it is aborted and its slot freed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub cancel_grace: Duration,
    /// This worker's id (default host:pid:random).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Renew this worker's lease this often.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,
    /// How long without a heartbeat before this worker's jobs are rescued by the leader.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Run leader election and maintenance (the rescuer) this often.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub maintenance_interval: Duration,
    /// When leading, sample queue depth and other database-wide metrics this often.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_interval: Duration,
    /// When leading, delete finished jobs past their retention this often (pruning is
    /// also bounded by the maintenance interval).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub prune_interval: Duration,
    /// Delete completed jobs this long after they finished.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub retain_completed: Duration,
    /// Delete failed jobs this long after they failed.
    #[arg(long, default_value = "7days", value_parser = parse_duration)]
    pub retain_failed: Duration,
    /// Delete cancelled jobs this long after they were cancelled.
    #[arg(long, default_value = "7days", value_parser = parse_duration)]
    pub retain_cancelled: Duration,
    /// Delete succeeded and compensated sagas (and their ledgers) this long after they
    /// finished. Stuck sagas are kept.
    #[arg(long, default_value = "7days", value_parser = parse_duration)]
    pub retain_sagas: Duration,
}

/// `--queues`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueList(pub Vec<(String, usize)>);

/// `bosun enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job's kind, e.g. `echo`, `sleep`, `flaky`.
    pub kind: String,
    /// The job's args, a JSON object.
    #[arg(default_value = "{}", value_parser = parse_json_object)]
    pub args: serde_json::Value,
    /// Queue.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Priority; lower runs first.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i16>,
    /// Run after this long, e.g. `10s`, `5m`.
    #[arg(long = "in", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run at this time (RFC 3339, e.g. 2030-01-01T00:00:00Z).
    #[arg(long)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Attempts before the job fails.
    #[arg(long)]
    pub max_attempts: Option<i32>,
    /// Deterministic name: enqueueing an existing key returns the existing job.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// The external thing the job acts on.
    #[arg(long)]
    pub target: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only this state.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
    /// Only this queue.
    #[arg(long, short)]
    pub queue: Option<String>,
    /// Only this kind.
    #[arg(long, short)]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Only jobs with an id below this (paging).
    #[arg(long)]
    pub before: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun job ID`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun retry`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["id", "all"])))]
pub struct RetryArgs {
    /// The job's id.
    pub id: Option<i64>,
    /// Retry every job in --state (default failed), optionally filtered by --queue / --kind.
    #[arg(long)]
    pub all: bool,
    /// With --all: only this queue.
    #[arg(long, short, requires = "all", conflicts_with = "id")]
    pub queue: Option<String>,
    /// With --all: only this kind.
    #[arg(long, short, requires = "all", conflicts_with = "id")]
    pub kind: Option<String>,
    /// With --all: the state to retry.
    #[arg(
        long,
        default_value = "failed",
        value_parser = parse_state,
        requires = "all",
        conflicts_with = "id"
    )]
    pub state: JobState,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun cancel ID`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job's id.
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun queues`.
#[derive(Debug, Args)]
pub struct QueuesArgs {
    /// What to do (default: list).
    #[command(subcommand)]
    pub action: Option<QueueAction>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `bosun queues pause|resume`.
#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Counts by state per queue (the default).
    List,
    /// Stop every replica from claiming jobs of this queue.
    Pause {
        /// The queue.
        name: String,
    },
    /// Let replicas claim jobs of this queue again.
    Resume {
        /// The queue.
        name: String,
    },
}

/// `bosun workers`.
#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun sagas`.
#[derive(Debug, Args)]
pub struct SagasArgs {
    /// Start a saga instead of listing.
    #[command(subcommand)]
    pub action: Option<SagasAction>,
    /// Only this state.
    #[arg(long, value_parser = parse_saga_state)]
    pub state: Option<bosun_queue::SagaState>,
    /// Only this kind.
    #[arg(long, short)]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `bosun sagas start`.
#[derive(Debug, Subcommand)]
pub enum SagasAction {
    /// Start a saga; the same kind, key and inputs again return the same saga.
    Start {
        /// Saga kind, e.g. `example.provision`.
        kind: String,
        /// Idempotency key naming this saga.
        key: String,
        /// Inputs, a JSON object.
        #[arg(default_value = "{}", value_parser = parse_json_object)]
        inputs: serde_json::Value,
        /// The target its steps act on: when it is expunged the saga unwinds.
        #[arg(long)]
        target: Option<String>,
    },
}

/// `bosun targets`.
#[derive(Debug, Args)]
pub struct TargetsArgs {
    /// Register a target instead of listing.
    #[command(subcommand)]
    pub action: Option<TargetsAction>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `bosun targets register`.
#[derive(Debug, Subcommand)]
pub enum TargetsAction {
    /// Make a target known before work names it (idempotent).
    Register {
        /// The target's name, as jobs and sagas give it.
        name: String,
        /// What sort of thing it is, e.g. `host` or `pantry`.
        #[arg(long)]
        kind: Option<String>,
    },
}

/// `bosun expunge TARGET`.
#[derive(Debug, Args)]
pub struct ExpungeArgs {
    /// The target.
    pub target: String,
    /// Why, recorded on the target and on every reaped job.
    #[arg(long)]
    pub reason: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `bosun doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// How long a state may last before it counts (a dead worker's jobs wait for the
    /// rescuer, an expunged target's for the reaper).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub grace: Duration,
    /// Print JSON (an array of violations).
    #[arg(long)]
    pub json: bool,
}

/// `bosun saga ID`.
#[derive(Debug, Args)]
pub struct SagaArgs {
    /// The saga's id.
    pub id: uuid::Uuid,
    /// Cancel it: it stops at the next step boundary and compensates.
    #[arg(long, conflicts_with_all = ["retry", "delete"])]
    pub cancel: bool,
    /// Resume it: a stuck saga runs its failed undo again; a saga whose step has no live job
    /// (cancelled, failed or pruned) runs that step again.
    #[arg(long, conflicts_with = "delete")]
    pub retry: bool,
    /// Delete a saga that never started a step (a typo'd kind, say), with its waiting job;
    /// its key is free again.
    #[arg(long)]
    pub delete: bool,
    /// Print JSON (the saga and its steps).
    #[arg(long)]
    pub json: bool,
}

/// `bosun demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many jobs to enqueue.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub jobs: u32,
    /// Worker concurrency.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| {
        let reason = match e {
            // humantime's message quotes the whole unit, however long.
            humantime::DurationError::UnknownUnit { unit, .. } if !unit.is_empty() => {
                format!("unknown time unit {}", bosun_queue::quote_short(&unit))
            }
            other => other.to_string(),
        };
        format!("{reason} (examples: 500ms, 10s, 5m)")
    })
}

fn parse_state(text: &str) -> Result<JobState, String> {
    text.parse().map_err(|e: bosun_queue::Error| e.to_string())
}

fn parse_saga_state(text: &str) -> Result<bosun_queue::SagaState, String> {
    text.parse().map_err(|e: bosun_queue::Error| e.to_string())
}

fn parse_json_object(text: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("args must be a JSON object, e.g. '{\"ms\": 100}'".into())
    }
}

fn parse_queues(text: &str) -> Result<QueueList, String> {
    let mut queues = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, concurrency) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not NAME=CONCURRENCY (e.g. default=32)"))?;
        if !bosun_queue::is_valid_queue_name(name) {
            return Err(format!(
                "queue {name:?} is not a valid name: use 1 to 64 letters, digits, '_', '.' or '-'"
            ));
        }
        let concurrency: usize = concurrency.parse().ok().filter(|c| *c > 0).ok_or_else(|| {
            format!("concurrency of {name:?} must be a whole number above 0, got {concurrency:?}")
        })?;
        if queues.iter().any(|(q, _)| q == name) {
            return Err(format!("queue {name:?} is listed twice"));
        }
        queues.push((name.to_string(), concurrency));
    }
    if queues.is_empty() {
        return Err("give at least one queue, e.g. default=32".into());
    }
    Ok(QueueList(queues))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_reject_bad_entries() {
        assert_eq!(
            parse_queues("mail=8,default=32").unwrap(),
            QueueList(vec![("mail".into(), 8), ("default".into(), 32)])
        );
        assert!(parse_queues("mail")
            .unwrap_err()
            .contains("NAME=CONCURRENCY"));
        assert!(parse_queues("mail=0").unwrap_err().contains("above 0"));
        assert!(parse_queues("bad name=1")
            .unwrap_err()
            .contains("not a valid name"));
        assert!(parse_queues("a=1,a=2").unwrap_err().contains("twice"));
        assert!(parse_queues("").is_err());
    }

    #[test]
    fn args_must_be_an_object() {
        assert!(parse_json_object("[1]").is_err());
        assert!(parse_json_object("{").is_err());
        assert!(parse_json_object("{\"ms\": 1}").is_ok());
    }

    #[test]
    fn bench_help_names_every_workload() {
        use clap::CommandFactory;
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("bench")
            .expect("a bench subcommand")
            .render_help()
            .to_string();
        let listed: Vec<&str> = help.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        for workload in crate::bench::Workload::ALL {
            assert!(
                listed.contains(&workload.name()),
                "{workload} missing from:\n{help}"
            );
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
