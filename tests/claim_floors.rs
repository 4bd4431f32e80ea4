//! Claim floors: claims start each lane's walk at its floor, and no row that becomes
//! claimable is ever left below one, whatever order its commit and a raise come in: a row
//! whose transaction began before the raise, a time in the past, a higher priority, a job
//! put back with its old time, a claim rolled back, and all of them at once from several
//! connections while the raiser runs.

use std::collections::BTreeSet;

use bosun_tests::raw_sql::{sql_exec, sql_id};
use bosun_tests::TestDb;
use sqlx::PgConnection;

/// Ids `worker` claims from `default`, up to `max`, in claim order.
async fn claim(conn: &mut PgConnection, max: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM bosun.claim_jobs('default', $1, ARRAY['echo'], 'w1')")
        .bind(max)
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Raise every floor; how many moved.
async fn raise(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE bosun.advance_claim_floor(f.queue, f.priority))
         FROM bosun.claim_floors AS f",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn floor(
    conn: &mut PgConnection,
    priority: i16,
) -> Option<(chrono::DateTime<chrono::Utc>, i64)> {
    sqlx::query_as(
        "SELECT scheduled_at, id FROM bosun.claim_floors WHERE queue = 'default' AND priority = $1",
    )
    .bind(priority)
    .fetch_optional(conn)
    .await
    .unwrap()
}

async fn enqueue(conn: &mut PgConnection) -> i64 {
    sql_id(conn, "SELECT bosun.enqueue('echo')").await
}

#[tokio::test]
async fn a_raise_moves_the_floor_to_the_lowest_claimable_row_and_claims_start_there() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(enqueue(&mut conn).await);
    }
    let first_two = claim(&mut conn, 2).await;
    assert_eq!(raise(&mut conn).await, 1);
    let (_, floor_id) = floor(&mut conn, 0).await.expect("the lane has a floor");
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let left: Vec<i64> = sorted
        .iter()
        .copied()
        .filter(|id| !first_two.contains(id))
        .collect();
    assert_eq!(
        floor_id, left[0],
        "the floor is the lowest row still claimable"
    );
    assert_eq!(claim(&mut conn, 10).await, left);
    // An empty lane's floor moves to the raise's start: rows enqueued later are above it.
    assert_eq!(raise(&mut conn).await, 1);
    let id = enqueue(&mut conn).await;
    assert_eq!(claim(&mut conn, 10).await, vec![id]);
}

#[tokio::test]
async fn a_row_whose_transaction_began_before_a_raise_is_claimed_when_it_commits() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let mut late = db.raw().await;
    sql_exec(&mut late, "BEGIN").await;
    // Its scheduled_at is its transaction's start, before everything below.
    let late_id = enqueue(&mut late).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let early = enqueue(&mut conn).await;
    assert_eq!(claim(&mut conn, 10).await, vec![early]);
    raise(&mut conn).await;
    let (floor_at, _) = floor(&mut conn, 0).await.unwrap();
    let late_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut late)
        .await
        .unwrap();
    assert!(
        floor_at > late_at,
        "the raise went past the uncommitted row's key"
    );
    sql_exec(&mut late, "COMMIT").await;
    assert_eq!(claim(&mut conn, 10).await, vec![late_id]);
}

#[tokio::test]
async fn a_raise_waits_for_no_commit_and_skips_a_lane_one_is_checking() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    enqueue(&mut conn).await;
    let mut committing = db.raw().await;
    sql_exec(&mut committing, "BEGIN").await;
    sql_exec(
        &mut committing,
        "SELECT pg_advisory_xact_lock_shared(hashtext('bosun.claim_floors'), hashtext('default/0'))",
    )
    .await;
    let moved: Option<bool> = sqlx::query_scalar("SELECT bosun.advance_claim_floor('default', 0)")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        moved, None,
        "a lane some commit is checking is left for the next raise"
    );
    sql_exec(&mut committing, "COMMIT").await;
}

#[tokio::test]
async fn rows_below_the_floor_lower_it_when_they_commit() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    enqueue(&mut conn).await;
    claim(&mut conn, 10).await;
    raise(&mut conn).await;
    // A time in the past, by plain INSERT.
    let past = sql_id(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('echo', now() - interval '1 day') RETURNING id",
    )
    .await;
    // A higher priority: a lane of its own, claimed first.
    let urgent = sql_id(&mut conn, "SELECT bosun.enqueue('echo', priority => -5)").await;
    raise(&mut conn).await;
    assert_eq!(claim(&mut conn, 10).await, vec![urgent, past]);
    // A job put back with its old time, as an operator's UPDATE would.
    raise(&mut conn).await;
    sql_exec(
        &mut conn,
        &format!("UPDATE bosun.jobs SET state = 'available' WHERE id = {past}"),
    )
    .await;
    assert_eq!(claim(&mut conn, 10).await, vec![past]);
    // A row moved to another queue and priority by UPDATE.
    let moved = sql_id(&mut conn, "SELECT bosun.enqueue('echo', queue => 'other')").await;
    raise(&mut conn).await;
    sql_exec(
        &mut conn,
        &format!("UPDATE bosun.jobs SET queue = 'default', priority = 3, scheduled_at = now() - interval '1 hour' WHERE id = {moved}"),
    )
    .await;
    assert_eq!(claim(&mut conn, 10).await, vec![moved]);
}

#[tokio::test]
async fn a_claim_rolled_back_leaves_its_rows_above_the_floor() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    let ids = [enqueue(&mut conn).await, enqueue(&mut conn).await];
    let mut claimer = db.raw().await;
    sql_exec(&mut claimer, "BEGIN").await;
    assert_eq!(claim(&mut claimer, 10).await, ids.to_vec());
    raise(&mut conn).await;
    sql_exec(&mut claimer, "ROLLBACK").await;
    raise(&mut conn).await;
    assert_eq!(claim(&mut conn, 10).await, ids.to_vec());
}

#[tokio::test]
async fn a_raise_refuses_a_snapshot_older_than_its_statements_and_bad_arguments() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(&mut conn, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    let error = sqlx::query("SELECT bosun.advance_claim_floor('default', 0)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        error.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("25000")
    );
    sql_exec(&mut conn, "ROLLBACK").await;
    for (sql, code) in [
        ("SELECT bosun.advance_claim_floor(NULL, 0)", "22004"),
        ("SELECT bosun.advance_claim_floor('default', NULL)", "22004"),
        (
            "SELECT bosun.advance_claim_floor('default', 40000)",
            "22023",
        ),
    ] {
        let error = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some(code),
            "{sql}"
        );
    }
}

/// Inserters (some in long transactions, some with times in the past, several priorities),
/// claimers and a raiser, all at once: every job is claimed exactly once.
#[tokio::test]
async fn under_concurrent_inserts_claims_and_raises_no_job_is_left_behind() {
    let db = TestDb::new().await;
    const INSERTERS: usize = 4;
    const PER_INSERTER: usize = 150;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut inserters = Vec::new();
    for n in 0..INSERTERS {
        let mut c = db.raw().await;
        inserters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..PER_INSERTER {
                let long = (i + n) % 7 == 0;
                if long {
                    sql_exec(&mut c, "BEGIN").await;
                }
                let sql = match (i + n) % 5 {
                    0 => "INSERT INTO bosun.jobs (kind, scheduled_at) VALUES ('echo', now() - interval '1 second') RETURNING id",
                    1 => "SELECT bosun.enqueue('echo', priority => 1)",
                    _ => "SELECT bosun.enqueue('echo')",
                };
                ids.push(sql_id(&mut c, sql).await);
                if long {
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                    sql_exec(&mut c, "COMMIT").await;
                }
            }
            ids
        }));
    }
    let raiser = {
        let mut c = db.raw().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                raise(&mut c).await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
    };
    let mut claimers = Vec::new();
    for _ in 0..2 {
        let mut c = db.raw().await;
        let stop = stop.clone();
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ids = claim(&mut c, 7).await;
                if ids.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                got.extend(ids);
            }
            got
        }));
    }
    let mut enqueued = BTreeSet::new();
    for inserter in inserters {
        enqueued.extend(inserter.await.unwrap());
    }
    // Let the claimers catch up, then one last claim after a final raise.
    let mut conn = db.raw().await;
    bosun_tests::eventually(std::time::Duration::from_secs(30), "claimers catching up", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bosun.jobs WHERE state IN ('available', 'scheduled', 'retryable')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (waiting == 0).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    raiser.await.unwrap();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    claimed.extend(claim(&mut conn, 10_000).await);
    let unique: BTreeSet<i64> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "a job was claimed twice");
    assert_eq!(unique, enqueued, "every job enqueued was claimed");
}

/// A queue that has used more than 64 priorities is claimed from its head in one walk, in
/// priority order, as before the floors.
#[tokio::test]
async fn a_queue_of_many_priorities_is_claimed_from_its_head_in_priority_order() {
    let db = TestDb::new().await;
    let mut conn = db.raw().await;
    sql_exec(
        &mut conn,
        "INSERT INTO bosun.jobs (kind, priority) SELECT 'echo', p FROM generate_series(70, 1, -1) AS p",
    )
    .await;
    let lanes: i64 = sqlx::query_scalar("SELECT count(*) FROM bosun.claim_floors")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(lanes, 70);
    let priorities: Vec<i16> = sqlx::query_scalar(
        "SELECT priority FROM bosun.claim_jobs('default', 100, ARRAY['echo'], 'w1')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(priorities, (1..=70).collect::<Vec<i16>>());
}
