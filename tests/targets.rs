//! Targets and the reaper: registering, refusing work on expunged targets, the reaper's
//! passes over queued and running jobs, "target gone" from a handler, and sagas whose target
//! disappears (in-process pools here; real worker processes in `saga_crash.rs`).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use bosun_queue::{
    saga::{saga_get, saga_steps},
    JobState, NewJob, SagaState, SagaStepState, TargetState,
};
use bosun_tests::{bosun_bin, eventually, example_bin, state_counts, Replica, RunningPool, TestDb};
use bosun_workers::{
    maintenance::reaper::{Reaper, ReaperConfig},
    JobContext, JobError, JobResult, SagaDefinition, Step, StepContext, Worker, WorkerPool,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn sql_error(pool: &PgPool, sql: &str) -> (String, String) {
    let error = sqlx::query(sql).execute(pool).await.unwrap_err();
    let db = error.as_database_error().expect("a database error");
    (db.code().unwrap().to_string(), db.message().to_string())
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn reaper(db: &TestDb, batch_size: i32) -> Reaper {
    Reaper::new(db.client.clone(), ReaperConfig { batch_size })
}

#[tokio::test]
async fn work_registers_its_target_and_register_target_sets_a_kind() {
    let db = TestDb::new().await;
    db.client
        .enqueue(NewJob::new("echo", json!({})).target("sled-7"))
        .await
        .unwrap();
    let target = db
        .client
        .register_target("pantry-1", Some("pantry"))
        .await
        .unwrap();
    assert_eq!(target.state, TargetState::InService);
    assert_eq!(target.kind.as_deref(), Some("pantry"));
    // Registering again without a kind keeps it; naming it from work changes nothing.
    let again = db.client.register_target("pantry-1", None).await.unwrap();
    assert_eq!(again.kind.as_deref(), Some("pantry"));

    let targets = db.client.targets().await.unwrap();
    let names: Vec<_> = targets.iter().map(|t| t.target.name.as_str()).collect();
    assert_eq!(names, ["pantry-1", "sled-7"]);
    assert_eq!(targets[1].live_jobs, 1);
    assert_eq!(targets[1].target.kind, None);

    for (sql, code, names_argument) in [
        (
            "SELECT bosun.register_target(NULL)",
            "22004",
            "name must not be null",
        ),
        (
            "SELECT bosun.register_target('')",
            "22023",
            "name must be 1 to 255 characters",
        ),
        (
            "SELECT bosun.register_target('x', repeat('k', 101))",
            "22023",
            "kind must be 1 to 100 characters",
        ),
        (
            "SELECT bosun.expunge_target(NULL)",
            "22004",
            "name must not be null",
        ),
        (
            "SELECT bosun.expunge_target('nowhere')",
            "P0002",
            "no target named 'nowhere'",
        ),
        (
            "SELECT bosun.reap_expunged(0)",
            "22023",
            "batch must be at least 1",
        ),
    ] {
        let (got_code, message) = sql_error(&db.pool, sql).await;
        assert_eq!(got_code, code, "{sql}: {message}");
        assert!(message.contains(names_argument), "{sql}: {message}");
    }
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM bosun.targets").await,
        2
    );
}

#[tokio::test]
async fn an_expunged_target_refuses_new_work_on_every_path_and_expunging_is_final() {
    let db = TestDb::new().await;
    db.client.register_target("pantry-1", None).await.unwrap();
    let expunged = db
        .client
        .expunge_target("pantry-1", Some("sled 12 pulled"))
        .await
        .unwrap();
    assert_eq!(expunged.state, TargetState::Expunged);
    let again = db
        .client
        .expunge_target("pantry-1", Some("another reason"))
        .await
        .unwrap();
    assert_eq!(again, expunged, "expunging again changes nothing");

    for sql in [
        "SELECT bosun.enqueue('echo', target => 'pantry-1')",
        r#"SELECT bosun.enqueue_many('[{"kind": "echo"}, {"kind": "echo", "target": "pantry-1"}]')"#,
        "INSERT INTO bosun.jobs (kind, target) VALUES ('echo', 'pantry-1')",
        "SELECT bosun.start_saga('example.provision', 'k', '{}', target => 'pantry-1')",
        "SELECT bosun.register_target('pantry-1')",
    ] {
        let (code, message) = sql_error(&db.pool, sql).await;
        assert_eq!(code, "55000", "{sql}");
        assert!(
            message.contains("target 'pantry-1' is expunged (sled 12 pulled)"),
            "{sql}: {message}"
        );
    }
    let refused = db
        .client
        .enqueue(NewJob::new("echo", json!({})).target("pantry-1"))
        .await;
    assert!(matches!(refused, Err(bosun_queue::Error::WrongState(_))));
    let refused = db
        .client
        .start_saga_on("pantry-1", "example.provision", "k", &json!({}))
        .await;
    assert!(matches!(refused, Err(bosun_queue::Error::WrongState(_))));
    assert_eq!(scalar(&db.pool, "SELECT count(*) FROM bosun.jobs").await, 0);
    assert_eq!(
        scalar(&db.pool, "SELECT count(*) FROM bosun.sagas").await,
        0
    );
}

#[tokio::test]
async fn the_reaper_fails_unfinished_jobs_on_expunged_targets_once_in_batches() {
    let db = TestDb::new().await;
    let on = |target: &str| NewJob::new("echo", json!({})).target(target);
    let mut doomed = Vec::new();
    for _ in 0..25 {
        doomed.push(db.client.enqueue(on("pantry-1")).await.unwrap().id);
    }
    let later = db
        .client
        .enqueue(on("pantry-1").scheduled_at(chrono::Utc::now() + chrono::Duration::hours(1)))
        .await
        .unwrap()
        .id;
    doomed.push(later);
    let finished = db.client.enqueue(on("pantry-1")).await.unwrap().id;
    sqlx::query("UPDATE bosun.jobs SET state = 'completed', finalized_at = now() WHERE id = $1")
        .bind(finished)
        .execute(&db.pool)
        .await
        .unwrap();
    let elsewhere = db.client.enqueue(on("pantry-2")).await.unwrap().id;

    assert!(reaper(&db, 10).run_once().await.unwrap().is_empty());
    db.client
        .expunge_target("pantry-1", Some("sled 12 pulled"))
        .await
        .unwrap();
    let reaped = reaper(&db, 10).run_once().await.unwrap();
    let mut ids: Vec<_> = reaped.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    assert_eq!(
        ids, doomed,
        "every unfinished job on pantry-1, across three batches"
    );
    assert!(reaped
        .iter()
        .all(|r| !r.was_running && r.target == "pantry-1"));
    assert!(
        reaper(&db, 10).run_once().await.unwrap().is_empty(),
        "idempotent"
    );

    let job = db.client.job_get(later).await.unwrap();
    assert_eq!(job.state, JobState::Failed);
    let errors = job.attempt_errors();
    let entry = errors.last().unwrap();
    assert_eq!(entry.kind.as_deref(), Some("target_expunged"));
    assert_eq!(entry.error, "target pantry-1 expunged: sled 12 pulled");
    assert_eq!(
        db.client.job_get(finished).await.unwrap().state,
        JobState::Completed
    );
    assert_eq!(
        db.client.job_get(elsewhere).await.unwrap().state,
        JobState::Available
    );
    let stats = db.client.targets().await.unwrap();
    let pantry = stats.iter().find(|t| t.target.name == "pantry-1").unwrap();
    assert_eq!((pantry.live_jobs, pantry.target.reaped_jobs), (0, 26));
}

#[derive(Debug, Serialize, Deserialize)]
struct Export {
    pantry: String,
}

impl bosun_queue::JobArgs for Export {
    const KIND: &'static str = "export";
}

/// Answers like a pantry that restarted and lost its state.
struct ExportWorker;

impl Worker for ExportWorker {
    type Args = Export;

    async fn work(&self, _ctx: JobContext, args: Export) -> JobResult {
        Err(JobError::target_gone(format!(
            "{} answered 404",
            args.pantry
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_finds_its_target_gone_fails_without_using_its_retries() {
    let db = TestDb::new().await;
    let running = RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .register(ExportWorker)
            .queue("default", 2)
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    let id = db
        .client
        .enqueue(
            NewJob::new("export", json!({"pantry": "pantry-3"}))
                .target("pantry-3")
                .max_attempts(10),
        )
        .await
        .unwrap()
        .id;
    let job = eventually(Duration::from_secs(10), "the job to fail", || async {
        let job = db.client.job_get(id).await.unwrap();
        (job.state == JobState::Failed).then_some(job)
    })
    .await;
    running.stop().await;
    assert_eq!(job.attempt, 1);
    let errors = job.attempt_errors();
    let entry = errors.last().unwrap();
    assert_eq!(entry.kind.as_deref(), Some("target_gone"));
    assert_eq!(entry.error, "target gone: pantry-3 answered 404");
}

fn saga_pool(db: &TestDb, saga: SagaDefinition) -> RunningPool {
    RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .saga(saga)
            .queue("default", 4)
            .poll_interval(Duration::from_millis(50))
            .maintenance_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
}

async fn finished(db: &TestDb, id: uuid::Uuid) -> bosun_queue::Saga {
    eventually(Duration::from_secs(20), "the saga to finish", || async {
        let saga = saga_get(&db.pool, id).await.unwrap();
        matches!(saga.state, SagaState::Succeeded | SagaState::Compensated).then_some(saga)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undo_whose_target_is_gone_counts_as_undone() {
    let db = TestDb::new().await;
    let saga = SagaDefinition::new("test.export")
        .step(
            Step::new("create_export", |_ctx: StepContext| async { Ok(1) }).undo(
                |_ctx: StepContext| async {
                    Err(JobError::target_gone(
                        "pantry-3 answered 404 for the export",
                    ))
                },
            ),
        )
        .step(Step::new("publish", |_ctx: StepContext| async {
            Err::<(), _>(JobError::permanent("publish refused"))
        }));
    let running = saga_pool(&db, saga);
    let id = db
        .client
        .start_saga_on("pantry-3", "test.export", "export-1", &json!({}))
        .await
        .unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Compensated);
    assert_eq!(saga.target.as_deref(), Some("pantry-3"));
    let steps = saga_steps(&db.pool, id).await.unwrap();
    assert_eq!(steps[0].state, SagaStepState::Undone);
    assert_eq!(
        steps[0].error.as_deref(),
        Some("target gone: pantry-3 answered 404 for the export; counted as undone")
    );
    assert_eq!(steps[1].state, SagaStepState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_saga_on_an_expunged_target_finishes_compensating() {
    let db = TestDb::new().await;
    let host_alive = Arc::new(AtomicBool::new(true));
    let alive = Arc::clone(&host_alive);
    let saga = SagaDefinition::new("test.attach")
        .step(
            Step::new("attach", |_ctx: StepContext| async { Ok(1) }).undo(
                |_ctx: StepContext| async { Err(JobError::permanent("host does not answer")) },
            ),
        )
        .step(Step::new("boot", move |_ctx: StepContext| {
            let alive = Arc::clone(&alive);
            async move {
                if alive.load(Ordering::SeqCst) {
                    Err::<(), _>(JobError::permanent("boot failed"))
                } else {
                    Ok(())
                }
            }
        }));
    let running = saga_pool(&db, saga);
    let id = db
        .client
        .start_saga_on("sled-4", "test.attach", "attach-1", &json!({}))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the saga to get stuck", || async {
        (saga_get(&db.pool, id).await.unwrap().state == SagaState::Stuck).then_some(())
    })
    .await;
    host_alive.store(false, Ordering::SeqCst);
    db.client
        .expunge_target("sled-4", Some("sled replaced"))
        .await
        .unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Compensated);
    let steps = saga_steps(&db.pool, id).await.unwrap();
    assert_eq!(steps[0].state, SagaStepState::Undone);
    assert_eq!(
        steps[0].error.as_deref(),
        Some("target sled-4 expunged: sled replaced; counted as undone")
    );
}

/// Expunging a target with 1,000 queued jobs and 20 running on two real worker processes:
/// everything on it fails at once, the running handlers are stopped (their slots free up),
/// nothing else is touched, and the workers go on working.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expunging_a_target_reaps_1000_queued_and_20_running_jobs_on_two_replicas() {
    let db = TestDb::new().await;
    let doomed: Vec<NewJob> = (0..1020)
        .map(|_| NewJob::new("sleep", json!({"ms": 120_000})).target("pantry-1"))
        .collect();
    db.client.enqueue_many(doomed).await.unwrap();
    let a = Replica::start_queues(&db, "a", "default=10");
    let b = Replica::start_queues(&db, "b", "default=10");
    eventually(Duration::from_secs(20), "20 jobs running", || async {
        (state_counts(&db.pool).await.get("running") == Some(&20)).then_some(())
    })
    .await;
    let running: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM bosun.jobs WHERE state = 'running' ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let bystanders: Vec<NewJob> = (0..50)
        .map(|_| NewJob::new("echo", json!({})).target("pantry-2"))
        .collect();
    db.client.enqueue_many(bystanders).await.unwrap();

    let expunged = std::process::Command::new(bosun_bin())
        .args(["expunge", "pantry-1", "--reason", "sled 12 pulled"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(expunged.status.success());
    let said = String::from_utf8_lossy(&expunged.stdout);
    assert!(said.contains("expunged target pantry-1"), "{said}");

    eventually(
        Duration::from_secs(20),
        "every job on pantry-1 to fail",
        || async {
            let live = scalar(
                &db.pool,
                "SELECT count(*) FROM bosun.jobs WHERE target = 'pantry-1' AND state <> 'failed'",
            )
            .await;
            (live == 0).then_some(())
        },
    )
    .await;
    let reaped: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT id, state::text, errors->-1 FROM bosun.jobs WHERE target = 'pantry-1'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(reaped.len(), 1020);
    for (_, state, entry) in &reaped {
        assert_eq!(state, "failed");
        assert_eq!(entry["kind"], "target_expunged");
        assert_eq!(entry["error"], "target pantry-1 expunged: sled 12 pulled");
    }
    // The running ones name the worker they ran on. (Slots freed by the first batch may take
    // a few more jobs of the target before the next batch reaps them; those name one too.)
    for (id, _, entry) in reaped.iter().filter(|(id, _, _)| running.contains(id)) {
        assert!(entry["worker"].is_string(), "job {id} was running: {entry}");
    }

    // The stopped handlers freed their slots: the bystanders and new work run at once, long
    // before a 120 s sleep would have ended.
    db.client
        .enqueue_many((0..50).map(|_| NewJob::new("echo", json!({}))))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the other work to complete",
        || async {
            let counts = state_counts(&db.pool).await;
            (counts.get("completed") == Some(&100)).then_some(())
        },
    )
    .await;
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT reaped_jobs FROM bosun.targets WHERE name = 'pantry-1'"
        )
        .await,
        1020
    );
    a.stop().await;
    b.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// The reconciler example (`examples/export_reconciler.rs`) runs its scenario to the end:
/// exports created, surplus ones deleted, and those on an expunged pantry recreated on a live
/// one, with one saga per record and nothing left running or stuck.
#[tokio::test]
async fn the_export_reconciler_example_recreates_exports_of_an_expunged_pantry() {
    let db = TestDb::new().await;
    let output = std::process::Command::new(example_bin("export_reconciler"))
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains("pantry-a expunged; its exports recreated on pantry-b"),
        "{said}"
    );

    let live: Vec<(i32, String)> = sqlx::query_as(
        "SELECT volume_id, pantry FROM export_demo.exports WHERE state = 'live' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        live,
        (1..=4)
            .map(|v| (v, "pantry-b".to_string()))
            .collect::<Vec<_>>()
    );
    let sagas: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT kind, state::text, count(*) FROM bosun.sagas GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let records = scalar(&db.pool, "SELECT count(*) FROM export_demo.exports").await;
    assert_eq!(records, 8, "6 exports, then 2 recreated after the expunge");
    assert_eq!(
        sagas,
        [
            ("export.create".to_string(), "succeeded".to_string(), 8),
            ("export.delete".to_string(), "succeeded".to_string(), 2),
        ],
        "one create saga per record, one delete per surplus record, none stuck"
    );
}
