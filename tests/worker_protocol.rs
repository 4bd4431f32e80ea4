//! The worker protocol in SQL (version 1): what a worker in any language calls, from any
//! client, holds the runtime's guarantees. Registration and claims; every end of an attempt
//! fenced by (id, attempt); the default backoff; snoozes that use no attempt; cancels a
//! worker learns of; hand-backs at shutdown; a dead worker's jobs rescued and its late
//! writes changing nothing; and clear errors for values out of range.

use std::time::Duration;

use bosun_queue::JobState;
use bosun_tests::raw_sql::{job_row, sql_exec, sql_id};
use bosun_tests::TestDb;
use bosun_workers::maintenance::rescuer::{Rescuer, RescuerConfig};
use sqlx::PgConnection;

async fn register(conn: &mut PgConnection, worker: &str, lease_seconds: f64) -> bool {
    sqlx::query_scalar(
        "SELECT bosun.worker_heartbeat($1, ARRAY['default', 'mail'], ARRAY['echo'], $2)",
    )
    .bind(worker)
    .bind(lease_seconds)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// (id, attempt) of the jobs `worker` claims, up to `max`.
async fn claim(conn: &mut PgConnection, worker: &str, max: i32) -> Vec<(i64, i32)> {
    sqlx::query_as(
        "SELECT id, attempt FROM bosun.claim($1, ARRAY['default', 'mail'], $2) ORDER BY id",
    )
    .bind(worker)
    .bind(max)
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn enqueue(conn: &mut PgConnection, queue: &str) -> i64 {
    sql_id(
        conn,
        &format!("SELECT bosun.enqueue('echo', '{{}}', '{queue}')"),
    )
    .await
}

/// The SQLSTATE `sql` fails with.
async fn sqlstate(conn: &mut PgConnection, sql: &str) -> String {
    let error = sqlx::query(sql).execute(conn).await.unwrap_err();
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_schema_says_which_protocol_version_it_speaks() {
    let db = TestDb::new().await;
    let version: i32 = sqlx::query_scalar("SELECT bosun.protocol_version()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(version, 1);
}

#[tokio::test]
async fn a_registered_worker_claims_from_its_queues_and_completes_fenced_by_attempt() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    assert!(
        register(&mut conn, "py-1", 15.0).await,
        "first beat registers"
    );
    assert!(!register(&mut conn, "py-1", 15.0).await, "the next renews");
    let a = enqueue(&mut conn, "default").await;
    let b = enqueue(&mut conn, "mail").await;
    let claimed = claim(&mut conn, "py-1", 10).await;
    assert_eq!(claimed, [(a, 1), (b, 1)], "both queues, attempt counted");
    let running = job_row(&mut conn, a).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.attempted_by.as_deref(), Some("py-1"));

    let stale: bool = sqlx::query_scalar("SELECT bosun.complete_job($1, 2)")
        .bind(a)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!stale, "another attempt's write is fenced out");
    assert_eq!(job_row(&mut conn, a).await.state, JobState::Running);
    let done: bool = sqlx::query_scalar("SELECT bosun.complete_job($1, 1)")
        .bind(a)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(done);
    let completed = job_row(&mut conn, a).await;
    assert_eq!(completed.state, JobState::Completed);
    assert!(completed.finalized_at.is_some());
    let again: bool = sqlx::query_scalar("SELECT bosun.complete_job($1, 1)")
        .bind(a)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!again, "a finished job is no one's to complete");
}

#[tokio::test]
async fn a_claim_needs_a_live_registration_and_takes_at_most_max_jobs() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    enqueue(&mut conn, "default").await;
    enqueue(&mut conn, "default").await;
    enqueue(&mut conn, "mail").await;
    let state = sqlstate(
        &mut conn,
        "SELECT * FROM bosun.claim('nobody', ARRAY['default'], 1)",
    )
    .await;
    assert_eq!(state, "55000", "an unregistered worker cannot claim");
    register(&mut conn, "py-1", 15.0).await;
    assert_eq!(claim(&mut conn, "py-1", 2).await.len(), 2);
    assert_eq!(claim(&mut conn, "py-1", 0).await.len(), 0);
    assert_eq!(claim(&mut conn, "py-1", 5).await.len(), 1, "what is left");
    let kinds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bosun.claim('py-1', ARRAY['default'], 5, ARRAY['other'])",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(kinds, 0);
    for sql in [
        "SELECT * FROM bosun.claim('py-1', ARRAY['default'], -1)",
        "SELECT * FROM bosun.claim('py-1', ARRAY['default'], 10001)",
        "SELECT bosun.worker_heartbeat('py-1', '{}', '{}', 0)",
        "SELECT bosun.worker_heartbeat('py-1', '{}', '{}', 'Infinity')",
        "SELECT bosun.worker_heartbeat('py-1', '{}', '{}', 'NaN')",
        "SELECT bosun.worker_heartbeat('py-1', ARRAY['bad queue!'], '{}')",
        "SELECT bosun.worker_heartbeat('py-1', '{}', ARRAY[repeat('k', 300)])",
    ] {
        assert_eq!(sqlstate(&mut conn, sql).await, "22023", "{sql}");
    }
}

#[tokio::test]
async fn a_failure_retries_with_the_default_backoff_or_fails_for_good() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    register(&mut conn, "py-1", 15.0).await;
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('echo', max_attempts => 2)").await;
    claim(&mut conn, "py-1", 1).await;
    let (state, due_in): (JobState, Option<f64>) =
        sqlx::query_as("SELECT * FROM bosun.fail_job($1, 1, 'timeout talking to the API')")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(state, JobState::Retryable);
    let due_in = due_in.unwrap();
    assert!(
        (0.85..=1.15).contains(&due_in),
        "attempt 1: 1 s +/-10%, got {due_in}"
    );
    let row = job_row(&mut conn, id).await;
    let errors = row.attempt_errors();
    assert_eq!(errors[0].error, "timeout talking to the API");
    assert_eq!(errors[0].kind.as_deref(), Some("error"));
    assert_eq!(errors[0].worker.as_deref(), Some("py-1"));

    sql_exec(
        &mut conn,
        &format!("UPDATE bosun.jobs SET scheduled_at = now() WHERE id = {id}"),
    )
    .await;
    assert_eq!(claim(&mut conn, "py-1", 1).await, [(id, 2)]);
    let rows: Vec<(JobState, Option<f64>)> =
        sqlx::query_as("SELECT * FROM bosun.fail_job($1, 1, 'late')")
            .bind(id)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(rows.is_empty(), "attempt 1 is over: fenced out");
    let (state, due_in): (JobState, Option<f64>) = sqlx::query_as(
        "SELECT * FROM bosun.fail_job($1, 2, 'again', retry_in => interval '1 hour')",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((state, due_in), (JobState::Failed, None), "out of attempts");

    let permanent = enqueue(&mut conn, "default").await;
    claim(&mut conn, "py-1", 1).await;
    let (state,): (JobState,) =
        sqlx::query_as("SELECT state FROM bosun.fail_job($1, 1, 'card declined', true)")
            .bind(permanent)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(state, JobState::Failed);
    let row = job_row(&mut conn, permanent).await;
    assert_eq!(row.attempt_errors()[0].kind.as_deref(), Some("permanent"));
    assert_eq!(row.max_attempts, 20, "its other attempts are not used");

    for sql in [
        "SELECT * FROM bosun.fail_job(1, 1, 'x', retry_in => interval '-1 second')",
        "SELECT * FROM bosun.fail_job(1, 1, 'x', retry_in => interval '36526 days')",
        "SELECT * FROM bosun.fail_job(1, 1, 'x', error_kind => '')",
        "SELECT * FROM bosun.snooze_job(1, 1, interval '-1 second')",
        "SELECT bosun.job_progress(1, 1, to_jsonb(repeat('x', 9000)))",
    ] {
        assert_eq!(sqlstate(&mut conn, sql).await, "22023", "{sql}");
    }
}

#[tokio::test]
async fn a_snooze_reschedules_without_using_an_attempt_and_progress_is_noted() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    register(&mut conn, "py-1", 15.0).await;
    let id = enqueue(&mut conn, "default").await;
    claim(&mut conn, "py-1", 1).await;
    let noted: bool = sqlx::query_scalar("SELECT bosun.job_progress($1, 1, '{\"done\": 3}')")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(noted);
    let stale: bool = sqlx::query_scalar("SELECT bosun.job_progress($1, 7, '1')")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(
        job_row(&mut conn, id).await.meta["progress"],
        serde_json::json!({"done": 3})
    );
    let (state, due_in): (JobState, Option<f64>) =
        sqlx::query_as("SELECT * FROM bosun.snooze_job($1, 1, interval '1 minute')")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(state, JobState::Scheduled);
    assert!((59.0..=60.5).contains(&due_in.unwrap()));
    let row = job_row(&mut conn, id).await;
    assert_eq!(
        (row.attempt, row.max_attempts),
        (1, 21),
        "the attempt is given back"
    );
}

#[tokio::test]
async fn a_worker_learns_of_cancels_and_gives_back_what_it_holds_at_shutdown() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    register(&mut conn, "py-1", 15.0).await;
    let cancelled = enqueue(&mut conn, "default").await;
    let kept = enqueue(&mut conn, "default").await;
    claim(&mut conn, "py-1", 2).await;
    sql_exec(&mut conn, &format!("SELECT bosun.cancel_job({cancelled})")).await;
    let lost: Vec<i64> = sqlx::query_scalar("SELECT * FROM bosun.lost_jobs($1, ARRAY[1, 1])")
        .bind(vec![cancelled, kept])
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(lost, [cancelled]);
    let given: Vec<i64> = sqlx::query_scalar("SELECT * FROM bosun.give_back_jobs($1, ARRAY[1, 1])")
        .bind(vec![cancelled, kept])
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        given,
        [kept],
        "the cancelled job is not the worker's to give back"
    );
    let row = job_row(&mut conn, kept).await;
    assert_eq!(row.state, JobState::Available);
    assert_eq!(
        (row.attempt, row.max_attempts),
        (1, 21),
        "the attempt is not counted"
    );
    assert_eq!(
        job_row(&mut conn, cancelled).await.state,
        JobState::Cancelled
    );
    assert_eq!(
        sqlstate(
            &mut conn,
            "SELECT * FROM bosun.lost_jobs(ARRAY[1, 2], ARRAY[1])"
        )
        .await,
        "22023"
    );
    for sql in [
        "SELECT * FROM bosun.lost_jobs(ARRAY[1, NULL], ARRAY[1, 1])",
        "SELECT * FROM bosun.give_back_jobs(ARRAY[1], ARRAY[NULL]::integer[])",
        "SELECT * FROM bosun.claim('py-1', ARRAY['default', NULL], 1)",
    ] {
        assert_eq!(sqlstate(&mut conn, sql).await, "22004", "{sql}");
    }
    sql_exec(&mut conn, "SELECT bosun.worker_deregister('py-1')").await;
    let workers: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.workers")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(workers, 0);
}

#[tokio::test]
async fn a_dead_workers_jobs_are_rescued_and_its_late_writes_change_nothing() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    register(&mut conn, "py-dead", 1.0).await;
    let id = enqueue(&mut conn, "default").await;
    assert_eq!(claim(&mut conn, "py-dead", 1).await, [(id, 1)]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rescuer = Rescuer::new(
        db.client.clone(),
        RescuerConfig {
            min_age: Duration::ZERO,
            ..RescuerConfig::default()
        },
    );
    let rescued = rescuer.run_once().await.unwrap();
    assert_eq!(rescued.retried, 1);
    let row = job_row(&mut conn, id).await;
    assert_eq!(row.state, JobState::Retryable);
    assert_eq!(row.attempt_errors()[0].kind.as_deref(), Some("rescued"));
    // The paused worker wakes up and reports: nothing changes.
    let done: bool = sqlx::query_scalar("SELECT bosun.complete_job($1, 1)")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!done);
    assert_eq!(job_row(&mut conn, id).await.state, JobState::Retryable);
    // Another worker takes it over as attempt 2 and completes it.
    register(&mut conn, "py-2", 15.0).await;
    sql_exec(
        &mut conn,
        &format!("UPDATE bosun.jobs SET scheduled_at = now() WHERE id = {id}"),
    )
    .await;
    assert_eq!(claim(&mut conn, "py-2", 1).await, [(id, 2)]);
    let done: bool = sqlx::query_scalar("SELECT bosun.complete_job($1, 2)")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(done);
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test]
async fn a_claim_that_waits_is_woken_by_the_next_insert_into_its_queue() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    register(&mut conn, "py-1", 15.0).await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bosun.claim('py-1', ARRAY['mail'], 10, wait => true)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(claimed, 0);
    enqueue(&mut conn, "mail").await;
    let notice = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("the insert notifies the waiting worker")
        .unwrap();
    assert!(notice.payload().contains("mail"), "{}", notice.payload());
    assert_eq!(claim(&mut conn, "py-1", 10).await.len(), 1);
}
