//! Runs one step job of a saga: the step's `run` (direction `do`) or its `undo`, and says how
//! it ended as a [`SagaTransition`], which the outcome writer records through one fenced SQL
//! transition that also enqueues what comes next.
//!
//! A retryable error with attempts left goes back to the executor, which retries the job with
//! backoff (the error is noted on the ledger). A permanent error, a cancel, or the last
//! attempt's error ends the step: `failed` (the saga compensates) for a run, `undo_failed`
//! (the saga is stuck) for an undo. A panic in a step counts as a retryable error.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bosun_queue::{
    saga::runner::{step_begin, step_note_error, step_outputs, undo_begin},
    Job,
};
use futures_util::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

use super::{SagaDefinition, Step, StepContext};
use crate::{
    attempt::{Handled, SagaTransition},
    registry::ErasedWorker,
    JobContext, JobError,
};

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Direction {
    Do,
    Undo,
}

#[derive(Debug, Deserialize)]
struct StepJob {
    saga_id: Uuid,
    step: i32,
    direction: Direction,
}

/// The erased worker for jobs of kind `saga:<kind>`.
#[derive(Clone)]
pub(crate) struct SagaRunner {
    definition: Arc<SagaDefinition>,
    names: Arc<[String]>,
    has_undo: Arc<[bool]>,
}

impl SagaRunner {
    pub(crate) fn new(definition: SagaDefinition) -> SagaRunner {
        let names = definition.steps.iter().map(|s| s.name.clone()).collect();
        let has_undo = definition.steps.iter().map(|s| s.undo.is_some()).collect();
        SagaRunner {
            definition: Arc::new(definition),
            names,
            has_undo,
        }
    }

    async fn run_job(self, ctx: JobContext, job: StepJob) -> Handled {
        let Some(step) = usize::try_from(job.step)
            .ok()
            .and_then(|i| self.definition.steps.get(i))
        else {
            return Handled::Returned(Err(JobError::permanent(format!(
                "saga kind {:?} has no step {}",
                self.definition.kind, job.step
            ))));
        };
        if let Some(message) = died_on_last_attempt(ctx.job(), step) {
            // The step used its attempts and the last one never came back: end it as its own
            // last error would have, through the saga's fenced transition.
            let (saga, step, error) = (job.saga_id, job.step, message);
            return Handled::Saga(match job.direction {
                Direction::Do => SagaTransition::StepFailed { saga, step, error },
                Direction::Undo => SagaTransition::UndoFailed { saga, step, error },
            });
        }
        match job.direction {
            Direction::Do => self.run_forward(&ctx, &job, step).await,
            Direction::Undo => self.run_undo(&ctx, &job, step).await,
        }
    }

    async fn run_forward(&self, ctx: &JobContext, job: &StepJob, step: &Step) -> Handled {
        let pool = ctx.client().db();
        let held = ctx.job().lease();
        let saga = match step_begin(
            pool,
            held,
            job.saga_id,
            job.step,
            &self.names,
            &self.has_undo,
            step.max_attempts,
        )
        .await
        {
            Ok(Some(saga)) => saga,
            // Cancelled or already compensating: do not run; compensate what succeeded.
            Ok(None) => {
                return Handled::Saga(SagaTransition::StepSkipped {
                    saga: job.saga_id,
                    step: job.step,
                })
            }
            Err(error) => return Handled::Returned(Err(JobError::retry(error))),
        };
        let step_ctx = match self.context(ctx, saga, job.step, &step.name).await {
            Ok(step_ctx) => step_ctx,
            Err(error) => return Handled::Returned(Err(error)),
        };
        match caught(ctx, (step.run)(step_ctx)).await {
            Ok(output) => Handled::Saga(SagaTransition::StepDone {
                saga: job.saga_id,
                step: job.step,
                steps: i32::try_from(self.names.len()).unwrap_or(i32::MAX),
                output,
            }),
            Err(JobError::Snooze(delay)) => Handled::Returned(Err(JobError::Snooze(delay))),
            Err(error) => match after_error(ctx.job(), step, error) {
                AfterError::EndStep(error) => Handled::Saga(SagaTransition::StepFailed {
                    saga: job.saga_id,
                    step: job.step,
                    error,
                }),
                AfterError::Retry(retry) => {
                    let _ = step_note_error(pool, job.saga_id, job.step, &retry).await;
                    Handled::Returned(Err(JobError::retry(retry)))
                }
            },
        }
    }

    async fn run_undo(&self, ctx: &JobContext, job: &StepJob, step: &Step) -> Handled {
        let pool = ctx.client().db();
        let held = ctx.job().lease();
        let Some(undo) = &step.undo else {
            // Nothing to undo: the step counts as undone.
            return Handled::Saga(SagaTransition::UndoDone {
                saga: job.saga_id,
                step: job.step,
            });
        };
        let saga = match undo_begin(pool, held, job.saga_id, job.step, step.max_attempts).await {
            Ok(Some(saga)) => saga,
            // The runner no longer holds its job: leave the ledger alone.
            Ok(None) => return Handled::NotHeld,
            Err(error) => return Handled::Returned(Err(JobError::retry(error))),
        };
        let step_ctx = match self.context(ctx, saga, job.step, &step.name).await {
            Ok(step_ctx) => step_ctx,
            Err(error) => return Handled::Returned(Err(error)),
        };
        match caught(ctx, undo(step_ctx)).await {
            Ok(()) => Handled::Saga(SagaTransition::UndoDone {
                saga: job.saga_id,
                step: job.step,
            }),
            Err(JobError::TargetGone(reason)) => Handled::Saga(SagaTransition::UndoGone {
                saga: job.saga_id,
                step: job.step,
                reason,
            }),
            Err(JobError::Snooze(delay)) => Handled::Returned(Err(JobError::Snooze(delay))),
            Err(error) => match after_error(ctx.job(), step, error) {
                AfterError::EndStep(error) => Handled::Saga(SagaTransition::UndoFailed {
                    saga: job.saga_id,
                    step: job.step,
                    error,
                }),
                AfterError::Retry(retry) => {
                    let _ = step_note_error(pool, job.saga_id, job.step, &retry).await;
                    Handled::Returned(Err(JobError::retry(retry)))
                }
            },
        }
    }

    async fn context(
        &self,
        ctx: &JobContext,
        saga: bosun_queue::Saga,
        step: i32,
        name: &str,
    ) -> Result<StepContext, JobError> {
        let outputs: BTreeMap<String, serde_json::Value> = step_outputs(ctx.client().db(), saga.id)
            .await
            .map_err(JobError::retry)?
            .into_iter()
            .collect();
        Ok(StepContext {
            saga: Arc::new(saga),
            step,
            name: Arc::from(name),
            attempt: ctx.attempt(),
            outputs: Arc::new(outputs),
            client: ctx.client().clone(),
            cancel: ctx.cancel_token(),
        })
    }
}

impl ErasedWorker for SagaRunner {
    fn run(
        &self,
        ctx: JobContext,
        args: &serde_json::Value,
    ) -> Result<BoxFuture<'static, Handled>, serde_json::Error> {
        let job = StepJob::deserialize(args)?;
        let runner = self.clone();
        Ok(Box::pin(runner.run_job(ctx, job)))
    }

    fn backoff(&self, job: &Job) -> Duration {
        crate::backoff::retry_delay(job.attempt)
    }

    fn timeout(&self) -> Option<Duration> {
        None
    }

    fn aborts_itself(&self) -> bool {
        true
    }
}

/// Why the step ends without running, if its previous attempt was its last and was rescued
/// (its worker died running it): the rescuer hands a saga's step back rather than failing
/// the job, so that the step ends here, through the saga, and the saga is never left
/// without a job. A job revived by `bosun.retry_saga` has no rescue as its last error, and
/// runs.
fn died_on_last_attempt(job: &Job, step: &Step) -> Option<String> {
    let previous = job.attempt - 1;
    let last = job.attempt_errors().pop()?;
    (previous >= step.max_attempts
        && last.attempt == previous
        && last.kind.as_deref() == Some("rescued"))
    .then(|| {
        format!(
            "{} (attempt {previous} of {})",
            last.error, step.max_attempts
        )
    })
}

/// What a step's error comes to, with the message to record.
enum AfterError {
    /// The step ends (failed, or undo failed): a permanent error, a cancel, a gone target,
    /// or the last attempt's error.
    EndStep(String),
    /// The job retries; the error is noted on the ledger.
    Retry(String),
}

fn after_error(job: &Job, step: &Step, error: JobError) -> AfterError {
    let last_attempt = job.attempt >= step.max_attempts.min(job.max_attempts);
    match error {
        JobError::Permanent(error) => AfterError::EndStep(error.to_string()),
        JobError::Cancel(reason) => AfterError::EndStep(reason),
        JobError::TargetGone(reason) => AfterError::EndStep(format!("target gone: {reason}")),
        JobError::Retry(error) if last_attempt => AfterError::EndStep(format!(
            "{error} (attempt {} of {})",
            job.attempt,
            step.max_attempts.min(job.max_attempts)
        )),
        JobError::Retry(error) => AfterError::Retry(error.to_string()),
        JobError::Snooze(_) => AfterError::Retry("snoozed".to_string()),
    }
}

/// Run a step's future on a task of its own so that a panic becomes an error of the step,
/// and abort it when it runs past the cancel grace after being told to stop: the step then
/// ends as cancelled, through the saga like any cancel (the executor does not abort saga
/// jobs, whose steps must end through their saga).
async fn caught<T: Send + 'static>(
    ctx: &JobContext,
    future: BoxFuture<'static, Result<T, JobError>>,
) -> Result<T, JobError> {
    let mut task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(future));
    tokio::select! {
        joined = &mut task => match joined {
            Ok(result) => result,
            Err(join) if join.is_panic() => Err(JobError::retry(format!(
                "step panicked: {}",
                crate::executor::panic_message(join.into_panic())
            ))),
            Err(_) => Err(JobError::retry("step task was aborted")),
        },
        () = ctx.stop_overdue() => {
            task.abort();
            let grace = crate::executor::humanize(ctx.stop_grace());
            tracing::warn!(%grace, "the saga step did not stop within the cancel grace of being told to; aborted it");
            crate::metrics::aborted(ctx.job());
            Err(JobError::Cancel(format!(
                "aborted: the step did not stop within {grace} of being cancelled"
            )))
        }
    }
}
