//! Sagas under crashes and lost targets, with real `bosun worker` processes running the
//! built-in saga `example.provision` (reserve, create, attach) against its simulated cloud.
//!
//! The test asks `bosun-sim` to hold a step at an exact point (after its claim, after its side
//! effect, in the middle of its undo) until it releases it, so it can kill -9 or pause the
//! worker right there; the saga's inputs carry nothing for this. Every test then checks the saga, every step of its ledger, and
//! what the cloud holds: its listing (which shows resources a little after they are made)
//! and its call log (how often each resource was really created and deleted).

use std::{process::Command, time::Duration};

use bosun_queue::{
    saga::{saga_get, saga_steps},
    Saga, SagaState, SagaStep, SagaStepState,
};
use bosun_sim::{self as cloud, HoldPoint};
use bosun_tests::{bosun_bin, eventually, settled_listing, Replica, TestDb};
use serde_json::{json, Value};
use uuid::Uuid;

const STEPS: [(&str, &str); 3] = [("reserve", "slot"), ("create", "vm"), ("attach", "volume")];

/// Start the built-in saga on target `pantry-1`.
async fn start_on_pantry(db: &TestDb, key: &str, inputs: Value) -> Uuid {
    db.client
        .start_saga_on("pantry-1", "example.provision", key, &inputs)
        .await
        .unwrap()
}

async fn expunge_pantry(db: &TestDb) {
    db.client
        .expunge_target("pantry-1", Some("sled 12 pulled"))
        .await
        .unwrap();
}

async fn start(db: &TestDb, key: &str, inputs: Value) -> Uuid {
    db.client
        .start_saga("example.provision", key, &inputs)
        .await
        .unwrap()
}

/// Ask for `step` of saga `key` to be held at `point` on its first attempt; written before the
/// saga starts, so the step cannot get there first.
async fn hold(db: &TestDb, key: &str, step: &str, point: HoldPoint) {
    cloud::request_hold(&db.pool, key, step, point, 1)
        .await
        .unwrap();
}

/// Wait until `step` of saga `key` is held at `point`, and check the process holding it.
async fn wait_held(db: &TestDb, key: &str, step: &str, point: HoldPoint, by: &Replica) {
    let held = eventually(
        Duration::from_secs(20),
        &format!("{step} to be held at {point:?}"),
        || async { cloud::held(&db.pool, key, step, point).await.unwrap() },
    )
    .await;
    assert_eq!(held.pid, by.pid(), "{step} is held by {}", by.id);
}

async fn finished(db: &TestDb, id: Uuid) -> Saga {
    eventually(Duration::from_secs(30), "the saga to finish", || async {
        let saga = saga_get(&db.pool, id).await.unwrap();
        matches!(
            saga.state,
            SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
        )
        .then_some(saga)
    })
    .await
}

async fn ledger(db: &TestDb, id: Uuid) -> Vec<SagaStep> {
    saga_steps(&db.pool, id).await.unwrap()
}

async fn step(db: &TestDb, id: Uuid, name: &str) -> SagaStep {
    ledger(db, id)
        .await
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

/// The calls the cloud saw on the resource of `step` of saga `key`.
async fn calls(db: &TestDb, key: &str, step: &str) -> Vec<String> {
    let resource = STEPS.iter().find(|(name, _)| *name == step).unwrap().1;
    cloud::calls(&db.pool, &format!("{key}.{step}.{resource}"))
        .await
        .unwrap()
}

/// Every step's resource, as the cloud lists them once listings caught up.
fn all_resources(key: &str) -> Vec<String> {
    let mut names: Vec<String> = STEPS
        .iter()
        .map(|(step, resource)| format!("{key}.{step}.{resource}"))
        .collect();
    names.sort();
    names
}

/// A succeeded saga: every step succeeded with `attempts`, and the cloud lists exactly one
/// resource per step.
async fn assert_succeeded_with_one_resource_per_step(
    db: &TestDb,
    id: Uuid,
    key: &str,
    attempts: [i32; 3],
) {
    let saga = finished(db, id).await;
    assert_eq!(saga.state, SagaState::Succeeded, "error: {:?}", saga.error);
    let steps = ledger(db, id).await;
    for (s, expected) in steps.iter().zip(attempts) {
        assert_eq!(s.state, SagaStepState::Succeeded, "{}", s.name);
        assert_eq!(s.attempts, expected, "attempts of {}", s.name);
        assert_eq!(s.undo_attempts, 0, "{} was never undone", s.name);
    }
    assert_eq!(settled_listing(&db.pool, key).await, all_resources(key));
}

/// A replica running `default` (the saga's queue) with 4 slots, logging at `level`.
fn replica(db: &TestDb, id: &str, level: &str) -> Replica {
    let mut command = Command::new(bosun_bin());
    command.env("RUST_LOG", level);
    Replica::spawn(command, &db.url, &db.name, id, "default=4")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_after_a_claim_runs_the_step_once_on_restart() {
    let db = TestDb::new().await;
    let key = "after-claim";
    hold(&db, key, "create", HoldPoint::Before).await;
    let id = start(&db, key, json!({})).await;
    let first = replica(&db, "r1", "warn");
    wait_held(&db, key, "create", HoldPoint::Before, &first).await;
    assert!(calls(&db, key, "create").await.is_empty());
    assert_eq!(step(&db, id, "create").await.state, SagaStepState::Running);
    first.kill();

    // Restarted under the same id, the worker gives back what its killed self held.
    let again = replica(&db, "r1", "warn");
    assert_succeeded_with_one_resource_per_step(&db, id, key, [1, 2, 1]).await;
    assert_eq!(calls(&db, key, "create").await, ["create"]);
    assert_eq!(
        step(&db, id, "create").await.output,
        Some(json!({"resource": format!("{key}.create.vm"), "adopted": false}))
    );
    again.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_after_the_side_effect_adopts_the_resource_instead_of_making_another() {
    let db = TestDb::new().await;
    let key = "after-side-effect";
    hold(&db, key, "create", HoldPoint::After).await;
    let id = start(&db, key, json!({})).await;
    let first = replica(&db, "r1", "warn");
    wait_held(&db, key, "create", HoldPoint::After, &first).await;
    assert_eq!(calls(&db, key, "create").await, ["create"]);
    assert_eq!(step(&db, id, "create").await.state, SagaStepState::Running);
    first.kill();

    // Another replica rescues the step once the killed one's lease ran out.
    let other = replica(&db, "r2", "warn");
    assert_succeeded_with_one_resource_per_step(&db, id, key, [1, 2, 1]).await;
    assert_eq!(calls(&db, key, "create").await, ["create", "exists"]);
    assert_eq!(
        step(&db, id, "create").await.output,
        Some(json!({"resource": format!("{key}.create.vm"), "adopted": true}))
    );
    other.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_between_a_step_and_the_next_neither_repeats_nor_loses_a_step() {
    let db = TestDb::new().await;
    let key = "between-steps";
    hold(&db, key, "create", HoldPoint::After).await;
    let id = start(&db, key, json!({})).await;
    let first = replica(&db, "r1", "warn");
    wait_held(&db, key, "create", HoldPoint::After, &first).await;
    // Pausing the queue lets `create` record its success while `attach` cannot be claimed:
    // the worker dies with the next step enqueued and nobody on it.
    db.client.pause_queue("default").await.unwrap();
    cloud::release(&db.pool, key, "create", HoldPoint::After)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "create to succeed with attach enqueued",
        || async {
            let steps = ledger(&db, id).await;
            let attach_job: Option<String> =
                sqlx::query_scalar("SELECT state::text FROM bosun.jobs WHERE unique_key = $1")
                    .bind(format!("saga:{id}:2:do"))
                    .fetch_optional(&db.pool)
                    .await
                    .unwrap();
            (steps[1].state == SagaStepState::Succeeded
                && steps[2].state == SagaStepState::Pending
                && attach_job.as_deref() == Some("available"))
            .then_some(())
        },
    )
    .await;
    first.kill();
    assert!(calls(&db, key, "attach").await.is_empty());

    db.client.resume_queue("default").await.unwrap();
    let other = replica(&db, "r2", "warn");
    assert_succeeded_with_one_resource_per_step(&db, id, key, [1, 1, 1]).await;
    for (name, _) in STEPS {
        assert_eq!(calls(&db, key, name).await, ["create"], "{name} made once");
    }
    other.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_in_the_middle_of_an_undo_finishes_compensating_with_nothing_left() {
    let db = TestDb::new().await;
    let key = "mid-undo";
    hold(&db, key, "create", HoldPoint::UndoAfter).await;
    let id = start(&db, key, json!({"fail_at": "attach"})).await;
    let first = replica(&db, "r1", "warn");
    wait_held(&db, key, "create", HoldPoint::UndoAfter, &first).await;
    assert_eq!(calls(&db, key, "create").await, ["create", "delete"]);
    assert_eq!(step(&db, id, "create").await.state, SagaStepState::Undoing);
    assert_eq!(
        saga_get(&db.pool, id).await.unwrap().state,
        SagaState::Compensating
    );
    first.kill();

    let again = replica(&db, "r1", "warn");
    let saga = finished(&db, id).await;
    assert_eq!(
        saga.state,
        SagaState::Compensated,
        "error: {:?}",
        saga.error
    );
    let steps = ledger(&db, id).await;
    let states: Vec<_> = steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            SagaStepState::Undone,
            SagaStepState::Undone,
            SagaStepState::Failed
        ]
    );
    assert_eq!(
        steps.iter().map(|s| s.undo_attempts).collect::<Vec<_>>(),
        [1, 2, 0]
    );
    // The repeated undo found its resource gone, which is fine; reserve was undone after it.
    assert_eq!(
        calls(&db, key, "create").await,
        ["create", "delete", "missing"]
    );
    assert_eq!(calls(&db, key, "reserve").await, ["create", "delete"]);
    assert!(calls(&db, key, "attach").await.is_empty());
    assert!(
        steps[0].undone_at >= steps[1].undone_at,
        "undone in reverse"
    );
    assert_eq!(settled_listing(&db.pool, key).await, Vec::<String>::new());
    again.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_paused_past_its_lease_cannot_write_the_ledger_after_a_takeover() {
    let db = TestDb::new().await;
    let key = "zombie";
    hold(&db, key, "create", HoldPoint::After).await;
    let id = start(&db, key, json!({})).await;
    let zombie = replica(&db, "zombie", "warn,bosun_workers=info");
    wait_held(&db, key, "create", HoldPoint::After, &zombie).await;
    zombie.signal("-STOP");

    let taker = replica(&db, "taker", "warn");
    assert_succeeded_with_one_resource_per_step(&db, id, key, [1, 2, 1]).await;
    // The zombie wakes up, is let go on with its step done, and tries to record it.
    zombie.signal("-CONT");
    release_and_check_refused(&db, id, key, "create", HoldPoint::After, &zombie).await;
    assert_eq!(calls(&db, key, "create").await, ["create", "exists"]);
    assert_eq!(settled_listing(&db.pool, key).await, all_resources(key));
    zombie.stop().await;
    taker.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// Release a held step of a worker that lost it, and check that its attempt to record the
/// step is refused and changes nothing.
async fn release_and_check_refused(
    db: &TestDb,
    id: Uuid,
    key: &str,
    step: &str,
    point: HoldPoint,
    by: &Replica,
) {
    let before = snapshot(db, id).await;
    cloud::release(&db.pool, key, step, point).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "the held step to go on",
        || async {
            let held = cloud::held(&db.pool, key, step, point).await;
            held.unwrap().unwrap().resumed.then_some(())
        },
    )
    .await;
    let refused = "attempt not recorded: the job was cancelled or taken over";
    for _ in 0..100 {
        if by.log().contains(refused) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(snapshot(db, id).await, before, "the ledger is unchanged");
    assert!(
        by.log().contains(refused),
        "{} tried to record its step",
        by.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expunging_the_target_in_the_middle_of_a_step_fails_it_and_unwinds_the_saga() {
    let db = TestDb::new().await;
    let key = "expunged-mid-step";
    hold(&db, key, "create", HoldPoint::After).await;
    let id = start_on_pantry(&db, key, json!({})).await;
    let worker = replica(&db, "r1", "warn,bosun_workers=info");
    wait_held(&db, key, "create", HoldPoint::After, &worker).await;
    expunge_pantry(&db).await;

    let saga = finished(&db, id).await;
    assert_eq!(saga.state, SagaState::Compensated);
    assert_eq!(
        saga.error.as_deref(),
        Some("step 1 failed: target pantry-1 expunged: sled 12 pulled")
    );
    let steps = ledger(&db, id).await;
    let states: Vec<_> = steps
        .iter()
        .map(|s| (s.state, s.error.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            (
                SagaStepState::Undone,
                Some("target pantry-1 expunged: sled 12 pulled; counted as undone")
            ),
            (
                SagaStepState::Failed,
                Some("target pantry-1 expunged: sled 12 pulled")
            ),
            (SagaStepState::Pending, None),
        ]
    );
    // Nothing was deleted on the expunged target: what was made there went with it.
    assert_eq!(calls(&db, key, "reserve").await, ["create"]);
    assert!(calls(&db, key, "attach").await.is_empty());
    // The runner that was in the middle of `create` wakes up and is refused.
    release_and_check_refused(&db, id, key, "create", HoldPoint::After, &worker).await;
    worker.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expunging_the_target_in_the_middle_of_an_undo_counts_the_undos_as_done() {
    let db = TestDb::new().await;
    let key = "expunged-mid-undo";
    hold(&db, key, "create", HoldPoint::UndoBefore).await;
    let id = start_on_pantry(&db, key, json!({"fail_at": "attach"})).await;
    let worker = replica(&db, "r1", "warn,bosun_workers=info");
    wait_held(&db, key, "create", HoldPoint::UndoBefore, &worker).await;
    assert_eq!(
        saga_get(&db.pool, id).await.unwrap().state,
        SagaState::Compensating
    );
    expunge_pantry(&db).await;

    let saga = finished(&db, id).await;
    assert_eq!(saga.state, SagaState::Compensated);
    let steps = ledger(&db, id).await;
    let gone = Some("target pantry-1 expunged: sled 12 pulled; counted as undone");
    let states: Vec<_> = steps
        .iter()
        .map(|s| (s.state, s.error.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            (SagaStepState::Undone, gone),
            (SagaStepState::Undone, gone),
            (
                SagaStepState::Failed,
                Some("attach failed on purpose (fail_at)")
            ),
        ]
    );
    assert_eq!(calls(&db, key, "reserve").await, ["create"]);
    assert_eq!(calls(&db, key, "create").await, ["create"]);
    release_and_check_refused(&db, id, key, "create", HoldPoint::UndoBefore, &worker).await;
    worker.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// The saga row, its steps and its step jobs, as one comparable value.
async fn snapshot(db: &TestDb, id: Uuid) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
             'saga', (SELECT to_jsonb(s) FROM bosun.sagas s WHERE s.id = $1),
             'steps', (SELECT jsonb_agg(to_jsonb(t) ORDER BY t.idx)
                       FROM bosun.saga_steps t WHERE t.saga_id = $1),
             'jobs', (SELECT jsonb_agg(to_jsonb(j) ORDER BY j.id)
                      FROM bosun.jobs j WHERE j.args->>'saga_id' = $1::text))",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}
