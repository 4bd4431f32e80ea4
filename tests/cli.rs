//! The `bosun` binary, spawned as a user runs it: exit codes, messages, `--json`, a worker
//! process that shuts down gracefully on SIGTERM, the demo, and the embedded default.
//!
//! Exit status contract: 0 ok, 1 runtime error (`error: ...` on stderr), 2 usage error (clap's
//! message and the usage of the command concerned on stderr, before any database is touched).

use std::{
    io::Read,
    process::{Child, Command, Output, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use bosun_queue::{migrate, JobState, NewJob};
use bosun_tests::{bosun_bin, eventually, state_counts, TestDb};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// A URL nothing listens on: connecting to it fails only after the pool's 30 s timeout.
const UNREACHABLE_URL: &str = "postgres://bosun@127.0.0.1:1/nowhere";

fn run(database_url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(bosun_bin());
    command.args(args).env("RUST_LOG", "warn");
    match database_url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    command.output().expect("running bosun")
}

fn bosun(db: &TestDb, args: &[&str]) -> Output {
    run(Some(&db.url), args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run and expect success; returns stdout.
fn ok(db: &TestDb, args: &[&str]) -> String {
    let output = bosun(db, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "bosun {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Run and expect success; returns stdout parsed as JSON.
fn json_of(db: &TestDb, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bosun {args:?} printed no JSON ({e}): {out}"))
}

/// Run and expect a runtime error: status 1, nothing on stdout, `error: ...` naming `message`
/// on stderr and no usage text (it is not the command line's fault).
fn fails(db: &TestDb, args: &[&str], message: &str) {
    let output = bosun(db, args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "bosun {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(message),
        "bosun {args:?} says {message:?}: {err}"
    );
    assert!(!err.contains("Usage:"), "bosun {args:?}: {err}");
    assert_eq!(stdout(&output), "", "bosun {args:?} prints nothing");
}

async fn job_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn queue_rows(db: &TestDb) -> Vec<(String, bool)> {
    sqlx::query_as("SELECT name, paused FROM bosun.queues ORDER BY name")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn has_bosun_schema(db: &TestDb) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'bosun')")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn set_state(db: &TestDb, id: i64, state: &str) {
    sqlx::query(
        "UPDATE bosun.jobs SET state = $2::bosun.job_state, attempt = 1, attempted_at = now(),
             finalized_at = CASE WHEN $2 IN ('completed', 'failed', 'cancelled') THEN now() END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// Usage errors, with a fragment of clap's message and the usage line of the command
/// concerned (the usage is shown even for value errors, whose clap message has none).
const USAGE_ERRORS: &[(&[&str], &str, &str)] = &[
    (
        &["frobnicate"],
        "unrecognized subcommand 'frobnicate'",
        "Usage: bosun [OPTIONS] <COMMAND>",
    ),
    (
        &["jobs", "--no-such-flag"],
        "unexpected argument '--no-such-flag'",
        "Usage: bosun jobs ",
    ),
    (
        &["enqueue", "echo", "[1]"],
        "args must be a JSON object",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "{not json"],
        "not valid JSON",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "--in", "forever"],
        "invalid value 'forever' for '--in <DURATION>'",
        "Usage: bosun enqueue ",
    ),
    (
        &[
            "enqueue",
            "echo",
            "--in",
            "1s",
            "--at",
            "2030-01-01T00:00:00Z",
        ],
        "cannot be used with",
        "Usage: bosun enqueue ",
    ),
    (
        &["enqueue", "echo", "--priority", "40000"],
        "40000 is not in -32768..=32767",
        "Usage: bosun enqueue ",
    ),
    (
        &["worker", "--queues", "mail=0"],
        "concurrency of \"mail\" must be a whole number above 0",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--queues", "bad name=1"],
        "queue \"bad name\" is not a valid name",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--queues", "mail"],
        "is not NAME=CONCURRENCY",
        "Usage: bosun worker ",
    ),
    (
        &["worker", "--poll-interval", "often"],
        "invalid value 'often' for '--poll-interval <POLL_INTERVAL>'",
        "Usage: bosun worker ",
    ),
    (
        &["jobs", "--state", "done"],
        "state 'done' is not one of",
        "Usage: bosun jobs ",
    ),
    (
        &["jobs", "--limit", "0"],
        "0 is not in 1..=100000",
        "Usage: bosun jobs ",
    ),
    (
        &["job", "not-a-number"],
        "invalid value 'not-a-number'",
        "Usage: bosun job ",
    ),
    (&["job"], "<ID>", "Usage: bosun job "),
    (&["retry"], "<ID|--all>", "Usage: bosun retry "),
    (
        &["retry", "1", "--all"],
        "cannot be used with '--all'",
        "Usage: bosun retry ",
    ),
    // The filters only make sense with --all; with an id they must not be silently ignored.
    (
        &["retry", "1", "--queue", "mail"],
        "cannot be used with '--queue <QUEUE>'",
        "Usage: bosun retry ",
    ),
    (
        &["retry", "1", "--state", "cancelled"],
        "cannot be used with '--state <STATE>'",
        "Usage: bosun retry ",
    ),
    (&["cancel"], "<ID>", "Usage: bosun cancel "),
    (&["queues", "pause"], "<NAME>", "Usage: bosun queues pause "),
    (
        &["migrate", "--status", "--down-to", "0"],
        "cannot be used with",
        "Usage: bosun migrate ",
    ),
    (
        &["demo", "--jobs", "5"],
        "5 is not in 10..=100000",
        "Usage: bosun demo ",
    ),
];

fn assert_usage_error(output: &Output, args: &[&str], message: &str, usage: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "bosun {args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(message),
        "bosun {args:?} says {message:?}: {err}"
    );
    assert!(err.contains(usage), "bosun {args:?} shows {usage:?}: {err}");
    assert_eq!(
        stdout(output),
        "",
        "bosun {args:?} prints nothing on stdout"
    );
}

#[tokio::test]
async fn usage_errors_exit_2_with_usage_and_change_nothing() {
    let db = TestDb::new().await;
    db.client
        .enqueue(NewJob::new("echo", json!({})).queue("existing"))
        .await
        .unwrap();
    let jobs_before = state_counts(&db.pool).await;
    let queues_before = queue_rows(&db).await;

    for (args, message, usage) in USAGE_ERRORS {
        assert_usage_error(&bosun(&db, args), args, message, usage);
    }
    assert_eq!(state_counts(&db.pool).await, jobs_before);
    assert_eq!(job_count(&db).await, 1, "no job was enqueued");
    assert_eq!(queue_rows(&db).await, queues_before, "no queue was touched");

    // A usage error is reported before any connection: against an unreachable server it is
    // immediate (connecting would take the pool's 30 s timeout), and with no DATABASE_URL no
    // throwaway server is started.
    let started = Instant::now();
    for url in [Some(UNREACHABLE_URL), None] {
        for (args, message, usage) in USAGE_ERRORS {
            let output = run(url, args);
            assert_usage_error(&output, args, message, usage);
            assert!(
                !stderr(&output).contains("throwaway"),
                "bosun {args:?} started no server: {}",
                stderr(&output)
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "usage errors do not connect (took {:?})",
        started.elapsed()
    );

    // --help and --version are not errors.
    let help = run(Some(UNREACHABLE_URL), &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: bosun [OPTIONS] <COMMAND>"));
    let help = run(Some(UNREACHABLE_URL), &["enqueue", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(stdout(&help).contains("Usage: bosun enqueue "));
    let version = run(Some(UNREACHABLE_URL), &["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(
        stdout(&version).starts_with("bosun "),
        "{}",
        stdout(&version)
    );
}

#[tokio::test]
async fn runtime_errors_exit_1_with_a_clear_message() {
    let db = TestDb::new().await;
    fails(&db, &["job", "999999"], "no job with id 999999");
    fails(&db, &["job", "999999", "--json"], "no job with id 999999");
    fails(&db, &["cancel", "999999"], "no job with id 999999");
    fails(&db, &["retry", "999999"], "no job with id 999999");
    fails(&db, &["enqueue", "bad kind"], "kind 'bad kind' is invalid");
    fails(
        &db,
        &["enqueue", "echo", "--max-attempts", "0"],
        "max_attempts must be at least 1",
    );
    // Parses as a duration, but the time is beyond what can be represented: an error, not a
    // panic.
    fails(
        &db,
        &["enqueue", "echo", "--in", "300000years"],
        "--in 300000years is too far in the future",
    );
    fails(
        &db,
        &["enqueue", "echo", "--queue", "bad queue"],
        "queue 'bad queue' is invalid",
    );
    fails(
        &db,
        &["queues", "pause", "bad queue"],
        "not a valid queue name",
    );
    fails(
        &db,
        &["retry", "--all", "--state", "running"],
        "state must be scheduled, retryable, failed, cancelled or completed, got running",
    );
    assert_eq!(job_count(&db).await, 0, "failed commands enqueue nothing");

    // Cancelling a finished job.
    let done = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    set_state(&db, done, "completed").await;
    fails(
        &db,
        &["cancel", &done.to_string()],
        &format!("job {done} is already completed"),
    );
    assert_eq!(
        db.client.job_get(done).await.unwrap().state,
        JobState::Completed
    );

    // Retrying a running job.
    let running = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    set_state(&db, running, "running").await;
    fails(
        &db,
        &["retry", &running.to_string(), "--json"],
        &format!("job {running} is running"),
    );
    let still = db.client.job_get(running).await.unwrap();
    assert_eq!((still.state, still.attempt), (JobState::Running, 1));

    // A database without Bosun's schema: every command but migrate and demo says what to do,
    // and none of them creates the schema behind the user's back.
    let empty = TestDb::empty().await;
    for args in [
        &["jobs"][..],
        &["jobs", "--json"],
        &["enqueue", "echo"],
        &["queues"],
        &["job", "1"],
    ] {
        fails(&empty, args, "run `bosun migrate`");
    }
    assert!(!has_bosun_schema(&empty).await, "nothing was created");
}

#[tokio::test]
async fn enqueue_inspect_and_operate_with_json() {
    let db = TestDb::new().await;

    // Enqueue with every common option.
    let enqueued = json_of(
        &db,
        &[
            "enqueue",
            "echo",
            r#"{"a":1}"#,
            "--queue",
            "mail",
            "--priority",
            "3",
            "--tag",
            "t1",
            "--json",
        ],
    );
    let id = enqueued["id"].as_i64().expect("an id");
    assert_eq!(enqueued, json!({"id": id, "inserted": true}));

    // Unique keys: the second enqueue returns the first job.
    let first = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    let second = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    let unique_id = first["id"].as_i64().expect("an id");
    assert_eq!(first, json!({"id": unique_id, "inserted": true}));
    assert_eq!(second, json!({"id": unique_id, "inserted": false}));
    assert_ne!(unique_id, id);
    let human = ok(&db, &["enqueue", "echo", "--unique-key", "k"]);
    assert!(
        human.contains(&format!("job {unique_id} already exists")),
        "{human}"
    );
    let keyed: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE unique_key = 'k'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(keyed, 1);

    // A delayed job is scheduled about an hour ahead.
    let before = chrono::Utc::now();
    let later = json_of(
        &db,
        &["enqueue", "sleep", r#"{"ms":1}"#, "--in", "1h", "--json"],
    );
    let later_id = later["id"].as_i64().expect("an id");
    let later_job = json_of(&db, &["job", &later_id.to_string(), "--json"]);
    assert_eq!(later_job["state"], json!("scheduled"));
    assert_eq!(later_job["kind"], json!("sleep"));
    assert_eq!(later_job["args"], json!({"ms": 1}));
    let scheduled_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(later_job["scheduled_at"].clone()).unwrap();
    let ahead = scheduled_at - before;
    assert!(
        ahead > chrono::Duration::minutes(59) && ahead < chrono::Duration::minutes(61),
        "scheduled {ahead} ahead"
    );

    // Listing: by queue, by state, and all of them newest first.
    let listed = json_of(&db, &["jobs", "--json", "--queue", "mail"]);
    let listed = listed.as_array().expect("an array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(listed[0]["queue"], json!("mail"));
    let scheduled = json_of(&db, &["jobs", "--json", "--state", "scheduled"]);
    assert_eq!(
        scheduled
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(later_id)]
    );
    let all = json_of(&db, &["jobs", "--json"]);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![later_id, unique_id, id],
        "newest first"
    );
    let limited = json_of(&db, &["jobs", "--json", "--limit", "1"]);
    assert_eq!(limited.as_array().unwrap().len(), 1);
    let table = ok(&db, &["jobs", "--queue", "mail"]);
    let row = table
        .lines()
        .find(|line| line.contains(" mail "))
        .unwrap_or_else(|| panic!("a row for queue mail: {table}"));
    assert!(
        row.contains(&format!(" {id} ")) && row.contains("echo") && row.contains("available"),
        "{table}"
    );
    assert!(table.contains("1 job\n"), "{table}");
    assert!(!table.contains("sleep"), "filtered by queue: {table}");

    // One job in detail.
    let job = json_of(&db, &["job", &id.to_string(), "--json"]);
    assert_eq!(job["id"], json!(id));
    assert_eq!(job["kind"], json!("echo"));
    assert_eq!(job["queue"], json!("mail"));
    assert_eq!(job["args"], json!({"a": 1}));
    assert_eq!(job["tags"], json!(["t1"]));
    assert_eq!(job["priority"], json!(3));
    assert_eq!(job["state"], json!("available"));
    assert_eq!(job["attempt"], json!(0));
    let human = ok(&db, &["job", &id.to_string()]);
    assert!(
        human.contains(&format!("job {id}  echo  [available]")),
        "{human}"
    );
    assert!(human.contains("queue        mail  (priority 3)"), "{human}");
    assert!(human.contains("tags         t1"), "{human}");
    assert!(human.contains(r#"args         {"a":1}"#), "{human}");

    // Pause and resume a queue.
    let paused = json_of(&db, &["queues", "pause", "mail", "--json"]);
    assert_eq!(paused["name"], json!("mail"));
    assert_eq!(paused["paused"], json!(true));
    let mail_stats = |stats: &Value| {
        stats
            .as_array()
            .expect("an array")
            .iter()
            .find(|q| q["queue"] == json!("mail"))
            .cloned()
            .unwrap_or_else(|| panic!("mail listed: {stats}"))
    };
    let mail = mail_stats(&json_of(&db, &["queues", "--json"]));
    assert_eq!(mail["paused"], json!(true));
    assert_eq!(mail["available"], json!(1));
    assert_eq!(mail["scheduled"], json!(0));
    let listed = mail_stats(&json_of(&db, &["queues", "list", "--json"]));
    assert_eq!(
        (&listed["paused"], &listed["available"]),
        (&json!(true), &json!(1)),
        "`queues list` is `queues`"
    );
    let table = ok(&db, &["queues"]);
    let row = table
        .lines()
        .find(|line| line.contains(" mail "))
        .unwrap_or_else(|| panic!("a row for mail: {table}"));
    assert!(row.contains(" yes "), "mail shows as paused: {row}");
    let row = table
        .lines()
        .find(|line| line.contains(" default "))
        .unwrap_or_else(|| panic!("a row for default: {table}"));
    assert!(row.contains(" no "), "default is not paused: {row}");
    let resumed = ok(&db, &["queues", "resume", "mail"]);
    assert!(resumed.contains("queue mail resumed"), "{resumed}");
    assert_eq!(
        mail_stats(&json_of(&db, &["queues", "--json"]))["paused"],
        json!(false)
    );
    let resumed = json_of(&db, &["queues", "resume", "mail", "--json"]);
    assert_eq!(resumed["paused"], json!(false), "resuming is idempotent");

    // Cancel, retry one, and retry all cancelled.
    let cancelled = json_of(&db, &["cancel", &id.to_string(), "--json"]);
    assert_eq!(cancelled["id"], json!(id));
    assert_eq!(cancelled["state"], json!("cancelled"));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Cancelled
    );
    let retried = json_of(&db, &["retry", &id.to_string(), "--json"]);
    assert_eq!(retried["id"], json!(id));
    assert_eq!(retried["state"], json!("available"));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Available
    );
    assert!(ok(&db, &["cancel", &id.to_string()]).contains(&format!("job {id} cancelled")));
    assert_eq!(
        json_of(&db, &["retry", "--all", "--json"]),
        json!([]),
        "nothing failed"
    );
    let all = json_of(&db, &["retry", "--all", "--state", "cancelled", "--json"]);
    assert_eq!(all, json!([id]));
    assert_eq!(
        db.client.job_get(id).await.unwrap().state,
        JobState::Available
    );
    let human = ok(&db, &["retry", "--all", "--state", "cancelled"]);
    assert!(
        human.contains("0 cancelled jobs are available again"),
        "{human}"
    );

    let table = ok(&db, &["jobs"]);
    for expected in [id, unique_id, later_id] {
        assert!(
            table
                .lines()
                .any(|line| line.contains(&format!(" {expected} "))),
            "job {expected} listed: {table}"
        );
    }
    assert!(table.contains("3 jobs"), "{table}");
}

#[tokio::test]
async fn migrate_up_status_down_and_up() {
    let db = TestDb::empty().await;
    let latest = migrate::latest_version();
    let versions: Vec<i64> = migrate::migrations().iter().map(|m| m.version).collect();

    let status = json_of(&db, &["migrate", "--status", "--json"]);
    assert_eq!(
        status,
        json!({"current": 0, "latest": latest, "changed": []})
    );
    assert!(!has_bosun_schema(&db).await, "--status changes nothing");

    let out = ok(&db, &["migrate"]);
    assert!(
        out.contains(&format!("applied migrations {versions:?}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("schema at version {latest}")),
        "{out}"
    );
    let status = json_of(&db, &["migrate", "--status", "--json"]);
    assert_eq!(status["current"], status["latest"]);
    assert_eq!(status["current"], json!(latest));

    // Twice is fine and changes nothing.
    let out = ok(&db, &["migrate"]);
    assert!(!out.contains("applied"), "{out}");
    assert!(
        out.contains(&format!("schema at version {latest}")),
        "{out}"
    );
    assert_eq!(
        json_of(&db, &["migrate", "--json"]),
        json!({"current": latest, "latest": latest, "changed": []})
    );

    // Down to zero removes the schema, jobs and all; up again starts afresh.
    ok(&db, &["enqueue", "echo"]);
    assert_eq!(job_count(&db).await, 1);
    let mut reverted = versions.clone();
    reverted.reverse();
    assert_eq!(
        json_of(&db, &["migrate", "--down-to", "0", "--json"]),
        json!({"current": 0, "latest": latest, "changed": reverted})
    );
    assert!(!has_bosun_schema(&db).await);
    fails(&db, &["jobs"], "run `bosun migrate`");
    assert_eq!(
        json_of(&db, &["migrate", "--json"]),
        json!({"current": latest, "latest": latest, "changed": versions})
    );
    assert_eq!(job_count(&db).await, 0);
    assert_eq!(json_of(&db, &["jobs", "--json"]), json!([]));
}

/// A spawned `bosun worker`, killed if the test fails before it exits, whose stderr is read
/// on a thread so that its logging can never fill the pipe and stall it.
struct WorkerProcess {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

impl WorkerProcess {
    fn start(db: &TestDb, args: &[&str]) -> WorkerProcess {
        let mut child = Command::new(bosun_bin())
            .arg("worker")
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting bosun worker");
        let mut pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        WorkerProcess {
            child,
            stderr: Some(stderr),
        }
    }

    fn terminate(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(kill.success(), "kill -TERM failed");
    }

    /// Wait up to `timeout` for the process to exit; its status and stderr.
    async fn wait(&mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling the worker") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let stderr = self
            .stderr
            .take()
            .expect("waited once")
            .join()
            .expect("reading stderr");
        (status, stderr)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_runs_jobs_and_hands_back_on_sigterm() {
    let db = TestDb::new().await;
    let mut worker = WorkerProcess::start(
        &db,
        &[
            "--queues",
            "default=4",
            "--poll-interval",
            "100ms",
            "--shutdown-timeout",
            "500ms",
        ],
    );

    let mut completing = db
        .client
        .enqueue_many((0..20).map(|i| NewJob::new("echo", json!({ "i": i }))))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect::<Vec<_>>();
    assert_eq!(completing.len(), 20);
    let boom = db
        .client
        .enqueue(NewJob::new(
            "fail",
            json!({"permanent": true, "message": "boom"}),
        ))
        .await
        .unwrap()
        .id;
    let flaky = db
        .client
        .enqueue(NewJob::new("flaky", json!({"p": 0.0})))
        .await
        .unwrap()
        .id;
    completing.push(flaky);

    eventually(Duration::from_secs(30), "all 22 jobs final", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    for id in &completing {
        let job = db.client.job_get(*id).await.unwrap();
        assert_eq!(
            (job.state, job.attempt),
            (JobState::Completed, 1),
            "job {id} ({})",
            job.kind
        );
        assert!(
            job.attempt_errors().is_empty(),
            "job {id}: {:?}",
            job.errors
        );
    }
    let failed = db.client.job_get(boom).await.unwrap();
    assert_eq!((failed.state, failed.attempt), (JobState::Failed, 1));
    let errors = failed.attempt_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error, "boom");
    assert_eq!(errors[0].attempt, 1);
    assert_eq!(
        state_counts(&db.pool).await,
        [("completed".to_string(), 21), ("failed".to_string(), 1)].into()
    );

    // A job that would run for 30 s when SIGTERM arrives: after the 500 ms shutdown timeout
    // its (cancellable) handler is stopped and the job handed back, not used up.
    let sleeper = db
        .client
        .enqueue(NewJob::new("sleep", json!({"ms": 30_000})))
        .await
        .unwrap()
        .id;
    let running = eventually(Duration::from_secs(10), "the sleep job to run", || async {
        let job = db.client.job_get(sleeper).await.unwrap();
        (job.state == JobState::Running).then_some(job)
    })
    .await;
    assert_eq!(running.attempt, 1);

    let signalled = Instant::now();
    worker.terminate();
    let (status, stderr) = worker.wait(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "graceful shutdown exits 0: {stderr}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "the worker waited for the shutdown timeout before handing back (exited after {took:?})"
    );
    assert!(
        stderr.contains("handed 1 unfinished job back"),
        "the worker reports the hand-back: {stderr}"
    );
    // Its logs went to a pipe, not a terminal: plain text, no colour codes.
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "no escape codes in logs written to a pipe: {stderr:?}"
    );

    let handed_back = db.client.job_get(sleeper).await.unwrap();
    assert_eq!(handed_back.state, JobState::Available);
    assert_eq!(handed_back.attempt, running.attempt);
    assert_eq!(
        handed_back.max_attempts,
        running.max_attempts + 1,
        "the interrupted attempt does not count"
    );
    assert!(
        handed_back.attempt_errors().is_empty(),
        "a shutdown is not the job's error: {:?}",
        handed_back.errors
    );
}

#[tokio::test]
async fn demo_runs_every_job_to_a_final_state() {
    let db = TestDb::new().await;
    let summary = json_of(&db, &["demo", "--jobs", "40", "--json"]);
    assert_eq!(summary["jobs"], json!(40));
    assert!(summary["elapsed_s"].as_f64().is_some_and(|s| s > 0.0));
    assert_eq!(
        summary["sagas"],
        json!({"succeeded": 2, "compensated": 2}),
        "the demo's sagas finish too"
    );
    let kinds = summary["kinds"].as_object().expect("kinds");
    for (kind, numbers) in kinds {
        assert_eq!(numbers["unfinished"], json!(0), "{kind}: {numbers}");
    }
    // The mix repeats every 20 jobs: 8 echo, 4 sleep, 6 flaky, 1 retrying fail (3 attempts),
    // 1 permanent fail.
    let mut names: Vec<&str> = kinds.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["echo", "fail", "flaky", "sleep"]);
    let total: u64 = kinds.values().map(|k| k["jobs"].as_u64().unwrap()).sum();
    assert_eq!(total, 40);
    for (kind, jobs) in [("echo", 16), ("sleep", 8)] {
        assert_eq!(kinds[kind]["jobs"], json!(jobs), "{kind}");
        assert_eq!(kinds[kind]["completed"], json!(jobs), "{kind}");
        assert_eq!(kinds[kind]["attempts"], json!(jobs), "{kind}");
    }
    assert_eq!(kinds["flaky"]["jobs"], json!(12));
    assert_eq!(
        kinds["fail"],
        json!({"jobs": 4, "completed": 0, "failed": 4, "cancelled": 0, "unfinished": 0, "attempts": 8})
    );

    // The summary is what the database holds for the demo's queue (the sagas' step jobs run
    // on `default`: 6 for the two that succeed, 3 and 5 for the two that compensate).
    let counts: std::collections::BTreeMap<String, i64> = sqlx::query_as(
        "SELECT state::text, count(*) FROM bosun.jobs WHERE queue = 'bosun-demo' GROUP BY state",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let final_jobs: i64 = counts
        .iter()
        .filter(|(state, _)| ["completed", "failed", "cancelled"].contains(&state.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(final_jobs, 40, "{counts:?}");
    let saga_jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bosun.jobs WHERE kind = 'saga:example.provision'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(saga_jobs, 14);
    let flaky_failed = kinds["flaky"]["failed"].as_i64().unwrap();
    assert_eq!(counts.get("failed").copied(), Some(4 + flaky_failed));
}

#[tokio::test]
async fn without_a_database_url_bosun_uses_a_throwaway_postgres() {
    let output = run(None, &["demo", "--jobs", "20"]);
    let err = stderr(&output);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        err.contains("no DATABASE_URL given: started a throwaway PostgreSQL"),
        "{err}"
    );
    assert!(out.contains("20 jobs in"), "{out}");
    assert!(
        out.contains("(This ran on a throwaway PostgreSQL, now removed.)"),
        "{out}"
    );

    // The server it announced is gone once bosun has exited.
    let url = err
        .split_once(" at postgres://")
        .and_then(|(_, rest)| rest.split_once("; it is removed"))
        .map(|(url, _)| format!("postgres://{url}"))
        .unwrap_or_else(|| panic!("the server's URL is announced: {err}"));
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "the throwaway server at {url} is still up"
    );
}

/// Without a database, a command that writes or reads one refuses (exit 2) and says how to
/// give one: a throwaway server would lose what it wrote when bosun exits.
#[tokio::test]
async fn without_a_database_url_commands_other_than_demo_and_bench_exit_2() {
    for args in [
        &["enqueue", "echo"][..],
        &["jobs"],
        &["queues"],
        &["migrate"],
        &["doctor"],
        &["workers"],
    ] {
        let output = run(None, args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "bosun {args:?}: {err}");
        assert_eq!(stdout(&output), "", "bosun {args:?} prints nothing: {err}");
        assert!(
            err.starts_with("error: no database given")
                && err.contains("DATABASE_URL=postgres://user@host/db")
                && err.contains("--database-url"),
            "bosun {args:?} says how to give a database: {err}"
        );
        assert!(
            !err.contains("throwaway PostgreSQL from"),
            "bosun {args:?}: {err}"
        );
    }
}

/// A URL of another database's scheme is refused before anything is sent, even when it
/// points at a PostgreSQL server (sqlx would read it as a PostgreSQL URL).
#[tokio::test]
async fn a_url_that_is_not_postgresql_is_refused_with_exit_2() {
    let db = TestDb::new().await;
    let mysql = db.url.replacen("postgres://", "mysql://", 1);
    assert_ne!(mysql, db.url);
    let output = run(Some(&mysql), &["enqueue", "echo"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert_eq!(stdout(&output), "");
    assert!(
        err.contains("Bosun needs a PostgreSQL URL") && err.contains("\"mysql://\""),
        "{err}"
    );
    assert_eq!(job_count(&db).await, 0, "nothing was enqueued");
    // No scheme at all, or a huge one: the message says so and stays short.
    let output = run(Some("127.0.0.1/db"), &["jobs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("got one without a scheme"),
        "{}",
        stderr(&output)
    );
    let huge = format!("{}://u@h/db", "x".repeat(100_000));
    let output = run(Some(&huge), &["jobs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).len() < 500, "{}", stderr(&output));
    // The scheme is not case-sensitive, and `postgresql://` is as good as `postgres://`.
    let upper = db.url.replacen("postgres://", "PostgreSQL://", 1);
    assert_eq!(
        run(Some(&upper), &["enqueue", "echo"]).status.code(),
        Some(0)
    );
    assert_eq!(job_count(&db).await, 1);
}

#[tokio::test]
async fn an_unreachable_database_fails_at_once_with_the_cause() {
    let started = Instant::now();
    let output = Command::new(bosun_bin())
        .args(["jobs"])
        .env("DATABASE_URL", "postgres://bosun@127.0.0.1:1/nowhere")
        .output()
        .expect("running bosun");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no pool timeout wait"
    );
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        message.matches("Connection refused").count(),
        1,
        "the cause is said once: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_start_run_and_show_their_ledger() {
    let db = TestDb::new().await;
    let started = bosun(
        &db,
        &[
            "sagas",
            "start",
            "example.provision",
            "vm-9",
            r#"{"fail_at":"create"}"#,
            "--json",
        ],
    );
    assert!(started.status.success(), "{}", stderr(&started));
    let id = serde_json::from_slice::<Value>(&started.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = bosun(
        &db,
        &[
            "sagas",
            "start",
            "example.provision",
            "vm-9",
            r#"{"fail_at":"create"}"#,
            "--json",
        ],
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&again.stdout).unwrap()["id"],
        json!(id),
        "the same key, kind and inputs return the same saga"
    );

    let mut worker = Command::new(bosun_bin())
        .args(["worker", "--poll-interval", "100ms"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shown = eventually(
        Duration::from_secs(15),
        "the saga to compensate",
        || async {
            let output = bosun(&db, &["saga", &id, "--json"]);
            let shown: Value = serde_json::from_slice(&output.stdout).ok()?;
            (shown["saga"]["state"] == json!("compensated")).then_some(shown)
        },
    )
    .await;
    let _ = worker.kill();
    let _ = worker.wait();
    let states: Vec<&str> = shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["undone", "failed", "pending"]);

    let timeline = stdout(&bosun(&db, &["saga", &id]));
    assert!(timeline.contains("reserve: undone"), "{timeline}");
    assert!(
        timeline.contains("create: failed (attempt 1: create failed on purpose"),
        "{timeline}"
    );
    let listed = json_of(&db, &["sagas", "--state", "compensated", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let cancel = bosun(&db, &["saga", &id, "--cancel"]);
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("already compensated"),
        "{}",
        stderr(&cancel)
    );
    let usage = bosun(&db, &["saga", "not-a-uuid"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn targets_register_list_and_expunge() {
    let db = TestDb::new().await;
    let registered = json_of(
        &db,
        &[
            "targets", "register", "pantry-1", "--kind", "pantry", "--json",
        ],
    );
    assert_eq!(registered["state"], "in_service");
    ok(&db, &["enqueue", "echo", "--target", "pantry-1"]);
    let listed = ok(&db, &["targets"]);
    assert!(
        listed.contains("pantry-1") && listed.contains("in_service"),
        "{listed}"
    );
    assert!(listed.contains("1 target, 0 expunged"), "{listed}");

    let said = ok(&db, &["expunge", "pantry-1", "--reason", "sled 12 pulled"]);
    assert!(
        said.contains("expunged target pantry-1: 1 live job and 0 live sagas"),
        "{said}"
    );
    let again = ok(&db, &["expunge", "pantry-1"]);
    assert!(again.contains("already expunged"), "{again}");
    assert!(again.contains("sled 12 pulled"), "{again}");
    let listed = json_of(&db, &["targets", "--json"]);
    assert_eq!(listed[0]["state"], "expunged");
    assert_eq!(listed[0]["reason"], "sled 12 pulled");

    fails(
        &db,
        &["enqueue", "echo", "--target", "pantry-1"],
        "target 'pantry-1' is expunged (sled 12 pulled)",
    );
    fails(&db, &["expunge", "pantry-9"], "no target named 'pantry-9'");
    let usage = bosun(&db, &["expunge"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("Usage:"));
    assert_eq!(job_count(&db).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_job_span_with_its_saga() {
    let db = TestDb::new().await;
    let mut command = Command::new(bosun_bin());
    command.env("RUST_LOG", "bosun_workers=debug");
    let worker = bosun_tests::Replica::spawn_args(
        command,
        &db.url,
        &db.name,
        "json-logs",
        "default=2",
        &["--log-format", "json"],
    );
    let id = db
        .client
        .start_saga("example.provision", "json-logs", &json!({}))
        .await
        .unwrap();
    eventually(Duration::from_secs(15), "the saga to succeed", || async {
        let saga = bosun_queue::saga::saga_get(&db.pool, id).await.unwrap();
        (saga.state == bosun_queue::SagaState::Succeeded).then_some(())
    })
    .await;
    let log = worker.log();
    worker.stop().await;
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let recorded = lines
        .iter()
        .find(|l| l["fields"]["message"] == "attempt recorded" && l["span"]["saga"] == json!(id))
        .expect("a step's attempt logged with its saga");
    let span = &recorded["span"];
    assert_eq!(span["kind"], "saga:example.provision");
    assert_eq!(span["queue"], "default");
    assert_eq!(span["attempt"], 1);
    assert!(span["id"].is_i64());
}

/// The smoke run of `bosun bench`: every workload, tiny, one JSON object per line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_every_workload_and_reports_json_lines() {
    let db = TestDb::new().await;
    let out = ok(
        &db,
        &[
            "bench",
            "--runs",
            "2",
            "--jobs",
            "300",
            "--single",
            "20",
            "--latency-jobs",
            "5",
            "--sagas",
            "5",
            "--json",
        ],
    );
    let reports: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "W0", "W0j", "W1", "W1b", "W1c", "W1w", "W1p", "W2", "W2x4", "W2r", "W3", "W4", "S1",
            "S4"
        ]
    );
    for report in &reports {
        assert_eq!(report["runs"], 2);
        let spread = &report["jobs_per_s"];
        assert!(spread["median"].as_f64().unwrap() > 0.0, "{report}");
        assert!(spread["min"].as_f64() <= spread["max"].as_f64(), "{report}");
    }
    let report = |name: &str| &reports[names.iter().position(|n| *n == name).unwrap()];
    assert!(report("W3")["p99_ms"]["median"].as_f64().unwrap() > 0.0);
    assert!(report("W2")["of_w0_ceiling"].as_f64().unwrap() > 0.0);
    assert!(report("W2")["rss_mib"]["max"].as_f64().unwrap() > 1.0);
    assert!(report("W4")["size_growth"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(report("W4")["jobs"], 300 * 16);

    let only = ok(
        &db,
        &[
            "bench", "--runs", "1", "--jobs", "50", "--only", "w1", "--json",
        ],
    );
    assert_eq!(only.lines().count(), 1);
    let usage = bosun(&db, &["bench", "--only", "W9"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("no workload \"W9\""));
    // The scratch database is gone.
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'bosun_bench_%'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn work_of_a_kind_no_worker_serves_is_reported_and_a_saga_that_never_ran_can_be_deleted() {
    let db = TestDb::new().await;
    let output = bosun(&db, &["enqueue", "email.sned", "{}"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no worker has ever served kind 'email.sned'"),
        "{}",
        stderr(&output)
    );
    // A worker registers the kinds it serves.
    sqlx::query(
        "INSERT INTO bosun.workers (id, host, pid, kinds, expires_at)
         VALUES ('w1', 'h', 1, '{echo,saga:example.provision}', now() + interval '1 minute')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let output = bosun(&db, &["enqueue", "echo", "{}"]);
    assert_eq!(stderr(&output), "", "a served kind gets no warning");
    let listed = json_of(&db, &["jobs", "--json"]);
    let served: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["kind"].as_str().unwrap().to_string(),
                j["kind_served"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        served,
        [
            ("echo".to_string(), true),
            ("email.sned".to_string(), false)
        ]
    );
    assert!(ok(&db, &["jobs"]).contains("NO"));

    // A typo'd saga kind: accepted, reported, and its key is not burnt for good.
    let output = bosun(
        &db,
        &["sagas", "start", "example.provison", "vm-1", "{}", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("kind 'saga:example.provison'"));
    let started: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let listed = json_of(&db, &["sagas", "--json"]);
    assert_eq!(listed[0]["kind_served"], false);
    fails(
        &db,
        &["sagas", "start", "example.provision", "vm-1", "{}"],
        "other kind: 'example.provison' (given 'example.provision')",
    );
    assert!(ok(&db, &["saga", &id, "--delete"]).contains(&format!("deleted saga {id}")));
    ok(&db, &["sagas", "start", "example.provision", "vm-1", "{}"]);
    // A saga that has run a step cannot be deleted: it is cancelled instead.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM bosun.sagas")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE bosun.jobs SET state = 'running', attempt = 1 WHERE kind LIKE 'saga:%'")
        .execute(&db.pool)
        .await
        .unwrap();
    fails(
        &db,
        &["saga", &id.to_string(), "--delete"],
        "cancel it instead",
    );
}

/// What a terminal would act on, in text a client stored.
const HOSTILE: &str = "\x1b[31m\r\n";

/// `output` has no byte a terminal would act on (ESC, CR), and shows `HOSTILE` escaped.
fn assert_escaped(args: &[&str], output: &str) {
    assert!(
        !output.contains('\x1b') && !output.contains('\r'),
        "bosun {args:?} printed a raw control character: {output:?}"
    );
    assert!(
        output.contains("\\x1b[31m"),
        "bosun {args:?} shows the escape visibly: {output}"
    );
}

#[tokio::test]
async fn text_views_show_control_characters_escaped() {
    let db = TestDb::new().await;
    let key = format!("key{HOSTILE}");
    let job = db
        .client
        .enqueue(
            NewJob::new("echo", json!({}))
                .unique_key(&key)
                .tags([format!("tag{HOSTILE}")])
                .target(format!("pantry{HOSTILE}")),
        )
        .await
        .unwrap()
        .id;
    // A handler's error and the worker's name, as an attempt that failed leaves them.
    sqlx::query(
        "UPDATE bosun.jobs SET state = 'failed', attempt = 1, attempted_at = now(),
             finalized_at = now(), attempted_by = $2,
             errors = jsonb_build_array(jsonb_build_object(
                 'at', now(), 'attempt', 1, 'error', $3::text, 'worker', $2::text))
         WHERE id = $1",
    )
    .bind(job)
    .bind(format!("worker{HOSTILE}"))
    .bind(format!("boom{HOSTILE}forged line"))
    .execute(&db.pool)
    .await
    .unwrap();
    let saga = db
        .client
        .start_saga("example.provision", &format!("vm{HOSTILE}"), &json!({}))
        .await
        .unwrap();
    sqlx::query("UPDATE bosun.sagas SET error = $2 WHERE id = $1")
        .bind(saga)
        .bind(format!("undo{HOSTILE}"))
        .execute(&db.pool)
        .await
        .unwrap();

    let id = job.to_string();
    let saga = saga.to_string();
    for args in [
        &["job", &id][..],
        &["jobs"],
        &["jobs", "--state", "failed"],
        &["targets"],
        &["sagas"],
        &["saga", &saga],
    ] {
        assert_escaped(args, &ok(&db, args));
    }
    let shown = ok(&db, &["job", &id]);
    assert!(
        shown.contains("boom\\x1b[31m\\r\\nforged line"),
        "one line, the whole error: {shown}"
    );
    // JSON stays exact.
    let listed = json_of(&db, &["job", &id, "--json"]);
    assert_eq!(listed["unique_key"], json!(key));
    // Errors echo what they were given, escaped too.
    let output = bosun(&db, &["enqueue", &format!("bad{HOSTILE}")]);
    assert_eq!(output.status.code(), Some(1));
    assert_escaped(&["enqueue"], &stderr(&output));
}

#[tokio::test]
async fn error_messages_say_each_cause_once_and_echo_long_values_short() {
    let db = TestDb::new().await;
    // A refusal from the database itself (not one of Bosun's own checks).
    sqlx::query(
        "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'enqueue refused by site policy' USING ERRCODE = '42501'; END $$;
         ",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON bosun.jobs FOR EACH ROW EXECUTE FUNCTION public.refuse()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let output = bosun(&db, &["enqueue", "echo"]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(
        err.matches("enqueue refused by site policy").count(),
        1,
        "the cause is said once: {err}"
    );
    sqlx::query("DROP TRIGGER refuse ON bosun.jobs")
        .execute(&db.pool)
        .await
        .unwrap();

    // Linux refuses a single argument over 128 KiB, so 100,000 characters stand for the
    // megabyte a script might pass by mistake.
    let long = "k".repeat(100_000);
    let json = format!("{{\"{long}\": 1");
    for args in [
        &["enqueue", &long][..],
        &["enqueue", "echo", &json],
        &["enqueue", "echo", "--in", &long],
        &["enqueue", "echo", "--priority", &long],
        &["enqueue", "echo", "--queue", &long],
        &["job", &long],
        &["jobs", "--state", &long],
        &["expunge", &long],
        &["queues", "pause", &long],
        &[&long],
    ] {
        let output = bosun(&db, args);
        let err = stderr(&output);
        assert!(
            output.status.code() == Some(1) || output.status.code() == Some(2),
            "{err}"
        );
        assert!(
            err.len() < 1_000,
            "bosun {} ... echoes {} bytes: {}...",
            args[0],
            err.len(),
            &err[..300]
        );
        assert!(err.contains("(100"), "says how long the value was: {err}");
    }
    assert_eq!(job_count(&db).await, 0);
}

#[tokio::test]
async fn a_saga_step_job_shows_the_step_limit_of_attempts() {
    use bosun_tests::saga_sql::{claim, start, STEPS};
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let saga = start(&mut conn, "limits").await;
    let job = claim(&mut conn, saga, 0, "do").await;
    // The runner begins the step with its limit of 3 attempts.
    let state: Option<String> = sqlx::query_scalar(&format!(
        "SELECT (bosun.saga_step_begin($1, 1, $2, 0, {STEPS}, 3)).state::text"
    ))
    .bind(job)
    .bind(saga)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(state.as_deref(), Some("running"));
    let listed = json_of(&db, &["jobs", "--json"]);
    assert_eq!(
        (
            &listed[0]["id"],
            &listed[0]["attempt"],
            &listed[0]["max_attempts"]
        ),
        (&json!(job), &json!(1), &json!(3)),
        "{listed}"
    );
    let table = ok(&db, &["jobs"]);
    assert!(table.contains(" 1/3 "), "{table}");
    assert!(!table.contains("/20"), "{table}");
    assert!(ok(&db, &["job", &job.to_string()]).contains("attempt      1 of 3"));
}

/// Logs are coloured for a person at a terminal, unless `NO_COLOR` is set (and not empty,
/// as no-color.org has it). `script` (util-linux) runs the command on a terminal of its own.
#[tokio::test]
async fn logs_are_coloured_only_at_a_terminal_and_never_with_no_color() {
    let db = TestDb::new().await;
    let at_terminal = |no_color: Option<&str>| {
        let mut command = Command::new("script");
        command
            .args([
                "-qec",
                &format!("{} queues --json", bosun_bin().display()),
                "/dev/null",
            ])
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "debug");
        match no_color {
            Some(value) => command.env("NO_COLOR", value),
            None => command.env_remove("NO_COLOR"),
        };
        let output = command.output().expect("running script (util-linux)");
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output)
    };
    let coloured = at_terminal(None);
    assert!(coloured.contains("DEBUG"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "colour at a terminal: {coloured:?}"
    );
    let plain = at_terminal(Some("1"));
    assert!(plain.contains("DEBUG"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR=1: {plain:?}");
    assert!(
        at_terminal(Some("")).contains('\x1b'),
        "an empty NO_COLOR is unset"
    );
}
