//! The SQL API as any SQL client sees it (raw connections, SQL text), bad input for every
//! function, the insert wake-up, and the Rust client over the same functions.

use std::time::Duration;

use bosun_queue::{Error, JobArgs, JobFilter, JobOptions, JobState, NewJob};
use bosun_tests::TestDb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{postgres::PgListener, PgConnection, Row};

async fn count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Run `sql`, expect it to fail with `code`, its message containing every one of `needles`,
/// and the jobs table unchanged.
async fn rejects(conn: &mut PgConnection, sql: &str, code: &str, needles: &[&str]) {
    let before = count(conn).await;
    let err = sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .expect_err(&format!("{sql} should fail"));
    let db = err.as_database_error().expect("a database error");
    assert_eq!(db.code().as_deref(), Some(code), "{sql}: {}", db.message());
    for needle in needles {
        assert!(
            db.message().contains(needle),
            "{sql}: message {:?} should mention {needle:?}",
            db.message()
        );
    }
    assert_eq!(count(conn).await, before, "{sql} must not write anything");
}

async fn scalar_i64(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

async fn state_of(conn: &mut PgConnection, id: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn set_running(conn: &mut PgConnection, id: i64) {
    sqlx::query(
        "UPDATE bosun.jobs SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await
    .unwrap();
}

async fn set_finished(conn: &mut PgConnection, id: i64, state: &str) {
    sqlx::query(
        "UPDATE bosun.jobs SET state = $2::bosun.job_state, attempt = max_attempts, finalized_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .execute(conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn enqueue_from_sql_with_named_arguments_and_defaults() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let id = scalar_i64(
        &mut sql,
        r#"SELECT bosun.enqueue('email.send', '{"to":"a@b.c"}', queue => 'mail', priority => 5, tags => '{t1,t2}', meta => '{"by":"ops"}')"#,
    )
    .await;
    let row = sqlx::query(
        "SELECT kind, args, queue, priority, state::text, max_attempts, attempt, tags, meta, scheduled_at <= now() AS due FROM bosun.jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("kind"), "email.send");
    assert_eq!(
        row.get::<serde_json::Value, _>("args"),
        json!({"to": "a@b.c"})
    );
    assert_eq!(row.get::<String, _>("queue"), "mail");
    assert_eq!(row.get::<i16, _>("priority"), 5);
    assert_eq!(row.get::<String, _>("state"), "available");
    assert_eq!(row.get::<i32, _>("max_attempts"), 20);
    assert_eq!(row.get::<i32, _>("attempt"), 0);
    assert_eq!(row.get::<Vec<String>, _>("tags"), ["t1", "t2"]);
    assert_eq!(
        row.get::<serde_json::Value, _>("meta"),
        json!({"by": "ops"})
    );
    assert!(row.get::<bool, _>("due"));

    let minimal = scalar_i64(&mut sql, "SELECT bosun.enqueue('echo')").await;
    let job = db.client.job_get(minimal).await.unwrap();
    assert_eq!(
        (job.queue.as_str(), job.args.clone()),
        ("default", json!({}))
    );

    let later = scalar_i64(
        &mut sql,
        "SELECT bosun.enqueue('echo', scheduled_at => now() + interval '1 hour')",
    )
    .await;
    assert_eq!(state_of(&mut sql, later).await, "scheduled");
}

#[tokio::test]
async fn unique_keys_make_enqueue_idempotent() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let first = scalar_i64(
        &mut sql,
        "SELECT bosun.enqueue('report', unique_key => 'day-1')",
    )
    .await;
    let second = scalar_i64(
        &mut sql,
        r#"SELECT bosun.enqueue('report', '{"other":true}', unique_key => 'day-1')"#,
    )
    .await;
    assert_eq!(first, second);
    assert_eq!(count(&mut sql).await, 1);

    // Repeated inside one batch and against an existing row.
    let ids: Vec<i64> = sqlx::query_scalar(
        r#"SELECT * FROM bosun.enqueue_many('[{"kind":"a","unique_key":"x"},{"kind":"b"},{"kind":"a","unique_key":"x"},{"kind":"a","unique_key":"day-1"}]')"#,
    )
    .fetch_all(&mut sql)
    .await
    .unwrap();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], ids[2], "a key repeated in a batch maps to one job");
    assert_eq!(ids[3], first, "an existing key returns the existing job");
    assert_eq!(count(&mut sql).await, 3);
}

#[tokio::test]
async fn enqueue_many_returns_ids_in_input_order() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        r#"SELECT * FROM bosun.enqueue_many('[
            {"kind":"first","queue":"q1","priority":3,"max_attempts":2},
            {"kind":"second","args":{"n":2},"tags":["x"],"meta":{"m":1}},
            {"kind":"third","scheduled_at":"2100-01-01T00:00:00Z","target":"host-1"}
        ]')"#,
    )
    .fetch_all(&mut sql)
    .await
    .unwrap();
    let kinds: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT kind, queue, state::text FROM bosun.jobs WHERE id = ANY($1) ORDER BY array_position($1, id)",
    )
    .bind(&ids)
    .fetch_all(&mut sql)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        [
            ("first".into(), "q1".into(), "available".into()),
            ("second".into(), "default".into(), "available".into()),
            ("third".into(), "default".into(), "scheduled".into()),
        ]
    );
    let third = db.client.job_get(ids[2]).await.unwrap();
    assert_eq!(third.target.as_deref(), Some("host-1"));
    let first = db.client.job_get(ids[0]).await.unwrap();
    assert_eq!((first.priority, first.max_attempts), (3, 2));
    let empty: Vec<i64> = sqlx::query_scalar("SELECT * FROM bosun.enqueue_many('[]')")
        .fetch_all(&mut sql)
        .await
        .unwrap();
    assert!(empty.is_empty());
}

#[tokio::test]
async fn bad_enqueue_arguments_are_rejected_and_change_nothing() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT bosun.enqueue('bad kind')",
            "22023",
            &["bosun.enqueue", "kind", "'bad kind'"],
        ),
        ("SELECT bosun.enqueue('')", "22023", &["kind"]),
        (
            "SELECT bosun.enqueue(NULL)",
            "22023",
            &["kind must not be null"],
        ),
        (
            "SELECT bosun.enqueue('k', '[1]')",
            "22023",
            &["args must be a JSON object", "array"],
        ),
        (
            "SELECT bosun.enqueue('k', queue => 'no spaces')",
            "22023",
            &["queue", "'no spaces'"],
        ),
        (
            "SELECT bosun.enqueue('k', priority => 40000)",
            "22023",
            &["priority", "40000"],
        ),
        (
            "SELECT bosun.enqueue('k', max_attempts => 0)",
            "22023",
            &["max_attempts must be at least 1"],
        ),
        (
            "SELECT bosun.enqueue('k', args => NULL)",
            "22004",
            &["args must not be null"],
        ),
        (
            "SELECT bosun.enqueue('k', queue => NULL)",
            "22004",
            &["queue must not be null"],
        ),
        (
            "SELECT bosun.enqueue('k', scheduled_at => NULL)",
            "22004",
            &["scheduled_at"],
        ),
        (
            "SELECT bosun.enqueue('k', tags => '{\"\"}')",
            "22023",
            &["tags"],
        ),
        (
            "SELECT bosun.enqueue('k', meta => '3')",
            "22023",
            &["meta must be a JSON object"],
        ),
        (
            "SELECT bosun.enqueue('k', unique_key => '')",
            "22023",
            &["unique_key"],
        ),
        (
            "SELECT bosun.enqueue_many(NULL)",
            "22004",
            &["jobs must not be null"],
        ),
        (
            "SELECT bosun.enqueue_many('{}')",
            "22023",
            &["JSON array", "object"],
        ),
        (
            "SELECT bosun.enqueue_many('[1]')",
            "22023",
            &["jobs[1] must be an object"],
        ),
        (
            r#"SELECT bosun.enqueue_many('[{"kind":"a"},{"kind":"b","prio":1}]')"#,
            "22023",
            &["jobs[2]", "unknown field 'prio'"],
        ),
        (
            r#"SELECT bosun.enqueue_many('[{"kind":1}]')"#,
            "22023",
            &["jobs[1]", "kind", "expected string"],
        ),
        (
            r#"SELECT bosun.enqueue_many('[{"kind":"a","priority":1.5}]')"#,
            "22023",
            &["priority 1.5", "whole number"],
        ),
        (
            r#"SELECT bosun.enqueue_many('[{"kind":"a","scheduled_at":"nope"}]')"#,
            "22023",
            &["jobs[1].scheduled_at", "'nope'"],
        ),
        (
            r#"SELECT bosun.enqueue_many('[{"kind":"a"},{"kind":"b"},{"kind":"bad kind"}]')"#,
            "22023",
            &["jobs[3].kind"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, args) VALUES ('x', '[]')",
            "23514",
            &["args_must_be_a_json_object"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, max_attempts) VALUES ('x', 0)",
            "23514",
            &["max_attempts_must_be_at_least_1"],
        ),
        (
            "INSERT INTO bosun.jobs (kind) VALUES ('has space')",
            "23514",
            &["kind_has_bad_format"],
        ),
    ];
    for (query, code, needles) in cases {
        rejects(&mut sql, query, code, needles).await;
    }
}

#[tokio::test]
async fn retry_job_runs_finished_jobs_again() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let failed = scalar_i64(&mut sql, "SELECT bosun.enqueue('k', max_attempts => 3)").await;
    set_finished(&mut sql, failed, "failed").await;
    let row = sqlx::query(
        "SELECT state::text, attempt, max_attempts, finalized_at IS NULL AS open, scheduled_at <= now() AS due FROM bosun.retry_job($1)",
    )
    .bind(failed)
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("state"), "available");
    assert_eq!(
        row.get::<i32, _>("max_attempts"),
        4,
        "one more attempt than used"
    );
    assert!(row.get::<bool, _>("open") && row.get::<bool, _>("due"));

    for state in ["cancelled", "completed"] {
        let id = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
        set_finished(&mut sql, id, state).await;
        sqlx::query("SELECT bosun.retry_job($1)")
            .bind(id)
            .execute(&mut sql)
            .await
            .unwrap();
        assert_eq!(state_of(&mut sql, id).await, "available", "from {state}");
    }

    let waiting = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
    let unchanged: String = sqlx::query_scalar("SELECT state::text FROM bosun.retry_job($1)")
        .bind(waiting)
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(unchanged, "available");

    let running = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
    set_running(&mut sql, running).await;
    rejects(
        &mut sql,
        &format!("SELECT bosun.retry_job({running})"),
        "55000",
        &["bosun.retry_job", "is running"],
    )
    .await;
    assert_eq!(state_of(&mut sql, running).await, "running");
    rejects(
        &mut sql,
        "SELECT bosun.retry_job(999999)",
        "P0002",
        &["no job with id 999999"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.retry_job(NULL)",
        "22004",
        &["id must not be null"],
    )
    .await;
}

#[tokio::test]
async fn retry_jobs_moves_matching_jobs_only() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let mut ids = Vec::new();
    for (kind, queue) in [("a", "q1"), ("a", "q2"), ("b", "q1"), ("a", "q1")] {
        let id: i64 = sqlx::query_scalar("SELECT bosun.enqueue($1, queue => $2)")
            .bind(kind)
            .bind(queue)
            .fetch_one(&mut sql)
            .await
            .unwrap();
        set_finished(&mut sql, id, "failed").await;
        ids.push(id);
    }
    let cancelled = scalar_i64(&mut sql, "SELECT bosun.enqueue('a', queue => 'q1')").await;
    set_finished(&mut sql, cancelled, "cancelled").await;

    let mut moved: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM bosun.retry_jobs(queue => 'q1', kind => 'a')")
            .fetch_all(&mut sql)
            .await
            .unwrap();
    moved.sort_unstable();
    assert_eq!(moved, [ids[0], ids[3]]);
    assert_eq!(state_of(&mut sql, ids[1]).await, "failed");
    assert_eq!(state_of(&mut sql, ids[2]).await, "failed");
    assert_eq!(state_of(&mut sql, cancelled).await, "cancelled");

    let all_cancelled: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM bosun.retry_jobs(state => 'cancelled')")
            .fetch_all(&mut sql)
            .await
            .unwrap();
    assert_eq!(all_cancelled, [cancelled]);

    rejects(
        &mut sql,
        "SELECT bosun.retry_jobs(state => 'running')",
        "22023",
        &["state", "running"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.retry_jobs(state => NULL)",
        "22004",
        &["state must not be null"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.retry_jobs(queue => 'bad queue')",
        "22023",
        &["queue 'bad queue'"],
    )
    .await;
}

#[tokio::test]
async fn cancel_job_stops_waiting_and_running_jobs_and_tells_the_worker() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let waiting = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
    let row = sqlx::query(
        "SELECT state::text, finalized_at IS NOT NULL AS done FROM bosun.cancel_job($1)",
    )
    .bind(waiting)
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("state"), "cancelled");
    assert!(row.get::<bool, _>("done"));

    let running = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
    set_running(&mut sql, running).await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_control").await.unwrap();
    sqlx::query("SELECT bosun.cancel_job($1)")
        .bind(running)
        .execute(&mut sql)
        .await
        .unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a control notification")
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(notice.payload()).unwrap();
    assert_eq!(
        payload,
        json!({"action": "cancel", "id": running, "attempt": 1})
    );
    assert_eq!(state_of(&mut sql, running).await, "cancelled");

    set_finished(&mut sql, waiting, "completed").await;
    rejects(
        &mut sql,
        &format!("SELECT bosun.cancel_job({waiting})"),
        "55000",
        &["bosun.cancel_job", "already completed"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.cancel_job(424242)",
        "P0002",
        &["no job with id 424242"],
    )
    .await;
}

#[tokio::test]
async fn reschedule_job_moves_waiting_jobs() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let id = scalar_i64(&mut sql, "SELECT bosun.enqueue('k')").await;
    let state: String = sqlx::query_scalar(
        "SELECT state::text FROM bosun.reschedule_job($1, now() + interval '1 day')",
    )
    .bind(id)
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!(state, "scheduled");
    let state: String = sqlx::query_scalar(
        "SELECT state::text FROM bosun.reschedule_job($1, now() - interval '1 minute')",
    )
    .bind(id)
    .fetch_one(&mut sql)
    .await
    .unwrap();
    assert_eq!(state, "available");
    rejects(
        &mut sql,
        &format!("SELECT bosun.reschedule_job({id}, NULL)"),
        "22004",
        &["at must not be null"],
    )
    .await;
    set_finished(&mut sql, id, "completed").await;
    rejects(
        &mut sql,
        &format!("SELECT bosun.reschedule_job({id}, now())"),
        "55000",
        &["is completed", "retry_job"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.reschedule_job(77777, now())",
        "P0002",
        &["no job with id 77777"],
    )
    .await;
}

#[tokio::test]
async fn pause_and_resume_are_persisted_and_idempotent() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let paused: bool = sqlx::query_scalar("SELECT paused FROM bosun.pause_queue('mail')")
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert!(paused);
    let again: bool = sqlx::query_scalar("SELECT paused FROM bosun.pause_queue('mail')")
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert!(again);
    let stats: bool =
        sqlx::query_scalar("SELECT paused FROM bosun.queue_stats WHERE queue = 'mail'")
            .fetch_one(&mut sql)
            .await
            .unwrap();
    assert!(stats, "a paused queue with no jobs shows in queue_stats");
    let resumed: bool = sqlx::query_scalar("SELECT paused FROM bosun.resume_queue('mail')")
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert!(!resumed);
    rejects(
        &mut sql,
        "SELECT bosun.pause_queue('bad queue')",
        "22023",
        &["bosun.pause_queue", "'bad queue'"],
    )
    .await;
    rejects(
        &mut sql,
        "SELECT bosun.resume_queue(NULL)",
        "22004",
        &["name must not be null"],
    )
    .await;
}

#[tokio::test]
async fn queue_stats_counts_by_state() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    for _ in 0..3 {
        scalar_i64(&mut sql, "SELECT bosun.enqueue('k', queue => 'a')").await;
    }
    let failed = scalar_i64(&mut sql, "SELECT bosun.enqueue('k', queue => 'a')").await;
    set_finished(&mut sql, failed, "failed").await;
    scalar_i64(
        &mut sql,
        "SELECT bosun.enqueue('k', queue => 'b', scheduled_at => now() + interval '1 hour')",
    )
    .await;
    let stats = db.client.queue_stats().await.unwrap();
    assert_eq!(stats.len(), 2);
    let a = &stats[0];
    assert_eq!(
        (a.queue.as_str(), a.available, a.failed, a.scheduled),
        ("a", 3, 1, 0)
    );
    assert!(a.oldest_available_secs.is_some());
    let b = &stats[1];
    assert_eq!((b.queue.as_str(), b.available, b.scheduled), ("b", 0, 1));
    assert_eq!(b.oldest_available_secs, None, "nothing due in b");
}

/// All notifications that arrive within a short window.
async fn drain(listener: &mut PgListener) -> Vec<String> {
    let mut payloads = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await {
        payloads.push(n.payload().to_string());
    }
    payloads
}

#[tokio::test]
async fn inserts_send_one_notification_per_statement() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();

    sqlx::query(
        "INSERT INTO bosun.jobs (kind, queue) VALUES ('a', 'q1'), ('b', 'q2'), ('c', 'q1')",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    let payloads = drain(&mut listener).await;
    assert_eq!(
        payloads.len(),
        1,
        "one notification for one statement: {payloads:?}"
    );
    let mut queues: Vec<&str> = payloads[0].split(',').collect();
    queues.sort_unstable();
    assert_eq!(queues, ["q1", "q2"]);

    sqlx::query(
        "INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('later', now() + interval '1 hour')",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    assert!(
        drain(&mut listener).await.is_empty(),
        "nothing is claimable yet"
    );
    let state: String =
        sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE kind = 'later'")
            .fetch_one(&mut sql)
            .await
            .unwrap();
    assert_eq!(
        state, "scheduled",
        "a plain insert in the future is shown as scheduled"
    );

    scalar_i64(&mut sql, "SELECT bosun.enqueue('k', queue => 'mail')").await;
    assert_eq!(drain(&mut listener).await, ["mail"]);
}

// ---- the Rust client over the same functions ----

#[derive(Serialize, Deserialize)]
struct Invoice {
    number: u32,
}

impl JobArgs for Invoice {
    const KIND: &'static str = "billing.invoice";
    fn options() -> JobOptions {
        JobOptions {
            queue: Some("billing".into()),
            max_attempts: Some(7),
            ..JobOptions::default()
        }
    }
}

#[tokio::test]
async fn enqueue_tx_follows_the_callers_transaction() {
    let db = TestDb::new().await;
    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_tx(&mut tx, Invoice { number: 1 })
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(count(&mut db.raw().await).await, 0, "rolled back: no job");

    let mut tx = db.pool.begin().await.unwrap();
    let enqueued = db
        .client
        .enqueue_tx(&mut tx, Invoice { number: 2 })
        .await
        .unwrap();
    db.client
        .enqueue_many_tx(&mut tx, [Invoice { number: 3 }, Invoice { number: 4 }])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = db.client.job_get(enqueued.id).await.unwrap();
    assert_eq!(
        (job.queue.as_str(), job.max_attempts),
        ("billing", 7),
        "kind defaults apply"
    );
    assert_eq!(job.args, json!({"number": 2}));
    assert_eq!(count(&mut db.raw().await).await, 3);
}

#[tokio::test]
async fn the_client_reports_unique_keys_and_keeps_order() {
    let db = TestDb::new().await;
    let first = db
        .client
        .enqueue(NewJob::new("k", json!({})).unique_key("once"))
        .await
        .unwrap();
    let again = db
        .client
        .enqueue(NewJob::new("k", json!({"x": 1})).unique_key("once"))
        .await
        .unwrap();
    assert!(first.inserted);
    assert!(!again.inserted);
    assert_eq!(first.id, again.id);

    let many = db
        .client
        .enqueue_many((0..1000).map(|n| NewJob::new("bulk", json!({ "n": n }))))
        .await
        .unwrap();
    assert_eq!(many.len(), 1000);
    assert!(many.windows(2).all(|w| w[0].id < w[1].id), "input order");
    assert!(many.iter().all(|e| e.inserted));
    let last = db.client.job_get(many[999].id).await.unwrap();
    assert_eq!(last.args, json!({"n": 999}));
}

#[tokio::test]
async fn the_client_returns_typed_errors_and_writes_nothing() {
    let db = TestDb::new().await;
    let err = db
        .client
        .enqueue(NewJob::new("bad kind", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("kind")),
        "{err}"
    );
    let err = db
        .client
        .enqueue(NewJob::new("k", json!({})).max_attempts(0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("max_attempts")),
        "{err}"
    );
    let err = db
        .client
        .enqueue_many([NewJob::new("ok", json!({})), NewJob::new("k", json!([1]))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("jobs[2].args")),
        "{err}"
    );
    assert_eq!(count(&mut db.raw().await).await, 0);

    let id = db
        .client
        .enqueue(NewJob::new("k", json!({})))
        .await
        .unwrap()
        .id;
    set_running(&mut db.raw().await, id).await;
    assert!(matches!(
        db.client.retry_job(id).await,
        Err(Error::WrongState(_))
    ));
    assert!(matches!(
        db.client.cancel_job(999_999).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.job_get(999_999).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.pause_queue("bad queue").await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.client
            .job_list(&JobFilter {
                limit: Some(0),
                ..JobFilter::default()
            })
            .await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn job_list_filters_and_pages_newest_first() {
    let db = TestDb::new().await;
    let mut ids = Vec::new();
    for (kind, queue) in [("a", "q1"), ("b", "q1"), ("a", "q2"), ("a", "q1")] {
        ids.push(
            db.client
                .enqueue(NewJob::new(kind, json!({})).queue(queue))
                .await
                .unwrap()
                .id,
        );
    }
    let cancelled = db.client.cancel_job(ids[0]).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);

    let list = |filter: JobFilter| {
        let client = db.client.clone();
        async move {
            client
                .job_list(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(JobFilter::default()).await,
        [ids[3], ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        list(JobFilter {
            queue: Some("q1".into()),
            kind: Some("a".into()),
            ..JobFilter::default()
        })
        .await,
        [ids[3], ids[0]]
    );
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Cancelled),
            ..JobFilter::default()
        })
        .await,
        [ids[0]]
    );
    assert_eq!(
        list(JobFilter {
            before_id: Some(ids[2]),
            limit: Some(1),
            ..JobFilter::default()
        })
        .await,
        [ids[1]]
    );
}
