//! `bosun-queue`: Bosun's storage layer.
//!
//! Jobs are rows in `bosun.jobs`. This crate owns everything that touches them: the shared
//! types ([`JobState`], [`Job`], [`NewJob`]), the embedded migrations ([`migrate`]), the
//! [`Client`] applications enqueue and operate with, and the fenced claim / record calls the
//! worker runtime makes ([`runtime`]). No other crate in the workspace writes SQL.
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

mod client;
mod copy_binary;
mod enqueue;
mod error;
pub mod invariants;
pub mod listener;
pub mod liveness;
pub mod migrate;
pub mod periodic;
mod pg_enum;
pub mod pooler;
pub mod runtime;
pub mod saga;
pub mod sampling;
pub mod targets;
mod types;

pub use client::{pool_options, Client, ClientOptions, CHECK_CONNECTIONS_IDLE_FOR};
pub use error::{quote_short, shorten, Error, Result};
pub use migrate::MigrateReport;
pub use pooler::{Conn, Db, Pooler};
pub use saga::{Saga, SagaState, SagaStep, SagaStepState};
pub use targets::{Target, TargetState, TargetStats};
pub use types::{is_valid_kind, is_valid_queue_name};
pub use types::{
    AttemptError, Enqueued, IntoNewJob, Job, JobArgs, JobFilter, JobOptions, JobState, Lease,
    NewJob, OnConflict, QueueRow, QueueStats,
};

/// Re-exported so that users name the same sqlx version Bosun uses.
pub use sqlx;
