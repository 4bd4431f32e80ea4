//! The kinds `bosun bench` measures, which `bosun worker --bench-kinds` registers: kept apart
//! from the demo kinds of `crate::kinds`, so that a worker runs them only when asked and the
//! demo's module holds nothing of the bench.
//!
//! | kind | args | does |
//! |---|---|---|
//! | `bench.started` | `{}` | writes when its handler started, by the worker's clock (W3) |
//! | `bench.noop3` | saga | three steps that do nothing, each with an undo (S1, S4) |

use bosun_queue::JobArgs;
use bosun_workers::{
    JobContext, JobError, JobResult, PoolBuilder, SagaDefinition, Step, StepContext, Worker,
};
use serde::{Deserialize, Serialize};

/// `bench.started`: `{}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchStarted {}

impl JobArgs for BenchStarted {
    const KIND: &'static str = "bench.started";
}

/// Writes the moment its handler started, by this host's clock, so that the bench measures
/// enqueue to handler start rather than to the claim.
struct BenchStartedWorker;

impl Worker for BenchStartedWorker {
    type Args = BenchStarted;

    async fn work(&self, ctx: JobContext, _args: BenchStarted) -> JobResult {
        let started = chrono::Utc::now();
        bosun_queue::bench::start_record(ctx.client().db(), ctx.id(), started)
            .await
            .map_err(JobError::retry)?;
        Ok(())
    }
}

/// What `bosun worker --bench-kinds` adds for `bosun bench`: the kind `bench.started` (to
/// the built-in kinds of `crate::kinds::registry`) and the saga `bench.noop3`.
pub fn with_bench_kinds(builder: PoolBuilder) -> PoolBuilder {
    builder.register(BenchStartedWorker).saga(noop_saga())
}

/// The saga `bench.noop3`: three steps that do nothing, for `bosun bench`.
fn noop_saga() -> SagaDefinition {
    ["one", "two", "three"]
        .into_iter()
        .fold(SagaDefinition::new("bench.noop3"), |saga, name| {
            saga.step(
                Step::new(name, |_ctx: StepContext| async { Ok(()) })
                    .undo(|_ctx: StepContext| async { Ok(()) }),
            )
        })
}
