//! Talking to PostgreSQL through a pooler in transaction mode (PgBouncer's
//! `pool_mode = transaction`): [`Pooler`], and the executors every statement of Bosun runs on,
//! [`Db`] (a pool) and [`Conn`] (one connection).
//!
//! Such a pooler lends a client a server connection for one transaction, and outside a
//! transaction only until the end of a protocol exchange (a `Sync`). sqlx sends a statement
//! with parameters as two exchanges (`Parse`+`Describe`, then `Bind`+`Execute`) and names it
//! `sqlx_s_N`, counting per connection; through the pooler the second exchange may reach
//! another server connection, where the statement does not exist, or where another client
//! left one of the same name (`prepared statement "sqlx_s_1" already exists`). PgBouncer 1.18
//! (Debian 12's) does not track prepared statements at all, and sqlx 0.8 has no switch for
//! this: `statement_cache_capacity(0)` still names statements (and never closes them).
//!
//! So with [`Pooler::Transaction`], a statement with parameters runs unnamed
//! (`persistent(false)`) inside a transaction: the caller's, or else one of its own, which
//! keeps both exchanges on one server connection. The transaction begins by deallocating
//! the `sqlx_s_N` statements on its server connection: sqlx looks up the types of Bosun's
//! enums with named statements of its own (once per connection and type), and those must
//! not meet a statement of the same name that an earlier transaction left there. A statement without
//! parameters is one exchange (the simple protocol) and runs as it is. Nothing Bosun relies
//! on outlives a transaction: its advisory locks and `set_config` calls are
//! transaction-scoped, leadership is a row with a lease, and a worker that cannot `LISTEN`
//! polls (see `bosun-workers`).
//!
//! With [`Pooler::None`] (the default) both executors hand every statement to sqlx as it is:
//! the direct path costs one `match`.

use std::future::Future;

use futures_util::{future, stream, StreamExt, TryStreamExt};
use sqlx::{
    error::BoxDynError,
    postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo},
    Connection, Describe, Either, Execute, Executor, PgConnection, PgPool, Postgres, Transaction,
};

/// How the database is reached: directly (or through a session-mode pooler, which is the
/// same to a client), or through a pooler in transaction mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Directly: named, cached prepared statements, `LISTEN` for wake-ups.
    #[default]
    None,
    /// Through a pooler in transaction mode (PgBouncer `pool_mode = transaction`): no named
    /// prepared statements, no `LISTEN`, nothing kept in a session between transactions.
    Transaction,
}

impl Pooler {
    /// The names [`Pooler::from_str`](std::str::FromStr) takes: `none`, `transaction`.
    pub const NAMES: &'static [&'static str] = &["none", "transaction"];

    /// Whether a transaction-mode pooler sits between Bosun and the server.
    pub fn is_transaction(self) -> bool {
        self == Pooler::Transaction
    }

    /// `options` adjusted for this mode, for a pool of one's own behind the pooler (then
    /// [`crate::Client::with_pooler`]): behind a transaction-mode pooler no
    /// `extra_float_digits` startup parameter (PgBouncer refuses it unless told to ignore
    /// it, and Bosun reads floats in binary, where it does not matter) and no statement
    /// cache (a cached statement would be looked for on whichever server connection comes
    /// next). Unchanged otherwise.
    pub fn connect_options(
        self,
        options: sqlx::postgres::PgConnectOptions,
    ) -> sqlx::postgres::PgConnectOptions {
        match self {
            Pooler::None => options,
            Pooler::Transaction => options
                .extra_float_digits(None::<i8>)
                .statement_cache_capacity(0),
        }
    }
}

impl std::str::FromStr for Pooler {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Pooler::None),
            "transaction" => Ok(Pooler::Transaction),
            _ => Err(format!(
                "no pooler mode {:?}: use {}",
                text.chars().take(32).collect::<String>(),
                Pooler::NAMES.join(" or ")
            )),
        }
    }
}

impl std::fmt::Display for Pooler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooler::None => "none",
            Pooler::Transaction => "transaction",
        })
    }
}

/// How a transaction of Bosun's begins behind a transaction-mode pooler: by deallocating the
/// statements sqlx left on the server connection (see the module docs for why), and only
/// those: PgBouncer 1.21 and newer can track named statements itself
/// (`max_prepared_statements`), under names of its own that `DEALLOCATE ALL` would remove
/// behind its back; sqlx's names never reach the server then, and nothing is deallocated.
const BEGIN_BEHIND_POOLER: &str = include_str!("sql/scripts/pooler_begin.sql");

/// A connection taken from a pool ([`Db::acquire`]); it goes back when dropped.
pub type PooledConnection = sqlx::pool::PoolConnection<Postgres>;

/// A pool and how to talk through it: the executor Bosun's functions take (any
/// `sqlx::PgExecutor` that is `Copy`, so `&PgPool` too, which is [`Pooler::None`]).
#[derive(Debug, Clone, Copy)]
pub struct Db<'a> {
    pool: &'a PgPool,
    pooler: Pooler,
}

impl<'a> Db<'a> {
    /// `pool`, talked to as `pooler` says.
    pub fn new(pool: &'a PgPool, pooler: Pooler) -> Self {
        Db { pool, pooler }
    }

    /// The pool. Statements run on it directly bypass the pooler mode.
    pub fn pool(self) -> &'a PgPool {
        self.pool
    }

    /// The pooler mode.
    pub fn pooler(self) -> Pooler {
        self.pooler
    }

    /// A connection of the pool, for statements that must go out in a given order (run them
    /// on [`Db::on`]).
    ///
    /// # Errors
    /// When no connection can be had within the pool's acquire timeout.
    pub async fn acquire(self) -> crate::Result<PooledConnection> {
        Ok(self.pool.acquire().await?)
    }

    /// `conn` (taken from this pool, or a transaction's), talked to the same way.
    pub fn on<'c>(self, conn: &'c mut PgConnection) -> Conn<'c> {
        Conn::new(conn, self.pooler)
    }

    /// Begin a transaction on a connection of the pool; run its statements on
    /// [`Db::on`]`(&mut *tx)`.
    ///
    /// # Errors
    /// When no connection can be had or `BEGIN` fails.
    pub async fn begin(self) -> sqlx::Result<Transaction<'static, Postgres>> {
        match self.pooler {
            Pooler::None => self.pool.begin().await,
            Pooler::Transaction => self.pool.begin_with(BEGIN_BEHIND_POOLER).await,
        }
    }
}

impl<'a> From<&'a PgPool> for Db<'a> {
    fn from(pool: &'a PgPool) -> Self {
        Db::new(pool, Pooler::None)
    }
}

/// One connection and how to talk through it (see [`Db::on`]).
#[derive(Debug)]
pub struct Conn<'c> {
    conn: &'c mut PgConnection,
    pooler: Pooler,
}

impl<'c> Conn<'c> {
    /// `conn`, talked to as `pooler` says.
    pub fn new(conn: &'c mut PgConnection, pooler: Pooler) -> Self {
        Conn { conn, pooler }
    }

    /// The same connection for one more statement (an executor is used up by a statement).
    pub fn reborrow(&mut self) -> Conn<'_> {
        Conn::new(self.conn, self.pooler)
    }

    /// The pooler mode.
    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// Begin a transaction (a savepoint inside one); run its statements on
    /// [`Conn::new`]`(&mut *tx, pooler)`.
    ///
    /// # Errors
    /// When `BEGIN` fails.
    pub async fn begin(&mut self) -> sqlx::Result<Transaction<'_, Postgres>> {
        if self.pooler.is_transaction() && !self.conn.is_in_transaction() {
            self.conn.begin_with(BEGIN_BEHIND_POOLER).await
        } else {
            self.conn.begin().await
        }
    }
}

/// What a statement becomes behind a transaction-mode pooler.
enum Plan<'q> {
    /// No parameters: the simple protocol, one exchange.
    Simple(&'q str),
    /// Parameters: an unnamed statement, which needs a transaction.
    Unnamed(Unnamed<'q>),
}

fn plan<'q, E: Execute<'q, Postgres>>(mut query: E) -> sqlx::Result<Plan<'q>> {
    let sql = query.sql();
    match query.take_arguments().map_err(sqlx::Error::Encode)? {
        None => Ok(Plan::Simple(sql)),
        Some(arguments) => Ok(Plan::Unnamed(Unnamed {
            sql,
            arguments: Some(arguments),
        })),
    }
}

/// A statement sqlx prepares without a name and does not cache.
struct Unnamed<'q> {
    sql: &'q str,
    arguments: Option<PgArguments>,
}

impl<'q> Execute<'q, Postgres> for Unnamed<'q> {
    fn sql(&self) -> &'q str {
        self.sql
    }

    fn statement(&self) -> Option<&PgStatement<'q>> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<PgArguments>, BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        false
    }
}

type Step = Either<PgQueryResult, PgRow>;

/// Run `plan` on `conn` behind a pooler, in a transaction of its own unless `conn` is in
/// one, and collect what it returns (the transaction ends before the caller sees any of it).
async fn run_all(conn: &mut PgConnection, plan: Plan<'_>) -> sqlx::Result<Vec<Step>> {
    match plan {
        Plan::Simple(sql) => conn.fetch_many(sql).try_collect().await,
        Plan::Unnamed(statement) if conn.is_in_transaction() => {
            conn.fetch_many(statement).try_collect().await
        }
        Plan::Unnamed(statement) => {
            let mut tx = conn.begin_with(BEGIN_BEHIND_POOLER).await?;
            let steps = (&mut *tx).fetch_many(statement).try_collect().await?;
            tx.commit().await?;
            Ok(steps)
        }
    }
}

/// As [`run_all`], for at most one row.
async fn run_optional(conn: &mut PgConnection, plan: Plan<'_>) -> sqlx::Result<Option<PgRow>> {
    match plan {
        Plan::Simple(sql) => conn.fetch_optional(sql).await,
        Plan::Unnamed(statement) if conn.is_in_transaction() => {
            conn.fetch_optional(statement).await
        }
        Plan::Unnamed(statement) => {
            let mut tx = conn.begin_with(BEGIN_BEHIND_POOLER).await?;
            let row = (&mut *tx).fetch_optional(statement).await?;
            tx.commit().await?;
            Ok(row)
        }
    }
}

/// The steps a future collects, as a stream.
fn streamed<'e>(
    steps: impl Future<Output = sqlx::Result<Vec<Step>>> + Send + 'e,
) -> stream::BoxStream<'e, sqlx::Result<Step>> {
    stream::once(steps)
        .flat_map(|steps| match steps {
            Ok(steps) => stream::iter(steps.into_iter().map(Ok)).left_stream(),
            Err(error) => stream::once(future::ready(Err(error))).right_stream(),
        })
        .boxed()
}

/// Explicitly prepared (or described) statements are prepared in an exchange of their own,
/// which a transaction-mode pooler may route to another server connection than the next.
fn no_prepare<'e, T: Send + 'e>() -> future::BoxFuture<'e, sqlx::Result<T>> {
    Box::pin(future::ready(Err(sqlx::Error::Configuration(
        "statements cannot be prepared or described on their own behind a pooler in transaction mode".into(),
    ))))
}

// For every lifetime, as sqlx's own `&Pool` is: a pool is cloned into what a statement
// returns, so that the statement does not borrow it (futures that are spawned need that).
impl<'c> Executor<'c> for Db<'_> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> stream::BoxStream<'e, sqlx::Result<Step>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooler.is_transaction() {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool.clone();
        streamed(async move {
            let plan = plan(query)?;
            run_all(&mut *pool.acquire().await?, plan).await
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> future::BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooler.is_transaction() {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let plan = plan(query)?;
            run_optional(&mut *pool.acquire().await?, plan).await
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> future::BoxFuture<'e, sqlx::Result<PgStatement<'q>>>
    where
        'c: 'e,
    {
        if self.pooler.is_transaction() {
            return no_prepare();
        }
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> future::BoxFuture<'e, sqlx::Result<Describe<Postgres>>>
    where
        'c: 'e,
    {
        if self.pooler.is_transaction() {
            return no_prepare();
        }
        self.pool.describe(sql)
    }
}

impl<'c> Executor<'c> for Conn<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> stream::BoxStream<'e, sqlx::Result<Step>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooler.is_transaction() {
            return self.conn.fetch_many(query);
        }
        match plan(query) {
            Ok(Plan::Simple(sql)) => self.conn.fetch_many(sql),
            Ok(Plan::Unnamed(statement)) if self.conn.is_in_transaction() => {
                self.conn.fetch_many(statement)
            }
            Ok(plan) => streamed(run_all(self.conn, plan)),
            Err(error) => stream::once(future::ready(Err(error))).boxed(),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> future::BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooler.is_transaction() {
            return self.conn.fetch_optional(query);
        }
        match plan(query) {
            Ok(plan) => Box::pin(run_optional(self.conn, plan)),
            Err(error) => Box::pin(future::ready(Err(error))),
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> future::BoxFuture<'e, sqlx::Result<PgStatement<'q>>>
    where
        'c: 'e,
    {
        if self.pooler.is_transaction() {
            return no_prepare();
        }
        self.conn.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> future::BoxFuture<'e, sqlx::Result<Describe<Postgres>>>
    where
        'c: 'e,
    {
        if self.pooler.is_transaction() {
            return no_prepare();
        }
        self.conn.describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooler_names_parse_and_print() {
        for name in Pooler::NAMES {
            assert_eq!(name.parse::<Pooler>().unwrap().to_string(), *name);
        }
        assert_eq!("Transaction".parse::<Pooler>(), Ok(Pooler::Transaction));
        let error = "session".parse::<Pooler>().unwrap_err();
        assert!(error.contains("none or transaction"), "{error}");
    }
}
