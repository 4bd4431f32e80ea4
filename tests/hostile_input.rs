//! Hostile rows: every value a client can write into a job is bounded on every path (SQL
//! functions, plain INSERT and UPDATE, the Rust client), with a clear error that changes
//! nothing; and a row that slipped past the checks fails alone, never taking its batch or
//! its queue with it.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bosun_queue::{Error, JobState, NewJob};
use bosun_tests::{assert_rejected, eventually, state_counts, RunningPool, TestDb};
use bosun_workers::{JobContext, JobResult, Worker, WorkerPool};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// `{"a": {"a": ... 1}}` with `levels` objects.
fn nested(levels: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..levels {
        value = json!({ "a": value });
    }
    value
}

/// The same as SQL text.
fn nested_sql(levels: usize) -> String {
    format!(
        "'{}1{}'::jsonb",
        "{\"a\":".repeat(levels),
        "}".repeat(levels)
    )
}

#[tokio::test]
async fn json_nested_deeper_than_100_levels_is_refused_on_every_path() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let deep = nested_sql(101);
    let cases = [
        (
            format!("SELECT bosun.enqueue('k', {deep})"),
            "22023",
            "args nests deeper than 100 levels",
        ),
        (
            format!("SELECT bosun.enqueue('k', meta => {deep})"),
            "22023",
            "meta nests deeper than 100 levels",
        ),
        (
            format!(
                "SELECT bosun.enqueue_many(jsonb_build_array(jsonb_build_object('kind', 'k'), jsonb_build_object('kind', 'k', 'args', {deep})))"
            ),
            "22023",
            "jobs[2].args nests deeper than 100 levels",
        ),
        (
            format!("INSERT INTO bosun.jobs (kind, args) VALUES ('k', {deep})"),
            "23514",
            "args_must_nest_at_most_100_levels",
        ),
        (
            format!("INSERT INTO bosun.jobs (kind, meta) VALUES ('k', {deep})"),
            "23514",
            "meta_must_nest_at_most_100_levels",
        ),
    ];
    for (sql, code, needle) in &cases {
        assert_rejected(&mut conn, sql, code, &[needle]).await;
    }
    // Exactly 100 levels is fine; an update to deeper is refused.
    let id: i64 = sqlx::query_scalar(&format!("SELECT bosun.enqueue('k', {})", nested_sql(100)))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    for column in ["args", "meta"] {
        assert_rejected(
            &mut conn,
            &format!("UPDATE bosun.jobs SET {column} = {deep} WHERE id = {id}"),
            "23514",
            &[&format!("{column}_must_nest_at_most_100_levels")],
        )
        .await;
    }
    assert_rejected(
        &mut conn,
        &format!("UPDATE bosun.jobs SET errors = jsonb_build_array({deep}) WHERE id = {id}"),
        "23514",
        &["errors_must_nest_at_most_100_levels"],
    )
    .await;

    // The Rust client: one job, a small batch, and a batch large enough to be copied.
    let bad = NewJob::new("k", nested(101));
    let single = db.client.enqueue(bad.clone()).await.unwrap_err();
    assert!(
        matches!(&single, Error::InvalidArgument(m) if m.contains("args nests deeper than 100 levels")),
        "{single}"
    );
    for size in [3, 300] {
        let mut batch: Vec<NewJob> = (0..size).map(|_| NewJob::new("k", json!({}))).collect();
        batch[1] = bad.clone();
        let error = db.client.enqueue_many(batch).await.unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.contains("jobs[2].args nests deeper than 100 levels")),
            "batch of {size}: {error}"
        );
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(total, 1, "only the 100-level job was written");
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Poisonable {}

impl bosun_queue::JobArgs for Poisonable {
    const KIND: &'static str = "test.poison";
}

struct Counting(Arc<AtomicUsize>);

impl Worker for Counting {
    type Args = Poisonable;
    async fn work(&self, _ctx: JobContext, _args: Poisonable) -> JobResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A row that no reader can take, written past the checks (as by an older version, or with
/// the trigger disabled), fails alone with the reason, and the 50 good jobs claimed in the
/// same batch run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_that_cannot_be_read_fails_alone_and_its_batch_runs() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sqlx::query("ALTER TABLE bosun.jobs DISABLE TRIGGER jobs_check")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "INSERT INTO bosun.jobs (kind, args, priority)
         SELECT 'test.poison', '{{}}', 1 FROM generate_series(1, 25)
         UNION ALL SELECT 'test.poison', {}, 1
         UNION ALL SELECT 'test.poison', '{{}}', 1 FROM generate_series(1, 25)",
        nested_sql(200)
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("ALTER TABLE bosun.jobs ENABLE TRIGGER jobs_check")
        .execute(&mut conn)
        .await
        .unwrap();

    let ran = Arc::new(AtomicUsize::new(0));
    let running = RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .register(Counting(Arc::clone(&ran)))
            .queue("default", 64)
            .poll_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let counts = eventually(WAIT, "every job to finish", || async {
        let counts = state_counts(&db.pool).await;
        (counts.get("completed") == Some(&50) && counts.get("failed") == Some(&1)).then_some(counts)
    })
    .await;
    running.stop().await;
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 50, "each good handler ran once");
    let (attempt, errors): (i32, Value) =
        sqlx::query_as("SELECT attempt, errors FROM bosun.jobs WHERE state = 'failed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempt, 1, "failed on its first attempt, for good");
    let entry = &errors[0];
    assert_eq!(entry["kind"], "decode");
    let text = entry["error"].as_str().unwrap();
    assert!(
        text.contains("could not be read") && text.contains("recursion limit"),
        "{text}"
    );
}

#[tokio::test]
async fn attempts_are_bounded_so_claims_and_outcomes_stay_in_range() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let cases: &[(&str, &str, &str)] = &[
        (
            "INSERT INTO bosun.jobs (kind, attempt) VALUES ('k', 2147483647)",
            "23514",
            "waiting_job_has_an_attempt_left",
        ),
        (
            "INSERT INTO bosun.jobs (kind, max_attempts) VALUES ('k', 2147483647)",
            "23514",
            "max_attempts_must_be_at_most_1000000000",
        ),
        (
            "SELECT bosun.enqueue('k', max_attempts => 1000000001)",
            "22023",
            "max_attempts must be at most 1000000000, got 1000000001",
        ),
        (
            "SELECT bosun.enqueue_many('[{\"kind\": \"k\", \"max_attempts\": 2147483647}]')",
            "22023",
            "jobs[1].max_attempts must be at most 1000000000",
        ),
    ];
    for (sql, code, needle) in cases {
        assert_rejected(&mut conn, sql, code, &[needle]).await;
    }
    let error = db
        .client
        .enqueue(NewJob::new("k", json!({})).max_attempts(i32::MAX))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("at most 1000000000")),
        "{error}"
    );

    // The most a job may have is allowed, and a job that used every one cannot be retried.
    let id: i64 = sqlx::query_scalar("SELECT bosun.enqueue('k', max_attempts => 1000000000)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE bosun.jobs SET state = 'failed', attempt = 1000000000, finalized_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.retry_job({id})"),
        "55000",
        &["has used all 1000000000 attempts"],
    )
    .await;
    let retried: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.retry_jobs()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(retried, 0, "retry_jobs leaves it out");
}

#[tokio::test]
async fn infinite_and_far_times_are_refused_wherever_a_job_time_is_set() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let waiting: i64 = sqlx::query_scalar("SELECT bosun.enqueue('k')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    for at in ["infinity", "-infinity", "20000-01-01"] {
        let cases = [
            (
                format!("SELECT bosun.enqueue('k', scheduled_at => '{at}')"),
                "22023",
                "scheduled_at must be a finite time before the year 10000".to_string(),
            ),
            (
                format!(
                    "SELECT bosun.enqueue_many('[{{\"kind\": \"k\"}}, {{\"kind\": \"k\", \"scheduled_at\": \"{at}\"}}]')"
                ),
                "22023",
                "jobs[2].scheduled_at must be a finite time before the year 10000".to_string(),
            ),
            (
                format!("SELECT bosun.reschedule_job({waiting}, '{at}')"),
                "22023",
                "at must be a finite time before the year 10000".to_string(),
            ),
            (
                format!("INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('k', '{at}')"),
                "23514",
                "times_must_be_finite_and_before_year_10000".to_string(),
            ),
            (
                format!("UPDATE bosun.jobs SET scheduled_at = '{at}'"),
                "23514",
                "times_must_be_finite_and_before_year_10000".to_string(),
            ),
            (
                format!("UPDATE bosun.jobs SET attempted_at = '{at}'"),
                "23514",
                "times_must_be_finite_and_before_year_10000".to_string(),
            ),
        ];
        for (sql, code, needle) in &cases {
            assert_rejected(&mut conn, sql, code, &[needle]).await;
        }
    }
    let far = Utc.with_ymd_and_hms(20000, 1, 1, 0, 0, 0).unwrap();
    let error = db
        .client
        .enqueue(NewJob::new("k", json!({})).scheduled_at(far))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("before the year 10000")),
        "{error}"
    );
    // Nothing can make the samplers' subtractions fail.
    let stats: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.queue_stats")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stats, 1);
    db.client.queue_stats().await.unwrap();
}

#[tokio::test]
async fn no_setting_a_client_can_set_switches_the_row_checks_off() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    for setting in [
        "bosun.rows_checked",
        "bosun.notify_inserts",
        "bosun.wake_queues",
    ] {
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        sqlx::query(&format!("SET LOCAL {setting} = 'on'"))
            .execute(&mut conn)
            .await
            .unwrap();
        let error = sqlx::query("INSERT INTO bosun.jobs (kind, args) VALUES ('x', '[]')")
            .execute(&mut conn)
            .await
            .expect_err("the row is checked whatever is set");
        assert_eq!(
            error.as_database_error().unwrap().code().as_deref(),
            Some("23514"),
            "{setting}"
        );
        sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    }
}

#[tokio::test]
async fn the_runtime_functions_check_their_arguments() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sqlx::query("SELECT bosun.enqueue('k')")
        .execute(&mut conn)
        .await
        .unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "SELECT * FROM bosun.claim_jobs(NULL, 1, '{k}', 'w')",
            "22004",
            "queue_name must not be null",
        ),
        (
            "SELECT * FROM bosun.claim_jobs('default', NULL, '{k}', 'w')",
            "22004",
            "max_jobs must not be null",
        ),
        (
            "SELECT * FROM bosun.claim_jobs('default', 1, NULL, 'w')",
            "22004",
            "kinds must not be null",
        ),
        (
            "SELECT * FROM bosun.claim_jobs('default', 1, '{k}', NULL)",
            "22004",
            "worker must not be null",
        ),
        (
            "SELECT * FROM bosun.claim_jobs('default', -1, '{k}', 'w')",
            "22023",
            "max_jobs must not be negative, got -1",
        ),
        (
            "SELECT * FROM bosun.reap_expunged(NULL)",
            "22004",
            "batch must not be null",
        ),
        (
            "SELECT bosun.enqueue('k', on_conflict => NULL)",
            "22004",
            "on_conflict must not be null",
        ),
        (
            "SELECT bosun.enqueue('k', on_conflict => 'ignore')",
            "22023",
            "on_conflict must be 'return_existing' or 'error_if_different', got 'ignore'",
        ),
    ];
    for (sql, code, needle) in cases {
        assert_rejected(&mut conn, sql, code, &[needle]).await;
    }
    let claimed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bosun.claim_jobs('default', 0, '{k}', 'w')")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(claimed, 0, "a claim of nothing takes nothing");
    assert_eq!(
        db.client.job_get(1).await.unwrap().state,
        JobState::Available
    );
}

#[tokio::test]
async fn long_values_are_shortened_in_error_messages() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let message = assert_rejected(
        &mut conn,
        "SELECT bosun.enqueue(repeat('k', 1000000))",
        "22023",
        &["(1000000 characters) is invalid"],
    )
    .await;
    assert!(message.len() < 400, "{} characters", message.len());
    for (sql, code) in [
        ("SELECT bosun.pause_queue(repeat('q', 1000000))", "22023"),
        ("SELECT bosun.resume_queue(repeat('q', 1000000))", "22023"),
        ("SELECT bosun.pause_periodic(repeat('p', 1000000))", "P0002"),
        (
            "SELECT bosun.unschedule_periodic(repeat('p', 1000000))",
            "P0002",
        ),
    ] {
        let message = assert_rejected(&mut conn, sql, code, &["(1000000 characters)"]).await;
        assert!(message.len() < 400, "{sql}: {} characters", message.len());
    }
}
