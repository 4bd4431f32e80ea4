//! The `bosun` binary, spawned as a user runs it: exit codes, messages, `--json`, a worker
//! process that shuts down gracefully on SIGTERM, the demo, and the embedded default.

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use bosun_queue::{JobState, NewJob};
use bosun_tests::{bosun_bin, eventually, TestDb};
use serde_json::{json, Value};

fn bosun(db: &TestDb, args: &[&str]) -> Output {
    Command::new(bosun_bin())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running bosun")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Run and expect success; returns stdout parsed as JSON.
fn json_of(db: &TestDb, args: &[&str]) -> Value {
    let output = bosun(db, args);
    assert!(
        output.status.success(),
        "bosun {args:?} failed: {}",
        stderr(&output)
    );
    serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("bosun {args:?} printed no JSON ({e}): {}", stdout(&output)))
}

fn ok(db: &TestDb, args: &[&str]) -> String {
    let output = bosun(db, args);
    assert!(
        output.status.success(),
        "bosun {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

async fn job_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn usage_errors_exit_2_and_change_nothing() {
    let db = TestDb::new().await;
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["jobs", "--no-such-flag"],
        &["enqueue", "echo", "[1]"],
        &["enqueue", "echo", "{not json"],
        &["enqueue", "echo", "--in", "forever"],
        &["worker", "--queues", "mail=0"],
        &["worker", "--queues", "bad name=1"],
        &["worker", "--queues", "mail"],
        &["jobs", "--state", "done"],
        &["jobs", "--limit", "0"],
        &["retry"],
        &["job", "not-a-number"],
    ];
    for args in cases {
        let output = bosun(&db, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "bosun {args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains("Usage") || stderr(&output).contains("usage"),
            "bosun {args:?} shows usage: {}",
            stderr(&output)
        );
    }
    assert_eq!(job_count(&db).await, 0);
}

#[tokio::test]
async fn runtime_errors_exit_1_with_a_clear_message() {
    let db = TestDb::new().await;
    let cases: &[(&[&str], &str)] = &[
        (&["job", "999999"], "no job with id 999999"),
        (&["cancel", "999999"], "no job with id 999999"),
        (&["enqueue", "bad kind"], "kind 'bad kind' is invalid"),
        (
            &["enqueue", "echo", "--max-attempts", "0"],
            "max_attempts must be at least 1",
        ),
        (&["queues", "pause", "bad queue"], "not a valid queue name"),
    ];
    for (args, message) in cases {
        let output = bosun(&db, args);
        assert_eq!(output.status.code(), Some(1), "bosun {args:?}");
        assert!(
            stderr(&output).contains(message),
            "bosun {args:?} says {message:?}: {}",
            stderr(&output)
        );
    }
    assert_eq!(job_count(&db).await, 0);

    let done = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    sqlx::query("UPDATE bosun.jobs SET state = 'completed', attempt = 1, finalized_at = now() WHERE id = $1")
        .bind(done)
        .execute(&db.pool)
        .await
        .unwrap();
    let output = bosun(&db, &["cancel", &done.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("already completed"),
        "{}",
        stderr(&output)
    );

    let running = db
        .client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap()
        .id;
    sqlx::query("UPDATE bosun.jobs SET state = 'running', attempt = 1 WHERE id = $1")
        .bind(running)
        .execute(&db.pool)
        .await
        .unwrap();
    let output = bosun(&db, &["retry", &running.to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is running"),
        "{}",
        stderr(&output)
    );

    let empty = TestDb::empty().await;
    let output = bosun(&empty, &["jobs"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("run `bosun migrate`"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn enqueue_inspect_and_operate_with_json() {
    let db = TestDb::new().await;
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
    assert_eq!(enqueued["inserted"], json!(true));
    let id = enqueued["id"].as_i64().unwrap();

    let first = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    let second = json_of(&db, &["enqueue", "echo", "--unique-key", "k", "--json"]);
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["inserted"], json!(false));
    assert!(ok(&db, &["enqueue", "echo", "--unique-key", "k"]).contains("already exists"));

    let later = json_of(
        &db,
        &["enqueue", "sleep", r#"{"ms":1}"#, "--in", "1h", "--json"],
    );
    let later_id = later["id"].as_i64().unwrap();
    assert_eq!(
        db.client.job_get(later_id).await.unwrap().state,
        JobState::Scheduled
    );

    let listed = json_of(&db, &["jobs", "--queue", "mail", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], json!(id));

    let job = json_of(&db, &["job", &id.to_string(), "--json"]);
    assert_eq!(job["args"], json!({"a": 1}));
    assert_eq!(job["tags"], json!(["t1"]));
    assert_eq!(job["priority"], json!(3));
    assert_eq!(job["state"], json!("available"));
    assert!(ok(&db, &["job", &id.to_string()]).contains(&format!("job {id}  echo  [available]")));

    assert_eq!(
        json_of(&db, &["queues", "pause", "mail", "--json"])["paused"],
        json!(true)
    );
    let queues = json_of(&db, &["queues", "--json"]);
    let mail = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == json!("mail"))
        .expect("mail listed");
    assert_eq!(mail["paused"], json!(true));
    assert_eq!(mail["available"], json!(1));
    assert!(ok(&db, &["queues"]).contains("mail"));
    assert!(ok(&db, &["queues", "resume", "mail"]).contains("resumed"));

    let cancelled = json_of(&db, &["cancel", &id.to_string(), "--json"]);
    assert_eq!(cancelled["state"], json!("cancelled"));
    let retried = json_of(&db, &["retry", &id.to_string(), "--json"]);
    assert_eq!(retried["state"], json!("available"));
    json_of(&db, &["cancel", &id.to_string(), "--json"]);
    let all = json_of(&db, &["retry", "--all", "--state", "cancelled", "--json"]);
    assert_eq!(all, json!([id]));

    let table = ok(&db, &["jobs"]);
    assert!(
        table.contains(&id.to_string()) && table.contains("echo"),
        "{table}"
    );
}

#[tokio::test]
async fn migrate_up_status_down_and_up() {
    let db = TestDb::empty().await;
    assert!(ok(&db, &["migrate"]).contains("applied migrations"));
    let status = json_of(&db, &["migrate", "--status", "--json"]);
    assert_eq!(status["current"], status["latest"]);
    let again = json_of(&db, &["migrate", "--json"]);
    assert_eq!(again["changed"], json!([]));
    let down = json_of(&db, &["migrate", "--down-to", "0", "--json"]);
    assert_eq!(down["current"], json!(0));
    let up = json_of(&db, &["migrate", "--json"]);
    assert_eq!(up["current"], status["latest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_runs_jobs_and_hands_back_on_sigterm() {
    let db = TestDb::new().await;
    let mut worker = Command::new(bosun_bin())
        .args([
            "worker",
            "--queues",
            "default=4",
            "--poll-interval",
            "100ms",
            "--shutdown-timeout",
            "500ms",
        ])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting bosun worker");

    let mut ids = db
        .client
        .enqueue_many((0..20).map(|i| NewJob::new("echo", json!({ "i": i }))))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect::<Vec<_>>();
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
    ids.push(flaky);
    eventually(Duration::from_secs(20), "all jobs final", || async {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (open == 0).then_some(())
    })
    .await;
    for id in &ids {
        assert_eq!(
            db.client.job_get(*id).await.unwrap().state,
            JobState::Completed
        );
    }
    let failed = db.client.job_get(boom).await.unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempt_errors()[0].error, "boom");

    let sleeper = db
        .client
        .enqueue(NewJob::new("sleep", json!({"ms": 30_000})))
        .await
        .unwrap()
        .id;
    eventually(Duration::from_secs(10), "the sleep job to run", || async {
        let job = db.client.job_get(sleeper).await.unwrap();
        (job.state == JobState::Running).then_some(())
    })
    .await;
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "worker did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let handed_back = db.client.job_get(sleeper).await.unwrap();
    assert_eq!(handed_back.state, JobState::Available);
    assert_eq!((handed_back.attempt, handed_back.max_attempts), (1, 21));
}

#[tokio::test]
async fn demo_runs_every_job_to_a_final_state() {
    let db = TestDb::new().await;
    let summary = json_of(&db, &["demo", "--jobs", "40", "--json"]);
    assert_eq!(summary["jobs"], json!(40));
    let kinds = summary["kinds"].as_object().unwrap();
    assert!(kinds.contains_key("flaky") && kinds.contains_key("fail"));
    for (kind, numbers) in kinds {
        assert_eq!(numbers["unfinished"], json!(0), "{kind}: {numbers}");
    }
    assert_eq!(kinds["fail"]["completed"], json!(0));
    assert_eq!(kinds["echo"]["failed"], json!(0));
}

#[tokio::test]
async fn without_a_database_url_bosun_uses_a_throwaway_postgres() {
    let output = Command::new(bosun_bin())
        .args(["demo", "--jobs", "20"])
        .env_remove("DATABASE_URL")
        .output()
        .expect("running bosun demo");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("throwaway PostgreSQL"),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("20 jobs in"),
        "{}",
        stdout(&output)
    );
}
