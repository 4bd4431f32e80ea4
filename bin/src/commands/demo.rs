//! `bosun demo`: the whole loop in one command. Migrate, enqueue a mix of the built-in kinds
//! (some fail and retry, some fail for good), work them with a local pool while a progress
//! line runs, then print what became of every job.

use std::{collections::BTreeMap, io::Write, time::Duration};

use bosun_queue::{Job, JobFilter, JobState, NewJob, SagaState};
use bosun_workers::WorkerPool;
use serde::Serialize;
use serde_json::json;

use crate::{cli::DemoArgs, connect::Database, kinds, render::table, say};

const DEMO_QUEUE: &str = "bosun-demo";
/// The demo gives up waiting after this long and reports what it has.
const DEMO_DEADLINE: Duration = Duration::from_secs(180);

#[derive(Debug, Default, Serialize)]
struct KindSummary {
    jobs: usize,
    completed: usize,
    failed: usize,
    cancelled: usize,
    unfinished: usize,
    attempts: i64,
}

/// The demo's mix: 40% echo, 20% sleep, 30% flaky (p = 0.4, up to 5 attempts), 5% failing
/// with retries (3 attempts), 5% failing permanently. Retries use a short backoff so the demo
/// finishes in seconds; real jobs use Bosun's default.
fn demo_job(i: u32) -> NewJob {
    let job = match i % 20 {
        0..=7 => NewJob::new("echo", json!({ "i": i })),
        8..=11 => NewJob::new("sleep", json!({ "ms": 20 + (i * 37) % 180 })),
        12..=17 => NewJob::new("flaky", json!({ "p": 0.4, "backoff_ms": 200 })).max_attempts(5),
        18 => NewJob::new(
            "fail",
            json!({ "message": "upstream timed out", "backoff_ms": 200 }),
        )
        .max_attempts(3),
        _ => NewJob::new(
            "fail",
            json!({ "permanent": true, "message": "card declined" }),
        ),
    };
    job.queue(DEMO_QUEUE).tags(["demo"])
}

pub async fn run(db: &Database, args: &DemoArgs) -> anyhow::Result<()> {
    let client = &db.client;
    let report = client.migrate().await?;
    eprintln!("bosun demo: schema at version {}", report.current);

    let enqueued = client.enqueue_many((0..args.jobs).map(demo_job)).await?;
    let last_id = enqueued.iter().map(|e| e.id).max().unwrap_or(0);
    eprintln!(
        "bosun demo: enqueued {} on queue {DEMO_QUEUE}; working them with concurrency {}",
        super::count(enqueued.len(), "job", "jobs"),
        args.concurrency
    );

    // A few sagas too: two succeed, two fail at a step and compensate.
    let run = chrono::Utc::now().timestamp_millis();
    let mut sagas = Vec::new();
    for (i, fail_at) in [None, Some("create"), None, Some("attach")]
        .into_iter()
        .enumerate()
    {
        let inputs = json!({ "fail_at": fail_at });
        let key = format!("demo-{run}-{i}");
        sagas.push(
            client
                .start_saga("example.provision", &key, &inputs)
                .await?,
        );
    }
    eprintln!(
        "bosun demo: started {} of example.provision (reserve, create, attach)",
        super::count(sagas.len(), "saga", "sagas")
    );

    let pool = WorkerPool::builder(client.clone())
        .registry(kinds::registry())
        .saga(kinds::provision_saga())
        .queue(DEMO_QUEUE, usize::try_from(args.concurrency)?)
        // Saga step jobs run on the saga's queue, `default`.
        .queue("default", 4)
        .shutdown_timeout(Duration::from_secs(5))
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = std::time::Instant::now();
    let pool_task = tokio::spawn(async move {
        pool.run_until(async {
            let _ = stopped.await;
        })
        .await
    });

    let filter = JobFilter {
        queue: Some(DEMO_QUEUE.into()),
        before_id: Some(last_id + 1),
        limit: Some(i64::from(args.jobs)),
        ..JobFilter::default()
    };
    let jobs = loop {
        let jobs = client.job_list(&filter).await?;
        let finished = jobs.iter().filter(|j| j.state.is_final()).count();
        let mut sagas_done = 0;
        for id in &sagas {
            let saga = bosun_queue::saga::saga_get(client.db(), *id).await?;
            if matches!(
                saga.state,
                SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
            ) {
                sagas_done += 1;
            }
        }
        let count = |state: JobState| jobs.iter().filter(|j| j.state == state).count();
        eprint!(
            "\r  {finished}/{} finished · completed {} · failed {} · running {} · retrying {} · {:.1}s   ",
            jobs.len(),
            count(JobState::Completed),
            count(JobState::Failed),
            count(JobState::Running),
            count(JobState::Retryable),
            started.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        if (finished == jobs.len() && sagas_done == sagas.len())
            || started.elapsed() > DEMO_DEADLINE
        {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!();
    let elapsed = started.elapsed();
    let _ = stop.send(());
    pool_task.await??;

    let summary = summarize(&jobs);
    let mut saga_outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for id in &sagas {
        let saga = bosun_queue::saga::saga_get(client.db(), *id).await?;
        *saga_outcomes.entry(saga.state.to_string()).or_default() += 1;
    }
    if args.json {
        return crate::render::print_json(&json!({
            "jobs": jobs.len(),
            "elapsed_s": elapsed.as_secs_f64(),
            "kinds": summary,
            "sagas": saga_outcomes,
        }));
    }
    let mut out = table(&[
        "kind",
        "jobs",
        "completed",
        "failed",
        "cancelled",
        "unfinished",
        "attempts",
    ]);
    for (kind, s) in &summary {
        out.add_row(vec![
            kind.clone(),
            s.jobs.to_string(),
            s.completed.to_string(),
            s.failed.to_string(),
            s.cancelled.to_string(),
            s.unfinished.to_string(),
            s.attempts.to_string(),
        ]);
    }
    say!("{out}");
    say!(
        "sagas: {}",
        saga_outcomes
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let total_attempts: i64 = summary.values().map(|s| s.attempts).sum();
    say!(
        "{} in {:.1}s with {} ({}). Failed jobs keep their error history: try `bosun jobs --state failed` and `bosun job ID` against a persistent DATABASE_URL.",
        super::count(jobs.len(), "job", "jobs"),
        elapsed.as_secs_f64(),
        super::count(total_attempts, "attempt", "attempts"),
        super::count(
            total_attempts - i64::try_from(jobs.len())?,
            "retry",
            "retries"
        ),
    );
    if db.throwaway {
        say!("(This ran on a throwaway PostgreSQL, now removed.)");
    }
    Ok(())
}

fn summarize(jobs: &[Job]) -> BTreeMap<String, KindSummary> {
    let mut summary: BTreeMap<String, KindSummary> = BTreeMap::new();
    for job in jobs {
        let entry = summary.entry(job.kind.clone()).or_default();
        entry.jobs += 1;
        entry.attempts += i64::from(job.attempt);
        match job.state {
            JobState::Completed => entry.completed += 1,
            JobState::Failed => entry.failed += 1,
            JobState::Cancelled => entry.cancelled += 1,
            _ => entry.unfinished += 1,
        }
    }
    summary
}
