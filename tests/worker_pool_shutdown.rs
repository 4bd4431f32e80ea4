//! Graceful shutdown hands unfinished jobs back without using an attempt and leaves nothing
//! running; a pool keeps within its connections, runs when built outside a runtime, and
//! refuses an invalid configuration with a typed error.

use bosun_queue::{Client, JobArgs, JobState, NewJob};
use bosun_tests::pool_harness::{
    behave, enqueue, job, pool, raw_error_count, start_order_pool, wait_listening, Behave, Behaver,
    Order, OrderWorker, Record, Recorder, WAIT,
};
use bosun_tests::{eventually, state_counts, wait_state, RunningPool as Running, TestDb};
use bosun_workers::{JobContext, JobResult, Worker, WorkerPool};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

// ---- graceful shutdown ----

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

// ---- invalid configuration ----

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
