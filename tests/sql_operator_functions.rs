//! The operator functions from a raw connection: retry, cancel, reschedule, pause and resume
//! do what they say to the rows, `bosun.queue_stats` counts them, and a wrong state, an
//! unknown id or a bad argument is refused with its SQLSTATE, changing nothing.

use bosun_queue::{Job, JobState, QueueRow};
use bosun_tests::force_state;
use bosun_tests::raw_sql::{db_clock, job_count, job_row, sql_exec, sql_id};
use bosun_tests::{assert_rejected, snapshot, state_counts, TestDb};
use serde_json::{json, Value};
use sqlx::{postgres::PgListener, PgConnection};
use std::{collections::HashMap, time::Duration};

/// Run SQL that returns `bosun.jobs` rows.
async fn sql_jobs(conn: &mut PgConnection, sql: &str) -> Vec<Job> {
    sqlx::query_as(sql)
        .fetch_all(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ---- every SQL function, from a raw connection ----

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

// ---- bad input, from raw SQL ----

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
