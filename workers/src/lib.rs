//! `bosun-workers`: the runtime that runs Bosun jobs.
//!
//! Implement [`Worker`] for each kind, register the workers on a [`WorkerPool`] with the
//! queues and concurrency this process should serve, and run it until a shutdown signal.
//!
//! ```no_run
//! use bosun_queue::{Client, JobArgs};
//! use bosun_workers::{shutdown_signal, JobContext, JobResult, Worker, WorkerPool};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Greet { name: String }
//! impl JobArgs for Greet { const KIND: &'static str = "greet"; }
//!
//! struct Greeter;
//! impl Worker for Greeter {
//!     type Args = Greet;
//!     async fn work(&self, _ctx: JobContext, args: Greet) -> JobResult {
//!         println!("hello, {}", args.name);
//!         Ok(())
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("postgres://localhost/app").await?;
//! let pool = WorkerPool::builder(client).register(Greeter).queue("default", 16).build()?;
//! pool.run_until(shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! Guarantees: a job runs at least once; every write a worker makes about a job is fenced by
//! the attempt it claimed, so a worker that lost a job cannot overwrite it. Handlers must be
//! idempotent. See `docs/state_machine.md` for the states.
#![warn(missing_docs)]

mod attempt;
pub mod backoff;
mod claim_ahead;
mod config;
mod connections;
mod dispatch;
mod error;
mod executor;
mod heartbeat;
mod lost_leases;
pub mod maintenance;
pub mod metrics;
mod notifier;
mod outcome;
mod periodic;
mod pool;
mod producer;
mod registry;
mod running;
pub mod saga;
mod shutdown;
mod signal;
#[cfg(feature = "testing")]
pub mod testing;
mod wakeups;
mod worker;

pub use bosun_queue::periodic::CatchUp;
pub use config::{
    PoolBuilder, PoolConfig, CANCEL_GRACE_DEFAULT, LEASE_CHECK_INTERVAL_DEFAULT,
    MAINTENANCE_INTERVAL_DEFAULT, POLL_INTERVAL_DEFAULT, PRUNE_INTERVAL_DEFAULT,
    SAMPLE_INTERVAL_DEFAULT, SHUTDOWN_TIMEOUT_DEFAULT,
};
pub use error::{Error, Result};
pub use heartbeat::{HEARTBEAT_INTERVAL_DEFAULT, LEASE_DEFAULT};
pub use periodic::Periodic;
pub use pool::WorkerPool;
pub use registry::Registry;
pub use saga::{SagaDefinition, Step, StepContext};
pub use shutdown::ShutdownReport;
pub use signal::shutdown_signal;
pub use worker::{BoxError, JobContext, JobError, JobResult, Worker};
