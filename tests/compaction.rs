//! A held vacuum horizon and the leader's upkeep of `bosun.jobs`. The vacuumer does not
//! vacuum the table again and again while the horizon is held. The compactor gives back
//! what the table grew by once the horizon moves, the indexes by a rebuild and the heap's
//! empty end by a truncation, and touches nothing while the horizon is held or while live
//! rows sit at the heap's end.

use std::time::Duration;

use bosun_queue::NewJob;
use bosun_tests::raw_sql::sql_exec;
use bosun_tests::TestDb;
use bosun_workers::maintenance::compactor::{Compaction, Compactor, CompactorConfig};
use serde_json::json;

async fn number(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

async fn heap(db: &TestDb) -> i64 {
    number(db, "SELECT pg_relation_size('bosun.jobs')").await
}

async fn claim_index(db: &TestDb) -> i64 {
    number(db, "SELECT pg_relation_size('bosun.jobs_claimable_idx')").await
}

fn compactor(db: &TestDb) -> Compactor {
    Compactor::new(
        db.client.clone(),
        CompactorConfig {
            tail_check_every: Duration::ZERO,
            held_recheck_every: Duration::ZERO,
            ..CompactorConfig::default()
        },
    )
}

/// 3,000 jobs, their usual sizes noted by `compactor`, then every row moved along its claim
/// index 25 times while another transaction holds its snapshot: the heap and the index grow
/// many times over. Returns the connection that holds the snapshot.
async fn grow_under_a_held_horizon(db: &TestDb, compactor: &Compactor) -> sqlx::PgConnection {
    let jobs = (0..3_000).map(|_| NewJob::new("echo", json!({})));
    db.client.enqueue_many(jobs).await.unwrap();
    sqlx::raw_sql("VACUUM bosun.jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(compactor.run_once().await.unwrap(), Compaction::None);
    let mut pin = db.raw().await;
    sql_exec(&mut pin, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    sql_exec(&mut pin, "SELECT count(*) FROM bosun.jobs").await;
    for _ in 0..25 {
        sql_exec(
            &mut db.raw().await,
            "UPDATE bosun.jobs SET scheduled_at = scheduled_at + interval '1 microsecond'",
        )
        .await;
    }
    pin
}

#[tokio::test]
async fn what_the_table_grew_by_under_a_held_horizon_is_given_back_once_it_moves() {
    let db = TestDb::new().await;
    let compactor = compactor(&db);
    let (heap_before, index_before) = {
        let mut pin = grow_under_a_held_horizon(&db, &compactor).await;
        let grown = (heap(&db).await, claim_index(&db).await);
        // Held: the versions are not dead yet, a rebuild would keep them.
        sqlx::raw_sql("VACUUM bosun.jobs")
            .execute(&db.pool)
            .await
            .unwrap();
        assert_eq!(compactor.run_once().await.unwrap(), Compaction::None);
        sql_exec(&mut pin, "COMMIT").await;
        grown
    };
    assert!(heap_before > 8 << 20, "the heap grew: {heap_before}");
    assert!(
        index_before > 1 << 20,
        "the claim index grew: {index_before}"
    );
    // The jobs finish and go; vacuum can remove their versions now.
    sql_exec(&mut db.raw().await, "DELETE FROM bosun.jobs").await;
    sqlx::raw_sql("VACUUM bosun.jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    // The statistics show the dead versions gone within a second or so.
    let mut done = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // The heap's end is truncated once it was empty at two looks in a row.
    while !done
        .iter()
        .any(|d| matches!(d, Compaction::Truncated(_, _)))
    {
        match compactor.run_once().await.unwrap() {
            Compaction::None => {}
            other => done.push(other),
        }
        assert!(std::time::Instant::now() < deadline, "{done:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        compactor.run_once().await.unwrap(),
        Compaction::None,
        "{done:?}"
    );
    assert!(
        done.iter().any(
            |d| matches!(d, Compaction::Rebuilt(name, _, _) if name == "bosun.jobs_claimable_idx")
        ),
        "{done:?}"
    );
    assert!(
        done.iter()
            .any(|d| matches!(d, Compaction::Truncated(_, _))),
        "{done:?}"
    );
    assert!(claim_index(&db).await < index_before / 4, "{done:?}");
    assert!(heap(&db).await < heap_before / 8, "{done:?}");
    // Jobs enqueued again are claimed and the schema is as migrated.
    db.client
        .enqueue(NewJob::new("echo", json!({})))
        .await
        .unwrap();
    let valid: i64 = number(
        &db,
        "SELECT count(*) FROM pg_index WHERE indrelid = 'bosun.jobs'::regclass AND NOT indisvalid",
    )
    .await;
    assert_eq!(valid, 0);
}

#[tokio::test]
async fn live_rows_at_the_heaps_end_keep_it_and_a_left_invalid_index_is_dropped() {
    let db = TestDb::new().await;
    let compactor = compactor(&db);
    let mut pin = grow_under_a_held_horizon(&db, &compactor).await;
    sql_exec(&mut pin, "COMMIT").await;
    let grown = heap(&db).await;
    // The rows' last versions sit at the heap's end.
    sqlx::raw_sql("VACUUM bosun.jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE INDEX jobs_claimable_idx_ccnew ON bosun.jobs (id);
         UPDATE pg_index SET indisvalid = false
         WHERE indexrelid = 'bosun.jobs_claimable_idx_ccnew'::regclass",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        compactor.run_once().await.unwrap(),
        Compaction::DroppedInvalid("bosun.jobs_claimable_idx_ccnew".into())
    );
    for _ in 0..20 {
        if compactor.run_once().await.unwrap() == Compaction::None {
            break;
        }
    }
    assert_eq!(compactor.run_once().await.unwrap(), Compaction::None);
    assert_eq!(
        heap(&db).await,
        grown,
        "live rows at the end: nothing to give back"
    );
    assert_eq!(number(&db, "SELECT count(*) FROM bosun.jobs").await, 3_000);
}

#[tokio::test]
async fn a_vacuum_that_removed_nothing_is_not_repeated_until_the_dead_rows_double() {
    use bosun_workers::maintenance::vacuumer::{Vacuumer, VacuumerConfig};
    let db = TestDb::new().await;
    let jobs = (0..2_000).map(|_| NewJob::new("echo", json!({})));
    db.client.enqueue_many(jobs).await.unwrap();
    let mut pin = db.raw().await;
    sql_exec(&mut pin, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    sql_exec(&mut pin, "SELECT count(*) FROM bosun.jobs").await;
    let churn = || async {
        sql_exec(
            &mut db.raw().await,
            "UPDATE bosun.jobs SET scheduled_at = scheduled_at + interval '1 microsecond'",
        )
        .await;
    };
    churn().await;
    // Backends send their counts to the statistics within a second or so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let vacuumer = Vacuumer::new(
        db.client.clone(),
        VacuumerConfig {
            dead_min: 1_000,
            dead_fraction: 0.5,
            ..VacuumerConfig::default()
        },
    );
    let vacuums = || {
        number(
            &db,
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'bosun.jobs'::regclass",
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while vacuumer.run_once().await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the statistics never showed the dead rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_first = vacuums().await;
    for _ in 0..5 {
        assert_eq!(vacuumer.run_once().await.unwrap(), None, "held: not again");
    }
    assert_eq!(vacuums().await, after_first);
    // Twice the dead rows: it tries again.
    churn().await;
    churn().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while vacuumer.run_once().await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no second vacuum");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(vacuums().await, after_first + 1);
    sql_exec(&mut pin, "COMMIT").await;
}

/// A rebuild that would wait for a transaction holding an older snapshot gives up after its
/// wait (it would hold the horizon back itself meanwhile), and the compactor drops the
/// invalid index it leaves.
#[tokio::test]
async fn a_rebuild_behind_a_held_snapshot_gives_up_and_its_leftover_is_dropped() {
    let db = TestDb::new().await;
    let jobs = (0..100).map(|_| NewJob::new("echo", json!({})));
    db.client.enqueue_many(jobs).await.unwrap();
    let mut pin = db.raw().await;
    sql_exec(&mut pin, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    sql_exec(&mut pin, "SELECT count(*) FROM bosun.schema_migrations").await;
    let started = std::time::Instant::now();
    let gave_up = bosun_queue::cleanup::index_rebuild(
        &db.pool,
        "bosun.jobs_claimable_idx",
        Duration::from_millis(300),
    )
    .await;
    assert!(gave_up.is_err(), "it waited for the snapshot and went on");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    sql_exec(&mut pin, "COMMIT").await;
    let left = bosun_queue::cleanup::jobs_invalid_indexes(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, ["bosun.jobs_claimable_idx_ccnew"]);
    assert_eq!(
        compactor(&db).run_once().await.unwrap(),
        Compaction::DroppedInvalid("bosun.jobs_claimable_idx_ccnew".into())
    );
    assert!(bosun_queue::cleanup::jobs_invalid_indexes(&db.pool)
        .await
        .unwrap()
        .is_empty());
}
