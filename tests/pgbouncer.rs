//! Bosun through PgBouncer in transaction mode (`--pooler transaction`): the CLI, the Rust
//! client and two `bosun worker --no-listen` processes talk to the test's server only
//! through a real PgBouncer, started here on a free loopback port with few server
//! connections, so that clients share them transaction by transaction. One worker is killed
//! with SIGKILL while it holds jobs; the other finishes them after the rescue.
//!
//! PgBouncer comes from the distribution's packages (`scripts/ensure-test-tools` installs
//! it when missing).

use std::{
    fs::File,
    net::{TcpListener, TcpStream},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use bosun_queue::{Client, ClientOptions, JobFilter, JobState, NewJob, Pooler};
use bosun_tests::{bosun_bin, eventually, Replica, TestDb};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;

/// Where distributions put the binary (Debian: `/usr/sbin`, often not on PATH).
const PGBOUNCER_PATHS: &[&str] = &["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

/// A PgBouncer in transaction mode in front of the test server; stopped when dropped.
struct PgBouncer {
    child: Child,
    port: u16,
    user: String,
    log: PathBuf,
    _dir: TempDir,
}

impl PgBouncer {
    /// Start one in front of the server `db` is on, for every database there.
    fn start(db: &TestDb) -> PgBouncer {
        let binary = PGBOUNCER_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .or_else(|| which("pgbouncer"))
            .expect("pgbouncer is not installed: run scripts/ensure-test-tools");
        let server: PgConnectOptions = db.url.parse().expect("the test database's URL");
        let user = server.get_username().to_string();
        let port = free_port();
        let dir = TempDir::new("bosun-pgbouncer");
        let log = dir.0.join("pgbouncer.log");
        let ini = dir.0.join("pgbouncer.ini");
        let users = dir.0.join("users.txt");
        std::fs::write(&users, format!("\"{user}\" \"\"\n")).unwrap();
        // Few server connections for many clients: transactions of different clients share
        // them, which is what breaks named prepared statements and split exchanges.
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={host} port={server_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 4\n\
                 max_client_conn = 500\n",
                host = server.get_host(),
                server_port = server.get_port(),
                users = users.display(),
            ),
        )
        .unwrap();
        let mut command = Command::new(binary);
        // PgBouncer refuses to run as root; it then takes the identity of another user, who
        // must be able to read its files.
        if is_root() {
            let user = ["postgres", "nobody"]
                .into_iter()
                .find(|name| has_user(name))
                .expect("running as root with neither a postgres nor a nobody user");
            command.args(["-u", user]);
            for path in [&dir.0, &ini, &users] {
                let mode = if path.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap();
            }
        }
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("starting pgbouncer");
        let mut bouncer = PgBouncer {
            child,
            port,
            user,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!("pgbouncer exited ({status}): {}", bouncer.log());
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// A URL for `database` through this PgBouncer.
    fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

fn is_root() -> bool {
    Path::new("/proc/self")
        .metadata()
        .is_ok_and(|m| m.uid() == 0)
}

fn has_user(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split(':').next() == Some(name))
}

/// `bosun --pooler transaction ARGS` against `url`.
fn bosun(url: &str, args: &[&str]) -> Output {
    Command::new(bosun_bin())
        .args(["--pooler", "transaction"])
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .env_remove("BOSUN_POOLER")
        .output()
        .expect("running bosun")
}

/// As [`bosun`], expecting success; stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let output = bosun(url, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "bosun {args:?} through PgBouncer: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json_of(url: &str, args: &[&str]) -> Value {
    let out = ok(url, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("bosun {args:?}: {e}: {out}"))
}

/// Every claim and completion, logged by a trigger (as in tests/crash.rs).
async fn install_ledger(db: &TestDb) {
    sqlx::raw_sql(
        "CREATE TABLE claims (job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL);
         CREATE TABLE completions (job_id bigint NOT NULL UNIQUE, attempt int NOT NULL,
                                   worker text NOT NULL);
         CREATE FUNCTION ledger() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.state = 'running' AND OLD.state <> 'running' THEN
                 INSERT INTO claims VALUES (NEW.id, NEW.attempt, NEW.attempted_by);
             END IF;
             IF NEW.state = 'completed' AND OLD.state <> 'completed' THEN
                 INSERT INTO completions VALUES (NEW.id, NEW.attempt, NEW.attempted_by);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER ledger AFTER UPDATE ON bosun.jobs
             FOR EACH ROW EXECUTE FUNCTION ledger();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

/// The jobs of this test: 12 from the CLI, 300 from the Rust client in one batch (a binary
/// `COPY`), 8 one at a time with unique keys.
const JOBS: i64 = 12 + 300 + 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_and_workers_drain_jobs_through_pgbouncer_with_a_worker_killed() {
    let db = TestDb::empty().await;
    let bouncer = PgBouncer::start(&db);
    let url = bouncer.url(&db.name);

    // Without pooler mode, the first thing PgBouncer refuses is a startup parameter of
    // sqlx's; docs/operations.md names it.
    let direct = Command::new(bosun_bin())
        .args(["migrate"])
        .env("DATABASE_URL", &url)
        .env_remove("BOSUN_POOLER")
        .output()
        .unwrap();
    assert_eq!(direct.status.code(), Some(1));
    let err = String::from_utf8_lossy(&direct.stderr);
    assert!(
        err.contains("unsupported startup parameter: extra_float_digits"),
        "{err}"
    );

    // Migrations run through the pooler too (one transaction, a transaction-scoped lock).
    let migrated = json_of(&url, &["migrate", "--json"]);
    assert_eq!(
        migrated["current"],
        json!(bosun_queue::migrate::latest_version())
    );
    install_ledger(&db).await;

    // The CLI enqueues and reads through it; each command is a new set of connections that
    // lands on server connections earlier commands used.
    for i in 0..12 {
        let args = json!({ "ms": 150 + i }).to_string();
        let out = ok(&url, &["enqueue", "sleep", &args]);
        assert!(out.starts_with("enqueued job "), "{out}");
    }
    // The Rust client, with the pooler mode on its connect options.
    let client = Client::connect_with(&url, ClientOptions::new().pooler(Pooler::Transaction))
        .await
        .expect("connecting through PgBouncer");
    assert_eq!(client.pooler(), Pooler::Transaction);
    let batch = client
        .enqueue_many((0..300).map(|i| NewJob::new("sleep", json!({ "ms": 150 + i % 10 }))))
        .await
        .expect("a batch through PgBouncer");
    assert_eq!(batch.len(), 300);
    for i in 0..8 {
        let job = NewJob::new("sleep", json!({ "ms": 150 })).unique_key(format!("k{i}"));
        assert!(client.enqueue(job.clone()).await.unwrap().inserted);
        assert!(
            !client.enqueue(job).await.unwrap().inserted,
            "the key holds"
        );
    }
    // A job the table refuses fails alone, with the message a direct client gets, and the
    // connection it failed on serves the next call.
    let mut deep = json!({});
    for _ in 0..150 {
        deep = json!({ "a": deep });
    }
    let refused = client.enqueue(NewJob::new("sleep", deep)).await;
    assert!(
        matches!(&refused, Err(bosun_queue::Error::InvalidArgument(m)) if m.contains("nest")),
        "{refused:?}"
    );
    // In a transaction of the caller's, begun as the pooler needs: rolled back, no job.
    let mut tx = client.db().begin().await.unwrap();
    client
        .enqueue_tx(&mut tx, NewJob::new("sleep", json!({ "ms": 1 })))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let listed = client
        .job_list(&JobFilter {
            state: Some(JobState::Available),
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(i64::try_from(listed.len()).unwrap(), JOBS);
    let queues = json_of(&url, &["queues", "--json"]);
    assert_eq!(queues[0]["available"], json!(JOBS), "{queues}");

    // Two workers through PgBouncer, polling.
    let through = |id: &str| {
        Replica::spawn_args(
            Command::new(bosun_bin()),
            &url,
            &db.name,
            id,
            "default=8",
            &["--no-listen", "--pooler", "transaction"],
        )
    };
    let p1 = through("p1");
    let p2 = through("p2");
    // Kill p2 while it holds jobs, once both have been working for a while.
    eventually(Duration::from_secs(60), "p2 holding jobs", || async {
        let done = scalar(&db, "SELECT count(*) FROM completions").await;
        let held = scalar(
            &db,
            "SELECT count(*) FROM bosun.jobs WHERE state = 'running' AND attempted_by = 'p2'",
        )
        .await;
        (done >= 40 && held > 0).then_some(())
    })
    .await;
    p2.kill();
    // What it held (running, claimed ahead, or completed but not yet written): exactly these
    // may run again.
    let held_at_kill: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM bosun.jobs WHERE state = 'running' AND attempted_by = 'p2' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(!held_at_kill.is_empty(), "p2 held jobs when it was killed");
    assert!(
        scalar(&db, "SELECT count(*) FROM completions").await < JOBS,
        "killed mid-drain"
    );

    // p1 finishes everything, the jobs p2 held included, once its lease has run out.
    eventually(Duration::from_secs(120), "every job completed", || async {
        (scalar(&db, "SELECT count(*) FROM completions").await == JOBS).then_some(())
    })
    .await;
    let p1_log = p1.log();
    p1.stop().await;

    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM bosun.jobs WHERE state <> 'completed'"
        )
        .await,
        0
    );
    // Only jobs p2 held ran twice, and p1 finished each of them after rescuing it.
    let reruns: Vec<i64> = sqlx::query_scalar(
        "SELECT job_id FROM claims GROUP BY job_id HAVING count(*) > 1 ORDER BY job_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        reruns
            .iter()
            .all(|id| held_at_kill.binary_search(id).is_ok()),
        "only p2's jobs ran again: {reruns:?}, p2 held {held_at_kill:?}"
    );
    let rescued: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT id, attempted_by, errors FROM bosun.jobs WHERE id = ANY($1) ORDER BY id",
    )
    .bind(&held_at_kill)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for (id, by, errors) in &rescued {
        assert_eq!(by, "p1", "job {id} was finished by the live worker");
        let errors = errors.to_string();
        assert!(
            errors.contains("p2"),
            "job {id}'s rescue names the dead worker: {errors}"
        );
    }
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT worker) FROM completions").await,
        2,
        "both workers completed jobs"
    );

    // Read back through the pooler, and the invariants hold.
    let completed = json_of(
        &url,
        &["jobs", "--state", "completed", "--limit", "1000", "--json"],
    );
    assert_eq!(
        i64::try_from(completed.as_array().unwrap().len()).unwrap(),
        JOBS
    );
    ok(&url, &["doctor"]);
    let workers = json_of(&url, &["workers", "--json"]);
    assert!(workers.is_array(), "{workers}");

    // A saga through the pooler: its runner's transitions and its steps' own statements.
    let started = json_of(
        &url,
        &[
            "sagas",
            "start",
            "example.provision",
            "vm-1",
            "{}",
            "--json",
        ],
    );
    let saga: uuid::Uuid = started["id"].as_str().unwrap().parse().unwrap();
    let p3 = through("p3");
    eventually(Duration::from_secs(60), "the saga succeeded", || async {
        let saga = bosun_queue::saga::saga_get(&db.pool, saga).await.unwrap();
        (saga.state == bosun_queue::SagaState::Succeeded).then_some(())
    })
    .await;
    let shown = json_of(&url, &["saga", &saga.to_string(), "--json"]);
    assert!(shown.to_string().contains("succeeded"), "{shown}");
    let p3_log = p3.log();
    p3.stop().await;

    for log in [p1_log, p3_log, bouncer.log()] {
        assert!(
            !log.contains("prepared statement") && !log.contains("ERROR"),
            "nothing went wrong on the way: {log}"
        );
    }
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

/// `bench` measures a direct connection, and says so rather than failing half-way through.
#[test]
fn bench_refuses_pooler_mode() {
    let output = bosun(
        "postgres://bosun@127.0.0.1:1/nowhere",
        &["bench", "--runs", "1"],
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("run it without --pooler transaction"), "{err}");
}

/// A mode that does not exist is a usage error naming the ones that do.
#[test]
fn an_unknown_pooler_mode_is_a_usage_error() {
    let output = Command::new(bosun_bin())
        .args(["jobs"])
        .env("BOSUN_POOLER", "statement")
        .env("DATABASE_URL", "postgres://bosun@127.0.0.1:1/nowhere")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("use none or transaction"), "{err}");
}
