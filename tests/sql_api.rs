//! The SQL API from a raw connection, typed as a psql user would: every function and the rows
//! it leaves; each kind of bad input (SQLSTATE, a message naming the argument, nothing
//! written); the insert wake-up on `bosun_jobs`; and the Rust client on top of it all.

use std::{collections::HashMap, time::Duration};

use bosun_queue::{
    Enqueued, Error, Job, JobArgs, JobFilter, JobOptions, JobState, NewJob, QueueRow,
};
use bosun_tests::{assert_rejected, snapshot, state_counts, TestDb};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::{postgres::PgListener, PgConnection};

// ---- helpers ----

/// The job with `id`, read back from the table.
async fn job_row(conn: &mut PgConnection, id: i64) -> Job {
    sqlx::query_as("SELECT * FROM bosun.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("reading job {id}: {e}"))
}

/// Run SQL that returns one bigint (a job id).
async fn sql_id(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Run SQL that returns a set of ids (first column), in the order the rows come.
async fn sql_ids(conn: &mut PgConnection, sql: &str) -> Vec<i64> {
    sqlx::query_scalar(sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Run SQL that returns `bosun.jobs` rows.
async fn sql_jobs(conn: &mut PgConnection, sql: &str) -> Vec<Job> {
    sqlx::query_as(sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn sql_exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn job_count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// The database's wall clock (not the transaction's `now()`).
async fn db_clock(conn: &mut PgConnection) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Put a job into `state` by hand, as a worker would have: running and finished states get an
/// attempt, a worker name and (finished ones) `finalized_at`.
async fn force_state(conn: &mut PgConnection, id: i64, state: &str, attempt: i32) {
    let done = sqlx::query(
        "UPDATE bosun.jobs
         SET state = $2::text::bosun.job_state, attempt = $3, attempted_at = now(),
             attempted_by = 'test-worker',
             finalized_at = CASE WHEN $2::text IN ('completed', 'failed', 'cancelled')
                                 THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(attempt)
    .execute(conn)
    .await
    .unwrap_or_else(|e| panic!("forcing job {id} to {state}: {e}"));
    assert_eq!(done.rows_affected(), 1, "job {id} exists");
}

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

// ---- 1. every SQL function, from a raw connection ----

#[tokio::test]
async fn enqueue_with_named_arguments_and_defaults() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let before = db_clock(&mut conn).await;
    let id = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('email.send', '{"to":"a@b.c"}', queue => 'mail', priority => 5)"#,
    )
    .await;
    let after = db_clock(&mut conn).await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(job.kind, "email.send");
    assert_eq!(job.args, json!({"to": "a@b.c"}));
    assert_eq!(job.queue, "mail");
    assert_eq!(job.priority, 5);
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.max_attempts, 20);
    assert!(before <= job.scheduled_at && job.scheduled_at <= after);
    assert!(before <= job.created_at && job.created_at <= after);
    assert_eq!(job.unique_key, None);
    assert_eq!(job.target, None);
    assert!(job.tags.is_empty());
    assert_eq!(job.meta, json!({}));
    assert_eq!(job.errors, json!([]));
    assert_eq!(job.attempted_at, None);
    assert_eq!(job.finalized_at, None);

    // Only the kind: every default.
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('noop')").await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(
        (
            job.kind.as_str(),
            job.queue.as_str(),
            &job.args,
            job.priority,
            job.max_attempts,
            job.state
        ),
        ("noop", "default", &json!({}), 0, 20, JobState::Available)
    );

    // Every field, by name.
    let id = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('report.build', '{"n":1}', queue => 'reports', priority => -3,
                  max_attempts => 3, unique_key => 'report-1', target => 'account:9',
                  tags => ARRAY['nightly', 'finance'], meta => '{"source":"psql"}')"#,
    )
    .await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(job.queue, "reports");
    assert_eq!(job.priority, -3);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.unique_key.as_deref(), Some("report-1"));
    assert_eq!(job.target.as_deref(), Some("account:9"));
    assert_eq!(job.tags, vec!["nightly".to_string(), "finance".to_string()]);
    assert_eq!(job.meta, json!({"source": "psql"}));
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job_count(&mut conn).await, 3);
}

#[tokio::test]
async fn enqueue_with_a_future_time_is_scheduled() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let later = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('later', scheduled_at => '2999-01-01T00:00:00Z')",
    )
    .await;
    let job = job_row(&mut conn, later).await;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2999-01-01T00:00:00+00:00");

    let soon = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('soon', scheduled_at => now() + interval '1 hour')",
    )
    .await;
    assert_eq!(job_row(&mut conn, soon).await.state, JobState::Scheduled);

    // A time in the past is due: available, keeping the time given.
    let past = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('overdue', scheduled_at => '2000-01-01T00:00:00Z')",
    )
    .await;
    let job = job_row(&mut conn, past).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2000-01-01T00:00:00+00:00");
}

#[tokio::test]
async fn enqueue_with_a_taken_unique_key_returns_the_existing_job() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let first = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('invoice.send', '{"invoice":42}', unique_key => 'invoice-42')"#,
    )
    .await;
    let before = snapshot(&mut conn).await;
    let second = sql_id(
        &mut conn,
        r#"SELECT bosun.enqueue('invoice.send', '{"invoice":43}', queue => 'other',
                  unique_key => 'invoice-42')"#,
    )
    .await;
    assert_eq!(second, first, "the existing job's id comes back");
    assert_eq!(
        snapshot(&mut conn).await,
        before,
        "nothing inserted or changed"
    );
    let job = job_row(&mut conn, first).await;
    assert_eq!(job.args, json!({"invoice": 42}), "the existing job is kept");
    assert_eq!(job.queue, "default");

    // The key stays taken while the row exists, whatever its state.
    force_state(&mut conn, first, "completed", 1).await;
    let third = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('invoice.send', unique_key => 'invoice-42')",
    )
    .await;
    assert_eq!(third, first);
    assert_eq!(job_count(&mut conn).await, 1);

    // Another key is another job.
    let other = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('invoice.send', unique_key => 'invoice-43')",
    )
    .await;
    assert_ne!(other, first);
    assert_eq!(job_count(&mut conn).await, 2);
}

#[tokio::test]
async fn enqueue_many_returns_ids_in_input_order() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let ids = sql_ids(
        &mut conn,
        r#"SELECT id FROM bosun.enqueue_many('[
              {"kind": "b.second", "args": {"n": 1}},
              {"kind": "a.first", "queue": "q2", "priority": -2, "max_attempts": 3,
               "tags": ["x", "y"], "meta": {"m": 1}, "target": "t-1",
               "scheduled_at": "2999-01-01T00:00:00Z"},
              {"kind": "c.third", "unique_key": "u-1", "args": null, "priority": null},
              {"kind": "d.fourth", "priority": 2.0, "max_attempts": 4.0}
           ]') WITH ORDINALITY AS t(id, ord) ORDER BY ord"#,
    )
    .await;
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    let first = job_row(&mut conn, ids[0]).await;
    assert_eq!(first.kind, "b.second");
    assert_eq!(first.args, json!({"n": 1}));
    assert_eq!(first.queue, "default");
    assert_eq!(first.priority, 0);
    assert_eq!(first.max_attempts, 20);
    assert_eq!(first.state, JobState::Available);

    let second = job_row(&mut conn, ids[1]).await;
    assert_eq!(second.kind, "a.first");
    assert_eq!(second.args, json!({}));
    assert_eq!(second.queue, "q2");
    assert_eq!(second.priority, -2);
    assert_eq!(second.max_attempts, 3);
    assert_eq!(second.tags, vec!["x".to_string(), "y".to_string()]);
    assert_eq!(second.meta, json!({"m": 1}));
    assert_eq!(second.target.as_deref(), Some("t-1"));
    assert_eq!(second.state, JobState::Scheduled);
    assert_eq!(
        second.scheduled_at.to_rfc3339(),
        "2999-01-01T00:00:00+00:00"
    );

    let third = job_row(&mut conn, ids[2]).await;
    assert_eq!(third.kind, "c.third");
    assert_eq!(third.unique_key.as_deref(), Some("u-1"));
    assert_eq!(third.args, json!({}), "null means the default");
    assert_eq!(third.priority, 0);

    // JSON has one number type: 2.0 is the whole number 2.
    let fourth = job_row(&mut conn, ids[3]).await;
    assert_eq!(fourth.kind, "d.fourth");
    assert_eq!(fourth.priority, 2);
    assert_eq!(fourth.max_attempts, 4);

    assert_eq!(job_count(&mut conn).await, 4);

    // An empty array enqueues nothing.
    let none = sql_ids(&mut conn, "SELECT * FROM bosun.enqueue_many('[]')").await;
    assert!(none.is_empty());
    assert_eq!(job_count(&mut conn).await, 4);
}

#[tokio::test]
async fn enqueue_many_reuses_unique_keys_within_the_batch_and_against_existing_rows() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let existing = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('sync', '{\"v\":0}', unique_key => 'k-old')",
    )
    .await;
    let ids = sql_ids(
        &mut conn,
        r#"SELECT id FROM bosun.enqueue_many('[
              {"kind": "sync", "unique_key": "k-old", "args": {"v": 1}},
              {"kind": "sync", "unique_key": "k-new", "args": {"v": 2}},
              {"kind": "sync", "unique_key": "k-new", "args": {"v": 3}},
              {"kind": "plain", "args": {"v": 4}},
              {"kind": "sync", "unique_key": "k-old", "args": {"v": 5}}
           ]') WITH ORDINALITY AS t(id, ord) ORDER BY ord"#,
    )
    .await;
    assert_eq!(ids.len(), 5, "one id per input job");
    assert_eq!(ids[0], existing, "a key that existed returns that job");
    assert_eq!(ids[4], existing);
    assert_ne!(ids[1], existing);
    assert_eq!(
        ids[2], ids[1],
        "a key repeated in the batch returns the first"
    );
    assert!(ids[3] != ids[1] && ids[3] != existing);
    assert_eq!(job_count(&mut conn).await, 3, "two new rows, no duplicates");

    assert_eq!(job_row(&mut conn, existing).await.args, json!({"v": 0}));
    assert_eq!(job_row(&mut conn, ids[1]).await.args, json!({"v": 2}));
    assert_eq!(job_row(&mut conn, ids[3]).await.args, json!({"v": 4}));
}

#[tokio::test]
async fn enqueue_arrays_reports_what_it_inserted() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let existing = sql_id(&mut conn, "SELECT bosun.enqueue('x', unique_key => 'k')").await;
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        r#"SELECT id, inserted FROM bosun.enqueue_arrays(
               ARRAY['a', 'b', 'c', 'd'],
               queues => ARRAY['q1', NULL, 'q2', NULL],
               priorities => ARRAY[1, NULL, NULL, NULL],
               unique_keys => ARRAY[NULL, 'k', 'n', 'n'],
               tag_lists => ARRAY['["t"]'::jsonb, NULL, NULL, NULL])"#,
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].1);
    assert_eq!(rows[1], (existing, false));
    assert!(rows[2].1);
    assert_eq!(rows[3], (rows[2].0, false));
    assert!(rows[0].0 < rows[2].0);
    assert_eq!(job_count(&mut conn).await, 3);

    let a = job_row(&mut conn, rows[0].0).await;
    assert_eq!(
        (
            a.kind.as_str(),
            a.queue.as_str(),
            a.priority,
            a.tags.clone()
        ),
        ("a", "q1", 1, vec!["t".to_string()])
    );
    let c = job_row(&mut conn, rows[2].0).await;
    assert_eq!(
        (c.kind.as_str(), c.queue.as_str(), c.priority),
        ("c", "q2", 0)
    );
    assert!(c.tags.is_empty());
}

#[tokio::test]
async fn retry_job_makes_finished_jobs_available_again() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    // Failed with every attempt used: gets one more.
    let failed = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('f', max_attempts => 3, scheduled_at => '2000-01-01T00:00:00Z')",
    )
    .await;
    force_state(&mut conn, failed, "failed", 3).await;
    sql_exec(
        &mut conn,
        &format!(
            r#"UPDATE bosun.jobs SET errors = '[{{"attempt":3,"error":"boom"}}]' WHERE id = {failed}"#
        ),
    )
    .await;
    let before = db_clock(&mut conn).await;
    let returned = sql_jobs(
        &mut conn,
        &format!("SELECT * FROM bosun.retry_job({failed})"),
    )
    .await;
    let after = db_clock(&mut conn).await;
    let job = job_row(&mut conn, failed).await;
    assert_eq!(returned, vec![job.clone()], "returns the updated row");
    assert_eq!(job.state, JobState::Available);
    assert!(
        before <= job.scheduled_at && job.scheduled_at <= after,
        "scheduled_at is now: {} not in [{before}, {after}]",
        job.scheduled_at
    );
    assert_eq!(job.finalized_at, None);
    assert_eq!(job.attempt, 3, "attempt only grows");
    assert_eq!(job.max_attempts, 4, "one more attempt than used");
    assert_eq!(job.errors, json!([{"attempt": 3, "error": "boom"}]));

    // Cancelled with attempts left: max_attempts unchanged.
    let cancelled = sql_id(&mut conn, "SELECT bosun.enqueue('c', max_attempts => 5)").await;
    force_state(&mut conn, cancelled, "cancelled", 1).await;
    let job = &sql_jobs(
        &mut conn,
        &format!("SELECT * FROM bosun.retry_job(id => {cancelled})"),
    )
    .await[0];
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.finalized_at, None);
    assert_eq!((job.attempt, job.max_attempts), (1, 5));

    // Completed: runs again.
    let completed = sql_id(&mut conn, "SELECT bosun.enqueue('d', max_attempts => 1)").await;
    force_state(&mut conn, completed, "completed", 1).await;
    sql_exec(&mut conn, &format!("SELECT bosun.retry_job({completed})")).await;
    let job = job_row(&mut conn, completed).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.finalized_at, None);
    assert_eq!((job.attempt, job.max_attempts), (1, 2));

    // Scheduled for later: runs now.
    let scheduled = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('s', scheduled_at => now() + interval '1 day')",
    )
    .await;
    let before = db_clock(&mut conn).await;
    sql_exec(&mut conn, &format!("SELECT bosun.retry_job({scheduled})")).await;
    let job = job_row(&mut conn, scheduled).await;
    assert_eq!(job.state, JobState::Available);
    assert!(job.scheduled_at >= before && job.scheduled_at <= db_clock(&mut conn).await);
    assert_eq!(job.max_attempts, 20);
}

#[tokio::test]
async fn retry_job_leaves_an_available_job_unchanged() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let id = sql_id(
        &mut conn,
        "SELECT bosun.enqueue('a', scheduled_at => '2000-01-01T00:00:00Z')",
    )
    .await;
    let before = snapshot(&mut conn).await;
    let job_before = job_row(&mut conn, id).await;
    let returned = sql_jobs(&mut conn, &format!("SELECT * FROM bosun.retry_job({id})")).await;
    assert_eq!(returned, vec![job_before]);
    assert_eq!(snapshot(&mut conn).await, before, "nothing changed");
}

#[tokio::test]
async fn retry_jobs_filters_by_queue_kind_and_state() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let mut ids = HashMap::new();
    for (name, kind, queue, state, attempt) in [
        ("a_k1_1", "k1", "a", "failed", 20),
        ("a_k1_2", "k1", "a", "failed", 2),
        ("a_k2", "k2", "a", "failed", 1),
        ("b_k1", "k1", "b", "failed", 1),
        ("a_k1_cancelled", "k1", "a", "cancelled", 0),
        ("a_k1_running", "k1", "a", "running", 1),
        ("a_k1_completed", "k1", "a", "completed", 1),
    ] {
        let id = sql_id(
            &mut conn,
            &format!("SELECT bosun.enqueue('{kind}', queue => '{queue}')"),
        )
        .await;
        force_state(&mut conn, id, state, attempt).await;
        ids.insert(name, id);
    }
    let sorted = |jobs: &[Job]| {
        let mut out: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        out.sort_unstable();
        out
    };

    let moved = sql_jobs(
        &mut conn,
        "SELECT * FROM bosun.retry_jobs(queue => 'a', kind => 'k1')",
    )
    .await;
    assert_eq!(sorted(&moved), vec![ids["a_k1_1"], ids["a_k1_2"]]);
    for job in &moved {
        assert_eq!(job.state, JobState::Available);
        assert_eq!(job.finalized_at, None);
        assert_eq!(
            job_row(&mut conn, job.id).await,
            *job,
            "returns the new row"
        );
    }
    let exhausted = moved.iter().find(|j| j.id == ids["a_k1_1"]).unwrap();
    assert_eq!(
        exhausted.max_attempts, 21,
        "one more attempt when all were used"
    );
    let spare = moved.iter().find(|j| j.id == ids["a_k1_2"]).unwrap();
    assert_eq!(spare.max_attempts, 20);
    for name in ["a_k2", "b_k1"] {
        assert_eq!(job_row(&mut conn, ids[name]).await.state, JobState::Failed);
    }

    let moved = sql_jobs(
        &mut conn,
        "SELECT * FROM bosun.retry_jobs(state => 'cancelled')",
    )
    .await;
    assert_eq!(sorted(&moved), vec![ids["a_k1_cancelled"]]);

    let moved = sql_jobs(&mut conn, "SELECT * FROM bosun.retry_jobs(kind => 'k1')").await;
    assert_eq!(sorted(&moved), vec![ids["b_k1"]]);

    let moved = sql_jobs(&mut conn, "SELECT * FROM bosun.retry_jobs()").await;
    assert_eq!(sorted(&moved), vec![ids["a_k2"]]);

    let moved = sql_jobs(&mut conn, "SELECT * FROM bosun.retry_jobs()").await;
    assert!(moved.is_empty(), "nothing failed any more");

    let moved = sql_jobs(
        &mut conn,
        "SELECT * FROM bosun.retry_jobs(queue => 'a', state => 'completed')",
    )
    .await;
    assert_eq!(sorted(&moved), vec![ids["a_k1_completed"]]);

    assert_eq!(
        job_row(&mut conn, ids["a_k1_running"]).await.state,
        JobState::Running,
        "a running job is never moved"
    );
    let counts = state_counts(&db.pool).await;
    assert_eq!(counts.get("available"), Some(&6));
    assert_eq!(counts.get("running"), Some(&1));
    assert_eq!(counts.len(), 2, "{counts:?}");
}

#[tokio::test]
async fn cancel_job_cancels_a_waiting_job() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    for sql in [
        "SELECT bosun.enqueue('available')",
        "SELECT bosun.enqueue('scheduled', scheduled_at => now() + interval '1 day')",
    ] {
        let id = sql_id(&mut conn, sql).await;
        let before = db_clock(&mut conn).await;
        let returned = sql_jobs(&mut conn, &format!("SELECT * FROM bosun.cancel_job({id})")).await;
        let after = db_clock(&mut conn).await;
        let job = job_row(&mut conn, id).await;
        assert_eq!(returned, vec![job.clone()]);
        assert_eq!(job.state, JobState::Cancelled, "{sql}");
        let finalized = job.finalized_at.expect("finalized_at is set");
        assert!(before <= finalized && finalized <= after);
        let errors = job.attempt_errors();
        assert_eq!(errors.len(), 1, "the cancel is recorded: {:?}", job.errors);
        assert_eq!(errors[0].kind.as_deref(), Some("cancelled"));
        assert_eq!(errors[0].attempt, 0);
    }

    let retryable = sql_id(&mut conn, "SELECT bosun.enqueue('retryable')").await;
    force_state(&mut conn, retryable, "retryable", 1).await;
    sql_exec(
        &mut conn,
        &format!("SELECT bosun.cancel_job(id => {retryable})"),
    )
    .await;
    assert_eq!(
        job_row(&mut conn, retryable).await.state,
        JobState::Cancelled
    );
}

#[tokio::test]
async fn cancel_job_of_a_running_job_tells_its_worker() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut listener = PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_control").await.unwrap();

    let id = sql_id(&mut conn, "SELECT bosun.enqueue('long.task')").await;
    force_state(&mut conn, id, "running", 2).await;
    sql_exec(&mut conn, &format!("SELECT bosun.cancel_job({id})")).await;

    let job = job_row(&mut conn, id).await;
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.finalized_at.is_some());
    assert_eq!(job.attempt, 2, "the attempt is kept as the fencing token");
    let errors = job.attempt_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].attempt, 2);
    assert_eq!(errors[0].worker.as_deref(), Some("test-worker"));
    assert_eq!(errors[0].kind.as_deref(), Some("cancelled"));

    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a cancel notification arrives")
        .unwrap();
    assert_eq!(notification.channel(), "bosun_control");
    let payload: Value = serde_json::from_str(notification.payload())
        .unwrap_or_else(|e| panic!("payload {:?} is JSON: {e}", notification.payload()));
    assert_eq!(payload, json!({"action": "cancel", "id": id, "attempt": 2}));
}

#[tokio::test]
async fn reschedule_job_moves_a_waiting_job() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    // available -> later: scheduled.
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('a')").await;
    let returned = sql_jobs(
        &mut conn,
        &format!("SELECT * FROM bosun.reschedule_job({id}, '2999-06-01T12:00:00Z')"),
    )
    .await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(returned, vec![job.clone()]);
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2999-06-01T12:00:00+00:00");

    // scheduled -> the past: available, at that time.
    sql_exec(
        &mut conn,
        &format!("SELECT bosun.reschedule_job(id => {id}, at => '2001-02-03T04:05:06Z')"),
    )
    .await;
    let job = job_row(&mut conn, id).await;
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.scheduled_at.to_rfc3339(), "2001-02-03T04:05:06+00:00");

    // retryable -> later: scheduled; attempts untouched.
    let retryable = sql_id(&mut conn, "SELECT bosun.enqueue('r')").await;
    force_state(&mut conn, retryable, "retryable", 1).await;
    sql_exec(
        &mut conn,
        &format!("SELECT bosun.reschedule_job({retryable}, now() + interval '1 hour')"),
    )
    .await;
    let job = job_row(&mut conn, retryable).await;
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!((job.attempt, job.max_attempts), (1, 20));
    let in_an_hour: bool = sqlx::query_scalar(
        "SELECT scheduled_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
         FROM bosun.jobs WHERE id = $1",
    )
    .bind(retryable)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(in_an_hour);
}

#[tokio::test]
async fn pause_and_resume_queue_are_idempotent() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let paused: QueueRow = sqlx::query_as("SELECT * FROM bosun.pause_queue('mail')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(paused.name, "mail");
    assert!(paused.paused);
    let paused_at = paused.paused_at.expect("paused_at is set");

    tokio::time::sleep(Duration::from_millis(20)).await;
    let again: QueueRow = sqlx::query_as("SELECT * FROM bosun.pause_queue(name => 'mail')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(again.paused);
    assert_eq!(
        again.paused_at,
        Some(paused_at),
        "pausing again keeps the original time"
    );
    let rows: Vec<QueueRow> = sqlx::query_as("SELECT * FROM bosun.queues")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, vec![again.clone()], "one row per queue");

    let resumed: QueueRow = sqlx::query_as("SELECT * FROM bosun.resume_queue('mail')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.paused_at, None);
    let again: QueueRow = sqlx::query_as("SELECT * FROM bosun.resume_queue('mail')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!again.paused);
    assert_eq!(again.paused_at, None);
    let rows: Vec<QueueRow> = sqlx::query_as("SELECT * FROM bosun.queues")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, vec![again]);

    // Resuming a queue never paused is fine too, and so is pausing one without jobs.
    sql_exec(&mut conn, "SELECT bosun.resume_queue('fresh')").await;
    sql_exec(&mut conn, "SELECT bosun.pause_queue('empty')").await;
    let flags: Vec<(String, bool)> =
        sqlx::query_as("SELECT name, paused FROM bosun.queues ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        flags,
        vec![
            ("empty".to_string(), true),
            ("fresh".to_string(), false),
            ("mail".to_string(), false)
        ]
    );
    assert_eq!(job_count(&mut conn).await, 0);
}

#[tokio::test]
async fn queue_stats_counts_jobs_by_state_per_queue() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    for (kind, queue, state) in [
        ("k", "alpha", "available"),
        ("k", "alpha", "available"),
        ("k", "alpha", "running"),
        ("k", "alpha", "failed"),
        ("k", "beta", "completed"),
        ("k", "beta", "completed"),
        ("k", "beta", "retryable"),
        ("k", "beta", "cancelled"),
    ] {
        let id = sql_id(
            &mut conn,
            &format!("SELECT bosun.enqueue('{kind}', queue => '{queue}')"),
        )
        .await;
        if state != "available" {
            force_state(&mut conn, id, state, 1).await;
        }
    }
    // The oldest due job of alpha has waited ten minutes.
    sql_exec(
        &mut conn,
        "UPDATE bosun.jobs SET scheduled_at = now() - interval '10 minutes'
         WHERE id = (SELECT min(id) FROM bosun.jobs)",
    )
    .await;
    sql_exec(
        &mut conn,
        "SELECT bosun.enqueue('k', queue => 'alpha', scheduled_at => now() + interval '1 day')",
    )
    .await;
    sql_exec(&mut conn, "SELECT bosun.pause_queue('alpha')").await;
    sql_exec(&mut conn, "SELECT bosun.pause_queue('idle')").await;
    sql_exec(&mut conn, "SELECT bosun.resume_queue('beta')").await;

    type Row = (String, bool, i64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT queue, paused, scheduled, available, running, retryable, completed, failed,
                cancelled
         FROM bosun.queue_stats ORDER BY queue",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("alpha".to_string(), true, 1, 2, 1, 0, 0, 1, 0),
            ("beta".to_string(), false, 0, 0, 0, 1, 2, 0, 1),
            ("idle".to_string(), true, 0, 0, 0, 0, 0, 0, 0),
        ]
    );

    let ages: Vec<(String, Option<f64>)> = sqlx::query_as(
        "SELECT queue, extract(epoch FROM oldest_available_age)::float8
         FROM bosun.queue_stats ORDER BY queue",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let alpha_age = ages[0].1.expect("alpha has a due job");
    assert!(
        (600.0..700.0).contains(&alpha_age),
        "alpha's oldest due job waited {alpha_age}s"
    );
    assert!(ages[1].1.is_some(), "beta's retryable job is due: {ages:?}");
    assert_eq!(ages[2].1, None, "idle has no jobs");

    // The client reads the same view.
    let stats = db.client.queue_stats().await.unwrap();
    let summary: Vec<(String, bool, i64, i64)> = stats
        .iter()
        .map(|s| (s.queue.clone(), s.paused, s.available, s.scheduled))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("alpha".to_string(), true, 2, 1),
            ("beta".to_string(), false, 0, 0),
            ("idle".to_string(), true, 0, 0),
        ]
    );
}

// ---- 2. bad input, from raw SQL ----

#[tokio::test]
async fn bad_enqueue_arguments_are_rejected_and_nothing_is_written() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(&mut conn, "SELECT bosun.enqueue('existing')").await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT bosun.enqueue('bad kind!')",
            "22023",
            &["bosun.enqueue", "kind 'bad kind!' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('')",
            "22023",
            &["bosun.enqueue", "kind '' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('.starts-with-dot')",
            "22023",
            &["kind '.starts-with-dot' is invalid"],
        ),
        (
            "SELECT bosun.enqueue(repeat('k', 129))",
            "22023",
            &["kind 'kkk", "is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', '[1, 2]')",
            "22023",
            &["bosun.enqueue", "args must be a JSON object, got array"],
        ),
        (
            "SELECT bosun.enqueue('x', '\"text\"')",
            "22023",
            &["args must be a JSON object, got string"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => 'no spaces')",
            "22023",
            &["bosun.enqueue", "queue 'no spaces' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => '')",
            "22023",
            &["queue '' is invalid"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => 40000)",
            "22023",
            &["bosun.enqueue", "priority", "40000"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => -32769)",
            "22023",
            &["priority", "-32769"],
        ),
        (
            "SELECT bosun.enqueue('x', max_attempts => 0)",
            "22023",
            &["bosun.enqueue", "max_attempts must be at least 1, got 0"],
        ),
        (
            "SELECT bosun.enqueue('x', NULL)",
            "22004",
            &["bosun.enqueue", "args must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', queue => NULL)",
            "22004",
            &["bosun.enqueue", "queue must not be null"],
        ),
        (
            "SELECT bosun.enqueue(NULL)",
            "22004",
            &["bosun.enqueue", "kind must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', priority => NULL)",
            "22004",
            &["priority must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', scheduled_at => NULL)",
            "22004",
            &["scheduled_at must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', max_attempts => NULL)",
            "22004",
            &["max_attempts must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => NULL)",
            "22004",
            &["tags must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', meta => NULL)",
            "22004",
            &["meta must not be null"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY['ok', ''])",
            "22023",
            &[
                "bosun.enqueue",
                "tags must be strings of 1 to 255 characters",
            ],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY['ok', NULL])",
            "22023",
            &["tags must be strings"],
        ),
        (
            "SELECT bosun.enqueue('x', tags => ARRAY[repeat('t', 256)])",
            "22023",
            &["tags must be strings"],
        ),
        (
            "SELECT bosun.enqueue('x', unique_key => '')",
            "22023",
            &["unique_key must be 1 to 255 characters, got 0"],
        ),
        (
            "SELECT bosun.enqueue('x', target => repeat('t', 256))",
            "22023",
            &["target must be 1 to 255 characters, got 256"],
        ),
        (
            "SELECT bosun.enqueue('x', meta => '[]')",
            "22023",
            &["meta must be a JSON object, got array"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 1);
}

#[tokio::test]
async fn bad_enqueue_many_input_is_rejected_and_nothing_is_written() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(&mut conn, "SELECT bosun.enqueue('existing')").await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"SELECT * FROM bosun.enqueue_many('{"kind": "x"}')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs must be a JSON array",
                "got object",
            ],
        ),
        (
            "SELECT * FROM bosun.enqueue_many(NULL)",
            "22004",
            &["bosun.enqueue_many", "jobs must not be null"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, 5]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[2] must be an object, got number",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "prioirty": 1}]')"#,
            "22023",
            &["bosun.enqueue_many", "jobs[1] has unknown field 'prioirty'"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "priority": "high"}]')"#,
            "22023",
            &["jobs[1] has priority of JSON type string, expected number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": 7}]')"#,
            "22023",
            &["jobs[1] has kind of JSON type number, expected string"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "args": [1]}]')"#,
            "22023",
            &["jobs[1] has args of JSON type array, expected object"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "tags": "t"}]')"#,
            "22023",
            &["jobs[1] has tags of JSON type string, expected array"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "priority": 1.5}]')"#,
            "22023",
            &["jobs[2] has priority 1.5, expected a whole number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "max_attempts": 1e12}]')"#,
            "22023",
            &["jobs[1] has max_attempts", "expected a whole number"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "scheduled_at": "next tuesday-ish"}]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[2].scheduled_at 'next tuesday-ish' is not a timestamp",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "scheduled_at": "2030-02-31T00:00:00Z"}]')"#,
            "22023",
            &["jobs[1].scheduled_at '2030-02-31T00:00:00Z' is not a timestamp"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "scheduled_at": "2030-01-01 10:00 Mars/Olympus"}]')"#,
            "22023",
            &[
                "bosun.enqueue_many",
                "jobs[1].scheduled_at",
                "is not a timestamp",
            ],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b", "queue": "bad queue"}, {"kind": "c"}]')"#,
            "22023",
            &["bosun.enqueue_many", "jobs[2].queue 'bad queue' is invalid"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a"}, {"kind": "b"}, {"kind": "c", "max_attempts": 0}]')"#,
            "22023",
            &["jobs[3].max_attempts must be at least 1, got 0"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"kind": "a", "priority": 40000}]')"#,
            "22023",
            &["jobs[1].priority must be between -32768 and 32767, got 40000"],
        ),
        (
            r#"SELECT * FROM bosun.enqueue_many('[{"args": {}}]')"#,
            "22023",
            &["jobs[1].kind must not be null"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 1);
}

#[tokio::test]
async fn bad_enqueue_arrays_input_is_rejected() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT * FROM bosun.enqueue_arrays(ARRAY['a', 'b'], queues => ARRAY['q'])",
            "22023",
            &[
                "bosun.enqueue_arrays",
                "queues has 1 elements but kinds has 2",
            ],
        ),
        (
            "SELECT * FROM bosun.enqueue_arrays(NULL)",
            "22004",
            &["bosun.enqueue_arrays", "kinds must not be null"],
        ),
        (
            "SELECT * FROM bosun.enqueue_arrays(ARRAY['a', 'b c', 'd'])",
            "22023",
            &["bosun.enqueue_arrays", "jobs[2].kind 'b c' is invalid"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 0);
}

#[tokio::test]
async fn operator_functions_reject_wrong_states_and_unknown_ids() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let running = sql_id(&mut conn, "SELECT bosun.enqueue('r')").await;
    force_state(&mut conn, running, "running", 1).await;
    let completed = sql_id(&mut conn, "SELECT bosun.enqueue('c')").await;
    force_state(&mut conn, completed, "completed", 1).await;
    let failed = sql_id(&mut conn, "SELECT bosun.enqueue('f')").await;
    force_state(&mut conn, failed, "failed", 20).await;
    let cancelled = sql_id(&mut conn, "SELECT bosun.enqueue('x')").await;
    force_state(&mut conn, cancelled, "cancelled", 0).await;

    let running_msg = format!("job {running} is running");
    let completed_msg = format!("job {completed} is already completed");
    let cancelled_msg = format!("job {cancelled} is already cancelled");
    let failed_msg = format!("job {failed} is failed");
    let resched_running = format!("job {running} is running");
    let cases: Vec<(String, &str, Vec<&str>)> = vec![
        (
            format!("SELECT bosun.retry_job({running})"),
            "55000",
            vec!["bosun.retry_job", &running_msg],
        ),
        (
            format!("SELECT bosun.cancel_job({completed})"),
            "55000",
            vec!["bosun.cancel_job", &completed_msg],
        ),
        (
            format!("SELECT bosun.cancel_job({cancelled})"),
            "55000",
            vec!["bosun.cancel_job", &cancelled_msg],
        ),
        (
            format!("SELECT bosun.reschedule_job({failed}, now() + interval '1 hour')"),
            "55000",
            vec!["bosun.reschedule_job", &failed_msg],
        ),
        (
            format!("SELECT bosun.reschedule_job({running}, now())"),
            "55000",
            vec!["bosun.reschedule_job", &resched_running],
        ),
        (
            "SELECT bosun.retry_job(999999)".into(),
            "P0002",
            vec!["bosun.retry_job", "no job with id 999999"],
        ),
        (
            "SELECT bosun.cancel_job(999999)".into(),
            "P0002",
            vec!["bosun.cancel_job", "no job with id 999999"],
        ),
        (
            "SELECT bosun.reschedule_job(999999, now())".into(),
            "P0002",
            vec!["bosun.reschedule_job", "no job with id 999999"],
        ),
        (
            "SELECT bosun.retry_job(NULL)".into(),
            "22004",
            vec!["bosun.retry_job", "id must not be null"],
        ),
        (
            "SELECT bosun.cancel_job(NULL)".into(),
            "22004",
            vec!["bosun.cancel_job", "id must not be null"],
        ),
        (
            "SELECT bosun.reschedule_job(NULL, now())".into(),
            "22004",
            vec!["bosun.reschedule_job", "id must not be null"],
        ),
        (
            format!("SELECT bosun.reschedule_job({cancelled}, NULL)"),
            "22004",
            vec!["bosun.reschedule_job", "at must not be null"],
        ),
    ];
    for (sql, code, needles) in &cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
}

#[tokio::test]
async fn retry_jobs_and_pause_queue_reject_bad_arguments() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let running = sql_id(&mut conn, "SELECT bosun.enqueue('r')").await;
    force_state(&mut conn, running, "running", 1).await;
    let failed = sql_id(&mut conn, "SELECT bosun.enqueue('f')").await;
    force_state(&mut conn, failed, "failed", 1).await;
    sql_exec(&mut conn, "SELECT bosun.enqueue('a')").await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "SELECT * FROM bosun.retry_jobs(state => 'running')",
            "22023",
            &["bosun.retry_jobs", "state must be", "got running"],
        ),
        (
            "SELECT * FROM bosun.retry_jobs(state => 'available')",
            "22023",
            &["bosun.retry_jobs", "got available"],
        ),
        (
            "SELECT * FROM bosun.retry_jobs(state => NULL)",
            "22004",
            &["bosun.retry_jobs", "state must not be null"],
        ),
        (
            "SELECT * FROM bosun.retry_jobs(queue => 'bad queue')",
            "22023",
            &["bosun.retry_jobs", "queue 'bad queue'"],
        ),
        (
            "SELECT * FROM bosun.retry_jobs(kind => 'bad kind')",
            "22023",
            &["bosun.retry_jobs", "kind 'bad kind'"],
        ),
        (
            "SELECT bosun.pause_queue('bad name')",
            "22023",
            &[
                "bosun.pause_queue",
                "name 'bad name' is not a valid queue name",
            ],
        ),
        (
            "SELECT bosun.resume_queue('-dash')",
            "22023",
            &[
                "bosun.resume_queue",
                "name '-dash' is not a valid queue name",
            ],
        ),
        (
            "SELECT bosun.pause_queue(NULL)",
            "22004",
            &["bosun.pause_queue", "name must not be null"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    let queues: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.queues")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(queues, 0);
    assert_eq!(job_row(&mut conn, failed).await.state, JobState::Failed);
}

#[tokio::test]
async fn plain_inserts_are_checked_by_named_constraints() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let cases: &[(&str, &str, &[&str])] = &[
        (
            "INSERT INTO bosun.jobs (kind, args) VALUES ('x', '[]')",
            "23514",
            &["args_must_be_a_json_object"],
        ),
        (
            "INSERT INTO bosun.jobs (kind) VALUES ('bad kind')",
            "23514",
            &["kind_has_bad_format_see_bosun_valid_kind"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, queue) VALUES ('x', 'bad queue')",
            "23514",
            &["queue_has_bad_format_see_bosun_valid_queue"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, max_attempts) VALUES ('x', 0)",
            "23514",
            &["max_attempts_must_be_at_least_1"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, state) VALUES ('x', 'completed')",
            "23514",
            &["finished_job_has_finalized_at"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, args) VALUES ('ok', '{}'), ('x', '[]')",
            "23514",
            &["args_must_be_a_json_object"],
        ),
    ];
    for (sql, code, needles) in cases {
        assert_rejected(&mut conn, sql, code, needles).await;
    }
    assert_eq!(job_count(&mut conn).await, 0);

    // A good plain INSERT gets the defaults; a future one is shown as scheduled.
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('now', now()),
                                                           ('later', now() + interval '1 hour')",
    )
    .await;
    let states: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, queue, state::text FROM bosun.jobs ORDER BY kind")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![
            ("later".into(), "default".into(), "scheduled".into()),
            ("now".into(), "default".into(), "available".into()),
        ]
    );
}

#[tokio::test]
async fn plain_updates_of_checked_columns_are_checked_and_the_checked_flag_does_not_leak() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let id = sql_id(&mut conn, "SELECT bosun.enqueue('ok')").await;
    let cases: &[(&str, &[&str])] = &[
        (
            "UPDATE bosun.jobs SET args = '[]'",
            &["args_must_be_a_json_object"],
        ),
        (
            "UPDATE bosun.jobs SET kind = 'bad kind'",
            &["kind_has_bad_format_see_bosun_valid_kind"],
        ),
        (
            "UPDATE bosun.jobs SET errors = '{}'",
            &["errors_must_be_a_json_array"],
        ),
        (
            "UPDATE bosun.jobs SET meta = '1'",
            &["meta_must_be_a_json_object"],
        ),
    ];
    for (sql, needles) in cases {
        assert_rejected(&mut conn, sql, "23514", needles).await;
    }
    assert_eq!(job_row(&mut conn, id).await.args, json!({}));

    // bosun.enqueue skips the table's check for the rows it checked itself, and only for its
    // own INSERT: a plain INSERT later in the same transaction is checked again.
    sql_exec(&mut conn, "BEGIN").await;
    sql_id(&mut conn, "SELECT bosun.enqueue('ok')").await;
    let error = sqlx::query("INSERT INTO bosun.jobs (kind) VALUES ('bad kind')")
        .execute(&mut conn)
        .await
        .expect_err("a bad plain INSERT after bosun.enqueue is still checked");
    let error = error.as_database_error().unwrap();
    assert_eq!(error.code().as_deref(), Some("23514"));
    assert!(error
        .message()
        .contains("kind_has_bad_format_see_bosun_valid_kind"));
    sql_exec(&mut conn, "ROLLBACK").await;
    assert_eq!(job_count(&mut conn).await, 1);
}

/// The fenced writes find rows by id whatever the statistics say: right after a bulk insert
/// (no statistics yet), after ANALYZE of a table where nothing ran, and after a drain, when
/// the indexes of running jobs hold the entries of every job that ran since (the index by
/// claim time, which a probe by id cannot use, then looks the cheaper one to walk).
#[tokio::test]
async fn fenced_writes_use_the_primary_key_whatever_the_statistics() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "SELECT bosun.enqueue_many(jsonb_agg(jsonb_build_object('kind', 'echo')))
         FROM generate_series(1, 20000)",
    )
    .await;
    let writes = [
        (
            "complete_many",
            include_str!("../queue/src/sql/job_complete_many.sql"),
            "(ARRAY[1,2,3]::bigint[], ARRAY[1,1,1])",
        ),
        (
            "complete",
            include_str!("../queue/src/sql/job_complete.sql"),
            "(1, 1)",
        ),
        (
            "error",
            include_str!("../queue/src/sql/job_error.sql"),
            "(1, 1, false, 1000, 'boom', 'error')",
        ),
        (
            "snooze",
            include_str!("../queue/src/sql/job_snooze.sql"),
            "(1, 1, 1000)",
        ),
        (
            "cancel",
            include_str!("../queue/src/sql/job_cancel_running.sql"),
            "(1, 1, 'stop')",
        ),
    ];
    for phase in ["no statistics", "analyzed", "after a drain"] {
        if phase == "analyzed" {
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        if phase == "after a drain" {
            sql_exec(
                &mut conn,
                "UPDATE bosun.jobs SET state = 'running', attempt = 1, attempted_at = now(),
                                       attempted_by = 'w'
                 WHERE id > 10000",
            )
            .await;
            sql_exec(
                &mut conn,
                "UPDATE bosun.jobs SET state = 'completed', finalized_at = now()
                 WHERE state = 'running'",
            )
            .await;
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        for (name, sql, args) in writes {
            let name = format!("{name}_{}", phase.replace(' ', "_"));
            sql_exec(&mut conn, &format!("PREPARE p_{name} AS {sql}")).await;
            // Five custom plans, then the generic one that a prepared statement keeps.
            for _ in 0..6 {
                let plan: Vec<String> =
                    sqlx::query_scalar(&format!("EXPLAIN EXECUTE p_{name}{args}"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                let plan = plan.join("\n");
                assert!(
                    !plan.contains("Seq Scan"),
                    "{name} ({phase}) scans the table:\n{plan}"
                );
                assert!(
                    (plan.contains("jobs_pkey") || plan.contains("jobs_running_idx"))
                        && plan.contains("Index Cond: (id = "),
                    "{name} ({phase}) does not probe by id:\n{plan}"
                );
                assert!(
                    !plan.contains("Nested Loop"),
                    "{name} ({phase}) joins:\n{plan}"
                );
            }
        }
    }
}

/// A claim reads the jobs it takes and not the rest of the queue, whatever the statistics
/// say: right after a bulk load (none yet: on a table this size the planner then expects a
/// handful of rows and would sort the whole queue on every claim), and after ANALYZE,
/// through the plan a session keeps after its first claims.
#[tokio::test]
async fn a_claim_reads_only_the_jobs_it_takes_whatever_the_statistics() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind) SELECT 'echo' FROM generate_series(1, 300000)",
    )
    .await;
    for analyzed in [false, true] {
        if analyzed {
            sql_exec(&mut conn, "ANALYZE bosun.jobs").await;
        }
        for round in 0..7_i64 {
            sql_exec(&mut conn, "BEGIN").await;
            let claimed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bosun.claim_jobs('default', 100, ARRAY['echo'], 'w')",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let (seq_scans, fetched): (i64, i64) = sqlx::query_as(
                "SELECT seq_scan, idx_tup_fetch FROM pg_stat_xact_user_tables
                 WHERE relid = 'bosun.jobs'::regclass",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            sql_exec(&mut conn, "COMMIT").await;
            assert_eq!(claimed, 100);
            assert_eq!(
                seq_scans, 0,
                "claim {round} (analyzed: {analyzed}) scanned the table"
            );
            // The index still leads to the old versions of the jobs claimed before (until a
            // vacuum), so the bound grows with the claims; a scan of the queue is 300,000.
            let before = if analyzed { 7 + round } else { round };
            assert!(
                fetched <= 300 * (before + 1),
                "claim {round} (analyzed: {analyzed}) fetched {fetched} rows to claim 100"
            );
        }
    }
}

/// Every statement that writes jobs prepares the table's trigger conditions and checks
/// afresh, and preparing them tries to inline each SQL-language function they name, which
/// means parsing its body, whether or not a row ever calls it. None may name
/// one.
#[tokio::test]
async fn the_jobs_tables_checks_name_no_sql_function() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let named: Vec<(String, String)> = sqlx::query_as(
        "SELECT coalesce(t.tgname, c.conname), p.proname
         FROM pg_depend AS d
         JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
         LEFT JOIN pg_trigger AS t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
         LEFT JOIN pg_constraint AS c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
         WHERE coalesce(t.tgrelid, c.conrelid) = 'bosun.jobs'::regclass
           AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(named, Vec::<(String, String)>::new());
    // The query sees what the checks name: the trigger functions, and bosun.bad_tags (in
    // the checks of inserts and of updates).
    let all: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_depend AS d
         JOIN pg_trigger AS t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
         WHERE t.tgrelid = 'bosun.jobs'::regclass AND d.refclassid = 'pg_proc'::regclass
           AND d.refobjid = 'bosun.bad_tags(text[])'::regprocedure",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(all, 2);
}

// ---- 3. wake-ups ----

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

// ---- 4. the Rust client ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SendEmail {
    to: String,
    subject: String,
}

impl JobArgs for SendEmail {
    const KIND: &'static str = "email.send";

    fn options() -> JobOptions {
        JobOptions {
            queue: Some("mail".into()),
            priority: Some(-5),
            max_attempts: Some(7),
        }
    }
}

#[tokio::test]
async fn client_enqueue_tx_follows_the_transaction() {
    let db = TestDb::new().await;

    let mut tx = db.pool.begin().await.unwrap();
    let rolled_back = db
        .client
        .enqueue_tx(&mut tx, NewJob::new("tx.job", json!({"n": 1})))
        .await
        .unwrap();
    assert!(rolled_back.inserted);
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1, "visible inside the transaction");
    tx.rollback().await.unwrap();
    assert!(
        state_counts(&db.pool).await.is_empty(),
        "no job after rollback"
    );
    assert!(matches!(
        db.client.job_get(rolled_back.id).await,
        Err(Error::NotFound(_))
    ));

    let mut tx = db.pool.begin().await.unwrap();
    let committed = db
        .client
        .enqueue_tx(&mut tx, NewJob::new("tx.job", json!({"n": 2})))
        .await
        .unwrap();
    assert!(
        state_counts(&db.pool).await.is_empty(),
        "not visible before commit"
    );
    tx.commit().await.unwrap();
    let job = db.client.job_get(committed.id).await.unwrap();
    assert_eq!(job.args, json!({"n": 2}));
    assert_eq!(job.state, JobState::Available);
    assert_eq!(
        state_counts(&db.pool).await.into_iter().collect::<Vec<_>>(),
        vec![("available".to_string(), 1)]
    );

    // enqueue_many_tx too.
    let mut tx = db.pool.begin().await.unwrap();
    let many = db
        .client
        .enqueue_many_tx(
            &mut tx,
            [NewJob::new("a", json!({})), NewJob::new("b", json!({}))],
        )
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    tx.rollback().await.unwrap();
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&1));
}

#[tokio::test]
async fn client_unique_key_returns_the_existing_job() {
    let db = TestDb::new().await;

    let first = db
        .client
        .enqueue(NewJob::new("sync", json!({"v": 1})).unique_key("sync-7"))
        .await
        .unwrap();
    assert!(first.inserted);
    let second = db
        .client
        .enqueue(
            NewJob::new("sync", json!({"v": 2}))
                .unique_key("sync-7")
                .queue("other"),
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        Enqueued {
            inserted: false,
            id: first.id
        }
    );
    let job = db.client.job_get(first.id).await.unwrap();
    assert_eq!(job.args, json!({"v": 1}));
    assert_eq!(job.queue, "default");

    // Within one batch, and against the existing row.
    let results = db
        .client
        .enqueue_many([
            NewJob::new("sync", json!({})).unique_key("sync-8"),
            NewJob::new("sync", json!({})).unique_key("sync-7"),
            NewJob::new("sync", json!({})).unique_key("sync-8"),
        ])
        .await
        .unwrap();
    assert!(results[0].inserted);
    assert_eq!(
        results[1],
        Enqueued {
            inserted: false,
            id: first.id
        }
    );
    assert_eq!(
        results[2],
        Enqueued {
            inserted: false,
            id: results[0].id
        }
    );
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&2));
}

#[tokio::test]
async fn client_enqueue_many_of_1000_keeps_input_order() {
    let db = TestDb::new().await;

    let jobs: Vec<NewJob> = (0..1000)
        .map(|n| {
            NewJob::new("bulk", json!({ "n": n })).queue(if n % 2 == 0 { "even" } else { "odd" })
        })
        .collect();
    let results = db.client.enqueue_many(jobs).await.unwrap();
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|r| r.inserted));
    assert!(
        results.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in input order"
    );

    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, (args->>'n')::bigint, queue FROM bosun.jobs")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1000);
    let by_id: HashMap<i64, (i64, String)> =
        rows.into_iter().map(|(id, n, q)| (id, (n, q))).collect();
    for (n, result) in (0_i64..).zip(&results) {
        let (stored_n, queue) = &by_id[&result.id];
        assert_eq!(*stored_n, n, "result {n} is the id of input {n}");
        assert_eq!(queue, if n % 2 == 0 { "even" } else { "odd" });
    }

    // An empty batch is fine and writes nothing.
    assert!(db
        .client
        .enqueue_many(Vec::<NewJob>::new())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn client_typed_args_use_their_options() {
    let db = TestDb::new().await;
    let email = SendEmail {
        to: "a@b.c".into(),
        subject: "hi".into(),
    };

    let enqueued = db.client.enqueue(email.clone()).await.unwrap();
    let job = db.client.job_get(enqueued.id).await.unwrap();
    assert_eq!(job.kind, "email.send");
    assert_eq!(job.queue, "mail");
    assert_eq!(job.priority, -5);
    assert_eq!(job.max_attempts, 7);
    assert_eq!(
        serde_json::from_value::<SendEmail>(job.args).unwrap(),
        email
    );

    // A builder call overrides the kind's options.
    let urgent = NewJob::from_args(&email).unwrap().queue("urgent");
    let id = db.client.enqueue(urgent).await.unwrap().id;
    let job = db.client.job_get(id).await.unwrap();
    assert_eq!((job.queue.as_str(), job.priority), ("urgent", -5));

    // Typed jobs in a batch.
    let results = db
        .client
        .enqueue_many(vec![email.clone(), email.clone()])
        .await
        .unwrap();
    for r in results {
        assert_eq!(db.client.job_get(r.id).await.unwrap().queue, "mail");
    }
}

#[tokio::test]
async fn client_bad_input_gives_typed_errors_and_writes_nothing() {
    let db = TestDb::new().await;

    let err = db
        .client
        .enqueue(NewJob::new("bad kind!", json!({})))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => assert!(msg.contains("kind"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).max_attempts(0))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => {
            assert!(msg.contains("max_attempts must be at least 1"), "{msg}");
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!([1])))
        .await
        .unwrap_err();
    match &err {
        Error::InvalidArgument(msg) => assert!(msg.contains("args must be a JSON object"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }

    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).queue("bad queue"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("queue 'bad queue'")),
        "{err:?}"
    );

    // One bad job in a batch: none written, and the message names it.
    let err = db
        .client
        .enqueue_many([
            NewJob::new("ok", json!({})),
            NewJob::new("ok", json!({})),
            NewJob::new("no good", json!({})),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("jobs[3].kind")),
        "{err:?}"
    );

    assert!(
        state_counts(&db.pool).await.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn client_operator_errors_are_typed() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let running = db
        .client
        .enqueue(NewJob::new("r", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&mut conn, running, "running", 1).await;
    let completed = db
        .client
        .enqueue(NewJob::new("c", json!({})))
        .await
        .unwrap()
        .id;
    force_state(&mut conn, completed, "completed", 1).await;

    let err = db.client.retry_job(running).await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongState(msg) if msg.contains("is running")),
        "{err:?}"
    );
    let err = db.client.cancel_job(completed).await.unwrap_err();
    assert!(
        matches!(&err, Error::WrongState(msg) if msg.contains("already completed")),
        "{err:?}"
    );
    let err = db.client.cancel_job(999_999).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound(msg) if msg.contains("999999")),
        "{err:?}"
    );
    assert!(matches!(
        db.client.retry_job(999_999).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.reschedule_job(999_999, Utc::now()).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.client.job_get(999_999).await,
        Err(Error::NotFound(_))
    ));
    let err = db
        .client
        .retry_jobs(None, None, JobState::Running)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let err = db.client.pause_queue("bad name").await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");

    // The jobs are as they were.
    assert_eq!(
        db.client.job_get(running).await.unwrap().state,
        JobState::Running
    );
    assert_eq!(
        db.client.job_get(completed).await.unwrap().state,
        JobState::Completed
    );

    // And the good paths through the client.
    let retried = db.client.retry_job(completed).await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    let cancelled = db.client.cancel_job(running).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let moved = db
        .client
        .retry_jobs(None, None, JobState::Cancelled)
        .await
        .unwrap();
    assert_eq!(
        moved.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![running]
    );
    let paused = db.client.pause_queue("default").await.unwrap();
    assert!(paused.paused);
    assert!(!db.client.resume_queue("default").await.unwrap().paused);
}

#[tokio::test]
async fn client_job_list_filters_newest_first() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;

    let mut ids = Vec::new();
    for (kind, queue) in [
        ("a", "q1"),
        ("b", "q1"),
        ("a", "q2"),
        ("a", "q1"),
        ("a", "q1"),
    ] {
        let id = db
            .client
            .enqueue(NewJob::new(kind, json!({})).queue(queue))
            .await
            .unwrap()
            .id;
        ids.push(id);
    }
    let [j1, j2, j3, j4, j5] = ids[..] else {
        unreachable!()
    };
    force_state(&mut conn, j4, "failed", 1).await;

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
    assert_eq!(list(JobFilter::default()).await, vec![j5, j4, j3, j2, j1]);
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Available),
            ..Default::default()
        })
        .await,
        vec![j5, j3, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        })
        .await,
        vec![j4]
    );
    assert_eq!(
        list(JobFilter {
            queue: Some("q1".into()),
            ..Default::default()
        })
        .await,
        vec![j5, j4, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            queue: Some("q1".into()),
            kind: Some("a".into()),
            ..Default::default()
        })
        .await,
        vec![j5, j4, j1]
    );
    assert_eq!(
        list(JobFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        vec![j5, j4]
    );
    assert_eq!(
        list(JobFilter {
            before_id: Some(j4),
            ..Default::default()
        })
        .await,
        vec![j3, j2, j1]
    );
    assert_eq!(
        list(JobFilter {
            state: Some(JobState::Available),
            queue: Some("q1".into()),
            kind: Some("a".into()),
            before_id: Some(j5),
            limit: Some(10),
        })
        .await,
        vec![j1]
    );
    assert!(list(JobFilter {
        kind: Some("nothing".into()),
        ..Default::default()
    })
    .await
    .is_empty());

    for limit in [0, -1] {
        let err = db
            .client
            .job_list(&JobFilter {
                limit: Some(limit),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains("limit")),
            "{err:?}"
        );
    }
}

/// A batch large enough for the client's COPY path, every optional field set: each job reads
/// back exactly as given, args and tags with characters a text format would have to escape.
#[tokio::test]
async fn client_bulk_enqueue_writes_every_field_as_given() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let now = db_clock(&mut conn).await;
    let later = now + chrono::Duration::hours(1);
    let tricky = "tab\there, newline\nthere, back\\slash, \"quoted\", \u{e9}t\u{e9} \u{1f600}";
    let jobs: Vec<NewJob> = (0..300_i32)
        .map(|n| {
            let mut job = NewJob::new(format!("bulk.k{}", n % 3), json!({"n": n, "s": tricky}))
                .queue(format!("q{}", n % 2))
                .priority(i16::try_from(n % 7).unwrap() - 3)
                .max_attempts(n % 5 + 1)
                .scheduled_at(if n % 4 == 0 { later } else { now })
                .meta(json!({"m": n, "s": tricky}));
            if n % 2 == 0 {
                job = job.target(format!("host-{}", n % 10));
            }
            if n % 3 == 0 {
                job = job.tags([format!("t{n}"), tricky.to_string(), "{a,b}".into()]);
            }
            job
        })
        .collect();
    let results = db.client.enqueue_many(jobs.clone()).await.unwrap();
    assert_eq!(results.len(), 300);
    assert!(results.windows(2).all(|w| w[0].id < w[1].id));
    for (n, result) in (0_i32..).zip(&results) {
        assert!(result.inserted);
        let job = job_row(&mut conn, result.id).await;
        assert_eq!(job.kind, format!("bulk.k{}", n % 3));
        assert_eq!(job.args, json!({"n": n, "s": tricky}), "args of job {n}");
        assert_eq!(job.queue, format!("q{}", n % 2));
        assert_eq!(i32::from(job.priority), n % 7 - 3);
        assert_eq!(job.max_attempts, n % 5 + 1);
        let (at, state) = if n % 4 == 0 {
            (later, JobState::Scheduled)
        } else {
            (now, JobState::Available)
        };
        assert_eq!(job.scheduled_at, at, "scheduled_at of job {n}");
        assert_eq!(job.state, state, "state of job {n}");
        assert_eq!(job.meta, json!({"m": n, "s": tricky}));
        let target = (n % 2 == 0).then(|| format!("host-{}", n % 10));
        assert_eq!(job.target, target);
        let tags: Vec<String> = if n % 3 == 0 {
            vec![format!("t{n}"), tricky.to_string(), "{a,b}".into()]
        } else {
            Vec::new()
        };
        assert_eq!(job.tags, tags, "tags of job {n}");
        assert!(job.unique_key.is_none());
    }
    let targets: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.targets")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(targets, 5, "each target was registered once");

    // A batch in which only some jobs set a field gets the defaults for the others.
    let mixed: Vec<NewJob> = (0..300)
        .map(|n| {
            let job = NewJob::new("bulk.mixed", json!({ "n": n }));
            if n % 2 == 0 {
                job.queue("set").max_attempts(3)
            } else {
                job
            }
        })
        .collect();
    let results = db.client.enqueue_many(mixed).await.unwrap();
    for (n, result) in (0..).zip(&results) {
        let job = job_row(&mut conn, result.id).await;
        assert_eq!(job.args, json!({ "n": n }));
        let expected = if n % 2 == 0 {
            ("set", 3)
        } else {
            ("default", 20)
        };
        assert_eq!((job.queue.as_str(), job.max_attempts), expected);
    }
}

/// Single enqueues name only the columns a job sets: every one of the 256 combinations of
/// the eight optional fields reads back as given, with the table's defaults for the rest,
/// and a taken unique key still returns the job that holds it.
#[tokio::test]
async fn client_single_enqueue_writes_every_combination_of_fields_as_given() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let now = db_clock(&mut conn).await;
    let later = now + chrono::Duration::hours(1);
    let tricky = "tab\there, \"quoted\", {a,b}, \u{e9}t\u{e9}";
    for set in 0_u16..256 {
        let has = |bit: u16| set & (1 << bit) != 0;
        let mut job = NewJob::new("single.k", json!({"set": set, "s": tricky}));
        if has(0) {
            job = job.queue("q1");
        }
        if has(1) {
            job = job.priority(-2);
        }
        if has(2) {
            job = job.max_attempts(3);
        }
        if has(3) {
            job = job.scheduled_at(later);
        }
        if has(4) {
            job = job.meta(json!({"m": tricky}));
        }
        if has(5) {
            job = job.target("host-1");
        }
        if has(6) {
            job = job.tags(["t", tricky]);
        }
        if has(7) {
            job = job.unique_key(format!("key-{set}"));
        }
        let enqueued = db.client.enqueue(job.clone()).await.unwrap();
        assert!(enqueued.inserted, "combination {set:#010b}");
        let row = job_row(&mut conn, enqueued.id).await;
        let what = format!("combination {set:#010b}");
        assert_eq!(row.kind, "single.k", "{what}");
        assert_eq!(row.args, json!({"set": set, "s": tricky}), "{what}");
        assert_eq!(row.queue, if has(0) { "q1" } else { "default" }, "{what}");
        assert_eq!(row.priority, if has(1) { -2 } else { 0 }, "{what}");
        assert_eq!(row.max_attempts, if has(2) { 3 } else { 20 }, "{what}");
        if has(3) {
            assert_eq!(row.scheduled_at, later, "{what}");
            assert_eq!(row.state, JobState::Scheduled, "{what}");
        } else {
            assert!(
                row.scheduled_at >= now && row.scheduled_at < later,
                "{what}"
            );
            assert_eq!(row.state, JobState::Available, "{what}");
        }
        let meta = if has(4) {
            json!({"m": tricky})
        } else {
            json!({})
        };
        assert_eq!(row.meta, meta, "{what}");
        assert_eq!(row.target.as_deref(), has(5).then_some("host-1"), "{what}");
        let tags: Vec<String> = if has(6) {
            vec!["t".into(), tricky.into()]
        } else {
            Vec::new()
        };
        assert_eq!(row.tags, tags, "{what}");
        let key = has(7).then(|| format!("key-{set}"));
        assert_eq!(row.unique_key, key, "{what}");
        if has(7) {
            let again = db.client.enqueue(job).await.unwrap();
            assert_eq!(
                again,
                Enqueued {
                    id: enqueued.id,
                    inserted: false
                },
                "{what}: a taken key returns its job"
            );
        }
    }
    assert_eq!(job_count(&mut conn).await, 256, "one row per combination");
}

/// A bad job deep in a large batch: nothing is written, the message names it by index, in
/// the client's own transaction and in the caller's.
#[tokio::test]
async fn client_bulk_enqueue_names_a_bad_job_and_writes_nothing() {
    let db = TestDb::new().await;
    let batch = |bad: Option<(usize, NewJob)>| -> Vec<NewJob> {
        let mut jobs: Vec<NewJob> = (0..400)
            .map(|n| NewJob::new("bulk", json!({ "n": n })))
            .collect();
        if let Some((index, job)) = bad {
            jobs[index] = job;
        }
        jobs
    };
    let cases = [
        (350, NewJob::new("no good", json!({})), "jobs[351].kind"),
        (9, NewJob::new("ok", json!({})).tags([""]), "jobs[10].tags"),
        (0, NewJob::new("ok", json!([1])), "jobs[1].args"),
        (
            399,
            NewJob::new("ok", json!({})).meta(json!(2)),
            "jobs[400].meta",
        ),
    ];
    for (index, job, needle) in cases {
        let err = db
            .client
            .enqueue_many(batch(Some((index, job))))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains(needle)),
            "{needle}: {err:?}"
        );
    }
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");

    // Inside the caller's transaction: a good batch, then a bad one; the transaction is
    // aborted and rolls back both. A good batch in a committed transaction stays.
    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_many_tx(&mut tx, batch(None))
        .await
        .unwrap();
    let bad = Some((5, NewJob::new("no good", json!({}))));
    let err = db
        .client
        .enqueue_many_tx(&mut tx, batch(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.contains("kind")),
        "{err:?}"
    );
    tx.rollback().await.unwrap();
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");

    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .enqueue_many_tx(&mut tx, batch(None))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state_counts(&db.pool).await.get("available"), Some(&400));
}

/// The table checks what the enqueue functions check: name lengths at their limits, tags,
/// and a message that says what is wrong besides naming the check.
#[tokio::test]
async fn plain_inserts_are_checked_at_the_limits_and_say_what_is_wrong() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let long_kind = format!("k{}", "x".repeat(127));
    let long_queue = format!("q{}", "x".repeat(63));
    sql_exec(
        &mut conn,
        &format!("INSERT INTO bosun.jobs (kind, queue) VALUES ('{long_kind}', '{long_queue}')"),
    )
    .await;
    let cases: &[(String, &[&str])] = &[
        (
            format!("INSERT INTO bosun.jobs (kind) VALUES ('{long_kind}x')"),
            &["kind_has_bad_format_see_bosun_valid_kind", "kind 'kx"],
        ),
        (
            format!("INSERT INTO bosun.jobs (kind, queue) VALUES ('x', '{long_queue}x')"),
            &["queue_has_bad_format_see_bosun_valid_queue"],
        ),
        (
            "INSERT INTO bosun.jobs (kind) VALUES ('.dot')".to_string(),
            &["kind_has_bad_format_see_bosun_valid_kind", "is invalid"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', '{ok,\"\"}')".to_string(),
            &[
                "tags_must_be_strings_of_1_to_255_characters",
                "tags must be strings",
            ],
        ),
        (
            "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', ARRAY['ok', NULL])".to_string(),
            &["tags_must_be_strings_of_1_to_255_characters"],
        ),
        (
            format!(
                "INSERT INTO bosun.jobs (kind, tags) VALUES ('x', ARRAY['{}'])",
                "t".repeat(256)
            ),
            &["tags_must_be_strings_of_1_to_255_characters"],
        ),
        (
            "INSERT INTO bosun.jobs (kind, meta) VALUES ('x', '[]')".to_string(),
            &["meta_must_be_a_json_object", "meta must be a JSON object"],
        ),
    ];
    for (sql, needles) in cases {
        assert_rejected(&mut conn, sql, "23514", needles).await;
    }
    assert_rejected(
        &mut conn,
        "UPDATE bosun.jobs SET tags = '{\"\"}'",
        "23514",
        &["tags_must_be_strings_of_1_to_255_characters"],
    )
    .await;
    assert_eq!(job_count(&mut conn).await, 1);
}

/// One job inside the caller's transaction goes through the table's check: a bad one is a
/// typed error naming the check, and nothing is written.
#[tokio::test]
async fn client_enqueue_in_a_transaction_rejects_a_bad_job() {
    let db = TestDb::new().await;
    let cases = [
        (
            NewJob::new("ok", json!({})).max_attempts(0),
            "max_attempts_must_be_at_least_1",
        ),
        (NewJob::new("bad kind", json!({})), "kind 'bad kind'"),
        (NewJob::new("ok", json!({})).tags(["ok", ""]), "tags"),
    ];
    for (job, needle) in cases {
        let mut tx = db.pool.begin().await.unwrap();
        let err = db.client.enqueue_tx(&mut tx, job).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(msg) if msg.contains(needle)),
            "{needle}: {err:?}"
        );
        tx.rollback().await.unwrap();
    }
    // Outside a transaction the same jobs get bosun.enqueue's words.
    let err = db
        .client
        .enqueue(NewJob::new("ok", json!({})).tags(["ok", ""]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(msg) if msg.starts_with("enqueue: tags must be")),
        "{err:?}"
    );
    assert!(state_counts(&db.pool).await.is_empty(), "nothing written");
}
