//! What one attempt came to, as a handler decides it: the executor turns it into what the
//! outcome writer ([`crate::outcome`]) records. Handlers never write an outcome themselves,
//! so that every write of an attempt's end is fenced, retried and counted in one place.

use bosun_queue::JobState;
use uuid::Uuid;

use crate::JobResult;

/// How a handler's attempt ended.
pub(crate) enum Handled {
    /// The handler returned: completed, or an error, cancel or snooze.
    Returned(JobResult),
    /// A saga step ended: its outcome, its output and what comes next commit together, in
    /// the saga's fenced transition.
    Saga(SagaTransition),
    /// The job is no longer this attempt's (the saga runner found its fence gone before it
    /// began): there is nothing to write.
    NotHeld,
}

/// A saga step's end, written by the saga's fenced transition of the same name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SagaTransition {
    /// The step's `run` succeeded with `output`; the next step (or the saga's success)
    /// follows. `steps` is how many steps the saga has.
    StepDone {
        saga: Uuid,
        step: i32,
        steps: i32,
        output: serde_json::Value,
    },
    /// The step's `run` failed for good; the saga compensates.
    StepFailed {
        saga: Uuid,
        step: i32,
        error: String,
    },
    /// The saga was cancelled or is compensating: the step did not run.
    StepSkipped { saga: Uuid, step: i32 },
    /// The step's `undo` succeeded (or it has none).
    UndoDone { saga: Uuid, step: i32 },
    /// The step's `undo` found its target gone: it counts as undone.
    UndoGone {
        saga: Uuid,
        step: i32,
        reason: String,
    },
    /// The step's `undo` gave up; the saga is stuck.
    UndoFailed {
        saga: Uuid,
        step: i32,
        error: String,
    },
}

impl SagaTransition {
    /// The state the step's job ends in when the transition goes through.
    pub(crate) fn job_state(&self) -> JobState {
        match self {
            SagaTransition::StepFailed { .. } | SagaTransition::UndoFailed { .. } => {
                JobState::Failed
            }
            _ => JobState::Completed,
        }
    }
}
