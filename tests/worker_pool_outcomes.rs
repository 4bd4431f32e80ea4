//! How a handler's attempt ends, through a real pool: retries with backoff until failed,
//! permanent errors, panics, undecodable args, snooze, cancel (by the handler or an operator),
//! and per-kind timeouts.
//!
//! Workers override `backoff` with short delays so retries take milliseconds, not the default
//! seconds.

use bosun_queue::{Job, JobArgs, JobState, NewJob};
use bosun_tests::pool_harness::{
    behave, enqueue, job, pool, raw_error_count, wait_listening, Behave, Behaver, WAIT,
};
use bosun_tests::{eventually, wait_state, RunningPool as Running, TestDb};
use bosun_workers::{JobContext, JobResult, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

#[derive(Serialize, Deserialize)]
struct Strict {
    n: i64,
    label: String,
}

impl JobArgs for Strict {
    const KIND: &'static str = "test.strict";
}

/// Needs both fields; records the labels it ran with.
struct StrictWorker(Arc<Mutex<Vec<String>>>);

impl Worker for StrictWorker {
    type Args = Strict;
    async fn work(&self, _ctx: JobContext, args: Strict) -> JobResult {
        self.0
            .lock()
            .unwrap()
            .push(format!("{}:{}", args.n, args.label));
        Ok(())
    }

    fn backoff(&self, _job: &Job) -> Duration {
        Duration::from_millis(200)
    }
}

#[derive(Serialize, Deserialize)]
struct Slow {
    ms: u64,
}

impl JobArgs for Slow {
    const KIND: &'static str = "test.slow";
}

/// Sets its flag when dropped: tells whether a handler's future was dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Sleeps `ms` under a 200 ms per-kind timeout.
#[derive(Default)]
struct SlowWithTimeout {
    dropped: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl Worker for SlowWithTimeout {
    type Args = Slow;
    async fn work(&self, _ctx: JobContext, args: Slow) -> JobResult {
        let _guard = SetOnDrop(Arc::clone(&self.dropped));
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

// ---- retries with backoff ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_with_backoff_until_failed() {
    let db = TestDb::new().await;
    let fail = Behave::Fail {
        message: "upstream 503".into(),
    };
    let id = enqueue(&db.client, behave(&fail).max_attempts(3)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 2)
            .worker_id("retry-worker")
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    running.stop().await;
    assert_eq!((failed.attempt, failed.max_attempts), (3, 3));
    assert!(failed.finalized_at.is_some());
    assert_eq!(failed.attempted_by.as_deref(), Some("retry-worker"));
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 3, "{}", failed.errors);
    assert_eq!(
        errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for error in &errors {
        assert_eq!(error.error, "upstream 503");
        assert_eq!(error.worker.as_deref(), Some("retry-worker"));
        assert_eq!(error.kind.as_deref(), Some("error"));
    }
    for pair in errors.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= chrono::Duration::milliseconds(180),
            "a backoff of 200 ms (-10% jitter at most) between attempts, got {gap}"
        );
    }
}

// ---- permanent errors ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_error_fails_at_once() {
    let db = TestDb::new().await;
    let permanent = Behave::Permanent {
        message: "card declined".into(),
    };
    let id = enqueue(&db.client, behave(&permanent).max_attempts(20)).await;
    let mut registry = bosun_workers::Registry::new();
    registry.register(Behaver::default());
    let drained = bosun_workers::testing::drain_queue(&db.client, &registry, "default").await;
    assert_eq!((drained.failed, drained.retryable), (1, 0), "{drained:?}");
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    assert_eq!((failed.attempt, failed.max_attempts), (1, 20));
    assert!(failed.finalized_at.is_some());
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].attempt, 1);
    assert_eq!(errors[0].error, "card declined");
    assert_eq!(errors[0].kind.as_deref(), Some("permanent"));
}

// ---- panics ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_fails_the_attempt_and_the_pool_keeps_going() {
    let db = TestDb::new().await;
    let panicked = enqueue(&db.client, behave(&Behave::Panic).max_attempts(1)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .worker_id("panicky")
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, panicked, JobState::Failed).await;
    assert_eq!(failed.attempt, 1);
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].kind.as_deref(), Some("panic"));
    assert_eq!(errors[0].worker.as_deref(), Some("panicky"));
    assert!(
        errors[0].error.contains("handler blew up"),
        "{}",
        errors[0].error
    );
    // The same pool, with its single slot, runs the next job.
    let after = enqueue(&db.client, behave(&Behave::Ok)).await;
    let done = wait_state(&db.client, after, JobState::Completed).await;
    assert_eq!(done.attempted_by.as_deref(), Some("panicky"));
    running.stop().await;
}

// ---- undecodable args ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_args_fail_the_attempt_and_the_pool_keeps_going() {
    let db = TestDb::new().await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    // `label` is required by `Strict`.
    let bad = enqueue(
        &db.client,
        NewJob::new(Strict::KIND, json!({"n": 1})).max_attempts(2),
    )
    .await;
    let good = enqueue(
        &db.client,
        NewJob::from_args(&Strict {
            n: 2,
            label: "fine".into(),
        })
        .unwrap(),
    )
    .await;
    let running = Running::start(
        pool(&db.client)
            .register(StrictWorker(Arc::clone(&ran)))
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, bad, JobState::Failed).await;
    wait_state(&db.client, good, JobState::Completed).await;
    running.stop().await;
    assert_eq!(failed.attempt, 2);
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 2);
    for error in &errors {
        assert_eq!(error.kind.as_deref(), Some("decode"), "{error:?}");
        assert!(
            error.error.contains("missing field `label`"),
            "{}",
            error.error
        );
    }
    assert_eq!(
        *ran.lock().unwrap(),
        ["2:fine"],
        "the handler never saw the bad args"
    );
}

// ---- snooze ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snooze_runs_again_later_without_using_an_attempt() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, behave(&Behave::SnoozeOnce { ms: 300 })).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let done = wait_state(&db.client, id, JobState::Completed).await;
    running.stop().await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.max_attempts, 21, "the snoozed attempt did not count");
    assert_eq!(raw_error_count(&done), 0, "a snooze is not an error");
    let gap = done.attempted_at.unwrap() - done.created_at;
    assert!(
        gap >= chrono::Duration::milliseconds(300),
        "second attempt only after the 300 ms snooze, got {gap}"
    );
}

// ---- cancel ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_can_cancel_its_job() {
    let db = TestDb::new().await;
    let id = enqueue(&db.client, behave(&Behave::Cancel)).await;
    let running = Running::start(
        pool(&db.client)
            .register(Behaver::default())
            .queue("default", 1)
            .worker_id("canceller")
            .build()
            .unwrap(),
    );
    let cancelled = wait_state(&db.client, id, JobState::Cancelled).await;
    running.stop().await;
    assert_eq!(cancelled.attempt, 1);
    assert!(cancelled.finalized_at.is_some());
    let errors = cancelled.attempt_errors();
    assert_eq!(raw_error_count(&cancelled), 1);
    assert_eq!(errors[0].error, "not needed any more");
    assert_eq!(errors[0].kind.as_deref(), Some("cancelled"));
    assert_eq!(errors[0].worker.as_deref(), Some("canceller"));
}

/// An operator cancels a running job; its handler waits on `ctx.cancelled()`, notes when it
/// fired, then returns success, which must be fenced out.
async fn operator_cancel_reaches_the_handler(listen: bool) {
    let db = TestDb::new().await;
    let behaver = Behaver::default();
    let saw_cancel = Arc::clone(&behaver.saw_cancel);
    // Listening: the lease check is too slow to matter, only the notification can stop the
    // handler in time. Polling: the lease check is the only way.
    let lease_check = if listen {
        Duration::from_secs(60)
    } else {
        Duration::from_millis(100)
    };
    let running = Running::start(
        pool(&db.client)
            .register(behaver)
            .queue("default", 2)
            .listen(listen)
            .lease_check_interval(lease_check)
            .build()
            .unwrap(),
    );
    if listen {
        wait_listening(&db).await;
    }
    let id = enqueue(&db.client, behave(&Behave::CompleteOnCancel)).await;
    wait_state(&db.client, id, JobState::Running).await;
    let cancelled_at = Instant::now();
    let cancelled = db.client.cancel_job(id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let seen_at = eventually(
        Duration::from_secs(5),
        "the handler to see the cancel",
        || {
            let saw_cancel = Arc::clone(&saw_cancel);
            async move {
                let seen = saw_cancel.lock().unwrap();
                seen.iter().find(|(job, _)| *job == id).map(|(_, at)| *at)
            }
        },
    )
    .await;
    let took = seen_at - cancelled_at;
    assert!(
        took < Duration::from_secs(2),
        "the handler saw the cancel after {took:?}"
    );
    // The handler returned success; wait until the pool has tried to record it.
    eventually(WAIT, "the attempt to be over", || async {
        (running.running() == 0).then_some(())
    })
    .await;
    let report = running.stop().await;
    assert!(report.released.is_empty());
    let row = job(&db.client, id).await;
    assert_eq!(
        row, cancelled,
        "the worker's completion was fenced out: the row is as the cancel left it"
    );
    let errors = row.attempt_errors();
    assert_eq!(raw_error_count(&row), 1, "only the operator's entry");
    assert_eq!(errors[0].error, "cancelled by bosun.cancel_job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_cancel_reaches_the_handler_by_notification() {
    operator_cancel_reaches_the_handler(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_cancel_reaches_the_handler_by_polling() {
    operator_cancel_reaches_the_handler(false).await;
}

// ---- timeouts ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_kind_timeout_fails_the_attempt() {
    let db = TestDb::new().await;
    let id = enqueue(
        &db.client,
        NewJob::from_args(&Slow { ms: 5000 })
            .unwrap()
            .max_attempts(1),
    )
    .await;
    let worker = SlowWithTimeout::default();
    let dropped = Arc::clone(&worker.dropped);
    let finished = Arc::clone(&worker.finished);
    let running = Running::start(
        pool(&db.client)
            .register(worker)
            .queue("default", 1)
            .build()
            .unwrap(),
    );
    let failed = wait_state(&db.client, id, JobState::Failed).await;
    let errors = failed.attempt_errors();
    assert_eq!(raw_error_count(&failed), 1);
    assert_eq!(errors[0].kind.as_deref(), Some("timeout"));
    assert!(errors[0].error.contains("timed out"), "{}", errors[0].error);
    let took = failed.finalized_at.unwrap() - failed.attempted_at.unwrap();
    assert!(
        took >= chrono::Duration::milliseconds(200) && took < chrono::Duration::seconds(2),
        "cut at the 200 ms timeout, took {took}"
    );
    eventually(WAIT, "the timed-out handler to be dropped", || async {
        dropped.load(Ordering::SeqCst).then_some(())
    })
    .await;
    assert!(!finished.load(Ordering::SeqCst));
    running.stop().await;
}
