//! The worker runtime against real PostgreSQL: contention, scheduling, priority, retries,
//! panics, decode errors, snooze, cancel, pause, wake-ups, timeouts, shutdown and fencing.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bosun_queue::{
    runtime::{job_claim, job_record, Outcome, Recorded},
    AttemptError, Client, Job, JobArgs, JobState, NewJob,
};
use bosun_tests::{eventually, state_counts, TestDb};
use bosun_workers::{JobContext, JobError, JobResult, ShutdownReport, Worker, WorkerPool};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle};

const WAIT: Duration = Duration::from_secs(15);

/// A pool running in the background until `stop` is called.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<bosun_workers::Result<ShutdownReport>>,
}

impl Running {
    fn start(pool: WorkerPool) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            pool.run_until(async {
                let _ = stopped.await;
            })
            .await
        });
        Running {
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) -> ShutdownReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap()
    }
}

fn pool(client: &Client) -> bosun_workers::PoolBuilder {
    WorkerPool::builder(client.clone()).poll_interval(Duration::from_millis(100))
}

async fn job(client: &Client, id: i64) -> Job {
    client.job_get(id).await.unwrap()
}

async fn wait_state(client: &Client, id: i64, state: JobState) -> Job {
    eventually(WAIT, &format!("job {id} to be {state}"), || async {
        let job = client.job_get(id).await.unwrap();
        (job.state == state).then_some(job)
    })
    .await
}

async fn enqueue(client: &Client, kind: &str, args: serde_json::Value) -> i64 {
    client.enqueue(NewJob::new(kind, args)).await.unwrap().id
}

// ---- kinds used by the tests ----

#[derive(Serialize, Deserialize)]
struct Record {
    n: i64,
}
impl JobArgs for Record {
    const KIND: &'static str = "test.record";
}

/// Writes one row per run into `runs` (created by the test), so runs can be counted.
struct Recorder;
impl Worker for Recorder {
    type Args = Record;
    async fn work(&self, ctx: JobContext, _args: Record) -> JobResult {
        sqlx::query("INSERT INTO runs (job_id, attempt, worker) VALUES ($1, $2, $3)")
            .bind(ctx.id())
            .bind(ctx.attempt())
            .bind(ctx.worker_id())
            .execute(ctx.client().pool())
            .await?;
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Order {
    label: String,
}
impl JobArgs for Order {
    const KIND: &'static str = "test.order";
}

struct OrderWorker(Arc<Mutex<Vec<String>>>);
impl Worker for OrderWorker {
    type Args = Order;
    async fn work(&self, _ctx: JobContext, args: Order) -> JobResult {
        self.0.lock().unwrap().push(args.label);
        Ok(())
    }
}

/// What the `test.behave` worker should do.
#[derive(Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
enum Behave {
    Ok,
    Fail { message: String },
    Permanent { message: String },
    Panic,
    Cancel,
    SnoozeOnce { ms: u64 },
    Sleep { ms: u64 },
    WaitForCancel,
}
impl JobArgs for Behave {
    const KIND: &'static str = "test.behave";
}

#[derive(Default)]
struct Behaver {
    saw_cancel: Arc<Mutex<Vec<i64>>>,
}
impl Worker for Behaver {
    type Args = Behave;
    async fn work(&self, ctx: JobContext, args: Behave) -> JobResult {
        match args {
            Behave::Ok => Ok(()),
            Behave::Fail { message } => Err(JobError::retry(message)),
            Behave::Permanent { message } => Err(JobError::permanent(message)),
            Behave::Panic => panic!("handler blew up"),
            Behave::Cancel => Err(JobError::cancel("not needed any more")),
            Behave::SnoozeOnce { ms } if ctx.attempt() == 1 => {
                Err(JobError::snooze(Duration::from_millis(ms)))
            }
            Behave::SnoozeOnce { .. } => Ok(()),
            Behave::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Behave::WaitForCancel => {
                tokio::select! {
                    () = ctx.cancelled() => {
                        self.saw_cancel.lock().unwrap().push(ctx.id());
                        Err(JobError::cancel("saw cancellation"))
                    }
                    () = tokio::time::sleep(Duration::from_secs(30)) => Ok(()),
                }
            }
        }
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_millis(200)
    }
}

#[derive(Serialize, Deserialize)]
struct Slow {
    ms: u64,
}
impl JobArgs for Slow {
    const KIND: &'static str = "test.slow";
}
struct SlowWithTimeout;
impl Worker for SlowWithTimeout {
    type Args = Slow;
    async fn work(&self, _ctx: JobContext, args: Slow) -> JobResult {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(())
    }
    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

// ---- tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_drain_5000_jobs_each_exactly_once() {
    let db = TestDb::new().await;
    sqlx::query("CREATE TABLE runs (job_id bigint, attempt int, worker text)")
        .execute(&db.pool)
        .await
        .unwrap();
    db.client
        .enqueue_many((0..5000).map(|n| Record { n }))
        .await
        .unwrap();
    let a = Running::start(
        pool(&db.client)
            .register(Recorder)
            .queue("default", 16)
            .worker_id("pool-a")
            .build()
            .unwrap(),
    );
    let b = Running::start(
        pool(&db.client)
            .register(Recorder)
            .queue("default", 16)
            .worker_id("pool-b")
            .build()
            .unwrap(),
    );
    eventually(Duration::from_secs(60), "5000 completed jobs", || async {
        let counts = state_counts(&db.pool).await;
        (counts.get("completed") == Some(&5000)).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;

    let (runs, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((runs, distinct), (5000, 5000), "every job ran exactly once");
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM runs GROUP BY worker ORDER BY worker")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(per_worker.len(), 2, "both pools worked: {per_worker:?}");
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE attempt <> 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 0, "no job was claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduled_jobs_wait_for_their_time() {
    let db = TestDb::new().await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let id = db
        .client
        .enqueue(NewJob::from_args(&Behave::Ok).unwrap().scheduled_at(at))
        .await
        .unwrap()
        .id;
    assert_eq!(job(&db.client, id).await.state, JobState::Scheduled);
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 4)
            .build()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        job(&db.client, id).await.state,
        JobState::Scheduled,
        "not run before its time"
    );
    let done = wait_state(&db.client, id, JobState::Completed).await;
    let started = done.attempted_at.unwrap();
    assert!(started >= at, "ran at {started}, scheduled for {at}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_follow_priority_then_age() {
    let db = TestDb::new().await;
    db.client.pause_queue("default").await.unwrap();
    for (label, priority) in [("p5", 5), ("p0-old", 0), ("pm3", -3), ("p0-new", 0)] {
        db.client
            .enqueue(
                NewJob::from_args(&Order {
                    label: label.into(),
                })
                .unwrap()
                .priority(priority),
            )
            .await
            .unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(
        pool(&db.client)
            .register(OrderWorker(Arc::clone(&seen)))
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.lock().unwrap().is_empty(), "paused queue not claimed");
    db.client.resume_queue("default").await.unwrap();
    eventually(WAIT, "four jobs run", || async {
        (seen.lock().unwrap().len() == 4).then_some(())
    })
    .await;
    running.stop().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["pm3", "p0-old", "p0-new", "p5"],
        "lower priority first, then oldest"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_with_backoff_until_failed() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(
            NewJob::from_args(&Behave::Fail {
                message: "upstream 503".into(),
            })
            .unwrap()
            .max_attempts(3),
        )
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .worker_id("retry-worker")
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    running.stop().await;
    assert_eq!(failed.attempt, 3);
    assert!(failed.finalized_at.is_some());
    let errors: Vec<AttemptError> = failed.attempt_errors();
    assert_eq!(
        errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for error in &errors {
        assert_eq!(error.error, "upstream 503");
        assert_eq!(error.worker.as_deref(), Some("retry-worker"));
        assert_eq!(error.kind.as_deref(), Some("error"));
    }
    for pair in errors.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= chrono::Duration::milliseconds(175),
            "backoff of 200 ms (-10% jitter) between attempts, got {gap}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_errors_fail_at_once() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(Behave::Permanent {
            message: "card declined".into(),
        })
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    running.stop().await;
    assert_eq!((failed.attempt, failed.max_attempts), (1, 20));
    assert_eq!(
        failed.attempt_errors()[0].kind.as_deref(),
        Some("permanent")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_fails_the_attempt_and_the_worker_keeps_going() {
    let db = TestDb::new().await;
    let panicked = db
        .client
        .enqueue(NewJob::from_args(&Behave::Panic).unwrap().max_attempts(1))
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, panicked, JobState::Failed).await;
    let error = &failed.attempt_errors()[0];
    assert_eq!(error.kind.as_deref(), Some("panic"));
    assert!(error.error.contains("handler blew up"), "{}", error.error);
    let after = db.client.enqueue(Behave::Ok).await.unwrap().id;
    wait_state(&db.client, after, JobState::Completed).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_args_fail_the_attempt() {
    let db = TestDb::new().await;
    let bad = db
        .client
        .enqueue(NewJob::new("test.behave", json!({"do": "nonsense"})).max_attempts(2))
        .await
        .unwrap()
        .id;
    let good = db.client.enqueue(Behave::Ok).await.unwrap().id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, bad, JobState::Failed).await;
    wait_state(&db.client, good, JobState::Completed).await;
    running.stop().await;
    let errors = failed.attempt_errors();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind.as_deref() == Some("decode")));
    assert!(
        errors[0].error.contains("could not decode args"),
        "{}",
        errors[0].error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snooze_runs_again_later_without_using_an_attempt() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(Behave::SnoozeOnce { ms: 300 })
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let done = wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.max_attempts, 21, "the snoozed attempt did not count");
    assert!(done.attempt_errors().is_empty(), "a snooze is not an error");
    let gap = done.attempted_at.unwrap() - done.created_at;
    assert!(gap >= chrono::Duration::milliseconds(290), "snoozed {gap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_can_cancel_its_job() {
    let db = TestDb::new().await;
    let id = db.client.enqueue(Behave::Cancel).await.unwrap().id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let cancelled = wait_state(&db.client, id, JobState::Cancelled).await;
    running.stop().await;
    assert_eq!(cancelled.attempt_errors()[0].error, "not needed any more");
}

async fn operator_cancel_reaches_the_handler(listen: bool) {
    let db = TestDb::new().await;
    let behaver = Behaver::default();
    let saw_cancel = Arc::clone(&behaver.saw_cancel);
    let running = Running::start(
        pool(&db.client)
            .register(behaver)
            .queue("default", 2)
            .listen(listen)
            .lease_check_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let id = db.client.enqueue(Behave::WaitForCancel).await.unwrap().id;
    wait_state(&db.client, id, JobState::Running).await;
    let cancelled_at = Instant::now();
    db.client.cancel_job(id).await.unwrap();
    eventually(
        Duration::from_secs(3),
        "the handler to see the cancel",
        || async { saw_cancel.lock().unwrap().contains(&id).then_some(()) },
    )
    .await;
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    // Give the worker time to try (and fail) to record its own outcome.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    let row = job(&db.client, id).await;
    assert_eq!(row.state, JobState::Cancelled);
    let errors = row.attempt_errors();
    assert_eq!(errors.len(), 1, "only the operator's entry: {errors:?}");
    assert_eq!(errors[0].error, "cancelled by bosun.cancel_job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_cancel_reaches_the_handler_by_notification() {
    operator_cancel_reaches_the_handler(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_cancel_reaches_the_handler_by_polling() {
    operator_cancel_reaches_the_handler(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_queues_are_not_claimed_until_resumed() {
    let db = TestDb::new().await;
    db.client.pause_queue("mail").await.unwrap();
    let ids: Vec<i64> = db
        .client
        .enqueue_many((0..5).map(|_| NewJob::from_args(&Behave::Ok).unwrap().queue("mail")))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("mail", 4)
            .build()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in &ids {
        assert_eq!(job(&db.client, *id).await.state, JobState::Available);
    }
    db.client.resume_queue("mail").await.unwrap();
    for id in ids {
        wait_state(&db.client, id, JobState::Completed).await;
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_insert_wakes_a_listening_worker() {
    let db = TestDb::new().await;
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .register(Behaver::default())
            .queue("default", 2)
            .poll_interval(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    // Let the first poll pass, so only a notification can explain a quick pickup.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bosun.jobs (kind, args) VALUES ('test.behave', '{\"do\": \"ok\"}') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let started = Instant::now();
    wait_state(&db.client, id, JobState::Completed).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "woken by the notification, not the 60 s poll"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_alone_works_without_listen() {
    let db = TestDb::new().await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .listen(false)
            .build()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = enqueue(&db.client, "test.behave", json!({"do": "ok"})).await;
    wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_claim_only_kinds_they_know() {
    let db = TestDb::new().await;
    let known = db.client.enqueue(Behave::Ok).await.unwrap().id;
    let unknown = enqueue(&db.client, "someone.else", json!({})).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    wait_state(&db.client, known, JobState::Completed).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    let other = job(&db.client, unknown).await;
    assert_eq!((other.state, other.attempt), (JobState::Available, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_kind_timeout_fails_the_attempt() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(
            NewJob::from_args(&Slow { ms: 5000 })
                .unwrap()
                .max_attempts(1),
        )
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(SlowWithTimeout)
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    running.stop().await;
    let error = &failed.attempt_errors()[0];
    assert_eq!(error.kind.as_deref(), Some("timeout"));
    let took = failed.finalized_at.unwrap() - failed.attempted_at.unwrap();
    assert!(
        took < chrono::Duration::seconds(2),
        "cut at the timeout, took {took}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_hands_unfinished_jobs_back_without_using_an_attempt() {
    let db = TestDb::new().await;
    let slow = db
        .client
        .enqueue(Behave::Sleep { ms: 10_000 })
        .await
        .unwrap()
        .id;
    let waiting = db.client.enqueue(Behave::WaitForCancel).await.unwrap().id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .shutdown_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    wait_state(&db.client, slow, JobState::Running).await;
    wait_state(&db.client, waiting, JobState::Running).await;
    let began = Instant::now();
    let report = running.stop().await;
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "stopped within the timeout and grace"
    );
    assert_eq!(report.released, vec![slow, waiting]);
    for id in [slow, waiting] {
        let row = job(&db.client, id).await;
        assert_eq!(row.state, JobState::Available, "job {id} handed back");
        assert_eq!(
            (row.attempt, row.max_attempts),
            (1, 21),
            "attempt not used up"
        );
        assert!(row.attempt_errors().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_jobs_finish_within_the_timeout() {
    let db = TestDb::new().await;
    let id = db
        .client
        .enqueue(Behave::Sleep { ms: 300 })
        .await
        .unwrap()
        .id;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    wait_state(&db.client, id, JobState::Running).await;
    let report = running.stop().await;
    assert!(report.released.is_empty());
    assert_eq!(job(&db.client, id).await.state, JobState::Completed);
}

#[tokio::test]
async fn writes_by_a_worker_that_lost_the_job_are_fenced_out() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, "k", json!({})).await;
    let kinds = vec!["k".to_string()];
    let claimed = job_claim(&db.pool, "default", &kinds, 10, "w1")
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);

    // An operator cancels the running job: the worker's completion changes nothing.
    db.client.cancel_job(id).await.unwrap();
    let recorded = job_record(&db.pool, id, 1, &Outcome::Completed)
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::FencedOut);
    assert_eq!(job(&db.client, id).await.state, JobState::Cancelled);

    // Retried and claimed again: the old attempt number no longer writes.
    db.client.retry_job(id).await.unwrap();
    let again = job_claim(&db.pool, "default", &kinds, 10, "w2")
        .await
        .unwrap();
    assert_eq!(again[0].attempt, 2);
    let stale = job_record(
        &db.pool,
        id,
        1,
        &Outcome::Errored {
            error: "late".into(),
            kind: "error",
            retry_in: Duration::from_secs(1),
            permanent: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(stale, Recorded::FencedOut);
    let current = job_record(&db.pool, id, 2, &Outcome::Completed)
        .await
        .unwrap();
    assert_eq!(current, Recorded::Now(JobState::Completed));
}

#[tokio::test]
async fn a_claim_takes_at_most_the_free_slots_and_skips_what_others_hold() {
    let db = TestDb::new().await;
    db.client
        .enqueue_many((0..10).map(|_| NewJob::new("k", json!({}))))
        .await
        .unwrap();
    let kinds = vec!["k".to_string()];
    let first = job_claim(&db.pool, "default", &kinds, 4, "w1")
        .await
        .unwrap();
    let second = job_claim(&db.pool, "default", &kinds, 100, "w2")
        .await
        .unwrap();
    let third = job_claim(&db.pool, "default", &kinds, 100, "w3")
        .await
        .unwrap();
    assert_eq!((first.len(), second.len(), third.len()), (4, 6, 0));
    assert!(job_claim(&db.pool, "default", &kinds, 0, "w4")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn invalid_configuration_is_a_typed_error() {
    let db = TestDb::new().await;
    let message = |result: bosun_workers::Result<WorkerPool>| match result {
        Err(bosun_workers::Error::InvalidConfig(message)) => message,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let base = || WorkerPool::builder(db.client.clone()).register(Behaver::default());
    assert!(message(base().build()).contains("no queues"));
    assert!(message(base().queue("default", 0).build()).contains("concurrency 0"));
    assert!(message(base().queue("bad name", 1).build()).contains("not a valid name"));
    assert!(message(base().queue("a", 1).queue("a", 2).build()).contains("twice"));
    assert!(
        message(base().queue("a", 1).poll_interval(Duration::ZERO).build())
            .contains("poll_interval")
    );
    assert!(message(
        WorkerPool::builder(db.client.clone())
            .queue("default", 1)
            .build()
    )
    .contains("no workers registered"));
}
