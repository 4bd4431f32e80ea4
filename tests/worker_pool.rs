//! The worker runtime against real PostgreSQL: claims under contention, scheduling, priority,
//! retries with backoff, permanent errors, panics, undecodable args, snooze, cancel, pause,
//! wake-ups, the kinds filter, timeouts, graceful shutdown, fencing and configuration errors.
//!
//! Every test gets its own database and runs its pools in spawned tasks, stopped through a
//! `CancellationToken` as the shutdown future. Workers override `backoff` with short delays so
//! retries take milliseconds, not the default seconds.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bosun_queue::{
    runtime::{job_claim, job_complete_many, job_lost_leases, job_record, Outcome, Recorded},
    Client, Job, JobArgs, JobState, Lease, NewJob,
};
use bosun_tests::{eventually, state_counts, wait_state, RunningPool as Running, TestDb};
use bosun_workers::{JobContext, JobError, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;

/// How long to wait for something that normally takes well under a second.
const WAIT: Duration = Duration::from_secs(10);

// ---- harness ----

/// A builder with a 100 ms poll interval.
fn pool(client: &Client) -> bosun_workers::PoolBuilder {
    WorkerPool::builder(client.clone()).poll_interval(Duration::from_millis(100))
}

async fn job(client: &Client, id: i64) -> Job {
    client.job_get(id).await.unwrap()
}

async fn enqueue(client: &Client, job: NewJob) -> i64 {
    client.enqueue(job).await.unwrap().id
}

fn behave(what: &Behave) -> NewJob {
    NewJob::from_args(what).unwrap()
}

/// Connections of this database that have LISTENed on Bosun's channels and wait, idle.
async fn listeners(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'idle'
           AND query LIKE '%LISTEN \"bosun_jobs\"%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Wait until a pool's notifier listens, so a notification sent from now on reaches it.
async fn wait_listening(db: &TestDb) {
    eventually(WAIT, "the pool to LISTEN", || async {
        (listeners(db).await > 0).then_some(())
    })
    .await;
}

/// The `errors` column must hold exactly the entries `attempt_errors` parsed: none skipped.
fn raw_error_count(job: &Job) -> usize {
    job.errors.as_array().expect("errors is an array").len()
}

// ---- kinds and workers used by the tests ----

#[derive(Serialize, Deserialize)]
struct Record {
    n: i64,
}
impl JobArgs for Record {
    const KIND: &'static str = "test.record";
}

/// Writes one row per run into `runs` (created by the test).
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

/// Appends each job's label, in the order the jobs ran.
struct OrderWorker(Arc<Mutex<Vec<String>>>);
impl Worker for OrderWorker {
    type Args = Order;
    async fn work(&self, _ctx: JobContext, args: Order) -> JobResult {
        self.0.lock().unwrap().push(args.label);
        Ok(())
    }
}

/// A pool running `test.order` jobs on `concurrency` slots of the default queue, and the
/// labels of the jobs it ran, in order.
fn start_order_pool(db: &TestDb, concurrency: usize) -> (Arc<Mutex<Vec<String>>>, Running) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(
        pool(&db.client)
            .register(OrderWorker(Arc::clone(&ran)))
            .queue("default", concurrency)
            .build()
            .unwrap(),
    );
    (ran, running)
}

/// What the `test.behave` worker should do.
#[derive(Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
enum Behave {
    Ok,
    Fail {
        message: String,
    },
    Permanent {
        message: String,
    },
    Panic,
    Cancel,
    SnoozeOnce {
        ms: u64,
    },
    Sleep {
        ms: u64,
    },
    /// Wait for `ctx.cancelled()`, note when it came, then claim success: a write that must be
    /// fenced out when the cancel came from an operator.
    CompleteOnCancel,
    /// Wait for `ctx.cancelled()`, note it, then give up with a retryable error.
    FailOnCancel,
}
impl JobArgs for Behave {
    const KIND: &'static str = "test.behave";
}

#[derive(Default)]
struct Behaver {
    /// Jobs whose handler saw `ctx.cancelled()` resolve, and when.
    saw_cancel: Arc<Mutex<Vec<(i64, Instant)>>>,
}
impl Behaver {
    async fn wait_for_cancel(&self, ctx: &JobContext) -> bool {
        tokio::select! {
            () = ctx.cancelled() => {
                self.saw_cancel.lock().unwrap().push((ctx.id(), Instant::now()));
                true
            }
            () = tokio::time::sleep(Duration::from_secs(30)) => false,
        }
    }
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
            Behave::CompleteOnCancel => {
                self.wait_for_cancel(&ctx).await;
                Ok(())
            }
            Behave::FailOnCancel => {
                if self.wait_for_cancel(&ctx).await {
                    Err(JobError::retry("interrupted"))
                } else {
                    Ok(())
                }
            }
        }
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_millis(200)
    }
}

#[derive(Serialize, Deserialize)]
struct FlakyOnce {}
impl JobArgs for FlakyOnce {
    const KIND: &'static str = "test.flaky_once";
}

/// Fails its first attempt with a 1 s backoff, succeeds on the second.
struct FlakyOnceWorker;
impl Worker for FlakyOnceWorker {
    type Args = FlakyOnce;
    async fn work(&self, ctx: JobContext, _args: FlakyOnce) -> JobResult {
        if ctx.attempt() == 1 {
            return Err(JobError::retry("first attempt fails"));
        }
        Ok(())
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_secs(1)
    }
}

#[derive(Serialize, Deserialize)]
struct Strict {
    n: i64,
    label: String,
}
impl JobArgs for Strict {
    const KIND: &'static str = "test.strict";
}

/// Needs both fields; records the labels it ran with.
struct StrictWorker(Arc<Mutex<Vec<String>>>);
impl Worker for StrictWorker {
    type Args = Strict;
    async fn work(&self, _ctx: JobContext, args: Strict) -> JobResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}:{}", args.n, args.label));
        Ok(())
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

/// Sets its flag when dropped: tells whether a handler's future was dropped.
struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Sleeps `ms` under a 200 ms per-kind timeout.
#[derive(Default)]
struct SlowWithTimeout {
    dropped: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}
impl Worker for SlowWithTimeout {
    type Args = Slow;
    async fn work(&self, _ctx: JobContext, args: Slow) -> JobResult {
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

// ---- 1. claims under contention ----

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
    // Each pool on its own connection pool, as two processes would be.
    let mut pools = Vec::new();
    for worker_id in ["pool-a", "pool-b"] {
        let connections = PgPoolOptions::new()
            .max_connections(20)
            .connect(&db.url)
            .await
            .unwrap();
        pools.push(Running::start(
            pool(&Client::new(connections))
                .register(Recorder)
                .queue("default", 16)
                .worker_id(worker_id)
                .build()
                .unwrap(),
        ));
    }
    eventually(Duration::from_secs(20), "5000 completed jobs", || async {
        let counts = state_counts(&db.pool).await;
        (counts.get("completed") == Some(&5000)).then_some(())
    })
    .await;
    for running in pools {
        assert!(running.stop().await.released.is_empty());
    }

    let counts = state_counts(&db.pool).await;
    assert_eq!(counts.len(), 1, "every job completed: {counts:?}");
    let (runs, distinct, repeated): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT job_id),
                (SELECT count(*) FROM (SELECT job_id FROM runs GROUP BY job_id
                                       HAVING count(*) <> 1) AS r)
         FROM runs",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (runs, distinct, repeated),
        (5000, 5000, 0),
        "every job ran exactly once"
    );
    let never_ran: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bosun.jobs AS j WHERE NOT EXISTS
             (SELECT 1 FROM runs AS r WHERE r.job_id = j.id)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(never_ran, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runs AS r JOIN bosun.jobs AS j ON j.id = r.job_id
         WHERE r.attempt <> 1 OR j.attempt <> 1 OR r.worker IS DISTINCT FROM j.attempted_by",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        mismatched, 0,
        "one claim per job, by the worker that ran it"
    );
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM runs GROUP BY worker ORDER BY worker")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        per_worker
            .iter()
            .map(|(w, _)| w.as_str())
            .collect::<Vec<_>>(),
        ["pool-a", "pool-b"],
        "both pools did some of the work: {per_worker:?}"
    );
    assert!(per_worker.iter().all(|(_, n)| *n > 0));
}

// ---- 2. scheduling ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_job_runs_at_its_time_not_before() {
    let db = TestDb::new().await;
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let id = enqueue(&db.client, behave(&Behave::Ok).scheduled_at(at)).await;
    assert_eq!(job(&db.client, id).await.state, JobState::Scheduled);
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 4)
            .build()
            .unwrap(),
    );
    // Watch it until just before its time: never claimed.
    while chrono::Utc::now() < at - chrono::Duration::milliseconds(100) {
        let row = job(&db.client, id).await;
        assert_eq!(
            (row.state, row.attempt),
            (JobState::Scheduled, 0),
            "claimed before its time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
    let started = done.attempted_at.unwrap();
    assert!(started >= at, "ran at {started}, scheduled for {at}");
    assert!(
        started - at < chrono::Duration::seconds(1),
        "with a 100 ms poll it runs soon after its time: ran at {started}, scheduled for {at}"
    );
    assert_eq!(done.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retryable_job_is_claimed_at_its_scheduled_at() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, NewJob::from_args(&FlakyOnce {}).unwrap()).await;
    let running = Running::start(
        pool(&db.client)
            .register(FlakyOnceWorker)
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    let retryable = wait_state(&db.client, id, JobState::Retryable).await;
    let due = retryable.scheduled_at;
    let failed_at = retryable.attempt_errors()[0].at;
    let backoff = due - failed_at;
    assert!(
        backoff >= chrono::Duration::milliseconds(900)
            && backoff <= chrono::Duration::milliseconds(1100),
        "the worker's 1 s backoff with +/-10% jitter, got {backoff}"
    );
    // Until its time it stays retryable at attempt 1.
    while chrono::Utc::now() < due - chrono::Duration::milliseconds(100) {
        let row = job(&db.client, id).await;
        assert_eq!(
            (row.state, row.attempt),
            (JobState::Retryable, 1),
            "claimed before its backoff ran out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
    assert_eq!(done.attempt, 2);
    let started = done.attempted_at.unwrap();
    assert!(started >= due, "attempt 2 at {started}, due at {due}");
    assert!(
        started - due < chrono::Duration::seconds(1),
        "claimable once due: attempt 2 at {started}, due at {due}"
    );
}

// ---- 3. priority ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_follow_priority_then_age() {
    let db = TestDb::new().await;
    db.client.pause_queue("default").await.unwrap();
    for (label, priority) in [("p5", 5), ("p0-old", 0), ("pm3", -3), ("p0-new", 0)] {
        let order = Order {
            label: label.into(),
        };
        enqueue(
            &db.client,
            NewJob::from_args(&order).unwrap().priority(priority),
        )
        .await;
    }
    let (seen, running) = start_order_pool(&db, 1);
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
        ["pm3", "p0-old", "p0-new", "p5"],
        "lower priority first, then older first"
    );
}

/// A backlog of short jobs is claimed ahead, with two claims in flight: their jobs still
/// start in claim order, whichever reply comes back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_of_short_jobs_starts_in_priority_then_age_order() {
    let db = TestDb::new().await;
    db.client.pause_queue("default").await.unwrap();
    let total: i64 = 6000;
    let jobs: Vec<NewJob> = (0..total)
        .map(|i| {
            // Priorities spread over the ids: -2 .. 2 in a scrambled order.
            let priority = i16::try_from((i * 7919) % 5 - 2).unwrap();
            NewJob::from_args(&Order {
                label: format!("{priority}/{i}"),
            })
            .unwrap()
            .priority(priority)
        })
        .collect();
    db.client.enqueue_many(jobs).await.unwrap();
    let (seen, running) = start_order_pool(&db, 1);
    db.client.resume_queue("default").await.unwrap();
    eventually(Duration::from_secs(60), "every job to run", || async {
        (seen.lock().unwrap().len() == usize::try_from(total).unwrap()).then_some(())
    })
    .await;
    running.stop().await;
    let order: Vec<(i16, i64)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|label| {
            let (priority, i) = label.split_once('/').unwrap();
            (priority.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    let inversions = order.windows(2).filter(|w| w[0] > w[1]).count();
    assert_eq!(
        inversions, 0,
        "jobs started out of priority-then-age order {inversions} times"
    );
}

// ---- 4. retries with backoff ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_with_backoff_until_failed() {
    let db = TestDb::new().await;
    let fail = Behave::Fail {
        message: "upstream 503".into(),
    };
    let id = enqueue(&db.client, behave(&fail).max_attempts(3)).await;
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
    assert_eq!((failed.attempt, failed.max_attempts), (3, 3));
    assert!(failed.finalized_at.is_some());
    assert_eq!(failed.attempted_by.as_deref(), Some("retry-worker"));
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 3, "{}", failed.errors);
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
            gap >= chrono::Duration::milliseconds(180),
            "a backoff of 200 ms (-10% jitter at most) between attempts, got {gap}"
        );
    }
}

// ---- 5. permanent errors ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_error_fails_at_once() {
    let db = TestDb::new().await;
    let permanent = Behave::Permanent {
        message: "card declined".into(),
    };
    let id = enqueue(&db.client, behave(&permanent).max_attempts(20)).await;
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
    assert!(failed.finalized_at.is_some());
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].attempt, 1);
    assert_eq!(errors[0].error, "card declined");
    assert_eq!(errors[0].kind.as_deref(), Some("permanent"));
}

// ---- 6. panics ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_fails_the_attempt_and_the_pool_keeps_going() {
    let db = TestDb::new().await;
    let panicked = enqueue(&db.client, behave(&Behave::Panic).max_attempts(1)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .worker_id("panicky")
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, panicked, JobState::Failed).await;
    assert_eq!(failed.attempt, 1);
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].kind.as_deref(), Some("panic"));
    assert_eq!(errors[0].worker.as_deref(), Some("panicky"));
    assert!(
        errors[0].error.contains("handler blew up"),
        "{}",
        errors[0].error
    );
    // The same pool, with its single slot, runs the next job.
    let after = enqueue(&db.client, behave(&Behave::Ok)).await;
    let done = wait_state(&db.client, after, JobState::Completed).await;
    assert_eq!(done.attempted_by.as_deref(), Some("panicky"));
    running.stop().await;
}

// ---- 7. undecodable args ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_args_fail_the_attempt_and_the_pool_keeps_going() {
    let db = TestDb::new().await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    // `label` is required by `Strict`.
    let bad = enqueue(
        &db.client,
        NewJob::new(Strict::KIND, json!({"n": 1})).max_attempts(2),
    )
    .await;
    let good = enqueue(
        &db.client,
        NewJob::from_args(&Strict {
            n: 2,
            label: "fine".into(),
        })
        .unwrap(),
    )
    .await;
    let running = Running::start(
        pool(&db.client)
            .register(StrictWorker(Arc::clone(&ran)))
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, bad, JobState::Failed).await;
    wait_state(&db.client, good, JobState::Completed).await;
    running.stop().await;
    assert_eq!(failed.attempt, 2);
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 2);
    for error in &errors {
        assert_eq!(error.kind.as_deref(), Some("decode"), "{error:?}");
        assert!(
            error.error.contains("missing field `label`"),
            "{}",
            error.error
        );
    }
    assert_eq!(
        *ran.lock().unwrap(),
        ["2:fine"],
        "the handler never saw the bad args"
    );
}

// ---- 8. snooze ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snooze_runs_again_later_without_using_an_attempt() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, behave(&Behave::SnoozeOnce { ms: 300 })).await;
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
    assert_eq!(raw_error_count(&done), 0, "a snooze is not an error");
    let gap = done.attempted_at.unwrap() - done.created_at;
    assert!(
        gap >= chrono::Duration::milliseconds(300),
        "second attempt only after the 300 ms snooze, got {gap}"
    );
}

// ---- 9. cancel ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_can_cancel_its_job() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, behave(&Behave::Cancel)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .worker_id("canceller")
            .build()
            .unwrap(),
    );
    let cancelled = wait_state(&db.client, id, JobState::Cancelled).await;
    running.stop().await;
    assert_eq!(cancelled.attempt, 1);
    assert!(cancelled.finalized_at.is_some());
    let errors = cancelled.attempt_errors();
    assert_eq!(raw_error_count(&cancelled), 1);
    assert_eq!(errors[0].error, "not needed any more");
    assert_eq!(errors[0].kind.as_deref(), Some("cancelled"));
    assert_eq!(errors[0].worker.as_deref(), Some("canceller"));
}

/// An operator cancels a running job; its handler waits on `ctx.cancelled()`, notes when it
/// fired, then returns success, which must be fenced out.
async fn operator_cancel_reaches_the_handler(listen: bool) {
    let db = TestDb::new().await;
    let behaver = Behaver::default();
    let saw_cancel = Arc::clone(&behaver.saw_cancel);
    // Listening: the lease check is too slow to matter, only the notification can stop the
    // handler in time. Polling: the lease check is the only way.
    let lease_check = if listen {
        Duration::from_secs(60)
    } else {
        Duration::from_millis(100)
    };
    let running = Running::start(
        pool(&db.client)
            .register(behaver)
            .queue("default", 2)
            .listen(listen)
            .lease_check_interval(lease_check)
            .build()
            .unwrap(),
    );
    if listen {
        wait_listening(&db).await;
    }
    let id = enqueue(&db.client, behave(&Behave::CompleteOnCancel)).await;
    wait_state(&db.client, id, JobState::Running).await;
    let cancelled_at = Instant::now();
    let cancelled = db.client.cancel_job(id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let seen_at = eventually(
        Duration::from_secs(5),
        "the handler to see the cancel",
        || {
            let saw_cancel = Arc::clone(&saw_cancel);
            async move {
                let seen = saw_cancel.lock().unwrap();
                seen.iter().find(|(job, _)| *job == id).map(|(_, at)| *at)
            }
        },
    )
    .await;
    let took = seen_at - cancelled_at;
    assert!(
        took < Duration::from_secs(2),
        "the handler saw the cancel after {took:?}"
    );
    // The handler returned success; wait until the pool has tried to record it.
    eventually(WAIT, "the attempt to be over", || async {
        (running.running() == 0).then_some(())
    })
    .await;
    let report = running.stop().await;
    assert!(report.released.is_empty());
    let row = job(&db.client, id).await;
    assert_eq!(
        row, cancelled,
        "the worker's completion was fenced out: the row is as the cancel left it"
    );
    let errors = row.attempt_errors();
    assert_eq!(raw_error_count(&row), 1, "only the operator's entry");
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

// ---- 10. pause and resume ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_queue_is_not_claimed_until_resumed() {
    let db = TestDb::new().await;
    db.client.pause_queue("mail").await.unwrap();
    let ids: Vec<i64> = db
        .client
        .enqueue_many((0..5).map(|_| behave(&Behave::Ok).queue("mail")))
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
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        for id in &ids {
            let row = job(&db.client, *id).await;
            assert_eq!((row.state, row.attempt), (JobState::Available, 0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.client.resume_queue("mail").await.unwrap();
    for id in ids {
        let done = wait_state(&db.client, id, JobState::Completed).await;
        assert_eq!(done.attempt, 1);
    }
    running.stop().await;
}

// ---- 11. wake-ups ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plain_insert_wakes_a_listening_pool() {
    let db = TestDb::new().await;
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .register(Behaver::default())
            .queue("mail", 2)
            .poll_interval(Duration::from_secs(60))
            .listen(true)
            .build()
            .unwrap(),
    );
    // Once it listens (and its first claim has passed), only a notification explains a
    // pickup within 3 s: the next poll is a minute away.
    wait_listening(&db).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bosun.jobs (kind, args, queue)
         VALUES ('test.behave', '{\"do\": \"ok\"}', 'mail') RETURNING id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    eventually(
        Duration::from_secs(3),
        "the inserted job to complete",
        || async { (job(&db.client, id).await.state == JobState::Completed).then_some(()) },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    running.stop().await;
}

/// Inserts notify only while a worker is marked as waiting, and a worker marks itself in the
/// claim after which it sleeps: bursts of concurrent inserts, each burst starting while the worker goes
/// back to sleep after the one before, must never leave a job behind for the next poll (a
/// minute away).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_wake_up_is_lost_between_a_worker_going_to_sleep_and_concurrent_inserts() {
    let db = TestDb::new().await;
    let running = Running::start(
        WorkerPool::builder(db.client.clone())
            .register(Behaver::default())
            .queue("mail", 4)
            .poll_interval(Duration::from_secs(60))
            .listen(true)
            .build()
            .unwrap(),
    );
    wait_listening(&db).await;
    let insert = "INSERT INTO bosun.jobs (kind, args, queue)
                  VALUES ('test.behave', '{\"do\": \"ok\"}', 'mail')";
    let left = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    for burst in 0..30u64 {
        // Four inserts spread over a few milliseconds: the first wakes the worker, the others
        // land while it claims, runs and goes back to sleep.
        let mut inserters = tokio::task::JoinSet::new();
        for i in 0..4u64 {
            let pool = db.pool.clone();
            inserters.spawn(async move {
                tokio::time::sleep(Duration::from_micros((burst * 7 + i * 1300) % 4000)).await;
                sqlx::query(insert).execute(&pool).await.unwrap();
            });
        }
        while inserters.join_next().await.is_some() {}
        eventually(
            Duration::from_secs(3),
            &format!("burst {burst} to complete without a poll"),
            || async { (left().await == 0).then_some(()) },
        )
        .await;
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_alone_finds_jobs_without_listen() {
    let db = TestDb::new().await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("mail", 2)
            .listen(false)
            .build()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO bosun.jobs (kind, args, queue)
             VALUES ('test.behave', '{\"do\": \"ok\"}', 'mail') RETURNING id",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for id in ids {
        wait_state(&db.client, id, JobState::Completed).await;
    }
    assert_eq!(listeners(&db).await, 0, "listen(false) issues no LISTEN");
    running.stop().await;
}

// ---- 12. kinds filter ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_claims_only_the_kinds_it_registered() {
    let db = TestDb::new().await;
    let other = enqueue(&db.client, NewJob::new("test.other", json!({"x": 1}))).await;
    let known = enqueue(&db.client, behave(&Behave::Ok)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .build()
            .unwrap(),
    );
    wait_state(&db.client, known, JobState::Completed).await;
    // A few more polls pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.stop().await;
    let row = job(&db.client, other).await;
    assert_eq!(
        (row.state, row.attempt, row.attempted_by),
        (JobState::Available, 0, None),
        "a kind without a worker is left alone"
    );
}

// ---- 13. timeouts ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_kind_timeout_fails_the_attempt() {
    let db = TestDb::new().await;
    let id = enqueue(
        &db.client,
        NewJob::from_args(&Slow { ms: 5000 })
            .unwrap()
            .max_attempts(1),
    )
    .await;
    let worker = SlowWithTimeout::default();
    let dropped = Arc::clone(&worker.dropped);
    let finished = Arc::clone(&worker.finished);
    let running = Running::start(
        pool(&db.client)
            .register(worker)
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].kind.as_deref(), Some("timeout"));
    assert!(errors[0].error.contains("timed out"), "{}", errors[0].error);
    let took = failed.finalized_at.unwrap() - failed.attempted_at.unwrap();
    assert!(
        took >= chrono::Duration::milliseconds(200) && took < chrono::Duration::seconds(2),
        "cut at the 200 ms timeout, took {took}"
    );
    eventually(WAIT, "the timed-out handler to be dropped", || async {
        dropped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    assert!(!finished.load(Ordering::SeqCst));
    running.stop().await;
}

// ---- 14. graceful shutdown ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_hands_unfinished_jobs_back_without_using_an_attempt() {
    let db = TestDb::new().await;
    // One handler ignores cancellation, the other stops when told.
    let slow = enqueue(&db.client, behave(&Behave::Sleep { ms: 10_000 })).await;
    let cooperative = enqueue(&db.client, behave(&Behave::FailOnCancel)).await;
    let behaver = Behaver::default();
    let saw_cancel = Arc::clone(&behaver.saw_cancel);
    let running = Running::start(
        pool(&db.client)
            .register(behaver)
            .queue("default", 2)
            .shutdown_timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let slow_row = wait_state(&db.client, slow, JobState::Running).await;
    let cooperative_row = wait_state(&db.client, cooperative, JobState::Running).await;
    let began = Instant::now();
    let report = running.stop().await;
    let took = began.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "run_until returned {took:?} after shutdown began (timeout 300 ms)"
    );
    assert!(
        took >= Duration::from_millis(300),
        "running handlers got their 300 ms, returned after {took:?}"
    );
    assert_eq!(report.released, [slow, cooperative]);
    assert!(
        saw_cancel
            .lock()
            .unwrap()
            .iter()
            .any(|(id, _)| *id == cooperative),
        "the handler was told to stop"
    );
    for before in [slow_row, cooperative_row] {
        let row = job(&db.client, before.id).await;
        assert_eq!(row.state, JobState::Available, "job {} handed back", row.id);
        assert_eq!(
            (row.attempt, row.max_attempts),
            (1, before.max_attempts + 1),
            "job {}: the interrupted attempt is not used up",
            row.id
        );
        assert_eq!(raw_error_count(&row), 0, "a hand-back is not an error");
        assert!(row.finalized_at.is_none());
    }
}

/// Short jobs are claimed far ahead, two claims at a time: stopped in the middle of a drain,
/// a pool writes the completion of every job that ran and hands back every other job it
/// claimed, including those of claims that were in flight when shutdown began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_mid_drain_of_short_jobs_leaves_nothing_running() {
    let db = TestDb::new().await;
    let total = 40_000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(10_000) {
        db.client
            .enqueue_many(chunk.iter().map(|i| Order {
                label: i.to_string(),
            }))
            .await
            .unwrap();
    }
    let (ran, running) = start_order_pool(&db, 8);
    eventually(Duration::from_secs(60), "5,000 completed jobs", || async {
        let counts = state_counts(&db.pool).await;
        (counts.get("completed").copied().unwrap_or(0) >= 5000).then_some(())
    })
    .await;
    let report = running.stop().await;

    let counts = state_counts(&db.pool).await;
    let completed = counts.get("completed").copied().unwrap_or(0);
    assert!(completed < total, "stopped mid-drain: {counts:?}");
    assert_eq!(
        counts.get("running"),
        None,
        "nothing left running: {counts:?}"
    );
    assert_eq!(
        usize::try_from(completed).unwrap(),
        ran.lock().unwrap().len(),
        "every job that ran is completed, and no other"
    );
    let (handed_back, untouched): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE attempt = 1 AND max_attempts = 21),
                count(*) FILTER (WHERE attempt = 0 AND max_attempts = 20)
         FROM bosun.jobs WHERE state = 'available'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(handed_back > 0, "the pool held jobs claimed ahead");
    assert_eq!(
        usize::try_from(handed_back).unwrap(),
        report.released.len(),
        "the report names every job handed back"
    );
    assert_eq!(
        completed + handed_back + untouched,
        total,
        "every other job is available, handed back without using an attempt or never claimed"
    );
}

#[derive(Serialize, Deserialize)]
struct Hog {}
impl JobArgs for Hog {
    const KIND: &'static str = "test.hog";
}

/// Holds a connection of the client's pool until `release` is set.
struct HogWorker {
    holding: Arc<std::sync::atomic::AtomicUsize>,
    release: Arc<AtomicBool>,
}
impl Worker for HogWorker {
    type Args = Hog;
    async fn work(&self, ctx: JobContext, _args: Hog) -> JobResult {
        let connection = ctx.client().pool().acquire().await?;
        self.holding.fetch_add(1, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(connection);
        Ok(())
    }
}

/// Handlers may take every connection of the client's pool (long transactions, a slow
/// service behind a held connection); the worker's claims, completions and heartbeats run on
/// connections of its own and go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_holding_every_client_connection_do_not_stall_the_worker() {
    let db = TestDb::new().await;
    // Three connections: the LISTEN connection holds one, the two hogs the others.
    let connections = PgPoolOptions::new()
        .max_connections(3)
        .connect(&db.url)
        .await
        .unwrap();
    let client = Client::new(connections);
    let holding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let running = Running::start(
        pool(&client)
            .register(HogWorker {
                holding: Arc::clone(&holding),
                release: Arc::clone(&release),
            })
            .register(OrderWorker(Arc::clone(&ran)))
            .queue("default", 4)
            .worker_id("hogged")
            .heartbeat_interval(Duration::from_millis(200))
            .lease(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    wait_listening(&db).await;
    let hogs = [
        enqueue(&db.client, NewJob::from_args(&Hog {}).unwrap()).await,
        enqueue(&db.client, NewJob::from_args(&Hog {}).unwrap()).await,
    ];
    eventually(WAIT, "both hogs to hold a connection", || async {
        (holding.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    assert_eq!(
        (client.pool().size(), client.pool().num_idle()),
        (3, 0),
        "every connection of the client's pool is taken"
    );
    let beat_before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT heartbeat_at FROM bosun.workers WHERE id = 'hogged'")
            .fetch_one(&db.pool)
            .await
            .unwrap();

    let orders: Vec<i64> = db
        .client
        .enqueue_many((0..20).map(|i| Order {
            label: i.to_string(),
        }))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    for id in &orders {
        wait_state(&db.client, *id, JobState::Completed).await;
    }
    eventually(
        WAIT,
        "a heartbeat while the client's pool is taken",
        || async {
            let beat: chrono::DateTime<chrono::Utc> =
                sqlx::query_scalar("SELECT heartbeat_at FROM bosun.workers WHERE id = 'hogged'")
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            (beat > beat_before).then_some(())
        },
    )
    .await;
    assert_eq!(holding.load(Ordering::SeqCst), 2, "the hogs still hold");
    for id in hogs {
        assert_eq!(job(&db.client, id).await.state, JobState::Running);
    }

    release.store(true, Ordering::SeqCst);
    for id in hogs {
        wait_state(&db.client, id, JobState::Completed).await;
    }
    running.stop().await;
    assert_eq!(ran.lock().unwrap().len(), 20);
}

/// A pool may be built outside the Tokio runtime it later runs on (its own connections are
/// made when it starts).
#[test]
fn a_pool_built_outside_a_runtime_runs_on_one() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(TestDb::new());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let built = pool(&db.client)
        .register(OrderWorker(Arc::clone(&ran)))
        .queue("default", 2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let id = enqueue(
            &db.client,
            NewJob::from_args(&Order {
                label: "outside".into(),
            })
            .unwrap(),
        )
        .await;
        let running = Running::start(built);
        wait_state(&db.client, id, JobState::Completed).await;
        running.stop().await;
    });
    assert_eq!(*ran.lock().unwrap(), ["outside"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_a_job_finish_within_the_timeout() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, behave(&Behave::Sleep { ms: 500 })).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .shutdown_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    wait_state(&db.client, id, JobState::Running).await;
    let began = Instant::now();
    let report = running.stop().await;
    let took = began.elapsed();
    assert!(report.released.is_empty(), "{report:?}");
    assert!(
        took < Duration::from_secs(3),
        "run_until returns once the job is done, not at the 5 s timeout: {took:?}"
    );
    let row = job(&db.client, id).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 1));
}

// ---- 15. fencing ----

#[tokio::test]
async fn writes_by_a_worker_that_lost_the_job_are_fenced_out() {
    let db = TestDb::new().await;
    let kinds = vec!["test.fence".to_string()];
    let outcomes = [
        Outcome::Completed,
        Outcome::Errored {
            error: "late".into(),
            kind: "error",
            retry_in: Duration::from_secs(1),
            permanent: false,
        },
        Outcome::Errored {
            error: "late".into(),
            kind: "permanent",
            retry_in: Duration::from_secs(1),
            permanent: true,
        },
        Outcome::Cancelled {
            reason: "late".into(),
        },
        Outcome::Snoozed {
            delay: Duration::from_secs(1),
        },
    ];

    // An operator cancels the running job.
    let id = enqueue(&db.client, NewJob::new("test.fence", json!({}))).await;
    let claimed = job_claim(&db.pool, "default", &kinds, 10, "w1")
        .await
        .unwrap()
        .jobs;
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].id, claimed[0].state, claimed[0].attempt),
        (id, JobState::Running, 1)
    );
    let cancelled = db.client.cancel_job(id).await.unwrap();
    assert_eq!(
        job_lost_leases(&db.pool, &[Lease { id, attempt: 1 }])
            .await
            .unwrap(),
        [id],
        "the lease check sees the loss"
    );
    for outcome in &outcomes {
        let recorded = job_record(&db.pool, id, 1, outcome).await.unwrap();
        assert_eq!(recorded, Recorded::FencedOut, "{outcome:?}");
        assert_eq!(
            job(&db.client, id).await,
            cancelled,
            "row unchanged by {outcome:?}"
        );
    }

    // Retried and claimed again: the old attempt number no longer writes, the new one does.
    db.client.retry_job(id).await.unwrap();
    let again = job_claim(&db.pool, "default", &kinds, 10, "w2")
        .await
        .unwrap()
        .jobs;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].attempt, again[0].state), (2, JobState::Running));
    for outcome in &outcomes {
        let recorded = job_record(&db.pool, id, 1, outcome).await.unwrap();
        assert_eq!(recorded, Recorded::FencedOut, "stale attempt: {outcome:?}");
        assert_eq!(
            job(&db.client, id).await,
            again[0],
            "row unchanged by the stale {outcome:?}"
        );
    }
    // The batched completion is fenced per row in the same way.
    assert!(job_complete_many(&db.pool, &[Lease { id, attempt: 1 }])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        job(&db.client, id).await,
        again[0],
        "row unchanged by the stale batch"
    );
    let current = job_record(&db.pool, id, 2, &Outcome::Completed)
        .await
        .unwrap();
    assert_eq!(current, Recorded::Now(JobState::Completed));

    // Taken over by hand (as another worker's claim would): the first holder is fenced out.
    let other = enqueue(&db.client, NewJob::new("test.fence", json!({}))).await;
    let first = job_claim(&db.pool, "default", &kinds, 10, "w1")
        .await
        .unwrap()
        .jobs;
    assert_eq!((first[0].id, first[0].attempt), (other, 1));
    sqlx::query(
        "UPDATE bosun.jobs SET attempt = attempt + 1, attempted_by = 'w3', attempted_at = now()
         WHERE id = $1",
    )
    .bind(other)
    .execute(&db.pool)
    .await
    .unwrap();
    let taken = job(&db.client, other).await;
    let recorded = job_record(&db.pool, other, 1, &Outcome::Completed)
        .await
        .unwrap();
    assert_eq!(recorded, Recorded::FencedOut);
    assert_eq!(job(&db.client, other).await, taken);
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
        .unwrap()
        .jobs;
    let second = job_claim(&db.pool, "default", &kinds, 100, "w2")
        .await
        .unwrap()
        .jobs;
    let third = job_claim(&db.pool, "default", &kinds, 100, "w3")
        .await
        .unwrap()
        .jobs;
    assert_eq!((first.len(), second.len(), third.len()), (4, 6, 0));
    assert!(job_claim(&db.pool, "default", &kinds, 0, "w4")
        .await
        .unwrap()
        .jobs
        .is_empty());
}

// ---- 16. invalid configuration ----

#[tokio::test]
async fn invalid_configuration_is_a_typed_error() {
    let db = TestDb::new().await;
    let message = |result: bosun_workers::Result<WorkerPool>| match result {
        Err(bosun_workers::Error::InvalidConfig(message)) => message,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let base = || WorkerPool::builder(db.client.clone()).register(Behaver::default());

    let no_queues = message(base().build());
    assert!(no_queues.contains("no queues"), "{no_queues}");
    let zero = message(base().queue("default", 0).build());
    assert!(
        zero.contains("\"default\"") && zero.contains("concurrency 0"),
        "{zero}"
    );
    let bad_name = message(base().queue("bad name", 1).build());
    assert!(
        bad_name.contains("\"bad name\"") && bad_name.contains("not a valid name"),
        "{bad_name}"
    );
    let twice = message(base().queue("a", 1).queue("a", 2).build());
    assert!(twice.contains("twice"), "{twice}");
    let poll = message(base().queue("a", 1).poll_interval(Duration::ZERO).build());
    assert!(poll.contains("poll_interval"), "{poll}");
    let bad_vacuum = bosun_workers::maintenance::vacuumer::VacuumerConfig {
        dead_fraction: f64::NAN,
        ..Default::default()
    };
    let vacuum = message(base().queue("a", 1).vacuumer(bad_vacuum).build());
    assert!(vacuum.contains("dead_fraction"), "{vacuum}");
    let no_workers = message(
        WorkerPool::builder(db.client.clone())
            .queue("default", 1)
            .build(),
    );
    assert!(no_workers.contains("no workers registered"), "{no_workers}");
}

#[tokio::test]
async fn a_batched_completion_completes_exactly_the_attempts_still_held() {
    let db = TestDb::new().await;
    let kinds = vec!["test.batch".to_string()];
    for _ in 0..4 {
        enqueue(&db.client, NewJob::new("test.batch", json!({}))).await;
    }
    let claimed = job_claim(&db.pool, "default", &kinds, 10, "w1")
        .await
        .unwrap()
        .jobs;
    let held: Vec<Lease> = claimed.iter().map(Job::lease).collect();
    // One was cancelled meanwhile, and one lease names a stale attempt.
    db.client.cancel_job(held[0].id).await.unwrap();
    let mut sent = held.clone();
    sent[1].attempt = 7;
    let mut done = job_complete_many(&db.pool, &sent).await.unwrap();
    done.sort_unstable();
    assert_eq!(done, [held[2].id, held[3].id]);
    let counts = state_counts(&db.pool).await;
    assert_eq!(counts.get("completed"), Some(&2));
    assert_eq!(counts.get("cancelled"), Some(&1));
    assert_eq!(counts.get("running"), Some(&1));
}

/// A worker opens at most the connections of its client's pool (handlers' `ctx.client()`,
/// the LISTEN connection, the leader's prune passes and VACUUM) plus its own pool's, one per
/// queue and one more: the count docs/operations.md gives an operator to size `max_connections` by.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_opens_no_more_connections_than_its_pools_allow() {
    const CLIENT_CONNECTIONS: u32 = 3;
    const QUEUES: u32 = 2;
    let db = TestDb::new().await;
    sqlx::query("CREATE TABLE runs (job_id bigint, attempt int, worker text)")
        .execute(&db.pool)
        .await
        .unwrap();
    // Its own connections carry the client's settings, the application name included, which
    // tells them apart from the test's.
    let options = db
        .url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .application_name("bosun-counted");
    let connections = PgPoolOptions::new()
        .max_connections(CLIENT_CONNECTIONS)
        .connect_with(options)
        .await
        .unwrap();
    let running = Running::start(
        pool(&Client::new(connections))
            .register(Recorder)
            .queue("default", 8)
            .queue("mail", 8)
            .maintenance_interval(Duration::from_millis(100))
            .prune_interval(Duration::from_millis(100))
            .pruner(bosun_workers::maintenance::pruner::PrunerConfig {
                retain_completed: Duration::ZERO,
                ..Default::default()
            })
            .build()
            .unwrap(),
    );
    db.client
        .enqueue_many((0..3000).map(|n| {
            let queue = if n % 2 == 0 { "default" } else { "mail" };
            NewJob::from_args(&Record { n }).unwrap().queue(queue)
        }))
        .await
        .unwrap();
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'bosun-counted'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        most = most.max(open);
        let ran: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if ran >= 3000 {
            break;
        }
        assert!(Instant::now() < deadline, "{ran} of 3000 jobs ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
    let bound = i64::from(CLIENT_CONNECTIONS + QUEUES + 1);
    // At least the LISTEN connection and one of its own: the count sees the worker.
    assert!(
        (2..=bound).contains(&most),
        "at most {bound} connections (client pool {CLIENT_CONNECTIONS} + queues {QUEUES} + 1), saw {most}"
    );
}
