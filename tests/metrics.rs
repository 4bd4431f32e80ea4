//! Metrics from a real `bosun worker`: jobs of several outcomes, a reaped job, then a scrape of
//! `/metrics` that must show every metric of the catalogue the worker records, with its
//! labels. Also: a taken `--metrics-addr` is an error at start, not a silent gap.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use bosun_queue::NewJob;
use bosun_tests::{bosun_bin, eventually, Replica, TestDb};
use bosun_workers::metrics;
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> Option<String> {
    request(port, "GET", "/metrics")
}

/// The whole response (status line, headers, body) to `method path`, or `None` while nothing
/// listens.
fn request(port: u16, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the sample `name{labels}` (labels as printed), if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_the_catalogue_with_labels() {
    let db = TestDb::new().await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let worker = Replica::start_with_args(
        &db,
        "metrics",
        "default=4",
        &[
            "--metrics-addr",
            &addr,
            "--sample-interval",
            "300ms",
            "--cancel-grace",
            "300ms",
        ],
    );
    for (key, inputs) in [("ok", json!({})), ("undone", json!({"fail_at": "attach"}))] {
        db.client
            .start_saga("example.provision", key, &inputs)
            .await
            .unwrap();
    }
    // Waiting in a queue nobody works, ten minutes late.
    db.client
        .enqueue(
            NewJob::new("echo", json!({}))
                .queue("idle")
                .scheduled_at(chrono::Utc::now() - chrono::Duration::minutes(10)),
        )
        .await
        .unwrap();
    for job in [
        NewJob::new("echo", json!({})),
        NewJob::new("fail", json!({"permanent": true})),
        NewJob::new("fail", json!({"backoff_ms": 60_000})),
        NewJob::new("sleep", json!({"ms": 60_000})).target("pantry-9"),
        NewJob::new("sleep", json!({"ms": 60_000, "ignore_cancel": true})).target("pantry-9"),
    ] {
        db.client.enqueue(job).await.unwrap();
    }
    eventually(Duration::from_secs(15), "the sleeps to run", || async {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.jobs WHERE kind = 'sleep' AND state = 'running'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (running == 2).then_some(())
    })
    .await;
    db.client.expunge_target("pantry-9", None).await.unwrap();

    let text = eventually(Duration::from_secs(15), "every metric to show", || async {
        let text = scrape(port)?;
        let wanted = [
            r#"bosun_jobs_claimed_total{queue="default",kind="echo"}"#,
            r#"bosun_jobs_finished_total{queue="default",kind="echo",outcome="completed"}"#,
            r#"bosun_jobs_finished_total{queue="default",kind="fail",outcome="failed"}"#,
            r#"bosun_jobs_finished_total{queue="default",kind="fail",outcome="retryable"}"#,
            r#"bosun_jobs_reaped_total{queue="default",kind="sleep"}"#,
            r#"bosun_handlers_aborted_total{queue="default",kind="sleep"}"#,
            r#"bosun_job_duration_seconds_count{queue="default",kind="echo"}"#,
            r#"bosun_job_wait_seconds_count{queue="default",kind="sleep"}"#,
            r#"bosun_jobs_running{queue="default"}"#,
            r#"bosun_queue_jobs{queue="default",state="completed"}"#,
            r#"bosun_queue_jobs{queue="idle",state="available"}"#,
            r#"bosun_queue_oldest_available_seconds{queue="idle"}"#,
            r#"bosun_sagas_finished_total{kind="example.provision",outcome="succeeded"}"#,
            r#"bosun_sagas_finished_total{kind="example.provision",outcome="compensated"}"#,
            "bosun_workers_alive",
            "bosun_leader",
        ];
        wanted
            .iter()
            .all(|w| sample(&text, w).is_some())
            .then_some(text)
    })
    .await;
    assert_eq!(
        sample(
            &text,
            r#"bosun_jobs_claimed_total{queue="default",kind="fail"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bosun_jobs_reaped_total{queue="default",kind="sleep"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bosun_handlers_aborted_total{queue="default",kind="sleep"}"#
        ),
        Some(1.0),
        "the sleep that ignored its cancel was aborted after the grace; the other stopped"
    );
    assert_eq!(
        sample(&text, r#"bosun_jobs_running{queue="default"}"#),
        Some(0.0),
        "the reaped sleeps' handlers were stopped"
    );
    assert_eq!(sample(&text, "bosun_leader"), Some(1.0));
    assert_eq!(sample(&text, "bosun_workers_alive"), Some(1.0));
    assert_eq!(
        sample(&text, r#"bosun_queue_jobs{queue="idle",state="available"}"#),
        Some(1.0)
    );
    let waited = sample(
        &text,
        r#"bosun_queue_oldest_available_seconds{queue="idle"}"#,
    )
    .unwrap();
    assert!((600.0..700.0).contains(&waited), "{waited}");
    // Sub-millisecond buckets exist for fast jobs, hour buckets for slow ones.
    assert!(text
        .contains(r#"bosun_job_duration_seconds_bucket{queue="default",kind="echo",le="0.0005"}"#));
    assert!(text.contains(r#"le="21600"}"#));
    for name in [
        metrics::JOBS_CLAIMED,
        metrics::JOBS_FINISHED,
        metrics::JOBS_REAPED,
        metrics::HANDLERS_ABORTED,
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is described"
        );
    }
    // Every metric the dashboard queries is served, with data, and in the catalogue.
    let catalogue =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
            .unwrap();
    let queried = dashboard_metrics();
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        let served = text.lines().any(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        });
        assert!(
            served,
            "the dashboard queries {name}, which the worker does not serve"
        );
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            catalogue.contains(&format!("`{base}`")),
            "{base} is missing from the catalogue in docs/metrics.md"
        );
    }
    worker.stop().await;
}

#[tokio::test]
async fn a_taken_metrics_address_fails_the_start() {
    let db = TestDb::new().await;
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(bosun_bin())
        .args(["worker", "--metrics-addr", &addr])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("--metrics-addr {addr}")), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_metrics_path_answers() {
    let db = TestDb::new().await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _worker = Replica::start_with_args(&db, "paths", "default=1", &["--metrics-addr", &addr]);
    let metrics = eventually(Duration::from_secs(15), "the listener", || async {
        request(port, "GET", "/metrics")
    })
    .await;
    assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
    assert!(metrics.contains("bosun_"), "{metrics}");
    for path in [
        "/",
        "/metric",
        "/metrics/",
        "/metrics.txt",
        "/health",
        "/admin",
    ] {
        let response = request(port, "GET", path).unwrap();
        assert!(
            response.starts_with("HTTP/1.0 404"),
            "GET {path}: {response}"
        );
        assert!(!response.contains("bosun_"), "GET {path}: {response}");
    }
    let response = request(port, "POST", "/metrics").unwrap();
    assert!(response.starts_with("HTTP/1.0 405"), "{response}");
    // A query string is still the metrics path.
    let response = request(port, "GET", "/metrics?x=1").unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
}

/// Unfinished states are counted; finished ones are estimated once the table is large (here:
/// a threshold of one row), so a sample never scans millions of retained jobs.
#[tokio::test]
async fn the_sample_counts_the_backlog_and_estimates_finished_jobs_on_large_tables() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO bosun.jobs (kind, queue, state, finalized_at)
             SELECT 'echo', 'mail', 'completed', now() FROM generate_series(1, 5000);
         INSERT INTO bosun.jobs (kind, queue) SELECT 'echo', 'mail' FROM generate_series(1, 7);
         ANALYZE bosun.jobs;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let count = |sample: &bosun_queue::sampling::Sample, state: &str| {
        sample
            .queues
            .iter()
            .find(|c| c.queue == "mail" && c.state == state)
            .map(|c| (c.jobs, c.estimated))
    };
    let exact = bosun_queue::sampling::sample(&db.pool, 1_000_000)
        .await
        .unwrap();
    assert_eq!(count(&exact, "completed"), Some((5000, false)));
    assert_eq!(count(&exact, "available"), Some((7, false)));
    let estimated = bosun_queue::sampling::sample(&db.pool, 1).await.unwrap();
    let (jobs, is_estimate) = count(&estimated, "completed").unwrap();
    assert!(is_estimate);
    assert!((4000..6000).contains(&jobs), "{jobs}");
    assert_eq!(count(&estimated, "available"), Some((7, false)));
}

/// The metric names every panel of `grafana/dashboards/bosun.json` queries.
fn dashboard_metrics() -> std::collections::BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/dashboards/bosun.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has queries", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let mut found = false;
            for (at, _) in expr.match_indices("bosun_") {
                let name: String = expr[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                names.insert(name);
                found = true;
            }
            assert!(
                found,
                "panel {} queries a Bosun metric: {expr}",
                panel["title"]
            );
        }
    }
    names
}
