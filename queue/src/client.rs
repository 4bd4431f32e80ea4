//! [`Client`]: enqueue jobs and operate on them from Rust.
//!
//! Operations go through the SQL functions a psql user calls (`bosun.retry_job`, ...), and
//! enqueues through paths held to the rules and messages of `bosun.enqueue_arrays` (see
//! [`crate::enqueue`]), so validation is identical from any language, and a database error
//! arrives as a typed [`Error`] variant.

use chrono::{DateTime, Utc};
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection, PgPool};

use crate::{
    enqueue, migrate, Conn, Db, Enqueued, Error, IntoNewJob, Job, JobFilter, JobState,
    MigrateReport, NewJob, Pooler, QueueRow, QueueStats, Result, Target, TargetStats,
};

/// How long [`Client::connect`] lets its pool retry a refused first connection before it
/// asks the server directly why (a server that is starting up refuses for a moment).
const FIRST_CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// A pooled connection idle for longer than this is checked (a round trip) before it is
/// handed out; one used more recently is not. The pool checks every connection it takes back
/// anyway, so a connection idle for less was alive a moment ago, and a check before each use
/// would cost every enqueue, claim and completion a second round trip. After a server
/// restart (which takes longer than this) the dead connections are still found and replaced
/// before anyone gets one.
pub const CHECK_CONNECTIONS_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The pool settings Bosun's own pools use: connections checked before use only when they
/// have been idle for [`CHECK_CONNECTIONS_IDLE_FOR`]. Set the size and connect.
pub fn pool_options() -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_CONNECTIONS_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// How [`Client::connect_with`] connects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientOptions {
    pooler: Pooler,
}

impl ClientOptions {
    /// The defaults: a direct connection.
    pub fn new() -> Self {
        ClientOptions::default()
    }

    /// Whether a pooler in transaction mode (PgBouncer `pool_mode = transaction`) sits between
    /// the client and the server (see [`Pooler`]).
    ///
    /// ```no_run
    /// # async fn demo() -> bosun_queue::Result<()> {
    /// use bosun_queue::{Client, ClientOptions, Pooler};
    /// let options = ClientOptions::new().pooler(Pooler::Transaction);
    /// let client = Client::connect_with("postgres://app@pgbouncer:6432/app", options).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }
}

/// A handle on a Bosun database. Cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    pool: PgPool,
    pooler: Pooler,
}

impl Client {
    /// A client on an existing pool, connected directly.
    pub fn new(pool: PgPool) -> Self {
        Client::with_pooler(pool, Pooler::None)
    }

    /// A client on an existing pool whose connections go through `pooler`. Behind a
    /// transaction-mode pooler, make the pool with [`Pooler::connect_options`].
    pub fn with_pooler(pool: PgPool, pooler: Pooler) -> Self {
        Client { pool, pooler }
    }

    /// Connect to `url` directly, with a small pool.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL or one that is not a PostgreSQL URL;
    /// [`Error::Database`] with the real cause (connection refused, authentication, unknown
    /// database) if the database cannot be used.
    pub async fn connect(url: &str) -> Result<Self> {
        Client::connect_with(url, ClientOptions::new()).await
    }

    /// Connect to `url` as `options` say, with a small pool.
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Self> {
        let pooler = options.pooler;
        let options = pooler.connect_options(connect_options(url)?);
        let pool = pool_options()
            .max_connections(10)
            .connect_lazy_with(options.clone());
        match tokio::time::timeout(FIRST_CONNECT_PATIENCE, pool.acquire()).await {
            Ok(first) => drop(first?),
            // Still refused: a pool retries that until its acquire timeout and then reports
            // only the timeout, so one direct attempt asks for the actual reason.
            Err(_) => PgConnection::connect_with(&options).await?.close().await?,
        }
        Ok(Client::with_pooler(pool, pooler))
    }

    /// A client on the same database and pooler mode with a pool of its own, of at most
    /// `max_connections`, that connects on first use (so it may be made outside a Tokio
    /// runtime's I/O). The worker runtime keeps its claims and heartbeats on such a pool,
    /// apart from the connections its handlers use.
    pub fn with_separate_pool(&self, max_connections: u32) -> Client {
        let options = self.pool.connect_options();
        let pool = pool_options()
            .max_connections(max_connections)
            .connect_lazy_with(options.as_ref().clone());
        Client::with_pooler(pool, self.pooler)
    }

    /// The underlying pool. Statements run on it directly do not go through the pooler mode:
    /// run them on [`Client::db`].
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool as the executor Bosun's functions take, talking as the pooler mode needs.
    pub fn db(&self) -> Db<'_> {
        Db::new(&self.pool, self.pooler)
    }

    /// The pooler mode the client was made with.
    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// Apply pending migrations (see [`migrate::migrate_up`]).
    ///
    /// # Errors
    /// As [`migrate::migrate_up`].
    pub async fn migrate(&self) -> Result<MigrateReport> {
        migrate::migrate_up(self.db()).await
    }

    /// Enqueue one job. With a `unique_key` that exists, returns the existing job's id and
    /// `inserted: false`.
    ///
    /// ```no_run
    /// # async fn demo(client: bosun_queue::Client) -> bosun_queue::Result<()> {
    /// use bosun_queue::NewJob;
    /// let job = NewJob::new("email.send", serde_json::json!({"to": "a@b.c"})).queue("mail");
    /// let enqueued = client.enqueue(job).await?;
    /// assert!(enqueued.inserted);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad field; nothing is written then.
    pub async fn enqueue(&self, job: impl IntoNewJob) -> Result<Enqueued> {
        let job = job.into_new_job()?;
        enqueue::one(self.db().on(&mut *self.pool.acquire().await?), &job, true).await
    }

    /// Enqueue one job inside the caller's transaction: if it rolls back, there is no job.
    /// Pass `&mut *tx` for a `sqlx::Transaction`. Behind a transaction-mode pooler, begin it
    /// with [`Db::begin`] (`client.db().begin()`), which clears what sqlx's own type look-ups
    /// may have left on the server connection (see [`crate::pooler`]).
    ///
    /// # Errors
    /// As [`Client::enqueue`], except that a bad job's message names the table check it
    /// breaks (`... violates check constraint "max_attempts_must_be_at_least_1"`); the
    /// error aborts the transaction, as any failed statement does.
    pub async fn enqueue_tx(
        &self,
        conn: &mut PgConnection,
        job: impl IntoNewJob,
    ) -> Result<Enqueued> {
        enqueue::one(Conn::new(conn, self.pooler), &job.into_new_job()?, false).await
    }

    /// Enqueue many jobs in one round trip. All are validated first: one bad job and none
    /// is written. Results come in input order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the bad job (`jobs[3].kind ...`).
    pub async fn enqueue_many<I>(&self, jobs: I) -> Result<Vec<Enqueued>>
    where
        I: IntoIterator,
        I::Item: IntoNewJob,
    {
        let jobs = collect_jobs(jobs)?;
        enqueue::many(self.db().on(&mut *self.pool.acquire().await?), &jobs).await
    }

    /// [`Client::enqueue_many`] inside the caller's transaction.
    ///
    /// # Errors
    /// As [`Client::enqueue_many`].
    pub async fn enqueue_many_tx<I>(
        &self,
        conn: &mut PgConnection,
        jobs: I,
    ) -> Result<Vec<Enqueued>>
    where
        I: IntoIterator,
        I::Item: IntoNewJob,
    {
        let jobs = collect_jobs(jobs)?;
        enqueue::many(Conn::new(conn, self.pooler), &jobs).await
    }

    /// One job by id.
    ///
    /// # Errors
    /// [`Error::NotFound`] if there is no such job.
    pub async fn job_get(&self, id: i64) -> Result<Job> {
        sqlx::query_as(include_str!("sql/job_get.sql"))
            .bind(id)
            .fetch_optional(self.db())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no job with id {id}")))
    }

    /// Jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a limit below 1.
    pub async fn job_list(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let limit = filter.limit.unwrap_or(100);
        if limit < 1 {
            return Err(Error::InvalidArgument(format!(
                "limit must be at least 1, got {limit}"
            )));
        }
        Ok(sqlx::query_as(include_str!("sql/job_list.sql"))
            .bind(filter.state)
            .bind(filter.queue.as_deref())
            .bind(filter.kind.as_deref())
            .bind(filter.before_id)
            .bind(limit)
            .fetch_all(self.db())
            .await?)
    }

    /// Run a job again now (`bosun.retry_job`).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongState`] for a running job.
    pub async fn retry_job(&self, id: i64) -> Result<Job> {
        Ok(sqlx::query_as(include_str!("sql/job_retry.sql"))
            .bind(id)
            .fetch_one(self.db())
            .await?)
    }

    /// Retry every job in `state`, optionally of one queue and kind (`bosun.retry_jobs`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `running` or `available`, or a malformed name.
    pub async fn retry_jobs(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        state: JobState,
    ) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(include_str!("sql/job_retry_many.sql"))
            .bind(queue)
            .bind(kind)
            .bind(state)
            .fetch_all(self.db())
            .await?)
    }

    /// Cancel a job that has not finished (`bosun.cancel_job`); a running job's handler is told.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongState`] for a finished job.
    pub async fn cancel_job(&self, id: i64) -> Result<Job> {
        Ok(sqlx::query_as(include_str!("sql/job_cancel.sql"))
            .bind(id)
            .fetch_one(self.db())
            .await?)
    }

    /// Move a waiting job to run at `at` (`bosun.reschedule_job`).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::WrongState`] for a running or finished job.
    pub async fn reschedule_job(&self, id: i64, at: DateTime<Utc>) -> Result<Job> {
        Ok(sqlx::query_as(include_str!("sql/job_reschedule.sql"))
            .bind(id)
            .bind(at)
            .fetch_one(self.db())
            .await?)
    }

    /// Stop every replica from claiming `queue` (`bosun.pause_queue`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed name.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueueRow> {
        Ok(sqlx::query_as(include_str!("sql/queue_pause.sql"))
            .bind(queue)
            .fetch_one(self.db())
            .await?)
    }

    /// Let replicas claim `queue` again (`bosun.resume_queue`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed name.
    pub async fn resume_queue(&self, queue: &str) -> Result<QueueRow> {
        Ok(sqlx::query_as(include_str!("sql/queue_resume.sql"))
            .bind(queue)
            .fetch_one(self.db())
            .await?)
    }

    /// Start saga `kind` under the idempotency `key` (`bosun.start_saga`): the same kind,
    /// key and inputs again return the existing saga's id.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad kind, key or inputs; [`Error::Database`] (SQLSTATE
    /// 23505) when the key names a saga of another kind or with other inputs.
    pub async fn start_saga(
        &self,
        kind: &str,
        key: &str,
        inputs: &serde_json::Value,
    ) -> Result<uuid::Uuid> {
        crate::saga::saga_start(self.db(), kind, key, inputs, None).await
    }

    /// [`Client::start_saga`] for a saga whose steps act on `target` (see
    /// [`crate::targets`]): its step jobs carry the target, and when the target is expunged the
    /// saga fails and compensates, its undos counting as done.
    ///
    /// # Errors
    /// As [`Client::start_saga`], and [`Error::WrongState`] when `target` is expunged.
    pub async fn start_saga_on(
        &self,
        target: &str,
        kind: &str,
        key: &str,
        inputs: &serde_json::Value,
    ) -> Result<uuid::Uuid> {
        crate::saga::saga_start(self.db(), kind, key, inputs, Some(target)).await
    }

    /// [`Client::start_saga`] inside the caller's transaction: rolled back, no saga.
    ///
    /// # Errors
    /// As [`Client::start_saga`].
    pub async fn start_saga_tx(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        key: &str,
        inputs: &serde_json::Value,
    ) -> Result<uuid::Uuid> {
        crate::saga::saga_start(Conn::new(conn, self.pooler), kind, key, inputs, None).await
    }

    /// Make target `name` known, with its `kind` if given (`bosun.register_target`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name or kind; [`Error::WrongState`] when the
    /// target is expunged.
    pub async fn register_target(&self, name: &str, kind: Option<&str>) -> Result<Target> {
        crate::targets::target_register(self.db(), name, kind).await
    }

    /// Expunge target `name` for good (`bosun.expunge_target`): new work onto it is refused
    /// and the maintenance leader reaps the work on it. Idempotent.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown target.
    pub async fn expunge_target(&self, name: &str, reason: Option<&str>) -> Result<Target> {
        crate::targets::target_expunge(self.db(), name, reason).await
    }

    /// Every target with its live and reaped work.
    ///
    /// # Errors
    /// [`Error::Database`] if the query fails.
    pub async fn targets(&self) -> Result<Vec<TargetStats>> {
        crate::targets::target_list(self.db()).await
    }

    /// Per-queue counts by state (`bosun.queue_stats`).
    ///
    /// # Errors
    /// [`Error::Database`] if the query fails.
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        Ok(sqlx::query_as(include_str!("sql/queue_stats.sql"))
            .fetch_all(self.db())
            .await?)
    }
}

/// `url` as connect options, refused unless it is a PostgreSQL URL: sqlx reads any
/// `scheme://` URL as PostgreSQL's, so a `mysql://` URL would otherwise be tried as one.
fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !scheme
        .is_some_and(|s| s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql"))
    {
        let got = match scheme {
            Some(scheme) => {
                let scheme: String = scheme.chars().take(32).collect();
                format!("one with the scheme {:?}", format!("{scheme}://"))
            }
            None => "one without a scheme".to_string(),
        };
        return Err(Error::InvalidArgument(format!(
            "database URL: Bosun needs a PostgreSQL URL, postgres://user@host/db or postgresql://..., got {got}"
        )));
    }
    url.parse()
        .map_err(|e| Error::InvalidArgument(format!("database URL: {e}")))
}

fn collect_jobs<I>(jobs: I) -> Result<Vec<NewJob>>
where
    I: IntoIterator,
    I::Item: IntoNewJob,
{
    jobs.into_iter().map(IntoNewJob::into_new_job).collect()
}
