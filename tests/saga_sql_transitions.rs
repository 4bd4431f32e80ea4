//! Sagas driven by hand from SQL: start, cancel and retry, and the fenced transitions the
//! runner makes, each rule checked on its own (a runner that lost its job changes nothing).

use bosun_tests::{
    saga_sql::{begin, call_bool, claim, saga_state, start, steps},
    TestDb,
};
use sqlx::Row;

#[tokio::test]
async fn a_runner_that_lost_its_job_cannot_reopen_a_finished_step() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "zombie").await;
    let job = claim(&mut sql, saga, 0, "do").await;
    assert_eq!(
        begin(&mut sql, saga, job, 0).await.as_deref(),
        Some("running")
    );
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, '{}')",
            saga,
            job,
            0
        )
        .await
    );
    // A paused runner of the same attempt wakes up and begins again: nothing changes.
    assert_eq!(begin(&mut sql, saga, job, 0).await, None);
    assert_eq!(
        steps(&mut sql, saga).await,
        ["succeeded", "pending", "pending"]
    );
    let current: i32 = sqlx::query_scalar("SELECT current_step FROM bosun.sagas WHERE id = $1")
        .bind(saga)
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(current, 1, "the saga is not rewound");
    let undo_begun: Option<String> =
        sqlx::query_scalar("SELECT (bosun.saga_undo_begin($1, 1, $2, 0)).state::text")
            .bind(job)
            .bind(saga)
            .fetch_one(&mut sql)
            .await
            .unwrap();
    assert_eq!(
        undo_begun, None,
        "an undo begin without the job held is fenced too"
    );
}

#[tokio::test]
async fn a_step_job_is_enqueued_with_the_steps_default_limit_of_attempts() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "limit-1").await;
    let limit: i32 =
        sqlx::query_scalar("SELECT max_attempts FROM bosun.jobs WHERE args->>'saga_id' = $1::text")
            .bind(saga)
            .fetch_one(&mut sql)
            .await
            .unwrap();
    assert_eq!(limit, bosun_workers::saga::STEP_MAX_ATTEMPTS_DEFAULT);
}

#[tokio::test]
async fn start_saga_is_idempotent_on_its_key() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let first = start(&mut sql, "vm-1").await;
    let again = start(&mut sql, "vm-1").await;
    assert_eq!(first, again);
    let jobs: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, unique_key FROM bosun.jobs ORDER BY id")
            .fetch_all(&mut sql)
            .await
            .unwrap();
    assert_eq!(
        jobs,
        [(
            "saga:example.provision".to_string(),
            format!("saga:{first}:0:do")
        )],
        "one first-step job, with a deterministic key"
    );

    let err = sqlx::query(
        "SELECT bosun.start_saga('example.provision', 'vm-1', '{\"fail_at\": \"create\"}')",
    )
    .execute(&mut sql)
    .await
    .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("23505"));
    assert!(
        db_err.message().contains("already names saga"),
        "{}",
        db_err.message()
    );

    for (query, code, needle) in [
        (
            "SELECT bosun.start_saga('bad kind', 'k')",
            "22023",
            "kind 'bad kind' is invalid",
        ),
        (
            "SELECT bosun.start_saga('k', NULL)",
            "22004",
            "key must not be null",
        ),
        (
            "SELECT bosun.start_saga('k', '')",
            "22023",
            "key must be 1 to 200 characters",
        ),
        (
            "SELECT bosun.start_saga('k', 'k2', '[1]')",
            "22023",
            "inputs must be a JSON object",
        ),
        (
            "SELECT bosun.cancel_saga(gen_random_uuid())",
            "P0002",
            "no saga with id",
        ),
        (
            "SELECT bosun.retry_saga(NULL)",
            "22004",
            "id must not be null",
        ),
    ] {
        let err = sqlx::query(query).execute(&mut sql).await.unwrap_err();
        let db_err = err.as_database_error().unwrap();
        assert_eq!(db_err.code().as_deref(), Some(code), "{query}");
        assert!(
            db_err.message().contains(needle),
            "{query}: {}",
            db_err.message()
        );
    }
    let sagas: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.sagas")
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(sagas, 1, "bad input wrote nothing");
}

#[tokio::test]
async fn steps_run_forward_and_the_last_one_finishes_the_saga() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "forward").await;
    for step in 0..3 {
        let job = claim(&mut sql, saga, step, "do").await;
        assert_eq!(
            begin(&mut sql, saga, job, step).await.as_deref(),
            Some("running")
        );
        let done: bool = sqlx::query_scalar(
            "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, jsonb_build_object('n', $3))",
        )
        .bind(job)
        .bind(saga)
        .bind(step)
        .fetch_one(&mut sql)
        .await
        .unwrap();
        assert!(done);
    }
    assert_eq!(saga_state(&mut sql, saga).await.0, "succeeded");
    assert_eq!(steps(&mut sql, saga).await, ["succeeded"; 3]);
    let outputs: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT output FROM bosun.saga_steps WHERE saga_id = $1 ORDER BY idx")
            .bind(saga)
            .fetch_all(&mut sql)
            .await
            .unwrap();
    assert_eq!(outputs[2], serde_json::json!({"n": 2}));
}

#[tokio::test]
async fn a_failed_step_compensates_in_reverse_and_stale_writes_are_fenced_out() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "reverse").await;
    for step in 0..2 {
        let job = claim(&mut sql, saga, step, "do").await;
        begin(&mut sql, saga, job, step).await;
        assert!(
            call_bool(
                &mut sql,
                "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, '{}')",
                saga,
                job,
                step
            )
            .await
        );
    }
    let job = claim(&mut sql, saga, 2, "do").await;
    begin(&mut sql, saga, job, 2).await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_fail($1, 1, $2, $3, 'HTTP 500')",
            saga,
            job,
            2
        )
        .await
    );
    assert!(
        !call_bool(
            &mut sql,
            "SELECT bosun.saga_step_fail($1, 1, $2, $3, 'late')",
            saga,
            job,
            2
        )
        .await,
        "a second write for the same attempt is fenced out"
    );
    assert_eq!(
        saga_state(&mut sql, saga).await,
        (
            "compensating".into(),
            Some("step 2 failed: HTTP 500".into())
        )
    );
    assert_eq!(
        steps(&mut sql, saga).await,
        ["succeeded", "undoing", "failed"]
    );

    for step in [1, 0] {
        let job = claim(&mut sql, saga, step, "undo").await;
        sqlx::query("SELECT bosun.saga_undo_begin($1, 1, $2, $3)")
            .bind(job)
            .bind(saga)
            .bind(step)
            .execute(&mut sql)
            .await
            .unwrap();
        assert!(
            call_bool(
                &mut sql,
                "SELECT bosun.saga_undo_done($1, 1, $2, $3)",
                saga,
                job,
                step
            )
            .await
        );
    }
    assert_eq!(saga_state(&mut sql, saga).await.0, "compensated");
    assert_eq!(steps(&mut sql, saga).await, ["undone", "undone", "failed"]);
}

#[tokio::test]
async fn a_failed_undo_leaves_the_saga_stuck_until_retry_saga() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "stuck").await;
    let job = claim(&mut sql, saga, 0, "do").await;
    begin(&mut sql, saga, job, 0).await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, '{}')",
            saga,
            job,
            0
        )
        .await
    );
    let job = claim(&mut sql, saga, 1, "do").await;
    begin(&mut sql, saga, job, 1).await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_fail($1, 1, $2, $3, 'boom')",
            saga,
            job,
            1
        )
        .await
    );
    let undo = claim(&mut sql, saga, 0, "undo").await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_undo_fail($1, 1, $2, $3, 'still locked')",
            saga,
            undo,
            0
        )
        .await
    );
    let (state, error) = saga_state(&mut sql, saga).await;
    assert_eq!(state, "stuck");
    assert!(error.unwrap().contains("still locked"));

    let row = sqlx::query("SELECT state::text FROM bosun.retry_saga($1)")
        .bind(saga)
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), "compensating");
    assert_eq!(steps(&mut sql, saga).await[0], "undoing");
    let undo_state: String = sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE id = $1")
        .bind(undo)
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(undo_state, "available", "the undo runs again");

    let err = sqlx::query("SELECT bosun.retry_saga($1)")
        .bind(saga)
        .execute(&mut sql)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("55000")
    );
}

#[tokio::test]
async fn a_cancelled_saga_stops_at_the_next_step_and_compensates() {
    let db = TestDb::new().await;
    let mut sql = db.raw().await;
    let saga = start(&mut sql, "cancel").await;
    let job = claim(&mut sql, saga, 0, "do").await;
    begin(&mut sql, saga, job, 0).await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, '{}')",
            saga,
            job,
            0
        )
        .await
    );

    let cancel_requested: bool =
        sqlx::query_scalar("SELECT cancel_requested FROM bosun.cancel_saga($1)")
            .bind(saga)
            .fetch_one(&mut sql)
            .await
            .unwrap();
    assert!(cancel_requested);
    let next = claim(&mut sql, saga, 1, "do").await;
    assert_eq!(
        begin(&mut sql, saga, next, 1).await,
        None,
        "the step does not run"
    );
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_step_skip($1, 1, $2, $3)",
            saga,
            next,
            1
        )
        .await
    );
    assert_eq!(
        saga_state(&mut sql, saga).await,
        ("compensating".into(), Some("cancelled".into()))
    );
    assert_eq!(
        steps(&mut sql, saga).await,
        ["undoing", "pending", "pending"]
    );

    let undo = claim(&mut sql, saga, 0, "undo").await;
    assert!(
        call_bool(
            &mut sql,
            "SELECT bosun.saga_undo_done($1, 1, $2, $3)",
            saga,
            undo,
            0
        )
        .await
    );
    assert_eq!(saga_state(&mut sql, saga).await.0, "compensated");
    let err = sqlx::query("SELECT bosun.cancel_saga($1)")
        .bind(saga)
        .execute(&mut sql)
        .await
        .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("55000"));
    assert!(
        db_err.message().contains("already compensated"),
        "{}",
        db_err.message()
    );
}

/// Finished sagas are counted on a row per server process (so that finishing sagas do not
/// wait on one another); the sampler adds the rows up.
#[tokio::test]
async fn finished_sagas_are_counted_across_connections() {
    let db = TestDb::new().await;
    let mut first = db.raw().await;
    let mut second = db.raw().await;
    for (i, on_second) in [false, true, false].into_iter().enumerate() {
        let conn = if on_second { &mut second } else { &mut first };
        let id = start(conn, &format!("count-{i}")).await;
        sqlx::query(
            "UPDATE bosun.sagas SET state = 'succeeded', finished_at = now() WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.saga_outcomes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!((1..=2).contains(&rows), "{rows} rows");
    let sample = bosun_queue::sampling::sample(&db.pool, 100_000)
        .await
        .unwrap();
    let counted: Vec<(&str, &str, i64)> = sample
        .saga_outcomes
        .iter()
        .map(|o| (o.kind.as_str(), o.outcome.as_str(), o.total))
        .collect();
    assert_eq!(counted, [("example.provision", "succeeded", 3)]);
}
