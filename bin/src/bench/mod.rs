//! `bosun bench`: Bosun's own benchmark. Each workload runs `--runs` times, each time on a
//! fresh `bosun` schema in a scratch database (`bosun_bench_<pid>`) on the server given by
//! `DATABASE_URL` (or a throwaway one), and reports the median and the spread, because a
//! shared machine is noisy and only ratios measured in the same run mean much. The runs go
//! round the workloads (the first run of each, then the second, ...), so that two workloads
//! compared see the same drift in the machine's load.
//!
//! | workload | what |
//! |---|---|
//! | W0 | the ceiling: plain SQL claim (batched `FOR UPDATE SKIP LOCKED`) then complete on a minimal table, 4 connections, batches of 100 |
//! | W0j | the same cycle through Bosun's claim and batched completion on `bosun.jobs`: what the table and its statements cost before the worker runtime |
//! | W1 | bulk enqueue through `enqueue_many` |
//! | W1b | single enqueue, one job per transaction |
//! | W1p | W1b's yardstick: a plain single-row `INSERT` into `bosun.jobs` per transaction |
//! | W1c | W1b from eight connections at once, no worker waiting (as when all are busy) |
//! | W1w | W1c while a worker runs the jobs as they come (it keeps going back to waiting) |
//! | W2 | drain of queued no-op jobs by one `bosun worker` (concurrency 32); W2x4: four of them |
//! | W2r | W2 on a table that keeps ten times as many completed jobs (history under retention) |
//! | W4 | sustained load: eight rounds of enqueue-then-drain by one worker that prunes completed jobs after a second; reports how much the table and its indexes grew |
//! | W5 | sustained load at an offered rate while a transaction holds the vacuum horizon back (`--w5-rate`, `--w5-pin`, `--w5-pin-kind`, `--w5-after`), in 10 s windows |
//! | W3 | enqueue-to-handler-start latency on an idle worker, jobs about 20 ms apart |
//! | S1 | sagas of three no-op steps by one worker; S4: four |
//!
//! Workers are real `bosun worker` processes (this binary), so W2 includes their start-up,
//! and their peak RSS is reported.

pub mod kinds;
mod pinned;
mod workloads;

pub use workloads::Workload;

use std::time::Duration;

use anyhow::Context;
use bosun_queue::{migrate, Client};
use serde::Serialize;

use crate::{
    cli::BenchArgs,
    connect::Database,
    render::{print_json_line, table},
    say,
};

/// The scratch database the workloads run in, named after this process.
fn scratch_name() -> String {
    format!("bosun_bench_{}", std::process::id())
}

/// What one run of a workload measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Jobs (or rows, or sagas) per second.
    pub per_s: f64,
    /// Latency percentiles in milliseconds (W3).
    pub latency_ms: Option<[f64; 3]>,
    /// Peak RSS of the worker processes, MiB (largest of them).
    pub rss_mib: Option<f64>,
    /// Size of `bosun.jobs` with its indexes at the end over its size halfway through the
    /// rounds (W4), or at the end over before the pin (W5).
    pub growth: Option<f64>,
    /// Its 10 s windows (W5).
    pub windows: Vec<pinned::Window>,
}

/// Median, min and max of a series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

/// One line of `--json` output.
#[derive(Debug, Serialize)]
struct Report {
    workload: &'static str,
    runs: usize,
    jobs: u64,
    jobs_per_s: Spread,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ms: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p95_ms: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ms: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rss_mib: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_growth: Option<Spread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    of_w0_ceiling: Option<f64>,
}

/// Sizes of the workloads.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Jobs of W0, W1, W2.
    pub jobs: u64,
    /// Jobs of W1b.
    pub single: u64,
    /// Jobs of W3.
    pub latency: u64,
    /// Sagas of S1 and S4.
    pub sagas: u64,
    /// What W5 runs.
    pub pinned: pinned::Settings,
}

/// A scratch database: its URL (for worker processes) and a client.
pub struct Scratch {
    /// URL of the scratch database.
    pub url: String,
    /// Client on it.
    pub client: Client,
}

impl Scratch {
    /// Give the scratch database a fresh Bosun schema, and reconnect: statements prepared on
    /// the old connections describe tables that are gone. The old schema is dropped whole
    /// (the scratch database is the bench's own): the down migrations would rebuild old
    /// indexes on the last run's rows first, seconds for W2r's million.
    async fn reset(&mut self) -> anyhow::Result<()> {
        let pool = self.client.pool();
        bosun_queue::bench::schema_drop(pool).await?;
        migrate::migrate_up(pool).await?;
        pool.close().await;
        self.client = Client::connect(&self.url)
            .await
            .context("connecting to the scratch database")?;
        Ok(())
    }
}

pub async fn run(db: &Database, args: &BenchArgs) -> anyhow::Result<()> {
    let only: Vec<Workload> = match &args.only {
        Some(list) => list.clone(),
        None => Workload::ALL
            .into_iter()
            .filter(|w| !w.only_when_named())
            .collect(),
    };
    let sizes = Sizes {
        jobs: args.jobs,
        single: args.single,
        latency: args.latency_jobs,
        sagas: args.sagas,
        pinned: pinned::Settings {
            rate: args.w5_rate,
            before: args.w5_before,
            pin: args.w5_pin,
            read: args.w5_pin_kind,
            after: args.w5_after,
        },
    };
    let selected: Vec<Workload> = Workload::ALL
        .into_iter()
        .filter(|w| only.contains(w))
        .collect();
    let mut scratch = open_scratch(db).await?;
    // Runs go round the workloads (run 1 of each, then run 2 of each, ...): the load of a
    // shared machine drifts over minutes, and interleaved runs share the drift instead of
    // one workload getting the quiet minute and the next the busy one.
    let mut all: Vec<Vec<RunResult>> = vec![Vec::new(); selected.len()];
    for run in 1..=args.runs {
        for (&workload, results) in selected.iter().zip(&mut all) {
            scratch.reset().await?;
            let result = workload
                .run(&scratch, sizes)
                .await
                .with_context(|| format!("{workload}, run {run}"))?;
            if !args.json {
                eprintln!("bosun bench: {workload} run {run}: {:.0}/s", result.per_s);
            }
            results.push(result);
        }
    }
    let mut reports = Vec::new();
    for (&workload, results) in selected.iter().zip(&all) {
        let per_s = Spread::of(&results.iter().map(|r| r.per_s).collect::<Vec<_>>());
        let spread_of = |values: Vec<f64>| (!values.is_empty()).then(|| Spread::of(&values));
        let pick = |i: usize| {
            spread_of(
                results
                    .iter()
                    .filter_map(|r| Some(r.latency_ms?[i]))
                    .collect(),
            )
        };
        let rss = spread_of(results.iter().filter_map(|r| r.rss_mib).collect());
        let growth = spread_of(results.iter().filter_map(|r| r.growth).collect());
        let report = Report {
            workload: workload.name(),
            runs: results.len(),
            jobs: workload.size(sizes),
            jobs_per_s: per_s,
            p50_ms: pick(0),
            p95_ms: pick(1),
            p99_ms: pick(2),
            rss_mib: rss,
            size_growth: growth,
            of_w0_ceiling: None,
        };
        reports.push(report);
    }
    let ceiling = reports
        .iter()
        .find(|r| r.workload == Workload::W0.name())
        .map(|r| r.jobs_per_s.median)
        .filter(|&ceiling| ceiling > 0.0);
    for report in reports
        .iter_mut()
        .filter(|r| Workload::named(r.workload).is_some_and(Workload::drains))
    {
        report.of_w0_ceiling = ceiling.map(|ceiling| report.jobs_per_s.median / ceiling);
    }
    drop(scratch);
    drop_scratch(db).await;
    let windows: Vec<WindowLine<'_>> = selected
        .iter()
        .zip(&all)
        .flat_map(|(&workload, results)| {
            results.iter().enumerate().flat_map(move |(run, result)| {
                result.windows.iter().map(move |window| WindowLine {
                    workload: workload.name(),
                    run: run + 1,
                    window,
                })
            })
        })
        .collect();
    if args.json {
        for report in &reports {
            print_json_line(report)?;
        }
        for line in &windows {
            print_json_line(line)?;
        }
    } else {
        print_table(&reports);
        if !windows.is_empty() {
            print_windows(&windows);
        }
    }
    Ok(())
}

/// One window of a W5 run, as `--json` prints it.
#[derive(Debug, Serialize)]
struct WindowLine<'a> {
    workload: &'static str,
    run: usize,
    #[serde(flatten)]
    window: &'a pinned::Window,
}

fn print_windows(lines: &[WindowLine<'_>]) {
    let mut out = table(&[
        "run",
        "at s",
        "phase",
        "enqueued/s",
        "done/s",
        "p50 ms",
        "p99 ms",
        "slowest insert ms",
        "dead rows",
        "table MiB",
        "indexes MiB",
    ]);
    for line in lines {
        let w = line.window;
        out.add_row(vec![
            line.run.to_string(),
            w.at_s.to_string(),
            w.phase.to_string(),
            format!("{:.0}", w.enqueued_per_s),
            format!("{:.0}", w.done_per_s),
            format!("{:.1}", w.p50_ms),
            format!("{:.1}", w.p99_ms),
            format!("{:.1}", w.slowest_insert_ms),
            w.dead.to_string(),
            format!("{:.1}", w.table_mib),
            format!("{:.1}", w.indexes_mib),
        ]);
    }
    say!("{out}");
}

fn print_table(reports: &[Report]) {
    let mut out = table(&[
        "workload",
        "runs",
        "size",
        "per s (median)",
        "min",
        "max",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "rss MiB",
        "growth",
        "of W0",
    ]);
    let ms = |s: Option<Spread>| s.map(|s| format!("{:.2}", s.median)).unwrap_or_default();
    for r in reports {
        out.add_row(vec![
            r.workload.to_string(),
            r.runs.to_string(),
            r.jobs.to_string(),
            format!("{:.0}", r.jobs_per_s.median),
            format!("{:.0}", r.jobs_per_s.min),
            format!("{:.0}", r.jobs_per_s.max),
            ms(r.p50_ms),
            ms(r.p95_ms),
            ms(r.p99_ms),
            r.rss_mib
                .map(|s| format!("{:.1}", s.max))
                .unwrap_or_default(),
            r.size_growth
                .map(|s| format!("{:.2}x", s.median))
                .unwrap_or_default(),
            r.of_w0_ceiling
                .map(|f| format!("{:.0}%", f * 100.0))
                .unwrap_or_default(),
        ]);
    }
    say!("{out}");
}

/// Create (or reuse) the scratch database next to the one given.
async fn open_scratch(db: &Database) -> anyhow::Result<Scratch> {
    // A scratch database left by an earlier run of this pid is used again.
    bosun_queue::bench::database_create(db.client.pool(), &scratch_name())
        .await
        .context(
            "bosun bench creates a scratch database: connect as a user that may create databases",
        )?;
    let url = with_database(&db.url, &scratch_name());
    let client = Client::connect(&url)
        .await
        .context("connecting to the scratch database")?;
    Ok(Scratch { url, client })
}

async fn drop_scratch(db: &Database) {
    // Worker processes are gone; FORCE ends any connection they left behind.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = bosun_queue::bench::database_drop(db.client.pool(), &scratch_name()).await;
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/app?sslmode=disable", "b"),
            "postgres://u@h:5/b?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "b"), "postgres://u@h/b");
        assert_eq!(with_database("postgresql://h/app", "b"), "postgresql://h/b");
    }

    #[test]
    fn the_spread_has_the_median_of_odd_and_even_series() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
