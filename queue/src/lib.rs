//! `bosun-queue`: Bosun's storage layer.
//!
//! Jobs are rows in `bosun.jobs`. This crate owns everything that touches them: the shared
//! types ([`JobState`], [`Job`], [`NewJob`]), the embedded migrations ([`migrate`]), the
//! [`Client`] applications enqueue and operate with, and the fenced claim / record calls the
//! worker runtime makes. No other crate of Bosun's runtime writes SQL: every statement is a
//! file under `src/sql/` (the simulated cloud of the demo saga and the tests, `bosun-sim`,
//! keeps its own files in the same form, outside the production paths).
//!
//! Public API, under semver: [`Client`], the types re-exported here, and the modules
//! [`migrate`], [`pooler`], [`saga`], [`targets`], [`periodic`] and [`invariants`] (less the
//! items marked hidden in them), and `testing` with feature `testing`. Internal, hidden from
//! the documentation and not covered by semver: the modules used by Bosun's own runtime, CLI
//! and bench (`runtime`, `liveness`, `cleanup`, `listener`, `sampling`, `bench`) and the
//! leader's calls in the public modules (`saga::runner`, `periodic::periodic_fire` and its
//! siblings, `targets::reap_expunged`).
//!
//! ```no_run
//! # async fn demo() -> bosun_queue::Result<()> {
//! use bosun_queue::{Client, NewJob};
//!
//! let client = Client::connect("postgres://localhost/app").await?;
//! client.migrate().await?;
//! let job = client.enqueue(NewJob::new("email.send", serde_json::json!({"to": "a@b.c"}))).await?;
//! println!("enqueued job {}", job.id);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod claim_floors;
#[doc(hidden)]
pub mod cleanup;
mod client;
mod copy_binary;
mod enqueue;
mod error;
pub mod invariants;
#[doc(hidden)]
pub mod listener;
#[doc(hidden)]
pub mod liveness;
pub mod migrate;
pub mod periodic;
mod pg_enum;
pub mod pooler;
#[doc(hidden)]
pub mod runtime;
pub mod saga;
#[doc(hidden)]
pub mod sampling;
pub mod targets;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use client::{pool_options, Client, ClientOptions, CHECK_CONNECTIONS_IDLE_FOR};
pub use error::{quote_short, shorten, Error, Result};
pub use migrate::MigrateReport;
pub use pooler::{Conn, Db, PooledConnection, Pooler};
pub use saga::{Saga, SagaState, SagaStep, SagaStepState};
pub use targets::{Target, TargetState, TargetStats};
pub use types::{is_valid_kind, is_valid_queue_name};
pub use types::{
    AttemptError, Enqueued, IntoNewJob, Job, JobArgs, JobFilter, JobOptions, JobState, Lease,
    NewJob, OnConflict, QueueRow, QueueStats,
};

/// Re-exported so that users name the same sqlx version Bosun uses.
pub use sqlx;
