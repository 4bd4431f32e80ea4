//! The `bosun` command line: parsing, wiring and presentation over `bosun-queue` and
//! `bosun-workers`. Exposed as a library so the integration tests can start the same
//! embedded PostgreSQL and use the same built-in kinds as the binary.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod connect;
pub mod embedded;
pub mod kinds;
pub mod metrics;
pub mod render;
