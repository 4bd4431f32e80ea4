//! Crash safety with real `bosun worker` processes: kill -9, SIGSTOP past the lease, a
//! killed leader, and many replicas draining one queue.
//!
//! Every claim and every completion is logged by a trigger into `claims` and `completions`
//! (the latter with a unique job id), so after a run the database itself says how often each
//! job ran and who finished it. The built-in `echo` kind runs exactly when it is claimed.

use std::{process::Command, time::Duration};

use bosun_cli::embedded::EmbeddedPostgres;
use bosun_queue::{liveness::worker_list, JobState, NewJob};
use bosun_tests::{bosun_bin, eventually, Replica, TestDb};
use serde_json::json;

async fn install_ledger(db: &TestDb) {
    install_ledger_on(&db.pool).await;
}

async fn install_ledger_on(pool: &sqlx::PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE claims (job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL,
                              at timestamptz NOT NULL DEFAULT clock_timestamp());
         CREATE TABLE completions (job_id bigint NOT NULL UNIQUE, attempt int NOT NULL,
                                   worker text NOT NULL);
         CREATE FUNCTION ledger() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.state = 'running' AND OLD.state <> 'running' THEN
                 INSERT INTO claims (job_id, attempt, worker)
                 VALUES (NEW.id, NEW.attempt, NEW.attempted_by);
             END IF;
             IF NEW.state = 'completed' AND OLD.state <> 'completed' THEN
                 INSERT INTO completions VALUES (NEW.id, NEW.attempt, NEW.attempted_by);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER ledger AFTER UPDATE ON bosun.jobs
             FOR EACH ROW EXECUTE FUNCTION ledger();",
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn completed(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE state = 'completed'")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn wait_completed(db: &TestDb, n: i64, timeout: Duration) {
    eventually(timeout, &format!("{n} completed jobs"), || async {
        (completed(db).await >= n).then_some(())
    })
    .await;
}

async fn enqueue_echo(db: &TestDb, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        db.client
            .enqueue_many(chunk.iter().map(|i| NewJob::new("echo", json!({ "i": i }))))
            .await
            .unwrap();
    }
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_run_every_job_exactly_once() {
    let db = TestDb::new().await;
    install_ledger(&db).await;
    enqueue_echo(&db, 20_000).await;
    let replicas: Vec<Replica> = (1..=4)
        .map(|i| Replica::start(&db, &format!("r{i}"), 16))
        .collect();
    wait_completed(&db, 20_000, Duration::from_secs(240)).await;
    for replica in replicas {
        replica.stop().await;
    }
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM claims").await,
        20_000,
        "one claim per job"
    );
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT job_id) FROM claims").await,
        20_000
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM completions").await,
        20_000
    );
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT worker) FROM claims").await,
        4,
        "every replica took a share"
    );
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_replica_loses_no_job_and_reruns_only_its_in_flight_jobs() {
    let db = TestDb::new().await;
    install_ledger(&db).await;
    enqueue_echo(&db, 20_000).await;
    let r1 = Replica::start(&db, "r1", 16);
    let r2 = Replica::start(&db, "r2", 16);
    let r3 = Replica::start(&db, "r3", 16);
    wait_completed(&db, 5_000, Duration::from_secs(120)).await;
    r2.kill();
    // What the killed replica held: jobs running, claimed ahead, or completed but not yet
    // written. Exactly these may run again.
    let held_at_kill: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM bosun.jobs WHERE state = 'running' AND attempted_by = 'r2' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let killed_at_completed = completed(&db).await;
    assert!(
        killed_at_completed < 20_000,
        "killed in the middle of the drain"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r2 = Replica::start(&db, "r2", 16);
    wait_completed(&db, 20_000, Duration::from_secs(240)).await;
    for replica in [r1, r2, r3] {
        replica.stop().await;
    }

    assert_eq!(
        scalar(&db, "SELECT count(*) FROM completions").await,
        20_000
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'"
        )
        .await,
        0
    );
    let reruns: Vec<i64> = sqlx::query_scalar(
        "SELECT job_id FROM claims GROUP BY job_id HAVING count(*) > 1 ORDER BY job_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let unheld: Vec<&i64> = reruns
        .iter()
        .filter(|id| held_at_kill.binary_search(id).is_err())
        .collect();
    assert!(
        unheld.is_empty(),
        "only jobs the killed replica held ran twice; these it did not hold: {unheld:?}"
    );
    // Its room for jobs (1,024 for no-op jobs, whatever its slots) bounds what it held,
    // besides the completions waiting for their write (at most 2,000).
    assert!(
        held_at_kill.len() <= 1024 + 2000,
        "the killed replica held {} jobs",
        held_at_kill.len()
    );
    let foreign = scalar(
        &db,
        "SELECT count(*) FROM claims AS c
         WHERE c.worker <> 'r2'
           AND EXISTS (SELECT 1 FROM claims AS l WHERE l.job_id = c.job_id AND l.attempt > c.attempt)",
    )
    .await;
    assert_eq!(
        foreign, 0,
        "every earlier claim of a re-run job was the killed replica's"
    );
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_cannot_write_after_others_took_over() {
    let db = TestDb::new().await;
    install_ledger(&db).await;
    let ids: Vec<i64> = db
        .client
        .enqueue_many((0..8).map(|_| NewJob::new("sleep", json!({ "ms": 2500 }))))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let paused = Replica::start(&db, "paused", 8);
    eventually(
        Duration::from_secs(20),
        "all 8 running on the first replica",
        || async {
            let n = scalar(
            &db,
            "SELECT count(*) FROM bosun.jobs WHERE state = 'running' AND attempted_by = 'paused'",
        )
        .await;
            (n == 8).then_some(())
        },
    )
    .await;
    paused.signal("-STOP");

    let taker = Replica::start(&db, "taker", 8);
    wait_completed(&db, 8, Duration::from_secs(30)).await;
    paused.signal("-CONT");
    // Let the resumed replica finish its sleeps and try to record them.
    tokio::time::sleep(Duration::from_secs(4)).await;
    taker.stop().await;
    paused.stop().await;

    for id in ids {
        let job = db.client.job_get(id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.attempt, 2, "rescued once, then finished");
        assert_eq!(job.attempted_by.as_deref(), Some("taker"));
        let errors = job.attempt_errors();
        assert_eq!(errors.len(), 1, "only the rescue entry: {errors:?}");
        assert_eq!(errors[0].kind.as_deref(), Some("rescued"));
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM completions WHERE worker = 'taker'"
        )
        .await,
        8,
        "one completion per job, all by the replica that took over"
    );
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_the_lease() {
    let db = TestDb::new().await;
    let a = Replica::start(&db, "a", 2);
    let b = Replica::start(&db, "b", 2);
    let leader = eventually(Duration::from_secs(20), "a leader", || async {
        let workers = worker_list(&db.pool).await.unwrap();
        let alive = workers.iter().filter(|w| w.alive).count();
        workers
            .into_iter()
            .find(|w| w.leader)
            .filter(|_| alive == 2)
            .map(|w| w.id)
    })
    .await;
    let (dead, survivor) = if leader == "a" { (a, b) } else { (b, a) };
    dead.kill();
    let started = std::time::Instant::now();
    eventually(Duration::from_secs(10), "the survivor to lead", || async {
        let workers = worker_list(&db.pool).await.unwrap();
        workers
            .iter()
            .any(|w| w.id == survivor.id && w.leader)
            .then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "handover within the 2 s lease plus a tick, took {:?}",
        started.elapsed()
    );
    survivor.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// A PostgreSQL server of the test's own (stopping it must not disturb the other tests), with
/// Bosun's schema, and a client on it.
async fn own_server() -> (EmbeddedPostgres, bosun_queue::Client) {
    let server = tokio::task::spawn_blocking(EmbeddedPostgres::start)
        .await
        .unwrap()
        .expect("a throwaway PostgreSQL");
    let client = bosun_queue::Client::connect(&server.url()).await.unwrap();
    client.migrate().await.unwrap();
    (server, client)
}

/// Stop `server` (fast shutdown: clients are disconnected), leave it down for `down`, start it
/// again.
async fn restart(mut server: EmbeddedPostgres, down: Duration) -> EmbeddedPostgres {
    tokio::task::spawn_blocking(move || {
        server.stop("fast").expect("stopping PostgreSQL");
        std::thread::sleep(down);
        server.restart().expect("restarting PostgreSQL");
        server
    })
    .await
    .unwrap()
}

/// A client's pooled connections die with the server; the pool checks those that sat idle
/// before handing them out, so the first calls after a restart get fresh connections instead
/// of errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_enqueues_right_after_a_postgres_restart() {
    let (server, client) = own_server().await;
    // Several connections in the pool, all idle.
    let mut enqueues = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        enqueues.spawn(async move { client.enqueue(NewJob::new("echo", json!({ "i": i }))).await });
    }
    while let Some(enqueued) = enqueues.join_next().await {
        enqueued.unwrap().unwrap();
    }
    assert!(
        client.pool().num_idle() > 1,
        "the pool holds several connections"
    );
    let server = restart(server, bosun_queue::CHECK_CONNECTIONS_IDLE_FOR).await;
    for i in 0..20 {
        client
            .enqueue(NewJob::new("echo", json!({ "after": i })))
            .await
            .unwrap_or_else(|e| panic!("enqueue {i} after the restart: {e}"));
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(client.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 28);
    bosun_tests::assert_invariants_hold(client.pool()).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_drain_needs_no_operator() {
    let (server, client) = own_server().await;
    let url = server.url();
    install_ledger_on(client.pool()).await;
    for chunk in (0..6000).collect::<Vec<_>>().chunks(3000) {
        client
            .enqueue_many(chunk.iter().map(|i| NewJob::new("echo", json!({ "i": i }))))
            .await
            .unwrap();
    }
    let count = |state: &'static str| {
        let url = url.clone();
        async move {
            // A fresh connection each time: the test's own pool also lives through the restart.
            let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await else {
                return -1;
            };
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bosun.jobs WHERE state::text = $1")
                .bind(state)
                .fetch_one(&mut conn)
                .await
                .unwrap_or(-1)
        }
    };
    let r1 = Replica::start_on(&url, "pg-restart", "r1", 8);
    let r2 = Replica::start_on(&url, "pg-restart", "r2", 8);
    eventually(Duration::from_secs(60), "a third of the drain", || async {
        (count("completed").await >= 2000).then_some(())
    })
    .await;

    let before = count("completed").await;
    assert!(
        before < 6000,
        "the restart comes in the middle of the drain ({before} done)"
    );
    let server = restart(server, Duration::from_secs(2)).await;
    eventually(
        Duration::from_secs(120),
        "every job completed after the restart",
        || async { (count("completed").await == 6000).then_some(()) },
    )
    .await;
    r1.stop().await;
    r2.stop().await;

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let completions: i64 = sqlx::query_scalar("SELECT count(*) FROM completions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(completions, 6000, "each job completed once");
    let stuck: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(stuck, 0);
    bosun_tests::assert_invariants_hold(client.pool()).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_clock_is_hours_off_does_not_rescue_live_jobs() {
    let db = TestDb::new().await;
    let libfaketime = libfaketime().expect(
        "libfaketime is needed to fake a worker's clock: scripts/ensure-test-tools installs it",
    );
    // The skewed replica starts first and leads; it works another queue so that the jobs
    // under test run on the honest replica. libfaketime is preloaded into the bosun process
    // itself (not through the faketime wrapper) so that signals reach it.
    let mut skewed_cmd = Command::new(bosun_bin());
    skewed_cmd
        .env("LD_PRELOAD", libfaketime)
        .env("FAKETIME", "+2h");
    let skewed = Replica::spawn(skewed_cmd, &db.url, &db.name, "skewed", "elsewhere=1");
    eventually(
        Duration::from_secs(20),
        "the skewed replica to lead",
        || async {
            let workers = worker_list(&db.pool).await.unwrap();
            workers
                .iter()
                .any(|w| w.id == "skewed" && w.leader)
                .then_some(())
        },
    )
    .await;
    let honest = Replica::spawn(
        Command::new(bosun_bin()),
        &db.url,
        &db.name,
        "honest",
        "default=4",
    );
    // Each job runs longer than the 2 s lease: only liveness may keep it from being rescued.
    let ids: Vec<i64> = db
        .client
        .enqueue_many((0..4).map(|_| NewJob::new("sleep", json!({ "ms": 5000 }))))
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    wait_completed(&db, 4, Duration::from_secs(30)).await;
    let still_leader = worker_list(&db.pool)
        .await
        .unwrap()
        .into_iter()
        .any(|w| w.id == "skewed" && w.leader);
    assert!(still_leader, "the skewed replica led the whole time");
    honest.stop().await;
    skewed.stop().await;
    for id in ids {
        let job = db.client.job_get(id).await.unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (JobState::Completed, 1),
            "job {id}"
        );
        assert!(
            job.attempt_errors().is_empty(),
            "never rescued: {:?}",
            job.attempt_errors()
        );
        assert_eq!(job.attempted_by.as_deref(), Some("honest"));
    }
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// The multi-threaded libfaketime library, where distributions install it.
fn libfaketime() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib64/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|path| path.is_file())
}
