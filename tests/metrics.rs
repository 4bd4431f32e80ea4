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
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
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
    let worker = Replica::start_with_args(&db, "metrics", "default=4", &["--metrics-addr", &addr]);
    for job in [
        NewJob::new("echo", json!({})),
        NewJob::new("fail", json!({"permanent": true})),
        NewJob::new("fail", json!({"backoff_ms": 60_000})),
        NewJob::new("sleep", json!({"ms": 60_000})).target("pantry-9"),
    ] {
        db.client.enqueue(job).await.unwrap();
    }
    eventually(Duration::from_secs(15), "the sleep to run", || async {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.jobs WHERE kind = 'sleep' AND state = 'running'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (running == 1).then_some(())
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
            r#"bosun_job_duration_seconds_count{queue="default",kind="echo"}"#,
            r#"bosun_job_wait_seconds_count{queue="default",kind="sleep"}"#,
            r#"bosun_jobs_running{queue="default"}"#,
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
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"bosun_jobs_running{queue="default"}"#),
        Some(0.0),
        "the reaped sleep's handler was stopped"
    );
    // Sub-millisecond buckets exist for fast jobs, hour buckets for slow ones.
    assert!(text
        .contains(r#"bosun_job_duration_seconds_bucket{queue="default",kind="echo",le="0.0005"}"#));
    assert!(text.contains(r#"le="21600"}"#));
    for name in [
        metrics::JOBS_CLAIMED,
        metrics::JOBS_FINISHED,
        metrics::JOBS_REAPED,
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} is described"
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
