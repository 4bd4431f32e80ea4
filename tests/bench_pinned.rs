//! `bosun bench`'s W5, apart from the other workloads' test: it runs for half a minute, and
//! its scratch database would show in that test's check that none is left behind.

use bosun_tests::cli::{bosun, ok, stderr};
use bosun_tests::TestDb;
use serde_json::Value;

/// W5 runs only when named, and reports one line per 10 s window: the load before the
/// horizon is held, while it is (dead row versions pile up), and after.
#[tokio::test]
async fn bench_w5_reports_windows_before_during_and_after_a_held_horizon() {
    let db = TestDb::new().await;
    let out = ok(
        &db,
        &[
            "bench",
            "--runs",
            "1",
            "--only",
            "W5",
            "--w5-rate",
            "300",
            "--w5-before",
            "10s",
            "--w5-pin",
            "10s",
            "--w5-pin-kind",
            "other",
            "--w5-after",
            "10s",
            "--json",
        ],
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0]["workload"], "W5");
    assert_eq!(lines[0]["jobs"], 300 * 30);
    let phases: Vec<&str> = lines[1..]
        .iter()
        .map(|w| w["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["before", "pinned", "after"]);
    for window in &lines[1..] {
        assert!(window["done_per_s"].as_f64().unwrap() > 100.0, "{window}");
        assert!(
            window["enqueued_per_s"].as_f64().unwrap() > 100.0,
            "{window}"
        );
        assert!(window["table_mib"].as_f64().unwrap() > 0.0, "{window}");
    }
    let usage = bosun(&db, &["bench", "--only", "W5", "--w5-pin", "15s"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(
        stderr(&usage).contains("whole 10 s windows"),
        "{}",
        stderr(&usage)
    );
}
