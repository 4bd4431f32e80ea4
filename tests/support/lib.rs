//! Test support: a fresh, migrated database per test, on a real PostgreSQL.
//!
//! With `BOSUN_TEST_DATABASE_URL` set (a URL whose user may create databases), tests use that
//! server. Otherwise each test binary starts one throwaway server from the local PostgreSQL
//! installation (as `bosun` does without `DATABASE_URL`), which disappears when the binary
//! exits. Either way every test gets its own database, copied from a migrated template, so
//! tests run in parallel without seeing each other's jobs.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

pub mod cli;
mod job_state;
pub mod periodic;
pub mod pool_harness;
pub mod raw_sql;
mod replica;

use bosun_cli::embedded::EmbeddedPostgres;
use bosun_queue::Client;
use bosun_workers::{ShutdownReport, WorkerPool};
use sqlx::{postgres::PgPoolOptions, Connection, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use job_state::{force_state, force_state_as, Attempt};
pub use replica::Replica;

/// The server all tests of this binary use.
struct Server {
    admin_url: String,
    /// Kept alive for the life of the process; its watchdog removes it after we exit.
    _embedded: Option<EmbeddedPostgres>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("BOSUN_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server {
            admin_url: url,
            _embedded: None,
        },
        _ => {
            let embedded = EmbeddedPostgres::start()
                .unwrap_or_else(|e| panic!("cannot start a PostgreSQL for the tests: {e}"));
            Server {
                admin_url: embedded.url(),
                _embedded: Some(embedded),
            }
        }
    })
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| {
        i + 3 + base[i + 3..].find('/').unwrap_or(base.len() - i - 3)
    });
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn admin() -> PgConnection {
    PgConnection::connect(&server().admin_url)
        .await
        .expect("connecting to the test server")
}

/// A migrated template database, created once per test binary.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("bosun_tpl_{}", std::process::id());
            let mut conn = admin().await;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                .execute(&mut conn)
                .await
                .expect("dropping an old template");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("creating the template database");
            let url = with_database(&server().admin_url, &name);
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("connecting to the template");
            bosun_queue::migrate::migrate_up(&pool)
                .await
                .expect("migrating the template");
            pool.close().await;
            name
        })
        .await
}

/// A fresh database for one test.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A URL for it (for spawned processes and raw connections).
    pub url: String,
    /// A pool on it.
    pub pool: PgPool,
    /// A Bosun client on it.
    pub client: Client,
}

impl TestDb {
    /// A new database copied from the migrated template.
    pub async fn new() -> TestDb {
        let template = template().await;
        let name = format!(
            "bosun_t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin().await;
        // Creating from a template fails while anyone else copies it; retry briefly.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("creating test database {name}: {e}"),
            }
        }
        TestDb::open(name).await
    }

    /// A database with no Bosun schema at all (for migration tests).
    pub async fn empty() -> TestDb {
        let name = format!(
            "bosun_e_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin().await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("creating an empty database");
        TestDb::open(name).await
    }

    async fn open(name: String) -> TestDb {
        let url = with_database(&server().admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .expect("connecting to the test database");
        let client = Client::new(pool.clone());
        TestDb {
            name,
            url,
            pool,
            client,
        }
    }

    /// A single raw connection, as any SQL client would have.
    pub async fn raw(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connecting to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Only an external server needs cleaning; a throwaway one disappears with the process.
        if server()._embedded.is_some() {
            return;
        }
        let name = self.name.clone();
        let admin_url = server().admin_url.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// The `bosun` binary built alongside the tests (`cargo test --workspace` builds it).
pub fn bosun_bin() -> PathBuf {
    built("bosun", "cargo build -p bosun")
}

/// The example `name` of `bosun-examples`, built alongside the tests (`scripts/test` builds
/// the examples first).
pub fn example_bin(name: &str) -> PathBuf {
    built(
        &format!("examples/{name}"),
        "cargo build -p bosun-examples --examples",
    )
}

fn built(relative: &str, how: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let bin = dir.join(relative);
    assert!(
        bin.is_file(),
        "{} not found: build it with `{how}`",
        bin.display()
    );
    bin
}

/// Poll `check` every 20 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the simulated cloud of the built-in saga lists under `prefix` once every resource
/// created so far shows in listings (they show up there a little after their creation).
pub async fn settled_listing(pool: &PgPool, prefix: &str) -> Vec<String> {
    tokio::time::sleep(bosun_cli::kinds::DEFAULT_LISTING_LAG + Duration::from_millis(300)).await;
    bosun_sim::list(pool, prefix)
        .await
        .expect("listing the simulated cloud")
}

/// Wait until job `id` is in `state` (up to 15 s), and return it.
pub async fn wait_state(
    client: &bosun_queue::Client,
    id: i64,
    state: bosun_queue::JobState,
) -> bosun_queue::Job {
    eventually(
        Duration::from_secs(15),
        &format!("job {id} to be {state}"),
        || async {
            let job = client.job_get(id).await.unwrap();
            (job.state == state).then_some(job)
        },
    )
    .await
}

/// A worker pool running in the background of a test until [`RunningPool::stop`].
pub struct RunningPool {
    pool: std::sync::Arc<WorkerPool>,
    shutdown: CancellationToken,
    task: JoinHandle<bosun_workers::Result<ShutdownReport>>,
}

impl RunningPool {
    /// Start `pool.run_until` on a task of its own.
    pub fn start(pool: WorkerPool) -> RunningPool {
        let pool = std::sync::Arc::new(pool);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let pool = std::sync::Arc::clone(&pool);
            let shutdown = shutdown.clone();
            async move { pool.run_until(shutdown.cancelled_owned()).await }
        });
        RunningPool {
            pool,
            shutdown,
            task,
        }
    }

    /// How many jobs the pool runs right now (an attempt counts until its outcome is written).
    pub fn running(&self) -> usize {
        self.pool.running()
    }

    /// Trigger shutdown and wait for `run_until` to return.
    pub async fn stop(self) -> ShutdownReport {
        self.shutdown.cancel();
        self.task
            .await
            .expect("the pool task did not panic")
            .expect("run_until succeeded")
    }
}

/// Every row of `bosun.jobs` and `bosun.queues`, as JSON text, to prove nothing changed.
pub async fn snapshot(conn: &mut PgConnection) -> (Vec<String>, Vec<String>) {
    let jobs = sqlx::query_scalar("SELECT to_jsonb(j)::text FROM bosun.jobs AS j ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let queues =
        sqlx::query_scalar("SELECT to_jsonb(q)::text FROM bosun.queues AS q ORDER BY name")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    (jobs, queues)
}

/// `sql` fails with SQLSTATE `code` and a message containing every one of `needles`, and no
/// row of `bosun.jobs` or `bosun.queues` was added, removed or changed. Returns the message.
pub async fn assert_rejected(
    conn: &mut PgConnection,
    sql: &str,
    code: &str,
    needles: &[&str],
) -> String {
    let before = snapshot(conn).await;
    let err = sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .expect_err(&format!("{sql} should fail"));
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("{sql}: expected a database error, got {err:?}"));
    let message = db.message().to_string();
    assert_eq!(
        db.code().as_deref(),
        Some(code),
        "SQLSTATE of {sql} (message: {message})"
    );
    for needle in needles {
        assert!(
            message.contains(needle),
            "message of {sql} should contain {needle:?}, got {message:?}"
        );
    }
    let after = snapshot(conn).await;
    assert_eq!(
        before.0.len(),
        after.0.len(),
        "{sql} changed the number of jobs"
    );
    assert_eq!(
        before.1.len(),
        after.1.len(),
        "{sql} changed the number of queues"
    );
    assert_eq!(before, after, "{sql} changed rows although it failed");
    message
}

/// Sagas driven by hand from SQL, as the runner would drive them: the saga kind
/// `example.provision` with three steps, each with an undo.
pub mod saga_sql {
    use sqlx::{PgConnection, Row};
    use uuid::Uuid;

    /// The ledger arguments of `bosun.saga_step_begin` for the three steps.
    pub const STEPS: &str = "'{reserve,create,attach}'::text[], '{t,t,t}'::boolean[]";

    pub async fn start(conn: &mut PgConnection, key: &str) -> Uuid {
        sqlx::query_scalar(
            "SELECT bosun.start_saga('example.provision', $1, '{\"fail_at\": null}')",
        )
        .bind(key)
        .fetch_one(conn)
        .await
        .unwrap()
    }

    /// Claim the step job for `step`/`direction` by hand, as a worker would; returns its id.
    pub async fn claim(conn: &mut PgConnection, saga: Uuid, step: i32, direction: &str) -> i64 {
        sqlx::query_scalar(
            "UPDATE bosun.jobs SET state = 'running', attempt = attempt + 1, attempted_at = now()
             WHERE unique_key = format('saga:%s:%s:%s', $1::uuid, $2, $3) RETURNING id",
        )
        .bind(saga)
        .bind(step)
        .bind(direction)
        .fetch_one(conn)
        .await
        .unwrap()
    }

    /// Begin step `step` as the runner holding `job` (attempt 1) would.
    pub async fn begin(conn: &mut PgConnection, saga: Uuid, job: i64, step: i32) -> Option<String> {
        sqlx::query_scalar(&format!(
            "SELECT (bosun.saga_step_begin($1, 1, $2, $3, {STEPS})).state::text"
        ))
        .bind(job)
        .bind(saga)
        .bind(step)
        .fetch_one(conn)
        .await
        .unwrap()
    }

    pub async fn call_bool(
        conn: &mut PgConnection,
        sql: &str,
        saga: Uuid,
        job: i64,
        step: i32,
    ) -> bool {
        sqlx::query_scalar(sql)
            .bind(job)
            .bind(saga)
            .bind(step)
            .fetch_one(conn)
            .await
            .unwrap()
    }

    pub async fn saga_state(conn: &mut PgConnection, saga: Uuid) -> (String, Option<String>) {
        let row = sqlx::query("SELECT state::text, error FROM bosun.sagas WHERE id = $1")
            .bind(saga)
            .fetch_one(conn)
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    pub async fn steps(conn: &mut PgConnection, saga: Uuid) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT state::text FROM bosun.saga_steps WHERE saga_id = $1 ORDER BY idx",
        )
        .bind(saga)
        .fetch_all(conn)
        .await
        .unwrap()
    }
}

/// Assert that `bosun.check_invariants()` lists nothing, with no grace: every job and saga
/// row is settled as Bosun's writes leave them. The end of every crash test.
pub async fn assert_invariants_hold(pool: &PgPool) {
    let violations = bosun_queue::invariants::check_invariants(pool, Duration::ZERO)
        .await
        .expect("checking the invariants");
    assert!(
        violations.is_empty(),
        "bosun.check_invariants() lists {violations:#?}"
    );
}

/// Count of jobs per state, for assertions.
pub async fn state_counts(pool: &PgPool) -> std::collections::BTreeMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT state::text, count(*) FROM bosun.jobs GROUP BY state ORDER BY state",
    )
    .fetch_all(pool)
    .await
    .expect("counting job states")
    .into_iter()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5/db?sslmode=disable", "x"),
            "postgres://u@h:5/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
    }
}
