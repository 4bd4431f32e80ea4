//! The insert wake-up on `bosun_jobs`: inserts wake the queues a worker waits on once per
//! transaction, `bosun.notify_inserts = off` quiets them, and a claim that may wait marks its
//! worker without ever missing a concurrent insert.

use bosun_tests::force_state;
use bosun_tests::raw_sql::{sql_exec, sql_id};
use bosun_tests::TestDb;
use sqlx::{postgres::PgListener, PgConnection};
use std::time::Duration;

const MARKER: &str = "sql-api-test-marker";

/// The payloads sent on `bosun_jobs` by the statements `conn` ran before this call, in order.
/// A marker notification is sent from `conn` now; notifications arrive in commit order, so
/// everything before the marker is what those statements sent. Then the listener is drained
/// with a short timeout to prove nothing else follows.
async fn wake_ups(listener: &mut PgListener, conn: &mut PgConnection) -> Vec<String> {
    sqlx::query("SELECT pg_notify('bosun_jobs', $1)")
        .bind(MARKER)
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut payloads = Vec::new();
    loop {
        let notification = tokio::time::timeout(Duration::from_secs(10), listener.try_recv())
            .await
            .expect("the marker notification arrives")
            .expect("the listener works")
            .expect("the listener keeps its connection");
        assert_eq!(notification.channel(), "bosun_jobs");
        if notification.payload() == MARKER {
            break;
        }
        payloads.push(notification.payload().to_string());
    }
    // Drained: nothing follows within a short wait.
    if let Ok(other) = tokio::time::timeout(Duration::from_millis(300), listener.try_recv()).await {
        panic!("unexpected notification after the marker: {other:?}");
    }
    payloads
}

// ---- wake-ups ----

/// `bosun.notify_inserts = off` (what a worker's saga transitions set) quiets the inserts of
/// its transaction, and only those.
#[tokio::test]
async fn inserts_in_a_transaction_with_notify_inserts_off_wake_nobody() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();
    wait_on(&mut conn, &["q1", "q2", "q3"]).await;

    sqlx::raw_sql(
        "BEGIN;
         SET LOCAL bosun.notify_inserts = off;
         SELECT bosun.enqueue('quiet', '{}', queue => 'q1');
         INSERT INTO bosun.jobs (kind, queue) VALUES ('quiet', 'q2');
         COMMIT",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        wake_ups(&mut listener, &mut conn).await,
        Vec::<String>::new()
    );
    // The setting ended with its transaction.
    sql_exec(
        &mut conn,
        "SELECT bosun.enqueue('loud', '{}', queue => 'q3')",
    )
    .await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, ["q3"]);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(jobs, 3, "the quiet inserts are there");
}

/// Mark a worker `w` as waiting on each of `queues`, as an idle worker does before it sleeps.
async fn wait_on(conn: &mut PgConnection, queues: &[&str]) {
    for queue in queues {
        sqlx::query("SELECT bosun.worker_waits($1, 'w')")
            .bind(queue)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn inserts_wake_the_queues_a_worker_waits_on_once_per_transaction() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();

    // Nobody waits: nobody is woken (a busy worker claims again on its own).
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q1')",
    )
    .await;
    assert_eq!(
        wake_ups(&mut listener, &mut conn).await,
        Vec::<String>::new()
    );

    wait_on(
        &mut conn,
        &["q1", "q2", "q3", "due", "future", "q4", "q5", "m1", "m2"],
    )
    .await;
    // One wake-up per queue with due jobs, however many rows and statements.
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q1'), ('b', 'q2'), ('c', 'q1')",
    )
    .await;
    let mut payloads = wake_ups(&mut listener, &mut conn).await;
    payloads.sort();
    assert_eq!(payloads, ["q1", "q2"]);
    sqlx::raw_sql(
        "BEGIN;
         INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q1');
         INSERT INTO bosun.jobs (kind, queue) VALUES ('b', 'q1');
         COMMIT",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(wake_ups(&mut listener, &mut conn).await, ["q1"]);

    // A job for later wakes nobody; a plain INSERT of one is shown as scheduled.
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue, scheduled_at)
         VALUES ('later', 'q3', now() + interval '1 hour')",
    )
    .await;
    assert_eq!(
        wake_ups(&mut listener, &mut conn).await,
        Vec::<String>::new()
    );
    let state: String =
        sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE kind = 'later'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(state, "scheduled");

    // A statement mixing due and future jobs wakes only the queues with due ones.
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue, scheduled_at)
         VALUES ('x', 'due', now()), ('y', 'future', now() + interval '1 hour')",
    )
    .await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, vec!["due"]);

    // bosun.enqueue and bosun.enqueue_many.
    sql_exec(&mut conn, "SELECT bosun.enqueue('x', queue => 'q4')").await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, vec!["q4"]);
    sql_exec(
        &mut conn,
        "SELECT bosun.enqueue('x', queue => 'q5', scheduled_at => now() + interval '1 hour')",
    )
    .await;
    assert!(wake_ups(&mut listener, &mut conn).await.is_empty());
    sql_exec(
        &mut conn,
        r#"SELECT * FROM bosun.enqueue_many('[{"kind":"a","queue":"m1"},{"kind":"b","queue":"m2"},
                                             {"kind":"c","queue":"m1"}]')"#,
    )
    .await;
    let mut payloads = wake_ups(&mut listener, &mut conn).await;
    payloads.sort();
    assert_eq!(payloads, ["m1", "m2"]);

    // A claim that takes jobs removes its worker's mark: the worker is awake.
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bosun.claim_jobs('q1', 10, ARRAY['a', 'b', 'c'], 'w')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(claimed, 5);
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q1')",
    )
    .await;
    assert_eq!(
        wake_ups(&mut listener, &mut conn).await,
        Vec::<String>::new()
    );
    // One that finds nothing keeps it.
    wait_on(&mut conn, &["q2"]).await;
    sqlx::query("SELECT count(*) FROM bosun.claim_jobs('q2', 10, ARRAY['none'], 'w')")
        .execute(&mut conn)
        .await
        .unwrap();
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q2')",
    )
    .await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, ["q2"]);

    // Retrying a job wakes its queue, waited on or not.
    let failed = sql_id(&mut conn, "SELECT bosun.enqueue('x', queue => 'q6')").await;
    force_state(&mut conn, failed, "failed", 1).await;
    wake_ups(&mut listener, &mut conn).await;
    sql_exec(&mut conn, &format!("SELECT bosun.retry_job({failed})")).await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, vec!["q6"]);
}

/// Workers marked as waiting, as `queue/worker`.
async fn marks(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT queue || '/' || worker FROM bosun.waiting_workers ORDER BY 1")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// How many jobs of kind `a` in queue `q` a claim for worker `w` takes, at most `max`.
async fn claim_q(conn: &mut PgConnection, max: i64, wait: bool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM bosun.claim_jobs('q', $1, ARRAY['a'], 'w', wait => $2)",
    )
    .bind(max)
    .bind(wait)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// What an idle worker does: one claim that, coming back short, marks the worker as waiting
/// in the same transaction; one that fills its room removes the mark.
#[tokio::test]
async fn a_claim_that_may_wait_marks_its_worker_when_it_comes_back_short() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();
    let insert = |n: i64| {
        format!("INSERT INTO bosun.jobs (kind, queue) SELECT 'a', 'q' FROM generate_series(1, {n})")
    };

    // An empty queue: marked, and the next insert wakes the queue.
    assert_eq!(claim_q(&mut conn, 10, true).await, 0);
    assert_eq!(marks(&mut conn).await, ["q/w"]);
    sql_exec(&mut conn, &insert(3)).await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, ["q"]);

    // A claim that fills its room: no longer marked, inserts wake nobody.
    assert_eq!(claim_q(&mut conn, 2, true).await, 2);
    assert!(marks(&mut conn).await.is_empty());
    sql_exec(&mut conn, &insert(1)).await;
    assert!(wake_ups(&mut listener, &mut conn).await.is_empty());

    // A short claim that takes jobs: marked again (its worker has room left).
    assert_eq!(claim_q(&mut conn, 10, true).await, 2);
    assert_eq!(marks(&mut conn).await, ["q/w"]);
    sql_exec(&mut conn, &insert(1)).await;
    assert_eq!(wake_ups(&mut listener, &mut conn).await, ["q"]);

    // Not asked to wait (a claim in a backlog, or a worker of an earlier version): one that
    // takes jobs removes the mark, one that finds none marks nobody.
    assert_eq!(claim_q(&mut conn, 10, false).await, 1);
    assert!(marks(&mut conn).await.is_empty());
    assert_eq!(claim_q(&mut conn, 10, false).await, 0);
    assert!(marks(&mut conn).await.is_empty());
    let four_arguments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bosun.claim_jobs('q', 10, ARRAY['a'], 'w')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(four_arguments, 0);
    assert!(marks(&mut conn).await.is_empty());

    // A NULL `wait` is refused, naming it, and claims nothing.
    sql_exec(&mut conn, &insert(1)).await;
    let err = sqlx::query("SELECT * FROM bosun.claim_jobs('q', 10, ARRAY['a'], 'w', NULL)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("wait must not be null"),
        "unexpected error: {err}"
    );
    let available: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bosun.jobs WHERE queue = 'q' AND state = 'available'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(available, 1);
    assert!(marks(&mut conn).await.is_empty());
}

/// Why no wake-up is lost when a worker marks itself in its claim, in both orders of a claim
/// and an insert that commit at the same time: an insert committing while the claim is under
/// way waits for the claim and sees its mark (it notifies); a claim made while an insert
/// checks for marks waits for that insert and claims its job.
#[tokio::test]
async fn a_claim_that_may_wait_and_a_concurrent_insert_never_miss_each_other() {
    let db = TestDb::new().await;
    let mut claimer = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();

    // The claim first: the insert's commit waits for the claim's, then notifies.
    sql_exec(&mut claimer, "BEGIN").await;
    assert_eq!(claim_q(&mut claimer, 10, true).await, 0);
    let pool = db.pool.clone();
    let insert = tokio::spawn(async move {
        sql_exec(
            &mut pool.acquire().await.unwrap(),
            "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q')",
        )
        .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!insert.is_finished(), "the insert waits for the claim");
    sql_exec(&mut claimer, "COMMIT").await;
    insert.await.unwrap();
    assert_eq!(wake_ups(&mut listener, &mut claimer).await, ["q"]);

    // The insert's check first (fired early, so it holds the lock until it commits): the
    // claim waits for it and takes its job.
    let mut inserter = db.raw().await;
    sqlx::raw_sql(
        "BEGIN;
         SET CONSTRAINTS ALL IMMEDIATE;
         INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q');",
    )
    .execute(&mut inserter)
    .await
    .unwrap();
    let pool = db.pool.clone();
    let claim =
        tokio::spawn(async move { claim_q(&mut pool.acquire().await.unwrap(), 10, true).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!claim.is_finished(), "the claim waits for the insert");
    sql_exec(&mut inserter, "COMMIT").await;
    assert_eq!(claim.await.unwrap(), 2, "both inserted jobs");
}

/// A transaction that checked its inserts early (SET CONSTRAINTS ALL IMMEDIATE) holds the
/// queue's waiting lock to its end. A claim that may wait waits for it at most 200 ms, then
/// claims what is due without marking its worker (which then polls), and leaves the caller's
/// lock_timeout as it was.
#[tokio::test]
async fn a_claim_that_may_wait_gives_up_marking_behind_a_long_transaction() {
    let db = TestDb::new().await;
    let mut holder = db.raw().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q')",
    )
    .await;
    sqlx::raw_sql(
        "BEGIN;
         SET CONSTRAINTS ALL IMMEDIATE;
         INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q');",
    )
    .execute(&mut holder)
    .await
    .unwrap();

    sql_exec(&mut conn, "BEGIN").await;
    sql_exec(&mut conn, "SET LOCAL lock_timeout = '5s'").await;
    let started = std::time::Instant::now();
    assert_eq!(claim_q(&mut conn, 10, true).await, 1, "the committed job");
    let waited = started.elapsed();
    let lock_timeout: String = sqlx::query_scalar("SHOW lock_timeout")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sql_exec(&mut conn, "COMMIT").await;
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );
    assert_eq!(lock_timeout, "5s");
    assert!(marks(&mut conn).await.is_empty());

    // Once that transaction is over, the claim marks again.
    sql_exec(&mut holder, "COMMIT").await;
    assert_eq!(claim_q(&mut conn, 10, true).await, 1, "the job it inserted");
    assert_eq!(marks(&mut conn).await, ["q/w"]);
}
