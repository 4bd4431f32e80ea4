//! The one error type of `bosun-queue`.
//!
//! SQL functions raise errors with a SQLSTATE that says what kind of mistake it was; this
//! module turns those into variants a caller can match on, keeping the database's message
//! (which names the bad argument) as the text.

/// Everything that can go wrong in `bosun-queue`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was rejected before anything was written (SQLSTATE 22023 or 22004, or a
    /// check made in Rust). The message names the argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// No job, queue or other row with the given id exists (SQLSTATE P0002).
    #[error("not found: {0}")]
    NotFound(String),

    /// The row exists but is in a state the operation does not apply to, e.g. retrying a
    /// running job or cancelling a completed one (SQLSTATE 55000).
    #[error("wrong state: {0}")]
    WrongState(String),

    /// A deterministic name is taken by something else, e.g. a saga key started again with
    /// another kind or other inputs (SQLSTATE 23505).
    #[error("conflict: {0}")]
    Conflict(String),

    /// Job arguments could not be turned into JSON, or a stored value could not be read back.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),

    /// A migration failed or the database holds migrations this build does not know.
    #[error("migration: {0}")]
    Migration(String),

    /// Any other database error (connection lost, timeout, constraint violation, ...).
    #[error(transparent)]
    Database(sqlx::Error),
}

/// How many characters of a caller's value an error message echoes.
const ECHOED_CHARACTERS: usize = 64;

/// A caller's value as an error message echoes it: quoted, and cut to its first 64
/// characters with its length when longer, as the SQL functions' `bosun.quote_short` does, so
/// that a megabyte of kind or key in a call does not come back as a megabyte of message.
///
/// ```
/// assert_eq!(bosun_queue::quote_short("pantry-1"), "'pantry-1'");
/// let long = "k".repeat(1000);
/// assert_eq!(bosun_queue::quote_short(&long), format!("'{}'... (1000 characters)", "k".repeat(64)));
/// ```
pub fn quote_short(value: &str) -> String {
    let (head, length) = echoed(value);
    let quoted = format!("'{}'", head.replace('\'', "''"));
    match length {
        None => quoted,
        Some(length) => format!("{quoted}... ({length} characters)"),
    }
}

/// [`quote_short`] without the quotes, for messages that quote the value themselves.
///
/// ```
/// let long = "k".repeat(1000);
/// assert_eq!(bosun_queue::shorten(&long), format!("{}... (1000 characters)", "k".repeat(64)));
/// ```
pub fn shorten(value: &str) -> std::borrow::Cow<'_, str> {
    match echoed(value) {
        (head, None) => head.into(),
        (head, Some(length)) => format!("{head}... ({length} characters)").into(),
    }
}

/// The part of `value` a message shows, and its length in characters when that is not all.
fn echoed(value: &str) -> (&str, Option<usize>) {
    match value.char_indices().nth(ECHOED_CHARACTERS) {
        None => (value, None),
        Some((end, _)) => (&value[..end], Some(value.chars().count())),
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        let Some(db) = err.as_database_error() else {
            return Error::Database(err);
        };
        let message = db.message().to_string();
        match db.code().as_deref() {
            Some("22023" | "22004" | "22P02" | "23514") => Error::InvalidArgument(message),
            Some("P0002") => Error::NotFound(message),
            Some("55000") => Error::WrongState(message),
            Some("23505") => Error::Conflict(message),
            _ => Error::Database(err),
        }
    }
}

impl Error {
    /// Whether retrying the same call later may succeed (lost connection, pool timeout,
    /// serialization failure), as opposed to a mistake in the call itself.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(err) => match err {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_)
                | sqlx::Error::Tls(_) => true,
                sqlx::Error::Database(db) => db.code().as_deref().is_some_and(|code| {
                    matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                        || code.starts_with("08")
                }),
                _ => false,
            },
            _ => false,
        }
    }
}
