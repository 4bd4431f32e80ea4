//! What operators and clients do around the engine leaves jobs and sagas consistent: work on
//! an expunged target never runs again, job commands on a saga's jobs name the saga command,
//! a saga that has not finished stays resumable, its errors are kept, and a taken unique key
//! can be told apart from a new job.

use bosun_queue::{Enqueued, Error, NewJob, OnConflict};
use bosun_tests::{
    assert_rejected,
    saga_sql::{begin, call_bool, claim, saga_state, start, steps},
    TestDb,
};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

async fn one_i64(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn job_state(conn: &mut PgConnection, id: i64) -> String {
    sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn work_on_an_expunged_target_never_runs_again() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let reaped = one_i64(&mut conn, "SELECT bosun.enqueue('k', target => 'gone-1')").await;
    let waiting = one_i64(&mut conn, "SELECT bosun.enqueue('k', target => 'gone-2')").await;
    let elsewhere = one_i64(&mut conn, "SELECT bosun.enqueue('k', target => 'live')").await;
    exec(
        &mut conn,
        "SELECT bosun.expunge_target('gone-1', 'sled pulled')",
    )
    .await;
    exec(&mut conn, "SELECT count(*) FROM bosun.reap_expunged()").await;
    // The reaper failed the first job; the second target's job is not reaped yet.
    exec(&mut conn, "SELECT bosun.expunge_target('gone-2')").await;
    assert_eq!(job_state(&mut conn, reaped).await, "failed");

    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.retry_job({reaped})"),
        "55000",
        &["cannot run again", "gone-1", "sled pulled"],
    )
    .await;
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.reschedule_job({waiting}, now() + interval '1 hour')"),
        "55000",
        &["cannot run again", "gone-2"],
    )
    .await;
    assert_rejected(
        &mut conn,
        &format!("UPDATE bosun.jobs SET target = 'gone-1' WHERE id = {elsewhere}"),
        "55000",
        &["target 'gone-1' is expunged"],
    )
    .await;
    let retried = one_i64(&mut conn, "SELECT count(*) FROM bosun.retry_jobs()").await;
    assert_eq!(retried, 0, "retry_jobs leaves the reaped job out");
    assert_eq!(job_state(&mut conn, reaped).await, "failed");
    let error = db.client.retry_job(reaped).await.unwrap_err();
    assert!(matches!(error, Error::WrongState(_)), "{error}");
    // Moving a job to a live target is still fine.
    exec(
        &mut conn,
        &format!("UPDATE bosun.jobs SET target = 'other' WHERE id = {elsewhere}"),
    )
    .await;
}

#[tokio::test]
async fn job_commands_on_a_saga_step_name_the_saga_command() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let saga = start(&mut conn, "vm-1").await;
    let job = one_i64(&mut conn, "SELECT id FROM bosun.jobs").await;
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.cancel_job({job})"),
        "55000",
        &[
            &format!("step 0 of saga {saga}"),
            &format!("bosun.cancel_saga('{saga}')"),
            &format!("bosun saga {saga} --cancel"),
        ],
    )
    .await;
    exec(
        &mut conn,
        &format!(
            "UPDATE bosun.jobs SET state = 'failed', attempt = 1, finalized_at = now() WHERE id = {job}"
        ),
    )
    .await;
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.retry_job({job})"),
        "55000",
        &[&format!("bosun.retry_saga('{saga}')")],
    )
    .await;
    let retried = one_i64(&mut conn, "SELECT count(*) FROM bosun.retry_jobs()").await;
    assert_eq!(retried, 0, "retry_jobs leaves a saga's jobs to the saga");
    let error = db.client.cancel_job(job).await.unwrap_err();
    assert!(matches!(error, Error::WrongState(_)), "{error}");

    // The saga command does what the job command would have: the step's job runs again.
    exec(&mut conn, &format!("SELECT bosun.retry_saga('{saga}')")).await;
    assert_eq!(job_state(&mut conn, job).await, "available");
}

/// Drive a saga to `stuck`: step 0 succeeds, step 1 fails, the undo of step 0 fails.
async fn stuck_saga(conn: &mut PgConnection, key: &str) -> (Uuid, i64) {
    let saga = start(conn, key).await;
    let job = claim(conn, saga, 0, "do").await;
    begin(conn, saga, job, 0).await;
    assert!(
        call_bool(
            conn,
            "SELECT bosun.saga_step_done($1, 1, $2, $3, 3, '{}')",
            saga,
            job,
            0
        )
        .await
    );
    let job = claim(conn, saga, 1, "do").await;
    begin(conn, saga, job, 1).await;
    assert!(
        call_bool(
            conn,
            "SELECT bosun.saga_step_fail($1, 1, $2, $3, 'boom')",
            saga,
            job,
            1
        )
        .await
    );
    let undo = claim(conn, saga, 0, "undo").await;
    assert!(
        call_bool(
            conn,
            "SELECT bosun.saga_undo_fail($1, 1, $2, $3, 'still locked')",
            saga,
            undo,
            0
        )
        .await
    );
    assert_eq!(saga_state(conn, saga).await.0, "stuck");
    (saga, undo)
}

async fn saga_errors(conn: &mut PgConnection, saga: Uuid) -> Vec<String> {
    let errors: Value = sqlx::query_scalar("SELECT errors FROM bosun.sagas WHERE id = $1")
        .bind(saga)
        .fetch_one(conn)
        .await
        .unwrap();
    errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_stuck_saga_whose_undo_job_was_pruned_resumes_and_keeps_its_errors() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let (saga, undo) = stuck_saga(&mut conn, "pruned").await;
    // The pruner deletes failed jobs past their retention.
    exec(
        &mut conn,
        &format!("DELETE FROM bosun.jobs WHERE id = {undo}"),
    )
    .await;

    exec(&mut conn, &format!("SELECT bosun.retry_saga('{saga}')")).await;
    let (state, error) = saga_state(&mut conn, saga).await;
    assert_eq!(state, "compensating");
    assert_eq!(
        error.as_deref(),
        Some("undo of step 0 failed: still locked"),
        "the error stays until something replaces it"
    );
    assert_eq!(steps(&mut conn, saga).await[0], "undoing");
    let again: (String, String) = sqlx::query_as(
        "SELECT state::text, kind FROM bosun.jobs WHERE unique_key = format('saga:%s:0:undo', $1::uuid)",
    )
    .bind(saga)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        again,
        ("available".into(), "saga:example.provision".into()),
        "the undo's job was enqueued afresh"
    );
    assert_eq!(
        saga_errors(&mut conn, saga).await,
        ["step 1 failed: boom", "undo of step 0 failed: still locked"]
    );
    // Its job will run: nothing more to resume.
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.retry_saga('{saga}')"),
        "55000",
        &["nothing to resume"],
    )
    .await;
}

#[tokio::test]
async fn a_running_saga_whose_step_job_is_gone_resumes() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let saga = start(&mut conn, "orphan").await;
    let job = claim(&mut conn, saga, 0, "do").await;
    begin(&mut conn, saga, job, 0).await;
    // Its job vanished (deleted by hand, as a careless cleanup would).
    exec(
        &mut conn,
        &format!("DELETE FROM bosun.jobs WHERE id = {job}"),
    )
    .await;
    exec(&mut conn, &format!("SELECT bosun.retry_saga('{saga}')")).await;
    let state: String = sqlx::query_scalar(
        "SELECT state::text FROM bosun.jobs WHERE unique_key = format('saga:%s:0:do', $1::uuid)",
    )
    .bind(saga)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(state, "available");
    assert_eq!(saga_state(&mut conn, saga).await.0, "running");

    exec(
        &mut conn,
        &format!(
            "UPDATE bosun.sagas SET state = 'succeeded', finished_at = now() WHERE id = '{saga}'"
        ),
    )
    .await;
    assert_rejected(
        &mut conn,
        &format!("SELECT bosun.retry_saga('{saga}')"),
        "55000",
        &["already succeeded"],
    )
    .await;
}

#[tokio::test]
async fn a_step_job_takes_the_step_limit_of_attempts() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let saga = start(&mut conn, "limits").await;
    let job = claim(&mut conn, saga, 0, "do").await;
    let state: Option<String> = sqlx::query_scalar(&format!(
        "SELECT (bosun.saga_step_begin($1, 1, $2, 0, {}, 3)).state::text",
        bosun_tests::saga_sql::STEPS
    ))
    .bind(job)
    .bind(saga)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(state.as_deref(), Some("running"));
    let max: i32 = sqlx::query_scalar("SELECT max_attempts FROM bosun.jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(max, 3);
}

#[tokio::test]
async fn a_taken_unique_key_can_be_told_apart_and_refused_when_it_differs() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let first: (i64, bool) = sqlx::query_as(
        "SELECT * FROM bosun.enqueue_unique('report', '{\"day\": 1}', unique_key => 'r1')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(first.1, "inserted");
    let again: (i64, bool) = sqlx::query_as(
        "SELECT * FROM bosun.enqueue_unique('report', '{\"day\": 2}', unique_key => 'r1')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(again, (first.0, false), "the default returns the holder");
    let same: (i64, bool) = sqlx::query_as(
        "SELECT * FROM bosun.enqueue_unique('report', '{\"day\": 1}', unique_key => 'r1',
                                            on_conflict => 'error_if_different')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(same, (first.0, false), "the same job is returned");
    assert_rejected(
        &mut conn,
        "SELECT bosun.enqueue('report', '{\"day\": 2}', unique_key => 'r1', on_conflict => 'error_if_different')",
        "23505",
        &[&format!(
            "unique_key 'r1' is held by job {}, with other args: '{{\"day\": 1}}' (given '{{\"day\": 2}}')",
            first.0
        )],
    )
    .await;
    assert_rejected(
        &mut conn,
        "SELECT bosun.enqueue_many('[{\"kind\": \"other\", \"args\": {\"day\": 1}, \"unique_key\": \"r1\", \"queue\": \"q\", \"target\": \"t\"}]', on_conflict => 'error_if_different')",
        "23505",
        &["other kind: 'report' (given 'other')", "other queue: 'default' (given 'q')", "other target: NULL (given 't')"],
    )
    .await;

    // The Rust client.
    let job = |day: i64| {
        NewJob::new("report", json!({ "day": day }))
            .unique_key("r1")
            .on_conflict(OnConflict::ErrorIfDifferent)
    };
    assert_eq!(
        db.client.enqueue(job(1)).await.unwrap(),
        Enqueued {
            id: first.0,
            inserted: false
        }
    );
    let error = db.client.enqueue(job(2)).await.unwrap_err();
    assert!(
        matches!(&error, Error::Conflict(m) if m.contains("other args")),
        "{error}"
    );
    let error = db
        .client
        .enqueue_many([job(1), NewJob::new("report", json!({})).unique_key("r2")])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(m) if m.contains("one batch")),
        "{error}"
    );
}

/// A worker that dies on a step's last attempt: the rescuer hands the step's job back, and
/// the runner ends the step through the saga instead of running it again, so the saga is
/// never left without a job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_whose_last_attempt_died_ends_through_its_saga() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use bosun_workers::{SagaDefinition, Step, StepContext, WorkerPool};

    let db = TestDb::new().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let saga = SagaDefinition::new("test.last_gasp").step(
        Step::new("only", move |_ctx: StepContext| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(json!({}))
            }
        })
        .max_attempts(2),
    );
    let id = db
        .client
        .start_saga("test.last_gasp", "gasp-1", &json!({}))
        .await
        .unwrap();
    // Its second and last attempt was claimed by a worker that died an hour ago.
    sqlx::query(
        "UPDATE bosun.jobs SET state = 'running', attempt = 2, max_attempts = 2,
                attempted_by = 'ghost', attempted_at = now() - interval '1 hour'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO bosun.saga_steps (saga_id, idx, name, state, attempts)
         VALUES ($1, 0, 'only', 'running', 2)",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    let rescued =
        bosun_queue::liveness::job_rescue_many(&db.pool, 10, std::time::Duration::ZERO, None)
            .await
            .unwrap();
    assert_eq!((rescued.retried, rescued.failed), (1, 0));

    let running = bosun_tests::RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .saga(saga)
            .queue("default", 2)
            .poll_interval(std::time::Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let finished = bosun_tests::eventually(
        std::time::Duration::from_secs(20),
        "the saga to finish",
        || async {
            let saga = bosun_queue::saga::saga_get(&db.pool, id).await.unwrap();
            saga.finished_at.is_some().then_some(saga)
        },
    )
    .await;
    running.stop().await;
    assert_eq!(finished.state, bosun_queue::SagaState::Compensated);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "the step did not run a third time"
    );
    let steps = bosun_queue::saga::saga_steps(&db.pool, id).await.unwrap();
    let error = steps[0].error.clone().unwrap();
    assert!(
        error.contains("rescued") && error.contains("(attempt 2 of 2)"),
        "{error}"
    );
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// Workers that register at once, serving the same kinds, record them without deadlocking
/// each other: the kinds a registration writes are written in one order, whatever the order
/// of the worker's list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_registering_at_once_record_their_kinds_without_deadlock() {
    let db = TestDb::new().await;
    let kinds: Vec<String> = (0..64).map(|i| format!("kind.{i:02}")).collect();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let pool = db.pool.clone();
        let mut mine = kinds.clone();
        mine.rotate_left(worker * 7);
        if worker % 2 == 1 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            for round in 0..20 {
                sqlx::query(
                    "INSERT INTO bosun.workers (id, host, pid, kinds, expires_at)
                     VALUES ($1, 'h', 1, $2, now() + interval '1 minute')",
                )
                .bind(format!("w{worker}-{round}"))
                .bind(&mine)
                .execute(&pool)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("no registration fails");
    }
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.served_kinds")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(recorded, 64);
}
