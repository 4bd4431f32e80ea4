//! What a worker pool claims, and when: each job exactly once under contention, at its
//! scheduled time, by priority then age, never from a paused queue, only the kinds it
//! registered, woken by inserts (or by polling alone); and writes by a worker that lost a job
//! are fenced out.
//!
//! Every test gets its own database and runs its pools in spawned tasks, stopped through a
//! `CancellationToken` as the shutdown future.

use bosun_queue::{
    runtime::{job_claim, job_complete_many, job_lost_leases, job_record, Outcome, Recorded},
    Client, Job, JobArgs, JobState, Lease, NewJob,
};
use bosun_tests::pool_harness::{
    behave, enqueue, job, listeners, pool, start_order_pool, wait_listening, Behave, Behaver,
    Order, Record, Recorder, WAIT,
};
use bosun_tests::{eventually, state_counts, wait_state, RunningPool as Running, TestDb};
use bosun_workers::{JobContext, JobError, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use std::time::{Duration, Instant};

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

// ---- claims under contention ----

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

// ---- scheduling ----

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

// ---- priority ----

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

// ---- pause and resume ----

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

// ---- wake-ups ----

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

// ---- kinds filter ----

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

// ---- fencing ----

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

// ---- invalid configuration ----

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
