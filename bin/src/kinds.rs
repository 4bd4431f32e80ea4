//! The built-in example kinds `bosun worker` runs, so that the CLI alone shows the system
//! working. A real deployment registers its own kinds in its own binary.
//!
//! | kind    | args                                        | does                                   |
//! |---------|---------------------------------------------|----------------------------------------|
//! | `echo`  | any object                                  | completes at once                      |
//! | `sleep` | `{"ms": N, "ignore_cancel": bool}`          | sleeps N ms, completes; stops early when cancelled, unless `ignore_cancel` (then the worker aborts it after `--cancel-grace`) |
//! | `fail`  | `{"permanent": bool, "message": text}`      | fails every attempt                    |
//! | `flaky` | `{"p": 0.0..1.0}`                           | fails with probability p, else completes |
//!
//! The saga `example.provision` acts on the simulated cloud of `bosun-sim`. The kinds
//! `bosun bench` measures are in `crate::bench::kinds`.
//!
//! `fail` and `flaky` accept `"backoff_ms"` to shorten the retry delay (the demo uses it);
//! without it they use Bosun's default backoff.

use std::{
    hash::{Hash, Hasher},
    time::Duration,
};

use bosun_queue::{Job, JobArgs};
use bosun_sim::{self as cloud, HoldPoint, StepAttempt};
use bosun_workers::{
    backoff, JobContext, JobError, JobResult, Registry, SagaDefinition, Step, StepContext, Worker,
};

use serde::{Deserialize, Serialize};

/// `echo`: any object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Echo(pub serde_json::Map<String, serde_json::Value>);

impl JobArgs for Echo {
    const KIND: &'static str = "echo";
}

/// `sleep`: `{"ms": N, "ignore_cancel": bool}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sleep {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
    /// Sleep on through a cancel, as a handler that never looks at it would.
    #[serde(default)]
    pub ignore_cancel: bool,
}

impl JobArgs for Sleep {
    const KIND: &'static str = "sleep";
}

/// `fail`: `{"permanent": bool, "message": text}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    /// Fail permanently (no retries) instead of retryably.
    #[serde(default)]
    pub permanent: bool,
    /// The error message.
    #[serde(default = "default_fail_message")]
    pub message: String,
    /// Retry delay override in milliseconds.
    #[serde(default)]
    pub backoff_ms: Option<u64>,
}

fn default_fail_message() -> String {
    "failed on purpose".to_string()
}

impl JobArgs for Fail {
    const KIND: &'static str = "fail";
}

/// `flaky`: `{"p": 0.0..1.0}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flaky {
    /// Probability that an attempt fails.
    pub p: f64,
    /// Retry delay override in milliseconds.
    #[serde(default)]
    pub backoff_ms: Option<u64>,
}

impl JobArgs for Flaky {
    const KIND: &'static str = "flaky";
}

struct EchoWorker;

impl Worker for EchoWorker {
    type Args = Echo;

    async fn work(&self, _ctx: JobContext, _args: Echo) -> JobResult {
        Ok(())
    }
}

struct SleepWorker;

impl Worker for SleepWorker {
    type Args = Sleep;

    async fn work(&self, ctx: JobContext, args: Sleep) -> JobResult {
        if args.ignore_cancel {
            tokio::time::sleep(Duration::from_millis(args.ms)).await;
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(args.ms)) => Ok(()),
            () = ctx.cancelled() => Err(JobError::cancel("sleep interrupted by cancellation")),
        }
    }
}

struct FailWorker;

impl Worker for FailWorker {
    type Args = Fail;

    async fn work(&self, _ctx: JobContext, args: Fail) -> JobResult {
        if args.permanent {
            Err(JobError::permanent(args.message))
        } else {
            Err(JobError::retry(args.message))
        }
    }

    fn backoff(&self, job: &Job) -> Duration {
        backoff_override(job)
    }
}

/// The job's own `backoff_ms` when it set one, else Bosun's default.
fn backoff_override(job: &Job) -> Duration {
    job.args
        .get("backoff_ms")
        .and_then(serde_json::Value::as_u64)
        .map_or_else(|| backoff::retry_delay(job.attempt), Duration::from_millis)
}

struct FlakyWorker;

impl Worker for FlakyWorker {
    type Args = Flaky;

    async fn work(&self, ctx: JobContext, args: Flaky) -> JobResult {
        if !(0.0..=1.0).contains(&args.p) {
            return Err(JobError::permanent(format!(
                "p must be between 0.0 and 1.0, got {}",
                args.p
            )));
        }
        if roll(ctx.id(), ctx.attempt()) < args.p {
            Err(JobError::retry(format!(
                "flaky failure (p = {}) on attempt {}",
                args.p,
                ctx.attempt()
            )))
        } else {
            Ok(())
        }
    }

    fn backoff(&self, job: &Job) -> Duration {
        backoff_override(job)
    }
}

/// A number in [0, 1) fixed by the job and attempt, so a flaky run can be replayed.
fn roll(id: i64, attempt: i32) -> f64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (id, attempt).hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Every built-in kind.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(EchoWorker)
        .register(SleepWorker)
        .register(FailWorker)
        .register(FlakyWorker);
    registry
}

/// Inputs of `example.provision`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionInputs {
    /// The step that fails permanently, if any (`reserve`, `create` or `attach`).
    #[serde(default)]
    pub fail_at: Option<String>,
    /// How long after its creation a resource shows up in the simulated cloud's listings.
    #[serde(default = "default_listing_lag_ms")]
    pub listing_lag_ms: u64,
}

const DEFAULT_LISTING_LAG_MS: u64 = 200;

/// How long a new resource takes to show in the simulated cloud's listings, by default.
pub const DEFAULT_LISTING_LAG: Duration = Duration::from_millis(DEFAULT_LISTING_LAG_MS);

fn default_listing_lag_ms() -> u64 {
    DEFAULT_LISTING_LAG_MS
}

/// Pass the crash tests' checkpoint `point` of this step's attempt: a no-op unless a test
/// asked for a hold there (see [`bosun_sim::holds`]).
async fn checkpoint(ctx: &StepContext, point: HoldPoint) -> Result<(), JobError> {
    let at = StepAttempt {
        saga_key: ctx.key(),
        step: ctx.step_name(),
        attempt: ctx.attempt(),
    };
    bosun_sim::checkpoint(ctx.client().db(), at, point)
        .await
        .map_err(JobError::retry)
}

/// The built-in saga `example.provision`: `reserve`, `create`, `attach`, each with an undo,
/// acting on the simulated cloud in [`cloud`]. Each step creates its resource under a
/// deterministic name and adopts it when it exists already (an earlier attempt made it before
/// crashing); each undo deletes it by name, and a resource already gone is fine.
pub fn provision_saga() -> SagaDefinition {
    let mut saga = SagaDefinition::new("example.provision");
    for (name, resource) in [("reserve", "slot"), ("create", "vm"), ("attach", "volume")] {
        saga = saga.step(
            Step::new(name, move |ctx: StepContext| async move {
                let inputs: ProvisionInputs = ctx.inputs()?;
                checkpoint(&ctx, HoldPoint::Before).await?;
                if inputs.fail_at.as_deref() == Some(ctx.step_name()) {
                    return Err(JobError::permanent(format!(
                        "{} failed on purpose (fail_at)",
                        ctx.step_name()
                    )));
                }
                let name = ctx.resource_name(resource);
                let lag = Duration::from_millis(inputs.listing_lag_ms);
                let created = cloud::create(ctx.client().db(), &name, resource, lag)
                    .await
                    .map_err(JobError::retry)?;
                checkpoint(&ctx, HoldPoint::After).await?;
                Ok(serde_json::json!({
                    "resource": name,
                    "adopted": created == cloud::Created::Existing,
                }))
            })
            .undo(move |ctx: StepContext| async move {
                checkpoint(&ctx, HoldPoint::UndoBefore).await?;
                cloud::delete(ctx.client().db(), &ctx.resource_name(resource))
                    .await
                    .map_err(JobError::retry)?;
                checkpoint(&ctx, HoldPoint::UndoAfter).await?;
                Ok(())
            })
            .max_attempts(3),
        );
    }
    saga
}
