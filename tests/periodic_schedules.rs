//! Periodic schedules from SQL and from code, and the scheduler's passes (on rows dated in the
//! past, so no test waits for a slot): missed ticks collapse, overlapping leaders enqueue
//! each slot once, pause, errors recorded on the schedule, and bad input to every periodic
//! function.

use bosun_queue::{
    periodic::{periodic_list, periodic_set_enabled},
    JobState, NewJob,
};
use bosun_tests::periodic::{backdate, jobs_of, row, schedule, slot_key};
use bosun_tests::{eventually, RunningPool, TestDb};
use bosun_workers::{maintenance::scheduler::Scheduler, Periodic, WorkerPool};
use chrono::{Datelike, Timelike, Utc};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_due_schedule_fires_its_latest_slot_once_and_missed_ticks_collapse() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    // Made a moment ago: its first slot (New Year) has not come.
    schedule(&db, "yearly", "0 0 1 1 *").await;
    assert!(scheduler.run_once().await.unwrap().is_empty());
    let row = &periodic_list(&db.pool).await.unwrap()[0];
    let next = row.next_at.expect("the next slot is shown");
    assert_eq!((next.month(), next.day(), next.hour()), (1, 1, 0));
    bosun_queue::periodic::periodic_unschedule(&db.pool, "yearly")
        .await
        .unwrap();

    schedule(&db, "every5", "*/5 * * * *").await;

    // Made three hours ago and never fired (every replica was down): one job, for the
    // latest slot, not 36.
    backdate(&db.pool, "every5", "3 hours", None).await;
    let fired = scheduler.run_once().await.unwrap();
    assert_eq!(fired.len(), 1);
    let slot = fired[0].slot;
    assert_eq!((slot.minute() % 5, slot.second()), (0, 0));
    assert!(Utc::now() - slot < chrono::Duration::minutes(5));
    assert_eq!(
        jobs_of(&db.pool, "every5").await,
        [(slot_key("every5", slot), "periodic".to_string())]
    );
    assert!(scheduler.run_once().await.unwrap().is_empty(), "idempotent");
    let row = &periodic_list(&db.pool).await.unwrap()[0];
    assert_eq!(row.last_slot, Some(slot));
    assert_eq!(row.last_job_id, Some(fired[0].job_id));
    assert_eq!(row.next_at, Some(slot + chrono::Duration::minutes(5)));
}

#[tokio::test]
async fn two_overlapping_leaders_enqueue_each_slot_once() {
    let db = TestDb::new().await;
    schedule(&db, "tick", "*/5 * * * *").await;
    backdate(&db.pool, "tick", "1 hour", None).await;
    let a = Scheduler::new(db.client.clone());
    let b = Scheduler::new(db.client.clone());
    let (fired_a, fired_b) = tokio::join!(a.run_once(), b.run_once());
    let fired: Vec<_> = fired_a
        .unwrap()
        .into_iter()
        .chain(fired_b.unwrap())
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        fired[0].slot.timestamp_subsec_nanos(),
        0,
        "slots are whole seconds"
    );
    // A slot fired again after its record was lost (last_slot rewound) finds its job by
    // unique key instead of making a second one.
    let before = jobs_of(&db.pool, "tick").await;
    sqlx::query(
        "UPDATE bosun.periodic_jobs SET last_slot = NULL, created_at = now() - interval '1 hour'",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    a.run_once().await.unwrap();
    assert_eq!(jobs_of(&db.pool, "tick").await, before);
}

#[tokio::test]
async fn a_paused_schedule_does_not_fire_and_resuming_fires_the_latest_slot_once() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    schedule(&db, "nightly", "0 3 * * *").await;
    periodic_set_enabled(&db.pool, "nightly", false)
        .await
        .unwrap();
    backdate(&db.pool, "nightly", "10 days", Some("10 days")).await;
    assert!(scheduler.run_once().await.unwrap().is_empty());
    assert!(jobs_of(&db.pool, "nightly").await.is_empty());

    // Redefining it (a deploy) keeps the pause.
    let redefined = schedule(&db, "nightly", "0 3 * * *").await;
    assert!(!redefined.enabled);

    periodic_set_enabled(&db.pool, "nightly", true)
        .await
        .unwrap();
    let fired = scheduler.run_once().await.unwrap();
    assert_eq!(fired.len(), 1, "ten missed nights make one job");
    assert_eq!((fired[0].slot.hour(), fired[0].slot.minute()), (3, 0));
}

#[tokio::test]
async fn problems_are_recorded_on_the_schedule_and_do_not_stop_the_others() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    // Five fields, so SQL takes it; the leader cannot parse it.
    schedule(&db, "broken", "99 * * * *").await;
    schedule(&db, "fine", "* * * * *").await;
    sqlx::query(
        "SELECT bosun.schedule_periodic('pantry', '* * * * *', 'echo', target => 'pantry-1')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db.client.register_target("pantry-1", None).await.unwrap();
    db.client.expunge_target("pantry-1", None).await.unwrap();
    for name in ["broken", "fine", "pantry"] {
        backdate(&db.pool, name, "1 hour", None).await;
    }
    let fired = scheduler.run_once().await.unwrap();
    assert_eq!(
        fired.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["fine"]
    );
    let rows = periodic_list(&db.pool).await.unwrap();
    let error = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap()
            .error
            .clone()
            .unwrap_or_default()
    };
    assert!(
        error("broken").contains("does not parse"),
        "{}",
        error("broken")
    );
    assert!(
        error("pantry").contains("target 'pantry-1' is expunged"),
        "{}",
        error("pantry")
    );
    assert_eq!(error("fine"), "");
}

#[tokio::test]
async fn bad_schedules_are_refused_with_the_argument_named() {
    let db = TestDb::new().await;
    for (sql, code, says) in [
        (
            "SELECT bosun.schedule_periodic(NULL, '* * * * *', 'echo')",
            "22004",
            "name must not be null",
        ),
        (
            "SELECT bosun.schedule_periodic('a', 'hourly', 'echo')",
            "22023",
            "cron 'hourly' must have 5 fields",
        ),
        (
            "SELECT bosun.schedule_periodic('a', '* * * * *', 'bad kind')",
            "22023",
            "kind 'bad kind' is invalid",
        ),
        (
            "SELECT bosun.schedule_periodic('a', '* * * * *', 'echo', '[]')",
            "22023",
            "args must be a JSON object",
        ),
        (
            "SELECT bosun.schedule_periodic('a', '* * * * *', 'echo', queue => 'no queue')",
            "22023",
            "queue 'no queue' is invalid",
        ),
        (
            "SELECT bosun.schedule_periodic('a', '* * * * *', 'echo', max_attempts => 0)",
            "22023",
            "max_attempts must be at least 1",
        ),
        (
            "SELECT bosun.pause_periodic('nope')",
            "P0002",
            "no periodic job named 'nope'",
        ),
        (
            "SELECT bosun.unschedule_periodic('nope')",
            "P0002",
            "no periodic job named 'nope'",
        ),
    ] {
        let error = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        let db_error = error.as_database_error().unwrap();
        assert_eq!(db_error.code().as_deref(), Some(code), "{sql}");
        assert!(
            db_error.message().contains(says),
            "{sql}: {}",
            db_error.message()
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.periodic_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let bad = Periodic::new("x", "every tuesday", NewJob::new("echo", json!({})));
    assert!(matches!(bad, Err(bosun_workers::Error::InvalidConfig(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_defined_in_code_is_registered_and_runs_every_second() {
    let db = TestDb::new().await;
    let every_second = Periodic::new(
        "heartbeat.echo",
        "* * * * * *",
        NewJob::new("echo", json!({})),
    )
    .unwrap();
    let running = RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .registry(bosun_cli::kinds::registry())
            .periodic(every_second)
            .queue("default", 2)
            .poll_interval(Duration::from_millis(50))
            .maintenance_interval(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let done = eventually(Duration::from_secs(15), "three slots to run", || async {
        let done: Vec<(String, JobState)> = sqlx::query_as(
            "SELECT unique_key, state FROM bosun.jobs
             WHERE meta->>'periodic' = 'heartbeat.echo' AND state = 'completed' ORDER BY id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        (done.len() >= 3).then_some(done)
    })
    .await;
    running.stop().await;
    let mut keys: Vec<_> = done.iter().map(|(key, _)| key.clone()).collect();
    keys.dedup();
    assert_eq!(keys.len(), done.len(), "one job per slot");
    let rows = periodic_list(&db.pool).await.unwrap();
    assert_eq!(rows[0].cron, "* * * * * *");
    assert_eq!(rows[0].kind, "echo");
}

#[tokio::test]
async fn the_leaders_calls_refuse_bad_arguments_and_change_nothing() {
    let db = TestDb::new().await;
    schedule(&db, "p1", "* * * * *").await;
    let before = row(&db.pool, "p1").await;
    for (sql, code, says) in [
        (
            "SELECT bosun.periodic_fire('p1', NULL, NULL)",
            "22004",
            "bosun.periodic_fire: slot must not be null",
        ),
        (
            "SELECT bosun.periodic_fire(NULL, now(), NULL)",
            "22004",
            "bosun.periodic_fire: name must not be null",
        ),
        (
            "SELECT bosun.periodic_fire('p1', 'infinity', NULL)",
            "22023",
            "slot must be a finite time in whole seconds",
        ),
        (
            "SELECT bosun.periodic_fire('p1', '2026-11-23 10:00:00.5Z', NULL)",
            "22023",
            "slot must be a finite time in whole seconds",
        ),
        (
            "SELECT bosun.periodic_fire('p1', '2026-11-23 10:00Z', '-infinity')",
            "22023",
            "next_at must be a finite time or null",
        ),
        (
            "SELECT bosun.periodic_note(NULL, now(), NULL)",
            "22004",
            "bosun.periodic_note: name must not be null",
        ),
        (
            "SELECT bosun.periodic_note('p1', 'infinity', NULL)",
            "22023",
            "next_at must be a finite time or null",
        ),
        (
            "SELECT bosun.periodic_skip('p1', NULL, now())",
            "22004",
            "bosun.periodic_skip: first must not be null",
        ),
        (
            "SELECT bosun.periodic_skip('p1', now(), NULL)",
            "22004",
            "bosun.periodic_skip: last must not be null",
        ),
        (
            "SELECT bosun.periodic_skip(NULL, now(), now())",
            "22004",
            "bosun.periodic_skip: name must not be null",
        ),
        (
            "SELECT bosun.periodic_skip('p1', '2026-11-24Z', '2026-11-23Z')",
            "22023",
            "must not be after last",
        ),
        (
            "SELECT bosun.periodic_skip('p1', '-infinity', '2026-11-23Z')",
            "22023",
            "must be finite times",
        ),
    ] {
        let error = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        let db_error = error.as_database_error().unwrap();
        assert_eq!(db_error.code().as_deref(), Some(code), "{sql}");
        assert!(
            db_error.message().contains(says),
            "{sql}: {}",
            db_error.message()
        );
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no job keyed 'periodic:p1:'");
    assert_eq!(row(&db.pool, "p1").await, before);

    // A slot skipped cannot be fired afterwards, nor a skip moved back.
    let skipped: bool = sqlx::query_scalar(
        "SELECT bosun.periodic_skip('p1', '2026-11-23 09:00Z', '2026-11-23 10:00Z')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(skipped);
    let fired: Option<i64> =
        sqlx::query_scalar("SELECT bosun.periodic_fire('p1', '2026-11-23 10:00Z', NULL)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(fired, None);
    let skipped: bool = sqlx::query_scalar(
        "SELECT bosun.periodic_skip('p1', '2026-11-23 08:00Z', '2026-11-23 09:00Z')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!skipped);
    let after = row(&db.pool, "p1").await;
    assert_eq!(
        (after.skipped_from, after.skipped_to),
        (
            Some("2026-11-23T09:00:00Z".parse().unwrap()),
            Some("2026-11-23T10:00:00Z".parse().unwrap())
        )
    );
}
