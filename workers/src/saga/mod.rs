//! Sagas: multi-step operations on external systems, each step an idempotent job.
//!
//! A [`SagaDefinition`] is an ordered list of [`Step`]s, each with a `run` and optionally an
//! `undo`. Register it on a [`crate::WorkerPool`] with `.saga(definition)`; start sagas with
//! `Client::start_saga` or `SELECT bosun.start_saga(kind, key, inputs)`.
//!
//! ```text
//!  start_saga ──► step 0 job ──ok──► step 1 job ──ok──► … ──ok──► succeeded
//!                                       │ fails for good (or the saga was cancelled)
//!                                       ▼
//!                    undo of the last succeeded step ──► … ──► undo of step 0 ──► compensated
//!                                       │ an undo gives up
//!                                       ▼
//!                                     stuck (bosun.retry_saga resumes it)
//! ```
//!
//! Each step runs as a job of kind `saga:<kind>` with the unique key
//! `saga:<saga id>:<step>:<do|undo>`, so re-enqueueing after a crash is harmless; a step's
//! outcome, its output and the enqueue of what comes next commit in one transaction fenced by
//! the job's attempt. Steps run at least once: a step must be idempotent, and should name what
//! it creates outside with [`StepContext::resource_name`] so that, after a crash between
//! "create" and "record", it finds what it made and adopts it instead of making a second one.

mod runner;

use std::{collections::BTreeMap, future::Future, sync::Arc};

use bosun_queue::{saga::runner::step_progress, Client, Saga};
use futures_util::future::BoxFuture;
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::JobError;

pub(crate) use runner::SagaRunner;

type RunFn = Arc<
    dyn Fn(StepContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> + Send + Sync,
>;
type UndoFn = Arc<dyn Fn(StepContext) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// One step of a saga: a name, a `run` that returns a serializable output, an optional
/// `undo`, and how many attempts each may take.
#[derive(Clone)]
pub struct Step {
    pub(crate) name: String,
    pub(crate) run: RunFn,
    pub(crate) undo: Option<UndoFn>,
    pub(crate) max_attempts: i32,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("has_undo", &self.undo.is_some())
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Default attempts of a step's run or undo before it gives up. `bosun.saga_enqueue_step`
/// enqueues step jobs with this limit, so that a step with the default changes nothing when
/// it starts (a test keeps the two equal).
pub const STEP_MAX_ATTEMPTS_DEFAULT: i32 = 5;

impl Step {
    /// A step named `name` that runs `run`. Its output is stored in the ledger and given to
    /// later steps and to its own undo.
    pub fn new<F, Fut, O>(name: impl Into<String>, run: F) -> Step
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, JobError>> + Send + 'static,
        O: Serialize + 'static,
    {
        let run = Arc::new(run);
        Step {
            name: name.into(),
            run: Arc::new(move |ctx| {
                let fut = run(ctx);
                Box::pin(async move {
                    let output = fut.await?;
                    serde_json::to_value(output).map_err(JobError::permanent)
                })
            }),
            undo: None,
            max_attempts: STEP_MAX_ATTEMPTS_DEFAULT,
        }
    }

    /// How to undo the step once it succeeded (e.g. delete what it created). Runs when a
    /// later step fails or the saga is cancelled, in reverse order.
    pub fn undo<F, Fut>(mut self, undo: F) -> Step
    where
        F: Fn(StepContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.undo = Some(Arc::new(move |ctx| Box::pin(undo(ctx))));
        self
    }

    /// Attempts of the run, and of the undo, before giving up (default 5).
    pub fn max_attempts(mut self, attempts: i32) -> Step {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A saga kind: its name and its ordered steps.
#[derive(Debug, Clone)]
pub struct SagaDefinition {
    pub(crate) kind: String,
    pub(crate) steps: Vec<Step>,
}

impl SagaDefinition {
    /// A saga kind with no steps yet.
    pub fn new(kind: impl Into<String>) -> SagaDefinition {
        SagaDefinition {
            kind: kind.into(),
            steps: Vec::new(),
        }
    }

    /// Append a step.
    pub fn step(mut self, step: Step) -> SagaDefinition {
        self.steps.push(step);
        self
    }

    /// The saga kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Problems that make the definition unusable: a bad kind, no steps, repeated names.
    pub(crate) fn problem(&self) -> Option<String> {
        if !bosun_queue::is_valid_kind(&self.kind) || self.kind.len() > 122 {
            return Some(format!(
                "saga kind {:?} is not valid: use 1 to 122 letters, digits, '_', '.', ':' or '-'",
                self.kind
            ));
        }
        if self.steps.is_empty() {
            return Some(format!("saga {:?} has no steps", self.kind));
        }
        let mut names: Vec<&str> = self.steps.iter().map(Step::name).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Some(format!(
                "saga {:?} has two steps named {:?}",
                self.kind, pair[0]
            ));
        }
        None
    }
}

/// What a step's `run` or `undo` knows: the saga, its inputs, earlier outputs, and how to
/// name what it creates.
#[derive(Debug, Clone)]
pub struct StepContext {
    saga: Arc<Saga>,
    step: i32,
    name: Arc<str>,
    attempt: i32,
    outputs: Arc<BTreeMap<String, serde_json::Value>>,
    client: Client,
    cancel: CancellationToken,
}

impl StepContext {
    /// The saga's id.
    pub fn saga_id(&self) -> Uuid {
        self.saga.id
    }

    /// The saga's idempotency key.
    pub fn key(&self) -> &str {
        &self.saga.key
    }

    /// This step's name.
    pub fn step_name(&self) -> &str {
        &self.name
    }

    /// This attempt of the run (or of the undo), from 1.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// The saga's inputs, decoded.
    ///
    /// # Errors
    /// A permanent [`JobError`] when they do not decode: retrying cannot fix them.
    pub fn inputs<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.saga.inputs.clone()).map_err(JobError::permanent)
    }

    /// The output of the earlier step `step`, decoded (for an undo: also its own step's).
    ///
    /// # Errors
    /// A permanent [`JobError`] when that step has no output or it does not decode.
    pub fn output<T: DeserializeOwned>(&self, step: &str) -> Result<T, JobError> {
        let value = self
            .outputs
            .get(step)
            .ok_or_else(|| JobError::permanent(format!("step {step:?} has no recorded output")))?;
        serde_json::from_value(value.clone()).map_err(JobError::permanent)
    }

    /// A deterministic name for something this step creates outside, built from the saga's
    /// key, the step and `what` (e.g. `vm-42.create_snapshot.snap`). The same on every
    /// attempt, so a step can look for what an earlier attempt made before making it again.
    pub fn resource_name(&self, what: &str) -> String {
        format!("{}.{}.{what}", self.saga.key, self.name)
    }

    /// Report progress (best effort): shown by `bosun saga ID`.
    pub async fn progress(&self, percent: f32, message: &str) {
        let _ = step_progress(self.client.db(), self.saga.id, self.step, percent, message).await;
    }

    /// A client on the same database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the step should stop (the worker lost its job or is shutting down).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the step should stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }
}
