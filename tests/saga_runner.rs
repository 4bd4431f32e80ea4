//! Sagas run by a real worker pool: every step runs and records its output, a failing step
//! unwinds everything before it, a failing undo leaves the saga stuck until retried, a
//! cancel stops at the step boundary and reaches a running step, and the `testing::saga`
//! helpers catch what they promise to.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use bosun_cli::kinds::provision_saga;
use bosun_queue::{
    saga::{saga_get, saga_steps},
    SagaState, SagaStepState,
};
use bosun_tests::{eventually, settled_listing, RunningPool, TestDb};
use bosun_workers::{
    testing::saga as testing, JobError, SagaDefinition, Step, StepContext, WorkerPool,
};
use serde_json::json;
use uuid::Uuid;

fn pool(db: &TestDb, saga: SagaDefinition) -> RunningPool {
    pool_polling(db, saga, Duration::from_millis(50))
}

/// A worker of `saga` on the default queue that polls every `poll`.
fn pool_polling(db: &TestDb, saga: SagaDefinition, poll: Duration) -> RunningPool {
    RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .saga(saga)
            .queue("default", 4)
            .poll_interval(poll)
            .build()
            .unwrap(),
    )
}

async fn finished(db: &TestDb, id: Uuid) -> bosun_queue::Saga {
    eventually(Duration::from_secs(20), "the saga to finish", || async {
        let saga = saga_get(&db.pool, id).await.unwrap();
        matches!(
            saga.state,
            SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
        )
        .then_some(saga)
    })
    .await
}

async fn step_states(db: &TestDb, id: Uuid) -> Vec<SagaStepState> {
    saga_steps(&db.pool, id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.state)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saga_runs_every_step_and_records_outputs() {
    let db = TestDb::new().await;
    let running = pool(&db, provision_saga());
    let key = format!("ok-{}", Uuid::new_v4());
    let id = db
        .client
        .start_saga("example.provision", &key, &json!({}))
        .await
        .unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Succeeded);
    let steps = saga_steps(&db.pool, id).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["reserve", "create", "attach"]
    );
    assert!(steps
        .iter()
        .all(|s| s.state == SagaStepState::Succeeded && s.attempts == 1));
    assert_eq!(
        steps[1].output,
        Some(json!({"resource": format!("{key}.create.vm"), "adopted": false}))
    );
    assert_eq!(
        settled_listing(&db.pool, &key).await,
        ["attach.volume", "create.vm", "reserve.slot"].map(|r| format!("{key}.{r}")),
        "one resource per step"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_each_step_in_turn_unwinds_everything_before_it() {
    let db = TestDb::new().await;
    let running = pool(&db, provision_saga());
    for (at, fail_at) in ["reserve", "create", "attach"].into_iter().enumerate() {
        let key = format!("fail-{fail_at}-{}", Uuid::new_v4());
        let id = db
            .client
            .start_saga("example.provision", &key, &json!({ "fail_at": fail_at }))
            .await
            .unwrap();
        let saga = finished(&db, id).await;
        assert_eq!(saga.state, SagaState::Compensated, "fail at {fail_at}");
        assert!(saga.error.unwrap().contains("failed on purpose"));
        let states = step_states(&db, id).await;
        for (i, state) in states.iter().enumerate() {
            let expected = match i.cmp(&at) {
                std::cmp::Ordering::Less => SagaStepState::Undone,
                std::cmp::Ordering::Equal => SagaStepState::Failed,
                std::cmp::Ordering::Greater => SagaStepState::Pending,
            };
            assert_eq!(*state, expected, "fail at {fail_at}: step {i}");
        }
        assert_eq!(
            settled_listing(&db.pool, &key).await,
            Vec::<String>::new(),
            "fail at {fail_at}: nothing left"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_undo_leaves_the_saga_stuck_and_retry_saga_finishes_it() {
    let db = TestDb::new().await;
    let undo_works = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&undo_works);
    let saga = SagaDefinition::new("test.stuck")
        .step(
            Step::new("lock", |_ctx: StepContext| async { Ok(json!({})) }).undo(
                move |_ctx: StepContext| {
                    let flag = Arc::clone(&flag);
                    async move {
                        if flag.load(Ordering::SeqCst) {
                            Ok(())
                        } else {
                            Err(JobError::permanent("lock service unreachable"))
                        }
                    }
                },
            ),
        )
        .step(Step::new("boom", |_ctx: StepContext| async {
            Err::<(), _>(JobError::permanent("boom"))
        }));
    let running = pool(&db, saga);
    let id = db
        .client
        .start_saga("test.stuck", "stuck-1", &json!({}))
        .await
        .unwrap();
    let saga = finished(&db, id).await;
    assert_eq!(saga.state, SagaState::Stuck);
    assert!(saga.error.unwrap().contains("lock service unreachable"));
    assert_eq!(
        step_states(&db, id).await,
        [SagaStepState::UndoFailed, SagaStepState::Failed]
    );
    let listed = bosun_queue::saga::saga_list(&db.pool, Some(SagaState::Stuck), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    undo_works.store(true, Ordering::SeqCst);
    bosun_queue::saga::saga_retry(&db.pool, id).await.unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Compensated);
    assert_eq!(
        step_states(&db, id).await,
        [SagaStepState::Undone, SagaStepState::Failed]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_saga_stops_at_the_step_boundary_and_compensates() {
    let db = TestDb::new().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = Arc::clone(&release);
    let saga = SagaDefinition::new("test.cancel")
        .step(
            Step::new("first", |_ctx: StepContext| async { Ok(1) })
                .undo(|_ctx: StepContext| async { Ok(()) }),
        )
        .step(
            Step::new("slow", move |_ctx: StepContext| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    Ok(2)
                }
            })
            .undo(|_ctx: StepContext| async { Ok(()) }),
        )
        .step(Step::new("never", |_ctx: StepContext| async { Ok(3) }));
    let running = pool(&db, saga);
    let id = db
        .client
        .start_saga("test.cancel", "cancel-1", &json!({}))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the slow step to run", || async {
        let states = step_states(&db, id).await;
        (states.get(1) == Some(&SagaStepState::Running)).then_some(())
    })
    .await;
    bosun_queue::saga::saga_cancel(&db.pool, id).await.unwrap();
    release.notify_one();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Compensated);
    assert!(saga.cancel_requested);
    assert_eq!(
        step_states(&db, id).await,
        [
            SagaStepState::Undone,
            SagaStepState::Undone,
            SagaStepState::Pending
        ],
        "the running step finished, then both were undone; the next never ran"
    );
    let cancelled_again = bosun_queue::saga::saga_cancel(&db.pool, id).await;
    assert!(matches!(
        cancelled_again,
        Err(bosun_queue::Error::WrongState(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_step_is_told_when_its_saga_is_cancelled() {
    let db = TestDb::new().await;
    let saga = SagaDefinition::new("test.cancel_running")
        .step(
            Step::new("prepare", |_ctx: StepContext| async { Ok(1) })
                .undo(|_ctx: StepContext| async { Ok(()) }),
        )
        .step(Step::new("long_export", |ctx: StepContext| async move {
            tokio::select! {
                () = ctx.cancelled() => Err::<(), _>(JobError::cancel("export stopped early")),
                () = tokio::time::sleep(Duration::from_secs(30)) => Ok(()),
            }
        }));
    let running = pool(&db, saga);
    let id = db
        .client
        .start_saga("test.cancel_running", "cancel-running-1", &json!({}))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the long step to run", || async {
        let states = step_states(&db, id).await;
        (states.get(1) == Some(&SagaStepState::Running)).then_some(())
    })
    .await;
    let cancelled_at = std::time::Instant::now();
    bosun_queue::saga::saga_cancel(&db.pool, id).await.unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "the step stopped early instead of running its 30 s"
    );
    assert_eq!(saga.state, SagaState::Compensated);
    let steps = saga_steps(&db.pool, id).await.unwrap();
    assert_eq!(steps[0].state, SagaStepState::Undone);
    assert_eq!(steps[1].state, SagaStepState::Failed);
    assert_eq!(steps[1].error.as_deref(), Some("export stopped early"));
}

#[tokio::test]
async fn start_saga_from_rust_is_idempotent_and_follows_the_transaction() {
    let db = TestDb::new().await;
    let inputs = json!({"fail_at": null});
    let a = db
        .client
        .start_saga("example.provision", "same", &inputs)
        .await
        .unwrap();
    let b = db
        .client
        .start_saga("example.provision", "same", &inputs)
        .await
        .unwrap();
    assert_eq!(a, b);
    let other = db
        .client
        .start_saga("example.provision", "same", &json!({"fail_at": "create"}))
        .await;
    assert!(
        matches!(&other, Err(bosun_queue::Error::Conflict(m)) if m.contains("already names saga")),
        "{other:?}"
    );

    let mut tx = db.pool.begin().await.unwrap();
    db.client
        .start_saga_tx(&mut tx, "example.provision", "rolled-back", &inputs)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bosun.sagas WHERE key = 'rolled-back'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(count, 0);
}

/// Saga transitions enqueue the next step without notifying (a notifying commit waits for
/// every other); the worker that ran the step claims the next one itself. With polling
/// out of the picture (a minute), a saga still runs forward and unwinds at once, and the
/// only wake-up sent is the one of `start_saga`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_worker_claims_the_steps_its_transitions_enqueue_without_notifications() {
    let db = TestDb::new().await;
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen("bosun_jobs").await.unwrap();
    let saga = ["one", "two"]
        .into_iter()
        .fold(SagaDefinition::new("test.quiet"), |saga, name| {
            saga.step(
                Step::new(name, |_ctx: StepContext| async { Ok(()) })
                    .undo(|_ctx: StepContext| async { Ok(()) }),
            )
        })
        .step(Step::new("three", |_ctx: StepContext| async {
            Err::<(), _>(JobError::permanent("three fails"))
        }));
    let running = pool_polling(&db, saga, Duration::from_secs(60));
    // An idle worker marks itself as waiting, so that inserts into its queue notify.
    eventually(Duration::from_secs(10), "the worker to wait", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM bosun.waiting_workers WHERE queue = 'default')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let id = db
        .client
        .start_saga("test.quiet", "quiet-1", &json!({}))
        .await
        .unwrap();
    let saga = finished(&db, id).await;
    running.stop().await;
    assert_eq!(saga.state, SagaState::Compensated);
    assert_eq!(
        step_states(&db, id).await,
        [
            SagaStepState::Undone,
            SagaStepState::Undone,
            SagaStepState::Failed
        ]
    );
    // Three steps and two undos, each claimed at once rather than at the next poll.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let mut wake_ups = Vec::new();
    while let Ok(Ok(Some(n))) =
        tokio::time::timeout(Duration::from_millis(500), listener.try_recv()).await
    {
        wake_ups.push(n.payload().to_string());
    }
    assert_eq!(wake_ups, ["default"], "only start_saga woke the workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_built_in_saga_unwinds_from_every_step_and_tolerates_repeats() {
    let db = TestDb::new().await;
    let inputs = json!({});
    testing::assert_fail_each_step_unwinds(&db.client, &provision_saga(), &inputs).await;
    testing::assert_repeat_each_step_is_idempotent(&db.client, &provision_saga(), &inputs).await;
}

/// A step that is not idempotent: it fails when it runs a second time.
fn counting_saga() -> SagaDefinition {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    SagaDefinition::new("test.not_idempotent").step(Step::new(
        "charge",
        move |_ctx: StepContext| {
            let runs = std::sync::Arc::clone(&runs);
            async move {
                if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 1 {
                    Err(JobError::permanent("charged twice"))
                } else {
                    Ok(())
                }
            }
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "running each step twice changed the outcome")]
async fn the_repeat_helper_catches_a_step_that_is_not_idempotent() {
    let db = TestDb::new().await;
    testing::assert_repeat_each_step_is_idempotent(&db.client, &counting_saga(), &json!({})).await;
}
