//! The workers of other languages that Bosun ships as examples (examples/python_worker,
//! examples/node_worker) speak the SQL worker protocol with the runtime's guarantees: they
//! run jobs enqueued from Rust and from SQL and record failures; a Python worker killed, or
//! paused past its lease, has its jobs rescued by a `bosun worker` and run exactly once more
//! by another worker, and the paused worker's late writes change nothing.
//!
//! Nothing is skipped: without python3 and psycopg 3, or node and pg, these tests fail and
//! say that scripts/ensure-test-tools installs them.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use bosun_queue::{JobState, NewJob};
use bosun_tests::{eventually, wait_state, Replica, TestDb};
use serde_json::{json, Value};

/// The repository's root, where the examples and target/test-tools are.
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// How to start one language's worker: the interpreter, the script and its environment.
struct Language {
    interpreter: String,
    script: PathBuf,
    env: Vec<(String, String)>,
}

fn runs(interpreter: &str, args: &[&str], env: &[(String, String)]) -> bool {
    Command::new(interpreter)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Python 3 with psycopg 3: the python3 on PATH, or the system's (where Debian's
/// python3-psycopg goes).
fn python() -> Language {
    let interpreter = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| runs(python, &["-c", "import psycopg"], &[]))
        .expect(
            "python3 with psycopg 3 is needed to run examples/python_worker: \
             scripts/ensure-test-tools installs it",
        );
    Language {
        interpreter: interpreter.to_string(),
        script: repo_root().join("examples/python_worker/worker.py"),
        env: vec![],
    }
}

/// Node.js with pg: Debian's node-pg, or the copy scripts/ensure-test-tools unpacks into
/// target/test-tools/node when Node.js is not Debian's.
fn node() -> Language {
    let mut paths = vec![
        PathBuf::from("/usr/share/nodejs"),
        PathBuf::from("/usr/lib/nodejs"),
        repo_root().join("target/test-tools/node/usr/share/nodejs"),
    ];
    if let Some(existing) = std::env::var_os("NODE_PATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    let node_path = std::env::join_paths(paths).unwrap();
    let env = vec![("NODE_PATH".to_string(), node_path.into_string().unwrap())];
    assert!(
        runs("node", &["-e", "require('pg')"], &env),
        "node with pg is needed to run examples/node_worker: scripts/ensure-test-tools installs it"
    );
    Language {
        interpreter: "node".to_string(),
        script: repo_root().join("examples/node_worker/worker.js"),
        env,
    }
}

/// A running worker of another language; killed when dropped if still running.
struct Worker {
    id: String,
    child: Child,
    log: PathBuf,
}

impl Worker {
    /// Start `language`'s worker on `db` as `id`, with a 2 s lease and a 200 ms poll.
    fn start(db: &TestDb, language: &Language, id: &str) -> Worker {
        let log = std::env::temp_dir().join(format!("bosun-{}-{id}.log", db.name));
        let child = Command::new(&language.interpreter)
            .arg(&language.script)
            .envs(language.env.iter().map(|(k, v)| (k, v)))
            .env("DATABASE_URL", &db.url)
            .env("BOSUN_WORKER_ID", id)
            .env("BOSUN_LEASE_SECONDS", "2")
            .env("BOSUN_POLL_SECONDS", "0.2")
            .stdout(File::create(&log).unwrap())
            .stderr(File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", language.interpreter));
        Worker {
            id: id.to_string(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.id);
    }

    /// SIGTERM, then expect exit status 0 within 10 s.
    async fn stop(mut self) {
        self.signal("-TERM");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "{} exits 0 on SIGTERM:\n{}",
                    self.id,
                    self.log()
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} did not stop within 10 s of SIGTERM", self.id);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log every claim of a job into `claims`, so the database says how often each job ran.
async fn install_claim_ledger(db: &TestDb) {
    sqlx::raw_sql(
        "CREATE TABLE claims (job_id bigint NOT NULL, attempt int NOT NULL, worker text NOT NULL);
         CREATE FUNCTION log_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO claims VALUES (NEW.id, NEW.attempt, NEW.attempted_by);
             RETURN NEW;
         END $$;
         CREATE TRIGGER log_claim AFTER UPDATE ON bosun.jobs FOR EACH ROW
             WHEN (NEW.state = 'running' AND OLD.state <> 'running')
             EXECUTE FUNCTION log_claim();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

/// Each job's claims, as (attempt, worker), in order.
async fn claims_of(db: &TestDb, id: i64) -> Vec<(i32, String)> {
    sqlx::query_as("SELECT attempt, worker FROM claims WHERE job_id = $1 ORDER BY attempt")
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn enqueue_naps(db: &TestDb, n: usize, seconds: f64) -> Vec<i64> {
    let jobs = (0..n).map(|_| NewJob::new("nap", json!({ "seconds": seconds })));
    let enqueued = db.client.enqueue_many(jobs).await.unwrap();
    enqueued.iter().map(|job| job.id).collect()
}

/// Wait until every job of `ids` is running under `worker`.
async fn wait_running_under(db: &TestDb, ids: &[i64], worker: &str) {
    eventually(
        Duration::from_secs(15),
        &format!("jobs {ids:?} to run under {worker}"),
        || async {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bosun.jobs
                 WHERE id = ANY($1) AND state = 'running' AND attempted_by = $2",
            )
            .bind(ids)
            .bind(worker)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            (running == ids.len() as i64).then_some(())
        },
    )
    .await;
}

async fn runs_jobs_from_rust_and_sql_and_records_failures(language: Language, id: &str) {
    let db = TestDb::new().await;
    let worker = Worker::start(&db, &language, id);
    let from_rust = db
        .client
        .enqueue(NewJob::new("greet", json!({ "name": "Rust" })))
        .await
        .unwrap()
        .id;
    let mut conn = db.raw().await;
    let from_sql: i64 = sqlx::query_scalar(r#"SELECT bosun.enqueue('greet', '{"name": "SQL"}')"#)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let failing: i64 = sqlx::query_scalar(
        r#"SELECT bosun.enqueue('always_fail', '{"message": "no greeting today"}', max_attempts => 2)"#,
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();

    for job in [from_rust, from_sql] {
        let done = wait_state(&db.client, job, JobState::Completed).await;
        assert_eq!((done.attempt, done.attempted_by.as_deref()), (1, Some(id)));
    }
    let failed = wait_state(&db.client, failing, JobState::Failed).await;
    let errors = failed.errors.as_array().unwrap();
    assert_eq!(
        errors.len(),
        2,
        "retryable after attempt 1, failed after 2: {errors:?}"
    );
    for (attempt, error) in (1..).zip(errors) {
        assert_eq!(error["attempt"], json!(attempt));
        assert_eq!(
            (&error["kind"], &error["worker"]),
            (&json!("error"), &json!(id))
        );
        let message = error["error"].as_str().unwrap();
        assert!(message.contains("no greeting today"), "{message}");
    }
    let log = worker.log();
    assert!(
        log.contains("Hello, Rust!") && log.contains("Hello, SQL!"),
        "{log}"
    );

    worker.stop().await;
    let registered: Option<Value> =
        sqlx::query_scalar("SELECT to_jsonb(w) FROM bosun.workers AS w WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    assert_eq!(registered, None, "deregistered on SIGTERM");
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_worker_runs_jobs_from_rust_and_sql_and_records_failures() {
    runs_jobs_from_rust_and_sql_and_records_failures(python(), "py-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_worker_runs_jobs_from_rust_and_sql_and_records_failures() {
    runs_jobs_from_rust_and_sql_and_records_failures(node(), "node-1").await;
}

/// Every job of `ids` completed by `worker` at attempt 2, claimed once by `first` and once
/// by `worker`, with `first`'s attempt rescued.
async fn assert_run_once_more_by(db: &TestDb, ids: &[i64], first: &str, worker: &str) {
    for &id in ids {
        let job = db.client.job_get(id).await.unwrap();
        assert_eq!(
            (job.state, job.attempt, job.attempted_by.as_deref()),
            (JobState::Completed, 2, Some(worker)),
            "job {id}"
        );
        let claims = claims_of(db, id).await;
        assert_eq!(
            claims,
            [(1, first.to_string()), (2, worker.to_string())],
            "job {id}"
        );
        let kinds: Vec<&Value> = job
            .errors
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["kind"])
            .collect();
        assert_eq!(kinds, [&json!("rescued")], "job {id}: {}", job.errors);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_python_workers_jobs_are_rescued_and_run_once_more_elsewhere() {
    let python = python();
    let db = TestDb::new().await;
    install_claim_ledger(&db).await;
    let doomed = Worker::start(&db, &python, "py-doomed");
    let naps = enqueue_naps(&db, 3, 2.0).await;
    wait_running_under(&db, &naps, "py-doomed").await;
    doomed.signal("-KILL");
    drop(doomed);

    // The rescuer serves another queue: only its maintenance leadership matters here.
    let rescuer = Replica::start_queues(&db, "rescuer", "elsewhere=1");
    let heir = Worker::start(&db, &python, "py-heir");
    for &id in &naps {
        let job = eventually(Duration::from_secs(30), "the naps to complete", || async {
            let job = db.client.job_get(id).await.unwrap();
            (job.state == JobState::Completed).then_some(job)
        })
        .await;
        assert_eq!(job.attempted_by.as_deref(), Some("py-heir"));
    }
    assert_run_once_more_by(&db, &naps, "py-doomed", "py-heir").await;

    heir.stop().await;
    rescuer.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_worker_paused_past_its_lease_changes_nothing_when_it_wakes() {
    let python = python();
    let db = TestDb::new().await;
    install_claim_ledger(&db).await;
    let sleeper = Worker::start(&db, &python, "py-sleeper");
    let naps = enqueue_naps(&db, 2, 1.0).await;
    wait_running_under(&db, &naps, "py-sleeper").await;
    sleeper.signal("-STOP");

    let rescuer = Replica::start_queues(&db, "rescuer", "elsewhere=1");
    let heir = Worker::start(&db, &python, "py-heir");
    for &id in &naps {
        eventually(Duration::from_secs(30), "the naps to complete", || async {
            let job = db.client.job_get(id).await.unwrap();
            (job.state == JobState::Completed).then_some(())
        })
        .await;
    }
    heir.stop().await;

    // Awake again, the sleeper finishes or stops each nap it held, and writes for attempt 1.
    sleeper.signal("-CONT");
    for &id in &naps {
        let finished = format!("job {id} attempt 1 finished, but is lost");
        let stopped = format!("job {id} attempt 1 stopped");
        eventually(
            Duration::from_secs(10),
            &format!("py-sleeper to find job {id} lost"),
            || async {
                let log = sleeper.log();
                (log.contains(&finished) || log.contains(&stopped)).then_some(())
            },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_run_once_more_by(&db, &naps, "py-sleeper", "py-heir").await;

    sleeper.stop().await;
    rescuer.stop().await;
    bosun_tests::assert_invariants_hold(&db.pool).await;
}
