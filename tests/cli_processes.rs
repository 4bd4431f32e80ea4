//! Long-running `bosun` processes: a worker that shuts down gracefully on SIGTERM, the demo,
//! the embedded default PostgreSQL, the benchmark, and the logs (JSON spans, colour only at a
//! terminal).

use bosun_queue::{JobState, NewJob};
use bosun_tests::cli::{bosun, json_of, ok, run, stderr, stdout};
use bosun_tests::{bosun_bin, eventually, state_counts, TestDb};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::{
    io::Read,
    process::{Child, Command, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

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
