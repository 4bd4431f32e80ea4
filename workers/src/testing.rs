//! Helpers for users' own tests (feature `testing`).

pub mod saga;
