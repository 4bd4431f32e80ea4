//! One function per subcommand: call the library, present the result.

mod demo;
mod sagas;
mod targets;

use anyhow::Context;
use bosun_queue::{
    invariants::check_invariants, liveness::kinds_never_served, migrate, quote_short, Job,
    JobFilter, NewJob,
};
use bosun_workers::{maintenance::pruner::PrunerConfig, shutdown_signal, WorkerPool};
use serde_json::json;

use crate::{
    bench,
    cli::{
        CancelArgs, Cli, Command, DoctorArgs, EnqueueArgs, JobArgs, JobsArgs, MigrateArgs,
        QueueAction, QueuesArgs, RetryArgs, WorkerArgs, WorkersArgs,
    },
    connect::{ensure_migrated, open, open_or_throwaway, Database},
    kinds,
    render::{clip, print_json, printable, relative, short_duration, table},
    say,
};

/// Run the parsed command line.
///
/// # Errors
/// Whatever the command failed with; `main` prints it and exits with status 1.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (url, pooler) = (cli.database_url.as_deref(), cli.pooler);
    match cli.command {
        Command::Migrate(args) => migrate_cmd(&open(url, pooler).await?, &args).await,
        Command::Demo(args) => demo::run(&open_or_throwaway(url, pooler).await?, &args).await,
        Command::Bench(_) if pooler.is_transaction() => Err(Usage(
            "bosun bench measures a direct connection (it creates and drops a scratch database, and its workloads use prepared statements): run it without --pooler transaction".into(),
        )
        .into()),
        Command::Bench(args) => {
            crate::bench::run(&open_or_throwaway(url, pooler).await?, &args).await
        }
        command => {
            let db = open(url, pooler).await?;
            ensure_migrated(&db.client).await?;
            match command {
                Command::Worker(args) => worker(&db, args).await,
                Command::Enqueue(args) => enqueue(&db, args).await,
                Command::Jobs(args) => jobs(&db, args).await,
                Command::Job(args) => job(&db, &args).await,
                Command::Retry(args) => retry(&db, args).await,
                Command::Cancel(args) => cancel(&db, &args).await,
                Command::Queues(args) => queues(&db, args).await,
                Command::Workers(args) => workers(&db, &args).await,
                Command::Sagas(args) => sagas::list_or_start(&db, args).await,
                Command::Saga(args) => sagas::show(&db, &args).await,
                Command::Targets(args) => targets::list_or_register(&db, args).await,
                Command::Expunge(args) => targets::expunge(&db, &args).await,
                Command::Doctor(args) => doctor(&db, &args).await,
                Command::Migrate(_) | Command::Demo(_) | Command::Bench(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// The command ran and found something wrong (`bosun doctor`); what it found is printed, so
/// `main` exits with this status and says nothing more.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The command line asks for something that cannot be done as given (no database, a URL
/// that is not PostgreSQL's): `main` prints the message and exits with status 2, as for a
/// usage error clap finds.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

async fn doctor(db: &Database, args: &DoctorArgs) -> anyhow::Result<()> {
    let violations = check_invariants(db.client.db(), args.grace).await?;
    if args.json {
        print_json(&violations)?;
    } else if violations.is_empty() {
        say!("no invariant is violated");
    } else {
        let mut out = table(&["invariant", "subject", "detail"]);
        for violation in &violations {
            out.add_row(vec![
                violation.invariant.clone(),
                violation.subject.clone(),
                violation.detail.clone(),
            ]);
        }
        say!("{out}");
        say!("{}", count(violations.len(), "violation", "violations"));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Exit(1).into())
    }
}

/// `1 job`, `2 jobs`: every number printed with a noun goes through here.
pub(crate) fn count<N>(n: N, one: &str, many: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8>,
{
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

async fn migrate_cmd(db: &Database, args: &MigrateArgs) -> anyhow::Result<()> {
    let pool = db.client.db();
    let latest = migrate::latest_version();
    let (changed, current, verb) = if args.status {
        (Vec::new(), migrate::current_version(pool).await?, "")
    } else if let Some(target) = args.down_to {
        let report = migrate::migrate_down(pool, target).await?;
        (report.changed, report.current, "reverted")
    } else {
        let report = migrate::migrate_up(pool).await?;
        (report.changed, report.current, "applied")
    };
    if args.json {
        return print_json(&json!({"current": current, "latest": latest, "changed": changed}));
    }
    if !verb.is_empty() && !changed.is_empty() {
        say!("{verb} migrations {changed:?}");
    }
    say!("schema at version {current} (this bosun knows up to {latest})");
    Ok(())
}

async fn worker(db: &Database, args: WorkerArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.metrics_addr {
        crate::metrics::serve(addr)?;
    }
    let mut builder = WorkerPool::builder(db.client.clone())
        .registry(kinds::registry())
        .saga(kinds::provision_saga())
        .listen(!args.no_listen)
        .poll_interval(args.poll_interval)
        .shutdown_timeout(args.shutdown_timeout)
        .cancel_grace(args.cancel_grace)
        .heartbeat_interval(args.heartbeat_interval)
        .lease(args.lease)
        .maintenance_interval(args.maintenance_interval)
        .sample_interval(args.sample_interval)
        .prune_interval(args.prune_interval)
        .pruner(PrunerConfig {
            retain_completed: args.retain_completed,
            retain_failed: args.retain_failed,
            retain_cancelled: args.retain_cancelled,
            retain_sagas: args.retain_sagas,
            ..PrunerConfig::default()
        });
    if args.bench_kinds {
        builder = bench::kinds::with_bench_kinds(builder);
    }
    for (queue, concurrency) in args.queues.0 {
        builder = builder.queue(queue, concurrency);
    }
    if let Some(id) = args.worker_id {
        builder = builder.worker_id(id);
    }
    let pool = builder.build()?;
    let report = pool.run_until(shutdown_signal()).await?;
    if !report.released.is_empty() {
        eprintln!(
            "bosun: handed {} back to their queues",
            count(report.released.len(), "unfinished job", "unfinished jobs")
        );
    }
    Ok(())
}

async fn enqueue(db: &Database, args: EnqueueArgs) -> anyhow::Result<()> {
    let mut job = NewJob::new(args.kind, args.args).tags(args.tags);
    if let Some(queue) = args.queue {
        job = job.queue(queue);
    }
    if let Some(priority) = args.priority {
        job = job.priority(priority);
    }
    if let Some(delay) = args.delay {
        let at = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|delay| chrono::Utc::now().checked_add_signed(delay))
            .with_context(|| {
                format!(
                    "--in {} is too far in the future",
                    humantime::format_duration(delay)
                )
            })?;
        job = job.scheduled_at(at);
    }
    if let Some(at) = args.at {
        job = job.scheduled_at(at);
    }
    if let Some(max) = args.max_attempts {
        job = job.max_attempts(max);
    }
    if let Some(key) = args.unique_key {
        job = job.unique_key(key);
    }
    if let Some(target) = args.target {
        job = job.target(target);
    }
    let kind = job.kind().to_string();
    let enqueued = db.client.enqueue(job).await?;
    warn_unless_served(db, &kind, "job").await?;
    if args.json {
        return print_json(&enqueued);
    }
    if enqueued.inserted {
        say!("enqueued job {}", enqueued.id);
    } else {
        say!(
            "job {} already exists with that unique key; nothing enqueued",
            enqueued.id
        );
    }
    Ok(())
}

/// If no worker has ever served `kind`, say so on stderr: the work waits until a worker
/// that registers the kind runs, which for a typo is never.
pub(crate) async fn warn_unless_served(
    db: &Database,
    kind: &str,
    what: &str,
) -> anyhow::Result<()> {
    let never = kinds_never_served(db.client.db(), &[kind.to_string()]).await?;
    if !never.is_empty() {
        eprintln!(
            "bosun: warning: no worker has ever served kind {}; the {what} waits until a worker that registers it runs (check the kind for a typo)",
            printable(&quote_short(kind))
        );
    }
    Ok(())
}

/// Of `kinds`, those no worker has ever served.
pub(crate) async fn unserved(
    db: &Database,
    kinds: impl Iterator<Item = String>,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut kinds: Vec<String> = kinds.collect();
    kinds.sort_unstable();
    kinds.dedup();
    Ok(kinds_never_served(db.client.db(), &kinds)
        .await?
        .into_iter()
        .collect())
}

/// A row of a listing with whether its kind has ever been served, for `--json`.
#[derive(serde::Serialize)]
pub(crate) struct Listed<'a, T: serde::Serialize> {
    #[serde(flatten)]
    pub(crate) row: &'a T,
    pub(crate) kind_served: bool,
}

async fn jobs(db: &Database, args: JobsArgs) -> anyhow::Result<()> {
    let filter = JobFilter {
        state: args.state,
        queue: args.queue,
        kind: args.kind,
        before_id: args.before,
        limit: Some(args.limit),
    };
    let jobs = db.client.job_list(&filter).await?;
    let unserved = unserved(db, jobs.iter().map(|j| j.kind.clone())).await?;
    if args.json {
        let listed: Vec<_> = jobs
            .iter()
            .map(|row| Listed {
                row,
                kind_served: !unserved.contains(&row.kind),
            })
            .collect();
        return print_json(&listed);
    }
    let mut out = table(&[
        "id",
        "kind",
        "queue",
        "state",
        "attempt",
        "pri",
        "scheduled",
        "served",
        "last error",
    ]);
    for job in &jobs {
        let last_error = job
            .attempt_errors()
            .last()
            .map(|e| clip(&e.error, 48))
            .unwrap_or_default();
        out.add_row(vec![
            job.id.to_string(),
            job.kind.clone(),
            job.queue.clone(),
            job.state.to_string(),
            format!("{}/{}", job.attempt, job.max_attempts),
            job.priority.to_string(),
            relative(job.scheduled_at),
            served_mark(&unserved, &job.kind),
            last_error,
        ]);
    }
    say!("{out}");
    say!("{}", count(jobs.len(), "job", "jobs"));
    Ok(())
}

/// `yes`, or `NO` for a kind no worker has ever served.
pub(crate) fn served_mark(unserved: &std::collections::HashSet<String>, kind: &str) -> String {
    if unserved.contains(kind) { "NO" } else { "yes" }.to_string()
}

async fn job(db: &Database, args: &JobArgs) -> anyhow::Result<()> {
    let job = db.client.job_get(args.id).await?;
    if args.json {
        return print_json(&job);
    }
    print_job(&job)
}

fn print_job(job: &Job) -> anyhow::Result<()> {
    let when = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(
            || "-".to_string(),
            |at| format!("{} ({})", at.to_rfc3339(), relative(at)),
        )
    };
    say!("job {}  {}  [{}]", job.id, printable(&job.kind), job.state);
    say!(
        "  queue        {}  (priority {})",
        printable(&job.queue),
        job.priority
    );
    say!("  attempt      {} of {}", job.attempt, job.max_attempts);
    say!("  scheduled    {}", when(Some(job.scheduled_at)));
    say!("  created      {}", when(Some(job.created_at)));
    say!(
        "  attempted    {}{}",
        when(job.attempted_at),
        job.attempted_by
            .as_deref()
            .map(|w| format!(" by {}", printable(w)))
            .unwrap_or_default()
    );
    say!("  finalized    {}", when(job.finalized_at));
    if let Some(key) = &job.unique_key {
        say!("  unique key   {}", printable(key));
    }
    if let Some(target) = &job.target {
        say!("  target       {}", printable(target));
    }
    if !job.tags.is_empty() {
        say!("  tags         {}", printable(&job.tags.join(", ")));
    }
    say!(
        "  args         {}",
        printable(&serde_json::to_string(&job.args)?)
    );
    let errors = job.attempt_errors();
    if !errors.is_empty() {
        say!("  errors:");
        for error in errors {
            say!(
                "    attempt {} at {} [{}]{}: {}",
                error.attempt,
                error.at.to_rfc3339(),
                printable(error.kind.as_deref().unwrap_or("error")),
                error
                    .worker
                    .as_deref()
                    .map(|w| format!(" on {}", printable(w)))
                    .unwrap_or_default(),
                printable(&error.error)
            );
        }
    }
    Ok(())
}

async fn retry(db: &Database, args: RetryArgs) -> anyhow::Result<()> {
    if let Some(id) = args.id {
        let job = db.client.retry_job(id).await?;
        if args.json {
            return print_json(&job);
        }
        say!(
            "job {} is {} (attempt {} of {} used)",
            job.id,
            job.state,
            job.attempt,
            job.max_attempts
        );
        return Ok(());
    }
    let jobs = db
        .client
        .retry_jobs(args.queue.as_deref(), args.kind.as_deref(), args.state)
        .await?;
    if args.json {
        return print_json(&jobs.iter().map(|j| j.id).collect::<Vec<_>>());
    }
    let state = args.state;
    say!(
        "{} available again",
        count(
            jobs.len(),
            &format!("{state} job is"),
            &format!("{state} jobs are")
        )
    );
    Ok(())
}

async fn cancel(db: &Database, args: &CancelArgs) -> anyhow::Result<()> {
    let job = db.client.cancel_job(args.id).await?;
    if args.json {
        return print_json(&job);
    }
    say!("job {} cancelled", job.id);
    Ok(())
}

async fn queues(db: &Database, args: QueuesArgs) -> anyhow::Result<()> {
    match args.action.unwrap_or(QueueAction::List) {
        QueueAction::List => {
            let stats = db
                .client
                .queue_stats()
                .await
                .context("reading bosun.queue_stats")?;
            if args.json {
                return print_json(&stats);
            }
            let mut out = table(&[
                "queue",
                "paused",
                "scheduled",
                "available",
                "running",
                "retryable",
                "completed",
                "failed",
                "cancelled",
                "oldest due",
            ]);
            for s in &stats {
                out.add_row(vec![
                    s.queue.clone(),
                    if s.paused { "yes" } else { "no" }.to_string(),
                    s.scheduled.to_string(),
                    s.available.to_string(),
                    s.running.to_string(),
                    s.retryable.to_string(),
                    s.completed.to_string(),
                    s.failed.to_string(),
                    s.cancelled.to_string(),
                    s.oldest_available_secs
                        .map(|secs| short_duration(seconds(secs)))
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            say!("{out}");
            Ok(())
        }
        QueueAction::Pause { name } => {
            let queue = db.client.pause_queue(&name).await?;
            if args.json {
                return print_json(&queue);
            }
            say!(
                "queue {} paused: no replica claims its jobs until `bosun queues resume {}`",
                queue.name,
                queue.name
            );
            Ok(())
        }
        QueueAction::Resume { name } => {
            let queue = db.client.resume_queue(&name).await?;
            if args.json {
                return print_json(&queue);
            }
            say!("queue {} resumed", queue.name);
            Ok(())
        }
    }
}

async fn workers(db: &Database, args: &WorkersArgs) -> anyhow::Result<()> {
    let workers = bosun_queue::liveness::worker_list(db.client.db()).await?;
    if args.json {
        return print_json(&workers);
    }
    let mut out = table(&[
        "id",
        "host",
        "pid",
        "queues",
        "alive",
        "heartbeat",
        "running",
        "leader",
    ]);
    for w in &workers {
        out.add_row(vec![
            w.id.clone(),
            w.host.clone(),
            w.pid.to_string(),
            w.queues.join(","),
            if w.alive { "yes" } else { "no (lease expired)" }.to_string(),
            relative(w.heartbeat_at),
            w.running.to_string(),
            if w.leader { "leader" } else { "" }.to_string(),
        ]);
    }
    say!("{out}");
    say!(
        "{}, {} alive",
        count(workers.len(), "worker", "workers"),
        workers.iter().filter(|w| w.alive).count()
    );
    Ok(())
}

/// Whole seconds of a non-negative float (negative and NaN become 0).
fn seconds(secs: f64) -> u64 {
    // The float-to-int `as` cast saturates; the value is a wait time, far below u64::MAX.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = secs.max(0.0) as u64;
    whole
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_count_agrees_with_its_noun() {
        assert_eq!(super::count(0_usize, "job", "jobs"), "0 jobs");
        assert_eq!(super::count(1_usize, "job", "jobs"), "1 job");
        assert_eq!(super::count(2_i64, "retry", "retries"), "2 retries");
        assert_eq!(super::count(1_i64, "retry", "retries"), "1 retry");
    }
}
