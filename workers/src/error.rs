//! Errors of the worker runtime.

/// What can go wrong starting or stopping a [`crate::WorkerPool`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pool's configuration is unusable; the message says which setting.
    #[error("invalid worker configuration: {0}")]
    InvalidConfig(String),
    /// A storage call failed.
    #[error(transparent)]
    Queue(#[from] bosun_queue::Error),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
