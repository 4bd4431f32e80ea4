//! `bosun-sim`: the simulated cloud that Bosun's built-in saga `example.provision` acts on,
//! and the holds its crash tests stop the saga's steps at. Not published, and no part of
//! `bosun-queue` or `bosun-workers`: production code paths carry none of it, and only the
//! demo saga, the tests and the bench use it.
//!
//! - [`cloud`]: named resources that outlive a killed worker, strongly consistent by name and
//!   eventually consistent in listings, with a log of every call.
//! - [`holds`]: a test asks for a hold ([`request_hold`]) and the saga's steps pass through
//!   [`checkpoint`]s, which stop only where a request was written; the test then kills or
//!   pauses the worker there and [`release`]s the step.
//!
//! Everything lives in the database's `bosun_example` schema, so that every worker process
//! sees the same state. The schema is made on first use and is not part of Bosun's own;
//! remove it with `DROP SCHEMA bosun_example CASCADE`. Every statement is a file under
//! `src/sql/`, which `tests/sql_statements.rs` prepares as it does Bosun's. The calls run on
//! their own connections, never inside a job's transaction.

pub mod cloud;
pub mod holds;
mod schema;

pub use cloud::{calls, create, delete, list, Created};
pub use holds::{checkpoint, held, release, request_hold, Held, HoldPoint, StepAttempt};
