//! What bounds a worker's runtime: a replica holds no more jobs than it can start soon, a
//! handler that ignores a cancel is aborted after the cancel grace, retries and snoozes due
//! before the next poll run when due, and delays too long for a timestamp saturate.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bosun_queue::{saga::saga_cancel, Client, Job, JobArgs, JobState, NewJob, SagaState};
use bosun_tests::{assert_invariants_hold, eventually, wait_state, RunningPool as Running, TestDb};
use bosun_workers::{
    JobContext, JobError, JobResult, SagaDefinition, Step, StepContext, Worker, WorkerPool,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

/// Sleeps `ms`, ignoring cancels when `stubborn`; notes when its future is dropped.
#[derive(Serialize, Deserialize)]
struct Nap {
    ms: u64,
    #[serde(default)]
    stubborn: bool,
}
impl JobArgs for Nap {
    const KIND: &'static str = "test.nap";
}

#[derive(Default, Clone)]
struct Napper {
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Worker for Napper {
    type Args = Nap;
    async fn work(&self, ctx: JobContext, args: Nap) -> JobResult {
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        let nap = tokio::time::sleep(Duration::from_millis(args.ms));
        if args.stubborn {
            nap.await;
            return Ok(());
        }
        tokio::select! {
            () = nap => Ok(()),
            () = ctx.cancelled() => Err(JobError::cancel("woken")),
        }
    }
}

/// Fails its first attempt (with a 200 ms backoff) or snoozes it for 200 ms (a snooze
/// counts no failure, but its next run is the next attempt); or asks for a delay no
/// timestamp can hold.
#[derive(Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
enum Later {
    FailOnce,
    SnoozeOnce,
    FailForever,
    SnoozeForever,
}
impl JobArgs for Later {
    const KIND: &'static str = "test.later";
}

struct LaterWorker;
impl Worker for LaterWorker {
    type Args = Later;
    async fn work(&self, ctx: JobContext, args: Later) -> JobResult {
        match args {
            Later::FailOnce if ctx.attempt() == 1 => Err(JobError::retry("first attempt fails")),
            Later::SnoozeOnce if ctx.attempt() == 1 => {
                Err(JobError::snooze(Duration::from_millis(200)))
            }
            Later::FailForever => Err(JobError::retry("again, much later")),
            Later::SnoozeForever => Err(JobError::snooze(Duration::MAX)),
            _ => Ok(()),
        }
    }

    fn backoff(&self, job: &Job) -> Duration {
        if job.args["do"] == "fail_forever" {
            Duration::MAX
        } else {
            Duration::from_millis(200)
        }
    }
}

async fn enqueue(client: &Client, job: NewJob) -> i64 {
    client.enqueue(job).await.unwrap().id
}

/// Run one `test.later` job to completion on a pool that polls only every 10 s (anything
/// that runs sooner was woken for); the job, and how long it took from its enqueue.
async fn run_on_slow_polling(what: &Later) -> (Job, Duration) {
    let db = TestDb::new().await;
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .poll_interval(Duration::from_secs(10))
            .register(LaterWorker)
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let id = enqueue(&db.client, NewJob::from_args(what).unwrap()).await;
    let job = wait_state(&db.client, id, JobState::Completed).await;
    let took = started.elapsed();
    running.stop().await;
    (job, took)
}

// ---- retries and snoozes wake the worker ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_due_before_the_next_poll_runs_when_due() {
    let (job, _) = run_on_slow_polling(&Later::FailOnce).await;
    let failed_at = job.attempt_errors()[0].at;
    let retried_at = job.attempted_at.expect("the second attempt's claim time");
    let waited = (retried_at - failed_at).to_std().unwrap();
    assert_eq!(job.attempt, 2);
    assert!(
        waited >= Duration::from_millis(170) && waited < Duration::from_millis(1500),
        "a 200 ms backoff (with jitter) ran after {waited:?}, not at the next poll in 10 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snooze_due_before_the_next_poll_runs_when_due() {
    let (job, took) = run_on_slow_polling(&Later::SnoozeOnce).await;
    assert_eq!(job.attempt, 2, "snoozed once, then ran");
    assert!(
        took < Duration::from_millis(2000),
        "a 200 ms snooze ran again after {took:?}, not at the next poll in 10 s"
    );
}

// ---- delays saturate ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backoff_or_snooze_beyond_any_timestamp_is_written_as_a_hundred_years() {
    let db = TestDb::new().await;
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .poll_interval(Duration::from_millis(100))
            .register(LaterWorker)
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    let failing = enqueue(&db.client, NewJob::from_args(&Later::FailForever).unwrap()).await;
    let snoozing = enqueue(
        &db.client,
        NewJob::from_args(&Later::SnoozeForever).unwrap(),
    )
    .await;
    let failed = wait_state(&db.client, failing, JobState::Retryable).await;
    let snoozed = wait_state(&db.client, snoozing, JobState::Scheduled).await;
    running.stop().await;
    for job in [&failed, &snoozed] {
        let years = (job.scheduled_at - chrono::Utc::now()).num_days() / 365;
        assert!(
            (89..=111).contains(&years),
            "job {} is due in {years} years",
            job.id
        );
        assert_eq!(job.attempt, 1, "one attempt, written once, not rescued");
    }
    assert_eq!(failed.attempt_errors().len(), 1);
    assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snooze_with_no_attempt_left_to_give_fails_the_job_with_the_reason() {
    let db = TestDb::new().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bosun.jobs (kind, args, attempt, max_attempts)
         VALUES ('test.later', '{\"do\": \"snooze_forever\"}', 999999999, 1000000000)
         RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .poll_interval(Duration::from_millis(100))
            .register(LaterWorker)
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let job = wait_state(&db.client, id, JobState::Failed).await;
    running.stop().await;
    assert_eq!(job.attempt, 1_000_000_000);
    assert_eq!(job.max_attempts, 1_000_000_000);
    let errors = job.attempt_errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].error.contains("most attempts a job may have"),
        "{}",
        errors[0].error
    );
    assert_invariants_hold(&db.pool).await;
}

// ---- a handler that ignores its cancel ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_ignores_its_cancel_is_aborted_after_the_grace_and_frees_its_slot() {
    let db = TestDb::new().await;
    let napper = Napper::default();
    let dropped = Arc::clone(&napper.dropped);
    let grace = Duration::from_millis(500);
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .poll_interval(Duration::from_millis(100))
            .lease_check_interval(Duration::from_millis(100))
            .cancel_grace(grace)
            .register(napper)
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let stubborn = enqueue(
        &db.client,
        NewJob::from_args(&Nap {
            ms: 60_000,
            stubborn: true,
        })
        .unwrap(),
    )
    .await;
    wait_state(&db.client, stubborn, JobState::Running).await;
    let next = enqueue(
        &db.client,
        NewJob::from_args(&Nap {
            ms: 0,
            stubborn: false,
        })
        .unwrap(),
    )
    .await;
    let cancelled_at = Instant::now();
    let cancelled = db.client.cancel_job(stubborn).await.unwrap();
    wait_state(&db.client, next, JobState::Completed).await;
    let took = cancelled_at.elapsed();
    assert!(
        took >= grace && took < Duration::from_secs(5),
        "the only slot was freed {took:?} after the cancel (grace {grace:?})"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stubborn handler was dropped"
    );
    eventually(WAIT, "nothing running", || async {
        (running.running() == 0).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(
        db.client.job_get(stubborn).await.unwrap(),
        cancelled,
        "the aborted attempt wrote nothing over the cancel"
    );
    assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saga_step_that_ignores_its_cancel_is_aborted_and_the_saga_compensates() {
    let db = TestDb::new().await;
    let undone = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&undone);
    let saga = SagaDefinition::new("test.stubborn")
        .step(
            Step::new("prepare", |_ctx: StepContext| async { Ok(1) }).undo(
                move |_ctx: StepContext| {
                    let flag = Arc::clone(&flag);
                    async move {
                        flag.store(true, Ordering::SeqCst);
                        Ok(())
                    }
                },
            ),
        )
        .step(Step::new("export", |_ctx: StepContext| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(2)
        }));
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .poll_interval(Duration::from_millis(100))
            .cancel_grace(Duration::from_millis(300))
            .saga(saga)
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    let id = db
        .client
        .start_saga("test.stubborn", "stubborn-1", &json!({}))
        .await
        .unwrap();
    eventually(WAIT, "the export step to run", || async {
        let steps = bosun_queue::saga::saga_steps(&db.pool, id).await.unwrap();
        steps
            .get(1)
            .is_some_and(|s| s.state == bosun_queue::SagaStepState::Running)
            .then_some(())
    })
    .await;
    let cancelled_at = Instant::now();
    saga_cancel(&db.pool, id).await.unwrap();
    let saga = eventually(WAIT, "the saga to finish", || async {
        let saga = bosun_queue::saga::saga_get(&db.pool, id).await.unwrap();
        matches!(
            saga.state,
            SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
        )
        .then_some(saga)
    })
    .await;
    let took = cancelled_at.elapsed();
    running.stop().await;
    assert!(
        took < Duration::from_secs(10),
        "finished {took:?} after the cancel"
    );
    assert_eq!(saga.state, SagaState::Compensated);
    assert!(undone.load(Ordering::SeqCst));
    let steps = bosun_queue::saga::saga_steps(&db.pool, id).await.unwrap();
    assert_eq!(steps[1].state, bosun_queue::SagaStepState::Failed);
    let error = steps[1].error.as_deref().unwrap_or_default();
    assert!(error.contains("did not stop within 0.300s"), "{error}");
    assert_invariants_hold(&db.pool).await;
}

// ---- one replica must not hoard a queue ----

/// Three replicas of 8 slots on a queue of 1 ms and 400 ms jobs, one started late and one
/// restarted midway: no replica ever holds more than its slots and a small margin (jobs
/// whose completion is being written still show as running), whether or not its first
/// jobs were fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_mixed_queue_no_replica_holds_more_than_its_slots() {
    const SLOTS: usize = 8;
    const MARGIN: i64 = 6;
    let db = TestDb::new().await;
    let jobs: Vec<NewJob> = (0..300)
        .map(|i| {
            let ms = if i % 2 == 0 { 1 } else { 400 };
            NewJob::from_args(&Nap {
                ms,
                stubborn: false,
            })
            .unwrap()
        })
        .collect();
    db.client.enqueue_many(jobs).await.unwrap();
    let replica = |name: &str| {
        Running::start(
            WorkerPool::builder(db.client.clone())
                .poll_interval(Duration::from_millis(50))
                .worker_id(name)
                .register(Napper::default())
                .queue("default", SLOTS)
                .build()
                .unwrap(),
        )
    };
    let sampler = {
        let pool = db.pool.clone();
        tokio::spawn(async move {
            let mut most: HashMap<String, (i64, i64)> = HashMap::new();
            loop {
                let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                    "SELECT attempted_by, count(*),
                            count(*) FILTER (WHERE (args->>'ms')::int >= 400)
                     FROM bosun.jobs WHERE state = 'running' GROUP BY 1",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                for (worker, held, long) in rows {
                    let entry = most.entry(worker).or_default();
                    entry.0 = entry.0.max(held);
                    entry.1 = entry.1.max(long);
                }
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                if left == 0 {
                    return most;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let first = replica("first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = replica("second");
    let third = replica("third");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A restart: the replica's estimate starts again, from fast jobs, as after a kill.
    first.stop().await;
    let again = replica("first-again");
    let most = tokio::time::timeout(Duration::from_secs(60), sampler)
        .await
        .expect("the queue drains")
        .unwrap();
    for running in [second, third, again] {
        running.stop().await;
    }
    assert!(most.len() >= 3, "{most:?}");
    for (worker, (held, long)) in &most {
        assert!(
            *held <= SLOTS as i64 + MARGIN,
            "{worker} held {held} jobs ({long} of them long) on {SLOTS} slots: {most:?}"
        );
    }
    assert_invariants_hold(&db.pool).await;
}
