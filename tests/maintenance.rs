//! Worker registry, leases, leader election and the rescuer, tested by calling `run_once`
//! on rows dated in the past, and through a running pool.

use std::time::Duration;

use bosun_queue::{
    liveness::{self, leader_acquire, worker_heartbeat, WorkerIdentity, MAINTENANCE_LEADER},
    JobState, NewJob,
};
use bosun_tests::{eventually, force_state_as, Attempt, RunningPool, TestDb};
use bosun_workers::maintenance::rescuer::{Rescuer, RescuerConfig};
use serde_json::json;

fn identity(id: &str) -> WorkerIdentity {
    WorkerIdentity {
        id: id.into(),
        host: "test-host".into(),
        pid: 1,
        queues: vec!["default".into()],
        kinds: vec!["k".into()],
    }
}

/// A running job held by `worker`, claimed `minutes_ago`, at `attempt` of `max_attempts`.
async fn running_job(
    db: &TestDb,
    worker: &str,
    minutes_ago: i32,
    attempt: i32,
    max_attempts: i32,
) -> i64 {
    let id = db
        .client
        .enqueue(NewJob::new("k", json!({})).max_attempts(max_attempts))
        .await
        .unwrap()
        .id;
    force_state_as(
        &db.pool,
        id,
        "running",
        Attempt {
            number: attempt,
            worker,
            started_minutes_ago: minutes_ago,
        },
    )
    .await;
    id
}

/// The one number `sql` selects.
async fn number(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

fn rescuer(db: &TestDb) -> Rescuer {
    Rescuer::new(
        db.client.clone(),
        RescuerConfig {
            batch_size: 2,
            min_age: Duration::from_secs(15),
            ..RescuerConfig::default()
        },
    )
}

/// Once a walk of the running jobs from the oldest entry is slow (here: always), a pass walks
/// from the oldest running at the last one (less a margin): a job set running by hand, after
/// that pass, with a claim time before it waits for the pass that walks from the oldest
/// entry, every `full_pass_every`; jobs claimed in the meantime by a worker that died are
/// rescued by the next pass.
#[tokio::test]
async fn rescue_passes_start_at_the_oldest_job_running_at_the_last_one() {
    let db = TestDb::new().await;
    let floored = Rescuer::new(
        db.client.clone(),
        RescuerConfig {
            min_age: Duration::from_secs(15),
            slow_walk: Duration::ZERO,
            full_pass_every: Duration::from_secs(3600),
            ..RescuerConfig::default()
        },
    );
    let orphan = running_job(&db, "ghost", 30, 1, 20).await;
    assert_eq!(
        floored.run_once().await.unwrap().retried,
        1,
        "the first pass is full"
    );
    // Claimed, by its clock, two hours ago: below where the next pass starts.
    let below = running_job(&db, "ghost", 120, 1, 20).await;
    // Claimed a minute ago by a worker that died since: above it.
    let recent = running_job(&db, "ghost", 1, 1, 20).await;
    assert_eq!(floored.run_once().await.unwrap().retried, 1);
    let state = |id| {
        let client = db.client.clone();
        async move { client.job_get(id).await.unwrap().state }
    };
    assert_eq!(state(recent).await, JobState::Retryable);
    assert_eq!(state(below).await, JobState::Running);
    assert_eq!(state(orphan).await, JobState::Retryable);
    let full = Rescuer::new(
        db.client.clone(),
        RescuerConfig {
            min_age: Duration::from_secs(15),
            slow_walk: Duration::ZERO,
            full_pass_every: Duration::ZERO,
            ..RescuerConfig::default()
        },
    );
    assert_eq!(full.run_once().await.unwrap().retried, 1);
    assert_eq!(state(below).await, JobState::Retryable);
}

/// A worker keeps two claims in flight only while no other live worker serves its queue.
#[tokio::test]
async fn a_worker_sees_the_live_peers_on_its_queue() {
    let db = TestDb::new().await;
    let peers = |worker: &'static str, queue: &'static str| {
        let pool = db.pool.clone();
        async move {
            liveness::worker_has_peers(&pool, worker, queue)
                .await
                .unwrap()
        }
    };
    worker_heartbeat(&db.pool, &identity("me"), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!peers("me", "default").await, "alone on its queue");
    let mut other = identity("other");
    other.queues = vec!["elsewhere".into()];
    worker_heartbeat(&db.pool, &other, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!peers("me", "default").await, "a worker of another queue");
    assert!(
        peers("other", "default").await,
        "seen from outside the queue"
    );
    other.queues = vec!["elsewhere".into(), "default".into()];
    worker_heartbeat(&db.pool, &other, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(peers("me", "default").await, "a live peer");
    sqlx::query(
        "UPDATE bosun.workers SET heartbeat_at = now() - interval '2 hours',
                                  expires_at = now() - interval '1 hour'
         WHERE id = 'other'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(!peers("me", "default").await, "an expired peer is none");
}

#[tokio::test]
async fn the_rescuer_gives_back_jobs_of_dead_workers_only() {
    let db = TestDb::new().await;
    worker_heartbeat(&db.pool, &identity("alive"), Duration::from_secs(60))
        .await
        .unwrap();
    worker_heartbeat(&db.pool, &identity("dead"), Duration::from_secs(60))
        .await
        .unwrap();
    sqlx::query("UPDATE bosun.workers SET heartbeat_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE id = 'dead'")
        .execute(&db.pool)
        .await
        .unwrap();

    let slow_but_alive = running_job(&db, "alive", 120, 1, 20).await;
    let orphan = running_job(&db, "dead", 120, 1, 20).await;
    let never_registered = running_job(&db, "ghost", 120, 2, 20).await;
    let out_of_attempts = running_job(&db, "dead", 120, 3, 3).await;
    let just_claimed = running_job(&db, "ghost", 0, 1, 20).await;

    let result = rescuer(&db).run_once().await.unwrap();
    assert_eq!(
        (result.retried, result.failed),
        (2, 1),
        "batches of 2 until short"
    );

    let state = |id| {
        let client = db.client.clone();
        async move { client.job_get(id).await.unwrap() }
    };
    assert_eq!(
        state(slow_but_alive).await.state,
        JobState::Running,
        "a slow job on a live worker stays"
    );
    assert_eq!(
        state(just_claimed).await.state,
        JobState::Running,
        "younger than min_age"
    );
    let rescued = state(orphan).await;
    assert_eq!(rescued.state, JobState::Retryable);
    let error = &rescued.attempt_errors()[0];
    assert_eq!(error.kind.as_deref(), Some("rescued"));
    assert!(
        error.error.contains("worker dead stopped heartbeating"),
        "{}",
        error.error
    );
    assert_eq!(state(never_registered).await.state, JobState::Retryable);
    let failed = state(out_of_attempts).await;
    assert_eq!(failed.state, JobState::Failed);
    assert!(failed.finalized_at.is_some());

    let again = rescuer(&db).run_once().await.unwrap();
    assert_eq!(
        (again.retried, again.failed),
        (0, 0),
        "a second pass changes nothing"
    );
}

#[tokio::test]
async fn dead_workers_are_forgotten_once_they_hold_nothing() {
    let db = TestDb::new().await;
    for id in ["old-dead", "old-dead-holding", "alive"] {
        worker_heartbeat(&db.pool, &identity(id), Duration::from_secs(60))
            .await
            .unwrap();
    }
    sqlx::query("UPDATE bosun.workers SET heartbeat_at = now() - interval '3 hours', expires_at = now() - interval '2 hours' WHERE id LIKE 'old-dead%'")
        .execute(&db.pool)
        .await
        .unwrap();
    // A job claimed a moment ago by the dead worker is not rescued yet (min_age), so the
    // worker's row stays while it holds it.
    running_job(&db, "old-dead-holding", 0, 1, 20).await;
    rescuer(&db).run_once().await.unwrap();
    let ids: Vec<String> = liveness::worker_list(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["old-dead-holding", "alive"]);
}

#[tokio::test]
async fn leadership_is_held_until_its_term_runs_out() {
    let db = TestDb::new().await;
    let term = Duration::from_secs(30);
    assert!(leader_acquire(&db.pool, MAINTENANCE_LEADER, "w1", term)
        .await
        .unwrap());
    assert!(!leader_acquire(&db.pool, MAINTENANCE_LEADER, "w2", term)
        .await
        .unwrap());
    assert!(
        leader_acquire(&db.pool, MAINTENANCE_LEADER, "w1", term)
            .await
            .unwrap(),
        "renewal"
    );
    sqlx::query("UPDATE bosun.leaders SET expires_at = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(
        leader_acquire(&db.pool, MAINTENANCE_LEADER, "w2", term)
            .await
            .unwrap(),
        "takeover"
    );
    assert!(!leader_acquire(&db.pool, MAINTENANCE_LEADER, "w1", term)
        .await
        .unwrap());
}

#[tokio::test]
async fn heartbeats_register_renew_and_deregister() {
    let db = TestDb::new().await;
    let me = identity("w1");
    assert!(
        worker_heartbeat(&db.pool, &me, Duration::from_secs(10))
            .await
            .unwrap(),
        "first registers"
    );
    assert!(
        !worker_heartbeat(&db.pool, &me, Duration::from_secs(10))
            .await
            .unwrap(),
        "then renews"
    );
    let listed = liveness::worker_list(&db.pool).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].alive);
    assert!(listed[0].expires_at > listed[0].heartbeat_at);
    liveness::worker_deregister(&db.pool, "w1").await.unwrap();
    assert!(liveness::worker_list(&db.pool).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_registers_leads_and_rescues_orphans() {
    let db = TestDb::new().await;
    let orphan = running_job(&db, "crashed-worker", 60, 1, 20).await;

    let pool = bosun_workers::WorkerPool::builder(db.client.clone())
        .registry(bosun_cli::kinds::registry())
        .queue("default", 2)
        .poll_interval(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(200))
        .lease(Duration::from_secs(2))
        .maintenance_interval(Duration::from_millis(200))
        .worker_id("pool-1")
        .build()
        .unwrap();
    // The orphan is of kind `k`, which this pool does not run: rescue makes it retryable
    // and it stays there, so its state shows the rescue.
    let running = RunningPool::start(pool);

    eventually(Duration::from_secs(10), "the pool to lead", || async {
        let workers = liveness::worker_list(&db.pool).await.unwrap();
        workers
            .iter()
            .any(|w| w.id == "pool-1" && w.alive && w.leader)
            .then_some(())
    })
    .await;
    let rescued = eventually(
        Duration::from_secs(10),
        "the orphan to be rescued",
        || async {
            let job = db.client.job_get(orphan).await.unwrap();
            (job.state == JobState::Retryable).then_some(job)
        },
    )
    .await;
    assert_eq!(rescued.attempt_errors()[0].kind.as_deref(), Some("rescued"));

    running.stop().await;
    assert!(
        liveness::worker_list(&db.pool).await.unwrap().is_empty(),
        "a graceful shutdown deregisters"
    );
    let leaders: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.leaders")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(leaders, 0, "and gives up the leadership");
}

#[tokio::test]
async fn a_lease_shorter_than_two_heartbeats_is_refused() {
    let db = TestDb::new().await;
    let result = bosun_workers::WorkerPool::builder(db.client.clone())
        .registry(bosun_cli::kinds::registry())
        .queue("default", 1)
        .heartbeat_interval(Duration::from_secs(5))
        .lease(Duration::from_secs(6))
        .build();
    match result {
        Err(bosun_workers::Error::InvalidConfig(message)) => {
            assert!(message.contains("lease"), "{message}");
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_id_gives_back_what_its_previous_incarnation_held() {
    let db = TestDb::new().await;
    worker_heartbeat(&db.pool, &identity("fixed-id"), Duration::from_secs(60))
        .await
        .unwrap();
    // Claimed a moment ago by the same id, whose lease is still running: only the restart
    // can tell that this job is orphaned.
    let held = running_job(&db, "fixed-id", 0, 1, 20).await;
    let pool = bosun_workers::WorkerPool::builder(db.client.clone())
        .registry(bosun_cli::kinds::registry())
        .queue("default", 1)
        .worker_id("fixed-id")
        .build()
        .unwrap();
    let running = RunningPool::start(pool);
    let job = eventually(
        Duration::from_secs(5),
        "the old claim to be given back",
        || async {
            let job = db.client.job_get(held).await.unwrap();
            (job.state == JobState::Retryable).then_some(job)
        },
    )
    .await;
    assert!(
        job.attempt_errors()[0]
            .error
            .contains("no longer holds the job"),
        "{:?}",
        job.attempt_errors()
    );
    running.stop().await;
}

#[tokio::test]
async fn the_pruner_deletes_finished_jobs_past_their_retention_in_batches() {
    use bosun_workers::maintenance::pruner::{Pruner, PrunerConfig};
    let db = TestDb::new().await;
    // (state, hours since it finished) for each job.
    let rows = [
        ("completed", 30),
        ("completed", 30),
        ("completed", 30),
        ("completed", 1),
        ("failed", 30),
        ("failed", 24 * 8),
        ("cancelled", 24 * 8),
        ("available", 0),
        ("running", 0),
    ];
    for (state, hours) in rows {
        let id = db
            .client
            .enqueue(NewJob::new("k", json!({})))
            .await
            .unwrap()
            .id;
        sqlx::query(
            "UPDATE bosun.jobs SET state = $2::bosun.job_state, attempt = 1,
                    finalized_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled')
                                        THEN now() - make_interval(hours => $3) END
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(hours)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let pruner = Pruner::new(
        db.client.clone(),
        PrunerConfig {
            batch_size: 2,
            ..PrunerConfig::default()
        },
    );
    let result = pruner.run_once().await.unwrap();
    assert_eq!(
        (result.completed, result.failed, result.cancelled),
        (3, 1, 1)
    );
    let left: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state::text, count(*) FROM bosun.jobs GROUP BY state ORDER BY state::text",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        [
            ("available".to_string(), 1),
            ("completed".to_string(), 1),
            ("failed".to_string(), 1),
            ("running".to_string(), 1)
        ],
        "recent finished jobs and unfinished ones stay"
    );
    let again = pruner.run_once().await.unwrap();
    assert_eq!((again.completed, again.failed, again.cancelled), (0, 0, 0));
    assert!(matches!(
        bosun_queue::cleanup::job_prune_batch(
            &db.pool,
            JobState::Running,
            Duration::ZERO,
            10,
            None
        )
        .await,
        Err(bosun_queue::Error::InvalidArgument(_))
    ));
}

/// A pass starts where the last one stopped: a job that finished, by its `finalized_at`,
/// before that (its transaction began long before it committed) waits for the pass that
/// walks from the oldest, every `full_pass_every`.
#[tokio::test]
async fn prune_passes_start_where_the_last_one_stopped_and_now_and_then_from_the_oldest() {
    use bosun_workers::maintenance::pruner::{Pruner, PrunerConfig};
    let db = TestDb::new().await;
    let finish = |secs_ago: i64| {
        let db = &db;
        async move {
            let id = db
                .client
                .enqueue(NewJob::new("k", json!({})))
                .await
                .unwrap()
                .id;
            sqlx::query(
                "UPDATE bosun.jobs SET state = 'completed', attempt = 1,
                     finalized_at = now() - make_interval(secs => $2::int) WHERE id = $1",
            )
            .bind(id)
            .bind(i32::try_from(secs_ago).unwrap())
            .execute(&db.pool)
            .await
            .unwrap();
        }
    };
    let pruner = |full_pass_every| {
        Pruner::new(
            db.client.clone(),
            PrunerConfig {
                full_pass_every,
                ..PrunerConfig::default()
            },
        )
    };
    let floored = pruner(Duration::from_secs(3600));
    const DAY: i64 = 24 * 3600;
    finish(DAY + 3600).await;
    assert_eq!(
        floored.run_once().await.unwrap().completed,
        1,
        "the first pass is full"
    );
    // Past the one-day retention: one finished, by its clock, two days ago (after that
    // pass), one just past the retention.
    finish(2 * DAY).await;
    finish(DAY + 10).await;
    assert_eq!(
        floored.run_once().await.unwrap().completed,
        1,
        "only the job after where the last pass stopped"
    );
    assert_eq!(
        pruner(Duration::ZERO).run_once().await.unwrap().completed,
        1
    );
}

#[tokio::test]
async fn the_pruner_deletes_finished_sagas_past_their_retention_and_keeps_stuck_ones() {
    use bosun_workers::maintenance::pruner::{Pruner, PrunerConfig};
    let db = TestDb::new().await;
    // (state, days since it finished) for each saga.
    let rows = [
        ("succeeded", 8),
        ("compensated", 8),
        ("succeeded", 1),
        ("stuck", 30),
        ("running", 30),
    ];
    for (i, (state, days)) in rows.into_iter().enumerate() {
        let id = db
            .client
            .start_saga("k", &format!("saga-{i}"), &json!({}))
            .await
            .unwrap();
        sqlx::query(
            "UPDATE bosun.sagas SET state = $2::text::bosun.saga_state,
                    created_at = now() - make_interval(days => $3),
                    finished_at = CASE WHEN $2 IN ('succeeded', 'compensated')
                                       THEN now() - make_interval(days => $3) END
             WHERE id = $1",
        )
        .bind(id)
        .bind(state)
        .bind(days)
        .execute(&db.pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO bosun.saga_steps (saga_id, idx, name) VALUES ($1, 0, 'only')")
            .bind(id)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let pruner = Pruner::new(
        db.client.clone(),
        PrunerConfig {
            batch_size: 1,
            ..PrunerConfig::default()
        },
    );
    assert_eq!(pruner.run_once().await.unwrap().sagas, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT state::text FROM bosun.sagas ORDER BY key")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, ["succeeded", "stuck", "running"]);
    let ledgers: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.saga_steps")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(ledgers, 3, "the ledgers of pruned sagas went with them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_worker_gives_back_claims_it_never_received() {
    let db = TestDb::new().await;
    let pool = bosun_workers::WorkerPool::builder(db.client.clone())
        .registry(bosun_cli::kinds::registry())
        .queue("default", 1)
        .worker_id("live")
        .heartbeat_interval(Duration::from_millis(200))
        .lease(Duration::from_secs(1))
        .lease_check_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = RunningPool::start(pool);
    eventually(Duration::from_secs(5), "the worker to register", || async {
        let workers = liveness::worker_list(&db.pool).await.unwrap();
        workers.iter().any(|w| w.id == "live").then_some(())
    })
    .await;
    // A claim that committed under the live worker's id but whose reply it never got.
    let lost = running_job(&db, "live", 5, 1, 20).await;
    let job = eventually(
        Duration::from_secs(5),
        "the lost claim to be given back",
        || async {
            let job = db.client.job_get(lost).await.unwrap();
            (job.state != JobState::Running).then_some(job)
        },
    )
    .await;
    assert_eq!(
        job.state,
        JobState::Retryable,
        "kind k is not run here, so it waits"
    );
    assert!(job.attempt_errors()[0]
        .error
        .contains("no longer holds the job"));
    running.stop().await;
}

#[tokio::test]
async fn the_vacuumer_vacuums_once_dead_rows_pile_up() {
    use bosun_workers::maintenance::vacuumer::{Vacuumer, VacuumerConfig};
    let db = TestDb::new().await;
    let jobs = (0..2_000).map(|_| NewJob::new("k", json!({})));
    db.client.enqueue_many(jobs).await.unwrap();
    // Each job completed, then pruned: two dead versions apiece, and nothing live.
    sqlx::raw_sql(
        "UPDATE bosun.jobs SET state = 'completed', attempt = 1, finalized_at = now();
         DELETE FROM bosun.jobs;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let heap_size = || number(&db, "SELECT pg_relation_size('bosun.jobs')");
    let before = heap_size().await;
    assert!(before > 0);

    let vacuumer = |config| Vacuumer::new(db.client.clone(), config);
    let off = VacuumerConfig {
        enabled: false,
        dead_min: 1,
        ..VacuumerConfig::default()
    };
    assert_eq!(vacuumer(off).run_once().await.unwrap(), None, "turned off");
    let high = VacuumerConfig {
        dead_min: 1_000_000,
        ..VacuumerConfig::default()
    };
    assert_eq!(
        vacuumer(high).run_once().await.unwrap(),
        None,
        "below the minimum"
    );
    assert_eq!(heap_size().await, before, "nothing was vacuumed yet");

    // The statistics arrive within a second or so; the vacuumer acts once they show the rows.
    let low = VacuumerConfig {
        dead_min: 1_000,
        ..VacuumerConfig::default()
    };
    let dead = eventually(Duration::from_secs(10), "a vacuum", || {
        let vacuumer = vacuumer(low.clone());
        async move { vacuumer.run_once().await.unwrap() }
    })
    .await;
    assert!(dead >= 1_000, "it vacuumed with {dead} dead rows counted");
    // The empty pages stay (`vacuum_truncate = false`: giving them back would lock the table), and the
    // space is free: as many new jobs fit in it.
    assert_eq!(
        heap_size().await,
        before,
        "the vacuum kept the table's pages"
    );
    let jobs = (0..2_000).map(|_| NewJob::new("k", json!({})));
    db.client.enqueue_many(jobs).await.unwrap();
    assert_eq!(
        heap_size().await,
        before,
        "new jobs took the space the dead rows had"
    );
}

/// A prune pass that takes many seconds (a backlog of finished jobs, one per batch) holds up
/// none of the leader's other services: a job orphaned while it runs is rescued at once, and
/// the leadership's term is renewed meanwhile. Run in the maintenance loop, the pass held
/// them all until it ended (under sustained load, it need never end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prune_pass_holds_up_neither_the_rescuer_nor_the_leadership() {
    use bosun_workers::maintenance::pruner::PrunerConfig;
    // One-row batches of at least 60 µs each even without waiting for the disk: a pass of
    // 18 s or more, several times what the test needs.
    const BACKLOG: i64 = 300_000;
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO bosun.jobs (kind, state, attempt, finalized_at)
         SELECT 'k', 'completed', 1, now() - interval '1 hour' FROM generate_series(1, $1)",
    )
    .bind(BACKLOG)
    .execute(&db.pool)
    .await
    .unwrap();
    let completed = || {
        number(
            &db,
            "SELECT count(*) FROM bosun.jobs WHERE state = 'completed'",
        )
    };
    let pool = bosun_workers::WorkerPool::builder(db.client.clone())
        .registry(bosun_cli::kinds::registry())
        .queue("default", 2)
        .heartbeat_interval(Duration::from_millis(200))
        .lease(Duration::from_secs(1))
        .maintenance_interval(Duration::from_millis(200))
        .pruner(PrunerConfig {
            retain_completed: Duration::from_secs(60),
            batch_size: 1,
            ..PrunerConfig::default()
        })
        .worker_id("pruning-leader")
        .build()
        .unwrap();
    let running = RunningPool::start(pool);
    eventually(Duration::from_secs(10), "the pass to begin", || async {
        (completed().await < BACKLOG).then_some(())
    })
    .await;

    // Orphaned now, in the middle of the pass; `k` is not a kind the pool runs, so the
    // rescue shows as `retryable`.
    let orphan = running_job(&db, "crashed-worker", 60, 1, 20).await;
    let orphaned_at = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "the orphan to be rescued",
        || async {
            let job = db.client.job_get(orphan).await.unwrap();
            (job.state == JobState::Retryable).then_some(())
        },
    )
    .await;
    let left = completed().await;
    assert!(
        left > 0,
        "rescued after {:?}, once the pass had ended: it waited for the pass",
        orphaned_at.elapsed()
    );
    // Past several terms of the leadership into the pass, the leader is the same.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(completed().await > 0, "the pass is still going");
    let leader: Option<String> = sqlx::query_scalar(
        "SELECT worker_id FROM bosun.leaders WHERE name = $1 AND expires_at > now()",
    )
    .bind(MAINTENANCE_LEADER)
    .fetch_optional(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        leader.as_deref(),
        Some("pruning-leader"),
        "the term was renewed"
    );
    running.stop().await;
}
