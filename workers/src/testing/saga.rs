//! Test helpers for users' sagas (feature `testing`): fail each step in turn and check the
//! saga unwinds; run each step and each undo twice and check nothing changes. Each runs the
//! saga on a real worker pool against the database `client` points at (use a fresh one), and
//! panics with a message naming the step when a check fails.
//!
//! ```no_run
//! # async fn check(client: bosun_queue::Client, saga: bosun_workers::SagaDefinition) {
//! use bosun_workers::testing::saga as testing;
//! let inputs = serde_json::json!({"droplet": 1});
//! testing::assert_fail_each_step_unwinds(&client, &saga, &inputs).await;
//! testing::assert_repeat_each_step_is_idempotent(&client, &saga, &inputs).await;
//! # }
//! ```

use std::{sync::Arc, time::Duration};

use bosun_queue::{
    saga::{saga_get, saga_steps},
    Client, Saga, SagaState, SagaStepState,
};
use uuid::Uuid;

use crate::{JobError, SagaDefinition, Step, WorkerPool};

/// How long one saga may take in these helpers before they give up.
pub const SAGA_DEADLINE: Duration = Duration::from_secs(60);

/// For every step i: run the saga with step i failing permanently, and check that it ends
/// `compensated`, step i `failed`, every earlier step `undone`, every later one `pending`.
///
/// # Panics
/// When a check fails, naming the step.
pub async fn assert_fail_each_step_unwinds(
    client: &Client,
    definition: &SagaDefinition,
    inputs: &serde_json::Value,
) {
    for failing in 0..definition.steps.len() {
        let mut injected = definition.clone();
        let name = injected.steps[failing].name.clone();
        let message = format!("injected failure at step {name}");
        let original = injected.steps[failing].clone();
        injected.steps[failing] = Step {
            run: Arc::new(move |_ctx| {
                let message = message.clone();
                Box::pin(async move { Err(JobError::permanent(message)) })
            }),
            ..original
        };
        let (saga, steps) = run(client, injected, inputs, &format!("fail-{failing}")).await;
        assert_eq!(
            saga.state,
            SagaState::Compensated,
            "with step {name:?} failing the saga should compensate; error: {:?}",
            saga.error
        );
        for (i, step) in steps.iter().enumerate() {
            let expected = match i.cmp(&failing) {
                std::cmp::Ordering::Less => SagaStepState::Undone,
                std::cmp::Ordering::Equal => SagaStepState::Failed,
                std::cmp::Ordering::Greater => SagaStepState::Pending,
            };
            assert_eq!(
                step.state, expected,
                "with step {name:?} failing, step {:?} should be {expected}",
                step.name
            );
        }
    }
}

/// Run the saga once as defined, then again with every step's run executed twice in a row,
/// and (with the last step failing) every undo executed twice: the saga must end the same way
/// and every step in the same state, as an idempotent step guarantees.
///
/// # Panics
/// When the repeated run ends differently, naming the step.
pub async fn assert_repeat_each_step_is_idempotent(
    client: &Client,
    definition: &SagaDefinition,
    inputs: &serde_json::Value,
) {
    let (baseline, baseline_steps) = run(client, definition.clone(), inputs, "once").await;
    let (repeated, repeated_steps) = run(client, twice(definition, false), inputs, "twice").await;
    assert_eq!(
        repeated.state, baseline.state,
        "running each step twice changed the outcome: {:?}",
        repeated.error
    );
    for (a, b) in baseline_steps.iter().zip(&repeated_steps) {
        assert_eq!(
            a.state, b.state,
            "running step {:?} twice changed its state",
            a.name
        );
    }

    // Undos: fail the last step, so every earlier undo runs (twice).
    let (unwound, steps) = run(client, twice(definition, true), inputs, "undo-twice").await;
    assert_eq!(
        unwound.state,
        SagaState::Compensated,
        "running each undo twice did not compensate cleanly: {:?}",
        unwound.error
    );
    for step in &steps[..steps.len() - 1] {
        assert_eq!(
            step.state,
            SagaStepState::Undone,
            "step {:?} should be undone after its undo ran twice",
            step.name
        );
    }
}

/// A copy of `definition` whose runs and undos each execute twice; with `fail_last`, the last
/// step fails permanently after its (double) run.
fn twice(definition: &SagaDefinition, fail_last: bool) -> SagaDefinition {
    let mut doubled = definition.clone();
    let last = doubled.steps.len() - 1;
    for (i, step) in doubled.steps.iter_mut().enumerate() {
        let run = Arc::clone(&step.run);
        let fail = fail_last && i == last;
        step.run = Arc::new(move |ctx| {
            let run = Arc::clone(&run);
            Box::pin(async move {
                run(ctx.clone()).await?;
                let output = run(ctx).await?;
                if fail {
                    return Err(JobError::permanent("injected failure after the last step"));
                }
                Ok(output)
            })
        });
        if let Some(undo) = step.undo.clone() {
            step.undo = Some(Arc::new(move |ctx| {
                let undo = Arc::clone(&undo);
                Box::pin(async move {
                    undo(ctx.clone()).await?;
                    undo(ctx).await
                })
            }));
        }
    }
    doubled
}

/// Start one saga of `definition` and work it on a pool of its own until it finishes.
async fn run(
    client: &Client,
    definition: SagaDefinition,
    inputs: &serde_json::Value,
    label: &str,
) -> (Saga, Vec<bosun_queue::SagaStep>) {
    let kind = definition.kind.clone();
    let pool = WorkerPool::builder(client.clone())
        .saga(definition)
        .queue("default", 4)
        .poll_interval(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
        .build()
        .expect("a valid saga definition");
    let key = format!("bosun-testing-{label}-{}", Uuid::new_v4());
    let id = client
        .start_saga(&kind, &key, inputs)
        .await
        .expect("starting the saga");
    let watcher = client.clone();
    let saga = Arc::new(std::sync::Mutex::new(None));
    let seen = Arc::clone(&saga);
    let deadline = tokio::time::Instant::now() + SAGA_DEADLINE;
    pool.run_until(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(s) = saga_get(watcher.db(), id).await {
                let done = matches!(
                    s.state,
                    SagaState::Succeeded | SagaState::Compensated | SagaState::Stuck
                );
                if done || tokio::time::Instant::now() > deadline {
                    *seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s);
                    return;
                }
            }
        }
    })
    .await
    .expect("the pool stops cleanly");
    let saga = saga
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .expect("the saga was read");
    let steps = saga_steps(client.db(), id)
        .await
        .expect("reading the ledger");
    (saga, steps)
}
