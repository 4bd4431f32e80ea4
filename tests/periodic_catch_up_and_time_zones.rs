//! Each catch-up policy and time zones across both changes of clock, on schedules dated in the
//! past; bad zone names and policies are refused from SQL and Rust.

use bosun_queue::{
    periodic::{periodic_list, periodic_schedule_with, CatchUp, PeriodicOptions},
    NewJob,
};
use bosun_tests::periodic::{backdate, jobs_of, row, schedule, slot_key};
use bosun_tests::{eventually, RunningPool, TestDb};
use bosun_workers::{maintenance::scheduler::Scheduler, Periodic, WorkerPool};
use chrono::{Timelike, Utc};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

async fn schedule_with(db: &TestDb, name: &str, cron: &str, options: PeriodicOptions) {
    periodic_schedule_with(
        &db.pool,
        name,
        cron,
        &NewJob::new("echo", json!({"from": name})).queue("periodic"),
        &options,
    )
    .await
    .unwrap();
}

fn options(catch_up: CatchUp, catch_up_max: i32, timezone: &str) -> PeriodicOptions {
    PeriodicOptions {
        catch_up,
        catch_up_max,
        timezone: timezone.to_string(),
    }
}

/// Pretend the schedule was made at `created` (an SQL expression) and never fired.
async fn made_at(pool: &PgPool, name: &str, created: &str) {
    sqlx::query(&format!(
        "UPDATE bosun.periodic_jobs
         SET created_at = {created}, last_slot = NULL, skipped_from = NULL, skipped_to = NULL
         WHERE name = $1"
    ))
    .bind(name)
    .execute(pool)
    .await
    .unwrap();
}

fn slots_of(fired: &[bosun_workers::maintenance::scheduler::Fired], name: &str) -> Vec<String> {
    fired
        .iter()
        .filter(|f| f.name == name)
        .map(|f| f.slot.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

#[tokio::test]
async fn catch_up_all_fires_every_missed_slot_oldest_first_up_to_its_cap() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    schedule_with(&db, "capped", "0 * * * *", options(CatchUp::All, 3, "UTC")).await;
    schedule_with(
        &db,
        "uncapped",
        "0 * * * *",
        options(CatchUp::All, 100, "UTC"),
    )
    .await;
    // Every replica was down for five and a half hours: six hourly slots were missed.
    for name in ["capped", "uncapped"] {
        made_at(
            &db.pool,
            name,
            "date_trunc('hour', now()) - interval '5 hours 30 minutes'",
        )
        .await;
    }
    let fired = scheduler.run_once().await.unwrap();
    let hour = chrono::Duration::hours(1);

    let uncapped: Vec<_> = fired.iter().filter(|f| f.name == "uncapped").collect();
    assert_eq!(uncapped.len(), 6, "{fired:?}");
    assert!(uncapped.windows(2).all(|w| w[1].slot - w[0].slot == hour));
    assert!(Utc::now() - uncapped[5].slot < hour);
    assert_eq!(row(&db.pool, "uncapped").await.skipped_to, None);

    // The cap keeps the latest three, in order; the three before them are skipped, and the
    // row says which.
    let capped: Vec<_> = fired.iter().filter(|f| f.name == "capped").collect();
    assert_eq!(
        capped.iter().map(|f| f.slot).collect::<Vec<_>>(),
        uncapped[3..].iter().map(|f| f.slot).collect::<Vec<_>>()
    );
    let keys: Vec<String> = jobs_of(&db.pool, "capped")
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        capped
            .iter()
            .map(|f| slot_key("capped", f.slot))
            .collect::<Vec<_>>(),
        "enqueued oldest first"
    );
    let capped_row = row(&db.pool, "capped").await;
    assert_eq!(capped_row.skipped_from, Some(uncapped[0].slot));
    assert_eq!(capped_row.skipped_to, Some(uncapped[2].slot));
    assert_eq!(capped_row.last_slot, Some(capped[2].slot));
    assert_eq!(capped_row.next_at, Some(capped[2].slot + hour));

    assert!(scheduler.run_once().await.unwrap().is_empty(), "idempotent");
    assert_eq!(jobs_of(&db.pool, "capped").await.len(), 3);
}

#[tokio::test]
async fn catch_up_none_skips_missed_slots_and_fires_a_slot_found_on_time() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    // Two daily schedules, down for three days: one's slot came half an hour ago (late),
    // the other's five seconds ago (on time: the leader is back).
    let (late, on_time): (String, String) = sqlx::query_as(
        "SELECT to_char(now() - interval '30 minutes', 'SS MI HH24 * * *'),
                to_char(now() - interval '5 seconds', 'SS MI HH24 * * *')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    for (name, cron) in [("late", &late), ("on_time", &on_time)] {
        schedule_with(&db, name, cron, options(CatchUp::None, 100, "UTC")).await;
        made_at(&db.pool, name, "now() - interval '3 days'").await;
    }
    let fired = scheduler.run_once().await.unwrap();
    assert_eq!(
        fired.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["on_time"],
        "{fired:?}"
    );
    let day = chrono::Duration::days(1);
    let slot = fired[0].slot;
    assert!(Utc::now() - slot < chrono::Duration::seconds(60));
    let on_time_row = row(&db.pool, "on_time").await;
    assert_eq!(on_time_row.skipped_from, Some(slot - day * 2));
    assert_eq!(on_time_row.skipped_to, Some(slot - day));
    assert_eq!(on_time_row.last_slot, Some(slot));

    // The late one enqueued nothing: its three missed slots are skipped and the next one
    // is shown.
    assert!(jobs_of(&db.pool, "late").await.is_empty());
    let late_row = row(&db.pool, "late").await;
    let today = late_row.skipped_to.expect("the skip is recorded");
    assert!(Utc::now() - today > chrono::Duration::minutes(29));
    assert_eq!(late_row.skipped_from, Some(today - day * 2));
    assert_eq!(late_row.next_at, Some(today + day));
    assert_eq!(late_row.last_slot, None);
    assert!(scheduler.run_once().await.unwrap().is_empty(), "idempotent");
    assert_eq!(row(&db.pool, "late").await.skipped_to, Some(today));
}

#[tokio::test]
async fn a_time_zone_fires_on_local_time_across_both_changes_of_clock() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    // In Europe/Berlin, clocks went from 02:00 CET to 03:00 CEST on 2026-03-29 (01:00 UTC)
    // and back from 03:00 CEST to 02:00 CET on 2026-10-25 (01:00 UTC).
    let berlin = options(CatchUp::All, 10_000, "Europe/Berlin");
    for (name, cron) in [
        ("spring.0230", "30 2 29 3 *"),
        ("spring.halfhours", "*/30 1-3 29 3 *"),
        ("fall.0230", "30 2 25 10 *"),
        ("fall.halfhours", "*/30 2 25 10 *"),
        ("nine", "0 9 * * *"),
    ] {
        schedule_with(&db, name, cron, berlin.clone()).await;
        made_at(&db.pool, name, "'2026-03-27T00:00:00Z'").await;
    }
    let fired = scheduler.run_once().await.unwrap();

    // 02:30 did not exist on 2026-03-29: it fires once, at 03:00 CEST.
    assert_eq!(slots_of(&fired, "spring.0230"), ["2026-03-29T01:00:00Z"]);
    // Half hours: 01:00 and 01:30 CET, then 03:00 and 03:30 CEST.
    assert_eq!(
        slots_of(&fired, "spring.halfhours"),
        [
            "2026-03-29T00:00:00Z",
            "2026-03-29T00:30:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:30:00Z"
        ]
    );
    // 02:30 happened twice on 2026-10-25: it fires once, the first time (CEST).
    assert_eq!(slots_of(&fired, "fall.0230"), ["2026-10-25T00:30:00Z"]);
    // Half hours of the repeated hour fire in both passes, half an hour of real time apart,
    // each under a key of its own.
    assert_eq!(
        slots_of(&fired, "fall.halfhours"),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z"
        ]
    );
    let keys: Vec<String> = jobs_of(&db.pool, "fall.halfhours")
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        [
            "periodic:fall.halfhours:2026-10-25T00:00:00Z",
            "periodic:fall.halfhours:2026-10-25T00:30:00Z",
            "periodic:fall.halfhours:2026-10-25T01:00:00Z",
            "periodic:fall.halfhours:2026-10-25T01:30:00Z"
        ]
    );

    // 09:00 local all year: 08:00 UTC in winter, 07:00 UTC in summer.
    let nine = slots_of(&fired, "nine");
    for (day, utc) in [
        ("2026-03-28", "08:00:00Z"),
        ("2026-03-29", "07:00:00Z"),
        ("2026-10-24", "07:00:00Z"),
        ("2026-10-25", "08:00:00Z"),
    ] {
        assert!(nine.contains(&format!("{day}T{utc}")), "{day}: {nine:?}");
    }
    let in_berlin: Vec<u32> = fired
        .iter()
        .filter(|f| f.name == "nine")
        .map(|f| f.slot.with_timezone(&chrono_tz::Europe::Berlin).hour())
        .collect();
    assert!(in_berlin.len() > 200 && in_berlin.iter().all(|hour| *hour == 9));

    assert!(scheduler.run_once().await.unwrap().is_empty(), "idempotent");
    let row = row(&db.pool, "fall.0230").await;
    assert_eq!(row.timezone, "Europe/Berlin");
    // The next 02:30 in Berlin is a year on, in CEST again.
    assert_eq!(
        row.next_at.map(|at| at.to_rfc3339()),
        Some("2027-10-25T00:30:00+00:00".to_string())
    );
}

#[tokio::test]
async fn bad_zone_names_and_policies_are_refused_from_sql_and_rust() {
    let db = TestDb::new().await;
    let long = "x".repeat(100_000);
    let calls = [
        (
            "timezone => 'Mars/Olympus_Mons'",
            "22023",
            "timezone 'Mars/Olympus_Mons' is not an IANA time zone name",
        ),
        (
            "timezone => 'europe/berlin'",
            "22023",
            "timezone 'europe/berlin' is not an IANA",
        ),
        ("timezone => ''", "22023", "timezone '' is not an IANA"),
        (
            "timezone => 'localtime'",
            "22023",
            "timezone 'localtime' is not an IANA",
        ),
        (
            "timezone => E'UTC\\n'",
            "22023",
            "is not an IANA time zone name",
        ),
        (
            "timezone => '+02:00'",
            "22023",
            "timezone '+02:00' is not an IANA",
        ),
        (
            &format!("timezone => '{long}'"),
            "22023",
            "is not an IANA time zone name",
        ),
        ("timezone => NULL", "22004", "timezone must not be null"),
        (
            "catch_up => 'sometimes'",
            "22023",
            "catch_up must be 'latest', 'all' or 'none', got 'sometimes'",
        ),
        (
            "catch_up => 'ALL'",
            "22023",
            "catch_up must be 'latest', 'all' or 'none', got 'ALL'",
        ),
        ("catch_up => ''", "22023", "catch_up must be"),
        ("catch_up => NULL", "22004", "catch_up must not be null"),
        (
            "catch_up_max => 0",
            "22023",
            "catch_up_max must be 1 to 10000, got 0",
        ),
        (
            "catch_up_max => 10001",
            "22023",
            "catch_up_max must be 1 to 10000, got 10001",
        ),
        (
            "catch_up_max => -2147483648",
            "22023",
            "catch_up_max must be 1 to 10000",
        ),
        (
            "catch_up_max => NULL",
            "22004",
            "catch_up_max must not be null",
        ),
    ];
    for (argument, code, says) in calls {
        let sql = format!("SELECT bosun.schedule_periodic('a', '* * * * *', 'echo', {argument})");
        let error = sqlx::query(&sql).execute(&db.pool).await.unwrap_err();
        let db_error = error.as_database_error().unwrap();
        assert_eq!(db_error.code().as_deref(), Some(code), "{argument:.80}");
        assert!(
            db_error.message().contains(says),
            "{argument:.80}: {}",
            db_error.message()
        );
        assert!(
            db_error.message().len() < 300,
            "{argument:.80}: the message stays short"
        );
    }
    // From Rust: the same checks in the database, named errors in the builder.
    for bad in [
        options(CatchUp::All, 100, "Mars/Olympus_Mons"),
        options(CatchUp::All, 0, "UTC"),
    ] {
        let error = periodic_schedule_with(
            &db.pool,
            "a",
            "* * * * *",
            &NewJob::new("echo", json!({})),
            &bad,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, bosun_queue::Error::InvalidArgument(_)),
            "{error}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.periodic_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was written");

    let periodic = || Periodic::new("a", "* * * * *", NewJob::new("echo", json!({}))).unwrap();
    for zone in [
        "Mars/Olympus_Mons",
        "europe/berlin",
        "",
        "localtime",
        "+02:00",
        &long,
    ] {
        let error = periodic().timezone(zone).unwrap_err();
        assert!(
            matches!(&error, bosun_workers::Error::InvalidConfig(m) if m.contains("is not an IANA time zone name")),
            "{zone:.80}: {error}"
        );
    }
    assert!(periodic().timezone("Europe/Berlin").is_ok());
    for max in [0, 10_001, u32::MAX] {
        let error = periodic().catch_up_max(max).unwrap_err();
        assert!(
            matches!(&error, bosun_workers::Error::InvalidConfig(m) if m.contains("catch_up_max must be 1 to 10000")),
            "{max}: {error}"
        );
    }
    for policy in ["sometimes", "ALL", "", "latest "] {
        let error = policy.parse::<CatchUp>().unwrap_err();
        assert!(
            matches!(&error, bosun_queue::Error::InvalidArgument(m) if m.contains("must be")),
            "{policy:?}: {error}"
        );
    }
    assert_eq!("none".parse::<CatchUp>().unwrap(), CatchUp::None);
}

#[tokio::test]
async fn a_zone_the_leader_does_not_know_is_recorded_on_the_schedule() {
    let db = TestDb::new().await;
    let scheduler = Scheduler::new(db.client.clone());
    schedule(&db, "odd", "* * * * *").await;
    schedule(&db, "fine", "* * * * *").await;
    // Written around bosun.schedule_periodic, which would refuse it.
    sqlx::query("UPDATE bosun.periodic_jobs SET timezone = 'Mars/Olympus_Mons' WHERE name = 'odd'")
        .execute(&db.pool)
        .await
        .unwrap();
    for name in ["odd", "fine"] {
        backdate(&db.pool, name, "1 hour", None).await;
    }
    let fired = scheduler.run_once().await.unwrap();
    assert_eq!(slots_of(&fired, "odd"), Vec::<String>::new());
    assert_eq!(slots_of(&fired, "fine").len(), 1);
    let error = row(&db.pool, "odd").await.error.unwrap_or_default();
    assert!(
        error.contains("time zone \"Mars/Olympus_Mons\" is not an IANA time zone name"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_defined_in_code_carries_its_zone_and_catch_up_policy() {
    let db = TestDb::new().await;
    let tokyo = Periodic::new("tokyo.nine", "0 9 * * *", NewJob::new("echo", json!({})))
        .unwrap()
        .timezone("Asia/Tokyo")
        .unwrap()
        .catch_up(CatchUp::All)
        .catch_up_max(7)
        .unwrap();
    let running = RunningPool::start(
        WorkerPool::builder(db.client.clone())
            .registry(bosun_cli::kinds::registry())
            .periodic(tokyo)
            .queue("default", 1)
            .maintenance_interval(Duration::from_millis(100))
            .build()
            .unwrap(),
    );
    let shown = eventually(
        Duration::from_secs(15),
        "the next slot to be shown",
        || async {
            periodic_list(&db.pool)
                .await
                .unwrap()
                .into_iter()
                .find(|row| row.next_at.is_some())
        },
    )
    .await;
    running.stop().await;
    assert_eq!(
        (shown.catch_up, shown.catch_up_max, shown.timezone.as_str()),
        (CatchUp::All, 7, "Asia/Tokyo")
    );
    // 09:00 in Tokyo (no daylight saving) is 00:00 UTC.
    let next = shown.next_at.unwrap();
    assert_eq!((next.hour(), next.minute(), next.second()), (0, 0, 0));
}
